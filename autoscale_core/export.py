"""Ranked annotation-queue export: a manifest (JSONL + CSV) plus CVAT and Label Studio task files.

Input is a list of :class:`QueueItem` (already ranked). Output folder layout::

    <out_dir>/<queue name>/
        manifest.jsonl        one JSON object per scene, in rank order
        manifest.csv          the same, flat columns
        media/<rank>_<scene_id>.png      copies of the BEV images (so the folder is self-contained)
        cvat/annotations.xml  CVAT for images 1.1, one <image> per scene with tags for its reasons
        labelstudio/tasks.json Label Studio tasks (data.image + meta with the reasons)

Files are written to a temporary folder and moved in at the end, so a failure leaves the
previous export intact. An existing non-empty ``<out_dir>/<queue name>`` is refused unless
``overwrite``; then only the files the previous export wrote are replaced (its manifest
``.autoscale-export.json``, see :mod:`autoscale_core.export_folder`), never user files.
"""

from __future__ import annotations

import csv
import json
import math
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence
from xml.sax.saxutils import quoteattr

from .export_folder import ExportTargetError, check_export_target, publish_export

FORMATS = ("jsonl", "csv", "cvat", "labelstudio")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ExportError(ValueError):
    """Bad export request: empty queue, missing media, unsafe name or path."""


@dataclass
class QueueItem:
    """One scene in the annotation queue.

    ``reasons`` holds why it was chosen, e.g. {"cluster": 3, "value_s": 0.8, "predicted_gain": 0.01}.
    """

    scene_id: str
    media_path: str
    rank: int
    score: float | None = None
    reasons: dict = field(default_factory=dict)


def _check_name(name: str) -> None:
    if not _SAFE_NAME.match(name or ""):
        raise ExportError(
            f"queue name {name!r} is not allowed: use letters, digits, '.', '_' and '-' "
            "(it becomes a folder name and must not contain path separators)"
        )


def resolve_inside(base_dir: str | os.PathLike, relative: str | os.PathLike) -> Path:
    """``base_dir/relative`` resolved, refusing anything that escapes ``base_dir``."""
    base = Path(base_dir).resolve()
    target = (base / relative).resolve()
    if target != base and base not in target.parents:
        raise ExportError(f"export path {relative!s} escapes the export directory {base}")
    return target


