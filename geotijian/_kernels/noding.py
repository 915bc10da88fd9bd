"""Noding of road lines: vertices matched on a grid, nodes numbered, edges cut.

:class:`VertexNoder` hashes the vertices of whole lines chunk by chunk (a second thread
can read the next chunk from GEOS meanwhile: the loop releases the GIL) and
:meth:`VertexNoder.finish` numbers the nodes in key order; :func:`node_lines` does both
at once. :func:`argsort_keys` is the radix sort behind the numbering. Tested against a
plain Python noding and ``numpy.argsort`` (``tests/test_kernels.py``).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

_KEY_LIMIT = 1 << 31  # grid steps per axis
_KEY_HALF = 1 << 30   # (the anchor in the middle)
_HALF_MASK = _KEY_LIMIT - 1
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)  # Fibonacci hashing of the keys
_SHIFT = np.uint64(24)


@jit
def _vertex_key(x, y, ax, ay, scale):
    """Key of a vertex on the grid anchored at ``(ax, ay)`` (whole metres: the grid of
    the CRS itself), rounded half to even as ``numpy.rint``: ``(ok, key)``, ok False
    beyond 2**30 steps from the anchor (or NaN)."""
    fx = np.rint((x - ax) * scale) + _KEY_HALF
    fy = np.rint((y - ay) * scale) + _KEY_HALF
    if not (fx >= 0 and fx < _KEY_LIMIT and fy >= 0 and fy < _KEY_LIMIT):
        return False, np.int64(-1)
    return True, np.int64(fx) * _KEY_LIMIT + np.int64(fy)


@jit
def _radix_argsort(keys):
    """Stable argsort of non-negative int64 keys: least-significant-digit radix sort
    (11-bit digits; a digit equal in every key is skipped)."""
    n = keys.shape[0]
    order = np.empty(n, dtype=np.int64)
    for i in range(n):
        order[i] = i
    if n < 2:
        return order
    tmp = np.empty(n, dtype=np.int64)
    ka = keys.copy()
    kb = np.empty(n, dtype=np.int64)
    hi = np.int64(0)
    for i in range(n):
        hi |= keys[i]
    count = np.empty(2048, dtype=np.int64)
    shift = 0
    while shift < 63 and (hi >> shift) != 0:
        count[:] = 0
        for i in range(n):
            count[(ka[i] >> shift) & 2047] += 1
        if count[(ka[0] >> shift) & 2047] != n:
            run = np.int64(0)
            for d in range(2048):
                run += count[d]
                count[d] = run - count[d]
            for i in range(n):
                d = (ka[i] >> shift) & 2047
                kb[count[d]] = ka[i]
                tmp[count[d]] = order[i]
                count[d] += 1
            ka, kb = kb, ka
            order, tmp = tmp, order
        shift += 11
    return order


def argsort_keys(keys: np.ndarray) -> np.ndarray:
    """``numpy.argsort(keys, kind="stable")`` of non-negative integer keys, by a
    least-significant-digit radix sort (11-bit digits; digits equal in every key are
    skipped)."""
    keys = np.ascontiguousarray(keys, dtype=np.int64)
    if len(keys) and keys.min() < 0:
        raise ValueError("argsort_keys: negative key")
    return _radix_argsort(keys)


# state of a noder between chunks, in one int64 array
_M, _NV, _CUR_LINE, _CUR_COUNT, _N_SHORT, _NL = range(6)


@jit
def _noder_add(coords, line, line_offset, ax, ay, scale, table, mask, occ, kvid, first,
               last, kx, ky, modified, kline, state):
    """Hash the vertices of whole lines (see :meth:`VertexNoder.add`); False when a
    vertex lies beyond the key grid (the state is then partial)."""
    m = state[_M]
    nv = state[_NV]
    cur_line = state[_CUR_LINE]
    cur_count = state[_CUR_COUNT]
    n_short = state[_N_SHORT]
    nl = state[_NL]
    for k in range(coords.shape[0]):
        ok, key = _vertex_key(coords[k, 0], coords[k, 1], ax, ay, scale)
        if not ok:
            return False
        # open addressing, key and id side by side (one cache miss per probe)
        h = np.int64((np.uint64(key) * _GOLDEN) >> _SHIFT) & mask
        while table[2 * h] >= 0 and table[2 * h] != key:
            h = (h + 1) & mask
        if table[2 * h] < 0:
            table[2 * h] = key
            table[2 * h + 1] = nv
            nv += 1
        vk = table[2 * h + 1]
        lk = line[k] + line_offset
        if lk != cur_line:  # a line begins: the one before ends
            if cur_count == 1:  # (one distinct vertex: dropped)
                m -= 1
                occ[kvid[m]] -= 1
                n_short += 1
                nl -= 1
            elif cur_count > 1:
                last[m - 1] = 1
            cur_line = lk
            cur_count = 0
        if cur_count == 0 or kvid[m - 1] != vk:
            if cur_count == 0:
                kline[nl] = lk
                nl += 1
            kvid[m] = vk
            kx[m] = coords[k, 0]
            ky[m] = coords[k, 1]
            first[m] = cur_count == 0
            last[m] = 0
            occ[vk] += 1
            m += 1
            cur_count += 1
        else:  # a consecutive repeat
            modified[lk] = True
    state[_M] = m
    state[_NV] = nv
    state[_CUR_LINE] = cur_line
    state[_CUR_COUNT] = cur_count
    state[_N_SHORT] = n_short
    state[_NL] = nl
    return True


@jit
def _noder_finish(occ, kvid, first, last, kx, ky, kline, ax, ay, scale, state):
    """Close the last line, find the nodes, cut the edges and number the nodes in key
    order (see :meth:`VertexNoder.finish`)."""
    m = state[_M]
    if state[_CUR_COUNT] == 1:
        m -= 1
        occ[kvid[m]] -= 1
        state[_N_SHORT] += 1
        state[_NL] -= 1
    elif state[_CUR_COUNT] > 1:
        last[m - 1] = 1
    state[_M] = m
    nv = state[_NV]
    # node = line end or vertex met more than once; sizes first (exact outputs)
    node = np.empty(max(nv, 1), dtype=np.int32)
    node[:] = -1
    n_nodes = 0
    n_seg = 0
    for k in range(m):
        vv = kvid[k]
        if first[k] or last[k] or occ[vv] > 1:
            if node[vv] == -1:
                node[vv] = -2  # (a node, not yet numbered)
                n_nodes += 1
            if not first[k]:
                n_seg += 1
    node_key = np.empty(n_nodes, dtype=np.int64)
    seen = np.empty(n_nodes, dtype=np.int64)  # first kept vertex of each node
    start = np.empty(n_seg, dtype=np.int64)
    count = np.empty(n_seg, dtype=np.int64)
    part = np.empty(n_seg, dtype=np.int64)
    eu = np.empty(n_seg, dtype=np.int64)
    ev = np.empty(n_seg, dtype=np.int64)
    y_span = 0
    li = -1  # kept lines are counted as they begin; their parts were listed in order
    n_nodes = 0
    n_seg = 0
    cur_start = 0
    cur_node = 0
    for k in range(m):
        if first[k]:
            li += 1
        vv = kvid[k]
        if not (first[k] or last[k] or occ[vv] > 1):
            continue
        if node[vv] == -2:  # first time this node is met: number it
            node[vv] = n_nodes
            seen[n_nodes] = k
            key = _vertex_key(kx[k], ky[k], ax, ay, scale)[1]  # (its key again)
            node_key[n_nodes] = key
            y_span = max(y_span, key & _HALF_MASK)
            n_nodes += 1
        if not first[k]:  # ends the edge begun at the previous node of this line
            start[n_seg] = cur_start
            count[n_seg] = k - cur_start + 1
            part[n_seg] = kline[li]
            eu[n_seg] = cur_node
            ev[n_seg] = node[vv]
            n_seg += 1
        if not last[k]:
            cur_start = k
            cur_node = node[vv]
    # node numbers in key order; the keys made dense first (x * (y span + 1) + y keeps
    # their order in fewer radix digits)
    for k in range(n_nodes):
        node_key[k] = (node_key[k] >> 31) * (y_span + 1) + (node_key[k] & _HALF_MASK)
    order = _radix_argsort(node_key)
    rank = np.empty(n_nodes, dtype=np.int64)
    node_x = np.empty(n_nodes, dtype=np.float64)
    node_y = np.empty(n_nodes, dtype=np.float64)
    for k in range(n_nodes):
        rank[order[k]] = k
        node_x[k] = kx[seen[order[k]]]
        node_y[k] = ky[seen[order[k]]]
    for k in range(n_seg):
        eu[k] = rank[eu[k]]
        ev[k] = rank[ev[k]]
    return start, count, part, eu, ev, node_x, node_y


class VertexNoder:
    """Noding of road lines, fed chunk by chunk (see ``network.build._node_roads``).

    Vertices are matched on a grid of ``1 / key_scale`` metres anchored at the whole
    metres below the first vertex (so the grid is the CRS's own: the same whatever the
    layer's extent), rounded half to even as ``numpy.rint``. Consecutive repeats inside
    a line are dropped (their line is marked *modified*), lines left with one vertex are
    dropped (counted), and a node is a line end or a vertex met more than once. Edges
    run from one node to the next along a line.

    :meth:`add` takes the vertices of whole lines, lines in order (its loop releases the
    GIL: a thread can hash one chunk while the next is read from GEOS); :meth:`finish`
    numbers the nodes and returns the edges. ``n``: the number of vertices to come (the
    hash table and the per-vertex arrays are sized once).
    """

    def __init__(self, n: int, n_parts: int, key_scale: float):
        self.n = int(n)
        self.scale = float(key_scale)
        # hash table with a load factor below 2/3: (key >= 0, id) by slot
        cap = 1
        while 2 * cap < 3 * self.n + 2:
            cap <<= 1
        self._mask = cap - 1
        self._table = np.full(2 * cap, -1, dtype=np.int64)
        size = max(self.n, 1)
        self._occ = np.zeros(size, dtype=np.int32)       # kept occurrences of each id
        self._kvid = np.empty(size, dtype=np.int32)      # id of each kept vertex
        self._first = np.empty(size, dtype=np.int8)      # first / last of its line
        self._last = np.empty(size, dtype=np.int8)
        self._kx = np.empty(size, dtype=np.float64)      # the kept vertices
        self._ky = np.empty(size, dtype=np.float64)
        self._modified = np.zeros(int(n_parts), dtype=np.bool_)
        self._kline = np.empty(max(int(n_parts), 1), dtype=np.int64)  # part of each kept line
        self._state = np.zeros(6, dtype=np.int64)
        self._state[_CUR_LINE] = -1
        self._added = 0
        self._ax = self._ay = np.nan
        self._anchored = False
        self._finished = False

    def add(self, coords: np.ndarray, line: np.ndarray, line_offset: int = 0) -> None:
        """Hash the vertices ``coords`` (``(k, 2)`` float) of lines ``line +
        line_offset`` (whole lines, after those already added). Raises
        ``OverflowError`` for a vertex more than 2**30 grid steps (about 1,000 km at
        1 mm) from the anchor, or a NaN coordinate."""
        if self._finished:
            raise ValueError("VertexNoder: add after finish")
        coords = np.ascontiguousarray(coords, dtype=np.float64)
        line = np.ascontiguousarray(line, dtype=np.int64)
        nc = len(coords)
        if self._added + nc > self.n:
            raise ValueError("VertexNoder: more vertices than announced")
        if nc == 0:
            return
        self._added += nc
        if not self._anchored:
            self._ax = float(np.floor(coords[0, 0]))
            self._ay = float(np.floor(coords[0, 1]))
            self._anchored = self._ax == self._ax and self._ay == self._ay
        ok = _noder_add(coords, line, np.int64(line_offset), self._ax, self._ay, self.scale,
                        self._table, np.int64(self._mask), self._occ, self._kvid, self._first,
                        self._last, self._kx, self._ky, self._modified, self._kline,
                        self._state)
        if not ok:
            self._finished = True  # (the state is partial: no further use)
            raise OverflowError("a vertex lies more than 2**30 grid steps from the first")

    def finish(self) -> tuple:
        """Close the last line, number the nodes in vertex-key order (x, then y, on the
        key grid) and return the edges: per edge ``start`` (row in the kept vertices),
        ``count`` (vertices), ``part``, ``u``, ``v``; per node ``x`` and ``y`` (its first
        vertex); ``modified`` (per part, bool), the number of one-vertex lines dropped,
        and the kept vertices ``x`` and ``y``."""
        if self._finished:
            raise ValueError("VertexNoder: finished already")
        self._finished = True
        self._table = None
        start, count, part, u, v, node_x, node_y = _noder_finish(
            self._occ, self._kvid, self._first, self._last, self._kx, self._ky, self._kline,
            self._ax, self._ay, self.scale, self._state)
        m = int(self._state[_M])
        return (start, count, part, u, v, node_x, node_y, self._modified,
                int(self._state[_N_SHORT]), self._kx[:m], self._ky[:m])


def node_lines(coords: np.ndarray, line: np.ndarray, n_parts: int, key_scale: float) -> tuple:
    """All the lines at once through :class:`VertexNoder`: returns what
    :meth:`VertexNoder.finish` returns."""
    noder = VertexNoder(len(coords), n_parts, key_scale)
    noder.add(coords, line)
    return noder.finish()
