"""Planner features, models (regression / vocabulary-scoring), training and closed-loop evaluation."""

from .evaluate import (  # noqa: F401
    BASELINES,
    EvalResult,
    comparison_table,
    evaluate_baselines,
    evaluate_planner,
    evaluate_trajectories,
)
from .features import PlannerFeatures, SceneFeaturizer  # noqa: F401
from .models import RegressionPlanner, ScoringPlanner  # noqa: F401
from .train import TrainConfig, TrainedPlanner, load_planner, train_planner  # noqa: F401
from .vocabulary import build_vocabulary, kmeans_vocabulary, parametric_vocabulary  # noqa: F401
