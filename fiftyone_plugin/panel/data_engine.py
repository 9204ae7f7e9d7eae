"""The Data Engine panel: what AutoScale computed on this dataset, and buttons for the next step.

Numbers come from :func:`fiftyone_plugin.engine.summary.engine_summary` (plain JSON; EPDMS in
points, 0–100, everywhere); this module turns them into Plotly traces and the panel layout.
Sections (each says "run X first" with a button when empty): clusters (named by dominant
topology / city / event; a row click shows that cluster in the grid; the planner whose EPDMS is
shown is a choice), scaling curves with a per-domain fit table, the latest selection's allocation
and coverage vs the pool, the selection protocol's EPDMS-vs-budget curves, the closed-loop
history, and recent runs (internal write records hidden).
"""

from __future__ import annotations

import functools
from typing import Any

import fiftyone.operators as foo
import fiftyone.operators.types as types
import numpy as np
from fiftyone import ViewField as F

from ..engine.summary import (  # noqa: F401  (re-exported: the panel's public numbers)
    closed_loop_history,
    cluster_table,
    coverage,
    engine_summary,
    fit_rows,
    latest_selection,
    points,
    scaling_curves,
    selection_protocol,
)

PLUGIN = "@autoscale/autoscale"
CURVE_POINTS = 60
# Plotly's default qualitative colours: a domain's fitted curve and its pilot points share one.
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
# Plots inside the scrolling panel must not zoom on the wheel; a small mode bar is enough.
PLOT_CONFIG = {"scrollZoom": False, "displaylogo": False}
LEGEND = {"x": 0.01, "y": 0.99, "bgcolor": "rgba(40, 40, 40, 0.6)"}  # inside: the panel is narrow

# (operator name, button label) suggested when a section is empty.
NEXT_STEPS = {
    "clusters": [("compute_scene_embeddings", "Compute embeddings"), ("cluster_scenes", "Cluster scenes"),
                 ("compute_value_scores", "Compute value scores")],
    "curves": [("fit_scaling_laws", "Fit scaling laws")],
    "allocation": [("allocate_budget", "Allocate a budget (MOSAIC)"), ("select_active", "Select by value")],
    "history": [("optimize_mixture", "Optimize the mixture (AutoScale)")],
}
# Buttons for each step, shown one row per pipeline stage (fiftyone_plugin/operators/pipeline.py): rows of at
# most four buttons stay narrower than a panel that shares the screen with the grid; one row of twelve did not.
ACTIONS = [("create_demo_dataset", "Create demo dataset"), ("generate_synthetic_scenes", "Generate synthetic scenes"),
           ("train_planner", "Train planner"), ("evaluate_planner", "Evaluate planner"),
           ("compute_scene_embeddings", "Embeddings"), ("cluster_scenes", "Clusters"),
           ("compute_value_scores", "Value scores"), ("fit_scaling_laws", "Scaling laws"),
           ("allocate_budget", "Allocate budget"), ("optimize_mixture", "Optimize mixture"),
           ("select_active", "Active selection"), ("export_annotation_queue", "Export annotation queue")]


@functools.lru_cache(maxsize=1)
def registered_operators() -> frozenset[str]:
    """Names of the operators this plugin registers (buttons only open those)."""
    from .. import operator_classes

    names = set()
    for cls in operator_classes(strict=False):
        try:
            names.add(cls().config.name)
        except Exception:  # a broken operator must not break the panel
            continue
    return frozenset(names)


def fitted_gain(curve: dict, n: np.ndarray) -> np.ndarray:
    """The fitted curve at ``n`` scenes: a(1 − e^(−n/τ)) (``exp``), slope·n (``linear``) or 0."""
    n = np.asarray(n, dtype=np.float64)
    if curve.get("model", "exp") == "exp" and curve.get("a") is not None and curve.get("tau"):
        return float(curve["a"]) * -np.expm1(-n / float(curve["tau"]))
    if curve.get("model") == "linear":
        return float(curve.get("slope") or 0.0) * n
    return np.zeros_like(n)


