"""Planner training and closed-loop evaluation on FiftyOne views.

Two functions do the work (used by the operators below, the CLI and Python):

* :func:`train_planner_on_view` — trains a regression or scoring planner on the view's scenes
  (optionally weighted by a numeric sample field), saves the checkpoint beside the dataset's
  scene store (``<store>/../planners/<key>.pt``) and records run ``<key>`` (method
  ``train_planner``: config, data fingerprint, metrics, checkpoint path).
* :func:`evaluate_planner_on_view` — evaluates a trained planner (a run key or a checkpoint
  path) or a baseline ("constant_velocity", "logged_expert", "rule") in closed loop and writes
  per-scene fields ``eval_<key>_epdms``, ``_nc``, ``_dac``, …, ``_l2_1s``/``_2s``/``_3s`` and
  ``_collision`` in bulk, then records run ``eval_<key>`` with the aggregates.

Everything is computed first; bad input raises ValueError naming it before anything is written.
"""

from __future__ import annotations

import re
from functools import partial
from pathlib import Path

import fiftyone as fo
import fiftyone.operators.types as types
import numpy as np

from autoscale_core.executor import executor_from_choice
from autoscale_core.planning import BASELINES, evaluate_planner, load_planner, train_planner
from autoscale_core.planning.evaluate import baseline_plans, evaluate_trajectories

from . import scenes, triage, ui
from .keys import Progress, root_dataset
from .runs import get_run, record_run

PLANNER_TYPES = ("regression", "scoring")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _check_key(key: str, what: str = "key") -> str:
    if not isinstance(key, str) or not _KEY.match(key):
        raise ValueError(f"{what} {key!r} must be letters, digits and underscores, not starting with a digit")
    return key


def planner_dir(dataset: fo.Dataset) -> Path:
    """Where checkpoints live: beside the dataset's scene store."""
    return scenes.get_store(dataset).root.parent / "planners"


def view_weights(view, weight_field: str | None) -> np.ndarray | None:
    """(S,) float weights from a numeric sample field (None → uniform). Missing values are errors."""
    if not weight_field:
        return None
    if not view.has_field(weight_field):
        raise ValueError(f"weight field {weight_field!r} does not exist on dataset {root_dataset(view).name!r}")
    values = view.values(weight_field)
    if any(v is None for v in values):
        raise ValueError(f"weight field {weight_field!r} is empty on {sum(v is None for v in values)} samples")
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"weight field {weight_field!r} is not numeric: {exc}") from exc


def train_planner_on_view(
    view: fo.Dataset | fo.DatasetView,
    *,
    planner: str = "regression",
    key: str | None = None,
    steps: int | None = None,
    seed: int = 0,
    weight_field: str | None = None,
    device: str = "auto",
    progress: Progress | None = None,
) -> dict:
    """Train a planner on ``view`` and record run ``key`` (default ``planner_<type>``); returns a summary."""
    report = progress or (lambda f, m: None)
    if planner not in PLANNER_TYPES:
        raise ValueError(f"planner {planner!r} must be one of {PLANNER_TYPES}")
    key = _check_key(key or f"planner_{planner}", "run key")
    if len(view) == 0:
        raise ValueError("the view is empty: nothing to train on")
    weights = view_weights(view, weight_field)
    report(0.02, f"loading {len(view)} scenes")
    batch = scenes.load_scenes(view)
    trained = train_planner(batch, planner=planner, sample_weight=weights, seed=seed, steps=steps, device=device,
                            progress=lambda f, m: report(0.05 + 0.85 * f, m))
    dataset = root_dataset(view)
    path = trained.save(planner_dir(dataset) / f"{key}.pt")
    metrics = {k: v for k, v in trained.metrics.items() if k != "history"}
    config = {"planner": planner, "steps": trained.config["steps"], "seed": seed, "weight_field": weight_field,
              "num_scenes": len(batch), "view": _view_repr(view)}
    results = {"checkpoint": str(path), "fingerprint": trained.fingerprint, "metrics": metrics,
               "train_config": trained.config, "loss_history": trained.metrics["history"]}
    record_run(dataset, key, "train_planner", config, results)
    report(1.0, f"saved {path.name}")
    return {"run": key, "checkpoint": str(path), "fingerprint": trained.fingerprint, **metrics}


def _resolve_planner(dataset, planner: str):
    """A TrainedPlanner from a run key or checkpoint path, or a baseline name."""
    if planner in BASELINES:
        return planner
    if Path(planner).suffix == ".pt" or "/" in planner:
        if not Path(planner).exists():
            raise ValueError(f"planner checkpoint {planner!r} does not exist")
        return load_planner(planner)
    if dataset.has_run(planner):
        info = get_run(dataset, planner)
        checkpoint = (info.get("results") or {}).get("checkpoint")
        if info.get("method") != "train_planner" or not checkpoint:
            raise ValueError(f"run {planner!r} of dataset {dataset.name!r} is not a planner training run")
        return load_planner(checkpoint)
    raise ValueError(f"planner {planner!r} is neither a baseline {BASELINES}, a training run of dataset "
                     f"{dataset.name!r}, nor a checkpoint path")


