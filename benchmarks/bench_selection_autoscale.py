"""AutoScale at size: real-only, all-synthetic, random-synthetic and AutoScale (10 / 25 / 50 % of a
≥ 4× synthetic pool) over several world splits × training seeds, on test and on the hard split.

Each world split (``--offsets``; the same world seeds as ``bench_simscale_worlds.py``) has its own

* real training set: ``--n-real`` world scenes (seed 1 + offset);
* synthetic pool: SimScale recovery perturbations of the real training scenes, ``--per-parent``
  per scene (≈ 4× real) with pseudo-expert labels;
* val-tune and val-confirm: ``--n-val`` world scenes each (seeds 30,001 / 40,001 + offset): the
  AutoScale loop scores candidate mixtures on val-tune and picks its final mixture on val-confirm;
* test: ``--n-test`` world scenes (seed 10,001 + offset), and the independent hard split (perturbed
  starts from a family training never uses + rare events, from ``--hard-source`` scenes of seed
  20,001 + offset) plus 121 perturbed AV2 logs (real hard). Nothing is tuned on any of them, and
  no test/hard scene shares a scene or a parent with training or val data (checked).

AutoScale as its paper describes: a Graph-RAE fitted on the real training scenes embeds the
synthetic pool → k-means clusters → Cluster-GA cluster weights from closed-loop feedback
(``--rounds`` rounds × (1 + ``--probes``) mixtures, each trained with ``--eval-seeds`` seeds and
scored on val-tune) → per-cluster retrieval by faiss search in the Graph-RAE space, nearest to the
cluster centre and to the current planner's failures (its real training scenes in the lowest
``--failure-quantile`` of EPDMS) → the ``--confirm-top`` best rounds re-scored with fresh seeds on
val-confirm; the best there is the selection. One selection per (split, budget); the test arms
then train it with every ``--seeds`` seed.

Compute differs between arms, and the table says so: AutoScale trains
``rounds × (1 + probes) × eval_seeds + confirm_top × eval_seeds`` planners to choose each
selection; random-synthetic draws a fresh subset per training seed and trains nothing to choose
it. Every final planner (every arm) is trained the same way: ``--steps`` steps, same batch size.

Differences to real-only and to all-synthetic are paired by (split, training seed). Intervals:
per split a t-interval over its seeds; pooled, a t-interval over the split means and a bootstrap
over the (split, seed) runs.

Jobs (build a split, run one AutoScale selection, train + evaluate one planner) run in a process
pool; every finished job is appended to ``<cache-dir>/<name>.jobs.jsonl`` and a rerun with the same
arguments skips them (the split data is cached there as scene stores too).

Full run (what the results file reports; 90.7 min on 2 cores):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_selection_autoscale.py --workers 2
Quick: ``--quick`` (1 min 0 s on the idle 2-core machine, 117 CPU-s; 3 min 51 s at load 4–5.6);
CI smoke: ``--smoke``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from multiprocessing import get_context
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from results_io import write_result  # noqa: E402

RESULTS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
AV2_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "av2"
POOL_SEED, TEST_SEED, HARD_SEED, SYN_SEED = 1, 10_001, 20_001, 0  # as bench_simscale.py
VAL_TUNE_SEED, VAL_CONFIRM_SEED = 30_001, 40_001
PARTS = ("real", "synthetic", "val_tune", "val_confirm", "test", "hard", "real_hard")
META_KEYS = ("scene_id", "source", "city", "topology", "events", "split", "parent_id")


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--offsets", default="0,1000,2000,3000,4000", help="world-seed offsets, one split each")
    p.add_argument("--n-real", type=int, default=600)
    p.add_argument("--per-parent", type=int, default=4, help="synthetic scenes per real training scene")
    p.add_argument("--n-val", type=int, default=300, help="scenes in each of val-tune and val-confirm")
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--hard-source", type=int, default=1000, help="held-out scenes the hard split is built from")
    p.add_argument("--fractions", default="0.1,0.25,0.5", help="synthetic budgets as fractions of the pool")
    p.add_argument("--seeds", default="0,1,2", help="training seeds of the final planners")
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--probes", type=int, default=2)
    p.add_argument("--eval-seeds", type=int, default=3, help="training seeds per candidate mixture")
    p.add_argument("--confirm-top", type=int, default=2, help="best rounds re-scored on val-confirm")
    p.add_argument("--clusters", type=int, default=6)
    p.add_argument("--failure-quantile", type=float, default=0.2)
    p.add_argument("--steps", type=int, default=400, help="training steps of every planner")
    p.add_argument("--rae-steps", type=int, default=150)
    p.add_argument("--planner", default="regression")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--bootstrap", type=int, default=2000)
    p.add_argument("--no-av2", action="store_true")
    p.add_argument("--out", default=RESULTS_DIR)
    p.add_argument("--name", default="selection_autoscale")
    p.add_argument("--cache-dir", default=None, help="scene-store cache of the splits (default <out>/<name>.cache)")
    p.add_argument("--quick", action="store_true", help="2 splits × 2 seeds, 100 real scenes, 25 %% budget, 40 steps")
    p.add_argument("--smoke", action="store_true")
    args = p.parse_args(argv)
    if args.quick:
        args.offsets, args.n_real, args.n_val, args.n_test, args.hard_source = "0,1000", 100, 60, 200, 100
        args.fractions, args.seeds, args.rounds, args.probes, args.eval_seeds = "0.25", "0,1", 2, 2, 2
        args.steps, args.rae_steps = 40, 30
        args.clusters, args.bootstrap = 4, 500
        args.name += "_quick"
    if args.smoke:
        args.offsets, args.n_real, args.per_parent, args.n_val, args.n_test, args.hard_source = "0", 40, 2, 20, 40, 20
        args.fractions, args.seeds, args.rounds, args.probes, args.eval_seeds = "0.25", "0,1", 1, 2, 1
        args.confirm_top, args.clusters, args.steps, args.rae_steps, args.bootstrap = 1, 3, 8, 5, 100
        args.no_av2, args.name = True, args.name + "_smoke"
    args.offsets = [int(s) for s in args.offsets.split(",")]
    args.fractions = [float(f) for f in args.fractions.split(",")]
    args.seeds = [int(s) for s in args.seeds.split(",")]
    if not all(0 < f <= 1 for f in args.fractions):
        p.error("--fractions must be in (0, 1]")
    args.cache_dir = args.cache_dir or os.path.join(args.out, f"{args.name}.cache")
    return args


# ------------------------------------------------------------------------------------------- data
def build_split(offset: int, cfg: dict) -> dict:
    """Generate one world split, write it as scene stores under ``cfg['cache_dir']/world<offset>``,
    and the Graph-RAE embeddings of the synthetic pool and of the current planner's failures."""
    from autoscale_core.planning import evaluate_planner, train_planner
    from autoscale_core.representation import GraphRAE
    from autoscale_core.store import SceneStore
    from autoscale_core.synthetic import generate_synthetic
    from autoscale_core.synthetic.independent_hard import build_independent_hard_split, training_parent_ids
    from autoscale_core.world import generate_world

    t0 = time.perf_counter()
    real = generate_world(cfg["n_real"], seed=POOL_SEED + offset)
    synthetic, report = generate_synthetic(real, scenes_per_parent=cfg["per_parent"], expert="recovery",
                                           seed=SYN_SEED + offset, score_labels=False)
    parts = {"real": real, "synthetic": synthetic,
             "val_tune": generate_world(cfg["n_val"], seed=VAL_TUNE_SEED + offset),
             "val_confirm": generate_world(cfg["n_val"], seed=VAL_CONFIRM_SEED + offset),
             "test": generate_world(cfg["n_test"], seed=TEST_SEED + offset)}
    seen = training_parent_ids(None, ids=[s for k in ("real", "synthetic", "val_tune", "val_confirm")
                                          for s in parts[k].scene_ids],
                               parent_ids=synthetic.meta["parent_id"])
    hard = build_independent_hard_split({"world": generate_world(cfg["hard_source"], seed=HARD_SEED + offset)}, seed=0,
                                        rare_sources=["world"], training_ids=seen)
    parts["hard"] = hard.scenes
    if AV2_ROOT.is_dir() and not cfg["no_av2"]:
        from autoscale_core.io import import_av2

        parts["real_hard"] = build_independent_hard_split({"av2": import_av2(AV2_ROOT)[0]}, seed=0, training_ids=seen).scenes
    check_disjoint(parts, seen)

    current = train_planner(real, planner=cfg["planner"], seed=0, steps=cfg["steps"], device="cpu")
    epdms = np.asarray(evaluate_planner(current, real).scores["epdms"], dtype=np.float64)
    failing = np.flatnonzero(epdms <= np.quantile(epdms, cfg["failure_quantile"]))
    rae = GraphRAE(num_threads=1).fit(real, steps=cfg["rae_steps"], seed=offset)
    folder = Path(cfg["cache_dir"]) / f"world{offset}"
    folder.mkdir(parents=True, exist_ok=True)
    np.save(folder / "pool_embeddings.npy", rae.transform(synthetic).astype(np.float32))
    np.save(folder / "failure_embeddings.npy", rae.transform(real.subset(failing)).astype(np.float32))
    for name, batch in parts.items():
        store = SceneStore(folder / name)
        if len(store):
            raise RuntimeError(f"{folder / name} is not empty; delete the cache folder to rebuild")
        store.append(batch)
    sizes = {k: len(v) for k, v in parts.items()}
    (folder / "done.json").write_text(json.dumps(sizes))
    return {"sizes": sizes, "failures": int(len(failing)), "seconds": time.perf_counter() - t0,
            "synthetic_report": {k: v for k, v in report.as_dict().items() if k != "rounds"}}


