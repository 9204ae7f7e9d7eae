"""Who owns a scene store or a media folder: delete only what no other dataset refers to.

A dataset's arrays live in ``dataset.info["autoscale_store"]`` and its BEV images in
``dataset.info["autoscale_media"]`` (see :mod:`fiftyone_plugin.engine.scenes`). FiftyOne copies
``info`` on ``clone()`` and keeps it on a rename, so several datasets can point at one folder:

* a clone shares the original's store and images (cheap, and a clone of 1e5 scenes stays a
  MongoDB copy, not a disk copy);
* a renamed dataset keeps the folder named after its old name.

The rule (the simpler robust design of the two: share, check before deleting):

* **delete** — a folder is removed only when no *other* dataset refers to it, either through
  its ``info`` paths or through a sample ``filepath`` inside it (e.g. samples merged into an
  unrelated dataset);
* **create** — a new dataset gets ``$AUTOSCALE_HOME/datasets/<name>/``, unless another dataset
  already uses that folder (a rename took the old name's folder with it): then it gets a fresh
  ``<name>-<8 hex>`` folder beside it, and nothing of the other dataset is touched.

Every lookup reads MongoDB's ``datasets`` collection directly (one query), and the sample
collections through their ``filepath`` index (a prefix match), so no dataset is loaded.
"""

from __future__ import annotations

import logging
import re
import shutil
import uuid
from pathlib import Path
from typing import Iterable

import fiftyone.core.odm as foo

logger = logging.getLogger(__name__)

STORE_INFO_KEY = "autoscale_store"
MEDIA_INFO_KEY = "autoscale_media"


def _same_or_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _dataset_docs(exclude: str | None) -> list[dict]:
    query = {"name": {"$ne": exclude}} if exclude is not None else {}
    return list(foo.get_db_conn().datasets.find(query, {"name": 1, "info": 1, "sample_collection_name": 1}))


def datasets_using(folder: str | Path, *, exclude: str | None = None) -> list[str]:
    """Names of datasets (other than ``exclude``) that refer to ``folder`` or anything in it.

    A dataset refers to it when one of its ``info`` store/media paths is inside ``folder`` (or
    contains it), or when one of its samples' ``filepath`` lies inside ``folder``.
    """
    folder = Path(folder).resolve()
    prefix = re.compile("^" + re.escape(str(folder).rstrip("/") + "/"))
    db = foo.get_db_conn()
    users = []
    for doc in _dataset_docs(exclude):
        info = doc.get("info") or {}
        paths = [Path(str(info[k])).resolve() for k in (STORE_INFO_KEY, MEDIA_INFO_KEY) if info.get(k)]
        if any(_same_or_inside(p, folder) or _same_or_inside(folder, p) for p in paths):
            users.append(doc["name"])
            continue
        collection = doc.get("sample_collection_name")
        if collection and db[collection].find_one({"filepath": prefix}, {"_id": 1}) is not None:
            users.append(doc["name"])
    return users


def remove_if_unused(paths: Iterable[str | Path | None], *, owner: str | None) -> dict[str, list[str]]:
    """Remove each folder of ``paths`` that no dataset other than ``owner`` uses.

    Returns ``{path: [datasets still using it]}`` for the folders that were kept (empty when
    everything was removed). Call it *after* ``owner`` itself is deleted or with its name.
    """
    kept: dict[str, list[str]] = {}
    for path in paths:
        if not path or not Path(path).is_dir():
            continue
        users = datasets_using(path, exclude=owner)
        if users:
            logger.info("keeping %s: still used by dataset(s) %s", path, users)
            kept[str(path)] = users
        else:
            shutil.rmtree(path, ignore_errors=True)
    return kept


def claim_dataset_folder(default: Path, *, name: str) -> Path:
    """The folder a new dataset ``name`` should use: ``default`` unless another dataset uses it.

    A stale ``store``/``bev`` left in an unused ``default`` by a crashed create is cleared here
    (nobody refers to it); a used one is left alone and a fresh sibling folder is returned.
    """
    default = Path(default)
    if datasets_using(default, exclude=name):
        fresh = default.with_name(f"{default.name}-{uuid.uuid4().hex[:8]}")
        logger.info("folder %s belongs to another dataset; %r gets %s", default, name, fresh)
        return fresh
    for sub in ("store", "bev"):
        if (default / sub).exists():
            logger.info("removing stale %s (no dataset refers to it)", default / sub)
            shutil.rmtree(default / sub)
    return default


def referenced_files(paths: Iterable[str | Path], *, chunk: int = 50_000) -> set[str]:
    """The subset of ``paths`` that some sample of some dataset has as its ``filepath``."""
    paths = [str(p) for p in paths]
    if not paths:
        return set()
    db = foo.get_db_conn()
    found: set[str] = set()
    for doc in _dataset_docs(None):
        collection = doc.get("sample_collection_name")
        if not collection:
            continue
        for start in range(0, len(paths), chunk):
            part = paths[start:start + chunk]
            found.update(db[collection].distinct("filepath", {"filepath": {"$in": part}}))
    return found


def files_referenced_under(folder: str | Path) -> set[str]:
    """Every sample ``filepath`` (of any dataset) inside ``folder``."""
    folder = Path(folder).resolve()
    prefix = re.compile("^" + re.escape(str(folder).rstrip("/") + "/"))
    db = foo.get_db_conn()
    found: set[str] = set()
    for doc in _dataset_docs(None):
        collection = doc.get("sample_collection_name")
        if collection:
            found.update(db[collection].distinct("filepath", {"filepath": prefix}))
    return found
