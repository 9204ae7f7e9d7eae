"""Pseudo-expert labels for perturbed scenes (SimScale): recovery, planner and rewards-only.

* ``recovery``: a smooth trajectory back to the reference path. The reference is the scene's own
  ego future as written by :func:`~autoscale_core.synthetic.perturb.perturb_scenes` (the
  parent's logged future, in the new frame). In the route's Frenet frame the lateral offset to the
  reference decays with a quintic over a distance ``D`` travelled (distance, not time, so a
  nearly stopped ego is not asked to move sideways); along the route an ego pushed ahead of the
  reference converges back in position and speed, one pushed behind in speed only.
* ``planner``: the rule planner's best proposal in the new state
  (:class:`autoscale_core.sim.planner.RulePlanner`).
* ``rewards_only``: EPDMS sub-scores of every trajectory of a vocabulary in the new state
  (:func:`autoscale_core.sim.scoring.score_trajectories`), for scoring-based planners.

Labels are (S, F, 5) ego future states x, y, heading, speed, accel at the scene's future steps;
:func:`apply_label` writes them into ``ego[:, history_steps + 1:]``.
"""

from __future__ import annotations

import numpy as np

from ..scene import SceneBatch, wrap_angle
from ._geometry import RouteFrame, quintic, quintic_rate

EXPERTS = ("recovery", "planner")
SUB_SCORES = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "epdms", "pdms")


def recovery_label(
    batch: SceneBatch,
    lateral_time: float = 2.0,
    longitudinal_time: float = 6.0,
    min_recovery_distance: float = 10.0,
    fine_dt: float = 0.1,
) -> np.ndarray:
    """(S, F, 5) recovery trajectories from each scene's t0 state back to its reference future.

    Args:
        batch: perturbed scenes whose ego future is the reference to return to.
        lateral_time: the lateral offset closes over ``max(lateral_time · mean speed,
            min_recovery_distance)`` m of travel.
        longitudinal_time: seconds over which the along-route motion converges. An ego that
            starts *ahead* of the reference (pushed faster) converges in position and speed
            (quintic Hermite), so it falls back behind a leader the logged ego was safe from; an
            ego behind converges in speed only (it need not catch up).
        fine_dt: integration step (s) for the along-route position.
    """
    for name, value in (("lateral_time", lateral_time), ("longitudinal_time", longitudinal_time)):
        if not (0.5 <= value <= 10.0):
            raise ValueError(f"{name} {value} must lie in [0.5, 10] s")
    t0, num_f, dt = batch.history_steps, batch.future_steps, batch.dt
    ego = batch.ego.astype(np.float64)
    ref = ego[:, t0 + 1 :]  # (S, F, 5)
    route = RouteFrame(batch.route_polyline, batch.route_valid)
    s_ref, l_ref = route.project(ref[..., :2])
    (s0,), (l0,) = (a.T for a in route.project(ego[:, t0 : t0 + 1, :2]))
    # The reference at t0 is not stored (the perturbation replaced it): extrapolate linearly.
    ref_times = np.arange(1, num_f + 1) * dt
    knots = np.concatenate([[0.0], ref_times])
    s_ref0 = _extrapolate_to_zero(s_ref)
    l_ref0 = _extrapolate_to_zero(l_ref)
    v_ref0 = np.maximum(_extrapolate_to_zero(ref[..., 3]), 0.0)
    v0 = ego[:, t0, 3]

    fine_t = np.arange(1, int(round(num_f * dt / fine_dt)) + 1) * fine_dt  # (K,)
    v_ref_fine = _interp_rows(fine_t, knots, np.c_[v_ref0, ref[..., 3]])
    tau = (fine_t / longitudinal_time)[None]
    ahead = (s0 - s_ref0) > 0
    # Ahead: velocity offset of the Hermite blend closing position gap ds and speed gap dv.
    ds, dv = (s0 - s_ref0)[:, None], (v0 - v_ref0)[:, None]
    hermite = ds * _h0_rate(tau) / longitudinal_time + dv * _h1_rate(tau)
    speed_only = dv * (1.0 - quintic(tau))
    speed = np.maximum(v_ref_fine + np.where(ahead[:, None], hermite, speed_only), 0.0)  # (S, K)
    prev = np.c_[v0, speed[:, :-1]]
    s_fine = s0[:, None] + np.cumsum(0.5 * (prev + speed) * fine_dt, axis=1)
    accel = (speed - prev) / fine_dt

    every = int(round(dt / fine_dt))
    s = s_fine[:, every - 1 :: every]  # (S, F)
    moved = speed[:, : max(1, int(round(lateral_time / fine_dt)))].mean(1)
    distance = np.maximum(lateral_time * moved, min_recovery_distance)
    sigma = (s - s0[:, None]) / distance[:, None]
    delta_l = (l0 - l_ref0)[:, None]
    l = l_ref + delta_l * (1.0 - quintic(sigma))
    xy = route.point(s, l)
    # Heading: the reference heading, turned by the route's bend between the reference and the
    # label positions and by the slope of the closing offset (dl/ds).
    slope = np.arctan(-delta_l * quintic_rate(sigma) / distance[:, None])
    heading = ref[..., 2] + wrap_angle(route.heading(s) - route.heading(s_ref)) + slope
    label = np.empty((len(batch), num_f, 5))
    label[..., :2] = xy
    label[..., 2] = wrap_angle(heading)
    label[..., 3] = speed[:, every - 1 :: every]
    label[..., 4] = accel[:, every - 1 :: every]
    return label