def _clean(value):
    """JSON-safe scalars: NaN/inf become None, numpy scalars become Python numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def export_queue(
    items: Sequence[QueueItem],
    out_dir: str | os.PathLike,
    name: str,
    formats: Sequence[str] = FORMATS,
    copy_media: bool = True,
    overwrite: bool = False,
) -> dict[str, str]:
    """Write the ranked queue; returns {format: path}. See the module docstring for the layout."""
    _check_name(name)
    if not items:
        raise ExportError(f"annotation queue {name!r} is empty: nothing to export")
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise ExportError(f"unknown export format(s) {unknown}; choose from {list(FORMATS)}")
    missing = [it.media_path for it in items if not Path(it.media_path).is_file()]
    if missing:
        raise ExportError(f"{len(missing)} media file(s) missing, e.g. {missing[0]}")
    ranks = [it.rank for it in items]
    if len(set(ranks)) != len(ranks):
        raise ExportError("queue ranks must be unique")

    out_root = Path(out_dir)
    try:
        out_root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ExportError(f"cannot create export directory {out_root}: {exc}") from exc
    if not os.access(out_root, os.W_OK):
        raise ExportError(f"export directory {out_root} is not writable")
    final_dir = resolve_inside(out_root, name)
    _check_target(final_dir, overwrite)

    ordered = sorted(items, key=lambda it: it.rank)
    tmp_dir = Path(tempfile.mkdtemp(dir=out_root, prefix=f".{name}-tmp-"))
    try:
        rows = _write_media(ordered, tmp_dir, copy_media)
        written = {}
        if "jsonl" in formats:
            written["jsonl"] = _write_jsonl(rows, tmp_dir / "manifest.jsonl")
        if "csv" in formats:
            written["csv"] = _write_csv(rows, tmp_dir / "manifest.csv")
        if "cvat" in formats:
            written["cvat"] = _write_cvat(rows, tmp_dir / "cvat" / "annotations.xml", name)
        if "labelstudio" in formats:
            written["labelstudio"] = _write_labelstudio(rows, tmp_dir / "labelstudio" / "tasks.json")
        publish_export(tmp_dir, final_dir, overwrite=overwrite, what=f"annotation queue {name!r}")
    except ExportTargetError as exc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise ExportError(str(exc)) from exc
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise
    return {fmt: str(final_dir / Path(path).relative_to(tmp_dir)) for fmt, path in written.items()}


def _check_target(final_dir: Path, overwrite: bool) -> None:
    try:
        check_export_target(final_dir, overwrite=overwrite, what=f"annotation queue {final_dir.name!r}")
    except ExportTargetError as exc:
        raise ExportError(str(exc)) from exc


def _write_media(items: Sequence[QueueItem], folder: Path, copy_media: bool) -> list[dict]:
    media_dir = folder / "media"
    media_dir.mkdir(parents=True)
    rows = []
    for it in items:
        source = Path(it.media_path)
        if copy_media:
            target = media_dir / f"{it.rank:06d}_{_safe_file_part(it.scene_id)}{source.suffix}"
            shutil.copyfile(source, target)
            media = str(target.relative_to(folder))
        else:
            media = str(source.resolve())
        rows.append(
            {
                "rank": int(it.rank),
                "scene_id": str(it.scene_id),
                "score": _clean(it.score),
                "media": media,
                "source_media": str(source.resolve()),
                **{f"reason_{k}": _clean(v) for k, v in sorted(it.reasons.items())},
            }
        )
    return rows


def _safe_file_part(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]", "_", str(text))[:100]


def _write_jsonl(rows: list[dict], path: Path) -> Path:
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row, sort_keys=True) + "\n")
    return path


def _write_csv(rows: list[dict], path: Path) -> Path:
    columns = sorted({k for row in rows for k in row}, key=lambda c: (c != "rank", c != "scene_id", c))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
    return path


def _write_cvat(rows: list[dict], path: Path, name: str) -> Path:
    """CVAT for images 1.1: each image carries its rank and reasons as tag attributes."""
    path.parent.mkdir(parents=True)
    lines = ['<?xml version="1.0" encoding="utf-8"?>', "<annotations>", "  <version>1.1</version>",
             f"  <meta><task><name>{_xml_text(name)}</name><size>{len(rows)}</size></task></meta>"]
    for i, row in enumerate(rows):
        file_name = Path(row["media"]).name
        lines.append(f"  <image id={quoteattr(str(i))} name={quoteattr(file_name)}>")
        lines.append("    <tag label=\"queue\" source=\"autoscale\">")
        for key, value in row.items():
            if key.startswith("reason_") or key in ("rank", "scene_id", "score"):
                lines.append(f"      <attribute name={quoteattr(key)}>{_xml_text(value)}</attribute>")
        lines.append("    </tag>")
        lines.append("  </image>")
    lines.append("</annotations>")
    path.write_text("\n".join(lines) + "\n")
    return path


def _xml_text(value) -> str:
    return "" if value is None else str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _write_labelstudio(rows: list[dict], path: Path) -> Path:
    """Label Studio tasks; images are referenced through local-files storage relative paths."""
    path.parent.mkdir(parents=True)
    tasks = [
        {
            "id": row["rank"],
            "data": {"image": f"/data/local-files/?d={row['media']}", "scene_id": row["scene_id"]},
            "meta": {k: v for k, v in row.items() if k not in ("media",)},
        }
        for row in rows
    ]
    path.write_text(json.dumps(tasks, indent=1, sort_keys=True))
    return path
