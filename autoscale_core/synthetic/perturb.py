"""SimScale-style ego perturbation: push the ego off its logged path and re-centre the scene.

The deviation happens over the last ``window`` seconds of the history, [t0 − H, t0]: the ego
leaves its logged path at t0 − H and blends (quintic, zero lateral velocity/acceleration at both
ends) into a new start state at t0 that is shifted ``lateral`` m along the route normal, drives
``speed`` m/s faster/slower, and is yawed by ``heading`` rad. The shift is applied in the route's
Frenet frame (s along, l left of the route polyline), so curved roads bend the offset with them.
The synthetic scene keeps the parent's timeline (t0 in seconds since the log start is the
same); its frame is re-centred on the new t0 ego pose and ``global_pose`` is updated.

Until a pseudo-expert label replaces it (see :mod:`autoscale_core.synthetic.labels`), the ego
future of a perturbed scene still holds the parent's logged future, expressed in the new frame:
it is the reference the recovery label converges back to. The agents keep their logged
(non-reactive) futures until :func:`autoscale_core.synthetic.generate.resimulate_agents` runs.

Candidates are rejected, and counted per reason, when the new history is kinematically
implausible (``kinematics``: heading more than ``max_heading_deviation`` off the route, e.g.
a sideways shift while nearly stopped), the ego box at t0 leaves the drivable area
(``off_road``), the ego centre at t0 is in no lane corridor aligned with its heading and on no
drivable polygon (``wrong_way``, e.g. pushed into the oncoming lane; switch off with
``reject_wrong_way=False``), or the ego box overlaps an agent at any step of the window
(``collision``), or, projecting the ego and the agents ahead of or beside it at constant
velocity from t0, they would overlap within ``ttc_horizon`` seconds (``unsafe``: a state no
expert could recover from, e.g. pushed fast onto a stopped car or into oncoming traffic; agents
behind are left out because reactive followers brake). Each rejected candidate is counted once, under the first failing reason in
that order.
"""

from __future__ import annotations

import zlib
from dataclasses import asdict, dataclass, field

import numpy as np
from scipy.special import ndtri

from ..geometry import box_corners, boxes_overlap_sparse, points_in_polygons
from ..scene import SceneBatch, wrap_angle
from ._geometry import (
    RouteFrame,
    compose_global,
    in_aligned_lane,
    nearby_lanes,
    on_lane_corridor,
    quintic,
    quintic_integral,
    quintic_rate,
    transform_headings,
    transform_points,
)

REJECT_REASONS = ("kinematics", "off_road", "wrong_way", "collision", "unsafe")
LATERAL_DISTRIBUTIONS = ("uniform", "normal", "symmetric")
SPEED_MODES = ("delta", "factor")
MAX_ABS_LATERAL = 5.0  # m; beyond this the "perturbation" is a different lane two lanes away
MAX_ABS_SPEED_DELTA = 10.0  # m/s
MAX_HEADING_JITTER = 0.5  # rad (std)


