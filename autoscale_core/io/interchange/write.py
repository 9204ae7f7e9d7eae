"""Writing a SceneBatch as interchange tables (:func:`export_scenes`); the format is in
:mod:`autoscale_core.io.interchange.format`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ...export_folder import ExportTargetError, check_export_target, publish_export
from ...scene import (
    AGENT_TYPES,
    ARRAY_DIMS,
    META_FLOAT_KEYS,
    SceneBatch,
)
from .format import FORMAT, VERSION, InterchangeError


def export_scenes(batch: SceneBatch, path: str | os.PathLike, *, overwrite: bool = False) -> Path:
    """Write ``batch`` as interchange tables into the folder ``path``.

    The tables are written to a temporary folder beside ``path`` and moved in at the end. An
    existing non-empty ``path`` is refused unless ``overwrite``; then only the files a previous
    export wrote there are replaced, never other files (:mod:`autoscale_core.export_folder`).
    Padding rows (agent_type -1, invalid lanes/crosswalks, invalid polygon vertices and route
    points) are not written; the padded sizes go into the metadata so import restores the exact
    arrays. Returns the folder.
    """
    path = Path(path)
    try:
        check_export_target(path, overwrite=overwrite, what="scene export")
    except ExportTargetError as exc:
        raise InterchangeError(str(exc)) from exc
    tables = _to_tables(batch)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}.tmp-"))
    try:
        for name, table in tables.items():
            pq.write_table(table, tmp / f"{name}.parquet")
        publish_export(tmp, path, overwrite=overwrite, what="scene export")
    except ExportTargetError as exc:
        raise InterchangeError(str(exc)) from exc
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return path


def _list_column(values: np.ndarray, counts: np.ndarray) -> pa.Array:
    """Flat values + per-row counts → a pyarrow list array."""
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), pa.array(values))


def _to_tables(batch: SceneBatch) -> dict[str, pa.Table]:
    S, T = len(batch), batch.num_steps
    ids = np.asarray([str(x) for x in batch.meta["scene_id"]], dtype=object)
    dims = {letter: int(getattr(batch, name).shape[pos]) for name, d in ARRAY_DIMS.items() for pos, letter in enumerate(d) if letter.isalpha()}
    header = {"format": FORMAT, "version": VERSION, "dt": float(batch.dt), "history_steps": int(batch.history_steps), "num_steps": T, "dims": dims}

    scenes = {k: _meta_column(k, v) for k, v in batch.meta.items()}
    scenes.update(
        ego_length=batch.ego_size[:, 0], ego_width=batch.ego_size[:, 1],
        origin_x=batch.global_pose[:, 0], origin_y=batch.global_pose[:, 1], origin_yaw=batch.global_pose[:, 2],
    )
    scenes_table = pa.table(scenes).replace_schema_metadata({"autoscale": json.dumps(header)})

    s_idx, step = np.meshgrid(np.arange(S), np.arange(T), indexing="ij")
    ego = batch.ego.reshape(S * T, 5)
    ego_states = pa.table({
        "scene_id": ids[s_idx.ravel()], "step": step.ravel().astype(np.int16),
        **{k: ego[:, j] for j, k in enumerate(("x", "y", "heading", "speed", "accel"))},
    })

    s_a, a_a = np.nonzero(batch.agent_type >= 0)
    agents = pa.table({
        "scene_id": ids[s_a], "agent_index": a_a.astype(np.int16),
        "type": np.array(AGENT_TYPES, dtype=object)[batch.agent_type[s_a, a_a]],
        "length": batch.agent_size[s_a, a_a, 0], "width": batch.agent_size[s_a, a_a, 1],
    })
    rows = np.repeat(np.arange(len(s_a)), T)
    steps = np.tile(np.arange(T), len(s_a))
    st = batch.agents[s_a[rows], a_a[rows], steps]
    agent_states = pa.table({
        "scene_id": ids[s_a[rows]], "agent_index": a_a[rows].astype(np.int16), "step": steps.astype(np.int16),
        **{k: st[:, j] for j, k in enumerate(("x", "y", "heading", "speed"))},
        "valid": batch.agent_valid[s_a[rows], a_a[rows], steps],
    })

    s_l, l_l = np.nonzero(batch.lane_valid)
    P = batch.lanes.shape[2]
    succ = batch.lane_successors[s_l, l_l]
    lanes = pa.table({
        "scene_id": ids[s_l], "lane_index": l_l.astype(np.int16),
        "xs": _list_column(batch.lanes[s_l, l_l, :, 0].ravel(), np.full(len(s_l), P)),
        "ys": _list_column(batch.lanes[s_l, l_l, :, 1].ravel(), np.full(len(s_l), P)),
        "width": batch.lane_width[s_l, l_l], "speed_limit": batch.lane_speed_limit[s_l, l_l],
        "is_intersection": batch.lane_is_intersection[s_l, l_l],
        "successors": _list_column(succ[succ >= 0], (succ >= 0).sum(-1)),
        "left_neighbor": batch.lane_neighbors[s_l, l_l, 0], "right_neighbor": batch.lane_neighbors[s_l, l_l, 1],
        "tl": _list_column(batch.lane_tl[s_l, l_l].ravel(), np.full(len(s_l), T)),
    })

    count = batch.drivable_vertex_valid.sum(-1)
    s_d, d_d = np.nonzero(count > 0)
    vmask = batch.drivable_vertex_valid[s_d, d_d]
    polygons = pa.table({
        "scene_id": ids[s_d], "polygon_index": d_d.astype(np.int16),
        "xs": _list_column(batch.drivable_polygons[s_d, d_d, :, 0][vmask], count[s_d, d_d]),
        "ys": _list_column(batch.drivable_polygons[s_d, d_d, :, 1][vmask], count[s_d, d_d]),
    })

    s_c, c_c = np.nonzero(batch.crosswalk_valid)
    crosswalks = pa.table({
        "scene_id": ids[s_c], "crosswalk_index": c_c.astype(np.int16),
        "xs": _list_column(batch.crosswalks[s_c, c_c, :, 0].ravel(), np.full(len(s_c), 4)),
        "ys": _list_column(batch.crosswalks[s_c, c_c, :, 1].ravel(), np.full(len(s_c), 4)),
    })

    rl, rv = batch.route_lanes, batch.route_valid
    routes = pa.table({
        "scene_id": ids,
        "lane_indices": _list_column(rl[rl >= 0], (rl >= 0).sum(-1)),
        "xs": _list_column(batch.route_polyline[..., 0][rv], rv.sum(-1)),
        "ys": _list_column(batch.route_polyline[..., 1][rv], rv.sum(-1)),
    })
    return {
        "scenes": scenes_table, "ego_states": ego_states, "agents": agents, "agent_states": agent_states,
        "lanes": lanes, "drivable_polygons": polygons, "crosswalks": crosswalks, "routes": routes,
    }


def _meta_column(key: str, values: np.ndarray) -> np.ndarray:
    values = np.asarray(values)
    if key in META_FLOAT_KEYS:
        return values.astype(np.float64)
    if values.dtype.kind in "OUS":
        return np.array([str(v) for v in values], dtype=object)
    return values
