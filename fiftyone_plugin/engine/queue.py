"""Ranked annotation queues from FiftyOne views: the Python API behind the operator and the CLI.

:func:`export_view_queue` ranks the scenes of a view (by a numeric field such as ``value_q``, by a
selection's allocation order, or in the view's own order), gathers each scene's *reasons* from its
fields and its selection's run record, and writes the queue with
:func:`autoscale_core.export.export_queue` (JSONL + CSV manifests, CVAT and Label Studio task files,
copies of the BEV images). Reasons per scene (all optional, whichever exist):

* ``cluster_<method>`` — every cluster field the dataset has;
* ``value_s``, ``value_r``, ``value_u``, ``value_q`` — the value components (any letter case);
* ``selections`` — the ``sel:<name>`` tags of the scene;
* from selection ``<name>``'s run record ``sel_<name>``: ``selection``, ``selection_method``,
  ``selection_rank`` (position in the allocation order), ``predicted_gain`` (the selection's
  predicted EPDMS gain) and ``allocated_to_domain`` (scenes its domain received).

After the files are written the scenes get the tag ``queue:<name>`` (replacing an earlier export of
that name) and run ``queue_<name>`` records config and paths. Re-export with the same inputs
writes the same files. An empty view is an :class:`~autoscale_core.export.ExportError`.

:func:`annotate_view_queue` sends the same ranked scenes through FiftyOne's ``annotate()`` when an
annotation backend (CVAT, Label Studio, ...) is configured, and otherwise fails with a message
saying how to configure one (nothing is uploaded or written).
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Sequence

import fiftyone as fo
import numpy as np

from autoscale_core.export import FORMATS, ExportError, QueueItem, export_queue

from .keys import queue_run_key, root_dataset
from .runs import get_run, record_run

QUEUE_TAG_PREFIX = "queue:"
SELECTION_TAG_PREFIX = "sel:"
VALUE_FIELDS = ("value_s", "value_r", "value_u", "value_q")


class QueueError(ExportError):
    """Bad queue request (empty view, missing rank field, unknown selection, no backend)."""


def default_out_dir() -> Path:
    """``$AUTOSCALE_HOME/queues`` (``~/.autoscale/queues``)."""
    from .scenes import autoscale_home

    return autoscale_home() / "queues"


# ---------------------------------------------------------------------------------- reasons
def reason_fields(collection) -> list[str]:
    """The per-scene reason fields present: ``cluster_*`` and the value components."""
    schema = collection.get_field_schema()
    clusters = sorted(n for n in schema if n.startswith("cluster_"))
    values = [n for n in schema if n.lower() in VALUE_FIELDS]
    return clusters + sorted(values, key=str.lower)


def selection_record(dataset: fo.Dataset, selection: str) -> dict:
    """Results of selection ``selection``'s run record ``sel_<name>`` (raises QueueError if absent)."""
    key = "sel_" + selection.replace("-", "_")
    if not dataset.has_run(key):
        raise QueueError(f"selection {selection!r} has no run record {key!r} on dataset {dataset.name!r}")
    record = get_run(dataset, key)
    return {"method": record["method"], "config": record["config"] or {}, **(record["results"] or {})}


def _infer_selection(tags: list[list[str]]) -> str | None:
    """The one selection every scene of the view belongs to, if there is exactly one."""
    common = None
    for sample_tags in tags:
        names = {t[len(SELECTION_TAG_PREFIX):] for t in sample_tags or [] if t.startswith(SELECTION_TAG_PREFIX)}
        common = names if common is None else common & names
        if not common:
            return None
    return next(iter(common)) if common and len(common) == 1 else None


def _finite(value) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _gather(view, selection: str | None) -> tuple[dict[str, list], dict | None]:
    """Columns of reason values (one list per field, view order) and the selection record."""
    fields = reason_fields(view)
    columns = dict(zip(["scene_id", "filepath", "tags", *fields],
                       view.values(["scene_id", "filepath", "tags", *fields])))
    if selection is None:
        selection = _infer_selection(columns["tags"])
    record = selection_record(root_dataset(view), selection) if selection else None
    if record is not None:
        record["name"] = selection
    return columns, record


