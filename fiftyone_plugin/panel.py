"""The Data Engine panel: what AutoScale computed on this dataset, and buttons for the next step.

Everything shown comes from sample fields (via aggregations) and from run records written with
:mod:`fiftyone_plugin.runs`; :func:`engine_summary` gathers it as plain JSON, so the panel, tests
and notebooks read the same numbers. Sections (each says "run X first" with a button when empty):

* **Clusters** — per value of the latest ``cluster_*`` field: size, real / synthetic share, mean
  EPDMS of the latest ``eval_*_epdms`` field, mean ``value_s/r/u/q``.
* **Scaling curves** — per domain, the pilot points and the fitted a(1 − e^(−n/τ)) of the latest
  run whose results have ``fits`` (``{domain: {"model", "a", "tau", "slope"}}``, e.g.
  ``fit_scaling_laws`` → ``scaling_<name>``; MOSAIC selections keep them in
  ``diagnostics.fits``) plus ``pilots`` (``{domain: {"sizes": [...], "gains": [...]}}``); a
  generic ``curves`` result (``{domain: {"a", "tau", "n": [...], "gain": [...]}}``) works too.
* **Allocation** — the latest selection run (method ``selection_*``): ``allocation``
  (``{domain: scenes}``), ``budget``, ``predicted_gain``, ``explanation``, ``tag``.
* **Closed-loop history** — the latest run with a history: ``diagnostics.history`` of
  ``optimize_mixture`` (``[{"round", "score", "weights": [...], "counts": {cluster: n}}]``; weights
  are named by the ``counts`` keys) or a generic ``history``
  (``[{"round", "epdms", "weights": {name: w}}]``).
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

import fiftyone as fo
import fiftyone.operators as foo
import fiftyone.operators.types as types

from .runs import list_runs

PLUGIN = "@autoscale/autoscale"
VALUE_COMPONENTS = ("value_s", "value_r", "value_u", "value_q")
CURVE_POINTS = 60

# (operator name, button label) suggested when a section is empty.
NEXT_STEPS = {
    "clusters": [("compute_scene_embeddings", "Compute embeddings"), ("cluster_scenes", "Cluster scenes"),
                 ("compute_value_scores", "Compute value scores")],
    "curves": [("fit_scaling_laws", "Fit scaling laws")],
    "allocation": [("allocate_budget", "Allocate a budget (MOSAIC)"), ("select_active", "Select by value")],
    "history": [("optimize_mixture", "Optimize the mixture (AutoScale)")],
}
ACTIONS = [("create_demo_dataset", "Create demo dataset"), ("generate_synthetic_scenes", "Generate synthetic scenes"),
           ("train_planner", "Train planner"), ("evaluate_planner", "Evaluate planner"),
           ("compute_scene_embeddings", "Embeddings"), ("cluster_scenes", "Clusters"),
           ("compute_value_scores", "Value scores"), ("fit_scaling_laws", "Scaling laws"),
           ("allocate_budget", "Allocate budget"), ("optimize_mixture", "Optimize mixture"),
           ("select_active", "Active selection"), ("export_annotation_queue", "Export annotation queue")]


@functools.lru_cache(maxsize=1)
def registered_operators() -> frozenset[str]:
    """Names of the operators this plugin registers (buttons only open those)."""
    from . import operator_classes

    names = set()
    for cls in operator_classes(strict=False):
        try:
            names.add(cls().config.name)
        except Exception:  # a broken operator must not break the panel
            continue
    return frozenset(names)


# ---------------------------------------------------------------------------------- gathering
def _latest_run(runs: list[dict], predicate) -> dict | None:
    chosen = [r for r in runs if r["status"] == "completed" and r["results"] and predicate(r)]
    return chosen[-1] if chosen else None


def _field_of_latest_run(dataset: fo.Dataset, runs: list[dict], candidates: list[str]) -> str | None:
    """The candidate field whose run record (same key, or ``eval_<run>`` for ``eval_<run>_*``) is newest."""
    if not candidates:
        return None
    order = {r["key"]: i for i, r in enumerate(runs)}

    def newest(field: str) -> int:
        keys = [field, field.rsplit("_", 1)[0]]
        return max((order.get(k, -1) for k in keys), default=-1)

    return max(sorted(candidates), key=newest)


def cluster_table(dataset: fo.Dataset | fo.DatasetView, runs: list[dict] | None = None) -> dict | None:
    """Per-cluster rows of the latest ``cluster_*`` field, or None when there is none.

    Returns {"field", "epdms_field", "rows": [{"cluster", "size", "real_share", "synthetic_share",
    "mean_epdms", "mean_value_s", ...}]}. Shares are fractions in [0, 1]; means skip missing values.
    """
    root = dataset if isinstance(dataset, fo.Dataset) else dataset._root_dataset
    runs = list_runs(root) if runs is None else runs
    schema = dataset.get_field_schema()
    clusters = [n for n in schema if n.startswith("cluster_")]
    field = _field_of_latest_run(root, runs, clusters)
    if field is None:
        return None
    epdms_field = _field_of_latest_run(root, runs, [n for n in schema if n.startswith("eval_") and n.endswith("_epdms")])
    values = [n for n in schema if n.lower() in VALUE_COMPONENTS]
    numeric = ([epdms_field] if epdms_field else []) + values
    columns = dataset.values([field, "source", *numeric])
    labels = np.asarray([("(none)" if v is None else str(v)) for v in columns[0]], dtype=object)
    names, codes = np.unique(labels, return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    synthetic = np.bincount(codes, weights=np.asarray([s == "synthetic" for s in columns[1]], dtype=float),
                            minlength=len(names))
    means = {}
    for name, col in zip(numeric, columns[2:]):
        x = np.asarray([np.nan if v is None else v for v in col], dtype=np.float64)
        ok = np.isfinite(x)
        total = np.bincount(codes, weights=np.where(ok, x, 0.0), minlength=len(names))
        count = np.bincount(codes, weights=ok.astype(float), minlength=len(names))
        with np.errstate(invalid="ignore", divide="ignore"):
            means[name] = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    rows = []
    for k, name in enumerate(names):
        row = {"cluster": name, "size": int(sizes[k]),
               "real_share": round(float(1 - synthetic[k] / sizes[k]), 3),
               "synthetic_share": round(float(synthetic[k] / sizes[k]), 3)}
        if epdms_field:
            row["mean_epdms"] = _round(means[epdms_field][k])
        for v in values:
            row[f"mean_{v.lower()}"] = _round(means[v][k])
        rows.append(row)
    rows.sort(key=lambda r: (-r["size"], r["cluster"]))
    return {"field": field, "epdms_field": epdms_field, "rows": rows}


def _round(x: float, digits: int = 4) -> float | None:
    return None if not np.isfinite(x) else round(float(x), digits)


def scaling_curves(runs: list[dict]) -> dict | None:
    """{"run_key", "domains": {domain: {"model", "a", "tau", "slope", "n": [...], "gain": [...]}}} or None."""
    def curves_of(run: dict) -> dict | None:
        res = run["results"]
        if isinstance(res.get("curves"), dict):
            return {d: {"model": c.get("model", "exp"), "a": c.get("a"), "tau": c.get("tau"), "slope": c.get("slope", 0.0),
                        "n": list(c.get("n") or []), "gain": list(c.get("gain") or [])} for d, c in res["curves"].items()}
        fits = res.get("fits") or (res.get("diagnostics") or {}).get("fits")
        if not isinstance(fits, dict) or not fits:
            return None
        pilots = res.get("pilots") or (res.get("diagnostics") or {}).get("pilots") or {}
        return {d: {"model": f.get("model", "exp"), "a": f.get("a"), "tau": f.get("tau"), "slope": f.get("slope", 0.0),
                    "n": list((pilots.get(d) or {}).get("sizes") or []), "gain": list((pilots.get(d) or {}).get("gains") or [])}
                for d, f in fits.items()}

    run = _latest_run(runs, lambda r: curves_of(r) is not None)
    return None if run is None else {"run_key": run["key"], "method": run["method"], "domains": curves_of(run)}


def fitted_gain(curve: dict, n: np.ndarray) -> np.ndarray:
    """The fitted curve at ``n`` scenes: a(1 − e^(−n/τ)) (``exp``), slope·n (``linear``) or 0."""
    n = np.asarray(n, dtype=np.float64)
    if curve.get("model", "exp") == "exp" and curve.get("a") is not None and curve.get("tau"):
        return float(curve["a"]) * -np.expm1(-n / float(curve["tau"]))
    if curve.get("model") == "linear":
        return float(curve.get("slope") or 0.0) * n
    return np.zeros_like(n)


def latest_allocation(runs: list[dict]) -> dict | None:
    """The latest selection's allocation: {"run_key", "name", "method", "budget", "allocation", ...} or None."""
    run = _latest_run(runs, lambda r: r["method"].startswith("selection_") and isinstance(r["results"].get("allocation"), dict))
    if run is None:
        return None
    res = run["results"]
    return {"run_key": run["key"], "name": res.get("name"), "method": res.get("method", run["method"]),
            "budget": res.get("budget"), "allocation": res["allocation"], "predicted_gain": res.get("predicted_gain"),
            "explanation": res.get("explanation", ""), "tag": res.get("tag"), "saved_view": res.get("saved_view")}


