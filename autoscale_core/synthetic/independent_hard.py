"""An independent, navhard-like hard split: start states the training data never produces.

The SimScale training scenes (:mod:`.perturb` + :mod:`.labels`) push the ego sideways and change
its speed, then label a recovery back to the log. A hard split built the same way measures
imitation of that labeller on its own distribution. This split is independent of it:

* **perturbation family** (one per parent scene, the kind chosen by a hash of the scene id and
  the seed, falling back to the next kind when a start is invalid):

  - ``heading`` — the ego yawed by ±0.15–0.35 rad at its t0 position;
  - ``longitudinal`` — the ego moved ±3–8 m along the route (same lateral offset and heading
    relative to the route);
  - ``stopped`` — the ego standing still in its lane at t0 (speed and acceleration 0);
  - ``behind_agent`` — the ego placed behind a vehicle moving its way, at the vehicle's speed
    and a 1 s (≥ 3 m) gap;
  - ``beside_agent`` — the ego placed in the adjacent position beside such a vehicle (0.8 m
    between the boxes), at its speed;

  the ego history is a constant-velocity approach to the new start; a start is valid when the ego
  box is on the drivable area, its centre in a lane aligned with its heading, and it overlaps no
  agent at t0;
* **the ego future keeps the original log** (the scene is re-centred on the new start): it is the
  human filter's "expert" — the recorded driver, never the recovery labeller; agents are then
  re-simulated reactively (IDM) around it;
* **parents** come from sources no training scene derives from: world seeds never used for
  training (their rare-event scenes are also included unchanged), held-out real scenes, imported
  real logs (AV2). :func:`shared_parents` / :func:`check_independent` verify that no hard scene's
  parent is a training scene or the parent of a synthetic training scene.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Iterable

import numpy as np

from ..geometry import box_corners, boxes_overlap_sparse
from ..scene import CYCLIST, VEHICLE, SceneBatch, points_on_drivable, wrap_angle
from ._geometry import RouteFrame, in_aligned_lane
from .perturb import recentre

HARD_KINDS = ("heading", "longitudinal", "stopped", "behind_agent", "beside_agent")


@dataclass(frozen=True)
class HardPerturbation:
    """Ranges of the independent perturbation family (m, rad, s)."""

    heading_range: tuple[float, float] = (0.15, 0.35)
    longitudinal_range: tuple[float, float] = (3.0, 8.0)
    headway: float = 1.0
    min_gap: float = 3.0
    side_clearance: float = 0.8
    agent_range: float = 40.0
    max_agent_heading_diff: float = 0.5


@dataclass
class IndependentHardSplit:
    """``scenes`` (all ``meta["split"] == "hard"``, ``meta["hard_kind"]`` a HARD_KINDS name or
    "rare_event", ``meta["hard_source"]`` the source name) and a report of counts."""

    scenes: SceneBatch
    report: dict = field(default_factory=dict)

    @property
    def parent_ids(self) -> set[str]:
        """Ids of the scenes the hard scenes derive from (a rare-event scene is its own parent)."""
        meta = self.scenes.meta
        return {str(p) if str(p) else str(s) for p, s in zip(meta["parent_id"], meta["scene_id"])}


def _kind_order(scene_ids, seed: int) -> np.ndarray:
    """(S,) index of the first kind to try per scene (stable under reordering)."""
    return np.array([zlib.crc32(f"hard:{seed}:{s}".encode()) % len(HARD_KINDS) for s in scene_ids])


def _lead_vehicle(batch: SceneBatch, cfg: HardPerturbation) -> np.ndarray:
    """(S,) index of the nearest moving-type agent valid at t0 heading the ego's way, -1 if none."""
    t0 = batch.history_steps
    ag = batch.agents[:, :, t0].astype(np.float64)
    ok = batch.agent_valid[:, :, t0] & np.isin(batch.agent_type, (VEHICLE, CYCLIST))
    ok &= np.abs(wrap_angle(ag[..., 2] - batch.ego[:, None, t0, 2])) < cfg.max_agent_heading_diff
    dist = np.hypot(ag[..., 0], ag[..., 1])
    ok &= dist < cfg.agent_range
    dist = np.where(ok, dist, np.inf)
    best = dist.argmin(1)
    return np.where(np.isfinite(dist.min(1)), best, -1) if dist.shape[1] else np.full(len(batch), -1)


