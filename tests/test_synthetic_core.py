"""SimScale synthetic scenes (core, no FiftyOne): perturbation, labels, re-simulation, lineage."""

import numpy as np
import pytest

from autoscale_core.geometry import boxes_overlap
from autoscale_core.scene import VEHICLE, SceneBatch, empty_batch, to_world_frame
from autoscale_core.synthetic._geometry import RouteFrame
from autoscale_core.synthetic.generate import generate_synthetic
from autoscale_core.synthetic.labels import recovery_label
from autoscale_core.synthetic.perturb import PerturbationConfig, perturb_scenes

FIXED = dict(lateral_distribution="uniform", heading_jitter=0.0)


def one_way_road(num_scenes: int, *, lanes=(0.0, 3.5), speed=10.0, num_agents=1) -> SceneBatch:
    """Straight one-way road along +x with lanes centred at ``lanes`` (y, m); no extra drivable area."""
    b = empty_batch(num_scenes, num_agents=num_agents, num_lanes=len(lanes), route_points=80)
    xs = np.linspace(-80.0, 120.0, b.lanes.shape[2])
    for k, y in enumerate(lanes):
        b.lanes[:, k] = np.stack([xs, np.full_like(xs, y)], -1)
    b.lane_valid[:] = True
    b.lane_width[:] = 3.5
    b.lane_speed_limit[:] = 15.0
    b.route_lanes[:, 0] = 0
    qs = np.linspace(-60.0, 100.0, 80)
    b.route_polyline[:] = np.stack([qs, np.zeros_like(qs)], -1)
    b.route_valid[:] = True
    b.ego_size[:] = (4.6, 1.9)
    b.ego[:, :, 0] = speed * b.times
    b.ego[:, :, 3] = speed
    b.global_pose[:] = (500.0, -200.0, 0.3)
    b.meta["scene_id"] = np.array([f"road-{i}" for i in range(num_scenes)], dtype=object)
    b.meta["source"][:] = "world"
    b.meta["city"][:] = "testville"
    return b


def put_agent(b: SceneBatch, scene: int, row: int, x0: float, y: float, speed: float, kind=VEHICLE) -> None:
    b.agents[scene, row, :, 0] = x0 + speed * b.times
    b.agents[scene, row, :, 1] = y
    b.agents[scene, row, :, 3] = speed
    b.agent_valid[scene, row] = True
    b.agent_size[scene, row] = (4.5, 1.9)
    b.agent_type[scene, row] = kind


def test_perturbation_shifts_start_state_and_recentres_the_scene(road_batch):
    cfg = PerturbationConfig(lateral_range=(1.5, 1.5), speed_range=(2.0, 2.0), **FIXED)
    out, report = perturb_scenes(road_batch, cfg, scenes_per_parent=2)
    assert len(out) == 2 * len(road_batch) and report.accepted == len(out)
    out.validate()
    t0 = out.history_steps
    # New frame: ego at the origin, pointing along +x.
    np.testing.assert_allclose(out.ego[:, t0, :3], 0.0, atol=1e-4)
    parents = np.repeat(np.arange(len(road_batch)), 2)
    np.testing.assert_allclose(out.ego[:, t0, 3], road_batch.ego[parents, t0, 3] + 2.0, atol=1e-4)
    # The shift is 1.5 m left of the straight route: the route now passes 1.5 m to the right.
    _, lateral = RouteFrame(out.route_polyline, out.route_valid).project(np.zeros((len(out), 1, 2)))
    np.testing.assert_allclose(lateral[:, 0], 1.5, atol=1e-3)
    # Before the window the ego history is the parent's (in world coordinates).
    for i, p in ((0, 0), (5, 2)):
        agent_world = to_world_frame(out.agents[i, 0, t0, :2], out.global_pose[i])
        parent_world = to_world_frame(road_batch.agents[p, 0, t0, :2], road_batch.global_pose[p])
        np.testing.assert_allclose(agent_world, parent_world, atol=1e-3)
        lane_world = to_world_frame(out.lanes[i, 1, 3], out.global_pose[i])
        np.testing.assert_allclose(lane_world, to_world_frame(road_batch.lanes[p, 1, 3], road_batch.global_pose[p]), atol=1e-3)
    assert list(out.meta["scene_id"][:2]) == [f"{road_batch.meta['scene_id'][0]}-syn1-0", f"{road_batch.meta['scene_id'][0]}-syn1-1"]
    assert set(out.meta["source"]) == {"synthetic"}
    np.testing.assert_allclose(out.meta["perturb_lateral"], 1.5)


