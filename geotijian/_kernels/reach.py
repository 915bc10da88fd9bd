"""Bounded shortest-path searches from many sources, each on its own, as CSR rows.

:func:`reach_rows` is the search of :func:`geotijian.plan.costs.bounded_distance_matrix`:
for each source (a home with one or more start arcs onto the network) every node within
the cut distance, with its distance. A binary-heap Dijkstra that touches only what it
reaches (the distance array is reset where it was written), so 23,000 searches of a few
hundred nodes on a 290,000-node network cost their reach, not 23,000 network-sized
initialisations (``scipy.sparse.csgraph.dijkstra`` fills a dense row per source).

The values are those of any Dijkstra in the same float arithmetic: a node's distance is
``min(start weight, min over neighbours p of D[p] + w(p, node))``, and as ``x + w`` is
non-decreasing in ``x`` that minimum is the smallest left-to-right sum over the paths
within the cut, whatever order ties are settled in (tested against scipy's window search
bit for bit, and against networkx's Dijkstra).
"""

from __future__ import annotations

import numpy as np

from ._jit import jit


@jit
def _search(indptr, indices, data, start_node, start_w, a0, a1, limit, dist, touched, hk, hv, row_n):
    """One source: its settled nodes into ``row_n`` (their distances stay in ``dist`` until
    the caller resets the ``touched`` nodes); returns (settled, touched). The heap is written out inline and every array is fixed in size here (a
    numba call taking arrays counts references, and an array that may be replaced
    inside a loop is reloaded on each access: both tripled the time per settled node)."""
    nt = 0
    size = 0
    for a in range(a0, a1):
        v = start_node[a]
        w = start_w[a]
        if w <= limit and w < dist[v]:
            if dist[v] == np.inf:
                touched[nt] = v
                nt += 1
            dist[v] = w
            i = size                      # push (w, v)
            hk[i] = w
            hv[i] = v
            while i > 0:
                p = (i - 1) >> 1
                if hk[p] <= hk[i]:
                    break
                hk[p], hk[i] = hk[i], hk[p]
                hv[p], hv[i] = hv[i], hv[p]
                i = p
            size += 1
    k = 0
    while size > 0:
        d = hk[0]
        u = hv[0]
        last = size - 1                   # pop the smallest
        hk[0] = hk[last]
        hv[0] = hv[last]
        i = 0
        while True:
            c = 2 * i + 1
            if c >= last:
                break
            if c + 1 < last and hk[c + 1] < hk[c]:
                c += 1
            if hk[i] <= hk[c]:
                break
            hk[i], hk[c] = hk[c], hk[i]
            hv[i], hv[c] = hv[c], hv[i]
            i = c
        size = last
        if d > dist[u]:
            continue  # stale: u was reached shorter since (settled once, at dist[u])
        row_n[k] = u
        k += 1
        for j in range(indptr[u], indptr[u + 1]):
            v = indices[j]
            nd = d + data[j]
            if nd <= limit and nd < dist[v]:
                if dist[v] == np.inf:
                    touched[nt] = v
                    nt += 1
                dist[v] = nd
                i = size                  # push (nd, v)
                hk[i] = nd
                hv[i] = v
                while i > 0:
                    p = (i - 1) >> 1
                    if hk[p] <= hk[i]:
                        break
                    hk[p], hk[i] = hk[i], hk[p]
                    hv[p], hv[i] = hv[i], hv[p]
                    i = p
                size += 1
    return k, nt


@jit
def _reach_rows(indptr, indices, data, start_ptr, start_node, start_w, limit):
    n = indptr.shape[0] - 1
    m = start_ptr.shape[0] - 1
    dist = np.full(n, np.inf)
    touched = np.empty(n, dtype=np.int64)
    # a push is a strict improvement of a node through an arc or a start: the heap never
    # holds more than arcs + starts of one source
    most = 0
    for s in range(m):
        most = max(most, start_ptr[s + 1] - start_ptr[s])
    hk = np.empty(indptr[n] + most + 1, dtype=np.float64)
    hv = np.empty(indptr[n] + most + 1, dtype=np.int64)
    row_n = np.empty(n, dtype=np.int64)
    out_ptr = np.zeros(m + 1, dtype=np.int64)
    out_n = np.empty(max(1024, 64 * m), dtype=np.int64)
    out_d = np.empty(max(1024, 64 * m), dtype=np.float64)
    k = 0
    for s in range(m):
        r, nt = _search(indptr, indices, data, start_node, start_w, start_ptr[s], start_ptr[s + 1], limit,
                        dist, touched, hk, hv, row_n)
        row_n[:r].sort()   # the row's nodes ascending (CSR order); their distances are read from dist
        if k + r > out_n.shape[0]:
            grown = max(2 * out_n.shape[0], k + r)
            tmp_n = np.empty(grown, dtype=np.int64)
            tmp_d = np.empty(grown, dtype=np.float64)
            tmp_n[:k] = out_n[:k]
            tmp_d[:k] = out_d[:k]
            out_n = tmp_n
            out_d = tmp_d
        for i in range(r):
            out_n[k + i] = row_n[i]
            out_d[k + i] = dist[row_n[i]]
        for i in range(nt):
            dist[touched[i]] = np.inf
        k += r
        out_ptr[s + 1] = k
    return out_ptr, out_n[:k], out_d[:k]


def reach_rows(indptr: np.ndarray, indices: np.ndarray, data: np.ndarray, start_ptr: np.ndarray,
               start_node: np.ndarray, start_w: np.ndarray, limit: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every node within ``limit`` of each source, with its distance, as CSR arrays.

    Parameters
    ----------
    indptr, indices, data : ndarray
        The graph as CSR arrays (arc weights ≥ 0; repeated and zero arcs allowed).
    start_ptr, start_node, start_w : ndarray
        Source ``s`` starts at nodes ``start_node[start_ptr[s]:start_ptr[s + 1]]`` with
        those weights (its distance to them); starts beyond ``limit`` are ignored.
    limit : float
        Cut distance: nodes farther are not reached (same unit as the weights).

    Returns
    -------
    (indptr, node, distance) : ndarray
        Row ``s`` holds the nodes at distance ≤ ``limit`` from source ``s``, ascending,
        with their distances (int64, int64, float64).
    """
    return _reach_rows(np.ascontiguousarray(indptr, dtype=np.int64),
                       np.ascontiguousarray(indices, dtype=np.int64),
                       np.ascontiguousarray(data, dtype=np.float64),
                       np.ascontiguousarray(start_ptr, dtype=np.int64),
                       np.ascontiguousarray(start_node, dtype=np.int64),
                       np.ascontiguousarray(start_w, dtype=np.float64), float(limit))
