"""Budgeted selection in FiftyOne: scaling laws, MOSAIC allocation, AutoScale mixtures, active learning.

One Python implementation per action, behind the App forms (:mod:`fiftyone_plugin.operators.selection`),
the CLI (``autoscale select ...``) and notebooks:

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
from typing import Sequence

import fiftyone as fo
import numpy as np

from autoscale_core.selection import (
    ClusterMixtureOptimizer,
    CoresetSelector,
    HardExampleSelector,
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
from .keys import Progress, real_scenes, root_dataset, scaling_run_key, selection_run_key
from .runs import get_run, record_run

TAG_PREFIX = "sel:"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ACTIVE_METHODS = ("value_topm", "hard_mining", "random", "coreset", "uncertainty")


class SelectionError(ValueError):
    """Bad selection input (name, budget, fields); nothing was written."""


# ------------------------------------------------------------------------------ names and storage
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
    if dataset.has_run(selection_run_key(name)):
        used.append(f"run {selection_run_key(name)!r}")
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
    if dataset.has_run(selection_run_key(name)):
        dataset.delete_run(selection_run_key(name))


def store_selection(view, result: SelectionResult, name: str, *, config: dict, overwrite: bool = False) -> dict:
    """Write a computed selection: tag, saved view (rank order) and run record. Returns a summary."""
    from .safe_write import dataset_lock_name, exclusive

    dataset = root_dataset(view)
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
    record_run(dataset, selection_run_key(name), method, run_config, None, status="running")
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
        record_run(dataset, selection_run_key(name), method, run_config, {"error": repr(exc)}, status="failed")
        raise
    summary = {
        "name": name, "method": result.method, "budget": result.budget, "tag": tag, "saved_view": name,
        "run_key": selection_run_key(name), "allocation": result.allocation, "predicted_gain": result.predicted_gain,
        "explanation": result.explanation,
    }
    # (no "run_key" inside the results: FiftyOne's init_run_results takes run_key as its own argument)
    results = {k: v for k, v in summary.items() if k != "run_key"}
    record_run(dataset, selection_run_key(name), method, run_config,
               {**results, "scene_ids": scene_ids, "diagnostics": payload["diagnostics"]})
    return summary


# ------------------------------------------------------------------------------ pools and oracles
def _field_values(view, field: str, what: str) -> list:
    if not view.has_field(field):
        raise SelectionError(f"{what} field {field!r} does not exist on dataset {root_dataset(view).name!r}")
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
        raise SelectionError(f"the candidate view of dataset {root_dataset(view).name!r} is empty")
    ids = view.values("scene_id")
    emb = None
    if embedding_field:
        values = _field_values(view, embedding_field, "embedding")
        dims = sorted({len(v) if np.ndim(v) == 1 else -1 for v in values})
        if len(dims) != 1 or dims[0] < 1:
            raise SelectionError(f"embedding field {embedding_field!r} must hold one vector of one dimension per sample; "
                                 f"found dimensions {dims}")
        emb = np.asarray(values, dtype=np.float32)
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
    return _checked(Pool, ids, embeddings=emb, domains=domains, scores=scores)


def resolve_views(pool_view, base_view=None, val_view=None, *, base_limit: int = 500, val_limit: int = 200):
    """(candidates, base, val) views for closed-loop selection.

    Defaults: base = real ``split="train"`` scenes outside the candidates (at most ``base_limit``,
    by scene_id); if the candidates cover all of them, the first ``min(base_limit, n // 5)`` real
    train candidates (by scene_id) become the base set and leave the candidates. val = real
    ``split="val"`` scenes (at most ``val_limit``). Base and val scenes are removed from the
    candidates (so a whole-dataset view works as the candidate view).
    """
    dataset = root_dataset(pool_view)
    pool_ids = pool_view.values("scene_id")
    if base_view is None:
        # Set difference in Python: a "not in <every candidate id>" stage would exceed MongoDB's
        # 16 MB command limit for a whole-dataset candidate view of 1e6 scenes.
        in_pool = set(pool_ids)
        train_ids = real_scenes(dataset, "train").values("scene_id")
        base_ids = sorted(s for s in train_ids if s is not None and s not in in_pool)[:base_limit]
        base_view = dataset.select_by("scene_id", base_ids).sort_by("scene_id")
        if not base_ids:
            carve = real_scenes(pool_view, "train").sort_by("scene_id")
            carve = carve.limit(min(base_limit, len(pool_view) // 5))
            base_ids = carve.values("scene_id")
            base_view = dataset.select_by("scene_id", base_ids)
            pool_view = pool_view.exclude_by("scene_id", base_ids)
    if val_view is None:
        val_view = real_scenes(dataset, "val").sort_by("scene_id").limit(val_limit)
    base_ids, val_ids = base_view.values("scene_id"), val_view.values("scene_id")
    if set(base_ids) & set(val_ids):
        raise SelectionError("the base and val sets must not overlap")
    # Scenes trained on or scored on are never candidates.
    pool_view = pool_view.exclude_by("scene_id", base_ids + val_ids)
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


def _checked(call, *args, **kwargs):
    """``call(*args, **kwargs)``; a ValueError from the selection library becomes a SelectionError."""
    try:
        return call(*args, **kwargs)
    except ValueError as exc:
        raise SelectionError(str(exc)) from exc


def _piloted_mosaic(view, base_view, val_view, pool: Pool, fractions: list[float], *, seeds: int, steps: int,
                    seed: int, executor, progress: Progress) -> tuple[MosaicSelector, Pool]:
    """A MOSAIC selector whose pilots train on the base set and score on val, and the pool with the
    importance of a planner trained on the base set (unless the pool has one)."""
    setup = _setup(view, base_view, val_view, steps=steps, seed=seed, progress=progress)
    pool = _merge_signals(pool, setup, ["importance"])
    progress(0.2, "pilot runs")
    mosaic = MosaicSelector(setup.oracle("val"), executor=get_executor(executor), pilot_fractions=fractions,
                            seeds=tuple(range(seed, seed + int(seeds))))
    return mosaic, pool


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
    dataset = root_dataset(view)
    _validate_common(budget, steps, seed)
    key = scaling_run_key(name)
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        raise SelectionError(f"scaling-law name {name!r}: use letters, digits, '-' or '_'")
    if dataset.has_run(key) and not overwrite:
        raise SelectionError(f"scaling laws {name!r} already exist on dataset {dataset.name!r} (run {key!r})")
    fractions = _parse_fractions(pilot_fractions)
    view, base_view, val_view = resolve_views(view, base_view, val_view, base_limit=base_limit, val_limit=val_limit)
    pool = pool_from_view(view, domain_field=domain_field, importance_field=importance_field)
    mosaic, pool = _piloted_mosaic(view, base_view, val_view, pool, fractions, seeds=seeds, steps=steps, seed=seed,
                                   executor=executor, progress=progress)
    _checked(mosaic.fit, pool, budget)
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
    dataset = root_dataset(view)
    _validate_common(budget, steps, seed)
    check_selection_name(dataset, name, overwrite=overwrite)
    view, base_view, val_view = resolve_views(view, base_view, val_view, base_limit=base_limit, val_limit=val_limit)
    if budget > len(view):
        raise SelectionError(f"budget {budget} is larger than the candidate view ({len(view)} scenes)")
    pool = pool_from_view(view, domain_field=domain_field, importance_field=importance_field)
    config = {"budget": budget, "fits_from": fits_from, "domain_field": domain_field,
              "importance_field": importance_field, "steps": steps, "seed": seed}
    if fits_from:
        record = get_run(dataset, scaling_run_key(fits_from))
        if record["results"] is None or record["results"].get("domain_field") != domain_field:
            raise SelectionError(f"scaling laws {fits_from!r} were fitted on domain field "
                                 f"{(record['results'] or {}).get('domain_field')!r}, not {domain_field!r}")
        if "importance" not in pool.scores:
            pool = _merge_signals(pool, _setup(view, base_view, val_view, steps=steps, seed=seed, progress=progress),
                                  ["importance"])
        mosaic = MosaicSelector(oracle=None).use_fits(
            pool, {n: ScalingFit.from_dict(f) for n, f in record["results"]["fits"].items()},
            base_score=record["results"].get("base_score"), pilots=record["results"].get("pilots"))
        result = _checked(mosaic.select, pool, budget, refit=False)
    else:
        fractions = _parse_fractions(pilot_fractions)
        mosaic, pool = _piloted_mosaic(view, base_view, val_view, pool, fractions, seeds=seeds, steps=steps,
                                       seed=seed, executor=executor, progress=progress)
        result = _checked(mosaic.select, pool, budget)
        config.update({"pilot_fractions": fractions, "seeds": int(seeds)})
    progress(0.95, "writing the selection")
    summary = store_selection(view, result, name, config=config, overwrite=overwrite)
    progress(1.0, f"selected {budget} scenes")
    return summary


def optimize_mixture(view, name: str, budget: int, *, rounds: int = 4, probes: int = 2, num_clusters: int = 6,
                     cluster_field: str | None = None, embedding_field: str | None = None,
                     failure_quantile: float = 0.2, base_view=None, val_view=None, steps: int = 200,
                     base_limit: int = 500, val_limit: int = 200, seed: int = 0, executor: str | None = None,
                     eval_seeds: int = 3, overwrite: bool = False, progress: Progress | None = None) -> dict:
    """AutoScale cluster-GA over the (synthetic) candidates of ``view``; stored as selection ``name``.

    The loop: embeddings (``embedding_field``, e.g. ``emb_graph_rae``; default the current
    planner's features) → clusters (``cluster_field`` or k-means) → cluster weights by
    closed-loop feedback → per-cluster retrieval by faiss vector search near the cluster centre
    and the failure cases (the base scenes on which the current planner's EPDMS is in the lowest
    ``failure_quantile``, embedded in the same space). Each candidate mixture is scored with
    ``eval_seeds`` training seeds on the first half of the val scenes; the final mixture is
    confirmed on the second half (never on test). Bad input is rejected before any training.
    """
    progress = progress or _noop
    dataset = root_dataset(view)
    _validate_common(budget, steps, seed)
    check_selection_name(dataset, name, overwrite=overwrite)
    if not 0 < failure_quantile < 1:
        raise SelectionError(f"failure_quantile must be in (0, 1), got {failure_quantile}")
    if eval_seeds < 1:
        raise SelectionError(f"eval_seeds must be >= 1, got {eval_seeds}")
    if len(view) == 0:
        raise SelectionError(f"the synthetic pool (candidate view) of dataset {dataset.name!r} is empty: "
                             "generate synthetic scenes first (autoscale synthesize)")
    view, base_view, val_view = resolve_views(view, base_view, val_view, base_limit=base_limit, val_limit=val_limit)
    if budget > len(view):
        raise SelectionError(f"budget {budget} is larger than the candidate view ({len(view)} scenes)")
    if len(val_view) < 2:
        raise SelectionError(f"AutoScale needs at least 2 val scenes (tuning + confirmation halves), got {len(val_view)}")
    pool = pool_from_view(view, domain_field=cluster_field, embedding_field=embedding_field)
    base_embeddings = _base_embeddings(base_view, embedding_field, pool) if embedding_field else None
    val_ids = val_view.values("scene_id")
    tune_view = val_view.select_by("scene_id", val_ids[0::2])
    confirm_view = val_view.select_by("scene_id", val_ids[1::2])
    setup = _setup(view, base_view, tune_view, steps=steps, seed=seed, progress=progress)
    setup.prepare()
    pool = _merge_signals(pool, setup, ["embeddings"])
    from autoscale_core.planning.evaluate import evaluate_planner
    from autoscale_core.selection.oracle import PlannerOracle

    epdms = np.asarray(evaluate_planner(setup.current_planner, setup.base).scores["epdms"])
    failing = np.flatnonzero(epdms <= np.quantile(epdms, failure_quantile))
    # Failures must live in the pool's embedding space.
    failures = base_embeddings[failing] if embedding_field else \
        np.asarray(setup.current_planner.embed(setup.base.subset(failing)), dtype=np.float32)
    confirm = PlannerOracle(setup.base, setup.pool, scenes.load_scenes(confirm_view), planner=setup.planner,
                            steps=steps, num_threads=setup.num_threads)
    progress(0.2, f"{rounds} rounds of retrieve -> train -> evaluate -> update")
    optimizer = ClusterMixtureOptimizer(setup.oracle("val"), num_clusters=num_clusters, rounds=rounds,
                                        num_probes=probes, seed=seed, executor=get_executor(executor),
                                        eval_seeds=eval_seeds, confirm_oracle=confirm)
    result = _checked(optimizer.select, pool, budget, failures=failures)
    config = {"budget": budget, "rounds": rounds, "probes": probes, "num_clusters": num_clusters,
              "cluster_field": cluster_field, "embedding_field": embedding_field,
              "failure_quantile": failure_quantile, "failures": int(len(failing)), "steps": steps, "seed": seed,
              "eval_seeds": eval_seeds, "val_tune": len(tune_view), "val_confirm": len(confirm_view)}
    progress(0.95, "writing the selection")
    summary = store_selection(view, result, name, config=config, overwrite=overwrite)
    summary["history"] = [{"round": h["round"], "score": h["score"], "weights": h["weights"]} for h in result.diagnostics["history"]]
    progress(1.0, f"selected {budget} scenes")
    return summary


def _base_embeddings(base_view, embedding_field: str, pool: Pool) -> np.ndarray:
    """(n_base, d) embeddings of the base scenes (in load order) from ``embedding_field``; they must
    exist and match the candidates' dimension, since failures are searched in the same space."""
    values = _field_values(base_view, embedding_field, "embedding (base scenes)")
    dims = {len(v) if np.ndim(v) == 1 else -1 for v in values}
    if dims != {pool.embeddings.shape[1]}:
        raise SelectionError(f"embedding field {embedding_field!r} has dimension(s) {sorted(dims)} on the base scenes "
                             f"but {pool.embeddings.shape[1]} on the candidates; re-run compute_scene_embeddings")
    return np.asarray(values, dtype=np.float32)


def select_active(view, name: str, budget: int, *, method: str = "value_topm", components: Sequence[str] = ("S", "R", "U"),
                  embedding_field: str | None = None, uncertainty_field: str | None = None,
                  importance_field: str | None = None,
                  value_fields: dict[str, str] | None = None, base_view=None, val_view=None, steps: int = 200,
                  base_limit: int = 500, val_limit: int = 200, seed: int = 0, overwrite: bool = False,
                  progress: Progress | None = None) -> dict:
    """Value top-m, hard-example mining, or a baseline (random, coreset, uncertainty); stored as
    selection ``name``.

    ``hard_mining`` ranks by 1 − EPDMS of the current planner: ``importance_field`` is its
    per-scene EPDMS field (e.g. ``eval_<run>_epdms`` written by ``evaluate``); without one, a
    planner is trained on the base set and scored on the candidates. ``value_fields`` defaults to the dataset's ``value_s``/``value_r``/``value_u``/``value_q`` fields
    (written by ``compute_value_scores``) where they exist. Signals not given as fields are computed from a planner trained on the base set.
    """
    progress = progress or _noop
    dataset = root_dataset(view)
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
                          importance_field=importance_field, value_fields=value_fields)
    want = {"random": [], "coreset": ["embeddings"], "uncertainty": ["uncertainty"], "hard_mining": ["importance"],
            "value_topm": [f"value_{c}" for c in components]}[method]
    if method == "value_topm" and set(components) == {"S", "R", "U"} and "value_Q" in pool.scores:
        want = []
    want = [w for w in want if (w == "embeddings" and pool.embeddings is None) or (w != "embeddings" and w not in pool.scores)]
    if want:  # signals the dataset lacks come from a planner trained on the base set
        view, base_view, val_view = resolve_views(view, base_view, val_view, base_limit=base_limit, val_limit=val_limit)
        if budget > len(view):
            raise SelectionError(f"budget {budget} is larger than the candidate view ({len(view)} scenes)")
        pool = pool_from_view(view, embedding_field=embedding_field, uncertainty_field=uncertainty_field,
                              importance_field=importance_field, value_fields=value_fields)
        setup = _setup(view, base_view, val_view, steps=steps, seed=seed, progress=progress)
        progress(0.1, "training the current planner for the missing signals")
        pool = _merge_signals(pool, setup, want)
    selector = {"random": lambda: RandomSelector(seed=seed), "coreset": CoresetSelector,
                "uncertainty": UncertaintySelector, "hard_mining": HardExampleSelector,
                "value_topm": lambda: ValueTopSelector(components)}[method]()
    result = _checked(selector.select, pool, budget)
    config = {"budget": budget, "method": method, "components": list(components), "embedding_field": embedding_field,
              "uncertainty_field": uncertainty_field,
              "importance_field": importance_field, "value_fields": value_fields or {}, "seed": seed}
    summary = store_selection(view, result, name, config=config, overwrite=overwrite)
    progress(1.0, f"selected {budget} scenes")
    return summary
