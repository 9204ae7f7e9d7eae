"""Simulated world scenes → the ego-centric :class:`~autoscale_core.scene.SceneBatch`.

:func:`_assemble` takes one simulated batch (layout, vehicle tables, recorded states, signals,
pedestrians) and writes the scene model's arrays in each ego's frame at t0: the nearest
:data:`MAX_AGENTS` agents, lanes within :data:`MAP_RADIUS` of the ego plus the route, drivable
polygons, crosswalks, traffic-light states, and the metadata (topology, maneuver, events).
"""

from __future__ import annotations

import numpy as np

from ..scene import CYCLIST, PEDESTRIAN, STATIC, TL_NONE, VEHICLE, SceneBatch, wrap_angle
from .cities import EVENTS
from .layout import DS
from .traffic import CYCLIST as K_CYCLIST
from .traffic import relations

HISTORY, FUTURE, OUT_DT = 4, 8, 0.5  # steps of history / future at OUT_DT s (the scene timeline)
ROUTE_BEHIND, ROUTE_AHEAD, ROUTE_STEP = 10.0, 150.0, 1.0
MAX_AGENTS = 32  # agents kept per scene, nearest to the ego
MAP_RADIUS = 110.0  # lanes kept within this distance of the ego at t0 (plus the route)
MAX_LANES = 160
POLY_VERTICES = 24
MANEUVER_PRIORITY = ("lane_change", "left_turn", "right_turn", "merge", "stop", "follow", "straight")


