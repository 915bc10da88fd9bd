"""Report attachments: offline problem map (HTML), static figures, styled GeoPackage."""

from __future__ import annotations

import html
import json
import re
import sqlite3
import warnings
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyproj import Transformer
from shapely.geometry import Point, box

from geotijian.assess import build_tables, problem_status, update_ledger
from geotijian.errors import ConfigError, CoordinateWarning, LayerError
from geotijian.indicators import indicator_catalogue
from geotijian.model import GAP_COLUMNS, LEDGER_COLUMNS, PROBLEM_COLUMNS, UNIT_COLUMNS, StudyData
from geotijian.report import gpkg as gpkg_mod
from geotijian.report import maps
from geotijian.report import figures, problem_figures

XSS = "<img src=x onerror=alert(1)>"
XSS_SUGGESTION = "加装电梯 <script>alert(2)</script>"
CRS = "EPSG:32651"


def make_study() -> StudyData:
    """A small synthetic study in EPSG:32651 around 121.25E 31.38N, all model columns."""
    x0, y0 = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(121.25, 31.38)
    x0, y0 = round(x0, -1), round(y0, -1)
    S = 2000.0
    boundary = gpd.GeoDataFrame({"boundary_id": ["B1"], "name": ["测试街道"]},
                                geometry=[box(x0, y0, x0 + S, y0 + S)], crs=CRS)
    towns = gpd.GeoDataFrame(
        {"town_code": ["T1", "T2"], "name": ["安亭镇", "<b>马陆镇</b>"],
         "population": [12000.0, 9000.0]},
        geometry=[box(x0, y0, x0 + S / 2, y0 + S), box(x0 + S / 2, y0, x0 + S, y0 + S)], crs=CRS)
    quads = [box(x0 + i * S / 2, y0 + j * S / 2, x0 + (i + 1) * S / 2, y0 + (j + 1) * S / 2)
             for i in range(2) for j in range(2)]
    committees = gpd.GeoDataFrame(
        {"committee_id": [f"C{i}" for i in range(4)], "name": ["一村", "二村", "三村", "四村"],
         "town_code": ["T1", "T1", "T2", "T2"], "population": [5000.0, 6000.0, 4000.0, 5000.0],
         "households": [2000.0, 2500.0, 1600.0, 2100.0]}, geometry=quads, crs=CRS)
    units = gpd.GeoDataFrame(
        {"unit_id": [f"U{i}" for i in range(4)], "town_code": ["T1", "T1", "T2", "T2"],
         "town_name": ["安亭镇", "安亭镇", "马陆镇", "马陆镇"],
         "committees": ["C0", "C1", "C2", "C3"], "population": [5000.0, 6000.0, 4000.0, 9000.0],
         "households": [2000.0, 2500.0, 1600.0, 3600.0], "area_ha": [100.0] * 4,
         "compound_count": [2, 2, 2, 2], "compactness": [0.78, 0.78, 0.78, 0.78],
         "flag": [False, False, True, False], "flag_reason": [None, None, "人口低于 5000", None]},
        geometry=quads, crs=CRS)
    blocks = gpd.GeoDataFrame(
        {"block_id": [f"BK{i}" for i in range(8)], "town_code": ["T1"] * 4 + ["T2"] * 4,
         "population": [2500.0, 2500.0, 3000.0, 3000.0, 2000.0, 2000.0, 4500.0, 4500.0],
         "area_ha": [50.0] * 8},
        geometry=[box(q.bounds[0], q.bounds[1] + h * S / 4, q.bounds[2], q.bounds[1] + (h + 1) * S / 4)
                  for q in quads for h in range(2)], crs=CRS)
    comp_geoms = [g.centroid.buffer(150, quad_segs=4) for g in blocks.geometry]
    compounds = gpd.GeoDataFrame(
        {"compound_id": [f"X{i}" for i in range(8)], "name": [f"花园{i}期" for i in range(8)],
         "population": blocks["population"].to_numpy(), "households": [800.0] * 8,
         "build_year": [1995.0, 2001, 2008, 2010, 1988, 1999, 2015, 2020],
         "committee_id": ["C0", "C0", "C1", "C1", "C2", "C2", "C3", "C3"]},
        geometry=comp_geoms, crs=CRS)
    rng = np.random.default_rng(7)
    n_kg = 60
    kg = rng.uniform([x0 + 50, y0 + 50], [x0 + S - 50, y0 + S - 50], size=(n_kg, 2))
    fac_geoms = [Point(p) for p in kg] + [Point(x0 + 400, y0 + 400), Point(x0 + 1500, y0 + 600),
                                          Point(x0 + 900, y0 + 1700)]
    fac_geoms.append(box(x0 + 1200, y0 + 1200, x0 + 1400, y0 + 1350))  # a park as an area
    facilities = gpd.GeoDataFrame(
        {"facility_id": [f"F{i:03d}" for i in range(n_kg + 4)],
         "type": ["kindergarten"] * n_kg + ["primary_school"] * 3 + ["park_5min"],
         "name": [f"幼儿园{i}" for i in range(n_kg)] + [XSS, "第二小学", "第三小学", "口袋公园"],
         "capacity": [float(v) for v in rng.integers(90, 400, n_kg)] + [900.0, 1200.0, np.nan, np.nan]},
        geometry=fac_geoms, crs=CRS)
    gp = rng.uniform([x0, y0], [x0 + S, y0 + S], size=(12, 2))
    gaps = gpd.GeoDataFrame(
        {"home_id": [f"X{i % 8}" for i in range(12)], "home_kind": ["compound"] * 12,
         "unit_id": [f"U{i % 4}" for i in range(12)],
         "facility_type": ["kindergarten"] * 6 + ["primary_school"] * 6,
         "facility_name_zh": ["幼儿园"] * 6 + ["小学"] * 6,
         "walk_distance_m": [300.0] * 6 + [500.0] * 6,
         "distance_m": [320.0, 380.0, 460.0, 700.0, np.nan, 350.0,
                        520.0, 640.0, 800.0, 1200.0, 510.0, 990.0],
         "population": [800.0] * 12},
        geometry=[Point(p) for p in gp], crs=CRS)
    svc = gpd.GeoDataFrame(
        {"facility_type": ["kindergarten", "primary_school"],
         "facility_name_zh": ["幼儿园", "小学"], "walk_distance_m": [300.0, 500.0]},
        geometry=[shapely.union_all([Point(p).buffer(300) for p in kg[:10]]),
                  shapely.union_all([g.buffer(500) for g in fac_geoms[n_kg:n_kg + 3]])], crs=CRS)
    # problems the way a study makes them: unit, town and district values judged, the points
    # grouped into one problem per indicator and level (a suggestion template carries a script)
    values = pd.DataFrame([("unit", "U0", "cov_kindergarten", 60.0), ("unit", "U1", "cov_kindergarten", 95.0),
                           ("unit", "U2", "cov_kindergarten", 70.0), ("unit", "U3", "cov_kindergarten", 40.0),
                           ("unit", "U1", "c_parking_gap", 150.0), ("unit", "U3", "h_gas_risk", 2.0),
                           ("unit", "U2", "u_road_network_density", 5.0),
                           ("town", "T1", "u_road_network_density", 5.0),
                           ("town", "T2", "u_road_network_density", 6.0),
                           ("district", "district", "u_park_green_pc", 4.2)],
                          columns=["level", "area_id", "code", "value"])
    named = units.assign(name=["一村", "二村", "三村", "四村"])
    tables = build_tables(values, indicator_catalogue({"coverage_reference": 90}), areas=named,
                          templates={"c_parking_gap": XSS_SUGGESTION}, district_name="测试区")
    points = tables["problem_points"]
    ledger = update_ledger(None, points, year=2024).drop(columns="geometry")
    problems = problem_status(tables["problems"], ledger, year=2024)
    cells = [box(x0 + i * 250, y0 + j * 250, x0 + (i + 1) * 250, y0 + (j + 1) * 250)
             for i in range(8) for j in range(8)]
    z = np.linspace(-2.0, 4.0, len(cells))
    hotspots = gpd.GeoDataFrame(
        {"cell_id": [f"H{i:02d}" for i in range(len(cells))], "category": ["噪声扰民"] * len(cells),
         "count": rng.integers(0, 30, len(cells)).astype(float), "z_score": z,
         "p_value": np.where(np.abs(z) > 2.58, 0.005, np.where(np.abs(z) > 1.96, 0.03, 0.4)),
         "significant": np.abs(z) > 1.96}, geometry=cells, crs=CRS)
    indicator_table = pd.concat([tables["indicator_table"], pd.DataFrame(
        {"level": ["unit"] * 4, "area_id": [f"U{i}" for i in range(4)],
         "area_name": ["一村", "二村", "三村", "四村"],
         "code": ["c_kindergarten_gap"] * 4, "name_zh": ["未达标配建的幼儿园数量"] * 4,
         "dimension": ["宜居"] * 4, "unit": ["个"] * 4, "value": [2.0, 0.0, 1.0, 4.0],
         "reference": ["≥0"] * 4, "reference_op": [">="] * 4, "reference_value": [0.0] * 4,
         "judgement": ["falls_short", "meets", "falls_short", "falls_short"],
         "gap": [2.0, 0.0, 1.0, 4.0]})], ignore_index=True)
    assert list(units.columns[:-1]) == UNIT_COLUMNS
    assert list(gaps.columns[:-1]) == GAP_COLUMNS
    assert list(problems.columns[:len(PROBLEM_COLUMNS)]) == PROBLEM_COLUMNS
    assert list(ledger.columns) == LEDGER_COLUMNS
    return StudyData(name="test", title="测试区", year=2024, boundary=boundary, towns=towns,
                     committees=committees, units=named, blocks=blocks, compounds=compounds,
                     facilities=facilities, coverage_gaps=gaps, service_areas=svc,
                     problems=problems, problem_points=points, hotspots=hotspots, ledger=ledger,
                     indicator_table=indicator_table,
                     meta={"osm_sources": ["jiading.osm.pbf"]})


