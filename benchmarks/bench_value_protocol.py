"""The value paper's Table 1 on the selection protocol's splits: top-B by S, R, U, S+R, R+U, S+R+U
and Q vs random (and hard-example mining as a reference), at one budget.

Same splits, schedule and signals as ``bench_selection_protocol.py`` (its committed full run):
world splits of seeds 100, 110, … (a log-like 10k pool, 1k base, balanced val and 2k balanced
test scenes of other seeds), a base planner trained on the base set whose pool signals every arm
uses (``selection_protocol._signals``: penultimate-feature embeddings, 1 − EPDMS, MC-dropout
uncertainty over 10 passes), and the protocol's training schedule (``--epochs`` 10, batch 128,
≥ 150 steps) for every final planner. The value scores are the one definition of
``autoscale_core.representation.value`` computed against the pool (as ``ClosedLoopSetup`` does):
S = max over the pool's 10 % most safety-critical scenes of exp(−d²/(2τs)), R = −log kNN density
(k = 20), U = the MC-dropout uncertainty, Q = S/σS + R/σR + U/σU; "X+Y" = X/σX + Y/σY; "S+R+U" is
the plain sum (to show what Q's σ normalisation does).

Each arm picks ``--budget`` pool scenes per training seed (random: a new draw per seed and split;
the others are deterministic); a planner is trained on base + picks and scored on test (reported
only; nothing here is tuned, and no hyper-parameter was chosen on these test scenes):

* EPDMS ×100 in closed-loop simulation, with a paired bootstrap over test scenes and training
  seeds within each split (pooled over splits) and a t-interval over the split means;
* L2 (m) between plan and logged future at 1 / 2 / 3 s and the open-loop collision rate at
  1 / 2 / 3 s (``bench_value_ablation.collision_rates``), t-intervals over the split × seed runs.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_value_protocol.py --executor process:2   # ~20 min
    .venv/bin/python benchmarks/bench_value_protocol.py --quick
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_value_ablation import collision_rates, pick  # noqa: E402
from results_io import write_result  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
ARMS = ("random", "hard_mining", "S", "R", "U", "S+R", "R+U", "S+R+U", "Q")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--splits", type=int, default=5)
    p.add_argument("--world-seed", type=int, default=100, help="split i uses world seed + 10 i (as the protocol)")
    p.add_argument("--pool", type=int, default=10_000)
    p.add_argument("--base", type=int, default=1_000)
    p.add_argument("--val", type=int, default=500)
    p.add_argument("--test", type=int, default=2_000)
    p.add_argument("--budget", type=int, default=1_000)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--steps", type=int, default=150)
    p.add_argument("--epochs", type=float, default=10.0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--mc-passes", type=int, default=10)
    p.add_argument("--bootstrap", type=int, default=1000)
    p.add_argument("--executor", default=None)
    p.add_argument("--out", default=RESULTS_DIR)
    p.add_argument("--name", default="value_protocol")
    p.add_argument("--quick", action="store_true", help="2 tiny splits, 2 seeds (checks the machinery, proves nothing)")
    args = p.parse_args(argv)
    if args.quick:
        args.splits, args.pool, args.base, args.val, args.test, args.budget = 2, 300, 60, 20, 80, 40
        args.seeds, args.steps, args.epochs, args.batch_size, args.mc_passes, args.bootstrap = "0,1", 10, 2.0, 32, 3, 200
        args.executor, args.name = args.executor or "serial", args.name + "_quick"
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if len(args.seeds) < 2:
        p.error("--seeds: the intervals need at least 2 training seeds")
    if not 0 < args.budget < args.pool:
        p.error(f"--budget must be in (0, pool = {args.pool})")
    return args


class TrainAndMeasure:
    """Picklable runner for one split: train on base + pool[indices] with the protocol's schedule,
    then score the test split. ``__call__(OracleTask)`` returns ``epdms`` (N,) per scene (0–1),
    ``l2_{1,2,3}s`` (m) and ``collision_{1,2,3}s`` (share of test scenes)."""

    def __init__(self, split, config):
        from autoscale_core.selection.oracle import PlannerOracle

        self.split = split
        self.oracle = PlannerOracle(split.base, split.pool, split.val, planner=config.planner, steps=config.steps,
                                    train_kwargs={"batch_size": config.batch_size}, epochs=config.epochs)

    def __call__(self, task) -> dict:
        from autoscale_core.planning.evaluate import evaluate_planner
        from autoscale_core.planning.train import train_planner
        from autoscale_core.selection.oracle import torch_threads

        batch, weights = self.oracle.training_set(np.asarray(task.indices, dtype=np.int64), None)
        with torch_threads(1):
            trained = train_planner(batch, planner=self.oracle.planner, sample_weight=weights, seed=int(task.seed),
                                    steps=self.oracle.steps_for(len(batch)), **self.oracle.train_kwargs)
            result = evaluate_planner(trained, self.split.test)
        out = {"epdms": np.asarray(result.scores["epdms"], dtype=np.float32)}
        out.update({k: float(np.nanmean(v)) for k, v in result.l2.items()})
        out.update(collision_rates(self.split.test, result.trajectories))
        return out


def split_pool(split, config):
    """The base planner's signals plus S/R/U/Q as one selection Pool (and what they cost)."""
    from autoscale_core.experiments.selection_protocol import _signals  # the protocol's own signals
    from autoscale_core.representation.pipeline import scene_safety
    from autoscale_core.representation.value import pool_value_scores
    from autoscale_core.selection.base import Pool

    t0 = time.perf_counter()
    signals, base_info = _signals(split, config)
    values = pool_value_scores(signals["pool_embeddings"], scene_safety(split.pool), signals["uncertainty"])
    scores = {"importance": signals["importance"], "uncertainty": signals["uncertainty"],
              **{f"value_{c}": values[c] for c in ("S", "R", "U", "Q")}}
    pool = Pool(split.pool.meta["scene_id"], embeddings=signals["pool_embeddings"], scores=scores)
    return pool, {**base_info, "signals_s": time.perf_counter() - t0}


