"""AutoScale: cluster-mixture optimisation of a synthetic pool by gradient ascent on the closed loop.

State: mixture weights w on the simplex over K clusters of the synthetic pool. Each round:

1. *Retrieve*: cluster c gets n_c = round(B · w_c) scenes (largest remainder, capped by its
   size); within the cluster the scenes nearest to the cluster centre and to the current planner's
   failure cases come first (faiss L2 search; ``retrieval_alpha`` mixes the two distances, each
   rank-normalised within the cluster).
2. *Train and evaluate* through the oracle — the current mixture and ``num_probes`` perturbed
   mixtures (antithetic pairs w ± δ·u with u a random direction in the simplex's tangent space),
   each trained with ``eval_seeds`` (3) seeds and scored by the mean, all in one
   ``Executor.map`` and with the same seeds for every mixture of a round (common random numbers).
3. *Estimate each cluster's effect*: a ridge regression of score on the mixture fractions over all
   evaluations so far, weighted by a kernel on the distance to the current w (local linear model);
   its slope projected onto the tangent space is the gradient estimate.
4. *Update*: w ← Π_simplex(w + lr · g / max|g|) (Euclidean projection onto the simplex).

``history_`` keeps, per round: weights, score of the current mixture, per-cluster counts, the
gradient and the probe scores. Picking the best round by the same scores that chose it is a
winner's curse, so with a ``confirm_oracle`` (a second val set, never test) the ``confirm_top``
best rounds are re-scored there (``eval_seeds`` fresh seeds) and the best confirmed one is the
final mixture; without it, the best round by score.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..executor import Executor, get_executor
from .allocation import proportional_allocate
from .base import Oracle, Pool, SelectionResult, make_result, validate_budget
from .oracle import OracleTask, run_oracle_task

__all__ = ["ClusterMixtureOptimizer", "project_to_simplex", "retrieval_order"]


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection of (K,) ``v`` onto {w ≥ 0, Σw = 1} (Duchi et al. 2008)."""
    v = np.asarray(v, dtype=np.float64)
    u = np.sort(v)[::-1]
    css = np.cumsum(u) - 1.0
    k = np.arange(1, len(v) + 1)
    rho = np.flatnonzero(u - css / k > 0)[-1]
    theta = css[rho] / (rho + 1)
    return np.maximum(v - theta, 0.0)


def _nearest_distance(queries: np.ndarray, references: np.ndarray) -> np.ndarray:
    """(n,) L2 distance from each query row to its nearest reference row (faiss, exact)."""
    if len(references) == 0:
        return np.zeros(len(queries))
    try:
        from ..representation.index import KnnIndex  # the project's faiss wrapper
    except ImportError:  # representation not installed: plain exact faiss
        import faiss

        index = faiss.IndexFlatL2(references.shape[1])
        index.add(np.ascontiguousarray(references, dtype=np.float32))
        dist, _ = index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
        return np.sqrt(np.maximum(dist[:, 0].astype(np.float64), 0.0))
    dist, _ = KnnIndex(kind="flat").fit(references).search(queries, 1)  # L2 distances
    return np.asarray(dist, dtype=np.float64)[:, 0]


def _rank01(values: np.ndarray) -> np.ndarray:
    """Ranks scaled to [0, 1] (0 = smallest); stable for ties."""
    if len(values) <= 1:
        return np.zeros(len(values))
    return np.argsort(np.argsort(values, kind="stable"), kind="stable") / (len(values) - 1)


def retrieval_order(
    embeddings: np.ndarray, labels: np.ndarray, centres: np.ndarray, failures: np.ndarray | None, alpha: float = 0.5
) -> list[np.ndarray]:
    """Per cluster, member positions ordered for retrieval (nearest first).

    Args:
        embeddings: (n, d) synthetic-pool embeddings; labels: (n,) cluster index in [0, K).
        centres: (K, d) cluster centres. failures: (m, d) embeddings of the planner's failures or None.
        alpha: weight of the centre distance vs. the failure distance (1 → centres only).
    """
    to_failure = _nearest_distance(embeddings, failures) if failures is not None and len(failures) else None
    to_centre = np.linalg.norm(embeddings - centres[labels], axis=1)
    orders = []
    for c in range(len(centres)):
        members = np.flatnonzero(labels == c)
        key = _rank01(to_centre[members])
        if to_failure is not None:
            key = alpha * key + (1.0 - alpha) * _rank01(to_failure[members])
        orders.append(members[np.lexsort((members, key))])
    return orders


