"""Executors: same results whichever runs the tasks; failures retried, then reported with the input."""

from __future__ import annotations

import os

import numpy as np
import pytest

from autoscale_core.selection import (
    ProcessExecutor,
    SerialExecutor,
    SyntheticOracle,
    TaskError,
    get_executor,
)
from autoscale_core.selection.oracle import OracleTask, run_oracle_task


def _seeded_work(item):
    """Deterministic in its item: a seeded random draw plus a little numpy work."""
    seed, n = item
    rng = np.random.default_rng(seed)
    return float(np.linalg.norm(rng.standard_normal((n, n)) @ rng.standard_normal(n)))


def _fails_on_three(item):
    if item == 3:
        raise ValueError("bad item three")
    return item * 2


class _FlakyOnce:
    """Fails the first attempt of each item (state in files, so it works across processes)."""

    def __init__(self, directory):
        self.directory = str(directory)

    def __call__(self, item):
        marker = os.path.join(self.directory, f"seen-{item}")
        if not os.path.exists(marker):
            open(marker, "w").close()
            raise RuntimeError(f"transient failure on {item}")
        return item + 100


ITEMS = [(seed, 20) for seed in range(6)]


def test_serial_and_process_give_identical_results():
    serial = SerialExecutor().map(_seeded_work, ITEMS)
    process = ProcessExecutor(max_workers=2).map(_seeded_work, ITEMS)
    assert serial == process  # bit-identical and in order
    assert len(set(serial)) == len(serial)


def test_oracle_tasks_identical_across_executors():
    oracle = SyntheticOracle(np.arange(30) % 3, a=[5, 2, 1], tau=[4, 4, 4], noise=0.5)
    tasks = [OracleTask(tuple(range(k)), None, seed) for k, seed in [(3, 0), (10, 1), (25, 2)]]
    fn = run_oracle_task(oracle)
    assert SerialExecutor().map(fn, tasks) == ProcessExecutor(2).map(fn, tasks)


@pytest.mark.parametrize("executor", [SerialExecutor(retries=2), ProcessExecutor(2, retries=1)], ids=["serial", "process"])
def test_failed_task_is_reported_with_its_input(executor):
    with pytest.raises(TaskError) as info:
        executor.map(_fails_on_three, [1, 2, 3, 4])
    err = info.value
    assert err.index == 2 and err.item == 3
    assert err.attempts == executor.retries + 1
    assert "bad item three" in str(err) and "input 3" in str(err)


@pytest.mark.parametrize("kind", ["serial", "process"])
def test_transient_failures_are_retried(tmp_path, kind):
    executor = SerialExecutor(retries=1) if kind == "serial" else ProcessExecutor(2, retries=1)
    assert executor.map(_FlakyOnce(tmp_path), [1, 2, 3]) == [101, 102, 103]


def test_no_retries_means_first_failure_raises(tmp_path):
    with pytest.raises(TaskError, match="transient failure on 1"):
        SerialExecutor(retries=0).map(_FlakyOnce(tmp_path), [1])


def test_empty_items():
    assert SerialExecutor().map(_seeded_work, []) == []
    assert ProcessExecutor(2).map(_seeded_work, []) == []


def test_get_executor_names_and_env(monkeypatch):
    assert isinstance(get_executor("serial"), SerialExecutor)
    ex = get_executor("process:3")
    assert isinstance(ex, ProcessExecutor) and ex.max_workers == 3
    monkeypatch.setenv("AUTOSCALE_EXECUTOR", "serial")
    assert isinstance(get_executor(None), SerialExecutor)
    monkeypatch.setenv("AUTOSCALE_EXECUTOR", "dask")
    with pytest.raises(ValueError, match="AUTOSCALE_EXECUTOR.*'dask'"):
        get_executor(None)
    with pytest.raises(ValueError, match="worker count"):
        get_executor("process:many")
    with pytest.raises(ValueError, match="retries"):
        SerialExecutor(retries=-1)


def test_one_default_for_an_unnamed_executor(monkeypatch):
    """get_executor(None), executor_from_choice(None) and the forms all read default_executor():
    AUTOSCALE_EXECUTOR, else DEFAULT_EXECUTOR; in-process only where the caller asks for it."""
    from autoscale_core.executor import DEFAULT_EXECUTOR, default_executor, executor_from_choice

    monkeypatch.delenv("AUTOSCALE_EXECUTOR", raising=False)
    assert DEFAULT_EXECUTOR == "process" and default_executor() == "process"
    assert isinstance(get_executor(None), ProcessExecutor)
    assert executor_from_choice(None) == executor_from_choice("") == "process"
    assert executor_from_choice(None, in_process_by_default=True) is None  # None = in this process
    assert default_executor(in_process_by_default=True) == "serial"
    monkeypatch.setenv("AUTOSCALE_EXECUTOR", "process:3")
    assert default_executor() == default_executor(in_process_by_default=True) == "process:3"
    assert executor_from_choice(None) == executor_from_choice(None, in_process_by_default=True) == "process:3"
    assert get_executor(None).max_workers == 3
    monkeypatch.setenv("AUTOSCALE_EXECUTOR", "serial")
    assert executor_from_choice(None) is None and isinstance(get_executor(None), SerialExecutor)


def test_ray_executor_matches_serial(tmp_path):
    ray = pytest.importorskip("ray")
    from autoscale_core.selection import RayExecutor

    executor = RayExecutor(num_cpus=2, retries=1)
    try:
        assert executor.map(_seeded_work, ITEMS) == SerialExecutor().map(_seeded_work, ITEMS)
        with pytest.raises(TaskError) as info:
            executor.map(_fails_on_three, [1, 2, 3])
        assert info.value.item == 3 and "bad item three" in str(info.value)
        assert executor.map(_FlakyOnce(tmp_path), [5, 6]) == [105, 106]
    finally:
        executor.close()
    assert not ray.is_initialized()


@pytest.mark.slow
def test_planner_oracle_identical_in_serial_and_process():
    """The real closed loop (torch training + EPDMS scoring) gives bit-identical scores either way."""
    from autoscale_core.selection import PlannerOracle
    from autoscale_core.world import generate_world

    batch = generate_world(16, seed=5)
    oracle = PlannerOracle(batch[:4], batch[4:12], batch[12:], steps=2, train_kwargs={"batch_size": 8})
    tasks = [OracleTask((0, 3, 5), None, 0), OracleTask((1, 2, 7), None, 1)]
    fn = run_oracle_task(oracle)
    serial = SerialExecutor().map(fn, tasks)
    assert serial == ProcessExecutor(1).map(fn, tasks)  # one worker: one torch import
    assert all(0.0 <= s <= 100.0 for s in serial)
    with pytest.raises(ValueError, match="pool index 9 is out of range"):
        oracle(np.array([1, 9]), None, 0)