def closed_loop_history(runs: list[dict]) -> dict | None:
    """{"run_key", "rounds": [{"round", "epdms", "weights": {name: w}}]} of the latest run with a history."""
    def rounds_of(run: dict) -> list | None:
        res = run["results"]
        history = res.get("history") or (res.get("diagnostics") or {}).get("history")
        if not isinstance(history, list) or not history:
            return None
        rounds = []
        for h in history:
            weights = h.get("weights") or {}
            if isinstance(weights, list):  # optimize_mixture: weights in the order of its counts' keys
                names = list((h.get("counts") or {}).keys()) or [f"cluster {i}" for i in range(len(weights))]
                weights = dict(zip(names, weights))
            score = h.get("epdms", h.get("score"))
            rounds.append({"round": int(h.get("round", len(rounds))), "epdms": None if score is None else float(score),
                           "weights": {str(k): float(v) for k, v in weights.items()}})
        return rounds

    run = _latest_run(runs, lambda r: rounds_of(r) is not None)
    return None if run is None else {"run_key": run["key"], "method": run["method"], "rounds": rounds_of(run)}


def engine_summary(dataset: fo.Dataset) -> dict[str, Any]:
    """Everything the panel shows, as JSON: clusters, curves, allocation, history, recent runs, counts."""
    runs = list_runs(dataset)
    counts = dataset.count_values("source") if dataset.has_field("source") else {}
    return {
        "dataset": dataset.name,
        "num_scenes": len(dataset),
        "sources": {str(k): int(v) for k, v in counts.items()},
        "clusters": cluster_table(dataset, runs),
        "curves": scaling_curves(runs),
        "allocation": latest_allocation(runs),
        "history": closed_loop_history(runs),
        "runs": [{"key": r["key"], "method": r["method"], "status": r["status"], "started_at": r["started_at"]}
                 for r in runs[-8:]],
    }


