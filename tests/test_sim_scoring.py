"""EPDMS scorer on tiny hand-built scenes: each sub-metric must fail and must pass."""

import numpy as np
import pytest

from autoscale_core.scene import STATIC, TL_GREEN, TL_RED, TL_UNKNOWN, SceneBatch
from autoscale_core.sim.scoring import ScorerConfig, score_trajectories
from autoscale_core.sim.toy import constant_speed_plan, set_agent, straight_road

T = np.arange(1, 9) * 0.5
CANDIDATES = ScorerConfig(progress_reference="candidates")


def score(batch, plans, **kw):
    kw.setdefault("human_filter", False)
    kw.setdefault("config", CANDIDATES)
    return score_trajectories(batch, plans, **kw)


def stack(*plans):
    return np.concatenate(plans, axis=1)


def braking_plan(batch, v0, decel, lateral=0.0):
    """Brake from v0 at ``decel`` m/s² until stopped."""
    t_stop = v0 / decel
    t = np.minimum(T, t_stop)
    plan = np.zeros((len(batch), 1, 8, 3))
    plan[..., 0] = v0 * t - 0.5 * decel * t**2
    plan[..., 1] = lateral
    return plan


def test_rear_end_collision_is_at_fault():
    batch = straight_road(ego_speed=10.0, num_agents=1)
    set_agent(batch, 0, 0, 20.0, 0.0, 3.0)  # slow lead 20 m ahead
    fast = constant_speed_plan(batch, 10.0)  # runs into it
    gentle = braking_plan(batch, 10.0, 3.0)  # stops after ~16.7 m, behind the lead's rear
    r = score(batch, stack(fast, gentle))
    assert r.collision[0].tolist() == [True, False]
    assert r.nc[0].tolist() == [0.0, 1.0]
    assert r.epdms[0, 0] == 0.0 and r.epdms[0, 1] > 0.5


def test_hit_from_behind_while_stopped_is_not_at_fault():
    batch = straight_road(ego_speed=0.0, num_agents=1)
    set_agent(batch, 0, 0, -15.0, 0.0, 8.0)  # follower that does not brake (log replay)
    stay = constant_speed_plan(batch, 0.0)
    r = score(batch, stay)
    assert r.collision[0, 0] and r.nc[0, 0] == 1.0
    # Same geometry mirrored: the ego drives into a standing car in front → at fault.
    batch2 = straight_road(ego_speed=8.0, num_agents=1)
    set_agent(batch2, 0, 0, 15.0, 0.0, 0.0)
    r2 = score(batch2, constant_speed_plan(batch2, 8.0))
    assert r2.collision[0, 0] and r2.nc[0, 0] == 0.0


def test_reactive_follower_brakes_for_stopped_ego():
    batch = straight_road(ego_speed=0.0, num_agents=1)
    set_agent(batch, 0, 0, -30.0, 0.0, 8.0)
    stay = constant_speed_plan(batch, 0.0)
    assert score(batch, stay, reactive=False).collision[0, 0]
    assert not score(batch, stay, reactive=True).collision[0, 0]


def test_static_object_collision_halves_nc():
    batch = straight_road(ego_speed=8.0, num_agents=1)
    set_agent(batch, 0, 0, 15.0, 0.0, 0.0, agent_type=STATIC, size=(1.0, 1.0))
    r = score(batch, stack(constant_speed_plan(batch, 8.0), braking_plan(batch, 8.0, 3.5)))
    assert r.nc[0].tolist() == [0.5, 1.0]


def test_leaving_drivable_area():
    batch = straight_road(ego_speed=10.0, lane_width=3.6)
    r = score(batch, stack(constant_speed_plan(batch, 10.0, lateral=4.0), constant_speed_plan(batch, 10.0)))
    assert r.dac[0].tolist() == [0.0, 1.0]
    # A shoulder polygon makes the same offset drivable.
    wide = straight_road(ego_speed=10.0, lane_width=3.6)
    poly = np.array([[-50, 1.0], [150, 1.0], [150, 6.0], [-50, 6.0]], np.float32)
    wide = wide.replace(
        drivable_polygons=poly[None, None], drivable_vertex_valid=np.ones((1, 1, 4), bool)
    )
    r = score(wide, constant_speed_plan(wide, 10.0, lateral=4.0))
    assert r.dac[0, 0] == 1.0


