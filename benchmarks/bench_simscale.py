"""SimScale-style experiment: does adding synthetic (perturbed, pseudo-expert-labelled) scenes to
real training data improve closed-loop EPDMS, especially on the hard split?

Design (all data fixed by world seeds; only the training seed varies across repeats):

* real train pool: ``generate_world(n_real, seed=1)``; test: ``generate_world(n_test, seed=10_001)``;
  hard: the **independent** hard split (``autoscale_core.synthetic.independent_hard``) of
  ``generate_world(hard_source, seed=20_001)``: starts from a perturbation family training never
  uses (heading, longitudinal, stopped, behind/beside an agent), the recorded ego future as the
  expert (never the recovery labeller), reactive agents, plus that batch's rare-event scenes;
  real hard: the same perturbations of the AV2 logs in ``../shared/data/av2`` (when present).
  Checked: no hard scene shares a parent with the training data.
* "more real data" control: the real pool plus as many extra real scenes (world seed 50_001) as
  the recovery k× set adds, so a gain from synthetic data can be told from a gain from volume.
* synthetic: ``generate_synthetic(real_pool, scenes_per_parent=max(volumes), expert=e)`` once per
  pseudo-expert e ∈ {recovery, planner}; the k× set keeps each parent's first k accepted scenes
  (ids ``…-syn1-<j>``, j < k), so 1× ⊂ 2× ⊂ 4× (nested, as in SimScale's volume sweep).
* each planner type is trained on real-only and on real + synthetic (uniform sampling weights,
  the same step budget, batch size and seed per planner type), then evaluated on test and hard.
  EPDMS is reported ×100 (points), mean ± std over training seeds, and Δ vs real-only as the
  mean ± std of per-seed paired differences with a 95 % paired t interval.
* rewards-only (SimScale's best arm, scoring planner only): the recovery k× perturbed starts with
  ``has_expert = False``, so they add reward (sub-score) supervision and no imitation term (the
  scoring loss masks imitation per scene). Deviation: the scorer's human filter in those scenes
  still uses the scene's ego future (the recovery label) as the "logged expert"; the label is never
  an imitation target.
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
from scipy.stats import t as t_dist

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from autoscale_core.planning import evaluate_baselines, evaluate_planner, train_planner  # noqa: E402
from autoscale_core.scene import SceneBatch  # noqa: E402
from autoscale_core.synthetic import generate_synthetic, score_labels_epdms  # noqa: E402
from autoscale_core.synthetic.independent_hard import build_independent_hard_split, training_parent_ids  # noqa: E402
from autoscale_core.world import generate_world  # noqa: E402

POOL_SEED, TEST_SEED, HARD_SEED, SYN_SEED, EXTRA_REAL_SEED = 1, 10_001, 20_001, 0, 50_001
AV2_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "av2"
EXPERTS = ("recovery", "planner")
TARGET_HARD_GAIN = 5.0  # EPDMS points on the hard split (issue 8)


# ---------------------------------------------------------------------------- data
def build_data(args) -> dict:
    """Real pool, extra real pool, test, the independent hard splits and the max-volume synthetic
    set per expert (all fixed)."""
    t = time.perf_counter()
    real = generate_world(args.n_real, seed=POOL_SEED + args.world_offset)
    test = generate_world(args.n_test, seed=TEST_SEED + args.world_offset)
    seconds = {"world": time.perf_counter() - t}
    synthetic, reports = {}, {}
    for expert in args.experts:
        t = time.perf_counter()
        syn, rep = generate_synthetic(real, scenes_per_parent=max(args.volumes), expert=expert,
                                      seed=SYN_SEED + args.world_offset, score_labels=False)
        synthetic[expert] = syn
        seconds[f"synthetic_{expert}"] = time.perf_counter() - t
        one_x = syn.subset(np.flatnonzero(synthetic_rank(syn) < 1))
        t = time.perf_counter()  # label quality on the 1× subset only (scoring every label is costly)
        rep.label_epdms = score_labels_epdms(one_x)
        seconds[f"label_score_{expert}"] = time.perf_counter() - t
        reports[expert] = {k: v for k, v in rep.as_dict().items() if k != "rounds"}
    n_extra = max((len(s) for s in synthetic.values()), default=0)
    extra_real = generate_world(max(n_extra, 1), seed=EXTRA_REAL_SEED + args.world_offset)
    training = training_parent_ids(SceneBatch.concatenate([_common(real), _common(extra_real)]),
                                   parent_ids=[p for s in synthetic.values() for p in s.meta["parent_id"]])
    t = time.perf_counter()
    hard = build_independent_hard_split({"world": generate_world(args.hard_source, seed=HARD_SEED + args.world_offset)}, seed=0,
                                        rare_sources=["world"], training_ids=training)
    real_hard = None
    if AV2_ROOT.is_dir() and not args.no_av2:
        from autoscale_core.io import import_av2

        real_hard = build_independent_hard_split({"av2": import_av2(AV2_ROOT)[0]}, seed=0, training_ids=training)
    seconds["hard_splits"] = time.perf_counter() - t
    check_disjoint(real, extra_real, test, [hard] + ([real_hard] if real_hard else []), synthetic)
    return {"real": real, "extra_real": extra_real, "test": test, "hard": hard.scenes, "hard_report": hard.report,
            "real_hard": real_hard.scenes if real_hard else None,
            "real_hard_report": real_hard.report if real_hard else None,
            "synthetic": synthetic, "synthetic_reports": reports, "seconds": seconds}


def _common(batch: SceneBatch) -> SceneBatch:
    keep = {"scene_id", "source", "city", "topology", "events", "split", "parent_id"}
    return batch.replace(meta={k: v for k, v in batch.meta.items() if k in keep})


def synthetic_rank(syn: SceneBatch) -> np.ndarray:
    """(S,) j of each id ``f"{parent}-syn1-{j}"``: the scene's rank among its parent's accepted ones."""
    return np.array([int(str(s).rsplit("-", 1)[1]) for s in syn.meta["scene_id"]])


def check_disjoint(real, extra_real, test, hards, synthetic) -> None:
    """Raise if the test/hard splits share a scene (or a hard scene's parent) with training data."""
    train_ids = {str(s) for s in real.meta["scene_id"]} | {str(s) for s in extra_real.meta["scene_id"]}
    for syn in synthetic.values():
        train_ids |= {str(s) for s in syn.meta["scene_id"]} | {str(p) for p in syn.meta["parent_id"]}
    hard_ids = set()
    for hard in hards:
        hard_ids |= {str(s) for s in hard.scenes.meta["scene_id"]} | hard.parent_ids
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
    if "recovery" in experts:  # rewards-only (SimScale's best arm): the perturbed starts, no trajectory label
        syn = data["synthetic"]["recovery"]
        rank = synthetic_rank(syn)
        for v in volumes:
            part = syn.subset(np.flatnonzero(rank < v))
            a = real.replace(meta={**{k: real.meta[k] for k in keep}, "has_expert": np.ones(len(real), bool)})
            b = part.replace(meta={**{k: part.meta[k] for k in keep}, "has_expert": np.zeros(len(part), bool)})
            sets[("rewards_only", v)] = SceneBatch.concatenate([a, b])
    for v in volumes:  # "more real data" control: as many added real scenes as recovery k× adds
        added = len(sets.get(("recovery", v), real)) - len(real)
        extra = data["extra_real"].subset(np.arange(min(added, len(data["extra_real"]))))
        a = real.replace(meta={k: real.meta[k] for k in keep})
        b = extra.replace(meta={k: extra.meta[k] for k in keep})
        sets[("more_real", v)] = SceneBatch.concatenate([a, b])
    return sets


# ---------------------------------------------------------------------------- runs
def evaluate(model, test: SceneBatch, hard: SceneBatch, real_hard: SceneBatch | None) -> dict:
    """EPDMS ×100 on test, hard (overall, perturbed starts, rare events) and real hard; EC means."""
    res = evaluate_planner(model, test)
    out = {"test": 100 * res.aggregates()["epdms"], "test_ec": 100 * res.aggregates()["ec"]}
    res = evaluate_planner(model, hard)
    out["hard"] = 100 * float(np.mean(res.scores["epdms"]))
    out["hard_ec"] = 100 * float(np.mean(res.scores["ec"]))
    kinds = np.asarray(hard.meta["hard_kind"], dtype=object)
    for name, mask in (("perturbed", kinds != "rare_event"), ("rare_event", kinds == "rare_event")):
        out[f"hard_{name}"] = 100 * float(np.mean(res.scores["epdms"][mask])) if mask.any() else float("nan")
    out["real_hard"] = 100 * evaluate_planner(model, real_hard).aggregates()["epdms"] if real_hard is not None else float("nan")
    return out


def run_cells(args, data, sets) -> list[dict]:
    cells = []
    for planner in args.planners:
        volumes = args.volumes if planner == "regression" else args.scoring_volumes
        conditions = [("real", 0)] + [(e, v) for e in args.experts for v in volumes]
        if planner == "scoring":  # only a planner that learns from rewards can use unlabelled scenes
            conditions += [("rewards_only", v) for v in volumes if ("rewards_only", v) in sets]
        conditions += [("more_real", v) for v in volumes if ("more_real", v) in sets]
        extra = {"batch_size": args.scoring_batch_size} if planner == "scoring" else {}
        for expert, volume in conditions:
            batch = sets[(expert, volume)]
            per_seed, seconds = [], []
            for seed in range(args.seeds):
                t = time.perf_counter()
                model = train_planner(batch, planner=planner, seed=seed, steps=args.steps, device="cpu", **extra)
                per_seed.append(evaluate(model, data["test"], data["hard"], data["real_hard"]))
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
        for key in ("test", "hard", "hard_perturbed", "hard_rare_event", "real_hard"):
            d = np.array([r[key] - s[key] for r, s in zip(c["per_seed"], b["per_seed"])])
            half = float(t_dist.ppf(0.975, len(d) - 1) * np.std(d, ddof=1) / np.sqrt(len(d))) if len(d) > 1 else float("nan")
            c[f"delta_{key}"] = {"mean": float(np.mean(d)), "std": float(np.std(d)),
                                 "ci95": [float(np.mean(d)) - half, float(np.mean(d)) + half]}


def baselines(data) -> dict:
    out = {}
    for split in ("test", "hard", "real_hard"):
        if data[split] is None:
            continue
        res = evaluate_baselines(data[split])
        out[split] = {name: 100 * r.aggregates()["epdms"] for name, r in res.items()}
    return out


# ---------------------------------------------------------------------------- report
def fmt(stat: dict, signed: bool = False) -> str:
    return f"{stat['mean']:+.1f} ± {stat['std']:.1f}" if signed else f"{stat['mean']:.1f} ± {stat['std']:.1f}"


def ci(stat: dict) -> str:
    lo, hi = stat.get("ci95", [float("nan")] * 2)
    return f"[{lo:+.1f}, {hi:+.1f}]"


def markdown(result: dict, command: str) -> str:
    cfg, data, lines = result["config"], result["data"], []
    lines += ["# SimScale-style experiment on the independent hard split", "",
              f"Command: `{command}`  ",
              f"Machine: {result['machine']} · torch threads 1 · wall time {result['total_seconds'] / 60:.1f} min  ",
              f"Date: {result['date']}", "",
              f"Data (fixed; world seeds {POOL_SEED}/{TEST_SEED}/{HARD_SEED}, extra real {EXTRA_REAL_SEED}, each + world offset "
              f"{cfg.get('world_offset', 0)}): "
              f"{cfg['n_real']} real training scenes; test {data['test']} world scenes; hard {data['hard']} scenes "
              f"({data['hard_perturbed']} starts from the independent perturbation family — heading, longitudinal, "
              f"stopped, behind/beside an agent; recorded ego future as expert; reactive agents — + "
              f"{data['hard_rare_event']} rare-event scenes, all from world seed {HARD_SEED} + offset, which training never sees); "
              f"real hard {data['real_hard']} perturbed AV2 scenes. No hard scene shares a parent with training data "
              f"(checked). Synthetic: k accepted perturbations per real scene (nested 1× ⊂ 2× ⊂ 4×). "
              f"{cfg['steps']} training steps for every cell; {cfg['seeds']} training seeds (data fixed). "
              "EPDMS ×100 (two-stage EC included), mean ± std (ddof 0) over seeds; Δ = paired per-seed difference vs "
              "the same planner on real only, with its 95 % paired t interval.", "",
              "| planner | added data | train scenes (real + added) | test | hard | real hard (AV2) | Δ test | Δ hard [95 % CI] | Δ real hard | hard: perturbed | hard: rare |",
              "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for c in result["cells"]:
        added = "— (real only)" if c["volume"] == 0 else f"{c['expert']} {c['volume']}×"
        lines.append(
            f"| {c['planner']} | {added} | {c['train_real']} + {c['train_synthetic']} | {fmt(c['test'])} | {fmt(c['hard'])} | "
            f"{fmt(c['real_hard'])} | {fmt(c['delta_test'], True)} | {fmt(c['delta_hard'], True)} {ci(c['delta_hard'])} | "
            f"{fmt(c['delta_real_hard'], True)} | {fmt(c['hard_perturbed'])} | {fmt(c['hard_rare_event'])} |")
    lines += ["", "Baselines (EPDMS ×100): " + "; ".join(
        f"{split}: " + ", ".join(f"{k} {v:.1f}" for k, v in vals.items()) for split, vals in result["baselines"].items()), ""]
    lines += ["Pseudo-expert label quality (EPDMS of the label in its own synthetic scene, 1× subset, reactive agents): "
              + "; ".join(f"{e}: mean {r['label_quality'].get('mean', float('nan')):.3f}, "
                          f"share ≥ 0.8 {r['label_quality'].get('share_ge_0.8', float('nan')):.2f}"
                          for e, r in result["synthetic"].items()), ""]
    t = result["target"]
    lines += [f"Target (issue 16): ≥ +{TARGET_HARD_GAIN:g} EPDMS on the independent hard split with the paired interval "
              f"above 0 → best synthetic arm {t['best_cell']}: Δ hard {t['best_delta_hard']:+.1f}, 95 % CI "
              f"[{t['best_ci95'][0]:+.1f}, {t['best_ci95'][1]:+.1f}]: **{'met' if t['met'] else 'not met'}**.", ""]
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
    parser.add_argument("--out", default=None, help="directory for <name>.json + <name>.md")
    parser.add_argument("--name", default="simscale", help="output file stem (default simscale)")
    parser.add_argument("--no-av2", action="store_true", help="skip the real (AV2) hard split")
    parser.add_argument("--world-offset", type=int, default=0,
                        help="added to every world seed (pool, test, hard, synthetic, extra real): another world split")
    parser.add_argument("--no-baselines", action="store_true",
                        help="skip the rule/constant-velocity baselines on test and hard (they do not depend on training)")
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
    base = {} if args.no_baselines else baselines(data)
    base_seconds = time.perf_counter() - t
    cells = run_cells(args, data, sets)
    hard_cells = [c for c in cells if c["volume"] and c["expert"] != "more_real"]
    best = max(hard_cells, key=lambda c: c["delta_hard"]["mean"]) if hard_cells else None
    kinds = np.asarray(data["hard"].meta["hard_kind"], dtype=object)
    result = {
        "benchmark": "simscale", "quick": q,
        "config": {k: getattr(args, k) for k in ("n_real", "n_test", "hard_source", "steps", "seeds", "volumes",
                                                  "experts", "planners", "scoring_volumes", "scoring_batch_size",
                                                  "world_offset", "no_baselines")},
        "data": {"real_train": len(data["real"]), "test": len(data["test"]), "hard": len(data["hard"]),
                 "hard_perturbed": int((kinds != "rare_event").sum()), "hard_rare_event": int((kinds == "rare_event").sum()),
                 "real_hard": 0 if data["real_hard"] is None else len(data["real_hard"]),
                 "real_hard_report": data["real_hard_report"],
                 "synthetic_max_volume": {e: len(s) for e, s in data["synthetic"].items()},
                 "hard_report": data["hard_report"]},
        "synthetic": data["synthetic_reports"],
        "baselines": base,
        "cells": cells,
        "target": {"hard_gain_points": TARGET_HARD_GAIN,
                   "best_delta_hard": best["delta_hard"]["mean"] if best else float("nan"),
                   "best_cell": f"{best['planner']} + {best['expert']} {best['volume']}×" if best else None,
                   "best_ci95": best["delta_hard"]["ci95"] if best else [float("nan")] * 2,
                   "met": bool(best and best["delta_hard"]["mean"] >= TARGET_HARD_GAIN and best["delta_hard"]["ci95"][0] > 0)},
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
        (out / f"{args.name}.json").write_text(json.dumps(result, indent=1))
        (out / f"{args.name}.md").write_text(markdown(result, command))


if __name__ == "__main__":
    main()
