"""The selection interface: a :class:`Pool` of candidate scenes in, a :class:`SelectionResult` out.

A selector is anything with ``select(pool, budget, **kw) -> SelectionResult`` (:class:`Selector`).
Every selector validates its budget with :func:`validate_budget` so bad input fails the same way
everywhere (a ``ValueError`` naming the value).

The *oracle* used by MOSAIC and AutoScale is a plain callable
``train_and_evaluate(indices, weights, seed) -> float``: train a planner on a fixed base set plus the
pool scenes at ``indices`` (int array of pool positions, with optional per-scene ``weights``), and
return the closed-loop score (mean EPDMS on a validation split). See :mod:`.oracle`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Protocol, runtime_checkable

import numpy as np

__all__ = [
    "Pool",
    "SelectionResult",
    "Selector",
    "Oracle",
    "validate_budget",
    "encode_domains",
]

Oracle = Callable[[np.ndarray, "np.ndarray | None", int], float]


@dataclass
class Pool:
    """Candidate scenes for selection, as aligned per-scene arrays (n = pool size).

    Attributes:
        scene_ids: (n,) unique ids.
        embeddings: (n, d) float32 scene embeddings, or None (coreset / retrieval need them).
        domains: (n,) domain labels (cluster ids or a metadata column), or None.
        scores: per-scene 1-D float arrays by name, e.g. ``importance`` (1 − EPDMS of the current
            planner: higher = the planner fails there), ``uncertainty`` (MC-dropout variance),
            ``value_S`` / ``value_R`` / ``value_U`` / ``value_Q`` (value-score components).
    """

    scene_ids: np.ndarray
    embeddings: np.ndarray | None = None
    domains: np.ndarray | None = None
    scores: dict[str, np.ndarray] = field(default_factory=dict)

    def __post_init__(self):
        self.scene_ids = np.asarray(self.scene_ids).astype(str).astype(object)
        n = len(self.scene_ids)
        if len(set(self.scene_ids.tolist())) != n:
            raise ValueError("pool scene_ids must be unique")
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if self.embeddings.ndim != 2 or len(self.embeddings) != n:
                raise ValueError(f"pool embeddings must have shape ({n}, d), got {self.embeddings.shape}")
            if not np.isfinite(self.embeddings).all():
                row = int(np.argwhere(~np.isfinite(self.embeddings))[0][0])
                raise ValueError(f"pool embeddings contain NaN/inf (scene {self.scene_ids[row]!r})")
        if self.domains is not None:
            self.domains = np.asarray(self.domains)
            if self.domains.shape != (n,):
                raise ValueError(f"pool domains must have shape ({n},), got {self.domains.shape}")
        scores = {}
        for name, values in self.scores.items():
            values = np.asarray(values, dtype=np.float64)
            if values.shape != (n,):
                raise ValueError(f"pool score {name!r} must have shape ({n},), got {values.shape}")
            scores[name] = values
        self.scores = scores

    def __len__(self) -> int:
        return len(self.scene_ids)

    def require_embeddings(self, method: str) -> np.ndarray:
        if self.embeddings is None:
            raise ValueError(f"{method} needs scene embeddings, but the pool has none (compute emb_* first)")
        return self.embeddings

    def require_score(self, name: str, method: str) -> np.ndarray:
        if name not in self.scores:
            have = ", ".join(sorted(self.scores)) or "none"
            raise ValueError(f"{method} needs the per-scene score {name!r}; the pool has: {have}")
        values = self.scores[name]
        if not np.isfinite(values).all():
            row = int(np.flatnonzero(~np.isfinite(values))[0])
            raise ValueError(f"score {name!r} is NaN/inf for scene {self.scene_ids[row]!r}")
        return values


@dataclass
class SelectionResult:
    """A ranked selection.

    Attributes:
        method: selector name.
        indices: (budget,) int64 pool positions, best first.
        scene_ids: (budget,) the matching scene ids.
        allocation: scenes per domain (``{"all": budget}`` for domain-free methods).
        explanation: human-readable account of why these scenes.
        predicted_gain: the method's own prediction of the EPDMS gain, or None.
        config: the selector's parameters (JSON-able).
        diagnostics: anything else (fits, history), JSON-able.
    """

    method: str
    indices: np.ndarray
    scene_ids: np.ndarray
    allocation: dict[str, int]
    explanation: str = ""
    predicted_gain: float | None = None
    config: dict[str, Any] = field(default_factory=dict)
    diagnostics: dict[str, Any] = field(default_factory=dict)

    @property
    def budget(self) -> int:
        return int(len(self.indices))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (numpy values converted)."""
        return _jsonable(
            {
                "method": self.method,
                "budget": self.budget,
                "indices": self.indices,
                "scene_ids": self.scene_ids,
                "allocation": self.allocation,
                "explanation": self.explanation,
                "predicted_gain": self.predicted_gain,
                "config": self.config,
                "diagnostics": self.diagnostics,
            }
        )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None if np.isnan(value) else (1e308 if value > 0 else -1e308)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    try:
        json.dumps(value)
        return value
    except TypeError:
        return repr(value)


