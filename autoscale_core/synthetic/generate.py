"""SimScale synthetic scene generation: perturb → pseudo-expert label → reactive re-simulation.

One round, per chunk of parent scenes:

1. :func:`~autoscale_core.synthetic.perturb.perturb_scenes` pushes the ego off its logged path
   (rejecting and counting infeasible start states) and re-centres each scene on its new t0 pose;
2. the pseudo-expert (``recovery`` or ``planner``) labels the new state; the label becomes the
   synthetic scene's ego future;
3. :func:`resimulate_agents` replaces the agents' futures by a reactive (IDM) simulation around
   the labelled ego, so followers brake for an ego pushed in front of them;
4. every synthetic scene is validated.

Multi-round accumulation: round r perturbs the outputs of round r − 1 (``scenes_per_parent``
scenes per real parent in round 1, ``later_scenes_per_parent`` per round-(r−1) scene after).

Scale-out: with ``executor=`` (``"serial"``, ``"process[:N]"``, ``"ray[:address]"`` or an
:class:`~autoscale_core.executor.Executor`) the chunks of a round are mapped through that executor
(:class:`ChunkTask`); every parent draws from its own seeded stream, so the result is bit-for-bit
the same whichever executor (and chunking) runs it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Iterable

import numpy as np

from ..executor import Executor, SceneChunk, resolve_executor
from ..scene import SceneBatch
from .labels import EXPERTS, apply_label, make_label
from .perturb import PerturbationConfig, RejectReport, perturb_scenes

MAX_ROUNDS = 5
Progress = Callable[[float, str], None]
PHASES = ("perturb", "label", "resimulate", "score", "validate")


@dataclass
class GenerationReport:
    """What :func:`generate_synthetic` did: counts, rejections, label quality, timings."""

    parents: int = 0
    generated: int = 0
    expert: str = "recovery"
    rounds: list[dict] = field(default_factory=list)  # per round: generated + RejectReport dict
    rejects: RejectReport = field(default_factory=RejectReport)
    label_epdms: np.ndarray | None = None  # (generated,) EPDMS of each label in its own scene
    seconds: dict[str, float] = field(default_factory=dict)

    def label_quality(self) -> dict:
        """Distribution of the labels' EPDMS (mean, quantiles, share ≥ 0.8); {} when unscored."""
        if self.label_epdms is None or len(self.label_epdms) == 0:
            return {}
        e = np.asarray(self.label_epdms, dtype=np.float64)
        q = np.quantile(e, [0.1, 0.25, 0.5, 0.75, 0.9])
        return {
            "count": int(len(e)), "mean": float(e.mean()),
            "p10": float(q[0]), "p25": float(q[1]), "median": float(q[2]), "p75": float(q[3]), "p90": float(q[4]),
            "share_ge_0.8": float((e >= 0.8).mean()), "share_zero": float((e == 0).mean()),
        }

    def as_dict(self) -> dict:
        return {
            "parents": self.parents, "generated": self.generated, "expert": self.expert,
            "rounds": self.rounds, "rejects": self.rejects.as_dict(),
            "label_quality": self.label_quality(), "seconds": dict(self.seconds),
        }


