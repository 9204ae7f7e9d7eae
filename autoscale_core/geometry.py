"""Planar geometry shared by rendering, simulation, scoring, synthetic scenes and importers.

One convention for every function here:

* **Frame and units.** Any right-handed planar frame in metres (usually a scene frame: origin at
  the ego's t0 pose, +x its heading, +y to its left); angles in radians, counter-clockwise from +x.
* **Points** are (..., 2) arrays ``[x, y]``. Functions broadcast over the leading axes and are
  vectorized: none loops over scenes, points or boxes.
* **Oriented boxes** are ``centre`` (..., 2), ``heading`` (...,), ``length`` (...,) along the
  heading and ``width`` (...,) across it (all broadcastable). Corners come as (..., 4, 2) in the
  order front-left, front-right, rear-right, rear-left. Touching boxes overlap.
* **Polygons** are vertices (..., V, 2) in order (the closing edge is implied) with a validity
  mask (..., V) whose valid vertices form a prefix; containment uses the even-odd rule, and a
  polygon with fewer than 3 valid vertices contains nothing.
* **Polylines** are points (..., Q, 2) joined by straight segments; a zero-length segment (the
  padding of a shorter polyline repeats its last point) is a point. Arc length is in metres
  from the first point.

Dtypes follow the inputs (float32 stays float32 where no float64 constant enters), so callers
choose their precision; the scorer casts to float64 first.
"""

from __future__ import annotations

import numpy as np

_FRONT = np.array([0.5, 0.5, -0.5, -0.5])  # corner offsets in units of length, FL FR RR RL
_LEFT = np.array([0.5, -0.5, -0.5, 0.5])  # ... and of width


# ------------------------------------------------------------------------------ oriented boxes
def box_corners(centre, heading, length, width) -> np.ndarray:
    """Corners (..., 4, 2) of oriented boxes: front-left, front-right, rear-right, rear-left.

    Args:
        centre: (..., 2) m; heading: (...,) rad; length, width: (...,) m (broadcastable).
    """
    centre = np.asarray(centre)
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    along = _FRONT * np.asarray(length)[..., None]  # (..., 4)
    across = _LEFT * np.asarray(width)[..., None]
    return np.stack([centre[..., 0:1] + c * along - s * across, centre[..., 1:2] + s * along + c * across], -1)


def boxes_overlap(centre_a, heading_a, length_a, width_a, centre_b, heading_b, length_b, width_b) -> np.ndarray:
    """(...) bool: oriented boxes a and b overlap (touching counts); separating axis theorem.

    Boxes as in the module convention; every argument broadcasts against the others.
    """
    centre_a, centre_b = np.asarray(centre_a), np.asarray(centre_b)
    dx = centre_b[..., 0] - centre_a[..., 0]
    dy = centre_b[..., 1] - centre_a[..., 1]
    return boxes_overlap_offset(
        dx, dy, np.cos(heading_a), np.sin(heading_a), length_a, width_a,
        np.cos(heading_b), np.sin(heading_b), length_b, width_b,
    )


def boxes_overlap_offset(dx, dy, cos_a, sin_a, length_a, width_a, cos_b, sin_b, length_b, width_b) -> np.ndarray:
    """:func:`boxes_overlap` from the centre offset (dx, dy) = centre b − centre a (m) and the
    cos/sin of both headings, all (...) broadcastable: hot loops (collisions, time-to-collision
    projections) compute these once and reuse them for every test."""
    cos_d = np.abs(cos_a * cos_b + sin_a * sin_b)
    sin_d = np.abs(sin_a * cos_b - cos_a * sin_b)
    # Axes of box a, then of box b: separated when the centre offset's projection exceeds the sum
    # of both boxes' half extents on that axis.
    sep = np.abs(dx * cos_a + dy * sin_a) > 0.5 * length_a + 0.5 * length_b * cos_d + 0.5 * width_b * sin_d
    sep |= np.abs(-dx * sin_a + dy * cos_a) > 0.5 * width_a + 0.5 * length_b * sin_d + 0.5 * width_b * cos_d
    sep |= np.abs(dx * cos_b + dy * sin_b) > 0.5 * length_b + 0.5 * length_a * cos_d + 0.5 * width_a * sin_d
    sep |= np.abs(-dx * sin_b + dy * cos_b) > 0.5 * width_b + 0.5 * length_a * sin_d + 0.5 * width_a * cos_d
    return ~sep


