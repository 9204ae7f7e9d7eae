"""Deferred BEV rendering: ingest now, render the images later and in parallel.

Rendering is the slowest part of an ingest (~600 images/s on one core). With
``add_scenes(..., render="deferred")`` each new sample's ``filepath`` (``bev/<scene>.png``, the
final name) is a hard link to one placeholder image per media folder
(:func:`autoscale_core.render.write_placeholder`), so the App shows the sample — a neutral tile
with the overlays drawn on it — and every path exists for the orphan / ownership checks.
:func:`render_pending` later renders every sample whose file is still the placeholder, from the
scene store, in parallel through :mod:`autoscale_core.executor`; each image replaces its link
atomically (``os.replace``), so a kill mid-way leaves placeholders, never half-written images.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable
from pathlib import Path

import fiftyone as fo

from autoscale_core import render as bev
from autoscale_core.executor import resolve_executor

from . import scene_adds
from .keys import root_dataset
from .safe_write import exclusive

LINKS_PER_PLACEHOLDER = 60_000  # below ext4's 65,000 hard links per file


def link_placeholders(media: str | os.PathLike, paths: list[str], size: int = bev.DEFAULT_SIZE,
                      max_links: int = LINKS_PER_PLACEHOLDER) -> dict:
    """Hard-link each of ``paths`` to a placeholder of the media folder (moving on to a new
    placeholder file once one has ``max_links`` samples, or the file system refuses another
    link); returns the samples' ``ImageMetadata`` document (the size the real image will have)."""
    index, (placeholder, links) = 0, _placeholder(media, size, 0)
    for path in paths:
        while True:
            while links >= max_links:  # counted, not stat'ed per sample: this runs once per scene
                index += 1
                placeholder, links = _placeholder(media, size, index)
            try:
                os.link(placeholder, path)
                links += 1
            except FileExistsError:  # an image already there (e.g. a scene re-added): keep it
                pass
            except OSError as exc:
                if exc.errno != errno.EMLINK:
                    raise
                links = max_links  # the file system's own cap is lower: move on to the next file
                continue
            break
    return {"_cls": "ImageMetadata", "mime_type": "image/png", "width": size, "height": size, "num_channels": 3}


def _placeholder(media, size: int, index: int) -> tuple[Path, int]:
    """The ``index``-th placeholder (written if missing) and how many samples link to it."""
    path = bev.write_placeholder(media, size, index)
    return path, path.stat().st_nlink - 1


def placeholders(media: str | os.PathLike | None) -> list[Path]:
    """The placeholder files of a media folder (``.placeholder-bev``, ``.placeholder-bev-<k>``)."""
    if not media or not Path(media).is_dir():
        return []
    return [p for p in Path(media).glob(bev.PLACEHOLDER_NAME + "*")
            if p.name == bev.PLACEHOLDER_NAME or p.name[len(bev.PLACEHOLDER_NAME) + 1:].isdigit()]


def pending(view: fo.Dataset | fo.DatasetView) -> tuple[list[str], list[str]]:
    """``(scene_ids, filepaths)`` of the samples of ``view`` whose image is still a placeholder."""
    inodes = {p.stat().st_ino for p in placeholders(root_dataset(view).info.get("autoscale_media"))}
    if not inodes:
        return [], []
    ids, paths = view.values(["scene_id", "filepath"])
    out = [(s, p) for s, p in zip(ids, paths) if _inode(p) in inodes]
    return [s for s, _ in out], [p for _, p in out]


