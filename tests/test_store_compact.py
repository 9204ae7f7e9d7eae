"""Compact scene store (format 2): error bound, old-format stores, EPDMS after a round trip."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoscale_core.store import FIXED_POINT_COLUMNS, SceneStore, SceneStoreError


@pytest.fixture(scope="module")
def world():
    from autoscale_core.world import generate_world

    return generate_world(200, seed=0)


def test_round_trip_within_half_a_step_and_exact_elsewhere(tmp_path, world):
    store = SceneStore(tmp_path / "s", compact=True)
    store.append(world)
    loaded = SceneStore(tmp_path / "s").load(list(world.meta["scene_id"]))
    encoding = store.shards[0]["encoding"]
    assert set(encoding) <= set(FIXED_POINT_COLUMNS) and "lanes" in encoding
    for name, original in world.arrays().items():
        got = getattr(loaded, name)
        assert got.dtype == original.dtype, name
        if name in encoding:
            bound = np.asarray(encoding[name]) / 2 + 1e-4 * np.abs(original).max()
            assert (np.abs(got - original) <= bound).all(), name
            assert max(encoding[name][:2]) <= 0.04  # positions: ≤ 2 cm error
        else:
            np.testing.assert_array_equal(got, original, err_msg=name)
    # The files shrink: lanes are int16 on disk and still memory-mapped.
    lanes = np.load(tmp_path / "s" / store.shards[0]["name"] / "lanes.npy", mmap_mode="r")
    assert lanes.dtype == np.int16 and isinstance(lanes, np.memmap)


def test_old_format_store_still_loads_and_mixes_with_new_shards(tmp_path, world):
    root = tmp_path / "old"
    old = SceneStore(root, compact=False)
    old.append(world.subset(slice(0, 5)))
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["format"] = 1  # exactly what the format-1 writer left
    (root / "manifest.json").write_text(json.dumps(manifest))
    SceneStore(root, compact=True).append(world.subset(slice(5, 10)))
    loaded = SceneStore(root).load(list(world.meta["scene_id"][:10]))
    np.testing.assert_array_equal(loaded.lanes[:5], world.lanes[:5, :, : loaded.lanes.shape[2]])
    assert np.abs(loaded.lanes[5:10] - world.lanes[5:10, :, : loaded.lanes.shape[2]]).max() <= 0.02
    assert json.loads((root / "manifest.json").read_text())["format"] == 2


def test_future_format_is_refused(tmp_path, world):
    store = SceneStore(tmp_path / "f", compact=True)
    store.append(world.subset(slice(0, 2)))
    manifest = json.loads((tmp_path / "f" / "manifest.json").read_text())
    manifest["format"] = 99
    (tmp_path / "f" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(SceneStoreError, match="format 99"):
        SceneStore(tmp_path / "f").load()


def test_out_of_range_or_nonfinite_arrays_stay_float32(tmp_path, world):
    batch = world.subset(slice(0, 3))
    batch.agents[0, 0, 0, 0] = 5000.0  # beyond ±1,310 m: no int16 step fits
    store = SceneStore(tmp_path / "r", compact=True)
    store.append(batch)
    assert "agents" not in store.shards[0]["encoding"]
    assert SceneStore(tmp_path / "r").load([batch.meta["scene_id"][0]]).agents[0, 0, 0, 0] == 5000.0


def test_rule_planner_epdms_unchanged_after_round_trip(tmp_path, world):
    """Tolerance: mean |ΔEPDMS| ≤ 0.1 points and ≤ 2 of 200 scenes change by more than 0.1 points."""
    from benchmarks.bench_store_compact import epdms_after_round_trip

    result = epdms_after_round_trip(world, str(tmp_path))
    assert result["mean_abs_diff_points"] <= 0.1, result
    assert result["scenes_changed_over_0.1_points"] <= 2, result