def evaluate_planner_on_view(
    view: fo.Dataset | fo.DatasetView,
    planner: str,
    *,
    key: str | None = None,
    reactive: bool = False,
    progress: Progress | None = None,
    executor: str | None = None,
) -> dict:
    """Evaluate ``planner`` (run key, checkpoint path or baseline) on ``view``; write ``eval_<key>_*`` fields.

    ``executor`` (``serial``, ``process[:N]``, ``ray[:address]``) scores chunks of scenes through
    that executor; ``None`` uses ``AUTOSCALE_EXECUTOR`` when set, else scores in this process.
    The scores are the same either way.
    """
    report = progress or (lambda f, m: None)
    dataset = root_dataset(view)
    key = _check_key(key or (planner if _KEY.match(planner) else "planner"), "evaluation key")
    if len(view) == 0:
        raise ValueError("the view is empty: nothing to evaluate")
    model = _resolve_planner(dataset, planner)
    executor = executor_from_choice(executor)  # rejects an unknown name before loading anything
    report(0.05, f"loading {len(view)} scenes")
    batch = scenes.load_scenes(view)
    report(0.2, "planning and scoring in closed loop")
    if isinstance(model, str):
        result = evaluate_trajectories(batch, baseline_plans(batch, model), name=model, reactive=reactive,
                                       executor=executor, planner=partial(baseline_plans, name=model))
    else:
        result = evaluate_planner(model, batch, reactive=reactive, name=planner, executor=executor)
    # NaN (L2 of scenes without a logged future) is stored as None.
    values = {f"eval_{key}_{name}": [None if isinstance(x, float) and not np.isfinite(x) else x
                                     for x in np.asarray(v).tolist()]
              for name, v in result.per_scene().items()}
    # The plan itself, as an overlay beside ego_future, so a low score can be seen on the scene.
    extent = float(dataset.info.get(scenes.EXTENT_INFO_KEY, scenes.bev.DEFAULT_EXTENT_M))
    values[triage.trajectory_field(key)] = triage.trajectory_overlays(
        result.trajectories, batch.ego[:, batch.history_steps, :2], key, extent)
    report(0.9, f"writing {len(values)} fields")
    scenes.write_scene_fields(view, values, scene_ids=[str(s) for s in result.scene_ids])
    aggregates = result.aggregates()
    record_run(dataset, f"eval_{key}", "evaluate_planner",
               {"planner": planner, "reactive": reactive, "num_scenes": len(batch), "view": _view_repr(view)},
               {"aggregates": aggregates, "fields": sorted(values)})
    triage.apply_planner_triage(dataset, key)  # colours, sidebar group, descriptions, worst-scene views
    report(1.0, f"EPDMS {aggregates.get('epdms', float('nan')):.3f}")
    return {"run": f"eval_{key}", "fields": sorted(values), **aggregates}


def _view_repr(view) -> str:
    return "dataset" if isinstance(view, fo.Dataset) else str(view._stages)[:500]


# ---------------------------------------------------------------------------------- operators
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
        inputs = types.Object()
        if ui.no_dataset_error(inputs, ctx):
            return types.Property(inputs)
        view = ui.target_input(inputs, ctx)
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
        outputs = types.Object()
        outputs.str("run", label="Run")
        outputs.str("checkpoint", label="Checkpoint")
        outputs.float("best_val_loss", label="Best validation loss")
        return types.Property(outputs)


_EXECUTOR_HELP = {"serial": "in this process (keeps the per-scene EP reference cache warm)",
                  "process": "chunks of scenes in parallel worker processes",
                  "ray": "chunks as Ray tasks (local Ray, or the cluster in AUTOSCALE_EXECUTOR)"}


class EvaluatePlanner(ui.DelegatedOperator):
    _name, _label, _icon = "evaluate_planner", "AutoScale: evaluate a planner in closed loop", "speed"
    _description = "EPDMS, sub-scores, L2 and collisions per scene, written as eval_<key>_* fields"

    def resolve_input(self, ctx):
        inputs = types.Object()
        if ui.no_dataset_error(inputs, ctx):
            return types.Property(inputs)
        view = ui.target_input(inputs, ctx)
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
        outputs = types.Object()
        outputs.str("run", label="Run")
        outputs.float("epdms", label="Mean EPDMS")
        outputs.int("num_scenes", label="Scenes evaluated")
        outputs.float("collision_rate", label="Collision rate")
        return types.Property(outputs)


OPERATORS = [TrainPlanner, EvaluatePlanner]
