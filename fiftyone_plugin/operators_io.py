"""Recorded data in FiftyOne: import AV2 logs / interchange folders into a dataset, export scenes.

Python API (the CLI in :mod:`fiftyone_plugin.cli_io` and the operators below call these):

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
from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from autoscale_core.io import export_scenes, import_av2, import_scenes
from autoscale_core.scene import SceneBatch

from . import scenes


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
    render: bool = True,
    skip_existing: bool = True,
) -> dict:
    """Import every AV2 log under ``path`` into dataset ``name`` (created if missing).

    Returns counts (``scenes``, ``added``, ``already_present``, ``num_samples``) and the
    importer's report (``report``: windows, skipped by reason, warnings).
    """
    batch, report = import_av2(path, stride_s=stride_s, history_s=history_s, future_s=future_s, strict=strict)
    result = _ingest(name, batch, render=render, skip_existing=skip_existing)
    result["report"] = report.as_dict()
    return result


def import_scenes_into(name: str, path: str | os.PathLike, *, render: bool = True, skip_existing: bool = True) -> dict:
    """Import an interchange folder (docs/interchange.md) into dataset ``name`` (created if missing)."""
    return _ingest(name, import_scenes(path), render=render, skip_existing=skip_existing)


def export_dataset_scenes(
    view: fo.Dataset | fo.DatasetView, path: str | os.PathLike, *, overwrite: bool = False
) -> dict:
    """Write the scenes of ``view`` (in its order) as an interchange folder at ``path``."""
    batch = scenes.load_scenes(view)
    folder = export_scenes(batch, path, overwrite=overwrite)
    return {"path": str(folder), "scenes": len(batch)}


# ---------------------------------------------------------------------------------- operators
def _check_path(params: dict, key: str, must_exist: bool = True) -> Path:
    raw = str(params.get(key) or "").strip()
    if not raw:
        raise ValueError(f"{key}: a path is required")
    path = Path(raw).expanduser()
    if must_exist and not path.exists():
        raise ValueError(f"{key}: {path} does not exist")
    return path


def _check_name(params: dict) -> str:
    name = str(params.get("dataset") or "").strip()
    if not name:
        raise ValueError("dataset: a dataset name is required")
    return name


class _ImportBase(foo.Operator):
    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.str("path", required=True, label=self._path_label, description=self._path_help)
        default = ctx.dataset.name if ctx.dataset is not None else ""
        inputs.str("dataset", default=default, required=True, label="Dataset",
                   description="Created if it does not exist; scenes already in it are skipped")
        inputs.bool("render", default=True, label="Render BEV images")
        self._extra_inputs(inputs)
        return types.Property(inputs, view=types.View(label=self.config.label))

    def _extra_inputs(self, inputs) -> None:
        pass

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("dataset", label="Dataset")
        outputs.int("added", label="Scenes added")
        outputs.int("already_present", label="Already present (skipped)")
        outputs.int("num_samples", label="Scenes in dataset")
        return types.Property(outputs)

    def _finish(self, ctx, result: dict) -> dict:
        if not ctx.delegated:
            if ctx.dataset is not None and ctx.dataset.name == result["dataset"]:
                ctx.ops.reload_dataset()
            else:
                ctx.ops.open_dataset(result["dataset"])
            ctx.ops.notify(f"Added {result['added']} scenes to '{result['dataset']}' "
                           f"({result['already_present']} already present)", variant="success")
        return result


class ImportAV2(_ImportBase):
    _path_label = "AV2 folder"
    _path_help = "A folder holding AV2 sensor logs and/or forecasting scenarios (searched recursively)"

    @property
    def config(self):
        return foo.OperatorConfig(
            name="import_av2", label="AutoScale: import Argoverse 2 logs",
            description="Slice AV2 sensor logs / forecasting scenarios into planning scenes",
            allow_immediate_execution=True, allow_delegated_execution=True, dynamic=True,
        )

    def _extra_inputs(self, inputs) -> None:
        inputs.float("stride_s", default=0.2, min=0.1, label="Stride (s)", description="t0 spacing, a multiple of 0.1 s")

    def execute(self, ctx):
        params = dict(ctx.params)
        path, name = _check_path(params, "path"), _check_name(params)
        result = import_av2_into(name, path, stride_s=float(params.get("stride_s", 0.2)), render=bool(params.get("render", True)))
        return self._finish(ctx, result)


class ImportScenes(_ImportBase):
    _path_label = "Interchange folder"
    _path_help = "A folder of AutoScale interchange Parquet tables (docs/interchange.md)"

    @property
    def config(self):
        return foo.OperatorConfig(
            name="import_scenes", label="AutoScale: import scenes (interchange format)",
            description="Add scenes from a folder of interchange Parquet tables",
            allow_immediate_execution=True, allow_delegated_execution=True, dynamic=True,
        )

    def execute(self, ctx):
        params = dict(ctx.params)
        path, name = _check_path(params, "path"), _check_name(params)
        return self._finish(ctx, import_scenes_into(name, path, render=bool(params.get("render", True))))


class ExportScenes(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="export_scenes", label="AutoScale: export scenes (interchange format)",
            description="Write the current view's scenes as interchange Parquet tables",
            allow_immediate_execution=True, allow_delegated_execution=True, dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.str("path", required=True, label="Output folder", description="Must not exist unless overwrite is ticked")
        inputs.bool("overwrite", default=False, label="Overwrite an existing folder")
        return types.Property(inputs, view=types.View(label="Export scenes of the current view"))

    def execute(self, ctx):
        params = dict(ctx.params)
        path = _check_path(params, "path", must_exist=False)
        result = export_dataset_scenes(ctx.view, path, overwrite=bool(params.get("overwrite", False)))
        if not ctx.delegated:
            ctx.ops.notify(f"Exported {result['scenes']} scenes to {result['path']}", variant="success")
        return result

    def resolve_output(self, ctx):
        outputs = types.Object()
        outputs.str("path", label="Folder")
        outputs.int("scenes", label="Scenes")
        return types.Property(outputs)


OPERATORS = [ImportAV2, ImportScenes, ExportScenes]
