"""Value scores of scenes: safety proximity S, rarity R, uncertainty U and their mix Q.

This module is the one definition of S, R, U and Q: the plugin (``compute_value_scores``), the
selection harness (``selection.experiment``), ``ValueTopSelector`` and the benchmarks all use it.
Embeddings are L2-normalized before S and R (so τs = 0.5 is on the unit sphere).

* S(x) = max_{h ∈ H} exp(−||x − h||² / (2 τs)), H = the ``hazard_fraction`` (10 %) most
  safety-critical *reference (training)* scenes by the given safety criticality.
* R(x) = −log( mean_{j ∈ kNN(x)} exp(−||x − x_j||² / (2 b²)) ) over the ``k`` (20) nearest
  reference scenes, with bandwidth b = the median over reference scenes (at most 10k of them,
  a fixed random sample) of the distance to their k-th neighbour (self excluded).
* U(x) = trace of the covariance (ddof = 1) of K (default 10) MC-dropout samples of x (raw, not
  normalized): embeddings, or flattened plans (:func:`mc_uncertainty`).
* Q = αS·S/σS + αR·R/σR + αU·U/σU, with σ the standard deviation of each score over the scored
  set (a constant score, σ = 0, is divided by 1); :func:`combine_scores` (any subset of S, R, U).
"""

from __future__ import annotations

import numpy as np

from .index import KnnIndex, as_vectors


def normalize_embeddings(x) -> np.ndarray:
    """(n, d) float32 rows scaled to unit L2 norm (the space S and R are computed in)."""
    return _normalize(as_vectors(x, "embeddings"))


