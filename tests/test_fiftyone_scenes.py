"""Scenes as FiftyOne samples on the real embedded MongoDB: create, overwrite, store, write-back."""

from pathlib import Path

import numpy as np
import pytest
from conftest import make_road_batch

from autoscale_core.scene import SceneValidationError


@pytest.fixture
def scenes(fo, autoscale_home):
    from fiftyone_plugin.engine import scenes

    return scenes


def test_create_dataset_fields_media_and_overlays(fo, scenes, dataset_name, road_batch):
    name = dataset_name()
    ds = scenes.create_scene_dataset(name, road_batch)
    assert len(ds) == len(road_batch) and ds.persistent
    assert sorted(ds.values("scene_id")) == sorted(road_batch.meta["scene_id"])
    for field in ("scene_id", "source", "city", "topology", "maneuver", "events", "ego_speed",
                  "parent_id", "split", "ego_history", "ego_future", "agents", "lanes", "route"):
        assert field in ds.get_field_schema(), field
    sample = ds.match(fo.ViewField("scene_id") == road_batch.meta["scene_id"][3]).first()
    assert Path(sample.filepath).is_file() and sample.filepath.endswith(".png")
    assert (sample.metadata.width, sample.metadata.height) == (512, 512)
    assert sample.events == ["cut_in", "hard_brake"]
    assert sample.ego_speed == pytest.approx(float(road_batch.ego[3, road_batch.history_steps, 3]))
    # Overlays come back as real label objects; agents labelled by type, boxes closed.
    assert isinstance(sample.agents, fo.Polylines)
    assert sorted(p.label for p in sample.agents.polylines) == ["cyclist", "pedestrian", "vehicle"]
    assert all(p.closed and len(p.points[0]) == 4 for p in sample.agents.polylines)
    future = np.array(sample.ego_future.polylines[0].points[0])
    assert future.shape == (road_batch.future_steps + 1, 2)
    assert np.all(np.diff(future[:, 1]) < 0)  # driving forward = moving up in the image
    assert len(sample.lanes.polylines) == 3
    assert all(p.label is None for p in sample.lanes.polylines)  # no "lane" text per lane in the App
    # Every overlay point lies inside the image (clipped there, not drawn past the tile's edge).
    for field in ("ego_history", "ego_future", "agents", "lanes", "route"):
        for s in ds.values(field):
            points = [xy for p in s.polylines for shape in p.points for xy in shape]
            assert all(0.0 <= x <= 1.0 and 0.0 <= y <= 1.0 for x, y in points), field
    assert set(ds.distinct("split")) <= {"train", "val", "test"}
    # App colour scheme: agents coloured by label.
    fields = {f["path"]: f for f in ds.app_config.color_scheme.fields}
    assert fields["agents"]["colorByAttribute"] == "label"
    assert {"ego_history", "ego_future", "agents"} <= set(ds.app_config.active_fields.paths)


def test_schema_validation_error_writes_nothing(fo, scenes, dataset_name, road_batch):
    bad = road_batch.subset(np.arange(4))
    bad.ego[2, 1, 0] = np.nan
    name = dataset_name()
    with pytest.raises(SceneValidationError, match="hand-00002"):
        scenes.create_scene_dataset(name, bad)
    assert not fo.dataset_exists(name)
    assert not (scenes.default_dataset_dir(name) / "store").exists()

    wrong_shape = road_batch.subset(np.arange(2)).replace(ego_size=np.ones((2, 3), np.float32))
    with pytest.raises(SceneValidationError, match="ego_size"):
        scenes.create_scene_dataset(name, wrong_shape)
    assert not fo.dataset_exists(name)


def test_overwrite_existing_dataset(fo, scenes, dataset_name):
    name = dataset_name()
    first = make_road_batch(5, prefix="first")
    scenes.create_scene_dataset(name, first)
    with pytest.raises(scenes.SceneDatasetError, match="already exists"):
        scenes.create_scene_dataset(name, first)
    second = make_road_batch(3, prefix="second")
    ds = scenes.create_scene_dataset(name, second, overwrite=True)
    assert sorted(ds.values("scene_id")) == sorted(second.meta["scene_id"])
    store = scenes.get_store(ds)
    assert sorted(store.scene_ids()) == sorted(second.meta["scene_id"])  # old store gone
    bev_files = sorted(p.stem for p in Path(ds.info["autoscale_media"]).glob("*.png"))
    assert bev_files == sorted(second.meta["scene_id"])


