"""The selection methods the protocol compares, all given the same information.

Every method sees one :class:`SelectionContext` per split: the pool's scenes with their domain
labels, and the *base planner's* signals (one planner trained on the base set): scene embeddings
of pool and base (its penultimate features), its closed-loop failure ``1 − EPDMS`` on each pool
scene, its MC-dropout uncertainty, plus any externally computed scores (FiftyOne Brain
uniqueness / representativeness on the same embeddings, passed in by the caller because the core
never imports FiftyOne). Methods that train extra planners to decide (MOSAIC's pilots, the
best-of-val random control) score them on the *val* split only and report how many they trained.

A method is a function ``(ctx, budgets, seeds) -> MethodPicks``; the registry :data:`METHODS`
names them. Deterministic methods return the same picks for every training seed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..selection.allocation import proportional_allocate
from ..selection.base import Pool, encode_domains
from ..selection.baselines import k_center_greedy

__all__ = ["SelectionContext", "MethodPicks", "METHODS", "DEFAULT_METHODS", "SIGNAL_TRAININGS"]

# The base planner every signal-using method relies on counts as one training.
SIGNAL_TRAININGS = 1


@dataclass
class SelectionContext:
    """What every method may use on one split.

    Attributes:
        pool: the selection :class:`~autoscale_core.selection.base.Pool` (embeddings (n, d),
            domains (n,), scores ``importance`` = 1 − EPDMS of the base planner and
            ``uncertainty`` = MC-dropout variance (m²)).
        base_embeddings: (m, d) embeddings of the base set (k-center starts from them).
        external_scores: name → (n,) scores computed outside the core (e.g. FiftyOne Brain).
        split_index: position of the split (decorrelates random draws across splits).
        val_trainer: ``fn(tasks) -> list[float]`` training base + picks and scoring mean val EPDMS
            (×100) for a list of :class:`~autoscale_core.selection.oracle.OracleTask`; None when
            no method needs it.
        oracle: the same as an ``(indices, weights, seed) -> score`` oracle (for MOSAIC).
        executor: the executor the oracle's runs go through.
        options: method options from the protocol config (pilot seeds, ranking, …).
    """

    pool: Pool
    base_embeddings: np.ndarray
    external_scores: dict[str, np.ndarray] = field(default_factory=dict)
    split_index: int = 0
    val_trainer: Callable | None = None
    oracle: Any = None
    executor: Any = None
    options: dict[str, Any] = field(default_factory=dict)
    shared: dict[str, Any] = field(default_factory=dict)  # results one method leaves for another


@dataclass
class MethodPicks:
    """Picks of one method on one split.

    Attributes:
        picks: (budget, seed) → (budget,) int pool positions.
        trainings: planner trainings the method used to decide (beyond the final training).
        diagnostics: JSON-able details (allocations, fits, pilot points).
    """

    picks: dict[tuple[int, int], np.ndarray]
    trainings: int
    diagnostics: dict[str, Any] = field(default_factory=dict)


def _same_for_seeds(order_for_budget: Callable[[int], np.ndarray], budgets, seeds) -> dict:
    out = {}
    for b in budgets:
        order = np.asarray(order_for_budget(b), dtype=np.int64)
        for s in seeds:
            out[(b, s)] = order
    return out


def _top(scores: np.ndarray, budget: int) -> np.ndarray:
    """Positions of the ``budget`` largest scores (ties by position)."""
    return np.lexsort((np.arange(len(scores)), -np.asarray(scores, dtype=np.float64)))[:budget]


def _rng(ctx: SelectionContext, seed: int, salt: int) -> np.random.Generator:
    return np.random.default_rng([ctx.split_index, int(seed), salt])


def random_method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
    """Uniform random; a new draw per training seed (so seeds average over draws too)."""
    n = len(ctx.pool)
    picks = {(b, s): _rng(ctx, s, 1).permutation(n)[:b] for b in budgets for s in seeds}
    return MethodPicks(picks, trainings=0)


def stratified_method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
    """Domain-stratified random: an equal share per domain (capped by its size), random within."""
    names, codes = encode_domains(ctx.pool.domains, len(ctx.pool), method="stratified random")
    capacities = np.bincount(codes, minlength=len(names))
    picks, allocations = {}, {}
    for b in budgets:
        counts = proportional_allocate(np.ones(len(names)), capacities, b)
        allocations[str(b)] = {str(n): int(c) for n, c in zip(names, counts)}
        for s in seeds:
            rng = _rng(ctx, s, 2)
            picks[(b, s)] = np.concatenate([rng.permutation(np.flatnonzero(codes == d))[:c] for d, c in enumerate(counts)])
    return MethodPicks(picks, trainings=0, diagnostics={"allocation": allocations})


def kcenter_method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
    """k-center greedy (coreset) that treats the base set as already-chosen centres."""
    emb = ctx.pool.require_embeddings("k-center greedy")
    n = len(emb)
    both = np.vstack([emb, np.asarray(ctx.base_embeddings, dtype=np.float32)])
    order, _ = k_center_greedy(both, max(budgets), initial=np.arange(n, len(both)))
    return MethodPicks(_same_for_seeds(lambda b: order[:b], budgets, seeds), trainings=SIGNAL_TRAININGS)


def uncertainty_method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
    """Top MC-dropout uncertainty of the base planner."""
    u = ctx.pool.require_score("uncertainty", "MC-dropout uncertainty")
    return MethodPicks(_same_for_seeds(lambda b: _top(u, b), budgets, seeds), trainings=SIGNAL_TRAININGS)


def hard_mining_method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
    """Hard-example mining: the pool scenes the base planner scores worst on (top 1 − EPDMS;
    ``selection.HardExampleSelector`` is the same ranking for the plugin)."""
    failure = ctx.pool.require_score("importance", "hard-example mining")
    return MethodPicks(_same_for_seeds(lambda b: _top(failure, b), budgets, seeds), trainings=SIGNAL_TRAININGS)


def _external(name: str, label: str):
    def method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
        if name not in ctx.external_scores:
            raise ValueError(f"method {label!r} needs the external score {name!r}; "
                             f"given: {sorted(ctx.external_scores) or 'none'}")
        scores = ctx.external_scores[name]
        return MethodPicks(_same_for_seeds(lambda b: _top(scores, b), budgets, seeds), trainings=SIGNAL_TRAININGS)

    method.__doc__ = f"Top {label} (FiftyOne Brain, on the base planner's embeddings)."
    return method


def mosaic_method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
    """MOSAIC (see :mod:`autoscale_core.selection.mosaic`): pilots on val, one fit per split that
    brackets every budget, greedy allocation, in-domain ranking as configured."""
    return _mosaic(ctx, budgets, seeds, ctx.options.get("mosaic_ranking", "published"))


def mosaic_other_ranking_method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
    """Ablation: MOSAIC's fits and allocation with the *other* in-domain ranking sign."""
    published = ctx.options.get("mosaic_ranking", "published")
    other = "failures_first" if published == "published" else "published"
    return _mosaic(ctx, budgets, seeds, other)