def boxes_overlap_sparse(centre_a, heading_a, length_a, width_a, centre_b, heading_b, length_b, width_b) -> np.ndarray:
    """:func:`boxes_overlap` for large, mostly far-apart broadcasts (every candidate × agent ×
    step): only pairs whose bounding circles intersect go through the separating-axis test."""
    shape = np.broadcast_shapes(
        np.shape(centre_a)[:-1], np.shape(centre_b)[:-1], np.shape(heading_a), np.shape(heading_b),
        np.shape(length_a), np.shape(length_b), np.shape(width_a), np.shape(width_b),
    )
    radius = 0.5 * (np.hypot(length_a, width_a) + np.hypot(length_b, width_b))
    d2 = ((np.asarray(centre_a) - np.asarray(centre_b)) ** 2).sum(-1)
    near = np.nonzero(np.broadcast_to(d2 <= radius**2, shape))
    out = np.zeros(shape, dtype=bool)
    if len(near[0]) == 0:
        return out

    def pick(value, point: bool = False):
        return np.broadcast_to(value, shape + (np.shape(value)[-1:] if point else ()))[near]

    out[near] = boxes_overlap(
        pick(centre_a, True), pick(heading_a), pick(length_a), pick(width_a),
        pick(centre_b, True), pick(heading_b), pick(length_b), pick(width_b),
    )
    return out


# ------------------------------------------------------------------------------ polygons
def polygon_edges(vertices: np.ndarray, vertex_valid: np.ndarray):
    """Edges of padded polygons (..., V, 2) with valid-prefix masks (..., V).

    Returns ``(start, end, vertex_valid, count)``: start = the vertices, end (..., V, 2) = the
    next vertex, wrapping at each polygon's own last valid vertex, and count (...) valid vertices.
    """
    count = vertex_valid.sum(-1)
    index = np.arange(vertices.shape[-2])
    following = np.where(index + 1 < count[..., None], index + 1, 0)
    end = np.take_along_axis(vertices, following[..., None].repeat(2, -1), -2)
    return vertices, end, vertex_valid, count


def points_in_polygon_edges(points: np.ndarray, start, end, vertex_valid, count) -> np.ndarray:
    """Even-odd containment of ``points`` (..., 2) in polygons given by :func:`polygon_edges`
    (start, end (..., V, 2), vertex_valid (..., V), count (...)), all broadcast → (...) bool."""
    x, y = points[..., 0, None], points[..., 1, None]
    x1, y1, x2, y2 = start[..., 0], start[..., 1], end[..., 0], end[..., 1]
    straddles = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        x_cross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    crossings = straddles & (x < x_cross) & vertex_valid
    return (crossings.sum(-1) % 2 == 1) & (count >= 3)


def points_in_polygons(points: np.ndarray, polygons: np.ndarray, vertex_valid: np.ndarray) -> np.ndarray:
    """Even-odd point-in-polygon test of every point against every polygon of its scene.

    Args:
        points: (S, M, 2).
        polygons: (S, D, V, 2) vertices in order (closing edge implied).
        vertex_valid: (S, D, V) bool; valid vertices must be a prefix of each polygon.

    Returns:
        (S, M, D) bool; polygons with fewer than 3 valid vertices contain nothing.
    """
    if polygons.shape[1] == 0:
        return np.zeros(points.shape[:2] + (0,), dtype=bool)
    start, end, valid, count = polygon_edges(polygons, vertex_valid)
    return points_in_polygon_edges(points[:, :, None, :], start[:, None], end[:, None], valid[:, None], count[:, None])


