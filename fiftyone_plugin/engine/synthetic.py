"""SimScale synthetic scenes in FiftyOne: generate linked synthetic samples, build the hard split.

:func:`generate_synthetic_samples` is the one implementation behind the operator
``generate_synthetic_scenes``, the CLI (``autoscale synthesize``) and Python use. It computes
everything first (perturbation, labels, reactive re-simulation, label scores), then writes in
bulk: one :func:`~fiftyone_plugin.engine.scenes.add_scenes` (BEV images, store shard, samples) and one
``set_values`` per extra field. Synthetic samples carry ``source="synthetic"``, ``parent_id``,
``perturb_lateral`` (m), ``perturb_speed`` (m/s), ``perturb_heading`` (rad), ``round``,
``expert`` and ``label_epdms``; their ``split`` is their parent's, so a child of a val/test
scene never lands in train.
"""

from __future__ import annotations

import json
from pathlib import Path

import fiftyone as fo
import numpy as np

from autoscale_core.executor import executor_from_choice
from autoscale_core.synthetic import labels
from autoscale_core.synthetic.generate import MAX_ROUNDS, generate_synthetic
from autoscale_core.synthetic.labels import EXPERTS
from autoscale_core.synthetic.perturb import PerturbationConfig

from . import scenes
from .keys import Progress, root_dataset
from .runs import record_run

SYNTHETIC_FIELDS = ("perturb_lateral", "perturb_speed", "perturb_heading", "round", "expert")


def validate_synthetic_params(params: dict) -> dict:
    """Check the form's / CLI's values; returns cleaned params or raises ValueError naming the input."""

    def integer(name, default, low, high):
        value = params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value or not low <= value <= high:
            raise ValueError(f"{name}: must be an integer in {low}..{high}, got {value!r}")
        return int(value)

    def number(name, default):
        value = params.get(name, default)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            raise ValueError(f"{name}: must be a number, got {value!r}")
        return float(value)

    cleaned = {
        # In-process unless named; generate_synthetic_samples switches to a pool from
        # PROCESS_POOL_MIN_PARENTS parents on.
        "executor": executor_from_choice(params.get("executor"), in_process_by_default=True),
        "scenes_per_parent": integer("scenes_per_parent", 5, 1, 100),
        "rounds": integer("rounds", 1, 1, MAX_ROUNDS),
        "seed": integer("seed", 0, 0, 2**31 - 1),
        "lateral_range": (number("lateral_min", -2.0), number("lateral_max", 2.0)),
        "speed_range": (number("speed_min", -3.0), number("speed_max", 3.0)),
        "expert": str(params.get("expert", "recovery")),
        "render": bool(params.get("render", True)),
    }
    if cleaned["expert"] not in EXPERTS:
        raise ValueError(f"expert: {cleaned['expert']!r} is not one of {EXPERTS}")
    try:
        _config(cleaned).validate()
    except ValueError as exc:
        raise ValueError(f"perturbation: {exc}") from exc
    return cleaned


# From this many source scenes on, generation defaults to a local process pool when no executor is
# named: 400 parents x 5 took 11.5 s in-process vs 6.9 s with process:2 on 2 idle cores
# (benchmarks/bench_synthetic.py); below it, worker start-up eats the gain.
PROCESS_POOL_MIN_PARENTS = 400


def _config(params: dict) -> PerturbationConfig:
    lo, hi = params["lateral_range"]
    # A range straddling 0 means "push either way by up to that much" (with a random sign).
    distribution = "uniform" if lo * hi > 0 or lo == hi else "symmetric"
    if distribution == "symmetric":
        lo, hi = 0.0, max(abs(lo), abs(hi))
    return PerturbationConfig(lateral_range=(lo, hi), lateral_distribution=distribution,
                              speed_range=params["speed_range"], seed=params["seed"])


