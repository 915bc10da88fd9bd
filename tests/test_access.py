"""Nearest-facility distances, coverage shares, gaps, distance matrix and service areas."""

from __future__ import annotations

import os
import sys
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geotijian.access import (
    ZERO_DISTANCE_M,
    CoverageResult,
    coverage_gaps,
    facility_access_points,
    facility_distance_matrix,
    nearest_facility_distance,
    service_areas,
    service_coverage,
)
from geotijian.access_areas import _reached_segments, _substrings
from geotijian.errors import ConfigError, LayerError
from geotijian.model import GAP_COLUMNS
from geotijian.network import build_network, facility_access, source_graph

CRS = "EPSG:32651"


def grid_roads(spacing=100.0, n=3):
    xs = np.arange(n) * spacing
    lines = [shapely.LineString([(x, y) for x in xs]) for y in xs] + \
            [shapely.LineString([(x, y) for y in xs]) for x in xs]
    return gpd.GeoDataFrame(geometry=lines, crs=CRS)


@pytest.fixture
def net():
    island = gpd.GeoDataFrame(geometry=[shapely.LineString([(1000, 1000), (1100, 1000)])], crs=CRS)
    return build_network(pd.concat([grid_roads(), island], ignore_index=True))


@pytest.fixture
def homes():
    """Hand-placed homes on the 100 m grid (see expected distances in the tests)."""
    return gpd.GeoDataFrame({
        "home_id": ["A", "B", "C", "D", "E"],
        "population": [100.0, 200.0, 300.0, 50.0, 10.0],
        "unit_id": ["U1", "U1", "U2", "U2", "U3"],
        "town_code": ["T1", "T1", "T1", "T1", "T2"],
    }, geometry=[shapely.Point(70, 5),                 # edge (0,0)-(100,0) t=70 off 5
                 shapely.Point(195, 160),              # edge x=200 y100-200 t=60 off 5
                 shapely.Polygon([(150, 112), (180, 140), (150, 170), (120, 140)]),  # off 12
                 shapely.Point(1050, 1010),            # on the island
                 shapely.Point(100, -400)], crs=CRS)   # 400 m off the network


@pytest.fixture
def facs():
    return gpd.GeoDataFrame({"type": ["kindergarten", "primary_school"], "facility_id": ["K", "P"]},
                            geometry=[shapely.Point(30, -10), shapely.Point(205, 150)], crs=CRS)


EXPECTED = {  # worked out by hand, metres
    "kindergarten": [55.0, 345.0, 242.0, np.inf, 480.0],
    "primary_school": [290.0, 20.0, 117.0, np.inf, 655.0],
}


def test_nearest_facility_distance_hand_checked(net, homes, facs):
    with pytest.warns(Warning, match="reported"):
        d = nearest_facility_distance(net, homes, facs, types=["kindergarten", "primary_school"])
    assert list(d.index) == ["A", "B", "C", "D", "E"]
    for t, exp in EXPECTED.items():
        assert d[t].to_numpy() == pytest.approx(exp, abs=1e-9)
    rep = d.attrs["report"]
    assert set(rep.loc[rep["problem"].str.contains("component"), "feature_id"]) == {"D"}
    assert set(rep.loc[rep["problem"].str.contains("maximum snap"), "feature_id"]) == {"E"}


def test_parallel_gives_the_same_table(monkeypatch):
    """Homes and facilities snapped in two threads (homes split between them) or one
    after the other: same bytes, same report (a real district: compounds, campus
    polygons, dead ends; far homes in both parts of the split)."""
    import geotijian.access as access
    from geotijian import settings
    from geotijian.sample import make_sample_district

    monkeypatch.setattr(access, "_PARALLEL_MIN_HOMES", 10)
    s = make_sample_district(seed=7, scale=0.3)
    facs = s["facilities"]
    comp = s["compounds"]
    far = comp.iloc[[0, 1]].copy()
    far["geometry"] = far.geometry.translate(6000, 0)
    far["compound_id"] = ["far0", "far1"]
    homes = pd.concat([far.iloc[:1], comp, far.iloc[1:]])
    out = {}
    for flag in (True, False):
        with settings.temporary(parallel=flag), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = build_network(s["roads"])  # (its edge index built in a thread, or not)
            assert ("_grid" in net.__dict__) is flag
            out[flag] = nearest_facility_distance(net, homes, facs, max_distance=1000.0)
    pd.testing.assert_frame_equal(out[True], out[False])
    rep = out[True].attrs["report"]
    pd.testing.assert_frame_equal(rep, out[False].attrs["report"])
    far_rows = rep[rep["problem"].str.contains("maximum snap distance")]
    assert sorted(far_rows["feature"]) == [0, len(homes) - 1]
    assert np.isfinite(out[True].to_numpy()).mean() > 0.3  # a real mix of reached and not


