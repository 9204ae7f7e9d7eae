"""Scene generation: layout → traffic set-up → simulation → ego-centric SceneBatch (the last
step in :mod:`autoscale_core.world.assemble`)."""

from __future__ import annotations

import numpy as np

from ..scene import TL_GREEN, SceneBatch
from .assemble import FUTURE, HISTORY, OUT_DT, _assemble
from .cities import EVENTS, CityProfile
from .layout import DS, Layout
from .topologies import BUILDERS
from .traffic import CAR, SIM_DT, STALLED, Crossers, Fleet, Signals, Tables, crossing_tables, relations, simulate
from .traffic import CYCLIST as K_CYCLIST

WARMUP = 2.0  # s simulated before the 2 s history starts
MAX_VEHICLES = 30  # simulated vehicles per scene (ego included)
LANE_CHANGE_TOPOLOGIES = ("highway_merge", "urban_street")
# cut-ins fit few scenes (a lane beside the ego) and often find no gap: stage them more often there
EVENT_RATE_SCALE = {"cut_in": 4.0}


def build_layout(city: CityProfile, topology: str, rng: np.random.Generator) -> Layout:
    lay = BUILDERS[topology](city, rng)
    if city.left_hand:
        lay.mirror()
    lay.transform(rng.uniform(-np.pi, np.pi), rng.uniform(-2000, 2000, 2))
    return lay.finalize()


def generate_batch(city: CityProfile, topology: str, num: int, rng: np.random.Generator, *, log_id: str = "",
                   event_rate: float | None = None, force_event: str | None = None) -> tuple[SceneBatch, dict]:
    """``num`` scenes sharing one layout instance of ``topology`` in ``city``."""
    lay = build_layout(city, topology, rng)
    tab = Tables(lay)
    rate = city.event_rate if event_rate is None else event_rate
    t_begin = -(WARMUP + HISTORY * OUT_DT)
    ego = _choose_ego(lay, tab, city, num, rng, t_begin, need_neighbour=force_event == "cut_in")
    events = _choose_events(lay, tab, topology, ego, num, rate, force_event, rng)
    fleet = _spawn(lay, tab, city, topology, ego, events, rng, t_begin)
    signals = Signals(int(max(lay.stop_group.max() + 1, 1)), city.green_time, np.zeros(num))
    signals.phase = _signal_phase(lay, signals, ego, rng)
    crossers, walkers = _pedestrians(lay, tab, city, ego, events, rng, t_begin)
    _settle_speeds(tab, fleet, signals, t_begin)
    num_steps = int(round((WARMUP + (HISTORY + FUTURE) * OUT_DT) / SIM_DT))
    every = int(round(OUT_DT / SIM_DT))
    sway = (ego["sway_amp"], ego["sway_omega"], ego["sway_phase"])
    rec = simulate(tab, fleet, signals, crossers, t_begin=t_begin, num_steps=num_steps, record_every=every,
                   record_from=int(round(WARMUP / SIM_DT)), ego_sway=sway, politeness=city.politeness,
                   safe_decel=city.lane_change_safe_decel, curb_side=lay.curb_side)
    times = (np.arange(HISTORY + FUTURE + 1) - HISTORY) * OUT_DT
    batch = _assemble(lay, tab, city, fleet, rec, signals, crossers, walkers, events, times, rng, log_id)
    return batch, {"events": events}


# ---------------------------------------------------------------------------------- set-up
def _choose_ego(lay, tab, city, num, rng, t_begin, need_neighbour=False):
    weights = np.array([p.ego_weight for p in lay.paths])
    if need_neighbour:  # a forced cut-in needs a lane beside the ego from the start
        lo = np.array([p.ego_s[0] for p in lay.paths]) - 120.0
        beside = ((tab.lc_path >= 0) & (tab.lc_lo <= lo[:, None])).any(1)
        if (beside & (weights > 0)).any():
            weights = weights * beside
    path = rng.choice(len(weights), size=num, p=weights / weights.sum())
    lo = np.array([lay.paths[p].ego_s[0] for p in path])
    hi = np.array([lay.paths[p].ego_s[1] for p in path])
    s_t0 = rng.uniform(lo, hi)
    factor = np.clip(rng.normal(1.0, 0.05, num), 0.88, 1.08)
    v0 = factor * tab.desired_speed(path, s_t0) * rng.uniform(0.75, 1.0, num)
    s_start = np.maximum(s_t0 + v0 * t_begin, 1.0)
    return {
        "path": path, "s_t0": s_t0, "s": s_start, "v": v0, "factor": factor,
        "headway": np.clip(rng.normal(city.time_headway + 0.2, 0.15, num), 0.9, 2.2),
        "max_accel": np.clip(rng.normal(city.max_accel, 0.2, num), 0.9, 2.6),
        "tau": rng.uniform(0.25, 0.7, num),
        "bias": rng.normal(0.0, 0.12, num),
        "sway_amp": rng.uniform(0.02, 0.15, num), "sway_omega": 2 * np.pi / rng.uniform(5, 12, num),
        "sway_phase": rng.uniform(0, 2 * np.pi, num),
    }