def generate_synthetic_samples(
    view: fo.Dataset | fo.DatasetView,
    *,
    scenes_per_parent: int = 5,
    lateral_range: tuple[float, float] = (-2.0, 2.0),
    speed_range: tuple[float, float] = (-3.0, 3.0),
    expert: str = "recovery",
    rounds: int = 1,
    seed: int = 0,
    render: bool = True,
    rewards_only: bool = False,
    run_key: str | None = None,
    progress: Progress | None = None,
    executor: str | None = None,
) -> dict:
    """Generate synthetic scenes from the scenes of ``view`` and add them to its dataset.

    Args:
        view: source scenes (real ones, or synthetic ones whose parents are in the dataset).
        lateral_range: (low, high) m; a range straddling 0 pushes either way by up to
            ``max(|low|, |high|)`` m, otherwise uniform in the range.
        speed_range: (low, high) m/s speed change.
        expert: "recovery" or "planner".
        rounds: accumulation rounds (round r perturbs round r−1's scenes).
        rewards_only: also score the planning vocabulary in every synthetic scene (EPDMS
            sub-scores, slow: ~0.4 s per scene) and save them to
            ``<dataset dir>/synthetic/<run_key>-rewards.npz`` (path in the run's results).
        run_key: the AutoScale run recorded on the dataset (default ``synthetic_<seed>``).
        executor: ``serial`` (in this process), ``process[:N]`` or ``ray[:address]``; ``None``
            uses ``AUTOSCALE_EXECUTOR`` when set, else a local process pool from
            ``PROCESS_POOL_MIN_PARENTS`` source scenes on and this process below that (see
            :func:`~autoscale_core.executor.executor_from_choice`). The scenes are the same whichever runs them.

    Returns:
        a summary: counts, rejections by reason, label EPDMS distribution, the run key.

    Raises:
        ValueError: empty view, out-of-range parameters, synthetic sources with missing parents.
        Nothing is written to the dataset then.
    """
    params = validate_synthetic_params({
        "scenes_per_parent": scenes_per_parent, "rounds": rounds, "seed": seed, "expert": expert,
        "lateral_min": lateral_range[0], "lateral_max": lateral_range[1],
        "speed_min": speed_range[0], "speed_max": speed_range[1], "render": render, "executor": executor,
    })
    dataset = root_dataset(view)
    if len(view) == 0:
        raise ValueError(f"the source view of dataset {dataset.name!r} is empty: select scenes to perturb")
    if executor is None and params["executor"] is None and len(view) >= PROCESS_POOL_MIN_PARENTS:
        params["executor"] = "process"
    run_key = run_key or f"synthetic_{params['seed']}"
    report_progress = progress or (lambda fraction, message: None)
    report_progress(0.0, f"loading {len(view)} source scenes")
    batch = scenes.load_scenes(view)
    known = set(dataset.values("scene_id"))  # not distinct(): one BSON document, over 16 MB at 1e6 scenes
    synthetic, report = generate_synthetic(
        batch, scenes_per_parent=params["scenes_per_parent"], config=_config(params), expert=params["expert"],
        rounds=params["rounds"], known_scene_ids=known, executor=params["executor"],
        progress=lambda f, msg: report_progress(0.05 + 0.75 * f, msg),
    )
    ids = [str(s) for s in synthetic.meta["scene_id"]]
    splits = _inherited_splits(dataset, synthetic)
    values = {key: np.asarray(synthetic.meta[key]) for key in SYNTHETIC_FIELDS}
    values["round"] = values["round"].astype(np.int64)
    values["expert"] = [str(e) for e in values["expert"]]
    values["label_epdms"] = np.asarray(report.label_epdms, dtype=np.float64)
    values["split"] = splits

    rewards = None
    if rewards_only:
        report_progress(0.7, f"scoring the vocabulary in {len(synthetic)} synthetic scenes")
        rewards = labels.rewards_only(synthetic)
    report_progress(0.8, f"rendering and adding {len(synthetic)} synthetic scenes")
    new_ids = scenes.add_scenes(dataset, synthetic, render=params["render"], skip_existing=True)
    scenes.write_scene_fields(dataset, values, scene_ids=ids)
    summary = {
        "run": run_key,
        "source_scenes": len(batch),
        "generated": len(synthetic),
        "added": len(new_ids),
        "already_present": len(synthetic) - len(new_ids),
        **{k: v for k, v in report.as_dict().items() if k not in ("parents", "generated")},
    }
    if rewards is not None:
        folder = Path(dataset.info[scenes.STORE_INFO_KEY]).parent / "synthetic"
        summary["rewards_path"] = labels.save_rewards(folder / f"{run_key}-rewards.npz", ids, rewards)
    config = {k: (list(v) if isinstance(v, tuple) else v) for k, v in params.items()}
    # As a JSON string: stage dicts carry "_cls" keys that the run store would try to rebuild.
    config["source_view"] = json.dumps(view._serialize(), default=str) if isinstance(view, fo.DatasetView) else "[]"
    record_run(dataset, run_key, "simscale_synthetic", config, summary)
    report_progress(1.0, f"added {len(new_ids)} synthetic scenes")
    return summary


