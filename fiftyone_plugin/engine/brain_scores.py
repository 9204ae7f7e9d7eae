"""FiftyOne Brain uniqueness / representativeness as plain per-scene scores for the selection protocol.

The core's protocol (``autoscale_core.experiments``) never imports FiftyOne, so the two Brain
baselines are computed here and handed to it as external scorers: ``fn(pool_embeddings,
base_embeddings) -> (n,) scores``. The Brain methods run on exactly the embeddings every other
method sees (the base planner's features), over pool + base together so scenes the planner already
has make nearby pool scenes less unique; only the pool's scores are returned.

A throw-away, non-persistent dataset holds one placeholder sample per scene (no media is read:
the embeddings are passed in) and is deleted afterwards.
"""

from __future__ import annotations

import uuid

import numpy as np

__all__ = ["brain_scores", "BRAIN_SCORERS"]


def brain_scores(pool_embeddings: np.ndarray, base_embeddings: np.ndarray, method: str) -> np.ndarray:
    """(n,) FiftyOne Brain ``method`` ("uniqueness" or "representativeness") scores of the pool.

    Args:
        pool_embeddings: (n, d) float embeddings of the candidate scenes.
        base_embeddings: (m, d) embeddings of the scenes already in the training set (may be (0, d)).
    """
    import fiftyone as fo
    import fiftyone.brain as fob

    if method not in ("uniqueness", "representativeness"):
        raise ValueError(f"unknown FiftyOne Brain method {method!r}: use 'uniqueness' or 'representativeness'")
    pool_embeddings = np.asarray(pool_embeddings, dtype=np.float32)
    base_embeddings = np.asarray(base_embeddings, dtype=np.float32).reshape(-1, pool_embeddings.shape[1])
    both = np.vstack([pool_embeddings, base_embeddings])
    dataset = fo.Dataset(f"autoscale-brain-{uuid.uuid4().hex[:10]}")  # non-persistent
    try:
        dataset.add_samples([fo.Sample(filepath=f"/autoscale/brain-placeholder/{i}.png") for i in range(len(both))],
                            progress=False)
        field = f"autoscale_{method}"
        if method == "uniqueness":
            fob.compute_uniqueness(dataset, uniqueness_field=field, embeddings=both, progress=False)
        else:
            fob.compute_representativeness(dataset, representativeness_field=field, embeddings=both, progress=False)
        scores = np.asarray([np.nan if v is None else v for v in dataset.values(field)], dtype=np.float64)
    finally:
        dataset.delete()
    if method == "representativeness":
        # The Brain divides each cluster's centre distances by their maximum: a cluster whose
        # members all sit on its centre gives 0/0. Those scenes are as central as can be.
        scores = np.where(np.isnan(scores), 1.0, scores)
    if not np.isfinite(scores).all():
        raise ValueError(f"FiftyOne Brain {method} returned {int((~np.isfinite(scores)).sum())} non-finite score(s)")
    return scores[: len(pool_embeddings)]


def _uniqueness(pool_embeddings: np.ndarray, base_embeddings: np.ndarray) -> np.ndarray:
    return brain_scores(pool_embeddings, base_embeddings, "uniqueness")


def _representativeness(pool_embeddings: np.ndarray, base_embeddings: np.ndarray) -> np.ndarray:
    return brain_scores(pool_embeddings, base_embeddings, "representativeness")


# The protocol's external scorers, by method name (module-level functions: picklable).
BRAIN_SCORERS = {"fo_uniqueness": _uniqueness, "fo_representativeness": _representativeness}
