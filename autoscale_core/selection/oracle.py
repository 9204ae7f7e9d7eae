"""Oracles: ``train_and_evaluate(indices, weights, seed) -> score``.

* :class:`PlannerOracle` — the real closed loop: train a planner on a base set plus the chosen
  pool scenes (``autoscale_core.planning.train.train_planner``) and score it in simulation on a
  validation split (``autoscale_core.planning.evaluate.evaluate_planner``); returns mean EPDMS × 100.
* :class:`SyntheticOracle` — an analytic stand-in with known structure (per-domain saturating
  gains, per-scene quality, seeded noise) used by the unit tests and the ``--smoke`` benchmarks to
  check that the *algorithms* do what they claim; it does not replace the planner in experiments.

Both are picklable module-level classes, so they can be shipped to process-pool or Ray workers;
pass ``(indices, weights, seed)`` tuples through :meth:`as_task` / :func:`run_oracle_task`.
"""

from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["SyntheticOracle", "PlannerOracle", "OracleTask", "run_oracle_task", "torch_threads"]


@contextmanager
def torch_threads(num_threads: int | None):
    """Run a block with ``torch.set_num_threads(num_threads)`` (None: unchanged), then restore.

    One thread per training run gives results independent of the executor, and on a shared
    2-core machine it is also much faster than oversubscribed intra-op threads.
    """
    import torch

    previous = torch.get_num_threads()
    if num_threads:
        torch.set_num_threads(int(num_threads))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


@dataclass(frozen=True)
class OracleTask:
    """One oracle call as a picklable item: pool positions, optional weights, seed, and a tag."""

    indices: tuple[int, ...]
    weights: tuple[float, ...] | None
    seed: int
    tag: str = ""


class run_oracle_task:  # noqa: N801 - a picklable callable, used like a function
    """``run_oracle_task(oracle)(task) -> float``: adapts an oracle to ``Executor.map``."""

    def __init__(self, oracle):
        self.oracle = oracle

    def __call__(self, task: OracleTask) -> float:
        weights = None if task.weights is None else np.asarray(task.weights, dtype=np.float64)
        score = float(self.oracle(np.asarray(task.indices, dtype=np.int64), weights, int(task.seed)))
        if not np.isfinite(score):
            raise ValueError(f"oracle returned a non-finite score {score} for task {task.tag!r}")
        return score


