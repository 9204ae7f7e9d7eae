"""Sample documents for scenes, built in bulk as plain MongoDB dicts.

Why not ``fo.Sample`` / ``fo.Polylines`` objects: profiling ``add_scenes`` on 2,000 world scenes
(cProfile, issue #19) spent 3.7 s in ``add_samples`` (schema expansion and validation per sample),
2.6 s in five ``set_values`` calls for the overlays and 2.9 s clipping polylines one scene (and one
``tolist``) at a time — 154 samples/s before any rendering. Here every scene's document is built
from a few vectorized numpy/shapely calls and inserted with one ``insert_many``; the schema is
declared once per dataset, not inferred per sample.

Document layout = what ``fo.Dataset.add_samples`` writes (checked by
``tests/test_scene_ingest.py``): ``_id, filepath, tags, metadata, created_at, last_modified_at,
_media_type, _rand, _dataset_id`` and the scene fields; overlays as ``Polylines`` documents in
normalized image coordinates (:func:`autoscale_core.render.scene_to_image`), rounded to 1e-5
(0.6 mm at the default 64 m extent).
"""

from __future__ import annotations

import datetime
import hashlib
import itertools
import os
import random
from collections.abc import Sequence

import fiftyone as fo
import numpy as np
from bson import ObjectId

from autoscale_core import render as bev
from autoscale_core.scene import AGENT_TYPES, SceneBatch

SPLITS = (("train", 0.8), ("val", 0.1), ("test", 0.1))
OVERLAY_FIELDS = ("ego_history", "ego_future", "agents", "lanes", "route")
COMPLETE_FIELD = "route"  # written last, after the samples: see fiftyone_plugin.engine.scene_adds
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
_oid_counter = itertools.count(random.randrange(1 << 24))
_oid_pool: list[ObjectId] = []


def _new_object_id() -> ObjectId:
    """A fresh ObjectId, from a pool made in blocks of 8,192 with the bson layout (timestamp and
    per-process random from one ``ObjectId()``, then a 3-byte counter): ``ObjectId()`` one at a
    time took 22 µs each under load, most of an overlay document's cost."""
    if not _oid_pool:
        prefix = ObjectId().binary[:9]
        count = 8192
        start = next(_oid_counter)
        for _ in range(count - 1):  # reserve the block's counter values
            next(_oid_counter)
        counters = ((np.arange(start, start + count) & 0xFFFFFF).astype(">u4").view(np.uint8).reshape(count, 4))[:, 1:]
        raw = np.concatenate([np.frombuffer(prefix, np.uint8)[None].repeat(count, 0), counters], 1).tobytes()
        _oid_pool.extend(ObjectId(raw[i:i + 12]) for i in range(len(raw) - 12, -1, -12))
    return _oid_pool.pop()


def _polyline_doc(label: str | None, shapes: list, closed=False, filled=False, index=None) -> dict:
    """The MongoDB form of an ``fo.Polyline`` (label objects cost ~0.5 ms each)."""
    return {"_id": _new_object_id(), "_cls": "Polyline", "tags": [], "label": label, "points": shapes,
            "closed": closed, "filled": filled, "index": index}


def _polylines_doc(polylines: list[dict]) -> dict:
    return {"_id": _new_object_id(), "_cls": "Polylines", "polylines": polylines}


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
    return _clipped_parts(geoms, np.arange(len(points)), len(points), closed=closed)


def clip_ragged(coords: np.ndarray, owner: np.ndarray, count: int) -> list[list]:
    """:func:`clip_polylines` (open lines) for ragged input: ``coords`` (M, 2) whose rows belong
    to line ``owner`` (M,) (non-decreasing, ≥ 2 points each) of ``count`` lines; all in one call."""
    import shapely

    if len(coords) == 0:
        return [[] for _ in range(count)]
    ids = np.unique(owner)
    geoms = shapely.linestrings(np.asarray(coords, dtype=np.float64), indices=np.searchsorted(ids, owner))
    return _clipped_parts(geoms, ids, count, closed=False)


def _clipped_parts(geoms, geom_owner: np.ndarray, count: int, *, closed: bool) -> list[list]:
    """Clip shapely ``geoms`` (owned by ``geom_owner``) to [0, 1]²; per owner, its parts' points.

    The clipped coordinates are converted to Python lists once and sliced: a ``tolist`` per part
    cost more than the clipping itself.
    """
    import shapely

    out: list[list] = [[] for _ in range(count)]
    clipped = shapely.clip_by_rect(geoms, 0.0, 0.0, 1.0, 1.0)
    parts, part_owner = shapely.get_parts(clipped, return_index=True)
    keep = shapely.get_type_id(parts) == (3 if closed else 1)  # polygons / line strings only
    parts, owners = parts[keep], geom_owner[part_owner[keep]]
    if closed:
        parts = shapely.get_exterior_ring(parts)
    xy, part_of = shapely.get_coordinates(parts, return_index=True)
    if len(xy) == 0:
        return out
    rows = xy.round(5).tolist()
    bounds = np.r_[0, np.flatnonzero(np.diff(part_of)) + 1, len(rows)].tolist()
    for o, start, stop in zip(owners.tolist(), bounds[:-1], bounds[1:]):
        out[o].append(rows[start:stop - 1] if closed else rows[start:stop])  # rings repeat their first point
    return out