def distance_to_polygon_boundary(points: np.ndarray, start, end, vertex_valid) -> np.ndarray:
    """(...) distance (m) from ``points`` (..., 2) to the nearest valid edge of polygons given by
    :func:`polygon_edges` (start, end (..., V, 2), vertex_valid (..., V)); +inf without edges."""
    ab, ap = end - start, points[..., None, :] - start
    t = np.clip((ap * ab).sum(-1) / np.maximum((ab**2).sum(-1), 1e-12), 0.0, 1.0)
    distance = np.sqrt(((ap - t[..., None] * ab) ** 2).sum(-1))
    return np.where(vertex_valid, distance, np.inf).min(-1)


# ------------------------------------------------------------------------------ polylines
def closest_on_segments(points: np.ndarray, start: np.ndarray, delta: np.ndarray, squared_length=None):
    """Nearest point of segments ``start + t · delta`` (t in [0, 1]) to ``points``.

    Args:
        points, start, delta: (..., 2) m, broadcast against each other (e.g. points (S, M, 1, 1, 2)
            against lane segments (S, 1, L, P-1, 2)).
        squared_length: (...) |delta|² clamped away from 0; default max(|delta|², 1e-9) m², so a
            zero-length segment (padding) acts as its start point.

    Returns:
        ``(t, distance)``, each (...): the fraction along the segment and the distance (m).
    """
    dx, dy = delta[..., 0], delta[..., 1]
    if squared_length is None:
        squared_length = np.maximum(dx * dx + dy * dy, 1e-9)
    t = np.clip(((points[..., 0] - start[..., 0]) * dx + (points[..., 1] - start[..., 1]) * dy) / squared_length, 0.0, 1.0)
    ex = points[..., 0] - (start[..., 0] + t * dx)
    ey = points[..., 1] - (start[..., 1] + t * dy)
    return t, np.sqrt(ex * ex + ey * ey)


def polyline_arclength(polyline: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(..., Q) cumulative arc length (m) of polylines (..., Q, 2), constant past segments that
    are not valid (``valid`` (..., Q) marks points; a segment is valid when both ends are)."""
    seg = np.diff(polyline, axis=-2)
    length = np.sqrt(seg[..., 0] * seg[..., 0] + seg[..., 1] * seg[..., 1])
    length = np.where(valid[..., 1:] & valid[..., :-1], length, 0.0)
    return np.concatenate([np.zeros(length.shape[:-1] + (1,)), np.cumsum(length, -1)], -1)


def project_on_polyline(points: np.ndarray, polyline: np.ndarray, valid: np.ndarray):
    """Project points on polylines: nearest point over the valid segments.

    Args:
        points: (..., 2) m.
        polyline: (..., Q, 2) m, broadcast against ``points``' leading axes.
        valid: (..., Q) bool per polyline point; a segment is valid when both ends are.

    Returns:
        ``(arc, lateral)``, each (...): arc length (m) of the projection along the polyline
        (:func:`polyline_arclength`), and the signed offset (m, left of the direction of travel
        positive) of the point from the nearest segment's line.
    """
    cum = polyline_arclength(polyline, valid)
    ax, ay = polyline[..., :-1, 0], polyline[..., :-1, 1]
    dx, dy = polyline[..., 1:, 0] - ax, polyline[..., 1:, 1] - ay
    # Per component: reductions over a length-2 axis are slow in numpy.
    squared = dx * dx + dy * dy
    len2 = np.maximum(squared, 1e-12)  # degenerate segments: t = 0, no division by zero
    px, py = points[..., 0, None] - ax, points[..., 1, None] - ay  # (..., Q-1)
    t = np.clip((px * dx + py * dy) / len2, 0.0, 1.0)
    ex, ey = px - t * dx, py - t * dy
    distance2 = np.where(valid[..., 1:] & valid[..., :-1], ex * ex + ey * ey, np.inf)
    j = distance2.argmin(-1)[..., None]  # (..., 1) nearest segment

    def at_nearest(x: np.ndarray) -> np.ndarray:
        return np.take_along_axis(np.broadcast_to(x, distance2.shape), j, -1)[..., 0]

    arc = at_nearest(cum[..., :-1]) + at_nearest(t) * np.sqrt(at_nearest(squared))
    lateral = (at_nearest(dx) * at_nearest(py) - at_nearest(dy) * at_nearest(px)) / np.sqrt(at_nearest(len2))
    return arc, lateral
