"""Reading an interchange folder into a validated SceneBatch (:func:`import_scenes`): every
row checked, bad scenes dropped with a reason (or the folder refused with ``strict``); the
format is in :mod:`autoscale_core.io.interchange.format`.
"""

from __future__ import annotations

import json
import os
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ...scene import (
    AGENT_TYPES,
    META_FLOAT_KEYS,
    TL_RED,
    TL_UNKNOWN,
    SceneBatch,
    empty_batch,
    resample_polyline,
)
from ..validation import (
    ImportLimitError,
    ImportLimits,
    ImportValidationError,
    check_index_column,
    check_sizes,
    drop_bad_scenes,
)
from .format import DEFAULT_SPEED_LIMIT, FORMAT, REQUIRED, SCENE_COLUMNS, TABLES, VERSION, InterchangeError


# ---------------------------------------------------------------------------------- import
def import_scenes(
    path: str | os.PathLike,
    *,
    validate: bool = True,
    strict: bool = True,
    limits: ImportLimits | None = None,
    skipped: list[dict] | None = None,
) -> SceneBatch:
    """Read an interchange folder into a :class:`SceneBatch` (scenes in ``scenes`` table order).

    Lanes whose point count differs from the batch's are resampled by arc length; polygons and
    routes of any length are padded. Every row is checked (indices, steps, list lengths against
    :class:`~autoscale_core.io.validation.ImportLimits`) before any array is allocated, and every
    built scene against the array schema (:func:`~autoscale_core.io.validation.scene_problems`).

    Args:
        strict: a bad scene refuses the whole folder (:class:`InterchangeError` naming the file,
            scene and field); otherwise bad scenes are left out and listed in ``skipped``.
        limits: size limits (default :meth:`ImportLimits.from_env`).
        skipped: receives ``{"scene_id", "reason"}`` per scene left out (``strict=False``).
    """
    path = Path(path)
    limits = limits or ImportLimits.from_env()
    if not path.is_dir():
        raise InterchangeError(f"{path}: not an interchange folder (expected a directory of Parquet tables)")
    tables = {name: _read(path / f"{name}.parquet", name) for name in TABLES}
    header = _header(path / "scenes.parquet", tables["scenes"], limits)
    scene_ids = [str(s) for s in tables["scenes"].column("scene_id").to_pylist()]
    if len(set(scene_ids)) != len(scene_ids):
        dup = next(x for x in scene_ids if scene_ids.count(x) > 1)
        raise InterchangeError(f"{path / 'scenes.parquet'}: scene_id {dup!r} appears more than once")
    _check_or_raise(lambda: check_sizes({"S": len(scene_ids)}, limits, file=path / "scenes.parquet"))
    T = int(header["num_steps"])
    problems = _row_problems(path, tables, scene_ids, T, limits)
    if problems:
        first = min(problems)
        if strict:
            file, reason = problems[first]
            raise InterchangeError(f"{path / file}: scene {scene_ids[first]!r}: {reason}")
        if skipped is not None:
            skipped += [{"scene_id": scene_ids[i], "reason": f"{f}: {r}"} for i, (f, r) in sorted(problems.items())]
        tables, scene_ids = _without_scenes(tables, scene_ids, set(problems))
    if not scene_ids:
        raise InterchangeError(f"{path}: no valid scene left to import (every scene was skipped)")
    batch = _build(path, tables, scene_ids, header, limits)
    if validate:
        try:
            batch, bad = drop_bad_scenes(batch, file=path, strict=strict, limits=limits)
        except ImportValidationError as exc:
            raise InterchangeError(str(exc)) from exc
        if skipped is not None:
            skipped += bad
        if len(batch) == 0:
            raise InterchangeError(f"{path}: no valid scene left to import (every scene was skipped)")
    return batch


def _check_or_raise(check) -> None:
    try:
        check()
    except ImportLimitError as exc:
        raise InterchangeError(str(exc)) from exc


def _numbers(table: pa.Table, column: str, file: Path, dtype=np.float64) -> np.ndarray:
    """A numeric column as ``dtype``; strings, nulls or other types are an error naming it."""
    array = table.column(column)
    kind = array.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            or pa.types.is_null(kind) and table.num_rows == 0):
        raise InterchangeError(f"{file}: column {column!r} must be numeric, got {kind}")
    if array.null_count:
        row = int(np.flatnonzero(array.is_null().to_numpy(zero_copy_only=False))[0])
        raise InterchangeError(f"{file}: column {column!r} has an empty (null) value in row {row}")
    return array.to_numpy(zero_copy_only=False).astype(dtype)


