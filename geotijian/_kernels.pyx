# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# cython: initializedcheck=False, nonecheck=False
# distutils: language = c++
"""Compiled loops of the walk network (built by ``pip install``, see ``setup.py``).

Each kernel replaces a chain of numpy passes over the same arrays by one pass, for the
steps that would otherwise dominate coverage end to end (issue 3): noding a roads layer,
the symmetric CSR, connected components, the edge grid, and the segment predicates of
snapping. The float arithmetic is written operation by operation as in the numpy/GEOS
code it replaces (compiled with ``-ffp-contract=off``: no fused multiply-add), so the
results are the same to the last bit; the tests compare every kernel with GEOS, scipy or
a plain numpy reference.
"""

import numpy as np

from libc.math cimport fabs, floor, rint, sqrt
from libc.stdint cimport INT32_MAX, int32_t, int64_t, int8_t, uint64_t
from libcpp.algorithm cimport sort
from libcpp.utility cimport pair
from libcpp.vector cimport vector

ctypedef pair[int32_t, double] ColVal

cdef extern from *:
    void __builtin_prefetch(const void* addr) nogil


# --------------------------------------------------------------------------- noding
cdef int64_t _KEY_LIMIT = (<int64_t>1) << 31   # grid steps per axis
cdef int64_t _KEY_HALF = (<int64_t>1) << 30    # (the anchor in the middle)


cdef inline bint _vertex_key(double x, double y, double ax, double ay, double scale,
                             int64_t* key) noexcept nogil:
    """Key of a vertex on the grid anchored at ``(ax, ay)`` (whole metres: the grid of
    the CRS itself), rounded half to even as ``numpy.rint``; False beyond 2**30 steps
    from the anchor (or NaN)."""
    cdef double fx = rint((x - ax) * scale) + _KEY_HALF
    cdef double fy = rint((y - ay) * scale) + _KEY_HALF
    if not (fx >= 0 and fx < _KEY_LIMIT and fy >= 0 and fy < _KEY_LIMIT):
        return False
    key[0] = (<int64_t>fx) * _KEY_LIMIT + <int64_t>fy
    return True


def argsort_keys(const int64_t[::1] keys):
    """``numpy.argsort(keys, kind="stable")`` of non-negative keys, by a least-significant
    digit radix sort (11-bit digits; digits equal in every key are skipped)."""
    cdef Py_ssize_t n = keys.shape[0], i
    order_a = np.arange(n, dtype=np.int64)
    if n < 2:
        return order_a
    tmp_a = np.empty(n, dtype=np.int64)
    ka_a = np.array(keys, dtype=np.int64)
    kb_a = np.empty(n, dtype=np.int64)
    cdef int64_t[::1] order = order_a
    cdef int64_t[::1] tmp = tmp_a
    cdef int64_t[::1] ka = ka_a
    cdef int64_t[::1] kb = kb_a
    cdef int64_t[::1] sw
    cdef int64_t hi = 0, count[2048]
    cdef int shift, d
    cdef int64_t run
    for i in range(n):
        if keys[i] < 0:
            raise ValueError("argsort_keys: negative key")
        hi |= keys[i]
    shift = 0
    with nogil:
        while shift < 63 and (hi >> shift) != 0:
            for d in range(2048):
                count[d] = 0
            for i in range(n):
                count[(ka[i] >> shift) & 2047] += 1
            if count[(ka[0] >> shift) & 2047] != n:  # (a digit equal everywhere: skip)
                run = 0
                for d in range(2048):
                    run += count[d]
                    count[d] = run - count[d]
                for i in range(n):
                    d = (ka[i] >> shift) & 2047
                    kb[count[d]] = ka[i]
                    tmp[count[d]] = order[i]
                    count[d] += 1
                with gil:
                    sw = ka
                    ka = kb
                    kb = sw
                    sw = order
                    order = tmp
                    tmp = sw
            shift += 11
    return np.asarray(order)


