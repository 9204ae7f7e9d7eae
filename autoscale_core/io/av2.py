"""Argoverse 2 importer: sensor logs and motion-forecasting scenarios → :class:`SceneBatch`.

Files are read with pyarrow (feather/parquet) and json (vector maps); nothing is parsed by hand.
Both sources are first turned into one log on a 10 Hz grid (:class:`~.driving_log._Log`, city
frame), then sliced into planning scenes (:mod:`.log_slicing`, shared with ScenarioNet). Files
are read by :mod:`.av2_read`.

Frames and conventions
----------------------
* AV2's ego frame has its origin at the **centre of the rear axle** (x forward, y left). The
  scene model puts the origin at the centre of the ego box, so the ego position is shifted
  forward by :data:`EGO_REAR_AXLE_TO_CENTER` (1.4 m). The AV2 ego (a Ford Fusion Hybrid) box is
  :data:`~.driving_log.EGO_SIZE` = 4.9 m × 2.0 m. Forecasting scenarios give the AV track as an object centre,
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

import re
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from ..scene import (
    CYCLIST,
    OTHER,
    PEDESTRIAN,
    STATIC,
    VEHICLE,
    SceneBatch,
)
from .av2_read import AV2ImportError, _col, _find_map, _load_map, _read_table
from .driving_log import SOURCE_DT, ImportReport, _ego_dynamics, _Log
from .log_slicing import _slice_log
from .validation import (
    ImportLimitError,
    ImportLimits,
    ImportValidationError,
    check_timestamps,
    drop_bad_scenes,
)

EGO_REAR_AXLE_TO_CENTER = 1.4  # m, AV2 ego frame origin (rear axle) → box centre

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

ANNOTATION_COLUMNS = (
    "timestamp_ns", "track_uuid", "category", "length_m", "width_m",
    "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m",
)
POSE_COLUMNS = ("timestamp_ns", "qw", "qx", "qy", "qz", "tx_m", "ty_m", "tz_m")
SCENARIO_COLUMNS = ("track_id", "object_type", "timestep", "position_x", "position_y", "heading", "velocity_x", "velocity_y")


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