def _assemble(lay, tab, city, f, rec, signals, crossers, walkers, events, times, rng, log_id) -> SceneBatch:
    num = f.s.shape[0]
    n_t = len(times)
    h_idx = HISTORY
    ex, ey, eh = rec["x"][:, 0, h_idx], rec["y"][:, 0, h_idx], wrap_angle(rec["heading"][:, 0, h_idx])
    pose = np.stack([ex, ey, eh], -1)
    cos, sin = np.cos(eh)[:, None], np.sin(eh)[:, None]

    def to_scene(x, y):  # x, y (B, ...) world → scene frame
        shape = (num,) + (1,) * (x.ndim - 1)
        dx, dy = x - ex.reshape(shape), y - ey.reshape(shape)
        c, s = cos.reshape(shape), sin.reshape(shape)
        return c * dx + s * dy, -s * dx + c * dy

    def rel_heading(h):
        return wrap_angle(h - eh.reshape((num,) + (1,) * (h.ndim - 1)))

    # ego
    x, y = to_scene(rec["x"][:, 0], rec["y"][:, 0])
    ego = np.stack([x, y, rel_heading(rec["heading"][:, 0]), rec["speed"][:, 0], rec["accel"][:, 0]], -1)
    # vehicles (not the ego), pedestrians, parked cars → one agent pool
    ax, ay, ah = rec["x"][:, 1:], rec["y"][:, 1:], rec["heading"][:, 1:]
    av, avalid = rec["speed"][:, 1:], rec["active"][:, 1:]
    atype = np.where(f.kind[:, 1:] == K_CYCLIST, CYCLIST, VEHICLE)
    asize = np.stack([f.length[:, 1:], f.width[:, 1:]], -1)
    pools = [(ax, ay, ah, av, avalid, atype, asize)]
    if crossers.valid.shape[1]:
        u = np.stack([crossers.u(t) for t in times], -1)  # (B, C, T)
        px = crossers.start[..., 0, None] + crossers.direction[..., 0, None] * u
        py = crossers.start[..., 1, None] + crossers.direction[..., 1, None] * u
        moving = (u > 0) & (u < crossers.length[..., None])
        ph = np.broadcast_to(np.arctan2(crossers.direction[..., 1], crossers.direction[..., 0])[..., None], u.shape)
        pools.append((px, py, ph, np.where(moving, crossers.speed[..., None], 0.0),
                      np.broadcast_to(crossers.valid[..., None], u.shape), np.full(u.shape[:2], PEDESTRIAN),
                      _ped_size(rng, u.shape[:2])))
    if walkers is not None:
        w_start, w_dir, w_len, u0, speed, present = walkers
        u = u0[..., None] + speed[..., None] * times
        px = w_start[..., 0, None] + w_dir[..., 0, None] * u
        py = w_start[..., 1, None] + w_dir[..., 1, None] * u
        ph = np.broadcast_to(np.arctan2(w_dir[..., 1], w_dir[..., 0])[..., None], u.shape)
        pv = present[..., None] & (u >= 0) & (u <= w_len[..., None])
        pools.append((px, py, ph, np.broadcast_to(speed[..., None], u.shape), pv,
                      np.full(u.shape[:2], PEDESTRIAN), _ped_size(rng, u.shape[:2])))
    if lay.parking:
        slots = np.concatenate(lay.parking)
        occupied = rng.random((num, len(slots))) < rng.uniform(0.3, 0.75, (num, 1))
        shape = (num, len(slots), n_t)
        pools.append((np.broadcast_to(slots[None, :, 0, None], shape), np.broadcast_to(slots[None, :, 1, None], shape),
                      np.broadcast_to(slots[None, :, 2, None], shape), np.zeros(shape),
                      np.broadcast_to(occupied[..., None], shape), np.full((num, len(slots)), STATIC),
                      np.stack([rng.uniform(4.2, 4.9, (num, len(slots))), rng.uniform(1.8, 1.95, (num, len(slots)))], -1)))
    px, py, ph, pv, pvalid, ptype, psize = (np.concatenate([np.asarray(p[k]) for p in pools], 1) for k in range(7))
    sx, sy = to_scene(px, py)
    dist = np.where(pvalid, np.hypot(sx, sy), np.inf)
    key = np.where(pvalid[..., h_idx], dist[..., h_idx], dist.min(-1) + 1000.0)
    n_keep = min(MAX_AGENTS, key.shape[1])
    keep = np.argsort(key, 1, kind="stable")[:, :n_keep]
    take = lambda a: np.take_along_axis(a, keep.reshape(keep.shape + (1,) * (a.ndim - 2)), 1)  # noqa: E731
    agent_valid = take(pvalid) & np.isfinite(take(key))[..., None]
    agents = np.stack([take(sx), take(sy), rel_heading(take(ph)), take(pv)], -1)
    agents = np.where(agent_valid[..., None], agents, 0.0)
    agent_type = np.where(agent_valid.any(-1), take(ptype), -1)
    agent_size = np.where((agent_type >= 0)[..., None], take(psize), 0.0)
    lanes = _map_arrays(lay, tab, rec, signals, to_scene, ex, ey, times)
    route = _route(lay, tab, rec, to_scene)
    route["route_lanes"] = _route_lanes(lay, rec, lanes.pop("_new_index"))
    polys, poly_valid = _polygons(lay.polygons, num, to_scene)
    cw = np.array(lay.crosswalks).reshape(-1, 4, 2) if lay.crosswalks else np.zeros((0, 4, 2))
    cwx, cwy = to_scene(np.broadcast_to(cw[None, ..., 0], (num,) + cw.shape[:2]), np.broadcast_to(cw[None, ..., 1], (num,) + cw.shape[:2]))
    batch = SceneBatch(
        ego=ego.astype(np.float32), ego_size=np.stack([f.length[:, 0], f.width[:, 0]], -1).astype(np.float32),
        agents=agents.astype(np.float32), agent_valid=agent_valid, agent_size=agent_size.astype(np.float32),
        agent_type=agent_type.astype(np.int8), **lanes, **route,
        drivable_polygons=polys, drivable_vertex_valid=poly_valid,
        crosswalks=np.stack([cwx, cwy], -1).astype(np.float32), crosswalk_valid=np.ones((num, len(cw)), bool),
        global_pose=pose.astype(np.float64), meta={}, dt=OUT_DT, history_steps=HISTORY,
    )
    batch.meta = _meta(lay, tab, city, f, rec, events, num, log_id, rng)
    return batch


def _ped_size(rng, shape):
    return np.stack([rng.uniform(0.4, 0.6, shape), rng.uniform(0.5, 0.7, shape)], -1)


