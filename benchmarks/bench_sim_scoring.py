"""Scoring: vectorized EPDMS scorer vs a fair, NAVSIM-style reference, on whole workloads.

The reference (``autoscale_core.sim.reference_navsim``) scores one scene at a time with all its
proposals together, shapely 2 vectorized polygons and an STRtree occupancy map per time step, as
NAVSIM's PDM scorer does. Prints one JSON object (and writes it with ``--out``):

* ``equality``: ``--eq-scenes`` distinct embedded-world scenes × ``--eq-proposals`` perturbed
  expert plans scored by both; max |Δ| per sub-metric (target ≤ 1e-6);
* ``one_scene_many``: 1 scene × ``--proposals`` proposals, the whole workload timed in both;
* ``many_scenes_one``: ``--scenes`` distinct scenes × 1 proposal, the whole workload timed in both.

Nothing is extrapolated. The vectorized scorer is run once untimed before the timed runs of each
workload (JIT warm-up of its compiled kernels). Both scorers run with the human filter: the logged expert is simulated
and scored as one extra trajectory per scene in both (the vectorized scorer's per-scene expert
cache is cleared before each "cold" run; "warm" = the same scenes again with the expert's
metrics cached, as when evaluating a second planner). Both get the same precomputed EP
denominator (the rule planner's, not timed). Times are process CPU seconds (the machine is
shared, wall times are reported too); the vectorized time is the best of ``--repeats`` runs.

Usage: ``python benchmarks/bench_sim_scoring.py [--quick] [--out benchmarks/results/sim_scoring.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from autoscale_core.scene import SceneBatch  # noqa: E402
from autoscale_core.sim import scoring  # noqa: E402
from autoscale_core.sim.planner import RulePlanner, logged_expert  # noqa: E402
from autoscale_core.sim.reference_navsim import score_trajectories_navsim_style  # noqa: E402
from autoscale_core.sim.scoring import score_trajectories  # noqa: E402
from autoscale_core.world import generate_world  # noqa: E402

SUB_METRICS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "epdms", "pdms", "progress")
SPEEDUP_TARGET = 30.0
THROUGHPUT_TARGET = 5000.0  # proposals per CPU second


def perturbed_plans(batch: SceneBatch, num: int, seed: int) -> np.ndarray:
    """(S, num, 8, 3): the expert path re-timed (speed ×0.4…1.4) and shifted sideways (±3 m)."""
    rng = np.random.default_rng(seed)
    expert = logged_expert(batch)  # (S, 8, 3)
    S, F, _ = expert.shape
    start = batch.ego[:, batch.history_steps, :3].astype(np.float64)
    path = np.concatenate([start[:, None], expert], 1)  # (S, F+1, 3)
    seg = np.linalg.norm(np.diff(path[..., :2], axis=1), axis=-1)
    arclen = np.concatenate([np.zeros((S, 1)), np.cumsum(seg, 1)], 1)
    scale = rng.uniform(0.4, 1.4, (S, num, 1))
    target = arclen[:, None, 1:] * scale  # (S, num, F)
    plans = np.empty((S, num, F, 3))
    for i in range(S):  # setup only, not timed
        for k in range(3):
            plans[i, :, :, k] = np.interp(target[i], arclen[i], path[i, :, k])
        # beyond the expert's end, continue straight
        over = np.maximum(target[i] - arclen[i, -1], 0.0)
        plans[i, :, :, 0] += over * np.cos(path[i, -1, 2])
        plans[i, :, :, 1] += over * np.sin(path[i, -1, 2])
    t = np.arange(1, F + 1) * batch.dt
    ramp = np.clip(t / rng.uniform(1.0, 4.0, (S, num, 1)), 0, 1)
    lateral = rng.uniform(-3.0, 3.0, (S, num, 1)) * ramp * ramp * (3 - 2 * ramp)
    plans[..., 0] -= lateral * np.sin(plans[..., 2])
    plans[..., 1] += lateral * np.cos(plans[..., 2])
    return plans


def tile(batch: SceneBatch, num: int) -> SceneBatch:
    """``num`` scenes by repeating ``batch`` (scene ids made unique)."""
    reps = int(np.ceil(num / len(batch)))
    out = SceneBatch.concatenate([batch] * reps).subset(np.arange(num))
    out.meta["scene_id"] = np.array([f"{sid}#{i}" for i, sid in enumerate(out.meta["scene_id"])], dtype=object)
    return out


def _timed(fn):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    return out, time.perf_counter() - t0, time.process_time() - c0


def max_diff(fast, slow) -> dict[str, float]:
    return {k: float(np.abs(getattr(fast, k).astype(float) - getattr(slow, k).astype(float)).max()) for k in SUB_METRICS}


def compare(batch: SceneBatch, plans: np.ndarray, reference: np.ndarray, repeats: int) -> dict:
    """Both scorers on the whole workload; vectorized cold (best of ``repeats``) and warm."""
    cold, warm = [], []
    # Not timed: compiles the scorer's numba kernels for these inputs if this process has not yet
    # (the compiled code is also cached on disk; first use in a fresh environment ~15-20 s CPU).
    score_trajectories(batch, plans, reference_progress=reference)
    for _ in range(repeats):
        scoring._EXPERT_CACHE.clear()
        fast, wall, cpu = _timed(lambda: score_trajectories(batch, plans, reference_progress=reference))
        cold.append((cpu, wall))
        _, wall, cpu = _timed(lambda: score_trajectories(batch, plans, reference_progress=reference))
        warm.append((cpu, wall))
    slow, ref_wall, ref_cpu = _timed(lambda: score_trajectories_navsim_style(batch, plans, reference_progress=reference))
    (cpu_cold, wall_cold), (cpu_warm, wall_warm) = min(cold), min(warm)
    n = plans.shape[0] * plans.shape[1]
    diff = max_diff(fast, slow)
    return {
        "scenes": int(plans.shape[0]),
        "proposals_per_scene": int(plans.shape[1]),
        "vectorized_cold": {"cpu_s": round(cpu_cold, 4), "wall_s": round(wall_cold, 4), "proposals_per_cpu_s": round(n / cpu_cold, 1)},
        "vectorized_warm": {"cpu_s": round(cpu_warm, 4), "wall_s": round(wall_warm, 4), "proposals_per_cpu_s": round(n / cpu_warm, 1)},
        "reference_navsim_style": {"cpu_s": round(ref_cpu, 3), "wall_s": round(ref_wall, 3), "proposals_per_cpu_s": round(n / ref_cpu, 1)},
        "speedup_cpu_cold": round(ref_cpu / cpu_cold, 2),
        "speedup_cpu_warm": round(ref_cpu / cpu_warm, 2),
        "speedup_wall_cold": round(ref_wall / wall_cold, 2),
        "max_abs_diff": max(diff.values()),
        "max_abs_diff_by_metric": diff,
        "mean_epdms": round(float(fast.epdms.mean()), 4),
    }


def equality(batch: SceneBatch, plans: np.ndarray, reference: np.ndarray) -> dict:
    scoring._EXPERT_CACHE.clear()
    fast = score_trajectories(batch, plans, reference_progress=reference)
    slow = score_trajectories_navsim_style(batch, plans, reference_progress=reference)
    diff = max_diff(fast, slow)
    fails = {k: round(float((getattr(fast, k) < 1).mean()), 4) for k in ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc")}
    return {
        "scenes": int(plans.shape[0]),
        "proposals_per_scene": int(plans.shape[1]),
        "max_abs_diff": max(diff.values()),
        "max_abs_diff_by_metric": diff,
        "share_below_1_by_metric": fails,
        "identical_1e-6": bool(max(diff.values()) <= 1e-6),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--proposals", type=int, default=512)
    p.add_argument("--scenes", type=int, default=400)
    p.add_argument("--eq-scenes", type=int, default=200)
    p.add_argument("--eq-proposals", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    p.add_argument("--out", default=None, help="also write the JSON here")
    a = p.parse_args()
    if a.quick:
        a.proposals, a.scenes, a.eq_scenes, a.eq_proposals, a.repeats = 128, 50, 20, 8, 1
    world = generate_world(max(a.scenes, a.eq_scenes), seed=7)
    t0 = time.process_time()
    ep_reference = RulePlanner().reference_progress(world)  # shared by both scorers, not timed below
    out = {
        "benchmark": "sim_scoring",
        "command": "python benchmarks/bench_sim_scoring.py" + (" --quick" if a.quick else ""),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__,
                    "load_average_at_start": list(os.getloadavg())},
        "scenes": "embedded world, generate_world(seed=7); distinct scenes (none tiled)",
        "ep_reference_cpu_s": round(time.process_time() - t0, 2),
    }
    eq = world.subset(np.arange(a.eq_scenes))
    out["equality"] = equality(eq, perturbed_plans(eq, a.eq_proposals, seed=3), ep_reference[: a.eq_scenes])
    one = world.subset([0])
    out["one_scene_many"] = compare(one, perturbed_plans(one, a.proposals, seed=0), ep_reference[:1], a.repeats)
    many = world.subset(np.arange(a.scenes))
    out["many_scenes_one"] = compare(many, perturbed_plans(many, 1, seed=1), ep_reference[: a.scenes], a.repeats)
    ratios = [out[w]["speedup_cpu_cold"] for w in ("one_scene_many", "many_scenes_one")]
    rates = [out[w]["vectorized_cold"]["proposals_per_cpu_s"] for w in ("one_scene_many", "many_scenes_one")]
    out["targets"] = {
        "speedup_target": SPEEDUP_TARGET,
        "speedup_met": bool(min(ratios) >= SPEEDUP_TARGET),
        "throughput_target_per_cpu_s": THROUGHPUT_TARGET,
        "throughput_met": bool(min(rates) >= THROUGHPUT_TARGET),
        "identical_1e-6": bool(out["equality"]["identical_1e-6"] and max(out[w]["max_abs_diff"] for w in ("one_scene_many", "many_scenes_one")) <= 1e-6),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if a.out:
        with open(a.out, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
