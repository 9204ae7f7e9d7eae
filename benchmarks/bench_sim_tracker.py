"""Tracker realism: history comfort (HC) of the *logged expert* driven by the ego tracker.

A smooth logged trajectory must stay smooth when tracked, otherwise HC (and the human filter)
penalise the tracker rather than the plan. For the logged expert of embedded-world scenes and of
the real Argoverse 2 scenes (if present) this prints, as one JSON object: the HC pass rate of the
tracked states, the failing HC criterion counts, how many scenes' *logged* accelerations already
leave HC's longitudinal bounds (failures the tracker cannot and should not hide), the tracking
error at the plan's poses, and the tracker's speed.

Usage: ``.venv/bin/python benchmarks/bench_sim_tracker.py [--scenes 300] [--seed 11] [--av2 PATH]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np
from scipy.signal import savgol_filter

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from autoscale_core.sim.kinematics import simulate_ego  # noqa: E402
from autoscale_core.sim.planner import logged_expert  # noqa: E402
from autoscale_core.sim.scoring import ScorerConfig, comfort_ok  # noqa: E402


def criteria(states: np.ndarray, cfg: ScorerConfig, dt: float = 0.1) -> dict[str, np.ndarray]:
    """(S,) bool per HC criterion: failed somewhere (same derivatives as ``comfort_ok``)."""
    heading = np.unwrap(states[..., 2], axis=-1)
    sg = lambda x, d: savgol_filter(x, cfg.hc_window, 2, deriv=d, delta=dt, axis=-1, mode="interp")  # noqa: E731
    lon_acc, yaw_rate, yaw_acc = sg(states[..., 4], 0), sg(heading, 1), sg(heading, 2)
    lat_acc = states[..., 3] * yaw_rate
    c, s = np.cos(heading), np.sin(heading)
    jerk = np.hypot(sg(lon_acc * c - lat_acc * s, 1), sg(lon_acc * s + lat_acc * c, 1))
    return {
        "lon_acc": ((lon_acc < cfg.hc_lon_acc[0]) | (lon_acc > cfg.hc_lon_acc[1])).any(-1),
        "lat_acc": (np.abs(lat_acc) > cfg.hc_lat_acc).any(-1),
        "yaw_rate": (np.abs(yaw_rate) > cfg.hc_yaw_rate).any(-1),
        "yaw_acc": (np.abs(yaw_acc) > cfg.hc_yaw_acc).any(-1),
        "lon_jerk": (np.abs(sg(states[..., 4], 1)) > cfg.hc_lon_jerk).any(-1),
        "jerk": (jerk > cfg.hc_jerk).any(-1),
    }


def evaluate(batch) -> dict:
    cfg = ScorerConfig()
    plans = logged_expert(batch)[:, None]
    simulate_ego(batch.subset([0]), plans[:1])  # warm-up (controller gains are computed once)
    t0, c0 = time.perf_counter(), time.process_time()
    states = simulate_ego(batch, plans)[:, 0]
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    hc = comfort_ok(states, 0.1, cfg)
    logged_acc = batch.ego[:, batch.history_steps :, 4]
    harsh_log = ((logged_acc > cfg.hc_lon_acc[1]) | (logged_acc < cfg.hc_lon_acc[0])).any(-1)
    err = np.linalg.norm(states[:, 5::5, :2] - plans[:, 0, :, :2], axis=-1)
    return {
        "scenes": len(batch),
        "expert_hc_pass_rate": round(float(hc.mean()), 4),
        "expert_hc_pass": int(hc.sum()),
        "failing_criterion_counts": {k: int(v.sum()) for k, v in criteria(states, cfg).items()},
        "scenes_with_logged_accel_outside_hc_bounds": int(harsh_log.sum()),
        "hc_fail_among_those": int((~hc & harsh_log).sum()),
        "tracking_error_m": {"median": round(float(np.median(err)), 4), "p95": round(float(np.percentile(err, 95)), 4)},
        "simulate_ego_traj_per_s": round(len(batch) / wall, 1),
        "simulate_ego_traj_per_cpu_s": round(len(batch) / cpu, 1),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scenes", type=int, default=300)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--av2", default="/work/shared/data/av2")
    a = p.parse_args()
    from autoscale_core.world import generate_world

    out = {"benchmark": "sim_tracker", "world": {"seed": a.seed, **evaluate(generate_world(a.scenes, seed=a.seed))}}
    if os.path.isdir(a.av2):
        from autoscale_core.io.av2 import import_av2

        batch, _ = import_av2(a.av2)
        out["av2"] = {"path": a.av2, **evaluate(batch)}
    out["notes"] = "HC on the tracked logged expert without the human filter (the filter would hide failures)"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
