"""Real scenes at scale, end to end (issue #19): ``--scenes`` distinct world scenes generated in
parallel through the executor, ingested into the packed scene store and a FiftyOne dataset, then
the plugin functions the operators call, on the whole dataset. Writes JSON (+ a short .md).

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale_e2e.py --quick --out benchmarks/results/scale_e2e_quick.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale_e2e.py --scenes 40000 --out benchmarks/results/scale_e2e_4e4.json
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_scale_e2e.py --mc-samples 4 --out benchmarks/results/scale.json   # 1,000,000 scenes: 52 min

``--quick`` is 5,000 scenes (1.8 min at load average 3-4 on 2 cores; 20,000 took 7 min, the
Graph-RAE MC-dropout passes dominate). Measured: 1e6 scenes in 52.2 min with lean samples
(``benchmarks/results/scale.md``; 55.0 and 56.9 min before id-set views used the ``scene_id``
index, 83.2 min with inline overlays: ``benchmarks/results/scale_e2e.md``).

Nothing is tiled or random: chunk ``k`` is ``generate_world(chunk, seed=k)`` (scene ids
``world-<k>-<i>``, arrays of that seed), so every scene is distinct. Steps, each with wall s, CPU s
(this process, its reaped children — the generation workers, the pilot pool — and the private
mongod), peak RSS (this process, ``VmHWM`` reset before the step; the largest child; mongod's RSS
after the step), disk bytes (scene store, media dir, repr dir, MongoDB dbpath) and the load
average before/after, and a ``what_it_ran_on`` sentence:

* **ingest** — chunks are generated two at a time (one ``executor.map`` per wave of
  ``workers`` chunks, ``--executor process:2``) in a background thread while the previous wave is
  ingested: ``create_scene_dataset(..., render_images="deferred", info={COMPACT_INFO_KEY:
  "packed", OVERLAYS_INFO_KEY: <--overlays>})`` for the first chunk, then ``create_scene_dataset(..., resume=True)`` per chunk (the
  ingest's resume path: an interrupted add is rolled back, complete scenes are skipped). At most two
  waves are in memory. ``--home DIR --resume`` continues a killed run (chunks whose scene ids are
  all present are not generated again).
* **embed** — ``compute_scene_embeddings(ds, "graph_rae", viz_method="pca", stream_above=0)``:
  Graph-RAE trained on a seeded sample of the train-split scenes (``embed_scenes_streamed``'s
  ``fit_max`` = 20,000, 150 steps), then every scene encoded chunk by chunk from the store with
  10 MC-dropout samples; faiss index, Brain similarity index and 2-D PCA map.
* **knn** — the persisted embeddings, ``KnnIndex(expected_queries=n)`` (exact or IVF, its own
  choice), all-vs-all k = 21 search (what the rarity score needs).
* **cluster** — ``cluster_scenes(ds, "graph_rae", k=16)``.
* **value** — ``compute_value_scores(ds, "graph_rae")``: S/R/U/Q, U from the Graph-RAE
  MC-dropout samples (no planner needed).
* **mosaic_pilot** — ``fit_scaling_laws`` on a pilot candidate view (the first ``--pilot`` scenes
  of chunk 0 by scene id): real pilot planner trainings (``--pilot-steps`` steps) on base + pilot
  subsets, scored closed-loop on val scenes.
* **allocate** — ``allocate_budget(ds, ..., fits_from=<pilot>)`` of 1 % of the scenes over the
  whole dataset's topology domains; the within-domain order is the value score Q, passed as
  ``importance_field`` (field ``bench_q_rank`` = 1 − rank(Q)/(n − 1)), because the per-scene EPDMS
  of a planner on every scene is not computed at this scale. Writes the selection back: tag
  ``sel:<name>``, saved view, run record.
* **draw_selection** (``--overlays on-demand`` only) — ``bev_render.draw_scenes`` on the saved
  selection view: its overlay fields written from the store and its BEV images rendered on the
  executor, so the selected scenes are fully viewable in the App. With ``--overlays inline`` every
  sample got its overlays at ingest (≈ 10 kB of BSON per sample instead of ≈ 0.6 kB).
* **compact** — MongoDB ``compact`` of the samples collection (dbpath bytes before/after).

MongoDB: a private ``mongod`` (FiftyOne's bundled binary) on a free port with its dbpath under the
run's home, used through ``FIFTYONE_DATABASE_URI`` (FiftyOne would otherwise attach to any other
FiftyOne database service running on the machine). With ``FIFTYONE_DATABASE_URI`` already set,
that database is used and its disk is ``dbStats`` sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_scale import _peak_mb, _reset_peak  # noqa: E402  (per-step peak RSS)
from private_mongod import PrivateMongod, private_mongod  # noqa: E402

NAME = "bench-scale-e2e"
QUICK_SCENES = 5_000


# ---------------------------------------------------------------------------------- generation
def generate_chunk(item: tuple[int, int]):
    """Chunk ``k`` of ``n`` scenes: ``generate_world(n, seed=k)`` (runs in an executor worker)."""
    k, n = item
    from autoscale_core.world import generate_world

    return generate_world(n, seed=k)


def expected_ids(k: int, n: int) -> list[str]:
    """The scene ids ``generate_world(n, seed=k)`` gives (checked against chunk 0 in the run)."""
    return [f"world-{k}-{i:06d}" for i in range(n)]


# ---------------------------------------------------------------------------------- measuring
def folder_bytes(root) -> int:
    """Bytes allocated on disk under ``root``, like ``du``: each inode once (the deferred BEV
    placeholders are hard links to one file), directories included."""
    total, seen = 0, set()
    for dirpath, dirs, files in os.walk(root):
        for name in [*files, *dirs, "."]:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:
                continue
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


class Meter:
    """Per-step wall, CPU, RSS, disk and load for the steps of one run."""

    def __init__(self, home: Path, mongod_pid: int | None, partial_path: Path | None = None):
        self.home, self.steps, self.partial_path = home, {}, partial_path
        self.reused: dict = {}  # step name -> its record from an earlier attempt (--reuse-steps)
        self.mongod = None
        if mongod_pid:
            import psutil

            self.mongod = psutil.Process(mongod_pid)

    def _sample_tree(self, stop: threading.Event, peak: dict) -> None:
        """Every 0.5 s: RSS of this process + its descendants (executor workers) + the mongod."""
        import psutil

        me = psutil.Process()
        mongod_pid = self.mongod.pid if self.mongod is not None else None
        while True:  # a sample at the start, then every 0.5 s until the step ends
            total, kids = 0, 0
            # The private mongod is one of this process's children: each process once, by pid
            # (runs before 2026-12-07 18:10 UTC counted it twice, see scale_e2e.md).
            procs = {p.pid: p for p in [me, *me.children(recursive=True)] + ([self.mongod] if self.mongod else [])}
            for pid, proc in procs.items():
                try:
                    rss = proc.memory_info().rss
                except psutil.Error:
                    continue
                total += rss
                if pid not in (me.pid, mongod_pid):
                    kids = max(kids, rss)
            peak["total"] = max(peak.get("total", 0), total)
            peak["child"] = max(peak.get("child", 0), kids)
            if stop.wait(0.5):
                break

    def _write_partial(self) -> None:
        if self.partial_path is not None:  # a run stopped later still leaves its finished steps
            self.partial_path.write_text(json.dumps({"partial": True, "steps": self.steps}, indent=2) + "\n")

    def _mongod(self):
        if self.mongod is None:
            return None, None
        t = self.mongod.cpu_times()
        return t.user + t.system, self.mongod.memory_info().rss / 2**20

    def disk(self) -> dict:
        ds_dir = self.home / "datasets" / NAME
        out = {"store": folder_bytes(ds_dir / "store"), "media": folder_bytes(ds_dir / "bev"),
               "repr": folder_bytes(ds_dir / "repr")}
        if (self.home / "db").exists():
            out["mongodb_dbpath"] = folder_bytes(self.home / "db")
        else:  # an external database: its data and index sizes
            import fiftyone.core.odm.database as fod

            stats = fod.get_db_conn().command("dbStats")
            out["mongodb_dbstats"] = int(stats.get("storageSize", 0) + stats.get("indexSize", 0))
        out["total"] = sum(out.values())
        return out

    def step(self, name: str, what: str, fn):
        if name in self.reused:  # done by an earlier attempt on this --home: its record, not a rerun
            self.steps[name] = self.reused[name]
            self._write_partial()
            print(f"[bench_scale_e2e] {name}: reused from the earlier attempt", file=sys.stderr, flush=True)
            return {}
        load0 = [round(v, 2) for v in os.getloadavg()]
        local = _reset_peak()
        c0, (m0, _) = os.times(), self._mongod()
        stop, peak = threading.Event(), {}
        sampler = threading.Thread(target=self._sample_tree, args=(stop, peak), daemon=True)
        sampler.start()
        t0 = time.perf_counter()
        try:
            out = fn()
        finally:
            stop.set()
            sampler.join()
        wall = time.perf_counter() - t0
        c1, (m1, mrss) = os.times(), self._mongod()

        rec = {
            "wall_s": round(wall, 2),
            "cpu_s": {"main": round(c1.user + c1.system - c0.user - c0.system, 2),
                      "children": round(c1.children_user + c1.children_system - c0.children_user - c0.children_system, 2),
                      "mongod": None if m0 is None else round(m1 - m0, 2)},
            "peak_rss_mb": {"main": round(_peak_mb(), 1), "main_is_step_local": local,
                            "largest_child_sampled": round(peak.get("child", 0) / 2**20, 1),
                            "tree_total_sampled": round(peak.get("total", 0) / 2**20, 1),
                            "mongod_after": None if mrss is None else round(mrss, 1)},
            "disk_bytes_after": self.disk(),
            "load_avg_before": load0, "load_avg_after": [round(v, 2) for v in os.getloadavg()],
            "what_it_ran_on": what,
        }
        if isinstance(out, dict) and out.get("_extra"):
            rec.update(out["_extra"])
        self.steps[name] = rec
        self._write_partial()
        print(f"[bench_scale_e2e] {name}: wall {rec['wall_s']} s, cpu {rec['cpu_s']}, rss {rec['peak_rss_mb']}, "
              f"disk {rec['disk_bytes_after']['total'] / 1e6:.0f} MB, load {load0} -> {rec['load_avg_after']}",
              file=sys.stderr, flush=True)
        return out


class Timers:
    """Seconds spent inside chosen methods during a step (a wrapper that times, then calls the
    original; removed again by ``restore``): where the embed step's time goes."""

    def __init__(self, targets: dict):
        self.seconds = {name: 0.0 for name in targets}
        self.calls = {name: 0 for name in targets}
        self.saved = []
        for name, (owner, attr) in targets.items():
            original = getattr(owner, attr)
            self.saved.append((owner, attr, original))
            setattr(owner, attr, self._wrap(name, original))

    def _wrap(self, name, original):
        def timed(*a, **k):
            t = time.perf_counter()
            try:
                return original(*a, **k)
            finally:
                self.seconds[name] += time.perf_counter() - t
                self.calls[name] += 1

        return timed

    def lap(self) -> dict:
        """The phases that ran since the last lap (seconds, calls), then zeroed."""
        out = {name: {"seconds": round(s, 1), "calls": self.calls[name]} for name, s in self.seconds.items()
               if self.calls[name]}
        self.seconds = dict.fromkeys(self.seconds, 0.0)
        self.calls = dict.fromkeys(self.calls, 0)
        return out

    def restore(self) -> dict:
        out = self.lap()
        for owner, attr, original in self.saved:
            setattr(owner, attr, original)
        return out


