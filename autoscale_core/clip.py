"""Vectorized clipping of polylines and convex polygons to the unit square [0, 1]².

Used to clip the App overlays to the BEV image (normalized image coordinates) for thousands of
scenes at once, in a few numpy passes instead of one shapely geometry per line or box. The
results match ``shapely.clip_by_rect(geom, 0, 0, 1, 1)`` (GEOS rectangle intersection) — checked
on random and edge cases by ``tests/test_clip.py`` — including its conventions:

* lines: a line leaving and re-entering the square becomes several parts; a line (or a piece of
  it) running *along* the border, or touching it at a single point, is not kept; a vertex on the
  border from inside is kept; points are the input's where not clipped, repeated points kept;
* polygons: one fully inside (strictly) is returned unchanged; a clipped one is GEOS-normalized:
  its ring starts at the lexicographically smallest (x, then y) vertex and runs clockwise
  (y up); nothing is returned where the intersection has no area.

Coordinates computed on the border agree with GEOS to ~1e-16 (not bit for bit: a different
but equivalent formula); callers round to 1e-5.
"""

from __future__ import annotations

import numpy as np

_EPS = 1e-12  # snapping of computed coordinates onto the border
_BORDER_TOL = 1e-9  # polygons with a vertex this close to a border line go to shapely


