"""The Intelligent Driver Model (Treiber et al., 2000), vectorized over any batch shape."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class IDMParams:
    """IDM constants. Units: m, s, m/s, m/s²."""

    min_gap: float = 2.0  # s0, standstill gap (m)
    time_headway: float = 1.5  # T (s)
    max_accel: float = 1.5  # a (m/s²)
    comfort_decel: float = 2.0  # b (m/s²)
    exponent: float = 4.0  # delta
    max_decel: float = 8.0  # physical braking limit used to clip the result (m/s²)


def idm_acceleration(
    speed: np.ndarray,
    desired_speed: np.ndarray,
    gap: np.ndarray,
    closing_speed: np.ndarray,
    params: IDMParams = IDMParams(),
    time_headway: np.ndarray | float | None = None,
    max_accel: np.ndarray | float | None = None,
) -> np.ndarray:
    """IDM acceleration (m/s²), broadcast over all inputs.

    Args:
        speed: own speed v (m/s).
        desired_speed: v0 (m/s); values <= 0 are treated as 0.1 to avoid division by zero.
        gap: bumper-to-bumper distance to the leader (m); +inf when there is no leader.
        closing_speed: v - v_leader (m/s), positive when approaching.
        time_headway, max_accel: optional per-element overrides (driver aggressiveness).
    """
    headway = params.time_headway if time_headway is None else time_headway
    accel = params.max_accel if max_accel is None else max_accel
    v = np.maximum(speed, 0.0)
    v0 = np.maximum(desired_speed, 0.1)
    s_star = params.min_gap + np.maximum(
        0.0, v * headway + v * closing_speed / (2.0 * np.sqrt(accel * params.comfort_decel))
    )
    gap = np.maximum(gap, 0.1)
    interaction = np.where(np.isfinite(gap), (s_star / gap) ** 2, 0.0)
    result = accel * (1.0 - (v / v0) ** params.exponent - interaction)
    return np.clip(result, -params.max_decel, accel)