def arm_picks(arm: str, pool, budget: int, split_index: int, seed: int) -> np.ndarray:
    if arm == "hard_mining":
        failure = pool.scores["importance"]
        return np.lexsort((np.arange(len(failure)), -failure))[:budget]
    if arm == "random":  # a new draw per split and training seed
        return pick("random", pool, budget, 1000 * split_index + seed)
    return pick(arm, pool, budget, seed)


def bootstrap_delta(arm: np.ndarray, ref: np.ndarray, replicates: int, seed: int = 0) -> list[float]:
    """95 % interval of mean(arm − ref) for (S, K, N) per-scene scores paired by split, seed and
    scene: per replicate, resample the N test scenes and the K seeds within every split."""
    diff = (np.asarray(arm, dtype=np.float64) - np.asarray(ref, dtype=np.float64)) * 100.0
    s, k, n = diff.shape
    rng = np.random.default_rng(seed)
    means = np.empty(replicates)
    for r in range(replicates):
        scenes = rng.integers(0, n, size=(s, n))
        seeds = rng.integers(0, k, size=(s, k))
        per_seed = np.take_along_axis(diff, scenes[:, None, :].repeat(k, 1), axis=2).mean(2)  # (S, K)
        means[r] = np.take_along_axis(per_seed, seeds, axis=1).mean()
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def t_interval(values) -> list[float] | None:
    from scipy.stats import t

    v = np.asarray(values, dtype=np.float64)
    if len(v) < 2:
        return None
    half = float(t.ppf(0.975, len(v) - 1) * v.std(ddof=1) / np.sqrt(len(v)))
    return [float(v.mean()) - half, float(v.mean()) + half]


def summarise(runs: dict, args) -> dict:
    """runs[(arm, split, seed)] → measured dict. Per arm: means, Δ vs random with intervals."""
    splits, seeds = sorted({k[1] for k in runs}), args.seeds
    per_scene = {arm: np.stack([np.stack([runs[(arm, s, k)]["epdms"] for k in seeds]) for s in splits]) for arm in ARMS}
    metrics = [m for m in runs[(ARMS[0], splits[0], seeds[0])] if m != "epdms"]
    table = {}
    for arm in ARMS:
        epdms = per_scene[arm].mean(2) * 100.0  # (S, K)
        row = {"epdms": float(epdms.mean()), "epdms_per_split": epdms.mean(1).tolist()}
        row.update({m: float(np.mean([runs[(arm, s, k)][m] for s in splits for k in seeds])) for m in metrics})
        if arm != "random":
            delta = epdms - per_scene["random"].mean(2) * 100.0
            row["epdms_minus_random"] = {
                "mean": float(delta.mean()), "per_split": delta.mean(1).tolist(),
                "ci95_bootstrap": bootstrap_delta(per_scene[arm], per_scene["random"], args.bootstrap),
                "ci95_over_splits": t_interval(delta.mean(1))}
            for m in metrics:
                d = [runs[(arm, s, k)][m] - runs[("random", s, k)][m] for s in splits for k in seeds]
                row[f"{m}_minus_random"] = {"mean": float(np.mean(d)), "ci95": t_interval(d)}
        table[arm] = row
    return {"table": table, "metrics": metrics}