def _inherited_splits(dataset: fo.Dataset, synthetic) -> list[str]:
    """Each synthetic scene's split = its parent's (parents are in the dataset or earlier rounds)."""
    split_of = dict(zip(dataset.values("scene_id"), dataset.values("split")))
    out = []
    for scene_id, parent in zip(synthetic.meta["scene_id"], synthetic.meta["parent_id"]):
        split = split_of.get(str(parent)) or "train"
        split_of[str(scene_id)] = split
        out.append(split)
    return out


def build_hard_split_samples(dataset: fo.Dataset, seed: int = 0, *, holdout_fraction: float = 0.1,
                             rare_fraction: float = 0.5, sources=("dataset",), render: bool = True) -> dict:
    """Build the independent hard split (:mod:`autoscale_core.synthetic.independent_hard`) and add
    it to the dataset with ``split="hard"``. Computes everything first, then writes.

    ``sources`` (any of):

    * ``"dataset"`` — a hash-chosen ``holdout_fraction`` of the dataset's real scenes (world or
      AV2) that no synthetic scene derives from, plus ``rare_fraction`` of its rare-event real
      scenes, are moved to ``split="hard"`` (out of training); the held-out ones get one
      independent-family perturbed scene each;
    * ``"world:SEED[:N]"`` — N (default 400) fresh embedded-world scenes from a seed the dataset
      never used: each gets a perturbed scene, and the rare-event ones are added unchanged;
    * ``"av2:PATH"`` — real AV2 logs imported from PATH, each scene perturbed (scenes the dataset
      trains on are skipped).

    Raises ValueError (nothing written) for an unknown source, a world seed the dataset already
    uses, or if a hard scene would share a parent with the training data.
    """
    from autoscale_core.synthetic.hard_split import hash_fraction
    from autoscale_core.synthetic.independent_hard import build_independent_hard_split

    F = fo.ViewField
    sources = list(sources or ("dataset",))
    ids, splits, srcs, parents = (dataset.values(k) for k in ("scene_id", "split", "source", "parent_id"))
    has_children = {str(p) for p, src in zip(parents, srcs) if src == "synthetic" and p}
    training_ids = {str(i) for i, sp in zip(ids, splits) if sp == "train"}
    training_ids |= {str(p) for p, src, sp in zip(parents, srcs, splits) if src == "synthetic" and p and sp == "train"}
    inputs, held_ids = {}, []
    for source in sources:
        kind, _, rest = str(source).partition(":")
        if kind == "dataset":
            # Chosen from the ids and events alone; only the held-out scenes are loaded.
            events = dataset.values("events")
            free = [(str(i), bool(e)) for i, src, sp, e in zip(ids, srcs, splits, events)
                    if src != "synthetic" and sp != "hard" and str(i) not in has_children]
            if not free:
                raise ValueError(f"dataset {dataset.name!r} has no real scenes without synthetic children to hold out")
            free_ids = np.array([i for i, _ in free], dtype=object)
            is_rare = np.array([r for _, r in free])
            rare_ids = list(free_ids[is_rare & (hash_fraction(free_ids, seed + 7919) < rare_fraction)])
            chosen = list(free_ids[~is_rare & (hash_fraction(free_ids, seed) < holdout_fraction)])
            inputs[source] = scenes.load_scenes(dataset.select_by("scene_id", chosen, ordered=True)) if chosen else None
            held_ids += chosen + rare_ids
        elif kind == "world":
            world_seed, _, num = rest.partition(":")
            if not world_seed.lstrip("-").isdigit() or (num and not num.isdigit()):
                raise ValueError(f"source {source!r}: expected world:SEED or world:SEED:N (integers)")
            if any(str(i).startswith(f"world-{int(world_seed)}-") for i in ids):
                raise ValueError(f"source {source!r}: the dataset already holds scenes of world seed {world_seed}; "
                                 "use a seed never used for training")
            from autoscale_core.world import generate_world

            inputs[source] = generate_world(int(num or 400), seed=int(world_seed))
        elif kind == "av2":
            from autoscale_core.io import import_av2

            inputs[source] = import_av2(rest)[0]
        else:
            raise ValueError(f"unknown hard-split source {source!r}: use dataset, world:SEED[:N] or av2:PATH")
    training_ids -= set(held_ids)  # held-out scenes leave the training split below
    inputs = {name: batch for name, batch in inputs.items() if batch is not None}
    if not inputs and not held_ids:
        raise ValueError(f"the hard split is empty: no scene selected from sources {sources} "
                         f"(holdout_fraction={holdout_fraction}, rare_fraction={rare_fraction})")
    report = {"by_kind": {}, "sources": {}}
    hard = None
    if inputs:
        rare_sources = [s for s in inputs if str(s).startswith("world")]
        split = build_independent_hard_split(inputs, seed, rare_sources=rare_sources, training_ids=training_ids)
        hard, report = split.scenes, split.report
    counts = _write_hard_split(dataset, hard, held_ids, render)
    summary = {**counts, "holdout_real": len(held_ids), "hard_scenes": len(dataset.match(F("split") == "hard")),
               "seed": int(seed), "by_kind": report["by_kind"], "sources": report["sources"],
               "shared_parents_with_training": 0}
    record_run(dataset, f"hard_split_{int(seed)}", "independent_hard_split",
               {"seed": int(seed), "sources": sources, "holdout_fraction": holdout_fraction,
                "rare_fraction": rare_fraction, "perturbation": "independent family (heading, longitudinal, "
                "stopped, behind_agent, beside_agent); logged expert; reactive agents"}, summary)
    return summary


