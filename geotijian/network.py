"""The walk network as compact arrays, and points snapped onto its edges.

:func:`build_network` turns an osmnx graph or a roads layer into a :class:`WalkNetwork`:
an undirected graph in a metric CRS held as numpy arrays (node coordinates, edge end
nodes, lengths in metres, geometries oriented from ``u`` to ``v``) and a symmetric
``scipy.sparse.csr_matrix`` of edge lengths for ``scipy.sparse.csgraph``.

:func:`snap_points` puts points (or polygon outlines) onto their nearest *edge*, not node:
the edge, the position along it (metres from ``u``) and the offset (metres from the point
to the edge). Distances then count the offset and the partial edge lengths; this is the
same as splitting every snapped edge at the snap positions and adding a spur from each
point to its snap position (the *augmented graph*, built explicitly by
:func:`augmented_graph` as a reference): see :func:`source_graph` and
:func:`distances_at_snaps`.

:func:`distance_graph` is the production engine: the same virtual source nodes on the
network's *core* (dead-end edges left out, :attr:`WalkNetwork.pendant`), one
``scipy.sparse.csgraph.dijkstra`` pass per source set, the dead-end leaves completed
afterwards; the distances equal a search of the whole network (tested).
"""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra

from . import settings
from .errors import GeotijianWarning, LayerError, NetworkError, RepairWarning

from . import _kernels  # (numba: compiled on first use, cached on disk)

__all__ = [
    "DistanceGraph",
    "SnapResult",
    "WalkNetwork",
    "augmented_graph",
    "build_network",
    "distance_graph",
    "distances_at_snaps",
    "snap_points",
    "source_graph",
]

_KEY_DECIMALS = 3  # vertices in the same 1 mm cell of the CRS's grid are one node (roads layer)


