"""autoscale_core.geometry: the one set of box / polygon / polyline helpers.

Two kinds of checks: against shapely (an independent implementation) on random inputs, and
against frozen copies of the implementations it replaced (render.py, synthetic/_geometry.py,
sim/scoring.py, sim/planner.py, scene.py), which must give bit-identical results so that scores,
synthetic scenes and images do not change.
"""

import numpy as np
import shapely

from autoscale_core import geometry as geo


def _random_boxes(rng, n, dtype=np.float64):
    centre = rng.uniform(-6, 6, (n, 2)).astype(dtype)
    heading = rng.uniform(-np.pi, np.pi, n).astype(dtype)
    length = rng.uniform(0.3, 6, n).astype(dtype)
    width = rng.uniform(0.3, 3, n).astype(dtype)
    return centre, heading, length, width


# ---------------------------------------------------------------- frozen copies of the old code
def _old_scoring_corners(x, y, heading, length, width):
    c, s = np.cos(heading), np.sin(heading)
    hl, hw = 0.5 * length, 0.5 * width
    out = []
    for fl, fw in ((1, 1), (1, -1), (-1, -1), (-1, 1)):
        out.append(np.stack([x + fl * hl * c - fw * hw * s, y + fl * hl * s + fw * hw * c], -1))
    return np.stack(out, -2)


def _old_render_corners(centre, heading, size):
    half_l, half_w = size[..., 0:1] / 2, size[..., 1:2] / 2
    c, s = np.cos(heading)[..., None], np.sin(heading)[..., None]
    local = np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]], dtype=np.float64)
    lx, ly = local[:, 0] * half_l, local[:, 1] * half_w
    return np.stack([centre[..., 0:1] + c * lx - s * ly, centre[..., 1:2] + s * lx + c * ly], axis=-1)


def _old_corner_sat(a, b):
    """synthetic/_geometry.boxes_overlap: separating axes from the corners' edges."""
    a, b = np.broadcast_arrays(a, b)
    overlap = np.ones(a.shape[:-2], dtype=bool)
    for box in (a, b):
        for k in (0, 1):
            edge = box[..., k + 1, :] - box[..., k, :]
            axis = np.stack([-edge[..., 1], edge[..., 0]], -1)[..., None, :]
            pa, pb = (a * axis).sum(-1), (b * axis).sum(-1)
            overlap &= (pa.max(-1) >= pb.min(-1)) & (pb.max(-1) >= pa.min(-1))
    return overlap


def _old_project(route, valid, cum, points):
    """sim/planner._project: (S, M) arc length and signed lateral offset."""
    a, b = route[:, None, :-1], route[:, None, 1:]
    d = b - a
    len2 = np.maximum((d**2).sum(-1), 1e-12)
    ap = points[:, :, None, :] - a
    t = np.clip((ap * d).sum(-1) / len2, 0.0, 1.0)
    dist = ((ap - t[..., None] * d) ** 2).sum(-1)
    dist = np.where((valid[:, 1:] & valid[:, :-1])[:, None], dist, np.inf)
    j = dist.argmin(-1)
    take = lambda x: np.take_along_axis(x, j[..., None], -1)[..., 0]  # noqa: E731
    dj = np.take_along_axis(np.broadcast_to(d, dist.shape + (2,)), j[..., None, None].repeat(2, -1), 2)[..., 0, :]
    s = np.take_along_axis(np.broadcast_to(cum[:, None, :-1], dist.shape), j[..., None], -1)[..., 0]
    s = s + take(t) * np.sqrt(take(len2))
    apj = np.take_along_axis(ap, j[..., None, None].repeat(2, -1), 2)[..., 0, :]
    return s, (dj[..., 0] * apj[..., 1] - dj[..., 1] * apj[..., 0]) / np.sqrt(take(len2))


def _random_polylines(rng, S, Q):
    steps = rng.uniform(0.5, 3.0, (S, Q - 1, 1)) * np.stack([np.cos(a := rng.normal(0, 0.3, (S, Q - 1))), np.sin(a)], -1)
    line = np.concatenate([rng.uniform(-5, 5, (S, 1, 2)), steps], 1).cumsum(1)
    count = rng.integers(2, Q + 1, S)
    valid = np.arange(Q) < count[:, None]
    line = np.where(valid[..., None], line, line[np.arange(S), count - 1][:, None])  # padding repeats
    return line, valid


