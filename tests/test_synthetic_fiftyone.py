"""Synthetic scenes as FiftyOne samples (real embedded MongoDB): bulk write, lineage, errors, operator."""

from pathlib import Path

import numpy as np
import pytest

OPERATOR_URI = "@autoscale/autoscale/generate_synthetic_scenes"


@pytest.fixture
def real_dataset(fo, dataset_name, autoscale_home, road_batch):
    from fiftyone_plugin.engine import scenes

    return scenes.create_scene_dataset(dataset_name("syn"), road_batch.subset(np.arange(6)))


def test_generate_writes_linked_synthetic_samples(fo, real_dataset):
    from fiftyone_plugin.engine.runs import get_run
    from fiftyone_plugin.engine.synthetic import generate_synthetic_samples

    F = fo.ViewField
    ds = real_dataset
    summary = generate_synthetic_samples(ds.view(), scenes_per_parent=2, lateral_range=(-1.5, 1.5), seed=3)
    assert summary["added"] == summary["generated"] == 12
    syn = ds.match(F("source") == "synthetic")
    assert len(syn) == 12 and len(ds) == 18
    real_split = dict(zip(ds.values("scene_id"), ds.values("split")))
    for sample in syn.select_fields(["scene_id", "parent_id", "split", "perturb_lateral", "round", "expert",
                                     "label_epdms"]).iter_samples():
        assert sample.scene_id.startswith(sample.parent_id + "-syn1-")
        assert sample.split == real_split[sample.parent_id]  # no train/test leakage through children
        assert abs(sample.perturb_lateral) <= 1.5 and sample.round == 1 and sample.expert == "recovery"
        assert 0.0 <= sample.label_epdms <= 1.0
    first = syn.first()
    assert Path(first.filepath).is_file() and len(first.agents.polylines) > 0
    # The arrays round-trip through the store and still validate.
    from fiftyone_plugin.engine.scenes import load_scenes

    load_scenes(syn).validate()
    run = get_run(ds, "synthetic_3")
    assert run["method"] == "simscale_synthetic" and run["results"]["generated"] == 12
    # Same request again: deterministic ids, nothing duplicated.
    real = ds.match(F("source") != "synthetic")
    again = generate_synthetic_samples(real, scenes_per_parent=2, lateral_range=(-1.5, 1.5), seed=3)
    assert again["added"] == 0 and again["already_present"] == 12 and len(ds) == 18
    # Round 2 from the synthetic scenes: parents are in the dataset.
    more = generate_synthetic_samples(syn, scenes_per_parent=1, seed=3, run_key="synthetic_r2")
    assert more["added"] == 12
    child = ds.match(F("parent_id") == first.scene_id).first()
    assert child.split == first.split


def test_bad_inputs_write_nothing(fo, real_dataset):
    from fiftyone_plugin.engine.synthetic import generate_synthetic_samples

    F = fo.ViewField
    ds = real_dataset
    with pytest.raises(ValueError, match="empty"):
        generate_synthetic_samples(ds.match(F("city") == "atlantis"))
    with pytest.raises(ValueError, match="lateral"):
        generate_synthetic_samples(ds.view(), lateral_range=(-8.0, 8.0))
    with pytest.raises(ValueError, match="scenes_per_parent"):
        generate_synthetic_samples(ds.view(), scenes_per_parent=0)
    with pytest.raises(ValueError, match="expert"):
        generate_synthetic_samples(ds.view(), expert="oracle")
    assert len(ds) == 6
    summary = generate_synthetic_samples(ds.limit(2), scenes_per_parent=1, seed=1, rewards_only=True)
    assert len(ds) == 8
    from autoscale_core.synthetic.labels import load_rewards

    rewards = load_rewards(summary["rewards_path"])
    assert sorted(rewards["scene_id"]) == sorted(ds.match(F("source") == "synthetic").values("scene_id"))
    assert rewards["epdms"].shape == (2, len(rewards["vocabulary"]))
    # Synthetic scenes whose parents were deleted: a clear error, nothing added.
    parents = ds.match(F("source") == "synthetic").values("parent_id")
    ds.delete_samples(ds.match(F("scene_id").is_in(parents)))
    with pytest.raises(ValueError, match="parent"):
        generate_synthetic_samples(ds.match(F("source") == "synthetic"), seed=2)
    assert len(ds) == 6 and len(ds.match(F("source") == "synthetic")) == 2