def _h0_rate(tau: np.ndarray) -> np.ndarray:
    """d/dtau of the quintic Hermite basis H0 = 1 − 10τ³ + 15τ⁴ − 6τ⁵ (position 1 → 0)."""
    t = np.clip(tau, 0.0, 1.0)
    return -30.0 * t**2 + 60.0 * t**3 - 30.0 * t**4


def _h1_rate(tau: np.ndarray) -> np.ndarray:
    """d/dtau of H1 = τ − 6τ³ + 8τ⁴ − 3τ⁵ (unit initial rate → 0), already in velocity units."""
    t = np.clip(tau, 0.0, 1.0)
    return 1.0 - 18.0 * t**2 + 32.0 * t**3 - 15.0 * t**4


def _extrapolate_to_zero(values: np.ndarray) -> np.ndarray:
    """Linear extrapolation of a (S, F) series sampled at t = dt, 2dt, … back to t = 0."""
    if values.shape[1] < 2:
        return values[:, 0].copy()
    return 2.0 * values[:, 0] - values[:, 1]


def _interp_rows(x: np.ndarray, xp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """np.interp of each row of fp (S, P) at x (K,) with shared knots xp (P,)."""
    idx = np.clip(np.searchsorted(xp, x, side="right") - 1, 0, len(xp) - 2)
    w = np.clip((x - xp[idx]) / (xp[idx + 1] - xp[idx]), 0.0, 1.0)
    return fp[:, idx] * (1.0 - w) + fp[:, idx + 1] * w


def planner_label(batch: SceneBatch) -> np.ndarray:
    """(S, F, 5) the rule planner's best proposal, with speed/accel from the kinematic tracker."""
    from ..sim.planner import RulePlanner

    plan = np.asarray(RulePlanner().plan(batch), dtype=np.float64)  # (S, F, 3)
    return states_from_poses(batch, plan)


def states_from_poses(batch: SceneBatch, poses: np.ndarray) -> np.ndarray:
    """(S, F, 3) poses → (S, F, 5) by adding the speed/accel the kinematic tracker drives."""
    from ..sim.kinematics import simulate_ego

    states = simulate_ego(batch, poses[:, None])[:, 0]  # (S, K+1, 5) at 10 Hz
    every = int(round(batch.dt / 0.1))
    sampled = states[:, every::every][:, : poses.shape[1]]
    out = np.empty(poses.shape[:2] + (5,))
    out[..., :3] = poses
    out[..., 3:] = sampled[..., 3:]
    return out


def make_label(batch: SceneBatch, expert: str, **kwargs) -> np.ndarray:
    """(S, F, 5) label of kind ``expert`` ("recovery" or "planner")."""
    if expert == "recovery":
        return recovery_label(batch, **kwargs)
    if expert == "planner":
        return planner_label(batch)
    raise ValueError(f"unknown pseudo-expert {expert!r}; use one of {EXPERTS}")


def apply_label(batch: SceneBatch, label: np.ndarray, expert: str | None = None) -> SceneBatch:
    """A copy of ``batch`` whose ego future is ``label`` (S, F, 5); sets ``meta["expert"]``."""
    ego = batch.ego.copy()
    ego[:, batch.history_steps + 1 :] = label.astype(np.float32)
    meta = dict(batch.meta)
    if expert is not None:
        meta["expert"] = np.full(len(batch), expert, dtype=object)
    return batch.replace(ego=ego, meta=meta)


def rewards_only(
    batch: SceneBatch, vocabulary: np.ndarray | None = None, *, reactive: bool = True, chunk: int = 64
) -> dict[str, np.ndarray]:
    """EPDMS sub-scores of a trajectory vocabulary in each scene.

    Args:
        batch: S (perturbed) scenes.
        vocabulary: (C, F, 3) trajectories in the scene frame; default: the planning area's
            parametric vocabulary (:func:`autoscale_core.planning.vocabulary.build_vocabulary`).
        reactive: score against reactive (IDM) agents.

    Returns:
        ``{"vocabulary": (C, F, 3), "<sub-score>": (S, C) float32 for each of SUB_SCORES}``.
    """
    from ..sim.scoring import score_trajectories

    if vocabulary is None:
        from ..planning.vocabulary import build_vocabulary

        vocabulary = build_vocabulary(method="parametric", size=256)
    vocabulary = np.asarray(vocabulary, dtype=np.float32)
    if vocabulary.ndim != 3 or vocabulary.shape[1:] != (batch.future_steps, 3):
        raise ValueError(f"vocabulary must be (C, {batch.future_steps}, 3), got {vocabulary.shape}")
    parts: dict[str, list[np.ndarray]] = {k: [] for k in SUB_SCORES}
    for start in range(0, len(batch), chunk):
        sub = batch.subset(slice(start, start + chunk))
        traj = np.broadcast_to(vocabulary[None], (len(sub),) + vocabulary.shape)
        result = score_trajectories(sub, np.ascontiguousarray(traj), reactive=reactive).as_dict()
        for k in SUB_SCORES:
            parts[k].append(np.asarray(result[k], dtype=np.float32))
    out = {k: np.concatenate(v) for k, v in parts.items()}
    out["vocabulary"] = vocabulary
    return out


def save_rewards(path, scene_ids, rewards: dict[str, np.ndarray]) -> str:
    """Write :func:`rewards_only` output with the scenes' ids to ``path`` (.npz, atomic rename)."""
    import os
    import tempfile

    ids = np.asarray([str(s) for s in scene_ids])
    for key in SUB_SCORES:
        if key in rewards and len(rewards[key]) != len(ids):
            raise ValueError(f"rewards[{key!r}] has {len(rewards[key])} rows for {len(ids)} scene ids")
    path = os.fspath(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=os.path.dirname(os.path.abspath(path)), suffix=".npz")
    with os.fdopen(fd, "wb") as f:
        np.savez_compressed(f, scene_id=ids, **{k: np.asarray(v) for k, v in rewards.items()})
    os.replace(tmp, path)
    return path


def load_rewards(path) -> dict[str, np.ndarray]:
    """Read a file written by :func:`save_rewards` (keys: scene_id, vocabulary, sub-scores)."""
    with np.load(path, allow_pickle=False) as data:
        return {k: data[k] for k in data.files}
