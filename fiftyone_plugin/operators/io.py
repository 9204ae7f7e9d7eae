"""App forms for importing AV2 logs / interchange folders and exporting scenes; the work is
:mod:`fiftyone_plugin.engine.io`'s.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..engine.io import export_dataset_scenes, import_av2_into, import_scenes_into
from . import ui

STRIDES_S = (0.1, 0.2, 0.5, 1.0, 2.0)


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


def _check_av2_folder(params: dict) -> str:
    """Inline check: the folder holds AV2 logs (the importer's own finder); returns a summary."""
    from autoscale_core.io.av2 import find_av2_logs

    path = _check_path(params, "path")
    try:
        logs = find_av2_logs(path)
    except ValueError as exc:
        raise ValueError(f"path: {exc}") from exc
    kinds = [kind for kind, _ in logs]
    return f"{kinds.count('sensor')} sensor log(s) and {kinds.count('scenario')} forecasting scenario(s) found"


def _check_interchange_folder(params: dict) -> str:
    from autoscale_core.io.interchange import TABLES

    path = _check_path(params, "path")
    if not path.is_dir():
        raise ValueError(f"path: {path} is not a folder of interchange tables")
    missing = [f"{t}.parquet" for t in TABLES if not (path / f"{t}.parquet").is_file()]
    if missing:
        raise ValueError(f"path: {path} is not an interchange folder (missing {', '.join(missing)})")
    return "interchange tables found"


def stride_input(inputs: types.Object, default: float) -> None:
    """The "Stride (s)" dropdown of the log importers (spacing of scene start times in a log)."""
    dropdown = types.Dropdown(label="Stride (s)", description="Spacing of scene start times t0 within a log")
    for stride in STRIDES_S:
        dropdown.add_choice(stride, label=f"{stride:g} s")
    inputs.enum("stride_s", dropdown.values(), default=default, label="Stride (s)", view=dropdown)


def _newest_samples(dataset: fo.Dataset, count: int):
    """The ``count`` most recently added samples: what an import or generation just wrote."""
    return dataset.sort_by("created_at", reverse=True).limit(int(count))


class _ImportBase(foo.Operator):
    _check_folder = staticmethod(lambda params: "")

    def resolve_input(self, ctx):
        inputs = types.Object()
        inputs.str("path", required=True, label=self._path_label, description=self._path_help)
        default = ctx.dataset.name if ctx.dataset is not None else ""
        names = fo.list_datasets()
        inputs.str("dataset", default=default, required=True, label="Dataset",
                   description="An existing dataset (scenes already in it are skipped) or a new name",
                   view=types.AutocompleteView(choices=[types.Choice(value=n, label=n) for n in names],
                                               allow_user_input=True, allow_duplicates=False))
        inputs.bool("render", default=True, label="Render BEV images")
        self._extra_inputs(inputs)
        params = dict(ctx.params)
        if params.get("path"):
            try:
                found = self._check_folder(params)
            except ValueError as exc:
                ui.show_error(inputs, str(exc))
            else:
                name = str(params.get("dataset") or default).strip()
                where = (f"adds its new scenes to '{name}' ({len(fo.load_dataset(name))} scenes now)"
                         if name in names else f"creates dataset '{name}'")
                inputs.view("found", types.Notice(label=f"{found}; the import {where}"))
        ui.check_form(inputs, lambda: _check_name(params) and None, name="dataset_error")
        return types.Property(inputs, view=types.View(label=self.config.label))

    def _extra_inputs(self, inputs) -> None:
        pass

    def resolve_output(self, ctx):
        return ui.result_view(
            ("str", "dataset", "Dataset"),
            ("int", "added", "Scenes added"),
            ("int", "already_present", "Already present (skipped)"),
            ("int", "num_samples", "Scenes in dataset"),
        )

    def _finish(self, ctx, result: dict) -> dict:
        message = (f"Added {result['added']} scenes to '{result['dataset']}' "
                   f"({result['already_present']} already present)")
        if ctx.delegated:
            return result
        if ctx.dataset is not None and ctx.dataset.name == result["dataset"]:
            # Show what was written: the newly added scenes.
            ui.finish(ctx, message, view=_newest_samples(ctx.dataset, result["added"]) if result["added"] else None)
        else:
            ctx.ops.open_dataset(result["dataset"])
            ui.finish(ctx, message, reload=False)
        return result


class ImportAV2(_ImportBase):
    _path_label = "AV2 folder"
    _path_help = "A folder holding AV2 sensor logs and/or forecasting scenarios (searched recursively)"
    _check_folder = staticmethod(_check_av2_folder)

    @property
    def config(self):
        return ui.operator_config("import_av2", "AutoScale: import Argoverse 2 logs",
                                  "Slice AV2 sensor logs / forecasting scenarios into planning scenes", "file_download")

    def _extra_inputs(self, inputs) -> None:
        stride_input(inputs, default=0.2)

    def execute(self, ctx):
        params = dict(ctx.params)
        path, name = _check_path(params, "path"), _check_name(params)
        ctx.set_progress(progress=0.0, label=f"reading AV2 logs under {path}")  # the importer has no finer progress
        result = import_av2_into(name, path, stride_s=float(params.get("stride_s", 0.2)), render=bool(params.get("render", True)))
        return self._finish(ctx, result)


class ImportScenes(_ImportBase):
    _path_label = "Interchange folder"
    _path_help = "A folder of AutoScale interchange Parquet tables (docs/interchange.md)"
    _check_folder = staticmethod(_check_interchange_folder)

    @property
    def config(self):
        return ui.operator_config("import_scenes", "AutoScale: import scenes (interchange format)",
                                  "Add scenes from a folder of interchange Parquet tables", "file_download")

    def execute(self, ctx):
        params = dict(ctx.params)
        path, name = _check_path(params, "path"), _check_name(params)
        ctx.set_progress(progress=0.0, label=f"reading interchange tables in {path}")
        return self._finish(ctx, import_scenes_into(name, path, render=bool(params.get("render", True))))


def _check_export(params: dict, view) -> None:
    from autoscale_core.export_folder import ExportTargetError, check_export_target

    path = _check_path(params, "path", must_exist=False)
    try:
        check_export_target(path, overwrite=bool(params.get("overwrite", False)), what="scene export")
    except ExportTargetError as exc:
        raise ValueError(f"path: {exc}") from exc
    if len(view) == 0:
        raise ValueError("target: the chosen samples are empty; nothing to export")


class _ExportBase(foo.Operator):
    """An export form: the target samples, an output folder and an overwrite box, checked inline
    with the same function that ``execute`` runs. Subclasses set the labels, ``_check_target`` and
    ``_export(view, path, overwrite) -> {"path", "scenes", ...}``."""

    _form_label = "Export scenes"
    _path_help = "Must be new or empty unless overwrite is ticked"
    _overwrite_label = "Replace a previous export there (only its own files)"
    _check_target = staticmethod(_check_export)

    def _export(self, view, path: Path, overwrite: bool) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)
        if view is None:
            return types.Property(inputs)
        inputs.str("path", required=True, label="Output folder", description=self._path_help)
        inputs.bool("overwrite", default=False, label=self._overwrite_label)
        if ctx.params.get("path"):
            ui.check_form(inputs, lambda: self._check_target(dict(ctx.params), view))
        return types.Property(inputs, view=types.View(label=self._form_label))

    def execute(self, ctx):
        params = dict(ctx.params)
        view = ctx.target_view()
        self._check_target(params, view)
        ctx.set_progress(progress=0.0, label=f"exporting {len(view)} scenes")
        result = self._export(view, _check_path(params, "path", must_exist=False), bool(params.get("overwrite", False)))
        ui.finish(ctx, f"Exported {result['scenes']} scenes to {result['path']}", reload=False)
        return result

    def resolve_output(self, ctx):
        return ui.result_view(("str", "path", "Folder"), ("int", "scenes", "Scenes"))


class ExportScenes(_ExportBase):
    @property
    def config(self):
        return ui.operator_config("export_scenes", "AutoScale: export scenes (interchange format)",
                                  "Write the target scenes as interchange Parquet tables", "file_upload")

    def _export(self, view, path: Path, overwrite: bool) -> dict:
        return export_dataset_scenes(view, path, overwrite=overwrite)


OPERATORS = [ImportAV2, ImportScenes, ExportScenes]
