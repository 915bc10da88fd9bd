"""The 2024 城区 / 街区 indicators computed from layers (geotijian.indicators.urban), against
hand counts on small synthetic districts."""

from __future__ import annotations

import math
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from geotijian.errors import ConfigError, LayerError, RepairWarning
from geotijian.indicators import compute_indicators, indicator_catalogue
from geotijian.indicators.urban import (
    facility_area_per_capita,
    fire_station_classes,
    fire_station_coverage,
    fuel_safety_distances,
    fuel_station_safety,
    greenway_coverage,
    middle_school_coverage,
    shelter_area_per_capita,
    urban_indicators,
)

CRS = "EPSG:32651"
X0, Y0 = 300000.0, 3470000.0


def B(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def P(x, y):
    return Point(X0 + x, Y0 + y)


def val(df, level, area, code):
    r = df[(df["level"] == level) & (df["area_id"] == area) & (df["code"] == code)]
    assert len(r) == 1, (level, area, code, len(r))
    return float(r["value"].iloc[0])


@pytest.fixture
def units():
    # two 1 km squares in two towns; 1,000 and 2,000 residents
    return gpd.GeoDataFrame({"unit_id": ["U01", "U02"], "town_code": ["T1", "T2"], "population": [1000, 2000]},
                            geometry=[B(0, 0, 1000, 1000), B(1000, 0, 2000, 1000)], crs=CRS)


def facilities(rows):
    ids, types, geoms, extra = [], [], [], {}
    for i, r in enumerate(rows):
        ids.append(r.get("facility_id", f"F{i + 1:02d}"))
        types.append(r["type"])
        geoms.append(r["geometry"])
        for k, v in r.items():
            if k not in ("facility_id", "type", "geometry"):
                extra.setdefault(k, [None] * len(rows))[i] = v
    return gpd.GeoDataFrame({"facility_id": ids, "type": types, **extra}, geometry=geoms, crs=CRS)


# ----------------------------------------------------------------------------- fire stations

def test_fire_station_classes_default_and_radius():
    t = fire_station_classes().set_index("station_class")
    assert t.loc["一级", "max_district_km2"] == 7.0
    # the radius of a circle of the district area (1,493 m for 7 km²)
    assert t.loc["一级", "radius_m"] == pytest.approx(math.sqrt(7e6 / math.pi), abs=0.5)
    assert t.loc["小型", "radius_m"] == pytest.approx(math.sqrt(2e6 / math.pi), abs=0.5)
    assert "建标152-2017" in t.loc["二级", "source"]
    custom = fire_station_classes(pd.DataFrame({"station_class": ["x"], "max_district_km2": ["1"], "radius_m": [""]}))
    assert custom["radius_m"].iloc[0] == pytest.approx(math.sqrt(1e6 / math.pi))
    with pytest.raises(ConfigError, match="max_district_km2"):
        fire_station_classes(pd.DataFrame({"station_class": ["x"], "max_district_km2": ["-3"]}))


def test_fire_station_coverage_hand_count(units):
    classes = pd.DataFrame({"station_class": ["一级"], "max_district_km2": ["7"], "radius_m": ["300"]})
    st = facilities([{"type": "fire_station", "geometry": P(500, 500), "station_class": "一级"}])
    out = fire_station_coverage(st, units, classes=classes)
    disc = math.pi * 300 ** 2   # fully inside U01; 128-gon area within 4e-4 of the circle
    assert val(out, "unit", "U01", "u_fire_station_coverage") == pytest.approx(disc / 1e6 * 100, rel=1e-3)
    assert val(out, "unit", "U02", "u_fire_station_coverage") == 0.0
    assert val(out, "district", "district", "u_fire_station_coverage") == pytest.approx(disc / 2e6 * 100, rel=1e-3)
    assert val(out, "town", "T1", "u_fire_station_coverage") == pytest.approx(disc / 1e6 * 100, rel=1e-3)
    # a station on the shared edge covers half a disc in each unit; land given explicitly
    st2 = facilities([{"type": "fire_station", "geometry": P(1000, 500)}])
    land = gpd.GeoDataFrame(geometry=[B(0, 0, 2000, 1000)], crs=CRS)
    with pytest.warns(RepairWarning, match="without station_class; assumed 一级"):
        out2 = fire_station_coverage(st2, units, classes=classes, land=land)
    assert val(out2, "unit", "U01", "u_fire_station_coverage") == pytest.approx(disc / 2 / 1e6 * 100, rel=1e-3)
    assert val(out2, "district", "district", "u_fire_station_coverage") == pytest.approx(disc / 2e6 * 100, rel=1e-3)
    with pytest.raises(LayerError, match="station_class '五级' is unknown"):
        fire_station_coverage(facilities([{"type": "fire_station", "geometry": P(1, 1), "station_class": "五级"}]),
                              units)


# ----------------------------------------------------------------------------- shelters, sports, culture

def test_shelter_area_per_capita(units):
    sh = facilities([{"type": "emergency_shelter", "geometry": P(100, 100), "area_m2": 2000.0},
                     {"type": "emergency_shelter", "geometry": B(1100, 100, 1150, 140)}])   # polygon: 2,000 m²
    out = shelter_area_per_capita(sh, units)
    assert val(out, "unit", "U01", "u_shelter_area_pc") == pytest.approx(2.0)
    assert val(out, "unit", "U02", "u_shelter_area_pc") == pytest.approx(1.0)
    assert val(out, "district", "district", "u_shelter_area_pc") == pytest.approx(4000 / 3000)
    # a point without its effective area: not computed (a partial sum would understate it)
    sh2 = facilities([{"type": "emergency_shelter", "geometry": P(100, 100), "area_m2": 2000.0},
                      {"type": "emergency_shelter", "geometry": P(1500, 500)}])
    out2 = shelter_area_per_capita(sh2, units)
    assert len(out2) == 0 and "1 of 2 facilities" in out2.attrs["not_computed"]
    with pytest.raises(LayerError, match="area_m2 -5 is negative"):
        shelter_area_per_capita(facilities([{"type": "emergency_shelter", "geometry": P(1, 1), "area_m2": -5.0}]),
                                units)


def test_sports_and_culture_area(units):
    f = facilities([{"type": "small_sports_ground", "geometry": B(10, 10, 40, 30)},            # 600 m²
                    {"type": "outdoor_fitness_ground", "geometry": P(1500, 500), "area_m2": 400.0},
                    {"type": "cultural_activity_station", "geometry": B(100, 100, 120, 120), "floor_area_m2": 500.0},
                    {"type": "cultural_activity_station", "geometry": P(1200, 300), "floor_area_m2": 300.0}])
    sports = facility_area_per_capita(f, units, types=("small_sports_ground", "outdoor_fitness_ground"),
                                      code="u_sports_area_pc")
    assert val(sports, "unit", "U01", "u_sports_area_pc") == pytest.approx(0.6)
    assert val(sports, "unit", "U02", "u_sports_area_pc") == pytest.approx(0.2)
    assert val(sports, "district", "district", "u_sports_area_pc") == pytest.approx(1000 / 3000)
    culture = urban_indicators(units, facilities=f)
    assert val(culture, "district", "district", "u_culture_area_pc") == pytest.approx(800 / 3000)
    # a footprint is not a floor area: a cultural polygon without floor_area_m2 → not computed
    f2 = f.copy()
    f2.loc[2, "floor_area_m2"] = np.nan
    out = urban_indicators(units, facilities=f2)
    assert "u_culture_area_pc" not in set(out["code"])
    assert "have no floor_area_m2" in out.attrs["not_computed"]["u_culture_area_pc"]


# ----------------------------------------------------------------------------- fuel stations

def test_fuel_safety_distances_table():
    t = fuel_safety_distances()
    lim = {(c, r): d for c, r, d in zip(t["station_class"], t["receptor"], t["distance_m"], strict=True)}
    assert lim[("一级", "school")] == 50 and lim[("三级", "home")] == 10
    assert t["confidence"].str.contains("confirmed").all()   # partially / unconfirmed: stated per row
    with pytest.raises(ConfigError, match="receptor"):
        fuel_safety_distances(pd.DataFrame({"station_class": ["一级"], "receptor": ["hospital"], "distance_m": [1]}))


def test_fuel_station_safety_hand_count(units):
    homes = gpd.GeoDataFrame({"building_id": ["H1", "H2"]},
                             geometry=[B(100, 100, 120, 120), B(1500, 100, 1520, 120)], crs=CRS)
    schools = facilities([{"facility_id": "S1", "type": "primary_school", "geometry": B(300, 500, 400, 600)}])
    st = facilities([
        {"facility_id": "G1", "type": "fuel_station", "geometry": P(128, 110), "station_class": "三级"},   # 8 m < 10
        {"facility_id": "G2", "type": "fuel_station", "geometry": P(350, 460), "station_class": "一级"},   # school 40 m < 50
        {"facility_id": "G3", "type": "fuel_station", "geometry": P(1500, 900), "station_class": "二级"},  # far: meets
        {"facility_id": "G4", "type": "fuel_station", "geometry": P(1532, 110), "station_class": "二级"},  # 12 m = limit
    ])
    out = fuel_station_safety(st, units, homes=homes, schools=schools)
    assert val(out, "unit", "U01", "u_fuel_station_safety") == 2.0
    assert val(out, "unit", "U02", "u_fuel_station_safety") == 0.0
    assert val(out, "district", "district", "u_fuel_station_safety") == 2.0
    s = out.attrs["stations"].set_index("facility_id")
    assert s.loc["G1", "home_distance_m"] == pytest.approx(8.0) and s.loc["G1", "nearest_home"] == "H1"
    assert s.loc["G2", "school_distance_m"] == pytest.approx(40.0) and s.loc["G2", "nearest_school"] == "S1"
    assert not s.loc["G1", "meets"] and not s.loc["G2", "meets"] and s.loc["G3", "meets"] and s.loc["G4", "meets"]
    assert s.loc["G4", "home_limit_m"] == 12.0
    # stricter homes limit from the study's own table
    table = fuel_safety_distances().assign(distance_m=lambda t: np.where(t["receptor"] == "home", 13, t["distance_m"]))
    out2 = fuel_station_safety(st, units, homes=homes, schools=schools, distances=table)
    assert val(out2, "unit", "U02", "u_fuel_station_safety") == 1.0


# ----------------------------------------------------------------------------- greenways

def test_greenway_coverage_hand_count(units):
    residential = gpd.GeoDataFrame({"compound_id": ["A", "B", "C"]},
                                   geometry=[B(100, 100, 200, 200), B(950, 400, 1050, 500), B(1500, 100, 1600, 200)],
                                   crs=CRS)
    gw = gpd.GeoDataFrame(geometry=[LineString([(X0, Y0), (X0, Y0 + 1000)])], crs=CRS)
    out = greenway_coverage(gw, residential, units)
    # U01: A (10,000 m²) and B's western half (5,000 m²) lie within 1 km; U02: none of its 15,000 m²
    assert val(out, "unit", "U01", "u_greenway_coverage") == pytest.approx(100.0)
    assert val(out, "unit", "U02", "u_greenway_coverage") == pytest.approx(0.0, abs=1e-9)
    assert val(out, "district", "district", "u_greenway_coverage") == pytest.approx(50.0)


# ----------------------------------------------------------------------------- middle schools

def test_middle_school_coverage(units):
    homes = pd.DataFrame({"home_id": ["h1", "h2", "h3"], "unit_id": ["U01", "U01", "U02"],
                          "population": [300.0, 700.0, 2000.0]})
    dist = pd.DataFrame({"junior_middle_school": [999.0, 1001.0, np.inf]}, index=pd.Index(["h1", "h2", "h3"]))
    out = middle_school_coverage(homes, dist, units)
    assert val(out, "unit", "U01", "d_middle_school_coverage") == pytest.approx(30.0)
    assert val(out, "district", "district", "d_middle_school_coverage") == pytest.approx(10.0)


def test_compute_indicators_reports_what_it_could_not_compute(units):
    f = facilities([{"type": "fire_station", "geometry": P(500, 500), "station_class": "一级"}])
    out = compute_indicators(units, facilities=f)
    assert "u_fire_station_coverage" in set(out["code"])
    reasons = out.attrs["not_computed"]
    assert reasons["u_fuel_station_safety"] == "no facility of type fuel_station"
    assert reasons["u_greenway_coverage"] == "no greenways layer"
    # every computed code is in the default (2024) edition
    assert set(out["code"]) <= set(indicator_catalogue()["code"])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert val(out, "unit", "U01", "u_fire_station_coverage") == pytest.approx(100.0)   # 1,493 m covers U01
