"""Benchmark: SimScale synthetic scene generation throughput and label quality (prints JSON).

Timed end to end per chunk of real scenes: perturbation + feasibility checks, pseudo-expert
labels, reactive re-simulation of the agents, validation, and BEV rendering to PNG files (what
``add_scenes`` does for the images), one task per chunk of parents through the executor interface
(``--executor``: ``serial``, ``process[:N]`` (default ``process:2``) or ``ray[:address]``; the
result does not depend on the executor or the chunking: every parent draws from its own seeded
stream).
Not timed: building the world, and scoring label quality (EPDMS of each label in its own scene,
reactive agents, no human filter) on a random sample of the synthetic scenes; for reference the
logged experts of the sampled parents are scored the same way.

Target (issue 6): 5 synthetic scenes per real scene for 2,000 real scenes in under 5 minutes on
2 cores.

    .venv/bin/python benchmarks/bench_synthetic.py            # 2,000 real scenes, process:2
    .venv/bin/python benchmarks/bench_synthetic.py --quick    # 100 real scenes
    .venv/bin/python benchmarks/bench_synthetic.py --executor ray   # local Ray (ray:auto = cluster)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from dataclasses import dataclass

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from autoscale_core.executor import ProcessExecutor, RayExecutor, SceneChunk, get_executor  # noqa: E402
from autoscale_core.render import render_batch_to_files  # noqa: E402
from autoscale_core.scene import SceneBatch  # noqa: E402
from autoscale_core.synthetic.generate import ChunkTask, score_labels_epdms  # noqa: E402
from autoscale_core.synthetic.perturb import (
    PerturbationConfig,  # noqa: E402
    RejectReport,  # noqa: E402
)
from autoscale_core.world import generate_world  # noqa: E402

TARGET_SECONDS = 300.0
TARGET_REAL, TARGET_PER_PARENT = 2000, 5


@dataclass(frozen=True)
class GenerateAndRender:
    """One executor task: generate_synthetic's per-chunk work (:class:`ChunkTask`), then render."""

    generate: ChunkTask
    out_dir: str
    render: bool

    def __call__(self, chunk: SceneChunk):
        tic = time.perf_counter()
        synthetic, rejects, _, phases = self.generate(chunk)
        generated = time.perf_counter()
        if self.render and len(synthetic):
            render_batch_to_files(synthetic, self.out_dir)
        done = time.perf_counter()
        phases = dict(phases)
        phases["render"] = done - generated
        return synthetic, rejects, phases, done - tic


def quality(epdms: np.ndarray) -> dict:
    q = np.quantile(epdms, [0.1, 0.25, 0.5, 0.75, 0.9])
    return {"count": int(len(epdms)), "mean": round(float(epdms.mean()), 4),
            "p10": round(float(q[0]), 4), "p25": round(float(q[1]), 4), "median": round(float(q[2]), 4),
            "p75": round(float(q[3]), 4), "p90": round(float(q[4]), 4),
            "share_ge_0.8": round(float((epdms >= 0.8).mean()), 4), "share_zero": round(float((epdms == 0).mean()), 4)}


def _workers(executor) -> int | None:
    if isinstance(executor, ProcessExecutor):
        return executor.max_workers
    if isinstance(executor, RayExecutor):
        return executor.num_cpus
    return 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--real", type=int, default=TARGET_REAL, help="real scenes (default 2000)")
    parser.add_argument("--per-parent", type=int, default=TARGET_PER_PARENT)
    parser.add_argument("--expert", default="recovery", choices=("recovery", "planner"))
    parser.add_argument("--executor", default="process:2",
                        help="serial | process[:N] | ray[:address] (default process:2)")
    parser.add_argument("--workers", type=int, default=None,
                        help="deprecated: same as --executor process:N (1 = serial)")
    parser.add_argument("--chunk", type=int, default=100, help="parents per work item")
    parser.add_argument("--quality-sample", type=int, default=300, help="synthetic scenes scored for label quality")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-render", action="store_true")
    parser.add_argument("--quick", action="store_true", help="100 real scenes, 60 scored")
    args = parser.parse_args()
    if args.quick:
        args.real, args.quality_sample = 100, 60
    if args.workers is not None:
        args.executor = "serial" if args.workers <= 1 else f"process:{args.workers}"
    executor = get_executor(args.executor)

    tic = time.perf_counter()
    world = generate_world(args.real, seed=args.seed)
    world_seconds = time.perf_counter() - tic

    out_dir = tempfile.mkdtemp(prefix="bench-synthetic-")
    chunks = [world.subset(slice(s, s + args.chunk)) for s in range(0, len(world), args.chunk)]
    jobs = [SceneChunk(c, i * args.chunk, label="round 1") for i, c in enumerate(chunks)]
    task = GenerateAndRender(ChunkTask(PerturbationConfig(seed=args.seed), args.per_parent, args.expert, 1,
                                       reactive=True, score_labels=False), out_dir, not args.no_render)
    tic = time.perf_counter()
    with executor:
        results = executor.map(task, jobs)
    wall = time.perf_counter() - tic

    synthetic = SceneBatch.concatenate([r[0] for r in results if len(r[0])])
    rejects = RejectReport()
    phases: dict[str, float] = {}
    for _, rej, ph, _ in results:
        rejects = rejects.merge(rej)
        for k, v in ph.items():
            phases[k] = phases.get(k, 0.0) + v

    rng = np.random.default_rng(args.seed)
    sample = np.sort(rng.choice(len(synthetic), size=min(args.quality_sample, len(synthetic)), replace=False))
    picked = synthetic.subset(sample)
    tic = time.perf_counter()
    label_epdms = score_labels_epdms(picked)
    score_seconds = time.perf_counter() - tic
    parent_ids = list(dict.fromkeys(str(p) for p in picked.meta["parent_id"]))
    index = {str(s): i for i, s in enumerate(world.meta["scene_id"])}
    parents = world.subset([index[p] for p in parent_ids])
    logged_epdms = score_labels_epdms(parents)

    rate = len(synthetic) / wall
    projected = TARGET_REAL * TARGET_PER_PARENT / rate
    print(json.dumps({
        "benchmark": "synthetic",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "workers": _workers(executor),
                    "executor": args.executor},
        "real_scenes": len(world),
        "scenes_per_parent": args.per_parent,
        "expert": args.expert,
        "synthetic_scenes": len(synthetic),
        "rendered": not args.no_render,
        "wall_seconds": round(wall, 2),
        "synthetic_scenes_per_second": round(rate, 2),
        "projected_seconds_for_target": round(projected, 1),
        "target_seconds": TARGET_SECONDS,
        "target_met": bool(projected < TARGET_SECONDS),
        "cpu_seconds_by_phase": {k: round(v, 2) for k, v in phases.items()},
        "world_seconds": round(world_seconds, 2),
        "rejects": rejects.as_dict(),
        "acceptance_rate": round(rejects.accepted / max(rejects.attempted, 1), 4),
        "label_quality_epdms": quality(label_epdms),
        "logged_expert_epdms_same_parents": quality(logged_epdms),
        "quality_scoring_seconds": round(score_seconds, 2),
    }, indent=2))


if __name__ == "__main__":
    main()
