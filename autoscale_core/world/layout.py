"""Road layouts: lane pieces, the paths vehicles drive along, and the lookup tables the traffic
simulation needs. Everything here is in the layout's own metric frame (the scene's "world").

A *piece* is a stretch of one lane between junctions, sampled every ``DS`` metres. A *path* is a
sequence of pieces a vehicle follows (e.g. approach → left-turn connector → exit). Vehicles keep
one arc-length coordinate ``s`` along their path; pieces shared by two paths (a merge, a common
approach) give the offset that maps one path's ``s`` onto the other's, which is how leaders are
found without any geometry at simulation time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DS = 0.5  # path sampling step (m)
CHUNK_LEN = 30.0  # map lanes are pieces cut into chunks of at most this length (m)
LANE_POINTS = 20
LAT_ACCEL = 2.8  # comfortable lateral acceleration for curve speeds (m/s²)
MERGE_LOOKBACK = 30.0  # vehicles this far before a merge already see the other stream (m)
DIVERGE_EXTENSION = 8.0  # after a split, vehicles still see each other this far (m)


@dataclass
class Piece:
    points: np.ndarray  # (M + 1, 2), spacing ~DS, end point included
    width: float
    limit: float  # legal speed limit (m/s)
    intersection: bool = False
    group: int = -1  # signal group controlling entry, -1 none
    spawn: bool = True  # traffic may be placed here at the start
    minor: bool = False  # a give-way entry: its traffic yields to the stream it joins
    speed_cap: float = np.inf  # advisory speed on this piece (e.g. slow roundabout entries)
    successors: list = field(default_factory=list)
    left: int = -1
    right: int = -1

    @property
    def num_samples(self) -> int:
        return len(self.points) - 1


@dataclass
class PathInfo:
    pieces: list
    maneuver: str = "straight"
    ego_weight: float = 0.0
    ego_s: tuple = (0.0, 0.0)  # range of the ego's s at t0 when it drives this path
    curb_lane: bool = True  # lane next to the curb (cyclists ride here)


def resample_dense(points: np.ndarray, spacing: float = DS) -> np.ndarray:
    """Resample a dense polyline to ~``spacing`` (inclusive ends): (M + 1, 2)."""
    seg = np.sqrt((np.diff(points, axis=0) ** 2).sum(-1))
    s = np.concatenate([[0.0], np.cumsum(seg)])
    num = max(int(round(s[-1] / spacing)), 1)
    t = np.linspace(0.0, s[-1], num + 1)
    return np.stack([np.interp(t, s, points[:, 0]), np.interp(t, s, points[:, 1])], -1)


def headings_of(points: np.ndarray) -> np.ndarray:
    d = np.gradient(points, axis=0)
    return np.arctan2(d[:, 1], d[:, 0])


def left_normals(points: np.ndarray) -> np.ndarray:
    h = headings_of(points)
    return np.stack([-np.sin(h), np.cos(h)], -1)


def bezier(p0, h0, p1, h1, num: int = 60, tension: float = 0.4) -> np.ndarray:
    """Cubic Bezier from pose (p0, h0) to (p1, h1), dense (num, 2)."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    d = tension * np.linalg.norm(p1 - p0)
    c0 = p0 + d * np.array([np.cos(h0), np.sin(h0)])
    c1 = p1 - d * np.array([np.cos(h1), np.sin(h1)])
    t = np.linspace(0, 1, num)[:, None]
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * c0 + 3 * (1 - t) * t**2 * c1 + t**3 * p1


def curvy_line(start, heading, length, curvature_segments, spacing: float = 1.0) -> np.ndarray:
    """Integrate a heading profile: ``curvature_segments`` = [(length_m, curvature 1/m), ...]."""
    n = int(length / spacing) + 1
    s = np.arange(n) * spacing
    kappa = np.zeros(n)
    edges = np.cumsum([0.0] + [seg for seg, _ in curvature_segments])
    for (lo, hi), (_, k) in zip(zip(edges[:-1], edges[1:]), curvature_segments):
        kappa[(s >= lo) & (s < hi)] = k
    theta = heading + np.concatenate([[0.0], np.cumsum(kappa[:-1] * spacing)])
    xy = np.stack([np.cos(theta), np.sin(theta)], -1) * spacing
    pts = np.concatenate([[np.zeros(2)], np.cumsum(xy[:-1], axis=0)]) + np.asarray(start, float)
    return pts


