"""Graph-RAE: a self-supervised graph auto-encoder for driving scenes (AutoScale's encoder).

Each scene becomes a small graph at t0: one ego node, the ``max_agents`` nearest agents and the
``max_lanes`` nearest lanes (each lane summarised at its point closest to the ego). Nodes share
one feature layout (``NODE_FEATURES``). Edges are dense but biased: a masked multi-head attention
whose logits get a learned per-head penalty on node distance and a learned bonus on lane-topology
links (successor / neighbour lanes, ego → route lanes). Pooling gives a fixed-size latent; an MLP
decoder reconstructs every node's features (masked MSE). Two regularizers shape the latent:

* contrastive InfoNCE (NT-Xent) between two augmented views of the same scene (node dropout,
  position jitter, a small rotation of the whole scene);
* metric learning: a triplet loss on L2-normalized latents that pulls each scene closer to one of
  its k nearest neighbours under the hand-crafted features than to a random non-neighbour, so the
  latent preserves that kNN graph.

No labels are used.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..scene import CYCLIST, PEDESTRIAN, TL_GREEN, TL_RED, TL_YELLOW, VEHICLE, SceneBatch, lateral_distance_to_lanes

NODE_FEATURES = (
    "x", "y", "cos_heading", "sin_heading", "speed", "accel", "length", "width",
    "is_ego", "is_vehicle", "is_pedestrian", "is_cyclist", "is_other_agent", "is_lane",
    "speed_limit", "intersection", "tl_red", "tl_yellow", "tl_green", "on_route", "curvature", "yaw_rate",
)
_POS_SCALE = 50.0  # m per unit of x, y in node features
_SPEED_SCALE = 20.0  # m/s
_SIZE_SCALE = 5.0  # m


@dataclass
class SceneGraphs:
    """Dense padded graphs for S scenes with M = 1 + max_agents + max_lanes nodes.

    nodes: (S, M, F) float32 in ``NODE_FEATURES`` order (positions / 50 m); mask: (S, M) bool;
    topology: (S, M, M) float32, 1 where two nodes are linked by lane topology.
    """

    nodes: np.ndarray
    mask: np.ndarray
    topology: np.ndarray


def build_graphs(batch: SceneBatch, max_agents: int = 12, max_lanes: int = 12) -> SceneGraphs:
    """Vectorized scene → graph conversion (see the module docstring)."""
    S, h = len(batch), batch.history_steps
    if S == 0:
        raise ValueError("build_graphs: the scene batch is empty")
    F_ = len(NODE_FEATURES)
    col = {name: i for i, name in enumerate(NODE_FEATURES)}
    rows = np.arange(S)[:, None]

    # Ego node.
    ego = np.zeros((S, 1, F_), np.float32)
    e = batch.ego
    ego[:, 0, col["x"]] = e[:, h, 0] / _POS_SCALE
    ego[:, 0, col["y"]] = e[:, h, 1] / _POS_SCALE
    ego[:, 0, col["cos_heading"]] = np.cos(e[:, h, 2])
    ego[:, 0, col["sin_heading"]] = np.sin(e[:, h, 2])
    ego[:, 0, col["speed"]] = e[:, h, 3] / _SPEED_SCALE
    ego[:, 0, col["accel"]] = e[:, h, 4] / _SIZE_SCALE
    ego[:, 0, col["length"]] = batch.ego_size[:, 0] / _SIZE_SCALE
    ego[:, 0, col["width"]] = batch.ego_size[:, 1] / _SIZE_SCALE
    ego[:, 0, col["is_ego"]] = 1.0
    if h >= 1:
        ego[:, 0, col["yaw_rate"]] = np.angle(np.exp(1j * (e[:, h, 2] - e[:, h - 1, 2]))) / batch.dt

    # Agent nodes: the nearest valid agents at t0.
    A = batch.agents.shape[1]
    na = min(max_agents, A)
    agents = np.zeros((S, max_agents, F_), np.float32)
    agent_mask = np.zeros((S, max_agents), bool)
    if na:
        valid = batch.agent_valid[:, :, h] & (batch.agent_type >= 0)
        xy = batch.agents[:, :, h, :2]
        dist = np.where(valid, np.hypot(xy[..., 0], xy[..., 1]), np.inf)
        order = np.argsort(dist, axis=1, kind="stable")[:, :na]
        a = batch.agents[rows, order]  # (S, na, T, 4)
        kind = batch.agent_type[rows, order]
        agent_mask[:, :na] = np.isfinite(dist[rows, order])
        prev = max(h - 2, 0)
        accel = (a[:, :, h, 3] - a[:, :, prev, 3]) / max((h - prev) * batch.dt, 1e-6)
        feats = agents[:, :na]
        feats[..., col["x"]] = a[:, :, h, 0] / _POS_SCALE
        feats[..., col["y"]] = a[:, :, h, 1] / _POS_SCALE
        feats[..., col["cos_heading"]] = np.cos(a[:, :, h, 2])
        feats[..., col["sin_heading"]] = np.sin(a[:, :, h, 2])
        feats[..., col["speed"]] = a[:, :, h, 3] / _SPEED_SCALE
        prev_ok = batch.agent_valid[rows, order][:, :, prev]
        feats[..., col["accel"]] = np.where(prev_ok, accel, 0.0) / _SIZE_SCALE
        feats[..., col["length"]] = batch.agent_size[rows, order][..., 0] / _SIZE_SCALE
        feats[..., col["width"]] = batch.agent_size[rows, order][..., 1] / _SIZE_SCALE
        feats[..., col["is_vehicle"]] = kind == VEHICLE
        feats[..., col["is_pedestrian"]] = kind == PEDESTRIAN
        feats[..., col["is_cyclist"]] = kind == CYCLIST
        feats[..., col["is_other_agent"]] = ~np.isin(kind, (VEHICLE, PEDESTRIAN, CYCLIST))
        agents[:, :na] = np.where(agent_mask[:, :na, None], feats, 0.0)

    # Lane nodes: the nearest lanes, summarised at their point closest to the ego.
    L = batch.lanes.shape[1]
    nl = min(max_lanes, L)
    lanes = np.zeros((S, max_lanes, F_), np.float32)
    lane_mask = np.zeros((S, max_lanes), bool)
    topology = np.zeros((S, 1 + max_agents + max_lanes, 1 + max_agents + max_lanes), np.float32)
    if nl:
        centre = batch.ego[:, h, None, :2]
        dist = lateral_distance_to_lanes(batch, centre)[:, 0]  # (S, L), inf for padding
        order = np.argsort(dist, axis=1, kind="stable")[:, :nl]
        lane_mask[:, :nl] = np.isfinite(dist[rows, order])
        pts = batch.lanes[rows, order]  # (S, nl, P, 2)
        d_pts = np.hypot(pts[..., 0] - centre[:, :, None, 0], pts[..., 1] - centre[:, :, None, 1])
        k = np.argmin(d_pts, axis=2)  # (S, nl)
        P = pts.shape[2]
        k0, k1 = np.clip(k - 1, 0, P - 1), np.clip(k + 1, 0, P - 1)
        take = lambda j: np.take_along_axis(pts, j[..., None, None].repeat(2, -1), axis=2)[:, :, 0]  # noqa: E731
        p, p0, p1 = take(k), take(k0), take(k1)
        direction = p1 - p0
        heading = np.arctan2(direction[..., 1], direction[..., 0])
        total = pts[:, :, -1] - pts[:, :, -2]
        first = pts[:, :, 1] - pts[:, :, 0]
        turn = np.angle(np.exp(1j * (np.arctan2(total[..., 1], total[..., 0]) - np.arctan2(first[..., 1], first[..., 0]))))
        length = np.hypot(*np.diff(pts, axis=2).transpose(3, 0, 1, 2)).sum(-1)
        tl = batch.lane_tl[rows, order][:, :, h]
        route = batch.route_lanes.astype(np.int64)
        on_route = (order[:, :, None] == route[:, None, :]).any(-1)
        feats = lanes[:, :nl]
        feats[..., col["x"]] = p[..., 0] / _POS_SCALE
        feats[..., col["y"]] = p[..., 1] / _POS_SCALE
        feats[..., col["cos_heading"]] = np.cos(heading)
        feats[..., col["sin_heading"]] = np.sin(heading)
        feats[..., col["width"]] = batch.lane_width[rows, order] / _SIZE_SCALE
        feats[..., col["is_lane"]] = 1.0
        feats[..., col["speed_limit"]] = batch.lane_speed_limit[rows, order] / _SPEED_SCALE
        feats[..., col["intersection"]] = batch.lane_is_intersection[rows, order]
        feats[..., col["tl_red"]] = tl == TL_RED
        feats[..., col["tl_yellow"]] = tl == TL_YELLOW
        feats[..., col["tl_green"]] = tl == TL_GREEN
        feats[..., col["on_route"]] = on_route
        feats[..., col["curvature"]] = 10.0 * turn / np.maximum(length, 1.0)
        lanes[:, :nl] = np.where(lane_mask[:, :nl, None], feats, 0.0)
        topology = _lane_topology(batch, order, lane_mask[:, :nl], on_route, max_agents, max_lanes)
    nodes = np.concatenate([ego, agents, lanes], axis=1)
    mask = np.concatenate([np.ones((S, 1), bool), agent_mask, lane_mask], axis=1)
    return SceneGraphs(np.nan_to_num(nodes).astype(np.float32), mask, topology)


def _lane_topology(batch, order, lane_ok, on_route, max_agents, max_lanes) -> np.ndarray:
    """(S, M, M) symmetric 0/1 links: successor or neighbour lanes, and ego ↔ route lanes."""
    S, nl = order.shape
    L = batch.lanes.shape[1]
    M = 1 + max_agents + max_lanes
    rows = np.arange(S)[:, None]
    slot_of = np.full((S, L + 1), -1, np.int64)  # column L absorbs "-1" references
    slot_of[rows, order] = np.where(lane_ok, np.arange(nl)[None, :], -1)
    links = np.concatenate([batch.lane_successors[rows, order], batch.lane_neighbors[rows, order]], axis=2)
    links = np.where(links >= 0, links, L).astype(np.int64)  # (S, nl, K+2)
    target = np.take_along_axis(slot_of, links.reshape(S, -1), axis=1).reshape(links.shape)
    topo = np.zeros((S, M, M), np.float32)
    base = 1 + max_agents
    s_idx, i_idx, k_idx = np.nonzero((target >= 0) & lane_ok[:, :, None])
    j_idx = target[s_idx, i_idx, k_idx]
    topo[s_idx, base + i_idx, base + j_idx] = 1.0
    topo[s_idx, base + j_idx, base + i_idx] = 1.0
    s_r, i_r = np.nonzero(on_route & lane_ok)
    topo[s_r, 0, base + i_r] = 1.0
    topo[s_r, base + i_r, 0] = 1.0
    return topo


# ---------------------------------------------------------------------------------- the network
class _BiasedAttentionLayer(nn.Module):
    """Pre-norm transformer layer; attention logits get −softplus(a_h)·distance + c_h·topology."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ff = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim))
        self.dist_weight = nn.Parameter(torch.linspace(-1.0, 1.0, heads))
        self.topo_weight = nn.Parameter(torch.ones(heads))
        self.drop = nn.Dropout(dropout)

    def forward(self, x, mask, dist, topo):
        B, M, D = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(B, M, 3, self.heads, D // self.heads).permute(2, 0, 3, 1, 4)
        logits = q @ k.transpose(-1, -2) / (D // self.heads) ** 0.5  # (B, H, M, M)
        bias = -F.softplus(self.dist_weight)[None, :, None, None] * dist[:, None] + self.topo_weight[None, :, None, None] * topo[:, None]
        logits = (logits + bias).masked_fill(~mask[:, None, None, :], float("-inf"))
        attn = torch.softmax(logits, dim=-1)
        x = x + self.drop(self.out((attn @ v).transpose(1, 2).reshape(B, M, D)))
        return x + self.drop(self.ff(self.norm2(x)))


class _GraphRAENet(nn.Module):
    def __init__(self, num_nodes, num_features, latent_dim, hidden, heads, layers, dropout):
        super().__init__()
        self.num_nodes, self.num_features = num_nodes, num_features
        self.embed = nn.Sequential(nn.Linear(num_features, hidden), nn.GELU(), nn.Linear(hidden, hidden))
        self.slot = nn.Parameter(torch.zeros(num_nodes, hidden))  # which slot (ego / k-th agent / lane)
        self.layers = nn.ModuleList(_BiasedAttentionLayer(hidden, heads, dropout) for _ in range(layers))
        self.norm = nn.LayerNorm(hidden)
        self.to_latent = nn.Linear(2 * hidden, latent_dim)
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, 4 * hidden), nn.GELU(), nn.Linear(4 * hidden, num_nodes * num_features)
        )
        self.projector = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU(), nn.Linear(latent_dim, latent_dim))

    def encode(self, nodes, mask, topo):
        xy = nodes[..., :2] * (_POS_SCALE / 10.0)  # distances in units of 10 m
        dist = torch.cdist(xy, xy)
        x = self.embed(nodes) + self.slot
        for layer in self.layers:
            x = layer(x, mask, dist, topo)
        x = self.norm(x)
        m = mask.unsqueeze(-1).float()
        pooled = (x * m).sum(1) / m.sum(1).clamp_min(1.0)
        return self.to_latent(torch.cat([x[:, 0], pooled], dim=-1))

    def decode(self, latent):
        return self.decoder(latent).view(-1, self.num_nodes, self.num_features)


