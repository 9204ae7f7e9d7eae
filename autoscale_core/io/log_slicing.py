"""Cutting a :class:`~autoscale_core.io.driving_log._Log` into planning scenes (any source).

The route follows the lanes the logged ego drove (:func:`_driven_lanes`, :func:`_route_polyline`);
each window t0 - history … t0 + future becomes one scene in the ego frame at t0
(:func:`_build_scene`: the nearest agents, static clutter ranked behind moving agents, map
elements within the radius, a maneuver label). Windows that fail validation are skipped and
counted in the report; scenes whose logged ego leaves the drivable area are listed there.
"""

from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from ..geometry import closest_on_segments
from ..scene import (
    STATIC,
    TL_UNKNOWN,
    VEHICLE,
    SceneBatch,
    SceneValidationError,
    empty_batch,
    lateral_distance_to_lanes,
    points_on_drivable,
    resample_polyline,
    to_scene_frame,
    wrap_angle,
)
from .driving_log import DEFAULT_SPEED_LIMIT, LANE_POINTS, SOURCE_DT, ImportReport, _Log, _Map

ROUTE_BEHIND_M = 10.0
ROUTE_AHEAD_M = 200.0
ROUTE_SPACING_M = 2.0
INTERSECTION_LOOKAHEAD_M = 30.0
NEAR_DRIVE_M = 10.0  # m (+ half the longest lane segment): lanes this close to the logged path are candidates
STATIC_KEEP_RADIUS = 40.0  # m: static clutter farther than this from the ego at t0 is dropped
STATIC_RANK_PENALTY = 20.0  # m added to a static object's distance when ranking the N kept agents


