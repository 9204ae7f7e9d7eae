"""kNN indexes over faiss with an automatic, recorded choice of exact vs approximate search.

Exact search (``IndexFlatL2``) is used up to ``exact_max`` vectors (1M by default). When the
caller says how many queries it will run (``expected_queries``), an all-pairs cost above
``pair_budget`` also switches to an approximate index, because exact all-vs-all kNN at 1M scale
is quadratic (1e12 distance evaluations) and far beyond a 2-core, 10-minute budget. The
approximate index is IVF-Flat (``nlist ≈ 2·sqrt(n)`` lists trained on 50·nlist points,
``nprobe`` = 16 probed) or HNSW when asked.
The reason for the choice is kept in ``index.reason`` and persisted with the index.

Persistence uses ``faiss.write_index`` / ``faiss.read_index`` plus a small JSON sidecar
(``<path>.json``); nothing is pickled.
"""

from __future__ import annotations

import json
import os

import numpy as np

KINDS = ("auto", "flat", "ivf", "hnsw")


def as_vectors(x, name: str = "embeddings", dim: int | None = None) -> np.ndarray:
    """Validate and return a C-contiguous float32 (n, d) array; clear errors for bad input."""
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D array (n, d), got shape {arr.shape}")
    if arr.shape[1] == 0:
        raise ValueError(f"{name} has zero dimensions")
    if dim is not None and arr.shape[1] != dim:
        raise ValueError(f"{name} has dimension {arr.shape[1]} but the index was built with dimension {dim}")
    if not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = np.ascontiguousarray(arr, dtype=np.float32)
    bad = ~np.isfinite(arr).all(1)
    if bad.any():
        raise ValueError(f"{name} contains NaN or inf in {int(bad.sum())} row(s), first at row {int(np.flatnonzero(bad)[0])}")
    return arr


