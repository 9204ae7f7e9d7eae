"""Summaries of a :class:`~.selection_protocol.ProtocolResult` with paired bootstrap intervals.

For every method and budget: mean test EPDMS (×100), the paired difference to random at the same
budget and to the best other method, and BRMR against the measured random curve (:mod:`.brmr`) —
each with a percentile interval from the same hierarchical bootstrap draws (splits → seeds →
test scenes). The same is reported per split (seeds and scenes resampled within it).
"""

from __future__ import annotations

import numpy as np

from .brmr import BootstrapDraws, bootstrap_means, brmr_point, monotone_curve, percentile_interval

__all__ = ["summarize", "brmr_table"]


def _stack(result, keys):
    return np.stack([result.per_scene[k] for k in keys]).astype(np.float32) * 100.0  # (M, S, K, N) in points


def brmr_table(method_means: np.ndarray, budgets: np.ndarray, random_means: np.ndarray,
               random_budgets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """BRMR for every (method row, replicate).

    Args:
        method_means: (B, R) a method's EPDMS at each of its B budgets in R replicates.
        budgets: (B,) the method's budgets.
        random_means: (Kr, R) random's EPDMS at its budgets; random_budgets: (Kr,).
    Returns:
        (ratio (B, R), censored (B, R) str array: "", "lower" or "upper").
    """
    b, r = method_means.shape
    ratio = np.empty((b, r))
    censored = np.empty((b, r), dtype=object)
    for j in range(r):
        for i in range(b):
            ratio[i, j], censored[i, j] = brmr_point(budgets[i], method_means[i, j], random_budgets, random_means[:, j])
    return ratio, censored


def _interval_dict(point, samples, level) -> dict:
    lo, hi = percentile_interval(samples, level)
    return {"mean": float(point), "lo": float(lo), "hi": float(hi)}


def _summarize_block(result, per_scene_pts, draws, level, methods, budgets, random_budgets, keys) -> dict:
    """Everything for one resampling scheme (all splits, or one split)."""
    index = {k: i for i, k in enumerate(keys)}
    point = per_scene_pts.mean(axis=(1, 2, 3))  # (M,)
    reps = bootstrap_means(per_scene_pts, draws)  # (M, R)
    rand_rows = [index[("random", b)] for b in random_budgets]
    rand_point, rand_reps = point[rand_rows], reps[rand_rows]
    out = {"random_curve": {"budget": list(map(int, random_budgets)),
                            **{k: v for k, v in zip(("epdms", "lo", "hi"), _curve_bands(rand_point, rand_reps, level))},
                            "monotone": monotone_curve(random_budgets, rand_point).tolist()},
           "methods": {}}
    for m in methods:
        rows = [index[(m, b)] for b in budgets]
        ratio_pt = [brmr_point(b, point[r], random_budgets, rand_point) for b, r in zip(budgets, rows)]
        ratio_reps, cens_reps = brmr_table(reps[rows], np.asarray(budgets), rand_reps, np.asarray(random_budgets))
        entry = {"budget": list(map(int, budgets)), "epdms": [], "vs_random": [], "brmr": []}
        for i, (b, r) in enumerate(zip(budgets, rows)):
            entry["epdms"].append(_interval_dict(point[r], reps[r], level))
            same = index[("random", b)]
            entry["vs_random"].append(_interval_dict(point[r] - point[same], reps[r] - reps[same], level))
            item = _interval_dict(ratio_pt[i][0], ratio_reps[i], level)
            item["censored"] = ratio_pt[i][1]
            item["censored_share"] = float(np.mean(cens_reps[i] != ""))
            entry["brmr"].append(item)
        out["methods"][m] = entry
    for m in methods:  # paired differences to every other method (for "at least as good as every baseline")
        rows = [index[(m, b)] for b in budgets]
        out["methods"][m]["vs_methods"] = {
            other: [_interval_dict(point[r] - point[index[(other, b)]], reps[r] - reps[index[(other, b)]], level)
                    for b, r in zip(budgets, rows)]
            for other in methods if other != m
        }
    return out


def _curve_bands(point, reps, level):
    lo, hi = percentile_interval(reps, level)
    return point.tolist(), lo.tolist(), hi.tolist()


def summarize(result, *, replicates: int = 1000, level: float = 0.95, seed: int = 0) -> dict:
    """Pooled (all splits) and per-split summaries; see the module docstring.

    Returns a JSON-able dict: ``pooled`` and ``per_split[name]`` each with ``random_curve`` and
    ``methods[m]`` (``epdms``, ``vs_random``, ``vs_methods``, ``brmr`` per budget, each
    ``{mean, lo, hi}``), ``extra_tests[name]`` (the same block on each extra test set, e.g. real
    imported scenes, with its number of ``scenes``), plus ``curves`` (method → budget/epdms/lo/hi, the App's plot format).
    """
    methods = sorted({m for m, _ in result.per_scene if m != "random"})
    budgets, random_budgets = list(result.budgets), list(result.random_budgets)
    keys = [("random", b) for b in random_budgets] + [(m, b) for m in methods for b in budgets]
    data = _stack(result, keys)  # (M, S, K, N)
    _, s, k, n = data.shape
    pooled_draws = BootstrapDraws.draw(s, k, n, replicates, seed=seed, resample_splits=s > 1)
    pooled = _summarize_block(result, data, pooled_draws, level, methods, budgets, random_budgets, keys)
    per_split = {}
    for j, name in enumerate(result.splits):
        draws = BootstrapDraws.draw(1, k, n, replicates, seed=seed + 1 + j, resample_splits=False)
        per_split[name] = _summarize_block(result, data[:, j : j + 1], draws, level, methods, budgets, random_budgets, keys)
    extra = {}
    for name, per_scene in sorted(result.extra_per_scene.items()):
        if not all(key in per_scene for key in keys):
            continue
        extra_data = np.stack([per_scene[key] for key in keys]).astype(np.float32) * 100.0
        draws = BootstrapDraws.draw(s, k, extra_data.shape[-1], replicates, seed=seed + 101, resample_splits=s > 1)
        extra[name] = _summarize_block(result, extra_data, draws, level, methods, budgets, random_budgets, keys)
        extra[name]["scenes"] = int(extra_data.shape[-1])
    curves = {"random": {k2: pooled["random_curve"][k2] for k2 in ("budget", "epdms", "lo", "hi")}}
    for m in methods:
        e = pooled["methods"][m]["epdms"]
        curves[m] = {"budget": budgets, "epdms": [x["mean"] for x in e], "lo": [x["lo"] for x in e], "hi": [x["hi"] for x in e]}
    return {"replicates": replicates, "level": level, "methods": methods, "pooled": pooled, "per_split": per_split,
            "extra_tests": extra, "curves": curves, "verdict": verdict(pooled, methods, budgets)}


def verdict(pooled: dict, methods: list[str], budgets: list[int], target: str = "mosaic") -> dict:
    """The issue's acceptance test for ``target``, computed, not eyeballed.

    * BRMR ≤ 0.5 with the interval's upper bound < 1.0 at ≥ 3 of 4 budgets;
    * at least as good as every other method (paired difference interval's upper bound ≥ 0, i.e.
      not significantly worse) at ≥ 3 of 4 budgets; also reported: significantly better
      (lower bound > 0) and better in the mean.
    """
    if target not in pooled["methods"]:
        return {}
    entry = pooled["methods"][target]
    brmr_ok = [x["mean"] <= 0.5 and x["hi"] < 1.0 for x in entry["brmr"]]
    not_worse = [all(entry["vs_methods"][o][i]["hi"] >= 0 for o in entry["vs_methods"]) for i in range(len(budgets))]
    better_mean = [all(entry["vs_methods"][o][i]["mean"] >= 0 for o in entry["vs_methods"]) for i in range(len(budgets))]
    need = max(1, int(np.ceil(0.75 * len(budgets))))
    return {
        "method": target, "budgets": budgets, "brmr_ok": brmr_ok, "not_significantly_worse_than_all": not_worse,
        "mean_at_least_all": better_mean, "brmr_criterion_met": sum(brmr_ok) >= need,
        "baseline_criterion_met": sum(not_worse) >= need, "needed": need,
    }
