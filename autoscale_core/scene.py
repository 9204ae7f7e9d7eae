"""The scene model: one planning scene = plain numpy arrays, batched along axis 0.

Frames and units
----------------
* Every position is in the **scene frame**: a right-handed, metric frame whose origin is the
  centre of the ego's bounding box at the current time t0, with +x along the ego's heading at t0
  and +y to its left. Headings are radians, counter-clockwise from +x, wrapped to (-pi, pi].
  ``global_pose`` (x, y, yaw in the source's world/city frame) maps scene → world.
* Time: a fixed step ``dt`` (seconds, default 0.5 s). The timeline has
  ``T = history_steps + 1 + future_steps`` entries; index ``history_steps`` is t0.
  Defaults: 2 s history (4 steps), 4 s future (8 steps) → T = 13, matching NAVSIM's
  8-pose, 4-second planning horizon.
* Speeds m/s, accelerations m/s², lengths m.

Arrays of a :class:`SceneBatch` with S scenes (N agents, L lanes, P points per lane, ...,
padded per batch; padding is marked invalid by the masks):

=======================  =================  =====================================================
name                     shape / dtype      meaning
=======================  =================  =====================================================
ego                      (S, T, 5) f32      x, y, heading, speed, accel of the logged ego
ego_size                 (S, 2) f32         length, width of the ego
agents                   (S, N, T, 4) f32   x, y, heading, speed of surrounding agents
agent_valid              (S, N, T) bool     agent observed at that step
agent_size               (S, N, 2) f32      length, width
agent_type               (S, N) int8        AGENT_TYPES code; -1 for padding rows
lanes                    (S, L, P, 2) f32   lane centerlines, points ordered along travel direction
lane_valid               (S, L) bool        padding mask for lanes
lane_width               (S, L) f32         lane width (m)
lane_speed_limit         (S, L) f32         speed limit (m/s)
lane_is_intersection     (S, L) bool        lane lies inside an intersection (LK not applied)
lane_successors          (S, L, K) int16    indices of successor lanes, -1 padded
lane_neighbors           (S, L, 2) int16    left / right neighbour lane (same direction), -1 none
lane_tl                  (S, L, T) int8     traffic light controlling entry to the lane, TL_* codes
drivable_polygons        (S, D, V, 2) f32   extra drivable area beyond lane corridors (shoulders,
                                            intersection interiors, parking); vertices in order
drivable_vertex_valid    (S, D, V) bool     vertex padding mask (a polygon with < 3 valid
                                            vertices is ignored)
crosswalks               (S, C, 4, 2) f32   crosswalk quadrilaterals
crosswalk_valid          (S, C) bool
route_lanes              (S, R) int16       lane indices the ego is to follow, in order, -1 padded
route_polyline           (S, Q, 2) f32      route centerline, ordered, spacing <= 2 m, from behind
                                            the ego at t0 to well past the 4 s horizon
route_valid              (S, Q) bool
global_pose              (S, 3) f64         scene-frame origin in world frame: x, y, yaw
=======================  =================  =====================================================

Drivable area = union of lane corridors (|lateral offset| <= width/2 from a centerline) and the
``drivable_polygons``.

Per-scene metadata lives in ``meta``: a dict of 1-D numpy arrays of length S (strings as object
arrays): ``scene_id`` (unique), ``source`` ("world", "av2", "synthetic", ...), ``city``,
``topology``, ``maneuver``, ``events`` (";"-joined tags, "" for none), ``log_id``,
``parent_id`` ("" for none), ``t0`` (float, seconds since the log start).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from .geometry import closest_on_segments, points_in_polygons  # noqa: F401  (points_in_polygons: re-exported)

AGENT_TYPES = ("vehicle", "pedestrian", "cyclist", "static", "other")
VEHICLE, PEDESTRIAN, CYCLIST, STATIC, OTHER = range(len(AGENT_TYPES))

# Traffic-light codes for ``lane_tl``.
TL_UNKNOWN, TL_NONE, TL_GREEN, TL_YELLOW, TL_RED = -1, 0, 1, 2, 3

EGO_FEATURES = ("x", "y", "heading", "speed", "accel")
AGENT_FEATURES = ("x", "y", "heading", "speed")

DEFAULT_DT = 0.5
DEFAULT_HISTORY_STEPS = 4
DEFAULT_FUTURE_STEPS = 8

META_STRING_KEYS = ("scene_id", "source", "city", "topology", "maneuver", "events", "log_id", "parent_id")
META_FLOAT_KEYS = ("t0",)

# name -> (padding value, dtype); the order is the canonical order of arrays.
ARRAY_SPECS: dict[str, tuple[object, type]] = {
    "ego": (0.0, np.float32),
    "ego_size": (0.0, np.float32),
    "agents": (0.0, np.float32),
    "agent_valid": (False, np.bool_),
    "agent_size": (0.0, np.float32),
    "agent_type": (-1, np.int8),
    "lanes": (0.0, np.float32),
    "lane_valid": (False, np.bool_),
    "lane_width": (0.0, np.float32),
    "lane_speed_limit": (0.0, np.float32),
    "lane_is_intersection": (False, np.bool_),
    "lane_successors": (-1, np.int16),
    "lane_neighbors": (-1, np.int16),
    "lane_tl": (TL_NONE, np.int8),
    "drivable_polygons": (0.0, np.float32),
    "drivable_vertex_valid": (False, np.bool_),
    "crosswalks": (0.0, np.float32),
    "crosswalk_valid": (False, np.bool_),
    "route_lanes": (-1, np.int16),
    "route_polyline": (0.0, np.float32),
    "route_valid": (False, np.bool_),
    "global_pose": (0.0, np.float64),
}

# Symbolic shapes used by validation: each letter must agree across arrays of one batch.
ARRAY_DIMS: dict[str, str] = {
    "ego": "ST5",
    "ego_size": "S2",
    "agents": "SNT4",
    "agent_valid": "SNT",
    "agent_size": "SN2",
    "agent_type": "SN",
    "lanes": "SLP2",
    "lane_valid": "SL",
    "lane_width": "SL",
    "lane_speed_limit": "SL",
    "lane_is_intersection": "SL",
    "lane_successors": "SLK",
    "lane_neighbors": "SL2",
    "lane_tl": "SLT",
    "drivable_polygons": "SDV2",
    "drivable_vertex_valid": "SDV",
    "crosswalks": "SC42",
    "crosswalk_valid": "SC",
    "route_lanes": "SR",
    "route_polyline": "SQ2",
    "route_valid": "SQ",
    "global_pose": "S3",
}
_LITERAL_DIMS = {"2": 2, "3": 3, "4": 4, "5": 5}


class SceneValidationError(ValueError):
    """A scene (or batch) is malformed; the message names the scene and the problem."""


@dataclass
class SceneBatch:
    """S driving scenes as plain arrays (see the module docstring for shapes, units, frames)."""

    ego: np.ndarray
    ego_size: np.ndarray
    agents: np.ndarray
    agent_valid: np.ndarray
    agent_size: np.ndarray
    agent_type: np.ndarray
    lanes: np.ndarray
    lane_valid: np.ndarray
    lane_width: np.ndarray
    lane_speed_limit: np.ndarray
    lane_is_intersection: np.ndarray
    lane_successors: np.ndarray
    lane_neighbors: np.ndarray
    lane_tl: np.ndarray
    drivable_polygons: np.ndarray
    drivable_vertex_valid: np.ndarray
    crosswalks: np.ndarray
    crosswalk_valid: np.ndarray
    route_lanes: np.ndarray
    route_polyline: np.ndarray
    route_valid: np.ndarray
    global_pose: np.ndarray
    meta: dict[str, np.ndarray] = field(default_factory=dict)
    dt: float = DEFAULT_DT
    history_steps: int = DEFAULT_HISTORY_STEPS

    # ------------------------------------------------------------------ basic properties
    def __len__(self) -> int:
        return int(self.ego.shape[0])

    @property
    def num_steps(self) -> int:
        """T, the number of timeline entries (history + current + future)."""
        return int(self.ego.shape[1])

    @property
    def future_steps(self) -> int:
        return self.num_steps - self.history_steps - 1

    @property
    def current_index(self) -> int:
        """Index of t0 on the time axis."""
        return self.history_steps

    @property
    def times(self) -> np.ndarray:
        """(T,) seconds relative to t0."""
        return (np.arange(self.num_steps) - self.history_steps) * self.dt

    @property
    def scene_ids(self) -> np.ndarray:
        return self.meta["scene_id"]

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields by name, in canonical order."""
        return {name: getattr(self, name) for name in ARRAY_SPECS}

    def expert_trajectory(self) -> np.ndarray:
        """(S, F, 3) logged future poses x, y, heading in the scene frame (NAVSIM's plan format)."""
        return self.ego[:, self.history_steps + 1 :, :3].copy()

    # ------------------------------------------------------------------ construction / slicing
    def subset(self, index: Sequence[int] | np.ndarray | slice) -> "SceneBatch":
        """Scenes at ``index`` (int array, boolean mask or slice), arrays copied."""
        if not isinstance(index, slice):
            index = np.asarray(index)
            if index.dtype != np.bool_:
                index = index.astype(np.int64)
        arrays = {name: np.ascontiguousarray(a[index]) for name, a in self.arrays().items()}
        meta = {k: np.asarray(v)[index] for k, v in self.meta.items()}
        return SceneBatch(**arrays, meta=meta, dt=self.dt, history_steps=self.history_steps)

    def __getitem__(self, index) -> "SceneBatch":
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        return self.subset(index)

    def replace(self, **changes) -> "SceneBatch":
        """A shallow copy with some fields replaced (dataclasses.replace)."""
        return dataclasses.replace(self, **changes)

    @staticmethod
    def concatenate(batches: Iterable["SceneBatch"]) -> "SceneBatch":
        """Join batches along the scene axis, padding every other axis to the largest size."""
        batches = [b for b in batches if len(b) > 0] or list(batches)[:1]
        if not batches:
            raise ValueError("SceneBatch.concatenate needs at least one batch")
        first = batches[0]
        for b in batches[1:]:
            if b.dt != first.dt or b.history_steps != first.history_steps or b.num_steps != first.num_steps:
                raise ValueError(
                    f"cannot concatenate batches with different timelines: "
                    f"(dt={first.dt}, history={first.history_steps}, T={first.num_steps}) vs "
                    f"(dt={b.dt}, history={b.history_steps}, T={b.num_steps})"
                )
        arrays = {}
        for name, (pad_value, dtype) in ARRAY_SPECS.items():
            parts = [getattr(b, name) for b in batches]
            target = np.max([p.shape for p in parts], axis=0)
            arrays[name] = np.concatenate(
                [_pad_to(p.astype(dtype, copy=False), target[1:], pad_value) for p in parts], axis=0
            )
        keys = set().union(*(b.meta.keys() for b in batches))
        meta = {}
        for k in sorted(keys):
            cols = [
                np.asarray(b.meta[k]) if k in b.meta else np.full(len(b), _meta_default(k), dtype=object)
                for b in batches
            ]
            meta[k] = np.concatenate([c.astype(object) if c.dtype.kind in "OUS" else c for c in cols])
        return SceneBatch(**arrays, meta=meta, dt=first.dt, history_steps=first.history_steps)

    # ------------------------------------------------------------------ validation
    def validate(self, check_ego_on_lane: bool = True) -> None:
        """Raise :class:`SceneValidationError` naming the first bad scene and the problem.

        Checks: array shapes/dtypes agree, metadata lengths, unique ids, finite values where
        valid, a non-empty map, and (optionally) the ego at t0 on some lane corridor or drivable
        polygon.
        """
        validate_batch(self, check_ego_on_lane=check_ego_on_lane)