# ---------------------------------------------------------------------------------- steps
def ingest(args, executor, meter_extra: dict):
    """Generate chunk waves in a background thread while the previous wave is ingested."""
    import fiftyone as fo

    from fiftyone_plugin.engine import scenes

    sizes = [min(args.chunk, args.scenes - start) for start in range(0, args.scenes, args.chunk)]
    chunks = list(enumerate(sizes))
    existing: set[str] = set()
    if fo.dataset_exists(NAME):
        if not args.resume:
            raise SystemExit(f"dataset {NAME!r} exists under {args.home}; pass --resume or use another --home")
        existing = set(fo.load_dataset(NAME).values("scene_id"))
    todo = [c for c in chunks if not all(s in existing for s in expected_ids(*c))]
    skipped = len(chunks) - len(todo)
    width = max(1, getattr(executor, "max_workers", 1))
    waves = [todo[i:i + width] for i in range(0, len(todo), width)]
    gen_seconds: list[float] = []

    def produce(wave, slot):
        t = time.perf_counter()
        try:
            slot["batches"] = executor.map(generate_chunk, wave)
        except BaseException as exc:  # noqa: BLE001  (re-raised in the main thread)
            slot["error"] = exc
        gen_seconds.append(time.perf_counter() - t)

    def launch(i):
        slot: dict = {}
        thread = threading.Thread(target=produce, args=(waves[i], slot), daemon=True)
        thread.start()
        return thread, slot

    ingest_seconds, wait_seconds = 0.0, 0.0
    pending = launch(0) if waves else None
    dataset = fo.load_dataset(NAME) if fo.dataset_exists(NAME) else None
    for i in range(len(waves)):
        thread, slot = pending
        t = time.perf_counter()
        thread.join()
        wait_seconds += time.perf_counter() - t
        if "error" in slot:
            raise slot["error"]
        batches = slot.pop("batches")
        pending = launch(i + 1) if i + 1 < len(waves) else None  # next wave generates while this one ingests
        for (k, n), batch in zip(waves[i], batches):
            ids = [str(s) for s in batch.meta["scene_id"]]
            if ids != expected_ids(k, n):
                raise RuntimeError(f"chunk {k}: generate_world's scene ids are not world-<seed>-<i> ({ids[:2]})")
            t = time.perf_counter()
            if dataset is None:
                dataset = scenes.create_scene_dataset(NAME, batch, render_images="deferred",
                                                      info={scenes.COMPACT_INFO_KEY: "packed",
                                                            scenes.OVERLAYS_INFO_KEY: args.overlays.replace("-", "_")})
            else:
                scenes.create_scene_dataset(NAME, batch, render_images="deferred", resume=True)
            ingest_seconds += time.perf_counter() - t
            print(f"[bench_scale_e2e] chunk {k}: {len(dataset)} scenes", file=sys.stderr, flush=True)
        del batches
    meter_extra.update({"chunks": len(chunks), "chunks_skipped_resume": skipped, "waves": len(waves),
                        "wave_generate_s": [round(s, 1) for s in gen_seconds],
                        "main_ingest_s": round(ingest_seconds, 1), "main_waiting_for_generation_s": round(wait_seconds, 1)})
    return {"_extra": {"detail": dict(meter_extra)}, "dataset": dataset}


