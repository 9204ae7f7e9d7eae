"""Scene representation and value: encoders, faiss index, clustering, S/R/U/Q scores.

Small constructed cases with known answers; real faiss and real torch training (a few steps).
"""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_road_batch

from autoscale_core.representation import (
    FEATURE_NAMES,
    ErrorPatternEncoder,
    GraphRAE,
    HandcraftedFeatures,
    KnnIndex,
    SceneClusterer,
    ValueScorer,
    build_graphs,
    cluster_purity,
    error_pattern_inputs,
    error_pattern_tokens,
    safety_descriptors,
)
from autoscale_core.representation.error_encoder import TOKEN_FEATURES, supervised_contrastive_loss
from autoscale_core.representation.value import mc_uncertainty


@pytest.fixture(scope="module")
def varied_batch():
    """24 hand-built road scenes; the lead car's gap varies with the scene index."""
    b = make_road_batch(24, prefix="repr")
    gaps = np.linspace(8.0, 40.0, len(b))
    b.agents[:, 0, :, 0] += (gaps - 20.0)[:, None]
    return b


# ------------------------------------------------------------------ hand-crafted features
def test_handcrafted_values_and_standardization(varied_batch):
    raw = HandcraftedFeatures.raw(varied_batch)
    col = {n: i for i, n in enumerate(FEATURE_NAMES)}
    assert raw.shape == (24, len(FEATURE_NAMES))
    # Pedestrian at (32, 6), ego at the origin; the lead car's gap grows with the index.
    np.testing.assert_allclose(raw[:, col["nearest_pedestrian_dist"]], np.hypot(32.0, 6.0), rtol=1e-5)
    gaps = raw[:, col["lead_gap"]]
    assert np.all(np.diff(gaps) > 0)
    np.testing.assert_allclose(gaps[0], 8.0 - 0.5 * (4.6 + 4.5), atol=1e-4)
    assert raw[:, col["n_pedestrian_30m"]].tolist() == [0] * 24  # 32.6 m away
    assert set(raw[:, col["tl_red"]]) == {0.0, 1.0}  # alternating red / green
    z = HandcraftedFeatures().fit(varied_batch).transform(varied_batch)
    assert z.dtype == np.float32 and np.isfinite(z).all()
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-4)


def test_handcrafted_needs_fit(varied_batch):
    with pytest.raises(RuntimeError, match="not fitted"):
        HandcraftedFeatures().transform(varied_batch)


# ------------------------------------------------------------------ Graph-RAE
def test_graph_building_topology(varied_batch):
    g = build_graphs(varied_batch, max_agents=4, max_lanes=4)
    assert g.nodes.shape == (24, 9, g.nodes.shape[2]) and g.mask.shape == (24, 9)
    assert g.mask[:, :4].all() and not g.mask[:, 4].any()  # ego + 3 agents; 4th agent slot empty
    assert g.mask[:, 5:8].all() and not g.mask[:, 8].any()  # 3 lanes
    # Lanes 0 and 1 are neighbours; the ego links to its route lane (lane 0 is nearest → slot 5).
    assert g.topology[0, 5, 6] == 1 and g.topology[0, 6, 5] == 1
    assert g.topology[0, 0, 5] == 1
    np.testing.assert_allclose(g.topology, g.topology.transpose(0, 2, 1))


def test_graph_rae_fit_is_deterministic_and_learns(varied_batch):
    kw = dict(latent_dim=16, hidden=32, batch_size=16, num_threads=1)
    a = GraphRAE(**kw).fit(varied_batch, steps=12, seed=3)
    z = a.transform(varied_batch)
    assert z.shape == (24, 16) and z.dtype == np.float32 and np.isfinite(z).all()
    z_again = GraphRAE(**kw).fit(varied_batch, steps=12, seed=3).transform(varied_batch)
    np.testing.assert_array_equal(z, z_again)
    z_other = GraphRAE(**kw).fit(varied_batch, steps=12, seed=4).transform(varied_batch)
    assert not np.allclose(z, z_other)
    assert a.history_[-1]["recon"] < a.history_[0]["recon"]
    samples = a.sample(varied_batch, num_samples=3)
    assert samples.shape == (3, 24, 16) and mc_uncertainty(samples).min() > 0


def test_graph_rae_errors(varied_batch):
    with pytest.raises(RuntimeError, match="not fitted"):
        GraphRAE().transform(varied_batch)
    with pytest.raises(ValueError, match="at least 2"):
        GraphRAE().fit(varied_batch[:1], steps=1)


