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

import secrets
import struct
import time
from collections.abc import Sequence

import numpy as np
from bson import ObjectId
from bson.raw_bson import RawBSONDocument

_I32 = struct.Struct("<i")

# ------------------------------------------------------------------------------- object ids
def object_id_bytes(count: int) -> bytes:
    """``count`` fresh ObjectIds' 12 raw bytes each, concatenated, in blocks of the bson layout:
    the current time, 5 random bytes drawn per block (``secrets``) and consecutive 3-byte
    counters from a random start that does not wrap. Ids of one block are distinct; two blocks
    share ids only if their random bytes match within the same second (2⁻⁴⁰), the uniqueness
    ``ObjectId()`` has across processes. No shared counter: safe from several threads."""
    out = []
    while count > 0:
        n = min(count, 1 << 23)
        prefix = np.frombuffer(int(time.time()).to_bytes(4, "big") + secrets.token_bytes(5), np.uint8)
        start = secrets.randbelow((1 << 24) - n + 1)
        counters = np.arange(start, start + n).astype(">u4").view(np.uint8).reshape(n, 4)[:, 1:]
        out.append(np.concatenate([np.broadcast_to(prefix, (n, 9)), counters], 1).tobytes())
        count -= n
    return b"".join(out)


# ------------------------------------------------------------------------------- points
def _digits(values: np.ndarray) -> np.ndarray:
    """Number of decimal digits of non-negative ints (array keys), of any size: a part of
    10,000 points or more has 5-digit keys (a route under raised import limits)."""
    values = np.asarray(values, np.int64)
    width = np.ones(values.shape, np.int64)
    top = int(values.max()) if values.size else 0
    power = 10
    while power <= top:
        width += values >= power
        power *= 10
    return width


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
    layout = _PointsLayout(xy, part_bounds, line_parts)
    offsets = np.r_[0, np.cumsum(layout.line_doc)].astype(np.int64)
    buf = np.zeros(int(offsets[-1]), np.uint8)
    layout.write(buf, offsets[:-1])
    return buf.tobytes(), offsets


class _PointsLayout:
    """Sizes of the ``points`` arrays (``line_doc``, bytes per polyline), then :meth:`write`."""

    def __init__(self, xy: np.ndarray, part_bounds: np.ndarray, line_parts: np.ndarray):
        self.xy = np.ascontiguousarray(xy, dtype=np.float64).reshape(-1, 2)
        self.part_bounds = part_bounds = np.asarray(part_bounds, np.int64)
        self.line_parts = line_parts = np.asarray(line_parts, np.int64)
        n_parts, n_lines = len(part_bounds) - 1, len(line_parts) - 1
        self.part_of_point = np.repeat(np.arange(n_parts), np.diff(part_bounds))
        self.line_of_part = np.repeat(np.arange(n_lines), np.diff(line_parts))
        self.key_of_point = np.arange(len(self.xy)) - part_bounds[:-1][self.part_of_point]
        self.key_of_part = np.arange(n_parts) - line_parts[:-1][self.line_of_part]
        # A point element: 0x04 key 0x00 + a 27-byte document {int32 27, 0x01 "0\0" double,
        # 0x01 "1\0" double, 0x00}; a part element: 0x04 key 0x00 + its array document.
        self.point_elem = 2 + _digits(self.key_of_point) + 27
        self.part_doc = 4 + np.bincount(self.part_of_point, self.point_elem, n_parts).astype(np.int64) + 1
        self.part_elem = 2 + _digits(self.key_of_part) + self.part_doc
        self.line_doc = 4 + np.bincount(self.line_of_part, self.part_elem, n_lines).astype(np.int64) + 1

    def write(self, buf: np.ndarray, line_start: np.ndarray) -> None:
        """Write polyline ``i``'s array document at ``buf[line_start[i]:]`` (a zeroed buffer)."""
        xy, part_of_point, line_of_part = self.xy, self.part_of_point, self.line_of_part
        _scatter_i32(buf, line_start, self.line_doc)
        if len(self.part_doc) == 0:
            return
        ex_part = np.cumsum(self.part_elem) - self.part_elem
        part_start = line_start[line_of_part] + 4 + ex_part - ex_part[self.line_parts[:-1]][line_of_part]
        head = _scatter_keys(buf, part_start, self.key_of_part, 0x04)
        _scatter_i32(buf, part_start + head, self.part_doc)
        if len(xy) == 0:
            return
        ex_point = np.cumsum(self.point_elem) - self.point_elem
        point_start = (part_start + head + 4)[part_of_point] + ex_point - ex_point[self.part_bounds[:-1]][part_of_point]
        doc = point_start + _scatter_keys(buf, point_start, self.key_of_point, 0x04)  # the 27-byte documents
        rows = np.tile(_POINT_TEMPLATE, (len(xy), 1))
        le = xy.astype("<f8", copy=False)  # BSON doubles are little-endian whatever the host
        rows[:, 7:15] = le[:, :1].view(np.uint8)
        rows[:, 18:26] = le[:, 1:].view(np.uint8)
        buf[doc[:, None] + np.arange(27)] = rows


