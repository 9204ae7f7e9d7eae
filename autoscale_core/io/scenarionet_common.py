"""What the ScenarioNet importer and exporter share: the error type and resampling to 10 Hz."""

from __future__ import annotations

import numpy as np

from ..scene import wrap_angle
from .driving_log import SOURCE_DT


class ScenarioNetImportError(ValueError):
    """ScenarioNet input is missing, unsafe or malformed; the message names the file and the problem."""


def resample_tracks(ts: np.ndarray, values: np.ndarray, valid: np.ndarray, angle: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Values (A, T, ...) at times ``ts`` (T,) → the 0.1 s grid (A, K, ...), linear; valid where
    both neighbouring samples are. Angles interpolate along the short way round."""
    grid = np.arange(int(np.floor(ts[-1] / SOURCE_DT + 1e-6)) + 1) * SOURCE_DT
    if len(ts) == len(grid) and np.allclose(ts, grid, atol=0.02):
        return values, valid
    right = np.clip(np.searchsorted(ts, grid - 1e-9), 1, len(ts) - 1)
    left = right - 1
    w = np.clip((grid - ts[left]) / np.maximum(ts[right] - ts[left], 1e-9), 0.0, 1.0)
    w = w.reshape((1, -1) + (1,) * (values.ndim - 2))
    a, b = values[:, left], values[:, right]
    step = wrap_angle(b - a) if angle else b - a
    out = a + w * step
    # On a source sample only that sample must be valid (else first/last and lone samples vanish).
    at_left, at_right = w.reshape(-1) < 1e-6, w.reshape(-1) > 1 - 1e-6
    ok = np.where(at_left, valid[:, left], np.where(at_right, valid[:, right], valid[:, left] & valid[:, right]))
    out = np.where(at_left.reshape(w.shape), a, np.where(at_right.reshape(w.shape), b, out))
    return (wrap_angle(out) if angle else out), ok
