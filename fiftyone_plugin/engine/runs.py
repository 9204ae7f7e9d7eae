"""Run records for AutoScale computations, on FiftyOne's own run API.

Each computation (world generation, training, evaluation, embedding, selection, ...) is a
FiftyOne *run* on the dataset: ``dataset.list_runs()`` / ``get_run_info()`` show it, FiftyOne
records the UTC timestamp and FiftyOne version, and we add the method, the user's config, the
AutoScale version and a status (``running`` → ``completed`` or ``failed``). Results (small,
JSON-serializable summaries) are saved as the run's results.

Typical use::

    start_run(dataset, "train_v1", "train_planner", config)
    try:
        results = ...
    except Exception as exc:
        finish_run(dataset, "train_v1", {"error": str(exc)}, status="failed")
        raise
    finish_run(dataset, "train_v1", results)
"""

from __future__ import annotations

import datetime
import json
import re
from typing import Any, Mapping

import fiftyone as fo
import numpy as np

import autoscale_core

STATUSES = ("running", "completed", "failed")
_KEY_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RunRecordError(ValueError):
    """Bad run key, status or non-serializable config/results."""


def _check_key(key: str) -> None:
    if not isinstance(key, str) or not _KEY_PATTERN.match(key):
        raise RunRecordError(f"run key {key!r} must be a Python identifier (letters, digits, _)")


def _jsonable(value: Any, what: str) -> Any:
    """Convert numpy scalars/arrays inside ``value`` to plain JSON types; raise if impossible."""

    def convert(v):
        if isinstance(v, np.ndarray):
            return v.tolist()
        if isinstance(v, np.generic):
            return v.item()
        if isinstance(v, Mapping):
            return {str(k): convert(x) for k, x in v.items()}
        if isinstance(v, (list, tuple)):
            return [convert(x) for x in v]
        if isinstance(v, (datetime.datetime, datetime.date)):
            return v.isoformat()
        return v

    converted = convert(value)
    try:
        json.dumps(converted)
    except (TypeError, ValueError) as exc:
        raise RunRecordError(f"{what} is not JSON-serializable: {exc}") from exc
    return converted


def _dataset(collection):
    return collection._root_dataset if isinstance(collection, fo.DatasetView) else collection


def start_run(dataset, key: str, method: str, config: Mapping[str, Any] | None = None) -> None:
    """Register run ``key`` with status ``running`` (replacing an older run of that key)."""
    record_run(dataset, key, method, config or {}, None, status="running")


_RESULTS_ATTR = "autoscale_results"


def finish_run(dataset, key: str, results: Mapping[str, Any] | None, status: str = "completed") -> None:
    """Set the status of run ``key`` and save its results."""
    info = get_run(dataset, key)
    record_run(dataset, key, info["method"], info["config"], results, status=status,
               started_at=info["started_at"])


def record_run(
    dataset,
    key: str,
    method: str,
    config: Mapping[str, Any],
    results: Mapping[str, Any] | None,
    status: str = "completed",
    started_at: str | None = None,
) -> None:
    """Record (or replace) run ``key``: method, config, AutoScale version, status, results."""
    _check_key(key)
    if status not in STATUSES:
        raise RunRecordError(f"run status {status!r} must be one of {STATUSES}")
    if not isinstance(method, str) or not method:
        raise RunRecordError(f"run method must be a non-empty string, got {method!r}")
    dataset = _dataset(dataset)
    now = datetime.datetime.now(datetime.timezone.utc).isoformat()
    run_config = dataset.init_run(
        method=method,
        params=_jsonable(dict(config or {}), f"config of run {key!r}"),
        autoscale_version=autoscale_core.__version__,
        status=status,
        started_at=started_at or now,
        finished_at=None if status == "running" else now,
    )
    clean_results = None if results is None else _jsonable(dict(results), f"results of run {key!r}")
    dataset.register_run(key, run_config, overwrite=True, cleanup=False)
    if clean_results is not None:
        # Wrapped under one attribute: result keys may collide with init_run_results' own
        # arguments (e.g. "run_key").
        payload = dataset.init_run_results(key, **{_RESULTS_ATTR: clean_results})
        dataset.save_run_results(key, payload, overwrite=True)


def get_run(dataset, key: str) -> dict[str, Any]:
    """One run as a dict: key, method, status, config, results, versions, timestamps."""
    dataset = _dataset(dataset)
    if not dataset.has_run(key):
        raise RunRecordError(f"dataset {dataset.name!r} has no run {key!r}")
    info = dataset.get_run_info(key)
    cfg = info.config
    results = None
    try:
        loaded = dataset.load_run_results(key, cache=False, load_view=False)
    except Exception:  # no results saved (e.g. a running run)
        loaded = None
    if loaded is not None:
        serialized = loaded.serialize()
        results = serialized.get(_RESULTS_ATTR)
        if results is None:  # records written before results were wrapped
            results = {k: v for k, v in serialized.items() if not k.startswith("_") and k != "cls"}
    return {
        "key": key,
        "method": cfg.method,
        "status": getattr(cfg, "status", None),
        "config": getattr(cfg, "params", {}),
        "results": results,
        "autoscale_version": getattr(cfg, "autoscale_version", None),
        "fiftyone_version": info.version,
        "timestamp": info.timestamp,
        "started_at": getattr(cfg, "started_at", None),
        "finished_at": getattr(cfg, "finished_at", None),
    }


def list_runs(dataset, method: str | None = None) -> list[dict[str, Any]]:
    """All AutoScale runs of ``dataset`` (optionally of one method), oldest first."""
    dataset = _dataset(dataset)
    keys = dataset.list_runs(method=method) if method else dataset.list_runs()
    runs = []
    for key in keys:
        run = get_run(dataset, key)
        if run["autoscale_version"] is not None:  # skip runs other tools registered
            runs.append(run)
    return sorted(runs, key=lambda r: (r["started_at"] or "", r["key"]))


def delete_run(dataset, key: str) -> None:
    """Delete run ``key`` and its results (not fields it wrote)."""
    dataset = _dataset(dataset)
    if not dataset.has_run(key):
        raise RunRecordError(f"dataset {dataset.name!r} has no run {key!r}")
    dataset.delete_run(key)