def generate_synthetic(
    batch: SceneBatch,
    *,
    scenes_per_parent: int = 5,
    config: PerturbationConfig = PerturbationConfig(),
    expert: str = "recovery",
    rounds: int = 1,
    seed: int | None = None,
    later_scenes_per_parent: int = 1,
    reactive: bool = True,
    score_labels: bool = True,
    known_scene_ids: Iterable[str] | None = None,
    chunk_size: int = 128,
    progress: Progress | None = None,
    executor: str | Executor | None = None,
) -> tuple[SceneBatch, GenerationReport]:
    """Synthetic scenes from the scenes of ``batch``.

    Args:
        batch: S source scenes (real, or synthetic ones whose parents are known).
        scenes_per_parent: synthetic scenes per source scene in round 1.
        config: perturbation settings (``config.seed`` is replaced by ``seed`` when given).
        expert: "recovery" or "planner" pseudo-expert.
        rounds: number of accumulation rounds (1 … 5).
        later_scenes_per_parent: scenes per round-(r−1) scene in rounds ≥ 2.
        reactive: re-simulate the agents reactively (IDM); False keeps their logged futures.
        score_labels: score each label in its own scene (EPDMS, reactive agents, no human
            filter: the "human" of a synthetic scene is the label itself).
        known_scene_ids: ids of scenes that exist elsewhere (e.g. the dataset); synthetic source
            scenes must have their ``parent_id`` in ``batch`` or here.
        chunk_size: parents processed together (bounds memory; one executor task each).
        progress: optional ``callback(fraction, message)``: after every chunk in-process, after
            every round with an executor (and once when a round starts).
        executor: ``None`` (default) runs the chunks one after another in this process; a name
            (``"serial"``, ``"process[:N]"``, ``"ray[:address]"``; pass
            ``get_executor(None)`` for ``AUTOSCALE_EXECUTOR``) or an
            :class:`~autoscale_core.executor.Executor` maps each round's chunks through it. A
            round with a single chunk always runs in-process. Same result either way.

    Returns:
        (all synthetic scenes of all rounds, round 1 first; report). Meta keys added:
        ``source="synthetic"``, ``parent_id``, ``perturb_lateral`` (m), ``perturb_speed`` (m/s),
        ``perturb_heading`` (rad), ``round``, ``expert``.

    Raises:
        ValueError: empty source, out-of-range parameters, unknown expert, missing parents.
        TaskError: (with an executor) a chunk failed on every attempt; names the chunk's rows and
            scene ids.
    """
    if seed is not None:
        config = PerturbationConfig(**{**config.__dict__, "seed": int(seed)})
    _check_arguments(batch, scenes_per_parent, expert, rounds, later_scenes_per_parent, chunk_size, config)
    check_lineage(batch, known_scene_ids)
    report = GenerationReport(parents=len(batch), expert=expert)
    timings = dict.fromkeys(PHASES, 0.0)
    outputs: list[SceneBatch] = []
    scores: list[np.ndarray] = []
    # Each round decides for itself: a round with a single chunk runs in-process (Ray only
    # starts on the first map).
    pool, close_pool = resolve_executor(executor, num_tasks=2)
    try:
        source = batch
        for round_index in range(1, rounds + 1):
            per_parent = scenes_per_parent if round_index == 1 else later_scenes_per_parent
            task = ChunkTask(config, per_parent, expert, round_index, reactive, score_labels)
            chunks = [SceneChunk(source.subset(slice(start, start + chunk_size)), start, label=f"round {round_index}")
                      for start in range(0, len(source), chunk_size)]
            if pool is None or len(chunks) == 1:
                results = []
                for chunk in chunks:
                    results.append(task(chunk))
                    if progress is not None:
                        end = chunk.start + len(chunk.scenes)
                        progress((round_index - 1 + end / len(source)) / rounds,
                                 f"round {round_index}/{rounds}: {end}/{len(source)} parents")
            else:
                if progress is not None:
                    progress((round_index - 1) / rounds, f"round {round_index}/{rounds}: {len(source)} parents "
                                                         f"in {len(chunks)} chunks on {pool!r}")
                results = pool.map(task, chunks)
                if progress is not None:
                    progress(round_index / rounds, f"round {round_index}/{rounds}: {len(source)}/{len(source)} parents")
            parts, round_report = [], RejectReport()
            for out, rejects, epdms, seconds in results:
                round_report = round_report.merge(rejects)
                for key, value in seconds.items():
                    timings[key] = timings.get(key, 0.0) + value
                if len(out):
                    parts.append(out)
                    scores.append(epdms)
            produced = SceneBatch.concatenate(parts) if parts else None
            report.rounds.append({"round": round_index, "generated": 0 if produced is None else len(produced),
                                  **round_report.as_dict()})
            report.rejects = report.rejects.merge(round_report)
            if produced is None:
                break
            outputs.append(produced)
            source = produced
    finally:
        if close_pool:
            pool.close()
    if not outputs:
        raise ValueError(
            f"no synthetic scene survived the feasibility checks ({report.rejects.as_dict()['rejected']}); "
            "try smaller lateral/speed ranges or more attempts"
        )
    result = SceneBatch.concatenate(outputs) if len(outputs) > 1 else outputs[0]
    report.generated = len(result)
    report.label_epdms = np.concatenate(scores) if score_labels else None
    report.seconds = timings
    return result, report


@dataclass(frozen=True)
class ChunkTask:
    """One round's work on one chunk of parents, as an executor task (picklable: module-level
    class of plain settings). ``task(SceneChunk)`` → ``(scenes, RejectReport, label EPDMS (n,),
    seconds by phase)``; deterministic in the chunk's scenes (per-parent seeded streams)."""

    config: PerturbationConfig
    per_parent: int
    expert: str
    round_index: int
    reactive: bool
    score_labels: bool

    def __call__(self, chunk: SceneChunk | SceneBatch):
        scenes = chunk.scenes if isinstance(chunk, SceneChunk) else chunk
        timings = dict.fromkeys(PHASES, 0.0)
        out, rejects, epdms = _one_chunk(scenes, self.config, self.per_parent, self.expert, self.round_index,
                                         self.reactive, self.score_labels, timings)
        return out, rejects, epdms, timings