def _augment(nodes, mask, gen, node_drop, jitter, max_rotation):
    """A random view: drop non-ego nodes, jitter positions, rotate the scene about the ego."""
    B = nodes.shape[0]
    keep = torch.rand(mask.shape, generator=gen) >= node_drop
    keep[:, 0] = True
    mask = mask & keep
    angle = (torch.rand(B, generator=gen) * 2 - 1) * max_rotation
    c, s = torch.cos(angle)[:, None], torch.sin(angle)[:, None]
    x, y = nodes[..., 0], nodes[..., 1]
    ch, sh = nodes[..., 2], nodes[..., 3]
    heading_valid = (ch.abs() + sh.abs()) > 0
    out = nodes.clone()
    noise = torch.randn(nodes[..., :2].shape, generator=gen) * jitter
    out[..., 0] = c * x - s * y + noise[..., 0]
    out[..., 1] = s * x + c * y + noise[..., 1]
    out[..., 2] = torch.where(heading_valid, c * ch - s * sh, ch)
    out[..., 3] = torch.where(heading_valid, s * ch + c * sh, sh)
    return out * mask.unsqueeze(-1), mask


def info_nce(z1: torch.Tensor, z2: torch.Tensor, temperature: float) -> torch.Tensor:
    """NT-Xent: each row of z1 must pick its own row of z2 among all rows (both directions)."""
    z1, z2 = F.normalize(z1, dim=-1), F.normalize(z2, dim=-1)
    logits = z1 @ z2.T / temperature
    target = torch.arange(len(z1))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@contextmanager
