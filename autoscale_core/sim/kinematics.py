"""Ego kinematics: track a planned trajectory with a controller and a kinematic bicycle model.

A plan is a few poses (NAVSIM: 8 poses at 0.5 s). Scores must reflect what a car could drive, and
a smooth plan must be driven smoothly (history comfort, HC, judges the driven states), so:

* **Longitudinal** — a finite-horizon LQ controller (receding horizon) on the travelled arc
  length, speed and previous acceleration: at every 10 Hz step, the acceleration sequence that
  best reaches the plan's arc lengths at the plan's remaining pose times while penalising jerk,
  of which the first is applied. The car starts from the ego's logged t0 speed *and*
  acceleration. The optimum is linear in the errors with time-varying gains that are the same for
  every trajectory (:func:`_lq_gains`, computed once), so a step is one small matrix product over
  the batch. The acceleration limits, an actuator jerk limit and "no reversing" are applied while
  integrating and fed back through the measured state.
* **Lateral** — pure pursuit on a look-ahead point of a C2 cubic-spline reference through the t0
  position and the planned positions (clamped to the t0 velocity), with the steering angle
  initialised from the logged t0 yaw rate and rate-limited.
* A kinematic bicycle model integrates at ``dt_sim`` (10 Hz).

Everything is vectorized over scenes × candidates.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.interpolate import CubicSpline

from ..scene import SceneBatch, wrap_angle
from . import kernels


@dataclass(frozen=True)
class EgoModel:
    """Vehicle and controller constants. Units: m, s, rad, m/s²."""

    wheelbase: float = 2.9
    max_steer: float = 0.6  # rad, ~34°
    max_steer_rate: float = 1.0  # rad/s, keeps yaw acceleration physical
    max_accel: float = 4.0  # above HC's 2.4 so that aggressive plans show up in HC
    max_decel: float = 9.0  # physical braking limit, above HC's 4.05
    max_jerk: float = 15.0  # m/s³ actuator limit, above HC's 4.13: harsh plans still show up
    jerk_weight: float = 0.02  # LQ cost of jerk (m²/s⁵ per (m/s³)²) vs squared arc-length error (m²)
    lookahead_time: float = 0.6  # pure-pursuit look-ahead along the reference (s)
    min_lookahead: float = 1.5  # m; below this the steering holds (stopped plans)
    standing_speed: float = 0.1  # m/s: plan intervals slower than this on average stand still


def plan_reference(
    start: np.ndarray, trajectories: np.ndarray, pose_dt: float, times: np.ndarray, positions_only: bool = False
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Cubic-spline reference through the start position and planned positions.

    Args:
        start: (..., 4) x, y, heading, speed at t0.
        trajectories: (..., F, 3) planned poses at t = pose_dt … F·pose_dt.
        times: (K,) query times (s); beyond the horizon the end velocity is extrapolated.

    Returns:
        positions, velocities, accelerations, each (..., K, 2) (with ``positions_only``, the
        last two are None and not computed).
    """
    F = trajectories.shape[-2]
    lead = trajectories.shape[:-2]
    # The spline is linear in its data (start velocity, start and planned positions), so each
    # output is a fixed (K, F+2) weight matrix (cached per F, step and query times) times the
    # data: one matrix product for all trajectories instead of a scipy spline per call. Same
    # spline as before; values agree with evaluating it directly to ~1e-15 m (rounding order).
    data = np.empty((F + 2,) + lead + (2,))  # rows: start velocity, start position, planned positions
    data[0, ..., 0] = start[..., 3] * np.cos(start[..., 2])
    data[0, ..., 1] = start[..., 3] * np.sin(start[..., 2])
    data[1] = start[..., :2]
    data[2:] = np.moveaxis(trajectories[..., :2], -2, 0)
    flat = data.reshape(F + 2, -1)
    key = (F, float(pose_dt), tuple(np.asarray(times, dtype=np.float64).tolist()))

    def apply(nu: int) -> np.ndarray:
        out = (_spline_weights(*key, nu) @ flat).reshape((len(times),) + lead + (2,))
        return np.moveaxis(out, 0, -2)  # (..., K, 2)

    pos = apply(0)
    vel = acc = None
    if not positions_only:
        vel, acc = apply(1), apply(2)
    return pos, vel, acc


