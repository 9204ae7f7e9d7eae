"""Scene model validation and the sharded scene store (core, no FiftyOne)."""

import numpy as np
import pytest

from autoscale_core.scene import SceneBatch, SceneValidationError, empty_batch, points_in_polygons
from autoscale_core.store import SceneStore, SceneStoreError


def straight_road_batch(n: int = 3, num_agents: int = 2) -> SceneBatch:
    batch = empty_batch(n, num_agents=num_agents, num_lanes=1, num_polygons=1)
    batch.lanes[:, 0] = np.stack([np.linspace(-20, 80, 20), np.zeros(20)], -1)
    batch.lane_valid[:] = True
    batch.lane_width[:] = 3.5
    batch.lane_speed_limit[:] = 15.0
    batch.route_lanes[:, 0] = 0
    batch.route_polyline[:, :51] = np.stack([np.linspace(-20, 80, 51), np.zeros(51)], -1)
    batch.route_valid[:, :51] = True
    batch.ego_size[:] = (4.5, 1.9)
    batch.ego[:, :, 0] = batch.times * 10.0
    batch.ego[:, :, 3] = 10.0
    batch.meta["scene_id"] = np.array([f"s{i}" for i in range(n)], dtype=object)
    batch.meta["source"][:] = "world"
    batch.meta["city"][:] = "testville"
    return batch


def test_valid_batch_passes_and_exposes_expert_plan():
    batch = straight_road_batch()
    batch.validate()
    plan = batch.expert_trajectory()
    assert plan.shape == (3, 8, 3)
    np.testing.assert_allclose(plan[0, :, 0], np.arange(1, 9) * 5.0)


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: b.ego.__setitem__((1, 2, 0), np.nan), "scene 's1'.*ego contains NaN"),
        (lambda b: b.lanes.__setitem__((2, 0, 3, 1), np.inf), "scene 's2'.*lanes contains NaN or inf"),
        (lambda b: b.ego.__setitem__((0, 4, 1), 30.0), "scene 's0'.*off every lane"),
        (lambda b: (b.lane_valid.__setitem__(1, False), b.drivable_vertex_valid.__setitem__(1, False)), "scene 's1'.*empty map"),
        (lambda b: b.route_valid.__setitem__(2, False), "scene 's2'.*empty route"),
        (lambda b: b.meta.__setitem__("scene_id", np.array(["a", "a", "b"], dtype=object)), "duplicate scene_id 'a'"),
        (lambda b: setattr(b, "agents", b.agents[:, :, :5]), "agents.*axis 'T'"),
        (lambda b: setattr(b, "dt", 0.0), "dt must be positive"),
        (lambda b: b.ego_size.__setitem__((0, 1), 0.0), "ego_size must be positive"),
    ],
)
def test_validation_names_scene_and_problem(corrupt, message):
    batch = straight_road_batch()
    corrupt(batch)
    with pytest.raises(SceneValidationError, match=message):
        batch.validate()


def test_invalid_agent_rows_may_hold_nan():
    batch = straight_road_batch()
    batch.agents[0, 1] = np.nan  # padding row, invalid everywhere
    batch.validate()


def test_concatenate_pads_to_largest_shapes():
    a = straight_road_batch(2, num_agents=1)
    b = straight_road_batch(1, num_agents=4)
    b.meta["scene_id"] = np.array(["other"], dtype=object)
    joined = SceneBatch.concatenate([a, b])
    assert joined.agents.shape == (3, 4, 13, 4)
    assert not joined.agent_valid[:2, 1:].any() and (joined.agent_type[:2, 1:] == -1).all()
    joined.validate()


def test_point_in_polygon_matches_square():
    square = np.array([[[[0, 0], [2, 0], [2, 2], [0, 2]]]], dtype=np.float32)
    valid = np.ones((1, 1, 4), dtype=bool)
    points = np.array([[[1, 1], [3, 1], [-0.1, 1.0], [1.9, 1.9]]], dtype=np.float32)
    assert points_in_polygons(points, square, valid)[0, :, 0].tolist() == [True, False, False, True]


def test_store_round_trip_in_requested_order(tmp_path):
    store = SceneStore(tmp_path / "store")
    first = straight_road_batch(3)
    second = straight_road_batch(2, num_agents=5)
    second.meta["scene_id"] = np.array(["x0", "x1"], dtype=object)
    store.append(first)
    store.append(second)
    assert len(store) == 5
    loaded = store.load(["x1", "s0", "x0"])
    assert list(loaded.meta["scene_id"]) == ["x1", "s0", "x0"]
    np.testing.assert_array_equal(loaded.ego[1], first.ego[0])
    np.testing.assert_array_equal(loaded.agents[0], second.agents[1])
    assert store.contains(["s2", "nope"]).tolist() == [True, False]


def test_store_errors(tmp_path):
    store = SceneStore(tmp_path / "store")
    with pytest.raises(SceneStoreError, match="empty"):
        store.load()
    store.append(straight_road_batch(1))
    with pytest.raises(SceneStoreError, match="not in store"):
        store.load(["missing"])
    other = straight_road_batch(1)
    other.dt = 0.1
    with pytest.raises(SceneStoreError, match="dt"):
        store.append(other)


def test_store_keeps_numeric_metadata_numeric(tmp_path):
    batch = straight_road_batch(2)
    batch.meta["perturb_lateral"] = np.array([0.5, -1.25])
    batch.meta["round"] = np.array([1, 2])
    store = SceneStore(tmp_path / "store")
    store.append(batch)
    loaded = store.load(["s1", "s0"])
    assert loaded.meta["perturb_lateral"].dtype == np.float64
    assert loaded.meta["perturb_lateral"].tolist() == [-1.25, 0.5]
    assert loaded.meta["round"].tolist() == [2, 1] and loaded.meta["round"].dtype.kind == "i"
    assert loaded.meta["scene_id"].dtype == object
