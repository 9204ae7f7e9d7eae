"""Representation throughput: embedding scenes/s per encoder and kNN value scoring at scale.
Prints one JSON object.

    .venv/bin/python benchmarks/bench_repr_speed.py [--quick] [--threads 2] [--out FILE]

* embed: scenes/s of ``transform`` for the hand-crafted features, Graph-RAE and the
  error-pattern encoder (after a short fit, whose time is reported separately) on world scenes.
  Error tokens come from constant-velocity plans (no planner training in this benchmark).
* rarity at 100k: S and R (ValueScorer: index build + kNN k=20 for every point + hazard
  proximity) for 100k "real-ish" 64-d embeddings: Graph-RAE embeddings of world scenes, each
  resampled with Gaussian noise (std = half the median nearest-neighbour distance per axis-norm)
  to reach 100k rows, because generating 100k world scenes is itself a long job.
* rarity at 1M: the same for 1M random N(0, I) 128-d vectors, end to end (target <= 10 min on 2
  cores). The index kind is chosen automatically (all-vs-all at 1M goes to IVF) and its recall@20
  against exact search on 500 queries is reported.
``--quick`` shrinks these to 20k and 150k rows (the latter still on the IVF path) and 400 scenes.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _rate(n: int, seconds: float) -> float:
    return round(n / max(seconds, 1e-9), 1)


def bench_embed(num_scenes: int, seed: int) -> tuple[dict, np.ndarray]:
    from autoscale_core.representation import (
        ErrorPatternEncoder,
        GraphRAE,
        HandcraftedFeatures,
        error_pattern_inputs,
        safety_descriptors,
    )
    from autoscale_core.world import generate_world

    batch = generate_world(num_scenes, seed=seed)
    out = {"scenes": len(batch)}
    t = time.perf_counter()
    hand = HandcraftedFeatures().fit(batch)
    fit = time.perf_counter() - t
    t = time.perf_counter()
    hand.transform(batch)
    out["handcrafted"] = {"fit_s": round(fit, 3), "scenes_per_s": _rate(len(batch), time.perf_counter() - t)}
    t = time.perf_counter()
    rae = GraphRAE().fit(batch, steps=60, seed=seed)
    fit = time.perf_counter() - t
    t = time.perf_counter()
    emb = rae.transform(batch)
    out["graph_rae"] = {"fit_s_60_steps": round(fit, 2), "scenes_per_s": _rate(len(batch), time.perf_counter() - t)}
    t = time.perf_counter()
    rae.sample(batch, 10)
    out["graph_rae"]["mc10_scenes_per_s"] = _rate(len(batch), time.perf_counter() - t)
    plans = _constant_velocity(batch)
    t = time.perf_counter()
    tokens, start = error_pattern_inputs(batch, plans)
    desc = safety_descriptors(batch, plans, start)
    prep = time.perf_counter() - t
    t = time.perf_counter()
    enc = ErrorPatternEncoder().fit(tokens, desc, steps=60, seed=seed)
    fit = time.perf_counter() - t
    t = time.perf_counter()
    enc.transform(tokens)
    out["error_pattern"] = {"fit_s_60_steps": round(fit, 2), "windows_and_descriptors_scenes_per_s": _rate(len(batch), prep),
                            "scenes_per_s": _rate(len(batch), time.perf_counter() - t)}
    return out, emb


def _constant_velocity(batch) -> np.ndarray:
    """(S, 8, 3) plans keeping the t0 speed and heading (plan quality does not affect throughput)."""
    h = batch.history_steps
    t = np.arange(1, batch.future_steps + 1) * batch.dt
    v, yaw = batch.ego[:, h, 3:4], batch.ego[:, h, 2:3]
    x, y = batch.ego[:, h, 0:1], batch.ego[:, h, 1:2]
    return np.stack([x + v * t * np.cos(yaw), y + v * t * np.sin(yaw), np.repeat(yaw, len(t), 1)], -1)


def bench_value(x: np.ndarray, seed: int, label: str) -> dict:
    from autoscale_core.representation import ValueScorer

    rng = np.random.default_rng(seed)
    safety = rng.random(len(x))
    t = time.perf_counter()
    scorer = ValueScorer(k=20).fit(x, safety)
    fit = time.perf_counter() - t
    t = time.perf_counter()
    scores = scorer.score(x, exclude_self=True)
    score = time.perf_counter() - t
    t = time.perf_counter()
    recall = scorer.index_.recall(k=20, sample=500, seed=seed)
    return {
        "data": label, "n": int(len(x)), "dim": int(x.shape[1]),
        "index_kind": scorer.index_.built_kind, "index_reason": scorer.index_.reason,
        "fit_s": round(fit, 2), "score_s": round(score, 2), "end_to_end_s": round(fit + score, 2),
        "recall_at_20_vs_exact": round(recall, 4), "recall_check_s": round(time.perf_counter() - t, 2),
        "R_mean": round(float(scores["R"].mean()), 4), "S_mean": round(float(scores["S"].mean()), 4),
    }


def realish(emb: np.ndarray, n: int, seed: int) -> np.ndarray:
    from autoscale_core.representation import KnnIndex

    rng = np.random.default_rng(seed)
    nn_dist = KnnIndex("flat").fit(emb).search(emb, 2)[0][:, 1]
    noise = 0.5 * float(np.median(nn_dist)) / np.sqrt(emb.shape[1])
    rows = rng.integers(len(emb), size=n)
    return (emb[rows] + noise * rng.standard_normal((n, emb.shape[1]))).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out")
    args = parser.parse_args()
    import faiss
    import torch

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    # quick: 150k random rows, enough to take the all-vs-all IVF path (> 1e10 pairs).
    scenes, n_real, n_random = (400, 20_000, 150_000) if args.quick else (2000, 100_000, 1_000_000)
    embed, emb = bench_embed(scenes, args.seed)
    real = bench_value(realish(emb, n_real, args.seed), args.seed, "graph_rae world embeddings resampled with noise")
    del emb
    rng = np.random.default_rng(args.seed)
    t = time.perf_counter()
    x = rng.standard_normal((n_random, 128), dtype=np.float32)
    gen = time.perf_counter() - t
    rand = bench_value(x, args.seed, "random N(0, I)")
    rand["generate_s"] = round(gen, 2)
    result = {"benchmark": "repr_speed", "quick": args.quick, "threads": args.threads, "cpu_count": os.cpu_count(),
              "embed": embed, "value_realish": real, "value_random": rand}
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