def markdown(result: dict) -> str:
    cfg, table, metrics = result["config"], result["summary"]["table"], result["summary"]["metrics"]

    def ci(d, key):
        lo_hi = d.get(key)
        return f"{d['mean']:+.2f}" + (f" [{lo_hi[0]:+.2f}, {lo_hi[1]:+.2f}]" if lo_hi else "")

    lines = [f"# {result['name']}: value arms vs random on the selection protocol's splits", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}; wall {result['wall_s'] / 60:.1f} min; load before {result['load_before']}", "",
             f"{cfg['splits']} world splits (seeds {result['split_names']}) × training seeds {cfg['seeds']}; per split a "
             f"log-like pool of {cfg['pool']}, base {cfg['base']}, balanced test {cfg['test']} distinct generated scenes "
             f"(none tiled); budget {cfg['budget']} pool scenes; every planner trained with the protocol's schedule "
             f"(epochs {cfg['epochs']}, batch {cfg['batch_size']}, ≥ {cfg['steps']} steps). Signals: the base planner's "
             "real penultimate features, 1 − EPDMS and MC-dropout uncertainty. Nothing tuned on test.", "",
             "| arm | EPDMS | Δ vs random [bootstrap 95 %] | [t over splits] | per split Δ | "
             + " | ".join(metrics) + " |",
             "|---|---:|---:|---:|---|" + "---:|" * len(metrics)]
    for arm, row in table.items():
        if arm == "random":
            delta, t_ci, per = "", "", ""
        else:
            d = row["epdms_minus_random"]
            delta, t_ci = ci(d, "ci95_bootstrap"), ci(d, "ci95_over_splits").split(" ", 1)[-1]
            per = ", ".join(f"{x:+.1f}" for x in d["per_split"])
        cells = [f"{row[m]:.3f}" if arm == "random" else f"{row[m]:.3f} ({ci(row[m + '_minus_random'], 'ci95')})"
                 for m in metrics]
        lines.append(f"| {arm} | {row['epdms']:.2f} | {delta} | {t_ci} | {per} | " + " | ".join(cells) + " |")
    lines += ["", "L2 in m, collision rates as shares of test scenes; in brackets the difference to random with a "
              "95 % t-interval over the split × seed runs.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    from autoscale_core.executor import get_executor
    from autoscale_core.experiments import ProtocolConfig, WorldSplitSpec
    from autoscale_core.experiments.splits import make_world_split
    from autoscale_core.selection.oracle import OracleTask

    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    load, t0 = [round(x, 2) for x in os.getloadavg()], time.perf_counter()
    config = ProtocolConfig(budgets=(args.budget,), seeds=tuple(args.seeds), methods=(), steps=args.steps,
                            batch_size=args.batch_size, epochs=args.epochs, mc_passes=args.mc_passes)
    specs = [WorldSplitSpec(seed=args.world_seed + 10 * i, pool_size=args.pool, base_size=args.base,
                            val_size=args.val, test_size=args.test) for i in range(args.splits)]
    executor = get_executor(args.executor)
    splits = executor.map(make_world_split, specs)
    timings = {"splits_s": time.perf_counter() - t0}
    runs, base_info = {}, {}
    for index, split in enumerate(splits):
        pool, base_info[split.name] = split_pool(split, config)
        keys = [(arm, index, seed) for arm in ARMS for seed in args.seeds]
        tasks = [OracleTask(tuple(int(i) for i in arm_picks(arm, pool, args.budget, index, seed)), None, seed,
                            tag=f"{split.name}:{arm}:seed={seed}") for arm, _, seed in keys]
        outputs = executor.map(TrainAndMeasure(split, config), tasks)
        runs.update(dict(zip(keys, outputs)))
        print(json.dumps({"split": split.name, "done_s": round(time.perf_counter() - t0, 1)}), file=sys.stderr, flush=True)
    summary = summarise(runs, args)
    result = {
        "benchmark": "value_protocol", "name": args.name, "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{os.cpu_count()} CPUs, executor {executor!r}", "load_before": load,
        "wall_s": time.perf_counter() - t0, "config": {k: v for k, v in vars(args).items() if k not in ("out", "quick")},
        "split_names": [s.name for s in splits], "base": base_info, "timings_s": timings, "summary": summary,
        "what_it_ran_on": "distinct generated world scenes (no tiling); real planner features, trainings and "
                          "closed-loop EPDMS",
    }
    write_result(args.out, args.name, result, markdown(result))
    print(json.dumps({arm: round(row["epdms"], 2) for arm, row in summary["table"].items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
