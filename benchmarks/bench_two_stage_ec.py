"""Two-stage extended comfort (EC) in planner evaluation: does EC vary, and what does it cost?

Trains a regression planner on embedded-world scenes, then evaluates it and the baselines on
held-out world scenes twice: one-stage (EC = 1, as before) and two-stage (EC compares each plan
with the planner's next plan from the stage-2 starts; see ``autoscale_core.sim.two_stage``).
Prints one JSON object (mean and share < 1 of EC, EPDMS both ways, seconds); ``--out`` writes it.

Usage: ``python benchmarks/bench_two_stage_ec.py [--quick] [--out benchmarks/results/two_stage_ec.json]``
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscale_core.planning import evaluate_baselines, evaluate_planner, train_planner  # noqa: E402
from autoscale_core.world import generate_world  # noqa: E402


def summary(one, two) -> dict:
    a, b = one.aggregates(), two.aggregates()
    return {
        "epdms_one_stage": round(a["epdms"], 4), "epdms_two_stage": round(b["epdms"], 4),
        "ec_mean": round(b["ec"], 4), "ec_share_below_1": round(float((two.scores["ec"] < 1).mean()), 4),
        "ec_std_across_scenes": round(float(two.scores["ec"].std()), 4),
        "sub_scores_two_stage": {k: round(b[k], 4) for k in ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec")},
        "seconds_one_stage": round(one.seconds, 2), "seconds_two_stage": round(two.seconds, 2),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--train", type=int, default=2000)
    p.add_argument("--test", type=int, default=400)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.quick:
        a.train, a.test, a.steps = 600, 120, 400
    train = generate_world(a.train, seed=1)
    test = generate_world(a.test, seed=10_001)
    tic = time.perf_counter()
    planner = train_planner(train, planner="regression", seed=0, steps=a.steps)
    out = {"benchmark": "two_stage_ec", "command": "python benchmarks/bench_two_stage_ec.py" + (" --quick" if a.quick else ""),
           "train_scenes": a.train, "test_scenes": a.test, "train_steps": a.steps,
           "train_seconds": round(time.perf_counter() - tic, 1), "planners": {}}
    one = evaluate_planner(planner, test, two_stage=False)
    two = evaluate_planner(planner, test, two_stage=True)
    out["planners"]["regression"] = summary(one, two)
    names = ("constant_velocity", "logged_expert", "rule")
    ones, twos = evaluate_baselines(test, names, two_stage=False), evaluate_baselines(test, names, two_stage=True)
    for name in names:
        out["planners"][name] = summary(ones[name], twos[name])
    text = json.dumps(out, indent=2)
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")


if __name__ == "__main__":
    main()
