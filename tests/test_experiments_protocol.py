"""The selection protocol's machinery: monotone random curve, BRMR with censoring, the paired
bootstrap on cases with a known answer, bad input refused before training, and a tiny real run."""

from __future__ import annotations

import numpy as np
import pytest

from autoscale_core.executor import SerialExecutor
from autoscale_core.experiments import (
    BootstrapDraws,
    ProtocolConfig,
    ProtocolResult,
    SplitScenes,
    bootstrap_means,
    brmr_point,
    budget_to_match,
    default_random_budgets,
    monotone_curve,
    run_selection_protocol,
    summarize,
)


def test_monotone_curve_pools_violators():
    assert monotone_curve([1, 2, 3, 4], [1.0, 3.0, 2.0, 4.0]).tolist() == [1.0, 2.5, 2.5, 4.0]
    assert monotone_curve([1, 2, 3], [5.0, 4.0, 3.0]).tolist() == [4.0, 4.0, 4.0]
    with pytest.raises(ValueError, match="strictly increasing"):
        monotone_curve([2, 1], [0.0, 1.0])


def test_budget_to_match_interpolates_in_log_budget_and_censors():
    budgets, curve = np.array([100.0, 200.0, 400.0]), np.array([10.0, 20.0, 30.0])
    matched, censored = budget_to_match(budgets, curve, 25.0)
    assert matched == pytest.approx(np.sqrt(200 * 400)) and censored == ""
    assert budget_to_match(budgets, curve, 5.0) == (100.0, "lower")
    assert budget_to_match(budgets, curve, 35.0) == (400.0, "upper")
    ratio, censored = brmr_point(100, 25.0, budgets, curve)
    assert ratio == pytest.approx(100 / np.sqrt(200 * 400)) and censored == ""


def test_default_random_budgets_reach_beyond_the_method_budgets():
    rb = default_random_budgets([250, 500, 1000, 2000], 10_000)
    assert len(rb) >= 6 and rb[0] < 250 and rb[-1] > 2000
    assert set([250, 500, 1000, 2000]) <= set(rb)


def _fake_result(shift_log2: float, noise: float = 2.0, splits: int = 3, seeds: int = 2, scenes: int = 200) -> ProtocolResult:
    """Random scores 10·log2(b) + paired noise; the method at b scores like random at b·2^shift."""
    rng = np.random.default_rng(0)
    shared = rng.normal(0, noise, size=(splits, seeds, scenes))  # same scene/seed noise for every row
    budgets, random_budgets = [100, 200, 400], [50, 100, 200, 400, 800, 1600]
    per_scene = {("random", b): (10 * np.log2(b) + shared) / 100 for b in random_budgets}
    per_scene.update({("method", b): (10 * np.log2(b * 2**shift_log2) + shared) / 100 for b in budgets})
    return ProtocolResult(rows=[], per_scene=per_scene, splits=[f"s{i}" for i in range(splits)], seeds=list(range(seeds)),
                          budgets=budgets, random_budgets=random_budgets, config={"bootstrap": 200, "level": 0.95})


def test_brmr_interval_has_the_known_answer():
    summary = summarize(_fake_result(shift_log2=1.0), replicates=200)
    for item in summary["pooled"]["methods"]["method"]["brmr"]:
        # Twice as efficient as random: BRMR 0.5 in every replicate (noise is paired, curve log-linear).
        assert item["mean"] == pytest.approx(0.5, rel=1e-3)
        assert item["lo"] == pytest.approx(0.5, rel=1e-3) and item["hi"] == pytest.approx(0.5, rel=1e-3)
    for item in summary["pooled"]["methods"]["method"]["vs_random"]:
        assert item["mean"] == pytest.approx(10.0, abs=1e-3)  # 10 · log2(2) points at every budget
    assert set(summary["per_split"]) == {"s0", "s1", "s2"}
    assert summary["curves"]["method"]["budget"] == [100, 200, 400]