def test_two_datasets_side_by_side(fo, scenes, dataset_name):
    a, b = dataset_name("a"), dataset_name("b")
    ds_a = scenes.create_scene_dataset(a, make_road_batch(4, prefix="a"))
    ds_b = scenes.create_scene_dataset(b, make_road_batch(6, prefix="b"))
    assert ds_a.info["autoscale_store"] != ds_b.info["autoscale_store"]
    assert len(scenes.load_scenes(fo.load_dataset(a))) == 4
    assert len(scenes.load_scenes(fo.load_dataset(b))) == 6
    scenes.delete_scene_dataset(a)
    assert not fo.dataset_exists(a) and len(scenes.load_scenes(fo.load_dataset(b))) == 6


def test_store_round_trip_in_view_order(fo, scenes, dataset_name, road_batch):
    ds = scenes.create_scene_dataset(dataset_name(), road_batch)
    view = ds.sort_by("scene_id", reverse=True).limit(5)
    loaded = scenes.load_scenes(view)
    assert list(loaded.meta["scene_id"]) == view.values("scene_id")
    order = [list(road_batch.meta["scene_id"]).index(s) for s in view.values("scene_id")]
    for name, array in road_batch.subset(order).arrays().items():
        np.testing.assert_array_equal(getattr(loaded, name), array, err_msg=name)


def test_add_scenes_skip_existing_and_duplicates(fo, scenes, dataset_name):
    batch = make_road_batch(6, prefix="dup")
    ds = scenes.create_scene_dataset(dataset_name(), batch.subset(np.arange(4)))
    new_ids = scenes.add_scenes(ds, batch, render=False)  # 4 already present, 2 new
    assert len(new_ids) == 2 and len(ds) == 6
    assert scenes.add_scenes(ds, batch) == []
    with pytest.raises(scenes.SceneDatasetError, match="already in dataset"):
        scenes.add_scenes(ds, batch, skip_existing=False)
    assert len(ds) == 6 and len(scenes.get_store(ds)) == 6


def test_write_scene_fields_bulk_and_checked(fo, scenes, dataset_name, road_batch):
    ds = scenes.create_scene_dataset(dataset_name(), road_batch)
    view = ds.sort_by("scene_id")
    ids = view.values("scene_id")
    scores = np.linspace(0.0, 1.0, len(ids))
    emb = np.arange(len(ids) * 3, dtype=np.float32).reshape(len(ids), 3)
    scenes.write_scene_fields(view, {"value_score": scores, "emb_test": emb})
    assert ds.sort_by("scene_id").values("value_score") == pytest.approx(scores.tolist())
    np.testing.assert_array_equal(np.stack(ds.sort_by("scene_id").values("emb_test")), emb)
    # Explicit ids: only those change.
    scenes.write_scene_fields(ds, {"value_score": [5.0]}, scene_ids=[ids[0]])
    assert ds.sort_by("scene_id").values("value_score")[:2] == pytest.approx([5.0, scores[1]])

    before = ds.sort_by("scene_id").values("value_score")
    with pytest.raises(scenes.SceneDatasetError, match="has 2 values"):
        scenes.write_scene_fields(view, {"value_ok": np.zeros(len(ids)), "value_score": [1.0, 2.0]})
    with pytest.raises(scenes.SceneDatasetError, match="not in the view"):
        scenes.write_scene_fields(view.limit(2), {"value_score": [1.0, 2.0]}, scene_ids=["nope", ids[0]])
    with pytest.raises(scenes.SceneDatasetError, match="empty"):
        scenes.write_scene_fields(view.limit(0), {"value_score": []})
    with pytest.raises(scenes.SceneDatasetError, match="NaN"):
        scenes.write_scene_fields(view, {"value_score": np.full(len(ids), np.nan)})
    # Nothing was half-written by the failed calls.
    assert "value_ok" not in ds.get_field_schema()
    assert ds.sort_by("scene_id").values("value_score") == before


def test_split_is_deterministic(scenes):
    ids = [f"s{i}" for i in range(2000)]
    splits = scenes.assign_split(ids)
    assert splits == scenes.assign_split(ids)
    shares = {s: splits.count(s) / len(ids) for s in ("train", "val", "test")}
    assert 0.75 < shares["train"] < 0.85 and 0.07 < shares["val"] < 0.13


def test_load_scenes_without_store_is_clear_error(fo, scenes, dataset_name):
    ds = fo.Dataset(dataset_name())
    ds.add_sample(fo.Sample(filepath="/tmp/x.png", scene_id="x"))
    with pytest.raises(scenes.SceneDatasetError, match="no scene store"):
        scenes.load_scenes(ds)


def test_world_batch_ingests(fo, scenes, dataset_name, small_world_batch):
    ds = scenes.create_scene_dataset(dataset_name(), small_world_batch)
    summary = scenes.summarize(ds)
    assert sum(summary["city"].values()) == len(small_world_batch)
    assert len(scenes.load_scenes(ds)) == len(small_world_batch)
