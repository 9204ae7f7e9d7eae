"""Closed-loop evaluation of planners (and baselines) with the EPDMS scorer.

:func:`evaluate_planner` plans every scene, scores the plans in closed loop (one candidate per
scene) and returns an :class:`EvalResult` with per-scene arrays — EPDMS and every sub-score, L2
displacement to the logged future at 1/2/3 s, a collision flag, the plan — and aggregates.
:func:`evaluate_baselines` does the same for the constant-velocity, logged-expert and rule
planners, and :func:`comparison_table` lines results up side by side.

Extended comfort (EC) is scored by two-stage evaluation (:mod:`autoscale_core.sim.two_stage`):
given the planner, it plans again one step later from nearby starts, and EC compares the two
plans; EPDMS then carries that EC (``two_stage=True``, the default of :func:`evaluate_planner` and
:func:`evaluate_baselines`). Without a planner EC stays 1 (no previous plan).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import numpy as np

from ..scene import SceneBatch

SCORE_FIELDS = ("epdms", "pdms", "nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec")
L2_TIMES = (1.0, 2.0, 3.0)
BASELINES = ("constant_velocity", "logged_expert", "rule")


@dataclass
class EvalResult:
    """Per-scene evaluation of one planner on S scenes.

    Attributes:
        name: planner name.
        scene_ids: (S,) object.
        trajectories: (S, F, 3) plans (x, y, heading; scene frame).
        scores: name → (S,) float, names from :data:`SCORE_FIELDS` the scorer provides.
        l2: "l2_1s"/"l2_2s"/"l2_3s" → (S,) metres between plan and logged future at that time
            (NaN where the scene has no logged future).
        collision: (S,) bool, any collision (at fault or not) in the closed-loop rollout.
        progress: (S,) metres along the route.
        seconds: wall time of planning + scoring.
    """

    name: str
    scene_ids: np.ndarray
    trajectories: np.ndarray
    scores: dict[str, np.ndarray]
    l2: dict[str, np.ndarray]
    collision: np.ndarray
    progress: np.ndarray
    seconds: float = 0.0
    extra: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.scene_ids)

    def per_scene(self) -> dict[str, np.ndarray]:
        """Field suffix → (S,) values, ready to write as ``eval_<run>_<suffix>``."""
        return {**self.scores, **self.l2, "collision": self.collision}

    def aggregates(self) -> dict[str, float]:
        """Means over scenes (scores in [0, 1]; L2 over scenes with a logged future)."""
        out: dict[str, float] = {"num_scenes": float(len(self))}
        for k, v in self.scores.items():
            out[k] = float(np.mean(v)) if len(v) else float("nan")
        for k, v in self.l2.items():
            out[k] = float(np.nanmean(v)) if np.isfinite(v).any() else float("nan")
        out["collision_rate"] = float(np.mean(self.collision)) if len(self) else float("nan")
        out["progress_m"] = float(np.mean(self.progress)) if len(self) else float("nan")
        out["scenes_per_second"] = float(len(self) / self.seconds) if self.seconds > 0 else float("nan")
        return out


def expert_available(batch: SceneBatch) -> np.ndarray:
    """(S,) bool: the scene has a usable logged future (meta ``has_expert`` wins when present)."""
    if "has_expert" in batch.meta:
        flag = np.asarray(batch.meta["has_expert"]).astype(bool)
    else:
        flag = np.ones(len(batch), bool)
    return flag & np.isfinite(batch.expert_trajectory()).all(axis=(1, 2))


def l2_errors(batch: SceneBatch, trajectories: np.ndarray, times=L2_TIMES) -> dict[str, np.ndarray]:
    """"l2_<t>s" → (S,) xy distance (m) between plan and logged future at time t (NaN without future)."""
    expert = batch.expert_trajectory()
    has = expert_available(batch)
    out = {}
    for t in times:
        i = int(round(t / batch.dt)) - 1
        if not 0 <= i < expert.shape[1]:
            raise ValueError(f"L2 at {t} s is outside the {expert.shape[1] * batch.dt} s horizon")
        d = np.sqrt(((trajectories[:, i, :2] - expert[:, i, :2]) ** 2).sum(-1))
        out[f"l2_{t:g}s"] = np.where(has, d, np.nan).astype(np.float32)
    return out


def evaluate_trajectories(
    batch: SceneBatch,
    trajectories: np.ndarray,
    *,
    name: str = "planner",
    reactive: bool = False,
    scorer: Callable | None = None,
    plan_seconds: float = 0.0,
    executor=None,
    scenes_per_task: int | None = None,
    planner: Callable[[SceneBatch], np.ndarray] | None = None,
) -> EvalResult:
    """Score given plans (S, F, 3) in closed loop (see :class:`EvalResult`).

    ``planner`` (the function that made ``trajectories``: scenes → (S, F, 3)) turns on two-stage
    EC (:func:`apply_two_stage_comfort`); without it EC = 1.

    ``executor`` (``None``: in this process, as before; or ``"serial"``, ``"process[:N]"``,
    ``"ray[:address]"``, an :class:`~autoscale_core.executor.Executor`) scores chunks of
    ``scenes_per_task`` scenes through it (:func:`~autoscale_core.sim.batch.score_trajectories_parallel`);
    the scores are identical. A custom ``scorer`` must then be picklable (module-level).
    """
    if len(batch) == 0:
        raise ValueError("cannot evaluate on an empty batch (0 scenes)")
    trajectories = np.asarray(trajectories, np.float32)
    if trajectories.shape != (len(batch), batch.future_steps, 3):
        raise ValueError(f"trajectories have shape {trajectories.shape}, expected ({len(batch)}, {batch.future_steps}, 3)")
    start = time.perf_counter()
    if executor is not None:
        from ..sim.batch import SCENES_PER_TASK, score_trajectories_parallel

        result = score_trajectories_parallel(batch, trajectories[:, None], executor=executor,
                                             scorer=scorer or default_score,
                                             scenes_per_task=scenes_per_task or SCENES_PER_TASK, reactive=reactive)
    elif scorer is None:
        result = default_score(batch, trajectories[:, None], reactive=reactive)
    else:
        result = scorer(batch, trajectories[:, None], reactive=reactive)
    scores = {k: np.asarray(getattr(result, k))[:, 0].astype(np.float32) for k in SCORE_FIELDS if hasattr(result, k)}
    extra = {}
    if planner is not None:
        extra["two_stage"] = apply_two_stage_comfort(scores, batch, trajectories, planner)
    seconds = time.perf_counter() - start + plan_seconds
    collision = np.asarray(getattr(result, "collision", np.zeros((len(batch), 1), bool)))[:, 0].astype(bool)
    progress = np.asarray(getattr(result, "progress", np.full((len(batch), 1), np.nan)))[:, 0].astype(np.float32)
    return EvalResult(
        name=name, scene_ids=np.asarray(batch.meta.get("scene_id", np.arange(len(batch))), dtype=object),
        trajectories=trajectories, scores=scores, l2=l2_errors(batch, trajectories),
        collision=collision, progress=progress, seconds=seconds, extra=extra,
    )


def apply_two_stage_comfort(scores: dict[str, np.ndarray], batch: SceneBatch, trajectories: np.ndarray,
                            planner: Callable[[SceneBatch], np.ndarray]) -> dict:
    """Replace ``scores["ec"]`` (S,) by the two-stage EC of ``planner`` and move ``scores["epdms"]``
    by EC's weight (2/16) times the multipliers NC·DAC·DDC·TLC; returns a summary (means, starts)."""
    from ..sim.scoring import ScorerConfig
    from ..sim.two_stage import two_stage_comfort

    comfort = two_stage_comfort(batch, planner, trajectories)
    config = ScorerConfig()
    multipliers = scores["nc"] * scores["dac"] * scores["ddc"] * scores["tlc"]
    w_ec = config.weights[-1] / sum(config.weights)
    new_ec = comfort.ec.astype(np.float32)
    scores["epdms"] = (scores["epdms"] + multipliers * w_ec * (new_ec - scores["ec"])).astype(np.float32)
    scores["ec"] = new_ec
    return {
        "starts": int(comfort.weights.shape[1]),
        "ec_mean": float(new_ec.mean()),
        "ec_below_1_share": float((new_ec < 1.0).mean()),
        "ec_unweighted_mean": float(comfort.ec_per_start.mean()),
    }


