"""Helpers shared by the reliability tests: dataset snapshots, CLI in a subprocess, a private mongod."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

from benchmarks.private_mongod import free_port, mongod_binary, private_mongod  # noqa: F401  (re-exported)

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def snapshot(dataset, exclude: tuple[str, ...] = ()) -> dict:
    """Counts, the public schema (names and types), a hash of every sample document as stored
    (all fields, ``last_modified_at`` aside), tag counts and saved views."""
    import bson

    dataset.reload()
    schema = {name: str(field) for name, field in dataset.get_field_schema().items()}
    digest = hashlib.sha1()
    count = 0
    for doc in dataset._sample_collection.find({}, sort=[("_id", 1)]):
        for key in ("last_modified_at", *exclude):
            doc.pop(key, None)
        digest.update(bson.encode(doc))
        count += 1
    return {
        "count": len(dataset),
        "documents": count,
        "schema": schema,
        "hash": digest.hexdigest(),
        "tags": dataset.count_sample_tags(),
        "saved_views": sorted(dataset.list_saved_views()),
    }


def cli_env(**extra: str) -> dict:
    env = dict(os.environ)
    env.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    env["PYTHONPATH"] = REPO_ROOT + os.pathsep + env.get("PYTHONPATH", "")
    env.update(extra)
    return env


def run_python(code: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python (same venv) from the repo root."""
    return subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, env=env or cli_env(),
                          capture_output=True, text=True, timeout=timeout)


def run_cli(*argv: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """``autoscale <argv>`` in a subprocess (the console script's entry point, same venv)."""
    code = "import sys; from fiftyone_plugin.cli import main; sys.exit(main(sys.argv[1:]))"
    return subprocess.run([sys.executable, "-c", code, *argv], cwd=REPO_ROOT,
                          env=env or cli_env(), capture_output=True, text=True, timeout=timeout)


def cli_script(commands: list[list[str]]) -> str:
    """Python code running several ``autoscale`` commands in one process (one fiftyone import);
    prints ``RC <i> <code>`` per command and stops at the first failure."""
    return (
        "import sys\nfrom fiftyone_plugin.cli import main\n"
        f"for i, argv in enumerate({commands!r}):\n"
        "    code = main(argv)\n"
        "    print(f'RC {i} {code}', flush=True)\n"
        "    if code:\n"
        "        sys.exit(code)\n"
    )


def start_and_wait_for(argv_or_code, marker: str, env: dict, timeout: float = 240) -> subprocess.Popen:
    """Start a Python subprocess and return once ``marker`` appears on its stderr."""
    proc = subprocess.Popen([sys.executable, "-c", argv_or_code], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    seen = []
    assert proc.stderr is not None
    while time.monotonic() < deadline:
        line = proc.stderr.readline()
        if not line:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return proc
    proc.kill()
    out = proc.stdout.read() if proc.stdout else ""
    raise AssertionError(f"marker {marker!r} never appeared; rc={proc.poll()}\nstderr:\n{''.join(seen)[-3000:]}\n"
                         f"stdout:\n{out[-2000:]}")


def kill9(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)


