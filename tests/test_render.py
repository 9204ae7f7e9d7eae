"""BEV rendering: pixels land where the scene-frame geometry says, files are written atomically."""

import numpy as np
import pytest
from PIL import Image

from autoscale_core import render


def test_render_shape_and_ego_pixel(road_batch):
    image = render.render_bev(road_batch, 0, size=128)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    # The ego centre maps to (0.5, EGO_ROW) of the image and is painted in the ego colour.
    u, v = (render.scene_to_image(np.zeros(2)) * 128).astype(int)
    assert (u, v) == (64, int(render.EGO_ROW * 128))
    # 1 m behind the centre (the nose mark runs forward from the centre): ego colour.
    u, v = (render.scene_to_image(np.array([-1.0, 0.0])) * 128).astype(int)
    assert tuple(image[v, u]) == render.EGO_COLOUR


def test_agents_drawn_by_type_colour(road_batch):
    t0 = road_batch.history_steps
    image = render.render_bev(road_batch, 0, size=256)
    lead = road_batch.agents[0, 0, t0, :2]  # a vehicle 20 m ahead on the ego lane
    u, v = (render.scene_to_image(lead) * 256).astype(int)
    assert tuple(image[v, u]) == render.AGENT_COLOURS["vehicle"]
    # Straight ahead (+x) is up in the image: the lead car is above the ego.
    assert v < render.EGO_ROW * 256


def test_drivable_vs_background(road_batch):
    image = render.render_bev(road_batch, 0, size=256)
    # 10 m ahead on the ego lane's corridor but off the centerline (1 m left): drivable grey.
    u, v = (render.scene_to_image(np.array([10.0, 1.2])) * 256).astype(int)
    assert tuple(image[v, u]) == render.DRIVABLE
    # 25 m to the left of every lane: background.
    u, v = (render.scene_to_image(np.array([10.0, 25.0])) * 256).astype(int)
    assert tuple(image[v, u]) == render.BACKGROUND


def test_box_corners_rotation():
    corners = render.box_corners(np.array([1.0, 2.0]), np.array(np.pi / 2), np.array([4.0, 2.0]))
    # Heading +90°: length along +y.
    assert np.allclose(corners.min(0), [0.0, 0.0]) and np.allclose(corners.max(0), [2.0, 4.0])


def test_render_batch_to_files(road_batch, tmp_path):
    paths = render.render_batch_to_files(road_batch[:3], tmp_path / "bev", size=64)
    assert [p.split("/")[-1] for p in paths] == [f"{s}.png" for s in road_batch.meta["scene_id"][:3]]
    assert Image.open(paths[0]).size == (64, 64)
    assert not list((tmp_path / "bev").glob(".*tmp"))


def test_safe_file_stem_keeps_ids_distinct():
    assert render.safe_file_stem("a/b") != render.safe_file_stem("a_b")
    assert render.safe_file_stem("scene-001") == "scene-001"


def test_bad_index(road_batch):
    with pytest.raises(IndexError, match="out of range"):
        render.render_bev(road_batch, len(road_batch))


def test_default_tile_is_large_and_framed(road_batch):
    image = render.render_bev(road_batch, 0)
    assert image.shape[0] >= 512
    # A visible frame: every border pixel is the frame colour, unlike the off-road background.
    assert (image[0] == render.FRAME).all() and (image[:, -1] == render.FRAME).all()
    assert render.FRAME != render.BACKGROUND