@runtime_checkable
class Selector(Protocol):
    """Anything that picks ``budget`` scenes from a pool."""

    def select(self, pool: Pool, budget: int, **kwargs: Any) -> SelectionResult: ...


def validate_budget(budget: Any, pool_size: int, *, name: str = "budget") -> int:
    """``budget`` as an int in [1, pool_size], else a ValueError naming the value."""
    if isinstance(budget, bool) or not isinstance(budget, (int, np.integer, float, np.floating)):
        raise ValueError(f"{name} must be a positive integer, got {budget!r}")
    if isinstance(budget, (float, np.floating)) and (not np.isfinite(budget) or budget != int(budget)):
        raise ValueError(f"{name} must be a positive integer, got {budget!r}")
    budget = int(budget)
    if pool_size <= 0:
        raise ValueError("the candidate pool is empty: nothing to select from")
    if budget <= 0:
        raise ValueError(f"{name} must be positive, got {budget}")
    if budget > pool_size:
        raise ValueError(f"{name} {budget} is larger than the pool ({pool_size} scenes)")
    return budget


def encode_domains(domains: np.ndarray | None, pool_size: int, *, method: str = "selection") -> tuple[np.ndarray, np.ndarray]:
    """Domain labels → (names (D,) as str, codes (n,) int64 in [0, D)).

    Raises a ValueError if labels are missing, the wrong length, or contain empty/None labels.
    """
    if domains is None:
        raise ValueError(f"{method} needs domain labels (clusters or a metadata field); the pool has none")
    domains = np.asarray(domains)
    if domains.shape != (pool_size,):
        raise ValueError(f"domain labels must have shape ({pool_size},), got {domains.shape}")
    if pool_size == 0:
        raise ValueError("no domains: the pool is empty")
    labels = np.array([str(d) if d is not None else "" for d in domains.tolist()], dtype=object)
    bad = (labels == "") | (labels == "None") | (labels == "nan")
    if bad.any():
        raise ValueError(f"{int(bad.sum())} pool scene(s) have an empty domain label (first at position {int(np.flatnonzero(bad)[0])})")
    names, codes = np.unique(labels.astype(str), return_inverse=True)
    return names.astype(object), codes.astype(np.int64)


def make_result(method: str, pool: Pool, order: np.ndarray, **kwargs: Any) -> SelectionResult:
    """A :class:`SelectionResult` for pool positions ``order`` (best first)."""
    order = np.asarray(order, dtype=np.int64)
    if len(np.unique(order)) != len(order):
        raise RuntimeError(f"{method} selected a scene twice")  # a bug, never user input
    allocation = kwargs.pop("allocation", None) or {"all": int(len(order))}
    return SelectionResult(method=method, indices=order, scene_ids=pool.scene_ids[order], allocation=allocation, **kwargs)