def _meta_default(key: str):
    return 0.0 if key in META_FLOAT_KEYS else ""


def _pad_to(array: np.ndarray, tail_shape: Sequence[int], pad_value) -> np.ndarray:
    """Pad every axis but the first of ``array`` up to ``tail_shape``."""
    pads = [(0, 0)] + [(0, int(t) - int(s)) for s, t in zip(array.shape[1:], tail_shape)]
    if all(p == (0, 0) for p in pads):
        return array
    return np.pad(array, pads, mode="constant", constant_values=pad_value)


def _scene_name(batch: SceneBatch, i: int) -> str:
    ids = batch.meta.get("scene_id")
    return f"scene {ids[i]!r} (index {i})" if ids is not None and len(ids) > i else f"scene index {i}"


def validate_batch(batch: SceneBatch, check_ego_on_lane: bool = True) -> None:
    """See :meth:`SceneBatch.validate`."""
    sizes: dict[str, int] = {}
    size_source: dict[str, str] = {}  # which array fixed each symbolic size, for the message
    for name, dims in ARRAY_DIMS.items():
        array = getattr(batch, name)
        if not isinstance(array, np.ndarray):
            raise SceneValidationError(f"array {name!r} must be a numpy array, got {type(array).__name__}")
        if array.ndim != len(dims):
            raise SceneValidationError(
                f"array {name!r} must have {len(dims)} dims ({dims}), got shape {array.shape}"
            )
        for letter, size in zip(dims, array.shape):
            size_source.setdefault(letter, name)
            expected = _LITERAL_DIMS.get(letter, sizes.setdefault(letter, size))
            if size != expected:
                origin = "" if letter in _LITERAL_DIMS else f" (as in {size_source[letter]!r})"
                raise SceneValidationError(
                    f"array {name!r} has shape {array.shape}: axis {letter!r} should be {expected}{origin}"
                )
    num_scenes = sizes["S"]
    if sizes["T"] != batch.history_steps + 1 + batch.future_steps or batch.future_steps < 1:
        raise SceneValidationError(f"timeline of {sizes['T']} steps has no future after history {batch.history_steps}")
    if not (np.isfinite(batch.dt) and batch.dt > 0):
        raise SceneValidationError(f"time step dt must be positive, got {batch.dt}")
    for key in ("scene_id", "source", "city"):
        if key not in batch.meta:
            raise SceneValidationError(f"metadata {key!r} is missing")
    for key, column in batch.meta.items():
        if len(column) != num_scenes:
            raise SceneValidationError(f"metadata {key!r} has {len(column)} entries for {num_scenes} scenes")
    ids = [str(x) for x in batch.meta["scene_id"]]
    if len(set(ids)) != len(ids):
        dup = next(x for x in ids if ids.count(x) > 1)
        raise SceneValidationError(f"duplicate scene_id {dup!r}")
    _check_finite(batch)
    for i in range(num_scenes):
        if not batch.lane_valid[i].any() and not (batch.drivable_vertex_valid[i].sum(-1) >= 3).any():
            raise SceneValidationError(f"{_scene_name(batch, i)}: empty map (no lanes, no drivable area)")
        if not batch.route_valid[i].any():
            raise SceneValidationError(f"{_scene_name(batch, i)}: empty route")
    if check_ego_on_lane:
        on_map = ego_on_drivable(batch)
        if not on_map.all():
            i = int(np.flatnonzero(~on_map)[0])
            raise SceneValidationError(f"{_scene_name(batch, i)}: ego at t0 is off every lane and drivable area")


