"""ScenarioNet ``map_features`` / ``dynamic_map_states`` → the AV2 importer's city-frame map.

Lanes are cut into pieces of at most ``LANE_PIECE_M`` (the scene model resamples every lane to
20 points, which would cut corners on 200 m curves); pieces of one lane are chained as
successors. See :mod:`autoscale_core.io.scenarionet` for the conventions.
"""

from __future__ import annotations

import numpy as np
import shapely
from scipy.spatial import cKDTree

from ..scene import TL_GREEN, TL_NONE, TL_RED, TL_UNKNOWN, TL_YELLOW, wrap_angle
from .driving_log import DEFAULT_SPEED_LIMIT, LANE_POINTS, SOURCE_DT, _Map
from .scenarionet_common import ScenarioNetImportError

LANE_PIECE_M = 20.0
DEFAULT_LANE_WIDTH = 3.5  # m, where a lane carries neither widths nor a polygon
LANE_WIDTH_RANGE = (2.5, 5.0)  # m, clip: Waymo widths reach 25 m next to open shoulders
SUCCESSOR_GAP_M = 0.5  # lanes whose end and start are this close connect (no exit_lanes given)
SUCCESSOR_TURN = np.radians(60)
CROSSING_NEAR_M = 2.0  # a lane piece this close to a crossing of two centre lines is in an intersection
NOT_LANES = ("LANE_BIKE_LANE",)
DRIVABLE_POLYGON_TYPES = ("DRIVEWAY",)
LIGHT_STATES = {
    "LANE_STATE_STOP": TL_RED, "LANE_STATE_ARROW_STOP": TL_RED, "LANE_STATE_FLASHING_STOP": TL_RED,
    "LANE_STATE_CAUTION": TL_YELLOW, "LANE_STATE_ARROW_CAUTION": TL_YELLOW,
    "LANE_STATE_FLASHING_CAUTION": TL_YELLOW, "LANE_STATE_GO": TL_GREEN, "LANE_STATE_ARROW_GO": TL_GREEN,
}


def _xy(points) -> np.ndarray | None:
    """(N, 2) float points of a polyline/polygon, or None when unusable (< 2 points, NaN)."""
    if points is None or len(points) < 2:
        return None
    array = np.asarray(points, dtype=np.float64).reshape(len(points), -1)
    if array.shape[1] < 2 or not np.isfinite(array[:, :2]).all():
        return None
    return array[:, :2]


def _lane_width(feature: dict, line: np.ndarray) -> float:
    """Waymo: mean left + right width; nuScenes: polygon area / centre-line length; else default."""
    widths = feature.get("width")
    if widths is not None and len(widths):
        total = np.asarray(widths, dtype=np.float64).reshape(len(widths), -1)[:, :2].sum(-1)
        total = total[np.isfinite(total) & (total > 0)]
        if len(total):
            return float(np.clip(total.mean(), *LANE_WIDTH_RANGE))
    polygon = _xy(feature.get("polygon"))
    length = float(np.linalg.norm(np.diff(line, axis=0), axis=-1).sum())
    if polygon is not None and len(polygon) >= 3 and length > 1.0:
        x, y = polygon[:, 0], polygon[:, 1]
        area = 0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1)))  # shoelace
        return float(np.clip(area / length, *LANE_WIDTH_RANGE))
    return DEFAULT_LANE_WIDTH


def _pieces(line: np.ndarray) -> list[np.ndarray]:
    """A centre line cut into pieces of ≤ LANE_PIECE_M, each resampled to LANE_POINTS points."""
    step = np.diff(line, axis=0)
    s = np.concatenate([[0.0], np.cumsum(np.hypot(step[:, 0], step[:, 1]))])
    count = max(int(np.ceil(s[-1] / LANE_PIECE_M)), 1)
    # Even arc-length spacing within each piece: LANE_POINTS per piece, pieces share end points.
    starts = np.linspace(0.0, s[-1], count + 1)[:-1]
    targets = (starts[:, None] + np.linspace(0.0, s[-1] / count, LANE_POINTS)[None]).ravel()
    points = np.stack([np.interp(targets, s, line[:, 0]), np.interp(targets, s, line[:, 1])], -1)
    return list(points.reshape(count, LANE_POINTS, 2))


