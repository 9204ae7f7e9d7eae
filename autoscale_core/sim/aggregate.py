"""EPDMS aggregation: raw sub-metrics → EP normalisation, human filter, EPDMS and PDMS."""

from __future__ import annotations

import numpy as np

from .config import FILTERED, ScorerConfig, ScoreResult


def combine(
    raw: dict[str, np.ndarray],
    num_candidates: int,
    reference_progress: np.ndarray | None,
    human_filter: bool,
    ec: np.ndarray,
    config: ScorerConfig,
) -> ScoreResult:
    """Turn raw metrics of (S, C+1) trajectories (last column = logged expert) into scores."""
    C = num_candidates
    cand = {k: v[:, :C].astype(np.float64) if v.dtype != bool else v[:, :C] for k, v in raw.items()}
    expert = {k: v[:, C] for k, v in raw.items()}
    progress = cand["progress"]
    if reference_progress is None:  # best compliant candidate (PDM-Closed's own normalisation)
        safe = (cand["nc"] * cand["dac"] * cand["ddc"] * cand["tlc"]) >= 1.0
        reference_progress = np.where(safe, progress, 0.0).max(-1)
    reference_progress = np.asarray(reference_progress, dtype=np.float64)
    best = reference_progress[:, None]
    ep = np.where(best < config.ep_min_progress, 1.0, np.clip(progress / np.maximum(best, 1e-9), 0.0, 1.0))
    scores = {k: cand[k] for k in ("nc", "dac", "ddc", "tlc", "ttc", "lk", "hc")}
    scores["ec"] = ec.astype(np.float64)
    raw_scores = dict(scores)
    if human_filter:
        for k in FILTERED:
            if k == "ec":
                continue  # the expert has no previous plan: EC = 1 for it
            scores[k] = np.where(expert[k][:, None] < 1.0, 1.0, scores[k])
    w_ep, w_ttc, w_lk, w_hc, w_ec = config.weights
    mult = scores["nc"] * scores["dac"] * scores["ddc"] * scores["tlc"]
    weighted = w_ep * ep + w_ttc * scores["ttc"] + w_lk * scores["lk"] + w_hc * scores["hc"] + w_ec * scores["ec"]
    epdms = mult * weighted / sum(config.weights)
    pdms = raw_scores["nc"] * raw_scores["dac"] * (5.0 * raw_scores["ttc"] + 5.0 * ep + 2.0 * raw_scores["hc"]) / 12.0
    return ScoreResult(
        **{k: scores[k] for k in ("nc", "dac", "ddc", "tlc")},
        ep=ep,
        ttc=scores["ttc"],
        lk=scores["lk"],
        hc=scores["hc"],
        ec=scores["ec"],
        epdms=epdms,
        pdms=pdms,
        collision=cand["collision"].astype(bool),
        progress=progress,
        tl_unknown=cand["tl_unknown"].astype(bool),
        reference_progress=reference_progress,
    )
