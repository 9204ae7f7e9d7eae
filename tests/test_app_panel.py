"""The Data Engine panel's numbers: named clusters, the planner choice, EPDMS in points, coverage
of a selection vs the pool, the selection protocol's curves, internal write records hidden
(real FiftyOne + MongoDB; run records written as the operators write them)."""

from __future__ import annotations

import json

import numpy as np
import pytest


@pytest.fixture
def panel_dataset(fo, dataset_name, small_world_batch, autoscale_home):
    from fiftyone_plugin.engine import scenes

    return scenes.create_scene_dataset(dataset_name("panel2"), small_world_batch, render_images=False)


def test_panel_summary_names_clusters_defaults_to_trained_planner_and_shows_coverage(panel_dataset):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.runs import record_run
    from fiftyone_plugin.panel.data_engine import build_layout, engine_summary, panel_data

    ds = panel_dataset
    n = len(ds)
    topology = np.asarray(ds.values("topology"), dtype=object)
    clusters = np.array([f"c{i % 2}" for i in range(n)], dtype=object)
    cv, trained = np.full(n, 0.2), np.full(n, 0.8)
    scenes.write_scene_fields(ds, {"cluster_graph_rae": clusters, "eval_cv_epdms": cv, "eval_reg_epdms": trained})
    record_run(ds, "reg", "train_planner", {"planner": "regression"}, {"checkpoint": "x.pt"})
    record_run(ds, "eval_reg", "evaluate_planner", {"planner": "reg"}, {"aggregates": {}})
    record_run(ds, "eval_cv", "evaluate_planner", {"planner": "constant_velocity"}, {"aggregates": {}})  # newer
    ds.select_by("scene_id", ds.values("scene_id")[:3]).tag_samples("sel:top3")
    record_run(ds, "sel_top3", "selection_value_topm", {}, {"name": "top3", "method": "value_topm", "budget": 3,
                                                           "tag": "sel:top3", "saved_view": "top3"})
    curves = {"random": {"budget": [10, 20], "epdms": [60.0, 65.0], "lo": [58.0, 63.0], "hi": [62.0, 67.0]},
              "value_q": {"budget": [10, 20], "epdms": [63.0, 70.0], "lo": [61.0, 68.0], "hi": [65.0, 72.0]}}
    record_run(ds, "selection_protocol", "selection_protocol", {}, {"curves": curves, "seeds": 3})

    summary = engine_summary(ds)
    table = summary["clusters"]
    # The trained planner, not the newer constant-velocity baseline; EPDMS in points.
    assert table["planner"] == "reg" and table["planners"] == ["reg", "cv"]
    assert all(r["mean_epdms"] == pytest.approx(80.0) for r in table["rows"])
    assert engine_summary(ds, planner="cv")["clusters"]["rows"][0]["mean_epdms"] == pytest.approx(20.0)
    # Clusters named by their dominant topology (and city / event).
    for row in table["rows"]:
        values, counts = np.unique(topology[clusters == row["cluster"]], return_counts=True)
        assert row["name"].startswith(f"{row['cluster']} / ") and max(
            values[counts == counts.max()], key=lambda v: v in row["name"]) in row["name"]

    cov = summary["coverage"]
    assert cov["tag"] == "sel:top3" and cov["num_selected"] == 3
    assert sum(r["selected"] for r in cov["fields"]["topology"]) == 3
    assert sum(r["selection_pct"] for r in cov["fields"]["topology"]) == pytest.approx(100.0, abs=0.2)

    # Internal write records are hidden from the run list.
    assert all(r["method"] != "staged_write" for r in summary["runs"]) and any(
        r["method"] == "staged_write" for r in __import__("fiftyone_plugin.engine.runs", fromlist=["x"]).list_runs(ds))

    data = panel_data(summary)
    lines = [t for t in data["protocol_plot"] if t.get("fill") is None]
    bands = [t for t in data["protocol_plot"] if t.get("fill") == "toself"]
    assert [t["name"] for t in lines] == ["random", "value_q"] and len(bands) == 2
    assert bands[1]["y"] == [65.0, 72.0, 68.0, 61.0] and bands[1]["line"]["color"] == lines[1]["line"]["color"]
    assert [t["name"].split(" (")[0] for t in data["coverage_plot"]] == ["selection", "pool: real train"]
    props = build_layout(summary).type.properties
    for key in ("planner", "cluster_table", "coverage_plot", "protocol_plot"):
        assert key in props, key
    assert props["protocol_plot"].view.layout["showlegend"] is True
    json.dumps(summary)
