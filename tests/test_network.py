"""Walk network arrays, snapping, and the distance engine against networkx."""

from __future__ import annotations

import warnings

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, example, given, settings as hsettings, strategies as st
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import Delaunay

from geotijian import settings
from geotijian.errors import LayerError, NetworkError
from geotijian.network import (
    augmented_graph,
    build_network,
    distances_at_snaps,
    facility_access,
    pair_distances,
    snap_points,
    distance_graph,
    source_graph,
)
from geotijian.network.csr import _csr
from geotijian.network.geometry import (
    _first_intersecting,
    _locate_on_edges,
    _nearest_edges,
    _point_edge_distance,
    _snap_onto,
)
from geotijian._kernels.edge_grid import _EdgeGrid

CRS = "EPSG:32651"


def grid_roads(spacing: float = 100.0, n: int = 3) -> gpd.GeoDataFrame:
    """n × n nodes; every line carries a vertex at each crossing (as OSM ways do)."""
    xs = np.arange(n) * spacing
    lines = [shapely.LineString([(x, y) for x in xs]) for y in xs] + \
            [shapely.LineString([(x, y) for y in xs]) for x in xs]
    return gpd.GeoDataFrame({"road_id": range(len(lines))}, geometry=lines, crs=CRS)


def gdf(geoms, **cols):
    return gpd.GeoDataFrame(cols, geometry=list(geoms), crs=CRS)