@dataclass(frozen=True)
class PerturbationConfig:
    """How start states are perturbed.

    Attributes:
        lateral_range: (low, high) lateral offset along the route normal, m (left +).
        lateral_distribution: "uniform" over the range; "normal" with mean at the range centre
            and std = range/4, clipped; "symmetric": magnitude uniform in
            [max(0, low), high] (both ≥ 0) with a random sign — guarantees a minimum push.
        speed_mode: "delta" (speed_range in m/s added) or "factor" (speed_range multiplies the
            t0 speed; the change is applied as the equivalent delta).
        speed_range: (low, high) m/s for "delta", unitless factors for "factor".
        heading_jitter: std of an extra yaw at t0, rad (clipped to 3 std).
        window: H, seconds of history over which the ego deviates; a multiple of the scene dt
            and at most the history length.
        max_attempts: candidates sampled per requested synthetic scene; the first feasible
            ones are kept.
        collision_margin: m added around the ego box for the collision check.
        offroad_margin: m of tolerance for the ego corners at t0 outside the drivable area.
        max_heading_deviation: rad; larger heading-vs-route angles in the window are rejected.
        reject_wrong_way: reject start states in a lane of the opposite direction.
        ttc_horizon: s of constant-velocity look-ahead for the ``unsafe`` check (0 disables).
        seed: base seed; each parent draws from its own stream (seed, scene_id, round), so the
            result does not depend on batch order or chunking.
    """

    lateral_range: tuple[float, float] = (-2.0, 2.0)
    lateral_distribution: str = "symmetric"
    speed_mode: str = "delta"
    speed_range: tuple[float, float] = (-3.0, 3.0)
    heading_jitter: float = 0.05
    window: float = 2.0
    max_attempts: int = 3
    collision_margin: float = 0.1
    offroad_margin: float = 0.0
    max_heading_deviation: float = 0.6
    reject_wrong_way: bool = True
    ttc_horizon: float = 1.5
    seed: int = 0

    def validate(self, dt: float | None = None, history_steps: int | None = None) -> None:
        """Raise ValueError naming the first out-of-range parameter."""
        lo, hi = _pair("lateral_range", self.lateral_range)
        if max(abs(lo), abs(hi)) > MAX_ABS_LATERAL:
            raise ValueError(f"lateral_range {self.lateral_range} exceeds ±{MAX_ABS_LATERAL} m")
        if self.lateral_distribution not in LATERAL_DISTRIBUTIONS:
            raise ValueError(f"lateral_distribution {self.lateral_distribution!r} not in {LATERAL_DISTRIBUTIONS}")
        if self.lateral_distribution == "symmetric" and hi < 0:
            raise ValueError(f"lateral_range {self.lateral_range}: 'symmetric' needs a non-negative high end")
        if self.speed_mode not in SPEED_MODES:
            raise ValueError(f"speed_mode {self.speed_mode!r} not in {SPEED_MODES}")
        slo, shi = _pair("speed_range", self.speed_range)
        if self.speed_mode == "delta" and max(abs(slo), abs(shi)) > MAX_ABS_SPEED_DELTA:
            raise ValueError(f"speed_range {self.speed_range} exceeds ±{MAX_ABS_SPEED_DELTA} m/s")
        if self.speed_mode == "factor" and not (0.0 <= slo and shi <= 3.0):
            raise ValueError(f"speed_range {self.speed_range}: factors must lie in [0, 3]")
        if not (0.0 <= self.heading_jitter <= MAX_HEADING_JITTER):
            raise ValueError(f"heading_jitter {self.heading_jitter} must lie in [0, {MAX_HEADING_JITTER}] rad")
        if not (int(self.max_attempts) == self.max_attempts and 1 <= self.max_attempts <= 20):
            raise ValueError(f"max_attempts {self.max_attempts} must be an integer in [1, 20]")
        for name in ("collision_margin", "offroad_margin"):
            value = getattr(self, name)
            if not (np.isfinite(value) and 0.0 <= value <= 2.0):
                raise ValueError(f"{name} {value} must lie in [0, 2] m")
        if not (np.isfinite(self.ttc_horizon) and 0.0 <= self.ttc_horizon <= 5.0):
            raise ValueError(f"ttc_horizon {self.ttc_horizon} must lie in [0, 5] s")
        if not (0.05 <= self.max_heading_deviation <= np.pi / 2):
            raise ValueError(f"max_heading_deviation {self.max_heading_deviation} must lie in [0.05, pi/2]")
        if isinstance(self.seed, bool) or not (int(self.seed) == self.seed and 0 <= self.seed < 2**63):
            raise ValueError(f"seed {self.seed!r} must be a non-negative integer")
        if not (np.isfinite(self.window) and self.window > 0):
            raise ValueError(f"window {self.window} must be a positive number of seconds")
        if dt is not None:
            steps = self.window / dt
            if abs(steps - round(steps)) > 1e-6:
                raise ValueError(f"window {self.window} s is not a multiple of the scene dt {dt} s")
            if history_steps is not None and round(steps) > history_steps:
                raise ValueError(
                    f"window {self.window} s is longer than the scene history ({history_steps * dt} s)"
                )


def _pair(name: str, value) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a (low, high) pair of numbers, got {value!r}") from exc
    if not (np.isfinite(lo) and np.isfinite(hi) and lo <= hi):
        raise ValueError(f"{name} {value!r} must be finite with low <= high")
    return lo, hi


@dataclass
class RejectReport:
    """Candidates tried / kept and rejections by reason (see the module docstring)."""

    attempted: int = 0
    accepted: int = 0
    rejected: dict[str, int] = field(default_factory=lambda: {r: 0 for r in REJECT_REASONS})
    parents: int = 0
    parents_short: int = 0  # parents that got fewer than scenes_per_parent scenes

    def merge(self, other: "RejectReport") -> "RejectReport":
        rejected = {r: self.rejected.get(r, 0) + other.rejected.get(r, 0) for r in REJECT_REASONS}
        return RejectReport(
            self.attempted + other.attempted, self.accepted + other.accepted, rejected,
            self.parents + other.parents, self.parents_short + other.parents_short,
        )

    def as_dict(self) -> dict:
        return asdict(self)


