"""`autoscale hard-split --source ...` on a FiftyOne dataset (real embedded MongoDB): the independent
hard split is added with split="hard", recorded in the run, and shares no parent with training."""

import pytest


@pytest.fixture
def world_dataset(fo, dataset_name, autoscale_home):
    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import scenes

    batch = generate_world(16, seed=0)
    return scenes.create_scene_dataset(dataset_name("hard"), batch, render_images=False)


def test_cli_hard_split_sources_are_independent_of_training(fo, world_dataset, capsys):
    from fiftyone_plugin.cli import main
    from fiftyone_plugin.engine.runs import get_run

    F = fo.ViewField
    ds = world_dataset
    assert main(["synthesize", "--dataset", ds.name, "--split", "train", "--limit", "6", "--scenes-per-parent", "1",
                 "--seed", "1", "--executor", "serial", "--no-render"]) == 0
    capsys.readouterr()
    code = main(["hard-split", "--dataset", ds.name, "--holdout-fraction", "0.6", "--source", "dataset",
                 "--source", "world:90001:8"])
    out = capsys.readouterr().out
    assert code == 0, out
    hard = ds.match(F("split") == "hard")
    assert len(hard) > 0 and set(hard.distinct("hard_source")) == {"dataset", "world:90001:8"}
    # No hard scene derives from a training scene or from the parent of a synthetic training scene.
    train = ds.match(F("split") == "train")
    training = set(train.values("scene_id")) | {p for p in train.values("parent_id") if p}
    hard_parents = {p or s for p, s in zip(hard.values("parent_id"), hard.values("scene_id"))}
    assert hard_parents.isdisjoint(training)
    assert set(hard.match(F("source") == "synthetic").values("expert")) == {"logged"}
    run = get_run(ds, "hard_split_0")
    assert run["config"]["sources"] == ["dataset", "world:90001:8"]
    assert run["results"]["shared_parents_with_training"] == 0
    # A world seed the dataset already trains on is refused, and nothing is written.
    before = len(ds)
    assert main(["hard-split", "--dataset", ds.name, "--source", "world:0:4", "--seed", "1"]) == 1
    assert "seed" in capsys.readouterr().err and len(ds) == before
    assert main(["hard-split", "--dataset", ds.name, "--source", "carla:1"]) == 1
    assert "unknown hard-split source" in capsys.readouterr().err
