"""Benchmark: embedded-world generation speed. Prints one JSON object.

    .venv/bin/python benchmarks/bench_world.py --scenes 2000 --seed 0
    .venv/bin/python benchmarks/bench_world.py --scenes 16000   # scaling run

Single-threaded numpy is enforced (the figure is "scenes per second on one core").
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import collections  # noqa: E402
import json  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from autoscale_core.world import generate_world  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    generate_world(16, seed=args.seed + 1)  # warm-up (imports, first-call overheads)
    wall, cpu = time.perf_counter(), time.process_time()
    batch = generate_world(args.scenes, seed=args.seed)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    events = collections.Counter(e for tags in batch.meta["events"] for e in str(tags).split(";") if e)
    nbytes = sum(a.nbytes for a in batch.arrays().values())
    print(json.dumps({
        "benchmark": "world_generation",
        "scenes": len(batch),
        "seed": args.seed,
        "seconds": round(wall, 3),
        "cpu_seconds": round(cpu, 3),
        "scenes_per_s": round(len(batch) / wall, 1),
        "scenes_per_cpu_s": round(len(batch) / cpu, 1),
        "includes_validation": True,
        "cities": dict(collections.Counter(batch.meta["city"])),
        "topologies": dict(collections.Counter(batch.meta["topology"])),
        "maneuvers": dict(collections.Counter(batch.meta["maneuver"])),
        "events": dict(events),
        "scenes_with_event": int((batch.meta["events"] != "").sum()),
        "mean_valid_agents_t0": round(float(batch.agent_valid[:, :, batch.history_steps].sum(1).mean()), 1),
        "mean_valid_lanes": round(float(batch.lane_valid.sum(1).mean()), 1),
        "array_shapes": {"N": batch.agents.shape[1], "L": batch.lanes.shape[1], "Q": batch.route_polyline.shape[1]},
        "array_mb": round(nbytes / 2**20, 1),
        "ego_speed_mean": round(float(np.mean(batch.ego[:, batch.history_steps, 3])), 2),
    }))


if __name__ == "__main__":
    main()