def test_bootstrap_interval_covers_the_mean_and_widens_with_noise():
    quiet = summarize(_fake_result(shift_log2=0.0, noise=0.5), replicates=300)["pooled"]["methods"]["method"]["epdms"][0]
    loud = summarize(_fake_result(shift_log2=0.0, noise=5.0), replicates=300)["pooled"]["methods"]["method"]["epdms"][0]
    for item in (quiet, loud):
        assert item["lo"] <= item["mean"] <= item["hi"]
    assert (loud["hi"] - loud["lo"]) > 3 * (quiet["hi"] - quiet["lo"])


def test_bootstrap_means_without_resampling_equal_the_plain_mean():
    data = np.random.default_rng(1).random((2, 3, 2, 10))
    draws = BootstrapDraws(split_index=np.array([[0, 1, 2]]), seed_index=np.array([[[0, 1]] * 3]),
                           scene_weight=np.ones((1, 3, 10), dtype=np.float32))
    assert np.allclose(bootstrap_means(data, draws)[:, 0], data.mean(axis=(1, 2, 3)))


def test_censored_brmr_is_flagged():
    summary = summarize(_fake_result(shift_log2=3.0), replicates=50)  # 8x: beyond random's largest budget at b=400
    last = summary["pooled"]["methods"]["method"]["brmr"][-1]
    assert last["censored"] == "upper" and last["mean"] == pytest.approx(400 / 1600)


@pytest.fixture(scope="module")
def tiny_split():
    from autoscale_core.world import BALANCED_MIX, LOG_LIKE_MIX, generate_world

    world = generate_world(90, seed=5, domain_mix=LOG_LIKE_MIX)
    order = np.random.default_rng(0).permutation(len(world))
    return SplitScenes("tiny", base=world.subset(np.sort(order[:20])), pool=world.subset(np.sort(order[20:])),
                       val=generate_world(20, seed=6, domain_mix=BALANCED_MIX),
                       test=generate_world(30, seed=7, domain_mix=BALANCED_MIX))


@pytest.mark.parametrize("change, message", [
    ({"budgets": (10, 70)}, "smaller than the pool"),
    ({"seeds": (0,)}, "at least 2 distinct training seeds"),
    ({"methods": ("stratified", "oracle_magic")}, "unknown method"),
    ({"random_budgets": (5, 10, 20)}, ">= 6 distinct budgets"),
    ({"methods": ("random_best_of_val",)}, "together with 'mosaic'"),
    ({"domain_key": "weather"}, "no metadata column 'weather'"),
])
def test_bad_config_is_refused_before_any_training(tiny_split, change, message):
    config = ProtocolConfig(**{"budgets": (5, 10), "seeds": (0, 1), "methods": ("stratified",), "steps": 2, **change})
    with pytest.raises(ValueError, match=message):
        run_selection_protocol([tiny_split], config, executor=SerialExecutor())


def test_a_test_domain_missing_from_the_pool_is_refused(tiny_split):
    pool = tiny_split.pool
    keep = np.flatnonzero(np.asarray(pool.meta["topology"]) != "roundabout")
    split = SplitScenes("no-roundabout", tiny_split.base, pool.subset(keep), tiny_split.val, tiny_split.test)
    if "roundabout" not in set(np.asarray(split.test.meta["topology"])):
        pytest.skip("the tiny test set happens to have no roundabout")
    with pytest.raises(ValueError, match="no scene in the pool"):
        run_selection_protocol([split], ProtocolConfig(budgets=(5, 10), seeds=(0, 1), methods=("stratified",)),
                               executor=SerialExecutor())


def test_external_methods_need_their_scorer(tiny_split):
    with pytest.raises(ValueError, match="need external scorers"):
        run_selection_protocol([tiny_split], ProtocolConfig(budgets=(5, 10), seeds=(0, 1), methods=("fo_uniqueness",)),
                               executor=SerialExecutor())