def _row_problems(path: Path, tables: dict[str, pa.Table], scene_ids: list[str], T: int,
                  limits: ImportLimits) -> dict[int, tuple[str, str]]:
    """``{scene row: (file, reason)}`` for rows breaking an index, step, list-length or
    uniqueness rule — checked on the raw rows, before any padded array exists."""
    lookup = {s: i for i, s in enumerate(scene_ids)}
    problems: dict[int, tuple[str, str]] = {}

    def scene_rows(name: str) -> np.ndarray:
        ids = tables[name].column("scene_id").to_numpy(zero_copy_only=False)
        try:
            return np.array([lookup[str(s)] for s in ids], dtype=np.int64)
        except KeyError as exc:
            raise InterchangeError(f"{path / (name + '.parquet')}: scene_id {exc.args[0]!r} is not in scenes.parquet") from exc

    def flag(name: str, rows: np.ndarray, bad: np.ndarray, reason: str) -> None:
        for r in np.flatnonzero(bad):
            problems.setdefault(int(rows[r]), (f"{name}.parquet", reason))

    def index(name: str, column: str, high: int, low: int = 0) -> None:
        values = _numbers(tables[name], column, path / f"{name}.parquet")
        bad, expected = check_index_column(values, low=low, high=high, field=column)
        flag(name, rows[name], bad, f"{expected} (limit {high})" if low == 0 else expected)

    def unique(name: str, columns: tuple[str, ...]) -> None:
        keys = np.stack([rows[name]] + [_numbers(tables[name], c, path / f"{name}.parquet") for c in columns], -1)
        if len(keys):
            _, first, counts = np.unique(keys, axis=0, return_index=True, return_counts=True)
            dup = np.zeros(len(keys), dtype=bool)
            dup[first[counts > 1]] = True
            flag(name, rows[name], dup, f"({', '.join(columns)}) appears more than once in a scene")

    def list_lengths(name: str, column: str, low: int, high: int, what: str, same_as: str | None = None) -> list:
        values = _lists(tables[name], column, path / f"{name}.parquet")
        counts = np.array([len(v) for v in values], dtype=np.int64)
        flag(name, rows[name], (counts < low) | (counts > high), f"{column}: {what} must have {low}..{high} entries")
        if same_as is not None:
            other = np.array([len(v) for v in _lists(tables[name], same_as, path / f"{name}.parquet")], dtype=np.int64)
            flag(name, rows[name], counts != other, f"{column} and {same_as} must have the same length")
        return values

    def list_values(name: str, column: str, values: list, low: int, high: int) -> None:
        bad = np.array([bool(len(v)) and bool(check_index_column(v, low=low, high=high, field=column)[0].any())
                        for v in values], dtype=bool)
        flag(name, rows[name], bad, f"{column}: entries must be whole numbers in {low}..{high - 1}")

    rows = {name: scene_rows(name) for name in TABLES}
    index("ego_states", "step", T)
    index("agents", "agent_index", limits.max_agents)
    index("agent_states", "agent_index", limits.max_agents)
    index("agent_states", "step", T)
    index("lanes", "lane_index", limits.max_lanes)
    index("drivable_polygons", "polygon_index", limits.max_polygons)
    index("crosswalks", "crosswalk_index", limits.max_crosswalks)
    for side in ("left_neighbor", "right_neighbor"):
        if side in tables["lanes"].column_names:
            index("lanes", side, limits.max_lanes, low=-1)
    for name, columns in (("ego_states", ("step",)), ("agents", ("agent_index",)),
                          ("agent_states", ("agent_index", "step")), ("lanes", ("lane_index",)),
                          ("drivable_polygons", ("polygon_index",)), ("crosswalks", ("crosswalk_index",))):
        unique(name, columns)
    listed = set(zip(rows["agents"].tolist(), _numbers(tables["agents"], "agent_index", path / "agents.parquet").tolist()))
    states_of = zip(rows["agent_states"].tolist(),
                    _numbers(tables["agent_states"], "agent_index", path / "agent_states.parquet").tolist())
    flag("agent_states", rows["agent_states"], np.array([key not in listed for key in states_of], dtype=bool),
         "agent_index: states for an agent that agents.parquet does not list")
    if len(tables["routes"]):
        _, counts = np.unique(rows["routes"], return_counts=True)
        flag("routes", rows["routes"], np.isin(rows["routes"], np.unique(rows["routes"])[counts > 1]),
             "a scene has more than one route row")
    list_lengths("lanes", "xs", 2, limits.max_lane_points, "a lane centerline", same_as="ys")
    if "successors" in tables["lanes"].column_names:
        succ = list_lengths("lanes", "successors", 0, limits.max_successors, "successors")
        list_values("lanes", "successors", succ, -1, limits.max_lanes)
    if "tl" in tables["lanes"].column_names:
        tl = list_lengths("lanes", "tl", T, T, "tl (one traffic-light code per step)")
        list_values("lanes", "tl", tl, TL_UNKNOWN, TL_RED + 1)
    list_lengths("drivable_polygons", "xs", 0, limits.max_polygon_vertices, "polygon vertices", same_as="ys")
    list_lengths("crosswalks", "xs", 4, 4, "crosswalk corners", same_as="ys")
    list_lengths("crosswalks", "ys", 4, 4, "crosswalk corners")
    lanes = list_lengths("routes", "lane_indices", 0, limits.max_route_lanes, "route lanes")
    list_values("routes", "lane_indices", lanes, -1, limits.max_lanes)
    list_lengths("routes", "xs", 0, limits.max_route_points, "route points", same_as="ys")
    return problems


