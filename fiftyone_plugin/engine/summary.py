"""What the Data Engine panel shows, gathered as plain JSON from sample fields and run records.

The panel, tests and notebooks read the same numbers (:func:`engine_summary`). **EPDMS is in
points (0–100) everywhere here** — cluster means, scaling-curve gains, predicted gains, the
closed-loop history and the selection protocol — while sample fields and run results keep the
scorer's [0, 1] (:func:`points` converts).

Sources:

* **Clusters** — per value of the latest ``cluster_*`` field: a name from its dominant topology /
  city / event, size, real / synthetic share, mean EPDMS of the chosen planner
  (``eval_<planner>_epdms``; default :func:`default_planner`, the latest *trained* planner), mean
  ``value_s/r/u/q``.
* **Scaling curves** — the latest run whose results have ``fits`` (``{domain: {"model", "a",
  "tau", "slope", "r2", "warnings"}}``; MOSAIC selections keep them in ``diagnostics.fits``)
  plus ``pilots`` (``{domain: {"sizes", "gains", "gains_std"?}}``); a generic ``curves`` result
  (``{domain: {"a", "tau", "n": [...], "gain": [...]}}``) works too.
* **Allocation** and **coverage** — the latest selection run (method ``selection_*``): its
  allocation, and the share of its scenes (tag) per topology / city / event vs the pool (the
  real ``split="train"`` scenes).
* **Closed-loop history** — ``diagnostics.history`` of ``optimize_mixture`` or a generic ``history``.
* **Selection protocol** — run ``selection_protocol``: ``curves = {method: {"budget", "epdms",
  "lo", "hi"}}`` with EPDMS already in points.
"""

from __future__ import annotations

from typing import Any

import fiftyone as fo
import numpy as np

from autoscale_core.planning.evaluate import BASELINES

from .keys import real_scenes
from .runs import list_runs

VALUE_COMPONENTS = ("value_s", "value_r", "value_u", "value_q")
COVERAGE_FIELDS = ("topology", "city", "events")
PROTOCOL_RUN = "selection_protocol"
INTERNAL_METHODS = ("staged_write",)  # write records of fiftyone_plugin.engine.safe_write
EVENT_MIN_SHARE = 0.25  # an event names a cluster only if at least this share of its scenes has it


def points(x: float | None) -> float | None:
    """EPDMS (or an EPDMS gain) from the scorer's [0, 1] to points (0–100), rounded to 0.01."""
    return None if x is None or not np.isfinite(x) else round(100.0 * float(x), 2)


def _round(x: float, digits: int = 4) -> float | None:
    return None if not np.isfinite(x) else round(float(x), digits)


def _latest_run(runs: list[dict], predicate) -> dict | None:
    chosen = [r for r in runs if r["status"] == "completed" and r["results"] and predicate(r)]
    return chosen[-1] if chosen else None


def _field_of_latest_run(runs: list[dict], candidates: list[str]) -> str | None:
    """The candidate field whose run record (same key, or ``eval_<run>`` for ``eval_<run>_*``) is newest."""
    if not candidates:
        return None
    order = {r["key"]: i for i, r in enumerate(runs)}

    def newest(field: str) -> int:
        keys = [field, field.rsplit("_", 1)[0]]
        return max((order.get(k, -1) for k in keys), default=-1)

    return max(sorted(candidates), key=newest)


# ---------------------------------------------------------------------------------- planners
def evaluated_planners(schema: dict, runs: list[dict]) -> list[str]:
    """Evaluation keys with an ``eval_<key>_epdms`` field, oldest evaluation first."""
    keys = [n[len("eval_"):-len("_epdms")] for n in schema if n.startswith("eval_") and n.endswith("_epdms")]
    order = {r["key"]: i for i, r in enumerate(runs)}
    return sorted(keys, key=lambda k: (order.get(f"eval_{k}", -1), k))


