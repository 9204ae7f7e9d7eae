"""Vectorized EPDMS scorer (NAVSIM v2 conventions; see ``shared/notes/epdms.md``).

Pipeline per batch of trajectories (S scenes × C candidates, plus the logged expert as one extra
candidate per scene for the false-positive filter):

1. ``kinematics.simulate_ego`` drives each plan at 10 Hz (41 states over 4 s);
2. ``agents.simulate_agents`` gives the other agents (log replay or reactive IDM);
3. every sub-metric is computed on those states, vectorized over trajectories × steps × agents:

* **NC** — oriented-box overlap (separating axis theorem) between the ego and each valid agent at
  every step; only an agent's *first* collision counts, classified as nuPlan does, in this order:
  the ego is stopped (< 0.05 m/s) → not at fault; the agent is stopped → at fault; the agent's
  centre is behind the ego's rear bumper (hit from behind) → not at fault; the ego's front bumper
  (the segment between its front corners) touches the agent → at fault; otherwise the agent hit the
  ego's side → at fault only if the ego occupies more than one lane at that step (no single lane
  corridor contains all four footprint corners: changing lanes, or partly off the lanes). At-fault
  collision with a static object → 0.5, with anything else → 0.
* **DAC** — each footprint corner at every step must lie within half a lane width of some lane
  centerline or inside a drivable polygon.
* **DDC** — per step, the ego's displacement projected on the direction of the lanes containing
  its centre (the most favourable lane); the summed backwards travel > 6 m → 0, > 2 m → 0.5.
* **TLC** — 0 if the ego centre enters an aligned (|Δheading| < 60°) lane whose light is red at
  that time, which it was not in at t0, while in no aligned lane whose light is not red. TL_UNKNOWN
  lanes are not applicable and flagged in ``tl_unknown``.
* **EP** — progress along ``route_polyline`` (projection of the final vs the initial state) ÷ the
  best progress among the rule planner's collision- and drivable-compliant proposals
  (``progress_reference="rule_planner"``, default, independent of the candidate set) or among the
  scored candidates themselves (``"candidates"``, PDM-Closed's internal use); EP = 1 when that
  best is below 5 m.
* **TTC** — at each step with the ego moving, ego and agents are projected at constant velocity
  0.3, 0.6 and 0.9 s ahead; an overlap with an agent not behind the ego and not already colliding
  → 0.
* **LK** — the ego centre is more than 0.5 m from every aligned (|Δheading| < 90°) lane centerline
  for more than 2 s in a row, outside intersection lanes → 0.
* **HC** — nuPlan's comfort bounds on the driven 10 Hz states (Savitzky–Golay derivatives,
  window 5, polyorder 2).
* **EC** — only with ``previous_plans`` (the previous frame's plan, in the current scene frame,
  pose j at t = j·dt): RMS differences of the plans' finite-difference acceleration, jerk, yaw
  rate and yaw acceleration over the overlap; 1 otherwise.

False-positive filter (``human_filter=True``): a multiplier or weighted metric (all but EP) that
the logged expert also fails in that scene is set to 1. ``pdms`` (v1) uses the unfiltered metrics:
NC · DAC · (5·TTC + 5·EP + 2·HC) / 12.

Modules, bottom up (no module imports one above it): :mod:`.config` (``ScorerConfig``,
``ScoreResult``), per-metric kernels :mod:`.lanes`, :mod:`.collisions`, :mod:`.comfort`,
:mod:`.raw_metrics`, the EPDMS aggregation :mod:`.aggregate`, the bounded per-scene
:mod:`.metric_cache`, the pure scorer :mod:`.scorer` (``score_plans``), the rule planner
:mod:`.planner`, and this module, which owns the EP reference (the rule planner's progress,
cached and stored in ``batch.meta``) and re-exports the scorer's public names.
"""

from __future__ import annotations

import numpy as np

from ..scene import SceneBatch
from .aggregate import combine
from .collisions import collisions
from .comfort import comfort_ok, extended_comfort, plan_profiles
from .config import FILTERED, METRICS, ScorerConfig, ScoreResult
from .lanes import LaneIndex, in_multiple_lanes, points_in_scene_polygons, route_progress
from .metric_cache import (
    HUMAN_FAIL_KEY,
    METRIC_CACHE,
    REFERENCE_FINGERPRINT_KEY,
    REFERENCE_KEY,
    MetricCache,
    scene_fingerprints,
    scene_keys,
    stored_reference_progress,
)
from .planner import RulePlanner
from .raw_metrics import raw_metrics, raw_metrics_chunked
from .scorer import expert_raw_metrics, prepare, score_plans, validate_trajectories