def _choose_events(lay, tab, topology, ego, num, rate, force_event, rng):
    """Per scene, which rare events to stage (a dict event -> (B,) bool)."""
    side_ok = (tab.lc_path[ego["path"]] >= 0).any(-1) & (topology in LANE_CHANGE_TOPOLOGIES)
    allowed = {
        "cut_in": side_ok,
        "hard_brake": np.ones(num, bool),
        "jaywalker": np.full(num, topology in ("urban_street", "intersection", "rural_curve", "roundabout")),
        "stalled_vehicle": np.full(num, topology != "roundabout"),
    }
    events = {}
    for name in EVENTS:
        p = 1.0 if force_event == name else (0.0 if force_event else min(1.0, rate * EVENT_RATE_SCALE.get(name, 1.0)))
        events[name] = (rng.random(num) < p) & allowed[name]
    # one staged event per scene at most (the first drawn wins): keeps causes readable
    taken = np.zeros(num, bool)
    for name in EVENTS:
        events[name] &= ~taken
        taken |= events[name]
    return events


def _vehicle_sizes(rng, shape, truck_share=0.08):
    truck = rng.random(shape) < truck_share
    length = np.where(truck, rng.uniform(8.0, 12.0, shape), rng.uniform(4.2, 5.1, shape))
    width = np.where(truck, rng.uniform(2.4, 2.6, shape), rng.uniform(1.8, 2.0, shape))
    return length, width


