"""Operator forms of the planning and selection operators (train_planner, evaluate_planner,
fit_scaling_laws, allocate_budget, optimize_mixture, select_active) through FiftyOne's operator
execution API on real datasets (real embedded MongoDB): a bad input gives an invalid form with a
readable message, execution fails with that message and changes nothing; cheap valid runs write
what they say and show it in the App (notification + view)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from operator_form_helpers import _app_calls, _execute, _form, _rejects

pytestmark = pytest.mark.usefixtures("plugin_link")



@pytest.fixture
def road_dataset(fo, dataset_name, autoscale_home, road_batch):
    """8 hand-built scenes (no images): 6 train, 2 val; a numeric weight ``w`` with one negative value."""
    from fiftyone_plugin.engine import scenes

    ds = scenes.create_scene_dataset(dataset_name("engine-forms"), road_batch, render_images=False)
    ids = road_batch.meta["scene_id"].tolist()
    scenes.write_scene_fields(ds, {"split": ["train"] * 6 + ["val"] * 2,
                                   "w": [1.0, 1.0, -1.0, 1.0, 1.0, 1.0, 1.0, 1.0]}, scene_ids=ids)
    return ds


def _error(props, name: str = "error") -> str:
    assert props[name].invalid, f"{name} is valid"
    return props[name].error_message


# ------------------------------------------------------------------------------ planning
def test_train_planner_form_rejects_bad_inputs(road_dataset):
    from fiftyone_plugin.engine.planning import planner_dir
    from fiftyone_plugin.operators.planning import TrainPlanner

    ds = road_dataset
    props = _form(TrainPlanner, ds, {})
    assert "view_target" in props and "error" not in props
    assert set(props["planner"].type.values) == {"regression", "scoring"}  # a radio, not free text
    assert props["key"].default == "planner_regression"
    weights = props["weight_field"].type.values
    assert "" in weights and "w" in weights and "city" not in weights and "t0" not in weights  # numeric results
    msg = "weight field 'w': sample_weight contains 1 negative values"
    assert msg in _error(_form(TrainPlanner, ds, {"weight_field": "w"}))
    _rejects("train_planner", ds, {"weight_field": "w", "steps": 5}, msg)
    _rejects("train_planner", ds, {"weight_field": "city", "steps": 5}, "weight field 'city' is not a numeric field")
    _rejects("train_planner", ds, {"planner": "mlp", "steps": 5}, "planner 'mlp' must be one of")
    _rejects("train_planner", ds, {"key": "bad key!", "steps": 5}, "run key 'bad key!' must be letters")
    _rejects("train_planner", ds, {"steps": 5, "view_target": "SELECTED_SAMPLES"}, "nothing to train on", selected=[])
    assert not planner_dir(ds).exists()


def test_evaluate_planner_form_and_baseline_run(road_dataset, monkeypatch):
    from fiftyone_plugin.operators.planning import EvaluatePlanner

    monkeypatch.delenv("AUTOSCALE_EXECUTOR", raising=False)
    ds = road_dataset
    props = _form(EvaluatePlanner, ds, {})
    assert set(props["executor"].type.values) == {"serial", "process", "ray"} and props["executor"].default == "serial"
    _rejects("evaluate_planner", ds, {"planner": "rule", "executor": "dask"}, "executor: 'dask' is not one of")
    assert "view_target" in props and "error" not in props
    assert props["planner"].type.values == ["constant_velocity", "logged_expert", "rule"]  # no training runs yet
    assert props["planner"].default == "rule"
    _rejects("evaluate_planner", ds, {"planner": "no_such_run"},
             "planner 'no_such_run' is neither a baseline ('constant_velocity', 'logged_expert', 'rule') nor a training run")
    _rejects("evaluate_planner", ds, {"planner": "rule", "key": "9x"}, "evaluation key '9x' must be letters")
    _rejects("evaluate_planner", ds, {"planner": "rule", "view_target": "SELECTED_SAMPLES"},
             "nothing to evaluate", selected=[])

    view = ds.limit(5)
    result = _execute("evaluate_planner", ds, {"planner": "rule", "view_target": "CURRENT_VIEW"}, view=view)
    assert result.error is None, result.error_message
    assert result.result["run"] == "eval_rule" and result.result["num_scenes"] == 5
    assert ds.count("eval_rule_epdms") == 5 and "eval_rule" in ds.list_runs()
    epdms = np.asarray(view.values("eval_rule_epdms"))
    assert result.result["epdms"] == pytest.approx(epdms.mean(), abs=1e-6)
    app = _app_calls(result, ds)
    shown = app["set_view"].values("eval_rule_epdms")
    assert len(shown) == 5 and shown == sorted(shown)  # the evaluated scenes, lowest EPDMS first
    assert "EPDMS" in app["notify"] and "eval_rule_*" in app["notify"]
    # Once written, the form says the fields will be replaced.
    assert "key_note" in _form(EvaluatePlanner, ds, {"planner": "rule"})


# ------------------------------------------------------------------------------ scaling laws / MOSAIC / mixture
def test_fit_scaling_laws_form_rejects_bad_inputs(road_dataset):
    from fiftyone_plugin.operators.selection import FitScalingLaws

    ds = road_dataset
    props = _form(FitScalingLaws, ds, {"budget": 2})
    assert "view_target" in props and "error" not in props, props.get("error") and props["error"].error_message
    domains = set(props["domain_field"].type.values)
    assert {"topology", "city"} <= domains and "w" not in domains and props["domain_field"].default == "topology"
    assert props["name"].default == "pilot-1" and props["executor"].default == "process"
    params = {"name": "topo", "budget": 2, "steps": 3, "executor": "serial"}
    _rejects("fit_scaling_laws", ds, dict(params, domain_field="nope"), "domain field 'nope' is not available")
    _rejects("fit_scaling_laws", ds, dict(params, budget=9), "budget 9 is larger than the pool (6 scenes)")
    _rejects("fit_scaling_laws", ds, dict(params, budget=6),
             "budget 6 is larger than the 5 candidates left once the 1 base (split=train) and 2 val scenes")
    _rejects("fit_scaling_laws", ds, dict(params, pilot_fractions="a,b"), "expected comma-separated numbers")
    _rejects("fit_scaling_laws", ds, dict(params, importance_field="eval_x_epdms"),
             "EPDMS field 'eval_x_epdms' is not available")
    _rejects("fit_scaling_laws", ds, dict(params, name="bad name"), "scaling-law name 'bad name'")


def test_allocate_and_optimize_forms_reject_bad_inputs(road_dataset):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.operators.selection import AllocateBudget, OptimizeMixture

    ds = road_dataset
    props = _form(AllocateBudget, ds, {"budget": 2})
    assert "error" not in props and props["fits_from"].type.values == [""] and "pilot_fractions" in props
    params = {"name": "mosaic-x", "budget": 2, "steps": 3, "executor": "serial"}
    _rejects("allocate_budget", ds, dict(params, fits_from="topo"),
             "scaling laws 'topo' do not exist on dataset")
    _rejects("allocate_budget", ds, dict(params, budget=0), "budget must be at least 1, got 0")
    # A cluster field that only some scenes have: the message says to cluster them.
    scenes.write_scene_fields(ds.limit(4), {"cluster_handcrafted": ["c0", "c1", "c0", "c1"]})
    props = _form(AllocateBudget, ds, dict(params, domain_field="cluster_handcrafted"))
    assert "cluster_handcrafted" in props["domain_field"].type.values
    _rejects("allocate_budget", ds, dict(params, domain_field="cluster_handcrafted"),
             "2 of the 6 pool scenes have no 'cluster_handcrafted': run cluster_scenes on them first")

    props = _form(OptimizeMixture, ds, {"budget": 2})
    assert "error" not in props and "num_clusters" in props
    assert props["cluster_field"].type.values == ["", "cluster_handcrafted"]
    params = {"name": "mix", "budget": 2, "rounds": 1, "steps": 3, "executor": "serial"}
    _rejects("optimize_mixture", ds, dict(params, failure_quantile=1.0), "failure_quantile must be in (0, 1)")
    _rejects("optimize_mixture", ds, dict(params, embedding_field="emb_graph_rae"),
             "embedding field 'emb_graph_rae' is not available on dataset")
    _rejects("optimize_mixture", ds, dict(params, budget=6), "budget 6 is larger than the 5 candidates")
    _rejects("optimize_mixture", ds, dict(params, view_target="SELECTED_SAMPLES"),
             "budget 2 is larger than the pool (0 scenes)", selected=[])


# ------------------------------------------------------------------------------ active selection
def test_select_active_needs_value_scores_and_embeddings(road_dataset):
    from fiftyone_plugin.operators.selection import SelectActive

    ds = road_dataset
    props = _form(SelectActive, ds, {"budget": 3})
    assert "view_target" in props and props["name"].default == "active-1"
    assert set(props["method"].type.values) == {"value_topm", "hard_mining", "random", "coreset", "uncertainty"}
    hard = _form(SelectActive, ds, {"budget": 3, "method": "hard_mining"})
    assert hard["importance_field"].default == ""  # no EPDMS field yet: a planner trained on the base set
    assert "run compute_value_scores first" in _error(props)
    _rejects("select_active", ds, {"name": "q3", "budget": 3}, "no 'value_q' yet: run compute_value_scores first")
    _rejects("select_active", ds, {"name": "r3", "budget": 3, "components": ["R"]},
             "no 'value_r' yet: run compute_value_scores first")
    _rejects("select_active", ds, {"name": "c3", "budget": 3, "method": "coreset"},
             "coreset needs scene embeddings: run compute_scene_embeddings first")
    _rejects("select_active", ds, {"name": "u3", "budget": 3, "method": "uncertainty"},
             "uncertainty needs a per-scene uncertainty field: run compute_value_scores first")
    _rejects("select_active", ds, {"name": "q3", "budget": 3, "method": "value_topm", "components": ["X"]},
             "components: choose a non-empty subset")
    _rejects("select_active", ds, {"name": "bad name", "budget": 3, "method": "random"}, "selection name 'bad name'")
    _rejects("select_active", ds, {"name": "h3", "budget": 3, "method": "hard_mining", "importance_field": "eval_x_epdms"},
             "eval_x_epdms")


def test_select_active_valid_run_then_name_taken(road_dataset):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.operators.selection import SelectActive

    ds = road_dataset
    q = np.array([0.1, 0.9, 0.3, 0.8, 0.2, 0.7, 0.4, 0.6])
    scenes.write_scene_fields(ds, {"value_q": q})  # as compute_value_scores writes it
    assert "error" not in _form(SelectActive, ds, {"budget": 3})
    result = _execute("select_active", ds, {"name": "q3", "budget": 3})
    assert result.error is None, result.error_message
    ids = ds.values("scene_id")
    expected = [ids[i] for i in np.argsort(-q)[:3]]
    assert ds.load_saved_view("q3").values("scene_id") == expected  # rank order
    assert sorted(ds.match_tags("sel:q3").values("scene_id")) == sorted(expected)
    assert result.result == {**result.result, "name": "q3", "budget": 3, "run_key": "sel_q3"}
    app = _app_calls(result, ds)
    assert app["set_view"] == "q3" and "Selected 3 scenes as sel:q3" in app["notify"]

    # The name is now taken: inline error unless "Replace" is ticked.
    props = _form(SelectActive, ds, {"name": "q3", "budget": 2})
    assert "a selection named 'q3' already exists" in _error(props, "name") and "tick 'Replace" in _error(props, "name")
    assert _form(SelectActive, ds, {})["name"].default == "active-1"
    _rejects("select_active", ds, {"name": "q3", "budget": 2}, "a selection named 'q3' already exists")
    _rejects("select_active", ds, {"name": "q2", "budget": 7}, "budget 7 is larger than the pool (6 scenes)")
    result = _execute("select_active", ds, {"name": "q3", "budget": 2, "overwrite": True})
    assert result.error is None, result.error_message
    assert ds.load_saved_view("q3").values("scene_id") == expected[:2] and ds.count_sample_tags()["sel:q3"] == 2


def test_select_active_pool_defaults_to_train_and_held_out_scenes_need_an_explicit_choice(road_dataset):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.operators.selection import SelectActive

    ds = road_dataset  # 6 train, 2 val
    scenes.write_scene_fields(ds, {"value_q": np.arange(8, dtype=float)})  # the val scenes rank highest
    props = _form(SelectActive, ds, {"budget": 3})
    assert props["pool"].default == "train" and "held_out_warning" not in props
    assert props["budget"].default == 1 and "6 pool scenes" in props["budget"].view.description
    # The whole target holds 2 val scenes: warned, refused without the explicit tick.
    props = _form(SelectActive, ds, {"budget": 3, "pool": "target"})
    assert "2 val" in props["held_out_warning"].view.label
    assert "held-out scenes (2 val)" in _error(props, "held_out_error")
    _rejects("select_active", ds, {"name": "leak", "budget": 3, "pool": "target"}, "held-out scenes (2 val)")
    assert not ds.has_saved_view("leak")
    result = _execute("select_active", ds, {"name": "ok", "budget": 3})
    assert result.error is None, result.error_message
    assert set(ds.match_tags("sel:ok").values("split")) == {"train"}
    result = _execute("select_active", ds, {"name": "anyway", "budget": 3, "pool": "target", "allow_held_out": True})
    assert result.error is None, result.error_message
    assert set(ds.match_tags("sel:anyway").values("split")) == {"val", "train"}


@pytest.mark.parametrize("op", ["fit_scaling_laws", "allocate_budget", "optimize_mixture", "select_active"])
def test_every_selection_operator_guards_held_out_scenes(road_dataset, op):
    """Each operator that picks training scenes from a target: the pool defaults to the train
    split; a pool with val / test / hard scenes is warned about and refused without the tick."""
    from fiftyone import ViewField as F

    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.operators import selection as sel

    ds = road_dataset
    ids = ds.values("scene_id")
    scenes.write_scene_fields(ds, {"split": ["train"] * 5 + ["test", "val", "val"],
                                   "value_q": np.arange(8, dtype=float)}, scene_ids=ids)
    op_cls = {o().config.name: o for o in sel.OPERATORS}[op]
    props = _form(op_cls, ds, {"budget": 2})
    assert props["pool"].default == "train" and "held_out_warning" not in props and "held_out_error" not in props
    assert "5 pool scenes" in props["budget"].view.description and "scheduling_notice" in props

    props = _form(op_cls, ds, {"budget": 2, "pool": "target"})
    assert props["held_out_warning"].view.label == "The pool contains held-out scenes: 2 val, 1 test"
    assert "allow_held_out" in props and "held-out scenes (2 val, 1 test)" in _error(props, "held_out_error")
    params = {"name": "leak", "budget": 2, "pool": "target", "steps": 3, "rounds": 1, "executor": "serial"}
    _rejects(op, ds, params, "held-out scenes (2 val, 1 test)")  # nothing trained, nothing written
    # The same target as the current view (a test-split-only view): the same guard.
    test_view = ds.match(F("split") == "test")
    _rejects(op, ds, dict(params, budget=1, view_target="CURRENT_VIEW"), "held-out scenes (1 test)",
             view=test_view)
    # The explicit choice lifts the guard.
    props = _form(op_cls, ds, {"budget": 2, "pool": "target", "allow_held_out": True})
    assert "held_out_warning" in props and "held_out_error" not in props


def test_trained_planner_appears_in_evaluate_dropdown(road_dataset):
    from fiftyone_plugin.engine.runs import record_run
    from fiftyone_plugin.operators.planning import EvaluatePlanner, TrainPlanner

    ds = road_dataset
    record_run(ds, "sel_taken", "selection_random", {}, {})  # a run of another kind owns this key
    _rejects("train_planner", ds, {"key": "sel_taken", "steps": 5},
             "run key 'sel_taken' is taken by a 'selection_random' run")
    result = _execute("train_planner", ds, {"planner": "regression", "key": "reg", "steps": 5,
                                            "view_target": "CURRENT_VIEW"}, view=ds.match({"split": "train"}))
    assert result.error is None, result.error_message
    assert result.result["run"] == "reg" and Path(result.result["checkpoint"]).is_file()
    assert "Trained regression planner 'reg' on 6 scenes" in _app_calls(result, ds)["notify"]
    assert "key_note" in _form(TrainPlanner, ds, {"key": "reg"})  # re-training replaces it, and says so
    props = _form(EvaluatePlanner, ds, {})
    assert props["planner"].type.values[0] == "reg" and props["planner"].default == "reg"
    Path(result.result["checkpoint"]).unlink()
    _rejects("evaluate_planner", ds, {"planner": "reg"}, "planner 'reg': its checkpoint")
