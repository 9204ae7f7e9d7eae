"""ScenarioNet scenes (nuScenes, Waymo, nuPlan, … converted by metadriverse/scenarionet) in FiftyOne.

* :func:`import_scenarionet_into` — ``autoscale import scenarionet PATH --dataset NAME`` and the
  ``import_scenarionet`` operator.
* :func:`export_view_scenarionet` — ``autoscale export scenarionet --dataset D [--view V |
  --selection S] DIR`` and the ``export_scenarionet`` operator: ScenarioNet scene files for
  MetaDrive and other ScenarioNet tools.

Files are read one at a time; their scenes are computed and validated, then added in bulk per
chunk of about ``INGEST_CHUNK_SCENES`` scenes (memory bounded by one chunk). A bad file raises
(default) before any of *its* scenes are written — chunks written before it stay — or, with
``strict=False``, is skipped and named in the report. Scenes already in the dataset (same
``scene_id``) are skipped, so importing twice adds nothing and re-running an interrupted import
resumes it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import fiftyone as fo

from autoscale_core.io.driving_log import ImportReport
from autoscale_core.io.scenarionet import find_scenario_files, iter_scenarionet
from autoscale_core.scene import SceneBatch

from .io import _ingest

INGEST_CHUNK_SCENES = 500  # scenes written per bulk add (FiftyOne's per-write overhead is ~1 s)


def import_scenarionet_into(
    name: str,
    path: str | os.PathLike,
    *,
    stride_s: float = 0.5,
    history_s: float = 2.0,
    future_s: float = 4.0,
    strict: bool = True,
    render: bool = True,
    skip_existing: bool = True,
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Import every ScenarioNet scene file under ``path`` into dataset ``name`` (created if missing).

    Returns counts (``scenes``, ``added``, ``already_present``, ``num_samples``, ``files``) and
    the importer's report (``report``: logs, windows, skipped by reason, warnings).
    """
    report = ImportReport()
    files = find_scenario_files(path, report, strict)
    totals = {"dataset": name, "scenes": 0, "added": 0, "already_present": 0, "num_samples": 0}
    pending: list[SceneBatch] = []  # a few files' scenes: one bulk write per chunk, not per file

    def flush() -> None:
        if not pending:
            return
        result = _ingest(name, SceneBatch.concatenate(pending), render=render, skip_existing=skip_existing)
        pending.clear()
        for key in ("scenes", "added", "already_present"):
            totals[key] += result[key]
        totals["num_samples"] = result["num_samples"]
        if progress is not None:
            progress(done / max(len(files), 1), f"written: {totals['added']} scenes added so far")

    done = 0
    for file, batch in iter_scenarionet(path, stride_s=stride_s, history_s=history_s, future_s=future_s,
                                        strict=strict, report=report, files=files):
        pending.append(batch)
        done += 1
        if progress is not None:
            progress(done / max(len(files), 1), f"{file.name}: {len(batch)} scenes")
        if sum(len(b) for b in pending) >= INGEST_CHUNK_SCENES:
            flush()
    flush()
    if totals["scenes"] == 0:
        from autoscale_core.io.scenarionet import ScenarioNetImportError

        raise ScenarioNetImportError(f"{path}: no valid scenes (skipped: {report.skipped or 'none'})")
    totals["files"] = len(files)
    totals["report"] = report.as_dict()
    return totals


def export_view_scenarionet(
    view: fo.Dataset | fo.DatasetView, path: str | os.PathLike, *, overwrite: bool = False
) -> dict:
    """Write the scenes of ``view`` (in its order) as a ScenarioNet database folder at ``path``
    (see :func:`autoscale_core.io.scenarionet_export.export_scenarionet`)."""
    from autoscale_core.io.scenarionet_export import export_scenarionet

    from .scenes import load_scenes

    if len(view) == 0:
        raise ValueError("the chosen view is empty; nothing to export")
    batch = load_scenes(view)
    files = export_scenarionet(batch, path, overwrite=overwrite)
    return {"path": str(Path(path)), "scenes": len(batch), "files": len(files)}
