"""The App grid's first paint at two grid zooms, interleaved on one server: what `autoscale app`'s
``grid_zoom`` default (:data:`fiftyone_plugin.engine.app.GRID_ZOOM`) buys.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_app_grid_zoom.py --scenes 20000 --pairs 5 \\
        --out benchmarks/results/app_grid_zoom.json

FiftyOne's grid asks for pages of 20 samples one after the other until the rows it lays out fill
its view (and the rows it keeps ready below), and draws its first tiles only once those pages are
in; the tile size (``grid_zoom``, 0-10) decides how many pages that is. This benchmark builds the
dataset as ``bench_app_scale.py`` does (``--scenes`` distinct scenes, the first 200 rendered),
starts one App server, then times ``--pairs`` pairs of grid loads, each load in a fresh headless
Chromium (1600 x 1000) and alternating the zooms (``--zooms``, default 7 = FiftyOne's default, then
ours), so that a load average drifting under a shared machine hits both alike. Signal: as
``bench_app_scale.py``'s grid (``--tiles`` tiles drawn and on screen). Recorded per load: the
seconds, the grid pages requested before the tiles were drawn (start, end, response bytes) and the
load average. The server serves the dataset before the first timed load (one untimed load), so this
measures the pages and the browser, not the server's first-request costs (``bench_app_scale.py``
has those).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

import bench_app_scale as app_scale  # noqa: E402  (after the path set-up)


def load_grid(chromium: str, url: str, name: str, tiles: int, timeout_s: float) -> dict:
    """One grid load in a fresh browser: seconds to ``tiles`` drawn tiles, and the grid pages."""
    from browser.app_driver import chromium_page

    with chromium_page(chromium, failure_name="app_grid_zoom") as page:
        pages, t0 = {}, [0.0]

        def on_request(request):
            if request.url.endswith("/graphql") and "paginateSamplesQuery" in (request.post_data or ""):
                after = json.loads(request.post_data).get("variables", {}).get("after")
                pages[id(request)] = {"after": after, "start": round(time.perf_counter() - t0[0], 3)}

        def on_done(request):
            if id(request) in pages:
                entry = pages[id(request)]
                entry["end"] = round(time.perf_counter() - t0[0], 3)
                try:
                    entry["bytes"] = len(request.response().body())
                except Exception:  # the body is gone (the page moved on): the timing still counts
                    pass

        page.on("request", on_request)
        page.on("requestfinished", on_done)
        t0[0] = time.perf_counter()
        page.goto(url + f"datasets/{name}", wait_until="commit")
        app_scale._drawn(page, "[data-cy='looker']", tiles, timeout_s)
        seconds = round(time.perf_counter() - t0[0], 3)
        before = [p for p in pages.values() if p["start"] <= seconds]
        return {"grid": seconds, "pages_before_paint": before}


def run(args, chromium: str) -> dict:
    import fiftyone as fo

    result = {"benchmark": "app_grid_zoom", "command": " ".join(["benchmarks/bench_app_grid_zoom.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpus": os.cpu_count(),
              "fiftyone_version": fo.__version__, "zooms": args.zooms, "scenes": args.scenes,
              "loadavg_start": [round(v, 2) for v in os.getloadavg()]}
    name = f"bench-app-grid-zoom-{os.getpid()}"
    fo.Dataset()
    session = None
    try:
        ing = app_scale.ingest(name, args.scenes, args.chunk, "deferred" if args.scenes <= 60_000 else False)
        ds = ing.pop("dataset")
        app_scale.render_first(ds, 200)
        session, url = app_scale.launch(ds)
        load_grid(chromium, url, name, args.tiles, args.timeout)  # untimed: the server serves the dataset once
        loads = []
        for pair in range(args.pairs):
            for zoom in args.zooms:
                session.config.grid_zoom = zoom  # the App state a fresh browser starts from
                session.refresh()
                time.sleep(1)
                row = {"pair": pair, "zoom": zoom, "loadavg": [round(v, 2) for v in os.getloadavg()],
                       **load_grid(chromium, url, name, args.tiles, args.timeout)}
                app_scale.log(f"zoom {zoom}: {row['grid']} s, {len(row['pages_before_paint'])} pages")
                loads.append(row)
        result["loads"] = loads
        result["summary"] = {
            str(z): {"grid_s": [r["grid"] for r in loads if r["zoom"] == z],
                     "median_s": statistics.median(r["grid"] for r in loads if r["zoom"] == z),
                     "pages_before_paint": sorted({len(r["pages_before_paint"]) for r in loads if r["zoom"] == z})}
            for z in args.zooms}
        result["pairs_faster_with_last_zoom"] = sum(
            a["grid"] > b["grid"] for a, b in zip(loads[::2], loads[1::2]))
    finally:
        if session is not None:
            session.close()
        from fiftyone_plugin.engine import scenes

        if fo.dataset_exists(name):
            scenes.delete_scene_dataset(name)
    result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def write_md(result: dict, out: str) -> None:
    lines = [f"# App grid first paint by grid zoom ({result['scenes']:,} scenes)", "",
             f"Command: `{result['command']}`", "",
             f"{result['date']}, {result['cpus']} CPUs (shared), FiftyOne {result['fiftyone_version']}; "
             f"load average start {result['loadavg_start']}, end {result['loadavg_end']}.", "",
             "One App server (served the dataset once, untimed); each load a fresh headless Chromium "
             "(1600 x 1000), zooms alternating. Grid = until 8 tiles are drawn and on screen.", "",
             "| zoom | grid s (in order) | median s | grid pages before the paint |", "|---|---|---|---|"]
    for zoom, s in result["summary"].items():
        lines.append(f"| {zoom} | {s['grid_s']} | {s['median_s']} | {s['pages_before_paint']} |")
    lines += ["", f"Pairs where zoom {result['zooms'][-1]} painted first: "
              f"{result['pairs_faster_with_last_zoom']} of {len(result['loads']) // 2}. "
              "Load average per load and page timings: in the JSON (`loads`)."]
    Path(out).with_suffix(".md").write_text("\n".join(lines) + "\n")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=20_000)
    p.add_argument("--chunk", type=int, default=5000)
    p.add_argument("--pairs", type=int, default=5)
    p.add_argument("--zooms", type=lambda s: [int(z) for z in s.split(",")], default=None,
                   help="two grid zooms, e.g. 7,8 (default: FiftyOne's 7, then autoscale app's)")
    p.add_argument("--tiles", type=int, default=8)
    p.add_argument("--timeout", type=float, default=180.0)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    from fiftyone_plugin.engine.app import GRID_ZOOM

    args.zooms = args.zooms or [7, GRID_ZOOM]
    result = app_scale.run_in_private_app_env("bench_app_grid_zoom", lambda chromium: run(args, chromium))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        write_md(result, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
