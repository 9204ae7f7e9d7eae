"""Dataset glue: driving scenes as FiftyOne samples, their arrays in a sharded scene store.

Where things live (one folder per dataset, the *dataset dir*)::

    $AUTOSCALE_HOME/datasets/<dataset name>/      (AUTOSCALE_HOME defaults to ~/.autoscale)
        bev/<scene_id>.png                        rendered ego-centric BEV image = sample media
        store/                                    autoscale_core.store.SceneStore (all arrays)

``dataset.info["autoscale_store"]`` and ``dataset.info["autoscale_media"]`` hold the absolute
paths. A sample keeps only the scene's metadata fields and label overlays; the arrays are
loaded from the store by ``scene_id`` (:func:`load_scenes`), which is a memory-map and a gather,
so 100k scenes load in seconds rather than minutes through MongoDB documents.

Sample fields: ``scene_id`` (unique), ``source``, ``city``, ``topology``, ``maneuver``,
``events`` (list of str), ``ego_speed`` (m/s at t0), ``parent_id``, ``split``, ``log_id``,
``t0``, and the overlays ``ego_history``, ``ego_future`` (logged), ``agents`` (oriented boxes as
closed polylines labelled by type), ``lanes`` and ``route`` (polylines), all in the
normalized coordinates of the BEV image (:func:`autoscale_core.bev.scene_to_image`).

Writes are bulk: ``add_samples`` for new scenes, one ``set_values`` per field for results.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Callable, Literal, Mapping, Sequence, Union

import fiftyone as fo
import numpy as np

from autoscale_core import render as bev
from autoscale_core.scene import AGENT_TYPES, SceneBatch
from autoscale_core.store import SceneStore

from . import bev_render, ownership, scene_adds, scene_docs
from .keys import root_dataset
from .runs import delete_run, list_runs, record_run  # noqa: F401  (part of this module's contract)
from .scene_docs import OVERLAY_FIELDS, SPLITS, assign_split, clip_polylines  # noqa: F401  (re-exported)

logger = logging.getLogger(__name__)

STORE_INFO_KEY = "autoscale_store"
MEDIA_INFO_KEY = "autoscale_media"
EXTENT_INFO_KEY = "autoscale_bev_extent_m"
COMPACT_INFO_KEY = "autoscale_store_compact"  # new store shards: True/"int16" fixed point, "packed" (store.py)
# When the overlay fields are written: "inline" (default) with each new sample, or "on_demand":
# new samples are lean (≈ 0.6 kB of BSON instead of ≈ 10 kB) and bev_render.draw_scenes writes the
# overlays of the views a user wants to look at (at 1e6 scenes, see docs/DEVELOPING.md).
OVERLAYS_INFO_KEY = "autoscale_overlays"
OVERLAY_MODES = ("inline", "on_demand")
RenderMode = Union[bool, Literal["deferred"]]  # see add_scenes


class SceneDatasetError(ValueError):
    """A dataset-level problem: name taken, missing store, unknown scene ids, bad values."""


# ---------------------------------------------------------------------------------- locations
def autoscale_home() -> Path:
    """``$AUTOSCALE_HOME`` or ``~/.autoscale``."""
    return Path(os.environ.get("AUTOSCALE_HOME") or "~/.autoscale").expanduser().resolve()


MAX_NAME_BYTES = 200  # leaves room for "-<8 hex>" and temp suffixes under the 255-byte file-name limit


def default_dataset_dir(name: str) -> Path:
    """``$AUTOSCALE_HOME/datasets/<name>``; a name that cannot be a folder name is refused
    before any work (empty, ``/`` or ``\\``, NUL or control characters, a leading dot, too long)."""
    bad = (not name or name.startswith(".") or any(c in name for c in "/\\") or not name.isprintable()
           or len(name.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES)
    if bad:
        raise SceneDatasetError(
            f"dataset name {name[:80]!r}{'...' if len(name) > 80 else ''} cannot be used as a folder name "
            f"(no '/', '\\', control characters or leading '.', at most {MAX_NAME_BYTES} bytes)"
        )
    return autoscale_home() / "datasets" / name


def _dataset_dir(dataset: fo.Dataset) -> Path:
    media = dataset.info.get(MEDIA_INFO_KEY)
    return Path(media).parent if media else default_dataset_dir(dataset.name)


def get_store(dataset: fo.Dataset | fo.DatasetView) -> SceneStore:
    """The :class:`SceneStore` holding the arrays of ``dataset``'s scenes."""
    root = root_dataset(dataset)
    path = root.info.get(STORE_INFO_KEY)
    if not path:
        raise SceneDatasetError(
            f"dataset {root.name!r} has no scene store (info[{STORE_INFO_KEY!r}] is unset); "
            "add scenes with fiftyone_plugin.engine.scenes.add_scenes first"
        )
    # One store object per folder and process: its scene-id index grows shard by shard instead of
    # re-reading every shard's ids on each add of a long ingest (quadratic at 1e6 scenes).
    compact = root.info.get(COMPACT_INFO_KEY) or False  # False, True (= "int16") or an encoding name
    return _open_store(str(path), compact)


