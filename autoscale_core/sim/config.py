"""Constants and result type of the EPDMS scorer (see :mod:`autoscale_core.sim.scoring`)."""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

METRICS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec")
FILTERED = ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc", "ec")


@dataclass(frozen=True)
class ScorerConfig:
    """Scorer constants (units: s, m, m/s, rad)."""

    num_poses: int = 8  # planning horizon in poses at the batch's dt
    dt_sim: float = 0.1
    stopped_speed: float = 0.05
    ddc_half: float = 2.0  # backwards travel (m) above which DDC = 0.5
    ddc_zero: float = 6.0  # ... and above which DDC = 0
    tl_alignment: float = np.pi / 3
    ttc_horizons: tuple[float, ...] = (0.3, 0.6, 0.9)
    lk_threshold: float = 0.5
    lk_duration: float = 2.0
    lk_alignment: float = np.pi / 2
    ep_min_progress: float = 5.0
    progress_reference: str = "rule_planner"  # or "candidates"
    hc_lon_acc: tuple[float, float] = (-4.05, 2.40)
    hc_lat_acc: float = 4.89
    hc_yaw_rate: float = 0.95
    hc_yaw_acc: float = 1.93
    hc_lon_jerk: float = 4.13
    hc_jerk: float = 8.37
    hc_window: int = 5  # Savitzky-Golay window (steps, polyorder 2) for HC's derivatives, as nuPlan
    ec_acc: float = 0.7
    ec_jerk: float = 0.5
    ec_yaw_rate: float = 0.1
    ec_yaw_acc: float = 0.1
    weights: tuple[float, float, float, float, float] = (5.0, 5.0, 2.0, 2.0, 2.0)  # EP TTC LK HC EC
    chunk_trajectories: int = 1024  # memory bound: trajectories simulated/scored at once
    grid_cell: float = 0.5  # lane-index cell (m) for dense candidate sets (>= 8 per scene)
    grid_cell_sparse: float = 3.5  # ... and for sparse ones: fewer cells to build, as fast to query


@dataclass
class ScoreResult:
    """Per (scene, candidate) scores, each (S, C)."""

    nc: np.ndarray
    dac: np.ndarray
    ddc: np.ndarray
    tlc: np.ndarray
    ep: np.ndarray
    ttc: np.ndarray
    lk: np.ndarray
    hc: np.ndarray
    ec: np.ndarray
    epdms: np.ndarray
    pdms: np.ndarray
    collision: np.ndarray  # any ego–agent overlap (at fault or not)
    progress: np.ndarray  # m along the route
    tl_unknown: np.ndarray  # entered a lane whose light state is unknown (TLC not applicable)
    reference_progress: np.ndarray  # (S,) EP denominator used

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}
