"""Disk budget of a 1e6-scene run (issue #19: ≤ 10 GB): where the scene store's bytes go, the
packed store (format 3) against formats 1 and 2, load speed, and MongoDB bytes per sample.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_store_budget.py            # 5,000 scenes
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_store_budget.py --quick    # 1,000, for tests

Everything runs on **distinct** world scenes (``generate_world(--scenes, seed=0)``), nothing
tiled. Steps, computed first and written at the end to ``benchmarks/results/store_1e6_budget.json``
(``--quick``: ``store_1e6_budget_quick.json``):

1. the per-array byte breakdown of format 1 (padded float32: shape, dtype, bytes per scene,
   padding share of each ragged group) and of the packed format (each array's section of every
   block compressed on its own, for attribution; the real file compresses them together);
2. each format written in shards of ``--shard`` scenes: bytes per scene on disk (every file of
   the store), write rate, and ``SceneStore.load`` of ``--load-ids`` random ids (fresh store
   object each time: cold index; formats interleaved, median of ``--repeats``) and of all scenes
   in order, in chunks of ``--shard`` (the streamed embedding's pattern);
3. the rule planner's EPDMS after a round trip (``--epdms-scenes`` scenes, int16 and packed);
4. MongoDB bytes per sample of a dataset made by the plugin's ingest
   (``create_scene_dataset(..., render_images="deferred")`` with the packed store,
   ``--mongo-scenes`` scenes): the
   samples collection's ``collstats`` after an fsync (logical BSON size, WiredTiger storage size,
   index sizes), then again after writing the fields a selection run adds (a 64-d float32 vector
   like ``emb_graph_rae`` — random values: BSON size does not depend on them —, a cluster id, a
   value score, a tag), and after MongoDB's ``compact`` of the collection (the rewrite leaves the
   old blocks as free space in its file). The dataset is deleted afterwards. FiftyOne attaches to
   a running database service if there is one (see bench_ingest.py); the dataset name is unique.
5. the 1e6 projection: (store + Mongo storage + Mongo indexes + deferred-render placeholders
   (hard links: each file counted once) + representation files) per scene × 1e6, against 10 GB,
   with the collection as the selection fields leave it and after ``compact``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from autoscale_core.scene import ARRAY_SPECS, SceneBatch  # noqa: E402
from autoscale_core.store import (  # noqa: E402
    PACKED_BLOCK,
    PACKED_GROUPS,
    SceneStore,
    _compress,
    _kept_rows,
    packed_blocks,
)

ENCODINGS = {"format1_float32": False, "format2_int16": True, "format3_packed": "packed"}
TARGET_BYTES = 10e9
SCENES_1E6 = 1_000_000


def folder_bytes(root: str) -> int:
    """Bytes of every file under ``root``, each inode once (the deferred-render placeholders are
    hard links to a few files), plus the directories themselves (their entries)."""
    seen, total = set(), 0
    for d, _, fs in os.walk(root):
        total += os.stat(d).st_size
        for f in fs:
            st = os.stat(os.path.join(d, f))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_size
    return total


def breakdown(batch: SceneBatch, shard: int) -> dict:
    """Per array: padded shape/dtype/bytes per scene of format 1 (shards of ``shard`` scenes, as
    written), the padding share of its ragged group, and its packed bytes per scene."""
    count = len(batch)
    arrays_bytes = {n: 0 for n in ARRAY_SPECS}
    packed_bytes: dict[str, int] = {}
    shapes = {}
    kept = {g: 0 for g in PACKED_GROUPS}
    padded = {g: 0 for g in PACKED_GROUPS}
    for start in range(0, count, shard):
        part = batch.subset(slice(start, start + shard))
        arrays = part.arrays()
        for name, array in arrays.items():
            arrays_bytes[name] += array.nbytes
            shapes.setdefault(name, []).append(list(array.shape[1:]))
        for group, members in PACKED_GROUPS.items():
            keep = _kept_rows(arrays, members)
            kept[group] += int(keep.sum())
            padded[group] += keep.size
        layout, blocks = packed_blocks(arrays)
        for parts in blocks:
            for key, raw in parts.items():
                packed_bytes[key] = packed_bytes.get(key, 0) + len(_compress(raw, layout["codec"]))
    group_of = {a: g for g, m in PACKED_GROUPS.items() for a in m}
    rows = []
    for name, (_, dtype) in ARRAY_SPECS.items():
        group = group_of.get(name)
        rows.append({
            "array": name, "dtype": np.dtype(dtype).name, "padded_tail_shapes_per_shard": shapes[name],
            "format1_bytes_per_scene": arrays_bytes[name] / count,
            "ragged_group": group,
            "padding_share_of_rows": None if group is None else 1 - kept[group] / padded[group],
            "packed_bytes_per_scene_alone": packed_bytes[name] / count,
        })
    rows.sort(key=lambda r: -r["format1_bytes_per_scene"])
    index_parts = sum(v for k, v in packed_bytes.items() if ":" in k)
    return {
        "arrays": rows,
        "format1_arrays_bytes_per_scene": sum(arrays_bytes.values()) / count,
        "packed_counts_and_slots_bytes_per_scene_alone": index_parts / count,
        "packed_sum_of_parts_compressed_alone_bytes_per_scene": sum(packed_bytes.values()) / count,
        "groups": {g: {"kept_rows_per_scene": kept[g] / count, "padded_rows_per_scene": padded[g] / count,
                       "padding_share": 1 - kept[g] / padded[g]} for g in PACKED_GROUPS},
    }


def store_formats(batch: SceneBatch, folder: str, shard: int, load_ids: int, repeats: int) -> dict:
    ids = [str(s) for s in batch.meta["scene_id"]]
    out = {}
    for key, compact in ENCODINGS.items():
        root = os.path.join(folder, key)
        store = SceneStore(root, compact=compact)
        t = time.perf_counter()
        cpu = time.process_time()
        for start in range(0, len(batch), shard):
            store.append(batch.subset(slice(start, start + shard)))
        wall, cpu = time.perf_counter() - t, time.process_time() - cpu
        out[key] = {"bytes_per_scene": folder_bytes(root) / len(batch), "write_wall_s": wall, "write_cpu_s": cpu,
                    "write_scenes_per_cpu_s": len(batch) / cpu}
    picked = [ids[i] for i in np.random.default_rng(0).choice(len(ids), min(load_ids, len(ids)), replace=False)]
    random_s = {k: [] for k in ENCODINGS}
    random_cpu = {k: [] for k in ENCODINGS}
    sequential_cpu = {k: [] for k in ENCODINGS}
    for _ in range(repeats):  # interleaved: every format sees the same machine load
        for key in ENCODINGS:
            fresh = SceneStore(os.path.join(folder, key))
            t, c = time.perf_counter(), time.process_time()
            fresh.load(picked)
            random_s[key].append(time.perf_counter() - t)
            random_cpu[key].append(time.process_time() - c)
        for key in ENCODINGS:
            fresh = SceneStore(os.path.join(folder, key))
            c = time.process_time()
            for start in range(0, len(ids), shard):
                fresh.load(ids[start:start + shard])
            sequential_cpu[key].append(time.process_time() - c)
    for key in ENCODINGS:
        out[key].update({
            "random_load_ids": len(picked),
            "random_load_wall_s_median": float(np.median(random_s[key])), "random_load_wall_s_all": random_s[key],
            "random_load_cpu_s_median": float(np.median(random_cpu[key])),
            "sequential_load_cpu_s_median": float(np.median(sequential_cpu[key])),
            "sequential_load_scenes_per_cpu_s": len(ids) / float(np.median(sequential_cpu[key])),
        })
    # A random gather from a 1e6 packed store decodes every block it touches (PACKED_BLOCK scenes).
    blocks = SCENES_1E6 / PACKED_BLOCK
    touched = blocks * (1 - (1 - 1 / blocks) ** load_ids)
    rate = out["format3_packed"]["sequential_load_scenes_per_cpu_s"]
    out["projection_random_load_from_1e6_packed"] = {
        "ids": load_ids, "blocks_touched_expected": touched, "scenes_decoded": touched * PACKED_BLOCK,
        "cpu_s_at_measured_sequential_rate": touched * PACKED_BLOCK / rate,
        "note": "projection: scenes decoded / the sequential decode rate measured above; not run at 1e6",
    }
    return out


def epdms(batch: SceneBatch, folder: str, formats: list[str]) -> dict:
    from benchmarks.bench_store_compact import epdms_after_round_trip

    return {key: epdms_after_round_trip(batch, folder, compact=ENCODINGS[key]) for key in formats}


def mongo(batch: SceneBatch, folder: str) -> dict:
    os.environ["AUTOSCALE_HOME"] = os.path.join(folder, "home")
    import fiftyone as fo
    import fiftyone.core.odm as foo

    from fiftyone_plugin.engine import scenes

    name = f"store3-budget-{uuid.uuid4().hex[:8]}"
    db = foo.get_db_conn()

    def stats(dataset) -> dict:
        db.client.admin.command("fsync")  # a checkpoint, so storageSize is what is on disk
        s = db.command("collstats", dataset._sample_collection_name)
        n = s["count"]
        return {"count": n, "size_bytes_per_sample": s["size"] / n, "avg_obj_size": s.get("avgObjSize"),
                "storage_bytes_per_sample": s["storageSize"] / n,
                "free_storage_bytes": s.get("freeStorageSize"),
                "in_use_storage_bytes_per_sample": (s["storageSize"] - s.get("freeStorageSize", 0)) / n,
                "index_bytes_per_sample": s["totalIndexSize"] / n,
                "indexes": {k: v / n for k, v in s["indexSizes"].items()}}

    try:
        t = time.perf_counter()
        dataset = scenes.create_scene_dataset(name, batch, render_images="deferred",
                                              info={scenes.COMPACT_INFO_KEY: "packed"})
        ingest_s = time.perf_counter() - t
        after_ingest = stats(dataset)
        store_root = dataset.info[scenes.STORE_INFO_KEY]
        media_root = dataset.info[scenes.MEDIA_INFO_KEY]
        files = {"store_bytes_per_scene_packed_via_ingest": folder_bytes(store_root) / len(batch),
                 "bev_folder_bytes_per_scene_deferred": folder_bytes(media_root) / len(batch),
                 "bev_files": sum(len(fs) for _, _, fs in os.walk(media_root))}
        ids = dataset.values("scene_id")
        emb = np.random.default_rng(0).standard_normal((len(ids), 64)).astype(np.float32)
        scenes.write_scene_fields(dataset, {"emb_graph_rae": emb,
                                            "cluster_graph_rae": (np.arange(len(ids)) % 50).tolist(),
                                            "value_budget": np.linspace(0, 1, len(ids)).tolist()},
                                  scene_ids=ids)
        dataset.take(len(ids) // 10, seed=0).tag_samples("sel:budget")
        after_fields = stats(dataset)
        # Rewriting every sample leaves the old blocks as free space in the collection's file;
        # ``compact`` gives it back to the file system (what a 1e6 run would do after selection).
        db.command("compact", dataset._sample_collection_name)
        after_compact = stats(dataset)
        version = fo.__version__
    finally:
        if fo.dataset_exists(name):
            scenes.delete_scene_dataset(name)
    return {"dataset_scenes": len(batch), "ingest_wall_s": ingest_s, "fiftyone": version,
            "after_ingest": after_ingest, "after_selection_fields": after_fields,
            "after_compact": after_compact, "files": files,
            "deleted": not fo.dataset_exists(name)}


def projection(store: dict, mongo_result: dict) -> dict:
    """Per scene x 1e6: the collection's file as the selection fields leave it, and after
    MongoDB's ``compact`` (the free space of the rewritten samples given back)."""
    m, c = mongo_result["after_selection_fields"], mongo_result["after_compact"]
    per_scene = {
        "store_packed": store["format3_packed"]["bytes_per_scene"],
        "mongo_storage": m["storage_bytes_per_sample"],
        "mongo_indexes": m["index_bytes_per_sample"],
        "bev_placeholders": mongo_result["files"]["bev_folder_bytes_per_scene_deferred"],
        # emb_graph_rae files beside the store: embeddings.npy + safety.npy + a flat faiss index
        "representation_files_64d": 64 * 4 + 4 + 64 * 4,
    }
    total = sum(per_scene.values())
    compacted = total - per_scene["mongo_storage"] - per_scene["mongo_indexes"] + (
        c["storage_bytes_per_sample"] + c["index_bytes_per_sample"])
    other = {k: store[k]["bytes_per_scene"] for k in ("format1_float32", "format2_int16")}
    return {"per_scene_bytes": per_scene, "per_scene_total": total, "total_1e6_GB": total * SCENES_1E6 / 1e9,
            "target_GB": TARGET_BYTES / 1e9, "fits": total * SCENES_1E6 <= TARGET_BYTES,
            "per_scene_total_after_mongo_compact": compacted,
            "total_1e6_GB_after_mongo_compact": compacted * SCENES_1E6 / 1e9,
            "fits_after_mongo_compact": compacted * SCENES_1E6 <= TARGET_BYTES,
            "same_with_store_format": {k: (total - per_scene["store_packed"] + v) * SCENES_1E6 / 1e9
                                       for k, v in other.items()},
            "same_with_store_format_after_mongo_compact": {
                k: (compacted - per_scene["store_packed"] + v) * SCENES_1E6 / 1e9 for k, v in other.items()},
            "note": "mongo figures after the selection fields; not counted: rendered BEV images "
                    "(deferred at 1e6), MongoDB journal and the dataset's other small collections"}


