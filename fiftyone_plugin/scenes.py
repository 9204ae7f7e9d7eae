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

import hashlib
import logging
import os
from pathlib import Path
from typing import Callable, Mapping, Sequence

import fiftyone as fo
import numpy as np
from bson import ObjectId

from autoscale_core import render as bev
from autoscale_core.scene import AGENT_TYPES, SceneBatch
from autoscale_core.store import SceneStore

from . import ownership, scene_adds
from .keys import root_dataset
from .runs import delete_run, list_runs, record_run  # noqa: F401  (part of this module's contract)

logger = logging.getLogger(__name__)

STORE_INFO_KEY = "autoscale_store"
MEDIA_INFO_KEY = "autoscale_media"
EXTENT_INFO_KEY = "autoscale_bev_extent_m"
SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
OVERLAY_FIELDS = ("ego_history", "ego_future", "agents", "lanes", "route")


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
            "add scenes with fiftyone_plugin.scenes.add_scenes first"
        )
    return SceneStore(path)


# ---------------------------------------------------------------------------------- create
def create_scene_dataset(
    name: str,
    batch: SceneBatch,
    media_dir: str | os.PathLike | None = None,
    overwrite: bool = False,
    render_images: bool = True,
    progress: Callable[[float, str], None] | None = None,
    chunk_size: int = 1000,
) -> fo.Dataset:
    """Create a persistent dataset ``name`` holding ``batch``.

    Args:
        name: dataset name.
        batch: the scenes (validated before anything is written).
        media_dir: the dataset dir (BEV images under ``bev/``, arrays under ``store/``);
            default ``$AUTOSCALE_HOME/datasets/<name>``.
        overwrite: delete an existing dataset of that name (and its images and store) first;
            otherwise an existing name is an error.
        render_images: render BEV images (else samples point at not-yet-rendered paths).
        progress: called with (fraction done, message) after each chunk of ``chunk_size``.

    On any error the partly created dataset, images and store are removed again.
    """
    batch.validate()
    if fo.dataset_exists(name):
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
        dataset.save()
        apply_color_scheme(dataset)
        for start in range(0, len(batch), chunk_size):
            chunk = batch.subset(slice(start, start + chunk_size))
            add_scenes(dataset, chunk, render=render_images, skip_existing=False)
            if progress is not None:
                done = min(start + chunk_size, len(batch))
                progress(done / len(batch), f"added {done}/{len(batch)} scenes")
    except BaseException:
        # Nothing half-made is left under the name.
        delete_scene_dataset(name)
        raise
    return dataset


