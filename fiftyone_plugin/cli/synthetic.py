"""``autoscale synthesize`` and ``autoscale hard-split``: SimScale synthetic scenes from the CLI."""

from __future__ import annotations

import json

from . import CommandError, _load, run_step


def register_commands(subparsers) -> None:
    syn = subparsers.add_parser("synthesize", help="generate SimScale synthetic scenes (perturbed start states)")
    syn.add_argument("--dataset", required=True)
    syn.add_argument("--source", choices=("real", "synthetic", "all"), default="real",
                     help="which scenes to perturb (default: the real ones)")
    syn.add_argument("--split", default=None, help="only source scenes of this split (e.g. train)")
    syn.add_argument("--limit", type=int, default=None, help="at most this many source scenes")
    syn.add_argument("--scenes-per-parent", type=int, default=5)
    syn.add_argument("--lateral", type=float, nargs=2, default=(-2.0, 2.0), metavar=("MIN", "MAX"), help="m")
    syn.add_argument("--speed", type=float, nargs=2, default=(-3.0, 3.0), metavar=("MIN", "MAX"), help="m/s")
    syn.add_argument("--expert", default="recovery", help="recovery | planner")
    syn.add_argument("--rounds", type=int, default=1)
    syn.add_argument("--seed", type=int, default=0)
    syn.add_argument("--no-render", action="store_true", help="skip BEV rendering")
    syn.add_argument("--executor", default=None,
                     help="serial | process[:N] | ray[:address] for the chunks of parents "
                          "(default: $AUTOSCALE_EXECUTOR if set, else a local process pool from 400 source "
                          "scenes on, in this process below that)")
    syn.set_defaults(func=cmd_synthesize)

    hard = subparsers.add_parser("hard-split", help="build the independent navhard-like hard split (split=hard)")
    hard.add_argument("--dataset", required=True)
    hard.add_argument("--seed", type=int, default=0)
    hard.add_argument("--source", action="append", default=None,
                      help="dataset (held-out real scenes, default) | world:SEED[:N] (fresh world seed never "
                           "used for training) | av2:PATH (real AV2 logs); repeat to combine")
    hard.add_argument("--holdout-fraction", type=float, default=0.1)
    hard.add_argument("--rare-fraction", type=float, default=0.5)
    hard.set_defaults(func=cmd_hard_split)


def _source_view(dataset, source: str, split: str | None, limit: int | None):
    from ..engine.keys import scenes_of_source

    view = scenes_of_source(dataset, source, split)
    if limit is not None:
        if limit < 1:
            raise CommandError(f"--limit must be >= 1, got {limit}")
        view = view.sort_by("scene_id").limit(limit)
    return view


def cmd_synthesize(args) -> int:
    from ..engine.synthetic import generate_synthetic_samples

    dataset = _load(args.dataset)
    view = _source_view(dataset, args.source, args.split, args.limit)
    return run_step(generate_synthetic_samples, view, scenes_per_parent=args.scenes_per_parent,
                    lateral_range=tuple(args.lateral), speed_range=tuple(args.speed), expert=args.expert,
                    rounds=args.rounds, seed=args.seed, render=not args.no_render, executor=args.executor)


def cmd_hard_split(args) -> int:
    from ..engine.synthetic import build_hard_split_samples

    dataset = _load(args.dataset)
    try:
        summary = build_hard_split_samples(dataset, args.seed, holdout_fraction=args.holdout_fraction,
                                           rare_fraction=args.rare_fraction, sources=args.source or ["dataset"])
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    print(json.dumps(summary, indent=2))
    return 0


def demo_step(dataset, args) -> dict:
    """Demo: 2 synthetic scenes per real training scene of up to 200 scenes (recovery labels)."""
    from ..engine.synthetic import generate_synthetic_samples

    view = _source_view(dataset, "real", "train", 200)
    summary = generate_synthetic_samples(view, scenes_per_parent=2, seed=getattr(args, "seed", 0),
                                         run_key="synthetic_demo")
    quality = summary.get("label_quality", {})
    return {
        "synthetic scenes added": summary["added"],
        "rejected (by reason)": summary["rejects"]["rejected"],
        "label EPDMS mean / median": f"{quality.get('mean', float('nan')):.3f} / {quality.get('median', float('nan')):.3f}",
    }
