"""Planner training / evaluation on real FiftyOne datasets (embedded MongoDB), operators and CLI."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture
def planning_dataset(fo, dataset_name, autoscale_home, small_world_batch):
    from fiftyone_plugin.engine import scenes

    return scenes.create_scene_dataset(dataset_name("plan"), small_world_batch, render_images=False)


def test_train_and_evaluate_on_view_write_fields_and_runs(planning_dataset):
    from fiftyone_plugin.engine.planning import evaluate_planner_on_view, train_planner_on_view
    from fiftyone_plugin.engine.runs import get_run

    ds = planning_dataset
    ds.set_values("w", [1.0] * (len(ds) - 2) + [0.0, 0.0])
    out = train_planner_on_view(ds, planner="regression", key="reg", steps=20, seed=0, weight_field="w")
    run = get_run(ds, "reg")
    assert run["method"] == "train_planner" and run["results"]["fingerprint"] == out["fingerprint"]
    assert run["config"]["weight_field"] == "w" and out["num_train"] + out["num_val"] == len(ds) - 2

    summary = evaluate_planner_on_view(ds, "reg", key="reg")
    assert summary["num_scenes"] == len(ds)
    epdms = np.asarray(ds.values("eval_reg_epdms"), dtype=float)
    assert epdms.shape == (len(ds),) and ((epdms >= 0) & (epdms <= 1)).all()
    assert abs(epdms.mean() - summary["epdms"]) < 1e-6
    for suffix in ("nc", "dac", "ttc", "l2_1s", "l2_2s", "l2_3s", "collision"):
        assert ds.has_field(f"eval_reg_{suffix}"), suffix
    assert get_run(ds, "eval_reg")["results"]["aggregates"]["epdms"] == pytest.approx(summary["epdms"])

    expert = evaluate_planner_on_view(ds, "logged_expert", key="expert")
    assert np.allclose(np.asarray(ds.values("eval_expert_l2_3s"), dtype=float), 0.0)
    assert expert["epdms"] >= 0.5


def test_bad_planning_inputs_write_nothing(planning_dataset):
    from fiftyone_plugin.engine.planning import evaluate_planner_on_view, train_planner_on_view

    ds = planning_dataset
    ds.set_values("bad_w", [0.0] * len(ds))
    with pytest.raises(ValueError, match="all zero"):
        train_planner_on_view(ds, key="r0", steps=5, weight_field="bad_w")
    with pytest.raises(ValueError, match="does not exist"):
        train_planner_on_view(ds, key="r1", steps=5, weight_field="nope")
    with pytest.raises(ValueError, match="empty"):
        train_planner_on_view(ds.limit(0), key="r2", steps=5)
    with pytest.raises(ValueError, match="neither a baseline"):
        evaluate_planner_on_view(ds, "no_such_run")
    assert not ds.has_run("r0") and not any(f.startswith("eval_") for f in ds.get_field_schema())


def test_cli_train_and_evaluate(planning_dataset, capsys):
    from fiftyone_plugin.cli import COMMAND_MODULES, main

    assert "fiftyone_plugin.cli.planning" in COMMAND_MODULES
    name = planning_dataset.name
    assert main(["train", "--dataset", name, "--steps", "10", "--key", "cli_reg"]) in (0, None)
    assert main(["evaluate", "--dataset", name, "--planner", "cli_reg"]) in (0, None)
    assert planning_dataset.has_field("eval_cli_reg_epdms")
    assert main(["evaluate", "--dataset", name, "--planner", "constant_velocity", "--key", "cv",
                 "--executor", "process:2"]) in (0, None)
    assert "epdms" in capsys.readouterr().out
    assert main(["evaluate", "--dataset", name, "--planner", "rule", "--executor", "dask"]) == 1
    assert "executor" in capsys.readouterr().err and not planning_dataset.has_field("eval_rule_epdms")