def knn_all(dataset):
    import faiss
    import numpy as np

    from autoscale_core.representation import KnnIndex
    from fiftyone_plugin.engine.representation import repr_dir

    emb = np.load(repr_dir(dataset, "graph_rae") / "embeddings.npy")
    threads = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(os.cpu_count() or 1)  # nothing else runs in this step (OMP_NUM_THREADS=1 is for the workers)
    try:
        index = KnnIndex(expected_queries=len(emb)).fit(emb)
        dist, idx = index.search(emb, 21)
    finally:
        faiss.omp_set_num_threads(threads)
    assert idx.shape == (len(emb), 21)
    return {"_extra": {"detail": {"index_kind": index.built_kind, "reason": index.reason, "dim": int(emb.shape[1]),
                                  "faiss_threads": os.cpu_count() or 1,
                                  "self_is_first": float(np.mean(idx[:, 0] == np.arange(len(emb))))}}}


def allocate(dataset, budget: int, pilot_name: str, pilot_steps: int):
    import numpy as np

    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.selection import allocate_budget

    ids = dataset.values("scene_id")
    q = np.asarray(dataset.values("value_q"), dtype=np.float64)
    rank = np.empty(len(q))
    rank[np.argsort(q, kind="stable")] = np.arange(len(q))
    scenes.write_scene_fields(dataset, {"bench_q_rank": 1.0 - rank / max(1, len(q) - 1)}, scene_ids=ids)
    out = allocate_budget(dataset, "bench-mosaic", budget, fits_from=pilot_name, domain_field="topology",
                          importance_field="bench_q_rank", steps=pilot_steps, overwrite=True)
    tagged = len(dataset.match_tags("sel:bench-mosaic"))
    assert tagged == budget and dataset.has_saved_view("bench-mosaic"), (tagged, budget)
    return {"_extra": {"detail": {"budget": budget, "tagged": tagged, "saved_view": "bench-mosaic",
                                  "allocation": out.get("allocation") or out.get("per_domain")}}}


