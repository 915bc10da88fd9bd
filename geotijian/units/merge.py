"""Merging groups under the population floor into the adjacent group giving the most compact
union (Polsby-Popper of the union; merges that stay under the ceiling first).
"""

from __future__ import annotations

import math

import numpy as np

from .graph import _Graph, _part_matrix


def _merge_small(g: _Graph, labels: np.ndarray, lo: float, hi: float, *, allow_over: bool) -> np.ndarray:
    """Merge parts under the floor into the adjacent part giving the most compact union.

    A merge that stays under the ceiling is preferred; with ``allow_over`` the most compact
    merge is taken anyway (the result is split afterwards), otherwise a merge over the
    ceiling is made only if it reduces the range violation.
    """
    labels = labels.copy()
    done: set[int] = set()
    for _ in range(g.n + 1):
        _, labels = np.unique(labels, return_inverse=True)
        k = int(labels.max()) + 1
        pw = np.bincount(labels, weights=g.w, minlength=k)
        small = [p for p in np.argsort(pw, kind="stable") if pw[p] < lo and int(p) not in done]
        if not small:
            break
        M = _part_matrix(labels, k)
        B = (M.T @ g.A @ M).tocsr()
        diag = B.diagonal()
        P = np.asarray(M.T @ g.perim).ravel() - diag
        Ar = np.asarray(M.T @ g.area).ravel()
        p = int(small[0])
        row = B.getrow(p)
        qs = row.indices[row.indices != p]
        if len(qs) == 0:
            done.add(p)
            continue
        shared = np.asarray(row[:, qs].todense()).ravel()
        mw = pw[p] + pw[qs]
        mp = P[p] + P[qs] - 2 * shared
        mpp = 4 * math.pi * (Ar[p] + Ar[qs]) / np.maximum(mp, 1e-9) ** 2
        ok = mw <= hi
        if ok.any():
            cand = np.flatnonzero(ok)
            q = qs[cand[np.lexsort((qs[cand], -mpp[cand]))[0]]]
        elif allow_over:
            q = qs[np.lexsort((qs, -mpp))[0]]
        else:
            over = mw - hi
            j = np.lexsort((qs, -mpp, over))[0]
            if over[j] < lo - pw[p]:
                q = qs[j]
            else:
                done.add(p)
                continue
        labels[labels == p] = q
        done = set()  # labels change: re-examine
    _, labels = np.unique(labels, return_inverse=True)
    return labels