def default_planner(schema: dict, runs: list[dict]) -> str | None:
    """The planner whose EPDMS the panel shows by default: the latest evaluated *trained* planner,
    else the latest one that is not a baseline (constant velocity, rule, logged expert), else any."""
    keys = evaluated_planners(schema, runs)
    if not keys:
        return None
    trained = {r["key"] for r in runs if r["method"] == "train_planner"}
    planner_of = {r["key"][len("eval_"):]: (r.get("config") or {}).get("planner") for r in runs
                  if r["method"] == "evaluate_planner"}
    for group in ([k for k in keys if planner_of.get(k) in trained or k in trained],
                  [k for k in keys if planner_of.get(k, k) not in BASELINES and k not in ("cv", "expert")]):
        if group:
            return group[-1]
    return keys[-1]


# ---------------------------------------------------------------------------------- clusters
def _dominant(codes: np.ndarray, values: list, num_clusters: int) -> tuple[list[str], np.ndarray]:
    """Per cluster: the most common value and its share. ``values`` holds one str or list per scene."""
    lists = [v if isinstance(v, list) else [v] for v in values]
    flat = np.asarray([str(x) for v in lists for x in v if x not in (None, "")], dtype=object)
    owner = np.repeat(codes, [sum(x not in (None, "") for x in v) for v in lists])
    if len(flat) == 0:
        return [""] * num_clusters, np.zeros(num_clusters)
    names, value_codes = np.unique(flat, return_inverse=True)
    counts = np.zeros((num_clusters, len(names)))
    np.add.at(counts, (owner, value_codes), 1.0)
    best = counts.argmax(1)
    sizes = np.bincount(codes, minlength=num_clusters).clip(min=1)
    return [str(names[b]) if counts[k, b] else "" for k, b in enumerate(best)], counts.max(1) / sizes


def _cluster_names(dataset, labels_codes: np.ndarray, names: np.ndarray) -> list[str]:
    """``<cluster> · <topology> / <city>[ / <event>]`` from each cluster's most common values."""
    parts = []
    for field in ("topology", "city"):
        if dataset.has_field(field):
            parts.append(_dominant(labels_codes, dataset.values(field), len(names))[0])
    if dataset.has_field("events"):
        event, share = _dominant(labels_codes, dataset.values("events"), len(names))
        parts.append([e if s >= EVENT_MIN_SHARE else "" for e, s in zip(event, share)])
    return [" / ".join([str(n)] + [p[k] for p in parts if p[k]]) if parts else str(n)
            for k, n in enumerate(names)]


def cluster_table(dataset: fo.Dataset | fo.DatasetView, runs: list[dict] | None = None,
                  planner: str | None = None) -> dict | None:
    """Per-cluster rows of the latest ``cluster_*`` field, or None when there is none.

    Returns {"field", "planner", "planners", "epdms_field", "rows": [{"cluster", "name", "size",
    "real_share", "synthetic_share", "mean_epdms" (points), "mean_value_s", ...}]}. Shares are
    fractions in [0, 1]; means skip missing values.
    """
    root = dataset if isinstance(dataset, fo.Dataset) else dataset._root_dataset
    runs = list_runs(root) if runs is None else runs
    schema = dataset.get_field_schema()
    field = _field_of_latest_run(runs, [n for n in schema if n.startswith("cluster_")])
    if field is None:
        return None
    planners = evaluated_planners(schema, runs)
    planner = planner if planner in planners else default_planner(schema, runs)
    epdms_field = f"eval_{planner}_epdms" if planner else None
    values = [n for n in schema if n.lower() in VALUE_COMPONENTS]
    numeric = ([epdms_field] if epdms_field else []) + values
    columns = dataset.values([field, "source", *numeric])
    labels = np.asarray([("(none)" if v is None else str(v)) for v in columns[0]], dtype=object)
    names, codes = np.unique(labels, return_inverse=True)
    sizes = np.bincount(codes, minlength=len(names))
    synthetic = np.bincount(codes, weights=np.asarray([s == "synthetic" for s in columns[1]], dtype=float),
                            minlength=len(names))
    means = {name: _group_mean(codes, col, len(names)) for name, col in zip(numeric, columns[2:])}
    display = _cluster_names(dataset, codes, names)
    rows = []
    for k, name in enumerate(names):
        row = {"cluster": str(name), "name": display[k], "size": int(sizes[k]),
               "real_share": round(float(1 - synthetic[k] / sizes[k]), 3),
               "synthetic_share": round(float(synthetic[k] / sizes[k]), 3)}
        if epdms_field:
            row["mean_epdms"] = points(means[epdms_field][k])
        for v in values:
            row[f"mean_{v.lower()}"] = _round(means[v][k])
        rows.append(row)
    rows.sort(key=lambda r: (-r["size"], r["cluster"]))
    return {"field": field, "planner": planner, "planners": planners, "epdms_field": epdms_field, "rows": rows}


