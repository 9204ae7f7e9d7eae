"""Re-export of :mod:`autoscale_core.executor` (the executor is not selection-specific; it moved
there). Kept so ``from autoscale_core.selection.executor import ...`` keeps working."""

from ..executor import *  # noqa: F401,F403
from ..executor import __all__  # noqa: F401