def test_driving_against_lane_direction():
    against = straight_road(ego_speed=10.0)
    against.lanes[0, 0] = against.lanes[0, 0, ::-1].copy()  # the only lane points the other way
    slow = straight_road(ego_speed=1.0)
    slow.lanes[0, 0] = slow.lanes[0, 0, ::-1].copy()
    assert score(against, constant_speed_plan(against, 10.0)).ddc[0, 0] == 0.0  # 40 m backwards
    assert score(slow, constant_speed_plan(slow, 1.0)).ddc[0, 0] == 0.5  # 4 m backwards
    normal = straight_road(ego_speed=10.0)
    assert score(normal, constant_speed_plan(normal, 10.0)).ddc[0, 0] == 1.0


def test_running_a_red_light():
    red = straight_road(ego_speed=10.0, connector_tl=TL_RED, connector_start=20.0)
    plans = stack(constant_speed_plan(red, 10.0), braking_plan(red, 10.0, 4.0))  # stops at 12.5 m
    r = score(red, plans)
    assert r.tlc[0].tolist() == [0.0, 1.0]
    green = straight_road(ego_speed=10.0, connector_tl=TL_GREEN, connector_start=20.0)
    assert score(green, constant_speed_plan(green, 10.0)).tlc[0, 0] == 1.0
    unknown = straight_road(ego_speed=10.0, connector_tl=TL_UNKNOWN, connector_start=20.0)
    r = score(unknown, constant_speed_plan(unknown, 10.0))
    assert r.tlc[0, 0] == 1.0 and r.tl_unknown[0, 0]


def test_closing_fast_on_a_lead_fails_ttc():
    batch = straight_road(ego_speed=10.0, num_agents=1)
    set_agent(batch, 0, 0, 9.0, 0.0, 5.0)  # 4.2 m gap, closing at 5 m/s
    r = score(batch, braking_plan(batch, 10.0, 5.0))  # brakes hard enough not to hit it
    assert not r.collision[0, 0] and r.ttc[0, 0] == 0.0
    cruise = straight_road(ego_speed=10.0, num_agents=2)
    set_agent(cruise, 0, 0, 25.0, 0.0, 10.0)  # same speed, 20 m gap
    set_agent(cruise, 0, 1, -8.0, 0.0, 14.0)  # closing from behind is not the ego's TTC
    r = score(cruise, constant_speed_plan(cruise, 10.0))
    assert r.ttc[0, 0] == 1.0


def test_harsh_braking_fails_history_comfort():
    batch = straight_road(ego_speed=10.0)
    gentle = braking_plan(batch, 10.0, 1.0)
    r = score(batch, stack(braking_plan(batch, 10.0, 7.0), braking_plan(batch, 10.0, 4.5), gentle, constant_speed_plan(batch, 10.0)))
    assert r.hc[0].tolist() == [0.0, 0.0, 1.0, 1.0]
    # Braking at 2 m/s² is comfortable once the brake is applied (logged t0 acceleration -2) ...
    braking = straight_road(ego_speed=10.0)
    braking.ego[0, braking.history_steps, 4] = -2.0
    assert score(braking, braking_plan(braking, 10.0, 2.0)).hc[0, 0] == 1.0
    # ... but slamming 3.5 m/s² on from a steady cruise is a jerk the tracker cannot hide.
    assert score(batch, braking_plan(batch, 10.0, 3.5)).hc[0, 0] == 0.0
    # A sudden acceleration step (jerk) also fails.
    jerk = np.zeros((1, 1, 8, 3))
    jerk[..., 0] = 10.0 * T + np.where(T > 1.0, 1.5 * (T - 1.0) ** 2, 0.0)
    assert score(batch, jerk).hc[0, 0] == 0.0


def test_drifting_out_of_lane_fails_lane_keeping():
    batch = straight_road(ego_speed=10.0, lane_width=5.0)
    held = constant_speed_plan(batch, 10.0, lateral=1.2)  # > 0.5 m off for ~3.5 s, still on the road
    late = constant_speed_plan(batch, 10.0)
    late[..., 6:, 1] = 1.2  # off-centre only at the end (< 2 s)
    r = score(batch, stack(held, late, constant_speed_plan(batch, 10.0)))
    assert r.dac[0].tolist() == [1.0, 1.0, 1.0]
    assert r.lk[0].tolist() == [0.0, 1.0, 1.0]
    junction = straight_road(ego_speed=10.0, lane_width=5.0)
    junction.lane_is_intersection[0, 0] = True  # LK does not apply inside intersections
    assert score(junction, held).lk[0, 0] == 1.0