def check_disjoint(parts: dict, seen: set[str]) -> None:
    """Raise if a test or hard scene (or a hard scene's parent) is in the training or val data."""
    for name in ("test", "hard", "real_hard"):
        if name not in parts:
            continue
        ids = {str(s) for s in parts[name].scene_ids}
        ids |= {str(p) for p in np.asarray(parts[name].meta.get("parent_id", []), dtype=object) if str(p)}
        overlap = ids & seen
        if overlap:
            raise RuntimeError(f"{name} split overlaps the training/val data: {sorted(overlap)[:3]}")


_SPLITS: dict[int, dict] = {}  # per worker process: offset → loaded split


def load_split(offset: int, cfg: dict) -> dict:
    """The cached split (scene batches + embeddings), loaded once per worker process."""
    from autoscale_core.store import SceneStore

    if offset not in _SPLITS:
        folder = Path(cfg["cache_dir"]) / f"world{offset}"
        split = {name: SceneStore(folder / name).load() for name in PARTS if (folder / name).is_dir()}
        split["pool_embeddings"] = np.load(folder / "pool_embeddings.npy")
        split["failure_embeddings"] = np.load(folder / "failure_embeddings.npy")
        _SPLITS.clear()  # keep one split in memory per worker
        _SPLITS[offset] = split
    return _SPLITS[offset]


