"""Fixed-size planner inputs from a :class:`SceneBatch`, fully vectorized over scenes.

A :class:`SceneFeaturizer` turns S scenes into a :class:`PlannerFeatures` of float32 arrays:

* ``ego``    (S, Fe): the ego history (x, y, sin/cos heading, speed, accel at each history step
  up to t0, scene frame) followed by the route ahead (``route_points`` points resampled by arc
  length from the route point closest to the ego, every ``route_spacing`` m).
* ``agents`` (S, K, Fa) + ``agent_mask`` (S, K): the K agents nearest to the ego at t0, each with
  ``agent_history`` + 1 steps of (x, y, sin/cos heading, vx, vy, observed flag), length, width and
  a type one-hot.
* ``lanes``  (S, M, Fl) + ``lane_mask`` (S, M): the M lanes nearest to the ego, each with
  ``lane_points`` centerline points, width, speed limit, traffic-light one-hot at t0, on-route
  and intersection flags.
* ``ego_state`` (S, 2): the unnormalized speed (m/s) and acceleration (m/s²) at t0, used by the
  kinematic trajectory decoder.

``fit`` learns per-channel mean/std over valid entries (so padding does not bias them);
``transform`` standardizes and zeroes padded entries. The learned state is JSON-serializable
(:meth:`get_state` / :meth:`from_state`) and travels with planner checkpoints.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from ..scene import AGENT_TYPES, SceneBatch

TL_CODES = (-1, 0, 1, 2, 3)  # TL_UNKNOWN, TL_NONE, TL_GREEN, TL_YELLOW, TL_RED
EGO_STEP_FEATURES = 6  # x, y, sin, cos, speed, accel
AGENT_STEP_FEATURES = 7  # x, y, sin, cos, vx, vy, observed


@dataclass
class PlannerFeatures:
    """Planner inputs for S scenes (see the module docstring for the layout)."""

    ego: np.ndarray
    agents: np.ndarray
    agent_mask: np.ndarray
    lanes: np.ndarray
    lane_mask: np.ndarray
    ego_state: np.ndarray  # (S, 2) raw speed (m/s) and accel (m/s²) at t0, for kinematic decoders

    def __len__(self) -> int:
        return int(self.ego.shape[0])

    def subset(self, index) -> "PlannerFeatures":
        return PlannerFeatures(**{f.name: getattr(self, f.name)[index] for f in fields(self)})

    def to_torch(self, device=None) -> dict:
        """A dict of torch tensors (float32 features, bool masks) on ``device``."""
        import torch

        return {f.name: torch.as_tensor(getattr(self, f.name), device=device) for f in fields(self)}


class SceneFeaturizer:
    """Scene → fixed-size float32 tensors, with standardization learned by :meth:`fit`.

    Args:
        num_agents: K, nearest agents kept.
        agent_history: past steps per agent besides t0.
        num_lanes: M, nearest lanes kept.
        lane_points: points per lane (subsampled from the batch's P).
        route_points: route points ahead of the ego.
        route_spacing: metres between route points.
    """

    def __init__(
        self,
        num_agents: int = 12,
        agent_history: int = 2,
        num_lanes: int = 16,
        lane_points: int = 8,
        route_points: int = 12,
        route_spacing: float = 5.0,
    ):
        self.num_agents = int(num_agents)
        self.agent_history = int(agent_history)
        self.num_lanes = int(num_lanes)
        self.lane_points = int(lane_points)
        self.route_points = int(route_points)
        self.route_spacing = float(route_spacing)
        self.stats_: dict[str, tuple[np.ndarray, np.ndarray]] | None = None

    # ------------------------------------------------------------------ public API
    def fit(self, batch: SceneBatch, sample_weight: np.ndarray | None = None) -> "SceneFeaturizer":
        """Learn per-channel mean/std over valid entries of ``batch`` (scenes with weight > 0)."""
        if len(batch) == 0:
            raise ValueError("SceneFeaturizer.fit: the batch is empty (0 scenes)")
        raw = self._raw(batch)
        keep = np.ones(len(batch), bool) if sample_weight is None else np.asarray(sample_weight) > 0
        self.stats_ = {
            "ego": _masked_stats(raw.ego[keep], None),
            "agents": _masked_stats(raw.agents[keep], raw.agent_mask[keep]),
            "lanes": _masked_stats(raw.lanes[keep], raw.lane_mask[keep]),
        }
        return self

    def transform(self, batch: SceneBatch) -> PlannerFeatures:
        """Standardized features of ``batch`` (padding entries are exactly 0)."""
        if self.stats_ is None:
            raise ValueError("SceneFeaturizer.transform: call fit() first")
        raw = self._raw(batch)
        out = {}
        for name, mask in (("ego", None), ("agents", raw.agent_mask), ("lanes", raw.lane_mask)):
            mean, std = self.stats_[name]
            x = (getattr(raw, name) - mean) / std
            if mask is not None:
                x = np.where(mask[..., None], x, 0.0)
            out[name] = x.astype(np.float32)
        return PlannerFeatures(agent_mask=raw.agent_mask, lane_mask=raw.lane_mask, ego_state=raw.ego_state, **out)

    def fit_transform(self, batch: SceneBatch, sample_weight: np.ndarray | None = None) -> PlannerFeatures:
        return self.fit(batch, sample_weight).transform(batch)

    @property
    def dims(self) -> dict[str, int]:
        """Feature sizes: ego, agent and lane channel counts, K and M."""
        if self.stats_ is None:
            raise ValueError("SceneFeaturizer.dims: not fitted")
        return {
            "ego": len(self.stats_["ego"][0]),
            "agent": self._agent_dim,
            "lane": self._lane_dim,
            "num_agents": self.num_agents,
            "num_lanes": self.num_lanes,
        }

    @property
    def _agent_dim(self) -> int:
        return (self.agent_history + 1) * AGENT_STEP_FEATURES + 2 + len(AGENT_TYPES)

    @property
    def _lane_dim(self) -> int:
        return 2 * self.lane_points + 2 + len(TL_CODES) + 2

    def get_params(self) -> dict:
        return {
            "num_agents": self.num_agents, "agent_history": self.agent_history,
            "num_lanes": self.num_lanes, "lane_points": self.lane_points,
            "route_points": self.route_points, "route_spacing": self.route_spacing,
        }

    def get_state(self) -> dict:
        """JSON-serializable parameters + learned statistics."""
        if self.stats_ is None:
            raise ValueError("SceneFeaturizer.get_state: not fitted")
        stats = {k: [m.tolist(), s.tolist()] for k, (m, s) in self.stats_.items()}
        return {"params": self.get_params(), "stats": stats}

    @classmethod
    def from_state(cls, state: dict) -> "SceneFeaturizer":
        featurizer = cls(**state["params"])
        featurizer.stats_ = {
            k: (np.asarray(m, np.float32), np.asarray(s, np.float32)) for k, (m, s) in state["stats"].items()
        }
        return featurizer

    # ------------------------------------------------------------------ raw (unnormalized) features
    def _raw(self, batch: SceneBatch) -> PlannerFeatures:
        ego = np.concatenate([_ego_history(batch), self._route_ahead(batch)], axis=1)
        agents, agent_mask = self._nearest_agents(batch)
        lanes, lane_mask = self._nearest_lanes(batch)
        ego_state = np.nan_to_num(batch.ego[:, batch.current_index, 3:5]).astype(np.float32)
        return PlannerFeatures(ego=ego, agents=agents, agent_mask=agent_mask, lanes=lanes, lane_mask=lane_mask,
                               ego_state=ego_state)

    def _route_ahead(self, batch: SceneBatch) -> np.ndarray:
        """(S, 2 * route_points) route points every ``route_spacing`` m ahead of the closest one."""
        pts = batch.route_polyline.astype(np.float32)  # (S, Q, 2)
        valid = batch.route_valid
        S, Q = valid.shape
        if Q < 2:
            return np.zeros((S, 2 * self.route_points), np.float32)
        seg = np.sqrt((np.diff(pts, axis=1) ** 2).sum(-1)) * (valid[:, 1:] & valid[:, :-1])
        cum = np.concatenate([np.zeros((S, 1), np.float32), np.cumsum(seg, axis=1)], axis=1)  # (S, Q)
        dist = np.where(valid, (pts**2).sum(-1), np.inf)
        closest = dist.argmin(1)
        rel = cum - np.take_along_axis(cum, closest[:, None], 1)
        num_valid = np.maximum(valid.sum(1), 1)
        targets = np.arange(self.route_points, dtype=np.float32) * self.route_spacing  # (D,)
        # Segment index holding each target: the last valid point whose arc length <= target.
        rel_masked = np.where(valid & (np.arange(Q)[None] >= closest[:, None]), rel, np.inf)
        idx = (rel_masked[:, None, :] <= targets[None, :, None]).sum(-1) + closest[:, None] - 1
        hi_limit = np.maximum(num_valid - 2, 0)[:, None]
        idx = np.clip(idx, 0, hi_limit)
        idx1 = np.minimum(idx + 1, (num_valid - 1)[:, None])
        s0 = np.take_along_axis(rel, idx, 1)
        s1 = np.take_along_axis(rel, idx1, 1)
        frac = np.clip((targets[None] - s0) / np.maximum(s1 - s0, 1e-6), 0.0, 1.0)[..., None]
        p0 = np.take_along_axis(pts, idx[..., None].repeat(2, -1), 1)
        p1 = np.take_along_axis(pts, idx1[..., None].repeat(2, -1), 1)
        route = p0 + frac * (p1 - p0)
        route = np.where(valid.any(1)[:, None, None], route, 0.0)
        return route.reshape(S, -1).astype(np.float32)

    def _nearest_agents(self, batch: SceneBatch) -> tuple[np.ndarray, np.ndarray]:
        t0, K, H = batch.current_index, self.num_agents, self.agent_history
        S, N = batch.agent_type.shape
        present = batch.agent_valid[:, :, t0] & (batch.agent_type >= 0)
        dist = np.where(present, (batch.agents[:, :, t0, :2] ** 2).sum(-1), np.inf)
        order = np.argsort(dist, axis=1, kind="stable")[:, :K]
        taken = order.shape[1]
        mask = np.take_along_axis(present, order, 1)
        steps = np.arange(t0 - H, t0 + 1).clip(0)
        states = batch.agents[:, :, steps]  # (S, N, H+1, 4)
        observed = batch.agent_valid[:, :, steps]
        states = np.take_along_axis(states, order[:, :, None, None], 1)
        observed = np.take_along_axis(observed, order[:, :, None], 1)
        heading, speed = states[..., 2], states[..., 3]
        per_step = np.stack(
            [states[..., 0], states[..., 1], np.sin(heading), np.cos(heading),
             speed * np.cos(heading), speed * np.sin(heading), observed.astype(np.float32)],
            axis=-1,
        ) * observed[..., None]
        size = np.take_along_axis(batch.agent_size, order[:, :, None], 1)
        kind = np.take_along_axis(batch.agent_type, order, 1).astype(np.int64)
        onehot = (kind[..., None] == np.arange(len(AGENT_TYPES))).astype(np.float32)
        feats = np.concatenate([per_step.reshape(S, taken, (H + 1) * AGENT_STEP_FEATURES), size, onehot], axis=-1)
        feats = np.where(mask[..., None], np.nan_to_num(feats), 0.0).astype(np.float32)
        return _pad_axis1(feats, K), _pad_axis1(mask, K)

    def _nearest_lanes(self, batch: SceneBatch) -> tuple[np.ndarray, np.ndarray]:
        M, t0 = self.num_lanes, batch.current_index
        S, L, P, _ = batch.lanes.shape
        if L == 0:
            return np.zeros((S, M, self._lane_dim), np.float32), np.zeros((S, M), bool)
        dist = np.where(batch.lane_valid, (batch.lanes**2).sum(-1).min(-1) if P else np.inf, np.inf)
        order = np.argsort(dist, axis=1, kind="stable")[:, :M]
        mask = np.take_along_axis(batch.lane_valid, order, 1)
        point_idx = np.linspace(0, max(P - 1, 0), self.lane_points).round().astype(np.int64)
        pts = batch.lanes[:, :, point_idx]  # (S, L, lane_points, 2)
        pts = np.take_along_axis(pts, order[:, :, None, None], 1).reshape(S, order.shape[1], -1)
        take = lambda a: np.take_along_axis(a, order, 1).astype(np.float32)  # noqa: E731
        tl = np.take_along_axis(batch.lane_tl[:, :, t0], order, 1).astype(np.int64)
        tl_onehot = (tl[..., None] == np.asarray(TL_CODES)).astype(np.float32)
        on_route = (batch.lane_valid[:, :, None] & (np.arange(L)[None, :, None] == batch.route_lanes[:, None, :])).any(-1)
        feats = np.concatenate(
            [pts, take(batch.lane_width)[..., None], take(batch.lane_speed_limit)[..., None], tl_onehot,
             take(on_route)[..., None], take(batch.lane_is_intersection)[..., None]],
            axis=-1,
        )
        feats = np.where(mask[..., None], np.nan_to_num(feats), 0.0).astype(np.float32)
        return _pad_axis1(feats, M), _pad_axis1(mask, M)


def _ego_history(batch: SceneBatch) -> np.ndarray:
    """(S, (H+1) * 6) ego x, y, sin, cos, speed, accel from the first step to t0."""
    hist = batch.ego[:, : batch.current_index + 1]
    heading = hist[..., 2]
    feats = np.stack([hist[..., 0], hist[..., 1], np.sin(heading), np.cos(heading), hist[..., 3], hist[..., 4]], -1)
    return feats.reshape(len(batch), -1).astype(np.float32)


def _masked_stats(x: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel (last axis) mean and std over valid rows; std floored so constants stay finite."""
    flat = x.reshape(-1, x.shape[-1]).astype(np.float64)
    if mask is not None:
        flat = flat[mask.reshape(-1)]
    if len(flat) == 0:
        return np.zeros(x.shape[-1], np.float32), np.ones(x.shape[-1], np.float32)
    mean, std = flat.mean(0), flat.std(0)
    return mean.astype(np.float32), np.maximum(std, 1e-2).astype(np.float32)


def _pad_axis1(a: np.ndarray, size: int) -> np.ndarray:
    if a.shape[1] >= size:
        return a
    pad = [(0, 0), (0, size - a.shape[1])] + [(0, 0)] * (a.ndim - 2)
    return np.pad(a, pad)