class ClusterMixtureOptimizer:
    """AutoScale's cluster-GA loop over a synthetic pool.

    Args:
        oracle: ``train_and_evaluate(indices, weights, seed) -> score`` over synthetic-pool positions.
        num_clusters: K when the pool has no ``domains`` (k-means on the embeddings).
        rounds: R rounds of retrieve → train → evaluate → update.
        lr: step size on the simplex (L∞ of the step, after normalising the gradient).
        num_probes: perturbed mixtures evaluated per round (rounded up to an even number).
        probe_scale: δ, the size of the probe perturbations.
        ridge: ridge penalty of the local regression; bandwidth: its kernel width (L1 distance).
        retrieval_alpha: centre vs. failure-case distance mix for retrieval.
        seed: base seed (round r trains with seeds seed + 1000·r + j, j < eval_seeds, and draws its
            probe directions from seed + r).
        executor: executor or name for the per-round evaluations.
        eval_seeds: training seeds per candidate mixture (its score is their mean).
        confirm_oracle: oracle on a second val set that picks the final mixture among the
            ``confirm_top`` best rounds (None: the best round by score).
    """

    name = "autoscale"

    def __init__(
        self,
        oracle: Oracle,
        num_clusters: int = 8,
        rounds: int = 5,
        lr: float = 0.15,
        num_probes: int = 4,
        probe_scale: float = 0.15,
        ridge: float = 1e-3,
        bandwidth: float = 0.6,
        retrieval_alpha: float = 0.5,
        seed: int = 0,
        executor: Executor | str | None = None,
        eval_seeds: int = 3,
        confirm_oracle: Oracle | None = None,
        confirm_top: int = 3,
    ):
        if rounds < 1 or num_probes < 0 or not (0 < lr) or not (0 < probe_scale < 1) or not (0 <= retrieval_alpha <= 1) \
                or eval_seeds < 1 or confirm_top < 1:
            raise ValueError("invalid ClusterMixtureOptimizer parameters")
        self.eval_seeds, self.confirm_oracle, self.confirm_top = int(eval_seeds), confirm_oracle, int(confirm_top)
        self.oracle, self.num_clusters, self.rounds, self.lr = oracle, int(num_clusters), int(rounds), float(lr)
        self.num_probes = int(num_probes) + int(num_probes) % 2
        self.probe_scale, self.ridge, self.bandwidth = float(probe_scale), float(ridge), float(bandwidth)
        self.retrieval_alpha, self.seed, self.executor = float(retrieval_alpha), int(seed), executor
        self.history_: list[dict] = []

    # ------------------------------------------------------------------ pieces
    def _clusters(self, pool: Pool, embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if pool.domains is not None:
            names, labels = np.unique(np.asarray(pool.domains).astype(str), return_inverse=True)
        else:
            from sklearn.cluster import KMeans

            k = min(self.num_clusters, len(pool))
            labels = KMeans(k, n_init=3, random_state=self.seed).fit_predict(embeddings)
            names = np.array([str(c) for c in range(k)])
        centres = np.stack([embeddings[labels == c].mean(0) for c in range(len(names))])
        return names.astype(object), labels.astype(np.int64), centres

    def _selection(self, weights: np.ndarray, budget: int) -> tuple[np.ndarray, np.ndarray]:
        counts = proportional_allocate(weights, self._capacities, budget)
        chosen = np.concatenate([order[:c] for order, c in zip(self._orders, counts)])
        return counts, chosen

    def _probe_directions(self, rng: np.random.Generator, k: int) -> np.ndarray:
        dirs = rng.standard_normal((self.num_probes // 2, k))
        dirs -= dirs.mean(1, keepdims=True)  # tangent to the simplex
        dirs /= np.maximum(np.abs(dirs).max(1, keepdims=True), 1e-12)
        return np.concatenate([dirs, -dirs]) if len(dirs) else dirs

    def _gradient(self, weights: np.ndarray) -> np.ndarray:
        """Kernel-weighted ridge regression of score on the mixture over all evaluations so far."""
        X = np.array([e[0] for e in self._evals])
        y = np.array([e[1] for e in self._evals])
        if len(X) < 2:
            return np.zeros_like(weights)
        dx = X - weights
        kernel = np.exp(-np.abs(dx).sum(1) / self.bandwidth)
        A = np.column_stack([np.ones(len(X)), dx]) * np.sqrt(kernel)[:, None]
        b = (y - np.average(y, weights=kernel)) * np.sqrt(kernel)
        reg = self.ridge * np.eye(A.shape[1])
        reg[0, 0] = 0.0
        coef = np.linalg.solve(A.T @ A + reg, A.T @ b)
        grad = coef[1:]
        return grad - grad.mean()  # only tangent directions keep Σw = 1

    # ------------------------------------------------------------------ the loop
    def fit(self, pool: Pool, budget: int, *, failures: np.ndarray | None = None, init_weights: np.ndarray | None = None) -> "ClusterMixtureOptimizer":
        """Run R rounds; stores ``history_``, ``weights_`` (final), ``best_`` (best round)."""
        budget = validate_budget(budget, len(pool))
        embeddings = pool.require_embeddings("AutoScale cluster-guided retrieval")
        if failures is not None:
            failures = np.asarray(failures, dtype=np.float32)
            if failures.ndim != 2 or failures.shape[1] != embeddings.shape[1]:
                raise ValueError(f"failure embeddings must have shape (m, {embeddings.shape[1]}), got {failures.shape}")
        self._names, labels, centres = self._clusters(pool, embeddings)
        k = len(self._names)
        self._capacities = np.bincount(labels, minlength=k)
        self._orders = retrieval_order(embeddings, labels, centres, failures, self.retrieval_alpha)
        if init_weights is None:
            weights = self._capacities / self._capacities.sum()
        else:
            weights = np.asarray(init_weights, dtype=np.float64)
            if weights.shape != (k,) or (weights < 0).any() or weights.sum() <= 0:
                raise ValueError(f"init_weights must be {k} non-negative numbers with a positive sum")
            weights = weights / weights.sum()
        executor = get_executor(self.executor)
        task_fn = run_oracle_task(self.oracle)
        self._evals, self.history_ = [], []
        best = None
        for r in range(self.rounds):
            seed = self.seed + r
            rng = np.random.default_rng(seed)
            mixtures = [weights] + [project_to_simplex(weights + self.probe_scale * d) for d in self._probe_directions(rng, k)]
            selections = [self._selection(m, budget) for m in mixtures]
            scores = self._mean_scores(executor, task_fn, [chosen for _, chosen in selections],
                                       [self.seed + 1000 * r + j for j in range(self.eval_seeds)], f"round {r}")
            # The realised fractions (after capping/rounding) are what was actually trained on.
            for (counts, _), score in zip(selections, scores):
                self._evals.append((counts / budget, float(score)))
            grad = self._gradient(weights)
            record = {
                "round": r, "weights": weights.tolist(), "score": float(scores[0]),
                "counts": {str(n): int(c) for n, c in zip(self._names, selections[0][0])},
                "gradient": grad.tolist(), "probe_scores": [float(s) for s in scores[1:]],
            }
            self.history_.append(record)
            if best is None or scores[0] > best["score"]:
                best = record
            step = grad / max(np.abs(grad).max(), 1e-12) if np.abs(grad).max() > 0 else grad
            weights = project_to_simplex(weights + self.lr * step)
        self.weights_, self.best_ = weights, best
        self._budget = budget
        if self.confirm_oracle is not None:
            self.best_ = self._confirm(executor, budget)
        return self

    def _mean_scores(self, executor, task_fn, selections: list[np.ndarray], seeds: list[int], tag: str) -> list[float]:
        """Mean oracle score of each selection over ``seeds`` (one ``Executor.map`` for all)."""
        tasks = [OracleTask(tuple(int(i) for i in chosen), None, s, tag=f"{tag} mixture {j} seed {s}")
                 for j, chosen in enumerate(selections) for s in seeds]
        scores = np.asarray(executor.map(task_fn, tasks), dtype=np.float64).reshape(len(selections), len(seeds))
        return scores.mean(1).tolist()

    def _confirm(self, executor, budget: int) -> dict:
        """Re-score the ``confirm_top`` best rounds on the confirmation oracle; the best wins."""
        ranked = sorted(self.history_, key=lambda h: -h["score"])[: self.confirm_top]
        selections = [self._selection(np.asarray(h["weights"]), budget)[1] for h in ranked]
        seeds = [self.seed + 10**6 + j for j in range(self.eval_seeds)]  # fresh seeds: not those that ranked them
        scores = self._mean_scores(executor, run_oracle_task(self.confirm_oracle), selections, seeds, "confirm")
        for h, score in zip(ranked, scores):
            h["confirm_score"] = float(score)
        return ranked[int(np.argmax(scores))]

    def select(self, pool: Pool, budget: int, *, failures: np.ndarray | None = None, init_weights: np.ndarray | None = None) -> SelectionResult:
        """Run the loop and return the best round's selection (scenes in retrieval order per cluster)."""
        self.fit(pool, budget, failures=failures, init_weights=init_weights)
        counts, _ = self._selection(np.asarray(self.best_["weights"]), budget)
        # Interleave clusters by their share so the ranking front-loads the favoured clusters.
        order = _interleave([o[:c] for o, c in zip(self._orders, counts)])
        allocation = {str(n): int(c) for n, c in zip(self._names, counts)}
        first, last = self.history_[0]["score"], self.best_["score"]
        confirmed = (f"; confirmed on the second val set: {self.best_['confirm_score']:.2f}"
                     if "confirm_score" in self.best_ else "")
        explanation = (
            f"AutoScale cluster-GA: {len(self._names)} clusters, {self.rounds} rounds x {1 + self.num_probes} mixtures "
            f"x {self.eval_seeds} seeds; score {first:.2f} (round 0, size-proportional mixture) -> chosen "
            f"{last:.2f} (round {self.best_['round']}{confirmed}). "
            f"Retrieval: nearest to cluster centres{' and failure cases' if failures is not None else ''}. "
            "Allocation: " + ", ".join(f"{n}={c}" for n, c in allocation.items() if c)
        )
        return make_result(
            self.name, pool, order, allocation=allocation, explanation=explanation, predicted_gain=float(last - first),
            config={"rounds": self.rounds, "lr": self.lr, "num_probes": self.num_probes, "probe_scale": self.probe_scale,
                    "eval_seeds": self.eval_seeds, "confirmed": self.confirm_oracle is not None,
                    "ridge": self.ridge, "bandwidth": self.bandwidth, "retrieval_alpha": self.retrieval_alpha, "seed": self.seed},
            diagnostics={"history": self.history_, "best_round": self.best_["round"], "final_weights": self.weights_.tolist()},
        )


def _interleave(groups: Sequence[np.ndarray]) -> np.ndarray:
    """Merge groups so each group's items are spread evenly over the output (by fractional position)."""
    if not groups or sum(len(g) for g in groups) == 0:
        return np.zeros(0, dtype=np.int64)
    keys = np.concatenate([(np.arange(len(g)) + 0.5) / len(g) for g in groups if len(g)])
    items = np.concatenate([g for g in groups if len(g)])
    return items[np.argsort(keys, kind="stable")].astype(np.int64)
