"""AutoScale core: FiftyOne-free scene model, embedded world, simulation, training and selection.

Everything here takes and returns plain numpy arrays / :class:`SceneBatch` objects, in the
style of scikit-learn estimators, so it can be used without a database.
"""

from .scene import SceneBatch, SceneValidationError  # noqa: F401

__version__ = "0.1.0"
