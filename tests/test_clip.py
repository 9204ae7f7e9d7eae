"""Vectorized overlay clipping (autoscale_core.clip) and raw-BSON overlay documents (issue #19).

Both replaced code that is kept here as the reference: per-geometry ``shapely.clip_by_rect`` and
overlay documents built as Python dicts. The clipped points must be equal after the rounding to
1e-5 that the documents store (in practice bit-identical inputs, border points within 1e-16), and
the documents must be byte for byte what ``bson.encode`` writes for the dict form.
"""

from __future__ import annotations

import bson
import numpy as np
import pytest
import shapely

from autoscale_core import clip
from autoscale_core import geometry as geo


# ------------------------------------------------------------------------- reference (shapely)
def _shapely_parts(shapes: list[np.ndarray], closed: bool) -> list[tuple[int, np.ndarray]]:
    """What the old code did: clip each geometry with GEOS, keep line strings / polygons."""
    geoms = [shapely.polygons(s) if closed else shapely.linestrings(s) for s in shapes]
    out = []
    for i, clipped in enumerate(shapely.clip_by_rect(np.array(geoms, dtype=object), 0.0, 0.0, 1.0, 1.0)):
        for part in shapely.get_parts(clipped):
            if shapely.get_type_id(part) != (3 if closed else 1):
                continue
            xy = shapely.get_coordinates(shapely.get_exterior_ring(part) if closed else part)
            out.append((i, xy[:-1] if closed else xy))  # rings repeat their first point
    return out


def _ours(result) -> list[tuple[int, np.ndarray]]:
    xy, bounds, owner = result
    assert (np.diff(owner) >= 0).all()
    return [(int(o), xy[bounds[k]:bounds[k + 1]]) for k, o in enumerate(owner)]


def _assert_same(reference, ours):
    assert [i for i, _ in reference] == [i for i, _ in ours]
    for (i, a), (_, b) in zip(reference, ours):
        assert a.shape == b.shape, (i, a.tolist(), b.tolist())
        np.testing.assert_array_equal(a.round(5), b.round(5), err_msg=f"geometry {i}")
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-12)


def _clip_lines(lines: list[np.ndarray]):
    coords = np.concatenate(lines) if lines else np.zeros((0, 2))
    return clip.clip_lines(coords, np.r_[0, np.cumsum([len(line) for line in lines])])


# ------------------------------------------------------------------------- lines
def test_random_lines_equal_shapely():
    rng = np.random.default_rng(0)
    lines = [rng.uniform(-0.5, 1.5, (rng.integers(2, 14), 2)) for _ in range(5000)]
    _assert_same(_shapely_parts(lines, False), _ours(_clip_lines(lines)))


def test_lines_on_a_grid_hitting_borders_and_corners_equal_shapely():
    rng = np.random.default_rng(1)
    grid = np.array([-0.5, 0.0, 0.25, 0.5, 1.0, 1.5])  # vertices on the border lines and corners
    lines = [grid[rng.integers(0, len(grid), (rng.integers(2, 7), 2))] for _ in range(5000)]
    _assert_same(_shapely_parts(lines, False), _ours(_clip_lines(lines)))


EDGE_LINES = {
    "crosses the border": [[0.5, 0.5], [1.5, 0.5]],
    "enters": [[1.5, 0.5], [0.5, 0.5]],
    "leaves and re-enters (two parts)": [[0.5, 0.5], [1.5, 0.5], [0.5, 0.7]],
    "crosses a corner region": [[-0.5, 0.6], [0.6, -0.5]],
    "through two borders": [[-1.0, 0.5], [2.0, 0.5]],
    "fully outside": [[1.5, 0.5], [1.5, 0.6], [3.0, -2.0]],
    "outside, around the square": [[-0.5, -0.5], [1.5, -0.5], [1.5, 1.5], [-0.5, 1.5]],
    "touches a corner only": [[-0.5, 0.5], [0.5, -0.5]],
    "vertex on the border from inside": [[0.5, 0.5], [1.0, 0.5], [0.5, 0.7]],
    "along the border": [[1.0, 0.2], [1.0, 0.8]],
    "partly along the border": [[0.5, 0.5], [1.0, 0.5], [1.0, 0.8], [0.5, 0.8]],
    "starts on the border": [[0.0, 0.5], [0.5, 0.5]],
    "ends on the border from outside": [[-0.5, 0.5], [0.0, 0.5]],
    "repeated point inside": [[0.5, 0.5], [0.5, 0.5], [0.7, 0.5]],
    "repeated point outside": [[0.5, 0.5], [1.5, 0.5], [1.5, 0.5], [0.7, 0.5]],
    "fully inside": [[0.1, 0.1], [0.9, 0.2], [0.3, 0.8]],
    "square's diagonal": [[0.0, 0.0], [1.0, 1.0]],
}


