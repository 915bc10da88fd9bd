"""Geometry of the edges: envelopes and lengths from their vertex tables, the uniform
edge grid, and the segment predicates and distances of snapping.

Lines are given by vertex tables: ``x``, ``y`` (metres) and each line's first row and
vertex count. The float arithmetic is written operation by operation as GEOS does it
(lengths, point-segment distances, projection factors, segment crossings), with no
contraction into fused multiply-adds (see ``_jit``), so the results equal shapely's to
the last bit; ``tests/test_kernels.py`` and ``tests/test_network.py`` compare every
kernel with GEOS.
"""

from __future__ import annotations

import numpy as np

from ._jit import jit

_ORIENT_ERR = 1e-14  # relative error bound of the orientation filter


def _i64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.int64)


def _f64(a) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


# ------------------------------------------------------------------ envelopes, lengths
@jit
def _line_bounds(x, y, start, count):
    n = start.shape[0]
    out = np.empty((n, 4), dtype=np.float64)
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
    return out


def line_bounds(x, y, start, count) -> np.ndarray:
    """Envelope of each line of a vertex table (``shapely.bounds`` of lines): an
    ``(n, 4)`` array ``xmin, ymin, xmax, ymax``."""
    return _line_bounds(_f64(x), _f64(y), _i64(start), _i64(count))


@jit
def _line_lengths(x, y, start, count):
    n = start.shape[0]
    out = np.empty(n, dtype=np.float64)
    for i in range(n):
        total = 0.0
        for j in range(start[i] + 1, start[i] + count[i]):
            dx = x[j] - x[j - 1]
            dy = y[j] - y[j - 1]
            total += np.sqrt(dx * dx + dy * dy)
        out[i] = total
    return out


def line_lengths(x, y, start, count) -> np.ndarray:
    """Length of each line of a vertex table, summed segment by segment as GEOS's
    ``Length::ofLine`` (``shapely.length``) does."""
    return _line_lengths(_f64(x), _f64(y), _i64(start), _i64(count))


# -------------------------------------------------------------------------- edge grid
@jit
def _cell(v, o, s, top):
    """Cell of a coordinate: ``floor((v - o) / s)`` clipped to ``[0, top]``."""
    c = np.floor((v - o) / s)
    if c < 0:
        c = 0.0
    if c > top:
        c = np.float64(top)
    return np.int64(c)


@jit
def _grid_index(bounds, x0, y0, size, nx, ny):
    n = bounds.shape[0]
    cx0 = np.empty(n, dtype=np.int32)
    cy0 = np.empty(n, dtype=np.int32)
    cx1 = np.empty(n, dtype=np.int32)
    cy1 = np.empty(n, dtype=np.int32)
    multi = np.empty(n, dtype=np.bool_)
    ncell = nx * ny
    indptr = np.zeros(ncell + 1, dtype=np.int64)
    for i in range(n):
        a = _cell(bounds[i, 0], x0, size, nx - 1)
        b = _cell(bounds[i, 1], y0, size, ny - 1)
        c = max(_cell(bounds[i, 2], x0, size, nx - 1), a)
        d = max(_cell(bounds[i, 3], y0, size, ny - 1), b)
        cx0[i] = a
        cy0[i] = b
        cx1[i] = c
        cy1[i] = d
        multi[i] = c > a or d > b
        for cx in range(a, c + 1):
            for cy in range(b, d + 1):
                indptr[cx * ny + cy + 1] += 1
    for c in range(ncell):
        indptr[c + 1] += indptr[c]
    tot = indptr[ncell]
    edges = np.empty(tot, dtype=np.int32)
    eb = np.empty((tot, 4), dtype=np.float64)
    fill = indptr[:ncell].copy()
    for i in range(n):
        for cx in range(cx0[i], cx1[i] + 1):
            for cy in range(cy0[i], cy1[i] + 1):
                c = np.int64(cx) * ny + cy
                j = fill[c]
                edges[j] = i
                eb[j, 0] = bounds[i, 0]
                eb[j, 1] = bounds[i, 1]
                eb[j, 2] = bounds[i, 2]
                eb[j, 3] = bounds[i, 3]
                fill[c] = j + 1
    return indptr, edges, eb, cx0, cy0, multi