def _without_scenes(tables: dict[str, pa.Table], scene_ids: list[str], bad: set[int]) -> tuple[dict, list[str]]:
    """The tables without the rows of scenes ``bad`` (positions in ``scene_ids``)."""
    drop = pa.array(sorted(scene_ids[i] for i in bad))
    out = {}
    for name, table in tables.items():
        keep = pc.invert(pc.is_in(table.column("scene_id").cast(pa.string()), value_set=drop))
        out[name] = table.filter(keep)
    return out, [s for i, s in enumerate(scene_ids) if i not in bad]


def _build(path: Path, tables: dict[str, pa.Table], scene_ids: list[str], header: dict,
           limits: ImportLimits) -> SceneBatch:
    """Allocate and fill the batch from rows already checked by :func:`_row_problems`."""
    lookup = {s: i for i, s in enumerate(scene_ids)}
    S, T, H = len(scene_ids), int(header["num_steps"]), int(header["history_steps"])

    def rows_of(name: str) -> np.ndarray:
        ids = tables[name].column("scene_id").to_numpy(zero_copy_only=False)
        return np.array([lookup[str(s)] for s in ids], dtype=np.int64)

    col = lambda name, c, dtype=np.float64: _numbers(tables[name], c, path / f"{name}.parquet", dtype)  # noqa: E731
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

    sizes = {
        "S": S, "T": T, "N": size("N", extent(agent_index)), "L": size("L", extent(lane_index)),
        "P": size("P", max([len(x) for x in lane_xs] + [2])), "K": size("K", max([len(x) for x in succ] + [1])),
        "D": size("D", extent(poly_index)), "V": size("V", max([len(x) for x in poly_xs] + [3])),
        "C": size("C", extent(cw_index)), "R": size("R", max([len(x) for x in route_lanes] + [1])),
        "Q": size("Q", max([len(x) for x in route_xs] + [2])),
    }
    # The header's "dims" and the rows both come from the file: bounded before allocation.
    _check_or_raise(lambda: check_sizes(sizes, limits, file=path))
    batch = empty_batch(
        S, num_agents=sizes["N"], num_lanes=sizes["L"], lane_points=sizes["P"], num_successors=sizes["K"],
        num_polygons=sizes["D"], polygon_vertices=sizes["V"], num_crosswalks=sizes["C"],
        route_lanes=sizes["R"], route_points=sizes["Q"], dt=float(header["dt"]), history_steps=H,
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
    full = np.flatnonzero(counts == P)  # the usual case: one vectorized assignment for these
    if len(full):
        batch.lanes[s_l[full], lane_index[full]] = np.stack(
            [np.stack([lane_xs[r] for r in full]), np.stack([lane_ys[r] for r in full])], -1)
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


def _header(file: Path, table: pa.Table, limits: ImportLimits) -> dict:
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
    dt, history, steps = header["dt"], header["history_steps"], header["num_steps"]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (dt, history, steps))
    if not numbers or not (np.isfinite(dt) and dt > 0) or int(history) != history or int(steps) != steps \
            or not 0 <= history < steps - 1:
        raise InterchangeError(
            f"{file}: schema metadata 'autoscale' needs dt > 0 (s) and whole numbers 0 <= history_steps < "
            f"num_steps - 1; got dt={dt!r}, history_steps={history!r}, num_steps={steps!r}"
        )
    if not isinstance(header.get("dims", {}), dict) or not all(
            isinstance(v, int) and v >= 0 for v in (header.get("dims") or {}).values()):
        raise InterchangeError(f"{file}: schema metadata 'autoscale' dims must map axis letters to sizes >= 0")
    _check_or_raise(lambda: check_sizes({"T": int(steps)}, limits, file=file))
    if dt * steps > limits.max_time_span_s:
        raise InterchangeError(f"{file}: the timeline spans {dt * steps:,.0f} s, above the limit of "
                               f"{limits.max_time_span_s:,.0f} s (max_time_span_s)")
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
