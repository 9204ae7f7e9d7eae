"""Two-stage evaluation (NAVSIM v2 pseudo-simulation, adapted to 6 s logs) for extended comfort.

Extended comfort (EC) compares consecutive plans of one planner, so it needs a second planning
frame. NAVSIM v2 scores a first stage at t0 on the recorded scene and a second stage from
synthetic start states around the first stage's endpoint, each second-stage start weighted by
``exp(-distance)`` between the first-stage endpoint and that start (weights normalised).

Here (logs hold only 4 s of future, so the second stage cannot start 4 s later):

* **stage 1** — the planner plans at t0 on the scene as recorded;
* **stage 2** — the scene is advanced by one planning step (``dt`` = 0.5 s: the log's arrays are
  shifted by one step and the last step extrapolated at constant velocity, traffic lights held),
  and the ego is placed at ``len(STAGE2_OFFSETS)`` nearby starts: the logged ego state at t0 + dt
  shifted rigidly (whole track, same heading and speed) by fixed longitudinal / lateral offsets in
  its own frame. The planner plans again from each start;
* **weights** — start m gets ``w_m ∝ exp(-d_m)``, d_m (m) the distance between the stage-1
  plan's pose at t0 + dt (the endpoint of the executed part of stage 1) and the start;
* **EC** — for each start, :func:`.scoring.extended_comfort` compares the stage-2 plan with the
  stage-1 plan over their 3.5 s overlap (both expressed in the stage-2 frame); the scene's EC is
  ``Σ_m w_m EC_m`` ∈ [0, 1]: a planner whose next plan contradicts its previous one (a sudden
  brake, a swerve) loses up to 2 of the 16 weight points.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..scene import SceneBatch
from .comfort import extended_comfort
from .config import ScorerConfig

# (longitudinal, lateral) start offsets (m) in the frame of the logged ego at t0 + dt.
STAGE2_OFFSETS = ((0.0, 0.0), (1.0, 0.0), (-1.0, 0.0), (0.0, 0.5), (0.0, -0.5))

Planner = Callable[[SceneBatch], np.ndarray]  # SceneBatch (S scenes) -> (S, F, 3) plans


@dataclass
class TwoStageComfort:
    """Per scene: ``ec`` (S,) weighted EC; per scene and start: ``ec_per_start`` (S, M) in
    {0, 1}, ``weights`` (S, M) summing to 1, ``distance`` (S, M) m from the stage-1 endpoint."""

    ec: np.ndarray
    ec_per_start: np.ndarray
    weights: np.ndarray
    distance: np.ndarray


def advance_scenes(batch: SceneBatch, steps: int = 1) -> SceneBatch:
    """The scenes ``steps`` log steps later (same frame): time arrays shifted left, the freed last
    steps extrapolated (ego and agents at constant velocity along their last heading, agent
    validity and traffic lights held). ``meta["t0"]`` moves on; scene ids get ``@+<s>s``."""
    if steps < 1 or steps > batch.future_steps:
        raise ValueError(f"advance_scenes: steps must be in 1..{batch.future_steps}, got {steps}")
    dt = batch.dt
    ego = _shift(batch.ego.astype(np.float64), 1, steps)
    agents = _shift(batch.agents.astype(np.float64), 2, steps)
    for j in range(batch.num_steps - steps, batch.num_steps):  # constant-velocity extrapolation
        for arr, axis_t in ((ego, 1), (agents, 2)):
            last = np.take(arr, j - 1, axis=axis_t)
            nxt = last.copy()
            nxt[..., 0] += last[..., 3] * np.cos(last[..., 2]) * dt
            nxt[..., 1] += last[..., 3] * np.sin(last[..., 2]) * dt
            if arr is ego:
                nxt[..., 4] = 0.0
            idx = [slice(None)] * arr.ndim
            idx[axis_t] = j
            arr[tuple(idx)] = nxt
    valid = _shift(batch.agent_valid, 2, steps)
    agents[~valid] = 0.0
    meta = dict(batch.meta)
    shift_s = steps * dt
    meta["scene_id"] = np.array([f"{s}@+{shift_s:g}s" for s in batch.scene_ids], dtype=object)
    if "t0" in meta:
        meta["t0"] = np.asarray(meta["t0"], dtype=np.float64) + shift_s
    for key in ("ep_reference_m", "ep_reference_fp", "human_fail_mask"):
        meta.pop(key, None)  # belonged to the original t0
    return batch.replace(
        ego=ego.astype(np.float32), agents=agents.astype(np.float32), agent_valid=valid,
        lane_tl=_shift(batch.lane_tl, 2, steps), meta=meta,
    )


def _shift(array: np.ndarray, axis: int, steps: int) -> np.ndarray:
    """Shift left by ``steps`` along ``axis``, repeating the last entry into the freed tail."""
    out = np.roll(array, -steps, axis=axis)
    idx = [slice(None)] * array.ndim
    idx[axis] = slice(array.shape[axis] - steps, None)
    last = [slice(None)] * array.ndim
    last[axis] = slice(array.shape[axis] - steps - 1, array.shape[axis] - steps)
    out[tuple(idx)] = array[tuple(last)]
    return out


def stage2_starts(batch: SceneBatch, offsets=STAGE2_OFFSETS) -> tuple[SceneBatch, np.ndarray]:
    """Stage-2 scenes: (S·M) scenes, scene-major, each re-centred on its start.

    Returns the scenes and the starts (S, M, 3) (x, y, heading) in the original t0 frame.
    """
    from ..synthetic.perturb import recentre  # the synthetic package imports the scorer

    advanced = advance_scenes(batch, 1)
    S, M, t0 = len(batch), len(offsets), batch.history_steps
    anchor = advanced.ego[:, t0, :3].astype(np.float64)  # logged ego at t0 + dt, (S, 3)
    off = np.asarray(offsets, dtype=np.float64)  # (M, 2)
    c, s = np.cos(anchor[:, None, 2]), np.sin(anchor[:, None, 2])
    shift = np.stack([off[:, 0] * c - off[:, 1] * s, off[:, 0] * s + off[:, 1] * c], -1)  # (S, M, 2)
    starts = np.concatenate([anchor[:, None, :2] + shift, np.broadcast_to(anchor[:, None, 2:], (S, M, 1))], -1)
    rep = advanced.subset(np.repeat(np.arange(S), M))
    ego = rep.ego.astype(np.float64)
    ego[..., :2] += shift.reshape(S * M, 1, 2)  # the whole ego track, rigidly
    meta = dict(rep.meta)
    meta["scene_id"] = np.array([f"{sid}~{m}" for sid, m in zip(rep.scene_ids, np.tile(np.arange(M), S))], dtype=object)
    rep = rep.replace(ego=ego.astype(np.float32), meta=meta)
    return recentre(rep, starts.reshape(S * M, 3)), starts


def to_frame(poses: np.ndarray, origin: np.ndarray) -> np.ndarray:
    """Poses (S, ..., 3) expressed in the frame whose origin/yaw is ``origin`` (S, 3)."""
    from ..synthetic._geometry import transform_headings, transform_points

    return np.concatenate([transform_points(poses[..., :2], origin), transform_headings(poses[..., 2], origin)[..., None]], -1)


def two_stage_comfort(
    batch: SceneBatch,
    planner: Planner,
    stage1_plans: np.ndarray | None = None,
    *,
    offsets=STAGE2_OFFSETS,
    config: ScorerConfig = ScorerConfig(),
) -> TwoStageComfort:
    """EC of ``planner`` by two-stage evaluation (see the module docstring).

    Args:
        batch: S scenes (≥ 1 future step).
        planner: scenes → (S, F, 3) plans in each scene's frame.
        stage1_plans: optional (S, F, 3) plans already made at t0 (else ``planner(batch)``).
    """
    plans1 = np.asarray(planner(batch) if stage1_plans is None else stage1_plans, dtype=np.float64)
    S, F = plans1.shape[:2]
    scenes2, starts = stage2_starts(batch, offsets)
    M = starts.shape[1]
    plans2 = np.asarray(planner(scenes2), dtype=np.float64).reshape(S, M, F, 3)
    endpoint = plans1[:, 0, :2]  # stage-1 pose at t0 + dt
    distance = np.linalg.norm(starts[..., :2] - endpoint[:, None], axis=-1)  # (S, M)
    weights = np.exp(-(distance - distance.min(1, keepdims=True)))  # shifted: no underflow
    weights /= weights.sum(1, keepdims=True)
    previous = to_frame(np.repeat(plans1, M, axis=0), starts.reshape(S * M, 3)).reshape(S, M, F, 3)
    ec = extended_comfort(np.zeros((S, M, 3)), plans2, previous, batch.dt, config)
    weighted = np.clip((weights * ec).sum(1), 0.0, 1.0)  # rounding of Σ w = 1
    return TwoStageComfort(ec=weighted, ec_per_start=ec, weights=weights, distance=distance)
