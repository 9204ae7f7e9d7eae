"""Map queries of the EPDMS scorer over scenes × trajectories × steps.

The index is built with numpy; the per-point queries run in compiled loops (:mod:`.kernels`):
each point walks its own grid cell's few segments and stops at the first that contains it.

* :class:`LaneIndex` — lane centerline segments hashed on a grid: exact "within half a lane width"
  and near-segment queries (DAC, DDC, TLC, LK, lane changes).
* :func:`points_in_scene_polygons` — drivable polygons (even-odd rule), for DAC.
* :func:`route_progress` — arc length along the route (EP).
* :func:`in_multiple_lanes` — the ego footprint straddles lanes (side-collision fault).

Points are (M, 2) in their scene's frame with a (M,) scene index; see :mod:`autoscale_core.geometry`.
"""

from __future__ import annotations

import numpy as np

from ..scene import TL_RED, TL_UNKNOWN, SceneBatch
from . import kernels


class LaneIndex:
    """Lane centerline segments hashed on a uniform grid, for exact near-segment queries.

    A segment is registered in every cell within its query radius (max(half lane width,
    ``min_radius``) + ``pad``) of it, so every segment within the radius of a point is found in
    the point's cell. Queries return sparse (point, segment) pairs. The occupied cells are kept
    as sorted keys with each cell's segments contiguous (``cell_start``), and a cell whose whole
    square lies within half a lane width of one of its segments is flagged ``cell_full``: every
    point in it is on a lane without a distance computation (:meth:`on_lane`).
    """

    def __init__(
        self, batch: SceneBatch, min_radius: float, cell: float = 2.0, pad: float = 0.0, bounds: np.ndarray | None = None
    ):
        # Valid lanes only (a third of the padded lane slots in generated worlds), and with
        # ``bounds`` only segments that can be near a query: (S, 4) x0, y0, x1, y1 per scene
        # (float32 like the lanes, with a margin); kept segments in float64.
        use_bounds = bounds is not None
        box = np.asarray(bounds, dtype=np.float32) if use_bounds else np.zeros((len(batch), 4), np.float32)
        if box.shape != (len(batch), 4):
            raise ValueError(f"bounds must be (S={len(batch)}, 4) x0, y0, x1, y1, got {box.shape}")
        si, li, pi = kernels.lane_segments_near(batch.lanes, batch.lane_valid, batch.lane_width, box, use_bounds,
                                                float(min_radius), float(pad))
        start = batch.lanes[si, li, pi].astype(np.float64)
        d = batch.lanes[si, li, pi + 1].astype(np.float64) - start
        ok = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] > 1e-18  # no degenerate segments
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
        # Every cell of the segment's padded bounding box (a finer distance filter removes only a
        # few percent of the entries and costs more than it saves), grouped by cell.
        self.cell_keys, self.cell_start, self.segs, cx, cy = kernels.grid_cells(si, c0, c1, self.nx, self.ny)
        self._entry_cells = (cx, cy)  # for the whole-cell flags, on first use
        self._cell_full = None

    @property
    def cell_full(self) -> np.ndarray:
        """(cells,) bool, computed on first use: the cell's whole square lies within half a lane
        width of one of its segments (centre distance + half diagonal <= half width; only
        possible for cells smaller than the lanes)."""
        if self._cell_full is None:
            half_diag = self.cell * np.sqrt(0.5)
            self._cell_full = np.zeros(len(self.cell_keys), dtype=bool)
            if len(self.cell_keys) and half_diag < self.half_width.max():
                self._cell_full = kernels.full_cells(
                    self.cell_start, self.segs, *self._entry_cells, self.origin, float(self.cell), half_diag,
                    self._ax, self._ay, self._dx, self._dy, self.len2, self.half_width)
        return self._cell_full

    def _arrays(self) -> tuple:
        """The grid and segment arrays the compiled kernels take (see :mod:`.kernels`)."""
        return (self.origin, float(self.cell), self.nx, self.ny, self.cell_keys, self.cell_start, self.segs,
                self._ax, self._ay, self._dx, self._dy, self.len2)

    def query(self, scene: np.ndarray, points: np.ndarray, extra: float = 0.0):
        """Pairs within each segment's radius (+ ``extra`` <= pad): (point, segment, distance),
        ordered by point, then by the cell's segment order."""
        radius = self.radius + extra if extra else self.radius
        points = _points(points)
        return kernels.query_pairs(_scene_index(scene, len(points)), points, *self._arrays(), radius)

    def on_lane_tracks(self, scene: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """(M, K) bool: point k of track m (``tracks`` (M, K, 2)) within half a lane width of some
        centerline (the same as :meth:`on_lane` on the points; kept for callers with tracks)."""
        M, K, _ = tracks.shape
        return self.on_lane(np.repeat(scene, K), tracks.reshape(-1, 2), shortcut=False).reshape(M, K)

    def on_lane(self, scene: np.ndarray, points: np.ndarray, fine_cell: float | None = None,
                shortcut: bool = True) -> np.ndarray:
        """(M,) bool: within half a lane width of some centerline.

        With ``shortcut``, points in a cell flagged ``cell_full`` are on a lane without per-point
        work (worth its one-off cost with small cells and many points); the others are tested
        against their cell's segments, stopping at the first that contains them. Exact either
        way. (``fine_cell`` is ignored: the whole-cell test uses the index's own cells.)
        """
        full = self.cell_full if shortcut else np.zeros(len(self.cell_keys), dtype=bool)
        points = _points(points)
        return kernels.on_lane_points(_scene_index(scene, len(points)), points, *self._arrays(), self.half_width, full)


    @property
    def same_next(self) -> np.ndarray:
        """(segments,) bool: the next segment continues the same lane (segments are stored lane
        by lane, in order): a point leaving one segment along its lane is tried on the next."""
        same = np.zeros(len(self.lane), dtype=bool)
        if len(self.lane) > 1:
            same[:-1] = (self.lane[1:] == self.lane[:-1]) & (self.scene[1:] == self.scene[:-1])
        return same

    def drivable_area_ok(self, batch: SceneBatch, scene: np.ndarray, states: np.ndarray, length: np.ndarray,
                         width: np.ndarray, shortcut: bool = True, trig=None) -> np.ndarray:
        """(B,) bool DAC of ego footprints: each corner of the (length, width) (B,) m box at every
        state (B, K, >=3 x, y, heading) of scene ``scene`` (B,) within half a lane width of a
        centerline, or inside a drivable polygon of its scene (:func:`.kernels.drivable_area_ok`).
        ``shortcut``: use the whole-cell flags (:attr:`cell_full`); ``trig``: optional (cos, sin)
        (B, K) of the headings."""
        full = self.cell_full if shortcut else np.zeros(len(self.cell_keys), dtype=bool)
        polygons, valid, lo, hi = _drivable_polygons(batch)
        states = np.ascontiguousarray(states, dtype=np.float64)
        B, K = states.shape[:2]
        cos_h, sin_h = (np.cos(states[..., 2]), np.sin(states[..., 2])) if trig is None else trig
        length = np.ascontiguousarray(length, dtype=np.float64)
        width = np.ascontiguousarray(width, dtype=np.float64)
        if length.shape != (B,) or width.shape != (B,) or np.shape(cos_h) != (B, K) or np.shape(sin_h) != (B, K):
            raise ValueError(f"length, width must be ({B},) and trig ({B}, {K}) for states {states.shape}")
        return kernels.drivable_area_ok(
            _scene_index(scene, B, len(batch)), states, cos_h, sin_h, length, width,
            *self._arrays(), self.half_width, full, self.same_next, polygons, valid, lo, hi)


    def centre_lane_metrics(self, batch: SceneBatch, scene: np.ndarray, states: np.ndarray, dt: float, config):
        """DDC, TLC and LK inputs from the ego centres: states (B, K1, >=3) at ``dt`` s of scene
        ``scene`` (B,) (:func:`.kernels.centre_lane_metrics`; the index must be built with
        ``min_radius = config.lk_threshold``). Returns backwards (B,) m, red (B,) bool,
        unknown (B,) bool, drift_steps (B,) int."""
        K1 = states.shape[1]
        tl_index = np.minimum(
            batch.history_steps + np.floor(np.arange(K1) * dt / batch.dt + 1e-9).astype(np.int64), batch.num_steps - 1
        )
        return kernels.centre_lane_metrics(
            _scene_index(scene, len(states), len(batch)), np.ascontiguousarray(states, dtype=np.float64),
            *self._arrays(), self.radius,
            self.half_width, self.lane, self.heading, np.ascontiguousarray(self.tangent), batch.lane_tl, tl_index,
            batch.lane_is_intersection, config.tl_alignment, config.lk_alignment, config.lk_threshold,
            TL_RED, TL_UNKNOWN,
        )


def _scene_index(scene: np.ndarray, count: int, num_scenes: int | None = None) -> np.ndarray:
    """``scene`` as the kernels take it: (count,) int64 in [0, num_scenes). The compiled kernels
    do not check bounds (numba): a wrong index would read other memory instead of raising."""
    scene = np.ascontiguousarray(scene, dtype=np.int64)
    if scene.shape != (count,):
        raise ValueError(f"scene index must have shape ({count},), got {scene.shape}")
    if num_scenes is not None and count and (scene.min() < 0 or scene.max() >= num_scenes):
        raise IndexError(f"scene index out of range [0, {num_scenes}): {scene.min()} … {scene.max()}")
    return scene


def _points(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64).reshape(-1, 2)


def points_in_scene_polygons(scene: np.ndarray, points: np.ndarray, batch: SceneBatch, fine_cell: float | None = None) -> np.ndarray:
    """(M,) bool: point inside any drivable polygon of its scene (even-odd rule).

    One compiled pass over the points (:func:`.kernels.points_in_polygons`); each polygon's
    bounding box (+ a rounding margin) rules it out without its edges: outside it, no edge
    straddles the point's row an odd number of times. (``fine_cell`` is ignored: the former
    whole-cell shortcut is not needed by a per-point loop.)
    """
    D = batch.drivable_polygons.shape[1]
    if D == 0 or len(points) == 0:
        return np.zeros(len(points), dtype=bool)
    points = _points(points)
    return kernels.points_in_polygons(_scene_index(scene, len(points), len(batch)), points, *_drivable_polygons(batch))


def _drivable_polygons(batch: SceneBatch) -> tuple[np.ndarray, ...]:
    """Drivable polygons as the kernels take them: vertices (S, D, V, 2) float64, vertex_valid
    (S, D, V) and the bounding boxes lo, hi (S, D, 2) grown by a rounding margin (empty boxes for
    polygons without vertices)."""
    polygons = batch.drivable_polygons.astype(np.float64)
    ok = batch.drivable_vertex_valid
    lo = np.where(ok[..., None], polygons, np.inf).min(-2) - 1e-6
    hi = np.where(ok[..., None], polygons, -np.inf).max(-2) + 1e-6
    return polygons, np.ascontiguousarray(ok), lo, hi


def route_progress(batch: SceneBatch, scene: np.ndarray | None, points: np.ndarray) -> np.ndarray:
    """(M,) arc length (m) of each point's projection on its scene's route polyline
    (:func:`.kernels.route_arc`, the arithmetic of :func:`autoscale_core.geometry.project_on_polyline`).

    With ``scene`` None, ``points`` are (S, C, 2), C points per scene; result (S, C)."""
    route = batch.route_polyline.astype(np.float64)
    if scene is None:
        S, C = points.shape[:2]
        if S != len(batch):
            raise ValueError(f"points must be (S={len(batch)}, C, 2) with scene None, got {points.shape}")
        return kernels.route_arc(np.repeat(np.arange(S), C), _points(points), route, batch.route_valid).reshape(S, C)
    points = _points(points)
    return kernels.route_arc(_scene_index(scene, len(points), len(batch)), points, route, batch.route_valid)


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
