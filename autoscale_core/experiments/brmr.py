"""BRMR (budget ratio to match random) from a *measured* random curve, with paired bootstrap intervals.

Definitions used by the selection protocol (:mod:`.selection_protocol`):

* The random curve is random selection's mean test EPDMS measured at several budgets
  ``b_1 < … < b_K`` that reach below the smallest and above the largest method budget. It is made
  monotone by isotonic regression (more random data never *predicts* a lower score; the raw means
  are reported too) and interpolated linearly in log-budget between measured budgets. Nothing is
  extrapolated: no line from budget 0 and no running maximum of a method's curve.
* For a method that reaches EPDMS ``y`` with ``b`` scenes, ``b_random(y)`` is the smallest budget at
  which the random curve reaches ``y``, and ``BRMR = b / b_random(y)``: < 1 means the method needs
  fewer scenes than random for the same score.
* Censoring: if ``y`` is at or below the random curve's first point, random matches it at
  ``b_1`` or less, so BRMR ≥ ``b / b_1`` (reported as that value with ``censored = "lower"``,
  i.e. the true ratio is at least this). If ``y`` is above the curve's last point, BRMR <
  ``b / b_K`` (``censored = "upper"``: the true ratio is at most this).

The bootstrap is paired and hierarchical: each replicate resamples world splits, then training
seeds within a split, then test scenes within a split, and applies the *same* draw to every
method and to random, so differences between methods are not inflated by independent noise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["monotone_curve", "budget_to_match", "brmr_point", "BootstrapDraws", "bootstrap_means", "percentile_interval"]

LOWER, UPPER, NONE = "lower", "upper", ""


def monotone_curve(budgets: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """Isotonic (non-decreasing) fit of ``scores`` over increasing ``budgets`` (pool-adjacent-violators).

    Args:
        budgets: (K,) strictly increasing budgets (scenes).
        scores: (K,) mean EPDMS at those budgets.
    Returns:
        (K,) the closest non-decreasing sequence in least squares.
    """
    budgets = np.asarray(budgets, dtype=np.float64)
    if budgets.ndim != 1 or len(budgets) < 2 or np.any(np.diff(budgets) <= 0):
        raise ValueError(f"random-curve budgets must be >= 2 strictly increasing values, got {budgets.tolist()}")
    values = [float(v) for v in np.asarray(scores, dtype=np.float64)]
    if len(values) != len(budgets) or not np.isfinite(values).all():
        raise ValueError("random-curve scores must be finite and one per budget")
    blocks: list[list[float]] = []  # [mean, weight]
    for v in values:
        blocks.append([v, 1.0])
        while len(blocks) > 1 and blocks[-2][0] > blocks[-1][0]:
            m2, w2 = blocks.pop()
            m1, w1 = blocks.pop()
            blocks.append([(m1 * w1 + m2 * w2) / (w1 + w2), w1 + w2])
    return np.concatenate([np.full(int(w), m) for m, w in blocks])


def budget_to_match(budgets: np.ndarray, curve: np.ndarray, target: float) -> tuple[float, str]:
    """Smallest budget at which the monotone ``curve`` reaches ``target`` (log-budget interpolation).

    Returns:
        (budget, censored): ``censored`` is ``"lower"`` when the target is at or below the first
        point (budget ``b_1`` returned: random needs at most that), ``"upper"`` when above the
        last point (budget ``b_K`` returned: random needs more), else ``""``.
    """
    budgets = np.asarray(budgets, dtype=np.float64)
    curve = np.asarray(curve, dtype=np.float64)
    if target <= curve[0]:
        return float(budgets[0]), LOWER
    if target > curve[-1]:
        return float(budgets[-1]), UPPER
    k = int(np.argmax(curve >= target))  # first point at or above the target; k >= 1 here
    lo, hi = curve[k - 1], curve[k]
    frac = 1.0 if hi <= lo else (target - lo) / (hi - lo)
    log_b = np.log(budgets[k - 1]) + frac * (np.log(budgets[k]) - np.log(budgets[k - 1]))
    return float(np.exp(log_b)), NONE


def brmr_point(budget: float, score: float, random_budgets: np.ndarray, random_scores: np.ndarray) -> tuple[float, str]:
    """BRMR of one (budget, score) point against raw random means (made monotone here).

    Returns (ratio, censored) with ``censored`` as in :func:`budget_to_match`.
    """
    curve = monotone_curve(random_budgets, random_scores)
    matched, censored = budget_to_match(random_budgets, curve, float(score))
    return float(budget) / matched, censored


@dataclass
class BootstrapDraws:
    """One paired hierarchical bootstrap draw set, applied identically to every curve.

    Attributes:
        split_index: (R, S) which splits each replicate averages (with replacement).
        seed_index: (R, S, K) which training seeds each replicate uses per split.
        scene_weight: (R, S, N) multinomial counts of test scenes per replicate and split.
    """

    split_index: np.ndarray
    seed_index: np.ndarray
    scene_weight: np.ndarray

    @classmethod
    def draw(cls, num_splits: int, num_seeds: int, num_scenes: int, replicates: int, seed: int = 0,
             resample_splits: bool = True) -> "BootstrapDraws":
        if replicates < 1:
            raise ValueError(f"bootstrap replicates must be >= 1, got {replicates}")
        rng = np.random.default_rng(seed)
        if resample_splits:
            split_index = rng.integers(num_splits, size=(replicates, num_splits))
        else:
            split_index = np.tile(np.arange(num_splits), (replicates, 1))
        seed_index = rng.integers(num_seeds, size=(replicates, num_splits, num_seeds))
        scene_weight = rng.multinomial(num_scenes, np.full(num_scenes, 1.0 / num_scenes),
                                       size=(replicates, num_splits)).astype(np.float32)
        return cls(split_index, seed_index, scene_weight)


def bootstrap_means(per_scene: np.ndarray, draws: BootstrapDraws) -> np.ndarray:
    """Replicate means of per-scene scores.

    Args:
        per_scene: (M, S, K, N) scores of M curves-points (method × budget) on S splits × K
            training seeds × N test scenes (the same N scenes for every row of a split).
        draws: the shared :class:`BootstrapDraws`.
    Returns:
        (M, R) the mean over resampled splits, seeds and scenes for each replicate.
    """
    m, s, k, n = per_scene.shape
    r = draws.scene_weight.shape[0]
    # Scene-weighted means per (row, split, seed, replicate): one matrix product per split.
    by_seed = np.empty((m, s, k, r), dtype=np.float64)
    for split in range(s):
        flat = per_scene[:, split].reshape(m * k, n).astype(np.float32)
        by_seed[:, split] = (flat @ draws.scene_weight[:, split].T).reshape(m, k, r) / n
    reps = np.arange(r)
    # Resampled seeds per split, then resampled splits.
    by_split = np.stack([by_seed[:, split][:, draws.seed_index[:, split], reps[:, None]].mean(-1) for split in range(s)], 1)
    return by_split[:, draws.split_index, reps[:, None]].mean(-1)


def percentile_interval(values: np.ndarray, level: float = 0.95, axis: int = -1) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) percentile interval along ``axis``; NaNs ignored."""
    tail = 100 * (1 - level) / 2
    return np.nanpercentile(values, tail, axis=axis), np.nanpercentile(values, 100 - tail, axis=axis)