class KnnIndex:
    """L2 nearest-neighbour index.

    Args:
        kind: "auto" (default), "flat" (exact), "ivf" or "hnsw".
        exact_max: largest base size searched exactly under "auto".
        expected_queries: queries the caller will run; with ``pair_budget`` it can switch "auto"
            to IVF for all-vs-all use (see the module docstring).
        pair_budget: most query × base distance evaluations accepted for exact search.
        nlist, nprobe: IVF lists (default ≈ 2·sqrt(n)) and lists probed per query.
        hnsw_m, ef_search: HNSW graph degree and search breadth.
        seed: seed for IVF's k-means.
    """

    def __init__(self, kind: str = "auto", *, exact_max: int = 1_000_000, expected_queries: int | None = None,
                 pair_budget: float = 1e10, nlist: int | None = None, nprobe: int = 16, hnsw_m: int = 32,
                 ef_search: int = 64, seed: int = 0) -> None:
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {kind!r}")
        self.kind = kind
        self.exact_max, self.expected_queries, self.pair_budget = exact_max, expected_queries, pair_budget
        self.nlist, self.nprobe, self.hnsw_m, self.ef_search, self.seed = nlist, nprobe, hnsw_m, ef_search, seed
        self.index_ = None
        self.dim_: int | None = None
        self.reason = ""
        self._base: np.ndarray | None = None

    def __len__(self) -> int:
        return 0 if self.index_ is None else int(self.index_.ntotal)

    def _choose(self, n: int) -> str:
        if self.kind != "auto":
            self.reason = f"kind {self.kind!r} requested"
            return self.kind
        if n > self.exact_max:
            self.reason = f"{n} vectors > exact_max {self.exact_max}: IVF"
            return "ivf"
        if self.expected_queries is not None and float(n) * self.expected_queries > self.pair_budget and n >= 10_000:
            self.reason = (f"{self.expected_queries} queries x {n} vectors > pair budget {self.pair_budget:.0e}: IVF")
            return "ivf"
        self.reason = f"{n} vectors <= exact_max {self.exact_max}: exact"
        return "flat"

    def fit(self, x) -> "KnnIndex":
        """Build the index over base vectors ``x`` (n, d)."""
        import faiss

        x = as_vectors(x, "index vectors")
        n, d = x.shape
        kind = self._choose(n)
        if kind == "flat":
            index = faiss.IndexFlatL2(d)
        elif kind == "hnsw":
            index = faiss.IndexHNSWFlat(d, self.hnsw_m)
            index.hnsw.efSearch = self.ef_search
        else:
            nlist = self.nlist or int(max(1, min(2 * np.sqrt(n), n // 39)))
            index = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist)
            rng = np.random.default_rng(self.seed)
            train = x if n <= 50 * nlist else x[np.sort(rng.choice(n, 50 * nlist, replace=False))]
            index.cp.seed = self.seed
            index.train(train)
            self.nprobe = index.nprobe = min(self.nprobe, nlist)
        index.add(x)
        self.kind_ = kind
        self.index_, self.dim_, self._base = index, d, x
        return self

    @property
    def built_kind(self) -> str:
        """The kind actually built ("flat", "ivf" or "hnsw")."""
        if self.index_ is None:
            raise RuntimeError("KnnIndex is not built: call fit(x) or load(path) first")
        return self.kind_

    def search(self, x, k: int) -> tuple[np.ndarray, np.ndarray]:
        """k nearest base vectors of each query: (distances (q, k) in L2 units, indices (q, k) int64).

        Raises ValueError when k exceeds the number of indexed vectors, or for NaN / wrong-dim queries.
        """
        if self.index_ is None:
            raise RuntimeError("KnnIndex is not built: call fit(x) or load(path) first")
        x = as_vectors(x, "query vectors", self.dim_)
        if not isinstance(k, (int, np.integer)) or k < 1:
            raise ValueError(f"k must be a positive integer, got {k!r}")
        if k > len(self):
            raise ValueError(f"k={k} is larger than the {len(self)} indexed vectors")
        d2, idx = self.index_.search(x, int(k))
        return np.sqrt(np.maximum(d2, 0.0)), idx.astype(np.int64)

    def recall(self, queries=None, k: int = 10, sample: int = 1000, seed: int = 0) -> float:
        """Recall@k of this index against exact search on a sample of queries (1.0 for flat)."""
        import faiss

        if self._base is None:
            raise RuntimeError("recall needs the base vectors: fit() this index in this process")
        rng = np.random.default_rng(seed)
        if queries is None:
            pick = rng.choice(len(self._base), min(sample, len(self._base)), replace=False)
            queries = self._base[np.sort(pick)]
        queries = as_vectors(queries, "query vectors", self.dim_)
        _, truth = faiss.knn(queries, self._base, k)
        _, found = self.search(queries, k)
        hits = [len(set(t) & set(f)) for t, f in zip(truth, found)]
        return float(np.sum(hits) / truth.size)

    def save(self, path: str) -> str:
        """Write the index (faiss format) and a JSON sidecar ``<path>.json``; returns ``path``."""
        import faiss

        if self.index_ is None:
            raise RuntimeError("KnnIndex is not built: nothing to save")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        faiss.write_index(self.index_, path)
        with open(path + ".json", "w") as f:
            json.dump({"kind": self.kind_, "dim": self.dim_, "ntotal": len(self), "reason": self.reason,
                       "nprobe": self.nprobe, "ef_search": self.ef_search}, f)
        return path

    @classmethod
    def load(cls, path: str) -> "KnnIndex":
        import faiss

        if not os.path.exists(path):
            raise FileNotFoundError(f"no faiss index at {path!r}")
        info = {}
        try:
            if os.path.exists(path + ".json"):
                with open(path + ".json") as f:
                    info = json.load(f)
            index = faiss.read_index(path)
        except (RuntimeError, ValueError) as exc:  # faiss raises RuntimeError on a corrupt file
            raise ValueError(f"{path}: not a readable faiss index ({str(exc).splitlines()[0][:200]})") from exc
        kind = info.get("kind") or ("flat" if isinstance(index, faiss.IndexFlat) else "ivf")
        self = cls(kind=kind, nprobe=info.get("nprobe", 16), ef_search=info.get("ef_search", 64))
        # Search-time settings are not always part of the faiss file: restore them.
        if kind == "ivf":
            faiss.extract_index_ivf(index).nprobe = self.nprobe
        elif kind == "hnsw":
            index.hnsw.efSearch = self.ef_search
        self.index_, self.dim_, self.kind_ = index, int(index.d), kind
        self.reason = info.get("reason", "loaded")
        return self
