"""Parquet interchange format: exact round trips, a hand-written converter's tables, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from autoscale_core.io.av2 import import_av2
from autoscale_core.io.interchange import InterchangeError, export_scenes, import_scenes
from autoscale_core.scene import TL_UNKNOWN, SceneBatch

AV2_LOG = sorted((Path(__file__).resolve().parents[1].parent / "shared" / "data" / "av2" / "sensor_logs").iterdir())[0]


@pytest.fixture(scope="module")
def av2_batch():
    batch, _ = import_av2(AV2_LOG, stride_s=1.0)
    return batch


def assert_identical(a: SceneBatch, b: SceneBatch) -> None:
    assert (a.dt, a.history_steps) == (b.dt, b.history_steps)
    for name, array in a.arrays().items():
        other = getattr(b, name)
        assert other.dtype == array.dtype and other.shape == array.shape, name
        np.testing.assert_array_equal(other, array, err_msg=name)
    assert sorted(a.meta) == sorted(b.meta)
    for key in a.meta:
        assert [str(x) for x in a.meta[key]] == [str(x) for x in b.meta[key]], key


def test_world_round_trip_is_exact(small_world_batch, tmp_path):
    export_scenes(small_world_batch, tmp_path / "world")
    assert_identical(small_world_batch, import_scenes(tmp_path / "world"))


def test_real_and_mixed_round_trips_are_exact(small_world_batch, av2_batch, tmp_path):
    assert_identical(av2_batch, import_scenes(export_scenes(av2_batch, tmp_path / "av2")))
    mixed = SceneBatch.concatenate([small_world_batch, av2_batch])
    back = import_scenes(export_scenes(mixed, tmp_path / "mixed"))
    assert_identical(mixed, back)
    assert set(back.meta["source"]) >= {"av2"}


def test_files_are_plain_documented_tables(av2_batch, tmp_path):
    folder = export_scenes(av2_batch, tmp_path / "x")
    names = sorted(p.name for p in folder.iterdir() if p.name != ".autoscale-export.json")
    assert names == sorted(f"{t}.parquet" for t in (
        "scenes", "ego_states", "agents", "agent_states", "lanes", "drivable_polygons", "crosswalks", "routes"))
    header = json.loads(pq.read_schema(folder / "scenes.parquet").metadata[b"autoscale"])
    assert header["format"] == "autoscale-scenes" and header["num_steps"] == 13
    agents = pq.read_table(folder / "agents.parquet").to_pydict()
    assert set(agents["type"]) <= {"vehicle", "pedestrian", "cyclist", "static", "other"}
    assert pq.read_table(folder / "ego_states.parquet").num_rows == len(av2_batch) * 13


def _hand_written(folder: Path, lane_points=(5, 30)) -> None:
    """What a team's converter writes: minimal columns, lanes of any length, no padding sizes."""
    folder.mkdir()
    header = {"format": "autoscale-scenes", "version": 1, "dt": 0.5, "history_steps": 4, "num_steps": 13}
    scenes = pa.table({
        "scene_id": ["fleet-1"], "source": ["fleet"], "city": ["SF"],
        "ego_length": [4.8], "ego_width": [1.9], "origin_x": [100.0], "origin_y": [50.0], "origin_yaw": [0.3],
    }).replace_schema_metadata({"autoscale": json.dumps(header)})
    t = (np.arange(13) - 4) * 0.5
    tables = {
        "scenes": scenes,
        "ego_states": pa.table({"scene_id": ["fleet-1"] * 13, "step": np.arange(13), "x": 10 * t, "y": 0 * t,
                                "heading": 0 * t, "speed": 10 + 0 * t, "accel": 0 * t}),
        "agents": pa.table({"scene_id": ["fleet-1"], "agent_index": [0], "type": ["vehicle"], "length": [4.5], "width": [1.8]}),
        "agent_states": pa.table({"scene_id": ["fleet-1"] * 3, "agent_index": [0] * 3, "step": [4, 5, 6],
                                  "x": [20.0, 25.0, 30.0], "y": [0.0] * 3, "heading": [0.0] * 3, "speed": [10.0] * 3}),
        "lanes": pa.table({"scene_id": ["fleet-1"] * 2, "lane_index": [0, 1],
                           "xs": [list(np.linspace(-50, 0, lane_points[0])), list(np.linspace(0, 100, lane_points[1]))],
                           "ys": [[0.0] * lane_points[0], [0.0] * lane_points[1]], "width": [3.6, 3.6],
                           "successors": [[1], []]}),
        "drivable_polygons": pa.table({"scene_id": pa.array([], pa.string()), "polygon_index": pa.array([], pa.int16()),
                                       "xs": pa.array([], pa.list_(pa.float32())), "ys": pa.array([], pa.list_(pa.float32()))}),
        "crosswalks": pa.table({"scene_id": ["fleet-1"], "crosswalk_index": [0], "xs": [[30.0, 34.0, 34.0, 30.0]], "ys": [[-4.0, -4.0, 4.0, 4.0]]}),
        "routes": pa.table({"scene_id": ["fleet-1"], "lane_indices": [[0, 1]], "xs": [list(np.arange(-10.0, 100.0, 2.0))], "ys": [[0.0] * 55]}),
    }
    for name, table in tables.items():
        pq.write_table(table, folder / f"{name}.parquet")


