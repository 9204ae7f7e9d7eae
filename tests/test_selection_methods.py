"""Selectors on synthetic pools and an analytic oracle with known structure (fast, deterministic)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autoscale_core.selection import (
    AllSyntheticSelector,
    ClusterMixtureOptimizer,
    CoresetSelector,
    HardExampleSelector,
    MosaicSelector,
    Pool,
    RandomSelector,
    RandomSyntheticSelector,
    SerialExecutor,
    SyntheticOracle,
    TaskError,
    UncertaintySelector,
    ValueTopSelector,
    ablation_subsets,
    k_center_greedy,
    project_to_simplex,
)


def _pool(n_per=120, num_domains=4, dim=6, seed=0):
    rng = np.random.default_rng(seed)
    domains = np.repeat(np.arange(num_domains), n_per)
    centres = rng.normal(0, 6, (num_domains, dim))
    emb = centres[domains] + rng.normal(0, 1, (len(domains), dim))
    importance = rng.random(len(domains))
    pool = Pool(
        scene_ids=[f"s{i:04d}" for i in range(len(domains))], embeddings=emb,
        domains=np.array([f"d{d}" for d in domains], dtype=object), scores={"importance": importance},
    )
    return pool, domains, importance


def _oracle(domains, importance, noise=0.1):
    # Domain 0 is worth much more than the others; within a domain, important scenes count double.
    return SyntheticOracle(domains, a=[10.0, 4.0, 1.0, 0.0], tau=[25.0, 40.0, 30.0, 30.0],
                           quality=0.5 + importance, base=50.0, noise=noise)


def test_mosaic_beats_random_where_domains_differ_in_value():
    pool, domains, importance = _pool()
    oracle = _oracle(domains, importance)
    budget = 80
    result = MosaicSelector(oracle, executor=SerialExecutor(), seeds=(0, 1), ranking="failures_first").select(pool, budget)
    assert result.budget == budget and len(set(result.scene_ids)) == budget
    assert sum(result.allocation.values()) == budget
    assert result.allocation["d0"] > result.allocation["d2"] >= result.allocation["d3"]
    mosaic_score = oracle.expected(result.indices)
    random_scores = [oracle.expected(RandomSelector(seed=s).select(pool, budget).indices) for s in range(5)]
    assert mosaic_score > max(random_scores) + 1.0
    # The fitted curves rank the domains like the truth and the prediction is in the right range.
    fits = result.diagnostics["fits"]
    assert fits["d0"]["a"] > fits["d1"]["a"] if fits["d1"]["model"] == "exp" else True
    assert fits["d3"]["model"] == "zero"
    assert abs(result.predicted_gain - (mosaic_score - 50.0)) < 3.0
    # Within a domain, the most important scenes come first.
    d0 = result.indices[domains[result.indices] == 0]
    assert importance[d0].min() >= np.sort(importance[domains == 0])[::-1][len(d0) - 1] - 1e-12
    assert "MOSAIC" in result.explanation and "d3" in result.explanation
    json.dumps(result.to_dict())


def test_mosaic_pilot_failure_is_reported_with_its_input():
    pool, domains, importance = _pool(n_per=30)
    oracle = SyntheticOracle(domains, a=[1, 1, 1, 1], tau=[5, 5, 5, 5], fail_on={7})
    with pytest.raises(TaskError, match="seed=7"):
        MosaicSelector(oracle, executor=SerialExecutor(retries=1), seeds=(7,)).select(pool, 20)


class _FailsOnSize(SyntheticOracle):
    """Fails every training run with exactly ``size`` pool scenes (one pilot size)."""

    def __init__(self, size, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.size = size

    def __call__(self, indices, weights, seed):
        if len(indices) == self.size:
            raise RuntimeError(f"out of memory with {self.size} scenes")
        return super().__call__(indices, weights, seed)


def test_mosaic_failed_pilots_degrade_and_are_reported():
    pool, domains, importance = _pool(n_per=60)
    oracle = _FailsOnSize(15, domains, a=[10.0, 4.0, 1.0, 0.0], tau=[25.0, 40.0, 30.0, 30.0], quality=0.5 + importance)
    result = MosaicSelector(oracle, executor=SerialExecutor(retries=1), pilot_sizes=(5, 15, 30, 60)).select(pool, 40)
    failed = result.diagnostics["failed_pilots"]
    assert len(failed) == 4 and all("n=15" in f and "out of memory" in f for f in failed)
    assert "4 pilot run(s) failed" in result.explanation
    assert all(np.isnan(p["gains"][1]) for p in result.diagnostics["pilots"].values())
    assert result.budget == 40 and result.allocation["d0"] >= result.allocation["d3"]
    with pytest.raises(TaskError, match="n=15"):
        MosaicSelector(oracle, executor=SerialExecutor(), pilot_sizes=(5, 15), on_pilot_failure="raise").select(pool, 20)


def test_mosaic_flat_everywhere_still_spends_budget_and_says_so():
    pool, domains, _ = _pool(n_per=30)
    oracle = SyntheticOracle(domains, a=[0, 0, 0, 0], tau=[5, 5, 5, 5])
    result = MosaicSelector(oracle, executor=SerialExecutor()).select(pool, 20)
    assert result.budget == 20 and result.predicted_gain == 0
    assert "flat curve" in result.explanation


def test_mosaic_bad_input():
    pool, domains, importance = _pool(n_per=10)
    selector = MosaicSelector(_oracle(domains, importance), executor=SerialExecutor())
    with pytest.raises(ValueError, match="larger than the pool"):
        selector.select(pool, 41)
    with pytest.raises(ValueError, match="positive"):
        selector.select(pool, 0)
    no_domains = Pool(pool.scene_ids, embeddings=pool.embeddings)
    with pytest.raises(ValueError, match="needs domain labels"):
        selector.select(no_domains, 5)
    labels = pool.domains.copy()
    labels[3] = ""
    with pytest.raises(ValueError, match="empty domain label"):
        selector.select(pool, 5, domains=labels)


def test_cluster_ga_increases_the_oracle_score_over_rounds():
    pool, domains, importance = _pool(n_per=100, seed=1)
    oracle = _oracle(domains, np.zeros_like(importance), noise=0.05)
    opt = ClusterMixtureOptimizer(oracle, rounds=6, lr=0.2, num_probes=4, executor=SerialExecutor(), seed=3)
    result = opt.select(pool, 40)
    history = result.diagnostics["history"]
    assert len(history) == 6
    scores = [h["score"] for h in history]
    assert max(scores) > scores[0] + 1.0
    assert history[-1]["weights"][0] > history[0]["weights"][0] + 0.1  # moved towards the valuable cluster
    for h in history:
        assert sum(h["counts"].values()) == 40 and abs(sum(h["weights"]) - 1) < 1e-9
    assert result.budget == 40 and oracle.expected(result.indices) > oracle.expected(
        RandomSyntheticSelector(seed=0).select(pool, 40).indices)
    json.dumps(result.to_dict())


def test_cluster_ga_retrieval_prefers_failure_neighbourhoods():
    pool, domains, _ = _pool(n_per=50, seed=2)
    failures = pool.embeddings[[5, 60]] + 0.01  # near scene 5 (d0) and 60 (d1)
    opt = ClusterMixtureOptimizer(SyntheticOracle(domains, [1, 1, 1, 1], [5, 5, 5, 5]), rounds=1, num_probes=0,
                                  retrieval_alpha=0.0, executor=SerialExecutor())
    result = opt.select(pool, 8, failures=failures)
    assert 5 in result.indices and 60 in result.indices
    with pytest.raises(ValueError, match="failure embeddings"):
        opt.select(pool, 8, failures=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="needs scene embeddings"):
        opt.select(Pool(pool.scene_ids, domains=pool.domains), 8)


def test_retrieval_contract():
    """Cluster-guided retrieval by vector search: each cluster's order is a permutation of its own
    members; alpha = 1 ranks by distance to the cluster centre, alpha = 0 by the faiss distance to
    the nearest failure embedding; a mixture's selection takes each cluster's first n_c."""
    from autoscale_core.selection.cluster_ga import retrieval_order

    rng = np.random.default_rng(0)
    emb = rng.normal(size=(60, 8)).astype(np.float32)
    labels = np.repeat([0, 1, 2], 20)
    centres = np.stack([emb[labels == c].mean(0) for c in range(3)])
    failures = emb[[3, 45]] + 0.01
    by_centre = retrieval_order(emb, labels, centres, None)
    by_failure = retrieval_order(emb, labels, centres, failures, alpha=0.0)
    for c in range(3):
        members = np.flatnonzero(labels == c)
        for order in (by_centre[c], by_failure[c]):
            assert sorted(order.tolist()) == members.tolist()
        d_centre = np.linalg.norm(emb[by_centre[c]] - centres[c], axis=1)
        assert (np.diff(d_centre) >= 0).all()
        d_fail = np.linalg.norm(emb[by_failure[c]][:, None] - failures[None], axis=-1).min(1)
        assert (np.diff(d_fail) >= -1e-5).all()
    assert by_failure[0][0] == 3 and by_failure[2][0] == 45
    pool = Pool(np.array([f"s{i}" for i in range(60)], dtype=object), embeddings=emb,
                domains=np.array([f"c{c}" for c in labels], dtype=object))
    opt = ClusterMixtureOptimizer(SyntheticOracle(labels, [3, 1, 0], [5, 5, 5]), rounds=1, num_probes=0,
                                  retrieval_alpha=1.0, eval_seeds=1, executor=SerialExecutor())
    result = opt.select(pool, 12)
    assert len(set(result.indices.tolist())) == 12
    for name, count in result.allocation.items():
        c = int(name[1:])
        assert set(result.indices[labels[result.indices] == c].tolist()) == set(by_centre[c][:count].tolist())


def test_cluster_ga_scores_mixtures_over_seeds_and_confirms_on_a_second_val_set():
    pool, domains, importance = _pool(n_per=40, seed=5)
    calls = []

    class Counting(SyntheticOracle):
        def __call__(self, indices, weights, seed):
            calls.append(seed)
            return super().__call__(indices, weights, seed)

    tune = Counting(domains, [3, 1, 1, 0], [10, 10, 10, 10], noise=0.5)
    confirm = SyntheticOracle(domains, [0, 1, 1, 3], [10, 10, 10, 10])  # prefers another cluster
    opt = ClusterMixtureOptimizer(tune, rounds=3, num_probes=2, eval_seeds=3, confirm_oracle=confirm,
                                  confirm_top=2, executor=SerialExecutor(), seed=1)
    result = opt.select(pool, 20)
    assert len(calls) == 3 * 3 * 3  # rounds × (1 + probes) × seeds
    assert len(set(calls)) == 9  # common seeds within a round, fresh ones across rounds
    confirmed = [h for h in opt.history_ if "confirm_score" in h]
    assert len(confirmed) == 2 and opt.best_ is max(confirmed, key=lambda h: h["confirm_score"])
    assert "confirmed on the second val set" in result.explanation and result.config["eval_seeds"] == 3


def test_cluster_ga_clusters_without_domains():
    pool, domains, _ = _pool(n_per=40, seed=4)
    pool = Pool(pool.scene_ids, embeddings=pool.embeddings)
    opt = ClusterMixtureOptimizer(SyntheticOracle(domains, [5, 1, 1, 0], [10, 10, 10, 10]), num_clusters=4,
                                  rounds=2, executor=SerialExecutor())
    result = opt.select(pool, 20)
    assert len(result.allocation) == 4 and result.budget == 20


def test_project_to_simplex():
    rng = np.random.default_rng(0)
    for _ in range(20):
        v = rng.normal(0, 2, 5)
        w = project_to_simplex(v)
        assert (w >= 0).all() and w.sum() == pytest.approx(1)
        # Optimality: no random simplex point is closer to v.
        others = rng.dirichlet(np.ones(5), 200)
        assert np.linalg.norm(v - w) <= np.linalg.norm(v - others, axis=1).min() + 1e-12
    assert project_to_simplex(np.array([0.2, 0.3, 0.5])) == pytest.approx([0.2, 0.3, 0.5])


def test_k_center_greedy_properties():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 4))
    order, radius = k_center_greedy(x, 25)
    assert len(set(order.tolist())) == 25
    assert (np.diff(radius[1:]) <= 1e-12).all()  # covering radius never grows
    # The reported radius is the true max distance to the chosen centres before each pick.
    d = np.linalg.norm(x[:, None] - x[order[:10]][None], axis=-1).min(1)
    assert radius[10] == pytest.approx(d.max())
    # 2-approximation sanity: greedy radius ≤ 2 × the radius of a random set of the same size.
    rand = rng.choice(300, 25, replace=False)
    greedy_cover = np.linalg.norm(x[:, None] - x[order][None], axis=-1).min(1).max()
    random_cover = np.linalg.norm(x[:, None] - x[rand][None], axis=-1).min(1).max()
    assert greedy_cover < random_cover
    # With already-covered points, those are never picked and the farthest point comes first.
    order2, _ = k_center_greedy(x, 5, initial=np.arange(100))
    assert not set(order2.tolist()) & set(range(100))
    far = np.linalg.norm(x[:, None] - x[:100][None], axis=-1).min(1)
    assert order2[0] == int(np.argmax(np.where(np.arange(300) < 100, -1, far)))


def test_coreset_uncertainty_random_value_selectors():
    pool, domains, importance = _pool(n_per=25)
    n = len(pool)
    rng = np.random.default_rng(1)
    pool.scores.update({"uncertainty": rng.random(n), "value_S": rng.random(n), "value_R": importance,
                        "value_U": rng.random(n)})
    core = CoresetSelector().select(pool, 12)
    assert len(set(core.domains_hit if hasattr(core, "domains_hit") else domains[core.indices])) == 4  # covers every blob
    unc = UncertaintySelector().select(pool, 10)
    assert set(unc.indices) == set(np.argsort(-pool.scores["uncertainty"])[:10])
    r1, r2 = RandomSelector(seed=3).select(pool, 10), RandomSelector(seed=3).select(pool, 10)
    assert (r1.indices == r2.indices).all()
    only_r = ValueTopSelector(components=("R",)).select(pool, 10)
    assert set(only_r.indices) == set(np.argsort(-importance)[:10]) and only_r.method == "value_topm[R]"
    full = ValueTopSelector().select(pool, 10)
    assert full.budget == 10 and "S/σS+R/σR+U/σU" in full.explanation
    q = sum(pool.scores[f"value_{c}"] / pool.scores[f"value_{c}"].std() for c in "SRU")
    assert set(full.indices) == set(np.argsort(-q)[:10])  # the one Q of representation.value
    pool.scores["value_Q"] = -importance
    assert set(ValueTopSelector().select(pool, 5).indices) == set(np.argsort(importance)[:5])
    assert len(ablation_subsets()) == 7 and ablation_subsets()[-1] == ("S", "R", "U")
    assert AllSyntheticSelector().select(pool).budget == n
    with pytest.raises(ValueError, match="whole pool"):
        AllSyntheticSelector().select(pool, 5)


def test_hard_example_mining_takes_the_worst_scenes_ties_in_pool_order():
    pool = Pool([f"s{i}" for i in range(6)], scores={"importance": np.array([0.1, 1.0, 0.5, 1.0, 0.0, 0.9])})
    result = HardExampleSelector().select(pool, 3)
    assert list(result.indices) == [1, 3, 5]  # 1 − EPDMS descending; the tie 1.0 keeps pool order
    assert result.method == "hard_mining" and ">= 0.900" in result.explanation
    with pytest.raises(ValueError, match="importance"):
        HardExampleSelector().select(Pool(pool.scene_ids), 2)


def test_selectors_bad_input():
    pool, _, _ = _pool(n_per=5)
    bare = Pool(pool.scene_ids)
    with pytest.raises(ValueError, match="needs scene embeddings"):
        CoresetSelector().select(bare, 3)
    with pytest.raises(ValueError, match="'uncertainty'"):
        UncertaintySelector().select(bare, 3)
    with pytest.raises(ValueError, match="value_S"):
        ValueTopSelector(("S",)).select(bare, 3)
    with pytest.raises(ValueError, match="subset"):
        ValueTopSelector(("X",))
    with pytest.raises(ValueError, match="larger than the pool"):
        RandomSelector().select(pool, 21)
    with pytest.raises(ValueError, match="empty"):
        RandomSelector().select(Pool(np.array([], dtype=object)), 1)
    with pytest.raises(ValueError, match="unique"):
        Pool(["a", "a"])
    with pytest.raises(ValueError, match="NaN"):
        Pool(["a", "b"], embeddings=np.array([[0.0], [np.nan]]))
    with pytest.raises(ValueError, match="shape"):
        Pool(["a", "b"], scores={"uncertainty": [1.0]})
    nan_scores = Pool(["a", "b"], scores={"uncertainty": [1.0, np.nan]})
    with pytest.raises(ValueError, match="NaN/inf for scene 'b'"):
        UncertaintySelector().select(nan_scores, 1)
