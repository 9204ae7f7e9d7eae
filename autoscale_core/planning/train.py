"""Training planners on a :class:`SceneBatch` with per-scene weights, seeds and early stopping.

:func:`train_planner` precomputes features once, draws minibatches with probability
proportional to ``sample_weight`` (so a zero-weight scene has no influence at all; it is dropped
before anything is fitted), trains for a fixed step budget with AdamW + cosine decay, evaluates
a validation split every ``eval_every`` steps and keeps the best state (early stopping).

The scoring planner additionally needs EPDMS sub-score targets for vocabulary candidates; they
are computed once per batch with the closed-loop scorer (:func:`reward_targets`) and cached in
the scorer's bounded metric cache, keyed by the scenes (id and content) and the candidates.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from torch import nn

from ..scene import SceneBatch
from ..sim.metric_cache import METRIC_CACHE, scene_fingerprints
from .evaluate import default_score, expert_available  # noqa: F401  (expert_available: re-exported)
from .features import SceneFeaturizer
from .models import SCORE_METRICS, build_model, soft_imitation_target
from .vocabulary import build_vocabulary

CHECKPOINT_FORMAT = "autoscale-planner/1"
PLANNERS = ("regression", "scoring")


@dataclass
class TrainConfig:
    """Hyper-parameters of :func:`train_planner` (all JSON-serializable)."""

    planner: str = "regression"
    steps: int = 1200
    batch_size: int = 256
    lr: float = 2e-3
    weight_decay: float = 1e-4
    hidden: int = 64
    dropout: float = 0.1
    kinematic: bool = True  # regression head: integrate accel/yaw-rate controls (else raw poses)
    val_fraction: float = 0.1
    eval_every: int = 100
    early_stopping_patience: int = 4  # evaluations without improvement before stopping
    seed: int = 0
    # scoring planner
    vocabulary_size: int = 256
    vocabulary_method: str = "kmeans"
    reward_candidates: int = 32  # candidates per scene with sub-score targets (0 = all)
    imitation_temperature: float = 2.0
    imitation_weight: float = 0.0  # imitation log-prob weight at inference; 0 scored best in a world check
    reactive: bool = False  # agents used when computing reward targets
    featurizer: dict = field(default_factory=dict)


@dataclass
class TrainedPlanner:
    """A trained model with everything needed to plan: featurizer, config, metrics, fingerprint."""

    model: nn.Module
    featurizer: SceneFeaturizer
    config: dict
    metrics: dict
    fingerprint: str
    device: str = "cpu"

    @property
    def kind(self) -> str:
        return self.config["planner"]

    def features(self, batch: SceneBatch) -> dict[str, torch.Tensor]:
        return self.featurizer.transform(batch).to_torch(self.device)

    @torch.no_grad()
    def plan(self, batch: SceneBatch, chunk: int = 8192) -> np.ndarray:
        """(S, F, 3) deterministic plans (dropout off)."""
        self.model.eval()
        return self._chunked(batch, chunk, lambda f: self.model.plan(f))

    @torch.no_grad()
    def sample(self, batch: SceneBatch, k: int, chunk: int = 8192) -> np.ndarray:
        """(k, S, F, 3) MC-dropout plans."""
        out = self._chunked(batch, chunk, lambda f: self.model.sample(f, k).transpose(0, 1))
        return np.ascontiguousarray(out.transpose(1, 0, 2, 3))

    @torch.no_grad()
    def embed(self, batch: SceneBatch, chunk: int = 8192) -> np.ndarray:
        """(S, hidden) scene embeddings (penultimate features, dropout off)."""
        self.model.eval()
        return self._chunked(batch, chunk, lambda f: self.model.embed(f))

    def _chunked(self, batch: SceneBatch, chunk: int, fn) -> np.ndarray:
        if len(batch) == 0:
            raise ValueError("the batch is empty (0 scenes)")
        feats = self.featurizer.transform(batch)
        parts = [fn(feats.subset(slice(i, i + chunk)).to_torch(self.device)).cpu().numpy()
                 for i in range(0, len(feats), chunk)]
        return np.concatenate(parts).astype(np.float32)

    # ------------------------------------------------------------------ checkpoints
    def save(self, path: str | Path) -> Path:
        """Write a checkpoint (state dict + JSON config) loadable with ``torch.load(weights_only=True)``."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        header = {
            "format": CHECKPOINT_FORMAT, "config": self.config, "metrics": self.metrics,
            "fingerprint": self.fingerprint, "featurizer": self.featurizer.get_state(),
        }
        state = {k: v.detach().cpu() for k, v in self.model.state_dict().items()}
        buffer = io.BytesIO()
        torch.save({"header": json.dumps(header), "state_dict": state}, buffer)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(buffer.getvalue())
        tmp.replace(path)  # atomic: never a half-written checkpoint
        return path

    @classmethod
    def load(cls, path: str | Path, planner: str | None = None, device: str = "cpu") -> "TrainedPlanner":
        """Load a checkpoint; ``planner`` (if given) must match the checkpoint's architecture."""
        try:
            blob = torch.load(Path(path), map_location="cpu", weights_only=True)
            header = json.loads(blob["header"])
        except FileNotFoundError:
            raise
        except Exception as exc:  # torch raises several types (UnpicklingError, RuntimeError, ...)
            raise ValueError(f"{path}: not a planner checkpoint ({str(exc).splitlines()[0][:200]})") from exc
        if not isinstance(header, dict) or header.get("format") != CHECKPOINT_FORMAT:
            found = header.get("format") if isinstance(header, dict) else type(header).__name__
            raise ValueError(f"{path}: unknown checkpoint format {found!r} (expected a {CHECKPOINT_FORMAT!r} header)")
        try:
            config = header["config"]
            if planner is not None and config["planner"] != planner:
                raise ValueError(
                    f"{path}: checkpoint holds a {config['planner']!r} planner, not the requested {planner!r}"
                )
            featurizer = SceneFeaturizer.from_state(header["featurizer"])
            state = blob["state_dict"]
            _check_shapes(path, config, featurizer, state)
            model = _new_model(config, featurizer, state.get("vocabulary"))
        except (KeyError, TypeError, AttributeError, IndexError) as exc:
            raise ValueError(f"{path}: malformed checkpoint header ({type(exc).__name__}: {exc})") from exc
        try:
            model.load_state_dict(state)
        except RuntimeError as exc:
            raise ValueError(f"{path}: weights do not fit the {config['planner']!r} architecture: {exc}") from exc
        model.to(device).eval()
        return cls(model, featurizer, config, header["metrics"], header["fingerprint"], device)


