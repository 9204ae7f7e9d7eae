"""Active learning with the value score Q: take the top-m scenes by Q.

Per-scene value components (``pool.scores``) follow the one definition in
``autoscale_core.representation.value``: ``value_S`` (safety proximity), ``value_R`` (rarity,
−log kNN density), ``value_U`` (MC-dropout uncertainty), and optionally ``value_Q``.
:class:`ValueTopSelector` uses ``value_Q`` when it is present and all components are requested;
otherwise it combines the requested subset with the same formula, Σ_c c/σ_c
(:func:`~autoscale_core.representation.value.combine_scores`).
:func:`ablation_subsets` lists the S/R/U subsets for the ablation table.
"""

from __future__ import annotations

from itertools import combinations
from typing import Sequence

import numpy as np

from ..representation.value import combine_scores
from .base import Pool, SelectionResult, make_result, validate_budget

__all__ = ["ValueTopSelector", "ablation_subsets", "combine_components", "COMPONENTS"]

COMPONENTS = ("S", "R", "U")


def ablation_subsets(components: Sequence[str] = COMPONENTS) -> list[tuple[str, ...]]:
    """All non-empty subsets, singletons first: (S,), (R,), (U,), (S,R), …, (S,R,U)."""
    return [c for k in range(1, len(components) + 1) for c in combinations(components, k)]


def combine_components(pool: Pool, components: Sequence[str]) -> np.ndarray:
    """(n,) Q for a subset of components: Σ_c value_c / σ_c over the pool."""
    if not components:
        raise ValueError("choose at least one value component (S, R, U)")
    unknown = [c for c in components if c not in COMPONENTS]
    if unknown:
        raise ValueError(f"unknown value component(s) {unknown}; expected a subset of {COMPONENTS}")
    return combine_scores({c: pool.require_score(f"value_{c}", "value top-m") for c in components}, components)


class ValueTopSelector:
    """Top-m scenes by value Q (or by a subset of its components, for ablations).

    Args:
        components: which of S, R, U to use.
        use_precomputed_q: with all three components, use ``value_Q`` when the pool has it.
    """

    name = "value_topm"

    def __init__(self, components: Sequence[str] = COMPONENTS, use_precomputed_q: bool = True):
        self.components = tuple(components)
        if not self.components or any(c not in COMPONENTS for c in self.components):
            raise ValueError(f"components must be a non-empty subset of {COMPONENTS}, got {components!r}")
        self.use_precomputed_q = use_precomputed_q

    def select(self, pool: Pool, budget: int) -> SelectionResult:
        budget = validate_budget(budget, len(pool))
        if self.use_precomputed_q and set(self.components) == set(COMPONENTS) and "value_Q" in pool.scores:
            q, source = pool.require_score("value_Q", "value top-m"), "value_Q"
        else:
            q, source = combine_components(pool, self.components), "+".join(f"{c}/σ{c}" for c in self.components)
        order = np.lexsort((np.arange(len(q)), -q))[:budget]
        name = self.name if len(self.components) == 3 else f"{self.name}[{''.join(self.components)}]"
        return make_result(
            name, pool, order,
            explanation=f"top-{budget} by Q = {source}; Q range selected {q[order].min():.3f}..{q[order].max():.3f}",
            config={"components": list(self.components), "source": source},
        )