def test_tiny_protocol_runs_end_to_end(tiny_split):
    config = ProtocolConfig(budgets=(6, 12), seeds=(0, 1), methods=("stratified", "hard_mining", "mosaic", "random_best_of_val"),
                            steps=3, batch_size=16, pilot_seeds=2, mc_passes=2, bootstrap=50)
    result = run_selection_protocol([tiny_split], config, executor=SerialExecutor())
    random_budgets = default_random_budgets((6, 12), len(tiny_split.pool))
    assert result.random_budgets == random_budgets
    expected_rows = 2 * len(random_budgets) + 4 * 2 * 2
    assert len(result.rows) == expected_rows
    assert result.per_scene[("mosaic", 6)].shape == (1, 2, len(tiny_split.test))
    trainings = {r["method"]: r["trainings"] for r in result.rows}
    assert trainings["random"] == 0 and trainings["stratified"] == 0 and trainings["hard_mining"] == 1
    assert trainings["mosaic"] > 1 and 1 <= trainings["random_best_of_val"] <= trainings["mosaic"]
    fits = result.diagnostics["tiny"]["mosaic"]["fits"]
    assert set(fits) == set(np.asarray(tiny_split.pool.meta["topology"]))
    summary = result.summary()
    assert set(summary["methods"]) == {"stratified", "hard_mining", "mosaic", "random_best_of_val"}
    assert summary["verdict"]["method"] == "mosaic"


def test_brain_scores_come_from_fiftyone_brain(fo):
    from fiftyone_plugin.engine.brain_scores import brain_scores

    rng = np.random.default_rng(0)
    pool, base = rng.normal(size=(60, 8)), rng.normal(size=(20, 8))
    for method in ("uniqueness", "representativeness"):
        scores = brain_scores(pool, base, method)
        assert scores.shape == (60,) and np.isfinite(scores).all()
    with pytest.raises(ValueError, match="unknown FiftyOne Brain method"):
        brain_scores(pool, base, "novelty")
    assert not [name for name in fo.list_datasets() if name.startswith("autoscale-brain-")]


def test_domain_mix_sets_the_topology_shares():
    from autoscale_core.world import generate_world

    only = generate_world(40, seed=3, domain_mix={"roundabout": 1.0})
    assert set(np.asarray(only.meta["topology"])) == {"roundabout"}
    for bad, message in (({"moon_base": 1.0}, "unknown topology"), ({"roundabout": -1.0}, "non-negative"),
                         ({"roundabout": 0.0}, "not all zero")):
        with pytest.raises(ValueError, match=message):
            generate_world(5, seed=3, domain_mix=bad)


def test_checkpointed_splits_are_reused_on_rerun(tiny_split, tmp_path):
    config = ProtocolConfig(budgets=(6, 12), seeds=(0, 1), methods=("stratified",), steps=2, batch_size=16, mc_passes=2)
    first = run_selection_protocol([tiny_split], config, executor=SerialExecutor(), checkpoint_dir=str(tmp_path))
    messages: list[str] = []
    second = run_selection_protocol([tiny_split], config, executor=SerialExecutor(), checkpoint_dir=str(tmp_path),
                                    progress=messages.append)
    assert any("loaded from the checkpoint" in m for m in messages) and not any("training" in m for m in messages)
    assert [r["test_epdms"] for r in first.rows] == [r["test_epdms"] for r in second.rows]
    for key, values in first.per_scene.items():
        assert np.array_equal(values, second.per_scene[key])
    from autoscale_core.experiments import load_checkpoints

    loaded = load_checkpoints(str(tmp_path))  # summarize a stopped run without its scenes
    assert loaded.splits == ["tiny"] and loaded.budgets == [6, 12] and loaded.seeds == [0, 1]
    for key, values in first.per_scene.items():
        assert np.array_equal(values, loaded.per_scene[key])
    assert loaded.summary(replicates=20)["methods"] == ["stratified"]