@dataclass
class WalkNetwork:
    """An undirected walk network in a metric CRS, as arrays.

    Attributes
    ----------
    crs : str
        Metric CRS of every coordinate (``settings.metric_crs`` unless chosen).
    x, y : ndarray of float
        Node coordinates (metres), length ``n_nodes``.
    node_ids : ndarray
        Original node IDs (osmnx node IDs, or ``0..n-1`` for a roads layer).
    edge_u, edge_v : ndarray of int
        End nodes (positions in ``x``/``y``) of each edge.
    edge_length : ndarray of float
        Edge length in metres (length of the geometry in the metric CRS).
    edge_geometry : ndarray of shapely LineString
        Edge geometry, oriented from ``edge_u`` to ``edge_v``.
    edge_source : ndarray
        Source feature of each edge (osmnx ``(u, v, key)`` or the roads row index).
    csr : scipy.sparse.csr_matrix
        ``n_nodes × n_nodes`` symmetric matrix of the shortest parallel-edge length between
        adjacent nodes (self-loops left out: they never shorten a path).
    component : ndarray of int
        Connected component of each node, numbered by size: 0 is the largest.
    report : DataFrame
        What the build repaired or left out (``problem``, ``count``, ``detail``).
    """

    crs: str
    x: np.ndarray
    y: np.ndarray
    node_ids: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_length: np.ndarray
    edge_geometry: np.ndarray
    edge_source: np.ndarray
    csr: csr_matrix
    component: np.ndarray
    report: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n_nodes(self) -> int:
        return len(self.x)

    @property
    def n_edges(self) -> int:
        return len(self.edge_u)

    @property
    def edge_component(self) -> np.ndarray:
        """Component of each edge (that of its ``u`` node)."""
        return self.component[self.edge_u]

    @property
    def in_largest(self) -> np.ndarray:
        """True for the nodes of the largest connected component (label 0)."""
        return self.component == 0

    @cached_property
    def component_size(self) -> np.ndarray:
        """Number of nodes in each component (index = component label)."""
        return np.bincount(self.component)

    @cached_property
    def pendant(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, csr_matrix]:
        """Pendant edges and the *core* of the network (the CSR without them).

        A pendant edge joins a leaf (a node with one incident edge, loops counted twice)
        to a parent with at least two. No shortest path between other nodes passes a
        leaf (a dead end), so the per-type searches run on the core and the leaves get
        ``min(own value, D[parent] + length)`` afterwards (:meth:`DistanceGraph.distances`):
        same distances, far fewer heap operations where dead ends (driveways, compound
        paths) are common. Returns ``(leaf, parent, length, core_csr)`` (compiled:
        :func:`geotijian._kernels.pendant_core`).
        """
        csr = self.csr
        leaf, parent, length, indptr, indices, data = _kernels.pendant_core(
            self.n_nodes, self.edge_u, self.edge_v, self.edge_length, csr.indptr.astype(np.int64, copy=False),
            csr.indices.astype(np.int32, copy=False), csr.data)
        if len(leaf) == 0:
            return leaf, parent, length, csr
        return leaf, parent, length, csr_matrix((data, indices, indptr), shape=csr.shape)

    @cached_property
    def _edge_xy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vertices of every edge: x, y (metres), and each edge's first row and vertex
        count (filled by :func:`build_network` for a roads layer at no cost)."""
        c, gi = shapely.get_coordinates(self.edge_geometry, return_index=True)
        cnt = np.bincount(gi, minlength=self.n_edges)
        return (np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1]),
                np.cumsum(cnt) - cnt, cnt)

    @cached_property
    def _grid(self) -> _EdgeGrid:
        """Uniform-grid index of the edge envelopes (see :class:`_EdgeGrid`)."""
        return _EdgeGrid.of_lines(self.edge_geometry, self._edge_xy)

    @cached_property
    def tree(self) -> shapely.STRtree:
        """Spatial index of the edge geometries."""
        return shapely.STRtree(self.edge_geometry)

    def edges(self) -> gpd.GeoDataFrame:
        """The edges as a GeoDataFrame (``u``, ``v``, ``length``, ``component``)."""
        return gpd.GeoDataFrame(
            {"u": self.edge_u, "v": self.edge_v, "length": self.edge_length,
             "component": self.edge_component},
            geometry=self.edge_geometry, crs=self.crs)

    def nodes(self) -> gpd.GeoDataFrame:
        """The nodes as a GeoDataFrame (``node_id``, ``component``)."""
        return gpd.GeoDataFrame({"node_id": self.node_ids, "component": self.component},
                                geometry=shapely.points(self.x, self.y), crs=self.crs)

    def __repr__(self) -> str:
        return (f"WalkNetwork({self.n_nodes} nodes, {self.n_edges} edges, "
                f"{len(self.component_size)} components, crs={self.crs!r})")


class _EdgeGrid:
    """Envelope index of the edges on a uniform grid (cheaper to build than an STRtree).

    Each edge is registered in every cell its envelope overlaps (cell -> edges as a CSR
    built by scipy's O(n) COO-to-CSR conversion, no sort). :meth:`pairs` answers the same
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
        self.indptr, self.edges, self.entry_bounds, self.cx0, self.cy0, self.multi = _kernels.grid_index(
            bounds, float(x0), float(y0), float(size), self.nx, self.ny)

    @classmethod
    def of_lines(cls, geoms: np.ndarray, vertices: tuple | None = None) -> _EdgeGrid:
        """Grid of line geometries; ``vertices`` = ``(x, y, start, count)``, their vertex
        table, when at hand (envelopes computed from it, no GEOS pass)."""
        if vertices is None:
            return cls(shapely.bounds(geoms))
        return cls(_kernels.line_bounds(*vertices))

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


# ----------------------------------------------------------------------------- build
def _metric_crs(crs: Any) -> str:
    target = crs if crs is not None else settings.metric_crs
    c = CRS.from_user_input(target)
    if c.is_geographic:
        raise NetworkError(f"CRS {target!r} is geographic (degrees); the walk network needs a "
                           f"metric CRS such as {settings.metric_crs!r}")
    return c.to_string() if crs is not None else settings.metric_crs


def _edges_from_graph(G: nx.MultiDiGraph, crs: Any):
    if "crs" not in G.graph:
        raise NetworkError("graph has no 'crs' in G.graph; build it with osmnx or set G.graph['crs']")
    gcrs = CRS.from_user_input(G.graph["crs"])
    to = None
    if gcrs.is_geographic or (crs is not None and not gcrs.equals(CRS.from_user_input(crs))):
        # projected here, node coordinates and edge vertices in one vectorised pass each:
        # the same PROJ transformation as osmnx.project_graph (GeoDataFrame.to_crs,
        # always_xy) and the same numbers, without rebuilding the graph (tested)
        out_crs = _metric_crs(crs)
        to = Transformer.from_crs(gcrs, CRS.from_user_input(out_crs), always_xy=True)
    else:
        out_crs = gcrs.to_string() if crs is None else _metric_crs(crs)
        if crs is None and gcrs.equals(CRS.from_user_input(settings.metric_crs)):
            out_crs = settings.metric_crs
    if G.number_of_nodes() == 0 or G.number_of_edges() == 0:
        raise NetworkError("the graph has no edges: no walk network can be built "
                           "(is the OSM file clipped or empty?)")
    node_ids = np.array(list(G.nodes), dtype=object)
    try:
        node_ids = node_ids.astype(np.int64)
    except (TypeError, ValueError):
        pass
    xs = np.fromiter((d for _, d in G.nodes(data="x")), dtype=float, count=len(node_ids))
    ys = np.fromiter((d for _, d in G.nodes(data="y")), dtype=float, count=len(node_ids))
    if to is not None:
        xs, ys = (np.asarray(c, dtype=float) for c in to.transform(xs, ys))
    # networkx holds edges as Python objects: this one pass is unavoidable
    it = G.edges(keys=True, data=True) if G.is_multigraph() else \
        ((a, b, 0, d) for a, b, d in G.edges(data=True))
    us, vs, keys, geoms = zip(*((u, v, k, d.get("geometry")) for u, v, k, d in it))
    pos = pd.Index(node_ids)
    u = pos.get_indexer(np.asarray(us, dtype=node_ids.dtype))
    v = pos.get_indexer(np.asarray(vs, dtype=node_ids.dtype))
    geoms = np.array(geoms, dtype=object)
    missing = ~shapely.is_geometry(geoms)  # None (or NaN) where osmnx stored no geometry
    if to is not None and not missing.all():
        has = np.flatnonzero(~missing)
        geoms[has] = shapely.transform(geoms[has], lambda c: np.column_stack(to.transform(c[:, 0], c[:, 1])))
    if missing.any():
        i = np.flatnonzero(missing)
        coords = np.stack([xs[u[i]], ys[u[i]], xs[v[i]], ys[v[i]]], axis=1).reshape(-1, 2, 2)
        geoms[i] = shapely.linestrings(coords)
    source = np.empty(len(us), dtype=object)
    source[:] = list(zip(us, vs, keys))
    return node_ids, xs, ys, u, v, geoms, source, out_crs, [], None


# roads layers with at least this many lines are read in chunks, hashed in a second
# thread while the next chunk is read (shapely.get_coordinates holds the GIL)
_NODING_CHUNKS = 4
_NODING_MIN_LINES = 20_000


def _node_roads(g: np.ndarray, scale: float) -> tuple[list | None, np.ndarray, np.ndarray]:
    """:class:`geotijian._kernels.VertexNoder` over the vertices of ``g`` (read as they
    are; multi-lines are handled by the caller). Returns the outputs of
    :meth:`~geotijian._kernels.VertexNoder.finish` (``None`` when a vertex lies too far
    from the first: the noder's ``OverflowError``), whether each row has vertices, and
    the geometry type ids.

    With ``settings.parallel`` and a large layer, the vertices are read chunk by chunk
    by this thread (``shapely.get_coordinates`` holds the GIL) and hashed by a second
    thread (the compiled loop releases it), so reading and hashing overlap; the second
    thread also counts the vertices first and reads the geometry types last. The
    result does not depend on the chunks (tested).
    """
    if not settings.parallel or len(g) < _NODING_MIN_LINES:
        kinds = shapely.get_type_id(g)
        coords, line = shapely.get_coordinates(g, return_index=True)
        present = np.zeros(len(g), dtype=bool)
        present[line] = True
        try:
            out = _kernels.node_lines(coords, line.astype(np.int64, copy=False), len(g), scale)
        except OverflowError:
            out = None
        return out, present, kinds
    cuts = np.linspace(0, len(g), _NODING_CHUNKS + 1).astype(np.int64)

    def feed(noder, coords, line, offset, started):
        started.set()  # (the GIL goes back to the reading thread as the hashing starts)
        noder.add(coords, line, offset)

    with ThreadPoolExecutor(max_workers=1) as pool:
        counts = pool.submit(shapely.get_num_coordinates, g)
        jobs = []
        noder = None
        for a, b in zip(cuts[:-1], cuts[1:]):
            coords, line = shapely.get_coordinates(g[a:b], return_index=True)
            if noder is None:
                noder = _kernels.VertexNoder(int(counts.result().sum()), len(g), scale)
            started = threading.Event()
            jobs.append(pool.submit(feed, noder, coords, line.astype(np.int64, copy=False),
                                    int(a), started))
            started.wait()
        kinds = pool.submit(shapely.get_type_id, g)
        try:
            for job in jobs:
                job.result()
            out = noder.finish()
        except OverflowError:
            out = None
        return out, counts.result() > 0, kinds.result()


def _edges_from_roads(roads: gpd.GeoDataFrame, crs: Any):
    if roads.crs is None:
        raise LayerError("roads", "has no CRS", fix="set it with gdf.set_crs(...) before building")
    rcrs = CRS.from_user_input(roads.crs)
    out_crs = _metric_crs(crs) if (crs is not None or rcrs.is_geographic) else rcrs.to_string()
    if crs is None and not rcrs.is_geographic and rcrs.equals(CRS.from_user_input(settings.metric_crs)):
        out_crs = settings.metric_crs
    geo = roads.geometry
    if rcrs.is_geographic or not rcrs.equals(CRS.from_user_input(out_crs)):
        geo = geo.to_crs(out_crs)
    report = []
    g = geo.to_numpy()
    scale = float(10**_KEY_DECIMALS)
    nodes, present, kinds = _node_roads(g, scale)
    notline = (kinds >= 0) & (kinds != 1) & (kinds != 5)  # not LineString/MultiLineString
    if notline.any():
        notline[notline] = ~shapely.is_empty(g[notline])  # an empty point is just empty
    if notline.any():
        i = int(np.flatnonzero(notline)[0])
        raise LayerError("roads", f"geometry is a {g[i].geom_type}, not a line",
                         fix="keep only LineString/MultiLineString road centre lines",
                         feature=i, feature_id=roads.index[i], count=int(notline.sum()))
    parts, part_row = g, None
    if (kinds == 5).any() and nodes is not None:  # multi-lines: noded again, part by part
        parts, part_row = shapely.get_parts(g, return_index=True)
        coords, line = shapely.get_coordinates(parts, return_index=True)
        try:
            nodes = _kernels.node_lines(coords, line.astype(np.int64, copy=False), len(parts), scale)
        except OverflowError:
            nodes = None
    if nodes is None:
        raise NetworkError("roads layer spans more than 1,000 km from its first vertex (or has "
                           "a NaN coordinate): wrong CRS or wrong file?")
    start_pos, seg_len, seg_line, u, v, xs, ys, modified, n_short, kx, ky = nodes
    # missing or empty geometries have no coordinates
    bad = ~present
    if bad.any():
        report.append(("empty road geometry left out", int(bad.sum()),
                       f"rows {list(roads.index[bad][:5])}"))
    if len(kx) == 0:
        raise NetworkError("roads layer has no line with coordinates: no network")
    if n_short:
        report.append(("degenerate road line (one distinct vertex) left out", int(n_short), ""))
    # a line that is one edge keeps its own geometry; split lines get new pieces
    nseg_line = np.bincount(seg_line, minlength=len(parts))
    whole = (nseg_line[seg_line] == 1) & ~modified[seg_line]
    if whole.all():  # every edge is a whole line (some lines may be left out): as they are
        geoms = parts if len(seg_line) == len(parts) else parts.take(seg_line)
    else:
        geoms = np.empty(len(start_pos), dtype=object)
        geoms[whole] = parts[seg_line[whole]]
    if (~whole).any():
        split = np.flatnonzero(~whole)
        rows = _ranges(start_pos[split], seg_len[split])
        geoms[split] = shapely.linestrings(kx[rows], ky[rows],
                                           indices=np.repeat(np.arange(len(split)), seg_len[split]))
    if part_row is None:
        part_row = np.arange(len(g))
    source = roads.index.to_numpy()[part_row[seg_line]]
    exy = (kx, ky, start_pos, seg_len)
    return np.arange(len(xs)), xs, ys, u, v, geoms, source, out_crs, report, exy


def _first_coords(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First vertex of each line (vectorised, faster than ``get_point``), all vertices and
    their line index."""
    coords, gi = shapely.get_coordinates(geoms, return_index=True)
    starts = np.r_[0, np.flatnonzero(np.diff(gi)) + 1]
    return coords[starts], coords, gi


def _large_pieces(comp: np.ndarray, u: np.ndarray, length: np.ndarray) -> list[tuple[str, int, str]]:
    """A report row when pieces apart from the largest hold ≥ ``settings.large_component_share``
    of the network's length (a missing bridge or crossing splits the district)."""
    if len(u) == 0:
        return []
    per = np.bincount(comp[u], weights=length)
    total = float(per.sum())
    share = per / total if total > 0 else per
    big = np.flatnonzero(share >= settings.large_component_share)
    if len(big) < 2:
        return []
    order = big[np.argsort(-per[big], kind="stable")]
    sizes = ", ".join(f"{per[c] / 1000:,.1f} km ({share[c]:.0%})" for c in order[:6])
    return [(f"walk network in {len(big)} large pieces not connected to each other", len(big),
             f"{sizes}. Homes and facilities on different pieces cannot reach each other, so coverage "
             "drops: check the bridges, level crossings and underpasses (a roads layer is joined only "
             "at shared vertices)")]


def build_network(graph_or_roads: nx.MultiDiGraph | gpd.GeoDataFrame, *,
                  crs: Any = None) -> WalkNetwork:
    """Build the undirected walk network from an osmnx graph or a roads layer.

    Parameters
    ----------
    graph_or_roads : networkx graph or GeoDataFrame
        An osmnx (Multi)(Di)Graph, projected or not (an unprojected graph's nodes and
        edge vertices are projected as ``osmnx.project_graph`` would), or road centre
        lines (LineString/MultiLineString). A roads layer is noded at line ends and at
        vertices shared by several lines (split there);
        coordinates are matched on the CRS's own 1 mm grid (rounded half to even; the
        same grid whatever the layer's extent), and every vertex must lie within 1,000 km
        of the first. Crossings without a shared vertex (bridges) stay unconnected, as in
        OSM.
    crs : CRS-like, optional
        Metric CRS to work in. Default: the input's CRS when it is projected, else
        ``settings.metric_crs`` (EPSG:32651, UTM 51N).

    Returns
    -------
    WalkNetwork
        Direction and ``oneway`` are ignored (pedestrians walk both ways); the two
        directed copies of a two-way osmnx edge become one edge. Lengths are the geometry
        lengths in the metric CRS (metres).

    Raises
    ------
    NetworkError
        Empty graph, geographic target CRS, a roads layer without coordinates or with a
        vertex more than 1,000 km from its first (wrong CRS) or a NaN coordinate.
    LayerError
        A roads layer without CRS or with non-line geometries.
    """
    if isinstance(graph_or_roads, nx.Graph):
        nid, xs, ys, u, v, geoms, source, out_crs, report, exy = _edges_from_graph(graph_or_roads, crs)
    elif isinstance(graph_or_roads, gpd.GeoDataFrame):
        if len(graph_or_roads) == 0:
            raise LayerError("roads", "is empty: no walk network can be built",
                             fix="check the file and the study boundary")
        nid, xs, ys, u, v, geoms, source, out_crs, report, exy = _edges_from_roads(graph_or_roads, crs)
    else:
        raise NetworkError(f"build_network needs an osmnx graph or a roads GeoDataFrame, "
                           f"got {type(graph_or_roads).__name__}")
    # orient each geometry from u to v (osmnx usually does; check against node coordinates;
    # a noded roads layer is oriented by construction)
    if isinstance(graph_or_roads, nx.Graph):
        start = _first_coords(geoms)[0]
        fwd = np.hypot(start[:, 0] - xs[u], start[:, 1] - ys[u])
        rev = np.hypot(start[:, 0] - xs[v], start[:, 1] - ys[v])
        flip = rev < fwd
        if flip.any():
            geoms = geoms.copy()
            geoms[flip] = shapely.reverse(geoms[flip])
    # the edge index (for snapping) is built in a second thread meanwhile: GEOS and the
    # compiled kernels release the GIL
    with ThreadPoolExecutor(max_workers=1) as pool:
        grid = pool.submit(_EdgeGrid.of_lines, geoms, exy) if settings.parallel else None
        # (GEOS's sum for a noded roads layer, from its vertices at hand)
        length = shapely.length(geoms) if exy is None else _kernels.line_lengths(*exy)
        n = len(xs)
        csr = _csr(n, u, v, length)
        # removal of reciprocal duplicates (the two directed copies of an osmnx edge):
        # keyed on the unordered end pair, so geometries keep their u -> v orientation
        loops = u[u == v]
        if csr.nnz == 2 * (len(u) - len(loops)) and len(np.unique(loops)) == len(loops):
            dup = np.zeros(len(u), dtype=bool)  # no end pair occurs twice: nothing to compare
        else:
            dup = _duplicate_edges(np.minimum(u, v), np.maximum(u, v), length, geoms, len(xs))
        if dup.any():
            keep = ~dup
            u, v, geoms, length, source = u[keep], v[keep], geoms[keep], length[keep], source[keep]
            if exy is not None:
                exy = (exy[0], exy[1], exy[2][keep], exy[3][keep])
            csr = _csr(n, u, v, length)
        # (for osmnx graphs the reciprocal copies are expected: not reported)
        if isinstance(graph_or_roads, gpd.GeoDataFrame) and dup.any():
            report.append(("duplicate road segment merged", int(dup.sum()), ""))
        ncomp, labels = _kernels.component_labels(n, u, v)  # (as csgraph.connected_components)
        sizes = np.bincount(labels, minlength=ncomp)
        order = np.lexsort((np.arange(ncomp), -sizes))
        relabel = np.empty(ncomp, dtype=np.int64)
        relabel[order] = np.arange(ncomp)
        comp = relabel[labels]
        report += _large_pieces(comp, u, length)
        rep = pd.DataFrame(report, columns=["problem", "count", "detail"])
        for row in rep.itertuples():
            if row.problem.startswith("walk network in"):
                warnings.warn(f"{row.problem}: {row.detail}", GeotijianWarning, stacklevel=2)
            else:
                warnings.warn(f"roads: {row.problem}: {row.count}", RepairWarning, stacklevel=2)
        net = WalkNetwork(crs=out_crs, x=np.asarray(xs, float), y=np.asarray(ys, float),
                          node_ids=np.asarray(nid), edge_u=np.asarray(u, np.int64),
                          edge_v=np.asarray(v, np.int64), edge_length=length,
                          edge_geometry=geoms, edge_source=source, csr=csr, component=comp,
                          report=rep)
        if exy is not None:  # the vertices of a noded roads layer are at hand: no GEOS pass
            net.__dict__["_edge_xy"] = exy
        if grid is not None and not dup.any():  # (after a merge it is built again when needed)
            net.__dict__["_grid"] = grid.result()
    return net


def _duplicate_edges(u, v, length, geoms, n) -> np.ndarray:
    """True for an edge that repeats an earlier one (same ends, length and vertices)."""
    pk = u.astype(np.int64) * n + v
    # edges whose end pair occurs more than once (hash table: O(n), no sort), in edge order
    cand = np.flatnonzero(pd.Index(pk).duplicated(keep=False))
    dup = np.zeros(len(u), dtype=bool)
    if len(cand) == 0:
        return dup
    coords, gi = shapely.get_coordinates(geoms[cand], return_index=True)
    k = len(cand)
    sx = np.bincount(gi, weights=coords[:, 0], minlength=k) - coords[:, 0].min() * np.bincount(gi, minlength=k)
    sy = np.bincount(gi, weights=coords[:, 1], minlength=k) - coords[:, 1].min() * np.bincount(gi, minlength=k)
    key = pd.DataFrame({"u": u[cand], "v": v[cand], "l": np.round(length[cand], 2),
                        "n": np.bincount(gi, minlength=k), "x": np.round(sx, 1), "y": np.round(sy, 1)})
    dup[cand] = key.duplicated().to_numpy()
    return dup


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


# ------------------------------------------------------------------------------ snap
@dataclass
class SnapResult:
    """Where points reach the network.

    One row per *access point*; a feature may have several (polygon facilities).

    Attributes
    ----------
    owner : ndarray of int
        Row position of the feature in the input layer.
    edge : ndarray of int
        Edge snapped to.
    position : ndarray of float
        Metres along the edge from its ``u`` node to the snap position.
    offset : ndarray of float
        Metres from the access point to the snap position (counted in every distance).
    access_x, access_y : ndarray of float
        The access point (the point itself, a gate, or the outline point).
    rule : ndarray of str
        How the access point was chosen: ``point``, ``boundary_nearest_edge`` (homes),
        ``entrance``, ``outline_adjacent_edge``, ``outline_nearest_edge`` (facilities).
    n_features : int
        Number of features in the input layer.
    ids : ndarray
        ID of each input feature (index of the input layer unless an ID column is given).
    component : ndarray of int
        Network component of each access point.
    report : DataFrame
        Problems: ``layer``, ``feature``, ``feature_id``, ``problem``, ``offset_m``,
        ``component`` (points farther than the maximum snap distance, points on a
        component without any facility, empty layers...). Reported points are kept.
    """

    owner: np.ndarray
    edge: np.ndarray
    position: np.ndarray
    offset: np.ndarray
    access_x: np.ndarray
    access_y: np.ndarray
    rule: np.ndarray
    n_features: int
    ids: np.ndarray
    component: np.ndarray
    layer: str = "points"
    report: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REPORT_COLUMNS))

    def table(self) -> pd.DataFrame:
        """The access points as a DataFrame."""
        return pd.DataFrame({"feature": self.owner, "feature_id": self.ids[self.owner],
                             "edge": self.edge, "position_m": self.position,
                             "offset_m": self.offset, "access_x": self.access_x,
                             "access_y": self.access_y, "rule": self.rule,
                             "component": self.component})

    @classmethod
    def concat(cls, parts: list[SnapResult]) -> SnapResult:
        """One result from the results of consecutive row slices of one layer (features
        renumbered in slice order, reports joined)."""
        shift = np.cumsum([0] + [p.n_features for p in parts[:-1]])
        reps = [p.report.assign(feature=p.report["feature"].to_numpy() + k)
                for p, k in zip(parts, shift) if len(p.report)]
        report = pd.concat(reps, ignore_index=True) if reps else parts[0].report

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(np.concatenate([p.owner + k for p, k in zip(parts, shift)]), cat("edge"),
                   cat("position"), cat("offset"), cat("access_x"), cat("access_y"),
                   cat("rule"), int(sum(p.n_features for p in parts)), cat("ids"),
                   cat("component"), parts[0].layer, report)

    def subset(self, features: np.ndarray) -> SnapResult:
        """Access points of the given feature positions (renumbered 0..k-1 in that order)."""
        features = np.asarray(features, dtype=np.int64)
        newpos = np.full(self.n_features, -1)
        newpos[features] = np.arange(len(features))
        keep = newpos[self.owner] >= 0
        order = np.flatnonzero(keep)
        order = order[np.argsort(newpos[self.owner[order]], kind="stable")]
        return SnapResult(newpos[self.owner[order]], self.edge[order], self.position[order],
                          self.offset[order], self.access_x[order], self.access_y[order],
                          self.rule[order], len(features), self.ids[features],
                          self.component[order], self.layer, self.report)