@lru_cache(maxsize=32)
def _spline_weights(num_poses: int, pose_dt: float, times: tuple, nu: int) -> np.ndarray:
    """Weights (K, F+2) mapping [start velocity, start position, F planned positions] to the
    ``nu``-th derivative of the clamped ("not-a-knot" at the end) cubic spline at ``times`` (K,)
    s; beyond the horizon the end velocity is extrapolated (position grows linearly, velocity
    is the end velocity, acceleration 0). Built by evaluating scipy's spline on unit data."""
    F = num_poses
    horizon = F * pose_dt
    knots = np.arange(F + 1) * pose_dt
    unit = np.eye(F + 2)
    spline = CubicSpline(knots, unit[1:], axis=0, bc_type=((1, unit[0]), "not-a-knot"))
    t = np.asarray(times, dtype=np.float64)
    inside = np.clip(t, 0.0, horizon)
    extra = (t - inside)[:, None]  # > 0 beyond the horizon: straight, constant velocity
    end_vel = spline(np.array([horizon]), 1)  # (1, F+2)
    if nu == 0:
        w = spline(inside) + end_vel * extra
    elif nu == 1:
        w = np.where(extra > 0, end_vel, spline(inside, 1))
    else:
        w = np.where(extra > 0, 0.0, spline(inside, 2))
    return np.ascontiguousarray(w)


@lru_cache(maxsize=32)
def _lq_gains(num_steps: int, pose_every: int, num_targets: int, dt: float, jerk_weight: float):
    """Time-varying finite-horizon LQ feedback for the longitudinal controller.

    State: travelled arc length s, speed v, previous acceleration; input: the acceleration a_k held
    for one step (v_{k+1} = v_k + a_k·dt, s_{k+1} = s_k + (v_k + v_{k+1})·dt/2). At step k the
    controller minimises the squared arc-length error at the remaining target poses (pose i at
    step ``pose_every``·(i+1)) + ``jerk_weight``·Σ jerk²·dt over the rest of the horizon, the first
    jerk measured from the previous acceleration, and applies the first acceleration (receding
    horizon, so limits and "no reversing" are fed back). The optimum is linear:
    ``a_k = g[k] · (s_target - s_k - v_k·(t_pose - t_k)) + q[k]·a_{k-1}``.

    Returns g (num_steps, num_targets), q (num_steps,).
    """
    total = pose_every * num_targets
    n = pose_every * (np.arange(num_targets) + 1)  # step index of each target pose
    g = np.zeros((num_steps, num_targets))
    q = np.zeros(num_steps)
    for k in range(num_steps):
        m = np.arange(k, total)  # remaining inputs
        ahead = n > k
        G = np.where(m[None, :] < n[ahead, None], dt**2 * (n[ahead, None] - m[None, :] - 0.5), 0.0)
        D = (np.eye(len(m)) - np.eye(len(m), k=-1)) / dt
        H = G.T @ G + jerk_weight * dt * D.T @ D
        g[k, ahead] = np.linalg.solve(H, G.T)[0]
        q[k] = np.linalg.solve(H, jerk_weight * D.T[:, 0])[0]
    return g, q


