"""Compiled (numba) kernels for the EPDMS scorer's per-point loops.

The numpy versions of these queries build (point, candidate) pair arrays before reducing them;
here each point walks its own few candidates and stops at the first hit, without temporaries.
Every kernel does the same float64 arithmetic, in the same order, as the numpy code it replaces
(numba does not contract a*b + c into FMA or reorder sums without ``fastmath``, and its cos,
sin and hypot are the C library's, as numpy's are), so results are bit-identical. (numpy's tan,
arctan and arctan2 are its own SIMD versions, which differ from the C library's in the last bit
for some inputs: the kernels take such values precomputed, or do not need them. The exception
is ``tracker_run``, which calls them and differs from the numpy tracker in the last bit.)
``cache=True`` keeps the machine code on disk (``__pycache__``): the first call in a fresh
environment compiles (about a second or two per kernel), later processes load it.

Units: metres; points are (M, 2) float64 in their scene's frame with a (M,) scene index.
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True)
def _find_cell(cell_keys, key, guess):
    """Position of ``key`` in the sorted ``cell_keys`` (or -1) and its insertion position.

    Queries come in space order (steps of a trajectory, points of a track), so the search
    gallops outwards from ``guess`` (the previous query's position) before bisecting: a few
    cache-local probes instead of a full binary search over all cells.
    """
    n = len(cell_keys)
    if n == 0:
        return -1, 0
    g = min(max(guess, 0), n - 1)
    if cell_keys[g] == key:
        return g, g
    if cell_keys[g] < key:  # answer in (g, n]: gallop right
        lo, step = g + 1, 1
        hi = lo
        while hi < n and cell_keys[hi] < key:
            lo = hi + 1
            hi = lo + step
            step *= 2
        hi = min(hi, n)
    else:  # answer in [0, g]: gallop left
        hi, step = g, 1
        lo = hi - 1
        while lo >= 0 and cell_keys[lo] >= key:
            hi = lo
            lo = hi - step
            step *= 2
        lo = max(lo + 1, 0)
    while lo < hi:  # first position with cell_keys[pos] >= key, in [lo, hi]
        mid = (lo + hi) >> 1
        if cell_keys[mid] < key:
            lo = mid + 1
        else:
            hi = mid
    if lo < n and cell_keys[lo] == key:
        return lo, lo
    return -1, lo


@njit(cache=True)
def _point_cell(scene, x, y, origin_x, origin_y, cell, nx, ny, cell_keys, guess):
    """Occupied grid cell of one point (index into ``cell_keys``) or -1, as ``LaneIndex._cells``,
    and the search position to start the next query from (see :func:`_find_cell`)."""
    cx = np.floor((x - origin_x) / cell)
    cy = np.floor((y - origin_y) / cell)
    if not (cx >= 0 and cy >= 0 and cx < nx and cy < ny):
        return -1, guess
    return _find_cell(cell_keys, (np.int64(scene) * ny + np.int64(cy)) * nx + np.int64(cx), guess)


@njit(cache=True)
def _segment_distance(x, y, ax, ay, dx, dy, len2):
    """Distance (m) from (x, y) to the segment a + t·d, t in [0, 1] (``LaneIndex._distance``)."""
    px, py = x - ax, y - ay
    t = min(max((px * dx + py * dy) / len2, 0.0), 1.0)
    ex, ey = px - t * dx, py - t * dy
    return np.sqrt(ex * ex + ey * ey)


@njit(cache=True)
def on_lane_points(scene, points, origin, cell, nx, ny, cell_keys, cell_start, segs,
                   ax, ay, dx, dy, len2, half_width, cell_full):
    """(M,) bool: point within half a lane width of a centerline segment of its grid cell.

    ``cell_full`` (cells,) bool: the whole cell is on a lane (no distance needed); all False to
    skip the shortcut. The remaining arguments are :class:`~.lanes.LaneIndex` arrays.
    """
    M = len(points)
    out = np.zeros(M, dtype=np.bool_)
    guess = 0
    for i in range(M):
        x, y = points[i, 0], points[i, 1]
        c, guess = _point_cell(scene[i], x, y, origin[0], origin[1], cell, nx, ny, cell_keys, guess)
        if c < 0:
            continue
        if cell_full[c]:
            out[i] = True
            continue
        for e in range(cell_start[c], cell_start[c + 1]):
            g = segs[e]
            if _segment_distance(x, y, ax[g], ay[g], dx[g], dy[g], len2[g]) <= half_width[g]:
                out[i] = True
                break
    return out


@njit(cache=True)
def query_pairs(scene, points, origin, cell, nx, ny, cell_keys, cell_start, segs,
                ax, ay, dx, dy, len2, radius):
    """(point, segment, distance) for every segment of each point's cell within ``radius[segment]``,
    ordered by point, then by the cell's segment order (as ``LaneIndex._pairs``)."""
    M = len(points)
    cells = np.empty(M, dtype=np.int64)
    total = 0
    guess = 0
    for i in range(M):
        c, guess = _point_cell(scene[i], points[i, 0], points[i, 1], origin[0], origin[1], cell, nx, ny, cell_keys,
                               guess)
        cells[i] = c
        if c >= 0:
            total += cell_start[c + 1] - cell_start[c]
    pt = np.empty(total, dtype=np.int64)
    seg = np.empty(total, dtype=np.int64)
    dist = np.empty(total, dtype=np.float64)
    n = 0
    for i in range(M):
        c = cells[i]
        if c < 0:
            continue
        x, y = points[i, 0], points[i, 1]
        for e in range(cell_start[c], cell_start[c + 1]):
            g = segs[e]
            d = _segment_distance(x, y, ax[g], ay[g], dx[g], dy[g], len2[g])
            if d <= radius[g]:
                pt[n], seg[n], dist[n] = i, g, d
                n += 1
    return pt[:n], seg[:n], dist[:n]


@njit(cache=True)
def _in_polygon(s, d, x, y, polygons, vertex_valid, lo, hi):
    """Point (x, y) inside polygon d of scene s (even-odd rule, as
    :func:`autoscale_core.geometry.points_in_polygon_edges`: the polygon closes at its last valid
    vertex; fewer than 3 valid vertices contain nothing). ``lo`` / ``hi`` (S, D, 2): the polygons'
    bounding boxes (+ margin); a point outside one is outside that polygon."""
    if not (x >= lo[s, d, 0] and x <= hi[s, d, 0] and y >= lo[s, d, 1] and y <= hi[s, d, 1]):
        return False
    V = polygons.shape[2]
    count = 0
    for v in range(V):
        count += vertex_valid[s, d, v]
    if count < 3:
        return False
    crossings = 0
    for v in range(V):
        if not vertex_valid[s, d, v]:
            continue
        w = v + 1 if v + 1 < count else 0
        x1, y1 = polygons[s, d, v, 0], polygons[s, d, v, 1]
        x2, y2 = polygons[s, d, w, 0], polygons[s, d, w, 1]
        if (y1 > y) != (y2 > y) and x < x1 + (y - y1) * (x2 - x1) / (y2 - y1):
            crossings += 1
    return crossings % 2 == 1


@njit(cache=True)
def _in_any_polygon(s, x, y, polygons, vertex_valid, lo, hi):
    """The first polygon of scene ``s`` that contains (x, y) (:func:`_in_polygon`), or -1."""
    for d in range(polygons.shape[1]):
        if _in_polygon(s, d, x, y, polygons, vertex_valid, lo, hi):
            return d
    return -1


@njit(cache=True)
def points_in_polygons(scene, points, polygons, vertex_valid, lo, hi):
    """(M,) bool: point inside any drivable polygon of its scene (:func:`_in_any_polygon`).

    polygons (S, D, V, 2) float64, vertex_valid (S, D, V) bool, lo / hi (S, D, 2) bounding boxes.
    """
    out = np.zeros(len(points), dtype=np.bool_)
    for i in range(len(points)):
        out[i] = _in_any_polygon(scene[i], points[i, 0], points[i, 1], polygons, vertex_valid, lo, hi) >= 0
    return out


@njit(cache=True)
def drivable_area_ok(scene, states, cos_h, sin_h, length, width,
                     origin, cell, nx, ny, cell_keys, cell_start, segs, ax, ay, dx, dy, len2,
                     half_width, cell_full, same_next, polygons, vertex_valid, lo, hi):
    """(B,) bool DAC: every footprint corner at every step within half a lane width of a
    centerline of its grid cell, or inside a drivable polygon.

    states (B, K, >=2) box centres x, y, cos_h / sin_h (B, K) of the headings, length / width
    (B,) m; the corners are those of :func:`autoscale_core.geometry.box_corners` (FL, FR, RR,
    RL), same arithmetic. Each corner is followed over time: the segment that contained it one step
    earlier is tried first (one distance), then the next segment of that lane (``same_next``
    (segments,) bool), then its grid cell; off the lanes, the drivable polygon that contained it
    last, then all of them. A trajectory stops at its first failing corner.
    """
    B, K = states.shape[0], states.shape[1]
    out = np.ones(B, dtype=np.bool_)
    guess = 0
    for b in range(B):
        s = scene[b]
        for j in range(4):
            along = (0.5 if j < 2 else -0.5) * length[b]
            across = (0.5 if j == 0 or j == 3 else -0.5) * width[b]
            hint, polygon = -1, -1
            for k in range(K):
                c, sn = cos_h[b, k], sin_h[b, k]
                x = states[b, k, 0] + c * along - sn * across
                y = states[b, k, 1] + sn * along + c * across
                found = False
                if hint >= 0:
                    if _segment_distance(x, y, ax[hint], ay[hint], dx[hint], dy[hint], len2[hint]) <= half_width[hint]:
                        found = True
                    elif same_next[hint]:
                        g = hint + 1
                        if _segment_distance(x, y, ax[g], ay[g], dx[g], dy[g], len2[g]) <= half_width[g]:
                            found = True
                            hint = g
                if not found:
                    ci, guess = _point_cell(s, x, y, origin[0], origin[1], cell, nx, ny, cell_keys, guess)
                    if ci >= 0:
                        if cell_full[ci]:
                            found = True
                        else:
                            for e in range(cell_start[ci], cell_start[ci + 1]):
                                g = segs[e]
                                if _segment_distance(x, y, ax[g], ay[g], dx[g], dy[g], len2[g]) <= half_width[g]:
                                    found = True
                                    hint = g
                                    break
                if not found and polygon >= 0:  # off the lanes: the polygon that held it last first
                    found = _in_polygon(s, polygon, x, y, polygons, vertex_valid, lo, hi)
                if not found:
                    polygon = _in_any_polygon(s, x, y, polygons, vertex_valid, lo, hi)
                    if polygon < 0:
                        out[b] = False
                        break
            if not out[b]:
                break
    return out


@njit(cache=True)
def _mod_2pi(y):
    """``np.mod(y, 2π)`` (numpy's remainder: fmod, then + 2π for a negative result) without the
    fmod call for |y| < 2π, the usual case (fmod(y, 2π) = y exactly there)."""
    two_pi = 2 * np.pi
    if 0.0 <= y < two_pi:
        return y
    if -two_pi < y < 0.0:
        return y + two_pi
    return np.mod(y, two_pi)


@njit(cache=True)
def _wrap_angle(a):
    """:func:`autoscale_core.scene.wrap_angle` for one value: radians to (-pi, pi]."""
    return np.pi - _mod_2pi(np.pi - a)


@njit(cache=True)
def _numpy_sum(a):
    """Sum of a 1-D float64 array in numpy's order, so that thresholds on the sum decide exactly
    as ``ndarray.sum`` does: numpy's pairwise summation (a plain loop below 8 values, 8
    interleaved partial sums up to 128, and above that the two halves, split at a multiple of
    8, summed separately and added)."""
    return 0.0 + _pairwise_sum(a)  # numpy's add.reduce starts from its identity, 0.0


@njit(cache=True)
def _pairwise_sum(a):
    """numpy's ``pairwise_sum``, without recursion: above 128 values, blocks of at most 128
    values found by halving (at multiples of 8) and added back in the same tree order."""
    n = len(a)
    if n <= 128:
        return _pairwise_block(a)
    # Leaves of the halving tree, left to right, with their depth; then a stack evaluation
    # that adds two partial sums whenever the top two have the same parent (equal depth).
    lo = np.empty(n // 8 + 2, dtype=np.int64)
    hi = np.empty(n // 8 + 2, dtype=np.int64)
    depth = np.empty(n // 8 + 2, dtype=np.int64)
    todo_lo = np.empty(64, dtype=np.int64)
    todo_hi = np.empty(64, dtype=np.int64)
    todo_d = np.empty(64, dtype=np.int64)
    top, leaves = 0, 0
    todo_lo[0], todo_hi[0], todo_d[0] = 0, n, 0
    top = 1
    while top > 0:
        top -= 1
        a0, a1, d = todo_lo[top], todo_hi[top], todo_d[top]
        m = a1 - a0
        if m <= 128:
            lo[leaves], hi[leaves], depth[leaves] = a0, a1, d
            leaves += 1
            continue
        n2 = m // 2
        n2 -= n2 % 8
        # push the right half first so that the left one is split (and emitted) first
        todo_lo[top], todo_hi[top], todo_d[top] = a0 + n2, a1, d + 1
        todo_lo[top + 1], todo_hi[top + 1], todo_d[top + 1] = a0, a0 + n2, d + 1
        top += 2
    value = np.empty(leaves)
    level = np.empty(leaves, dtype=np.int64)
    size = 0
    for i in range(leaves):
        value[size], level[size] = _pairwise_block(a[lo[i]:hi[i]]), depth[i]
        size += 1
        while size >= 2 and level[size - 1] == level[size - 2]:
            value[size - 2] = value[size - 2] + value[size - 1]
            level[size - 2] -= 1
            size -= 1
    return value[0]


@njit(cache=True)
def _pairwise_block(a):
    """numpy's ``pairwise_sum`` for n <= 128 values (no leading ``0.0 +``)."""
    n = len(a)
    if n < 8:
        res = 0.0
        for i in range(n):
            res += a[i]
        return res
    r = a[:8].copy()
    i = 8
    while i < n - (n % 8):
        for j in range(8):
            r[j] += a[i + j]
        i += 8
    res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
    while i < n:
        res += a[i]
        i += 1
    return res


@njit(cache=True)
def centre_lane_metrics(scene, states, origin, cell, nx, ny, cell_keys, cell_start, segs, ax, ay, dx, dy, len2,
                        radius, half_width, seg_lane, seg_heading, tangent, lane_tl, tl_index, lane_is_intersection,
                        tl_alignment, lk_alignment, lk_threshold, tl_red, tl_unknown):
    """Lane queries of the ego centre for DDC, TLC and LK, per trajectory.

    Every (step, segment) pair with the centre within the segment's ``radius`` (max(half lane
    width, LK threshold)) is visited once; "in lane" = within half a lane width, "aligned" =
    |Δheading| below ``tl_alignment`` (TLC) or ``lk_alignment`` (LK).

    Args:
        scene: (B,) scene of each trajectory; states (B, K1, 5) x, y, heading, speed, accel.
        origin … len2, radius, half_width, seg_lane, seg_heading, tangent (segments, 2): the
            :class:`~.lanes.LaneIndex`; lane_tl (S, L, T) light codes, tl_index (K1,) their
            time index per step; lane_is_intersection (S, L).

    Returns:
        backwards (B,) m: summed per-step backwards travel along the most favourable containing
        lane (DDC); red (B,) bool: entered an aligned red-light lane it was not in at t0 while in no
        aligned lane whose light is not red (TLC); unknown (B,) bool: entered an aligned lane of
        unknown light state; drift_steps (B,) int: longest run of steps farther than
        ``lk_threshold`` from every aligned centerline, outside intersection lanes (LK).
    """
    B, K1 = states.shape[0], states.shape[1]
    L = lane_tl.shape[1]
    backwards = np.zeros(B)
    red = np.zeros(B, dtype=np.bool_)
    unknown = np.zeros(B, dtype=np.bool_)
    drift_steps = np.zeros(B, dtype=np.int64)
    back = np.zeros(K1)
    start_lane = np.zeros(L, dtype=np.bool_)
    guess = 0
    for b in range(B):
        s = scene[b]
        start_lane[:] = False
        run = 0
        longest = 0
        for k in range(K1):
            x, y, heading = states[b, k, 0], states[b, k, 1], states[b, k, 2]
            disp_x = x - states[b, k - 1, 0] if k > 0 else 0.0
            disp_y = y - states[b, k - 1, 1] if k > 0 else 0.0
            best = -np.inf
            nearest = np.inf
            in_junction = False
            red_new = False
            not_red = False
            ci, guess = _point_cell(s, x, y, origin[0], origin[1], cell, nx, ny, cell_keys, guess)
            if ci >= 0:
                for e in range(cell_start[ci], cell_start[ci + 1]):
                    g = segs[e]
                    d = _segment_distance(x, y, ax[g], ay[g], dx[g], dy[g], len2[g])
                    if not d <= radius[g]:
                        continue
                    lane = seg_lane[g]
                    in_lane = d <= half_width[g]
                    dheading = abs(_wrap_angle(heading - seg_heading[g]))
                    if in_lane:
                        best = max(best, disp_x * tangent[g, 0] + disp_y * tangent[g, 1])
                        if k == 0:
                            start_lane[lane] = True
                        if lane_is_intersection[s, lane]:
                            in_junction = True
                        if dheading < tl_alignment:
                            code = lane_tl[s, lane, tl_index[k]]
                            new_lane = not start_lane[lane]
                            if code == tl_red:
                                red_new |= new_lane
                            else:
                                not_red = True
                            if new_lane and code == tl_unknown:
                                unknown[b] = True
                    if dheading < lk_alignment:
                        nearest = min(nearest, d)
            back[k] = max(-best, 0.0) if np.isfinite(best) else 0.0
            if red_new and not not_red:
                red[b] = True
            if nearest > lk_threshold and not in_junction:
                run += 1
                longest = max(longest, run)
            else:
                run = 0
        backwards[b] = _numpy_sum(back)
        drift_steps[b] = longest
    return backwards, red, unknown, drift_steps


@njit(cache=True)
def _boxes_close(a_lo_x, a_hi_x, a_lo_y, a_hi_y, b_lo_x, b_hi_x, b_lo_y, b_hi_y, reach):
    """Boxes a and b within ``reach`` of each other per axis (as ``collisions._boxes_close``;
    empty boxes, lo = +inf, are never close)."""
    close_x = abs((a_lo_x + a_hi_x) - (b_lo_x + b_hi_x)) <= (a_hi_x - a_lo_x) + (b_hi_x - b_lo_x) + 2.0 * reach
    close_y = abs((a_lo_y + a_hi_y) - (b_lo_y + b_hi_y)) <= (a_hi_y - a_lo_y) + (b_hi_y - b_lo_y) + 2.0 * reach
    return close_x and close_y


@njit(cache=True)
def near_entries(pair_start, C, window, ego_box, agent_box, r_ego, r_pair, states, ego_cos, ego_sin, pair_states,
                 pair_valid, pair_cos, pair_sin, horizons, stopped_speed, box_margin):
    """The (trajectory, agent, step) entries whose centres, now or projected at a TTC horizon,
    are within the two half diagonals (+1e-3 m): the per-step test of
    ``collisions._near_entries``, same arithmetic, on the (scene, agent) pairs left by its first
    prune and, per trajectory, only in the windows of ``window`` steps where the boxes of the
    two centres and their projections come within the half diagonals (+ ``box_margin``).

    Args:
        pair_start: (S+1,) the pairs of scene s are rows pair_start[s]:pair_start[s+1] (agent
            index ascending); C: trajectories per scene (trajectory b = s·C + c).
        ego_box: (4, B, nW) lo_x, hi_x, lo_y, hi_y per trajectory and window; agent_box: (4, P,
            C1, nW) the same for each pair's agent (per trajectory when reactive, C1 = C, else
            C1 = 1); r_ego (B,), r_pair (P,) half diagonals (m).
        states: (B, K1, 5) ego x, y, heading, speed, accel; ego_cos / ego_sin (B, K1) of its headings.
        pair_states: (P, C1, K1, 4) agent x, y, heading, speed; pair_valid (P, C1, K1);
            pair_cos / pair_sin (P, C1, K1).
        horizons: (H,) TTC projection times (s).

    Returns:
        b, p, k (E,) int64: trajectory, pair row and step of each entry, ordered by (b, agent, k).
    """
    S = len(pair_start) - 1
    K1 = states.shape[1]
    C1 = pair_states.shape[1]
    num_windows = ego_box.shape[2]
    tau_max = 0.0
    for tau in horizons:
        tau_max = max(tau_max, tau)
    cap = 1024
    out_b = np.empty(cap, dtype=np.int64)
    out_p = np.empty(cap, dtype=np.int64)
    out_k = np.empty(cap, dtype=np.int64)
    n = 0
    for s in range(S):
        for c in range(C):
            b = s * C + c
            ca = c if C1 > 1 else 0
            for p in range(pair_start[s], pair_start[s + 1]):
                reach = r_ego[b] + r_pair[p] + box_margin
                q = r_ego[b] + r_pair[p] + 1e-3
                reach2 = q * q
                for w in range(num_windows):
                    if not _boxes_close(ego_box[0, b, w], ego_box[1, b, w], ego_box[2, b, w], ego_box[3, b, w],
                                        agent_box[0, p, ca, w], agent_box[1, p, ca, w], agent_box[2, p, ca, w],
                                        agent_box[3, p, ca, w], reach):
                        continue
                    for k in range(w * window, min((w + 1) * window, K1)):
                        if not pair_valid[p, ca, k]:
                            continue
                        dx = pair_states[p, ca, k, 0] - states[b, k, 0]
                        dy = pair_states[p, ca, k, 1] - states[b, k, 1]
                        near = dx * dx + dy * dy <= reach2
                        va, ve = pair_states[p, ca, k, 3], states[b, k, 3]
                        # A projection to tau <= tau_max moves the centres at most tau_max·(|va| +
                        # |ve|) closer: farther apart than that (+ 1e-6 m for rounding), none is near.
                        reachable = np.sqrt(dx * dx + dy * dy) - tau_max * (abs(va) + abs(ve)) <= q + 1e-6
                        if not near and reachable and ve >= stopped_speed:
                            dvx = va * pair_cos[p, ca, k] - ve * ego_cos[b, k]
                            dvy = va * pair_sin[p, ca, k] - ve * ego_sin[b, k]
                            for tau in horizons:
                                px, py = dx + dvx * tau, dy + dvy * tau
                                if px * px + py * py <= reach2:
                                    near = True
                                    break
                        if near:
                            if n == cap:
                                cap *= 2
                                out_b, out_p, out_k = _grow(out_b, cap), _grow(out_p, cap), _grow(out_k, cap)
                            out_b[n], out_p[n], out_k[n] = b, p, k
                            n += 1
    return out_b[:n], out_p[:n], out_k[:n]


@njit(cache=True)
def _grow(a, cap):
    out = np.empty(cap, dtype=a.dtype)
    out[: len(a)] = a
    return out


@njit(cache=True)
def window_boxes(x, y, cos_h, sin_h, speed, valid, tau_max, window):
    """Axis-aligned boxes around centres (x, y) and their constant-velocity projections up to
    ``tau_max`` s (each projection at tau <= tau_max lies on the segment from the centre to the
    one at tau_max), per window of ``window`` steps.

    x, y, cos_h, sin_h (of the heading), speed, valid: (R, K) rows of states over time (steps where ``valid`` is
    False are left out). Returns (4, R, nW) lo_x, hi_x, lo_y, hi_y; a window without valid steps
    is an empty box (lo = +inf, hi = -inf).
    """
    R, K = x.shape
    num_windows = (K + window - 1) // window
    out = np.empty((4, R, num_windows))
    for r in range(R):
        for w in range(num_windows):
            lo_x, hi_x, lo_y, hi_y = np.inf, -np.inf, np.inf, -np.inf
            for k in range(w * window, min((w + 1) * window, K)):
                if not valid[r, k]:
                    continue
                px = speed[r, k] * cos_h[r, k] * tau_max
                py = speed[r, k] * sin_h[r, k] * tau_max
                lo_x = min(lo_x, x[r, k] + min(px, 0.0))
                hi_x = max(hi_x, x[r, k] + max(px, 0.0))
                lo_y = min(lo_y, y[r, k] + min(py, 0.0))
                hi_y = max(hi_y, y[r, k] + max(py, 0.0))
            out[0, r, w], out[1, r, w], out[2, r, w], out[3, r, w] = lo_x, hi_x, lo_y, hi_y
    return out


@njit(cache=True)
def lane_segments_near(lanes, lane_valid, lane_width, bounds, use_bounds, min_radius, pad):
    """(scene, lane, point) of the centerline segments (point → point + 1) of valid lanes that
    can be within their query radius of a box: max(half lane width, ``min_radius``) + ``pad``
    (+ 1e-3 m margin, float32 like the lanes) of the scene's ``bounds`` (S, 4) x0, y0, x1, y1
    (every segment of a valid lane when ``use_bounds`` is False).

    lanes (S, L, P, 2) float32, lane_valid (S, L) bool, lane_width (S, L) float32. Ordered by
    scene, lane, point.
    """
    S, L, P = lanes.shape[0], lanes.shape[1], lanes.shape[2]
    cap = max(16, int(lane_valid.sum()) * (P - 1))
    out_s = np.empty(cap, dtype=np.int64)
    out_l = np.empty(cap, dtype=np.int64)
    out_p = np.empty(cap, dtype=np.int64)
    n = 0
    for s in range(S):
        x0, y0 = np.float32(bounds[s, 0]), np.float32(bounds[s, 1])
        x1, y1 = np.float32(bounds[s, 2]), np.float32(bounds[s, 3])
        for lane in range(L):
            if not lane_valid[s, lane]:
                continue
            # float32 throughout, as numpy computes it on the float32 lane arrays
            r = max(np.float32(0.5) * lane_width[s, lane], np.float32(min_radius)) + np.float32(pad) + np.float32(1e-3)
            for p in range(P - 1):
                ax, ay = lanes[s, lane, p, 0], lanes[s, lane, p, 1]
                bx, by = lanes[s, lane, p + 1, 0], lanes[s, lane, p + 1, 1]
                if use_bounds and not (min(ax, bx) - r <= x1 and max(ax, bx) + r >= x0
                                       and min(ay, by) - r <= y1 and max(ay, by) + r >= y0):
                    continue
                out_s[n], out_l[n], out_p[n] = s, lane, p
                n += 1
    return out_s[:n], out_l[:n], out_p[:n]


@njit(cache=True)
def grid_cells(scene, c0, c1, nx, ny):
    """Register each segment in every grid cell of its padded bounding box, cells c0 … c1 (M, 2)
    int64 (x, y), grouped by cell (key = (scene·ny + cy)·nx + cx, ascending; within a cell, by
    segment index): a counting sort per scene over the box of cells its segments cover.

    ``scene`` (M,) must be non-decreasing. Returns cell_keys (cells,), cell_start (cells + 1,)
    (the entries of cell i are cell_start[i]:cell_start[i + 1]), and per entry its segment, cx, cy.
    """
    M = len(scene)
    total = 0
    for i in range(M):
        total += (c1[i, 0] - c0[i, 0] + 1) * (c1[i, 1] - c0[i, 1] + 1)
    segs = np.empty(total, dtype=np.int64)
    cx = np.empty(total, dtype=np.int64)
    cy = np.empty(total, dtype=np.int64)
    cell_keys = np.empty(total, dtype=np.int64)
    cell_start = np.empty(total + 1, dtype=np.int64)
    counts = np.zeros(0, dtype=np.int64)
    num_cells = 0
    pos = 0
    i0 = 0
    while i0 < M:  # one scene: segments i0 … i1 - 1
        s = scene[i0]
        i1 = i0
        row0, row1, col0, col1 = c0[i0, 1], c1[i0, 1], c0[i0, 0], c1[i0, 0]
        while i1 < M and scene[i1] == s:
            row0, row1 = min(row0, c0[i1, 1]), max(row1, c1[i1, 1])
            col0, col1 = min(col0, c0[i1, 0]), max(col1, c1[i1, 0])
            i1 += 1
        # The scene's cells: a (row1 - row0 + 1) × W box; row-major order = key order.
        W = col1 - col0 + 1
        R = (row1 - row0 + 1) * W
        entries = 0
        for i in range(i0, i1):
            entries += (c1[i, 0] - c0[i, 0] + 1) * (c1[i, 1] - c0[i, 1] + 1)
        if R > 4 * entries + 4096:
            # Few entries spread over a large box (long segments far apart, e.g. an L or a
            # cross of long straight lanes): a counting array over the box would take memory
            # and time in its area, so sort the entries' keys instead (stable: same order).
            num_cells, pos = _grid_cells_sorted(scene, c0, c1, nx, ny, i0, i1, entries, pos, num_cells,
                                                segs, cx, cy, cell_keys, cell_start)
            i0 = i1
            continue
        if len(counts) < R:
            counts = np.zeros(R, dtype=np.int64)
        for i in range(i0, i1):
            for y in range(c0[i, 1], c1[i, 1] + 1):
                for x in range(c0[i, 0], c1[i, 0] + 1):
                    counts[(y - row0) * W + x - col0] += 1
        # Occupied cells in key order; counts become each cell's next write position.
        for r in range(R):
            if counts[r] > 0:
                cell_keys[num_cells] = (s * ny + row0 + r // W) * nx + col0 + r % W
                cell_start[num_cells] = pos
                num_cells += 1
                pos, counts[r] = pos + counts[r], pos
        for i in range(i0, i1):  # scatter in segment order: stable within each cell
            for y in range(c0[i, 1], c1[i, 1] + 1):
                for x in range(c0[i, 0], c1[i, 0] + 1):
                    r = (y - row0) * W + x - col0
                    e = counts[r]
                    segs[e], cx[e], cy[e] = i, x, y
                    counts[r] = e + 1
        counts[:R] = 0
        i0 = i1
    cell_start[num_cells] = pos
    return cell_keys[:num_cells].copy(), cell_start[: num_cells + 1].copy(), segs, cx, cy


@njit(cache=True)
def _grid_cells_sorted(scene, c0, c1, nx, ny, i0, i1, entries, pos, num_cells, segs, cx, cy, cell_keys, cell_start):
    """:func:`grid_cells` for the segments i0 … i1 - 1 of one scene by a stable sort of their
    entries' keys (memory in the entries, not in the scene's box of cells); returns the new
    ``num_cells`` and ``pos``."""
    keys = np.empty(entries, dtype=np.int64)
    seg = np.empty(entries, dtype=np.int64)
    n = 0
    for i in range(i0, i1):  # in segment order, so a stable sort keeps it within each cell
        for y in range(c0[i, 1], c1[i, 1] + 1):
            for x in range(c0[i, 0], c1[i, 0] + 1):
                keys[n], seg[n] = (scene[i] * ny + y) * nx + x, i
                n += 1
    order = np.argsort(keys, kind="mergesort")
    for j in range(entries):
        o = order[j]
        e = pos + j
        key = keys[o]
        if j == 0 or key != keys[order[j - 1]]:
            cell_keys[num_cells] = key
            cell_start[num_cells] = e
            num_cells += 1
        segs[e], cx[e], cy[e] = seg[o], key % nx, (key // nx) % ny
    return num_cells, pos + entries


@njit(cache=True)
def full_cells(cell_start, segs, cx, cy, origin, cell, half_diag, ax, ay, dx, dy, len2, half_width):
    """(cells,) bool: the cell's centre is within half a lane width − ``half_diag`` (− 1e-9) of one
    of its segments, so its whole square is on that lane (``LaneIndex.cell_full``)."""
    num_cells = len(cell_start) - 1
    full = np.zeros(num_cells, dtype=np.bool_)
    for c in range(num_cells):
        for e in range(cell_start[c], cell_start[c + 1]):
            g = segs[e]
            x = (cx[e] + 0.5) * cell + origin[0]
            y = (cy[e] + 0.5) * cell + origin[1]
            if _segment_distance(x, y, ax[g], ay[g], dx[g], dy[g], len2[g]) + half_diag <= half_width[g] - 1e-9:
                full[c] = True
                break
    return full


@njit(cache=True)
def log_bounds(agents, agent_valid):
    """Per agent (S, N): lo_x, hi_x, lo_y, hi_y over its valid log samples (S, N, T, 4) x, y, ·,
    speed (float32 or float64), and the largest |speed| (0 without samples; empty box then)."""
    S, N, T = agents.shape[0], agents.shape[1], agents.shape[2]
    out = np.empty((5, S, N))
    for s in range(S):
        for n in range(N):
            lo_x, hi_x, lo_y, hi_y = np.inf, -np.inf, np.inf, -np.inf
            v_hi, v_lo = 0.0, 0.0
            for t in range(T):
                if not agent_valid[s, n, t]:
                    continue
                x, y, v = np.float64(agents[s, n, t, 0]), np.float64(agents[s, n, t, 1]), np.float64(agents[s, n, t, 3])
                lo_x, hi_x = min(lo_x, x), max(hi_x, x)
                lo_y, hi_y = min(lo_y, y), max(hi_y, y)
                v_hi, v_lo = max(v_hi, v), min(v_lo, v)
            out[0, s, n], out[1, s, n], out[2, s, n], out[3, s, n] = lo_x, hi_x, lo_y, hi_y
            out[4, s, n] = max(v_hi, -v_lo)
    return out


@njit(cache=True)
def route_arc(scene, points, route, route_valid):
    """(M,) arc length (m) along its scene's route polyline of each point's projection on the
    nearest valid segment (as :func:`autoscale_core.geometry.project_on_polyline`, same
    arithmetic; the first nearest segment on ties; segment 0 when none is valid).

    scene (M,), points (M, 2), route (S, Q, 2) float64, route_valid (S, Q) bool (a segment is
    valid when both ends are).
    """
    S, Q = route.shape[0], route.shape[1]
    cum = np.zeros((S, Q))  # arc length at each route point (:func:`polyline_arclength`)
    for s in range(S):
        for q in range(Q - 1):
            sx, sy = route[s, q + 1, 0] - route[s, q, 0], route[s, q + 1, 1] - route[s, q, 1]
            length = np.sqrt(sx * sx + sy * sy) if route_valid[s, q + 1] and route_valid[s, q] else 0.0
            cum[s, q + 1] = cum[s, q] + length
    out = np.empty(len(points))
    for i in range(len(points)):
        s = scene[i]
        best, best_t, best_sq, j = np.inf, 0.0, 0.0, 0
        for q in range(Q - 1):
            ax, ay = route[s, q, 0], route[s, q, 1]
            dx, dy = route[s, q + 1, 0] - ax, route[s, q + 1, 1] - ay
            squared = dx * dx + dy * dy
            px, py = points[i, 0] - ax, points[i, 1] - ay
            t = min(max((px * dx + py * dy) / max(squared, 1e-12), 0.0), 1.0)
            ex, ey = px - t * dx, py - t * dy
            d2 = ex * ex + ey * ey if route_valid[s, q + 1] and route_valid[s, q] else np.inf
            if q == 0 or d2 < best:  # numpy's argmin: the first smallest
                best, best_t, best_sq, j = d2, t, squared, q
        out[i] = cum[s, j] + best_t * np.sqrt(best_sq)
    return out


@njit(cache=True)
def _savgol_at(x, k, index, coef):
    """Savitzky–Golay output k of ``x`` (K,) from banded taps (``comfort._savgol_taps``), summed
    in numpy's order (first tap, then += each further tap)."""
    out = x[index[k, 0]] * coef[k, 0]
    for j in range(1, index.shape[1]):
        out += x[index[k, j]] * coef[k, j]
    return out


@njit(cache=True)
def comfort_ok(states, index, coef0, coef1, coef2, lon_acc_lo, lon_acc_hi, lat_acc_max, yaw_rate_max,
               yaw_acc_max, lon_jerk_max, jerk_max):
    """(B,) bool HC (``comfort.comfort_ok``, same arithmetic): on (B, K, 5) driven states
    x, y, heading, speed, accel, the unwrapped heading's Savitzky–Golay yaw rate and yaw
    acceleration, the smoothed longitudinal acceleration and jerk, the lateral acceleration
    (speed × yaw rate) and the jerk of the acceleration vector stay within the bounds (given
    with their tolerance added). ``index``, ``coef0/1/2``: (K, window) taps of derivative 0/1/2.
    """
    B, K = states.shape[0], states.shape[1]
    out = np.ones(B, dtype=np.bool_)
    heading = np.empty(K)
    accel = np.empty(K)
    ax = np.empty(K)
    ay = np.empty(K)
    for b in range(B):
        # np.unwrap (period 2π): corrections accumulate from the second sample on.
        heading[0] = states[b, 0, 2]
        correction = 0.0
        for k in range(1, K):
            dd = states[b, k, 2] - states[b, k - 1, 2]
            ddmod = _mod_2pi(dd + np.pi) - np.pi
            if ddmod == -np.pi and dd > 0:
                ddmod = np.pi
            step = 0.0 if abs(dd) < np.pi else ddmod - dd
            correction = step if k == 1 else correction + step
            heading[k] = states[b, k, 2] + correction
        for k in range(K):
            accel[k] = states[b, k, 4]
        ok = True
        for k in range(K):
            lon_acc = _savgol_at(accel, k, index, coef0)
            yaw_rate = _savgol_at(heading, k, index, coef1)
            yaw_acc = _savgol_at(heading, k, index, coef2)
            lat_acc = states[b, k, 3] * yaw_rate
            lon_jerk = _savgol_at(accel, k, index, coef1)
            ok &= lon_acc >= lon_acc_lo and lon_acc <= lon_acc_hi and abs(lat_acc) <= lat_acc_max
            ok &= abs(yaw_rate) <= yaw_rate_max and abs(yaw_acc) <= yaw_acc_max and abs(lon_jerk) <= lon_jerk_max
            c, s = np.cos(heading[k]), np.sin(heading[k])
            ax[k] = lon_acc * c - lat_acc * s
            ay[k] = lon_acc * s + lat_acc * c
        if ok:
            for k in range(K):
                if not np.hypot(_savgol_at(ax, k, index, coef1), _savgol_at(ay, k, index, coef1)) <= jerk_max:
                    ok = False
                    break
        out[b] = ok
    return out


@njit(cache=True)
def _boxes_overlap_offset(dx, dy, cos_a, sin_a, length_a, width_a, cos_b, sin_b, length_b, width_b):
    """:func:`autoscale_core.geometry.boxes_overlap_offset` for one pair (same arithmetic)."""
    cos_d = abs(cos_a * cos_b + sin_a * sin_b)
    sin_d = abs(sin_a * cos_b - cos_a * sin_b)
    if abs(dx * cos_a + dy * sin_a) > 0.5 * length_a + 0.5 * length_b * cos_d + 0.5 * width_b * sin_d:
        return False
    if abs(-dx * sin_a + dy * cos_a) > 0.5 * width_a + 0.5 * length_b * sin_d + 0.5 * width_b * cos_d:
        return False
    if abs(dx * cos_b + dy * sin_b) > 0.5 * length_b + 0.5 * length_a * cos_d + 0.5 * width_a * sin_d:
        return False
    return not abs(-dx * sin_b + dy * cos_b) > 0.5 * width_b + 0.5 * length_a * sin_d + 0.5 * width_a * cos_d


@njit(cache=True)
def entry_overlaps(traj, ego, agent, ego_len, ego_wid, agent_len, agent_wid, horizons, stopped_speed, num_traj):
    """Oriented-box tests on the (trajectory, agent, step) entries left by :func:`near_entries`.

    Args:
        traj: (E,) trajectory of each entry; ego (E, >=4) x, y, heading, speed; agent (E, 4)
            x, y, heading, speed; ego_len … agent_wid (E,) box sizes (m).
        horizons: (H,) TTC projection times (s); num_traj: number of trajectories.

    Returns:
        overlap (E,) bool: the boxes overlap; behind (E,) bool: the agent's centre is behind the
        ego's rear bumper; ttc (num_traj,) bool: some entry with the ego moving, no overlap and
        the agent not behind overlaps when both are projected at constant velocity to a horizon.
    """
    E = len(traj)
    overlap = np.zeros(E, dtype=np.bool_)
    behind = np.zeros(E, dtype=np.bool_)
    ttc = np.zeros(num_traj, dtype=np.bool_)
    for i in range(E):
        el, ew, al, aw = ego_len[i], ego_wid[i], agent_len[i], agent_wid[i]
        c, s = np.cos(ego[i, 2]), np.sin(ego[i, 2])
        ca, sa = np.cos(agent[i, 2]), np.sin(agent[i, 2])
        rx, ry = agent[i, 0] - ego[i, 0], agent[i, 1] - ego[i, 1]
        overlap[i] = _boxes_overlap_offset(rx, ry, c, s, el, ew, ca, sa, al, aw)
        behind[i] = rx * c + ry * s < -0.5 * el
        b = traj[i]
        if overlap[i] or behind[i] or not ego[i, 3] >= stopped_speed or ttc[b]:
            continue
        q = 0.5 * np.hypot(el, ew) + 0.5 * np.hypot(al, aw) + 1e-6
        reach2 = q * q
        ve_x, ve_y = ego[i, 3] * c, ego[i, 3] * s
        va_x, va_y = agent[i, 3] * ca, agent[i, 3] * sa
        for tau in horizons:
            dx = (agent[i, 0] + va_x * tau) - (ego[i, 0] + ve_x * tau)
            dy = (agent[i, 1] + va_y * tau) - (ego[i, 1] + ve_y * tau)
            if dx * dx + dy * dy <= reach2 and _boxes_overlap_offset(dx, dy, c, s, el, ew, ca, sa, al, aw):
                ttc[b] = True
                break
    return overlap, behind, ttc


# ------------------------------------------------------------------ ego tracker (kinematics.simulate_ego)
# The whole controller loop per trajectory: the state stays in registers over the 40 steps
# instead of 40 × (three compiled calls + a BLAS product + numpy arctan/tan) over all B.


@njit(cache=True)
def tracker_run(x0, y0, h0, v0, a0, steer0, arc_target, t_target, gain, q, la_x, la_y, dt, wheelbase,
                min_lookahead2, max_jerk_step, max_decel, max_accel, max_steer, max_change, states, cos_h, sin_h,
                la_offset):
    """The whole tracker (all K steps) for B trajectories, one trajectory at a time.

    Args:
        x0, y0, h0, v0, a0, steer0: (B,) start pose (m, rad), speed (m/s), acceleration (m/s²)
            and steering angle (rad).
        arc_target: (B, F) planned arc length (m) at the target times ``t_target`` (F,) s.
        gain, q: (K, F) LQ gains on the arc-length errors and (K,) gain on the previous
            acceleration (``_lq_gains``).
        la_x, la_y: (B, K+1+la_offset) reference positions at steps 0, 1, … (m); the look-ahead
            point at step k is entry k + ``la_offset``.
        states: (B, K+1, 5) output x, y, heading (wrapped to (-pi, pi]), speed, accel.
        cos_h, sin_h: (B, K+1) output cosine and sine of the stored (wrapped) headings, as
            ``np.cos(states[..., 2])`` would give them (the collision and DAC kernels use them).

    Unlike the other kernels this one is not bit-identical to the numpy steps it replaced: the
    gain product is a plain loop (BLAS sums in another order) and arctan/tan are the C
    library's (numpy has its own SIMD versions), so states differ in the last bit (~1e-15 m;
    scores within 3e-13, no 0/1 metric changed on the saved comparison sets; docs/sim.md).
    """
    B, F = arc_target.shape
    K = gain.shape[0]
    for i in range(B):
        x, y, h, v = x0[i], y0[i], h0[i], v0[i]
        a_prev, steer, travelled = a0[i], steer0[i], 0.0
        for k in range(K):
            c, s = np.cos(h), np.sin(h)
            _tracker_store(states, cos_h, sin_h, i, k, x, y, h, v, c, s)
            # Longitudinal: LQ feedback on the arc-length errors at the remaining target times.
            fb = 0.0
            for f in range(F):
                fb += (arc_target[i, f] - travelled - v * (t_target[f] - k * dt)) * gain[k, f]
            a = fb + q[k] * a_prev
            a = min(max(a, a_prev - max_jerk_step), a_prev + max_jerk_step)
            accel = min(max(a, -max_decel), max_accel)
            # Lateral: pure pursuit on the look-ahead point (no change while it is too close).
            dx, dy = la_x[i, k + la_offset] - x, la_y[i, k + la_offset] - y
            lx, ly = dx * c + dy * s, -dx * s + dy * c
            dist2 = lx * lx + ly * ly
            target = np.arctan(wheelbase * (2.0 * ly / max(dist2, 1e-9))) if dist2 > min_lookahead2 else steer
            target = min(max(target, -max_steer), max_steer)
            steer = steer + min(max(target - steer, -max_change), max_change)
            # Kinematic bicycle, midpoint integration, no reversing.
            v_new = max(v + accel * dt, 0.0)
            v_mid = 0.5 * (v + v_new)
            h_new = h + v_mid * np.tan(steer) / wheelbase * dt
            h_mid = 0.5 * (h + h_new)
            x = x + v_mid * np.cos(h_mid) * dt
            y = y + v_mid * np.sin(h_mid) * dt
            travelled = travelled + v_mid * dt
            a_prev = (v_new - v) / dt
            states[i, k, 4] = a_prev
            h, v = h_new, v_new
        _tracker_store(states, cos_h, sin_h, i, K, x, y, h, v, np.cos(h), np.sin(h))
        states[i, K, 4] = states[i, K - 1, 4] if K > 0 else 0.0


@njit(cache=True)
def _tracker_store(states, cos_h, sin_h, i, k, x, y, h, v, cos_unwrapped, sin_unwrapped):
    """Record state k of trajectory i; the heading wrapped to (-pi, pi] (the integration
    itself continues with the unwrapped ``h``). The cosine and sine of the unwrapped heading
    (already needed by pure pursuit) are reused where wrapping leaves the value unchanged."""
    hw = _wrap_angle(h)
    states[i, k, 0], states[i, k, 1], states[i, k, 2], states[i, k, 3] = x, y, hw, v
    if hw == h and h != 0.0:  # (not for ±0: sin keeps the sign of zero)
        cos_h[i, k], sin_h[i, k] = cos_unwrapped, sin_unwrapped
    else:
        cos_h[i, k], sin_h[i, k] = np.cos(hw), np.sin(hw)


@njit(cache=True)
def tracker_arc_target(start_x, start_y, traj, ref_x, ref_y, every, standing_dist, out):
    """Planned arc length (m) at each target pose, (B, F) into ``out``.

    Per interval between consecutive poses (the start position, then ``traj`` (B, F, 3)): the
    larger of the chord and the spline's length as ``every`` chords of the reference positions
    ``ref_x``/``ref_y`` (B, ≥ F·every+1) at the simulation steps; 0 for an interval with a chord
    below ``standing_dist`` (a parked car's position noise must not make it creep); summed.
    Same arithmetic as numpy's norm / sum / cumsum of these values.
    """
    B, F = out.shape
    pieces = np.empty(every)  # the spline's chords over one interval, summed as numpy sums them
    for i in range(B):
        px, py = start_x[i], start_y[i]
        arc = 0.0
        for f in range(F):
            dx, dy = traj[i, f, 0] - px, traj[i, f, 1] - py
            chord = np.sqrt(dx * dx + dy * dy)
            for j in range(every):
                k = f * every + j
                ex, ey = ref_x[i, k + 1] - ref_x[i, k], ref_y[i, k + 1] - ref_y[i, k]
                pieces[j] = np.sqrt(ex * ex + ey * ey)
            fine = _numpy_sum(pieces)  # pairwise from 8 chords on (dt_sim <= pose dt / 8)
            if not chord < standing_dist:
                arc += max(fine, chord)
            out[i, f] = arc
            px, py = traj[i, f, 0], traj[i, f, 1]