def test_epoch_schedule_trains_bigger_sets_longer():
    from autoscale_core.selection.oracle import schedule_steps

    assert schedule_steps(5000, 150, None, 128) == 150  # fixed schedule: size does not matter
    assert schedule_steps(1000, 50, 10.0, 128) == 79  # ceil(10 * 1000 / 128)
    assert schedule_steps(100, 50, 10.0, 128) == 50  # the minimum
    with pytest.raises(ValueError, match="epochs must be > 0"):
        schedule_steps(100, 50, 0.0, 128)
    with pytest.raises(ValueError, match="epochs must be > 0"):
        ProtocolConfig(epochs=-1.0).check()


def test_extra_test_set_is_scored_summarized_and_checkpointed(tiny_split, tmp_path):
    from autoscale_core.experiments import load_checkpoints
    from autoscale_core.world import BALANCED_MIX, generate_world

    extra = generate_world(12, seed=8, domain_mix=BALANCED_MIX)
    split = SplitScenes("tiny-extra", tiny_split.base, tiny_split.pool, tiny_split.val, tiny_split.test,
                        extra_tests={"real": extra})
    config = ProtocolConfig(budgets=(6, 12), seeds=(0, 1), methods=("stratified",), steps=2, batch_size=16,
                            epochs=1.0, mc_passes=2, bootstrap=20)
    result = run_selection_protocol([split], config, executor=SerialExecutor(), checkpoint_dir=str(tmp_path))
    assert result.extra_per_scene["real"][("stratified", 6)].shape == (1, 2, 12)
    row = next(r for r in result.rows if r["method"] == "stratified" and r["budget"] == 6 and r["seed"] == 0)
    assert row["extra_epdms"]["real"] == pytest.approx(100 * result.extra_per_scene["real"][("stratified", 6)][0, 0].mean())
    block = result.summary()["extra_tests"]["real"]
    assert block["scenes"] == 12 and len(block["methods"]["stratified"]["vs_random"]) == 2
    loaded = load_checkpoints(str(tmp_path))
    for key, values in result.extra_per_scene["real"].items():
        assert np.array_equal(values, loaded.extra_per_scene["real"][key])


def test_cli_refuses_bad_input_before_writing_anything(tmp_path, capsys):
    from fiftyone_plugin.cli import main

    out = tmp_path / "out"
    for argv, message in ((["--seeds", "0"], "at least 2 distinct training seeds"),
                          (["--budgets", "50,20000", "--pool", "1000"], "smaller than the pool"),
                          (["--methods", "stratified,psychic"], "unknown method"),
                          (["--budgets", "10,x"], "comma-separated integers"),
                          (["--real-test", str(tmp_path / "nowhere")], "do not exist")):
        code = main(["experiment", "selection", "--out", str(out), *argv])
        assert code != 0 and message in capsys.readouterr().err
        assert not out.exists()


def test_experiment_on_a_dataset_records_the_run_the_panel_plots(fo, dataset_name, autoscale_home, tmp_path):
    from fiftyone_plugin.cli import main
    from fiftyone_plugin.engine.summary import engine_summary

    name = dataset_name("protocol")
    assert main(["world", "--scenes", "200", "--dataset", name]) == 0
    out = tmp_path / "out"
    argv = ["experiment", "selection", "--dataset", name, "--base", "40", "--budgets", "5,10,20,40", "--seeds", "0,1",
            "--steps", "3", "--batch-size", "16", "--methods", "stratified,hard_mining", "--mc-passes", "2",
            "--bootstrap", "50", "--executor", "serial", "--out", str(out)]
    assert main(argv) == 0
    assert (out / "selection_protocol.json").exists() and (out / "selection_protocol.png").exists()
    protocol = engine_summary(fo.load_dataset(name))["protocol"]
    assert set(protocol["curves"]) == {"random", "stratified", "hard_mining"}
    assert protocol["curves"]["stratified"]["budget"] == [5, 10, 20, 40]
    assert all(lo <= e <= hi for lo, e, hi in zip(*(protocol["curves"]["stratified"][k] for k in ("lo", "epdms", "hi"))))