def candidate_starts(batch: SceneBatch, kind: str, rng: np.random.Generator, cfg: HardPerturbation):
    """Start pose (S, 3) and speed (S,) per scene for one kind, in the scene frame; (S,) defined."""
    S, t0 = len(batch), batch.history_steps
    ego0 = batch.ego[:, t0].astype(np.float64)
    pose, speed = ego0[:, :3].copy(), ego0[:, 3].copy()
    defined = np.ones(S, dtype=bool)
    sign = rng.choice([-1.0, 1.0], S)
    if kind == "heading":
        pose[:, 2] = wrap_angle(pose[:, 2] + sign * rng.uniform(*cfg.heading_range, S))
    elif kind == "longitudinal":
        route = RouteFrame(batch.route_polyline, batch.route_valid)
        s0, l0 = route.project(pose[:, None, :2])
        s1 = s0 + (sign * rng.uniform(*cfg.longitudinal_range, S))[:, None]
        pose[:, :2] = route.point(s1, l0)[:, 0]
        pose[:, 2] = wrap_angle(pose[:, 2] + route.heading(s1)[:, 0] - route.heading(s0)[:, 0])
    elif kind == "stopped":
        speed[:] = 0.0
    elif kind in ("behind_agent", "beside_agent"):
        lead = _lead_vehicle(batch, cfg)
        defined = lead >= 0
        rows = np.flatnonzero(defined)
        agent = batch.agents[rows, lead[rows], t0].astype(np.float64)
        a_len, a_wid = batch.agent_size[rows, lead[rows], 0], batch.agent_size[rows, lead[rows], 1]
        e_len, e_wid = batch.ego_size[rows, 0], batch.ego_size[rows, 1]
        c, s = np.cos(agent[:, 2]), np.sin(agent[:, 2])
        if kind == "behind_agent":
            back = 0.5 * a_len + np.maximum(cfg.min_gap, cfg.headway * agent[:, 3]) + 0.5 * e_len
            pose[rows, :2] = agent[:, :2] - back[:, None] * np.stack([c, s], -1)
        else:
            side = sign[rows] * (0.5 * a_wid + cfg.side_clearance + 0.5 * e_wid)
            pose[rows, :2] = agent[:, :2] + side[:, None] * np.stack([-s, c], -1)
        pose[rows, 2] = agent[:, 2]
        speed[rows] = np.maximum(agent[:, 3], 0.0)
    else:
        raise ValueError(f"unknown hard perturbation kind {kind!r}: use one of {HARD_KINDS}")
    return pose, speed, defined


def valid_starts(batch: SceneBatch, pose: np.ndarray, margin: float = 0.0) -> np.ndarray:
    """(S,) ego box at ``pose`` on the drivable area, centre in an aligned lane, no agent overlap at t0."""
    t0 = batch.history_steps
    corners = box_corners(pose[:, :2], pose[:, 2], batch.ego_size[:, 0], batch.ego_size[:, 1])  # (S, 4, 2)
    on_road = points_on_drivable(batch, corners, margin).all(-1)
    aligned = in_aligned_lane(batch.lanes, batch.lane_valid, batch.lane_width, pose[:, None, :2], pose[:, None, 2])[:, 0]
    agents = batch.agents[:, :, t0].astype(np.float64)
    hit = boxes_overlap_sparse(
        pose[:, None, :2], pose[:, None, 2], batch.ego_size[:, None, 0], batch.ego_size[:, None, 1],
        agents[..., :2], agents[..., 2], batch.agent_size[..., 0], batch.agent_size[..., 1],
    ) & batch.agent_valid[:, :, t0]
    return on_road & aligned & ~hit.any(1)