_POINT_TEMPLATE = np.frombuffer(_I32.pack(27) + b"\x010\x00" + bytes(8) + b"\x011\x00" + bytes(8) + b"\x00", np.uint8)


def _scatter_i32(buf: np.ndarray, at: np.ndarray, values: np.ndarray) -> None:
    buf[at[:, None] + np.arange(4)] = values.astype("<i4").view(np.uint8).reshape(-1, 4)


def _scatter_rows(buf: np.ndarray, at: np.ndarray, rows: np.ndarray) -> None:
    buf[at[:, None] + np.arange(rows.shape[1])] = rows


# ------------------------------------------------------------------------------- documents
_NULL_LABEL = b"\x0alabel\x00"
_NULL_INDEX = b"\x0aindex\x00"
_POLYLINE_HEAD = b"\x02_cls\x00" + _I32.pack(9) + b"Polyline\x00" + b"\x04tags\x00" + _I32.pack(5) + b"\x00"
_POLYLINES_HEAD = b"\x02_cls\x00" + _I32.pack(10) + b"Polylines\x00" + b"\x04polylines\x00"
_FLAGS = b"\x08closed\x00%c\x08filled\x00%c"


def _label_bytes(label: str | None) -> bytes:
    if label is None:
        return _NULL_LABEL
    raw = label.encode("utf-8")
    return b"\x02label\x00" + _I32.pack(len(raw) + 1) + raw + b"\x00"


