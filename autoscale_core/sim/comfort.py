"""Comfort metrics of the EPDMS scorer: HC on driven states, EC between consecutive plans."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import savgol_filter

from ..scene import wrap_angle
from . import kernels
from .config import ScorerConfig


@lru_cache(maxsize=16)
def _savgol_taps(num: int, window: int, deriv: int, dt: float) -> tuple[np.ndarray, np.ndarray]:
    """``savgol_filter(x, window, 2, deriv, delta=dt, mode="interp")`` along the last axis as
    banded taps: output k = Σ_j coef[k, j] · x[..., index[k, j]] (the filter is linear; this is
    much cheaper than its edge polynomial fits). Returns index, coef, each (num, window)."""
    matrix = savgol_filter(np.eye(num), window, 2, deriv=deriv, delta=dt, axis=0, mode="interp")
    start = np.clip(np.arange(num) - window // 2, 0, num - window)  # the window each row uses
    index = start[:, None] + np.arange(window)
    return index, np.take_along_axis(matrix, index, 1)


def comfort_ok(states: np.ndarray, dt: float, config: ScorerConfig) -> np.ndarray:
    """HC on (..., K, 5) states → (...) bool: nuPlan's comfort bounds on Savitzky–Golay
    derivatives (window ``config.hc_window``, polyorder 2) of the unwrapped heading and the
    acceleration (:func:`.kernels.comfort_ok`, one compiled pass per trajectory)."""
    K = states.shape[-2]
    window = min(config.hc_window, K - (1 - K % 2))
    index, coef0 = _savgol_taps(K, window, 0, float(dt))
    coef1, coef2 = (_savgol_taps(K, window, d, float(dt))[1] for d in (1, 2))
    st = np.ascontiguousarray(states, dtype=np.float64).reshape(-1, K, states.shape[-1])
    eps = 1e-9
    ok = kernels.comfort_ok(
        st, index, coef0, coef1, coef2, config.hc_lon_acc[0] - eps, config.hc_lon_acc[1] + eps,
        config.hc_lat_acc + eps, config.hc_yaw_rate + eps, config.hc_yaw_acc + eps, config.hc_lon_jerk + eps,
        config.hc_jerk + eps,
    )
    return ok.reshape(states.shape[:-2])


def plan_profiles(poses: np.ndarray, dt: float) -> dict[str, np.ndarray]:
    """Finite-difference profiles of a pose sequence (..., M, 3) spaced ``dt``.

    Returns acc (..., M-2), jerk (..., M-3), yaw_rate (..., M-1), yaw_acc (..., M-2).
    """
    p = poses
    speed = np.sqrt((np.diff(p[..., :2], axis=-2) ** 2).sum(-1)) / dt
    acc = np.diff(speed, axis=-1) / dt
    jerk = np.diff(acc, axis=-1) / dt
    yaw_rate = wrap_angle(np.diff(p[..., 2], axis=-1)) / dt
    yaw_acc = np.diff(yaw_rate, axis=-1) / dt
    return {"acc": acc, "jerk": jerk, "yaw_rate": yaw_rate, "yaw_acc": yaw_acc}


def extended_comfort(
    start: np.ndarray, plans: np.ndarray, previous: np.ndarray, dt: float, config: ScorerConfig
) -> np.ndarray:
    """EC (...,) in {0, 1}: consistency of ``plans`` (..., F, 3) with ``previous`` (..., F, 3).

    ``previous[..., j]`` is at t = j·dt (the previous frame was one step earlier); ``start`` (..., 3)
    is the current t0 pose, which the previous plan's first pose should also predict.
    """
    cur = np.concatenate([start[..., None, :], plans], -2)  # poses at t = 0 … F·dt
    F = plans.shape[-2]
    cur_overlap = cur[..., : F, :]  # t = 0 … (F-1)·dt, the times the previous plan covers
    cp, pp = plan_profiles(cur_overlap, dt), plan_profiles(previous, dt)
    limits = {"acc": config.ec_acc, "jerk": config.ec_jerk, "yaw_rate": config.ec_yaw_rate, "yaw_acc": config.ec_yaw_acc}
    ok = np.ones(plans.shape[:-2], dtype=bool)
    for key, limit in limits.items():
        rms = np.sqrt(np.mean((cp[key] - pp[key]) ** 2, axis=-1))
        ok &= rms <= limit + 1e-9
    return ok.astype(np.float64)
