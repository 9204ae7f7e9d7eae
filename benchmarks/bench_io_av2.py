"""Real AV2 scenes imported per second: core import, interchange round trip, and the full path
(import + BEV render + store + FiftyOne ingest). Prints one JSON object.

    .venv/bin/python benchmarks/bench_io_av2.py [--data ../shared/data/av2] [--repeats 3] [--no-ingest]

The ingest stage uses a private, temporary embedded MongoDB (unless FIFTYONE_DATABASE_URI is
set) and a temporary AUTOSCALE_HOME, so it never touches the user's datasets.
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
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _timed(fn, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "av2"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-ingest", action="store_true", help="skip the render + FiftyOne ingest stage")
    args = parser.parse_args()

    from autoscale_core.io import export_scenes, import_av2, import_scenes

    scratch = Path(tempfile.mkdtemp(prefix="bench-io-av2-"))
    seconds, (batch, report) = _timed(lambda: import_av2(args.data), args.repeats)
    n = len(batch)
    out = {
        "benchmark": "io_av2",
        "data": args.data,
        "logs": len(report.logs),
        "scenes": n,
        "skipped": report.skipped,
        "import_s": round(seconds, 4),
        "import_scenes_per_s": round(n / seconds, 1),
    }
    counter = iter(range(10**6))
    export_s, _ = _timed(lambda: export_scenes(batch, scratch / f"x{next(counter)}"), args.repeats)
    import_s, _ = _timed(lambda: import_scenes(scratch / "x0"), args.repeats)
    out.update(
        interchange_export_scenes_per_s=round(n / export_s, 1),
        interchange_import_scenes_per_s=round(n / import_s, 1),
    )
    if not args.no_ingest:
        if not os.environ.get("FIFTYONE_DATABASE_URI"):
            os.environ["FIFTYONE_DATABASE_DIR"] = str(scratch / "db")
        os.environ["AUTOSCALE_HOME"] = str(scratch / "home")
        os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
        import fiftyone as fo

        from fiftyone_plugin.engine.scenes import add_scenes, delete_scene_dataset

        name = f"bench-io-av2-{uuid.uuid4().hex[:8]}"
        fo.Dataset(name, persistent=True).delete()  # starts mongod outside the timed region
        dataset = fo.Dataset(name, persistent=True)
        try:
            start = time.perf_counter()
            scenes, _ = import_av2(args.data)
            add_scenes(dataset, scenes, render=True)
            full_s = time.perf_counter() - start
            out.update(
                end_to_end_s=round(full_s, 3),
                end_to_end_scenes_per_s=round(n / full_s, 1),
                samples=len(dataset),
            )
        finally:
            delete_scene_dataset(name)
    out.update(python=platform.python_version(), cpus=os.cpu_count(), repeats=args.repeats)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
