"""Torch planners over :class:`~autoscale_core.planning.features.PlannerFeatures`.

Both share :class:`SceneEncoder`: per-token MLPs for agents and lanes, one cross-attention of an
ego/route query over the tokens, a masked max-pool, and a dropout MLP whose output is the scene
embedding (``embed``). Dropout stays active in :meth:`sample` (MC-dropout) for uncertainty.

* :class:`RegressionPlanner` — embedding → 8 × 3 poses (Transfuser/LTF-like in role).
* :class:`ScoringPlanner` — embedding × a fixed trajectory vocabulary → an imitation logit and one
  logit per EPDMS sub-score per candidate (Hydra-MDP-like); inference picks the candidate with
  the best weighted combination (log of a predicted EPDMS plus an imitation prior).
"""

from __future__ import annotations

import torch
from torch import nn

# Sub-scores the scoring planner predicts: multipliers first, then the weighted terms.
MULTIPLIER_METRICS = ("nc", "dac", "ddc", "tlc")
WEIGHTED_METRICS = {"ep": 5.0, "ttc": 5.0, "lk": 2.0, "hc": 2.0}
SCORE_METRICS = MULTIPLIER_METRICS + tuple(WEIGHTED_METRICS)


def _mlp(sizes: list[int], dropout: float = 0.0) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class SceneEncoder(nn.Module):
    """Features → (B, hidden) scene embedding."""

    def __init__(self, dims: dict[str, int], hidden: int = 64, heads: int = 4, dropout: float = 0.1):
        super().__init__()
        self.ego = _mlp([dims["ego"], hidden, hidden])
        self.agent = _mlp([dims["agent"], hidden, hidden])
        self.lane = _mlp([dims["lane"], hidden, hidden])
        self.attention = nn.MultiheadAttention(hidden, heads, batch_first=True)
        self.out = nn.Sequential(
            nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
        )
        self.hidden = hidden

    def forward(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        query = self.ego(f["ego"])  # (B, H)
        tokens = torch.cat([query[:, None], self.agent(f["agents"]), self.lane(f["lanes"])], dim=1)
        # The ego token is always present, so attention never sees an all-masked row.
        valid = torch.cat([torch.ones_like(f["agent_mask"][:, :1]), f["agent_mask"], f["lane_mask"]], dim=1)
        attended, _ = self.attention(query[:, None], tokens, tokens, key_padding_mask=~valid, need_weights=False)
        pooled = tokens.masked_fill(~valid[..., None], -1e4).amax(dim=1)
        return self.out(torch.cat([query, attended[:, 0], pooled], dim=-1))


class _Planner(nn.Module):
    """Shared MC-dropout / embedding helpers."""

    encoder: SceneEncoder

    def embed(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, hidden) penultimate features (dropout follows the module's train/eval mode)."""
        return self.encoder(f)

    def plan(self, f: dict[str, torch.Tensor]) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, f: dict[str, torch.Tensor], k: int) -> torch.Tensor:
        """(k, B, F, 3) plans with dropout active (MC-dropout); the module's mode is restored."""
        was_training = self.training
        self.eval()
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.train()
        try:
            return torch.stack([self.plan(f) for _ in range(int(k))])
        finally:
            self.train(was_training)


class RegressionPlanner(_Planner):
    """Scene embedding → (B, F, 3) poses.

    The head predicts an acceleration and a yaw rate per output step, integrated from the current
    speed with a unicycle model (``kinematic=True``, default): plans are smooth and dynamically
    consistent by construction, which the comfort terms of EPDMS reward. ``kinematic=False``
    regresses the poses directly (de-standardized with the training targets' mean/std).
    """

    kind = "regression"

    def __init__(self, dims: dict[str, int], future_steps: int = 8, hidden: int = 64, dropout: float = 0.1,
                 kinematic: bool = True, dt: float = 0.5):
        super().__init__()
        self.encoder = SceneEncoder(dims, hidden=hidden, dropout=dropout)
        self.kinematic = bool(kinematic)
        self.dt = float(dt)
        self.head = nn.Linear(hidden, future_steps * (2 if self.kinematic else 3))
        self.future_steps = future_steps
        self.register_buffer("target_mean", torch.zeros(future_steps, 3))
        self.register_buffer("target_std", torch.ones(future_steps, 3))

    def forward(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, F, 3) pose predictions, standardized with ``target_mean``/``target_std``."""
        out = self.head(self.encoder(f))
        if not self.kinematic:
            return out.view(-1, self.future_steps, 3)
        return (self._integrate(out.view(-1, self.future_steps, 2), f["ego_state"]) - self.target_mean) / self.target_std

    def _integrate(self, controls: torch.Tensor, ego_state: torch.Tensor) -> torch.Tensor:
        """Unicycle rollout of per-step (accel, yaw rate) from the current speed, 2 sub-steps per step."""
        accel = 3.0 * controls[..., 0]  # m/s², scaled so the head works near unit range
        yaw_rate = 0.5 * controls[..., 1]  # rad/s
        h = self.dt / 2
        speed, heading = ego_state[:, 0].clamp_min(0.0), torch.zeros_like(ego_state[:, 0])
        x, y = torch.zeros_like(speed), torch.zeros_like(speed)
        poses = []
        for k in range(self.future_steps):
            for _ in range(2):
                new_speed = (speed + accel[:, k] * h).clamp_min(0.0)
                new_heading = heading + yaw_rate[:, k] * h
                mid_speed, mid_heading = 0.5 * (speed + new_speed), 0.5 * (heading + new_heading)
                x = x + mid_speed * torch.cos(mid_heading) * h
                y = y + mid_speed * torch.sin(mid_heading) * h
                speed, heading = new_speed, new_heading
            poses.append(torch.stack([x, y, heading], -1))
        return torch.stack(poses, 1)

    def plan(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.forward(f) * self.target_std + self.target_mean


class ScoringPlanner(_Planner):
    """Scores every trajectory of a fixed vocabulary (C, F, 3) for each scene.

    ``forward`` returns (B, C, 1 + len(SCORE_METRICS)) logits: imitation, then sub-scores in
    :data:`SCORE_METRICS` order.
    """

    kind = "scoring"

    def __init__(
        self,
        dims: dict[str, int],
        vocabulary: torch.Tensor,
        hidden: int = 64,
        head_hidden: int = 64,
        dropout: float = 0.1,
        imitation_weight: float = 0.0,
    ):
        super().__init__()
        vocabulary = torch.as_tensor(vocabulary, dtype=torch.float32)
        self.encoder = SceneEncoder(dims, hidden=hidden, dropout=dropout)
        self.register_buffer("vocabulary", vocabulary)
        flat = vocabulary.reshape(len(vocabulary), -1)
        self.register_buffer("vocab_mean", flat.mean(0))
        self.register_buffer("vocab_std", flat.std(0).clamp_min(1e-2) if len(flat) > 1 else torch.ones_like(flat[0]))
        self.traj = _mlp([flat.shape[1], hidden, head_hidden])
        self.scene = nn.Linear(hidden, head_hidden)
        self.head = _mlp([head_hidden, head_hidden, 1 + len(SCORE_METRICS)])
        self.imitation_weight = float(imitation_weight)
        weights = torch.tensor(list(WEIGHTED_METRICS.values()))
        self.register_buffer("metric_weights", weights / weights.sum())

    def forward(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        scene = self.scene(self.encoder(f))  # (B, h)
        vocab = (self.vocabulary.reshape(len(self.vocabulary), -1) - self.vocab_mean) / self.vocab_std
        traj = self.traj(vocab)  # (C, h)
        return self.head(torch.relu(scene[:, None, :] + traj[None]))  # (B, C, 1 + M)

    def candidate_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """(B, C) selection score: imitation log-prob × weight + log predicted EPDMS."""
        imitation = torch.log_softmax(logits[..., 0], dim=-1)
        probs = torch.sigmoid(logits[..., 1:])
        n_mult = len(MULTIPLIER_METRICS)
        log_mult = nn.functional.logsigmoid(logits[..., 1 : 1 + n_mult]).sum(-1)
        weighted = (probs[..., n_mult:] * self.metric_weights).sum(-1)
        return self.imitation_weight * imitation + log_mult + torch.log(weighted.clamp_min(1e-6))

    def plan(self, f: dict[str, torch.Tensor]) -> torch.Tensor:
        best = self.candidate_scores(self.forward(f)).argmax(dim=-1)
        return self.vocabulary[best]


def build_model(kind: str, dims: dict[str, int], future_steps: int, vocabulary=None, **kwargs) -> _Planner:
    """A fresh planner of ``kind`` ("regression" or "scoring")."""
    if kind == "regression":
        return RegressionPlanner(dims, future_steps=future_steps, **kwargs)
    if kind == "scoring":
        if vocabulary is None:
            raise ValueError("build_model: the scoring planner needs a vocabulary")
        return ScoringPlanner(dims, vocabulary, **kwargs)
    raise ValueError(f"unknown planner {kind!r}: use 'regression' or 'scoring'")


def soft_imitation_target(vocabulary: torch.Tensor, expert: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """(B, C) softmax over −(mean squared xy distance between candidate and expert) / temperature."""
    d2 = ((vocabulary[None, :, :, :2] - expert[:, None, :, :2]) ** 2).sum(-1).mean(-1)
    return torch.softmax(-d2 / max(temperature, 1e-6), dim=-1)


__all__ = [
    "SCORE_METRICS", "SceneEncoder", "RegressionPlanner", "ScoringPlanner", "build_model",
    "soft_imitation_target",
]