cdef class VertexNoder:
    """Noding of road lines, fed chunk by chunk (see ``network._edges_from_roads``).

    Vertices are matched on a grid of ``1 / key_scale`` metres anchored at the whole
    metres below the first vertex (so the grid is the CRS's own: the same whatever the
    layer's extent), rounded half to even as ``numpy.rint``. Consecutive repeats inside
    a line are dropped (their line is marked *modified*), lines left with one vertex are
    dropped (counted), and a node is a line end or a vertex met more than once. Edges
    run from one node to the next along a line.

    :meth:`add` takes the vertices of whole lines, lines in order (it releases the GIL:
    a thread can hash one chunk while the next is read from GEOS); :meth:`finish`
    numbers the nodes and returns the edges. ``n``: the number of vertices to come
    (the hash table and the per-vertex arrays are sized once).
    """

    cdef int64_t n, n_parts, cap, added, m, nv, cur_line, cur_count, n_short, nl
    cdef uint64_t mask
    cdef double ax, ay, scale
    cdef bint anchored, finished
    cdef object table_a, occ_a, kvid_a, first_a, last_a, kx_a, ky_a, modified_a, kline_a
    cdef int64_t[::1] table
    cdef int32_t[::1] occ, kvid
    cdef int8_t[::1] first, last
    cdef double[::1] kx, ky
    cdef unsigned char[::1] modified
    cdef int64_t[::1] kline

    def __init__(self, int64_t n, int64_t n_parts, double key_scale):
        self.n = n
        self.n_parts = n_parts
        self.scale = key_scale
        # open addressing, key and id side by side in one table (one cache miss per
        # probe), load factor below 2/3
        self.cap = 1
        while 2 * self.cap < 3 * n + 2:
            self.cap <<= 1
        self.mask = <uint64_t>(self.cap - 1)
        self.table_a = np.full(2 * self.cap, -1, dtype=np.int64)  # (key >= 0, id) by slot
        self.occ_a = np.zeros(max(n, 1), dtype=np.int32)  # kept occurrences of each id
        self.kvid_a = np.empty(max(n, 1), dtype=np.int32)  # id of each kept vertex
        self.first_a = np.empty(max(n, 1), dtype=np.int8)  # first / last of its line
        self.last_a = np.empty(max(n, 1), dtype=np.int8)
        self.kx_a = np.empty(max(n, 1), dtype=np.float64)  # the kept vertices
        self.ky_a = np.empty(max(n, 1), dtype=np.float64)
        self.modified_a = np.zeros(n_parts, dtype=np.uint8)
        self.kline_a = np.empty(max(n_parts, 1), dtype=np.int64)  # part of each kept line
        self.table = self.table_a
        self.occ = self.occ_a
        self.kvid = self.kvid_a
        self.first = self.first_a
        self.last = self.last_a
        self.kx = self.kx_a
        self.ky = self.ky_a
        self.modified = self.modified_a
        self.kline = self.kline_a
        self.nl = 0
        self.added = 0
        self.m = 0
        self.nv = 0
        self.cur_line = -1
        self.cur_count = 0
        self.n_short = 0
        self.anchored = False
        self.finished = False

    def add(self, const double[:, ::1] coords, const int64_t[::1] line, int64_t line_offset=0):
        """Hash the vertices ``coords`` of lines ``line + line_offset`` (whole lines,
        after those already added). Raises ``OverflowError`` for a vertex more than
        2**30 grid steps (about 1,000 km at 1 mm) from the anchor."""
        cdef Py_ssize_t nc = coords.shape[0], i, k
        if self.finished:
            raise ValueError("VertexNoder: add after finish")
        if self.added + nc > self.n:
            raise ValueError("VertexNoder: more vertices than announced")
        if nc == 0:
            return
        self.added += nc
        if not self.anchored:
            self.ax = floor(coords[0, 0])
            self.ay = floor(coords[0, 1])
            self.anchored = self.ax == self.ax and self.ay == self.ay
        cdef int64_t[::1] table = self.table
        cdef int32_t[::1] occ = self.occ
        cdef int32_t[::1] kvid = self.kvid
        cdef int8_t[::1] first = self.first
        cdef int8_t[::1] last = self.last
        cdef double[::1] kx = self.kx
        cdef double[::1] ky = self.ky
        cdef unsigned char[::1] modified = self.modified
        cdef int64_t[::1] kline = self.kline
        cdef uint64_t mask = self.mask, h
        cdef double ax = self.ax, ay = self.ay, scale = self.scale
        cdef int64_t m = self.m, nv = self.nv, cur_line = self.cur_line
        cdef int64_t cur_count = self.cur_count, n_short = self.n_short, nl = self.nl
        cdef int64_t key, vk, lk
        cdef int64_t ring_key[16]
        cdef uint64_t ring_slot[16]
        cdef bint overflow = False
        with nogil:
            for i in range(nc + 16):
                # the probes miss the cache: the key and slot of the vertex 16 ahead are
                # computed and its slot prefetched meanwhile (ring of 16)
                if i >= 16:
                    k = i - 16
                    key = ring_key[k & 15]
                    h = ring_slot[k & 15]
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
                        kvid[m] = <int32_t>vk
                        kx[m] = coords[k, 0]
                        ky[m] = coords[k, 1]
                        first[m] = cur_count == 0
                        last[m] = 0
                        occ[vk] += 1
                        m += 1
                        cur_count += 1
                    else:  # a consecutive repeat
                        modified[lk] = 1
                if i < nc:
                    if not _vertex_key(coords[i, 0], coords[i, 1], ax, ay, scale,
                                       &ring_key[i & 15]):
                        overflow = True
                        break
                    ring_slot[i & 15] = ((<uint64_t>ring_key[i & 15] * 0x9E3779B97F4A7C15ULL) >> 24) & mask
                    __builtin_prefetch(&table[2 * ring_slot[i & 15]])
        if overflow:
            self.finished = True  # (the state is partial: no further use)
            raise OverflowError("a vertex lies more than 2**30 grid steps from the first")
        self.m = m
        self.nv = nv
        self.cur_line = cur_line
        self.cur_count = cur_count
        self.n_short = n_short
        self.nl = nl

    def finish(self):
        """Close the last line, number the nodes in vertex-key order (x, then y, on the
        key grid) and return the edges: per edge ``start`` (row in the kept vertices),
        ``count`` (vertices), ``part``, ``u``, ``v``; per node ``x`` and ``y`` (its first
        vertex); ``modified`` (per part), the number of one-vertex lines dropped, and
        the kept vertices ``x`` and ``y``."""
        if self.finished:
            raise ValueError("VertexNoder: finished already")
        self.finished = True
        cdef Py_ssize_t k, i
        cdef int64_t m = self.m
        if self.cur_count == 1:
            m -= 1
            self.occ[self.kvid[m]] -= 1
            self.n_short += 1
            self.nl -= 1
        elif self.cur_count > 1:
            self.last[m - 1] = 1
        self.m = m
        self.table_a = None
        self.table = None
        cdef int32_t[::1] occ = self.occ
        cdef int32_t[::1] kvid = self.kvid
        cdef int8_t[::1] first = self.first
        cdef int8_t[::1] last = self.last
        cdef double[::1] kx = self.kx
        cdef double[::1] ky = self.ky
        # node = line end or vertex met more than once; sizes first (exact outputs)
        node_a = np.full(max(self.nv, 1), -1, dtype=np.int32)
        cdef int32_t[::1] node = node_a
        cdef int64_t n_nodes = 0, n_seg = 0, cur_start = 0, cur_node = 0, vv, cur_part = -1
        with nogil:
            for k in range(m):
                vv = kvid[k]
                if first[k] or last[k] or occ[vv] > 1:
                    if node[vv] == -1:
                        node[vv] = -2  # (a node, not yet numbered)
                        n_nodes += 1
                    if not first[k]:
                        n_seg += 1
        node_key_a = np.empty(n_nodes, dtype=np.int64)
        seen_a = np.empty(n_nodes, dtype=np.int64)  # first kept vertex of each node
        cdef int64_t[::1] node_key = node_key_a
        cdef int64_t[::1] seen = seen_a
        start_a = np.empty(n_seg, dtype=np.int64)
        count_a = np.empty(n_seg, dtype=np.int64)
        part_a = np.empty(n_seg, dtype=np.int64)
        u_a = np.empty(n_seg, dtype=np.int64)
        v_a = np.empty(n_seg, dtype=np.int64)
        cdef int64_t[::1] start = start_a
        cdef int64_t[::1] count = count_a
        cdef int64_t[::1] part = part_a
        cdef int64_t[::1] eu = u_a
        cdef int64_t[::1] ev = v_a
        cdef int64_t y_span = 0, yk
        cdef int64_t half_mask = _KEY_LIMIT - 1
        cdef double ax = self.ax, ay = self.ay, scale = self.scale
        # (the part of each kept vertex is not stored: kept lines are counted as they
        # begin, and their parts were listed in that order)
        cdef int64_t[::1] line_part = self.kline
        cdef int64_t li = -1
        n_nodes = 0
        n_seg = 0
        with nogil:
            for k in range(m):
                if first[k]:
                    li += 1
                vv = kvid[k]
                if not (first[k] or last[k] or occ[vv] > 1):
                    continue
                if node[vv] == -2:  # first time this node is met: number it
                    node[vv] = <int32_t>n_nodes
                    seen[n_nodes] = k
                    # (its key again, from the vertex: no table of keys kept)
                    _vertex_key(kx[k], ky[k], ax, ay, scale, &node_key[n_nodes])
                    yk = node_key[n_nodes] & half_mask
                    if yk > y_span:
                        y_span = yk
                    n_nodes += 1
                if not first[k]:  # ends the edge begun at the previous node of this line
                    start[n_seg] = cur_start
                    count[n_seg] = k - cur_start + 1
                    part[n_seg] = line_part[li]
                    eu[n_seg] = cur_node
                    ev[n_seg] = node[vv]
                    n_seg += 1
                if not last[k]:
                    cur_start = k
                    cur_node = node[vv]
            # node numbers in key order; the keys made dense first (x * (y span + 1) + y
            # keeps their order in fewer radix digits)
            for k in range(n_nodes):
                node_key[k] = (node_key[k] >> 31) * (y_span + 1) + (node_key[k] & half_mask)
        order_a = argsort_keys(node_key_a)
        cdef int64_t[::1] order = order_a
        rank_a = np.empty(n_nodes, dtype=np.int64)
        node_x_a = np.empty(n_nodes, dtype=np.float64)
        node_y_a = np.empty(n_nodes, dtype=np.float64)
        cdef int64_t[::1] rank = rank_a
        cdef double[::1] node_x = node_x_a
        cdef double[::1] node_y = node_y_a
        with nogil:
            for k in range(n_nodes):
                rank[order[k]] = k
                i = seen[order[k]]
                node_x[k] = kx[i]
                node_y[k] = ky[i]
            for k in range(n_seg):
                eu[k] = rank[eu[k]]
                ev[k] = rank[ev[k]]
        return (start_a, count_a, part_a, u_a, v_a, node_x_a, node_y_a,
                self.modified_a.view(bool), self.n_short, self.kx_a[:m], self.ky_a[:m])