@pytest.fixture(scope="module")
def study() -> StudyData:
    return make_study()


@pytest.fixture(scope="module")
def map_html(study, tmp_path_factory) -> tuple[Path, str]:
    path = maps.save_problem_map(maps.problem_map(study), tmp_path_factory.mktemp("map") / "m.html")
    return path, path.read_text(encoding="utf-8")


# ------------------------------------------------------------------ interactive map

def test_map_is_self_contained(map_html):
    from bs4 import BeautifulSoup

    path, text = map_html
    soup = BeautifulSoup(text, "html.parser")
    scripts = soup.find_all("script")
    assert scripts, "no script at all"
    remote = [s.get("src") for s in scripts if s.get("src")]
    assert remote == [], f"scripts loaded from files/URLs: {remote}"
    links = [link.get("href") for link in soup.find_all("link")]
    assert not [h for h in links if h and re.match(r"\s*(https?:)?//", h)], links
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//[^"']*\.(?:js|css)""", text, re.I)
    assert "cdn.jsdelivr" not in text and "cdnjs" not in text and "code.jquery" not in text
    # Leaflet is inlined, and the canvas point layer (facilities, gap homes) with it
    assert "Leaflet 1.9.4" in text and "var GtjDots = L.Layer.extend" in text
    assert "MarkerCluster" not in text
    assert "sourceMappingURL" not in text
    size = path.stat().st_size
    print(f"problem map HTML size: {size / 1024:.0f} KiB")
    assert size < 1_000_000


def layer_control_names(text: str) -> dict[str, str]:
    """Layer-control entries of a saved map: name -> JS variable (names JSON-decoded)."""
    block = re.search(r"_layers = \{(.*?)\n\s*\};", text, re.S)
    assert block, "no layer control in the map"
    return {json.loads(k): v for k, v in
            re.findall(r'^\s*("(?:[^"\\]|\\.)*")\s*:\s*(\w+),', block.group(1), re.M)}


def layer_groups(text: str) -> dict[str, list[str]]:
    """The control's groups: heading -> the JS variables of its layers, in order."""
    call = re.search(r"gtjGroupControl\(\w+, (\[.*?\]\]\]), ", text)
    assert call, "no grouped layer control"
    return {g: [v.strip() for v in vs.split(",") if v.strip()]
            for g, vs in re.findall(r'\["([^"]+)", \[([^\]]*)\]\]', call.group(1))}


def test_map_has_every_layer(map_html):
    _, text = map_html
    names = layer_control_names(text)
    for name in ["研究范围", "街镇", "社区体检单元: 人口密度", "幼儿园 (步行300米)", "小学 (步行500米)", "幼儿园 (6)",
                 "小学 (6)", "热线热点 (显著)", "限时解决: 1 个单元 1 个点位", "尽力解决: 4 个单元 4 个点位",
                 "长期谋划: 1 个单元 1 个点位", "5分钟生活圈 (61)", "10分钟生活圈 (3)",
                 "OpenStreetMap 底图", "空白底图 (离线)"]:
        assert any(n.startswith(name) for n in names), (name, list(names))
    assert len(names) == 15
    for var in names.values():  # every layer is defined in the page
        assert f"var {var} = " in text
    # filed in groups, in the control's order; 限时解决 first among the problems
    groups = layer_groups(text)
    assert list(groups) == ["评估单元", "设施", "设施服务范围", "覆盖缺口", "问题", "热线"]
    by_var = {v: k for k, v in names.items()}
    # service areas: one layer per type, in the catalogue's order, each off at load (below)
    assert [by_var[v] for v in groups["设施服务范围"]] == ["小学 (步行500米)", "幼儿园 (步行300米)"]
    assert [by_var[v].split(":")[0] for v in groups["问题"]] == ["限时解决", "尽力解决", "长期谋划"]
    assert [by_var[v] for v in groups["评估单元"]] == ["研究范围", "街镇", "社区体检单元: 人口密度"]
    assert sum(len(v) for v in groups.values()) == len(names) - 2   # all but the two basemaps
    # few layers on at load: areas and problems; facilities, gaps, service areas, hot spots off
    off = [n for n, v in names.items() if f"{v}.addTo(" not in text and "底图" not in n]
    assert set(off) == {"小学 (步行500米)", "幼儿园 (步行300米)", "幼儿园 (6)", "小学 (6)", "热线热点 (显著) (22)",
                        "5分钟生活圈 (61)", "10分钟生活圈 (3)"}, off
    # facilities (one canvas layer per life-circle level) and gap homes (one per type) are
    # canvas points (GtjDots), no marker clusters (the function definition is the third gtjGapDots)
    assert "L.control.layers" in text and text.count("gtjFacDots({") == 2 and text.count("gtjGapDots(") == 3
    assert "测试区 2024 年城市体检问题地图" in text  # title: the study's display name
    attr = re.search(r"addAttribution\((\"[^\"]*\")\)", text)
    assert attr and json.loads(attr.group(1)) == "© OpenStreetMap contributors, ODbL"
    assert "人口密度 (人/公顷)" in text  # legend with unit


