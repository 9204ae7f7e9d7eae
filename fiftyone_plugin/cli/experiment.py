"""``autoscale experiment selection``: the selection protocol from the command line.

Without ``--dataset`` it runs on world splits (a scene-biased pool per world seed, balanced val and
test sets from other seeds); with ``--dataset`` on that dataset's own real train / val / test
scenes, and records the run ``selection_protocol`` there for the Data Engine panel. Either way it
writes ``<out>/<name>.{json,md,png}``. ``benchmarks/bench_selection_protocol.py`` is this command
with the benchmark's defaults.
"""

from __future__ import annotations

import json
import os
import sys

from . import CommandError, _load

EPOCHS_DEFAULT = 10.0
QUICK = {"splits": 2, "pool": 200, "base": 40, "val": 40, "test": 60, "budgets": "10,20,40,80", "seeds": "0,1",
         "steps": 10, "batch_size": 32, "epochs": 2.0, "pilot_seeds": 2, "bootstrap": 200, "mc_passes": 3}


def add_protocol_arguments(parser, *, out_default: str, name_default: str) -> None:
    """The protocol's options (shared by the CLI and the benchmark script)."""
    parser.add_argument("--dataset", default=None, help="run on this dataset's real scenes and record the run there")
    parser.add_argument("--splits", type=int, default=5, help="world splits (ignored with --dataset)")
    parser.add_argument("--world-seed", type=int, default=100, help="first split's world seed; split i uses seed + 10 i")
    parser.add_argument("--pool", type=int, default=10_000, help="pool scenes per world split")
    parser.add_argument("--base", type=int, default=1_000, help="base-set scenes (what the planner already has)")
    parser.add_argument("--val", type=int, default=500, help="val scenes per world split (balanced)")
    parser.add_argument("--test", type=int, default=2_000, help="test scenes per world split (balanced)")
    parser.add_argument("--budgets", default="250,500,1000,2000")
    parser.add_argument("--random-budgets", default=None, help="random-curve budgets (default: derived, >= 6)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds (>= 2)")
    parser.add_argument("--methods", default=None, help="comma-separated (default: all); random always runs")
    parser.add_argument("--steps", type=int, default=150,
                        help="training steps of every planner (with --epochs: the minimum)")
    parser.add_argument("--epochs", type=float, default=EPOCHS_DEFAULT,
                        help="train each planner max(steps, ceil(epochs * n / batch)) steps for n training scenes, "
                             "so bigger selections train longer (chosen on a tuning world's val set, see "
                             "benchmarks/results/selection_schedule.md); 0: a fixed --steps for every size")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--pilot-seeds", type=int, default=3)
    parser.add_argument("--mosaic-ranking", choices=("published", "failures_first"), default="published")
    parser.add_argument("--mc-passes", type=int, default=10)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--executor", default=None, help="serial | process[:N] | ray[:address] (default: $AUTOSCALE_EXECUTOR or process)")
    parser.add_argument("--out", default=out_default)
    parser.add_argument("--name", default=name_default)
    parser.add_argument("--checkpoint", default=None,
                        help="folder for finished splits (default <out>/<name>.checkpoint); a rerun resumes there")
    parser.add_argument("--summarize-checkpoint", default=None, metavar="DIR",
                        help="only summarize the finished splits saved in DIR (a run stopped early) and write the outputs")
    parser.add_argument("--real-test", default="auto", metavar="PATHS",
                        help="comma-separated ScenarioNet / Argoverse 2 folders scored as an extra (transfer) test set "
                             "by every final planner; 'auto': ../shared/data/scenarionet and ../shared/data/av2 beside "
                             "the repository when present (not with --quick); 'none': no real test set")
    parser.add_argument("--quick", action="store_true", help="tiny sizes (minutes): checks the machinery, proves nothing")


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError as exc:
        raise CommandError(f"{option} must be comma-separated integers, got {text!r}") from exc


def protocol_from_args(args):
    """(config, world split specs or None) from parsed arguments; --quick shrinks everything."""
    from autoscale_core.experiments import DEFAULT_METHODS, ProtocolConfig, WorldSplitSpec

    if args.quick:
        for key, value in QUICK.items():
            setattr(args, key, value)
        args.name = args.name if args.name.endswith("_quick") else args.name + "_quick"
        args.executor = args.executor or "serial"
    methods = tuple(m for m in DEFAULT_METHODS if m != "random") if not args.methods else tuple(
        m.strip() for m in args.methods.split(",") if m.strip())
    config = ProtocolConfig(
        budgets=_ints(args.budgets, "--budgets"), seeds=_ints(args.seeds, "--seeds"), methods=methods,
        random_budgets=_ints(args.random_budgets, "--random-budgets") if args.random_budgets else None,
        steps=args.steps, batch_size=args.batch_size, epochs=(args.epochs or None), pilot_seeds=args.pilot_seeds,
        mosaic_ranking=args.mosaic_ranking, mc_passes=args.mc_passes, bootstrap=args.bootstrap,
    )
    specs = None
    if not args.dataset:
        if args.splits < 1:
            raise CommandError(f"--splits must be >= 1, got {args.splits}")
        specs = [WorldSplitSpec(seed=args.world_seed + 10 * i, pool_size=args.pool, base_size=args.base,
                                val_size=args.val, test_size=args.test) for i in range(args.splits)]
    try:
        config.check()
        for spec in specs or ():
            spec.check()
            if max(config.budgets) >= spec.pool_size:
                raise ValueError(f"budget {max(config.budgets)} must be smaller than the pool ({spec.pool_size} scenes)")
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    return config, specs


