"""Adding scenes as one transaction, from the user's point of view.

:func:`fiftyone_plugin.engine.scenes.add_scenes` writes four things: BEV images, a store shard, the
samples, then their overlay fields (``route`` last). A process killed between them (``kill -9``,
a full disk, a power cut) must not leave samples without overlays that a rerun skips as
"already present", duplicate store rows, or orphan images. :func:`adding` makes it safe:

* it holds a cross-process lock named after the **scene store** (clones share a store, so two
  datasets appending to one store are serialized too) — a lock that a dead process held is
  evicted, so finding an add marker while holding the lock means its writer is dead;
* it leaves a marker in ``dataset.info["autoscale_adding"]`` (pid, host, count, start time and
  the ``_id`` range(s) reserved for the add's samples, see :func:`reserve_sample_ids`) for the
  duration of the add;
* **in-process failure** (any exception): the samples it added are deleted, the images it
  rendered for new scenes are removed unless some sample refers to them, the marker is cleared
  and a ``failed`` run ``add_scenes_<time>`` records the error;
* **recovery** (a marker found at the next add, or :func:`recover_interrupted_add`): the samples
  whose ``_id`` lies in the marker's reserved range(s) — whatever the dead add had inserted,
  complete or not — are deleted, and so are scene samples without their last overlay field
  (``route``), which only the older add protocol can leave (before the second round of work on
  issue #19 it wrote the overlays in a separate update after the insert, ``route`` last); images
  in the media folder that no sample of any dataset refers to are removed, temporary store
  folders are removed, and the failed run is recorded. The rerun then adds those scenes again;
  store rows already present are reused (``add_scenes`` appends only scenes the store lacks), so
  no row is ever duplicated.

Samples are inserted whole (every overlay included) with ``_id`` values from a block reserved
in the marker before anything is written, so no second write per sample is needed to tell a
complete add from an interrupted one: the old second pass (``route`` written last with one
update per sample) cost mongod twice the insert itself.

Test hook: ``AUTOSCALE_TEST_PAUSE_IN_ADD=<seconds>`` makes the writer announce
``autoscale: samples added, overlays in <s> s`` on stderr and sleep after inserting the samples,
before the add is marked complete (the worst moment to die).
"""

from __future__ import annotations

import datetime
import logging
import os
import secrets
import shutil
import socket
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import fiftyone as fo
from bson import ObjectId

from . import ownership, runs
from .safe_write import _pause, exclusive

logger = logging.getLogger(__name__)

ADDING_INFO_KEY = "autoscale_adding"
COMPLETE_FIELD = "route"  # every complete scene sample has it (the older protocol wrote it last)
PAUSE_IN_ADD_ENV = "AUTOSCALE_TEST_PAUSE_IN_ADD"
ADD_METHOD = "add_scenes"


@dataclass
class AddTransaction:
    """What one add wrote so far (filled in by ``add_scenes``), for the rollback."""

    dataset: fo.Dataset
    new_images: list[str] = field(default_factory=list)
    sample_ids: list[str] = field(default_factory=list)
    reserved_ids: list[ObjectId] = field(default_factory=list)  # the new samples' _id values, in order

    def pause_before_complete(self) -> None:
        _pause(PAUSE_IN_ADD_ENV, "samples added, overlays")  # the text tests wait for


def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).isoformat()


def _lock_name(store_root: str) -> str:
    return f"add:{Path(store_root).resolve()}"


_COUNTER = 1 << 24  # ObjectIds end in a 3-byte counter


def reserve_sample_ids(count: int) -> tuple[list[ObjectId], list[list[str]]]:
    """``count`` fresh ObjectIds and the ranges ``[[first, last], ...]`` (hex) that hold them.

    The ids are what ``count`` calls of ``ObjectId()`` would return (this second, this process's
    random value, consecutive counters: increasing, like FiftyOne's own ids), reserved at once
    from bson's counter, so no other ``ObjectId()`` of this process takes them. Any ``_id``
    between a range's ends shares its first 9 bytes, hence is one of the reserved ids (other
    processes have other random values). A counter wrap splits the ids into two ranges. Without
    bson's counter (a pymongo that renamed it) each block gets its own 5 random bytes instead.
    """
    if count <= 0:
        return [], []
    first = ObjectId()
    lock, prefix = getattr(ObjectId, "_inc_lock", None), first.binary[:9]
    if lock is not None and isinstance(getattr(ObjectId, "_inc", None), int):
        with lock:
            start = ObjectId._inc
            ObjectId._inc = (start + count - 1) % _COUNTER
        counters = [first.binary[9:]] + [(c % _COUNTER).to_bytes(3, "big") for c in range(start, start + count - 1)]
    else:  # pragma: no cover - other pymongo versions
        prefix = first.binary[:4] + secrets.token_bytes(5)
        start = secrets.randbelow(_COUNTER - count + 1) if count < _COUNTER else 0
        counters = [(c % _COUNTER).to_bytes(3, "big") for c in range(start, start + count)]
    ids = [ObjectId(prefix + c) for c in counters]
    ranges, begin = [], 0
    for i in range(1, count + 1):  # split where the counter wraps (or jumps)
        if i == count or int.from_bytes(counters[i], "big") != int.from_bytes(counters[i - 1], "big") + 1:
            ranges.append([str(ids[begin]), str(ids[i - 1])])
            begin = i
    return ids, ranges