_STORES: dict[str, SceneStore] = {}


def _open_store(path: str, compact) -> SceneStore:
    """This process's one :class:`SceneStore` for ``path`` (opened again if ``compact`` changed)."""
    store = _STORES.get(path)
    if store is None or store.compact != compact:
        store = _STORES[path] = SceneStore(path, compact=compact)
    return store


# ---------------------------------------------------------------------------------- create
def create_scene_dataset(
    name: str,
    batch: SceneBatch,
    media_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    render_images: RenderMode = True,
    progress: Callable[[float, str], None] | None = None,
    chunk_size: int = 1000,
    *,
    resume: bool = False,
    info: dict | None = None,
) -> fo.Dataset:
    """Create a persistent dataset ``name`` holding ``batch``.

    Args:
        name: dataset name.
        batch: the scenes (validated before anything is written).
        media_dir: the dataset dir (BEV images under ``bev/``, arrays under ``store/``);
            default ``$AUTOSCALE_HOME/datasets/<name>``.
        overwrite: delete an existing dataset of that name (and its images and store) first;
            otherwise an existing name is an error (unless ``resume``).
        render_images: render BEV images; ``"deferred"`` links them to a placeholder rendered
            later by ``bev_render.render_pending``; False: samples point at not-yet-rendered paths.
        progress: called with (fraction done, message) after each chunk of ``chunk_size``.
        resume: an existing dataset ``name`` (e.g. of a killed ingest) gets the scenes it lacks:
            the interrupted add is rolled back first, scenes already complete are skipped.
        info: entries for ``dataset.info``, saved when the dataset is created; e.g.
            ``{COMPACT_INFO_KEY: True}`` stores the arrays in the compact int16 encoding
            (``autoscale_core.store``: ≤ 0.5 cm position error within ±327 m),
            ``{COMPACT_INFO_KEY: "packed"}`` in the packed one (ragged rows, fixed point, zstd:
            ≈ 3 kB per world scene, ≤ 0.5 cm at any range; the one for 1e6 scenes);
            ``{OVERLAYS_INFO_KEY: "on_demand"}`` ingests lean samples without the overlay fields,
            which ``bev_render.draw_scenes`` writes later for the views that need them.

    On any error the partly created dataset, images and store are removed again (when resuming,
    what was complete before stays).
    """
    batch.validate()
    _overlay_mode(info)  # a bad mode fails before anything is written
    with _OverlayPrefetch() as prefetch:
        return _create(name, batch, media_dir, overwrite, render_images, progress, chunk_size, resume, info, prefetch)


