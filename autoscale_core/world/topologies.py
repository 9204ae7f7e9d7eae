"""Builders of the five road topologies (right-hand traffic; left-hand cities mirror them)."""

from __future__ import annotations

import numpy as np

from .cities import CityProfile
from .layout import Layout, bezier, curvy_line, left_normals, resample_dense


def _unit(a: float) -> np.ndarray:
    return np.array([np.cos(a), np.sin(a)])


def _strip(ref: np.ndarray, lo: float, hi: float, num: int = 10) -> np.ndarray:
    """Polygon between lateral offsets lo < hi of a reference line (num samples per side)."""
    ref = resample_dense(ref, 1.0)
    idx = np.linspace(0, len(ref) - 1, num).round().astype(int)
    normal = left_normals(ref)[idx]
    return np.concatenate([ref[idx] + lo * normal, (ref[idx] + hi * normal)[::-1]])


def highway_merge(city: CityProfile, rng: np.random.Generator) -> Layout:
    lay = Layout("highway_merge")
    lay.merge_lookback = 110.0  # fast streams must sort themselves out long before the gore
    w, v = city.lane_width + 0.2, city.highway_speed
    n = int(rng.integers(2, 5))
    merge = 330
    kappa = rng.uniform(-1 / 900, 1 / 900)
    ref = curvy_line((0.0, 0.0), 0.0, 700, [(180, 0.0), (300, kappa), (220, 0.0)])
    offsets = [k * w for k in range(n)]
    before = lay.add_parallel(ref[: merge + 1], offsets, w, v)
    after = lay.add_parallel(ref[merge:], offsets, w, v)
    end = ref[merge]
    h_end = np.arctan2(*(ref[merge + 1] - ref[merge])[::-1])
    t, nrm = _unit(h_end), _unit(h_end + np.pi / 2)
    start = end - 190 * t - (w + 20) * nrm
    ramp = lay.add_piece(bezier(start, h_end + 0.14, end, h_end, num=200, tension=0.35), w, 0.75 * v)
    for k in range(n):
        lay.add_path([before[k], after[k]], maneuver="straight", ego_weight=1.0 / n,
                     ego_s=(150.0, 440.0), curb_lane=k == 0)
    ramp_len = lay.pieces[ramp].num_samples * 0.5
    lay.add_path([ramp, after[0]], maneuver="merge", ego_weight=0.6, ego_s=(ramp_len - 50, ramp_len + 15))
    lay.polygons.append(_strip(ref[merge:], -w / 2 - 2.5, -w / 2 + 0.2))  # right shoulder
    lay.polygons.append(_strip(ref[: merge + 1], -w / 2 - 2.5, -w / 2 + 0.2))
    return lay


def rural_curve(city: CityProfile, rng: np.random.Generator) -> Layout:
    lay = Layout("rural_curve")
    w, v = city.lane_width, city.rural_speed
    segments, total = [], 0.0
    while total < 700:
        seg = float(rng.uniform(50, 150))
        kind = rng.random()
        k = 0.0 if kind < 0.3 else rng.choice([-1, 1]) * rng.uniform(1 / 300, 1 / 70)
        segments.append((seg, k))
        total += seg
    ref = curvy_line((0.0, 0.0), 0.0, 700, segments)
    fwd, bwd = lay.add_parallel(ref, [-w / 2, w / 2], w, v, reverse=(1,))
    lay.add_path([fwd], maneuver="straight", ego_weight=1.0, ego_s=(150.0, 470.0))
    lay.add_path([bwd], maneuver="straight", ego_weight=0.4, ego_s=(150.0, 470.0))
    return lay


def intersection(city: CityProfile, rng: np.random.Generator) -> Layout:
    lay = Layout("intersection")
    lay.merge_lookback = 0.0  # signal phases separate the streams that share an exit lane
    w, v = city.lane_width, city.urban_speed
    arm = 160.0
    box = w + 6.0  # stop lines at this radius; crosswalks just inside
    angles = np.arange(4) * np.pi / 2 + rng.uniform(-0.12, 0.12, 4)
    ins, outs, ends, starts = [], [], [], []
    for a in angles:
        u, nrm = _unit(a), _unit(a + np.pi / 2)
        p_far, p_near = u * (box + arm) + nrm * w / 2, u * box + nrm * w / 2
        ins.append(lay.add_piece(np.stack([p_far, p_near]), w, v))
        q_near, q_far = u * box - nrm * w / 2, u * (box + arm) - nrm * w / 2
        outs.append(lay.add_piece(np.stack([q_near, q_far]), w, v))
        ends.append(p_near)
        starts.append(q_near)
        r0, r1 = box - 4.0, box - 1.0
        half = w + 1.5
        lay.crosswalks.append(np.stack([u * r0 + nrm * half, u * r1 + nrm * half, u * r1 - nrm * half, u * r0 - nrm * half]))
        mid = 0.5 * (r0 + r1)
        lay.crossing_lines.append((u * mid + nrm * (w + 3), u * mid - nrm * (w + 3)))
        for side in (1, -1):
            lay.sidewalks.append(np.stack([u * (box + 2) + side * nrm * (w + 3), u * (box + 80) + side * nrm * (w + 3)]))
    names = {1: "right_turn", 2: "straight", 3: "left_turn"}
    for k in range(4):
        for m, name in names.items():
            j = (k + m) % 4
            tension = 0.33 if m == 2 else 0.5
            conn = lay.add_piece(bezier(ends[k], angles[k] + np.pi, starts[j], angles[j], 80, tension), w, v,
                                 intersection=True, group=k, spawn=False)
            lay.add_path([ins[k], conn, outs[j]], maneuver=name, ego_weight=1.5 if m == 2 else 1.0,
                         ego_s=(arm - 60.0, arm + 5.0))
    corners = []
    for a in angles:
        u, nrm = _unit(a), _unit(a + np.pi / 2)
        corners += [u * (box + 0.5) + nrm * (w + 0.3), u * (box + 0.5) - nrm * (w + 0.3)]
    corners = np.array(corners)
    order = np.argsort(np.arctan2(corners[:, 1], corners[:, 0]))
    lay.polygons.append(corners[order])
    return lay


