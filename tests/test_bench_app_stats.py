"""The App benchmarks' statistics over interleaved first opens (no browser needed)."""

import pytest


def test_rotated_starts_each_round_one_later():
    from benchmarks.bench_app_scale import rotated

    kinds = ["a", "b", "c"]
    assert [rotated(kinds, i)[0] for i in range(4)] == ["a", "b", "c", "a"]
    assert sorted(rotated(kinds, 2)) == kinds


def test_paired_gaps_are_round_by_round_differences_with_an_interval_around_their_median():
    from benchmarks.bench_app_scale import paired_gaps

    # The machine drifts by a second over the rounds; the dataset is always 0.3 s behind "bare".
    drift = [0.0, 1.0, 0.2, 0.8, 0.5]
    opens = {"first_visit": {"grid_s": [3.3 + d for d in drift]},
             "bare": {"grid_s": [3.0 + d for d in drift]},
             "same": {"grid_s": [3.3 + d for d in drift]}}
    gaps = paired_gaps(opens)
    assert set(gaps) == {"bare", "same"}
    assert gaps["bare"]["median_s"] == pytest.approx(0.3)
    assert gaps["bare"]["ci95_s"] == pytest.approx([0.3, 0.3])  # paired: the drift cancels
    assert gaps["same"]["median_s"] == pytest.approx(0.0)
    assert gaps["bare"]["pairs"] == 5
    other_base = paired_gaps(opens, base_kind="bare")
    assert other_base["first_visit"]["median_s"] == pytest.approx(-0.3)
