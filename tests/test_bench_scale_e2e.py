"""The end-to-end scale benchmark on a tiny N: every step runs on distinct generated scenes in a
real (private) MongoDB, the selection is written back, and the JSON says what each step ran on."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # 81 s at load average 4 on 2 cores (two process pools start: generation, MOSAIC pilots)
def test_tiny_end_to_end_run(tmp_path):
    out = tmp_path / "scale_e2e_tiny.json"
    env = {k: v for k, v in os.environ.items() if k not in ("AUTOSCALE_HOME", "FIFTYONE_DATABASE_DIR")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(REPO))
    home = tmp_path / "run"
    cmd = [sys.executable, str(REPO / "benchmarks" / "bench_scale_e2e.py"), "--quick", "--scenes", "600",
           "--pilot", "150", "--pilot-steps", "5", "--rae-steps", "5", "--home", str(home), "--out", str(out)]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["scenes"] == 600 and result["splits"]["train"] > 300
    steps = result["steps"]
    assert list(steps) == ["ingest", "embed", "knn", "cluster", "value", "mosaic_pilot", "allocate", "draw_selection",
                           "compact"]
    for name, step in steps.items():
        assert step["what_it_ran_on"] and step["wall_s"] >= 0, name
        assert step["peak_rss_mb"]["main"] > 0 and len(step["load_avg_before"]) == 3, name
        assert step["disk_bytes_after"]["mongodb_dbpath"] > 0 or "mongodb_dbstats" in step["disk_bytes_after"], name
    assert steps["ingest"]["detail"]["chunks"] == 4 and steps["ingest"]["disk_bytes_after"]["store"] > 0
    # Lean samples (overlays on demand): the selection, and only it, gets its overlays drawn.
    assert steps["draw_selection"]["detail"]["overlays"] == steps["allocate"]["detail"]["budget"]
    assert steps["embed"]["phases"]["graph_rae_fit"]["calls"] == 1
    # The chunks (and their MC-dropout passes) run in the executor's workers; the main process
    # writes the field once and registers the Brain runs.
    assert steps["embed"]["phases"]["write_scene_fields"]["calls"] == 1
    assert steps["embed"]["phases"]["brain_similarity"]["calls"] == 1
    partial = json.loads(out.with_suffix(".partial.json").read_text())  # written after every step
    assert partial["partial"] and list(partial["steps"]) == list(steps)
    assert steps["allocate"]["detail"]["tagged"] == 6  # 1 % of 600, tag + saved view checked in the run
    assert "projection_1e6" in result and "PROJECTION" in result["projection_1e6"]["what"]
    assert out.with_suffix(".md").read_text().startswith("# End-to-end at 600 distinct")
    assert not home.exists()  # the run folder (store, media, private dbpath) is removed afterwards
