"""Foundation benchmark: world generation, BEV rendering, dataset ingest, scene-array loading.

Prints one JSON object. Runs on an embedded mongod with its data in a temp dir (but see the note
below; or on FIFTYONE_DATABASE_URI if set) and deletes what it made.

    .venv/bin/python benchmarks/bench_ingest.py                  # defaults below
    .venv/bin/python benchmarks/bench_ingest.py --scenes 500 --load-sizes 10000 100000
    /work/lowcpu .venv/bin/python benchmarks/bench_ingest.py --quick --out benchmarks/results/ingest_quick.json

``--quick``: 2,000 distinct world scenes, a 10,000-scene load store, no 100k store. Every run
records the machine's load average (``os.getloadavg()``) at start and end: on a shared machine
every rate is measured under that contention.

Ingest modes timed (all write samples with every overlay and the store rows):
``ingest_with_render`` (BEV images rendered inline), ``ingest_deferred_render`` (placeholder
images, :mod:`fiftyone_plugin.engine.bev_render`), ``ingest_without_render``; then ``render_pending``
of the deferred dataset through a process pool (``--render-workers``).

Each ingest mode also records ``*_cpu_s``: CPU seconds of this process (``time.process_time``)
and of mongod (``psutil``) during the call — comparable across runs on a busy machine, where the
rates are not. Note: FiftyOne attaches to *any* running FiftyOne database service, whatever
``FIFTYONE_DATABASE_DIR`` says; when another FiftyOne process (e.g. a long benchmark) already runs
one, this script shares that mongod (its CPU figure then includes the other clients'). For an
isolated mongod set ``FIFTYONE_DATABASE_URI``, e.g.::

    mongod --dbpath /tmp/bench-db --port 27919 --bind_ip 127.0.0.1 &   # fiftyone/db/bin/mongod
    FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:27919 .venv/bin/python benchmarks/bench_ingest.py --quick --mongod-pid $!

Issue #19 (≥ 2,000 samples/s with overlays): ``ingest_without_render_samples_per_s`` and
``ingest_deferred_render_samples_per_s`` of ``--quick`` on an idle machine.

Scene-array load: the store is filled with the generated scenes replicated under new ids up to
each size (the arrays are real world scenes; only the ids differ), then ``SceneStore.load`` of
all ids is timed, and ``load_scenes`` of a FiftyOne view for the ingest-sized dataset.
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--scenes", type=int, default=1000, help="scenes generated, rendered, ingested")
    parser.add_argument("--load-sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="2,000 scenes, 10k load store")
    parser.add_argument("--render-workers", type=int, default=2, help="process pool size for render_pending")
    parser.add_argument("--out", default=None, help="also write the JSON here")
    parser.add_argument("--mongod-pid", type=int, default=None,
                        help="pid of the mongod behind FIFTYONE_DATABASE_URI, for its CPU seconds")
    args = parser.parse_args()
    if args.quick:
        args.scenes, args.load_sizes = 2000, [10_000]

    tmp = tempfile.mkdtemp(prefix="autoscale-bench-")
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(tmp, "db")
    os.environ["AUTOSCALE_HOME"] = os.path.join(tmp, "home")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    # Keep stdout pure JSON: the MongoDB-version notice is logged to stdout otherwise.
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")

    import numpy as np

    from autoscale_core.render import render_bev
    from autoscale_core.scene import SceneBatch
    from autoscale_core.store import SceneStore
    from autoscale_core.world import generate_world

    result: dict = {
        "benchmark": "bench_ingest",
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "scenes": args.scenes,
        "ran_on": f"{args.scenes} distinct world scenes (seed {args.seed}); load stores tile them under new ids",
        "loadavg_start": os.getloadavg(),
    }

    t = time.perf_counter()
    batch = generate_world(args.scenes, seed=args.seed)
    result["world_generate_scenes_per_s"] = args.scenes / (time.perf_counter() - t)

    n_render = min(args.scenes, 300)
    t = time.perf_counter()
    for i in range(n_render):
        render_bev(batch, i)
    result["render_scenes_per_s"] = n_render / (time.perf_counter() - t)

    import fiftyone as fo

    from fiftyone_plugin.engine import scenes

    fo.Dataset()  # start/connect mongod outside the timed region
    cpu = _CpuMeter(args.mongod_pid)
    name = f"bench-ingest-{os.getpid()}"
    t = time.perf_counter()
    cpu.start()
    dataset = scenes.create_scene_dataset(name, batch, overwrite=True)
    result["ingest_with_render_samples_per_s"] = len(dataset) / (time.perf_counter() - t)
    result["ingest_with_render_cpu_s"] = cpu.stop()
    name2 = name + "-norender"
    t = time.perf_counter()
    cpu.start()
    dataset2 = scenes.create_scene_dataset(name2, batch, overwrite=True, render_images=False)
    result["ingest_without_render_samples_per_s"] = len(dataset2) / (time.perf_counter() - t)
    result["ingest_without_render_cpu_s"] = cpu.stop()
    result.update(_deferred(scenes, batch, name + "-deferred", args.render_workers, cpu))

    t = time.perf_counter()
    loaded = scenes.load_scenes(dataset.shuffle(seed=1))
    result["load_scenes_view_s"] = {str(len(loaded)): time.perf_counter() - t}

    values = np.random.default_rng(0).random(len(dataset))
    t = time.perf_counter()
    scenes.write_scene_fields(dataset, {"value_bench": values})
    result["write_scene_fields_samples_per_s"] = len(dataset) / (time.perf_counter() - t)

    result["store_load_s"] = {}
    result["store_bytes_per_scene"] = None
    for size in args.load_sizes:
        store = SceneStore(os.path.join(tmp, f"store-{size}"))
        copies = -(-size // len(batch))
        for c in range(copies):
            part = batch.subset(np.arange(min(len(batch), size - c * len(batch))))
            part.meta["scene_id"] = np.array([f"r{c}-{s}" for s in part.meta["scene_id"]], dtype=object)
            store.append(part)
        ids = store.scene_ids()
        order = np.random.default_rng(0).permutation(len(ids))
        ids = [ids[i] for i in order]  # random order: a gather, not a sequential read
        fresh = SceneStore(store.root)  # cold index: time includes reading the manifests
        t = time.perf_counter()
        loaded = fresh.load(ids)
        result["store_load_s"][str(size)] = time.perf_counter() - t
        assert len(loaded) == size and isinstance(loaded, SceneBatch)
        nbytes = sum(os.path.getsize(os.path.join(dp, f)) for dp, _, fs in os.walk(store.root) for f in fs)
        result["store_bytes_per_scene"] = nbytes / size
        del loaded
        shutil.rmtree(store.root)

    scenes.delete_scene_dataset(name)
    scenes.delete_scene_dataset(name2)
    result["loadavg_end"] = os.getloadavg()
    print(json.dumps(result, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(result, f, indent=2)
    _cleanup(tmp)


class _CpuMeter:
    """CPU seconds of this process and of the mongod serving it, between start and stop."""

    def __init__(self, pid: int | None = None):
        self.mongod = None
        try:
            import psutil

            if pid is not None:
                self.mongod = psutil.Process(pid)
                return
            database = sys.modules.get("fiftyone.core.odm.database")
            child = getattr(getattr(database, "_db_service", None), "child", None)
            if child is not None:
                procs = [psutil.Process(child.pid)] + psutil.Process(child.pid).children(recursive=True)
                self.mongod = next((p for p in procs if "mongod" in p.name()), None)
        except Exception:  # no psutil, an external URI, or the service went away: main only
            self.mongod = None

    def _mongod_cpu(self):
        if self.mongod is None:
            return None
        try:
            times = self.mongod.cpu_times()
            return times.user + times.system
        except Exception:
            return None

    def start(self) -> None:
        self.t0, self.m0 = time.process_time(), self._mongod_cpu()

    def stop(self) -> dict:
        m1 = self._mongod_cpu()
        return {"main": time.process_time() - self.t0,
                "mongod": None if m1 is None or self.m0 is None else m1 - self.m0}


def _deferred(scenes, batch, name: str, workers: int, cpu: _CpuMeter) -> dict:
    """Ingest with placeholder images, then render them through a process pool."""
    from autoscale_core.executor import ProcessExecutor
    from fiftyone_plugin.engine import bev_render

    t = time.perf_counter()
    cpu.start()
    dataset = scenes.create_scene_dataset(name, batch, overwrite=True, render_images="deferred")
    out = {"ingest_deferred_render_samples_per_s": len(dataset) / (time.perf_counter() - t),
           "ingest_deferred_render_cpu_s": cpu.stop()}
    with ProcessExecutor(max_workers=workers) as pool:
        t = time.perf_counter()
        rendered = bev_render.render_pending(dataset, executor=pool)
        out["render_pending_images_per_s"] = rendered / (time.perf_counter() - t)
        out["render_pending_workers"] = workers
    scenes.delete_scene_dataset(name)
    return out


def _cleanup(tmp: str) -> None:
    """Stop the private mongod this script started (if any), then delete the temp folder."""
    database = sys.modules.get("fiftyone.core.odm.database")
    child = getattr(getattr(database, "_db_service", None), "child", None)
    if child is not None and not os.environ.get("FIFTYONE_DATABASE_URI"):
        try:
            child.stdin.close()
            child.wait(timeout=20)
        except Exception:
            shutil.rmtree(os.path.join(tmp, "home"), ignore_errors=True)
            return
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
