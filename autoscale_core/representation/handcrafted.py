"""A cheap hand-crafted scene descriptor: the baseline the learned encoders must beat.

Every feature is computed from a :class:`~autoscale_core.scene.SceneBatch` with vectorized numpy
over scenes and agents (no Python loop over scenes), in the scene frame at t0. The ``future_*``
features read the logged ego future (the expert label), which every pool scene has in data
selection; everything else uses t0 and the history only.
"""

from __future__ import annotations

import numpy as np

from ..scene import (
    CYCLIST,
    PEDESTRIAN,
    STATIC,
    TL_GREEN,
    TL_NONE,
    TL_RED,
    TL_YELLOW,
    VEHICLE,
    SceneBatch,
    lateral_distance_to_lanes,
)

RADII = (10.0, 30.0)  # m, agent-count rings
FAR = 60.0  # m, value used when no agent of a kind is present (distance caps)
TTC_CAP = 10.0  # s
LEAD_HALF_WIDTH = 2.0  # m, lateral half-width of the ego corridor that defines a "lead" agent


def _count_names() -> list[str]:
    kinds = ("vehicle", "pedestrian", "cyclist", "static")
    return [f"n_{k}_{int(r)}m" for r in RADII for k in kinds]


FEATURE_NAMES: tuple[str, ...] = tuple(
    [
        "ego_speed", "ego_accel", "ego_yaw_rate", "ego_speed_hist_mean", "ego_speed_hist_std",
        "route_curvature_max", "route_heading_change_30m",
        "future_lateral_4s", "future_heading_change_4s", "future_min_speed", "future_max_decel",
    ]
    + _count_names()
    + [
        "lead_gap", "lead_ttc", "lead_rel_speed", "nearest_agent_dist", "nearest_pedestrian_dist",
        "mean_agent_speed_30m", "tl_red", "tl_yellow", "tl_green", "tl_none",
        "on_intersection", "route_has_intersection", "speed_limit", "speed_over_limit",
        "num_lanes", "num_crosswalks_30m",
    ]
)


class HandcraftedFeatures:
    """Standardized hand-crafted features, scikit-learn style.

    ``fit(batch)`` learns the per-feature mean and standard deviation; ``transform(batch)``
    returns ``(S, F)`` float32 standardized features (``F = len(FEATURE_NAMES)``).
    ``raw(batch)`` gives the unstandardized values (m, m/s, s, counts).
    """

    feature_names = FEATURE_NAMES

    def __init__(self) -> None:
        self.mean_: np.ndarray | None = None
        self.scale_: np.ndarray | None = None

    def fit(self, batch: SceneBatch) -> "HandcraftedFeatures":
        return self.fit_raw(self.raw(batch))

    def fit_raw(self, raw: np.ndarray) -> "HandcraftedFeatures":
        """Fit on (S, F) raw features (from :meth:`raw`), e.g. gathered chunk by chunk."""
        raw = np.asarray(raw, dtype=np.float64)
        self.mean_ = raw.mean(0)
        std = raw.std(0)
        # Constant columns (std at float32 round-off level) are centred but not scaled.
        self.scale_ = np.where(std > 1e-5 * np.maximum(1.0, np.abs(self.mean_)), std, 1.0)
        return self

    def transform(self, batch: SceneBatch) -> np.ndarray:
        return self.transform_raw(self.raw(batch))

    def transform_raw(self, raw: np.ndarray) -> np.ndarray:
        """(S, F) float32 standardized features from (S, F) raw features."""
        if self.mean_ is None:
            raise RuntimeError("HandcraftedFeatures is not fitted: call fit(batch) first")
        return ((raw - self.mean_) / self.scale_).astype(np.float32)

    def fit_transform(self, batch: SceneBatch) -> np.ndarray:
        return self.fit(batch).transform(batch)

    @staticmethod
    def raw(batch: SceneBatch) -> np.ndarray:
        """(S, F) float32 unstandardized features; see ``FEATURE_NAMES``."""
        if len(batch) == 0:
            raise ValueError("HandcraftedFeatures: the scene batch is empty")
        cols = {}
        cols.update(_ego_features(batch))
        cols.update(_route_features(batch))
        cols.update(_agent_features(batch))
        cols.update(_map_features(batch))
        out = np.stack([np.asarray(cols[name], dtype=np.float64) for name in FEATURE_NAMES], axis=1)
        return np.nan_to_num(out, nan=0.0, posinf=FAR, neginf=-FAR).astype(np.float32)