def node_lines(const double[:, ::1] coords, const int64_t[::1] line, int64_t n_parts,
               double key_scale):
    """All the lines at once through :class:`VertexNoder`: returns what
    :meth:`VertexNoder.finish` returns."""
    noder = VertexNoder(coords.shape[0], n_parts, key_scale)
    noder.add(coords, line)
    return noder.finish()


# ---------------------------------------------------------------------- CSR, components
cdef inline void _sort_row(int32_t* col, double* val, Py_ssize_t k) noexcept nogil:
    """Sort a row's entries by column (insertion sort: rows are short; a long row is
    sorted by ``std::sort`` on (column, value) pairs)."""
    cdef Py_ssize_t i, j
    cdef int32_t c
    cdef double x
    cdef vector[ColVal] buf
    if k <= 32:
        for i in range(1, k):
            c = col[i]
            x = val[i]
            j = i - 1
            while j >= 0 and col[j] > c:
                col[j + 1] = col[j]
                val[j + 1] = val[j]
                j -= 1
            col[j + 1] = c
            val[j + 1] = x
        return
    buf.resize(k)
    for i in range(k):
        buf[i].first = col[i]
        buf[i].second = val[i]
    sort(buf.begin(), buf.end())
    for i in range(k):
        col[i] = buf[i].first
        val[i] = buf[i].second