def load_planner(path: str | Path, planner: str | None = None, device: str = "cpu") -> TrainedPlanner:
    """See :meth:`TrainedPlanner.load`."""
    return TrainedPlanner.load(path, planner=planner, device=device)


# ---------------------------------------------------------------------- inputs
def check_weights(sample_weight, num_scenes: int) -> np.ndarray:
    """Validated (S,) float64 weights; ``None`` → ones. ValueError on NaN/inf/negative/all-zero/wrong length."""
    if sample_weight is None:
        return np.ones(num_scenes)
    w = np.asarray(sample_weight, dtype=np.float64)
    if w.ndim != 1 or len(w) != num_scenes:
        raise ValueError(f"sample_weight has shape {w.shape}, expected ({num_scenes},) — one weight per scene")
    if not np.isfinite(w).all():
        raise ValueError(f"sample_weight contains {int((~np.isfinite(w)).sum())} NaN/inf values")
    if (w < 0).any():
        raise ValueError(f"sample_weight contains {int((w < 0).sum())} negative values")
    if not (w > 0).any():
        raise ValueError("sample_weight is all zero: no scene would be trained on")
    return w


def data_fingerprint(batch: SceneBatch, weights: np.ndarray) -> str:
    """sha256 over (scene_id, weight) pairs of the scenes actually trained on, order-independent."""
    ids = [str(x) for x in batch.meta.get("scene_id", np.arange(len(batch)))]
    pairs = sorted(zip(ids, np.round(weights, 8).tolist()))
    return hashlib.sha256(json.dumps(pairs).encode()).hexdigest()[:16]


def resolve_device(device: str) -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


