"""The vectorized scorer equals the NAVSIM-style reference (shapely 2 + STRtree occupancy maps)."""

import numpy as np
import pytest
from test_sim_reference import mixed_scenes, random_plans

from autoscale_core.sim.reference_navsim import score_trajectories_navsim_style
from autoscale_core.sim.scoring import ScorerConfig, score_trajectories

SUB_METRICS = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec", "epdms", "pdms", "progress", "collision", "tl_unknown")


def assert_same(fast, slow):
    for key in SUB_METRICS:
        np.testing.assert_allclose(getattr(fast, key).astype(float), getattr(slow, key).astype(float), atol=1e-6, err_msg=key)


@pytest.mark.parametrize("reactive", [False, True])
def test_navsim_style_matches_vectorized_on_hand_made_scenes(reactive):
    batch = mixed_scenes()
    plans = random_plans(batch, 12)
    prev = random_plans(batch, 12, seed=1)[:, 0]
    fast = score_trajectories(batch, plans, reactive=reactive, previous_plans=prev)
    slow = score_trajectories_navsim_style(
        batch, plans, reactive=reactive, previous_plans=prev, reference_progress=fast.reference_progress
    )
    assert_same(fast, slow)
    for key in ("nc", "dac", "ddc", "lk", "hc", "ttc"):
        assert 0 < getattr(fast, key).mean() < 1, key  # every metric both passes and fails somewhere


def test_navsim_style_candidates_mode():
    batch = mixed_scenes()
    plans = random_plans(batch, 6, seed=2)
    cfg = ScorerConfig(progress_reference="candidates")
    fast = score_trajectories(batch, plans, config=cfg, human_filter=False)
    slow = score_trajectories_navsim_style(batch, plans, config=cfg, human_filter=False)
    assert_same(fast, slow)


def test_navsim_style_matches_vectorized_on_world_scenes():
    """A sample of the benchmark's workload (the benchmark checks >= 200 scenes x 16)."""
    from autoscale_core.world import generate_world
    from benchmarks.bench_sim_scoring import perturbed_plans

    batch = generate_world(12, seed=7)
    plans = perturbed_plans(batch, 8, seed=3)
    reference = np.full(len(batch), 30.0)
    fast = score_trajectories(batch, plans, reference_progress=reference)
    slow = score_trajectories_navsim_style(batch, plans, reference_progress=reference)
    assert_same(fast, slow)
    assert fast.epdms.std() > 0