def _check_finite(batch: SceneBatch) -> None:
    checks = [
        ("ego", batch.ego, None),
        ("ego_size", batch.ego_size, None),
        ("agents", batch.agents, batch.agent_valid[..., None]),
        ("agent_size", batch.agent_size, (batch.agent_type >= 0)[..., None]),
        ("lanes", batch.lanes, batch.lane_valid[:, :, None, None]),
        ("lane_width", batch.lane_width, batch.lane_valid),
        ("drivable_polygons", batch.drivable_polygons, batch.drivable_vertex_valid[..., None]),
        ("route_polyline", batch.route_polyline, batch.route_valid[..., None]),
        ("global_pose", batch.global_pose, None),
    ]
    for name, array, mask in checks:
        bad = ~np.isfinite(array)
        if mask is not None:
            bad &= np.broadcast_to(mask, bad.shape)
        if bad.any():
            i = int(np.argwhere(bad)[0][0])
            raise SceneValidationError(f"{_scene_name(batch, i)}: {name} contains NaN or inf")
    if (batch.ego_size <= 0).any():
        i = int(np.argwhere(batch.ego_size <= 0)[0][0])
        raise SceneValidationError(f"{_scene_name(batch, i)}: ego_size must be positive")
    widths_bad = batch.lane_valid & ~(batch.lane_width > 0)
    if widths_bad.any():
        i = int(np.argwhere(widths_bad)[0][0])
        raise SceneValidationError(f"{_scene_name(batch, i)}: a valid lane has non-positive width")