def test_human_filter_and_aggregate():
    batch = straight_road(ego_speed=10.0, num_agents=1)
    set_agent(batch, 0, 0, 25.0, 0.0, 0.0)  # the logged ego itself runs into this car
    plan = constant_speed_plan(batch, 10.0)
    assert score(batch, plan, human_filter=False).nc[0, 0] == 0.0
    r = score(batch, plan, human_filter=True)
    assert r.nc[0, 0] == 1.0  # the expert fails NC too → filtered
    expected = r.nc * r.dac * r.ddc * r.tlc * (5 * r.ep + 5 * r.ttc + 2 * r.lk + 2 * r.hc + 2 * r.ec) / 16
    np.testing.assert_allclose(r.epdms, expected)
    assert set(r.as_dict()) >= {"nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "epdms", "pdms", "collision", "progress"}


def test_progress_and_extended_comfort():
    batch = straight_road(ego_speed=10.0)
    plans = stack(constant_speed_plan(batch, 10.0), constant_speed_plan(batch, 5.0), constant_speed_plan(batch, 0.5))
    r = score(batch, plans)
    assert r.progress[0, 0] == pytest.approx(40.0, abs=0.5)
    assert r.ep[0, 0] == 1.0 and r.ep[0, 1] == pytest.approx(r.progress[0, 1] / r.progress[0, 0])
    crawl = straight_road(ego_speed=0.5)
    slow_only = score(crawl, constant_speed_plan(crawl, 0.5))
    assert slow_only.reference_progress[0] < 5.0 and slow_only.ep[0, 0] == 1.0  # best < 5 m → EP = 1
    # EC: consistent with a previous plan that predicted the same motion, not with a swerve.
    prev = np.zeros((1, 8, 3))
    prev[0, :, 0] = 10.0 * (T - 0.5)
    swerve = prev.copy()
    swerve[0, 3:, 2] = 0.4
    same = score(batch, constant_speed_plan(batch, 10.0), previous_plans=prev)
    other = score(batch, constant_speed_plan(batch, 10.0), previous_plans=swerve)
    assert same.ec[0, 0] == 1.0 and other.ec[0, 0] == 0.0


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda p: np.where(np.arange(8)[None, None, :, None] == 3, np.nan, p), "NaN"),
        (lambda p: p[:, :, :7], "horizon"),
        (lambda p: p[:, :0], "empty candidate set"),
        (lambda p: p[:, 0], "shape"),
    ],
)
def test_bad_input_names_the_scene(make, match):
    batch = straight_road(2, ego_speed=10.0)
    plans = np.concatenate([constant_speed_plan(batch, 10.0)] * 2, axis=1)
    with pytest.raises(ValueError, match=match) as err:
        score_trajectories(batch, make(plans), config=CANDIDATES)
    assert "toy-0" in str(err.value)


def side_swipe_scene(agent_y0: float, agent_vy: float):
    """Two lane corridors (y = 0 and y = 3.6); an agent alongside the ego (centre 1 m behind the
    ego's centre, so it never touches the ego's front bumper) at 10 m/s, drifting sideways."""
    batch = straight_road(ego_speed=10.0, num_agents=1, opposite_lane=True)
    t = batch.times
    batch.agents[0, 0, :, 0] = 10.0 * t - 1.0
    batch.agents[0, 0, :, 1] = agent_y0 + agent_vy * t
    batch.agents[0, 0, :, 2] = np.arctan2(agent_vy, 10.0)
    batch.agents[0, 0, :, 3] = np.hypot(10.0, agent_vy)
    batch.agent_valid[0, 0] = True
    batch.agent_size[0, 0] = (4.8, 2.0)
    batch.agent_type[0, 0] = 0
    return batch