__all__ = [
    "FILTERED", "HUMAN_FAIL_KEY", "METRICS", "METRIC_CACHE", "REFERENCE_FINGERPRINT_KEY", "REFERENCE_KEY",
    "LaneIndex", "MetricCache", "ScoreResult", "ScorerConfig", "cached_reference_progress", "collisions", "combine",
    "comfort_ok", "expert_raw_metrics", "extended_comfort", "in_multiple_lanes", "plan_profiles",
    "points_in_scene_polygons", "precompute_reference_progress", "prepare", "raw_metrics", "raw_metrics_chunked",
    "route_progress", "rule_planner_progress", "scene_fingerprints", "scene_keys", "score_plans",
    "score_trajectories", "stored_reference_progress", "validate_trajectories",
]

# Views of the metric cache by kind (clear() / len()), as the tests and benchmarks inspect them.
_PROGRESS_CACHE = METRIC_CACHE.section("ep_reference")
_EXPERT_CACHE = METRIC_CACHE.section("expert")


def rule_planner_progress(batch: SceneBatch) -> np.ndarray:
    """(S,) EP denominator: best compliant progress of the default :class:`RulePlanner`'s
    proposals. Cached per scene content in :data:`METRIC_CACHE`, so repeated scoring of the same
    scenes does not re-plan."""
    keys = [("ep_reference", *key) for key in scene_keys(batch)]
    values = np.array([METRIC_CACHE.get(k, np.nan) for k in keys], dtype=np.float64)
    missing = np.flatnonzero(np.isnan(values))
    if len(missing):
        values[missing] = RulePlanner().reference_progress(batch.subset(missing))
        for i in missing:
            METRIC_CACHE.put(keys[i], float(values[i]))
    return values


def precompute_reference_progress(batch: SceneBatch, *, store: bool = True) -> np.ndarray:
    """(S,) float64 EP denominators (m): the rule planner's best compliant progress per scene.

    Run once at dataset creation. With ``store`` the values are written to
    ``batch.meta["ep_reference_m"]`` (float) together with ``batch.meta["ep_reference_fp"]``, the
    scene's content fingerprint, and ``batch.meta["human_fail_mask"]`` (int, bit i set when the
    logged expert fails ``FILTERED[i]`` with log-replay agents and the default config: the human
    filter's input); :func:`score_trajectories` then uses the stored values for every
    scene whose content still matches them (a scene derived by editing a copy, e.g. a synthetic
    perturbation that inherits its parent's metadata, no longer matches and is recomputed).
    """
    values = rule_planner_progress(batch)
    if store:
        expert = expert_raw_metrics(batch, False, ScorerConfig())
        mask = sum((expert[k] < 1.0).astype(np.int64) << i for i, k in enumerate(FILTERED) if k in expert)
        batch.meta[REFERENCE_KEY] = values.astype(np.float64)
        batch.meta[REFERENCE_FINGERPRINT_KEY] = np.array(scene_fingerprints(batch), dtype=object)
        batch.meta[HUMAN_FAIL_KEY] = np.asarray(mask, dtype=np.int64)
    return values


def cached_reference_progress(batch: SceneBatch) -> np.ndarray:
    """(S,) EP denominators (m): stored in ``batch.meta`` where valid, else the rule planner's
    (:func:`rule_planner_progress`, cached per scene content)."""
    values = stored_reference_progress(batch)
    missing = np.flatnonzero(~np.isfinite(values))
    if len(missing) == len(batch):
        return rule_planner_progress(batch)
    if len(missing):
        values[missing] = rule_planner_progress(batch.subset(missing))
    return values


def score_trajectories(
    batch: SceneBatch,
    trajectories: np.ndarray,
    *,
    reactive: bool = False,
    config: ScorerConfig = ScorerConfig(),
    human_filter: bool = True,
    previous_plans: np.ndarray | None = None,
    reference_progress: np.ndarray | None = None,
) -> ScoreResult:
    """Score (S, C, 8, 3) planned trajectories with EPDMS (see the module docstring).

    Args:
        batch: S scenes. With ``progress_reference="rule_planner"`` (default) the EP denominator
            is ``batch.meta["ep_reference_m"]`` where present and valid (see
            :func:`precompute_reference_progress`), else computed and cached per scene.
        trajectories: (S, C, F, 3) poses at t = dt … F·dt in the scene frame (F = config.num_poses).
        reactive: agents react with IDM (True) or replay the log (False, NAVSIM's default).
        human_filter: NAVSIM v2's false-positive filter against the logged expert (whose metrics
            are cached per scene).
        previous_plans: optional (S, F, 3) or (S, C, F, 3) previous-frame plans for EC.
        reference_progress: optional (S,) EP denominator (m); default per ``config.progress_reference``.

    Returns:
        :class:`ScoreResult` with (S, C) arrays.

    Raises:
        ValueError naming the scene for NaN/inf poses, a wrong shape or horizon, or C = 0.
    """
    if reference_progress is None and config.progress_reference == "rule_planner":
        reference_progress = cached_reference_progress
    return score_plans(batch, trajectories, reactive=reactive, config=config, human_filter=human_filter,
                       previous_plans=previous_plans, reference_progress=reference_progress)