def _map_arrays(lay, tab, rec, signals, to_scene, ex, ey, times):
    num = len(ex)
    pts = lay.chunk_points  # (Lc, P, 2)
    d = np.hypot(pts[None, :, :, 0] - ex[:, None, None], pts[None, :, :, 1] - ey[:, None, None]).min(-1)
    route_chunks = _route_chunks(lay, rec)
    key = np.where(route_chunks, -1.0, d)
    n_keep = min(MAX_LANES, len(pts))
    order = np.argsort(key, 1, kind="stable")[:, :n_keep]
    sel_key = np.take_along_axis(key, order, 1)
    valid = sel_key < MAP_RADIUS
    new_index = np.full((num, len(pts)), -1, np.int64)
    rows = np.arange(num)[:, None]
    new_index[rows, order] = np.where(valid, np.arange(n_keep)[None, :], -1)
    lx, ly = to_scene(pts[order][..., 0], pts[order][..., 1])
    remap = lambda ids: np.where(ids >= 0, new_index[rows[..., None], np.maximum(ids, 0)], -1)  # noqa: E731
    succ = remap(lay.chunk_succ[order])
    nbr = remap(lay.chunk_nbr[order])
    group = lay.chunk_group[order]  # (B, L)
    states = np.stack([signals.states(t) for t in times], -1)  # (B, G, T)
    tl = np.take_along_axis(states, np.maximum(group, 0)[..., None].repeat(len(times), -1), 1)
    tl = np.where((group >= 0)[..., None], tl, TL_NONE)
    mask = valid[..., None]
    return {
        "lanes": np.where(mask[..., None], np.stack([lx, ly], -1), 0.0).astype(np.float32),
        "lane_valid": valid,
        "lane_width": np.where(valid, lay.chunk_width[order], 0.0).astype(np.float32),
        "lane_speed_limit": np.where(valid, lay.chunk_limit[order], 0.0).astype(np.float32),
        "lane_is_intersection": valid & lay.chunk_inter[order],
        "lane_successors": np.where(mask, succ, -1).astype(np.int16),
        "lane_neighbors": np.where(mask, nbr, -1).astype(np.int16),
        "lane_tl": np.where(mask, tl, TL_NONE).astype(np.int8),
        "_new_index": new_index,
    }


def _route_chunks(lay, rec):
    """(B, Lc) bool: chunks along the ego's path from 10 m behind to 150 m ahead at t0."""
    path0, s0 = rec["path"][:, 0, HISTORY], rec["s"][:, 0, HISTORY]
    out = np.zeros((len(path0), len(lay.chunk_points)), bool)
    for p in np.unique(path0):
        rows = lay.path_chunks[p]
        sel = path0 == p
        hit = (rows[None, :, 2] > s0[sel, None] - ROUTE_BEHIND) & (rows[None, :, 1] < s0[sel, None] + ROUTE_AHEAD)
        ids = rows[:, 0].astype(int)
        sub = np.zeros((sel.sum(), len(lay.chunk_points)), bool)
        sub[:, ids] = hit
        out[sel] = sub
    return out


def _route(lay, tab, rec, to_scene):
    path0, s0 = rec["path"][:, 0, HISTORY], rec["s"][:, 0, HISTORY]
    offsets = np.arange(-ROUTE_BEHIND, ROUTE_AHEAD + 1e-6, ROUTE_STEP)
    s = s0[:, None] + offsets
    p = np.broadcast_to(path0[:, None], s.shape)
    xy, _ = tab.pose(p, np.clip(s, 0, None), np.zeros_like(s))
    valid = (s >= 0) & (s <= tab.length[path0][:, None])
    rx, ry = to_scene(xy[..., 0], xy[..., 1])
    return {"route_polyline": np.where(valid[..., None], np.stack([rx, ry], -1), 0.0).astype(np.float32),
            "route_valid": valid}


