"""Simulation and evaluation: ego kinematics, reactive agents (IDM), EPDMS scoring, rule planner.

* :func:`kinematics.simulate_ego` — track (S, C, 8, 3) plans with an LQ speed controller, pure
  pursuit and a kinematic bicycle model at 10 Hz → (S, C, 41, 5) states.
* :func:`agents.simulate_agents` — log replay or reactive IDM agents.
* :func:`scoring.score_trajectories` → :class:`scoring.ScoreResult` (EPDMS and its sub-scores);
  :func:`scoring.precompute_reference_progress` → the per-scene EP denominator to store as
  ``batch.meta["ep_reference_m"]``. The scorer is split by concern (see :mod:`scoring`'s docstring):
  :mod:`scorer` (``score_plans``, pure, below the planner), kernels in :mod:`lanes`,
  :mod:`collisions`, :mod:`comfort`, :mod:`raw_metrics`, :mod:`aggregate`, and per-scene values
  in the bounded :data:`metric_cache.METRIC_CACHE`.
* :class:`planner.RulePlanner`, :func:`planner.constant_velocity`, :func:`planner.logged_expert`.
* :mod:`reference` — slow per-trajectory shapely scorer, the readable spec (needs ``shapely``,
  not imported here); :mod:`reference_navsim` — the fair NAVSIM-style reference (shapely 2
  polygons, STRtree occupancy per step, all proposals of a scene at once) the benchmark times.
* :mod:`two_stage` — two-stage evaluation (NAVSIM v2 pseudo-simulation) that scores extended
  comfort from a planner's consecutive plans.
* :mod:`toy` — tiny hand-built scenes for tests.

See ``docs/sim.md`` for the metric choices.
"""

from .agents import simulate_agents
from .kinematics import EgoModel, simulate_ego
from .planner import RulePlanner, constant_velocity, logged_expert
from .scoring import ScorerConfig, ScoreResult, precompute_reference_progress, score_trajectories

__all__ = [
    "simulate_ego",
    "EgoModel",
    "simulate_agents",
    "score_trajectories",
    "ScorerConfig",
    "ScoreResult",
    "precompute_reference_progress",
    "RulePlanner",
    "constant_velocity",
    "logged_expert",
]
