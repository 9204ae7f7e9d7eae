"""Semantics-aware error-pattern encoder (from semantics-aware active learning for planners).

From a planner's predictions and the logged future:

* ``error_windows``: per-step deviations d_t = (Δx, Δy, Δheading) between predicted and logged
  poses; the representative window e_i is the run of H = 5 consecutive steps with the largest
  weighted L2 magnitude Σ_t ||w ⊙ d_t|| (w weights heading errors by ``heading_weight`` m/rad).
* ``safety_descriptors``: the soft-collision cost of the planned poses inside that window,
  Σ_t Σ_agents exp(−d²/σ²), with d the gap (m) between the ego box at the planned pose and each
  agent's logged box at the same time (boxes approximated as axis-aligned in the ego's frame).
* ``ErrorPatternEncoder``: a small transformer over the window's H tokens → 128-d L2-normalized
  embedding, trained with a supervised contrastive loss whose positives are pairs of scenes with
  close safety descriptors (|Δ| < δ, δ = the 10th percentile of the batch's pairwise
  differences; temperature τ = 0.07). Descriptors are compared as rank percentiles over the
  training set, because the raw costs are heavy-tailed. Dropout stays available for MC-dropout samples (for U).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..scene import SceneBatch, wrap_angle
from .graph_rae import torch_threads

WINDOW = 5
TOKEN_FEATURES = ("dx", "dy", "dheading", "pred_x", "pred_y", "pred_cos", "pred_sin", "err_norm", "time")


def _check_trajectories(name: str, traj, num_scenes: int | None = None) -> np.ndarray:
    arr = np.asarray(traj, dtype=np.float64)
    if arr.ndim != 3 or arr.shape[2] != 3:
        raise ValueError(f"{name} must have shape (S, steps, 3) = x, y, heading; got {arr.shape}")
    if num_scenes is not None and arr.shape[0] != num_scenes:
        raise ValueError(f"{name} has {arr.shape[0]} scenes, expected {num_scenes}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains NaN or inf")
    return arr


def error_windows(predictions, logged, window: int = WINDOW, heading_weight: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """Representative error windows.

    Args:
        predictions, logged: (S, T, 3) poses (x, y, heading) at the same times (m, rad).
        window: H, the window length (steps).
        heading_weight: metres per radian when weighting heading errors.

    Returns:
        tokens (S, H, len(TOKEN_FEATURES)) float32 and start (S,) int64 (window start step).
    """
    pred = _check_trajectories("predictions", predictions)
    gt = _check_trajectories("logged futures", logged, pred.shape[0])
    if gt.shape != pred.shape:
        raise ValueError(f"predictions {pred.shape} and logged futures {gt.shape} differ in shape")
    T = pred.shape[1]
    if not 1 <= window <= T:
        raise ValueError(f"window {window} must be between 1 and the {T} predicted steps")
    dev = pred - gt
    dev[..., 2] = wrap_angle(dev[..., 2])
    mag = np.sqrt(dev[..., 0] ** 2 + dev[..., 1] ** 2 + (heading_weight * dev[..., 2]) ** 2)  # (S, T)
    csum = np.concatenate([np.zeros((len(mag), 1)), np.cumsum(mag, axis=1)], axis=1)
    window_mag = csum[:, window:] - csum[:, :-window]  # (S, T - H + 1)
    start = np.argmax(window_mag, axis=1)
    steps = start[:, None] + np.arange(window)[None, :]
    take = lambda a: np.take_along_axis(a, steps[..., None].repeat(a.shape[-1], -1), axis=1)  # noqa: E731
    d, p = take(dev), take(pred)
    tokens = np.concatenate(
        [d, p[..., :2] / 20.0, np.cos(p[..., 2:3]), np.sin(p[..., 2:3]),
         np.take_along_axis(mag, steps, axis=1)[..., None], (steps[..., None] + 1) / T], axis=-1)
    return tokens.astype(np.float32), start.astype(np.int64)


def _step_safety(batch: SceneBatch, traj: np.ndarray, steps: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """Per-step soft-collision cost Σ_agents exp(−gap²/σ²) and nearest gap (m) of poses
    ``traj`` (S, T, 3) at future steps ``steps`` (S, H); both (S, H) float64."""
    S, N = len(batch), batch.agents.shape[1]
    rows = np.arange(S)[:, None]
    p = traj[rows, steps]  # (S, H, 3)
    if N == 0:
        return np.zeros(steps.shape), np.full(steps.shape, 50.0)
    t_idx = batch.history_steps + 1 + steps  # timeline indices
    agent_ix = np.arange(N)[None, None, :]
    agents = batch.agents[rows[:, :, None], agent_ix, t_idx[:, :, None]]  # (S, H, N, 4)
    valid = batch.agent_valid[rows[:, :, None], agent_ix, t_idx[:, :, None]] & (batch.agent_type >= 0)[:, None, :]
    rel = agents[..., :2] - p[:, :, None, :2]
    c, s = np.cos(p[..., 2])[..., None], np.sin(p[..., 2])[..., None]
    lon, lat = c * rel[..., 0] + s * rel[..., 1], -s * rel[..., 0] + c * rel[..., 1]
    half_len = 0.5 * (batch.ego_size[:, None, None, 0] + batch.agent_size[:, None, :, 0])
    half_wid = 0.5 * (batch.ego_size[:, None, None, 1] + batch.agent_size[:, None, :, 1])
    gap = np.hypot(np.maximum(np.abs(lon) - half_len, 0.0), np.maximum(np.abs(lat) - half_wid, 0.0)).astype(np.float64)
    # float64: far agents give tiny but non-zero costs that still order the scenes.
    cost = np.where(valid, np.exp(-(gap**2) / sigma**2), 0.0).sum(-1)
    nearest = np.where(valid, gap, np.inf).min(-1)
    return cost, np.minimum(nearest, 50.0)


def safety_descriptors(batch: SceneBatch, predictions, start=None, window: int = WINDOW, sigma: float = 2.0) -> np.ndarray:
    """(S,) float64 soft-collision cost of the planned poses in each scene's error window.

    Σ over the window's steps and valid agents of exp(−gap²/σ²), where gap (m) is the distance
    between the ego box at the planned pose and the agent's logged box at that time (boxes
    axis-aligned in the planned pose's frame). ``start`` (S,) gives the window start (default:
    ``error_windows`` against the logged future).
    """
    pred = _check_trajectories("predictions", predictions, len(batch))
    if pred.shape[1] != batch.future_steps:
        raise ValueError(f"predictions have {pred.shape[1]} steps, the batch has {batch.future_steps} future steps")
    if start is None:
        _, start = error_windows(pred, batch.expert_trajectory(), window)
    steps = np.asarray(start, dtype=np.int64)[:, None] + np.arange(window)[None, :]
    return _step_safety(batch, pred, steps, sigma)[0].sum(1)


SAFETY_TOKEN_FEATURES = ("step_cost", "planned_gap", "logged_gap")


def error_pattern_inputs(batch: SceneBatch, predictions, window: int = WINDOW,
                         sigma: float = 2.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Tokens (S, H, F), safety descriptors (S,) and window starts (S,) for (S, 8, 3) plans.

    Tokens are the error window (``TOKEN_FEATURES``) plus per-step safety semantics
    (``SAFETY_TOKEN_FEATURES``: log1p of the step's soft-collision cost, and the planned and
    logged poses' nearest gaps to an agent / 20 m), so the encoder sees what the error risks.
    """
    pred = _check_trajectories("predictions", predictions, len(batch))
    if pred.shape[1] != batch.future_steps:
        raise ValueError(f"predictions have {pred.shape[1]} steps, the batch has {batch.future_steps} future steps")
    logged = batch.expert_trajectory().astype(np.float64)
    tokens, start = error_windows(pred, logged, window)
    steps = start[:, None] + np.arange(window)[None, :]
    cost, gap = _step_safety(batch, pred, steps, sigma)
    _, logged_gap = _step_safety(batch, logged, steps, sigma)
    extra = np.stack([np.log1p(cost), gap / 20.0, logged_gap / 20.0], axis=-1).astype(np.float32)
    return np.concatenate([tokens, extra], axis=-1), cost.sum(1), start


