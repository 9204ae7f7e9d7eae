"""Scenes → ScenarioNet scene files (one ``sd_autoscale_<scene id>.pkl`` per scene + a summary and
mapping, i.e. a ScenarioNet database folder), so a selection can go on to MetaDrive or other
ScenarioNet tools.

Each file is a standard scenario description at 10 Hz in the **scene frame** (ego at the origin
heading +x at t0): ``tracks`` (ego = ``"ego"``, agents ``"agent_<n>"``), ``map_features`` (lanes
with widths, exit/entry lanes, neighbours and speed limits; drivable polygons as ``DRIVEWAY``;
crosswalks), ``dynamic_map_states`` (only where the scene has traffic-light states) and
``metadata``. The 0.5 s scene timeline is linearly interpolated to 10 Hz.

ScenarioNet has no place for some of the scene model (route, ego acceleration, the scene's exact
agent/lane order), so ``metadata["autoscale"]`` also carries the scene's arrays; the AutoScale
importer restores them exactly when the requested timeline matches (import → export → import
gives identical arrays), and other tools ignore them.
"""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np

from ..render import safe_file_stem
from ..scene import AGENT_TYPES, ARRAY_SPECS, TL_GREEN, TL_RED, TL_UNKNOWN, TL_YELLOW, SceneBatch
from .driving_log import SOURCE_DT
from .scenarionet_common import ScenarioNetImportError, resample_tracks

EMBED_KEY, EMBED_FORMAT = "autoscale", 1
TYPE_NAMES = {"vehicle": "VEHICLE", "pedestrian": "PEDESTRIAN", "cyclist": "CYCLIST", "static": "TRAFFIC_OBJECT", "other": "OTHER"}
LIGHT_NAMES = {TL_RED: "LANE_STATE_STOP", TL_YELLOW: "LANE_STATE_CAUTION", TL_GREEN: "LANE_STATE_GO", TL_UNKNOWN: "LANE_STATE_UNKNOWN"}


class ScenarioNetExportError(ValueError):
    """The export target is not usable (the message names the folder or file)."""


def export_scenarionet(batch: SceneBatch, folder: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write each scene of ``batch`` as a ScenarioNet scene file under ``folder``; returns the paths.

    A non-empty ``folder`` is refused unless ``overwrite``; even then only the files this export
    writes (its scene files, ``dataset_summary.pkl``, ``dataset_mapping.pkl``) are replaced, and
    nothing else in the folder is touched. Each file is written to a temporary name and renamed.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ScenarioNetExportError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not overwrite:
        raise ScenarioNetExportError(f"{folder}: folder is not empty (use overwrite to replace the files this export writes)")
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"sd_autoscale_{safe_file_stem(str(s))}.pkl" for s in batch.meta["scene_id"]]
    if len(set(names)) != len(names):
        raise ScenarioNetExportError("two scene ids map to the same file name")
    summary, paths = {}, []
    for i, name in enumerate(names):
        scenario = scene_to_scenario(batch.subset([i]))
        summary[name] = {k: v for k, v in scenario["metadata"].items() if k != EMBED_KEY}
        paths.append(_write_atomic(folder / name, scenario))
    _write_atomic(folder / "dataset_summary.pkl", summary)
    _write_atomic(folder / "dataset_mapping.pkl", {name: "" for name in names})
    return paths


def _write_atomic(path: Path, payload: object) -> Path:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as handle:
        pickle.dump(payload, handle, protocol=4)
    os.replace(tmp, path)
    return path


