"""Ego kinematics: track a planned trajectory with a controller and a kinematic bicycle model.

A plan is a few poses (NAVSIM: 8 poses at 0.5 s). Scores must reflect what a car could drive, so
the poses are turned into a smooth C2 reference (a cubic spline through the ego's t0 position and
the planned positions, clamped to the ego's t0 velocity), which a pure-pursuit steering controller
and a feed-forward + feedback speed controller track while a kinematic bicycle model integrates at
``dt_sim`` (10 Hz). Everything is vectorized over scenes × candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.interpolate import CubicSpline

from ..scene import SceneBatch


@dataclass(frozen=True)
class EgoModel:
    """Vehicle and controller constants. Units: m, s, rad, m/s²."""

    wheelbase: float = 2.9
    max_steer: float = 0.6  # rad, ~34°
    max_steer_rate: float = 1.0  # rad/s, keeps yaw acceleration physical
    max_accel: float = 4.0  # above HC's 2.4 so that aggressive plans show up in HC
    max_decel: float = 9.0  # physical braking limit, above HC's 4.05
    lookahead_time: float = 0.6  # pure-pursuit look-ahead along the reference (s)
    min_lookahead: float = 1.5  # m; below this the steering holds (stopped plans)
    k_speed: float = 2.0  # 1/s, speed-error feedback
    k_position: float = 0.8  # 1/s², along-track position-error feedback
    hold_speed: float = 0.2  # m/s: below this with a (near) standing reference the car holds


def plan_reference(
    start: np.ndarray, trajectories: np.ndarray, pose_dt: float, times: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cubic-spline reference through the start position and planned positions.

    Args:
        start: (..., 4) x, y, heading, speed at t0.
        trajectories: (..., F, 3) planned poses at t = pose_dt … F·pose_dt.
        times: (K,) query times (s); beyond the horizon the end velocity is extrapolated.

    Returns:
        positions, velocities, accelerations, each (..., K, 2).
    """
    F = trajectories.shape[-2]
    horizon = F * pose_dt
    knots = np.arange(F + 1) * pose_dt
    points = np.concatenate([start[..., None, :2], trajectories[..., :2]], axis=-2)
    v0 = np.stack([start[..., 3] * np.cos(start[..., 2]), start[..., 3] * np.sin(start[..., 2])], -1)
    axis = points.ndim - 2
    spline = CubicSpline(knots, points, axis=axis, bc_type=((1, v0), "not-a-knot"))
    inside = np.clip(times, 0.0, horizon)
    pos, vel, acc = spline(inside), spline(inside, 1), spline(inside, 2)
    extra = (times - inside)[:, None]  # > 0 beyond the horizon: straight, constant velocity
    if np.any(extra > 0):
        end_vel = spline(np.array([horizon]), 1)  # (..., 1, 2)
        pos = pos + end_vel * extra
        vel = np.where(extra > 0, end_vel, vel)
        acc = np.where(extra > 0, 0.0, acc)
    return pos, vel, acc


def _travel_direction(start: np.ndarray, traj: np.ndarray, pose_dt: float, times: np.ndarray) -> np.ndarray:
    """(..., K, 2) unit vectors of the planned heading, linearly interpolated in time."""
    headings = np.concatenate([start[..., None, 2], traj[..., 2]], -1)  # (..., F+1)
    headings = np.unwrap(headings, axis=-1)
    u = np.clip(times / pose_dt, 0, headings.shape[-1] - 1)
    i0 = np.minimum(np.floor(u).astype(int), headings.shape[-1] - 2)
    w = u - i0
    h = headings[..., i0] * (1 - w) + headings[..., i0 + 1] * w
    return np.stack([np.cos(h), np.sin(h)], -1)


