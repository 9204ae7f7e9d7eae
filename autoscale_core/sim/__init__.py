"""Simulation and evaluation: ego kinematics, reactive agents (IDM), EPDMS scoring, rule planner.

* :func:`kinematics.simulate_ego` — track (S, C, 8, 3) plans with a controller + kinematic
  bicycle model at 10 Hz → (S, C, 41, 5) states.
* :func:`agents.simulate_agents` — log replay or reactive IDM agents.
* :func:`scoring.score_trajectories` → :class:`scoring.ScoreResult` (EPDMS and its sub-scores).
* :class:`planner.RulePlanner`, :func:`planner.constant_velocity`, :func:`planner.logged_expert`.
* :mod:`reference` — slow per-trajectory shapely scorer for checks/benchmarks (needs ``shapely``,
  not imported here).
* :mod:`toy` — tiny hand-built scenes for tests.

See ``docs/sim.md`` for the metric choices.
"""

from .agents import simulate_agents
from .kinematics import EgoModel, simulate_ego
from .planner import RulePlanner, constant_velocity, logged_expert
from .scoring import ScoreResult, ScorerConfig, score_trajectories

__all__ = [
    "simulate_ego",
    "EgoModel",
    "simulate_agents",
    "score_trajectories",
    "ScorerConfig",
    "ScoreResult",
    "RulePlanner",
    "constant_velocity",
    "logged_expert",
]
