"""Scoring throughput: vectorized EPDMS scorer vs the per-trajectory shapely reference.

Prints one JSON object. Two workloads on embedded-world scenes:

* ``one_scene_many``: 1 scene × 4,096 candidate trajectories (perturbed expert plans);
* ``many_scenes_one``: 10,000 scenes × 1 candidate (the logged expert, perturbed).

Each vectorized workload is timed twice: ``cold`` (first call: the logged expert of every scene is
simulated and scored for the human filter) and ``warm`` (a second call on the same scenes, as when
evaluating another planner or checkpoint: the expert's metrics come from the per-scene cache, the
candidates are fully re-simulated and re-scored). The many-scene workload is also timed as a fresh
process would score scenes stored after ``precompute_reference_progress`` (``stored_metadata``: EP
denominators and the expert's human-filter flags read from ``batch.meta``, nothing cached). The
reference implementation is timed on a subset (``--ref-candidates`` candidates of the one
scene, ``--ref-scenes`` scenes of the many) in the same run, and its per-trajectory time is
extrapolated to the full workload; the JSON says so. Both scorers run with the human filter (the
logged expert is simulated and scored as one extra trajectory per scene, in both) and the same
precomputed EP denominator (rule-planner reference progress, timed separately). Generating 10,000
world scenes takes minutes, so ``--base-scenes`` distinct scenes are generated and tiled (scene
ids made unique); the scorer does the full work for every copy.

Usage: ``.venv/bin/python benchmarks/bench_sim_scoring.py [--quick]``
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
from autoscale_core.sim.planner import RulePlanner, logged_expert  # noqa: E402
from autoscale_core.sim.reference import score_trajectories_reference  # noqa: E402
from autoscale_core.sim import scoring  # noqa: E402
from autoscale_core.sim.scoring import precompute_reference_progress, score_trajectories  # noqa: E402

STORED_KEYS = (scoring.REFERENCE_KEY, scoring.REFERENCE_FINGERPRINT_KEY, scoring.HUMAN_FAIL_KEY)
from autoscale_core.world import generate_world  # noqa: E402


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
    reps = int(np.ceil(num / len(batch)))
    out = SceneBatch.concatenate([batch] * reps).subset(np.arange(num))
    out.meta["scene_id"] = np.array([f"{sid}#{i}" for i, sid in enumerate(out.meta["scene_id"])], dtype=object)
    return out


def compare(batch, plans, reference, ref_index, ref_cands):
    """Time vectorized (all) and reference (subset); return dict."""
    t0, c0 = time.perf_counter(), time.process_time()
    fast = score_trajectories(batch, plans, reference_progress=reference)
    t_fast, cpu_fast = time.perf_counter() - t0, time.process_time() - c0
    t0, c0 = time.perf_counter(), time.process_time()
    warm = score_trajectories(batch, plans, reference_progress=reference)
    t_warm, cpu_warm = time.perf_counter() - t0, time.process_time() - c0
    assert np.array_equal(warm.epdms, fast.epdms)
    sub = batch.subset(ref_index)
    sub_plans = plans[ref_index][:, :ref_cands]
    t0, c0 = time.perf_counter(), time.process_time()
    slow = score_trajectories_reference(sub, sub_plans, reference_progress=reference[ref_index])
    t_slow, cpu_slow = time.perf_counter() - t0, time.process_time() - c0
    S, C = plans.shape[:2]
    n_fast = S * C
    n_slow = len(ref_index) * sub_plans.shape[1]
    # Per-trajectory cost incl. each scene's expert trajectory (human filter), in both scorers.
    slow_per_sim = t_slow / (len(ref_index) * (sub_plans.shape[1] + 1))
    slow_extrapolated = slow_per_sim * S * (C + 1)
    diff = {
        k: float(np.abs(getattr(fast, k)[ref_index][:, :ref_cands].astype(float) - getattr(slow, k).astype(float)).max())
        for k in ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "epdms", "pdms", "progress")
    }
    return {
        "scenes": S,
        "candidates": C,
        "vectorized_seconds": round(t_fast, 3),
        "vectorized_traj_per_s": round(n_fast / t_fast, 1),
        "reference_subset": {"scenes": len(ref_index), "candidates": int(sub_plans.shape[1]), "seconds": round(t_slow, 3)},
        "reference_traj_per_s": round(n_slow / t_slow, 2),
        "reference_seconds_extrapolated": round(slow_extrapolated, 1),
        "speedup": round(slow_extrapolated / t_fast, 1),
        "cpu_seconds": {"vectorized": round(cpu_fast, 3), "reference_subset": round(cpu_slow, 3)},
        "vectorized_traj_per_cpu_s": round(n_fast / cpu_fast, 1),
        "warm": {
            "seconds": round(t_warm, 3),
            "cpu_seconds": round(cpu_warm, 3),
            "traj_per_s": round(n_fast / t_warm, 1),
            "traj_per_cpu_s": round(n_fast / cpu_warm, 1),
        },
        "speedup_cpu_time": round(cpu_slow / (len(ref_index) * (sub_plans.shape[1] + 1)) * S * (C + 1) / cpu_fast, 1),
        "max_abs_diff": max(diff.values()),
        "max_abs_diff_by_metric": diff,
        "mean_epdms": float(fast.epdms.mean()),
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--candidates", type=int, default=4096)
    p.add_argument("--scenes", type=int, default=10_000)
    p.add_argument("--base-scenes", type=int, default=200)
    p.add_argument("--ref-candidates", type=int, default=16)
    p.add_argument("--ref-scenes", type=int, default=12)
    p.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    a = p.parse_args()
    if a.quick:
        a.candidates, a.scenes, a.base_scenes, a.ref_candidates, a.ref_scenes = 512, 400, 40, 4, 4
    t0 = time.perf_counter()
    base = generate_world(a.base_scenes, seed=7)
    t_world = time.perf_counter() - t0
    out = {
        "benchmark": "sim_scoring",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "numpy": np.__version__},
        "world_generation_seconds": round(t_world, 2),
        "notes": (
            "reference timed on a subset in the same run and extrapolated per trajectory "
            "(including each scene's expert trajectory for the human filter, in both); "
            "EP denominator (rule-planner reference progress) precomputed once and shared; "
            f"many-scene workload tiles {a.base_scenes} generated scenes; wall-clock and CPU "
            "(process) times both reported because the machine may be shared"
        ),
    }
    # 1 scene × many candidates.
    one = base.subset([0])
    plans = perturbed_plans(one, a.candidates, seed=0)
    ref = RulePlanner().reference_progress(one)
    out["one_scene_many"] = compare(one, plans, ref, np.array([0]), a.ref_candidates)
    # many scenes × 1 candidate.
    t0, c0 = time.perf_counter(), time.process_time()
    ref_base = precompute_reference_progress(base)  # stores ep_reference_m (+ fingerprint, expert flags)
    t_ref, cpu_ref = time.perf_counter() - t0, time.process_time() - c0
    stored = tile(base, a.scenes)  # copies carry the stored metadata (fingerprints ignore the id)
    plain_meta = {k: v for k, v in stored.meta.items() if k not in STORED_KEYS}
    many = stored.replace(meta=plain_meta)  # as if never precomputed: the expert is simulated
    ref = np.resize(ref_base, a.scenes)
    plans = perturbed_plans(many, 1, seed=1)
    rng = np.random.default_rng(0)
    out["many_scenes_one"] = compare(many, plans, ref, np.sort(rng.choice(a.scenes, a.ref_scenes, replace=False)), 1)
    # A fresh process scoring scenes from a store built with precompute_reference_progress:
    # nothing cached in memory, denominators and the expert's filter flags read from the metadata.
    scoring._EXPERT_CACHE.clear()
    scoring._PROGRESS_CACHE.clear()
    t0, c0 = time.perf_counter(), time.process_time()
    from_meta = score_trajectories(stored, plans)
    t_meta, cpu_meta = time.perf_counter() - t0, time.process_time() - c0
    same = score_trajectories(many, plans, reference_progress=ref)
    out["many_scenes_one"]["stored_metadata"] = {
        "seconds": round(t_meta, 3),
        "cpu_seconds": round(cpu_meta, 3),
        "traj_per_s": round(a.scenes / t_meta, 1),
        "traj_per_cpu_s": round(a.scenes / cpu_meta, 1),
        "identical_to_computed": bool(all(np.array_equal(getattr(from_meta, k), getattr(same, k)) for k in ("epdms", "pdms", "nc", "hc", "ep"))),
    }
    out["reference_progress"] = {
        "scenes": a.base_scenes,
        "seconds": round(t_ref, 2),
        "scenes_per_s": round(a.base_scenes / t_ref, 1),
        "scenes_per_cpu_s": round(a.base_scenes / cpu_ref, 1),
        "note": "precompute_reference_progress: RulePlanner proposals (15/scene) simulated and scored, plus the logged expert's filter flags; run once per scene at dataset creation and stored in meta (ep_reference_m, ep_reference_fp, human_fail_mask)",
    }
    out["speedup_target"] = 50
    out["speedup_met"] = bool(min(out["one_scene_many"]["speedup"], out["many_scenes_one"]["speedup"]) >= 50)
    out["scores_identical_1e-6"] = bool(max(out["one_scene_many"]["max_abs_diff"], out["many_scenes_one"]["max_abs_diff"]) <= 1e-6)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
