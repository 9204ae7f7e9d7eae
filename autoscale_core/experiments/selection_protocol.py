"""A data-efficiency protocol for selection methods: does a method's pick beat random on unseen data?

Per split (:class:`~.splits.SplitScenes`: base, pool, val, test):

1. A *base planner* is trained on ``base`` (seed ``config.signal_seed``); its signals on the pool
   (embeddings, 1 − EPDMS, MC-dropout uncertainty) are what every method may use
   (:class:`~.methods.SelectionContext`), plus caller-supplied external scores.
2. Each method picks ``budget`` pool scenes for every budget and training seed; methods that train
   to decide (MOSAIC pilots, the best-of-val control) score those runs on ``val`` only.
3. For every (method, budget, training seed) a planner is trained on base + picks and scored in
   closed loop on ``test`` (and any extra test sets); random is measured at ``random_budgets``
   (≥ 6, reaching below the smallest and above the largest method budget).

Everything goes through one :class:`~autoscale_core.executor.Executor`. The result,
:class:`ProtocolResult`, is one tidy table (one row per method × budget × split × seed with the
test EPDMS, sub-scores and trainings used) plus the per-scene test EPDMS array that the paired
bootstrap (:mod:`.brmr`) resamples for intervals: :meth:`ProtocolResult.summary`.

Bad input is refused by :meth:`ProtocolConfig.check` before any training.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Sequence

import numpy as np

from .methods import METHODS, MethodPicks, SelectionContext
from .splits import SplitScenes

__all__ = ["ProtocolConfig", "ProtocolResult", "run_selection_protocol", "default_random_budgets", "TrainAndScore",
           "SUB_SCORES", "load_checkpoints"]

SUB_SCORES = ("nc", "dac", "ddc", "tlc", "ep", "ttc", "lk", "hc", "ec")


def default_random_budgets(budgets: Sequence[int], pool_size: int) -> list[int]:
    """Random-curve budgets: the method budgets, half the smallest and twice the largest (or the
    whole pool), padded by halving below the smallest until there are at least 6."""
    wanted = {int(b) for b in budgets} | {max(1, min(budgets) // 2), min(2 * max(budgets), pool_size)}
    low = min(wanted)
    while len(wanted) < 6 and low > 1:
        low = max(1, low // 2)
        wanted.add(low)
    return sorted(wanted)


@dataclass
class ProtocolConfig:
    """What to run. Sizes in scenes; ``steps`` / ``batch_size`` / ``epochs`` are the one training
    schedule used for every planner (base, pilots, controls, final): a fixed ``steps`` when
    ``epochs`` is None, else ``max(steps, ceil(epochs * n / batch_size))`` for n training scenes
    (:func:`~autoscale_core.selection.oracle.schedule_steps`).

    Attributes:
        budgets: method budgets (scenes added to the base set), each < the pool size.
        seeds: training seeds (≥ 2: intervals need a spread).
        methods: names from :data:`~.methods.METHODS` ("random" is always run, on ``random_budgets``).
        random_budgets: budgets of the measured random curve (None: :func:`default_random_budgets`).
        pilot_seeds: MOSAIC pilot seeds (≥ 3 as published; the fit uses their spread).
        mosaic_ranking: MOSAIC's in-domain ranking, "published" or "failures_first".
        domain_key: scene metadata column that defines MOSAIC's and stratified random's domains.
        bootstrap: replicates of the paired bootstrap; level: interval level.
    """

    budgets: tuple[int, ...] = (250, 500, 1000, 2000)
    seeds: tuple[int, ...] = (0, 1, 2)
    methods: tuple[str, ...] = ("stratified", "kcenter", "uncertainty", "hard_mining", "fo_uniqueness",
                                "fo_representativeness", "mosaic", "mosaic_other_ranking", "random_best_of_val")
    random_budgets: tuple[int, ...] | None = None
    planner: str = "regression"
    steps: int = 300
    batch_size: int = 64
    epochs: float | None = None  # None: every planner trains ``steps``; else max(steps, ceil(epochs n / batch))
    pilot_seeds: int = 3
    mosaic_ranking: str = "published"
    domain_key: str = "topology"
    signal_seed: int = 0
    two_stage: bool = False  # EC by two-stage evaluation: ~6x the scoring cost; off = EC is 1 (committed runs)
    mc_passes: int = 10
    num_threads: int = 1
    bootstrap: int = 1000
    level: float = 0.95

    def check(self, splits: Sequence[SplitScenes] | None = None) -> None:
        """Raise ValueError for anything that would fail or mislead later — before any training."""
        budgets = [int(b) for b in self.budgets]
        if not budgets or min(budgets) < 1 or len(set(budgets)) != len(budgets):
            raise ValueError(f"budgets must be distinct positive integers, got {list(self.budgets)}")
        if len(self.seeds) < 2 or len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"the intervals need at least 2 distinct training seeds, got {list(self.seeds)}")
        unknown = [m for m in self.methods if m not in METHODS]
        if unknown:
            raise ValueError(f"unknown method(s) {unknown}; choose from {sorted(METHODS)}")
        if "random_best_of_val" in self.methods and "mosaic" not in self.methods:
            raise ValueError("random_best_of_val matches MOSAIC's pilot trainings: run it together with 'mosaic'")
        if self.pilot_seeds < 1:
            raise ValueError(f"pilot_seeds must be >= 1, got {self.pilot_seeds}")
        if self.mosaic_ranking not in ("published", "failures_first"):
            raise ValueError(f"mosaic_ranking must be 'published' or 'failures_first', got {self.mosaic_ranking!r}")
        if self.epochs is not None and not self.epochs > 0:
            raise ValueError(f"epochs must be > 0 (or None for a fixed number of steps), got {self.epochs}")
        if self.steps < 1 or self.batch_size < 1 or self.bootstrap < 1 or not 0 < self.level < 1:
            raise ValueError("steps, batch_size and bootstrap must be positive and level in (0, 1)")
        if self.random_budgets is not None:
            rb = sorted(int(b) for b in self.random_budgets)
            if len(rb) < 6 or len(set(rb)) != len(rb) or rb[0] >= min(budgets) or rb[-1] <= max(budgets):
                raise ValueError(f"random_budgets {rb} must be >= 6 distinct budgets reaching below {min(budgets)} "
                                 f"and above {max(budgets)}")
        for split in splits or ():
            self._check_split(split, budgets)

    def _check_split(self, split: SplitScenes, budgets: list[int]) -> None:
        n = len(split.pool)
        if max(budgets) >= n:
            raise ValueError(f"split {split.name}: budget {max(budgets)} must be smaller than the pool ({n} scenes)")
        if self.random_budgets is not None and max(self.random_budgets) > n:
            raise ValueError(f"split {split.name}: random budget {max(self.random_budgets)} exceeds the pool ({n} scenes)")
        if self.domain_key not in split.pool.meta:
            raise ValueError(f"split {split.name}: the pool has no metadata column {self.domain_key!r}")
        domains = np.asarray(split.pool.meta[self.domain_key]).astype(str)
        empty = sorted(set(np.asarray(split.test.meta.get(self.domain_key, domains)).astype(str)) - set(domains))
        if empty:
            raise ValueError(f"split {split.name}: domain(s) {empty} of the test set have no scene in the pool")
        for part in ("base", "val", "test"):
            if len(getattr(split, part)) == 0:
                raise ValueError(f"split {split.name}: the {part} set is empty")

    def resolved_random_budgets(self, pool_size: int) -> list[int]:
        if self.random_budgets is not None:
            return sorted(int(b) for b in self.random_budgets)
        return default_random_budgets(self.budgets, pool_size)


class TrainAndScore:
    """Picklable task runner for one split: train on base + pool[indices], score in closed loop.

    ``__call__(task)`` with an :class:`~autoscale_core.selection.oracle.OracleTask` returns, for
    ``target="test"``, a dict with ``epdms`` (N,) float32 per-scene test EPDMS (0–1), the sub-score
    means and, per extra test set, its mean EPDMS; for ``target="val"`` the mean val EPDMS × 100.
    """

    def __init__(self, split: SplitScenes, config: ProtocolConfig, target: str = "test"):
        from ..selection.oracle import PlannerOracle

        self.split, self.target = split, target
        self.oracle = PlannerOracle(split.base, split.pool, split.val, planner=config.planner, steps=config.steps,
                                    num_threads=config.num_threads, train_kwargs={"batch_size": config.batch_size},
                                    two_stage=config.two_stage, epochs=config.epochs)

    def __call__(self, task):
        if self.target == "val":
            return float(self.oracle(np.asarray(task.indices, dtype=np.int64), None, int(task.seed)))
        from ..planning.evaluate import evaluate_planner
        from ..planning.train import train_planner
        from ..selection.oracle import torch_threads

        batch, weights = self.oracle.training_set(np.asarray(task.indices, dtype=np.int64), None)
        with torch_threads(self.oracle.num_threads):
            trained = train_planner(batch, planner=self.oracle.planner, sample_weight=weights, seed=int(task.seed),
                                    steps=self.oracle.steps_for(len(batch)), **self.oracle.train_kwargs)
            two_stage = self.oracle.two_stage
            result = evaluate_planner(trained, self.split.test, two_stage=two_stage)
            extra_scenes = {name: np.asarray(evaluate_planner(trained, b, two_stage=two_stage).scores["epdms"],
                                             dtype=np.float32) for name, b in self.split.extra_tests.items()}
        scores = result.scores
        out = {"epdms": np.asarray(scores["epdms"], dtype=np.float32), "extra_scenes": extra_scenes,
               "extra_epdms": {name: float(np.mean(v)) for name, v in extra_scenes.items()}}
        out.update({k: float(np.mean(scores[k])) for k in SUB_SCORES if k in scores})
        return out


class _ValTrainer:
    """``fn(tasks) -> [val score]`` through the protocol's executor (a picklable runner per split)."""

    def __init__(self, split: SplitScenes, config: ProtocolConfig, executor):
        self.runner, self.executor = TrainAndScore(split, config, "val"), executor
        self.count = 0

    def __call__(self, tasks):
        self.count += len(tasks)
        return self.executor.map(self.runner, list(tasks))


