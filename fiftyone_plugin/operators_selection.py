"""Budgeted selection in FiftyOne: scaling laws, MOSAIC allocation, AutoScale mixtures, active learning.

One Python implementation per action, behind the operators, the CLI (``autoscale select ...``) and
notebooks:

* :func:`fit_scaling_laws` — MOSAIC pilot runs + per-domain ΔU(n) fits, recorded as run
  ``scaling_<name>`` (no samples touched).
* :func:`allocate_budget` — MOSAIC selection (reusing a ``scaling_<fits>`` record or piloting anew).
* :func:`optimize_mixture` — AutoScale cluster-GA over a (synthetic) pool.
* :func:`select_active` — value top-m (Q or an S/R/U subset) and the random / coreset /
  uncertainty baselines.

Each selection is stored three ways, written only after everything is computed:
tag ``sel:<name>`` on the chosen samples, a saved view ``<name>`` (the chosen samples in rank
order), and a run record ``sel_<name>`` (method, config, allocation, predicted gain, ranked ids).
A name already used by any of the three is a clear error (pass ``overwrite=True`` to replace).

Closed-loop methods (MOSAIC, AutoScale) train planners: on a *base* set (default: real
``split="train"`` scenes outside the pool, at most ``base_limit``) plus candidates, scored on a
*val* set (default: real ``split="val"`` scenes, at most ``val_limit``). Per-scene signals the
dataset does not provide (embeddings, importance = 1 − EPDMS of the current planner,
MC-dropout uncertainty, value components) come from a planner trained on the base set
(:class:`autoscale_core.selection.experiment.ClosedLoopSetup`).
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types
from fiftyone import ViewField as F

from autoscale_core.selection import (
    ClusterMixtureOptimizer,
    CoresetSelector,
    MosaicSelector,
    Pool,
    RandomSelector,
    ScalingFit,
    SelectionResult,
    UncertaintySelector,
    ValueTopSelector,
    get_executor,
)
from autoscale_core.selection.experiment import ClosedLoopSetup

from . import scenes
from .runs import get_run, record_run

Progress = Callable[[float, str], None]
TAG_PREFIX = "sel:"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ACTIVE_METHODS = ("value_topm", "random", "coreset", "uncertainty")
EXECUTORS = ("serial", "process", "ray")


class SelectionError(ValueError):
    """Bad selection input (name, budget, fields); nothing was written."""


# ------------------------------------------------------------------------------ names and storage
def _root(view) -> fo.Dataset:
    return view if isinstance(view, fo.Dataset) else view._root_dataset


def run_key(name: str) -> str:
    return "sel_" + name.replace("-", "_")


def check_selection_name(dataset: fo.Dataset, name: str, *, overwrite: bool = False) -> None:
    """Raise SelectionError if ``name`` is malformed or already used (tag, saved view or run)."""
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise SelectionError(f"selection name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit")
    if overwrite:
        return
    used = []
    if TAG_PREFIX + name in dataset.distinct("tags"):
        used.append(f"tag {TAG_PREFIX + name!r}")
    if dataset.has_saved_view(name):
        used.append(f"saved view {name!r}")
    if dataset.has_run(run_key(name)):
        used.append(f"run {run_key(name)!r}")
    if used:
        raise SelectionError(f"a selection named {name!r} already exists on dataset {dataset.name!r} "
                             f"({', '.join(used)}); choose another name or delete it first")


def delete_selection(dataset: fo.Dataset, name: str) -> None:
    """Remove a selection's tag, saved view and run record (whatever of them exists)."""
    tag = TAG_PREFIX + name
    tagged = dataset.match_tags(tag)
    if len(tagged):
        tagged.untag_samples(tag)
    if dataset.has_saved_view(name):
        dataset.delete_saved_view(name)
    if dataset.has_run(run_key(name)):
        dataset.delete_run(run_key(name))


def store_selection(view, result: SelectionResult, name: str, *, config: dict, overwrite: bool = False) -> dict:
    """Write a computed selection: tag, saved view (rank order) and run record. Returns a summary."""
    from .safe_write import dataset_lock_name, exclusive

    dataset = _root(view)
    # Check-then-write under the dataset's cross-process write lock: of two concurrent
    # selections with the same name one gets the "already exists" error (no silent overwrite),
    # and concurrent save_view calls cannot drop each other's saved view.
    with exclusive(dataset_lock_name(dataset)):
        dataset.reload()
        return _store_selection_locked(view, dataset, result, name, config=config, overwrite=overwrite)