def build_map(scenario: dict, path, notes: list[str], ts: np.ndarray) -> tuple[_Map, np.ndarray | None]:
    """(map, lane_tl): lanes as pieces with widths, successors, neighbours, speed limits;
    drivable polygons; crosswalks; and (M, K) TL codes on the 0.1 s grid, or None without
    ``dynamic_map_states`` (TLC not applicable)."""
    features = {str(k): f for k, f in scenario["map_features"].items() if isinstance(f, dict)}
    lane_pieces: dict[str, list[int]] = {}
    lanes, width, limit, boundless = [], [], [], []
    centre_lines: dict[str, np.ndarray] = {}
    dropped = 0
    for fid, feature in features.items():
        kind = str(feature.get("type", ""))
        if not kind.startswith("LANE") or kind in NOT_LANES:
            continue
        line = _xy(feature.get("polyline"))
        if line is None:
            continue  # reported by check_scenario
        if np.linalg.norm(np.diff(line, axis=0), axis=-1).sum() < 0.1:
            dropped += 1
            continue
        pieces = _pieces(line)
        lane_pieces[fid] = list(range(len(lanes), len(lanes) + len(pieces)))
        lanes += pieces
        width += [_lane_width(feature, line)] * len(pieces)
        kmh = feature.get("speed_limit_kmh")
        limit += [float(kmh) / 3.6 if kmh is not None and np.isfinite(kmh) and kmh > 0 else DEFAULT_SPEED_LIMIT] * len(pieces)
        no_bounds = "left_boundaries" in feature and not feature.get("left_boundaries") and not feature.get("right_boundaries")
        boundless += [no_bounds] * len(pieces)
        centre_lines[fid] = line
    if dropped:
        notes.append(f"{path}: {dropped} lane(s) shorter than 0.1 m dropped")
    lanes_arr = np.array(lanes).reshape(-1, LANE_POINTS, 2)
    successors = _successors(features, lane_pieces, lanes_arr)
    neighbors = _neighbors(features, lane_pieces, lanes_arr)
    polygons, crosswalks = _areas(features)
    if not len(lanes_arr) and not polygons:
        raise ScenarioNetImportError(f"{path}: map has no usable lanes and no drivable polygons")
    in_intersection = np.array(boundless, dtype=bool) | _crossing_pieces(centre_lines, lane_pieces, lanes_arr)
    amap = _Map(lanes_arr, np.array(width), in_intersection, successors, neighbors,
                polygons, crosswalks, speed_limit=np.array(limit))
    return amap, _lights(scenario, lane_pieces, len(lanes_arr), ts, path, notes)


def _crossing_pieces(lines: dict[str, np.ndarray], lane_pieces: dict[str, list[int]], lanes: np.ndarray) -> np.ndarray:
    """(M,) bool: lane pieces within CROSSING_NEAR_M of a point where their lane's centre line
    crosses another's (touching at the ends does not count): the parts of lanes inside an
    intersection. ScenarioNet marks no intersections for nuScenes."""
    flags = np.zeros(len(lanes), dtype=bool)
    if len(lines) < 2:
        return flags
    ids = list(lines)
    geoms = np.array([shapely.LineString(lines[i]) for i in ids], dtype=object)
    left, right = shapely.STRtree(geoms).query(geoms, predicate="crosses")
    points, which = shapely.get_coordinates(shapely.intersection(geoms[left], geoms[right]), return_index=True)
    for lane_index in np.unique(left):
        crossing = points[np.isin(which, np.flatnonzero(left == lane_index))]
        pieces = lane_pieces[ids[lane_index]]
        gaps = np.linalg.norm(lanes[pieces][:, :, None] - crossing[None, None], axis=-1).min(axis=(1, 2))
        flags[np.array(pieces)[gaps <= CROSSING_NEAR_M]] = True
    return flags


def _successors(features: dict, lane_pieces: dict[str, list[int]], lanes: np.ndarray) -> list[list[int]]:
    """Piece i → i+1 inside a lane; a lane's last piece → first pieces of its ``exit_lanes`` or,
    when the format gives none for it, of lanes starting within SUCCESSOR_GAP_M of its end in a
    similar direction."""
    successors: list[list[int]] = [[] for _ in range(len(lanes))]
    if not len(lanes):
        return successors
    starts = cKDTree(lanes[:, 0])
    heading_in = np.arctan2(*(lanes[:, 1] - lanes[:, 0]).T[::-1])
    heading_out = np.arctan2(*(lanes[:, -1] - lanes[:, -2]).T[::-1])
    for fid, pieces in lane_pieces.items():
        for a, b in zip(pieces[:-1], pieces[1:]):
            successors[a].append(b)
        last = pieces[-1]
        exits = features[fid].get("exit_lanes")
        if exits is not None and "exit_lanes" in features[fid]:
            successors[last] += [lane_pieces[str(e)][0] for e in exits if str(e) in lane_pieces]
        else:
            near = starts.query_ball_point(lanes[last, -1], SUCCESSOR_GAP_M)
            successors[last] += [int(j) for j in near if j != last and j not in pieces
                                 and abs(wrap_angle(heading_in[j] - heading_out[last])) < SUCCESSOR_TURN]
    return successors


