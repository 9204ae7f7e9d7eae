"""App forms for embeddings, clusters and value scores; the work is
:mod:`fiftyone_plugin.engine.representation`'s.
"""

from __future__ import annotations

from pathlib import Path

import fiftyone as fo
import fiftyone.operators.types as types

from autoscale_core.representation.pipeline import (
    METHODS,
)

from ..engine.representation import (
    VIZ_METHODS,
    _check_method,
    _train_mask,
    cluster_scenes,
    compute_scene_embeddings,
    compute_value_scores,
)
from ..engine.runs import list_runs
from . import ui

_METHOD_HELP = {"handcrafted": "cheap scene features", "graph_rae": "self-supervised graph auto-encoder",
                "error_pattern": "planner error windows (trains a planner if none is chosen)"}
NEW_PLANNER = "(train one on the target's train scenes)"
METADATA_DOMAINS = ("city", "topology", "maneuver", "source", "split")
KMEANS = "(k-means on the embeddings)"


def _embedded_methods(dataset) -> list[str]:
    return [m for m in METHODS if dataset.has_field(f"emb_{m}")]


def _method_input(inputs, ctx, *, embedded_only: bool = False) -> str:
    """Encoder radio; for operators that read embeddings, the default is one already computed."""
    done = _embedded_methods(ctx.dataset) if embedded_only else []
    radio = types.RadioGroup(label="Encoder")
    for m in METHODS:
        radio.add_choice(m, label=m + (" (computed)" if m in done else ""), description=_METHOD_HELP.get(m, ""))
    default = done[0] if done else "graph_rae"
    inputs.enum("method", radio.values(), default=default, label="Encoder", view=radio)
    return ctx.params.get("method", default)


def _check_embeddings(view, method: str) -> str:
    """Inline check that ``emb_<method>`` exists on every target scene; returns the field."""
    field = f"emb_{_check_method(method)}"
    if not view.has_field(field):
        raise ValueError(f"no {field!r} yet: run compute_scene_embeddings with method {method!r} first")
    missing = len(view) - view.count(field)
    if missing:
        raise ValueError(f"{missing} of the {len(view)} target scenes have no {field!r}: "
                         "run compute_scene_embeddings on them first")
    return field


def _planner_checkpoints(dataset) -> dict[str, str]:
    """Checkpoint path -> label for the planners trained on this dataset (train_planner runs)."""
    out = {}
    for run in list_runs(dataset, method="train_planner"):
        path = (run.get("results") or {}).get("checkpoint")
        if path:
            out[str(path)] = f"{run['key']} ({Path(path).name})"
    return out


def _check_embed_form(view, p: dict) -> None:
    if len(view) < 2:
        raise ValueError(f"target: {len(view)} scene(s) chosen; at least 2 are needed")
    mc = p.get("mc_samples", 10)
    if isinstance(mc, (int, float)) and mc != 0 and mc < 2:
        raise ValueError(f"mc_samples: must be 0 (off) or >= 2, got {mc}")
    planner = p.get("planner_path") or ""
    if p.get("method") == "error_pattern" and planner and planner != NEW_PLANNER and not Path(planner).is_file():
        raise ValueError(f"planner_path: {planner} does not exist")


class ComputeSceneEmbeddings(ui.DelegatedOperator):
    _name, _label, _icon = "compute_scene_embeddings", "AutoScale: compute scene embeddings", "scatter_plot"
    _description = "Embed scenes (hand-crafted / Graph-RAE / error-pattern), index them and map them in 2-D"

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)
        if view is None:
            return types.Property(inputs)
        method = _method_input(inputs, ctx)
        if ctx.dataset.has_field(f"emb_{method}"):
            inputs.view("overwrite_note", types.Notice(label=f"emb_{method} exists: the target's values are replaced"))
        inputs.int("steps", default=0, min=0, label="Training steps (0 = default)")
        inputs.int("mc_samples", default=10, min=0, label="MC-dropout samples for U (0 = off)")
        if method == "error_pattern":
            planners = _planner_checkpoints(ctx.dataset)
            dropdown = types.Dropdown(label="Planner", description="a planner trained with train_planner, or a new one")
            for value, label in [(NEW_PLANNER, NEW_PLANNER), *planners.items()]:
                dropdown.add_choice(value, label=label)
            inputs.str("planner_path", default=NEW_PLANNER, label="Planner", view=dropdown)
            inputs.int("planner_steps", default=300, min=1, label="Steps when training that planner")
        viz = types.Dropdown(label="2-D map (Embeddings panel)")
        for choice in VIZ_METHODS:
            viz.add_choice(choice, label={"auto": "auto (t-SNE for 50-3000 scenes, else PCA)"}.get(choice, choice))
        inputs.enum("viz_method", viz.values(), default="auto", label="2-D map", view=viz)
        inputs.int("seed", default=0, min=0, label="Seed")
        ui.check_form(inputs, lambda: _check_embed_form(view, dict(ctx.params)))
        return types.Property(inputs, view=types.View(label="Compute scene embeddings"))

    def execute(self, ctx):
        p = ctx.params
        planner = p.get("planner_path") or None
        view = ctx.target_view()
        out = compute_scene_embeddings(view, p.get("method", "graph_rae"), seed=int(p.get("seed", 0)),
                                       steps=int(p.get("steps") or 0) or None, mc_samples=int(p.get("mc_samples", 10)),
                                       planner_path=None if planner == NEW_PLANNER else planner,
                                       viz_method=p.get("viz_method", "auto"),
                                       planner_steps=int(p.get("planner_steps", 300)),
                                       progress=ui.progress_reporter(ctx))
        ui.finish(ctx, f"Wrote {out['field']} for {out['num_scenes']} scenes; open the Embeddings panel "
                       f"({out.get('visualization_brain_key', 'no 2-D map')})",
                  view=view if isinstance(view, fo.DatasetView) else None)
        return {"run": out["run"], "field": out["field"], "num_scenes": out["num_scenes"]}

    def resolve_output(self, ctx):
        return ui.result_view(
            ("str", "run", "Run"),
            ("str", "field", "Embedding field"),
            ("int", "num_scenes", "Scenes embedded"),
        )