def grid_index(bounds, x0: float, y0: float, size: float, nx: int, ny: int) -> tuple:
    """Cell -> edges CSR of a uniform grid: each edge listed (ascending) in every cell
    its envelope overlaps, with a copy of its envelope beside it (the queries then read
    a cell's envelopes from consecutive memory). Returns ``(indptr, edges, entry_bounds,
    cx0, cy0, multi)``."""
    return _grid_index(np.ascontiguousarray(bounds, dtype=np.float64), float(x0), float(y0),
                       float(size), np.int64(nx), np.int64(ny))


# ---------------------------------------------------------------------- segment tests
@jit
def _orient(px, py, qx, qy, rx, ry):
    """Orientation determinant of r relative to p -> q, and whether its sign is certain
    (the error-bounded filter GEOS and Shewchuk apply before exact arithmetic)."""
    detleft = (px - rx) * (qy - ry)
    detright = (py - ry) * (qx - rx)
    d = detleft - detright
    bound = abs(detleft)
    bound += abs(detright)
    bound *= _ORIENT_ERR
    return abs(d) > bound, d


@jit
def _pair_status(ax, ay, a0, na, bx, by, b0, nb, want_point):
    """Do the chains ``a[a0:a0 + na]`` and ``b[b0:b0 + nb]`` intersect? 1 yes, 0 no, -1
    uncertain; and, with ``want_point``, ``(ok, x, y)``: the crossing of the first
    crossing segment pair (GEOS's loop order) when no uncertain pair comes before it."""
    unsure = False
    if na < 2 or nb < 2:
        return -1, False, np.nan, np.nan
    for i in range(a0, a0 + na - 1):
        p1x = ax[i]
        p1y = ay[i]
        p2x = ax[i + 1]
        p2y = ay[i + 1]
        for j in range(b0, b0 + nb - 1):
            q1x = bx[j]
            q1y = by[j]
            q2x = bx[j + 1]
            q2y = by[j + 1]
            if (max(p1x, p2x) < min(q1x, q2x) or max(q1x, q2x) < min(p1x, p2x) or
                    max(p1y, p2y) < min(q1y, q2y) or max(q1y, q2y) < min(p1y, p2y)):
                continue
            s1, o1 = _orient(p1x, p1y, p2x, p2y, q1x, q1y)
            s2, o2 = _orient(p1x, p1y, p2x, p2y, q2x, q2y)
            s3, o3 = _orient(q1x, q1y, q2x, q2y, p1x, p1y)
            s4, o4 = _orient(q1x, q1y, q2x, q2y, p2x, p2y)
            sure12 = s1 and s2
            sure34 = s3 and s4
            if sure12 and sure34 and (o1 * o2 < 0) and (o3 * o4 < 0):
                if want_point and not unsure:
                    dx = p2x - p1x
                    dy = p2y - p1y
                    ex = q2x - q1x
                    ey = q2y - q1y
                    r = ((q1x - p1x) * ey - (q1y - p1y) * ex) / (dx * ey - dy * ex)
                    return 1, True, p1x + r * dx, p1y + r * dy
                return 1, False, np.nan, np.nan
            if not ((sure12 and (o1 * o2 > 0)) or (sure34 and (o3 * o4 > 0))):
                unsure = True
    return (-1 if unsure else 0), False, np.nan, np.nan


