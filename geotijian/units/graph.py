"""The atom graph of one town (block groups joined by shared boundary length), with the set
measures the partition steps share: perimeter and compactness of a set of atoms, connected
components, best-first growth along a direction, and the range violation of a size.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
from scipy import sparse


class _Graph:
    """Adjacency of the atoms (block groups) of one town, for partitioning."""

    def __init__(self, adj: sparse.csr_matrix, w: np.ndarray, area: np.ndarray, perim: np.ndarray,
                 xy: np.ndarray):
        self.A = adj.tocsr()
        self.n = adj.shape[0]
        self.w = w
        self.area = area
        self.perim = perim
        self.xy = xy
        ip, ix, d = self.A.indptr, self.A.indices, self.A.data
        self.nb = [ix[ip[i]:ip[i + 1]].tolist() for i in range(self.n)]
        self.nw = [d[ip[i]:ip[i + 1]].tolist() for i in range(self.n)]

    # set measures --------------------------------------------------------------
    def perimeter(self, mask: np.ndarray) -> float:
        x = mask.astype(float)
        return float(self.perim[mask].sum() - x @ (self.A @ x))

    def pp(self, mask: np.ndarray) -> float:
        p = self.perimeter(mask)
        return 4 * math.pi * float(self.area[mask].sum()) / p ** 2 if p > 0 else 0.0

    def components(self, idx: np.ndarray) -> list[np.ndarray]:
        """Connected components of the atoms ``idx`` (breadth-first on the adjacency lists)."""
        if len(idx) == 0:
            return []
        members = idx.tolist()
        inside = dict.fromkeys(members, -1)
        nb = self.nb
        comps: list[list[int]] = []
        for s0 in members:
            if inside[s0] >= 0:
                continue
            c = len(comps)
            inside[s0] = c
            comp = [s0]
            stack = [s0]
            while stack:
                v = stack.pop()
                for u in nb[v]:
                    if inside.get(u) == -1:
                        inside[u] = c
                        comp.append(u)
                        stack.append(u)
            comps.append(comp)
        if len(comps) == 1:
            return [idx]
        return [np.sort(np.array(cc)) for cc in comps]

    # growth --------------------------------------------------------------------
    def grow(self, idx: np.ndarray, proj: np.ndarray):
        """Order ``idx`` so that every prefix is connected: best-first growth along ``proj``.

        Returns the order and, per prefix, the internal shared length and the cut length
        to the rest of ``idx`` (metres).
        """
        n = self.n
        inS = np.zeros(n, dtype=bool)
        inS[idx] = True
        inS_l = inS.tolist()
        key = np.full(n, np.inf)
        key[idx] = proj
        key_l = key.tolist()
        added = [False] * n
        queued = [False] * n
        rest = sorted(zip(proj.tolist(), idx.tolist()))
        order: list[int] = []
        int_l: list[float] = []
        cut_l: list[float] = []
        ci = cc = 0.0
        ri = 0
        heap: list = []
        nb, nw = self.nb, self.nw
        while len(order) < len(idx):
            if not heap:  # start (or restart in a disconnected set) at the lowest key left
                while added[rest[ri][1]]:
                    ri += 1
                s = rest[ri][1]
                queued[s] = True
                heap.append((key_l[s], s))
            _, v = heapq.heappop(heap)
            added[v] = True
            order.append(v)
            for u, ln in zip(nb[v], nw[v]):
                if not inS_l[u]:
                    continue
                if added[u]:
                    ci += ln
                    cc -= ln
                else:
                    cc += ln
                    if not queued[u]:
                        queued[u] = True
                        heapq.heappush(heap, (key_l[u], u))
            int_l.append(ci)
            cut_l.append(cc)
        return np.array(order), np.array(int_l), np.array(cut_l)


def _mask(n: int, idx: np.ndarray) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[idx] = True
    return m


def _part_matrix(labels: np.ndarray, k: int) -> sparse.csr_matrix:
    n = len(labels)
    return sparse.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, k))


def _violation(x: np.ndarray | float, lo: float, hi: float):
    return np.maximum(0, lo - x) + np.maximum(0, x - hi)