def _create(name, batch, media_dir, overwrite, render_images, progress, chunk_size, resume, info, prefetch):
    """:func:`create_scene_dataset` after validation, with the overlay prefetcher."""
    if (not fo.dataset_exists(name) or overwrite) and _overlay_mode(info) == "inline":
        # the first chunk's overlays, while the dataset is made
        prefetch.submit(batch.subset(slice(0, chunk_size)), float((info or {}).get(EXTENT_INFO_KEY, bev.DEFAULT_EXTENT_M)))
    if fo.dataset_exists(name):
        if resume and not overwrite:
            dataset = fo.load_dataset(name)
            _add_in_chunks(dataset, batch, render_images, progress, chunk_size, skip_existing=True, prefetch=prefetch)
            return dataset
        if not overwrite:
            raise SceneDatasetError(
                f"dataset {name!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it"
            )
        delete_scene_dataset(name)
    folder = _new_dataset_folder(name, media_dir)
    dataset = fo.Dataset(name, persistent=True)
    try:
        dataset.info[STORE_INFO_KEY] = str(folder / "store")
        dataset.info[MEDIA_INFO_KEY] = str(folder / "bev")
        dataset.info[EXTENT_INFO_KEY] = bev.DEFAULT_EXTENT_M
        dataset.info.update(info or {})
        dataset.save()
        apply_color_scheme(dataset)
        _add_in_chunks(dataset, batch, render_images, progress, chunk_size, skip_existing=False, prefetch=prefetch)
    except BaseException:
        # Nothing half-made is left under the name.
        delete_scene_dataset(name)
        raise
    return dataset


class _OverlayPrefetch:
    """Builds the overlay documents of the next chunk in a background thread while the current
    chunk's transaction runs (its MongoDB round trips and store writes leave the CPU idle; numpy
    releases the GIL). Only the documents are prepared ahead: every write stays in its chunk's
    transaction, in order. A chunk whose documents were made for another extent, or none, gets
    them built in its transaction as before."""

    def __init__(self):
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(1, thread_name_prefix="autoscale-overlays")
        self._pending: list = []  # (batch, extent, future), oldest first

    def submit(self, batch: SceneBatch, extent: float) -> None:
        self._pending.append((batch, extent, self._pool.submit(scene_docs.overlay_docs, batch, extent)))

    def first(self) -> SceneBatch | None:
        """The oldest batch submitted and not taken yet."""
        return self._pending[0][0] if self._pending else None

    def take(self, batch: SceneBatch, extent: float) -> dict | None:
        """The documents prepared for exactly ``batch`` (the same object) at ``extent``, or None."""
        while self._pending:
            prepared, prepared_extent, future = self._pending.pop(0)
            if prepared is batch:
                return future.result() if prepared_extent == extent else None
            future.cancel()
        return None

    def __enter__(self) -> "_OverlayPrefetch":
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _add_in_chunks(dataset: fo.Dataset, batch: SceneBatch, render: RenderMode,
                   progress: Callable[[float, str], None] | None, chunk_size: int, *, skip_existing: bool,
                   prefetch: _OverlayPrefetch | None = None) -> None:
    """``add_scenes`` per chunk (each one transaction), reporting progress and the rate; with
    ``prefetch``, the next chunk's overlay documents are built during each transaction."""
    start_time = time.perf_counter()
    extent = float(dataset.info.get(EXTENT_INFO_KEY, bev.DEFAULT_EXTENT_M))
    if not overlays_inline(dataset):
        prefetch = None  # nothing to prepare ahead
    chunk = prefetch.first() if prefetch is not None else None  # the first chunk, submitted by the caller
    if chunk is None:
        chunk = batch.subset(slice(0, chunk_size))
    for start in range(0, len(batch), chunk_size):
        following = batch.subset(slice(start + chunk_size, start + 2 * chunk_size)) if start + chunk_size < len(batch) else None
        if prefetch is not None and following is not None:
            prefetch.submit(following, extent)
        add_scenes(dataset, chunk, render=render, skip_existing=skip_existing, _validated=True, _prefetch=prefetch)
        chunk = following
        if progress is not None:
            done = min(start + chunk_size, len(batch))
            rate = done / max(time.perf_counter() - start_time, 1e-9)
            progress(done / len(batch), f"added {done}/{len(batch)} scenes ({rate:.0f} scenes/s)")


def _overlay_mode(info: Mapping | None) -> str:
    """The overlay mode ``info`` asks a new dataset for (default "inline"), checked."""
    mode = (info or {}).get(OVERLAYS_INFO_KEY, "inline")
    if mode not in OVERLAY_MODES:
        raise SceneDatasetError(f"info[{OVERLAYS_INFO_KEY!r}] must be one of {OVERLAY_MODES}, got {mode!r}")
    return mode


