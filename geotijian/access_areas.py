"""Service areas' geometry: the reached pieces of the network, their street space (buffer and
union), and the unions run beside the study: in a forked process (Linux) or a thread.

:func:`geotijian.access.service_areas` searches the network per facility type and hands
each type's work here. The unions are most of a service area's cost (a district's 14 types:
~17 s of GEOS time at scale 18.4 with the densest united by grid cell, ~21 s without, ~30 s
when the short stubs are drawn too) and only the
outputs read their polygons, so a study starts them at its network step and collects them
before writing (:class:`ForkedUnions`, :class:`PendingUnions`).
"""

from __future__ import annotations

import contextlib
import gc
import os
import pickle
import shutil
import signal
import threading
import warnings
import weakref
from collections.abc import Callable
from typing import Any

import numpy as np
import shapely

from .network import SnapResult, WalkNetwork
from .workers import _call, _fork, _libc


def _substrings(geoms: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """Vectorised ``shapely.ops.substring``: the part of each line between two distances."""
    k = len(geoms)
    if k == 0:
        return np.zeros(0, dtype=object)
    coords, gi = shapely.get_coordinates(geoms, return_index=True)
    seg = np.zeros(len(coords))
    same = np.r_[False, gi[1:] == gi[:-1]]
    step = np.hypot(*(np.diff(coords, axis=0).T))
    seg[1:] = np.where(same[1:], step, 0.0)
    cum = np.cumsum(seg)
    first = np.flatnonzero(~same)
    cum -= np.repeat(cum[first], np.diff(np.r_[first, len(coords)]))
    inner = (cum > start[gi]) & (cum < end[gi])
    sp = shapely.get_coordinates(shapely.line_interpolate_point(geoms, start))
    ep = shapely.get_coordinates(shapely.line_interpolate_point(geoms, end))
    allc = np.concatenate([sp, coords[inner], ep])
    grp = np.concatenate([np.arange(k), gi[inner], np.arange(k)])
    pos = np.concatenate([start, cum[inner], end])
    rank = np.concatenate([np.zeros(k), np.ones(inner.sum()), np.full(k, 2)])
    o = np.lexsort((rank, pos, grp))
    return shapely.linestrings(allc[o], indices=grp[o])


def _reached_segments(network: WalkNetwork, D: np.ndarray, fsnap: SnapResult,
                      mask: np.ndarray | None, dist: float, stub_m: float = 0.0) -> np.ndarray:
    """Line pieces of the network within ``dist`` of the sources (node distances ``D``).

    ``stub_m`` > 0 leaves out the reached stubs no longer than it (:func:`_short_stubs`).
    """
    L = network.edge_length
    Du, Dv = D[network.edge_u], D[network.edge_v]
    a = np.clip(np.where(np.isfinite(Du), dist - Du, 0.0), 0.0, L)
    b = np.clip(np.where(np.isfinite(Dv), dist - Dv, 0.0), 0.0, L)
    whole = a + b >= L
    drawn = whole & (L > 0)
    if stub_m > 0:
        drawn &= ~_short_stubs(network, D, dist, whole, stub_m)
    e_all = [np.flatnonzero(drawn)]
    s_all, t_all = [np.zeros(len(e_all[0]))], [L[e_all[0]]]
    pu = np.flatnonzero(~whole & (a > 0))
    pv = np.flatnonzero(~whole & (b > 0))
    e_all += [pu, pv]
    s_all += [np.zeros(len(pu)), L[pv] - b[pv]]
    t_all += [a[pu], L[pv]]
    sel = np.ones(len(fsnap.edge), dtype=bool) if mask is None else mask[fsnap.owner]
    r = dist - fsnap.offset[sel]
    ok = r > 0
    se, st = fsnap.edge[sel][ok], fsnap.position[sel][ok]
    e_all.append(se)
    s_all.append(np.maximum(st - r[ok], 0.0))
    t_all.append(np.minimum(st + r[ok], L[se]))
    # whole edges are their own geometry (cut from 0 to their length, _substrings would give
    # the same line, at times with its last point twice); the rest are cut
    e = np.concatenate(e_all[1:])
    s = np.concatenate(s_all[1:])
    t = np.concatenate(t_all[1:])
    keep = t > s
    return np.concatenate([network.edge_geometry[e_all[0]],
                           _substrings(network.edge_geometry[e[keep]], s[keep], t[keep])])


def _short_stubs(network: WalkNetwork, D: np.ndarray, dist: float, whole: np.ndarray,
                 stub_m: float) -> np.ndarray:
    """Whole reached edges that a service area's drawing can leave out: dead ends of the
    network (one end on no other edge) no longer than ``stub_m``, hanging on a node
    reached with distance to spare where another edge, not such a stub, goes on.

    That other edge has a drawn piece starting at the node (all of it, or its part
    within the distance left), so every point of a stub left out lies within ``stub_m``
    of a drawn piece: inside its buffer when ``stub_m`` is less than the half-width.
    The polygon loses only the stub's own cap beyond that buffer (at most ``stub_m``
    deep). Pieces cut at the walking distance and the facilities' own pieces are never
    left out, so the reach's extent is unchanged.

    Measured at scale 18.4 with 5 m (the sample's footways to building doors are 4 m):
    the 14 types' buffers and unions 30.5 -> 21.2 s of CPU (bus stops: 84,000 of 244,000
    pieces left out), the polygons' areas 0.16-1.2 % smaller, every point of each full
    polygon within 5.5 m of the drawn one (5 m and the arcs' sagitta).
    """
    u, v, L = network.edge_u, network.edge_v, network.edge_length
    n = network.n_nodes
    leaf = np.zeros(n, dtype=bool)
    leaf[network.pendant[0]] = True   # the dead ends the distance searches set aside (cached)
    leaf_u, leaf_v = leaf[u], leaf[v]
    stub = whole & (L > 0) & (L <= stub_m) & (leaf_u != leaf_v)
    hang = np.where(leaf_u, v, u)                      # the stub's end on the network
    other = (L > 0) & ~stub                            # edges that go on from a node
    goes_on = (np.bincount(u[other], minlength=n) + np.bincount(v[other], minlength=n)) > 0
    spare = np.isfinite(D) & (D < dist)
    return stub & goes_on[hang] & spare[hang]


def _join_dangling(lines: np.ndarray) -> np.ndarray:
    """Fewer, longer lines: a piece with one free end is joined to a piece that goes on
    from its other end (one per end of that piece).

    A district's network is ~55 % access spurs off the streets, each its own short piece;
    joined as spur + street + spur, one buffer replaces three. The pairing is vectorised:
    pieces meet where their end coordinates are equal (rounded to 1 µm); at each node the
    k-th dangling piece takes the k-th free end of a street piece (both sorted by index).
    The lines cover exactly the same points as the pieces.
    """
    n = len(lines)
    coords, idx = shapely.get_coordinates(lines, return_index=True)
    cnt = np.bincount(idx, minlength=n)
    first = np.cumsum(cnt) - cnt
    last = first + cnt - 1
    node = _point_ids(np.round(np.concatenate([coords[first], coords[last]]), 6))
    deg = np.bincount(node)
    n0, n1 = node[:n], node[n:]
    free0, free1 = deg[n0] == 1, deg[n1] == 1
    spur = np.flatnonzero(free0 ^ free1)
    street = np.flatnonzero(~free0 & ~free1)
    s_node = np.where(free0[spur], n1[spur], n0[spur])   # where the spur meets the others
    s_from = ~free0[spur]                                # ... at its first point
    e_node = np.concatenate([n0[street], n1[street]])
    e_piece = np.concatenate([street, street])
    e_end = np.repeat([0, 1], len(street))

    def rank(keys: np.ndarray) -> np.ndarray:  # 0, 1, 2 ... within each key, by position
        o = np.lexsort((np.arange(len(keys)), keys))
        ks = keys[o]
        head = np.r_[True, ks[1:] != ks[:-1]] if len(ks) else np.zeros(0, dtype=bool)
        r = np.empty(len(keys), dtype=np.int64)
        r[o] = np.arange(len(ks)) - np.maximum.accumulate(np.where(head, np.arange(len(ks)), 0))
        return r

    width = int(max(deg.max(initial=0), 1)) + 1
    _, i_s, i_e = np.intersect1d(s_node.astype(np.int64) * width + rank(s_node),
                                 e_node.astype(np.int64) * width + rank(e_node), return_indices=True)
    sp, pc, end = spur[i_s], e_piece[i_e], e_end[i_e]
    before, after = np.full(n, -1), np.full(n, -1)
    before[pc[end == 0]], after[pc[end == 1]] = sp[end == 0], sp[end == 1]
    # a spur before a street piece must end where it starts, one after it start where it ends
    flip = np.zeros(n, dtype=bool)
    flip[sp] = np.where(end == 0, s_from[i_s], ~s_from[i_s])
    joined = np.zeros(n, dtype=bool)
    joined[sp] = True
    lead = np.flatnonzero(~joined)
    line = np.arange(len(lead))
    hb, ha = before[lead] >= 0, after[lead] >= 0
    part = np.concatenate([before[lead][hb], lead, after[lead][ha]])
    pos = np.concatenate([np.zeros(hb.sum()), np.ones(len(lead)), np.full(ha.sum(), 2)])
    pline = np.concatenate([line[hb], line, line[ha]])
    drop_first = np.concatenate([np.zeros(hb.sum(), dtype=bool), hb, np.ones(ha.sum(), dtype=bool)])
    o = np.lexsort((pos, pline))
    part, pline, drop_first = part[o], pline[o], drop_first[o]
    c = cnt[part]
    j = np.arange(c.sum()) - np.repeat(np.cumsum(c) - c, c)
    rev = np.repeat(flip[part], c)
    ci = np.where(rev, np.repeat(last[part], c) - j, np.repeat(first[part], c) + j)
    keep = ~(np.repeat(drop_first, c) & (j == 0))  # the shared point once
    return shapely.linestrings(coords[ci[keep]], indices=np.repeat(pline, c)[keep])


def _point_ids(xy: np.ndarray) -> np.ndarray:
    """One id per distinct point (rows of ``xy`` equal in both coordinates share it): what
    ``np.unique(xy, axis=0, return_inverse=True)`` gives, by one lexsort of the two columns
    (5x faster: unique sorts the rows as raw bytes)."""
    if not len(xy):
        return np.zeros(0, dtype=np.int64)
    o = np.lexsort((xy[:, 1], xy[:, 0]))
    s = xy[o]
    new = np.r_[True, (s[1:, 0] != s[:-1, 0]) | (s[1:, 1] != s[:-1, 1])]
    ids = np.empty(len(xy), dtype=np.int64)
    ids[o] = np.cumsum(new) - 1
    return ids


#: Join dangling pieces to their neighbours before buffering (``_join_dangling``).
_JOIN_DANGLING = True

#: Below this share of the network's edges reached, the buffers are united cluster by
#: cluster of overlapping buffers (``shapely.disjoint_subset_union_all``) instead of in one
#: cascade over all: measured at scale 18.4 (min of 2 runs, load ~5), the 13 types that
#: reach ≤ 28 % of the edges 25.5 -> 19.8 s CPU (kindergarten 1.30 -> 0.91 s), and
#: bus stops (83 %: one cluster holds nearly all) 15.1 -> 16.6 s, so they keep the cascade.
_DISJOINT_BELOW = 0.5
#: (shapely ≥ 2.1 with GEOS ≥ 3.12; else the one cascade: same polygons)
_HAS_DISJOINT = hasattr(shapely, "disjoint_subset_union_all") and shapely.geos_version >= (3, 12, 0)


def _street_space(lines: np.ndarray, half_width: float, quad_segs: int, *, by_cluster: bool = False):
    """Buffer the reached pieces by ``half_width`` and union the buffers.

    The pieces are first joined where one has a free end (:func:`_join_dangling`, repeated
    while it joins ≥ 10 % more): ~35 % less GEOS time at district scale (244,000 pieces of
    one type: 20.1 -> 15.3 s CPU after one pass; 56,000: 3.1 -> 2.6 s from one pass to two). A
    joined line's buffer has a round join where two buffers had round caps; both are
    polygons inscribed in the same circle, with vertices at other angles, so the polygon
    differs from the union of one buffer per piece only on the outside of such a turn,
    by less than the sagitta ``half_width * (1 - cos(pi / (4 * quad_segs)))`` (0.48 m at
    25 m and 4 segments): measured symmetric difference 4.4e-7 of the area at scale 18.4,
    tested ≤ 1e-5 on the sample with every part thinner than the sagitta. The cut at the
    walking distance and every covered point of the network are unchanged.

    ``by_cluster`` unites each cluster of overlapping buffers on its own (see
    :data:`_DISJOINT_BELOW`): the same point set as the one cascade (symmetric difference
    0 at scale 18.4) with its vertices within 1e-6 m, ~1 % more of them (collinear
    vertices where the cascade merged neighbours). Otherwise :data:`_BY_CELL_FROM` or more
    buffers are united by grid cell (:func:`_union_by_cell`): the same point set again.
    """
    if len(lines) == 0:
        return shapely.Polygon()
    for _ in range(4 if _JOIN_DANGLING else 0):  # again while it still joins ≥ 10 % (2-3 passes)
        joined = _join_dangling(lines) if len(lines) > 1 else lines
        done = len(joined) > 0.9 * len(lines)
        lines = joined
        if done:
            break
    buffers = shapely.buffer(lines, half_width, quad_segs=quad_segs)
    if by_cluster and _HAS_DISJOINT:
        return shapely.disjoint_subset_union_all(buffers)
    return _union_by_cell(buffers, _CELL_M) if len(buffers) >= _BY_CELL_FROM else shapely.union_all(buffers)


#: A dense service area (united in one cascade, not by cluster) of at least this many
#: buffers is united cell by cell of a square grid of this side (metres) and the cells'
#: pieces glued (:func:`_union_by_cell`): measured at scale 18.4, bus stops (161,817 pieces)
#: 7.37 -> 5.08 s CPU with the joining and buffering (cells of 750-1,500 m within 0.1 s of
#: each other). The clustered types gain nothing from it (their clusters are small already).
_CELL_M = 1000.0
_BY_CELL_FROM = 2_000
#: Seam vertices closer than this (metres) along a grid line are one point (see
#: :func:`_seam_clean`).
_SEAM_TOL_M = 1e-4


def _union_by_cell(buffers: np.ndarray, cell_m: float) -> shapely.Geometry:
    """The union of ``buffers``, united cell by cell of a square grid of side ``cell_m``.

    A cascaded union of a district's buffers spends a third of its time in its last
    levels, uniting ever larger polygons. Here each cell unites the buffers over it (those
    crossing its edges clipped to it), and the cells' pieces, which meet only along the
    grid lines, are glued by a coverage union (linear: it drops the shared edges). That
    needs the same vertices on both sides of a grid line, so :func:`_seam_clean` first
    makes each crossing point one point and leaves out the vertices inside a run along a
    grid line. Should the coverage union still fail (:func:`_glue`), the pieces are
    united by the ordinary union (the same point set, slower).

    The result covers exactly the points of ``shapely.union_all(buffers)`` (symmetric
    difference 0 at scale 18.4 for all 14 types); its vertices are the same but for ~2.5 %
    more where the boundary crosses a grid line, each within :data:`_SEAM_TOL_M`.
    """
    parts = _cell_pieces(buffers, cell_m)
    glued = _glue(parts)
    return shapely.union_all(parts) if glued is None else glued


def _cell_pieces(buffers: np.ndarray, cell_m: float) -> np.ndarray:
    """The polygons of each grid cell's union (see :func:`_union_by_cell`), their seams
    cleaned (:func:`_seam_clean`)."""
    bb = shapely.bounds(buffers)
    lo = bb[:, :2].min(axis=0) - 1.0
    n = np.ceil((bb[:, 2:].max(axis=0) - lo) / cell_m).astype(int) + 1
    gx, gy = lo[0] + np.arange(n[0] + 1) * cell_m, lo[1] + np.arange(n[1] + 1) * cell_m
    i0, i1 = np.searchsorted(gx, bb[:, 0], side="right") - 1, np.searchsorted(gx, bb[:, 2], side="right") - 1
    j0, j1 = np.searchsorted(gy, bb[:, 1], side="right") - 1, np.searchsorted(gy, bb[:, 3], side="right") - 1
    wide = i1 - i0 + 1
    span = wide * (j1 - j0 + 1)                       # cells each buffer's box touches
    item = np.repeat(np.arange(len(buffers)), span)
    k = np.arange(len(item)) - np.repeat(np.cumsum(span) - span, span)
    cell = (i0[item] + k % wide[item]) * n[1] + j0[item] + k // wide[item]
    o = np.argsort(cell, kind="stable")
    cell, item = cell[o], item[o]
    first = np.flatnonzero(np.r_[True, cell[1:] != cell[:-1]])
    pieces = []
    for a, b in zip(first, np.r_[first[1:], len(cell)]):   # one GEOS union per cell (~500)
        i, j = divmod(int(cell[a]), int(n[1]))
        g = buffers[item[a:b]]
        edge = span[item[a:b]] > 1
        if edge.any():
            g[edge] = shapely.clip_by_rect(g[edge], gx[i], gy[j], gx[i + 1], gy[j + 1])
        pieces.append(shapely.union_all(g) if b - a > 1 else g[0])
    parts = shapely.get_parts(np.asarray(pieces, dtype=object))
    return _seam_clean(parts[(shapely.get_type_id(parts) == 3) & ~shapely.is_empty(parts)], gx[1:-1], gy[1:-1])


def _glue(parts: np.ndarray) -> shapely.Geometry | None:
    """The coverage union of the cells' pieces, or None when they are not a coverage:
    GEOS raises, or gives an invalid polygon or one whose area is not the pieces' sum."""
    with contextlib.suppress(shapely.errors.GEOSException):
        out = shapely.coverage_union_all(parts)
        total = float(shapely.area(parts).sum())
        if shapely.is_valid(out) and abs(out.area - total) <= 1e-9 * total:
            return out
    return None


def _seam_clean(polygons: np.ndarray, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
    """The cells' polygons with their vertices on the grid lines ``x = gx``, ``y = gy``
    made to match across each line, for a coverage union.

    * A vertex on a line has its other coordinate replaced by the least of those within
      :data:`_SEAM_TOL_M` of it on the same line (a crossing point computed by the clip of
      one cell and by the union of the next can differ in the last bits; near-duplicate
      roads cross a line ~1 µm apart).
    * A vertex on one line (not a grid corner) whose neighbours in its ring are on the
      same line is left out: a run along a grid line keeps its two ends only (one side's
      union can split it where the other's does not). Rings are turned to start at a
      vertex kept.
    """
    if not len(polygons):
        return polygons
    gtype, xy, (ring_at, poly_at) = shapely.to_ragged_array(polygons)
    xy = xy.copy()
    lines = []                                         # per axis: the line a vertex is on, or -1
    for axis, g in ((0, gx), (1, gy)):
        at_line = np.full(len(xy), -1, dtype=np.int64)
        lines.append(at_line)
        if not len(g):
            continue
        c = xy[:, axis]
        k = np.minimum(np.searchsorted(g, c), len(g) - 1)
        on = np.flatnonzero(g[k] == c)
        other, kk = xy[on, 1 - axis], k[on]
        o = np.lexsort((other, kk))
        head = np.r_[True, (kk[o][1:] != kk[o][:-1]) | (np.diff(other[o]) > _SEAM_TOL_M)]
        xy[on[o], 1 - axis] = other[o][np.maximum.accumulate(np.where(head, np.arange(len(o)), 0))]
        at_line[on] = kk
    size = np.diff(ring_at)
    ring = np.repeat(np.arange(len(size)), size)
    pos = np.arange(len(xy)) - ring_at[ring]
    m = (size - 1)[ring]                              # distinct vertices (the last closes)
    own = pos < m
    before, after = ring_at[ring] + (pos - 1) % m, ring_at[ring] + (pos + 1) % m
    lx, ly = lines
    drop = own & (((lx >= 0) & (ly < 0) & (lx[before] == lx) & (lx[after] == lx))
                  | ((ly >= 0) & (lx < 0) & (ly[before] == ly) & (ly[after] == ly)))
    kept = np.flatnonzero(own & ~drop)                # ascending: rings in order
    head = kept[np.r_[True, ring[kept][1:] != ring[kept][:-1]]] if len(kept) else kept
    if len(head) < len(size):                         # a ring all along one line: not a valid part
        return polygons
    start = pos[head]                                 # each ring's first vertex kept
    idx = np.flatnonzero(own)
    turned = ring_at[ring[idx]] + (pos[idx] + start[ring[idx]]) % m[idx]
    turned = turned[~drop[turned]]
    count = np.bincount(ring[turned], minlength=len(size))
    at = np.r_[0, np.cumsum(count + 1)]
    order = np.empty(at[-1], dtype=np.int64)
    order[np.arange(len(turned)) + np.repeat(np.arange(len(size)), count)] = turned
    order[at[1:] - 1] = turned[at[:-1] - np.arange(len(size))]   # close each ring
    return shapely.from_ragged_array(gtype, xy[order], (at, poly_at))


def _type_street_space(network: WalkNetwork, D: np.ndarray, fsnap: SnapResult, mask: np.ndarray, d: float,
                       hw: float, quad_segs: int, stub_m: float = 0.0) -> shapely.Geometry:
    """One type's service area from its node distances (a :class:`PendingUnions` item),
    united by cluster when it reaches less than :data:`_DISJOINT_BELOW` of the edges."""
    lines = _reached_segments(network, D, fsnap, mask, d, stub_m)
    return _street_space(lines, hw, quad_segs, by_cluster=len(lines) < _DISJOINT_BELOW * network.n_edges)


class PendingUnions:
    """Work items (one per facility type) run in one background thread, collected later.

    :meth:`add` queues a callable (with a size: the largest waiting item runs first);
    a daemon worker thread runs them one by one while the caller goes on (GEOS and
    most numpy loops release the GIL, so a second core does them). :meth:`result` closes
    the queue, runs the items still waiting on the calling thread too (largest first,
    beside the worker: two cores at the end) and returns every item's value in the
    order added. An item's exception is raised by :meth:`result` as it was raised (the
    first in the order added), but a Ctrl-C or an exit in an item the caller runs is
    raised at once, the waiting items dropped; :meth:`cancel` drops the waiting items (a
    run that failed elsewhere does not wait for them). Each item is a pure function of its inputs, so
    the values do not depend on which thread ran it.

    Parameters
    ----------
    background : bool
        False runs each item at once in :meth:`add` (no thread).
    """

    def __init__(self, *, background: bool = True) -> None:
        self.background = background
        self._waiting: list[tuple[float, int, Callable[[], Any]]] = []
        self._values: dict[int, Any] = {}
        self._errors: dict[int, BaseException] = {}
        self._n = 0
        self._closed = False
        self._busy = 0   # items taken and not yet done
        self._cond = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, size: float, fn: Callable[[], Any]) -> None:
        """Queue ``fn`` (``size``: its expected cost, any unit; larger runs first)."""
        key = self._n
        self._n += 1
        if not self.background:
            self._run(key, fn, here=True)   # a Ctrl-C stops the run here, not after the other items
            return
        with self._cond:
            if self._closed:
                raise RuntimeError("PendingUnions: add() after result() or cancel()")
            self._waiting.append((float(size), key, fn))
            self._cond.notify()
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name="geotijian-unions", daemon=True)
            self._thread.start()

    def result(self) -> list:
        """Every item's value in the order added, once all have run (raises the first
        item's exception)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        try:
            while (item := self._take()) is not None:  # the caller helps: both cores at the end
                self._run(item[1], item[2], here=True)
        except BaseException:   # a Ctrl-C or an exit in the caller's item: at once, the rest dropped
            self.cancel()
            raise
        if self._thread is not None:
            self._thread.join()
        for key in range(self._n):
            if key in self._errors:
                raise self._errors[key]
        return [self._values[k] for k in range(self._n)]

    def done(self) -> bool:
        """Whether every item added so far has run (:meth:`result` would not wait)."""
        with self._cond:
            return not self._waiting and not self._busy

    def cancel(self) -> None:
        """Drop the waiting items (the one running finishes in its daemon thread)."""
        with self._cond:
            self._waiting.clear()
            self._closed = True
            self._cond.notify_all()

    def _take(self) -> tuple[float, int, Callable[[], Any]] | None:
        with self._cond:
            if not self._waiting:
                return None
            i = max(range(len(self._waiting)), key=lambda j: (self._waiting[j][0], -self._waiting[j][1]))
            self._busy += 1
            return self._waiting.pop(i)

    def _work(self) -> None:
        while True:
            with self._cond:
                while not self._waiting and not self._closed:
                    self._cond.wait()
            item = self._take()
            if item is None:
                with self._cond:
                    if self._closed and not self._waiting:
                        return
                continue
            self._run(item[1], item[2])

    def _run(self, key: int, fn: Callable[[], Any], *, here: bool = False) -> None:
        try:
            self._values[key] = fn()
        except Exception if here else BaseException as exc:  # raised again by result(), in the caller's thread
            self._errors[key] = exc
        finally:
            with self._cond:
                self._busy = max(self._busy - 1, 0)

    def start(self) -> None:
        """Nothing to do: the thread starts with the first item (see :class:`ForkedUnions`)."""


class ForkedUnions:
    """The same work items as :class:`PendingUnions`, run in one forked process (Linux).

    The items are GEOS buffers and unions with numpy around them; in a thread of the
    study's process their numpy calls and the study's Python wait for each other's GIL
    (scale 18.4: the items took 19.8 s of wall for 18.5 s of their thread's CPU). Here
    :meth:`start` forks one process once every item is added: it runs them largest first,
    each written to a file of a private folder (its value as WKB, its warnings and its
    exception) as soon as it is done. :meth:`result` runs the items no process has taken
    yet in the caller too (largest first: two cores at the end), waits for the process and
    returns every value in the order added; the warnings are issued again here and the
    first item's exception (in the order added) is raised. An item is taken by creating its
    claim file (``O_EXCL``: once, by one process). Items of a process that ended without
    their values (killed) run here. :meth:`cancel` stops the process and drops the rest.

    The values are the same geometries whichever process made them (WKB keeps every
    coordinate's bits). Use :func:`fork_unions` to decide: forking needs Linux and
    ``settings.parallel``, as :class:`geotijian.workers.ForkedTasks`.
    """

    def __init__(self) -> None:
        import tempfile

        self._items: list[tuple[float, int, Callable[[], Any]]] = []
        self._dir = tempfile.mkdtemp(prefix="geotijian-unions-")
        self._pid: int | None = None
        self._closed = False
        # the folder goes with the object if neither result() nor cancel() is called
        weakref.finalize(self, shutil.rmtree, self._dir, True)

    def add(self, size: float, fn: Callable[[], Any]) -> None:
        """Queue ``fn`` (``size``: its expected cost; larger runs first)."""
        if self._pid is not None or self._closed:
            raise RuntimeError("ForkedUnions: add() after start(), result() or cancel()")
        self._items.append((float(size), len(self._items), fn))

    def start(self) -> None:
        """Fork the process that runs the items (in the calling thread, once)."""
        if self._pid is not None or self._closed or not self._items:
            return
        parent = os.getpid()
        try:
            pid = _fork()
        except OSError:   # no process slot or memory: result() runs every item here
            return
        if pid == 0:
            try:
                signal.signal(signal.SIGINT, signal.SIG_IGN)   # Ctrl-C is the study's to handle
                signal.signal(signal.SIGTERM, signal.SIG_DFL)  # not the command's handler: just end
                _die_with(parent)
                gc.freeze()   # the study's objects: the collector never sweeps (copies) them here
                while (item := self._claim()) is not None:
                    self._write(item[1], _call(item[2]))
            finally:
                os._exit(0)
        self._pid = pid

    def result(self) -> list:
        """Every item's value in the order added, once all have run."""
        self._closed = True
        values: dict[int, Any] = {}
        try:
            while (item := self._claim()) is not None:   # the caller helps: two cores at the end
                values[item[1]] = _call(item[2], here=True)
            why = self._wait()
            for size, key, fn in self._items:
                if key not in values:
                    got = self._read(key)
                    if got is None:   # taken by the process, which ended without it
                        warnings.warn(f"service areas: the unions' process ended early ({why}); "
                                      "what it left was drawn here", RuntimeWarning, stacklevel=3)
                        got = _call(fn, here=True)
                    values[key] = got
        except BaseException:   # Ctrl-C here: the process is stopped, not left running
            self.cancel()
            raise
        self._clean()
        for key in range(len(self._items)):
            for message, category, filename, lineno in values[key][1]:
                warnings.warn_explicit(message, category, filename, lineno)
        for key in range(len(self._items)):
            if values[key][2] is not None:
                raise values[key][2]
        return [values[k][0] for k in range(len(self._items))]

    def done(self) -> bool:
        """Whether every item has run (:meth:`result` would not wait)."""
        return all(os.path.exists(self._path(k, "wkb")) for k in range(len(self._items)))

    def cancel(self) -> None:
        """Stop the process; drop the items not done."""
        self._closed = True
        if self._pid is not None:
            with contextlib.suppress(OSError):
                os.kill(self._pid, signal.SIGKILL)
        self._wait()
        self._clean()

    # --------------------------------------------------------------------- internals
    def _path(self, key: int, ext: str) -> str:
        return os.path.join(self._dir, f"{key}.{ext}")

    def _claim(self) -> tuple[float, int, Callable[[], Any]] | None:
        """The largest item nobody took, now taken by this process (None: none left)."""
        for item in sorted(self._items, key=lambda it: (-it[0], it[1])):
            try:
                os.close(os.open(self._path(item[1], "claim"), os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                continue
            except OSError:   # the folder is gone (cancelled)
                return None
            return item
        return None

    def _write(self, key: int, got: tuple[Any, list, BaseException | None]) -> None:
        value, caught, error = got
        blob = pickle.dumps((shapely.to_wkb(value) if error is None else None, caught, error),
                            protocol=pickle.HIGHEST_PROTOCOL)
        tmp = self._path(key, "tmp")
        with open(tmp, "wb") as f:
            f.write(blob)
        os.replace(tmp, self._path(key, "wkb"))

    def _read(self, key: int) -> tuple[Any, list, BaseException | None] | None:
        try:
            with open(self._path(key, "wkb"), "rb") as f:
                wkb, caught, error = pickle.load(f)
        except FileNotFoundError:
            return None
        return (shapely.from_wkb(wkb) if error is None else None), caught, error

    def _wait(self) -> str:
        if self._pid is None:
            return "not started"
        try:
            _, status = os.waitpid(self._pid, 0)
        except ChildProcessError:
            self._pid = None
            return "already collected"
        self._pid = None   # (only once collected: an interrupted wait leaves it to cancel())
        return (f"killed by signal {os.WTERMSIG(status)}" if os.WIFSIGNALED(status)
                else f"exit status {os.waitstatus_to_exitcode(status)}")

    def _clean(self) -> None:
        shutil.rmtree(self._dir, ignore_errors=True)


def _die_with(parent: int) -> None:
    """This process is killed when ``parent`` ends (Linux ``PR_SET_PDEATHSIG``); it leaves
    at once if ``parent`` is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        _libc().prctl(1, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(0)


def fork_unions(n_items: int) -> bool:
    """Whether :class:`ForkedUnions` runs the service areas' unions (Linux, with
    ``settings.parallel`` and two cores; the conditions of
    :func:`geotijian.workers.worker_count`), else :class:`PendingUnions` (a thread)."""
    from .workers import worker_count

    return n_items > 1 and worker_count(2) > 0
