"""Scale benchmark: embed → kNN rarity → k-means → value scores → budget allocation at 10^4–10^6
scenes, plus the write-back of 10^5 samples' fields. Prints JSON; writes results files.

    .venv/bin/python benchmarks/bench_scale.py --sizes 10000,100000            # quick (minutes)
    .venv/bin/python benchmarks/bench_scale.py                                  # 10^4, 10^5, 10^6
    .venv/bin/python benchmarks/bench_scale.py --out benchmarks/results/scale_random   # + .json, .md

Each size runs in its own subprocess, so its peak memory is its own: per stage, the peak RSS
(``VmHWM`` after resetting it through ``/proc/self/clear_refs``; ``ru_maxrss`` as fallback) and
the wall time. What is real and what is synthetic:

* **embed** — real: embedded-world scenes are written to a sharded ``SceneStore`` on disk
  (``--store-distinct`` distinct scenes, tiled with new scene ids up to the size) and streamed
  back in batches of ``--batch`` scenes through :class:`HandcraftedFeatures` (standardized with
  running means). Done for sizes ≤ ``--store-max``; above it the store would not fit (≈30 KB
  per scene) and the embed time is **extrapolated** linearly from the largest measured size
  (the field says so).
* **knn / cluster / value / allocate** — on synthetic 128-d embeddings (a mixture of 32
  Gaussian blobs, isotropic noise: a hard case for approximate search) at every size, so the
  sizes are comparable. **knn**: the embeddings are L2-normalized (the space of the value
  scores), ``KnnIndex`` chooses exact or IVF automatically (``expected_queries`` = n) and the
  all-vs-all k = 21 search runs once (grouped IVF search above the exact budget). Quality, outside
  the timing, on 1,000 sampled queries against exact search: recall@10, and the Spearman
  correlation of the rarity R computed from the approximate vs the exact neighbours.
  **cluster**: ``SceneClusterer`` (faiss k-means, fixed k). **value**: ``ValueScorer`` S/R/Q
  against the whole set (self excluded), *reusing* the knn stage's index and neighbours (its own
  work: the hazard index, nearest-hazard search, bandwidth, R and Q). **allocate**:
  ``greedy_allocate`` of 10 % of the scenes over the clusters with concave gain curves.
* **writeback** — a real FiftyOne dataset of ``--writeback`` minimal samples in a private
  embedded MongoDB (or ``FIFTYONE_DATABASE_URI``): four float fields written with plain
  ``set_values`` keyed by ``scene_id`` and with the crash-safe ``staged_write``.

The pipeline total is embed + knn + cluster + value + allocate. Growth exponents are least-squares
slopes of log(time) against log(n).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DIM = 128
K_NEIGHBOURS = 20
SEARCH_CHUNK = 65_536


# ---------------------------------------------------------------------------------- measuring
def _reset_peak() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Stage:
    """``with Stage(out, "name"):`` records wall seconds and the peak RSS (MB) of the block."""

    def __init__(self, out: dict, name: str):
        self.out, self.name = out, name

    def __enter__(self):
        self.resettable = _reset_peak()
        self.t0 = time.perf_counter()
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.out[self.name] = {"seconds": round(time.perf_counter() - self.t0, 3),
                                   "peak_rss_mb": round(_peak_mb(), 1),
                                   "peak_is_stage_local": self.resettable}
        return False


# ---------------------------------------------------------------------------------- stages
def synthetic_embeddings(n: int, dim: int = DIM, blobs: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(n, dim) float32 from a mixture of ``blobs`` Gaussians, and (n,) synthetic safety values."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(0, 4.0, (blobs, dim)).astype(np.float32)
    which = rng.integers(0, blobs, n)
    x = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 100_000):  # bounded temporaries
        sl = slice(start, min(n, start + 100_000))
        x[sl] = centres[which[sl]] + rng.standard_normal((sl.stop - sl.start, dim), dtype=np.float32)
    safety = rng.gamma(2.0, 1.0, n)
    return x, safety


def build_store(root: Path, n: int, distinct: int, seed: int = 0) -> "object":
    """A SceneStore of ``n`` scenes: ``distinct`` world scenes tiled with fresh scene ids."""
    from autoscale_core.store import SceneStore
    from autoscale_core.world import generate_world

    base = generate_world(min(distinct, n), seed=seed)
    store = SceneStore(root)
    ids = np.asarray(base.meta["scene_id"], dtype=object)
    for rep, start in enumerate(range(0, n, len(base))):
        part = base.subset(slice(0, min(len(base), n - start)))
        part.meta["scene_id"] = np.array([f"{s}-r{rep}" for s in ids[: len(part)]], dtype=object)
        store.append(part)
    return store


def embed_from_store(store, batch: int) -> np.ndarray:
    """Stream the store in batches through the hand-crafted features; standardize at the end."""
    from autoscale_core.representation.handcrafted import HandcraftedFeatures

    ids = store.scene_ids()
    parts = []
    for start in range(0, len(ids), batch):
        parts.append(HandcraftedFeatures.raw(store.load(ids[start:start + batch])).astype(np.float32))
    raw = np.concatenate(parts)
    mean, std = raw.mean(0), raw.std(0)
    return (raw - mean) / np.where(std > 1e-6, std, 1.0)


def embed_graph_rae_from_store(store, batch: int, model) -> np.ndarray:
    """Stream the store in batches through a fitted Graph-RAE (the product's default encoder)."""
    ids = store.scene_ids()
    return np.concatenate([model.transform(store.load(ids[s:s + batch])) for s in range(0, len(ids), batch)])


def knn_stage(x: np.ndarray, k: int) -> dict:
    """Index the normalized embeddings and find every scene's k + 1 nearest (itself included)."""
    from autoscale_core.representation import KnnIndex

    index = KnnIndex(expected_queries=len(x)).fit(x)
    if index.built_kind == "ivf":
        dist, idx = index.search(x, k + 1)  # grouped search: one pass, no per-query scans
    else:  # exact: stream the queries so the (chunk, n) distance blocks stay bounded
        parts = [index.search(x[s:s + SEARCH_CHUNK], k + 1) for s in range(0, len(x), SEARCH_CHUNK)]
        dist, idx = np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])
    return {"index_kind": index.built_kind, "reason": index.reason, "index": index, "neighbours": (dist, idx),
            "grouped": index.uses_grouped_search(len(x))}


