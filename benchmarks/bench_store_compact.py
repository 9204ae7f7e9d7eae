"""Compact scene store (format 2, int16 fixed point) vs the float32 format 1: bytes per scene,
load time of a random-order gather, and the EPDMS of the rule planner after a round trip.

    /work/lowcpu .venv/bin/python benchmarks/bench_store_compact.py --quick   # 200 scenes, 2k load
    .venv/bin/python benchmarks/bench_store_compact.py                        # 200 scenes, 20k load

Runs on distinct world scenes (``generate_world``) for the scores; the load-time store repeats
those scenes under new ids up to ``--load-size`` (tiled: real arrays, only the ids differ).
Writes ``benchmarks/results/store_compact[_quick].json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from autoscale_core.scene import SceneBatch  # noqa: E402
from autoscale_core.store import SceneStore  # noqa: E402


def round_trip(batch: SceneBatch, root: str, compact: bool | str) -> SceneBatch:
    store = SceneStore(root, compact=compact)
    store.append(batch)
    return SceneStore(root).load(list(batch.meta["scene_id"]))


def epdms_after_round_trip(batch: SceneBatch, folder: str, compact: bool | str = True) -> dict:
    """Rule-planner EPDMS (points, 0–100) on the original and on the round trip through a store
    written with ``compact`` (True: int16, format 2; "packed": format 3)."""
    from autoscale_core.sim.planner import RulePlanner
    from autoscale_core.sim.scoring import score_trajectories

    loaded = round_trip(batch, os.path.join(folder, f"epdms-store-{compact}"), compact=compact)
    plan = RulePlanner().plan(batch)
    plan_loaded = RulePlanner().plan(loaded)
    before = score_trajectories(batch, plan[:, None]).epdms[:, 0] * 100
    after = score_trajectories(loaded, plan_loaded[:, None]).epdms[:, 0] * 100
    same_plan = score_trajectories(loaded, plan[:, None]).epdms[:, 0] * 100
    diff = np.abs(after - before)
    return {"scenes": len(batch), "mean_epdms_before": float(before.mean()), "mean_epdms_after": float(after.mean()),
            "mean_abs_diff_points": float(diff.mean()), "max_abs_diff_points": float(diff.max()),
            "scenes_changed_over_0.1_points": int((diff > 0.1).sum()),
            "same_plan_max_abs_diff_points": float(np.abs(same_plan - before).max()),
            "max_plan_diff_m": float(np.abs(plan_loaded[..., :2] - plan[..., :2]).max())}


def load_time(batch: SceneBatch, size: int, folder: str, compact: bool) -> dict:
    root = os.path.join(folder, f"load-{compact}")
    store = SceneStore(root, compact=compact)
    for c in range(-(-size // len(batch))):
        part = batch.subset(np.arange(min(len(batch), size - c * len(batch))))
        part.meta["scene_id"] = np.array([f"r{c}-{s}" for s in part.meta["scene_id"]], dtype=object)
        store.append(part)
    ids = store.scene_ids()
    ids = [ids[i] for i in np.random.default_rng(0).permutation(len(ids))]
    times = []
    for _ in range(3):
        fresh = SceneStore(root)  # cold index: includes reading the manifests
        t = time.perf_counter()
        fresh.load(ids)
        times.append(time.perf_counter() - t)
    nbytes = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(root) for f in fs)
    shutil.rmtree(root)
    return {"load_s_median_of_3": float(np.median(times)), "bytes_per_scene": nbytes / size}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="2k-scene load store")
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--load-size", type=int, default=20_000)
    args = parser.parse_args()
    load_size = 2_000 if args.quick else args.load_size
    from autoscale_core.world import generate_world

    batch = generate_world(args.scenes, seed=0)
    folder = tempfile.mkdtemp(prefix="autoscale-store-compact-")
    try:
        result = {
            "benchmark": "bench_store_compact", "quick": args.quick,
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "ran_on": f"{args.scenes} distinct world scenes (seed 0); load store = them tiled to {load_size} ids",
            "loadavg_start": os.getloadavg(),
            "epdms_round_trip": epdms_after_round_trip(batch, folder),
            "load_float32_format1": load_time(batch, load_size, folder, compact=False),
            "load_int16_format2": load_time(batch, load_size, folder, compact=True),
            "loadavg_end": os.getloadavg(),
        }
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    out = os.path.join(ROOT, "benchmarks", "results", f"store_compact{'_quick' if args.quick else ''}.json")
    with open(out, "w") as f:
        json.dump(result, f, indent=2)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
