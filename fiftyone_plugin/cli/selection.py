"""``autoscale select {fit,mosaic,autoscale,active,delete}``: budgeted selection from the CLI.

Each subcommand calls the same function as the matching operator
(:mod:`fiftyone_plugin.engine.selection`) and prints a JSON summary.
"""

from __future__ import annotations

import json

from . import CommandError, _load, run_step


def _candidates(dataset, args):
    """The candidate view: a saved view, or scenes matching --source/--split."""
    from ..engine.keys import scenes_of_source

    if args.view:
        if not dataset.has_saved_view(args.view):
            raise CommandError(f"saved view {args.view!r} does not exist on dataset {dataset.name!r}")
        return dataset.load_saved_view(args.view)
    return scenes_of_source(dataset, args.source, args.split)


def _common(parser, *, closed_loop: bool, source_default: str = "real", split_default: str | None = "train"):
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--name", required=True, help="selection name: tag sel:<name>, saved view <name>, run sel_<name>")
    parser.add_argument("--budget", type=int, required=True, help="scenes to select")
    parser.add_argument("--view", default=None, help="saved view of candidates (default: --source/--split)")
    parser.add_argument("--source", choices=("real", "synthetic", "all"), default=source_default)
    parser.add_argument("--split", default=split_default, help="candidates' split (default %(default)s; '' for all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing selection of this name")
    if closed_loop:
        parser.add_argument("--steps", type=int, default=200, help="training steps per closed-loop run")
        parser.add_argument("--executor", default=None, help="serial | process[:N] | ray[:address] (default: $AUTOSCALE_EXECUTOR or process)")
        parser.add_argument("--base-limit", type=int, default=500)
        parser.add_argument("--val-limit", type=int, default=200)


def register_commands(subparsers) -> None:
    select = subparsers.add_parser("select", help="budgeted scene selection (MOSAIC, AutoScale, active learning)")
    sub = select.add_subparsers(dest="select_command", metavar="METHOD")
    sub.required = True

    fit = sub.add_parser("fit", help="MOSAIC pilot runs + scaling-law fits (run scaling_<name>)")
    _common(fit, closed_loop=True)
    fit.add_argument("--domain-field", default="topology")
    fit.add_argument("--importance-field", default=None, help="per-scene EPDMS field, e.g. eval_<run>_epdms")
    fit.add_argument("--pilot-fractions", default="0.25,0.75,2")
    fit.add_argument("--seeds", type=int, default=1)
    fit.set_defaults(func=cmd_fit)

    mosaic = sub.add_parser("mosaic", help="MOSAIC allocation (reuses --fits-from or pilots anew)")
    _common(mosaic, closed_loop=True)
    mosaic.add_argument("--fits-from", default=None, help="name given to an earlier `autoscale select fit`")
    mosaic.add_argument("--domain-field", default="topology")
    mosaic.add_argument("--importance-field", default=None)
    mosaic.add_argument("--pilot-fractions", default="0.25,0.75,2")
    mosaic.add_argument("--seeds", type=int, default=1)
    mosaic.set_defaults(func=cmd_mosaic)

    auto = sub.add_parser("autoscale", help="AutoScale cluster-GA over synthetic candidates")
    _common(auto, closed_loop=True, source_default="synthetic")
    auto.add_argument("--rounds", type=int, default=4)
    auto.add_argument("--probes", type=int, default=2)
    auto.add_argument("--clusters", type=int, default=6)
    auto.add_argument("--cluster-field", default=None)
    auto.add_argument("--embedding-field", default=None,
                      help="embedding for clusters and retrieval, e.g. emb_graph_rae (default: the current planner's features)")
    auto.add_argument("--eval-seeds", type=int, default=3, help="training seeds per candidate mixture")
    auto.set_defaults(func=cmd_autoscale)

    active = sub.add_parser("active", help="top-m by value Q (or an S/R/U subset), hard-example mining "
                                           "(1 - EPDMS of the current planner), or random/coreset/uncertainty")
    _common(active, closed_loop=False)
    active.add_argument("--method", choices=("value_topm", "hard_mining", "random", "coreset", "uncertainty"),
                        default="value_topm")  # engine.selection.ACTIVE_METHODS (not imported: a fast CLI start)
    active.add_argument("--components", default="SRU", help="value components, e.g. SRU, SR, U")
    active.add_argument("--embedding-field", default=None)
    active.add_argument("--uncertainty-field", default=None)
    active.add_argument("--importance-field", default=None,
                        help="hard_mining: the current planner's per-scene EPDMS field, e.g. eval_<run>_epdms "
                             "(default: train a planner on the base set and score the candidates)")
    active.add_argument("--steps", type=int, default=200)
    active.set_defaults(func=cmd_active)

    delete = sub.add_parser("delete", help="remove a selection's tag, saved view and run")
    delete.add_argument("--dataset", required=True)
    delete.add_argument("--name", required=True)
    delete.set_defaults(func=cmd_delete)


def _run(fn, *args, **kwargs) -> int:
    from ..engine.selection import SelectionError

    return run_step(fn, *args, errors=(SelectionError,), **kwargs)


def _closed_loop_kwargs(args) -> dict:
    return {"steps": args.steps, "executor": args.executor, "base_limit": args.base_limit,
            "val_limit": args.val_limit, "seed": args.seed}


def cmd_fit(args) -> int:
    from ..engine.selection import fit_scaling_laws

    dataset = _load(args.dataset)
    return _run(fit_scaling_laws, _candidates(dataset, args), args.name, args.budget, domain_field=args.domain_field,
                importance_field=args.importance_field, pilot_fractions=args.pilot_fractions, seeds=args.seeds,
                overwrite=args.overwrite, **_closed_loop_kwargs(args))


def cmd_mosaic(args) -> int:
    from ..engine.selection import allocate_budget

    dataset = _load(args.dataset)
    return _run(allocate_budget, _candidates(dataset, args), args.name, args.budget, fits_from=args.fits_from,
                domain_field=args.domain_field, importance_field=args.importance_field,
                pilot_fractions=args.pilot_fractions, seeds=args.seeds, overwrite=args.overwrite, **_closed_loop_kwargs(args))


def cmd_autoscale(args) -> int:
    from ..engine.selection import optimize_mixture

    dataset = _load(args.dataset)
    return _run(optimize_mixture, _candidates(dataset, args), args.name, args.budget, rounds=args.rounds,
                probes=args.probes, num_clusters=args.clusters, cluster_field=args.cluster_field,
                embedding_field=args.embedding_field, eval_seeds=args.eval_seeds,
                overwrite=args.overwrite, **_closed_loop_kwargs(args))


def cmd_active(args) -> int:
    from ..engine.selection import select_active

    dataset = _load(args.dataset)
    components = tuple(args.components.upper())
    return _run(select_active, _candidates(dataset, args), args.name, args.budget, method=args.method,
                components=components, embedding_field=args.embedding_field,
                uncertainty_field=args.uncertainty_field, importance_field=args.importance_field, steps=args.steps, seed=args.seed, overwrite=args.overwrite)


def cmd_delete(args) -> int:
    from ..engine.selection import delete_selection

    dataset = _load(args.dataset)
    delete_selection(dataset, args.name)
    print(json.dumps({"deleted": args.name}))
    return 0
