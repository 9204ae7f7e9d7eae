"""Vectorized traffic micro-simulation on a :class:`~.layout.Layout` (B scenes × V vehicles).

Vehicles move along paths with IDM car following (``autoscale_core.sim.idm``), stop for red
lights and crossing pedestrians, and change lanes with a MOBIL-like gap acceptance. Vehicle 0
of every scene is the ego; its parameters (speed preference, reaction lag, lateral sway) make it
a good-but-imperfect expert.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..scene import TL_GREEN, TL_RED, TL_YELLOW
from ..sim.idm import IDMParams, idm_acceleration
from .layout import DS, Layout

SIM_DT = 0.1
LOOKAHEAD = np.array([0.0, 8.0, 16.0, 30.0, 50.0, 75.0])
CURVE_DECEL = 1.5  # drivers slow for curves at this deceleration (m/s²)
YELLOW_TIME, ALL_RED_TIME = 3.0, 1.0
CAR, CYCLIST, STALLED = 0, 1, 2
CUTIN_DEADLINE = 2.5  # s after t0: a staged cut-in that found no chance by then is dropped
IDM = IDMParams(min_gap=2.0, comfort_decel=2.0, max_decel=8.0)


@dataclass
class Signals:
    """Fixed-time signal plan: groups get green in turn; ``phase`` (B,) offsets each scene."""

    num_groups: int
    green: float
    phase: np.ndarray

    def states(self, t: float) -> np.ndarray:
        """(B, G) TL codes at time t (s)."""
        slot_len = self.green + YELLOW_TIME + ALL_RED_TIME
        tau = np.mod(t + self.phase, slot_len * max(self.num_groups, 1))
        slot = np.floor(tau / slot_len)
        within = tau - slot * slot_len
        mine = slot[:, None] == np.arange(max(self.num_groups, 1))[None, :]
        code = np.where(within < self.green, TL_GREEN, np.where(within < self.green + YELLOW_TIME, TL_YELLOW, TL_RED))
        return np.where(mine, code[:, None], TL_RED).astype(np.int8)


class Tables:
    """Layout arrays used at every step."""

    def __init__(self, lay: Layout):
        self.xy = lay.path_xy
        self.heading = lay.path_heading
        self.adv = lay.path_adv
        self.length = lay.path_len
        self.max_index = lay.path_xy.shape[1] - 2
        self.stop_s = lay.stop_s
        self.stop_group = lay.stop_group
        self.pairs = np.stack([lay.pair_valid.astype(float), lay.pair_off, lay.pair_lo, lay.pair_hi], -1)
        self.pair_yield = lay.pair_yield
        self.has_yield = bool(np.isfinite(lay.pair_yield).any())
        self.lc_path, self.lc_off, self.lc_lo, self.lc_hi, self.lc_sep = (
            lay.lc_path, lay.lc_off, lay.lc_lo, lay.lc_hi, lay.lc_sep)

    def pose(self, path: np.ndarray, s: np.ndarray, d: np.ndarray):
        """World x, y, heading of points at arc length s (m) and lateral offset d (m, + left)."""
        idx = np.clip(s / DS, 0, self.max_index)
        i0 = idx.astype(np.int64)
        f = (idx - i0)[..., None]
        xy = self.xy[path, i0] * (1 - f) + self.xy[path, i0 + 1] * f
        h = self.heading[path, i0]
        xy = xy + d[..., None] * np.stack([-np.sin(h), np.cos(h)], -1)
        return xy, h

    def desired_speed(self, path: np.ndarray, s: np.ndarray) -> np.ndarray:
        """Advisory speed envelope: the speed from which every curve ahead is reachable comfortably."""
        idx = np.clip((s[..., None] + LOOKAHEAD) / DS, 0, self.max_index).astype(np.int64)
        adv = self.adv[path[..., None], idx]
        return np.sqrt(adv**2 + 2 * CURVE_DECEL * LOOKAHEAD).min(-1)


def pair_tables(tab: Tables, query_path: np.ndarray, path: np.ndarray):
    """(off, lo, hi) (B, V, V) for vehicle i on ``query_path`` vs vehicle j; unrelated pairs and
    i == j get an empty range (lo = +inf)."""
    pr = tab.pairs[query_path[:, :, None], path[:, None, :]]
    eye = np.eye(path.shape[1], dtype=bool)[None]
    lo = np.where((pr[..., 0] > 0) & ~eye, pr[..., 2], np.inf)
    return pr[..., 1].astype(np.float32), lo.astype(np.float32), pr[..., 3].astype(np.float32)


def relations(tab: Tables, path, s, length, active, query_path=None, query_s=None, pair_cache=None,
              follower: bool = True):
    """Leader (and follower) of every vehicle along its (query) path.

    Vehicle j is related to i when both sit inside the stretch their paths share (``pair_*``
    tables; merges include a look-back). Returns lead_gap (B, V) bumper gap (m, inf none),
    lead_idx, follow_gap, follow_idx (-1 none).
    """
    qp = path if query_path is None else query_path
    qs = s if query_s is None else query_s
    off, lo, hi = pair_cache if pair_cache is not None else pair_tables(tab, qp, path)
    s32, qs32, len32 = s.astype(np.float32), qs.astype(np.float32), length.astype(np.float32)
    sj = s32[:, None, :] - off  # float32: these (B, V, V) passes dominate the simulation
    si = qs32[:, :, None]
    dist = sj - si
    half = 0.5 * (len32[:, :, None] + len32[:, None, :])
    act = active[:, None, :]
    rows = np.arange(s.shape[0])[:, None]
    cols = np.arange(s.shape[1])[None, :]
    # j ahead of i: both inside the shared stretch <=> si >= lo and sj <= hi (as sj > si)
    ahead = np.where((dist > 0) & (si >= lo) & (sj <= hi) & act, dist - half, np.inf)
    lead_idx = ahead.argmin(-1)
    lead_gap = ahead[rows, cols, lead_idx]
    lead_idx = np.where(np.isfinite(lead_gap), lead_idx, -1)
    if not follower:
        return lead_gap, lead_idx, None, None
    behind = np.where((dist <= 0) & (sj >= lo) & (si <= hi) & act, -dist - half, np.inf)
    follow_idx = behind.argmin(-1)
    follow_gap = behind[rows, cols, follow_idx]
    follow_idx = np.where(np.isfinite(follow_gap), follow_idx, -1)
    return lead_gap, lead_idx, follow_gap, follow_idx


def _take(values: np.ndarray, idx: np.ndarray, fill: float) -> np.ndarray:
    out = values[np.arange(values.shape[0])[:, None], np.maximum(idx, 0)]
    return np.where(idx >= 0, out, fill)


@dataclass
class Crossers:
    """Pedestrians crossing roads: line start (B, C, 2), unit dir, length, speed, start time,
    and per path where the line crosses it: ``u_at`` (B, C, P) along the line, ``s_at`` along the path."""

    start: np.ndarray
    direction: np.ndarray
    length: np.ndarray
    speed: np.ndarray
    t_begin: np.ndarray
    valid: np.ndarray
    u_at: np.ndarray
    s_at: np.ndarray
    assertive: np.ndarray  # (B, C) bool: jaywalkers, who step out whatever the traffic

    def u(self, t: float) -> np.ndarray:
        return np.clip((t - self.t_begin) * self.speed, 0.0, self.length)


def crossing_tables(tab: Tables, start, direction, length):
    """Where each pedestrian line (B, C) crosses each path: (u_at, s_at) (B, C, P), inf if never."""
    step = 4
    pts = tab.xy[:, ::step]  # (P, M', 2)
    a, b = pts[:, :-1], pts[:, 1:]
    seg_s = np.arange(a.shape[1]) * step * DS
    in_path = seg_s[None, :] < tab.length[:, None]
    e = b - a  # (P, M', 2)
    p0 = start[:, :, None, None, :]  # (B, C, 1, 1, 2)
    r = direction[:, :, None, None, :]
    denom = r[..., 0] * e[..., 1] - r[..., 1] * e[..., 0]
    diff = a - p0
    with np.errstate(divide="ignore", invalid="ignore"):
        u = (diff[..., 0] * e[..., 1] - diff[..., 1] * e[..., 0]) / denom
        w = (diff[..., 0] * r[..., 1] - diff[..., 1] * r[..., 0]) / denom
    hit = (np.abs(denom) > 1e-9) & (u >= 0) & (u <= length[:, :, None, None]) & (w >= 0) & (w < 1) & in_path
    s_hit = np.where(hit, seg_s + w * step * DS, np.inf)
    k = s_hit.argmin(-1)
    s_at = np.take_along_axis(s_hit, k[..., None], -1)[..., 0]
    u_at = np.where(np.isfinite(s_at), np.take_along_axis(np.where(hit, u, np.inf), k[..., None], -1)[..., 0], np.inf)
    return u_at, s_at


@dataclass
class Fleet:
    """Vehicle state and per-vehicle parameters, all (B, V)."""

    path: np.ndarray
    s: np.ndarray
    v: np.ndarray
    d: np.ndarray
    d_bias: np.ndarray
    length: np.ndarray
    width: np.ndarray
    kind: np.ndarray
    active: np.ndarray
    speed_factor: np.ndarray
    v_max: np.ndarray
    headway: np.ndarray
    max_accel: np.ndarray
    tau: np.ndarray  # reaction lag (s)
    can_lc: np.ndarray
    brake_from: np.ndarray
    brake_to: np.ndarray
    brake_decel: np.ndarray
    cutin_time: np.ndarray
    cutin_side: np.ndarray


def simulate(tab: Tables, fleet: Fleet, signals: Signals, crossers: Crossers, *, t_begin: float,
             num_steps: int, record_every: int, record_from: int, ego_sway: np.ndarray, politeness: float,
             safe_decel: float, curb_side: float) -> dict:
    """Run the fleet; return recorded arrays (B, V, T) and per-scene flags."""
    f = fleet
    bsz, vsz = f.s.shape
    rows = np.arange(bsz)[:, None]
    acc_prev = np.zeros((bsz, vsz))
    cooldown = np.zeros((bsz, vsz))
    d_target = f.d_bias.copy()
    cutin_done = np.zeros(bsz, bool)
    rec = {k: [] for k in ("x", "y", "heading", "speed", "accel", "active", "path", "s", "lc")}
    lc_since_record = np.zeros((bsz, vsz), bool)
    pair_cache = pair_tables(tab, f.path, f.path)
    amp, omega, phi = ego_sway
    has_signals = bool((tab.stop_group >= 0).any())
    has_crossers = bool(crossers.valid.any())
    has_cutins = bool((f.cutin_side[:, 1] >= 0).any())
    has_lane_changes = bool(f.can_lc.any() | has_cutins)
    for k in range(num_steps + 1):
        t = t_begin + k * SIM_DT
        if k % 2 == 0:  # leaders are re-identified at 5 Hz; gaps are exact every step
            _, lead_idx, _, _ = relations(tab, f.path, f.s, f.length, f.active, pair_cache=pair_cache, follower=False)
            if tab.has_yield:
                yield_at = _give_way(tab, f, pair_cache)
        if k % 4 == 0:  # the curve-speed envelope changes slowly
            env = tab.desired_speed(f.path, f.s)
        li = np.maximum(lead_idx, 0)
        lead_s = f.s[rows, li] - pair_cache[0][rows, np.arange(vsz)[None, :], li]
        lead_ok = (lead_idx >= 0) & f.active[rows, li]
        lead_gap = np.where(lead_ok, lead_s - f.s - 0.5 * (f.length + f.length[rows, li]), np.inf)
        lead_v = np.where(lead_ok, f.v[rows, li], 0.0)
        if tab.has_yield:  # wait at the junction while priority traffic approaches
            gap_y = yield_at - f.s - 0.5 * f.length - 1.0
            # give way only when that is comfortable (else go: the priority stream adapts)
            comfy = (gap_y > f.v**2 / (2 * 3.0)) | (f.v < 2.0)
            closer = (gap_y > -0.5) & (gap_y < lead_gap) & comfy
            lead_gap = np.where(closer, np.maximum(gap_y, 0.0), lead_gap)
            lead_v = np.where(closer, 0.0, lead_v)
        if has_signals:  # red / yellow lights as a standing obstacle at the stop line
            lights = signals.states(t)
            group = tab.stop_group[f.path]
            state = lights[rows, np.maximum(group, 0)]
            to_stop = tab.stop_s[f.path] - f.s - 0.5 * f.length - 0.5
            can_stop = to_stop > f.v**2 / (2 * 3.0)
            halt = (group >= 0) & (to_stop > -0.3) & ((state == TL_RED) | ((state == TL_YELLOW) & can_stop))
            closer = halt & (to_stop < lead_gap)
            lead_gap = np.where(closer, np.maximum(to_stop, 0.0), lead_gap)
            lead_v = np.where(closer, 0.0, lead_v)
        if has_crossers:  # pedestrians on / about to step onto a crossing line within a path's lane
            u = crossers.u(t)  # (B, C)
            ahead = crossers.u_at - u[:, :, None]  # distance (m) the pedestrian still has to the lane centre
            near = (ahead < 6.0) & (ahead > -3.0)
            started = (t > crossers.t_begin - 1.5)[:, :, None] & (u < crossers.length)[:, :, None]
            blocking = near & started & crossers.valid[:, :, None]  # (B, C, P)
            s_at = np.where(blocking, crossers.s_at, np.inf)[rows, :, f.path]  # (B, V, C)
            gap_p = s_at - 2.5 - f.s[..., None] - 0.5 * f.length[..., None]
            # drivers yield when they can stop comfortably, or when someone is already in the lane;
            # a jaywalker (assertive) is always yielded to, however hard that is
            in_lane = ((np.abs(ahead) < 2.0) | crossers.assertive[:, :, None])[rows, :, f.path]
            comfy = gap_p > f.v[..., None] ** 2 / (2 * 3.0)
            gap_p = np.where((gap_p > -1.5) & (comfy | in_lane), np.maximum(gap_p, 0.0), np.inf).min(-1)
            closer = gap_p < lead_gap
            lead_gap = np.where(closer, gap_p, lead_gap)
            lead_v = np.where(closer, 0.0, lead_v)
        v_des = np.minimum(f.speed_factor * env, f.v_max)
        if has_cutins:
            v_des[:, 1] = _shadow_ego(tab, f, v_des[:, 1])
        acc = idm_acceleration(f.v, v_des, lead_gap, f.v - lead_v, IDM, time_headway=f.headway, max_accel=f.max_accel)
        braking = (t >= f.brake_from) & (t < f.brake_to)
        acc = np.where(braking, np.minimum(acc, -f.brake_decel), acc)
        acc = acc_prev + (acc - acc_prev) * np.minimum(SIM_DT / f.tau, 1.0)
        stalled = f.kind == STALLED
        acc = np.where(stalled, 0.0, acc)
        v_new = np.where(stalled, 0.0, np.maximum(f.v + acc * SIM_DT, 0.0))
        acc_eff = (v_new - f.v) / SIM_DT
        # record before moving (state at time t)
        if k >= record_from and (k - record_from) % record_every == 0:
            xy, h = tab.pose(f.path, f.s, f.d)
            d_dot = np.clip(1.0 * (d_target - f.d), -1.2, 1.2)
            rec["x"].append(xy[..., 0])
            rec["y"].append(xy[..., 1])
            rec["heading"].append(h + np.arctan2(d_dot, np.maximum(f.v, 2.0)))
            rec["speed"].append(f.v.copy())
            rec["accel"].append(acc_eff.copy())
            rec["active"].append(f.active.copy())
            rec["path"].append(f.path.copy())
            rec["s"].append(f.s.copy())
            rec["lc"].append(lc_since_record.copy())
            lc_since_record[:] = False
        acc_prev = acc_eff
        f.s = f.s + 0.5 * (f.v + v_new) * SIM_DT
        f.v = v_new
        d_target[:, 0] = f.d_bias[:, 0] + amp * np.sin(omega * t + phi)
        d_dot = np.clip(1.0 * (d_target - f.d), -1.2, 1.2)
        f.d = f.d + d_dot * SIM_DT
        f.active &= f.s < tab.length[f.path] - 1.0
        if has_lane_changes and k % 10 == 5:  # lane-change decisions once a second
            moved = _lane_changes(tab, f, t, acc, cooldown, d_target, politeness, safe_decel, curb_side)
            forced = _cut_ins(tab, f, t, cutin_done)
            moved |= forced
            if moved.any():
                lc_since_record |= moved
                redo = moved.any(1)
                fresh = pair_tables(tab, f.path[redo], f.path[redo])
                for old, new in zip(pair_cache, fresh):
                    old[redo] = new
    out = {k: np.stack(v, -1) for k, v in rec.items()}
    out["cutin_done"] = cutin_done
    return out


def _give_way(tab, f, pair_cache):
    """(B, V) junction s where each vehicle must wait (inf: none): a priority-stream vehicle is
    inside the junction or will reach it within ~2.5 s of this vehicle's position."""
    junction = tab.pair_yield[f.path[:, :, None], f.path[:, None, :]]  # (B, V, V), -inf: no duty
    sj = f.s[:, None, :] - pair_cache[0]
    si = f.s[:, :, None]
    rear = 2.5 * f.v[:, None, :] + 6.0
    must = np.isfinite(junction) & (si < junction) & (sj > si - rear) & (sj < junction + 4.0) & f.active[:, None, :]
    return np.where(must, junction, np.inf).min(-1)