# ---------------------------------------------------------------------------------- ranking
def rank_order(view, rank_field: str | None, descending: bool, record: dict | None,
               scene_ids: Sequence[str], selection_order: bool = True) -> tuple[np.ndarray, list]:
    """Positions of the view's scenes in queue order and each scene's score (None without a field).

    Priority: ``rank_field`` (missing values are an error) > the selection's allocation order
    (scenes it did not choose go last, in view order) > the view's order.
    """
    n = len(scene_ids)
    if rank_field:
        if not view.has_field(rank_field):
            raise QueueError(f"rank field {rank_field!r} does not exist on dataset {root_dataset(view).name!r}")
        values = view.values(rank_field)
        missing = sum(v is None for v in values)
        if missing:
            raise QueueError(f"rank field {rank_field!r} is missing on {missing} of {n} scene(s) of the view")
        try:
            scores = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise QueueError(f"rank field {rank_field!r} is not numeric") from exc
        if scores.ndim != 1:
            raise QueueError(f"rank field {rank_field!r} must hold one number per scene")
        keys = -scores if descending else scores
        order = np.lexsort((np.asarray(scene_ids, dtype=object).astype(str), keys))  # ties by scene_id
        return order, [float(s) for s in scores]
    if selection_order and record is not None and record.get("scene_ids"):
        position = {s: i for i, s in enumerate(record["scene_ids"])}
        keys = np.array([position.get(s, len(position) + i) for i, s in enumerate(scene_ids)])
        return np.argsort(keys, kind="stable"), [None] * n
    return np.arange(n), [None] * n


def _domain_of(columns: dict, record: dict, i: int) -> str | None:
    field = (record.get("config") or {}).get("domain_field") or (record.get("config") or {}).get("cluster_field")
    if field and field in columns:
        return str(columns[field][i])
    return None


def build_queue_items(view, *, rank_field: str | None = None, descending: bool = True,
                      selection: str | None = None, selection_order: bool = True) -> tuple[list[QueueItem], dict | None]:
    """The ranked :class:`QueueItem` list of ``view`` (rank 1 first) and the selection record used."""
    if len(view) == 0:
        raise QueueError(f"the view of dataset {root_dataset(view).name!r} is empty: nothing to export")
    columns, record = _gather(view, selection)
    scene_ids = columns["scene_id"]
    if any(s is None for s in scene_ids):
        raise QueueError("every scene needs a scene_id: is this an AutoScale dataset?")
    order, scores = rank_order(view, rank_field, descending, record, scene_ids, selection_order)
    sel_position = {s: i + 1 for i, s in enumerate(record.get("scene_ids") or [])} if record else {}
    allocation = record.get("allocation") or {} if record else {}
    value_fields = [f for f in columns if f not in ("scene_id", "filepath", "tags")]
    items = []
    for rank, i in enumerate(order, start=1):
        reasons = {f: _finite(columns[f][i]) for f in value_fields}
        sels = sorted(t[len(SELECTION_TAG_PREFIX):] for t in columns["tags"][i] or [] if t.startswith(SELECTION_TAG_PREFIX))
        if sels:
            reasons["selections"] = ";".join(sels)
        if record is not None:
            reasons["selection"] = record["name"]
            reasons["selection_method"] = record.get("method")
            reasons["selection_rank"] = sel_position.get(scene_ids[i])
            reasons["predicted_gain"] = _finite(record.get("predicted_gain"))
            domain = _domain_of(columns, record, i)
            if domain is not None and domain in allocation:
                reasons["allocated_to_domain"] = allocation[domain]
        items.append(QueueItem(scene_id=str(scene_ids[i]), media_path=columns["filepath"][i], rank=rank,
                               score=scores[i], reasons=reasons))
    return items, record


