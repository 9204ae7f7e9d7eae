"""Value-score ablation (the paper's Table 1): top-m by S, R, U, S+R, R+U, S+R+U and Q vs random.

    .venv/bin/python benchmarks/bench_value_ablation.py --quick     # what was run here (≤ 5 min CPU)
    .venv/bin/python benchmarks/bench_value_ablation.py             # full: 3 splits × 3 seeds (the lead's to run)

Closed loop on the embedded world, on a fixed split set (``--splits`` seeded partitions into base /
pool / test): the current planner is trained on base; the pool's value scores are the one
definition of ``autoscale_core.representation.value`` computed by ``ClosedLoopSetup`` (S =
max_h exp(−d²/(2τs)) to the pool's 10 % most safety-critical scenes, R = −log kNN density (k = 20)
against the pool, U = tr(Cov) of K = 10 MC-dropout plans; embeddings = the current planner's
penultimate features). Each arm picks ``--budget`` pool scenes; a planner is retrained on base +
picks for every training seed and scored on the test split (reported only; nothing is tuned):

* L2 (m) between plan and logged future at 1 / 2 / 3 s;
* collision rate at 1 / 2 / 3 s: the share of test scenes whose planned ego box overlaps a logged
  agent's box at any planned pose up to that time (open loop, as nuScenes-style tables);
* EPDMS ×100 in closed-loop simulation.

Arms: subsets X+Y are Σ c/σc over those components (``ValueTopSelector``); "S+R+U" is the plain,
unnormalized sum S + R + U; "Q" is S/σS + R/σR + U/σU. Intervals: 95 % t-intervals over the
split × seed runs of each arm's difference to random on the same split and seed (paired).
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

ARMS = ("random", "S", "R", "U", "S+R", "R+U", "S+R+U", "Q")
COLLISION_TIMES = (1.0, 2.0, 3.0)


def collision_rates(batch, plans: np.ndarray) -> dict[str, float]:
    """Share of scenes whose planned box overlaps an agent's logged box by 1 / 2 / 3 s."""
    from autoscale_core.representation.error_encoder import agent_box_gaps

    steps = np.tile(np.arange(batch.future_steps), (len(batch), 1))
    if batch.agents.shape[1] == 0:
        return {f"collision_{t:g}s": 0.0 for t in COLLISION_TIMES}
    gap, valid = agent_box_gaps(batch, np.asarray(plans, dtype=np.float64), steps)
    hit = (valid & (gap <= 0.0)).any(-1)  # (S, T)
    return {f"collision_{t:g}s": float(hit[:, : int(round(t / batch.dt))].any(1).mean()) for t in COLLISION_TIMES}


def pick(arm: str, pool, budget: int, seed: int) -> np.ndarray:
    from autoscale_core.selection import RandomSelector, ValueTopSelector
    from autoscale_core.selection.base import Pool

    if arm == "random":
        return RandomSelector(seed=seed).select(pool, budget).indices
    if arm == "S+R+U":  # the plain sum, to show what the σ normalization of Q does
        raw = sum(pool.scores[f"value_{c}"] for c in "SRU")
        return ValueTopSelector().select(Pool(pool.scene_ids, scores={**pool.scores, "value_Q": raw}), budget).indices
    if arm == "Q":
        return ValueTopSelector().select(pool, budget).indices
    return ValueTopSelector(components=tuple(arm.split("+")), use_precomputed_q=False).select(pool, budget).indices


def evaluate(setup, indices: np.ndarray, seed: int) -> dict[str, float]:
    from autoscale_core.planning.evaluate import evaluate_planner
    from autoscale_core.planning.train import train_planner
    from autoscale_core.scene import SceneBatch
    from autoscale_core.selection.oracle import torch_threads

    batch = SceneBatch.concatenate([setup.base, setup.pool.subset(indices)])
    with torch_threads(1):
        trained = train_planner(batch, planner=setup.planner, seed=seed, steps=setup.steps, **setup.train_kwargs)
        result = evaluate_planner(trained, setup.test)
    out = {k: float(np.nanmean(v)) for k, v in result.l2.items()}
    out.update(collision_rates(setup.test, result.trajectories))
    out["epdms"] = 100.0 * float(np.mean(result.scores["epdms"]))
    return out


def t_interval(values: list[float]) -> dict:
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    mean = float(v.mean())
    if len(v) < 2:
        return {"mean": round(mean, 4), "ci95": None, "n": len(v)}
    half = float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return {"mean": round(mean, 4), "ci95": [round(mean - half, 4), round(mean + half, 4)], "n": len(v)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenes", type=int, default=1600)
    parser.add_argument("--budget", type=int, default=160)
    parser.add_argument("--splits", type=int, default=3, help="fixed split seeds 0..n-1")
    parser.add_argument("--seeds", type=int, default=3, help="training seeds per split")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--quick", action="store_true", help="900 scenes, budget 80, 1 split × 2 seeds, 80 steps")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    if args.quick:
        args.scenes, args.budget, args.splits, args.seeds, args.steps = 900, 80, 1, 2, 80

    import torch

    torch.set_num_threads(1)
    from autoscale_core.selection.experiment import ClosedLoopSetup, split_indices
    from autoscale_core.world import generate_world

    start = time.perf_counter()
    world = generate_world(args.scenes, seed=0)
    runs: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    for split in range(args.splits):
        parts = split_indices(len(world), {"base": 0.2, "pool": 0.55, "test": 0.25}, seed=split)
        base, pool_batch, test = (world.subset(parts[k]) for k in ("base", "pool", "test"))
        setup = ClosedLoopSetup(base, pool_batch, test, test, steps=args.steps, train_kwargs={"batch_size": 64},
                                seed=split).prepare()
        pool = setup.make_pool("topology")
        for seed in range(args.seeds):
            for arm in ARMS:
                metrics = evaluate(setup, pick(arm, pool, args.budget, seed), seed)
                runs[arm].append({"split": split, "seed": seed, **metrics})
            print(json.dumps({"split": split, "seed": seed, "done": round(time.perf_counter() - start, 1)}),
                  file=sys.stderr, flush=True)

    metric_names = [k for k in runs["random"][0] if k not in ("split", "seed")]
    table = {}
    for arm in ARMS:
        table[arm] = {m: t_interval([r[m] for r in runs[arm]]) for m in metric_names}
        if arm != "random":
            table[arm]["minus_random"] = {m: t_interval([r[m] - q[m] for r, q in zip(runs[arm], runs["random"])])
                                          for m in metric_names}
    result = {
        "benchmark": "value_ablation",
        "scenes": args.scenes, "split_fractions": {"base": 0.2, "pool": 0.55, "test": 0.25},
        "budget": args.budget, "splits": args.splits, "training_seeds": args.seeds, "steps": args.steps,
        "quick": args.quick, "cpu_count": os.cpu_count(),
        "definitions": {"S": "max_h exp(-d^2/(2*0.5)) to the pool's top-10% soft-collision scenes (L2-normalized planner features)",
                        "R": "-log kNN density, k=20, against the pool", "U": "tr(Cov) of K=10 MC-dropout plans (xy)",
                        "Q": "S/sigma_S + R/sigma_R + U/sigma_U", "S+R+U": "plain unnormalized sum",
                        "X+Y": "X/sigma_X + Y/sigma_Y", "collision_ts": "planned box overlaps a logged agent box by t"},
        "table": table,
        "runs": runs,
        "seconds": round(time.perf_counter() - start, 1),
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