def torch_threads(num_threads: int | None):
    """Temporarily set torch's intra-op threads (None: leave unchanged). On a small, shared
    machine one thread avoids oversubscription, which otherwise slows small models several-fold."""
    if num_threads is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class GraphRAE:
    """Graph relation auto-encoder, scikit-learn style.

    Args:
        latent_dim: size of the scene embedding.
        hidden, heads, layers, dropout: encoder size; ``dropout`` also drives MC-dropout samples.
        max_agents, max_lanes: graph size (nearest agents / lanes kept).
        contrastive_weight, metric_weight: weights of the InfoNCE and kNN-triplet terms (the
            reconstruction term has weight 1).
        knn: neighbours per scene in the hand-crafted kNN graph the metric term preserves.
        batch_size, lr, temperature, margin: optimisation settings.
        num_threads: torch threads while fitting / encoding (None: unchanged).
    """

    def __init__(
        self, latent_dim: int = 64, *, hidden: int = 64, heads: int = 4, layers: int = 2, dropout: float = 0.1,
        max_agents: int = 12, max_lanes: int = 12, contrastive_weight: float = 0.5, metric_weight: float = 0.5,
        knn: int = 10, batch_size: int = 96, lr: float = 2e-3, temperature: float = 0.2, margin: float = 0.2,
        node_drop: float = 0.15, jitter_m: float = 0.5, max_rotation: float = 0.3, num_threads: int | None = None,
    ) -> None:
        self.num_threads = num_threads
        self.latent_dim, self.hidden, self.heads, self.layers, self.dropout = latent_dim, hidden, heads, layers, dropout
        self.max_agents, self.max_lanes = max_agents, max_lanes
        self.contrastive_weight, self.metric_weight, self.knn = contrastive_weight, metric_weight, knn
        self.batch_size, self.lr, self.temperature, self.margin = batch_size, lr, temperature, margin
        self.node_drop, self.jitter_m, self.max_rotation = node_drop, jitter_m, max_rotation
        self.net_: _GraphRAENet | None = None
        self.history_: list[dict[str, float]] = []

    # ---------------------------------------------------------------- training
    def fit(self, batch: SceneBatch, steps: int = 150, seed: int = 0, neighbor_features: np.ndarray | None = None) -> "GraphRAE":
        """Train on ``batch`` for ``steps`` minibatches; deterministic for a given ``seed``.

        ``neighbor_features`` (S, F) defines the kNN graph the metric term preserves; by default
        the standardized hand-crafted features of ``batch``.
        """
        with torch_threads(self.num_threads):
            return self._fit(batch, steps, seed, neighbor_features)

    def _fit(self, batch, steps, seed, neighbor_features):
        from .handcrafted import HandcraftedFeatures

        if len(batch) < 2:
            raise ValueError(f"GraphRAE.fit needs at least 2 scenes, got {len(batch)}")
        torch.manual_seed(seed)
        gen = torch.Generator().manual_seed(seed)
        graphs = build_graphs(batch, self.max_agents, self.max_lanes)
        nodes, mask, topo = (torch.from_numpy(a) for a in (graphs.nodes, graphs.mask, graphs.topology))
        feats = HandcraftedFeatures().fit_transform(batch) if neighbor_features is None else np.asarray(neighbor_features, np.float32)
        if feats.shape[0] != len(batch):
            raise ValueError(f"neighbor_features has {feats.shape[0]} rows for {len(batch)} scenes")
        neighbors = torch.from_numpy(_knn_graph(feats, min(self.knn, len(batch) - 1)))
        self.net_ = _GraphRAENet(nodes.shape[1], nodes.shape[2], self.latent_dim, self.hidden, self.heads, self.layers, self.dropout)
        opt = torch.optim.AdamW(self.net_.parameters(), lr=self.lr, weight_decay=1e-4)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=self.lr, total_steps=max(steps, 1), pct_start=0.1)
        self.net_.train()
        self.history_ = []
        S = len(batch)
        for step in range(steps):
            idx, half = self._minibatch(S, neighbors, gen)
            losses = self._losses(nodes, mask, topo, idx, half, neighbors, gen)
            total = losses["recon"] + self.contrastive_weight * losses["contrastive"] + self.metric_weight * losses["metric"]
            opt.zero_grad()
            total.backward()
            nn.utils.clip_grad_norm_(self.net_.parameters(), 5.0)
            opt.step()
            sched.step()
            if step % 20 == 0 or step == steps - 1:
                self.history_.append({"step": step, "total": float(total.detach()), **{k: float(v.detach()) for k, v in losses.items()}})
        self.net_.eval()
        return self

    def _minibatch(self, num_scenes, neighbors, gen):
        """Half anchors, half one random kNN neighbour of each anchor (so positives are in-batch)."""
        half = max(1, min(self.batch_size, num_scenes) // 2)
        anchors = torch.randperm(num_scenes, generator=gen)[:half]
        pick = torch.randint(neighbors.shape[1], (half,), generator=gen)
        return torch.cat([anchors, neighbors[anchors, pick]]), half

    def _losses(self, nodes, mask, topo, idx, half, neighbors, gen):
        """Reconstruction (denoising: clean features from view 1), InfoNCE and kNN triplet terms."""
        net = self.net_
        n, m, t = nodes[idx], mask[idx], topo[idx]
        aug = dict(gen=gen, node_drop=self.node_drop, jitter=self.jitter_m / _POS_SCALE, max_rotation=self.max_rotation)
        v1, m1 = _augment(n, m, **aug)
        v2, m2 = _augment(n, m, **aug)
        t1, t2 = t * m1[:, :, None] * m1[:, None], t * m2[:, :, None] * m2[:, None]
        z1, z2 = net.encode(torch.cat([v1, v2]), torch.cat([m1, m2]), torch.cat([t1, t2])).split(len(idx))
        err = ((net.decode(z1) - n) ** 2).mean(-1)
        recon_loss = (err * m).sum() / m.sum()
        contrastive = info_nce(net.projector(z1), net.projector(z2), self.temperature)
        # Triplets inside the batch: anchor i, positive = its sampled neighbour (row half + i),
        # negatives = every batch scene that is neither the anchor nor one of its kNN.
        z = F.normalize(0.5 * (z1 + z2), dim=-1)
        a, p = z[:half], z[half:]
        d_pos = (a - p).pow(2).sum(-1)
        d_all = torch.cdist(a, z).pow(2)  # (half, 2·half)
        is_near = (neighbors[idx[:half]][:, :, None] == idx[None, None, :]).any(1) | (idx[:half, None] == idx[None, :])
        hinge = F.relu(d_pos[:, None] - d_all + self.margin) * (~is_near)
        metric = hinge.sum() / (~is_near).sum().clamp_min(1)
        return {"recon": recon_loss, "contrastive": contrastive, "metric": metric}

    # ---------------------------------------------------------------- inference
    def _check_fitted(self):
        if self.net_ is None:
            raise RuntimeError("GraphRAE is not fitted: call fit(batch) first")

    def transform(self, batch: SceneBatch, chunk: int = 1024) -> np.ndarray:
        """(S, latent_dim) float32 embeddings (dropout off)."""
        self._check_fitted()
        return self._encode(self._graph_tensors(batch), chunk, train=False)

    def sample(self, batch: SceneBatch, num_samples: int = 10, seed: int = 0, chunk: int = 1024) -> np.ndarray:
        """(K, S, latent_dim) MC-dropout embeddings: dropout left on, ``num_samples`` passes."""
        self._check_fitted()
        return self._sample(self._graph_tensors(batch), num_samples, seed, chunk)

    def transform_and_sample(self, batch: SceneBatch, num_samples: int = 10, seed: int = 0,
                             chunk: int = 1024) -> tuple[np.ndarray, np.ndarray]:
        """``(transform(batch), sample(batch, num_samples, seed))`` with the scene graphs built
        once (building them costs about as much as one encoder pass)."""
        self._check_fitted()
        graphs = self._graph_tensors(batch)
        return self._encode(graphs, chunk, train=False), self._sample(graphs, num_samples, seed, chunk)

    def _graph_tensors(self, batch):
        graphs = build_graphs(batch, self.max_agents, self.max_lanes)
        return tuple(torch.from_numpy(a) for a in (graphs.nodes, graphs.mask, graphs.topology))

    def _sample(self, graphs, num_samples, seed, chunk):
        torch.manual_seed(seed)
        return np.stack([self._encode(graphs, chunk, train=True) for _ in range(num_samples)])

    def _encode(self, graphs, chunk, train: bool):
        nodes, mask, topo = graphs
        self.net_.train(train)
        out = []
        try:
            with torch.no_grad(), torch_threads(self.num_threads):
                for i in range(0, len(nodes), chunk):
                    sl = slice(i, i + chunk)
                    out.append(self.net_.encode(nodes[sl], mask[sl], topo[sl]).numpy())
        finally:
            self.net_.eval()
        return np.concatenate(out).astype(np.float32)

    def fit_transform(self, batch: SceneBatch, steps: int = 150, seed: int = 0) -> np.ndarray:
        return self.fit(batch, steps=steps, seed=seed).transform(batch)


def _knn_graph(features: np.ndarray, k: int) -> np.ndarray:
    """(S, k) int64 indices of each row's k nearest other rows (exact, faiss)."""
    from .index import KnnIndex

    if k < 1:
        raise ValueError("the kNN graph needs at least 2 scenes")
    _, idx = KnnIndex().fit(features).search(features, k + 1)
    # Drop self-matches (not always at column 0 when there are duplicates).
    self_hit = idx == np.arange(len(features))[:, None]
    out = np.where(self_hit.any(1, keepdims=True), _drop_first_true(idx, self_hit, k), idx[:, :k])
    return out.astype(np.int64)


def _drop_first_true(idx: np.ndarray, flags: np.ndarray, k: int) -> np.ndarray:
    order = np.argsort(flags, axis=1, kind="stable")  # non-self entries first, order kept
    return np.take_along_axis(idx, order, axis=1)[:, :k]
