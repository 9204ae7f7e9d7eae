"""A sharded, memory-mappable columnar store for scene arrays.

Why not FiftyOne array fields: a scene is ~20 kB of arrays; 100k scenes through MongoDB
documents would take minutes to load. The store keeps one ``.npy`` file per array per shard,
so loading is a memory-map plus a gather, and a FiftyOne sample only keeps its ``scene_id``.

Layout of ``root``::

    manifest.json             {"format": 1, "dt": .., "history_steps": .., "num_steps": .., "shards": [..]}
    shard-00000/ego.npy ...   one file per array of :data:`autoscale_core.scene.ARRAY_SPECS`
    shard-00000/meta.json     {"scene_id": [...], "source": [...], ...}

Shards are written to a temporary folder and renamed into place, and the manifest is replaced
atomically, so a crash never leaves a half-written shard visible.

Compact encoding (format 2)
---------------------------
Format 2 stores the large float arrays (:data:`FIXED_POINT_COLUMNS`) as int16 fixed point, one
step per column recorded in the shard's manifest entry (``"encoding": {array: [step, ...]}``);
a shard without an entry for an array (every format-1 shard) holds it as written (float32), so
stores written by the old format load unchanged. The step of a column is its base step (below)
times the smallest power of two in 1, 2, 4 that fits the shard's largest absolute value in int16;
a column that does not fit even at 4× (or holds NaN/inf) keeps its whole array in float32.

Error bound after a round trip, per value: half a step, i.e.

* positions (x, y of ego, agents, lanes, polygons, crosswalks, route): ≤ 0.5 cm where the
  shard's coordinates stay within ±327 m, ≤ 1 cm within ±655 m, ≤ 2 cm within ±1,310 m;
* headings: ≤ 5e-5 rad (≤ 2e-4 rad at 4×); speeds: ≤ 0.005 m/s; accelerations ≤ 0.005 m/s².

Sizes, validity masks, types, lane topology and ``global_pose`` are stored exactly. Effect on
scores: EPDMS of the rule planner on 200 world scenes after a round trip, see
``tests/test_store_compact.py`` and ``benchmarks/results/store_compact.md``. Memory-mapping still
works: an int16 array maps like a float32 one, and a gather decodes only the rows it reads.

Packed encoding (format 3, ``SceneStore(root, compact="packed")``)
-----------------------------------------------------------------
For a million scenes (issue #19: ≤ 10 GB of disk with the FiftyOne dataset). Where format 1's
bytes go on world scenes (``benchmarks/results/store_1e6_budget.md``): padding — lanes are padded
to the shard's largest lane count (~2/3 of the lane rows are padding), agents to its largest agent
count — and float32 coordinates. A packed shard stores, in blocks of :data:`PACKED_BLOCK` scenes:

* **ragged rows**: along axis 1 of each group of :data:`PACKED_GROUPS` (agents, lanes, drivable
  polygons, crosswalks, route lanes, route points) only the rows where some array of the group
  differs from its padding value, with their slot numbers; the rest is restored as padding, so
  the padded shape and every padding value come back exactly;
* **fixed point without a range limit**: the arrays of :data:`FIXED_POINT_COLUMNS` as int32 steps
  (the base steps of format 2: 1 cm, 1e-4 rad, 0.01 m/s, 0.01 m/s²; no 2×/4× coarsening, no
  ±327 m limit), differenced along the point / time axis (:data:`PACKED_DELTA`); an array with
  NaN/inf or beyond ±2^30 steps is kept as float32 for that shard;
* each block's columns byte-shuffled and compressed with zstd (pyarrow's codec, a dependency
  already; zlib where pyarrow lacks zstd), one frame per block, ``packed.bin`` + ``packed_index.npy``
  (offset, compressed and raw length, CRC-32 of the compressed bytes per block: a damaged block
  is a :class:`SceneStoreError`, never silently wrong values) + ``layout.json`` (padded shapes,
  steps, codec). A shard is written into a temporary folder and renamed before the manifest
  names it, as for formats 1 and 2.

Error bound after a round trip, per value: half a step — ≤ 0.5 cm for positions at any range,
≤ 5e-5 rad for headings, ≤ 0.005 m/s, ≤ 0.005 m/s² — plus float32 rounding of the decoded value;
everything else (sizes, widths, speed limits, masks, types, topology, traffic lights,
``global_pose``) is exact. ``tests/test_store_packed.py`` checks the bound and the rule planner's
EPDMS after a round trip. A gather decompresses only the blocks holding the requested scenes
(not memory-mapped: a random id costs one block's decode).
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import numpy as np

try:  # zstd through pyarrow (a core dependency); zlib from the standard library otherwise
    import pyarrow as _pa
except ImportError:  # pragma: no cover - pyarrow is a dependency
    _pa = None
import zlib

from .scene import ARRAY_SPECS, META_FLOAT_KEYS, SceneBatch, _meta_default

MANIFEST = "manifest.json"
FORMAT_VERSION = 3  # 1: every array as in ARRAY_SPECS; 2: + per-shard fixed-point "encoding"; 3: + "packed" shards
ENCODINGS = ("float32", "int16", "packed")  # the shard encodings a SceneStore writes (formats 1, 2, 3)

# Array -> base step per last-axis column (metres, radians, m/s, m/s²) of its int16 encoding.
FIXED_POINT_COLUMNS: dict[str, tuple[float, ...]] = {
    "ego": (0.01, 0.01, 1e-4, 0.01, 0.01),  # x, y, heading, speed, accel
    "agents": (0.01, 0.01, 1e-4, 0.01),  # x, y, heading, speed
    "lanes": (0.01, 0.01),
    "drivable_polygons": (0.01, 0.01),
    "crosswalks": (0.01, 0.01),
    "route_polyline": (0.01, 0.01),
}
# Packed (format 3): groups of arrays whose axis 1 is ragged (rows kept where any array of the group
# is not padding), the arrays differenced along their point / time axis, scenes per block.
PACKED_GROUPS: dict[str, tuple[str, ...]] = {
    "agents": ("agents", "agent_valid", "agent_size", "agent_type"),
    "lanes": ("lanes", "lane_valid", "lane_width", "lane_speed_limit", "lane_is_intersection",
              "lane_successors", "lane_neighbors", "lane_tl"),
    "drivable": ("drivable_polygons", "drivable_vertex_valid"),
    "crosswalks": ("crosswalks", "crosswalk_valid"),
    "route_lanes": ("route_lanes",),
    "route": ("route_polyline", "route_valid"),
}
PACKED_DELTA = ("ego", "agents", "lanes", "drivable_polygons", "crosswalks", "route_polyline")
PACKED_BLOCK = 32
PACKED_ZSTD_LEVEL = 3
_PACKED_LIMIT = 2**30  # |steps| bound: differences of two values stay inside int32
_GROUP_OF = {a: g for g, arrays in PACKED_GROUPS.items() for a in arrays}
MAX_STEP_FACTOR = 4  # coarsest step = 4 × base (2 cm position error) before falling back to float32
_INT16_MAX = 32767


class SceneStoreError(RuntimeError):
    """The store is missing, corrupt, or asked for scenes it does not hold."""


class SceneStore:
    """Append-only store of :class:`SceneBatch` shards under one folder."""

    def __init__(self, root: str | os.PathLike, *, compact: bool | str = False):
        """``compact``: the encoding of new shards — False or "float32" (the default: exact round
        trips, format 1), True or "int16" (fixed point, format 2), "packed" (ragged, fixed point,
        compressed, format 3); see the module doc. Reading handles every format either way."""
        encoding = {False: "float32", True: "int16"}.get(compact, compact) if isinstance(compact, bool) else compact
        if encoding not in ENCODINGS:
            raise SceneStoreError(f"scene store encoding must be False, True or one of {ENCODINGS}, got {compact!r}")
        self.root = Path(root)
        self.encoding = encoding
        self.compact = compact
        self._index: dict[str, tuple[int, int]] = {}
        self._indexed: list[str] = []  # shard names the index covers, in manifest order

    # ------------------------------------------------------------------ manifest
    def _read_manifest(self) -> dict:
        path = self.root / MANIFEST
        if not path.exists():
            return {"format": FORMAT_VERSION, "shards": []}
        try:
            manifest = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SceneStoreError(f"scene store manifest {path} is unreadable: {exc}") from exc
        if manifest.get("format", 1) > FORMAT_VERSION:
            raise SceneStoreError(f"scene store {self.root} has format {manifest['format']}; this version "
                                  f"reads formats up to {FORMAT_VERSION} (upgrade autoscale)")
        return manifest

    def _write_manifest(self, manifest: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".manifest-", suffix=".json")
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f)
        os.replace(tmp, self.root / MANIFEST)

    @property
    def shards(self) -> list[dict]:
        return self._read_manifest()["shards"]

    def __len__(self) -> int:
        return sum(s["count"] for s in self.shards)

    # ------------------------------------------------------------------ index
    def _update_index(self, shards: list[dict]) -> None:
        """Index the shards not indexed yet (the store is append-only, so a long ingest reads
        each shard's ids once, not once per add); rebuilt if the shard list is not an extension."""
        names = [s["name"] for s in shards]
        if names[: len(self._indexed)] != self._indexed:
            self._index, self._indexed = {}, []
        for shard_number in range(len(self._indexed), len(names)):
            for row, scene_id in enumerate(self._shard_meta(names[shard_number])["scene_id"]):
                self._index[scene_id] = (shard_number, row)
            self._indexed.append(names[shard_number])

    @property
    def index(self) -> dict[str, tuple[int, int]]:
        """scene_id -> (shard number, row); later shards win for repeated ids."""
        self._update_index(self.shards)
        return self._index

    def contains(self, scene_ids: Iterable[str]) -> np.ndarray:
        index = self.index
        return np.array([str(s) in index for s in scene_ids], dtype=bool)

    def scene_ids(self) -> list[str]:
        return list(self.index.keys())

    # ------------------------------------------------------------------ write
    def append(self, batch: SceneBatch) -> str:
        """Write ``batch`` as a new shard; returns the shard name."""
        if len(batch) == 0:
            raise SceneStoreError("refusing to write an empty batch to the scene store")
        manifest = self._read_manifest()
        timeline = {"dt": batch.dt, "history_steps": batch.history_steps, "num_steps": batch.num_steps}
        for key, value in timeline.items():
            if key in manifest and manifest[key] != value:
                raise SceneStoreError(
                    f"scene store {self.root} holds scenes with {key}={manifest[key]}, batch has {value}"
                )
        self.root.mkdir(parents=True, exist_ok=True)
        name = f"shard-{len(manifest['shards']):05d}-{uuid.uuid4().hex[:8]}"
        tmp_dir = Path(tempfile.mkdtemp(dir=self.root, prefix=".tmp-"))
        encoding = {}
        if self.encoding == "packed":
            _write_packed(tmp_dir, batch.arrays())
        else:
            for array_name, array in batch.arrays().items():
                steps = fixed_point_steps(array_name, array) if self.encoding == "int16" else None
                if steps is not None:
                    encoding[array_name] = steps
                    array = encode_fixed_point(array, steps)
                np.save(tmp_dir / f"{array_name}.npy", np.ascontiguousarray(array))
        meta = {k: _jsonable(v) for k, v in batch.meta.items()}
        # Keep numeric metadata numeric on the way back (JSON alone cannot tell 1.0 from "1.0").
        meta["__dtypes__"] = {k: np.asarray(v).dtype.str for k, v in batch.meta.items()
                              if np.asarray(v).dtype.kind in "biuf"}
        (tmp_dir / "meta.json").write_text(json.dumps(meta))
        os.replace(tmp_dir, self.root / name)
        manifest.update(timeline)
        entry = {"name": name, "count": len(batch)}
        if encoding:
            entry["encoding"] = encoding
            manifest["format"] = max(manifest.get("format", 1), 2)
        if self.encoding == "packed":
            entry["layout"] = "packed"
            manifest["format"] = 3
        manifest["shards"].append(entry)
        self._write_manifest(manifest)
        return name

    # ------------------------------------------------------------------ read
    def _shard_meta(self, name: str) -> dict[str, list]:
        path = self.root / name / "meta.json"
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SceneStoreError(f"scene store shard metadata {path} is unreadable: {exc}") from exc

    def _shard_array(self, name: str, array_name: str) -> np.ndarray:
        path = self.root / name / f"{array_name}.npy"
        try:
            return np.load(path, mmap_mode="r", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SceneStoreError(f"scene store array {path} is unreadable: {exc}") from exc

    def load(self, scene_ids: Sequence[str] | None = None) -> SceneBatch:
        """Gather scenes by id (in the given order), or every scene when ``scene_ids`` is None.

        One pass: arrays are preallocated at the padded size of the shards involved and each
        shard's rows are scattered into place (no per-shard batches to concatenate/reorder).
        """
        manifest = self._read_manifest()
        if not manifest["shards"]:
            raise SceneStoreError(f"scene store {self.root} is empty")
        self._update_index(manifest["shards"])  # the same manifest as the shards read below
        index = self._index
        if scene_ids is None:
            scene_ids = list(index.keys())
        scene_ids = [str(s) for s in scene_ids]
        missing = [s for s in scene_ids if s not in index]
        if missing:
            raise SceneStoreError(f"{len(missing)} scene(s) not in store {self.root}, e.g. {missing[:3]}")
        locations = np.array([index[s] for s in scene_ids], dtype=np.int64).reshape(-1, 2)
        shard_numbers = np.unique(locations[:, 0])
        entries = [manifest["shards"][k] for k in shard_numbers]
        # Per shard: memory-maps of its .npy arrays (formats 1, 2) or its packed layout (format 3).
        shards = [_PackedShard(self.root / e["name"]) if e.get("layout") == "packed"
                  else {a: self._shard_array(e["name"], a) for a in ARRAY_SPECS} for e in entries]
        arrays = {}
        for array_name, (pad_value, dtype) in ARRAY_SPECS.items():
            tail = np.max([sh.tails[array_name] if isinstance(sh, _PackedShard) else sh[array_name].shape[1:]
                           for sh in shards], axis=0).tolist()
            arrays[array_name] = np.full([len(scene_ids), *tail], pad_value, dtype=dtype)
        columns: dict[str, list] = {}
        for shard_number, entry, shard in zip(shard_numbers, entries, shards):
            positions = np.flatnonzero(locations[:, 0] == shard_number)
            rows = locations[positions, 1]
            if isinstance(shard, _PackedShard):
                shard.gather_into(arrays, rows, positions)
            else:
                encoding = entry.get("encoding", {})
                for array_name in ARRAY_SPECS:
                    src = shard[array_name]
                    target = (positions,) + tuple(slice(0, d) for d in src.shape[1:])
                    values = src[rows]
                    if array_name in encoding:  # only the gathered rows are decoded
                        values = decode_fixed_point(values, encoding[array_name])
                    arrays[array_name][target] = values
            shard_meta = self._shard_meta(entry["name"])
            dtypes = shard_meta.pop("__dtypes__", {})
            for key, values in shard_meta.items():
                columns.setdefault(key, []).append((positions, _from_json(key, values, dtypes.get(key))[rows]))
        meta = {key: _merge_meta_column(key, parts, len(scene_ids)) for key, parts in columns.items()}
        return SceneBatch(**arrays, meta=meta, dt=manifest["dt"], history_steps=manifest["history_steps"])


def fixed_point_steps(array_name: str, array: np.ndarray) -> list[float] | None:
    """Per-column steps of ``array``'s int16 encoding, or None to keep it as float32 (not an
    encoded array, non-finite values, or a column too large even at ``MAX_STEP_FACTOR`` × base)."""
    base = FIXED_POINT_COLUMNS.get(array_name)
    if base is None or array.size == 0 or array.shape[-1] != len(base) or not np.isfinite(array).all():
        return None
    largest = np.abs(array.reshape(-1, len(base))).max(0)  # (columns,)
    steps = []
    for b, m in zip(base, largest.tolist()):
        factor = next((f for f in (1, 2, 4) if f <= MAX_STEP_FACTOR and round(m / (b * f)) <= _INT16_MAX), None)
        if factor is None:
            return None
        steps.append(b * factor)
    return steps


def encode_fixed_point(array: np.ndarray, steps: Sequence[float]) -> np.ndarray:
    """float array (..., C) → int16 (..., C): round(value / step) per column."""
    return np.round(np.asarray(array, dtype=np.float64) / np.asarray(steps)).astype(np.int16)


def decode_fixed_point(values: np.ndarray, steps: Sequence[float]) -> np.ndarray:
    """int16 (..., C) → float32 (..., C) = value × step."""
    return np.multiply(values, np.asarray(steps, dtype=np.float32), dtype=np.float32)  # one pass, no int→float copy


# ---------------------------------------------------------------------------------- packed (format 3)
_CODECS: dict = {}


def _codec_name() -> str:
    return "zstd" if _pa is not None and _pa.Codec.is_available("zstd") else "zlib"


def _compress(raw: bytes, codec: str) -> bytes:
    if codec == "zstd":
        if "zstd-w" not in _CODECS:
            _CODECS["zstd-w"] = _pa.Codec("zstd", compression_level=PACKED_ZSTD_LEVEL)
        return _CODECS["zstd-w"].compress(raw, asbytes=True)
    return zlib.compress(raw, 6)


def _decompress(data, raw_size: int, codec: str, where: Path) -> bytes:
    if codec == "zstd":
        if _pa is None or not _pa.Codec.is_available("zstd"):
            raise SceneStoreError(f"scene store shard {where} is zstd-compressed, and this Python's pyarrow "
                                  "has no zstd codec (install a pyarrow wheel with zstd)")
        if "zstd-r" not in _CODECS:
            _CODECS["zstd-r"] = _pa.Codec("zstd")
        return _CODECS["zstd-r"].decompress(data, decompressed_size=raw_size, asbytes=True)
    if codec == "zlib":
        return zlib.decompress(data)
    raise SceneStoreError(f"scene store shard {where} uses codec {codec!r}, which this version does not read")


def _packed_steps(array_name: str, array: np.ndarray) -> list[float] | None:
    """Steps of ``array``'s int32 encoding (the base steps of :data:`FIXED_POINT_COLUMNS`), or None
    to keep it as float32 (not an encoded array, NaN/inf, or beyond ±2^30 of its finest step)."""
    base = FIXED_POINT_COLUMNS.get(array_name)
    if base is None or array.size == 0 or array.shape[-1] != len(base):
        return None
    # One bound for all columns (contiguous reductions; NaN propagates): ±2^30 of the finest step,
    # e.g. ±107 km for positions stored beside headings in 1e-4 rad.
    largest = max(float(array.max()), -float(array.min())) / min(base)
    return list(base) if np.isfinite(largest) and largest < _PACKED_LIMIT - 1 else None


def _kept_rows(arrays: dict[str, np.ndarray], members: Sequence[str]) -> np.ndarray:
    """(S, n) bool: rows (axis 1) where some array of the group differs from its padding value
    (NaN counts as differing; so does -0.0 for a padding of 0, so it comes back as -0.0)."""
    first = arrays[members[0]]
    keep = np.zeros(first.shape[:2], dtype=bool)
    for name in members:
        a = arrays[name]
        a = a.reshape(a.shape[0], a.shape[1], int(np.prod(a.shape[2:])))
        pad = ARRAY_SPECS[name][0]
        keep |= (a.view(np.uint8) if pad == 0 and a.dtype.kind == "f" else a != pad if pad != 0 else a).any(-1)
    return keep


def _shuffled(array: np.ndarray) -> bytes:
    """Bytes of ``array`` with byte k of every element together (compresses small integers well)."""
    array = np.ascontiguousarray(array)
    size = array.dtype.itemsize
    return array.tobytes() if size == 1 else array.view(np.uint8).reshape(-1, size).T.tobytes()


def _unshuffled(data: bytes, start: int, dtype: np.dtype, shape: tuple) -> tuple[np.ndarray, int]:
    size, count = dtype.itemsize, int(np.prod(shape))
    end = start + size * count
    raw = np.frombuffer(data, dtype=np.uint8, count=size * count, offset=start)
    if size > 1:
        raw = raw.reshape(size, count).T.copy()
    return raw.view(dtype).reshape(shape), end


def _write_packed(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write one shard in the packed layout (module doc): packed.bin, packed_index.npy, layout.json."""
    layout, blocks = packed_blocks(arrays)
    index, offset = [], 0
    with open(folder / "packed.bin", "wb") as f:
        for parts in blocks:
            raw = b"".join(parts.values())
            compressed = _compress(raw, layout["codec"])
            f.write(compressed)
            index.append((offset, len(compressed), len(raw), zlib.crc32(compressed)))
            offset += len(compressed)
    np.save(folder / "packed_index.npy", np.asarray(index, dtype=np.int64).reshape(-1, 4))
    (folder / "layout.json").write_text(json.dumps(layout))


def packed_blocks(arrays: dict[str, np.ndarray]) -> tuple[dict, Iterator[dict[str, bytes]]]:
    """``(layout, blocks)`` of one packed shard: each block a dict of its uncompressed parts in
    file order (``counts:<group>``, ``slots:<group>``, then one per array), which the writer
    joins and compresses (``benchmarks/bench_store_budget.py`` compresses them one by one for
    the per-array byte breakdown).

    Vectorized over the shard: rows are kept, quantized and differenced once; each block is then
    a slice of every array (its first row of a route-like array, differenced along the rows,
    restarts from the absolute value), byte-shuffled."""
    arrays = {n: np.ascontiguousarray(a, dtype=ARRAY_SPECS[n][1]) for n, a in arrays.items()}
    count = len(arrays["ego"])
    starts = np.arange(0, count, PACKED_BLOCK)
    keeps = {g: _kept_rows(arrays, members) for g, members in PACKED_GROUPS.items()}
    counts = {g: k.sum(1).astype(np.int32) for g, k in keeps.items()}
    slots = {g: np.nonzero(k)[1].astype(np.int32) for g, k in keeps.items()}
    # Row offset of each block start, per group ("" = one row per scene).
    offsets = {g: np.concatenate([[0], np.cumsum(c, dtype=np.int64)])[np.append(starts, count)] for g, c in counts.items()}
    offsets[""] = np.append(starts, count)
    steps, delta, packed = {}, [], {}
    for name, array in arrays.items():
        group = _GROUP_OF.get(name)
        rows = array[keeps[group]] if group else array
        st = _packed_steps(name, rows)
        if st is not None:
            steps[name] = st
            q = np.round(rows.astype(np.float64) / np.asarray(st)).astype(np.int32)
            if name in PACKED_DELTA and q.shape[-2] > 1:
                delta.append(name)
                d = q.copy()
                d[..., 1:, :] = np.diff(q, axis=-2)
                if q.ndim == 2:  # differenced along the rows: each block starts from absolute values
                    first = offsets[group or ""][:-1]
                    first = first[first < len(q)]
                    d[first] = q[first]
                q = d
            rows = np.moveaxis(q, -1, 0)  # columns first; sliced per block along axis 1 below
        packed[name] = (rows, group or "", st is not None)
    layout = {"count": count, "block": PACKED_BLOCK, "codec": _codec_name(),
              "groups": {g: list(m) for g, m in PACKED_GROUPS.items()}, "delta": delta, "steps": steps,
              "tails": {n: list(a.shape[1:]) for n, a in arrays.items()},
              "dtypes": {n: a.dtype.str for n, a in arrays.items()}}

    def blocks() -> Iterator[dict[str, bytes]]:
        for k in range(len(starts)):
            parts = {f"counts:{g}": _shuffled(counts[g][starts[k]:starts[k] + PACKED_BLOCK]) for g in PACKED_GROUPS}
            parts.update({f"slots:{g}": _shuffled(slots[g][offsets[g][k]:offsets[g][k + 1]]) for g in PACKED_GROUPS})
            for name, (rows, group, columns_first) in packed.items():
                lo, hi = offsets[group][k], offsets[group][k + 1]
                parts[name] = _shuffled(rows[:, lo:hi] if columns_first else rows[lo:hi])
            yield parts

    return layout, blocks()


class _PackedShard:
    """Reader of one packed shard: decompresses the blocks holding the requested rows."""

    def __init__(self, folder: Path):
        self.folder = folder
        try:
            layout = json.loads((folder / "layout.json").read_text())
            self.index = np.load(folder / "packed_index.npy", allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise SceneStoreError(f"scene store shard {folder} is unreadable: {exc}") from exc
        try:
            self.count, self.block, self.codec = int(layout["count"]), int(layout["block"]), layout["codec"]
            self.groups = {g: tuple(m) for g, m in layout["groups"].items()}
            self.group_of = {a: g for g, m in self.groups.items() for a in m}
            self.steps = {n: np.asarray(st, dtype=np.float32) for n, st in layout["steps"].items()}
            self.delta = set(layout["delta"])
            self.tails = {n: tuple(t) for n, t in layout["tails"].items()}
            self.dtypes = {n: np.dtype(d) for n, d in layout["dtypes"].items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise SceneStoreError(f"scene store shard {folder} has a layout this version does not read: {exc!r}") from exc
        if (set(self.tails) != set(ARRAY_SPECS) or self.index.shape != (-(-self.count // self.block), 4)
                or self.block < 1):
            raise SceneStoreError(f"scene store shard {folder} has a layout this version does not read")

    def _decode(self, blocks: np.ndarray) -> tuple[dict, dict]:
        """Every array of ``blocks`` (fixed point still as int steps), and per group and for the
        per-scene arrays the shard row (and slot) of each decoded row."""
        parts: dict[str, list] = {n: [] for n in self.tails}
        rows: dict[str, list] = {g: [] for g in [*self.groups, ""]}
        slots: dict[str, list] = {g: [] for g in self.groups}
        try:
            data_file = np.memmap(self.folder / "packed.bin", dtype=np.uint8, mode="r")
        except (OSError, ValueError) as exc:
            raise SceneStoreError(f"scene store shard {self.folder} is unreadable: {exc}") from exc
        for b in blocks.tolist():
            try:
                self._decode_block(b, data_file, parts, rows, slots)
            except (OSError, ValueError, IndexError, zlib.error) as exc:  # e.g. counts that overrun the block
                raise SceneStoreError(f"scene store shard {self.folder} is corrupt: block {b}: {exc}") from exc
        join = lambda p: p[0] if len(p) == 1 else np.concatenate(p)  # noqa: E731
        values = {n: join(p) for n, p in parts.items()}
        where = {g: (join(rows[g]), join(slots[g]) if g else None) for g in rows}
        return values, where

    def _decode_block(self, b: int, data_file: np.ndarray, parts: dict, rows: dict, slots: dict) -> None:
        """Append block ``b``'s arrays, rows and slots to ``parts``, ``rows``, ``slots``."""
        offset, length, raw_size, crc = self.index[b].tolist()
        chunk = data_file[offset:offset + length]
        if len(chunk) != length:
            raise ValueError(f"the file ends at byte {len(data_file)}, before the block ends")
        if zlib.crc32(chunk) != crc:
            raise ValueError("checksum mismatch")
        data = _decompress(chunk, raw_size, self.codec, self.folder)
        if len(data) != raw_size:
            raise ValueError(f"it decompresses to {len(data)} bytes, not {raw_size}")
        first, size = b * self.block, min(self.block, self.count - b * self.block)
        at, counts, totals = 0, {}, {}
        for g in self.groups:
            counts[g], at = _unshuffled(data, at, np.dtype(np.int32), (size,))
            totals[g] = int(counts[g].sum())
        scene_rows = np.arange(first, first + size)
        for g in self.groups:
            slot, at = _unshuffled(data, at, np.dtype(np.int32), (totals[g],))
            slots[g].append(slot)
            rows[g].append(np.repeat(scene_rows, counts[g]))
        rows[""].append(scene_rows)
        for name, tail in self.tails.items():
            group = self.group_of.get(name)
            lead = (totals[group], *tail[1:]) if group else (size, *tail)
            if name in self.steps:
                q, at = _unshuffled(data, at, np.dtype(np.int32), (lead[-1], *lead[:-1]))
                q = np.moveaxis(q, 0, -1)
                if name in self.delta and q.shape[-2] > 1:
                    q = np.cumsum(q, axis=-2, dtype=np.int32)
                parts[name].append(q)
            else:
                values, at = _unshuffled(data, at, self.dtypes[name], lead)
                parts[name].append(values)
        if at != len(data):
            raise ValueError(f"{len(data)} bytes, the layout accounts for {at}")

    def gather_into(self, arrays: dict[str, np.ndarray], rows: np.ndarray, positions: np.ndarray) -> None:
        """``arrays[name][positions[i]] = this shard's scene rows[i]`` (arrays prefilled with padding)."""
        unique_rows, first = np.unique(rows, return_index=True)
        position_of = np.full(self.count, -1, dtype=np.int64)
        position_of[unique_rows] = positions[first]
        values, where = self._decode(np.unique(unique_rows // self.block))
        wanted = {}
        for g, (scene_rows, slot) in where.items():
            p = position_of[scene_rows]
            keep = p >= 0
            wanted[g] = (keep, (p[keep],) if slot is None else (p[keep], slot[keep]))
        for name, value in values.items():
            keep, index = wanted[self.group_of.get(name, "")]
            value = value[keep]
            if name in self.steps:
                value = np.multiply(value, self.steps[name], dtype=np.float32)
            arrays[name][index + tuple(slice(0, d) for d in value.shape[1:])] = value
        if len(unique_rows) < len(rows):  # a scene asked for twice: copy it from its first position
            source = position_of[rows]
            again = source != positions
            for array in arrays.values():
                array[positions[again]] = array[source[again]]


def _merge_meta_column(key: str, parts: list[tuple[np.ndarray, np.ndarray]], size: int) -> np.ndarray:
    """One metadata column from per-shard pieces; numeric only if every scene has a numeric value."""
    kinds = {values.dtype.kind for _, values in parts}
    covered = sum(len(positions) for positions, _ in parts)
    if covered == size and len(kinds) == 1 and kinds != {"O"}:
        column = np.empty(size, dtype=parts[0][1].dtype)
    else:
        column = np.full(size, _meta_default(key), dtype=object)
    for positions, values in parts:
        column[positions] = values
    return column


def _jsonable(values: np.ndarray) -> list:
    return [v.item() if isinstance(v, np.generic) else v for v in np.asarray(values).tolist()]


def _from_json(key: str, values: list, dtype: str | None = None) -> np.ndarray:
    if dtype is not None:
        return np.asarray(values, dtype=np.dtype(dtype))
    if key in META_FLOAT_KEYS:
        return np.asarray(values, dtype=np.float64)
    return np.asarray(values, dtype=object)
