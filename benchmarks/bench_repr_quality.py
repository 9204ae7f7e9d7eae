"""Representation quality per encoder (hand-crafted, Graph-RAE, error-pattern). Prints one JSON object.

    .venv/bin/python benchmarks/bench_repr_quality.py [--scenes 3000] [--quick] [--out FILE]

Scenes come from the embedded world; a regression planner is trained on the training split
(70 %) and its plans define each scene's safety descriptor: the soft-collision cost of the plan
in its representative error window (the semantics-aware AL descriptor, H = 5 steps, σ = 2 m).
Every encoder is fitted on the training split; the figures are computed on the held-out 30 %:

* embedding-safety consistency: Pearson r between embedding distance (L2-normalized embeddings)
  and the safety difference |Δs| over every scene's 10 nearest neighbours (the semantics-aware
  AL paper reports 0.36–0.44 for its encoder). The scale of s is not fixed by the paper, so r is
  given for s = log1p(descriptor) ("log1p"), for s = its percentile rank among the test scenes
  ("rank"), and for s = log1p of the cost over the whole 4 s plan ("horizon_log1p");
* cluster purity of k-means (k = number of labels) against the world's city / topology / event
  labels, next to the majority-label fraction (the purity of a single cluster);
* S/R/U/Q summary for each encoder (reference = the training split).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def consistency(emb: np.ndarray, safety: np.ndarray, k: int = 10) -> float:
    from autoscale_core.representation import KnnIndex

    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    dist, idx = KnnIndex("flat").fit(x).search(x, k + 1)
    dist, idx = dist[:, 1:], idx[:, 1:]  # drop self
    diff = np.abs(safety[:, None] - safety[idx])
    return float(np.corrcoef(dist.ravel(), diff.ravel())[0, 1])


def purity_table(emb: np.ndarray, meta: dict, seed: int) -> dict:
    from autoscale_core.representation import SceneClusterer, cluster_purity

    x = emb / np.linalg.norm(emb, axis=1, keepdims=True)
    out = {}
    for name, labels in meta.items():
        k = len(set(labels))
        labels_ = SceneClusterer(k=k, seed=seed).fit(x).labels_
        out[name] = {"k": k, "purity": round(cluster_purity(labels_, labels), 4),
                     "majority_fraction": round(Counter(labels.tolist()).most_common(1)[0][1] / len(labels), 4)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--planner-steps", type=int, default=400)
    parser.add_argument("--rae-steps", type=int, default=150)
    parser.add_argument("--error-steps", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2, help="torch / faiss threads")
    parser.add_argument("--quick", action="store_true", help="800 scenes, fewer steps")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if args.quick:
        args.scenes, args.planner_steps, args.rae_steps, args.error_steps = 800, 150, 60, 100

    import faiss
    import torch

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    from autoscale_core.planning import train_planner
    from autoscale_core.representation.pipeline import METHODS, embed_scenes, scene_safety, value_scores
    from autoscale_core.world import generate_world

    timings = {}
    t = time.perf_counter()
    batch = generate_world(args.scenes, seed=args.seed)
    timings["world_s"] = time.perf_counter() - t
    rng = np.random.default_rng(args.seed)
    train_mask = rng.random(len(batch)) < 0.7
    test = np.flatnonzero(~train_mask)
    t = time.perf_counter()
    planner = train_planner(batch.subset(np.flatnonzero(train_mask)), steps=args.planner_steps, seed=args.seed)
    timings["planner_train_s"] = time.perf_counter() - t
    plans = planner.plan(batch)
    from scipy.stats import rankdata

    from autoscale_core.representation import error_pattern_inputs

    descriptor = error_pattern_inputs(batch, plans)[1]
    safety = np.log1p(descriptor)
    safety_scales = {"log1p": safety[test], "rank": rankdata(descriptor[test]) / len(test),
                     "horizon_log1p": np.log1p(scene_safety(batch, plans))[test]}
    events = np.array([e.split(";")[0] if e else "none" for e in batch.meta["events"]], dtype=object)
    labels = {"city": batch.meta["city"][test], "topology": batch.meta["topology"][test], "event": events[test]}

    encoders = {}
    for method in METHODS:
        steps = {"graph_rae": args.rae_steps, "error_pattern": args.error_steps}.get(method)
        t = time.perf_counter()
        res = embed_scenes(batch, method, planner=planner, train_mask=train_mask, seed=args.seed, steps=steps)
        elapsed = time.perf_counter() - t
        scores, scorer = value_scores(res.embeddings, safety, train_mask=train_mask, mc_samples=res.mc_samples)
        encoders[method] = {
            "dim": int(res.embeddings.shape[1]),
            "fit_and_embed_s": round(elapsed, 2),
            "embedding_safety_consistency_r": {name: round(consistency(res.embeddings[test], v), 4)
                                               for name, v in safety_scales.items()},
            "cluster_purity": purity_table(res.embeddings[test], labels, args.seed),
            "value_scores_test": {k: {"mean": round(float(v[test].mean()), 4), "std": round(float(v[test].std()), 4)}
                                  for k, v in scores.items()},
            "safety_vs_S_spearman": round(_spearman(scores["S"][test], safety[test]), 4),
            "config": {k: v for k, v in res.config.items() if k != "final_loss"},
            "final_loss": res.config.get("final_loss"),
        }
    result = {
        "benchmark": "repr_quality",
        "scenes": len(batch), "train": int(train_mask.sum()), "test": len(test), "seed": args.seed,
        "safety": "soft-collision cost of the trained regression planner's plan in its error window (H=5, sigma 2 m)",
        "planner_steps": args.planner_steps, "threads": args.threads, "cpu_count": os.cpu_count(),
        "timings_s": {k: round(v, 2) for k, v in timings.items()},
        "encoders": encoders,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


if __name__ == "__main__":
    main()