# ---------------------------------------------------------------------- reward targets
# Targets live in the scorer's metric cache, per scene rather than per batch so that subsets of a
# pool (scaling runs, seeds) reuse the work: key ("reward", vocabulary hash, reactive, scorer,
# scene id) → (content fingerprint or None for precomputed ones, candidates (Cs,), targets (Cs, M)).
def _reward_keys(vocabulary: np.ndarray, reactive: bool, scorer_name: str, scene_ids: list[str]) -> list[tuple]:
    vocab_key = hashlib.sha256(np.ascontiguousarray(vocabulary).tobytes()).hexdigest()
    return [("reward", vocab_key, bool(reactive), scorer_name, sid) for sid in scene_ids]


def reward_targets(
    batch: SceneBatch,
    vocabulary: np.ndarray,
    candidates: np.ndarray,
    reactive: bool = False,
    scorer: Callable | None = None,
    chunk: int = 1024,
) -> np.ndarray:
    """(S, Cs, len(SCORE_METRICS)) sub-scores of ``vocabulary[candidates]`` (candidates (S, Cs) int).

    ``scorer(batch, trajectories (S, Cs, F, 3), reactive=...)`` must return an object with
    (S, Cs) attributes named as :data:`SCORE_METRICS`; default: the EPDMS scorer. Results are
    cached in the metric cache per scene id and content (recomputed when a scene's candidates or
    content differ).
    """
    scorer_name = getattr(scorer, "__qualname__", str(scorer))
    ids = [str(x) for x in batch.meta.get("scene_id", [])]
    fingerprints = scene_fingerprints(batch) if ids else []
    keys = _reward_keys(vocabulary, reactive, scorer_name, ids)
    out = np.empty(candidates.shape + (len(SCORE_METRICS),), np.float32)
    missing = []
    for i in range(len(ids) or len(batch)):
        hit = METRIC_CACHE.get(keys[i]) if ids else None
        if hit is not None and hit[0] in (None, fingerprints[i]) and np.array_equal(hit[1], candidates[i]):
            out[i] = hit[2]
        else:
            missing.append(i)
    if missing:
        scorer = default_score if scorer is None else scorer
        missing = np.asarray(missing)
        for j in range(0, len(missing), chunk):
            rows = missing[j : j + chunk]
            result = scorer(batch.subset(rows), vocabulary[candidates[rows]], reactive=reactive)
            out[rows] = np.stack([np.asarray(getattr(result, m), np.float32) for m in SCORE_METRICS], -1)
        for i in missing if ids else ():
            METRIC_CACHE.put(keys[i], (fingerprints[i], candidates[i].copy(), out[i].copy()))
    return out


def add_precomputed_rewards(rewards: dict[str, np.ndarray], reactive: bool = True) -> int:
    """Seed the reward-target cache with sub-scores computed elsewhere (e.g. SimScale's
    ``autoscale_core.synthetic.rewards_only`` / ``load_rewards``: keys ``scene_id``, ``vocabulary``
    (C, F, 3) and (S, C) arrays per sub-score). Training then uses them for those scenes when
    run with the same vocabulary, ``reward_candidates=0`` (all candidates) and ``reactive``,
    whatever the scenes' content (no fingerprint is known). Returns the number of scenes added."""
    missing = [k for k in ("scene_id", "vocabulary", *SCORE_METRICS) if k not in rewards]
    if missing:
        raise ValueError(f"precomputed rewards lack {missing}")
    vocabulary = np.asarray(rewards["vocabulary"], np.float32)
    ids = [str(s) for s in rewards["scene_id"]]
    scores = np.stack([np.asarray(rewards[m], np.float32) for m in SCORE_METRICS], -1)  # (S, C, M)
    if scores.shape[:2] != (len(ids), len(vocabulary)):
        raise ValueError(f"precomputed rewards have shape {scores.shape[:2]}, expected ({len(ids)}, {len(vocabulary)})")
    every = np.arange(len(vocabulary))
    for i, key in enumerate(_reward_keys(vocabulary, reactive, str(None), ids)):
        METRIC_CACHE.put(key, (None, every, scores[i]))
    return len(ids)