def reference_progress(batch: SceneBatch) -> np.ndarray:
    """(S,) EP denominators (m) from the rule planner: the values stored in ``batch.meta`` by
    ``sim.scoring.precompute_reference_progress`` where they still match the scene, else cached
    per scene content (id + fingerprint of ego, agents and map) in the scorer's metric cache."""
    from ..sim.scoring import cached_reference_progress

    return cached_reference_progress(batch)


def default_score(batch: SceneBatch, trajectories: np.ndarray, reactive: bool = False):
    """The EPDMS scorer with the per-scene cached EP reference (same result as calling it plainly)."""
    from ..sim.scoring import ScorerConfig, score_trajectories

    if ScorerConfig().progress_reference != "rule_planner":
        return score_trajectories(batch, trajectories, reactive=reactive)
    return score_trajectories(batch, trajectories, reactive=reactive, reference_progress=reference_progress(batch))


def evaluate_planner(trained, batch: SceneBatch, reactive: bool = False, scorer: Callable | None = None,
                     name: str | None = None, executor=None, two_stage: bool = True) -> EvalResult:
    """Plan every scene with ``trained`` (a TrainedPlanner) and score the plans (through
    ``executor`` when given; see :func:`evaluate_trajectories`); ``two_stage``: EC by two-stage
    evaluation (the planner plans again from the stage-2 starts)."""
    if len(batch) == 0:
        raise ValueError("cannot evaluate on an empty batch (0 scenes)")
    start = time.perf_counter()
    plans = trained.plan(batch)
    return evaluate_trajectories(batch, plans, name=name or trained.kind, reactive=reactive, scorer=scorer,
                                 plan_seconds=time.perf_counter() - start, executor=executor,
                                 planner=trained.plan if two_stage else None)


