"""Data-scaling sanity of planner training on the embedded world, plus a planner comparison table.

EPDMS of the regression planner (and optionally the scoring planner) vs training-set size,
mean ± std over seeds, on a fixed held-out world test set (its own world seed, so no overlap with
the training pool). Training sets are nested prefixes of one pool. Then a comparison table
(learned planners trained on the largest size, constant velocity, logged expert, rule planner)
on the test split and on the hard split (``autoscale_core.synthetic.build_hard_split`` built from
another held-out world batch).

Full run (lead; ~1 h on 2 busy cores):
    .venv/bin/python benchmarks/bench_planning_scaling.py --out scaling.json
Quick check while developing:
    .venv/bin/python benchmarks/bench_planning_scaling.py --quick
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscale_core.planning import comparison_table, evaluate_baselines, evaluate_planner, train_planner  # noqa: E402
from autoscale_core.world import generate_world  # noqa: E402

POOL_SEED, TEST_SEED, HARD_SEED = 1, 10_001, 20_001


def hard_split_scenes(num_scenes: int, seed: int = HARD_SEED):
    """Hard-split scenes from a held-out world batch, or None (with the reason) if unavailable."""
    try:
        from autoscale_core.synthetic import build_hard_split
    except ImportError as exc:  # the hook stays harmless while the synthetic area is missing
        return None, f"unavailable: {exc}"
    source = generate_world(num_scenes, seed=seed)
    hard = build_hard_split(source, seed=0, holdout_fraction=1.0, rare_fraction=1.0)
    return hard.scenes, hard.report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, 2 seeds (minutes)")
    parser.add_argument("--sizes", type=int, nargs="*", default=None)
    parser.add_argument("--seeds", type=int, default=None)
    parser.add_argument("--test-size", type=int, default=None)
    parser.add_argument("--hard-source", type=int, default=None, help="world scenes the hard split is built from")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--planners", nargs="*", default=["regression", "scoring"])
    parser.add_argument("--scaling-planner", default="regression")
    parser.add_argument("--scoring-scenes", type=int, default=4000,
                        help="cap on the scoring planner's training scenes in the table (reward targets cost "
                             "~32 closed-loop rollouts per scene)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    sizes = args.sizes or ([150, 600] if args.quick else [250, 1000, 4000, 16000])
    seeds = args.seeds or (2 if args.quick else 3)
    test_size = args.test_size or (300 if args.quick else 2000)
    hard_source = args.hard_source or (200 if args.quick else 2000)
    steps = args.steps or (300 if args.quick else None)
    train_kw = {} if steps is None else {"steps": steps}

    t0 = time.perf_counter()
    pool = generate_world(max(sizes), seed=POOL_SEED)
    test = generate_world(test_size, seed=TEST_SEED)
    gen_seconds = time.perf_counter() - t0

    curve = []
    for size in sizes:
        values, seconds = [], []
        for seed in range(seeds):
            model = train_planner(pool.subset(np.arange(size)), planner=args.scaling_planner, seed=seed, **train_kw)
            values.append(evaluate_planner(model, test).aggregates()["epdms"])
            seconds.append(model.metrics["train_seconds"])
        curve.append({"train_scenes": size, "epdms_mean": float(np.mean(values)), "epdms_std": float(np.std(values)),
                      "epdms_per_seed": values, "train_seconds_mean": float(np.mean(seconds))})
        print(json.dumps(curve[-1]), file=sys.stderr, flush=True)
    means = [c["epdms_mean"] for c in curve]
    gains = np.diff(means)
    checks = {
        "rises": bool(means[-1] > means[0]),
        "saturates": bool(len(gains) < 2 or gains[-1] < gains[0]),
    }

    largest = pool.subset(np.arange(max(sizes)))
    models = {}
    for p in args.planners:
        scenes_p = largest if p != "scoring" else largest.subset(np.arange(min(len(largest), args.scoring_scenes)))
        models[p] = train_planner(scenes_p, planner=p, seed=0, **train_kw)
    table_train_scenes = {p: m.metrics["num_train"] + m.metrics["num_val"] for p, m in models.items()}
    tables = {}
    hard, hard_report = hard_split_scenes(hard_source)
    for split, scenes in (("test", test), ("hard", hard)):
        if scenes is None or len(scenes) == 0:
            tables[split] = None
            continue
        results = {p: evaluate_planner(m, scenes, name=p) for p, m in models.items()}
        results.update(evaluate_baselines(scenes))
        tables[split] = comparison_table(results)
    print(json.dumps({
        "benchmark": "planning_scaling", "quick": args.quick, "scaling_planner": args.scaling_planner,
        "sizes": sizes, "seeds": seeds, "test_scenes": len(test), "hard_scenes": 0 if hard is None else len(hard),
        "hard_split": hard_report if isinstance(hard_report, str) else {k: v for k, v in hard_report.items()
                                                                         if isinstance(v, (int, float, str))},
        "train_steps": steps or "default", "table_train_scenes": table_train_scenes, "curve": curve, "checks": checks, "tables": tables,
        "world_generation_seconds": gen_seconds, "total_seconds": time.perf_counter() - t0,
    }, indent=1), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps({"curve": curve, "checks": checks, "tables": tables}, indent=1))


if __name__ == "__main__":
    main()
