"""Files of a selection-protocol run: JSON (everything), a short markdown table, a PNG plot."""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

__all__ = ["jsonable", "write_protocol_outputs", "markdown_table"]


def jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy → Python, tuple keys → "a|b", non-finite floats → None."""
    if isinstance(value, dict):
        return {("|".join(map(str, k)) if isinstance(k, tuple) else str(k)): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [jsonable(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return float(value) if np.isfinite(value) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, np.bool_):
        return bool(value)
    return value


def _fmt(x: dict, digits: int = 2) -> str:
    return f"{x['mean']:.{digits}f} [{x['lo']:.{digits}f}, {x['hi']:.{digits}f}]"


def _brmr(x: dict) -> str:
    sign = {"lower": "≥ ", "upper": "≤ "}.get(x.get("censored", ""), "")
    return f"{sign}{x['mean']:.2f} [{x['lo']:.2f}, {x['hi']:.2f}]"


def markdown_table(summary: dict, block: str = "pooled", split: str | None = None, extra: str | None = None) -> list[str]:
    """Rows: method × budget → EPDMS, Δ vs random, BRMR, each with its interval (pooled, one
    ``split``, or one ``extra`` test set)."""
    data = summary["per_split"][split] if split else summary["extra_tests"][extra] if extra else summary[block]
    budgets = data["methods"][summary["methods"][0]]["budget"] if summary["methods"] else []
    lines = ["| method | " + " | ".join(f"B={b}: EPDMS · Δ random · BRMR" for b in budgets) + " |",
             "|---" * (1 + len(budgets)) + "|"]
    curve = data["random_curve"]
    lines.append("| random (measured) | " + " | ".join(
        f"{e:.2f} [{lo:.2f}, {hi:.2f}]" for b, e, lo, hi in zip(curve["budget"], curve["epdms"], curve["lo"], curve["hi"])
        if b in budgets) + " |")
    for m in summary["methods"]:
        e = data["methods"][m]
        cells = [f"{_fmt(e['epdms'][i])} · {_fmt(e['vs_random'][i])} · {_brmr(e['brmr'][i])}" for i in range(len(budgets))]
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def write_protocol_outputs(record: dict, out_dir: str, name: str) -> dict[str, str]:
    """Write ``<name>.json`` (the whole record), ``<name>.md`` and ``<name>.png``; return their paths."""
    os.makedirs(out_dir, exist_ok=True)
    paths = {ext: os.path.join(out_dir, f"{name}.{ext}") for ext in ("json", "md", "png")}
    with open(paths["json"], "w") as fh:
        json.dump(jsonable(record), fh, indent=1)
    with open(paths["md"], "w") as fh:
        fh.write("\n".join(_markdown(record)) + "\n")
    _plot(record["summary"], paths["png"])
    return paths


def _markdown(record: dict) -> list[str]:
    summary = record["summary"]
    v = summary.get("verdict", {})
    lines = [f"# {record.get('title', 'Selection protocol')}", "", f"Command: `{record['command']}`", "",
             record.get("what_it_ran_on", ""), "",
             "EPDMS ×100 on the test sets, mean over splits × training seeds × test scenes, with "
             f"{int(100 * summary['level'])} % paired bootstrap intervals ({summary['replicates']} replicates; splits, "
             "seeds and test scenes resampled). Δ random: paired difference to random at the same budget. "
             "BRMR: method budget / budget random needs for the same EPDMS on the measured, monotone random curve "
             "(< 1 better; ≥ / ≤: censored at the measured range).", "", "## All splits", ""]
    lines += markdown_table(summary)
    if v:
        lines += ["", f"**Verdict ({v['method']})**: BRMR ≤ 0.5 with upper bound < 1 at {sum(v['brmr_ok'])} of "
                  f"{len(v['budgets'])} budgets (needed {v['needed']}): {'met' if v['brmr_criterion_met'] else 'NOT met'}; "
                  f"not significantly worse than every other method at {sum(v['not_significantly_worse_than_all'])} of "
                  f"{len(v['budgets'])}: {'met' if v['baseline_criterion_met'] else 'NOT met'}; mean at least every other "
                  f"method's at {sum(v['mean_at_least_all'])} of {len(v['budgets'])}."]
    for name, block in summary.get("extra_tests", {}).items():
        lines += ["", f"## Extra test set: {name} ({block['scenes']} scenes, the same planners; pooled over splits)", ""]
        lines += markdown_table(summary, extra=name)
    for split in summary["per_split"]:
        lines += ["", f"## Split {split}", ""] + markdown_table(summary, split=split)
    if record.get("notes"):
        lines += ["", "## Notes", ""] + [f"- {n}" for n in record["notes"]]
    return lines


def _plot(summary: dict, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for method, curve in summary["curves"].items():
        x = np.asarray(curve["budget"], dtype=float)
        line, = ax.plot(x, curve["epdms"], marker="o", label=method, lw=2.2 if method in ("random", "mosaic") else 1.2)
        ax.fill_between(x, curve["lo"], curve["hi"], color=line.get_color(), alpha=0.15)
    ax.set_xscale("log")
    ax.set_xlabel("budget (scenes added to the base set, log scale)")
    ax.set_ylabel("test EPDMS (×100)")
    ax.set_title(f"Selection protocol: EPDMS vs budget ({int(100 * summary['level'])} % paired bootstrap bands)")
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
