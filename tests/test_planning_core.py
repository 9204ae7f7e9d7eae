"""Planner features, models, training, checkpoints and evaluation on small hand-built roads.

Real torch training (tiny sizes) and the real EPDMS scorer; no mocks.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autoscale_core.planning import (
    SceneFeaturizer,
    build_vocabulary,
    evaluate_planner,
    evaluate_trajectories,
    load_planner,
    parametric_vocabulary,
    train_planner,
)
from autoscale_core.planning.train import check_weights, choose_candidates
from autoscale_core.scene import VEHICLE, SceneBatch, empty_batch

FAST = dict(steps=40, batch_size=32, eval_every=20)


def road_scenes(n: int, seed: int = 0, lane_points: int = 20) -> SceneBatch:
    """Curved 3-lane roads; the logged ego keeps its speed, or brakes for a stopped lead vehicle."""
    rng = np.random.default_rng(seed)
    b = empty_batch(n, num_agents=4, num_lanes=3, lane_points=lane_points, route_points=76)
    kappa = rng.uniform(-0.02, 0.02, n)
    kappa = np.where(np.abs(kappa) < 1e-4, 1e-4, kappa)[:, None]

    def arc(s, offset):
        x = np.sin(kappa * s) / kappa - offset * np.sin(kappa * s)
        y = (1 - np.cos(kappa * s)) / kappa + offset * np.cos(kappa * s)
        return np.stack([x, y], -1), kappa * s

    for lane, offset in enumerate((0.0, 3.6, -3.6)):
        b.lanes[:, lane] = arc(np.linspace(-30, 120, lane_points)[None].repeat(n, 0), offset)[0]
    b.lane_valid[:], b.lane_width[:], b.lane_speed_limit[:] = True, 3.6, 15.0
    b.lane_neighbors[:, 0] = (1, 2)
    speed0 = rng.uniform(2, 15, n)[:, None]
    lead = rng.random(n) < 0.5
    gap = rng.uniform(10, 40, n)[:, None]
    t = b.times[None]
    decel = np.where(lead[:, None], np.minimum(speed0**2 / (2 * np.maximum(gap - 6, 1)), 6.0), 0.0)
    tc = np.minimum(np.clip(t, 0, None), np.where(decel > 0, speed0 / np.maximum(decel, 1e-6), np.inf))
    s = np.where(t < 0, speed0 * t, speed0 * tc - 0.5 * decel * tc**2)
    pos, heading = arc(s, 0.0)
    b.ego[..., :2], b.ego[..., 2] = pos, heading
    b.ego[..., 3] = np.where(t < 0, speed0, np.maximum(speed0 - decel * np.clip(t, 0, None), 0))
    b.ego[..., 4] = np.where((t >= 0) & (b.ego[..., 3] > 0), -decel, 0.0)
    b.ego_size[:] = (4.8, 2.0)
    pos, heading = arc(np.where(lead[:, None], gap, 200.0).repeat(b.num_steps, 1), 0.0)
    b.agents[:, 0, :, :2], b.agents[:, 0, :, 2] = pos, heading
    b.agent_valid[:, 0] = lead[:, None]
    for a, offset in ((1, 3.6), (2, -3.6)):
        v = rng.uniform(3, 15, n)[:, None]
        pos, heading = arc(rng.uniform(-20, 40, n)[:, None] + v * t, offset)
        b.agents[:, a, :, :2], b.agents[:, a, :, 2], b.agents[:, a, :, 3] = pos, heading, v
        b.agent_valid[:, a] = True
    b.agent_type[:, :3], b.agent_size[:, :3] = VEHICLE, (4.5, 1.9)
    b.route_lanes[:, 0] = 0
    b.route_polyline[:] = arc(np.linspace(-20, 130, 76)[None].repeat(n, 0), 0.0)[0]
    b.route_valid[:] = True
    b.meta["scene_id"] = np.array([f"road-{seed}-{i}" for i in range(n)], dtype=object)
    b.meta["source"] = np.full(n, "world", dtype=object)
    b.meta["city"] = np.full(n, "toy", dtype=object)
    return b


@pytest.fixture(scope="module")
def scenes() -> SceneBatch:
    batch = road_scenes(160, seed=0)
    batch.validate()
    return batch


@pytest.fixture(scope="module")
def regression(scenes):
    return train_planner(scenes, planner="regression", seed=0, steps=150, batch_size=64, eval_every=50)


# ---------------------------------------------------------------------- features
def test_features_shapes_padding_and_order(scenes):
    fz = SceneFeaturizer(num_agents=6, num_lanes=5)
    f = fz.fit_transform(scenes)
    assert f.ego.shape == (160, 5 * 6 + 2 * fz.route_points) and f.ego.dtype == np.float32
    assert f.agents.shape == (160, 6, fz.dims["agent"]) and f.lanes.shape == (160, 5, fz.dims["lane"])
    assert np.isfinite(f.ego).all() and np.isfinite(f.agents).all() and np.isfinite(f.lanes).all()
    # 3 real lanes, padded to 5; 2-3 real agents, padding rows exactly zero.
    assert f.lane_mask[:, :3].all() and not f.lane_mask[:, 3:].any()
    assert (f.agents[~f.agent_mask] == 0).all() and (f.lanes[~f.lane_mask] == 0).all()
    assert (f.agent_mask.sum(1) == 2 + scenes.agent_valid[:, 0, 4]).all()
    # Nearest first: raw distances of the kept agents are non-decreasing.
    raw = fz._raw(scenes)
    xy = raw.agents[..., 14:16]  # t0 x, y (history 2 steps × 7 channels before it)
    d = np.where(raw.agent_mask, np.hypot(*np.moveaxis(xy, -1, 0)), 1e9)
    assert (np.diff(d, axis=1) >= 0).all()
    # The route ahead starts at the ego and is spaced route_spacing apart.
    route = raw.ego[:, 30:].reshape(160, -1, 2)
    assert np.abs(route[:, 0]).max() < 1.1
    steps = np.hypot(*np.moveaxis(np.diff(route, axis=1), -1, 0))
    assert np.allclose(steps, fz.route_spacing, atol=0.3)


def test_featurizer_state_round_trip_and_errors(scenes):
    fz = SceneFeaturizer().fit(scenes)
    again = SceneFeaturizer.from_state(fz.get_state())
    np.testing.assert_array_equal(fz.transform(scenes).lanes, again.transform(scenes).lanes)
    with pytest.raises(ValueError, match="fit"):
        SceneFeaturizer().transform(scenes)
    with pytest.raises(ValueError, match="empty"):
        SceneFeaturizer().fit(scenes.subset([]))
    # A batch without any agent rows still gives fixed-size (all-padding) agent features.
    bare = scenes.replace(agents=scenes.agents[:, :0], agent_valid=scenes.agent_valid[:, :0],
                          agent_size=scenes.agent_size[:, :0], agent_type=scenes.agent_type[:, :0])
    f = fz.transform(bare)
    assert f.agents.shape == (160, fz.num_agents, fz.dims["agent"]) and not f.agent_mask.any()


def test_vocabularies_are_deterministic():
    p = parametric_vocabulary()
    assert p.shape[1:] == (8, 3) and len(np.unique(p.round(2).reshape(len(p), -1), axis=0)) == len(p)
    b = road_scenes(120, seed=1)
    v1, v2 = build_vocabulary(b, size=64, seed=0), build_vocabulary(b, size=64, seed=0)
    np.testing.assert_array_equal(v1, v2)
    assert v1.shape == (64, 8, 3) and (v1[0] == 0).all()  # standing still is always a candidate
    with pytest.raises(ValueError, match="method"):
        build_vocabulary(b, method="nope")


# ---------------------------------------------------------------------- training
def test_training_reduces_loss_and_beats_constant_velocity(scenes, regression):
    history = regression.metrics["history"]
    assert history[-1]["train_loss"] < 0.5 * history[0]["train_loss"]
    test = road_scenes(60, seed=7)
    plans = regression.plan(test)
    expert = test.expert_trajectory()
    cv = np.zeros_like(expert)
    cv[..., 0] = test.ego[:, 4, 3:4] * np.arange(1, 9) * 0.5
    err = lambda p: np.hypot(*np.moveaxis(p[..., :2] - expert[..., :2], -1, 0)).mean()  # noqa: E731
    assert err(plans) < 0.6 * err(cv)


def test_same_seed_same_model_and_different_seed_differs():
    b = road_scenes(60, seed=3)
    a1 = train_planner(b, seed=5, **FAST)
    a2 = train_planner(b, seed=5, **FAST)
    a3 = train_planner(b, seed=6, **FAST)
    np.testing.assert_allclose(a1.plan(b), a2.plan(b), atol=1e-5)
    assert a1.fingerprint == a2.fingerprint and a1.metrics["history"] == a2.metrics["history"]
    assert np.abs(a1.plan(b) - a3.plan(b)).max() > 1e-3


def test_zero_weight_scenes_have_no_influence():
    a, extra = road_scenes(50, seed=4), road_scenes(30, seed=5)
    both = SceneBatch.concatenate([a, extra])
    w = np.r_[np.ones(50), np.zeros(30)]
    m_weighted = train_planner(both, sample_weight=w, seed=1, **FAST)
    m_plain = train_planner(a, seed=1, **FAST)
    np.testing.assert_allclose(m_weighted.plan(a), m_plain.plan(a), atol=1e-5)
    assert m_weighted.fingerprint == m_plain.fingerprint
    # ... while non-zero weights on the extra scenes do change the model and the fingerprint.
    m_mixed = train_planner(both, sample_weight=np.r_[np.ones(50), 3 * np.ones(30)], seed=1, **FAST)
    assert m_mixed.fingerprint != m_plain.fingerprint
    assert np.abs(m_mixed.plan(a) - m_plain.plan(a)).max() > 1e-3


def test_bad_inputs_raise_clear_errors(scenes):
    with pytest.raises(ValueError, match="empty"):
        train_planner(scenes.subset([]), **FAST)
    for bad, pattern in [([np.nan] * 160, "NaN"), (np.zeros(160), "all zero"), (np.ones(3), r"\(160,\)"),
                         (-np.ones(160), "negative")]:
        with pytest.raises(ValueError, match=pattern):
            train_planner(scenes, sample_weight=bad, **FAST)
    no_expert = scenes.subset(np.arange(20))
    no_expert.meta["has_expert"] = np.zeros(20, bool)
    with pytest.raises(ValueError, match="logged future"):
        train_planner(no_expert, planner="regression", **FAST)
    with pytest.raises(ValueError, match="unknown planner"):
        train_planner(scenes, planner="transformer", **FAST)
    with pytest.raises(ValueError, match="all zero"):
        check_weights(np.zeros(2), 2)


# ---------------------------------------------------------------------- uncertainty / embeddings
def test_mc_dropout_varies_only_when_sampling(scenes, regression):
    sub = scenes.subset(np.arange(20))
    samples = regression.sample(sub, 6)
    assert samples.shape == (6, 20, 8, 3)
    assert samples.std(0).mean() > 1e-4
    np.testing.assert_array_equal(regression.plan(sub), regression.plan(sub))  # eval mode: deterministic
    assert not regression.model.training
    no_dropout = train_planner(sub, dropout=0.0, **FAST)
    assert no_dropout.sample(sub, 4).std(0).max() == 0.0
    emb = regression.embed(sub)
    assert emb.shape == (20, regression.config["hidden"]) and np.isfinite(emb).all()


# ---------------------------------------------------------------------- checkpoints
def test_checkpoint_round_trip_and_architecture_errors(tmp_path, scenes, regression):
    path = regression.save(tmp_path / "reg.pt")
    loaded = load_planner(path, planner="regression")
    np.testing.assert_array_equal(loaded.plan(scenes), regression.plan(scenes))
    assert loaded.fingerprint == regression.fingerprint and loaded.config == regression.config
    # A plain torch.load with weights_only works (state dict + JSON header).
    assert "state_dict" in torch.load(path, weights_only=True)
    with pytest.raises(ValueError, match="'regression' planner, not the requested 'scoring'"):
        load_planner(path, planner="scoring")
    blob = torch.load(path, weights_only=True)
    blob["state_dict"]["head.weight"] = torch.zeros(5, 5)
    torch.save(blob, tmp_path / "broken.pt")
    with pytest.raises(ValueError, match="do not fit"):
        load_planner(tmp_path / "broken.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a planner checkpoint"):
        load_planner(tmp_path / "junk.pt")


# ---------------------------------------------------------------------- scoring planner + evaluation
def test_scoring_planner_trains_from_rewards_and_round_trips(tmp_path):
    b = road_scenes(40, seed=8)
    half = np.arange(40) >= 20
    b.meta["has_expert"] = ~half  # half the scenes are "rewards only"
    kw = dict(steps=30, batch_size=16, eval_every=15, vocabulary_size=48, reward_candidates=8)
    model = train_planner(b, planner="scoring", seed=0, **kw)
    plans = model.plan(b)
    vocab = model.model.vocabulary.numpy()
    assert plans.shape == (40, 8, 3)
    assert (np.abs(plans[:, None] - vocab[None]).max(axis=(2, 3)) < 1e-6).any(1).all()  # plans are candidates
    assert model.metrics["history"][-1]["train_loss"] < model.metrics["history"][0]["train_loss"]
    assert model.sample(b.subset(np.arange(5)), 3).shape == (3, 5, 8, 3)
    loaded = load_planner(model.save(tmp_path / "s.pt"), planner="scoring")
    np.testing.assert_array_equal(loaded.plan(b), plans)
    # Rewards only, no expert at all: the scoring planner still trains; regression refuses.
    b.meta["has_expert"] = np.zeros(40, bool)
    assert train_planner(b, planner="scoring", **kw).plan(b).shape == (40, 8, 3)


def test_candidates_fixed_per_scene():
    vocab = parametric_vocabulary()
    ref = np.zeros((3, 8, 3), np.float32)
    c1 = choose_candidates(vocab, ref, 10, ["a", "b", "c"])
    c2 = choose_candidates(vocab, ref[:2], 10, ["a", "b"])
    np.testing.assert_array_equal(c1[:2], c2)
    assert all(len(set(row)) == 10 for row in c1) and not np.array_equal(c1[0], c1[1])


def test_evaluate_planner_per_scene_results(scenes, regression):
    test = road_scenes(30, seed=9)
    result = evaluate_planner(regression, test)
    per_scene = result.per_scene()
    for key in ("epdms", "nc", "dac", "ep", "ttc", "l2_1s", "l2_2s", "l2_3s", "collision"):
        assert per_scene[key].shape == (30,), key
    agg = result.aggregates()
    assert 0.0 <= agg["epdms"] <= 1.0 and agg["num_scenes"] == 30
    expert = evaluate_trajectories(test, test.expert_trajectory(), name="expert")
    assert np.allclose(expert.l2["l2_3s"], 0.0)
    assert expert.aggregates()["epdms"] >= agg["epdms"] - 0.05
    with pytest.raises(ValueError, match="empty"):
        evaluate_planner(regression, test.subset([]))
    with pytest.raises(ValueError, match="shape"):
        evaluate_trajectories(test, np.zeros((3, 8, 3)))


def test_precomputed_rewards_are_used_for_targets():
    from autoscale_core.planning.models import SCORE_METRICS
    from autoscale_core.planning.train import add_precomputed_rewards, reward_targets

    b = road_scenes(4, seed=11)
    vocab = build_vocabulary(method="parametric", size=256)
    rng = np.random.default_rng(0)
    rewards = {"scene_id": b.meta["scene_id"], "vocabulary": vocab,
               **{m: rng.random((4, len(vocab))).astype(np.float32) for m in SCORE_METRICS}}
    assert add_precomputed_rewards(rewards, reactive=True) == 4
    every = np.broadcast_to(np.arange(len(vocab)), (4, len(vocab)))
    targets = reward_targets(b, vocab, every, reactive=True)
    np.testing.assert_array_equal(targets[..., SCORE_METRICS.index("ep")], rewards["ep"])
    with pytest.raises(ValueError, match="lack"):
        add_precomputed_rewards({"scene_id": b.meta["scene_id"]})
