"""Baselines: random, coreset (k-center greedy), uncertainty (MC-dropout), and co-training.

* :class:`RandomSelector` — a seeded uniform sample.
* :class:`CoresetSelector` — k-center greedy on the embeddings (Sener & Savarese 2018): start
  from the given already-labelled centres (or the scene nearest the mean), repeatedly add the
  scene farthest from all chosen centres. Vectorised: one (n,) min-distance array updated per pick.
* :class:`UncertaintySelector` — top-m by ``pool.scores["uncertainty"]``, e.g. from
  :func:`mc_dropout_uncertainty` (variance of the planner's MC-dropout plans).
* :class:`HardExampleSelector` — hard-example mining: top-m by ``pool.scores["importance"]``
  (1 − EPDMS of the current planner), the scenes it drives worst. The one selector that beats
  random on the selection protocol (``benchmarks/results/selection_protocol.md``).
* :class:`AllSyntheticSelector` / :class:`RandomSyntheticSelector` — vanilla co-training with a
  synthetic pool: all of it, or a random subset at the same budget.
"""

from __future__ import annotations

import numpy as np

from ..representation.value import mc_uncertainty
from .base import Pool, SelectionResult, make_result, validate_budget

__all__ = [
    "RandomSelector",
    "CoresetSelector",
    "UncertaintySelector",
    "HardExampleSelector",
    "AllSyntheticSelector",
    "RandomSyntheticSelector",
    "k_center_greedy",
    "mc_dropout_uncertainty",
]


class RandomSelector:
    """Uniform random ``budget`` scenes (seeded)."""

    name = "random"

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def select(self, pool: Pool, budget: int) -> SelectionResult:
        budget = validate_budget(budget, len(pool))
        order = np.random.default_rng(self.seed).permutation(len(pool))[:budget]
        return make_result(self.name, pool, order, explanation=f"uniform random sample (seed {self.seed})", config={"seed": self.seed})


def k_center_greedy(embeddings: np.ndarray, budget: int, initial: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """k-center greedy.

    Args:
        embeddings: (n, d).
        budget: number of new centres to pick.
        initial: (m,) positions already covered (not returned), or None → start from the point
            nearest the mean (deterministic).
    Returns:
        (order (budget,) int64 picked positions, radius (budget,) the covering radius *before* each
        pick, non-increasing).
    """
    x = np.asarray(embeddings, dtype=np.float64)
    n = len(x)
    sq = (x * x).sum(1)

    def dist_to(i: int) -> np.ndarray:
        return np.sqrt(np.maximum(sq - 2.0 * x @ x[i] + sq[i], 0.0))

    min_dist = np.full(n, np.inf)
    order, radius = [], []
    if initial is not None and len(initial):
        initial = np.asarray(initial, dtype=np.int64)
        for start in range(0, len(initial), 1024):  # chunked (m, n) distances
            block = x[initial[start : start + 1024]]
            d = np.sqrt(np.maximum(sq[None, :] - 2.0 * block @ x.T + (block * block).sum(1)[:, None], 0.0))
            min_dist = np.minimum(min_dist, d.min(0))
        min_dist[initial] = -1.0  # never re-picked
    else:
        first = int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
        order.append(first)
        radius.append(np.inf)
        min_dist = dist_to(first)
        min_dist[first] = -1.0
    while len(order) < budget:
        i = int(np.argmax(min_dist))
        order.append(i)
        radius.append(float(min_dist[i]))
        min_dist = np.minimum(min_dist, dist_to(i))
        min_dist[i] = -1.0
    return np.asarray(order, dtype=np.int64), np.asarray(radius)


class CoresetSelector:
    """k-center greedy on ``pool.embeddings``; ``covered`` positions count as already chosen."""

    name = "coreset"

    def select(self, pool: Pool, budget: int, *, covered: np.ndarray | None = None) -> SelectionResult:
        budget = validate_budget(budget, len(pool))
        embeddings = pool.require_embeddings("coreset (k-center greedy)")
        if covered is not None and budget > len(pool) - len(np.unique(covered)):
            raise ValueError(f"budget {budget} is larger than the {len(pool) - len(np.unique(covered))} uncovered scenes")
        order, radius = k_center_greedy(embeddings, budget, covered)
        final = float(radius[-1]) if len(radius) else float("nan")
        return make_result(
            self.name, pool, order, explanation=f"k-center greedy on {embeddings.shape[1]}-d embeddings; covering radius at the last pick {final:.3f}",
            config={"covered": 0 if covered is None else int(len(covered))}, diagnostics={"radius": radius.tolist()},
        )


def mc_dropout_uncertainty(trained, batch, passes: int = 10, seed: int = 0) -> np.ndarray:
    """(S,) MC-dropout uncertainty U = tr(Cov) (ddof 1) of the K = ``passes`` plans' xy positions
    (the 8 poses flattened; m²) — ``representation.value.mc_uncertainty``, the one U.

    ``trained`` is a ``TrainedPlanner`` (its ``sample(batch, k)`` returns (k, S, F, 3) plans with
    dropout active).
    """
    import torch

    if passes < 2:
        raise ValueError(f"MC-dropout needs at least 2 passes, got {passes}")
    torch.manual_seed(seed)
    plans = np.asarray(trained.sample(batch, passes), dtype=np.float64)  # (k, S, F, 3)
    return mc_uncertainty(plans[..., :2].reshape(len(plans), plans.shape[1], -1))


class UncertaintySelector:
    """Top-m by ``pool.scores["uncertainty"]`` (descending)."""

    name = "uncertainty"

    def select(self, pool: Pool, budget: int) -> SelectionResult:
        budget = validate_budget(budget, len(pool))
        u = pool.require_score("uncertainty", "uncertainty sampling")
        order = np.lexsort((np.arange(len(u)), -u))[:budget]
        return make_result(self.name, pool, order, explanation=f"top-{budget} by MC-dropout uncertainty (>= {u[order].min():.4g})")


class HardExampleSelector:
    """Hard-example mining: top-m by ``pool.scores["importance"]`` = 1 − EPDMS of the current
    planner (descending; ties by pool order, so the pick is deterministic)."""

    name = "hard_mining"

    def select(self, pool: Pool, budget: int) -> SelectionResult:
        budget = validate_budget(budget, len(pool))
        failure = pool.require_score("importance", "hard-example mining")
        order = np.lexsort((np.arange(len(failure)), -failure))[:budget]
        return make_result(self.name, pool, order,
                           explanation=f"top-{budget} by 1 - EPDMS of the current planner (>= {failure[order].min():.3f})")


class AllSyntheticSelector:
    """Vanilla co-training: the whole synthetic pool (the budget must equal the pool size or be None)."""

    name = "all_synthetic"

    def select(self, pool: Pool, budget: int | None = None) -> SelectionResult:
        budget = validate_budget(len(pool) if budget is None else budget, len(pool))
        if budget != len(pool):
            raise ValueError(f"all-synthetic uses the whole pool ({len(pool)} scenes), not a budget of {budget}")
        return make_result(self.name, pool, np.arange(len(pool)), explanation=f"all {len(pool)} synthetic scenes")


class RandomSyntheticSelector(RandomSelector):
    """Vanilla co-training at a budget: a random subset of the synthetic pool."""

    name = "random_synthetic"
