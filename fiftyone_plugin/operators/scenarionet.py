"""App forms for ScenarioNet import/export; the work is :mod:`fiftyone_plugin.engine.scenarionet`'s.
"""

from __future__ import annotations

from pathlib import Path

from autoscale_core.io.scenarionet import find_scenario_files

from ..engine.scenarionet import export_view_scenarionet, import_scenarionet_into
from . import ui
from .io import _check_name, _check_path, _ExportBase, _ImportBase, stride_input

DELEGATE_FROM_FILES = 20  # more files than this: the App schedules the import by default


def _check_scenarionet_path(params: dict) -> str:
    """Inline check: the path holds ScenarioNet scene files (the importer's own finder)."""
    path = _check_path(params, "path")
    try:
        files = find_scenario_files(path)
    except ValueError as exc:
        raise ValueError(f"path: {exc}") from exc
    return f"{len(files)} ScenarioNet scene file(s) found"


class ImportScenarioNet(_ImportBase):
    _path_label = "ScenarioNet file or folder"
    _path_help = ("A scene .pkl, a ScenarioNet database folder (dataset_summary.pkl) or a folder of "
                  "scene files (searched recursively)")
    _check_folder = staticmethod(_check_scenarionet_path)

    @property
    def config(self):
        return ui.operator_config("import_scenarionet", "AutoScale: import ScenarioNet scenes (nuScenes, Waymo, …)",
                                  "Slice ScenarioNet scenario files into planning scenes", "file_download")

    def resolve_delegation(self, ctx):
        """Large folders default to a delegated (scheduled) run."""
        try:
            return len(find_scenario_files(_check_path(dict(ctx.params), "path"))) > DELEGATE_FROM_FILES
        except ValueError:
            return None

    def _extra_inputs(self, inputs) -> None:
        stride_input(inputs, default=0.5)
        inputs.bool("lenient", default=False, label="Skip bad files",
                    description="Skip (and report) unreadable or malformed files instead of stopping")

    def execute(self, ctx):
        params = dict(ctx.params)
        path, name = _check_path(params, "path"), _check_name(params)
        result = import_scenarionet_into(
            name, path, stride_s=float(params.get("stride_s", 0.5)), strict=not params.get("lenient", False),
            render=bool(params.get("render", True)), progress=ui.progress_reporter(ctx),
        )
        result.pop("report", None)
        return self._finish(ctx, result)


def _check_export_target(params: dict, view) -> None:
    path = _check_path(params, "path", must_exist=False)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not params.get("overwrite", False):
        raise ValueError(f"path: {path} is not an empty folder: tick overwrite (replaces only the files "
                         "this export writes) or choose another folder")
    if len(view) == 0:
        raise ValueError("target: the chosen samples are empty; nothing to export")


class ExportScenarioNet(_ExportBase):
    _form_label = "Export ScenarioNet scenes"
    _path_help = "Empty or new, unless overwrite is ticked"
    _overwrite_label = "Overwrite the files this export writes"
    _check_target = staticmethod(_check_export_target)

    @property
    def config(self):
        return ui.operator_config("export_scenarionet", "AutoScale: export scenes as ScenarioNet files",
                                  "Write the target scenes as a ScenarioNet database folder (MetaDrive, ScenarioNet tools)", "file_upload")

    def _export(self, view, path: Path, overwrite: bool) -> dict:
        return export_view_scenarionet(view, path, overwrite=overwrite)


OPERATORS = [ImportScenarioNet, ExportScenarioNet]