@dataclass
class ProtocolResult:
    """The tidy table and the per-scene test scores behind it.

    Attributes:
        rows: one dict per (method, budget, split, seed): ``method``, ``budget``, ``split``,
            ``seed``, ``trainings`` (used to decide), ``test_epdms`` (×100), sub-score means (0–1),
            ``extra_epdms`` (extra test sets, ×100).
        per_scene: (method, budget) → (S, K, N) float32 per-scene test EPDMS (0–1).
        splits, seeds: the order of the S and K axes.
        random_budgets, budgets: the measured budgets.
        base: per split, the base planner's test EPDMS (×100) and what the signals cost.
        diagnostics: per split and method, what the method reported (allocations, fits, pilots).
        timings: seconds per stage.
        extra_per_scene: extra test set name (e.g. real imported scenes) → (method, budget) →
            (S, K, N_extra) float32 per-scene EPDMS (0–1); the same planners scored on it.
    """

    rows: list[dict]
    per_scene: dict[tuple[str, int], np.ndarray]
    splits: list[str]
    seeds: list[int]
    budgets: list[int]
    random_budgets: list[int]
    config: dict
    base: dict[str, dict] = field(default_factory=dict)
    diagnostics: dict[str, dict] = field(default_factory=dict)
    split_sizes: dict[str, dict] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    extra_per_scene: dict[str, dict[tuple[str, int], np.ndarray]] = field(default_factory=dict)

    def summary(self, *, replicates: int | None = None, level: float | None = None, seed: int = 0) -> dict:
        """Means, paired differences vs random and BRMR with bootstrap intervals; see :mod:`.summary`."""
        from .summary import summarize

        return summarize(self, replicates=replicates or self.config["bootstrap"], level=level or self.config["level"], seed=seed)


