"""Tests of the embedded procedural driving world (autoscale_core.world). Small sizes: seconds."""

from __future__ import annotations

import numpy as np
import pytest

from autoscale_core.scene import AGENT_TYPES, TL_GREEN, TL_NONE, TL_RED, TL_YELLOW, points_on_drivable
from autoscale_core.world import CITIES, EVENTS, TOPOLOGIES, generate_world

MANEUVERS = {"straight", "follow", "stop", "left_turn", "right_turn", "lane_change", "merge"}


@pytest.fixture(scope="module")
def world():
    return generate_world(500, seed=0)


def _events(batch, name):
    return np.array([name in str(e).split(";") for e in batch.meta["events"]])


def test_catalogue():
    assert len(CITIES) >= 4 and len(TOPOLOGIES) >= 5
    assert set(EVENTS) == {"cut_in", "hard_brake", "jaywalker", "stalled_vehicle"}
    profiles = list(CITIES.values())
    for attr in ("lane_width", "urban_speed", "density", "time_headway", "max_accel"):
        assert len({getattr(p, attr) for p in profiles}) > 1, attr
    assert len({tuple(sorted(p.topology_mix.items())) for p in profiles}) == len(profiles)


def test_same_seed_same_arrays():
    a, b = generate_world(40, seed=11), generate_world(40, seed=11)
    for name, array in a.arrays().items():
        np.testing.assert_array_equal(array, getattr(b, name), err_msg=name)
    for key in a.meta:
        assert list(a.meta[key]) == list(b.meta[key]), key


def test_different_seeds_differ():
    a, b = generate_world(20, seed=1), generate_world(20, seed=2)
    assert list(a.meta["scene_id"]) != list(b.meta["scene_id"])
    assert not np.allclose(a.global_pose, b.global_pose)


def test_validates_with_metadata(world):
    world.validate()
    assert len(world) == 500 and world.num_steps == 13 and world.dt == 0.5 and world.history_steps == 4
    assert world.meta["scene_id"][7] == "world-0-000007"
    assert len(set(world.meta["scene_id"])) == 500
    assert set(world.meta["source"]) == {"world"} and set(world.meta["parent_id"]) == {""}
    assert set(world.meta["maneuver"]) <= MANEUVERS
    assert all(str(x).startswith("world-0-") for x in world.meta["log_id"])
    assert np.isfinite(world.global_pose).all()
    # the ego sits at the scene origin facing +x at t0
    np.testing.assert_allclose(world.ego[:, 4, :3], 0.0, atol=1e-3)
    assert world.agents.shape[1] <= 32
    assert set(np.unique(world.agent_type)) <= set(range(-1, len(AGENT_TYPES)))


def test_coverage_of_cities_and_topologies(world):
    assert len(set(world.meta["city"])) >= 4
    assert set(world.meta["topology"]) == set(TOPOLOGIES)
    assert len(set(world.meta["maneuver"])) >= 5
    types = set(np.unique(world.agent_type[world.agent_valid.any(-1)]))
    assert {0, 1, 2, 3} <= types  # vehicles, pedestrians, cyclists, parked cars


def test_city_subset_and_bad_input():
    b = generate_world(12, seed=3, cities=["vegas-like"])
    assert set(b.meta["city"]) == {"vegas-like"}
    with pytest.raises(ValueError, match="num_scenes"):
        generate_world(0)
    with pytest.raises(ValueError, match="atlantis"):
        generate_world(5, cities=["atlantis"])
    with pytest.raises(ValueError, match="force_event"):
        generate_world(5, force_event="meteor")


def test_events_are_rare(world):
    rates = {name: _events(world, name).mean() for name in EVENTS}
    assert all(r <= 0.08 for r in rates.values()), rates
    assert 0.0 < np.mean(world.meta["events"] != "") < 0.25, rates


@pytest.mark.parametrize("event", EVENTS)
def test_forced_event_and_expert_reaction(event):
    topologies = ["highway_merge"] if event == "cut_in" else None
    b = generate_world(32, seed=5, force_event=event, topologies=topologies)
    has = _events(b, event)
    assert has.sum() >= 5, (event, has.sum())
    assert not any(_events(b, other).any() for other in EVENTS if other != event)
    future = b.ego[has, 4:]
    # a plausible reaction: the expert brakes, stops, changes lane or is already slow
    reacted = (future[..., 4].min(1) < -0.5) | (future[..., 3].min(1) < 2.0) | (b.meta["maneuver"][has] == "lane_change")
    assert reacted.mean() >= 0.7, (event, reacted.mean())


def test_physical_plausibility(world):
    speed, accel = world.ego[..., 3], world.ego[..., 4]
    limit = np.where(world.lane_valid, world.lane_speed_limit, 0).max(1)
    assert (speed >= 0).all()
    assert (speed.max(1) <= 1.15 * limit + 0.5).all()
    assert np.abs(accel).max() <= 8.01
    assert np.quantile(accel.min(1), 0.5) > -2.0  # hard braking is the exception
    # positions agree with speeds (0.5 s steps)
    step = np.linalg.norm(np.diff(world.ego[..., :2], axis=1), axis=-1)
    mean_speed = 0.5 * (speed[:, 1:] + speed[:, :-1])
    assert np.quantile(np.abs(step - 0.5 * mean_speed), 0.99) < 0.6
    on_map = points_on_drivable(world, world.ego[:, 4:, :2])
    assert on_map.mean() >= 0.95
    # the expert rarely overlaps anyone (centre distance below 1 m)
    dist = np.hypot(world.agents[..., 0] - world.ego[:, None, :, 0], world.agents[..., 1] - world.ego[:, None, :, 1])
    dist = np.where(world.agent_valid, dist, np.inf)[:, :, 4:].min((1, 2))
    assert np.mean(dist < 1.0) < 0.02


def test_route_and_map_structure(world):
    r, v = world.route_polyline, world.route_valid
    seg = np.linalg.norm(np.diff(r, axis=1), axis=-1)
    both = v[:, 1:] & v[:, :-1]
    assert seg[both].max() <= 2.0
    # it passes under the ego and runs from ~10 m behind to >= 120 m ahead (arc length)
    dist = np.where(v, np.linalg.norm(r, axis=-1), np.inf)
    nearest = dist.argmin(1)
    assert dist.min(1).max() < 1.5
    cum = np.concatenate([np.zeros((len(r), 1)), np.cumsum(np.where(both, seg, 0), 1)], 1)
    rows = np.arange(len(r))
    assert (cum[rows, -1] - cum[rows, nearest] >= 120.0).all()
    assert (cum[rows, nearest] <= 12.0).all()
    assert ((world.route_lanes >= 0).sum(1) >= 2).all()
    assert world.lane_valid[np.arange(len(world))[:, None], np.maximum(world.route_lanes, 0)][world.route_lanes >= 0].all()
    lane_len = np.linalg.norm(np.diff(world.lanes, axis=2), axis=-1).sum(-1)[world.lane_valid]
    assert lane_len.max() <= 30.5
    succ = world.lane_successors
    ok = succ < 0
    ok |= world.lane_valid[np.arange(len(world))[:, None, None], np.maximum(succ, 0)]
    assert ok.all()
    assert set(np.unique(world.lane_tl)) <= {TL_NONE, TL_GREEN, TL_YELLOW, TL_RED}
    inter = world.meta["topology"] == "intersection"
    assert (world.lane_tl[inter] != TL_NONE).any(axis=(1, 2)).all()
    assert (world.lane_tl[~inter] == TL_NONE).all()
