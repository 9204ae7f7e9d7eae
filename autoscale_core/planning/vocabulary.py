"""Fixed trajectory vocabularies for the scoring planner (Hydra-MDP-style).

A vocabulary is a (C, F, 3) float32 array of candidate plans (x, y, heading at t = dt … F·dt in
the scene frame). Two deterministic builders:

* :func:`parametric_vocabulary` — constant-acceleration speed profiles × constant curvatures
  integrated with a unicycle model: covers stopping, cruising and turning at any speed without
  data.
* :func:`kmeans_vocabulary` — k-means centres of expert futures (NAVSIM/Hydra-MDP practice),
  topped up with parametric trajectories when there are too few experts.
"""

from __future__ import annotations

import numpy as np

from ..scene import SceneBatch


def parametric_vocabulary(
    initial_speeds: np.ndarray | None = None,
    accelerations: np.ndarray | None = None,
    curvatures: np.ndarray | None = None,
    steps: int = 8,
    dt: float = 0.5,
) -> np.ndarray:
    """(C, steps, 3) trajectories for every (speed, acceleration, curvature) combination.

    Speeds m/s, accelerations m/s², curvatures 1/m. Speeds are clipped at 0 (no reversing).
    """
    v0 = np.asarray([0.0, 2.0, 5.0, 8.0, 11.0, 14.0, 18.0] if initial_speeds is None else initial_speeds)
    acc = np.asarray([-4.0, -2.0, 0.0, 1.5] if accelerations is None else accelerations)
    kappa = np.asarray([-0.1, -0.04, -0.012, 0.0, 0.012, 0.04, 0.1] if curvatures is None else curvatures)
    v0, acc, kappa = (g.ravel() for g in np.meshgrid(v0, acc, kappa, indexing="ij"))
    fine = 5  # integrate at dt/5 for accuracy
    h = dt / fine
    t = np.arange(1, steps * fine + 1) * h
    speed = np.maximum(v0[:, None] + acc[:, None] * t[None], 0.0)  # (C, steps*fine)
    heading = np.cumsum(speed * kappa[:, None] * h, axis=1)
    x = np.cumsum(speed * np.cos(heading) * h, axis=1)
    y = np.cumsum(speed * np.sin(heading) * h, axis=1)
    traj = np.stack([x, y, heading], -1)[:, fine - 1 :: fine]
    return _dedupe(traj.astype(np.float32))


def kmeans_vocabulary(expert: np.ndarray, size: int = 256, seed: int = 0) -> np.ndarray:
    """(size, F, 3) k-means centres of expert futures ``expert`` (S, F, 3), deterministic in ``seed``.

    Always includes the standing-still trajectory. With fewer distinct experts than ``size``
    the remainder is filled with parametric trajectories (farthest from the chosen ones first).
    """
    from sklearn.cluster import KMeans

    expert = np.asarray(expert, np.float32)
    if expert.ndim != 3 or expert.shape[-1] != 3:
        raise ValueError(f"kmeans_vocabulary: expert must be (S, F, 3), got shape {expert.shape}")
    expert = expert[np.isfinite(expert).all(axis=(1, 2))]
    steps = expert.shape[1]
    stop = np.zeros((1, steps, 3), np.float32)
    num_clusters = min(size - 1, len(np.unique(expert.round(1).reshape(len(expert), -1), axis=0)))
    if num_clusters >= 2:
        flat = _flatten(expert)
        km = KMeans(n_clusters=num_clusters, n_init=1, max_iter=50, random_state=seed).fit(flat)
        centres = km.cluster_centers_.reshape(num_clusters, steps, 3) / _SCALE
        vocab = np.concatenate([stop, centres.astype(np.float32)])
    else:
        vocab = stop
    if len(vocab) < size:
        extra = parametric_vocabulary(steps=steps)
        d = ((_flatten(extra)[:, None] - _flatten(vocab)[None]) ** 2).sum(-1).min(1)
        vocab = np.concatenate([vocab, extra[np.argsort(-d, kind="stable")[: size - len(vocab)]]])
    return vocab[:size].astype(np.float32)


def build_vocabulary(batch: SceneBatch | None = None, size: int = 256, method: str = "kmeans", seed: int = 0) -> np.ndarray:
    """A vocabulary of ``size`` trajectories: ``"kmeans"`` on ``batch``'s expert futures or ``"parametric"``."""
    if method == "parametric":
        vocab = parametric_vocabulary()
        if len(vocab) > size:  # deterministic thinning that keeps the spread
            vocab = vocab[np.linspace(0, len(vocab) - 1, size).round().astype(int)]
        return vocab
    if method != "kmeans":
        raise ValueError(f"build_vocabulary: unknown method {method!r} (use 'kmeans' or 'parametric')")
    if batch is None or len(batch) == 0:
        raise ValueError("build_vocabulary: method 'kmeans' needs a non-empty batch with expert futures")
    return kmeans_vocabulary(batch.expert_trajectory(), size=size, seed=seed)


# Heading is weighted so that 0.1 rad counts like 1 m in clustering / distances.
_SCALE = np.asarray([1.0, 1.0, 10.0], np.float32)


def _flatten(traj: np.ndarray) -> np.ndarray:
    return (traj * _SCALE).reshape(len(traj), -1)


def _dedupe(traj: np.ndarray) -> np.ndarray:
    _, first = np.unique(traj.round(2).reshape(len(traj), -1), axis=0, return_index=True)
    return traj[np.sort(first)]
