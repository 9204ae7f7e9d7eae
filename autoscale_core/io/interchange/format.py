"""The AutoScale scene interchange format: a folder of Parquet tables (see docs/interchange.md).

One table per element, long format, every row keyed by ``scene_id``; coordinates in each scene's
frame (origin = ego box centre at t0, +x = ego heading), metres, radians, m/s. A team brings
logs from any source (nuPlan/NAVSIM, Waymo, in-house) by writing these tables; everything else
in AutoScale then works on them.

==================  ==============================================================================
table               columns (``*`` = optional on import)
==================  ==============================================================================
scenes              scene_id, source, city, topology*, maneuver*, events*, log_id*, parent_id*,
                    t0*, ego_length, ego_width, origin_x, origin_y, origin_yaw, + any metadata
ego_states          scene_id, step, x, y, heading, speed, accel
agents              scene_id, agent_index, type (vehicle/pedestrian/cyclist/static/other),
                    length, width
agent_states        scene_id, agent_index, step, x, y, heading, speed, valid*
lanes               scene_id, lane_index, xs, ys (list<float32>, travel direction), width,
                    speed_limit*, is_intersection*, successors* (list<int16>), left_neighbor*,
                    right_neighbor*, tl* (list<int8> per step, TL_* codes)
drivable_polygons   scene_id, polygon_index, xs, ys
crosswalks          scene_id, crosswalk_index, xs, ys (4 corners each)
routes              scene_id, lane_indices (list<int16>), xs, ys (route polyline)
==================  ==============================================================================

``scenes.parquet`` carries the timeline in its schema metadata under key ``autoscale``:
``{"format": "autoscale-scenes", "version": 1, "dt": .., "history_steps": .., "num_steps": ..,
"dims": {...}}`` (``dims``, optional, restores the exact padded shapes of an export).
"""

from __future__ import annotations

FORMAT = "autoscale-scenes"
VERSION = 1
TABLES = ("scenes", "ego_states", "agents", "agent_states", "lanes", "drivable_polygons", "crosswalks", "routes")
REQUIRED = {
    "scenes": ("scene_id", "source", "city", "ego_length", "ego_width", "origin_x", "origin_y", "origin_yaw"),
    "ego_states": ("scene_id", "step", "x", "y", "heading", "speed", "accel"),
    "agents": ("scene_id", "agent_index", "type", "length", "width"),
    "agent_states": ("scene_id", "agent_index", "step", "x", "y", "heading", "speed"),
    "lanes": ("scene_id", "lane_index", "xs", "ys", "width"),
    "drivable_polygons": ("scene_id", "polygon_index", "xs", "ys"),
    "crosswalks": ("scene_id", "crosswalk_index", "xs", "ys"),
    "routes": ("scene_id", "lane_indices", "xs", "ys"),
}
SCENE_COLUMNS = ("ego_length", "ego_width", "origin_x", "origin_y", "origin_yaw")
DEFAULT_SPEED_LIMIT = 13.9  # m/s, used when a lanes table has no speed_limit column


class InterchangeError(ValueError):
    """An interchange folder is missing, malformed or inconsistent; the message names the file."""
