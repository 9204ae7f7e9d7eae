"""Argoverse 2 importer: sensor logs and motion-forecasting scenarios → :class:`SceneBatch`.

Files are read with pyarrow (feather/parquet) and json (vector maps); nothing is parsed by hand.
Both sources are first turned into one log on a 10 Hz grid (:class:`_Log`, city frame), then
sliced into planning scenes.

Frames and conventions
----------------------
* AV2's ego frame has its origin at the **centre of the rear axle** (x forward, y left). The
  scene model puts the origin at the centre of the ego box, so the ego position is shifted
  forward by :data:`EGO_REAR_AXLE_TO_CENTER` (1.4 m). The AV2 ego (a Ford Fusion Hybrid) box is
  :data:`EGO_SIZE` = 4.9 m × 2.0 m. Forecasting scenarios give the AV track as an object centre,
  used as is.
* Cuboids in ``annotations.feather`` are in the ego frame *at their own timestamp*: they are
  moved to the city frame with the (interpolated, unsmoothed) ego pose at that timestamp, then
  into each scene's frame (ego box centre and heading at t0).
* Ego speed/acceleration come from Savitzky-Golay derivatives of the 10 Hz resampled ~170 Hz
  poses (no finite-difference spikes); heading comes from the pose quaternion.
* AV2 maps have no traffic-light states and no speed limits: ``lane_tl`` is ``TL_UNKNOWN``
  everywhere (the scorer treats TLC as not applicable), ``lane_speed_limit`` is 25 mph.
* Only VEHICLE and BUS lane segments become lanes (BIKE lanes are part of AV2's drivable-area
  polygons, which are imported as ``drivable_polygons``); the scene model has no lane-type array.

Why the default stride is 0.2 s
-------------------------------
A shared sensor log is 15.5 s; a scene spans 2 s history + 4 s future = 6 s, so t0 can move over
9.5 s. A 0.5 s stride gives only 20 scenes per log; 0.2 s (two 10 Hz sweeps) gives 48 — every
annotation-aligned window — so no sample is interpolated. Overlapping windows are strongly
correlated: split train/val by ``log_id``, never by scene.
"""

from __future__ import annotations

import json
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.feather as feather
import pyarrow.parquet as pq
from scipy.signal import savgol_filter
from scipy.spatial import cKDTree

from ..geometry import closest_on_segments
from ..scene import (
    CYCLIST,
    OTHER,
    PEDESTRIAN,
    STATIC,
    TL_UNKNOWN,
    VEHICLE,
    SceneBatch,
    SceneValidationError,
    empty_batch,
    lateral_distance_to_lanes,
    points_on_drivable,
    resample_polyline,
    to_scene_frame,
    wrap_angle,
)
from .validation import (
    ImportLimitError,
    ImportLimits,
    ImportValidationError,
    check_timestamps,
    drop_bad_scenes,
)

EGO_REAR_AXLE_TO_CENTER = 1.4  # m, AV2 ego frame origin (rear axle) → box centre
EGO_SIZE = (4.9, 2.0)  # m, length × width of the AV2 ego vehicle
SOURCE_DT = 0.1  # s, AV2 annotation sweeps and forecasting steps are 10 Hz
DEFAULT_SPEED_LIMIT = 11.176  # m/s (25 mph); AV2 maps carry no speed limits
ROUTE_BEHIND_M = 10.0
ROUTE_AHEAD_M = 200.0
ROUTE_SPACING_M = 2.0
LANE_POINTS = 20
INTERSECTION_LOOKAHEAD_M = 30.0
NEAR_DRIVE_M = 10.0  # m (+ half the longest lane segment): lanes this close to the logged path are candidates

EGO_CATEGORY = "EGO_VEHICLE"  # the ego's own cuboid in some annotation files: never an agent
SENSOR_CATEGORIES = {
    VEHICLE: (
        "REGULAR_VEHICLE", "LARGE_VEHICLE", "BUS", "BOX_TRUCK", "TRUCK", "TRUCK_CAB",
        "VEHICULAR_TRAILER", "SCHOOL_BUS", "ARTICULATED_BUS", "MESSAGE_BOARD_TRAILER",
        "RAILED_VEHICLE", "OFFICIAL_SIGNALER",
    ),
    PEDESTRIAN: ("PEDESTRIAN", "STROLLER", "WHEELCHAIR", "DOG", "ANIMAL"),
    CYCLIST: ("BICYCLIST", "MOTORCYCLIST", "BICYCLE", "MOTORCYCLE", "WHEELED_RIDER", "WHEELED_DEVICE"),
    STATIC: (
        "BOLLARD", "CONSTRUCTION_CONE", "CONSTRUCTION_BARREL", "SIGN", "STOP_SIGN",
        "MOBILE_PEDESTRIAN_CROSSING_SIGN", "MOBILE_PEDESTRIAN_SIGN", "TRAFFIC_LIGHT_TRAILER",
    ),
}
FORECAST_CATEGORIES = {
    VEHICLE: ("vehicle", "bus"),
    PEDESTRIAN: ("pedestrian",),
    CYCLIST: ("cyclist", "motorcyclist"),
    STATIC: ("static", "background", "construction", "riderless_bicycle"),
}
# Forecasting scenarios carry no box sizes: typical sizes by type (length, width).
DEFAULT_AGENT_SIZE = {VEHICLE: (4.7, 2.0), PEDESTRIAN: (0.7, 0.7), CYCLIST: (2.0, 0.8), STATIC: (0.8, 0.8), OTHER: (1.0, 1.0)}
FORECAST_CITY_CODES = {
    "pittsburgh": "PIT", "austin": "ATX", "miami": "MIA", "palo-alto": "PAO",
    "washington-dc": "WDC", "dearborn": "DTW",
}
STATIC_KEEP_RADIUS = 40.0  # m: static clutter farther than this from the ego at t0 is dropped
STATIC_RANK_PENALTY = 20.0  # m added to a static object's distance when ranking the N kept agents
VEHICLE_LANE_TYPES = ("VEHICLE", "BUS")

ANNOTATION_COLUMNS = (
    "timestamp_ns", "track_uuid", "category", "length_m", "width_m",
    "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m",
)
POSE_COLUMNS = ("timestamp_ns", "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m")
SCENARIO_COLUMNS = ("track_id", "object_type", "timestep", "position_x", "position_y", "heading", "velocity_x", "velocity_y")


class AV2ImportError(ValueError):
    """AV2 input is missing or malformed; the message names the file and the problem."""