def test_deviation_is_smooth_and_starts_from_the_log(road_batch):
    cfg = PerturbationConfig(lateral_range=(2.0, 2.0), speed_range=(0.0, 0.0), **FIXED)
    out, _ = perturb_scenes(road_batch[[0]], cfg, scenes_per_parent=1)
    world = to_world_frame(out.ego[0, :, :2], out.global_pose[0])
    parent = to_world_frame(road_batch.ego[0, :, :2], road_batch.global_pose[0])
    offset = np.linalg.norm(world - parent, axis=-1)[: out.history_steps + 1]
    assert offset[0] < 1e-3  # window starts at the logged pose
    assert np.all(np.diff(offset) >= -1e-4) and abs(offset[-1] - 2.0) < 1e-3
    headings = out.ego[0, : out.history_steps + 1, 2]
    assert np.abs(np.diff(headings)).max() < 0.25  # no jumps


def test_determinism_and_chunk_independence(road_batch):
    a, ra = generate_synthetic(road_batch, scenes_per_parent=3, seed=7, score_labels=False)
    b, rb = generate_synthetic(road_batch, scenes_per_parent=3, seed=7, score_labels=False, chunk_size=3)
    c, _ = generate_synthetic(road_batch, scenes_per_parent=3, seed=8, score_labels=False)
    assert list(a.meta["scene_id"]) == list(b.meta["scene_id"])
    for name, array in a.arrays().items():
        np.testing.assert_array_equal(array, getattr(b, name), err_msg=name)
    assert ra.rejects.as_dict() == rb.rejects.as_dict()
    assert not np.allclose(a.meta["perturb_lateral"], c.meta["perturb_lateral"])


def test_rejections_are_counted_by_reason():
    b = one_way_road(3, lanes=(0.0,), num_agents=1)  # a single 3.5 m lane: a 2.5 m push leaves it
    b.ego[1, :, 0] = 0.0
    b.ego[1, :, 3] = 0.0  # stopped: a sideways shift is kinematically impossible
    cfg = PerturbationConfig(lateral_range=(2.5, 2.5), speed_range=(0.0, 0.0), max_attempts=1, **FIXED)
    _, report = perturb_scenes(b, cfg, scenes_per_parent=2)
    assert report.accepted == 0 and report.attempted == 6
    assert report.rejected == {"kinematics": 2, "off_road": 4, "wrong_way": 0, "collision": 0, "unsafe": 0}
    assert report.parents_short == 3

    two = one_way_road(2, lanes=(0.0, 3.5), num_agents=1)
    put_agent(two, 0, 0, x0=0.0, y=3.5, speed=10.0)  # alongside in the left lane
    put_agent(two, 1, 0, x0=-40.0, y=3.5, speed=10.0)  # far behind: no conflict
    cfg = PerturbationConfig(lateral_range=(3.5, 3.5), speed_range=(0.0, 0.0), max_attempts=1, **FIXED)
    out, report = perturb_scenes(two, cfg, scenes_per_parent=1)
    assert report.rejected == {"kinematics": 0, "off_road": 0, "wrong_way": 0, "collision": 1, "unsafe": 0}
    assert list(out.meta["parent_id"]) == ["road-1"]


def test_start_state_racing_onto_a_stopped_car_is_unsafe():
    b = one_way_road(1, lanes=(0.0,), num_agents=1)
    put_agent(b, 0, 0, x0=25.0, y=0.0, speed=0.0)  # stopped car 25 m ahead, ego at 10 m/s
    fast = PerturbationConfig(lateral_range=(0.0, 0.0), speed_range=(6.0, 6.0), max_attempts=1, **FIXED)
    out, report = perturb_scenes(b, fast, scenes_per_parent=1)
    assert len(out) == 0 and report.rejected["unsafe"] == 1
    same = PerturbationConfig(**{**fast.__dict__, "speed_range": (0.0, 0.0)})
    out, report = perturb_scenes(b, same, scenes_per_parent=1)
    assert len(out) == 1 and sum(report.rejected.values()) == 0


