"""A straightforward per-trajectory EPDMS implementation (Python loops + shapely polygons).

Same definitions as :mod:`.scoring` (see its docstring), written the obvious way: one trajectory
at a time, one step at a time, one agent / lane / segment at a time. It exists to check the
vectorized scorer (identical scores) and as the baseline of ``benchmarks/bench_sim_scoring.py``.
Simulation (ego tracker, agents), input validation, the plan-only EC term and the final
aggregation are shared with the vectorized scorer; the per-step geometry is not.
"""

from __future__ import annotations

import math

import numpy as np
from shapely.geometry import LineString, Point, Polygon

from ..scene import STATIC, TL_RED, TL_UNKNOWN, SceneBatch
from .agents import interpolate_log, simulate_agents
from .aggregate import combine
from .comfort import comfort_ok
from .config import ScorerConfig, ScoreResult
from .kinematics import simulate_ego
from .scorer import prepare
from .scoring import rule_planner_progress


def _angle_diff(a: float, b: float) -> float:
    d = (a - b) % (2 * math.pi)
    return min(d, 2 * math.pi - d)


def _box(x, y, h, length, width) -> Polygon:
    c, s = math.cos(h), math.sin(h)
    pts = []
    for fl, fw in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
        pts.append((x + fl * length / 2 * c - fw * width / 2 * s, y + fl * length / 2 * s + fw * width / 2 * c))
    return Polygon(pts)


class _SceneMap:
    """Shapely geometry of one scene's lanes, polygons and route."""

    def __init__(self, batch: SceneBatch, i: int):
        self.lanes = []  # (lane index, LineString, half width, [(a, b, LineString, tangent, heading)])
        for l in np.flatnonzero(batch.lane_valid[i]):
            pts = batch.lanes[i, l].astype(np.float64)
            segs = []
            for j in range(len(pts) - 1):
                a, b = pts[j], pts[j + 1]
                length = math.hypot(*(b - a))
                if length > 1e-9:
                    segs.append((LineString([a, b]), (b - a) / length, math.atan2(b[1] - a[1], b[0] - a[0])))
            self.lanes.append((int(l), LineString(pts), 0.5 * float(batch.lane_width[i, l]), segs))
        self.polygons = []
        for d in range(batch.drivable_polygons.shape[1]):
            v = batch.drivable_polygons[i, d][batch.drivable_vertex_valid[i, d]].astype(np.float64)
            if len(v) >= 3:
                self.polygons.append(Polygon(v))
        route = batch.route_polyline[i][batch.route_valid[i]].astype(np.float64)
        self.route = LineString(route)
        self.intersection = batch.lane_is_intersection[i]
        self.tl = batch.lane_tl[i]

    def drivable(self, p: Point) -> bool:
        for _, line, hw, _ in self.lanes:
            if line.distance(p) <= hw:
                return True
        return any(poly.contains(p) for poly in self.polygons)


def _at_fault(m: _SceneMap, ego, ego_len, ego_wid, agent, al, aw, behind: bool, config: ScorerConfig) -> bool:
    """nuPlan's collision classes, checked in order (see :mod:`.scoring`)."""
    if ego[3] < config.stopped_speed:
        return False  # stopped ego
    if agent[3] < config.stopped_speed:
        return True  # ego drove into a stopped agent
    if behind:
        return False  # hit from behind
    ego_box = _box(*ego[:3], ego_len, ego_wid)
    corners = list(ego_box.exterior.coords)[:4]  # front-left, front-right, rear-right, rear-left
    agent_box = _box(*agent[:3], al, aw)
    if LineString([corners[0], corners[1]]).intersects(agent_box):
        return True  # front collision
    # Side collision: at fault only while occupying several lanes (no lane holds all corners).
    for _, line, hw, _ in m.lanes:
        if all(line.distance(Point(c)) <= hw for c in corners):
            return False
    return True


