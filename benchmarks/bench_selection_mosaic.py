"""MOSAIC-style table: budgets × {random, coreset, uncertainty, Q top-m, MOSAIC} → test EPDMS and BRMR.

Closed loop on the embedded world: the current planner is trained on a base split; each method
picks ``budget`` scenes from the pool; a planner is retrained on base + picks (same steps, seed) and
scored in simulation on the held-out *test* split. MOSAIC's pilots are scored on the *val* split
(no tuning on test). BRMR (budget ratio to match random) is computed on the seed-mean curves,
including budget 0 (the base planner). Prints JSON; writes JSON, a markdown table and a PNG plot.

Full run (the committed results):
    .venv/bin/python benchmarks/bench_selection_mosaic.py --scenes 1200 --budgets 40,80,160,320 \
        --seeds 0,1,2 --steps 300 --executor process:2
CI smoke (tiny, minutes):
    .venv/bin/python benchmarks/bench_selection_mosaic.py --smoke
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

from autoscale_core.selection import (  # noqa: E402
    CoresetSelector,
    MosaicSelector,
    RandomSelector,
    UncertaintySelector,
    ValueTopSelector,
    ablation_subsets,
    brmr,
    get_executor,
)
from autoscale_core.selection.experiment import ClosedLoopSetup, split_indices  # noqa: E402
from autoscale_core.selection.oracle import OracleTask, run_oracle_task  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=1200)
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--budgets", default="40,80,160,320")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--planner", default="regression")
    p.add_argument("--domains", default="topology", help="meta key or 'clusters'")
    p.add_argument("--pilot-seeds", type=int, default=2, help="seeds averaged per MOSAIC pilot point")
    p.add_argument("--ablations", action="store_true", help="also Q top-m over every S/R/U subset")
    p.add_argument("--executor", default=None, help="serial | process[:N] | ray[:address] (default: AUTOSCALE_EXECUTOR or process)")
    p.add_argument("--out", default=RESULTS_DIR)
    p.add_argument("--name", default="selection_mosaic")
    p.add_argument("--smoke", action="store_true", help="tiny sizes for CI")
    args = p.parse_args(argv)
    if args.smoke:
        args.scenes, args.budgets, args.seeds, args.steps, args.batch_size = 100, "6,12", "0", 8, 32
        args.pilot_seeds = 1
        args.executor = args.executor or "serial"
        args.name = args.name + "_smoke"
    args.budgets = [int(b) for b in args.budgets.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    return args


def selectors(args, setup, seed):
    out = {
        "random": RandomSelector(seed=seed),
        "coreset": CoresetSelector(),
        "uncertainty": UncertaintySelector(),
        "value_topm": ValueTopSelector(),
    }
    if args.ablations:
        for subset in ablation_subsets()[:-1]:
            out["value_topm[" + "".join(subset) + "]"] = ValueTopSelector(components=subset)
    return out


def run(args) -> dict:
    from autoscale_core.world import generate_world

    t0 = time.perf_counter()
    world = generate_world(args.scenes, seed=args.world_seed)
    parts = split_indices(len(world), {"base": 0.15, "pool": 0.55, "val": 0.15, "test": 0.15}, seed=args.world_seed)
    if max(args.budgets) > len(parts["pool"]):
        raise SystemExit(f"largest budget {max(args.budgets)} exceeds the pool ({len(parts['pool'])} scenes)")
    train_kwargs = {"batch_size": args.batch_size}
    setup = ClosedLoopSetup(*(world.subset(parts[k]) for k in ("base", "pool", "val", "test")),
                            planner=args.planner, steps=args.steps, train_kwargs=train_kwargs, seed=0).prepare()
    pool = setup.make_pool(args.domains)
    executor = get_executor(args.executor)
    timings = {"setup_s": time.perf_counter() - t0}

    # Selections (MOSAIC pilots on val, one fit per seed at the largest budget, reused for smaller ones).
    t1 = time.perf_counter()
    picks: dict[tuple[str, int, int], np.ndarray] = {}
    mosaic_diag = {}
    for seed in args.seeds:
        for name, sel in selectors(args, setup, seed).items():
            for b in args.budgets:
                picks[(name, b, seed)] = sel.select(pool, b).indices
        pilot_seeds = tuple(1000 * seed + k for k in range(args.pilot_seeds))
        mosaic = MosaicSelector(setup.oracle("val"), executor=executor, seeds=pilot_seeds)
        mosaic.fit(pool, max(args.budgets))
        for b in args.budgets:
            result = mosaic.select(pool, b, refit=False)
            picks[("mosaic", b, seed)] = result.indices
            mosaic_diag[f"seed{seed}_b{b}"] = {"allocation": result.allocation, "predicted_gain": result.predicted_gain}
        mosaic_diag[f"seed{seed}_fits"] = {n: f.to_dict() for n, f in mosaic.fits_.items()}
        mosaic_diag[f"seed{seed}_pilots"] = mosaic.pilots_
    timings["select_s"] = time.perf_counter() - t1

    # Retrain on base + picks and score on test; every run through the executor.
    t2 = time.perf_counter()
    keys = sorted(picks)
    tasks = [OracleTask(tuple(int(i) for i in picks[k]), None, k[2], tag=f"{k[0]}:b={k[1]}:seed={k[2]}") for k in keys]
    scores = executor.map(run_oracle_task(setup.oracle("test")), tasks)
    timings["train_eval_s"] = time.perf_counter() - t2
    per_run = {f"{m}|{b}|{s}": sc for (m, b, s), sc in zip(keys, scores)}

    methods = sorted({k[0] for k in keys}, key=lambda m: (m != "random", m))
    table = {}
    budgets0 = np.array([0] + args.budgets, dtype=float)
    for m in methods:
        rows = np.array([[per_run[f"{m}|{b}|{s}"] for s in args.seeds] for b in args.budgets])
        table[m] = {"mean": rows.mean(1).tolist(), "std": rows.std(1).tolist()}
    base = setup.base_scores["test"]
    random_curve = np.array([base] + table["random"]["mean"])
    for m in methods:
        curve = np.array([base] + table[m]["mean"])
        table[m]["brmr"] = brmr(budgets0, curve, budgets0, random_curve)[1:].tolist()
    return {
        "benchmark": "selection_mosaic",
        "command": "python " + " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "config": {k: v for k, v in vars(args).items() if k not in ("out",)},
        "split_sizes": {k: int(len(v)) for k, v in parts.items()},
        "base_epdms": {"val": setup.base_scores["val"], "test": base},
        "budgets": args.budgets,
        "table": table,
        "runs": per_run,
        "mosaic": mosaic_diag,
        "timings_s": timings,
    }


def _finite(value):
    """JSON-safe copy: numpy → Python, non-finite floats → None (e.g. BRMR 'never reached')."""
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_finite(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, np.integer):
        return int(value)
    return value


def write_outputs(result: dict, out_dir: str, name: str) -> dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = {"json": os.path.join(out_dir, name + ".json"), "md": os.path.join(out_dir, name + ".md"),
             "png": os.path.join(out_dir, name + ".png")}
    with open(paths["json"], "w") as fh:
        json.dump(_finite(result), fh, indent=1)
    budgets = result["budgets"]
    lines = [f"# {result['benchmark']}", "", f"Command: `{result['command']}`", "",
             f"Test EPDMS (x100, mean ± std over seeds {result['config']['seeds']}); base planner (budget 0): "
             f"{result['base_epdms']['test']:.2f}. BRMR = budget the method needs to reach random's EPDMS at that "
             "budget, relative to random's budget (< 1 is better; inf = never reached; n/a = random did not beat the base planner).", "",
             "| method | " + " | ".join(f"B={b} EPDMS" for b in budgets) + " | " + " | ".join(f"B={b} BRMR" for b in budgets) + " |",
             "|---" * (1 + 2 * len(budgets)) + "|"]
    for m, row in result["table"].items():
        eps = [f"{mu:.2f} ± {sd:.2f}" for mu, sd in zip(row["mean"], row["std"])]
        br = [("n/a" if x is None or np.isnan(x) else "inf" if not np.isfinite(x) else f"{x:.2f}") for x in row["brmr"]]
        lines.append(f"| {m} | " + " | ".join(eps) + " | " + " | ".join(br) + " |")
    with open(paths["md"], "w") as fh:
        fh.write("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, row in result["table"].items():
        x = [0] + budgets
        y = [result["base_epdms"]["test"]] + row["mean"]
        e = [0] + row["std"]
        ax.errorbar(x, y, yerr=e, marker="o", capsize=3, label=m)
    ax.set_xlabel("budget (scenes added to the base set)")
    ax.set_ylabel("test EPDMS (x100)")
    ax.set_title("Closed-loop EPDMS vs selection budget")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=110)
    plt.close(fig)
    return paths


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    result["outputs"] = write_outputs(result, args.out, args.name)
    print(json.dumps(_finite(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