REPORT_COLUMNS = ["layer", "feature", "feature_id", "problem", "offset_m", "component"]


def check_metric(gdf: gpd.GeoDataFrame, layer: str, network: WalkNetwork) -> gpd.GeoDataFrame:
    """Check a layer's CRS for measuring and bring it to the network CRS.

    Raises :class:`LayerError` when the CRS is missing or geographic (degrees cannot be
    measured in metres); a projected CRS other than the network's is transformed.
    """
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise LayerError(layer, f"must be a GeoDataFrame, got {type(gdf).__name__}")
    if gdf.crs is None:
        raise LayerError(layer, "has no CRS", fix="set it with gdf.set_crs(...) (OSM is "
                         "EPSG:4326) and project with gdf.to_crs(settings.metric_crs)")
    if CRS.from_user_input(gdf.crs).is_geographic:
        raise LayerError(layer, f"is in a geographic CRS ({gdf.crs.to_string()}, degrees): "
                         "network distances need metres",
                         fix=f"project it first: gdf.to_crs({network.crs!r})")
    if not CRS.from_user_input(gdf.crs).equals(CRS.from_user_input(network.crs)):
        gdf = gdf.to_crs(network.crs)
    g = gdf.geometry.to_numpy()
    bad = ~shapely.is_geometry(g) | shapely.is_empty(g)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LayerError(layer, "has an empty or missing geometry", feature=i,
                         feature_id=gdf.index[i], count=int(bad.sum()),
                         fix="remove or repair the feature")
    return gdf


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