@pytest.mark.parametrize("name", list(EDGE_LINES))
def test_edge_case_lines_equal_shapely(name):
    line = np.array(EDGE_LINES[name], dtype=float)
    _assert_same(_shapely_parts([line], False), _ours(_clip_lines([line])))


def test_ragged_lines_and_empty_input():
    lines = [np.array(v, float) for v in EDGE_LINES.values()]
    _assert_same(_shapely_parts(lines, False), _ours(_clip_lines(lines)))
    xy, bounds, owner = clip.clip_lines(np.zeros((0, 2)), np.zeros(4, np.int64))
    assert xy.shape == (0, 2) and bounds.tolist() == [0] and owner.size == 0
    # a one-point line has no segment; its neighbours are not joined to it
    _, _, owner = clip.clip_lines(np.array([[0.5, 0.5], [0.2, 0.2], [0.3, 0.3]]), np.array([0, 1, 3]))
    assert owner.tolist() == [1]


@pytest.mark.parametrize("starts", [[0, 2], [1, 3], [0, 2, 1, 3], [0, 4]])
def test_clip_lines_rejects_inconsistent_starts(starts):
    # [0, 2] for 3 points used to return one part of all 3 points (the third joined line 0)
    with pytest.raises(ValueError, match="starts"):
        clip.clip_lines(np.array([[0.2, 0.2], [0.5, 0.5], [0.7, 0.7]]), np.array(starts))


def test_points_not_clipped_are_the_input_bit_for_bit():
    rng = np.random.default_rng(2)
    lines = [rng.uniform(0.01, 0.99, (5, 2)) for _ in range(100)]
    xy, bounds, owner = _clip_lines(lines)
    np.testing.assert_array_equal(xy, np.concatenate(lines))


# ------------------------------------------------------------------------- convex polygons
def test_random_boxes_equal_shapely():
    rng = np.random.default_rng(3)
    n = 5000
    boxes = geo.box_corners(rng.uniform(-0.3, 1.3, (n, 2)), rng.uniform(-4, 4, n),
                            rng.uniform(0.01, 0.8, n), rng.uniform(0.01, 0.5, n))
    ours = _ours(clip.clip_convex_polygons(boxes))
    _assert_same(_shapely_parts(list(boxes), True), ours)
    assert 0 < sum(len(r) != 4 for _, r in ours)  # some were really clipped


def test_boxes_on_a_grid_touching_borders_and_corners_equal_shapely():
    rng = np.random.default_rng(4)
    grid = np.array([-0.5, 0.0, 0.25, 0.5, 1.0, 1.5])
    n = 3000
    boxes = geo.box_corners(grid[rng.integers(0, len(grid), (n, 2))], rng.choice([0, np.pi / 2, np.pi / 4, 1.0], n),
                            rng.choice([0.5, 1.0, 2.0], n), rng.choice([0.5, 1.0, 3.0], n))
    _assert_same(_shapely_parts(list(boxes), True), _ours(clip.clip_convex_polygons(boxes)))


