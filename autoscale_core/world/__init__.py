"""The embedded procedural driving world: seeded, heterogeneous, ego-centric driving scenes.

``generate_world(num_scenes, seed, cities)`` builds road layouts (highway on-ramp merge, curved
rural road, signalized 4-way intersection, urban street with parking and pedestrians,
roundabout), runs a 10 Hz traffic micro-simulation on them (IDM car following, MOBIL-like lane
changes, fixed-time traffic lights, pedestrians on crosswalks), stages rare safety-critical
events, and cuts 6 s windows (2 s history + 4 s future at 0.5 s) into a
:class:`~autoscale_core.scene.SceneBatch`. See ``docs/world.md``.
"""

from __future__ import annotations

import numpy as np

from ..scene import ARRAY_SPECS, SceneBatch
from .cities import CITIES, EVENTS, TOPOLOGIES, CityProfile
from .generator import generate_batch

__all__ = ["generate_world", "CITIES", "TOPOLOGIES", "EVENTS", "CityProfile", "LOG_LIKE_MIX", "BALANCED_MIX"]

# A scene-biased pool like real logs: mostly easy cruising, few intersections, merges, roundabouts.
LOG_LIKE_MIX = {"urban_street": 0.45, "rural_curve": 0.35, "intersection": 0.12, "highway_merge": 0.05,
                "roundabout": 0.03}
# A navtest-like test set: every topology equally often.
BALANCED_MIX = {t: 1.0 for t in TOPOLOGIES}

SCENES_PER_LAYOUT = 64  # scenes simulated together on one layout instance (vectorized)


def generate_world(
    num_scenes: int,
    seed: int = 0,
    cities: list[str] | None = None,
    *,
    event_rate: float | None = None,
    force_event: str | None = None,
    topologies: list[str] | None = None,
    domain_mix: dict[str, float] | None = None,
) -> SceneBatch:
    """Generate ``num_scenes`` driving scenes; the same arguments always give identical arrays.

    Args:
        num_scenes: number of scenes S (>= 1).
        seed: random seed.
        cities: subset of :data:`CITIES` names (default all); each scene's city is drawn uniformly,
            its topology from the city's ``topology_mix``.
        event_rate: override the per-scene probability of each rare event type (default: the
            city's ``event_rate``, a few percent).
        force_event: stage this event (one of :data:`EVENTS`) in every scene whose topology
            allows it (cut-ins need a neighbouring lane); no other events are staged.
        topologies: restrict to these topologies (default: the city mix).
        domain_mix: topology → share (normalized; missing topologies get none), used for every
            city instead of the cities' own ``topology_mix``. Real logs are scene-biased (mostly
            cruising, few merges or roundabouts): e.g. :data:`LOG_LIKE_MIX` builds such a pool,
            :data:`BALANCED_MIX` a navtest-like balanced test set.

    Returns:
        A validated :class:`SceneBatch` of S scenes with ``meta["scene_id"] = f"world-{seed}-{i:06d}"``.
    """
    if not isinstance(num_scenes, (int, np.integer)) or num_scenes < 1:
        raise ValueError(f"num_scenes must be a positive integer, got {num_scenes!r}")
    names = list(CITIES) if cities is None else list(cities)
    unknown = [c for c in names if c not in CITIES]
    if unknown or not names:
        raise ValueError(f"cities: unknown city name(s) {unknown}; choose from {sorted(CITIES)}")
    if force_event is not None and force_event not in EVENTS:
        raise ValueError(f"force_event must be one of {EVENTS}, got {force_event!r}")
    if topologies is not None and (not topologies or any(t not in TOPOLOGIES for t in topologies)):
        raise ValueError(f"topologies must be a non-empty subset of {TOPOLOGIES}, got {topologies!r}")
    _check_domain_mix(domain_mix)
    rng = np.random.default_rng(np.random.SeedSequence([int(seed), 7919]))
    city_of = rng.integers(len(names), size=num_scenes)
    topo_of = np.empty(num_scenes, dtype=object)
    for c, name in enumerate(names):
        allowed = [t for t in TOPOLOGIES if topologies is None or t in topologies]
        if domain_mix is None:
            p = np.array([CITIES[name].topology_mix.get(t, 0.0) for t in allowed]) + 1e-3
        else:
            p = np.array([float(domain_mix.get(t, 0.0)) for t in allowed])
            if p.sum() <= 0:
                raise ValueError(f"domain_mix {domain_mix} gives no weight to the topologies {allowed}")
        sel = city_of == c
        topo_of[sel] = np.array(allowed, dtype=object)[rng.choice(len(allowed), size=sel.sum(), p=p / p.sum())]
    parts, order = [], []
    batch_no = 0
    for c, name in enumerate(names):
        for topo in TOPOLOGIES:
            idx = np.flatnonzero((city_of == c) & (topo_of == topo))
            for start in range(0, len(idx), SCENES_PER_LAYOUT):
                chunk = idx[start : start + SCENES_PER_LAYOUT]
                sub_rng = np.random.default_rng(np.random.SeedSequence([int(seed), c, TOPOLOGIES.index(topo), start]))
                log_id = f"world-{seed}-{name}-{topo}-{start // SCENES_PER_LAYOUT:04d}"
                part, _ = generate_batch(CITIES[name], topo, len(chunk), sub_rng, log_id=log_id,
                                         event_rate=event_rate, force_event=force_event)
                part.meta["scene_id"] = np.array([f"world-{seed}-{i:06d}" for i in chunk], dtype=object)
                part.validate()  # per part: the ego-on-lane check is cheaper before padding
                parts.append(part)
                order.append(chunk)
                batch_no += 1
    batch = _scatter(parts, order, num_scenes)
    batch.validate(check_ego_on_lane=False)  # shapes, ids, finiteness of the joined batch
    return batch


def _check_domain_mix(domain_mix: dict[str, float] | None) -> None:
    if domain_mix is None:
        return
    unknown = sorted(set(domain_mix) - set(TOPOLOGIES))
    if unknown:
        raise ValueError(f"domain_mix: unknown topology name(s) {unknown}; choose from {TOPOLOGIES}")
    bad = {k: v for k, v in domain_mix.items() if not np.isfinite(float(v)) or float(v) < 0}
    if bad or sum(float(v) for v in domain_mix.values()) <= 0:
        raise ValueError(f"domain_mix shares must be non-negative, finite and not all zero, got {domain_mix}")


def _scatter(parts: list[SceneBatch], order: list[np.ndarray], num_scenes: int) -> SceneBatch:
    """Place each part's scenes at their indices, padding to the largest sizes (one copy)."""
    arrays = {}
    for name, (pad_value, dtype) in ARRAY_SPECS.items():
        shapes = np.array([getattr(p, name).shape[1:] for p in parts])
        out = np.full((num_scenes,) + tuple(shapes.max(0)), pad_value, dtype=dtype)
        for part, idx in zip(parts, order):
            array = getattr(part, name)
            out[(idx,) + tuple(slice(0, s) for s in array.shape[1:])] = array
        arrays[name] = out
    meta = {}
    for key in parts[0].meta:
        column = np.empty(num_scenes, dtype=parts[0].meta[key].dtype)
        for part, idx in zip(parts, order):
            column[idx] = part.meta[key]
        meta[key] = column
    first = parts[0]
    return SceneBatch(**arrays, meta=meta, dt=first.dt, history_steps=first.history_steps)
