"""Bulk ingest (issue #19): raw sample documents load like ``add_samples`` ones, deferred BEV
rendering, and resuming an interrupted world ingest without duplicates or orphans."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bson import ObjectId
from conftest import make_road_batch
from reliability_helpers import cli_env, kill9, start_and_wait_for
from test_reliability_add_crash import (
    ADD_MARKER,
    _cli_code,
    _failed_adds,
    assert_consistent,
)


def test_bulk_documents_read_back_like_add_samples(fo, autoscale_home, dataset_name):
    from fiftyone_plugin.engine import scenes

    batch = make_road_batch(6)
    ds = scenes.create_scene_dataset(dataset_name("docs"), batch)
    plain = fo.Dataset(dataset_name("plain"))
    plain.add_sample(fo.Sample(filepath="/tmp/x.png", scene_id="x"))
    ours = ds._sample_collection.find_one({}, {"_id": 0})
    theirs = plain._sample_collection.find_one({}, {"_id": 0})
    assert set(theirs) <= set(ours)  # every base key add_samples writes (created_at, _rand, ...)
    assert ds.media_type == "image" and isinstance(ds.get_field("events"), fo.ListField)
    sample = ds.shuffle(seed=1).first()
    assert isinstance(sample.agents, fo.Polylines) and sample.created_at is not None
    assert len(ds.take(3)) == 3
    label_ids = [p.id for s in ds for f in scenes.OVERLAY_FIELDS for p in s[f].polylines]
    assert len(label_ids) == len(set(label_ids)) and None not in label_ids
    # Existence checks go through an index on scene_id; re-adding skips every scene.
    assert "scene_id" in ds.list_indexes()
    assert scenes.add_scenes(ds, batch) == [] and len(ds) == 6


def test_deferred_render_links_placeholders_then_renders(fo, autoscale_home, dataset_name):
    from fiftyone_plugin.engine import bev_render, scene_adds, scenes

    batch = make_road_batch(5, prefix="dfr")
    ds = scenes.create_scene_dataset(dataset_name("dfr"), batch, render_images="deferred")
    paths = ds.values("filepath")
    assert all(Path(p).is_file() for p in paths)
    assert ds.first().metadata.width == 512
    assert len(bev_render.pending(ds)[0]) == 5
    assert scene_adds.recover_interrupted_add(ds) is None  # placeholders are not orphans
    assert bev_render.render_pending(ds, chunk=2) == 5
    assert bev_render.pending(ds) == ([], [])
    assert all(os.stat(p).st_nlink == 1 for p in paths)  # real images replaced the links
    from PIL import Image

    assert Image.open(paths[0]).size == (512, 512)
    assert_consistent(ds)


def test_placeholder_links_move_to_a_new_file_at_the_link_cap(tmp_path):
    """ext4 allows 65,000 hard links per file: a deferred ingest of 1e5 scenes failed at ~65k.
    Each placeholder file takes at most ``max_links`` samples; all of them count as pending."""
    from fiftyone_plugin.engine import bev_render

    paths = [str(tmp_path / f"s{i}.png") for i in range(7)]
    bev_render.link_placeholders(tmp_path, paths, size=32, max_links=3)
    files = sorted(p.name for p in bev_render.placeholders(tmp_path))
    assert files == [".placeholder-bev", ".placeholder-bev-1", ".placeholder-bev-2"]
    links = sorted(p.stat().st_nlink - 1 for p in bev_render.placeholders(tmp_path))
    assert links == [1, 3, 3]  # 7 samples: 3 + 3 + 1
    inodes = {p.stat().st_ino for p in bev_render.placeholders(tmp_path)}
    assert all(os.stat(p).st_ino in inodes for p in paths)
    for p in paths:  # "rendered": every link replaced by a real file
        os.unlink(p)
    bev_render._remove_unused_placeholder(str(tmp_path))
    assert bev_render.placeholders(tmp_path) == []


def test_kill9_during_world_ingest_then_resume(fo, autoscale_home, dataset_name):
    from autoscale_core.world import generate_world
    from fiftyone_plugin.cli import main
    from fiftyone_plugin.engine import scenes

    name = dataset_name("wres")
    world = {"num_scenes": 30, "seed": 3, "cities": None}
    # A run that finished its first chunk (12 scenes) ...
    scenes.create_scene_dataset(name, generate_world(30, seed=3).subset(slice(0, 12)),
                                info={"autoscale_world": world, scenes.COMPACT_INFO_KEY: True})
    argv = ("world", "--scenes", "30", "--seed", "3", "--dataset", name, "--resume")
    env = cli_env(AUTOSCALE_TEST_PAUSE_IN_ADD="120", AUTOSCALE_HOME=str(autoscale_home))
    kill9(start_and_wait_for(_cli_code(*argv), ADD_MARKER, env))  # ... and a resume killed mid-add
    assert main(["world", "--scenes", "30", "--seed", "3", "--dataset", name]) != 0  # says --resume
    assert main(["world", "--scenes", "30", "--seed", "4", "--dataset", name, "--resume"]) != 0  # another world
    assert main(list(argv)) == 0
    dataset = fo.load_dataset(name)
    assert len(dataset) == 30 and len(set(dataset.values("scene_id"))) == 30
    assert_consistent(dataset)
    failed = _failed_adds(dataset)
    assert len(failed) == 1 and failed[0]["results"]["incomplete_samples_deleted"] == 18
    assert main(list(argv)) == 0 and len(scenes.get_store(dataset)) == 30  # idempotent
    assert all("lanes" in shard["encoding"] for shard in scenes.get_store(dataset).shards)  # compact store


def test_reserved_sample_id_ranges_hold_exactly_their_ids():
    from fiftyone_plugin.engine import scene_adds

    def inside(x, ranges):
        return any(ObjectId(lo) <= x <= ObjectId(hi) for lo, hi in ranges)

    # Moving bson's counter could repeat an id made in the same second: a fresh second before and after.
    time.sleep(1.1)
    for counter, n_ranges in ((1000, 1), (0xFFFFFF - 10, 2)):  # the second wraps the 3-byte counter
        with ObjectId._inc_lock:
            ObjectId._inc = counter
        before = ObjectId()
        ids, ranges = scene_adds.reserve_sample_ids(100)
        after = [ObjectId() for _ in range(3)]
        assert len(ids) == len(set(ids)) == 100 and len(ranges) == n_ranges
        assert all(inside(x, ranges) for x in ids)
        assert not any(inside(x, ranges) for x in [before, *after])
        if n_ranges == 1:
            assert ids == sorted(ids) and before < ids[0] and ids[-1] < after[0]  # like ObjectId()
    time.sleep(1.1)
    assert scene_adds.reserve_sample_ids(0) == ([], [])


def test_recovery_deletes_the_dead_adds_samples_and_legacy_incomplete_ones(fo, autoscale_home, dataset_name):
    from fiftyone_plugin.engine import scene_adds, scenes

    ds = scenes.create_scene_dataset(dataset_name("rec"), make_road_batch(6), render_images=False)
    ids = ds.values("id")
    # A dead add whose reserved range holds two complete samples; one legacy sample without route.
    ranges = [[ids[0], ids[1]]]
    ds._sample_collection.update_one({"_id": ObjectId(ids[5])}, {"$unset": {"route": ""}})
    ds.info[scene_adds.ADDING_INFO_KEY] = {"pid": 1, "host": "h", "count": 2, "started_at": "t", "id_ranges": ranges}
    ds.save()
    done = scene_adds.recover_interrupted_add(ds)
    assert done["incomplete_samples_deleted"] == 3
    assert sorted(ds.values("id")) == sorted(ids[2:5])
    assert scenes.add_scenes(ds, make_road_batch(6), render=False) and len(ds) == 6  # the rerun completes it
    assert None not in ds.values("route")


def test_chunked_ingest_with_prefetched_overlays_matches_each_scene(fo, autoscale_home, dataset_name):
    """Overlay documents built ahead (next chunk, background thread) land on their own scenes,
    also when a resume skips scenes already there."""
    import bson

    from autoscale_core import render as bev
    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import scene_docs, scenes

    batch = generate_world(11, seed=7)
    expected = scene_docs.overlay_docs(batch, bev.DEFAULT_EXTENT_M)
    by_scene = {str(s): i for i, s in enumerate(batch.meta["scene_id"])}

    def check(ds):
        assert len(ds) == len(batch) and None not in ds.values("route")
        for doc in ds._sample_collection.find({}):
            i = by_scene[doc["scene_id"]]
            for field in scenes.OVERLAY_FIELDS:
                want = bson.decode(expected[field][i].raw)["polylines"]
                got = doc[field]["polylines"]
                assert [{k: v for k, v in p.items() if k != "_id"} for p in got] == \
                       [{k: v for k, v in p.items() if k != "_id"} for p in want], (field, i)

    name = dataset_name("pre")
    check(scenes.create_scene_dataset(name, batch, render_images=False, chunk_size=3))
    name2 = dataset_name("pre-resume")
    scenes.create_scene_dataset(name2, batch.subset([0, 4, 5, 9]), render_images=False)
    check(scenes.create_scene_dataset(name2, batch, render_images=False, chunk_size=3, resume=True))


def test_on_demand_overlays_lean_ingest_then_drawn_for_a_view(fo, autoscale_home, dataset_name):
    """``overlays="on_demand"``: samples are ingested without overlay fields (a fraction of the
    BSON), later adds stay lean, and ``draw_scenes`` writes exactly the view's overlays (the same
    documents an inline ingest writes) and renders its placeholder images — once."""
    import bson

    from autoscale_core import render as bev
    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import bev_render, scene_docs, scenes

    batch = generate_world(12, seed=3)
    ds = scenes.create_scene_dataset(dataset_name("lean"), batch, render_images="deferred", chunk_size=5,
                                     info={scenes.OVERLAYS_INFO_KEY: "on_demand"})
    assert ds.count("ego_history") == 0 and ds.count("route") == 0
    stats = ds._sample_collection.database.command("collStats", ds._sample_collection_name)
    assert stats["avgObjSize"] < 1500  # vs ≈ 10 kB with inline overlays
    scenes.add_scenes(ds, generate_world(3, seed=4), render="deferred")
    assert len(ds) == 15 and ds.count("ego_history") == 0
    view = ds.match(fo.ViewField("scene_id").is_in([str(s) for s in batch.meta["scene_id"][:4]]))
    assert bev_render.draw_scenes(view) == {"overlays": 4, "images": 4}
    assert ds.count("ego_history") == 4 and len(bev_render.pending(ds)[0]) == 11
    expected = scene_docs.overlay_docs(batch.subset(slice(0, 4)), bev.DEFAULT_EXTENT_M)
    for doc in ds._sample_collection.find({"ego_history": {"$ne": None}}):
        i = [str(s) for s in batch.meta["scene_id"]].index(doc["scene_id"])
        for field in scenes.OVERLAY_FIELDS:
            want = bson.decode(expected[field][i].raw)["polylines"]
            assert [{k: v for k, v in p.items() if k != "_id"} for p in doc[field]["polylines"]] == \
                   [{k: v for k, v in p.items() if k != "_id"} for p in want], (field, i)
    assert bev_render.draw_scenes(view) == {"overlays": 0, "images": 0}
    assert view.first().agents is not None  # FiftyOne reads them back as Polylines
    assert_consistent(ds, rendered=False)  # 11 samples still show the placeholder


def test_unknown_overlay_mode_is_a_clear_error(fo, autoscale_home, dataset_name):
    import pytest

    from fiftyone_plugin.engine import scenes

    with pytest.raises(scenes.SceneDatasetError, match="on_demand"):
        scenes.create_scene_dataset(dataset_name("bad"), make_road_batch(2, prefix="bad"),
                                    info={scenes.OVERLAYS_INFO_KEY: "later"})
    assert not fo.dataset_exists(dataset_name("bad"))


def test_cli_world_on_demand_then_draw_a_saved_view(fo, autoscale_home, dataset_name, capsys):
    from fiftyone_plugin.cli import main

    name = dataset_name("cli-lean")
    assert main(["world", "--scenes", "8", "--dataset", name, "--overlays", "on-demand", "--defer-render"]) == 0
    ds = fo.load_dataset(name)
    assert ds.count("agents") == 0
    ds.save_view("first-three", ds.sort_by("scene_id").limit(3))
    assert main(["draw", "--dataset", name, "--view", "nope"]) != 0
    assert "no saved view 'nope'" in capsys.readouterr().err
    assert main(["draw", "--dataset", name, "--view", "first-three"]) == 0
    assert '"overlays": 3' in capsys.readouterr().out and ds.count("agents") == 3
    assert main(["draw", "--dataset", name, "--no-images"]) == 0
    assert ds.count("agents") == 8
