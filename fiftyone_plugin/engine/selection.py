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
from typing import Sequence

import fiftyone as fo
import fiftyone.operators.types as types
import numpy as np
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

from . import scenes, ui
from .keys import Progress, root_dataset, scaling_run_key, selection_run_key
from .runs import get_run, record_run

TAG_PREFIX = "sel:"
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
ACTIVE_METHODS = ("value_topm", "random", "coreset", "uncertainty")


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
    dataset = root_dataset(pool_view)
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
    tune_view = val_view.match(F("scene_id").is_in(val_ids[0::2]))
    confirm_view = val_view.match(F("scene_id").is_in(val_ids[1::2]))
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
    try:
        result = optimizer.select(pool, budget, failures=failures)
    except ValueError as exc:
        raise SelectionError(str(exc)) from exc
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
                  value_fields: dict[str, str] | None = None, base_view=None, val_view=None, steps: int = 200,
                  base_limit: int = 500, val_limit: int = 200, seed: int = 0, overwrite: bool = False,
                  progress: Progress | None = None) -> dict:
    """Value top-m (or a baseline: random, coreset, uncertainty); stored as selection ``name``.

    ``value_fields`` defaults to the dataset's ``value_s``/``value_r``/``value_u``/``value_q`` fields
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
# Forms follow fiftyone_plugin.ui: target choice, choices instead of free text, inline messages
# (computed with the same checks the functions above run), progress, and on success a
# notification plus the selection's saved view.
NONE = ""  # dropdown value for "no field: compute the signal / use the default"
METADATA_DOMAINS = ("topology", "city", "maneuver", "source", "split")
COMPONENTS = ("S", "R", "U")
_METHOD_HELP = {"value_topm": "highest value Q (or the sum of the chosen S/R/U components)",
                "random": "uniform random baseline", "coreset": "k-center greedy on scene embeddings",
                "uncertainty": "highest uncertainty (e.g. value_u)"}
_EXECUTOR_HELP = {"serial": "one run after another (lowest memory)", "process": "parallel worker processes",
                  "ray": "a Ray cluster (when ray is installed)"}


def _default_name(dataset, prefix: str, *, selection: bool = True) -> str:
    """The first ``<prefix>-<i>`` not yet used by a selection (or a scaling-law run)."""
    views, runs = set(dataset.list_saved_views()), set(dataset.list_runs())
    tags = set(dataset.distinct("tags")) if selection else set()
    for i in range(1, 10_000):
        name = f"{prefix}-{i}"
        key = selection_run_key(name) if selection else scaling_run_key(name)
        if key not in runs and not (selection and (name in views or TAG_PREFIX + name in tags)):
            return name
    return prefix


def _selection_name_error(dataset, name, overwrite: bool) -> str:
    try:
        check_selection_name(dataset, name, overwrite=overwrite)
    except SelectionError as exc:
        return str(exc) + (", or tick 'Replace an existing selection'" if "already exists" in str(exc) else "")
    return ""


def _scaling_name_error(dataset, name, overwrite: bool) -> str:
    if not isinstance(name, str) or not _NAME_PATTERN.match(name):
        return f"scaling-law name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a letter or digit"
    key = scaling_run_key(name)
    if dataset.has_run(key) and not overwrite:
        return (f"scaling laws {name!r} already exist on dataset {dataset.name!r} (run {key!r}): choose another "
                "name or tick 'Replace'")
    return ""


def _name_input(inputs, ctx, *, prefix: str, selection: bool = True) -> str:
    p = ctx.params
    default = _default_name(ctx.dataset, prefix, selection=selection)
    name = p.get("name") or default
    overwrite = bool(p.get("overwrite", False))
    error = (_selection_name_error if selection else _scaling_name_error)(ctx.dataset, name, overwrite)
    description = ("tag sel:<name>, saved view <name> and run sel_<name>" if selection
                   else "stored as run scaling_<name>; reuse it in 'allocate a budget'")
    inputs.str("name", default=default, label="Selection name" if selection else "Name",
               description=description, invalid=bool(error), error_message=error)
    return name


def _default_budget(view) -> int:
    return max(1, len(view) // 10)


def _budget_of(ctx, view):
    budget = ctx.params.get("budget")
    return _default_budget(view) if budget is None else budget


def _budget_input(inputs, ctx, view, label: str = "Budget (scenes)", of: str = "target"):
    default = _default_budget(view)
    budget = _budget_of(ctx, view)
    error = ui.budget_error(budget, view, of=of) or ""
    inputs.int("budget", default=default, min=1, label=label,
               description=f"at most the {len(view)} {of} scenes", invalid=bool(error), error_message=error)
    return budget


def _closing_inputs(inputs, ctx, *, closed_loop: bool, overwrite_label: str) -> None:
    if closed_loop:
        inputs.int("steps", default=200, min=1, label="Training steps per closed-loop run")
        ui.executor_input(inputs, ctx, _EXECUTOR_HELP, default="process", label="Executor for the training runs")
    inputs.int("seed", default=0, min=0, label="Seed")
    inputs.bool("overwrite", default=False, label=overwrite_label)


def _domain_choices(dataset) -> list[tuple[str, str]]:
    meta = [(f, f"metadata: {f}") for f in METADATA_DOMAINS if dataset.has_field(f)]
    return meta + [(f, f"clusters: {f}") for f in ui.field_choices(dataset, "string", "cluster_")]


def _unknown_field(dataset, what: str, hint: str):
    return lambda v: f"{what} field {v!r} is not available on dataset {dataset.name!r} ({hint})"


def _domain_input(inputs, ctx, default: str = "topology") -> str:
    choices = _domain_choices(ctx.dataset)
    values = [v for v, _ in choices]
    return ui.choice_input(inputs, ctx, "domain_field", choices, default=default if default in values else
                        (values[0] if values else default), label="Domain field",
                        description="one scaling law per value: a metadata field or clusters from 'cluster scenes'",
                        unknown=_unknown_field(ctx.dataset, "domain", "a metadata field, or run cluster_scenes first"))


def _importance_input(inputs, ctx) -> str:
    fields = [f for f in ui.field_choices(ctx.dataset, "numeric", "eval_") if f.endswith("_epdms")]
    return ui.choice_input(inputs, ctx, "importance_field",
                        [(NONE, "(EPDMS of a planner trained on the base set)"), *[(f, f) for f in fields]],
                        default=NONE, label="Per-scene EPDMS (importance = 1 - EPDMS)",
                        description="an eval_<run>_epdms field from 'evaluate a planner'",
                        unknown=_unknown_field(ctx.dataset, "EPDMS", "run evaluate_planner first"))


def _check_filled(view, field: str | None, hint: str) -> None:
    """ValueError unless every scene of the pool ``view`` has a value of ``field``."""
    if not field:
        return
    if not view.has_field(field):
        raise ValueError(f"no {field!r} yet: {hint}")
    missing = len(view) - view.count(field)
    if missing:
        raise ValueError(f"{missing} of the {len(view)} pool scenes have no {field!r}: {hint}")


def _cluster_hint(field: str) -> str:
    return "run cluster_scenes on them first" if field.startswith("cluster_") else "fill it or choose another field"


def _check_mosaic_inputs(view, domain: str, importance: str | None, budget: int) -> None:
    """The checks both MOSAIC forms share: domains and importance filled, enough candidates."""
    _check_filled(view, domain, _cluster_hint(domain))
    _check_filled(view, importance or None, "run evaluate_planner on them first")
    _check_candidates(view, budget)


def _check_candidates(view, budget) -> None:
    """Closed-loop runs set aside base (train) and val scenes: the budget must fit what is left."""
    if len(view) == 0:
        raise ValueError("pool: no scenes chosen (the target has none, or none in the chosen pool)")
    candidates, base, val = resolve_views(view)
    if isinstance(budget, int) and not isinstance(budget, bool) and budget > len(candidates):
        raise ValueError(f"budget {budget} is larger than the {len(candidates)} candidates left once the "
                         f"{len(base)} base (split=train) and {len(val)} val scenes are set aside")


def _selection_output(ctx):
    outputs = types.Object()
    outputs.str("name", label="Selection")
    outputs.int("budget", label="Scenes selected")
    outputs.str("run_key", label="Run")
    outputs.str("explanation", label="Why these scenes")
    return types.Property(outputs)


def _finish_selection(ctx, summary: dict, what: str = "scenes") -> dict:
    ui.finish(ctx, f"Selected {summary['budget']} {what} as {summary['tag']} (saved view '{summary['saved_view']}')",
              saved_view=summary["saved_view"])
    return {k: summary[k] for k in ("name", "budget", "run_key", "explanation") if k in summary}


def _optional(value):
    return value or None


class FitScalingLaws(ui.DelegatedOperator):
    _name, _label, _icon = "fit_scaling_laws", "AutoScale: fit scaling laws (MOSAIC pilots)", "show_chart"
    _description = "Pilot-train per domain and fit dU(n) = a(1 - exp(-n/tau))"

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ui.no_dataset_error(inputs, ctx):
            return types.Property(inputs)
        view = ui.selection_pool_input(inputs, ctx, ui.target_input(inputs, ctx))
        p = ctx.params
        _name_input(inputs, ctx, prefix="pilot", selection=False)
        budget = _budget_input(inputs, ctx, view, label="Budget the pilots are sized for (scenes)", of="pool")
        domain = _domain_input(inputs, ctx)
        importance = _importance_input(inputs, ctx)
        inputs.str("pilot_fractions", default="0.25,0.75,2", label="Pilot sizes",
                   description="comma-separated multiples of budget / #domains")
        inputs.int("seeds", default=1, min=1, label="Seeds per pilot")
        _closing_inputs(inputs, ctx, closed_loop=True, overwrite_label="Replace scaling laws of this name")

        def check():
            _parse_fractions(p.get("pilot_fractions", "0.25,0.75,2"))
            _check_mosaic_inputs(view, domain, importance, budget)

        ui.check_form(inputs, check)
        ui.scheduling_notice(inputs)
        return types.Property(inputs, view=types.View(label="Fit scaling laws"))

    def execute(self, ctx):
        p = ctx.params
        view = ui.checked_pool(ctx)
        result = fit_scaling_laws(view, p.get("name") or _default_name(ctx.dataset, "pilot", selection=False),
                                  _budget_of(ctx, view), domain_field=p.get("domain_field") or "topology",
                                  importance_field=_optional(p.get("importance_field")),
                                  pilot_fractions=p.get("pilot_fractions", "0.25,0.75,2"), seeds=int(p.get("seeds", 1)),
                                  steps=int(p.get("steps", 200)), executor=p.get("executor", "process"),
                                  seed=int(p.get("seed", 0)), overwrite=bool(p.get("overwrite", False)),
                                  progress=ui.progress_reporter(ctx))
        ui.finish(ctx, f"Fitted {len(result['fits'])} scaling laws ({result['run_key']}): see the Data Engine panel",
                  reload=False)
        return {"run_key": result["run_key"], "domains": len(result["fits"])}

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("run_key", label="Run")
        outputs.int("domains", label="Domains fitted")
        return types.Property(outputs)


def _scaling_runs(dataset) -> dict[str, str]:
    """Name (as allocate_budget's ``fits_from`` takes it) -> the domain field it was fitted on."""
    out = {}
    for key in sorted(dataset.list_runs(method="mosaic_scaling_laws")):
        params = getattr(dataset.get_run_info(key).config, "params", {}) or {}
        out[key[len("scaling_"):]] = params.get("domain_field")
    return out


class AllocateBudget(ui.DelegatedOperator):
    _name, _label, _icon = "allocate_budget", "AutoScale: allocate a budget (MOSAIC)", "pie_chart"
    _description = "Greedy marginal-gain allocation over domains from scaling laws"

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ui.no_dataset_error(inputs, ctx):
            return types.Property(inputs)
        view = ui.selection_pool_input(inputs, ctx, ui.target_input(inputs, ctx))
        p = ctx.params
        _name_input(inputs, ctx, prefix="mosaic")
        budget = _budget_input(inputs, ctx, view, of="pool")
        fits = _scaling_runs(ctx.dataset)
        fits_from = ui.choice_input(
            inputs, ctx, "fits_from", [(NONE, "(run pilots now)"), *[(n, f"{n} (domains: {d})") for n, d in fits.items()]],
            default=NONE, label="Scaling laws", description="reuse a 'fit scaling laws' run, or pilot anew",
            unknown=lambda v: f"scaling laws {v!r} do not exist on dataset {ctx.dataset.name!r}: run fit_scaling_laws first")
        fitted_on = fits.get(fits_from) if fits_from else None
        domain = _domain_input(inputs, ctx, default=fitted_on or "topology")
        importance = _importance_input(inputs, ctx)
        if not fits_from:
            inputs.str("pilot_fractions", default="0.25,0.75,2", label="Pilot sizes",
                       description="comma-separated multiples of budget / #domains")
        _closing_inputs(inputs, ctx, closed_loop=True, overwrite_label="Replace an existing selection of this name")

        def check():
            if fits_from and fitted_on and domain != fitted_on:
                raise ValueError(f"scaling laws {fits_from!r} were fitted on domain field {fitted_on!r}, not {domain!r}")
            if not fits_from:
                _parse_fractions(p.get("pilot_fractions", "0.25,0.75,2"))
            _check_mosaic_inputs(view, domain, importance, budget)

        ui.check_form(inputs, check)
        ui.scheduling_notice(inputs)
        return types.Property(inputs, view=types.View(label="Allocate budget (MOSAIC)"))

    def execute(self, ctx):
        p = ctx.params
        view = ui.checked_pool(ctx)
        summary = allocate_budget(view, p.get("name") or _default_name(ctx.dataset, "mosaic"),
                                  _budget_of(ctx, view), fits_from=_optional(p.get("fits_from")),
                                  domain_field=p.get("domain_field") or "topology",
                                  importance_field=_optional(p.get("importance_field")),
                                  pilot_fractions=p.get("pilot_fractions", "0.25,0.75,2"),
                                  steps=int(p.get("steps", 200)), executor=p.get("executor", "process"),
                                  seed=int(p.get("seed", 0)), overwrite=bool(p.get("overwrite", False)),
                                  progress=ui.progress_reporter(ctx))
        return _finish_selection(ctx, summary)

    def resolve_output(self, ctx):
        return _selection_output(ctx)


class OptimizeMixture(ui.DelegatedOperator):
    _name, _label, _icon = "optimize_mixture", "AutoScale: optimize the synthetic mixture", "tune"
    _description = "Cluster-GA on closed-loop EPDMS with cluster-guided faiss retrieval"

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ui.no_dataset_error(inputs, ctx):
            return types.Property(inputs)
        view = ui.selection_pool_input(inputs, ctx, ui.target_input(inputs, ctx))
        p = ctx.params
        _name_input(inputs, ctx, prefix="mixture")
        budget = _budget_input(inputs, ctx, view, of="pool")
        inputs.int("rounds", default=4, min=1, label="Rounds")
        inputs.int("probes", default=2, min=0, label="Perturbed mixtures per round")
        clusters = ui.field_choices(ctx.dataset, "string", "cluster_")
        cluster_field = ui.choice_input(
            inputs, ctx, "cluster_field", [(NONE, "(k-means into 'Clusters' groups)"), *[(f, f) for f in clusters]],
            default=NONE, label="Cluster field", description="clusters from 'cluster scenes', or k-means here",
            unknown=_unknown_field(ctx.dataset, "cluster", "run cluster_scenes first"))
        if not cluster_field:
            inputs.int("num_clusters", default=6, min=1, label="Clusters")
        embeddings = ui.field_choices(ctx.dataset, "vector", "emb_")
        embedding_field = ui.choice_input(
            inputs, ctx, "embedding_field", [(NONE, "(the current planner's embeddings)"), *[(f, f) for f in embeddings]],
            default=NONE, label="Embedding field (retrieval)",
            unknown=_unknown_field(ctx.dataset, "embedding", "run compute_scene_embeddings first"))
        inputs.float("failure_quantile", default=0.2, min=0.0, max=1.0, label="Failure quantile",
                     description="base scenes with the lowest EPDMS of the current planner guide retrieval")
        inputs.int("eval_seeds", default=3, min=1, label="Training seeds per mixture",
                   description="each candidate mixture is scored by the mean over this many trainings")
        _closing_inputs(inputs, ctx, closed_loop=True, overwrite_label="Replace an existing selection of this name")

        def check():
            q = p.get("failure_quantile", 0.2)
            if isinstance(q, (int, float)) and not 0 < q < 1:
                raise ValueError(f"failure_quantile must be in (0, 1), got {q}")
            _check_filled(view, cluster_field or None, "run cluster_scenes on them first")
            _check_filled(view, embedding_field or None, "run compute_scene_embeddings on them first")
            _check_candidates(view, budget)

        ui.check_form(inputs, check)
        ui.scheduling_notice(inputs)
        return types.Property(inputs, view=types.View(label="Optimize mixture (AutoScale)"))

    def execute(self, ctx):
        p = ctx.params
        view = ui.checked_pool(ctx)
        summary = optimize_mixture(view, p.get("name") or _default_name(ctx.dataset, "mixture"),
                                   _budget_of(ctx, view), rounds=int(p.get("rounds", 4)), probes=int(p.get("probes", 2)),
                                   num_clusters=int(p.get("num_clusters", 6)),
                                   cluster_field=_optional(p.get("cluster_field")),
                                   embedding_field=_optional(p.get("embedding_field")),
                                   failure_quantile=float(p.get("failure_quantile", 0.2)),
                                   eval_seeds=int(p.get("eval_seeds", 3)),
                                   steps=int(p.get("steps", 200)), executor=p.get("executor", "process"),
                                   seed=int(p.get("seed", 0)), overwrite=bool(p.get("overwrite", False)),
                                   progress=ui.progress_reporter(ctx))
        return _finish_selection(ctx, summary, "synthetic scenes")

    def resolve_output(self, ctx):
        return _selection_output(ctx)


def _value_fields_needed(dataset, components) -> list[str]:
    """The fields value top-m reads: value_q for S+R+U when it exists, else one per component."""
    fields = [f"value_{c.lower()}" for c in components]
    if set(components) == set(COMPONENTS) and (dataset.has_field("value_q") or
                                               not all(dataset.has_field(f) for f in fields)):
        return ["value_q"]
    return fields


def _check_active_form(view, p: dict) -> None:
    method = p.get("method", "value_topm")
    if method == "value_topm":
        components = p.get("components", list(COMPONENTS))
        if not components or any(c not in COMPONENTS for c in components):
            raise ValueError(f"components: choose a non-empty subset of {COMPONENTS}, got {components!r}")
        for field in _value_fields_needed(view, components):
            _check_filled(view, field, "run compute_value_scores first")
    elif method == "coreset":
        if not p.get("embedding_field"):
            raise ValueError("coreset needs scene embeddings: run compute_scene_embeddings first")
        _check_filled(view, p["embedding_field"], "run compute_scene_embeddings on them first")
    elif method == "uncertainty":
        if not p.get("uncertainty_field"):
            raise ValueError("uncertainty needs a per-scene uncertainty field: run compute_value_scores first (value_u)")
        _check_filled(view, p["uncertainty_field"], "run compute_value_scores on them first")


class SelectActive(ui.DelegatedOperator):
    _name, _label, _icon = "select_active", "AutoScale: select by value (active learning)", "star"
    _description = "Top-m by value Q, an S/R/U subset, or a baseline (random, coreset, uncertainty)"

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ui.no_dataset_error(inputs, ctx):
            return types.Property(inputs)
        view = ui.selection_pool_input(inputs, ctx, ui.target_input(inputs, ctx))
        p = ctx.params
        dataset = ctx.dataset
        _name_input(inputs, ctx, prefix="active")
        _budget_input(inputs, ctx, view, of="pool")
        method = ui.choice_input(inputs, ctx, "method", [(m, f"{m}: {_METHOD_HELP[m]}") for m in ACTIVE_METHODS],
                              default="value_topm", label="Method", radio=True,
                              unknown=lambda v: f"method {v!r} is not one of {ACTIVE_METHODS}")
        params = {"method": method}
        if method == "value_topm":
            inputs.list("components", types.String(), default=list(COMPONENTS), label="Value components",
                        description="S safety proximity, R rarity, U uncertainty (all three = Q)",
                        view=types.AutocompleteView(multiple=True, allow_user_input=False, allow_duplicates=False,
                                                    choices=[types.Choice(value=c, label=c) for c in COMPONENTS]))
            params["components"] = p.get("components", list(COMPONENTS))
        elif method == "coreset":
            fields = ui.field_choices(dataset, "vector", "emb_")
            if fields:
                params["embedding_field"] = ui.choice_input(
                    inputs, ctx, "embedding_field", [(f, f) for f in fields], default=fields[0],
                    label="Embedding field",
                    unknown=_unknown_field(dataset, "embedding", "run compute_scene_embeddings first"))
        elif method == "uncertainty":
            fields = [f for f in ui.field_choices(dataset, "numeric") if f.startswith("value_") or "uncert" in f]
            if fields:
                params["uncertainty_field"] = ui.choice_input(
                    inputs, ctx, "uncertainty_field", [(f, f) for f in fields],
                    default="value_u" if "value_u" in fields else fields[0], label="Uncertainty field",
                    unknown=_unknown_field(dataset, "uncertainty", "run compute_value_scores first"))
        _closing_inputs(inputs, ctx, closed_loop=False, overwrite_label="Replace an existing selection of this name")
        ui.check_form(inputs, lambda: _check_active_form(view, params))
        ui.scheduling_notice(inputs)
        return types.Property(inputs, view=types.View(label="Select by value"))

    def execute(self, ctx):
        p = ctx.params
        view = ui.checked_pool(ctx)
        method = p.get("method", "value_topm")
        summary = select_active(view, p.get("name") or _default_name(ctx.dataset, "active"),
                                _budget_of(ctx, view), method=method,
                                components=tuple(p.get("components") or COMPONENTS),
                                embedding_field=_optional(p.get("embedding_field")) if method == "coreset" else None,
                                uncertainty_field=_optional(p.get("uncertainty_field")) if method == "uncertainty" else None,
                                seed=int(p.get("seed", 0)), overwrite=bool(p.get("overwrite", False)),
                                progress=ui.progress_reporter(ctx))
        return _finish_selection(ctx, summary)

    def resolve_output(self, ctx):
        return _selection_output(ctx)


OPERATORS = [FitScalingLaws, AllocateBudget, OptimizeMixture, SelectActive]