def _features(text: str) -> list[dict]:
    return [f for fc in (json.loads(js) for js in re.findall(r"L\.geoJSON\((.*), \{$", text, re.M))
            for f in fc["features"]]


def test_map_problems_lie_where_they_are(study, map_html):
    """Unit-level problems on their units only: no district- or town-sized polygon among the
    problem features; the district and town problems are in the side table."""
    from bs4 import BeautifulSoup

    _, text = map_html
    unit_area = study.units.to_crs(4326).geometry.area.max()
    probs = [f for f in _features(text) if "项" in str(f["properties"].get("t", ""))]
    assert len(probs) == 6       # 尽力解决 on U0-U3, 限时解决 on U3 (gas), 长期谋划 on U2 (roads)
    for f in probs:
        area = shapely.geometry.shape(f["geometry"]).area
        assert area <= unit_area * 1.01, f["properties"]["t"]
    tips = sorted(html.unescape(f["properties"]["t"]) for f in probs)
    assert "四村: 1 项限时解决问题" in tips and "四村: 1 项尽力解决问题" in tips and "三村: 1 项长期谋划问题" in tips
    # the popup lists the unit's problems with their 序号, values with units of measure, suggestion
    u0 = next(f for f in probs if "一村: 1 项" in html.unescape(f["properties"]["t"]))
    assert html.unescape(u0["properties"]["s"]).startswith("2. 幼儿园步行300米覆盖率: 60% (参考 ≥90%, 影响约2,000人)")
    assert "在一村新增幼儿园" in html.unescape(u0["properties"]["s"])
    u1 = next(f for f in probs if "二村: 1 项" in html.unescape(f["properties"]["t"]))
    assert "幼儿园" not in html.unescape(u1["properties"]["s"])      # U1 meets 90 %: not a problem
    soup = BeautifulSoup(text, "html.parser")
    side = soup.find("details", class_="gtj-side")
    rows = side.find_all("tr")[1:]
    assert [r.find_all("td")[2].get_text() for r in rows] == ["人均公园绿地面积", "城市道路网密度"]
    assert "2个街镇" in rows[1].get_text() and "4.2 平方米/人" in rows[0].get_text()


def test_map_zh_has_no_english_status_words(map_html):
    """Every popup value in Chinese: levels, ledger statuses, judgements, classes."""
    _, text = map_html
    values = [str(x) for f in _features(text) for k, v in f["properties"].items() if k in ("v", "h", "t", "s")
              for x in (v if isinstance(v, list) else [v])]
    words = re.compile(r"\b(new|persisting|resolved|falls_short|meets|no_reference|unit|town|district|"
                       r"kindergarten|primary_school|True|False|nan|None)\b")
    bad = [v for v in values if words.search(html.unescape(v))]
    assert values and bad == [], bad[:5]
    # names, not codes: units by their committees' names, committees by name
    assert any("一村 (U0)" in v for v in values)
    assert any("一村" == html.unescape(v) for f in _features(text) for v in f["properties"].get("v", []))


def test_map_escapes_data_text(map_html):
    _, text = map_html
    assert XSS not in text
    assert "<img src=x" not in text
    assert "&lt;img src=x onerror=alert(1)&gt;" in text
    assert "<script>alert(2)" not in text and "&lt;script&gt;alert(2)" in text
    assert "<b>马陆镇</b>" not in text and "&lt;b&gt;马陆镇&lt;/b&gt;" in text.replace("<\\/", "</")
    # Chinese field names are in the popups
    assert "常住人口(人)" in text and "问题清单" in text


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(alphabet=st.sampled_from(list("<>\"'&/=() scriptimgonerroalt1马陆镇\u2028")),
                    min_size=1, max_size=40))
def test_map_escapes_any_name(name):
    """Whatever a facility or town is called, it never becomes markup or closes the script."""
    from bs4 import BeautifulSoup

    pts = gpd.GeoDataFrame({"facility_id": ["F1", "F2"], "type": ["kindergarten", name],
                            "name": [name, "ok"]},
                           geometry=[Point(340000, 3473000), Point(340100, 3473100)], crs=CRS)
    town = gpd.GeoDataFrame({"town_code": ["T1"], "name": [name]},
                            geometry=[box(339900, 3472900, 340200, 3473200)], crs=CRS)
    text = maps.render_problem_map(maps.problem_map(StudyData(facilities=pts, towns=town),
                                                    basemap="blank"))
    n_scripts = len(re.findall(r"<script\b", text, re.I))
    assert n_scripts == len(re.findall(r"</script>", text, re.I)) == 5
    # every text drawn from data: tooltips, popup values and headers, layer names
    data = [json.loads(js) for js in re.findall(r"L\.geoJSON\((.*), \{$", text, re.M)]
    strings = [v for fc in data for f in fc["features"] for k, v in f["properties"].items()
               if k in ("t", "h", "s")]
    strings += [x for fc in data for f in fc["features"] for x in f["properties"].get("v", [])]
    dots = [json.loads(js) for js in re.findall(r"gtjFacDots\((.*)\)\);$", text, re.M)]
    assert dots
    strings += [x for d in dots for x in d["h"]] + [x for d in dots for v in d["v"] for x in v]
    strings += list(layer_control_names(text))
    assert strings and all("<" not in x and ">" not in x and '"' not in x for x in strings)
    assert html.escape(name, quote=True) in strings
    # the legend holds only our markup
    soup = BeautifulSoup(text, "html.parser")
    legend = soup.find("details", class_="gtj-legend")
    assert {t.name for t in legend.find_all(True)} <= {"summary", "h4", "div", "i"}


def test_map_coordinates_rounded_and_deterministic(study, map_html):
    _, text = map_html
    coords = re.findall(r'"coordinates":(\[[^"]*?\]\]?\]?\]?)', text)
    assert coords
    decimals = [len(n.split(".")[1]) for c in coords for n in re.findall(r"-?\d+\.\d+", c)]
    assert max(decimals) <= 5
    again = maps.render_problem_map(maps.problem_map(study))
    assert again == text


def test_map_english_and_indicator(study):
    text = maps.render_problem_map(maps.problem_map(study, lang="en", indicator="c_kindergarten_gap"))
    assert "urban check-up problem map" in text and "solve within a deadline: 1 units, 1 points" in text
    assert "reference value: 0" in text
    zh = maps.render_problem_map(maps.problem_map(study, indicator="c_kindergarten_gap"))
    assert "未达标配建的幼儿园数量 (个)" in zh and "参考值: 0 个" in zh
    with pytest.raises(ConfigError, match="indicator"):
        maps.problem_map(study, indicator="no_such_indicator")
    with pytest.raises(ValueError):
        maps.problem_map(study, lang="fr")


