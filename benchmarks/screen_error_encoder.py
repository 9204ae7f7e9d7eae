"""Screen error-pattern encoder settings on a VALIDATION world; never on the test scenes.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/screen_error_encoder.py --cache /tmp/val1.npz \
        --sizes 700 --seeds 0 1 2 --checkpoints 400 800 1500 > screen.jsonl

The validation scenes come from the embedded world with ``--world-seed`` (default 1), while
``bench_repr_quality.py`` reports ρ on world seed 0's held-out test scenes: the two share no scene
and no planner. Recipe as in the bench: the first ``--planner-scenes`` of a seeded permutation train
the regression planner (400 steps); the rest are split into an encoder-training pool (the first
``--pool`` rows, of which the first n train a size-n encoder) and ``--val`` validation scenes where
ρ_S and ρ_kNN are measured exactly as the bench does (``safety_predictions``).

The training loop is ``ErrorPatternEncoder``'s (same scaling, rank descriptors, initialization,
optimizer and minibatch order for a seed), with embeddings taken at several ``--checkpoints`` of
one run, so "400 vs 1,500 steps" is one training, not two. ``--probe`` also fits raw-token kNN
(k = 20, RMS-scaled tokens) and gradient-boosted regressors: what the deviation tokens carry about
s without any encoder. One JSON object per line on stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))


def build_cache(path: Path, world_seed: int, planner_scenes: int, rest: int) -> None:
    from autoscale_core.planning import train_planner
    from autoscale_core.representation import error_pattern_inputs, safety_descriptors
    from autoscale_core.world import generate_world

    batch = generate_world(planner_scenes + rest, seed=world_seed)
    order = np.random.default_rng(world_seed).permutation(len(batch))
    planner = train_planner(batch.subset(order[:planner_scenes]), steps=400, seed=world_seed)
    b = batch.subset(order[planner_scenes:])
    plans = np.asarray(planner.plan(b))
    tokens, start = error_pattern_inputs(b, plans)
    np.savez(path, plans=plans, logged=b.expert_trajectory(), tokens=tokens, start=start,
             safety=safety_descriptors(b, plans, start))


def supcon_loss_fn(desc_train: np.ndarray, temperature: float, quantile: float):
    import torch
    from scipy.stats import rankdata

    from autoscale_core.representation.error_encoder import supervised_contrastive_loss

    d = torch.from_numpy((rankdata(desc_train) / len(desc_train)).astype(np.float32))
    return lambda z, idx: supervised_contrastive_loss(z, d[idx], temperature, quantile)


def train_with_checkpoints(tokens, safety, train, checkpoints, seed, *, lr=1e-3, batch=128, dropout=0.1,
                           temperature=0.07, quantile=0.1):
    """ErrorPatternEncoder's fit loop; yields (step, embeddings of all rows, recent mean SupCon loss)."""
    import torch

    from autoscale_core.representation.error_encoder import _ErrorTransformer

    x = np.asarray(tokens, np.float32)
    scale = np.maximum(np.sqrt((x[train].reshape(-1, x.shape[2]) ** 2).mean(0)), 1e-3).astype(np.float32)
    X = torch.from_numpy(x / scale)
    loss_fn = supcon_loss_fn(safety[train], temperature, quantile)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    net = _ErrorTransformer(x.shape[2], x.shape[1], 128, 4, 2, 128, dropout)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    Xtr, bs, recent = X[train], min(batch, len(train)), []
    checkpoints = sorted(set(checkpoints))
    if checkpoints and checkpoints[0] == 0:
        net.eval()
        with torch.no_grad():
            yield 0, net(X).numpy(), float("nan")
    net.train()
    for step in range(1, max(checkpoints) + 1):
        idx = torch.randperm(len(train), generator=gen)[:bs]
        loss = loss_fn(net(Xtr[idx]), idx)
        opt.zero_grad()
        loss.backward()
        opt.step()
        recent = (recent + [float(loss.detach())])[-50:]
        if step in checkpoints:
            net.eval()
            with torch.no_grad():
                yield step, net(X).numpy(), float(np.mean(recent))
            net.train()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world-seed", type=int, default=1)
    parser.add_argument("--planner-scenes", type=int, default=2000)
    parser.add_argument("--pool", type=int, default=7000)
    parser.add_argument("--val", type=int, default=2000)
    parser.add_argument("--cache", required=True, help="npz of plans / tokens / safety (built if missing)")
    parser.add_argument("--sizes", type=int, nargs="+", default=[70, 700])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--checkpoints", type=int, nargs="+", default=[0, 400, 1500], help="0 = untrained")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--dropout", type=float, default=0.1)
    parser.add_argument("--quantile", type=float, default=0.1)
    parser.add_argument("--probe", action="store_true", help="raw-token kNN and GBR probes instead of encoders")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)
    from bench_repr_quality import safety_predictions, spearman_rows

    cache = Path(args.cache)
    if not cache.exists():
        build_cache(cache, args.world_seed, args.planner_scenes, args.pool + args.val)
    data = np.load(cache)
    tokens, safety = data["tokens"], data["safety"]
    pool, val = np.arange(args.pool), np.arange(args.pool, args.pool + args.val)

    if args.probe:
        from sklearn.ensemble import HistGradientBoostingRegressor
        from sklearn.neighbors import KNeighborsRegressor

        flat = tokens.reshape(len(tokens), -1)
        for n in args.sizes:
            tr = pool[:n]
            sc = np.sqrt((flat[tr] ** 2).mean(0)) + 1e-3
            knn = KNeighborsRegressor(20).fit(flat[tr] / sc, safety[tr]).predict(flat[val] / sc)
            gbr = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.05).fit(flat[tr], safety[tr]).predict(flat[val])
            print(json.dumps({"probe": "raw tokens", "n": n, "rho_knn20": round(float(spearman_rows(knn, safety[val])), 3),
                              "rho_gbr": round(float(spearman_rows(gbr, safety[val])), 3)}), flush=True)
        return

    settings = {"lr": args.lr, "batch": args.batch, "dropout": args.dropout, "quantile": args.quantile}
    for n in args.sizes:
        for seed in args.seeds:
            t = time.perf_counter()
            for step, z, loss in train_with_checkpoints(tokens, safety, pool[:n], args.checkpoints, seed, **settings):
                pred = safety_predictions(z, safety, pool[:n], val)
                print(json.dumps({"n": n, "seed": seed, "steps": step, **settings,
                                  "rho_S": round(float(spearman_rows(pred["S"], safety[val])), 3),
                                  "rho_knn": round(float(spearman_rows(pred["knn"], safety[val])), 3),
                                  "supcon_last50": round(loss, 3), "chance_loss": round(float(np.log(min(args.batch, n) - 1)), 3),
                                  "elapsed_s": round(time.perf_counter() - t, 1)}), flush=True)


if __name__ == "__main__":
    main()
