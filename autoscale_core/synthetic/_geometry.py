"""Small vectorized geometry helpers for synthetic scenes: route Frenet frame, frame changes, lane queries.

Everything is batched along the scene axis S and works on plain numpy arrays. Oriented boxes
(corners, overlap) are in :mod:`autoscale_core.geometry`.
"""

from __future__ import annotations

import numpy as np

from ..geometry import closest_on_segments
from ..scene import wrap_angle


def quintic(tau: np.ndarray) -> np.ndarray:
    """Smooth step 0 → 1 on tau ∈ [0, 1] with zero velocity and acceleration at both ends."""
    t = np.clip(tau, 0.0, 1.0)
    return t**3 * (10.0 - 15.0 * t + 6.0 * t**2)


def quintic_rate(tau: np.ndarray) -> np.ndarray:
    """d quintic / d tau."""
    t = np.clip(tau, 0.0, 1.0)
    return 30.0 * t**2 * (1.0 - t) ** 2


def quintic_integral(tau: np.ndarray) -> np.ndarray:
    """∫_0^tau quintic; equals 0.5 at tau = 1 (and grows linearly after it)."""
    t = np.clip(tau, 0.0, 1.0)
    extra = np.maximum(np.asarray(tau, dtype=np.float64) - 1.0, 0.0)
    return 2.5 * t**4 - 3.0 * t**5 + t**6 + extra