def points_on_drivable(
    batch: SceneBatch, points: np.ndarray, margin: float = 0.0
) -> np.ndarray:
    """Whether points lie on the drivable area (lane corridors ∪ drivable polygons).

    Args:
        batch: S scenes.
        points: (S, M, 2) query points in each scene's frame.
        margin: extra lateral tolerance (m) added to half the lane width.

    Returns:
        (S, M) bool.

    This exact, brute-force check is meant for validation and small queries; the scorer has
    its own fast path.
    """
    # Valid lanes only (a third of the padded lane slots in world scenes): the same arithmetic as
    # lateral_distance_to_lanes on those lanes, so the same verdicts.
    scene, lane = np.nonzero(batch.lane_valid)
    start = batch.lanes[scene, lane, :-1]  # (N, P-1, 2)
    _, dist = closest_on_segments(points[scene][:, :, None], start[:, None], (batch.lanes[scene, lane, 1:] - start)[:, None])
    lateral = dist.min(-1).astype(np.float32)  # (N, M)
    half_width = 0.5 * batch.lane_width[scene, lane][:, None] + margin
    in_lane = np.zeros(points.shape[:2], dtype=bool)
    hit = np.nonzero(lateral <= half_width)
    in_lane[scene[hit[0]], hit[1]] = True
    in_polygon = points_in_polygons(points, batch.drivable_polygons, batch.drivable_vertex_valid).any(-1)
    return in_lane | in_polygon


