"""Crash safety: a write killed with SIGKILL leaves the dataset as before or, after recovery,
fully written — never half a field; the rerun succeeds and the run record shows the failure.

The windows are made deterministic with the test hooks of :mod:`fiftyone_plugin.engine.safe_write`
(``AUTOSCALE_TEST_PAUSE_BEFORE_PUBLISH`` / ``AUTOSCALE_TEST_PAUSE_IN_PUBLISH``): the writer
announces the window on stderr and sleeps; the test kills it there.
"""

from __future__ import annotations

import numpy as np
import pytest
from reliability_helpers import cli_env, kill9, snapshot, start_and_wait_for

VALUE_FIELDS = ("value_s", "value_r", "value_u", "value_q")


@pytest.fixture
def embedded_dataset(fo, dataset_name, autoscale_home):
    """30 world scenes (no images) with hand-crafted embeddings, ready for value scores."""
    from autoscale_core.world import generate_world
    from fiftyone_plugin.engine import scenes
    from fiftyone_plugin.engine.representation import compute_scene_embeddings

    dataset = scenes.create_scene_dataset(dataset_name("crash"), generate_world(30, seed=3), render_images=False)
    compute_scene_embeddings(dataset, "handcrafted", mc_samples=0, brain=False)
    return dataset


def _write_runs(dataset):
    from fiftyone_plugin.engine import runs

    return runs.list_runs(dataset, method="staged_write")


def test_cli_step_killed_before_publish_leaves_dataset_unchanged(embedded_dataset):
    from fiftyone_plugin.engine import safe_write
    from fiftyone_plugin.engine.representation import compute_value_scores

    dataset = embedded_dataset
    before = snapshot(dataset)
    assert not set(VALUE_FIELDS) & set(before["schema"])
    code = ("import sys; from fiftyone_plugin.cli import main; "
            f"sys.exit(main(['value', '--dataset', {dataset.name!r}, '--method', 'handcrafted', '--k', '5']))")
    proc = start_and_wait_for(code, "publishing in", cli_env(AUTOSCALE_TEST_PAUSE_BEFORE_PUBLISH="120"))
    assert safe_write.staging_collections(), "the killed writer had staged its values"
    kill9(proc)

    assert snapshot(dataset) == before  # samples, schema, values, tags, saved views: untouched
    running = [r for r in _write_runs(dataset) if r["status"] == "running"]
    assert len(running) == 1 and running[0]["config"]["phase"] == "staging"

    # The rerun takes the dead writer's lock, rolls its write back and succeeds.
    out = compute_value_scores(dataset, "handcrafted", k=5)
    assert out["num_scenes"] == 30
    dataset.reload()
    for field in VALUE_FIELDS:
        values = np.asarray(dataset.values(field), dtype=float)
        assert values.shape == (30,) and np.isfinite(values).all(), field
    records = _write_runs(dataset)
    failed = [r for r in records if r["status"] == "failed"]
    assert len(failed) == 1 and "rolled back" in failed[0]["results"]["recovery"]
    value_writes = [r["status"] for r in records if "value_q" in r["config"]["fields"]]
    assert sorted(value_writes) == ["completed", "failed"]
    assert safe_write.staging_collections() == []


def test_killed_inside_publish_is_rolled_forward(embedded_dataset):
    from fiftyone_plugin.engine import safe_write

    dataset = embedded_dataset
    ids = dataset.values("scene_id")
    expected_a = np.arange(len(ids), dtype=float) * 0.5
    before = snapshot(dataset)
    code = (
        "import numpy as np, fiftyone as fo\n"
        "from fiftyone_plugin.engine.safe_write import staged_write\n"
        f"ds = fo.load_dataset({dataset.name!r})\n"
        "ids = ds.values('scene_id')\n"
        "staged_write(ds, 'crash_fwd', {'crash_a': np.arange(len(ids)) * 0.5, "
        "'crash_b': np.ones((len(ids), 3), np.float32), 'crash_c': ['x'] * len(ids)}, ids)\n"
    )
    proc = start_and_wait_for(code, "merging in", cli_env(AUTOSCALE_TEST_PAUSE_IN_PUBLISH="120"))
    kill9(proc)

    # Killed between the schema change and the $merge: recovery finishes the publish.
    done = safe_write.recover(dataset)
    assert [d["action"] for d in done] == ["rolled forward (publish completed)"]
    after = snapshot(dataset)
    assert set(after["schema"]) - set(before["schema"]) == {"crash_a", "crash_b", "crash_c"}
    assert snapshot(dataset, exclude=("crash_a", "crash_b", "crash_c"))["hash"] == before["hash"]
    dataset.reload()
    np.testing.assert_allclose(dataset.values("crash_a"), expected_a)
    assert all(np.allclose(v, 1.0) and v.shape == (3,) for v in dataset.values("crash_b"))
    assert dataset.values("crash_c") == ["x"] * len(ids)
    failed = [r for r in _write_runs(dataset) if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["config"]["run"] == "crash_fwd"
    assert safe_write.staging_collections() == []


def test_failed_write_is_rolled_back_in_process(embedded_dataset):
    """A Python-level failure after staging (here: a value of the wrong type for an existing
    field) is an error naming the field, and nothing is written."""
    from fiftyone_plugin.engine import safe_write

    dataset = embedded_dataset
    ids = dataset.values("scene_id")
    safe_write.staged_write(dataset, "ok", {"crash_n": np.zeros(len(ids))}, ids)
    before = snapshot(dataset)
    with pytest.raises(safe_write.SafeWriteError, match="crash_n"):
        safe_write.staged_write(dataset, "bad", {"crash_m": np.ones(len(ids)), "crash_n": ["text"] * len(ids)}, ids)
    assert snapshot(dataset) == before
    assert safe_write.staging_collections() == []
