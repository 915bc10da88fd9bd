"""Graph arrays of the walk network: the symmetric CSR matrix, connected components and
the pendant (dead-end) edges. Tested against scipy (``tests/test_kernels.py``) and,
through the distances, against networkx's Dijkstra."""

from __future__ import annotations

import numpy as np

from ._jit import jit
from .reach import reach_rows


@jit
def _heapsort_pairs(key, val, a, b):
    """Sort ``key[a:b]`` in place, ``val[a:b]`` alongside (heapsort: no extra memory,
    O(k log k) for a node of any degree)."""
    n = b - a
    for top in range(n // 2 - 1, -1, -1):
        _sift_down(key, val, a, top, n)
    for end in range(n - 1, 0, -1):
        key[a], key[a + end] = key[a + end], key[a]
        val[a], val[a + end] = val[a + end], val[a]
        _sift_down(key, val, a, 0, end)


@jit
def _sift_down(key, val, a, i, n):
    while True:
        c = 2 * i + 1
        if c >= n:
            return
        if c + 1 < n and key[a + c + 1] > key[a + c]:
            c += 1
        if key[a + i] >= key[a + c]:
            return
        key[a + i], key[a + c] = key[a + c], key[a + i]
        val[a + i], val[a + c] = val[a + c], val[a + i]
        i = c


@jit
def _symmetric_csr(n, u, v, w):
    m = u.shape[0]
    indptr = np.zeros(n + 1, dtype=np.int64)
    for e in range(m):
        if u[e] != v[e]:
            indptr[u[e] + 1] += 1
            indptr[v[e] + 1] += 1
    for i in range(n):
        indptr[i + 1] += indptr[i]
    nnz = indptr[n]
    col = np.empty(nnz, dtype=np.int32)
    val = np.empty(nnz, dtype=np.float64)
    fill = indptr[:n].copy()
    for e in range(m):
        a = u[e]
        b = v[e]
        if a == b:
            continue
        col[fill[a]] = b
        val[fill[a]] = w[e]
        fill[a] += 1
        col[fill[b]] = a
        val[fill[b]] = w[e]
        fill[b] += 1
    # sort each row by column and keep the minimum of repeated columns (compacting in
    # place); rows are short: insertion sort, a long one by heapsort
    k = 0
    for r in range(n):
        a = indptr[r]
        b = indptr[r + 1]
        if b - a > 32:
            _heapsort_pairs(col, val, a, b)
        else:
            for i in range(a + 1, b):
                c = col[i]
                x = val[i]
                j = i - 1
                while j >= a and col[j] > c:
                    col[j + 1] = col[j]
                    val[j + 1] = val[j]
                    j -= 1
                col[j + 1] = c
                val[j + 1] = x
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
    return indptr, col[:k], val[:k]


def symmetric_csr(n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Arrays of the symmetric ``n × n`` CSR matrix of the shortest weight between each
    pair of adjacent nodes: loops left out, parallel edges reduced to their minimum,
    columns sorted, explicit zeros kept. Returns ``(indptr, indices, data)`` (int64,
    int32, float64)."""
    if n >= 2**31:
        raise OverflowError("more than 2**31 nodes")
    return _symmetric_csr(np.int64(n), np.ascontiguousarray(u, dtype=np.int64),
                          np.ascontiguousarray(v, dtype=np.int64),
                          np.ascontiguousarray(w, dtype=np.float64))


@jit
def _component_labels(n, u, v):
    parent = np.empty(n, dtype=np.int64)
    for i in range(n):
        parent[i] = i
    for e in range(u.shape[0]):
        ra = u[e]
        while parent[ra] != ra:  # (path halving)
            parent[ra] = parent[parent[ra]]
            ra = parent[ra]
        rb = v[e]
        while parent[rb] != rb:
            parent[rb] = parent[parent[rb]]
            rb = parent[rb]
        if ra < rb:
            parent[rb] = ra
        elif rb < ra:
            parent[ra] = rb
    labels = np.empty(n, dtype=np.int64)
    lab = np.empty(n, dtype=np.int64)
    lab[:] = -1
    count = 0
    for i in range(n):
        ra = i
        while parent[ra] != ra:
            parent[ra] = parent[parent[ra]]
            ra = parent[ra]
        if lab[ra] < 0:
            lab[ra] = count
            count += 1
        labels[i] = lab[ra]
    return count, labels


def component_labels(n: int, u: np.ndarray, v: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of an undirected graph given by its edges (union-find),
    labelled in order of each component's lowest node, as
    ``scipy.sparse.csgraph.connected_components`` does. Returns ``(count, labels)``."""
    count, labels = _component_labels(np.int64(n), np.ascontiguousarray(u, dtype=np.int64),
                                      np.ascontiguousarray(v, dtype=np.int64))
    return int(count), labels


@jit
def _pendant_core(n, eu, ev, length, indptr, indices, data):
    m = eu.shape[0]
    deg = np.zeros(n, dtype=np.int64)
    for e in range(m):
        deg[eu[e]] += 1
        deg[ev[e]] += 1
    npend = 0
    for e in range(m):
        if (deg[eu[e]] == 1 and deg[ev[e]] >= 2) or (deg[ev[e]] == 1 and deg[eu[e]] >= 2):
            npend += 1
    leaf = np.empty(npend, dtype=np.int64)
    parent = np.empty(npend, dtype=np.int64)
    plen = np.empty(npend, dtype=np.float64)
    is_leaf = np.zeros(n, dtype=np.bool_)
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
        is_leaf[leaf[k]] = True
        k += 1
    nnz = indptr[n]
    out_ptr = np.empty(n + 1, dtype=np.int64)
    out_idx = np.empty(nnz, dtype=np.int32)
    out_dat = np.empty(nnz, dtype=np.float64)
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
    return leaf, parent, plen, out_ptr, out_idx[:k], out_dat[:k]


def pendant_core(n: int, eu: np.ndarray, ev: np.ndarray, length: np.ndarray,
                 indptr: np.ndarray, indices: np.ndarray, data: np.ndarray) -> tuple:
    """Pendant edges (a leaf: one incident edge, loops counted twice; its neighbour: at
    least two) in edge order, and the CSR without them (see ``WalkNetwork.pendant``).
    Returns ``(leaf, parent, length, core_indptr, core_indices, core_data)``."""
    return _pendant_core(np.int64(n), np.ascontiguousarray(eu, dtype=np.int64),
                         np.ascontiguousarray(ev, dtype=np.int64),
                         np.ascontiguousarray(length, dtype=np.float64),
                         np.ascontiguousarray(indptr, dtype=np.int64),
                         np.ascontiguousarray(indices, dtype=np.int32),
                         np.ascontiguousarray(data, dtype=np.float64))


def bounded_dijkstra(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, sources: np.ndarray,
                     limit: float, n_keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Dijkstra from each source on its own, up to ``limit``, as sparse triplets.

    The graph is a CSR (``indptr``, ``indices``, ``data``: arc weights ≥ 0). For each
    source ``sources[i]``, every node ``< n_keep`` at distance ≤ ``limit`` gives one
    triplet ``(i, node, distance)``, sorted by source then node. The search is
    :func:`geotijian._kernels.reach.reach_rows` (each source starting at its node with
    weight 0): the work is that of the nodes reached, where
    ``scipy.sparse.csgraph.dijkstra(indices=..., limit=...)`` fills a dense row per
    source; the values equal scipy's to the last bit (tested).

    Returns
    -------
    (source position, node, distance) : three ndarrays (int64, int64, float64)
    """
    sources = np.asarray(sources, dtype=np.int64)
    m = len(sources)
    ptr, node, dist = reach_rows(indptr, indices, data, np.arange(m + 1), sources, np.zeros(m), limit)
    src = np.repeat(np.arange(m, dtype=np.int64), np.diff(ptr))
    keep = node < int(n_keep)
    return src[keep], node[keep], dist[keep]
