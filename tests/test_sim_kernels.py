"""Compiled scorer kernels (autoscale_core.sim.kernels) against the numpy they replaced, on the
inputs the equality tests of tests/test_sim_scoring.py do not reach: long horizons (sums of more
than 128 steps), fine simulation steps, long lanes far apart, and bad scene indices."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_road_batch

from autoscale_core.sim import kernels, lanes


def test_numpy_sum_is_ndarray_sum_at_every_length():
    # numpy sums pairwise: a plain loop below 8 values, 8 partial sums up to 128, halves above;
    # the kernel's DDC sum must decide thresholds as the numpy one did, at any horizon.
    rng = np.random.default_rng(0)
    lengths = list(range(0, 300)) + [383, 511, 640, 1000, 1031, 4096, 5000]
    for n in lengths:
        for _ in range(5):
            a = rng.standard_normal(n) * 10.0 ** rng.uniform(-3, 3, n)
            assert kernels._numpy_sum(a) == a.sum(), n
    rows = rng.standard_normal((50, 161)) * 10.0 ** rng.uniform(-3, 3, (50, 161))
    assert [kernels._numpy_sum(r.copy()) for r in rows] == rows.sum(-1).tolist()  # (B, K1).sum(-1)


@pytest.mark.parametrize("every", [5, 8, 10, 20])
def test_tracker_arc_target_is_the_numpy_formula(every):
    # 10 Hz chords of the spline per 0.5 s interval: `every` = pose dt / dt_sim; from 8 on numpy
    # sums them pairwise (dt_sim <= 0.0625 s), which the kernel summed in a plain loop before.
    rng = np.random.default_rng(every)
    B, F = 200, 8
    ref = np.cumsum(rng.uniform(0, 3, (B, F * every + 1, 2)), 1)
    traj = np.concatenate([ref[:, every::every], np.zeros((B, F, 1))], -1)
    traj[::7, 2, :2] = traj[::7, 1, :2]  # some standing intervals
    start = ref[:, 0]
    out = np.empty((B, F))
    kernels.tracker_arc_target(start[:, 0].copy(), start[:, 1].copy(), traj, ref[..., 0].copy(), ref[..., 1].copy(),
                               every, 0.01, out)
    points = np.concatenate([start[:, None], traj[..., :2]], 1)
    chord = np.linalg.norm(np.diff(points, axis=1), axis=-1)
    fine = np.linalg.norm(np.diff(ref, axis=1), axis=-1).reshape(B, F, every).sum(-1)
    np.testing.assert_array_equal(out, np.cumsum(np.where(chord < 0.01, 0.0, np.maximum(fine, chord)), -1))


def _grid_cells_numpy(scene, c0, c1, nx, ny):
    """The numpy grid registration LaneIndex used before the kernel (stable sort of the keys)."""
    span = c1 - c0 + 1
    counts = span.prod(-1)
    rep = np.repeat(np.arange(len(scene)), counts)
    offs = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    cx = c0[rep, 0] + offs % span[rep, 0]
    cy = c0[rep, 1] + offs // span[rep, 0]
    keys = (scene[rep] * ny + cy) * nx + cx
    order = np.argsort(keys, kind="stable")
    keys = keys[order]
    first = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]) if len(keys) else np.zeros(0, np.int64)
    return keys[first], np.r_[first, len(keys)], rep[order], cx[order], cy[order]


@pytest.mark.parametrize("spread", [30, 3000])
def test_grid_cells_equal_the_numpy_registration(spread):
    # spread 3000: few entries in a huge box of cells, the sorted path (no per-cell counts)
    rng = np.random.default_rng(spread)
    for _ in range(100):
        M = int(rng.integers(1, 40))
        scene = np.sort(rng.integers(0, 3, M)).astype(np.int64)
        c0 = rng.integers(0, spread, (M, 2)).astype(np.int64)
        extent = rng.integers(0, 3, (M, 2))
        extent[rng.random(M) < 0.3, int(rng.integers(0, 2))] = rng.integers(0, spread // 2 + 1)
        c1 = c0 + extent
        nx, ny = int(c1[:, 0].max()) + 1, int(c1[:, 1].max()) + 1
        for got, expected in zip(kernels.grid_cells(scene, c0, c1, nx, ny), _grid_cells_numpy(scene, c0, c1, nx, ny)):
            np.testing.assert_array_equal(got, expected)


def test_lane_index_of_long_lanes_far_apart():
    # Two 3 km straight lanes crossing: 0.1 M grid entries in a box of 36 M cells, which the
    # counting registration allocated (~280 MiB) before the review fix.
    batch = make_road_batch(1)
    batch.lane_valid[:] = False
    batch.lanes[0, 0] = [1500.0, 0.0]
    batch.lanes[0, 0, 0] = [-1500.0, 0.0]
    batch.lanes[0, 1] = [0.0, 1500.0]
    batch.lanes[0, 1, 0] = [0.0, -1500.0]
    batch.lane_valid[0, :2] = True
    batch.lane_width[0, :2] = 3.5
    index = lanes.LaneIndex(batch, 1.0, 0.5)
    assert len(index.lane) == 2
    points = np.array([[1000.0, 1.0], [1.0, -1000.0], [1000.0, 3.0], [700.0, 700.0]])
    np.testing.assert_array_equal(index.on_lane(np.zeros(4, np.int64), points), [True, True, False, False])


def test_scene_index_out_of_range_raises():
    # numba does not check bounds: an index past the last scene read other memory (a route
    # progress of 3e-291 m) where the numpy code raised IndexError.
    batch = make_road_batch(2)
    points = np.array([[5.0, 0.0], [5.0, 0.0]])
    assert lanes.route_progress(batch, np.array([0, 1]), points).shape == (2,)
    with pytest.raises(IndexError):
        lanes.route_progress(batch, np.array([0, 7]), points)
    with pytest.raises(IndexError):
        lanes.points_in_scene_polygons(np.array([0, 2]), points, batch)
    with pytest.raises(ValueError):
        lanes.route_progress(batch, np.array([0]), points)  # one scene index for two points