def overlays_inline(dataset: fo.Dataset | fo.DatasetView) -> bool:
    """Whether new samples of ``dataset`` get their overlay fields at ingest (see OVERLAYS_INFO_KEY)."""
    return root_dataset(dataset).info.get(OVERLAYS_INFO_KEY, "inline") == "inline"


def create_world_dataset(
    name: str,
    num_scenes: int,
    seed: int = 0,
    cities: list[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[float, str], None] | None = None,
    *,
    resume: bool = False,
    render_images: RenderMode = True,
    compact_store: bool | str = False,
    overlays: str = "inline",
) -> fo.Dataset:
    """Generate ``num_scenes`` scenes of the embedded world and store them as dataset ``name``.

    The name is checked before generating, so a taken name fails fast (unless ``resume``: then
    the same world — same scenes, seed and cities, recorded in ``info["autoscale_world"]`` when the
    dataset was created — is generated again and only the missing scenes are added).
    Generation reports progress 0 → 0.3, ingest 0.3 → 1. ``compact_store``: the store encoding
    (False: float32; True or "int16"; "packed"; see ``autoscale_core.store``). ``overlays``:
    "inline" or "on_demand" (lean samples; ``bev_render.draw_scenes`` writes a view's overlays).
    """
    from autoscale_core.store import ENCODINGS
    from autoscale_core.world import generate_world

    default_dataset_dir(name)  # validates the name as a folder name, before any work
    if not isinstance(compact_store, bool) and compact_store not in ENCODINGS:
        raise SceneDatasetError(f"compact_store must be True, False or one of {ENCODINGS}, got {compact_store!r}")
    if overlays not in OVERLAY_MODES:
        raise SceneDatasetError(f"overlays must be one of {OVERLAY_MODES}, got {overlays!r}")
    world = {"num_scenes": int(num_scenes), "seed": int(seed), "cities": cities}
    if fo.dataset_exists(name) and not overwrite:
        if not resume:
            raise SceneDatasetError(
                f"dataset {name!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it, "
                "or resume=True (CLI: --resume) to finish an interrupted one"
            )
        recorded = fo.load_dataset(name).info.get("autoscale_world")
        if recorded is not None and recorded != world:
            raise SceneDatasetError(f"dataset {name!r} holds the world {recorded}, not {world}; cannot resume")
    if progress:
        progress(0.0, f"generating {num_scenes} scenes (seed {seed})")
    batch = generate_world(num_scenes, seed=seed, cities=cities)
    if progress:
        progress(0.3, "rendering and adding scenes")
    inner = (lambda f, msg: progress(0.3 + 0.7 * f, msg)) if progress else None
    return create_scene_dataset(name, batch, overwrite=overwrite, progress=inner, resume=resume,
                                render_images=render_images,
                                info={"autoscale_world": world, COMPACT_INFO_KEY: compact_store,
                                      OVERLAYS_INFO_KEY: overlays})


def _new_dataset_folder(name: str, media_dir: str | os.PathLike | None) -> Path:
    """The dataset dir for a new dataset: never one another dataset uses (see ``ownership``)."""
    if not media_dir:
        return ownership.claim_dataset_folder(default_dataset_dir(name), name=name)
    folder = Path(media_dir).expanduser().resolve()
    users = ownership.datasets_using(folder, exclude=name)
    if users:
        raise SceneDatasetError(
            f"media_dir {folder} is used by dataset(s) {users}; choose a folder of its own"
        )
    return ownership.claim_dataset_folder(folder, name=name)


def delete_scene_dataset(name: str) -> dict[str, list[str]]:
    """Delete dataset ``name`` and its scene store and BEV images — the folders only when no
    other dataset (a clone, a renamed original, one holding its samples) still uses them.

    Returns ``{folder: [datasets using it]}`` for the folders kept.
    """
    dataset = fo.load_dataset(name)
    paths = [dataset.info.get(STORE_INFO_KEY), dataset.info.get(MEDIA_INFO_KEY)]
    dataset.delete()
    return ownership.remove_if_unused(paths, owner=name)


