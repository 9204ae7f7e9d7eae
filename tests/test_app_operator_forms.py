"""Operator forms of the demo / io / synthetic / representation operators, through FiftyOne's
operator execution API on real datasets (real embedded MongoDB): a bad input gives an invalid form
with a readable message, execution fails with that message and changes nothing; a valid run
writes what it says, and the form offers the target choice and choices instead of free text."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import REPO_ROOT
from operator_form_helpers import _app_calls, _execute, _form, _rejects

AV2 = Path(REPO_ROOT).parent / "shared" / "data" / "av2"

pytestmark = pytest.mark.usefixtures("plugin_link")



@pytest.fixture
def road_dataset(fo, dataset_name, autoscale_home, road_batch):
    """8 hand-built scenes (no images): 6 train, 2 val."""
    from fiftyone_plugin.engine import scenes

    ds = scenes.create_scene_dataset(dataset_name("forms"), road_batch, render_images=False)
    scenes.write_scene_fields(ds, {"split": ["train"] * 6 + ["val"] * 2},
                              scene_ids=road_batch.meta["scene_id"].tolist())
    return ds


# ------------------------------------------------------------------------------ create_demo_dataset
def test_demo_form_rejects_taken_name_and_unknown_city(fo, dataset_name, autoscale_home):
    from fiftyone_plugin.operators.demo import CreateDemoDataset

    taken = fo.Dataset(dataset_name("taken"))
    params = {"name": taken.name, "num_scenes": 3, "cities": [], "seed": 0}
    props = _form(CreateDemoDataset, None, params)
    assert props["name"].invalid and "exists: tick overwrite" in props["name"].error_message
    _rejects("create_demo_dataset", taken, params, f"Dataset '{taken.name}' exists: tick overwrite")

    new = dataset_name("atlantis")
    props = _form(CreateDemoDataset, None, dict(params, name=new, cities=["atlantis"]))
    assert props["error"].invalid and "cities: unknown ['atlantis']" in props["error"].error_message
    _rejects("create_demo_dataset", None, dict(params, name=new, cities=["atlantis"]), "cities: unknown ['atlantis']")
    _rejects("create_demo_dataset", None, dict(params, name="bad/name"), "not a valid dataset name")
    assert not fo.dataset_exists(new) and not fo.dataset_exists("bad/name")
    # Cities are a fixed choice list, not free text.
    cities = props["cities"].view.to_json()
    assert cities["allow_user_input"] is False and len(cities["choices"]) >= 2


def test_demo_valid_run(fo, dataset_name, autoscale_home):
    name = dataset_name("demo")
    result = _execute("create_demo_dataset", None, {"name": name, "num_scenes": 3, "seed": 1})
    assert result.error is None, result.error_message
    assert result.result["num_samples"] == 3 and len(fo.load_dataset(name)) == 3
    assert _app_calls(result)["open_dataset"]["dataset"] == name


# ------------------------------------------------------------------------------ import / export
def test_import_av2_form_checks_the_folder(fo, dataset_name, autoscale_home, tmp_path):
    from fiftyone_plugin.operators.io import ImportAV2

    new = dataset_name("av2")
    params = {"dataset": new, "render": False, "stride_s": 2.0}
    _rejects("import_av2", None, dict(params, path=str(tmp_path / "nope")), f"path: {tmp_path / 'nope'} does not exist")
    _rejects("import_av2", None, dict(params, path=str(tmp_path)), "no AV2 logs found")
    assert not fo.dataset_exists(new)

    log = sorted((AV2 / "sensor_logs").iterdir())[0]
    props = _form(ImportAV2, None, dict(params, path=str(log)))
    assert "error" not in props and "1 sensor log(s)" in props["found"].view.label
    assert f"creates dataset '{new}'" in props["found"].view.label
    assert 2.0 in props["stride_s"].type.values  # a choice, not free text
    result = _execute("import_av2", None, dict(params, path=str(log)))
    assert result.error is None, result.error_message
    ds = fo.load_dataset(new)
    assert result.result["added"] == len(ds) > 0 and set(ds.distinct("source")) == {"av2"}
    app = _app_calls(result)
    assert app["open_dataset"]["dataset"] == new and f"Added {len(ds)} scenes" in app["notify"]


def test_export_then_import_scenes_operators(fo, road_dataset, dataset_name, tmp_path):
    from fiftyone_plugin.operators.io import ExportScenes

    ds = road_dataset
    out = tmp_path / "exported"
    ids = ds.limit(3).values("id")
    assert "view_target" in _form(ExportScenes, ds, {"path": str(out)})
    result = _execute("export_scenes", ds, {"path": str(out), "view_target": "SELECTED_SAMPLES"}, selected=ids)
    assert result.error is None, result.error_message
    assert result.result["scenes"] == 3 and (out / "scenes.parquet").is_file()

    stamp = (out / "scenes.parquet").stat().st_mtime_ns
    _rejects("export_scenes", ds, {"path": str(out)}, "exists and is not empty; pass overwrite")
    _rejects("export_scenes", ds, {"path": str(tmp_path / "e"), "view_target": "SELECTED_SAMPLES"},
             "the chosen samples are empty", selected=[])
    assert (out / "scenes.parquet").stat().st_mtime_ns == stamp and not (tmp_path / "e").exists()

    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "scenes.parquet").write_text("x")
    _rejects("import_scenes", ds, {"path": str(tmp_path / "junk"), "dataset": ds.name},
             "is not an interchange folder (missing")
    copy = dataset_name("copy")
    result = _execute("import_scenes", ds, {"path": str(out), "dataset": copy, "render": False})
    assert result.error is None, result.error_message
    assert fo.load_dataset(copy).values("scene_id") == ds.select(ids, ordered=True).values("scene_id")
    # Into the open dataset: the App shows the scenes just added.
    more = ds.skip(3).limit(2)
    assert _execute("export_scenes", ds, {"path": str(tmp_path / "more")}, view=more).result["scenes"] == 2
    result = _execute("import_scenes", copy, {"path": str(tmp_path / "more"), "dataset": copy, "render": False})
    assert result.error is None, result.error_message
    app = _app_calls(result, fo.load_dataset(copy))
    assert result.result["added"] == 2 and sorted(app["set_view"].values("scene_id")) == sorted(more.values("scene_id"))


# ------------------------------------------------------------------------------ synthetic scenes
def test_synthetic_form_rejects_bad_range_and_empty_target(fo, road_dataset, monkeypatch):
    from fiftyone_plugin.operators.synthetic import GenerateSyntheticScenes

    monkeypatch.delenv("AUTOSCALE_EXECUTOR", raising=False)
    ds = road_dataset
    params = {"scenes_per_parent": 1, "lateral_min": -1.0, "lateral_max": 9.0, "speed_min": -2.0, "speed_max": 2.0,
              "expert": "recovery", "rounds": 1, "seed": 5}
    props = _form(GenerateSyntheticScenes, ds, params)
    assert "view_target" in props and props["error"].invalid and "perturbation" in props["error"].error_message
    assert set(props["expert"].type.values) == {"recovery", "planner"}
    assert set(props["executor"].type.values) == {"serial", "process", "ray"} and props["executor"].default == "serial"
    _rejects("generate_synthetic_scenes", ds, params, "perturbation")
    _rejects("generate_synthetic_scenes", ds, dict(params, lateral_max=1.0, executor="dask"), "executor")
    _rejects("generate_synthetic_scenes", ds, dict(params, lateral_max=1.0, view_target="SELECTED_SAMPLES"),
             "the chosen samples are empty", selected=[])


def test_synthetic_valid_run_on_selected_samples(fo, road_dataset):
    ds = road_dataset
    picked = ds.limit(2)
    params = {"scenes_per_parent": 1, "lateral_min": -1.0, "lateral_max": 1.0, "speed_min": -2.0, "speed_max": 2.0,
              "expert": "recovery", "rounds": 1, "seed": 5, "view_target": "SELECTED_SAMPLES", "executor": "process"}
    result = _execute("generate_synthetic_scenes", ds, params, selected=picked.values("id"))
    assert result.error is None, result.error_message
    synthetic = ds.match(fo.ViewField("source") == "synthetic")
    assert result.result["added"] == len(synthetic) == 2
    assert sorted(synthetic.values("parent_id")) == sorted(picked.values("scene_id"))
    app = _app_calls(result, ds)
    assert "Added 2 synthetic scenes" in app["notify"]
    assert sorted(app["set_view"].values("scene_id")) == sorted(synthetic.values("scene_id"))


# ------------------------------------------------------------------------------ representation
def test_repr_forms_need_embeddings_first(fo, road_dataset):
    from fiftyone_plugin.operators.representation import ClusterScenes, ComputeValueScores

    ds = road_dataset
    hint = "no 'emb_handcrafted' yet: run compute_scene_embeddings with method 'handcrafted' first"
    props = _form(ClusterScenes, ds, {"method": "handcrafted"})
    assert "view_target" in props and props["error"].invalid and hint in props["error"].error_message
    assert {"", "city", "topology"} <= set(props["domains_field"].type.values)
    _rejects("cluster_scenes", ds, {"method": "handcrafted", "k": 2}, hint)
    _rejects("compute_value_scores", ds, {"method": "handcrafted", "k": 3}, hint)
    assert "error" in _form(ComputeValueScores, ds, {"method": "handcrafted"})
    _rejects("compute_scene_embeddings", ds, {"method": "handcrafted", "view_target": "SELECTED_SAMPLES"},
             "1 scene(s) chosen; at least 2 are needed", selected=ds.limit(1).values("id"))
    _rejects("compute_scene_embeddings", ds, {"method": "handcrafted", "mc_samples": 1}, "mc_samples")
    for op in ("compute_scene_embeddings", "cluster_scenes", "compute_value_scores", "generate_synthetic_scenes",
               "export_scenes"):
        _rejects(op, None, {"method": "handcrafted", "path": "/tmp/x"}, "no dataset is open")
    _rejects("compute_scene_embeddings", ds, {"method": "error_pattern", "planner_path": "/no/such.pt"},
             "planner_path: /no/such.pt does not exist")


def test_repr_valid_runs_and_range_checks(fo, road_dataset):
    from fiftyone_plugin.operators.representation import ClusterScenes

    ds = road_dataset
    result = _execute("compute_scene_embeddings", ds, {"method": "handcrafted", "mc_samples": 0, "viz_method": "pca"})
    assert result.error is None, result.error_message
    assert ds.count("emb_handcrafted") == len(ds)
    props = _form(ClusterScenes, ds, {})
    assert props["method"].default == "handcrafted" and "error" not in props  # the computed encoder is preselected

    _rejects("cluster_scenes", ds, {"method": "handcrafted", "k": 9},
             "k: 9 clusters requested for a target of 8 scenes")
    _rejects("compute_value_scores", ds, {"method": "handcrafted", "k": 6},
             "k: the target has 6 training scenes; k=6 needs at least 7")
    # The current view as target: only its scenes are written.
    view = ds.limit(6)
    result = _execute("cluster_scenes", ds, {"method": "handcrafted", "k": 2, "view_target": "CURRENT_VIEW"},
                      view=view)
    assert result.error is None, result.error_message
    assert result.result["k"] == 2 and ds.count("cluster_handcrafted") == 6
    shown = _app_calls(result, ds)["set_view"].values("cluster_handcrafted")
    assert len(shown) == 6 and shown == sorted(shown)  # the clustered scenes, sorted by cluster
    result = _execute("compute_value_scores", ds, {"method": "handcrafted", "k": 3})
    assert result.error is None, result.error_message
    assert ds.count("value_q") == len(ds) and result.result["num_scenes"] == len(ds)
    shown = _app_calls(result, ds)["set_view"].values("value_q")
    assert len(shown) == len(ds) and shown == sorted(shown, reverse=True)  # highest Q first