def _store_selection_locked(view, dataset, result: SelectionResult, name: str, *, config: dict, overwrite: bool) -> dict:
    check_selection_name(dataset, name, overwrite=overwrite)
    scene_ids = [str(s) for s in result.scene_ids]
    id_of = dict(zip(view.values("scene_id"), view.values("id")))
    missing = [s for s in scene_ids if s not in id_of]
    if missing:  # a bug upstream, never a partial write
        raise SelectionError(f"{len(missing)} selected scenes are not in the view, e.g. {missing[:3]}")
    sample_ids = [id_of[s] for s in scene_ids]
    if overwrite:
        delete_selection(dataset, name)
    tag = TAG_PREFIX + name
    payload = result.to_dict()
    method, run_config = f"selection_{result.method}", {**config, **payload["config"]}
    # The run is registered as "running" first, so a step killed mid-write leaves a visible
    # record (and the name stays taken until deleted or overwritten) rather than silent debris.
    record_run(dataset, run_key(name), method, run_config, None, status="running")
    try:
        dataset.select(sample_ids).tag_samples(tag)
        dataset.save_view(name, dataset.select(sample_ids, ordered=True),
                          description=f"{result.method} selection of {len(sample_ids)} scenes ({tag})")
    except BaseException as exc:
        tagged = dataset.match_tags(tag)
        if len(tagged):
            tagged.untag_samples(tag)
        if dataset.has_saved_view(name):
            dataset.delete_saved_view(name)
        record_run(dataset, run_key(name), method, run_config, {"error": repr(exc)}, status="failed")
        raise
    summary = {
        "name": name, "method": result.method, "budget": result.budget, "tag": tag, "saved_view": name,
        "run_key": run_key(name), "allocation": result.allocation, "predicted_gain": result.predicted_gain,
        "explanation": result.explanation,
    }
    # (no "run_key" inside the results: FiftyOne's init_run_results takes run_key as its own argument)
    results = {k: v for k, v in summary.items() if k != "run_key"}
    record_run(dataset, run_key(name), method, run_config,
               {**results, "scene_ids": scene_ids, "diagnostics": payload["diagnostics"]})
    return summary


# ------------------------------------------------------------------------------ pools and oracles
def _field_values(view, field: str, what: str) -> list:
    if not view.has_field(field):
        raise SelectionError(f"{what} field {field!r} does not exist on dataset {_root(view).name!r}")
    values = view.values(field)
    if any(v is None for v in values):
        raise SelectionError(f"{what} field {field!r} is missing on {sum(v is None for v in values)} sample(s) of the view")
    return values


def pool_from_view(view, *, domain_field: str | None = None, embedding_field: str | None = None,
                   importance_field: str | None = None, uncertainty_field: str | None = None,
                   value_fields: dict[str, str] | None = None) -> Pool:
    """A :class:`Pool` from sample fields of ``view`` (in the view's order).

    ``importance_field`` is a per-scene EPDMS field in [0, 1] (e.g. ``eval_<run>_epdms``);
    importance = 1 − EPDMS. ``value_fields`` maps components ``S``/``R``/``U``/``Q`` to fields.
    """
    if len(view) == 0:
        raise SelectionError(f"the candidate view of dataset {_root(view).name!r} is empty")
    ids = view.values("scene_id")
    emb = None
    if embedding_field:
        emb = np.asarray(_field_values(view, embedding_field, "embedding"), dtype=np.float32)
        if emb.ndim != 2:
            raise SelectionError(f"embedding field {embedding_field!r} must hold one vector per sample")
    domains = np.asarray(_field_values(view, domain_field, "domain"), dtype=object).astype(str) if domain_field else None
    scores = {}
    if importance_field:
        epdms = np.asarray(_field_values(view, importance_field, "importance (EPDMS)"), dtype=np.float64)
        scores["importance"] = 1.0 - epdms
    if uncertainty_field:
        scores["uncertainty"] = np.asarray(_field_values(view, uncertainty_field, "uncertainty"), dtype=np.float64)
    for component, field in (value_fields or {}).items():
        scores[f"value_{component}"] = np.asarray(_field_values(view, field, f"value {component}"), dtype=np.float64)
    try:
        return Pool(ids, embeddings=emb, domains=domains, scores=scores)
    except ValueError as exc:
        raise SelectionError(str(exc)) from exc