def apply_color_scheme(dataset: fo.Dataset) -> None:
    """App styling: agents coloured by type as in the rendered image, the ego's history/future
    and the route overlay in colours that differ from the image's and carry white label text;
    lanes and route (already in the image) start hidden."""
    from fiftyone.core.odm.dataset import ActiveFields

    def by_label(path: str, colours: dict[str, tuple[int, int, int]]) -> dict:
        return {
            "path": path,
            "colorByAttribute": "label",
            "valueColors": [{"value": v, "color": bev.hex_colour(c)} for v, c in colours.items()],
        }

    dataset.app_config.color_scheme = fo.ColorScheme(
        color_by="value",
        fields=[
            by_label("agents", {t: bev.AGENT_COLOURS[t] for t in AGENT_TYPES}),
            by_label("ego_history", {"ego_history": bev.EGO_HISTORY_COLOUR}),
            by_label("ego_future", {"ego_future": bev.EGO_FUTURE_COLOUR}),
            {"path": "lanes", "fieldColor": bev.hex_colour(bev.LANE_LINE)},  # unlabelled polylines
            by_label("route", {"route": bev.ROUTE_OVERLAY_COLOUR}),
        ],
    )
    dataset.app_config.active_fields = ActiveFields(paths=["ego_history", "ego_future", "agents"])
    dataset.save()


# ---------------------------------------------------------------------------------- add
def add_scenes(
    dataset: fo.Dataset,
    batch: SceneBatch,
    *,
    render: RenderMode = True,
    skip_existing: bool = True,
    _validated: bool = False,
    _prefetch: _OverlayPrefetch | None = None,
) -> list[str]:
    """Add ``batch`` to ``dataset`` in bulk; returns the new samples' ids (batch order).

    The batch is validated first; then images are rendered, arrays appended to the store as
    one atomic shard, and whole sample documents (metadata and overlays included) inserted in
    bulk (:mod:`fiftyone_plugin.engine.scene_docs`) with ``_id`` values that the add's marker
    reserved (:mod:`fiftyone_plugin.engine.scene_adds`). With ``skip_existing``,
    scenes whose ``scene_id`` is already in the dataset are skipped; without it they are an
    error (scene ids are unique).

    ``render``: True renders the BEV images now; ``"deferred"`` links every new sample's image to a
    placeholder that ``fiftyone_plugin.engine.bev_render.render_pending`` replaces later (in parallel);
    False only names the not-yet-rendered paths.
    """
    if isinstance(dataset, fo.DatasetView):
        raise SceneDatasetError("add_scenes needs a Dataset, not a view")
    if render not in (True, False, "deferred"):
        raise SceneDatasetError(f"render must be True, False or 'deferred', not {render!r}")
    if not _validated:  # create_scene_dataset validated the whole batch already (0.2 s per 1,000)
        batch.validate()
    if len(batch) == 0:
        return []
    folder = _dataset_dir(dataset)
    if not dataset.info.get(STORE_INFO_KEY):
        dataset.info[STORE_INFO_KEY] = str(folder / "store")
        dataset.info[MEDIA_INFO_KEY] = str(folder / "bev")
        dataset.info.setdefault(EXTENT_INFO_KEY, bev.DEFAULT_EXTENT_M)
        dataset.save()
    # One transaction: a failure (or a kill, recovered by the next add) leaves no sample
    # without overlays, no orphan image and no duplicate store row (see scene_adds).
    with scene_adds.adding(dataset, dataset.info[STORE_INFO_KEY], len(batch)) as tx:
        try:
            return _add_new_scenes(dataset, batch, tx, render=render, skip_existing=skip_existing, prefetch=_prefetch)
        except OSError as exc:  # e.g. a full disk: say where, not just "errno 28"
            raise SceneDatasetError(
                f"adding {len(batch)} scenes to dataset {dataset.name!r} failed writing under {folder}: "
                f"{exc.strerror or exc} ({getattr(exc, 'filename', None) or 'a scene file'}); nothing was added"
            ) from exc