def test_map_basemaps(study):
    with pytest.raises(ConfigError, match="tianditu_key"):
        maps.problem_map(study, basemap="tianditu")
    text = maps.render_problem_map(maps.problem_map(study, basemap="tianditu", tianditu_key="k&1"))
    assert "tk=k%261" in text.replace("\\u0026", "&") and "天地图矢量底图" in json.dumps(
        layer_control_names(text), ensure_ascii=False)
    with pytest.raises(ConfigError, match="basemap"):
        maps.problem_map(study, basemap=("amap", "osm"))
    with pytest.raises(ConfigError, match="basemap"):
        maps.problem_map(study, basemap="google")
    with pytest.warns(CoordinateWarning, match="GCJ-02"):
        maps.problem_map(study, basemap="amap", amap_shift=False)
    blank = maps.render_problem_map(maps.problem_map(study, basemap="blank"))
    assert "tile.openstreetmap.org" not in blank


def test_amap_shift_moves_overlays_about_500m(study):
    plain = maps._to_web(study.boundary, simplify_m=0, decimals=6, gcj=False, layer="boundary")
    shifted = maps._to_web(study.boundary, simplify_m=0, decimals=6, gcj=True, layer="boundary")
    a = plain.to_crs(CRS).geometry.iloc[0].centroid
    b = shifted.set_crs("EPSG:4326", allow_override=True).to_crs(CRS).geometry.iloc[0].centroid
    assert 400 < a.distance(b) < 650  # Jiading: GCJ-02 sits ~480 m ESE of WGS84
    assert b.x > a.x
    text = maps.render_problem_map(maps.problem_map(study, basemap="amap"))
    assert "autonavi" in text and "tile.openstreetmap.org" not in text


def test_map_without_osm_has_no_osm_attribution(study):
    s2 = make_study()
    s2.meta = {}
    text = maps.render_problem_map(maps.problem_map(s2, basemap="blank"))
    assert "ODbL" not in text


def test_map_rejects_empty_study():
    with pytest.raises(LayerError, match="nothing|no layer"):
        maps.problem_map(StudyData())


def test_map_data_is_never_a_template():
    """folium renders a layer's output again as a Jinja template: a facility, town or study
    named with ``{{ }}`` must show as written, never be evaluated (it came out as 49)."""
    name = "{{ 7*7 }}号园 {% if 1 %}x{% endif %}{# c #}"
    pts = gpd.GeoDataFrame({"facility_id": ["F1"], "type": [name], "name": [name]},
                           geometry=[Point(340000, 3473000)], crs=CRS)
    town = gpd.GeoDataFrame({"town_code": ["T1"], "name": [name]},
                            geometry=[box(339900, 3472900, 340200, 3473200)], crs=CRS)
    text = maps.render_problem_map(maps.problem_map(StudyData(name=name, facilities=pts, towns=town),
                                                    basemap="blank"))
    body = text.split("</script>", 2)[-1]  # after the inlined Leaflet (its code holds a 49)
    assert "49" not in body and "号园 x" not in body
    assert "{{ 7*7 }}号园" in body  # the title and the data, as written
    # the type's name in the legend and the facility's popup as written; the layer control
    # (facilities per life-circle level) is written as text too, no Jinja pass over it
    from bs4 import BeautifulSoup

    legend = BeautifulSoup(text, "html.parser").find("details", class_="gtj-legend").get_text()
    assert f"{name} (1)" in legend
    dots = [json.loads(js) for js in re.findall(r"gtjFacDots\((.*)\)\);$", text, re.M)]
    assert dots[0]["h"] == [html.escape(name, quote=True)] and dots[0]["v"][0][0] == html.escape(name, quote=True)
    assert "其他设施 (1)" in layer_control_names(text)


def test_map_problems_one_feature_per_area_and_class(study, map_html):
    """One feature per unit and class (a unit's outline once per class, not once per
    problem), listing every unit-level problem point of that class: issue 15's grouping of
    the popups, over issue 20's problem points."""
    _, text = map_html
    feats = [f for f in _features(text) if "项" in str(f["properties"].get("t", ""))]
    pts = study.problem_points.loc[study.problem_points["level"] == "unit"]
    assert len(feats) == len(pts.groupby(["problem_class", "area_id"]))
    items = [x for f in feats for x in f["properties"]["s"].split("<br>") if not x.startswith("<span")]
    assert len(items) == len(pts)
    names = sorted(html.unescape(x).split(": ")[0].split(". ", 1)[-1] for x in items)
    assert names == sorted(pts["name_zh"])
    sug = "".join(f["properties"]["s"] for f in feats)
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in sug and "<script>alert(2)" not in sug


def test_quantile_classes_equal_mapclassify():
    mapclassify = pytest.importorskip("mapclassify")
    rng = np.random.default_rng(3)
    for y in (rng.lognormal(3, 1, 263), np.r_[np.zeros(50), rng.uniform(0, 9, 20)], np.arange(7.0)):
        cls, bins = maps._classify(pd.Series(y), scheme="quantiles", k=5)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ref = mapclassify.Quantiles(y, k=min(5, len(np.unique(y))))
        assert bins == pytest.approx(list(ref.bins)) and cls.tolist() == ref.yb.tolist()
    # given bins (a town map takes its district's): same classes for the same values
    cls2, bins2 = maps._classify(pd.Series(y[:3]), scheme="quantiles", k=5, bins=bins)
    assert bins2 == bins and cls2.tolist() == cls[:3].tolist()


def test_compound_missing_types_in_catalogue_order(study):
    """Each compound's count and list of missing facility types (escaped names, catalogue
    order, joined by 、), against a plain per-home reference; a compound without a gap row
    has 0 and —."""
    import types as _types

    from geotijian.report import _common as c

    gaps = study.coverage_gaps
    extra = gaps.iloc[[0]].assign(home_id="ZZ", facility_type="<x>")  # an unknown type, escaped
    both = pd.concat([gaps, extra, gaps.iloc[[1]].assign(home_id="ZZ")], ignore_index=True)
    ctx = _types.SimpleNamespace(layers={"coverage_gaps": both}, lang="zh")
    ids = pd.Series(["X1", "X0", "ZZ", "none", "X1"], index=[5, 6, 7, 8, 9])
    n, lst = maps._missing_types(ctx, ids)
    order = c.ordered_types(both["facility_type"])
    for i, h in ids.items():
        mine = [t for t in order for _ in range(int(((both["home_id"] == h) & (both["facility_type"] == t)).sum()))]
        assert n[i] == len(mine)
        assert lst[i] == ("、".join(html.escape(c.facility_type_name(t, "zh")) for t in mine) if mine else "—")
    assert lst[7].endswith("&lt;x&gt;") and n[8] == 0 and lst.index.tolist() == ids.index.tolist()