def _trajectory_metrics(batch, i, m: _SceneMap, st, ag, av, config: ScorerConfig) -> dict:
    dt = config.dt_sim
    K1 = st.shape[0]
    ego_len, ego_wid = float(batch.ego_size[i, 0]), float(batch.ego_size[i, 1])
    out = {"nc": 1.0, "collision": False, "ttc": 1.0}
    for n in range(ag.shape[0]):
        al, aw = float(batch.agent_size[i, n, 0]), float(batch.agent_size[i, n, 1])
        first = None
        for k in range(K1):
            ex, ey, eh, ev = st[k, :4]
            c, s = math.cos(eh), math.sin(eh)
            if not av[n, k]:
                continue
            ax, ay, ah, asp = ag[n, k]
            overlap = _box(ex, ey, eh, ego_len, ego_wid).intersects(_box(ax, ay, ah, al, aw))
            behind = (ax - ex) * c + (ay - ey) * s < -0.5 * ego_len
            if overlap and first is None:
                first = k
                out["collision"] = True
                if _at_fault(m, st[k], ego_len, ego_wid, ag[n, k], al, aw, behind, config):
                    value = 0.5 if batch.agent_type[i, n] == STATIC else 0.0
                    out["nc"] = min(out["nc"], value)
            if not overlap and not behind and ev >= config.stopped_speed:
                for tau in config.ttc_horizons:
                    e_box = _box(ex + ev * c * tau, ey + ev * s * tau, eh, ego_len, ego_wid)
                    a_box = _box(ax + asp * math.cos(ah) * tau, ay + asp * math.sin(ah) * tau, ah, al, aw)
                    if e_box.intersects(a_box):
                        out["ttc"] = 0.0
    # DAC.
    dac = 1.0
    for k in range(K1):
        poly = _box(*st[k, :3], ego_len, ego_wid)
        for corner in list(poly.exterior.coords)[:4]:
            if not m.drivable(Point(corner)):
                dac = 0.0
    out["dac"] = dac
    # Lane-based metrics on the centre point.
    backwards, tl_bad, tl_unknown = 0.0, False, False
    start_lanes = {l for l, line, hw, _ in m.lanes if line.distance(Point(st[0, :2])) <= hw}
    drift = []
    for k in range(K1):
        p = Point(st[k, :2])
        heading = st[k, 2]
        disp = st[k, :2] - st[k - 1, :2] if k > 0 else np.zeros(2)
        best = -math.inf
        nearest = math.inf
        in_junction = red_new = not_red = False
        tl_time = min(batch.history_steps + int(math.floor(k * dt / batch.dt + 1e-9)), batch.num_steps - 1)
        for l, _line, hw, segs in m.lanes:
            code = int(m.tl[l, tl_time])
            for seg, tangent, seg_heading in segs:
                dist = seg.distance(p)
                dh = _angle_diff(heading, seg_heading)
                if dh < config.lk_alignment:
                    nearest = min(nearest, dist)
                if dist > hw:
                    continue
                best = max(best, float(disp @ tangent))
                if m.intersection[l]:
                    in_junction = True
                if dh < config.tl_alignment:
                    if code == TL_RED and l not in start_lanes:
                        red_new = True
                    if code != TL_RED:
                        not_red = True
                    if code == TL_UNKNOWN and l not in start_lanes:
                        tl_unknown = True
        if best > -math.inf:
            backwards += max(-best, 0.0)
        tl_bad |= red_new and not not_red
        drift.append(nearest > config.lk_threshold and not in_junction)
    out["ddc"] = 0.0 if backwards > config.ddc_zero else 0.5 if backwards > config.ddc_half else 1.0
    out["tlc"] = 0.0 if tl_bad else 1.0
    out["tl_unknown"] = tl_unknown
    longest = run = 0
    for flag in drift:
        run = run + 1 if flag else 0
        longest = max(longest, run)
    out["lk"] = 1.0 if longest * dt <= config.lk_duration + 1e-9 else 0.0
    out["hc"] = float(comfort_ok(st[None], dt, config)[0])
    progress = m.route.project(Point(st[-1, :2])) - m.route.project(Point(st[0, :2]))
    out["progress"] = max(progress, 0.0)
    return out


def score_trajectories_reference(
    batch: SceneBatch,
    trajectories: np.ndarray,
    *,
    reactive: bool = False,
    config: ScorerConfig = ScorerConfig(),
    human_filter: bool = True,
    previous_plans: np.ndarray | None = None,
    reference_progress: np.ndarray | None = None,
) -> ScoreResult:
    """Same contract as :func:`.scoring.score_trajectories`, one trajectory at a time."""
    traj, full, ec = prepare(batch, trajectories, config, human_filter, previous_plans)
    S, C = traj.shape[:2]
    if reference_progress is None and config.progress_reference == "rule_planner":
        reference_progress = rule_planner_progress(batch)
    keys = ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc", "progress", "collision", "tl_unknown")
    raw = {k: np.zeros((S, C + 1), dtype=bool if k in ("collision", "tl_unknown") else np.float64) for k in keys}
    for i in range(S):
        scene = batch.subset([i])
        m = _SceneMap(batch, i)
        steps = int(round(config.num_poses * batch.dt / config.dt_sim))
        log, log_valid = interpolate_log(scene, steps, config.dt_sim)
        for c in range(C + 1):
            st = simulate_ego(scene, full[i : i + 1, c : c + 1], config.dt_sim)
            if reactive:
                ag, av = simulate_agents(scene, st, True, config.dt_sim)
                ag, av = ag[0, 0], av[0, 0]
            else:
                ag, av = log[0], log_valid[0]
            metrics = _trajectory_metrics(batch, i, m, st[0, 0], ag, av, config)
            for k in keys:
                raw[k][i, c] = metrics[k]
    return combine(raw, C, reference_progress, human_filter, ec, config)