def polylines_docs(n_scenes: int, line_scene: np.ndarray, xy: np.ndarray, part_bounds: np.ndarray,
                   line_parts: np.ndarray, labels: Sequence[str | None] | np.ndarray | str | None,
                   indices: np.ndarray | None, closed: bool, filled: bool) -> list[RawBSONDocument]:
    """One ``Polylines`` document per scene, all encoded in one buffer.

    Args:
        n_scenes: documents returned (scenes without polylines get an empty list).
        line_scene: (L,) non-decreasing scene of each polyline.
        xy, part_bounds, line_parts: the polylines' points (see :func:`encode_points`).
        labels: one label for all, or (L,) labels (str or None).
        indices: None (no ``index``) or (L,) ints.
        closed, filled: the same for every polyline.
    """
    line_scene = np.asarray(line_scene, np.int64)
    n_lines = len(line_scene)
    if n_lines and (np.any(np.diff(line_scene) < 0) or line_scene[0] < 0 or line_scene[-1] >= n_scenes):
        raise ValueError(f"line_scene must be non-decreasing scene indices in [0, {n_scenes})")
    points = _PointsLayout(xy, part_bounds, line_parts)
    # Labels: per distinct label, its bytes; polylines refer to them by code.
    if labels is None or isinstance(labels, str):
        names, label_code = [labels], np.zeros(n_lines, np.int64)
    else:
        names, label_code = _factorize(list(labels))
    label_bytes = [_label_bytes(x) for x in names]
    label_len = np.array([len(b) for b in label_bytes], np.int64)[label_code]
    scene_first = np.searchsorted(line_scene, np.arange(n_scenes + 1))
    key = np.arange(n_lines) - scene_first[:-1][line_scene]
    # Polyline element: 0x03 key 0x00 | int32 | 0x07 "_id" 0x00 oid | head | label | 0x04 "points" 0x00
    #                   | points array | flags | index | 0x00
    pre = 2 + _digits(key) + 4 + 17 + len(_POLYLINE_HEAD) + label_len + 8
    index_len = 7 if indices is None else 11
    elem = pre + points.line_doc + 18 + index_len + 1
    # Scene document: int32 | 0x07 "_id" 0x00 oid | _cls, 0x04 "polylines" 0x00 | int32 | elements | 0x00 0x00
    scene_head = 4 + 17 + len(_POLYLINES_HEAD) + 4
    content = np.bincount(line_scene, elem, n_scenes).astype(np.int64)
    scene_size = scene_head + content + 2
    scene_start = np.r_[0, np.cumsum(scene_size)].astype(np.int64)
    buf = np.zeros(int(scene_start[-1]), np.uint8)
    oids = np.frombuffer(object_id_bytes(n_scenes + n_lines), np.uint8).reshape(-1, 12)
    # scene heads
    starts = scene_start[:-1]
    _scatter_i32(buf, starts, scene_size)
    _scatter_rows(buf, starts + 4, np.tile(np.frombuffer(b"\x07_id\x00", np.uint8), (n_scenes, 1)))
    _scatter_rows(buf, starts + 9, oids[:n_scenes])
    _scatter_rows(buf, starts + 21, np.tile(np.frombuffer(_POLYLINES_HEAD, np.uint8), (n_scenes, 1)))
    _scatter_i32(buf, starts + 21 + len(_POLYLINES_HEAD), 4 + content + 1)
    if n_lines:
        ex = np.cumsum(elem) - elem
        line_start = starts[line_scene] + scene_head + ex - ex[scene_first[line_scene]]
        at = line_start + _scatter_keys(buf, line_start, key, 0x03)
        _scatter_i32(buf, at, elem - (at - line_start))
        fixed = np.frombuffer(b"\x07_id\x00", np.uint8)
        _scatter_rows(buf, at + 4, np.tile(fixed, (n_lines, 1)))
        _scatter_rows(buf, at + 9, oids[n_scenes:])
        at = at + 21
        _scatter_rows(buf, at, np.tile(np.frombuffer(_POLYLINE_HEAD, np.uint8), (n_lines, 1)))
        at = at + len(_POLYLINE_HEAD)
        for code, raw in enumerate(label_bytes):
            sel = label_code == code
            _scatter_rows(buf, at[sel], np.tile(np.frombuffer(raw + b"\x04points\x00", np.uint8), (int(sel.sum()), 1)))
        at = at + label_len + 8
        points.write(buf, at)
        at = at + points.line_doc
        tail = _FLAGS % (int(closed), int(filled)) + (_NULL_INDEX if indices is None else b"\x10index\x00")
        _scatter_rows(buf, at, np.tile(np.frombuffer(tail, np.uint8), (n_lines, 1)))
        if indices is not None:
            _scatter_i32(buf, at + len(tail), np.asarray(indices, np.int64))
    raw = buf.tobytes()
    bounds = scene_start.tolist()
    return [RawBSONDocument(raw[bounds[i]:bounds[i + 1]]) for i in range(n_scenes)]


def _factorize(values: list) -> tuple[list, np.ndarray]:
    """Distinct values (first-seen order) and each value's code."""
    codes: dict = {}
    out = np.fromiter((codes.setdefault(v, len(codes)) for v in values), np.int64, len(values))
    return list(codes), out


def polylines_dict(polylines: list[dict]) -> dict:
    """The dict form of a ``Polylines`` document (reference for tests; what FiftyOne writes)."""
    return {"_id": ObjectId(), "_cls": "Polylines", "polylines": polylines}


def polyline_dict(label: str | None, shapes: list, closed=False, filled=False, index=None) -> dict:
    """The dict form of an ``fo.Polyline`` (reference for tests)."""
    return {"_id": ObjectId(), "_cls": "Polyline", "tags": [], "label": label, "points": shapes,
            "closed": closed, "filled": filled, "index": index}
