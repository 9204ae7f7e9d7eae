"""Sample documents for scenes, built in bulk as plain MongoDB dicts.

Why not ``fo.Sample`` / ``fo.Polylines`` objects: profiling ``add_scenes`` on 2,000 world scenes
(cProfile, issue #19) spent 3.7 s in ``add_samples`` (schema expansion and validation per sample),
2.6 s in five ``set_values`` calls for the overlays and 2.9 s clipping polylines one scene (and one
``tolist``) at a time — 154 samples/s before any rendering. Here every scene's document is built
from a few vectorized numpy calls and inserted with one ``insert_many``; the schema is declared
once per dataset, not inferred per sample. The overlays are clipped by
:mod:`autoscale_core.clip` (vectorized Liang–Barsky / Sutherland–Hodgman, equal to the shapely
clipping used before) and encoded straight to BSON by :mod:`.overlay_bson` (no Python float
per point, no ``ObjectId`` object per label): 2.0 → 0.6 s CPU per 2,000 world scenes.

Document layout = what ``fo.Dataset.add_samples`` writes (checked by
``tests/test_scene_ingest.py``): ``_id, filepath, tags, metadata, created_at, last_modified_at,
_media_type, _rand, _dataset_id`` and the scene fields; overlays as ``Polylines`` documents in
normalized image coordinates (:func:`autoscale_core.render.scene_to_image`), rounded to 1e-5
(0.6 mm at the default 64 m extent).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import random
from collections.abc import Sequence

import fiftyone as fo
import numpy as np
from bson import ObjectId

from autoscale_core import clip
from autoscale_core import render as bev
from autoscale_core.scene import AGENT_TYPES, SceneBatch

from . import overlay_bson

SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
OVERLAY_FIELDS = ("ego_history", "ego_future", "agents", "lanes", "route")
COMPLETE_FIELD = "route"  # every complete scene sample has it: see fiftyone_plugin.engine.scene_adds
STRING_FIELDS = ("scene_id", "source", "city", "topology", "maneuver", "parent_id", "log_id", "split")
FLOAT_FIELDS = ("ego_speed", "t0")
_random = random.Random()


# ---------------------------------------------------------------------------------- scalars
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


def scalar_columns(batch: SceneBatch) -> dict[str, list]:
    """Field → one value per scene (str, float or list of str) for the metadata fields."""
    meta, n = batch.meta, len(batch)
    ids = [str(s) for s in meta["scene_id"]]

    def column(key: str, default="") -> list:
        values = meta.get(key)
        return [default] * n if values is None else list(values)

    out: dict[str, list] = {"scene_id": ids}
    for key in ("source", "city", "topology", "maneuver", "parent_id", "log_id"):
        out[key] = [str(v) for v in column(key)]
    out["events"] = [[e for e in str(x).split(";") if e] for x in column("events")]
    out["ego_speed"] = batch.ego[:, batch.history_steps, 3].astype(float).tolist()  # m/s at t0
    out["t0"] = [float(v) for v in column("t0", 0.0)]
    out["split"] = assign_split(ids)
    return out


def image_metadata_doc(path: str) -> dict:
    """The MongoDB form of ``fo.ImageMetadata`` for a PNG on disk (size read, no decode)."""
    with open(path, "rb") as f:
        header = f.read(24)  # PNG: width and height are big-endian uint32 at bytes 16..24
    width, height = int.from_bytes(header[16:20], "big"), int.from_bytes(header[20:24], "big")
    return {"_cls": "ImageMetadata", "size_bytes": os.path.getsize(path), "mime_type": "image/png",
            "width": width, "height": height, "num_channels": 3}


# ---------------------------------------------------------------------------------- overlays
def clip_polylines(points: np.ndarray, *, closed: bool = False) -> list[list[list[list[float]]]]:
    """Clip polylines (N, P, 2) (or closed convex rings, e.g. boxes) in normalized image
    coordinates to the image.

    Returns, per polyline, its parts inside [0, 1]² as FiftyOne ``Polyline.points`` shapes (a
    line leaving and re-entering the image becomes two shapes; one fully outside, none).
    Vectorized (:mod:`autoscale_core.clip`); equal to clipping each one with
    ``shapely.clip_by_rect`` after the rounding to 1e-5 (``tests/test_clip.py``).
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) == 0:
        return []
    if closed:
        parts = clip.clip_convex_polygons(points)
    else:
        n, p = points.shape[:2]
        parts = clip.clip_lines(points.reshape(-1, 2), np.arange(n + 1) * p)
    return _parts_by_owner(*parts, len(points))