def test_push_into_the_oncoming_lane_is_wrong_way(road_batch):
    # road_batch: lane 0 at y = 0, the oncoming lane 2 at y = -3.5.
    cfg = PerturbationConfig(lateral_range=(-3.0, -3.0), speed_range=(0.0, 0.0), max_attempts=1, **FIXED)
    out, report = perturb_scenes(road_batch, cfg, scenes_per_parent=1)
    assert len(out) == 0 and report.rejected["wrong_way"] == len(road_batch)
    allowed, report = perturb_scenes(road_batch, PerturbationConfig(**{**cfg.__dict__, "reject_wrong_way": False}), 1)
    assert len(allowed) == len(road_batch) and sum(report.rejected.values()) == 0


def test_oversampling_fills_the_quota_and_counts_only_considered_candidates():
    b = one_way_road(4, lanes=(0.0,), num_agents=0)
    cfg = PerturbationConfig(lateral_range=(0.0, 2.0), lateral_distribution="symmetric", max_attempts=6)
    out, report = perturb_scenes(b, cfg, scenes_per_parent=2)
    assert report.rejected["off_road"] > 0
    assert report.attempted == report.accepted + sum(report.rejected.values())
    counts = np.unique(out.meta["parent_id"], return_counts=True)[1]
    assert report.accepted == len(out) == counts.sum() and counts.max() <= 2
    assert all(np.abs(out.meta["perturb_lateral"]) <= 2.0)


def test_recovery_label_returns_to_the_route(road_batch):
    cfg = PerturbationConfig(lateral_range=(-2.0, 2.0), lateral_distribution="symmetric", speed_range=(-2, 2))
    out, _ = perturb_scenes(road_batch, cfg, scenes_per_parent=2)
    label = recovery_label(out)
    route = RouteFrame(out.route_polyline, out.route_valid)
    _, l_label = route.project(label[..., :2])
    _, l_ref = route.project(out.ego[:, out.history_steps + 1 :, :2].astype(np.float64))
    gap = np.abs(l_label - l_ref)  # (S, F)
    start = np.abs(out.meta["perturb_lateral"])
    assert np.all(np.diff(gap, axis=1) <= 1e-6)  # never moves away from the reference
    assert np.all(gap[:, -1] <= 0.05 * start + 1e-3)
    # Along the route: with a 4 s longitudinal blend speed (and, when ahead, position) converge.
    fast = recovery_label(out, longitudinal_time=4.0)
    np.testing.assert_allclose(fast[:, -1, 3], out.ego[:, -1, 3], atol=1e-3)
    s_fast, _ = route.project(fast[:, -1:, :2])
    s_ref, _ = route.project(out.ego[:, -1:, :2].astype(np.float64))
    ahead = out.meta["perturb_speed"] > 0
    np.testing.assert_allclose(s_fast[ahead, 0], s_ref[ahead, 0], atol=0.05)
    assert np.all(np.abs(label[:, :, 4]) < 4.0)  # comfortable