def _spawn(lay, tab, city, topology, ego, events, rng, t_begin):
    """Place background traffic near the ego plus the staged event vehicles."""
    num = len(ego["path"])
    cand_path, cand_s, cand_kind = [], [], []
    scale = 6.0 + 40.0 * (1.0 - city.density)
    for pid, piece in enumerate(lay.pieces):
        if not piece.spawn:
            continue
        owners = [p for p, info in enumerate(lay.paths) if pid in info.pieces]
        if not owners:
            continue
        length = piece.num_samples * DS
        k = int(length / 7.0) + 1
        gaps = 7.0 + city.time_headway * piece.limit * rng.uniform(0.4, 1.0, (num, k)) + rng.exponential(scale, (num, k))
        pos = rng.uniform(0, gaps[:, :1]) + np.cumsum(gaps, 1) - gaps[:, :1]
        owner = np.array(owners)[rng.integers(len(owners), size=(num, k))]
        start = np.array([lay.piece_start[p][pid] for p in range(len(lay.paths)) if pid in lay.paths[p].pieces])
        start = start[np.searchsorted(np.array(owners), owner)] * DS
        s = np.where(pos < length - 3.0, start + pos, -1.0)
        cand_path.append(owner)
        cand_s.append(s)
        cand_kind.append(np.full((num, k), CAR))
    if topology in ("urban_street", "rural_curve", "intersection"):  # cyclists near the curb
        curb = np.array([p for p, info in enumerate(lay.paths) if info.curb_lane])
        for _ in range(2):
            p = curb[rng.integers(len(curb), size=(num, 1))]
            s = rng.uniform(0.0, tab.length[p] - 60.0)
            present = rng.random((num, 1)) < city.cyclist_rate
            idx = np.clip(s / DS, 0, tab.max_index).astype(int)
            on_piece_ok = ~np.array([[lay.pieces[_piece_at(lay, pp, ii)].intersection for pp, ii in zip(pr, ir)]
                                     for pr, ir in zip(p, idx)])
            cand_path.append(p)
            cand_s.append(np.where(present & on_piece_ok, s, -1.0))
            cand_kind.append(np.full((num, 1), K_CYCLIST))
    path = np.concatenate(cand_path, 1)
    s = np.concatenate(cand_s, 1)
    kind = np.concatenate(cand_kind, 1)
    # keep candidates near the ego's t0 position or its start
    xy, _ = tab.pose(path, np.maximum(s, 0), np.zeros_like(s))
    e_t0, _ = tab.pose(ego["path"], ego["s_t0"], np.zeros(num))
    e_0, _ = tab.pose(ego["path"], ego["s"], np.zeros(num))
    dist = np.minimum(np.linalg.norm(xy - e_t0[:, None], axis=-1), np.linalg.norm(xy - e_0[:, None], axis=-1) + 40)
    dist = np.where((s >= 0) & (dist < 170.0), dist, np.inf)
    n_staged = 1
    keep = np.argsort(dist, 1, kind="stable")[:, : MAX_VEHICLES - 1 - n_staged]
    path = np.take_along_axis(path, keep, 1)
    s = np.take_along_axis(s, keep, 1)
    kind = np.take_along_axis(kind, keep, 1)
    valid = np.isfinite(np.take_along_axis(dist, keep, 1))
    # staged vehicle (index 1): a leader that will brake, a cutter-in, or a stalled car
    st_path, st_s, st_kind, st_valid = _staged(lay, tab, ego, events, rng, t_begin)
    v_all = 1 + 1 + path.shape[1]
    full = lambda val, dt=float: np.full((num, v_all), val, dtype=dt)  # noqa: E731
    P = np.concatenate([ego["path"][:, None], st_path[:, None], path], 1)
    S = np.concatenate([ego["s"][:, None], st_s[:, None], s], 1)
    K = np.concatenate([np.full((num, 1), CAR), st_kind[:, None], kind], 1)
    active = np.concatenate([np.ones((num, 1), bool), st_valid[:, None], valid], 1)
    length, width = _vehicle_sizes(rng, (num, v_all))
    length[:, 0], width[:, 0] = rng.uniform(4.6, 5.0, num), rng.uniform(1.85, 1.95, num)
    length = np.where(K == K_CYCLIST, 1.8, length)
    width = np.where(K == K_CYCLIST, 0.7, width)
    length[:, 1] = np.where(st_kind == STALLED, np.minimum(length[:, 1], 5.0), length[:, 1])
    factor = np.clip(rng.normal(1.0, 0.08, (num, v_all)), 0.75, 1.2)
    factor[:, 0] = ego["factor"]
    v_max = np.where(K == K_CYCLIST, rng.uniform(4.0, 7.5, (num, v_all)), 60.0)
    headway = np.clip(rng.normal(city.time_headway, 0.25, (num, v_all)), 0.7, 2.5)
    headway[:, 0] = ego["headway"]
    max_accel = np.clip(rng.normal(city.max_accel, 0.3, (num, v_all)), 0.8, 3.0)
    max_accel[:, 0] = ego["max_accel"]
    tau = rng.uniform(0.15, 0.4, (num, v_all))
    tau[:, 0] = ego["tau"]
    curb = lay.curb_side
    edge = 0.5 * lay.pieces[0].width - 0.6  # cyclists ride near the curb-side lane edge
    d_bias = np.where(K == K_CYCLIST, curb * edge, rng.normal(0, 0.1, (num, v_all)))
    d_bias[:, 0] = ego["bias"]
    fleet = Fleet(
        path=P.astype(np.int64), s=S, v=np.zeros((num, v_all)), d=d_bias.copy(), d_bias=d_bias,
        length=length, width=width, kind=K, active=active, speed_factor=factor, v_max=v_max, headway=headway,
        max_accel=max_accel, tau=tau, can_lc=(K == CAR) & (topology in LANE_CHANGE_TOPOLOGIES),
        brake_from=full(np.inf), brake_to=full(np.inf), brake_decel=full(0.0),
        cutin_time=full(np.inf), cutin_side=full(-1, np.int64),
    )
    fleet.v = factor * tab.desired_speed(fleet.path, fleet.s) * rng.uniform(0.8, 1.0, (num, v_all))
    fleet.v = np.minimum(fleet.v, v_max)
    fleet.v[:, 0] = ego["v"]
    b = np.arange(num)
    hb = events["hard_brake"] & st_valid
    fleet.brake_from[b[hb], 1] = rng.uniform(-0.8, 1.5, hb.sum())
    fleet.brake_to[b[hb], 1] = fleet.brake_from[b[hb], 1] + rng.uniform(1.5, 3.0, hb.sum())
    fleet.brake_decel[b[hb], 1] = rng.uniform(4.5, 7.0, hb.sum())
    fleet.v[b[hb], 1] = ego["v"][hb]
    ci = events["cut_in"] & st_valid
    fleet.cutin_time[b[ci], 1] = rng.uniform(-0.5, 1.2, ci.sum())
    fleet.cutin_side[b[ci], 1] = _side_towards_ego(tab, st_path[ci], ego["path"][ci])
    # a little slower than the ego, which closes in until the gap is tight enough to cut in
    fleet.speed_factor[b[ci], 1] = ego["factor"][ci] * rng.uniform(0.92, 0.99, ci.sum())
    fleet.v[b[ci], 1] = ego["v"][ci]
    fleet.can_lc[b[ci], 1] = False
    st = st_kind == STALLED
    fleet.v[st, 1] = 0.0
    fleet.can_lc[:, 1] &= ~st
    _drop_overlaps(tab, fleet)
    return fleet


