"""MOSAIC: scaling-law-guided budget allocation over domains.

1. Domains: the pool's ``domains`` labels (cluster ids or a metadata column such as topology).
2. Within-domain ranking: ``pool.scores["importance"]`` holds 1 − EPDMS of the *current* planner
   on each scene (its closed-loop failure). ``ranking="published"`` (the default) orders a domain
   as the MOSAIC paper does, by the current planner's EPDMS, highest first;
   ``ranking="failures_first"`` is the opposite sign (scenes the planner handles badly first),
   kept as an ablation. Without the score, a seeded random order is used (said in the explanation).
3. Pilot runs: for each domain and pilot size n, the oracle trains on base + the domain's top-n
   scenes; the gain is score − base score (same seed → common random numbers). All pilots of all
   domains and seeds go through one ``Executor.map`` (parallel). With ``bracket_budgets`` the
   sizes are ``pilot_points`` geometric steps from half the smallest budget's even share per domain
   to the largest budget (capped by the domain's size), so every budget's allocation lies inside
   the piloted range and one fit serves all budgets.
4. Fit ΔU_i(n) = a_i(1 − e^(−n/τ_i)) per domain (:mod:`.scaling`, with diagnostics); with several
   pilot seeds, each point is weighted by its seed standard error (``sigma``). A domain whose
   saturating fit fails keeps the fitter's fallback model (linear / zero) and is reported as
   ``fit_failed`` with its warnings and per-point residuals in ``pilots_`` — never silently.
5. Greedy marginal-gain allocation until the budget is spent (:mod:`.allocation`).
6. Output: each domain's top-n_i scenes, ranked globally in the order greedy picked them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..executor import Executor, TaskError, TaskFailure, Tolerant, get_executor
from .allocation import greedy_allocate
from .base import Oracle, Pool, SelectionResult, encode_domains, make_result, validate_budget
from .oracle import OracleTask, run_oracle_task
from .scaling import ScalingFit, ScalingLawFitter

__all__ = ["MosaicSelector", "rank_within_domains", "importance_from_epdms", "RANKINGS"]

RANKINGS = ("published", "failures_first")
# The paper ranks a domain's samples by the current model's EPDMS on them, highest first; ranking
# failures first (1 - EPDMS descending) is the opposite sign, kept as an ablation.
PUBLISHED_RANKING_NOTE = "as published: highest EPDMS of the current planner first"


def _mean_and_spread(per_size: list[list[float]], floor: float) -> tuple[list[float], list[float]]:
    """Per pilot size: the mean gain over seeds and its standard error (floored, so one lucky
    agreement of seeds cannot claim infinite precision); NaN where every seed failed."""
    means, spread = [], []
    for row in per_size:
        ok = np.array([g for g in row if np.isfinite(g)])
        means.append(float(ok.mean()) if len(ok) else float("nan"))
        err = float(ok.std(ddof=1) / np.sqrt(len(ok))) if len(ok) > 1 else floor
        spread.append(max(err, floor))
    return means, spread


def importance_from_epdms(epdms: np.ndarray) -> np.ndarray:
    """Importance = 1 − EPDMS (EPDMS in [0, 1]); (n,) → (n,)."""
    epdms = np.asarray(epdms, dtype=np.float64)
    if not np.isfinite(epdms).all():
        raise ValueError("EPDMS values contain NaN/inf")
    return 1.0 - epdms


def rank_within_domains(codes: np.ndarray, importance: np.ndarray, num_domains: int) -> list[np.ndarray]:
    """Per domain, the pool positions sorted by importance (descending, ties by position)."""
    order = np.lexsort((np.arange(len(codes)), -importance, codes))
    bounds = np.searchsorted(codes[order], np.arange(num_domains + 1))
    return [order[bounds[d] : bounds[d + 1]] for d in range(num_domains)]


class MosaicSelector:
    """Scaling-law allocation selector.

    Args:
        oracle: ``train_and_evaluate(indices, weights, seed) -> score``.
        executor: executor (or name) for the pilot runs; default from ``AUTOSCALE_EXECUTOR``.
        pilot_sizes: absolute pilot sizes per domain; default: ``pilot_fractions`` of the budget
            split evenly over domains (×2 headroom), clipped to each domain's size.
        pilot_fractions: multiples of budget/D used when ``pilot_sizes`` is None.
        seeds: oracle seeds; pilot gains are averaged over them.
        fitter: the scaling-law fitter.
        random_state: for the random within-domain order when no importance is given.
        on_pilot_failure: ``"skip"`` — a pilot that fails after the executor's retries counts as a
            missing point (NaN; the fit notes it and the explanation lists it); ``"raise"`` — abort
            with :class:`TaskError`. Base-score runs must always succeed.
    """

    name = "mosaic"

    def __init__(
        self,
        oracle: Oracle,
        executor: Executor | str | None = None,
        pilot_sizes: Sequence[int] | None = None,
        pilot_fractions: Sequence[float] = (0.25, 0.75, 2.0),
        seeds: Sequence[int] = (0,),
        fitter: ScalingLawFitter | None = None,
        random_state: int = 0,
        on_pilot_failure: str = "skip",
        ranking: str = "published",
        bracket_budgets: Sequence[int] | None = None,
        pilot_points: int = 3,
        min_gain_std: float = 0.1,
    ):
        if on_pilot_failure not in ("skip", "raise"):
            raise ValueError(f"on_pilot_failure must be 'skip' or 'raise', got {on_pilot_failure!r}")
        self.on_pilot_failure = on_pilot_failure
        if ranking not in RANKINGS:
            raise ValueError(f"ranking must be one of {RANKINGS}, got {ranking!r}")
        if pilot_points < 2:
            raise ValueError(f"pilot_points must be >= 2 (a curve needs two sizes), got {pilot_points}")
        if bracket_budgets is not None and (len(bracket_budgets) == 0 or min(bracket_budgets) < 1):
            raise ValueError(f"bracket budgets must be positive integers, got {bracket_budgets}")
        self.ranking = ranking
        self.bracket_budgets = None if bracket_budgets is None else sorted(int(b) for b in bracket_budgets)
        self.pilot_points = int(pilot_points)
        self.min_gain_std = float(min_gain_std)
        if not seeds:
            raise ValueError("MOSAIC needs at least one seed")
        if pilot_sizes is not None and (len(pilot_sizes) == 0 or min(pilot_sizes) < 1):
            raise ValueError(f"pilot sizes must be positive integers, got {pilot_sizes}")
        self.oracle = oracle
        self.executor = executor
        self.pilot_sizes = None if pilot_sizes is None else [int(s) for s in pilot_sizes]
        self.pilot_fractions = [float(f) for f in pilot_fractions]
        self.seeds = [int(s) for s in seeds]
        self.fitter = fitter or ScalingLawFitter()
        self.random_state = random_state
        self.fits_: dict[str, ScalingFit] = {}
        self.pilots_: dict[str, dict] = {}
        self.base_score_: float | None = None
        self.failures_: list[str] = []
        self.trainings_ = 0

    # ------------------------------------------------------------------ pilots and fits
    def _sizes_for(self, capacity: int, budget: int, num_domains: int) -> list[int]:
        if self.pilot_sizes is not None:
            raw = self.pilot_sizes
        elif self.bracket_budgets is not None:
            # Geometric sizes from well below the smallest budget's even share to the largest
            # budget (or the domain's size): every budget's plausible allocation lies inside.
            low = max(1, self.bracket_budgets[0] // (2 * num_domains))
            high = max(low + 1, min(capacity, self.bracket_budgets[-1]))
            raw = np.unique(np.round(np.geomspace(low, high, self.pilot_points)).astype(int))
        else:
            per_domain = budget / num_domains
            raw = [max(1, int(round(f * per_domain))) for f in self.pilot_fractions]
        return sorted({min(int(s), capacity) for s in raw if min(int(s), capacity) >= 1})

    def fit(self, pool: Pool, budget: int, *, domains: np.ndarray | None = None) -> "MosaicSelector":
        """Run pilots and fit one curve per domain (stores ``fits_``, ``pilots_``, ``base_score_``)."""
        budget = validate_budget(budget, len(pool))
        names, _, ranked = self._rank(pool, domains)
        sizes = {str(n): self._sizes_for(len(r), budget, len(names)) for n, r in zip(names, ranked)}

        tasks = [OracleTask((), None, s, tag=f"base:seed={s}") for s in self.seeds]
        keys = [("__base__", 0, s) for s in self.seeds]
        for name, members in zip(names, ranked):
            for n in sizes[str(name)]:
                for s in self.seeds:
                    tasks.append(OracleTask(tuple(int(i) for i in members[:n]), None, s, tag=f"{name}:n={n}:seed={s}"))
                    keys.append((str(name), n, s))
        executor = get_executor(self.executor)
        fn = run_oracle_task(self.oracle)
        if self.on_pilot_failure == "skip":
            fn = Tolerant(fn, retries=executor.retries)
        results = executor.map(fn, tasks)
        for index, r in enumerate(results[: len(self.seeds)]):  # base-score runs must succeed
            if isinstance(r, TaskFailure):
                raise TaskError(index, r.item, r.attempts, r.cause)
        self.failures_ = [f"{r.item.tag}: {r.cause}" for r in results if isinstance(r, TaskFailure)]
        scores = [np.nan if isinstance(r, TaskFailure) else r for r in results]

        base = {s: sc for (d, _, s), sc in zip(keys, scores) if d == "__base__"}
        self.base_score_ = float(np.mean(list(base.values())))
        self.trainings_ = len(tasks)
        self.pilots_, self.fits_ = {}, {}
        for name in map(str, names):
            per_size = [[sc - base[s] for (d, m, s), sc in zip(keys, scores) if d == name and m == n] for n in sizes[name]]
            gains, spread = _mean_and_spread(per_size, self.min_gain_std)
            # The seed spread weights the fit (sigma): noisy pilot points count less.
            fit = self.fitter.fit(sizes[name], gains, name=f"domain {name!r}", sigma=spread if len(self.seeds) > 1 else None)
            self.fits_[name] = fit
            self.pilots_[name] = {"sizes": sizes[name], "gains": gains, "gain_std_err": spread,
                                  "gains_std": [float(np.nanstd(row)) if np.isfinite(row).any() else float("nan")
                                                for row in map(np.asarray, per_size)],  # the panel's error bars
                                  "per_seed": [[None if not np.isfinite(g) else float(g) for g in row] for row in per_size],
                                  "residuals": (np.asarray(gains) - fit.predict(np.asarray(sizes[name]))).tolist(),
                                  "fit_failed": fit.model != "exp"}
        return self

    def _rank(self, pool: Pool, domains: np.ndarray | None, ranking: str | None = None):
        names, codes = encode_domains(pool.domains if domains is None else domains, len(pool), method="MOSAIC")
        importance, ranked_by = self._importance(pool, ranking or self.ranking)
        ranked = rank_within_domains(codes, importance, len(names))
        self._names, self._codes, self._ranked, self._ranked_by = names, codes, ranked, ranked_by
        return names, codes, ranked

    def use_fits(self, pool: Pool, fits: dict[str, ScalingFit], *, domains: np.ndarray | None = None,
                 base_score: float | None = None, pilots: dict | None = None) -> "MosaicSelector":
        """Reuse curves fitted earlier (e.g. a recorded ``fit_scaling_laws`` run) instead of piloting.

        Every domain of ``pool`` must have a curve; extra curves are ignored.
        """
        names, _, _ = self._rank(pool, domains)
        missing = [str(n) for n in names if str(n) not in fits]
        if missing:
            raise ValueError(f"no fitted scaling law for domain(s) {missing}; fitted: {sorted(fits)}")
        self.fits_ = {str(n): fits[str(n)] for n in names}
        self.pilots_ = pilots or {str(n): {"sizes": [], "gains": []} for n in names}
        self.base_score_ = float("nan") if base_score is None else float(base_score)
        return self

    def _importance(self, pool: Pool, ranking: str) -> tuple[np.ndarray, str]:
        if "importance" in pool.scores:
            failure = pool.require_score("importance", "MOSAIC")
            if ranking == "failures_first":
                return failure, "failures first (1 - EPDMS of the current planner, descending; ablation)"
            return -failure, PUBLISHED_RANKING_NOTE
        rng = np.random.default_rng(self.random_state)
        return rng.random(len(pool)), "random order (no 'importance' score in the pool)"

    # ------------------------------------------------------------------ selection
    def select(self, pool: Pool, budget: int, *, domains: np.ndarray | None = None, refit: bool = True,
               ranking: str | None = None) -> SelectionResult:
        """Pilot, fit, allocate and rank ``budget`` scenes of ``pool``.

        ``ranking`` overrides the in-domain order for this selection only (the fits are kept):
        the ablation of the ranking sign at identical allocations.
        """
        budget = validate_budget(budget, len(pool))
        if ranking is not None and ranking not in RANKINGS:
            raise ValueError(f"ranking must be one of {RANKINGS}, got {ranking!r}")
        if refit or not self.fits_:
            self.fit(pool, budget, domains=domains)
        elif len(self._codes) != len(pool):
            raise ValueError(f"the stored fits were made for a pool of {len(self._codes)} scenes, not {len(pool)}: refit")
        names, ranked, ranked_by = self._names, self._ranked, self._ranked_by
        if ranking is not None and ranking != self.ranking:
            kept = (self._names, self._codes, self._ranked, self._ranked_by)
            names, _, ranked = self._rank(pool, domains, ranking)
            ranked_by = self._ranked_by
            self._names, self._codes, self._ranked, self._ranked_by = kept
        fits = [self.fits_[str(n)] for n in names]
        capacities = np.array([len(r) for r in ranked])
        counts, greedy_order = greedy_allocate(fits, capacities, budget, return_order=True)
        # The j-th time greedy picked domain d it took d's j-th most important scene.
        taken = np.zeros(len(names), dtype=np.int64)
        order = np.empty(budget, dtype=np.int64)
        for k, d in enumerate(greedy_order):
            order[k] = ranked[d][taken[d]]
            taken[d] += 1
        predicted = float(sum(f.predict(c) for f, c in zip(fits, counts)))
        allocation = {str(n): int(c) for n, c in zip(names, counts)}
        notes = [f"{n}: {w}" for n, f in self.fits_.items() for w in f.warnings]
        explanation = (
            f"MOSAIC: {len(names)} domains, pilots at {sorted({s for p in self.pilots_.values() for s in p['sizes']})} "
            f"scenes x {len(self.seeds)} seed(s), base score {self.base_score_:.2f}. Greedy marginal-gain allocation: "
            + ", ".join(f"{n}={c}" for n, c in allocation.items() if c)
            + f"; predicted gain +{predicted:.2f}. Within domains: {ranked_by}."
            + (" Fit notes: " + "; ".join(notes) + "." if notes else "")
            + (f" {len(self.failures_)} pilot run(s) failed and were left out: " + "; ".join(self.failures_[:5]) if self.failures_ else "")
        )
        return make_result(
            self.name, pool, order, allocation=allocation, explanation=explanation, predicted_gain=predicted,
            config={"ranking": ranking or self.ranking, "bracket_budgets": self.bracket_budgets, "pilot_sizes": self.pilot_sizes, "pilot_fractions": self.pilot_fractions, "seeds": self.seeds,
                    "on_pilot_failure": self.on_pilot_failure, "flat_tol": self.fitter.flat_tol, "min_r2": self.fitter.min_r2},
            diagnostics={"base_score": self.base_score_, "pilots": self.pilots_, "failed_pilots": self.failures_,
                         "fits": {n: f.to_dict() for n, f in self.fits_.items()}},
        )
