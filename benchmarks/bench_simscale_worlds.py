"""SimScale across world splits: is the hard-split gain of recovery co-training a property of one world?

Runs ``bench_simscale.py`` on further world splits (``--world-offset``: every world seed — real
pool, test, hard source, synthetic, extra real — shifted) with one arm set: the regression
planner on real only, + recovery synthetic 4×, and the "more real data" control of the same size.
It then pools the per-seed paired differences to real-only over worlds × training seeds.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_simscale_worlds.py \\
        --offsets 1000,2000,3000,4000 --runs-dir /tmp/simscale_worlds --out benchmarks/results

World offset 0 is read from ``benchmarks/results/simscale.json`` (the full run, same sizes and
training schedule for these cells). A world whose ``<runs-dir>/simscale_world<offset>.json``
exists is read, not rerun. Writes ``<out>/simscale_worlds.{json,md}``.

Intervals: per world, the paired t interval over its 3 seeds (as ``bench_simscale`` reports);
pooled, (a) a t interval over the world means (df = worlds − 1: worlds are the independent unit)
and (b) over all world × seed differences (df = runs − 1; treats seeds of one world as
independent, so it is the narrower, optimistic one).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
from scipy.stats import t as t_dist

REPO = Path(__file__).resolve().parents[1]
SPLITS = ("test", "hard", "real_hard")
ARMS = ("recovery", "more_real")


def _interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return [float("nan"), float("nan")]
    half = t_dist.ppf(0.5 + level / 2, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))
    return [float(values.mean() - half), float(values.mean() + half)]


def run_world(offset: int, runs_dir: Path, args) -> Path:
    """Run bench_simscale for one world offset (unless its JSON exists); return the JSON path."""
    path = runs_dir / f"simscale_world{offset}.json"
    if path.exists():
        return path
    command = [sys.executable, str(REPO / "benchmarks" / "bench_simscale.py"), "--n-real", str(args.n_real),
               "--n-test", str(args.n_test), "--hard-source", str(args.hard_source), "--steps", str(args.steps),
               "--seeds", str(args.seeds), "--planners", "regression", "--experts", "recovery", "--volumes", "4",
               "--scoring-volumes", "4", "--no-baselines", "--world-offset", str(offset), "--out", str(runs_dir),
               "--name", f"simscale_world{offset}"]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    return path


def per_seed_deltas(result: dict) -> dict[str, dict[str, np.ndarray]]:
    """arm → split → (seeds,) paired differences to real only (EPDMS ×100), regression planner, 4×."""
    cells = {(c["expert"], c["volume"]): c for c in result["cells"] if c["planner"] == "regression"}
    base = cells[("none", 0)]["per_seed"]
    out = {}
    for arm in ARMS:
        seeds = cells[(arm, 4)]["per_seed"]
        out[arm] = {s: np.array([a[s] - b[s] for a, b in zip(seeds, base)], dtype=float) for s in SPLITS
                    if seeds[0].get(s) is not None and np.isfinite(seeds[0][s])}
    return out


def summarize(worlds: dict[int, dict]) -> dict:
    deltas = {w: per_seed_deltas(r) for w, r in worlds.items()}
    summary = {}
    for arm in ARMS:
        summary[arm] = {}
        for split in SPLITS:
            per_world = {w: d[arm][split] for w, d in deltas.items() if split in d[arm]}
            if not per_world:
                continue
            means = np.array([v.mean() for v in per_world.values()])
            runs = np.concatenate(list(per_world.values()))
            summary[arm][split] = {
                "per_world": {str(w): {"mean": float(v.mean()), "ci95": _interval(v), "per_seed": v.tolist()}
                              for w, v in per_world.items()},
                "pooled_mean": float(runs.mean()),
                "ci95_over_worlds": _interval(means),
                "ci95_over_runs": _interval(runs),
                "worlds_with_interval_above_0": int(sum(_interval(v)[0] > 0 for v in per_world.values())),
            }
    return summary


def markdown(record: dict) -> str:
    s, lines = record["summary"], []
    lines += ["# SimScale across world splits: regression planner, + recovery 4× vs real only", "",
              f"Command: `{record['command']}`", "", record["what_it_ran_on"], "",
              "| arm | split | " + " | ".join(f"world +{w}" for w in record["worlds"]) +
              " | pooled | 95 % over worlds | 95 % over runs |",
              "|---|---|" + "---:|" * (len(record["worlds"]) + 3)]
    for arm in ARMS:
        for split, v in s[arm].items():
            cells = [f"{v['per_world'][str(w)]['mean']:+.1f} [{v['per_world'][str(w)]['ci95'][0]:+.1f}, "
                     f"{v['per_world'][str(w)]['ci95'][1]:+.1f}]" if str(w) in v["per_world"] else "–"
                     for w in record["worlds"]]
            lo, hi = v["ci95_over_worlds"]
            rlo, rhi = v["ci95_over_runs"]
            lines.append(f"| {arm} 4× | {split} | " + " | ".join(cells) +
                         f" | **{v['pooled_mean']:+.1f}** | [{lo:+.1f}, {hi:+.1f}] | [{rlo:+.1f}, {rhi:+.1f}] |")
    lines += ["", "Δ = EPDMS ×100 of the arm minus real only, same world and training seed. Per world: mean and "
              "paired 95 % t interval over its seeds. Nothing is tuned on test or hard scenes.", ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--offsets", default="1000,2000,3000,4000", help="world offsets to add to world 0")
    parser.add_argument("--runs-dir", default="/tmp/simscale_worlds", help="per-world JSON (reused when present)")
    parser.add_argument("--world0", default=str(REPO / "benchmarks" / "results" / "simscale.json"))
    parser.add_argument("--n-real", type=int, default=600)
    parser.add_argument("--n-test", type=int, default=2000)
    parser.add_argument("--hard-source", type=int, default=1000)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", default=None, help="directory for simscale_worlds.{json,md}")
    args = parser.parse_args(argv)
    runs_dir = Path(args.runs_dir)
    runs_dir.mkdir(parents=True, exist_ok=True)
    offsets = [int(x) for x in args.offsets.split(",") if x.strip()]
    worlds = {0: json.loads(Path(args.world0).read_text())}
    for offset in offsets:
        worlds[offset] = json.loads(run_world(offset, runs_dir, args).read_text())
    for w, r in worlds.items():
        cfg = r["config"]
        same = (cfg["n_real"], cfg["n_test"], cfg["hard_source"], cfg["steps"], cfg["seeds"]) == (
            args.n_real, args.n_test, args.hard_source, args.steps, args.seeds)
        if not same:
            raise SystemExit(f"world +{w}: sizes {cfg} differ from the requested ones; rerun it")
    record = {
        "benchmark": "simscale_worlds",
        "command": "OMP_NUM_THREADS=1 python benchmarks/bench_simscale_worlds.py " + " ".join(argv or sys.argv[1:]),
        "worlds": sorted(worlds),
        "what_it_ran_on": (f"{len(worlds)} world splits (world seeds + offset {sorted(worlds)}; offset 0 = "
                           "benchmarks/results/simscale.json): each with its own 600 real training scenes, 2,000 test "
                           "scenes, an independent hard split from 1,000 held-out scenes of its own seed, and the "
                           "121 perturbed AV2 scenes as real hard (the same real scenes in every world; only the "
                           "trained planners differ); regression planner, 400 steps, 3 training seeds; distinct "
                           "generated scenes, none tiled."),
        "summary": summarize(worlds),
        "per_world_data": {str(w): r["data"] for w, r in worlds.items()},
    }
    text = json.dumps(record, indent=1)
    print(text)
    if args.out:
        out = Path(args.out)
        (out / "simscale_worlds.json").write_text(text + "\n")
        (out / "simscale_worlds.md").write_text(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