def _to_10hz(values: np.ndarray, valid: np.ndarray, dt: float, angle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    ts = np.arange(values.shape[1]) * dt
    return resample_tracks(ts, values, valid, angle=angle)


def _track(kind: str, xy: np.ndarray, yaw: np.ndarray, speed: np.ndarray, valid: np.ndarray, size, dt: float) -> dict:
    (pos, ok), (heading, _), (v, _) = (_to_10hz(xy[None], valid[None], dt), _to_10hz(yaw[None], valid[None], dt, angle=True),
                                      _to_10hz(speed[None], valid[None], dt))
    pos, heading, v, ok = pos[0], heading[0], v[0], ok[0]
    K = len(ok)
    zeros = np.zeros((K, 1))
    return {
        "type": kind,
        "state": {
            "position": np.where(ok[:, None], np.concatenate([pos, zeros], -1), 0.0),
            "heading": np.where(ok, heading, 0.0),
            "velocity": np.where(ok[:, None], v[:, None] * np.stack([np.cos(heading), np.sin(heading)], -1), 0.0),
            "valid": ok.copy(),
            "length": np.full(K, float(size[0])), "width": np.full(K, float(size[1])), "height": np.full(K, 1.5),
        },
        "metadata": {"type": kind, "track_length": K},
    }


def scene_to_scenario(scene: SceneBatch) -> dict:
    """One scene (a batch of 1) → a ScenarioNet scenario dict (see the module docstring)."""
    dt, T = scene.dt, scene.num_steps
    ego = scene.ego[0].astype(np.float64)
    tracks = {"ego": _track("VEHICLE", ego[:, :2], ego[:, 2], ego[:, 3], np.ones(T, bool), scene.ego_size[0], dt)}
    for n in np.flatnonzero(scene.agent_type[0] >= 0):
        a = scene.agents[0, n].astype(np.float64)
        kind = TYPE_NAMES[AGENT_TYPES[int(scene.agent_type[0, n])]]
        tracks[f"agent_{n}"] = _track(kind, a[:, :2], a[:, 2], a[:, 3], scene.agent_valid[0, n], scene.agent_size[0, n], dt)
    K = len(tracks["ego"]["state"]["valid"])
    ts = np.arange(K) * SOURCE_DT
    meta = {k: (v[0].item() if isinstance(v[0], np.generic) else v[0]) for k, v in scene.meta.items()}
    scene_id = str(meta["scene_id"])
    metadata = {
        "dataset": str(meta.get("source") or "autoscale"), "scenario_id": scene_id, "id": scene_id,
        "ts": ts, "sample_rate": SOURCE_DT, "sdc_id": "ego", "map": str(meta.get("city", "")),
        "coordinate": "autoscale scene frame (ego box centre at the origin heading +x at t0)",
        "current_time_index": int(round(scene.history_steps * dt / SOURCE_DT)), "metadrive_processed": False,
        EMBED_KEY: {"format": EMBED_FORMAT, "dt": dt, "history_steps": scene.history_steps,
                    "arrays": {name: np.ascontiguousarray(array[0]) for name, array in scene.arrays().items()},
                    "meta": {k: (str(v) if isinstance(v, str) else v) for k, v in meta.items()}},
    }
    return {"id": scene_id, "version": "autoscale-scenarionet-1", "length": K, "tracks": tracks,
            "map_features": _map_features(scene), "dynamic_map_states": _lights(scene, K), "metadata": metadata}


def _map_features(scene: SceneBatch) -> dict:
    features = {}
    lanes = np.flatnonzero(scene.lane_valid[0])
    entries: dict[int, list[str]] = {int(i): [] for i in lanes}
    for i in lanes:
        for j in scene.lane_successors[0, i]:
            if j >= 0 and int(j) in entries:
                entries[int(j)].append(f"lane_{i}")
    for i in lanes:
        line = scene.lanes[0, i].astype(np.float64)
        half = float(scene.lane_width[0, i]) / 2
        lane = {
            "type": "LANE_SURFACE_STREET", "polyline": np.concatenate([line, np.zeros((len(line), 1))], -1),
            "width": np.full((len(line), 2), half), "speed_limit_kmh": float(scene.lane_speed_limit[0, i]) * 3.6,
            "exit_lanes": [f"lane_{j}" for j in scene.lane_successors[0, i] if j >= 0],
            "entry_lanes": entries[int(i)],
            "left_neighbor": [{"feature_id": f"lane_{j}"} for j in scene.lane_neighbors[0, i, :1] if j >= 0],
            "right_neighbor": [{"feature_id": f"lane_{j}"} for j in scene.lane_neighbors[0, i, 1:] if j >= 0],
        }
        if scene.lane_is_intersection[0, i]:
            lane.update(left_boundaries=[], right_boundaries=[])  # ScenarioNet marks intersection lanes so
        features[f"lane_{i}"] = lane
    for d in np.flatnonzero(scene.drivable_vertex_valid[0].sum(-1) >= 3):
        ring = scene.drivable_polygons[0, d][scene.drivable_vertex_valid[0, d]].astype(np.float64)
        features[f"drivable_{d}"] = {"type": "DRIVEWAY", "polygon": np.concatenate([ring, np.zeros((len(ring), 1))], -1)}
    for c in np.flatnonzero(scene.crosswalk_valid[0]):
        quad = scene.crosswalks[0, c].astype(np.float64)
        features[f"crosswalk_{c}"] = {"type": "CROSSWALK", "polygon": np.concatenate([quad, np.zeros((4, 1))], -1)}
    return features


def _lights(scene: SceneBatch, K: int) -> dict:
    """Lanes with a known light state at some step → ScenarioNet TRAFFIC_LIGHT entries at 10 Hz."""
    codes = scene.lane_tl[0]
    per_step = int(round(scene.dt / SOURCE_DT))
    nearest = np.clip(np.rint(np.arange(K) / per_step).astype(int), 0, scene.num_steps - 1)
    states = {}
    for i in np.flatnonzero(scene.lane_valid[0] & np.isin(codes, [TL_RED, TL_YELLOW, TL_GREEN]).any(-1)):
        seq = [LIGHT_NAMES.get(int(c)) for c in codes[i, nearest]]
        states[f"lane_{i}"] = {"type": "TRAFFIC_LIGHT", "lane": f"lane_{i}", "state": {"object_state": seq},
                               "stop_point": np.array([*scene.lanes[0, i, 0].astype(np.float64), 0.0]),
                               "metadata": {"type": "TRAFFIC_LIGHT", "track_length": K}}
    return states


def embedded_scene(scenario: dict, path: Path, dt: float, history_s: float, future_s: float) -> SceneBatch | None:
    """The exact scene an AutoScale export embedded in ``scenario``, or None when there is none or
    its timeline differs from the requested one (the tracks are then sliced as usual)."""
    embedded = scenario["metadata"].get(EMBED_KEY)
    if not isinstance(embedded, dict) or embedded.get("format") != EMBED_FORMAT:
        return None
    arrays, H = embedded.get("arrays") or {}, int(embedded.get("history_steps", -1))
    T = int(round(history_s / dt)) + 1 + int(round(future_s / dt))
    if abs(float(embedded.get("dt", 0)) - dt) > 1e-9 or H * dt != history_s or arrays.get("ego", np.zeros((0,))).shape[:1] != (T,):
        return None
    missing = [name for name in ARRAY_SPECS if not isinstance(arrays.get(name), np.ndarray)]
    if missing:
        raise ScenarioNetImportError(f"{path}: metadata.{EMBED_KEY} lacks arrays {missing}")
    batch = SceneBatch(**{name: arrays[name][None].astype(dtype, copy=False) for name, (_, dtype) in ARRAY_SPECS.items()},
                       meta={k: np.array([v], dtype=object if isinstance(v, str) else None) for k, v in embedded["meta"].items()},
                       dt=dt, history_steps=H)
    return batch