def _with_start(batch: SceneBatch, pose: np.ndarray, speed: np.ndarray) -> SceneBatch:
    """The ego history replaced by a constant-velocity approach to ``pose`` at ``speed``; the
    logged future kept; re-centred on the new start."""
    t0 = batch.history_steps
    ego = batch.ego.astype(np.float64)
    back = (t0 - np.arange(t0 + 1)) * batch.dt  # s before t0, (t0+1,)
    travel = speed[:, None] * back[None]  # (S, t0+1)
    ego[:, : t0 + 1, 0] = pose[:, None, 0] - travel * np.cos(pose[:, None, 2])
    ego[:, : t0 + 1, 1] = pose[:, None, 1] - travel * np.sin(pose[:, None, 2])
    ego[:, : t0 + 1, 2] = pose[:, None, 2]
    ego[:, : t0 + 1, 3] = speed[:, None]
    ego[:, : t0 + 1, 4] = 0.0
    return recentre(batch.replace(ego=ego.astype(np.float32)), pose)


def perturb_independent(
    batch: SceneBatch, seed: int = 0, config: HardPerturbation = HardPerturbation(), reactive: bool = True
) -> tuple[SceneBatch, dict]:
    """One independent-family perturbed scene per parent where a valid start exists.

    Returns the scenes (``scene_id`` = ``<parent>-hard-<kind>``, ``parent_id``, ``source``
    "synthetic", ``hard_kind``, ``perturb_lateral/speed/heading`` = the start's offsets in the
    parent frame, ``expert`` "logged") and a report (counts per kind, parents without a start).
    """
    S = len(batch)
    if S == 0:
        raise ValueError("perturb_independent: empty scene batch")
    rng = np.random.default_rng([int(seed), 7_207])
    first = _kind_order(batch.scene_ids, seed)
    t0 = batch.history_steps
    pose = np.zeros((S, 3))
    speed = np.zeros(S)
    chosen = np.full(S, -1)
    for step in range(len(HARD_KINDS)):  # each scene tries its kinds in a hashed rotation
        for k, kind in enumerate(HARD_KINDS):
            rows = np.flatnonzero((chosen < 0) & ((first + step) % len(HARD_KINDS) == k))
            if len(rows) == 0:
                continue
            sub = batch.subset(rows)
            p, v, defined = candidate_starts(sub, kind, rng, config)
            ok = defined & valid_starts(sub, p)
            pose[rows[ok]], speed[rows[ok]], chosen[rows[ok]] = p[ok], v[ok], k
    keep = np.flatnonzero(chosen >= 0)
    report = {"parents": S, "perturbed": int(len(keep)), "no_valid_start": int(S - len(keep)),
              "by_kind": {kind: int((chosen == k).sum()) for k, kind in enumerate(HARD_KINDS)}}
    if len(keep) == 0:
        return batch.subset(keep), report
    parents = batch.subset(keep)
    ego0 = parents.ego[:, t0].astype(np.float64)
    scenes = _with_start(parents, pose[keep], speed[keep])
    if reactive:
        from .generate import resimulate_agents

        scenes = resimulate_agents(scenes)
    kinds = np.array([HARD_KINDS[k] for k in chosen[keep]], dtype=object)
    meta = {key: np.asarray(col)[keep] for key, col in batch.meta.items()}
    meta["parent_id"] = parents.scene_ids.astype(object)
    meta["scene_id"] = np.array([f"{p}-hard-{k}" for p, k in zip(parents.scene_ids, kinds)], dtype=object)
    meta["source"] = np.full(len(keep), "synthetic", dtype=object)
    meta["hard_kind"] = kinds
    c, s = np.cos(ego0[:, 2]), np.sin(ego0[:, 2])
    d = pose[keep, :2] - ego0[:, :2]
    meta["perturb_lateral"] = -s * d[:, 0] + c * d[:, 1]
    meta["perturb_speed"] = speed[keep] - ego0[:, 3]
    meta["perturb_heading"] = wrap_angle(pose[keep, 2] - ego0[:, 2])
    meta["round"] = np.zeros(len(keep), dtype=np.int64)
    meta["expert"] = np.full(len(keep), "logged", dtype=object)
    for key in ("ep_reference_m", "ep_reference_fp", "human_fail_mask"):
        meta.pop(key, None)  # belonged to the parent's start
    return scenes.replace(meta=meta), report


def rare_event_scenes(batch: SceneBatch) -> SceneBatch:
    """The scenes of ``batch`` with a rare event (non-empty ``meta["events"]``), unchanged."""
    events = np.asarray(batch.meta.get("events", np.full(len(batch), "", dtype=object)), dtype=object)
    return batch.subset(np.flatnonzero([bool(str(e)) for e in events]))