def test_a_hand_written_converter_output_imports(tmp_path):
    _hand_written(tmp_path / "fleet")
    batch = import_scenes(tmp_path / "fleet")
    assert len(batch) == 1 and batch.lanes.shape[2] == 30
    np.testing.assert_allclose(batch.lanes[0, 0, [0, -1], 0], [-50.0, 0.0])  # 5 points resampled to 30
    assert (batch.lane_tl[batch.lane_valid] == TL_UNKNOWN).all()
    assert batch.agent_valid[0, 0].tolist() == [False] * 4 + [True] * 3 + [False] * 6
    assert batch.lane_successors[0, 0, 0] == 1 and batch.route_lanes[0].tolist() == [0, 1]
    assert batch.meta["source"][0] == "fleet"


@pytest.mark.parametrize(
    "break_it, message",
    [
        (lambda f: (f / "lanes.parquet").unlink(), "lanes.parquet: missing table"),
        (lambda f: pq.write_table(pq.read_table(f / "agents.parquet").drop(["width"]), f / "agents.parquet"), "missing columns \\['width'\\]"),
        (lambda f: (f / "routes.parquet").write_bytes((f / "routes.parquet").read_bytes()[:200]), "routes.parquet: unreadable or truncated"),
        (lambda f: pq.write_table(pq.read_table(f / "scenes.parquet").replace_schema_metadata({}), f / "scenes.parquet"), "schema metadata"),
        (lambda f: pq.write_table(pa.table({"scene_id": ["nope"], "agent_index": [0], "type": ["vehicle"], "length": [1.0], "width": [1.0]}),
                                  f / "agents.parquet"), "'nope' is not in scenes.parquet"),
        (lambda f: pq.write_table(pq.read_table(f / "ego_states.parquet").slice(0, 5), f / "ego_states.parquet"), "lacks ego states"),
    ],
)
def test_bad_tables_are_rejected_with_the_file_named(tmp_path, break_it, message):
    _hand_written(tmp_path / "fleet")
    break_it(tmp_path / "fleet")
    with pytest.raises(InterchangeError, match=message):
        import_scenes(tmp_path / "fleet")


def test_export_never_overwrites_silently(av2_batch, tmp_path):
    folder = export_scenes(av2_batch[:2], tmp_path / "x")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    with pytest.raises(InterchangeError, match="exists and is not empty"):
        export_scenes(av2_batch, folder)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before
    export_scenes(av2_batch, folder, overwrite=True)
    assert len(import_scenes(folder)) == len(av2_batch)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
