"""Names the plugin derives in one place: run keys, the root dataset of a view, the progress type.

Every run the plugin records on a dataset has a key built here, so the App panel, the CLI and the
operators agree on where a selection, a scaling-law fit or a queue export lives.
"""

from __future__ import annotations

import re
from typing import Callable

import fiftyone as fo

__all__ = ["Progress", "root_dataset", "real_scenes", "scenes_of_source", "selection_run_key", "scaling_run_key", "queue_run_key",
           "PROTOCOL_RUN_KEY", "check_budget"]

Progress = Callable[[float, str], None]  # progress(fraction in [0, 1], one-line message)

PROTOCOL_RUN_KEY = "selection_protocol"  # the selection protocol's run record (the panel plots it)

_KEY_CHARS = re.compile(r"[^A-Za-z0-9_]")


def root_dataset(collection: fo.Dataset | fo.DatasetView) -> fo.Dataset:
    """The dataset a view (or the dataset itself) belongs to."""
    return collection._root_dataset if isinstance(collection, fo.DatasetView) else collection


def real_scenes(collection: fo.Dataset | fo.DatasetView, split: str | None = None) -> fo.DatasetView:
    """The real (not ``source="synthetic"``) scenes of ``collection``, of ``split`` when given.

    A query document, not a ViewField expression: MongoDB evaluates a ``{"$expr": ...}`` match
    per document and no index serves it, which at 1e6 samples is a slow full scan.
    """
    query: dict = {"source": {"$ne": "synthetic"}}
    if split is not None:
        query["split"] = split
    return collection.match(query)


def scenes_of_source(collection: fo.Dataset | fo.DatasetView, source: str = "all",
                     split: str | None = None) -> fo.DatasetView:
    """The scenes of ``collection`` whose source is ``source`` ("real": see :func:`real_scenes`;
    "synthetic"; "all"), of ``split`` when given (an empty string: every split, as the CLI's
    ``--split ""``); a query document, like :func:`real_scenes`."""
    split = split or None
    if source == "real":
        return real_scenes(collection, split)
    if source not in ("synthetic", "all"):
        raise ValueError(f"source must be 'real', 'synthetic' or 'all', got {source!r}")
    query: dict = {"source": "synthetic"} if source == "synthetic" else {}
    if split:
        query["split"] = split
    return collection.match(query) if query else collection.view()


def selection_run_key(name: str) -> str:
    """Run key of the selection called ``name`` (its tag is ``sel:<name>``)."""
    return "sel_" + name.replace("-", "_")


def scaling_run_key(name: str) -> str:
    """Run key of the scaling-law fit (MOSAIC pilots + fits) called ``name``."""
    return "scaling_" + name.replace("-", "_")


def queue_run_key(name: str) -> str:
    """Run key of the annotation-queue export called ``name`` (any character → a valid key)."""
    return "queue_" + _KEY_CHARS.sub("_", name)


def check_budget(budget: int, collection, error: type[Exception] = ValueError, of: str = "candidate view") -> None:
    """Raise ``error`` if ``budget`` scenes cannot be drawn from ``collection``."""
    if budget > len(collection):
        raise error(f"budget {budget} is larger than the {of} ({len(collection)} scenes)")