def _project(points: np.ndarray, lanes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance, arc position and lane heading of each point on each lane.

    points (K, 2), lanes (M, P, 2) → three (K, M) arrays.
    """
    a, b = lanes[:, :-1], lanes[:, 1:]
    ab = b - a
    seg_len = np.linalg.norm(ab, axis=-1)
    t, dist = closest_on_segments(points[:, None, None], a, ab, np.maximum(seg_len**2, 1e-9))  # (K, M, P-1)
    seg = dist.argmin(-1)  # (K, M)
    s0 = np.concatenate([np.zeros((len(lanes), 1)), np.cumsum(seg_len, -1)], -1)  # (M, P)
    m = np.arange(len(lanes))[None]
    seg_t = np.take_along_axis(t, seg[..., None], -1)[..., 0]
    arc = s0[m, seg] + seg_t * seg_len[m, seg]
    lane_heading = np.arctan2(ab[..., 1], ab[..., 0])[m, seg]
    return np.take_along_axis(dist, seg[..., None], -1)[..., 0], arc, lane_heading


def _driven_lanes(log: _Log) -> list[tuple[int, int, int]]:
    """Runs (lane, first step, last step) of the lane the logged ego occupies, in time order.

    Candidates at each step are lanes whose corridor (+1 m) holds the ego and whose direction is
    within 60° of its heading; the current lane is kept while it stays a candidate, then a successor
    is preferred, then a same-direction neighbour (lane change), then the closest candidate.
    """
    amap = log.map
    if len(amap.lanes) == 0:
        return []
    # Only lanes with a point near the drive can hold the ego: project onto those (a ScenarioNet
    # map holds hundreds of lanes around a 20 s drive).
    reach = NEAR_DRIVE_M + 0.5 * float(np.linalg.norm(np.diff(amap.lanes, axis=1), axis=-1).max(initial=0.0))
    nearest = cKDTree(log.ego_xy).query(amap.lanes.reshape(-1, 2), distance_upper_bound=reach)[0]
    near = np.flatnonzero(np.isfinite(nearest.reshape(len(amap.lanes), -1)).any(-1))
    dist = np.full((len(log.ego_xy), len(amap.lanes)), np.inf)
    lane_heading = np.zeros_like(dist)
    if len(near):
        dist[:, near], _, lane_heading[:, near] = _project(log.ego_xy, amap.lanes[near])
    dyaw = np.abs(wrap_angle(lane_heading - log.ego_yaw[:, None]))
    ok = (dist <= 0.5 * amap.width[None] + 1.0) & (dyaw < np.pi / 3)
    cost = dist + 3.0 * dyaw
    current, runs = -1, []
    for k in range(len(log.ego_xy)):
        candidates = np.flatnonzero(ok[k])
        if len(candidates) == 0:
            continue
        if current in candidates:
            choice = current
        else:
            preferred = [c for c in candidates if current >= 0 and c in amap.successors[current]]
            preferred = preferred or [c for c in candidates if current >= 0 and c in amap.neighbors[current]]
            pool = np.array(preferred or candidates)
            choice = int(pool[np.argmin(cost[k, pool])])
        if choice != current:
            runs.append([choice, k, k])
            current = choice
        runs[-1][2] = k
    return [tuple(r) for r in runs]


def _route_polyline(log: _Log, runs: list[tuple[int, int, int]]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Route lane list (driven lanes, then successors), dense (≈0.5 m) city polyline, and the
    polyline arc position of the ego at every log step ((K,), NaN where off the route)."""
    amap = log.map
    if not runs:
        # No lane matched (e.g. a parking lot): the route is the logged path itself.
        return [], log.ego_xy.copy(), np.full(len(log.ego_xy), np.nan)
    lanes = amap.lanes
    pieces = []
    for n, (lane, first, last) in enumerate(runs):
        line = lanes[lane]
        prev_lane = runs[n - 1][0] if n else None
        next_lane = runs[n + 1][0] if n + 1 < len(runs) else None
        _, arc, _ = _project(log.ego_xy[[first, last]], line[None])
        length = np.linalg.norm(np.diff(line, axis=0), axis=-1).sum()
        start = 0.0 if prev_lane is None or lane in amap.successors[prev_lane] else min(arc[0, 0] + 8.0, length)
        end = length if next_lane is None or next_lane in amap.successors[lane] else arc[1, 0]
        pieces.append(_cut(line, start, end))
    route = [r[0] for r in runs]
    ahead = sum(np.linalg.norm(np.diff(p, axis=0), axis=-1).sum() for p in pieces)
    # Extend along the straightest successor until far enough ahead or the map ends.
    current = route[-1]
    while ahead < ROUTE_AHEAD_M + 20 and amap.successors[current]:
        direction = lanes[current][-1] - lanes[current][-2]
        options = [s for s in amap.successors[current] if s not in route]
        if not options:
            break
        turn = [abs(wrap_angle(np.arctan2(*(lanes[s][1] - lanes[s][0])[::-1]) - np.arctan2(direction[1], direction[0]))) for s in options]
        current = options[int(np.argmin(turn))]
        route.append(current)
        pieces.append(lanes[current])
        ahead += np.linalg.norm(np.diff(lanes[current], axis=0), axis=-1).sum()
    line = np.concatenate(pieces)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(line, axis=0), axis=-1) > 1e-3])
    line = line[keep]
    length = np.linalg.norm(np.diff(line, axis=0), axis=-1).sum()
    dense = resample_polyline(line, max(int(np.ceil(length / 0.5)) + 1, 2))
    # Ego arc position on the route: nearest dense point, searched forward so loops can't confuse it.
    d = np.linalg.norm(log.ego_xy[:, None] - dense[None], axis=-1)
    arc = np.arange(len(dense)) * (length / max(len(dense) - 1, 1))
    ego_arc = arc[d.argmin(-1)]
    ego_arc[d.min(-1) > 5.0] = np.nan
    return route, dense, ego_arc


def _cut(line: np.ndarray, start: float, end: float) -> np.ndarray:
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=-1))])
    end = max(end, start + 0.5)
    inner = line[(s > start) & (s < end)]
    at = lambda v: np.array([np.interp(v, s, line[:, 0]), np.interp(v, s, line[:, 1])])  # noqa: E731
    return np.concatenate([at(start)[None], inner, at(min(end, s[-1]))[None]])