# ---------------------------------------------------------------------------------- plots
def curve_traces(curves: dict) -> list[dict]:
    """Plotly traces per domain: the fitted curve and its pilot points (same colour, seed error
    bars when the run kept them), n in scenes, gain in EPDMS points."""
    traces = []
    for k, (domain, c) in enumerate(sorted(curves["domains"].items())):
        colour = PALETTE[k % len(PALETTE)]
        top = max([*(c["n"] or [0]), 3 * float(c.get("tau") or 0.0), 10.0])
        n = np.linspace(0.0, top, CURVE_POINTS)
        traces.append({"type": "scatter", "mode": "lines", "name": f"{domain} ({c.get('model', 'exp')} fit)",
                       "legendgroup": domain, "line": {"color": colour},
                       "x": n.round(3).tolist(), "y": (100 * fitted_gain(c, n)).round(4).tolist()})
        if c["n"]:
            pilots = {"type": "scatter", "mode": "markers", "name": f"{domain} pilots", "legendgroup": domain,
                      "marker": {"color": colour, "size": 8}, "x": list(c["n"]),
                      "y": [points(g) for g in c["gain"]]}
            if c.get("gain_std"):
                pilots["error_y"] = {"type": "data", "array": [points(s) for s in c["gain_std"]], "visible": True,
                                     "color": colour}
            traces.append(pilots)
    return traces


def history_traces(history: dict) -> tuple[list[dict], list[dict]]:
    """(EPDMS points per round, mixture weight per cluster per round) Plotly traces."""
    rounds = [h["round"] for h in history["rounds"]]
    epdms = [{"type": "scatter", "mode": "lines+markers", "name": "EPDMS (points)", "x": rounds,
              "y": [h["epdms"] for h in history["rounds"]]}]
    names = sorted({k for h in history["rounds"] for k in h["weights"]})
    weights = [{"type": "bar", "name": n, "x": rounds, "y": [h["weights"].get(n, 0.0) for h in history["rounds"]],
                "marker": {"color": PALETTE[i % len(PALETTE)]}} for i, n in enumerate(names)]
    return epdms, weights


def allocation_trace(allocation: dict) -> list[dict]:
    items = sorted(allocation["allocation"].items(), key=lambda kv: -kv[1])
    return [{"type": "bar", "x": [k for k, _ in items], "y": [v for _, v in items], "name": "scenes"}]


def coverage_traces(cov: dict) -> list[dict]:
    """Two bar traces (selection, pool): share (%) per ``field: value``."""
    xs, sel, pool = [], [], []
    for field, rows in cov["fields"].items():
        for r in rows:
            xs.append(f"{field}: {r['value']}")
            sel.append(r["selection_pct"])
            pool.append(r["pool_pct"])
    return [{"type": "bar", "name": f"selection ({cov['num_selected']} scenes)", "x": xs, "y": sel,
             "marker": {"color": PALETTE[3]}},
            {"type": "bar", "name": f"pool: real train ({cov['num_pool']} scenes)", "x": xs, "y": pool,
             "marker": {"color": PALETTE[7]}}]


def protocol_traces(protocol: dict) -> list[dict]:
    """Per method: an interval band (lo..hi) and the mean EPDMS line, in one colour."""
    traces = []
    for k, (method, c) in enumerate(sorted(protocol["curves"].items())):
        colour = PALETTE[k % len(PALETTE)]
        if c["lo"] and c["hi"] and len(c["lo"]) == len(c["budget"]) == len(c["hi"]):
            traces.append({"type": "scatter", "mode": "lines", "name": f"{method} interval", "legendgroup": method,
                           "showlegend": False, "x": c["budget"] + c["budget"][::-1], "y": c["hi"] + c["lo"][::-1],
                           "fill": "toself", "fillcolor": colour, "opacity": 0.2, "line": {"width": 0, "color": colour},
                           "hoverinfo": "skip"})
        traces.append({"type": "scatter", "mode": "lines+markers", "name": method, "legendgroup": method,
                       "line": {"color": colour}, "x": c["budget"], "y": c["epdms"]})
    return traces


def panel_data(summary: dict) -> dict[str, Any]:
    """The panel's data entries (table rows and plot traces) for a summary."""
    data: dict[str, Any] = {}
    if summary["clusters"]:
        data["cluster_table"] = summary["clusters"]["rows"]
    if summary["curves"]:
        data["scaling_curves"] = curve_traces(summary["curves"])
        data["fit_table"] = summary["fits"]
    if summary["allocation"]:
        data["allocation_plot"] = allocation_trace(summary["allocation"])
    if summary.get("coverage"):
        data["coverage_plot"] = coverage_traces(summary["coverage"])
    if summary.get("protocol"):
        data["protocol_plot"] = protocol_traces(summary["protocol"])
    if summary["history"]:
        data["history_epdms"], data["history_weights"] = history_traces(summary["history"])
    return data


# ---------------------------------------------------------------------------------- layout
def _button(panel: types.Object, operator: str, label: str, key: str | None = None) -> bool:
    if operator not in registered_operators():
        return False
    panel.btn(key or f"open_{operator}", label=label, on_click=f"{PLUGIN}/{operator}", prompt=True, variant="outlined")
    return True