def test_hard_split_samples(fo, real_dataset):
    from fiftyone_plugin.engine.synthetic import build_hard_split_samples

    F = fo.ViewField
    ds = real_dataset
    summary = build_hard_split_samples(ds, seed=0, holdout_fraction=0.5, rare_fraction=1.0)
    hard = ds.match(F("split") == "hard")
    assert len(hard) == summary["perturbed"] + summary["holdout_real"]
    perturbed = hard.match(F("source") == "synthetic")
    assert len(perturbed) == summary["perturbed"] > 0
    assert set(perturbed.values("parent_id")) <= set(hard.values("scene_id"))




def test_operator_immediate_and_delegated(fo, real_dataset, plugin_link):
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    ds = real_dataset
    F = fo.ViewField
    params = {"scenes_per_parent": 1, "lateral_min": -1.0, "lateral_max": 1.0, "speed_min": -2.0,
              "speed_max": 2.0, "expert": "recovery", "rounds": 1, "seed": 5}
    result = foo.execute_operator(OPERATOR_URI, view=ds.limit(3), params=params)
    assert result.error is None, result.error_message
    assert result.result["added"] == 3 and len(ds.match(F("source") == "synthetic")) == 3
    with pytest.raises(Exception, match="lateral"):
        foo.execute_operator(OPERATOR_URI, view=ds.view(), params=dict(params, lateral_max=9.0))
    queued = foo.execute_operator(OPERATOR_URI, view=ds.skip(3).limit(2), params=dict(params, seed=6),
                                  request_delegation=True)
    assert queued.error is None and queued.delegated
    results = DelegatedOperationService().execute_queued_operations(operator=OPERATOR_URI, dataset_name=ds.name)
    assert len(results) == 1 and results[0].error is None, results[0].error
    assert len(ds.match(F("source") == "synthetic")) == 5


def test_cli_synthesize_and_hard_split(fo, real_dataset, capsys):
    from fiftyone_plugin.cli import main

    F = fo.ViewField
    ds = real_dataset
    code = main(["synthesize", "--dataset", ds.name, "--limit", "3", "--scenes-per-parent", "2",
                 "--lateral", "-1", "1", "--speed", "-2", "2", "--seed", "4", "--executor", "serial"])
    out = capsys.readouterr().out
    assert code == 0 and '"added": 6' in out
    assert len(ds.match(F("source") == "synthetic")) == 6
    code = main(["synthesize", "--dataset", ds.name, "--lateral", "-9", "9"])
    err = capsys.readouterr().err
    assert code == 1 and "lateral" in err and len(ds) == 12
    code = main(["synthesize", "--dataset", ds.name, "--executor", "dask"])
    assert code == 1 and "executor" in capsys.readouterr().err and len(ds) == 12
    code = main(["synthesize", "--dataset", ds.name, "--split", "nonexistent-split"])
    assert code == 1 and "empty" in capsys.readouterr().err
    # Scenes with synthetic (training) children are never held out: the other 3 are (fraction 1).
    code = main(["hard-split", "--dataset", ds.name, "--holdout-fraction", "1.0"])
    assert code == 0 and len(ds.match(F("split") == "hard")) > 0
    with_children = set(ds.match((F("source") == "synthetic") & (F("split") != "hard")).values("parent_id"))
    assert with_children.isdisjoint(ds.match(F("split") == "hard").values("scene_id"))
