"""Operator: export the target scenes as a ranked annotation queue (manifest + CVAT + Label Studio).

A thin form over :func:`fiftyone_plugin.engine.queue.export_view_queue`; the same call works from Python
and from ``autoscale export queue``.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone.operators as foo
import fiftyone.operators.types as types

from autoscale_core.export import _SAFE_NAME, FORMATS
from autoscale_core.export_folder import ExportTargetError, check_export_target

from ..engine.queue import QUEUE_TAG_PREFIX, configured_backends, default_out_dir, export_view_queue
from . import ui

SELECTION_ORDER = "(selection order)"
VIEW_ORDER = "(view order)"
AUTO_SELECTION = "(auto: the view's selection tag)"


def _selection_names(dataset) -> list[str]:
    return sorted(t[len("sel:"):] for t in dataset.distinct("tags") if t.startswith("sel:"))


def validate_export_params(params: dict, view, dataset) -> dict:
    """Clean the form's values; raises ``ValueError`` naming the bad input."""
    name = str(params.get("queue_name") or "").strip()
    if not _SAFE_NAME.match(name):
        raise ValueError(f"queue name: {name!r} is not allowed (letters, digits, '.', '_', '-'; no slashes)")
    if len(view) == 0:
        raise ValueError("target: the chosen samples are empty; nothing to export")
    rank_by = params.get("rank_by") or SELECTION_ORDER
    rank_field = None if rank_by in (SELECTION_ORDER, VIEW_ORDER) else rank_by
    if rank_field is not None and not dataset.has_field(rank_field):
        raise ValueError(f"rank by: field {rank_field!r} does not exist")
    selection = params.get("selection") or AUTO_SELECTION
    selection = None if selection == AUTO_SELECTION else selection
    if selection is not None and selection not in _selection_names(dataset):
        raise ValueError(f"selection: {selection!r} is not a selection of this dataset (tag sel:{selection})")
    formats = list(params.get("formats") or FORMATS)
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ValueError(f"formats: unknown {unknown}; choose from {list(FORMATS)}")
    out_dir = str(params.get("out_dir") or "").strip() or str(default_out_dir())
    overwrite = bool(params.get("overwrite", False))
    try:
        check_export_target(Path(out_dir).expanduser() / name, overwrite=overwrite, what=f"annotation queue {name!r}")
    except ExportTargetError as exc:
        raise ValueError(f"queue name: {exc}") from exc
    return {"overwrite": overwrite, "name": name, "rank_field": rank_field, "descending": bool(params.get("descending", True)),
            "selection": selection, "selection_order": rank_by == SELECTION_ORDER, "formats": formats, "out_dir": out_dir,
            "copy_media": bool(params.get("copy_media", True))}


class ExportAnnotationQueue(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="export_annotation_queue",
            label="AutoScale: export annotation queue",
            description="Rank the target scenes (by a score or a selection's allocation order) and write "
                        "a JSONL/CSV manifest with reasons plus CVAT and Label Studio task files",
            icon="assignment",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        view = ui.target_input(inputs, ctx)
        ui.field_input(inputs, ctx, "rank_by", kind="numeric", prefixes=("value_", "eval_", "emb_", "cluster_"),
                       label="Rank by", description="a numeric score field, or the selection's allocation order",
                       extra_choices=[SELECTION_ORDER, VIEW_ORDER], default=SELECTION_ORDER)
        inputs.bool("descending", default=True, label="Highest score first")
        selections = _selection_names(ctx.dataset)
        if selections:
            dropdown = types.Dropdown(label="Selection (reasons and order)")
            for choice in [AUTO_SELECTION, *selections]:
                dropdown.add_choice(choice, label=choice)
            inputs.enum("selection", dropdown.values(), default=AUTO_SELECTION, label="Selection", view=dropdown,
                        description="whose run record gives the allocation order and predicted gain")
        inputs.str("queue_name", default="queue", required=True, label="Queue name",
                   description=f"folder name; the scenes get tag {QUEUE_TAG_PREFIX}<name>")
        inputs.str("out_dir", default=str(default_out_dir()), required=True, label="Output directory")
        inputs.list("formats", types.String(), default=list(FORMATS), label="Formats",
                    view=types.AutocompleteView(multiple=True, choices=[types.Choice(value=f, label=f) for f in FORMATS],
                                                allow_user_input=False, allow_duplicates=False))
        inputs.bool("copy_media", default=True, label="Copy the BEV images into the queue folder")
        inputs.bool("overwrite", default=False, label="Replace a previous export of this queue (only its own files)")
        backends = configured_backends()
        inputs.view("annotate_note", types.Notice(label="Annotation backends", description=(
            f"Configured for annotate(): {', '.join(sorted(backends))}" if backends else
            "No annotation backend is configured; the queue is written as import-ready files. "
            "With CVAT/Label Studio configured, use fiftyone_plugin.engine.queue.annotate_view_queue.")))
        ui.check_form(inputs, lambda: validate_export_params(dict(ctx.params), view, ctx.dataset) and None)
        return types.Property(inputs, view=types.View(label="Export annotation queue"))

    def execute(self, ctx):
        view = ctx.target_view()
        p = validate_export_params(dict(ctx.params), view, ctx.dataset)
        ctx.set_progress(progress=0.05, label=f"ranking {len(view)} scenes")
        summary = export_view_queue(view, p["out_dir"], p["name"], p["rank_field"], descending=p["descending"],
                                    selection=p["selection"], selection_order=p["selection_order"], formats=p["formats"], copy_media=p["copy_media"],
                                    overwrite=p["overwrite"])
        ctx.set_progress(progress=1.0, label=f"wrote {summary['count']} scenes to {summary['dir']}")
        ui.finish(ctx, f"Exported {summary['count']} scenes to {summary['dir']}", view=_queue_view(ctx.dataset, summary))
        return {"dir": summary["dir"], "count": summary["count"], "tag": summary["tag"],
                "selection": summary["selection"] or "", "files": summary["files"]}

    def resolve_output(self, ctx):
        return ui.result_view(
            ("str", "dir", "Queue folder"),
            ("int", "count", "Scenes"),
            ("str", "tag", "Tag"),
            ("str", "selection", "Selection"),
            ("json", "files", "Files"),
        )


def _queue_view(dataset, summary: dict):
    """The queued scenes in queue order (from the run record's ranked scene ids)."""
    from ..engine.runs import get_run

    ids = get_run(dataset, summary["run_key"])["results"]["scene_ids"]
    return dataset.select_by("scene_id", ids, ordered=True)


OPERATORS = [ExportAnnotationQueue]