def _say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="1,000 scenes, 500 random ids, 100 EPDMS, 500 Mongo")
    parser.add_argument("--scenes", type=int, default=5_000)
    parser.add_argument("--shard", type=int, default=1_000, help="scenes per store shard (the ingest's chunk)")
    parser.add_argument("--load-ids", type=int, default=2_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epdms-scenes", type=int, default=200)
    parser.add_argument("--mongo-scenes", type=int, default=2_000)
    parser.add_argument("--no-mongo", action="store_true")
    parser.add_argument("--no-store", action="store_true", help="only the MongoDB part (step 4)")
    parser.add_argument("--epdms-formats", nargs="+", default=["format2_int16", "format3_packed"],
                        choices=["format2_int16", "format3_packed"])
    parser.add_argument("--from-store", default=None,
                        help="read the scenes from this store (written exactly, format 1, from generate_world(N, seed=0)) "
                             "instead of generating them: saves the generation on a busy machine")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    if args.quick:
        args.scenes, args.load_ids, args.epdms_scenes, args.mongo_scenes = 1_000, 500, 100, 500
    for flag in ("scenes", "shard", "load_ids", "repeats", "epdms_scenes", "mongo_scenes"):
        if getattr(args, flag) < 1:
            parser.error(f"--{flag.replace('_', '-')} must be >= 1")
    if max(args.epdms_scenes, args.mongo_scenes, args.load_ids) > args.scenes:
        parser.error("--epdms-scenes, --mongo-scenes and --load-ids must not exceed --scenes")
    from autoscale_core.world import generate_world

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_start = os.getloadavg()
    t = time.perf_counter()
    if args.from_store:  # the same scenes, saved earlier by a format-1 (exact float32) store
        _say(f"loading {args.scenes} scenes from {args.from_store}")
        source = SceneStore(args.from_store)
        ids = source.scene_ids()
        if len(ids) < args.scenes:
            parser.error(f"--from-store {args.from_store} holds {len(ids)} scenes, fewer than --scenes {args.scenes}")
        batch = source.load(ids[: args.scenes])
    else:
        _say(f"generating {args.scenes} world scenes")
        batch = generate_world(args.scenes, seed=0)
    generate_s = time.perf_counter() - t
    folder = tempfile.mkdtemp(prefix="autoscale-store-budget-")
    try:
        result = {
            "benchmark": "bench_store_budget", "quick": args.quick, "started_utc": started,
            "command": "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_store_budget.py " + " ".join(sys.argv[1:]),
            "args": vars(args),
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
            "ran_on": f"{args.scenes} distinct world scenes (generate_world seed 0"
                      f"{', read back from an exact format-1 store ' + args.from_store if args.from_store else ''}), "
                      f"nothing tiled; store shards of "
                      f"{args.shard}; EPDMS on the first {args.epdms_scenes}; Mongo on the first {args.mongo_scenes}",
            "loadavg_start": load_start, "generate_s": generate_s,
            "packed_block_scenes": PACKED_BLOCK,
        }
        if not args.no_store:
            _say("breakdown")
            result["breakdown"] = breakdown(batch, args.shard)
            _say("store formats")
            result["store"] = store_formats(batch, os.path.join(folder, "stores"), args.shard, args.load_ids,
                                            args.repeats)
            _say("EPDMS round trips")
            result["epdms_round_trip"] = epdms(batch.subset(slice(0, args.epdms_scenes)), folder, args.epdms_formats)
        if not args.no_mongo:
            _say("MongoDB")
            result["mongo"] = mongo(batch.subset(slice(0, args.mongo_scenes)), folder)
            if not args.no_store:
                result["projection_1e6"] = projection(result["store"], result["mongo"])
        result["loadavg_end"] = os.getloadavg()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    text = json.dumps(result, indent=2)
    out = args.out or os.path.join(ROOT, "benchmarks", "results",
                                   f"store_1e6_budget{'_quick' if args.quick else ''}.json")
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    with open(out, "w") as f:
        f.write(text)
    print(text)


if __name__ == "__main__":
    main()
