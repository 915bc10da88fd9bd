"""Row sets of the columns of a sparse matrix: hashes and exact comparisons, one pass.

The exact reductions of the siting models (:mod:`geotijian.plan.milp`) group candidates
that cover the same homes: each column's set is hashed (:func:`column_hash`: the sum of
one random 64-bit word per row, modulo 2**64, as ``numpy.add.reduceat`` gives it) and
every merge is then checked entry by entry (:func:`same_columns`). numpy needed a gather
of every entry and several temporary arrays of the matrix's size for each.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit


@jit
def _column_hash(indptr, indices, word):
    n = indptr.shape[0] - 1
    out = np.zeros(n, dtype=np.uint64)
    for j in range(n):
        s = np.uint64(0)
        for k in range(indptr[j], indptr[j + 1]):
            s += word[indices[k]]
        out[j] = s
    return out


def column_hash(indptr: np.ndarray, indices: np.ndarray, word: np.ndarray) -> np.ndarray:
    """Per column (compressed-column arrays ``indptr``, ``indices``), the sum of
    ``word[row]`` over its rows, wrapping modulo 2**64 (uint64)."""
    return _column_hash(np.ascontiguousarray(indptr, dtype=np.int64), np.ascontiguousarray(indices, dtype=np.int64),
                        np.ascontiguousarray(word, dtype=np.uint64))


@jit
def _same_columns(indptr, indices, a, b):
    out = np.zeros(a.shape[0], dtype=np.bool_)
    for i in range(a.shape[0]):
        p, q = indptr[a[i]], indptr[b[i]]
        c = indptr[a[i] + 1] - p
        if c != indptr[b[i] + 1] - q:
            continue
        same = True
        for k in range(c):
            if indices[p + k] != indices[q + k]:
                same = False
                break
        out[i] = same
    return out


def same_columns(indptr: np.ndarray, indices: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether column ``a[i]`` holds the same rows as column ``b[i]``, entry by entry
    (indices sorted within each column, no repeats: a canonical CSC)."""
    return _same_columns(np.ascontiguousarray(indptr, dtype=np.int64), np.ascontiguousarray(indices, dtype=np.int64),
                         np.ascontiguousarray(a, dtype=np.int64), np.ascontiguousarray(b, dtype=np.int64))
