"""``autoscale import av2|scenes`` and ``autoscale export scenes``: recorded data on the CLI.

    autoscale import av2 ../shared/data/av2 --dataset real
    autoscale import scenes /data/fleet_scenes --dataset fleet
    autoscale export scenes --dataset real /tmp/real_scenes

``import`` and ``export`` are command groups: another module may add its own subcommands under
them with :func:`command_group` (it reuses the group when it already exists).
"""

from __future__ import annotations

import argparse
import json

from . import CommandError


def command_group(subparsers, name: str, help: str):
    """The nested subparsers of top-level command ``name``, created on first use."""
    parser = subparsers.choices.get(name)
    if parser is None:
        parser = subparsers.add_parser(name, help=help)
        nested = parser.add_subparsers(dest=f"{name}_what", metavar="WHAT")
        nested.required = True
        return nested
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def register_commands(subparsers) -> None:
    imports = command_group(subparsers, "import", "import recorded scenes into a dataset")
    av2 = imports.add_parser("av2", help="Argoverse 2 sensor logs / forecasting scenarios under PATH")
    av2.add_argument("path", metavar="PATH")
    av2.add_argument("--dataset", required=True, help="created if missing; scenes already in it are skipped")
    av2.add_argument("--stride", type=float, default=0.2, help="t0 spacing in s, a multiple of 0.1 (default 0.2)")
    av2.add_argument("--history", type=float, default=2.0, help="history length in s (default 2)")
    av2.add_argument("--future", type=float, default=4.0, help="future length in s (default 4)")
    policy = av2.add_mutually_exclusive_group()
    policy.add_argument("--lenient", action="store_true", help="skip bad logs (reported) instead of failing")
    policy.add_argument("--strict", action="store_true",
                        help="refuse the import at the first invalid scene (default: skip and report it)")
    av2.add_argument("--no-render", action="store_true", help="do not render BEV images")
    av2.add_argument("--fail-on-existing", action="store_true", help="error if a scene_id is already in the dataset")
    av2.set_defaults(func=cmd_import_av2)

    table = imports.add_parser("scenes", help="a folder of interchange Parquet tables (docs/interchange.md)")
    table.add_argument("path", metavar="PATH")
    table.add_argument("--dataset", required=True)
    table.add_argument("--no-render", action="store_true")
    table.add_argument("--fail-on-existing", action="store_true")
    table.add_argument("--strict", action="store_true",
                       help="refuse the folder at the first invalid scene (default: skip and report it)")
    table.set_defaults(func=cmd_import_scenes)

    exports = command_group(subparsers, "export", "export scenes from a dataset")
    out = exports.add_parser("scenes", help="write a dataset's scenes as interchange Parquet tables")
    out.add_argument("path", metavar="PATH", help="output folder (must not exist unless --overwrite)")
    out.add_argument("--dataset", required=True)
    out.add_argument("--overwrite", action="store_true")
    out.set_defaults(func=cmd_export_scenes)


def _errors():
    from autoscale_core.io import AV2ImportError, InterchangeError
    from autoscale_core.scene import SceneValidationError

    from ..engine.scenes import SceneDatasetError

    return (AV2ImportError, InterchangeError, SceneValidationError, SceneDatasetError)


def _print(result: dict) -> None:
    report = result.pop("report", None)
    print(json.dumps(result))
    if report:
        print(f"  import report: {report['scenes']} scenes from {len(report['logs'])} logs, "
              f"{report['windows']} windows, skipped {report['skipped'] or 'none'}")
        for warning in report["warnings"]:
            print(f"  warning: {warning}")


def cmd_import_av2(args) -> int:
    from ..engine.io import import_av2_into

    try:
        result = import_av2_into(
            args.dataset, args.path, stride_s=args.stride, history_s=args.history, future_s=args.future,
            strict=not args.lenient, strict_scenes=args.strict, render=not args.no_render,
            skip_existing=not args.fail_on_existing,
        )
    except _errors() as exc:
        raise CommandError(str(exc)) from exc
    _print(result)
    return 0


def cmd_import_scenes(args) -> int:
    from ..engine.io import import_scenes_into

    try:
        result = import_scenes_into(args.dataset, args.path, render=not args.no_render,
                                    skip_existing=not args.fail_on_existing, strict=args.strict)
    except _errors() as exc:
        raise CommandError(str(exc)) from exc
    _print(result)
    return 0


def cmd_export_scenes(args) -> int:
    import fiftyone as fo

    from ..engine.io import export_dataset_scenes

    if not fo.dataset_exists(args.dataset):
        raise CommandError(f"dataset {args.dataset!r} does not exist")
    try:
        result = export_dataset_scenes(fo.load_dataset(args.dataset), args.path, overwrite=args.overwrite)
    except _errors() as exc:
        raise CommandError(str(exc)) from exc
    _print(result)
    return 0
