"""Batch scoring through the executor: :func:`score_trajectories_parallel`.

The scenes are split into chunks of ``scenes_per_task``; each chunk is scored by
:func:`~autoscale_core.sim.scoring.score_trajectories` as one executor task (:class:`ScoreTask`)
and the per-scene fields of the results are concatenated along axis 0. Every metric of a scene
depends only on that scene (its plans, agents, map and the logged expert), so the result is the
same as one ``score_trajectories`` call on the whole batch, whichever executor runs the chunks.

A chunk that fails on every attempt raises :class:`~autoscale_core.executor.TaskError` naming
the chunk (rows and scene ids) and the cause (e.g. ``ValueError: trajectories contain NaN or inf
for scene(s) '…'``); no chunk is ever left out of the result.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, is_dataclass
from typing import Any, Callable

import numpy as np

from ..executor import Executor, SceneChunk, default_executor, resolve_executor
from ..scene import SceneBatch
from .scoring import ScoreResult, score_trajectories

__all__ = ["ScoreTask", "score_trajectories_parallel", "concatenate_results", "SCENES_PER_TASK"]

SCENES_PER_TASK = 64
_PER_SCENE = ("trajectories", "previous_plans", "reference_progress")


@dataclass(frozen=True)
class ScoreTask:
    """Score one :class:`SceneChunk` (``extra`` holds its rows of the per-scene arrays).

    Picklable (module-level class of plain settings); ``scorer`` must be picklable too (a
    module-level function) for the process and Ray executors. ``kwargs`` go to the scorer.
    """

    kwargs: tuple = ()  # sorted (name, value) pairs: hashable, picklable
    scorer: Callable | None = None

    def __call__(self, chunk: SceneChunk) -> Any:
        scorer = self.scorer or score_trajectories
        extra = {k: v for k, v in chunk.extra.items() if k != "trajectories" and v is not None}
        return scorer(chunk.scenes, chunk.extra["trajectories"], **dict(self.kwargs), **extra)


def concatenate_results(results: list) -> Any:
    """One result from per-chunk results (same dataclass, array fields joined along axis 0)."""
    if len(results) == 1:
        return results[0]
    first = results[0]
    if not is_dataclass(first):
        raise TypeError(f"cannot concatenate scorer results of type {type(first).__name__}: expected a dataclass "
                        "such as ScoreResult")
    joined = {}
    for f in fields(first):
        values = [getattr(r, f.name) for r in results]
        joined[f.name] = np.concatenate([np.asarray(v) for v in values], axis=0) \
            if isinstance(values[0], np.ndarray) else values[0]
    return type(first)(**joined)


def score_trajectories_parallel(
    batch: SceneBatch,
    trajectories: np.ndarray,
    *,
    executor: str | Executor | None = None,
    scenes_per_task: int = SCENES_PER_TASK,
    previous_plans: np.ndarray | None = None,
    reference_progress: np.ndarray | None = None,
    scorer: Callable | None = None,
    **score_kwargs,
) -> ScoreResult:
    """:func:`~autoscale_core.sim.scoring.score_trajectories` on chunks of scenes through an executor.

    Args:
        batch: S scenes.
        trajectories: (S, C, F, 3) plans (see ``score_trajectories``).
        executor: ``"serial"``, ``"process[:N]"``, ``"ray[:address]"`` or an Executor; ``None``
            is :func:`~autoscale_core.executor.default_executor` (``AUTOSCALE_EXECUTOR``, else
            ``process``). With a single chunk the scoring
            runs in this process (no pool, no Ray start). A name's executor is closed after use;
            an Executor instance is left open (reuse it across calls, e.g. one Ray session).
        scenes_per_task: scenes per task (bounds each task's memory; more tasks balance better).
        previous_plans, reference_progress: per-scene inputs, split with the scenes.
        scorer: ``scorer(batch, trajectories, **kwargs)`` returning a dataclass of per-scene
            arrays (default ``score_trajectories``); picklable for process / Ray.
        **score_kwargs: ``reactive``, ``config``, ``human_filter`` — passed to every task.

    Returns:
        the same :class:`ScoreResult` one ``score_trajectories`` call gives (every field
        bit-identical).

    Raises:
        ValueError: ``scenes_per_task`` < 1, or trajectories whose first dimension is not S.
        TaskError: a chunk failed on every attempt (names its rows, scene ids and the cause).
    """
    if isinstance(scenes_per_task, bool) or int(scenes_per_task) != scenes_per_task or scenes_per_task < 1:
        raise ValueError(f"scenes_per_task must be an integer >= 1, got {scenes_per_task!r}")
    S = len(batch)
    per_scene = {"trajectories": trajectories, "previous_plans": previous_plans,
                 "reference_progress": reference_progress}
    for name, value in per_scene.items():
        if value is not None and (np.ndim(value) == 0 or len(value) != S):
            shape = np.shape(value)
            raise ValueError(f"{name} has shape {shape}: its first dimension must be the {S} scenes of the batch")
    task = ScoreTask(tuple(sorted(score_kwargs.items())), scorer)
    starts = range(0, max(S, 1), int(scenes_per_task))
    spec = executor if executor is not None else default_executor()
    pool, close = resolve_executor(spec, len(starts))
    try:
        chunks = [
            SceneChunk(batch.subset(slice(s, s + scenes_per_task)) if len(starts) > 1 else batch, s,
                       extra={k: (None if v is None else np.asarray(v)[s : s + scenes_per_task])
                              for k, v in per_scene.items()}, label="scoring")
            for s in starts
        ]
        results = [task(c) for c in chunks] if pool is None else pool.map(task, chunks)
    finally:
        if close:
            pool.close()
    return concatenate_results(results)