class ClusterScenes(ui.DelegatedOperator):
    _name, _label, _icon = "cluster_scenes", "AutoScale: cluster scenes into domains", "bubble_chart"
    _description = "k-means on scene embeddings (k given or chosen by silhouette) or metadata domains"

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)
        if view is None:
            return types.Property(inputs)
        method = _method_input(inputs, ctx, embedded_only=True)
        inputs.int("k", default=0, min=0, label="Clusters (0 = choose by silhouette)")
        domains = types.Dropdown(label="Domains", description="k-means, or one cluster per value of a metadata field")
        domains.add_choice("", label=KMEANS)
        for name in METADATA_DOMAINS:
            if ctx.dataset.has_field(name):
                domains.add_choice(name, label=f"metadata: {name}")
        inputs.enum("domains_field", domains.values(), default="", label="Domains", view=domains)
        inputs.int("seed", default=0, min=0, label="Seed")
        ui.check_form(inputs, lambda: self._check(view, method, ctx.params))
        return types.Property(inputs, view=types.View(label="Cluster scenes"))

    @staticmethod
    def _check(view, method, p) -> None:
        _check_embeddings(view, method)
        k = p.get("k") or 0
        if not p.get("domains_field") and isinstance(k, (int, float)) and k > len(view):
            raise ValueError(f"k: {k} clusters requested for a target of {len(view)} scenes")

    def execute(self, ctx):
        p = ctx.params
        view = ctx.target_view()
        out = cluster_scenes(view, p.get("method", "graph_rae"), k=int(p.get("k") or 0) or None,
                             domains_field=p.get("domains_field") or None, seed=int(p.get("seed", 0)),
                             progress=ui.progress_reporter(ctx))
        ui.finish(ctx, f"{out['k']} clusters written to {out['field']} ({out['criterion']})",
                  view=view.sort_by(out["field"]))
        return {"run": out["run"], "k": out["k"], "criterion": out["criterion"]}

    def resolve_output(self, ctx):
        return ui.result_view(("str", "run", "Run"), ("int", "k", "Clusters"), ("str", "criterion", "How k was chosen"))


class ComputeValueScores(ui.DelegatedOperator):
    _name, _label, _icon = "compute_value_scores", "AutoScale: compute value scores (S/R/U/Q)", "star"
    _description = "Safety proximity, rarity, MC-dropout uncertainty and their weighted sum"

    def resolve_input(self, ctx):
        inputs, view = ui.target_form(ctx)
        if view is None:
            return types.Property(inputs)
        method = _method_input(inputs, ctx, embedded_only=True)
        inputs.float("alpha_s", default=1.0, min=0.0, label="Weight of safety proximity S")
        inputs.float("alpha_r", default=1.0, min=0.0, label="Weight of rarity R")
        inputs.float("alpha_u", default=1.0, min=0.0, label="Weight of uncertainty U")
        inputs.int("k", default=20, min=1, label="Rarity neighbours k",
                   description="needs more than k reference (split=train) scenes in the target")
        ui.check_form(inputs, lambda: self._check(view, method, ctx.params))
        return types.Property(inputs, view=types.View(label="Compute value scores"))

    @staticmethod
    def _check(view, method, p) -> None:
        _check_embeddings(view, method)
        k = p.get("k", 20)
        num_train = int(_train_mask(view).sum())
        if isinstance(k, (int, float)) and num_train < k + 1:
            raise ValueError(f"k: the target has {num_train} training scenes; k={k} needs at least {k + 1}")

    def execute(self, ctx):
        p = ctx.params
        view = ctx.target_view()
        out = compute_value_scores(view, p.get("method", "graph_rae"), alpha_s=float(p.get("alpha_s", 1.0)),
                                   alpha_r=float(p.get("alpha_r", 1.0)), alpha_u=float(p.get("alpha_u", 1.0)),
                                   k=int(p.get("k", 20)), progress=ui.progress_reporter(ctx))
        ui.finish(ctx, f"Wrote value_s/r/u/q for {out['num_scenes']} scenes (highest Q first)",
                  view=view.sort_by("value_q", reverse=True))
        return {"run": out["run"], "num_scenes": out["num_scenes"]}

    def resolve_output(self, ctx):
        return ui.result_view(("str", "run", "Run"), ("int", "num_scenes", "Scenes scored"))


OPERATORS = [ComputeSceneEmbeddings, ClusterScenes, ComputeValueScores]
