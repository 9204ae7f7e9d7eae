"""The pure EPDMS scorer: validated inputs → raw metrics → human filter → aggregation.

It sits below the rule planner (which scores its proposals with it) and never plans: the EP
denominator is an input (:func:`score_plans`). The logged expert's metrics for the human filter
come from ``batch.meta`` (stored by ``precompute_reference_progress``) or the metric cache.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from ..scene import SceneBatch
from .aggregate import combine
from .comfort import extended_comfort
from .config import FILTERED, ScorerConfig, ScoreResult
from .metric_cache import HUMAN_FAIL_KEY, METRIC_CACHE, REFERENCE_KEY, scene_keys, stale_scenes, stored_floats
from .raw_metrics import raw_metrics_chunked


def _scene_label(batch: SceneBatch, i: int) -> str:
    ids = batch.meta.get("scene_id")
    return repr(str(ids[i])) if ids is not None and len(ids) > i else f"#{i}"


def validate_trajectories(batch: SceneBatch, trajectories, num_poses: int, name: str = "trajectories") -> np.ndarray:
    """(S, C, F, 3) float64 or ValueError naming the scene."""
    traj = np.asarray(trajectories, dtype=np.float64)
    S = len(batch)
    first = _scene_label(batch, 0) if S else "<none>"
    if traj.ndim != 4 or traj.shape[0] != S or traj.shape[-1] != 3:
        raise ValueError(f"{name} must have shape (S={S}, C, {num_poses}, 3); got {traj.shape} (first scene {first})")
    if traj.shape[1] == 0:
        raise ValueError(f"{name}: empty candidate set (C = 0) for scene {first} and all {S} scenes")
    if traj.shape[2] != num_poses:
        raise ValueError(
            f"{name}: wrong horizon for scene {first}: {traj.shape[2]} poses, expected {num_poses} "
            f"at {batch.dt} s"
        )
    bad = ~np.isfinite(traj).all(axis=(1, 2, 3))
    if bad.any():
        names = ", ".join(_scene_label(batch, i) for i in np.flatnonzero(bad)[:5])
        raise ValueError(f"{name} contain NaN or inf for scene(s) {names}")
    return traj


def prepare(batch, trajectories, config, human_filter, previous_plans):
    """Validate inputs; returns (traj (S, C, F, 3), with-expert (S, C+1, F, 3), EC (S, C))."""
    if len(batch) == 0:
        raise ValueError("score_trajectories: empty scene batch")
    traj = validate_trajectories(batch, trajectories, config.num_poses)
    S, C = traj.shape[:2]
    if human_filter and batch.future_steps < config.num_poses:
        raise ValueError(
            f"human_filter needs {config.num_poses} logged future poses; scene {_scene_label(batch, 0)} "
            f"has {batch.future_steps}"
        )
    expert = batch.ego[:, batch.history_steps + 1 : batch.history_steps + 1 + config.num_poses, :3]
    expert = np.asarray(expert, dtype=np.float64)[:, None]
    if not human_filter:
        expert = traj[:, :1]  # placeholder column, ignored
    full = np.concatenate([traj, expert], axis=1)
    if previous_plans is None:
        ec = np.ones((S, C))
    else:
        prev = np.asarray(previous_plans, dtype=np.float64)
        if prev.ndim == 3:
            prev = np.broadcast_to(prev[:, None], (S, C) + prev.shape[1:])
        prev = validate_trajectories(batch, prev, config.num_poses, name="previous_plans")
        if prev.shape[1] != C:
            raise ValueError(f"previous_plans has {prev.shape[1]} candidates for {C} trajectories")
        start = np.broadcast_to(batch.ego[:, None, batch.history_steps, :3].astype(np.float64), (S, C, 3))
        ec = extended_comfort(start, traj, prev, batch.dt, config)
    return traj, full, ec


_RAW_KEYS = ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc", "progress", "collision", "tl_unknown")


def _logged_plans(batch: SceneBatch, config: ScorerConfig) -> np.ndarray:
    """(S, 1, F, 3) the logged expert's future poses as a plan."""
    expert = batch.ego[:, batch.history_steps + 1 : batch.history_steps + 1 + config.num_poses, :3]
    return np.asarray(expert, dtype=np.float64)[:, None]


