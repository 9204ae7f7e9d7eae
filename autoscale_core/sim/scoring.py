"""Vectorized EPDMS scorer (NAVSIM v2 conventions; see ``shared/notes/epdms.md``).

Pipeline per batch of trajectories (S scenes × C candidates, plus the logged expert as one extra
candidate per scene for the false-positive filter):

1. ``kinematics.simulate_ego`` drives each plan at 10 Hz (41 states over 4 s);
2. ``agents.simulate_agents`` gives the other agents (log replay or reactive IDM);
3. every sub-metric is computed on those states, vectorized over trajectories × steps × agents:

* **NC** — oriented-box overlap (separating axis theorem) between the ego and each valid agent at
  every step; only an agent's *first* collision counts, classified as nuPlan does, in this order:
  the ego is stopped (< 0.05 m/s) → not at fault; the agent is stopped → at fault; the agent's
  centre is behind the ego's rear bumper (hit from behind) → not at fault; the ego's front bumper
  (the segment between its front corners) touches the agent → at fault; otherwise the agent hit the
  ego's side → at fault only if the ego occupies more than one lane at that step (no single lane
  corridor contains all four footprint corners: changing lanes, or partly off the lanes). At-fault
  collision with a static object → 0.5, with anything else → 0.
* **DAC** — each footprint corner at every step must lie within half a lane width of some lane
  centerline or inside a drivable polygon.
* **DDC** — per step, the ego's displacement projected on the direction of the lanes containing
  its centre (the most favourable lane); the summed backwards travel > 6 m → 0, > 2 m → 0.5.
* **TLC** — 0 if the ego centre enters an aligned (|Δheading| < 60°) lane whose light is red at
  that time, which it was not in at t0, while in no aligned lane whose light is not red. TL_UNKNOWN
  lanes are not applicable and flagged in ``tl_unknown``.
* **EP** — progress along ``route_polyline`` (projection of the final vs the initial state) ÷ the
  best progress among the rule planner's collision- and drivable-compliant proposals
  (``progress_reference="rule_planner"``, default, independent of the candidate set) or among the
  scored candidates themselves (``"candidates"``, PDM-Closed's internal use); EP = 1 when that
  best is below 5 m.
* **TTC** — at each step with the ego moving, ego and agents are projected at constant velocity
  0.3, 0.6 and 0.9 s ahead; an overlap with an agent not behind the ego and not already colliding
  → 0.
* **LK** — the ego centre is more than 0.5 m from every aligned (|Δheading| < 90°) lane centerline
  for more than 2 s in a row, outside intersection lanes → 0.
* **HC** — nuPlan's comfort bounds on the driven 10 Hz states (Savitzky–Golay derivatives,
  window 5, polyorder 2).
* **EC** — only with ``previous_plans`` (the previous frame's plan, in the current scene frame,
  pose j at t = j·dt): RMS differences of the plans' finite-difference acceleration, jerk, yaw
  rate and yaw acceleration over the overlap; 1 otherwise.

False-positive filter (``human_filter=True``): a multiplier or weighted metric (all but EP) that
the logged expert also fails in that scene is set to 1. ``pdms`` (v1) uses the unfiltered metrics:
NC · DAC · (5·TTC + 5·EP + 2·HC) / 12.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, fields
from functools import lru_cache

import numpy as np

from scipy.signal import savgol_filter

from ..geometry import (
    box_corners,
    boxes_overlap,
    boxes_overlap_offset,
    distance_to_polygon_boundary,
    points_in_polygon_edges,
    polygon_edges,
    project_on_polyline,
)
from ..scene import SceneBatch, STATIC, TL_RED, TL_UNKNOWN, wrap_angle
from .agents import simulate_agents
from .kinematics import simulate_ego

METRICS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec")
FILTERED = ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc", "ec")


@dataclass(frozen=True)
class ScorerConfig:
    """Scorer constants (units: s, m, m/s, rad)."""

    num_poses: int = 8  # planning horizon in poses at the batch's dt
    dt_sim: float = 0.1
    stopped_speed: float = 0.05
    ddc_half: float = 2.0  # backwards travel (m) above which DDC = 0.5
    ddc_zero: float = 6.0  # ... and above which DDC = 0
    tl_alignment: float = np.pi / 3
    ttc_horizons: tuple[float, ...] = (0.3, 0.6, 0.9)
    lk_threshold: float = 0.5
    lk_duration: float = 2.0
    lk_alignment: float = np.pi / 2
    ep_min_progress: float = 5.0
    progress_reference: str = "rule_planner"  # or "candidates"
    hc_lon_acc: tuple[float, float] = (-4.05, 2.40)
    hc_lat_acc: float = 4.89
    hc_yaw_rate: float = 0.95
    hc_yaw_acc: float = 1.93
    hc_lon_jerk: float = 4.13
    hc_jerk: float = 8.37
    hc_window: int = 5  # Savitzky-Golay window (steps, polyorder 2) for HC's derivatives, as nuPlan
    ec_acc: float = 0.7
    ec_jerk: float = 0.5
    ec_yaw_rate: float = 0.1
    ec_yaw_acc: float = 0.1
    weights: tuple[float, float, float, float, float] = (5.0, 5.0, 2.0, 2.0, 2.0)  # EP TTC LK HC EC
    chunk_trajectories: int = 1024  # memory bound: trajectories simulated/scored at once
    grid_cell: float = 1.5  # lane-index cell (m) for dense candidate sets (>= 8 per scene)
    grid_cell_sparse: float = 2.5  # ... and for sparse ones: fewer cells to build, as fast to query


@dataclass
class ScoreResult:
    """Per (scene, candidate) scores, each (S, C)."""

    nc: np.ndarray
    dac: np.ndarray
    ddc: np.ndarray
    tlc: np.ndarray
    ep: np.ndarray
    ttc: np.ndarray
    lk: np.ndarray
    hc: np.ndarray
    ec: np.ndarray
    epdms: np.ndarray
    pdms: np.ndarray
    collision: np.ndarray  # any ego–agent overlap (at fault or not)
    progress: np.ndarray  # m along the route
    tl_unknown: np.ndarray  # entered a lane whose light state is unknown (TLC not applicable)
    reference_progress: np.ndarray  # (S,) EP denominator used

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


# ---------------------------------------------------------------------------- validation
def _scene_label(batch: SceneBatch, i: int) -> str:
    ids = batch.meta.get("scene_id")
    return repr(str(ids[i])) if ids is not None and len(ids) > i else f"#{i}"


def validate_trajectories(batch: SceneBatch, trajectories, num_poses: int, name: str = "trajectories") -> np.ndarray:
    """(S, C, F, 3) float64 or ValueError naming the scene."""
    traj = np.asarray(trajectories, dtype=np.float64)
    S = len(batch)
    first = _scene_label(batch, 0) if S else "<none>"
    if traj.ndim != 4 or traj.shape[0] != S or traj.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (S={S}, C, {num_poses}, 3); got {traj.shape} (first scene {first})")
    if traj.shape[1] == 0:
        raise ValueError(f"{name}: empty candidate set (C = 0) for scene {first} and all {S} scenes")
    if traj.shape[2] != num_poses:
        raise ValueError(
            f"{name}: wrong horizon for scene {first}: {traj.shape[2]} poses, expected {num_poses} "
            f"at {batch.dt} s"
        )
    bad = ~np.isfinite(traj).all(axis=(1, 2, 3))
    if bad.any():
        names = ", ".join(_scene_label(batch, i) for i in np.flatnonzero(bad)[:5])
        raise ValueError(f"{name} contain NaN or inf for scene(s) {names}")
    return traj


# ---------------------------------------------------------------------------- geometry
class LaneIndex:
    """Lane centerline segments hashed on a uniform grid, for exact near-segment queries.

    A segment is registered in every cell within its query radius (max(half lane width,
    ``min_radius``) + ``pad``) of it, so every segment within the radius of a point is found in
    the point's cell. Queries return sparse (point, segment) pairs.
    """

    def __init__(
        self, batch: SceneBatch, min_radius: float, cell: float = 2.0, pad: float = 0.0, bounds: np.ndarray | None = None
    ):
        lanes = batch.lanes  # float32: pre-selection only, with a margin; kept segments in float64
        a, b = lanes[:, :, :-1], lanes[:, :, 1:]
        keep = np.repeat(batch.lane_valid[:, :, None], a.shape[2], axis=2)  # degenerate segments: dropped below
        if bounds is not None:
            # Only segments that can be near a query: (S, 4) x0, y0, x1, y1 per scene.
            r = (np.maximum(0.5 * batch.lane_width, min_radius)[:, :, None] + pad + 1e-3).astype(np.float32)
            bx = bounds.astype(np.float32)[:, None, None]
            ax, ay, bx_, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
            keep &= (np.minimum(ax, bx_) - r <= bx[..., 2]) & (np.maximum(ax, bx_) + r >= bx[..., 0])
            keep &= (np.minimum(ay, by) - r <= bx[..., 3]) & (np.maximum(ay, by) + r >= bx[..., 1])
        si, li, pi = np.nonzero(keep)
        start = lanes[si, li, pi].astype(np.float64)
        d = lanes[si, li, pi + 1].astype(np.float64) - start
        ok = (d**2).sum(-1) > 1e-18  # no degenerate segments
        si, li, start, d = si[ok], li[ok], start[ok], d[ok]
        self.scene, self.lane = si, li
        self.a, self.d = start, d
        self._ax, self._ay = self.a[:, 0].copy(), self.a[:, 1].copy()
        self._dx, self._dy = self.d[:, 0].copy(), self.d[:, 1].copy()
        self.len2 = self._dx * self._dx + self._dy * self._dy
        self.heading = np.arctan2(self.d[:, 1], self.d[:, 0])
        self.tangent = self.d / np.sqrt(self.len2)[:, None]
        self.half_width = 0.5 * batch.lane_width[si, li].astype(np.float64)
        self.radius = np.maximum(self.half_width, min_radius)
        self.cell, self.pad = cell, pad
        reach = self.radius + pad + 1e-6
        end = self.a + self.d
        lo = np.minimum(self.a, end) - reach[:, None]
        hi = np.maximum(self.a, end) + reach[:, None]
        self.origin = lo.min(0) if len(si) else np.zeros(2)
        c0 = np.floor((lo - self.origin) / cell).astype(np.int64)
        c1 = np.floor((hi - self.origin) / cell).astype(np.int64)
        self.nx, self.ny = (int(c1[:, i].max()) + 1 if len(si) else 1 for i in (0, 1))
        span = c1 - c0 + 1
        counts = span.prod(-1)
        rep = np.repeat(np.arange(len(si)), counts)
        offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        cx = c0[rep, 0] + offs % span[rep, 0]
        cy = c0[rep, 1] + offs // span[rep, 0]
        # (Every cell of the segment's padded bounding box: a finer distance filter removes only a
        # few percent of the entries and costs more than it saves.)
        keys = (si[rep].astype(np.int64) * self.ny + cy) * self.nx + cx
        order = np.argsort(keys, kind="stable")
        self.keys, self.segs = keys[order], rep[order]

    def _distance(self, points: np.ndarray, seg: np.ndarray) -> np.ndarray:
        # Written per component: reductions over a length-2 axis are slow in numpy.
        ax, ay, dx, dy = self._ax[seg], self._ay[seg], self._dx[seg], self._dy[seg]
        px, py = points[:, 0] - ax, points[:, 1] - ay
        t = np.clip((px * dx + py * dy) / self.len2[seg], 0.0, 1.0)
        ex, ey = px - t * dx, py - t * dy
        return np.sqrt(ex * ex + ey * ey)

    def query(self, scene: np.ndarray, points: np.ndarray, extra: float = 0.0):
        """Pairs within each segment's radius (+ ``extra`` <= pad): (point, segment, distance)."""
        cell = np.floor((points - self.origin) / self.cell).astype(np.int64)
        inside = (cell >= 0).all(-1) & (cell[:, 0] < self.nx) & (cell[:, 1] < self.ny)
        key = (scene.astype(np.int64) * self.ny + cell[:, 1]) * self.nx + cell[:, 0]
        lo = np.searchsorted(self.keys, key, "left")
        hi = np.searchsorted(self.keys, key, "right")
        cnt = np.where(inside, hi - lo, 0)
        pt = np.repeat(np.arange(len(points)), cnt)
        offs = np.arange(cnt.sum()) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        seg = self.segs[np.repeat(lo, cnt) + offs]
        dist = self._distance(points[pt], seg)
        keep = dist <= self.radius[seg] + extra
        return pt[keep], seg[keep], dist[keep]

    def on_lane_tracks(self, scene: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """(M, K) bool: point k of track m within half a lane width of some centerline.

        ``tracks`` (M, K, 2) are time-ordered (e.g. one footprint corner over the simulation): the
        segment that contained a track's previous point is tried first (one distance), and only
        the points it does not contain go through the grid query. Exact either way.
        """
        M, K, _ = tracks.shape
        on = np.zeros((M, K), dtype=bool)
        hint = np.full(M, -1, dtype=np.int64)
        for k in range(K):  # over time steps only
            p = tracks[:, k]
            has = np.flatnonzero(hint >= 0)
            hit = np.zeros(M, dtype=bool)
            if len(has):
                hit[has] = self._distance(p[has], hint[has]) <= self.half_width[hint[has]]
            todo = np.flatnonzero(~hit)
            pt, seg, dist = self.query(scene[todo], p[todo])
            inside = dist <= self.half_width[seg]
            found = todo[pt[inside]]
            hit[found] = True
            hint[todo] = -1
            hint[found] = seg[inside]  # any containing segment (the last one written wins)
            on[:, k] = hit
        return on

    def on_lane(self, scene: np.ndarray, points: np.ndarray, fine_cell: float = 0.5) -> np.ndarray:
        """(M,) bool: within half a lane width of some centerline.

        Many candidates of one scene put their corners in the same places: points are first
        bucketed into ``fine_cell`` cells, and a cell whose whole square is provably inside a lane
        corridor (centre distance + half diagonal <= half width) accepts its points without
        per-point work. Exact either way; the shortcut is used only when it saves work.
        """
        on = np.zeros(len(points), dtype=bool)
        half_diag = fine_cell * np.sqrt(0.5)
        fine = np.floor(points / fine_cell).astype(np.int64)
        key = (scene.astype(np.int64) << 40) + ((fine[:, 1] + (1 << 19)) << 20) + (fine[:, 0] + (1 << 19))
        unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
        todo = np.arange(len(points))
        if len(unique) < 0.5 * len(points) and self.pad >= half_diag:
            centre = (np.floor(points[first] / fine_cell) + 0.5) * fine_cell
            pt, seg, dist = self.query(scene[first], centre, extra=half_diag)
            full = np.zeros(len(unique), dtype=bool)
            full[pt[dist + half_diag <= self.half_width[seg] - 1e-9]] = True
            on = full[inverse]
            todo = np.flatnonzero(~on)
        pt, seg, dist = self.query(scene[todo], points[todo])
        on[todo[pt[dist <= self.half_width[seg]]]] = True
        return on


def _points_in_scene_polygons(scene: np.ndarray, points: np.ndarray, batch: SceneBatch, fine_cell: float = 0.5) -> np.ndarray:
    """(M,) bool: point inside any drivable polygon of its scene (even-odd rule).

    As in :meth:`LaneIndex.on_lane`, when many points share ``fine_cell`` cells a cell whose
    centre is farther than half its diagonal from every polygon edge decides all its points.
    """
    inside_any = np.zeros(len(points), dtype=bool)
    D = batch.drivable_polygons.shape[1]
    if D == 0 or len(points) == 0:
        return inside_any
    edges = polygon_edges(batch.drivable_polygons.astype(np.float64), batch.drivable_vertex_valid)
    fine = np.floor(points / fine_cell).astype(np.int64)
    key = (scene.astype(np.int64) << 40) + ((fine[:, 1] + (1 << 19)) << 20) + (fine[:, 0] + (1 << 19))
    unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
    use_cells = len(unique) < 0.5 * len(points)
    if use_cells:
        centre = (np.floor(points[first] / fine_cell) + 0.5) * fine_cell
        cell_scene = scene[first]
    for d in range(D):  # few polygons per scene; vectorized over points and vertices
        todo = np.arange(len(points))
        if use_cells:
            polygon = [x[cell_scene, d] for x in edges]
            inside = points_in_polygon_edges(centre, *polygon)
            edge_dist = distance_to_polygon_boundary(centre, *polygon[:3])
            decided = (edge_dist > fine_cell * np.sqrt(0.5) + 1e-9)[inverse]
            inside_any |= decided & inside[inverse]
            todo = np.flatnonzero(~decided & ~inside_any)
        inside_any[todo] |= points_in_polygon_edges(points[todo], *(x[scene[todo], d] for x in edges))
    return inside_any


def route_progress(batch: SceneBatch, scene: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(M,) arc length (m) of each point's projection on its scene's route polyline."""
    route = batch.route_polyline.astype(np.float64)  # per scene once, gathered per point
    return project_on_polyline(points, route[scene], batch.route_valid[scene])[0]


@lru_cache(maxsize=16)
def _savgol_taps(num: int, window: int, deriv: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``savgol_filter(x, window, 2, deriv, delta=dt, mode="interp")`` along the last axis as
    banded taps: output k = Σ_j coef[k, j] · x[..., index[k, j]] (the filter is linear; this is
    much cheaper than its edge polynomial fits). Returns index, coef, each (num, window)."""
    matrix = savgol_filter(np.eye(num), window, 2, deriv=deriv, delta=dt, axis=0, mode="interp")
    start = np.clip(np.arange(num) - window // 2, 0, num - window)  # the window each row uses
    index = start[:, None] + np.arange(window)
    return index, np.take_along_axis(matrix, index, 1)


def _savgol(x: np.ndarray, window: int, deriv: int, dt: float) -> np.ndarray:
    index, coef = _savgol_taps(x.shape[-1], window, deriv, dt)
    out = x[..., index[:, 0]] * coef[:, 0]
    for j in range(1, window):
        out += x[..., index[:, j]] * coef[:, j]
    return out


def comfort_ok(states: np.ndarray, dt: float, config: ScorerConfig) -> np.ndarray:
    """HC on (..., K, 5) states → (...) bool."""
    heading = np.unwrap(states[..., 2], axis=-1)
    K = states.shape[-2]
    window = min(config.hc_window, K - (1 - K % 2))
    sg = lambda x, d: _savgol(x, window, d, float(dt))  # noqa: E731
    speed, lon_acc = states[..., 3], sg(states[..., 4], 0)
    yaw_rate = sg(heading, 1)
    yaw_acc = sg(heading, 2)
    lat_acc = speed * yaw_rate
    lon_jerk = sg(states[..., 4], 1)
    c, s = np.cos(heading), np.sin(heading)
    ax, ay = lon_acc * c - lat_acc * s, lon_acc * s + lat_acc * c
    jerk = np.hypot(sg(ax, 1), sg(ay, 1))
    eps = 1e-9
    ok = (lon_acc >= config.hc_lon_acc[0] - eps) & (lon_acc <= config.hc_lon_acc[1] + eps)
    ok &= np.abs(lat_acc) <= config.hc_lat_acc + eps
    ok &= np.abs(yaw_rate) <= config.hc_yaw_rate + eps
    ok &= np.abs(yaw_acc) <= config.hc_yaw_acc + eps
    ok &= np.abs(lon_jerk) <= config.hc_lon_jerk + eps
    ok &= jerk <= config.hc_jerk + eps
    return ok.all(-1)


def plan_profiles(poses: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Finite-difference profiles of a pose sequence (..., M, 3) spaced ``dt``.

    Returns acc (..., M-2), jerk (..., M-3), yaw_rate (..., M-1), yaw_acc (..., M-2).
    """
    p = poses
    speed = np.sqrt((np.diff(p[..., :2], axis=-2) ** 2).sum(-1)) / dt
    acc = np.diff(speed, axis=-1) / dt
    jerk = np.diff(acc, axis=-1) / dt
    yaw_rate = wrap_angle(np.diff(p[..., 2], axis=-1)) / dt
    yaw_acc = np.diff(yaw_rate, axis=-1) / dt
    return {"acc": acc, "jerk": jerk, "yaw_rate": yaw_rate, "yaw_acc": yaw_acc}


def extended_comfort(
    start: np.ndarray, plans: np.ndarray, previous: np.ndarray, dt: float, config: ScorerConfig
) -> np.ndarray:
    """EC (...,) in {0, 1}: consistency of ``plans`` (..., F, 3) with ``previous`` (..., F, 3).

    ``previous[..., j]`` is at t = j·dt (the previous frame was one step earlier); ``start`` (..., 3)
    is the current t0 pose, which the previous plan's first pose should also predict.
    """
    cur = np.concatenate([start[..., None, :], plans], -2)  # poses at t = 0 … F·dt
    F = plans.shape[-2]
    cur_overlap = cur[..., : F, :]  # t = 0 … (F-1)·dt, the times the previous plan covers
    cp, pp = plan_profiles(cur_overlap, dt), plan_profiles(previous, dt)
    limits = {"acc": config.ec_acc, "jerk": config.ec_jerk, "yaw_rate": config.ec_yaw_rate, "yaw_acc": config.ec_yaw_acc}
    ok = np.ones(plans.shape[:-2], dtype=bool)
    for key, limit in limits.items():
        rms = np.sqrt(np.mean((cp[key] - pp[key]) ** 2, axis=-1))
        ok &= rms <= limit + 1e-9
    return ok.astype(np.float64)


# ---------------------------------------------------------------------------- raw metrics
def raw_metrics(
    batch: SceneBatch, traj: np.ndarray, reactive: bool, config: ScorerConfig
) -> dict[str, np.ndarray]:
    """Unfiltered metrics for (S, C, F, 3) trajectories → dict of (S, C) arrays.

    Keys: nc, dac, ddc, tlc, ttc, lk, hc, progress, collision, tl_unknown.
    """
    S, C = traj.shape[:2]
    dt = config.dt_sim
    states = simulate_ego(batch, traj, dt)  # (S, C, K1, 5)
    K1 = states.shape[2]
    agents, agent_valid = simulate_agents(batch, states, reactive, dt)  # (S, C|1, N, K1, ·)
    B = S * C
    st = states.reshape(B, K1, 5)
    scene_of = np.repeat(np.arange(S), C)
    cand_of = np.tile(np.arange(C), S)
    ego_len = batch.ego_size[scene_of, 0].astype(np.float64)
    ego_wid = batch.ego_size[scene_of, 1].astype(np.float64)
    out: dict[str, np.ndarray] = {}

    margin = 0.5 * np.hypot(ego_len, ego_wid).reshape(S, C).max(1)[:, None]
    xy = states[..., :2].reshape(S, -1, 2)
    bounds = np.concatenate([xy.min(1) - margin, xy.max(1) + margin], -1)  # (S, 4)
    # The 0.5 m padding enables on_lane's whole-cell shortcut, which only pays off when many
    # candidates of a scene share cells; without it the index is smaller and queries cheaper.
    pad = 0.5 if C >= 8 else 0.0
    cell = config.grid_cell if C >= 8 else config.grid_cell_sparse
    index = LaneIndex(batch, config.lk_threshold, cell, pad=pad, bounds=bounds)

    nc, collision, ttc = _collisions(batch, st, scene_of, cand_of, agents, agent_valid, config, index)
    out.update(nc=nc, collision=collision, ttc=ttc)
    # DAC on footprint corners.
    corners = box_corners(st[..., :2], st[..., 2], ego_len[:, None], ego_wid[:, None]).reshape(-1, 2)
    corner_scene = np.repeat(scene_of, K1 * 4)
    if index.pad > 0:  # dense candidates: whole-cell shortcut
        on = index.on_lane(corner_scene, corners)
    else:  # sparse: follow each corner over time, reusing the segment that contained it
        tracks = corners.reshape(B, K1, 4, 2).transpose(0, 2, 1, 3).reshape(B * 4, K1, 2)
        on = index.on_lane_tracks(np.repeat(scene_of, 4), tracks).reshape(B, 4, K1).transpose(0, 2, 1).reshape(-1)
    off = np.flatnonzero(~on)
    on[off] = _points_in_scene_polygons(corner_scene[off], corners[off], batch)
    out["dac"] = on.reshape(B, K1 * 4).all(-1).astype(np.float64)

    # Centre-point lane queries for DDC, TLC, LK.
    centres = st[..., :2].reshape(-1, 2)
    centre_scene = np.repeat(scene_of, K1)
    pt, seg, dist = index.query(centre_scene, centres)
    lane = index.lane[seg]
    in_lane = dist <= index.half_width[seg]
    ego_heading = st[..., 2].reshape(-1)
    dheading = np.abs(wrap_angle(ego_heading[pt] - index.heading[seg]))
    step_of = pt % K1
    traj_of = pt // K1

    # DDC: most favourable projection of the step's displacement on a containing lane.
    disp = np.zeros_like(st[..., :2])
    disp[:, 1:] = np.diff(st[..., :2], axis=1)
    disp = disp.reshape(-1, 2)
    proj = (disp[pt] * index.tangent[seg]).sum(-1)
    best = np.full(len(centres), -np.inf)
    np.maximum.at(best, pt[in_lane], proj[in_lane])
    backwards = np.where(np.isfinite(best), np.maximum(-best, 0.0), 0.0).reshape(B, K1).sum(-1)
    out["ddc"] = np.where(backwards > config.ddc_zero, 0.0, np.where(backwards > config.ddc_half, 0.5, 1.0))

    # TLC.
    tl_index = np.minimum(
        batch.history_steps + np.floor(np.arange(K1) * dt / batch.dt + 1e-9).astype(int), batch.num_steps - 1
    )
    code = batch.lane_tl[scene_of[traj_of], lane, tl_index[step_of]]
    start_keys = np.unique(traj_of[in_lane & (step_of == 0)] * batch.lanes.shape[1] + lane[in_lane & (step_of == 0)])
    new_lane = ~np.isin(traj_of * batch.lanes.shape[1] + lane, start_keys)
    aligned_in = in_lane & (dheading < config.tl_alignment)
    red_new = np.zeros(len(centres), dtype=bool)
    red_new[pt[aligned_in & new_lane & (code == TL_RED)]] = True
    not_red = np.zeros(len(centres), dtype=bool)
    not_red[pt[aligned_in & (code != TL_RED)]] = True
    out["tlc"] = 1.0 - (red_new & ~not_red).reshape(B, K1).any(-1)
    unknown = np.zeros(B, dtype=bool)
    unknown[traj_of[aligned_in & new_lane & (code == TL_UNKNOWN)]] = True
    out["tl_unknown"] = unknown

    # LK.
    aligned = dheading < config.lk_alignment
    nearest = np.full(len(centres), np.inf)
    np.minimum.at(nearest, pt[aligned], dist[aligned])
    in_junction = np.zeros(len(centres), dtype=bool)
    in_junction[pt[in_lane & batch.lane_is_intersection[scene_of[traj_of], lane]]] = True
    drift = ((nearest > config.lk_threshold) & ~in_junction).reshape(B, K1)
    out["lk"] = (_longest_run(drift) * dt <= config.lk_duration + 1e-9).astype(np.float64)

    out["hc"] = comfort_ok(st, dt, config).astype(np.float64)
    # Every candidate of a scene starts at the same t0 state: project that once per scene.
    s0 = route_progress(batch, np.arange(S), states[:, 0, 0, :2])
    s1 = route_progress(batch, scene_of, st[:, -1, :2])
    out["progress"] = np.maximum(s1 - s0[scene_of], 0.0)
    return {k: v.reshape(S, C) for k, v in out.items()}


def _longest_run(flags: np.ndarray) -> np.ndarray:
    """(B, K) bool → (B,) length of the longest run of True."""
    run = np.zeros(flags.shape[0], dtype=np.int64)
    longest = np.zeros_like(run)
    for k in range(flags.shape[1]):  # over time steps only
        run = np.where(flags[:, k], run + 1, 0)
        longest = np.maximum(longest, run)
    return longest


def in_multiple_lanes(index: LaneIndex, scene: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """(M,) bool: no single lane corridor contains all four footprint ``corners`` (M, 4, 2)."""
    M = len(corners)
    pt, seg, dist = index.query(np.repeat(scene, 4), corners.reshape(-1, 2))
    inside = dist <= index.half_width[seg]
    box, lane = pt[inside] // 4, index.lane[seg[inside]]
    corner = pt[inside] % 4
    # Distinct (box, lane, corner) triples, then count corners per (box, lane).
    L = int(index.lane.max()) + 1 if len(index.lane) else 1
    triples = np.unique((box.astype(np.int64) * L + lane) * 4 + corner)
    pairs, counts = np.unique(triples // 4, return_counts=True)
    one_lane = np.zeros(M, dtype=bool)
    one_lane[pairs[counts == 4] // L] = True
    return ~one_lane


def _collisions(batch, st, scene_of, cand_of, agents, agent_valid, config, index: LaneIndex):
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


# ---------------------------------------------------------------------------- aggregation
def combine(
    raw: dict[str, np.ndarray],
    num_candidates: int,
    reference_progress: np.ndarray | None,
    human_filter: bool,
    ec: np.ndarray,
    config: ScorerConfig,
) -> ScoreResult:
    """Turn raw metrics of (S, C+1) trajectories (last column = logged expert) into scores."""
    C = num_candidates
    cand = {k: v[:, :C].astype(np.float64) if v.dtype != bool else v[:, :C] for k, v in raw.items()}
    expert = {k: v[:, C] for k, v in raw.items()}
    progress = cand["progress"]
    if reference_progress is None:  # best compliant candidate (PDM-Closed's own normalisation)
        safe = (cand["nc"] * cand["dac"] * cand["ddc"] * cand["tlc"]) >= 1.0
        reference_progress = np.where(safe, progress, 0.0).max(-1)
    reference_progress = np.asarray(reference_progress, dtype=np.float64)
    best = reference_progress[:, None]
    ep = np.where(best < config.ep_min_progress, 1.0, np.clip(progress / np.maximum(best, 1e-9), 0.0, 1.0))
    scores = {k: cand[k] for k in ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc")}
    scores["ec"] = ec.astype(np.float64)
    raw_scores = dict(scores)
    if human_filter:
        for k in FILTERED:
            if k == "ec":
                continue  # the expert has no previous plan: EC = 1 for it
            scores[k] = np.where(expert[k][:, None] < 1.0, 1.0, scores[k])
    w_ep, w_ttc, w_lk, w_hc, w_ec = config.weights
    mult = scores["nc"] * scores["dac"] * scores["ddc"] * scores["tlc"]
    weighted = w_ep * ep + w_ttc * scores["ttc"] + w_lk * scores["lk"] + w_hc * scores["hc"] + w_ec * scores["ec"]
    epdms = mult * weighted / sum(config.weights)
    pdms = raw_scores["nc"] * raw_scores["dac"] * (5.0 * raw_scores["ttc"] + 5.0 * ep + 2.0 * raw_scores["hc"]) / 12.0
    return ScoreResult(
        **{k: scores[k] for k in ("nc", "dac", "ddc", "tlc")},
        ep=ep,
        ttc=scores["ttc"],
        lk=scores["lk"],
        hc=scores["hc"],
        ec=scores["ec"],
        epdms=epdms,
        pdms=pdms,
        collision=cand["collision"].astype(bool),
        progress=progress,
        tl_unknown=cand["tl_unknown"].astype(bool),
        reference_progress=reference_progress,
    )


def prepare(batch, trajectories, config, human_filter, previous_plans):
    """Validate inputs; returns (traj (S, C, F, 3), with-expert (S, C+1, F, 3), EC (S, C))."""
    if len(batch) == 0:
        raise ValueError("score_trajectories: empty scene batch")
    traj = validate_trajectories(batch, trajectories, config.num_poses)
    S, C = traj.shape[:2]
    if human_filter and batch.future_steps < config.num_poses:
        raise ValueError(
            f"human_filter needs {config.num_poses} logged future poses; scene {_scene_label(batch, 0)} "
            f"has {batch.future_steps}"
        )
    expert = batch.ego[:, batch.history_steps + 1 : batch.history_steps + 1 + config.num_poses, :3]
    expert = np.asarray(expert, dtype=np.float64)[:, None]
    if not human_filter:
        expert = traj[:, :1]  # placeholder column, ignored
    full = np.concatenate([traj, expert], axis=1)
    if previous_plans is None:
        ec = np.ones((S, C))
    else:
        prev = np.asarray(previous_plans, dtype=np.float64)
        if prev.ndim == 3:
            prev = np.broadcast_to(prev[:, None], (S, C) + prev.shape[1:])
        prev = validate_trajectories(batch, prev, config.num_poses, name="previous_plans")
        if prev.shape[1] != C:
            raise ValueError(f"previous_plans has {prev.shape[1]} candidates for {C} trajectories")
        start = np.broadcast_to(batch.ego[:, None, batch.history_steps, :3].astype(np.float64), (S, C, 3))
        ec = extended_comfort(start, traj, prev, batch.dt, config)
    return traj, full, ec


_PROGRESS_CACHE: dict[tuple, float] = {}
_PROGRESS_CACHE_SIZE = 200_000


def _fingerprints(batch: SceneBatch) -> list[str]:
    """Per-scene content fingerprint (16 hex chars) of the arrays scoring depends on: sums (and
    time-weighted sums) accumulated in float64 without float64 copies of the big arrays."""
    S = len(batch)
    w = np.arange(1, batch.num_steps + 1, dtype=np.float64)
    total = lambda x: x.reshape(S, -1).sum(1, dtype=np.float64)  # noqa: E731
    parts = [
        batch.ego.sum(2, dtype=np.float64) @ w,
        total(batch.ego_size),
        total(batch.agents),
        batch.agents[..., 0].sum(1, dtype=np.float64) @ w,
        total(batch.agent_valid),
        total(batch.agent_size),
        total(batch.lanes),
        total(batch.lane_width),
        batch.lane_tl.sum(1, dtype=np.float64) @ w,
        total(batch.drivable_polygons),
        total(batch.route_polyline),
        total(batch.lane_speed_limit),
        total(batch.lane_valid) + 2.0 * total(batch.lane_is_intersection),
        total(batch.drivable_vertex_valid) + 0.5 * total(batch.agent_type),
    ]
    finger = np.ascontiguousarray(np.stack(parts, 1))
    return [hashlib.blake2b(finger[i].tobytes(), digest_size=8).hexdigest() for i in range(S)]


def _scene_keys(batch: SceneBatch) -> list[tuple]:
    """Per-scene cache keys: scene id + content fingerprint."""
    ids = batch.meta.get("scene_id", np.arange(len(batch)))
    return [(str(i), f) for i, f in zip(ids, _fingerprints(batch))]


def rule_planner_progress(batch: SceneBatch) -> np.ndarray:
    """(S,) EP denominator: best compliant progress of the default :class:`RulePlanner`'s
    proposals. Cached per scene (id + content fingerprint), so repeated scoring of the same
    scenes does not re-plan."""
    from .planner import RulePlanner  # local import: the planner itself uses this scorer

    keys = _scene_keys(batch)
    missing = [i for i, k in enumerate(keys) if k not in _PROGRESS_CACHE]
    if missing:
        values = RulePlanner().reference_progress(batch.subset(missing))
        if len(_PROGRESS_CACHE) + len(missing) > _PROGRESS_CACHE_SIZE:
            _PROGRESS_CACHE.clear()
        _PROGRESS_CACHE.update({keys[i]: float(v) for i, v in zip(missing, values)})
    return np.array([_PROGRESS_CACHE[k] for k in keys], dtype=np.float64)


REFERENCE_KEY = "ep_reference_m"  # batch.meta key of the stored EP denominator (m)
REFERENCE_FINGERPRINT_KEY = "ep_reference_fp"  # ... and of the scene fingerprint it belongs to
HUMAN_FAIL_KEY = "human_fail_mask"  # ... and of the logged expert's failed metrics (bit i: FILTERED[i])


def precompute_reference_progress(batch: SceneBatch, *, store: bool = True) -> np.ndarray:
    """(S,) float64 EP denominators (m): the rule planner's best compliant progress per scene.

    Run once at dataset creation. With ``store`` the values are written to
    ``batch.meta["ep_reference_m"]`` (float) together with ``batch.meta["ep_reference_fp"]``, the
    scene's content fingerprint, and ``batch.meta["human_fail_mask"]`` (int, bit i set when the
    logged expert fails ``FILTERED[i]`` with log-replay agents and the default config: the human
    filter's input); :func:`score_trajectories` then uses the stored values for every
    scene whose content still matches them (a scene derived by editing a copy, e.g. a synthetic
    perturbation that inherits its parent's metadata, no longer matches and is recomputed).
    """
    values = rule_planner_progress(batch)
    if store:
        expert = _expert_raw(batch, False, ScorerConfig())
        mask = sum((expert[k] < 1.0).astype(np.int64) << i for i, k in enumerate(FILTERED) if k in expert)
        batch.meta[REFERENCE_KEY] = values.astype(np.float64)
        batch.meta[REFERENCE_FINGERPRINT_KEY] = np.array(_fingerprints(batch), dtype=object)
        batch.meta[HUMAN_FAIL_KEY] = np.asarray(mask, dtype=np.int64)
    return values


def _stored_floats(batch: SceneBatch, key: str) -> np.ndarray:
    """(S,) float meta column, NaN where absent or not a number ("" after concatenation)."""
    values = np.full(len(batch), np.nan)
    raw = batch.meta.get(key)
    if raw is None:
        return values
    for i, v in enumerate(np.asarray(raw, dtype=object)):
        try:
            values[i] = float(v)
        except (TypeError, ValueError):
            pass
    return values


def _stale(batch: SceneBatch) -> np.ndarray:
    """(S,) bool: a stored fingerprint exists and no longer matches the scene's content."""
    stored_fp = batch.meta.get(REFERENCE_FINGERPRINT_KEY)
    if stored_fp is None:
        return np.zeros(len(batch), dtype=bool)
    return np.asarray(stored_fp, dtype=object) != np.array(_fingerprints(batch), dtype=object)


def stored_reference_progress(batch: SceneBatch) -> np.ndarray:
    """(S,) EP denominators from ``batch.meta`` (NaN where absent, invalid or stale)."""
    values = _stored_floats(batch, REFERENCE_KEY)
    if np.isfinite(values).any():
        values[_stale(batch)] = np.nan
    return values


def _reference_progress(batch: SceneBatch) -> np.ndarray:
    """Stored EP denominators where valid, the (cached) rule planner for the rest."""
    values = stored_reference_progress(batch)
    missing = np.flatnonzero(~np.isfinite(values))
    if len(missing) == len(batch):
        return rule_planner_progress(batch)
    if len(missing):
        values[missing] = rule_planner_progress(batch.subset(missing))
    return values


_EXPERT_CACHE: dict[tuple, tuple] = {}
_EXPERT_CACHE_SIZE = 200_000
_RAW_KEYS = ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc", "progress", "collision", "tl_unknown")


def _logged_plans(batch: SceneBatch, config: ScorerConfig) -> np.ndarray:
    """(S, 1, F, 3) the logged expert's future poses as a plan."""
    expert = batch.ego[:, batch.history_steps + 1 : batch.history_steps + 1 + config.num_poses, :3]
    return np.asarray(expert, dtype=np.float64)[:, None]


def _expert_keys(batch: SceneBatch, reactive: bool, config: ScorerConfig) -> list[tuple]:
    return [(k, bool(reactive), config) for k in _scene_keys(batch)]


def _remember_expert(keys: list[tuple], rows: np.ndarray, raw: dict[str, np.ndarray], column: int) -> None:
    """Cache the expert's raw metrics ``raw[k][j, column]`` under ``keys[rows[j]]``."""
    if len(_EXPERT_CACHE) + len(rows) > _EXPERT_CACHE_SIZE:
        _EXPERT_CACHE.clear()
    _EXPERT_CACHE.update({keys[i]: tuple(raw[k][j, column] for k in _RAW_KEYS) for j, i in enumerate(rows)})


def _expert_raw(batch: SceneBatch, reactive: bool, config: ScorerConfig) -> dict[str, np.ndarray]:
    """Unfiltered metrics of the logged expert per scene (S,), cached per scene content: the human
    filter needs them on every call, but they depend only on the scene (and the config)."""
    keys = _expert_keys(batch, reactive, config)
    missing = [i for i, k in enumerate(keys) if k not in _EXPERT_CACHE]
    if missing:
        sub = batch.subset(missing) if len(missing) < len(batch) else batch
        _remember_expert(keys, missing, _raw_chunked(sub, _logged_plans(sub, config), reactive, config), 0)
    rows = [_EXPERT_CACHE[k] for k in keys]
    return {k: np.array([r[j] for r in rows]) for j, k in enumerate(_RAW_KEYS)}


def _stored_fail_mask(batch: SceneBatch, reactive: bool, config: ScorerConfig) -> np.ndarray:
    """(S,) stored ``human_fail_mask`` where usable (log replay, default config, content unchanged), else NaN."""
    S = len(batch)
    mask = _stored_floats(batch, HUMAN_FAIL_KEY) if not reactive and config == ScorerConfig() else np.full(S, np.nan)
    if np.isfinite(mask).any():
        mask[_stale(batch) | ~np.isfinite(_stored_floats(batch, REFERENCE_KEY))] = np.nan
    return mask


def _expert_unknown_keys(batch: SceneBatch, reactive: bool, config: ScorerConfig) -> list[tuple] | None:
    """The expert cache keys when no scene has its expert's metrics stored or cached, else None."""
    if np.isfinite(_stored_fail_mask(batch, reactive, config)).any():
        return None
    keys = _expert_keys(batch, reactive, config)
    return None if any(k in _EXPERT_CACHE for k in keys) else keys


def _expert_filter_metrics(batch: SceneBatch, reactive: bool, config: ScorerConfig) -> dict[str, np.ndarray]:
    """The logged expert's metrics as the human filter needs them: from the stored
    ``human_fail_mask`` where valid (log replay, default config, content unchanged), else
    simulated (and cached). Only the FILTERED keys are meaningful in stored rows."""
    S = len(batch)
    mask = _stored_fail_mask(batch, reactive, config)
    have = np.isfinite(mask)
    out = {k: np.ones(S) for k in _RAW_KEYS if k not in ("collision", "tl_unknown")}
    out.update(collision=np.zeros(S, dtype=bool), tl_unknown=np.zeros(S, dtype=bool))
    bits = np.where(have, mask, 0).astype(np.int64)
    for i, k in enumerate(FILTERED):
        if k in out:
            out[k] = np.where((bits >> i) & 1 == 1, 0.0, 1.0)
    missing = np.flatnonzero(~have)
    if len(missing):
        computed = _expert_raw(batch.subset(missing) if len(missing) < S else batch, reactive, config)
        for k, v in computed.items():
            out[k] = out[k].astype(v.dtype)
            out[k][missing] = v
    return out


def score_trajectories(
    batch: SceneBatch,
    trajectories: np.ndarray,
    *,
    reactive: bool = False,
    config: ScorerConfig = ScorerConfig(),
    human_filter: bool = True,
    previous_plans: np.ndarray | None = None,
    reference_progress: np.ndarray | None = None,
) -> ScoreResult:
    """Score (S, C, 8, 3) planned trajectories with EPDMS (see the module docstring).

    Args:
        batch: S scenes. With ``progress_reference="rule_planner"`` (default) the EP denominator
            is ``batch.meta["ep_reference_m"]`` where present and valid (see
            :func:`precompute_reference_progress`), else computed and cached per scene.
        trajectories: (S, C, F, 3) poses at t = dt … F·dt in the scene frame (F = config.num_poses).
        reactive: agents react with IDM (True) or replay the log (False, NAVSIM's default).
        human_filter: NAVSIM v2's false-positive filter against the logged expert (whose metrics
            are cached per scene).
        previous_plans: optional (S, F, 3) or (S, C, F, 3) previous-frame plans for EC.
        reference_progress: optional (S,) EP denominator (m); default per ``config.progress_reference``.

    Returns:
        :class:`ScoreResult` with (S, C) arrays.

    Raises:
        ValueError naming the scene for NaN/inf poses, a wrong shape or horizon, or C = 0.
    """
    traj, _, ec = prepare(batch, trajectories, config, human_filter, previous_plans)
    S, C = traj.shape[:2]
    if reference_progress is None and config.progress_reference == "rule_planner":
        reference_progress = _reference_progress(batch)
    elif reference_progress is not None:
        reference_progress = np.asarray(reference_progress, dtype=np.float64).reshape(S)
    elif config.progress_reference != "candidates":
        raise ValueError(f"unknown progress_reference {config.progress_reference!r}")
    # Scenes seen for the first time: the logged expert (for the human filter) is simulated in the
    # same pass as the candidates, sharing the lane index and the agents' interpolation.
    cold_keys = _expert_unknown_keys(batch, reactive, config) if human_filter else None
    plans = traj if cold_keys is None else np.concatenate([traj, _logged_plans(batch, config)], 1)
    raw = _raw_chunked(batch, plans, reactive, config)
    if cold_keys is not None:
        _remember_expert(cold_keys, np.arange(S), raw, C)
        raw = {k: v[:, :C] for k, v in raw.items()}
    if human_filter:
        expert = _expert_filter_metrics(batch, reactive, config)
    else:  # placeholder column, ignored by combine
        expert = {k: v[:, 0] for k, v in raw.items()}
    raw = {k: np.concatenate([v, expert[k].astype(v.dtype)[:, None]], 1) for k, v in raw.items()}
    return combine(raw, C, reference_progress, human_filter, ec, config)


def _raw_chunked(batch: SceneBatch, full: np.ndarray, reactive: bool, config: ScorerConfig) -> dict[str, np.ndarray]:
    """raw_metrics over scene and candidate chunks of at most ``config.chunk_trajectories``."""
    S, C1 = full.shape[:2]
    per = max(1, config.chunk_trajectories // C1)
    cand_chunk = max(1, min(C1, config.chunk_trajectories))
    parts: dict[str, list] = {}
    for s0 in range(0, S, per):
        sub = batch.subset(slice(s0, s0 + per))
        cols: dict[str, list] = {}
        for c0 in range(0, C1, cand_chunk):
            r = raw_metrics(sub, full[s0 : s0 + per, c0 : c0 + cand_chunk], reactive, config)
            for k, v in r.items():
                cols.setdefault(k, []).append(v)
        for k, v in cols.items():
            parts.setdefault(k, []).append(np.concatenate(v, axis=1))
    return {k: np.concatenate(v, axis=0) for k, v in parts.items()}
