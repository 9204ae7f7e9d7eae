"""Unfiltered EPDMS sub-metrics of simulated trajectories: one pass over scenes × candidates.

:func:`raw_metrics` simulates the ego and the agents and computes every per-metric kernel (NC and
TTC in :mod:`.collisions`, map queries in :mod:`.lanes`, comfort in :mod:`.comfort`);
:func:`raw_metrics_chunked` bounds its memory. Aggregation into EPDMS is in :mod:`.aggregate`.
"""

from __future__ import annotations

import numpy as np

from ..scene import SceneBatch
from .agents import log_bounds, simulate_agents
from .collisions import collisions
from .comfort import comfort_ok
from .config import ScorerConfig
from .kinematics import simulate_ego_trig
from .lanes import LaneIndex, route_progress


def raw_metrics(
    batch: SceneBatch, traj: np.ndarray, reactive: bool, config: ScorerConfig
) -> dict[str, np.ndarray]:
    """Unfiltered metrics for (S, C, F, 3) trajectories → dict of (S, C) arrays.

    Keys: nc, dac, ddc, tlc, ttc, lk, hc, progress, collision, tl_unknown.
    """
    S, C = traj.shape[:2]
    dt = config.dt_sim
    # States (S, C, K1, 5) and the cos/sin of their headings (B, K1), shared by the collision
    # and DAC kernels below.
    states, trig = simulate_ego_trig(batch, traj, dt)
    K1 = states.shape[2]
    # Reactive agents (S, C, N, K1, ·); log replay: interpolated in `collisions`, only those near the ego.
    agents, agent_valid = simulate_agents(batch, states, True, dt) if reactive else (None, None)
    B = S * C
    st = states.reshape(B, K1, 5)
    scene_of = np.repeat(np.arange(S), C)
    cand_of = np.tile(np.arange(C), S)
    ego_len = batch.ego_size[scene_of, 0].astype(np.float64)
    ego_wid = batch.ego_size[scene_of, 1].astype(np.float64)
    out: dict[str, np.ndarray] = {}

    margin = 0.5 * np.hypot(ego_len, ego_wid).reshape(S, C).max(1)[:, None]
    xy = states[..., :2].reshape(S, -1, 2)
    bounds = np.concatenate([xy.min(1) - margin, xy.max(1) + margin], -1)  # (S, 4)
    # Dense candidate sets: small cells, so that most footprint corners fall in cells wholly
    # inside a lane corridor (no distance computation) and each cell lists few segments; sparse
    # ones: larger cells, fewer to build.
    pad = 0.0
    cell = config.grid_cell if C >= 8 else config.grid_cell_sparse
    index = LaneIndex(batch, config.lk_threshold, cell, pad=pad, bounds=bounds)

    # Log replay: the agents' bounds over the horizon from the 0.5 s log (collisions' first prune).
    bounds = None if reactive else log_bounds(batch, K1 - 1, dt)
    nc, collision, ttc = collisions(batch, st, scene_of, cand_of, agents, agent_valid, config, index, bounds, trig)
    out.update(nc=nc, collision=collision, ttc=ttc)
    # DAC on footprint corners (dense candidate sets: whole-cell shortcut).
    dac = index.drivable_area_ok(batch, scene_of, st, ego_len, ego_wid, shortcut=C >= 8, trig=trig)
    out["dac"] = dac.astype(np.float64)

    # Centre-point lane queries for DDC, TLC and LK, one compiled pass per trajectory.
    backwards, red, unknown, drift_steps = index.centre_lane_metrics(batch, scene_of, st, dt, config)
    out["ddc"] = np.where(backwards > config.ddc_zero, 0.0, np.where(backwards > config.ddc_half, 0.5, 1.0))
    out["tlc"] = 1.0 - red
    out["tl_unknown"] = unknown
    out["lk"] = (drift_steps * dt <= config.lk_duration + 1e-9).astype(np.float64)

    out["hc"] = comfort_ok(st, dt, config).astype(np.float64)
    # Every candidate of a scene starts at the same t0 state: project that once per scene.
    s0 = route_progress(batch, np.arange(S), states[:, 0, 0, :2])
    s1 = route_progress(batch, None, states[:, :, -1, :2]).reshape(-1)  # (S, C) against each scene's route
    out["progress"] = np.maximum(s1 - s0[scene_of], 0.0)
    return {k: v.reshape(S, C) for k, v in out.items()}


def raw_metrics_chunked(batch: SceneBatch, full: np.ndarray, reactive: bool, config: ScorerConfig) -> dict[str, np.ndarray]:
    """raw_metrics over scene and candidate chunks of at most ``config.chunk_trajectories``."""
    S, C1 = full.shape[:2]
    per = max(1, config.chunk_trajectories // C1)
    cand_chunk = max(1, min(C1, config.chunk_trajectories))
    parts: dict[str, list] = {}
    for s0 in range(0, S, per):
        sub = batch.subset(slice(s0, s0 + per))
        cols: dict[str, list] = {}
        for c0 in range(0, C1, cand_chunk):
            r = raw_metrics(sub, full[s0 : s0 + per, c0 : c0 + cand_chunk], reactive, config)
            for k, v in r.items():
                cols.setdefault(k, []).append(v)
        for k, v in cols.items():
            parts.setdefault(k, []).append(np.concatenate(v, axis=1))
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}