def symmetric_csr(int64_t n, const int64_t[::1] u, const int64_t[::1] v,
                  const double[::1] w):
    """Arrays of the symmetric ``n × n`` CSR matrix of the shortest weight between each
    pair of adjacent nodes: loops left out, parallel edges reduced to their minimum,
    columns sorted, explicit zeros kept. Returns ``(indptr, indices, data)`` (int64,
    int32, float64)."""
    if n >= 2**31:
        raise OverflowError("more than 2**31 nodes")
    cdef Py_ssize_t m = u.shape[0], e, i, k, r, a, b
    indptr_a = np.zeros(n + 1, dtype=np.int64)
    cdef int64_t[::1] indptr = indptr_a
    for e in range(m):
        if u[e] != v[e]:
            indptr[u[e] + 1] += 1
            indptr[v[e] + 1] += 1
    for i in range(n):
        indptr[i + 1] += indptr[i]
    cdef int64_t nnz = indptr[n]
    col_a = np.empty(nnz, dtype=np.int32)
    val_a = np.empty(nnz, dtype=np.float64)
    cdef int32_t[::1] col = col_a
    cdef double[::1] val = val_a
    fill_a = indptr_a[:n].copy()
    cdef int64_t[::1] fill = fill_a
    cdef Py_ssize_t ahead
    with nogil:
        for e in range(m):
            # random writes: the fill counters of the edge 32 ahead and the slots of the
            # edge 16 ahead are prefetched meanwhile
            ahead = e + 32
            if ahead < m:
                __builtin_prefetch(&fill[u[ahead]])
                __builtin_prefetch(&fill[v[ahead]])
            ahead = e + 16
            if ahead < m:
                __builtin_prefetch(&col[fill[u[ahead]]])
                __builtin_prefetch(&val[fill[u[ahead]]])
                __builtin_prefetch(&col[fill[v[ahead]]])
                __builtin_prefetch(&val[fill[v[ahead]]])
            a = u[e]
            b = v[e]
            if a == b:
                continue
            col[fill[a]] = <int32_t>b
            val[fill[a]] = w[e]
            fill[a] += 1
            col[fill[b]] = <int32_t>a
            val[fill[b]] = w[e]
            fill[b] += 1
        # sort each row and keep the minimum of repeated columns (compacting in place)
        k = 0
        for r in range(n):
            a = indptr[r]
            b = indptr[r + 1]
            if b - a > 1:
                _sort_row(&col[a], &val[a], b - a)
            indptr[r] = k
            i = a
            while i < b:
                col[k] = col[i]
                val[k] = val[i]
                i += 1
                while i < b and col[i] == col[k]:
                    if val[i] < val[k]:
                        val[k] = val[i]
                    i += 1
                k += 1
        indptr[n] = k
    return indptr_a, col_a[:k], val_a[:k]


cdef inline int64_t _find(int64_t* parent, int64_t x) noexcept nogil:
    while parent[x] != x:
        parent[x] = parent[parent[x]]  # path halving
        x = parent[x]
    return x


def component_labels(int64_t n, const int64_t[::1] u, const int64_t[::1] v):
    """Connected components of an undirected graph given by its edges (union-find),
    labelled in order of each component's lowest node, as
    ``scipy.sparse.csgraph.connected_components`` does. Returns ``(count, labels)``."""
    parent_a = np.arange(n, dtype=np.int64)
    labels_a = np.empty(n, dtype=np.int64)
    lab_a = np.full(n, -1, dtype=np.int64)
    cdef int64_t[::1] parent = parent_a
    cdef int64_t[::1] labels = labels_a
    cdef int64_t[::1] lab = lab_a
    cdef Py_ssize_t e, i
    cdef int64_t ra, rb, count = 0
    with nogil:
        for e in range(u.shape[0]):
            ra = _find(&parent[0], u[e])
            rb = _find(&parent[0], v[e])
            if ra < rb:
                parent[rb] = ra
            elif rb < ra:
                parent[ra] = rb
        for i in range(n):
            ra = _find(&parent[0], i)
            if lab[ra] < 0:
                lab[ra] = count
                count += 1
            labels[i] = lab[ra]
    return count, labels_a


# ------------------------------------------------------------------------ edge grid
def line_bounds(const double[::1] x, const double[::1] y, const int64_t[::1] start,
                const int64_t[::1] count):
    """Envelope of each line of a vertex table (``shapely.bounds`` of lines): an
    ``(n, 4)`` array ``xmin, ymin, xmax, ymax``."""
    cdef Py_ssize_t n = start.shape[0], i, j
    out_a = np.empty((n, 4), dtype=np.float64)
    cdef double[:, ::1] out = out_a
    cdef double x0, y0, x1, y1
    with nogil:
        for i in range(n):
            j = start[i]
            x0 = x[j]
            x1 = x[j]
            y0 = y[j]
            y1 = y[j]
            for j in range(start[i] + 1, start[i] + count[i]):
                if x[j] < x0:
                    x0 = x[j]
                if x[j] > x1:
                    x1 = x[j]
                if y[j] < y0:
                    y0 = y[j]
                if y[j] > y1:
                    y1 = y[j]
            out[i, 0] = x0
            out[i, 1] = y0
            out[i, 2] = x1
            out[i, 3] = y1
    return out_a


def line_lengths(const double[::1] x, const double[::1] y, const int64_t[::1] start,
                 const int64_t[::1] count):
    """Length of each line of a vertex table, summed segment by segment as GEOS's
    ``Length::ofLine`` (``shapely.length``) does."""
    cdef Py_ssize_t n = start.shape[0], i, j
    out_a = np.empty(n, dtype=np.float64)
    cdef double[::1] out = out_a
    cdef double total, dx, dy
    with nogil:
        for i in range(n):
            total = 0.0
            for j in range(start[i] + 1, start[i] + count[i]):
                dx = x[j] - x[j - 1]
                dy = y[j] - y[j - 1]
                total += sqrt(dx * dx + dy * dy)
            out[i] = total
    return out_a


cdef inline int32_t _cell(double v, double o, double s, int32_t top) noexcept nogil:
    # as numpy: floor((v - o) / s) clipped to [0, top]
    cdef double c = floor((v - o) / s)
    if c < 0:
        c = 0
    if c > top:
        c = top
    return <int32_t>c


