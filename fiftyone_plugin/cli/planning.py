"""``autoscale train`` and ``autoscale evaluate``: planner training / closed-loop evaluation from the CLI."""

from __future__ import annotations

from . import CommandError, _load, run_step


def register_commands(subparsers) -> None:
    train = subparsers.add_parser("train", help="train a planner on a dataset (or one split); recorded as a run")
    train.add_argument("--dataset", required=True)
    train.add_argument("--planner", choices=("regression", "scoring"), default="regression")
    train.add_argument("--split", default=None, help="train on samples with this split value (default: all)")
    train.add_argument("--key", default=None, help="run key (default planner_<planner>)")
    train.add_argument("--steps", type=int, default=None, help="training steps (default schedule)")
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--weight-field", default=None, help="numeric sample field with per-scene weights")
    train.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    train.set_defaults(func=cmd_train)

    evaluate = subparsers.add_parser("evaluate", help="evaluate a planner in closed loop; writes eval_<key>_* fields")
    evaluate.add_argument("--dataset", required=True)
    evaluate.add_argument("--planner", required=True,
                          help="training run key, checkpoint path, or constant_velocity / logged_expert / rule")
    evaluate.add_argument("--split", default=None, help="evaluate samples with this split value (default: all)")
    evaluate.add_argument("--key", default=None, help="field/run key (default: the planner name)")
    evaluate.add_argument("--reactive", action="store_true", help="reactive (IDM) agents instead of log replay")
    evaluate.add_argument("--executor", default=None,
                          help="score chunks of scenes on serial | process[:N] | ray[:address] "
                               "(default: $AUTOSCALE_EXECUTOR if set, else in this process)")
    evaluate.set_defaults(func=cmd_evaluate)


def _view(args):
    dataset = _load(args.dataset)
    if not args.split:
        return dataset
    from fiftyone import ViewField as F

    view = dataset.match(F("split") == args.split)
    if len(view) == 0:
        raise CommandError(f"dataset {args.dataset!r} has no samples with split {args.split!r}")
    return view


def cmd_train(args) -> int:
    from ..engine.planning import train_planner_on_view

    if args.steps is not None and args.steps < 1:
        raise CommandError(f"--steps must be >= 1, got {args.steps}")
    return run_step(train_planner_on_view, _view(args), planner=args.planner, key=args.key, steps=args.steps,
                seed=args.seed, weight_field=args.weight_field, device=args.device)


def cmd_evaluate(args) -> int:
    from ..engine.planning import evaluate_planner_on_view

    return run_step(evaluate_planner_on_view, _view(args), args.planner, key=args.key, reactive=args.reactive,
                executor=args.executor)
