"""Other agents during simulation: log replay (non-reactive) or reactive IDM.

Log replay interpolates the scene's 0.5 s agent arrays to the simulation step. In reactive mode
vehicles and cyclists keep their logged *path* (the polyline of their logged future positions,
extended straight past its end) but their speed along it is the smaller of what reproduces the log
(tracking their logged arc length) and IDM's acceleration towards the nearest leader in their
path, the simulated ego included. IDM is used with v0 = inf (only its interaction term: free-road
behaviour comes from the log) and a 1 s headway, so undisturbed traffic replays its log and a
follower brakes when the ego slows down or cuts in. Pedestrians, static objects and
others replay their log.
"""

from __future__ import annotations

import numpy as np

from ..scene import CYCLIST, VEHICLE, SceneBatch, wrap_angle
from . import kernels
from .idm import IDMParams, idm_acceleration


def interpolate_log(
    batch: SceneBatch, num_steps: int, dt_sim: float = 0.1, rows: tuple[np.ndarray, np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Logged agent states from t0 at ``dt_sim``.

    ``rows``: optional (scene, agent) index arrays (P,) to interpolate only those agents (the
    same values as the full result's rows).

    Returns:
        states (S, N, num_steps+1, 4) float64 x, y, heading, speed; valid (S, N, num_steps+1) bool
        (both bracketing log samples valid; beyond the log end invalid). With ``rows``: (P,
        num_steps+1, 4) and (P, num_steps+1).
    """
    u = batch.history_steps + np.arange(num_steps + 1) * dt_sim / batch.dt
    i0 = np.floor(u + 1e-9).astype(int)
    w = np.clip(u - i0, 0.0, 1.0)
    inside = i0 <= batch.num_steps - 1
    i0 = np.minimum(i0, batch.num_steps - 1)
    i1 = np.minimum(i0 + 1, batch.num_steps - 1)
    exact = w < 1e-9
    # Only the log samples from t0 on are needed; interpolation = one (K+1, T') matrix product.
    first = int(i0.min())
    last = int(i1.max()) + 1
    weights = np.zeros((num_steps + 1, last - first))
    np.add.at(weights, (np.arange(num_steps + 1), i0 - first), 1.0 - w)
    np.add.at(weights, (np.arange(num_steps + 1), i1 - first), w)
    if rows is None:
        log = batch.agents[:, :, first:last].astype(np.float64)  # (S, N, T', 4)
        agent_valid = batch.agent_valid
    else:  # one leading axis of P rows (as (P, 1, T', 4))
        log = batch.agents[rows[0], rows[1], first:last].astype(np.float64)[:, None]
        agent_valid = batch.agent_valid[rows[0], rows[1]][:, None]
    # Headings: unwrap along time (each step by its wrapped difference) before interpolating.
    h = log[..., 2]
    if h.shape[-1] > 1:
        h = np.concatenate([h[..., :1], h[..., :1] + np.cumsum(wrap_angle(np.diff(h, axis=-1)), -1)], -1)
    log[..., 2] = h
    S, N, Tl, _ = log.shape
    states = np.matmul(weights, log.reshape(S * N, Tl, 4)).reshape(S, N, num_steps + 1, 4)
    heading = states[..., 2]
    wrap = np.abs(heading) > np.pi  # only those: np.mod on every entry is slow
    heading[wrap] = wrap_angle(heading[wrap])
    valid = agent_valid[:, :, i0] & (agent_valid[:, :, i1] | exact) & inside
    states[~valid] = 0.0
    if rows is not None:
        return states[:, 0], valid[:, 0]
    return states, valid


def log_bounds(batch: SceneBatch, num_steps: int, dt_sim: float = 0.1) -> tuple[np.ndarray, ...]:
    """Per agent (S, N): a box (lo_x, hi_x, lo_y, hi_y) containing every valid state of
    :func:`interpolate_log` (``num_steps``, ``dt_sim``) and the largest |speed| among them, from
    the log samples those states interpolate (each valid state is a convex combination of valid
    samples, so these bounds hold up to rounding). An agent without valid samples gets an empty
    box (lo = +inf, hi = -inf) and speed 0."""
    u = batch.history_steps + np.arange(num_steps + 1) * dt_sim / batch.dt
    i0 = np.minimum(np.floor(u + 1e-9).astype(int), batch.num_steps - 1)
    i1 = np.minimum(i0 + 1, batch.num_steps - 1)
    first, last = int(i0.min()), int(i1.max()) + 1
    return tuple(kernels.log_bounds(batch.agents[:, :, first:last], batch.agent_valid[:, :, first:last]))


def _path_point(path: np.ndarray, arclen: np.ndarray, end_dir: np.ndarray, s: np.ndarray):
    """Position and heading at arc length ``s`` on polylines, extended straight past the end.

    path (..., M, 2), arclen (..., M) non-decreasing, end_dir (..., 2) unit, s (...,).
    """
    M = path.shape[-2]
    idx = np.clip((arclen <= s[..., None]).sum(-1) - 1, 0, M - 2)
    a = np.take_along_axis(path, idx[..., None, None].repeat(2, -1), -2)[..., 0, :]
    b = np.take_along_axis(path, (idx + 1)[..., None, None].repeat(2, -1), -2)[..., 0, :]
    sa = np.take_along_axis(arclen, idx[..., None], -1)[..., 0]
    sb = np.take_along_axis(arclen, (idx + 1)[..., None], -1)[..., 0]
    seg = np.maximum(sb - sa, 1e-9)
    frac = np.clip((s - sa) / seg, 0.0, 1.0)
    pos = a + (b - a) * frac[..., None]
    beyond = np.maximum(s - arclen[..., -1], 0.0)
    pos = pos + end_dir * beyond[..., None]
    d = b - a
    has_dir = (sb - sa) > 1e-6
    heading = np.where(has_dir, np.arctan2(d[..., 1], d[..., 0]), np.arctan2(end_dir[..., 1], end_dir[..., 0]))
    heading = np.where(beyond > 0, np.arctan2(end_dir[..., 1], end_dir[..., 0]), heading)
    return pos, heading


def simulate_agents(
    batch: SceneBatch,
    ego_states: np.ndarray,
    reactive: bool,
    dt_sim: float = 0.1,
    params: IDMParams = IDMParams(time_headway=1.0),
    lateral_margin: float = 0.3,
    detection_range: float = 60.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Agent states while the ego drives ``ego_states``.

    Args:
        ego_states: (S, C, K+1, 5) from :func:`kinematics.simulate_ego`.
        reactive: False → log replay (independent of the ego, C axis of size 1).

    Returns:
        agent_states (S, C|1, N, K+1, 4) x, y, heading, speed; valid (S, C|1, N, K+1).
    """
    S, C, K1, _ = ego_states.shape
    log, valid = interpolate_log(batch, K1 - 1, dt_sim)
    if not reactive or batch.agents.shape[1] == 0:
        return log[:, None], valid[:, None]
    N = log.shape[1]
    moving_type = np.isin(batch.agent_type, (VEHICLE, CYCLIST)) & valid[:, :, 0]  # (S, N)
    # Each agent's path = its logged 10 Hz positions (held after it disappears).
    last = np.maximum(np.cumsum(valid, -1) - 1, 0)
    path = np.take_along_axis(log[..., :2], last[..., None].repeat(2, -1), 2)  # (S, N, K1, 2)
    step = np.sqrt((np.diff(path, axis=2) ** 2).sum(-1))
    arclen = np.concatenate([np.zeros((S, N, 1)), np.cumsum(step, -1)], -1)  # (S, N, K1)
    last_heading = np.take_along_axis(log[..., 2], last[..., -1:], 2)[..., 0]
    end_dir = np.stack([np.cos(last_heading), np.sin(last_heading)], -1)  # (S, N, 2)
    length, width = batch.agent_size[..., 0].astype(np.float64), batch.agent_size[..., 1].astype(np.float64)
    ego_len, ego_wid = (batch.ego_size[:, i].astype(np.float64) for i in (0, 1))

    shape = (S, C, N)
    s = np.zeros(shape)
    v = np.broadcast_to(log[:, None, :, 0, 3], shape).copy()
    out = np.broadcast_to(log[:, None], (S, C, N, K1, 4)).copy()
    pb, ab, eb = (np.broadcast_to(x[:, None], (S, C) + x.shape[1:]) for x in (path, arclen, end_dir))
    react = moving_type[:, None, :]
    for k in range(K1 - 1):
        pos, heading = _path_point(pb, ab, eb, s)
        pos = np.where(react[..., None], pos, log[:, None, :, k, :2])
        heading = np.where(react, heading, log[:, None, :, k, 2])
        speed = np.where(react, v, log[:, None, :, k, 3])
        out[:, :, :, k] = np.concatenate([pos, heading[..., None], speed[..., None]], -1)
        # Others = the other agents now (valid) + the simulated ego.
        o_pos = np.concatenate([pos, ego_states[:, :, None, k, :2]], 2)  # (S, C, N+1, 2)
        o_head = np.concatenate([heading, ego_states[:, :, None, k, 2]], 2)
        o_speed = np.concatenate([speed, ego_states[:, :, None, k, 3]], 2)
        o_valid = np.concatenate([np.broadcast_to(valid[:, None, :, k], shape), np.ones((S, C, 1), bool)], 2)
        o_len = np.concatenate([length, ego_len[:, None]], 1)[:, None, None, :]
        o_wid = np.concatenate([width, ego_wid[:, None]], 1)[:, None, None, :]
        rel = o_pos[:, :, None, :, :] - pos[:, :, :, None, :]  # (S, C, N, N+1, 2)
        c, sn = np.cos(heading)[..., None], np.sin(heading)[..., None]
        ahead = rel[..., 0] * c + rel[..., 1] * sn
        lateral = -rel[..., 0] * sn + rel[..., 1] * c
        gap = ahead - 0.5 * (length[:, None, :, None] + o_len)
        is_leader = (
            o_valid[:, :, None, :]
            & (ahead > 0)
            & (np.abs(lateral) < 0.5 * (width[:, None, :, None] + o_wid) + lateral_margin)
            & (ahead < detection_range)
            & ~np.eye(N, N + 1, dtype=bool)[None, None]
        )
        gap = np.where(is_leader, gap, np.inf)
        lead = gap.argmin(-1)[..., None]
        lead_gap = np.take_along_axis(gap, lead, -1)[..., 0]
        lead_speed = np.take_along_axis(
            np.broadcast_to(o_speed[:, :, None, :], gap.shape), lead, -1
        )[..., 0] * np.cos(np.take_along_axis(np.broadcast_to(o_head[:, :, None, :], gap.shape), lead, -1)[..., 0] - heading)
        # Free driving reproduces the log: reach the logged arc length at the next step.
        target_speed = np.maximum((ab[..., k + 1] - s) / dt_sim, 0.0)
        a_free = np.clip((target_speed - v) / dt_sim, -params.max_decel, max(params.max_accel, 10.0))
        # IDM's interaction term only (v0 = inf): the log already encodes free-road behaviour.
        a_idm = idm_acceleration(v, np.inf, lead_gap, v - lead_speed, params)
        accel = np.where(np.isfinite(lead_gap), np.minimum(a_free, a_idm), a_free)
        v_new = np.maximum(v + accel * dt_sim, 0.0)
        s = np.where(react, s + v_new * dt_sim, s)
        v = np.where(react, v_new, v)
    pos, heading = _path_point(pb, ab, eb, s)
    last_state = np.concatenate([pos, heading[..., None], v[..., None]], -1)
    out[:, :, :, -1] = np.where(react[..., None], last_state, log[:, None, :, -1])
    out_valid = np.broadcast_to(valid[:, None], (S, C, N, K1)).copy()
    return out, out_valid