cdef inline uint64_t _spread(uint64_t v) noexcept nogil:
    # bits of a 32-bit value moved to the even positions
    v &= 0xFFFFFFFFULL
    v = (v | (v << 16)) & 0x0000FFFF0000FFFFULL
    v = (v | (v << 8)) & 0x00FF00FF00FF00FFULL
    v = (v | (v << 4)) & 0x0F0F0F0F0F0F0F0FULL
    v = (v | (v << 2)) & 0x3333333333333333ULL
    v = (v | (v << 1)) & 0x5555555555555555ULL
    return v


cdef inline uint64_t _morton(int32_t cx, int32_t cy) noexcept nogil:
    """Position of a cell along the Z-order curve."""
    return _spread(<uint64_t>cx) | (_spread(<uint64_t>cy) << 1)


def grid_index(const double[:, ::1] bounds, double x0, double y0, double size,
               int32_t nx, int32_t ny):
    """Cell -> edges CSR of a uniform grid: each edge listed (ascending) in every cell
    its envelope overlaps, with a copy of its envelope beside it (the queries then read
    a cell's envelopes from consecutive memory). Returns ``(indptr, edges, entry_bounds,
    cx0, cy0, multi)``."""
    cdef Py_ssize_t n = bounds.shape[0], i, c, cx, cy
    cx0_a = np.empty(n, dtype=np.int32)
    cy0_a = np.empty(n, dtype=np.int32)
    cx1_a = np.empty(n, dtype=np.int32)
    cy1_a = np.empty(n, dtype=np.int32)
    multi_a = np.empty(n, dtype=np.uint8)
    indptr_a = np.zeros(<int64_t>nx * ny + 1, dtype=np.int64)
    cdef int32_t[::1] cx0 = cx0_a
    cdef int32_t[::1] cy0 = cy0_a
    cdef int32_t[::1] cx1 = cx1_a
    cdef int32_t[::1] cy1 = cy1_a
    cdef unsigned char[::1] multi = multi_a
    cdef int64_t[::1] indptr = indptr_a
    cdef int64_t ncell = <int64_t>nx * ny, tot
    with nogil:
        for i in range(n):
            cx0[i] = _cell(bounds[i, 0], x0, size, nx - 1)
            cy0[i] = _cell(bounds[i, 1], y0, size, ny - 1)
            cx1[i] = _cell(bounds[i, 2], x0, size, nx - 1)
            cy1[i] = _cell(bounds[i, 3], y0, size, ny - 1)
            if cx1[i] < cx0[i]:
                cx1[i] = cx0[i]
            if cy1[i] < cy0[i]:
                cy1[i] = cy0[i]
            multi[i] = cx1[i] > cx0[i] or cy1[i] > cy0[i]
            for cx in range(cx0[i], cx1[i] + 1):
                for cy in range(cy0[i], cy1[i] + 1):
                    indptr[cx * ny + cy + 1] += 1
        for c in range(ncell):
            indptr[c + 1] += indptr[c]
    tot = indptr[ncell]
    edges_a = np.empty(tot, dtype=np.int32)
    eb_a = np.empty((tot, 4), dtype=np.float64)
    fill_a = indptr_a[:ncell].copy()
    cdef int32_t[::1] edges = edges_a
    cdef double[:, ::1] eb = eb_a
    cdef int64_t[::1] fill = fill_a
    cdef int64_t j, c2
    with nogil:
        for i in range(n):
            # random writes: the fill counter of the edge 32 ahead and the entry of the
            # edge 16 ahead (first cell) are prefetched meanwhile
            if i + 32 < n:
                __builtin_prefetch(&fill[<int64_t>cx0[i + 32] * ny + cy0[i + 32]])
            if i + 16 < n:
                c2 = fill[<int64_t>cx0[i + 16] * ny + cy0[i + 16]]
                __builtin_prefetch(&edges[c2])
                __builtin_prefetch(&eb[c2, 0])
            for cx in range(cx0[i], cx1[i] + 1):
                for cy in range(cy0[i], cy1[i] + 1):
                    c = cx * ny + cy
                    j = fill[c]
                    edges[j] = <int32_t>i
                    eb[j, 0] = bounds[i, 0]
                    eb[j, 1] = bounds[i, 1]
                    eb[j, 2] = bounds[i, 2]
                    eb[j, 3] = bounds[i, 3]
                    fill[c] = j + 1
    return indptr_a, edges_a, eb_a, cx0_a, cy0_a, multi_a.view(bool)


# ------------------------------------------------------------------- segment tests
cdef double _ORIENT_ERR = 1e-14  # as network._ORIENT_ERR


cdef inline int _orient(double px, double py, double qx, double qy, double rx, double ry,
                        double* det) noexcept nogil:
    """Orientation determinant of r relative to p -> q; 1 when its sign is certain
    (the error-bounded filter of network._orientation, same operations)."""
    cdef double detleft = (px - rx) * (qy - ry)
    cdef double detright = (py - ry) * (qx - rx)
    cdef double d = detleft - detright
    cdef double bound = fabs(detleft)
    bound += fabs(detright)
    bound *= _ORIENT_ERR
    det[0] = d
    return fabs(d) > bound


