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
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from .scene import ARRAY_SPECS, META_FLOAT_KEYS, SceneBatch, _meta_default

MANIFEST = "manifest.json"
FORMAT_VERSION = 2  # 1: every array as in ARRAY_SPECS; 2: + per-shard fixed-point "encoding"

# Array -> base step per last-axis column (metres, radians, m/s, m/s²) of its int16 encoding.
FIXED_POINT_COLUMNS: dict[str, tuple[float, ...]] = {
    "ego": (0.01, 0.01, 1e-4, 0.01, 0.01),  # x, y, heading, speed, accel
    "agents": (0.01, 0.01, 1e-4, 0.01),  # x, y, heading, speed
    "lanes": (0.01, 0.01),
    "drivable_polygons": (0.01, 0.01),
    "crosswalks": (0.01, 0.01),
    "route_polyline": (0.01, 0.01),
}
MAX_STEP_FACTOR = 4  # coarsest step = 4 × base (2 cm position error) before falling back to float32
_INT16_MAX = 32767


class SceneStoreError(RuntimeError):
    """The store is missing, corrupt, or asked for scenes it does not hold."""


class SceneStore:
    """Append-only store of :class:`SceneBatch` shards under one folder."""

    def __init__(self, root: str | os.PathLike, *, compact: bool = False):
        """``compact``: write new shards in the fixed-point encoding (format 2, see module doc);
        False (the default: exact round trips) writes float32 as format 1 did. Reading handles
        both either way."""
        self.root = Path(root)
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
        for array_name, array in batch.arrays().items():
            steps = fixed_point_steps(array_name, array) if self.compact else None
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
            manifest["format"] = FORMAT_VERSION
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
        names = [manifest["shards"][k]["name"] for k in shard_numbers]
        sources = {a: [self._shard_array(n, a) for n in names] for a in ARRAY_SPECS}
        arrays = {}
        for array_name, (pad_value, dtype) in ARRAY_SPECS.items():
            tail = np.max([m.shape[1:] for m in sources[array_name]], axis=0).tolist()
            arrays[array_name] = np.full([len(scene_ids), *tail], pad_value, dtype=dtype)
        columns: dict[str, list] = {}
        for j, (shard_number, name) in enumerate(zip(shard_numbers, names)):
            positions = np.flatnonzero(locations[:, 0] == shard_number)
            rows = locations[positions, 1]
            encoding = manifest["shards"][shard_number].get("encoding", {})
            for array_name in ARRAY_SPECS:
                src = sources[array_name][j]
                target = (positions,) + tuple(slice(0, d) for d in src.shape[1:])
                values = src[rows]
                if array_name in encoding:  # only the gathered rows are decoded
                    values = decode_fixed_point(values, encoding[array_name])
                arrays[array_name][target] = values
            shard_meta = self._shard_meta(name)
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