# ---------------------------------------------------------------- boxes
def test_box_corners_match_the_old_three_implementations_bit_for_bit():
    rng = np.random.default_rng(0)
    for dtype in (np.float64, np.float32):
        centre, heading, length, width = _random_boxes(rng, 500, dtype)
        new = geo.box_corners(centre, heading, length, width)
        old_render = _old_render_corners(centre, heading, np.stack([length, width], -1))
        assert new.dtype == old_render.dtype and np.array_equal(new, old_render)
        if dtype == np.float64:
            assert np.array_equal(new, _old_scoring_corners(centre[:, 0], centre[:, 1], heading, length, width))
    # Broadcasting as the scorer uses it: (B, K) poses, (B, 1) sizes, and scalar sizes.
    states = rng.normal(size=(7, 5, 3))
    lengths = rng.uniform(3, 5, (7, 1))
    assert geo.box_corners(states[..., :2], states[..., 2], lengths, 1.9).shape == (7, 5, 4, 2)


def test_box_corners_order_and_frame():
    corners = geo.box_corners(np.array([1.0, 2.0]), np.array(0.0), 4.0, 2.0)
    assert np.allclose(corners, [[3, 3], [3, 1], [-1, 1], [-1, 3]])  # FL, FR, RR, RL; +y is left


def test_boxes_overlap_agrees_with_shapely_and_the_corner_test():
    rng = np.random.default_rng(1)
    a, b = _random_boxes(rng, 4000), _random_boxes(rng, 4000)
    new = geo.boxes_overlap(*a, *b)
    corners_a, corners_b = geo.box_corners(*a), geo.box_corners(*b)
    assert np.array_equal(new, shapely.intersects(shapely.polygons(corners_a), shapely.polygons(corners_b)))
    assert np.array_equal(new, _old_corner_sat(corners_a, corners_b))
    assert 0.1 < new.mean() < 0.9  # both outcomes exercised


def test_boxes_overlap_touching_counts_and_sparse_matches_dense():
    centre = np.array([[0.0, 0.0], [4.0, 0.0], [4.0 + 1e-6, 0.0]])
    touching = geo.boxes_overlap(centre[0], 0.0, 4.0, 2.0, centre[1:], 0.0, 4.0, 2.0)
    assert touching.tolist() == [True, False]
    rng = np.random.default_rng(2)
    a, b = _random_boxes(rng, 300), _random_boxes(rng, 300)
    grid_a = tuple(x[:, None] for x in a)
    grid_b = tuple(x[None] for x in b)
    dense = geo.boxes_overlap(*grid_a, *grid_b)
    assert np.array_equal(geo.boxes_overlap_sparse(*grid_a, *grid_b), dense)
    assert dense.shape == (300, 300) and dense.any() and not dense.all()


# ---------------------------------------------------------------- polygons
def test_points_in_polygons_agree_with_shapely():
    rng = np.random.default_rng(3)
    S, D, V, M = 6, 3, 9, 200
    angle = np.sort(rng.uniform(0, 2 * np.pi, (S, D, V)), -1)
    radius = rng.uniform(2, 8, (S, D, V))  # star-shaped, so simple polygons
    vertices = rng.uniform(-5, 5, (S, D, 1, 2)) + radius[..., None] * np.stack([np.cos(angle), np.sin(angle)], -1)
    count = rng.integers(2, V + 1, (S, D))
    valid = np.arange(V) < count[..., None]
    points = rng.uniform(-14, 14, (S, M, 2))
    inside = geo.points_in_polygons(points, vertices, valid)
    for s in range(S):
        for d in range(D):
            if count[s, d] < 3:
                assert not inside[s, :, d].any()
                continue
            polygon = shapely.Polygon(vertices[s, d, : count[s, d]])
            assert np.array_equal(inside[s, :, d], shapely.contains_xy(polygon, points[s, :, 0], points[s, :, 1]))
    # Per-point gathered form (the scorer's layout) gives the same answers.
    start, end, vv, cnt = geo.polygon_edges(vertices, valid)
    scene = np.repeat(np.arange(S), M)
    flat = points.reshape(-1, 2)
    for d in range(D):
        gathered = geo.points_in_polygon_edges(flat, start[scene, d], end[scene, d], vv[scene, d], cnt[scene, d])
        assert np.array_equal(gathered, inside[..., d].reshape(-1))
    boundary = geo.distance_to_polygon_boundary(flat, start[scene, 0], end[scene, 0], vv[scene, 0])
    for i in rng.choice(len(flat), 40, replace=False):
        polygon = shapely.LinearRing(vertices[scene[i], 0, : count[scene[i], 0]]) if count[scene[i], 0] >= 3 else None
        if polygon is not None:
            assert abs(boundary[i] - polygon.distance(shapely.Point(flat[i]))) < 1e-9