@dataclass
class ImportReport:
    """What an import produced and what it skipped.

    ``skipped`` counts rejected windows by reason; ``ego_off_drivable`` lists scene ids where the
    logged ego leaves the drivable area (0.5 m tolerance) at some future step — on real logs those
    point to map gaps or frame bugs and are worth a look.
    """

    scenes: int = 0
    logs: list[str] = field(default_factory=list)
    windows: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    ego_off_drivable: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)
            warnings.warn(message, stacklevel=3)

    def as_dict(self) -> dict:
        return {
            "scenes": self.scenes, "logs": list(self.logs), "windows": self.windows,
            "skipped": dict(self.skipped), "warnings": list(self.warnings),
            "ego_off_drivable": list(self.ego_off_drivable),
        }


@dataclass
class _Map:
    """A vector map in the city frame; lanes resampled to LANE_POINTS points."""

    lanes: np.ndarray  # (M, P, 2)
    width: np.ndarray  # (M,)
    is_intersection: np.ndarray  # (M,) bool
    successors: list[list[int]]  # lane indices
    neighbors: np.ndarray  # (M, 2) left/right same-direction neighbour, -1 none
    polygons: list[np.ndarray]  # each (V, 2)
    crosswalks: np.ndarray  # (C, 4, 2)
    speed_limit: np.ndarray | None = None  # (M,) m/s; None → DEFAULT_SPEED_LIMIT
    _bounds: np.ndarray | None = field(default=None, repr=False)
    _circles: tuple[np.ndarray, np.ndarray] | None = field(default=None, repr=False)

    def lanes_near(self, points: np.ndarray, radius: float) -> np.ndarray:
        """Sorted indices of lanes with a (resampled) point within ``radius`` of any of ``points`` (K, 2)."""
        if not len(self.lanes):
            return np.array([], dtype=np.int64)
        if self._circles is None:  # bounding circle per lane: centre (M, 2), radius (M,)
            centre = self.lanes.mean(1)
            self._circles = (centre, np.linalg.norm(self.lanes - centre[:, None], axis=-1).max(1))
        centre, reach = self._circles
        gap = np.linalg.norm(centre[:, None] - points[None], axis=-1).min(1)
        candidates = np.flatnonzero(gap <= radius + reach)
        dist = np.linalg.norm(self.lanes[candidates][:, :, None] - points[None, None], axis=-1).min(axis=(1, 2))
        return candidates[dist <= radius]

    def polygon_bounds(self) -> np.ndarray:
        """(D, 4) min x, min y, max x, max y of each polygon, computed once."""
        if self._bounds is None:
            self._bounds = np.array([np.concatenate([p.min(0), p.max(0)]) for p in self.polygons]).reshape(-1, 4)
        return self._bounds


@dataclass
class _Log:
    """One log on a uniform 10 Hz grid (K steps), everything in the city frame."""

    log_id: str
    city: str
    path: Path
    ego_xy: np.ndarray  # (K, 2) ego box centre
    ego_yaw: np.ndarray  # (K,) unwrapped
    ego_speed: np.ndarray  # (K,)
    ego_accel: np.ndarray  # (K,)
    agent_xy: np.ndarray  # (A, K, 2)
    agent_yaw: np.ndarray  # (A, K)
    agent_speed: np.ndarray  # (A, K)
    agent_valid: np.ndarray  # (A, K)
    agent_size: np.ndarray  # (A, 2)
    agent_type: np.ndarray  # (A,) int8
    map: _Map
    # Other importers (ScenarioNet) reuse the slicing with their own values for these:
    source: str = "av2"
    ego_size: tuple[float, float] = EGO_SIZE
    lane_tl: np.ndarray | None = None  # (M, K) int8 TL_* per map lane and log step; None → TL_UNKNOWN
    scene_prefix: str | None = None  # scene ids are f"{scene_prefix}-{t0:04d}"; None → av2-<log id[:8]>


# ---------------------------------------------------------------------------------- public API
def import_av2(
    root: str | Path,
    *,
    history_s: float = 2.0,
    future_s: float = 4.0,
    stride_s: float = 0.2,
    dt: float = 0.5,
    max_agents: int = 32,
    map_radius_m: float = 60.0,
    strict: bool = True,
    strict_scenes: bool = False,
    limits: ImportLimits | None = None,
) -> tuple[SceneBatch, ImportReport]:
    """Import every AV2 sensor log and forecasting scenario under ``root`` as planning scenes.

    Args:
        root: a log/scenario folder or any directory above them.
        history_s, future_s, dt: scene timeline (T = history/dt + 1 + future/dt steps).
        stride_s: t0 spacing between consecutive scenes of one log (multiple of 0.1 s).
        max_agents: the N agents nearest the ego at t0 are kept.
        map_radius_m: lanes/polygons/crosswalks within this distance of the ego path are kept.
        strict: raise :class:`AV2ImportError` on the first bad log (default); with False a bad
            log (whatever its error) is skipped, counted under ``skipped`` and named in ``warnings``.
        strict_scenes: raise on the first scene breaking the array schema
            (:func:`~autoscale_core.io.validation.scene_problems`); by default such scenes are
            skipped and reported the same way.
        limits: sizes read from the files (time span, tracks x steps) are checked against these
            before anything is allocated (default :meth:`ImportLimits.from_env`).

    Returns:
        (scenes, report): a validated :class:`SceneBatch` (source "av2") and an
        :class:`ImportReport`.
    """
    root = Path(root)
    steps = {name: _steps(value, name) for name, value in (("history_s", history_s), ("future_s", future_s), ("dt", dt), ("stride_s", stride_s))}
    if steps["dt"] < 1 or steps["stride_s"] < 1 or steps["future_s"] < steps["dt"]:
        raise AV2ImportError(f"dt, stride_s and future_s must be positive (got dt={dt}, stride_s={stride_s}, future_s={future_s})")
    if steps["history_s"] % steps["dt"] or steps["future_s"] % steps["dt"]:
        raise AV2ImportError(f"history_s ({history_s}) and future_s ({future_s}) must be multiples of dt ({dt})")
    limits = limits or ImportLimits.from_env()
    report = ImportReport()
    folders = find_av2_logs(root)
    batches = []
    for kind, folder in folders:
        try:
            log = _load_sensor_log(folder, limits) if kind == "sensor" else _load_scenario(folder, limits)
            _check_length(log, steps)
            batch = _slice_log(log, steps, dt, max_agents, map_radius_m, report)
        except Exception as exc:  # noqa: BLE001 - any failure of one log is that log's problem
            error = exc if isinstance(exc, AV2ImportError) else AV2ImportError(f"{folder}: {type(exc).__name__}: {exc}")
            if strict or isinstance(exc, MemoryError):
                raise error from exc
            report.skip("bad log")
            report.warn(str(error))
            continue
        report.logs.append(log.log_id)
        if batch is not None:
            batches.append(batch)
    if not batches:
        raise AV2ImportError(f"{root}: no valid scenes (skipped: {report.skipped or 'none'})")
    scenes = SceneBatch.concatenate(batches)
    try:
        scenes, bad = drop_bad_scenes(scenes, file=root, strict=strict_scenes, limits=limits)
    except ImportValidationError as exc:
        raise AV2ImportError(str(exc)) from exc
    for problem in bad:
        report.skip(f"invalid scene ({problem['reason']})")
        report.warn(f"{root}: scene {problem['scene_id']!r} skipped: {problem['reason']}")
    if len(scenes) == 0:
        raise AV2ImportError(f"{root}: no valid scenes (skipped: {report.skipped})")
    report.scenes = len(scenes)
    return scenes, report


