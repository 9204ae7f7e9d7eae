"""City profiles: the parameters that make one "city" of the embedded world differ from another."""

from __future__ import annotations

from dataclasses import dataclass, field

TOPOLOGIES = ("highway_merge", "rural_curve", "intersection", "urban_street", "roundabout")
EVENTS = ("cut_in", "hard_brake", "jaywalker", "stalled_vehicle")


@dataclass(frozen=True)
class CityProfile:
    """Parameters of one city. Units: m, m/s, s, m/s².

    ``topology_mix`` gives the share of each topology (normalized when sampling);
    ``event_rate`` is the per-scene probability of *each* rare event type (where the
    topology allows it). Driver aggressiveness is the IDM time headway / max acceleration and
    the lane-change politeness; ``left_hand`` mirrors the world (drive on the left).
    """

    name: str
    lane_width: float
    urban_speed: float
    rural_speed: float
    highway_speed: float
    density: float  # 0..1, scales how tightly traffic is packed
    time_headway: float
    max_accel: float
    politeness: float  # MOBIL politeness (0 = selfish)
    lane_change_safe_decel: float  # braking a lane change may impose on the new follower
    pedestrian_rate: float  # expected pedestrians per crosswalk / sidewalk
    cyclist_rate: float  # probability a cyclist rides in a lane
    green_time: float  # signal green phase (s)
    topology_mix: dict = field(default_factory=dict)
    left_hand: bool = False
    event_rate: float = 0.03


CITIES: dict[str, CityProfile] = {
    p.name: p
    for p in (
        CityProfile(
            name="boston-like", lane_width=3.2, urban_speed=11.2, rural_speed=17.9, highway_speed=24.6,
            density=0.9, time_headway=1.2, max_accel=1.9, politeness=0.1, lane_change_safe_decel=3.5,
            pedestrian_rate=1.2, cyclist_rate=0.35, green_time=14.0,
            topology_mix={"urban_street": 0.35, "intersection": 0.3, "roundabout": 0.15,
                          "highway_merge": 0.1, "rural_curve": 0.1},
        ),
        CityProfile(
            name="pittsburgh-like", lane_width=3.4, urban_speed=11.2, rural_speed=20.1, highway_speed=24.6,
            density=0.6, time_headway=1.6, max_accel=1.4, politeness=0.4, lane_change_safe_decel=2.5,
            pedestrian_rate=0.8, cyclist_rate=0.2, green_time=18.0,
            topology_mix={"rural_curve": 0.3, "intersection": 0.3, "urban_street": 0.2,
                          "highway_merge": 0.15, "roundabout": 0.05},
        ),
        CityProfile(
            name="vegas-like", lane_width=3.8, urban_speed=15.6, rural_speed=24.6, highway_speed=29.1,
            density=0.7, time_headway=1.4, max_accel=2.2, politeness=0.2, lane_change_safe_decel=3.0,
            pedestrian_rate=0.6, cyclist_rate=0.1, green_time=22.0,
            topology_mix={"highway_merge": 0.35, "intersection": 0.35, "urban_street": 0.15,
                          "rural_curve": 0.1, "roundabout": 0.05},
        ),
        CityProfile(
            name="singapore-like", lane_width=3.5, urban_speed=13.9, rural_speed=19.4, highway_speed=25.0,
            density=0.8, time_headway=1.3, max_accel=1.6, politeness=0.5, lane_change_safe_decel=2.5,
            pedestrian_rate=1.0, cyclist_rate=0.15, green_time=16.0, left_hand=True,
            topology_mix={"intersection": 0.35, "urban_street": 0.3, "highway_merge": 0.2,
                          "roundabout": 0.1, "rural_curve": 0.05},
        ),
    )
}
