"""The FiftyOne path at scale: the plugin's own functions (what the operators and the CLI call)
on a dataset of ``--scenes`` samples in a private embedded MongoDB. Prints JSON.

    .venv/bin/python benchmarks/bench_scale_plugin.py --scenes 100000 --out benchmarks/results/scale_plugin.json

Steps, each timed with the process's peak RSS after it:

* **create** — ``create_scene_dataset`` with the first ``--distinct`` scenes, then ``add_scenes``
  per further tile (no BEV rendering): scene store + samples. The scenes are ``--distinct``
  embedded-world scenes tiled with new scene ids (world generation itself is benchmarked in
  bench_world.py; its time is not counted).

Peak memory is per step (``VmHWM`` reset through ``/proc/self/clear_refs`` before each step).
* **embed** — ``compute_scene_embeddings(..., "handcrafted")``: above 50k scenes it streams the
  store chunk by chunk; writes ``emb_handcrafted``, the faiss index and the Brain similarity index
  and 2-D map (PCA).
* **cluster** — ``cluster_scenes`` (k-means, k = 16).
* **value** — ``compute_value_scores`` (S/R/U/Q; all-vs-all kNN rarity).
* **select** — ``select_active`` value top-m of 1 % of the scenes (tag, saved view, run).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_scale import _peak_mb, _reset_peak  # noqa: E402  (per-step peak RSS)


def tiles(n: int, distinct: int, seed: int = 0):
    """``distinct`` embedded-world scenes, yielded again and again with new scene ids up to ``n``."""
    from autoscale_core.world import generate_world

    base = generate_world(min(n, distinct), seed=seed)
    for rep, start in enumerate(range(0, n, len(base))):
        part = base.subset(slice(0, min(len(base), n - start)))
        part.meta["scene_id"] = np.array([f"{s}-r{rep}" for s in base.meta["scene_id"][: len(part)]], dtype=object)
        yield part


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=100_000)
    p.add_argument("--distinct", type=int, default=5_000)
    p.add_argument("--out", default=None)
    args = p.parse_args(argv)
    home = tempfile.mkdtemp(prefix="bench-scale-plugin-")
    os.environ.setdefault("AUTOSCALE_HOME", home)
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(home, "db")
    os.environ.setdefault("FIFTYONE_DATABASE_VALIDATION", "false")
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.representation import cluster_scenes, compute_scene_embeddings, compute_value_scores
    from fiftyone_plugin.engine.selection import select_active

    steps: dict[str, dict] = {}

    def timed(name, fn):
        local = _reset_peak()
        t0 = time.perf_counter()
        out = fn()
        steps[name] = {"seconds": round(time.perf_counter() - t0, 2), "peak_rss_mb": round(_peak_mb(), 1),
                       "peak_is_step_local": local}
        print(f"[bench_scale_plugin] {name}: {steps[name]}", file=sys.stderr, flush=True)
        return out

    name = f"bench-scale-plugin-{os.getpid()}"
    parts = tiles(args.scenes, args.distinct)
    first = next(parts)  # generating the world is not part of the timed step

    def create():
        dataset = scenes.create_scene_dataset(name, first, render_images=False)
        for part in parts:  # one tile at a time: bounded memory
            scenes.add_scenes(dataset, part, render=False)
        return dataset

    ds = timed("create", create)
    try:
        emb = timed("embed", lambda: compute_scene_embeddings(ds, "handcrafted", viz_method="pca"))
        timed("cluster", lambda: cluster_scenes(ds, "handcrafted", k=16))
        timed("value", lambda: compute_value_scores(ds, "handcrafted"))
        budget = max(1, args.scenes // 100)
        timed("select", lambda: select_active(ds, "bench-top", budget, method="value_topm"))
        assert ds.count("value_q") == args.scenes and len(ds.match_tags("sel:bench-top")) == budget
        import faiss

        result = {
            "benchmark": "scale_plugin", "command": " ".join(["benchmarks/bench_scale_plugin.py", *(argv or sys.argv[1:])]),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "machine": {"nproc": os.cpu_count(), "platform": platform.platform(), "faiss_threads": faiss.omp_get_max_threads(),
                        "load_average_at_end": [round(v, 2) for v in os.getloadavg()]},
            "scenes": args.scenes, "distinct_scenes": args.distinct, "steps": steps,
            "embed_streamed": bool(emb.get("num_scenes", 0) > 50_000), "index_kind": emb.get("index_kind"),
            "total_seconds_after_create": round(sum(s["seconds"] for k, s in steps.items() if k != "create"), 1),
        }
    finally:
        scenes.delete_scene_dataset(name)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