def _expert_keys(batch: SceneBatch, reactive: bool, config: ScorerConfig) -> list[tuple]:
    return [("expert", *key, bool(reactive), config) for key in scene_keys(batch)]


def _remember_expert(keys: list[tuple], rows, raw: dict[str, np.ndarray], column: int) -> None:
    """Cache the expert's raw metrics ``raw[k][j, column]`` under ``keys[rows[j]]``."""
    for j, i in enumerate(rows):
        METRIC_CACHE.put(keys[i], tuple(raw[k][j, column] for k in _RAW_KEYS))


def expert_raw_metrics(
    batch: SceneBatch, reactive: bool, config: ScorerConfig, keys: list[tuple] | None = None
) -> dict[str, np.ndarray]:
    """Unfiltered metrics of the logged expert per scene (S,), cached per scene content: the human
    filter needs them on every call, but they depend only on the scene (and the config).
    ``keys``: the scenes' expert cache keys when the caller has them already."""
    keys = _expert_keys(batch, reactive, config) if keys is None else keys
    rows = [METRIC_CACHE.get(k) for k in keys]
    missing = [i for i, row in enumerate(rows) if row is None]
    if missing:
        sub = batch.subset(missing) if len(missing) < len(batch) else batch
        raw = raw_metrics_chunked(sub, _logged_plans(sub, config), reactive, config)
        _remember_expert(keys, missing, raw, 0)
        for j, i in enumerate(missing):
            rows[i] = tuple(raw[k][j, 0] for k in _RAW_KEYS)
    return {k: np.array([r[j] for r in rows]) for j, k in enumerate(_RAW_KEYS)}


def _stored_fail_mask(batch: SceneBatch, reactive: bool, config: ScorerConfig) -> np.ndarray:
    """(S,) stored ``human_fail_mask`` where usable (log replay, default config, content unchanged), else NaN."""
    S = len(batch)
    mask = stored_floats(batch, HUMAN_FAIL_KEY) if not reactive and config == ScorerConfig() else np.full(S, np.nan)
    if np.isfinite(mask).any():
        mask[stale_scenes(batch) | ~np.isfinite(stored_floats(batch, REFERENCE_KEY))] = np.nan
    return mask


def _expert_unknown_keys(batch: SceneBatch, reactive: bool, config: ScorerConfig) -> tuple[list[tuple] | None, list[tuple] | None]:
    """(cold, keys): the expert cache keys as ``cold`` when no scene has its expert's metrics
    stored or cached (else None), and as ``keys`` whenever they were computed (else None)."""
    if np.isfinite(_stored_fail_mask(batch, reactive, config)).any():
        return None, None
    keys = _expert_keys(batch, reactive, config)
    return (None if any(k in METRIC_CACHE for k in keys) else keys), keys


def _expert_filter_metrics(
    batch: SceneBatch, reactive: bool, config: ScorerConfig, keys: list[tuple] | None = None
) -> dict[str, np.ndarray]:
    """The logged expert's metrics as the human filter needs them: from the stored
    ``human_fail_mask`` where valid (log replay, default config, content unchanged), else
    simulated (and cached). Only the FILTERED keys are meaningful in stored rows."""
    S = len(batch)
    mask = _stored_fail_mask(batch, reactive, config)
    have = np.isfinite(mask)
    out = {k: np.ones(S) for k in _RAW_KEYS if k not in ("collision", "tl_unknown")}
    out.update(collision=np.zeros(S, dtype=bool), tl_unknown=np.zeros(S, dtype=bool))
    bits = np.where(have, mask, 0).astype(np.int64)
    for i, k in enumerate(FILTERED):
        if k in out:
            out[k] = np.where((bits >> i) & 1 == 1, 0.0, 1.0)
    missing = np.flatnonzero(~have)
    if len(missing):
        whole = len(missing) == S
        computed = expert_raw_metrics(batch if whole else batch.subset(missing), reactive, config,
                                      keys if whole else None)
        for k, v in computed.items():
            out[k] = out[k].astype(v.dtype)
            out[k][missing] = v
    return out