def ego_on_drivable(batch: SceneBatch, margin: float = 0.5) -> np.ndarray:
    """(S,) bool: the ego centre at t0 lies on the drivable area (with ``margin`` m tolerance)."""
    centre = batch.ego[:, batch.history_steps, None, :2]
    return points_on_drivable(batch, centre, margin=margin)[:, 0]


def lateral_distance_to_lanes(batch: SceneBatch, points: np.ndarray) -> np.ndarray:
    """Distance (m) from each point to each lane centerline polyline.

    Args:
        points: (S, M, 2).

    Returns:
        (S, M, L) float32; +inf for invalid lanes. Distance to the polyline segments, so the
        ends of a lane are rounded caps.
    """
    start = batch.lanes[:, None, :, :-1]  # (S, 1, L, P-1, 2)
    _, dist = closest_on_segments(points[:, :, None, None], start, batch.lanes[:, None, :, 1:] - start)  # (S, M, L, P-1)
    # Zero-length segments (padding repeats the last point) are harmless: they are points.
    dist = dist.min(-1)
    return np.where(batch.lane_valid[:, None, :], dist, np.inf).astype(np.float32)


def wrap_angle(angle: np.ndarray) -> np.ndarray:
    """Wrap radians to (-pi, pi]."""
    return np.pi - np.mod(np.pi - angle, 2 * np.pi)


def empty_batch(
    num_scenes: int,
    *,
    num_agents: int = 0,
    num_lanes: int = 0,
    lane_points: int = 20,
    num_successors: int = 4,
    num_polygons: int = 0,
    polygon_vertices: int = 4,
    num_crosswalks: int = 0,
    route_lanes: int = 8,
    route_points: int = 96,
    dt: float = DEFAULT_DT,
    history_steps: int = DEFAULT_HISTORY_STEPS,
    future_steps: int = DEFAULT_FUTURE_STEPS,
) -> SceneBatch:
    """A batch of padding-filled arrays with the given sizes, for builders to fill in."""
    sizes = {
        "S": num_scenes, "T": history_steps + 1 + future_steps, "N": num_agents, "L": num_lanes,
        "P": lane_points, "K": num_successors, "D": num_polygons, "V": polygon_vertices,
        "C": num_crosswalks, "R": route_lanes, "Q": route_points,
    }
    arrays = {}
    for name, (pad_value, dtype) in ARRAY_SPECS.items():
        shape = tuple(_LITERAL_DIMS.get(letter, sizes.get(letter)) for letter in ARRAY_DIMS[name])
        arrays[name] = np.full(shape, pad_value, dtype=dtype)
    meta = {k: np.full(num_scenes, "", dtype=object) for k in META_STRING_KEYS}
    meta["t0"] = np.zeros(num_scenes, dtype=np.float64)
    return SceneBatch(**arrays, meta=meta, dt=dt, history_steps=history_steps)


def resample_polyline(points: np.ndarray, num_points: int) -> np.ndarray:
    """Resample an (M, 2) polyline to ``num_points`` points evenly spaced by arc length."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 1:
        return np.repeat(points, num_points, axis=0)
    seg = np.sqrt((np.diff(points, axis=0) ** 2).sum(-1))
    s = np.concatenate([[0.0], np.cumsum(seg)])
    if s[-1] <= 0:
        return np.repeat(points[:1], num_points, axis=0)
    targets = np.linspace(0.0, s[-1], num_points)
    return np.stack([np.interp(targets, s, points[:, k]) for k in range(2)], axis=-1)


def to_scene_frame(points_world: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Transform (..., 2) world points into the frame with origin/yaw ``pose`` = (x, y, yaw)."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    d = np.asarray(points_world, dtype=np.float64) - pose[:2]
    return np.stack([c * d[..., 0] + s * d[..., 1], -s * d[..., 0] + c * d[..., 1]], axis=-1)


def to_world_frame(points_scene: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """Inverse of :func:`to_scene_frame`."""
    c, s = np.cos(pose[2]), np.sin(pose[2])
    p = np.asarray(points_scene, dtype=np.float64)
    return np.stack([c * p[..., 0] - s * p[..., 1] + pose[0], s * p[..., 0] + c * p[..., 1] + pose[1]], axis=-1)