def _signals(split: SplitScenes, config: ProtocolConfig) -> tuple[dict[str, np.ndarray], dict]:
    """Train the base planner and compute its pool signals (one training, shared by all methods)."""
    from ..planning.evaluate import evaluate_planner
    from ..planning.train import train_planner
    from ..selection.baselines import mc_dropout_uncertainty
    from ..selection.oracle import schedule_steps, torch_threads

    with torch_threads(config.num_threads):
        steps = schedule_steps(len(split.base), config.steps, config.epochs, config.batch_size)
        trained = train_planner(split.base, planner=config.planner, seed=config.signal_seed, steps=steps,
                                batch_size=config.batch_size)
        pool_epdms = np.asarray(evaluate_planner(trained, split.pool, two_stage=config.two_stage).scores["epdms"])
        test_epdms = np.asarray(evaluate_planner(trained, split.test, two_stage=config.two_stage).scores["epdms"])
        signals = {
            "pool_embeddings": np.asarray(trained.embed(split.pool), dtype=np.float32),
            "base_embeddings": np.asarray(trained.embed(split.base), dtype=np.float32),
            "importance": 1.0 - pool_epdms,
            "uncertainty": mc_dropout_uncertainty(trained, split.pool, passes=config.mc_passes, seed=config.signal_seed),
        }
    return signals, {"test_epdms": 100.0 * float(test_epdms.mean()), "pool_epdms": 100.0 * float(pool_epdms.mean())}