def _slice_log(log: _Log, steps: dict[str, int], dt: float, max_agents: int, radius: float, report: ImportReport) -> SceneBatch | None:
    for note in getattr(log, "notes", []):
        report.warn(note)
    runs = _driven_lanes(log)
    if not runs:
        report.warn(f"{log.path}: the logged ego is on no map lane; using its own path as the route")
    route, route_line, ego_arc = _route_polyline(log, runs)
    lane_at_step = np.full(len(log.ego_xy), -1)
    for lane, first, last in runs:
        lane_at_step[first : last + 1] = lane
    H, F, step = steps["history_s"] // steps["dt"], steps["future_s"] // steps["dt"], steps["dt"]
    first_t0, last_t0 = steps["history_s"], len(log.ego_xy) - 1 - steps["future_s"]
    scenes = []
    for t0 in range(first_t0, last_t0 + 1, steps["stride_s"]):
        report.windows += 1
        idx = t0 + step * (np.arange(H + 1 + F) - H)
        scenes.append(_build_scene(log, t0, idx, H, dt, max_agents, radius, route, route_line, ego_arc, lane_at_step))
    if not scenes:
        return None
    batch = SceneBatch.concatenate(scenes)
    try:  # one vectorized check for the whole log; scene by scene only when something fails
        batch.validate()
    except SceneValidationError:
        good = []
        for i in range(len(batch)):
            try:
                batch[i].validate()
                good.append(i)
            except SceneValidationError as exc:
                report.skip(_reason(str(exc)))
        if not good:
            return None
        batch = batch.subset(good)
    off = _ego_leaves_drivable(batch)
    report.ego_off_drivable.extend(str(s) for s in batch.meta["scene_id"][off])
    return batch


def _ego_leaves_drivable(batch: SceneBatch, margin: float = 0.5) -> np.ndarray:
    """(S,) bool: the logged ego centre leaves lanes ∪ drivable polygons at some future step.

    Same test as :func:`points_on_drivable`, but the polygon test (AV2 areas have hundreds of
    vertices) only runs for the few scenes whose ego leaves every lane corridor.
    """
    future = batch.ego[:, batch.history_steps + 1 :, :2]
    lateral = lateral_distance_to_lanes(batch, future)
    in_lane = ((lateral <= 0.5 * batch.lane_width[:, None, :] + margin) & batch.lane_valid[:, None, :]).any(-1)
    check = np.flatnonzero(~in_lane.all(-1))
    off = np.zeros(len(batch), dtype=bool)
    if len(check):
        sub = batch.subset(check)
        off[check] = ~points_on_drivable(sub, future[check], margin=margin).all(-1)
    return off


def _reason(message: str) -> str:
    for key in ("empty route", "empty map", "off every lane", "NaN or inf", "width"):
        if key in message:
            return {"off every lane": "ego off map at t0", "NaN or inf": "non-finite values", "width": "bad lane width"}.get(key, key)
    return "invalid scene"


