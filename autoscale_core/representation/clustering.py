"""Clustering scenes into domains: faiss k-means on embeddings, or metadata-defined domains.

When ``k`` is not given it is chosen by the **silhouette criterion**: k-means is run for every
k in ``k_grid`` and the k with the highest mean silhouette coefficient (Euclidean, on a fixed
random sample of at most ``silhouette_sample`` points) wins; the scores are kept in
``silhouette_``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from .index import as_vectors

METHODS = ("kmeans", "metadata")


def cluster_purity(labels, truth) -> float:
    """Purity: the fraction of points whose cluster's majority truth label equals their own."""
    labels, truth = np.asarray(labels), np.asarray(truth)
    if labels.shape != truth.shape or labels.ndim != 1:
        raise ValueError(f"labels {labels.shape} and truth {truth.shape} must be 1-D of equal length")
    if len(labels) == 0:
        raise ValueError("cluster_purity of zero points")
    total = 0
    for c in np.unique(labels):
        total += Counter(truth[labels == c].tolist()).most_common(1)[0][1]
    return total / len(labels)


class SceneClusterer:
    """Cluster (n, d) embeddings into domains.

    Args:
        k: number of clusters; None chooses it by silhouette over ``k_grid``.
        method: "kmeans" (faiss) or "metadata" (domains given to ``fit``; centroids are means).
        k_grid: candidate k values when ``k`` is None.
        niter, nredo, seed: k-means iterations, restarts (best objective kept) and seed
            (deterministic for a seed).
        silhouette_sample: points used to compute each silhouette score.

    After ``fit``: ``labels_`` (n,) int64, ``centroids_`` (k, d) float32, ``k_``,
    ``domain_names_`` (for metadata), ``silhouette_`` {k: score}, ``criterion_`` (text).
    """

    def __init__(self, k: int | None = None, method: str = "kmeans", *, k_grid=tuple(range(2, 13)), niter: int = 25,
                 nredo: int = 3, seed: int = 0, silhouette_sample: int = 2000) -> None:
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if k is not None and (not isinstance(k, (int, np.integer)) or k < 1):
            raise ValueError(f"k must be a positive integer or None, got {k!r}")
        self.k, self.method, self.k_grid, self.niter, self.seed = k, method, tuple(k_grid), niter, seed
        self.nredo = nredo
        self.silhouette_sample = silhouette_sample
        self.labels_ = self.centroids_ = None
        self.silhouette_: dict[int, float] = {}
        self.domain_names_: list[str] | None = None
        self.criterion_ = ""

    def fit(self, embeddings, domains=None) -> "SceneClusterer":
        x = as_vectors(embeddings, "embeddings")
        if self.method == "metadata":
            return self._fit_metadata(x, domains)
        n = len(x)
        if self.k is not None:
            if self.k > n:
                raise ValueError(f"k={self.k} clusters requested for only {n} embeddings")
            self.k_, self.criterion_ = int(self.k), "given"
            self.centroids_, self.labels_ = self._kmeans(x, self.k_)
            return self
        grid = [k for k in self.k_grid if 2 <= k < n]
        if not grid:
            raise ValueError(f"cannot choose k for {n} embeddings from grid {self.k_grid} (need 2 <= k < n)")
        sample = np.random.default_rng(self.seed).choice(n, min(n, self.silhouette_sample), replace=False)
        best = None
        for k in grid:
            centroids, labels = self._kmeans(x, k)
            score = _silhouette(x[sample], labels[sample])
            self.silhouette_[k] = score
            if best is None or score > best[0] + 1e-9:
                best = (score, k, centroids, labels)
        _, self.k_, self.centroids_, self.labels_ = best
        self.criterion_ = f"max silhouette over k in {grid} on {len(sample)} points"
        return self

    def _fit_metadata(self, x, domains):
        if domains is None:
            raise ValueError("method='metadata' needs domains (one label per embedding)")
        domains = np.asarray(domains).astype(str)
        if domains.shape != (len(x),):
            raise ValueError(f"domains has shape {domains.shape}, expected ({len(x)},)")
        names, labels = np.unique(domains, return_inverse=True)
        self.domain_names_ = names.tolist()
        self.labels_ = labels.astype(np.int64)
        self.k_ = len(names)
        self.centroids_ = np.stack([x[labels == c].mean(0) for c in range(self.k_)]).astype(np.float32)
        self.criterion_ = "metadata domains"
        return self

    def _kmeans(self, x, k):
        import faiss

        km = faiss.Kmeans(x.shape[1], k, niter=self.niter, nredo=self.nredo, seed=self.seed, verbose=False,
                          max_points_per_centroid=max(256, -(-len(x) // k)))
        km.train(x)
        _, labels = km.index.search(x, 1)
        return km.centroids.astype(np.float32), labels[:, 0].astype(np.int64)

    def predict(self, embeddings) -> np.ndarray:
        """(n,) nearest-centroid labels."""
        if self.centroids_ is None:
            raise RuntimeError("SceneClusterer is not fitted")
        x = as_vectors(embeddings, "embeddings", self.centroids_.shape[1])
        d = ((x[:, None, :] - self.centroids_[None]) ** 2).sum(-1)
        return np.argmin(d, axis=1).astype(np.int64)

    def cluster_stats(self, values: dict[str, np.ndarray] | None = None) -> list[dict]:
        """Per-cluster size, fraction and the mean of each array in ``values`` (n,)."""
        if self.labels_ is None:
            raise RuntimeError("SceneClusterer is not fitted")
        n = len(self.labels_)
        stats = []
        for c in range(self.k_):
            sel = self.labels_ == c
            row = {"cluster": c, "size": int(sel.sum()), "fraction": float(sel.sum() / n)}
            if self.domain_names_ is not None:
                row["domain"] = self.domain_names_[c]
            for name, v in (values or {}).items():
                v = np.asarray(v, dtype=np.float64)
                if v.shape != (n,):
                    raise ValueError(f"values[{name!r}] has shape {v.shape}, expected ({n},)")
                row[f"mean_{name}"] = float(v[sel].mean()) if sel.any() else float("nan")
            stats.append(row)
        return stats


def _silhouette(x, labels) -> float:
    from sklearn.metrics import silhouette_score

    if len(np.unique(labels)) < 2:
        return -1.0
    return float(silhouette_score(x, labels))
