"""World ↔ real transfer: train a planner on world scenes, on world + real AV2 scenes, and score
each on held-out world scenes and on a held-out real log. Prints one JSON object.

    .venv/bin/python benchmarks/bench_io_transfer.py [--world 1500] [--steps 600] [--planner regression]

Real scenes are split **by log** (overlapping windows of one log are near-duplicates): the test
log is the sensor log named by ``--test-log`` (default: the first shared sensor log); the other
AV2 logs are for training. With the shared fixtures that is ~48 real test scenes and ~73 real
training scenes, so the real columns are a small-sample demonstration, not a benchmark.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "av2"))
    parser.add_argument("--world", type=int, default=1500, help="world scenes (train + test)")
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--planner", default="regression", choices=("regression", "scoring"))
    parser.add_argument("--test-log", default=None, help="log_id held out as the real test set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from autoscale_core.io import import_av2
    from autoscale_core.planning.evaluate import evaluate_baselines, evaluate_planner
    from autoscale_core.planning.train import train_planner
    from autoscale_core.scene import SceneBatch
    from autoscale_core.world import generate_world

    start = time.perf_counter()
    real, _ = import_av2(args.data)
    world = generate_world(args.world, seed=args.seed)
    sensor_logs = sorted(p.name for p in (Path(args.data) / "sensor_logs").iterdir())
    test_log = args.test_log or sensor_logs[0]
    real_test = real.subset(real.meta["log_id"] == test_log)
    real_train = real.subset(real.meta["log_id"] != test_log)
    rng = np.random.default_rng(args.seed)
    order = rng.permutation(len(world))
    cut = int(0.8 * len(world))
    world_train, world_test = world.subset(np.sort(order[:cut])), world.subset(np.sort(order[cut:]))
    mixed_train = SceneBatch.concatenate([world_train, real_train])

    def fit(batch):
        return train_planner(batch, planner=args.planner, seed=args.seed, steps=args.steps)

    trained = {"world": fit(world_train), "real+world": fit(mixed_train)}
    table = {}
    for train_name, planner in trained.items():
        for test_name, test in (("world", world_test), ("real", real_test)):
            result = evaluate_planner(planner, test)
            table[f"{train_name}->{test_name}"] = {k: round(float(np.mean(result.scores[k])), 4) for k in ("epdms", "nc", "dac", "ep") if k in result.scores}
    baselines = {}
    for test_name, test in (("world", world_test), ("real", real_test)):
        for name, result in evaluate_baselines(test).items():
            baselines[f"{name}->{test_name}"] = round(float(np.mean(result.scores["epdms"])), 4)
    print(json.dumps({
        "benchmark": "io_transfer", "planner": args.planner, "steps": args.steps,
        "train_scenes": {"world": len(world_train), "real+world": len(mixed_train), "real_part": len(real_train)},
        "test_scenes": {"world": len(world_test), "real": len(real_test), "real_test_log": test_log},
        "epdms": table, "baselines_epdms": baselines,
        "seconds": round(time.perf_counter() - start, 1), "python": platform.python_version(),
    }))


if __name__ == "__main__":
    main()
