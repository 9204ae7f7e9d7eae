"""Scaling-law fits, greedy allocation, budgets and BRMR (plain arrays, synthetic curves)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from autoscale_core.selection import (
    ScalingFit,
    ScalingLawFitter,
    brmr,
    budget_to_reach,
    fit_scaling_laws,
    greedy_allocate,
    proportional_allocate,
    saturating_exp,
    validate_budget,
)

SIZES = np.array([10, 25, 50, 100, 200, 400], dtype=float)


@pytest.mark.parametrize("a,tau", [(8.0, 60.0), (2.5, 150.0), (12.0, 20.0)])
def test_fit_recovers_known_parameters(a, tau):
    rng = np.random.default_rng(0)
    gains = saturating_exp(SIZES, a, tau) + rng.normal(0, 0.02 * a, len(SIZES))
    fit = ScalingLawFitter().fit(SIZES, gains)
    assert fit.model == "exp", fit.warnings
    assert fit.a == pytest.approx(a, rel=0.1)
    assert fit.tau == pytest.approx(tau, rel=0.2)
    assert fit.r2 > 0.95 and fit.residual_std < 0.1 * a


def test_robust_fit_tolerates_one_outlier():
    gains = saturating_exp(SIZES, 6.0, 80.0)
    gains[3] += 4.0  # one broken pilot
    fit = ScalingLawFitter().fit(SIZES, gains)
    assert fit.model == "exp"
    assert fit.a == pytest.approx(6.0, rel=0.15)


def test_flat_curve_degrades_to_zero_model_and_says_so():
    fit = ScalingLawFitter(flat_tol=0.05).fit(SIZES, np.array([0.01, -0.02, 0.0, 0.03, -0.01, 0.02]))
    assert fit.model == "zero"
    assert np.all(fit.predict(np.arange(100)) == 0)
    assert any("flat curve" in w for w in fit.warnings)


def test_negative_gains_get_zero_model():
    fit = ScalingLawFitter().fit(SIZES, -0.5 * np.ones(len(SIZES)))
    assert fit.model == "zero" and fit.warnings


def test_unsaturated_curve_falls_back_to_linear():
    fit = ScalingLawFitter().fit(SIZES, 0.01 * SIZES)
    assert fit.model == "linear"
    assert fit.slope == pytest.approx(0.01, rel=0.05)
    assert any("no saturation" in w for w in fit.warnings)


def test_noisy_non_increasing_pilots_get_zero_not_a_zero_slope_line():
    # Real pilots on a small world: gains dominated by training noise, trending down.
    fit = ScalingLawFitter().fit([3, 9, 24], [2.94, 0.39, -6.94])
    assert fit.model == "zero" and fit.warnings
    assert np.all(fit.predict([10, 100]) == 0)


def test_failed_pilots_are_ignored_or_zero():
    gains = saturating_exp(SIZES, 5.0, 50.0)
    gains[[1, 4]] = np.nan
    fit = ScalingLawFitter().fit(SIZES, gains)
    assert fit.model == "exp" and any("2 failed pilot" in w for w in fit.warnings)
    all_failed = ScalingLawFitter().fit(SIZES, np.full(len(SIZES), np.nan))
    assert all_failed.model == "zero" and any("fewer than 2" in w for w in all_failed.warnings)


def test_fit_input_errors():
    fitter = ScalingLawFitter()
    with pytest.raises(ValueError, match="3 pilot sizes but 2 gains"):
        fitter.fit([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="positive"):
        fitter.fit([0, 2, 3], [1, 2, 3])
    with pytest.raises(ValueError, match="both sizes and gains"):
        fit_scaling_laws({"a": [1, 2]}, {"b": [1, 2]})


def _brute_force(curves, caps, budget):
    best = -np.inf
    for counts in itertools.product(*[range(c + 1) for c in caps]):
        if sum(counts) == budget:
            best = max(best, sum(float(c.predict(n)) for c, n in zip(curves, counts)))
    return best


@pytest.mark.parametrize("seed", range(5))
def test_greedy_is_optimal_on_concave_curves(seed):
    rng = np.random.default_rng(seed)
    curves = [ScalingFit("exp", a=rng.uniform(0.5, 5), tau=rng.uniform(1, 8)) for _ in range(3)]
    curves.append(ScalingFit("linear", slope=rng.uniform(0.01, 0.3)))
    caps = rng.integers(1, 7, size=4)
    budget = int(rng.integers(1, caps.sum() + 1))
    counts = greedy_allocate(curves, caps, budget)
    assert counts.sum() == budget and (counts <= caps).all()
    total = sum(float(c.predict(n)) for c, n in zip(curves, counts))
    assert total == pytest.approx(_brute_force(curves, caps, budget), abs=1e-9)


def test_greedy_prefers_the_valuable_domain_and_respects_capacity():
    curves = [ScalingFit("exp", a=10, tau=50), ScalingFit("exp", a=1, tau=50), ScalingFit("zero")]
    counts, order = greedy_allocate(curves, [30, 500, 500], 100, return_order=True)
    assert counts[0] == 30  # full, it is the best domain throughout
    assert counts.sum() == 100 and len(order) == 100
    assert order[0] == 0


def test_all_flat_curves_spend_the_budget_proportionally():
    counts = greedy_allocate([ScalingFit("zero")] * 3, [10, 30, 60], 50)
    assert counts.tolist() == [5, 15, 30]


def test_callable_curves_and_errors():
    counts = greedy_allocate([lambda n: np.sqrt(n), lambda n: 2 * np.sqrt(n)], [100, 100], 50)
    assert counts.sum() == 50 and counts[1] > counts[0]
    with pytest.raises(ValueError, match="larger than the pool"):
        greedy_allocate([ScalingFit("zero")], [5], 6)
    with pytest.raises(ValueError, match="positive"):
        greedy_allocate([ScalingFit("zero")], [5], 0)
    with pytest.raises(ValueError, match="no domains"):
        greedy_allocate([], [], 1)


def test_proportional_allocate_caps_and_sums():
    counts = proportional_allocate(np.array([0.8, 0.1, 0.1]), np.array([5, 100, 100]), 60)
    assert counts.sum() == 60 and counts[0] == 5 and abs(counts[1] - counts[2]) <= 1


@pytest.mark.parametrize("budget,match", [(0, "positive"), (-3, "positive"), (11, "larger than the pool"),
                                          (2.5, "integer"), ("10", "integer"), (True, "integer"), (float("nan"), "integer")])
def test_budget_validation(budget, match):
    with pytest.raises(ValueError, match=match):
        validate_budget(budget, 10)
    assert validate_budget(10, 10) == 10 and validate_budget(3.0, 10) == 3


def test_budget_to_reach_and_brmr():
    budgets = np.array([0, 100, 200, 400])
    random_scores = np.array([50, 55, 58, 60])
    method_scores = np.array([50, 58, 60, 61])
    assert budget_to_reach(budgets, method_scores, 58.0) == pytest.approx(100)
    assert budget_to_reach(budgets, method_scores, 59.0) == pytest.approx(150)
    assert budget_to_reach(budgets, method_scores, 70.0) == np.inf
    ratio = brmr(budgets, method_scores, budgets, random_scores)
    assert np.isnan(ratio[0])
    # random reaches 55 at 100: the method needs 5/8 of the way to 100 → 62.5 scenes.
    assert ratio[1:] == pytest.approx([0.625, 0.5, 0.5])
    assert (brmr(budgets, random_scores, budgets, random_scores)[1:] == 1).all()
    # Random never beat the base score: BRMR is undefined there, not 0.
    worse = brmr(budgets, method_scores, budgets, np.array([50, 49, 55, 60]))
    assert np.isnan(worse[:2]).all() and worse[2] == pytest.approx(62.5 / 200)
    with pytest.raises(ValueError, match="increasing"):
        budget_to_reach([0, 0, 1], [1, 2, 3], 2)
