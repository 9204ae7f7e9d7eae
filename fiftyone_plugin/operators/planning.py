"""App forms for training and evaluating planners; the work is :mod:`fiftyone_plugin.engine.planning`'s.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone.operators.types as types

from autoscale_core.planning import BASELINES

from ..engine.planning import (
    _KEY,
    PLANNER_TYPES,
    _check_key,
    evaluate_planner_on_view,
    train_planner_on_view,
    view_weights,
)
from ..engine.runs import get_run
from . import ui

UNIFORM = ""  # weight-field choice meaning "no weights"
_PLANNER_HELP = {"regression": "MLP regressing the 8 future poses (fast)",
                 "scoring": "scores a fixed trajectory vocabulary and drives the best one"}
_BASELINE_HELP = {"rule": "rule-based IDM lane follower", "constant_velocity": "keeps the t0 speed and heading",
                  "logged_expert": "replays the logged future (upper reference)"}


def _train_key_error(dataset, key) -> str:
    try:
        _check_key(key, "run key")
    except ValueError as exc:
        return str(exc)
    if dataset.has_run(key):
        method = dataset.get_run_info(key).config.method
        if method != "train_planner":
            return f"run key {key!r} is taken by a {method!r} run of dataset {dataset.name!r}: choose another key"
    return ""


def _check_train_form(view, p: dict) -> None:
    if len(view) == 0:
        raise ValueError("target: no scenes chosen: nothing to train on")
    field = p.get("weight_field") or None
    if field:
        from autoscale_core.planning.train import check_weights

        try:
            check_weights(view_weights(view, field), len(view))
        except ValueError as exc:
            message = str(exc)
            raise ValueError(message if message.startswith("weight field") else f"weight field {field!r}: {message}") from exc


def _trained_planners(dataset) -> list[str]:
    return sorted(dataset.list_runs(method="train_planner"))


def _default_planner(dataset) -> str:
    trained = _trained_planners(dataset)
    return trained[-1] if trained else "rule"


def _eval_key(planner: str, key: str | None) -> str:
    """The evaluation key evaluate_planner_on_view will use (fields ``eval_<key>_*``)."""
    return key or (planner if _KEY.match(planner or "") else "planner")


def _check_eval_form(dataset, view, planner: str) -> None:
    if len(view) == 0:
        raise ValueError("target: no scenes chosen: nothing to evaluate")
    if planner in _trained_planners(dataset):
        checkpoint = (get_run(dataset, planner).get("results") or {}).get("checkpoint")
        if not checkpoint or not Path(checkpoint).is_file():
            raise ValueError(f"planner {planner!r}: its checkpoint {checkpoint} is missing: train it again")


class TrainPlanner(ui.DelegatedOperator):
    _name, _label, _icon = "train_planner", "AutoScale: train a planner", "model_training"
    _description = "Train a regression or vocabulary-scoring planner on the target scenes (recorded as a run)"

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)
        if view is None:
            return types.Property(inputs)
        p = ctx.params
        planner = ui.choice_input(inputs, ctx, "planner", [(t, t) for t in PLANNER_TYPES], default="regression",
                               label="Planner type", radio=True,
                               unknown=lambda v: f"planner {v!r} must be one of {PLANNER_TYPES}")
        key = p.get("key") or f"planner_{planner}"
        key_error = _train_key_error(ctx.dataset, key)
        inputs.str("key", default=f"planner_{planner}", label="Run key",
                   description="checkpoint <key>.pt and run record <key>; evaluate it with 'evaluate a planner'",
                   invalid=bool(key_error), error_message=key_error)
        if not key_error and ctx.dataset.has_run(key):
            inputs.view("key_note", types.Notice(label=f"run {key!r} exists: its checkpoint and record are replaced"))
        inputs.int("steps", default=0, min=0, label="Training steps (0 = default schedule)")
        inputs.int("seed", default=0, min=0, label="Seed")
        fields = ui.field_choices(ctx.dataset, "numeric")
        ui.choice_input(inputs, ctx, "weight_field", [(UNIFORM, "(uniform: every scene alike)"), *[(f, f) for f in fields]],
                     default=UNIFORM, label="Per-scene weight field",
                     description="a numeric field; scenes are sampled in proportion to it (0 drops a scene)",
                     unknown=lambda v: f"weight field {v!r} is not a numeric field of dataset {ctx.dataset.name!r}")
        ui.check_form(inputs, lambda: _check_train_form(view, dict(p)))
        return types.Property(inputs, view=types.View(label="Train a planner"))

    def execute(self, ctx):
        p = ctx.params
        view = ctx.target_view()
        planner = p.get("planner", "regression")
        out = train_planner_on_view(view, planner=planner, key=p.get("key") or None,
                                    steps=int(p.get("steps") or 0) or None, seed=int(p.get("seed", 0)),
                                    weight_field=p.get("weight_field") or None, progress=ui.progress_reporter(ctx))
        ui.finish(ctx, f"Trained {planner} planner '{out['run']}' on {len(view)} scenes; "
                       "evaluate it with 'AutoScale: evaluate a planner'", reload=False)
        return {k: out[k] for k in ("run", "checkpoint", "fingerprint", "best_val_loss", "train_seconds") if k in out}

    def resolve_output(self, ctx):
        return ui.result_view(
            ("str", "run", "Run"),
            ("str", "checkpoint", "Checkpoint"),
            ("float", "best_val_loss", "Best validation loss"),
        )


_EXECUTOR_HELP = {"serial": "in this process (keeps the per-scene EP reference cache warm)",
                  "process": "chunks of scenes in parallel worker processes",
                  "ray": "chunks as Ray tasks (local Ray, or the cluster in AUTOSCALE_EXECUTOR)"}


class EvaluatePlanner(ui.DelegatedOperator):
    _name, _label, _icon = "evaluate_planner", "AutoScale: evaluate a planner in closed loop", "speed"
    _description = "EPDMS, sub-scores, L2 and collisions per scene, written as eval_<key>_* fields"

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)
        if view is None:
            return types.Property(inputs)
        p = ctx.params
        dataset = ctx.dataset
        choices = [(k, f"{k} (trained here)") for k in _trained_planners(dataset)]
        choices += [(b, f"{b} (baseline: {_BASELINE_HELP.get(b, b)})") for b in BASELINES]
        planner = ui.choice_input(
            inputs, ctx, "planner", choices, default=_default_planner(dataset), label="Planner",
            description="a planner trained with 'train a planner' on this dataset, or a baseline",
            unknown=lambda v: f"planner {v!r} is neither a baseline {BASELINES} nor a training run of dataset "
                              f"{dataset.name!r}: train one with 'AutoScale: train a planner' first")
        key = _eval_key(planner, p.get("key") or None)
        key_error = ""
        try:
            _check_key(key, "evaluation key")
        except ValueError as exc:
            key_error = str(exc)
        inputs.str("key", default="", label="Evaluation key (empty = the planner's name)",
                   description="fields eval_<key>_epdms, eval_<key>_nc, ... and run eval_<key>",
                   invalid=bool(key_error), error_message=key_error)
        if not key_error and dataset.has_field(f"eval_{key}_epdms"):
            inputs.view("key_note", types.Notice(label=f"eval_{key}_* exist: the target's values are replaced"))
        inputs.bool("reactive", default=False, label="Reactive agents (IDM)",
                    description="other agents react to the ego instead of replaying their logs")
        ui.executor_input(inputs, ctx, _EXECUTOR_HELP, label="Executor for scoring chunks of scenes",
                          description="same scores whichever runs them")
        ui.check_form(inputs, lambda: _check_eval_form(dataset, view, planner))
        return types.Property(inputs, view=types.View(label="Evaluate a planner"))

    def execute(self, ctx):
        p = ctx.params
        view = ctx.target_view()
        out = evaluate_planner_on_view(view, p.get("planner") or _default_planner(ctx.dataset),
                                       key=p.get("key") or None, reactive=bool(p.get("reactive", False)),
                                       executor=p.get("executor"), progress=ui.progress_reporter(ctx))
        field = f"{out['run']}_epdms"
        num_scenes = int(out.get("num_scenes", len(view)))
        ui.finish(ctx, f"EPDMS {out['epdms']:.3f} on {num_scenes} scenes: wrote {out['run']}_* fields "
                       f"(lowest {field} first)", view=view.sort_by(field))
        return {"run": out["run"], "epdms": out["epdms"], "num_scenes": num_scenes,
                **{k: out[k] for k in ("collision_rate",) if k in out}}

    def resolve_output(self, ctx):
        return ui.result_view(
            ("str", "run", "Run"),
            ("float", "epdms", "Mean EPDMS"),
            ("int", "num_scenes", "Scenes evaluated"),
            ("float", "collision_rate", "Collision rate"),
        )


OPERATORS = [TrainPlanner, EvaluatePlanner]
