"""ScenarioNet import speed and yield on the real shared nuScenes / Waymo files: logs per minute
for the core import and for the full path (import + BEV render + store + FiftyOne ingest), planning
scenes per log at the default 0.5 s stride. Writes JSON.

    .venv/bin/python benchmarks/bench_io_scenarionet.py [--quick] [--out benchmarks/results/io_scenarionet.json]

Targets (issue #17): ≥ 50 logs per minute; the seven shared files give ≥ 150 planning scenes; a
20 s log gives ≥ 20 scenes at a 0.5 s stride. ``--quick``: one repeat, no FiftyOne ingest stage.
The ingest stage uses a private temporary embedded MongoDB (unless FIFTYONE_DATABASE_URI is set)
and a temporary AUTOSCALE_HOME. Data: nuScenes (CC BY-NC-SA 4.0) and Waymo Open Dataset
(non-commercial licence) scenes as converted by metadriverse/scenarionet.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "scenarionet"


def _timed(fn, repeats: int) -> tuple[float, float, object]:
    """Median wall and CPU seconds of ``repeats`` calls, and the last result."""
    walls, cpus, result = [], [], None
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        result = fn()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return statistics.median(walls), statistics.median(cpus), result


def _ingest(data: Path, scratch: Path) -> dict:
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        os.environ["FIFTYONE_DATABASE_DIR"] = str(scratch / "db")
    os.environ["AUTOSCALE_HOME"] = str(scratch / "home")
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    import fiftyone as fo

    from fiftyone_plugin.engine.scenarionet import import_scenarionet_into
    from fiftyone_plugin.engine.scenes import delete_scene_dataset

    name = f"bench-io-sn-{uuid.uuid4().hex[:8]}"
    fo.Dataset(name, persistent=True).delete()  # starts mongod outside the timed region
    try:
        start, cpu = time.perf_counter(), time.process_time()
        result = import_scenarionet_into(name, data, render=True)
        seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
        return {"end_to_end_s": round(seconds, 2), "end_to_end_cpu_s": round(cpu, 2),
                "end_to_end_logs_per_min": round(60 * result["files"] / seconds, 1),
                "end_to_end_logs_per_min_cpu": round(60 * result["files"] / cpu, 1),
                "samples": result["num_samples"]}
    finally:
        delete_scene_dataset(name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--quick", action="store_true", help="one repeat, no FiftyOne ingest")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "io_scenarionet.json"))
    args = parser.parse_args()
    from autoscale_core.io.scenarionet import import_scenarionet

    repeats = 1 if args.quick else 3
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the Waymo file's 1-point lanes are reported, not news here
        wall, cpu, (batch, report) = _timed(lambda: import_scenarionet(args.data), repeats)
        logs = len(report.logs)
        per_log = {str(log): int((batch.meta["log_id"] == log).sum()) for log in report.logs}
        durations = {str(log): float(batch.meta["t0"][batch.meta["log_id"] == log].max()) + 4.0 for log in report.logs}
        strides = {s: len(import_scenarionet(args.data, stride_s=s)[0]) for s in (0.2, 1.0)}
    out = {
        "benchmark": "io_scenarionet", "data": args.data, "quick": args.quick, "repeats": repeats,
        "logs": logs, "scenes": len(batch), "stride_s": 0.5,
        "import_wall_s": round(wall, 2), "import_cpu_s": round(cpu, 2),
        "logs_per_min_wall": round(60 * logs / wall, 1), "logs_per_min_cpu": round(60 * logs / cpu, 1),
        "scenes_per_log": per_log, "log_end_s": durations,
        "scenes_by_stride": {"0.2": strides[0.2], "0.5": len(batch), "1.0": strides[1.0]},
        "skipped": report.skipped,
        "targets": {
            "logs_per_min_ge_50_wall": 60 * logs / wall >= 50,
            "logs_per_min_ge_50_cpu": 60 * logs / cpu >= 50,  # wall time depends on the machine's other jobs
            "seven_files_ge_150_scenes": len(batch) >= 150,
            "every_20s_log_ge_20_scenes": min(per_log.values()) >= 20,
        },
    }
    if not args.quick:
        out.update(_ingest(Path(args.data), Path(tempfile.mkdtemp(prefix="bench-io-sn-"))))
    out.update(python=platform.python_version(), cpus=os.cpu_count(),
               load_average=[round(x, 2) for x in os.getloadavg()])
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
