"""Rule planner (PDM-Closed-like) and simple baselines, all returning (S, F, 3) plans.

:class:`RulePlanner` builds proposals that follow the route centerline at a few lateral offsets
with IDM speed profiles for a few target speeds (fractions of the speed limit); leaders are the
log-replayed agents near the proposal's path and red lights on route lanes (a standing obstacle at
the lane entry). Every proposal is simulated and scored with the EPDMS scorer (progress normalised
by the best compliant proposal, no human filter) and the best one is returned. It is both a strong
privileged baseline and the pseudo-expert for synthetic scenes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from ..geometry import polyline_arclength, project_on_polyline
from ..scene import TL_RED, SceneBatch
from .agents import interpolate_log
from .config import ScorerConfig, ScoreResult
from .idm import IDMParams, idm_acceleration
from .scorer import score_plans


def _project(route: np.ndarray, valid: np.ndarray, points: np.ndarray):
    """Project (S, M, 2) points on (S, Q, 2) routes → arc length (S, M), signed lateral (S, M)."""
    return project_on_polyline(points, route[:, None], valid[:, None])


def _route_pose(route: np.ndarray, cum: np.ndarray, s: np.ndarray):
    """Position (S, M, 2) and heading (S, M) at arc lengths s (S, M), extrapolated at the end."""
    Q = route.shape[1]
    idx = np.clip((cum[:, None, :] <= s[..., None]).sum(-1) - 1, 0, Q - 2)
    take2 = lambda i: np.take_along_axis(route, i[..., None].repeat(2, -1), 1)  # noqa: E731
    a, b = take2(idx), take2(idx + 1)
    sa, sb = np.take_along_axis(cum, idx, 1), np.take_along_axis(cum, idx + 1, 1)
    # Padding past the valid prefix has zero length: step back to the last real segment.
    d = b - a
    frac = (s - sa) / np.maximum(sb - sa, 1e-9)
    frac = np.where(sb - sa > 1e-9, np.maximum(frac, 0.0), 0.0)
    heading = np.arctan2(d[..., 1], d[..., 0])
    return a + d * frac[..., None], heading


def _upsample(x: np.ndarray, step: int, num: int) -> np.ndarray:
    """Linear interpolation of (..., M) samples spaced ``step`` apart to ``num`` entries."""
    k = np.arange(num)
    i0 = np.minimum(k // step, x.shape[-1] - 1)
    i1 = np.minimum(i0 + 1, x.shape[-1] - 1)
    w = (k - i0 * step) / step
    return x[..., i0] * (1 - w) + x[..., i1] * w


@dataclass
class RulePlanner:
    """PDM-Closed-like planner: IDM speed profiles × lateral offsets along the route, scored."""

    speed_fractions: tuple[float, ...] = (0.2, 0.4, 0.6, 0.8, 1.0)
    lateral_offsets: tuple[float, ...] = (0.0, -1.0, 1.0)
    idm: IDMParams = IDMParams()
    config: ScorerConfig = field(default_factory=lambda: ScorerConfig(progress_reference="candidates"))
    default_speed_limit: float = 13.9  # m/s, used when the route lane has none
    lateral_margin: float = 0.5
    blend_time: float = 2.0  # s to converge from the current lateral offset to the proposal's
    chunk_scenes: int = 256

    # ------------------------------------------------------------------ proposals
    def propose(self, batch: SceneBatch) -> np.ndarray:
        """(S, P, F, 3) proposals, P = len(lateral_offsets) × len(speed_fractions)."""
        parts = [self._propose(batch.subset(slice(i, i + self.chunk_scenes))) for i in range(0, len(batch), self.chunk_scenes)]
        return np.concatenate(parts, 0)

    def _propose(self, batch: SceneBatch) -> np.ndarray:
        S = len(batch)
        F, dt_sim = self.config.num_poses, self.config.dt_sim
        K = int(round(F * batch.dt / dt_sim))
        route = batch.route_polyline.astype(np.float64)
        cum = polyline_arclength(route, batch.route_valid)
        ego0 = batch.ego[:, batch.history_steps].astype(np.float64)
        s0, d0 = _project(route, batch.route_valid, ego0[:, None, :2])
        s0, d0 = s0[:, 0], d0[:, 0]
        first_lane = np.maximum(batch.route_lanes[:, 0], 0)
        limit = batch.lane_speed_limit[np.arange(S), first_lane].astype(np.float64)
        limit = np.where(limit > 0, limit, self.default_speed_limit)
        offsets = np.asarray(self.lateral_offsets)
        fractions = np.asarray(self.speed_fractions)
        O, V = len(offsets), len(fractions)
        desired = limit[:, None, None] * fractions[None, None, :]  # (S, 1, V)
        ego_len = batch.ego_size[:, 0].astype(np.float64)
        ego_wid = batch.ego_size[:, 1].astype(np.float64)

        # Agents (log replay) in route coordinates.
        log, valid = interpolate_log(batch, K, dt_sim)  # (S, N, K+1, 4)
        N = log.shape[1]
        if N:
            # Project the log's own samples (every batch.dt) and interpolate in time: 5× cheaper.
            step = int(round(batch.dt / dt_sim))
            coarse = log[:, :, ::step, :2]
            sa, da = _project(route, batch.route_valid, coarse.reshape(S, -1, 2))
            sa, da = (_upsample(x.reshape(S, N, -1), step, K + 1) for x in (sa, da))
            a_len = batch.agent_size[..., 0].astype(np.float64)[..., None]
            a_wid = batch.agent_size[..., 1].astype(np.float64)[..., None]
            # (S, O, N, K+1): agent overlaps the proposal's lateral corridor.
            in_path = valid[:, None] & (
                np.abs(da[:, None] - offsets[None, :, None, None])
                < 0.5 * (a_wid[:, None] + ego_wid[:, None, None, None]) + self.lateral_margin
            )
        # Red lights on route lanes: stop at the lane entry (its first point's arc length).
        rl = np.maximum(batch.route_lanes, 0)
        entry = batch.lanes[np.arange(S)[:, None], rl, 0].astype(np.float64)  # (S, R, 2)
        s_entry, _ = _project(route, batch.route_valid, entry)
        tl_index = np.minimum(batch.history_steps + np.floor(np.arange(K + 1) * dt_sim / batch.dt + 1e-9).astype(int), batch.num_steps - 1)
        red = (batch.lane_tl[np.arange(S)[:, None], rl][:, :, tl_index] == TL_RED) & (batch.route_lanes >= 0)[..., None]
        red &= (s_entry > s0[:, None] + 0.5 * ego_len[:, None])[..., None]  # not already past it

        s = np.broadcast_to(s0[:, None, None], (S, O, V)).copy()
        v = np.broadcast_to(ego0[:, 3, None, None], (S, O, V)).copy()
        s_hist = np.zeros((S, O, V, K + 1))
        s_hist[..., 0] = s
        for k in range(K):
            gap = np.full((S, O, V), np.inf)
            lead_v = np.zeros((S, O, V))
            if N:
                ahead = sa[:, None, :, k, None] - s[:, :, None, :]  # (S, O, N, V)
                g = ahead - 0.5 * (a_len[:, None] + ego_len[:, None, None, None])
                ok = in_path[..., k, None] & (ahead > 0)
                g = np.where(ok, g, np.inf)
                j = g.argmin(2)[:, :, None]
                gap = np.take_along_axis(g, j, 2)[:, :, 0]
                lead_v = np.take_along_axis(np.broadcast_to(log[:, None, :, k, 3, None], g.shape), j, 2)[:, :, 0]
            # Standing obstacle at the entry of every red route lane ahead: (S, R, O, V) → min.
            stop = np.where(
                red[:, :, k, None, None], s_entry[:, :, None, None] - s[:, None] - 0.5 * ego_len[:, None, None, None], np.inf
            ).min(1)
            use_stop = stop < gap
            gap = np.where(use_stop, stop, gap)
            lead_v = np.where(use_stop, 0.0, lead_v)
            acc = idm_acceleration(v, desired, gap, v - lead_v, self.idm)
            v = np.maximum(v + acc * dt_sim, 0.0)
            s = s + v * dt_sim
            s_hist[..., k + 1] = s
        step = int(round(batch.dt / dt_sim))
        s_pose = s_hist[..., step::step][..., :F]  # (S, O, V, F)
        t = np.arange(1, F + 1) * batch.dt
        blend = np.clip(t / self.blend_time, 0.0, 1.0)
        blend = blend * blend * (3 - 2 * blend)  # smoothstep: no lateral jerk at the ends
        lat = offsets[None, :, None, None] + (d0[:, None, None, None] - offsets[None, :, None, None]) * (1 - blend)
        pos, heading = _route_pose(route, cum, s_pose.reshape(S, -1))
        pos, heading = pos.reshape(S, O, V, F, 2), heading.reshape(S, O, V, F)
        normal = np.stack([-np.sin(heading), np.cos(heading)], -1)
        xy = pos + normal * np.broadcast_to(lat, (S, O, V, F))[..., None]
        plans = np.concatenate([xy, heading[..., None]], -1)
        return plans.reshape(S, O * V, F, 3)

    # ------------------------------------------------------------------ scoring / selection
    def score_proposals(self, batch: SceneBatch, proposals: np.ndarray | None = None) -> tuple[np.ndarray, ScoreResult]:
        """Proposals (S, P, F, 3) and their scores (progress normalised by the best compliant one)."""
        proposals = self.propose(batch) if proposals is None else proposals
        cfg = replace(self.config, progress_reference="candidates")
        return proposals, score_plans(batch, proposals, config=cfg, human_filter=False)

    def plan(self, batch: SceneBatch) -> np.ndarray:
        """(S, F, 3) best proposal per scene."""
        proposals, result = self.score_proposals(batch)
        best = result.epdms.argmax(-1)
        return proposals[np.arange(len(batch)), best]

    def reference_progress(self, batch: SceneBatch) -> np.ndarray:
        """(S,) best progress (m) among compliant proposals: the EP denominator."""
        return self.score_proposals(batch)[1].reference_progress


def constant_velocity(batch: SceneBatch, num_poses: int | None = None) -> np.ndarray:
    """(S, F, 3): keep the t0 speed and heading."""
    F = batch.future_steps if num_poses is None else num_poses
    ego = batch.ego[:, batch.history_steps].astype(np.float64)
    t = np.arange(1, F + 1) * batch.dt
    dist = ego[:, 3, None] * t[None]
    c, s = np.cos(ego[:, 2]), np.sin(ego[:, 2])
    return np.stack(
        [ego[:, 0, None] + dist * c[:, None], ego[:, 1, None] + dist * s[:, None], np.repeat(ego[:, 2, None], F, 1)], -1
    )


def logged_expert(batch: SceneBatch, num_poses: int | None = None) -> np.ndarray:
    """(S, F, 3): the logged future poses."""
    traj = batch.expert_trajectory().astype(np.float64)
    return traj if num_poses is None else traj[:, :num_poses]
