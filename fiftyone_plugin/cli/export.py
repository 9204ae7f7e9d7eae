"""``autoscale export queue``: a ranked annotation queue from a dataset, saved view or tag.

    autoscale export queue --dataset demo --name batch1 --saved-view mosaic-b200
    autoscale export queue --dataset demo --name top-q --rank-field value_q --limit 100
"""

from __future__ import annotations

from . import CommandError
from .io import command_group


def register_commands(subparsers) -> None:
    exports = command_group(subparsers, "export", "export scenes from a dataset")
    queue = exports.add_parser("queue", help="ranked annotation queue: JSONL/CSV manifest + CVAT + Label Studio")
    queue.add_argument("--dataset", required=True)
    queue.add_argument("--name", required=True, help="queue name (folder name; scenes get tag queue:<name>)")
    queue.add_argument("--out-dir", default=None, help="parent folder (default $AUTOSCALE_HOME/queues)")
    which = queue.add_mutually_exclusive_group()
    which.add_argument("--saved-view", default=None, help="export this saved view (e.g. a selection's)")
    which.add_argument("--tag", default=None, help="export the scenes with this tag (e.g. sel:<name>)")
    queue.add_argument("--rank-field", default=None, help="numeric field to rank by (default: selection order)")
    queue.add_argument("--ascending", action="store_true", help="lowest --rank-field first")
    queue.add_argument("--selection", default=None, help="selection whose run record gives order and reasons")
    queue.add_argument("--limit", type=int, default=None, help="keep the first N scenes of the ranking")
    queue.add_argument("--formats", nargs="+", default=None, help="jsonl csv cvat labelstudio (default all)")
    queue.add_argument("--no-copy-media", action="store_true", help="reference the images instead of copying")
    queue.add_argument("--no-tag", action="store_true", help="do not tag the scenes or record a run")
    queue.add_argument("--overwrite", action="store_true",
                       help="replace a previous export of this queue (only the files it wrote)")
    queue.set_defaults(func=cmd_export_queue)


def cmd_export_queue(args) -> int:
    from autoscale_core.export import FORMATS, ExportError

    from ..engine.queue import build_queue_items, export_view_queue
    from . import _load

    dataset = _load(args.dataset)
    view = dataset.view()
    if args.saved_view:
        if not dataset.has_saved_view(args.saved_view):
            raise CommandError(f"dataset {dataset.name!r} has no saved view {args.saved_view!r} "
                               f"(saved views: {dataset.list_saved_views()})")
        view = dataset.load_saved_view(args.saved_view)
    elif args.tag:
        view = dataset.match_tags(args.tag)
    try:
        if args.limit is not None:
            if args.limit < 1:
                raise CommandError(f"--limit must be >= 1, got {args.limit}")
            items, _ = build_queue_items(view, rank_field=args.rank_field, descending=not args.ascending,
                                         selection=args.selection)
            view = view.select_by("scene_id", [it.scene_id for it in items[: args.limit]], ordered=True)
        summary = export_view_queue(view, args.out_dir, args.name, args.rank_field, descending=not args.ascending,
                                    selection=args.selection, formats=args.formats or FORMATS,
                                    copy_media=not args.no_copy_media, tag=not args.no_tag,
                                    overwrite=args.overwrite)
    except ExportError as exc:
        raise CommandError(str(exc)) from exc
    print(f"queue {summary['name']!r}: {summary['count']} scenes -> {summary['dir']}")
    for fmt, path in summary["files"].items():
        print(f"  {fmt:12s} {path}")
    return 0