def _lane_changes(tab, f, t, acc_now, cooldown, d_target, politeness, safe_decel, curb_side):
    """MOBIL-like: change when the own gain beats a threshold and the new follower stays safe."""
    bsz, vsz = f.s.shape
    settled = np.abs(f.d - d_target) < 0.3
    best_gain = np.full((bsz, vsz), 0.25)
    best_side = np.full((bsz, vsz), -1)
    for side in (0, 1):
        target = tab.lc_path[f.path, side]
        s_new = f.s + tab.lc_off[f.path, side]
        ok = (target >= 0) & f.active & f.can_lc & settled & (cooldown <= t)
        ok &= (f.s >= tab.lc_lo[f.path, side]) & (f.s <= tab.lc_hi[f.path, side] - 40.0)
        if not ok.any():
            continue
        q = np.where(ok, target, f.path)
        sel = ok.any(1)  # only scenes where someone may change lanes
        lead_gap = np.full((bsz, vsz), np.inf, np.float32)
        fol_gap = np.full((bsz, vsz), np.inf, np.float32)
        lead_idx = np.full((bsz, vsz), -1)
        fol_idx = np.full((bsz, vsz), -1)
        lead_gap[sel], lead_idx[sel], fol_gap[sel], fol_idx[sel] = relations(
            tab, f.path[sel], f.s[sel], f.length[sel], f.active[sel], q[sel], s_new[sel])
        lead_v = _take(f.v, lead_idx, 0.0)
        v_des = np.minimum(f.speed_factor * tab.desired_speed(q, s_new), f.v_max)
        acc_new = idm_acceleration(f.v, v_des, lead_gap, f.v - lead_v, IDM, time_headway=f.headway, max_accel=f.max_accel)
        vf = _take(f.v, fol_idx, 0.0)
        hw_f = _take(f.headway, fol_idx, 1.5)
        acc_f = idm_acceleration(vf, np.maximum(vf, 1.0), fol_gap, vf - f.v, IDM, time_headway=hw_f)
        acc_f = np.where(fol_idx >= 0, acc_f, 0.0)
        safe = (lead_gap > 2.0) & (fol_gap > 2.0) & (acc_f > -safe_decel)
        toward_curb = (side == 1) == (curb_side < 0)
        bias = 0.15 if toward_curb else -0.15
        gain = acc_new - acc_now - politeness * np.maximum(-acc_f, 0.0) + bias
        better = ok & safe & (gain > best_gain)
        best_gain = np.where(better, gain, best_gain)
        best_side = np.where(better, side, best_side)
    moved = best_side >= 0
    if moved.any():
        side = np.maximum(best_side, 0)
        b, i = np.nonzero(moved)
        sd = side[b, i]
        p = f.path[b, i]
        sep = tab.lc_sep[p, sd]
        f.s[b, i] = f.s[b, i] + tab.lc_off[p, sd]
        f.path[b, i] = tab.lc_path[p, sd]
        f.d[b, i] = f.d[b, i] + np.where(sd == 0, -sep, sep)
        cooldown[b, i] = t + 5.0
    return moved


