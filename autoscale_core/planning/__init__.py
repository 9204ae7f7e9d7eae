"""Planner features, models (regression / vocabulary-scoring), training and closed-loop evaluation."""

from __future__ import annotations

from .._lazy import lazy_exports

# Imported on first use (PEP 562, `autoscale_core._lazy`): the torch models cost ~1.5 s to import, and light users
# (``planning.evaluate.BASELINES`` for the App's panel, the operator listing) must not pay for them.
_EXPORTS = {
    **dict.fromkeys(("BASELINES", "EvalResult", "comparison_table", "evaluate_baselines", "evaluate_planner",
                     "evaluate_trajectories"), "evaluate"),
    **dict.fromkeys(("PlannerFeatures", "SceneFeaturizer"), "features"),
    **dict.fromkeys(("RegressionPlanner", "ScoringPlanner"), "models"),
    **dict.fromkeys(("TrainConfig", "TrainedPlanner", "load_planner", "train_planner"), "train"),
    **dict.fromkeys(("build_vocabulary", "kmeans_vocabulary", "parametric_vocabulary"), "vocabulary"),
}
__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
