"""The scorer's metric cache: per-scene values that depend only on the scene, computed once.

Scoring a plan needs, besides the plan's own metrics, two per-scene inputs that cost more than
the plan: the EP denominator (the rule planner's best compliant progress) and the logged
expert's metrics (NAVSIM's false-positive "human" filter). Training a scoring planner needs the
vocabulary's sub-score targets per scene. All three live in one explicit, bounded object,
:data:`METRIC_CACHE` (a :class:`MetricCache`: least-recently-used eviction beyond
``max_entries``), whose keys start with the kind of value and contain the scene's content key
(:func:`scene_keys`: scene id + a fingerprint of its ego, agents, map and route), so a scene
edited in place, or a perturbed copy that kept its id, never reads a value of the old content.

Across processes the values persist with the scenes, like NAVSIM's metric cache:
:func:`autoscale_core.sim.scoring.precompute_reference_progress` stores the EP denominator and
the expert's failed metrics in ``batch.meta`` (keys below) together with the fingerprint, and
the scorer trusts them only while the fingerprint still matches (:func:`stored_reference_progress`).
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from typing import Hashable

import numpy as np

from ..scene import SceneBatch

REFERENCE_KEY = "ep_reference_m"  # batch.meta key of the stored EP denominator (m)
REFERENCE_FINGERPRINT_KEY = "ep_reference_fp"  # ... and of the scene fingerprint it belongs to
HUMAN_FAIL_KEY = "human_fail_mask"  # ... and of the logged expert's failed metrics (bit i: FILTERED[i])
DEFAULT_MAX_ENTRIES = 500_000  # the largest of the four former module caches' bounds


class MetricCache:
    """Bounded least-recently-used map from ``(kind, ...)`` tuple keys to per-scene values.

    ``kind`` names the value (``"ep_reference"``, ``"expert"``, ``"reward"``); the rest of the key
    must identify the scene's content (see :func:`scene_keys`) and every setting the value
    depends on. Reading an entry makes it the most recent; storing one beyond ``max_entries``
    evicts the least recent, so callers use what they computed rather than re-reading it.
    """

    def __init__(self, max_entries: int = DEFAULT_MAX_ENTRIES):
        if max_entries < 1:
            raise ValueError(f"max_entries must be >= 1, got {max_entries}")
        self.max_entries = int(max_entries)
        self._entries: OrderedDict[tuple, object] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: tuple) -> bool:
        return key in self._entries

    def get(self, key: tuple, default=None):
        """The value stored under ``key`` (now the most recent), else ``default``."""
        if key not in self._entries:
            return default
        self._entries.move_to_end(key)
        return self._entries[key]

    def put(self, key: tuple, value) -> None:
        """Store ``value`` under ``key``, evicting the least recently used beyond the bound."""
        self._entries[key] = value
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def count(self, kind: Hashable) -> int:
        """Number of entries of one kind."""
        return sum(1 for key in self._entries if key[0] == kind)

    def clear(self, kind: Hashable | None = None) -> None:
        """Drop every entry, or only those of one kind."""
        if kind is None:
            self._entries.clear()
            return
        for key in [key for key in self._entries if key[0] == kind]:
            del self._entries[key]

    def section(self, kind: Hashable) -> "CacheSection":
        """A view of the entries of one kind (length, ``clear``)."""
        return CacheSection(self, kind)


class CacheSection:
    """The entries of one kind in a :class:`MetricCache` (falsy when there are none)."""

    def __init__(self, cache: MetricCache, kind: Hashable):
        self.cache, self.kind = cache, kind

    def __len__(self) -> int:
        return self.cache.count(self.kind)

    def clear(self) -> None:
        self.cache.clear(self.kind)


METRIC_CACHE = MetricCache()  # the process's one metric cache (EP reference, expert metrics, reward targets)


def scene_fingerprints(batch: SceneBatch) -> list[str]:
    """Per-scene content fingerprint (16 hex chars) of the arrays scoring depends on: sums (and
    time-weighted sums) accumulated in float64 without float64 copies of the big arrays."""
    S = len(batch)
    w = np.arange(1, batch.num_steps + 1, dtype=np.float64)
    total = lambda x: x.reshape(S, -1).sum(1, dtype=np.float64)  # noqa: E731
    parts = [
        batch.ego.sum(2, dtype=np.float64) @ w,
        total(batch.ego_size),
        total(batch.agents),
        batch.agents[..., 0].sum(1, dtype=np.float64) @ w,
        total(batch.agent_valid),
        total(batch.agent_size),
        total(batch.lanes),
        total(batch.lane_width),
        batch.lane_tl.sum(1, dtype=np.float64) @ w,
        total(batch.drivable_polygons),
        total(batch.route_polyline),
        total(batch.lane_speed_limit),
        total(batch.lane_valid) + 2.0 * total(batch.lane_is_intersection),
        total(batch.drivable_vertex_valid) + 0.5 * total(batch.agent_type),
    ]
    finger = np.ascontiguousarray(np.stack(parts, 1))
    return [hashlib.blake2b(finger[i].tobytes(), digest_size=8).hexdigest() for i in range(S)]


def scene_keys(batch: SceneBatch) -> list[tuple]:
    """Per-scene cache keys: scene id + content fingerprint."""
    ids = batch.meta.get("scene_id", np.arange(len(batch)))
    return [(str(i), f) for i, f in zip(ids, scene_fingerprints(batch))]


def stored_floats(batch: SceneBatch, key: str) -> np.ndarray:
    """(S,) float meta column, NaN where absent or not a number ("" after concatenation)."""
    values = np.full(len(batch), np.nan)
    raw = batch.meta.get(key)
    if raw is None:
        return values
    for i, v in enumerate(np.asarray(raw, dtype=object)):
        try:
            values[i] = float(v)
        except (TypeError, ValueError):
            pass
    return values


def stale_scenes(batch: SceneBatch) -> np.ndarray:
    """(S,) bool: a stored fingerprint exists and no longer matches the scene's content."""
    stored_fp = batch.meta.get(REFERENCE_FINGERPRINT_KEY)
    if stored_fp is None:
        return np.zeros(len(batch), dtype=bool)
    return np.asarray(stored_fp, dtype=object) != np.array(scene_fingerprints(batch), dtype=object)


def stored_reference_progress(batch: SceneBatch) -> np.ndarray:
    """(S,) EP denominators from ``batch.meta`` (NaN where absent, invalid or stale)."""
    values = stored_floats(batch, REFERENCE_KEY)
    if np.isfinite(values).any():
        values[stale_scenes(batch)] = np.nan
    return values