def _new_scenes_only(dataset: fo.Dataset, batch: SceneBatch, skip_existing: bool) -> tuple[SceneBatch, np.ndarray | None]:
    """``batch`` without the scenes already in ``dataset`` (or an error without ``skip_existing``),
    and the positions kept (None: all)."""
    ids = [str(s) for s in batch.meta["scene_id"]]
    existing = scene_docs.existing_scene_ids(dataset, ids)
    present = np.array([s in existing for s in ids], dtype=bool)
    if present.any() and not skip_existing:
        dup = [s for s, p in zip(ids, present) if p]
        raise SceneDatasetError(
            f"{len(dup)} scene_id(s) already in dataset {dataset.name!r}, e.g. {dup[:3]}; "
            "use skip_existing=True to skip them"
        )
    if not present.any():
        return batch, None
    keep = np.flatnonzero(~present)
    return batch.subset(keep), keep


def _add_new_scenes(dataset: fo.Dataset, batch: SceneBatch, tx, *, render: RenderMode, skip_existing: bool,
                    prefetch: _OverlayPrefetch | None = None) -> list[str]:
    extent = float(dataset.info.get(EXTENT_INFO_KEY, bev.DEFAULT_EXTENT_M))
    overlays = prefetch.take(batch, extent) if prefetch is not None else None  # None for on-demand datasets
    batch, keep = _new_scenes_only(dataset, batch, skip_existing)
    ids = [str(s) for s in batch.meta["scene_id"]]
    if not ids:
        return []
    if overlays is not None and keep is not None:
        overlays = {field: [docs[i] for i in keep.tolist()] for field, docs in overlays.items()}
    media = Path(dataset.info[MEDIA_INFO_KEY])
    root = str(media.expanduser().resolve())  # once: resolving each path cost 0.1 s per 1,000
    paths = [os.path.join(root, f"{bev.safe_file_stem(s)}.png") for s in ids]
    metadata = None
    if render:
        tx.new_images = [p for p in paths if not Path(p).exists()]  # ours to remove on failure
    if render is True:
        paths = bev.render_batch_to_files(batch, media, extent_m=extent)
        metadata = [scene_docs.image_metadata_doc(p) for p in paths]
    elif render == "deferred":
        metadata = bev_render.link_placeholders(media, tx.new_images)
        metadata = [metadata] * len(paths)
    if overlays is None:
        overlays = scene_docs.overlay_docs(batch, extent) if overlays_inline(dataset) else {}
    docs = scene_docs.sample_docs(dataset, batch, paths, metadata, overlays, ids=tx.reserved_ids[: len(ids)])
    del overlays
    store = get_store(dataset)
    missing_rows = ~store.contains(ids)  # rows left by an interrupted add are reused, not duplicated
    if missing_rows.any():
        store.append(batch.subset(np.flatnonzero(missing_rows)))
    scene_docs.declare_fields(dataset)
    tx.sample_ids = [str(d["_id"]) for d in docs]  # set first: a failed insert's rollback deletes them
    sample_ids = scene_docs.insert_docs(dataset, docs)
    del docs
    # Whole samples, _ids from the block the add's marker reserved: a kill from here until the
    # marker is cleared is rolled back by the next add (scene_adds.recover_interrupted_add).
    tx.pause_before_complete()
    return sample_ids


# ---------------------------------------------------------------------------------- read / write
def load_scenes(view: fo.Dataset | fo.DatasetView) -> SceneBatch:
    """The scene arrays of ``view``'s samples, in the view's order."""
    scene_ids, load = scene_loader(view)
    return load(np.arange(len(scene_ids)))


def scene_loader(view: fo.Dataset | fo.DatasetView) -> tuple[list[str], "StoreRowsLoader"]:
    """``(scene_ids, load)`` for reading a large view in pieces: ``load(rows)`` returns the scenes
    at positions ``rows`` of the view's order (from the memory-mapped scene store);
    ``load.part(rows)`` is a small picklable loader of just those rows, for executor workers."""
    scene_ids = view.values("scene_id")
    if not scene_ids:
        raise SceneDatasetError(f"view of dataset {root_dataset(view).name!r} has no samples to load")
    if any(s is None for s in scene_ids):
        raise SceneDatasetError(f"some samples of dataset {root_dataset(view).name!r} have no scene_id")
    store = get_store(view)
    return scene_ids, StoreRowsLoader(str(store.root), store.compact, scene_ids)