def test_dict_input_limit_and_empty_type(net, homes, facs):
    by_type = {"kindergarten": facs.iloc[[0]], "primary_school": facs.iloc[[1]],
               "nursery": facs.iloc[[]]}
    with pytest.warns(Warning):
        d = nearest_facility_distance(net, homes, by_type, max_distance={"kindergarten": 300})
    assert d["kindergarten"].to_numpy() == pytest.approx([55.0, np.inf, 242.0, np.inf, np.inf])
    assert d["primary_school"].to_numpy() == pytest.approx(EXPECTED["primary_school"])
    assert np.isinf(d["nursery"]).all()
    assert d.attrs["report"]["problem"].str.contains("no facility of type 'nursery'").any()


def test_geographic_homes_rejected(net, homes, facs):
    with pytest.raises(LayerError, match="geographic"):
        nearest_facility_distance(net, homes.to_crs("EPSG:4326"), facs)
    with pytest.raises(LayerError, match="not unique"):
        nearest_facility_distance(net, homes.assign(home_id="X"), facs)
    with pytest.raises(LayerError, match="type"):
        nearest_facility_distance(net, homes, facs.drop(columns="type"))


def test_polygon_facility_reached_at_nearest_gate(net, homes):
    # a campus inside the top-left block, with a gate on its south side at (50, 110)
    campus = shapely.box(10, 110, 90, 190)
    fac = gpd.GeoDataFrame({"type": ["primary_school"]}, geometry=[campus], crs=CRS)
    gate = gpd.GeoDataFrame(geometry=[shapely.Point(50, 110)], crs=CRS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        d_gate = nearest_facility_distance(net, homes, fac, entrances=gate)["primary_school"]
        d_out = nearest_facility_distance(net, homes, fac, access_distance=12)["primary_school"]
    # gate: 10 m to edge y=100 at t=50. A at (70,5): 5 + 30 + 100 + 50 + 10
    assert d_gate["A"] == pytest.approx(195.0)
    # outline: the east side is 10 m from x=100: A -> (100,0) 35, up 100 + 50... nearest is
    # the access point on x=100 at y=110..190 (outline point (90,110) -> 10 m): 35+110+10
    assert d_out["A"] == pytest.approx(155.0)
    ap = facility_access_points(net, fac, entrances=gate)
    assert ap["access_rule"].tolist() == ["entrance"]


def test_service_coverage_shares_and_units(net, homes, facs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = service_coverage(net, homes, facs)
    assert isinstance(res, CoverageResult)
    assert res.types == ["kindergarten", "primary_school"]
    assert res.walk_distance_m == {"kindergarten": 300.0, "primary_school": 500.0}
    ph = res.per_home.set_index("home_id")
    assert ph["covered_kindergarten"].tolist() == [True, False, True, False, False]
    assert ph["covered_primary_school"].tolist() == [True, True, True, False, False]
    assert ph["types_covered"].tolist() == [2, 1, 2, 0, 0]
    assert ph["complete"].tolist() == [True, False, True, False, False]
    pa = res.per_area
    dist = pa[pa.level == "district"].set_index("facility_type")
    assert dist.loc["kindergarten", "population"] == 660
    assert dist.loc["kindergarten", "covered_population"] == 400
    assert dist.loc["kindergarten", "share"] == pytest.approx(400 / 660)
    assert dist.loc["primary_school", "not_covered"] == 60
    assert res.complete_share == pytest.approx(400 / 660)
    u = pa[(pa.level == "unit")].set_index(["area_id", "facility_type"])
    assert u.loc[("U1", "kindergarten"), "share"] == pytest.approx(100 / 300)
    # the unit and town figures sum to the district figures, for every type
    for level in ("unit", "town"):
        s = pa[pa.level == level].groupby("facility_type")[["population", "covered_population",
                                                            "not_covered"]].sum()
        assert np.allclose(s.loc[dist.index].to_numpy(),
                           dist[["population", "covered_population", "not_covered"]].to_numpy())
    assert set(res.facilities["access_rule"]) == {"point"}


def test_units_assigned_by_polygon_and_unassigned_kept(net, homes, facs):
    units = gpd.GeoDataFrame({"unit_id": ["W", "E"], "town_code": ["T", "T"]},
                             geometry=[shapely.box(-10, -10, 110, 210), shapely.box(110, -10, 210, 210)],
                             crs=CRS)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = service_coverage(net, homes.drop(columns=["unit_id", "town_code"]), facs, units=units)
    ph = res.per_home.set_index("home_id")
    assert ph.loc[["A", "B", "C", "D", "E"], "unit_id"].tolist() == \
        ["W", "E", "E", "<unassigned>", "<unassigned>"]
    pa = res.per_area
    s = pa[pa.level == "unit"].groupby("facility_type")["covered_population"].sum()
    d = pa[pa.level == "district"].set_index("facility_type")["covered_population"]
    assert np.allclose(s.loc[d.index], d)
    assert res.report["problem"].str.contains("outside every unit").any()


def test_coverage_errors(net, homes, facs):
    with pytest.raises(LayerError, match="population"):
        service_coverage(net, homes.drop(columns="population"), facs)
    with pytest.raises(LayerError, match="negative"):
        service_coverage(net, homes.assign(population=-1.0), facs)
    with pytest.raises(ConfigError, match="walking distance"):
        service_coverage(net, homes, facs, types=["restaurant"])


def test_type_without_walking_distance_is_said_and_reported(net, homes, facs):
    bank = gpd.GeoDataFrame({"type": ["bank_branch"], "facility_id": ["B"]},
                            geometry=[shapely.Point(100, 50)], crs=CRS)
    with pytest.warns(Warning, match="left out of coverage: bank_branch"):
        res = service_coverage(net, homes, pd.concat([facs, bank], ignore_index=True))
    assert res.types == ["kindergarten", "primary_school"]
    assert res.report["problem"].str.contains("'bank_branch' has no walking distance").sum() == 1


def test_coverage_gaps_layer(net, homes, facs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = service_coverage(net, homes, facs)
        gaps = coverage_gaps(res)
        again = coverage_gaps(net, homes, facs)
    assert list(gaps.columns) == GAP_COLUMNS + ["geometry"]
    k = gaps[gaps.facility_type == "kindergarten"].set_index("home_id")
    assert list(k.index) == ["B", "D", "E"]
    assert k.loc["B", "distance_m"] == pytest.approx(345.0)
    assert np.isinf(k.loc["D", "distance_m"])
    assert k.loc["B", "facility_name_zh"] == "幼儿园" and k.loc["B", "walk_distance_m"] == 300
    assert gaps.crs == CRS
    pd.testing.assert_frame_equal(pd.DataFrame(gaps.drop(columns="geometry")),
                                  pd.DataFrame(again.drop(columns="geometry")))


def test_distance_matrix_matches_nearest_and_stores_zero(net, homes, facs):
    extra = gpd.GeoDataFrame({"type": ["kindergarten"]}, geometry=[shapely.Point(150, 0)], crs=CRS)
    f = pd.concat([facs, extra], ignore_index=True)
    h = pd.concat([homes, gpd.GeoDataFrame({"home_id": ["F"], "population": [1.0]},
                                           geometry=[shapely.Point(150, 0)], crs=CRS)],
                  ignore_index=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        M = facility_distance_matrix(net, h, f, max_distance=400, chunk_cells=20)  # 1 per chunk
        near = nearest_facility_distance(net, h, f)
    assert M.shape == (6, 3)
    dense = np.full(M.shape, np.inf)
    coo = M.tocoo()
    dense[coo.row, coo.col] = coo.data
    assert dense[5, 2] == ZERO_DISTANCE_M               # F sits on the extra facility
    assert dense[0, 0] == pytest.approx(55.0) and dense[1, 1] == pytest.approx(20.0)
    assert dense[1, 0] == pytest.approx(345.0) and dense[0, 1] == pytest.approx(290.0)
    assert np.isinf(dense[3]).all() and np.isinf(dense[4]).all()     # island, 480 > 400
    k = np.minimum(dense[:, 0], dense[:, 2])
    exp = near["kindergarten"].to_numpy()
    exp = np.where(exp <= 400, np.maximum(exp, ZERO_DISTANCE_M), np.inf)
    assert k == pytest.approx(exp)
    assert (M.data <= 400).all() and (M.data > 0).all()


def test_substrings_vectorised():
    g = np.array([shapely.LineString([(0, 0), (10, 0), (10, 10)])] * 3)
    out = _substrings(g, np.array([0.0, 5.0, 12.0]), np.array([20.0, 15.0, 13.0]))
    assert shapely.equals(out[0], g[0])
    assert shapely.get_coordinates(out[1]).tolist() == [[5, 0], [10, 0], [10, 5]]
    assert shapely.length(out[2]) == pytest.approx(1.0)


def test_service_area_cut_at_exact_distance(net):
    fac = gpd.GeoDataFrame({"type": ["kindergarten"]}, geometry=[shapely.Point(50, 0)], crs=CRS)
    fs = facility_access(net, fac)
    from scipy.sparse.csgraph import dijkstra

    D = dijkstra(source_graph(net, fs), directed=True, indices=[net.n_nodes], limit=120)[0]
    lines = _reached_segments(net, D, fs, None, 120.0)
    # whole edge (0,0)-(100,0) + 70 m up x=0 + 70 m along y=0 east + 70 m up x=100
    assert shapely.length(shapely.union_all(lines)) == pytest.approx(310.0)
    sa = service_areas(net, fac, 120, half_width=2)
    poly = sa.geometry.iloc[0]
    assert sa["facility_type"].tolist() == ["kindergarten"]
    assert poly.contains(shapely.Point(0, 71)) and not poly.contains(shapely.Point(0, 73))
    assert not poly.contains(shapely.Point(50, 50))    # no convex hull
    per = service_areas(net, fac.assign(facility_id=["K1"]), 120, half_width=2, per_facility=True)
    assert per["facility_id"].tolist() == ["K1"]
    assert shapely.equals(per.geometry.iloc[0].normalize(), poly.normalize()) or \
        abs(per.geometry.iloc[0].area - poly.area) < 1e-6


def test_service_area_default_catalogue_distance(net, facs):
    sa = service_areas(net, facs)
    assert sa.set_index("facility_type")["walk_distance_m"].to_dict() == \
        {"kindergarten": 300.0, "primary_school": 500.0}
    assert (sa.area > 0).all()


def test_real_extract_coverage(osm_dir):
    """Tongji extract: residential landuse as homes, classified OSM POIs as facilities."""
    import osmnx as ox

    from geotijian.facilities import classify_pois

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        G = ox.graph_from_xml(osm_dir / "shanghai_yangpu_tongji.osm")
        feats = ox.features_from_xml(osm_dir / "shanghai_yangpu_tongji.osm")
        net = build_network(G)
        pois = classify_pois(feats).to_crs(net.crs)
        res_area = feats[(feats.get("landuse") == "residential")].to_crs(net.crs)
        homes = gpd.GeoDataFrame({"population": res_area.area.to_numpy() * 0.03},
                                 geometry=res_area.geometry.to_numpy(), crs=net.crs)
        types = ["bus_stop", "fresh_market", "primary_school", "kindergarten"]
        res = service_coverage(net, homes, pois[pois["matched"]], types=types)
        gates = feats[feats.get("barrier").eq("gate") | feats.get("entrance").notna()].to_crs(net.crs)
        res_g = service_coverage(net, homes, pois[pois["matched"]], types=types, entrances=gates)
    d = res.per_area[res.per_area.level == "district"].set_index("facility_type")
    assert 0 <= d.loc["bus_stop", "share"] <= 1
    assert np.isinf(res.per_home["dist_kindergarten"]).all()      # none in the extract: all gaps
    assert res.report["problem"].str.contains("kindergarten").any()
    assert np.isfinite(res.per_home["dist_bus_stop"]).all()
    assert {"outline_adjacent_edge", "point"} <= set(res.facilities["access_rule"])
    assert set(res_g.facilities["access_rule"]) >= {"point"}


def test_no_facility_at_all(net, homes):
    empty = gpd.GeoDataFrame({"type": []}, geometry=[], crs=CRS)
    with pytest.warns(Warning, match="no facility of type 'kindergarten'"):
        d = nearest_facility_distance(net, homes, empty, types=["kindergarten"])
    assert np.isinf(d["kindergarten"]).all() and len(d) == 5
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = service_coverage(net, homes, {"kindergarten": empty})
        sa = service_areas(net, {"kindergarten": empty})
    assert res.complete_share == 0.0
    assert sa.geometry.iloc[0].is_empty


def test_join_dangling_keeps_every_point():
    from geotijian.access_areas import _join_dangling

    # a street in three pieces with spurs at its nodes (one node with two), a loose piece
    pieces = np.array([shapely.LineString(c) for c in (
        [(0, 0), (10, 0)], [(10, 0), (20, 0), (30, 0)], [(30, 0), (40, 0)],
        [(10, 0), (10, 8)], [(10, 0), (13, -4)], [(20, 7), (20, 0)], [(30, 0), (30, -6)],
        [(50, 50), (60, 50)])], dtype=object)
    joined = _join_dangling(pieces)
    assert len(joined) < len(pieces)
    assert shapely.length(joined).sum() == pytest.approx(shapely.length(pieces).sum())
    u = shapely.union_all(pieces)
    assert shapely.equals(shapely.union_all(joined), u)
    assert shapely.covers(shapely.buffer(u, 1e-9), shapely.multilinestrings(joined))


def test_service_areas_joined_equal_the_union_of_piece_buffers(monkeypatch):
    """The sample district: joined pieces give the polygons of the union of one buffer per
    piece within the stated tolerance (symmetric difference <= 1e-5 of the area, every part
    thinner than the arc sagitta half_width * (1 - cos(pi / 16)) = 0.48 m)."""
    import pyogrio

    from geotijian import access_areas

    gpkg = "layers/sample/sample_district.gpkg"
    net = build_network(pyogrio.read_dataframe(gpkg, layer="roads"))
    fac = pyogrio.read_dataframe(gpkg, layer="facilities").to_crs(net.crs)
    new = service_areas(net, fac)
    monkeypatch.setattr(access_areas, "_JOIN_DANGLING", False)
    old = service_areas(net, fac)
    assert new["facility_type"].tolist() == old["facility_type"].tolist() and len(new) >= 10
    sag = 25.0 * (1 - np.cos(np.pi / 16))
    for a, b in zip(new.geometry, old.geometry):
        assert b.area > 0
        diff = shapely.symmetric_difference(a, b)
        assert diff.area <= 1e-5 * b.area
        parts = shapely.get_parts(diff)
        if len(parts):
            assert shapely.length(shapely.maximum_inscribed_circle(parts)).max() <= sag


def test_service_areas_leave_out_short_stubs_only():
    """A dead end of <= stub_m (a door's footway) hanging where the network goes on is
    left out of the drawing (its cap only: it stays inside the polygon); a cut piece as
    short and a star of stubs with nothing going on are kept."""
    lines = [[(0, 0), (50, 0)], [(50, 0), (100, 0)], [(50, 0), (50, 3)], [(50, 0), (50, -8)],
             [(100, 0), (100, 50)], [(300, 0), (303, 0)], [(300, 0), (300, 3)]]
    net = build_network(gpd.GeoDataFrame(geometry=[shapely.LineString(c) for c in lines], crs=CRS))
    fac = gpd.GeoDataFrame({"type": ["kindergarten"] * 2},
                           geometry=[shapely.Point(10, -1), shapely.Point(301.5, -1)], crs=CRS)
    full = service_areas(net, fac, 92, half_width=10, stub_m=0).geometry.iloc[0]
    drawn = service_areas(net, fac, 92, half_width=10, stub_m=5).geometry.iloc[0]
    door = shapely.Point(50, 12.5)                   # 9.5 m beyond the 3 m stub's end
    assert full.contains(door) and not drawn.contains(door)
    assert drawn.covers(shapely.LineString([(50, 0), (50, 3)]))  # the stub is still inside
    assert drawn.contains(shapely.Point(50, -17.5))  # an 8 m dead end is drawn
    assert drawn.contains(shapely.Point(100, 10.5))  # the 1 m cut up x = 100 is drawn
    assert drawn.contains(shapely.Point(300, 12.5))  # the star (nothing goes on) is drawn
    assert shapely.difference(drawn, full).area < 1e-6
    assert shapely.difference(full, shapely.buffer(drawn, 5.0)).area < 1e-6
    assert full.area - drawn.area > 10.0
    # the default (5 m) applies only under the half-width; an explicit one must be
    default_thin = service_areas(net, fac, 92, half_width=2).geometry.iloc[0]
    assert shapely.equals(default_thin, service_areas(net, fac, 92, half_width=2, stub_m=0).geometry.iloc[0])
    with pytest.raises(ValueError, match="stub_m = 10.0 m must be .* less than the buffer half-width"):
        service_areas(net, fac, 92, half_width=10, stub_m=10)


def test_service_areas_without_stubs_lie_within_stub_m_of_the_full_ones():
    """The sample district: the drawn polygons (stubs <= 5 m left out, the default) lie
    inside the full ones and every point of a full one is within 5 m (+ the arcs' sagitta)
    of the drawn one; some stubs are left out (the sample's doors are 4 m off the paths)."""
    import pyogrio

    gpkg = "layers/sample/sample_district.gpkg"
    net = build_network(pyogrio.read_dataframe(gpkg, layer="roads"))
    fac = pyogrio.read_dataframe(gpkg, layer="facilities").to_crs(net.crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        drawn = service_areas(net, fac)
        full = service_areas(net, fac, stub_m=0)
    sag = 25.0 * (1 - np.cos(np.pi / 16))
    assert len(drawn) >= 10
    lost = []
    for a, b in zip(drawn.geometry, full.geometry):
        assert a.is_valid and b.area > 0
        assert shapely.difference(a, b).area <= 1e-5 * b.area
        assert shapely.difference(b, shapely.buffer(a, 5.0 + sag)).area <= 1e-9 * b.area
        lost.append(1 - a.area / b.area)
    assert max(lost) > 1e-3 and max(lost) < 0.05


def test_service_areas_by_cluster_equal_one_cascade(monkeypatch):
    """The sample district: buffers united cluster by cluster of overlapping buffers give
    the polygons of one cascaded union (no area between them; vertices within 1e-5 m)."""
    import pyogrio

    from geotijian import access_areas

    gpkg = "layers/sample/sample_district.gpkg"
    net = build_network(pyogrio.read_dataframe(gpkg, layer="roads"))
    fac = pyogrio.read_dataframe(gpkg, layer="facilities").to_crs(net.crs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        monkeypatch.setattr(access_areas, "_DISJOINT_BELOW", 2.0)
        clustered = service_areas(net, fac)
        monkeypatch.setattr(access_areas, "_DISJOINT_BELOW", 0.0)
        cascade = service_areas(net, fac)
    assert len(clustered) >= 10
    for a, b in zip(clustered.geometry, cascade.geometry):
        assert a.is_valid and b.area > 0
        assert shapely.symmetric_difference(a, b).area <= 1e-9 * b.area
        assert shapely.hausdorff_distance(a, b) <= 1e-5


def test_service_areas_by_cell_equal_one_cascade(monkeypatch):
    """The sample district: a dense service area (bus stops) united cell by cell of a grid
    and glued by a coverage union covers the points of one cascaded union (no area
    between them), is valid, and was glued (no fall back to the ordinary union)."""
    import pyogrio

    from geotijian import access_areas

    gpkg = "layers/sample/sample_district.gpkg"
    net = build_network(pyogrio.read_dataframe(gpkg, layer="roads"))
    fac = pyogrio.read_dataframe(gpkg, layer="facilities").to_crs(net.crs)
    glued = []
    glue = access_areas._glue
    monkeypatch.setattr(access_areas, "_glue", lambda parts: glued.append(glue(parts)) or glued[-1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        by_cell = service_areas(net, fac)
        monkeypatch.setattr(access_areas, "_BY_CELL_FROM", 10**9)
        cascade = service_areas(net, fac)
    assert glued and all(g is not None for g in glued)
    assert len(by_cell) >= 10
    for a, b in zip(by_cell.geometry, cascade.geometry):
        assert a.is_valid and b.area > 0
        assert shapely.symmetric_difference(a, b).area <= 1e-9 * b.area
        assert shapely.get_num_geometries(a) == shapely.get_num_geometries(b)


def test_union_by_cell_glues_near_duplicates_across_many_seams(monkeypatch):
    """Streets, spurs and near-duplicate lines (1 µm apart, crossing the grid lines) in
    cells of 60 m: the glued union is valid and covers the points of the plain union; a
    vertex on a grid line keeps within 1e-4 m; with the glue refused the ordinary union of
    the pieces gives the same."""
    from geotijian import access_areas

    rng = np.random.default_rng(7)
    lines = []
    for k in range(12):                      # a jittered street grid, 40 m apart
        y = 40.0 * k + rng.normal(0, 0.3)
        lines.append(shapely.LineString([(0, y), (470, y + rng.normal(0, 2))]))
        lines.append(shapely.LineString([(y, 0), (y + rng.normal(0, 2), 470)]))
    for x, y in rng.uniform(5, 465, (200, 2)):  # spurs into the blocks
        lines.append(shapely.LineString([(x, y), (x + rng.uniform(-15, 15), y + rng.uniform(-15, 15))]))
    for line in lines[:24:3]:                   # near duplicates of some streets
        lines.append(shapely.affinity.translate(line, 1e-6, 1.3e-6))
    buffers = shapely.buffer(np.array(lines, dtype=object), 6.0, quad_segs=4)
    plain = shapely.union_all(buffers)
    parts = access_areas._cell_pieces(buffers, 60.0)
    assert len(parts) > 50
    glued = access_areas._glue(parts)
    assert glued is not None and glued.is_valid

    def same_points(a):   # slivers of the near duplicates' crossing points moved <= 1e-4 m
        diff = shapely.get_parts(shapely.symmetric_difference(a, plain))
        thick = 2 * shapely.length(shapely.maximum_inscribed_circle(diff)) if len(diff) else np.zeros(1)
        return diff.size == 0 or (thick.max() <= 2 * access_areas._SEAM_TOL_M
                                  and shapely.area(diff).sum() <= 1e-8 * plain.area)

    assert same_points(glued)
    assert shapely.get_num_geometries(glued) == shapely.get_num_geometries(plain)
    by_cell = access_areas._union_by_cell(buffers, 60.0)
    assert by_cell.equals_exact(glued, 0)
    monkeypatch.setattr(access_areas, "_glue", lambda parts: None)
    fallback = access_areas._union_by_cell(buffers, 60.0)
    assert fallback.is_valid and same_points(fallback)


def test_union_by_cell_on_real_osm_streets(osm_dir):
    """Real OSM streets (curved, many vertices; Huangpu, Haidian): every street's 25 m
    buffer united in cells of 50 m and 250 m (thousands of seams) is glued, valid and
    covers exactly the points of the plain union."""
    from geotijian import access_areas, load_osm

    for name, crs in (("shanghai_huangpu_roads.osm", "EPSG:32651"), ("beijing_haidian.osm", "EPSG:32650")):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net = build_network(load_osm(osm_dir / name, to_crs=crs).layers()["roads"], crs=crs)
        buffers = shapely.buffer(np.asarray(net.edge_geometry, dtype=object), 25.0, quad_segs=4)
        assert len(buffers) > 1000
        plain = shapely.union_all(buffers)
        for cell in (50.0, 250.0):
            parts = access_areas._cell_pieces(buffers, cell)
            glued = access_areas._glue(parts)
            assert glued is not None and glued.is_valid, (name, cell)
            assert shapely.symmetric_difference(glued, plain).area <= 1e-9 * plain.area


def test_seam_clean_matches_both_sides_of_a_grid_line():
    """Two squares sharing the line x = 10, each with the crossing points a last bit
    apart and one side split where the other is not: after the clean-up they form a
    coverage (the union is one square); vertices inside a run along the line are gone."""
    from geotijian.access_areas import _glue, _seam_clean

    y1 = 3.0
    left = shapely.Polygon([(0, 0), (10, 0), (10, 1.0), (10, 2.5), (10, np.nextafter(y1, 9)), (0, y1)])
    right = shapely.Polygon([(10, 0), (20, 0), (20, y1), (10, y1)])
    assert _glue(np.array([left, right], dtype=object)) is None   # as they are: not a coverage
    cleaned = _seam_clean(np.array([left, right], dtype=object), np.array([10.0]), np.array([-50.0]))
    assert shapely.get_num_coordinates(cleaned[0]) == 5      # (10, 1) and (10, 2.5) left out
    out = _glue(cleaned)
    assert out is not None and out.equals(shapely.box(0, 0, 20, y1))


def test_pending_unions_order_errors_and_cancel():
    """Items run in a background thread (the largest waiting first) and by the caller at
    result(); values come back in the order added; the first failing item's exception
    (in that order) is raised as it was; cancel() drops the items not started."""
    import threading
    import time

    from geotijian.access_areas import PendingUnions

    for background in (True, False):
        p = PendingUnions(background=background)
        for k in range(6):
            p.add(k, lambda k=k: (time.sleep(0.01), k * k, threading.current_thread().name)[1:])
        time.sleep(0.2)  # the worker has taken items meanwhile
        vals = p.result()
        assert [v[0] for v in vals] == [0, 1, 4, 9, 16, 25]
        names = {v[1] for v in vals}
        assert ("geotijian-unions" in names) == background
    boom1, boom2 = ValueError("first by order"), ValueError("second by order")

    def fail(exc):
        raise exc

    p = PendingUnions()
    p.add(1, lambda: fail(boom1))
    p.add(5, lambda: fail(boom2))  # the largest: runs first, fails first
    p.add(2, lambda: "fine")
    with pytest.raises(ValueError) as err:
        p.result()
    assert err.value is boom1
    gate = threading.Event()
    ran = []
    p = PendingUnions()
    p.add(9, lambda: gate.wait(5) and ran.append("first"))
    time.sleep(0.05)  # the worker holds the first item
    p.add(1, lambda: ran.append("dropped"))
    p.cancel()
    gate.set()
    p._thread.join(5)
    assert ran == ["first"] and not p._thread.is_alive()
    with pytest.raises(RuntimeError, match="after result"):
        p.add(1, lambda: None)

    def interrupt():
        raise KeyboardInterrupt

    gate.clear()
    ran = []
    p = PendingUnions()
    p.add(9, lambda: gate.wait(5) and ran.append("first"))   # the thread holds it
    time.sleep(0.05)
    p.add(5, interrupt)                       # the caller's, at result(): Ctrl-C
    p.add(1, lambda: ran.append("dropped"))   # never run
    t0 = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        p.result()
    assert time.monotonic() - t0 < 3 and ran == []   # at once, not after the thread's item
    gate.set()
    p._thread.join(5)
    assert ran == ["first"]
    p = PendingUnions(background=False)   # each item at once in add(): a Ctrl-C is raised there
    with pytest.raises(KeyboardInterrupt):
        p.add(1, interrupt)


def test_service_areas_in_the_background_equal_one_thread(net, facs, monkeypatch):
    """start_service_areas leaves the unions running; result() gives the bytes of
    service_areas, with and without settings.parallel."""
    from geotijian import settings
    from geotijian.access import start_service_areas

    pending = start_service_areas(net, facs)
    got = pending.result()
    monkeypatch.setattr(settings, "parallel", False)
    one = service_areas(net, facs)
    assert got["facility_type"].tolist() == one["facility_type"].tolist() == ["kindergarten", "primary_school"]
    assert got.geometry.to_wkb().tolist() == one.geometry.to_wkb().tolist()
    # the thread (where the platform does not fork) gives the same bytes
    monkeypatch.setattr(settings, "parallel", True)
    import geotijian.access as access_mod

    monkeypatch.setattr(access_mod, "fork_unions", lambda n: False)
    thread = start_service_areas(net, facs)
    assert type(thread.unions).__name__ == "PendingUnions"
    assert thread.result().geometry.to_wkb().tolist() == one.geometry.to_wkb().tolist()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ForkedUnions forks (Linux only)")
def test_forked_unions_run_in_a_process_and_the_caller(monkeypatch):
    """ForkedUnions: a forked process takes the items largest first, the caller the rest at
    result(); values in the order added, whichever process made them; warnings issued
    again here; the first item's exception (in the order added) raised; items of a killed
    process drawn here (with a warning); cancel() stops the process and leaves no folder;
    a Ctrl-C in the caller's item is raised at once, the process stopped."""
    import signal
    import time
    import warnings

    import shapely

    from geotijian import settings
    from geotijian.access_areas import ForkedUnions, PendingUnions, fork_unions

    def item(k, pause=0.3):
        time.sleep(pause)
        return shapely.Point(os.getpid(), k)   # who ran it, which item

    me = os.getpid()
    p = ForkedUnions()
    for k in range(6):
        p.add(k, lambda k=k: item(k))
    p.start()
    folder = p._dir
    vals = p.result()   # at once: the caller takes the items the process has not
    assert [int(v.y) for v in vals] == list(range(6))
    ran_here = {int(v.y) for v in vals if int(v.x) == me}
    assert 0 < len(ran_here) < 6   # both processes worked
    assert not os.path.exists(folder)

    def warn_and_fail(exc):
        warnings.warn("told in the process", UserWarning)
        raise exc

    p = ForkedUnions()
    p.add(1, lambda: warn_and_fail(ValueError("first by order")))
    p.add(5, lambda: warn_and_fail(ValueError("second by order")))
    p.add(2, lambda: shapely.Polygon())
    p.start()
    end = time.monotonic() + 30
    while not p.done() and time.monotonic() < end:   # the process runs them all
        time.sleep(0.02)
    assert p.done()
    with pytest.warns(UserWarning, match="told in the process"):
        with pytest.raises(ValueError, match="first by order"):
            p.result()

    p = ForkedUnions()
    for k in range(3):
        p.add(k, lambda k=k: item(k, pause=0.3))
    p.start()
    end = time.monotonic() + 30
    while not any(f.endswith(".claim") for f in os.listdir(p._dir)) and time.monotonic() < end:
        time.sleep(0.01)
    os.kill(p._pid, signal.SIGKILL)   # the process dies with an item taken
    with pytest.warns(RuntimeWarning, match="killed by signal 9"):
        vals = p.result()
    assert [int(v.y) for v in vals] == [0, 1, 2]

    p = ForkedUnions()
    p.add(1, lambda: item(0, pause=5))
    p.start()
    pid, folder = p._pid, p._dir
    p.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)   # stopped and collected
    assert not os.path.exists(folder)

    def interrupt():
        raise KeyboardInterrupt

    p = ForkedUnions()
    p.add(9, lambda: item(0, pause=5))   # the process takes it
    p.add(1, interrupt)                  # the caller's, at result(): Ctrl-C
    p.start()
    end = time.monotonic() + 30
    while not os.path.exists(p._path(0, "claim")) and time.monotonic() < end:
        time.sleep(0.01)
    pid, folder, t0 = p._pid, p._dir, time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        p.result()
    assert time.monotonic() - t0 < 3   # at once, not after the process's 5 s item
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)   # stopped and collected
    assert not os.path.exists(folder)

    assert fork_unions(14)
    with settings.temporary(parallel=False):
        assert not fork_unions(14)
    assert PendingUnions is not ForkedUnions