def _shadow_ego(tab, f, v_des):
    """A staged cutter (vehicle 1) holds station a few metres ahead of the ego in the next lane."""
    side = np.maximum(f.cutin_side[:, 1], 0)
    p1, p0 = f.path[:, 1], f.path[:, 0]
    q = tab.lc_path[p1, side]
    s_new = f.s[:, 1] + tab.lc_off[p1, side]
    ego_s = f.s[:, 0] - tab.pairs[np.maximum(q, 0), p0, 1]
    gap = s_new - ego_s - 0.5 * (f.length[:, 1] + f.length[:, 0])
    wanted = np.maximum(f.v[:, 0] + np.clip(0.5 * (6.0 - gap), -4.0, 4.0), 0.0)
    pending = (f.cutin_side[:, 1] >= 0) & (q >= 0)
    return np.where(pending, wanted, v_des)


def _cut_ins(tab, f, t, done):
    """Scripted cut-ins: the marked vehicle moves into the ego's lane ahead of it, gap or not."""
    due = (f.cutin_time <= t) & (t <= CUTIN_DEADLINE) & (f.cutin_side >= 0) & f.active & ~done[:, None]
    moved = np.zeros_like(due)
    if not due.any():
        return moved
    for b, i in zip(*np.nonzero(due)):
        side = f.cutin_side[b, i]
        p = f.path[b, i]
        q = tab.lc_path[p, side]
        s_new = f.s[b, i] + tab.lc_off[p, side]
        if q < 0 or not tab.pairs[q, f.path[b, 0], 0]:
            continue
        ego_s = f.s[b, 0] - tab.pairs[q, f.path[b, 0], 1]
        gap = s_new - ego_s - 0.5 * (f.length[b, i] + f.length[b, 0])
        if not 1.5 < gap < 5.0 + 0.8 * f.v[b, 0]:  # only a close cut-in is the event; wait for one
            continue
        f.cutin_side[b, i] = -1
        f.d[b, i] += -tab.lc_sep[p, side] if side == 0 else tab.lc_sep[p, side]
        f.s[b, i], f.path[b, i] = s_new, q
        done[b] = True
        moved[b, i] = True
    return moved
