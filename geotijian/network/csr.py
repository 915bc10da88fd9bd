"""CSR matrices of edge lists: the symmetric network matrix (compiled) and the directed
arcs of the virtual source nodes (scipy's O(nnz) COO-to-CSR conversion)."""

from __future__ import annotations

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix

from .. import _kernels


def _csr(n: int, u: np.ndarray, v: np.ndarray, w: np.ndarray, shape: tuple | None = None,
         both: bool = True) -> csr_matrix:
    """CSR matrix of the minimum weight per (row, col); explicit zeros kept as edges.

    The symmetric matrix of an undirected edge list (``both``, square) is built by the
    compiled :func:`geotijian._kernels.symmetric_csr` in one pass. Otherwise, entries are grouped by row with scipy's O(nnz) COO-to-CSR conversion and sorted
    within each (short) row, instead of one global sort of all keys; parallel entries
    (adjacent after the row sort) keep their minimum.
    """
    if both and shape is None:
        indptr, indices, data = _kernels.symmetric_csr(
            n, np.asarray(u, dtype=np.int64), np.asarray(v, dtype=np.int64),
            np.asarray(w, dtype=np.float64))
        return csr_matrix((data, indices, indptr), shape=(n, n))
    if both:
        loop = u == v
        if loop.any():
            u, v, w = u[~loop], v[~loop], w[~loop]
        rows = np.concatenate([u, v])
        cols = np.concatenate([v, u])
        data = np.concatenate([w, w])
    else:
        rows, cols, data = u, v, w
    shape = shape or (n, n)
    data = np.asarray(data, dtype=float)
    coo = coo_matrix((data, (rows, cols)), shape=shape)
    coo.has_canonical_format = True  # group by row only: parallel entries are not summed
    m = coo.tocsr()
    if m.nnz != len(data):  # a scipy that sums duplicates anyway: global sort instead
        return _csr_sorted(rows, cols, data, shape)
    m.has_sorted_indices = False
    m.sort_indices()
    indptr, indices, data = m.indptr, m.indices, m.data
    if len(indices) > 1:
        same = indices[1:] == indices[:-1]
        if same.any():
            same[indptr[1:-1][(indptr[1:-1] > 0) & (indptr[1:-1] < len(indices))] - 1] = False
        if same.any():  # parallel edges: keep the shortest
            start = np.flatnonzero(np.r_[True, ~same])
            data = np.minimum.reduceat(data, start)
            indices = indices[start]
            kept = np.zeros(len(same) + 2, dtype=np.int64)
            np.cumsum(np.r_[True, ~same], out=kept[1:])
            indptr = kept[indptr]
    return csr_matrix((data, indices.astype(np.int32 if shape[1] < 2**31 else np.int64),
                       indptr.astype(np.int64)), shape=shape)


def _csr_sorted(rows, cols, data, shape) -> csr_matrix:
    """:func:`_csr` by one global sort of the (row, col) keys (fallback)."""
    key = rows.astype(np.int64) * shape[1] + cols
    order = np.argsort(key, kind="stable")
    key, data = key[order], data[order]
    start = np.flatnonzero(np.r_[True, key[1:] != key[:-1]])
    if len(start) < len(key):  # parallel edges: keep the shortest
        data = np.minimum.reduceat(data, start)
        key = key[start]
    rows, cols = key // shape[1], key % shape[1]
    indptr = np.zeros(shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=shape[0]), out=indptr[1:])
    return csr_matrix((data, cols.astype(np.int32 if shape[1] < 2**31 else np.int64), indptr),
                      shape=shape)