@jit
def _intersects_filtered(ax, ay, a_start, a_count, ia, bx, by, b_start, b_count, ib, status,
                         ok, xs, ys):
    for k in range(ia.shape[0]):
        a = ia[k]
        b = ib[k]
        st, pok, px, py = _pair_status(ax, ay, a_start[a], a_count[a], bx, by, b_start[b],
                                       b_count[b], True)
        status[k] = st
        if pok:
            ok[k] = True
            xs[k] = px
            ys[k] = py


def intersects_filtered(ax, ay, a_start, a_count, ia, bx, by, b_start, b_count, ib) -> tuple:
    """Status (1 / 0 / -1 uncertain) of each pair of chains ``a[ia[k]]``, ``b[ib[k]]``,
    and where they cross: ``(status, ok, x, y)`` (see
    ``network.geometry._intersects_filtered``)."""
    ia, ib = _i64(ia), _i64(ib)
    n = len(ia)
    status, ok = np.empty(n, dtype=np.int8), np.zeros(n, dtype=bool)
    x, y = np.full(n, np.nan), np.full(n, np.nan)
    _intersects_filtered(_f64(ax), _f64(ay), _i64(a_start), _i64(a_count), ia, _f64(bx),
                         _f64(by), _i64(b_start), _i64(b_count), ib, status, ok, x, y)
    return status, ok, x, y


def _spread(v: np.ndarray) -> np.ndarray:
    """Bits of values below 2**31 moved to the even positions."""
    v = v & 0xFFFFFFFF
    for shift, mask in ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF),
                        (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333),
                        (1, 0x5555555555555555)):
        v = (v | (v << shift)) & mask
    return v


def _visit_order(qx, qy, x0, y0, size, nx, ny) -> np.ndarray:
    """Queries with a finite corner ``(qx, qy)``, in Z-order of that corner's grid cell
    (ties: query order): neighbouring queries then read the same cells and edges while
    they are in the cache (a random order misses on each)."""
    ok = np.flatnonzero(~(np.isnan(qx) | np.isnan(qy)))
    cx = np.clip(np.floor((qx[ok] - x0) / size), 0, nx - 1).astype(np.int64)
    cy = np.clip(np.floor((qy[ok] - y0) / size), 0, ny - 1).astype(np.int64)
    return ok[np.argsort(_spread(cx) | (_spread(cy) << 1), kind="stable")]


