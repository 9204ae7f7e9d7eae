"""ScenarioNet importer: nuScenes, Waymo, nuPlan, AV2, … scenario files → :class:`SceneBatch`.

ScenarioNet (metadriverse/scenarionet) converts many driving datasets into one "scenario
description": a pickle of one dict per scene (``tracks``, ``map_features``,
``dynamic_map_states``, ``metadata``; see docs/scenarionet.md). This module

* reads loose ``*.pkl`` scene files and ScenarioNet database folders (``dataset_summary.pkl`` +
  ``dataset_mapping.pkl``), one file at a time, with a **restricted unpickler**: only the numpy,
  builtins and collections globals the format needs are resolved; any other global is refused
  with an error naming it, and nothing it names is imported or called;
* checks each scenario (:func:`check_scenario`, the one place for input validation);
* turns it into the AV2 importer's 10 Hz city-frame log and reuses that importer's slicing
  (route, driven lanes, agents, map cut-out, maneuvers): 2 s history + 4 s future scenes at a
  configurable stride, ``source`` = the scenario's ``metadata["dataset"]``.

Conventions
-----------
* Ego = the track named by ``metadata["sdc_id"]``; only its longest run of valid, finite steps is
  used. nuScenes ego poses are at the rear axle: shifted forward by
  :data:`EGO_ORIGIN_TO_CENTER_M` ``["nuscenes"]``. ScenarioNet's nuScenes converter writes the ego
  box as 1.73 m long × 4.08 m wide (swapped): an ego box wider than long is swapped back.
* Timestamps ``metadata["ts"]`` (else ``sample_rate``) are resampled to a 0.1 s grid (linear in
  position and heading, valid where both neighbours are); the scene model's 0.5 s timeline is
  taken from that grid.
* Lanes (``LANE_*`` but bike lanes) are cut into pieces of ≤ :data:`LANE_PIECE_M` so the scene
  model's 20-point lanes follow curves; successors from ``exit_lanes`` or, where absent
  (nuScenes), from touching end/start points; neighbours from ``left/right_neighbor``.
* Drivable area = lane corridors (width from Waymo's ``width`` or the nuScenes lane polygon's
  area / length) ∪ nuScenes lane polygons and driveways as ``drivable_polygons``.
* Traffic lights from ``dynamic_map_states`` control entry to their lane (first piece); a
  scenario without any (nuScenes) gets ``TL_UNKNOWN``: TLC is not applicable there, as for AV2.
"""

from __future__ import annotations

import builtins
import collections
import pickle
from pathlib import Path
from typing import Iterator

import numpy as np

from ..scene import CYCLIST, OTHER, PEDESTRIAN, STATIC, VEHICLE, SceneBatch, SceneValidationError
from .driving_log import SOURCE_DT, ImportReport, _ego_dynamics, _Log
from .log_slicing import _slice_log
from .scenarionet_common import ScenarioNetImportError, resample_tracks
from .scenarionet_export import embedded_scene
from .scenarionet_map import build_map

SUMMARY_FILE, MAPPING_FILE = "dataset_summary.pkl", "dataset_mapping.pkl"
EGO_ORIGIN_TO_CENTER_M = {"nuscenes": 1.3}  # rear axle → box centre (Renault Zoe); others: box centre
AGENT_TYPES = {
    "VEHICLE": VEHICLE, "PEDESTRIAN": PEDESTRIAN, "CYCLIST": CYCLIST,
    "TRAFFIC_CONE": STATIC, "TRAFFIC_BARRIER": STATIC, "TRAFFIC_OBJECT": STATIC,
}