def find_av2_logs(root: str | Path) -> list[tuple[str, Path]]:
    """(kind, folder) of every sensor log ("sensor") and forecasting scenario ("scenario") under ``root``, sorted."""
    root = Path(root)
    if not root.exists():
        raise AV2ImportError(f"{root}: no such file or directory")
    if root.is_file():
        # A file names its own log folder only: never every log beside it in the parent.
        folder = root.parent
        if (folder / "annotations.feather").is_file():
            return [("sensor", folder)]
        if any(folder.glob("scenario_*.parquet")):
            return [("scenario", folder)]
        raise AV2ImportError(f"{root}: a file that is not part of an AV2 log folder (give the log folder or a folder above it)")
    found = {p.parent: "sensor" for p in root.rglob("annotations.feather")}
    found.update({p.parent: "scenario" for p in root.rglob("scenario_*.parquet")})
    if not found:
        raise AV2ImportError(
            f"{root}: no AV2 logs found (looked for */annotations.feather sensor logs and */scenario_*.parquet scenarios)"
        )
    return sorted(((kind, folder) for folder, kind in found.items()), key=lambda kv: str(kv[1]))


# ---------------------------------------------------------------------------------- reading files
def _steps(seconds: float, name: str) -> int:
    n = seconds / SOURCE_DT
    if abs(n - round(n)) > 1e-6 or n < 0:
        raise AV2ImportError(f"{name}={seconds} s must be a non-negative multiple of {SOURCE_DT} s (the AV2 sweep period)")
    return int(round(n))


def _read_table(path: Path, columns: tuple[str, ...]) -> pa.Table:
    try:
        table = feather.read_table(path) if path.suffix == ".feather" else pq.read_table(path)
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise AV2ImportError(f"{path}: unreadable or truncated ({exc})") from exc
    missing = [c for c in columns if c not in table.column_names]
    if missing:
        raise AV2ImportError(f"{path}: missing columns {missing}")
    if table.num_rows == 0:
        raise AV2ImportError(f"{path}: no rows")
    return table


def _col(table: pa.Table, name: str, dtype=np.float64) -> np.ndarray:
    return table.column(name).to_numpy(zero_copy_only=False).astype(dtype, copy=False)


def _find_map(folder: Path) -> Path:
    maps = sorted(folder.glob("log_map_archive_*.json")) + sorted(folder.glob("map/log_map_archive_*.json"))
    if not maps:
        raise AV2ImportError(f"{folder}: missing map (no log_map_archive_*.json in the folder or its map/ subfolder)")
    return maps[0]


def _load_map(path: Path) -> _Map:
    try:
        data = json.loads(path.read_text())
        segments = list(data["lane_segments"].values())
        areas = list(data.get("drivable_areas", {}).values())
        crossings = list(data.get("pedestrian_crossings", {}).values())
    except (OSError, json.JSONDecodeError, KeyError, AttributeError, TypeError) as exc:
        raise AV2ImportError(f"{path}: not a readable AV2 vector map ({type(exc).__name__}: {exc})") from exc

    def xy(points) -> np.ndarray:
        return np.array([[p["x"], p["y"]] for p in points], dtype=np.float64).reshape(-1, 2)

    try:
        segments = [s for s in segments if s.get("lane_type", "VEHICLE") in VEHICLE_LANE_TYPES]
        ids = {int(s["id"]): i for i, s in enumerate(segments)}
        lanes, width = [], []
        for s in segments:
            left = resample_polyline(xy(s["left_lane_boundary"]), LANE_POINTS)
            right = resample_polyline(xy(s["right_lane_boundary"]), LANE_POINTS)
            lanes.append(0.5 * (left + right))
            width.append(np.linalg.norm(left - right, axis=-1).mean())
        lanes = np.array(lanes).reshape(-1, LANE_POINTS, 2)
        successors = [[ids[int(t)] for t in s.get("successors") or [] if int(t) in ids] for s in segments]
        neighbors = np.full((len(segments), 2), -1, dtype=np.int64)
        for i, s in enumerate(segments):
            for side, key in enumerate(("left_neighbor_id", "right_neighbor_id")):
                j = ids.get(int(s[key])) if s.get(key) is not None else None
                if j is not None and _same_direction(lanes[i], lanes[j]):
                    neighbors[i, side] = j
        polygons = [xy(a["area_boundary"]) for a in areas]
        crosswalks = np.array([_crosswalk_quad(xy(c["edge1"]), xy(c["edge2"])) for c in crossings]).reshape(-1, 4, 2)
        is_intersection = np.array([bool(s.get("is_intersection", False)) for s in segments], dtype=bool)
    except (KeyError, TypeError, ValueError) as exc:
        raise AV2ImportError(f"{path}: malformed map element ({type(exc).__name__}: {exc})") from exc
    if len(lanes) == 0 and not polygons:
        raise AV2ImportError(f"{path}: map has no vehicle lanes and no drivable areas")
    return _Map(lanes, np.maximum(np.array(width), 0.5), is_intersection, successors, neighbors, polygons, crosswalks)


def _same_direction(a: np.ndarray, b: np.ndarray) -> bool:
    return float(np.dot(a[-1] - a[0], b[-1] - b[0])) > 0


def _crosswalk_quad(edge1: np.ndarray, edge2: np.ndarray) -> np.ndarray:
    """Quadrilateral from the two long edges of a crossing (order them so the quad doesn't self-cross)."""
    e1, e2 = edge1[[0, -1]], edge2[[0, -1]]
    if np.dot(e1[1] - e1[0], e2[1] - e2[0]) < 0:
        e2 = e2[::-1]
    return np.stack([e1[0], e1[1], e2[1], e2[0]])


def _quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) quaternions w, x, y, z → (..., 3, 3) rotation matrices."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], -1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], -1),
    ], -2)