def perturb_scenes(
    batch: SceneBatch,
    config: PerturbationConfig = PerturbationConfig(),
    scenes_per_parent: int = 5,
    rng: np.random.Generator | int | None = None,
    round_index: int = 1,
) -> tuple[SceneBatch, RejectReport]:
    """Perturbed copies of each scene of ``batch``.

    Args:
        batch: S parent scenes.
        config: perturbation distribution and feasibility settings.
        scenes_per_parent: K synthetic scenes wanted per parent (fewer when too many candidates
            are infeasible; see ``RejectReport.parents_short``).
        rng: a Generator (one base seed is drawn from it) or an int seed; default ``config.seed``.
        round_index: written to ``meta["round"]`` and into the ids ``f"{parent}-syn{round}-{k}"``.

    Returns:
        (synthetic batch of up to S·K scenes ordered by parent then k, report). The batch's meta
        has ``source="synthetic"``, ``parent_id``, ``perturb_lateral`` (m), ``perturb_speed``
        (m/s, effective), ``perturb_heading`` (rad), ``round``; the ego future holds the parent's
        logged future in the new frame (the reference for labels).
    """
    _check_inputs(batch, config, scenes_per_parent, round_index)
    base_seed = _base_seed(rng, config)
    num_parents, k_wanted = len(batch), int(scenes_per_parent)
    attempts = k_wanted * int(config.max_attempts)
    lateral, speed, heading = _sample(batch, config, attempts, base_seed, round_index)  # (S, A)

    window_idx = _window_indices(batch, config.window)
    ego = batch.ego.astype(np.float64)
    speed = _effective_speed_delta(ego, window_idx, batch.history_steps, speed, config)
    new_window, deviation = _deviate(batch, window_idx, lateral, speed, heading, config.window)

    reason = np.full(lateral.shape, -1, dtype=np.int64)  # index into REJECT_REASONS, -1 = feasible
    bad_kin = deviation > config.max_heading_deviation
    bad_road = ~_start_on_road(batch, new_window[:, :, -1], config.offroad_margin)
    bad_way = ~_start_aligned(batch, new_window[:, :, -1]) if config.reject_wrong_way else np.zeros_like(bad_kin)
    bad_collision = _collides(batch, window_idx, new_window, config.collision_margin)
    bad_unsafe = _unsafe(batch, new_window[:, :, -1], config.ttc_horizon)
    for code, bad in reversed(list(enumerate((bad_kin, bad_road, bad_way, bad_collision, bad_unsafe)))):
        reason = np.where(bad, code, reason)

    feasible = reason < 0
    accepted_before = np.cumsum(feasible, axis=1) - feasible
    considered = accepted_before < k_wanted
    chosen = feasible & considered
    report = RejectReport(
        attempted=int(considered.sum()),
        accepted=int(chosen.sum()),
        rejected={r: int(((reason == c) & considered).sum()) for c, r in enumerate(REJECT_REASONS)},
        parents=num_parents,
        parents_short=int((chosen.sum(1) < k_wanted).sum()),
    )
    parent_idx, cand_idx = np.nonzero(chosen)  # row-major: ordered by parent, then candidate
    k_idx = accepted_before[parent_idx, cand_idx]
    out = _build(batch, window_idx, parent_idx, new_window[parent_idx, cand_idx])
    out.meta = _synthetic_meta(batch, parent_idx, k_idx, round_index, {
        "perturb_lateral": lateral[parent_idx, cand_idx],
        "perturb_speed": speed[parent_idx, cand_idx],
        "perturb_heading": heading[parent_idx, cand_idx],
    })
    return out, report