def _start_state(batch: SceneBatch, model: EgoModel) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(S, 4) x, y, heading, speed at t0; (S,) acceleration and steering angle consistent with the log.

    Steering comes from the logged yaw rate over the last history interval (kinematic bicycle:
    tan δ = L·ω / v); 0 when standing or without history.
    """
    h = batch.history_steps
    start = batch.ego[:, h, :4].astype(np.float64)
    accel = np.clip(batch.ego[:, h, 4].astype(np.float64), -model.max_decel, model.max_accel)
    if h == 0:
        return start, accel, np.zeros(len(batch))
    yaw_rate = wrap_angle(batch.ego[:, h, 2].astype(np.float64) - batch.ego[:, h - 1, 2]) / batch.dt
    speed = start[:, 3]
    steer = np.where(speed > 1.0, np.arctan(model.wheelbase * yaw_rate / np.maximum(speed, 1.0)), 0.0)
    return start, accel, np.clip(steer, -model.max_steer, model.max_steer)


def simulate_ego(
    batch: SceneBatch, trajectories: np.ndarray, dt_sim: float = 0.1, model: EgoModel = EgoModel()
) -> np.ndarray:
    """Drive each planned trajectory from the ego's logged t0 state.

    (:func:`simulate_ego_trig` also returns the cosine and sine of the headings.)

    Args:
        batch: S scenes (the ego's t0 state is ``batch.ego[:, batch.history_steps]``: position,
            heading, speed and acceleration; the steering angle follows from the logged yaw rate).
        trajectories: (S, C, F, 3) poses x, y, heading at t = dt … F·dt (``dt = batch.dt``) in the
            scene frame.
        dt_sim: integration step (s).

    Returns:
        (S, C, K+1, 5) float64 states x, y, heading, speed, accel at t = 0, dt_sim, …, F·dt
        (K = F·dt / dt_sim; 41 states for NAVSIM's 4 s). ``accel`` at step k is the acceleration
        applied from k to k+1 (the last entry repeats the previous one).
    """
    return simulate_ego_trig(batch, trajectories, dt_sim, model)[0]


def simulate_ego_trig(
    batch: SceneBatch, trajectories: np.ndarray, dt_sim: float = 0.1, model: EgoModel = EgoModel()
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray]]:
    """:func:`simulate_ego`, plus (cos, sin) of the state headings, each (S·C, K+1), computed
    in the same compiled pass (same values as ``np.cos`` / ``np.sin`` of ``states[..., 2]``)."""
    traj = np.asarray(trajectories, dtype=np.float64)
    if traj.ndim != 4 or traj.shape[-1] != 3 or traj.shape[0] != len(batch):
        raise ValueError(f"trajectories must be (S={len(batch)}, C, F, 3), got {traj.shape}")
    S, C, F, _ = traj.shape
    every = int(round(batch.dt / dt_sim))
    if every < 1 or abs(every * dt_sim - batch.dt) > 1e-9:
        raise ValueError(f"dt_sim={dt_sim} must divide the scene step dt={batch.dt}")
    num_steps = F * every
    start0, accel0, steer0 = _start_state(batch, model)
    start = np.broadcast_to(start0[:, None, :], (S, C, 4))
    # One spline evaluation for both the 10 Hz reference (arc length) and the look-ahead points
    # (look-ahead rounded to whole steps).
    la_steps = int(round(model.lookahead_time / dt_sim))
    la_pos_all, _, _ = plan_reference(start, traj, batch.dt, np.arange(num_steps + 1 + la_steps) * dt_sim, positions_only=True)
    B = S * C
    ref_x = np.ascontiguousarray(la_pos_all[..., 0]).reshape(B, -1)  # (B, K+1+la_steps)
    ref_y = np.ascontiguousarray(la_pos_all[..., 1]).reshape(B, -1)
    start_b = np.ascontiguousarray(start).reshape(B, 4)

    # Longitudinal: planned arc length (the larger of the chord and the spline's 10 Hz chords,
    # exact to mm on curves where 0.5 s chords are not; intervals slower than standing_speed
    # count as standing, so position noise of a parked car does not make it creep) → LQ
    # accelerations.
    arc_target = np.empty((B, F))
    kernels.tracker_arc_target(start_b[:, 0].copy(), start_b[:, 1].copy(), traj.reshape(B, F, 3), ref_x, ref_y,
                               every, model.standing_speed * batch.dt, arc_target)
    gain, q = _lq_gains(num_steps, every, F, dt_sim, model.jerk_weight)
    t_target = np.arange(1, F + 1) * batch.dt

    # The per-step loop (LQ speed feedback, pure pursuit, bicycle integration) runs compiled,
    # one trajectory at a time (:func:`.kernels.tracker_run`); the gain product there is a
    # plain loop and arctan/tan are the C library's, so states may differ from a numpy
    # evaluation in the last bit (~1e-15 m).
    states = np.empty((S, C, num_steps + 1, 5))
    cos_h, sin_h = np.empty((B, num_steps + 1)), np.empty((B, num_steps + 1))
    kernels.tracker_run(
        start_b[:, 0].copy(), start_b[:, 1].copy(), start_b[:, 2].copy(), start_b[:, 3].copy(),
        np.repeat(accel0, C), np.repeat(steer0, C), arc_target,
        t_target, np.ascontiguousarray(gain), np.ascontiguousarray(q, dtype=np.float64), ref_x, ref_y,
        dt_sim, model.wheelbase, model.min_lookahead**2, model.max_jerk * dt_sim, model.max_decel,
        model.max_accel, model.max_steer, model.max_steer_rate * dt_sim,
        states.reshape(B, num_steps + 1, 5), cos_h, sin_h, la_steps)
    return states, (cos_h, sin_h)