def test_display_values_and_escaping():
    """Popup and legend strings: numbers to two decimals without trailing zeros (-0 as 0),
    missing as —, text as it is, lists joined; then HTML-escaped (quotes too), also when a
    value holds a NUL (the values are escaped as one text joined by NUL)."""
    from geotijian.report import _common as c

    num = pd.Series([1.0, 2.5, -0.001, np.nan, 100.0, 1234.5678, 0.0, 10.10], index=list("abcdefgh"))
    assert c.format_values(num).tolist() == ["1", "2.5", "0", "—", "100", "1234.57", "0", "10.1"]
    assert c.format_values(num).index.tolist() == list("abcdefgh")
    assert c.format_values(pd.Series([3, None], dtype="Int64")).tolist() == ["3", "—"]
    assert c.format_values(pd.Series([True, False])).tolist() == ["✓", "✗"]
    text = pd.Series(["a<b", None, "x & 'y'", '"q"'], dtype="str")
    assert c.format_values(text).tolist() == ["a<b", "—", "x & 'y'", '"q"']
    assert c.escaped_values(text).tolist() == ["a&lt;b", "—", "x &amp; &#x27;y&#x27;", "&quot;q&quot;"]
    mixed = pd.Series([[1, 2], "x", None, 3.5, True])
    assert c.format_values(mixed).tolist() == ["1, 2", "x", "—", "3.5", "True"]
    assert c.escaped_values(pd.Series(["a\x00<", ">"])).tolist() == ["a\x00&lt;", "&gt;"]
    assert c.escaped_values(pd.Series([], dtype=object)).tolist() == []
    assert c.escape_all(["<", "&", ""]).tolist() == ["&lt;", "&amp;", ""]


def test_style_quantile_breaks_are_mapclassify_bits():
    """The QGIS style's class bounds (written to six decimals) are mapclassify's to the last
    bit, without importing it (its import compiles numba kernels: seconds)."""
    mapclassify = pytest.importorskip("mapclassify")
    from geotijian.report.styles import quantile_breaks

    rng = np.random.default_rng(7)
    for i in range(600):
        n, k = int(rng.integers(2, 400)), int(rng.integers(2, 8))
        y = (rng.lognormal(3, 1.5, n), rng.integers(0, 12, n).astype(float), rng.normal(0, 1e6, n))[i % 3]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            ref = mapclassify.classifiers.quantile(y, k=k)
        got = quantile_breaks(y, k)
        assert got.dtype == ref.dtype and np.array_equal(got, ref), (n, k)


def _unit_code(header: str) -> str | None:
    """The unit ID of a unit's popup header (``一村 (U0)``), else None."""
    m = re.fullmatch(r".* \((U\d+)\)", header)
    return m.group(1) if m else None


def test_town_maps_linked_both_ways(study, tmp_path):
    from bs4 import BeautifulSoup

    from geotijian.report import town_maps

    nav = town_maps.district_nav(study)
    district = maps.save_problem_map(maps.problem_map(study, nav=nav), tmp_path / "problem_map.html")
    paths = town_maps.save_town_maps(study, tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in paths] == ["towns/T1.html", "towns/T2.html"]
    soup = BeautifulSoup(district.read_text(encoding="utf-8"), "html.parser")
    hrefs = [a["href"] for a in soup.select(".gtj-nav a")]
    assert hrefs == ["towns/T1.html", "towns/T2.html"]
    for href in hrefs:  # every link of the district map opens a written file
        assert (tmp_path / href).is_file()
    text = district.read_text(encoding="utf-8")
    assert "gtj-town" in text and '"towns/T1.html"' in text  # town names on the map are links
    assert "&lt;b&gt;马陆镇&lt;/b&gt;" in text and "<b>马陆镇</b>" not in text.split("</script>", 2)[-1]
    for p, code, other in ((paths[0], "T1", "T2.html"), (paths[1], "T2", "T1.html")):
        t = p.read_text(encoding="utf-8")
        tsoup = BeautifulSoup(t, "html.parser")
        links = [a["href"] for a in tsoup.select(".gtj-nav a")]
        assert links == ["../problem_map.html", other]
        assert (p.parent / links[0]).resolve() == district.resolve()
        data = [json.loads(js) for js in re.findall(r"L\.geoJSON\((.*), \{$", t, re.M)]
        units = {_unit_code(f["properties"]["h"]) for fc in data for f in fc["features"]
                 if _unit_code(f["properties"].get("h", "")) and "c" in f["properties"]}
        assert units == set(study.units.loc[study.units["town_code"] == code, "unit_id"])
        # compounds in full detail with the facility types each misses
        assert "小区 (" in json.dumps(layer_control_names(t), ensure_ascii=False)
        assert "缺口类型" in t
    # colours of a unit are the same on the district and the town map (district classes)
    def unit_colours(t):
        data = [json.loads(js) for js in re.findall(r"L\.geoJSON\((.*), \{$", t, re.M)]
        return {f["properties"]["h"]: f["properties"]["c"] for fc in data for f in fc["features"]
                if "c" in f["properties"] and _unit_code(f["properties"].get("h", ""))}
    both = unit_colours(text)
    assert both and all(both[u] == c for p in paths for u, c in unit_colours(p.read_text(encoding="utf-8")).items())


def test_town_study_keeps_the_town_and_what_reaches_it(study):
    from geotijian.report import town_maps

    sub = town_maps.town_study(study, "T1")
    assert sub.towns["town_code"].tolist() == ["T1"] and sub.boundary is None
    assert set(sub.units["unit_id"]) == {"U0", "U1"}
    # its problem points; the problems with a point in it and the district's; a town-level
    # problem told for this town alone (issue 20's grouped problems)
    assert set(sub.problem_points["area_id"]) <= {"U0", "U1", "T1"}
    district = set(study.problems.loc[study.problems["level"] == "district", "problem_id"])
    assert set(sub.problems["problem_id"]) == set(sub.problem_points["problem_id"]) | district
    road = sub.problems.set_index("problem_id").loc["u_road_network_density@town"]
    assert (road["point_count"], road["area_id"], road["value"]) == (1, "T1", 5.0)
    assert road["point_names"] == study.towns.set_index("town_code").loc["T1", "name"]
    assert set(sub.coverage_gaps["unit_id"]) == {"U0", "U1"}
    # facilities within the longest walking radius (500 m) of the town serve it too
    t1 = study.towns.geometry.iloc[0]
    d = study.facilities.distance(t1)
    assert set(sub.facilities["facility_id"]) == set(study.facilities.loc[d <= 500, "facility_id"])
    assert len(sub.facilities) < len(study.facilities)
    with pytest.raises(LayerError, match="no town"):
        town_maps.town_study(study, "T9")


# ------------------------------------------------------------------ GeoPackage

@pytest.fixture(scope="module")
def gpkg_path(study, tmp_path_factory) -> Path:
    return gpkg_mod.write_gpkg(study, tmp_path_factory.mktemp("gpkg") / "study.gpkg")