# ---------------------------------------------------------------------------------- safe loading
def _safe_globals() -> dict[tuple[str, str], object]:
    """The only globals a scenario pickle may name: numpy array/dtype/scalar reconstruction,
    plain builtins containers and ``collections`` dicts. Resolved here, never by import."""
    reconstruct = np.zeros(1).__reduce__()[0]
    scalar = np.float32(0).__reduce__()[0]
    allowed: dict[tuple[str, str], object] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype}
    for module in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(module, "_reconstruct")] = reconstruct
        allowed[(module, "scalar")] = scalar
    for name in ("int", "float", "str", "bool", "list", "dict", "tuple", "set", "frozenset", "bytes", "complex"):
        allowed[("builtins", name)] = getattr(builtins, name)
    allowed[("collections", "defaultdict")] = collections.defaultdict
    allowed[("collections", "OrderedDict")] = collections.OrderedDict
    return allowed


SAFE_GLOBALS = _safe_globals()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str):
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise ScenarioNetImportError(
                f"{self._path}: refused to unpickle global {module}.{name} (only numpy arrays, builtins "
                "containers and collections dicts are allowed in ScenarioNet files); nothing was run"
            ) from None


def load_pickle(path: str | Path) -> object:
    """Load one ScenarioNet pickle with the restricted unpickler (see :data:`SAFE_GLOBALS`)."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, path).load()
    except ScenarioNetImportError:
        raise
    except (OSError, EOFError, pickle.UnpicklingError, ValueError, TypeError, AttributeError, IndexError) as exc:
        raise ScenarioNetImportError(f"{path}: unreadable or truncated pickle ({type(exc).__name__}: {exc})") from exc


def find_scenario_files(root: str | Path, report: ImportReport | None = None, strict: bool = True) -> list[Path]:
    """Scene files under ``root``: a single ``.pkl``, a database folder (its summary's files, found
    through the mapping) or, without a summary, every ``*.pkl`` below ``root``, sorted.

    A summary entry whose file is missing raises (``strict``) or is skipped with a warning.
    """
    root = Path(root)
    if not root.exists():
        raise ScenarioNetImportError(f"{root}: no such file or directory")
    if root.is_file():
        return [root]
    if (root / SUMMARY_FILE).is_file():
        summary = load_pickle(root / SUMMARY_FILE)
        mapping = load_pickle(root / MAPPING_FILE) if (root / MAPPING_FILE).is_file() else {}
        if not isinstance(summary, dict) or not isinstance(mapping, dict):
            raise ScenarioNetImportError(f"{root}: {SUMMARY_FILE} / {MAPPING_FILE} must each hold a dict")
        files = []
        for name in summary:
            path = root / str(mapping.get(name, "")) / str(name)
            if path.is_file():
                files.append(path)
                continue
            message = f"{root / SUMMARY_FILE}: names {name!r}, but {path} does not exist"
            if strict or report is None:
                raise ScenarioNetImportError(message)
            report.skip("missing file")
            report.warn(message)
        return files
    files = sorted(p for p in root.rglob("*.pkl") if p.name not in (SUMMARY_FILE, MAPPING_FILE))
    if not files:
        raise ScenarioNetImportError(f"{root}: no ScenarioNet scene files (*.pkl) found")
    return files


# ---------------------------------------------------------------------------------- validation
def _state(track: dict, key: str, steps: int, width: int | None, where: str) -> np.ndarray:
    try:
        value = np.asarray(track["state"][key], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise ScenarioNetImportError(f"{where}: state[{key!r}] missing or not numeric ({exc})") from exc
    if width is None and value.ndim == 2 and value.shape[1] == 1:
        value = value[:, 0]
    ok = value.shape[0] == steps and (value.ndim == 1 if width is None else value.ndim == 2 and value.shape[1] >= width)
    if not ok:
        raise ScenarioNetImportError(f"{where}: state[{key!r}] has shape {value.shape}, expected ({steps}{'' if width is None else f', ≥{width}'})")
    return value if width is None else value[:, :width]


def check_scenario(scenario: object, path: Path) -> list[str]:
    """Validate one scenario dict; raise :class:`ScenarioNetImportError` (naming the file, scene
    and field) on what makes it unusable, return warnings for what is dropped.

    Errors: not a dict, missing ``tracks``/``map_features``/``metadata``, ``sdc_id`` naming no
    track, track arrays of the wrong shape, timestamps not matching the track length, an ego
    without one valid finite step. Warnings: agents with NaN positions at valid steps
    (those steps are dropped), map polylines with fewer than 2 points or non-finite points.
    """
    if not isinstance(scenario, dict):
        raise ScenarioNetImportError(f"{path}: holds a {type(scenario).__name__}, not a scenario dict")
    missing = [k for k in ("tracks", "map_features", "metadata") if not isinstance(scenario.get(k), dict)]
    if missing:
        raise ScenarioNetImportError(f"{path}: missing or malformed {missing} (a ScenarioNet scenario dict has tracks, map_features, metadata)")
    meta, tracks = scenario["metadata"], scenario["tracks"]
    scene = f"{path} (scene {meta.get('scenario_id', scenario.get('id', '?'))!r})"
    sdc = meta.get("sdc_id")
    if sdc is None or str(sdc) not in {str(k) for k in tracks}:
        raise ScenarioNetImportError(f"{scene}: metadata.sdc_id={sdc!r} names no track (the ego is unknown)")
    steps = _num_steps(scenario, scene)
    warnings = []
    for track_id, track in tracks.items():
        where = f"{scene}: track {track_id!r}"
        position = _state(track, "position", steps, 2, where)
        valid = _state(track, "valid", steps, None, where) > 0
        _state(track, "heading", steps, None, where)
        bad = valid & ~np.isfinite(position).all(-1)
        if str(track_id) == str(sdc):
            if not (valid & ~bad).any():
                raise ScenarioNetImportError(f"{scene}: the ego track {sdc!r} has no valid finite step")
        elif bad.any():
            warnings.append(f"{where}: {int(bad.sum())} valid steps with NaN/inf positions dropped")
    bad_lines = [str(k) for k, f in scenario["map_features"].items()
                 if isinstance(f, dict) and f.get("polyline") is not None and not _usable_polyline(f["polyline"])]
    if bad_lines:
        warnings.append(f"{scene}: {len(bad_lines)} map polyline(s) with fewer than 2 points or non-finite "
                        f"points dropped (features {bad_lines[:8]}{' …' if len(bad_lines) > 8 else ''})")
    return warnings


def _usable_polyline(line) -> bool:
    try:
        points = np.asarray(line, dtype=np.float64)
    except (TypeError, ValueError):
        return False
    points = points.reshape(len(points), -1) if points.ndim else points.reshape(0, 2)
    return len(points) >= 2 and points.shape[1] >= 2 and bool(np.isfinite(points[:, :2]).all())


def _num_steps(scenario: dict, scene: str) -> int:
    ts = scenario["metadata"].get("ts")
    length = scenario.get("length", len(ts) if ts is not None else None)
    if length is None:
        raise ScenarioNetImportError(f"{scene}: neither length nor metadata.ts given")
    if ts is not None and len(ts) != int(length):
        raise ScenarioNetImportError(f"{scene}: metadata.ts has {len(ts)} entries for length {length}")
    if ts is not None and not (np.isfinite(np.asarray(ts, dtype=np.float64)).all() and (np.diff(ts) > 0).all()):
        raise ScenarioNetImportError(f"{scene}: metadata.ts must be finite and strictly increasing")
    return int(length)


# ---------------------------------------------------------------------------------- conversion
def _timestamps(scenario: dict, steps: int) -> np.ndarray:
    meta = scenario["metadata"]
    if meta.get("ts") is not None:
        ts = np.asarray(meta["ts"], dtype=np.float64)
    else:
        ts = np.arange(steps) * float(meta.get("sample_rate") or SOURCE_DT)
    return ts - ts[0]


def _tracks(scenario: dict, path: Path) -> dict[str, np.ndarray]:
    """All tracks on the 0.1 s grid: ids, xy (A, K, 2), yaw, speed, length/width (A,), type, valid."""
    tracks = scenario["tracks"]
    steps = _num_steps(scenario, str(path))
    ids = [str(k) for k in tracks]
    xy = np.stack([_state(t, "position", steps, 2, str(path)) for t in tracks.values()])
    yaw = np.stack([_state(t, "heading", steps, None, str(path)) for t in tracks.values()])
    valid = np.stack([_state(t, "valid", steps, None, str(path)) > 0 for t in tracks.values()])
    valid &= np.isfinite(xy).all(-1) & np.isfinite(yaw)
    velocity = np.stack([_velocity(t, steps) for t in tracks.values()])
    speed = np.where(valid, np.hypot(velocity[..., 0], velocity[..., 1]), 0.0)
    xy, yaw, speed = (np.where(valid[..., None] if v.ndim == 3 else valid, v, 0.0) for v in (xy, yaw, speed))
    ts = _timestamps(scenario, steps)
    (xy_k, valid_k), (yaw_k, _), (speed_k, _) = resample_tracks(ts, xy, valid), resample_tracks(ts, yaw, valid, angle=True), resample_tracks(ts, speed, valid)
    size = np.array([[_mean_valid(t, k, steps, v) for k in ("length", "width")] for t, v in zip(tracks.values(), valid)])
    names = [str(t.get("type", "")) for t in tracks.values()]
    return dict(ids=ids, xy=xy_k, yaw=yaw_k, speed=speed_k, valid=valid_k, size=size, names=names)


def _velocity(track: dict, steps: int) -> np.ndarray:
    v = track["state"].get("velocity")
    v = np.zeros((steps, 2)) if v is None else np.asarray(v, dtype=np.float64).reshape(steps, -1)[:, :2]
    return np.nan_to_num(v)


def _mean_valid(track: dict, key: str, steps: int, valid: np.ndarray) -> float:
    value = track["state"].get(key)
    if value is None:
        return 1.0
    value = np.asarray(value, dtype=np.float64).reshape(steps, -1)[:, 0]
    ok = valid & np.isfinite(value) & (value > 0)
    return float(value[ok].mean()) if ok.any() else 1.0


def _ego_run(valid: np.ndarray) -> tuple[int, int]:
    """First and last step (inclusive) of the longest run of valid steps."""
    padded = np.concatenate([[0], valid.astype(np.int8), [0]])
    starts, ends = np.flatnonzero(np.diff(padded) == 1), np.flatnonzero(np.diff(padded) == -1)
    longest = int(np.argmax(ends - starts))
    return int(starts[longest]), int(ends[longest]) - 1


def scenario_to_log(scenario: dict, path: Path, notes: list[str]) -> _Log:
    """One checked scenario → the AV2 importer's 10 Hz log (city frame), ego trimmed to its
    longest valid run. ``notes`` collects warnings for the report."""
    meta = scenario["metadata"]
    dataset = str(meta.get("dataset") or "scenarionet")
    scenario_id = str(meta.get("scenario_id") or scenario.get("id") or path.stem)
    t = _tracks(scenario, path)
    ego = t["ids"].index(str(meta["sdc_id"]))
    first, last = _ego_run(t["valid"][ego])
    if first > 0 or last < t["valid"].shape[1] - 1:
        notes.append(f"{path}: ego valid only at grid steps {first}..{last}; the log is trimmed to them")
    keep = slice(first, last + 1)
    ego_yaw = np.unwrap(t["yaw"][ego, keep])
    length, width = sorted(t["size"][ego], reverse=True)  # the box is longer than wide
    # AutoScale's own exports are box-centred whatever their source dataset.
    exported = str(scenario.get("version", "")).startswith("autoscale")
    shift = 0.0 if exported else EGO_ORIGIN_TO_CENTER_M.get(dataset.lower(), 0.0)
    ego_xy = t["xy"][ego, keep] + shift * np.stack([np.cos(ego_yaw), np.sin(ego_yaw)], -1)
    speed, accel = _ego_dynamics(ego_xy, ego_yaw)
    others = np.array([i for i in range(len(t["ids"])) if i != ego and t["valid"][i, keep].any()], dtype=np.int64)
    codes = np.array([AGENT_TYPES.get(t["names"][i], OTHER) for i in others], dtype=np.int8)
    unknown = sorted({t["names"][i] for i in others if t["names"][i] not in AGENT_TYPES})
    if unknown:
        notes.append(f"{path}: unknown track types {unknown} mapped to 'other'")
    agent_speed = t["speed"][others, keep]
    agent_speed[codes == STATIC] = 0.0
    amap, lane_tl = build_map(scenario, path, notes, ts=_timestamps(scenario, _num_steps(scenario, str(path))))
    if lane_tl is not None:
        lane_tl = lane_tl[:, keep]
    return _Log(
        scenario_id, str(meta.get("map") or meta.get("city") or "unknown"), path,
        ego_xy, ego_yaw, speed, accel,
        t["xy"][others, keep], t["yaw"][others, keep], agent_speed, t["valid"][others, keep],
        t["size"][others].reshape(-1, 2), codes, amap,
        source=dataset, ego_size=(length, width), lane_tl=lane_tl, scene_prefix=f"{dataset}-{scenario_id}",
    )


# ---------------------------------------------------------------------------------- public API
def _window_steps(history_s: float, future_s: float, stride_s: float, dt: float) -> dict[str, int]:
    steps = {}
    for name, value in (("history_s", history_s), ("future_s", future_s), ("dt", dt), ("stride_s", stride_s)):
        n = value / SOURCE_DT
        if abs(n - round(n)) > 1e-6 or n < 0:
            raise ScenarioNetImportError(f"{name}={value} s must be a non-negative multiple of {SOURCE_DT} s")
        steps[name] = int(round(n))
    if steps["dt"] < 1 or steps["stride_s"] < 1 or steps["future_s"] < steps["dt"]:
        raise ScenarioNetImportError(f"dt, stride_s and future_s must be positive (got dt={dt}, stride_s={stride_s}, future_s={future_s})")
    if steps["history_s"] % steps["dt"] or steps["future_s"] % steps["dt"]:
        raise ScenarioNetImportError(f"history_s ({history_s}) and future_s ({future_s}) must be multiples of dt ({dt})")
    return steps


def load_scenario(path: str | Path, notes: list[str] | None = None) -> _Log:
    """Read, check and convert one scene file into a 10 Hz log (raises ScenarioNetImportError)."""
    path = Path(path)
    notes = [] if notes is None else notes
    scenario = load_pickle(path)
    notes.extend(check_scenario(scenario, path))
    return _to_log(scenario, path, notes)


def _to_log(scenario: dict, path: Path, notes: list[str]) -> _Log:
    try:
        return scenario_to_log(scenario, path, notes)
    except ScenarioNetImportError:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ScenarioNetImportError(f"{path}: malformed scenario ({type(exc).__name__}: {exc})") from exc


def _read_file(path: Path, steps: dict[str, int], notes: list[str]) -> _Log | SceneBatch:
    """One file → the exact scene an AutoScale export embedded (matching timeline) or a 10 Hz log."""
    scenario = load_pickle(path)
    notes.extend(check_scenario(scenario, path))
    dt = steps["dt"] * SOURCE_DT
    scene = embedded_scene(scenario, path, dt, steps["history_s"] * SOURCE_DT, steps["future_s"] * SOURCE_DT)
    if scene is not None:
        try:
            scene.validate()
        except SceneValidationError as exc:
            raise ScenarioNetImportError(f"{path}: embedded AutoScale scene is invalid ({exc})") from exc
        return scene
    log = _to_log(scenario, path, notes)
    need = steps["history_s"] + steps["future_s"] + 1
    if len(log.ego_xy) < need:
        raise ScenarioNetImportError(
            f"{path}: the ego's valid log is {(len(log.ego_xy) - 1) * SOURCE_DT:.1f} s, shorter than one "
            f"scene ({(need - 1) * SOURCE_DT:.1f} s of history + future)")
    return log


def iter_scenarionet(
    root: str | Path,
    *,
    history_s: float = 2.0,
    future_s: float = 4.0,
    stride_s: float = 0.5,
    dt: float = 0.5,
    max_agents: int = 32,
    map_radius_m: float = 60.0,
    strict: bool = True,
    report: ImportReport | None = None,
    files: list[Path] | None = None,
) -> Iterator[tuple[Path, SceneBatch]]:
    """Yield ``(file, scenes)`` one scene file at a time (memory bounded by one file).

    Arguments as :func:`import_scenarionet`. A bad file raises (``strict``) or is counted under
    ``report.skipped["bad file"]`` with its error in ``report.warnings``; a file whose windows
    all fail validation yields nothing. ``files``: the scene files when already listed by
    :func:`find_scenario_files`.
    """
    report = ImportReport() if report is None else report
    steps = _window_steps(history_s, future_s, stride_s, dt)
    for path in find_scenario_files(root, report, strict) if files is None else files:
        notes: list[str] = []
        try:
            loaded = _read_file(path, steps, notes)
        except ScenarioNetImportError as exc:
            if strict:
                raise
            report.skip("bad file")
            report.warn(str(exc))
            continue
        if isinstance(loaded, SceneBatch):  # an AutoScale export: its scene as it was
            for note in notes:
                report.warn(note)
            report.logs.append(str(loaded.meta["log_id"][0]) if "log_id" in loaded.meta else path.stem)
            report.windows += 1
            batch = loaded
        else:
            loaded.notes = notes  # type: ignore[attr-defined]  # _slice_log reports them
            report.logs.append(loaded.log_id)
            batch = _slice_log(loaded, steps, dt, max_agents, map_radius_m, report)
        if batch is not None:
            report.scenes += len(batch)
            yield path, batch


def import_scenarionet(
    root: str | Path,
    *,
    history_s: float = 2.0,
    future_s: float = 4.0,
    stride_s: float = 0.5,
    dt: float = 0.5,
    max_agents: int = 32,
    map_radius_m: float = 60.0,
    strict: bool = True,
) -> tuple[SceneBatch, ImportReport]:
    """Import every ScenarioNet scene file under ``root`` as planning scenes.

    Args:
        root: a scene ``.pkl``, a ScenarioNet database folder (``dataset_summary.pkl``) or any
            folder holding scene files (searched recursively).
        history_s, future_s, dt: scene timeline (T = history/dt + 1 + future/dt steps).
        stride_s: t0 spacing within one log (multiple of 0.1 s).
        max_agents, map_radius_m: as for :func:`autoscale_core.io.av2.import_av2`.
        strict: raise on the first bad file (default); with False skip and report it.

    Returns:
        (scenes, report): a validated :class:`SceneBatch` (``source`` = the ScenarioNet dataset
        name, e.g. "nuscenes", "waymo") and an :class:`ImportReport`.
    """
    report = ImportReport()
    batches = [batch for _, batch in iter_scenarionet(
        root, history_s=history_s, future_s=future_s, stride_s=stride_s, dt=dt, max_agents=max_agents,
        map_radius_m=map_radius_m, strict=strict, report=report)]
    if not batches:
        raise ScenarioNetImportError(f"{root}: no valid scenes (skipped: {report.skipped or 'none'})")
    scenes = SceneBatch.concatenate(batches)
    scenes.validate()
    report.scenes = len(scenes)
    return scenes, report