EDGE_BOXES = {
    "inside": [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]],
    "crosses the right border": [[0.8, 0.2], [1.2, 0.2], [1.2, 0.8], [0.8, 0.8]],
    "crosses, clockwise input": [[0.8, 0.8], [1.2, 0.8], [1.2, 0.2], [0.8, 0.2]],
    "covers a corner": [[0.9, -0.1], [1.1, -0.1], [1.1, 0.1], [0.9, 0.1]],
    "diamond through the bottom": [[0.5, 0.1], [0.6, -0.1], [0.7, 0.1], [0.6, 0.2]],
    "edge on the border, inside": [[0.2, 0.2], [1.0, 0.2], [1.0, 0.8], [0.2, 0.8]],
    "edge on the border, outside": [[1.0, 0.2], [1.5, 0.2], [1.5, 0.8], [1.0, 0.8]],
    "touches a corner from outside": [[1.0, 1.0], [1.5, 1.0], [1.5, 1.5], [1.0, 1.5]],
    "fully outside": [[2.0, 2.0], [3.0, 2.0], [3.0, 3.0], [2.0, 3.0]],
    "covers the whole square": [[-1.0, -1.0], [2.0, -1.0], [2.0, 2.0], [-1.0, 2.0]],
    "rotated, covers the square": [[0.5, -1.0], [2.0, 0.5], [0.5, 2.0], [-1.0, 0.5]],
    "corners outside, edges cross": [[0.5, -0.3], [1.3, 0.5], [0.5, 1.3], [-0.3, 0.5]],
}


@pytest.mark.parametrize("name", list(EDGE_BOXES))
def test_edge_case_boxes_equal_shapely(name):
    box = np.array([EDGE_BOXES[name]], dtype=float)
    _assert_same(_shapely_parts(list(box), True), _ours(clip.clip_convex_polygons(box)))


def test_boxes_inside_are_returned_unchanged_and_empty_input():
    box = np.array(EDGE_BOXES["inside"])[None]
    xy, bounds, owner = clip.clip_convex_polygons(box)
    np.testing.assert_array_equal(xy, box[0])
    assert bounds.tolist() == [0, 4] and owner.tolist() == [0]
    xy, bounds, owner = clip.clip_convex_polygons(np.zeros((0, 4, 2)))
    assert xy.shape == (0, 2) and bounds.tolist() == [0] and owner.size == 0


# ------------------------------------------------------------------------- overlay documents
def _reference_overlays(batch, extent_m):
    """The overlay documents as the code before the second round of issue #19 built them: shapely
    clipping per geometry, Python lists and dicts (ids left out)."""
    from autoscale_core import render as bev
    from autoscale_core.scene import AGENT_TYPES

    def parts(shapes, closed=False):
        out = [[] for _ in range(len(shapes))]
        for i, xy in _shapely_parts(list(shapes), closed):
            out[i].append(xy.round(5).tolist())
        return out

    def polyline(label, shapes, closed=False, index=None):
        return {"_cls": "Polyline", "tags": [], "label": label, "points": shapes, "closed": closed,
                "filled": closed, "index": index}

    t0, n = batch.history_steps, len(batch)
    ego = bev.scene_to_image(batch.ego[:, :, :2], extent_m)
    keep = np.unique(np.r_[np.arange(0, batch.lanes.shape[2], 2), batch.lanes.shape[2] - 1])
    lanes_xy = bev.scene_to_image(batch.lanes[:, :, keep], extent_m)
    now = batch.agents[:, :, t0]
    boxes = bev.scene_to_image(bev.box_corners(now[..., :2], now[..., 2], batch.agent_size), extent_m)

    def in_view(p):
        return ((p >= -0.1) & (p <= 1.1)).all(-1).any(-1)

    docs = {f: [] for f in ("ego_history", "ego_future", "agents", "lanes", "route")}
    history, future = parts(ego[:, : t0 + 1]), parts(ego[:, t0:])
    for i in range(n):
        for field, shapes in (("ego_history", history[i]), ("ego_future", future[i])):
            docs[field].append([polyline(field, shapes)] if shapes else [])
        lanes = [k for k in range(lanes_xy.shape[1]) if batch.lane_valid[i, k] and in_view(lanes_xy[i, k])]
        docs["lanes"].append([polyline(None, p, index=k) for k, p in zip(lanes, parts(lanes_xy[i, lanes])) if p])
        agents = [a for a in range(boxes.shape[1]) if batch.agent_valid[i, a, t0] and batch.agent_type[i, a] >= 0
                  and in_view(boxes[i, a])]
        docs["agents"].append([polyline(AGENT_TYPES[batch.agent_type[i, a]], p, True, a)
                               for a, p in zip(agents, parts(boxes[i, agents], closed=True)) if p])
        valid = batch.route_valid[i]
        route = parts([bev.scene_to_image(batch.route_polyline[i, valid], extent_m)])[0] if valid.sum() >= 2 else []
        docs["route"].append([polyline("route", route)] if route else [])
    return docs


