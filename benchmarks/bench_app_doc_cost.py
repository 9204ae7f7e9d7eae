"""What the App grid's first paint pays for AutoScale's sample documents: the same 200 scenes and
images opened as four datasets on one App server, interleaved.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_app_doc_cost.py --opens 12 \\
        --out benchmarks/results/app_doc_cost.json

``bench_app_scale.py`` shows that a 1e5 dataset's grid paints about as fast as a 200-sample clone
of it, but later than a plain FiftyOne dataset of the same image files. This benchmark splits that
gap. ``--scenes`` distinct embedded-world scenes (seed 0) go through the plugin's ingest path
(lean samples, overlays drawn for all of them, real BEV images), then:

* ``autoscale``: that dataset, as the plugin writes it;
* ``no_hidden_overlays``: a clone whose ``lanes`` and ``route`` overlays are emptied (the two
  overlays the grid does not draw: :func:`fiftyone_plugin.engine.scenes.apply_color_scheme`
  starts them hidden; they are also in the image);
* ``no_overlays``: a clone with all five overlay fields emptied (scalar fields and schema kept);
* ``bare``: a plain FiftyOne dataset of the same image files, nothing else.

One App server (``autoscale app``'s environment, ``warm_app_server`` run for each dataset).
Server side: the App's first grid page (20 samples, ``paginationData``) asked ``--server-repeats``
times per dataset over HTTP: median ms and response bytes. Browser side: ``--opens`` rounds, each
opening the four datasets once, in an order rotated by one each round, each open a new headless Chromium with a fresh profile
(``bench_app_scale.time_open``: seconds to ``--tiles`` tiles drawn). Reported: medians and, per
variant, ``autoscale`` minus the variant round by round with a bootstrap 95% interval.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
import types
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

import bench_app_scale as app_scale  # noqa: E402  (after the path set-up)

OVERLAYS = ("ego_history", "ego_future", "agents", "lanes", "route")
HIDDEN_OVERLAYS = ("lanes", "route")


def build_variants(scenes: int) -> dict[str, str]:
    """The four datasets (variant → dataset name); all share the first dataset's images."""
    import fiftyone as fo

    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import scenes as scene_ds

    ds = scene_ds.create_scene_dataset("doc-cost-autoscale", generate_world(scenes, seed=0), render_images="deferred",
                                       info={scene_ds.OVERLAYS_INFO_KEY: "on_demand"})
    app_scale.render_first(ds, scenes)  # every sample: real image and its overlays
    names = {"autoscale": ds.name}
    for variant, emptied in (("no_hidden_overlays", HIDDEN_OVERLAYS), ("no_overlays", OVERLAYS)):
        clone = ds.clone(f"doc-cost-{variant}")
        clone._sample_collection.update_many({}, {"$set": {field: None for field in emptied}})
        names[variant] = clone.name
    bare = fo.Dataset("doc-cost-bare")
    bare.add_samples([fo.Sample(filepath=f) for f in ds.values("filepath")])
    names["bare"] = bare.name
    return names


def server_page(url: str, name: str, repeats: int) -> dict:
    """The App's first grid page of ``name`` over HTTP: median ms and the response's bytes."""
    from fiftyone_plugin.engine import app

    seconds, body = [], b""
    for _ in range(repeats):
        t = time.perf_counter()
        body = app._request(url + "graphql", {"query": app._WARM_QUERY, "variables": {"name": name}}, 60)
        seconds.append(time.perf_counter() - t)
    return {"median_ms": round(1000 * statistics.median(seconds), 1), "bytes": len(body)}


def run(args, chromium: str) -> dict:
    import fiftyone as fo

    from fiftyone_plugin.engine.app import warm_app_server

    result = {"benchmark": "app_doc_cost", "command": " ".join(["benchmarks/bench_app_doc_cost.py", *sys.argv[1:]]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "fiftyone_version": fo.__version__, "grid_zoom": fo.app_config.grid_zoom,
              "loadavg_start": [round(v, 2) for v in os.getloadavg()],
              "data": f"{args.scenes} distinct generate_world scenes (seed 0), all rendered; four datasets of them"}
    names = build_variants(args.scenes)
    session, url = app_scale.launch(fo.load_dataset(names["autoscale"]))
    try:
        for name in names.values():
            warm_app_server(url, name)
        result["server_first_page"] = {v: server_page(url, n, args.server_repeats) for v, n in names.items()}
        opts = types.SimpleNamespace(timeout=args.timeout, tiles=args.tiles)
        rows = {variant: [] for variant in names}
        for i in range(args.opens):
            for variant in app_scale.rotated(list(names), i):  # no variant always opens first
                rows[variant].append(app_scale.time_open(chromium, url, names[variant], opts))
            app_scale.log(f"round {i}: " + ", ".join(f"{v} {r[-1]['grid']}" for v, r in rows.items()))
        opens = {variant: app_scale.summarize_opens(r) for variant, r in rows.items()}
        result["opens"] = opens
        result["autoscale_minus"] = app_scale.paired_gaps(opens, base_kind="autoscale")
    finally:
        session.close()
        for name in names.values():
            fo.delete_dataset(name)
    result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


def markdown(result: dict) -> str:
    lines = [f"# App grid: what AutoScale's sample documents cost ({result['data']})", "",
             f"Command: `{result['command']}`", "",
             f"{result['date']}, {result['machine']['cpus']} CPUs (shared), FiftyOne {result['fiftyone_version']}, "
             f"grid zoom {result['grid_zoom']}; load average start {result['loadavg_start']}, end {result['loadavg_end']}.",
             "", "| dataset | first grid page (server) ms | bytes | grid median s | opens ≤ 3 s | all grid s | "
             "autoscale minus this: median s [95% interval] |", "|---|---|---|---|---|---|---|"]
    for variant, o in result["opens"].items():
        page = result["server_first_page"][variant]
        gap = result["autoscale_minus"].get(variant)
        gap_text = f"{gap['median_s']} {gap['ci95_s']}" if gap else "—"
        lines.append(f"| {variant} | {page['median_ms']} | {page['bytes']:,} | {o['grid_median_s']} | "
                     f"{o['opens_within_target']}/{o['opens']} | {o['grid_s']} | {gap_text} |")
    lines += ["", "Variants and method: see the docstring of benchmarks/bench_app_doc_cost.py."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=200, help="scenes (samples) per dataset")
    p.add_argument("--opens", type=int, default=12, help="interleaved rounds of one open per dataset")
    p.add_argument("--server-repeats", type=int, default=15)
    p.add_argument("--tiles", type=int, default=8, help="grid tiles that must be drawn")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds per wait before failing")
    p.add_argument("--out", default=None, help="write the JSON here (and a .md beside it)")
    args = p.parse_args(argv)

    result = app_scale.run_in_private_app_env("bench_app_doc_cost", lambda chromium: run(args, chromium))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
        Path(args.out).with_suffix(".md").write_text(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