cdef inline int _pair_status(const double* ax, const double* ay, Py_ssize_t na,
                             const double* bx, const double* by, Py_ssize_t nb,
                             bint want_point, int* point_ok, double* px,
                             double* py) noexcept nogil:
    """Do two vertex chains intersect? 1 yes, 0 no, -1 uncertain (network.
    _intersects_filtered for one pair). With ``want_point``: the crossing of the first
    crossing segment pair (GEOS's loop order) and whether no uncertain segment pair
    comes before it."""
    cdef Py_ssize_t i, j
    cdef double p1x, p1y, p2x, p2y, q1x, q1y, q2x, q2y, o1, o2, o3, o4, dx, dy, ex, ey, r
    cdef int s1, s2, s3, s4, sure12, sure34, cross, apart
    cdef int unsure = 0
    point_ok[0] = 0
    if na < 2 or nb < 2:
        return -1
    for i in range(na - 1):
        p1x = ax[i]
        p1y = ay[i]
        p2x = ax[i + 1]
        p2y = ay[i + 1]
        for j in range(nb - 1):
            q1x = bx[j]
            q1y = by[j]
            q2x = bx[j + 1]
            q2y = by[j + 1]
            if (max(p1x, p2x) < min(q1x, q2x) or max(q1x, q2x) < min(p1x, p2x) or
                    max(p1y, p2y) < min(q1y, q2y) or max(q1y, q2y) < min(p1y, p2y)):
                continue
            s1 = _orient(p1x, p1y, p2x, p2y, q1x, q1y, &o1)
            s2 = _orient(p1x, p1y, p2x, p2y, q2x, q2y, &o2)
            s3 = _orient(q1x, q1y, q2x, q2y, p1x, p1y, &o3)
            s4 = _orient(q1x, q1y, q2x, q2y, p2x, p2y, &o4)
            sure12 = s1 and s2
            sure34 = s3 and s4
            cross = sure12 and sure34 and (o1 * o2 < 0) and (o3 * o4 < 0)
            if cross:
                if want_point and not unsure:
                    dx = p2x - p1x
                    dy = p2y - p1y
                    ex = q2x - q1x
                    ey = q2y - q1y
                    r = ((q1x - p1x) * ey - (q1y - p1y) * ex) / (dx * ey - dy * ex)
                    px[0] = p1x + r * dx
                    py[0] = p1y + r * dy
                    point_ok[0] = 1
                return 1
            apart = (sure12 and (o1 * o2 > 0)) or (sure34 and (o3 * o4 > 0))
            if not apart:
                unsure = 1
    return -1 if unsure else 0


def intersects_filtered(const double[::1] ax, const double[::1] ay,
                        const int64_t[::1] a_start, const int64_t[::1] a_count,
                        const int64_t[::1] ia, const double[::1] bx, const double[::1] by,
                        const int64_t[::1] b_start, const int64_t[::1] b_count,
                        const int64_t[::1] ib):
    """Status (1 / 0 / -1 uncertain) of each pair of chains ``a[ia[k]]``, ``b[ib[k]]``,
    and where they cross: ``(status, ok, x, y)`` (see ``network._intersects_filtered``)."""
    cdef Py_ssize_t n = ia.shape[0], k
    status_a = np.empty(n, dtype=np.int8)
    ok_a = np.zeros(n, dtype=np.uint8)
    x_a = np.full(n, np.nan)
    y_a = np.full(n, np.nan)
    cdef int8_t[::1] status = status_a
    cdef unsigned char[::1] ok = ok_a
    cdef double[::1] xs = x_a
    cdef double[::1] ys = y_a
    cdef int pok
    cdef double px, py
    cdef const double* pax = &ax[0] if ax.shape[0] else NULL
    cdef const double* pay = &ay[0] if ay.shape[0] else NULL
    cdef const double* pbx = &bx[0] if bx.shape[0] else NULL
    cdef const double* pby = &by[0] if by.shape[0] else NULL
    with nogil:
        for k in range(n):
            status[k] = _pair_status(pax + a_start[ia[k]], pay + a_start[ia[k]],
                                     a_count[ia[k]], pbx + b_start[ib[k]],
                                     pby + b_start[ib[k]], b_count[ib[k]], True, &pok,
                                     &px, &py)
            if pok:
                ok[k] = 1
                xs[k] = px
                ys[k] = py
    return status_a, ok_a.view(bool), x_a, y_a