# ---------------------------------------------------------------------------------- plots
def curve_traces(curves: dict) -> list[dict]:
    """Plotly traces: pilot points and the fitted curve per domain (n in scenes, gain in EPDMS points)."""
    traces = []
    for k, (domain, c) in enumerate(sorted(curves["domains"].items())):
        top = max([*(c["n"] or [0]), 3 * float(c.get("tau") or 0.0), 10.0])
        n = np.linspace(0.0, top, CURVE_POINTS)
        name = domain if c.get("model") != "exp" else f"{domain}: {c['a']:.3g}(1-e^(-n/{c['tau']:.3g}))"
        traces.append({"type": "scatter", "mode": "lines", "name": name, "legendgroup": domain,
                       "x": n.round(3).tolist(), "y": fitted_gain(c, n).round(6).tolist()})
        if c["n"]:
            traces.append({"type": "scatter", "mode": "markers", "name": f"{domain} pilots", "legendgroup": domain,
                           "showlegend": False, "x": list(c["n"]), "y": list(c["gain"])})
    return traces


def history_traces(history: dict) -> tuple[list[dict], list[dict]]:
    """(EPDMS per round, mixture weight per cluster per round) Plotly traces."""
    rounds = [h["round"] for h in history["rounds"]]
    epdms = [{"type": "scatter", "mode": "lines+markers", "name": "EPDMS", "x": rounds,
              "y": [h["epdms"] for h in history["rounds"]]}]
    names = sorted({k for h in history["rounds"] for k in h["weights"]})
    weights = [{"type": "bar", "name": n, "x": rounds, "y": [h["weights"].get(n, 0.0) for h in history["rounds"]]}
               for n in names]
    return epdms, weights


def allocation_trace(allocation: dict) -> list[dict]:
    items = sorted(allocation["allocation"].items(), key=lambda kv: -kv[1])
    return [{"type": "bar", "x": [k for k, _ in items], "y": [v for _, v in items], "name": "scenes"}]


def panel_data(summary: dict) -> dict[str, Any]:
    """The panel's data entries (table rows and plot traces) for a summary."""
    data: dict[str, Any] = {}
    if summary["clusters"]:
        data["cluster_table"] = summary["clusters"]["rows"]
    if summary["curves"]:
        data["scaling_curves"] = curve_traces(summary["curves"])
    if summary["allocation"]:
        data["allocation_plot"] = allocation_trace(summary["allocation"])
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


