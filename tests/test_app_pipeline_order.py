"""The App lists AutoScale's operators in pipeline order, and ``autoscale app`` starts quietly:
fiftyone.yml, the plugin's registration and the operator browser's order agree with
``fiftyone_plugin.operators.pipeline.PIPELINE``; FiftyOne's repeated ``show_*`` warnings are filtered."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[1]


def test_manifest_and_operators_follow_the_pipeline():
    from fiftyone_plugin import operator_classes
    from fiftyone_plugin.operators.pipeline import PIPELINE_ORDER

    manifest = yaml.safe_load((REPO_ROOT / "fiftyone.yml").read_text())
    assert tuple(manifest["operators"]) == PIPELINE_ORDER
    names = {cls().config.name for cls in operator_classes()} - set(manifest["panels"])
    assert names == set(PIPELINE_ORDER)


def _operator_browser_order(operators) -> list[str]:
    """FiftyOne 1.22's operator browser order with no query and nothing recently used
    (``operatorBrowserChoices`` in the App bundle): listed operators, stably sorted by the first
    character of ``description || label``."""
    listed = [op for op in operators if not op.config.unlisted]
    return [op.uri for op in sorted(listed, key=lambda op: ord((op.config.description or op.config.label)[0]))]


@pytest.mark.usefixtures("plugin_link")
def test_operator_browser_lists_autoscale_first_in_pipeline_order(fo):
    import fiftyone.operators as foo

    from fiftyone_plugin.operators.pipeline import PIPELINE_ORDER

    order = _operator_browser_order(foo.list_operators())
    ours = [uri.split("/")[-1] for uri in order if uri.startswith("@autoscale/")]
    assert ours == list(PIPELINE_ORDER)
    assert order[:len(ours)] == [f"@autoscale/autoscale/{name}" for name in ours]  # ahead of FiftyOne's own
    described = {op.name: op.config.description for op in foo.list_operators() if op.uri.startswith("@autoscale/")}
    assert described["create_demo_dataset"].startswith("1. data: Generate driving scenes")
    assert described["select_active"].startswith("4. selection: Top-m by value Q")
    assert described["export_scenarionet"].startswith("5. export: ")


def test_removed_show_option_warnings_are_filtered_once_explained(fo, caplog):
    from fiftyone_plugin.engine import app as app_env

    config_logger = logging.getLogger("fiftyone.core.config")
    before = list(config_logger.filters)
    # start from FiftyOne as it is, whatever ran earlier in this process (`autoscale app` installs the filter)
    config_logger.filters[:] = [f for f in before if not isinstance(f, app_env._RemovedShowOptionsFilter)]
    try:
        with caplog.at_level(logging.WARNING, logger="fiftyone.core.config"):
            fo.AppConfig.from_dict(fo.app_config.serialize())  # what every App state update does
        assert any("show_label" in r.getMessage() for r in caplog.records), "FiftyOne no longer warns: drop the filter"
        caplog.clear()
        app_env.quiet_removed_show_options()
        app_env.quiet_removed_show_options()  # idempotent
        with caplog.at_level(logging.WARNING, logger="fiftyone.core.config"):
            fo.AppConfig.from_dict(fo.app_config.serialize())
            logging.getLogger("fiftyone.core.config").warning("Ignoring invalid timezone 'x'")
        assert [r.getMessage() for r in caplog.records] == ["Ignoring invalid timezone 'x'"]  # others still shown
        assert "show_label" in app_env.APP_NOTES  # explained once, in what `autoscale app` prints
    finally:
        config_logger.filters[:] = before