def _common(batch):
    return batch.replace(meta={k: batch.meta[k] for k in META_KEYS if k in batch.meta})


# ------------------------------------------------------------------------------------------- jobs
def run_job(job: dict) -> dict:
    """One unit of work in a pool process: ``build``, ``select`` (AutoScale) or ``train``."""
    import torch

    torch.set_num_threads(1)
    t0 = time.perf_counter()
    cfg, kind = job["cfg"], job["kind"]
    if kind == "build":
        out = build_split(job["offset"], cfg)
    elif kind == "select":
        out = autoscale_selection(job["offset"], job["budget"], cfg)
    else:
        out = train_and_evaluate(job["offset"], job["indices"], job["seed"], cfg)
    out["wall_s"] = time.perf_counter() - t0
    return out


def autoscale_selection(offset: int, budget: int, cfg: dict) -> dict:
    """One AutoScale Cluster-GA selection of ``budget`` synthetic scenes for one split."""
    from autoscale_core.selection import ClusterMixtureOptimizer, PlannerOracle, get_executor
    from autoscale_core.selection.base import Pool

    split = load_split(offset, cfg)
    real, synthetic = _common(split["real"]), _common(split["synthetic"])

    def oracle(val):
        return PlannerOracle(real, synthetic, val, planner=cfg["planner"], steps=cfg["steps"])

    optimizer = ClusterMixtureOptimizer(oracle(split["val_tune"]), num_clusters=cfg["clusters"], rounds=cfg["rounds"],
                                        num_probes=cfg["probes"], seed=offset + budget, executor=get_executor("serial"),
                                        eval_seeds=cfg["eval_seeds"], confirm_oracle=oracle(split["val_confirm"]),
                                        confirm_top=cfg["confirm_top"])
    pool = Pool(synthetic.meta["scene_id"], embeddings=split["pool_embeddings"])
    result = optimizer.select(pool, budget, failures=split["failure_embeddings"])
    trainings = cfg["rounds"] * (1 + optimizer.num_probes) * cfg["eval_seeds"] + \
        min(cfg["confirm_top"], cfg["rounds"]) * cfg["eval_seeds"]
    return {"indices": [int(i) for i in result.indices], "allocation": result.allocation,
            "history": result.diagnostics["history"], "best_round": result.diagnostics["best_round"],
            "explanation": result.explanation, "selection_trainings": trainings}