def _piece_at(lay, path, index):
    info = lay.paths[path]
    starts = [lay.piece_start[path][pid] for pid in info.pieces]
    return info.pieces[int(np.searchsorted(starts, index, side="right") - 1)]


def _side_towards_ego(tab, from_path, ego_path):
    return np.where(tab.lc_path[from_path, 0] == ego_path, 0, 1)


def _staged(lay, tab, ego, events, rng, t_begin):
    num = len(ego["path"])
    path = ego["path"].copy()
    s = np.full(num, -1.0)
    kind = np.full(num, CAR)
    lead = rng.uniform(10.0, 22.0, num) + ego["v"] * 0.8
    hb = events["hard_brake"]
    s[hb] = ego["s"][hb] + lead[hb]
    st = events["stalled_vehicle"]
    s[st] = ego["s_t0"][st] + rng.uniform(25.0, 60.0, st.sum())
    kind[st] = STALLED
    ci = events["cut_in"]
    for b in np.flatnonzero(ci):
        sides = [k for k in (0, 1) if tab.lc_path[path[b], k] >= 0
                 and tab.lc_lo[path[b], k] <= ego["s"][b] <= tab.lc_hi[path[b], k] - 60]
        if not sides:
            continue
        k = sides[rng.integers(len(sides))]
        path[b] = tab.lc_path[ego["path"][b], k]
        s[b] = ego["s"][b] + tab.lc_off[ego["path"][b], k] + rng.uniform(6.0, 18.0)
    valid = (s >= 0) & (s < tab.length[path] - 5)
    return path, np.where(valid, s, 0.0), kind, valid


def _drop_overlaps(tab, f):
    """Remove spawned vehicles too close to one placed earlier (lower index wins)."""
    pr = tab.pairs[f.path[:, :, None], f.path[:, None, :]]
    valid, off, lo, hi = pr[..., 0] > 0, pr[..., 1], pr[..., 2], pr[..., 3]
    sj = f.s[:, None, :] - off
    si = f.s[:, :, None]
    inreg = valid & (sj >= lo) & (sj <= hi) & (si >= lo) & (si <= hi)
    half = 0.5 * (f.length[:, :, None] + f.length[:, None, :])
    close = inreg & (np.abs(sj - si) < half + 3.0)
    drop = np.zeros(f.s.shape, bool)
    for j in range(1, f.s.shape[1]):
        drop[:, j] = (close[:, :j, j] & f.active[:, :j] & ~drop[:, :j]).any(1)
    f.active &= ~drop


def _settle_speeds(tab, f, signals, t_begin):
    """Start speeds consistent with the gap ahead and a red light ahead."""
    lead_gap, lead_idx, _, _ = relations(tab, f.path, f.s, f.length, f.active)
    cap = np.maximum(lead_gap - 2.0, 0.0) / np.maximum(f.headway, 0.5)
    f.v = np.where(f.kind == STALLED, 0.0, np.minimum(f.v, cap))
    group = tab.stop_group[f.path]
    state = np.take_along_axis(signals.states(t_begin), np.maximum(group, 0), 1)
    to_stop = tab.stop_s[f.path] - f.s - 0.5 * f.length
    red = (group >= 0) & (state != TL_GREEN) & (to_stop > 0)
    f.v = np.where(red, np.minimum(f.v, np.sqrt(2 * 2.5 * np.maximum(to_stop - 1, 0.0))), f.v)


