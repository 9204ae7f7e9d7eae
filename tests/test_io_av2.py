"""AV2 importer on the real shared Argoverse 2 logs (../shared/data/av2), plus corrupt copies."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pytest

from autoscale_core.io.av2 import AV2ImportError, import_av2
from autoscale_core.scene import (
    CYCLIST,
    OTHER,
    PEDESTRIAN,
    STATIC,
    TL_UNKNOWN,
    VEHICLE,
    points_on_drivable,
    to_world_frame,
)

AV2 = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "av2"
SENSOR_LOGS = sorted((AV2 / "sensor_logs").iterdir())
SCENARIO = next((AV2 / "forecasting").iterdir())


@pytest.fixture(scope="module")
def imported():
    return import_av2(AV2)


def _copy_log(tmp_path: Path, log: Path = SENSOR_LOGS[0]) -> Path:
    target = tmp_path / "logs" / log.name
    shutil.copytree(log, target)
    return target


# ---------------------------------------------------------------------------------- counts, metadata
def test_every_sensor_log_yields_at_least_40_valid_scenes(imported):
    batch, report = imported
    batch.validate()
    for log in SENSOR_LOGS:
        assert (batch.meta["log_id"] == log.name).sum() >= 40, log.name
    assert (batch.meta["log_id"] == SCENARIO.name).sum() >= 20
    assert report.scenes == len(batch) and sum(report.skipped.values()) == report.windows - len(batch)
    assert set(batch.meta["source"]) == {"av2"}
    assert set(batch.meta["city"][np.isin(batch.meta["log_id"], [p.name for p in SENSOR_LOGS])]) == {"PIT"}


def test_scene_ids_are_deterministic_and_unique(imported):
    batch, _ = imported
    again, _ = import_av2(SENSOR_LOGS[0])
    ids = list(batch.meta["scene_id"])
    assert len(set(ids)) == len(ids)
    assert set(again.meta["scene_id"]) <= set(ids)
    assert all(s.startswith("av2-") for s in ids)
    first = again.meta["scene_id"][0]
    np.testing.assert_array_equal(again[0].ego, batch[ids.index(first)].ego)


def test_maneuvers_use_the_world_vocabulary(imported):
    batch, _ = imported
    labels = dict(zip(batch.meta["scene_id"], batch.meta["maneuver"]))
    assert set(labels.values()) <= {"lane_change", "left_turn", "right_turn", "merge", "stop", "follow", "straight"}
    assert labels["av2-7fab2350-0090"] == "left_turn"  # slowing before the left turn (docs/images)
    stops = batch.meta["maneuver"] == "stop"
    assert stops.any() and (batch.ego[stops, batch.history_steps + 1 :, 3].min(1) < 0.3).all()


def test_timeline_matches_the_scene_model_and_t0_is_the_origin(imported):
    batch, _ = imported
    assert batch.dt == 0.5 and batch.history_steps == 4 and batch.num_steps == 13
    np.testing.assert_allclose(batch.ego[:, 4, :3], 0.0, atol=1e-5)
    np.testing.assert_allclose(batch.ego_size[0], (4.9, 2.0))


# ---------------------------------------------------------------------------------- ego and frames
def test_logged_ego_stays_on_the_drivable_area(imported):
    batch, report = imported
    future = batch.ego[:, batch.history_steps + 1 :, :2]
    on_map = points_on_drivable(batch, future, margin=0.5).all(-1)
    assert on_map.mean() >= 0.95, report.ego_off_drivable
    assert set(report.ego_off_drivable) == set(batch.meta["scene_id"][~on_map])


def test_ego_speed_is_smooth_and_matches_the_displacement(imported):
    batch, _ = imported
    sensor = np.isin(batch.meta["log_id"], [p.name for p in SENSOR_LOGS])
    ego = batch.ego[sensor]
    assert np.abs(ego[..., 4]).max() < 4.0  # no finite-difference spikes from 170 Hz poses
    displacement = np.linalg.norm(np.diff(ego[..., :2], axis=1), axis=-1) / batch.dt
    mean_speed = 0.5 * (ego[:, 1:, 3] + ego[:, :-1, 3])
    assert np.abs(displacement - mean_speed).max() < 0.5


def test_parked_vehicles_stay_put_in_the_city_frame(imported):
    """A frame bug (wrong pose time, yaw sign, axle offset) smears parked cars as the ego moves."""
    batch, _ = imported
    # Sensor logs only: forecasting tracks are given in the city frame (and some jitter by metres).
    sensor = np.isin(batch.meta["log_id"], [p.name for p in SENSOR_LOGS])
    moving_ego = sensor & (np.abs(batch.ego[:, :, 3]).max(1) > 3.0)
    checked = 0
    for s in np.flatnonzero(moving_ego):
        world = to_world_frame(batch.agents[s, :, :, :2], batch.global_pose[s])  # (N, T, 2)
        valid = batch.agent_valid[s]
        for n in np.flatnonzero((batch.agent_type[s] == VEHICLE) & valid.all(-1)):
            if batch.agents[s, n, :, 3].max() < 0.3:
                assert np.ptp(world[n], axis=0).max() < 0.6
                checked += 1
    assert checked >= 20


def test_moving_vehicles_head_where_they_go(imported):
    """Cuboid yaw composed with the ego yaw must match the direction of travel."""
    from autoscale_core.scene import wrap_angle

    batch, _ = imported
    a, v = batch.agents, batch.agent_valid
    moving = v[:, :, 1:] & v[:, :, :-1] & (batch.agent_type == VEHICLE)[:, :, None] & (a[:, :, 1:, 3] > 3) & (a[:, :, :-1, 3] > 3)
    step = a[:, :, 1:, :2] - a[:, :, :-1, :2]
    error = np.abs(wrap_angle(np.arctan2(step[..., 1], step[..., 0]) - a[:, :, :-1, 2]))[moving]
    assert moving.sum() > 1000
    assert np.median(error) < 0.05 and np.percentile(error, 99) < 0.5


def test_vehicles_are_on_the_road_and_categories_map(imported):
    batch, report = imported
    t0 = batch.history_steps
    types = set(batch.agent_type[batch.agent_type >= 0].tolist())
    assert {VEHICLE, PEDESTRIAN, CYCLIST, STATIC} <= types and OTHER not in types
    assert not report.warnings
    vehicles = (batch.agent_type == VEHICLE) & batch.agent_valid[:, :, t0]
    on_road = points_on_drivable(batch, batch.agents[:, :, t0, :2], margin=1.0)
    assert on_road[vehicles].mean() > 0.85
    assert batch.agents.shape[1] <= 32


def test_tracks_that_start_or_end_inside_the_window_are_masked(imported):
    batch, _ = imported
    valid = batch.agent_valid[batch.agent_type >= 0]
    partial = ~valid.all(-1) & valid.any(-1)
    assert partial.sum() > 10
    assert np.all(batch.agents[~batch.agent_valid] == 0.0)


# ---------------------------------------------------------------------------------- map and route
def test_map_elements_and_no_traffic_light_states(imported):
    batch, _ = imported
    assert batch.lane_valid.sum(1).min() >= 10
    assert (batch.crosswalk_valid.sum(1) > 0).mean() > 0.5
    assert (batch.drivable_vertex_valid.sum(-1) >= 3).any(1).all()
    assert (batch.lane_tl[batch.lane_valid] == TL_UNKNOWN).all()
    widths = batch.lane_width[batch.lane_valid]
    assert 2.0 < np.median(widths) < 5.0
    succ = batch.lane_successors
    assert (succ < batch.lane_valid.shape[1]).all() and (succ >= 0).any()
    assert batch.lane_is_intersection.any() and set(batch.meta["topology"]) == {"intersection", "urban_street"}


def test_route_follows_the_logged_ego(imported):
    batch, _ = imported
    spacing = np.linalg.norm(np.diff(batch.route_polyline, axis=1), axis=-1)
    both = batch.route_valid[:, 1:] & batch.route_valid[:, :-1]
    assert spacing[both].max() <= 2.0 + 1e-4
    first = batch.route_polyline[:, 0]
    assert (first[:, 0] < -5.0).mean() > 0.9  # starts behind the ego
    # The logged future stays close to the route centreline.
    route = batch.route_polyline
    future = batch.ego[:, batch.history_steps + 1 :, :2]
    d = np.linalg.norm(future[:, :, None] - route[:, None], axis=-1)
    d = np.where(batch.route_valid[:, None], d, np.inf).min(-1)
    assert np.median(d) < 1.0 and (d.max(1) < 4.0).mean() > 0.9
    rl = batch.route_lanes
    assert (rl[:, 0] >= 0).all()
    assert batch.lane_valid[np.repeat(np.arange(len(batch)), rl.shape[1])[rl.ravel() >= 0], rl[rl >= 0]].all()


# ---------------------------------------------------------------------------------- errors
def test_missing_map_is_rejected(tmp_path):
    log = _copy_log(tmp_path)
    shutil.rmtree(log / "map")
    with pytest.raises(AV2ImportError, match="missing map") as err:
        import_av2(tmp_path / "logs")
    assert log.name in str(err.value)


def test_unreadable_map_is_rejected(tmp_path):
    log = _copy_log(tmp_path)
    path = next((log / "map").glob("log_map_archive_*.json"))
    path.write_text(path.read_text()[:5000])
    with pytest.raises(AV2ImportError, match="log_map_archive_.*not a readable AV2 vector map"):
        import_av2(log)


def test_truncated_feather_is_rejected(tmp_path):
    log = _copy_log(tmp_path)
    path = log / "annotations.feather"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(AV2ImportError, match="annotations.feather.*truncated"):
        import_av2(tmp_path / "logs")


def test_truncated_scenario_parquet_is_rejected(tmp_path):
    target = tmp_path / "fc" / SCENARIO.name
    shutil.copytree(SCENARIO, target)
    path = next(target.glob("scenario_*.parquet"))
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(AV2ImportError, match="scenario_.*parquet.*truncated"):
        import_av2(tmp_path / "fc")


def test_annotations_without_ego_poses_are_rejected(tmp_path):
    log = _copy_log(tmp_path)
    (log / "city_SE3_egovehicle.feather").unlink()
    with pytest.raises(AV2ImportError, match="annotations without ego poses"):
        import_av2(log)


def test_log_shorter_than_one_scene_is_rejected(tmp_path):
    log = _copy_log(tmp_path)
    table = feather.read_table(log / "annotations.feather")
    start = pc.min(table["timestamp_ns"]).as_py()
    feather.write_feather(table.filter(pc.less(table["timestamp_ns"], start + 3_000_000_000)), log / "annotations.feather")
    with pytest.raises(AV2ImportError, match="shorter than one scene"):
        import_av2(log)


def test_directory_without_logs_is_rejected(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(AV2ImportError, match="no AV2 logs found"):
        import_av2(tmp_path / "empty")


def test_unknown_categories_warn_and_map_to_other(tmp_path):
    log = _copy_log(tmp_path)
    table = feather.read_table(log / "annotations.feather")
    renamed = pc.if_else(pc.equal(table["category"], "BOLLARD"), "HOVERCRAFT", table["category"])
    table = table.set_column(table.schema.get_field_index("category"), "category", renamed.cast(pa.string()))
    feather.write_feather(table, log / "annotations.feather")
    with pytest.warns(UserWarning, match="HOVERCRAFT"):
        batch, report = import_av2(log)
    assert (batch.agent_type == OTHER).any()
    assert any("HOVERCRAFT" in w for w in report.warnings)


def test_non_strict_mode_skips_a_bad_log_and_reports_it(tmp_path):
    good = _copy_log(tmp_path, SENSOR_LOGS[1])
    bad = _copy_log(tmp_path, SENSOR_LOGS[0])
    shutil.rmtree(bad / "map")
    with pytest.warns(UserWarning, match="missing map"):
        batch, report = import_av2(tmp_path / "logs", strict=False)
    assert set(batch.meta["log_id"]) == {good.name}
    assert report.skipped == {"bad log": 1}


def test_stride_and_timeline_are_configurable():
    batch, report = import_av2(SENSOR_LOGS[0], stride_s=0.5, history_s=1.0, future_s=3.0)
    assert batch.num_steps == 2 + 1 + 6 and batch.history_steps == 2
    assert len(batch) == report.windows - sum(report.skipped.values())
    assert np.allclose(np.diff(np.sort(batch.meta["t0"].astype(float))), 0.5)
    with pytest.raises(AV2ImportError, match="multiple"):
        import_av2(SENSOR_LOGS[0], stride_s=0.25)


# ---------------------------------------------------------------------------------- scorer
def test_logged_ego_scores_dac_and_nc_of_one(imported):
    """The human drove there: DAC/NC failures would point to a map or frame bug."""
    from autoscale_core.sim.scoring import ScorerConfig, score_trajectories

    batch, _ = imported
    result = score_trajectories(
        batch, batch.expert_trajectory()[:, None], human_filter=False,
        config=ScorerConfig(progress_reference="candidates"),
    )
    ok = (result.nc[:, 0] == 1.0) & (result.dac[:, 0] == 1.0)
    assert ok.mean() >= 0.95, list(batch.meta["scene_id"][~ok])
    assert (result.tlc == 1.0).all()  # no light states: TLC not applicable, never failed


def test_windows_off_the_map_are_skipped_and_counted(imported, tmp_path):
    """Cut the map around the end of the drive: those windows fail validation and are counted."""
    import json

    batch, _ = imported
    log = _copy_log(tmp_path, SENSOR_LOGS[0])
    mine = np.flatnonzero(batch.meta["log_id"] == log.name)
    end = batch.global_pose[mine[-1], :2]
    map_path = next((log / "map").glob("log_map_archive_*.json"))
    data = json.loads(map_path.read_text())

    def near(points) -> bool:
        xy = np.array([[p["x"], p["y"]] for p in points])
        return bool((np.linalg.norm(xy - end, axis=-1) < 10.0).any())

    data["lane_segments"] = {k: v for k, v in data["lane_segments"].items()
                             if not near(v["left_lane_boundary"] + v["right_lane_boundary"])}
    data["drivable_areas"] = {}
    map_path.write_text(json.dumps(data))
    cut, report = import_av2(log)
    assert report.skipped.get("ego off map at t0", 0) > 0
    assert len(cut) + sum(report.skipped.values()) == report.windows == len(mine)
    cut.validate()


def test_the_egos_own_track_never_becomes_an_agent(tmp_path):
    """Some av2 tooling writes the ego's cuboid (category EGO_VEHICLE, at the ego-frame origin
    shifted to the box centre) into annotations.feather: it must not become an agent on the ego."""
    log = _copy_log(tmp_path)
    table = feather.read_table(log / "annotations.feather")
    sweeps = pc.unique(table["timestamp_ns"])
    n = len(sweeps)
    ego_rows = pa.table({
        "timestamp_ns": sweeps, "track_uuid": pa.array(["ego-own-track"] * n),
        "category": pa.array(["EGO_VEHICLE"] * n),
        "length_m": pa.array([4.9] * n), "width_m": pa.array([2.0] * n), "height_m": pa.array([1.6] * n),
        "qw": pa.array([1.0] * n), "qx": pa.array([0.0] * n), "qy": pa.array([0.0] * n), "qz": pa.array([0.0] * n),
        "tx_m": pa.array([1.4] * n), "ty_m": pa.array([0.0] * n), "tz_m": pa.array([0.0] * n),
        "num_interior_pts": pa.array([1000] * n),
    })
    ego_rows = ego_rows.select(table.column_names).cast(table.schema)
    feather.write_feather(pa.concat_tables([table, ego_rows]), log / "annotations.feather")
    with_ego, report = import_av2(log)
    plain, _ = import_av2(SENSOR_LOGS[0])
    assert with_ego.agents.shape == plain.agents.shape
    np.testing.assert_array_equal(with_ego.agent_type, plain.agent_type)
    # Nothing sits on the ego at t0 (an agent there would be its own cuboid).
    H = with_ego.history_steps
    at_t0 = with_ego.agent_valid[:, :, H]
    dist = np.linalg.norm(with_ego.agents[:, :, H, :2], axis=-1)
    assert not (at_t0 & (dist < 1.0)).any()
    assert not any("EGO_VEHICLE" in w for w in report.warnings)  # dropped, not mapped to 'other'