class StoreRowsLoader:
    """Scenes of a store by position in a list of scene ids: ``loader(rows) -> SceneBatch``.

    Picklable (a folder, a compact flag and ids), so executor workers can read the store
    themselves; each process opens a store folder once (:data:`_STORES`)."""

    def __init__(self, root: str, compact, scene_ids: Sequence[str]):
        self.root, self.compact, self.scene_ids = root, compact, list(scene_ids)

    def __call__(self, rows) -> SceneBatch:
        return _open_store(self.root, self.compact).load([self.scene_ids[int(i)] for i in rows])

    def part(self, rows) -> "StoreRowsLoader":
        """A loader of just ``rows`` (its positions 0..len(rows)-1)."""
        return StoreRowsLoader(self.root, self.compact, [self.scene_ids[int(i)] for i in rows])


def write_scene_fields(
    view: fo.Dataset | fo.DatasetView,
    values: Mapping[str, Sequence | np.ndarray],
    scene_ids: Sequence[str] | None = None,
) -> None:
    """Write per-scene results: one ``set_values`` per field, keyed by ``scene_id``.

    Args:
        view: the samples written to (their dataset receives the values).
        values: field name → values, one per scene (lists, 1-D arrays of numbers/str/bool, or
            (S, D) arrays written as one vector per sample).
        scene_ids: which scenes the values belong to; default the view's scenes in order.

    Every input is checked (lengths, ids present in the view) before anything is written.
    """
    if not values:
        raise SceneDatasetError("write_scene_fields got no fields to write")
    view_ids = view.values("scene_id")
    if scene_ids is None:
        scene_ids = view_ids
    scene_ids = [str(s) for s in scene_ids]
    if not scene_ids:
        raise SceneDatasetError(f"write_scene_fields: the view of dataset {root_dataset(view).name!r} is empty")
    if len(set(scene_ids)) != len(scene_ids):
        raise SceneDatasetError("write_scene_fields: scene_ids contain duplicates")
    missing = set(scene_ids) - set(view_ids)
    if missing:
        raise SceneDatasetError(
            f"{len(missing)} scene_id(s) not in the view of dataset {root_dataset(view).name!r}, "
            f"e.g. {sorted(missing)[:3]}"
        )
    prepared = {}
    for field, column in values.items():
        if not isinstance(field, str) or not field or field.startswith("_") or field in ("id", "filepath", "scene_id"):
            raise SceneDatasetError(f"cannot write field {field!r}")
        column = _to_field_values(field, column)
        if len(column) != len(scene_ids):
            raise SceneDatasetError(
                f"field {field!r} has {len(column)} values for {len(scene_ids)} scenes"
            )
        prepared[field] = dict(zip(scene_ids, column))
    # All fields at once, all-or-nothing: staged outside the dataset, then published in one
    # server-side $merge under a per-dataset write lock (see fiftyone_plugin.engine.safe_write).
    from .safe_write import SafeWriteError, default_run_key, staged_write

    try:
        staged_write(view, default_run_key(prepared), {f: list(m.values()) for f, m in prepared.items()}, scene_ids)
    except SafeWriteError as exc:
        raise SceneDatasetError(str(exc)) from exc


def _to_field_values(field: str, column) -> list:
    if isinstance(column, np.ndarray):
        if column.ndim == 1:
            if column.dtype.kind == "f" and not np.isfinite(column).all():
                raise SceneDatasetError(f"field {field!r} contains NaN or inf")
            return column.tolist()
        if column.ndim == 2:
            return [np.ascontiguousarray(row) for row in column]
        raise SceneDatasetError(f"field {field!r}: arrays must be 1-D or 2-D, got shape {column.shape}")
    out = []
    for v in column:
        if isinstance(v, np.generic):
            v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            raise SceneDatasetError(f"field {field!r} contains NaN or inf")
        out.append(v)
    return out


def summarize(dataset: fo.Dataset | fo.DatasetView) -> dict[str, dict[str, int]]:
    """Counts per city, topology, event, source and split."""
    return {
        "city": dataset.count_values("city"),
        "topology": dataset.count_values("topology"),
        "events": dataset.count_values("events"),
        "source": dataset.count_values("source"),
        "split": dataset.count_values("split"),
    }
