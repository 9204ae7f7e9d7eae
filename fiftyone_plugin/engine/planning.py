"""Planner training and closed-loop evaluation on FiftyOne views.

Two functions do the work (used by the App forms in :mod:`fiftyone_plugin.operators.planning`, the CLI and Python):

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
import numpy as np

from autoscale_core.executor import executor_from_choice
from autoscale_core.planning.evaluate import BASELINES, baseline_plans, evaluate_planner, evaluate_trajectories

from . import scenes, triage
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
    from autoscale_core.planning.train import train_planner  # torch: imported on use (fast App start)

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
    from autoscale_core.planning.train import load_planner  # torch: imported on use

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
    # In this process unless named: its per-scene EP-reference cache stays warm. Rejects an unknown
    # name before loading anything.
    executor = executor_from_choice(executor, in_process_by_default=True)
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