def _interp_poses(t_query: np.ndarray, t: np.ndarray, quat: np.ndarray, trans: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ego rotation (K, 3, 3) and translation (K, 3) at query times (normalized lerp; fine at 170 Hz)."""
    quat = quat.copy()
    # Align quaternion signs so neighbours interpolate the short way round.
    flip = np.concatenate([[False], (quat[1:] * quat[:-1]).sum(-1) < 0])
    quat[np.logical_xor.accumulate(flip)] *= -1
    q = np.stack([np.interp(t_query, t, quat[:, k]) for k in range(4)], -1)
    p = np.stack([np.interp(t_query, t, trans[:, k]) for k in range(3)], -1)
    return _quat_to_matrix(q), p


def _savgol(values: np.ndarray, deriv: int, window: int = 9, order: int = 3) -> np.ndarray:
    """Savitzky-Golay smoothing/derivative along axis 0 at 10 Hz (window shrinks for short logs)."""
    window = min(window, len(values) - (1 - len(values) % 2))
    if window < order + 2:
        return np.gradient(values, SOURCE_DT, axis=0) if deriv == 1 else np.zeros_like(values)
    return savgol_filter(values, window, min(order, window - 1), deriv=deriv, delta=SOURCE_DT, axis=0, mode="interp")


def _ego_dynamics(xy: np.ndarray, yaw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Smoothed signed speed (along the heading) and longitudinal acceleration, (K,) each."""
    velocity = _savgol(xy, deriv=1)
    speed = velocity[:, 0] * np.cos(yaw) + velocity[:, 1] * np.sin(yaw)
    accel = _savgol(speed, deriv=1, order=2)
    return speed, accel


def _category_codes(names: np.ndarray, table: dict[int, tuple[str, ...]], path: Path, report_warnings: list[str]) -> np.ndarray:
    lookup = {name: code for code, group in table.items() for name in group}
    codes = np.array([lookup.get(str(n), OTHER) for n in names], dtype=np.int8)
    unknown = sorted({str(n) for n in names if str(n) not in lookup})
    if unknown:
        report_warnings.append(f"{path}: unknown categories {unknown} mapped to 'other'")
    return codes


def _track_speed(xy: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(A, K) speeds from positions (A, K, 2): widest available central difference (±0.2 s,
    then ±0.1 s), else one-sided; 0 for single observations."""
    speed = np.zeros(valid.shape)
    done = np.zeros(valid.shape, dtype=bool)
    K = valid.shape[1]
    for back, ahead in ((2, 2), (1, 1), (0, 1), (1, 0)):
        k = np.arange(back, K - ahead)
        if len(k) == 0:
            continue
        ok = valid[:, k] & valid[:, k - back] & valid[:, k + ahead] & ~done[:, k]
        d = np.linalg.norm(xy[:, k + ahead] - xy[:, k - back], axis=-1) / ((back + ahead) * SOURCE_DT)
        speed[:, k] = np.where(ok, d, speed[:, k])
        done[:, k] |= ok
    return speed


def _check_log_grid(path: Path, tracks: int, steps: int, limits: ImportLimits) -> None:
    """The (tracks, steps) arrays of one log are allocated from file values: bound them first."""
    span = (steps - 1) * SOURCE_DT
    if span > limits.max_time_span_s:
        raise AV2ImportError(f"{path}: the log spans {span:,.0f} s ({steps:,} steps at 10 Hz), above the limit of "
                             f"{limits.max_time_span_s:,.0f} s (max_time_span_s; AUTOSCALE_LIMIT_MAX_TIME_SPAN_S)")
    if tracks * steps > limits.max_log_track_steps:
        raise AV2ImportError(f"{path}: {tracks:,} tracks x {steps:,} steps exceeds the limit of "
                             f"{limits.max_log_track_steps:,} (max_log_track_steps; AUTOSCALE_LIMIT_MAX_LOG_TRACK_STEPS)")


def _unique_poses(path: Path, t: np.ndarray, q: np.ndarray, p: np.ndarray):
    """Sorted poses without repeated time stamps (real logs repeat some, with the same pose);
    a time stamp given twice with different poses is an error."""
    t_unique, first = np.unique(t, return_index=True)
    if len(t_unique) == len(t):
        return t, q, p
    again = np.setdiff1d(np.arange(len(t)), first)
    same = np.searchsorted(t_unique, t[again])
    if not (np.allclose(q[again], q[first][same], equal_nan=True) and np.allclose(p[again], p[first][same], equal_nan=True)):
        raise AV2ImportError(f"{path}: timestamp_ns repeats with different poses (e.g. {int(t[again[0]])})")
    return t_unique, q[first], p[first]


def _drop_ego_track(ann: pa.Table, path: Path) -> pa.Table:
    """Annotations without the ego's own cuboid (category EGO_VEHICLE, written by some av2
    tooling): kept, it would become an agent sitting on the ego and collide with every plan."""
    is_ego = pc.equal(ann.column("category"), EGO_CATEGORY)
    kept = ann.filter(pc.invert(pc.fill_null(is_ego, False)))
    if kept.num_rows == 0:
        raise AV2ImportError(f"{path}: only {EGO_CATEGORY} rows (the ego's own track), no other objects")
    return kept


def _load_sensor_log(folder: Path, limits: ImportLimits) -> _Log:
    ann_path = folder / "annotations.feather"
    pose_path = folder / "city_SE3_egovehicle.feather"
    if not pose_path.exists():
        raise AV2ImportError(f"{ann_path}: annotations without ego poses ({pose_path.name} is missing)")
    map_path = _find_map(folder)
    ann = _drop_ego_track(_read_table(ann_path, ANNOTATION_COLUMNS), ann_path)
    poses = _read_table(pose_path, POSE_COLUMNS)
    amap = _load_map(map_path)
    match = re.search(r"____([A-Z]{3})_city", map_path.name)
    city = match.group(1) if match else "unknown"

    pose_t = _col(poses, "timestamp_ns", np.int64)
    order = np.argsort(pose_t, kind="stable")
    pose_t = pose_t[order]
    pose_q = np.stack([_col(poses, c) for c in ("qw", "qx", "qy", "qz")], -1)[order]
    pose_p = np.stack([_col(poses, c) for c in ("tx_m", "ty_m", "tz_m")], -1)[order]
    pose_t, pose_q, pose_p = _unique_poses(pose_path, pose_t, pose_q, pose_p)
    try:
        check_timestamps(pose_t, limits, file=pose_path, field="timestamp_ns", unit_s=1e-9)
    except (ImportValidationError, ImportLimitError) as exc:
        raise AV2ImportError(str(exc)) from exc
    if not (np.isfinite(pose_q).all() and np.isfinite(pose_p).all()):
        raise AV2ImportError(f"{pose_path}: ego poses must be finite (NaN or inf in qw..qz / tx_m..tz_m)")
    ann_t = _col(ann, "timestamp_ns", np.int64)
    sweeps = np.unique(ann_t)
    if len(sweeps) == 0:
        raise AV2ImportError(f"{ann_path}: no annotations")
    t_origin = sweeps[0]
    if sweeps[0] < pose_t[0] - 1e8 or sweeps[-1] > pose_t[-1] + 1e8:
        raise AV2ImportError(f"{pose_path}: ego poses do not cover the annotation time range")
    # Uniform 10 Hz grid from the first sweep; each sweep snaps to its nearest grid step.
    num_tracks = len(np.unique(ann.column("track_uuid").to_numpy(zero_copy_only=False)))
    _check_log_grid(ann_path, num_tracks, int(round((sweeps[-1] - t_origin) / 1e9 / SOURCE_DT)) + 1, limits)
    grid = np.arange(int(round((sweeps[-1] - t_origin) / 1e9 / SOURCE_DT)) + 1)
    grid_ns = t_origin + (grid * SOURCE_DT * 1e9).astype(np.int64)
    to_s = lambda ns: (ns - t_origin) / 1e9  # noqa: E731

    rot, trans = _interp_poses(to_s(grid_ns), to_s(pose_t), pose_q, pose_p)
    yaw = np.unwrap(np.arctan2(rot[:, 1, 0], rot[:, 0, 0]))
    ego_xy = trans[:, :2] + EGO_REAR_AXLE_TO_CENTER * np.stack([np.cos(yaw), np.sin(yaw)], -1)
    speed, accel = _ego_dynamics(ego_xy, yaw)

    # Cuboids: ego frame at their own timestamp → city frame with the exact pose at that time.
    a_rot, a_trans = _interp_poses(to_s(ann_t), to_s(pose_t), pose_q, pose_p)
    box_p = np.stack([_col(ann, c) for c in ("tx_m", "ty_m", "tz_m")], -1)
    box_r = _quat_to_matrix(np.stack([_col(ann, c) for c in ("qw", "qx", "qy", "qz")], -1))
    city_p = np.einsum("nij,nj->ni", a_rot, box_p) + a_trans
    city_r = a_rot @ box_r
    city_yaw = np.arctan2(city_r[:, 1, 0], city_r[:, 0, 0])

    track_names, track = np.unique(ann.column("track_uuid").to_numpy(zero_copy_only=False), return_inverse=True)
    step = np.rint(to_s(ann_t) / SOURCE_DT).astype(np.int64)
    A, K = len(track_names), len(grid)
    agent_xy = np.zeros((A, K, 2))
    agent_yaw = np.zeros((A, K))
    agent_valid = np.zeros((A, K), dtype=bool)
    agent_xy[track, step] = city_p[:, :2]
    agent_yaw[track, step] = city_yaw
    agent_valid[track, step] = True
    length, width = _col(ann, "length_m"), _col(ann, "width_m")
    size = np.stack([np.bincount(track, length, A), np.bincount(track, width, A)], -1) / np.bincount(track, minlength=A)[:, None]
    categories = ann.column("category").to_numpy(zero_copy_only=False)
    first_row = np.unique(track, return_index=True)[1]
    notes: list[str] = []
    agent_type = _category_codes(categories[first_row], SENSOR_CATEGORIES, ann_path, notes)
    agent_speed = _track_speed(agent_xy, agent_valid)
    agent_speed[agent_type == STATIC] = 0.0  # cuboid jitter on parked clutter is not motion
    log = _Log(
        folder.name, city, folder, ego_xy, yaw, speed, accel,
        agent_xy, agent_yaw, agent_speed, agent_valid, size, agent_type, amap,
    )
    log.notes = notes  # type: ignore[attr-defined]
    return log


def _load_scenario(folder: Path, limits: ImportLimits) -> _Log:
    paths = sorted(folder.glob("scenario_*.parquet"))
    path = paths[0]
    map_path = _find_map(folder)
    table = _read_table(path, SCENARIO_COLUMNS)
    amap = _load_map(map_path)
    track_ids = table.column("track_id").to_numpy(zero_copy_only=False).astype(str)
    step = _col(table, "timestep", np.int64)
    if "AV" not in set(track_ids):
        raise AV2ImportError(f"{path}: no 'AV' track (the ego) in the scenario")
    city_raw = str(table.column("city")[0]) if "city" in table.column_names else "unknown"
    city = FORECAST_CITY_CODES.get(city_raw.lower(), city_raw.upper())
    if len(step) == 0 or step.min() < 0:
        raise AV2ImportError(f"{path}: timestep must be whole numbers >= 0 (got {step.min() if len(step) else 'no rows'})")
    K = int(step.max()) + 1
    names, track = np.unique(track_ids, return_inverse=True)
    _check_log_grid(path, len(names), K, limits)
    xy = np.stack([_col(table, "position_x"), _col(table, "position_y")], -1)
    heading = _col(table, "heading")
    vel = np.hypot(_col(table, "velocity_x"), _col(table, "velocity_y"))
    A = len(names)
    all_xy = np.zeros((A, K, 2))
    all_yaw = np.zeros((A, K))
    all_speed = np.zeros((A, K))
    all_valid = np.zeros((A, K), dtype=bool)
    all_xy[track, step] = xy
    all_yaw[track, step] = heading
    all_speed[track, step] = vel
    all_valid[track, step] = True
    ego = int(np.flatnonzero(names == "AV")[0])
    if not (np.isfinite(all_xy[ego]).all() and np.isfinite(all_yaw[ego]).all()):
        raise AV2ImportError(f"{path}: the AV track (the ego) has NaN or inf in position_x / position_y / heading")
    if not all_valid[ego].all():
        raise AV2ImportError(f"{path}: the AV track has gaps; cannot build a continuous ego timeline")
    ego_yaw = np.unwrap(all_yaw[ego])
    ego_xy = all_xy[ego]
    speed, accel = _ego_dynamics(ego_xy, ego_yaw)
    others = np.arange(A) != ego
    types = table.column("object_type").to_numpy(zero_copy_only=False).astype(str)
    first_row = np.unique(track, return_index=True)[1]
    notes: list[str] = []
    agent_type = _category_codes(types[first_row][others], FORECAST_CATEGORIES, path, notes)
    size = np.array([DEFAULT_AGENT_SIZE[int(t)] for t in agent_type], dtype=np.float64).reshape(-1, 2)
    log = _Log(
        folder.name, city, folder, ego_xy, ego_yaw, speed, accel,
        all_xy[others], all_yaw[others], all_speed[others], all_valid[others], size, agent_type, amap,
    )
    log.notes = notes  # type: ignore[attr-defined]
    return log


def _check_length(log: _Log, steps: dict[str, int]) -> None:
    need = steps["history_s"] + steps["future_s"] + 1
    if len(log.ego_xy) < need:
        raise AV2ImportError(
            f"{log.path}: log is {(len(log.ego_xy) - 1) * SOURCE_DT:.1f} s long, shorter than one scene "
            f"({(need - 1) * SOURCE_DT:.1f} s of history + future)"
        )


# ---------------------------------------------------------------------------------- route
def _project(points: np.ndarray, lanes: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distance, arc position and lane heading of each point on each lane.

    points (K, 2), lanes (M, P, 2) → three (K, M) arrays.
    """
    a, b = lanes[:, :-1], lanes[:, 1:]
    ab = b - a
    seg_len = np.linalg.norm(ab, axis=-1)
    t, dist = closest_on_segments(points[:, None, None], a, ab, np.maximum(seg_len**2, 1e-9))  # (K, M, P-1)
    seg = dist.argmin(-1)  # (K, M)
    s0 = np.concatenate([np.zeros((len(lanes), 1)), np.cumsum(seg_len, -1)], -1)  # (M, P)
    m = np.arange(len(lanes))[None]
    seg_t = np.take_along_axis(t, seg[..., None], -1)[..., 0]
    arc = s0[m, seg] + seg_t * seg_len[m, seg]
    lane_heading = np.arctan2(ab[..., 1], ab[..., 0])[m, seg]
    return np.take_along_axis(dist, seg[..., None], -1)[..., 0], arc, lane_heading


def _driven_lanes(log: _Log) -> list[tuple[int, int, int]]:
    """Runs (lane, first step, last step) of the lane the logged ego occupies, in time order.

    Candidates at each step are lanes whose corridor (+1 m) holds the ego and whose direction is
    within 60° of its heading; the current lane is kept while it stays a candidate, then a successor
    is preferred, then a same-direction neighbour (lane change), then the closest candidate.
    """
    amap = log.map
    if len(amap.lanes) == 0:
        return []
    # Only lanes with a point near the drive can hold the ego: project onto those (a ScenarioNet
    # map holds hundreds of lanes around a 20 s drive).
    reach = NEAR_DRIVE_M + 0.5 * float(np.linalg.norm(np.diff(amap.lanes, axis=1), axis=-1).max(initial=0.0))
    nearest = cKDTree(log.ego_xy).query(amap.lanes.reshape(-1, 2), distance_upper_bound=reach)[0]
    near = np.flatnonzero(np.isfinite(nearest.reshape(len(amap.lanes), -1)).any(-1))
    dist = np.full((len(log.ego_xy), len(amap.lanes)), np.inf)
    lane_heading = np.zeros_like(dist)
    if len(near):
        dist[:, near], _, lane_heading[:, near] = _project(log.ego_xy, amap.lanes[near])
    dyaw = np.abs(wrap_angle(lane_heading - log.ego_yaw[:, None]))
    ok = (dist <= 0.5 * amap.width[None] + 1.0) & (dyaw < np.pi / 3)
    cost = dist + 3.0 * dyaw
    current, runs = -1, []
    for k in range(len(log.ego_xy)):
        candidates = np.flatnonzero(ok[k])
        if len(candidates) == 0:
            continue
        if current in candidates:
            choice = current
        else:
            preferred = [c for c in candidates if current >= 0 and c in amap.successors[current]]
            preferred = preferred or [c for c in candidates if current >= 0 and c in amap.neighbors[current]]
            pool = np.array(preferred or candidates)
            choice = int(pool[np.argmin(cost[k, pool])])
        if choice != current:
            runs.append([choice, k, k])
            current = choice
        runs[-1][2] = k
    return [tuple(r) for r in runs]


def _route_polyline(log: _Log, runs: list[tuple[int, int, int]]) -> tuple[list[int], np.ndarray, np.ndarray]:
    """Route lane list (driven lanes, then successors), dense (≈0.5 m) city polyline, and the
    polyline arc position of the ego at every log step ((K,), NaN where off the route)."""
    amap = log.map
    if not runs:
        # No lane matched (e.g. a parking lot): the route is the logged path itself.
        return [], log.ego_xy.copy(), np.full(len(log.ego_xy), np.nan)
    lanes = amap.lanes
    pieces = []
    for n, (lane, first, last) in enumerate(runs):
        line = lanes[lane]
        prev_lane = runs[n - 1][0] if n else None
        next_lane = runs[n + 1][0] if n + 1 < len(runs) else None
        _, arc, _ = _project(log.ego_xy[[first, last]], line[None])
        length = np.linalg.norm(np.diff(line, axis=0), axis=-1).sum()
        start = 0.0 if prev_lane is None or lane in amap.successors[prev_lane] else min(arc[0, 0] + 8.0, length)
        end = length if next_lane is None or next_lane in amap.successors[lane] else arc[1, 0]
        pieces.append(_cut(line, start, end))
    route = [r[0] for r in runs]
    ahead = sum(np.linalg.norm(np.diff(p, axis=0), axis=-1).sum() for p in pieces)
    # Extend along the straightest successor until far enough ahead or the map ends.
    current = route[-1]
    while ahead < ROUTE_AHEAD_M + 20 and amap.successors[current]:
        direction = lanes[current][-1] - lanes[current][-2]
        options = [s for s in amap.successors[current] if s not in route]
        if not options:
            break
        turn = [abs(wrap_angle(np.arctan2(*(lanes[s][1] - lanes[s][0])[::-1]) - np.arctan2(direction[1], direction[0]))) for s in options]
        current = options[int(np.argmin(turn))]
        route.append(current)
        pieces.append(lanes[current])
        ahead += np.linalg.norm(np.diff(lanes[current], axis=0), axis=-1).sum()
    line = np.concatenate(pieces)
    keep = np.concatenate([[True], np.linalg.norm(np.diff(line, axis=0), axis=-1) > 1e-3])
    line = line[keep]
    length = np.linalg.norm(np.diff(line, axis=0), axis=-1).sum()
    dense = resample_polyline(line, max(int(np.ceil(length / 0.5)) + 1, 2))
    # Ego arc position on the route: nearest dense point, searched forward so loops can't confuse it.
    d = np.linalg.norm(log.ego_xy[:, None] - dense[None], axis=-1)
    arc = np.arange(len(dense)) * (length / max(len(dense) - 1, 1))
    ego_arc = arc[d.argmin(-1)]
    ego_arc[d.min(-1) > 5.0] = np.nan
    return route, dense, ego_arc


def _cut(line: np.ndarray, start: float, end: float) -> np.ndarray:
    s = np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(line, axis=0), axis=-1))])
    end = max(end, start + 0.5)
    inner = line[(s > start) & (s < end)]
    at = lambda v: np.array([np.interp(v, s, line[:, 0]), np.interp(v, s, line[:, 1])])  # noqa: E731
    return np.concatenate([at(start)[None], inner, at(min(end, s[-1]))[None]])


