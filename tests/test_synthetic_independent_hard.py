"""The independent hard split: its own perturbation family, the logged expert, and no parent
scene shared with the synthetic training data."""

from pathlib import Path

import numpy as np
import pytest

from autoscale_core.scene import to_world_frame
from autoscale_core.synthetic import generate_synthetic
from autoscale_core.synthetic.independent_hard import (
    HARD_KINDS,
    build_independent_hard_split,
    check_independent,
    perturb_independent,
    shared_parents,
    training_parent_ids,
)
from autoscale_core.world import generate_world

AV2_FORECASTING = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "av2" / "forecasting"


@pytest.fixture(scope="module")
def world_train():
    return generate_world(12, seed=0)


@pytest.fixture(scope="module")
def av2_scenes():
    if not AV2_FORECASTING.is_dir():
        pytest.skip("no AV2 data at ../shared/data/av2")
    from autoscale_core.io import import_av2

    return import_av2(AV2_FORECASTING)[0]


def test_no_parent_shared_between_synthetic_training_data_and_hard_split(world_train, av2_scenes):
    train, held_out = world_train.subset(np.arange(8)), world_train.subset(np.arange(8, 12))
    synthetic, _ = generate_synthetic(train, scenes_per_parent=1, expert="recovery", seed=0, score_labels=False)
    training = training_parent_ids(train, parent_ids=synthetic.meta["parent_id"])
    sources = {"held_out": held_out, "world:90001": generate_world(16, seed=90_001), "av2": av2_scenes}
    split = build_independent_hard_split(sources, seed=0, rare_sources=["world:90001"], training_ids=training)
    assert shared_parents(split, training) == set()
    assert set(synthetic.meta["parent_id"]).isdisjoint(split.parent_ids)
    assert set(split.scenes.meta["hard_source"]) >= {"held_out", "world:90001", "av2"}  # (a), (b), (c)
    assert set(split.scenes.meta["split"]) == {"hard"}
    assert "rare_event" in set(split.scenes.meta["hard_kind"])
    split.scenes.validate(check_ego_on_lane=False)
    # A training scene offered as a source is dropped, never perturbed into the hard split.
    with pytest.raises(ValueError, match="empty"):
        build_independent_hard_split({"leaky": train.subset([0, 1])}, seed=0, training_ids=training)
    # And the check itself names shared parents.
    with pytest.raises(ValueError, match="shared parent"):
        check_independent(split, training | {sorted(split.parent_ids)[0]})


def test_independent_family_keeps_the_logged_expert(world_train):
    scenes, report = perturb_independent(world_train, seed=1, reactive=False)
    assert report["perturbed"] == len(scenes) > 0
    assert set(scenes.meta["hard_kind"]) <= set(HARD_KINDS) and len(set(scenes.meta["hard_kind"])) >= 3
    assert set(scenes.meta["expert"]) == {"logged"}  # never the recovery labeller
    t0 = scenes.history_steps
    parent = world_train.subset([list(world_train.scene_ids).index(p) for p in scenes.meta["parent_id"]])
    # The ego future is the parent's recorded future, unchanged in world coordinates.
    for i in range(len(scenes)):
        ours = to_world_frame(scenes.ego[i, t0 + 1 :, :2], scenes.global_pose[i])
        theirs = to_world_frame(parent.ego[i, t0 + 1 :, :2], parent.global_pose[i])
        np.testing.assert_allclose(ours, theirs, atol=2e-3)
    # Each start is re-centred at the origin; stopped starts stand still.
    np.testing.assert_allclose(scenes.ego[:, t0, :3], 0.0, atol=1e-4)
    stopped = scenes.meta["hard_kind"] == "stopped"
    assert (scenes.ego[stopped, : t0 + 1, 3] == 0).all()
    # Different from training's family: heading / longitudinal starts move along or yaw, not sideways.
    heading = scenes.meta["hard_kind"] == "heading"
    assert (np.abs(scenes.meta["perturb_heading"][heading]) >= 0.15 - 1e-6).all()


def test_reproducible(world_train):
    a, _ = perturb_independent(world_train, seed=3, reactive=False)
    b, _ = perturb_independent(world_train, seed=3, reactive=False)
    assert list(a.scene_ids) == list(b.scene_ids) and np.array_equal(a.ego, b.ego)