def _layer_geometry(gdf: gpd.GeoDataFrame, layer: str, network: WalkNetwork,
                    id_col: str | None):
    """A layer checked and brought to the network CRS, its IDs, geometries, geometry
    type ids and polygon mask."""
    gdf = check_metric(gdf, layer, network)
    ids = (gdf[id_col] if id_col else gdf.index).to_numpy()
    g = gdf.geometry.to_numpy()
    kinds = shapely.get_type_id(g)
    return gdf, ids, g, kinds, np.isin(kinds, [3, 6])


def snap_points(network: WalkNetwork, points_gdf: gpd.GeoDataFrame, *,
                max_distance: float | None = None, layer: str = "points",
                id_col: str | None = None) -> SnapResult:
    """Snap each feature onto its nearest network edge.

    Parameters
    ----------
    network : WalkNetwork
    points_gdf : GeoDataFrame
        Points, or polygons (compounds, buildings): a polygon reaches the network from its
        *boundary* (gates are rarely mapped): the nearest edge to the outline, at the
        outline point nearest to that edge (offset = outline-to-edge distance, 0 when an
        edge crosses the outline). Lines are treated as they are. Projected CRS required.
    max_distance : float, optional
        Metres; features snapped farther are reported (kept, offset counted). Default
        ``settings.max_snap_distance_m`` (200 m).
    layer : str
        Layer name used in errors and the report.
    id_col : str, optional
        ID column for the report (default: the index).

    Returns
    -------
    SnapResult
        One access point per feature: the nearest edge by ``shapely.distance`` (ties:
        the lowest edge number; as ``shapely.STRtree.query_nearest`` gives, up to ties
        within an ulp), and the access point and position of ``shapely.shortest_line`` /
        ``line_locate_point`` (see :func:`_snap_onto`).

    Raises
    ------
    LayerError
        No CRS / geographic CRS / empty geometry (the message names the feature).
    """
    maxd = settings.max_snap_distance_m if max_distance is None else float(max_distance)
    _, ids, g, kinds, _ = _layer_geometry(points_gdf, layer, network, id_col)
    return _snap_geoms(network, g, kinds, ids, layer, maxd)