def _real(view):
    return view.match(F("source") != "synthetic")


def resolve_views(pool_view, base_view=None, val_view=None, *, base_limit: int = 500, val_limit: int = 200):
    """(candidates, base, val) views for closed-loop selection.

    Defaults: base = real ``split="train"`` scenes outside the candidates (at most ``base_limit``,
    by scene_id); if the candidates cover all of them, the first ``min(base_limit, n // 5)`` real
    train candidates (by scene_id) become the base set and leave the candidates. val = real
    ``split="val"`` scenes (at most ``val_limit``). Base and val scenes are removed from the
    candidates (so a whole-dataset view works as the candidate view).
    """
    dataset = _root(pool_view)
    pool_ids = pool_view.values("scene_id")
    if base_view is None:
        base_view = _real(dataset.match(F("split") == "train")).match(~F("scene_id").is_in(pool_ids))
        base_view = base_view.sort_by("scene_id").limit(base_limit)
        if len(base_view) == 0:
            carve = _real(pool_view.match(F("split") == "train")).sort_by("scene_id")
            carve = carve.limit(min(base_limit, len(pool_view) // 5))
            base_ids = carve.values("scene_id")
            base_view = dataset.match(F("scene_id").is_in(base_ids))
            pool_view = pool_view.match(~F("scene_id").is_in(base_ids))
    if val_view is None:
        val_view = _real(dataset.match(F("split") == "val")).sort_by("scene_id").limit(val_limit)
    base_ids, val_ids = base_view.values("scene_id"), val_view.values("scene_id")
    if set(base_ids) & set(val_ids):
        raise SelectionError("the base and val sets must not overlap")
    # Scenes trained on or scored on are never candidates.
    pool_view = pool_view.match(~F("scene_id").is_in(base_ids + val_ids))
    for what, v in (("base", base_view), ("val", val_view), ("candidate", pool_view)):
        if len(v) == 0:
            raise SelectionError(f"the {what} set of dataset {dataset.name!r} is empty: closed-loop selection "
                                 "needs real split='train' scenes (base), split='val' scenes and other candidates")
    return pool_view, base_view, val_view


def _setup(pool_view, base_view, val_view, *, steps: int, seed: int, progress: Progress) -> ClosedLoopSetup:
    progress(0.02, f"loading {len(pool_view)} candidates, {len(base_view)} base and {len(val_view)} val scenes")
    pool_b, base_b, val_b = (scenes.load_scenes(v) for v in (pool_view, base_view, val_view))
    # test = val: the operators never report test numbers; benchmarks keep a separate test split.
    return ClosedLoopSetup(base_b, pool_b, val_b, val_b, steps=steps, seed=seed)


def _merge_signals(pool: Pool, setup: ClosedLoopSetup, want: Sequence[str]) -> Pool:
    """Fill pool signals the dataset did not provide from the current planner (trained on base)."""
    missing = [w for w in want if (w == "embeddings" and pool.embeddings is None) or (w != "embeddings" and w not in pool.scores)]
    if not missing:
        return pool
    if not setup.signals:
        setup.prepare()
    scores = dict(pool.scores)
    for w in missing:
        if w != "embeddings":
            scores[w] = setup.signals[w]
    emb = pool.embeddings if pool.embeddings is not None else setup.signals["embeddings"]
    return Pool(pool.scene_ids, embeddings=emb, domains=pool.domains, scores=scores)


def _validate_common(budget, steps, seed):
    for what, value, low in (("budget", budget, 1), ("steps", steps, 1), ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
            raise SelectionError(f"{what} must be an integer >= {low}, got {value!r}")


def _parse_fractions(fractions) -> list[float]:
    if isinstance(fractions, str):
        try:
            fractions = [float(x) for x in fractions.split(",") if x.strip()]
        except ValueError as exc:
            raise SelectionError(f"pilot fractions {fractions!r}: expected comma-separated numbers") from exc
    fractions = [float(f) for f in fractions]
    if not fractions or any(not np.isfinite(f) or f <= 0 for f in fractions):
        raise SelectionError(f"pilot fractions must be positive numbers, got {fractions}")
    return fractions


def _noop(fraction: float, message: str) -> None:
    pass


# ------------------------------------------------------------------------------ actions
def fit_scaling_laws(view, name: str, budget: int, *, domain_field: str = "topology",
                     importance_field: str | None = None, base_view=None, val_view=None,
                     pilot_fractions: Sequence[float] | str = (0.25, 0.75, 2.0), seeds: int = 1,
                     steps: int = 200, base_limit: int = 500, val_limit: int = 200, seed: int = 0,
                     executor: str | None = None, overwrite: bool = False,
                     progress: Progress | None = None) -> dict:
    """MOSAIC pilots + per-domain fits over the candidates in ``view``; recorded as run ``scaling_<name>``."""
    progress = progress or _noop
    dataset = _root(view)
    _validate_common(budget, steps, seed)
    key = "scaling_" + name.replace("-", "_")
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise SelectionError(f"scaling-law name {name!r}: use letters, digits, '-' or '_'")
    if dataset.has_run(key) and not overwrite:
        raise SelectionError(f"scaling laws {name!r} already exist on dataset {dataset.name!r} (run {key!r})")
    fractions = _parse_fractions(pilot_fractions)
    view, base_view, val_view = resolve_views(view, base_view, val_view, base_limit=base_limit, val_limit=val_limit)
    pool = pool_from_view(view, domain_field=domain_field, importance_field=importance_field)
    setup = _setup(view, base_view, val_view, steps=steps, seed=seed, progress=progress)
    pool = _merge_signals(pool, setup, ["importance"])
    progress(0.2, "pilot runs")
    mosaic = MosaicSelector(setup.oracle("val"), executor=get_executor(executor), pilot_fractions=fractions,
                            seeds=tuple(range(seed, seed + int(seeds))))
    try:
        mosaic.fit(pool, budget)
    except ValueError as exc:
        raise SelectionError(str(exc)) from exc
    results = {"base_score": mosaic.base_score_, "fits": {n: f.to_dict() for n, f in mosaic.fits_.items()},
               "pilots": mosaic.pilots_, "domain_field": domain_field, "pool_size": len(pool)}
    config = {"budget": budget, "domain_field": domain_field, "importance_field": importance_field,
              "pilot_fractions": fractions, "seeds": int(seeds), "steps": steps, "seed": seed}
    record_run(dataset, key, "mosaic_scaling_laws", config, results)
    progress(1.0, f"fitted {len(mosaic.fits_)} scaling laws")
    return {"run_key": key, **results}


def allocate_budget(view, name: str, budget: int, *, fits_from: str | None = None, domain_field: str = "topology",
                    importance_field: str | None = None, base_view=None, val_view=None,
                    pilot_fractions: Sequence[float] | str = (0.25, 0.75, 2.0), seeds: int = 1, steps: int = 200,
                    base_limit: int = 500, val_limit: int = 200, seed: int = 0, executor: str | None = None,
                    overwrite: bool = False, progress: Progress | None = None) -> dict:
    """MOSAIC selection of ``budget`` candidates of ``view``; stored as tag/saved view/run ``name``.

    ``fits_from``: the name of an earlier :func:`fit_scaling_laws` run to reuse (no pilots).
    """
    progress = progress or _noop
    dataset = _root(view)
    _validate_common(budget, steps, seed)
    check_selection_name(dataset, name, overwrite=overwrite)
    view, base_view, val_view = resolve_views(view, base_view, val_view, base_limit=base_limit, val_limit=val_limit)
    if budget > len(view):
        raise SelectionError(f"budget {budget} is larger than the candidate view ({len(view)} scenes)")
    pool = pool_from_view(view, domain_field=domain_field, importance_field=importance_field)
    config = {"budget": budget, "fits_from": fits_from, "domain_field": domain_field,
              "importance_field": importance_field, "steps": steps, "seed": seed}
    if fits_from:
        record = get_run(dataset, "scaling_" + fits_from.replace("-", "_"))
        if record["results"] is None or record["results"].get("domain_field") != domain_field:
            raise SelectionError(f"scaling laws {fits_from!r} were fitted on domain field "
                                 f"{(record['results'] or {}).get('domain_field')!r}, not {domain_field!r}")
        if "importance" not in pool.scores:
            pool = _merge_signals(pool, _setup(view, base_view, val_view, steps=steps, seed=seed, progress=progress),
                                  ["importance"])
        mosaic = MosaicSelector(oracle=None).use_fits(
            pool, {n: ScalingFit.from_dict(f) for n, f in record["results"]["fits"].items()},
            base_score=record["results"].get("base_score"), pilots=record["results"].get("pilots"))
        try:
            result = mosaic.select(pool, budget, refit=False)
        except ValueError as exc:
            raise SelectionError(str(exc)) from exc
    else:
        fractions = _parse_fractions(pilot_fractions)
        setup = _setup(view, base_view, val_view, steps=steps, seed=seed, progress=progress)
        pool = _merge_signals(pool, setup, ["importance"])
        progress(0.2, "pilot runs")
        mosaic = MosaicSelector(setup.oracle("val"), executor=get_executor(executor), pilot_fractions=fractions,
                                seeds=tuple(range(seed, seed + int(seeds))))
        try:
            result = mosaic.select(pool, budget)
        except ValueError as exc:
            raise SelectionError(str(exc)) from exc
        config.update({"pilot_fractions": fractions, "seeds": int(seeds)})
    progress(0.95, "writing the selection")
    summary = store_selection(view, result, name, config=config, overwrite=overwrite)
    progress(1.0, f"selected {budget} scenes")
    return summary


def optimize_mixture(view, name: str, budget: int, *, rounds: int = 4, probes: int = 2, num_clusters: int = 6,
                     cluster_field: str | None = None, embedding_field: str | None = None,
                     failure_quantile: float = 0.2, base_view=None, val_view=None, steps: int = 200,
                     base_limit: int = 500, val_limit: int = 200, seed: int = 0, executor: str | None = None,
                     overwrite: bool = False, progress: Progress | None = None) -> dict:
    """AutoScale cluster-GA over the (synthetic) candidates of ``view``; stored as selection ``name``.

    Failure cases are the base scenes on which the current planner's EPDMS is in the lowest
    ``failure_quantile``.
    """
    progress = progress or _noop
    dataset = _root(view)
    _validate_common(budget, steps, seed)
    check_selection_name(dataset, name, overwrite=overwrite)
    if not 0 < failure_quantile < 1:
        raise SelectionError(f"failure_quantile must be in (0, 1), got {failure_quantile}")
    view, base_view, val_view = resolve_views(view, base_view, val_view, base_limit=base_limit, val_limit=val_limit)
    if budget > len(view):
        raise SelectionError(f"budget {budget} is larger than the candidate view ({len(view)} scenes)")
    pool = pool_from_view(view, domain_field=cluster_field, embedding_field=embedding_field)
    setup = _setup(view, base_view, val_view, steps=steps, seed=seed, progress=progress)
    setup.prepare()
    pool = _merge_signals(pool, setup, ["embeddings"])
    from autoscale_core.planning.evaluate import evaluate_planner

    epdms = np.asarray(evaluate_planner(setup.current_planner, setup.base).scores["epdms"])
    failing = np.flatnonzero(epdms <= np.quantile(epdms, failure_quantile))
    failures = None
    if embedding_field is None:  # failures must live in the same embedding space as the pool
        failures = np.asarray(setup.current_planner.embed(setup.base.subset(failing)), dtype=np.float32)
    progress(0.2, f"{rounds} rounds of retrieve -> train -> evaluate -> update")
    optimizer = ClusterMixtureOptimizer(setup.oracle("val"), num_clusters=num_clusters, rounds=rounds,
                                        num_probes=probes, seed=seed, executor=get_executor(executor))
    try:
        result = optimizer.select(pool, budget, failures=failures)
    except ValueError as exc:
        raise SelectionError(str(exc)) from exc
    config = {"budget": budget, "rounds": rounds, "probes": probes, "num_clusters": num_clusters,
              "cluster_field": cluster_field, "embedding_field": embedding_field,
              "failure_quantile": failure_quantile, "failures": int(len(failing)), "steps": steps, "seed": seed}
    progress(0.95, "writing the selection")
    summary = store_selection(view, result, name, config=config, overwrite=overwrite)
    summary["history"] = [{"round": h["round"], "score": h["score"], "weights": h["weights"]} for h in result.diagnostics["history"]]
    progress(1.0, f"selected {budget} scenes")
    return summary


def select_active(view, name: str, budget: int, *, method: str = "value_topm", components: Sequence[str] = ("S", "R", "U"),
                  embedding_field: str | None = None, uncertainty_field: str | None = None,
                  value_fields: dict[str, str] | None = None, base_view=None, val_view=None, steps: int = 200,
                  base_limit: int = 500, val_limit: int = 200, seed: int = 0, overwrite: bool = False,
                  progress: Progress | None = None) -> dict:
    """Value top-m (or a baseline: random, coreset, uncertainty); stored as selection ``name``.

    ``value_fields`` defaults to the dataset's ``value_s``/``value_r``/``value_u``/``value_q`` fields
    (written by ``compute_value_scores``) where they exist. Signals not given as fields are computed from a planner trained on the base set.
    """
    progress = progress or _noop
    dataset = _root(view)
    _validate_common(budget, steps, seed)
    if method not in ACTIVE_METHODS:
        raise SelectionError(f"method {method!r} is not one of {ACTIVE_METHODS}")
    check_selection_name(dataset, name, overwrite=overwrite)
    if budget > len(view):
        raise SelectionError(f"budget {budget} is larger than the candidate view ({len(view)} scenes)")
    components = tuple(components)
    if value_fields is None:  # the representation area's fields, when present: value_s/r/u/q
        value_fields = {}
        for c in ("S", "R", "U", "Q"):
            for field in (f"value_{c.lower()}", f"value_{c}"):
                if view.has_field(field):
                    value_fields[c] = field
                    break
    pool = pool_from_view(view, embedding_field=embedding_field, uncertainty_field=uncertainty_field,
                          value_fields=value_fields)
    want = {"random": [], "coreset": ["embeddings"], "uncertainty": ["uncertainty"],
            "value_topm": [f"value_{c}" for c in components]}[method]
    if method == "value_topm" and set(components) == {"S", "R", "U"} and "value_Q" in pool.scores:
        want = []
    want = [w for w in want if (w == "embeddings" and pool.embeddings is None) or (w != "embeddings" and w not in pool.scores)]
    if want:  # signals the dataset lacks come from a planner trained on the base set
        view, base_view, val_view = resolve_views(view, base_view, val_view, base_limit=base_limit, val_limit=val_limit)
        if budget > len(view):
            raise SelectionError(f"budget {budget} is larger than the candidate view ({len(view)} scenes)")
        pool = pool_from_view(view, embedding_field=embedding_field, uncertainty_field=uncertainty_field,
                              value_fields=value_fields)
        setup = _setup(view, base_view, val_view, steps=steps, seed=seed, progress=progress)
        progress(0.1, "training the current planner for the missing signals")
        pool = _merge_signals(pool, setup, want)
    selector = {"random": lambda: RandomSelector(seed=seed), "coreset": CoresetSelector,
                "uncertainty": UncertaintySelector, "value_topm": lambda: ValueTopSelector(components)}[method]()
    try:
        result = selector.select(pool, budget)
    except ValueError as exc:
        raise SelectionError(str(exc)) from exc
    config = {"budget": budget, "method": method, "components": list(components), "embedding_field": embedding_field,
              "uncertainty_field": uncertainty_field, "value_fields": value_fields or {}, "seed": seed}
    summary = store_selection(view, result, name, config=config, overwrite=overwrite)
    progress(1.0, f"selected {budget} scenes")
    return summary


# ------------------------------------------------------------------------------ operators
def _common_inputs(inputs, ctx, *, closed_loop: bool) -> None:
    ctx.target_view()  # opts the form into the candidate-view choice (dataset / view / selection)
    inputs.str("name", required=True, label="Selection name", description="tag sel:<name>, saved view <name>, run sel_<name>")
    inputs.int("budget", required=True, min=1, label="Budget (scenes)")
    if closed_loop:
        inputs.int("steps", default=200, min=1, label="Training steps per closed-loop run")
        inputs.enum("executor", list(EXECUTORS), default="process", label="Executor for the training runs")
    inputs.int("seed", default=0, min=0, label="Seed")
    inputs.bool("overwrite", default=False, label="Replace an existing selection of this name")


def _form_error(inputs, ctx, check: Callable[[dict], None]) -> None:
    try:
        check(dict(ctx.params))
    except (SelectionError, ValueError) as exc:
        inputs.view("error", types.Error(label="Invalid input", description=str(exc)))


def _check_name_budget(ctx, params: dict) -> None:
    name, budget = params.get("name"), params.get("budget")
    if name:
        check_selection_name(ctx.dataset, name, overwrite=bool(params.get("overwrite")))
    if budget is not None and budget > len(ctx.target_view()):
        raise SelectionError(f"budget {budget} is larger than the candidate view ({len(ctx.target_view())} scenes)")


def _progress_of(ctx) -> Progress:
    return lambda fraction, label: ctx.set_progress(progress=fraction, label=label)


def _finish(ctx, summary: dict, message: str) -> dict:
    if not ctx.delegated:
        ctx.ops.reload_dataset()
        ctx.ops.notify(message, variant="success")
    return {k: summary[k] for k in ("name", "budget", "run_key", "explanation") if k in summary}


def _selection_output(ctx):
    outputs = types.Object()
    outputs.str("name", label="Selection")
    outputs.int("budget", label="Scenes selected")
    outputs.str("run_key", label="Run")
    outputs.str("explanation", label="Why these scenes")
    return types.Property(outputs)


_DELEGATED = dict(allow_immediate_execution=True, allow_delegated_execution=True, default_choice_to_delegated=True, dynamic=True)


class FitScalingLaws(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="fit_scaling_laws", label="AutoScale: fit scaling laws (MOSAIC pilots)",
                                  description="Pilot-train per domain and fit dU(n) = a(1 - exp(-n/tau))", **_DELEGATED)

    def resolve_input(self, ctx):
        inputs = types.Object()
        ctx.target_view()
        inputs.str("name", required=True, label="Name", description="stored as run scaling_<name>")
        inputs.int("budget", required=True, min=1, label="Budget the pilots are sized for")
        inputs.str("domain_field", default="topology", label="Domain field (metadata or cluster_*)")
        inputs.str("importance_field", required=False, label="Per-scene EPDMS field (optional, e.g. eval_<run>_epdms)")
        inputs.str("pilot_fractions", default="0.25,0.75,2", label="Pilot sizes (multiples of budget / #domains)")
        inputs.int("seeds", default=1, min=1, label="Seeds per pilot")
        inputs.int("steps", default=200, min=1, label="Training steps per pilot")
        inputs.enum("executor", list(EXECUTORS), default="process", label="Executor")
        inputs.int("seed", default=0, min=0, label="Seed")
        _form_error(inputs, ctx, lambda p: _parse_fractions(p.get("pilot_fractions", "0.25,0.75,2")))
        return types.Property(inputs, view=types.View(label="Fit scaling laws"))

    def execute(self, ctx):
        p = ctx.params
        result = fit_scaling_laws(ctx.target_view(), p["name"], p["budget"], domain_field=p.get("domain_field") or "topology",
                                  importance_field=p.get("importance_field") or None,
                                  pilot_fractions=p.get("pilot_fractions", "0.25,0.75,2"), seeds=p.get("seeds", 1),
                                  steps=p.get("steps", 200), executor=p.get("executor"), seed=p.get("seed", 0),
                                  progress=_progress_of(ctx))
        if not ctx.delegated:
            ctx.ops.notify(f"Fitted {len(result['fits'])} scaling laws ({result['run_key']})", variant="success")
        return {"run_key": result["run_key"], "domains": len(result["fits"])}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("run_key", label="Run")
        outputs.int("domains", label="Domains fitted")
        return types.Property(outputs)


class AllocateBudget(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="allocate_budget", label="AutoScale: allocate a budget (MOSAIC)",
                                  description="Greedy marginal-gain allocation over domains from scaling laws", **_DELEGATED)

    def resolve_input(self, ctx):
        inputs = types.Object()
        _common_inputs(inputs, ctx, closed_loop=True)
        inputs.str("fits_from", required=False, label="Reuse scaling laws (name of a fit_scaling_laws run)")
        inputs.str("domain_field", default="topology", label="Domain field")
        inputs.str("importance_field", required=False, label="Per-scene EPDMS field (optional)")
        inputs.str("pilot_fractions", default="0.25,0.75,2", label="Pilot sizes (when not reusing fits)")
        _form_error(inputs, ctx, lambda p: _check_name_budget(ctx, p))
        return types.Property(inputs, view=types.View(label="Allocate budget (MOSAIC)"))

    def execute(self, ctx):
        p = ctx.params
        summary = allocate_budget(ctx.target_view(), p["name"], p["budget"], fits_from=p.get("fits_from") or None,
                                  domain_field=p.get("domain_field") or "topology",
                                  importance_field=p.get("importance_field") or None,
                                  pilot_fractions=p.get("pilot_fractions", "0.25,0.75,2"), steps=p.get("steps", 200),
                                  executor=p.get("executor"), seed=p.get("seed", 0), overwrite=bool(p.get("overwrite")),
                                  progress=_progress_of(ctx))
        return _finish(ctx, summary, f"Selected {summary['budget']} scenes as {summary['tag']}")

    def resolve_output(self, ctx):
        return _selection_output(ctx)


class OptimizeMixture(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="optimize_mixture", label="AutoScale: optimize the synthetic mixture",
                                  description="Cluster-GA on closed-loop EPDMS with cluster-guided faiss retrieval", **_DELEGATED)

    def resolve_input(self, ctx):
        inputs = types.Object()
        _common_inputs(inputs, ctx, closed_loop=True)
        inputs.int("rounds", default=4, min=1, label="Rounds")
        inputs.int("probes", default=2, min=0, label="Perturbed mixtures per round")
        inputs.int("num_clusters", default=6, min=1, label="Clusters (when no cluster field)")
        inputs.str("cluster_field", required=False, label="Cluster field (optional, e.g. cluster_*)")
        _form_error(inputs, ctx, lambda p: _check_name_budget(ctx, p))
        return types.Property(inputs, view=types.View(label="Optimize mixture (AutoScale)"))

    def execute(self, ctx):
        p = ctx.params
        summary = optimize_mixture(ctx.target_view(), p["name"], p["budget"], rounds=p.get("rounds", 4),
                                   probes=p.get("probes", 2), num_clusters=p.get("num_clusters", 6),
                                   cluster_field=p.get("cluster_field") or None, steps=p.get("steps", 200),
                                   executor=p.get("executor"), seed=p.get("seed", 0), overwrite=bool(p.get("overwrite")),
                                   progress=_progress_of(ctx))
        return _finish(ctx, summary, f"Selected {summary['budget']} synthetic scenes as {summary['tag']}")

    def resolve_output(self, ctx):
        return _selection_output(ctx)


class SelectActive(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(name="select_active", label="AutoScale: select by value (active learning)",
                                  description="Top-m by value Q, an S/R/U subset, or a baseline", **_DELEGATED)

    def resolve_input(self, ctx):
        inputs = types.Object()
        _common_inputs(inputs, ctx, closed_loop=False)
        inputs.enum("method", list(ACTIVE_METHODS), default="value_topm", label="Method")
        inputs.list("components", types.String(), default=["S", "R", "U"], label="Value components (S, R, U)")
        inputs.str("embedding_field", required=False, label="Embedding field (coreset; optional)")
        inputs.str("uncertainty_field", required=False, label="Uncertainty field (optional)")
        inputs.int("steps", default=200, min=1, label="Training steps (when signals must be computed)")
        _form_error(inputs, ctx, lambda p: _check_name_budget(ctx, p))
        return types.Property(inputs, view=types.View(label="Select by value"))

    def execute(self, ctx):
        p = ctx.params
        summary = select_active(ctx.target_view(), p["name"], p["budget"], method=p.get("method", "value_topm"),
                                components=p.get("components") or ("S", "R", "U"),
                                embedding_field=p.get("embedding_field") or None,
                                uncertainty_field=p.get("uncertainty_field") or None, steps=p.get("steps", 200),
                                seed=p.get("seed", 0), overwrite=bool(p.get("overwrite")), progress=_progress_of(ctx))
        return _finish(ctx, summary, f"Selected {summary['budget']} scenes as {summary['tag']}")

    def resolve_output(self, ctx):
        return _selection_output(ctx)


OPERATORS = [FitScalingLaws, AllocateBudget, OptimizeMixture, SelectActive]