def training_parent_ids(training: SceneBatch | None = None, ids: Iterable[str] = (), parent_ids: Iterable[str] = ()) -> set[str]:
    """Every scene id the training data derives from: its scenes and their parents."""
    out = {str(s) for s in ids} | {str(p) for p in parent_ids if str(p)}
    if training is not None and len(training):
        out |= {str(s) for s in training.scene_ids}
        out |= {str(p) for p in np.asarray(training.meta.get("parent_id", []), dtype=object) if str(p)}
    return out


def shared_parents(hard: IndependentHardSplit, training_ids: set[str]) -> set[str]:
    """Parents of hard scenes that the training data also uses (empty for an independent split)."""
    return hard.parent_ids & set(training_ids)


def check_independent(hard: IndependentHardSplit, training_ids: set[str]) -> None:
    """Raise ValueError naming the shared parents if any hard scene derives from training data."""
    shared = shared_parents(hard, training_ids)
    if shared:
        names = ", ".join(sorted(shared)[:5])
        raise ValueError(f"hard split is not independent of training: {len(shared)} shared parent scene(s), e.g. {names}")


def build_independent_hard_split(
    sources: dict[str, SceneBatch],
    seed: int = 0,
    *,
    rare_sources: Iterable[str] = (),
    training_ids: set[str] | None = None,
    config: HardPerturbation = HardPerturbation(),
    reactive: bool = True,
) -> IndependentHardSplit:
    """Perturb every source's scenes with the independent family; add the rare-event scenes of
    the sources named in ``rare_sources`` unchanged. Parents in ``training_ids`` are dropped
    first (counted in the report), and the result is checked with :func:`check_independent`.
    """
    training_ids = set(training_ids or ())
    parts, report = [], {"seed": int(seed), "sources": {}}
    for name, batch in sources.items():
        entry = {"scenes": len(batch)}
        if len(batch) and training_ids:
            free = np.flatnonzero([str(s) not in training_ids for s in batch.scene_ids])
            entry["dropped_training_parents"] = int(len(batch) - len(free))
            batch = batch.subset(free)
        if len(batch) == 0:
            report["sources"][name] = entry
            continue
        perturbed, rep = perturb_independent(batch, seed, config, reactive)
        entry.update(rep)
        if len(perturbed):
            perturbed.meta["hard_source"] = np.full(len(perturbed), name, dtype=object)
            parts.append(perturbed)
        if name in set(rare_sources):
            rare = rare_event_scenes(batch)
            entry["rare_event"] = len(rare)
            if len(rare):
                parts.append(_as_rare(rare, name, parts[0] if parts else None))
        report["sources"][name] = entry
    if not parts:
        raise ValueError(f"the hard split is empty: no valid perturbed start or rare event in sources {list(sources)}")
    scenes = SceneBatch.concatenate(_common_meta(parts)) if len(parts) > 1 else parts[0]
    scenes.meta["split"] = np.full(len(scenes), "hard", dtype=object)
    split = IndependentHardSplit(scenes=scenes, report=report)
    check_independent(split, training_ids)
    report["scenes"] = len(scenes)
    report["by_kind"] = {str(k): int(v) for k, v in zip(*np.unique(scenes.meta["hard_kind"].astype(str), return_counts=True))}
    return split


def _as_rare(rare: SceneBatch, source: str, like: SceneBatch | None) -> SceneBatch:
    meta = dict(rare.meta)
    n = len(rare)
    meta["hard_kind"] = np.full(n, "rare_event", dtype=object)
    meta["hard_source"] = np.full(n, source, dtype=object)
    for key in ("perturb_lateral", "perturb_speed", "perturb_heading"):
        meta[key] = np.zeros(n)
    meta["round"] = np.zeros(n, dtype=np.int64)
    meta["expert"] = np.full(n, "logged", dtype=object)
    return rare.replace(meta=meta)


def _common_meta(parts: list[SceneBatch]) -> list[SceneBatch]:
    """Parts restricted to their shared meta columns (sources differ in optional columns)."""
    keys = set.intersection(*(set(p.meta) for p in parts))
    return [p.replace(meta={k: v for k, v in p.meta.items() if k in keys}) for p in parts]