def mc_error_tokens(batch: SceneBatch, planner_samples, window: int = WINDOW) -> np.ndarray:
    """(K, S, H, F) error tokens of K MC-dropout planner samples (K, S, 8, 3); embedding each
    with :meth:`ErrorPatternEncoder.transform` gives the K embeddings whose covariance is U."""
    samples = np.asarray(planner_samples)
    if samples.ndim != 4 or samples.shape[1] != len(batch):
        raise ValueError(f"planner samples must have shape (K, {len(batch)}, steps, 3), got {samples.shape}")
    return np.stack([error_pattern_inputs(batch, s, window)[0] for s in samples])


def supervised_contrastive_loss(z: torch.Tensor, descriptors: torch.Tensor, temperature: float = 0.07,
                                quantile: float = 0.1) -> torch.Tensor:
    """SupCon loss; positives are pairs whose descriptors differ by less than δ = the ``quantile``
    of the batch's pairwise |Δ| (anchors without a positive are skipped)."""
    diff = (descriptors[:, None] - descriptors[None, :]).abs()
    off = ~torch.eye(len(z), dtype=torch.bool)
    pairs = diff[off]
    delta = torch.quantile(pairs, quantile) if len(pairs) else torch.tensor(0.0)
    positive = (diff < delta) & off
    logits = (z @ z.T / temperature).masked_fill(~off, float("-inf"))
    log_prob = logits - torch.logsumexp(logits, dim=1, keepdim=True)
    count = positive.sum(1)
    has = count > 0
    if not has.any():
        return z.sum() * 0.0
    per_anchor = -(log_prob.masked_fill(~positive, 0.0)).sum(1)[has] / count[has]
    return per_anchor.mean()


