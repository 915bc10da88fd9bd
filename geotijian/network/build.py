""":func:`build_network`: an osmnx graph or a roads layer to a :class:`WalkNetwork`.

A roads layer is noded on the CRS's 1 mm grid by the compiled noder (read and hashed
in two threads for a large layer); an osmnx graph is projected as ``osmnx.project_graph``
would, without rebuilding it. Geometries are oriented from ``u`` to ``v``, reciprocal
duplicates merged, components labelled by size."""

from __future__ import annotations

import threading
import warnings
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Transformer

from .. import _kernels, settings
from ..errors import GeotijianWarning, LayerError, NetworkError, RepairWarning
from .csr import _csr
from .._kernels.edge_grid import _EdgeGrid, _ranges
from .walk import WalkNetwork


_KEY_DECIMALS = 3  # vertices in the same 1 mm cell of the CRS's grid are one node (roads layer)


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
