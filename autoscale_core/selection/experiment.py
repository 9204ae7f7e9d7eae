"""The closed-loop experiment harness shared by the selection benchmarks and the CLI.

:class:`ClosedLoopSetup` splits scenes into a *base* training set (what the planner already has),
a candidate *pool*, a *val* split (used by the oracles for pilots / rounds: all tuning happens
here) and a *test* split (reported only). It trains the current planner on the base set and
derives the per-scene pool signals the selectors need:

* ``embeddings`` — the current planner's scene embeddings (penultimate features), (n, hidden);
* ``importance`` = 1 − EPDMS of the current planner on each pool scene (its closed-loop failure);
* ``uncertainty`` = ``value_U``: tr(Cov) of the planner's K = 10 MC-dropout plans (m², xy of
  the 8 poses flattened; ``baselines.mc_dropout_uncertainty``);
* ``value_S`` / ``value_R`` / ``value_Q``: the one definition of ``representation.value``
  (:func:`pool_value_scores` against the pool itself): S = safety proximity to the pool's 10 % most
  safety-critical scenes (logged-future soft-collision cost), R = −log kNN density (k = 20),
  Q = S/σS + R/σR + U/σU.

Training is ``autoscale_core.planning.train.train_planner``; scoring is
``autoscale_core.planning.evaluate.evaluate_planner`` (closed-loop EPDMS, reported ×100).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .base import Pool
from .oracle import PlannerOracle, torch_threads

__all__ = ["split_indices", "ClosedLoopSetup", "rarity_scores"]


def split_indices(n: int, fractions: dict[str, float], seed: int = 0) -> dict[str, np.ndarray]:
    """A seeded partition of range(n) into named parts with the given fractions (summing ≤ 1)."""
    total = sum(fractions.values())
    if any(f <= 0 for f in fractions.values()) or total > 1 + 1e-9:
        raise ValueError(f"split fractions must be positive and sum to at most 1, got {fractions}")
    perm = np.random.default_rng(seed).permutation(n)
    bounds = np.cumsum([0] + [int(round(f * n)) for f in fractions.values()])
    if bounds[-1] > n:
        bounds[-1] = n
    parts = {name: np.sort(perm[bounds[i] : bounds[i + 1]]) for i, name in enumerate(fractions)}
    empty = [k for k, v in parts.items() if len(v) == 0]
    if empty:
        raise ValueError(f"{n} scenes are too few for the split {fractions}: {empty} would be empty")
    return parts


def rarity_scores(embeddings: np.ndarray, k: int = 10) -> np.ndarray:
    """(n,) mean L2 distance to the k nearest other rows (faiss exact kNN)."""
    from ..representation.index import KnnIndex

    k = min(k, len(embeddings) - 1)
    if k < 1:
        return np.zeros(len(embeddings))
    dist, _ = KnnIndex(kind="flat").fit(embeddings).search(embeddings, k + 1)
    return dist[:, 1:].mean(1).astype(np.float64)


@dataclass
class ClosedLoopSetup:
    """Base / pool / val / test batches, the current planner, and the pool signals.

    Args:
        base, pool, val, test: SceneBatches.
        planner: planner kind for ``train_planner``.
        steps: training steps of every (re)training; train_kwargs: extra ``train_planner`` args.
        seed: seed of the current (base) planner.
        mc_passes: MC-dropout passes for ``uncertainty``.
        num_threads: torch threads while training/evaluating (1: deterministic and fastest on a shared box).
    """

    base: Any
    pool: Any
    val: Any
    test: Any
    planner: str = "regression"
    steps: int = 200
    train_kwargs: dict = field(default_factory=dict)
    seed: int = 0
    mc_passes: int = 10
    num_threads: int = 1
    signals: dict[str, np.ndarray] = field(default_factory=dict)
    base_scores: dict[str, float] = field(default_factory=dict)

    def prepare(self) -> "ClosedLoopSetup":
        """Train the current planner on ``base``; compute the pool signals and base scores."""
        from ..planning.evaluate import evaluate_planner
        from ..planning.train import train_planner
        from ..representation.pipeline import scene_safety
        from ..representation.value import pool_value_scores
        from .baselines import mc_dropout_uncertainty

        with torch_threads(self.num_threads):
            trained = train_planner(self.base, planner=self.planner, seed=self.seed, steps=self.steps, **self.train_kwargs)
            self.current_planner = trained
            pool_eval = evaluate_planner(trained, self.pool)
            epdms = np.asarray(pool_eval.scores["epdms"], dtype=np.float64)
            embeddings = np.asarray(trained.embed(self.pool), dtype=np.float32)
            uncertainty = mc_dropout_uncertainty(trained, self.pool, passes=self.mc_passes, seed=self.seed)
            for split in ("val", "test"):
                if split == "test" and self.test is self.val:
                    self.base_scores["test"] = self.base_scores["val"]
                    continue
                result = evaluate_planner(trained, getattr(self, split))
                self.base_scores[split] = 100.0 * float(np.mean(result.scores["epdms"]))
        values = pool_value_scores(embeddings, scene_safety(self.pool), uncertainty)
        self.signals = {"embeddings": embeddings, "importance": 1.0 - epdms, "uncertainty": uncertainty,
                        **{f"value_{c}": values[c] for c in ("S", "R", "U", "Q")}}
        return self

    def make_pool(self, domains: str | np.ndarray = "topology", num_clusters: int = 6) -> Pool:
        """The selection :class:`Pool`; ``domains`` is a meta key, ``"clusters"`` (k-means on the
        embeddings) or an (n,) label array."""
        if not self.signals:
            raise RuntimeError("call prepare() first")
        emb = self.signals["embeddings"]
        if isinstance(domains, str) and domains == "clusters":
            from sklearn.cluster import KMeans

            labels = KMeans(min(num_clusters, len(emb)), n_init=3, random_state=self.seed).fit_predict(emb)
            labels = np.array([f"c{c}" for c in labels], dtype=object)
        elif isinstance(domains, str):
            if domains not in self.pool.meta:
                raise ValueError(f"unknown domain field {domains!r}; scene metadata has {sorted(self.pool.meta)}")
            labels = np.asarray(self.pool.meta[domains])
        else:
            labels = np.asarray(domains)
        scores = {k: v for k, v in self.signals.items() if k != "embeddings"}
        return Pool(self.pool.meta["scene_id"], embeddings=emb, domains=labels, scores=scores)

    def oracle(self, split: str = "val") -> PlannerOracle:
        """train_and_evaluate over pool positions, scored on ``split`` ("val" for tuning, "test" to report)."""
        if split not in ("val", "test"):
            raise ValueError(f"split must be 'val' or 'test', got {split!r}")
        return PlannerOracle(self.base, self.pool, getattr(self, split), planner=self.planner, steps=self.steps,
                             num_threads=self.num_threads, train_kwargs=self.train_kwargs)
