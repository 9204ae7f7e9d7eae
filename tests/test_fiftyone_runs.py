"""Run records on FiftyOne's run API: config, version, status, results; list and delete."""

import numpy as np
import pytest


@pytest.fixture
def runs(fo):
    from fiftyone_plugin.engine import runs

    return runs


def test_record_list_delete(fo, runs, dataset_name):
    ds = fo.Dataset(dataset_name())
    runs.start_run(ds, "train_a", "train_planner", {"epochs": np.int64(3), "lr": 1e-3})
    run = runs.get_run(ds, "train_a")
    assert run["status"] == "running" and run["results"] is None
    assert run["config"] == {"epochs": 3, "lr": 1e-3}
    assert run["autoscale_version"] and run["fiftyone_version"] and run["timestamp"] is not None

    runs.finish_run(ds, "train_a", {"epdms": np.float32(0.75), "curve": np.arange(3)})
    runs.record_run(ds, "eval_b", "evaluate", {"reactive": True}, {"epdms": 0.5}, status="failed")
    listed = runs.list_runs(ds)
    assert [r["key"] for r in listed] == ["train_a", "eval_b"]
    assert listed[0]["status"] == "completed" and listed[0]["results"]["curve"] == [0, 1, 2]
    assert listed[0]["results"]["epdms"] == pytest.approx(0.75)
    assert listed[0]["started_at"] == run["started_at"]  # finishing keeps the start time
    assert listed[1]["status"] == "failed"
    # Visible through FiftyOne's own API too, and it survives a reload from the database.
    assert set(fo.load_dataset(ds.name).list_runs()) == {"train_a", "eval_b"}

    runs.delete_run(ds, "train_a")
    assert [r["key"] for r in runs.list_runs(ds)] == ["eval_b"]
    with pytest.raises(runs.RunRecordError, match="no run 'train_a'"):
        runs.delete_run(ds, "train_a")


def test_bad_run_inputs(fo, runs, dataset_name):
    ds = fo.Dataset(dataset_name())
    with pytest.raises(runs.RunRecordError, match="Python identifier"):
        runs.record_run(ds, "bad key!", "m", {}, {})
    with pytest.raises(runs.RunRecordError, match="status"):
        runs.record_run(ds, "k", "m", {}, {}, status="done")
    with pytest.raises(runs.RunRecordError, match="not JSON-serializable"):
        runs.record_run(ds, "k", "m", {"f": object()}, {})
    assert ds.list_runs() == []


def test_results_may_use_any_key_name(fo, dataset_name):
    from fiftyone_plugin.engine import runs

    ds = fo.Dataset(dataset_name("runs-keys"))
    runs.record_run(ds, "r1", "m", {"a": 1}, {"run_key": "x", "cls": 3, "score": 0.5})
    assert runs.get_run(ds, "r1")["results"] == {"run_key": "x", "cls": 3, "score": 0.5}