def create_world_dataset(
    name: str,
    num_scenes: int,
    seed: int = 0,
    cities: list[str] | None = None,
    overwrite: bool = False,
    progress: Callable[[float, str], None] | None = None,
) -> fo.Dataset:
    """Generate ``num_scenes`` scenes of the embedded world and store them as dataset ``name``.

    The name is checked before generating, so a taken name fails fast. Generation reports
    progress 0 → 0.3, ingest 0.3 → 1.
    """
    from autoscale_core.world import generate_world

    default_dataset_dir(name)  # validates the name as a folder name, before any work
    if fo.dataset_exists(name) and not overwrite:
        raise SceneDatasetError(
            f"dataset {name!r} already exists; pass overwrite=True (CLI: --overwrite) to replace it"
        )
    if progress:
        progress(0.0, f"generating {num_scenes} scenes (seed {seed})")
    batch = generate_world(num_scenes, seed=seed, cities=cities)
    if progress:
        progress(0.3, "rendering and adding scenes")
    inner = (lambda f, msg: progress(0.3 + 0.7 * f, msg)) if progress else None
    dataset = create_scene_dataset(name, batch, overwrite=overwrite, progress=inner)
    dataset.info["autoscale_world"] = {"num_scenes": int(num_scenes), "seed": int(seed), "cities": cities}
    dataset.save()
    return dataset


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
def assign_split(scene_ids: Sequence[str]) -> list[str]:
    """Deterministic train/val/test split from a hash of each scene id (80/10/10)."""
    out = []
    for scene_id in scene_ids:
        u = int(hashlib.sha1(str(scene_id).encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        cumulative = 0.0
        for split, share in SPLITS:  # noqa: B007 (the split reached is used after the loop)
            cumulative += share
            if u <= cumulative:
                break
        out.append(split)
    return out


def add_scenes(
    dataset: fo.Dataset,
    batch: SceneBatch,
    *,
    render: bool = True,
    skip_existing: bool = True,
) -> list[str]:
    """Add ``batch`` to ``dataset`` in bulk; returns the new samples' ids (batch order).

    The batch is validated first; then images are rendered, arrays appended to the store as
    one atomic shard, and samples added with one ``add_samples``. With ``skip_existing``,
    scenes whose ``scene_id`` is already in the dataset are skipped; without it they are an
    error (scene ids are unique).
    """
    if isinstance(dataset, fo.DatasetView):
        raise SceneDatasetError("add_scenes needs a Dataset, not a view")
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
            return _add_new_scenes(dataset, batch, tx, render=render, skip_existing=skip_existing)
        except OSError as exc:  # e.g. a full disk: say where, not just "errno 28"
            raise SceneDatasetError(
                f"adding {len(batch)} scenes to dataset {dataset.name!r} failed writing under {folder}: "
                f"{exc.strerror or exc} ({getattr(exc, 'filename', None) or 'a scene file'}); nothing was added"
            ) from exc


def _add_new_scenes(dataset: fo.Dataset, batch: SceneBatch, tx, *, render: bool, skip_existing: bool) -> list[str]:
    ids = [str(s) for s in batch.meta["scene_id"]]
    existing = set(dataset.distinct("scene_id")) if "scene_id" in dataset.get_field_schema() else set()
    present = np.array([s in existing for s in ids], dtype=bool)
    if present.any():
        if not skip_existing:
            dup = [s for s, p in zip(ids, present) if p]
            raise SceneDatasetError(
                f"{len(dup)} scene_id(s) already in dataset {dataset.name!r}, e.g. {dup[:3]}; "
                "use skip_existing=True to skip them"
            )
        batch = batch.subset(np.flatnonzero(~present))
        ids = [s for s, p in zip(ids, present) if not p]
        if not ids:
            return []

    extent = float(dataset.info.get(EXTENT_INFO_KEY, bev.DEFAULT_EXTENT_M))
    media = Path(dataset.info[MEDIA_INFO_KEY])
    if render:
        expected = [str(media / f"{bev.safe_file_stem(s)}.png") for s in ids]
        tx.new_images = [p for p in expected if not Path(p).exists()]  # ours to remove on failure
        paths = bev.render_batch_to_files(batch, media, extent_m=extent)
    else:
        paths = [str(media / f"{bev.safe_file_stem(s)}.png") for s in ids]
    samples = _build_samples(batch, paths)
    # Metadata first and ``route`` (scene_adds.COMPLETE_FIELD) last: a sample is complete
    # once its last overlay is written.
    fields = {"metadata": [_image_metadata_doc(p) for p in paths]} if render else {}
    fields.update(_overlays(batch, extent))
    store = get_store(dataset)
    missing_rows = ~store.contains(ids)  # rows left by an interrupted add are reused, not duplicated
    if missing_rows.any():
        store.append(batch.subset(np.flatnonzero(missing_rows)))
    sample_ids = list(dataset.add_samples(samples, progress=False))
    tx.sample_ids = sample_ids
    # Drop the in-memory samples: FiftyOne reloads every live sample after each bulk write.
    del samples
    tx.pause_before_overlays()
    schema = dataset.get_field_schema()
    for name, docs in fields.items():
        if name not in schema:
            dataset.add_sample_field(name, fo.EmbeddedDocumentField, embedded_doc_type=fo.Polylines)
        dataset.set_values(name, dict(zip(ids, docs)), key_field="scene_id", validate=False)
    return sample_ids


def _build_samples(batch: SceneBatch, paths: list[str]) -> list[fo.Sample]:
    """Samples with the scalar metadata fields (overlays are written after, see ``_overlays``)."""
    t0 = batch.history_steps
    meta = batch.meta
    ids = [str(s) for s in meta["scene_id"]]
    splits = assign_split(ids)

    def column(key, default=""):
        values = meta.get(key)
        return [default] * len(ids) if values is None else list(values)

    source, city, topology, maneuver = (column(k) for k in ("source", "city", "topology", "maneuver"))
    parent, log, start = column("parent_id"), column("log_id"), column("t0", 0.0)
    events = [[e for e in str(x).split(";") if e] for x in column("events")]
    speeds = batch.ego[:, t0, 3].astype(float).tolist()
    return [
        fo.Sample(
            filepath=paths[i],
            scene_id=scene_id,
            source=str(source[i]),
            city=str(city[i]),
            topology=str(topology[i]),
            maneuver=str(maneuver[i]),
            events=events[i],
            ego_speed=speeds[i],
            parent_id=str(parent[i]),
            log_id=str(log[i]),
            t0=float(start[i]),
            split=splits[i],
        )
        for i, scene_id in enumerate(ids)
    ]


def _image_metadata_doc(path: str) -> dict:
    """The MongoDB form of ``fo.ImageMetadata`` for a rendered BEV PNG (size known, no decode)."""
    with open(path, "rb") as f:
        header = f.read(24)  # PNG: width and height are big-endian uint32 at bytes 16..24
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    return {"_cls": "ImageMetadata", "size_bytes": os.path.getsize(path), "mime_type": "image/png",
            "width": width, "height": height, "num_channels": 3}


def _polyline_doc(label: str | None, shapes: list, closed=False, filled=False, index=None) -> dict:
    """The MongoDB form of an ``fo.Polyline`` with ``shapes`` (a list of point lists), built
    directly: label objects cost ~0.5 ms each."""
    return {
        "_id": ObjectId(),
        "_cls": "Polyline",
        "tags": [],
        "label": label,
        "points": shapes,
        "closed": closed,
        "filled": filled,
        "index": index,
    }


def _polylines_doc(polylines: list[dict]) -> dict:
    return {"_id": ObjectId(), "_cls": "Polylines", "polylines": polylines}


def _overlays(batch: SceneBatch, extent_m: float) -> dict[str, list[dict]]:
    """Overlay field → one ``Polylines`` document per scene, in normalized image coordinates,
    clipped to the image (the App would otherwise draw lines past the tile's edge)."""
    t0 = batch.history_steps
    ego_xy = bev.scene_to_image(batch.ego[:, :, :2], extent_m)  # (S, T, 2)
    # Lanes are also in the image; their overlay keeps every other point (and the end) to stay
    # light in MongoDB and the App.
    keep = np.unique(np.r_[np.arange(0, batch.lanes.shape[2], 2), batch.lanes.shape[2] - 1])
    lanes_xy = bev.scene_to_image(batch.lanes[:, :, keep], extent_m)  # (S, L, P', 2)
    route_xy = bev.scene_to_image(batch.route_polyline, extent_m)  # (S, Q, 2)
    now = batch.agents[:, :, t0]
    boxes = bev.scene_to_image(bev.box_corners(now[..., :2], now[..., 2], batch.agent_size), extent_m)
    lane_shown = batch.lane_valid & _in_view(lanes_xy)
    agent_shown = batch.agent_valid[:, :, t0] & (batch.agent_type >= 0) & _in_view(boxes)
    history = clip_polylines(ego_xy[:, : t0 + 1])
    future = clip_polylines(ego_xy[:, t0:])
    lane_parts = clip_polylines(lanes_xy[lane_shown])
    lane_scene = np.nonzero(lane_shown)[0]
    box_parts = clip_polylines(boxes[agent_shown], closed=True)
    agent_scene = np.nonzero(agent_shown)[0]
    out: dict[str, list[dict]] = {name: [] for name in OVERLAY_FIELDS}
    lanes_by_scene = _group(lane_scene, zip(np.nonzero(lane_shown)[1].tolist(), lane_parts), len(batch))
    boxes_by_scene = _group(agent_scene, zip(np.nonzero(agent_shown)[1].tolist(), box_parts), len(batch))
    for i in range(len(batch)):
        route = clip_polylines(route_xy[i][batch.route_valid[i]][None])[0] if batch.route_valid[i].sum() >= 2 else []
        out["ego_history"].append(_polylines_doc(_nonempty([("ego_history", history[i])])))
        out["ego_future"].append(_polylines_doc(_nonempty([("ego_future", future[i])])))
        out["agents"].append(_polylines_doc([
            _polyline_doc(AGENT_TYPES[int(batch.agent_type[i, a])], parts, True, True, int(a))
            for a, parts in boxes_by_scene[i] if parts
        ]))
        # No label: one "lane" text per lane only cluttered the App (the field is coloured instead).
        out["lanes"].append(_polylines_doc([_polyline_doc(None, parts, index=int(k))
                                            for k, parts in lanes_by_scene[i] if parts]))
        out["route"].append(_polylines_doc(_nonempty([("route", route)])))
    return out


def _in_view(points: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """(...) bool: any of the (..., P, 2) normalized points lies within the image (+ margin)."""
    inside = (points >= -margin) & (points <= 1 + margin)
    return inside.all(-1).any(-1)


def _group(scene_of: np.ndarray, items, num_scenes: int) -> list[list]:
    """Items (in scene order) → one list per scene."""
    grouped: list[list] = [[] for _ in range(num_scenes)]
    for s, item in zip(scene_of.tolist(), items):
        grouped[s].append(item)
    return grouped


def _nonempty(labelled_parts: list[tuple[str, list]]) -> list[dict]:
    return [_polyline_doc(label, parts) for label, parts in labelled_parts if parts]


def clip_polylines(points: np.ndarray, *, closed: bool = False) -> list[list[list[list[float]]]]:
    """Clip polylines (N, P, 2) (or closed rings) in normalized image coordinates to the image.

    Returns, per polyline, its parts inside [0, 1]² as FiftyOne ``Polyline.points`` shapes (a
    line leaving and re-entering the image becomes two shapes; one fully outside, none).
    """
    import shapely

    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return []
    geoms = shapely.polygons(points) if closed else shapely.linestrings(points)
    clipped = shapely.clip_by_rect(geoms, 0.0, 0.0, 1.0, 1.0)
    parts, owner = shapely.get_parts(clipped, return_index=True)
    keep = shapely.get_type_id(parts) == (3 if closed else 1)  # polygons / line strings only
    parts, owner = parts[keep], owner[keep]
    if closed:
        parts = shapely.get_exterior_ring(parts)
    coords, part_of = shapely.get_coordinates(parts, return_index=True)
    splits = np.flatnonzero(np.diff(part_of)) + 1
    shapes = np.split(coords.round(5), splits) if len(coords) else []
    out: list[list] = [[] for _ in range(len(points))]
    for o, shape in zip(owner.tolist(), shapes):
        out[o].append((shape[:-1] if closed else shape).tolist())  # rings repeat their first point
    return out


# ---------------------------------------------------------------------------------- read / write
def load_scenes(view: fo.Dataset | fo.DatasetView) -> SceneBatch:
    """The scene arrays of ``view``'s samples, in the view's order."""
    scene_ids, load = scene_loader(view)
    return load(np.arange(len(scene_ids)))


def scene_loader(view: fo.Dataset | fo.DatasetView) -> tuple[list[str], Callable[[np.ndarray], SceneBatch]]:
    """``(scene_ids, load)`` for reading a large view in pieces: ``load(rows)`` returns the scenes
    at positions ``rows`` of the view's order (from the memory-mapped scene store)."""
    scene_ids = view.values("scene_id")
    if not scene_ids:
        raise SceneDatasetError(f"view of dataset {root_dataset(view).name!r} has no samples to load")
    if any(s is None for s in scene_ids):
        raise SceneDatasetError(f"some samples of dataset {root_dataset(view).name!r} have no scene_id")
    store = get_store(view)
    return scene_ids, lambda rows: store.load([scene_ids[int(i)] for i in rows])


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
    # server-side $merge under a per-dataset write lock (see fiftyone_plugin.safe_write).
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
