"""The AutoScale benchmark's smoke run: the job graph, the table, the journal that resumes a run."""

from __future__ import annotations

import json

import pytest


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory):
    from benchmarks.bench_selection_autoscale import main

    out = tmp_path_factory.mktemp("autoscale_smoke")
    assert main(["--smoke", "--workers", "1", "--out", str(out)]) == 0
    return out


def test_smoke_writes_every_arm_on_test_and_hard(smoke_run):
    result = json.loads((smoke_run / "selection_autoscale_smoke.json").read_text())
    rows = result["summary"]["rows"]
    assert [r["arm"] for r in rows] == ["real_only", "all_synthetic", "random_synthetic", "autoscale"]
    assert result["summary"]["evals"] == ["test", "hard"]
    for row in rows:
        assert row["test"]["minus_real_only"]["per_split"][0]["mean"] == pytest.approx(
            row["test"]["mean"] - rows[0]["test"]["mean"], abs=1e-9)
    assert result["selection_trainings"] == 4  # 1 round x 3 mixtures x 1 seed + 1 confirmation
    assert "## hard" in (smoke_run / "selection_autoscale_smoke.md").read_text()


def test_rerun_resumes_from_the_journal(smoke_run):
    from benchmarks.bench_selection_autoscale import main

    journal = smoke_run / "selection_autoscale_smoke.cache" / "selection_autoscale_smoke.jobs.jsonl"
    lines = journal.read_text().splitlines()
    before = json.loads((smoke_run / "selection_autoscale_smoke.json").read_text())["summary"]
    assert main(["--smoke", "--workers", "1", "--out", str(smoke_run)]) == 0
    after = journal.read_text().splitlines()
    assert after[:len(lines)] == lines  # nothing recomputed: only this invocation's wall time is added
    assert [json.loads(line)["key"] for line in after[len(lines):]] == ["__wall__|1"]
    rerun = json.loads((smoke_run / "selection_autoscale_smoke.json").read_text())
    assert rerun["summary"] == before
    assert rerun["invocations"] == 2


def test_a_journal_of_other_arguments_is_refused(smoke_run):
    from benchmarks.bench_selection_autoscale import main

    with pytest.raises(SystemExit, match="other arguments"):
        main(["--smoke", "--workers", "1", "--failure-quantile", "0.3", "--out", str(smoke_run)])
