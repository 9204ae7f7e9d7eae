"""Budget allocation over domains, and the BRMR metric.

Greedy marginal-gain allocation: repeatedly give the next scene to the domain whose predicted
gain curve rises most for one more scene, until the budget is spent or domains are full. For
concave curves (the saturating exponential, linear and zero models all are) the k-th marginal gain
of each domain decreases in k, so the greedy sequence equals "take the ``budget`` largest marginal
gains over all (domain, k) pairs" — computed here in one vectorised sort instead of a heap loop,
and it is optimal for the separable concave problem max Σ ΔU_i(n_i) s.t. Σ n_i = B, n_i ≤ cap_i.

Scenes with no predicted gain (all curves flat) are spread proportionally to the remaining
capacity of each domain (i.e. like random sampling), so the budget is always spent.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

__all__ = ["greedy_allocate", "proportional_allocate", "budget_to_reach", "brmr"]

GainCurve = Callable[[np.ndarray], np.ndarray]


def proportional_allocate(weights: np.ndarray, capacities: np.ndarray, budget: int) -> np.ndarray:
    """Split ``budget`` ∝ ``weights`` (largest remainder), capped by ``capacities``.

    Args:
        weights: (D,) non-negative; all-zero weights fall back to the capacities.
        capacities: (D,) ints, Σ ≥ budget.
    Returns:
        (D,) int64 counts summing to ``budget``.
    """
    weights = np.asarray(weights, dtype=np.float64)
    capacities = np.asarray(capacities, dtype=np.int64)
    if budget > capacities.sum():
        raise ValueError(f"budget {budget} exceeds the total capacity {int(capacities.sum())}")
    counts = np.zeros(len(capacities), dtype=np.int64)
    remaining = int(budget)
    # Redistribute what capped domains cannot take, a few passes at most (each pass fills >= 1 domain).
    while remaining > 0:
        room = capacities - counts
        w = np.where(room > 0, np.clip(weights, 0, None), 0.0)
        if w.sum() <= 0:
            w = room.astype(np.float64)
        share = w / w.sum() * remaining
        add = np.minimum(np.floor(share).astype(np.int64), room)
        leftover = remaining - int(add.sum())
        if leftover > 0:
            # Largest fractional remainders first, ties by domain index (deterministic).
            frac = np.where(room - add > 0, share - np.floor(share), -np.inf)
            order = np.lexsort((np.arange(len(frac)), -frac))
            for d in order[:leftover]:
                if room[d] - add[d] > 0:
                    add[d] += 1
        if add.sum() == 0:  # degenerate weights: hand out one at a time by room
            d = int(np.argmax(room))
            add[d] = 1
        counts += add
        remaining = int(budget) - int(counts.sum())
    return counts


def greedy_allocate(
    curves: Sequence[GainCurve | object],
    capacities: Sequence[int],
    budget: int,
    *,
    return_order: bool = False,
):
    """Greedy marginal-gain allocation of ``budget`` scenes over D domains.

    Args:
        curves: D gain curves; each either has ``marginal_gains(capacity)`` (a ScalingFit) or is a
            callable ``n (k,) -> gain (k,)``. Must be concave for the result to be optimal.
        capacities: (D,) scenes available per domain.
        budget: scenes to allocate, 1 ≤ budget ≤ Σ capacities.
        return_order: also return the domain of each allocated scene in greedy order.

    Returns:
        counts (D,) int64 summing to ``budget`` [, order (budget,) int64 domain indices].
    """
    capacities = np.asarray(capacities, dtype=np.int64)
    if len(curves) != len(capacities):
        raise ValueError(f"{len(curves)} curves for {len(capacities)} domains")
    if len(curves) == 0:
        raise ValueError("no domains to allocate over")
    if (capacities < 0).any():
        raise ValueError("domain capacities must be non-negative")
    budget = int(budget)
    if budget <= 0:
        raise ValueError(f"budget must be positive, got {budget}")
    if budget > capacities.sum():
        raise ValueError(f"budget {budget} is larger than the pool ({int(capacities.sum())} scenes)")

    gains = [_marginal(curve, int(cap)) for curve, cap in zip(curves, capacities)]
    domain = np.concatenate([np.full(len(g), d, dtype=np.int64) for d, g in enumerate(gains)])
    step = np.concatenate([np.arange(len(g)) for g in gains])
    gain = np.concatenate(gains)
    positive = gain > 1e-12
    # Largest gain first; ties by step then domain so each domain's units stay in order.
    ranked = np.lexsort((domain, step, -gain))
    ranked = ranked[positive[ranked]][:budget]
    counts = np.bincount(domain[ranked], minlength=len(capacities)).astype(np.int64)
    order = list(domain[ranked])
    rest = budget - int(counts.sum())
    if rest > 0:  # no predicted gain left: spread like random sampling
        extra = proportional_allocate(capacities - counts, capacities - counts, rest)
        counts += extra
        order += list(np.repeat(np.arange(len(capacities)), extra))
    if return_order:
        return counts, np.asarray(order, dtype=np.int64)
    return counts


def _marginal(curve, capacity: int) -> np.ndarray:
    if hasattr(curve, "marginal_gains"):
        g = np.asarray(curve.marginal_gains(capacity), dtype=np.float64)
    else:
        values = np.asarray(curve(np.arange(capacity + 1, dtype=np.float64)), dtype=np.float64)
        g = np.diff(values)
    if g.shape != (capacity,) or not np.isfinite(g).all():
        raise ValueError("a gain curve returned non-finite or mis-shaped values")
    return g


def budget_to_reach(budgets: np.ndarray, scores: np.ndarray, target: float | np.ndarray) -> np.ndarray:
    """Smallest budget at which a (piecewise-linear) score curve first reaches ``target``.

    Args:
        budgets: (K,) increasing budgets (include 0 with the base score for a curve from zero).
        scores: (K,) score (EPDMS) at each budget; the curve is taken as its running maximum.
        target: scalar or (M,) target scores.
    Returns:
        (M,) or scalar budgets (linear interpolation); ``inf`` where never reached.
    """
    budgets = np.asarray(budgets, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    if budgets.ndim != 1 or budgets.shape != scores.shape or len(budgets) == 0:
        raise ValueError("budgets and scores must be 1-D arrays of the same non-zero length")
    if (np.diff(budgets) <= 0).any():
        raise ValueError(f"budgets must be strictly increasing, got {budgets.tolist()}")
    envelope = np.maximum.accumulate(scores)
    target_arr = np.atleast_1d(np.asarray(target, dtype=np.float64))
    out = np.full(target_arr.shape, np.inf)
    for m, t in enumerate(target_arr):
        hit = np.flatnonzero(envelope >= t)
        if len(hit) == 0:
            continue
        k = int(hit[0])
        if k == 0:
            out[m] = budgets[0]
            continue
        lo, hi = envelope[k - 1], envelope[k]
        frac = (t - lo) / (hi - lo) if hi > lo else 1.0
        out[m] = budgets[k - 1] + frac * (budgets[k] - budgets[k - 1])
    return out if np.ndim(target) else float(out[0])


def brmr(
    method_budgets: np.ndarray, method_scores: np.ndarray, random_budgets: np.ndarray, random_scores: np.ndarray
) -> np.ndarray:
    """Budget Ratio to Match Random, at each of random's budgets.

    For random's budget B with score s = random(B), BRMR(B) = B_method(s) / B where B_method(s)
    is the budget the method's curve needs to reach s (interpolated; include budget 0 with the base
    score in both curves). < 1 means the method needs less data than random; ``inf`` where the
    method never reaches random's score within its measured budgets.

    Returns:
        (K,) one ratio per random budget; NaN for B = 0 and where random's score does not exceed
        the method curve's first score (nothing to match).
    """
    random_budgets = np.asarray(random_budgets, dtype=np.float64)
    random_scores = np.asarray(random_scores, dtype=np.float64)
    needed = budget_to_reach(method_budgets, method_scores, random_scores)
    # Where random is no better than the method's starting point (e.g. random did not improve on
    # the base planner) there is nothing to match: undefined rather than a flattering 0.
    start = np.asarray(method_scores, dtype=np.float64)[0]
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((random_budgets > 0) & (random_scores > start), needed / random_budgets, np.nan)
    return ratio