def _neighbors(features: dict, lane_pieces: dict[str, list[int]], lanes: np.ndarray) -> np.ndarray:
    """(M, 2) left/right same-direction neighbour piece (the neighbour lane's nearest piece), -1 none."""
    out = np.full((len(lanes), 2), -1, dtype=np.int64)
    for fid, pieces in lane_pieces.items():
        for side, key in enumerate(("left_neighbor", "right_neighbor")):
            for entry in features[fid].get(key) or []:
                other = lane_pieces.get(str(entry.get("feature_id") if isinstance(entry, dict) else entry))
                if not other:
                    continue
                for p in pieces:
                    mid = lanes[p, LANE_POINTS // 2]
                    q = other[int(np.argmin([np.linalg.norm(lanes[o] - mid, axis=-1).min() for o in other]))]
                    same_way = np.dot(lanes[p, -1] - lanes[p, 0], lanes[q, -1] - lanes[q, 0]) > 0
                    if out[p, side] < 0 and same_way and np.linalg.norm(lanes[q] - mid, axis=-1).min() < 8.0:
                        out[p, side] = q
    return out


def _areas(features: dict) -> tuple[list[np.ndarray], np.ndarray]:
    """Drivable polygons (nuScenes lane polygons, driveways; simplified to 0.1 m) and crosswalk quads."""
    polygons, crosswalks = [], []
    for feature in features.values():
        kind = str(feature.get("type", ""))
        ring = _xy(feature.get("polygon"))
        if ring is None or len(ring) < 3:
            continue
        if kind == "CROSSWALK":
            crosswalks.append(_quad(ring))
        elif (kind.startswith("LANE") and kind not in ("LANE_BIKE_LANE",)) or kind in DRIVABLE_POLYGON_TYPES:
            shape = shapely.Polygon(ring).buffer(0).simplify(0.1)
            parts = getattr(shape, "geoms", [shape])
            polygons += [np.asarray(p.exterior.coords)[:-1] for p in parts if p.area > 0.5]
    return polygons, np.array(crosswalks).reshape(-1, 4, 2)


def _quad(ring: np.ndarray) -> np.ndarray:
    if len(ring) > 4 and np.allclose(ring[0], ring[-1]):
        ring = ring[:-1]
    if len(ring) == 4:
        return ring
    rect = shapely.Polygon(ring).minimum_rotated_rectangle
    return np.asarray(rect.exterior.coords)[:4]


def _lights(scenario: dict, lane_pieces: dict[str, list[int]], num_lanes: int, ts: np.ndarray, path, notes) -> np.ndarray | None:
    """(M, K) TL codes: a light's state applies to its lane's first piece (entry); other lanes
    TL_NONE; None (TLC not applicable) when the scenario has no dynamic map states."""
    states = scenario.get("dynamic_map_states") or {}
    if not states:
        return None
    grid = np.arange(int(np.floor(ts[-1] / SOURCE_DT + 1e-6)) + 1) * SOURCE_DT
    nearest = np.clip(np.searchsorted(ts, grid - 0.5 * SOURCE_DT), 0, len(ts) - 1)
    codes = np.full((num_lanes, len(grid)), TL_NONE, dtype=np.int8)
    unknown = set()
    for key, light in states.items():
        lane = str(light.get("lane", key)) if isinstance(light, dict) else str(key)
        seq = (light.get("state") or {}).get("object_state") if isinstance(light, dict) else None
        if lane not in lane_pieces or seq is None or len(seq) != len(ts):
            continue
        mapped = np.array([LIGHT_STATES.get(str(s), TL_UNKNOWN) for s in seq], dtype=np.int8)
        unknown |= {str(s) for s in seq if s is not None and str(s) not in LIGHT_STATES and str(s) != "LANE_STATE_UNKNOWN"}
        codes[lane_pieces[lane][0]] = mapped[nearest]
    if unknown:
        notes.append(f"{path}: unknown traffic-light states {sorted(unknown)} treated as unknown")
    return codes