def _empty(panel: types.Object, section: str, message: str) -> None:
    panel.md(f"_{message}_", name=f"{section}_empty")
    buttons = types.Object()
    for operator, label in NEXT_STEPS[section]:
        _button(buttons, operator, label, key=f"{section}_{operator}")
    panel.define_property(f"{section}_actions", buttons, view=types.HStackView())


def _plot(panel: types.Object, name: str, *, height: int, x: str, y: str, **layout) -> None:
    panel.plot(name, config=PLOT_CONFIG,
               layout={"height": height, "margin": {"t": 10, "b": 40}, "showlegend": True, "legend": LEGEND,
                       "xaxis": {"title": {"text": x}}, "yaxis": {"title": {"text": y}}, **layout})


def _table(panel: types.Object, name: str, columns: list[tuple[str, str]], **view_kwargs) -> None:
    table = types.TableView(**view_kwargs)
    for key, label in columns:
        table.add_column(key, label=label)
    panel.list(name, types.Object(), view=table)


def _clusters_section(panel: types.Object, clusters: dict | None, handlers: dict) -> None:
    panel.md("#### Clusters", name="clusters_title")
    if not clusters:
        _empty(panel, "clusters", "No clusters yet: compute embeddings, then run Cluster scenes first.")
        return
    if clusters["planners"]:
        chooser = types.DropdownView(label="EPDMS of planner")
        for key in clusters["planners"]:
            chooser.add_choice(key, label=key)
        panel.enum("planner", clusters["planners"], default=clusters["planner"], label="EPDMS of planner",
                   view=chooser, on_change=handlers.get("planner"))
    caption = (f"Field `{clusters['field']}`; mean EPDMS (points, 0–100) of planner `{clusters['planner']}`"
               if clusters["planner"] else f"Field `{clusters['field']}` (evaluate a planner for EPDMS)")
    panel.md(caption + ". Click a row to show that cluster in the grid.", name="clusters_caption")
    labels = {"name": "cluster (dominant topology / city / event)", "mean_epdms": "mean EPDMS (pts)"}
    keys = [k for k in clusters["rows"][0] if k != "cluster"]
    _table(panel, "cluster_table", [(k, labels.get(k, k.replace("_", " "))) for k in keys],
           on_click_row=handlers.get("cluster_row"))


def _curves_section(panel: types.Object, summary: dict) -> None:
    panel.md("#### Scaling curves", name="curves_title")
    if not summary["curves"]:
        _empty(panel, "curves", "No scaling laws yet: run Fit scaling laws first.")
        return
    panel.md(f"Gain over the base planner (EPDMS points) vs scenes added per domain, fitted a(1 − e^(−n/τ)), "
             f"from run `{summary['curves']['run_key']}`; markers are the pilot runs (mean ± sd over seeds)",
             name="curves_caption")
    _plot(panel, "scaling_curves", height=340, x="scenes added n", y="EPDMS gain (points)")
    _table(panel, "fit_table", [("domain", "domain"), ("model", "model"), ("a", "a (pts)"), ("tau", "τ (scenes)"),
                                ("r2", "R²"), ("warning", "warning")])


def _selection_sections(panel: types.Object, summary: dict) -> None:
    panel.md("#### Allocation", name="allocation_title")
    alloc = summary["allocation"]
    if alloc:
        gain = "" if alloc["predicted_gain_points"] is None else f", predicted gain {alloc['predicted_gain_points']:+.2f} points"
        panel.md(f"Selection `{alloc['name']}` ({alloc['method']}, {alloc['budget']} scenes{gain}; tag `{alloc['tag']}`)\n\n"
                 f"{alloc['explanation']}", name="allocation_caption")
        _plot(panel, "allocation_plot", height=260, x="domain", y="scenes")
        _button(panel, "export_annotation_queue", "Export as annotation queue", key="allocation_export")
    else:
        _empty(panel, "allocation", "No selection yet: allocate a budget or select by value first.")
    if summary.get("coverage"):
        cov = summary["coverage"]
        panel.md(f"#### Coverage of `{cov['tag']}` vs the pool\nShare of scenes (%) per topology, city and event",
                 name="coverage_title")
        _plot(panel, "coverage_plot", height=300, x="", y="share of scenes (%)", barmode="group")
    if summary.get("protocol"):
        panel.md(f"#### Selection protocol\nTest EPDMS (points) vs budget per method, with intervals, from run "
                 f"`{summary['protocol']['run_key']}`", name="protocol_title")
        _plot(panel, "protocol_plot", height=340, x="budget (scenes)", y="EPDMS (points)")


