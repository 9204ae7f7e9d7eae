"""A fair EPDMS reference in NAVSIM's style: shapely 2 vectorized geometry, one scene at a time.

NAVSIM's PDM scorer scores all proposals of a scene together: it builds the proposals' ego
polygons with shapely's vectorized constructors and answers "which agents does the ego touch at
step k" with an STRtree occupancy map of the agents at that step. This module does the same, with
the metric definitions of :mod:`.scoring` (see its docstring):

* per scene, all C proposals (+ the logged expert for the human filter) are simulated together
  (the simulation is shared with the vectorized scorer);
* ego boxes, agent boxes and their constant-velocity projections are ``shapely.polygons`` arrays;
  collisions and TTC are ``STRtree.query(..., predicate="intersects")`` per time step;
* lane queries use an STRtree of centerline segments (``predicate="dwithin"``) and exact
  ``shapely.distance``; drivable polygons an STRtree with ``predicate="within"``; route progress
  ``shapely.line_locate_point``;
* the per-point reductions over the query results are numpy.

It is the baseline of ``benchmarks/bench_sim_scoring.py`` and must give the same scores as
:func:`.scoring.score_trajectories` (``tests/test_sim_reference_navsim.py``). The older
:mod:`.reference` (one trajectory, step and agent at a time) is kept as the readable spec.
"""

from __future__ import annotations

import numpy as np
import shapely

from ..geometry import box_corners
from ..scene import STATIC, TL_RED, TL_UNKNOWN, SceneBatch, wrap_angle
from .agents import simulate_agents
from .aggregate import combine
from .comfort import comfort_ok
from .config import ScorerConfig, ScoreResult
from .kinematics import simulate_ego
from .scorer import prepare
from .scoring import rule_planner_progress

_RAW_KEYS = ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc", "progress", "collision", "tl_unknown")