def choose_candidates(vocabulary: np.ndarray, reference: np.ndarray, count: int, scene_ids) -> np.ndarray:
    """(S, count) vocabulary indices per scene: the count/2 nearest to ``reference`` (S, F, 3), the
    rest pseudo-random but fixed per scene id (so cached targets are reused across seeds/subsets)."""
    C = len(vocabulary)
    if count <= 0 or count >= C:
        return np.broadcast_to(np.arange(C), (len(reference), C)).copy()
    d2 = ((vocabulary[None, :, :, :2] - reference[:, None, :, :2]) ** 2).sum(-1).mean(-1)  # (S, C)
    near = np.argsort(d2, axis=1, kind="stable")[:, : count // 2]
    seeds = np.array([int(hashlib.md5(str(s).encode()).hexdigest()[:15], 16) for s in scene_ids], np.uint64)
    keys = _splitmix64(seeds[:, None] ^ (np.arange(C, dtype=np.uint64)[None] * np.uint64(0x9E3779B97F4A7C15)))
    keys = (keys >> np.uint64(11)).astype(np.float64)
    np.put_along_axis(keys, near, np.inf, axis=1)  # the nearest ones go last among the random ranks
    rand = np.argsort(keys, axis=1, kind="stable")[:, : count - near.shape[1]]
    return np.sort(np.concatenate([near, rand], axis=1), axis=1)


def _splitmix64(x: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return x ^ (x >> np.uint64(31))


def _constant_velocity_reference(batch: SceneBatch) -> np.ndarray:
    t = np.arange(1, batch.future_steps + 1) * batch.dt
    v = batch.ego[:, batch.current_index, 3:4]
    ref = np.zeros((len(batch), batch.future_steps, 3), np.float32)
    ref[..., 0] = v * t
    return ref


# ---------------------------------------------------------------------- training
def _check_shapes(path, config: dict, featurizer: SceneFeaturizer, state: dict) -> None:
    """Build the architecture on the ``meta`` device (no memory) and compare parameter shapes
    with the weights, so a header claiming a huge hidden size never allocates anything."""
    vocabulary = state.get("vocabulary")
    with torch.device("meta"):
        probe = _new_model(config, featurizer, None if vocabulary is None else torch.empty_like(vocabulary, device="meta"))
    expected = {k: tuple(v.shape) for k, v in probe.state_dict().items()}
    given = {k: tuple(v.shape) for k, v in state.items() if isinstance(v, torch.Tensor)}
    if expected != given:
        wrong = sorted(k for k in expected.keys() | given.keys() if expected.get(k) != given.get(k))
        raise ValueError(f"{path}: weights do not fit the {config['planner']!r} architecture of its header "
                         f"(e.g. {wrong[0]!r}: header {expected.get(wrong[0])}, weights {given.get(wrong[0])})")


def _new_model(config: dict, featurizer: SceneFeaturizer, vocabulary) -> nn.Module:
    kwargs = {"hidden": config["hidden"], "dropout": config["dropout"]}
    if config["planner"] == "regression":
        kwargs.update(kinematic=config.get("kinematic", True), dt=config["dt"])
    if config["planner"] == "scoring":
        kwargs["imitation_weight"] = config["imitation_weight"]
    return build_model(config["planner"], featurizer.dims, config["future_steps"], vocabulary=vocabulary, **kwargs)


def train_planner(
    batch: SceneBatch,
    *,
    planner: str = "regression",
    sample_weight: np.ndarray | None = None,
    seed: int = 0,
    steps: int | None = None,
    batch_size: int | None = None,
    val_fraction: float | None = None,
    early_stopping_patience: int | None = None,
    device: str = "auto",
    scorer: Callable | None = None,
    progress: Callable[[float, str], None] | None = None,
    **overrides,
) -> TrainedPlanner:
    """Train a planner on ``batch``.

    Args:
        batch: S training scenes (the validation split is carved out of them).
        planner: "regression" or "scoring".
        sample_weight: (S,) non-negative sampling weights (mixture weights); zero drops a scene.
        seed: seeds the split, the minibatch stream and the initialization.
        steps, batch_size, val_fraction, early_stopping_patience, **overrides: :class:`TrainConfig` fields.
        device: "auto" (CUDA when available), "cpu" or "cuda".
        scorer: sub-score function for the scoring planner's targets (default: the EPDMS scorer).
        progress: optional callback(fraction, message).

    Returns:
        a :class:`TrainedPlanner`; ``metrics`` holds losses, best step, L2 on the validation split,
        timings and sizes.
    """
    if planner not in PLANNERS:
        raise ValueError(f"unknown planner {planner!r}: use one of {PLANNERS}")
    if len(batch) == 0:
        raise ValueError("cannot train a planner on an empty batch (0 scenes)")
    given = {"steps": steps, "batch_size": batch_size, "val_fraction": val_fraction,
             "early_stopping_patience": early_stopping_patience}
    cfg = TrainConfig(planner=planner, seed=seed, **{k: v for k, v in given.items() if v is not None}, **overrides)
    if cfg.steps < 1 or cfg.batch_size < 1 or not 0 <= cfg.val_fraction < 1:
        raise ValueError(f"bad schedule: steps={cfg.steps}, batch_size={cfg.batch_size}, val_fraction={cfg.val_fraction}")
    weights = check_weights(sample_weight, len(batch))
    has_expert = expert_available(batch)
    if planner == "regression":
        if not has_expert.any():
            raise ValueError("the batch has no scene with a logged future (expert trajectory): "
                             "the regression planner learns by imitation only")
        weights = np.where(has_expert, weights, 0.0)
        if not (weights > 0).any():
            raise ValueError("every scene with a logged future has zero weight: nothing to train on")
    keep = np.flatnonzero(weights > 0)
    batch, weights, has_expert = batch.subset(keep), weights[keep], has_expert[keep]
    t_start = time.perf_counter()
    dev = resolve_device(device)
    rng = np.random.default_rng(cfg.seed)
    torch.manual_seed(cfg.seed)

    featurizer = SceneFeaturizer(**cfg.featurizer)
    feats = featurizer.fit_transform(batch)
    expert = np.nan_to_num(batch.expert_trajectory()).astype(np.float32)
    config = asdict(cfg) | {"future_steps": batch.future_steps, "dt": batch.dt, "history_steps": batch.history_steps,
                            "featurizer": featurizer.get_params(), "device": dev}

    vocabulary = targets = candidates = None
    if planner == "scoring":
        vocabulary = build_vocabulary(batch.subset(np.flatnonzero(has_expert)) if has_expert.any() else None,
                                      size=cfg.vocabulary_size,
                                      method=cfg.vocabulary_method if has_expert.any() else "parametric",
                                      seed=cfg.seed)
        reference = np.where(has_expert[:, None, None], expert, _constant_velocity_reference(batch))
        candidates = choose_candidates(vocabulary, reference, cfg.reward_candidates, batch.meta.get("scene_id", np.arange(len(batch))))
        if progress:
            progress(0.0, f"scoring {candidates.size} candidate trajectories for reward targets")
        targets = reward_targets(batch, vocabulary, candidates, reactive=cfg.reactive, scorer=scorer)
    model = _new_model(config, featurizer, vocabulary).to(dev)
    if planner == "regression":
        valid_expert = expert[has_expert]
        model.target_mean.copy_(torch.as_tensor(valid_expert.mean(0)))
        model.target_std.copy_(torch.as_tensor(np.maximum(valid_expert.std(0), 0.05)))

    # Split: validation scenes are drawn uniformly; training minibatches ∝ weight.
    order = rng.permutation(len(batch))
    num_val = int(round(cfg.val_fraction * len(batch))) if len(batch) >= 10 else 0
    val_idx, train_idx = np.sort(order[:num_val]), order[num_val:]
    draws = rng.choice(train_idx, size=(cfg.steps, cfg.batch_size), p=weights[train_idx] / weights[train_idx].sum())

    tensors = feats.to_torch(dev)
    data = {"expert": torch.as_tensor(expert, device=dev), "has_expert": torch.as_tensor(has_expert, device=dev),
            "weight": torch.as_tensor(weights, dtype=torch.float32, device=dev)}
    if planner == "scoring":
        data["candidates"] = torch.as_tensor(candidates, device=dev)
        data["targets"] = torch.as_tensor(targets, device=dev)
    loss_fn = _regression_loss if planner == "regression" else _make_scoring_loss(cfg)

    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, _warmup_cosine(cfg.steps))
    history, best = [], {"val_loss": float("inf"), "step": 0, "state": None}
    bad_evals, train_loss_sum, step = 0, 0.0, 0
    for step in range(1, cfg.steps + 1):
        model.train()
        idx = torch.as_tensor(draws[step - 1], device=dev)
        loss = loss_fn(model, {k: v[idx] for k, v in tensors.items()}, {k: v[idx] for k, v in data.items()}, None)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        train_loss_sum += loss.item()
        if step % cfg.eval_every == 0 or step == cfg.steps:
            val_loss = _validation_loss(model, loss_fn, tensors, data, val_idx, dev)
            history.append({"step": step, "train_loss": train_loss_sum / cfg.eval_every, "val_loss": val_loss})
            train_loss_sum = 0.0
            if progress:
                progress(step / cfg.steps, f"step {step}/{cfg.steps} val_loss={val_loss:.4f}")
            if val_loss < best["val_loss"] - 1e-5 or not len(val_idx):
                best = {"val_loss": val_loss, "step": step, "state": copy.deepcopy(model.state_dict())}
                bad_evals = 0
            else:
                bad_evals += 1
                if bad_evals >= cfg.early_stopping_patience:
                    break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    model.eval()
    trained = TrainedPlanner(model, featurizer, config, {}, data_fingerprint(batch, weights), dev)
    trained.metrics = {
        "num_train": int(len(train_idx)), "num_val": int(len(val_idx)), "steps_run": step,
        "best_step": best["step"], "best_val_loss": best["val_loss"], "history": history,
        "train_seconds": time.perf_counter() - t_start,
        "initial_train_loss": history[0]["train_loss"] if history else None,
        "final_train_loss": history[-1]["train_loss"] if history else None,
    }
    if len(val_idx) and has_expert[val_idx].any():
        vi = val_idx[has_expert[val_idx]]
        plans = trained.plan(batch.subset(vi))
        err = np.sqrt(((plans[..., :2] - expert[vi, :, :2]) ** 2).sum(-1))
        trained.metrics["val_ade"] = float(err.mean())
        trained.metrics["val_fde"] = float(err[:, -1].mean())
    return trained


def _warmup_cosine(steps: int):
    """LR factor: linear warm-up over 5 % of the steps, then cosine decay to 5 %."""
    warmup = max(1, steps // 20)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, steps - warmup))
        return 0.05 + 0.95 * 0.5 * (1.0 + np.cos(np.pi * progress))

    return factor


def _regression_loss(model, f, d, _):
    pred = model(f)
    target = (d["expert"] - model.target_mean) / model.target_std
    per_scene = nn.functional.smooth_l1_loss(pred, target, reduction="none").mean(dim=(1, 2))
    return per_scene.mean()


def _make_scoring_loss(cfg: TrainConfig):
    def loss(model, f, d, _):
        logits = model(f)  # (B, C, 1 + M)
        imitation_target = soft_imitation_target(model.vocabulary, d["expert"], cfg.imitation_temperature)
        ce = -(imitation_target * torch.log_softmax(logits[..., 0], -1)).sum(-1)
        mask = d["has_expert"].float()
        imitation = (ce * mask).sum() / mask.sum().clamp_min(1.0)
        picked = torch.gather(logits[..., 1:], 1, d["candidates"][..., None].expand(-1, -1, len(SCORE_METRICS)))
        bce = nn.functional.binary_cross_entropy_with_logits(picked, d["targets"], reduction="mean")
        return imitation + bce * len(SCORE_METRICS)

    return loss


@torch.no_grad()
def _validation_loss(model, loss_fn, tensors, data, val_idx, dev) -> float:
    if not len(val_idx):
        return float("nan")
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(val_idx), 2048):
        idx = torch.as_tensor(val_idx[i : i + 2048], device=dev)
        n = len(idx)
        total += float(loss_fn(model, {k: v[idx] for k, v in tensors.items()}, {k: v[idx] for k, v in data.items()}, None)) * n
        count += n
    return total / count