def _group_mean(codes: np.ndarray, column: list, num_groups: int) -> np.ndarray:
    x = np.asarray([np.nan if v is None else v for v in column], dtype=np.float64)
    ok = np.isfinite(x)
    total = np.bincount(codes, weights=np.where(ok, x, 0.0), minlength=num_groups)
    count = np.bincount(codes, weights=ok.astype(float), minlength=num_groups)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


# ---------------------------------------------------------------------------------- runs
def scaling_curves(runs: list[dict]) -> dict | None:
    """{"run_key", "method", "domains": {domain: {"model", "a", "tau", "slope", "r2", "warnings",
    "n": [...], "gain": [...], "gain_std": [...] | None}}} or None. Gains as stored ([0, 1])."""
    def curves_of(run: dict) -> dict | None:
        res = run["results"]
        if isinstance(res.get("curves"), dict) and run["key"] != PROTOCOL_RUN:
            return {d: {"model": c.get("model", "exp"), "a": c.get("a"), "tau": c.get("tau"), "slope": c.get("slope", 0.0),
                        "r2": c.get("r2"), "warnings": list(c.get("warnings") or []),
                        "n": list(c.get("n") or []), "gain": list(c.get("gain") or []), "gain_std": c.get("gain_std")}
                    for d, c in res["curves"].items() if isinstance(c, dict) and "budget" not in c}
        fits = res.get("fits") or (res.get("diagnostics") or {}).get("fits")
        if not isinstance(fits, dict) or not fits:
            return None
        pilots = res.get("pilots") or (res.get("diagnostics") or {}).get("pilots") or {}
        return {d: {"model": f.get("model", "exp"), "a": f.get("a"), "tau": f.get("tau"), "slope": f.get("slope", 0.0),
                    "r2": f.get("r2"), "warnings": list(f.get("warnings") or []),
                    "n": list((pilots.get(d) or {}).get("sizes") or []),
                    "gain": list((pilots.get(d) or {}).get("gains") or []),
                    "gain_std": (pilots.get(d) or {}).get("gains_std")}
                for d, f in fits.items()}

    run = _latest_run(runs, lambda r: bool(curves_of(r)))
    return None if run is None else {"run_key": run["key"], "method": run["method"], "domains": curves_of(run)}


def fit_rows(curves: dict) -> list[dict]:
    """One row per domain: model, a (points), τ (scenes), R², warning (the fitter's notes joined)."""
    rows = []
    for domain, c in sorted(curves["domains"].items()):
        r2 = c.get("r2")
        rows.append({"domain": domain, "model": c.get("model", "exp"),
                     "a": points(c["a"]) if c.get("a") is not None else None,
                     "tau": None if c.get("tau") is None else round(float(c["tau"]), 1),
                     "r2": None if r2 is None or not np.isfinite(r2) else round(float(r2), 3),
                     "warning": "; ".join(dict.fromkeys(c.get("warnings") or [])) or ""})
    return rows


