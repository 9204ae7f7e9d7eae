"""Failure triage in the App: planner trajectories as overlays, sub-scores grouped and described,
worst-scene saved views per planner and per cluster (real FiftyOne + MongoDB, real scorer)."""

from __future__ import annotations

import numpy as np


def test_evaluation_adds_trajectory_overlay_groups_descriptions_and_worst_views(fo, dataset_name, autoscale_home,
                                                                                 small_world_batch):
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.planning import evaluate_planner_on_view
    from fiftyone_plugin.engine.triage import SUBSCORE_MEANINGS, trajectory_field

    ds = scenes.create_scene_dataset(dataset_name("triage"), small_world_batch, render_images=False)
    clusters = np.array([f"c{i % 3}" for i in range(len(ds))], dtype=object)
    scenes.write_scene_fields(ds, {"cluster_handcrafted": clusters})
    evaluate_planner_on_view(ds, "rule", key="rule")
    evaluate_planner_on_view(ds, "constant_velocity", key="cv")

    # The plan as an overlay: starts at the ego (where ego_future starts), labelled by the planner.
    sample = ds.first()
    plan = sample[trajectory_field("rule")]
    assert isinstance(plan, fo.Polylines) and plan.polylines[0].label == "rule"
    start = np.array(plan.polylines[0].points[0][0])
    assert np.allclose(start, sample.ego_future.polylines[0].points[0][0], atol=1e-4)
    points = np.array([xy for p in plan.polylines for shape in p.points for xy in shape])
    assert ((points >= 0) & (points <= 1)).all()  # clipped to the image

    # One colour per planner, shown by default; sub-scores grouped per planner with a meaning each.
    colours = {f["path"]: f["fieldColor"] for f in ds.app_config.color_scheme.fields if "fieldColor" in f}
    assert colours[trajectory_field("rule")] != colours[trajectory_field("cv")]
    assert trajectory_field("cv") in ds.app_config.active_fields.paths
    groups = {g.name: g.paths for g in ds.app_config.sidebar_groups}
    assert "eval_rule_nc" in groups["planner rule"] and "eval_cv_epdms" in groups["planner cv"]
    assert ds.get_field("eval_cv_ttc").description == "cv: " + SUBSCORE_MEANINGS["ttc"]

    # Worst scenes: lowest EPDMS first, overall and per cluster.
    assert {"worst-cv", "worst-cv-c0", "worst-cv-c1", "worst-cv-c2", "worst-rule"} <= set(ds.list_saved_views())
    worst = ds.load_saved_view("worst-cv").values("eval_cv_epdms")
    assert worst == sorted(worst) and len(worst) == len(ds)
    in_c1 = ds.load_saved_view("worst-cv-c1")
    assert set(in_c1.values("cluster_handcrafted")) == {"c1"} and len(in_c1) == int((clusters == "c1").sum())