def test_gpkg_layers_crs_counts_types(study, gpkg_path):
    listed = dict(pyogrio.list_layers(gpkg_path))
    spatial = study.layers()
    for name, gdf in spatial.items():
        assert name in listed, name
        info = pyogrio.read_info(gpkg_path, layer=name)
        assert info["crs"] == "EPSG:32651", name
        # coverage gaps: a row per home with a gap (test_gpkg_gaps_once_per_home)
        assert info["features"] == (gdf["home_id"].nunique() if name == "coverage_gaps" else len(gdf)), name
    for name in ("ledger", "indicator_table", "layer_styles"):
        assert listed[name] is None  # attribute tables
    info = pyogrio.read_info(gpkg_path, layer="units")
    types = dict(zip(info["fields"], info["dtypes"]))
    assert types == {"unit_id": "object", "town_code": "object", "town_name": "object",
                     "committees": "object", "population": "float64", "households": "float64",
                     "area_ha": "float64", "compound_count": "int64", "compactness": "float64",
                     "flag": "bool", "flag_reason": "object", "name": "object"}  # (named after committees, issue 20)
    assert pyogrio.read_info(gpkg_path, layer="facilities")["geometry_type"] == "Unknown"
    back = pyogrio.read_dataframe(gpkg_path, layer="units")
    assert back["unit_id"].tolist() == study.units["unit_id"].tolist()
    assert back.geometry.geom_equals_exact(study.units.geometry.reset_index(drop=True), 1e-6).all()
    ledger = pyogrio.read_dataframe(gpkg_path, layer="ledger")
    # (issue 20's ledger writes its history as text, "2024:new;2025:persisting")
    assert ledger["history"].tolist() == study.ledger["history"].tolist()
    fac = pyogrio.read_dataframe(gpkg_path, layer="facilities")
    assert XSS in fac["name"].tolist()  # data kept verbatim in the GeoPackage
    meta = pyogrio.read_info(gpkg_path, layer="boundary")["dataset_metadata"]
    assert meta["ATTRIBUTION"] == "© OpenStreetMap contributors, ODbL"
    lmeta = pyogrio.read_info(gpkg_path, layer="units")["layer_metadata"]
    assert lmeta["IDENTIFIER"] == "社区体检单元" and "ODbL" in lmeta["DESCRIPTION"]


def test_gpkg_service_areas_say_how_they_were_drawn(study, tmp_path):
    """The service areas' layer description gives the half-width and the stubs left out
    (``attrs["drawing"]`` of service_areas); none when the frame does not say it."""
    import dataclasses

    from geotijian.access import service_areas as areas_of
    from geotijian.network import build_network

    net = build_network(gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (100, 0)]),
                                                   shapely.LineString([(50, 0), (50, 3)])], crs=CRS))
    fac = gpd.GeoDataFrame({"type": ["kindergarten"]}, geometry=[shapely.Point(10, 1)], crs=CRS)
    drawn = areas_of(net, fac, 200)
    assert drawn.attrs["drawing"] == {"half_width_m": 25.0, "stub_m": 5.0}
    svc = study.service_areas.copy()
    svc.attrs["drawing"] = dict(drawn.attrs["drawing"])
    path = gpkg_mod.write_gpkg(dataclasses.replace(study, service_areas=svc), tmp_path / "drawn.gpkg")
    desc = pyogrio.read_info(path, layer="service_areas")["layer_metadata"]["DESCRIPTION"]
    assert "两侧25米的街道空间，略去不长于5米的尽端支路" in desc and "dead ends of at most 5 m left out" in desc
    svc.attrs.clear()
    path = gpkg_mod.write_gpkg(dataclasses.replace(study, service_areas=svc), tmp_path / "plain.gpkg")
    assert "街道空间" not in pyogrio.read_info(path, layer="service_areas")["layer_metadata"]["DESCRIPTION"]


def test_gpkg_styles_and_aliases(study, gpkg_path):
    styles = pyogrio.read_dataframe(gpkg_path, layer="layer_styles")
    assert sorted(styles["f_table_name"]) == sorted(study.layers())
    assert styles["useAsDefault"].all()
    with sqlite3.connect(gpkg_path) as con:
        cols = [r[1] for r in con.execute("PRAGMA table_info(layer_styles)")]
        assert cols == ["id", "f_table_catalog", "f_table_schema", "f_table_name",
                        "f_geometry_column", "styleName", "styleQML", "styleSLD", "useAsDefault",
                        "description", "owner", "ui", "update_time"]
        alias = con.execute("SELECT name FROM gpkg_data_columns WHERE table_name='units' AND "
                            "column_name='population'").fetchone()
        assert alias == ("常住人口(人)",)
        geom_cols = dict(con.execute("SELECT table_name, column_name FROM gpkg_geometry_columns"))
        styled = dict(con.execute("SELECT f_table_name, f_geometry_column FROM layer_styles"))
        assert styled == geom_cols
    import xml.etree.ElementTree as ET

    qml = dict(zip(styles["f_table_name"], styles["styleQML"]))
    for name, text in qml.items():
        root = ET.fromstring(text.split("\n", 1)[1])
        assert root.tag == "qgis" and root.find("renderer-v2") is not None, name
    pr = ET.fromstring(qml["problems"].split("\n", 1)[1]).find("renderer-v2")
    assert pr.get("type") == "categorizedSymbol" and pr.get("attr") == "problem_class"
    assert [cat.get("value") for cat in pr.iter("category")] == ["限时解决", "尽力解决", "长期谋划"]
    un = ET.fromstring(qml["units"].split("\n", 1)[1])
    assert un.find("renderer-v2").get("type") == "graduatedSymbol"
    assert {a.get("field"): a.get("name") for a in un.iter("alias")}["area_ha"] == "面积(公顷)"
    fac = ET.fromstring(qml["facilities"].split("\n", 1)[1])
    assert XSS not in [c.get("value") for c in fac.iter("category")]  # categories are types


def test_gpkg_gaps_once_per_home(study, gpkg_path):
    long = study.coverage_gaps
    back = pyogrio.read_dataframe(gpkg_path, layer="coverage_gaps")
    assert back["home_id"].tolist() == sorted(long["home_id"].astype(str).unique())
    types = list(pd.unique(long["facility_type"]))
    # every (home, type) row of the long layer is one filled cell, and nothing else is
    cells = back.set_index("home_id")[[f"dist_{t}" for t in types]]
    assert cells.notna().sum().sum() == long["distance_m"].notna().sum()
    for row in long.itertuples():
        assert cells.loc[str(row.home_id), f"dist_{row.facility_type}"] == pytest.approx(row.distance_m, nan_ok=True)
    missing = back.set_index("home_id")["missing"].str.split(";")
    assert back["n_missing"].sum() == len(long) and (back["n_missing"] == missing.str.len().to_numpy()).all()
    for h, grp in long.groupby("home_id"):
        assert missing[str(h)] == [t for t in types if t in set(grp["facility_type"])]
    ratio = (long["distance_m"] / long["walk_distance_m"]).groupby(long["home_id"].astype(str)).max()
    assert np.allclose(back.set_index("home_id")["worst_ratio"], ratio.loc[back["home_id"]], equal_nan=True)
    first = long.drop_duplicates("home_id").set_index(long.drop_duplicates("home_id")["home_id"].astype(str))
    assert back.geometry.geom_equals_exact(
        gpd.GeoSeries(first.geometry.loc[back["home_id"]].to_numpy(), crs=back.crs), 1e-6).all()
    with sqlite3.connect(gpkg_path) as con:  # a spatial index on every spatial layer
        rtree = {r[0] for r in con.execute("SELECT table_name FROM gpkg_extensions WHERE "
                                           "extension_name = 'gpkg_rtree_index'")}
        qml = con.execute("SELECT styleQML FROM layer_styles WHERE f_table_name='coverage_gaps'").fetchone()[0]
        alias = con.execute("SELECT name FROM gpkg_data_columns WHERE table_name='coverage_gaps' AND "
                            "column_name='dist_kindergarten'").fetchone()
    assert alias == ("幼儿园步行距离(米)",)
    assert rtree == set(study.layers())
    import xml.etree.ElementTree as ET

    r = ET.fromstring(qml.split("\n", 1)[1]).find("renderer-v2")
    assert r.get("type") == "graduatedSymbol" and r.get("attr") == '"worst_ratio"'