def test_reactive_follower_brakes_when_the_ego_is_pushed_in_front():
    b = one_way_road(2, lanes=(0.0, 3.5), num_agents=1)
    for scene in range(2):
        put_agent(b, scene, 0, x0=-11.0, y=3.5, speed=12.0)  # faster follower in the left lane
    b.meta["scene_id"] = np.array(["pushed", "kept"], dtype=object)
    pushed = PerturbationConfig(lateral_range=(3.5, 3.5), speed_range=(-3.0, -3.0), **FIXED)
    kept = PerturbationConfig(lateral_range=(0.0, 0.0), speed_range=(0.0, 0.0), **FIXED)
    out_p, rep = generate_synthetic(b[[0]], scenes_per_parent=1, config=pushed, score_labels=False)
    out_k, _ = generate_synthetic(b[[1]], scenes_per_parent=1, config=kept, score_labels=False)
    assert rep.generated == 1
    future = slice(b.history_steps + 1, None)
    follower_pushed = out_p.agents[0, 0, future, 3]
    follower_kept = out_k.agents[0, 0, future, 3]
    np.testing.assert_allclose(follower_kept, 12.0, atol=0.2)  # free road: replays its log
    assert follower_pushed.min() < 9.0  # brakes for the slower ego cutting into its lane
    # ... and never runs into it (the ego recovers to its own lane, the follower then passes).
    ego, agent = out_p.ego[0, future], out_p.agents[0, 0, future]
    ego_box = (ego[:, :2], ego[:, 2], 4.6, 1.9)
    assert not boxes_overlap(*ego_box, agent[:, :2], agent[:, 2], 4.5, 1.9).any()
    # Contrast: with the logged (non-reactive) follower the same synthetic scene is a crash.
    replay, _ = generate_synthetic(b[[0]], scenes_per_parent=1, config=pushed, score_labels=False, reactive=False)
    agent = replay.agents[0, 0, future]
    assert boxes_overlap(*ego_box, agent[:, :2], agent[:, 2], 4.5, 1.9).any()


def test_multi_round_lineage(road_batch):
    out, report = generate_synthetic(road_batch[:3], scenes_per_parent=2, rounds=3, score_labels=False)
    rounds = out.meta["round"].astype(int)
    assert [r["generated"] for r in report.rounds] == [6, 6, 6] and len(out) == 18
    ids = set(out.meta["scene_id"])
    real = set(road_batch[:3].meta["scene_id"])
    for sid, parent, r in zip(out.meta["scene_id"], out.meta["parent_id"], rounds):
        assert sid.startswith(f"{parent}-syn{r}-")
        assert (parent in real) if r == 1 else (parent in ids)
    assert set(out.meta["expert"]) == {"recovery"}
    out.validate()


def test_bad_inputs_raise_clear_errors(road_batch):
    with pytest.raises(ValueError, match="no scenes"):
        generate_synthetic(road_batch[[]], scenes_per_parent=2)
    with pytest.raises(ValueError, match="lateral_range"):
        generate_synthetic(road_batch, config=PerturbationConfig(lateral_range=(-9, 9)))
    with pytest.raises(ValueError, match="lateral_range"):
        PerturbationConfig(lateral_range=(2, 1)).validate()
    with pytest.raises(ValueError, match="window"):
        generate_synthetic(road_batch, config=PerturbationConfig(window=0.7))
    with pytest.raises(ValueError, match="window"):
        generate_synthetic(road_batch, config=PerturbationConfig(window=5.0))
    with pytest.raises(ValueError, match="scenes_per_parent"):
        generate_synthetic(road_batch, scenes_per_parent=0)
    with pytest.raises(ValueError, match="rounds"):
        generate_synthetic(road_batch, rounds=9)
    with pytest.raises(ValueError, match="seed"):
        generate_synthetic(road_batch, seed=-1)
    with pytest.raises(ValueError, match="heading_jitter"):
        generate_synthetic(road_batch, config=PerturbationConfig(heading_jitter=2.0))
    with pytest.raises(ValueError, match="speed_range"):
        generate_synthetic(road_batch, config=PerturbationConfig(speed_range=(-20.0, 0.0)))
    with pytest.raises(ValueError, match="pseudo-expert"):
        generate_synthetic(road_batch, expert="oracle")
    syn, _ = generate_synthetic(road_batch[:2], scenes_per_parent=1, score_labels=False)
    with pytest.raises(ValueError, match="parent scene"):
        generate_synthetic(syn, known_scene_ids=["unrelated"], score_labels=False)
    orphan = syn.replace(meta={**syn.meta, "parent_id": np.array(["", ""], dtype=object)})
    with pytest.raises(ValueError, match="no parent_id"):
        generate_synthetic(orphan, score_labels=False)