def _final_tasks(split_index: int, picks: dict[str, MethodPicks]):
    from ..selection.oracle import OracleTask

    keys, tasks = [], []
    for method, mp in picks.items():
        for (budget, seed), indices in sorted(mp.picks.items()):
            keys.append((method, budget, seed))
            tasks.append(OracleTask(tuple(int(i) for i in indices), None, int(seed),
                                    tag=f"split{split_index}:{method}:b={budget}:seed={seed}"))
    return keys, tasks


def run_selection_protocol(
    splits: Sequence[SplitScenes],
    config: ProtocolConfig,
    *,
    executor=None,
    external_scorers: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] | None = None,
    progress: Callable[[str], None] | None = None,
    checkpoint_dir: str | None = None,
) -> ProtocolResult:
    """Run the protocol on every split; see the module docstring.

    Args:
        splits: the world (or real) splits; every test set must have the same number of scenes
            (the bootstrap resamples scenes per split).
        config: what to run (checked first: bad input fails before any training).
        executor: an :class:`~autoscale_core.executor.Executor` or spec (default: ``get_executor``).
        external_scorers: name → ``fn(pool_embeddings (n, d), base_embeddings (m, d)) -> (n,) scores``
            for methods that need them (``fo_uniqueness``, ``fo_representativeness``).
        progress: optional callback for one-line progress messages.
        checkpoint_dir: if given, each finished split is saved there (JSON + NPZ, no pickle) and a
            rerun with the same config and split loads it instead of recomputing: a long run that
            is interrupted resumes at the first unfinished split.
    """
    from ..executor import get_executor

    config.check(splits)
    if not splits:
        raise ValueError("no splits given")
    test_sizes = {len(s.test) for s in splits}
    if len(test_sizes) != 1:
        raise ValueError(f"every split's test set must have the same size for the paired bootstrap, got {sorted(test_sizes)}")
    needed = {m for m in config.methods if m.startswith("fo_")}
    missing = sorted(needed - set(external_scorers or {}))
    if missing:
        raise ValueError(f"method(s) {missing} need external scorers; none given for them")
    say = progress or (lambda _msg: None)
    pool = get_executor(executor)
    methods = ["random"] + [m for m in config.methods if m != "random"]
    budgets = sorted(int(b) for b in config.budgets)
    seeds = [int(s) for s in config.seeds]
    result = ProtocolResult(rows=[], per_scene={}, splits=[s.name for s in splits], seeds=seeds, budgets=budgets,
                            random_budgets=config.resolved_random_budgets(min(len(s.pool) for s in splits)),
                            config=asdict(config))
    scores_by_key: dict[tuple[str, int], list] = {}
    for index, split in enumerate(splits):
        saved = _load_checkpoint(checkpoint_dir, split, config)
        if saved is not None:
            say(f"[{split.name}] loaded from the checkpoint")
            _merge_split(result, scores_by_key, index, len(splits), split.name, saved)
            continue
        started = time.perf_counter()
        say(f"[{split.name}] base planner and pool signals")
        signals, base_info = _signals(split, config)
        ctx = _context(split, index, signals, config, pool, external_scorers or {})
        t_signals = time.perf_counter()
        picks = {}
        for method in methods:
            say(f"[{split.name}] selecting: {method}")
            method_budgets = result.random_budgets if method == "random" else budgets
            picks[method] = METHODS[method](ctx, method_budgets, seeds)
            if method == "mosaic":  # the best-of-val control gets as many extra trainings as MOSAIC used
                ctx.options["control_trainings"] = picks[method].trainings - 1
        t_select = time.perf_counter()
        keys, tasks = _final_tasks(index, picks)
        say(f"[{split.name}] training and scoring {len(tasks)} planners on test")
        outputs = pool.map(TrainAndScore(split, config, "test"), tasks)
        saved = {
            "rows": [_row(m, b, split.name, s, picks[m].trainings, out) for (m, b, s), out in zip(keys, outputs)],
            "scores": {(m, b, s): out["epdms"] for (m, b, s), out in zip(keys, outputs)},
            "extra_scores": {(name, m, b, s): v for (m, b, s), out in zip(keys, outputs)
                             for name, v in out.get("extra_scenes", {}).items()},
            "base": base_info, "sizes": split.sizes(),
            "diagnostics": {m: p.diagnostics for m, p in picks.items() if p.diagnostics},
            "timings": {"signals_s": t_signals - started, "select_s": t_select - t_signals,
                        "train_test_s": time.perf_counter() - t_select},
        }
        _save_checkpoint(checkpoint_dir, split, config, saved)
        _merge_split(result, scores_by_key, index, len(splits), split.name, saved)
    _stack_scores(result, scores_by_key, seeds)
    return result


