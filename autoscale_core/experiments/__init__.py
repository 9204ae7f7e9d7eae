"""Experiments that produce the project's evidence, FiftyOne-free.

* :mod:`.splits` — world splits with a scene-biased pool and balanced val/test sets;
* :mod:`.methods` — the selection methods compared at matched information;
* :mod:`.selection_protocol` — train / score every method × budget × split × seed through an executor;
* :mod:`.brmr` and :mod:`.summary` — the measured random curve, BRMR and paired bootstrap intervals;
* :mod:`.report` — JSON / markdown / PNG outputs.
"""

from .brmr import BootstrapDraws, bootstrap_means, brmr_point, budget_to_match, monotone_curve
from .methods import DEFAULT_METHODS, METHODS, MethodPicks, SelectionContext
from .selection_protocol import (
                                 ProtocolConfig,
                                 ProtocolResult,
                                 default_random_budgets,
                                 load_checkpoints,
                                 run_selection_protocol,
)
from .splits import SplitScenes, WorldSplitSpec, load_real_test, make_world_split
from .summary import summarize

__all__ = [
    "BootstrapDraws", "DEFAULT_METHODS", "METHODS", "MethodPicks", "ProtocolConfig", "ProtocolResult",
    "SelectionContext", "SplitScenes", "WorldSplitSpec", "bootstrap_means", "brmr_point", "budget_to_match",
    "default_random_budgets", "load_checkpoints", "load_real_test", "make_world_split", "monotone_curve", "run_selection_protocol", "summarize",
]