def test_side_collision_is_at_fault_only_when_ego_occupies_two_lanes():
    from autoscale_core.sim.reference import score_trajectories_reference

    # The agent drifts into the side of an ego that keeps its lane → collision, not at fault.
    cut_in = side_swipe_scene(3.2, -0.8)
    keep = constant_speed_plan(cut_in, 10.0)
    # Same cut-in, but the lanes are shifted so that the ego's footprint straddles both corridors.
    straddling = side_swipe_scene(3.2, -0.8)
    straddling.lanes[..., 1] -= 1.2
    r = score(SceneBatch.concatenate([cut_in, straddling]), np.concatenate([keep, keep]))
    assert r.collision[:, 0].tolist() == [True, True]
    assert r.nc[:, 0].tolist() == [1.0, 0.0]
    # The ego changes lanes into an agent driving straight alongside → side collision, at fault.
    alongside = side_swipe_scene(3.6, 0.0)
    change = constant_speed_plan(alongside, 10.0)
    ramp = np.clip(T / 4.0, 0, 1)
    change[..., 1] = 3.6 * ramp * ramp * (3 - 2 * ramp)
    r2 = score(alongside, stack(change, keep))
    assert r2.collision[0].tolist() == [True, False] and r2.nc[0].tolist() == [0.0, 1.0]
    # The shapely reference classifies the same way.
    both = SceneBatch.concatenate([cut_in, straddling])
    for batch, plans, fast in ((both, np.concatenate([keep, keep]), r), (alongside, stack(change, keep), r2)):
        slow = score_trajectories_reference(batch, plans, config=CANDIDATES, human_filter=False)
        np.testing.assert_array_equal(slow.nc, fast.nc)


def test_stored_reference_progress_is_used_and_equals_the_computed_one():
    from autoscale_core.sim import scoring
    from autoscale_core.sim.planner import RulePlanner

    crash = straight_road(ego_speed=10.0, num_agents=1)
    set_agent(crash, 0, 0, 25.0, 0.0, 0.0)  # the logged ego runs into it: the human filter acts
    batch = SceneBatch.concatenate([straight_road(ego_speed=4.0, num_agents=1), crash])
    batch.meta["scene_id"] = np.array(["slow", "crash"], dtype=object)
    plans = np.concatenate([constant_speed_plan(batch, 6.0), constant_speed_plan(batch, 3.0)], axis=1)
    plain = score_trajectories(batch, plans)  # computes (and caches) denominator and expert metrics
    stored = scoring.precompute_reference_progress(batch)
    np.testing.assert_array_equal(batch.meta["ep_reference_m"], stored)
    np.testing.assert_allclose(stored, RulePlanner().reference_progress(batch))  # uncached
    assert batch.meta["human_fail_mask"].tolist()[0] == 0 and batch.meta["human_fail_mask"][1] & 1  # NC bit
    scoring._PROGRESS_CACHE.clear()
    scoring._EXPERT_CACHE.clear()
    with_meta = score_trajectories(batch, plans)
    assert not scoring._PROGRESS_CACHE and not scoring._EXPERT_CACHE  # all from the metadata
    for key, value in plain.as_dict().items():
        np.testing.assert_array_equal(value, getattr(with_meta, key), err_msg=key)
    # A stored value is only trusted for the scene content it was computed on.
    batch.meta["ep_reference_m"] = np.array([1000.0, 1000.0])
    assert (score_trajectories(batch, plans).reference_progress == 1000.0).all()
    edited = batch.replace(lanes=batch.lanes + np.float32(0.01))  # e.g. a perturbed copy
    edited.meta = dict(batch.meta)
    assert (score_trajectories(edited, plans).reference_progress < 1000.0).all()


def test_expert_cache_follows_scene_content():
    batch = straight_road(ego_speed=10.0, num_agents=1)
    set_agent(batch, 0, 0, 25.0, 0.0, 0.0)  # the logged ego runs into this car → NC filtered
    plan = constant_speed_plan(batch, 10.0)
    assert score(batch, plan, human_filter=True).nc[0, 0] == 1.0
    assert score(batch, plan, human_filter=True).nc[0, 0] == 1.0  # cached expert, same answer
    blocked = straight_road(ego_speed=10.0, num_agents=1)  # same scene id as ``batch``
    set_agent(blocked, 0, 0, 25.0, 0.0, 0.0)
    blocked.ego[0, blocked.history_steps + 1 :, 0] = np.minimum(blocked.ego[0, blocked.history_steps + 1 :, 0], 15.0)
    # The logged ego now stops short of the car: its NC passes, the candidate's crash counts.
    assert score(blocked, plan, human_filter=True).nc[0, 0] == 0.0