def _signal_phase(lay, signals, ego, rng):
    """Random phases, biased so the ego's own light is often near a change around t0."""
    num = len(ego["path"])
    slot = signals.green + 4.0
    cycle = slot * signals.num_groups
    g = np.maximum(lay.stop_group[ego["path"]], 0)
    # tau at t0 = phase; put it within [start of own slot - 8 s, end of own slot]
    tau = g * slot + rng.uniform(-8.0, slot, num)
    return np.mod(tau, cycle)


def _pedestrians(lay, tab, city, ego, events, rng, t_begin):
    """Crossers (crosswalk users + jaywalkers, who interact with traffic) and sidewalk walkers."""
    num = len(ego["path"])
    lines = lay.crossing_lines
    c = len(lines) + 1
    start = np.zeros((num, c, 2))
    end = np.zeros((num, c, 2))
    valid = np.zeros((num, c), bool)
    t_cross = rng.uniform(t_begin - 6.0, 4.0, (num, c))
    flips = rng.random((num, c)) < 0.5
    for k, (a, b) in enumerate(lines):
        flip = flips[:, k]
        start[:, k] = np.where(flip[:, None], b, a)
        end[:, k] = np.where(flip[:, None], a, b)
        valid[:, k] = rng.random(num) < min(0.85, 0.45 * city.pedestrian_rate)
    jw = events["jaywalker"]
    s_j = ego["s_t0"] + rng.uniform(14.0, 32.0, num)
    centre, h = tab.pose(ego["path"], s_j, np.zeros(num))
    nrm = np.stack([-np.sin(h), np.cos(h)], -1)
    side = np.where(rng.random(num) < 0.5, 1.0, -1.0)[:, None]
    w = lay.pieces[0].width
    start[:, -1] = centre + side * nrm * (w / 2 + rng.uniform(2.0, 3.5, (num, 1)))
    end[:, -1] = centre - side * nrm * (1.5 * w + 3.0)
    valid[:, -1] = jw
    t_cross[:, -1] = rng.uniform(-1.2, 0.6, num)
    vec = end - start
    length = np.linalg.norm(vec, axis=-1)
    direction = vec / np.maximum(length, 1e-6)[..., None]
    speed = rng.uniform(1.1, 1.6, (num, c))
    speed[:, -1] = rng.uniform(1.4, 2.4, num)
    # crossing points: once per layout line (flipped walkers mirror u), per scene for jaywalkers
    u_at = np.full((num, c, len(lay.paths)), np.inf)
    s_at = np.full((num, c, len(lay.paths)), np.inf)
    if lines:
        a = np.array([p for p, _ in lines])[None]
        vec_l = np.array([q for _, q in lines])[None] - a
        len_l = np.linalg.norm(vec_l, axis=-1)
        u_l, s_l = crossing_tables(tab, a, vec_l / len_l[..., None], len_l)
        u_at[:, :-1] = np.where(flips[:, :-1, None], len_l[..., None] - u_l, u_l)
        s_at[:, :-1] = s_l
    if jw.any():
        u_j, s_j2 = crossing_tables(tab, start[jw, -1:], direction[jw, -1:], length[jw, -1:])
        u_at[jw, -1:], s_at[jw, -1:] = u_j, s_j2
    assertive = np.zeros((num, c), bool)
    assertive[:, -1] = True
    crossers = Crossers(start, direction, length, speed, t_cross, valid, u_at, s_at, assertive)
    # walkers: straight sidewalk segments, no interaction with traffic
    walks = lay.sidewalks
    if walks:
        m = len(walks)
        a = np.array([q[0] for q in walks])
        b = np.array([q[1] for q in walks])
        rev = rng.random((num, m)) < 0.5
        w_start = np.where(rev[..., None], b, a)
        w_vec = np.where(rev[..., None], a - b, b - a)
        w_len = np.linalg.norm(w_vec, axis=-1)
        w_dir = w_vec / np.maximum(w_len, 1e-6)[..., None]
        present = rng.random((num, m)) < 0.35 * city.pedestrian_rate
        u0 = rng.uniform(0, 1, (num, m)) * w_len - 3.0
        walkers = (w_start, w_dir, w_len, u0, rng.uniform(1.0, 1.6, (num, m)), present)
    else:
        walkers = None
    return crossers, walkers
