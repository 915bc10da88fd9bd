"""Envelope index of the edges on a uniform grid (:class:`_EdgeGrid`), cheaper to build
than an STRtree and queried in the compiled kernels, and the vectorised range helper
:func:`_ranges`. Here, below :mod:`geotijian.io` and :mod:`geotijian.network`, which both
query it (the roads' alignment check, the walk network's snapping)."""

from __future__ import annotations

import numpy as np
import shapely

from .spatial import grid_index, line_bounds


class _EdgeGrid:
    """Envelope index of the edges on a uniform grid (cheaper to build than an STRtree).

    Each edge is registered in every cell its envelope overlaps (cell -> edges as a CSR
XX. :meth:`pairs` answers the same
    question as ``STRtree.query(<envelopes>)``: every (query, edge) whose closed
    envelopes intersect, exactly (a pair met in several cells is kept once, in the first
    common cell), grouped by query.
    """

    def __init__(self, bounds: np.ndarray):
        n = len(bounds)
        bounds = np.ascontiguousarray(bounds, dtype=np.float64)
        self.bx0, self.by0, self.bx1, self.by1 = (np.ascontiguousarray(bounds[:, i]) for i in range(4))
        x0, y0 = self.bx0.min(), self.by0.min()
        w = max(self.bx1.max() - x0, 1e-9)
        h = max(self.by1.max() - y0, 1e-9)
        # cells as wide as the mean spacing of edges (about one edge per cell, n cells);
        # never more than 4n + 4 cells along an axis (a long thin network)
        size = max(np.sqrt(w * h / max(n, 1)), w / (4 * n + 4), h / (4 * n + 4), 1e-6)
        self.x0, self.y0, self.size = x0, y0, size
        self.nx, self.ny = int(w // size) + 1, int(h // size) + 1
        # (compiled: counting sort of the edges by cell, edges ascending in each cell)
        self.indptr, self.edges, self.entry_bounds, self.cx0, self.cy0, self.multi = grid_index(
            bounds, float(x0), float(y0), float(size), self.nx, self.ny)

    @classmethod
    def of_lines(cls, geoms: np.ndarray, vertices: tuple | None = None) -> _EdgeGrid:
        """Grid of line geometries; ``vertices`` = ``(x, y, start, count)``, their vertex
        table, when at hand (envelopes computed from it, no GEOS pass)."""
        if vertices is None:
            return cls(shapely.bounds(geoms))
        return cls(line_bounds(*vertices))

    def _cells(self, x0, y0, x1, y1):
        s, nx, ny = self.size, self.nx - 1, self.ny - 1
        out = []
        for v, o, top in ((x0, self.x0, nx), (y0, self.y0, ny), (x1, self.x0, nx), (y1, self.y0, ny)):
            c = (v - o) / s
            np.floor(c, out=c)
            np.clip(c, 0, top, out=c)
            out.append(c.astype(np.int32))
        cx0, cy0, cx1, cy1 = out
        return cx0, cy0, np.maximum(cx1, cx0), np.maximum(cy1, cy0)

    def _expand(self, cx0, cy0, cx1, cy1):
        """(item, cell) for every cell of each item's cell range (items of one cell: as is)."""
        wx, wy = cx1 - cx0 + 1, cy1 - cy0 + 1
        cnt = wx * wy
        one = cnt == 1
        if one.all():
            return np.arange(len(cx0), dtype=np.int32), cx0.astype(np.int64) * self.ny + cy0
        item = np.repeat(np.arange(len(cx0), dtype=np.int32), cnt)
        local = np.arange(len(item), dtype=np.int32) - np.repeat((np.cumsum(cnt) - cnt).astype(np.int32), cnt)
        wyi = wy[item]
        cell = (cx0[item] + local // wyi).astype(np.int64) * self.ny + (cy0[item] + local % wyi)
        return item, cell

    def pairs(self, qb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(query, edge) pairs of intersecting envelopes; ``qb`` rows are
        ``xmin, ymin, xmax, ymax`` (NaN rows match nothing). Grouped by query."""
        ok = np.isfinite(qb).all(axis=1)
        if not ok.all():
            qi = np.flatnonzero(ok)
            a, e = self.pairs(qb[ok])
            return qi[a], e
        if len(qb) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
        qx0, qy0, qx1, qy1 = (np.ascontiguousarray(qb[:, i]) for i in range(4))
        cx0, cy0, cx1, cy1 = self._cells(qx0, qy0, qx1, qy1)
        q, cell = self._expand(cx0, cy0, cx1, cy1)
        lo = self.indptr[cell]
        k = self.indptr[cell + 1] - lo
        e = self.edges[_ranges(lo, k)]
        q = np.repeat(q, k)
        keep = (self.bx0[e] <= qx1[q]) & (self.bx1[e] >= qx0[q]) & \
            (self.by0[e] <= qy1[q]) & (self.by1[e] >= qy0[q])
        # a pair met in several cells (edge and query both spanning several cells): keep
        # it in the first common cell only
        m = np.flatnonzero(keep & self.multi[e])
        if len(m):
            qm, em = q[m], e[m]
            cell_m = np.repeat(cell, k)[m]
            first = (np.maximum(cx0[qm], self.cx0[em]).astype(np.int64) * self.ny
                     + np.maximum(cy0[qm], self.cy0[em])) == cell_m
            keep[m[~first]] = False
        return q[keep].astype(np.int64), e[keep].astype(np.int64)


def _ranges(lo: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(lo[i], lo[i] + cnt[i])`` for all i, vectorised."""
    cnt = np.asarray(cnt)
    tot = int(cnt.sum())
    if tot == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
    return starts + np.arange(tot)