def random_network(rng, n_lines: int, span: int, integer: bool, repeats: float = 0.0):
    """Random three-vertex streets in a ``span`` metre square (integer coordinates: ties
    and touching lines; a share ``repeats`` of lines with a repeated vertex), built
    with the report warnings silenced."""
    shape = (n_lines, 3, 2)
    co = rng.integers(0, span, shape).astype(float) if integer else rng.uniform(0, span, shape)
    if repeats:
        co[:, 1] = np.where(rng.random((n_lines, 1)) < repeats, co[:, 0], co[:, 1])
    roads = gpd.GeoDataFrame(geometry=shapely.linestrings(co + 3.3e5), crs=settings.metric_crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_network(roads)


# ----------------------------------------------------------------------- build
def test_grid_noded_at_shared_vertices():
    net = build_network(grid_roads())
    assert net.n_nodes == 9 and net.n_edges == 12
    assert np.allclose(net.edge_length, 100.0)
    assert len(net.component_size) == 1
    # CSR symmetric, one entry per neighbour pair
    assert (net.csr != net.csr.T).nnz == 0 and net.csr.nnz == 24
    # geometry oriented u -> v
    start = shapely.get_coordinates(shapely.get_point(net.edge_geometry, 0))
    assert np.allclose(start, np.c_[net.x[net.edge_u], net.y[net.edge_u]])


@pytest.mark.parametrize("multi", [False, True])
def test_roads_noded_in_chunks_by_two_threads_equal_one_thread(monkeypatch, multi):
    """Large layers are read in chunks by one thread and hashed by another: the network
    (nodes, edges, geometries, lengths, report) is the same as in one thread, with
    missing and empty rows, repeated vertices, one-vertex lines and multi-lines."""
    import geotijian.network.build as build

    monkeypatch.setattr(build, "_NODING_MIN_LINES", 10)
    rng = np.random.default_rng(5)
    co = rng.integers(0, 30, (400, 3, 2)).astype(float) + 3.3e5
    co[::7, 1] = co[::7, 0]  # a repeated vertex
    co[::11, 1:] = co[::11, :1]  # one distinct vertex
    geoms = shapely.linestrings(co)
    geoms[5], geoms[77] = None, shapely.from_wkt("LINESTRING EMPTY")
    if multi:
        geoms[40] = shapely.multilinestrings([geoms[41], geoms[42]])
    roads = gpd.GeoDataFrame({"name": np.arange(400)}, geometry=geoms, crs=settings.metric_crs)
    nets = {}
    for flag in (True, False):
        with settings.temporary(parallel=flag), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            nets[flag] = build_network(roads)
    a, b = nets[True], nets[False]
    for attr in ("x", "y", "edge_u", "edge_v", "edge_length", "edge_source", "component"):
        assert np.array_equal(getattr(a, attr), getattr(b, attr)), attr
    assert shapely.equals_exact(a.edge_geometry, b.edge_geometry, 0).all()
    pd.testing.assert_frame_equal(a.report, b.report)
    assert set(a.report["problem"]) >= {"empty road geometry left out",
                                        "degenerate road line (one distinct vertex) left out"}
    assert a.n_edges > 300


def test_roads_split_at_shared_interior_vertex_and_components_labelled():
    roads = gdf([shapely.LineString([(0, 0), (50, 0), (100, 0)]),     # passes through (50, 0)
                 shapely.LineString([(50, 0), (50, 80)]),
                 shapely.LineString([(500, 500), (600, 500)]),         # an island
                 shapely.LineString([(0, 10), (100, 10)])])            # crosses nothing shared
    net = build_network(roads)
    assert net.n_edges == 5
    assert sorted(np.round(net.edge_length, 6)) == [50, 50, 80, 100, 100]
    assert list(net.component_size) == [4, 2, 2]       # labelled by size, 0 = largest
    assert net.in_largest.sum() == 4
    assert net.component[np.argmin(np.hypot(net.x - 50, net.y))] == 0


def test_multilinestring_and_duplicates_reported():
    roads = gdf([shapely.MultiLineString([[(0, 0), (10, 0)], [(10, 0), (10, 10)]]),
                 shapely.LineString([(0, 0), (10, 0)])])
    with pytest.warns(Warning, match="duplicate"):
        net = build_network(roads)
    assert net.n_edges == 2 and net.report["problem"].str.contains("duplicate").any()
    # the edge index built during the build counted the merged copy: it is built again
    assert "_grid" not in net.__dict__
    assert len(net._grid.bx0) == net.n_edges
    s = snap_points(net, gdf([shapely.Point(5, 1), shapely.Point(11, 5)]))
    assert s.offset.tolist() == pytest.approx([1.0, 1.0])


def test_build_errors():
    with pytest.raises(LayerError, match="no CRS"):
        build_network(gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (1, 1)])]))
    with pytest.raises(LayerError, match="not a line"):
        build_network(gdf([shapely.Point(0, 0)]))
    with pytest.raises(NetworkError, match="geographic"):
        build_network(grid_roads(), crs="EPSG:4326")
    with pytest.raises(NetworkError):
        build_network("roads.shp")
    # a vertex 1,500 km away (wrong CRS), a NaN coordinate, no coordinates at all; a
    # polygon among far lines is named first (the layer error comes before the span)
    far = [shapely.LineString([(0, 0), (1, 1)]), shapely.LineString([(1.5e6, 0), (1.5e6, 5)])]
    with pytest.raises(NetworkError, match="1,000 km"):
        build_network(gdf(far))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # (shapely: a NaN coordinate)
        nan_line = shapely.linestrings([[0.0, 0.0], [np.nan, 1.0]])
    with pytest.raises(NetworkError, match="NaN"):
        build_network(gdf([nan_line]))
    with pytest.raises(NetworkError, match="no line with coordinates"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_network(gdf([shapely.from_wkt("LINESTRING EMPTY"), None]))
    with pytest.raises(LayerError, match="not a line"):
        build_network(gdf(far + [shapely.box(0, 0, 1, 1)]))


def test_geographic_roads_are_projected():
    roads = grid_roads().to_crs("EPSG:4326")
    net = build_network(roads)
    assert net.crs == settings.metric_crs
    assert np.allclose(net.edge_length, 100.0, atol=0.01)


# ------------------------------------------------------------------------ snap
def test_snap_points_edge_position_offset_and_far_report():
    net = build_network(grid_roads())
    pts = gdf([shapely.Point(30, -10), shapely.Point(195, 160), shapely.Point(100, -400)])
    s = snap_points(net, pts)
    e0 = s.edge[0]
    assert {net.edge_u[e0], net.edge_v[e0]} == {np.argmin(np.hypot(net.x, net.y)),
                                                np.argmin(np.hypot(net.x - 100, net.y))}
    assert s.position[0] == pytest.approx(30.0) and s.offset[0] == pytest.approx(10.0)
    assert s.offset[1] == pytest.approx(5.0) and s.position[1] == pytest.approx(60.0)
    assert s.report["feature"].tolist() == [2]              # 400 m > 200 m: reported, kept
    assert s.report["offset_m"].iloc[0] == pytest.approx(400.0)
    with settings.temporary(max_snap_distance_m=500):
        assert len(snap_points(net, pts).report) == 0


def test_snap_polygon_from_boundary():
    net = build_network(grid_roads())
    diamond = shapely.Polygon([(150, 112), (180, 140), (150, 170), (120, 140)])
    s = snap_points(net, gdf([diamond]))
    assert s.rule[0] == "boundary_nearest_edge"
    assert s.offset[0] == pytest.approx(12.0)
    assert (s.access_x[0], s.access_y[0]) == pytest.approx((150.0, 112.0))


def test_snap_rejects_geographic_and_empty():
    net = build_network(grid_roads())
    with pytest.raises(LayerError, match="geographic"):
        snap_points(net, gdf([shapely.Point(1, 1)]).to_crs("EPSG:4326"), layer="homes")
    with pytest.raises(LayerError, match="empty"):
        snap_points(net, gdf([shapely.Point()]))


def test_facility_access_rules():
    net = build_network(grid_roads())
    campus = shapely.box(110, 110, 190, 190)           # 10 m from four edges
    park = shapely.box(10, 110, 90, 190)
    far = shapely.box(1000, 1000, 1010, 1010)
    fac = gdf([shapely.Point(50, 5), campus, park, far])
    gate = gdf([shapely.Point(150, 110)])               # on the campus outline
    s = facility_access(net, fac, entrances=gate, access_distance=12)  # corners at 14.1 m
    rule = {int(o): r for o, r in zip(s.owner, s.rule)}
    assert rule == {0: "point", 1: "entrance", 2: "outline_adjacent_edge", 3: "outline_nearest_edge"}
    assert (s.owner == 2).sum() == 4                     # one access point per adjacent edge
    assert np.allclose(s.offset[s.owner == 2], 10.0)
    assert (s.owner == 1).sum() == 1 and s.offset[s.owner == 1][0] == pytest.approx(10.0)
    assert s.report["feature"].tolist() == [3]


# -------------------------------------------------------------- distance engine
def _engine(net, homes, facs):
    """The production path: searches on the core (pendant edges completed afterwards)."""
    hs = snap_points(net, homes)
    fs = facility_access(net, facs)
    dg = distance_graph(net, fs)
    d = distances_at_snaps(net, dg.distances(np.arange(len(facs))), hs, fs)
    for _ in range(2):  # the second call reuses the prepared targets
        assert np.array_equal(dg.to_targets(hs, np.arange(len(facs))), d)
    half = np.arange(0, len(facs), 2)
    ref_half = distances_at_snaps(net, dg.distances(half), hs, fs,
                                  source_mask=np.isin(np.arange(len(facs)), half))
    assert np.array_equal(dg.to_targets(hs, half), ref_half)
    return d, hs, fs


def _reference(net, hs, fs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G = augmented_graph(net, {"f": fs, "h": hs})
    d = nx.multi_source_dijkstra_path_length(G, [("a", "f", i) for i in range(len(fs.edge))])
    out = np.full(hs.n_features, np.inf)
    np.minimum.at(out, hs.owner, [d.get(("a", "h", i), np.inf) for i in range(len(hs.edge))])
    return out


def test_grid_hand_checked_distances():
    """Every expected distance worked out by hand on the 100 m grid."""
    net = build_network(grid_roads())
    K = gdf([shapely.Point(30, -10)])        # edge (0,0)-(100,0), t=30, offset 10
    homes = gdf([shapely.Point(70, 5),       # same edge, t=70, off 5: 10 + 40 + 5
                 shapely.Point(195, 160),    # edge x=200 y100-200, t=60, off 5: 80+100+100+60+5
                 shapely.Polygon([(150, 112), (180, 140), (150, 170), (120, 140)]),  # 80+100+50+12
                 shapely.Point(100, -400),   # 80 + 400 (far, reported)
                 shapely.Point(0, 0)])       # a node: 10 + 30
    d, hs, fs = _engine(net, homes, K)
    assert d == pytest.approx([55.0, 345.0, 242.0, 480.0, 40.0], abs=1e-9)
    P = gdf([shapely.Point(205, 150)])       # edge x=200 y100-200, t=50, off 5
    d, hs, fs = _engine(net, homes, P)
    assert d == pytest.approx([290.0, 20.0, 117.0, 655.0, 355.0], abs=1e-9)
    assert d == pytest.approx(_reference(net, hs, fs), abs=0.01)


def random_planar_roads(seed: int, n_pts: int, keep: float, spurs: int = 0) -> gpd.GeoDataFrame:
    """Delaunay streets; ``spurs`` dead ends (driveways) hang from random vertices, some
    doubled (parallel), some with a loop at the end, some on another spur (a dead-end
    tree), plus one isolated segment."""
    rng = np.random.default_rng(seed)
    pts = rng.uniform(0, 1000, (n_pts, 2))
    tri = Delaunay(pts)
    e = np.concatenate([tri.simplices[:, [0, 1]], tri.simplices[:, [1, 2]], tri.simplices[:, [0, 2]]])
    e = np.unique(np.sort(e, axis=1), axis=0)
    e = e[rng.random(len(e)) < keep]
    a, b = pts[e[:, 0]], pts[e[:, 1]]
    # bend half of the edges through an off-line vertex (geometry longer than the chord)
    mid = (a + b) / 2 + rng.normal(0, 15, (len(e), 2)) * (rng.random((len(e), 1)) < 0.5)
    lines = list(shapely.linestrings(np.stack([a, mid, b], axis=1)))
    ends = list(pts)
    for k in range(spurs):
        start = ends[rng.integers(len(ends))] if k % 4 == 3 else pts[rng.integers(n_pts)]
        end = start + rng.uniform(-60, 60, 2)
        lines.append(shapely.LineString([start, end]))
        ends.append(end)
        if k % 5 == 1:  # a parallel, longer copy: the end is no leaf
            lines.append(shapely.LineString([start, (start + end) / 2 + 7, end]))
        if k % 7 == 2:  # a loop at the end: no leaf either
            lines.append(shapely.LineString([end, end + [5, 0], end + [5, 5], end]))
    if spurs:
        lines.append(shapely.LineString([(-200, -200), (-150, -190)]))
    return gpd.GeoDataFrame(geometry=lines, crs=CRS)


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_pts=st.integers(4, 40), keep=st.floats(0.5, 1.0),
       n_homes=st.integers(1, 30), n_fac=st.integers(1, 6), share_edges=st.booleans(),
       polygons=st.booleans(), spurs=st.sampled_from([0, 25]))
def test_property_equals_networkx_on_augmented_graph(seed, n_pts, keep, n_homes, n_fac,
                                                     share_edges, polygons, spurs):
    roads = random_planar_roads(seed, n_pts, keep, spurs)
    if len(roads) == 0:
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = build_network(roads)
    rng = np.random.default_rng(seed + 1)
    hp = rng.uniform(-50, 1050, (n_homes, 2))
    fp = rng.uniform(-50, 1050, (n_fac, 2))
    if share_edges:  # put homes on the facilities' edges, some exactly on them or on nodes
        fp[: n_fac] = hp[: n_fac] + rng.normal(0, 3, (n_fac, 2)) if n_homes >= n_fac else fp
        hp[-1] = fp[0]
        hp[0] = (net.x[0], net.y[0])
    homes = gdf(shapely.points(hp))
    facs = gdf(shapely.points(fp))
    if polygons:  # campuses: several access points each; compounds: boundary rule
        facs = gdf(shapely.buffer(shapely.points(fp), rng.uniform(5, 80, n_fac), quad_segs=2))
        homes = gdf(shapely.box(hp[:, 0] - 10, hp[:, 1] - 10, hp[:, 0] + 15, hp[:, 1] + 12))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d, hs, fs = _engine(net, homes, facs)
    ref = _reference(net, hs, fs)
    assert np.array_equal(np.isinf(d), np.isinf(ref))
    fin = np.isfinite(ref)
    assert np.abs(d[fin] - ref[fin]).max(initial=0) < 0.01


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), spurs=st.integers(1, 60), limit=st.sampled_from([np.inf, 150.0]))
def test_core_search_equals_whole_network_search(seed, spurs, limit):
    """Searching the core and completing the pendant leaves gives every node the distance
    of a search on the whole network (sources on dead ends too), with and without limit,
    nearest-only and per source."""
    roads = random_planar_roads(seed, 12, 0.8, spurs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = build_network(roads)
        leaf, parent, length, core = net.pendant
        assert len(leaf) > 0 and core.nnz == net.csr.nnz - 2 * len(leaf)
        assert np.all(np.bincount(net.edge_u, minlength=net.n_nodes)[leaf]
                      + np.bincount(net.edge_v, minlength=net.n_nodes)[leaf] == 1)
        rng = np.random.default_rng(seed)
        on_spurs = shapely.line_interpolate_point(roads.geometry.to_numpy()[-spurs:], 0.4,
                                                  normalized=True)
        facs = gdf(np.concatenate([on_spurs[: 5], shapely.points(rng.uniform(0, 1000, (3, 2)))]))
        fs = facility_access(net, facs)
    full = source_graph(net, fs)
    dg = distance_graph(net, fs)
    src = np.arange(len(facs))
    for min_only in (True, False):
        ref = dijkstra(full, directed=True, indices=net.n_nodes + src, min_only=min_only,
                       limit=limit)[..., : net.n_nodes]
        got = dg.distances(src, limit=limit, min_only=min_only)
        assert got.shape == ref.shape
        assert np.array_equal(np.isinf(got), np.isinf(ref))
        fin = np.isfinite(ref)
        assert np.abs(got[fin] - ref[fin]).max(initial=0) < 1e-9


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), spurs=st.integers(0, 40), limit=st.sampled_from([np.inf, 90.0, 250.0]),
       polygons=st.booleans(), on_edges=st.booleans())