@jit
def _sort_ints(a, n):
    """Sort ``a[:n]`` in place: insertion sort when short, else heapsort."""
    if n <= 16:
        for i in range(1, n):
            c = a[i]
            j = i - 1
            while j >= 0 and a[j] > c:
                a[j + 1] = a[j]
                j -= 1
            a[j + 1] = c
        return
    for top in range(n // 2 - 1, -1, -1):
        _sift_down(a, top, n)
    for end in range(n - 1, 0, -1):
        a[0], a[end] = a[end], a[0]
        _sift_down(a, 0, end)


@jit
def _sift_down(a, i, n):
    while True:
        c = 2 * i + 1
        if c >= n:
            return
        if c + 1 < n and a[c + 1] > a[c]:
            c += 1
        if a[i] >= a[c]:
            return
        a[i], a[c] = a[c], a[i]
        i = c


@jit
def _first_hits(cell_ptr, cell_edges, eb, x0, y0, size, nx, ny, qb, order, gx, gy, g_start,
                g_count, ex, ey, e_start, e_count, hit):
    cap = 64
    uq = np.empty(cap, dtype=np.int64)
    ue = np.empty(cap, dtype=np.int64)
    nu = 0
    cand = np.empty(64, dtype=np.int32)
    for q in order:
        qx0 = qb[q, 0]
        qy0 = qb[q, 1]
        qx1 = qb[q, 2]
        qy1 = qb[q, 3]
        cx0 = _cell(qx0, x0, size, nx - 1)
        cy0 = _cell(qy0, y0, size, ny - 1)
        cx1 = max(_cell(qx1, x0, size, nx - 1), cx0)
        cy1 = max(_cell(qy1, y0, size, ny - 1), cy0)
        # candidates: entries of the query's cells whose envelope meets its envelope
        # (written branch-free: about half pass, unpredictably)
        nc = 0
        for cx in range(cx0, cx1 + 1):
            c = cx * ny
            nc += cell_ptr[c + cy1 + 1] - cell_ptr[c + cy0]
        if cand.shape[0] < nc:
            cand = np.empty(2 * nc, dtype=np.int32)
        nc = 0
        low = np.int32(2147483647)
        for cx in range(cx0, cx1 + 1):
            c = cx * ny
            for j in range(cell_ptr[c + cy0], cell_ptr[c + cy1 + 1]):
                e = cell_edges[j]
                cand[nc] = e
                meets = (eb[j, 0] <= qx1) & (eb[j, 2] >= qx0) & (eb[j, 1] <= qy1) & (eb[j, 3] >= qy0)
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
                    _sort_ints(cand, nc)
                e = cand[k]
                if e == low or (k > 0 and e == cand[k - 1]):
                    continue  # the lowest, or met in several cells
            st = _pair_status(gx, gy, g_start[q], g_count[q], ex, ey, e_start[e], e_count[e],
                              False)[0]
            if st == 1:
                hit[q] = e
                break
            if st < 0:
                if nu == cap:
                    cap *= 2
                    uq2 = np.empty(cap, dtype=np.int64)
                    ue2 = np.empty(cap, dtype=np.int64)
                    for t in range(nu):  # (a loop: a slice copy compiles its shape checks)
                        uq2[t] = uq[t]
                        ue2[t] = ue[t]
                    uq = uq2
                    ue = ue2
                uq[nu] = q
                ue[nu] = e
                nu += 1
    return uq[:nu].copy(), ue[:nu].copy()


def first_hits(cell_ptr, cell_edges, eb, x0: float, y0: float, size: float, nx: int, ny: int,
               qb, gx, gy, g_start, g_count, ex, ey, e_start, e_count) -> tuple:
    """Lowest-numbered edge each chain certainly intersects, among the edges whose
    envelope meets its envelope ``qb`` (``-1`` when none; ``eb``: the envelope of each
    grid entry, see :func:`grid_index`), and the uncertain (chain, edge) pairs below it,
    for GEOS to decide, grouped by chain. Returns ``(hit, uq, ue)``."""
    qb = np.ascontiguousarray(qb, dtype=np.float64)
    hit = np.full(len(qb), -1, dtype=np.int64)
    finite = ~np.isnan(qb).any(axis=1)  # (an empty geometry has NaN bounds: no edge)
    order = _visit_order(np.where(finite, qb[:, 0], np.nan), qb[:, 1], x0, y0, size, nx, ny)
    uq, ue = _first_hits(_i64(cell_ptr), np.ascontiguousarray(cell_edges, dtype=np.int32),
                         np.ascontiguousarray(eb, dtype=np.float64), float(x0), float(y0),
                         float(size), np.int64(nx), np.int64(ny), qb, order, _f64(gx),
                         _f64(gy), _i64(g_start), _i64(g_count), _f64(ex), _f64(ey),
                         _i64(e_start), _i64(e_count), hit)
    return hit, uq, ue


# ---------------------------------------------------------------- point-edge distance
@jit
def _point_edge(x, y, ex, ey, e0, count):
    """Distance from (x, y) to the chain ``e[e0:e0 + count]`` and the metres along it to
    the nearest point (first segment at the smallest distance), in the operations of
    GEOS's ``Distance::pointToSegment`` and ``LengthIndexedLine.project``."""
    start = 0.0
    best = 0.0
    m = 0.0
    for i in range(e0, e0 + count - 1):
        ax = ex[i]
        ay = ey[i]
        bx = ex[i + 1]
        by = ey[i + 1]
        dx = bx - ax
        dy = by - ay
        len2 = dx * dx + dy * dy
        seglen = np.sqrt(len2)
        da = np.sqrt((x - ax) * (x - ax) + (y - ay) * (y - ay))
        if len2 == 0:
            d = da
            r = 2.0  # (projection factor inf: the segment's end measure)
        else:
            r = ((x - ax) * dx + (y - ay) * dy) / len2
            if r <= 0.0:
                d = da
            elif r >= 1.0:
                d = np.sqrt((x - bx) * (x - bx) + (y - by) * (y - by))
            else:
                s = ((ay - y) * dx - (ax - x) * dy) / len2
                d = abs(s) * seglen
        if i == e0 or d < best:
            best = d
            if r <= 0.0:
                m = start
            elif r <= 1.0:
                m = start + r * seglen
            else:
                m = start + seglen
        start = start + seglen
    return best, m


@jit
def _point_segments(ex, ey, e_start, e_count, edges, px, py):
    n = edges.shape[0]
    dist = np.empty(n, dtype=np.float64)
    meas = np.empty(n, dtype=np.float64)
    for k in range(n):
        e = edges[k]
        d, m = _point_edge(px[k], py[k], ex, ey, e_start[e], e_count[e])
        dist[k] = d
        meas[k] = m
    return dist, meas


def point_segments(ex, ey, e_start, e_count, edges, px, py) -> tuple[np.ndarray, np.ndarray]:
    """Point ``k`` against edge ``edges[k]``: the distance (``shapely.distance``) and the
    metres along the edge to the nearest point (``shapely.line_locate_point``), in GEOS's
    arithmetic: the first segment at the smallest point-segment distance. Returns
    ``(distance, measure)``."""
    return _point_segments(_f64(ex), _f64(ey), _i64(e_start), _i64(e_count), _i64(edges),
                           _f64(px), _f64(py))


@jit
def _nearest_to_points(cell_ptr, cell_edges, eb, x0, y0, size, nx, ny, px, py, order, rad,
                       ex, ey, e_start, e_count, edge, dist):
    for q in order:
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
            c = cx * ny
            for j in range(cell_ptr[c + cy0], cell_ptr[c + cy1 + 1]):
                if not (eb[j, 0] <= qx1 and eb[j, 2] >= qx0 and eb[j, 1] <= qy1 and eb[j, 3] >= qy0):
                    continue
                e = np.int64(cell_edges[j])
                d = _point_edge(px[q], py[q], ex, ey, e_start[e], e_count[e])[0]
                if best_e < 0 or d < best or (d == best and e < best_e):
                    best = d
                    best_e = e
        if best_e >= 0 and best <= rad:
            edge[q] = best_e
            dist[q] = best


def nearest_to_points(cell_ptr, cell_edges, eb, x0: float, y0: float, size: float, nx: int,
                      ny: int, px, py, rad: float, ex, ey, e_start, e_count) -> tuple:
    """Nearest edge of each point among the edges whose envelope meets the point's box
    grown by ``rad`` metres (ties: the lowest edge number), and its distance (GEOS's
    arithmetic); ``-1`` where the nearest candidate lies farther than ``rad`` (an edge
    outside the box could be nearer). Returns ``(edge, distance)``."""
    px, py = _f64(px), _f64(py)
    edge, dist = np.full(len(px), -1, dtype=np.int64), np.full(len(px), np.inf)
    if len(px) == 0 or len(e_start) == 0:
        return edge, dist
    order = _visit_order(px, py, x0, y0, size, nx, ny)
    _nearest_to_points(_i64(cell_ptr), np.ascontiguousarray(cell_edges, dtype=np.int32),
                       np.ascontiguousarray(eb, dtype=np.float64), float(x0), float(y0),
                       float(size), np.int64(nx), np.int64(ny), px, py, order, float(rad),
                       _f64(ex), _f64(ey), _i64(e_start), _i64(e_count), edge, dist)
    return edge, dist