class _SceneGeometry:
    """One scene's map as shapely geometry with STRtrees (lanes, lane segments, polygons, route)."""

    def __init__(self, batch: SceneBatch, i: int, config: ScorerConfig):
        lane_ids, lines, half_widths = [], [], []
        seg_lane, seg_lines, seg_tangent = [], [], []
        for lane in np.flatnonzero(batch.lane_valid[i]):
            pts = batch.lanes[i, lane].astype(np.float64)
            d = np.diff(pts, axis=0)
            length = np.hypot(d[:, 0], d[:, 1])
            keep = length > 1e-9
            if not keep.any():
                continue
            lane_ids.append(int(lane))
            lines.append(shapely.linestrings(pts))
            half_widths.append(0.5 * float(batch.lane_width[i, lane]))
            seg_lane.extend([int(lane)] * int(keep.sum()))
            seg_lines.extend(shapely.linestrings(np.stack([pts[:-1][keep], pts[1:][keep]], 1)))
            seg_tangent.append(d[keep] / length[keep, None])
        self.lane_id = np.array(lane_ids, dtype=np.int64)
        self.lane_lines = np.array(lines, dtype=object)
        self.lane_half_width = np.array(half_widths)
        self.lane_tree = shapely.STRtree(self.lane_lines)
        self.seg_lane = np.array(seg_lane, dtype=np.int64)
        self.seg_lines = np.array(seg_lines, dtype=object)
        self.seg_tangent = np.concatenate(seg_tangent) if seg_tangent else np.zeros((0, 2))
        self.seg_heading = np.arctan2(self.seg_tangent[:, 1], self.seg_tangent[:, 0])
        self.seg_half_width = 0.5 * batch.lane_width[i, self.seg_lane].astype(np.float64)
        self.seg_tree = shapely.STRtree(self.seg_lines)
        self.max_half_width = float(self.lane_half_width.max()) if len(lane_ids) else 0.0
        self.centre_radius = max(self.max_half_width, config.lk_threshold)
        polys = []
        for d in range(batch.drivable_polygons.shape[1]):
            v = batch.drivable_polygons[i, d][batch.drivable_vertex_valid[i, d]].astype(np.float64)
            if len(v) >= 3:
                polys.append(shapely.polygons(v))
        self.polygon_tree = shapely.STRtree(polys)
        self.route = shapely.linestrings(batch.route_polyline[i][batch.route_valid[i]].astype(np.float64))
        self.intersection = batch.lane_is_intersection[i]
        self.tl = batch.lane_tl[i]

    def lanes_containing(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(point, lane id) pairs with the point within half that lane's width of its centerline."""
        p, j = self.lane_tree.query(points, predicate="dwithin", distance=self.max_half_width + 1e-6)
        inside = shapely.distance(points[p], self.lane_lines[j]) <= self.lane_half_width[j]
        return p[inside], self.lane_id[j[inside]]

    def drivable(self, points: np.ndarray) -> np.ndarray:
        """(M,) bool for shapely points: within a lane corridor or inside a drivable polygon."""
        ok = np.zeros(len(points), dtype=bool)
        ok[self.lanes_containing(points)[0]] = True
        rest = np.flatnonzero(~ok)
        p, _ = self.polygon_tree.query(points[rest], predicate="within")
        ok[rest[p]] = True
        return ok


def _occupancy_pairs(polys: np.ndarray, valid: np.ndarray, query: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(proposal, agent) pairs whose boxes intersect at one time step, via an STRtree occupancy map.

    ``polys``/``valid`` (A, N): agent boxes, A = 1 (log replay, shared by all proposals) or the
    number of proposals (reactive: each proposal sees its own agents); ``query`` (C1,) ego boxes.
    """
    A, N = polys.shape
    flat = np.flatnonzero(valid.reshape(-1))
    if len(flat) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    tree = shapely.STRtree(polys.reshape(-1)[flat])
    ego, hit = tree.query(query, predicate="intersects")
    owner, agent = np.divmod(flat[hit], N)
    keep = (owner == ego) if A > 1 else np.ones(len(ego), dtype=bool)
    return ego[keep], agent[keep]


def _collisions(batch, i, geo: _SceneGeometry, states, corners, agents, valid, config: ScorerConfig):
    """NC, collision flag, TTC (each (C1,)) from per-step STRtree occupancy queries."""
    C1, K1 = states.shape[:2]
    A, N = agents.shape[:2]
    nc, collision, ttc = np.ones(C1), np.zeros(C1, dtype=bool), np.ones(C1)
    if N == 0:
        return nc, collision, ttc
    ego_len, ego_wid = (float(v) for v in batch.ego_size[i, :2])
    a_len = batch.agent_size[i, :, 0].astype(np.float64)[None, :, None]
    a_wid = batch.agent_size[i, :, 1].astype(np.float64)[None, :, None]
    ego_polys = shapely.polygons(corners)  # (C1, K1)
    agent_polys = shapely.polygons(box_corners(agents[..., :2], agents[..., 2], a_len, a_wid))
    cos_e, sin_e = np.cos(states[..., 2]), np.sin(states[..., 2])
    moving = states[..., 3] >= config.stopped_speed  # (C1, K1)
    first = np.full((C1, N), -1)
    for k in range(K1):
        overlap = np.zeros((C1, N), dtype=bool)
        overlap[_occupancy_pairs(agent_polys[..., k], valid[..., k], ego_polys[:, k])] = True
        first[overlap & (first < 0)] = k
        ag = agents[..., k, :]  # (A, N, 4)
        along = (ag[..., 0] - states[:, k, None, 0]) * cos_e[:, k, None] + (ag[..., 1] - states[:, k, None, 1]) * sin_e[:, k, None]
        behind = along < -0.5 * ego_len  # (C1, N)
        ttc_candidate = ~overlap & ~behind & moving[:, k, None] & valid[..., k]
        rows = np.flatnonzero(ttc_candidate.any(1))
        for tau in config.ttc_horizons:
            ego_x = states[rows, k, 0] + states[rows, k, 3] * cos_e[rows, k] * tau
            ego_y = states[rows, k, 1] + states[rows, k, 3] * sin_e[rows, k] * tau
            proj_ego = shapely.polygons(box_corners(np.stack([ego_x, ego_y], -1), states[rows, k, 2], ego_len, ego_wid))
            ax = ag[..., 0] + ag[..., 3] * np.cos(ag[..., 2]) * tau
            ay = ag[..., 1] + ag[..., 3] * np.sin(ag[..., 2]) * tau
            proj_agents = shapely.polygons(box_corners(np.stack([ax, ay], -1), ag[..., 2], a_len[..., 0], a_wid[..., 0]))
            sub_agents = proj_agents[rows] if A > 1 else proj_agents
            sub_valid = valid[rows, :, k] if A > 1 else valid[..., k]
            e, n = _occupancy_pairs(sub_agents, sub_valid, proj_ego)
            danger = ttc_candidate[rows[e], n]
            ttc[rows[e[danger]]] = 0.0
    c, n = np.nonzero(first >= 0)
    collision[c] = True
    if len(c):
        _first_collision_fault(batch, i, geo, states, corners, agents, agent_polys, c, n, first[c, n], nc, config)
    return nc, collision, ttc


def _first_collision_fault(batch, i, geo, states, corners, agents, agent_polys, c, n, k, nc, config):
    """nuPlan's collision classes at each pair's first overlap; lowers ``nc`` in place."""
    ego_len = float(batch.ego_size[i, 0])
    a_idx = c if agents.shape[0] > 1 else np.zeros_like(c)
    ego, ag = states[c, k], agents[a_idx, n, k]
    cos_e, sin_e = np.cos(ego[:, 2]), np.sin(ego[:, 2])
    behind = (ag[:, 0] - ego[:, 0]) * cos_e + (ag[:, 1] - ego[:, 1]) * sin_e < -0.5 * ego_len
    box = corners[c, k]  # (P, 4, 2): front-left, front-right, rear-right, rear-left
    front = shapely.intersects(shapely.linestrings(box[:, :2]), agent_polys[a_idx, n, k])
    ego_moving = ego[:, 3] >= config.stopped_speed
    agent_stopped = ag[:, 3] < config.stopped_speed
    side = ego_moving & ~agent_stopped & ~behind & ~front
    multi_lane = np.zeros(len(c), dtype=bool)
    for j in np.flatnonzero(side):  # few pairs: one lane-corridor query per side collision
        p, lane = geo.lanes_containing(shapely.points(box[j]))
        counts = np.bincount(np.unique(lane * 4 + p) // 4) if len(lane) else np.zeros(1)
        multi_lane[j] = not (counts == 4).any()
    at_fault = ego_moving & (agent_stopped | (~behind & (front | multi_lane)))
    value = np.where(batch.agent_type[i, n] == STATIC, 0.5, 0.0)
    np.minimum.at(nc, c[at_fault], value[at_fault])


def _lane_metrics(batch, geo: _SceneGeometry, states, config: ScorerConfig) -> dict[str, np.ndarray]:
    """DDC, TLC, tl_unknown, LK (each (C1,)) from centre-point queries on the segment STRtree."""
    C1, K1 = states.shape[:2]
    dt = config.dt_sim
    points = shapely.points(states[..., :2].reshape(-1, 2))
    pt, seg = geo.seg_tree.query(points, predicate="dwithin", distance=geo.centre_radius + 1e-6)
    dist = shapely.distance(points[pt], geo.seg_lines[seg])
    lane = geo.seg_lane[seg]
    in_lane = dist <= geo.seg_half_width[seg]
    traj, step = np.divmod(pt, K1)
    dheading = np.abs(wrap_angle(states[traj, step, 2] - geo.seg_heading[seg]))
    # DDC: backwards travel along the most favourable containing segment.
    disp = np.zeros((C1, K1, 2))
    disp[:, 1:] = np.diff(states[..., :2], axis=1)
    proj = (disp[traj, step] * geo.seg_tangent[seg]).sum(-1)
    best = np.full(C1 * K1, -np.inf)
    np.maximum.at(best, pt[in_lane], proj[in_lane])
    backwards = np.where(np.isfinite(best), np.maximum(-best, 0.0), 0.0).reshape(C1, K1).sum(-1)
    ddc = np.where(backwards > config.ddc_zero, 0.0, np.where(backwards > config.ddc_half, 0.5, 1.0))
    # TLC: entering a red aligned lane (not held at t0) while in no aligned non-red lane.
    tl_time = np.minimum(batch.history_steps + np.floor(np.arange(K1) * dt / batch.dt + 1e-9).astype(int), batch.num_steps - 1)
    code = geo.tl[lane, tl_time[step]]
    L = geo.tl.shape[0]
    start = in_lane & (step == 0)
    new_lane = ~np.isin(traj * L + lane, traj[start] * L + lane[start])
    aligned_in = in_lane & (dheading < config.tl_alignment)
    red_new = np.zeros(C1 * K1, dtype=bool)
    red_new[pt[aligned_in & new_lane & (code == TL_RED)]] = True
    not_red = np.zeros(C1 * K1, dtype=bool)
    not_red[pt[aligned_in & (code != TL_RED)]] = True
    tlc = 1.0 - (red_new & ~not_red).reshape(C1, K1).any(-1)
    tl_unknown = np.zeros(C1, dtype=bool)
    tl_unknown[traj[aligned_in & new_lane & (code == TL_UNKNOWN)]] = True
    # LK: far from every aligned centerline, outside junction lanes, for too long.
    aligned = dheading < config.lk_alignment
    nearest = np.full(C1 * K1, np.inf)
    np.minimum.at(nearest, pt[aligned], dist[aligned])
    junction = np.zeros(C1 * K1, dtype=bool)
    junction[pt[in_lane & geo.intersection[lane]]] = True
    drift = ((nearest > config.lk_threshold) & ~junction).reshape(C1, K1)
    longest = np.zeros(C1, dtype=np.int64)
    run = np.zeros(C1, dtype=np.int64)
    for k in range(K1):
        run = np.where(drift[:, k], run + 1, 0)
        longest = np.maximum(longest, run)
    lk = (longest * dt <= config.lk_duration + 1e-9).astype(np.float64)
    return {"ddc": ddc, "tlc": tlc, "tl_unknown": tl_unknown, "lk": lk}


def _scene_raw(batch: SceneBatch, i: int, plans: np.ndarray, reactive: bool, config: ScorerConfig) -> dict:
    """Unfiltered metrics of one scene's (C1, F, 3) plans → dict of (C1,) arrays."""
    geo = _SceneGeometry(batch, i, config)
    scene = batch.subset([i])
    states = simulate_ego(scene, plans[None], config.dt_sim)  # (1, C1, K1, 5)
    agents, valid = simulate_agents(scene, states, reactive, config.dt_sim)
    states, agents, valid = states[0], agents[0], valid[0]
    ego_len, ego_wid = (float(v) for v in batch.ego_size[i, :2])
    corners = box_corners(states[..., :2], states[..., 2], ego_len, ego_wid)  # (C1, K1, 4, 2)
    out: dict[str, np.ndarray] = {}
    out["nc"], out["collision"], out["ttc"] = _collisions(batch, i, geo, states, corners, agents, valid, config)
    drivable = geo.drivable(shapely.points(corners.reshape(-1, 2)))
    out["dac"] = drivable.reshape(len(states), -1).all(-1).astype(np.float64)
    out.update(_lane_metrics(batch, geo, states, config))
    out["hc"] = comfort_ok(states, config.dt_sim, config).astype(np.float64)
    start = shapely.line_locate_point(geo.route, shapely.points(states[0, 0, :2]))
    end = shapely.line_locate_point(geo.route, shapely.points(states[:, -1, :2]))
    out["progress"] = np.maximum(end - start, 0.0)
    return out


def score_trajectories_navsim_style(
    batch: SceneBatch,
    trajectories: np.ndarray,
    *,
    reactive: bool = False,
    config: ScorerConfig = ScorerConfig(),
    human_filter: bool = True,
    previous_plans: np.ndarray | None = None,
    reference_progress: np.ndarray | None = None,
) -> ScoreResult:
    """Same contract as :func:`.scoring.score_trajectories`; one scene (all its proposals) at a time.

    The logged expert of each scene is simulated and scored with the proposals (no cache).
    """
    traj, full, ec = prepare(batch, trajectories, config, human_filter, previous_plans)
    S, C = traj.shape[:2]
    if reference_progress is None and config.progress_reference == "rule_planner":
        reference_progress = rule_planner_progress(batch)
    raw = {k: np.zeros((S, C + 1), dtype=bool if k in ("collision", "tl_unknown") else np.float64) for k in _RAW_KEYS}
    for i in range(S):
        for k, v in _scene_raw(batch, i, full[i], reactive, config).items():
            raw[k][i] = v
    return combine(raw, C, reference_progress, human_filter, ec, config)
