"""World splits for the selection protocol: a scene-biased pool, a base set, and balanced val/test sets.

Real driving logs are scene-biased: mostly cruising, few intersections, merges and roundabouts. A
:class:`WorldSplitSpec` builds one split of the embedded world like that:

* ``base`` (what the planner already has) and ``pool`` (the candidates) from world seed
  ``seed`` with the log-like ``pool_mix`` (disjoint scenes of one generation);
* ``val`` (all tuning: MOSAIC pilots, best-of-val controls) from world seed ``seed + 1`` and
  ``test`` (reported only) from world seed ``seed + 2``, both with the balanced ``test_mix``
  (navtest-like: every topology equally often). Val and test share no scene, layout or seed with
  the pool or with each other.

Each batch gets its EP reference (the rule planner's progress, the costliest part of scoring)
precomputed into ``batch.meta`` once, so workers that train and score many planners on it never
recompute it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["WorldSplitSpec", "SplitScenes", "make_world_split", "load_real_test"]


@dataclass(frozen=True)
class WorldSplitSpec:
    """Sizes and mixes of one world split (picklable, so splits can be built in parallel).

    Args:
        seed: world seed of base + pool; val uses ``seed + 1``, test ``seed + 2``.
        pool_size, base_size, val_size, test_size: scenes in each part.
        pool_mix: topology → share for base and pool (None: :data:`~autoscale_core.world.LOG_LIKE_MIX`).
        test_mix: topology → share for val and test (None: :data:`~autoscale_core.world.BALANCED_MIX`).
    """

    seed: int
    pool_size: int = 10_000
    base_size: int = 1_000
    val_size: int = 1_000
    test_size: int = 2_000
    pool_mix: dict | None = None
    test_mix: dict | None = None

    @property
    def name(self) -> str:
        return f"world{self.seed}"

    def check(self) -> None:
        sizes = {"pool_size": self.pool_size, "base_size": self.base_size, "val_size": self.val_size,
                 "test_size": self.test_size}
        bad = {k: v for k, v in sizes.items() if not isinstance(v, (int, np.integer)) or v < 1}
        if bad:
            raise ValueError(f"split sizes must be positive integers, got {bad}")


@dataclass
class SplitScenes:
    """The four scene batches of one split (``autoscale_core.scene.SceneBatch`` each)."""

    name: str
    base: Any
    pool: Any
    val: Any
    test: Any
    extra_tests: dict[str, Any] = field(default_factory=dict)

    def sizes(self) -> dict[str, int]:
        out = {k: len(getattr(self, k)) for k in ("base", "pool", "val", "test")}
        out.update({f"test:{k}": len(v) for k, v in self.extra_tests.items()})
        return out


def _world(num: int, seed: int, mix: dict):
    from ..sim.scoring import precompute_reference_progress
    from ..world import generate_world

    batch = generate_world(num, seed=seed, domain_mix=mix)
    precompute_reference_progress(batch)
    return batch


def make_world_split(spec: WorldSplitSpec) -> SplitScenes:
    """Generate one split (deterministic in ``spec``); see the module docstring."""
    from ..world import BALANCED_MIX, LOG_LIKE_MIX

    spec.check()
    pool_mix = spec.pool_mix or LOG_LIKE_MIX
    test_mix = spec.test_mix or BALANCED_MIX
    world = _world(spec.base_size + spec.pool_size, spec.seed, pool_mix)
    order = np.random.default_rng([spec.seed, 17]).permutation(len(world))
    base = world.subset(np.sort(order[: spec.base_size]))
    pool = world.subset(np.sort(order[spec.base_size :]))
    val = _world(spec.val_size, spec.seed + 1, test_mix)
    test = _world(spec.test_size, spec.seed + 2, test_mix)
    return SplitScenes(spec.name, base, pool, val, test)


def load_real_test(roots: list[str], *, stride_s: float = 0.5) -> tuple[Any, list[str]]:
    """Real recorded scenes as an extra (transfer) test set: every ScenarioNet file / database
    and every Argoverse 2 log or scenario under ``roots``, one scene each ``stride_s`` seconds.

    Scenes of one log overlap in time, so they are not independent draws: intervals that resample
    them are optimistic, and the results say how many logs they came from.

    Returns:
        (batch, descriptions): a validated SceneBatch with its EP reference precomputed, and one
        line per root (what was imported from it).

    Raises:
        ValueError: a root that does not exist or holds no importable scene.
    """
    from pathlib import Path

    from ..io.av2 import import_av2
    from ..io.scenarionet import import_scenarionet
    from ..scene import SceneBatch
    from ..sim.scoring import precompute_reference_progress

    batches, described = [], []
    for root in roots:
        path = Path(root)
        if not path.exists():
            raise ValueError(f"real test set {root!r} does not exist")
        is_scenarionet = path.suffix == ".pkl" or any(path.rglob("*.pkl"))
        importer = import_scenarionet if is_scenarionet else import_av2
        batch, _report = importer(path, stride_s=stride_s)
        logs = len(set(np.asarray(batch.meta["log_id"]).tolist())) if "log_id" in batch.meta else None
        sources = sorted(set(np.asarray(batch.meta["source"]).astype(str).tolist())) if "source" in batch.meta else []
        described.append(f"{root}: {len(batch)} scenes" + (f" from {logs} logs" if logs else "")
                         + (f" ({', '.join(sources)})" if sources else ""))
        batches.append(batch)
    if not batches:
        raise ValueError("no real test roots given")
    batch = SceneBatch.concatenate(batches)
    precompute_reference_progress(batch)
    return batch, described