def _snap_geoms(network: WalkNetwork, g: np.ndarray, kinds: np.ndarray, ids: np.ndarray,
                layer: str, maxd: float) -> SnapResult:
    """:func:`snap_points` of a checked geometry array (network CRS, no empty geometry;
    ``kinds``: its geometry type ids; ``maxd``: metres)."""
    n = len(g)
    poly = np.isin(kinds, [3, 6])
    target = _Outlines(g, kinds)  # (polygon boundaries made only where GEOS needs them)
    vt = target.vertex_table() if (kinds != 0).any() else None  # (once)
    edge, dist = _nearest_edges(network, target, vt)
    ax, ay, pos, off = _snap_onto(network, target, edge, vt)  # (points: their own coordinates)
    rule = np.array(["point", "boundary_nearest_edge"], dtype=object)[poly.view(np.int8)]
    comp = network.component[network.edge_u[edge]]  # (not edge_component: all edges)
    snap = SnapResult(np.arange(n), edge, pos, off, ax, ay, rule, n, ids, comp, layer)
    far = off > maxd
    if far.any():
        snap.report = _report(layer, np.flatnonzero(far), ids, "farther than the maximum snap "
                              f"distance ({maxd:g} m) from the walk network: kept, offset "
                              "counted; check its coordinates (GCJ-02?) or the network extent",
                              off[far], comp[far])
    return snap


