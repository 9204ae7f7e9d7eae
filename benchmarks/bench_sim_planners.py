"""Planner baselines on the embedded world: mean EPDMS by city and topology.

Scores the logged expert, the rule planner (PDM-Closed-like) and constant velocity on
``--scenes`` generated scenes with the EPDMS scorer (log-replay agents, human filter on; EP
normalised by the rule planner's best compliant proposal). Also reports the unfiltered EPDMS, the
classic PDMS, sub-score means, and the rule planner's speed (scenes/s). Prints one JSON object.

Usage: ``.venv/bin/python benchmarks/bench_sim_planners.py [--scenes 300] [--reactive]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from autoscale_core.sim.planner import RulePlanner, constant_velocity, logged_expert  # noqa: E402
from autoscale_core.sim.scoring import score_trajectories  # noqa: E402
from autoscale_core.world import generate_world  # noqa: E402

SUBSCORES = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc")


def grouped(values: np.ndarray, keys: np.ndarray) -> dict[str, float]:
    return {str(k): round(float(values[keys == k].mean()), 4) for k in np.unique(keys)}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--scenes", type=int, default=300)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--reactive", action="store_true")
    a = p.parse_args()
    t0 = time.perf_counter()
    batch = generate_world(a.scenes, seed=a.seed)
    t_world = time.perf_counter() - t0
    planner = RulePlanner()
    t0 = time.perf_counter()
    proposals, proposal_scores = planner.score_proposals(batch)
    rule_plan = proposals[np.arange(len(batch)), proposal_scores.epdms.argmax(-1)]
    t_rule = time.perf_counter() - t0
    reference = proposal_scores.reference_progress
    plans = {"logged_expert": logged_expert(batch), "rule_planner": rule_plan, "constant_velocity": constant_velocity(batch)}
    city, topology = batch.meta["city"], batch.meta["topology"]
    results = {}
    for name, plan in plans.items():
        t0 = time.perf_counter()
        r = score_trajectories(batch, plan[:, None], reactive=a.reactive, reference_progress=reference)
        t_score = time.perf_counter() - t0
        raw = score_trajectories(batch, plan[:, None], reactive=a.reactive, reference_progress=reference, human_filter=False)
        epdms = r.epdms[:, 0]
        results[name] = {
            "epdms": round(float(epdms.mean()), 4),
            "epdms_unfiltered": round(float(raw.epdms.mean()), 4),
            "pdms": round(float(r.pdms.mean()), 4),
            "by_city": grouped(epdms, city),
            "by_topology": grouped(epdms, topology),
            "subscores": {k: round(float(getattr(r, k).mean()), 4) for k in SUBSCORES},
            "subscores_unfiltered": {k: round(float(getattr(raw, k).mean()), 4) for k in SUBSCORES},
            "collision_rate": round(float(r.collision.mean()), 4),
            "scoring_seconds": round(t_score, 2),
        }
    out = {
        "benchmark": "sim_planners",
        "scenes": len(batch),
        "seed": a.seed,
        "reactive_agents": a.reactive,
        "world_generation_seconds": round(t_world, 2),
        "scene_counts": {"by_city": {str(k): int((city == k).sum()) for k in np.unique(city)},
                         "by_topology": {str(k): int((topology == k).sum()) for k in np.unique(topology)}},
        "rule_planner_scenes_per_s": round(len(batch) / t_rule, 2),
        "rule_planner_proposals": len(planner.speed_fractions) * len(planner.lateral_offsets),
        "results": results,
        "notes": "EPDMS with NAVSIM-v2 human filter; EP denominator = best compliant rule-planner proposal",
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
