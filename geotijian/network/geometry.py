"""Point and outline geometry against the edges, for snapping: the nearest edge, the
first edge an outline crosses, and the point pair of ``shapely.shortest_line``, from
vertex tables in the compiled kernels (GEOS's arithmetic, the same bits), GEOS deciding
only the touching or near-degenerate cases."""

from __future__ import annotations

import numpy as np
import shapely

from .. import _kernels
from .walk import WalkNetwork


class _Outlines:
    """The outlines of a layer's features (a polygon's boundary, other geometries as they
    are), made lazily: the vertex table, geometry types and envelopes come from the
    features themselves, and boundary geometries are created only for the features GEOS
    has to decide (creating them all cost more than snapping most of them).

    Indexing with an integer array gives the outlines of those features (still lazy);
    :func:`_geos` turns them into a geometry array.
    """

    def __init__(self, geoms: np.ndarray, kinds: np.ndarray | None = None):
        self.geoms = geoms
        kinds = shapely.get_type_id(geoms) if kinds is None else kinds
        self.poly = np.isin(kinds, [3, 6])
        out = kinds.copy()
        if self.poly.any():
            # a polygon without holes bounds itself with one LineString, else a
            # MultiLineString (as shapely.boundary)
            single = np.zeros(len(geoms), dtype=bool)
            single[kinds == 3] = shapely.get_num_interior_rings(geoms[kinds == 3]) == 0
            out[self.poly] = np.where(single[self.poly], 1, 5)
        self.kinds = out

    def __len__(self) -> int:
        return len(self.geoms)

    def __getitem__(self, rows) -> _Outlines:
        sub = object.__new__(_Outlines)
        sub.geoms, sub.poly, sub.kinds = self.geoms[rows], self.poly[rows], self.kinds[rows]
        return sub

    def objects(self) -> np.ndarray:
        """The outline geometries (``shapely.boundary`` of the polygons)."""
        if not self.poly.any():
            return self.geoms
        out = self.geoms.copy()
        out[self.poly] = shapely.boundary(self.geoms[self.poly])
        return out

    def vertex_table(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:func:`_vertex_table` of the outlines, from the features' own coordinates (a
        polygon without holes lists the vertices of its boundary, in the same order)."""
        return _vertex_table(self.geoms, self.kinds)


def _geos(geoms) -> np.ndarray:
    """A geometry array for GEOS (outlines made, see :class:`_Outlines`)."""
    return geoms.objects() if isinstance(geoms, _Outlines) else geoms


def _type_ids(geoms) -> np.ndarray:
    return geoms.kinds if isinstance(geoms, _Outlines) else shapely.get_type_id(geoms)


def _bounds(geoms) -> np.ndarray:
    """Envelopes (a polygon's is its boundary's)."""
    return shapely.bounds(geoms.geoms if isinstance(geoms, _Outlines) else geoms)


def _nearest_edges(network: WalkNetwork, geoms: np.ndarray, vertices: tuple | None = None):
    """Nearest edge of each geometry (ties: lowest edge number) and the distance.

    ``vertices``: the :func:`_vertex_table` of ``geoms`` when the caller has it.

    Outlines (polygon boundaries, lines) that touch or cross an edge are settled first
    (:func:`_first_intersecting`: distance 0). Otherwise, candidates are the edges whose
    envelope meets the geometry's envelope grown by a radius (the edge grid
    :class:`_EdgeGrid`, envelopes only), then exact ``shapely.distance``; a geometry
    whose best candidate lies within the radius is settled (no edge outside the grown
    envelope can be nearer). The rest retry with a larger radius, then
    ``STRtree.query_nearest``. Several times faster than ``query_nearest`` alone on
    20,000 compounds, same result, except where two edges tie within an ulp:
    ``query_nearest`` measures with other GEOS code and can rank such a tie of a
    multi-part outline the other way; here ``shapely.distance`` and the lowest number
    decide (tested).
    """
    grid = network._grid
    n = len(geoms)
    edge = np.full(n, -1, dtype=np.int64)
    d = np.full(n, np.inf)
    todo = np.arange(n)
    lines = np.flatnonzero(_type_ids(geoms) != 0)
    if len(lines):  # outlines touching or crossing a street (distance 0): the common case
        first = _first_intersecting(network, geoms[lines],
                                    None if vertices is None else _vertex_rows(vertices, lines))
        ok = first >= 0
        if ok.any():
            hit = lines[ok]
            edge[hit] = first[ok]
            d[hit] = 0.0
            todo = np.setdiff1d(todo, hit, assume_unique=True)
    bounds = _bounds(geoms)
    points = len(geoms) > 0 and lines.size == 0
    for rad in (12.0, 50.0, 200.0):
        if len(todo) == 0:
            break
        if points:  # compiled: grid search and GEOS's point-segment distance in one pass
            ex, ey, es, ec = network._edge_xy
            e, dist = _kernels.nearest_to_points(
                grid.indptr, grid.edges, grid.entry_bounds, grid.x0, grid.y0, grid.size,
                grid.nx, grid.ny, np.ascontiguousarray(bounds[todo, 0]),
                np.ascontiguousarray(bounds[todo, 1]), rad, ex, ey, es, ec)
            ok = e >= 0
            done = todo[ok]
            edge[done] = e[ok]
            d[done] = dist[ok]
            todo = todo[~ok]
            continue
        bb = bounds[todo]
        qa, qe = grid.pairs(bb + [-rad, -rad, rad, rad])
        if len(qa) == 0:
            continue
        dist = shapely.distance(_geos(geoms[todo[qa]]), network.edge_geometry[qe])
        order = np.lexsort((qe, dist, qa))
        qa_o = qa[order]
        sel = order[np.r_[True, qa_o[1:] != qa_o[:-1]]]
        ok = dist[sel] <= rad
        done = todo[qa[sel][ok]]
        edge[done] = qe[sel][ok]
        d[done] = dist[sel][ok]
        todo = np.setdiff1d(todo, done, assume_unique=True)
    if len(todo):
        (src, tgt), dist = network.tree.query_nearest(_geos(geoms[todo]), all_matches=True,
                                                      return_distance=True)
        order = np.lexsort((tgt, src))
        src, tgt, dist = src[order], tgt[order], dist[order]
        first = np.r_[True, src[1:] != src[:-1]]
        edge[todo[src[first]]] = tgt[first]
        d[todo[src[first]]] = dist[first]
    return edge, d


def _intersects_filtered(ax, ay, a_start, a_count, ia, bx, by, b_start, b_count, ib,
                         points: bool = False):
    """Do lines ``a[ia]`` and ``b[ib]`` intersect? 1 yes, 0 no, -1 uncertain (ask GEOS).

    Lines are given by vertex tables (``x``, ``y``, each line's first row and vertex
    count; count 0 for a multi-part line). Every segment pair is classified with float
    orientation tests whose sign is certain (the error-bounded filter GEOS and Shewchuk
    apply before exact arithmetic, relative bound 1e-14): a certain proper crossing means
    the lines intersect, certain separation of every segment pair means they do not.
    Touching, collinear or near-degenerate segment pairs are uncertain: the caller asks
    GEOS, so the answer is exactly ``shapely.intersects``. Compiled
    (:func:`geotijian._kernels.intersects_filtered`).

    With ``points=True`` also returns, per pair, where the lines cross: the crossing of
    the first segment pair in GEOS's order (segments of ``a``, then of ``b``), the point
    ``shapely.shortest_line`` gives, as ``(status, ok, x, y)``; ``ok`` is False where an
    uncertain segment pair comes first (GEOS must decide which point).
    """
    status, ok, x, y = _kernels.intersects_filtered(
        ax, ay, a_start, a_count, np.asarray(ia, dtype=np.int64), bx, by, b_start, b_count,
        np.asarray(ib, dtype=np.int64))
    return (status, ok, x, y) if points else status


def _first_intersecting(network: WalkNetwork, geoms: np.ndarray,
                        vertices: tuple | None = None) -> np.ndarray:
    """Lowest-numbered edge that each line geometry intersects (``-1`` when none).

    Same answer as ``network.tree.query(geoms, predicate="intersects")`` followed by the
    minimum edge per geometry, in one compiled pass
    (:func:`geotijian._kernels.first_hits`): the envelope candidates from the edge grid,
    in ascending order, tested as in :func:`_intersects_filtered` until the first certain
    hit; GEOS decides the uncertain pairs met before it (touching or collinear segments,
    multi-part outlines).
    """
    grid = network._grid
    gx, gy, g_start, g_count = _vertex_table(_geos(geoms)) if vertices is None else vertices
    ex, ey, e_start, e_count = network._edge_xy
    out, uq, ue = _kernels.first_hits(grid.indptr, grid.edges, grid.entry_bounds, grid.x0, grid.y0,
                                      grid.size, grid.nx, grid.ny, _bounds(geoms),
                                      gx, gy, g_start, g_count, ex, ey, e_start, e_count)
    if len(uq):  # (uq grouped by geometry, edges ascending)
        h = shapely.intersects(_geos(geoms[uq]), network.edge_geometry[ue])
        uq, ue = uq[h], ue[h]
        if len(uq):
            rs = np.flatnonzero(np.r_[True, uq[1:] != uq[:-1]])
            q, e = uq[rs], ue[rs]
            out[q] = np.where(out[q] >= 0, np.minimum(out[q], e), e)
    return out


def _point_edge_distance(network: WalkNetwork, edges: np.ndarray, px: np.ndarray,
                         py: np.ndarray) -> np.ndarray:
    """``shapely.distance(point, edge)`` for points (compiled: the minimum over segments
    of GEOS's point-segment distance, the same value to the last bit)."""
    ex, ey, st, cnt = network._edge_xy
    return _kernels.point_segments(ex, ey, st, cnt, np.asarray(edges, dtype=np.int64),
                                   np.ascontiguousarray(px, dtype=np.float64),
                                   np.ascontiguousarray(py, dtype=np.float64))[0]


def _locate_on_edges(network: WalkNetwork, edges: np.ndarray, px: np.ndarray,
                     py: np.ndarray) -> np.ndarray:
    """Metres along each edge to the point nearest to ``(px, py)``.

    The arithmetic of GEOS's ``LengthIndexedLine.project`` (``shapely.line_locate_point``)
    step by step, compiled (:func:`geotijian._kernels.point_segments`), on the cached
    edge vertices, so the result is the same to the last bit: the first segment at the
    smallest point-segment distance, its start measure plus the clamped projection
    factor times its length.
    """
    ex, ey, st, cnt = network._edge_xy
    return _kernels.point_segments(ex, ey, st, cnt, np.asarray(edges, dtype=np.int64),
                                   np.ascontiguousarray(px, dtype=np.float64),
                                   np.ascontiguousarray(py, dtype=np.float64))[1]


def _vertex_table(geoms: np.ndarray, kinds: np.ndarray | None = None
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Vertices of line geometries: x, y, each geometry's first row and vertex count
    (count 0 for a multi-part or non-line geometry: its vertices are not one chain).
    ``kinds``: the geometry type ids to go by (default: those of ``geoms``)."""
    c, gi = shapely.get_coordinates(geoms, return_index=True)
    cnt = np.bincount(gi, minlength=len(geoms))
    start = np.cumsum(cnt) - cnt
    kinds = shapely.get_type_id(geoms) if kinds is None else kinds
    cnt = np.where(np.isin(kinds, [1, 2]), cnt, 0)
    return np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1]), start, cnt


def _vertex_rows(vertices: tuple, rows: np.ndarray) -> tuple:
    """The vertex table of some of its geometries (no copy of the vertices)."""
    x, y, start, count = vertices
    return x, y, start[rows], count[rows]


def _snap_onto(network: WalkNetwork, geoms: np.ndarray, edges: np.ndarray,
               vertices: tuple | None = None):
    """Access point on ``geoms`` nearest to the given edges, and its projection on them.

    The point pair of ``shapely.shortest_line(geom, edge)``: compiled for points (GEOS's
    point-segment arithmetic, see :func:`_locate_on_edges`) and for outlines that cross
    their edge (the crossing of the first crossing segment pair, GEOS's loop order;
    offset 0), with GEOS for the rest (outlines apart from their edge, touching or
    near-degenerate cases). ``vertices``: the :func:`_vertex_table` of ``geoms`` when the
    caller has it.
    """
    n = len(geoms)
    ax, ay, pos, off = np.empty(n), np.empty(n), np.empty(n), np.empty(n)
    todo = np.ones(n, dtype=bool)
    kinds = _type_ids(geoms)
    pt = np.flatnonzero(kinds == 0)
    if len(pt):
        c = shapely.get_coordinates(_geos(geoms[pt]))
        if len(c) == len(pt):  # (no empty point)
            px, py = np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1])
            ax[pt], ay[pt] = px, py
            ex, ey, es, ec = network._edge_xy
            off[pt], pos[pt] = _kernels.point_segments(ex, ey, es, ec, edges[pt], px, py)
            todo[pt] = False
    ln = np.flatnonzero(np.isin(kinds, [1, 2]))
    if len(ln):
        gx, gy, gs, gc = _vertex_table(_geos(geoms[ln])) if vertices is None else \
            _vertex_rows(vertices, ln)
        ex, ey, es, ec = network._edge_xy
        _, ok, x, y = _intersects_filtered(gx, gy, gs, gc, np.arange(len(ln)), ex, ey, es, ec,
                                           edges[ln], points=True)
        hit = ln[ok]
        if len(hit):
            ax[hit], ay[hit], off[hit] = x[ok], y[ok], 0.0
            pos[hit] = _locate_on_edges(network, edges[hit], x[ok], y[ok])
            todo[hit] = False
    rest = np.flatnonzero(todo)
    if len(rest):
        eg = network.edge_geometry[edges[rest]]
        line = shapely.shortest_line(_geos(geoms[rest]), eg)
        c = shapely.get_coordinates(line)  # 2 points per line: access point, point on the edge
        if len(c) == 2 * len(line):
            a = c[0::2]
            pos[rest] = _locate_on_edges(network, edges[rest], c[1::2, 0], c[1::2, 1])
        else:  # defensive: never for non-empty inputs
            a = shapely.get_coordinates(shapely.get_point(line, 0))
            pos[rest] = shapely.line_locate_point(eg, shapely.get_point(line, 1))
        ax[rest], ay[rest] = a[:, 0], a[:, 1]
        off[rest] = shapely.length(line)
    pos = np.clip(pos, 0.0, network.edge_length[edges])
    return ax, ay, pos, off