def _report(layer, feats, ids, problem, offsets, comps) -> pd.DataFrame:
    return pd.DataFrame({"layer": layer, "feature": feats, "feature_id": ids[feats],
                         "problem": problem, "offset_m": offsets, "component": comps},
                        columns=REPORT_COLUMNS)


def facility_access(network: WalkNetwork, facilities: gpd.GeoDataFrame, *,
                    entrances: gpd.GeoDataFrame | None = None,
                    access_distance: float | None = None,
                    max_distance: float | None = None,
                    entrance_tolerance: float = 2.0,
                    layer: str = "facilities", id_col: str | None = None) -> SnapResult:
    """Access points of facilities: points as they are, polygons at gates or outline points.

    A polygon facility (school campus, park) reaches the network

    1. at its tagged gates: points of ``entrances`` (OSM nodes with ``entrance=*`` or
       ``barrier=gate``) within ``entrance_tolerance`` metres of its outline, each snapped
       to its nearest edge (rule ``entrance``); else
    2. at the outline point nearest to each *adjacent* edge, i.e. every edge within
       ``access_distance`` of the outline (an edge crossing the outline gives the crossing
       point, offset 0) (rule ``outline_adjacent_edge``); else
    3. at the outline point nearest to the nearest edge (rule ``outline_nearest_edge``).

    Several access points make one facility: the multi-source search takes the nearest.

    Parameters
    ----------
    access_distance : float, optional
        Metres; default ``settings.polygon_access_distance_m``.
    max_distance : float, optional
        Metres; access farther is reported. Default ``settings.max_snap_distance_m``.
    """
    acc = settings.polygon_access_distance_m if access_distance is None else float(access_distance)
    maxd = settings.max_snap_distance_m if max_distance is None else float(max_distance)
    gdf, ids, g, kinds, poly = _layer_geometry(facilities, layer, network, id_col)
    n = len(g)
    parts = []  # (owner, edge, pos, off, ax, ay, rule)
    simple = np.flatnonzero(~poly)
    if len(simple):
        s = _snap_geoms(network, g[simple], kinds[simple], ids[simple], layer, np.inf)
        parts.append((simple[s.owner], s.edge, s.position, s.offset, s.access_x, s.access_y,
                      np.full(len(simple), "point", dtype=object)))
    done = np.zeros(n, dtype=bool)
    done[simple] = True
    P = np.flatnonzero(poly)
    if len(P):
        outline = shapely.boundary(g[P])
        if entrances is not None and len(entrances):
            ent = check_metric(entrances, "entrances", network)
            eg = ent.geometry.to_numpy()
            eg = eg[shapely.get_type_id(eg) == 0]
            if len(eg):
                ptree = shapely.STRtree(outline)
                ei, pi = ptree.query(eg, predicate="dwithin", distance=entrance_tolerance)
                if len(ei):
                    e_edge, _ = _nearest_edges(network, eg[ei])
                    ax, ay, pos, off = _snap_onto(network, eg[ei], e_edge)
                    parts.append((P[pi], e_edge, pos, off, ax, ay,
                                  np.full(len(ei), "entrance", dtype=object)))
                    done[P[pi]] = True
        rest = np.flatnonzero(~done[P])
        if len(rest):
            oi, ei = network._grid.pairs(shapely.bounds(outline[rest]) + [-acc, -acc, acc, acc])
            near = shapely.dwithin(outline[rest][oi], network.edge_geometry[ei], acc)
            oi, ei = oi[near], ei[near]
            if len(oi):
                ax, ay, pos, off = _snap_onto(network, outline[rest][oi], ei)
                parts.append((P[rest][oi], ei, pos, off, ax, ay,
                              np.full(len(oi), "outline_adjacent_edge", dtype=object)))
                done[P[rest][oi]] = True
        rest = np.flatnonzero(~done[P])
        if len(rest):
            e, _ = _nearest_edges(network, outline[rest])
            ax, ay, pos, off = _snap_onto(network, outline[rest], e)
            parts.append((P[rest], e, pos, off, ax, ay,
                          np.full(len(rest), "outline_nearest_edge", dtype=object)))
    if parts:
        cols = [np.concatenate([p[i] for p in parts]) for i in range(7)]
        order = np.lexsort((cols[2], cols[1], cols[0]))
        owner, edge, pos, off, ax, ay, rule = (c[order] for c in cols)
    else:
        owner = edge = np.zeros(0, dtype=np.int64)
        pos = off = ax = ay = np.zeros(0)
        rule = np.zeros(0, dtype=object)
    comp = network.component[network.edge_u[edge]] if len(edge) else np.zeros(0, dtype=np.int64)
    snap = SnapResult(owner.astype(np.int64), edge.astype(np.int64), pos, off, ax, ay, rule,
                      n, ids, comp, layer)
    if len(owner):
        best = np.full(n, np.inf)
        np.minimum.at(best, owner, off)
        far = np.flatnonzero(best > maxd)
        if len(far):
            far_comp = comp[np.searchsorted(owner, far)]
            snap.report = _report(layer, far, ids, f"farther than the maximum snap distance "
                                  f"({maxd:g} m) from the walk network: kept, offset counted",
                                  best[far], far_comp)
    return snap