def test_hard_split_is_reproducible_and_held_out(road_batch):
    from autoscale_core.synthetic.hard_split import build_hard_split

    batch = SceneBatch.concatenate([road_batch, road_batch.replace(meta={
        **road_batch.meta, "scene_id": np.array([f"x{i}" for i in range(len(road_batch))], dtype=object)})])
    split = build_hard_split(batch, seed=3, holdout_fraction=0.5, rare_fraction=1.0)
    again = build_hard_split(batch.subset(np.arange(len(batch))[::-1]), seed=3, holdout_fraction=0.5, rare_fraction=1.0)
    assert sorted(split.holdout_ids) == sorted(again.holdout_ids)
    assert sorted(split.scenes.meta["scene_id"]) == sorted(again.scenes.meta["scene_id"])
    split.scenes.validate()
    kinds = split.scenes.meta["hard_kind"]
    assert set(split.scenes.meta["split"]) == {"hard"}
    rare_ids = {s for s, e in zip(batch.meta["scene_id"], batch.meta["events"]) if e}
    assert {s for s, k in zip(split.scenes.meta["scene_id"], kinds) if k == "rare_event"} == rare_ids
    perturbed = kinds == "perturbed"
    assert perturbed.sum() > 0 and np.all(np.abs(split.scenes.meta["perturb_lateral"][perturbed]) >= 1.0)
    assert set(split.scenes.meta["parent_id"][perturbed]) <= set(split.holdout_ids)
    assert len(set(split.holdout_ids)) == len(split.holdout_ids) < len(batch)
    other = build_hard_split(batch, seed=4, holdout_fraction=0.5, rare_fraction=1.0)
    assert sorted(other.holdout_ids) != sorted(split.holdout_ids)


def test_planner_expert_and_rewards_only(road_batch):
    from autoscale_core.sim.planner import RulePlanner
    from autoscale_core.synthetic.labels import rewards_only

    out, report = generate_synthetic(road_batch[:2], scenes_per_parent=1, expert="planner", seed=1)
    assert set(out.meta["expert"]) == {"planner"} and report.label_epdms.shape == (len(out),)
    # The label is the rule planner's plan in the synthetic scene's own state.
    np.testing.assert_allclose(out.expert_trajectory(), RulePlanner().plan(out), atol=1e-3)
    vocab = np.stack([np.stack([np.arange(1, 9) * v * 0.5, np.zeros(8), np.zeros(8)], -1) for v in (0.0, 5.0, 10.0)])
    rewards = rewards_only(out, vocab.astype(np.float32))
    assert rewards["epdms"].shape == (len(out), 3) and rewards["nc"].shape == (len(out), 3)
    assert np.all((rewards["epdms"] >= 0) & (rewards["epdms"] <= 1))
    assert rewards["ep"][:, 0].max() < rewards["ep"][:, 2].min()  # standing still makes no progress


def test_rewards_file_round_trip(tmp_path, road_batch):
    from autoscale_core.synthetic.labels import load_rewards, save_rewards

    rewards = {"vocabulary": np.zeros((2, 8, 3), np.float32), "epdms": np.array([[0.5, 1.0]], np.float32)}
    path = save_rewards(tmp_path / "r.npz", ["a"], rewards)
    back = load_rewards(path)
    assert list(back["scene_id"]) == ["a"] and np.array_equal(back["epdms"], rewards["epdms"])
    with pytest.raises(ValueError, match="rows"):
        save_rewards(tmp_path / "bad.npz", ["a", "b"], rewards)


def test_lateral_distributions_stay_in_range(road_batch):
    from autoscale_core.synthetic.perturb import _sample

    for dist, rng in (("uniform", (-1.0, 2.0)), ("normal", (-1.0, 2.0)), ("symmetric", (0.5, 2.0))):
        cfg = PerturbationConfig(lateral_range=rng, lateral_distribution=dist)
        lateral, speed, heading = _sample(road_batch, cfg, 50, seed=0, round_index=1)
        if dist == "symmetric":
            assert np.all((np.abs(lateral) >= 0.5) & (np.abs(lateral) <= 2.0)) and (lateral < 0).any() and (lateral > 0).any()
        else:
            assert np.all((lateral >= -1.0) & (lateral <= 2.0))
        assert np.all((speed >= -3.0) & (speed <= 3.0)) and np.all(np.abs(heading) <= 3 * cfg.heading_jitter + 1e-12)
