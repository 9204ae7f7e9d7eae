"""Does the error-pattern encoder learn safety from deviations alone? Prints one JSON object.

    .venv/bin/python benchmarks/bench_repr_quality.py --quick --out benchmarks/results/repr_quality.json
    .venv/bin/python benchmarks/bench_repr_quality.py --out ...      # full: sizes 70 / 700 / 7,000, 3 seeds

Scenes come from the embedded world, split into disjoint parts: a planner split (the regression
planner is trained there), an encoder-training pool and a held-out test set. Every scene's
safety descriptor is s = exp(−d_min/σ) (σ = 2 m, d_min = the planned ego's smallest box gap to an
agent in its error window; ``safety_descriptors``). The error-pattern encoder sees only the
plan-vs-log deviation tokens; s defines its SupCon positives during training only.

ρ, per encoder, on the held-out scenes (Spearman, both definitions reported):

* ``rho_S`` ("as the current bench"): Spearman(S, s) where S = max_h exp(−||z − z_h||²/(2τs))
  is the ValueScorer safety proximity of a test embedding z to the hazard set H (the 10 % of the
  encoder-training scenes with the highest s), τs = 0.5 on L2-normalized embeddings;
* ``rho_knn``: Spearman(ŝ, s) where ŝ = the mean s of the 20 nearest encoder-training scenes
  (cosine) — the embedding's kNN safety prediction.

Encoders: error-pattern trained (SupCon, τ = 0.07, 128-d), the same architecture untrained
(random init, same seed), hand-crafted scene features and Graph-RAE (fitted on the largest
training size). Intervals: 95 % percentile bootstrap over test scenes (``--boot`` resamples; the
seed-mean ρ is recomputed per resample, and trained − untrained is paired on the same resample).
Per size the JSON also records the SupCon loss on the first minibatch (``initial_supcon``, before
any update), on the last (``final_supcon``) and log(B − 1) (``supcon_chance``, all logits equal), to
show whether training organized the embedding at all. Settings are screened on another world, never
on these test scenes: ``screen_error_encoder.py`` and ``results/repr_quality_screen.md``; the
encoder's default training length (clip(training scenes, 1,500, 5,000) steps) was chosen there.
``--quick`` keeps 150 steps so it stays a few-minute smoke run: its ρ is not the method's.
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


def safety_predictions(emb: np.ndarray, safety: np.ndarray, train: np.ndarray, test: np.ndarray) -> dict:
    """The two embedding-derived safety predictions for the test rows: {"S": (m,), "knn": (m,)}."""
    from autoscale_core.representation import KnnIndex, ValueScorer, normalize_embeddings

    S = ValueScorer().fit(emb[train], safety[train]).score(emb[test])["S"]
    x = normalize_embeddings(emb)
    _, idx = KnnIndex("flat").fit(x[train]).search(x[test], 20)
    return {"S": S, "knn": safety[train][idx].mean(1)}


def spearman_rows(pred: np.ndarray, truth: np.ndarray) -> float:
    """Spearman ρ along the last axis (ranks, then Pearson); pred, truth (..., m)."""
    from scipy.stats import rankdata

    a, b = rankdata(pred, axis=-1), rankdata(truth, axis=-1)
    a, b = a - a.mean(-1, keepdims=True), b - b.mean(-1, keepdims=True)
    return (a * b).sum(-1) / np.sqrt((a * a).sum(-1) * (b * b).sum(-1))


def summarize(preds: list[np.ndarray], truth: np.ndarray, boot: np.ndarray) -> dict:
    """ρ of the seed-mean and its bootstrap samples; preds: per-seed (m,) predictions."""
    point = float(np.mean([spearman_rows(p, truth) for p in preds]))
    samples = np.mean([spearman_rows(p[boot], truth[boot]) for p in preds], axis=0)  # (B,)
    return {"rho": round(point, 4), "ci95": [round(float(q), 4) for q in np.quantile(samples, [0.025, 0.975])],
            "_samples": samples}


def paired_difference(a: dict, b: dict) -> dict:
    diff = a["_samples"] - b["_samples"]
    return {"diff": round(a["rho"] - b["rho"], 4), "ci95": [round(float(q), 4) for q in np.quantile(diff, [0.025, 0.975])]}


def strip(d):
    if isinstance(d, dict):
        return {k: strip(v) for k, v in d.items() if not k.startswith("_")}
    return d


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[70, 700, 7000], help="encoder training sizes")
    parser.add_argument("--seeds", type=int, default=3, help="encoder seeds per size")
    parser.add_argument("--planner-scenes", type=int, default=2000)
    parser.add_argument("--test-scenes", type=int, default=1500)
    parser.add_argument("--planner-steps", type=int, default=400)
    parser.add_argument("--encoder-steps", type=int, default=None,
                        help="SupCon steps; default ErrorPatternEncoder.default_steps(size) = clip(size, 1500, 5000), "
                             "chosen on a validation world")
    parser.add_argument("--rae-steps", type=int, default=150)
    parser.add_argument("--boot", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch / faiss threads")
    parser.add_argument("--quick", action="store_true", help="smoke run: sizes 70 / 700, 2 seeds, 600 planner / 1000 test scenes, 150 encoder steps")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if args.quick:
        args.sizes, args.seeds, args.planner_scenes, args.test_scenes = [70, 700], 2, 600, 1000
        args.planner_steps, args.encoder_steps, args.rae_steps = 200, 150, 60

    import faiss
    import torch

    faiss.omp_set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    from autoscale_core.planning import train_planner
    from autoscale_core.representation import (
        ErrorPatternEncoder,
        GraphRAE,
        HandcraftedFeatures,
        error_pattern_inputs,
        safety_descriptors,
    )
    from autoscale_core.world import generate_world

    timings: dict[str, float] = {}
    t = time.perf_counter()
    pool_size = max(args.sizes)
    batch = generate_world(args.planner_scenes + pool_size + args.test_scenes, seed=args.seed)
    order = np.random.default_rng(args.seed).permutation(len(batch))
    planner_rows = order[: args.planner_scenes]
    pool = order[args.planner_scenes : args.planner_scenes + pool_size]
    test = order[args.planner_scenes + pool_size :]
    timings["world_s"] = time.perf_counter() - t

    t = time.perf_counter()
    planner = train_planner(batch.subset(planner_rows), steps=args.planner_steps, seed=args.seed)
    timings["planner_train_s"] = time.perf_counter() - t
    plans = np.asarray(planner.plan(batch))
    tokens, start = error_pattern_inputs(batch, plans)
    safety = safety_descriptors(batch, plans, start)
    boot = np.random.default_rng(args.seed + 1).integers(0, len(test), size=(args.boot, len(test)))
    truth = safety[test]

    def score(emb_per_seed: list[np.ndarray], train: np.ndarray) -> dict:
        preds = [safety_predictions(e, safety, train, test) for e in emb_per_seed]
        return {f"rho_{k}": summarize([p[k] for p in preds], truth, boot) for k in ("S", "knn")}

    sizes = {}
    for size in args.sizes:
        train = pool[:size]
        t = time.perf_counter()
        trained, untrained, losses, initial = [], [], [], []
        steps = ErrorPatternEncoder.default_steps(size) if args.encoder_steps is None else args.encoder_steps
        for seed in range(args.seeds):
            kw = dict(num_threads=args.threads, batch_size=min(128, size))
            enc = ErrorPatternEncoder(**kw).fit(tokens[train], safety[train], steps=steps, seed=seed)
            trained.append(enc.transform(tokens))
            losses.append(enc.history_[-1]["supcon"])
            initial.append(enc.history_[0]["supcon"])  # the first minibatch, before any update
            untrained.append(ErrorPatternEncoder(**kw).fit(tokens[train], safety[train], steps=0, seed=seed).transform(tokens))
        entry = {"trained": score(trained, train), "untrained": score(untrained, train),
                 "final_supcon": [round(v, 3) for v in losses], "initial_supcon": [round(v, 3) for v in initial],
                 "supcon_chance": round(float(np.log(min(128, size) - 1)), 3), "encoder_steps": steps}
        entry["trained_minus_untrained"] = {k: paired_difference(entry["trained"][k], entry["untrained"][k])
                                            for k in ("rho_S", "rho_knn")}
        sizes[str(size)] = entry
        timings[f"error_pattern_{size}_s"] = time.perf_counter() - t
        print(json.dumps({str(size): strip(entry)}), file=sys.stderr, flush=True)

    train = pool
    baselines = {}
    t = time.perf_counter()
    baselines["handcrafted"] = score([HandcraftedFeatures().fit(batch.subset(train)).transform(batch)], train)
    timings["handcrafted_s"] = time.perf_counter() - t
    t = time.perf_counter()
    rae = GraphRAE(num_threads=args.threads).fit(batch.subset(train), steps=args.rae_steps, seed=args.seed)
    baselines["graph_rae"] = score([rae.transform(batch)], train)
    timings["graph_rae_s"] = time.perf_counter() - t

    result = {
        "benchmark": "repr_quality",
        "question": "held-out Spearman rho between an embedding-derived safety prediction and the safety descriptor",
        "safety": "s = exp(-d_min / 2 m), d_min = planned ego's smallest box gap to an agent in its error window "
                  "(window of 5 steps ending at t* = the step of largest plan-vs-log deviation)",
        "rho_definitions": {
            "rho_S": "Spearman(S, s), S = max over hazard scenes (top 10% s of the encoder-training set) of "
                     "exp(-||z - z_h||^2 / (2 * 0.5)) on L2-normalized embeddings (ValueScorer)",
            "rho_knn": "Spearman(mean s of the 20 nearest encoder-training scenes by cosine, s)"},
        "encoder_inputs": "error_pattern: deviation tokens only (lon/lat/heading error and their per-step change, time); "
                          "handcrafted / graph_rae: scene map + agents (baselines, no planner)",
        "scenes": {"planner": len(planner_rows), "encoder_pool": len(pool), "test": len(test)},
        "seeds": args.seeds, "encoder_steps": args.encoder_steps or "ErrorPatternEncoder.default_steps(size)", "planner_steps": args.planner_steps,
        "rae_steps": args.rae_steps, "bootstrap": args.boot, "quick": args.quick,
        "threads": args.threads, "cpu_count": os.cpu_count(),
        "error_pattern_by_training_size": strip(sizes),
        "baselines_at_largest_size": strip(baselines),
        "timings_s": {k: round(v, 1) for k, v in timings.items()},
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
