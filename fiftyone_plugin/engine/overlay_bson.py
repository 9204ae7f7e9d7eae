"""``Polylines`` overlay documents encoded straight to BSON from numpy arrays.

An overlay field per scene is a FiftyOne ``Polylines`` document whose ``Polyline.points`` are
lists of ``[x, y]`` lists: ~200 points per world scene, 410k per 2,000 scenes. Building them as
Python lists and dicts (one float object per coordinate, one ``ObjectId`` per label) and letting
pymongo encode them again was most of the ingest's CPU (issue #19). Here the points of all
scenes are encoded to BSON in a few vectorized numpy passes and each overlay field of a scene
becomes a :class:`bson.raw_bson.RawBSONDocument`; pymongo copies those bytes into the insert
as they are (and they read like a mapping where a test looks inside).

The bytes are exactly what ``bson.encode`` writes for the dict form that
:func:`polylines_dict` builds (and that ``scene_docs`` built before): the same key order and
types (``index`` an int32, ``label``/``index`` null when absent, ``tags`` empty), checked by
``tests/test_clip.py``.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Sequence

import numpy as np
from bson import ObjectId
from bson.raw_bson import RawBSONDocument

_I32 = struct.Struct("<i")
_KEYS = [str(i).encode() + b"\x00" for i in range(10000)]  # array keys "0\0", "1\0", ...

# ------------------------------------------------------------------------------- object ids
_oid_counter = itertools.count(random.randrange(1 << 24))


def object_id_bytes(count: int) -> bytes:
    """``count`` fresh ObjectIds' 12 raw bytes each, concatenated: the bson layout (timestamp
    and this process's random from one ``ObjectId()``, then consecutive 3-byte counters from a
    process-wide counter, so ids never repeat within the process)."""
    if count <= 0:
        return b""
    prefix = np.frombuffer(ObjectId().binary[:9], np.uint8)
    start = next(_oid_counter)
    for _ in range(count - 1):  # reserve the block's counter values
        next(_oid_counter)
    counters = (np.arange(start, start + count) & 0xFFFFFF).astype(">u4").view(np.uint8).reshape(count, 4)[:, 1:]
    return np.concatenate([np.broadcast_to(prefix, (count, 9)), counters], 1).tobytes()


# ------------------------------------------------------------------------------- points
def _digits(values: np.ndarray) -> np.ndarray:
    """Number of decimal digits of non-negative ints (array keys)."""
    return 1 + (values >= 10) + (values >= 100) + (values >= 1000)


def _scatter_keys(buf: np.ndarray, starts: np.ndarray, keys: np.ndarray, type_byte: int) -> np.ndarray:
    """Write array-element headers ``type_byte, str(key), 0`` at ``starts``; returns their sizes."""
    width = _digits(keys)
    for w in np.unique(width).tolist():
        sel = width == w
        at, k = starts[sel], keys[sel]
        buf[at] = type_byte
        for d in range(w):
            buf[at + 1 + d] = 48 + (k // 10 ** (w - 1 - d)) % 10
        # the NUL after the key is already 0 (the buffer starts zeroed)
    return 2 + width


def encode_points(xy: np.ndarray, part_bounds: np.ndarray, line_parts: np.ndarray) -> tuple[bytes, np.ndarray]:
    """BSON of each polyline's ``points`` value: an array of parts, each an array of [x, y].

    Args:
        xy: (K, 2) float64 points (already rounded as stored).
        part_bounds: (P + 1,) part ``j`` is ``xy[part_bounds[j]:part_bounds[j + 1]]``.
        line_parts: (L + 1,) polyline ``i`` has parts ``line_parts[i]:line_parts[i + 1]``.

    Returns:
        ``(buf, offsets)``: polyline ``i``'s array document is ``buf[offsets[i]:offsets[i + 1]]``.
    """
    xy = np.ascontiguousarray(xy, dtype=np.float64).reshape(-1, 2)
    part_bounds = np.asarray(part_bounds, np.int64)
    line_parts = np.asarray(line_parts, np.int64)
    n_parts, n_lines = len(part_bounds) - 1, len(line_parts) - 1
    pts_per_part = np.diff(part_bounds)
    parts_per_line = np.diff(line_parts)
    part_of_point = np.repeat(np.arange(n_parts), pts_per_part)
    line_of_part = np.repeat(np.arange(n_lines), parts_per_line)
    key_of_point = np.arange(len(xy)) - part_bounds[:-1][part_of_point]
    key_of_part = np.arange(n_parts) - line_parts[:-1][line_of_part]
    # Sizes, bottom up. A point element: 0x04 key 0x00 + a 27-byte document
    # {int32 27, 0x01 "0\0" double, 0x01 "1\0" double, 0x00}.
    point_elem = 2 + _digits(key_of_point) + 27
    part_doc = 4 + np.bincount(part_of_point, point_elem, n_parts).astype(np.int64) + 1
    part_elem = 2 + _digits(key_of_part) + part_doc
    line_doc = 4 + np.bincount(line_of_part, part_elem, n_lines).astype(np.int64) + 1
    # Offsets, top down (element starts; exclusive cumulative sums within each parent).
    offsets = np.r_[0, np.cumsum(line_doc)]
    ex_part = np.cumsum(part_elem) - part_elem
    part_start = offsets[:-1][line_of_part] + 4 + ex_part - ex_part[line_parts[:-1]][line_of_part] \
        if n_parts else np.zeros(0, np.int64)
    ex_point = np.cumsum(point_elem) - point_elem
    point_start = (part_start + 2 + _digits(key_of_part))[part_of_point] + 4 + ex_point - ex_point[part_bounds[:-1]][part_of_point] \
        if len(xy) else np.zeros(0, np.int64)
    buf = np.zeros(int(offsets[-1]), np.uint8)
    _scatter_i32(buf, offsets[:-1], line_doc)
    head = _scatter_keys(buf, part_start, key_of_part, 0x04)
    _scatter_i32(buf, part_start + head, part_doc)
    head = _scatter_keys(buf, point_start, key_of_point, 0x04)
    doc = point_start + head  # the 27-byte point documents
    template = np.zeros(27, np.uint8)
    template[:4] = (27, 0, 0, 0)
    template[4:7] = (1, 48, 0)
    template[15:18] = (1, 49, 0)
    rows = np.tile(template, (len(xy), 1))
    rows[:, 7:15] = xy[:, :1].view(np.uint8)  # little-endian doubles (x86, ARM)
    rows[:, 18:26] = xy[:, 1:].view(np.uint8)
    buf[doc[:, None] + np.arange(27)] = rows
    return buf.tobytes(), offsets


def _scatter_i32(buf: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    buf[at[:, None] + np.arange(4)] = values.astype("<i4").view(np.uint8).reshape(-1, 4)


# ------------------------------------------------------------------------------- documents
_NULL_LABEL = b"\x0alabel\x00"
_NULL_INDEX = b"\x0aindex\x00"
_POLYLINE_HEAD = b"\x02_cls\x00" + _I32.pack(9) + b"Polyline\x00" + b"\x04tags\x00" + _I32.pack(5) + b"\x00"
_POLYLINES_CLS = b"\x02_cls\x00" + _I32.pack(10) + b"Polylines\x00"
_BOOL = {(False, False): b"\x08closed\x00\x00\x08filled\x00\x00", (True, True): b"\x08closed\x00\x01\x08filled\x00\x01",
         (True, False): b"\x08closed\x00\x01\x08filled\x00\x00", (False, True): b"\x08closed\x00\x00\x08filled\x00\x01"}


def _label_bytes(label: str | None) -> bytes:
    if label is None:
        return _NULL_LABEL
    raw = label.encode("utf-8")
    return b"\x02label\x00" + _I32.pack(len(raw) + 1) + raw + b"\x00"


def polylines_raw(scene_lines: Sequence[Sequence[int]], points: bytes, offsets: np.ndarray,
                  labels: Sequence[str | None], closed: bool, filled: bool,
                  indices: Sequence[int | None]) -> list[RawBSONDocument]:
    """One ``Polylines`` document per scene, its polylines ``scene_lines[s]`` (indices into the
    polylines that :func:`encode_points` encoded; ``labels``/``indices`` per polyline)."""
    n_lines = sum(len(s) for s in scene_lines)
    oids = object_id_bytes(n_lines + len(scene_lines))
    bounds = offsets.tolist()
    flags = _BOOL[(bool(closed), bool(filled))]
    label_cache: dict = {}
    out = []
    o = 0
    for lines in scene_lines:
        elems = []
        for j, i in enumerate(lines):
            label = labels[i]
            lb = label_cache.get(label)
            if lb is None:
                lb = label_cache[label] = _label_bytes(label)
            index = indices[i]
            body = b"".join((b"\x07_id\x00", oids[o:o + 12], _POLYLINE_HEAD, lb, b"\x04points\x00",
                             points[bounds[i]:bounds[i + 1]], flags,
                             _NULL_INDEX if index is None else b"\x10index\x00" + _I32.pack(index), b"\x00"))
            o += 12
            elems.append(b"\x03" + _KEYS[j] + _I32.pack(len(body) + 4) + body)
        array = b"".join(elems)
        body = b"".join((b"\x07_id\x00", oids[o:o + 12], _POLYLINES_CLS, b"\x04polylines\x00",
                         _I32.pack(len(array) + 5), array, b"\x00\x00"))
        o += 12
        out.append(RawBSONDocument(_I32.pack(len(body) + 4) + body))
    return out


def polylines_dict(polylines: list[dict]) -> dict:
    """The dict form of a ``Polylines`` document (reference for tests; what FiftyOne writes)."""
    return {"_id": ObjectId(), "_cls": "Polylines", "polylines": polylines}


def polyline_dict(label: str | None, shapes: list, closed=False, filled=False, index=None) -> dict:
    """The dict form of an ``fo.Polyline`` (reference for tests)."""
    return {"_id": ObjectId(), "_cls": "Polyline", "tags": [], "label": label, "points": shapes,
            "closed": closed, "filled": filled, "index": index}
