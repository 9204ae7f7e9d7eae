"""A driving log on a uniform 10 Hz grid, source-independent: what every log importer (AV2,
ScenarioNet) builds before :mod:`autoscale_core.io.log_slicing` cuts it into scenes.

* :class:`_Log` — ego and agent tracks in the city frame, the map, per-source defaults.
* :class:`_Map` — a vector map in the city frame, lanes resampled to :data:`LANE_POINTS` points.
* :class:`ImportReport` — what an import produced and what it skipped.
* :func:`_ego_dynamics` — smoothed speed and acceleration (Savitzky-Golay, no finite-difference spikes).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.signal import savgol_filter

SOURCE_DT = 0.1  # s, AV2 annotation sweeps and forecasting steps are 10 Hz
DEFAULT_SPEED_LIMIT = 11.176  # m/s (25 mph); AV2 maps carry no speed limits
LANE_POINTS = 20
EGO_SIZE = (4.9, 2.0)  # m, length × width of the AV2 ego vehicle


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
