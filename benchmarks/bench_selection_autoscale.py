"""AutoScale table: {real-only, all-synthetic, random-synthetic, AutoScale at 10/25/50 %} → test EPDMS.

Closed loop on the embedded world: real scenes are split into a real training set (base), two val
halves (tune, confirm) and test. A synthetic pool (``--per-parent`` × the real training set, ≥ 4×)
is generated from the real training scenes (SimScale perturbations + pseudo-expert labels). Each
arm adds synthetic scenes to the real training set; the planner is retrained (every ``--seeds``
seed) and scored on the real *test* split, which nothing is tuned on.

AutoScale as its paper describes: Graph-RAE embeddings (fitted on the real training scenes) of
the pool → k-means clusters → Cluster-GA cluster weights from closed-loop feedback on val-tune
(each candidate mixture scored with ``--eval-seeds`` training seeds) → per-cluster retrieval by
faiss vector search in the Graph-RAE space near the cluster centres and the current planner's
failure cases (real training scenes with the lowest EPDMS); the final mixture is chosen among the
best rounds on val-confirm. Differences to real-only and to all-synthetic are paired by
training seed (95 % t-intervals). Prints JSON; writes JSON, markdown and a PNG.

Full run (the lead's to run; hours on 2 cores):
    .venv/bin/python benchmarks/bench_selection_autoscale.py --scenes 600 --per-parent 4 \
        --fractions 0.1,0.25,0.5 --seeds 0,1,2 --rounds 4 --probes 2 --steps 300 --executor process:2
Quick (what was run here):
    .venv/bin/python benchmarks/bench_selection_autoscale.py --quick
CI smoke:
    .venv/bin/python benchmarks/bench_selection_autoscale.py --smoke
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench_selection_mosaic import RESULTS_DIR, _finite  # noqa: E402

from autoscale_core.selection import ClusterMixtureOptimizer, RandomSyntheticSelector, get_executor  # noqa: E402
from autoscale_core.selection.experiment import ClosedLoopSetup, split_indices  # noqa: E402
from autoscale_core.selection.oracle import OracleTask, run_oracle_task  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=600)
    p.add_argument("--world-seed", type=int, default=0)
    p.add_argument("--per-parent", type=int, default=4, help="synthetic scenes per real training scene")
    p.add_argument("--fractions", default="0.1,0.25,0.5", help="synthetic budgets as fractions of the pool")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--probes", type=int, default=2)
    p.add_argument("--clusters", type=int, default=6)
    p.add_argument("--failure-quantile", type=float, default=0.2, help="real training scenes with EPDMS below this quantile are failures")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--planner", default="regression")
    p.add_argument("--executor", default=None)
    p.add_argument("--out", default=RESULTS_DIR)
    p.add_argument("--name", default="selection_autoscale")
    p.add_argument("--eval-seeds", type=int, default=3, help="training seeds per candidate mixture")
    p.add_argument("--rae-steps", type=int, default=150)
    p.add_argument("--smoke", action="store_true")
    p.add_argument("--quick", action="store_true", help="160 real scenes, 2 seeds, 2 rounds, 40 steps")
    args = p.parse_args(argv)
    if args.quick:
        args.scenes, args.seeds, args.rounds, args.probes, args.steps, args.rae_steps = 160, "0,1", 2, 2, 40, 40
        args.clusters, args.batch_size = 4, 32
        args.executor = args.executor or "serial"
        args.name += "_quick"
    if args.smoke:
        args.scenes, args.per_parent, args.fractions, args.seeds = 60, 2, "0.25", "0"
        args.rounds, args.probes, args.clusters, args.steps, args.batch_size, args.rae_steps = 2, 2, 3, 8, 32, 5
        args.eval_seeds = 1
        args.executor = args.executor or "serial"
        args.name += "_smoke"
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    return args


def run(args) -> dict:
    from autoscale_core.planning.evaluate import evaluate_planner
    from autoscale_core.synthetic.generate import generate_synthetic
    from autoscale_core.world import generate_world

    t0 = time.perf_counter()
    world = generate_world(args.scenes, seed=args.world_seed)
    from autoscale_core.representation import GraphRAE
    from autoscale_core.selection.base import Pool
    from autoscale_core.selection.oracle import PlannerOracle

    parts = split_indices(len(world), {"base": 0.5, "val": 0.25, "test": 0.25}, seed=args.world_seed)
    base = world.subset(parts["base"])
    val_tune, val_confirm = world.subset(parts["val"][0::2]), world.subset(parts["val"][1::2])
    synthetic, report = generate_synthetic(base, scenes_per_parent=args.per_parent, seed=args.world_seed)
    setup = ClosedLoopSetup(base, synthetic, val_tune, world.subset(parts["test"]),
                            planner=args.planner, steps=args.steps, train_kwargs={"batch_size": args.batch_size}).prepare()
    rae = GraphRAE(num_threads=1).fit(base, steps=args.rae_steps, seed=args.world_seed)
    pool = Pool(synthetic.meta["scene_id"], embeddings=rae.transform(synthetic))  # k-means clusters in the optimizer
    # The current planner's failure cases on its own (real) training scenes, in the Graph-RAE space.
    base_eval = evaluate_planner(setup.current_planner, base)
    epdms = np.asarray(base_eval.scores["epdms"])
    failing = epdms <= np.quantile(epdms, args.failure_quantile)
    failures = rae.transform(base.subset(np.flatnonzero(failing)))
    confirm = PlannerOracle(base, synthetic, val_confirm, planner=args.planner, steps=args.steps,
                            train_kwargs={"batch_size": args.batch_size})
    executor = get_executor(args.executor)
    timings = {"setup_s": time.perf_counter() - t0}
    budgets = sorted({max(1, int(round(f * len(pool)))) for f in args.fractions})

    t1 = time.perf_counter()
    picks, history = {}, {}
    for seed in args.seeds:
        for b in budgets:
            picks[("random_synthetic", b, seed)] = RandomSyntheticSelector(seed=seed).select(pool, b).indices
            opt = ClusterMixtureOptimizer(setup.oracle("val"), num_clusters=args.clusters, rounds=args.rounds,
                                          num_probes=args.probes, seed=seed, executor=executor,
                                          eval_seeds=args.eval_seeds, confirm_oracle=confirm)
            result = opt.select(pool, b, failures=failures)
            picks[("autoscale", b, seed)] = result.indices
            history[f"seed{seed}_b{b}"] = {"allocation": result.allocation, "history": result.diagnostics["history"],
                                           "best_round": result.diagnostics["best_round"]}
        picks[("all_synthetic", len(pool), seed)] = np.arange(len(pool))
        picks[("real_only", 0, seed)] = np.zeros(0, dtype=np.int64)
    timings["select_s"] = time.perf_counter() - t1

    t2 = time.perf_counter()
    keys = sorted(picks)
    tasks = [OracleTask(tuple(int(i) for i in picks[k]), None, k[2], tag=f"{k[0]}:b={k[1]}:seed={k[2]}") for k in keys]
    scores = executor.map(run_oracle_task(setup.oracle("test")), tasks)
    timings["train_eval_s"] = time.perf_counter() - t2
    per_run = {f"{m}|{b}|{s}": sc for (m, b, s), sc in zip(keys, scores)}
    table = {}
    real = np.array([per_run[f"real_only|0|{s}"] for s in args.seeds])
    every = np.array([per_run[f"all_synthetic|{len(pool)}|{s}"] for s in args.seeds])
    for m in ("real_only", "random_synthetic", "autoscale", "all_synthetic"):
        for b in sorted({k[1] for k in keys if k[0] == m}):
            vals = np.array([per_run[f"{m}|{b}|{s}"] for s in args.seeds])
            table[f"{m}|{b}"] = {"method": m, "budget": b, "fraction": b / len(pool), "mean": float(vals.mean()),
                                 "std": float(vals.std()), "minus_real_only": _paired(vals - real),
                                 "minus_all_synthetic": _paired(vals - every)}
    return {
        "benchmark": "selection_autoscale",
        "command": "python " + " ".join(sys.argv),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "sizes": {"real_train": len(base), "synthetic_pool": len(pool), "val": len(setup.val), "test": len(setup.test),
                  "failures": int(failing.sum())},
        "real_only_epdms": {"val": setup.base_scores["val"], "test": float(real.mean())},
        "embedding": "Graph-RAE fitted on the real training scenes", "eval_seeds": args.eval_seeds,
        "table": table, "runs": per_run, "autoscale": history, "timings_s": timings,
        "synthetic_report": report.as_dict() if hasattr(report, "as_dict") else str(report),
    }


def _paired(diff: np.ndarray) -> dict:
    """Mean paired difference and its 95 % t-interval (None with one seed)."""
    from scipy.stats import t

    mean = float(diff.mean())
    if len(diff) < 2:
        return {"mean": mean, "ci95": None}
    half = float(t.ppf(0.975, len(diff) - 1) * diff.std(ddof=1) / np.sqrt(len(diff)))
    return {"mean": mean, "ci95": [mean - half, mean + half]}


def write_outputs(result: dict, out_dir: str, name: str) -> dict[str, str]:
    os.makedirs(out_dir, exist_ok=True)
    paths = {k: os.path.join(out_dir, f"{name}.{k}") for k in ("json", "md", "png")}
    with open(paths["json"], "w") as fh:
        json.dump(_finite(result), fh, indent=1)
    lines = [f"# {result['benchmark']}", "", f"Command: `{result['command']}`", "",
             f"Test EPDMS (x100, mean ± std over seeds {result['config']['seeds']}). Real-only planner: "
             f"{result['real_only_epdms']['test']:.2f}. Synthetic pool: {result['sizes']['synthetic_pool']} scenes.", "",
             "| method | synthetic scenes | fraction of pool | test EPDMS | − real-only (95 % CI) | − all-synthetic (95 % CI) |",
             "|---|---|---|---|---|---|"]

    def ci(d):
        return f"{d['mean']:+.2f}" + (f" [{d['ci95'][0]:+.2f}, {d['ci95'][1]:+.2f}]" if d["ci95"] else "")

    for row in result["table"].values():
        lines.append(f"| {row['method']} | {row['budget']} | {row['fraction']:.2f} | {row['mean']:.2f} ± {row['std']:.2f} "
                     f"| {ci(row['minus_real_only'])} | {ci(row['minus_all_synthetic'])} |")
    with open(paths["md"], "w") as fh:
        fh.write("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for m, marker in (("random_synthetic", "o"), ("autoscale", "s"), ("all_synthetic", "*")):
        rows = [r for r in result["table"].values() if r["method"] == m]
        ax.errorbar([r["fraction"] for r in rows], [r["mean"] for r in rows], yerr=[r["std"] for r in rows],
                    marker=marker, capsize=3, label=m, linestyle="-" if len(rows) > 1 else "none")
    ax.axhline(result["real_only_epdms"]["test"], color="grey", linestyle="--", label="real only")
    ax.set_xlabel("synthetic budget (fraction of the synthetic pool)")
    ax.set_ylabel("test EPDMS (x100)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(paths["png"], dpi=110)
    plt.close(fig)
    return paths


def main(argv=None) -> int:
    args = parse_args(argv)
    result = run(args)
    result["outputs"] = write_outputs(result, args.out, args.name)
    print(json.dumps(_finite(result)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