def _real_test_roots(args) -> list[str]:
    """The --real-test folders ('auto': the shared real data beside the repository, if present)."""
    text = (getattr(args, "real_test", None) or "none").strip()
    if text == "none" or (text == "auto" and (args.quick or args.dataset)):
        return []
    if text == "auto":
        repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # <repo>/fiftyone_plugin/cli/
        shared = os.path.join(os.path.dirname(repo), "shared", "data")
        return [p for p in (os.path.join(shared, "scenarionet"), os.path.join(shared, "av2")) if os.path.isdir(p)]
    roots = [p.strip() for p in text.split(",") if p.strip()]
    missing = [p for p in roots if not os.path.exists(p)]
    if missing:
        raise CommandError(f"--real-test: {missing} do not exist")
    return roots


def run_from_args(args) -> dict:
    """Build the splits, run, write outputs (and record the run with --dataset); return the record."""
    from ..engine.experiment import (
        dataset_split,
        protocol_record,
        record_protocol_run,
        run_selection_experiment,
        world_splits,
        write_outputs,
    )

    if args.summarize_checkpoint:
        from autoscale_core.experiments import load_checkpoints

        try:
            result = load_checkpoints(args.summarize_checkpoint)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        record = protocol_record(result, command="python " + " ".join(sys.argv), what_it_ran_on=(
            f"the {len(result.splits)} finished split(s) saved in {args.summarize_checkpoint}: {result.splits}"))
        write_outputs(record, args.out, args.name)
        return record
    config, specs = protocol_from_args(args)
    real_roots = _real_test_roots(args)  # refused before any scene is generated

    def say(message: str) -> None:
        print(f"  {message}", flush=True)

    try:
        if specs is None:
            dataset = _load(args.dataset)
            splits = [dataset_split(dataset, base_size=args.base)]
            ran_on = (f"dataset {dataset.name!r}: real train scenes (base {args.base}, pool the rest), its val and "
                      "test splits; one split, so intervals resample training seeds and test scenes only.")
        else:
            say(f"generating {len(specs)} world split(s)")
            splits = world_splits(specs, executor=args.executor)
            ran_on = (f"{len(specs)} world splits (seeds {[s.seed for s in specs]}): distinct generated scenes, none tiled; "
                      f"pool {specs[0].pool_size} + base {specs[0].base_size} scenes with the log-like topology mix "
                      f"(world seed s), val {specs[0].val_size} (seed s+1) and test {specs[0].test_size} (seed s+2) with "
                      "a balanced topology mix; embeddings are the base planner's real features.")
        notes = []
        if real_roots:
            from autoscale_core.experiments import load_real_test

            say(f"importing the real test set from {real_roots}")
            real, described = load_real_test(real_roots)
            for split in splits:
                split.extra_tests["real"] = real
            notes.append("Extra test set 'real' (transfer): " + "; ".join(described) + ". Scenes of one log overlap "
                         "in time, so its intervals (which resample scenes) are optimistic.")
        config.check(splits)
        checkpoint = args.checkpoint or os.path.join(args.out, f"{args.name}.checkpoint")
        record = run_selection_experiment(splits, config, executor=args.executor, progress=say,
                                          command="python " + " ".join(sys.argv), what_it_ran_on=ran_on,
                                          checkpoint_dir=checkpoint, notes=notes)
    except ValueError as exc:
        raise CommandError(str(exc)) from exc
    write_outputs(record, args.out, args.name)
    if specs is None:
        record_protocol_run(dataset, record)
    return record


def cmd_selection(args) -> int:
    record = run_from_args(args)
    verdict = record["summary"].get("verdict", {})
    print(json.dumps({"outputs": record["outputs"], "verdict": verdict,
                      "seconds": round(record["timings_s"]["total"], 1)}, indent=2))
    return 0


def register_commands(subparsers) -> None:
    experiment = subparsers.add_parser("experiment", help="experiments that produce evidence (selection protocol)")
    sub = experiment.add_subparsers(dest="experiment_command", metavar="EXPERIMENT")
    sub.required = True
    selection = sub.add_parser("selection", help="does a selection beat random on unseen splits? (BRMR with intervals)")
    add_protocol_arguments(selection, out_default="autoscale-experiments", name_default="selection_protocol")
    selection.set_defaults(func=cmd_selection)
