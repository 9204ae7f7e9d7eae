"""SimScale-style experiment: does adding synthetic (perturbed, pseudo-expert-labelled) scenes to
real training data improve closed-loop EPDMS, especially on the hard split?

Design (all data fixed by world seeds; only the training seed varies across repeats):

* real train pool: ``generate_world(n_real, seed=1)``; test: ``generate_world(n_test, seed=10_001)``;
  hard: ``build_hard_split(generate_world(hard_source, seed=20_001), holdout_fraction=1,
  rare_fraction=1)`` — strongly perturbed starts (recovery labels) + rare-event scenes from a
  world batch that neither training nor synthesis ever sees (checked: no shared scene/parent ids).
* synthetic: ``generate_synthetic(real_pool, scenes_per_parent=max(volumes), expert=e)`` once per
  pseudo-expert e ∈ {recovery, planner}; the k× set keeps each parent's first k accepted scenes
  (ids ``…-syn1-<j>``, j < k), so 1× ⊂ 2× ⊂ 4× (nested, as in SimScale's volume sweep).
* each planner type is trained on real-only and on real + synthetic (uniform sampling weights,
  the same step budget, batch size and seed per planner type), then evaluated on test and hard.
  EPDMS is reported ×100 (points), mean ± std over training seeds, and Δ vs real-only as the
  mean ± std of per-seed paired differences.
* the scoring planner's reward targets cost ~32 closed-loop rollouts per training scene, so by
  default it runs on fewer cells (``--scoring-volumes``, default 1× only).

No hyper-parameter is chosen on the test or hard split: every setting below is a fixed default
(planner defaults from ``autoscale_core.planning.TrainConfig`` except the step budget).

Default run (≈ 15 min on one core; single-threaded torch):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_simscale.py --out benchmarks/results
Smoke run (minutes):
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_simscale.py --quick
Prints one JSON document; with ``--out DIR`` also writes DIR/simscale.json and DIR/simscale.md.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy/torch import: one core

import argparse
import json
import platform
import shlex
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscale_core.planning import evaluate_baselines, evaluate_planner, train_planner  # noqa: E402
from autoscale_core.scene import SceneBatch  # noqa: E402
from autoscale_core.synthetic import build_hard_split, generate_synthetic, score_labels_epdms  # noqa: E402
from autoscale_core.world import generate_world  # noqa: E402

POOL_SEED, TEST_SEED, HARD_SEED, SYN_SEED = 1, 10_001, 20_001, 0
EXPERTS = ("recovery", "planner")
TARGET_HARD_GAIN = 5.0  # EPDMS points on the hard split (issue 8)


# ---------------------------------------------------------------------------- data
def build_data(args) -> dict:
    """Real pool, test, hard split and the max-volume synthetic set per expert (all fixed)."""
    t = time.perf_counter()
    real = generate_world(args.n_real, seed=POOL_SEED)
    test = generate_world(args.n_test, seed=TEST_SEED)
    hard = build_hard_split(generate_world(args.hard_source, seed=HARD_SEED), seed=0,
                            holdout_fraction=1.0, rare_fraction=1.0)
    seconds = {"world_and_hard": time.perf_counter() - t}
    synthetic, reports = {}, {}
    for expert in args.experts:
        t = time.perf_counter()
        syn, rep = generate_synthetic(real, scenes_per_parent=max(args.volumes), expert=expert,
                                      seed=SYN_SEED, score_labels=False)
        synthetic[expert] = syn
        seconds[f"synthetic_{expert}"] = time.perf_counter() - t
        one_x = syn.subset(np.flatnonzero(synthetic_rank(syn) < 1))
        t = time.perf_counter()  # label quality on the 1× subset only (scoring every label is costly)
        rep.label_epdms = score_labels_epdms(one_x)
        seconds[f"label_score_{expert}"] = time.perf_counter() - t
        reports[expert] = {k: v for k, v in rep.as_dict().items() if k != "rounds"}
    check_disjoint(real, test, hard, synthetic)
    return {"real": real, "test": test, "hard": hard.scenes, "hard_report": hard.report,
            "synthetic": synthetic, "synthetic_reports": reports, "seconds": seconds}


def synthetic_rank(syn: SceneBatch) -> np.ndarray:
    """(S,) j of each id ``f"{parent}-syn1-{j}"``: the scene's rank among its parent's accepted ones."""
    return np.array([int(str(s).rsplit("-", 1)[1]) for s in syn.meta["scene_id"]])


def check_disjoint(real, test, hard, synthetic) -> None:
    """Raise if the test/hard splits share a scene (or a hard scene's parent) with training data."""
    train_ids = {str(s) for s in real.meta["scene_id"]}
    for syn in synthetic.values():
        train_ids |= {str(s) for s in syn.meta["scene_id"]} | {str(p) for p in syn.meta["parent_id"]}
    hard_ids = {str(s) for s in hard.scenes.meta["scene_id"]} | set(hard.holdout_ids)
    hard_ids |= {str(p) for p in hard.scenes.meta.get("parent_id", []) if str(p)}
    for name, ids in (("test", {str(s) for s in test.meta["scene_id"]}), ("hard", hard_ids)):
        overlap = ids & train_ids
        if overlap:
            raise RuntimeError(f"{name} split overlaps the training data: {sorted(overlap)[:3]}")


def training_sets(data: dict, volumes, experts) -> dict[tuple[str, int], SceneBatch]:
    """(expert, volume) → training batch; ("real", 0) is real-only. Nested synthetic subsets."""
    real = data["real"]
    keep = [k for k in real.meta if k in {"scene_id", "source", "city", "topology", "events", "split"}]
    sets = {("real", 0): real}
    for expert in experts:
        syn = data["synthetic"][expert]
        rank = synthetic_rank(syn)
        for v in volumes:
            part = syn.subset(np.flatnonzero(rank < v))
            # common meta columns only (the synthetic-only ones would become object padding)
            a = real.replace(meta={k: real.meta[k] for k in keep})
            b = part.replace(meta={k: part.meta[k] for k in keep})
            sets[(expert, v)] = SceneBatch.concatenate([a, b])
    return sets


# ---------------------------------------------------------------------------- runs
def evaluate(model, test: SceneBatch, hard: SceneBatch) -> dict:
    """EPDMS ×100 on test and hard (overall and per hard kind)."""
    out = {"test": 100 * evaluate_planner(model, test).aggregates()["epdms"]}
    res = evaluate_planner(model, hard)
    out["hard"] = 100 * float(np.mean(res.scores["epdms"]))
    kinds = np.asarray(hard.meta["hard_kind"], dtype=object)
    for kind in ("perturbed", "rare_event"):
        mask = kinds == kind
        out[f"hard_{kind}"] = 100 * float(np.mean(res.scores["epdms"][mask])) if mask.any() else float("nan")
    return out


def run_cells(args, data, sets) -> list[dict]:
    cells = []
    for planner in args.planners:
        volumes = args.volumes if planner == "regression" else args.scoring_volumes
        conditions = [("real", 0)] + [(e, v) for e in args.experts for v in volumes]
        extra = {"batch_size": args.scoring_batch_size} if planner == "scoring" else {}
        for expert, volume in conditions:
            batch = sets[(expert, volume)]
            per_seed, seconds = [], []
            for seed in range(args.seeds):
                t = time.perf_counter()
                model = train_planner(batch, planner=planner, seed=seed, steps=args.steps, device="cpu", **extra)
                per_seed.append(evaluate(model, data["test"], data["hard"]))
                seconds.append(time.perf_counter() - t)
            cell = {"planner": planner, "expert": expert if volume else "none", "volume": volume,
                    "train_real": len(data["real"]), "train_synthetic": len(batch) - len(data["real"]),
                    "per_seed": per_seed, "seconds_per_seed": float(np.mean(seconds))}
            for key in per_seed[0]:
                vals = np.array([r[key] for r in per_seed])
                cell[key] = {"mean": float(np.mean(vals)), "std": float(np.std(vals))}
            cells.append(cell)
            print(json.dumps({k: cell[k] for k in ("planner", "expert", "volume", "test", "hard", "seconds_per_seed")}),
                  file=sys.stderr, flush=True)
    add_deltas(cells)
    return cells


def add_deltas(cells: list[dict]) -> None:
    """Δ vs the same planner's real-only cell: mean ± std of per-seed paired differences."""
    base = {c["planner"]: c for c in cells if c["volume"] == 0}
    for c in cells:
        b = base[c["planner"]]
        for key in ("test", "hard", "hard_perturbed", "hard_rare_event"):
            d = np.array([r[key] - s[key] for r, s in zip(c["per_seed"], b["per_seed"])])
            c[f"delta_{key}"] = {"mean": float(np.mean(d)), "std": float(np.std(d))}


def baselines(data) -> dict:
    out = {}
    for split in ("test", "hard"):
        res = evaluate_baselines(data[split])
        out[split] = {name: 100 * r.aggregates()["epdms"] for name, r in res.items()}
    return out


# ---------------------------------------------------------------------------- report
def fmt(stat: dict, signed: bool = False) -> str:
    return f"{stat['mean']:+.1f} ± {stat['std']:.1f}" if signed else f"{stat['mean']:.1f} ± {stat['std']:.1f}"


def markdown(result: dict, command: str) -> str:
    cfg, lines = result["config"], []
    lines += ["# SimScale-style experiment: real-only vs + synthetic", "",
              f"Command: `{command}`  ",
              f"Machine: {result['machine']} · torch threads 1 · wall time {result['total_seconds'] / 60:.1f} min  ",
              f"Date: {result['date']}", "",
              f"Data (fixed; world seeds {POOL_SEED}/{TEST_SEED}/{HARD_SEED}): {cfg['n_real']} real training scenes; "
              f"test {result['data']['test']} world scenes; hard {result['data']['hard']} scenes "
              f"({result['data']['hard_perturbed']} strongly perturbed starts with recovery labels + "
              f"{result['data']['hard_rare_event']} rare-event scenes, from a held-out world batch). "
              f"Synthetic: k accepted perturbations per real scene (nested 1× ⊂ 2× ⊂ 4×). "
              f"{cfg['steps']} training steps for every cell; {cfg['seeds']} training seeds (data fixed). "
              "EPDMS ×100, mean ± std (ddof 0) over seeds; Δ = paired per-seed difference vs the same planner on real only.", "",
              "| planner | synthetic | train scenes (real + syn) | test EPDMS | hard EPDMS | Δ test | Δ hard | hard: perturbed | hard: rare events |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for c in result["cells"]:
        syn = "— (real only)" if c["volume"] == 0 else f"{c['expert']} {c['volume']}×"
        lines.append(
            f"| {c['planner']} | {syn} | {c['train_real']} + {c['train_synthetic']} | {fmt(c['test'])} | {fmt(c['hard'])} | "
            f"{fmt(c['delta_test'], True)} | {fmt(c['delta_hard'], True)} | {fmt(c['hard_perturbed'])} | {fmt(c['hard_rare_event'])} |")
    lines += ["", "Baselines (EPDMS ×100): " + "; ".join(
        f"{split}: " + ", ".join(f"{k} {v:.1f}" for k, v in vals.items()) for split, vals in result["baselines"].items()), ""]
    lines += ["Pseudo-expert label quality (EPDMS of the label in its own synthetic scene, 1× subset, reactive agents): "
              + "; ".join(f"{e}: mean {r['label_quality'].get('mean', float('nan')):.3f}, "
                          f"share ≥ 0.8 {r['label_quality'].get('share_ge_0.8', float('nan')):.2f}"
                          for e, r in result["synthetic"].items()), ""]
    t = result["target"]
    lines += [f"Target (issue 8): ≥ +{TARGET_HARD_GAIN:g} EPDMS on the hard split → best Δ hard "
              f"{t['best_delta_hard']:+.1f} ({t['best_cell']}): **{'met' if t['met'] else 'missed'}**.", ""]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, 2 seeds (a few minutes)")
    parser.add_argument("--n-real", type=int, default=None, help="real training scenes (default 600; quick 120)")
    parser.add_argument("--n-test", type=int, default=None, help="test scenes (default 400; quick 100)")
    parser.add_argument("--hard-source", type=int, default=None,
                        help="held-out world scenes the hard split is built from (default 400; quick 120)")
    parser.add_argument("--steps", type=int, default=None, help="training steps per run (default 400; quick 100)")
    parser.add_argument("--seeds", type=int, default=None, help="training seeds (default 3; quick 2)")
    parser.add_argument("--volumes", type=int, nargs="*", default=None, help="synthetic volumes × real (default 1 2 4)")
    parser.add_argument("--experts", nargs="*", default=list(EXPERTS), choices=EXPERTS)
    parser.add_argument("--planners", nargs="*", default=["regression", "scoring"], choices=["regression", "scoring"])
    parser.add_argument("--scoring-volumes", type=int, nargs="*", default=[1],
                        help="volumes run for the scoring planner (reward targets: ~32 rollouts per scene)")
    parser.add_argument("--scoring-batch-size", type=int, default=128,
                        help="minibatch of the scoring planner (its 256-candidate head makes each step costly)")
    parser.add_argument("--out", default=None, help="directory for simscale.json + simscale.md")
    args = parser.parse_args()
    q = args.quick
    args.n_real = args.n_real or (120 if q else 600)
    args.n_test = args.n_test or (100 if q else 400)
    args.hard_source = args.hard_source or (120 if q else 400)
    args.steps = args.steps or (100 if q else 400)
    args.seeds = args.seeds or (2 if q else 3)
    args.volumes = sorted(set(args.volumes or ([1, 2] if q else [1, 2, 4])))
    if any(v < 1 for v in args.volumes) or not set(args.scoring_volumes) <= set(args.volumes):
        parser.error(f"--volumes must be positive and include every --scoring-volumes {args.scoring_volumes}")
    torch.set_num_threads(1)

    t0 = time.perf_counter()
    data = build_data(args)
    sets = training_sets(data, args.volumes, args.experts)
    t = time.perf_counter()
    base = baselines(data)
    base_seconds = time.perf_counter() - t
    cells = run_cells(args, data, sets)
    hard_cells = [c for c in cells if c["volume"]]
    best = max(hard_cells, key=lambda c: c["delta_hard"]["mean"]) if hard_cells else None
    kinds = np.asarray(data["hard"].meta["hard_kind"], dtype=object)
    result = {
        "benchmark": "simscale", "quick": q,
        "config": {k: getattr(args, k) for k in ("n_real", "n_test", "hard_source", "steps", "seeds", "volumes",
                                                  "experts", "planners", "scoring_volumes", "scoring_batch_size")},
        "data": {"real_train": len(data["real"]), "test": len(data["test"]), "hard": len(data["hard"]),
                 "hard_perturbed": int((kinds == "perturbed").sum()), "hard_rare_event": int((kinds == "rare_event").sum()),
                 "synthetic_max_volume": {e: len(s) for e, s in data["synthetic"].items()},
                 "hard_report": {k: v for k, v in data["hard_report"].items() if isinstance(v, (int, float, str))}},
        "synthetic": data["synthetic_reports"],
        "baselines": base,
        "cells": cells,
        "target": {"hard_gain_points": TARGET_HARD_GAIN,
                   "best_delta_hard": best["delta_hard"]["mean"] if best else float("nan"),
                   "best_cell": f"{best['planner']} + {best['expert']} {best['volume']}×" if best else None,
                   "met": bool(best and best["delta_hard"]["mean"] >= TARGET_HARD_GAIN)},
        "seconds": {**data["seconds"], "baselines": base_seconds, "total": time.perf_counter() - t0},
        "total_seconds": time.perf_counter() - t0,
        "machine": f"{platform.processor() or platform.machine()} · {os.cpu_count()} CPUs · "
                   f"load average at end {[round(x, 2) for x in os.getloadavg()]}",
        "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
    print(json.dumps(result, indent=1), flush=True)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        command = "OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_simscale.py " + shlex.join(sys.argv[1:])
        result["command"] = command
        (out / "simscale.json").write_text(json.dumps(result, indent=1))
        (out / "simscale.md").write_text(markdown(result, command))


if __name__ == "__main__":
    main()