# ------------------------------------------------------------------ error-pattern encoder
def test_error_tokens_end_at_the_largest_deviation():
    logged = np.zeros((2, 8, 3))
    logged[..., 0] = np.arange(1, 9)
    pred = logged.copy()
    pred[0, 3:8, 1] = 2.0  # constant lateral error from step 3 on; largest (ties → first) at 3
    pred[0, 6, 1] = 3.0  # peak at step 6 → window 2..6
    pred[1, 1, 0] += 5.0  # big early along-track error at step 1 → window clipped to 0..4
    tokens, t_star, start = error_pattern_tokens(pred, logged)
    assert t_star.tolist() == [6, 1] and start.tolist() == [2, 0]
    assert tokens.shape == (2, 5, len(TOKEN_FEATURES))
    np.testing.assert_allclose(tokens[0, :, 1], [0.0, 2.0, 2.0, 2.0, 3.0])  # cross-track error
    np.testing.assert_allclose(tokens[0, :, 4], [0.0, 2.0, 0.0, 0.0, 1.0])  # its per-step change
    np.testing.assert_allclose(tokens[1, 1, 0], 5.0)  # along-track error
    np.testing.assert_allclose(tokens[0, :, -1], np.arange(3, 8) / 8)
    with pytest.raises(ValueError, match="NaN"):
        error_pattern_tokens(np.full((1, 8, 3), np.nan), logged[:1])
    with pytest.raises(ValueError, match="shape"):
        error_pattern_tokens(pred, logged[:, :6])


def test_error_tokens_are_in_the_logged_frame():
    """A 1 m error ahead of a logged pose heading +y is along-track, not cross-track."""
    logged = np.zeros((1, 8, 3))
    logged[..., 1], logged[..., 2] = np.arange(1, 9), np.pi / 2
    pred = logged.copy()
    pred[0, :, 1] += 1.0
    tokens, _, _ = error_pattern_tokens(pred, logged)
    np.testing.assert_allclose(tokens[0, :, 0], 1.0, atol=1e-6)
    np.testing.assert_allclose(tokens[0, :, 1], 0.0, atol=1e-6)


def test_error_inputs_never_read_agents_or_map(varied_batch):
    """Leak-freedom: poisoning (NaN) or removing every agent, map and annotation array leaves the
    encoder inputs identical; only the logged ego future is read."""
    b = varied_batch[:6]
    plans = b.expert_trajectory().astype(np.float64)
    plans[:, :, 0] *= 1.3
    tokens, start = error_pattern_inputs(b, plans)
    poisoned = {name: (np.full(a.shape, np.nan, a.dtype) if a.dtype.kind == "f" else np.full_like(a, -7))
                for name, a in b.arrays().items() if name != "ego"}
    ego = b.ego.copy()
    ego[:, : b.history_steps + 1] = np.nan  # the ego's past is not read either
    for bad in (b.replace(**poisoned, ego=ego),
                b.replace(agents=b.agents[:, :0], agent_valid=b.agent_valid[:, :0], agent_size=b.agent_size[:, :0],
                          agent_type=b.agent_type[:, :0], lanes=b.lanes[:, :0], lane_valid=b.lane_valid[:, :0])):
        tokens2, start2 = error_pattern_inputs(bad, plans)
        np.testing.assert_array_equal(tokens2, tokens)
        np.testing.assert_array_equal(start2, start)
    with pytest.raises(ValueError, match="future steps"):
        error_pattern_inputs(b, plans[:, :6])


def test_safety_descriptor_is_exp_of_minus_nearest_gap(varied_batch):
    b = varied_batch[:2]
    expert = b.expert_trajectory()
    plans = expert.copy()
    # Scene 1 drives straight into the lead car (which starts ~gap ahead at the same speed).
    lead = b.agents[1, 0, b.history_steps + 1 :, :2]
    plans[1, :, :2] = lead - np.array([3.0, 0.0])
    start = np.array([3, 3])
    desc = safety_descriptors(b, plans, start)
    assert desc.shape == (2,) and np.all((desc > 0) & (desc <= 1))
    assert desc[1] == pytest.approx(1.0)  # boxes overlap: d_min = 0
    # Scene 0 follows the log: d_min = the lead car's box gap (8 m centre gap, lengths 4.6 / 4.5).
    gap0 = np.hypot(*(b.agents[0, 0, b.history_steps + 1 + 3 :, :2] - expert[0, 3:, :2]).T).min() - 0.5 * (4.6 + 4.5)
    assert desc[0] == pytest.approx(np.exp(-gap0 / 2.0), rel=1e-4)


