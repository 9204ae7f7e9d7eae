"""A hard evaluation split in the spirit of NAVSIM's navhard: perturbed start states + rare events.

* A reproducible share of the real scenes is held out (chosen by a hash of ``(seed, scene_id)``,
  so adding or reordering scenes never changes another scene's membership). Each held-out scene
  gets one strongly perturbed start state (larger lateral and speed pushes than training-time
  synthesis), labelled with the recovery pseudo-expert, agents re-simulated reactively.
* The real scenes with rare events (non-empty ``meta["events"]``) are held out with their own
  share and included unchanged.

Both kinds must be kept out of training: :attr:`HardSplit.holdout_ids` lists the real scenes.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field

import numpy as np

from ..scene import SceneBatch
from .generate import generate_synthetic
from .perturb import PerturbationConfig

HARD_CONFIG = PerturbationConfig(
    lateral_range=(1.0, 2.5), lateral_distribution="symmetric", speed_range=(-4.0, 4.0),
    heading_jitter=0.08, max_attempts=4,
)


@dataclass
class HardSplit:
    """The hard split: ``scenes`` (perturbed held-out scenes first, then rare-event scenes; all
    with ``meta["split"] == "hard"`` and ``meta["hard_kind"]`` "perturbed"/"rare_event"),
    ``holdout_ids`` (real scene ids to exclude from training) and a report."""

    scenes: SceneBatch
    holdout_ids: list[str]
    report: dict = field(default_factory=dict)


def hash_fraction(scene_ids, seed: int) -> np.ndarray:
    """(S,) a uniform-looking number in [0, 1) per scene id, stable under reordering."""
    return np.array([zlib.crc32(f"{seed}:{s}".encode()) / 2**32 for s in scene_ids])


def build_hard_split(
    batch: SceneBatch,
    seed: int = 0,
    *,
    holdout_fraction: float = 0.1,
    rare_fraction: float = 0.5,
    config: PerturbationConfig = HARD_CONFIG,
    reactive: bool = True,
) -> HardSplit:
    """Build the hard split from the real scenes of ``batch`` (synthetic scenes are ignored).

    Args:
        holdout_fraction: share of real scenes whose perturbed versions form the split.
        rare_fraction: share of the rare-event real scenes included (and held out).
        config: the (strong) perturbation used for held-out scenes.
    """
    for name, value in (("holdout_fraction", holdout_fraction), ("rare_fraction", rare_fraction)):
        if not (0.0 <= value <= 1.0):
            raise ValueError(f"{name} {value} must lie in [0, 1]")
    if len(batch) == 0:
        raise ValueError("cannot build a hard split from an empty batch")
    source = np.asarray(batch.meta.get("source", np.full(len(batch), "", dtype=object)), dtype=object)
    real = np.flatnonzero(source != "synthetic")
    if len(real) == 0:
        raise ValueError("the batch has no real scenes (only synthetic ones) to build a hard split from")
    ids = np.asarray(batch.meta["scene_id"], dtype=object)
    events = np.asarray(batch.meta.get("events", np.full(len(batch), "", dtype=object)), dtype=object)
    u_hold = hash_fraction(ids[real], seed)
    u_rare = hash_fraction(ids[real], seed + 7919)
    is_rare = np.array([bool(str(e)) for e in events[real]])
    rare = real[is_rare & (u_rare < rare_fraction)]
    held = real[~np.isin(real, rare) & (u_hold < holdout_fraction)]

    parts, report = [], {"held_out": int(len(held)), "rare_event": int(len(rare))}
    if len(held):
        perturbed, gen = generate_synthetic(
            batch.subset(held), scenes_per_parent=1, config=config, expert="recovery",
            seed=seed, reactive=reactive, score_labels=False,
        )
        meta = dict(perturbed.meta)
        meta["scene_id"] = np.array([f"{p}-hard" for p in meta["parent_id"]], dtype=object)
        meta["hard_kind"] = np.full(len(perturbed), "perturbed", dtype=object)
        parts.append(perturbed.replace(meta=meta))
        report["perturbed"] = len(perturbed)
        report["rejects"] = gen.rejects.as_dict()
    if len(rare):
        rare_batch = batch.subset(rare)
        rare_batch.meta["hard_kind"] = np.full(len(rare), "rare_event", dtype=object)
        if parts:  # same meta columns and dtypes as the perturbed part
            for key in ("perturb_lateral", "perturb_speed", "perturb_heading"):
                rare_batch.meta[key] = np.zeros(len(rare))
            rare_batch.meta["round"] = np.zeros(len(rare), dtype=np.int64)
            rare_batch.meta["expert"] = np.full(len(rare), "", dtype=object)
        parts.append(rare_batch)
    if not parts:
        raise ValueError(
            f"the hard split is empty: no real scene was selected (holdout_fraction={holdout_fraction}, "
            f"{int(is_rare.sum())} rare-event scenes, rare_fraction={rare_fraction})"
        )
    scenes = SceneBatch.concatenate(parts) if len(parts) > 1 else parts[0]
    scenes.meta["split"] = np.full(len(scenes), "hard", dtype=object)
    holdout = [str(s) for s in ids[np.concatenate([held, rare])]]
    report["scenes"] = len(scenes)
    return HardSplit(scenes=scenes, holdout_ids=holdout, report=report)