def test_sparse_searches_equal_the_dense_rows(seed, spurs, limit, polygons, on_edges):
    """DistanceGraph.within + pair_distances (one bounded sparse search per facility) give
    the values of the dense rows (scipy, leaves completed) and of distances_at_snaps, to
    the last bit: every node and every (facility, home) pair within the limit, no other."""
    roads = random_planar_roads(seed, 14, 0.85, spurs)
    rng = np.random.default_rng(seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = build_network(roads)
        fp = rng.uniform(-20, 1020, (6, 2))
        hp = rng.uniform(-20, 1020, (40, 2))
        if on_edges:  # homes on the facilities' edges and on nodes: the same-edge pairs
            hp[:6] = fp + rng.normal(0, 2, (6, 2))
            hp[6] = (net.x[0], net.y[0])
        facs = gdf(shapely.buffer(shapely.points(fp), rng.uniform(5, 60, 6), quad_segs=2) if polygons
                   else shapely.points(fp))
        homes = gdf(shapely.box(hp[:, 0] - 8, hp[:, 1] - 8, hp[:, 0] + 9, hp[:, 1] + 7) if polygons
                    else shapely.points(hp))
        fs, hs = facility_access(net, facs), snap_points(net, homes)
    dg = distance_graph(net, fs)
    src = np.arange(len(facs))
    dense = dg.distances(src, limit=limit, min_only=False)
    f, node, d = dg.within(src, limit=limit)
    got = np.full(dense.shape, np.inf)
    got[f, node] = d
    assert len(f) == np.isfinite(dense).sum()  # each (facility, node) once
    assert np.array_equal(got, dense)
    ref = distances_at_snaps(net, dense, hs, fs)
    ref[ref > limit] = np.inf
    f, h, d = pair_distances(net, f, node, d, hs, fs)
    assert np.all(np.diff(f * len(homes) + h) > 0)  # sorted, each pair once
    got = np.full(ref.shape, np.inf)
    got[f, h] = d
    got[got > limit] = np.inf
    assert np.array_equal(got, ref)


def test_matrix_form_equals_min_only():
    roads = random_planar_roads(7, 30, 0.9)
    net = build_network(roads)
    rng = np.random.default_rng(3)
    homes = gdf(shapely.points(rng.uniform(0, 1000, (40, 2))))
    facs = gdf(shapely.points(rng.uniform(0, 1000, (5, 2))))
    hs, fs = snap_points(net, homes), facility_access(net, facs)
    g = source_graph(net, fs)
    D2 = dijkstra(g, directed=True, indices=net.n_nodes + np.arange(5))
    full = distances_at_snaps(net, D2, hs, fs)
    d, _, _ = _engine(net, homes, facs)
    assert full.shape == (5, 40)
    assert np.allclose(full.min(axis=0), d)


# -------------------------------------------------------------------- real data
@pytest.fixture(scope="module")
def tongji_graph(osm_dir):
    import osmnx as ox

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ox.graph_from_xml(osm_dir / "shanghai_yangpu_tongji.osm")


def test_real_graph_lengths_match_osmnx(tongji_graph):
    import osmnx as ox

    net = build_network(tongji_graph)
    assert net.crs == settings.metric_crs
    Gp = ox.project_graph(tongji_graph, to_crs=CRS)
    assert net.n_nodes == Gp.number_of_nodes()
    # node-to-node distances equal networkx on the projected undirected graph
    Gu = nx.Graph()
    for u, v, d in Gp.edges(data=True):
        L = d["geometry"].length if "geometry" in d else float(np.hypot(
            Gp.nodes[u]["x"] - Gp.nodes[v]["x"], Gp.nodes[u]["y"] - Gp.nodes[v]["y"]))
        if u != v and (not Gu.has_edge(u, v) or Gu[u][v]["weight"] > L):
            Gu.add_edge(u, v, weight=L)
    src = net.node_ids[0]
    ref = nx.single_source_dijkstra_path_length(Gu, src)
    ours = dijkstra(net.csr, indices=0)
    got = np.array([ours[i] for i, nid in enumerate(net.node_ids) if nid in ref])
    exp = np.array([ref[nid] for nid in net.node_ids if nid in ref])
    assert np.abs(got - exp).max() < 0.01


@pytest.mark.parametrize("name", ["shanghai_yangpu_tongji.osm", "beijing_haidian.osm"])
def test_geographic_graph_projected_as_osmnx_project_graph(osm_dir, name):
    """A graph in degrees is projected here (node coordinates and edge vertices, one
    vectorised pass each): the network equals the one built from
    ``osmnx.project_graph``'s graph, to the last bit."""
    import osmnx as ox

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G = ox.graph_from_xml(osm_dir / name)
        ours = build_network(G)
        ref = build_network(ox.project_graph(G, to_crs=settings.metric_crs))
    assert ours.crs == ref.crs == settings.metric_crs
    assert ours.n_nodes == ref.n_nodes > 100 and ours.n_edges == ref.n_edges
    # (osmnx rebuilds the graph: nodes and edges come in another order) same nodes, same
    # coordinates; same streets, same vertices (bit for bit) and lengths
    a, b = np.argsort(ours.node_ids), np.argsort(ref.node_ids)
    assert np.array_equal(ours.node_ids[a], ref.node_ids[b])
    assert np.array_equal(ours.x[a], ref.x[b]) and np.array_equal(ours.y[a], ref.y[b])
    # (of the two directed copies of a street, each build keeps the first it meets, and
    # osmnx may renumber the keys of parallel streets: streets are compared by their
    # end nodes, their vertices in either direction, bit for bit)
    def streets(net):
        wkb = shapely.to_wkb(shapely.normalize(net.edge_geometry))
        ids = net.node_ids
        out: dict = {}
        for a, b, w, L in zip(ids[net.edge_u], ids[net.edge_v], wkb, net.edge_length):
            out.setdefault((min(a, b), max(a, b)), []).append((w, L))
        return {k: sorted(v) for k, v in out.items()}

    so, sr = streets(ours), streets(ref)
    assert so.keys() == sr.keys()
    for k, v in so.items():
        assert [w for w, _ in v] == [w for w, _ in sr[k]]
        assert np.allclose([x for _, x in v], [x for _, x in sr[k]], rtol=0, atol=1e-9)


@pytest.mark.parametrize("name", ["shanghai_yangpu_tongji.osm", "shanghai_huangpu_roads.osm",
                                  "beijing_haidian.osm"])
def test_real_extract_distances_equal_networkx(osm_dir, name):
    """Real OSM graphs; on Tongji the facilities are the classified OSM POIs (campus and
    park polygons with several access points, and points)."""
    import osmnx as ox

    from geotijian.facilities import classify_pois

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G = ox.graph_from_xml(osm_dir / name)
        net = build_network(G)
    rng = np.random.default_rng(11)
    box = (net.x.min(), net.y.min(), net.x.max(), net.y.max())
    homes = gdf(shapely.points(rng.uniform(box[0], box[2], 300), rng.uniform(box[1], box[3], 300)))
    if name == "shanghai_yangpu_tongji.osm":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pois = classify_pois(ox.features_from_xml(osm_dir / name))
        pois = pois[pois["type"].isin(["primary_school", "junior_middle_school", "park_15min",
                                       "fresh_market", "sports_centre"])]
        facs = gdf(pois.drop_duplicates("poi_id").to_crs(CRS).geometry)
        assert (facs.geom_type == "Polygon").sum() >= 3
    else:
        facs = gdf(shapely.points(rng.uniform(box[0], box[2], 8), rng.uniform(box[1], box[3], 8)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d, hs, fs = _engine(net, homes, facs)
    ref = _reference(net, hs, fs)
    assert np.array_equal(np.isinf(d), np.isinf(ref))
    assert np.isfinite(ref).mean() > 0.9
    fin = np.isfinite(ref)
    assert np.abs(d[fin] - ref[fin]).max() < 0.01


def test_broken_osm_is_a_clear_error(osm_dir):
    import osmnx as ox

    with pytest.raises(ValueError, match="missing nodes"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            build_network(ox.graph_from_xml(osm_dir / "shanghai_sampled_broken.osm"))


# ------------------------------------------------- fast paths equal the GEOS reference
@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 300), grid_step=st.sampled_from([0.0, 5.0]))
def test_edge_grid_pairs_equal_strtree_query(seed, n, grid_step):
    """_EdgeGrid.pairs returns exactly the envelope pairs of STRtree.query (boxes)."""
    rng = np.random.default_rng(seed)
    a = rng.uniform(0, 500, (n, 2))
    b = a + rng.normal(0, 60, (n, 2))
    if grid_step:  # coordinates on a grid: envelopes touching exactly
        a, b = np.round(a / grid_step) * grid_step, np.round(b / grid_step) * grid_step
    lines = shapely.linestrings(np.stack([a, b], axis=1))
    grid = _EdgeGrid(shapely.bounds(lines))
    q = rng.uniform(-100, 600, (50, 2))
    qb = np.c_[q, q + rng.uniform(0, 150, (50, 2))]
    if grid_step:
        qb = np.round(qb / grid_step) * grid_step
    qi, ei = grid.pairs(qb)
    ti, te = shapely.STRtree(lines).query(shapely.box(*qb.T))
    assert np.all(np.diff(qi) >= 0)  # grouped by query
    got = np.lexsort((ei, qi))
    ref = np.lexsort((te, ti))
    assert np.array_equal(qi[got], ti[ref]) and np.array_equal(ei[got], te[ref])


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), integer=st.booleans())
def test_first_intersecting_and_locate_equal_geos(seed, integer):
    """Lowest intersecting edge (numpy filter + GEOS) equals the STRtree intersects query,
    also with touching/collinear cases; _locate_on_edges / _point_edge_distance equal
    line_locate_point / distance bit for bit."""
    rng = np.random.default_rng(seed)
    k = 400
    net = random_network(rng, k, 40, integer, repeats=0.2)
    c = rng.integers(0, 40, (60, 2)) + 3.3e5
    w = rng.integers(1, 12, (60, 2))
    rings = shapely.boundary(shapely.box(c[:, 0], c[:, 1], c[:, 0] + w[:, 0], c[:, 1] + w[:, 1]))
    got = _first_intersecting(net, rings)
    qa, qe = net.tree.query(rings, predicate="intersects")
    ref = np.full(len(rings), -1)
    for i in range(len(rings)):
        hits = qe[qa == i]
        ref[i] = hits.min() if len(hits) else -1
    assert np.array_equal(got, ref)
    e = rng.integers(0, net.n_edges, 300)
    p = rng.uniform(0, 40, (300, 2)) + 3.3e5
    on = shapely.get_coordinates(shapely.shortest_line(shapely.points(p), net.edge_geometry[e]))[1::2]
    for xy in (p, on):
        loc = _locate_on_edges(net, e, xy[:, 0].copy(), xy[:, 1].copy())
        assert np.array_equal(loc, shapely.line_locate_point(net.edge_geometry[e], shapely.points(xy)))
        dist = _point_edge_distance(net, e, xy[:, 0].copy(), xy[:, 1].copy())
        assert np.array_equal(dist, shapely.distance(shapely.points(xy), net.edge_geometry[e]))


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), integer=st.booleans(), spread=st.sampled_from([30.0, 600.0]))
def test_nearest_edges_equal_strtree_query_nearest(seed, integer, spread):
    """The nearest edge (ties: the lowest number) and its distance, for points (compiled
    grid search, every radius and the far fallback) and outlines, equal
    ``STRtree.query_nearest(all_matches=True)`` and ``shapely.distance``."""
    rng = np.random.default_rng(seed)
    net = random_network(rng, 150, 40, integer)
    p = rng.uniform(-spread, 40 + spread, (200, 2))
    if integer:
        p = np.round(p)  # equidistant edges: ties
    pts = shapely.points(p + 3.3e5)
    c = rng.uniform(-spread, 40 + spread, (60, 2)) + 3.3e5
    rings = shapely.boundary(shapely.box(c[:, 0], c[:, 1], c[:, 0] + 3, c[:, 1] + 2))
    for geoms in (pts, rings):
        edge, dist = _nearest_edges(net, geoms)
        (src, tgt), _ = net.tree.query_nearest(geoms, all_matches=True, return_distance=True)
        ref = np.full(len(geoms), net.n_edges)
        np.minimum.at(ref, src, tgt)
        assert np.array_equal(edge, ref)
        assert np.array_equal(dist, shapely.distance(geoms, net.edge_geometry[edge]))


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), integer=st.booleans())
def test_snap_onto_equals_geos_shortest_line(seed, integer):
    """The compiled access points (points; outlines crossing their edge) are GEOS's
    ``shortest_line`` points: same crossing, offset and position along the edge."""

    rng = np.random.default_rng(seed)
    k = 300
    net = random_network(rng, k, 60, integer)
    m = 200
    c = rng.integers(0, 60, (m, 2)) + 3.3e5 if integer else rng.uniform(0, 60, (m, 2)) + 3.3e5
    w = rng.integers(1, 25, (m, 2)) if integer else rng.uniform(1, 25, (m, 2))
    polys = shapely.box(c[:, 0], c[:, 1], c[:, 0] + w[:, 0], c[:, 1] + w[:, 1])
    from shapely import affinity

    polys[::3] = [affinity.rotate(g, 33) for g in polys[::3]]  # not axis-parallel
    rings = shapely.boundary(polys)
    pts = shapely.points(rng.uniform(0, 60, (m, 2)) + 3.3e5)
    geoms = np.concatenate([rings, pts])
    e = rng.integers(0, net.n_edges, len(geoms))
    # every other outline is given an edge it crosses (a random edge alone crossed fewer
    # than 20 of the 200 for some seeds, and the crossing path went unexercised)
    src, tgt = net.tree.query(rings, predicate="intersects")
    crossed = np.full(m, -1)
    crossed[src[::-1]] = tgt[::-1]   # the first edge each outline meets
    pick = (crossed >= 0) & (np.arange(m) % 2 == 0)
    e[:m][pick] = crossed[pick]
    ax, ay, pos, off = _snap_onto(net, geoms, e)
    ref = shapely.shortest_line(geoms, net.edge_geometry[e])
    rc = shapely.get_coordinates(ref)
    assert np.abs(off - shapely.length(ref)).max() < 1e-9
    assert np.abs(ax - rc[0::2, 0]).max() < 1e-6 and np.abs(ay - rc[0::2, 1]).max() < 1e-6
    # points: where GEOS locates the point itself (shortest_line may pick the other of
    # two segments within 1 ulp of each other on a folded edge)
    exp = shapely.line_locate_point(net.edge_geometry[e], np.r_[shapely.points(rc[1::2])[:m], pts])
    assert np.abs(pos - exp).max() < 1e-6
    assert (off[:m] == 0).sum() > 20  # the crossing path was exercised


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), integer=st.booleans())
@example(seed=8014993, integer=True)  # an ulp-level tie of a holed outline
def test_snap_points_of_mixed_polygons_equals_geos_on_their_boundaries(seed, integer):
    """Polygons are snapped from their own vertices (their boundaries made only for what
    GEOS decides): the edge, offset, access point and position equal GEOS on
    ``shapely.boundary`` for plain, rotated, holed and multi-part polygons mixed with
    points and lines, near and far from the streets."""
    from shapely import affinity

    rng = np.random.default_rng(seed)
    net = random_network(rng, 250, 60, integer)
    m = 40
    c = rng.uniform(-80, 140, (6 * m, 2)) + 3.3e5
    if integer:
        c = np.round(c)
    w = rng.integers(2, 20, (6 * m, 2)).astype(float)
    box = shapely.box(c[:, 0], c[:, 1], c[:, 0] + w[:, 0], c[:, 1] + w[:, 1])
    plain = box[:m]
    rotated = np.array([affinity.rotate(g, 33) for g in box[m:2 * m]])
    holed = np.array([shapely.Polygon(shapely.get_exterior_ring(g).coords,
                                      [shapely.get_exterior_ring(affinity.scale(g, 0.5, 0.5)).coords])
                      for g in box[2 * m:3 * m]])
    multi = np.array([shapely.MultiPolygon([a, b]) for a, b in zip(box[3 * m:4 * m], box[4 * m:5 * m])])
    pts = shapely.points(c[5 * m:])
    lines = shapely.linestrings(np.stack([c[:m], c[:m] + w[:m] * [1.0, -1.0]], axis=1))
    geoms = np.concatenate([plain, rotated, holed, multi, pts, lines])
    layer = gpd.GeoDataFrame(geometry=geoms, crs=settings.metric_crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        snap = snap_points(net, layer, layer="homes")
    outl = geoms.copy()
    poly = np.isin(shapely.get_type_id(geoms), [3, 6])
    outl[poly] = shapely.boundary(geoms[poly])
    # the nearest edge by shapely.distance, ties to the lowest number, by brute force
    # (STRtree.query_nearest measures with other GEOS code and can order ties within an
    # ulp differently for multi-part outlines: seed 8014993 found one)
    D = shapely.distance(outl[:, None], net.edge_geometry[None, :])
    ref = np.argmax(D == D.min(axis=1, keepdims=True), axis=1)
    assert np.array_equal(snap.edge, ref)
    line = shapely.shortest_line(outl, net.edge_geometry[ref])
    rc = shapely.get_coordinates(line)
    assert np.abs(snap.offset - shapely.length(line)).max() < 1e-9
    assert np.abs(snap.access_x - rc[0::2, 0]).max() < 1e-6
    assert np.abs(snap.access_y - rc[0::2, 1]).max() < 1e-6
    exp = shapely.line_locate_point(net.edge_geometry[ref], shapely.points(rc[1::2]))
    assert np.abs(snap.position - exp).max() < 1e-6
    assert list(snap.rule[poly]) == ["boundary_nearest_edge"] * int(poly.sum())
    assert set(snap.rule[~poly]) == {"point"}
    assert (snap.offset[poly] == 0).sum() > 5 and (snap.offset[poly] > 0).sum() > 5


def test_csr_keeps_shortest_parallel_edge_and_zero_lengths():
    u = np.array([0, 1, 0, 2, 2, 3])
    v = np.array([1, 0, 1, 2, 3, 2])
    w = np.array([5.0, 3.0, 4.0, 1.0, 0.0, 2.0])
    m = _csr(4, u, v, w)
    assert m.has_sorted_indices
    assert m[0, 1] == 3.0 and m[1, 0] == 3.0  # shortest of three parallel edges
    assert m[2, 2] == 0 and (2, 2) not in set(zip(*m.nonzero()))  # self-loop left out
    assert m.nnz == 4 and m[2, 3] == 0.0 and 3 in m.indices[m.indptr[2]:m.indptr[3]]  # explicit 0