def _without_ids(doc):
    assert doc["_cls"] == "Polylines"
    return [{k: v for k, v in p.items() if k != "_id"} for p in doc["polylines"]]


@pytest.mark.parametrize("extent", [64.0, 30.0])
def test_overlay_documents_equal_the_dict_reference_byte_for_byte(extent):
    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import scene_docs

    batch = generate_world(60, seed=5)
    ours = scene_docs.overlay_docs(batch, extent)
    reference = _reference_overlays(batch, extent)
    ids = []
    for field, docs in ours.items():
        assert len(docs) == len(batch)
        for i, raw in enumerate(docs):
            decoded = bson.decode(raw.raw)
            assert _without_ids(decoded) == reference[field][i], (field, i)
            assert bson.encode(decoded) == raw.raw  # canonical: what pymongo writes for the dicts
            ids += [decoded["_id"]] + [p["_id"] for p in decoded["polylines"]]
    assert all(isinstance(x, bson.ObjectId) for x in ids) and len(set(ids)) == len(ids)
    assert sum(len(reference["agents"][i]) for i in range(len(batch))) > 0


def test_overlay_documents_of_hand_built_scenes():
    from conftest import make_road_batch

    from autoscale_core import render as bev
    from fiftyone_plugin.engine import scene_docs

    batch = make_road_batch(4)
    ours = scene_docs.overlay_docs(batch, bev.DEFAULT_EXTENT_M)
    reference = _reference_overlays(batch, bev.DEFAULT_EXTENT_M)
    for field, docs in ours.items():
        assert [_without_ids(bson.decode(d.raw)) for d in docs] == reference[field]
        assert docs[0]["_cls"] == "Polylines"  # reads like a mapping too


def test_encode_points_matches_bson_for_long_lines():
    from fiftyone_plugin.engine import overlay_bson

    rng = np.random.default_rng(6)
    sizes = [1, 9, 10, 11, 99, 100, 101, 1000, 1001]  # array keys of 1 to 4 digits
    xy = rng.uniform(0, 1, (sum(sizes), 2)).round(5)
    part_bounds = np.r_[0, np.cumsum(sizes)]
    line_parts = np.array([0, 3, 3, 9])  # lines of 3, 0 and 6 parts
    buf, offsets = overlay_bson.encode_points(xy, part_bounds, line_parts)
    parts = [xy[a:b].tolist() for a, b in zip(part_bounds[:-1], part_bounds[1:])]
    for i, (a, b) in enumerate(zip(line_parts[:-1], line_parts[1:])):
        expected = bson.encode({"points": parts[a:b]})
        assert b"\x04points\x00" + buf[offsets[i]:offsets[i + 1]] + b"\x00" == expected[4:]


def test_encode_points_and_documents_with_five_digit_array_keys():
    """Arrays of 10,000 or more elements (a part's points, a line's parts, a scene's lines) have
    5-digit keys; they were written with 4 ("0000" for 10000) before the review fix."""
    from fiftyone_plugin.engine import overlay_bson

    rng = np.random.default_rng(7)
    n = 10_002
    xy = rng.uniform(0, 1, (n, 2)).round(5)
    buf, offsets = overlay_bson.encode_points(xy, np.array([0, n]), np.array([0, 1]))
    expected = bson.encode({"points": [xy.tolist()]})
    assert b"\x04points\x00" + buf[offsets[0]:offsets[1]] + b"\x00" == expected[4:]
    # one scene of n one-point lines: polyline keys up to "10001"
    docs = overlay_bson.polylines_docs(1, np.zeros(n, np.int64), xy, np.arange(n + 1), np.arange(n + 1), "lane",
                                       np.arange(n), False, False)
    decoded = bson.decode(docs[0].raw)
    assert bson.encode(decoded) == docs[0].raw
    assert [p["points"] for p in decoded["polylines"]] == [[[p]] for p in xy.tolist()]


def test_polylines_docs_rejects_unsorted_line_scenes():
    from fiftyone_plugin.engine import overlay_bson

    xy = np.zeros((2, 2))
    with pytest.raises(ValueError, match="non-decreasing"):
        overlay_bson.polylines_docs(2, np.array([1, 0]), xy, np.array([0, 1, 2]), np.array([0, 1, 2]), None, None,
                                    False, False)
