"""Planner features, models (regression / vocabulary-scoring), training and closed-loop evaluation."""

from __future__ import annotations

import importlib

# Imported on first use (PEP 562): the torch models cost ~1.5 s to import, and light users
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


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