def latest_selection(runs: list[dict]) -> dict | None:
    """The latest selection run: {"run_key", "name", "method", "budget", "allocation"?, ...} or None."""
    run = _latest_run(runs, lambda r: r["method"].startswith("selection_") and r["key"] != PROTOCOL_RUN
                      and bool(r["results"].get("tag")))
    if run is None:
        return None
    res = run["results"]
    gain = res.get("predicted_gain")
    return {"run_key": run["key"], "name": res.get("name"), "method": res.get("method", run["method"]),
            "budget": res.get("budget"), "allocation": res.get("allocation") if isinstance(res.get("allocation"), dict) else None,
            "predicted_gain_points": None if gain is None else points(gain),
            "explanation": res.get("explanation", ""), "tag": res.get("tag"), "saved_view": res.get("saved_view")}


def coverage(dataset: fo.Dataset, selection: dict | None) -> dict | None:
    """Share (%) of the selection's scenes per topology / city / event vs the pool (real train scenes)."""
    if not selection or not selection.get("tag"):
        return None
    chosen = dataset.match_tags(selection["tag"])
    if len(chosen) == 0:
        return None
    pool = real_scenes(dataset, "train" if dataset.has_field("split") else None)
    out = {"tag": selection["tag"], "num_selected": len(chosen), "num_pool": len(pool), "fields": {}}
    for field in COVERAGE_FIELDS:
        if not dataset.has_field(field):
            continue
        sel, base = chosen.count_values(field), pool.count_values(field)
        keys = sorted(set(sel) | set(base), key=lambda k: -base.get(k, 0))
        out["fields"][field] = [{"value": str(k), "selection_pct": round(100 * sel.get(k, 0) / len(chosen), 1),
                                 "pool_pct": round(100 * base.get(k, 0) / max(len(pool), 1), 1),
                                 "selected": int(sel.get(k, 0))} for k in keys if k is not None]
    return out


def closed_loop_history(runs: list[dict]) -> dict | None:
    """{"run_key", "method", "rounds": [{"round", "epdms" (points), "weights": {name: w}}]} or None."""
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
            rounds.append({"round": int(h.get("round", len(rounds))), "epdms": None if score is None else points(score),
                           "weights": {str(k): float(v) for k, v in weights.items()}})
        return rounds

    run = _latest_run(runs, lambda r: rounds_of(r) is not None)
    return None if run is None else {"run_key": run["key"], "method": run["method"], "rounds": rounds_of(run)}


def selection_protocol(runs: list[dict]) -> dict | None:
    """{"run_key", "curves": {method: {"budget", "epdms", "lo", "hi"}}} (EPDMS points) or None."""
    run = _latest_run(runs, lambda r: r["key"] == PROTOCOL_RUN and isinstance(r["results"].get("curves"), dict))
    if run is None:
        return None
    curves = {}
    for method, c in run["results"]["curves"].items():
        if isinstance(c, dict) and c.get("budget") and c.get("epdms"):
            curves[str(method)] = {k: [float(x) for x in c.get(k) or []] for k in ("budget", "epdms", "lo", "hi")}
    return {"run_key": run["key"], "curves": curves} if curves else None


def engine_summary(dataset: fo.Dataset, planner: str | None = None) -> dict[str, Any]:
    """Everything the panel shows, as JSON (see the module docstring)."""
    runs = list_runs(dataset)
    counts = dataset.count_values("source") if dataset.has_field("source") else {}
    curves = scaling_curves(runs)
    selection = latest_selection(runs)
    return {
        "dataset": dataset.name,
        "num_scenes": len(dataset),
        "sources": {str(k): int(v) for k, v in counts.items()},
        "clusters": cluster_table(dataset, runs, planner),
        "curves": curves,
        "fits": fit_rows(curves) if curves else None,
        "allocation": selection if selection and selection["allocation"] else None,
        "coverage": coverage(dataset, selection),
        "history": closed_loop_history(runs),
        "protocol": selection_protocol(runs),
        "runs": [{"key": r["key"], "method": r["method"], "status": r["status"], "started_at": r["started_at"]}
                 for r in runs if r["method"] not in INTERNAL_METHODS][-8:],
    }
