"""Planner training time and closed-loop evaluation throughput on the embedded world.

Measures: the default regression schedule on 10,000 world scenes (features + training, target
≤ 120 s on 2 CPU cores), the scoring planner's reward-target scoring + training, and evaluation
scenes/s (plan + EPDMS scoring, target ≥ 2,000) plus plan-only scenes/s. Evaluation is timed
twice: cold (the scorer's EP reference — the rule planner's best progress — computed for each
scene) and warm (that per-scene reference cached, as when several planners are evaluated on one
split).

    .venv/bin/python benchmarks/bench_planning_speed.py            # 10k scenes (lead)
    .venv/bin/python benchmarks/bench_planning_speed.py --quick    # 2k scenes
Prints one JSON document.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscale_core.planning import evaluate_planner, train_planner  # noqa: E402
from autoscale_core.planning.features import SceneFeaturizer  # noqa: E402
from autoscale_core.world import generate_world  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--train-scenes", type=int, default=None)
    parser.add_argument("--eval-scenes", type=int, default=None)
    parser.add_argument("--skip-scoring", action="store_true", help="skip the scoring planner")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    n_train = args.train_scenes or (2000 if args.quick else 10_000)
    n_eval = args.eval_scenes or (500 if args.quick else 2000)

    t = time.perf_counter()
    train = generate_world(n_train, seed=1)
    test = generate_world(n_eval, seed=10_001)
    gen_seconds = time.perf_counter() - t

    t = time.perf_counter()
    SceneFeaturizer().fit_transform(train)
    feature_seconds = time.perf_counter() - t

    t, c = time.perf_counter(), time.process_time()
    reg = train_planner(train, planner="regression", seed=0, device="cpu")
    reg_seconds, reg_cpu = time.perf_counter() - t, time.process_time() - c

    t = time.perf_counter()
    plans = reg.plan(test)
    plan_seconds = time.perf_counter() - t
    t = time.perf_counter()
    result = evaluate_planner(reg, test)
    eval_seconds_cold = time.perf_counter() - t  # includes the rule planner's EP reference per scene
    t = time.perf_counter()
    result = evaluate_planner(reg, test)
    eval_seconds = time.perf_counter() - t  # EP reference cached per scene (evaluating another planner)

    out = {
        "benchmark": "planning_speed", "quick": args.quick, "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(), "train_scenes": n_train, "eval_scenes": n_eval,
        "world_generation_seconds": gen_seconds, "features_seconds": feature_seconds,
        "regression_train_seconds": reg_seconds,
        # CPU seconds of this process: on a shared machine wall time includes other users' load.
        "regression_train_cpu_seconds": reg_cpu, "load_average_1min": os.getloadavg()[0], "regression_steps_run": reg.metrics["steps_run"],
        # A fixed step budget: the cost barely depends on the number of scenes (features are ~1 s/10k).
        "regression_train_target_met_120s": bool(reg_seconds <= 120),
        "plan_scenes_per_second": n_eval / plan_seconds,
        "eval_scenes_per_second_cold": n_eval / eval_seconds_cold,
        "eval_scenes_per_second": n_eval / eval_seconds,
        "eval_target_met_2000": bool(n_eval / eval_seconds >= 2000),
        "eval_epdms": result.aggregates()["epdms"], "plans_shape": list(plans.shape),
    }
    if not args.skip_scoring:
        t = time.perf_counter()
        scoring = train_planner(train, planner="scoring", seed=0, device="cpu")
        out["scoring_train_seconds_incl_reward_targets"] = time.perf_counter() - t
        t = time.perf_counter()
        train_planner(train, planner="scoring", seed=1, device="cpu")  # reward targets cached now
        out["scoring_train_seconds_cached_targets"] = time.perf_counter() - t
        out["scoring_eval_epdms"] = evaluate_planner(scoring, test).aggregates()["epdms"]
    print(json.dumps(out, indent=1), flush=True)


if __name__ == "__main__":
    main()
