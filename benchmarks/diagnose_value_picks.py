"""What each value arm of ``bench_value_protocol.py`` picks: a diagnosis of why S, R, U and Q lose
to random there.

For the first ``--splits`` world splits of the protocol (same specs, same base-planner signals,
same ``arm_picks``; training seed 0 only, no planner is trained on the picks), this reports per
arm: the base planner's mean failure (1 − EPDMS) on its picks, the overlap with hard-example
mining's picks, the share of scenes with a rare event, the topology and manoeuvre mix of the
picks next to the balanced test set's mix (total-variation distance), and how many distinct
scenario cells (topology × manoeuvre × event) the picks cover. Nothing here touches test scores.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/diagnose_value_picks.py            # 2 splits, ~5 min
    .venv/bin/python benchmarks/diagnose_value_picks.py --quick                       # tiny, machinery only
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_value_protocol import ARMS, arm_picks, split_pool  # noqa: E402
from results_io import write_result  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def mix(values) -> dict[str, float]:
    """Share of each distinct value, e.g. {'intersection': 0.31, ...}."""
    counts = Counter(str(v) for v in values)
    return {k: c / len(values) for k, c in sorted(counts.items())}


def total_variation(p: dict[str, float], q: dict[str, float]) -> float:
    """½ Σ |p − q| over the union of categories (0 = same mix, 1 = disjoint)."""
    return 0.5 * sum(abs(p.get(k, 0.0) - q.get(k, 0.0)) for k in set(p) | set(q))


def describe_picks(split, pool, picks: np.ndarray, hard: np.ndarray) -> dict:
    meta = split.pool.meta
    cells = {(meta["topology"][i], meta["maneuver"][i], meta["events"][i]) for i in picks}
    all_cells = {(t, m, e) for t, m, e in zip(meta["topology"], meta["maneuver"], meta["events"])}
    return {
        "base_failure_mean": float(np.mean(pool.scores["importance"][picks])),
        "overlap_with_hard_mining": float(len(np.intersect1d(picks, hard)) / len(picks)),
        "rare_event_share": float(np.mean([bool(meta["events"][i]) for i in picks])),
        "topology_tv_to_test": total_variation(mix(meta["topology"][picks]), mix(split.test.meta["topology"])),
        "maneuver_tv_to_test": total_variation(mix(meta["maneuver"][picks]), mix(split.test.meta["maneuver"])),
        "scenario_cells_covered": len(cells) / len(all_cells),
        "topology_mix": mix(meta["topology"][picks]),
    }


def main(argv=None) -> int:
    from autoscale_core.experiments import ProtocolConfig, WorldSplitSpec
    from autoscale_core.experiments.splits import make_world_split

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splits", type=int, default=2)
    p.add_argument("--out", default=RESULTS_DIR)
    p.add_argument("--quick", action="store_true")
    args = p.parse_args(argv)
    # the committed value_protocol run's settings (bench_value_protocol's defaults)
    pool_size, base, val, test, budget, steps, epochs, batch, passes = 10_000, 1_000, 500, 2_000, 1_000, 150, 10.0, 128, 10
    if args.quick:
        pool_size, base, val, test, budget, steps, epochs, batch, passes = 300, 60, 20, 80, 40, 10, 2.0, 32, 3
    config = ProtocolConfig(budgets=(budget,), seeds=(0,), methods=(), steps=steps, batch_size=batch,
                            epochs=epochs, mc_passes=passes)
    t0 = time.perf_counter()
    per_split = {}
    for index in range(args.splits):
        split = make_world_split(WorldSplitSpec(seed=100 + 10 * index, pool_size=pool_size, base_size=base,
                                                val_size=val, test_size=test))
        pool, _ = split_pool(split, config)
        hard = arm_picks("hard_mining", pool, budget, index, 0)
        per_split[split.name] = {
            "pool": {"rare_event_share": float(np.mean([bool(e) for e in split.pool.meta["events"]])),
                     "topology_tv_to_test": total_variation(mix(split.pool.meta["topology"]), mix(split.test.meta["topology"]))},
            "arms": {arm: describe_picks(split, pool, arm_picks(arm, pool, budget, index, 0), hard) for arm in ARMS}}
        print(json.dumps({"split": split.name, "s": round(time.perf_counter() - t0, 1)}), file=sys.stderr, flush=True)
    result = {"benchmark": "diagnose_value_picks", "command": "python " + " ".join(sys.argv),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "wall_s": time.perf_counter() - t0,
              "budget": budget, "pool": pool_size, "per_split": per_split,
              "what_it_ran_on": "the value_protocol splits' distinct generated scenes; training seed 0's picks"}
    name = "value_picks" + ("_quick" if args.quick else "")
    write_result(args.out, name, result, markdown(result))
    print(json.dumps({k: v for k, v in result.items() if k != "per_split"}))
    return 0


def markdown(result: dict) -> str:
    lines = ["# value_picks: what each value arm picks (budget "
             f"{result['budget']} of {result['pool']})", "", f"Command: `{result['command']}`", ""]
    for name, split in result["per_split"].items():
        lines += [f"## {name} (pool: rare-event share {split['pool']['rare_event_share']:.2f}, topology TV to test "
                  f"{split['pool']['topology_tv_to_test']:.2f})", "",
                  "| arm | base failure (1 − EPDMS) | overlap with hard mining | rare-event share | topology TV to test | "
                  "manoeuvre TV to test | scenario cells covered |", "|---|---:|---:|---:|---:|---:|---:|"]
        for arm, d in split["arms"].items():
            lines.append(f"| {arm} | {d['base_failure_mean']:.3f} | {d['overlap_with_hard_mining']:.2f} | "
                         f"{d['rare_event_share']:.2f} | {d['topology_tv_to_test']:.2f} | {d['maneuver_tv_to_test']:.2f} | "
                         f"{d['scenario_cells_covered']:.2f} |")
        lines.append("")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
