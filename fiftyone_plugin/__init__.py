"""AutoScale's FiftyOne plugin: operators, panels, dataset glue and the ``autoscale`` CLI.

Four packages, each depending only on the ones before it (and on ``autoscale_core``):

* :mod:`fiftyone_plugin.engine` — the FiftyOne-facing service functions (dataset glue, run
  records, safe writes, import/selection/planning/representation actions). Never imports
  ``fiftyone.operators``; the CLI, the App forms and Python call the same functions.
* :mod:`fiftyone_plugin.operators` — the App forms: thin ``foo.Operator`` classes that validate
  their inputs and call ``engine``; ``ui`` holds the shared form helpers, ``pipeline`` the order.
* :mod:`fiftyone_plugin.panel` — the Data Engine panel.
* :mod:`fiftyone_plugin.cli` — the ``autoscale`` command line.

FiftyOne loads this file as the plugin's entry point (``py_entry`` in ``fiftyone.yml``) under
a synthetic module name, and calls :func:`register`. Each module in :data:`OPERATOR_MODULES`
defines ``OPERATORS``, a list of ``foo.Operator``/``foo.Panel`` classes. To add yours: append
the module to :data:`OPERATOR_MODULES` and list each operator's name under ``operators:``
(panels under ``panels:``) in ``fiftyone.yml``.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

logger = logging.getLogger(__name__)

OPERATOR_MODULES = [
    "fiftyone_plugin.operators.demo",
    "fiftyone_plugin.operators.io",
    "fiftyone_plugin.operators.synthetic",
    "fiftyone_plugin.operators.selection",
    "fiftyone_plugin.operators.export",
    "fiftyone_plugin.panel.data_engine",
    "fiftyone_plugin.operators.representation",
    "fiftyone_plugin.operators.planning",
    "fiftyone_plugin.operators.scenarionet",
    "fiftyone_plugin.operators.draw",
]

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))


def _ensure_importable() -> None:
    """Make ``fiftyone_plugin``/``autoscale_core`` importable when the package is not installed."""
    try:
        importlib.import_module("autoscale_core")
        importlib.import_module("fiftyone_plugin.engine.scenes")
    except ImportError:
        sys.path.insert(0, _REPO_ROOT)


def operator_classes(strict: bool = True) -> list[type]:
    """Every operator/panel class of every module in :data:`OPERATOR_MODULES`.

    With ``strict=False`` a module that fails to import is logged and skipped, so one broken
    area does not take every other operator out of the App.
    """
    _ensure_importable()
    classes = []
    for name in OPERATOR_MODULES:
        try:
            module = importlib.import_module(name)
        except Exception:
            if strict:
                raise
            logger.exception("AutoScale plugin: could not import %s; its operators are skipped", name)
            continue
        classes.extend(getattr(module, "OPERATORS", []))
    return classes


def register(p) -> None:
    """FiftyOne's plugin hook: register all operators and panels, in pipeline order with the step
    in each description (so the App's operator browser lists them in that order; see operators/pipeline.py)."""
    from .operators.pipeline import in_pipeline_order, with_step_description

    for cls in in_pipeline_order(operator_classes(strict=False)):
        p.register(with_step_description(cls))
