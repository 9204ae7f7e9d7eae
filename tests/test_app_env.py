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

    for key in ("FIFTYONE_DATABASE_VALIDATION", "FIFTYONE_PLUGINS_CACHE_ENABLED", "FIFTYONE_APP_GRID_ZOOM",
                "FIFTYONE_APP_CONFIG_PATH"):
        monkeypatch.setenv(key, os.environ[key]) if key in os.environ else monkeypatch.delenv(key, raising=False)
    config_logger = logging.getLogger("fiftyone.core.config")
    filters, validation = list(config_logger.filters), fo.config.database_validation
    grid_zoom = fo.app_config.grid_zoom
    yield
    config_logger.filters[:] = filters
    fo.config.database_validation = validation
    fo.app_config.grid_zoom = grid_zoom


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


def test_app_environment_opens_the_grid_with_larger_tiles_unless_the_user_chose(monkeypatch, tmp_path,
                                                                               restored_app_state):
    """grid_zoom 8: 2 grid pages before the first paint instead of 4 (app_scale_grid_zoom.md). The
    variable would override the user's App config file, so a file that sets grid_zoom wins."""
    import json

    import fiftyone as fo

    from fiftyone_plugin.engine import app as app_env

    config = tmp_path / "app_config.json"
    monkeypatch.setenv("FIFTYONE_APP_CONFIG_PATH", str(config))  # no file yet
    monkeypatch.delenv("FIFTYONE_APP_GRID_ZOOM", raising=False)
    fo.app_config.grid_zoom = 7
    app_env.apply_app_environment(worker=False)
    assert os.environ["FIFTYONE_APP_GRID_ZOOM"] == "8"
    assert fo.app_config.grid_zoom == 8  # fiftyone was imported first: its App config is set too
    assert "FIFTYONE_APP_GRID_ZOOM=8" in app_env.APP_NOTES

    monkeypatch.delenv("FIFTYONE_APP_GRID_ZOOM")
    config.write_text(json.dumps({"grid_zoom": 4}))
    fo.app_config.grid_zoom = 4
    app_env.apply_app_environment(worker=False)
    assert "FIFTYONE_APP_GRID_ZOOM" not in os.environ and fo.app_config.grid_zoom == 4

    config.unlink()
    monkeypatch.setenv("FIFTYONE_APP_GRID_ZOOM", "6")  # the user's variable
    fo.app_config.grid_zoom = 6
    app_env.apply_app_environment(worker=False)
    assert os.environ["FIFTYONE_APP_GRID_ZOOM"] == "6" and fo.app_config.grid_zoom == 6


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
