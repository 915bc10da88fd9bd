"""Splitting a group above the population ceiling (a large committee, a town's land component).

The number of parts k is chosen so that the mean size is closest to the middle of the
range (:func:`_choose_k`); the group is cut by recursive balanced bisection of the atom
graph (:func:`_bisect`: 16 sweep directions and the Fiedler vector, each prefix grown
best-first so that it is connected, the cut chosen by balance and compactness of both
sides).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.linalg import eigh as scipy_eigh

from .graph import _Graph, _mask


def _choose_k(W: float, lo: float, hi: float, n: int) -> list[int]:
    """Candidate numbers of units for W residents, best first (in range, then near the middle)."""
    mid = (lo + hi) / 2
    kmin = max(1, int(math.floor(W / hi)))
    kmax = max(kmin, int(math.ceil(W / lo)) if lo > 0 else kmin + 1)
    ks = list(range(kmin, min(kmax, max(n, 1)) + 1)) or [1]

    def cost(k: int):
        s = W / k
        viol = k * (max(0.0, lo - s) + max(0.0, s - hi))
        return (round(viol, 6), abs(s - mid), k)

    return sorted(ks, key=cost)


_ANGLES = np.arange(8) * math.pi / 8


_SPECTRAL_MAX = 200  # atoms: dense eigen-decomposition up to this size (~3 ms)


def _fiedler(g: _Graph, idx: np.ndarray) -> np.ndarray | None:
    """Fiedler vector of the shared-length-weighted Laplacian of ``idx`` (None if not useful)."""
    n = len(idx)
    if n < 4 or n > _SPECTRAL_MAX:
        return None
    sub = g.A[idx][:, idx].toarray()
    lap = np.diag(sub.sum(axis=1)) - sub
    try:
        _, vecs = scipy_eigh(lap, subset_by_index=[1, 1], driver="evr")
    except (np.linalg.LinAlgError, ValueError):  # pragma: no cover
        return None
    v = vecs[:, 0]
    v = v * (1.0 if v[np.argmax(np.abs(v))] > 0 else -1.0)  # fixed sign: deterministic
    return np.round(v, 9)


def _bisect(g: _Graph, idx: np.ndarray, k: int, lo: float, hi: float) -> list[np.ndarray]:
    """Recursive balanced bisection of connected ``idx`` into ``k`` parts."""
    if k <= 1 or len(idx) <= 1:
        return [idx]
    k = min(k, len(idx))
    k1 = k // 2
    k2 = k - k1
    w = g.w
    W = float(w[idx].sum())
    flo = max(k1 * lo, W - k2 * hi)
    fhi = min(k1 * hi, W - k2 * lo)
    target = W * k1 / k
    unit = W / k
    A_tot = float(g.area[idx].sum())
    P_sum = float(g.perim[idx].sum())
    xy = g.xy[idx]
    c = xy.mean(axis=0)
    keys = [sgn * ((xy - c) @ np.array([math.cos(a), math.sin(a)])) for a in _ANGLES for sgn in (1.0, -1.0)]
    f = _fiedler(g, idx)
    if f is not None:  # spectral order: follows weak links (narrow necks, water crossings)
        keys += [f, -f]
    best = None
    for key_proj in keys:
        order, int1, cut = g.grow(idx, key_proj)
        wo = np.cumsum(w[order])[:-1]
        a1 = np.cumsum(g.area[order])[:-1]
        p1s = np.cumsum(g.perim[order])[:-1]
        i1 = int1[:-1]
        cu = cut[:-1]
        int_tot = int1[-1]
        P1 = p1s - 2 * i1
        P2 = (P_sum - p1s) - 2 * (int_tot - i1 - cu)
        with np.errstate(divide="ignore", invalid="ignore"):
            pp1 = np.where(P1 > 0, 4 * math.pi * a1 / np.maximum(P1, 1e-9) ** 2, 0)
            pp2 = np.where(P2 > 0, 4 * math.pi * (A_tot - a1) / np.maximum(P2, 1e-9) ** 2, 0)
        viol = np.maximum(0, flo - wo) + np.maximum(0, wo - fhi)
        score = np.abs(wo - target) / unit + (1 - (pp1 + pp2) / 2) + 10 * viol / unit
        cand = np.argsort(score, kind="stable")[:4]
        for t in cand:
            s1 = np.zeros(g.n, dtype=bool)
            s1[order[:t + 1]] = True
            s2_idx = order[t + 1:]
            comps = g.components(s2_idx)
            if len(comps) > 1:
                main = max(comps, key=lambda cc: (w[cc].sum(), len(cc), -cc.min()))
                for cc in comps:
                    if cc is not main:
                        s1[cc] = True
                s2_idx = main
            s2 = np.zeros(g.n, dtype=bool)
            s2[s2_idx] = True
            w1 = float(w[s1].sum())
            if not s2.any():
                continue
            v = max(0.0, flo - w1) + max(0.0, w1 - fhi)
            if len(comps) > 1:
                sc = abs(w1 - target) / unit + (1 - (g.pp(s1) + g.pp(s2)) / 2) + 10 * v / unit
            else:
                sc = float(score[t])
            key = (round(sc, 9), w1)
            if best is None or key < best[0]:
                best = (key, s1.copy(), s2)
            if len(comps) == 1:
                break  # candidates are sorted: the first connected one is this order's best
    if best is None:
        return [idx]
    s1 = np.flatnonzero(best[1])
    s2 = np.flatnonzero(best[2])
    return _bisect(g, s1, k1, lo, hi) + _bisect(g, s2, k2, lo, hi)


def _split(g: _Graph, idx: np.ndarray, lo: float, hi: float) -> list[np.ndarray]:
    """Split a group above the ceiling into parts in range (best effort)."""
    w = g.w
    heavy = idx[w[idx] > hi]
    parts: list[np.ndarray] = [np.array([h]) for h in heavy]
    rest = idx[w[idx] <= hi]
    for comp in g.components(rest):
        W = float(w[comp].sum())
        if W <= hi:
            parts.append(comp)
            continue
        best = None
        for k in _choose_k(W, lo, hi, len(comp))[:3]:
            cand = _bisect(g, comp, k, lo, hi)
            pw = np.array([w[p].sum() for p in cand])
            viol = float((np.maximum(0, lo - pw) + np.maximum(0, pw - hi)).sum())
            pp = np.mean([g.pp(_mask(g.n, p)) for p in cand])
            key = (viol, -pp)
            if best is None or key < best[0]:
                best = (key, cand)
            if viol == 0:
                break
        parts.extend(best[1])
    return parts
