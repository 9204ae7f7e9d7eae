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


def collisions(batch: SceneBatch, st, scene_of, cand_of, agents, agent_valid, config: ScorerConfig, index: LaneIndex):
    """NC, collision flag and TTC for (B, K1, 5) ego states → three (B,) arrays."""
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
    # Prune (trajectory, agent, step) entries that can neither overlap now nor at a TTC horizon:
    # the (projected) centres farther apart than the two half diagonals, on the (S, C, N, K1)
    # layout so log-replayed agents are broadcast, not copied. All box tests below run on the
    # entries left.
    S, C = agents.shape[0], B // agents.shape[0]
    e4 = st.reshape(S, C, 1, K1, 5)
    dx = agents[..., 0] - e4[..., 0]
    dy = agents[..., 1] - e4[..., 1]
    r_ego = 0.5 * np.hypot(ego_len, ego_wid).reshape(S, C, 1, 1)
    r_agent = 0.5 * np.hypot(a_len, a_wid)[:, None, :, None]
    reach2 = (r_ego + r_agent + 1e-3) ** 2  # margin: the box tests round differently
    near = dx * dx + dy * dy <= reach2
    if config.ttc_horizons:
        moving = e4[..., 3] >= config.stopped_speed
        dvx = agents[..., 3] * np.cos(agents[..., 2]) - e4[..., 3] * np.cos(e4[..., 2])
        dvy = agents[..., 3] * np.sin(agents[..., 2]) - e4[..., 3] * np.sin(e4[..., 2])
        for tau in config.ttc_horizons:
            px, py = dx + dvx * tau, dy + dvy * tau
            near |= (px * px + py * py <= reach2) & moving
    near &= agent_valid  # (S, C, N, K1)
    b, n, k = np.nonzero(near.reshape(B, N, K1))
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