def train_and_evaluate(offset: int, indices: list[int], seed: int, cfg: dict) -> dict:
    """Train on real + synthetic[indices]; EPDMS ×100 per scene on test, hard and real hard."""
    from autoscale_core.planning import evaluate_planner, train_planner
    from autoscale_core.scene import SceneBatch

    split = load_split(offset, cfg)
    parts = [_common(split["real"])] + ([_common(split["synthetic"].subset(np.asarray(indices)))] if indices else [])
    model = train_planner(SceneBatch.concatenate(parts), planner=cfg["planner"], seed=seed, steps=cfg["steps"], device="cpu")
    out = {}
    for name in ("test", "hard", "real_hard"):
        if name in split:
            scores = np.asarray(evaluate_planner(model, split[name]).scores["epdms"], dtype=np.float64)
            out[name] = [round(float(s), 6) for s in 100 * scores]
    return out


# ------------------------------------------------------------------------------------- scheduling
def arms_for(offset: int, pool_size: int, cfg: dict) -> list[tuple[str, int]]:
    """(arm, budget) of the final planners of one split; AutoScale arms wait for their selection."""
    budgets = sorted({max(1, int(round(f * pool_size))) for f in cfg["fractions"]})
    return [("real_only", 0), ("all_synthetic", pool_size)] + [("random_synthetic", b) for b in budgets] + \
        [("autoscale", b) for b in budgets]


def random_indices(offset: int, pool_size: int, budget: int, seed: int) -> list[int]:
    rng = np.random.default_rng([offset, budget, seed, 7])
    return sorted(int(i) for i in rng.choice(pool_size, size=budget, replace=False))


class Scheduler:
    """Runs the job graph build → {select, train} → train in a process pool, with a JSONL journal."""

    def __init__(self, cfg: dict, journal: Path, workers: int):
        self.cfg, self.journal, self.workers = cfg, journal, workers
        self.done: dict[str, dict] = {}
        config_file = journal.with_suffix(".config.json")
        if journal.exists() and json.loads(config_file.read_text()) != json.loads(json.dumps(cfg)):
            raise SystemExit(f"{journal} was written with other arguments; delete it (and the cache) or change --name")
        config_file.write_text(json.dumps(cfg))
        if journal.exists():
            for line in journal.read_text().splitlines():
                if line.strip():
                    entry = json.loads(line)
                    self.done[entry["key"]] = entry["result"]

    def _record(self, key: str, result: dict) -> None:
        self.done[key] = result
        with open(self.journal, "a") as fh:
            fh.write(json.dumps({"key": key, "result": result}) + "\n")

    def run(self) -> dict[str, dict]:
        cfg = self.cfg
        pending: dict = {}
        with ProcessPoolExecutor(self.workers, mp_context=get_context("spawn")) as pool:
            def submit(key: str, job: dict) -> None:
                if key in self.done:
                    self._after(key, submit)
                else:
                    pending[pool.submit(run_job, {**job, "cfg": cfg})] = key

            for offset in cfg["offsets"]:
                submit(f"build|{offset}", {"kind": "build", "offset": offset})
            while pending:
                finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
                for future in finished:
                    key = pending.pop(future)
                    result = future.result()  # a failed job stops the run; the journal keeps the rest
                    self._record(key, result)
                    print(f"[{time.strftime('%H:%M:%S')}] {key} {result['wall_s']:.0f} s", file=sys.stderr, flush=True)
                    self._after(key, submit)
        return self.done

    def _after(self, key: str, submit) -> None:
        """Submit the jobs a finished job unlocks (selections first: they are the long ones)."""
        kind, *rest = key.split("|")
        cfg = self.cfg
        if kind == "build":
            offset = int(rest[0])
            pool_size = self.done[key]["sizes"]["synthetic"]
            arms = arms_for(offset, pool_size, cfg)
            for arm, budget in arms:
                if arm == "autoscale":
                    submit(f"select|{offset}|{budget}", {"kind": "select", "offset": offset, "budget": budget})
            for arm, budget in arms:
                if arm == "autoscale":
                    continue
                for seed in cfg["seeds"]:
                    indices = ([] if arm == "real_only" else list(range(pool_size)) if arm == "all_synthetic"
                               else random_indices(offset, pool_size, budget, seed))
                    submit(f"train|{offset}|{arm}|{budget}|{seed}",
                           {"kind": "train", "offset": offset, "indices": indices, "seed": seed})
        elif kind == "select":
            offset, budget = int(rest[0]), int(rest[1])
            for seed in cfg["seeds"]:
                submit(f"train|{offset}|autoscale|{budget}|{seed}",
                       {"kind": "train", "offset": offset, "indices": self.done[key]["indices"], "seed": seed})