def urban_street(city: CityProfile, rng: np.random.Generator) -> Layout:
    lay = Layout("urban_street")
    w, v = city.lane_width, city.urban_speed
    n = 2 if rng.random() < 0.35 else 1
    length = 480.0
    ref = curvy_line((0.0, 0.0), 0.0, length, [(150, 0.0), (180, rng.uniform(-1 / 500, 1 / 500)), (150, 0.0)])
    offsets = [-w / 2 - k * w for k in range(n)] + [w / 2 + k * w for k in range(n)]
    ids = lay.add_parallel(ref, offsets, w, v, reverse=tuple(range(n, 2 * n)))
    for k in range(n):
        lay.add_path([ids[k]], maneuver="straight", ego_weight=1.0, ego_s=(130.0, 300.0), curb_lane=k == 0)
        lay.add_path([ids[n + k]], maneuver="straight", ego_weight=0.3, ego_s=(130.0, 300.0), curb_lane=k == 0)
    edge = n * w
    dense = resample_dense(ref, 1.0)
    normal = left_normals(dense)
    heading = np.arctan2(normal[:, 0], -normal[:, 1])
    for side in (1, -1):
        lay.polygons.append(_strip(ref, edge, edge + 2.6) if side > 0 else _strip(ref, -edge - 2.6, -edge))
        slots = np.arange(8.0, length - 8.0, 6.5)
        idx = slots.astype(int)
        centre = dense[idx] + side * (edge + 1.2) * normal[idx]
        yaw = heading[idx] + (np.pi if side > 0 else 0.0)
        lay.parking.append(np.concatenate([centre, yaw[:, None]], -1))
        walk = dense[::60] + side * (edge + 4.5) * normal[::60]
        lay.sidewalks += [np.stack([a, b]) for a, b in zip(walk[:-1], walk[1:])]
    for s_c in (rng.uniform(170, 240), rng.uniform(300, 380)):
        i = int(s_c)
        t = np.array([-normal[i, 1], normal[i, 0]])
        half = edge + 3.0
        c0, c1 = dense[i] - 1.5 * t, dense[i] + 1.5 * t
        lay.crosswalks.append(np.stack([c0 + half * normal[i], c1 + half * normal[i], c1 - half * normal[i], c0 - half * normal[i]]))
        lay.crossing_lines.append((dense[i] + (edge + 3.5) * normal[i], dense[i] - (edge + 3.5) * normal[i]))
    return lay


def roundabout(city: CityProfile, rng: np.random.Generator) -> Layout:
    lay = Layout("roundabout")
    w, v = city.lane_width, city.urban_speed
    radius = rng.uniform(14.0, 20.0)
    arm, flare = 150.0, radius + 14.0
    alpha = 7.0 / radius
    angles = np.arange(4) * np.pi / 2 + rng.uniform(-0.15, 0.15, 4)

    def arc(a0, a1):
        if a1 < a0:
            a1 += 2 * np.pi
        phi = np.linspace(a0, a1, max(int((a1 - a0) * radius), 4))
        return radius * np.stack([np.cos(phi), np.sin(phi)], -1)

    ring_w = w + 0.6
    passing = [lay.add_piece(arc(a - alpha, a + alpha), ring_w, v, intersection=True) for a in angles]
    gaps = [lay.add_piece(arc(angles[k] + alpha, angles[(k + 1) % 4] - alpha), ring_w, v, intersection=True)
            for k in range(4)]
    ins, outs, entries, exits = [], [], [], []
    for a in angles:
        u, nrm = _unit(a), _unit(a + np.pi / 2)
        p_near = u * flare + nrm * w / 2
        ins.append(lay.add_piece(np.stack([u * (flare + arm) + nrm * w / 2, p_near]), w, v))
        q_near = u * flare - nrm * w / 2
        outs.append(lay.add_piece(np.stack([q_near, u * (flare + arm) - nrm * w / 2]), w, v))
        e_pt = radius * _unit(a + alpha)
        entries.append(lay.add_piece(bezier(p_near, a + np.pi, e_pt, a + alpha + np.pi / 2, 60, 0.45), w, v,
                                     intersection=True, spawn=False, minor=True, speed_cap=5.0))
        x_pt = radius * _unit(a - alpha)
        exits.append(lay.add_piece(bezier(x_pt, a - alpha + np.pi / 2, q_near, a, 60, 0.45), w, v,
                                   intersection=True, spawn=False))
        for side in (1, -1):
            lay.sidewalks.append(np.stack([u * (flare + 3) + side * nrm * (w + 3), u * (flare + 70) + side * nrm * (w + 3)]))
    names = {1: "right_turn", 2: "straight", 3: "left_turn"}
    for k in range(4):
        for m, name in names.items():
            seq = [ins[k], entries[k], gaps[k]]
            for i in range(1, m):
                seq += [passing[(k + i) % 4], gaps[(k + i) % 4]]
            seq += [exits[(k + m) % 4], outs[(k + m) % 4]]
            lay.add_path(seq, maneuver=name, ego_weight=1.0, ego_s=(arm - 45.0, arm + 3.0))
    return lay


BUILDERS = {
    "highway_merge": highway_merge,
    "rural_curve": rural_curve,
    "intersection": intersection,
    "urban_street": urban_street,
    "roundabout": roundabout,
}
