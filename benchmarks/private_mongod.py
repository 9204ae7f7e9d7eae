"""A private, real ``mongod`` (FiftyOne's bundled binary) on a free port: what the scale benchmarks
run against so that their database numbers are their own, and what the tests use as an
"external" MongoDB (``tests/reliability_helpers.py`` re-exports it)."""

from __future__ import annotations

import os
import socket
import subprocess
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, NamedTuple, Sequence


class PrivateMongod(NamedTuple):
    uri: str  # mongodb://127.0.0.1:<port>
    pid: int


def mongod_binary() -> str | None:
    """Path of FiftyOne's bundled ``mongod``, found without importing fiftyone (whose config, the
    database URI included, is read at import)."""
    import importlib.util

    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.origin:
        return None
    path = os.path.join(os.path.dirname(spec.origin), "db", "bin", "mongod")
    return path if os.path.exists(path) else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def private_mongod(dbpath: str | os.PathLike | None = None, timeout: float = 90,
                   extra_args: Sequence[str] = ()) -> Iterator[PrivateMongod]:
    """Start ``mongod`` on a free port with ``dbpath`` (default: a temp dir, removed afterwards; a
    given one is kept, e.g. for a resumable run), wait until it answers, yield it, stop it after.
    Its log and unix socket live beside the data (``<dbpath>/mongod.log``); ``extra_args`` go to
    mongod's command line (e.g. ``["--wiredTigerCacheSizeGB", "2"]``)."""
    import pymongo

    binary = mongod_binary()
    if binary is None:
        raise FileNotFoundError("fiftyone's embedded mongod binary is not installed")
    with tempfile.TemporaryDirectory(prefix="autoscale-mongod-") as tmp:
        db = Path(dbpath) if dbpath is not None else Path(tmp) / "db"
        db.mkdir(parents=True, exist_ok=True)
        socket_dir = tmp  # a short path: unix socket names are limited to ~100 characters
        port = free_port()
        log_path = db / "mongod.log"
        proc = subprocess.Popen([binary, "--dbpath", str(db), "--port", str(port), "--bind_ip", "127.0.0.1",
                                 "--unixSocketPrefix", socket_dir, "--logpath", str(log_path), *extra_args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        uri = f"mongodb://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + timeout
            while True:
                if proc.poll() is not None:
                    log = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                    raise RuntimeError(f"mongod exited with {proc.returncode}: {log}")
                try:
                    pymongo.MongoClient(uri, serverSelectionTimeoutMS=1000).admin.command("ping")
                    break
                except pymongo.errors.PyMongoError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.5)
            yield PrivateMongod(uri, proc.pid)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