def _history_section(panel: types.Object, summary: dict) -> None:
    panel.md("#### Closed-loop history", name="history_title")
    if not summary["history"]:
        _empty(panel, "history", "No closed-loop history yet: run Optimize the mixture first.")
        return
    panel.md(f"EPDMS (points) and mixture weights per round from run `{summary['history']['run_key']}`",
             name="history_caption")
    _plot(panel, "history_epdms", height=240, x="round", y="EPDMS (points)")
    _plot(panel, "history_weights", height=260, x="round", y="mixture weight", barmode="stack")


def build_layout(summary: dict, handlers: dict | None = None) -> types.Property:
    """The panel layout for ``summary`` (see :func:`engine_summary`); data comes from :func:`panel_data`.

    ``handlers``: panel methods for ``"planner"`` (the planner choice changed) and
    ``"cluster_row"`` (a cluster row was clicked).
    """
    handlers = handlers or {}
    panel = types.Object()
    sources = ", ".join(f"{k}: {v}" for k, v in sorted(summary["sources"].items())) or "no scenes"
    panel.md(f"**AutoScale data engine** on `{summary['dataset']}`: {summary['num_scenes']} scenes ({sources}). "
             "EPDMS is shown in points (0–100).", name="header")
    panel.btn("refresh", label="Refresh", on_click="refresh", variant="outlined", icon="refresh")
    _clusters_section(panel, summary["clusters"], handlers)
    _curves_section(panel, summary)
    _selection_sections(panel, summary)
    _history_section(panel, summary)
    panel.md("#### Recent runs\n" + ("\n".join(f"- `{r['key']}` {r['method']} [{r['status']}]" for r in summary["runs"])
                                     or "_none_"), name="runs")
    _actions_section(panel)
    return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=1))


def _actions_section(panel: types.Object) -> None:
    """The step buttons, one row per pipeline stage ("1. data", "2. planner", ...)."""
    from ..operators.pipeline import PIPELINE

    panel.md("#### Next steps", name="actions_title")
    labels = dict(ACTIONS)
    for number, (stage, operators) in enumerate(PIPELINE, start=1):
        row = types.Object()
        row.md(f"**{number}. {stage}**", name=f"stage_{stage}_label")
        shown = [_button(row, op, labels[op], key=f"action_{op}") for op in operators if op in labels]
        if any(shown):
            panel.define_property(f"actions_{stage}", row, view=types.HStackView())


class DataEnginePanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(name="data_engine", label="AutoScale Data Engine", icon="insights",
                               help_markdown="Clusters, scaling curves, allocation, coverage and closed-loop history "
                                             "of AutoScale runs on this dataset, with buttons for each step.")

    def _load(self, ctx) -> None:
        summary = engine_summary(ctx.dataset, ctx.panel.get_state("planner"))
        ctx.panel.set_state("summary", summary)
        for key, value in panel_data(summary).items():
            ctx.panel.set_data(key, value)

    def on_load(self, ctx):
        self._load(ctx)

    def on_change_dataset(self, ctx):
        self._load(ctx)

    def on_change_view(self, ctx):  # operators finish with ctx.ops.set_view(...) (see ui.finish)
        self._load(ctx)

    def refresh(self, ctx):
        self._load(ctx)

    def on_planner(self, ctx):
        """The planner choice changed: recompute the cluster table's EPDMS for it."""
        ctx.panel.set_state("planner", ctx.params.get("value"))
        self._load(ctx)

    def on_cluster_row(self, ctx):
        """A cluster row was clicked: show that cluster's scenes in the grid."""
        summary = ctx.panel.get_state("summary") or {}
        clusters = summary.get("clusters") or {}
        rows = clusters.get("rows") or []
        row = ctx.params.get("row")
        if not isinstance(row, int) or not 0 <= row < len(rows):
            return
        cluster = rows[row]["cluster"]
        ctx.ops.set_view(view=ctx.dataset.match(F(clusters["field"]) == cluster))
        ctx.ops.notify(f"Showing cluster {rows[row]['name']} ({rows[row]['size']} scenes)", variant="info")

    def render(self, ctx):
        summary = ctx.panel.get_state("summary")
        if not summary or summary.get("dataset") != getattr(ctx.dataset, "name", None):
            summary = engine_summary(ctx.dataset, ctx.panel.get_state("planner"))
        return build_layout(summary, {"planner": self.on_planner, "cluster_row": self.on_cluster_row})


OPERATORS = [DataEnginePanel]
