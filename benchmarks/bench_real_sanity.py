"""Does the human driver pass our scorer on real logs? Per real source (AV2 sensor, AV2
forecasting, nuScenes, Waymo) the raw (no human filter) NC, DAC, DDC, TLC and EPDMS of the logged
expert, the rule planner and constant velocity, plus the scene ids where the expert fails.

    .venv/bin/python benchmarks/bench_real_sanity.py [--quick] [--out benchmarks/results/real_sanity.json]

Target: the logged expert's raw NC, DAC and DDC ≥ 0.95 on every source (a lower value points to
a map reconstruction, agent box, frame or timing bug in the importer, not to bad driving).
``--quick`` imports every log at a 1 s stride instead of the importers' defaults (AV2 0.2 s,
ScenarioNet 0.5 s). Data: ../shared/data/av2 (Argoverse 2, CC BY-NC-SA 4.0) and
../shared/data/scenarionet (nuScenes CC BY-NC-SA 4.0, Waymo Open Dataset non-commercial licence).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
METRICS = ("nc", "dac", "ddc", "tlc", "epdms")
TARGETS = {"nc": 0.95, "dac": 0.95, "ddc": 0.95}


def load_sources(quick: bool) -> dict:
    """{source name: SceneBatch} for every real source present under ../shared/data."""
    from autoscale_core.io import import_av2
    from autoscale_core.io.scenarionet import import_scenarionet

    stride_av2, stride_sn = (1.0, 1.0) if quick else (0.2, 0.5)
    sources = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importer notes (dropped 1-point lanes) are in the import tests
        if (SHARED / "av2" / "sensor_logs").is_dir():
            sources["av2_sensor"] = import_av2(SHARED / "av2" / "sensor_logs", stride_s=stride_av2)[0]
        if (SHARED / "av2" / "forecasting").is_dir():
            sources["av2_forecasting"] = import_av2(SHARED / "av2" / "forecasting", stride_s=stride_av2)[0]
        if (SHARED / "scenarionet").is_dir():
            batch = import_scenarionet(SHARED / "scenarionet", stride_s=stride_sn)[0]
            for name in sorted(set(batch.meta["source"])):
                sources[str(name)] = batch.subset(np.flatnonzero(batch.meta["source"] == name))
    return sources


def score_source(batch) -> dict:
    from autoscale_core.sim.planner import RulePlanner, constant_velocity, logged_expert
    from autoscale_core.sim.scoring import score_trajectories

    planners = {"logged_expert": logged_expert, "rule": lambda b: RulePlanner().plan(b), "constant_velocity": constant_velocity}
    out = {"scenes": len(batch), "logs": len(set(batch.meta["log_id"]))}
    for name, plan in planners.items():
        start = time.perf_counter()
        result = score_trajectories(batch, plan(batch)[:, None], human_filter=False)
        row = {m: round(float(getattr(result, m)[:, 0].mean()), 4) for m in METRICS}
        row["seconds"] = round(time.perf_counter() - start, 2)
        if name == "logged_expert":
            row["failures"] = {m: [str(s) for s in batch.meta["scene_id"][getattr(result, m)[:, 0] < 1.0]]
                               for m in ("nc", "dac", "ddc", "tlc")}
            row["meets_target"] = all(row[m] >= t for m, t in TARGETS.items())
        out[name] = row
    out["tlc_applicable"] = bool(((batch.lane_tl > 0) & batch.lane_valid[..., None]).any())
    return out


def nuscenes_ablations() -> dict:
    """Logged-expert NC/DAC/DDC on nuScenes without each importer fix (does the fix matter?)."""
    import autoscale_core.io.scenarionet as sn
    import autoscale_core.io.scenarionet_map as sn_map
    from autoscale_core.sim.scoring import score_trajectories

    def expert(batch) -> dict:
        result = score_trajectories(batch, batch.expert_trajectory()[:, None], human_filter=False)
        return {m: round(float(getattr(result, m)[:, 0].mean()), 4) for m in ("nc", "dac", "ddc")}

    folder = SHARED / "scenarionet" / "nuscenes"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        batch = sn.import_scenarionet(folder)[0]
        out = {"as_imported": expert(batch), "ego_box_as_written_1.73x4.08": expert(batch.replace(ego_size=batch.ego_size[:, ::-1].copy()))}
        shift, sn.EGO_ORIGIN_TO_CENTER_M["nuscenes"] = sn.EGO_ORIGIN_TO_CENTER_M["nuscenes"], 0.0
        try:
            out["no_rear_axle_shift"] = expert(sn.import_scenarionet(folder)[0])
        finally:
            sn.EGO_ORIGIN_TO_CENTER_M["nuscenes"] = shift
        piece, sn_map.LANE_PIECE_M = sn_map.LANE_PIECE_M, 1e9
        try:
            out["lanes_not_cut_into_pieces"] = expert(sn.import_scenarionet(folder)[0])
        finally:
            sn_map.LANE_PIECE_M = piece
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 s stride everywhere (fewer, less correlated scenes)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "real_sanity.json"))
    args = parser.parse_args()
    start = time.perf_counter()
    sources = load_sources(args.quick)
    result = {
        "benchmark": "real_sanity", "quick": args.quick, "human_filter": False, "targets": TARGETS,
        "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count()},
        "sources": {name: score_source(batch) for name, batch in sources.items()},
    }
    if (SHARED / "scenarionet" / "nuscenes").is_dir():
        result["nuscenes_ablations"] = nuscenes_ablations()
    result["all_targets_met"] = all(s["logged_expert"]["meets_target"] for s in result["sources"].values())
    result["seconds"] = round(time.perf_counter() - start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