def _polygons(polygons, num, to_scene):
    if not polygons:
        return np.zeros((num, 0, POLY_VERTICES, 2), np.float32), np.zeros((num, 0, POLY_VERTICES), bool)
    arr = np.zeros((len(polygons), POLY_VERTICES, 2))
    valid = np.zeros((len(polygons), POLY_VERTICES), bool)
    for k, q in enumerate(polygons):
        q = q[:POLY_VERTICES]
        arr[k, : len(q)] = q
        valid[k, : len(q)] = True
    x, y = to_scene(np.broadcast_to(arr[None, ..., 0], (num,) + arr.shape[:2]), np.broadcast_to(arr[None, ..., 1], (num,) + arr.shape[:2]))
    xy = np.where(valid[None, ..., None], np.stack([x, y], -1), 0.0)
    return xy.astype(np.float32), np.broadcast_to(valid, (num,) + valid.shape).copy()


def _route_lanes(lay, rec, new_index):
    """(B, R) scene lane indices along the ego's path at t0, in order."""
    path0, s0 = rec["path"][:, 0, HISTORY], rec["s"][:, 0, HISTORY]
    rows = []
    for b, (p, s) in enumerate(zip(path0, s0)):
        ch = lay.path_chunks[p]
        hit = (ch[:, 2] > s - ROUTE_BEHIND) & (ch[:, 1] < s + ROUTE_AHEAD)
        ids = new_index[b, ch[hit, 0].astype(int)]
        rows.append(ids[ids >= 0])
    out = np.full((len(rows), max(len(r) for r in rows)), -1, np.int16)
    for b, r in enumerate(rows):
        out[b, : len(r)] = r
    return out


def _meta(lay, tab, city, f, rec, events, num, log_id, rng):
    h = HISTORY
    path0, s0 = rec["path"][:, 0, h], rec["s"][:, 0, h]
    label = np.array([lay.paths[p].maneuver for p in path0], dtype=object)
    lead_gap, _, _, _ = relations(tab, rec["path"][..., h], rec["s"][..., h], f.length, rec["active"][..., h])
    speed_future = rec["speed"][:, 0, h + 1 :]
    conn_start = np.array([lay.stop_s[p] if np.isfinite(lay.stop_s[p]) else _first_intersection_s(lay, p) for p in path0])
    turning = np.isin(label, ["left_turn", "right_turn"]) & (s0 + speed_future.max(1) * 4.0 + 5.0 > conn_start)
    merging = (label == "merge") & (s0 < np.array([lay.pieces[lay.paths[p].pieces[0]].num_samples * DS for p in path0]) + 5.0)
    checks = {
        "lane_change": rec["lc"][:, 0, h + 1 :].any(1),
        "left_turn": turning & (label == "left_turn"),
        "right_turn": turning & (label == "right_turn"),
        "merge": merging,
        "stop": speed_future.min(1) < 0.3,
        "follow": lead_gap[:, 0] < 40.0,
        "straight": np.ones(num, bool),
    }
    maneuver = np.full(num, "straight", dtype=object)
    for name in MANEUVER_PRIORITY[::-1]:
        maneuver = np.where(checks[name], name, maneuver)
    staged_seen = rec["active"][:, 1, h]
    happened = {
        "cut_in": rec["cutin_done"],
        "hard_brake": events["hard_brake"] & staged_seen,
        "jaywalker": events["jaywalker"],
        "stalled_vehicle": events["stalled_vehicle"] & staged_seen,
    }
    tags = np.array([";".join(n for n in EVENTS if happened[n][b]) for b in range(num)], dtype=object)
    return {
        "scene_id": np.full(num, "", dtype=object),
        "source": np.full(num, "world", dtype=object),
        "city": np.full(num, city.name, dtype=object),
        "topology": np.full(num, lay.topology, dtype=object),
        "maneuver": maneuver.astype(object),
        "events": tags,
        "log_id": np.full(num, log_id, dtype=object),
        "parent_id": np.full(num, "", dtype=object),
        "t0": np.round(rng.uniform(20.0, 900.0, num), 1),
    }


def _first_intersection_s(lay, p):
    for pid in lay.paths[p].pieces:
        if lay.pieces[pid].intersection:
            return lay.piece_start[p][pid] * DS
    return np.inf
