"""Unfiltered EPDMS sub-metrics of simulated trajectories: one pass over scenes × candidates.

:func:`raw_metrics` simulates the ego and the agents and computes every per-metric kernel (NC and
TTC in :mod:`.collisions`, map queries in :mod:`.lanes`, comfort in :mod:`.comfort`);
:func:`raw_metrics_chunked` bounds its memory. Aggregation into EPDMS is in :mod:`.aggregate`.
"""

from __future__ import annotations

import numpy as np

from ..geometry import box_corners
from ..scene import TL_RED, TL_UNKNOWN, SceneBatch, wrap_angle
from .agents import log_bounds, simulate_agents
from .collisions import collisions
from .comfort import comfort_ok
from .config import ScorerConfig
from .kinematics import simulate_ego
from .lanes import LaneIndex, points_in_scene_polygons, route_progress


def raw_metrics(
    batch: SceneBatch, traj: np.ndarray, reactive: bool, config: ScorerConfig
) -> dict[str, np.ndarray]:
    """Unfiltered metrics for (S, C, F, 3) trajectories → dict of (S, C) arrays.

    Keys: nc, dac, ddc, tlc, ttc, lk, hc, progress, collision, tl_unknown.
    """
    S, C = traj.shape[:2]
    dt = config.dt_sim
    states = simulate_ego(batch, traj, dt)  # (S, C, K1, 5)
    K1 = states.shape[2]
    agents, agent_valid = simulate_agents(batch, states, reactive, dt)  # (S, C|1, N, K1, ·)
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
    nc, collision, ttc = collisions(batch, st, scene_of, cand_of, agents, agent_valid, config, index, bounds)
    out.update(nc=nc, collision=collision, ttc=ttc)
    # DAC on footprint corners.
    corners = box_corners(st[..., :2], st[..., 2], ego_len[:, None], ego_wid[:, None]).reshape(-1, 2)
    corner_scene = np.repeat(scene_of, K1 * 4)
    on = index.on_lane(corner_scene, corners, shortcut=C >= 8)  # dense: whole-cell shortcut
    off = np.flatnonzero(~on)
    on[off] = points_in_scene_polygons(corner_scene[off], corners[off], batch)
    out["dac"] = on.reshape(B, K1 * 4).all(-1).astype(np.float64)

    # Centre-point lane queries for DDC, TLC, LK.
    centres = st[..., :2].reshape(-1, 2)
    centre_scene = np.repeat(scene_of, K1)
    pt, seg, dist = index.query(centre_scene, centres)
    lane = index.lane[seg]
    in_lane = dist <= index.half_width[seg]
    ego_heading = st[..., 2].reshape(-1)
    dheading = np.abs(wrap_angle(ego_heading[pt] - index.heading[seg]))
    step_of = pt % K1
    traj_of = pt // K1

    # DDC: most favourable projection of the step's displacement on a containing lane.
    disp = np.zeros_like(st[..., :2])
    disp[:, 1:] = np.diff(st[..., :2], axis=1)
    disp = disp.reshape(-1, 2)
    proj = (disp[pt] * index.tangent[seg]).sum(-1)
    best = np.full(len(centres), -np.inf)
    np.maximum.at(best, pt[in_lane], proj[in_lane])
    backwards = np.where(np.isfinite(best), np.maximum(-best, 0.0), 0.0).reshape(B, K1).sum(-1)
    out["ddc"] = np.where(backwards > config.ddc_zero, 0.0, np.where(backwards > config.ddc_half, 0.5, 1.0))

    # TLC.
    tl_index = np.minimum(
        batch.history_steps + np.floor(np.arange(K1) * dt / batch.dt + 1e-9).astype(int), batch.num_steps - 1
    )
    code = batch.lane_tl[scene_of[traj_of], lane, tl_index[step_of]]
    start_keys = np.unique(traj_of[in_lane & (step_of == 0)] * batch.lanes.shape[1] + lane[in_lane & (step_of == 0)])
    new_lane = ~np.isin(traj_of * batch.lanes.shape[1] + lane, start_keys)
    aligned_in = in_lane & (dheading < config.tl_alignment)
    red_new = np.zeros(len(centres), dtype=bool)
    red_new[pt[aligned_in & new_lane & (code == TL_RED)]] = True
    not_red = np.zeros(len(centres), dtype=bool)
    not_red[pt[aligned_in & (code != TL_RED)]] = True
    out["tlc"] = 1.0 - (red_new & ~not_red).reshape(B, K1).any(-1)
    unknown = np.zeros(B, dtype=bool)
    unknown[traj_of[aligned_in & new_lane & (code == TL_UNKNOWN)]] = True
    out["tl_unknown"] = unknown

    # LK.
    aligned = dheading < config.lk_alignment
    nearest = np.full(len(centres), np.inf)
    np.minimum.at(nearest, pt[aligned], dist[aligned])
    in_junction = np.zeros(len(centres), dtype=bool)
    in_junction[pt[in_lane & batch.lane_is_intersection[scene_of[traj_of], lane]]] = True
    drift = ((nearest > config.lk_threshold) & ~in_junction).reshape(B, K1)
    out["lk"] = (_longest_run(drift) * dt <= config.lk_duration + 1e-9).astype(np.float64)

    out["hc"] = comfort_ok(st, dt, config).astype(np.float64)
    # Every candidate of a scene starts at the same t0 state: project that once per scene.
    s0 = route_progress(batch, np.arange(S), states[:, 0, 0, :2])
    s1 = route_progress(batch, None, states[:, :, -1, :2]).reshape(-1)  # (S, C) against each scene's route
    out["progress"] = np.maximum(s1 - s0[scene_of], 0.0)
    return {k: v.reshape(S, C) for k, v in out.items()}


def _longest_run(flags: np.ndarray) -> np.ndarray:
    """(B, K) bool → (B,) length of the longest run of True."""
    run = np.zeros(flags.shape[0], dtype=np.int64)
    longest = np.zeros_like(run)
    for k in range(flags.shape[1]):  # over time steps only
        run = np.where(flags[:, k], run + 1, 0)
        longest = np.maximum(longest, run)
    return longest


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
