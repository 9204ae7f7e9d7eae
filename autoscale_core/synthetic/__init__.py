"""SimScale synthetic scenes: ego perturbation, reactive re-simulation, pseudo-expert labels,
the navhard-like hard split (see ``docs/synthetic.md``). FiftyOne-free."""

from .generate import GenerationReport, check_lineage, generate_synthetic, resimulate_agents, score_labels_epdms
from .hard_split import HardSplit, build_hard_split
from .labels import (
    EXPERTS,
    apply_label,
    load_rewards,
    make_label,
    planner_label,
    recovery_label,
    rewards_only,
    save_rewards,
)
from .perturb import REJECT_REASONS, PerturbationConfig, RejectReport, perturb_scenes, recentre

__all__ = [
    "GenerationReport", "check_lineage", "generate_synthetic", "resimulate_agents", "score_labels_epdms",
    "HardSplit", "build_hard_split",
    "EXPERTS", "apply_label", "load_rewards", "make_label", "planner_label", "recovery_label", "rewards_only",
    "save_rewards",
    "REJECT_REASONS", "PerturbationConfig", "RejectReport", "perturb_scenes", "recentre",
]
