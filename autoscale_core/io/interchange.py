"""The AutoScale scene interchange format: a folder of Parquet tables (see docs/interchange.md).

One table per element, long format, every row keyed by ``scene_id``; coordinates in each scene's
frame (origin = ego box centre at t0, +x = ego heading), metres, radians, m/s. A team brings
logs from any source (nuPlan/NAVSIM, Waymo, in-house) by writing these tables; everything else
in AutoScale then works on them.

==================  ==============================================================================
table               columns (``*`` = optional on import)
==================  ==============================================================================
scenes              scene_id, source, city, topology*, maneuver*, events*, log_id*, parent_id*,
                    t0*, ego_length, ego_width, origin_x, origin_y, origin_yaw, + any metadata
ego_states          scene_id, step, x, y, heading, speed, accel
agents              scene_id, agent_index, type (vehicle/pedestrian/cyclist/static/other),
                    length, width
agent_states        scene_id, agent_index, step, x, y, heading, speed, valid*
lanes               scene_id, lane_index, xs, ys (list<float32>, travel direction), width,
                    speed_limit*, is_intersection*, successors* (list<int16>), left_neighbor*,
                    right_neighbor*, tl* (list<int8> per step, TL_* codes)
drivable_polygons   scene_id, polygon_index, xs, ys
crosswalks          scene_id, crosswalk_index, xs, ys (4 corners each)
routes              scene_id, lane_indices (list<int16>), xs, ys (route polyline)
==================  ==============================================================================

``scenes.parquet`` carries the timeline in its schema metadata under key ``autoscale``:
``{"format": "autoscale-scenes", "version": 1, "dt": .., "history_steps": .., "num_steps": ..,
"dims": {...}}`` (``dims``, optional, restores the exact padded shapes of an export).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from ..export_folder import ExportTargetError, check_export_target, publish_export
from ..scene import (
    AGENT_TYPES,
    ARRAY_DIMS,
    META_FLOAT_KEYS,
    TL_UNKNOWN,
    SceneBatch,
    SceneValidationError,
    empty_batch,
    resample_polyline,
)

FORMAT = "autoscale-scenes"
VERSION = 1
TABLES = ("scenes", "ego_states", "agents", "agent_states", "lanes", "drivable_polygons", "crosswalks", "routes")
REQUIRED = {
    "scenes": ("scene_id", "source", "city", "ego_length", "ego_width", "origin_x", "origin_y", "origin_yaw"),
    "ego_states": ("scene_id", "step", "x", "y", "heading", "speed", "accel"),
    "agents": ("scene_id", "agent_index", "type", "length", "width"),
    "agent_states": ("scene_id", "agent_index", "step", "x", "y", "heading", "speed"),
    "lanes": ("scene_id", "lane_index", "xs", "ys", "width"),
    "drivable_polygons": ("scene_id", "polygon_index", "xs", "ys"),
    "crosswalks": ("scene_id", "crosswalk_index", "xs", "ys"),
    "routes": ("scene_id", "lane_indices", "xs", "ys"),
}
SCENE_COLUMNS = ("ego_length", "ego_width", "origin_x", "origin_y", "origin_yaw")
DEFAULT_SPEED_LIMIT = 13.9  # m/s, used when a lanes table has no speed_limit column


class InterchangeError(ValueError):
    """An interchange folder is missing, malformed or inconsistent; the message names the file."""


# ---------------------------------------------------------------------------------- export
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


# ---------------------------------------------------------------------------------- import
def import_scenes(path: str | os.PathLike, *, validate: bool = True) -> SceneBatch:
    """Read an interchange folder into a :class:`SceneBatch` (scenes in ``scenes`` table order).

    Lanes whose point count differs from the batch's are resampled by arc length; polygons and
    routes of any length are padded. Raises :class:`InterchangeError` naming the file and problem.
    """
    path = Path(path)
    if not path.is_dir():
        raise InterchangeError(f"{path}: not an interchange folder (expected a directory of Parquet tables)")
    tables = {name: _read(path / f"{name}.parquet", name) for name in TABLES}
    header = _header(path / "scenes.parquet", tables["scenes"])
    scene_ids = [str(s) for s in tables["scenes"].column("scene_id").to_pylist()]
    if len(set(scene_ids)) != len(scene_ids):
        raise InterchangeError(f"{path / 'scenes.parquet'}: duplicate scene_id values")
    lookup = {s: i for i, s in enumerate(scene_ids)}
    S, T, H = len(scene_ids), int(header["num_steps"]), int(header["history_steps"])

    def rows_of(name: str) -> np.ndarray:
        ids = tables[name].column("scene_id").to_numpy(zero_copy_only=False)
        try:
            return np.array([lookup[str(s)] for s in ids], dtype=np.int64)
        except KeyError as exc:
            raise InterchangeError(f"{path / (name + '.parquet')}: scene_id {exc.args[0]!r} is not in scenes.parquet") from exc

    col = lambda name, c, dtype=np.float64: tables[name].column(c).to_numpy(zero_copy_only=False).astype(dtype)  # noqa: E731
    lists = lambda name, c: _lists(tables[name], c, path / f"{name}.parquet")  # noqa: E731
    has = lambda name, c: c in tables[name].column_names  # noqa: E731

    idx = {name: rows_of(name) for name in TABLES}
    dims = dict(header.get("dims") or {})
    agent_index, lane_index = col("agents", "agent_index", np.int64), col("lanes", "lane_index", np.int64)
    poly_index, cw_index = col("drivable_polygons", "polygon_index", np.int64), col("crosswalks", "crosswalk_index", np.int64)
    lane_xs, lane_ys = lists("lanes", "xs"), lists("lanes", "ys")
    succ = lists("lanes", "successors") if has("lanes", "successors") else [np.zeros(0)] * len(lane_index)
    poly_xs, poly_ys = lists("drivable_polygons", "xs"), lists("drivable_polygons", "ys")
    route_lanes = lists("routes", "lane_indices")
    route_xs, route_ys = lists("routes", "xs"), lists("routes", "ys")

    def size(letter: str, needed: int) -> int:
        return max(int(dims.get(letter, 0)), int(needed))

    def extent(index: np.ndarray) -> int:
        return int(index.max()) + 1 if len(index) else 0

    batch = empty_batch(
        S, num_agents=size("N", extent(agent_index)), num_lanes=size("L", extent(lane_index)),
        lane_points=size("P", max([len(x) for x in lane_xs] + [2])),
        num_successors=size("K", max([len(x) for x in succ] + [1])),
        num_polygons=size("D", extent(poly_index)), polygon_vertices=size("V", max([len(x) for x in poly_xs] + [3])),
        num_crosswalks=size("C", extent(cw_index)), route_lanes=size("R", max([len(x) for x in route_lanes] + [1])),
        route_points=size("Q", max([len(x) for x in route_xs] + [2])), dt=float(header["dt"]), history_steps=H,
        future_steps=T - H - 1,
    )
    P = batch.lanes.shape[2]

    # scenes + metadata
    scenes = tables["scenes"]
    batch.ego_size[:] = np.stack([col("scenes", "ego_length"), col("scenes", "ego_width")], -1)
    batch.global_pose[:] = np.stack([col("scenes", c) for c in ("origin_x", "origin_y", "origin_yaw")], -1)
    for c in scenes.column_names:
        if c in SCENE_COLUMNS:
            continue
        values = scenes.column(c).to_numpy(zero_copy_only=False)
        batch.meta[c] = values.astype(np.float64) if c in META_FLOAT_KEYS else (values.astype(object) if values.dtype.kind in "OUS" else values)

    # ego
    _check_steps(col("ego_states", "step", np.int64), T, path / "ego_states.parquet")
    e_step = col("ego_states", "step", np.int64)
    batch.ego[idx["ego_states"], e_step] = np.stack([col("ego_states", c) for c in ("x", "y", "heading", "speed", "accel")], -1)
    covered = np.zeros((S, T), dtype=bool)
    covered[idx["ego_states"], e_step] = True
    if not covered.all():
        s = int(np.argwhere(~covered)[0][0])
        raise InterchangeError(f"{path / 'ego_states.parquet'}: scene {scene_ids[s]!r} lacks ego states for some of its {T} steps")

    # agents
    types = tables["agents"].column("type").to_numpy(zero_copy_only=False).astype(str)
    codes = np.array([AGENT_TYPES.index(t) if t in AGENT_TYPES else AGENT_TYPES.index("other") for t in types], dtype=np.int8)
    unknown = sorted(set(types) - set(AGENT_TYPES))
    if unknown:
        warnings.warn(f"{path / 'agents.parquet'}: unknown agent types {unknown} mapped to 'other'", stacklevel=2)
    batch.agent_type[idx["agents"], agent_index] = codes
    batch.agent_size[idx["agents"], agent_index] = np.stack([col("agents", "length"), col("agents", "width")], -1)
    s_step = col("agent_states", "step", np.int64)
    _check_steps(s_step, T, path / "agent_states.parquet")
    s_agent = col("agent_states", "agent_index", np.int64)
    if (batch.agent_type[idx["agent_states"], s_agent] < 0).any():
        raise InterchangeError(f"{path / 'agent_states.parquet'}: states for an agent missing from agents.parquet")
    batch.agents[idx["agent_states"], s_agent, s_step] = np.stack([col("agent_states", c) for c in ("x", "y", "heading", "speed")], -1)
    valid = col("agent_states", "valid", bool) if has("agent_states", "valid") else np.ones(len(s_step), dtype=bool)
    batch.agent_valid[idx["agent_states"], s_agent, s_step] = valid

    # lanes
    s_l = idx["lanes"]
    counts = np.array([len(x) for x in lane_xs], dtype=np.int64)
    if len(counts) and (counts == P).all():  # the usual case: one vectorized assignment
        batch.lanes[s_l, lane_index] = np.stack([np.stack(lane_xs), np.stack(lane_ys)], -1)
    for r in np.flatnonzero(counts != P):
        if counts[r] < 2:
            raise InterchangeError(f"{path / 'lanes.parquet'}: lane {lane_index[r]} of scene {scene_ids[s_l[r]]!r} has fewer than 2 points")
        batch.lanes[s_l[r], lane_index[r]] = resample_polyline(np.stack([lane_xs[r], lane_ys[r]], -1), P)
    for r in np.flatnonzero([len(x) > 0 for x in succ]):
        batch.lane_successors[s_l[r], lane_index[r], : len(succ[r])] = succ[r]
    s_l = idx["lanes"]
    batch.lane_valid[s_l, lane_index] = True
    batch.lane_width[s_l, lane_index] = col("lanes", "width")
    batch.lane_speed_limit[s_l, lane_index] = col("lanes", "speed_limit") if has("lanes", "speed_limit") else DEFAULT_SPEED_LIMIT
    batch.lane_is_intersection[s_l, lane_index] = col("lanes", "is_intersection", bool) if has("lanes", "is_intersection") else False
    for side, c in enumerate(("left_neighbor", "right_neighbor")):
        batch.lane_neighbors[s_l, lane_index, side] = col("lanes", c, np.int64) if has("lanes", c) else -1
    if has("lanes", "tl"):
        tl = lists("lanes", "tl")
        if any(len(x) != T for x in tl):
            raise InterchangeError(f"{path / 'lanes.parquet'}: every tl list must have {T} entries (one per step)")
        batch.lane_tl[s_l, lane_index] = np.array(tl, dtype=np.int8).reshape(-1, T)
    else:
        batch.lane_tl[s_l, lane_index] = TL_UNKNOWN

    # polygons, crosswalks, routes
    for r, (xs, ys) in enumerate(zip(poly_xs, poly_ys)):
        batch.drivable_polygons[idx["drivable_polygons"][r], poly_index[r], : len(xs)] = np.stack([xs, ys], -1)
        batch.drivable_vertex_valid[idx["drivable_polygons"][r], poly_index[r], : len(xs)] = True
    cx, cy = lists("crosswalks", "xs"), lists("crosswalks", "ys")
    if any(len(x) != 4 for x in cx) or any(len(y) != 4 for y in cy):
        raise InterchangeError(f"{path / 'crosswalks.parquet'}: every crosswalk needs exactly 4 corners")
    if len(cx):
        batch.crosswalks[idx["crosswalks"], cw_index] = np.stack([np.array(cx), np.array(cy)], -1)
        batch.crosswalk_valid[idx["crosswalks"], cw_index] = True
    for r, (lanes_r, xs, ys) in enumerate(zip(route_lanes, route_xs, route_ys)):
        s = idx["routes"][r]
        batch.route_lanes[s, : len(lanes_r)] = lanes_r
        batch.route_polyline[s, : len(xs)] = np.stack([xs, ys], -1)
        batch.route_valid[s, : len(xs)] = True

    if validate:
        try:
            batch.validate()
        except SceneValidationError as exc:
            raise InterchangeError(f"{path}: {exc}") from exc
    return batch


def _read(file: Path, name: str) -> pa.Table:
    if not file.exists():
        raise InterchangeError(f"{file}: missing table {name!r}")
    try:
        table = pq.read_table(file)
    except (pa.ArrowException, OSError) as exc:
        raise InterchangeError(f"{file}: unreadable or truncated Parquet ({exc})") from exc
    missing = [c for c in REQUIRED[name] if c not in table.column_names]
    if missing:
        raise InterchangeError(f"{file}: missing columns {missing}")
    return table


def _header(file: Path, table: pa.Table) -> dict:
    raw = (table.schema.metadata or {}).get(b"autoscale")
    try:
        header = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        header = None
    if not header or header.get("format") != FORMAT or int(header.get("version", 0)) > VERSION:
        raise InterchangeError(f"{file}: schema metadata 'autoscale' must be {{\"format\": \"{FORMAT}\", \"version\": {VERSION}, \"dt\", \"history_steps\", \"num_steps\"}}")
    for key in ("dt", "history_steps", "num_steps"):
        if key not in header:
            raise InterchangeError(f"{file}: schema metadata 'autoscale' lacks {key!r}")
    return header


def _lists(table: pa.Table, column: str, file: Path) -> list[np.ndarray]:
    """A list column as one float64 array per row (views into one flat buffer; nulls → empty)."""
    array = table.column(column).combine_chunks() if table.num_rows else None
    if array is None:
        return []
    if not (pa.types.is_list(array.type) or pa.types.is_large_list(array.type)):
        raise InterchangeError(f"{file}: column {column!r} must hold lists of numbers, got {array.type}")
    array = array.fill_null([]) if array.null_count else array
    offsets = array.offsets.to_numpy()
    try:
        values = array.values.to_numpy(zero_copy_only=False).astype(np.float64)
    except (TypeError, ValueError, pa.ArrowException) as exc:
        raise InterchangeError(f"{file}: column {column!r} must hold lists of numbers ({exc})") from exc
    values = values[offsets[0] : offsets[-1]]
    return np.split(values, offsets[1:-1] - offsets[0])


def _check_steps(steps: np.ndarray, T: int, file: Path) -> None:
    if len(steps) and (steps.min() < 0 or steps.max() >= T):
        raise InterchangeError(f"{file}: step values must lie in 0..{T - 1}")