def draw_selection(dataset, executor):
    from fiftyone_plugin.engine import bev_render

    view = dataset.load_saved_view("bench-mosaic")
    drawn = bev_render.draw_scenes(view, executor=executor)
    assert drawn["overlays"] == len(view) and view.count("agents") == len(view), drawn
    return {"_extra": {"detail": {**drawn, "view": "bench-mosaic"}}}


def compact(meter: Meter, dataset):
    import fiftyone.core.odm.database as fod

    before = meter.disk()
    coll = dataset._sample_collection_name
    db = fod.get_db_conn()
    stats0 = db.command("collStats", coll)
    db.command("compact", coll)
    stats1 = db.command("collStats", coll)
    return {"_extra": {"detail": {"disk_before": before, "collection": coll,
                                  "storageSize_before": stats0.get("storageSize"), "storageSize_after": stats1.get("storageSize"),
                                  "bson_size": stats1.get("size"), "count": stats1.get("count")}}}


# ---------------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=1_000_000)
    p.add_argument("--chunk", type=int, default=10_000, help="scenes per generate_world call (one executor task)")
    p.add_argument("--executor", default="process:2")
    p.add_argument("--quick", action="store_true", help=f"{QUICK_SCENES:,} scenes (unless --scenes) in 4 chunks, a 500-scene pilot view, 30 pilot steps")
    p.add_argument("--pilot", type=int, default=2000, help="candidate scenes of the MOSAIC pilot view")
    p.add_argument("--pilot-steps", type=int, default=100, help="planner training steps per pilot run")
    p.add_argument("--rae-steps", type=int, default=None, help="Graph-RAE training steps (default the plugin's 150)")
    p.add_argument("--mongod-cache-gb", type=float, default=2.0,
                   help="the private mongod's WiredTiger cache (GB; 0 = MongoDB's default, half the RAM less 1 GB)")
    p.add_argument("--mc-samples", type=int, default=10, help="Graph-RAE MC-dropout passes per scene for U (the plugin's default 10)")
    p.add_argument("--overlays", default="on-demand", choices=("on-demand", "inline"),
                   help="on-demand (default): lean samples, the selection's overlays drawn after allocate; "
                        "inline: every sample's overlays written at ingest (the 2026-12-07 1e6 run)")
    p.add_argument("--home", default=None, help="run folder (AUTOSCALE_HOME + MongoDB dbpath); default a temp dir")
    p.add_argument("--resume", action="store_true", help="continue the run in --home (skips complete chunks)")
    p.add_argument("--keep", action="store_true", help="keep the run folder and dataset afterwards")
    p.add_argument("--out", default=None, help="JSON path (a .md beside it)")
    p.add_argument("--reuse-steps", default=None, metavar="PARTIAL_JSON",
                   help="with --resume: steps recorded in this partial JSON of an earlier attempt on the same --home "
                        "are not run again; their records are copied, marked reused_from")
    args = p.parse_args(argv)
    if args.quick and args.scenes == 1_000_000:
        args.scenes = QUICK_SCENES
    if args.quick:
        args.chunk = min(args.chunk, max(1, args.scenes // 4))
        args.pilot = min(args.pilot, 500)
        args.pilot_steps = min(args.pilot_steps, 30)
    if args.resume and not args.home:
        p.error("--resume needs --home")
    if args.reuse_steps and not args.resume:
        p.error("--reuse-steps needs --resume (the earlier attempt's --home)")
    command = " ".join(["benchmarks/bench_scale_e2e.py", *(sys.argv[1:] if argv is None else argv)])
    given_home = args.home is not None
    home_existed = given_home and Path(args.home).exists()
    home = Path(args.home or tempfile.mkdtemp(prefix="bench-scale-e2e-")).resolve()
    args.home = home
    home.mkdir(parents=True, exist_ok=True)
    os.environ["AUTOSCALE_HOME"] = str(home)
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    made_db = not (home / "db").exists()  # never delete a db folder this run did not create
    made_dataset_dir = not (home / "datasets" / NAME).exists()
    external = bool(os.environ.get("FIFTYONE_DATABASE_URI"))
    started = time.time()
    load_start = [round(v, 2) for v in os.getloadavg()]
    ok = owns_dataset = False

    def keep() -> bool:
        return args.keep or (given_home and not ok)  # a failed run in --home stays there for --resume

    try:
        cache = ["--wiredTigerCacheSizeGB", f"{args.mongod_cache_gb:g}"] if args.mongod_cache_gb else []
        with contextlib.nullcontext() if external else private_mongod(home / "db", extra_args=cache) as mongod:
            if mongod is not None:
                os.environ["FIFTYONE_DATABASE_URI"] = mongod.uri
            try:
                from fiftyone_plugin.engine import scenes as scene_glue

                # A dataset of this name from an earlier kept run is this run's only with --resume.
                owns_dataset = args.resume or not scene_glue.fo.dataset_exists(NAME)
                result = run(args, command, home, mongod, started, load_start)
                ok = True
            finally:
                if not keep():
                    try:
                        if owns_dataset and scene_glue.fo.dataset_exists(NAME):
                            scene_glue.delete_scene_dataset(NAME)
                    except Exception as exc:  # noqa: BLE001
                        print(f"[bench_scale_e2e] cleanup: {exc}", file=sys.stderr)
    finally:  # mongod has stopped here
        if not keep():
            if home_existed:  # only what this script made in a folder that was there before
                if made_dataset_dir:
                    shutil.rmtree(home / "datasets" / NAME, ignore_errors=True)
                if made_db and not external:
                    shutil.rmtree(home / "db", ignore_errors=True)
            else:
                shutil.rmtree(home, ignore_errors=True)
        elif not ok:
            print(f"[bench_scale_e2e] the run stopped; continue it with --home {home} --resume", file=sys.stderr)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
        Path(args.out).with_suffix(".md").write_text(markdown(result))
    return 0


def run(args, command, home, mongod: PrivateMongod | None, started, load_start) -> dict:
    import fiftyone as fo
    from fiftyone import ViewField as F

    from autoscale_core.executor import get_executor
    from fiftyone_plugin.engine.representation import cluster_scenes, compute_scene_embeddings, compute_value_scores
    from fiftyone_plugin.engine.selection import fit_scaling_laws

    fo.list_datasets()  # connect outside the timed steps
    partial = Path(args.out).with_suffix(".partial.json") if args.out else None
    meter = Meter(home, mongod.pid if mongod else None, partial)
    if args.reuse_steps:
        earlier = json.loads(Path(args.reuse_steps).read_text())["steps"]
        meter.reused = {name: {**rec, "reused_from": str(args.reuse_steps)} for name, rec in earlier.items()}
    disk_start = meter.disk()  # mongod's own files (journal, catalog) before any data
    executor = get_executor(args.executor)
    n = args.scenes
    extra: dict = {}
    from autoscale_core.representation.graph_rae import GraphRAE
    from autoscale_core.store import SceneStore
    out = meter.step("ingest", f"{n:,} distinct world scenes: chunk k = generate_world({args.chunk}, seed=k), "
                     f"{args.executor} generating the next wave while the main process ingests (packed store, "
                     "deferred BEV placeholders)", lambda: ingest(args, executor, extra))
    ds = out.get("dataset") or fo.load_dataset(NAME)
    # values(), not distinct(): distinct returns one BSON document, over MongoDB's 16 MB at 1e6 ids
    assert len(ds) == n and len(set(ds.values("scene_id"))) == n, (len(ds), n)
    splits = ds.count_values("split")
    import fiftyone.brain as fob

    from fiftyone_plugin.engine import representation as engine_repr
    from fiftyone_plugin.engine import scenes as engine_scenes
    from fiftyone_plugin.engine import selection as engine_selection

    # Main-process phases only: the chunks are encoded in the executor's workers (their time is
    # the step's wall time less these phases).
    timers = Timers({"graph_rae_fit": (GraphRAE, "fit"), "store_load_main": (SceneStore, "load"),
                     "write_scene_fields": (engine_scenes, "write_scene_fields"),
                     "brain_similarity": (fob, "compute_similarity"), "brain_visualization": (fob, "compute_visualization"),
                     "view_embeddings": (engine_repr, "_view_embeddings"),
                     "pool_from_view": (engine_selection, "pool_from_view")})
    emb = meter.step("embed", f"all {n:,} scenes streamed from the packed store, encoded in tasks of 10,000 on "
                     f"{args.executor}; Graph-RAE trained (main process) on a seeded sample of min(20,000, train "
                     f"split = {splits.get('train', 0):,}) scenes, {args.rae_steps or 150} steps; {args.mc_samples} "
                     "MC-dropout samples per scene reduced to U per chunk; faiss index, Brain similarity (sklearn) "
                     "and PCA map",
                     lambda: compute_scene_embeddings(ds, "graph_rae", viz_method="pca", stream_above=0,
                                                      steps=args.rae_steps, mc_samples=args.mc_samples,
                                                      executor=executor))
    meter.steps["embed"]["detail"] = {k: emb.get(k) for k in ("num_scenes", "dim", "num_train", "index_kind",
                                                                "index_reason", "final_loss")}
    meter.steps["embed"]["phases"] = timers.lap()
    meter.step("knn", f"the {n:,} Graph-RAE embeddings: all-vs-all k=21 faiss search", lambda: knn_all(ds))
    cl = meter.step("cluster", f"the {n:,} Graph-RAE embeddings: cluster_scenes k-means k=16",
                    lambda: cluster_scenes(ds, "graph_rae", k=16))
    meter.steps["cluster"]["detail"] = {"k": cl.get("k")}
    meter.steps["cluster"]["phases"] = timers.lap()
    val = meter.step("value", f"the {n:,} scenes against the {splits.get('train', 0):,} train-split scenes: "
                     "S/R/U/Q, U from the Graph-RAE MC-dropout samples", lambda: compute_value_scores(ds, "graph_rae"))
    meter.steps["value"]["detail"] = {"num_reference": val.get("num_reference"), "uncertainty": val.get("uncertainty")}
    meter.steps["value"]["phases"] = timers.lap()
    pilot_ids = sorted(ds.match(F("scene_id").starts_with("world-0-")).values("scene_id"))[: args.pilot]
    pilot_view = ds.select_by("scene_id", pilot_ids)
    budget = max(1, n // 100)
    pilot_budget = max(20, args.pilot // 10)
    fits = meter.step("mosaic_pilot", f"fit_scaling_laws on {len(pilot_ids):,} candidate scenes of chunk 0 (first by "
                      f"scene id), base = 500 train / val = 200 val scenes of the dataset, pilot budget {pilot_budget}, "
                      f"fractions 0.25/0.75/2.0, 1 seed, {args.pilot_steps} planner steps per pilot, {args.executor}",
                      lambda: fit_scaling_laws(pilot_view, "bench-pilot", pilot_budget, domain_field="topology",
                                               steps=args.pilot_steps, executor=args.executor, overwrite=True))
    meter.steps["mosaic_pilot"]["detail"] = {"domains_fitted": sorted(fits.get("fits", {})), "pool_size": fits.get("pool_size")}
    meter.steps["mosaic_pilot"]["phases"] = timers.lap()
    meter.step("allocate", f"allocate_budget of {budget:,} (1 %) over all {n:,} scenes minus base/val, topology domains, "
               "fits from the pilot; within-domain order = value Q (importance_field bench_q_rank); tag + saved view + run",
               lambda: allocate(ds, budget, "bench-pilot", args.pilot_steps))
    meter.steps["allocate"]["phases"] = timers.lap()
    if args.overlays == "on-demand":
        meter.step("draw_selection", f"the {budget:,} selected scenes (saved view bench-mosaic): overlays written "
                   f"from the store, BEV images rendered on {args.executor}", lambda: draw_selection(ds, executor))
    timers.restore()
    meter.step("compact", "MongoDB compact of the samples collection after the write-backs", lambda: compact(meter, ds))
    import faiss
    import torch

    meter.steps.update({name: rec for name, rec in meter.reused.items() if name in meter.steps})  # as recorded then
    total_wall = sum(s["wall_s"] for s in meter.steps.values())
    result = {
        "benchmark": "scale_e2e", "command": command, "scenes": n, "chunk": args.chunk, "executor": args.executor,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started)),
        "machine": {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "faiss_threads": faiss.omp_get_max_threads(), "torch_threads": torch.get_num_threads(),
                    "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
                    "load_avg_start": load_start, "load_avg_end": [round(v, 2) for v in os.getloadavg()]},
        "overlays": args.overlays,
        "mongodb": (f"private mongod (FiftyOne's binary), dbpath under the run folder, WiredTiger cache "
                    f"{args.mongod_cache_gb:g} GB" if args.mongod_cache_gb else "MongoDB's default cache")
                   if mongod else "FIFTYONE_DATABASE_URI",
        "distinct": "every scene generated: no tiling, no random vectors",
        "splits": splits, "steps": meter.steps, "total_wall_s": round(total_wall, 1),
        "end_to_end_wall_s": round(time.time() - started, 1),
        "peak_rss_mb_max_main": max(s["peak_rss_mb"]["main"] for s in meter.steps.values()),
        "disk_bytes_max": max(s["disk_bytes_after"]["total"] for s in meter.steps.values()),
        "disk_bytes_start": disk_start,
        "disk_bytes_end": meter.steps["compact"]["disk_bytes_after"],
        "peak_rss_mb_max_all_processes": max(s["peak_rss_mb"]["tree_total_sampled"] for s in meter.steps.values()),
    }
    if n < 1_000_000:
        result["projection_1e6"] = projection(result)
    return result


def projection(result: dict) -> dict:
    """Linear projection of each step to 1e6 scenes from this run (labelled as such)."""
    f = 1_000_000 / result["scenes"]
    fixed = {"mosaic_pilot"}  # its pilot view is fixed-size
    steps = {}
    for name, s in result["steps"].items():
        steps[name] = {"wall_s_linear": round(s["wall_s"] * (1 if name in fixed else f), 0),
                       "scales": "fixed (pilot view size)" if name in fixed else "linear in n (assumed)"}
    end, start = result["disk_bytes_end"], result["disk_bytes_start"]
    disk = {k: round((start.get(k, 0) + (v - start.get(k, 0)) * f) / 1e9, 2) for k, v in end.items()}
    return {"what": f"PROJECTION, not measured: this run's per-step times x {f:g} (linear), disk = the files "
                    f"mongod had before any data + this run's growth x {f:g}",
            "steps": steps, "wall_s": round(sum(v["wall_s_linear"] for v in steps.values()), 0),
            "disk_GB_end": disk["total"], "disk_GB_end_by_part": disk}


def markdown(r: dict) -> str:
    lines = [f"# End-to-end at {r['scenes']:,} distinct world scenes (`bench_scale_e2e.py`)", "",
             f"Command: `{r['command']}` (started {r['date']}; {r['machine']['nproc']} cores, "
             f"load average {r['machine']['load_avg_start']} at start, {r['machine']['load_avg_end']} at end; "
             f"OMP_NUM_THREADS={r['machine']['OMP_NUM_THREADS']}). {r['distinct']}; MongoDB: {r['mongodb']}.", "",
             "| step | wall s | CPU s main / children / mongod | peak RSS MB main (largest child) / all processes | disk after, MB | load before → after | ran on |",
             "|---|---:|---|---:|---:|---|---|"]
    for name, s in r["steps"].items():
        c, m = s["cpu_s"], s["peak_rss_mb"]
        lines.append(f"| {name} | {s['wall_s']} | {c['main']} / {c['children']} / {c['mongod']} | {m['main']} "
                     f"({m['largest_child_sampled']}) / {m['tree_total_sampled']} | {s['disk_bytes_after']['total'] / 1e6:,.0f} | "
                     f"{s['load_avg_before'][0]} → {s['load_avg_after'][0]} | {s['what_it_ran_on']} |")
    end = r["disk_bytes_end"]
    lines += ["", f"Total wall {r['total_wall_s']} s (end to end {r['end_to_end_wall_s']} s); max peak RSS of the main "
              f"process {r['peak_rss_mb_max_main']} MB; disk at the end "
              + ", ".join(f"{k} {v / 1e6:,.0f} MB" for k, v in end.items()) + "."]
    if "projection_1e6" in r:
        pj = r["projection_1e6"]
        lines += ["", f"**{pj['what']}**: wall ≈ {pj['wall_s']:,.0f} s; disk ≈ {pj['disk_GB_end']} GB "
                  + str(pj["disk_GB_end_by_part"]) + "."]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