# ---------------------------------------------------------------------------------- export
def export_view_queue(view, out_dir: str | os.PathLike | None, name: str, rank_field: str | None = None, *,
                      descending: bool = True, selection: str | None = None, selection_order: bool = True,
                      formats: Sequence[str] = FORMATS, copy_media: bool = True, tag: bool = True,
                      overwrite: bool = False) -> dict:
    """Export the scenes of ``view`` as ranked annotation queue ``name`` under ``out_dir``.

    Args:
        view: the scenes to queue (a dataset, view or saved selection view).
        out_dir: parent folder; the queue goes to ``out_dir/name`` (default :func:`default_out_dir`).
        name: queue name (letters, digits, ``. _ -``).
        rank_field: numeric field to rank by (e.g. ``value_q``); None = the selection's order.
        descending: highest ``rank_field`` first.
        selection: selection name whose run record supplies order and reasons; default: the one
            ``sel:<name>`` tag every scene of the view carries, if any.
        selection_order: without ``rank_field``, order by the selection's allocation order
            (False: keep the view's order).
        formats: subset of ``("jsonl", "csv", "cvat", "labelstudio")``.
        copy_media: copy the BEV images into the queue folder (self-contained).
        tag: tag the queued scenes ``queue:<name>`` and record run ``queue_<name>``.
        overwrite: replace a previous export in ``out_dir/name`` (only its own files; a
            non-empty folder is refused otherwise).

    Returns:
        {"name", "count", "dir", "files": {format: path}, "selection", "rank_field", "tag", "run_key"}.
    """
    out_dir = Path(out_dir) if out_dir else default_out_dir()
    items, record = build_queue_items(view, rank_field=rank_field, descending=descending, selection=selection,
                                      selection_order=selection_order)
    files = export_queue(items, out_dir, name, formats=list(formats), copy_media=copy_media, overwrite=overwrite)
    summary = {
        "name": name, "count": len(items), "dir": str(Path(out_dir).resolve() / name), "files": files,
        "selection": record["name"] if record else None, "rank_field": rank_field, "descending": bool(descending),
        "first_scene_ids": [it.scene_id for it in items[:10]],
    }
    if tag:
        dataset = root_dataset(view)
        queue_tag = QUEUE_TAG_PREFIX + name
        dataset.untag_samples(queue_tag)  # re-export replaces the previous queue of this name
        view.tag_samples(queue_tag)
        key = queue_run_key(name)
        record_run(dataset, key, "export_queue",
                   {"name": name, "out_dir": str(out_dir), "rank_field": rank_field, "descending": bool(descending),
                    "selection": summary["selection"], "formats": list(formats), "copy_media": bool(copy_media)},
                   {**summary, "scene_ids": [it.scene_id for it in items]})
        summary.update(tag=queue_tag, run_key=key)
    return summary


# ---------------------------------------------------------------------------------- annotate()
def configured_backends() -> dict[str, str]:
    """Annotation backends with enough configuration to connect: {name: url}."""
    configured = {}
    for name, cfg in (fo.annotation_config.backends or {}).items():
        cfg = dict(cfg or {})
        url = cfg.get("url")
        has_auth = any(cfg.get(k) for k in ("api_key", "username", "password", "email", "token"))
        if url and has_auth:
            configured[name] = url
    return configured


def annotate_view_queue(view, anno_key: str, *, backend: str, rank_field: str | None = None,
                        descending: bool = True, **annotate_kwargs) -> Any:
    """Send the ranked scenes of ``view`` to annotation backend ``backend`` via FiftyOne's ``annotate()``.

    The backend must be configured (``fo.annotation_config``: a ``url`` plus credentials, e.g.
    ``FIFTYONE_CVAT_URL`` + ``FIFTYONE_CVAT_USERNAME``/``FIFTYONE_CVAT_PASSWORD`` or
    ``FIFTYONE_LABELSTUDIO_URL`` + ``FIFTYONE_LABELSTUDIO_API_KEY``); otherwise this raises
    QueueError before contacting anything. ``annotate_kwargs`` go to ``annotate()`` (label_field,
    label_type, classes, ...). Returns FiftyOne's annotation results.
    """
    if len(view) == 0:
        raise QueueError(f"the view of dataset {root_dataset(view).name!r} is empty: nothing to annotate")
    available = configured_backends()
    if backend not in available:
        raise QueueError(
            f"annotation backend {backend!r} is not configured (configured: {sorted(available) or 'none'}). "
            f"Set its url and credentials (e.g. FIFTYONE_{backend.upper()}_URL and an API key/username), or use "
            "export_view_queue / the export_annotation_queue operator to write CVAT and Label Studio task files instead"
        )
    items, _ = build_queue_items(view, rank_field=rank_field, descending=descending)
    order = [it.scene_id for it in items]
    ranked = view.select_by("scene_id", order, ordered=True)
    return ranked.annotate(anno_key, backend=backend, **annotate_kwargs)


__all__ = ["FORMATS", "QueueError", "annotate_view_queue", "build_queue_items", "configured_backends",
           "default_out_dir", "export_view_queue", "queue_run_key", "reason_fields"]
