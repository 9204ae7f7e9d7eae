"""Compiled (numba) kernels for the EPDMS scorer's per-point loops.

The numpy versions of these queries build (point, candidate) pair arrays before reducing them;
here each point walks its own few candidates and stops at the first hit, without temporaries.
Every kernel does the same float64 arithmetic, in the same order, as the numpy code it replaces
(numba does not contract a*b + c into FMA or reorder sums without ``fastmath``), so results are
bit-identical. ``cache=True`` keeps the machine code on disk (``__pycache__``): the first call in
a fresh environment compiles (about a second or two per kernel), later processes load it.

Units: metres; points are (M, 2) float64 in their scene's frame with a (M,) scene index.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _find_cell(cell_keys, key):
    """Index of ``key`` in the sorted ``cell_keys``, or -1 (np.searchsorted + equality)."""
    lo, hi = 0, len(cell_keys)
    while lo < hi:
        mid = (lo + hi) >> 1
        if cell_keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < len(cell_keys) and cell_keys[lo] == key:
        return lo
    return -1


@njit(cache=True)
def _point_cell(scene, x, y, origin_x, origin_y, cell, nx, ny, cell_keys):
    """Occupied grid cell of one point (index into ``cell_keys``) or -1, as ``LaneIndex._cells``."""
    cx = np.floor((x - origin_x) / cell)
    cy = np.floor((y - origin_y) / cell)
    if not (cx >= 0 and cy >= 0 and cx < nx and cy < ny):
        return -1
    return _find_cell(cell_keys, (np.int64(scene) * ny + np.int64(cy)) * nx + np.int64(cx))


@njit(cache=True)
def _segment_distance(x, y, ax, ay, dx, dy, len2):
    """Distance (m) from (x, y) to the segment a + t·d, t in [0, 1] (``LaneIndex._distance``)."""
    px, py = x - ax, y - ay
    t = min(max((px * dx + py * dy) / len2, 0.0), 1.0)
    ex, ey = px - t * dx, py - t * dy
    return np.sqrt(ex * ex + ey * ey)


@njit(cache=True)
def on_lane_points(scene, points, origin, cell, nx, ny, cell_keys, cell_start, segs,
                   ax, ay, dx, dy, len2, half_width, cell_full):
    """(M,) bool: point within half a lane width of a centerline segment of its grid cell.

    ``cell_full`` (cells,) bool: the whole cell is on a lane (no distance needed); all False to
    skip the shortcut. The remaining arguments are :class:`~.lanes.LaneIndex` arrays.
    """
    M = len(points)
    out = np.zeros(M, dtype=np.bool_)
    for i in range(M):
        x, y = points[i, 0], points[i, 1]
        c = _point_cell(scene[i], x, y, origin[0], origin[1], cell, nx, ny, cell_keys)
        if c < 0:
            continue
        if cell_full[c]:
            out[i] = True
            continue
        for e in range(cell_start[c], cell_start[c + 1]):
            g = segs[e]
            if _segment_distance(x, y, ax[g], ay[g], dx[g], dy[g], len2[g]) <= half_width[g]:
                out[i] = True
                break
    return out


@njit(cache=True)
def query_pairs(scene, points, origin, cell, nx, ny, cell_keys, cell_start, segs,
                ax, ay, dx, dy, len2, radius):
    """(point, segment, distance) for every segment of each point's cell within ``radius[segment]``,
    ordered by point, then by the cell's segment order (as ``LaneIndex._pairs``)."""
    M = len(points)
    cells = np.empty(M, dtype=np.int64)
    total = 0
    for i in range(M):
        c = _point_cell(scene[i], points[i, 0], points[i, 1], origin[0], origin[1], cell, nx, ny, cell_keys)
        cells[i] = c
        if c >= 0:
            total += cell_start[c + 1] - cell_start[c]
    pt = np.empty(total, dtype=np.int64)
    seg = np.empty(total, dtype=np.int64)
    dist = np.empty(total, dtype=np.float64)
    n = 0
    for i in range(M):
        c = cells[i]
        if c < 0:
            continue
        x, y = points[i, 0], points[i, 1]
        for e in range(cell_start[c], cell_start[c + 1]):
            g = segs[e]
            d = _segment_distance(x, y, ax[g], ay[g], dx[g], dy[g], len2[g])
            if d <= radius[g]:
                pt[n], seg[n], dist[n] = i, g, d
                n += 1
    return pt[:n], seg[:n], dist[:n]


@njit(cache=True)
def points_in_polygons(scene, points, polygons, vertex_valid, lo, hi):
    """(M,) bool: point inside any polygon of its scene (even-odd rule, as
    :func:`autoscale_core.geometry.points_in_polygon_edges`: each polygon closes at its last valid
    vertex; fewer than 3 valid vertices contain nothing).

    polygons (S, D, V, 2) float64, vertex_valid (S, D, V) bool, lo / hi (S, D, 2) the polygons'
    bounding boxes (a point outside one is outside that polygon).
    """
    M = len(points)
    D, V = polygons.shape[1], polygons.shape[2]
    out = np.zeros(M, dtype=np.bool_)
    for i in range(M):
        s = scene[i]
        x, y = points[i, 0], points[i, 1]
        for d in range(D):
            if not (x >= lo[s, d, 0] and x <= hi[s, d, 0] and y >= lo[s, d, 1] and y <= hi[s, d, 1]):
                continue
            count = 0
            for v in range(V):
                count += vertex_valid[s, d, v]
            if count < 3:
                continue
            crossings = 0
            for v in range(V):
                if not vertex_valid[s, d, v]:
                    continue
                w = v + 1 if v + 1 < count else 0
                x1, y1 = polygons[s, d, v, 0], polygons[s, d, v, 1]
                x2, y2 = polygons[s, d, w, 0], polygons[s, d, w, 1]
                if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
                    crossings += 1
            if crossings % 2 == 1:
                out[i] = True
                break
    return out