# ------------------------------------------------------------------------------------- statistics
def t_interval(values: np.ndarray) -> list[float] | None:
    from scipy.stats import t

    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    half = float(t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values)))
    return [float(values.mean()) - half, float(values.mean()) + half]


def bootstrap_interval(values: np.ndarray, replicates: int, seed: int = 0) -> list[float] | None:
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(replicates, len(values)))].mean(1)
    return [float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))]


def summarise(done: dict, cfg: dict) -> dict:
    """Per (arm, budget fraction, eval split): per-split means and paired differences, pooled."""
    offsets, seeds = cfg["offsets"], cfg["seeds"]
    pool_sizes = {o: done[f"build|{o}"]["sizes"]["synthetic"] for o in offsets}
    evals = [e for e in ("test", "hard", "real_hard") if e in done[f"train|{offsets[0]}|real_only|0|{seeds[0]}"]]
    arm_keys = [(arm, i) for i, (arm, _) in enumerate(arms_for(offsets[0], pool_sizes[offsets[0]], cfg))]
    rows = []
    for arm, position in arm_keys:
        per_eval = {}
        for ev in evals:
            runs, minus_real, minus_all, minus_random = [], [], [], []  # (split, seed) run means
            for o in offsets:
                arm_o, budget = arms_for(o, pool_sizes[o], cfg)[position]

                def score(a, b, s, o=o, ev=ev):
                    return float(np.mean(done[f"train|{o}|{a}|{b}|{s}"][ev]))

                runs.append([score(arm_o, budget, s) for s in seeds])
                minus_real.append([score(arm_o, budget, s) - score("real_only", 0, s) for s in seeds])
                minus_all.append([score(arm_o, budget, s) - score("all_synthetic", pool_sizes[o], s) for s in seeds])
                if arm_o == "autoscale":  # vs random-synthetic at the same budget, same training seed
                    minus_random.append([score(arm_o, budget, s) - score("random_synthetic", budget, s) for s in seeds])
            per_eval[ev] = {"mean": float(np.mean(runs)), "per_split": [float(np.mean(r)) for r in runs],
                            "minus_real_only": _paired(np.array(minus_real), cfg), "minus_all_synthetic": _paired(np.array(minus_all), cfg)}
            if minus_random:
                per_eval[ev]["minus_random_synthetic"] = _paired(np.array(minus_random), cfg)
        budget0 = arms_for(offsets[0], pool_sizes[offsets[0]], cfg)[position][1]
        rows.append({"arm": arm, "fraction": budget0 / pool_sizes[offsets[0]],
                     "budgets": [arms_for(o, pool_sizes[o], cfg)[position][1] for o in offsets], **per_eval})
    return {"rows": rows, "evals": evals, "pool_sizes": pool_sizes}


def _paired(diff: np.ndarray, cfg: dict) -> dict:
    """diff: (splits, seeds) paired differences → pooled mean, intervals, per-split mean + t-interval."""
    return {"mean": float(diff.mean()), "ci95_over_splits": t_interval(diff.mean(1)),
            "ci95_bootstrap_runs": bootstrap_interval(diff.ravel(), cfg["bootstrap"]),
            "per_split": [{"mean": float(d.mean()), "ci95": t_interval(d)} for d in diff]}