class _ErrorTransformer(nn.Module):
    def __init__(self, num_features, window, dim, heads, layers, out_dim, dropout):
        super().__init__()
        self.inp = nn.Linear(num_features, dim)
        self.pos = nn.Parameter(torch.zeros(window, dim))
        layer = nn.TransformerEncoderLayer(dim, heads, 2 * dim, dropout, batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(2 * dim, out_dim))

    def forward(self, tokens):
        x = self.encoder(self.inp(tokens) + self.pos)
        return F.normalize(self.head(torch.cat([x.mean(1), x.max(1).values], -1)), dim=-1)


class ErrorPatternEncoder:
    """Error-window transformer → L2-normalized embedding, trained with safety-supervised contrast.

    ``fit(tokens, descriptors)`` with tokens (S, H, F) from :func:`error_windows` and
    descriptors (S,) from :func:`safety_descriptors`; ``transform(tokens) -> (S, out_dim)``;
    ``sample(tokens, K) -> (K, S, out_dim)`` MC-dropout embeddings.
    """

    def __init__(self, out_dim: int = 128, *, dim: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.1,
                 temperature: float = 0.07, quantile: float = 0.1, batch_size: int = 256, lr: float = 2e-3,
                 num_threads: int | None = None) -> None:
        self.num_threads = num_threads
        self.out_dim, self.dim, self.heads, self.layers, self.dropout = out_dim, dim, heads, layers, dropout
        self.temperature, self.quantile, self.batch_size, self.lr = temperature, quantile, batch_size, lr
        self.net_: _ErrorTransformer | None = None
        self.token_scale_: np.ndarray | None = None
        self.history_: list[dict[str, float]] = []

    def _tokens(self, tokens) -> torch.Tensor:
        arr = np.asarray(tokens, dtype=np.float32)
        if arr.ndim != 3:
            raise ValueError(f"error tokens must have shape (S, H, F), got {arr.shape}")
        if self.net_ is not None and arr.shape[1:] != self.shape_:
            raise ValueError(f"error tokens have shape {arr.shape[1:]} per scene, the encoder was fitted on {self.shape_}")
        if not np.isfinite(arr).all():
            raise ValueError("error tokens contain NaN or inf")
        return torch.from_numpy(arr / self.token_scale_ if self.token_scale_ is not None else arr)

    def fit(self, tokens, descriptors, steps: int = 200, seed: int = 0) -> "ErrorPatternEncoder":
        """Train for ``steps`` minibatches; deterministic for a given ``seed``."""
        with torch_threads(self.num_threads):
            return self._fit(tokens, descriptors, steps, seed)

    def _fit(self, tokens, descriptors, steps, seed):
        arr = np.asarray(tokens, dtype=np.float32)
        desc = np.asarray(descriptors, dtype=np.float64).reshape(-1)
        if arr.ndim != 3 or len(arr) != len(desc):
            raise ValueError(f"tokens {arr.shape} and descriptors {desc.shape} must be (S, H, F) and (S,)")
        if len(arr) < 2:
            raise ValueError(f"ErrorPatternEncoder.fit needs at least 2 scenes, got {len(arr)}")
        if not np.isfinite(desc).all():
            raise ValueError("safety descriptors contain NaN or inf")
        self.net_ = None
        self.token_scale_ = np.maximum(np.abs(arr).reshape(-1, arr.shape[2]).std(0), 1e-3).astype(np.float32)
        x = self._tokens(arr)
        # Descriptors enter as rank percentiles: costs are heavy-tailed (most scenes near 0), and
        # on raw values the 10th-percentile δ would make every low-risk pair a positive.
        from scipy.stats import rankdata

        d = torch.from_numpy((rankdata(desc) / len(desc)).astype(np.float32))
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        self.shape_ = arr.shape[1:]
        self.net_ = _ErrorTransformer(arr.shape[2], arr.shape[1], self.dim, self.heads, self.layers, self.out_dim, self.dropout)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=1e-4)
        self.net_.train()
        self.history_ = []
        for step in range(steps):
            idx = torch.randperm(len(x), generator=gen)[: self.batch_size]
            loss = supervised_contrastive_loss(self.net_(x[idx]), d[idx], self.temperature, self.quantile)
            opt.zero_grad()
            loss.backward()
            opt.step()
            if step % 20 == 0 or step == steps - 1:
                self.history_.append({"step": step, "supcon": float(loss.detach())})
        self.net_.eval()
        return self

    def _check_fitted(self):
        if self.net_ is None:
            raise RuntimeError("ErrorPatternEncoder is not fitted: call fit(tokens, descriptors) first")

    def transform(self, tokens, chunk: int = 4096) -> np.ndarray:
        """(S, out_dim) float32 L2-normalized embeddings (dropout off)."""
        self._check_fitted()
        self.net_.eval()
        x = self._tokens(tokens)
        with torch.no_grad(), torch_threads(self.num_threads):
            return torch.cat([self.net_(x[i : i + chunk]) for i in range(0, len(x), chunk)]).numpy()

    def sample(self, tokens, num_samples: int = 10, seed: int = 0, chunk: int = 4096) -> np.ndarray:
        """(K, S, out_dim) MC-dropout embeddings."""
        self._check_fitted()
        x = self._tokens(tokens)
        torch.manual_seed(seed)
        self.net_.train()
        try:
            with torch.no_grad(), torch_threads(self.num_threads):
                return np.stack([torch.cat([self.net_(x[i : i + chunk]) for i in range(0, len(x), chunk)]).numpy()
                                 for _ in range(num_samples)])
        finally:
            self.net_.eval()
