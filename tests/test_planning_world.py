"""Learned planners on the embedded world, scored by the real EPDMS scorer: beat constant velocity."""

from __future__ import annotations

import numpy as np
import pytest

from autoscale_core.planning import evaluate_baselines, evaluate_planner, train_planner
from autoscale_core.world import generate_world


@pytest.fixture(scope="module")
def world_split():
    return generate_world(500, seed=21), generate_world(150, seed=22)


def test_regression_planner_beats_constant_velocity_on_world_test_split(world_split):
    train, test = world_split
    trained = train_planner(train, planner="regression", seed=0, steps=250, batch_size=64)
    learned = evaluate_planner(trained, test).aggregates()
    baselines = {k: v.aggregates() for k, v in evaluate_baselines(test, names=("constant_velocity",)).items()}
    cv = baselines["constant_velocity"]
    assert learned["epdms"] > cv["epdms"] + 0.02, (learned["epdms"], cv["epdms"])
    assert learned["l2_2s"] < cv["l2_2s"]
    assert np.isfinite(trained.embed(test.subset(np.arange(5)))).all()