def _mosaic(ctx: SelectionContext, budgets, seeds, ranking: str) -> MethodPicks:
    from ..selection.mosaic import MosaicSelector

    selector = ctx.shared.get("mosaic_selector")
    if selector is None:  # the first MOSAIC variant pilots and fits; the ablation reuses the fits
        selector = MosaicSelector(
            ctx.oracle, executor=ctx.executor, pilot_sizes=None, seeds=ctx.options["pilot_seeds"],
            ranking=ctx.options.get("mosaic_ranking", "published"),
            bracket_budgets=tuple(budgets),
        )
        selector.fit(ctx.pool, max(budgets))
        ctx.shared["mosaic_selector"] = selector
    picks, diagnostics = {}, {"ranking": ranking, "allocation": {}, "predicted_gain": {}}
    for b in budgets:
        result = selector.select(ctx.pool, b, refit=False, ranking=ranking)
        diagnostics["allocation"][str(b)] = result.allocation
        diagnostics["predicted_gain"][str(b)] = result.predicted_gain
        for s in seeds:
            picks[(b, s)] = result.indices
    diagnostics["fits"] = {n: f.to_dict() for n, f in selector.fits_.items()}
    diagnostics["pilots"] = selector.pilots_
    diagnostics["base_score_val"] = selector.base_score_
    diagnostics["failed_pilots"] = selector.failures_
    return MethodPicks(picks, trainings=SIGNAL_TRAININGS + selector.trainings_, diagnostics=diagnostics)


def random_best_of_val_method(ctx: SelectionContext, budgets, seeds) -> MethodPicks:
    """Control for methods that train pilots: as many random draws as MOSAIC trained pilots (split
    evenly over the budgets), each trained once and scored on val; the best draw per budget wins."""
    from ..selection.oracle import OracleTask

    extra = int(ctx.options.get("control_trainings") or 0)
    draws = max(1, extra // len(budgets))
    n = len(ctx.pool)
    candidates = {(b, k): _rng(ctx, k, 3 + b).permutation(n)[:b] for b in budgets for k in range(draws)}
    keys = sorted(candidates)
    tasks = [OracleTask(tuple(int(i) for i in candidates[key]), None, int(seeds[0]), tag=f"best-of-val:b={key[0]}:draw={key[1]}")
             for key in keys]
    scores = dict(zip(keys, ctx.val_trainer(tasks)))
    picks, chosen = {}, {}
    for b in budgets:
        best = max(range(draws), key=lambda k: scores[(b, k)])
        chosen[str(b)] = {"draw": best, "val_epdms": scores[(b, best)],
                          "val_epdms_all_draws": [scores[(b, k)] for k in range(draws)]}
        for s in seeds:
            picks[(b, s)] = candidates[(b, best)]
    return MethodPicks(picks, trainings=len(tasks), diagnostics={"draws_per_budget": draws, "chosen": chosen})


METHODS: dict[str, Callable[[SelectionContext, Any, Any], MethodPicks]] = {
    "random": random_method,
    "stratified": stratified_method,
    "kcenter": kcenter_method,
    "uncertainty": uncertainty_method,
    "hard_mining": hard_mining_method,
    "fo_uniqueness": _external("fo_uniqueness", "uniqueness"),
    "fo_representativeness": _external("fo_representativeness", "representativeness"),
    "mosaic": mosaic_method,
    "mosaic_other_ranking": mosaic_other_ranking_method,
    "random_best_of_val": random_best_of_val_method,
}
DEFAULT_METHODS = tuple(METHODS)