def rarity_agreement(scorer, x: np.ndarray, approx_r: np.ndarray, sample: int = 1000) -> float:
    """Spearman correlation of R from the index's neighbours vs exact neighbours, on a sample."""
    import faiss
    from scipy.stats import spearmanr

    pick = np.sort(np.random.default_rng(1).choice(len(x), min(sample, len(x)), replace=False))
    d2, idx = faiss.knn(x[pick], x, scorer.k + 1)
    exact = scorer.rarity(x[pick], self_index=pick, neighbours=(np.sqrt(np.maximum(d2, 0)), idx))
    return float(spearmanr(exact, approx_r[pick]).statistic)


def allocate_stage(labels: np.ndarray, budget: int, seed: int = 0) -> np.ndarray:
    from autoscale_core.selection.allocation import greedy_allocate

    caps = np.bincount(labels)
    rng = np.random.default_rng(seed)
    scale, rate = rng.uniform(0.5, 2.0, len(caps)), rng.uniform(0.2, 2.0, len(caps)) * max(1, budget // len(caps))
    curves = [(lambda m, a=a, c=c: a * (1.0 - np.exp(-np.asarray(m, dtype=np.float64) / c))) for a, c in zip(scale, rate)]
    return greedy_allocate(curves, caps, budget)


def run_size(n: int, args) -> dict:
    """All stages at size ``n`` (runs inside the per-size subprocess)."""
    from autoscale_core.representation import SceneClusterer
    from autoscale_core.representation.value import ValueScorer

    out: dict = {"n": n, "stages": {}}
    st = out["stages"]
    if n <= args.store_max:
        tmp = Path(tempfile.mkdtemp(prefix="bench-scale-store-"))
        try:
            t0 = time.perf_counter()
            store = build_store(tmp / "store", n, args.store_distinct)
            out["store_build_seconds"] = round(time.perf_counter() - t0, 2)
            out["store_bytes"] = sum(p.stat().st_size for p in (tmp / "store").rglob("*") if p.is_file())
            with Stage(st, "embed"):
                feats = embed_from_store(store, args.batch)
            out["embed_dim"] = int(feats.shape[1])
            st["embed"]["kind"] = "measured (handcrafted features streamed from the scene store)"
            from autoscale_core.representation import GraphRAE

            t0 = time.perf_counter()  # fitting is a one-off on a sample, not a per-scene cost
            rae = GraphRAE(num_threads=None).fit(store.load(store.scene_ids()[:1000]), steps=20, seed=0)
            out["graph_rae_fit_seconds"] = round(time.perf_counter() - t0, 2)
            with Stage(st, "embed_graph_rae"):
                embed_graph_rae_from_store(store, args.batch, rae)
            st["embed_graph_rae"]["kind"] = "measured (Graph-RAE transform streamed from the scene store)"
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    from autoscale_core.representation.value import normalize_embeddings

    x, safety = synthetic_embeddings(n)
    with Stage(st, "knn"):
        x_unit = normalize_embeddings(x)
        knn = knn_stage(x_unit, K_NEIGHBOURS)
    st["knn"].update(index_kind=knn["index_kind"], reason=knn["reason"], grouped_search=knn["grouped"])
    st["knn"]["recall_at_10"] = round(knn["index"].recall(k=10, sample=1000), 4)
    with Stage(st, "cluster"):
        clusterer = SceneClusterer(k=args.clusters, seed=0).fit(x)
    with Stage(st, "value"):
        scorer = ValueScorer(k=K_NEIGHBOURS).fit(x, safety, index=knn["index"])
        scores = scorer.score(x, exclude_self=True, neighbours=knn["neighbours"])
    st["value"].update(index_kind=scorer.index_.built_kind, hazard_index_kind=scorer.hazard_index_.built_kind,
                       reuses_knn_index=scorer.index_ is knn["index"])
    st["knn"]["rarity_spearman_vs_exact"] = round(rarity_agreement(scorer, x_unit, scores["R"]), 4)
    assert np.isfinite(scores["Q"]).all()
    del knn, x_unit
    with Stage(st, "allocate"):
        counts = allocate_stage(clusterer.labels_, max(1, n // 10))
    assert counts.sum() == max(1, n // 10)
    # ru_maxrss follows the resettable high-water mark, so take the largest stage peak too.
    stage_peaks = [s["peak_rss_mb"] for s in st.values() if "peak_rss_mb" in s]
    out["peak_rss_mb"] = round(max([resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, *stage_peaks]), 1)
    return out


def run_writeback(n: int) -> dict:
    """set_values vs staged_write of 4 float fields on ``n`` samples (a private database)."""
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        os.environ["FIFTYONE_DATABASE_DIR"] = tempfile.mkdtemp(prefix="bench-scale-db-")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    import fiftyone as fo

    from fiftyone_plugin.engine.safe_write import staged_write

    name = f"bench-scale-writeback-{os.getpid()}"
    dataset = fo.Dataset(name)
    try:
        t0 = time.perf_counter()
        ids = [f"scene-{i:07d}" for i in range(n)]
        dataset.add_samples([fo.Sample(filepath=f"/nonexistent/{s}.png", scene_id=s) for s in ids], progress=False)
        dataset.create_index("scene_id", unique=True)
        out = {"n": n, "create_seconds": round(time.perf_counter() - t0, 2)}
        rng = np.random.default_rng(0)
        values = {f"value_{c}": rng.random(n) for c in "srqu"}
        t0 = time.perf_counter()
        for field, v in values.items():
            dataset.set_values(field, dict(zip(ids, v.tolist())), key_field="scene_id")
        out["set_values_4_fields_seconds"] = round(time.perf_counter() - t0, 2)
        staged = {f"staged_{c}": rng.random(n) for c in "srqu"}
        t0 = time.perf_counter()
        staged_write(dataset, "bench", staged, ids)
        out["staged_write_4_fields_seconds"] = round(time.perf_counter() - t0, 2)
        dataset.reload()
        assert np.allclose(dataset.values("staged_q"), staged["staged_q"])
        return out
    finally:
        dataset.delete()


# ---------------------------------------------------------------------------------- driver
def machine_info() -> dict:
    info = {"nproc": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version()}
    try:
        info["cpu_model"] = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo")
                                 if line.startswith("model name"))
    except (OSError, StopIteration):
        info["cpu_model"] = platform.processor()
    try:
        info["mem_total_gb"] = round(int(next(line.split()[1] for line in open("/proc/meminfo")
                                              if line.startswith("MemTotal"))) / 2**20, 1)
    except (OSError, StopIteration):
        pass
    try:
        info["cpu_affinity"] = len(os.sched_getaffinity(0))
    except AttributeError:
        pass
    info["load_average_at_start"] = [round(v, 2) for v in os.getloadavg()]
    import faiss
    import torch

    info["faiss_threads"] = faiss.omp_get_max_threads()
    info["torch"] = torch.__version__
    return info


def _child(flag: str, n: int, args) -> dict:
    cmd = [sys.executable, __file__, flag, str(n), "--store-max", str(args.store_max), "--store-distinct",
           str(args.store_distinct), "--batch", str(args.batch), "--clusters", str(args.clusters)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"size {n} failed:\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def exponent(ns, ts) -> float | None:
    pairs = [(n, t) for n, t in zip(ns, ts) if t and t > 0]
    if len(pairs) < 2:
        return None
    ln, lt = np.log([p[0] for p in pairs]), np.log([p[1] for p in pairs])
    return round(float(np.polyfit(ln, lt, 1)[0]), 3)


def summarize(runs: list[dict]) -> dict:
    ns = [r["n"] for r in runs]
    measured = [r for r in runs if "embed" in r["stages"]]
    per_scene = None
    if measured:
        ref = max(measured, key=lambda r: r["n"])
        per_scene = ref["stages"]["embed"]["seconds"] / ref["n"]
    rae_per_scene = ref["stages"]["embed_graph_rae"]["seconds"] / ref["n"] if measured and \
        "embed_graph_rae" in ref["stages"] else None
    for r in runs:
        if "embed" not in r["stages"] and per_scene is not None:
            r["stages"]["embed"] = {"seconds": round(per_scene * r["n"], 1),
                                    "kind": f"extrapolated linearly from the measured {ref['n']} scenes"}
        if "embed_graph_rae" not in r["stages"] and rae_per_scene is not None:
            r["stages"]["embed_graph_rae"] = {"seconds": round(rae_per_scene * r["n"], 1),
                                              "kind": f"extrapolated linearly from the measured {ref['n']} scenes"}
        stages = r["stages"]
        rest = sum(stages[s]["seconds"] for s in ("knn", "cluster", "value", "allocate") if s in stages)
        r["pipeline_seconds"] = round(rest + stages.get("embed", {}).get("seconds", 0.0), 1)
        if "embed_graph_rae" in stages:
            r["pipeline_graph_rae_seconds"] = round(rest + stages["embed_graph_rae"]["seconds"], 1)
    names = ("embed", "embed_graph_rae", "knn", "cluster", "value", "allocate")
    growth = {s: exponent(ns, [r["stages"].get(s, {}).get("seconds") for r in runs]) for s in names}
    for name in ("embed", "embed_graph_rae"):
        growth[name] = exponent([r["n"] for r in measured], [r["stages"].get(name, {}).get("seconds") for r in measured])
    return {"growth_exponent": growth,
            "max_peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
            "pipeline_seconds": {r["n"]: r["pipeline_seconds"] for r in runs}}


def markdown(result: dict) -> str:
    m = result["machine"]
    lines = [
        "# Scale benchmark",
        "",
        f"Command: `{result['command']}`  ",
        f"Machine: {m.get('cpu_model')} · {m.get('nproc')} CPUs (affinity {m.get('cpu_affinity')}) · "
        f"{m.get('mem_total_gb')} GB RAM · load average at start {m.get('load_average_at_start')} · "
        f"faiss threads {m.get('faiss_threads')} · {m.get('platform')}  ",
        f"Date: {result['date']}",
        "",
        "Seconds (peak RSS MB) per stage; knn/cluster/value/allocate on synthetic 128-d embeddings, embed on real "
        "world scenes from the scene store (extrapolated where marked *). The pipeline is the sum of all five "
        "stages; value reuses the knn stage's index and neighbours. knn quality on 1,000 sampled queries against "
        "exact search: recall@10 and the Spearman correlation ρ of rarity R (approximate vs exact neighbours).",
        "",
        "| scenes | embed | knn (index, recall@10, ρ of R) | cluster | value | allocate | pipeline | process peak MB | "
        "Graph-RAE embed | pipeline with Graph-RAE |",
        "|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in result["runs"]:
        s = r["stages"]

        def cell(name, s=s):
            if name not in s:
                return "–"
            star = "*" if "extrapolated" in s[name].get("kind", "") else ""
            peak = f" ({s[name]['peak_rss_mb']:.0f})" if "peak_rss_mb" in s[name] else ""
            return f"{s[name]['seconds']:.1f}{star}{peak}"

        knn = (f"{cell('knn')} {s['knn']['index_kind']}{' grouped' if s['knn'].get('grouped_search') else ''}, "
               f"{s['knn']['recall_at_10']}, {s['knn'].get('rarity_spearman_vs_exact')}")
        lines.append(f"| {r['n']:,} | {cell('embed')} | {knn} | {cell('cluster')} | {cell('value')} | "
                     f"{cell('allocate')} | {r['pipeline_seconds']:.1f} | {r['peak_rss_mb']:.0f} | "
                     f"{cell('embed_graph_rae')} | {r.get('pipeline_graph_rae_seconds', '–')} |")
    g = result["summary"]["growth_exponent"]
    lines += ["", "Growth exponents (time ∝ n^e; n/a: fewer than two measured sizes): "
              + ", ".join(f"{k} {'n/a' if v is None else v}" for k, v in g.items()), ""]
    wb = result.get("writeback")
    if wb:
        lines += [f"Write-back of {wb['n']:,} samples, 4 float fields: plain `set_values` "
                  f"{wb['set_values_4_fields_seconds']} s; crash-safe `staged_write` {wb['staged_write_4_fields_seconds']} s "
                  f"(target ≤ 10 s).", ""]
    t = result["targets"]
    lines += [f"Targets: 10^6 pipeline ≤ 600 s → {t.get('pipeline_1e6_seconds')} s ({t.get('pipeline_1e6_ok')}; "
              f"with Graph-RAE embeddings instead of hand-crafted features: {t.get('pipeline_graph_rae_1e6_seconds')} s); "
              f"peak ≤ 8 GB → {result['summary']['max_peak_rss_mb']:.0f} MB ({t.get('peak_ok')}); "
              f"write-back ≤ 10 s → {t.get('writeback_ok')}.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000,1000000")
    p.add_argument("--store-max", type=int, default=100_000, help="largest size embedded from a real scene store")
    p.add_argument("--store-distinct", type=int, default=1000, help="distinct world scenes in the store (tiled)")
    p.add_argument("--batch", type=int, default=1000, help="scenes per embed batch")
    p.add_argument("--clusters", type=int, default=16)
    p.add_argument("--writeback", type=int, default=100_000, help="samples for the write-back test (0: skip)")
    p.add_argument("--out", default=None, help="write <out>.json and <out>.md")
    p.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    p.add_argument("--writeback-worker", type=int, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.worker is not None:
        print(json.dumps(run_size(args.worker, args)))
        return 0
    if args.writeback_worker is not None:
        print(json.dumps(run_writeback(args.writeback_worker)))
        return 0

    sizes = sorted(int(s) for s in args.sizes.split(","))
    result = {"command": " ".join([os.path.relpath(sys.executable, REPO), "benchmarks/bench_scale.py", *(argv or sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "machine": machine_info(), "runs": []}
    for n in sizes:
        print(f"[bench_scale] size {n} ...", file=sys.stderr, flush=True)
        result["runs"].append(_child("--worker", n, args))
    result["summary"] = summarize(result["runs"])
    if args.writeback:
        print(f"[bench_scale] write-back of {args.writeback} samples ...", file=sys.stderr, flush=True)
        result["writeback"] = _child("--writeback-worker", args.writeback, args)
    big = next((r for r in result["runs"] if r["n"] == 1_000_000), None)
    result["targets"] = {
        "pipeline_1e6_seconds": big["pipeline_seconds"] if big else None,
        "pipeline_1e6_ok": (big["pipeline_seconds"] <= 600) if big else None,
        "pipeline_graph_rae_1e6_seconds": big.get("pipeline_graph_rae_seconds") if big else None,
        "peak_ok": result["summary"]["max_peak_rss_mb"] <= 8192,
        "writeback_ok": (result["writeback"]["staged_write_4_fields_seconds"] <= 10) if result.get("writeback") else None,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out + ".json").write_text(text + "\n")
        Path(args.out + ".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
