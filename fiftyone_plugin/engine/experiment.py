"""The selection protocol from the plugin: world splits or a dataset's scenes, FiftyOne Brain
baselines, outputs and a run record the Data Engine panel plots.

Used by ``autoscale experiment selection`` and ``benchmarks/bench_selection_protocol.py``; the
algorithms are in :mod:`autoscale_core.experiments`.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from typing import Callable

import numpy as np

from autoscale_core.experiments import (
    ProtocolConfig,
    SplitScenes,
    WorldSplitSpec,
    make_world_split,
    run_selection_protocol,
)
from autoscale_core.experiments.report import jsonable, write_protocol_outputs

from .brain_scores import BRAIN_SCORERS
from .keys import PROTOCOL_RUN_KEY

__all__ = ["world_splits", "dataset_split", "run_selection_experiment", "protocol_record", "record_protocol_run",
           "PROTOCOL_RUN_KEY"]



def world_splits(specs: list[WorldSplitSpec], executor=None) -> list[SplitScenes]:
    """Generate the world splits (in parallel through ``executor``; deterministic in the specs)."""
    from autoscale_core.executor import get_executor

    return get_executor(executor).map(make_world_split, specs)


def dataset_split(dataset, *, base_size: int, seed: int = 0) -> SplitScenes:
    """One split from a dataset's own scenes: real (non-synthetic) ``train`` scenes → a random base
    set of ``base_size`` and the pool (the rest); ``val`` and ``test`` splits as they are.

    Raises ValueError naming what is missing (a split with no scenes, too few train scenes).
    """
    from . import scenes
    from .keys import real_scenes

    views = {name: real_scenes(dataset, name) for name in ("train", "val", "test")}
    empty = [name for name, view in views.items() if len(view) == 0]
    if empty:
        raise ValueError(f"dataset {dataset.name!r} has no real scenes in split(s) {empty}: the protocol needs train, val and test")
    train = scenes.load_scenes(views["train"])
    if base_size >= len(train):
        raise ValueError(f"base size {base_size} must be smaller than the {len(train)} real train scenes")
    order = np.random.default_rng(seed).permutation(len(train))
    base, pool = train.subset(np.sort(order[:base_size])), train.subset(np.sort(order[base_size:]))
    return SplitScenes(dataset.name, base, pool, scenes.load_scenes(views["val"]), scenes.load_scenes(views["test"]))


def run_selection_experiment(
    splits: list[SplitScenes],
    config: ProtocolConfig,
    *,
    executor=None,
    progress: Callable[[str], None] | None = None,
    command: str | None = None,
    what_it_ran_on: str = "",
    notes: list[str] | None = None,
    checkpoint_dir: str | None = None,
) -> dict:
    """Run the protocol with the FiftyOne Brain baselines and summarize it; returns the record
    (JSON-able after :func:`~autoscale_core.experiments.report.jsonable`)."""
    config.check(splits)
    started = time.perf_counter()
    scorers = {m: BRAIN_SCORERS[m] for m in config.methods if m in BRAIN_SCORERS}
    result = run_selection_protocol(splits, config, executor=executor, external_scorers=scorers, progress=progress,
                                    checkpoint_dir=checkpoint_dir)
    return protocol_record(result, command=command, what_it_ran_on=what_it_ran_on, notes=notes,
                           seconds=time.perf_counter() - started)


def protocol_record(result, *, command: str | None = None, what_it_ran_on: str = "", notes: list[str] | None = None,
                    seconds: float | None = None) -> dict:
    """The JSON-able record of a :class:`~autoscale_core.experiments.ProtocolResult` with its summary."""
    summary = result.summary()
    return {
        "title": "Selection protocol",
        "command": command or "python " + " ".join(sys.argv),
        "what_it_ran_on": what_it_ran_on,
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                    "load_average_at_end": os.getloadavg()},
        "config": result.config,
        "splits": result.splits,
        "split_sizes": result.split_sizes,
        "seeds": result.seeds,
        "budgets": result.budgets,
        "random_budgets": result.random_budgets,
        "base_planner": result.base,
        "summary": summary,
        "rows": result.rows,
        "trainings": _trainings(result.rows),
        "diagnostics": result.diagnostics,
        "timings_s": {"total": seconds, "per_split": result.timings},
        "notes": notes or [],
    }


def _trainings(rows: list[dict]) -> dict[str, dict]:
    """Per method: trainings used to decide (per split) and final trainings (per split)."""
    out: dict[str, dict] = {}
    for row in rows:
        entry = out.setdefault(row["method"], {"to_decide_per_split": row["trainings"], "final_per_split": 0})
        entry["final_per_split"] += 1
    splits = len({row["split"] for row in rows}) or 1
    for entry in out.values():
        entry["final_per_split"] //= splits
    return out


def record_protocol_run(dataset, record: dict, key: str = PROTOCOL_RUN_KEY) -> None:
    """Record the run on ``dataset`` (the panel plots ``results["curves"]``: method → budget /
    epdms / lo / hi, EPDMS in 0–100 points)."""
    from .runs import record_run

    summary = record["summary"]
    results = {"curves": summary["curves"], "unit": "EPDMS x100", "verdict": summary.get("verdict", {}),
               "pooled": summary["pooled"], "splits": record["splits"], "seeds": record["seeds"],
               "outputs": record.get("outputs", {})}
    record_run(dataset, key, "selection_protocol", jsonable(record["config"]), jsonable(results))


def write_outputs(record: dict, out_dir: str, name: str) -> dict[str, str]:
    """JSON + markdown + PNG under ``out_dir`` (see :mod:`autoscale_core.experiments.report`)."""
    record["outputs"] = write_protocol_outputs(record, out_dir, name)
    return record["outputs"]
