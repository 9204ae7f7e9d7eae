"""Recorded data in FiftyOne: import AV2 logs / interchange folders into a dataset, export scenes.

Python API (the CLI in :mod:`fiftyone_plugin.cli.io` and the App forms in :mod:`fiftyone_plugin.operators.io` call these):

* :func:`import_av2_into` — ``autoscale import av2 PATH --dataset NAME``
* :func:`import_scenes_into` — ``autoscale import scenes PATH --dataset NAME``
* :func:`export_dataset_scenes` — ``autoscale export scenes --dataset NAME PATH``

Everything is computed (read, converted, validated) before the dataset is touched, so bad input
raises an error naming the file and writes nothing. A new dataset is created; an existing one
gets the new scenes, and scenes already present (same ``scene_id``) are skipped, so importing
the same logs twice adds nothing (``skip_existing=False`` makes duplicates an error instead).
"""

from __future__ import annotations

import os

import fiftyone as fo

from autoscale_core.io import export_scenes, import_av2, import_scenes
from autoscale_core.scene import SceneBatch

from . import scenes


def _check_new_name(name: str) -> None:
    """A new dataset's name must work as a folder name: refused before reading any file."""
    if not fo.dataset_exists(name):
        scenes.default_dataset_dir(name)


def _ingest(name: str, batch: SceneBatch, *, render: bool, skip_existing: bool) -> dict:
    """Create dataset ``name`` from ``batch`` or add the batch's new scenes to it."""
    if not fo.dataset_exists(name):
        dataset = scenes.create_scene_dataset(name, batch, render_images=render)
        added = len(batch)
    else:
        dataset = fo.load_dataset(name)
        added = len(scenes.add_scenes(dataset, batch, render=render, skip_existing=skip_existing))
    return {"dataset": dataset.name, "scenes": len(batch), "added": added,
            "already_present": len(batch) - added, "num_samples": len(dataset)}


def import_av2_into(
    name: str,
    path: str | os.PathLike,
    *,
    stride_s: float = 0.2,
    history_s: float = 2.0,
    future_s: float = 4.0,
    strict: bool = True,
    strict_scenes: bool = False,
    render: bool = True,
    skip_existing: bool = True,
) -> dict:
    """Import every AV2 log under ``path`` into dataset ``name`` (created if missing).

    Returns counts (``scenes``, ``added``, ``already_present``, ``num_samples``) and the
    importer's report (``report``: windows, skipped by reason, warnings).
    """
    _check_new_name(name)
    batch, report = import_av2(path, stride_s=stride_s, history_s=history_s, future_s=future_s, strict=strict,
                               strict_scenes=strict_scenes)
    result = _ingest(name, batch, render=render, skip_existing=skip_existing)
    result["report"] = report.as_dict()
    return result


def import_scenes_into(name: str, path: str | os.PathLike, *, render: bool = True, skip_existing: bool = True,
                       strict: bool = False) -> dict:
    """Import an interchange folder (docs/interchange.md) into dataset ``name`` (created if missing).

    Scenes breaking the schema are skipped and listed under ``skipped_scenes`` (``strict``:
    refuse the folder instead); see :mod:`autoscale_core.io.validation`.
    """
    _check_new_name(name)
    skipped: list[dict] = []
    batch = import_scenes(path, strict=strict, skipped=skipped)
    result = _ingest(name, batch, render=render, skip_existing=skip_existing)
    result["skipped_scenes"] = skipped
    return result


def export_dataset_scenes(
    view: fo.Dataset | fo.DatasetView, path: str | os.PathLike, *, overwrite: bool = False
) -> dict:
    """Write the scenes of ``view`` (in its order) as an interchange folder at ``path``."""
    batch = scenes.load_scenes(view)
    folder = export_scenes(batch, path, overwrite=overwrite)
    return {"path": str(folder), "scenes": len(batch)}
