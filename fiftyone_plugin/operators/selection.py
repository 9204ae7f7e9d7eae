"""App forms for scaling laws, MOSAIC allocation, mixtures and active selection; the work is
:mod:`fiftyone_plugin.engine.selection`'s.
"""

from __future__ import annotations

import fiftyone.operators.types as types

from ..engine.keys import scaling_run_key, selection_run_key
from ..engine.selection import (
    _NAME_PATTERN,
    ACTIVE_METHODS,
    TAG_PREFIX,
    SelectionError,
    _parse_fractions,
    allocate_budget,
    check_selection_name,
    fit_scaling_laws,
    optimize_mixture,
    resolve_views,
    select_active,
)
from . import ui

# Forms follow fiftyone_plugin.operators.ui: target choice, choices instead of free text, inline messages
# (computed with the same checks fiftyone_plugin.engine.selection runs), progress, and on success a
# notification plus the selection's saved view.
NONE = ""  # dropdown value for "no field: compute the signal / use the default"
METADATA_DOMAINS = ("topology", "city", "maneuver", "source", "split")
COMPONENTS = ("S", "R", "U")
_METHOD_HELP = {"value_topm": "highest value Q (or the sum of the chosen S/R/U components)",
                "hard_mining": "the scenes the current planner drives worst (1 - EPDMS); beats random in the "
                               "selection protocol",
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
        ui.executor_input(inputs, ctx, _EXECUTOR_HELP, in_process_by_default=False,
                          label="Executor for the training runs")
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
    return ui.result_view(
        ("str", "name", "Selection"),
        ("int", "budget", "Scenes selected"),
        ("str", "run_key", "Run"),
        ("str", "explanation", "Why these scenes"),
    )


def _finish_selection(ctx, summary: dict, what: str = "scenes") -> dict:
    ui.finish(ctx, f"Selected {summary['budget']} {what} as {summary['tag']} (saved view '{summary['saved_view']}')",
              saved_view=summary["saved_view"])
    return {k: summary[k] for k in ("name", "budget", "run_key", "explanation") if k in summary}


def _optional(value):
    return value or None


PILOT_FRACTIONS = "0.25,0.75,2"  # the pilot sizes' default, multiples of budget / #domains


def _pool_inputs(ctx):
    """Every selection form starts with the target and the pool drawn from it (held-out guard):
    ``(inputs, view)``; ``view`` is None when there is no dataset (the form then says so)."""
    inputs, target = ui.target_form(ctx)
    return inputs, None if target is None else ui.selection_pool_input(inputs, ctx, target)


def _pilot_fractions_input(inputs) -> None:
    inputs.str("pilot_fractions", default=PILOT_FRACTIONS, label="Pilot sizes",
               description="comma-separated multiples of budget / #domains")


def _form(inputs, check, label: str):
    """Every selection form ends the same way: inline errors from ``check``, the scheduling notice."""
    ui.check_form(inputs, check)
    ui.scheduling_notice(inputs)
    return types.Property(inputs, view=types.View(label=label))


def _mosaic_kwargs(p: dict) -> dict:
    """The MOSAIC arguments (fit_scaling_laws, allocate_budget) from the form's values."""
    return {"domain_field": p.get("domain_field") or "topology", "importance_field": _optional(p.get("importance_field")),
            "pilot_fractions": p.get("pilot_fractions", PILOT_FRACTIONS)}


def _run_kwargs(ctx, *, closed_loop: bool = True) -> dict:
    """The closing inputs' arguments (seed, overwrite, progress; steps and executor when closed-loop)."""
    p = ctx.params
    kwargs = {"seed": int(p.get("seed", 0)), "overwrite": bool(p.get("overwrite", False)),
              "progress": ui.progress_reporter(ctx)}
    if closed_loop:
        kwargs.update(steps=int(p.get("steps", 200)), executor=p.get("executor"))
    return kwargs


class FitScalingLaws(ui.DelegatedOperator):
    _name, _label, _icon = "fit_scaling_laws", "AutoScale: fit scaling laws (MOSAIC pilots)", "show_chart"
    _description = "Pilot-train per domain and fit dU(n) = a(1 - exp(-n/tau))"

    def resolve_input(self, ctx):
        inputs, view = _pool_inputs(ctx)
        if view is None:
            return types.Property(inputs)
        p = ctx.params
        _name_input(inputs, ctx, prefix="pilot", selection=False)
        budget = _budget_input(inputs, ctx, view, label="Budget the pilots are sized for (scenes)", of="pool")
        domain = _domain_input(inputs, ctx)
        importance = _importance_input(inputs, ctx)
        _pilot_fractions_input(inputs)
        inputs.int("seeds", default=1, min=1, label="Seeds per pilot")
        _closing_inputs(inputs, ctx, closed_loop=True, overwrite_label="Replace scaling laws of this name")

        def check():
            _parse_fractions(p.get("pilot_fractions", PILOT_FRACTIONS))
            _check_mosaic_inputs(view, domain, importance, budget)

        return _form(inputs, check, "Fit scaling laws")

    def execute(self, ctx):
        p = ctx.params
        view = ui.checked_pool(ctx)
        result = fit_scaling_laws(view, p.get("name") or _default_name(ctx.dataset, "pilot", selection=False),
                                  _budget_of(ctx, view), seeds=int(p.get("seeds", 1)), **_mosaic_kwargs(p),
                                  **_run_kwargs(ctx))
        ui.finish(ctx, f"Fitted {len(result['fits'])} scaling laws ({result['run_key']}): see the Data Engine panel",
                  reload=False)
        return {"run_key": result["run_key"], "domains": len(result["fits"])}

    def resolve_output(self, ctx):
        return ui.result_view(("str", "run_key", "Run"), ("int", "domains", "Domains fitted"))


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
        inputs, view = _pool_inputs(ctx)
        if view is None:
            return types.Property(inputs)
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
            _pilot_fractions_input(inputs)
        _closing_inputs(inputs, ctx, closed_loop=True, overwrite_label="Replace an existing selection of this name")

        def check():
            if fits_from and fitted_on and domain != fitted_on:
                raise ValueError(f"scaling laws {fits_from!r} were fitted on domain field {fitted_on!r}, not {domain!r}")
            if not fits_from:
                _parse_fractions(p.get("pilot_fractions", PILOT_FRACTIONS))
            _check_mosaic_inputs(view, domain, importance, budget)

        return _form(inputs, check, "Allocate budget (MOSAIC)")

    def execute(self, ctx):
        p = ctx.params
        view = ui.checked_pool(ctx)
        summary = allocate_budget(view, p.get("name") or _default_name(ctx.dataset, "mosaic"),
                                  _budget_of(ctx, view), fits_from=_optional(p.get("fits_from")), **_mosaic_kwargs(p),
                                  **_run_kwargs(ctx))
        return _finish_selection(ctx, summary)

    def resolve_output(self, ctx):
        return _selection_output(ctx)


class OptimizeMixture(ui.DelegatedOperator):
    _name, _label, _icon = "optimize_mixture", "AutoScale: optimize the synthetic mixture", "tune"
    _description = "Cluster-GA on closed-loop EPDMS with cluster-guided faiss retrieval"

    def resolve_input(self, ctx):
        inputs, view = _pool_inputs(ctx)
        if view is None:
            return types.Property(inputs)
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

        return _form(inputs, check, "Optimize mixture (AutoScale)")

    def execute(self, ctx):
        p = ctx.params
        view = ui.checked_pool(ctx)
        summary = optimize_mixture(view, p.get("name") or _default_name(ctx.dataset, "mixture"),
                                   _budget_of(ctx, view), rounds=int(p.get("rounds", 4)), probes=int(p.get("probes", 2)),
                                   num_clusters=int(p.get("num_clusters", 6)),
                                   cluster_field=_optional(p.get("cluster_field")),
                                   embedding_field=_optional(p.get("embedding_field")),
                                   failure_quantile=float(p.get("failure_quantile", 0.2)),
                                   eval_seeds=int(p.get("eval_seeds", 3)), **_run_kwargs(ctx))
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
    elif method == "hard_mining":
        _check_filled(view, p.get("importance_field"), "run evaluate_planner on them first")
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
    _description = "Top-m by value Q, an S/R/U subset, hard-example mining, or a baseline (random, coreset, uncertainty)"

    def resolve_input(self, ctx):
        inputs, view = _pool_inputs(ctx)
        if view is None:
            return types.Property(inputs)
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
        elif method == "hard_mining":
            params["importance_field"] = _importance_input(inputs, ctx)
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
        return _form(inputs, lambda: _check_active_form(view, params), "Select by value")

    def execute(self, ctx):
        p = ctx.params
        view = ui.checked_pool(ctx)
        method = p.get("method", "value_topm")
        summary = select_active(view, p.get("name") or _default_name(ctx.dataset, "active"),
                                _budget_of(ctx, view), method=method,
                                components=tuple(p.get("components") or COMPONENTS),
                                embedding_field=_optional(p.get("embedding_field")) if method == "coreset" else None,
                                uncertainty_field=_optional(p.get("uncertainty_field")) if method == "uncertainty" else None,
                                importance_field=_optional(p.get("importance_field")) if method == "hard_mining" else None,
                                **_run_kwargs(ctx, closed_loop=False))
        return _finish_selection(ctx, summary)

    def resolve_output(self, ctx):
        return _selection_output(ctx)


OPERATORS = [FitScalingLaws, AllocateBudget, OptimizeMixture, SelectActive]
