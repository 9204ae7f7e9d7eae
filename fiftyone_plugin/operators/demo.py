"""Operator: create a demo dataset of driving scenes from the embedded world."""

from __future__ import annotations

import re

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from ..engine import scenes
from . import ui

MAX_DEMO_SCENES = 200_000
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _city_names() -> list[str]:
    from autoscale_core.world import CITIES

    return list(CITIES)


def validate_demo_params(params: dict) -> dict:
    """Check the form's values; returns cleaned params or raises ``ValueError`` naming the input."""
    name = str(params.get("name") or "").strip()
    if not _NAME_PATTERN.match(name):
        raise ValueError(f"name: {name!r} is not a valid dataset name (letters, digits, _ . -)")
    num_scenes = params.get("num_scenes", 2000)
    if not isinstance(num_scenes, (int, float)) or int(num_scenes) != num_scenes or not 1 <= num_scenes <= MAX_DEMO_SCENES:
        raise ValueError(f"num_scenes: must be an integer in 1..{MAX_DEMO_SCENES}, got {num_scenes!r}")
    cities = params.get("cities") or None
    known = _city_names()
    if cities is not None and any(c not in known for c in cities):
        raise ValueError(f"cities: unknown {sorted(set(cities) - set(known))}; choose from {known}")
    seed = params.get("seed", 0)
    if not isinstance(seed, (int, float)) or int(seed) != seed or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    return {
        "name": name,
        "num_scenes": int(num_scenes),
        "cities": list(cities) if cities else None,
        "seed": int(seed),
        "overwrite": bool(params.get("overwrite", False)),
    }


class CreateDemoDataset(foo.Operator):
    @property
    def config(self):
        return foo.OperatorConfig(
            name="create_demo_dataset",
            label="AutoScale: create demo dataset from the embedded world",
            description="Generate driving scenes (BEV images, overlays, scene arrays) as a new dataset",
            icon="public",
            allow_immediate_execution=True,
            allow_delegated_execution=True,
            dynamic=True,
        )

    def resolve_input(self, ctx):
        inputs = types.Object()
        params = ctx.params
        name = str(params.get("name") or "autoscale-demo").strip()
        name_taken = bool(name) and fo.dataset_exists(name) and not params.get("overwrite", False)
        inputs.str(
            "name",
            default="autoscale-demo",
            required=True,
            label="Dataset name",
            description="A new dataset (letters, digits, _ . -)",
            invalid=name_taken,
            error_message=f"Dataset '{name}' exists: tick overwrite or choose another name" if name_taken else "",
        )
        inputs.int("num_scenes", default=2000, min=1, max=MAX_DEMO_SCENES, required=True, label="Number of scenes",
                   description="Thousands of scenes take minutes: schedule those as a delegated run")
        cities = _city_names()
        inputs.list(
            "cities",
            types.String(),
            default=cities,
            label="Cities",
            description="Scene cities (empty = all)",
            view=types.AutocompleteView(
                multiple=True,
                choices=[types.Choice(value=c, label=c) for c in cities],
                allow_duplicates=False,
                allow_user_input=False,
            ),
        )
        inputs.int("seed", default=0, min=0, label="Random seed")
        inputs.bool("overwrite", default=False, label="Overwrite an existing dataset of that name")
        if not name_taken:  # the name's own message says it already
            ui.check_form(inputs, lambda: validate_demo_params(dict(params)) and None)
        return types.Property(inputs, view=types.View(label="Create AutoScale demo dataset"))

    def execute(self, ctx):
        params = validate_demo_params(dict(ctx.params))
        dataset = scenes.create_world_dataset(
            params["name"],
            params["num_scenes"],
            seed=params["seed"],
            cities=params["cities"],
            overwrite=params["overwrite"],
            progress=ui.progress_reporter(ctx),
        )
        summary = scenes.summarize(dataset)
        if not ctx.delegated:
            ctx.ops.open_dataset(dataset.name)  # a new dataset: open it rather than set a view
        ui.finish(ctx, f"Created dataset '{dataset.name}' with {len(dataset)} scenes", reload=False)
        return {"dataset": dataset.name, "num_samples": len(dataset), "cities": summary["city"],
                "topologies": summary["topology"]}

    def resolve_output(self, ctx):
        return ui.result_view(
            ("str", "dataset", "Dataset"),
            ("int", "num_samples", "Scenes"),
            ("json", "cities", "Scenes per city"),
            ("json", "topologies", "Scenes per topology"),
        )


OPERATORS = [CreateDemoDataset]
