"""``autoscale app``'s environment and options (no server here; the App server itself is driven
in ``test_app_browser.py``, where ``warm_app_server`` is tested against a real one)."""

from __future__ import annotations

import os

import pytest


@pytest.fixture
def restored_app_state(monkeypatch):
    """apply_app_environment sets variables, FiftyOne's config and a logger filter for the rest of
    the process: undo them, so later tests (e.g. the show-option warning test) see FiftyOne as is."""
    import logging

    import fiftyone as fo

    for key in ("FIFTYONE_DATABASE_VALIDATION", "FIFTYONE_PLUGINS_CACHE_ENABLED"):
        monkeypatch.setenv(key, os.environ[key]) if key in os.environ else monkeypatch.delenv(key, raising=False)
    config_logger = logging.getLogger("fiftyone.core.config")
    filters, validation = list(config_logger.filters), fo.config.database_validation
    yield
    config_logger.filters[:] = filters
    fo.config.database_validation = validation


def test_app_environment_caches_plugins_unless_the_user_said_otherwise(monkeypatch, restored_app_state):
    from fiftyone_plugin.engine import app as app_env

    monkeypatch.delenv("FIFTYONE_PLUGINS_CACHE_ENABLED", raising=False)
    monkeypatch.delenv(app_env.WORKER_ENV, raising=False)
    app_env.apply_app_environment(worker=False)
    assert os.environ["FIFTYONE_PLUGINS_CACHE_ENABLED"] == "true"
    assert "FIFTYONE_PLUGINS_CACHE_ENABLED=true" in app_env.APP_NOTES  # printed by `autoscale app`

    monkeypatch.setenv("FIFTYONE_PLUGINS_CACHE_ENABLED", "false")  # a plugin developer's choice
    app_env.apply_app_environment(worker=False)
    assert os.environ["FIFTYONE_PLUGINS_CACHE_ENABLED"] == "false"


def test_app_command_warms_the_server_unless_told_not_to():
    from fiftyone_plugin.cli import build_parser

    assert build_parser().parse_args(["app"]).warm is True
    assert build_parser().parse_args(["app", "--no-warm"]).warm is False


def test_listing_the_operators_does_not_import_torch():
    """The App's first ``POST /operators`` imports every operator module before it requests the
    first grid page; torch there cost 1.5–2.7 s of first paint (app_scale_lazy_imports.md)."""
    import subprocess
    import sys

    code = ("import sys; from fiftyone_plugin import operator_classes; classes = operator_classes(); "
            "heavy = [m for m in ('torch', 'numba') if m in sys.modules]; print(len(classes), heavy)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    count, heavy = done.stdout.strip().splitlines()[-1].split(" ", 1)
    assert int(count) > 10 and heavy == "[]", done.stdout
