"""The value paper's Table 1 benchmark and its pick diagnosis run end to end in quick mode (tiny
splits: this checks the machinery, not the result)."""

import json


def test_quick_run_writes_every_arm_with_intervals(tmp_path):
    from benchmarks.bench_value_protocol import ARMS, main

    assert main(["--quick", "--out", str(tmp_path)]) == 0
    table = json.loads((tmp_path / "value_protocol_quick.json").read_text())["summary"]["table"]
    assert list(table) == list(ARMS)
    for arm in ARMS[1:]:
        low, high = table[arm]["epdms_minus_random"]["ci95_bootstrap"]
        assert low <= table[arm]["epdms_minus_random"]["mean"] <= high
        assert {"l2_3s_minus_random", "collision_3s_minus_random"} <= set(table[arm])
    assert "| Q |" in (tmp_path / "value_protocol_quick.md").read_text()


def test_pick_diagnosis_describes_every_arm(tmp_path):
    from benchmarks.bench_value_protocol import ARMS
    from benchmarks.diagnose_value_picks import main

    assert main(["--quick", "--splits", "1", "--out", str(tmp_path)]) == 0
    split = next(iter(json.loads((tmp_path / "value_picks_quick.json").read_text())["per_split"].values()))
    assert list(split["arms"]) == list(ARMS)
    assert split["arms"]["hard_mining"]["overlap_with_hard_mining"] == 1.0
    assert all(0.0 <= arm["topology_tv_to_test"] <= 1.0 for arm in split["arms"].values())
