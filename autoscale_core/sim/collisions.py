"""NC (no at-fault collision) and TTC (time to collision) of the EPDMS scorer.

Oriented-box tests from :mod:`autoscale_core.geometry` on the sparse (trajectory, agent, step)
entries that can touch; the collision classes follow nuPlan (see :mod:`autoscale_core.sim.scoring`).
"""

from __future__ import annotations

import numpy as np

from ..geometry import box_corners, boxes_overlap
from ..scene import STATIC, SceneBatch
from . import kernels
from .agents import interpolate_log
from .config import ScorerConfig
from .lanes import LaneIndex, in_multiple_lanes


def _trig(states: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """cos and sin (...) of the headings of states (..., >=3): computed once, shared by the kernels."""
    return np.cos(states[..., 2]), np.sin(states[..., 2])


def _window_boxes(states: np.ndarray, trig, valid, tau_max: float, window: int) -> np.ndarray:
    """(4, R, nW) boxes lo_x, hi_x, lo_y, hi_y of the centres and their constant-velocity
    projections up to ``tau_max`` per window of ``window`` steps (:func:`.kernels.window_boxes`)
    for rows of states (R, K, >=4: x, y, heading, speed); ``trig`` (cos, sin) (R, K) of the
    headings; ``valid`` (R, K) or None (all)."""
    st = np.ascontiguousarray(states)
    valid = np.ones(st.shape[:2], dtype=bool) if valid is None else np.ascontiguousarray(valid)
    return kernels.window_boxes(st[..., 0], st[..., 1], *trig, st[..., 3], valid, float(tau_max), window)


def _boxes_close(a, b, reach) -> np.ndarray:
    """Boxes (lo_x, hi_x, lo_y, hi_y) a and b (broadcast) within ``reach`` of each other per axis
    (a necessary condition for two points of them being within ``reach``). Empty boxes (lo = +inf,
    hi = -inf) are never close."""
    with np.errstate(invalid="ignore"):  # inf - inf → NaN → not close
        close = np.abs((a[0] + a[1]) - (b[0] + b[1])) <= (a[1] - a[0]) + (b[1] - b[0]) + 2.0 * reach
        close &= np.abs((a[2] + a[3]) - (b[2] + b[3])) <= (a[3] - a[2]) + (b[3] - b[2]) + 2.0 * reach
    return close


_WINDOW = 8  # steps per broad-phase window for sparse candidate sets (41 steps → 6 windows)
_WINDOW_DENSE = 4  # ... and for dense ones (>= 8 per scene), whose trajectories crowd the same agents


def _agents_near_scene(st, ego_trig, agents, agent_valid, r_ego, r_agent, S, C, config: ScorerConfig,
                       agent_bounds=None):
    """First prune: which agents come near any trajectory of their scene at any time.

    Returns keep (S, N) bool and the trajectories' boxes of centres and constant-velocity
    projections per window of steps (4, B, nW) (see :func:`_window_boxes`). The agents' box
    over the horizon comes from their positions only (reductions without temporaries), or
    ``agent_bounds`` in log replay, grown by their largest speed × the longest TTC horizon (a
    projection moves an agent at most that far)."""
    B, K1, _ = st.shape
    C1 = agents.shape[1] if agents is not None else 1
    W = _WINDOW_DENSE if C >= 8 else _WINDOW
    tau_max = max((0.0,) + tuple(config.ttc_horizons))
    ego_box = _window_boxes(st, ego_trig, None, tau_max, W)  # (4, B, nW)
    ebox = tuple(v.reshape(S, C, -1) for v in ego_box)  # 4 × (S, C, nW)
    margin = 1e-3 + 1e-6  # the per-step test's margin + rounding
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
    return keep, ego_box


def _pair_entries(st, ego_trig, pair_scene, pair_agent, pair_states, pair_valid, ego_box, r_ego, r_agent, S, C,
                  config: ScorerConfig):
    """Per-window box test and per-step test (:func:`.kernels.near_entries`) on the (scene,
    agent) pairs left by :func:`_agents_near_scene` (ordered by scene, then agent): pair_states
    (P, C1, K1, 4) and pair_valid (P, C1, K1) their agents' states, ego_box (4, B, nW).
    Returns (b, p, k): trajectory, pair row, step."""
    K1 = st.shape[1]
    W = _WINDOW_DENSE if C >= 8 else _WINDOW
    tau_max = max((0.0,) + tuple(config.ttc_horizons))
    P, C1 = pair_states.shape[:2]
    pa = np.ascontiguousarray(pair_states)
    num_windows = -(-K1 // W)
    pair_trig = _trig(pa)  # (P, C1, K1) each
    abox = _window_boxes(pa.reshape(P * C1, K1, 4), tuple(v.reshape(P * C1, K1) for v in pair_trig),
                         pair_valid.reshape(P * C1, K1), tau_max, W).reshape(4, P, C1, num_windows)
    return kernels.near_entries(
        np.searchsorted(pair_scene, np.arange(S + 1)), C, W, ego_box, abox, r_ego, r_agent[pair_scene, pair_agent],
        st, *ego_trig, pa, np.ascontiguousarray(pair_valid), *pair_trig, np.asarray(config.ttc_horizons, dtype=np.float64),
        config.stopped_speed, 1e-3 + 1e-6,
    )


def _near_entries(st, agents, agent_valid, r_ego, r_agent, S, C, config: ScorerConfig, agent_bounds=None):
    """(b, n, k) of the (trajectory, agent, step) entries whose centres, now or projected at a
    TTC horizon, are within the two half diagonals (+1e-3 m), ordered by (b, n) then k.

    Exactly the entries of the dense per-step test over (S, C, N, K1); the box stages (agent
    vs all of its scene's trajectories over the horizon, then agent vs each trajectory) only skip
    entries that cannot pass it. ``agent_bounds``: optional (S, N) boxes and largest speeds of
    the agents over the horizon (:func:`.agents.log_bounds`, log replay)."""
    ego_trig = _trig(st)
    keep, ego_box = _agents_near_scene(st, ego_trig, agents, agent_valid, r_ego, r_agent, S, C, config, agent_bounds)
    ps, pn = np.nonzero(keep)
    b, p, k = _pair_entries(st, ego_trig, ps, pn, agents[ps, :, pn], agent_valid[ps, :, pn], ego_box, r_ego, r_agent,
                            S, C, config)
    return b, pn[p], k


def collisions(
    batch: SceneBatch, st, scene_of, cand_of, agents, agent_valid, config: ScorerConfig, index: LaneIndex, agent_bounds=None,
    ego_trig=None,
):
    """NC, collision flag and TTC for (B, K1, 5) ego states → three (B,) arrays.

    ``agents``, ``agent_valid``: (S, C|1, N, K1, 4) and (S, C|1, N, K1) from
    :func:`.agents.simulate_agents`, or both None in log replay: then ``agent_bounds``
    (:func:`.agents.log_bounds`) makes the first prune and only the agents it keeps are
    interpolated (:func:`.agents.interpolate_log` ``rows``). ``agent_bounds`` is optional otherwise.
    ``ego_trig``: optional (cos, sin) (B, K1) of the ego headings, when the caller has them.
    """
    B, K1, _ = st.shape
    N = batch.agents.shape[1]
    nc = np.ones(B)
    collision = np.zeros(B, dtype=bool)
    ttc = np.ones(B)
    if N == 0:
        return nc, collision, ttc
    S = len(batch)
    C = B // S
    cand = cand_of if agents is not None and agents.shape[1] > 1 else np.zeros_like(cand_of)
    ego_len = batch.ego_size[scene_of, 0].astype(np.float64)
    ego_wid = batch.ego_size[scene_of, 1].astype(np.float64)
    a_len = batch.agent_size[..., 0].astype(np.float64)
    a_wid = batch.agent_size[..., 1].astype(np.float64)
    # Only the (trajectory, agent, step) entries whose (projected) centres come within the two
    # half diagonals can overlap now or at a TTC horizon (box stages, then the per-step test, as
    # in :func:`_near_entries`). All box tests below run on those entries.
    r_ego = 0.5 * np.hypot(ego_len, ego_wid)  # (B,)
    r_agent = 0.5 * np.hypot(a_len, a_wid)  # (S, N)
    ego_trig = _trig(st) if ego_trig is None else ego_trig
    keep, ego_box = _agents_near_scene(st, ego_trig, agents, agent_valid, r_ego, r_agent, S, C, config, agent_bounds)
    ps, pn = np.nonzero(keep)
    if agents is None:  # log replay: interpolate only the agents kept
        pair_states, pair_valid = interpolate_log(batch, K1 - 1, config.dt_sim, rows=(ps, pn))
        pair_states, pair_valid = pair_states[:, None], pair_valid[:, None]
    else:
        pair_states, pair_valid = agents[ps, :, pn], agent_valid[ps, :, pn]
    b, p, k = _pair_entries(st, ego_trig, ps, pn, pair_states, pair_valid, ego_box, r_ego, r_agent, S, C, config)
    if len(b) == 0:
        return nc, collision, ttc
    n = pn[p]
    sb = scene_of[b]
    e = st.reshape(-1, 5)[b * K1 + k]  # (E, 5)
    a = pair_states[p, cand[b], k]  # (E, 4)
    el, ew = ego_len[b], ego_wid[b]
    al, aw = a_len[sb, n], a_wid[sb, n]
    # Box overlap and "behind" per entry, and TTC: constant-velocity projections from every step
    # with the ego moving, the agent not behind and the boxes not yet overlapping.
    overlap, behind, ttc_hit = kernels.entry_overlaps(
        b, e, a, el, ew, al, aw, np.asarray(config.ttc_horizons, dtype=np.float64), config.stopped_speed, B)
    ttc[ttc_hit] = 0.0
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
        c, s = np.cos(e[f, 2]), np.sin(e[f, 2])
        bumper = np.stack([e[f, 0] + 0.5 * el[f] * c, e[f, 1] + 0.5 * el[f] * s], -1)
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
    return nc, collision, ttc