def feature_rules(snap: SnapResult) -> np.ndarray:
    """The access rule of each feature (``""`` for a feature without access point)."""
    out = np.full(snap.n_features, "", dtype=object)
    out[snap.owner] = snap.rule
    return out


# ------------------------------------------------------------------ distance engine
def source_graph(network: WalkNetwork, sources: SnapResult) -> csr_matrix:
    """The network CSR plus one virtual node per source feature (directed, out only).

    Node ``n_nodes + i`` is source feature ``i``; for each of its access points on edge
    ``(u, v)`` at ``position`` ``t`` with ``offset`` ``o`` it has arcs to ``u`` (weight
    ``o + t``) and to ``v`` (``o + length - t``). The virtual nodes have no incoming
    arcs, so they never shorten a path between other nodes; a multi-source Dijkstra from
    them equals Dijkstra on the augmented graph (edges split at the snap positions) for
    every network node. Points on the *same* edge as a source are handled by
    :func:`distances_at_snaps`.
    """
    return _with_sources(network, network.csr, sources)


def _with_sources(network: WalkNetwork, base: csr_matrix, sources: SnapResult) -> csr_matrix:
    n = network.n_nodes
    m = sources.n_features
    e = sources.edge
    L = network.edge_length[e]
    rows = np.concatenate([sources.owner, sources.owner])
    cols = np.concatenate([network.edge_u[e], network.edge_v[e]])
    w = np.concatenate([sources.offset + sources.position,
                        sources.offset + (L - sources.position)])
    virt = _csr(m, rows, cols, w, shape=(m, n + m), both=False)
    indptr = np.concatenate([base.indptr, base.nnz + virt.indptr[1:]])
    idx_dtype = np.int32 if n + m < 2**31 else np.int64
    indices = np.concatenate([base.indices.astype(idx_dtype), virt.indices.astype(idx_dtype)])
    data = np.concatenate([base.data, virt.data])
    return csr_matrix((data, indices, indptr), shape=(n + m, n + m))


@dataclass
class DistanceGraph:
    """The core network plus one virtual node per source feature, ready for searches.

    Built by :func:`distance_graph`; :meth:`distances` runs one multi-source Dijkstra
    (``scipy.sparse.csgraph.dijkstra``) on the core (pendant edges left out, see
    :attr:`WalkNetwork.pendant`) and completes the leaves, so the node distances equal
    those of a search on the whole network (:func:`source_graph`).
    """

    network: WalkNetwork
    csr: csr_matrix
    sources: SnapResult
    _prep: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.csr.shape

    def distances(self, features: np.ndarray, *, limit: float = np.inf,
                  min_only: bool = True) -> np.ndarray:
        """Network distance (m) of every node from the given source features.

        Parameters
        ----------
        features : ndarray of int
            Source feature positions (rows of ``sources``' layer).
        limit : float
            Metres; nodes farther are ``inf``.
        min_only : bool
            One row (distance to the nearest source) or one row per source feature.

        Returns
        -------
        ndarray
            ``(n_nodes,)`` or ``(len(features), n_nodes)`` distances in metres.
        """
        net = self.network
        n = net.n_nodes
        D = dijkstra(self.csr, directed=True, indices=n + np.asarray(features, dtype=np.int64),
                     min_only=min_only, limit=limit)
        D = np.ascontiguousarray(D[..., :n]) if D.shape[-1] != n else D
        leaf, parent, length, _ = net.pendant
        if len(leaf):
            fix = np.minimum(D[..., leaf], D[..., parent] + length)
            if np.isfinite(limit):
                fix[fix > limit] = np.inf
            D[..., leaf] = fix
        return D


    def to_targets(self, targets: SnapResult, features: np.ndarray, *,
                   limit: float = np.inf) -> np.ndarray:
        """Distance (m) from each target feature to the nearest of the source ``features``.

        One multi-source search, then the snap formula of :func:`distances_at_snaps`
        (same values), with the per-target work done once per ``targets`` and reused
        across calls (one call per facility type): only the leaves at target edges are
        completed, and the same-edge source/target pairs are found once.

        Returns
        -------
        ndarray
            One value per target feature (``targets.n_features``); ``inf`` beyond
            ``limit`` or unreachable.
        """
        n = self.network.n_nodes
        formula, leaf, parent, length = self._prepared(targets)
        features = np.asarray(features, dtype=np.int64)
        D = dijkstra(self.csr, directed=True, indices=n + features, min_only=True, limit=limit)
        if len(leaf):
            D[leaf] = np.minimum(D[leaf], D[parent] + length)
        on = np.zeros(self.sources.n_features, dtype=bool)
        on[features] = True
        d = formula.apply(D, on)
        d[d > limit] = np.inf
        return d

    def _prepared(self, targets: SnapResult) -> tuple:
        """The snap formula for ``targets`` and the leaves at their edges (cached)."""
        hit = self._prep.get(id(targets))
        if hit is not None and hit[0] is targets:
            return hit[1]
        net = self.network
        formula = _SnapFormula.of(net, targets, self.sources)
        leaf, parent, length, _ = net.pendant
        need = np.zeros(net.n_nodes, dtype=bool)
        need[formula.u] = True
        need[formula.v] = True
        k = np.flatnonzero(need[leaf])
        out = (formula, leaf[k], parent[k], length[k])
        self._prep[id(targets)] = (targets, out)
        return out


def distance_graph(network: WalkNetwork, sources: SnapResult) -> DistanceGraph:
    """:func:`source_graph` on the core of the network (pendant edges left out), for
    :meth:`DistanceGraph.distances`. Arcs from a source on a pendant edge reach its
    parent directly, so no path is lost."""
    return DistanceGraph(network, _with_sources(network, network.pendant[3], sources), sources)