# ---------------------------------------------------------------------------------- slicing
def _slice_log(log: _Log, steps: dict[str, int], dt: float, max_agents: int, radius: float, report: ImportReport) -> SceneBatch | None:
    for note in getattr(log, "notes", []):
        report.warn(note)
    runs = _driven_lanes(log)
    if not runs:
        report.warn(f"{log.path}: the logged ego is on no map lane; using its own path as the route")
    route, route_line, ego_arc = _route_polyline(log, runs)
    lane_at_step = np.full(len(log.ego_xy), -1)
    for lane, first, last in runs:
        lane_at_step[first : last + 1] = lane
    H, F, step = steps["history_s"] // steps["dt"], steps["future_s"] // steps["dt"], steps["dt"]
    first_t0, last_t0 = steps["history_s"], len(log.ego_xy) - 1 - steps["future_s"]
    scenes = []
    for t0 in range(first_t0, last_t0 + 1, steps["stride_s"]):
        report.windows += 1
        idx = t0 + step * (np.arange(H + 1 + F) - H)
        scenes.append(_build_scene(log, t0, idx, H, dt, max_agents, radius, route, route_line, ego_arc, lane_at_step))
    if not scenes:
        return None
    batch = SceneBatch.concatenate(scenes)
    try:  # one vectorized check for the whole log; scene by scene only when something fails
        batch.validate()
    except SceneValidationError:
        good = []
        for i in range(len(batch)):
            try:
                batch[i].validate()
                good.append(i)
            except SceneValidationError as exc:
                report.skip(_reason(str(exc)))
        if not good:
            return None
        batch = batch.subset(good)
    off = _ego_leaves_drivable(batch)
    report.ego_off_drivable.extend(str(s) for s in batch.meta["scene_id"][off])
    return batch