def first_hits(const int64_t[::1] cell_ptr, const int32_t[::1] cell_edges,
               const double[:, ::1] eb, double x0, double y0, double size, int32_t nx,
               int32_t ny, const double[:, ::1] qb, const double[::1] gx,
               const double[::1] gy, const int64_t[::1] g_start,
               const int64_t[::1] g_count, const double[::1] ex, const double[::1] ey,
               const int64_t[::1] e_start, const int64_t[::1] e_count):
    """Lowest-numbered edge each chain certainly intersects, among the edges whose
    envelope meets its envelope ``qb`` (``-1`` when none; ``eb``: the envelope of each
    grid entry, see :func:`grid_index`), and the uncertain
    (chain, edge) pairs below it, for GEOS to decide. Returns ``(hit, uq, ue)``."""
    cdef Py_ssize_t n = qb.shape[0], q, k
    hit_a = np.full(n, -1, dtype=np.int64)
    cdef int64_t[::1] hit = hit_a
    cdef vector[int64_t] uq, ue
    cdef vector[int32_t] cand
    cdef int32_t cx0, cy0, cx1, cy1, cx, cy, e
    cdef int64_t c, j
    cdef Py_ssize_t nc
    cdef int32_t low
    cdef int meets
    cdef double qx0, qy0, qx1, qy1
    cdef int st, pok
    cdef double px, py
    cdef const double* pgx = &gx[0] if gx.shape[0] else NULL
    cdef const double* pgy = &gy[0] if gy.shape[0] else NULL
    cdef const double* pex = &ex[0] if ex.shape[0] else NULL
    cdef const double* pey = &ey[0] if ey.shape[0] else NULL
    cdef vector[pair[uint64_t, int64_t]] visit
    cdef Py_ssize_t t
    with nogil:
        # queries in Z-order of their lower-left cell: neighbouring queries read the same
        # cells and edges while they are in the cache (a random order misses on each)
        visit.reserve(n)
        for q in range(n):
            qx0 = qb[q, 0]
            qy0 = qb[q, 1]
            qx1 = qb[q, 2]
            qy1 = qb[q, 3]
            if not (qx0 == qx0 and qy0 == qy0 and qx1 == qx1 and qy1 == qy1):
                continue  # NaN: empty geometry
            visit.push_back(pair[uint64_t, int64_t](
                _morton(_cell(qx0, x0, size, nx - 1), _cell(qy0, y0, size, ny - 1)), q))
        sort(visit.begin(), visit.end())
        for t in range(<Py_ssize_t>visit.size()):
            q = visit[t].second
            qx0 = qb[q, 0]
            qy0 = qb[q, 1]
            qx1 = qb[q, 2]
            qy1 = qb[q, 3]
            cx0 = _cell(qx0, x0, size, nx - 1)
            cy0 = _cell(qy0, y0, size, ny - 1)
            cx1 = _cell(qx1, x0, size, nx - 1)
            cy1 = _cell(qy1, y0, size, ny - 1)
            # candidates: entries of the query's cells whose envelope meets its envelope
            # (written branch-free: about half pass, unpredictably)
            nc = 0
            for cx in range(cx0, max(cx1, cx0) + 1):
                c = <int64_t>cx * ny
                nc += cell_ptr[c + max(cy1, cy0) + 1] - cell_ptr[c + cy0]
            if <Py_ssize_t>cand.size() < nc:
                cand.resize(nc)
            nc = 0
            low = INT32_MAX
            for cx in range(cx0, max(cx1, cx0) + 1):
                c = <int64_t>cx * ny
                for j in range(cell_ptr[c + cy0], cell_ptr[c + max(cy1, cy0) + 1]):
                    e = cell_edges[j]
                    cand[nc] = e
                    meets = (eb[j, 0] <= qx1) & (eb[j, 2] >= qx0) & \
                        (eb[j, 1] <= qy1) & (eb[j, 3] >= qy0)
                    nc += meets
                    if meets and e < low:
                        low = e
            if nc == 0:
                continue
            # the lowest candidate first (k = -1): it is the answer for most outlines (a
            # compound crossed by its own driveway); the others in ascending order if not
            for k in range(-1, nc):
                if k < 0:
                    e = low
                else:
                    if k == 0:
                        sort(cand.begin(), cand.begin() + nc)
                    e = cand[k]
                    if e == low or (k > 0 and e == cand[k - 1]):
                        continue  # the lowest, or met in several cells
                st = _pair_status(pgx + g_start[q], pgy + g_start[q], g_count[q],
                                  pex + e_start[e], pey + e_start[e], e_count[e], False,
                                  &pok, &px, &py)
                if st == 1:
                    hit[q] = e
                    break
                if st < 0:
                    uq.push_back(q)
                    ue.push_back(e)
    uq_a = np.empty(uq.size(), dtype=np.int64)
    ue_a = np.empty(ue.size(), dtype=np.int64)
    for k in range(<Py_ssize_t>uq.size()):
        uq_a[k] = uq[k]
        ue_a[k] = ue[k]
    return hit_a, uq_a, ue_a


cdef inline double _point_edge(double x, double y, const double* ex, const double* ey,
                               Py_ssize_t count, double* measure) noexcept nogil:
    """Distance from (x, y) to a chain of ``count`` vertices and the metres along it to
    the nearest point (first segment at the smallest distance), in the operations of
    GEOS's ``Distance::pointToSegment`` and ``LengthIndexedLine.project``."""
    cdef Py_ssize_t i
    cdef double ax, ay, bx, by, dx, dy, len2, seglen, r, s, da, d
    cdef double start = 0.0, best = 0.0, m = 0.0
    for i in range(count - 1):
        ax = ex[i]
        ay = ey[i]
        bx = ex[i + 1]
        by = ey[i + 1]
        dx = bx - ax
        dy = by - ay
        len2 = dx * dx + dy * dy
        seglen = sqrt(len2)
        da = sqrt((x - ax) * (x - ax) + (y - ay) * (y - ay))
        if len2 == 0:
            d = da
            r = 2.0  # (projection factor inf: the segment's end measure)
        else:
            r = ((x - ax) * dx + (y - ay) * dy) / len2
            if r <= 0.0:
                d = da
            elif r >= 1.0:
                d = sqrt((x - bx) * (x - bx) + (y - by) * (y - by))
            else:
                s = ((ay - y) * dx - (ax - x) * dy) / len2
                d = fabs(s) * seglen
        if i == 0 or d < best:
            best = d
            if r <= 0.0:
                m = start
            elif r <= 1.0:
                m = start + r * seglen
            else:
                m = start + seglen
        start = start + seglen
    measure[0] = m
    return best


def point_segments(const double[::1] ex, const double[::1] ey, const int64_t[::1] e_start,
                   const int64_t[::1] e_count, const int64_t[::1] edges,
                   const double[::1] px, const double[::1] py):
    """Point ``k`` against edge ``edges[k]``: the distance (``shapely.distance``) and the
    metres along the edge to the nearest point (``shapely.line_locate_point``), in GEOS's
    arithmetic: the first segment at the smallest point-segment distance. Returns
    ``(distance, measure)``."""
    cdef Py_ssize_t n = edges.shape[0], k
    dist_a = np.empty(n, dtype=np.float64)
    meas_a = np.empty(n, dtype=np.float64)
    cdef double[::1] dist = dist_a
    cdef double[::1] meas = meas_a
    cdef double m
    if n == 0:
        return dist_a, meas_a
    with nogil:
        for k in range(n):
            dist[k] = _point_edge(px[k], py[k], &ex[e_start[edges[k]]], &ey[e_start[edges[k]]],
                                  e_count[edges[k]], &m)
            meas[k] = m
    return dist_a, meas_a