def distances_at_snaps(network: WalkNetwork, node_dist: np.ndarray, targets: SnapResult,
                       sources: SnapResult | None = None, *, n_features: int | None = None,
                       source_mask: np.ndarray | None = None) -> np.ndarray:
    """Distance (m) of each target feature from node distances, counting snap geometry.

    ``d = offset + min(D[u] + t, D[v] + length - t)``; when a source access point lies on
    the same edge, also ``offset + |t - t_s| + offset_s``. The minimum over a target's
    access points is returned (one value per target feature).

    Parameters
    ----------
    node_dist : ndarray
        Distances of the network nodes (length ``n_nodes``; longer arrays are cut).
        With a 2-D array (one row per source feature, from a non-``min_only`` search),
        the result is 2-D (sources × targets) and ``source_mask`` is ignored.
    sources : SnapResult, optional
        Source access points for the same-edge case.
    source_mask : ndarray of bool, optional
        Which source features take part (those of one type).
    """
    formula = _SnapFormula.of(network, targets, sources, n_features)
    D = node_dist[..., : network.n_nodes]
    return formula.apply(D, source_mask if D.ndim == 1 else None)


@dataclass
class _SnapFormula:
    """The target side of :func:`distances_at_snaps`, worked out once and applied to any
    node distances: snapped edge ends and positions, the same-edge (target, source)
    access-point pairs, and the reduction of access points to their features."""

    u: np.ndarray
    v: np.ndarray
    t: np.ndarray          # metres from u
    rest: np.ndarray       # metres to v
    offset: np.ndarray
    ti: np.ndarray         # same-edge pairs: target access point,
    sfeat: np.ndarray      # source feature,
    direct: np.ndarray     # and their distance along the edge (m)
    n_features: int
    order: np.ndarray | None  # None: one access point per feature, in feature order
    own: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, network: WalkNetwork, targets: SnapResult, sources: SnapResult | None = None,
           n_features: int | None = None) -> _SnapFormula:
        e = targets.edge
        t = targets.position
        L = network.edge_length[e]
        ti = sfeat = np.zeros(0, dtype=np.int64)
        direct = np.zeros(0)
        if sources is not None and len(sources.edge) and len(e):
            o = np.argsort(sources.edge, kind="stable")
            se = sources.edge[o]
            lo = np.searchsorted(se, e, side="left")
            cnt = np.searchsorted(se, e, side="right") - lo
            ti = np.repeat(np.arange(len(e)), cnt)
            si = o[_ranges(lo, cnt)]
            sfeat = sources.owner[si]
            direct = targets.offset[ti] + np.abs(t[ti] - sources.position[si]) + sources.offset[si]
        nt = targets.n_features if n_features is None else n_features
        order = own = starts = None
        if not (len(targets.owner) == nt and np.array_equal(targets.owner, np.arange(nt))):
            order = np.argsort(targets.owner, kind="stable")
            srt = targets.owner[order]
            starts = np.flatnonzero(np.r_[True, srt[1:] != srt[:-1]]) if len(srt) else \
                np.zeros(0, dtype=np.int64)
            own = srt[starts]
        return cls(network.edge_u[e], network.edge_v[e], t, L - t, targets.offset, ti, sfeat,
                   direct, nt, order, own, starts)

    def apply(self, D: np.ndarray, source_on: np.ndarray | None = None) -> np.ndarray:
        """Distances (m) per target feature from node distances ``D`` (1-D; or 2-D with
        one row per source feature). ``source_on``: which source features take part in
        the same-edge pairs (1-D only; default all)."""
        d = np.minimum(D[..., self.u] + self.t, D[..., self.v] + self.rest)
        d += self.offset
        if len(self.ti):
            if D.ndim == 1:
                sel = source_on[self.sfeat] if source_on is not None else slice(None)
                np.minimum.at(d, self.ti[sel], self.direct[sel])
            else:  # rows of d are the source features
                np.minimum.at(d, (self.sfeat, self.ti), self.direct)
        if self.order is None:
            return d
        out = np.full(d.shape[:-1] + (self.n_features,), np.inf)
        if len(self.order):
            out[..., self.own] = np.minimum.reduceat(d[..., self.order], self.starts, axis=-1)
        return out


def _ranges(lo: np.ndarray, cnt: np.ndarray) -> np.ndarray:
    """Concatenate ``arange(lo[i], lo[i] + cnt[i])`` for all i, vectorised."""
    cnt = np.asarray(cnt)
    tot = int(cnt.sum())
    if tot == 0:
        return np.zeros(0, dtype=np.int64)
    starts = np.repeat(lo - np.concatenate([[0], np.cumsum(cnt)[:-1]]), cnt)
    return starts + np.arange(tot)


# ------------------------------------------------------------------------ reference
def augmented_graph(network: WalkNetwork, points: dict[str, SnapResult]) -> nx.MultiGraph:
    """The explicit augmented graph, as a networkx MultiGraph (reference and baselines).

    Every edge holding snap positions is split at them (node ``("s", name, i)`` for access
    point ``i`` of layer ``name``), and each access point becomes a spur node
    ``("a", name, i)`` linked to its snap node by its offset. Features are *not* joined
    (no walking through a campus between two of its gates): a multi-source search starts
    from the access nodes of the sources; ``points[name].owner[i]`` is the feature of
    access point ``i``. Plain ``networkx.multi_source_dijkstra_path_length`` on this graph
    is the reference that :func:`source_graph` + :func:`distances_at_snaps` must match.
    Built with Python loops: for tests and benchmarks, not for production runs.
    """
    G = nx.MultiGraph()
    G.add_nodes_from(range(network.n_nodes))
    snapped: dict[int, list[tuple[float, Any]]] = {}
    for name, s in points.items():
        for i in range(len(s.edge)):
            snode = ("s", name, i)
            snapped.setdefault(int(s.edge[i]), []).append((float(s.position[i]), snode))
            G.add_edge(("a", name, i), snode, weight=float(s.offset[i]))
    for e in range(network.n_edges):
        u, v, L = int(network.edge_u[e]), int(network.edge_v[e]), float(network.edge_length[e])
        if e not in snapped:
            if u != v:
                G.add_edge(u, v, weight=L)
            continue
        prev, prev_t = u, 0.0
        for t, snode in sorted(snapped[e], key=lambda p: p[0]):
            G.add_edge(prev, snode, weight=t - prev_t)
            prev, prev_t = snode, t
        G.add_edge(prev, v, weight=L - prev_t)
    return G
