"""Reading Argoverse 2 files: feather/parquet tables with their required columns, and the vector
map (``log_map_archive_*.json``) as a :class:`~autoscale_core.io.driving_log._Map`.

Every failure is an :class:`AV2ImportError` naming the file and the problem.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as pq

from ..scene import resample_polyline
from .driving_log import LANE_POINTS, _Map


class AV2ImportError(ValueError):
    """AV2 input is missing or malformed; the message names the file and the problem."""


VEHICLE_LANE_TYPES = ("VEHICLE", "BUS")


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