def _normalize(x: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    if (norm < 1e-12).any():
        raise ValueError(f"embeddings contain {int((norm < 1e-12).sum())} all-zero row(s); cannot normalize")
    return (x / norm).astype(np.float32)


def mc_uncertainty(samples) -> np.ndarray:
    """(n,) trace of the covariance of (K, n, d) MC-dropout samples (0 for a deterministic model)."""
    arr = np.asarray(samples, dtype=np.float64)
    if arr.ndim != 3:
        raise ValueError(f"MC-dropout samples must have shape (K, n, d), got {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"MC-dropout uncertainty needs K >= 2 samples, got {arr.shape[0]}")
    if not np.isfinite(arr).all():
        raise ValueError("MC-dropout samples contain NaN or inf")
    return arr.var(axis=0, ddof=1).sum(-1)


class ValueScorer:
    """S / R / U / Q value scores against a reference (training) set of embeddings.

    ``fit(embeddings, safety)`` with (n, d) reference embeddings and (n,) safety criticality
    (higher = more safety-critical); ``score(embeddings, mc_samples=None, exclude_self=False)``
    returns a dict of (m,) float64 arrays "S", "R", "U", "Q". Use ``exclude_self=True`` when the
    scored embeddings *are* the reference set (row i is reference i), so a scene is not its own
    neighbour for R.

    At scale, build the kNN index once and share it: ``fit(..., index=knn)`` takes a
    :class:`KnnIndex` already built over the *L2-normalized* reference embeddings (see
    :func:`normalize_embeddings`), and ``score(..., neighbours=(dist, idx))`` takes that index's
    search results for the scored rows, so rarity needs no second all-vs-all search.
    """

    def __init__(self, alpha_s: float = 1.0, alpha_r: float = 1.0, alpha_u: float = 1.0, *, tau_s: float = 0.5,
                 hazard_fraction: float = 0.1, k: int = 20, index_kind: str = "auto") -> None:
        if not 0 < hazard_fraction <= 1:
            raise ValueError(f"hazard_fraction must be in (0, 1], got {hazard_fraction}")
        if tau_s <= 0:
            raise ValueError(f"tau_s must be positive, got {tau_s}")
        self.alpha_s, self.alpha_r, self.alpha_u = alpha_s, alpha_r, alpha_u
        self.tau_s, self.hazard_fraction, self.k, self.index_kind = tau_s, hazard_fraction, k, index_kind
        self.index_: KnnIndex | None = None

    def fit(self, embeddings, safety, *, index: KnnIndex | None = None) -> "ValueScorer":
        """Fit on (n, d) reference embeddings and (n,) safety criticality; ``index``: an already
        built KnnIndex over the normalized reference embeddings, reused instead of building one."""
        x = _normalize(as_vectors(embeddings, "reference embeddings"))
        safety = np.asarray(safety, dtype=np.float64).reshape(-1)
        if safety.shape != (len(x),):
            raise ValueError(f"safety has {safety.size} values for {len(x)} reference embeddings")
        if not np.isfinite(safety).all():
            raise ValueError("safety criticality contains NaN or inf")
        if len(x) < self.k + 1:
            raise ValueError(f"the reference set has {len(x)} scenes; rarity with k={self.k} needs at least {self.k + 1}")
        num_hazard = max(1, int(round(self.hazard_fraction * len(x))))
        self.hazard_idx_ = np.argsort(-safety, kind="stable")[:num_hazard]
        self.hazard_ = x[self.hazard_idx_]
        # Nearest-hazard search through faiss too: at 1M scenes the hazard set alone is 100k.
        self.hazard_index_ = KnnIndex(self.index_kind, expected_queries=len(x)).fit(self.hazard_)
        self.index_ = self._check_shared_index(index, x) if index is not None else \
            KnnIndex(self.index_kind, expected_queries=len(x)).fit(x)
        # Bandwidth from at most 10k reference points: a median needs no all-vs-all search.
        probe = x if len(x) <= 10_000 else x[np.sort(np.random.default_rng(0).choice(len(x), 10_000, replace=False))]
        dist, _ = self.index_.search(probe, self.k + 1)  # column 0 is the point itself
        self.bandwidth_ = float(max(np.median(dist[:, self.k]), 1e-6))
        self.dim_ = x.shape[1]
        return self

    @staticmethod
    def _check_shared_index(index: KnnIndex, x: np.ndarray) -> KnnIndex:
        """A shared index must hold exactly the normalized reference rows: size, dimension, and
        a few sampled rows must find themselves at distance ~0."""
        if not isinstance(index, KnnIndex) or index.index_ is None:
            raise ValueError("index must be a built KnnIndex (KnnIndex().fit(normalized_reference))")
        if len(index) != len(x) or index.dim_ != x.shape[1]:
            raise ValueError(f"the shared index holds {len(index)} vectors of dimension {index.dim_}; "
                             f"the reference set has {len(x)} of dimension {x.shape[1]}")
        probe = np.random.default_rng(0).choice(len(x), min(16, len(x)), replace=False)
        dist, idx = index.search(x[probe], 1, grouped=False)
        if not (dist[:, 0] < 1e-3).all():
            raise ValueError("the shared index was not built over these reference embeddings after L2 "
                             "normalization (use normalize_embeddings(x) before KnnIndex().fit)")
        return index

    def safety_proximity(self, x: np.ndarray) -> np.ndarray:
        """S for normalized (m, d) embeddings: exp(−(distance to the nearest hazard scene)² / (2 τs))."""
        dist, _ = self.hazard_index_.search(x, 1)
        return np.exp(-(dist[:, 0].astype(np.float64) ** 2) / (2.0 * self.tau_s))

    def rarity(self, x: np.ndarray, self_index: np.ndarray | None = None,
               neighbours: tuple[np.ndarray, np.ndarray] | None = None) -> np.ndarray:
        """R for normalized (m, d) embeddings; ``self_index`` (m,) gives each row's own reference
        index (-1: not a reference scene), excluded from its neighbours. ``neighbours``: the
        index's (dist, idx) for these rows, with at least k (k + 1 when excluding) columns."""
        k = self.k
        exclude = self_index is not None and bool((self_index >= 0).any())
        need = k + 1 if exclude else k
        if neighbours is None:
            dist, idx = self.index_.search(x, need)
        else:
            dist, idx = (np.asarray(a) for a in neighbours)
            if dist.shape != idx.shape or dist.ndim != 2 or len(dist) != len(x) or dist.shape[1] < need:
                raise ValueError(f"neighbours must be (dist, idx) of shape ({len(x)}, >= {need}), "
                                 f"got {dist.shape} and {idx.shape}")
            dist, idx = dist[:, :need], idx[:, :need]
        if exclude:
            own = (idx == self_index[:, None]) & (self_index[:, None] >= 0)
            # Drop the point itself (or, if absent among results, the farthest neighbour).
            drop = np.where(own.any(1), np.argmax(own, axis=1), k)
            keep = np.ones_like(own)
            keep[np.arange(len(x)), drop] = False
            dist = dist[keep].reshape(len(x), k)
        a = dist.astype(np.float64) ** 2 / (2 * self.bandwidth_**2)
        # −log mean exp(−a), computed stably.
        amin = a.min(1)
        return amin - np.log(np.exp(-(a - amin[:, None])).mean(1))

    def score(self, embeddings, mc_samples=None, exclude_self: bool = False,
              self_index: np.ndarray | None = None,
              neighbours: tuple[np.ndarray, np.ndarray] | None = None, uncertainty=None) -> dict[str, np.ndarray]:
        """Scores of (m, d) embeddings. ``exclude_self``: the rows are the reference set itself;
        ``self_index`` (m,) int: more generally, each row's reference index or -1;
        ``neighbours``: precomputed (dist, idx) of these rows in the reference index (k + 1
        columns when excluding self), to skip the rarity search; ``uncertainty``: U (m,) already
        computed with :func:`mc_uncertainty` (instead of ``mc_samples``)."""
        if self.index_ is None:
            raise RuntimeError("ValueScorer is not fitted: call fit(reference_embeddings, safety) first")
        x = _normalize(as_vectors(embeddings, "embeddings", self.dim_))
        if exclude_self:
            if len(x) != len(self.index_):
                raise ValueError(f"exclude_self needs the reference set itself ({len(self.index_)} rows), got {len(x)}")
            self_index = np.arange(len(x))
        if self_index is not None:
            self_index = np.asarray(self_index, dtype=np.int64)
            if self_index.shape != (len(x),) or self_index.max(initial=-1) >= len(self.index_):
                raise ValueError(f"self_index must be ({len(x)},) reference indices or -1")
        S = self.safety_proximity(x)
        R = self.rarity(x, self_index, neighbours)
        if mc_samples is not None and uncertainty is not None:
            raise ValueError("pass MC-dropout samples or a precomputed uncertainty, not both")
        if mc_samples is None and uncertainty is None:
            U = np.zeros(len(x))
        else:
            U = mc_uncertainty(mc_samples) if uncertainty is None else np.asarray(uncertainty, dtype=np.float64).reshape(-1)
            if U.shape != (len(x),) or not np.isfinite(U).all():
                raise ValueError(f"MC-dropout uncertainty covers {U.shape[0]} scenes (finite values needed), embeddings {len(x)}")
        scores = {"S": S, "R": R, "U": U}
        scores["Q"] = combine_scores(scores, weights={"S": self.alpha_s, "R": self.alpha_r, "U": self.alpha_u})
        return scores

    def config(self) -> dict:
        return {"alpha_s": self.alpha_s, "alpha_r": self.alpha_r, "alpha_u": self.alpha_u, "tau_s": self.tau_s,
                "hazard_fraction": self.hazard_fraction, "k": self.k,
                "bandwidth": getattr(self, "bandwidth_", None),
                "index_kind": self.index_.built_kind if self.index_ is not None else None,
                "hazard_index_kind": self.hazard_index_.built_kind if self.index_ is not None else None}


def _sigma(v: np.ndarray) -> float:
    s = float(np.std(v))
    return s if s > 1e-12 else 1.0


VALUE_COMPONENTS = ("S", "R", "U")


def combine_scores(scores: dict, components=VALUE_COMPONENTS, weights: dict | None = None) -> np.ndarray:
    """Q over a subset of components: Σ_c α_c · c / σ_c, σ_c = the std of c over these rows
    (1 when c is constant). ``scores``: name → (n,) array; ``weights``: α per component (default 1)."""
    components = tuple(components)
    unknown = [c for c in components if c not in VALUE_COMPONENTS]
    if not components or unknown:
        raise ValueError(f"components must be a non-empty subset of {VALUE_COMPONENTS}, got {components!r}")
    weights = weights or {}
    total = 0.0
    for c in components:
        v = np.asarray(scores[c], dtype=np.float64)
        if not np.isfinite(v).all():
            raise ValueError(f"value score {c} contains NaN or inf")
        total = total + weights.get(c, 1.0) * v / _sigma(v)
    return np.asarray(total, dtype=np.float64)


def pool_value_scores(embeddings, safety, uncertainty=None, *, k: int = 20, tau_s: float = 0.5,
                      hazard_fraction: float = 0.1) -> dict[str, np.ndarray]:
    """S/R/U/Q of a candidate pool against itself: (n, d) embeddings, (n,) safety criticality
    (its top ``hazard_fraction`` are the hazard set) and (n,) U (zeros when None); each row is
    excluded from its own rarity neighbours. k is capped at n − 1 for small pools."""
    emb = as_vectors(embeddings, "pool embeddings")
    scorer = ValueScorer(k=max(1, min(k, len(emb) - 1)), tau_s=tau_s, hazard_fraction=hazard_fraction)
    scorer.fit(emb, safety)
    return scorer.score(emb, exclude_self=True, uncertainty=uncertainty)