def _ego_leaves_drivable(batch: SceneBatch, margin: float = 0.5) -> np.ndarray:
    """(S,) bool: the logged ego centre leaves lanes ∪ drivable polygons at some future step.

    Same test as :func:`points_on_drivable`, but the polygon test (AV2 areas have hundreds of
    vertices) only runs for the few scenes whose ego leaves every lane corridor.
    """
    future = batch.ego[:, batch.history_steps + 1 :, :2]
    lateral = lateral_distance_to_lanes(batch, future)
    in_lane = ((lateral <= 0.5 * batch.lane_width[:, None, :] + margin) & batch.lane_valid[:, None, :]).any(-1)
    check = np.flatnonzero(~in_lane.all(-1))
    off = np.zeros(len(batch), dtype=bool)
    if len(check):
        sub = batch.subset(check)
        off[check] = ~points_on_drivable(sub, future[check], margin=margin).all(-1)
    return off


def _reason(message: str) -> str:
    for key in ("empty route", "empty map", "off every lane", "NaN or inf", "width"):
        if key in message:
            return {"off every lane": "ego off map at t0", "NaN or inf": "non-finite values", "width": "bad lane width"}.get(key, key)
    return "invalid scene"


def _build_scene(log, t0, idx, H, dt, max_agents, radius, route, route_line, ego_arc, lane_at_step) -> SceneBatch:
    pose = np.array([log.ego_xy[t0, 0], log.ego_xy[t0, 1], wrap_angle(log.ego_yaw[t0])])
    ego_path = log.ego_xy[idx]
    amap = log.map

    # Agents: nearest at t0 (or, if absent at t0, nearest over the window + 5 m); static clutter ranks
    # 20 m farther and is dropped beyond 40 m.
    valid = log.agent_valid[:, idx]
    dist = np.linalg.norm(log.agent_xy[:, idx] - ego_path[None], axis=-1)
    dist = np.where(valid, dist, np.inf)
    key = np.where(valid[:, H], dist[:, H], dist.min(-1) + 5.0)
    static = log.agent_type == STATIC
    key = np.where(static & (key > STATIC_KEEP_RADIUS), np.inf, key)
    key = np.where(static, key + STATIC_RANK_PENALTY, key)  # clutter yields slots to road users
    keep = np.argsort(key, kind="stable")[: max_agents]
    keep = keep[np.isfinite(key[keep])]

    # Map elements near the ego path; route lanes always kept so route_lanes can index them.
    remaining = lane_at_step[idx[0] :]
    route_here = [l for l in dict.fromkeys(remaining[remaining >= 0].tolist())]
    if route_here:
        route_here += route[route.index(route_here[-1]) + 1 :]
    lane_near = amap.lanes_near(ego_path, radius)
    lane_ids = np.array(list(dict.fromkeys(lane_near.tolist() + route_here)), dtype=np.int64)
    local = {int(g): i for i, g in enumerate(lane_ids)}
    lo, hi = ego_path.min(0) - radius, ego_path.max(0) + radius
    bounds = amap.polygon_bounds()
    overlap = (bounds[:, 2:] >= lo).all(-1) & (bounds[:, :2] <= hi).all(-1)
    polygons = [amap.polygons[i] for i in np.flatnonzero(overlap) if len(amap.polygons[i]) >= 3]
    cw = amap.crosswalks
    cw = cw[(np.linalg.norm(cw.mean(1)[:, None] - ego_path[None], axis=-1).min(-1) <= radius)] if len(cw) else cw

    # Route polyline: ROUTE_BEHIND_M behind the ego at t0 to ROUTE_AHEAD_M ahead, ≤ 2 m spacing.
    seg = np.linalg.norm(np.diff(route_line, axis=0), axis=-1)
    s = np.concatenate([[0.0], np.cumsum(seg)])
    s0 = ego_arc[t0] if np.isfinite(ego_arc[t0]) else s[np.linalg.norm(route_line - pose[:2], axis=-1).argmin()]
    a, b = max(s0 - ROUTE_BEHIND_M, 0.0), min(s0 + ROUTE_AHEAD_M, s[-1])
    count = max(int(np.ceil((b - a) / ROUTE_SPACING_M)) + 1, 2)
    targets = np.linspace(a, b, count)
    route_pts = np.stack([np.interp(targets, s, route_line[:, 0]), np.interp(targets, s, route_line[:, 1])], -1)

    max_succ = max([len(amap.successors[g]) for g in lane_ids] + [1])
    batch = empty_batch(
        1, num_agents=len(keep), num_lanes=len(lane_ids), lane_points=LANE_POINTS,
        num_successors=max_succ, num_polygons=len(polygons),
        polygon_vertices=max([len(p) for p in polygons] + [3]), num_crosswalks=len(cw),
        route_lanes=max(len(route_here), 1), route_points=count, dt=dt, history_steps=H,
        future_steps=len(idx) - H - 1,
    )
    yaw0 = pose[2]
    batch.ego[0, :, :2] = to_scene_frame(ego_path, pose)
    batch.ego[0, :, 2] = wrap_angle(log.ego_yaw[idx] - yaw0)
    batch.ego[0, :, 3] = log.ego_speed[idx]
    batch.ego[0, :, 4] = log.ego_accel[idx]
    batch.ego_size[0] = log.ego_size
    if len(keep):
        kv = valid[keep]
        batch.agents[0, :, :, :2] = np.where(kv[..., None], to_scene_frame(log.agent_xy[keep][:, idx], pose), 0.0)
        batch.agents[0, :, :, 2] = np.where(kv, wrap_angle(log.agent_yaw[keep][:, idx] - yaw0), 0.0)
        batch.agents[0, :, :, 3] = np.where(kv, log.agent_speed[keep][:, idx], 0.0)
        batch.agent_valid[0] = kv
        batch.agent_size[0] = log.agent_size[keep]
        batch.agent_type[0] = log.agent_type[keep]
    if len(lane_ids):
        batch.lanes[0] = to_scene_frame(amap.lanes[lane_ids], pose)
        batch.lane_valid[0] = True
        batch.lane_width[0] = amap.width[lane_ids]
        batch.lane_speed_limit[0] = DEFAULT_SPEED_LIMIT if amap.speed_limit is None else amap.speed_limit[lane_ids]
        batch.lane_is_intersection[0] = amap.is_intersection[lane_ids]
        for i, g in enumerate(lane_ids):
            succ = [local[x] for x in amap.successors[g] if x in local]
            batch.lane_successors[0, i, : len(succ)] = succ
            batch.lane_neighbors[0, i] = [local.get(int(n), -1) for n in amap.neighbors[g]]
        # AV2 logs carry no traffic-light states; other sources may (log.lane_tl).
        batch.lane_tl[0] = TL_UNKNOWN if log.lane_tl is None else log.lane_tl[lane_ids][:, idx]
    for i, p in enumerate(polygons):
        batch.drivable_polygons[0, i, : len(p)] = to_scene_frame(p, pose)
        batch.drivable_vertex_valid[0, i, : len(p)] = True
    if len(cw):
        batch.crosswalks[0] = to_scene_frame(cw, pose)
        batch.crosswalk_valid[0] = True
    batch.route_lanes[0, : len(route_here)] = [local[g] for g in route_here]
    batch.route_polyline[0] = to_scene_frame(route_pts, pose)
    batch.route_valid[0] = True
    batch.global_pose[0] = pose

    # Topology: the route crosses an intersection lane within INTERSECTION_LOOKAHEAD_M of the ego.
    crosses = False
    ahead = route_here[route_here.index(lane_at_step[t0]) :] if lane_at_step[t0] in route_here else route_here
    if ahead:
        near = np.linalg.norm(amap.lanes[ahead] - pose[:2], axis=-1).min(-1) <= INTERSECTION_LOOKAHEAD_M
        crosses = bool((amap.is_intersection[ahead] & near).any())
    batch.meta.update(
        scene_id=np.array([f"{log.scene_prefix or 'av2-' + log.log_id[:8]}-{t0:04d}"], dtype=object),
        source=np.array([log.source], dtype=object),
        city=np.array([log.city], dtype=object),
        topology=np.array(["intersection" if crosses else "urban_street"], dtype=object),
        maneuver=np.array([_maneuver(batch, lane_at_step[idx[H:]], amap)], dtype=object),
        events=np.array([""], dtype=object),
        log_id=np.array([log.log_id], dtype=object),
        parent_id=np.array([""], dtype=object),
        t0=np.array([t0 * SOURCE_DT]),
    )
    return batch


