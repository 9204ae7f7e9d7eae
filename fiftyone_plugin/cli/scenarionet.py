"""``autoscale import|export scenarionet``: ScenarioNet scenes (nuScenes, Waymo, nuPlan, …) on the CLI.

    autoscale import scenarionet ../shared/data/scenarionet --dataset real
    autoscale export scenarionet --dataset real --selection real-q20 /tmp/real-q20-scenarionet
"""

from __future__ import annotations

from . import CommandError
from .io import _errors, _print, command_group


def register_commands(subparsers) -> None:
    imports = command_group(subparsers, "import", "import recorded scenes into a dataset")
    sn = imports.add_parser("scenarionet", help="ScenarioNet scene files / database folder at PATH")
    sn.add_argument("path", metavar="PATH", help="a scene .pkl, a database folder or a folder of scene files")
    sn.add_argument("--dataset", required=True, help="created if missing; scenes already in it are skipped")
    sn.add_argument("--stride", type=float, default=0.5, help="t0 spacing in s, a multiple of 0.1 (default 0.5)")
    sn.add_argument("--history", type=float, default=2.0, help="history length in s (default 2)")
    sn.add_argument("--future", type=float, default=4.0, help="future length in s (default 4)")
    sn.add_argument("--lenient", action="store_true", help="skip bad files (reported) instead of failing")
    sn.add_argument("--no-render", action="store_true", help="do not render BEV images")
    sn.add_argument("--fail-on-existing", action="store_true", help="error if a scene_id is already in the dataset")
    sn.set_defaults(func=cmd_import_scenarionet)

    exports = command_group(subparsers, "export", "export scenes from a dataset")
    out = exports.add_parser("scenarionet", help="write scenes as ScenarioNet scene files (a database folder)")
    out.add_argument("path", metavar="DIR", help="output folder (must be empty or missing unless --overwrite)")
    out.add_argument("--dataset", required=True)
    which = out.add_mutually_exclusive_group()
    which.add_argument("--view", default=None, help="a saved view of the dataset")
    which.add_argument("--selection", default=None, help="a selection's scenes (its saved view, else tag sel:NAME)")
    out.add_argument("--overwrite", action="store_true",
                     help="replace the files this export writes in a non-empty folder (nothing else is touched)")
    out.set_defaults(func=cmd_export_scenarionet)


def cmd_import_scenarionet(args) -> int:
    from autoscale_core.io.scenarionet import ScenarioNetImportError

    from ..engine.scenarionet import import_scenarionet_into

    def progress(fraction: float, label: str) -> None:
        print(f"  [{fraction:4.0%}] {label}", flush=True)

    try:
        result = import_scenarionet_into(
            args.dataset, args.path, stride_s=args.stride, history_s=args.history, future_s=args.future,
            strict=not args.lenient, render=not args.no_render, skip_existing=not args.fail_on_existing,
            progress=progress,
        )
    except (ScenarioNetImportError, *_errors()) as exc:
        raise CommandError(str(exc)) from exc
    _print(result)
    return 0


def _chosen_view(args):
    from . import _load

    dataset = _load(args.dataset)
    name = args.view or args.selection
    if name and dataset.has_saved_view(name):
        return dataset.load_saved_view(name)
    if args.selection:
        view = dataset.match_tags(f"sel:{args.selection}")
        if len(view):
            return view
        raise CommandError(f"dataset {dataset.name!r} has no selection {args.selection!r} "
                           f"(no saved view or tag sel:{args.selection})")
    if args.view:
        raise CommandError(f"dataset {dataset.name!r} has no saved view {args.view!r} "
                           f"(saved views: {dataset.list_saved_views()})")
    return dataset.view()


def cmd_export_scenarionet(args) -> int:
    from autoscale_core.io.scenarionet_export import ScenarioNetExportError

    from ..engine.scenarionet import export_view_scenarionet

    view = _chosen_view(args)
    try:
        result = export_view_scenarionet(view, args.path, overwrite=args.overwrite)
    except (ScenarioNetExportError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    _print(result)
    return 0


# ---------------------------------------------------------------------------------- autoscale demo
REAL_SPLIT = "real"
DEMO_REAL_STRIDE_S = 2.0  # few, weakly correlated real scenes: keeps the demo's added time small


def _shared_data():
    import os
    from pathlib import Path

    default = Path(__file__).resolve().parents[2].parent / "shared" / "data"  # <repo>/fiftyone_plugin/cli/ -> <repo>/..
    return Path(os.environ.get("AUTOSCALE_SHARED_DATA", default))


def demo_import_step(dataset, args) -> dict:
    """Add the shared real scenes (AV2, nuScenes, Waymo) to the demo dataset as split "real",
    ``source`` = av2 / nuscenes / waymo; skipped with a note when ../shared/data is absent."""
    import warnings

    from autoscale_core.io import import_av2
    from autoscale_core.io.scenarionet import import_scenarionet
    from autoscale_core.scene import SceneBatch

    from ..engine.scenes import add_scenes, write_scene_fields

    data = _shared_data()
    present = dataset.count_values("split").get(REAL_SPLIT, 0)
    if present:
        return {"real scenes": f"{present} (reused)"}
    found = [(import_av2, data / "av2"), (import_scenarionet, data / "scenarionet")]
    found = [(fn, path) for fn, path in found if path.is_dir()]
    if not found:
        print(f"  note: {data} is absent; the demo has no real scenes (set AUTOSCALE_SHARED_DATA to add them)")
        return {"real scenes": "skipped (no shared data)"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # importer notes (e.g. dropped 1-point lanes) are in the import tests
        batch = SceneBatch.concatenate([fn(path, stride_s=DEMO_REAL_STRIDE_S)[0] for fn, path in found])
    add_scenes(dataset, batch, render=True)
    write_scene_fields(dataset, {"split": [REAL_SPLIT] * len(batch)}, scene_ids=list(batch.meta["scene_id"]))
    return {"real scenes": dict(dataset.match({"split": REAL_SPLIT}).count_values("source"))}


def demo_eval_step(dataset, args) -> dict:
    """Evaluate the demo's planners on the real scenes (``eval_real_<planner>_*`` fields), per source."""
    from fiftyone import ViewField as F

    from ..engine.planning import evaluate_planner_on_view

    real = dataset.match(F("split") == REAL_SPLIT)
    if len(real) == 0:
        return None
    out = {}
    for planner, key in (("planner_regression", "real_regression"), ("rule", "real_rule"), ("constant_velocity", "real_cv")):
        if planner.startswith("planner_") and not dataset.has_run(planner):
            continue
        if not dataset.has_run(f"eval_{key}"):
            evaluate_planner_on_view(real, planner, key=key)
        for source in sorted(real.distinct("source")):
            out[f"real EPDMS {key[5:]} on {source}"] = f"{real.match(F('source') == source).mean(f'eval_{key}_epdms'):.3f}"
    return out
