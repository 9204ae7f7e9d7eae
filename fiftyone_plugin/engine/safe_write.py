"""Crash-safe, concurrency-safe bulk writes of per-scene fields.

A write of several result fields (e.g. ``value_s``, ``value_r``, ``value_u``, ``value_q``) must
never be seen half done: not half a field, not two of four fields. :func:`staged_write` does it
in four steps, all under a per-dataset write lock (a document in the ``autoscale_locks``
collection, so it also holds across processes and machines):

1. **record** a run ``write_<run>_<attempt>`` (method ``staged_write``, status ``running``,
   phase ``staging``) with the pid and host of the writer;
2. **stage**: serialize the values with the fields' FiftyOne types and insert them into a
   staging collection ``autoscale_staging_<attempt>`` (``{_id: sample id, field: value}``) —
   the dataset itself is not touched, so its samples and schema are exactly as before;
3. **publish**: set the phase to ``publishing``, declare the new fields in the schema and copy
   every field of every staged document into the samples with one server-side ``$merge``
   (each sample document receives all its fields in one atomic update);
4. drop the staging collection and mark the run ``completed``.

**Recovery** runs at the start of every staged write (and by :func:`recover`): the write lock
guarantees that a ``running`` write record found while holding it belongs to a dead writer.
Records still in the staging phase are rolled back (staging collection dropped, run marked
``failed``: the dataset was never touched); records in the publishing phase are rolled forward
(the publish is idempotent), so the dataset ends fully written. Either way nothing is half
written, and the failed run stays visible in ``list_runs``.

**FiftyOne internals.** Three uses of FiftyOne's private API have no public equivalent that
keeps the write atomic; each is checked by ``tests/test_fiftyone_internals.py`` so an upgrade that
removes one fails loudly there, and ``pyproject.toml`` allows only the minor version tested
(fiftyone 1.22.x; tested with 1.22.1):

* ``dataset._sample_collection_name`` — the MongoDB collection the ``$merge`` writes into (the
  public API writes sample by sample or field by field, which is what this module avoids);
* ``dataset._merge_sample_field_schema`` — declares all new fields in one schema update before the
  merge (``add_sample_field`` would declare them one at a time, with a reload each);
* ``dataset._doc.id`` — the dataset's database id, which names its lock and staging collections
  (stable across renames, unlike the name).

Test hooks: ``AUTOSCALE_TEST_PAUSE_BEFORE_PUBLISH=<seconds>`` makes the writer print
``autoscale: staged <run>; publishing in <s> s`` on stderr and sleep before publishing, and
``AUTOSCALE_TEST_PAUSE_IN_PUBLISH=<seconds>`` sleeps after the schema change and before the
``$merge`` (the worst moment to die), so a test can SIGKILL it deterministically there.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from typing import Any, Iterator, Mapping, Sequence

import fiftyone as fo
import fiftyone.core.odm as foo
import numpy as np
from fiftyone.core.odm.utils import create_field, create_implied_field, get_field_kwargs, validate_fields_match

from . import runs
from .keys import root_dataset

logger = logging.getLogger(__name__)

WRITE_METHOD = "staged_write"
LOCK_COLLECTION = "autoscale_locks"
STAGING_PREFIX = "autoscale_staging_"
PAUSE_ENV = "AUTOSCALE_TEST_PAUSE_BEFORE_PUBLISH"
PAUSE_IN_PUBLISH_ENV = "AUTOSCALE_TEST_PAUSE_IN_PUBLISH"  # after the schema change, before the $merge
PROTECTED_FIELDS = ("id", "_id", "filepath", "scene_id", "tags", "metadata", "created_at", "last_modified_at")
STAGE_CHUNK = 10_000


class SafeWriteError(ValueError):
    """Bad write input (fields, values, ids, types) or a lock that could not be taken."""


# ---------------------------------------------------------------------------------- locks
def _host() -> str:
    """Where a pid is meaningful: host name, kernel boot and pid namespace (containers that
    share a host name and a MongoDB must not judge each other's pids)."""
    parts = [socket.gethostname()]
    try:
        parts.append(open("/proc/sys/kernel/random/boot_id").read().strip()[:8])
        parts.append(str(os.stat("/proc/self/ns/pid").st_ino))
    except OSError:
        pass
    return "/".join(parts)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def _lock_is_stale(doc: Mapping[str, Any]) -> bool:
    """A lock whose holder died: same host and its pid is gone, or past its expiry."""
    if doc.get("host") == _host() and not _pid_alive(int(doc.get("pid", -1))):
        return True
    expires = doc.get("expires_at")
    return expires is not None and expires < datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


_held = threading.local()  # lock names this thread holds


@contextmanager
def exclusive(name: str, *, timeout_s: float = 600.0, ttl_s: float = 6 * 3600.0) -> Iterator[str]:
    """Hold the named cross-process lock ``name`` (a MongoDB document) for the ``with`` block.

    Waits up to ``timeout_s`` for another holder; a holder that died (same host, dead pid, or
    past ``ttl_s``) is evicted. Raises :class:`SafeWriteError` on timeout.
    """
    from pymongo.errors import DuplicateKeyError

    held_here = getattr(_held, "names", None)
    if held_here is None:
        held_here = _held.names = {}
    if name in held_here:  # re-entrant within one thread (e.g. a selection that also writes fields)
        yield held_here[name]
        return
    locks = foo.get_db_conn()[LOCK_COLLECTION]
    token = uuid.uuid4().hex
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    doc = {"_id": name, "token": token, "pid": os.getpid(), "host": _host(), "acquired_at": now,
           "expires_at": now + datetime.timedelta(seconds=ttl_s)}
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            locks.insert_one(doc)
            break
        except DuplicateKeyError:
            held = locks.find_one({"_id": name})
            if held is not None and _lock_is_stale(held):
                logger.warning("evicting stale lock %s of pid %s@%s", name, held.get("pid"), held.get("host"))
                locks.delete_one({"_id": name, "token": held["token"]})
                continue
            if time.monotonic() > deadline:
                who = f"pid {held.get('pid')} on {held.get('host')}" if held else "another writer"
                raise SafeWriteError(f"lock {name!r} is held by {who}; gave up after {timeout_s:.0f} s") from None
            time.sleep(0.1)
    held_here[name] = token
    try:
        yield token
    finally:
        del held_here[name]
        locks.delete_one({"_id": name, "token": token})


def dataset_lock_name(dataset: fo.Dataset, what: str = "write") -> str:
    return f"{what}:{dataset._doc.id}"


# ---------------------------------------------------------------------------------- helpers
def _check_run_key(run_key: str) -> None:
    if not isinstance(run_key, str) or not run_key or not (run_key[0].isalpha() or run_key[0] == "_") \
            or not all(c.isalnum() or c == "_" for c in run_key):
        raise SafeWriteError(f"run key {run_key!r} must be a Python identifier (letters, digits, _)")


def _column(field: str, column) -> list:
    """One value per scene as plain Python / numpy rows; NaN/inf rejected (naming the field)."""
    if isinstance(column, np.ndarray):
        if column.dtype.kind == "f" and not np.isfinite(column).all():
            raise SafeWriteError(f"field {field!r} contains NaN or inf")
        if column.ndim == 1:
            return column.tolist()
        if column.ndim == 2:
            return [np.ascontiguousarray(row) for row in column]
        raise SafeWriteError(f"field {field!r}: arrays must be 1-D or 2-D, got shape {column.shape}")
    out = []
    for v in column:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            raise SafeWriteError(f"field {field!r} contains NaN or inf")
        if isinstance(v, np.ndarray) and v.dtype.kind == "f" and not np.isfinite(v).all():
            raise SafeWriteError(f"field {field!r} contains NaN or inf")
        out.append(v)
    return out


def _field_for(dataset: fo.Dataset, field: str, values: list):
    """The FiftyOne field to write ``values`` as: the existing one (type-checked) or an implied one."""
    sample = next((v for v in values if v is not None), None)
    if sample is None:
        raise SafeWriteError(f"field {field!r}: all values are None")
    try:
        implied = create_implied_field(field, sample)
    except Exception as exc:
        raise SafeWriteError(f"field {field!r}: cannot store values of type {type(sample).__name__}: {exc}") from exc
    existing = dataset.get_field(field) if dataset.has_sample_field(field) else None
    if existing is not None:
        try:
            validate_fields_match(field, implied, existing)
        except ValueError as exc:
            raise SafeWriteError(f"field {field!r} exists as {type(existing).__name__}; "
                                 f"cannot write {type(implied).__name__} values to it") from exc
        return existing, False
    return implied, True


def _serialize(field: str, ftype, values: list) -> list:
    out = []
    for v in values:
        if v is None:
            out.append(None)
            continue
        try:
            ftype.validate(v)
        except Exception as exc:
            raise SafeWriteError(f"field {field!r}: invalid value {v!r:.60}: {exc}") from exc
        out.append(ftype.to_mongo(v))
    return out


def _pause(env: str, message: str) -> None:
    """Test hook: announce on stderr and sleep ``$env`` seconds, so a test can SIGKILL us here."""
    seconds = os.environ.get(env)
    if seconds:
        print(f"autoscale: {message} in {seconds} s", file=sys.stderr, flush=True)
        time.sleep(float(seconds))


# ---------------------------------------------------------------------------------- write
def default_run_key(fields) -> str:
    """A run key naming the written fields, e.g. ``value_q_value_s`` (identifier, ≤ 60 chars)."""
    text = "_".join(sorted(str(f) for f in fields))
    key = "".join(c if c.isalnum() else "_" for c in text)[:60] or "fields"
    return key if key[0].isalpha() else "f_" + key


def staged_write(
    view: fo.Dataset | fo.DatasetView,
    run_key: str,
    values_by_field: Mapping[str, Sequence | np.ndarray],
    scene_ids: Sequence[str] | None = None,
    *,
    lock_timeout_s: float = 600.0,
) -> dict:
    """Write ``values_by_field`` for ``scene_ids`` all-or-nothing (see the module docstring).

    Args:
        view: the samples written to (their dataset receives the values).
        run_key: the computation writing (identifier, e.g. ``value_handcrafted``); names the
            write record ``write_<run_key>_<attempt>``.
        values_by_field: field → one value per scene (list, 1-D array, or (S, D) array = one
            vector per sample).
        scene_ids: the scenes the values belong to; default the view's scenes in order.

    Returns:
        ``{"run": record key, "fields": [...], "num_scenes": S, "recovered": [...]}``.

    Raises:
        SafeWriteError: bad input (naming the field / ids); nothing is written.
    """
    _check_run_key(run_key)
    if not values_by_field:
        raise SafeWriteError("staged_write got no fields to write")
    dataset = root_dataset(view)
    view_ids = [str(s) for s in view.values("scene_id")]
    scene_ids = view_ids if scene_ids is None else [str(s) for s in scene_ids]
    if not scene_ids:
        raise SafeWriteError(f"the view of dataset {dataset.name!r} is empty: nothing to write")
    if len(set(scene_ids)) != len(scene_ids):
        raise SafeWriteError("scene_ids contain duplicates")
    missing = set(scene_ids) - set(view_ids)
    if missing:
        raise SafeWriteError(f"{len(missing)} scene_id(s) not in the view of dataset {dataset.name!r}, "
                             f"e.g. {sorted(missing)[:3]}")
    columns = {}
    for field, column in values_by_field.items():
        if not isinstance(field, str) or not field or field.startswith("_") or "." in field \
                or field.startswith(STAGING_PREFIX) or field in PROTECTED_FIELDS:
            raise SafeWriteError(f"cannot write field {field!r}")
        values = _column(field, column)
        if len(values) != len(scene_ids):
            raise SafeWriteError(f"field {field!r} has {len(values)} values for {len(scene_ids)} scenes")
        columns[field] = values

    with exclusive(dataset_lock_name(dataset), timeout_s=lock_timeout_s):
        dataset.reload()  # another process may have changed the schema since we loaded it
        recovered = _recover_locked(dataset)
        fields = {f: _field_for(dataset, f, v) for f, v in columns.items()}
        serialized = {f: _serialize(f, fields[f][0], v) for f, v in columns.items()}
        id_of = dict(zip(dataset.values("scene_id"), dataset.values("_id")))
        attempt = uuid.uuid4().hex[:10]
        key = f"write_{run_key}_{attempt}"[:120]
        staging = f"{STAGING_PREFIX}{dataset._doc.id}_{attempt}"
        new_fields = {f: str(ft) for f, (ft, new) in fields.items() if new}
        config = {"run": run_key, "fields": list(columns), "new_fields": new_fields, "staging": staging,
                  "phase": "staging", "pid": os.getpid(), "host": _host(), "num_scenes": len(scene_ids)}
        runs.start_run(dataset, key, WRITE_METHOD, config)
        try:
            _stage(staging, scene_ids, id_of, serialized)
            _pause(PAUSE_ENV, f"staged {run_key}; publishing")
            _set_phase(dataset, key, "publishing")  # one in-place update of the run document
            _publish(dataset, staging, new_fields, hooks=True)
        except BaseException as exc:
            # A Python-level failure (not a kill): roll back if nothing was published yet.
            _abort(dataset, key, staging, exc)
            raise
        runs.finish_run(dataset, key, {"fields": list(columns), "num_scenes": len(scene_ids)})
        _prune_completed(dataset, run_key, keep=key)
    return {"run": key, "fields": list(columns), "num_scenes": len(scene_ids), "recovered": recovered}


def _stage(staging: str, scene_ids: list[str], id_of: dict, serialized: dict[str, list]) -> None:
    coll = foo.get_db_conn()[staging]
    names = list(serialized)
    for start in range(0, len(scene_ids), STAGE_CHUNK):
        docs = []
        for i in range(start, min(start + STAGE_CHUNK, len(scene_ids))):
            doc = {"_id": id_of[scene_ids[i]]}
            for name in names:
                doc[name] = serialized[name][i]
            docs.append(doc)
        coll.insert_many(docs, ordered=False)


def _set_phase(dataset: fo.Dataset, key: str, phase: str) -> None:
    run_config = dataset.get_run_info(key).config
    run_config.params = {**run_config.params, "phase": phase}
    dataset.update_run_config(key, run_config)


def _publish(dataset: fo.Dataset, staging: str, new_fields: Mapping[str, str], *, hooks: bool = False) -> None:
    """Declare new fields (name → ``str(field)``), then copy all staged fields into the samples
    in one server-side ``$merge`` (idempotent: it can be redone after a crash)."""
    missing = {f: s for f, s in new_fields.items() if not dataset.has_sample_field(f)}
    if missing:
        dataset._merge_sample_field_schema({f: create_field(f, **get_field_kwargs(s)) for f, s in missing.items()})
    if hooks:
        _pause(PAUSE_IN_PUBLISH_ENV, f"declared {sorted(new_fields)}; merging")
    db = foo.get_db_conn()
    if staging in db.list_collection_names():
        db[staging].aggregate([
            {"$addFields": {"last_modified_at": "$$NOW"}},
            {"$merge": {"into": dataset._sample_collection_name, "on": "_id",
                        "whenMatched": "merge", "whenNotMatched": "discard"}},
        ])
        db.drop_collection(staging)
    dataset.reload()


def _abort(dataset: fo.Dataset, key: str, staging: str, exc: BaseException) -> None:
    try:
        info = runs.get_run(dataset, key)
        if info["config"].get("phase") == "publishing":
            _publish(dataset, staging, info["config"].get("new_fields", {}))  # finish it: fully written
            runs.finish_run(dataset, key, {"error": f"{type(exc).__name__}: {exc}", "rolled": "forward"},
                            status="failed")
        else:
            foo.get_db_conn().drop_collection(staging)
            runs.finish_run(dataset, key, {"error": f"{type(exc).__name__}: {exc}", "rolled": "back"},
                            status="failed")
    except Exception:  # never mask the original error
        logger.exception("could not record the failure of write %s", key)
        if _phase_of(dataset, key) != "publishing":
            foo.get_db_conn().drop_collection(staging)


def _phase_of(dataset: fo.Dataset, key: str) -> str | None:
    try:
        return dataset.get_run_info(key).config.params.get("phase")
    except Exception:
        return None


def _prune_completed(dataset: fo.Dataset, run_key: str, keep: str) -> None:
    """Keep one completed write record per run key (failed ones stay visible)."""
    for run in runs.list_runs(dataset, method=WRITE_METHOD):
        if run["key"] != keep and run["config"].get("run") == run_key and run["status"] == "completed":
            runs.delete_run(dataset, run["key"])


# ---------------------------------------------------------------------------------- recovery
def recover(dataset: fo.Dataset, *, lock_timeout_s: float = 600.0) -> list[dict]:
    """Finish or undo the writes of dead writers; returns what was done per write record."""
    dataset = root_dataset(dataset)
    with exclusive(dataset_lock_name(dataset), timeout_s=lock_timeout_s):
        dataset.reload()
        return _recover_locked(dataset)


def _recover_locked(dataset: fo.Dataset) -> list[dict]:
    done = []
    for run in runs.list_runs(dataset, method=WRITE_METHOD):
        if run["status"] != "running":
            continue
        cfg = run["config"]
        staging = cfg.get("staging")
        if cfg.get("phase") == "publishing":
            _publish(dataset, staging, cfg.get("new_fields", {}))
            action = "rolled forward (publish completed)"
        else:
            if staging:
                foo.get_db_conn().drop_collection(staging)
            action = "rolled back (staged values discarded; dataset untouched)"
        runs.finish_run(dataset, run["key"], {"error": f"writer pid {cfg.get('pid')}@{cfg.get('host')} died",
                                              "recovery": action}, status="failed")
        logger.warning("write %s of a dead writer %s", run["key"], action)
        done.append({"run": run["key"], "action": action})
    # Staging collections of this dataset without a running record (a writer killed while
    # its record was being written): nothing was published from them.
    # Also those of datasets deleted since (their writes can never be published).
    prefix = f"{STAGING_PREFIX}{dataset._doc.id}_"
    # (List the collections before the datasets: a staging collection is only created after
    # its dataset, so a live writer's dataset is always in ``live``.)
    candidates = staging_collections()
    live = {str(d["_id"]) for d in foo.get_db_conn()["datasets"].find({}, {"_id": 1})}
    for name in candidates:
        owner = name[len(STAGING_PREFIX):].split("_", 1)[0]
        if name.startswith(prefix) or owner not in live:
            foo.get_db_conn().drop_collection(name)
            done.append({"staging": name, "action": "orphan staging collection dropped"})
    return done


def staging_collections() -> list[str]:
    """Names of staging collections currently in the database (for tests and diagnostics)."""
    return sorted(n for n in foo.get_db_conn().list_collection_names() if n.startswith(STAGING_PREFIX))