def build_layout(summary: dict) -> types.Property:
    """The panel layout for ``summary`` (see :func:`engine_summary`); data comes from :func:`panel_data`."""
    panel = types.Object()
    sources = ", ".join(f"{k}: {v}" for k, v in sorted(summary["sources"].items())) or "no scenes"
    panel.md(f"**AutoScale data engine** on `{summary['dataset']}`: {summary['num_scenes']} scenes ({sources})",
             name="header")
    panel.btn("refresh", label="Refresh", on_click="refresh", variant="outlined", icon="refresh")

    panel.md("#### Clusters", name="clusters_title")
    clusters = summary["clusters"]
    if clusters:
        panel.md(f"Field `{clusters['field']}`" + (f", EPDMS from `{clusters['epdms_field']}`" if clusters["epdms_field"] else
                                                    " (no `eval_*_epdms` field yet: evaluate a planner for EPDMS)"),
                 name="clusters_caption")
        table = types.TableView()
        for key in clusters["rows"][0]:
            table.add_column(key, label=key.replace("_", " "))
        panel.list("cluster_table", types.Object(), view=table)
    else:
        _empty(panel, "clusters", "No clusters yet: compute embeddings, then run Cluster scenes first.")

    panel.md("#### Scaling curves", name="curves_title")
    if summary["curves"]:
        panel.md(f"Fitted gain a(1 − e^(−n/τ)) per domain from run `{summary['curves']['run_key']}`", name="curves_caption")
        panel.plot("scaling_curves", layout={"xaxis": {"title": {"text": "scenes n"}}, "yaxis": {"title": {"text": "EPDMS gain"}},
                                              "height": 320, "margin": {"t": 10}})
    else:
        _empty(panel, "curves", "No scaling laws yet: run Fit scaling laws first.")

    panel.md("#### Allocation", name="allocation_title")
    alloc = summary["allocation"]
    if alloc:
        gain = "" if alloc["predicted_gain"] is None else f", predicted gain {alloc['predicted_gain']:+.3f}"
        panel.md(f"Selection `{alloc['name']}` ({alloc['method']}, {alloc['budget']} scenes{gain}; tag `{alloc['tag']}`)\n\n"
                 f"{alloc['explanation']}", name="allocation_caption")
        panel.plot("allocation_plot", layout={"height": 260, "margin": {"t": 10}, "yaxis": {"title": {"text": "scenes"}}})
        _button(panel, "export_annotation_queue", "Export as annotation queue", key="allocation_export")
    else:
        _empty(panel, "allocation", "No selection yet: allocate a budget or select by value first.")

    panel.md("#### Closed-loop history", name="history_title")
    if summary["history"]:
        panel.md(f"EPDMS and mixture weights per round from run `{summary['history']['run_key']}`", name="history_caption")
        panel.plot("history_epdms", layout={"height": 240, "margin": {"t": 10}, "xaxis": {"title": {"text": "round"}, "dtick": 1},
                                            "yaxis": {"title": {"text": "EPDMS"}}})
        panel.plot("history_weights", layout={"height": 260, "margin": {"t": 10}, "barmode": "stack",
                                              "xaxis": {"title": {"text": "round"}, "dtick": 1}, "yaxis": {"title": {"text": "mixture weight"}}})
    else:
        _empty(panel, "history", "No closed-loop history yet: run Optimize the mixture first.")

    panel.md("#### Recent runs\n" + ("\n".join(f"- `{r['key']}` {r['method']} [{r['status']}]" for r in summary["runs"])
                                     or "_none_"), name="runs")
    actions = types.Object()
    for operator, label in ACTIONS:
        _button(actions, operator, label, key=f"action_{operator}")
    panel.define_property("actions", actions, view=types.HStackView())
    return types.Property(panel, view=types.GridView(orientation="vertical", gap=2, padding=1))


class DataEnginePanel(foo.Panel):
    @property
    def config(self):
        return foo.PanelConfig(name="data_engine", label="AutoScale Data Engine", icon="insights",
                               help_markdown="Clusters, scaling curves, allocation and closed-loop history of "
                                             "AutoScale runs on this dataset, with buttons for each step.")

    def _load(self, ctx) -> None:
        summary = engine_summary(ctx.dataset)
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

    def render(self, ctx):
        summary = ctx.panel.get_state("summary")
        if not summary or summary.get("dataset") != getattr(ctx.dataset, "name", None):
            summary = engine_summary(ctx.dataset)
        return build_layout(summary)


OPERATORS = [DataEnginePanel]