class SyntheticOracle:
    """score = base + Σ_d a_d · (1 − exp(−m_d / τ_d)) + noise.

    ``m_d`` is the quality-weighted count of chosen scenes in domain d:
    Σ_{i chosen, domain(i)=d} weight_i · quality_i. Quality favours high-importance scenes so that
    within-domain ranking matters. Noise is N(0, noise²) from ``seed`` (the same seed → the same
    score), optionally plus a per-scene "harm" term for scenes flagged harmful.

    Args:
        domains: (n,) int domain of each pool scene.
        a: (D,) asymptotic gains (EPDMS points); tau: (D,) saturation scales (quality units).
        quality: (n,) per-scene quality ≥ 0 (default 1).
        base: score with no pool scenes.
        noise: std of the seeded noise.
        fail_on: optional set of seeds on which the oracle raises (to test failure handling).
    """

    def __init__(self, domains, a, tau, quality=None, base: float = 50.0, noise: float = 0.0, fail_on=()):
        self.domains = np.asarray(domains, dtype=np.int64)
        self.a = np.asarray(a, dtype=np.float64)
        self.tau = np.asarray(tau, dtype=np.float64)
        self.quality = np.ones(len(self.domains)) if quality is None else np.asarray(quality, dtype=np.float64)
        self.base, self.noise, self.fail_on = float(base), float(noise), frozenset(fail_on)

    def effective_counts(self, indices: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
        indices = np.asarray(indices, dtype=np.int64)
        w = np.ones(len(indices)) if weights is None else np.asarray(weights, dtype=np.float64)
        return np.bincount(self.domains[indices], weights=w * self.quality[indices], minlength=len(self.a))

    def expected(self, indices: np.ndarray, weights: np.ndarray | None = None) -> float:
        m = self.effective_counts(indices, weights)
        return float(self.base + (self.a * -np.expm1(-m / self.tau)).sum())

    def __call__(self, indices: np.ndarray, weights: np.ndarray | None, seed: int) -> float:
        if seed in self.fail_on:
            raise RuntimeError(f"synthetic oracle failure on seed {seed}")
        rng = np.random.default_rng([int(seed) & 0xFFFFFFFF, len(indices)])
        return self.expected(indices, weights) + self.noise * float(rng.standard_normal())


def schedule_steps(num_scenes: int, min_steps: int, epochs: float | None, batch_size: int) -> int:
    """Steps of one training: ``min_steps`` alone (fixed schedule, ``epochs=None``) or
    ``max(min_steps, ceil(epochs * num_scenes / batch_size))``.

    Why epochs: with a fixed number of steps, adding scenes only dilutes the minibatches, so a
    bigger selection is never trained more and the random learning curve comes out flat (the
    selection protocol measured exactly that; see ``benchmarks/results/selection_schedule.md``).
    """
    if epochs is None:
        return int(min_steps)
    if epochs <= 0 or batch_size < 1:
        raise ValueError(f"epochs must be > 0 and batch_size >= 1, got epochs={epochs}, batch_size={batch_size}")
    return max(int(min_steps), int(math.ceil(float(epochs) * int(num_scenes) / int(batch_size))))


class PlannerOracle:
    """The closed loop: train on ``base + pool[indices]``, return mean EPDMS (×100) on ``val``.

    Args:
        base: SceneBatch always trained on (may be empty-length 0 → only pool scenes).
        pool: SceneBatch of candidates; ``indices`` index it.
        val: SceneBatch the trained planner is scored on (never the test split when tuning).
        planner: planner name passed to ``train_planner``.
        steps: training steps; with ``epochs`` the minimum number of steps.
        epochs: if set, each training runs ``max(steps, ceil(epochs * n / batch_size))`` steps for
            a training set of n scenes (:func:`schedule_steps`), so a larger selection is also
            trained on longer; None keeps the fixed ``steps`` for every size.
        num_threads: torch threads inside a call (1 → identical results in any executor).
        train_kwargs: extra keyword arguments for ``train_planner``.
        two_stage: score extended comfort by two-stage evaluation (about 6x the scoring cost of
            each call); off by default in the oracle, whose many pilot runs compare planners on
            the same footing either way.
    """

    def __init__(self, base, pool, val, *, planner: str = "regression", steps: int = 200, num_threads: int = 1,
                 train_kwargs: dict[str, Any] | None = None, two_stage: bool = False, epochs: float | None = None):
        self.base, self.pool, self.val = base, pool, val
        self.two_stage = bool(two_stage)
        self.planner, self.steps, self.num_threads = planner, int(steps), int(num_threads)
        self.epochs = None if epochs is None else float(epochs)
        self.train_kwargs = dict(train_kwargs or {})

    def steps_for(self, num_scenes: int) -> int:
        """Training steps for a training set of ``num_scenes`` scenes (see ``epochs``)."""
        return schedule_steps(num_scenes, self.steps, self.epochs, int(self.train_kwargs.get("batch_size") or 256))

    def training_set(self, indices: np.ndarray, weights: np.ndarray | None):
        from ..scene import SceneBatch

        indices = np.asarray(indices, dtype=np.int64)
        bad = (indices < 0) | (indices >= len(self.pool))
        if bad.any():
            raise ValueError(f"pool index {int(indices[bad][0])} is out of range for a pool of {len(self.pool)} scenes")
        if weights is not None and np.shape(weights) != indices.shape:
            raise ValueError(f"{np.size(weights)} weights for {len(indices)} selected scenes")
        parts = [b for b in (self.base, self.pool.subset(indices)) if b is not None and len(b) > 0]
        if not parts:
            raise ValueError("the training set is empty (no base scenes and no pool scenes selected)")
        batch = SceneBatch.concatenate(parts)
        base_n = 0 if self.base is None else len(self.base)
        w = np.ones(len(batch))
        if weights is not None:
            w[base_n:] = np.asarray(weights, dtype=np.float64)
        return batch, w

    def __call__(self, indices: np.ndarray, weights: np.ndarray | None, seed: int) -> float:
        from ..planning.evaluate import evaluate_planner
        from ..planning.train import train_planner

        batch, sample_weight = self.training_set(indices, weights)
        with torch_threads(self.num_threads):
            trained = train_planner(
                batch, planner=self.planner, sample_weight=sample_weight, seed=int(seed), steps=self.steps_for(len(batch)),
                **self.train_kwargs
            )
            result = evaluate_planner(trained, self.val, two_stage=self.two_stage)
        return 100.0 * float(np.mean(np.asarray(result.scores["epdms"], dtype=np.float64)))