def _one_chunk(chunk, config, per_parent, expert, round_index, reactive, score_labels, timings):
    tic = time.perf_counter()
    perturbed, rejects = perturb_scenes(chunk, config, per_parent, round_index=round_index)
    timings["perturb"] += time.perf_counter() - tic
    if len(perturbed) == 0:
        return perturbed, rejects, np.zeros(0)
    tic = time.perf_counter()
    labelled = apply_label(perturbed, make_label(perturbed, expert), expert)
    timings["label"] += time.perf_counter() - tic
    tic = time.perf_counter()
    if reactive:
        labelled = resimulate_agents(labelled)
    timings["resimulate"] += time.perf_counter() - tic
    tic = time.perf_counter()
    labelled.validate()
    timings["validate"] += time.perf_counter() - tic
    epdms = np.zeros(0)
    if score_labels:
        tic = time.perf_counter()
        epdms = score_labels_epdms(labelled)
        timings["score"] += time.perf_counter() - tic
    return labelled, rejects, epdms


def resimulate_agents(batch: SceneBatch) -> SceneBatch:
    """A copy of ``batch`` whose agent futures come from a reactive simulation (IDM, the
    simulation core's :func:`~autoscale_core.sim.agents.simulate_agents`) around the ego driving
    its own future (tracked by the kinematic model), resampled to the scene's dt."""
    from ..sim.agents import simulate_agents
    from ..sim.kinematics import simulate_ego

    dt_sim = 0.1
    every = int(round(batch.dt / dt_sim))
    if abs(every * dt_sim - batch.dt) > 1e-9:
        raise ValueError(f"scene dt {batch.dt} s is not a multiple of the simulation step {dt_sim} s")
    if batch.agents.shape[1] == 0:
        return batch
    ego_states = simulate_ego(batch, batch.expert_trajectory()[:, None].astype(np.float64), dt_sim=dt_sim)
    states, valid = simulate_agents(batch, ego_states, reactive=True, dt_sim=dt_sim)
    future = slice(batch.history_steps + 1, None)
    num_f = batch.future_steps
    sampled = states[:, 0, :, every::every][:, :, :num_f]  # (S, N, F, 4)
    sampled_valid = valid[:, 0, :, every::every][:, :, :num_f]
    agents = batch.agents.copy()
    agent_valid = batch.agent_valid.copy()
    agents[:, :, future] = np.where(sampled_valid[..., None], sampled, 0.0).astype(np.float32)
    agent_valid[:, :, future] = sampled_valid
    return batch.replace(agents=agents, agent_valid=agent_valid)


def score_labels_epdms(batch: SceneBatch) -> np.ndarray:
    """(S,) EPDMS of each scene's ego future (its label), reactive agents, no human filter."""
    from ..sim.scoring import score_trajectories

    plans = batch.expert_trajectory()[:, None].astype(np.float64)
    result = score_trajectories(batch, plans, reactive=True, human_filter=False)
    return np.asarray(result.epdms, dtype=np.float64)[:, 0]


# ---------------------------------------------------------------------------- input checks
def _check_arguments(batch, scenes_per_parent, expert, rounds, later, chunk_size, config) -> None:
    if not isinstance(batch, SceneBatch):
        raise ValueError(f"source must be a SceneBatch, got {type(batch).__name__}")
    if len(batch) == 0:
        raise ValueError("the source has no scenes: nothing to perturb")
    for name, value, high in (("scenes_per_parent", scenes_per_parent, 100), ("later_scenes_per_parent", later, 100),
                              ("rounds", rounds, MAX_ROUNDS), ("chunk_size", chunk_size, 100_000)):
        if isinstance(value, bool) or not (int(value) == value and 1 <= value <= high):
            raise ValueError(f"{name} {value!r} must be an integer in [1, {high}]")
    if expert not in EXPERTS:
        raise ValueError(f"unknown pseudo-expert {expert!r}; use one of {EXPERTS}")
    config.validate(batch.dt, batch.history_steps)


def check_lineage(batch: SceneBatch, known_scene_ids: Iterable[str] | None = None) -> None:
    """Raise ValueError when a synthetic scene has no ``parent_id``, or (with ``known_scene_ids``)
    a ``parent_id`` that is neither in ``batch`` nor among the known ids."""
    source = np.asarray(batch.meta.get("source", np.full(len(batch), "", dtype=object)), dtype=object)
    synthetic = source == "synthetic"
    if not synthetic.any():
        return
    parents = np.asarray(batch.meta.get("parent_id", np.full(len(batch), "", dtype=object)), dtype=object)
    orphans = [str(s) for s, p in zip(np.asarray(batch.meta["scene_id"])[synthetic], parents[synthetic]) if not p]
    if orphans:
        raise ValueError(f"{len(orphans)} synthetic source scene(s) have no parent_id, e.g. {orphans[:3]}")
    if known_scene_ids is None:
        return
    known = set(str(s) for s in batch.meta["scene_id"])
    known.update(str(s) for s in known_scene_ids)
    missing = sorted({str(p) for p in parents[synthetic] if str(p) not in known})
    if missing:
        raise ValueError(
            f"{len(missing)} parent scene(s) of synthetic source scenes are missing, e.g. {missing[:3]}; "
            "generate from real scenes or include the parents"
        )