class RouteFrame:
    """Frenet coordinates (s along, l left of) each scene's route polyline.

    Args:
        polyline: (S, Q, 2) route points; valid points must be a prefix (``valid`` (S, Q)).
    """

    def __init__(self, polyline: np.ndarray, valid: np.ndarray):
        pts = np.asarray(polyline, dtype=np.float64)
        valid = np.asarray(valid, dtype=bool)
        count = np.maximum(valid.sum(-1), 1)
        # Pad each route by repeating its last valid point, then extend it 200 m straight ahead
        # and behind so projections past the ends stay well defined.
        last = pts[np.arange(len(pts)), count - 1]
        pts = np.where(valid[..., None], pts, last[:, None, :])
        seg = np.diff(pts, axis=1)
        seg_len = np.sqrt((seg**2).sum(-1))
        first_dir = _first_direction(seg, seg_len)
        last_dir = _first_direction(seg[:, ::-1], seg_len[:, ::-1])
        pts = np.concatenate([pts[:, :1] - 200.0 * first_dir[:, None], pts, last[:, None] + 200.0 * last_dir[:, None]], 1)
        seg = np.diff(pts, axis=1)
        seg_len = np.sqrt((seg**2).sum(-1))
        self.points = pts  # (S, Q+2, 2)
        self.seg_len = seg_len  # (S, Q+1)
        self.cum = np.concatenate([np.zeros((len(pts), 1)), np.cumsum(seg_len, 1)], 1)  # (S, Q+2)
        # Zero-length segments inherit the heading of the previous real segment.
        heading = np.arctan2(seg[..., 1], seg[..., 0])
        real = seg_len > 1e-6
        idx = np.where(real, np.arange(seg_len.shape[1])[None], 0)
        idx = np.maximum.accumulate(idx, axis=1)
        self.seg_heading = np.take_along_axis(heading, idx, 1)

    def project(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(S, M, 2) points → s (S, M) arc length and l (S, M) signed lateral offset (left +)."""
        p = np.asarray(points, dtype=np.float64)[:, :, None, :]
        a = self.points[:, None, :-1]
        ab = self.points[:, None, 1:] - a
        len2 = np.maximum((ab**2).sum(-1), 1e-12)
        t = np.clip(((p - a) * ab).sum(-1) / len2, 0.0, 1.0)
        closest = a + t[..., None] * ab
        dist2 = ((p - closest) ** 2).sum(-1)
        k = dist2.argmin(-1)  # (S, M)
        tk = np.take_along_axis(t, k[..., None], -1)[..., 0]
        s = np.take_along_axis(self.cum[:, :-1], k, 1)
        s = s + tk * np.take_along_axis(self.seg_len, k, 1)
        h = np.take_along_axis(self.seg_heading, k, 1)
        pa = p[:, :, 0] - np.take_along_axis(self.points, k[..., None].repeat(2, -1), 1)
        l = -np.sin(h) * pa[..., 0] + np.cos(h) * pa[..., 1]
        return s, l

    def heading(self, s: np.ndarray) -> np.ndarray:
        """(S, M) route heading at arc length s."""
        return np.take_along_axis(self.seg_heading, self._segment(s), 1)

    def point(self, s: np.ndarray, l: np.ndarray) -> np.ndarray:
        """(S, M) Frenet coordinates → (S, M, 2) points."""
        k = self._segment(s)
        base = np.take_along_axis(self.points, k[..., None].repeat(2, -1), 1)
        h = np.take_along_axis(self.seg_heading, k, 1)
        ds = s - np.take_along_axis(self.cum, k, 1)
        x = base[..., 0] + ds * np.cos(h) - l * np.sin(h)
        y = base[..., 1] + ds * np.sin(h) + l * np.cos(h)
        return np.stack([x, y], -1)

    def _segment(self, s: np.ndarray) -> np.ndarray:
        k = (self.cum[:, None, :] <= np.asarray(s)[..., None]).sum(-1) - 1
        return np.clip(k, 0, self.seg_len.shape[1] - 1)


def _first_direction(seg: np.ndarray, seg_len: np.ndarray) -> np.ndarray:
    """Unit direction of the first non-degenerate segment (S, 2); +x when there is none."""
    real = seg_len > 1e-6
    k = np.where(real.any(1), real.argmax(1), 0)
    d = seg[np.arange(len(seg)), k]
    n = np.linalg.norm(d, axis=-1, keepdims=True)
    d = np.where(n > 1e-6, d / np.maximum(n, 1e-12), np.array([1.0, 0.0]))
    return d


def transform_points(points: np.ndarray, pose: np.ndarray) -> np.ndarray:
    """(S, ..., 2) points → frame with origin/yaw ``pose`` (S, 3) given in the same frame."""
    shape = (len(pose),) + (1,) * (points.ndim - 2)
    c, s = np.cos(pose[:, 2]).reshape(shape), np.sin(pose[:, 2]).reshape(shape)
    dx = points[..., 0] - pose[:, 0].reshape(shape)
    dy = points[..., 1] - pose[:, 1].reshape(shape)
    return np.stack([c * dx + s * dy, -s * dx + c * dy], -1)


def transform_headings(heading: np.ndarray, pose: np.ndarray) -> np.ndarray:
    shape = (len(pose),) + (1,) * (heading.ndim - 1)
    return wrap_angle(heading - pose[:, 2].reshape(shape))


def compose_global(global_pose: np.ndarray, local_pose: np.ndarray) -> np.ndarray:
    """World pose of a frame whose pose in the scene frame is ``local_pose`` (both (S, 3))."""
    c, s = np.cos(global_pose[:, 2]), np.sin(global_pose[:, 2])
    x = global_pose[:, 0] + c * local_pose[:, 0] - s * local_pose[:, 1]
    y = global_pose[:, 1] + s * local_pose[:, 0] + c * local_pose[:, 1]
    return np.stack([x, y, wrap_angle(global_pose[:, 2] + local_pose[:, 2])], -1)


def in_aligned_lane(
    lanes: np.ndarray, lane_valid: np.ndarray, lane_width: np.ndarray, points: np.ndarray, headings: np.ndarray,
    max_angle: float = np.pi / 2,
) -> np.ndarray:
    """(S, M) the point lies within half a lane width of some valid lane whose direction at the
    nearest point is within ``max_angle`` of ``headings`` (S, M)."""
    a = lanes[:, :, :-1].astype(np.float64)  # (S, L, P-1, 2)
    ab = lanes[:, :, 1:].astype(np.float64) - a
    len2 = np.maximum((ab**2).sum(-1), 1e-9)
    _, dist = closest_on_segments(points[:, :, None, None, :], a[:, None], ab[:, None], len2[:, None])  # (S, M, L, P-1)
    dist = np.where(len2[:, None] > 1e-8, dist, np.inf)
    k = dist.argmin(-1)  # (S, M, L)
    d = np.take_along_axis(dist, k[..., None], -1)[..., 0]
    seg = np.take_along_axis(np.broadcast_to(ab[:, None], dist.shape + (2,)), k[..., None, None], -2)[..., 0, :]
    angle = np.abs(wrap_angle(np.arctan2(seg[..., 1], seg[..., 0]) - headings[..., None]))
    ok = (d <= 0.5 * lane_width[:, None, :]) & (angle < max_angle) & lane_valid[:, None, :]
    return ok.any(-1)


def nearby_lanes(lanes, lane_valid, lane_width, centre: np.ndarray, k: int = 24):
    """The ``k`` lanes nearest to ``centre`` (S, 2) per scene: (lanes (S, k, P, 2), valid (S, k),
    width (S, k)). Cheap pre-selection for queries near the ego."""
    if lanes.shape[1] <= k:
        return lanes, lane_valid, lane_width
    a = lanes[:, :, :-1].astype(np.float64)
    ab = lanes[:, :, 1:].astype(np.float64) - a
    dist = closest_on_segments(centre[:, None, None, :], a, ab)[1].min(-1)  # (S, L)
    dist = np.where(lane_valid, dist, np.inf)
    order = np.argsort(dist, axis=1, kind="stable")[:, :k]
    take = lambda x: np.take_along_axis(x, order.reshape(order.shape + (1,) * (x.ndim - 2)), 1)  # noqa: E731
    return take(lanes), take(lane_valid), take(lane_width)


def on_lane_corridor(lanes, lane_valid, lane_width, points: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(S, M) the points lie within half a lane width (+ margin) of some valid lane centerline."""
    a = lanes[:, None, :, :-1].astype(np.float64)  # (S, 1, L, P-1, 2)
    ab = lanes[:, None, :, 1:].astype(np.float64) - a
    dist = closest_on_segments(points[:, :, None, None, :], a, ab)[1].min(-1)  # (S, M, L)
    return ((dist <= 0.5 * lane_width[:, None, :] + margin) & lane_valid[:, None, :]).any(-1)
