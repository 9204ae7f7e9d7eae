"""NC (no at-fault collision) and TTC (time to collision) of the EPDMS scorer.

Oriented-box tests from :mod:`autoscale_core.geometry` on the sparse (trajectory, agent, step)
entries that can touch; the collision classes follow nuPlan (see :mod:`autoscale_core.sim.scoring`).
"""

from __future__ import annotations

import numpy as np

from ..geometry import box_corners, boxes_overlap, boxes_overlap_offset
from ..scene import STATIC, SceneBatch
from .config import ScorerConfig
from .lanes import LaneIndex, in_multiple_lanes

_WINDOW = 8  # steps per broad-phase window for sparse candidate sets (41 steps → 6 windows)
_WINDOW_DENSE = 4  # ... and for dense ones (>= 8 per scene), whose trajectories crowd the same agents


def _window_boxes(x, y, heading, speed, tau_max: float, starts: np.ndarray, valid=None, block: int = 1 << 16):
    """Axis-aligned boxes (lo_x, hi_x, lo_y, hi_y), each (..., windows), around the centres over
    each window of steps (last axis, windows beginning at ``starts``) and their constant-velocity
    projections up to ``tau_max`` (each projection lies on the segment from the centre to the
    one at ``tau_max``). Steps where ``valid`` is False are left out (empty box: lo = +inf).

    Computed in blocks of about ``block`` entries: fresh multi-megabyte temporaries cost more in
    page faults than the arithmetic on them."""
    lead, K = x.shape[:-1], x.shape[-1]
    x, y, heading, speed = (np.reshape(v, (-1, K)) for v in (x, y, heading, speed))
    if valid is not None:
        valid = np.reshape(valid, (-1, K))
    R = len(x)
    out = np.empty((4, R, len(starts)))
    rows = max(1, block // max(K, 1))
    for r0 in range(0, R, rows):
        r = slice(r0, r0 + rows)
        px, py = speed[r] * np.cos(heading[r]) * tau_max, speed[r] * np.sin(heading[r]) * tau_max
        lo_x, hi_x = x[r] + np.minimum(px, 0.0), x[r] + np.maximum(px, 0.0)
        lo_y, hi_y = y[r] + np.minimum(py, 0.0), y[r] + np.maximum(py, 0.0)
        if valid is not None:
            ok = valid[r]
            lo_x, lo_y = np.where(ok, lo_x, np.inf), np.where(ok, lo_y, np.inf)
            hi_x, hi_y = np.where(ok, hi_x, -np.inf), np.where(ok, hi_y, -np.inf)
        np.minimum.reduceat(lo_x, starts, -1, out=out[0, r])
        np.maximum.reduceat(hi_x, starts, -1, out=out[1, r])
        np.minimum.reduceat(lo_y, starts, -1, out=out[2, r])
        np.maximum.reduceat(hi_y, starts, -1, out=out[3, r])
    return tuple(o.reshape(lead + (len(starts),)) for o in out)


def _boxes_close(a, b, reach) -> np.ndarray:
    """Boxes (lo_x, hi_x, lo_y, hi_y) a and b (broadcast) within ``reach`` of each other per axis
    (a necessary condition for two points of them being within ``reach``). Empty boxes (lo = +inf,
    hi = -inf) are never close."""
    with np.errstate(invalid="ignore"):  # inf - inf → NaN → not close
        close = np.abs((a[0] + a[1]) - (b[0] + b[1])) <= (a[1] - a[0]) + (b[1] - b[0]) + 2.0 * reach
        close &= np.abs((a[2] + a[3]) - (b[2] + b[3])) <= (a[3] - a[2]) + (b[3] - b[2]) + 2.0 * reach
    return close


def _near_entries(st, agents, agent_valid, r_ego, r_agent, S, C, config: ScorerConfig, agent_bounds=None):
    """(b, n, k) of the (trajectory, agent, step) entries whose centres, now or projected at a
    TTC horizon, are within the two half diagonals (+1e-3 m), ordered by (b, n) then k.

    Exactly the entries of the dense per-step test over (S, C, N, K1); the two box stages (agent
    vs all of its scene's trajectories over the horizon, then per trajectory and window of
    steps) only skip entries that cannot pass it. ``agent_bounds``: optional (S, N) boxes and
    largest speeds of the agents over the horizon (:func:`.agents.log_bounds`, log replay)."""
    B, K1, _ = st.shape
    C1, N = agents.shape[1], agents.shape[2]
    W = _WINDOW_DENSE if C >= 8 else _WINDOW
    starts = np.arange(0, K1, W)
    tau_max = max((0.0,) + tuple(config.ttc_horizons))
    e = st.reshape(S, C, K1, 5)
    ebox = _window_boxes(e[..., 0], e[..., 1], e[..., 2], e[..., 3], tau_max, starts)  # 4 × (S, C, nW)
    margin = 1e-3 + 1e-6  # the per-step test's margin + rounding
    # Stage 1: agents near any trajectory of their scene at any time. The agent's box over the
    # horizon from its positions only (reductions without temporaries), grown by its largest
    # speed × the longest horizon (a projection moves it at most that far).
    if agent_bounds is not None and C1 == 1:
        lo_x, hi_x, lo_y, hi_y, speed = (v[:, None] for v in agent_bounds)
    else:
        red = dict(axis=-1, where=agent_valid)
        ax, ay, av = agents[..., 0], agents[..., 1], agents[..., 3]
        lo_x, hi_x = np.min(ax, initial=np.inf, **red), np.max(ax, initial=-np.inf, **red)
        lo_y, hi_y = np.min(ay, initial=np.inf, **red), np.max(ay, initial=-np.inf, **red)
        speed = np.maximum(np.max(av, initial=0.0, **red), -np.min(av, initial=0.0, **red))
    grow = speed * tau_max + 1e-6  # + rounding of the interpolation
    agent_box = (lo_x - grow, hi_x + grow, lo_y - grow, hi_y + grow)  # (S, C1, N)
    r_e = r_ego.reshape(S, C)
    if C1 == 1:
        scene_box = tuple(f(v, axis=(1, 2))[:, None, None] for f, v in zip((np.min, np.max) * 2, ebox))
        reach = r_e.max(1)[:, None, None] + r_agent[:, None] + margin
    else:  # reactive: agent states per trajectory
        scene_box = tuple(f(v, axis=2)[:, :, None] for f, v in zip((np.min, np.max) * 2, ebox))
        reach = r_e[:, :, None] + r_agent[:, None] + margin
    keep = _boxes_close(agent_box, scene_box, reach).any(1)  # (S, N)
    ps, pn = np.nonzero(keep)
    if len(ps) == 0:
        z = np.zeros(0, dtype=np.int64)
        return z, z, z
    # Stage 2: per (scene, agent) pair left × trajectory × window (P, C, nW), with the exact
    # boxes of the agent's centres and projections per window.
    pa = agents[ps, :, pn]  # (P, C1, K1, 4)
    abox = _window_boxes(pa[..., 0], pa[..., 1], pa[..., 2], pa[..., 3], tau_max, starts, agent_valid[ps, :, pn])
    close = _boxes_close(
        abox,  # (P, C1, nW), broadcast against the C trajectories
        tuple(v[ps] for v in ebox),
        (r_e[ps] + r_agent[ps, pn][:, None])[:, :, None] + margin,
    )
    p, c, w = np.nonzero(close.reshape(len(ps), C, -1))
    bb, nn = ps[p] * C + c, pn[p]
    # Expand the windows left into their steps.
    kk = w[:, None] * W + np.arange(W)
    inside = kk < K1
    bb = np.broadcast_to(bb[:, None], kk.shape)[inside]
    nn = np.broadcast_to(nn[:, None], kk.shape)[inside]
    kk = kk[inside]
    sb = bb // C
    cb = bb % C if C1 > 1 else np.zeros_like(bb)
    a_row = ((sb * C1 + cb) * N + nn) * K1 + kk
    valid = agent_valid.reshape(-1)[a_row]
    bb, nn, kk, a_row = bb[valid], nn[valid], kk[valid], a_row[valid]
    # The per-step test, elementwise as on the dense layout.
    ev = st.reshape(-1, 5)[bb * K1 + kk]
    av = agents.reshape(-1, 4)[a_row]
    dx = av[:, 0] - ev[:, 0]
    dy = av[:, 1] - ev[:, 1]
    reach2 = (r_ego[bb] + r_agent[bb // C, nn] + 1e-3) ** 2  # margin: the box tests round differently
    near = dx * dx + dy * dy <= reach2
    if config.ttc_horizons:
        moving = ev[:, 3] >= config.stopped_speed
        dvx = av[:, 3] * np.cos(av[:, 2]) - ev[:, 3] * np.cos(ev[:, 2])
        dvy = av[:, 3] * np.sin(av[:, 2]) - ev[:, 3] * np.sin(ev[:, 2])
        for tau in config.ttc_horizons:
            px, py = dx + dvx * tau, dy + dvy * tau
            near |= (px * px + py * py <= reach2) & moving
    bb, nn, kk = bb[near], nn[near], kk[near]
    order = np.argsort((bb * N + nn) * K1 + kk)
    return bb[order], nn[order], kk[order]


def collisions(
    batch: SceneBatch, st, scene_of, cand_of, agents, agent_valid, config: ScorerConfig, index: LaneIndex, agent_bounds=None
):
    """NC, collision flag and TTC for (B, K1, 5) ego states → three (B,) arrays. ``agent_bounds``:
    optional per-agent bounds over the horizon (:func:`.agents.log_bounds`; log replay only)."""
    B, K1, _ = st.shape
    N = agents.shape[2]
    nc = np.ones(B)
    collision = np.zeros(B, dtype=bool)
    ttc = np.ones(B)
    if N == 0:
        return nc, collision, ttc
    cand = cand_of if agents.shape[1] > 1 else np.zeros_like(cand_of)
    ego_len = batch.ego_size[scene_of, 0].astype(np.float64)
    ego_wid = batch.ego_size[scene_of, 1].astype(np.float64)
    a_len = batch.agent_size[..., 0].astype(np.float64)
    a_wid = batch.agent_size[..., 1].astype(np.float64)
    # Only the (trajectory, agent, step) entries whose (projected) centres come within the two
    # half diagonals can overlap now or at a TTC horizon (:func:`_near_entries`: box stages,
    # then the per-step test). All box tests below run on those entries.
    S, C = agents.shape[0], B // agents.shape[0]
    r_ego = 0.5 * np.hypot(ego_len, ego_wid)  # (B,)
    r_agent = 0.5 * np.hypot(a_len, a_wid)  # (S, N)
    b, n, k = _near_entries(st, agents, agent_valid, r_ego, r_agent, S, C, config, agent_bounds)
    if len(b) == 0:
        return nc, collision, ttc
    sb = scene_of[b]
    e = st.reshape(-1, 5)[b * K1 + k]  # (E, 5)
    a = agents.reshape(-1, 4)[((sb * agents.shape[1] + cand[b]) * N + n) * K1 + k]  # (E, 4)
    el, ew = ego_len[b], ego_wid[b]
    al, aw = a_len[sb, n], a_wid[sb, n]
    c, s = np.cos(e[:, 2]), np.sin(e[:, 2])
    ca, sa = np.cos(a[:, 2]), np.sin(a[:, 2])
    rx, ry = a[:, 0] - e[:, 0], a[:, 1] - e[:, 1]  # agent centre relative to the ego's
    overlap = boxes_overlap_offset(rx, ry, c, s, el, ew, ca, sa, al, aw)
    # Agent centre in the ego frame: behind the rear bumper = hit from behind.
    behind = rx * c + ry * s < -0.5 * el
    # First overlap of each (trajectory, agent) pair: entries are ordered by pair, then step.
    pair = b.astype(np.int64) * N + n
    o = np.flatnonzero(overlap)
    if len(o):
        first_of_pair = np.r_[True, pair[o][1:] != pair[o][:-1]]
        f = o[first_of_pair]  # entry of each colliding pair's first overlap
        collision[b[f]] = True
        # nuPlan's collision classes at the first overlap (see the module docstring).
        ego_moving = e[f, 3] >= config.stopped_speed
        agent_stopped = a[f, 3] < config.stopped_speed
        bumper = np.stack([e[f, 0] + 0.5 * el[f] * c[f], e[f, 1] + 0.5 * el[f] * s[f]], -1)
        front = boxes_overlap(bumper, e[f, 2], 0.0, ew[f], a[f, :2], a[f, 2], al[f], aw[f])
        side = ego_moving & ~agent_stopped & ~behind[f] & ~front
        lane_change = np.zeros(len(f), dtype=bool)
        if side.any():
            ps = f[side]
            corners = box_corners(e[ps, :2], e[ps, 2], el[ps], ew[ps])
            lane_change[side] = in_multiple_lanes(index, sb[ps], corners)
        at_fault = ego_moving & (agent_stopped | (~behind[f] & (front | lane_change)))
        value = np.where(batch.agent_type[sb[f], n[f]] == STATIC, 0.5, 0.0)
        np.minimum.at(nc, b[f][at_fault], value[at_fault])
    # TTC: constant-velocity projections from every step with the ego moving; a trajectory already
    # in danger needs no further test, and a projection whose centres are farther apart than the
    # two half diagonals cannot overlap (pruned before the box test).
    i = np.flatnonzero(~overlap & ~behind & (e[:, 3] >= config.stopped_speed))
    reach2 = ((0.5 * np.hypot(el, ew) + 0.5 * np.hypot(al, aw))[i] + 1e-6) ** 2
    e_i, a_i, traj_i = e[i], a[i], b[i]
    ve_x, ve_y = e_i[:, 3] * c[i], e_i[:, 3] * s[i]
    va_x, va_y = a_i[:, 3] * ca[i], a_i[:, 3] * sa[i]
    for tau in config.ttc_horizons:
        dx = (a_i[:, 0] + va_x * tau) - (e_i[:, 0] + ve_x * tau)
        dy = (a_i[:, 1] + va_y * tau) - (e_i[:, 1] + ve_y * tau)
        m = np.flatnonzero((dx * dx + dy * dy <= reach2) & (ttc[traj_i] > 0.0))
        j = i[m]
        hit = boxes_overlap_offset(dx[m], dy[m], c[j], s[j], el[j], ew[j], ca[j], sa[j], al[j], aw[j])
        ttc[traj_i[m[hit]]] = 0.0
    return nc, collision, ttc