def test_supcon_loss_hand_computed():
    """z0 = z1 = (1, 0), z2 = (0.6, 0.8); descriptors 0, 0.1, 5 with δ = the median pairwise
    difference 4.9 → the only positives are (0, 1) and (1, 0). Anchors 0 and 1 each see logits
    1/τ (positive) and 0.6/τ, so loss = −log(e^{1/τ} / (e^{1/τ} + e^{0.6/τ})) = log(1 + e^{−0.4/τ})."""
    import math

    import torch

    z = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8]])
    d = torch.tensor([0.0, 0.1, 5.0])
    for tau in (0.07, 1.0):
        loss = supervised_contrastive_loss(z, d, temperature=tau, quantile=0.5)
        assert float(loss) == pytest.approx(math.log1p(math.exp(-0.4 / tau)), rel=1e-4)  # float32


def test_supcon_prefers_grouping_by_descriptor():
    import torch

    d = torch.tensor([0.0, 0.01, 5.0, 5.01, 10.0, 10.01])
    grouped = torch.nn.functional.normalize(torch.tensor([[1, 0], [1, 0], [0, 1], [0, 1], [-1, 0], [-1, 0]], dtype=torch.float32), dim=1)
    mixed = grouped[[0, 2, 4, 1, 3, 5]]
    assert supervised_contrastive_loss(grouped, d) < supervised_contrastive_loss(mixed, d)


