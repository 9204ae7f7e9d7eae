"""Budgeted selection: scaling laws, allocation, MOSAIC, AutoScale cluster-GA, active learning,
baselines, and the executor the heavy loops run through. FiftyOne-free; plain arrays in and out."""

from ..executor import Executor, ProcessExecutor, RayExecutor, SerialExecutor, TaskError, get_executor
from .active import ValueTopSelector, ablation_subsets
from .allocation import brmr, budget_to_reach, greedy_allocate, proportional_allocate
from .base import Pool, SelectionResult, Selector, validate_budget
from .baselines import (
    AllSyntheticSelector,
    CoresetSelector,
    HardExampleSelector,
    RandomSelector,
    RandomSyntheticSelector,
    UncertaintySelector,
    k_center_greedy,
    mc_dropout_uncertainty,
)
from .cluster_ga import ClusterMixtureOptimizer, project_to_simplex
from .mosaic import MosaicSelector, importance_from_epdms
from .oracle import PlannerOracle, SyntheticOracle
from .scaling import ScalingFit, ScalingLawFitter, fit_scaling_laws, saturating_exp

__all__ = [
    "AllSyntheticSelector", "ClusterMixtureOptimizer", "CoresetSelector", "Executor", "HardExampleSelector", "MosaicSelector",
    "PlannerOracle", "Pool", "ProcessExecutor", "RandomSelector", "RandomSyntheticSelector", "RayExecutor",
    "ScalingFit", "ScalingLawFitter", "SelectionResult", "Selector", "SerialExecutor", "SyntheticOracle",
    "TaskError", "UncertaintySelector", "ValueTopSelector", "ablation_subsets", "brmr", "budget_to_reach",
    "fit_scaling_laws", "get_executor", "greedy_allocate", "importance_from_epdms", "k_center_greedy",
    "mc_dropout_uncertainty", "project_to_simplex", "proportional_allocate", "saturating_exp", "validate_budget",
]
