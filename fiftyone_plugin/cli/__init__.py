"""The ``autoscale`` command line: scripted curation on FiftyOne datasets.

Subcommands come from the modules in :data:`COMMAND_MODULES`; each defines
``register_commands(subparsers)`` that adds argparse subparsers and sets ``func`` on them to a
handler ``func(args) -> int | None`` (the exit code). To add yours, append your module here.

``autoscale demo`` runs the steps in :data:`DEMO_STEPS` after building the dataset:
``"module:function"`` strings; each function takes ``(dataset, args)`` and returns a dict of
numbers to print (or None). Append the engine's later stages there.

Errors print ``autoscale: error: ...`` on stderr and exit with a non-zero code.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from typing import Sequence

COMMAND_MODULES = [
    "fiftyone_plugin.cli",
    "fiftyone_plugin.cli.io",
    "fiftyone_plugin.cli.synthetic",
    "fiftyone_plugin.cli.selection",
    "fiftyone_plugin.cli.export",
    "fiftyone_plugin.cli.representation",
    "fiftyone_plugin.cli.planning",
    "fiftyone_plugin.cli.experiment",
    "fiftyone_plugin.cli.scenarionet",
]

DEMO_STEPS: list[str] = [
    "fiftyone_plugin.cli.scenarionet:demo_import_step",  # shared real scenes (AV2, nuScenes, Waymo), split "real"
    "fiftyone_plugin.cli.synthetic:demo_step",  # SimScale synthetic scenes
    "fiftyone_plugin.cli.demo_steps:plan_step",  # train + closed-loop evaluation
    "fiftyone_plugin.cli.scenarionet:demo_eval_step",  # the same planners on the real scenes, per source
    "fiftyone_plugin.cli.representation:demo_step",  # embeddings, clusters, value scores
    "fiftyone_plugin.cli.demo_steps:select_step",  # Q top-m and MOSAIC selections
    "fiftyone_plugin.cli.demo_steps:queue_step",  # ranked annotation queue
]

DEFAULT_DEMO_NAME = "autoscale-demo"


class CommandError(RuntimeError):
    """A user-facing failure; printed without a traceback."""


# ---------------------------------------------------------------------------------- commands
def register_commands(subparsers) -> None:
    demo = subparsers.add_parser("demo", help="build the demo dataset and run the engine end to end")
    demo.add_argument("--scenes", type=int, default=2000, help="number of world scenes (default 2000)")
    demo.add_argument("--dataset", default=DEFAULT_DEMO_NAME, help=f"dataset name (default {DEFAULT_DEMO_NAME})")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--overwrite", action="store_true", help="rebuild even if an identical demo dataset exists")
    demo.add_argument("--dataset-only", action="store_true", help="build the dataset, skip the engine steps")
    demo.set_defaults(func=cmd_demo)

    world = subparsers.add_parser("world", help="generate embedded-world scenes into a dataset")
    world.add_argument("--scenes", type=int, required=True)
    world.add_argument("--seed", type=int, default=0)
    world.add_argument("--dataset", required=True)
    world.add_argument("--cities", nargs="+", default=None, help="subset of the world's cities")
    world.add_argument("--overwrite", action="store_true")
    world.add_argument("--resume", action="store_true",
                       help="finish an interrupted run into an existing dataset (same --scenes/--seed/--cities)")
    world.add_argument("--defer-render", action="store_true",
                       help="ingest now with placeholder images; render later with fiftyone_plugin.engine.bev_render")
    world.add_argument("--compact-store", nargs="?", const="packed", default=False, choices=("int16", "packed"),
                       help="store arrays in fixed point: 'packed' (the default of the bare flag: ragged rows + zstd, "
                            "about 1/10 of the float32 disk) or 'int16' (about 6/10); <= 0.5 cm error, see store.py")
    world.add_argument("--overlays", default="inline", choices=("inline", "on-demand"),
                       help="'on-demand': lean samples without the overlay fields (about 1/17 of the BSON, for "
                            "1e5+ scenes); `autoscale draw` writes them for the views you look at")
    world.set_defaults(func=cmd_world)

    draw = subparsers.add_parser("draw", help="write the overlays and render the images a dataset (or one of its "
                                              "saved views) still lacks: after --overlays on-demand / --defer-render")
    draw.add_argument("--dataset", required=True)
    draw.add_argument("--view", default=None, help="a saved view of the dataset (default: every sample)")
    draw.add_argument("--no-images", dest="images", action="store_false", help="write overlays only")
    draw.add_argument("--executor", default=None, help="render on an executor, e.g. process:2 (default in-process)")
    draw.set_defaults(func=cmd_draw)

    app = subparsers.add_parser("app", help="open a dataset in the FiftyOne App")
    app.add_argument("--dataset", default=DEFAULT_DEMO_NAME)
    app.add_argument("--port", type=int, default=5151, help="port the App server listens on (default 5151)")
    app.add_argument("--address", default="localhost",
                     help="address to bind (default localhost; 0.0.0.0 serves every interface)")
    app.add_argument("--remote", action="store_true", help="serve for a browser on another machine")
    app.add_argument("--no-worker", dest="worker", action="store_false",
                     help="do not start the local delegated-operation worker (scheduled runs then wait for "
                          "`fiftyone delegated launch`)")
    app.add_argument("--no-warm", dest="warm", action="store_false",
                     help="print the URL at once instead of first serving the dataset's page, operator list "
                          "and first grid page to the server itself (a few seconds; the first open is then warm)")
    app.set_defaults(func=cmd_app)

    info = subparsers.add_parser("info", help="scene counts and AutoScale runs of a dataset")
    info.add_argument("--dataset", default=DEFAULT_DEMO_NAME)
    info.set_defaults(func=cmd_info)


def _positive(name: str, value: int) -> int:
    if value < 1:
        raise CommandError(f"{name} must be >= 1, got {value}")
    return value


def _load(name: str):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        raise CommandError(f"dataset {name!r} does not exist (datasets: {sorted(fo.list_datasets())})")
    return fo.load_dataset(name)


def _progress(fraction: float, message: str) -> None:
    print(f"  [{fraction * 100:5.1f}%] {message}", flush=True)


def run_step(fn, *args, errors: tuple[type[Exception], ...] = (ValueError,), **kwargs) -> int:
    """Run a plugin step with CLI progress and print its summary as JSON. ``errors`` (and a
    :class:`~autoscale_core.executor.TaskError` from the executor) become a CommandError: a
    message without a traceback and a non-zero exit code."""
    from autoscale_core.executor import TaskError

    try:
        summary = fn(*args, progress=_progress, **kwargs)
    except (*errors, TaskError) as exc:
        raise CommandError(str(exc)) from exc
    print(json.dumps(summary, indent=2, default=str))
    return 0


def _print_summary(dataset) -> None:
    from ..engine import scenes

    summary = scenes.summarize(dataset)
    print(f"dataset {dataset.name!r}: {len(dataset)} scenes")
    for key in ("city", "topology", "events", "split"):
        counts = ", ".join(f"{k}={v}" for k, v in sorted(summary[key].items(), key=lambda kv: -kv[1]))
        print(f"  {key:9s} {counts or '(none)'}")


def cmd_world(args) -> int:
    from ..engine import scenes

    _positive("--scenes", args.scenes)
    try:
        dataset = scenes.create_world_dataset(
            args.dataset, args.scenes, seed=args.seed, cities=args.cities,
            overwrite=args.overwrite, progress=_progress, resume=args.resume,
            render_images="deferred" if args.defer_render else True, compact_store=args.compact_store,
            overlays=args.overlays.replace("-", "_"),
        )
    except (ValueError, scenes.SceneDatasetError) as exc:
        raise CommandError(str(exc)) from exc
    _print_summary(dataset)
    return 0


def cmd_draw(args) -> int:
    from ..engine import bev_render

    dataset = _load(args.dataset)
    if args.view is not None and not dataset.has_saved_view(args.view):
        raise CommandError(f"dataset {args.dataset!r} has no saved view {args.view!r} "
                           f"(saved views: {dataset.list_saved_views()})")
    view = dataset.load_saved_view(args.view) if args.view else dataset
    return run_step(bev_render.draw_scenes, view, images=args.images, executor=args.executor)


def cmd_demo(args) -> int:
    import fiftyone as fo

    from ..engine import scenes

    _positive("--scenes", args.scenes)
    wanted = {"num_scenes": args.scenes, "seed": args.seed, "cities": None}
    dataset = None
    if fo.dataset_exists(args.dataset) and not args.overwrite:
        existing = fo.load_dataset(args.dataset)
        made_by_demo = existing.info.get("autoscale_world") is not None
        if not made_by_demo:
            raise CommandError(
                f"dataset {args.dataset!r} exists and was not made by `autoscale demo`; "
                "choose another --dataset or pass --overwrite"
            )
        world_scenes = existing.count_values("source").get("world", 0)  # later steps add others
        if existing.info.get("autoscale_world") == wanted and world_scenes == args.scenes:
            print(f"reusing demo dataset {args.dataset!r} (same scenes, seed)")
            dataset = existing
    if dataset is None:
        print(f"building demo dataset {args.dataset!r}: {args.scenes} scenes, seed {args.seed}")
        try:
            dataset = scenes.create_world_dataset(
                args.dataset, args.scenes, seed=args.seed, overwrite=True, progress=_progress
            )
        except (ValueError, scenes.SceneDatasetError) as exc:
            raise CommandError(str(exc)) from exc
    _print_summary(dataset)
    for step in [] if args.dataset_only else DEMO_STEPS:
        module_name, _, function_name = step.partition(":")
        function = getattr(importlib.import_module(module_name), function_name)
        print(f"step {step}")
        result = function(dataset, args)
        for key, value in (result or {}).items():
            print(f"  {key}: {value}")
    print(f"\nOpen it in the FiftyOne App:\n  {_autoscale_exe()} app --dataset {dataset.name}")
    return 0


def _autoscale_exe() -> str:
    exe = os.path.join(os.path.dirname(sys.executable), "autoscale")
    return exe if os.path.exists(exe) else "autoscale"


def cmd_app(args) -> int:
    from ..engine import app as app_env

    # Before anything talks to the database or starts the App server (both read these).
    app_env.apply_app_environment(worker=args.worker)
    import fiftyone as fo

    dataset = _load(args.dataset)
    worker = app_env.start_delegated_worker(app_env.default_worker_log()) if args.worker else None
    session = fo.launch_app(dataset, port=args.port, address=args.address, remote=args.remote, auto=False)
    if args.warm:  # the user's first open of the dataset finds the server warm (engine.app.warm_app_server)
        host = "localhost" if args.address in ("", "0.0.0.0", "::") else args.address
        warm = app_env.warm_app_server(f"http://{host}:{args.port}/", dataset.name)
        print(f"autoscale: App server warmed in {sum(warm.values()):.1f} s ({', '.join(f'{k} {v:.1f} s' for k, v in warm.items())})",
              flush=True)
    print(f"FiftyOne App: {session.url}  (Ctrl+C to stop)", flush=True)
    print(f"autoscale: {app_env.APP_NOTES}", flush=True)
    if worker is not None:
        print(f"autoscale: scheduled runs are executed by a local worker (pid {worker.pid}, log "
              f"{app_env.default_worker_log()})", flush=True)
    try:
        session.wait(-1)
    except KeyboardInterrupt:
        pass
    finally:
        if worker is not None:
            app_env.stop_worker(worker)
    return 0


def cmd_info(args) -> int:
    from ..engine import runs

    dataset = _load(args.dataset)
    _print_summary(dataset)
    for run in runs.list_runs(dataset):
        print(f"  run {run['key']}: {run['method']} [{run['status']}] {run['started_at']}")
    return 0


# ---------------------------------------------------------------------------------- entry point
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autoscale", description="AutoScale data engine for driving planners")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(name).register_commands(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code = args.func(args)
    except CommandError as exc:
        print(f"autoscale: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("autoscale: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # unexpected: still a clear one-line message, plus the type
        print(f"autoscale: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if os.environ.get("AUTOSCALE_DEBUG"):
            raise
        return 1
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