def _stack_scores(result: ProtocolResult, scores_by_key: dict, seeds: list[int]) -> None:
    """(S, K, N) arrays per (method, budget) — and per extra test set — from the per-split dicts."""
    for key, per_split in scores_by_key.items():
        if any(p is None for p in per_split):
            continue  # an extra test set that some split did not have
        stacked = np.stack([np.stack([by_seed[s] for s in seeds]) for by_seed in per_split])
        if key[0] == _EXTRA:
            result.extra_per_scene.setdefault(key[1], {})[(key[2], key[3])] = stacked
        else:
            result.per_scene[key] = stacked


_EXTRA = "\x00extra"  # marks extra-test-set keys in the per-split score dicts


def _merge_split(result: ProtocolResult, scores_by_key: dict, index: int, num_splits: int, name: str, saved: dict) -> None:
    result.rows.extend(saved["rows"])
    for (method, budget, seed), epdms in saved["scores"].items():
        slot = scores_by_key.setdefault((method, int(budget)), [None] * num_splits)
        slot[index] = (slot[index] or {}) | {int(seed): np.asarray(epdms, dtype=np.float32)}
    for (test_name, method, budget, seed), epdms in saved.get("extra_scores", {}).items():
        slot = scores_by_key.setdefault((_EXTRA, test_name, method, int(budget)), [None] * num_splits)
        slot[index] = (slot[index] or {}) | {int(seed): np.asarray(epdms, dtype=np.float32)}
    result.base[name] = saved["base"]
    result.diagnostics[name] = saved["diagnostics"]
    result.split_sizes[name] = saved["sizes"]
    result.timings[name] = saved["timings"]


def _checkpoint_paths(directory: str, split: SplitScenes) -> tuple[str, str]:
    import os

    return os.path.join(directory, f"{split.name}.json"), os.path.join(directory, f"{split.name}.npz")


