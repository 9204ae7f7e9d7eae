"""Synthetic generation and batch scoring through the one executor interface: the same arrays
whichever executor (serial, process pool, Ray) runs the chunks; a failing chunk is reported with
its input, never dropped."""

from __future__ import annotations

import numpy as np
import pytest

from autoscale_core.executor import ProcessExecutor, RayExecutor, SceneChunk, SerialExecutor, TaskError
from autoscale_core.planning.evaluate import evaluate_trajectories
from autoscale_core.sim.batch import score_trajectories_parallel
from autoscale_core.sim.planner import constant_velocity, logged_expert
from autoscale_core.sim.scoring import score_trajectories
from autoscale_core.synthetic.generate import generate_synthetic
from autoscale_core.world import generate_world


@pytest.fixture(scope="module")
def world():
    return generate_world(40, seed=11)


@pytest.fixture(scope="module")
def ray_executor():
    """One local Ray session for the whole module (startup is the slow part)."""
    ray = pytest.importorskip("ray")
    executor = RayExecutor(num_cpus=2)
    yield executor
    executor.close()
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def generated(world):
    """Reference: in-process generation, 4 chunks of 12 parents + a second round."""
    return generate_synthetic(world, scenes_per_parent=2, rounds=2, seed=3, chunk_size=12)


def _assert_same_generation(reference, other):
    (a, ra), (b, rb) = reference, other
    assert len(a) == len(b) > 0
    for name, array in a.arrays().items():
        assert np.array_equal(array, getattr(b, name)), name
    assert {k: list(v) for k, v in a.meta.items()} == {k: list(v) for k, v in b.meta.items()}
    assert ra.rejects.as_dict() == rb.rejects.as_dict()
    assert ra.rounds == rb.rounds
    assert np.array_equal(ra.label_epdms, rb.label_epdms)


def test_generation_identical_serial_and_process(world, generated):
    messages = []
    serial = generate_synthetic(world, scenes_per_parent=2, rounds=2, seed=3, chunk_size=12,
                                executor=SerialExecutor(), progress=lambda f, m: messages.append((f, m)))
    _assert_same_generation(generated, serial)
    assert messages[-1][0] == 1.0 and [f for f, _ in messages] == sorted(f for f, _ in messages)
    _assert_same_generation(generated, generate_synthetic(world, scenes_per_parent=2, rounds=2, seed=3,
                                                          chunk_size=12, executor="process:2"))


def test_generation_identical_on_ray(world, generated, ray_executor):
    _assert_same_generation(generated, generate_synthetic(world, scenes_per_parent=2, rounds=2, seed=3,
                                                          chunk_size=12, executor=ray_executor))


@pytest.fixture(scope="module")
def scoring_inputs(world):
    batch = world[:24]
    plans = np.stack([constant_velocity(batch), logged_expert(batch)], axis=1).astype(np.float64)
    return batch, plans, score_trajectories(batch, plans, reactive=True)


def _assert_same_scores(plain, other):
    for name, value in plain.as_dict().items():
        assert np.array_equal(value, getattr(other, name)), name


@pytest.mark.parametrize("executor", ["serial", ProcessExecutor(max_workers=2)], ids=["serial", "process"])
def test_batch_scoring_identical_to_one_call(scoring_inputs, executor):
    batch, plans, plain = scoring_inputs
    _assert_same_scores(plain, score_trajectories_parallel(batch, plans, executor=executor, scenes_per_task=7,
                                                           reactive=True))


def test_batch_scoring_identical_on_ray(scoring_inputs, ray_executor):
    batch, plans, plain = scoring_inputs
    _assert_same_scores(plain, score_trajectories_parallel(batch, plans, executor=ray_executor, scenes_per_task=8,
                                                           reactive=True))


def test_evaluation_through_executor_matches_in_process(scoring_inputs):
    batch, plans, _ = scoring_inputs
    inline = evaluate_trajectories(batch, plans[:, 0], name="cv")
    chunked = evaluate_trajectories(batch, plans[:, 0], name="cv", executor="serial", scenes_per_task=5)
    for name, value in inline.per_scene().items():
        assert np.array_equal(value, chunked.per_scene()[name], equal_nan=True), name


@pytest.mark.parametrize("which", ["serial", "ray"])
def test_failing_chunk_is_reported_with_its_input(scoring_inputs, which, request):
    batch, plans, _ = scoring_inputs
    executor = SerialExecutor(retries=1) if which == "serial" else request.getfixturevalue("ray_executor")
    bad = plans.copy()
    bad[13, 1, 4, 0] = np.nan  # scene 13 is in the third chunk of 6 (rows 12..17)
    scene = str(batch.meta["scene_id"][13])
    with pytest.raises(TaskError) as info:
        score_trajectories_parallel(batch, bad, executor=executor, scenes_per_task=6)
    error = info.value
    assert error.index == 2 and error.attempts == 2
    assert isinstance(error.item, SceneChunk) and error.item.start == 12
    assert scene in str(error.item.scenes.meta["scene_id"].tolist())
    assert "NaN" in error.cause and scene in error.cause and "rows 12..17" in str(error)
