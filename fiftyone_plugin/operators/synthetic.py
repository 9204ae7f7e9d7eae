"""App form for SimScale synthetic scenes; the work is :mod:`fiftyone_plugin.engine.synthetic`'s.
"""

from __future__ import annotations

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from autoscale_core.synthetic.generate import MAX_ROUNDS
from autoscale_core.synthetic.labels import EXPERTS

from ..engine.synthetic import generate_synthetic_samples, validate_synthetic_params
from . import ui

_EXECUTOR_HELP = {"serial": "chunk after chunk in this process (no worker start-up)",
                  "process": "chunks in parallel worker processes",
                  "ray": "chunks as Ray tasks (local Ray, or the cluster in AUTOSCALE_EXECUTOR)"}
_EXPERT_HELP = {"recovery": "a smooth trajectory back to the reference path",
                "planner": "the rule planner's best proposal in the perturbed state"}


def _check_synthetic_form(params: dict, view) -> None:
    validate_synthetic_params(params)
    if len(view) == 0:
        raise ValueError("target: the chosen samples are empty; select source scenes to perturb")


class GenerateSyntheticScenes(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="generate_synthetic_scenes",
            label="AutoScale: generate synthetic scenes (SimScale)",
            description="Perturb the ego's start state, re-simulate agents, label with a pseudo-expert",
            icon="auto_awesome",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            default_choice_to_delegated=True,
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)  # the source scenes: dataset / current view / selected samples
        if view is None:
            return types.Property(inputs)
        inputs.int("scenes_per_parent", default=5, min=1, max=100, required=True, label="Synthetic scenes per source scene")
        inputs.float("lateral_min", default=-2.0, label="Lateral offset min (m)")
        inputs.float("lateral_max", default=2.0, label="Lateral offset max (m)",
                      description="A range around 0 pushes either way by up to the larger magnitude")
        inputs.float("speed_min", default=-3.0, label="Speed change min (m/s)")
        inputs.float("speed_max", default=3.0, label="Speed change max (m/s)")
        expert = types.RadioGroup(label="Pseudo-expert")
        for name in EXPERTS:
            expert.add_choice(name, label=name, description=_EXPERT_HELP.get(name, ""))
        inputs.enum("expert", expert.values(), default="recovery", label="Pseudo-expert", view=expert)
        inputs.int("rounds", default=1, min=1, max=MAX_ROUNDS, label="Rounds (round r perturbs round r-1)")
        inputs.int("seed", default=0, min=0, label="Random seed")
        ui.executor_input(inputs, ctx, _EXECUTOR_HELP, label="Executor for the chunks of parents",
                          description="same scenes whichever runs them")
        ui.check_form(inputs, lambda: _check_synthetic_form(dict(ctx.params), view))
        return types.Property(inputs, view=types.View(label="Generate synthetic scenes"))

    def execute(self, ctx):
        params = validate_synthetic_params(dict(ctx.params))
        summary = generate_synthetic_samples(
            ctx.target_view(), scenes_per_parent=params["scenes_per_parent"],
            lateral_range=params["lateral_range"], speed_range=params["speed_range"],
            expert=params["expert"], rounds=params["rounds"], seed=params["seed"],
            executor=ctx.params.get("executor"), progress=ui.progress_reporter(ctx),
        )
        if not ctx.delegated:
            # Show what was written: the synthetic scenes this run added (newest first).
            added = ctx.dataset.match(fo.ViewField("source") == "synthetic").sort_by("created_at", reverse=True)
            ui.finish(ctx, f"Added {summary['added']} synthetic scenes (run {summary['run']}, "
                           f"{summary['rejects']['rejected']} rejected)",
                      view=added.limit(summary["added"]) if summary["added"] else None)
        return {"added": summary["added"], "generated": summary["generated"], "run_key": summary["run"],
                "rejected": summary["rejects"]["rejected"]}

    def resolve_output(self, ctx):
        return ui.result_view(
            ("int", "added", "Synthetic scenes added"),
            ("int", "generated", "Generated (incl. already present)"),
            ("str", "run_key", "Run"),
            ("int", "rejected", "Perturbations rejected"),
        )


OPERATORS = [GenerateSyntheticScenes]
