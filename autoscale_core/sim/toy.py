"""Tiny hand-built scenes for tests and examples (a straight road, optional agents/lights)."""

from __future__ import annotations

import numpy as np

from ..scene import VEHICLE, SceneBatch, empty_batch


def straight_road(
    num_scenes: int = 1,
    *,
    ego_speed: float = 10.0,
    lane_width: float = 3.6,
    length: float = 200.0,
    opposite_lane: bool = False,
    connector_tl: int | None = None,
    connector_start: float = 40.0,
    num_agents: int = 0,
    speed_limit: float = 15.0,
) -> SceneBatch:
    """S copies of a straight road along +x from x = -50 to ``length`` - 50.

    Lane 0 is the ego lane, optionally lane 1 is an opposite-direction lane to its left, and with
    ``connector_tl`` the ego lane is split at ``connector_start``: lane 0 ends there and a
    successor lane (an intersection connector) whose entry is controlled by that light continues.
    The logged ego drives at ``ego_speed`` along the lane centre (constant velocity). Agents rows
    are padding for the caller to fill (see :func:`set_agent`).
    """
    num_lanes = 1 + int(opposite_lane) + int(connector_tl is not None)
    batch = empty_batch(num_scenes, num_agents=num_agents, num_lanes=num_lanes, route_points=int(length // 2) + 1)
    x0, x1 = -50.0, length - 50.0
    times = batch.times
    ego = np.zeros((batch.num_steps, 5), np.float32)
    ego[:, 0] = ego_speed * times
    ego[:, 3] = ego_speed
    batch.ego[:] = ego
    batch.ego_size[:] = (4.8, 2.0)
    P = batch.lanes.shape[2]
    ego_end = connector_start if connector_tl is not None else x1
    batch.lanes[:, 0, :, 0] = np.linspace(x0, ego_end, P)
    lanes = [0]
    if opposite_lane:
        batch.lanes[:, 1, :, 0] = np.linspace(x1, x0, P)
        batch.lanes[:, 1, :, 1] = lane_width
        lanes.append(1)
    if connector_tl is not None:
        c = num_lanes - 1
        batch.lanes[:, c, :, 0] = np.linspace(connector_start, x1, P)
        batch.lane_is_intersection[:, c] = True
        batch.lane_tl[:, c, :] = connector_tl
        batch.lane_successors[:, 0, 0] = c
        lanes.append(c)
    batch.lane_valid[:, lanes] = True
    batch.lane_width[:, lanes] = lane_width
    batch.lane_speed_limit[:, lanes] = speed_limit
    batch.route_lanes[:, 0] = 0
    if connector_tl is not None:
        batch.route_lanes[:, 1] = num_lanes - 1
    Q = batch.route_polyline.shape[1]
    batch.route_polyline[:, :, 0] = np.linspace(x0, x1, Q)
    batch.route_valid[:] = True
    batch.meta["scene_id"] = np.array([f"toy-{i}" for i in range(num_scenes)], dtype=object)
    batch.meta["source"][:] = "toy"
    batch.meta["city"][:] = "toy"
    batch.meta["topology"][:] = "straight"
    return batch


def set_agent(
    batch: SceneBatch,
    scene: int,
    index: int,
    x0: float,
    y0: float,
    speed: float,
    heading: float = 0.0,
    *,
    agent_type: int = VEHICLE,
    size: tuple[float, float] = (4.8, 2.0),
    accel: float = 0.0,
) -> None:
    """Fill agent ``index`` of ``scene`` with a constant-heading, constant-accel log (in place)."""
    t = batch.times
    v = np.maximum(speed + accel * t, 0.0)
    # Distance travelled with speed clipped at zero (stopping agents stay stopped).
    dist = np.where(speed + accel * t >= 0, speed * t + 0.5 * accel * t**2, -(speed**2) / (2 * accel) if accel else 0.0)
    batch.agents[scene, index, :, 0] = x0 + dist * np.cos(heading)
    batch.agents[scene, index, :, 1] = y0 + dist * np.sin(heading)
    batch.agents[scene, index, :, 2] = heading
    batch.agents[scene, index, :, 3] = v
    batch.agent_valid[scene, index] = True
    batch.agent_size[scene, index] = size
    batch.agent_type[scene, index] = agent_type


def constant_speed_plan(batch: SceneBatch, speed: float, lateral: float = 0.0) -> np.ndarray:
    """(S, 1, F, 3) straight plan along +x at ``speed`` with a constant lateral offset."""
    F = batch.future_steps
    t = np.arange(1, F + 1) * batch.dt
    plan = np.zeros((len(batch), 1, F, 3))
    plan[..., 0] = speed * t
    plan[..., 1] = lateral
    return plan


__all__ = ["straight_road", "set_agent", "constant_speed_plan"]
