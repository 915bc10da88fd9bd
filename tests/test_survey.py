"""Survey sample plan, survey reading, hotline rates and hot spots."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import Point, box

from geotijian import settings
from geotijian.errors import ConfigError, LayerError
from geotijian.indicators import SURVEY_ITEMS as CAT_ITEMS
from geotijian.survey import (
    SURVEY_ITEMS,
    SurveyWarning,
    complaint_hotspots,
    complaint_rates,
    plan_sample,
    read_survey,
)

CRS = "EPSG:32651"
X0, Y0 = 300000.0, 3460000.0


def b(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


@pytest.fixture
def units():
    return gpd.GeoDataFrame({"unit_id": ["U01", "U02", "U03"], "town_code": ["T1", "T1", "T2"],
                             "population": [6000, 4000, 10000], "committees": ["C1", "C2", "C3,C4"]},
                            geometry=[b(0, 0, 1000, 1000), b(1000, 0, 2000, 1000), b(0, 1000, 2000, 2000)], crs=CRS)


def lonlat(x, y):
    """WGS84 lon/lat of a fixture point (x, y metres from the origin)."""
    p = gpd.GeoSeries([Point(X0 + x, Y0 + y)], crs=CRS).to_crs(4326).iloc[0]
    return p.x, p.y


def test_survey_items_agree_with_catalogue():
    assert SURVEY_ITEMS == CAT_ITEMS


# ----------------------------------------------------------------------------- plan

def _units(pops):
    return pd.DataFrame({"unit_id": [f"U{i}" for i in range(len(pops))], "town_code": "T",
                         "population": pops})


@pytest.mark.parametrize("pop,pilot,by_rate,required,target_max", [
    (4000, False, 8, 8, np.nan),       # 2‰ of 4,000 = 8 (not 9: float 8.000000000000002)
    (4000, True, 8, 50, 100),          # pilot floor 50
    (24_999, True, 50, 50, 100),       # 49.998 → 50
    (25_000, True, 50, 50, 100),       # 2‰ = 50 exactly
    (50_000, True, 100, 100, 100),     # 2‰ = pilot maximum
    (50_001, True, 101, 101, 101),     # 100.002 → 101: the 2‰ floor governs above 100
    (60_000, True, 120, 120, 120),     # 2‰ = 120 > 100
    (60_000, False, 120, 120, np.nan),
    (0, True, 0, 50, 100),
])
def test_plan_sample_edges(pop, pilot, by_rate, required, target_max):
    plan = plan_sample(_units([pop]), pilot=pilot)
    row = plan[plan["level"] == "unit"].iloc[0]
    assert row["by_rate"] == by_rate
    assert row["required"] == required
    if np.isnan(target_max):
        assert np.isnan(row["target_max"])
    else:
        assert row["target_max"] == target_max
    assert row["min_age"] == 16


def test_plan_sample_rules_text_and_towns():
    plan = plan_sample(pd.DataFrame({"unit_id": ["A", "B", "C"], "town_code": ["T1", "T1", "T2"],
                                     "population": [4000, 60000, 9000]}), pilot=["A", "B"])
    u = plan[plan["level"] == "unit"].set_index("area_id")
    assert u.loc["A", "rule"] == "pilot minimum 50"
    assert "above the pilot range" in u.loc["B", "rule"]
    assert u.loc["C", "required"] == 18 and not u.loc["C", "pilot"]
    t = plan[plan["level"] == "town"].set_index("area_id")
    # T1: 2‰ of 64,000 = 128 < 50 + 120 = 170
    assert t.loc["T1", "by_rate"] == 128 and t.loc["T1", "required"] == 170
    d = plan[plan["level"] == "district"].iloc[0]
    assert d["required"] == 188 and d["population"] == 73000
    with pytest.raises(ConfigError, match="Z9"):
        plan_sample(_units([5000]), pilot=["Z9"])
    with settings.temporary(survey_sample_rate=0.003):
        assert plan_sample(_units([4000]))["required"].iloc[0] == 12


# ----------------------------------------------------------------------------- survey

def _survey(units):
    rows = []
    # U01: three adults (one outside any unit but with committee C1), U02: one adult, U03: one adult
    pts = {"r1": (100, 100), "r2": (200, 300), "r3": (1500, 500), "r4": (500, 1500), "r5": (9000, 9000),
           "r6": (300, 300), "r7": (9000, 9000), "r8": (400, 400), "r9": (9000, 9000)}
    spec = [("r1", 30, "C1", 4), ("r2", 45, "C1", 2), ("r3", 60, "C2", 5), ("r4", 16, "C3", 3),
            ("r5", 50, "C1", 5), ("r6", 15, "C1", 1), ("r7", 40, "C99", 4), ("r8", "", "C1", 3),
            ("r9", 35, "C3", 4)]
    for rid, age, com, score in spec:
        lon, lat = lonlat(*pts[rid])
        row = {"respondent_id": rid, "age": age, "sex": "女", "committee_id": com, "lon": lon, "lat": lat,
               "comment": ""}
        row.update(dict.fromkeys(SURVEY_ITEMS, score))
        rows.append(row)
    df = pd.DataFrame(rows)
    df.loc[df["respondent_id"] == "r3", "sat_smart"] = 7   # out of range → answer ignored
    return df


def test_read_survey(units, tmp_path):
    p = tmp_path / "survey.csv"
    _survey(units).to_csv(p, index=False, encoding="utf-8-sig")
    with pytest.warns(SurveyWarning, match="excluded"):
        res = read_survey(p, units=units, pilot=True)
    r = res.respondents.set_index("respondent_id")
    assert sorted(r.index) == ["r1", "r2", "r3", "r4", "r5", "r9"]
    assert r.loc["r5", "unit_id"] == "U01" and r.loc["r5", "located_by"] == "committee"
    assert r.loc["r4", "unit_id"] == "U03" and r.loc["r4", "located_by"] == "point"   # 16 is counted
    assert res.excluded_under_age == 1
    iss = res.issues.set_index("respondent_id")
    assert iss.loc["r6", "issue"] == "under 16" and iss.loc["r6", "action"] == "excluded"
    assert "unknown committee_id 'C99'" in iss.loc["r7", "issue"]
    assert "age missing" in iss.loc["r8", "issue"]
    assert "spans units" not in "".join(iss["issue"])
    assert iss.loc["r9", "action"] == "located by committee"   # outside, C3 → U03
    assert ("r3", "answer ignored") in set(zip(res.issues["respondent_id"], res.issues["action"], strict=True))
    assert int(iss.loc["r6", "row"]) == 7  # spreadsheet row (header = 1)
    s = res.satisfaction.set_index(["level", "area_id", "item"])
    # U01: r1 4, r2 2, r5 5 → mean 11/3; satisfied (≥ 4) 2 of 3
    assert s.loc[("unit", "U01", "sat_livable"), "mean_score"] == pytest.approx(11 / 3)
    assert s.loc[("unit", "U01", "sat_livable"), "satisfied_pct"] == pytest.approx(200 / 3)
    assert s.loc[("unit", "U01", "sat_livable"), "n"] == 3
    assert s.loc[("unit", "U01", "sat_livable"), "required"] == 50
    assert s.loc[("unit", "U01", "sat_livable"), "below_plan"]
    assert s.loc[("unit", "U02", "sat_smart"), "n"] == 0        # r3's 7 ignored
    assert np.isnan(s.loc[("unit", "U02", "sat_smart"), "mean_score"])
    # district: r1..r5 + r9 = 4, 2, 5, 3, 5, 4 → 23/6
    assert s.loc[("district", "district", "sat_safety"), "mean_score"] == pytest.approx(23 / 6)
    assert s.loc[("town", "T1", "sat_green"), "n"] == 4
    assert set(res.satisfaction["dimension"]) == {d for d, _ in SURVEY_ITEMS.values()}
    iv = res.indicator_values()
    assert set(iv["code"]) >= {"s_sat_livable", "s_satisfaction"}


def test_read_survey_committee_split_across_units(units):
    u = units.assign(committees=["C1", "C1", "C3"])
    df = _survey(units).iloc[[4]]  # r5: outside, committee C1 (now in U01 and U02)
    with pytest.warns(SurveyWarning):
        res = read_survey(df, units=u)
    assert len(res.respondents) == 0
    assert "spans units U01, U02" in res.issues["issue"].iloc[0]


def test_read_survey_missing_columns(units):
    with pytest.raises(LayerError, match="sat_smart"):
        read_survey(_survey(units).drop(columns="sat_smart"), units=units)


def test_read_survey_excel(units, tmp_path):
    p = tmp_path / "survey.xlsx"
    _survey(units).iloc[:4].to_excel(p, index=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SurveyWarning)
        res = read_survey(p, units=units)
    assert len(res.respondents) == 4


# ----------------------------------------------------------------------------- hotline

@pytest.fixture
def complaints():
    pts = [(10, 10), (20, 20), (30, 30), (1500, 10), (500, 1500), (5000, 5000)]
    cats = ["噪音", "噪音", "停车", "停车", "噪音", "噪音"]
    return gpd.GeoDataFrame({"complaint_id": [f"H{i}" for i in range(6)], "category": cats},
                            geometry=[Point(X0 + x, Y0 + y) for x, y in pts], crs=CRS)


def test_complaint_rates(complaints, units):
    with pytest.warns(SurveyWarning, match="1 point"):
        r = complaint_rates(complaints, units)
    s = r.set_index(["level", "area_id", "category"])
    assert s.loc[("unit", "U01", "全部"), "count"] == 3
    assert s.loc[("unit", "U01", "全部"), "rate_per_1000"] == pytest.approx(0.5)
    assert s.loc[("unit", "U01", "噪音"), "count"] == 2
    assert s.loc[("unit", "U02", "噪音"), "count"] == 0
    assert s.loc[("town", "T1", "停车"), "rate_per_1000"] == pytest.approx(0.2)   # 2 / 10,000
    assert s.loc[("district", "district", "全部"), "count"] == 5
    assert list(r.attrs["outside"]["complaint_id"]) == ["H5"]


def test_complaint_hotspots_cluster_is_significant_and_deterministic():
    rng = np.random.default_rng(1)
    # background: one complaint in each of 100 cells of a 10 × 10 grid of 250 m; a cluster of 40 in one cell
    xs, ys = np.meshgrid(np.arange(10) * 250 + 125, np.arange(10) * 250 + 125)
    bg = np.column_stack([xs.ravel(), ys.ravel()])
    cluster = np.array([1125.0, 1125.0]) + rng.uniform(-100, 100, size=(40, 2))
    pts = np.vstack([bg, cluster, [[-5000.0, -5000.0]]])
    gdf = gpd.GeoDataFrame({"category": ["噪音"] * len(pts)},
                           geometry=[Point(X0 + x, Y0 + y) for x, y in pts], crs=CRS)
    area = gpd.GeoDataFrame(geometry=[b(0, 0, 2500, 2500)], crs=CRS)
    with pytest.warns(SurveyWarning, match="outside the study area"):
        h1 = complaint_hotspots(gdf, area=area)
    with pytest.warns(SurveyWarning):
        h2 = complaint_hotspots(gdf, area=area)
    pd.testing.assert_frame_equal(pd.DataFrame(h1.drop(columns="geometry")),
                                  pd.DataFrame(h2.drop(columns="geometry")))
    assert list(h1.columns) == ["cell_id", "category", "count", "z_score", "p_value", "significant", "geometry"]
    allc = h1[h1["category"] == "全部"].set_index("cell_id")
    assert allc.loc["G0004_0004", "count"] == 41
    assert allc.loc["G0004_0004", "significant"]
    assert allc["count"].sum() == 140               # the outside point is not gridded
    assert not allc.loc["G0000_0000", "significant"]
    assert len(h1.attrs["outside"]) == 1
    assert set(h1["category"]) == {"全部", "噪音"}


def test_read_survey_unit_id_column_unknown_ids_reported(units):
    df = _survey(units).iloc[:3].copy()
    df["unit_id"] = ["U02", "U77", None]    # r1 given U02 (wins over its point in U01); r2 unknown → point
    with pytest.warns(SurveyWarning):
        res = read_survey(df.assign(age=[30, 40, 50]), units=units)
    r = res.respondents.set_index("respondent_id")
    assert (r.loc["r1", "unit_id"], r.loc["r1", "located_by"]) == ("U02", "unit_id")
    assert (r.loc["r2", "unit_id"], r.loc["r2", "located_by"]) == ("U01", "point")
    iss = res.issues.set_index("respondent_id")
    assert iss.loc["r2", "issue"] == "unknown unit_id 'U77'" and iss.loc["r2", "action"] == "unit_id ignored"


def test_complaint_hotspots_permutation_mode_is_seeded():
    rng = np.random.default_rng(7)
    pts = np.vstack([rng.uniform(0, 2500, size=(200, 2)), np.array([1125.0, 1125.0]) + rng.uniform(-300, 300, (80, 2))])
    gdf = gpd.GeoDataFrame({"category": np.where(np.arange(len(pts)) % 2, "噪音", "停车")},
                           geometry=[Point(X0 + x, Y0 + y) for x, y in pts], crs=CRS)
    a = complaint_hotspots(gdf, permutations=99, seed=3, fdr=False)
    b_ = complaint_hotspots(gdf, permutations=99, seed=3, fdr=False)
    pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b_.drop(columns="geometry")))
    assert set(a["category"]) == {"全部", "噪音", "停车"}
    hot = a[(a["category"] == "全部") & a["significant"]]
    assert len(hot) > 0
    # every hot cell lies near the cluster centre (within ~2 cells of (1125, 1125))
    c = shapely.get_coordinates(shapely.centroid(hot.geometry.values)) - [X0 + 1125, Y0 + 1125]
    assert np.all(np.abs(c) <= 625)
    assert "99 conditional permutations, seed 3" in a.attrs["method"]


@pytest.mark.parametrize("shape", [(1, 7), (6, 1), (9, 13), (40, 31)])
def test_gi_star_lattice_equals_esda_bit_for_bit(shape):
    """The hot-spot z-scores (numpy, no weights object) are esda's G_Local Zs exactly."""
    from esda.getisord import G_Local
    from libpysal.weights import lat2W
    from scipy.special import ndtr
    from scipy.stats import norm

    from geotijian.survey import _gi_star_lattice_z

    nrow, ncol = shape
    rng = np.random.default_rng(nrow * 100 + ncol)
    for y in (rng.poisson(0.7, nrow * ncol).astype(float), rng.poisson(30, nrow * ncol).astype(float)):
        if np.all(y == y[0]):
            y[0] += 1.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = G_Local(y, lat2W(nrow, ncol, rook=False), transform="B", permutations=0, star=True).Zs
            z = _gi_star_lattice_z(y, nrow, ncol)
        np.testing.assert_array_equal(z, ref)
        np.testing.assert_array_equal(2.0 * norm.sf(np.abs(z)), 2.0 * ndtr(-np.abs(z)))