def test_gpkg_deterministic_bytes(study, gpkg_path, tmp_path):
    again = gpkg_mod.write_gpkg(study, tmp_path / "again.gpkg")
    assert again.read_bytes() == gpkg_path.read_bytes()


def test_gpkg_crash_mid_write_keeps_old_file(study, tmp_path, monkeypatch):
    target = gpkg_mod.write_gpkg(study, tmp_path / "s.gpkg")
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash after the layers were written")

    monkeypatch.setattr(gpkg_mod, "_post_process", boom)
    s2 = make_study()
    s2.units = s2.units.iloc[:2]
    with pytest.raises(RuntimeError, match="simulated crash"):
        gpkg_mod.write_gpkg(s2, target)
    assert target.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.gpkg"]  # no temp leftovers
    assert pyogrio.read_info(target, layer="units")["features"] == 4


def test_gpkg_non_ascii_fields_and_missing_crs(tmp_path):
    s = make_study()
    s.compounds = s.compounds.assign(**{"备注": ["老旧小区"] * 8, "fid": range(8)})
    p = gpkg_mod.write_gpkg(s, tmp_path / "a.gpkg")
    fields = list(pyogrio.read_info(p, layer="compounds")["fields"])
    assert all(f.isascii() for f in fields)
    assert "fid_src" in fields
    with sqlite3.connect(p) as con:
        rows = dict(con.execute("SELECT name, column_name FROM gpkg_data_columns "
                                "WHERE table_name='compounds'").fetchall())
    assert rows["备注"] in fields
    s.towns = s.towns.set_crs(None, allow_override=True)
    with pytest.raises(LayerError, match="towns"):
        gpkg_mod.write_gpkg(s, tmp_path / "b.gpkg")
    assert not (tmp_path / "b.gpkg").exists()


# ------------------------------------------------------------------ static figures

needs_cjk = pytest.mark.skipif(figures.find_cjk_font() is None,
                               reason="no CJK font installed (Debian: apt-get install fonts-noto-cjk)")


@needs_cjk
def test_figures_written_with_cjk_glyphs(study, tmp_path):
    from PIL import Image

    with warnings.catch_warnings(record=True) as rec:
        warnings.simplefilter("always")
        paths = figures.save_figures(study, tmp_path, formats=("png", "svg"))
    glyph = [str(w.message) for w in rec if "Glyph" in str(w.message) or "missing from" in str(w.message)]
    assert glyph == []
    names = sorted(p.name for p in paths)
    per_class = ["problems_urgent", "problems_best_effort", "problems_long_term"]
    assert names == sorted([f"{n}.{x}" for n in ["units", "gaps_kindergarten", "gaps_primary_school", "problems",
                                                 *per_class] for x in ("png", "svg")])
    for p in paths:
        assert p.stat().st_size > 10_000, p
        if p.suffix == ".png":
            with Image.open(p) as im:
                # problem figures: the map with the legend beside it (10 × 8 in)
                assert im.size == ((1500, 1200) if p.stem.startswith("problems") else (1200, 1200))
                # a real map: many colours, not a blank canvas
                assert len(im.convert("RGB").getcolors(maxcolors=1 << 20)) > 50
        else:
            head = p.read_text(encoding="utf-8")[:400]
            assert "<svg" in head
            assert "<dc:date>" not in p.read_text(encoding="utf-8")


@needs_cjk
def test_figures_deterministic(study, tmp_path):
    a = problem_figures.problem_figure(study, tmp_path / "a.png")
    b = problem_figures.problem_figure(study, tmp_path / "b.png")
    assert a.read_bytes() == b.read_bytes()
    a = figures.units_figure(study, tmp_path / "a.svg", indicator="c_kindergarten_gap")
    b = figures.units_figure(study, tmp_path / "b.svg", indicator="c_kindergarten_gap")
    assert a.read_bytes() == b.read_bytes()


def test_figure_png_same_pixels_as_savefig(study, tmp_path, monkeypatch):
    """The PNG written by _png_bytes (RGB, unfiltered) holds exactly the pixels of
    matplotlib's own PNG of the same figure (Pillow, RGBA, every pixel opaque), at the same
    size and resolution; a figure that is not opaque still goes through savefig (RGBA)."""
    from PIL import Image

    real_save = figures._save

    def with_reference(fig, path, dpi):
        fig.savefig(tmp_path / "ref.png", dpi=dpi, metadata={"Software": None})
        return real_save(fig, path, dpi)
    monkeypatch.setattr(figures, "_save", with_reference)
    ours = figures.units_figure(study, tmp_path / "ours.png", dpi=120)
    monkeypatch.undo()
    with Image.open(ours) as a, Image.open(tmp_path / "ref.png") as b:
        assert a.mode == "RGB" and b.mode == "RGBA" and a.size == b.size == (960, 960)
        assert a.info["dpi"] == pytest.approx(b.info["dpi"])
        ref = np.asarray(b)
        assert (ref[..., 3] == 255).all() and np.array_equal(np.asarray(a), ref[..., :3])
    fig, ax = figures._new((4.0, 3.0), 100)
    fig.patch.set_alpha(0.0)
    ax.patch.set_alpha(0.0)
    ax.plot([0, 1], [0, 1])
    with Image.open(figures._save(fig, tmp_path / "clear.png", 100)) as im:
        assert im.mode == "RGBA" and im.size == (400, 300) and im.getextrema()[3][0] == 0
    import matplotlib

    with matplotlib.rc_context({"savefig.transparent": True}):  # savefig's settings are kept
        with Image.open(figures.units_figure(study, tmp_path / "see_through.png", dpi=50)) as im:
            assert im.mode == "RGBA" and im.getextrema()[3][0] == 0


def test_figure_without_cjk_font_warns(study, tmp_path, monkeypatch):
    monkeypatch.setattr(figures, "find_cjk_font", lambda: None)
    with pytest.warns(figures.FigureWarning, match="fonts-noto-cjk"):
        problem_figures.problem_figure(study, tmp_path / "p.png", dpi=40)
    assert (tmp_path / "p.png").stat().st_size > 0


def dominant_share(path) -> float:
    """Share of the pixels of a PNG in its most common colour."""
    from PIL import Image

    with Image.open(path) as im:
        colors = im.convert("RGB").getcolors(maxcolors=1 << 22)
    return max(n for n, _ in colors) / sum(n for n, _ in colors)