def score_plans(
    batch: SceneBatch,
    trajectories: np.ndarray,
    *,
    reactive: bool = False,
    config: ScorerConfig = ScorerConfig(),
    human_filter: bool = True,
    previous_plans: np.ndarray | None = None,
    reference_progress: np.ndarray | Callable[[SceneBatch], np.ndarray] | None = None,
) -> ScoreResult:
    """Score (S, C, F, 3) planned trajectories with EPDMS (see :mod:`autoscale_core.sim.scoring`).

    The pure scorer: it never plans. :func:`autoscale_core.sim.scoring.score_trajectories` is
    the same with the rule planner's EP denominator by default; the rule planner itself scores
    its proposals here (``progress_reference="candidates"``).

    Args:
        batch: S scenes.
        trajectories: (S, C, F, 3) poses at t = dt … F·dt in the scene frame (F = config.num_poses).
        reactive: agents react with IDM (True) or replay the log (False, NAVSIM's default).
        human_filter: NAVSIM v2's false-positive filter against the logged expert (whose metrics
            are cached per scene content in :data:`~.metric_cache.METRIC_CACHE`).
        previous_plans: optional (S, F, 3) or (S, C, F, 3) previous-frame plans for EC.
        reference_progress: (S,) EP denominator (m), or a function scenes → (S,) called once the
            inputs are validated; None only with ``config.progress_reference="candidates"``.

    Returns:
        :class:`ScoreResult` with (S, C) arrays.

    Raises:
        ValueError naming the scene for NaN/inf poses, a wrong shape or horizon, or C = 0.
    """
    traj, _, ec = prepare(batch, trajectories, config, human_filter, previous_plans)
    S, C = traj.shape[:2]
    if callable(reference_progress):  # computed only once the inputs are known to be valid
        reference_progress = reference_progress(batch)
    if reference_progress is not None:
        reference_progress = np.asarray(reference_progress, dtype=np.float64).reshape(S)
    elif config.progress_reference == "rule_planner":
        raise ValueError("score_plans needs reference_progress with progress_reference='rule_planner' "
                         "(sim.scoring.score_trajectories supplies the rule planner's)")
    elif config.progress_reference != "candidates":
        raise ValueError(f"unknown progress_reference {config.progress_reference!r}")
    # Scenes seen for the first time: the logged expert (for the human filter) is simulated in the
    # same pass as the candidates, sharing the lane index and the agents' interpolation.
    cold_keys, keys = _expert_unknown_keys(batch, reactive, config) if human_filter else (None, None)
    plans = traj if cold_keys is None else np.concatenate([traj, _logged_plans(batch, config)], 1)
    raw = raw_metrics_chunked(batch, plans, reactive, config)
    if cold_keys is not None:
        _remember_expert(cold_keys, np.arange(S), raw, C)
        expert_col = {k: raw[k][:, C] for k in _RAW_KEYS}
        raw = {k: v[:, :C] for k, v in raw.items()}
    if cold_keys is not None:  # just simulated: the same values the cache now holds
        expert = {k: expert_col[k].copy() for k in _RAW_KEYS}
    elif human_filter:
        expert = _expert_filter_metrics(batch, reactive, config, keys)
    else:  # placeholder column, ignored by combine
        expert = {k: v[:, 0] for k, v in raw.items()}
    raw = {k: np.concatenate([v, expert[k].astype(v.dtype)[:, None]], 1) for k, v in raw.items()}
    return combine(raw, C, reference_progress, human_filter, ec, config)
