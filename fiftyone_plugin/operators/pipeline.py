"""The pipeline order of AutoScale's operators, as the App lists them.

``fiftyone.yml`` lists the operators in :data:`PIPELINE_ORDER`, :func:`register` (in
``__init__.py``) registers them in it, and each operator's description starts with its step
("1. data: …" … "5. export: …"). Why the step is in the description: FiftyOne 1.22's operator
browser (the backtick palette) sorts operators by the first character of their description, and
keeps registration order among equal ones (a stable sort). A leading digit therefore lists
AutoScale's operators together, ahead of FiftyOne's own (whose descriptions start with a letter),
in pipeline order.
"""

from __future__ import annotations

# (stage, operator names in the order a user runs them)
PIPELINE = (
    ("data", ("create_demo_dataset", "import_av2", "import_scenarionet", "import_scenes", "generate_synthetic_scenes",
              "draw_scenes")),
    ("planner", ("train_planner", "evaluate_planner")),
    ("scenes", ("compute_scene_embeddings", "cluster_scenes", "compute_value_scores")),
    ("selection", ("fit_scaling_laws", "allocate_budget", "optimize_mixture", "select_active")),
    ("export", ("export_annotation_queue", "export_scenes", "export_scenarionet")),
)
PIPELINE_ORDER = tuple(name for _, names in PIPELINE for name in names)
_STEP = {name: (number, stage) for number, (stage, names) in enumerate(PIPELINE, start=1) for name in names}


def step_description(name: str, description: str) -> str:
    """``description`` prefixed with the operator's pipeline step ("4. selection: …"); unchanged for
    names outside the pipeline (the panel)."""
    if name not in _STEP:
        return description
    number, stage = _STEP[name]
    return f"{number}. {stage}: {description}"


def in_pipeline_order(classes: list[type]) -> list[type]:
    """``classes`` sorted by :data:`PIPELINE_ORDER` (others, e.g. panels, last, in their order)."""
    rank = {name: i for i, name in enumerate(PIPELINE_ORDER)}
    return sorted(classes, key=lambda cls: rank.get(cls().config.name, len(rank)))


def with_step_description(cls: type) -> type:
    """A subclass of operator ``cls`` whose config's description starts with its pipeline step."""
    import fiftyone.operators as foo

    if issubclass(cls, foo.Panel):
        return cls

    class Stepped(cls):
        @property
        def config(self):
            config = super().config
            config.description = step_description(config.name, config.description or config.label)
            return config

    Stepped.__name__, Stepped.__qualname__, Stepped.__module__ = cls.__name__, cls.__qualname__, cls.__module__
    Stepped.__doc__ = cls.__doc__
    return Stepped
