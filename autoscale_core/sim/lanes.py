"""Map queries of the EPDMS scorer, vectorized over scenes × trajectories × steps.

* :class:`LaneIndex` — lane centerline segments hashed on a grid: exact "within half a lane width"
  and near-segment queries (DAC, DDC, TLC, LK, lane changes).
* :func:`points_in_scene_polygons` — drivable polygons (even-odd rule), for DAC.
* :func:`route_progress` — arc length along the route (EP).
* :func:`in_multiple_lanes` — the ego footprint straddles lanes (side-collision fault).

Points are (M, 2) in their scene's frame with a (M,) scene index; see :mod:`autoscale_core.geometry`.
"""

from __future__ import annotations

import numpy as np

from ..geometry import distance_to_polygon_boundary, points_in_polygon_edges, polygon_edges, project_on_polyline
from ..scene import SceneBatch


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
        # Valid lanes only (a third of the padded lane slots in generated worlds); float32 for
        # the pre-selection, with a margin; kept segments in float64.
        vs, vl = np.nonzero(batch.lane_valid)
        lanes = batch.lanes[vs, vl]  # (M, P, 2)
        a, b = lanes[:, :-1], lanes[:, 1:]
        keep = np.ones(a.shape[:2], dtype=bool)  # degenerate segments: dropped below
        if bounds is not None:
            # Only segments that can be near a query: (S, 4) x0, y0, x1, y1 per scene.
            r = (np.maximum(0.5 * batch.lane_width[vs, vl], min_radius) + pad + 1e-3).astype(np.float32)[:, None]
            bx = bounds.astype(np.float32)[vs][:, None]  # (M, 1, 4)
            ax, ay, bx_, by = a[..., 0], a[..., 1], b[..., 0], b[..., 1]
            keep &= (np.minimum(ax, bx_) - r <= bx[..., 2]) & (np.maximum(ax, bx_) + r >= bx[..., 0])
            keep &= (np.minimum(ay, by) - r <= bx[..., 3]) & (np.maximum(ay, by) + r >= bx[..., 1])
        mi, pi = np.nonzero(keep)
        si, li = vs[mi], vl[mi]
        start = lanes[mi, pi].astype(np.float64)
        d = lanes[mi, pi + 1].astype(np.float64) - start
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
        sx = span[rep, 0]
        cx = c0[rep, 0] + offs % sx
        cy = c0[rep, 1] + offs // sx
        # (Every cell of the segment's padded bounding box: a finer distance filter removes only a
        # few percent of the entries and costs more than it saves.)
        keys = (si[rep].astype(np.int64) * self.ny + cy) * self.nx + cx
        order = np.argsort(keys, kind="stable")
        keys, self.segs = keys[order], rep[order]
        first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, dtype=np.int64)
        self.cell_keys = keys[first]
        self.cell_start = np.r_[first, len(keys)]
        self._entry_cells = (cx, cy, order)  # for the whole-cell flags, gathered on first use
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
                cx, cy, order = self._entry_cells
                centre = np.stack([(cx[order] + 0.5) * self.cell + self.origin[0],
                                   (cy[order] + 0.5) * self.cell + self.origin[1]], -1)
                dist = self._distance(centre, self.segs)
                full = dist + half_diag <= self.half_width[self.segs] - 1e-9
                self._cell_full = np.logical_or.reduceat(full, self.cell_start[:-1])
        return self._cell_full

    def _distance(self, points: np.ndarray, seg: np.ndarray) -> np.ndarray:
        # Written per component: reductions over a length-2 axis are slow in numpy.
        ax, ay, dx, dy = self._ax[seg], self._ay[seg], self._dx[seg], self._dy[seg]
        px, py = points[:, 0] - ax, points[:, 1] - ay
        t = np.clip((px * dx + py * dy) / self.len2[seg], 0.0, 1.0)
        ex, ey = px - t * dx, py - t * dy
        return np.sqrt(ex * ex + ey * ey)

    def _cells(self, scene: np.ndarray, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each point's occupied cell (index into ``cell_keys``) and whether it has one."""
        cell = np.floor((points - self.origin) / self.cell).astype(np.int64)
        inside = (cell[:, 0] >= 0) & (cell[:, 1] >= 0) & (cell[:, 0] < self.nx) & (cell[:, 1] < self.ny)
        key = (scene.astype(np.int64) * self.ny + cell[:, 1]) * self.nx + cell[:, 0]
        pos = np.searchsorted(self.cell_keys, key)
        found = pos < len(self.cell_keys)
        found[found] = self.cell_keys[pos[found]] == key[found]
        return pos, found & inside

    def _pairs(self, points: np.ndarray, pos: np.ndarray, found: np.ndarray, radius: np.ndarray):
        """(point, segment, distance) pairs of the points' cells within ``radius`` (per segment)."""
        lo = np.where(found, self.cell_start[np.minimum(pos, len(self.cell_keys) - 1)] if len(self.cell_keys) else 0, 0)
        cnt = np.where(found, self.cell_start[np.minimum(pos + 1, len(self.cell_keys))] - lo if len(self.cell_keys) else 0, 0)
        pt = np.repeat(np.arange(len(points)), cnt)
        offs = np.arange(len(pt)) - np.repeat(np.cumsum(cnt) - cnt, cnt)
        seg = self.segs[np.repeat(lo, cnt) + offs]
        dist = self._distance(points[pt], seg)
        keep = dist <= radius[seg]
        return pt[keep], seg[keep], dist[keep]

    def query(self, scene: np.ndarray, points: np.ndarray, extra: float = 0.0):
        """Pairs within each segment's radius (+ ``extra`` <= pad): (point, segment, distance)."""
        pos, found = self._cells(scene, points)
        return self._pairs(points, pos, found, self.radius + extra if extra else self.radius)

    def on_lane_tracks(self, scene: np.ndarray, tracks: np.ndarray) -> np.ndarray:
        """(M, K) bool: point k of track m within half a lane width of some centerline.

        ``tracks`` (M, K, 2) are time-ordered (e.g. one footprint corner over the simulation): the
        segment that contained a track's previous point is tried first (one distance), and only
        the points it does not contain go through the grid query. Exact either way.
        """
        M, K, _ = tracks.shape
        on = np.zeros((M, K), dtype=bool)
        hint = np.full(M, -1, dtype=np.int64)
        nseg = len(self.lane)
        # The next segment of the same lane (segments are stored lane by lane, in order), tried
        # when the hint no longer contains the point: a corner moving along its lane.
        same_next = np.zeros(nseg, dtype=bool)
        if nseg > 1:
            same_next[:-1] = (self.lane[1:] == self.lane[:-1]) & (self.scene[1:] == self.scene[:-1])
        for k in range(K):  # over time steps only
            p = tracks[:, k]
            has = np.flatnonzero(hint >= 0)
            hit = np.zeros(M, dtype=bool)
            if len(has):
                h = hint[has]
                hit[has] = self._distance(p[has], h) <= self.half_width[h]
                miss = has[~hit[has]]
                miss = miss[same_next[hint[miss]]]
                if len(miss):
                    nxt = hint[miss] + 1
                    inside = self._distance(p[miss], nxt) <= self.half_width[nxt]
                    hit[miss[inside]] = True
                    hint[miss[inside]] = nxt[inside]
            todo = np.flatnonzero(~hit)
            pt, seg, dist = self._pairs(p[todo], *self._cells(scene[todo], p[todo]), self.half_width)
            # The containing segment the point is deepest in becomes its hint (written last).
            order = np.argsort(dist - self.half_width[seg])[::-1]
            found = todo[pt[order]]
            hit[found] = True
            hint[todo] = -1
            hint[found] = seg[order]
            on[:, k] = hit
        return on

    def on_lane(self, scene: np.ndarray, points: np.ndarray, fine_cell: float | None = None) -> np.ndarray:
        """(M,) bool: within half a lane width of some centerline.

        Points in a cell flagged ``cell_full`` are on a lane without per-point work; the others
        are tested against their cell's segments. Exact either way. (``fine_cell`` is ignored:
        the whole-cell test now uses the index's own cells.)
        """
        pos, found = self._cells(scene, points)
        on = np.zeros(len(points), dtype=bool)
        if not found.any():
            return on
        full = np.zeros(len(points), dtype=bool)
        full[found] = self.cell_full[pos[found]]
        on |= full
        todo = np.flatnonzero(found & ~full)
        pt, _, _ = self._pairs(points[todo], pos[todo], found[todo], self.half_width)
        on[todo[pt]] = True
        return on


def points_in_scene_polygons(scene: np.ndarray, points: np.ndarray, batch: SceneBatch, fine_cell: float = 0.5) -> np.ndarray:
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
    # Each polygon's bounding box: a point outside it (beyond a rounding margin) has no edge
    # straddling its row, or an even number of crossings, so the even-odd test says outside.
    verts = edges[0]
    ok = batch.drivable_vertex_valid[..., None]
    lo = np.where(ok, verts, np.inf).min(-2) - 1e-6  # (S, D, 2)
    hi = np.where(ok, verts, -np.inf).max(-2) + 1e-6
    px, py = points[:, 0], points[:, 1]
    for d in range(D):  # few polygons per scene; vectorized over points and vertices
        box = (px >= lo[scene, d, 0]) & (px <= hi[scene, d, 0]) & (py >= lo[scene, d, 1]) & (py <= hi[scene, d, 1])
        todo = np.flatnonzero(box & ~inside_any)
        if use_cells:
            polygon = [x[cell_scene, d] for x in edges]
            inside = points_in_polygon_edges(centre, *polygon)
            edge_dist = distance_to_polygon_boundary(centre, *polygon[:3])
            decided = (edge_dist > fine_cell * np.sqrt(0.5) + 1e-9)[inverse]
            inside_any |= decided & inside[inverse]
            todo = np.flatnonzero(box & ~decided & ~inside_any)
        inside_any[todo] |= points_in_polygon_edges(points[todo], *(x[scene[todo], d] for x in edges))
    return inside_any


def route_progress(batch: SceneBatch, scene: np.ndarray | None, points: np.ndarray) -> np.ndarray:
    """(M,) arc length (m) of each point's projection on its scene's route polyline.

    With ``scene`` None, ``points`` are (S, C, 2), C points per scene, projected on their scene's
    route by broadcasting (no per-point copy of the route); result (S, C)."""
    route = batch.route_polyline.astype(np.float64)  # per scene once, gathered per point
    if scene is None:
        return project_on_polyline(points, route[:, None], batch.route_valid[:, None])[0]
    return project_on_polyline(points, route[scene], batch.route_valid[scene])[0]


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