# ---------------------------------------------------------------------------- inputs and sampling
def _check_inputs(batch: SceneBatch, config: PerturbationConfig, scenes_per_parent, round_index) -> None:
    if not isinstance(batch, SceneBatch):
        raise ValueError(f"batch must be a SceneBatch, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("cannot perturb an empty batch: the source has no scenes")
    if not (int(scenes_per_parent) == scenes_per_parent and 1 <= scenes_per_parent <= 100):
        raise ValueError(f"scenes_per_parent {scenes_per_parent!r} must be an integer in [1, 100]")
    if not (int(round_index) == round_index and round_index >= 1):
        raise ValueError(f"round_index {round_index!r} must be a positive integer")
    config.validate(batch.dt, batch.history_steps)


def _base_seed(rng, config: PerturbationConfig) -> int:
    if rng is None:
        return int(config.seed)
    if isinstance(rng, np.random.Generator):
        return int(rng.integers(0, 2**31 - 1))
    if isinstance(rng, bool) or not (int(rng) == rng and rng >= 0):
        raise ValueError(f"rng must be a numpy Generator or a non-negative integer seed, got {rng!r}")
    return int(rng)


def _sample(batch: SceneBatch, config: PerturbationConfig, attempts: int, seed: int, round_index: int):
    """(S, A) lateral (m), raw speed draw, heading (rad); one independent stream per parent."""
    ids = batch.meta["scene_id"]
    draws = np.empty((len(batch), 3, attempts))
    for i, scene_id in enumerate(ids):
        stream = np.random.default_rng([seed, zlib.crc32(str(scene_id).encode()), round_index])
        draws[i] = stream.random((3, attempts))
    u_lat, u_speed, u_head = draws[:, 0], draws[:, 1], draws[:, 2]
    lo, hi = config.lateral_range
    if config.lateral_distribution == "uniform":
        lateral = lo + (hi - lo) * u_lat
    elif config.lateral_distribution == "normal":
        z = ndtri(np.clip(u_lat, 1e-9, 1 - 1e-9))
        lateral = np.clip(0.5 * (lo + hi) + 0.25 * (hi - lo) * z, lo, hi)
    else:  # symmetric: magnitude in [max(lo, 0), hi], sign from the first bit of the draw
        low = max(lo, 0.0)
        sign = np.where(u_lat < 0.5, -1.0, 1.0)
        lateral = sign * (low + (hi - low) * (2.0 * np.abs(u_lat - 0.5)))
    slo, shi = config.speed_range
    speed = slo + (shi - slo) * u_speed
    heading = config.heading_jitter * np.clip(ndtri(np.clip(u_head, 1e-9, 1 - 1e-9)), -3.0, 3.0)
    return lateral, speed, heading


def _window_indices(batch: SceneBatch, window: float) -> np.ndarray:
    steps = int(round(window / batch.dt))
    return np.arange(batch.history_steps - steps, batch.history_steps + 1)


def _effective_speed_delta(ego, window_idx, t0, draw, config: PerturbationConfig) -> np.ndarray:
    """(S, A) speed change in m/s, clamped so the speed never goes negative in the window."""
    v0 = ego[:, t0, 3][:, None]
    delta = (draw - 1.0) * v0 if config.speed_mode == "factor" else draw
    min_speed = np.maximum(ego[:, window_idx, 3].min(1), 0.0)[:, None]
    return np.maximum(delta, -min_speed)


# ---------------------------------------------------------------------------- the deviation
def _deviate(batch: SceneBatch, window_idx, lateral, speed, heading, window: float):
    """New ego states over the window, (S, A, W, 5) in the parent frame, and the largest
    heading-vs-route angle (S, A) reached in the window."""
    ego = batch.ego[:, window_idx].astype(np.float64)  # (S, W, 5)
    num_s, num_w = ego.shape[:2]
    num_a = lateral.shape[1]
    route = RouteFrame(batch.route_polyline, batch.route_valid)
    s_log, l_log = route.project(ego[..., :2])  # (S, W)
    theta_log = route.heading(s_log)
    rel = wrap_angle(ego[..., 2] - theta_log)
    s_dot, l_dot = ego[..., 3] * np.cos(rel), ego[..., 3] * np.sin(rel)

    tau = np.linspace(0.0, 1.0, num_w)[None, None, :]  # (1, 1, W)
    d, dv, dh = lateral[..., None], speed[..., None], heading[..., None]  # (S, A, 1)
    s_new = s_log[:, None] + dv * window * quintic_integral(tau)
    l_new = l_log[:, None] + d * quintic(tau)
    s_dot_new = s_dot[:, None] + dv * quintic(tau)
    l_dot_new = l_dot[:, None] + d * quintic_rate(tau) / window

    flat = lambda a: a.reshape(num_s, num_a * num_w)  # noqa: E731
    rep = lambda a: np.broadcast_to(a[:, None], (num_s, num_a, num_w))  # noqa: E731
    shift = route.point(flat(s_new), flat(l_new)) - route.point(flat(rep(s_log)), flat(rep(l_log)))
    xy = ego[:, None, :, :2] + shift.reshape(num_s, num_a, num_w, 2)
    theta_new = route.heading(flat(s_new)).reshape(num_s, num_a, num_w)
    course_new = np.arctan2(l_dot_new, s_dot_new)
    psi = (
        ego[:, None, :, 2] + wrap_angle(theta_new - theta_log[:, None]) + course_new
        - np.arctan2(l_dot, s_dot)[:, None] + dh * quintic(tau)
    )
    new = np.empty((num_s, num_a, num_w, 5))
    new[..., :2] = xy
    new[..., 2] = wrap_angle(psi)
    new[..., 3] = np.hypot(s_dot_new, l_dot_new)
    new[..., 4] = ego[:, None, :, 4] + dv * quintic_rate(tau) / window
    deviation = np.abs(wrap_angle(new[..., 2] - theta_new)).max(-1)
    return new, deviation


# ---------------------------------------------------------------------------- feasibility
def _start_on_road(batch: SceneBatch, start: np.ndarray, margin: float) -> np.ndarray:
    """(S, A) all four ego corners at the new t0 on the drivable area (lane corridors ∪ polygons)."""
    num_s, num_a = start.shape[:2]
    size = batch.ego_size.astype(np.float64)
    corners = box_corners(start[..., :2], start[..., 2], size[:, None, 0], size[:, None, 1])  # (S, A, 4, 2)
    corners = corners.reshape(num_s, num_a * 4, 2)
    lanes = nearby_lanes(batch.lanes, batch.lane_valid, batch.lane_width, batch.ego[:, batch.history_steps, :2])
    on = on_lane_corridor(*lanes, corners, margin=margin)
    on |= points_in_polygons(corners, batch.drivable_polygons, batch.drivable_vertex_valid).any(-1)
    return on.reshape(num_s, num_a, 4).all(-1)


def _start_aligned(batch: SceneBatch, start: np.ndarray) -> np.ndarray:
    """(S, A) the ego centre at t0 is in a lane going its way, or on a drivable polygon."""
    centre = start[..., :2]
    lanes = nearby_lanes(batch.lanes, batch.lane_valid, batch.lane_width, batch.ego[:, batch.history_steps, :2])
    aligned = in_aligned_lane(*lanes, centre, start[..., 2])
    in_poly = points_in_polygons(centre, batch.drivable_polygons, batch.drivable_vertex_valid).any(-1)
    return aligned | in_poly


def _collides(batch: SceneBatch, window_idx, new_window, margin: float) -> np.ndarray:
    """(S, A) the ego box overlaps a valid agent box at some step of the window."""
    num_s, num_a = new_window.shape[:2]
    if batch.agents.shape[1] == 0:
        return np.zeros((num_s, num_a), dtype=bool)
    size = batch.ego_size.astype(np.float64) + 2.0 * margin
    ego = new_window[:, :, None]  # (S, A, 1, W, 5)
    agents = batch.agents[:, None, :, window_idx].astype(np.float64)  # (S, 1, N, W, 4)
    asize = batch.agent_size.astype(np.float64)[:, None, :, None]  # (S, 1, N, 1, 2)
    hit = boxes_overlap_sparse(
        ego[..., :2], ego[..., 2], size[:, None, None, None, 0], size[:, None, None, None, 1],
        agents[..., :2], agents[..., 2], asize[..., 0], asize[..., 1],
    )  # (S, A, N, W)
    valid = batch.agent_valid[:, :, window_idx] & (batch.agent_type >= 0)[..., None]
    return (hit & valid[:, None]).any((-1, -2))


def _unsafe(batch: SceneBatch, start: np.ndarray, horizon: float, step: float = 0.25) -> np.ndarray:
    """(S, A) constant-velocity projections of the ego and of agents not behind it overlap
    within ``horizon`` s (checked every ``step`` s)."""
    num_s, num_a = start.shape[:2]
    if horizon <= 0 or batch.agents.shape[1] == 0:
        return np.zeros((num_s, num_a), dtype=bool)
    t0 = batch.history_steps
    times = np.arange(step, horizon + 1e-9, step)  # (H,)
    size = batch.ego_size.astype(np.float64)
    direction = np.stack([np.cos(start[..., 2]), np.sin(start[..., 2])], -1)  # (S, A, 2)
    ego_xy = start[..., None, :2] + (start[..., 3, None] * times)[..., None] * direction[..., None, :]  # (S, A, H, 2)
    agents = batch.agents[:, :, t0].astype(np.float64)  # (S, N, 4)
    a_dir = np.stack([np.cos(agents[..., 2]), np.sin(agents[..., 2])], -1)
    a_xy = agents[..., None, :2] + (agents[..., 3, None] * times)[..., None] * a_dir[..., None, :]  # (S, N, H, 2)
    asize = batch.agent_size.astype(np.float64)
    hit = boxes_overlap_sparse(
        ego_xy[:, :, None], start[:, :, None, None, 2], size[:, None, None, None, 0], size[:, None, None, None, 1],
        a_xy[:, None], agents[:, None, :, None, 2], asize[:, None, :, None, 0], asize[:, None, :, None, 1],
    )  # (S, A, N, H)
    rel = agents[:, None, :, :2] - start[:, :, None, :2]  # (S, A, N, 2)
    ahead = (rel * direction[:, :, None]).sum(-1)
    not_behind = ahead > -0.5 * size[:, None, None, 0]
    valid = (batch.agent_valid[:, :, t0] & (batch.agent_type >= 0))[:, None]
    return (hit.any(-1) & not_behind & valid).any(-1)


# ---------------------------------------------------------------------------- building scenes
def _build(batch: SceneBatch, window_idx, parent_idx, window_states) -> SceneBatch:
    """Copy the chosen parents, write the new ego window and re-centre on the new t0 pose."""
    out = batch.subset(parent_idx)
    ego = out.ego.astype(np.float64)
    ego[:, window_idx] = window_states
    pose = ego[:, batch.history_steps, :3].copy()  # new origin in the parent frame
    return recentre(out.replace(ego=ego.astype(np.float32)), pose)


def recentre(batch: SceneBatch, pose: np.ndarray) -> SceneBatch:
    """Express every array of ``batch`` in the frame with origin/yaw ``pose`` (S, 3), given in
    the current scene frame; updates ``global_pose``. Padding stays zero."""
    pose = np.asarray(pose, dtype=np.float64)
    f32 = np.float32
    ego = batch.ego.copy()
    ego[..., :2] = transform_points(batch.ego[..., :2], pose)
    ego[..., 2] = transform_headings(batch.ego[..., 2], pose)
    agents = batch.agents.copy()
    valid = batch.agent_valid[..., None]
    agents[..., :2] = np.where(valid, transform_points(batch.agents[..., :2], pose), 0.0)
    agents[..., 2] = np.where(batch.agent_valid, transform_headings(batch.agents[..., 2], pose), 0.0)
    lanes = np.where(batch.lane_valid[..., None, None], transform_points(batch.lanes, pose), 0.0)
    polys = np.where(batch.drivable_vertex_valid[..., None], transform_points(batch.drivable_polygons, pose), 0.0)
    cross = np.where(batch.crosswalk_valid[..., None, None], transform_points(batch.crosswalks, pose), 0.0)
    route = np.where(batch.route_valid[..., None], transform_points(batch.route_polyline, pose), 0.0)
    return batch.replace(
        ego=ego.astype(f32), agents=agents.astype(f32), lanes=lanes.astype(f32),
        drivable_polygons=polys.astype(f32), crosswalks=cross.astype(f32), route_polyline=route.astype(f32),
        global_pose=compose_global(batch.global_pose.astype(np.float64), pose),
    )


def _synthetic_meta(batch: SceneBatch, parent_idx, k_idx, round_index: int, params: dict) -> dict:
    meta = {key: np.asarray(col)[parent_idx] for key, col in batch.meta.items()}
    parents = np.asarray(batch.meta["scene_id"], dtype=object)[parent_idx]
    meta["parent_id"] = parents.astype(object)
    meta["scene_id"] = np.array([f"{p}-syn{round_index}-{k}" for p, k in zip(parents, k_idx)], dtype=object)
    meta["source"] = np.full(len(parent_idx), "synthetic", dtype=object)
    for key, values in params.items():
        meta[key] = np.asarray(values, dtype=np.float64)
    meta["round"] = np.full(len(parent_idx), int(round_index), dtype=np.int64)
    meta["expert"] = np.full(len(parent_idx), "", dtype=object)
    return meta