def clip_ragged(coords: np.ndarray, owner: np.ndarray, count: int) -> list[list]:
    """:func:`clip_polylines` (open lines) for ragged input: ``coords`` (M, 2) whose rows belong
    to line ``owner`` (M,) (non-decreasing, ≥ 2 points each) of ``count`` lines; all in one call."""
    owner = np.asarray(owner, dtype=np.int64)
    starts = np.searchsorted(owner, np.arange(count + 1))
    return _parts_by_owner(*clip.clip_lines(coords, starts), count)


def _parts_by_owner(xy: np.ndarray, bounds: np.ndarray, owner: np.ndarray, count: int) -> list[list]:
    """Per owner, its parts' points as lists (rounded to 1e-5). The coordinates are converted to
    Python lists once and sliced: a ``tolist`` per part cost more than the clipping itself."""
    out: list[list] = [[] for _ in range(count)]
    rows = xy.round(5).tolist()
    b = bounds.tolist()
    for o, start, stop in zip(owner.tolist(), b[:-1], b[1:]):
        out[o].append(rows[start:stop])
    return out


def _in_view(points: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """(...) bool: any of the (..., P, 2) normalized points lies within the image (+ margin)."""
    inside = (points >= -margin) & (points <= 1 + margin)
    return inside.all(-1).any(-1)


def _field_docs(parts: tuple, owner_scene: np.ndarray, n: int, labels, indices,
                closed: bool = False) -> list:
    """Per scene, the ``Polylines`` document (raw BSON) of clipped ``parts`` = ``(xy, bounds,
    owner)``: one polyline per owner with parts, in scene ``owner_scene[owner]``, labelled
    ``labels`` (one for all, or per owner) with ``index`` ``indices[owner]`` (or none)."""
    xy, bounds, owner = parts
    line_owner, first = np.unique(owner, return_index=True)  # owners come sorted
    if labels is not None and not isinstance(labels, str):
        labels = np.asarray(labels, dtype=object)[line_owner]
    return overlay_bson.polylines_docs(
        n, np.asarray(owner_scene)[line_owner], xy.round(5), bounds, np.r_[first, len(owner)], labels,
        None if indices is None else np.asarray(indices)[line_owner], closed=closed, filled=closed)


def overlay_docs(batch: SceneBatch, extent_m: float) -> dict[str, list]:
    """Overlay field → one ``Polylines`` document per scene, clipped to the image (the App would
    otherwise draw lines past the tile's edge). Lanes keep every other point (and the end): they
    are also in the image, and lighter documents load faster in the App.

    The documents are :class:`bson.raw_bson.RawBSONDocument` (:mod:`.overlay_bson`: the points
    never become Python floats), byte for byte what pymongo writes for their dict form."""
    t0, n = batch.history_steps, len(batch)
    scene_index = np.arange(n)
    ego_xy = bev.scene_to_image(batch.ego[:, :, :2], extent_m)  # (S, T, 2)
    history = clip.clip_lines(ego_xy[:, : t0 + 1].reshape(-1, 2), np.arange(n + 1) * (t0 + 1))
    future = clip.clip_lines(ego_xy[:, t0:].reshape(-1, 2), np.arange(n + 1) * (ego_xy.shape[1] - t0))
    # Lanes: valid ones only, then those near the view.
    keep = np.unique(np.r_[np.arange(0, batch.lanes.shape[2], 2), batch.lanes.shape[2] - 1])
    lane_scene, lane_column = np.nonzero(batch.lane_valid)
    lanes_xy = bev.scene_to_image(batch.lanes[lane_scene, lane_column][:, keep], extent_m)  # (N, P', 2)
    near = _in_view(lanes_xy)
    lane_scene, lane_column, lanes_xy = lane_scene[near], lane_column[near], lanes_xy[near]
    lanes = clip.clip_lines(lanes_xy.reshape(-1, 2), np.arange(len(lanes_xy) + 1) * lanes_xy.shape[1])
    # Agents at t0: oriented boxes.
    shown = batch.agent_valid[:, :, t0] & (batch.agent_type >= 0)
    agent_scene, agent_column = np.nonzero(shown)
    now = batch.agents[agent_scene, agent_column, t0]
    boxes = bev.scene_to_image(bev.box_corners(now[:, :2], now[:, 2], batch.agent_size[agent_scene, agent_column]),
                               extent_m)
    near = _in_view(boxes)
    agent_scene, agent_column, boxes = agent_scene[near], agent_column[near], boxes[near]
    agents = clip.clip_convex_polygons(boxes)
    agent_labels = np.array(AGENT_TYPES, dtype=object)[batch.agent_type[agent_scene, agent_column]]
    # Route: the valid points of scenes with at least two.
    routed = batch.route_valid.sum(1) >= 2
    route_mask = batch.route_valid & routed[:, None]
    route_xy = bev.scene_to_image(batch.route_polyline[route_mask], extent_m)
    route = clip.clip_lines(route_xy, np.searchsorted(np.nonzero(route_mask)[0], np.arange(n + 1)))
    return {
        "ego_history": _field_docs(history, scene_index, n, "ego_history", None),
        "ego_future": _field_docs(future, scene_index, n, "ego_future", None),
        "agents": _field_docs(agents, agent_scene, n, agent_labels, agent_column, closed=True),
        # No label: one "lane" text per lane only cluttered the App (the field is coloured instead).
        "lanes": _field_docs(lanes, lane_scene, n, None, lane_column),
        "route": _field_docs(route, scene_index, n, "route", None),
    }


# ---------------------------------------------------------------------------------- writes
def declare_fields(dataset: fo.Dataset) -> None:
    """Declare the scene fields a raw insert writes, in one schema update (``add_sample_field``
    reloads the dataset once per field: 1.5 s for the 16 fields under load)."""
    if dataset.media_type is None:
        dataset.media_type = "image"
    wanted = {**{f: fo.StringField() for f in STRING_FIELDS}, **{f: fo.FloatField() for f in FLOAT_FIELDS},
              "events": fo.ListField(fo.StringField()),
              **{f: fo.EmbeddedDocumentField(fo.Polylines) for f in OVERLAY_FIELDS}}
    missing = {f: v for f, v in wanted.items() if not dataset.has_sample_field(f)}
    if missing:
        dataset._merge_sample_field_schema(missing)  # the same private call as safe_write.publish
    if "scene_id" in missing:
        dataset.create_index("scene_id")  # for existing_scene_ids


def existing_scene_ids(dataset: fo.Dataset, ids: list[str]) -> set[str]:
    """Which of ``ids`` are already in ``dataset``: an indexed ``$in`` query, so the check per add
    does not grow with the dataset (``distinct("scene_id")`` over 1e6 samples on every chunk did)."""
    if not dataset.has_sample_field("scene_id"):
        return set()
    dataset.create_index("scene_id")  # a no-op once it exists
    return set(dataset._sample_collection.distinct("scene_id", {"scene_id": {"$in": list(ids)}}))


def sample_docs(dataset: fo.Dataset, batch: SceneBatch, paths: list[str], metadata: list[dict] | None,
                overlays: dict[str, list], ids: Sequence[ObjectId] | None = None) -> list[dict]:
    """One whole sample document per scene (every overlay included), ``_id`` from ``ids`` (the
    block an add reserved, see scene_adds) or fresh."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)  # FiftyOne stores naive UTC
    columns = scalar_columns(batch)
    columns.update(overlays)
    names = list(columns)
    if ids is None:
        ids = [ObjectId() for _ in range(len(batch))]
    if len(ids) != len(batch):
        raise ValueError(f"{len(ids)} sample ids for {len(batch)} scenes")
    docs = []
    for i, row in enumerate(zip(*(columns[k] for k in names))):
        doc = {"_id": ids[i], "filepath": paths[i], "tags": [], "created_at": now, "last_modified_at": now,
               "_media_type": "image", "_rand": _random.random() * 0.001 + 0.999,  # as fiftyone.core.odm.sample
               "_dataset_id": dataset._doc.id, **dict(zip(names, row))}
        if metadata is not None:
            doc["metadata"] = metadata[i]
        docs.append(doc)
    return docs


def insert_docs(dataset: fo.Dataset, docs: list[dict], chunk: int = 1000) -> list[str]:
    """Insert sample documents (unordered, in chunks bounded well below MongoDB's 48 MB message)."""
    collection = dataset._sample_collection
    for start in range(0, len(docs), chunk):
        collection.insert_many(docs[start:start + chunk], ordered=False)
    return [str(d["_id"]) for d in docs]