def _build_scene(log, t0, idx, H, dt, max_agents, radius, route, route_line, ego_arc, lane_at_step) -> SceneBatch:
    pose = np.array([log.ego_xy[t0, 0], log.ego_xy[t0, 1], wrap_angle(log.ego_yaw[t0])])
    ego_path = log.ego_xy[idx]
    amap = log.map

    # Agents: nearest at t0 (or, if absent at t0, nearest over the window + 5 m); static clutter ranks
    # 20 m farther and is dropped beyond 40 m.
    valid = log.agent_valid[:, idx]
    dist = np.linalg.norm(log.agent_xy[:, idx] - ego_path[None], axis=-1)
    dist = np.where(valid, dist, np.inf)
    key = np.where(valid[:, H], dist[:, H], dist.min(-1) + 5.0)
    static = log.agent_type == STATIC
    key = np.where(static & (key > STATIC_KEEP_RADIUS), np.inf, key)
    key = np.where(static, key + STATIC_RANK_PENALTY, key)  # clutter yields slots to road users
    keep = np.argsort(key, kind="stable")[: max_agents]
    keep = keep[np.isfinite(key[keep])]

    # Map elements near the ego path; route lanes always kept so route_lanes can index them.
    remaining = lane_at_step[idx[0] :]
    route_here = [l for l in dict.fromkeys(remaining[remaining >= 0].tolist())]
    if route_here:
        route_here += route[route.index(route_here[-1]) + 1 :]
    lane_near = amap.lanes_near(ego_path, radius)
    lane_ids = np.array(list(dict.fromkeys(lane_near.tolist() + route_here)), dtype=np.int64)
    local = {int(g): i for i, g in enumerate(lane_ids)}
    lo, hi = ego_path.min(0) - radius, ego_path.max(0) + radius
    bounds = amap.polygon_bounds()
    overlap = (bounds[:, 2:] >= lo).all(-1) & (bounds[:, :2] <= hi).all(-1)
    polygons = [amap.polygons[i] for i in np.flatnonzero(overlap) if len(amap.polygons[i]) >= 3]
    cw = amap.crosswalks
    cw = cw[(np.linalg.norm(cw.mean(1)[:, None] - ego_path[None], axis=-1).min(-1) <= radius)] if len(cw) else cw

    # Route polyline: ROUTE_BEHIND_M behind the ego at t0 to ROUTE_AHEAD_M ahead, ≤ 2 m spacing.
    seg = np.linalg.norm(np.diff(route_line, axis=0), axis=-1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    s0 = ego_arc[t0] if np.isfinite(ego_arc[t0]) else s[np.linalg.norm(route_line - pose[:2], axis=-1).argmin()]
    a, b = max(s0 - ROUTE_BEHIND_M, 0.0), min(s0 + ROUTE_AHEAD_M, s[-1])
    count = max(int(np.ceil((b - a) / ROUTE_SPACING_M)) + 1, 2)
    targets = np.linspace(a, b, count)
    route_pts = np.stack([np.interp(targets, s, route_line[:, 0]), np.interp(targets, s, route_line[:, 1])], -1)

    max_succ = max([len(amap.successors[g]) for g in lane_ids] + [1])
    batch = empty_batch(
        1, num_agents=len(keep), num_lanes=len(lane_ids), lane_points=LANE_POINTS,
        num_successors=max_succ, num_polygons=len(polygons),
        polygon_vertices=max([len(p) for p in polygons] + [3]), num_crosswalks=len(cw),
        route_lanes=max(len(route_here), 1), route_points=count, dt=dt, history_steps=H,
        future_steps=len(idx) - H - 1,
    )
    yaw0 = pose[2]
    batch.ego[0, :, :2] = to_scene_frame(ego_path, pose)
    batch.ego[0, :, 2] = wrap_angle(log.ego_yaw[idx] - yaw0)
    batch.ego[0, :, 3] = log.ego_speed[idx]
    batch.ego[0, :, 4] = log.ego_accel[idx]
    batch.ego_size[0] = log.ego_size
    if len(keep):
        kv = valid[keep]
        batch.agents[0, :, :, :2] = np.where(kv[..., None], to_scene_frame(log.agent_xy[keep][:, idx], pose), 0.0)
        batch.agents[0, :, :, 2] = np.where(kv, wrap_angle(log.agent_yaw[keep][:, idx] - yaw0), 0.0)
        batch.agents[0, :, :, 3] = np.where(kv, log.agent_speed[keep][:, idx], 0.0)
        batch.agent_valid[0] = kv
        batch.agent_size[0] = log.agent_size[keep]
        batch.agent_type[0] = log.agent_type[keep]
    if len(lane_ids):
        batch.lanes[0] = to_scene_frame(amap.lanes[lane_ids], pose)
        batch.lane_valid[0] = True
        batch.lane_width[0] = amap.width[lane_ids]
        batch.lane_speed_limit[0] = DEFAULT_SPEED_LIMIT if amap.speed_limit is None else amap.speed_limit[lane_ids]
        batch.lane_is_intersection[0] = amap.is_intersection[lane_ids]
        for i, g in enumerate(lane_ids):
            succ = [local[x] for x in amap.successors[g] if x in local]
            batch.lane_successors[0, i, : len(succ)] = succ
            batch.lane_neighbors[0, i] = [local.get(int(n), -1) for n in amap.neighbors[g]]
        # AV2 logs carry no traffic-light states; other sources may (log.lane_tl).
        batch.lane_tl[0] = TL_UNKNOWN if log.lane_tl is None else log.lane_tl[lane_ids][:, idx]
    for i, p in enumerate(polygons):
        batch.drivable_polygons[0, i, : len(p)] = to_scene_frame(p, pose)
        batch.drivable_vertex_valid[0, i, : len(p)] = True
    if len(cw):
        batch.crosswalks[0] = to_scene_frame(cw, pose)
        batch.crosswalk_valid[0] = True
    batch.route_lanes[0, : len(route_here)] = [local[g] for g in route_here]
    batch.route_polyline[0] = to_scene_frame(route_pts, pose)
    batch.route_valid[0] = True
    batch.global_pose[0] = pose

    # Topology: the route crosses an intersection lane within INTERSECTION_LOOKAHEAD_M of the ego.
    crosses = False
    ahead = route_here[route_here.index(lane_at_step[t0]) :] if lane_at_step[t0] in route_here else route_here
    if ahead:
        near = np.linalg.norm(amap.lanes[ahead] - pose[:2], axis=-1).min(-1) <= INTERSECTION_LOOKAHEAD_M
        crosses = bool((amap.is_intersection[ahead] & near).any())
    batch.meta.update(
        scene_id=np.array([f"{log.scene_prefix or 'av2-' + log.log_id[:8]}-{t0:04d}"], dtype=object),
        source=np.array([log.source], dtype=object),
        city=np.array([log.city], dtype=object),
        topology=np.array(["intersection" if crosses else "urban_street"], dtype=object),
        maneuver=np.array([_maneuver(batch, lane_at_step[idx[H:]], amap)], dtype=object),
        events=np.array([""], dtype=object),
        log_id=np.array([log.log_id], dtype=object),
        parent_id=np.array([""], dtype=object),
        t0=np.array([t0 * SOURCE_DT]),
    )
    return batch


def _maneuver(scene: SceneBatch, lanes_ahead: np.ndarray, amap: _Map) -> str:
    """The embedded world's maneuver vocabulary, first match in its priority order:
    lane_change > left_turn / right_turn > stop > follow > straight.

    A turn is the logged future turning by > 20°, or the route turning by > 30° within the
    distance the ego covers in its future (+ 5 m); follow = a valid vehicle ahead at t0 within
    40 m and 1.8 m of the route.
    """
    H = scene.history_steps
    ego = scene.ego[0]
    seq = [int(l) for l in dict.fromkeys(lanes_ahead.tolist()) if l >= 0]
    if any(b in amap.neighbors[a] for a, b in zip(seq, seq[1:])):
        return "lane_change"
    route = scene.route_polyline[0][scene.route_valid[0]]
    reach = np.linalg.norm(np.diff(ego[H:, :2], axis=0), axis=-1).sum() + 5.0
    turn = float(ego[-1, 2])
    seg = np.diff(route, axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=-1))])
    s0 = arc[np.linalg.norm(route, axis=-1).argmin()]
    heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
    within = (arc[1:] > s0) & (arc[1:] <= s0 + reach)
    if within.any():
        route_turn = heading[within][-1] - heading[np.flatnonzero(within)[0]]
        if abs(route_turn) > abs(turn) and abs(route_turn) > np.radians(30):
            turn = float(route_turn)
    if abs(turn) > np.radians(20):
        return "left_turn" if turn > 0 else "right_turn"
    if ego[H + 1 :, 3].min() < 0.3:
        return "stop"
    at_t0 = (scene.agent_type[0] == VEHICLE) & scene.agent_valid[0, :, H]
    if at_t0.any() and len(route):
        pos = scene.agents[0, at_t0, H, :2]
        d = np.linalg.norm(pos[:, None] - route[None], axis=-1)
        ahead = (d.min(-1) < 1.8) & (arc[d.argmin(-1)] > s0) & (arc[d.argmin(-1)] - s0 < 40.0)
        if ahead.any():
            return "follow"
    return "straight"
