"""ScenarioNet importer on the real shared nuScenes / Waymo scenes (../shared/data/scenarionet),
plus modified copies for bad input. Data: nuScenes (CC BY-NC-SA 4.0) and Waymo Open Dataset
(non-commercial licence) scenes as converted by metadriverse/scenarionet's test data."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np
import pytest

from autoscale_core.io.scenarionet import (
    ScenarioNetImportError,
    find_scenario_files,
    import_scenarionet,
    load_pickle,
)
from autoscale_core.scene import CYCLIST, PEDESTRIAN, STATIC, TL_GREEN, TL_RED, TL_UNKNOWN, VEHICLE

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scenarionet"
NUSCENES = sorted((SHARED / "nuscenes").glob("*.pkl"))
WAYMO = next((SHARED / "waymo").glob("*.pkl"))
SMALL = SHARED / "nuscenes" / "sd_nuscenes_v1.0-mini_scene-0757.pkl"  # the smallest file

pytestmark = pytest.mark.skipif(not SHARED.is_dir(), reason="../shared/data/scenarionet is absent")


@pytest.fixture(scope="module")
def imported():
    return import_scenarionet(SHARED)


def _write(folder: Path, scenario: dict, name: str = "scene.pkl") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with open(path, "wb") as handle:
        pickle.dump(scenario, handle, protocol=4)
    return path


# ---------------------------------------------------------------------------------- counts, metadata
def test_seven_files_give_at_least_150_scenes_and_20_s_logs_at_least_20(imported):
    batch, report = imported
    assert len(batch) >= 150 and report.scenes == len(batch)
    assert len(report.logs) == 7 and report.skipped == {}
    per_log = {log: int((batch.meta["log_id"] == log).sum()) for log in report.logs}
    assert min(per_log.values()) >= 20, per_log  # every shared log is ~20 s, stride 0.5 s
    assert set(batch.meta["source"]) == {"nuscenes", "waymo"}
    ids = list(batch.meta["scene_id"])
    assert len(set(ids)) == len(ids) and all(i.startswith(("nuscenes-scene-", "waymo-")) for i in ids)
    again, _ = import_scenarionet(SMALL)
    assert set(again.meta["scene_id"]) <= set(ids)  # deterministic ids


def test_timeline_and_frames_follow_the_scene_model(imported):
    batch, _ = imported
    H = batch.history_steps
    assert batch.dt == 0.5 and H == 4 and batch.num_steps == 13
    np.testing.assert_allclose(batch.ego[:, H, :3], 0.0, atol=1e-4)  # origin, heading +x at t0
    # Logged ego moves forward along +x (positive speed) and its speed matches the displacement.
    moving = batch.ego[:, H, 3] > 2.0
    assert (batch.ego[moving, -1, 0] > 0).all()
    step = np.linalg.norm(np.diff(batch.ego[moving, :, :2], axis=1), axis=-1) / batch.dt
    np.testing.assert_allclose(step.mean(1), batch.ego[moving, :, 3].mean(1), atol=0.6)
    length, width = batch.ego_size[:, 0], batch.ego_size[:, 1]
    assert (length > width).all()  # nuScenes' swapped 1.73 x 4.08 ego box is fixed
    np.testing.assert_allclose(batch.ego_size[batch.meta["source"] == "nuscenes"][0], [4.08, 1.73], atol=0.01)


def test_agent_types_map_and_nothing_sits_on_the_ego(imported):
    batch, _ = imported
    nus = batch.meta["source"] == "nuscenes"
    types = set(batch.agent_type[nus].ravel().tolist())
    assert {VEHICLE, PEDESTRIAN, CYCLIST, STATIC} <= types  # cones and barriers are static
    static = batch.agent_type == STATIC
    assert (batch.agents[..., 3][static & batch.agent_valid.any(-1)] == 0).all()
    H = batch.history_steps
    dist = np.linalg.norm(batch.agents[:, :, H, :2], axis=-1)
    assert not (batch.agent_valid[:, :, H] & (dist < 1.0)).any()


def test_waymo_traffic_lights_and_map_links(imported):
    batch, _ = imported
    waymo = batch.meta["source"] == "waymo"
    codes = set(np.unique(batch.lane_tl[waymo][batch.lane_valid[waymo]]).tolist())
    assert {TL_GREEN, TL_RED} <= codes  # LANE_STATE_GO / STOP / ARROW_STOP in the file
    nus = batch.meta["source"] == "nuscenes"
    assert (batch.lane_tl[nus][batch.lane_valid[nus]] == TL_UNKNOWN).all()  # TLC not applicable
    assert (batch.lane_successors[batch.lane_valid] >= 0).any(-1).mean() > 0.5
    assert (batch.lane_neighbors[waymo] >= 0).any()
    assert batch.crosswalk_valid[waymo].any()
    assert (batch.drivable_vertex_valid[nus].sum(-1) >= 3).any(-1).all()  # lane polygons
    for source in (nus, waymo):  # crossing centre lines mark intersection lanes (none in the format for nuScenes)
        share = batch.lane_is_intersection[source][batch.lane_valid[source]].mean()
        assert 0.05 < share < 0.6, share
    assert {"intersection", "urban_street"} <= set(batch.meta["topology"])


def test_logged_ego_passes_nc_dac_ddc(imported):
    """The human drove there: scored without the human filter it must be collision-free, on the
    drivable area and in the lane direction (else the map or frames are wrong)."""
    from autoscale_core.sim.scoring import ScorerConfig, score_trajectories

    batch, _ = imported
    result = score_trajectories(batch, batch.expert_trajectory()[:, None], human_filter=False,
                                config=ScorerConfig(progress_reference="candidates"))
    for name in ("nc", "dac", "ddc"):
        ok = getattr(result, name)[:, 0] == 1.0
        assert ok.mean() >= 0.95, (name, list(batch.meta["scene_id"][~ok]))


def test_stride_is_configurable_and_resampling_keeps_the_path(tmp_path):
    fine, _ = import_scenarionet(SMALL, stride_s=0.2)
    coarse, report = import_scenarionet(SMALL, stride_s=1.0)
    assert len(fine) > 2 * len(coarse) and np.allclose(np.diff(coarse.meta["t0"].astype(float)), 1.0)
    # The same log at 5 Hz (every other sample): resampled to 10 Hz, the scenes barely move.
    scenario = load_pickle(SMALL)
    for track in scenario["tracks"].values():
        track["state"] = {k: np.asarray(v)[::2] for k, v in track["state"].items()}
    scenario["metadata"]["ts"] = np.asarray(scenario["metadata"]["ts"])[::2]
    scenario["length"] = len(scenario["metadata"]["ts"])
    slow, _ = import_scenarionet(_write(tmp_path, scenario), stride_s=1.0)
    common = np.intersect1d(slow.meta["scene_id"], coarse.meta["scene_id"])
    assert len(common) >= len(coarse) - 1
    a = coarse.subset(np.flatnonzero(np.isin(coarse.meta["scene_id"], common)))
    b = slow.subset(np.flatnonzero(np.isin(slow.meta["scene_id"], common)))
    np.testing.assert_allclose(a.ego[..., :2], b.ego[..., :2], atol=0.3)


def test_database_folder_with_summary_and_mapping(tmp_path):
    root = tmp_path / "db"
    files = {}
    for path in NUSCENES[:2]:
        scenario = load_pickle(path)
        _write(root / "part", scenario, path.name)
        files[path.name] = scenario["metadata"]
    _write(root, files, "dataset_summary.pkl")
    _write(root, {name: "part" for name in files}, "dataset_mapping.pkl")
    assert [p.name for p in find_scenario_files(root)] == list(files)
    batch, report = import_scenarionet(root)
    assert len(report.logs) == 2 and len(batch) >= 40


# ---------------------------------------------------------------------------------- unsafe and bad input
class _RunsCommand:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))


def test_a_pickle_naming_a_forbidden_global_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "ran"
    scenario = load_pickle(SMALL)
    scenario["metadata"]["payload"] = _RunsCommand(marker)
    path = _write(tmp_path, scenario)
    with pytest.raises(ScenarioNetImportError, match=r"refused to unpickle global (posix|os)\.system"):
        import_scenarionet(path)
    assert not marker.exists()
    # A global from a module nobody imported is refused without importing it.
    forged = pickle.dumps(0).replace(b"K\x00", b"c" + b"autoscale_never_imported\nrun\n)R")
    (tmp_path / "forged.pkl").write_bytes(forged)
    with pytest.raises(ScenarioNetImportError, match="autoscale_never_imported.run"):
        load_pickle(tmp_path / "forged.pkl")
    assert "autoscale_never_imported" not in sys.modules


def test_truncated_pickle_is_rejected(tmp_path):
    path = tmp_path / "cut.pkl"
    path.write_bytes(SMALL.read_bytes()[:50_000])
    with pytest.raises(ScenarioNetImportError, match="cut.pkl: unreadable or truncated"):
        import_scenarionet(path)


def test_missing_sdc_track_and_all_invalid_ego_are_rejected(tmp_path):
    scenario = load_pickle(SMALL)
    scenario["metadata"]["sdc_id"] = "nobody"
    with pytest.raises(ScenarioNetImportError, match="sdc_id='nobody' names no track"):
        import_scenarionet(_write(tmp_path / "a", scenario))
    scenario = load_pickle(SMALL)
    scenario["tracks"]["ego"]["state"]["valid"][:] = 0
    with pytest.raises(ScenarioNetImportError, match="ego track 'ego' has no valid finite step"):
        import_scenarionet(_write(tmp_path / "b", scenario))
    scenario = load_pickle(SMALL)
    scenario["tracks"]["ego"]["state"]["position"][:] = np.nan
    with pytest.raises(ScenarioNetImportError, match="no valid finite step"):
        import_scenarionet(_write(tmp_path / "c", scenario))


def test_nan_agent_positions_and_one_point_polylines_warn_and_are_dropped(tmp_path):
    scenario = load_pickle(SMALL)
    agent = next(k for k, t in scenario["tracks"].items() if k != "ego" and t["type"] == "VEHICLE")
    scenario["tracks"][agent]["state"]["position"][:] = np.nan
    lane = next(k for k, f in scenario["map_features"].items() if f["type"].startswith("LANE"))
    scenario["map_features"][lane]["polyline"] = scenario["map_features"][lane]["polyline"][:1]
    with pytest.warns(UserWarning):
        batch, report = import_scenarionet(_write(tmp_path, scenario))
    assert any("NaN/inf positions dropped" in w and agent in w for w in report.warnings)
    assert any("fewer than 2 points" in w and lane in w for w in report.warnings)
    assert np.isfinite(batch.agents[batch.agent_valid]).all()


def test_wrong_shapes_name_the_track_and_field(tmp_path):
    scenario = load_pickle(SMALL)
    scenario["tracks"]["ego"]["state"]["heading"] = scenario["tracks"]["ego"]["state"]["heading"][:5]
    with pytest.raises(ScenarioNetImportError, match=r"track 'ego': state\['heading'\] has shape \(5,\)"):
        import_scenarionet(_write(tmp_path, scenario))


def test_timestamps_must_increase(tmp_path):
    scenario = load_pickle(SMALL)
    scenario["metadata"]["ts"] = np.asarray(scenario["metadata"]["ts"])[::-1].copy()
    with pytest.raises(ScenarioNetImportError, match="metadata.ts must be finite and strictly increasing"):
        import_scenarionet(_write(tmp_path, scenario))


def test_empty_folder_and_summary_naming_a_missing_file(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ScenarioNetImportError, match="no ScenarioNet scene files"):
        import_scenarionet(tmp_path / "empty")
    root = tmp_path / "db"
    scenario = load_pickle(SMALL)
    _write(root, scenario, SMALL.name)
    _write(root, {SMALL.name: scenario["metadata"], "gone.pkl": {}}, "dataset_summary.pkl")
    with pytest.raises(ScenarioNetImportError, match="names 'gone.pkl'"):
        import_scenarionet(root)
    with pytest.warns(UserWarning, match="gone.pkl"):
        batch, report = import_scenarionet(root, strict=False)
    assert report.skipped == {"missing file": 1} and len(batch) > 0


def test_lenient_mode_skips_a_bad_file_and_keeps_the_good_ones(tmp_path):
    folder = tmp_path / "mixed"
    _write(folder, load_pickle(SMALL), SMALL.name)
    (folder / "bad.pkl").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(ScenarioNetImportError, match="bad.pkl"):
        import_scenarionet(folder)
    with pytest.warns(UserWarning, match="bad.pkl"):
        batch, report = import_scenarionet(folder, strict=False)
    assert report.skipped == {"bad file": 1} and set(batch.meta["log_id"]) == {"scene-0757"}


# ---------------------------------------------------------------------------------- export
def test_import_export_import_gives_identical_arrays(tmp_path):
    from autoscale_core.io.scenarionet_export import export_scenarionet

    first, _ = import_scenarionet(SHARED, stride_s=2.0)
    paths = export_scenarionet(first, tmp_path / "out")
    assert len(paths) == len(first) and (tmp_path / "out" / "dataset_summary.pkl").is_file()
    again, report = import_scenarionet(tmp_path / "out")  # through the summary and mapping
    assert list(again.meta["scene_id"]) == list(first.meta["scene_id"]) and report.skipped == {}
    for name, array in first.arrays().items():
        np.testing.assert_array_equal(getattr(again, name), array, err_msg=name)
        assert getattr(again, name).dtype == array.dtype
    for key in ("source", "city", "log_id", "maneuver", "t0"):
        assert list(again.meta[key]) == list(first.meta[key])


def test_exported_files_are_plain_scenarionet_too(tmp_path):
    """Without the embedded arrays (what other ScenarioNet tools read), the files still give the
    same ego path, ego box, agents' types and traffic lights."""
    from autoscale_core.io.scenarionet_export import export_scenarionet

    first, _ = import_scenarionet(WAYMO, stride_s=4.0)
    paths = export_scenarionet(first, tmp_path / "out")
    for path in paths:
        scenario = load_pickle(path)
        assert {"id", "version", "length", "tracks", "map_features", "dynamic_map_states", "metadata"} <= set(scenario)
        assert scenario["metadata"]["sdc_id"] == "ego" and scenario["metadata"]["sample_rate"] == 0.1
        del scenario["metadata"]["autoscale"]
        path.write_bytes(pickle.dumps(scenario, protocol=4))
    plain, _ = import_scenarionet(tmp_path / "out")
    assert len(plain) == len(first)
    np.testing.assert_allclose(plain.ego[..., :3], first.ego[..., :3], atol=1e-3)
    np.testing.assert_allclose(plain.ego_size, first.ego_size, atol=1e-5)
    assert set(plain.meta["source"]) == {"waymo"}
    assert {TL_GREEN, TL_RED} <= set(np.unique(plain.lane_tl).tolist())
    assert sorted(plain.agent_type[plain.agent_type >= 0].tolist()) == sorted(first.agent_type[first.agent_type >= 0].tolist())


def test_export_refuses_a_non_empty_folder_and_overwrite_touches_only_its_files(tmp_path):
    from autoscale_core.io.scenarionet_export import ScenarioNetExportError, export_scenarionet

    batch, _ = import_scenarionet(SMALL, stride_s=4.0)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ScenarioNetExportError, match="not empty"):
        export_scenarionet(batch, out)
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]
    paths = export_scenarionet(batch, out, overwrite=True)
    export_scenarionet(batch.subset([0]), out, overwrite=True)  # fewer scenes: older files stay
    assert (out / "notes.txt").read_text() == "mine" and all(p.exists() for p in paths)
    assert not list(out.glob(".*.tmp"))