def simulate_ego(
    batch: SceneBatch, trajectories: np.ndarray, dt_sim: float = 0.1, model: EgoModel = EgoModel()
) -> np.ndarray:
    """Drive each planned trajectory from the ego's logged t0 state.

    Args:
        batch: S scenes (the ego's t0 state is ``batch.ego[:, batch.history_steps]``).
        trajectories: (S, C, F, 3) poses x, y, heading at t = dt … F·dt (``dt = batch.dt``) in the
            scene frame.
        dt_sim: integration step (s).

    Returns:
        (S, C, K+1, 5) float64 states x, y, heading, speed, accel at t = 0, dt_sim, …, F·dt
        (K = F·dt / dt_sim; 41 states for NAVSIM's 4 s). ``accel`` at step k is the acceleration
        applied from k to k+1 (the last entry repeats the previous one).
    """
    traj = np.asarray(trajectories, dtype=np.float64)
    if traj.ndim != 4 or traj.shape[-1] != 3 or traj.shape[0] != len(batch):
        raise ValueError(f"trajectories must be (S={len(batch)}, C, F, 3), got {traj.shape}")
    S, C, F, _ = traj.shape
    num_steps = int(round(F * batch.dt / dt_sim))
    start = batch.ego[:, batch.history_steps, :4].astype(np.float64)  # (S, 4)
    start = np.broadcast_to(start[:, None, :], (S, C, 4))
    times = np.arange(num_steps + 1) * dt_sim
    ref_pos, ref_vel, ref_acc = plan_reference(start, traj, batch.dt, times)
    la_pos, _, _ = plan_reference(start, traj, batch.dt, times + model.lookahead_time)
    # Signed speed along the plan's direction of travel: a spline through a stop can swing
    # backwards a little; the car must not chase that (no reversing), it just holds.
    direction = _travel_direction(start, traj, batch.dt, times)
    ref_speed = np.maximum((ref_vel * direction).sum(-1), 0.0)  # (S, C, K+1)
    # Plan intervals that stand still (< 0.1 m/s on average) are held exactly: no spline wiggle.
    points = np.concatenate([start[..., None, :2], traj[..., :2]], -2)
    seg_speed = np.linalg.norm(np.diff(points, axis=-2), axis=-1) / batch.dt  # (S, C, F)
    interval = np.minimum((times / batch.dt + 1e-9).astype(int), F - 1)
    standing = seg_speed[..., interval] < 0.1
    ref_speed = np.where(standing, 0.0, ref_speed)
    ref_tan_acc = np.where(ref_speed > 0.1, (ref_acc * direction).sum(-1), 0.0)
    ref_pos = np.where(standing[..., None], points[..., interval, :], ref_pos)

    states = np.zeros((S, C, num_steps + 1, 5))
    x, y, h, v = (start[..., i].copy() for i in range(4))
    steer = np.zeros((S, C))
    L = model.wheelbase
    for k in range(num_steps):
        states[:, :, k, :4] = np.stack([x, y, h, v], -1)
        c, s = np.cos(h), np.sin(h)
        # Longitudinal: feed-forward spline acceleration + speed and along-track feedback.
        along = (ref_pos[:, :, k, 0] - x) * c + (ref_pos[:, :, k, 1] - y) * s
        accel = ref_tan_acc[:, :, k] + model.k_speed * (ref_speed[:, :, k] - v) + model.k_position * along
        # Stop-and-hold: stopped and asked to stay (nearly) stopped → do not creep forward.
        hold = (ref_speed[:, :, k] < model.hold_speed) & (v < model.hold_speed)
        accel = np.where(hold, np.minimum(accel, 0.0), accel)
        accel = np.clip(accel, -model.max_decel, model.max_accel)
        # Lateral: pure pursuit on the look-ahead point of the reference.
        dx = la_pos[:, :, k, 0] - x
        dy = la_pos[:, :, k, 1] - y
        lx, ly = dx * c + dy * s, -dx * s + dy * c
        dist2 = lx**2 + ly**2
        moving = dist2 > model.min_lookahead**2
        curvature = np.where(moving, 2.0 * ly / np.maximum(dist2, 1e-9), 0.0)
        target = np.where(moving, np.arctan(L * curvature), steer)
        target = np.clip(target, -model.max_steer, model.max_steer)
        max_change = model.max_steer_rate * dt_sim
        steer = steer + np.clip(target - steer, -max_change, max_change)
        # Kinematic bicycle (reference point = box centre), midpoint integration; no reversing.
        v_new = np.maximum(v + accel * dt_sim, 0.0)
        v_mid = 0.5 * (v + v_new)
        h_new = h + v_mid * np.tan(steer) / L * dt_sim
        h_mid = 0.5 * (h + h_new)
        x = x + v_mid * np.cos(h_mid) * dt_sim
        y = y + v_mid * np.sin(h_mid) * dt_sim
        states[:, :, k, 4] = (v_new - v) / dt_sim
        h, v = h_new, v_new
    states[:, :, num_steps, :4] = np.stack([x, y, h, v], -1)
    states[:, :, num_steps, 4] = states[:, :, num_steps - 1, 4] if num_steps > 0 else 0.0
    states[..., 2] = np.pi - np.mod(np.pi - states[..., 2], 2 * np.pi)
    return states