def _ego_features(batch: SceneBatch) -> dict[str, np.ndarray]:
    h, dt = batch.history_steps, batch.dt
    ego = batch.ego.astype(np.float64)
    heading = np.unwrap(ego[:, :, 2], axis=1)
    speed = ego[:, :, 3]
    hist = speed[:, : h + 1]
    future = ego[:, h + 1 :]
    yaw_rate = (heading[:, h] - heading[:, h - 1]) / dt if h >= 1 else np.zeros(len(batch))
    future_accel = np.diff(np.concatenate([speed[:, h : h + 1], future[:, :, 3]], axis=1), axis=1) / dt
    return {
        "ego_speed": speed[:, h],
        "ego_accel": ego[:, h, 4],
        "ego_yaw_rate": yaw_rate,
        "ego_speed_hist_mean": hist.mean(1),
        "ego_speed_hist_std": hist.std(1),
        "future_lateral_4s": future[:, -1, 1],
        "future_heading_change_4s": heading[:, -1] - heading[:, h],
        "future_min_speed": future[:, :, 3].min(1),
        "future_max_decel": np.maximum(-future_accel.min(1), 0.0),
    }


def _route_features(batch: SceneBatch) -> dict[str, np.ndarray]:
    """Curvature of the route ahead (0–30 m), from headings of consecutive route segments."""
    pts = batch.route_polyline.astype(np.float64)
    valid = batch.route_valid[:, 1:] & batch.route_valid[:, :-1]
    seg = np.diff(pts, axis=1)
    seg_len = np.hypot(seg[..., 0], seg[..., 1])
    ahead = valid & (pts[:, 1:, 0] > 0.0) & (np.linalg.norm(pts[:, 1:], axis=-1) < 30.0) & (seg_len > 1e-3)
    seg_heading = np.arctan2(seg[..., 1], seg[..., 0])
    turn = np.angle(np.exp(1j * np.diff(seg_heading, axis=1)))  # wrapped heading change per vertex
    both = ahead[:, 1:] & ahead[:, :-1]
    curvature = np.where(both, np.abs(turn) / np.maximum(0.5 * (seg_len[:, 1:] + seg_len[:, :-1]), 0.5), 0.0)
    return {
        "route_curvature_max": curvature.max(1) if curvature.shape[1] else np.zeros(len(batch)),
        "route_heading_change_30m": np.where(both, turn, 0.0).sum(1),
    }


