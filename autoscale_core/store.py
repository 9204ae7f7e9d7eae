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
FORMAT_VERSION = 1


class SceneStoreError(RuntimeError):
    """The store is missing, corrupt, or asked for scenes it does not hold."""


class SceneStore:
    """Append-only store of :class:`SceneBatch` shards under one folder."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._index: dict[str, tuple[int, int]] | None = None

    # ------------------------------------------------------------------ manifest
    def _read_manifest(self) -> dict:
        path = self.root / MANIFEST
        if not path.exists():
            return {"format": FORMAT_VERSION, "shards": []}
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise SceneStoreError(f"scene store manifest {path} is unreadable: {exc}") from exc

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
    def _build_index(self) -> dict[str, tuple[int, int]]:
        index: dict[str, tuple[int, int]] = {}
        for shard_number, shard in enumerate(self.shards):
            for row, scene_id in enumerate(self._shard_meta(shard["name"])["scene_id"]):
                index[scene_id] = (shard_number, row)
        return index

    @property
    def index(self) -> dict[str, tuple[int, int]]:
        """scene_id -> (shard number, row); later shards win for repeated ids."""
        if self._index is None:
            self._index = self._build_index()
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
        for array_name, array in batch.arrays().items():
            np.save(tmp_dir / f"{array_name}.npy", np.ascontiguousarray(array))
        meta = {k: _jsonable(v) for k, v in batch.meta.items()}
        # Keep numeric metadata numeric on the way back (JSON alone cannot tell 1.0 from "1.0").
        meta["__dtypes__"] = {k: np.asarray(v).dtype.str for k, v in batch.meta.items()
                              if np.asarray(v).dtype.kind in "biuf"}
        (tmp_dir / "meta.json").write_text(json.dumps(meta))
        os.replace(tmp_dir, self.root / name)
        manifest.update(timeline)
        manifest["shards"].append({"name": name, "count": len(batch)})
        self._write_manifest(manifest)
        self._index = None
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
        index = self.index
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
            for array_name in ARRAY_SPECS:
                src = sources[array_name][j]
                target = (positions,) + tuple(slice(0, d) for d in src.shape[1:])
                arrays[array_name][target] = src[rows]
            shard_meta = self._shard_meta(name)
            dtypes = shard_meta.pop("__dtypes__", {})
            for key, values in shard_meta.items():
                columns.setdefault(key, []).append((positions, _from_json(key, values, dtypes.get(key))[rows]))
        meta = {key: _merge_meta_column(key, parts, len(scene_ids)) for key, parts in columns.items()}
        return SceneBatch(**arrays, meta=meta, dt=manifest["dt"], history_steps=manifest["history_steps"])


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
