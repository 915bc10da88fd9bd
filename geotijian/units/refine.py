"""Boundary moves after splitting and merging: :func:`_repair` moves atoms between adjacent
units while the total range violation drops; :func:`_refine` moves atoms to shorten unit
boundaries (compactness), never worsening the range, within ±25 % of the group's mean
unit size.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .graph import _Graph, _part_matrix, _violation


_BALANCE_TOL = 0.25  # refinement keeps units within ±25 % of their group's mean size


def _repair(g: _Graph, labels: np.ndarray, lo: float, hi: float, *, max_moves: int | None = None) -> np.ndarray:
    """Move boundary atoms between adjacent parts while the total range violation drops."""
    labels = labels.copy()
    w = g.w
    max_moves = max_moves if max_moves is not None else 4 * g.n
    for _ in range(max_moves):
        k = int(labels.max()) + 1
        pw = np.bincount(labels, weights=w, minlength=k)
        vio = _violation(pw, lo, hi)
        bad = np.flatnonzero(vio > 0)
        if len(bad) == 0:
            break
        best = None
        badset = set(bad.tolist())
        # candidate atoms: in or next to a violating part, on a part boundary
        A = g.A.tocoo()
        diff = labels[A.row] != labels[A.col]
        rows, cols = A.row[diff], A.col[diff]
        involve = np.isin(labels[rows], bad) | np.isin(labels[cols], bad)
        for a, b in zip(rows[involve].tolist(), cols[involve].tolist()):
            p, q = int(labels[a]), int(labels[b])  # move a from p to q
            if p not in badset and q not in badset:
                continue
            np_, nq = pw[p] - w[a], pw[q] + w[a]
            delta = float(_violation(np_, lo, hi) + _violation(nq, lo, hi) - vio[p] - vio[q])
            if delta >= -1e-9 or np_ <= 0 and (labels == p).sum() == 1:
                continue
            key = (delta, -w[a], a, q)
            if best is not None and key >= best[0]:
                continue
            members = np.flatnonzero(labels == p)
            members = members[members != a]
            if len(members) == 0 or len(g.components(members)) > 1:
                continue
            best = (key, a, q)
        if best is None:
            break
        labels[best[1]] = best[2]
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _connected_without(g: _Graph, members: list[int], a: int, in_part: np.ndarray) -> bool:
    """Is ``members`` minus atom ``a`` still connected (BFS on the part, ``in_part`` marks it)?"""
    rest = [m for m in members if m != a]
    if not rest:
        return False
    in_part[a] = False
    seen = {rest[0]}
    stack = [rest[0]]
    nb = g.nb
    while stack:
        v = stack.pop()
        for u in nb[v]:
            if in_part[u] and u not in seen:
                seen.add(u)
                stack.append(u)
    in_part[a] = True
    return len(seen) == len(rest)


def _refine(g: _Graph, labels: np.ndarray, lo: float, hi: float, origin: np.ndarray, *,
            rounds: int = 4) -> np.ndarray:
    """Boundary moves that shorten the units' boundaries (compactness), never worsening range.

    An atom moves from its unit p to an adjacent unit q when it shares more boundary with q
    than with p (the total unit boundary gets shorter), p stays connected, the range
    violation of p and q does not grow, and q descends from the same original group
    (the same committee, or merged committees) as the atom, and both units stay within
    ±25 % of the mean unit size of that group (balance), or get closer to it. Atoms joined
    to their unit only across water move to the unit they touch on land, when the range
    allows.
    """
    labels = labels.copy()
    w = g.w
    k0 = int(labels.max()) + 1
    pw0 = np.bincount(labels, weights=w, minlength=k0)
    uo = np.full(k0, -1)
    uo[labels[::-1]] = origin[::-1]
    # balance band: each unit stays within ±_BALANCE_TOL of the mean unit of its group
    mean_of = pd.Series(pw0).groupby(uo).mean()
    band_lo = np.maximum(lo, mean_of.to_numpy() * (1 - _BALANCE_TOL))
    band_hi = np.minimum(hi, mean_of.to_numpy() * (1 + _BALANCE_TOL))
    bidx = {o: i for i, o in enumerate(mean_of.index)}

    def cost(x: float, o: int) -> float:
        i = bidx[o]
        return 1e3 * float(_violation(x, lo, hi)) + float(_violation(x, band_lo[i], band_hi[i]))

    for _ in range(rounds):
        k = int(labels.max()) + 1
        pw = np.bincount(labels, weights=w, minlength=k)
        M = _part_matrix(labels, k)
        AM = (g.A @ M).tocoo()
        own = np.asarray((g.A @ M)[np.arange(g.n), labels]).ravel()
        a_, q_, l_ = AM.row, AM.col, AM.data
        cand = (q_ != labels[a_]) & (l_ - own[a_] > 1e-6)
        if not cand.any():
            break
        a_, q_, gain = a_[cand], q_[cand], (l_ - own[a_])[cand]
        unit_origin = np.full(k, -1)
        unit_origin[labels[::-1]] = origin[::-1]
        order = np.lexsort((q_, a_, -gain))
        members = {u: np.flatnonzero(labels == u).tolist() for u in np.unique(labels[a_[order]])}
        moved = 0
        for t in order:
            a, q = int(a_[t]), int(q_[t])
            p = int(labels[a])
            if p == q or unit_origin[q] != origin[a]:
                continue
            nbl, nwl = g.nb[a], g.nw[a]
            to_q = sum(ln for u, ln in zip(nbl, nwl) if labels[u] == q)
            to_p = sum(ln for u, ln in zip(nbl, nwl) if labels[u] == p)
            if to_q - to_p <= 1e-6:
                continue
            np_, nq = pw[p] - w[a], pw[q] + w[a]
            o = int(origin[a])
            if cost(np_, o) + cost(nq, o) > cost(pw[p], o) + cost(pw[q], o) + 1e-9:
                continue
            mem = members.get(p)
            if mem is None:
                mem = members[p] = np.flatnonzero(labels == p).tolist()
            in_part = labels == p
            if not _connected_without(g, mem, a, in_part):
                continue
            labels[a] = q
            pw[p], pw[q] = np_, nq
            mem.remove(a)
            if q in members:
                members[q].append(a)
            moved += 1
        if moved == 0:
            break
    _, labels = np.unique(labels, return_inverse=True)
    return labels