def _maneuver(scene: SceneBatch, lanes_ahead: np.ndarray, amap: _Map) -> str:
    """The embedded world's maneuver vocabulary, first match in its priority order:
    lane_change > left_turn / right_turn > stop > follow > straight.

    A turn is the logged future turning by > 20°, or the route turning by > 30° within the
    distance the ego covers in its future (+ 5 m); follow = a valid vehicle ahead at t0 within
    40 m and 1.8 m of the route.
    """
    H = scene.history_steps
    ego = scene.ego[0]
    seq = [int(l) for l in dict.fromkeys(lanes_ahead.tolist()) if l >= 0]
    if any(b in amap.neighbors[a] for a, b in zip(seq, seq[1:])):
        return "lane_change"
    route = scene.route_polyline[0][scene.route_valid[0]]
    reach = np.linalg.norm(np.diff(ego[H:, :2], axis=0), axis=-1).sum() + 5.0
    turn = float(ego[-1, 2])
    seg = np.diff(route, axis=0)
    arc = np.concatenate([[0.0], np.cumsum(np.linalg.norm(seg, axis=-1))])
    s0 = arc[np.linalg.norm(route, axis=-1).argmin()]
    heading = np.unwrap(np.arctan2(seg[:, 1], seg[:, 0]))
    within = (arc[1:] > s0) & (arc[1:] <= s0 + reach)
    if within.any():
        route_turn = heading[within][-1] - heading[np.flatnonzero(within)[0]]
        if abs(route_turn) > abs(turn) and abs(route_turn) > np.radians(30):
            turn = float(route_turn)
    if abs(turn) > np.radians(20):
        return "left_turn" if turn > 0 else "right_turn"
    if ego[H + 1 :, 3].min() < 0.3:
        return "stop"
    at_t0 = (scene.agent_type[0] == VEHICLE) & scene.agent_valid[0, :, H]
    if at_t0.any() and len(route):
        pos = scene.agents[0, at_t0, H, :2]
        d = np.linalg.norm(pos[:, None] - route[None], axis=-1)
        ahead = (d.min(-1) < 1.8) & (arc[d.argmin(-1)] > s0) & (arc[d.argmin(-1)] - s0 < 40.0)
        if ahead.any():
            return "follow"
    return "straight"
