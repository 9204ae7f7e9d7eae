"""Ego tracker + bicycle model, and log-replay / reactive agents."""

import numpy as np
import pytest

from autoscale_core.sim.agents import interpolate_log, simulate_agents
from autoscale_core.sim.kinematics import EgoModel, simulate_ego
from autoscale_core.sim.toy import constant_speed_plan, set_agent, straight_road

T = np.arange(1, 9) * 0.5


def test_states_shape_and_straight_tracking():
    batch = straight_road(2, ego_speed=10.0)
    states = simulate_ego(batch, np.concatenate([constant_speed_plan(batch, 10.0)] * 3, axis=1))
    assert states.shape == (2, 3, 41, 5)
    np.testing.assert_allclose(states[0, 0, :, 0], 10.0 * np.arange(41) * 0.1, atol=1e-6)
    np.testing.assert_allclose(states[..., 1:4], np.broadcast_to([0.0, 0.0, 10.0], states[..., 1:4].shape), atol=1e-6)


def test_tracks_a_curve_and_a_lane_change():
    batch = straight_road(ego_speed=10.0)
    radius = 40.0
    theta = 10.0 * T / radius
    curve = np.stack([radius * np.sin(theta), radius * (1 - np.cos(theta)), theta], -1)[None, None]
    change = constant_speed_plan(batch, 10.0)
    change[..., 1] = 3.5 * np.clip(T / 3.0, 0, 1)
    states = simulate_ego(batch, np.concatenate([curve, change], 1))
    at_poses = states[0, :, 5::5, :2]
    err = np.linalg.norm(at_poses - np.concatenate([curve, change], 1)[0, :, :, :2], axis=-1)
    assert err[0].max() < 0.15 and err[1].max() < 0.4
    assert abs(states[0, 0, -1, 2] - theta[-1]) < 0.05


def test_physical_limits_are_respected():
    batch = straight_road(ego_speed=10.0)
    teleport = constant_speed_plan(batch, 10.0)
    teleport[..., 1] = 30.0  # 30 m sideways in 0.5 s: impossible
    stop = constant_speed_plan(batch, 0.0)  # stop at once from 10 m/s
    model = EgoModel()
    states = simulate_ego(batch, np.concatenate([teleport, stop], 1), model=model)
    assert states[..., 4].min() >= -model.max_decel - 1e-9 and states[..., 4].max() <= model.max_accel + 1e-9
    yaw_rate = np.diff(states[0, 0, :, 2]) / 0.1
    v_max = states[0, 0, :, 3].max()
    assert np.abs(yaw_rate).max() <= v_max * np.tan(model.max_steer) / model.wheelbase + 1e-6
    moving = states[..., 2:, 3] > 0  # the actuator jerk limit holds until the car comes to rest
    assert np.abs(np.diff(states[..., :-1, 4], axis=-1))[moving].max() <= model.max_jerk * 0.1 + 1e-9
    assert states[0, 1, :, 3].min() >= 0.0  # no reversing
    assert states[0, 1, -1, 0] > 4.0  # cannot stop within 0 m from 10 m/s


def test_log_replay_interpolates_to_10hz():
    batch = straight_road(ego_speed=10.0, num_agents=1)
    set_agent(batch, 0, 0, 20.0, 0.0, 5.0, accel=-1.0)
    batch.agent_valid[0, 0, -2:] = False  # disappears for the last second of the log
    states, valid = interpolate_log(batch, 40)
    assert states.shape == (1, 1, 41, 4)
    assert valid[0, 0, :30].all() and not valid[0, 0, 31:].any()
    t = np.arange(41) * 0.1
    np.testing.assert_allclose(states[0, 0, ::5, 0][:7], (20 + 5 * t - 0.5 * t**2)[::5][:7], atol=1e-5)


def test_reactive_agents_follow_log_unless_ego_blocks():
    batch = straight_road(ego_speed=10.0, num_agents=2)
    set_agent(batch, 0, 0, -20.0, 0.0, 10.0)  # follower
    set_agent(batch, 0, 1, 30.0, 3.5, 12.0)  # neighbour lane, never blocked
    plans = np.concatenate([constant_speed_plan(batch, 10.0), constant_speed_plan(batch, 0.0)], 1)
    ego = simulate_ego(batch, plans)
    log, _ = simulate_agents(batch, ego, reactive=False)
    reactive, valid = simulate_agents(batch, ego, reactive=True)
    assert log.shape == (1, 1, 2, 41, 4) and reactive.shape == (1, 2, 2, 41, 4) and valid.all()
    np.testing.assert_allclose(reactive[0, 0], log[0, 0], atol=1e-6)  # ego keeps going: log replay
    np.testing.assert_allclose(reactive[0, 1, 1], log[0, 0, 1], atol=1e-6)  # other lane: unaffected
    follower_x = reactive[0, 1, 0, :, 0]
    gap = ego[0, 1, :, 0] - follower_x - 4.8
    assert gap.min() > 0.5 and reactive[0, 1, 0, -1, 3] < 3.0  # braked behind the stopping ego


def test_smooth_plans_are_driven_smoothly_and_start_from_the_logged_state():
    """The tracker adds no jerk: a smooth plan consistent with the t0 state is driven within HC."""
    from autoscale_core.sim.scoring import ScorerConfig, comfort_ok

    batch = straight_road(3, ego_speed=8.0)
    batch.ego[1, :, 0] = 8.0 * batch.times + 0.4 * batch.times**2  # gently accelerating (0.8 m/s²)
    batch.ego[1, :, 3] = 8.0 + 0.8 * batch.times
    batch.ego[1, :, 4] = 0.8
    plans = batch.expert_trajectory()[:, None].astype(np.float64)
    # Scene 2: cruise, then brake with a 1 m/s³ ramp to 1.5 m/s² (a comfortable stop approach).
    fine = np.arange(0, 401) * 0.01
    a_fine = -np.minimum(1.0 * fine, 1.5)
    v_fine = 8.0 + np.concatenate([[0], np.cumsum(0.5 * (a_fine[1:] + a_fine[:-1]) * 0.01)])
    x_fine = np.concatenate([[0], np.cumsum(0.5 * (v_fine[1:] + v_fine[:-1]) * 0.01)])
    plans[2, 0, :, 0] = x_fine[50::50]
    states = simulate_ego(batch, plans)
    np.testing.assert_allclose(states[:, 0, 0, 3], 8.0)
    assert states[1, 0, 0, 4] == pytest.approx(0.8, abs=0.05)  # starts from the logged acceleration
    assert comfort_ok(states, 0.1, ScorerConfig())[:, 0].all()
    jerk = np.diff(states[:, 0, :-1, 4], axis=-1) / 0.1
    assert np.abs(jerk).max() < 2.5
    err = np.linalg.norm(states[:, 0, 5::5, :2] - plans[:, 0, :, :2], axis=-1)
    assert err.max() < 0.3