def test_lane_index_track_queries_match_point_queries():
    from autoscale_core.sim.scoring import LaneIndex

    batch = SceneBatch.concatenate([straight_road(ego_speed=10.0, opposite_lane=True), straight_road(lane_width=3.0)])
    rng = np.random.default_rng(0)
    tracks = np.cumsum(rng.normal(0.0, 0.8, (2 * 50, 41, 2)), axis=1) + [0.0, 1.5]  # random walks
    scene = np.repeat([0, 1], 50)
    # Brute force: every point against every segment of its scene.
    pts = tracks.reshape(-1, 2)
    pts_scene = np.repeat(scene, 41)
    a, b = batch.lanes[:, :, :-1].astype(float), batch.lanes[:, :, 1:].astype(float)
    d = b - a
    t = np.clip(((pts[:, None, None] - a[pts_scene]) * d[pts_scene]).sum(-1) / np.maximum((d**2).sum(-1), 1e-18)[pts_scene], 0, 1)
    dist = np.linalg.norm(pts[:, None, None] - (a[pts_scene] + t[..., None] * d[pts_scene]), axis=-1)
    ok = batch.lane_valid[pts_scene][..., None] & ((d**2).sum(-1) > 1e-18)[pts_scene]
    brute = ((dist <= 0.5 * batch.lane_width[pts_scene][..., None]) & ok).any((1, 2)).reshape(tracks.shape[:2])
    for pad, cell in ((0.0, 1.5), (0.5, 1.5), (0.0, 0.5)):  # 0.5 m cells: whole-cell shortcut used
        index = LaneIndex(batch, 0.5, cell, pad=pad)
        by_track = index.on_lane_tracks(scene, tracks)
        by_point = index.on_lane(np.repeat(scene, 41), tracks.reshape(-1, 2)).reshape(by_track.shape)
        np.testing.assert_array_equal(by_track, by_point)
        np.testing.assert_array_equal(by_point, brute)
        assert 0.2 < by_track.mean() < 0.9  # both inside and outside the corridors
    assert index.cell_full.any()


@pytest.mark.parametrize("reactive", [False, True])
@pytest.mark.parametrize("num", [2, 16])
def test_collision_broad_phase_keeps_exactly_the_dense_per_step_entries(reactive, num):
    """The box stages before the per-step centre-distance test only skip entries that fail it:
    the entries left are those of the dense (trajectory, agent, step) test, in the same order."""
    from test_sim_reference import mixed_scenes, random_plans

    from autoscale_core.sim import collisions as col
    from autoscale_core.sim.agents import log_bounds, simulate_agents
    from autoscale_core.sim.kinematics import simulate_ego

    cfg = ScorerConfig()
    batch = mixed_scenes()
    S = len(batch)
    states = simulate_ego(batch, random_plans(batch, num, seed=3))
    agents, valid = simulate_agents(batch, states, reactive)
    st = states.reshape(S * num, -1, 5)
    K1 = st.shape[1]
    of = np.repeat(np.arange(S), num)
    r_ego = 0.5 * np.hypot(batch.ego_size[of, 0].astype(float), batch.ego_size[of, 1].astype(float))
    r_agent = 0.5 * np.hypot(batch.agent_size[..., 0].astype(float), batch.agent_size[..., 1].astype(float))
    # Dense reference: every (trajectory, agent, step).
    e = states[:, :, None]
    dx, dy = agents[..., 0] - e[..., 0], agents[..., 1] - e[..., 1]
    reach2 = (r_ego.reshape(S, num, 1, 1) + r_agent[:, None, :, None] + 1e-3) ** 2
    near = dx * dx + dy * dy <= reach2
    dvx = agents[..., 3] * np.cos(agents[..., 2]) - e[..., 3] * np.cos(e[..., 2])
    dvy = agents[..., 3] * np.sin(agents[..., 2]) - e[..., 3] * np.sin(e[..., 2])
    for tau in cfg.ttc_horizons:
        near |= ((dx + dvx * tau) ** 2 + (dy + dvy * tau) ** 2 <= reach2) & (e[..., 3] >= cfg.stopped_speed)
    expected = np.nonzero((near & valid).reshape(S * num, -1, K1))
    assert len(expected[0]) > 0
    for bounds in ([None] if reactive else [None, log_bounds(batch, K1 - 1)]):
        got = col._near_entries(st, agents, valid, r_ego, r_agent, S, num, cfg, bounds)
        for x, y in zip(expected, got):
            np.testing.assert_array_equal(x, y)
