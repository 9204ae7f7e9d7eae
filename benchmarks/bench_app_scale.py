"""The App at scale: open a dataset of ``--scenes`` distinct scenes in the real FiftyOne App,
driven by headless Chromium, and time the grid, a sample's modal and the Data Engine panel.

    PYTHONPATH=. .venv/bin/python benchmarks/bench_app_scale.py                 # 100,000 scenes
    PYTHONPATH=. .venv/bin/python benchmarks/bench_app_scale.py --quick         # 2,000 (smoke test)
    PYTHONPATH=. .venv/bin/python benchmarks/bench_app_scale.py --quick --modes cold,cold-nocache,warmed
    PYTHONPATH=. .venv/bin/python benchmarks/bench_app_scale.py --out benchmarks/results/app_scale.json

Prints one JSON object; with ``--out`` also writes it and a short ``.md`` beside it.

**Dataset.** ``--scenes`` distinct embedded-world scenes (``generate_world`` in chunks of
``--chunk`` scenes, chunk k with seed k, so every scene id and array is distinct: nothing is
tiled). Each chunk goes through the plugin's ingest path (``create_scene_dataset`` then
``add_scenes``). ``--render deferred`` (default): every sample's image is a hard link to a
placeholder (:mod:`fiftyone_plugin.engine.bev_render`; a new placeholder file every 60,000 links,
below ext4's 65,000 per file). ``--render none`` (``render=False``): samples point at images not
written yet; only the first pages, rendered below, are ever shown. The ingest path has no executor of its own, so a
one-process pool generates chunk k+1 while chunk k is ingested (overlap, not a parallel ingest).
Then the first ``--render-first`` samples (the grid's first pages in the default order) get their
real BEV images (``render_store_chunk``), so the tiles timed show real images. Engine run records
(the browser test's ``record_engine_runs``) give the panel its plots; no clusters are computed.
The database is a private embedded mongod in a temp dir (or ``FIFTYONE_DATABASE_URI`` if set).

**Server modes** (``--modes``, default ``cold``; each mode is a new App server process and a fresh
browser, in the order given, on the same dataset and database): ``cold``: the environment
``autoscale app`` sets (``app_env_defaults()``: FiftyOne's plugin cache on, grid zoom 8) and a server that never
served the dataset; ``cold-nocache``: the same with FiftyOne's default
``FIFTYONE_PLUGINS_CACHE_ENABLED=false`` (every operator request re-executes the plugin's entry
point and re-instantiates its operators: the App before ``autoscale app`` set this option); ``warmed``: ``engine.app.warm_app_server`` first,
as ``autoscale app`` does before it prints the URL. Modes after the first find MongoDB's and the
OS's caches warmer, so ``--modes cold,cold-nocache,warmed`` puts the new default first.

**What is timed** (Python wall clock around Playwright calls; each of ``--repeats`` rounds runs
the three in order; round 0 is a fresh browser and the mode's server, i.e. cold unless the mode
is ``warmed``; later rounds reuse the browser's cache and the server's, i.e. warm). Round 0's API
requests during the grid load (start, end, path, GraphQL operation) go into the JSON:

1. ``grid``: ``page.goto(<dataset url>)`` until ``--tiles`` grid tiles are drawn. Signal: a tile
   (``[data-cy='looker']``) holds a ``<canvas>`` whose class is no longer ``invisible``; FiftyOne's
   looker removes that class only once the image is decoded and drawn with its overlays (the
   browser test's signal), and that canvas is really on screen: in the viewport, not hidden by
   opacity or visibility, and the topmost element at its centre is part of the same tile (a
   loading overlay over a grid that was drawn behind it does not count). ``grid_first_tile`` is the
   same for one tile.
2. ``modal``: click on grid tile #round until the modal's canvas is drawn (same signal under
   ``[data-cy='modal']``: image plus overlays are painted together on that canvas) *and* the
   modal's sidebar lists the overlay field ``ego_future``. A different tile each round, so the
   warm rounds do not just reopen a cached sample.
3. ``panel``: click on "AutoScale Data Engine" in the new-panel menu until the panel's last section
   ("Next steps") is shown; the panel builds its whole layout in one render, and its first line
   carries the dataset's scene count, so this is "the panel's content is visible".
   ``panel_first_plot``: the same click until the first plotly plot has drawn its legend (plotly
   draws after the layout is shown). Between rounds
   the panel is closed by resetting the session's spaces to the default grid.

4. ``first_opens`` (``--opens`` rounds per mode, after the rounds above): the grid signal of 1.
   for pages opened once each by a new browser process, interleaved: ``first_visit`` (fresh
   profile, the dataset: a user's very first open of the App), ``first_visit_control`` (fresh
   profile, a clone of the dataset's first ``--control-samples`` samples on the same server: the
   App's and this machine's cost at that moment without the dataset's size) and ``returning``
   (a new browser process on a profile that opened the App once before, with its HTTP and code
   caches). On a shared 2-core VM the same page load drifts by a second within minutes; the
   control, measured alongside, tells the dataset's share from the machine's. Two more controls
   take AutoScale away step by step: ``first_visit_bare`` (fresh profile, a plain FiftyOne dataset
   of the control's image files and nothing else: no AutoScale fields, overlays, saved views or
   runs; same server) and ``first_visit_fiftyone_alone`` (the bare dataset on a second App server
   whose plugin directory is empty: FiftyOne's App with no plugin at all, this machine's floor).
   Each open also records, from its API requests, when the first grid page
   (``paginateSamplesQuery``) was asked for and answered, so a slow open shows where it waited.

Targets (issue #19): grid ≤ 3 s, modal ≤ 2 s, panel ≤ 3 s.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

TARGETS_S = {"grid": 3.0, "modal": 2.0, "panel": 3.0}
# A canvas counts as painted when FiftyOne's looker has dropped its "invisible" class (it does so
# only once the media is loaded and drawn, with the overlays, on that canvas) *and* it is really on
# screen: in the viewport, not hidden by opacity / visibility, and the topmost element at its centre
# belongs to the same looker (so a loading overlay above the grid does not count as painted).
DRAWN = """([root, n]) => [...document.querySelectorAll(root + " canvas")].filter(c => {
    if (!(c.width > 0) || String(c.className).includes("invisible")) return false;
    if (c.checkVisibility && !c.checkVisibility({opacityProperty: true, visibilityProperty: true})) return false;
    const r = c.getBoundingClientRect();
    if (r.width < 8 || r.height < 8 || r.bottom <= 0 || r.top >= innerHeight) return false;
    const x = r.left + r.width / 2, y = Math.min(r.top + r.height / 2, innerHeight - 1);
    const top = document.elementFromPoint(x, y), host = c.closest(root);
    return !!(top && host && host.contains(top));
}).length >= n"""


def log(msg: str) -> None:
    print(f"[bench_app_scale {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------ environment
def setup_env(tmp: str) -> None:
    """Private database, AutoScale home and plugin dir, set before fiftyone is imported."""
    if not os.environ.get("FIFTYONE_DATABASE_URI"):
        os.environ["FIFTYONE_DATABASE_DIR"] = os.path.join(tmp, "db")
    os.environ["AUTOSCALE_HOME"] = os.path.join(tmp, "home")
    plugins = Path(tmp, "plugins")  # this checkout's plugin, as scripts/setup.sh links it
    plugins.mkdir()
    (plugins / "autoscale").symlink_to(REPO)
    os.environ["FIFTYONE_PLUGINS_DIR"] = str(plugins)
    os.environ.setdefault("FIFTYONE_SHOW_PROGRESS_BARS", "false")
    os.environ.setdefault("FIFTYONE_DO_NOT_TRACK", "true")
    from fiftyone_plugin.engine.app import app_env_defaults

    for key, value in app_env_defaults().items():
        os.environ.setdefault(key, value)


def stop_private_mongod(tmp: str) -> None:
    """Stop the mongod this process started (if any), then delete the temp folder."""
    database = sys.modules.get("fiftyone.core.odm.database")
    child = getattr(getattr(database, "_db_service", None), "child", None)
    if child is not None and not os.environ.get("FIFTYONE_DATABASE_URI"):
        with contextlib.suppress(Exception):
            child.stdin.close()
            child.wait(timeout=30)
    shutil.rmtree(tmp, ignore_errors=True)


def run_in_private_app_env(prog: str, run: Callable[[str], dict]) -> dict:
    """The frame of the App benchmarks: find Chromium and Playwright (exit with what to install if
    either is missing), set up a private database and plugin dir (:func:`setup_env`), return
    ``run(chromium path)``'s result after printing it as JSON to stdout. stdout carries only that
    JSON: FiftyOne (its loggers, the App server subprocess) prints to fd 1, so fd 1 becomes
    stderr meanwhile and the JSON goes to a saved copy of the real stdout."""
    from browser.app_driver import chromium_path

    chromium = chromium_path()
    if chromium is None:
        sys.exit(f"{prog}: Chromium not found (/usr/bin/chromium; install it with "
                 "`apt-get install chromium`, or set AUTOSCALE_CHROMIUM to its path)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        sys.exit(f"{prog}: the playwright Python package is missing (pip install -e '.[dev]')")
    sys.stdout.flush()
    json_out = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    tmp = tempfile.mkdtemp(prefix=f"{prog}-")
    try:
        setup_env(tmp)
        result = run(chromium)
    finally:
        stop_private_mongod(tmp)
    print(json.dumps(result, indent=2), file=json_out, flush=True)
    return result


# ------------------------------------------------------------------------------ dataset
def _generate(item: tuple[int, int]):
    """Executor task: ``generate_world(n, seed)`` (ids ``world-<seed>-<i>``: distinct per seed)."""
    from autoscale_core.world import generate_world

    n, seed = item
    return generate_world(n, seed=seed)


def ingest(name: str, n: int, chunk: int, render, overlays: str = "inline") -> dict:
    """Generate and ingest ``n`` distinct scenes (``render``: add_scenes' mode; ``overlays``: the
    dataset's overlay mode, "inline" or "on_demand"); returns timings."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    from fiftyone_plugin.engine import scenes

    sizes = [(min(chunk, n - start), k) for k, start in enumerate(range(0, n, chunk))]
    t0 = time.perf_counter()
    ds, ingest_s = None, 0.0
    # One worker generates the next chunk while this process ingests the current one.
    with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
        pending = pool.submit(_generate, sizes[0])
        for i in range(len(sizes)):
            batch = pending.result()
            if i + 1 < len(sizes):
                pending = pool.submit(_generate, sizes[i + 1])
            t = time.perf_counter()
            if ds is None:
                ds = scenes.create_scene_dataset(name, batch, render_images=render,
                                                 info={scenes.OVERLAYS_INFO_KEY: overlays})
            else:
                scenes.add_scenes(ds, batch, render=render)
            ingest_s += time.perf_counter() - t
            log(f"ingested {len(ds)}/{n} scenes ({time.perf_counter() - t0:.0f} s)")
    return {"wall_seconds": round(time.perf_counter() - t0, 1), "add_seconds": round(ingest_s, 1),
            "chunks": len(sizes), "chunk_scenes": chunk, "dataset": ds}


def render_first(ds, count: int) -> int:
    """Real BEV images for the first ``count`` samples in the dataset's default order (and their
    overlays, in a dataset that draws them on demand)."""
    from autoscale_core import render as bev
    from fiftyone_plugin.engine import bev_render

    bev_render.draw_scenes(ds.limit(count), images=False)  # no-op when the overlays are inline
    ids = ds.limit(count).values("scene_id")
    extent = float(ds.info.get("autoscale_bev_extent_m", bev.DEFAULT_EXTENT_M))
    return bev.render_store_chunk((ds.info["autoscale_store"], ids, ds.info["autoscale_media"], extent))


# ------------------------------------------------------------------------------ App
def launch(ds):
    """The App server on a free port (as the browser test launches it); returns (session, url)."""
    import fiftyone as fo
    from browser.app_driver import free_port, wait_http
    from fiftyone.core.service import ServiceListenTimeout

    port = free_port()
    url = f"http://localhost:{port}/"
    try:
        session = fo.launch_app(ds, port=port, remote=True, auto=False)
    except ServiceListenTimeout:  # a loaded machine missed FiftyOne's 60 s start-up wait
        wait_http(url, timeout=600)
        session = fo.launch_app(ds, port=port, remote=True, auto=False)
    wait_http(url)
    return session, url


@contextlib.contextmanager
def app_without_plugins(dataset_name: str):
    """A second App server, on its own port, whose plugin directory is empty (FiftyOne's App
    alone), showing ``dataset_name``; yields its url and closes it after."""
    import fiftyone as fo
    from browser.app_driver import free_port, wait_http

    empty = tempfile.mkdtemp(prefix="bench-app-no-plugins-")
    before = os.environ.get("FIFTYONE_PLUGINS_DIR")
    os.environ["FIFTYONE_PLUGINS_DIR"] = empty  # read by the server subprocess at its start
    port = free_port()
    try:
        session = fo.Session(fo.load_dataset(dataset_name), port=port, remote=True, auto=False)
    finally:
        if before is None:
            del os.environ["FIFTYONE_PLUGINS_DIR"]
        else:
            os.environ["FIFTYONE_PLUGINS_DIR"] = before
    try:
        wait_http(f"http://localhost:{port}/")
        yield f"http://localhost:{port}/"
    finally:
        with contextlib.suppress(Exception):
            session.close()
        shutil.rmtree(empty, ignore_errors=True)


def _drawn(page, root: str, n: int, timeout_s: float) -> None:
    page.wait_for_function(DRAWN, arg=[root, n], timeout=timeout_s * 1000, polling=50)


def _trace(page, url: str, t0: list[float], out: list) -> tuple:
    """Listeners recording the page's API requests (not its scripts, styles or images) as
    ``[start s, end s, method, path + GraphQL operation]`` relative to ``t0[0]``."""
    started = {}

    def label(request) -> str | None:
        path = request.url.replace(url, "/").split("?")[0]
        if request.resource_type not in ("fetch", "xhr"):
            return None
        op = ""
        if path == "/graphql" and request.post_data:
            op = " " + (request.post_data.split("query ", 1)[-1].split("(", 1)[0].split("{", 1)[0].strip())
        elif path == "/operators/execute" and request.post_data:
            with contextlib.suppress(ValueError, AttributeError):
                op = " " + json.loads(request.post_data).get("operator_uri", "")
        return path + op

    def on_request(request):
        if (name := label(request)) is not None:
            started[id(request)] = (round(time.perf_counter() - t0[0], 3), request.method, name)

    def on_done(request):
        if (start := started.pop(id(request), None)) is not None:
            out.append([start[0], round(time.perf_counter() - t0[0], 3), start[1], start[2]])

    page.on("request", on_request)
    page.on("requestfinished", on_done)
    page.on("requestfailed", on_done)
    return on_request, on_done


def time_grid(page, url: str, name: str, tiles: int, timeout_s: float, trace: list | None = None) -> dict:
    t0 = [time.perf_counter()]
    listeners = _trace(page, url, t0, trace) if trace is not None else None
    t0[0] = time.perf_counter()
    page.goto(url + f"datasets/{name}", wait_until="commit")
    _drawn(page, "[data-cy='looker']", 1, timeout_s)
    first = time.perf_counter() - t0[0]
    _drawn(page, "[data-cy='looker']", tiles, timeout_s)
    row = {"grid": round(time.perf_counter() - t0[0], 3), "grid_first_tile": round(first, 3)}
    if listeners is not None:
        page.remove_listener("request", listeners[0])
        for event in ("requestfinished", "requestfailed"):
            page.remove_listener(event, listeners[1])
        trace.sort()
    return row


def time_modal(page, index: int, timeout_s: float, shot: str | None = None) -> float:
    tile = page.locator("[data-cy='looker']").nth(index)
    t0 = time.perf_counter()
    tile.click()
    modal = page.locator("[data-cy='modal']")
    modal.get_by_text("ego_future", exact=True).first.wait_for(timeout=timeout_s * 1000)
    _drawn(page, "[data-cy='modal']", 1, timeout_s)
    seconds = time.perf_counter() - t0
    if shot:
        from browser.app_driver import screenshot

        screenshot(page, shot)
    page.keyboard.press("Escape")
    modal.wait_for(state="detached", timeout=timeout_s * 1000)
    return round(seconds, 3)


def time_panel(page, timeout_s: float) -> tuple[float, float | None]:
    """Seconds until the panel's text is shown, and until its first plot has drawn its legend
    (None if that took over 60 s: plotly draws after the layout, so this is a second number,
    not the target's signal)."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    page.locator("[data-cy='new-panel-btn'], [title='New panel']").first.click()
    entry = page.get_by_text("AutoScale Data Engine").first
    entry.wait_for(timeout=timeout_s * 1000)
    t0 = time.perf_counter()
    entry.click()
    page.get_by_text("Next steps").first.wait_for(timeout=timeout_s * 1000)
    text = round(time.perf_counter() - t0, 3)
    try:
        page.locator(".js-plotly-plot g.legend").first.wait_for(timeout=60_000)
        plots = round(time.perf_counter() - t0, 3)
    except PlaywrightTimeout:
        plots = None
    return text, plots


def close_panel(session, page) -> None:
    """Back to the default spaces (the grid alone), so the next round opens the panel anew."""
    import fiftyone as fo

    session.spaces = fo.Space(children=[fo.Panel(type="Samples", pinned=True)])
    page.get_by_text("Next steps").first.wait_for(state="detached", timeout=60_000)


def browse(chromium: str, session, url: str, name: str, args, trace: list | None = None) -> list[dict]:
    """``args.repeats`` rounds of grid, modal, panel in one fresh headless Chromium (``trace``:
    filled with round 0's API requests during the grid load)."""
    from browser.app_driver import chromium_page, screenshot

    rounds = []
    with chromium_page(chromium, failure_name="app_scale") as page:
        page.set_default_timeout(args.timeout * 1000)
        for r in range(args.repeats):
            row = time_grid(page, url, name, args.tiles, args.timeout, trace if r == 0 else None)
            if r == 0:
                screenshot(page, "app_scale_grid")
            row["modal"] = time_modal(page, r, args.timeout, "app_scale_modal" if r == 0 else None)
            row["panel"], row["panel_first_plot"] = time_panel(page, args.timeout)
            if r == 0:
                screenshot(page, "app_scale_panel")
            close_panel(session, page)
            row["round"] = "cold" if r == 0 else "warm"
            log(f"round {r}: {row}")
            rounds.append(row)
    return rounds


def control_name(name: str) -> str:
    """The control dataset of :func:`first_opens` for dataset ``name``."""
    return f"{name}-control"


def bare_name(name: str) -> str:
    """The bare control dataset of :func:`first_opens` (image files only) for dataset ``name``."""
    return f"{name}-bare"


def time_open(chromium: str, url: str, name: str, args, profile: str | None = None) -> dict:
    """One new browser process opens the dataset's page: seconds to the grid's paint (``grid``),
    to the page's DOMContentLoaded (``js_boot``: the App's scripts fetched, parsed and run,
    before its first API request), and to the start and end of its first grid-page request
    (``first_page_asked``, ``first_page_answered``; None if the trace holds none).
    ``profile``: a kept user-data dir (a returning browser)."""
    from browser.app_driver import chromium_page

    trace = []
    with chromium_page(chromium, profile=profile) as page:
        page.set_default_timeout(args.timeout * 1000)
        row = time_grid(page, url, name, args.tiles, args.timeout, trace)
        boot = page.evaluate("() => performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd")
    pages = [r for r in trace if r[3].endswith("paginateSamplesQuery")]
    return {"grid": row["grid"], "js_boot": round(boot / 1000, 3),
            "first_page_asked": pages[0][0] if pages else None, "first_page_answered": pages[0][1] if pages else None}


def first_opens(chromium: str, url: str, name: str, control: str, args, alone_url: str | None = None) -> dict:
    """``args.opens`` rounds, interleaved, each a new browser process opening a page once:

    * ``first_visit``: a fresh profile opens ``name`` (the user's very first open of the App);
    * ``first_visit_control``: a fresh profile opens ``control``, the dataset's first
      ``--control-samples`` samples cloned (same fields, images and server): what the App and
      this machine cost at that moment without the dataset's size;
    * ``returning``: a new browser process on a profile that opened the App once before (an
      unmeasured visit first): the user's later opens, with the browser's HTTP and code caches;
    * ``first_visit_bare``: a fresh profile opens :func:`bare_name`, the control's image files as
      a plain FiftyOne dataset (no AutoScale field, label, saved view or run), same server;
    * ``first_visit_fiftyone_alone`` (with ``alone_url``): the same bare dataset on a server that
      loads no plugin: FiftyOne's App alone.

    Interleaving spreads the machine's drift (a shared 2-core VM) over the kinds alike; the order
    within a round is rotated by one each round."""
    profile = tempfile.mkdtemp(prefix="bench-app-profile-")
    try:
        time_open(chromium, url, control, args, profile)  # the returning browser's earlier visit
        kinds = {"first_visit": (url, name, None), "first_visit_control": (url, control, None),
                 "returning": (url, name, profile), "first_visit_bare": (url, bare_name(name), None)}
        if alone_url:
            kinds["first_visit_fiftyone_alone"] = (alone_url, bare_name(name), None)
        runs = {kind: [] for kind in kinds}
        for i in range(args.opens):
            for kind in rotated(list(kinds), i):  # no kind always opens first in its round
                server, dataset, prof = kinds[kind]
                runs[kind].append(time_open(chromium, server, dataset, args, prof))
            log(f"open round {i}: " + ", ".join(f"{k} {v[-1]['grid']}" for k, v in runs.items()))
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    return {kind: summarize_opens(rows) for kind, rows in runs.items()}


def rotated(items: list, by: int) -> list:
    """``items`` started at position ``by`` (mod its length) and wrapped around."""
    by %= len(items)
    return items[by:] + items[:by]


def summarize_opens(rows: list[dict]) -> dict:
    import statistics

    def median(key: str) -> float | None:
        values = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.median(values), 3) if values else None

    grid = [r["grid"] for r in rows]
    return {"grid_s": grid, "js_boot_s": [r["js_boot"] for r in rows],
            "first_page_asked_s": [r.get("first_page_asked") for r in rows],
            "first_page_answered_s": [r.get("first_page_answered") for r in rows],
            "grid_median_s": median("grid"), "js_boot_median_s": median("js_boot"),
            "first_page_asked_median_s": median("first_page_asked"),
            "first_page_answered_median_s": median("first_page_answered"),
            "opens_within_target": sum(g <= TARGETS_S["grid"] for g in grid), "opens": len(grid)}


def paired_gaps(opens: dict, base_kind: str = "first_visit", replicates: int = 10_000, seed: int = 0) -> dict:
    """Per other kind of ``opens`` (kind → ``{"grid_s": [...]}``, as :func:`first_opens`
    returns): ``base_kind``'s opens minus that kind's, round by round (interleaved opens are pairs
    that saw the same moment of the machine): their median and a bootstrap 95% interval of that
    median (s). Positive: ``base_kind``'s grid painted later."""
    import numpy as np

    base = np.asarray(opens[base_kind]["grid_s"], dtype=np.float64)
    rng = np.random.default_rng(seed)
    out = {}
    for kind, o in opens.items():
        if kind == base_kind:
            continue
        gap = base - np.asarray(o["grid_s"], dtype=np.float64)
        medians = np.median(gap[rng.integers(0, len(gap), size=(replicates, len(gap)))], axis=1)
        out[kind] = {"median_s": round(float(np.median(gap)), 3),
                     "ci95_s": [round(float(np.quantile(medians, q)), 3) for q in (0.025, 0.975)], "pairs": len(gap)}
    return out


# ------------------------------------------------------------------------------ report
def summarize(rounds: list[dict]) -> dict:
    """Cold (round 0), warm median and whether each target is met cold and warm."""
    import statistics

    out = {}
    for key, target in TARGETS_S.items():
        values = [r[key] for r in rounds]
        warm = values[1:] or values
        out[key] = {"all_s": values, "cold_s": values[0], "warm_median_s": round(statistics.median(warm), 3),
                    "target_s": target, "cold_meets": values[0] <= target,
                    "warm_meets": statistics.median(warm) <= target}
    out["grid_first_tile"] = {"all_s": [r["grid_first_tile"] for r in rounds]}
    out["panel_first_plot"] = {"all_s": [r["panel_first_plot"] for r in rounds]}
    return out


def write_outputs(result: dict, out: str) -> None:
    for entry in result["modes"]:  # the paired gaps go into the JSON too, not only the table
        if entry.get("first_opens"):
            entry["first_opens_gaps"] = paired_gaps(entry["first_opens"])
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# App at scale ({result['samples_in_dataset']:,} samples)", "",
             f"Command: `{result['command']}`", "",
             f"Ran on: {result['machine']['platform']}, {result['machine']['cpus']} CPUs (shared), "
             f"FiftyOne {result['fiftyone_version']}, Chromium {result['chromium']}; "
             f"load average start {result['loadavg_start']}, end {result['loadavg_end']}; "
             f"App grid_zoom {result.get('grid_zoom')}.", "",
             f"Dataset: {result['dataset_note']} Rendered: {result['rendered']}.", "",
             f"Ingest: {result['ingest']['wall_seconds']} s wall ({result['ingest']['add_seconds']} s in add_scenes).", "",
             "Server modes (each a new App server process and a fresh browser, in this order): `cold` = "
             "`autoscale app`'s environment (FIFTYONE_PLUGINS_CACHE_ENABLED=true), server never served the "
             "dataset; `cold-nocache` = FiftyOne's default (plugin cache off, as before); `warmed` = "
             "`warm_app_server` ran first, as `autoscale app` does before printing the URL. Round 0 = fresh "
             "browser; later rounds = same browser (warm).", "",
             "| mode | step | target s | round 0 s | warm median s | all rounds s | load avg at mode start |",
             "|---|---|---|---|---|---|---|"]
    for entry in result["modes"]:
        s = entry["summary"]
        for key in TARGETS_S:
            lines.append(f"| {entry['mode']} | {key} | {s[key]['target_s']} | {s[key]['cold_s']} | "
                         f"{s[key]['warm_median_s']} | {s[key]['all_s']} | {entry['loadavg_start']} |")
    opens = [e for e in result["modes"] if e.get("first_opens")]
    if opens:
        lines += ["", "First opens (each a new browser process opening the page once, interleaved; see "
                  "`first_opens` in the docstring): grid paint s, and the page's DOMContentLoaded (`js boot`).", "",
                  "Medians of each open's timeline: `js boot`, the first grid page asked for and answered "
                  "(`paginateSamplesQuery`), the grid's paint.", "",
                  "| mode | open | grid median s | opens ≤ 3 s | all grid s | js boot | page asked | page answered |",
                  "|---|---|---|---|---|---|---|---|"]
        for entry in opens:
            for kind, o in entry["first_opens"].items():
                lines.append(f"| {entry['mode']} | {kind} | {o['grid_median_s']} | {o['opens_within_target']}/{o['opens']} "
                             f"| {o['grid_s']} | {o['js_boot_median_s']} | {o.get('first_page_asked_median_s')} "
                             f"| {o.get('first_page_answered_median_s')} |")
        lines += ["", "The dataset's first opens minus each control's, round by round (median s, bootstrap 95% "
                  "interval of the median; positive: the dataset painted later).", "",
                  "| mode | dataset minus | median s | 95% interval s | pairs |", "|---|---|---|---|---|"]
        for entry in opens:
            for kind, g in entry["first_opens_gaps"].items():
                lines.append(f"| {entry['mode']} | {kind} | {g['median_s']} | {g['ci95_s']} | {g['pairs']} |")
    warmups = [f"{e['server_warmup_s']}" for e in result["modes"] if e.get("server_warmup_s")]
    if warmups:
        lines += ["", f"Server warm-up (s per step): {'; '.join(warmups)}."]
    lines += ["", "Signals and method: see the docstring of benchmarks/bench_app_scale.py; round 0's API "
              "requests during the grid load are in the JSON (`modes[i].round0_grid_requests`)."]
    Path(out).with_suffix(".md").write_text("\n".join(lines) + "\n")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scenes", type=int, default=100_000)
    p.add_argument("--chunk", type=int, default=5000, help="scenes per generated / ingested chunk")
    p.add_argument("--render", choices=["deferred", "none"], default="deferred",
                   help="ingest mode: 'deferred' (placeholder hard links) or 'none' (render=False: images not written)")
    p.add_argument("--render-first", type=int, default=200, help="samples given real BEV images")
    p.add_argument("--overlays", choices=["inline", "on-demand"], default="inline",
                   help="inline: every sample's overlays written at ingest; on-demand: lean samples, the "
                        "--render-first samples get their overlays drawn (bev_render.draw_scenes) with their images")
    p.add_argument("--tiles", type=int, default=8, help="grid tiles that must be drawn")
    p.add_argument("--grid-zoom", type=int, default=None,
                   help="the App's grid_zoom (0-10; default: what `autoscale app` sets, app_env_defaults())")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--timeout", type=float, default=180.0, help="seconds per wait before failing")
    p.add_argument("--opens", type=int, default=5,
                   help="per mode, after the rounds: this many interleaved first opens by new browser processes "
                        "(fresh profile on the dataset, fresh profile on the control, returning profile); 0: none")
    p.add_argument("--control-samples", type=int, default=200,
                   help="samples of the control dataset for --opens (the dataset's first ones, cloned)")
    p.add_argument("--quick", action="store_true", help="2,000 scenes (smoke test)")
    p.add_argument("--modes", default="cold",
                   help="comma-separated App server modes, each a new server process and a fresh browser, in "
                        "this order (repeats allowed, to interleave): 'cold' (autoscale app's environment, "
                        "server never served the dataset), 'cold-nocache' (FiftyOne's default "
                        "FIFTYONE_PLUGINS_CACHE_ENABLED=false), 'warmed' (warm_app_server before round 0, "
                        "as `autoscale app` does)")
    p.add_argument("--out", default=None, help="write the JSON here (and a .md beside it)")
    args = p.parse_args(argv)
    if args.quick:
        args.scenes = 2000
    if unknown := set(args.modes.split(",")) - set(SERVER_MODES):
        p.error(f"--modes: unknown {sorted(unknown)} (known: {', '.join(SERVER_MODES)})")

    result = run_in_private_app_env("bench_app_scale", lambda chromium: run(args, chromium, argv))
    if args.out:
        write_outputs(result, args.out)
    return 0