def clip_lines(coords: np.ndarray, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip ragged open polylines to [0, 1]² (Liang–Barsky per segment, then parts regrouped).

    Args:
        coords: (M, 2) points; line ``i`` is ``coords[starts[i]:starts[i + 1]]``.
        starts: (n + 1,) non-decreasing offsets, ``starts[-1] == M``.

    Returns:
        ``(xy, bounds, owner)``: part ``k`` is ``xy[bounds[k]:bounds[k + 1]]`` (≥ 2 points) and
        belongs to line ``owner[k]``; parts in line order, then along each line.
    """
    coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    starts = np.asarray(starts, dtype=np.int64)
    if starts.ndim != 1 or len(starts) == 0 or starts[0] != 0 or starts[-1] != len(coords) or (np.diff(starts) < 0).any():
        # (otherwise points would silently join the wrong line, or a line its neighbour)
        raise ValueError(f"starts must be non-decreasing offsets from 0 to {len(coords)} (the number of points)")
    empty = (np.zeros((0, 2)), np.zeros(1, np.int64), np.zeros(0, np.int64))
    if len(coords) < 2:
        return empty
    a, b = coords[:-1], coords[1:]
    line_of_point = np.repeat(np.arange(len(starts) - 1), np.diff(starts))
    same_line = line_of_point[:-1] == line_of_point[1:]
    # Most segments lie strictly inside (kept whole) or beyond one border line at both ends
    # (dropped; Cohen–Sutherland out codes). Liang–Barsky runs on the others only.
    code = ((coords[:, 0] < 0) | ((coords[:, 0] > 1) << 1) | ((coords[:, 1] < 0) << 2) | ((coords[:, 1] > 1) << 3)
            ).astype(np.uint8)
    point_inside = (code == 0) & (coords > 0).all(1) & (coords < 1).all(1)
    t0, t1 = np.zeros(len(a)), np.ones(len(a))
    visible = same_line & ((code[:-1] & code[1:]) == 0)
    start_pt, end_pt = a, b
    todo = np.flatnonzero(visible & ~(point_inside[:-1] & point_inside[1:]))
    if len(todo):
        sa, sb = a[todo], b[todo]
        d = sb - sa
        # p·t ≤ q for the four borders x ≥ 0, x ≤ 1, y ≥ 0, y ≤ 1.
        p = np.stack([-d[:, 0], d[:, 0], -d[:, 1], d[:, 1]], 1)
        q = np.stack([sa[:, 0], 1.0 - sa[:, 0], sa[:, 1], 1.0 - sa[:, 1]], 1)
        with np.errstate(divide="ignore", invalid="ignore"):
            r = q / p
        reject = ((p == 0) & (q < 0)).any(1)
        s0 = np.maximum(np.where(p < 0, r, -np.inf).max(1), 0.0)
        s1 = np.minimum(np.where(p > 0, r, np.inf).min(1), 1.0)
        zero_length = (d == 0).all(1)
        shown = ~reject & ((s0 < s1) | zero_length)
        # Clipped end points: the input points exactly where not clipped, snapped onto the border.
        pa = _snap(np.where((s0 == 0)[:, None], sa, sa + s0[:, None] * d), s0 > 0)
        pb = _snap(np.where((s1 == 1)[:, None], sb, sa + s1[:, None] * d), s1 < 1)
        # A piece lying on the border (both ends on the same border line) is not kept (GEOS).
        for axis in (0, 1):
            for edge in (0.0, 1.0):
                shown &= ~((pa[:, axis] == edge) & (pb[:, axis] == edge))
        t0[todo], t1[todo], visible[todo] = s0, s1, shown
        start_pt, end_pt = a.copy(), b.copy()
        start_pt[todo], end_pt[todo] = pa, pb
    idx = np.flatnonzero(visible)
    if len(idx) == 0:
        return empty
    # Segment j continues the part of segment j - 1 when both are visible, on the same line,
    # and neither was clipped at the shared point.
    prev_ok = np.zeros(len(idx), dtype=bool)
    prev_ok[1:] = (idx[1:] == idx[:-1] + 1) & (t1[idx[:-1]] == 1)
    new_part = ~(prev_ok & (t0[idx] == 0))
    counts = 1 + new_part.astype(np.int64)  # a part's first segment adds its start point too
    pos = np.cumsum(counts) - 1  # where each visible segment's end point goes
    xy = np.empty((int(pos[-1]) + 1, 2))
    xy[pos] = end_pt[idx]
    xy[pos[new_part] - 1] = start_pt[idx[new_part]]
    bounds = np.r_[pos[new_part] - 1, len(xy)].astype(np.int64)
    owner = line_of_point[idx[new_part]]
    return xy, bounds, owner


def _snap(points: np.ndarray, clipped: np.ndarray) -> np.ndarray:
    """Computed border points: clamp into [0, 1] and onto a border within ``_EPS``."""
    if not clipped.any():
        return points
    sub = np.clip(points[clipped], 0.0, 1.0)
    sub[np.abs(sub) < _EPS] = 0.0
    sub[np.abs(sub - 1.0) < _EPS] = 1.0
    out = points.copy()
    out[clipped] = sub
    return out


def clip_convex_polygons(polygons: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Clip convex polygons (N, V, 2) (open rings, e.g. oriented boxes) to [0, 1]².

    Sutherland–Hodgman against the four borders on all polygons at once (exact for convex
    input); polygons strictly inside are passed through unchanged, clipped ones are normalized
    as GEOS does (see the module docstring).

    Polygons with a vertex on a border line (measure zero in real data, but easy to craft) are
    handed to shapely, so the result is GEOS's in every case.

    Returns:
        ``(xy, bounds, owner)``: ring ``k`` (open, ≥ 3 points) is ``xy[bounds[k]:bounds[k + 1]]``
        and belongs to polygon ``owner[k]`` (at most one ring per polygon, in input order).
    """
    polygons = np.asarray(polygons, dtype=np.float64)
    n, v = polygons.shape[:2]
    if n == 0:
        return np.zeros((0, 2)), np.zeros(1, np.int64), np.zeros(0, np.int64)
    inside = ((polygons > 0) & (polygons < 1)).all((1, 2))
    outside = np.zeros(n, dtype=bool)  # all vertices beyond one border: no intersection
    for axis in (0, 1):
        outside |= (polygons[..., axis] < 0).all(1) | (polygons[..., axis] > 1).all(1)
    # A vertex on (or within 1e-9 of) a border line: GEOS's output there has its own degenerate
    # conventions (zero-area rings, repeated points); those polygons are clipped by shapely.
    on_line = ((np.abs(polygons) < _BORDER_TOL) | (np.abs(polygons - 1) < _BORDER_TOL)).any((1, 2))
    todo = np.flatnonzero(~inside & ~outside & ~on_line)
    rare = _clip_with_shapely(polygons, np.flatnonzero(~inside & ~outside & on_line))
    pts, count = np.zeros((0, v, 2)), np.zeros(0, np.int64)
    if len(todo):
        pts, count = polygons[todo], np.full(len(todo), v)
        for axis, edge, keep_ge in ((0, 0.0, True), (0, 1.0, False), (1, 0.0, True), (1, 1.0, False)):
            pts, count = _clip_half_plane(pts, count, axis, edge, keep_ge)
        pts, count = _normalize_rings(pts, count)
    # Assemble in input order: unchanged polygons, the clipped rings, the rare ones (padded rows).
    width = max([v, pts.shape[1]] + [len(ring) for _, ring in rare])
    rows = np.zeros((n, width, 2))
    sizes = np.zeros(n, dtype=np.int64)
    rows[inside, :v], sizes[inside] = polygons[inside], v
    rows[todo, : pts.shape[1]], sizes[todo] = pts, count
    for k, ring in rare:
        rows[k, : len(ring)], sizes[k] = ring, len(ring)
    owner = np.flatnonzero(sizes)
    xy = rows[np.arange(width)[None] < sizes[:, None]]
    return xy, np.r_[0, np.cumsum(sizes[owner])].astype(np.int64), owner


def _clip_with_shapely(polygons: np.ndarray, which: np.ndarray) -> list[tuple[int, np.ndarray]]:
    """GEOS's own result (``shapely.clip_by_rect``) for the polygons ``which`` (rare)."""
    if len(which) == 0:
        return []
    import shapely

    clipped = shapely.clip_by_rect(shapely.polygons(polygons[which]), 0.0, 0.0, 1.0, 1.0)
    out = []
    for k, geom in zip(which.tolist(), clipped):
        for part in shapely.get_parts(geom):  # one polygon at most (convex input)
            if shapely.get_type_id(part) == 3:
                out.append((k, shapely.get_coordinates(shapely.get_exterior_ring(part))[:-1]))
    return out


def _clip_half_plane(pts: np.ndarray, count: np.ndarray, axis: int, edge: float, keep_ge: bool):
    """One Sutherland–Hodgman pass on padded rings ``pts`` (N, K, 2) with ``count`` (N,) vertices."""
    n, k = pts.shape[:2]
    slot = np.arange(k)
    valid = slot[None] < count[:, None]
    cur = pts
    prev = np.take_along_axis(pts, ((slot[None] - 1) % np.maximum(count[:, None], 1))[..., None], 1)
    c_in = cur[..., axis] >= edge if keep_ge else cur[..., axis] <= edge
    p_in = prev[..., axis] >= edge if keep_ge else prev[..., axis] <= edge
    cross = valid & (c_in != p_in)
    with np.errstate(divide="ignore", invalid="ignore"):
        t = (edge - prev[..., axis]) / (cur[..., axis] - prev[..., axis])  # used where crossing only
        hit = prev + t[..., None] * (cur - prev)
    hit[..., axis] = edge
    # Each vertex slot emits [intersection with the previous edge if crossing, the vertex if in].
    out = np.stack([hit, cur], 2).reshape(n, 2 * k, 2)
    emit = np.stack([cross, valid & c_in], 2).reshape(n, 2 * k)
    order = np.argsort(~emit, axis=1, kind="stable")
    out = np.take_along_axis(out, order[..., None], 1)
    new_count = emit.sum(1)
    width = max(int(new_count.max()), 1)
    return out[:, :width], new_count


def _normalize_rings(pts: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """GEOS-normalized open rings: repeated consecutive points dropped, start at the smallest
    (x, then y) vertex, clockwise (y up); count 0 where a ring has no area. Padded (N, K, 2)."""
    n, k = pts.shape[:2]
    if n == 0 or k == 0:
        return pts, np.zeros(n, np.int64)
    slot = np.arange(k)[None]
    valid = slot < count[:, None]
    prev = np.take_along_axis(pts, ((slot - 1) % np.maximum(count[:, None], 1))[..., None], 1)
    keep = valid & (pts != prev).any(-1)
    order = np.argsort(~keep, axis=1, kind="stable")
    pts, count = np.take_along_axis(pts, order[..., None], 1), keep.sum(1)
    valid = slot < count[:, None]
    pts = np.where(valid[..., None], pts, 0.0)  # padding may hold inf/nan from the passes
    nxt = np.take_along_axis(pts, ((slot + 1) % np.maximum(count[:, None], 1))[..., None], 1)
    area2 = np.where(valid, pts[..., 0] * nxt[..., 1] - nxt[..., 0] * pts[..., 1], 0.0).sum(1)  # > 0: counter-clockwise
    count = np.where((count >= 3) & (area2 != 0), count, 0)
    # The first vertex: smallest x, then smallest y (unique once repeated points are gone).
    x = np.where(valid, pts[..., 0], np.inf)
    y = np.where(valid & (x == x.min(1, keepdims=True)), pts[..., 1], np.inf)
    first = y.argmin(1)[:, None]
    c = np.maximum(count[:, None], 1)
    index = np.where(area2[:, None] > 0, (first - slot) % c, (first + slot) % c)
    return np.take_along_axis(pts, index[..., None], 1), count