def _inode(path: str) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def render_pending(
    view: fo.Dataset | fo.DatasetView,
    *,
    executor=None,
    chunk: int = 500,
    progress: Callable[[float, str], None] | None = None,
) -> int:
    """Render the images of every sample of ``view`` (a dataset or a view) still showing the
    placeholder; returns how many.

    Holds the dataset's add lock (scene_adds), so a concurrent add's recovery never removes a
    renderer's temporary file. ``executor``: an :mod:`autoscale_core.executor` spec (``"process"``,
    ``"process:2"``, ``"ray"``) or instance; None renders in this process.
    """
    dataset = root_dataset(view)
    store_root = dataset.info["autoscale_store"]
    media = dataset.info["autoscale_media"]
    extent = float(dataset.info.get("autoscale_bev_extent_m", bev.DEFAULT_EXTENT_M))
    with exclusive(scene_adds._lock_name(store_root)):
        ids, _ = pending(view)
        items = [(store_root, ids[i:i + chunk], media, extent) for i in range(0, len(ids), chunk)]
        if not items:
            _remove_unused_placeholder(media)
            return 0
        runner, owned = resolve_executor(executor, len(items))
        done = 0
        try:
            # In waves of a few chunks, so progress is reported while the pool works.
            wave = 16  # chunks per map call: ProcessExecutor starts a fresh pool per call
            for start in range(0, len(items), wave):
                part = items[start:start + wave]
                done += sum(runner.map(bev.render_store_chunk, part) if runner else map(bev.render_store_chunk, part))
                if progress:
                    progress(done / len(ids), f"rendered {done}/{len(ids)} BEV images")
        finally:
            if owned and runner is not None:
                runner.close()
        _remove_unused_placeholder(media)
    return done


def _remove_unused_placeholder(media: str) -> None:
    """Remove each placeholder once no image links to it (the next deferred add makes a new one)."""
    for placeholder in placeholders(media):
        if placeholder.stat().st_nlink == 1:
            placeholder.unlink(missing_ok=True)


# ------------------------------------------------------------------------------- on demand
def draw_scenes(
    view: fo.Dataset | fo.DatasetView,
    *,
    images: bool = True,
    overlays: bool = True,
    executor=None,
    chunk: int = 5_000,
    progress: Callable[[float, str], None] | None = None,
) -> dict:
    """Make ``view``'s samples fully viewable in the App: write the overlay fields of the samples
    that lack them (a dataset ingested with ``overlays="on_demand"``) and render the images that
    are still the placeholder (a deferred render). Returns ``{"overlays": n, "images": m}``.

    Overlays are built from the scene store as at ingest (``scene_docs.overlay_docs``, the same
    documents byte for byte) and written ``chunk`` samples per unordered bulk write. Each sample's
    overlays are one atomic update, so an interrupted call leaves samples with all of their
    overlays or none, and calling it again finishes the rest. Only samples without ``ego_history``
    are written (:func:`missing_overlays`): a second call on the same view only reads, it
    rewrites nothing.
    """
    dataset = root_dataset(view)
    drawn = 0
    if overlays:
        drawn = _write_missing_overlays(view, dataset, chunk, progress)
    rendered = render_pending(view, executor=executor, progress=progress) if images else 0
    return {"overlays": drawn, "images": rendered}


def missing_overlays(view: fo.Dataset | fo.DatasetView) -> fo.DatasetView:
    """The samples of ``view`` without overlays (their first overlay field unset: a sample's
    overlays are written together, at ingest or by :func:`draw_scenes`)."""
    from .scene_docs import OVERLAY_FIELDS

    return view.exists(OVERLAY_FIELDS[0], False)


def _write_missing_overlays(view, dataset: fo.Dataset, chunk: int,
                            progress: Callable[[float, str], None] | None) -> int:
    import datetime

    from pymongo import UpdateOne

    from . import scene_docs
    from .scenes import get_store

    sample_ids, scene_ids = missing_overlays(view).values(["_id", "scene_id"])
    if not sample_ids:
        return 0
    scene_docs.declare_fields(dataset)
    store = get_store(dataset)
    extent = float(dataset.info.get("autoscale_bev_extent_m", bev.DEFAULT_EXTENT_M))
    collection = dataset._sample_collection
    for start in range(0, len(sample_ids), chunk):
        rows = slice(start, start + chunk)
        docs = scene_docs.overlay_docs(store.load(scene_ids[rows]), extent)  # compute first, then write
        now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        updates = [UpdateOne({"_id": oid}, {"$set": {**{f: docs[f][i] for f in docs}, "last_modified_at": now}})
                   for i, oid in enumerate(sample_ids[rows])]
        collection.bulk_write(updates, ordered=False)
        if progress:
            done = min(start + chunk, len(sample_ids))
            progress(done / len(sample_ids), f"drew the overlays of {done}/{len(sample_ids)} scenes")
    return len(sample_ids)