def _in_view(points: np.ndarray, margin: float = 0.1) -> np.ndarray:
    """(...) bool: any of the (..., P, 2) normalized points lies within the image (+ margin)."""
    inside = (points >= -margin) & (points <= 1 + margin)
    return inside.all(-1).any(-1)


def _by_scene(mask: np.ndarray, parts: list) -> list[list[tuple[int, list]]]:
    """(S, K) mask and the clipped parts of its True entries (row-major) → per scene (k, parts)."""
    grouped: list[list] = [[] for _ in range(mask.shape[0])]
    scenes, columns = np.nonzero(mask)
    for s, k, p in zip(scenes.tolist(), columns.tolist(), parts):
        if p:
            grouped[s].append((k, p))
    return grouped


def overlay_docs(batch: SceneBatch, extent_m: float) -> dict[str, list[dict]]:
    """Overlay field → one ``Polylines`` document per scene, clipped to the image (the App would
    otherwise draw lines past the tile's edge). Lanes keep every other point (and the end): they
    are also in the image, and lighter documents load faster in the App."""
    t0, n = batch.history_steps, len(batch)
    ego_xy = bev.scene_to_image(batch.ego[:, :, :2], extent_m)  # (S, T, 2)
    keep = np.unique(np.r_[np.arange(0, batch.lanes.shape[2], 2), batch.lanes.shape[2] - 1])
    lanes_xy = bev.scene_to_image(batch.lanes[:, :, keep], extent_m)  # (S, L, P', 2)
    now = batch.agents[:, :, t0]
    boxes = bev.scene_to_image(bev.box_corners(now[..., :2], now[..., 2], batch.agent_size), extent_m)
    lane_shown = batch.lane_valid & _in_view(lanes_xy)
    agent_shown = batch.agent_valid[:, :, t0] & (batch.agent_type >= 0) & _in_view(boxes)
    routed = batch.route_valid.sum(1) >= 2
    route_mask = batch.route_valid & routed[:, None]
    route_xy = bev.scene_to_image(batch.route_polyline[route_mask], extent_m)
    route = clip_ragged(route_xy, np.nonzero(route_mask)[0], n)
    history, future = clip_polylines(ego_xy[:, : t0 + 1]), clip_polylines(ego_xy[:, t0:])
    lanes = _by_scene(lane_shown, clip_polylines(lanes_xy[lane_shown]))
    agents = _by_scene(agent_shown, clip_polylines(boxes[agent_shown], closed=True))
    types = batch.agent_type.tolist()

    def single(label, parts):
        return _polylines_doc([_polyline_doc(label, parts)] if parts else [])

    return {
        "ego_history": [single("ego_history", history[i]) for i in range(n)],
        "ego_future": [single("ego_future", future[i]) for i in range(n)],
        "agents": [_polylines_doc([_polyline_doc(AGENT_TYPES[types[i][a]], p, True, True, a) for a, p in agents[i]])
                   for i in range(n)],
        # No label: one "lane" text per lane only cluttered the App (the field is coloured instead).
        "lanes": [_polylines_doc([_polyline_doc(None, p, index=k) for k, p in lanes[i]]) for i in range(n)],
        "route": [single("route", route[i]) for i in range(n)],
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
                overlays: dict[str, list[dict]]) -> list[dict]:
    """One sample document per scene, without ``COMPLETE_FIELD`` (written after, see scene_adds)."""
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)  # FiftyOne stores naive UTC
    columns = scalar_columns(batch)
    columns.update({k: v for k, v in overlays.items() if k != COMPLETE_FIELD})
    names = list(columns)
    docs = []
    for i, row in enumerate(zip(*(columns[k] for k in names))):
        doc = {"_id": ObjectId(), "filepath": paths[i], "tags": [], "created_at": now, "last_modified_at": now,
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


def set_by_id(dataset: fo.Dataset, field: str, sample_ids: list[str], values: list[dict], chunk: int = 1000) -> None:
    """``field = values[i]`` on sample ``sample_ids[i]``: one unordered bulk write per chunk."""
    from pymongo import UpdateOne

    collection = dataset._sample_collection
    ops = [UpdateOne({"_id": ObjectId(i)}, {"$set": {field: v}}) for i, v in zip(sample_ids, values)]
    for start in range(0, len(ops), chunk):
        collection.bulk_write(ops[start:start + chunk], ordered=False)