def _write_hard_split(dataset: fo.Dataset, hard, held_ids: list[str], render: bool) -> dict:
    """Add the hard scenes (perturbed + fresh rare events) and mark them and ``held_ids`` hard."""
    if hard is None:
        scenes.write_scene_fields(dataset, {"split": ["hard"] * len(held_ids)}, scene_ids=held_ids)
        return {"perturbed": 0, "rare_event_fresh": 0}
    synthetic = np.asarray(hard.meta["source"]) == "synthetic"
    fresh = hard.subset(np.flatnonzero(~synthetic))  # rare-event scenes of fresh world seeds
    perturbed = hard.subset(np.flatnonzero(synthetic))
    for part in (perturbed, fresh):
        if len(part):
            scenes.add_scenes(dataset, part, render=render, skip_existing=True)
    hard_ids = [str(x) for x in hard.scene_ids]
    scenes.write_scene_fields(dataset, {"split": ["hard"] * len(hard_ids + held_ids)}, scene_ids=hard_ids + held_ids)
    scenes.write_scene_fields(dataset, {"hard_kind": [str(k) for k in hard.meta["hard_kind"]],
                                        "hard_source": [str(k) for k in hard.meta["hard_source"]]}, scene_ids=hard_ids)
    if len(perturbed):
        values = {key: np.asarray(perturbed.meta[key]) for key in SYNTHETIC_FIELDS}
        values["round"] = values["round"].astype(np.int64)
        values["expert"] = [str(e) for e in values["expert"]]
        scenes.write_scene_fields(dataset, values, scene_ids=[str(x) for x in perturbed.scene_ids])
    return {"perturbed": len(perturbed), "rare_event_fresh": len(fresh)}
