"""Indicator catalogue, 填报 path and every spatial indicator on a hand-computed fixture.

Fixture (EPSG:32651, metres, origin X0, Y0), three units in two towns:

    U03 (T2): x 0-2000, y 1000-2000, 2 km², 10,000 residents
    U01 (T1): x 0-1000,    y 0-1000, 1 km²,  6,000 residents
    U02 (T1): x 1000-2000, y 0-1000, 1 km²,  4,000 residents

Every expected number below is worked out by hand in the comments, not by the code.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from hypothesis import given, settings as hsettings, strategies as st
from shapely.geometry import LineString, Point, box

from geotijian import settings
from geotijian.errors import ConfigError, LayerError, RepairWarning
from geotijian.indicators import (
    CATALOGUE_COLUMNS,
    DIMENSIONS,
    area_per_capita,
    building_indicators,
    classify_parks,
    compute_indicators,
    e2sfca_weights,
    facilities_per_1000,
    fca_indicator,
    imagery_indicators,
    indicator_catalogue,
    intersection_density,
    life_circle_attainment,
    network_coverage,
    old_compound_share,
    park_service_coverage,
    parse_reference,
    points_per_1000,
    read_filled_values,
    road_network_density,
    transit_coverage,
    two_step_fca,
)

CRS = "EPSG:32651"
X0, Y0 = 300000.0, 3460000.0


def b(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def ln(*pts):
    return LineString([(X0 + x, Y0 + y) for x, y in pts])


def pt(x, y):
    return Point(X0 + x, Y0 + y)


@pytest.fixture
def units():
    return gpd.GeoDataFrame({"unit_id": ["U01", "U02", "U03"], "town_code": ["T1", "T1", "T2"],
                             "town_name": ["一镇", "一镇", "二镇"], "population": [6000, 4000, 10000],
                             "committees": ["C1", "C2", "C3,C4"]},
                            geometry=[b(0, 0, 1000, 1000), b(1000, 0, 2000, 1000), b(0, 1000, 2000, 2000)], crs=CRS)


@pytest.fixture
def homes():
    return pd.DataFrame({"home_id": ["H1", "H2", "H3", "H4", "H5"], "unit_id": ["U01", "U01", "U02", "U03", "U03"],
                         "population": [4000, 2000, 4000, 6000, 4000]})


@pytest.fixture
def distances(homes):
    return pd.DataFrame({"kindergarten": [200, 400, 300, np.inf, 100],
                         "bus_stop": [100, 600, 400, 200, 300],
                         "metro_station": [900, 700, 800, 2000, np.inf]}, index=homes["home_id"])


def val(df, level, area, code):
    sel = df[(df["level"] == level) & (df["area_id"] == area) & (df["code"] == code)]
    assert len(sel) == 1, (level, area, code, sel)
    return float(sel["value"].iloc[0])


# ----------------------------------------------------------------------------- catalogue

@pytest.mark.parametrize("text,direction,expected", [
    (">8.0 (GB 55014-2021 cl.2.1.3)", "higher_better", (">", 8.0)),
    (">=70 (不宜小于70%)", "higher_better", (">=", 70.0)),
    (">80%", "higher_better", (">", 80.0)),
    (">80% (GB 55014-2021 cl.2.1.3)", "higher_better", (">", 80.0)),
    ("0", "lower_better", ("<=", 0.0)),
    ("100", "higher_better", (">=", 100.0)),
    ("<=50", "lower_better", ("<=", 50.0)),
    ("8 (2016 State Council target; unconfirmed)", "higher_better", (">=", 8.0)),
    (12.5, "lower_better", ("<=", 12.5)),
    ("≥ 90", "higher_better", (">=", 90.0)),
])
def test_parse_reference(text, direction, expected):
    assert parse_reference(text, direction) == expected


@pytest.mark.parametrize("text", ["no national threshold found; Shenzhen 2022 = 90.87%", "", None,
                                  "sample >=2 per mille of residents"])
def test_parse_reference_without_number(text):
    op, v = parse_reference(text)
    assert op == "" and np.isnan(v)


def test_catalogue_packaged_rows_keep_source_and_confidence():
    cat = indicator_catalogue(edition="2023")   # the set packaged before editions: all 72 rows
    assert list(cat.columns) == CATALOGUE_COLUMNS
    assert cat["code"].is_unique
    assert list(cat["code"]) == sorted(cat["code"])
    packaged = pd.read_csv(settings.__file__.replace("settings.py", "data/indicators.csv"), dtype=str)
    assert set(packaged["code"]) <= set(cat["code"])
    row = cat.set_index("code").loc["u_park_green_pc"]
    assert (row["reference_op"], row["reference_value"]) == (">", 8.0)
    assert row["source"] == "S16" and row["confidence"] == "confirmed" and row["version"] == "2023"
    assert row["reference_source"] == "GB 55014-2021 cl.2.1.3 (S16)" and row["reference_confidence"] == "confirmed"
    assert row["dimension"] == "宜居共建"
    assert cat.set_index("code").loc["u_sewage_collection", "reference_value"] == 70.0
    assert cat.set_index("code").loc["c_kindergarten_gap", "reference_op"] == "<="
    # no number: no reference
    assert np.isnan(cat.set_index("code").loc["d_park_activity_coverage", "reference_value"])
    # imagery rows (geotijian.imagery) and generated per-facility rows exist and are computable
    for code in ("g_green_cover_ratio", "g_impervious_ratio", "cov_kindergarten", "per1000_kindergarten",
                 "fca_kindergarten", "u_road_network_density", "d_15min_circle_attainment"):
        assert cat.set_index("code").loc[code, "computable"], code
    assert cat.set_index("code").loc["g_green_cover_ratio", "method"] == "imagery"
    assert not cat.set_index("code").loc["h_gas_risk", "computable"]
    dims = set(cat["dimension"]) - {"—"}
    assert dims <= set(DIMENSIONS)


def test_catalogue_overrides_and_custom_indicators(tmp_path):
    custom = tmp_path / "特色指标.csv"
    custom.write_text("code,name_zh,name_en,dimension,unit,direction,reference_value,method,source\n"
                      "x_riverside_access,滨水空间可达率,riverside access,宜居共建,%,higher_better,>=60,fill_in,嘉定\n",
                      encoding="utf-8-sig")
    cat = indicator_catalogue({"reference": {"u_park_green_pc": 9, "t_metro_coverage": ">=60"},
                               "custom": str(custom)})
    c = cat.set_index("code")
    assert (c.loc["u_park_green_pc", "reference_op"], c.loc["u_park_green_pc", "reference_value"]) == (">=", 9.0)
    assert c.loc["t_metro_coverage", "reference_value"] == 60.0
    assert c.loc["u_park_green_pc", "version"] == "2024-study"
    assert "override" in c.loc["u_park_green_pc", "origin"]
    assert c.loc["x_riverside_access", "origin"] == "study"
    assert (c.loc["x_riverside_access", "reference_op"], c.loc["x_riverside_access", "reference_value"]) == (">=", 60)
    # packaged catalogue unchanged by the override
    assert indicator_catalogue().set_index("code").loc["u_park_green_pc", "reference_value"] == 8.0


def test_catalogue_override_from_toml(tmp_path):
    p = tmp_path / "study.toml"
    p.write_text('[indicators]\nversion = "jiading-2025"\n[indicators.reference]\nu_road_network_density = 7.5\n',
                 encoding="utf-8")
    c = indicator_catalogue(p).set_index("code")
    assert c.loc["u_road_network_density", "reference_value"] == 7.5
    assert c.loc["u_road_network_density", "version"] == "jiading-2025"


@pytest.mark.parametrize("overrides,match", [
    ({"reference": {"u_park_greem_pc": 9}}, "indicators.reference.u_park_greem_pc"),
    ({"reference": {"u_park_green_pc": "lots"}}, "u_park_green_pc"),
    ({"custom": [{"code": "u_park_green_pc", "name_zh": "x", "unit": "%", "direction": "higher_better",
                  "dimension": "宜居共建"}]}, "already in the packaged"),
    ({"custom": [{"code": "x_a", "name_zh": "x", "unit": "%", "direction": "up", "dimension": "宜居共建"}]},
     "x_a"),
    ({"custom": [{"code": "x_b", "name_zh": "x", "unit": "%", "direction": "higher_better", "dimension": "幸福"}]},
     "x_b"),
    ({"colour": "red"}, "indicators.colour"),
])
def test_catalogue_override_errors_name_the_code(overrides, match):
    with pytest.raises(ConfigError, match=match):
        indicator_catalogue(overrides)


# ----------------------------------------------------------------------------- 填报

def test_read_filled_values(tmp_path, units):
    p = tmp_path / "填报.csv"
    p.write_text("unit_id,code,value\nU01,h_gas_risk,3\nU02,c_no_property_mgmt,1\nU01,u_sewage_collection,85.5%\n",
                 encoding="utf-8-sig")
    v = read_filled_values(p, units=units)
    assert list(v.columns) == ["level", "area_id", "code", "value"]
    assert val(v, "unit", "U01", "h_gas_risk") == 3.0
    assert val(v, "unit", "U01", "u_sewage_collection") == 85.5


def test_read_filled_values_excel_chinese_headers(tmp_path, units):
    p = tmp_path / "填报.xlsx"
    pd.DataFrame({"单元编号": ["U03"], "指标代码": ["h_stair_risk"], "数值": [2]}).to_excel(p, index=False)
    assert val(read_filled_values(p, units=units), "unit", "U03", "h_stair_risk") == 2.0


@pytest.mark.parametrize("body,match", [
    ("U01,h_gas_risk,3\nU02,h_gass_risk,1\n", r"row 3.*unknown indicator code 'h_gass_risk'"),
    ("U01,h_gas_risk,3\nU02,h_gas_risk,三\n", r"row 3.*value '三' is not a number"),
    ("U09,h_gas_risk,3\n", r"row 2.*unknown unit ID 'U09'"),
    ("U01,h_gas_risk,3\nU01,h_gas_risk,4\n", r"row 3.*duplicate"),
])
def test_read_filled_values_bad_rows(tmp_path, units, body, match):
    p = tmp_path / "bad.csv"
    p.write_text("unit_id,code,value\n" + body, encoding="utf-8")
    with pytest.raises(LayerError, match=match) as exc:
        read_filled_values(p, units=units)
    assert "Fix:" in str(exc.value) and "bad.csv" in str(exc.value)


# ----------------------------------------------------------------------------- coverage

def test_network_coverage_hand_computed(homes, distances, units):
    out = network_coverage(homes, distances, units, walk_distances={"kindergarten": 300, "bus_stop": 500})
    # kindergarten 300 m: H1 200 ✓ (4000), H2 400 ✗ (2000), H3 300 ✓ (boundary counts), H4 inf ✗, H5 100 ✓
    assert val(out, "unit", "U01", "cov_kindergarten") == pytest.approx(100 * 4000 / 6000)
    assert val(out, "unit", "U02", "cov_kindergarten") == pytest.approx(100.0)
    assert val(out, "unit", "U03", "cov_kindergarten") == pytest.approx(40.0)
    assert val(out, "town", "T1", "cov_kindergarten") == pytest.approx(80.0)      # 8000 / 10000
    assert val(out, "district", "district", "cov_kindergarten") == pytest.approx(60.0)  # 12000 / 20000, not 68.9
    assert val(out, "district", "district", "cov_bus_stop") == pytest.approx(90.0)  # all but H2


def test_transit_coverage(homes, distances, units):
    out = transit_coverage(homes, distances, units)
    # bus 500 m: all but H2 → 18000/20000; 300 m: H1, H4, H5 → 14000/20000
    assert val(out, "district", "district", "t_bus_stop_coverage") == pytest.approx(90.0)
    assert val(out, "district", "district", "g_bus_stop_300_coverage") == pytest.approx(70.0)
    assert val(out, "unit", "U02", "g_bus_stop_300_coverage") == 0.0
    # metro 800 m: H2 700 ✓ (2000), H3 800 ✓ (4000) → district 6000/20000, U01 2000/6000
    assert val(out, "district", "district", "t_metro_coverage") == pytest.approx(30.0)
    assert val(out, "unit", "U01", "t_metro_coverage") == pytest.approx(100 / 3)


def test_life_circle_attainment(homes, distances, units):
    out = life_circle_attainment(homes, distances, units, required=["kindergarten", "bus_stop"],
                                 walk_distances={"kindergarten": 300, "bus_stop": 300})
    # both within 300 m: H1 (200, 100) ✓, H2 ✗, H3 (300, 400) ✗, H4 ✗ (inf), H5 (100, 300) ✓
    assert val(out, "unit", "U01", "d_15min_circle_attainment") == pytest.approx(100 * 4000 / 6000)
    assert val(out, "unit", "U02", "d_15min_circle_attainment") == 0.0
    assert val(out, "district", "district", "d_15min_circle_attainment") == pytest.approx(40.0)  # 8000/20000


def test_coverage_bad_inputs(homes, distances, units):
    bad = homes.copy()
    bad.loc[2, "unit_id"] = "U99"
    with pytest.raises(LayerError, match="U99"):
        network_coverage(bad, distances, units, walk_distances={"kindergarten": 300})
    with pytest.raises(LayerError, match="H5"):
        network_coverage(homes, distances.drop(index="H5"), units, walk_distances={"kindergarten": 300})
    with pytest.raises(LayerError, match="geographic"):
        network_coverage(homes, distances, units.to_crs(4326), walk_distances={"kindergarten": 300})
    with pytest.raises(LayerError, match="nursery"):
        life_circle_attainment(homes, distances, units, required=["nursery"], walk_distances={"nursery": 300})


# ----------------------------------------------------------------------------- parks

@pytest.fixture
def parks():
    return gpd.GeoDataFrame({"park_id": ["P1", "P2", "P3"]}, geometry=[
        b(0, 0, 2000, 10),          # 20,000 m² ≥ 5,000 → 500 m; half in U01, half in U02
        b(0, 1998.5, 2000, 2000),   # 3,000 m² (2,000-5,000) → 300 m, in U03
        b(1000, 1200, 1010, 1300),  # 1,000 m²: below every class, serves nobody, in U03
    ], crs=CRS)


@pytest.fixture
def residential():
    return gpd.GeoDataFrame({"compound_id": ["R1", "R2", "R3"]}, geometry=[
        b(100, 400, 900, 900),      # U01, 400,000 m²
        b(1100, 600, 1900, 900),    # U02, 240,000 m²
        b(100, 1500, 1900, 1900),   # U03, 720,000 m²
    ], crs=CRS)


def test_classify_parks(parks):
    c = classify_parks(parks)
    assert list(c["park_class"][:2]) == ["park_service_ge5000", "park_service_2000_5000"]
    assert pd.isna(c["park_class"].iloc[2])
    assert list(c["radius_m"].fillna(-1)) == [500, 300, -1]
    assert c["area_m2"].tolist() == pytest.approx([20000, 3000, 1000])


def test_park_service_coverage_buffer_hand_computed(residential, parks, units):
    out = park_service_coverage(residential, parks, units)
    # P1 served zone reaches y = 10 + 500 = 510 along x 0-2000 (straight edge over R1, R2)
    # R1: served y 400-510 → 800 × 110 = 88,000 of 400,000 → 22 %
    assert val(out, "unit", "U01", "u_park_radius_coverage") == pytest.approx(22.0)
    # R2 starts at y = 600: not served
    assert val(out, "unit", "U02", "u_park_radius_coverage") == pytest.approx(0.0)
    # P2 zone reaches down to y = 1998.5 - 300 = 1698.5: R3 served 1800 × 201.5 = 362,700 of 720,000
    assert val(out, "unit", "U03", "u_park_radius_coverage") == pytest.approx(100 * 362700 / 720000)
    assert val(out, "town", "T1", "u_park_radius_coverage") == pytest.approx(100 * 88000 / 640000)
    assert val(out, "district", "district", "u_park_radius_coverage") == pytest.approx(100 * 450700 / 1360000)


def test_park_service_coverage_config_table(residential, parks, units):
    # a study widens the small-park radius to 400 m: R3 served from y = 1598.5 → 1800 × 301.5
    classes = [{"class_code": "small", "min_area_m2": 2000, "max_area_m2": 5000, "radius_m": 400},
               {"class_code": "large", "min_area_m2": 5000, "max_area_m2": None, "radius_m": 500}]
    out = park_service_coverage(residential, parks, units, classes=pd.DataFrame(classes))
    assert val(out, "unit", "U03", "u_park_radius_coverage") == pytest.approx(100 * 1800 * 301.5 / 720000)
    with pytest.raises(ConfigError, match="radius_m"):
        park_service_coverage(residential, parks, units,
                              classes=pd.DataFrame([{"class_code": "x", "min_area_m2": 0, "radius_m": "far"}]))


def test_park_service_coverage_network(residential, units):
    d = pd.DataFrame({"park_service_ge5000": [450, 800, np.inf], "park_service_2000_5000": [np.inf, 250, 350]},
                     index=["R1", "R2", "R3"])
    out = park_service_coverage(residential, None, units, method="network", distances=d)
    # R1 ✓ (450 ≤ 500), R2 ✓ (250 ≤ 300), R3 ✗ (350 > 300): 640,000 / 1,360,000
    assert val(out, "unit", "U01", "u_park_radius_coverage") == 100.0
    assert val(out, "unit", "U03", "u_park_radius_coverage") == 0.0
    assert val(out, "district", "district", "u_park_radius_coverage") == pytest.approx(100 * 640000 / 1360000)


def test_park_green_per_capita(parks, units):
    out = area_per_capita(parks, units, code="u_park_green_pc")
    # U01 10,000 m² / 6,000; U02 10,000 / 4,000; U03 (3,000 + 1,000) / 10,000; district 24,000 / 20,000
    assert val(out, "unit", "U01", "u_park_green_pc") == pytest.approx(10000 / 6000)
    assert val(out, "unit", "U02", "u_park_green_pc") == pytest.approx(2.5)
    assert val(out, "unit", "U03", "u_park_green_pc") == pytest.approx(0.4)
    assert val(out, "town", "T1", "u_park_green_pc") == pytest.approx(2.0)
    assert val(out, "district", "district", "u_park_green_pc") == pytest.approx(1.2)


def test_sports_area_overlapping_polygons_count_once(units):
    sports = gpd.GeoDataFrame(geometry=[b(100, 100, 200, 200), b(150, 100, 250, 200)], crs=CRS)
    out = area_per_capita(sports, units, code="c_community_sports_area_pc")
    # union 150 × 100 = 15,000 m² in U01 (not 20,000)
    assert val(out, "unit", "U01", "c_community_sports_area_pc") == pytest.approx(15000 / 6000)
    assert val(out, "unit", "U02", "c_community_sports_area_pc") == 0.0


# ----------------------------------------------------------------------------- roads

@pytest.fixture
def roads():
    return gpd.GeoDataFrame({"road_id": ["r1", "r2", "r3", "r4"]}, geometry=[
        ln((0, 500), (2000, 500)),      # 1 km in U01, 1 km in U02
        ln((500, 0), (500, 2000)),      # 1 km in U01, 1 km in U03
        ln((0, 1500), (2000, 1500)),    # 2 km in U03
        ln((1500, 500), (1500, 1000)),  # 0.5 km in U02; T-junction at (1500, 500)
    ], crs=CRS)


def test_road_network_density(roads, units):
    out = road_network_density(roads, units)
    assert val(out, "unit", "U01", "u_road_network_density") == pytest.approx(2.0)   # 2 km / 1 km²
    assert val(out, "unit", "U02", "u_road_network_density") == pytest.approx(1.5)   # 1.5 km / 1 km²
    assert val(out, "unit", "U03", "u_road_network_density") == pytest.approx(1.5)   # 3 km / 2 km²
    assert val(out, "town", "T1", "u_road_network_density") == pytest.approx(1.75)   # 3.5 / 2
    assert val(out, "district", "district", "u_road_network_density") == pytest.approx(6.5 / 4)


def test_intersection_density(roads, units):
    out = intersection_density(roads, units)
    # junctions: (500,500) in U01 (degree 4), (1500,500) in U02 (3), (500,1500) in U03 (4)
    assert val(out, "unit", "U01", "g_intersection_density") == pytest.approx(1.0)
    assert val(out, "unit", "U02", "g_intersection_density") == pytest.approx(1.0)
    assert val(out, "unit", "U03", "g_intersection_density") == pytest.approx(0.5)
    assert val(out, "district", "district", "g_intersection_density") == pytest.approx(0.75)


# ----------------------------------------------------------------------------- buildings, compounds

def test_building_density_and_far(units):
    bld = gpd.GeoDataFrame({"building_id": ["B1", "B2", "B3"], "levels": [6, np.nan, np.nan],
                            "height": [np.nan, 30.0, np.nan]},
                           geometry=[b(100, 100, 200, 200), b(950, 800, 1050, 900), b(100, 1100, 300, 1200)], crs=CRS)
    with pytest.warns(RepairWarning, match="1 of 3"):
        out = building_indicators(bld, units)
    # U01: B1 10,000 m² × 6 + half of B2 5,000 m² × 10 (30 m / 3 m) = 15,000 m², 110,000 m² floor
    assert val(out, "unit", "U01", "g_building_density") == pytest.approx(1.5)
    assert val(out, "unit", "U01", "g_far") == pytest.approx(0.11)
    assert val(out, "unit", "U02", "g_far") == pytest.approx(0.05)
    # U03: B3 20,000 m² × 6 (default levels) over 2 km²
    assert val(out, "unit", "U03", "g_building_density") == pytest.approx(1.0)
    assert val(out, "unit", "U03", "g_far") == pytest.approx(0.06)
    assert val(out, "district", "district", "g_far") == pytest.approx(0.07)   # 280,000 / 4e6
    assert out.attrs["levels_assumed"] == 1


def test_old_compound_share(units):
    comp = gpd.GeoDataFrame({"compound_id": list("ABCDE"), "build_year": [1995, 2005, 1980, np.nan, 2010]},
                            geometry=[b(10, 10, 50, 50), b(60, 60, 90, 90), b(1100, 100, 1200, 200),
                                      b(100, 1100, 200, 1200), b(300, 1100, 400, 1200)], crs=CRS)
    with pytest.warns(RepairWarning, match="1 without build_year"):
        out = old_compound_share(comp, units)
    assert val(out, "unit", "U01", "g_old_compound_share") == pytest.approx(50.0)
    assert val(out, "unit", "U02", "g_old_compound_share") == pytest.approx(100.0)
    assert val(out, "unit", "U03", "g_old_compound_share") == pytest.approx(0.0)
    assert val(out, "town", "T1", "g_old_compound_share") == pytest.approx(200 / 3)
    assert val(out, "district", "district", "g_old_compound_share") == pytest.approx(50.0)
    assert out.attrs["unknown_year"] == 1
    with settings.temporary(old_compound_before_year=2008), warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        out = old_compound_share(comp, units)
    assert val(out, "district", "district", "g_old_compound_share") == pytest.approx(75.0)


# ----------------------------------------------------------------------------- points

def test_facilities_and_complaints_per_1000(units):
    fac = gpd.GeoDataFrame({"type": ["kindergarten", "kindergarten", "bus_stop"]},
                           geometry=[pt(100, 100), pt(100, 1500), pt(1500, 500)], crs=CRS)
    out = facilities_per_1000(fac, units)
    assert val(out, "unit", "U01", "per1000_kindergarten") == pytest.approx(1 / 6)
    assert val(out, "unit", "U02", "per1000_kindergarten") == 0.0
    assert val(out, "district", "district", "per1000_kindergarten") == pytest.approx(0.1)
    comp = gpd.GeoDataFrame({"category": ["噪音"] * 5},
                            geometry=[pt(10, 10), pt(20, 20), pt(30, 30), pt(1500, 10), pt(5000, 5000)], crs=CRS)
    out = points_per_1000(comp, units, code="g_complaint_rate")
    assert val(out, "unit", "U01", "g_complaint_rate") == pytest.approx(0.5)
    assert val(out, "unit", "U02", "g_complaint_rate") == pytest.approx(0.25)
    assert val(out, "district", "district", "g_complaint_rate") == pytest.approx(0.2)
    assert out.attrs["outside"] == 1


# ----------------------------------------------------------------------------- 2SFCA

@pytest.fixture
def fca_inputs():
    # demand = residents × 5 % (children): 200, 100, 200, 300, 200; two kindergartens K1 (100 places), K2 (60)
    od = sp.csr_matrix((np.array([200.0, 400.0, 250.0, 300.0, 100.0]),
                        (np.array([0, 1, 2, 2, 4]), np.array([0, 0, 0, 1, 1]))), shape=(5, 2))
    return np.array([200.0, 100.0, 200.0, 300.0, 200.0]), np.array([100.0, 60.0]), od


def test_two_step_fca_hand_computed(fca_inputs):
    demand, supply, od = fca_inputs
    a = two_step_fca(demand, supply, od, max_distance=300)
    # K1 catchment: H1 + H3 = 400 → 0.25; K2: H3 + H5 = 400 → 0.15 (H2 at 400 m is outside)
    assert a == pytest.approx([0.25, 0.0, 0.40, 0.0, 0.15])
    e = two_step_fca(demand, supply, od, max_distance=300, weights=e2sfca_weights(300))
    # weights: ≤100 m 1.0, ≤200 m 0.68, ≤300 m 0.22. K1: 200×0.68 + 200×0.22 = 180 → 100/180;
    # K2: 200×0.22 + 200×1.0 = 244 → 60/244
    r1, r2 = 100 / 180, 60 / 244
    assert e == pytest.approx([0.68 * r1, 0.0, 0.22 * r1 + 0.22 * r2, 0.0, r2])


def test_two_step_fca_explicit_zero_distance():
    od = sp.csr_matrix((np.array([0.0]), (np.array([0]), np.array([0]))), shape=(2, 1))
    assert od.nnz == 1
    assert two_step_fca(np.array([10.0, 10.0]), np.array([5.0]), od, max_distance=300) == pytest.approx([0.5, 0.0])


def test_two_step_fca_matches_pysal_access(fca_inputs):
    access = pytest.importorskip("access")
    from access import weights as aw

    demand, supply, od = fca_inputs
    coo = od.tocoo()
    cost = pd.DataFrame({"origin": coo.row, "dest": coo.col, "cost": coo.data})
    dem = pd.DataFrame({"demand": demand}, index=pd.Index(range(5), name="geoid"))
    sup = pd.DataFrame({"places": supply}, index=pd.Index(range(2), name="geoid"))
    A = access.Access(demand_df=dem, demand_index=True, demand_value="demand", supply_df=sup, supply_index=True,
                      supply_value="places", cost_df=cost, cost_origin="origin", cost_dest="dest", cost_name="cost")
    ref = A.two_stage_fca(name="2sfca", max_cost=300)["2sfca_places"].reindex(range(5)).fillna(0).to_numpy()
    assert two_step_fca(demand, supply, od, max_distance=300) == pytest.approx(ref)
    ref_e = A.enhanced_two_stage_fca(name="e2", max_cost=300, weight_fn=aw.step_fn({100: 1, 200: 0.68, 300: 0.22}))
    ref_e = ref_e["e2_places"].reindex(range(5)).fillna(0).to_numpy()
    assert two_step_fca(demand, supply, od, max_distance=300, weights=e2sfca_weights(300)) == pytest.approx(ref_e)


def test_fca_indicator_aggregation(fca_inputs, homes, units):
    _, supply, od = fca_inputs
    out = fca_indicator(homes, supply, od, units, facility_type="kindergarten", max_distance=300, demand_share=0.05)
    # places per 1,000 children: U01 (200×0.25)/300; U02 0.40; U03 (200×0.15)/500; district 160/1000
    assert val(out, "unit", "U01", "fca_kindergarten") == pytest.approx(1000 * 50 / 300)
    assert val(out, "unit", "U02", "fca_kindergarten") == pytest.approx(400.0)
    assert val(out, "unit", "U03", "fca_kindergarten") == pytest.approx(60.0)
    assert val(out, "town", "T1", "fca_kindergarten") == pytest.approx(260.0)
    assert val(out, "district", "district", "fca_kindergarten") == pytest.approx(160.0)


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.floats(1, 1000), min_size=3, max_size=8), st.lists(st.floats(1, 500), min_size=1, max_size=4),
       st.integers(0, 10_000))
def test_two_step_fca_conserves_supply(demand, supply, seed):
    # every facility reached by someone: Σ_i D_i A_i = Σ_j S_j (2SFCA distributes all supply)
    rng = np.random.default_rng(seed)
    d = rng.uniform(0, 300, size=(len(demand), len(supply)))
    d[0, :] = 10.0
    a = two_step_fca(np.array(demand), np.array(supply), sp.csr_matrix(d), max_distance=300)
    assert float(np.dot(demand, a)) == pytest.approx(sum(supply), rel=1e-9)


def test_two_step_fca_bad_shape(fca_inputs):
    demand, supply, od = fca_inputs
    with pytest.raises(LayerError, match="shape"):
        two_step_fca(demand[:3], supply, od, max_distance=300)


# ----------------------------------------------------------------------------- imagery, everything

def test_imagery_indicators(units):
    # geotijian.imagery output: % of imaged pixels, with the imaged share of each unit
    t = pd.DataFrame({"unit_id": ["U01", "U02", "U03"], "green_cover_ratio": [30.0, 10.0, 50.0],
                      "impervious_ratio": [60.0, 80.0, np.nan], "coverage_share": [1.0, 0.5, 1.0]})
    out = imagery_indicators(t, units)
    assert val(out, "unit", "U01", "g_green_cover_ratio") == pytest.approx(30.0)
    # imaged area: U01 1 km², U02 0.5 km², U03 2 km² → (30×1 + 10×0.5 + 50×2) / 3.5
    assert val(out, "district", "district", "g_green_cover_ratio") == pytest.approx(135 / 3.5)
    assert val(out, "town", "T1", "g_green_cover_ratio") == pytest.approx(35 / 1.5)
    # U03 without an impervious figure is left out: (60×1 + 80×0.5) / 1.5
    assert val(out, "district", "district", "g_impervious_ratio") == pytest.approx(100 / 1.5)
    assert np.isnan(val(out, "unit", "U03", "g_impervious_ratio"))
    with pytest.raises(LayerError, match="percentage"):
        imagery_indicators(t.assign(green_cover_ratio=[130.0, 10, 50]), units)
    with pytest.raises(LayerError, match="U09"):
        imagery_indicators(t.assign(unit_id=["U01", "U02", "U09"]), units)


def test_compute_indicators_all(units, homes, distances, parks, residential, roads, fca_inputs):
    _, supply, od = fca_inputs
    out = compute_indicators(units, homes=homes, distances=distances,
                             walk_distances={"kindergarten": 300, "bus_stop": 500, "metro_station": 800},
                             required_types=["kindergarten", "bus_stop"], residential=residential, parks=parks,
                             roads=roads, fca={"kindergarten": {"supply": supply, "od": od, "max_distance": 300,
                                                                "demand_share": 0.05}})
    assert list(out.columns) == ["level", "area_id", "code", "value"]
    assert not out.duplicated(["level", "area_id", "code"]).any()
    assert val(out, "district", "district", "cov_kindergarten") == pytest.approx(60.0)
    assert val(out, "district", "district", "d_15min_circle_attainment") == pytest.approx(60.0)
    assert val(out, "unit", "U01", "u_park_radius_coverage") == pytest.approx(22.0)
    assert val(out, "district", "district", "fca_kindergarten") == pytest.approx(160.0)
    assert list(out["level"].unique()) == ["unit", "town", "district"]
    codes = set(out["code"])
    assert set(indicator_catalogue()["code"]) >= codes
    again = compute_indicators(units, homes=homes, distances=distances,
                               walk_distances={"kindergarten": 300, "bus_stop": 500, "metro_station": 800},
                               required_types=["kindergarten", "bus_stop"], residential=residential, parks=parks,
                               roads=roads, fca={"kindergarten": {"supply": supply, "od": od, "max_distance": 300,
                                                                  "demand_share": 0.05}})
    pd.testing.assert_frame_equal(out, again)


@hsettings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 2), st.floats(0, 5000), st.floats(0, 1500)), min_size=1, max_size=30))
def test_coverage_district_is_population_weighted_not_averaged(rows):
    u = gpd.GeoDataFrame({"unit_id": ["U01", "U02", "U03"], "town_code": ["T1", "T1", "T2"],
                          "population": [1, 1, 1]},
                         geometry=[b(0, 0, 1000, 1000), b(1000, 0, 2000, 1000), b(0, 1000, 2000, 2000)], crs=CRS)
    homes = pd.DataFrame({"home_id": [f"H{i}" for i in range(len(rows))],
                          "unit_id": [f"U0{k + 1}" for k, _, _ in rows], "population": [p for _, p, _ in rows]})
    d = pd.DataFrame({"kindergarten": [x for _, _, x in rows]}, index=homes["home_id"])
    out = network_coverage(homes, d, u, walk_distances={"kindergarten": 300})
    pop = np.array([p for _, p, _ in rows])
    cov = np.array([x <= 300 for _, _, x in rows])
    dist = val(out, "district", "district", "cov_kindergarten")
    if pop.sum() > 0:
        assert dist == pytest.approx(100 * (pop * cov).sum() / pop.sum())
        assert 0.0 <= dist <= 100.0
    else:
        assert np.isnan(dist)


# ----------------------------------------------------------------------------- real data

def test_real_osm_roads_buildings_parks(osm_dir):
    """Tongji campus (Yangpu, Shanghai), real OSM: indicators on a 2 × 2 grid of 'units'."""
    pytest.importorskip("pyogrio")
    src = osm_dir / "shanghai_yangpu_tongji.osm"
    if not src.exists():
        pytest.skip(f"{src} is absent")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        lines = gpd.read_file(src, layer="lines", engine="pyogrio").to_crs(CRS)
        polys = gpd.read_file(src, layer="multipolygons", engine="pyogrio").to_crs(CRS)
    roads = lines[lines["highway"].isin(["primary", "secondary", "tertiary", "residential", "unclassified",
                                         "living_street"])]
    assert len(roads) > 20
    x0, y0, x1, y1 = gpd.GeoSeries(gpd.points_from_xy([121.4915, 121.5032], [31.2809, 31.2894]),
                                   crs=4326).to_crs(CRS).total_bounds
    xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
    grid = gpd.GeoDataFrame({"unit_id": ["SW", "SE", "NW", "NE"], "town_code": ["T"] * 4,
                             "population": [5000, 6000, 7000, 8000]},
                            geometry=[box(x0, y0, xm, ym), box(xm, y0, x1, ym), box(x0, ym, xm, y1),
                                      box(xm, ym, x1, y1)],
                            crs=CRS)
    dens = road_network_density(roads, grid)
    d = val(dens, "district", "district", "u_road_network_density")
    assert 3.0 < d < 60.0          # km per km² of a dense Shanghai campus area
    # the district value is length / area of the whole grid, not the mean of the four units
    total_km = float(roads.clip(box(x0, y0, x1, y1)).length.sum()) / 1000
    assert d == pytest.approx(total_km / (grid.area.sum() / 1e6), rel=1e-6)
    inter = intersection_density(roads, grid)
    assert val(inter, "district", "district", "g_intersection_density") > 5
    bld = polys[polys["building"].notna()]
    assert len(bld) > 100
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RepairWarning)
        bi = building_indicators(bld, grid)
    density = val(bi, "district", "district", "g_building_density")
    assert 5.0 < density < 60.0
    assert val(bi, "district", "district", "g_far") > density / 100   # ≥ 1 level everywhere
    parks = polys[polys["leisure"].isin(["park", "garden"])]
    res = polys[polys["landuse"] == "residential"]
    if len(parks) and len(res):
        cov = park_service_coverage(res, parks, grid)
        v = val(cov, "district", "district", "u_park_radius_coverage")
        assert 0.0 <= v <= 100.0


def test_compute_from_coverage_result_with_unassigned_home(units, homes, distances, fca_inputs):
    from types import SimpleNamespace

    per_home = homes.assign(unit_id=["U01", "U01", "U02", "U03", "<unassigned>"])
    for t in distances.columns:
        per_home[f"dist_{t}"] = distances[t].to_numpy()
    cov = SimpleNamespace(per_home=per_home, walk_distance_m={"kindergarten": 300.0, "bus_stop": 500.0,
                                                              "metro_station": 800.0})
    _, supply, od = fca_inputs
    with pytest.warns(RepairWarning, match="1 home"):
        out = compute_indicators(units, coverage=cov, required_types=["kindergarten"],
                                 fca={"kindergarten": {"supply": supply, "od": od, "max_distance": 300,
                                                       "demand_share": 0.05}})
    # H5 (4,000 residents, U03) is in no unit now: U03 = H4 only → 0 %; district 8,000 / 16,000
    assert val(out, "unit", "U03", "cov_kindergarten") == 0.0
    assert val(out, "district", "district", "cov_kindergarten") == pytest.approx(50.0)
    # H5 still takes K2 places in step 1 (K2 ratio 0.15): U02 unchanged at 400 per 1,000
    assert val(out, "unit", "U02", "fca_kindergarten") == pytest.approx(400.0)
    assert val(out, "district", "district", "fca_kindergarten") == pytest.approx(1000 * 130 / 800)


def test_road_classes_filter(roads, units):
    r = roads.assign(highway=["primary", "residential", "footway", "service"])
    out = road_network_density(r, units)
    # footway r3 and service r4 are not urban roads: U02 keeps 1 km of r1, U03 1 km of r2
    assert val(out, "unit", "U02", "u_road_network_density") == pytest.approx(1.0)
    assert val(out, "unit", "U03", "u_road_network_density") == pytest.approx(0.5)
    assert val(intersection_density(r, units), "district", "district", "g_intersection_density") == \
        pytest.approx(0.25)   # only (500, 500) remains
    assert val(road_network_density(r, units, classes=None), "unit", "U03", "u_road_network_density") == \
        pytest.approx(1.5)


def test_intersection_points_as_line_merge_union_node_unique():
    """intersection_points (lines merged only where merging can change them, segment ends from
    the vertex table, distinct keys by lexsort) equals the plain line_merge → union_all → node
    → get_point → np.unique(axis=0) pipeline, for lines with repeated points, rings,
    self-crossings and multi-lines."""
    import geopandas as gpd
    import shapely

    from geotijian.indicators.compute import intersection_points

    def reference(roads, min_degree=3, precision=0.01):
        segs = shapely.get_parts(shapely.node(shapely.union_all(shapely.line_merge(roads.geometry.values))))
        coords = np.concatenate([shapely.get_coordinates(shapely.get_point(segs, 0)),
                                 shapely.get_coordinates(shapely.get_point(segs, -1))])
        key = np.round(coords / precision).astype(np.int64)
        uniq, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
        first = np.zeros(len(uniq), dtype=np.int64)
        first[inv.ravel()[::-1]] = np.arange(len(inv))[::-1]
        keep = cnt >= min_degree
        return cnt[keep], coords[first[keep]]

    rng = np.random.default_rng(2)
    x0, y0 = 330_000.0, 3_470_000.0
    lines = list(shapely.linestrings(np.round(rng.uniform(0, 2000, (300, 3, 2)), 1) + [x0, y0]))
    lines += [shapely.LineString([(x0, y0), (x0, y0), (x0 + 500, y0 + 500)]),               # repeated point
              shapely.LineString([(x0, y0), (x0 + 900, y0), (x0 + 900, y0 + 900), (x0, y0)]),  # ring
              shapely.LineString([(x0, y0 + 100), (x0 + 800, y0 + 100), (x0 + 400, y0 + 600),
                                  (x0 + 400, y0 - 300)]),                                      # self-crossing
              shapely.MultiLineString([[(x0 + 1000, y0), (x0 + 1500, y0)], [(x0 + 1500, y0), (x0 + 1500, y0 + 700)]])]
    roads = gpd.GeoDataFrame(geometry=lines, crs="EPSG:32651")
    got = intersection_points(roads)
    deg, xy = reference(roads)
    assert len(deg) > 100
    np.testing.assert_array_equal(got["degree"].to_numpy(), deg)
    np.testing.assert_array_equal(shapely.get_coordinates(got.geometry.values), xy)
