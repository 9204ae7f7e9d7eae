"""Run records in the formats the selection operators write (for panel tests without training)."""


def record_engine_runs(ds) -> None:
    """Run records in the formats the selection operators write (fit_scaling_laws, optimize_mixture)."""
    from fiftyone_plugin.engine.runs import record_run

    record_run(ds, "scaling_pilot", "mosaic_scaling_laws", {"budget": 6},
               {"base_score": 0.61, "domain_field": "topology", "pool_size": 12,
                "fits": {"straight": {"model": "exp", "a": 0.05, "tau": 4.0, "slope": 0.0},
                         "merge": {"model": "linear", "a": 0.0, "tau": 1.0, "slope": 0.002}},
                "pilots": {"straight": {"sizes": [1, 3, 8], "gains": [0.01, 0.03, 0.045],
                                      "gains_std": [0.004, 0.006, 0.005]},
                           "merge": {"sizes": [1, 3], "gains": [0.002, 0.006]}}})
    record_run(ds, "sel_mix", "selection_autoscale", {"budget": 6},
               {"name": "mix", "method": "autoscale", "budget": 6, "tag": "sel:mix", "saved_view": "mix",
                "allocation": {"c0": 4, "c1": 2}, "predicted_gain": 0.02, "explanation": "cluster-GA",
                "scene_ids": [], "diagnostics": {"history": [
                    {"round": 0, "score": 0.60, "weights": [0.5, 0.5], "counts": {"c0": 3, "c1": 3}},
                    {"round": 1, "score": 0.62, "weights": [0.7, 0.3], "counts": {"c0": 4, "c1": 2}}]}})
