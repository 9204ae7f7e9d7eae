"""End-to-end helpers shared by the benchmarks, the FiftyOne operators and the CLI.

``embed_scenes`` runs one encoder (fit on the training rows, transform all rows) and, where the
method has dropout, K MC-dropout embeddings for U; ``embed_scenes_streamed`` does the same for
views too large to hold in memory, loading at most ``chunk`` scenes at a time; ``scene_safety`` gives each scene's safety
criticality; ``value_scores`` fits :class:`ValueScorer` on the training rows and scores all rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ..scene import SceneBatch
from .handcrafted import HandcraftedFeatures
from .value import ValueScorer, mc_uncertainty

METHODS = ("handcrafted", "graph_rae", "error_pattern")


@dataclass
class EmbeddingResult:
    """embeddings (S, D) float32; mc_samples (K, S, D) or None (the streamed path keeps only
    their uncertainty); safety (S,) safety criticality: the safety descriptor exp(-d_min/σ) of
    the planner's error window (error_pattern; a training signal only, never an encoder input) or
    the logged future's soft-collision cost over the horizon (other methods); config: JSON-able
    settings; uncertainty (S,) U = :func:`~.value.mc_uncertainty` of the MC-dropout samples, or
    None without them."""

    method: str
    embeddings: np.ndarray
    mc_samples: np.ndarray | None
    safety: np.ndarray
    config: dict = field(default_factory=dict)
    model: object = None
    uncertainty: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.uncertainty is None and self.mc_samples is not None:
            self.uncertainty = mc_uncertainty(self.mc_samples)


def scene_safety(batch: SceneBatch, trajectories: np.ndarray | None = None, sigma: float = 2.0) -> np.ndarray:
    """(S,) safety criticality: soft-collision cost of ``trajectories`` (S, 8, 3) over the whole
    horizon (default: the logged expert future)."""
    from .error_encoder import soft_collision_cost  # torch-backed module: imported on use (fast App start)

    plans = batch.expert_trajectory() if trajectories is None else trajectories
    return soft_collision_cost(batch, plans, sigma=sigma)


def _train_rows(num_scenes: int, train_mask) -> np.ndarray:
    if train_mask is None:
        return np.arange(num_scenes)
    mask = np.asarray(train_mask, dtype=bool)
    if mask.shape != (num_scenes,):
        raise ValueError(f"train_mask has shape {mask.shape}, expected ({num_scenes},)")
    if mask.sum() < 2:
        raise ValueError(f"train_mask selects {int(mask.sum())} scenes; at least 2 are needed to fit")
    return np.flatnonzero(mask)


def embed_scenes(batch: SceneBatch, method: str, *, planner=None, train_mask=None, seed: int = 0,
                 steps: int | None = None, mc_samples: int = 10, num_threads: int | None = None,
                 progress: Callable[[float, str], None] | None = None, **params) -> EmbeddingResult:
    """Embed every scene of ``batch`` with ``method`` (one of ``METHODS``).

    The encoder is fitted on the rows of ``train_mask`` (default all). ``planner`` (an object with
    ``plan(batch) -> (S, 8, 3)`` and optionally ``sample(batch, k) -> (k, S, 8, 3)``) is required for
    "error_pattern"; its MC-dropout samples give the K embeddings for U (else the encoder's dropout).
    ``params`` go to the encoder constructor.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    # torch-backed encoders are imported on use, so that importing this module stays light
    from .error_encoder import ErrorPatternEncoder, error_pattern_inputs, mc_error_tokens, safety_descriptors
    from .graph_rae import GraphRAE

    if len(batch) < 2:
        raise ValueError(f"need at least 2 scenes to embed, got {len(batch)}")
    report = progress or (lambda f, m: None)
    rows = _train_rows(len(batch), train_mask)
    train = batch.subset(rows)
    config = {"method": method, "seed": seed, "num_train": int(len(rows)), "mc_samples": mc_samples, **params}
    if method == "handcrafted":
        report(0.1, "hand-crafted features")
        model = HandcraftedFeatures().fit(train)
        return EmbeddingResult(method, model.transform(batch), None, scene_safety(batch), config, model)
    if method == "graph_rae":
        report(0.05, "training Graph-RAE")
        model = GraphRAE(num_threads=num_threads, **params).fit(train, steps=steps or 150, seed=seed)
        report(0.8, "embedding scenes")
        emb = model.transform(batch)
        mc = model.sample(batch, mc_samples, seed=seed) if mc_samples >= 2 else None
        config.update(steps=steps or 150, final_loss=model.history_[-1])
        return EmbeddingResult(method, emb, mc, scene_safety(batch), config, model)
    if planner is None:
        raise ValueError("method 'error_pattern' needs a planner (plan(batch) -> (S, 8, 3))")
    report(0.05, "planning")
    plans = np.asarray(planner.plan(batch))
    tokens, start = error_pattern_inputs(batch, plans)  # deviation patterns only
    descriptors = safety_descriptors(batch, plans, start)  # supervision for training, not an input
    report(0.2, "training the error-pattern encoder")
    model = ErrorPatternEncoder(num_threads=num_threads, **params).fit(tokens[rows], descriptors[rows], steps=steps, seed=seed)
    emb = model.transform(tokens)
    mc = None
    if mc_samples >= 2:
        report(0.8, "MC-dropout embeddings")
        if hasattr(planner, "sample"):
            samples = np.asarray(planner.sample(batch, mc_samples))
            mc = np.stack([model.transform(t) for t in mc_error_tokens(batch, samples)])
            config["mc_source"] = "planner MC-dropout"
        else:
            mc = model.sample(tokens, mc_samples, seed=seed)
            config["mc_source"] = "encoder MC-dropout"
    config.update(steps=ErrorPatternEncoder.default_steps(len(rows)) if steps is None else steps, final_loss=model.history_[-1])
    return EmbeddingResult(method, emb, mc, descriptors, config, model)


STREAM_CHUNK = 20_000  # scenes loaded at once by embed_scenes_streamed (≈ 0.6 GB of scene arrays)
STREAMED_METHODS = ("handcrafted", "graph_rae")
EXECUTOR_CHUNK = 5_000  # scenes per executor task: a worker holding 10,000 peaked at 2.2 GB in the 1e6 run


def embed_scenes_streamed(load: Callable[[np.ndarray], SceneBatch], num_scenes: int, method: str, *, train_mask=None,
                          seed: int = 0, steps: int | None = None, mc_samples: int = 10,
                          num_threads: int | None = None, chunk: int = STREAM_CHUNK, fit_max: int = STREAM_CHUNK,
                          executor=None, progress: Callable[[float, str], None] | None = None,
                          **params) -> EmbeddingResult:
    """:func:`embed_scenes` with bounded memory: ``load(rows)`` returns the scenes at positions
    ``rows`` (int array, at most ``chunk`` of them), called chunk by chunk.

    "handcrafted": raw features are gathered per chunk and standardized with the training rows'
    statistics — the same embeddings as :func:`embed_scenes`. "graph_rae": fitted on the training
    rows (a seeded sample of ``fit_max`` of them when there are more), then each chunk is
    encoded; chunk i's MC-dropout samples use seed ``seed + i`` and are reduced to U (S,) within
    the chunk (the result's ``mc_samples`` is None: K·S·D floats would not fit at 1e6 scenes).
    ``executor`` (an :mod:`autoscale_core.executor` executor) encodes the chunks in parallel when
    ``load`` has a ``part(rows)`` method (see :func:`encode_chunk`), in tasks of at most
    :data:`EXECUTOR_CHUNK` scenes; the embeddings are the same either way (U too, for the same
    chunking). "error_pattern" is not streamed (its encoder trains on every scene's planner error
    windows).
    """
    if method not in STREAMED_METHODS:
        raise ValueError(f"streamed embedding supports {STREAMED_METHODS}, not {method!r}; embed a smaller view")
    if num_scenes < 2:
        raise ValueError(f"need at least 2 scenes to embed, got {num_scenes}")
    if chunk < 1 or fit_max < 2:
        raise ValueError(f"chunk must be >= 1 and fit_max >= 2, got {chunk} and {fit_max}")
    from .graph_rae import GraphRAE  # torch: imported on use

    report = progress or (lambda f, m: None)
    rows = _train_rows(num_scenes, train_mask)
    starts = range(0, num_scenes, chunk)
    config = {"method": method, "seed": seed, "num_train": int(len(rows)), "mc_samples": mc_samples,
              "streamed_chunk": chunk, **params}
    if method == "handcrafted":
        raw, safety = [], []
        for i, start in enumerate(starts):
            part = load(np.arange(start, min(num_scenes, start + chunk)))
            raw.append(HandcraftedFeatures.raw(part))
            safety.append(scene_safety(part))
            report(0.9 * (i + 1) / len(starts), f"hand-crafted features: {min(num_scenes, start + chunk)}/{num_scenes}")
        raw = np.concatenate(raw)
        model = HandcraftedFeatures().fit_raw(raw[rows])
        return EmbeddingResult(method, model.transform_raw(raw), None, np.concatenate(safety), config, model)
    fit_rows = rows if len(rows) <= fit_max else np.sort(np.random.default_rng(seed).choice(rows, fit_max, replace=False))
    report(0.02, f"training Graph-RAE on {len(fit_rows)} scenes")
    model = GraphRAE(num_threads=num_threads, **params).fit(load(fit_rows), steps=steps or 150, seed=seed)
    parallel = executor is not None and hasattr(load, "part")
    step = min(chunk, EXECUTOR_CHUNK) if parallel else chunk
    row_chunks = [np.arange(start, min(num_scenes, start + step)) for start in range(0, num_scenes, step)]
    parts = _encode_chunks(model, load, row_chunks, mc_samples, seed, executor if parallel else None, report)
    config.update(steps=steps or 150, final_loss=model.history_[-1], num_fit=int(len(fit_rows)))
    if parallel:
        config.update(executor=repr(executor), executor_chunk=step)
    embeddings, uncertainty, safety = (np.concatenate(col) if col[0] is not None else None for col in zip(*parts))
    return EmbeddingResult(method, embeddings, None, safety, config, model, uncertainty=uncertainty)


def encode_chunk(task: tuple) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """One streamed chunk: ``task = (model, load_rows, rows, mc_samples, seed)`` →
    (embeddings (n, D), U (n,) or None, safety (n,)). Module-level so an executor can run it;
    the MC-dropout samples are reduced to U here, so they never outlive the chunk."""
    model, load_rows, rows, mc_samples, seed = task
    part = load_rows(rows)
    if mc_samples >= 2:
        emb, samples = model.transform_and_sample(part, mc_samples, seed=seed)
        return emb, mc_uncertainty(samples), scene_safety(part)
    return model.transform(part), None, scene_safety(part)


def _encode_chunks(model, load, row_chunks, mc_samples, seed, executor, report) -> list[tuple]:
    """Chunk i's MC-dropout passes use seed ``seed + i`` wherever it runs, so the result does
    not depend on the executor. With an executor, ``load`` offers ``part(rows)``: a small,
    picklable loader of just those rows (called with positions 0..len(rows)-1), so a task does
    not ship every scene id to the worker."""
    if executor is not None:
        report(0.3, f"embedding {sum(map(len, row_chunks))} scenes in {len(row_chunks)} chunks on {executor!r}")
        tasks = [(model, load.part(rows), np.arange(len(rows)), mc_samples, seed + i) for i, rows in enumerate(row_chunks)]
        return list(executor.map(encode_chunk, tasks))
    parts, total = [], sum(map(len, row_chunks))
    for i, rows in enumerate(row_chunks):
        parts.append(encode_chunk((model, load, rows, mc_samples, seed + i)))
        report(0.3 + 0.7 * (i + 1) / len(row_chunks), f"embedding scenes: {rows[-1] + 1}/{total}")
    return parts


def value_scores(embeddings, safety, *, train_mask=None, mc_samples=None, uncertainty=None, alpha_s: float = 1.0,
                 alpha_r: float = 1.0, alpha_u: float = 1.0, k: int = 20, tau_s: float = 0.5,
                 hazard_fraction: float = 0.1) -> tuple[dict, ValueScorer]:
    """S/R/U/Q for every row, against the training rows (reference and hazard set); U from
    ``mc_samples`` (K, S, D) or an already computed ``uncertainty`` (S,)."""
    emb = np.asarray(embeddings)
    rows = _train_rows(len(emb), train_mask)
    if len(rows) < k + 1:
        raise ValueError(f"the training set has {len(rows)} scenes; rarity with k={k} needs at least {k + 1}")
    scorer = ValueScorer(alpha_s, alpha_r, alpha_u, k=k, tau_s=tau_s, hazard_fraction=hazard_fraction)
    scorer.fit(emb[rows], np.asarray(safety)[rows])
    self_index = np.full(len(emb), -1, dtype=np.int64)
    self_index[rows] = np.arange(len(rows))
    return scorer.score(emb, mc_samples=mc_samples, self_index=self_index, uncertainty=uncertainty), scorer