def _agent_features(batch: SceneBatch) -> dict[str, np.ndarray]:
    h = batch.history_steps
    S = len(batch)
    xy = batch.agents[:, :, h, :2].astype(np.float64)
    speed = batch.agents[:, :, h, 3].astype(np.float64)
    heading = batch.agents[:, :, h, 2].astype(np.float64)
    valid = batch.agent_valid[:, :, h] & (batch.agent_type >= 0)
    dist = np.where(valid, np.hypot(xy[..., 0], xy[..., 1]), np.inf)
    kinds = {"vehicle": VEHICLE, "pedestrian": PEDESTRIAN, "cyclist": CYCLIST, "static": STATIC}
    out: dict[str, np.ndarray] = {}
    for r in RADII:
        for name, code in kinds.items():
            out[f"n_{name}_{int(r)}m"] = ((dist < r) & (batch.agent_type == code)).sum(1)
    ego_len = batch.ego_size[:, 0:1].astype(np.float64)
    lead = valid & (xy[..., 0] > 0) & (np.abs(xy[..., 1]) < LEAD_HALF_WIDTH)
    gap = np.where(lead, xy[..., 0] - 0.5 * (ego_len + batch.agent_size[..., 0]), np.inf)
    lead_idx = np.argmin(gap, axis=1)
    has_lead = np.isfinite(gap.min(1)) if gap.shape[1] else np.zeros(S, bool)
    lead_gap = np.where(has_lead, np.maximum(gap.min(1) if gap.shape[1] else FAR, 0.0), FAR)
    ego_speed = batch.ego[:, h, 3].astype(np.float64)
    if gap.shape[1]:
        lead_vx = np.take_along_axis(speed * np.cos(heading), lead_idx[:, None], 1)[:, 0]
    else:
        lead_vx = np.zeros(S)
    closing = np.where(has_lead, ego_speed - lead_vx, 0.0)
    ttc = np.where(closing > 0.1, lead_gap / np.maximum(closing, 0.1), TTC_CAP)
    near = dist.min(1) if dist.shape[1] else np.full(S, np.inf)
    ped = np.where(batch.agent_type == PEDESTRIAN, dist, np.inf)
    within = valid & (dist < RADII[-1])
    out.update(
        lead_gap=np.minimum(lead_gap, FAR),
        lead_ttc=np.minimum(ttc, TTC_CAP),
        lead_rel_speed=closing,
        nearest_agent_dist=np.minimum(near, FAR),
        nearest_pedestrian_dist=np.minimum(ped.min(1) if ped.shape[1] else np.full(S, FAR), FAR),
        mean_agent_speed_30m=(speed * within).sum(1) / np.maximum(within.sum(1), 1),
    )
    return out


def _route_lane_at_ego(batch: SceneBatch) -> tuple[np.ndarray, np.ndarray]:
    """(S, R) valid route-lane indices (clipped to >= 0) and their validity mask."""
    idx = batch.route_lanes.astype(np.int64)
    ok = (idx >= 0) & (idx < batch.lane_valid.shape[1])
    return np.clip(idx, 0, max(batch.lane_valid.shape[1] - 1, 0)), ok


def _map_features(batch: SceneBatch) -> dict[str, np.ndarray]:
    h = batch.history_steps
    S, L = batch.lane_valid.shape
    rows = np.arange(S)[:, None]
    out: dict[str, np.ndarray] = {}
    if L == 0:
        zeros = np.zeros(S)
        out.update(tl_red=zeros, tl_yellow=zeros, tl_green=zeros, tl_none=np.ones(S), on_intersection=zeros,
                   route_has_intersection=zeros, speed_limit=zeros, speed_over_limit=zeros, num_lanes=zeros)
    else:
        idx, ok = _route_lane_at_ego(batch)
        ok &= batch.lane_valid[rows, idx]
        # The lane the ego is on: the nearest valid lane centreline to the ego at t0.
        centre = batch.ego[:, h, None, :2]
        lateral = lateral_distance_to_lanes(batch, centre)[:, 0]  # (S, L)
        current = np.argmin(lateral, axis=1)
        tl_route = np.where(ok, batch.lane_tl[rows, idx, h], TL_NONE)  # (S, R)
        first_light = np.argmax(tl_route != TL_NONE, axis=1)
        tl = tl_route[np.arange(S), first_light] if tl_route.shape[1] else np.full(S, TL_NONE)
        out.update(
            tl_red=tl == TL_RED,
            tl_yellow=tl == TL_YELLOW,
            tl_green=tl == TL_GREEN,
            tl_none=~np.isin(tl, (TL_RED, TL_YELLOW, TL_GREEN)),
            on_intersection=batch.lane_is_intersection[np.arange(S), current],
            route_has_intersection=(batch.lane_is_intersection[rows, idx] & ok).any(1),
            speed_limit=batch.lane_speed_limit[np.arange(S), current],
            num_lanes=batch.lane_valid.sum(1),
        )
        out["speed_over_limit"] = batch.ego[:, h, 3] - out["speed_limit"]
    if batch.crosswalks.shape[1]:
        centres = batch.crosswalks.mean(2)
        near = np.hypot(centres[..., 0], centres[..., 1]) < RADII[-1]
        out["num_crosswalks_30m"] = (near & batch.crosswalk_valid).sum(1)
    else:
        out["num_crosswalks_30m"] = np.zeros(S)
    return out