SERVER_MODES = {
    # mode: (FIFTYONE_PLUGINS_CACHE_ENABLED for the server process, warm it before round 0)
    "cold": ("true", False),  # `autoscale app`'s environment, a server that never served the dataset
    "cold-nocache": ("false", False),  # FiftyOne's default: plugins re-registered on every operator request
    "warmed": ("true", True),  # what `autoscale app` serves: warm_app_server ran before the URL is printed
}


def serve_and_browse(ds, name: str, server_mode: str, chromium: str, args):
    """A new App server process in ``server_mode`` (:data:`SERVER_MODES`), then :func:`browse` in
    a fresh browser; returns (session, the mode's results)."""
    cache, warm = SERVER_MODES[server_mode]
    os.environ["FIFTYONE_PLUGINS_CACHE_ENABLED"] = cache  # read by the server subprocess at start
    log(f"launching the App ({server_mode})")
    entry = {"mode": server_mode, "plugins_cache_enabled": cache,
             "loadavg_start": [round(v, 2) for v in os.getloadavg()]}
    t = time.perf_counter()
    session, url = launch(ds)
    entry["app_launch_s"] = round(time.perf_counter() - t, 1)
    from fiftyone_plugin.engine.app import warm_app_server

    if warm:  # what `autoscale app` does before it prints the URL
        entry["server_warmup_s"] = warm_app_server(url, name)
        log(f"server warm-up: {entry['server_warmup_s']}")
    entry["round0_server"] = "warmed (warm_app_server)" if warm else "cold (never served the dataset)"
    trace = []
    try:
        entry["rounds"] = browse(chromium, session, url, name, args, trace)
    except BaseException:
        with contextlib.suppress(Exception):
            session.close()
        raise
    entry["summary"] = summarize(entry["rounds"])
    entry["round0_grid_requests"] = trace
    if args.opens:
        with app_without_plugins(bare_name(name)) as alone_url:
            if warm:
                entry["alone_server_warmup_s"] = warm_app_server(alone_url, bare_name(name))
            entry["first_opens"] = first_opens(chromium, url, name, control_name(name), args, alone_url)
    entry["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return session, entry


def run(args, chromium: str, argv) -> dict:
    import subprocess

    import fiftyone as fo
    from browser.engine_records import record_engine_runs

    from fiftyone_plugin.engine import scenes

    result = {"benchmark": "app_scale",
              "command": " ".join(["benchmarks/bench_app_scale.py", *(argv if argv is not None else sys.argv[1:])]),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "machine": {"platform": platform.platform(), "cpus": os.cpu_count()},
              "fiftyone_version": fo.__version__,
              "chromium": subprocess.run([chromium, "--version"], capture_output=True, text=True).stdout.strip(),
              "loadavg_start": [round(v, 2) for v in os.getloadavg()]}
    if args.grid_zoom is not None:
        fo.app_config.grid_zoom = args.grid_zoom
    result["grid_zoom"] = fo.app_config.grid_zoom  # the sessions' App config: the grid's tile size
    name = f"bench-app-scale-{os.getpid()}"
    fo.Dataset()  # start / connect to mongod outside the timed ingest
    session = None
    try:
        log(f"ingesting {args.scenes} distinct scenes")
        mode = "deferred" if args.render == "deferred" else False
        ing = ingest(name, args.scenes, args.chunk, mode, args.overlays.replace("-", "_"))
        ds = ing.pop("dataset")
        result["ingest"] = ing
        result["samples_in_dataset"] = ds.count()
        result["dataset_note"] = (f"{args.scenes} distinct generate_world scenes (chunk k = seed k, "
                                  f"{args.chunk} per chunk); nothing tiled; ingested with add_scenes(render={mode!r}), "
                                  f"overlays {args.overlays}.")
        t = time.perf_counter()
        rendered = render_first(ds, args.render_first)
        rest = ("shows the placeholder image" if mode == "deferred"
                else "has no image file (render=False); only the first pages are ever shown")
        rest += (" without overlays (lean sample: overlays on demand; the first samples' were drawn)"
                 if args.overlays == "on-demand" else " (with its overlays)" if mode == "deferred" else "")
        result["rendered"] = (f"real BEV images for the first {rendered} samples in default order "
                              f"({time.perf_counter() - t:.1f} s); every other sample {rest}")
        record_engine_runs(ds)
        if args.opens:  # the controls of first_opens: the same samples' first pages, at small size
            ds.limit(args.control_samples).clone(control_name(name))
            bare = fo.Dataset(bare_name(name))  # the same image files, nothing of AutoScale's
            bare.add_samples([fo.Sample(filepath=f) for f in ds.limit(args.control_samples).values("filepath")])
        result["signals"] = {"grid": f"{args.tiles} tiles' canvases drawn (class 'invisible' gone)",
                             "modal": "modal canvas drawn and sidebar lists ego_future",
                             "panel": "'Next steps' section of the Data Engine panel visible"}
        result["modes"] = []
        for server_mode in args.modes.split(","):
            session, entry = serve_and_browse(ds, name, server_mode, chromium, args)
            result["modes"].append(entry)
            with contextlib.suppress(Exception):
                session.close()  # the last session of the port stops the server subprocess
            session = None
        first = result["modes"][0]  # the top-level numbers: the first mode's (as before --modes)
        for key in ("app_launch_s", "plugins_cache_enabled", "server_warmup_s", "round0_server", "rounds", "summary"):
            if key in first:
                result[key] = first[key]
    finally:
        if session is not None:
            with contextlib.suppress(Exception):
                session.close()  # the last session of the port stops the server subprocess
        with contextlib.suppress(Exception):
            scenes.delete_scene_dataset(name)
        for control in (control_name(name), bare_name(name)):  # share the store and media, delete neither
            if fo.dataset_exists(control):
                fo.delete_dataset(control)
    result["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
    return result


if __name__ == "__main__":
    sys.exit(main())