def _fingerprint(split: SplitScenes, config: ProtocolConfig) -> str:
    import hashlib
    import json

    ids = [str(i) for part in (split.base, split.pool, split.val, split.test) for i in part.meta["scene_id"]]
    text = json.dumps({"config": asdict(config), "ids": ids}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _save_checkpoint(directory: str | None, split: SplitScenes, config: ProtocolConfig, saved: dict) -> None:
    if not directory:
        return
    import json
    import os

    from .report import jsonable

    os.makedirs(directory, exist_ok=True)
    meta_path, array_path = _checkpoint_paths(directory, split)
    arrays = {f"{m}|{b}|{s}": np.asarray(v, dtype=np.float32) for (m, b, s), v in saved["scores"].items()}
    arrays.update({f"extra:{t}|{m}|{b}|{s}": np.asarray(v, dtype=np.float32)
                   for (t, m, b, s), v in saved.get("extra_scores", {}).items()})
    np.savez_compressed(array_path + ".tmp.npz", **arrays)
    os.replace(array_path + ".tmp.npz", array_path)
    body = {k: v for k, v in saved.items() if k not in ("scores", "extra_scores")} | {"fingerprint": _fingerprint(split, config),
                                                                "config": asdict(config)}
    with open(meta_path + ".tmp", "w") as fh:
        json.dump(jsonable(body), fh)
    os.replace(meta_path + ".tmp", meta_path)  # the JSON lands last: it marks the split complete


def _load_checkpoint(directory: str | None, split: SplitScenes, config: ProtocolConfig) -> dict | None:
    import json
    import os

    if not directory:
        return None
    meta_path, array_path = _checkpoint_paths(directory, split)
    if not (os.path.exists(meta_path) and os.path.exists(array_path)):
        return None
    with open(meta_path) as fh:
        body = json.load(fh)
    if body.get("fingerprint") != _fingerprint(split, config):
        return None  # another config or other scenes: recompute
    return body | _read_score_arrays(array_path)


def _read_score_arrays(path: str) -> dict:
    """``scores`` {(method, budget, seed): (N,)} and ``extra_scores`` {(test, method, budget, seed): (N,)}."""
    scores, extra = {}, {}
    with np.load(path, allow_pickle=False) as arrays:
        for key in arrays.files:
            if key.startswith("extra:"):
                test, method, budget, seed = key[len("extra:"):].split("|")
                extra[(test, method, int(budget), int(seed))] = arrays[key]
            else:
                method, budget, seed = key.split("|")
                scores[(method, int(budget), int(seed))] = arrays[key]
    return {"scores": scores, "extra_scores": extra}


def load_checkpoints(directory: str, config: ProtocolConfig | None = None) -> ProtocolResult:
    """The finished splits saved in ``directory`` as a :class:`ProtocolResult` (no scenes needed):
    summarize a run that was stopped before its last split. Budgets, random budgets and seeds are
    read from the rows; every split must have the same ones."""
    import glob
    import json
    import os

    names = sorted(os.path.basename(p)[: -len(".json")] for p in glob.glob(os.path.join(directory, "*.json"))
                   if os.path.exists(p[: -len(".json")] + ".npz"))
    if not names:
        raise ValueError(f"no finished split in {directory!r} (expected <split>.json + <split>.npz)")
    saved = []
    for name in names:
        with open(os.path.join(directory, name + ".json")) as fh:
            body = json.load(fh)
        body.update(_read_score_arrays(os.path.join(directory, name + ".npz")))
        saved.append(body)
    rows = saved[0]["rows"]
    budgets = sorted({r["budget"] for r in rows if r["method"] != "random"})
    random_budgets = sorted({r["budget"] for r in rows if r["method"] == "random"})
    seeds = sorted({r["seed"] for r in rows})
    config_dict = saved[0].get("config") or asdict(config or ProtocolConfig(budgets=tuple(budgets), seeds=tuple(seeds)))
    result = ProtocolResult(rows=[], per_scene={}, splits=names, seeds=seeds, budgets=budgets,
                            random_budgets=random_budgets, config=config_dict)
    scores_by_key: dict = {}
    for index, (name, body) in enumerate(zip(names, saved)):
        if sorted({r["budget"] for r in body["rows"] if r["method"] != "random"}) != budgets:
            raise ValueError(f"split {name} was run with other budgets than {names[0]}")
        _merge_split(result, scores_by_key, index, len(names), name, body)
    _stack_scores(result, scores_by_key, seeds)
    return result


def _context(split, index, signals, config, executor, external_scorers) -> SelectionContext:
    from ..selection.base import Pool

    pool = Pool(split.pool.meta["scene_id"], embeddings=signals["pool_embeddings"],
                domains=np.asarray(split.pool.meta[config.domain_key]).astype(str),
                scores={"importance": signals["importance"], "uncertainty": signals["uncertainty"]})
    external = {name: np.asarray(fn(signals["pool_embeddings"], signals["base_embeddings"]), dtype=np.float64)
                for name, fn in external_scorers.items()}
    for name, values in external.items():
        if values.shape != (len(pool),) or not np.isfinite(values).all():
            raise ValueError(f"external score {name!r} must be ({len(pool)},) finite values, got shape {values.shape}")
    val_trainer = _ValTrainer(split, config, executor)
    return SelectionContext(
        pool=pool, base_embeddings=signals["base_embeddings"], external_scores=external, split_index=index,
        val_trainer=val_trainer, oracle=val_trainer.runner.oracle, executor=executor,
        options={"pilot_seeds": tuple(1000 + k for k in range(config.pilot_seeds)), "mosaic_ranking": config.mosaic_ranking},
    )


def _row(method, budget, split, seed, trainings, out) -> dict:
    row = {"method": method, "budget": int(budget), "split": split, "seed": int(seed), "trainings": int(trainings),
           "test_epdms": 100.0 * float(np.mean(out["epdms"]))}
    row.update({k: out[k] for k in SUB_SCORES if k in out})
    row["extra_epdms"] = {k: 100.0 * v for k, v in out.get("extra_epdms", {}).items()}
    return row
