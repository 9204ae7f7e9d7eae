"""The App-facing layer on real FiftyOne: the export operator through FiftyOne's operator execution
API, the queue Python API and CLI, the shared form helpers, and the Data Engine panel's numbers
and layout computed from real run records (written through fiftyone_plugin.engine.runs)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from browser.engine_records import record_engine_runs as _record_engine_runs

EXPORT_URI = "@autoscale/autoscale/export_annotation_queue"
PANEL_URI = "@autoscale/autoscale/data_engine"


pytestmark = pytest.mark.usefixtures("plugin_link")



@pytest.fixture(scope="module")
def scored_dataset(fo, small_world_batch, tmp_path_factory):
    """12 rendered scenes with value scores, a cluster field, an EPDMS field and a random selection."""
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.selection import select_active

    name = f"app-ops-{np.random.default_rng().integers(1e9)}"
    ds = scenes.create_scene_dataset(name, small_world_batch, media_dir=tmp_path_factory.mktemp("app-media"))
    rng = np.random.default_rng(0)
    n = len(ds)
    values = {"value_s": rng.random(n), "value_r": rng.random(n), "value_u": rng.random(n),
              "cluster_graph_rae": np.array([f"c{i % 3}" for i in range(n)], dtype=object),
              "eval_rule_epdms": rng.random(n)}
    values["value_q"] = values["value_s"] + values["value_r"] + values["value_u"]
    scenes.write_scene_fields(ds, values)
    select_active(ds, "rand5", 5, method="random", seed=0)
    yield ds
    scenes.delete_scene_dataset(name)


def _manifest(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text().splitlines()]


def _execute(uri, ds, params, **ctx):
    import fiftyone.operators as foo

    return foo.execute_operator(uri, ctx={"dataset": ds, "params": params, **ctx}, request_delegation=False)


# ------------------------------------------------------------------------------ export operator
def test_export_operator_ranks_by_field_and_is_idempotent(scored_dataset, tmp_path):
    ds = scored_dataset
    params = {"rank_by": "value_q", "descending": True, "queue_name": "by-q", "out_dir": str(tmp_path),
              "formats": ["jsonl", "csv", "cvat", "labelstudio"], "view_target": "DATASET"}
    result = _execute(EXPORT_URI, ds, params)
    assert result.error is None, result.error_message
    out = result.result
    assert out["count"] == len(ds) and out["tag"] == "queue:by-q"

    rows = _manifest(tmp_path / "by-q" / "manifest.jsonl")
    q = dict(zip(ds.values("scene_id"), ds.values("value_q")))
    assert [r["scene_id"] for r in rows] == sorted(q, key=lambda s: -q[s])  # highest Q first
    assert [r["rank"] for r in rows] == list(range(1, len(ds) + 1))
    first = rows[0]
    assert first["score"] == pytest.approx(q[first["scene_id"]])
    for key in ("reason_cluster_graph_rae", "reason_value_s", "reason_value_r", "reason_value_u", "reason_value_q"):
        assert key in first
    assert all((tmp_path / "by-q" / r["media"]).is_file() for r in rows)
    with open(tmp_path / "by-q" / "manifest.csv") as f:
        assert len(list(csv.DictReader(f))) == len(ds)
    assert "<image" in (tmp_path / "by-q" / "cvat" / "annotations.xml").read_text()
    assert len(json.loads((tmp_path / "by-q" / "labelstudio" / "tasks.json").read_text())) == len(ds)
    assert len(ds.match_tags("queue:by-q")) == len(ds) and ds.has_run("queue_by_q")

    before = (tmp_path / "by-q" / "manifest.jsonl").read_bytes()
    with pytest.raises(Exception, match="exists and is not empty"):  # an existing export needs overwrite
        _execute(EXPORT_URI, ds, params)
    assert _execute(EXPORT_URI, ds, {**params, "overwrite": True}).error is None  # re-export: same files
    assert (tmp_path / "by-q" / "manifest.jsonl").read_bytes() == before
    ds.untag_samples("queue:by-q")


def test_export_operator_selected_samples_in_selection_order(scored_dataset, tmp_path):
    from fiftyone_plugin.engine.runs import get_run

    ds = scored_dataset
    chosen = get_run(ds, "sel_rand5")["results"]["scene_ids"]
    ids = ds.select_by("scene_id", chosen).values("id")
    params = {"queue_name": "sel", "out_dir": str(tmp_path), "formats": ["jsonl"], "view_target": "SELECTED_SAMPLES"}
    result = _execute(EXPORT_URI, ds, params, selected=ids[::-1])
    assert result.error is None, result.error_message
    rows = _manifest(tmp_path / "sel" / "manifest.jsonl")
    assert [r["scene_id"] for r in rows] == chosen  # the selection's allocation order
    assert {r["reason_selection"] for r in rows} == {"rand5"}
    assert [r["reason_selection_rank"] for r in rows] == list(range(1, 6))
    assert all(r["reason_selections"] == "rand5" and "reason_predicted_gain" in r for r in rows)
    assert set(ds.match_tags("queue:sel").values("scene_id")) == set(chosen)
    assert not (tmp_path / "sel" / "manifest.csv").exists()  # only the formats asked for
    ds.untag_samples("queue:sel")


def test_export_operator_delegated(scored_dataset, tmp_path):
    """Queued with request_delegation=True and run by FiftyOne's delegated service (what
    ``fiftyone delegated launch`` does), targeting the saved selection view."""
    import fiftyone.operators as foo
    from fiftyone.operators.delegated import DelegatedOperationService

    ds = scored_dataset
    params = {"queue_name": "deleg", "out_dir": str(tmp_path), "formats": ["jsonl"], "view_target": "CURRENT_VIEW"}
    queued = foo.execute_operator(EXPORT_URI, ctx={"view": ds.load_saved_view("rand5"), "params": params},
                                  request_delegation=True)
    assert queued.error is None and queued.delegated
    assert not (tmp_path / "deleg").exists()
    results = DelegatedOperationService().execute_queued_operations(operator=EXPORT_URI, dataset_name=ds.name)
    assert len(results) == 1 and results[0].error is None, results[0].error
    assert len(_manifest(tmp_path / "deleg" / "manifest.jsonl")) == 5
    assert len(ds.match_tags("queue:deleg")) == 5
    ds.untag_samples("queue:deleg")


@pytest.mark.parametrize("params,extra,match", [
    ({"queue_name": "../escape"}, {}, "queue name"),
    ({"queue_name": "empty", "view_target": "SELECTED_SAMPLES"}, {"selected": []}, "empty"),
    ({"queue_name": "nofield", "rank_by": "value_zzz"}, {}, "Invalid enum value|does not exist"),
    ({"queue_name": "badsel", "selection": "nope"}, {}, "Invalid enum value|not a selection"),
])
def test_export_operator_bad_input_writes_nothing(scored_dataset, tmp_path, params, extra, match):
    ds = scored_dataset
    runs_before, tags_before = ds.list_runs(), ds.count_sample_tags()
    with pytest.raises(Exception, match=match):
        r = _execute(EXPORT_URI, ds, {"out_dir": str(tmp_path), **params}, **extra)
        r.raise_exceptions()
    assert list(tmp_path.iterdir()) == []
    assert ds.list_runs() == runs_before and ds.count_sample_tags() == tags_before


def test_export_form_offers_choices_and_inline_errors(scored_dataset):
    from fiftyone.operators.executor import ExecutionContext

    from fiftyone_plugin.operators.export import ExportAnnotationQueue

    ds = scored_dataset
    op = ExportAnnotationQueue()
    ctx = ExecutionContext({"dataset_name": ds.name, "params": {"queue_name": "a/b"}})
    form = op.resolve_type(ctx, "inputs")
    props = form.type.properties
    assert "view_target" in props  # whole dataset / current view / selected samples
    rank_choices = props["rank_by"].type.values
    assert {"value_q", "value_s", "eval_rule_epdms"} <= set(rank_choices) and "scene_id" not in rank_choices
    assert "rand5" in props["selection"].type.values
    assert props["error"].invalid and "queue name" in props["error"].error_message


# ------------------------------------------------------------------------------ Python API, CLI, annotate()
def test_export_view_queue_python_and_cli(scored_dataset, tmp_path, capsys):
    from autoscale_core.export import ExportError
    from fiftyone_plugin.cli import main
    from fiftyone_plugin.engine.queue import export_view_queue

    ds = scored_dataset
    view = ds.load_saved_view("rand5")
    summary = export_view_queue(view, tmp_path, "py", "value_s", descending=False, formats=["jsonl"], tag=False)
    rows = _manifest(summary["files"]["jsonl"])
    s = [r["reason_value_s"] for r in rows]
    assert s == sorted(s) and len(rows) == 5 and summary["selection"] == "rand5"
    assert not ds.has_run("queue_py")  # tag=False: the dataset is untouched
    with pytest.raises(ExportError, match="empty"):
        export_view_queue(ds.limit(0), tmp_path, "none")

    code = main(["export", "queue", "--dataset", ds.name, "--name", "cli", "--out-dir", str(tmp_path),
                 "--saved-view", "rand5", "--formats", "jsonl", "csv"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "5 scenes" in printed
    assert [r["scene_id"] for r in _manifest(tmp_path / "cli" / "manifest.jsonl")] == view.values("scene_id")
    assert main(["export", "queue", "--dataset", ds.name, "--name", "x", "--out-dir", str(tmp_path),
                 "--rank-field", "nope"]) == 1
    assert "rank field 'nope' does not exist" in capsys.readouterr().err
    ds.untag_samples("queue:cli")


def test_annotate_without_backend_is_a_clear_error(scored_dataset):
    from fiftyone_plugin.engine.queue import QueueError, annotate_view_queue

    ds = scored_dataset
    with pytest.raises(QueueError, match="backend 'cvat' is not configured"):
        annotate_view_queue(ds, "anno1", backend="cvat", label_field="queue_label", label_type="classification",
                            classes=["keep"])
    assert ds.list_annotation_runs() == []


# ------------------------------------------------------------------------------ ui helpers
def test_ui_field_choices_and_budget_messages(scored_dataset):
    from fiftyone_plugin.operators import ui

    ds = scored_dataset
    assert ui.field_choices(ds, "numeric", "value_") == ["value_q", "value_r", "value_s", "value_u"]
    assert ui.field_choices(ds, "string", "cluster_") == ["cluster_graph_rae"]
    assert "ego_speed" not in ui.field_choices(ds, "numeric")
    assert "ego_speed" in ui.field_choices(ds, "numeric", include_scene_fields=True)
    assert ui.budget_error(5, ds) is None
    assert "larger than the target (12 scenes)" in ui.budget_error(13, ds)
    assert "at least 1" in ui.budget_error(0, ds)
    assert "whole number" in ui.budget_error(2.5, ds)
    with pytest.raises(ValueError, match="field 'nope' does not exist"):
        ui.require_field(ds, "nope", "rank field")


# ------------------------------------------------------------------------------ Data Engine panel
@pytest.fixture
def engine_dataset(fo, dataset_name, small_world_batch, autoscale_home):
    from fiftyone_plugin.engine import scenes

    return scenes.create_scene_dataset(dataset_name("panel"), small_world_batch, render_images=False)


def test_panel_summary_empty_dataset_says_what_to_run(engine_dataset):
    from fiftyone_plugin.panel.data_engine import build_layout, engine_summary

    summary = engine_summary(engine_dataset)
    assert summary["num_scenes"] == 12
    assert summary["clusters"] is summary["curves"] is summary["allocation"] is summary["history"] is None
    props = build_layout(summary).type.properties
    assert "run Cluster scenes first" in props["clusters_empty"].default
    assert "run Fit scaling laws first" in props["curves_empty"].default
    # Buttons open the registered operators' forms.
    button = props["curves_actions"].type.properties["curves_fit_scaling_laws"].view
    assert button.operator == "@autoscale/autoscale/fit_scaling_laws" and button.prompt is True
    assert "cluster_table" not in props and "scaling_curves" not in props


def test_panel_summary_from_fields_and_run_records(engine_dataset):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.panel.data_engine import build_layout, engine_summary, fitted_gain, panel_data

    ds = engine_dataset
    n = len(ds)
    rng = np.random.default_rng(1)
    clusters = np.array([f"c{i % 2}" for i in range(n)], dtype=object)
    epdms, q = rng.random(n), rng.random(n)
    source = np.array(["synthetic" if i % 4 == 0 else "world" for i in range(n)], dtype=object)
    scenes.write_scene_fields(ds, {"cluster_graph_rae": clusters, "eval_rule_epdms": epdms, "value_q": q,
                                   "source": source})
    first = ds.select_by("scene_id", [ds.values("scene_id")[0]])
    first.set_values("eval_rule_epdms", [None])  # a scene the evaluation skipped must not poison the mean
    epdms = epdms.copy()
    epdms[0] = np.nan
    _record_engine_runs(ds)

    summary = engine_summary(ds)
    table = summary["clusters"]
    assert table["field"] == "cluster_graph_rae" and table["epdms_field"] == "eval_rule_epdms"
    for row in table["rows"]:
        m = clusters == row["cluster"]
        assert row["size"] == m.sum()
        assert row["synthetic_share"] == pytest.approx((source[m] == "synthetic").mean(), abs=1e-3)
        assert row["mean_epdms"] == pytest.approx(100 * np.nanmean(epdms[m]), abs=0.01)  # points
        assert row["mean_value_q"] == pytest.approx(q[m].mean(), abs=1e-4)

    curves = summary["curves"]
    assert curves["run_key"] == "scaling_pilot" and curves["domains"]["straight"]["n"] == [1, 3, 8]
    assert fitted_gain(curves["domains"]["straight"], np.array([4.0]))[0] == pytest.approx(0.05 * (1 - np.exp(-1)))
    assert fitted_gain(curves["domains"]["merge"], np.array([10.0]))[0] == pytest.approx(0.02)
    assert summary["allocation"]["allocation"] == {"c0": 4, "c1": 2} and summary["allocation"]["name"] == "mix"
    rounds = summary["history"]["rounds"]
    assert [r["epdms"] for r in rounds] == [60.0, 62.0]  # EPDMS points everywhere in the panel
    assert rounds[1]["weights"] == {"c0": 0.7, "c1": 0.3}

    data = panel_data(summary)
    fitted = next(t for t in data["scaling_curves"] if t["name"] == "straight (exp fit)")
    assert fitted["y"][-1] == pytest.approx(100 * 0.05 * (1 - np.exp(-fitted["x"][-1] / 4.0)), abs=1e-3)
    pilots = next(t for t in data["scaling_curves"] if t["name"] == "straight pilots")
    assert pilots["marker"]["color"] == fitted["line"]["color"] and pilots["y"] == [1.0, 3.0, 4.5]
    assert [t["name"] for t in data["history_weights"]] == ["c0", "c1"]
    assert data["history_weights"][0]["y"] == [0.5, 0.7]
    props = build_layout(summary).type.properties
    assert [c.key for c in props["cluster_table"].view.columns][:4] == ["name", "size", "real_share", "synthetic_share"]
    for key in ("scaling_curves", "fit_table", "allocation_plot", "history_epdms", "history_weights"):
        assert key in props
    assert props["scaling_curves"].view.config["scrollZoom"] is False  # the wheel scrolls the panel
    assert [r["domain"] for r in data["fit_table"]] == ["merge", "straight"]
    json.dumps(summary)  # panel state must be JSON


def test_panel_executes_through_fiftyone(engine_dataset):
    """The panel's on_load event through FiftyOne's operator execution (as the App calls it)."""
    _record_engine_runs(engine_dataset)
    result = _execute(PANEL_URI, engine_dataset, {"__method__": "on_load", "panel_id": "p1", "state": {},
                                                  "event_args": {}})
    assert result.error is None, result.error_message


def test_draw_scenes_operator_draws_the_selected_samples_of_a_lean_dataset(fo, autoscale_home, tmp_path):
    """A lean (overlays on demand) + deferred-render dataset: the form says what is missing, and the
    operator draws exactly the selected samples (overlays written, images rendered)."""
    from operator_form_helpers import _form

    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import bev_render, scenes
    from fiftyone_plugin.operators.draw import DrawScenes

    name = f"app-draw-{np.random.default_rng().integers(1e9)}"
    ds = scenes.create_scene_dataset(name, generate_world(6, seed=5), render_images="deferred",
                                     info={scenes.OVERLAYS_INFO_KEY: "on_demand"})
    try:
        form = _form(DrawScenes, ds, {})
        assert "6 of 6 target scenes have no overlays; 6 show the placeholder image" in form["todo"].view.label
        ids = ds.sort_by("scene_id").limit(2).values("id")
        result = _execute("@autoscale/autoscale/draw_scenes", ds,
                          {"view_target": "SELECTED_SAMPLES", "images": True}, selected=ids)
        assert result.error is None, result.error_message
        assert result.result == {"overlays": 2, "images": 2}
        assert set(ds.exists("agents").values("id")) == set(ids)
        assert len(bev_render.pending(ds)[0]) == 4
    finally:
        scenes.delete_scene_dataset(name)
