"""Which training schedule makes data volume matter? Chosen on a tuning world's *val* set only.

The selection protocol's first run trained every planner a fixed 150 steps and measured a flat
random learning curve (more scenes never helped), which makes BRMR unmeasurable. This benchmark
compares training schedules on a tuning world split that the protocol never reports (world seed
90: base + pool from seed 90, val from seed 91; no test set is built) by the random learning curve
on val: a fixed number of steps against epoch-proportional schedules
(``max(min_steps, ceil(epochs * n / batch))``, :func:`autoscale_core.selection.oracle.schedule_steps`).
The protocol's default ``--epochs`` is the cheapest schedule whose val curve rises.

    .venv/bin/python benchmarks/bench_selection_schedule.py            # ~10 min on 2 cores
    .venv/bin/python benchmarks/bench_selection_schedule.py --quick    # machinery only

Writes ``benchmarks/results/selection_schedule.{json,md}`` (``_quick`` with --quick).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


class _RandomCurveRunner:
    """Picklable: train on base + a random draw of the pool with one schedule, return val EPDMS ×100."""

    def __init__(self, split, batch_size: int):
        self.split, self.batch_size = split, batch_size

    def __call__(self, task: dict) -> dict:
        from autoscale_core.selection.oracle import PlannerOracle

        oracle = PlannerOracle(self.split.base, self.split.pool, self.split.val, steps=task["min_steps"],
                               epochs=task["epochs"], train_kwargs={"batch_size": self.batch_size})
        rng = np.random.default_rng([int(task["seed"]), int(task["added"]), 7])
        picks = np.sort(rng.choice(len(self.split.pool), int(task["added"]), replace=False))
        started = time.perf_counter()
        val = oracle(picks, None, int(task["seed"]))
        return {**task, "val_epdms": val, "steps": oracle.steps_for(len(self.split.base) + len(picks)),
                "seconds": time.perf_counter() - started}


def _schedules(text: str) -> list[dict]:
    """"fixed:150,epochs:5:100" → [{"name", "epochs", "min_steps"}]."""
    out = []
    for item in text.split(","):
        kind, *rest = item.split(":")
        if kind == "fixed":
            out.append({"name": f"fixed {rest[0]} steps", "epochs": None, "min_steps": int(rest[0])})
        elif kind == "epochs":
            out.append({"name": f"{rest[0]} epochs (min {rest[1]} steps)", "epochs": float(rest[0]),
                        "min_steps": int(rest[1])})
        else:
            raise SystemExit(f"unknown schedule {item!r}: use fixed:STEPS or epochs:E:MIN_STEPS")
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--world-seed", type=int, default=90, help="tuning world (the protocol reports 100, 110, …)")
    parser.add_argument("--pool", type=int, default=4_500)
    parser.add_argument("--base", type=int, default=1_000)
    parser.add_argument("--val", type=int, default=600)
    parser.add_argument("--added", default="125,500,2000,4000", help="random scenes added to the base set")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--schedules", default="fixed:150,epochs:5:100,epochs:10:150")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--executor", default="process:2")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.pool, args.base, args.val, args.added, args.seeds = 200, 40, 40, "20,80", "0,1"
        args.schedules, args.batch_size, args.executor = "fixed:10,epochs:2:10", 32, "serial"

    from autoscale_core.executor import get_executor
    from autoscale_core.experiments import WorldSplitSpec, make_world_split

    started = time.perf_counter()
    split = make_world_split(WorldSplitSpec(seed=args.world_seed, pool_size=args.pool, base_size=args.base,
                                            val_size=args.val, test_size=1))
    generated = time.perf_counter() - started
    schedules = _schedules(args.schedules)
    tasks = [{"schedule": s["name"], "epochs": s["epochs"], "min_steps": s["min_steps"], "added": int(a), "seed": int(k)}
             for s in schedules for a in args.added.split(",") for k in args.seeds.split(",")]
    rows = get_executor(args.executor).map(_RandomCurveRunner(split, args.batch_size), tasks)
    curves = {}
    for s in schedules:
        mine = [r for r in rows if r["schedule"] == s["name"]]
        added = sorted({r["added"] for r in mine})
        curves[s["name"]] = {
            "added": added,
            "val_epdms_mean": [float(np.mean([r["val_epdms"] for r in mine if r["added"] == a])) for a in added],
            "val_epdms_per_seed": [[r["val_epdms"] for r in mine if r["added"] == a] for a in added],
            "steps": [next(r["steps"] for r in mine if r["added"] == a) for a in added],
            "train_and_val_seconds": float(sum(r["seconds"] for r in mine)),
        }
    name = "selection_schedule" + ("_quick" if args.quick else "")
    record = {
        "title": "Training schedule for the selection protocol (chosen on val of a tuning world)",
        "command": "python benchmarks/bench_selection_schedule.py" + (" " + " ".join(argv if argv is not None else sys.argv[1:])).rstrip(),
        "what_it_ran_on": (f"tuning world seed {args.world_seed} (never reported by the protocol): base {args.base} + pool "
                           f"{args.pool} log-like scenes, val {args.val} balanced scenes from seed {args.world_seed + 1}; "
                           "distinct generated scenes; no test set is built"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "load_average_at_end": list(os.getloadavg())},
        "generation_seconds": generated, "total_seconds": time.perf_counter() - started,
        "curves": curves, "rows": rows,
    }
    os.makedirs(RESULTS_DIR, exist_ok=True)
    with open(os.path.join(RESULTS_DIR, name + ".json"), "w") as fh:
        json.dump(record, fh, indent=1)
    lines = [f"# {record['title']}", "", f"Command: `{record['command']}`", "", record["what_it_ran_on"] + ".", "",
             "Val EPDMS ×100 (mean of training seeds; per-seed values in the JSON) of the planner trained on base + n random "
             "pool scenes:", "", "| schedule | " + " | ".join(f"n={a}" for a in curves[schedules[0]["name"]]["added"])
             + " | CPU s |", "|---|" + "---|" * (len(curves[schedules[0]["name"]]["added"]) + 1)]
    for s, c in curves.items():
        cells = [f"{v:.1f} ({st} steps)" for v, st in zip(c["val_epdms_mean"], c["steps"])]
        lines.append(f"| {s} | " + " | ".join(cells) + f" | {c['train_and_val_seconds']:.0f} |")
    with open(os.path.join(RESULTS_DIR, name + ".md"), "w") as fh:
        fh.write("\n".join(lines) + "\n")
    print(json.dumps({"curves": {k: v["val_epdms_mean"] for k, v in curves.items()}, "seconds": record["total_seconds"]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