class Layout:
    """A road layout under construction; :meth:`finalize` builds the simulation tables."""

    def __init__(self, topology: str, curb_side: float = -1.0):
        self.topology = topology
        self.pieces: list[Piece] = []
        self.paths: list[PathInfo] = []
        self.polygons: list[np.ndarray] = []  # extra drivable area
        self.crosswalks: list[np.ndarray] = []  # (4, 2)
        self.crossing_lines: list[tuple] = []  # (start (2,), end (2,)) where pedestrians cross
        self.sidewalks: list[np.ndarray] = []  # (2, 2) straight-ish walking lines
        self.parking: list[np.ndarray] = []  # (K, 3) parked-car poses x, y, yaw
        self.curb_side = curb_side  # -1: curb on the right (right-hand traffic)
        self.merge_lookback = MERGE_LOOKBACK

    # ------------------------------------------------------------------ building
    def add_piece(self, dense: np.ndarray, width: float, limit: float, **kw) -> int:
        self.pieces.append(Piece(resample_dense(dense), width, limit, **kw))
        return len(self.pieces) - 1

    def add_parallel(self, reference: np.ndarray, offsets, width: float, limit: float, reverse=(), **kw) -> list:
        """Lanes at lateral ``offsets`` (m, + = left) of a reference line, sampled alike so that
        neighbours line up sample by sample; indices in ``reverse`` run against the reference."""
        ref = resample_dense(reference)
        normal = left_normals(ref)
        ids = []
        for k, off in enumerate(offsets):
            pts = ref + off * normal
            if k in reverse:
                pts = pts[::-1].copy()
            self.pieces.append(Piece(pts, width, limit, **kw))
            ids.append(len(self.pieces) - 1)
        same = [i for k, i in enumerate(ids) if k not in reverse]
        same.sort(key=lambda i: offsets[ids.index(i)])
        for a, b in zip(same[:-1], same[1:]):  # b is left of a
            self.pieces[a].left, self.pieces[b].right = b, a
        opp = [i for k, i in enumerate(ids) if k in reverse]
        opp.sort(key=lambda i: -offsets[ids.index(i)])  # reversed travel: left is lower offset
        for a, b in zip(opp[:-1], opp[1:]):
            self.pieces[a].left, self.pieces[b].right = b, a
        return ids

    def link(self, a: int, b: int) -> None:
        self.pieces[a].successors.append(b)

    def add_path(self, pieces, **kw) -> int:
        for a, b in zip(pieces[:-1], pieces[1:]):
            if b not in self.pieces[a].successors:
                self.pieces[a].successors.append(b)
        self.paths.append(PathInfo(list(pieces), **kw))
        return len(self.paths) - 1

    def mirror(self) -> None:
        """Reflect y -> -y: a right-hand-traffic layout becomes a left-hand one."""
        flip = np.array([1.0, -1.0])
        for p in self.pieces:
            p.points = p.points * flip
            p.left, p.right = p.right, p.left
        self.polygons = [q[::-1] * flip for q in self.polygons]
        self.crosswalks = [q * flip for q in self.crosswalks]
        self.crossing_lines = [(a * flip, b * flip) for a, b in self.crossing_lines]
        self.sidewalks = [q * flip for q in self.sidewalks]
        self.parking = [np.stack([q[:, 0], -q[:, 1], -q[:, 2]], -1) for q in self.parking]
        swap = {"left_turn": "right_turn", "right_turn": "left_turn"}
        for path in self.paths:
            path.maneuver = swap.get(path.maneuver, path.maneuver)
        self.curb_side = -self.curb_side

    def transform(self, yaw: float, offset) -> None:
        """Rotate by ``yaw`` and translate: layouts sit at varied poses in their world."""
        c, s = np.cos(yaw), np.sin(yaw)
        rot = np.array([[c, -s], [s, c]])
        off = np.asarray(offset, float)
        f = lambda q: q @ rot.T + off  # noqa: E731
        for p in self.pieces:
            p.points = f(p.points)
        self.polygons = [f(q) for q in self.polygons]
        self.crosswalks = [f(q) for q in self.crosswalks]
        self.crossing_lines = [(f(a), f(b)) for a, b in self.crossing_lines]
        self.sidewalks = [f(q) for q in self.sidewalks]
        self.parking = [np.concatenate([f(q[:, :2]), q[:, 2:] + yaw], -1) for q in self.parking]

    # ------------------------------------------------------------------ tables
    def finalize(self) -> "Layout":
        self._build_paths()
        self._build_pairs()
        self._build_lane_changes()
        self._build_chunks()
        return self

    def _build_paths(self) -> None:
        num = len(self.paths)
        starts, lengths = [], []
        for path in self.paths:
            st, acc = {}, 0
            for pid in path.pieces:
                st[pid] = acc
                acc += self.pieces[pid].num_samples
            starts.append(st)
            lengths.append(acc)
        self.piece_start = starts  # per path: piece id -> first sample index
        m = max(lengths) + 2
        self.path_xy = np.zeros((num, m, 2))
        self.path_adv = np.zeros((num, m))  # advisory speed (legal limit capped by curvature)
        self.path_limit = np.zeros((num, m))
        self.path_width = np.zeros((num, m))
        self.path_len = np.array(lengths, float) * DS
        self.stop_s = np.full(num, np.inf)
        self.stop_group = np.full(num, -1, dtype=np.int64)
        cap = np.full((num, m), np.inf)
        for k, path in enumerate(self.paths):
            pts = [self.pieces[pid].points[:-1] for pid in path.pieces] + [self.pieces[path.pieces[-1]].points[-1:]]
            xy = np.concatenate(pts)
            n = len(xy)
            self.path_xy[k, :n] = xy
            self.path_xy[k, n:] = xy[-1] + (xy[-1] - xy[-2]) * np.arange(1, m - n + 1)[:, None]
            for pid in path.pieces:
                piece = self.pieces[pid]
                lo, hi = starts[k][pid], starts[k][pid] + piece.num_samples
                self.path_limit[k, lo : hi + 1] = piece.limit
                cap[k, lo : hi + 1] = piece.speed_cap
                self.path_width[k, lo : hi + 1] = piece.width
                if piece.group >= 0 and not np.isfinite(self.stop_s[k]):
                    self.stop_s[k] = lo * DS
                    self.stop_group[k] = piece.group
            self.path_limit[k, hi + 1 :] = piece.limit
            self.path_width[k, hi + 1 :] = piece.width
        grad = np.gradient(self.path_xy, axis=1)
        heading = np.unwrap(np.arctan2(grad[..., 1], grad[..., 0]), axis=1)
        self.path_heading = heading
        kappa = np.abs(np.gradient(heading, axis=1)) / DS
        kappa = np.maximum.reduce([np.roll(kappa, r, axis=1) for r in range(-4, 5)])  # smooth peaks
        self.path_adv = np.minimum(np.minimum(self.path_limit, np.sqrt(LAT_ACCEL / np.maximum(kappa, 1e-4))), cap)

    def _build_pairs(self) -> None:
        num = len(self.paths)
        self.pair_valid = np.zeros((num, num), bool)
        self.pair_off = np.zeros((num, num))
        self.pair_lo = np.zeros((num, num))
        self.pair_hi = np.zeros((num, num))
        self.pair_yield = np.full((num, num), -np.inf)  # junction s where p gives way to q
        for p, pp in enumerate(self.paths):
            for q, qp in enumerate(self.paths):
                if p == q:
                    self.pair_valid[p, q], self.pair_lo[p, q], self.pair_hi[p, q] = True, -1e9, 1e9
                    continue
                run = _longest_run(pp.pieces, qp.pieces)
                if run is None:
                    continue
                i0, j0, n = run
                first, last = pp.pieces[i0], pp.pieces[i0 + n - 1]
                lo = self.piece_start[p][first] * DS
                hi = (self.piece_start[p][last] + self.pieces[last].num_samples) * DS
                if i0 > 0 and j0 > 0:  # merge: see the other stream before the junction
                    minor_p = self.pieces[pp.pieces[i0 - 1]].minor
                    minor_q = self.pieces[qp.pieces[j0 - 1]].minor
                    if minor_p and not minor_q:
                        self.pair_yield[p, q] = lo  # give way at the junction instead of zipping
                    elif not minor_q:
                        lo -= self.merge_lookback  # zipper merge: see the other stream early
                if i0 + n < len(pp.pieces) and j0 + n < len(qp.pieces):  # split
                    hi += DIVERGE_EXTENSION
                self.pair_valid[p, q] = True
                self.pair_off[p, q] = (self.piece_start[q][first] - self.piece_start[p][first]) * DS
                self.pair_lo[p, q], self.pair_hi[p, q] = lo, hi

    def _build_lane_changes(self) -> None:
        """Per path and side (0 left, 1 right): the parallel path, s offset, valid s range."""
        num = len(self.paths)
        self.lc_path = np.full((num, 2), -1, dtype=np.int64)
        self.lc_off = np.zeros((num, 2))
        self.lc_lo = np.zeros((num, 2))
        self.lc_hi = np.zeros((num, 2))
        self.lc_sep = np.zeros((num, 2))
        for p, pp in enumerate(self.paths):
            for side, attr in enumerate(("left", "right")):
                mapped = [getattr(self.pieces[pid], attr) for pid in pp.pieces]
                best = None
                for q, qp in enumerate(self.paths):
                    run = _longest_run(mapped, qp.pieces)
                    if run is not None and (best is None or run[2] > best[1][2]):
                        best = (q, run)
                if best is None:
                    continue
                q, (i0, j0, n) = best
                first, last = pp.pieces[i0], pp.pieces[i0 + n - 1]
                self.lc_path[p, side] = q
                self.lc_lo[p, side] = self.piece_start[p][first] * DS
                self.lc_hi[p, side] = (self.piece_start[p][last] + self.pieces[last].num_samples) * DS
                self.lc_off[p, side] = (self.piece_start[q][mapped[i0]] - self.piece_start[p][first]) * DS
                self.lc_sep[p, side] = 0.5 * (self.pieces[first].width + self.pieces[mapped[i0]].width)

    def _build_chunks(self) -> None:
        """Cut pieces into map lanes of <= CHUNK_LEN metres, LANE_POINTS points each."""
        pts, width, limit, inter, group = [], [], [], [], []
        piece_chunks = []
        for piece in self.pieces:
            n_chunks = max(int(np.ceil(piece.num_samples * DS / CHUNK_LEN - 1e-6)), 1)
            edges = np.linspace(0, piece.num_samples, n_chunks + 1).round().astype(int)
            frac = np.linspace(0.0, 1.0, LANE_POINTS)
            where = edges[:-1, None] + frac[None, :] * np.diff(edges)[:, None]  # (n_chunks, LANE_POINTS)
            i0 = np.minimum(where.astype(int), piece.num_samples - 1)
            f = (where - i0)[..., None]
            pts.extend(piece.points[i0] * (1 - f) + piece.points[i0 + 1] * f)
            width += [piece.width] * n_chunks
            limit += [piece.limit] * n_chunks
            inter += [piece.intersection] * n_chunks
            group += [piece.group] + [-1] * (n_chunks - 1)  # the light controls entry only
            ids = list(range(len(pts) - n_chunks, len(pts)))
            piece_chunks.append((ids, edges))
        self.chunk_points = np.array(pts)
        self.chunk_width = np.array(width, np.float32)
        self.chunk_limit = np.array(limit, np.float32)
        self.chunk_inter = np.array(inter, bool)
        self.chunk_group = np.array(group, np.int64)
        n = len(pts)
        succ = [[] for _ in range(n)]
        nbr = np.full((n, 2), -1, np.int64)
        for pid, piece in enumerate(self.pieces):
            ids, _ = piece_chunks[pid]
            for a, b in zip(ids[:-1], ids[1:]):
                succ[a].append(b)
            for nxt in piece.successors:
                succ[ids[-1]].append(piece_chunks[nxt][0][0])
            for side, other in enumerate((piece.left, piece.right)):
                if other >= 0 and len(piece_chunks[other][0]) == len(ids):
                    nbr[ids, side] = piece_chunks[other][0]
        k = max(max(len(x) for x in succ), 1)
        self.chunk_succ = np.full((n, k), -1, np.int64)
        for i, row in enumerate(succ):
            self.chunk_succ[i, : len(row)] = row
        self.chunk_nbr = nbr
        # per path: chunk ids in order with their [s_lo, s_hi] along the path
        self.path_chunks = []
        for p, path in enumerate(self.paths):
            rows = []
            for pid in path.pieces:
                ids, edges = piece_chunks[pid]
                base = self.piece_start[p][pid]
                for c, cid in enumerate(ids):
                    rows.append((cid, (base + edges[c]) * DS, (base + edges[c + 1]) * DS))
            self.path_chunks.append(np.array(rows))


def _longest_run(a: list, b: list):
    """Longest run of consecutive equal entries a[i0:i0+n] == b[j0:j0+n]: (i0, j0, n) or None."""
    best = None
    where = {x: j for j, x in enumerate(b)}
    for i, x in enumerate(a):
        if x < 0 or x not in where:
            continue
        j, n = where[x], 0
        while i + n < len(a) and j + n < len(b) and a[i + n] == b[j + n] and a[i + n] >= 0:
            n += 1
        if best is None or n > best[2]:
            best = (i, j, n)
    return best