@contextmanager
def adding(dataset: fo.Dataset, store_root: str, count: int) -> Iterator[AddTransaction]:
    """The ``with`` block adds ``count`` scenes to ``dataset`` (see the module docstring); new
    samples take their ``_id`` from ``tx.reserved_ids`` (recorded in the marker)."""
    with exclusive(_lock_name(store_root)):
        recover_interrupted_add(dataset, _locked=True)
        reserved, ranges = reserve_sample_ids(int(count))
        dataset.info[ADDING_INFO_KEY] = {"pid": os.getpid(), "host": socket.gethostname(),
                                         "count": int(count), "started_at": _now(), "id_ranges": ranges}
        dataset.save()
        tx = AddTransaction(dataset, reserved_ids=reserved)
        try:
            yield tx
        except BaseException as exc:
            _rollback(tx, exc)
            raise
        dataset.info.pop(ADDING_INFO_KEY, None)
        dataset.save()


def _rollback(tx: AddTransaction, exc: BaseException) -> None:
    dataset = tx.dataset
    try:
        if tx.sample_ids:
            dataset.delete_samples(tx.sample_ids)
        unused = set(tx.new_images) - ownership.referenced_files(tx.new_images)
        for path in unused:
            Path(path).unlink(missing_ok=True)
        _remove_own_temporaries(unused)
        marker = dataset.info.pop(ADDING_INFO_KEY, None) or {}
        dataset.save()
        _record_failed(dataset, marker, {"error": f"{type(exc).__name__}: {exc}",
                                         "recovery": "rolled back in process"})
    except Exception:  # the original error matters more; the next add's recovery finishes this
        logger.exception("rollback of a failed add to %r was incomplete", dataset.name)


def _remove_own_temporaries(images: set[str]) -> None:
    """Remove this process's half-written ``.<image>.<pid>-<hex>.tmp`` files of ``images``: one
    scan per folder (a glob per image made a rollback of 60k images take an hour)."""
    mine = f".{os.getpid()}-"
    by_folder: dict[Path, set[str]] = {}
    for path in images:
        by_folder.setdefault(Path(path).parent, set()).add(Path(path).name)
    for folder, names in by_folder.items():
        for tmp in folder.glob(".*.tmp"):
            base = tmp.name[1:].split(mine, 1)[0]  # ".<name>.<pid>-<hex>.tmp" -> "<name>"
            if mine in tmp.name and base in names:
                tmp.unlink(missing_ok=True)


def _record_failed(dataset: fo.Dataset, marker: dict, results: dict) -> None:
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%S%f")
    runs.record_run(dataset, f"add_scenes_{stamp}", ADD_METHOD, {k: marker.get(k) for k in ("count", "pid", "host")},
                    results, status="failed", started_at=marker.get("started_at"))


def recover_interrupted_add(dataset: fo.Dataset, *, _locked: bool = False) -> dict | None:
    """Clean up after an add whose process died; returns what was done (None: nothing to do)."""
    dataset.reload()
    marker = dataset.info.get(ADDING_INFO_KEY)
    if not marker:
        return None
    store_root = dataset.info.get(ownership.STORE_INFO_KEY)
    if not _locked and store_root:
        with exclusive(_lock_name(store_root)):
            return recover_interrupted_add(dataset, _locked=True)
    # The dead add's samples (its reserved _id ranges), and scene samples without their last
    # overlay (what an add that wrote ``route`` in a second pass, before issue #19, left).
    queries = [{"_id": {"$gte": ObjectId(lo), "$lte": ObjectId(hi)}} for lo, hi in marker.get("id_ranges") or []]
    queries.append({COMPLETE_FIELD: None, "scene_id": {"$ne": None}})  # our scene samples only
    incomplete = [str(d["_id"]) for d in dataset._sample_collection.find({"$or": queries}, {"_id": 1})]
    if incomplete:
        dataset.delete_samples(incomplete)
    removed_images = _remove_orphan_images(dataset.info.get(ownership.MEDIA_INFO_KEY))
    removed_tmp = _remove_store_temporaries(store_root)
    done = {"recovery": "rolled back an interrupted add", "incomplete_samples_deleted": len(incomplete),
            "orphan_images_removed": removed_images, "store_temporaries_removed": removed_tmp,
            "error": f"the adding process (pid {marker.get('pid')} on {marker.get('host')}) died"}
    dataset.info.pop(ADDING_INFO_KEY, None)
    dataset.save()
    _record_failed(dataset, marker, done)
    logger.warning("dataset %r: %s", dataset.name, done)
    return done


def _remove_orphan_images(media: str | None) -> int:
    """Remove files in the media folder that no sample of any dataset refers to."""
    if not media or not Path(media).is_dir():
        return 0
    used = ownership.files_referenced_under(media)
    orphans = [p for p in Path(media).glob("*.png") if p.is_file() and str(p) not in used]
    orphans += list(Path(media).glob(".*.png.*.tmp"))  # half-written by the dead renderer
    for path in orphans:
        path.unlink(missing_ok=True)
    return len(orphans)


def _remove_store_temporaries(store_root: str | None) -> int:
    """Half-written shard folders (``.tmp-*``) of a dead writer (we hold the store's lock)."""
    if not store_root or not Path(store_root).is_dir():
        return 0
    root = Path(store_root)
    stale = [p for p in (*root.glob(".tmp-*"), *root.glob(".manifest-*")) if p.exists()]
    for path in stale:
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    return len(stale)