@needs_cjk
def test_problem_figure_draws_unit_points_only(study, tmp_path):
    """Problems on their units, labelled with names and points per class, the district and
    town problems in a note; no colour covers most of the picture; dpi and format as asked."""
    p = problem_figures.problem_figure(study, tmp_path / "p.png", dpi=100)
    assert dominant_share(p) < 0.6
    counts = problem_figures.unit_point_counts(study)
    assert counts.loc["U3", "限时解决"] == 1 and counts.loc["U3", "尽力解决"] == 1
    assert counts.loc["U1", "total"] == 1 and int(counts["total"].sum()) == 6   # unit-level points only
    svg = problem_figures.problem_figure(study, tmp_path / "p.svg", lang="en").read_text(encoding="utf-8")
    assert "<svg" in svg
    pdf = problem_figures.problem_class_figure(study, "尽力解决", tmp_path / "c.pdf", dpi=72)
    assert pdf.read_bytes().startswith(b"%PDF")
    from PIL import Image

    with Image.open(problem_figures.problem_figure(study, tmp_path / "q.png", dpi=60)) as im:
        assert im.size == (600, 480)
    # the labels: each unit's name (Chinese) is drawn; the note counts the other levels
    text = problem_figures._level_note(study, "zh")
    assert text == "另有区级问题 1 项、街镇级问题 1 项(不落图, 见问题清单)"


def test_figure_rings_oriented_as_geos_does():
    """The numpy orientation gives shapely.orient_polygons' vertices, holes and all."""
    rng = np.random.default_rng(3)
    cw = shapely.Polygon([(0, 0), (0, 10), (10, 10), (10, 0)])  # clockwise exterior
    holed = shapely.Polygon([(20, 0), (30, 0), (30, 10), (20, 10)],  # ccw exterior, ccw hole
                            [[(22, 2), (28, 2), (28, 8), (22, 8)], [(23, 3), (23, 4), (24, 4)]])
    multi = shapely.MultiPolygon([cw, shapely.Polygon([(40, 0), (45, 0), (45, 5)])])
    far = shapely.affinity.translate(holed, 330_000, 3_465_000)  # UTM-size coordinates
    blobs = shapely.buffer(shapely.points(rng.uniform(0, 100, (30, 2))), rng.uniform(1, 9, 30))
    geoms = np.array([cw, holed, multi, shapely.Polygon(), Point(1, 1), far, *blobs], dtype=object)
    xy, codes, feat = figures._oriented_rings(geoms)
    rings, ri = shapely.get_rings(shapely.orient_polygons(shapely.get_parts(geoms)), return_index=True)
    want, wi = shapely.get_coordinates(rings, return_index=True)
    assert np.array_equal(xy, want)
    parts_feat = shapely.get_parts(geoms, return_index=True)[1]
    assert np.array_equal(feat, parts_feat[ri[wi]])
    starts = np.r_[0, np.flatnonzero(np.diff(wi)) + 1]
    assert np.array_equal(np.flatnonzero(codes == figures.MplPath.MOVETO), starts)
    assert np.array_equal(np.flatnonzero(codes == figures.MplPath.CLOSEPOLY), np.r_[starts[1:] - 1, len(xy) - 1])
    assert figures._compound_path(np.array([Point(0, 0)], dtype=object)) is None


def test_figure_scale_bar_lengths():
    assert figures._nice_length(2240) == 500
    assert figures._nice_length(46_000) == 10_000
    assert figures._nice_length(900) == 200


def test_figure_rejects_geographic_study(study, tmp_path):
    s = make_study()
    s.crs = "EPSG:4326"
    with pytest.raises(LayerError, match="geographic"):
        problem_figures.problem_figure(s, tmp_path / "x.png")


# ------------------------------------------------------------------ the packaged sample

def test_sample_district_renders(tmp_path):
    sample = pytest.importorskip("geotijian.sample", reason="geotijian.sample not written yet")
    if not hasattr(sample, "make_sample_district"):
        pytest.skip("geotijian.sample has no make_sample_district yet")
    layers = sample.make_sample_district()
    fields = set(StudyData.__dataclass_fields__)
    study = StudyData(name="嘉定区样例片区", **{k: v for k, v in layers.items() if k in fields})
    m = maps.problem_map(study)
    html_path = maps.save_problem_map(m, tmp_path / "sample.html")
    assert html_path.stat().st_size > 100_000
    g = gpkg_mod.write_gpkg(study, tmp_path / "sample.gpkg")
    listed = dict(pyogrio.list_layers(g))
    for name, gdf in study.layers().items():
        assert pyogrio.read_info(g, layer=name)["features"] == len(gdf), name
    assert "layer_styles" in listed


# ------------------------------------------------------------------ real OSM data

def test_real_osm_tongji_map_and_gpkg(osm_dir, tmp_path):
    """Tongji campus, Yangpu (raw OSM export): real Chinese names, real OSM tags."""
    src = osm_dir / "shanghai_yangpu_tongji.osm"
    if not src.exists():
        pytest.skip(f"{src} is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mp = pyogrio.read_dataframe(src, layer="multipolygons", on_invalid="ignore")
        lines = pyogrio.read_dataframe(src, layer="lines")
    mp = mp.loc[mp.geometry.notna()].to_crs(CRS)
    res = mp.loc[mp["landuse"] == "residential"].reset_index(drop=True)
    compounds = gpd.GeoDataFrame(
        {"compound_id": [f"X{i:03d}" for i in range(len(res))], "name": res["name"],
         "population": res.geometry.area.to_numpy() * 0.03, "other_tags": res["other_tags"]},
        geometry=res.geometry.to_numpy(), crs=CRS)
    fac_src = mp.loc[(mp["amenity"] == "school") | (mp["shop"] == "supermarket")].reset_index(drop=True)
    facilities = gpd.GeoDataFrame(
        {"facility_id": [f"F{i:03d}" for i in range(len(fac_src))],
         "type": np.where(fac_src["amenity"] == "school", "primary_school", "fresh_market"),
         "name": fac_src["name"]}, geometry=fac_src.geometry.to_numpy(), crs=CRS)
    roads = lines.loc[lines["highway"].notna()].to_crs(CRS).reset_index(drop=True)
    roads = gpd.GeoDataFrame({"road_id": [f"R{i}" for i in range(len(roads))],
                              "highway": roads["highway"], "name": roads["name"]},
                             geometry=roads.geometry.to_numpy(), crs=CRS)
    bounds = box(*mp.total_bounds)
    study = StudyData(name="杨浦同济", boundary=gpd.GeoDataFrame({"boundary_id": ["B1"]},
                                                               geometry=[bounds], crs=CRS),
                      compounds=compounds, facilities=facilities, roads=roads,
                      meta={"osm_sources": [src.name]})
    html_path = maps.save_problem_map(maps.problem_map(study), tmp_path / "tongji.html")
    text = html_path.read_text(encoding="utf-8")
    assert "曲阳第四小学" in text
    assert not re.search(r"<script[^>]+src=", text)
    assert html_path.stat().st_size < 600_000
    g = gpkg_mod.write_gpkg(study, tmp_path / "tongji.gpkg")
    for name, gdf in study.layers().items():
        info = pyogrio.read_info(g, layer=name)
        assert info["features"] == len(gdf) and info["crs"] == "EPSG:32651", name
    assert pyogrio.read_info(g, layer="roads")["dataset_metadata"]["ATTRIBUTION"].endswith("ODbL")
    back = pyogrio.read_dataframe(g, layer="compounds")
    assert back["other_tags"].tolist() == compounds["other_tags"].tolist()  # '"k"=>"v"' kept