def test_error_encoder_normalized_deterministic_and_mc():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(40, 5, 9)).astype(np.float32)
    desc = np.abs(tokens[:, :, 0]).sum(1)
    kw = dict(out_dim=32, dim=32, batch_size=32, num_threads=1)
    enc = ErrorPatternEncoder(**kw).fit(tokens, desc, steps=8, seed=1)
    z = enc.transform(tokens)
    assert z.shape == (40, 32)
    np.testing.assert_allclose(np.linalg.norm(z, axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(z, ErrorPatternEncoder(**kw).fit(tokens, desc, steps=8, seed=1).transform(tokens))
    samples = enc.sample(tokens, num_samples=4)
    assert samples.shape == (4, 40, 32) and mc_uncertainty(samples).min() > 0
    with pytest.raises(ValueError, match="shape"):
        enc.transform(tokens[:, :4])
    with pytest.raises(ValueError, match="NaN"):
        enc.fit(tokens, np.full(40, np.nan))


# ------------------------------------------------------------------ faiss index
def _blobs(n_per=50, centers=4, dim=8, seed=0, spread=0.1):
    rng = np.random.default_rng(seed)
    c = rng.normal(size=(centers, dim)) * 5
    x = np.concatenate([c[i] + spread * rng.normal(size=(n_per, dim)) for i in range(centers)])
    return x.astype(np.float32), np.repeat(np.arange(centers), n_per)


def test_index_exact_search_save_load(tmp_path):
    x, _ = _blobs()
    index = KnnIndex().fit(x)
    assert index.built_kind == "flat" and "exact" in index.reason
    d, i = index.search(x[:5], 3)
    assert i[:, 0].tolist() == [0, 1, 2, 3, 4]
    brute = np.sqrt(((x[:5, None] - x[None]) ** 2).sum(-1))
    np.testing.assert_allclose(d, np.sort(brute, axis=1)[:, :3], atol=1e-3)
    path = index.save(str(tmp_path / "idx" / "scenes.faiss"))
    loaded = KnnIndex.load(path)
    assert loaded.built_kind == "flat" and len(loaded) == len(x)
    d2, i2 = loaded.search(x[:5], 3)
    np.testing.assert_array_equal(i, i2)
    assert index.recall(k=5) == 1.0


def test_index_bad_input():
    x, _ = _blobs(n_per=5)
    index = KnnIndex().fit(x)
    with pytest.raises(ValueError, match="larger than"):
        index.search(x, 21)
    with pytest.raises(ValueError, match="NaN"):
        index.search(np.full((1, 8), np.nan), 1)
    with pytest.raises(ValueError, match="dimension 4"):
        index.search(x[:, :4], 1)
    with pytest.raises(ValueError, match="NaN"):
        KnnIndex().fit(np.where(np.arange(8) == 3, np.nan, x))
    with pytest.raises(FileNotFoundError):
        KnnIndex.load("/nonexistent/x.faiss")


def test_index_auto_switches_to_ivf_and_recall_is_measured():
    x, _ = _blobs(n_per=1300, centers=8, dim=16, spread=1.0)
    index = KnnIndex(exact_max=1000).fit(x)
    assert index.built_kind == "ivf" and "exact_max" in index.reason
    assert index.recall(k=10, sample=200) > 0.8
    assert KnnIndex(expected_queries=10400, pair_budget=1e6).fit(x).built_kind == "ivf"


# ------------------------------------------------------------------ clustering
def test_clustering_recovers_blobs_and_chooses_k():
    x, truth = _blobs(centers=4)
    fixed = SceneClusterer(k=4).fit(x)
    assert cluster_purity(fixed.labels_, truth) == 1.0 and fixed.centroids_.shape == (4, 8)
    auto = SceneClusterer(k=None, k_grid=range(2, 8)).fit(x)
    assert auto.k_ == 4 and max(auto.silhouette_, key=auto.silhouette_.get) == 4
    stats = auto.cluster_stats({"v": np.arange(len(x), dtype=float)})
    assert sum(s["size"] for s in stats) == len(x) and "mean_v" in stats[0]
    np.testing.assert_array_equal(auto.predict(x), auto.labels_)
    meta = SceneClusterer(method="metadata").fit(x, domains=np.array(["a", "b"])[truth % 2])
    assert meta.domain_names_ == ["a", "b"] and meta.k_ == 2


def test_clustering_errors_and_purity():
    x, truth = _blobs(n_per=3)
    with pytest.raises(ValueError, match="only 12"):
        SceneClusterer(k=20).fit(x)
    with pytest.raises(ValueError, match="domains"):
        SceneClusterer(method="metadata").fit(x)
    assert cluster_purity([0, 0, 1, 1], ["a", "b", "c", "c"]) == 0.75
    with pytest.raises(ValueError):
        cluster_purity([0, 1], ["a"])


# ------------------------------------------------------------------ value scores
def _ring(n=60, dim=4, seed=0):
    """Points on a small arc of the unit sphere plus one far-away (isolated) point at the end."""
    rng = np.random.default_rng(seed)
    x = np.zeros((n, dim))
    x[:, 0] = 1.0
    x[:, 1] = 0.05 * rng.normal(size=n)
    x[:, 2] = 0.05 * rng.normal(size=n)
    x[-1] = [0.0, 0.0, 0.0, 1.0]  # isolated
    return x.astype(np.float32)


def test_rarity_is_highest_for_the_isolated_point():
    x = _ring()
    scorer = ValueScorer(k=5).fit(x, safety=np.zeros(len(x)))
    scores = scorer.score(x, exclude_self=True)
    assert int(np.argmax(scores["R"])) == len(x) - 1
    assert np.isfinite(scores["R"]).all() and scorer.bandwidth_ > 0


def test_safety_is_highest_beside_the_hazard_set():
    x = _ring()
    safety = np.zeros(len(x))
    hazard = np.argsort(x[:, 1])[-6:]  # 10 % of 60: the six points furthest along +y
    safety[hazard] = 10.0
    scorer = ValueScorer(k=5).fit(x, safety)
    assert set(scorer.hazard_idx_.tolist()) == set(hazard.tolist())
    queries = np.array([[0.9, 0.3, 0, 0], [0.9, -0.3, 0, 0], [0, 0, 1, 0]], np.float32)
    s = scorer.score(queries)["S"]
    assert s[0] > s[1] > s[2] and 0 < s[0] <= 1


def test_q_hand_computed_case():
    """Q = S/σS + R/σR + U/σU with population std over the scored rows; a constant score is
    divided by 1. S = (0, 2): σ 1; R = (0, 4): σ 2; U = (1, 1): constant → Q = (0+0+1, 2+2+1)."""
    from autoscale_core.representation.value import combine_scores

    scores = {"S": np.array([0.0, 2.0]), "R": np.array([0.0, 4.0]), "U": np.array([1.0, 1.0])}
    np.testing.assert_allclose(combine_scores(scores), [1.0, 5.0])
    np.testing.assert_allclose(combine_scores(scores, ("S", "R")), [0.0, 4.0])
    np.testing.assert_allclose(combine_scores(scores, weights={"S": 2.0, "R": 0.5, "U": 0.0}), [0.0, 5.0])
    with pytest.raises(ValueError, match="subset"):
        combine_scores(scores, ("X",))


def test_safety_kernel_has_the_factor_two():
    """S = exp(−d²/(2τs)): one hazard point at unit-sphere distance d from the query."""
    x = _ring()
    safety = np.zeros(len(x))
    safety[-1] = 1.0  # hazard set of 10 %: the isolated point plus the first rows by stable order
    scorer = ValueScorer(k=5, tau_s=0.5, hazard_fraction=1 / len(x)).fit(x, safety)
    query = np.array([[0.0, 0.0, 0.6, 0.8]], np.float32)  # normalized; hazard is (0, 0, 0, 1)
    d2 = 0.6**2 + 0.2**2
    assert scorer.score(query)["S"][0] == pytest.approx(np.exp(-d2 / (2 * 0.5)), rel=1e-5)


def test_uncertainty_zero_for_a_deterministic_model_and_q_mix():
    x = _ring()
    scorer = ValueScorer(alpha_s=0.0, alpha_r=1.0, alpha_u=1.0, k=5).fit(x, np.arange(len(x)))
    same = np.stack([x] * 10)
    out = scorer.score(x, mc_samples=same, exclude_self=True)
    assert np.all(out["U"] == 0)
    np.testing.assert_allclose(out["Q"], out["R"] / out["R"].std())  # U constant → its term is 0
    noisy = same + np.random.default_rng(0).normal(size=same.shape).astype(np.float32) * np.linspace(0, 1, len(x))[None, :, None]
    u = scorer.score(x, mc_samples=noisy, exclude_self=True)["U"]
    assert u[0] == 0 and int(np.argmax(u)) == len(x) - 1


def test_value_scorer_bad_input():
    x = _ring(n=10)
    with pytest.raises(ValueError, match="at least 21"):
        ValueScorer().fit(x, np.zeros(10))
    scorer = ValueScorer(k=3).fit(x, np.zeros(10))
    with pytest.raises(ValueError, match="NaN"):
        scorer.score(np.full((2, 4), np.nan))
    with pytest.raises(ValueError, match="dimension 3"):
        scorer.score(x[:, :3])
    with pytest.raises(ValueError, match="K >= 2"):
        scorer.score(x, mc_samples=x[None])
    with pytest.raises(ValueError, match="cover"):
        scorer.score(x, mc_samples=np.stack([x[:5]] * 3))
    with pytest.raises(ValueError, match="safety has"):
        ValueScorer(k=3).fit(x, np.zeros(9))
    with pytest.raises(RuntimeError, match="not fitted"):
        ValueScorer().score(x)


def test_pipeline_embeds_every_method_and_scores_against_train_rows(varied_batch):
    from autoscale_core.representation.pipeline import METHODS, embed_scenes, value_scores

    class ConstantVelocity:
        """Keeps the t0 speed and heading (a real, if weak, planner without MC dropout)."""

        def plan(self, batch):
            h = batch.history_steps
            t = np.arange(1, batch.future_steps + 1) * batch.dt
            v, yaw = batch.ego[:, h, 3:4], batch.ego[:, h, 2:3]
            x0, y0 = batch.ego[:, h, 0:1], batch.ego[:, h, 1:2]
            return np.stack([x0 + v * t * np.cos(yaw), y0 + v * t * np.sin(yaw), np.repeat(yaw, len(t), 1)], -1)

    train = np.arange(24) < 18
    for method in METHODS:
        res = embed_scenes(varied_batch, method, planner=ConstantVelocity(), train_mask=train, steps=3, mc_samples=3,
                           num_threads=1, **({"latent_dim": 8, "hidden": 16} if method == "graph_rae" else {}))
        assert res.embeddings.shape[0] == 24 and np.isfinite(res.embeddings).all()
        assert (res.mc_samples is None) == (method == "handcrafted")
        scores, scorer = value_scores(res.embeddings, res.safety, train_mask=train, mc_samples=res.mc_samples, k=5)
        assert set(scores) == {"S", "R", "U", "Q"} and all(np.isfinite(v).all() and v.shape == (24,) for v in scores.values())
        assert len(scorer.hazard_idx_) == 2  # 10 % of 18 training scenes
    with pytest.raises(ValueError, match="needs a planner"):
        embed_scenes(varied_batch, "error_pattern")
    with pytest.raises(ValueError, match="k=20 needs at least 21"):
        value_scores(res.embeddings, res.safety, train_mask=train)


def test_index_hnsw_and_ivf_round_trip(tmp_path):
    x, _ = _blobs(n_per=300, centers=4, dim=8, spread=1.0)
    hnsw = KnnIndex("hnsw").fit(x)
    assert hnsw.built_kind == "hnsw" and hnsw.recall(k=5, sample=100) > 0.9
    ivf = KnnIndex("ivf", nlist=8, nprobe=8).fit(x)  # probing every list: exact
    assert ivf.recall(k=5, sample=100) == 1.0
    loaded = KnnIndex.load(ivf.save(str(tmp_path / "ivf.faiss")))
    assert loaded.built_kind == "ivf" and loaded.reason == "kind 'ivf' requested"
    np.testing.assert_array_equal(loaded.search(x[:10], 5)[1], ivf.search(x[:10], 5)[1])
