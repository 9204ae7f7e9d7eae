"""Two-stage evaluation: extended comfort (EC) compares a planner's consecutive plans."""

import numpy as np
import pytest

from autoscale_core.planning.evaluate import evaluate_trajectories
from autoscale_core.sim.toy import straight_road
from autoscale_core.sim.two_stage import STAGE2_OFFSETS, advance_scenes, stage2_starts, two_stage_comfort


def cruise(speed: float, brake: float = 0.0) -> np.ndarray:
    """(8, 3) plan along +x from the origin: ``speed`` m/s, braking ``brake`` m/s² (stops at 0)."""
    t = np.arange(1, 9) * 0.5
    v = np.maximum(speed - brake * t, 0.0)
    x = np.cumsum(v * 0.5) if brake else speed * t
    return np.stack([x, np.zeros(8), np.zeros(8)], -1)


def planner_braking_in(stage2_scenes: set[int]):
    """Cruises at 10 m/s at t0; from the stage-2 starts of the listed scenes it brakes at 4 m/s²."""

    def plan(batch):
        out = []
        for sid in batch.scene_ids:
            original = int(str(sid).split("@")[0].removeprefix("s"))
            later = "@+" in str(sid)
            out.append(cruise(10.0, 4.0 if later and original in stage2_scenes else 0.0))
        return np.stack(out)

    return plan


def toy_scenes(num: int):
    batch = straight_road(num, ego_speed=10.0)
    batch.meta["scene_id"] = np.array([f"s{i}" for i in range(num)], dtype=object)
    return batch


def test_hand_made_consecutive_plans():
    batch = toy_scenes(2)
    result = two_stage_comfort(batch, planner_braking_in({1}))
    # Scene 0: the same cruise plan one step later is perfectly consistent.
    assert result.ec[0] == 1.0 and (result.ec_per_start[0] == 1.0).all()
    # Scene 1: cruising at t0, then braking at 4 m/s² from every stage-2 start: EC fails.
    assert result.ec[1] == 0.0 and (result.ec_per_start[1] == 0.0).all()
    np.testing.assert_allclose(result.weights.sum(1), 1.0)
    # The stage-1 plan reaches x = 5 m at t0 + 0.5 s, exactly the logged start: it weighs most.
    assert result.distance[0, 0] == pytest.approx(0.0, abs=1e-6)
    assert result.weights[0].argmax() == 0
    np.testing.assert_allclose(result.weights[0], np.exp(-result.distance[0]) / np.exp(-result.distance[0]).sum())


def test_ec_weighted_by_proximity_to_the_stage1_endpoint():
    batch = toy_scenes(1)
    # A stage-1 plan 1 m ahead of the logged one at t0 + 0.5 s: the "+1 m" start weighs most.
    stage1 = cruise(12.0)[None]
    brakes_only_from_behind = lambda b: np.stack(  # noqa: E731
        [cruise(10.0, 4.0 if "~2" in str(s) else 0.0) for s in b.scene_ids]
    )
    result = two_stage_comfort(batch, brakes_only_from_behind, stage1)
    assert STAGE2_OFFSETS[1] == (1.0, 0.0) and STAGE2_OFFSETS[2] == (-1.0, 0.0)
    assert result.weights[0].argmax() == 1
    assert result.ec_per_start[0].tolist() == [1.0, 1.0, 0.0, 1.0, 1.0]
    assert 0.0 < result.ec[0] < 1.0
    assert result.ec[0] == pytest.approx(1.0 - result.weights[0, 2])


def test_advance_and_starts():
    batch = toy_scenes(1)
    later = advance_scenes(batch, 1)
    t0 = batch.history_steps
    np.testing.assert_allclose(later.ego[0, t0, :2], batch.ego[0, t0 + 1, :2])
    np.testing.assert_allclose(later.ego[0, -1, 0], batch.ego[0, -1, 0] + 5.0, atol=1e-4)  # extrapolated
    assert later.scene_ids[0] == "s0@+0.5s"
    scenes2, starts = stage2_starts(batch)
    assert len(scenes2) == len(STAGE2_OFFSETS)
    np.testing.assert_allclose(starts[0, :, 0], 5.0 + np.array([o[0] for o in STAGE2_OFFSETS]), atol=1e-5)
    np.testing.assert_allclose(scenes2.ego[:, t0, :3], 0.0, atol=1e-5)  # each re-centred on its start
    with pytest.raises(ValueError, match="steps"):
        advance_scenes(batch, 0)


def test_evaluation_reports_varying_ec_and_moves_epdms():
    batch = toy_scenes(4)
    planner = planner_braking_in({1, 3})
    plans = planner(batch)
    plain = evaluate_trajectories(batch, plans, name="p")
    two = evaluate_trajectories(batch, plans, name="p", planner=planner)
    assert (plain.scores["ec"] == 1.0).all()
    assert two.scores["ec"].tolist() == [1.0, 0.0, 1.0, 0.0]  # varies across scenes
    assert two.aggregates()["ec"] == pytest.approx(0.5)
    lost = plain.scores["epdms"] - two.scores["epdms"]
    np.testing.assert_allclose(lost, [0.0, 2.0 / 16, 0.0, 2.0 / 16], atol=1e-6)
    assert two.extra["two_stage"]["ec_mean"] == pytest.approx(0.5)