def baseline_plans(batch: SceneBatch, name: str) -> np.ndarray:
    """(S, F, 3) plans of a baseline: "constant_velocity", "logged_expert" or "rule"."""
    from ..sim import planner as sim_planner

    if name == "constant_velocity":
        return sim_planner.constant_velocity(batch)
    if name == "logged_expert":
        return sim_planner.logged_expert(batch)
    if name == "rule":
        return sim_planner.RulePlanner().plan(batch)
    raise ValueError(f"unknown baseline {name!r}: use one of {BASELINES}")


def evaluate_baselines(batch: SceneBatch, names=BASELINES, reactive: bool = False,
                       scorer: Callable | None = None, executor=None, two_stage: bool = True) -> dict[str, EvalResult]:
    """Evaluate each named baseline on ``batch`` (scoring through ``executor`` when given; one
    executor — e.g. one Ray session — serves all baselines; ``two_stage``: EC by two-stage
    evaluation, see :func:`evaluate_planner`)."""
    from ..executor import resolve_executor

    pool, close = resolve_executor(executor, num_tasks=2)
    results = {}
    try:
        for name in names:
            start = time.perf_counter()
            plans = baseline_plans(batch, name)
            results[name] = evaluate_trajectories(batch, plans, name=name, reactive=reactive, scorer=scorer,
                                                  plan_seconds=time.perf_counter() - start, executor=pool,
                                                  planner=partial(baseline_plans, name=name) if two_stage else None)
    finally:
        if close:
            pool.close()
    return results


def comparison_table(results: dict[str, EvalResult], keys=("epdms", "nc", "dac", "ddc", "tlc", "ep", "ttc", "lk",
                                                               "hc", "l2_1s", "l2_2s", "l2_3s", "collision_rate")) -> list[dict]:
    """One row per planner with its aggregate metrics (missing ones omitted)."""
    rows = []
    for name, result in results.items():
        agg = result.aggregates()
        rows.append({"planner": name, **{k: round(agg[k], 4) for k in keys if k in agg}})
    return rows
