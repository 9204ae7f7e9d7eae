"""The vectorized scorer gives the same scores as the per-trajectory shapely reference."""

import numpy as np
import pytest

from autoscale_core.scene import PEDESTRIAN, STATIC, TL_RED, TL_UNKNOWN
from autoscale_core.sim.reference import score_trajectories_reference
from autoscale_core.sim.scoring import ScorerConfig, score_trajectories
from autoscale_core.sim.toy import set_agent, straight_road


def mixed_scenes():
    """Three small scenes: traffic both ways + a static object, a red connector, a shoulder."""
    a = straight_road(1, ego_speed=10.0, num_agents=3, opposite_lane=True)
    set_agent(a, 0, 0, 25.0, 0.0, 0.0)
    set_agent(a, 0, 1, -12.0, 0.0, 12.0)
    set_agent(a, 0, 2, 30.0, -2.6, 0.0, agent_type=STATIC, size=(1.0, 1.0))
    b = straight_road(1, ego_speed=8.0, num_agents=3, opposite_lane=True, connector_tl=TL_RED, connector_start=25.0)
    set_agent(b, 0, 0, 15.0, 3.6, 10.0, np.pi)
    set_agent(b, 0, 1, 35.0, -4.0, 1.5, np.pi / 2, agent_type=PEDESTRIAN, size=(0.6, 0.6))
    b.lane_tl[0, 1, 8:] = TL_UNKNOWN  # the opposite lane's light becomes unknown
    c = straight_road(1, ego_speed=6.0, num_agents=3)
    set_agent(c, 0, 0, 20.0, 0.0, 4.0, accel=-1.0)
    poly = np.array([[-50, -1.0], [150, -1.0], [150, -5.0], [-50, -5.0]], np.float32)
    c = c.replace(drivable_polygons=poly[None, None], drivable_vertex_valid=np.ones((1, 1, 4), bool))
    from autoscale_core.scene import SceneBatch

    batch = SceneBatch.concatenate([a, b, c])
    batch.meta["scene_id"] = np.array(["a", "b", "c"], dtype=object)
    batch.validate()
    return batch


def random_plans(batch, num, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(1, 9) * 0.5
    S = len(batch)
    v0 = batch.ego[:, batch.history_steps, 3][:, None, None]
    accel = rng.uniform(-5, 3, (S, num, 1))
    speed = np.maximum(v0 + accel * t, 0.0)
    x = np.cumsum(speed * 0.5, -1)
    y = rng.uniform(-5, 5, (S, num, 1)) * np.clip(t / rng.uniform(1, 4, (S, num, 1)), 0, 1)
    heading = rng.uniform(-0.2, 0.2, (S, num, 1)) * t
    return np.stack([x, y, heading], -1)


@pytest.mark.parametrize("reactive", [False, True])
def test_vectorized_matches_reference(reactive):
    batch = mixed_scenes()
    plans = random_plans(batch, 10)
    prev = random_plans(batch, 10, seed=1)[:, 0]
    fast = score_trajectories(batch, plans, reactive=reactive, previous_plans=prev)
    slow = score_trajectories_reference(
        batch, plans, reactive=reactive, previous_plans=prev, reference_progress=fast.reference_progress
    )
    for key, value in fast.as_dict().items():
        np.testing.assert_allclose(value.astype(float), getattr(slow, key).astype(float), atol=1e-6, err_msg=key)
    # The scenes are not trivial: several metrics both pass and fail somewhere.
    for key in ("nc", "dac", "ddc", "lk", "hc"):
        assert 0 < fast.as_dict()[key].mean() < 1, key


def test_candidates_reference_mode_matches():
    batch = mixed_scenes()
    plans = random_plans(batch, 6, seed=2)
    cfg = ScorerConfig(progress_reference="candidates")
    fast = score_trajectories(batch, plans, config=cfg, human_filter=False)
    slow = score_trajectories_reference(batch, plans, config=cfg, human_filter=False)
    np.testing.assert_allclose(fast.epdms, slow.epdms, atol=1e-6)
    np.testing.assert_allclose(fast.reference_progress, slow.reference_progress, atol=1e-6)


def test_vectorized_matches_reference_on_world_scenes():
    world = pytest.importorskip("autoscale_core.world")
    from autoscale_core.sim.planner import constant_velocity, logged_expert

    batch = world.generate_world(6, seed=2)
    pick = [int(np.flatnonzero(batch.meta["topology"] == t)[0]) for t in np.unique(batch.meta["topology"])[:2]]
    batch = batch.subset(pick)
    plans = np.stack([constant_velocity(batch), logged_expert(batch)], axis=1)
    reference = np.full(len(batch), 30.0)
    fast = score_trajectories(batch, plans, reference_progress=reference, human_filter=False)
    slow = score_trajectories_reference(batch, plans, reference_progress=reference, human_filter=False)
    for key, value in fast.as_dict().items():
        np.testing.assert_allclose(value.astype(float), getattr(slow, key).astype(float), atol=1e-6, err_msg=key)
