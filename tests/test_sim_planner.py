"""Rule planner (PDM-Closed-like) and baselines."""

import numpy as np
import pytest

from autoscale_core.scene import TL_RED
from autoscale_core.sim.planner import RulePlanner, constant_velocity, logged_expert
from autoscale_core.sim.scoring import ScorerConfig, score_trajectories
from autoscale_core.sim.toy import set_agent, straight_road


def test_baselines_shapes():
    batch = straight_road(3, ego_speed=7.0)
    cv = constant_velocity(batch)
    assert cv.shape == (3, 8, 3)
    np.testing.assert_allclose(cv[0, :, 0], 7.0 * np.arange(1, 9) * 0.5)
    np.testing.assert_allclose(logged_expert(batch), batch.expert_trajectory())


def test_rule_planner_stops_for_red_light_and_standing_car():
    red = straight_road(ego_speed=10.0, connector_tl=TL_RED, connector_start=30.0)
    car = straight_road(ego_speed=10.0, num_agents=1)
    set_agent(car, 0, 0, 35.0, 0.0, 0.0)
    free = straight_road(ego_speed=10.0, speed_limit=15.0)
    planner = RulePlanner()
    cfg = ScorerConfig(progress_reference="candidates")
    for batch in (red, car, free):
        plan = planner.plan(batch)
        assert plan.shape == (1, 8, 3)
        r = score_trajectories(batch, plan[:, None], config=cfg, human_filter=False)
        assert r.nc[0, 0] == 1 and r.tlc[0, 0] == 1 and r.dac[0, 0] == 1, batch
    assert planner.plan(red)[0, -1, 0] < 30.0 - 2.4  # front bumper before the stop line
    assert planner.plan(car)[0, -1, 0] < 35.0 - 4.8
    assert planner.plan(free)[0, -1, 0] > 42.0  # speeds up towards the 15 m/s limit
    proposals = planner.propose(free)
    assert proposals.shape == (1, 15, 8, 3)


def test_world_expert_and_rule_planner_beat_constant_velocity():
    world = pytest.importorskip("autoscale_core.world")
    batch = world.generate_world(16, seed=3)
    planner = RulePlanner()
    reference = planner.reference_progress(batch)
    scores = {}
    for name, plan in (("expert", logged_expert(batch)), ("rule", planner.plan(batch)), ("cv", constant_velocity(batch))):
        scores[name] = score_trajectories(batch, plan[:, None], reference_progress=reference).epdms.mean()
    assert scores["expert"] > 0.85 and scores["rule"] > 0.85, scores
    assert scores["cv"] < min(scores["expert"], scores["rule"]) - 0.1, scores