# ------------------------------------------------------------------------------------------ report
def fmt(d: dict, key: str = "ci95_over_splits") -> str:
    ci = d.get(key)
    return f"{d['mean']:+.1f}" + (f" [{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "")


def markdown(result: dict) -> str:
    cfg, summary = result["config"], result["summary"]
    lines = [f"# {result['name']}: AutoScale vs random-synthetic, all-synthetic and real-only", "",
             f"Command: `{result['command']}`  ",
             f"Machine: {result['machine']}; wall {result['wall_s_all_invocations'] / 60:.1f} min over "
             f"{result['invocations']} invocation(s) (this one {result['wall_s'] / 60:.1f} min); load before start "
             f"{result['load_before']}", "",
             f"{len(cfg['offsets'])} world splits (offsets {cfg['offsets']}) × {len(cfg['seeds'])} training seeds. Per split: "
             f"{cfg['n_real']} real training scenes; synthetic pool {sorted(set(summary['pool_sizes'].values()))} recovery "
             f"scenes ({cfg['per_parent']} per real scene); val-tune / val-confirm {cfg['n_val']} scenes each; test "
             f"{result['sizes']['test']} and hard {result['sizes']['hard']} distinct generated scenes"
             + (f", real hard {result['sizes'].get('real_hard')} perturbed AV2 logs (the same in every split)"
                if "real_hard" in result["sizes"] else "") + ". Nothing is tiled; nothing is tuned on test or hard.", "",
             f"AutoScale compute per selection: {result['selection_trainings']} planner trainings on val "
             f"({cfg['rounds']} rounds × (1 + {cfg['probes']}) mixtures × {cfg['eval_seeds']} seeds + "
             f"{cfg['confirm_top']} confirmations × {cfg['eval_seeds']} seeds); random-synthetic trains none to choose. "
             f"Every final planner: {cfg['steps']} steps.", ""]
    for ev in summary["evals"]:
        lines += [f"## {ev}", "",
                  "| arm | fraction of pool | EPDMS | − real-only (95 % over splits) | bootstrap over runs | − all-synthetic (95 % over splits) | − random-synthetic, same budget (95 % over splits) | per split − real-only |",
                  "|---|---:|---:|---:|---:|---:|---:|---|"]
        for row in summary["rows"]:
            d = row[ev]
            lines.append(f"| {row['arm']} | {row['fraction']:.2f} | {d['mean']:.1f} | {fmt(d['minus_real_only'])} | "
                         f"{fmt(d['minus_real_only'], 'ci95_bootstrap_runs')} | {fmt(d['minus_all_synthetic'])} | "
                         f"{fmt(d['minus_random_synthetic']) if 'minus_random_synthetic' in d else ''} | "
                         + ", ".join(f"{s['mean']:+.1f}" for s in d["minus_real_only"]["per_split"]) + " |")
        lines.append("")
    lines += ["EPDMS ×100, mean over splits × seeds. Differences are paired by (split, training seed).", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    cfg = {k: v for k, v in vars(args).items() if k not in ("out", "quick", "smoke")}
    load = os.getloadavg()
    t0 = time.perf_counter()
    os.makedirs(args.cache_dir, exist_ok=True)
    scheduler = Scheduler(cfg, Path(args.cache_dir) / f"{args.name}.jobs.jsonl", args.workers)
    done = scheduler.run()
    scheduler_wall = time.perf_counter() - t0
    previous = [v["wall_s"] for k, v in done.items() if k.startswith("__wall__")]
    scheduler._record(f"__wall__|{len(previous)}", {"wall_s": scheduler_wall})
    builds = [done[f"build|{o}"] for o in args.offsets]
    selections = {k: {kk: vv for kk, vv in v.items() if kk != "indices"} for k, v in done.items() if k.startswith("select|")}
    result = {
        "benchmark": "selection_autoscale", "name": args.name, "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": f"{platform.platform()}, {os.cpu_count()} CPUs, {args.workers} workers",
        "load_before": [round(x, 2) for x in load], "wall_s": time.perf_counter() - t0,
        "wall_s_all_invocations": sum(previous) + scheduler_wall, "invocations": len(previous) + 1, "config": cfg,
        "sizes": builds[0]["sizes"], "per_split_build": {str(o): b for o, b in zip(args.offsets, builds)},
        "selection_trainings": next(iter(selections.values()))["selection_trainings"] if selections else 0,
        "summary": summarise(done, cfg), "autoscale": selections,
        "job_seconds": {k: v["wall_s"] for k, v in done.items() if not k.startswith("__wall__")},
        "what_it_ran_on": "distinct generated world scenes (no tiling), real Graph-RAE embeddings, "
                          "real planner trainings and closed-loop EPDMS; AV2 logs for real hard",
    }
    write_result(args.out, args.name, result, markdown(result))
    print(json.dumps(result["summary"]["rows"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
