"""One validation layer for every importer: size limits before allocation, a schema per array.

Importers (AV2, the Parquet interchange, ScenarioNet, ...) call it in two places:

1. **Before allocating** anything whose size comes from a file, :func:`check_sizes` compares the
   file-given sizes (agents, lanes, points, steps, ...) with :class:`ImportLimits` and refuses
   with :class:`ImportLimitError`, naming the file, the scene (when known), the size and the
   limit. :func:`check_index_column` and :func:`check_timestamps` check raw per-row values
   (indices, time stamps) the same way, returning the rows' bad scenes so that an importer can
   skip them.
2. **After building** a :class:`~autoscale_core.scene.SceneBatch`, :func:`scene_problems` checks
   every scene against the array schema (vectorized over scenes): finite values where valid,
   positive and bounded box sizes, bounded coordinates, agent-type and traffic-light codes in
   range, and lane / successor / neighbour / route-lane indices that point at valid lanes of the
   same scene. :func:`drop_bad_scenes` then removes the bad scenes (default) or raises naming
   the first one (``strict``).

Every message has the form ``<file>: scene <id>: <field>: <what was expected>``.

Limits are documented in docs/data_safety.md; each can be changed per call
(``ImportLimits(max_agents=2048)``) or by environment variable ``AUTOSCALE_LIMIT_<NAME>``
(e.g. ``AUTOSCALE_LIMIT_MAX_AGENTS=2048``), read by :meth:`ImportLimits.from_env`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..scene import AGENT_TYPES, TL_RED, TL_UNKNOWN, SceneBatch, SceneValidationError


class ImportLimitError(ValueError):
    """A size given by a file exceeds a documented limit (checked before allocation)."""


class ImportValidationError(ValueError):
    """A scene of an imported file breaks the array schema (``strict`` imports)."""


@dataclass(frozen=True)
class ImportLimits:
    """Upper bounds for sizes read from files; checked before anything is allocated from them.

    The defaults hold every real source we know with a wide margin (AV2 scenes have < 300
    agents, nuPlan/NAVSIM < 500) while keeping one padded batch far below the memory of a
    shared machine (``max_batch_bytes``).
    """

    max_scenes: int = 1_000_000
    max_agents: int = 1024  # per scene (N)
    max_lanes: int = 2048  # per scene (L)
    max_lane_points: int = 1024  # per lane (P)
    max_successors: int = 64  # per lane (K)
    max_polygons: int = 1024  # per scene (D)
    max_polygon_vertices: int = 4096  # per polygon (V)
    max_crosswalks: int = 512  # per scene (C)
    max_route_lanes: int = 512  # per scene (R)
    max_route_points: int = 8192  # per scene (Q)
    max_steps: int = 2000  # timeline entries per scene (T)
    max_time_span_s: float = 3 * 3600.0  # one log, first to last time stamp
    max_log_track_steps: int = 20_000_000  # tracks x 10 Hz steps of one raw log (AV2: ~300 x 160)
    max_box_size_m: float = 100.0  # agent / ego length and width
    max_abs_coordinate_m: float = 1e5  # scene-frame coordinates (global_pose is unbounded)
    max_batch_bytes: int = 8 * 1024**3  # padded arrays of one imported batch

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides) -> "ImportLimits":
        """Defaults, then ``AUTOSCALE_LIMIT_<NAME>`` variables, then ``overrides``."""
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            raw = environ.get(f"AUTOSCALE_LIMIT_{f.name.upper()}")
            if raw is None:
                continue
            try:
                values[f.name] = type(f.default)(float(raw))
            except ValueError as exc:
                raise ImportLimitError(f"AUTOSCALE_LIMIT_{f.name.upper()}={raw!r} is not a number") from exc
        values.update(overrides)
        return cls(**values)


# Symbolic axis letter (scene.ARRAY_DIMS) -> the limit that bounds it.
AXIS_LIMITS = {"S": "max_scenes", "N": "max_agents", "L": "max_lanes", "P": "max_lane_points",
               "K": "max_successors", "D": "max_polygons", "V": "max_polygon_vertices",
               "C": "max_crosswalks", "R": "max_route_lanes", "Q": "max_route_points", "T": "max_steps"}
AXIS_NAMES = {"S": "scenes", "N": "agents per scene", "L": "lanes per scene", "P": "points per lane",
              "K": "successors per lane", "D": "drivable polygons per scene", "V": "vertices per polygon",
              "C": "crosswalks per scene", "R": "route lanes per scene", "Q": "route points per scene",
              "T": "time steps per scene"}


def _where(file: object, scene: object | None) -> str:
    return f"{file}: scene {scene!r}" if scene is not None else f"{file}"


def padded_batch_bytes(sizes: Mapping[str, int]) -> int:
    """Bytes of the padded :class:`SceneBatch` arrays for symbolic sizes ``{letter: size}``."""
    from ..scene import ARRAY_DIMS, ARRAY_SPECS

    literal = {"2": 2, "3": 3, "4": 4, "5": 5}
    total = 0
    for name, dims in ARRAY_DIMS.items():
        cells = 1
        for letter in dims:
            cells *= int(literal.get(letter, sizes.get(letter, 1)))
        total += cells * np.dtype(ARRAY_SPECS[name][1]).itemsize
    return total


def check_sizes(sizes: Mapping[str, int], limits: ImportLimits, *, file: object, scene: object | None = None) -> None:
    """Refuse file-given sizes (``{axis letter: size}``, see ``scene.ARRAY_DIMS``) above the
    limits, and a padded batch above ``limits.max_batch_bytes`` — before anything is allocated."""
    for letter, size in sizes.items():
        limit_name = AXIS_LIMITS.get(letter)
        if limit_name is None:
            continue
        limit = getattr(limits, limit_name)
        if int(size) > limit:
            raise ImportLimitError(
                f"{_where(file, scene)}: {int(size):,} {AXIS_NAMES[letter]} exceeds the limit of {limit:,} "
                f"({limit_name}; raise it with AUTOSCALE_LIMIT_{limit_name.upper()} if the data is real)"
            )
    need = padded_batch_bytes(sizes)
    if need > limits.max_batch_bytes:
        raise ImportLimitError(
            f"{_where(file, scene)}: the padded scene arrays would take {need / 1024**3:.1f} GiB, above the limit "
            f"of {limits.max_batch_bytes / 1024**3:.1f} GiB (max_batch_bytes; sizes {dict(sizes)}); "
            "import fewer scenes at a time or raise AUTOSCALE_LIMIT_MAX_BATCH_BYTES"
        )


def check_index_column(values: np.ndarray, *, low: int, high: int, field: str) -> tuple[np.ndarray, str]:
    """Rows of an integer index column outside ``low .. high - 1`` (or not whole numbers).

    Returns ``(bad row mask, expectation text)``; the caller maps rows to scenes and decides
    between skipping those scenes and refusing the file.
    """
    values = np.asarray(values, dtype=np.float64)
    bad = ~np.isfinite(values) | (values != np.round(values)) | (values < low) | (values >= high)
    return bad, f"{field} must be a whole number in {low}..{high - 1}"


def check_timestamps(times: np.ndarray, limits: ImportLimits, *, file: object, scene: object | None = None,
                     field: str = "timestamp", unit_s: float = 1.0) -> None:
    """Time stamps must be finite, strictly increasing, and span at most ``max_time_span_s``.

    ``unit_s``: seconds per unit (1e-9 for nanoseconds). Raises :class:`ImportValidationError`.
    """
    times = np.asarray(times)
    where = f"{_where(file, scene)}: {field}"
    if times.size == 0:
        raise ImportValidationError(f"{where}: no time stamps")
    # Relative to the first in the integer domain: ns since 1970 (~1.6e18) exceed float64's 2**53.
    times = (times - times[0]).astype(np.float64) if times.dtype.kind in "iu" else times.astype(np.float64)
    if not np.isfinite(times).all():
        raise ImportValidationError(f"{where}: time stamps must be finite")
    steps = np.diff(times)
    if (steps <= 0).any():
        i = int(np.flatnonzero(steps <= 0)[0])
        raise ImportValidationError(
            f"{where}: time stamps must be strictly increasing (entry {i + 1}: {times[i + 1]:.0f} after {times[i]:.0f})"
        )
    span = float(times[-1] - times[0]) * unit_s
    if span > limits.max_time_span_s:
        raise ImportLimitError(
            f"{where}: spans {span:,.0f} s, above the limit of {limits.max_time_span_s:,.0f} s "
            "(max_time_span_s; AUTOSCALE_LIMIT_MAX_TIME_SPAN_S)"
        )


# ---------------------------------------------------------------------------------- per-scene schema
def _first_bad(bad: np.ndarray) -> np.ndarray:
    """(S,) bool: scene has any True in ``bad`` (S, ...)."""
    return bad.reshape(len(bad), -1).any(-1)


def _index_refs_ok(index: np.ndarray, lane_valid: np.ndarray) -> np.ndarray:
    """(S, ...) bool: -1 (none) or a valid lane of the same scene."""
    S, L = lane_valid.shape
    inside = (index >= 0) & (index < L)
    clipped = np.clip(index, 0, max(L - 1, 0)).reshape(S, -1)
    points_to_valid = np.take_along_axis(lane_valid, clipped, axis=1).reshape(index.shape) if L else False
    return (index == -1) | (inside & points_to_valid)


def scene_problems(batch: SceneBatch, limits: ImportLimits | None = None) -> dict[int, str]:
    """``{scene index: "field: what was expected"}`` for every scene breaking the schema.

    Vectorized over scenes; one (the first found) problem per scene.
    """
    limits = limits or ImportLimits()
    b = batch
    real_agent = b.agent_type >= 0
    checks: list[tuple[str, np.ndarray]] = [
        ("ego: finite x, y, heading, speed, accel at every step", ~np.isfinite(b.ego)),
        ("ego_size: finite, positive length and width", ~(np.isfinite(b.ego_size) & (b.ego_size > 0))),
        ("agent_type: a code in -1..4 (" + "/".join(AGENT_TYPES) + ")",
         (b.agent_type < -1) | (b.agent_type >= len(AGENT_TYPES))),
        ("agents: finite states where valid", ~np.isfinite(b.agents) & b.agent_valid[..., None]),
        ("agent_valid: only for agents listed with a type", b.agent_valid & ~real_agent[..., None]),
        (f"agent_size: positive length and width up to {limits.max_box_size_m} m",
         ~((b.agent_size > 0) & (b.agent_size <= limits.max_box_size_m)) & real_agent[..., None]),
        (f"ego_size: at most {limits.max_box_size_m} m", b.ego_size > limits.max_box_size_m),
        ("lanes: finite points for valid lanes", ~np.isfinite(b.lanes) & b.lane_valid[:, :, None, None]),
        ("lanes: a valid lane needs at least 2 distinct points",
         b.lane_valid & ~(np.abs(np.diff(b.lanes, axis=2)).sum((-1, -2)) > 0)),
        ("lane_width: finite and positive for valid lanes", b.lane_valid & ~(b.lane_width > 0)),
        ("lane_speed_limit: finite and >= 0 for valid lanes", b.lane_valid & ~(b.lane_speed_limit >= 0)),
        ("lane_successors: -1 or the index of a valid lane of the same scene",
         ~_index_refs_ok(b.lane_successors.astype(np.int64), b.lane_valid) & b.lane_valid[..., None]),
        ("lane_neighbors: -1 or the index of a valid lane of the same scene",
         ~_index_refs_ok(b.lane_neighbors.astype(np.int64), b.lane_valid) & b.lane_valid[..., None]),
        (f"lane_tl: traffic-light codes in {TL_UNKNOWN}..{TL_RED}", (b.lane_tl < TL_UNKNOWN) | (b.lane_tl > TL_RED)),
        ("route_lanes: -1 or the index of a valid lane of the same scene",
         ~_index_refs_ok(b.route_lanes.astype(np.int64), b.lane_valid)),
        ("route_polyline: finite points where valid", ~np.isfinite(b.route_polyline) & b.route_valid[..., None]),
        ("drivable_polygons: finite vertices where valid",
         ~np.isfinite(b.drivable_polygons) & b.drivable_vertex_valid[..., None]),
        ("crosswalks: finite corners", ~np.isfinite(b.crosswalks) & b.crosswalk_valid[..., None, None]),
        ("global_pose: finite x, y, yaw", ~np.isfinite(b.global_pose)),
    ]
    bound = limits.max_abs_coordinate_m
    for name, array, mask in (("ego", b.ego[..., :2], None), ("agents", b.agents[..., :2], b.agent_valid[..., None]),
                              ("lanes", b.lanes, b.lane_valid[:, :, None, None]),
                              ("route_polyline", b.route_polyline, b.route_valid[..., None])):
        far = np.abs(np.nan_to_num(array)) > bound
        checks.append((f"{name}: scene-frame coordinates within ±{bound:g} m", far if mask is None else far & mask))
    problems: dict[int, str] = {}
    for message, bad in checks:
        for i in np.flatnonzero(_first_bad(np.asarray(bad))):
            problems.setdefault(int(i), message)
    return problems


def drop_bad_scenes(batch: SceneBatch, *, file: object, strict: bool, limits: ImportLimits | None = None,
                    check_ego_on_lane: bool = True) -> tuple[SceneBatch, list[dict]]:
    """Validate every scene; return ``(good scenes, skipped)`` with ``skipped`` a list of
    ``{"scene_id", "reason"}``. ``strict``: raise :class:`ImportValidationError` at the first bad
    scene instead. The batch-level checks of ``SceneBatch.validate`` (empty map or route, ego off
    the map) run last and skip scenes the same way.
    """
    ids = [str(s) for s in batch.meta["scene_id"]]
    problems = scene_problems(batch, limits)
    skipped: list[dict] = []
    while True:
        if problems:
            first = min(problems)
            if strict:
                raise ImportValidationError(f"{file}: scene {ids[first]!r}: {problems[first]}")
            keep = np.array([i not in problems for i in range(len(ids))], dtype=bool)
            skipped += [{"scene_id": ids[i], "reason": problems[i]} for i in sorted(problems)]
            batch = batch.subset(np.flatnonzero(keep))
            ids = [s for s, k in zip(ids, keep) if k]
        if len(batch) == 0:
            return batch, skipped
        try:
            batch.validate(check_ego_on_lane=check_ego_on_lane)
            return batch, skipped
        except SceneValidationError as exc:
            index = _scene_index_of(exc, ids)
            if strict or index is None:
                raise ImportValidationError(f"{file}: {exc}") from exc
            problems = {index: str(exc).split(": ", 1)[-1]}


def _scene_index_of(exc: SceneValidationError, ids: Sequence[str]) -> int | None:
    """The scene a ``validate_batch`` message names (``scene 'id' (index i)``), if any."""
    text = str(exc)
    marker = "(index "
    if marker not in text:
        return None
    try:
        index = int(text.split(marker, 1)[1].split(")", 1)[0])
    except ValueError:
        return None
    return index if 0 <= index < len(ids) else None