def nearest_to_points(const int64_t[::1] cell_ptr, const int32_t[::1] cell_edges,
                      const double[:, ::1] eb, double x0, double y0, double size, int32_t nx,
                      int32_t ny, const double[::1] px, const double[::1] py, double rad,
                      const double[::1] ex, const double[::1] ey,
                      const int64_t[::1] e_start, const int64_t[::1] e_count):
    """Nearest edge of each point among the edges whose envelope meets the point's box
    grown by ``rad`` metres (ties: the lowest edge number), and its distance (GEOS's
    arithmetic); ``-1`` where the nearest candidate lies farther than ``rad`` (an edge
    outside the box could be nearer). Returns ``(edge, distance)``."""
    cdef Py_ssize_t n = px.shape[0], q, t
    edge_a = np.full(n, -1, dtype=np.int64)
    dist_a = np.full(n, np.inf)
    cdef int64_t[::1] edge = edge_a
    cdef double[::1] dist = dist_a
    cdef vector[pair[uint64_t, int64_t]] visit
    cdef int32_t cx0, cy0, cx1, cy1, cx, e, best_e
    cdef int64_t c, j
    cdef double qx0, qy0, qx1, qy1, d, best, m
    if n == 0 or e_start.shape[0] == 0:
        return edge_a, dist_a
    with nogil:
        visit.reserve(n)
        for q in range(n):
            if px[q] == px[q] and py[q] == py[q]:
                visit.push_back(pair[uint64_t, int64_t](
                    _morton(_cell(px[q], x0, size, nx - 1), _cell(py[q], y0, size, ny - 1)), q))
        sort(visit.begin(), visit.end())
        for t in range(<Py_ssize_t>visit.size()):
            q = visit[t].second
            qx0 = px[q] - rad
            qy0 = py[q] - rad
            qx1 = px[q] + rad
            qy1 = py[q] + rad
            cx0 = _cell(qx0, x0, size, nx - 1)
            cy0 = _cell(qy0, y0, size, ny - 1)
            cx1 = max(_cell(qx1, x0, size, nx - 1), cx0)
            cy1 = max(_cell(qy1, y0, size, ny - 1), cy0)
            best_e = -1
            best = 0.0
            for cx in range(cx0, cx1 + 1):
                c = <int64_t>cx * ny
                for j in range(cell_ptr[c + cy0], cell_ptr[c + cy1 + 1]):
                    if not (eb[j, 0] <= qx1 and eb[j, 2] >= qx0 and
                            eb[j, 1] <= qy1 and eb[j, 3] >= qy0):
                        continue
                    e = cell_edges[j]
                    d = _point_edge(px[q], py[q], &ex[e_start[e]], &ey[e_start[e]],
                                    e_count[e], &m)
                    if best_e < 0 or d < best or (d == best and e < best_e):
                        best = d
                        best_e = e
            if best_e >= 0 and best <= rad:
                edge[q] = best_e
                dist[q] = best
    return edge_a, dist_a


# ------------------------------------------------------------------- pendant edges
def pendant_core(int64_t n, const int64_t[::1] eu, const int64_t[::1] ev,
                 const double[::1] length, const int64_t[::1] indptr,
                 const int32_t[::1] indices, const double[::1] data):
    """Pendant edges (a leaf: one incident edge, loops counted twice; its neighbour: at
    least two) in edge order, and the CSR without them (see ``WalkNetwork.pendant``).
    Returns ``(leaf, parent, length, core_indptr, core_indices, core_data)``."""
    cdef Py_ssize_t m = eu.shape[0], e, i, j, k
    deg_a = np.zeros(n, dtype=np.int64)
    cdef int64_t[::1] deg = deg_a
    cdef int64_t npend = 0
    with nogil:
        for e in range(m):
            deg[eu[e]] += 1
            deg[ev[e]] += 1
        for e in range(m):
            if (deg[eu[e]] == 1 and deg[ev[e]] >= 2) or (deg[ev[e]] == 1 and deg[eu[e]] >= 2):
                npend += 1
    leaf_a = np.empty(npend, dtype=np.int64)
    parent_a = np.empty(npend, dtype=np.int64)
    plen_a = np.empty(npend, dtype=np.float64)
    is_leaf_a = np.zeros(n, dtype=np.uint8)
    cdef int64_t[::1] leaf = leaf_a
    cdef int64_t[::1] parent = parent_a
    cdef double[::1] plen = plen_a
    cdef unsigned char[::1] is_leaf = is_leaf_a
    cdef int64_t nnz = indptr[n]
    out_ptr_a = np.empty(n + 1, dtype=np.int64)
    out_idx_a = np.empty(nnz, dtype=np.int32)
    out_dat_a = np.empty(nnz, dtype=np.float64)
    cdef int64_t[::1] out_ptr = out_ptr_a
    cdef int32_t[::1] out_idx = out_idx_a
    cdef double[::1] out_dat = out_dat_a
    with nogil:
        k = 0
        for e in range(m):
            if deg[eu[e]] == 1 and deg[ev[e]] >= 2:
                leaf[k] = eu[e]
                parent[k] = ev[e]
            elif deg[ev[e]] == 1 and deg[eu[e]] >= 2:
                leaf[k] = ev[e]
                parent[k] = eu[e]
            else:
                continue
            plen[k] = length[e]
            is_leaf[leaf[k]] = 1
            k += 1
        k = 0
        for i in range(n):
            out_ptr[i] = k
            if is_leaf[i]:
                continue
            for j in range(indptr[i], indptr[i + 1]):
                if not is_leaf[indices[j]]:
                    out_idx[k] = indices[j]
                    out_dat[k] = data[j]
                    k += 1
        out_ptr[n] = k
    return leaf_a, parent_a, plen_a, out_ptr_a, out_idx_a[:k], out_dat_a[:k]