# ---------------------------------------------------------------- polylines
def test_project_on_polyline_matches_shapely_and_the_planner_projection():
    rng = np.random.default_rng(4)
    S, Q, M = 5, 12, 300
    line, valid = _random_polylines(rng, S, Q)
    points = rng.uniform(-10, 30, (S, M, 2))
    arc, lateral = geo.project_on_polyline(points, line[:, None], valid[:, None])
    cum = geo.polyline_arclength(line, valid)
    old_arc, old_lateral = _old_project(line, valid, cum, points)
    assert np.array_equal(arc, old_arc) and np.array_equal(lateral, old_lateral)
    for s in range(S):
        curve = shapely.LineString(line[s, : valid[s].sum()])
        assert np.allclose(arc[s], shapely.line_locate_point(curve, shapely.points(points[s])), atol=1e-9)
        # The offset from the nearest segment's line is at most the distance to the segment.
        assert (np.abs(lateral[s]) <= shapely.distance(curve, shapely.points(points[s])) + 1e-9).all()
        assert abs(cum[s, -1] - curve.length) < 1e-9
    left = geo.project_on_polyline(np.array([1.0, 2.0]), np.array([[0.0, 0.0], [4.0, 0.0]]), np.ones(2, bool))
    assert np.allclose(left, (1.0, 2.0))  # arc 1 m along, 2 m to the left


def test_closest_on_segments_matches_shapely_and_the_old_lane_distance():
    rng = np.random.default_rng(5)
    line, valid = _random_polylines(rng, 4, 10)
    points = rng.uniform(-10, 30, (4, 50, 2))
    start, delta = line[:, None, :-1], np.diff(line, axis=1)[:, None]
    t, distance = geo.closest_on_segments(points[:, :, None], start, delta)
    for s in range(4):
        curve = shapely.LineString(line[s, : valid[s].sum()])
        assert np.allclose(distance[s].min(-1), shapely.distance(curve, shapely.points(points[s])), atol=1e-9)
    assert ((0.0 <= t) & (t <= 1.0)).all()
    # Frozen copy of scene.lateral_distance_to_lanes' former body (float32, per component).
    lanes, pts = line.astype(np.float32)[:, None], points.astype(np.float32)
    ax, ay = lanes[:, None, :, :-1, 0], lanes[:, None, :, :-1, 1]
    abx, aby = lanes[:, None, :, 1:, 0] - ax, lanes[:, None, :, 1:, 1] - ay
    px, py = pts[:, :, None, None, 0], pts[:, :, None, None, 1]
    old_t = np.clip(((px - ax) * abx + (py - ay) * aby) / np.maximum(abx * abx + aby * aby, 1e-9), 0.0, 1.0)
    dx, dy = px - (ax + old_t * abx), py - (ay + old_t * aby)
    first = lanes[:, None, :, :-1]
    new_t, new = geo.closest_on_segments(pts[:, :, None, None], first, lanes[:, None, :, 1:] - first)
    assert new.dtype == np.float32 and np.array_equal(new, np.sqrt(dx * dx + dy * dy)) and np.array_equal(new_t, old_t)
