"""Judgement, problem classes (each rule branch, overrides), 一表三清单 writers and the ledger."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from shapely.geometry import Polygon, box

from geotijian.assess import (
    STRENGTH_COLUMNS,
    SUGGESTION_COLUMNS,
    TABLE_COLUMNS,
    build_tables,
    classify_problems,
    indicator_table,
    judge,
    read_ledger,
    rule_table,
    suggestion_templates,
    update_ledger,
    write_ledger,
    write_tables,
)
from geotijian.errors import ConfigError, LayerError
from geotijian.indicators import indicator_catalogue
from geotijian.model import LEDGER_COLUMNS, PROBLEM_CLASSES, PROBLEM_COLUMNS

CRS = "EPSG:32651"
X0, Y0 = 300000.0, 3460000.0


def b(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


@pytest.fixture(scope="module")
def cat():
    return indicator_catalogue(edition="2023")   # judgement tests use 2023 codes (c_kindergarten_gap)


@pytest.fixture
def units():
    return gpd.GeoDataFrame({"unit_id": ["U01", "U02", "U03"], "town_code": ["T1", "T1", "T2"],
                             "town_name": ["一镇", "一镇", "二镇"], "population": [6000, 4000, 10000]},
                            geometry=[b(0, 0, 1000, 1000), b(1000, 0, 2000, 1000), b(0, 1000, 2000, 2000)], crs=CRS)


def V(rows):
    return pd.DataFrame(rows, columns=["level", "area_id", "code", "value"])


# ----------------------------------------------------------------------------- judge

def test_judge_operators_and_gap(cat):
    j = judge(V([
        ("unit", "U01", "u_park_green_pc", 8.0),        # > 8.0: equal is short, gap 0
        ("unit", "U02", "u_park_green_pc", 9.5),        # meets, gap -1.5 (margin)
        ("unit", "U01", "u_sewage_collection", 70.0),   # >= 70: equal meets
        ("unit", "U01", "h_gas_risk", 3.0),             # <= 0 (lower better): short by 3
        ("unit", "U02", "h_gas_risk", 0.0),             # meets
        ("unit", "U01", "u_cluster_size", 60.0),        # <= 50: short by 10
        ("unit", "U01", "g_far", 1.5),                  # no reference
        ("unit", "U03", "u_park_radius_coverage", np.nan),  # no value
    ]), cat)
    assert list(j["judgement"]) == ["falls_short", "meets", "meets", "falls_short", "meets", "falls_short",
                                    "no_reference", "no_value"]
    assert j["gap"].tolist()[:6] == pytest.approx([0.0, -1.5, 0.0, 3.0, 0.0, 10.0])
    assert np.isnan(j["gap"].iloc[6]) and np.isnan(j["gap"].iloc[7])
    assert list(j["reference"][:4]) == [">8", ">8", "≥70", "≤0"]


def test_judge_unknown_code(cat):
    with pytest.raises(LayerError, match="h_gass_risk"):
        judge(V([("unit", "U01", "h_gass_risk", 1.0)]), cat)


def test_indicator_table_contract(cat, units):
    t = indicator_table(V([("district", "district", "u_park_green_pc", 9.0), ("unit", "U02", "g_far", 1.0),
                           ("town", "T1", "u_park_green_pc", 7.0), ("unit", "U01", "g_far", 2.0)]), cat,
                        areas=units, district_name="嘉定区")
    assert list(t.columns) == TABLE_COLUMNS
    assert list(zip(t["level"], t["area_id"])) == [("unit", "U01"), ("unit", "U02"), ("town", "T1"),
                                                   ("district", "district")]
    assert list(t["area_name"]) == ["U01", "U02", "一镇", "嘉定区"]


# ----------------------------------------------------------------------------- rules

@pytest.fixture
def shortfalls():
    return V([
        ("unit", "U01", "h_gas_risk", 2.0),                 # R10 safety (安全韧性)
        ("unit", "U01", "cov_community_health_centre", 50.0),  # R20 health
        ("unit", "U02", "cov_kindergarten", 70.0),          # R30: U02 多元共享 satisfaction 2.5 < 3.0
        ("unit", "U03", "cov_elderly_day_care", 80.0),      # R40: U03 complaint rate 3 × district
        ("unit", "U01", "u_road_network_density", 5.0),     # R50 structural
        ("unit", "U01", "cov_kindergarten", 77.0),          # R60 facility
        ("town", "T1", "c_kindergarten_gap", 1.0),          # R60 facility (c_*)
        ("unit", "U01", "s_sat_livable", 2.0),              # R99 default (needs a reference: override below)
    ])


@pytest.fixture
def satisfaction():
    return pd.DataFrame({"level": ["unit", "unit", "unit"], "area_id": ["U02", "U01", "U03"],
                         "dimension": ["多元共享", "多元共享", "多元共享"], "mean_score": [2.5, 3.5, np.nan]})


@pytest.fixture
def complaints():
    return pd.DataFrame({"level": ["unit", "unit", "unit", "district"], "area_id": ["U01", "U02", "U03", "district"],
                         "category": ["全部"] * 4, "rate_per_1000": [1.0, 1.0, 6.0, 2.0]})


def test_each_rule_branch(cat, units, shortfalls, satisfaction, complaints):
    cat2 = indicator_catalogue({"reference": {"s_sat_livable": 3.5}}, edition="2023")
    t = indicator_table(shortfalls, cat2, areas=units)
    p = classify_problems(t, catalogue=cat2, areas=units, satisfaction=satisfaction, complaints=complaints,
                          full=True).set_index("problem_id")
    expected = {
        "h_gas_risk@U01": ("限时解决", "R10_safety"),
        "cov_community_health_centre@U01": ("限时解决", "R20_health"),
        "cov_kindergarten@U02": ("限时解决", "R30_satisfaction"),
        "cov_elderly_day_care@U03": ("限时解决", "R40_hotline"),
        "u_road_network_density@U01": ("长期谋划", "R50_structural"),
        "cov_kindergarten@U01": ("尽力解决", "R60_facility"),
        "c_kindergarten_gap@T1": ("尽力解决", "R60_facility"),
        "s_sat_livable@U01": ("尽力解决", "R99_default"),
    }
    assert set(p.index) == set(expected)
    for pid, (cls, rid) in expected.items():
        assert (p.loc[pid, "problem_class"], p.loc[pid, "rule_id"]) == (cls, rid), pid
    assert set(p["problem_class"]) <= set(PROBLEM_CLASSES)
    # without survey and hotline, the two complaint-driven problems fall through to R60
    q = classify_problems(t, catalogue=cat2, areas=units, full=True).set_index("problem_id")
    assert q.loc["cov_kindergarten@U02", "rule_id"] == "R60_facility"
    assert q.loc["cov_elderly_day_care@U03", "rule_id"] == "R60_facility"


def test_problem_contract_and_suggestion(cat, units):
    t = indicator_table(V([("unit", "U03", "cov_kindergarten", 77.0), ("unit", "U01", "cov_kindergarten", 100.0)]),
                        cat, areas=units)
    p = classify_problems(t, catalogue=cat, areas=units)
    assert isinstance(p, gpd.GeoDataFrame) and p.crs == units.crs
    assert list(p.columns) == PROBLEM_COLUMNS + ["geometry"]
    row = p.iloc[0]
    assert row["problem_id"] == "cov_kindergarten@U03"
    assert row["affected_population"] == 2300          # 10,000 × (100 − 77) %
    assert row["suggestion"] == "在U03新增幼儿园或托育点，覆盖未达标居民约2,300人"
    assert row["geometry"].equals(units.geometry.iloc[2])
    # without areas: no geometry, residents unknown
    p2 = classify_problems(t, catalogue=cat)
    assert list(p2.columns) == PROBLEM_COLUMNS and np.isnan(p2["affected_population"].iloc[0])


def test_rule_overrides(cat, units, shortfalls, satisfaction, complaints, tmp_path):
    t = indicator_table(shortfalls.iloc[:6], cat, areas=units)
    # lower the satisfaction threshold: U02 (2.5) no longer triggers R30
    p = classify_problems(t, catalogue=cat, areas=units, satisfaction=satisfaction, complaints=complaints,
                          rules=[{"rule_id": "R30_satisfaction", "threshold": 2.0}], full=True).set_index("problem_id")
    assert p.loc["cov_kindergarten@U02", "rule_id"] == "R60_facility"
    # disable the hotline rule; add an absolute complaint rule and a severe-gap rule from a TOML file
    f = tmp_path / "rules.toml"
    f.write_text('[rules.R40_hotline]\nenabled = false\n'
                 '[rules.R35_rate]\norder = 35\nproblem_class = "限时解决"\ncondition = "complaint_rate_above"\n'
                 'threshold = 5.5\nreason_zh = "投诉率高"\n'
                 '[rules.R55_gap]\norder = 55\nproblem_class = "限时解决"\ncodes = "cov_*"\n'
                 'condition = "gap_share_above"\nthreshold = 0.4\nreason_zh = "严重缺口"\n', encoding="utf-8")
    p = classify_problems(t, catalogue=cat, areas=units, complaints=complaints, rules=f, full=True) \
        .set_index("problem_id")
    assert "R40_hotline" not in set(rule_table(f)["rule_id"])
    assert p.loc["cov_elderly_day_care@U03", "rule_id"] == "R35_rate"      # 6.0 > 5.5
    assert p.loc["cov_community_health_centre@U01", "rule_id"] == "R20_health"  # earlier rule wins
    # gap share: health station handled by R20; kindergarten U01 gap 23/100 < 0.4 → R60
    assert p.loc["cov_kindergarten@U01", "rule_id"] == "R60_facility"
    # move kindergarten gaps to 长期谋划 by a study rule
    p = classify_problems(t, catalogue=cat, areas=units, rules=pd.DataFrame(
        [{"rule_id": "R45_kg", "order": 45, "problem_class": "长期谋划", "codes": "cov_kindergarten",
          "condition": "always"}]), full=True).set_index("problem_id")
    assert p.loc["cov_kindergarten@U01", "problem_class"] == "长期谋划"


@pytest.mark.parametrize("override,match", [
    ([{"rule_id": "R10_safety", "problem_class": "马上办"}], "R10_safety"),
    ([{"rule_id": "R30_satisfaction", "threshold": "low"}], "R30_satisfaction"),
    ([{"rule_id": "R77", "order": 1, "problem_class": "尽力解决", "condition": "sometimes"}], "R77"),
    ([{"rule_id": "R10_safety", "colour": "red"}], "R10_safety.colour"),
])
def test_rule_override_errors(override, match):
    with pytest.raises(ConfigError, match=match):
        rule_table(override)


def test_no_catch_all_rule_is_an_error(cat, units):
    t = indicator_table(V([("unit", "U01", "g_far", 2.0)]), indicator_catalogue({"reference": {"g_far": 1.5}}),
                        areas=units)
    with pytest.raises(ConfigError, match="no rule matches problem 'g_far@U01'"):
        classify_problems(t, catalogue=cat, rules=[{"rule_id": "R99_default", "enabled": False},
                                                   {"rule_id": "R50_structural", "enabled": False}])


def test_suggestion_template_override(cat, units):
    t = indicator_table(V([("unit", "U03", "cov_kindergarten", 77.0)]), cat, areas=units)
    p = classify_problems(t, catalogue=cat, areas=units,
                          templates={"cov_kindergarten": "{area}: 幼儿园缺口, {affected}人"})
    assert p["suggestion"].iloc[0] == "U03: 幼儿园缺口, 2,300人"
    with pytest.raises(ConfigError, match="unknown field"):
        suggestion_templates({"cov_kindergarten": "{place}"})


# ----------------------------------------------------------------------------- 一表三清单

def test_build_and_write_tables(cat, units, tmp_path):
    vals = V([("unit", "U03", "cov_kindergarten", 77.0), ("unit", "U01", "cov_kindergarten", 100.0),
              ("district", "district", "u_park_green_pc", 9.0), ("unit", "U02", "g_far", 1.1),
              ("unit", "U01", "u_road_network_density", 5.0)])
    tables = build_tables(vals, cat, areas=units, district_name="嘉定区")
    assert list(tables) == ["indicator_table", "strengths", "problems", "suggestions"]
    assert list(tables["strengths"].columns) == STRENGTH_COLUMNS
    assert list(tables["strengths"]["strength_id"]) == ["cov_kindergarten@U01", "u_park_green_pc@district"]
    assert list(tables["suggestions"].columns) == SUGGESTION_COLUMNS
    assert list(tables["problems"]["problem_id"]) == ["cov_kindergarten@U03", "u_road_network_density@U01"]
    paths = write_tables(tables, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == ["indicator_table.csv", "indicator_table.md", "indicator_table.xlsx", "problems.csv",
                     "strengths.csv", "suggestions.csv"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]   # no temp leftovers
    wb = load_workbook(tmp_path / "out" / "indicator_table.xlsx")
    assert wb.sheetnames == ["一表(指标评价表)", "优势清单", "问题清单", "整改建议清单"]
    ws = wb["一表(指标评价表)"]
    assert ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]][:4] == ["层级", "区域编号", "区域名称", "指标代码"]
    assert ws.column_dimensions["E"].width > 10          # 指标名称 column fitted to Chinese text
    assert ws.max_row == 6
    assert "未达标" in [c.value for c in ws["J"]]
    raw = (tmp_path / "out" / "problems.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(tmp_path / "out" / "problems.csv", encoding="utf-8-sig")
    assert back.columns[0] == "问题编号" and "geometry" not in back.columns
    md = (tmp_path / "out" / "indicator_table.md").read_text(encoding="utf-8")
    assert "## 问题清单" in md and "在U03新增幼儿园或托育点，覆盖未达标居民约2,300人" in md


# ----------------------------------------------------------------------------- ledger

@pytest.fixture
def units_2023():
    return gpd.GeoDataFrame({"unit_id": ["A", "B", "C"]},
                            geometry=[b(0, 0, 1000, 1000), b(1000, 0, 2000, 1000), b(0, 1000, 2000, 2000)], crs=CRS)


@pytest.fixture
def units_2024():
    # B grows north to y = 1500 and is renamed B2; C loses that corner (keeps 75 % of its area) → C2
    c2 = Polygon([(X0 + x, Y0 + y) for x, y in [(0, 1000), (1000, 1000), (1000, 1500), (2000, 1500), (2000, 2000),
                                                (0, 2000)]])
    return gpd.GeoDataFrame({"unit_id": ["A", "B2", "C2"]}, geometry=[b(0, 0, 1000, 1000), b(1000, 0, 2000, 1500), c2],
                            crs=CRS)


@pytest.fixture
def ledger_2023():
    rows = [
        ("cov_kindergarten@A", "cov_kindergarten", "A", "persisting", 2022, 2023, "2022:new; 2023:persisting"),
        ("cov_kindergarten@B", "cov_kindergarten", "B", "new", 2023, 2023, "2023:new"),
        ("u_park_radius_coverage@C", "u_park_radius_coverage", "C", "new", 2023, 2023, "2023:new"),
        ("g_far@C", "g_far", "C", "new", 2023, 2023, "2023:new"),
        ("cov_nursery@A", "cov_nursery", "A", "resolved", 2021, 2021, "2021:new; 2022:resolved"),
        ("cov_bus_stop@A", "cov_bus_stop", "A", "resolved", 2020, 2020, "2020:new; 2021:resolved"),
    ]
    return pd.DataFrame(rows, columns=LEDGER_COLUMNS)


@pytest.fixture
def problems_2024(units_2024):
    ids = [("cov_kindergarten", "A"), ("cov_kindergarten", "B2"), ("g_far", "C2"), ("t_metro_coverage", "A"),
           ("cov_elderly_day_care", "B2"), ("cov_nursery", "A")]
    geo = units_2024.set_index("unit_id").geometry
    return gpd.GeoDataFrame({"problem_id": [f"{c}@{a}" for c, a in ids], "indicator_code": [c for c, _ in ids],
                             "area_id": [a for _, a in ids]}, geometry=[geo[a] for _, a in ids], crs=CRS)


def test_ledger_two_years_with_redrawn_units(ledger_2023, problems_2024, units_2023, units_2024):
    led = update_ledger(ledger_2023, problems_2024, units_last=units_2023, units_this=units_2024, year=2024)
    assert list(led.columns) == LEDGER_COLUMNS + ["geometry"]
    assert list(led["problem_id"]) == sorted(led["problem_id"])
    s = led.set_index("problem_id")
    expected = {
        "cov_kindergarten@A": ("persisting", 2022, 2024),
        "cov_kindergarten@B2": ("persisting", 2023, 2024),     # B lies wholly in B2
        "g_far@C2": ("persisting", 2023, 2024),                # C2 holds 75 % of C
        "u_park_radius_coverage@C": ("resolved", 2023, 2023),
        "t_metro_coverage@A": ("new", 2024, 2024),
        "cov_elderly_day_care@B2": ("new", 2024, 2024),
        "cov_nursery@A": ("new", 2021, 2024),                  # came back: first seen kept
        "cov_bus_stop@A": ("resolved", 2020, 2020),            # resolved earlier: carried unchanged
    }
    assert set(s.index) == set(expected)
    for pid, (status, first, last) in expected.items():
        assert (s.loc[pid, "status"], s.loc[pid, "first_seen"], s.loc[pid, "last_seen"]) == (status, first, last), pid
    assert s.loc["cov_kindergarten@A", "history"] == "2022:new; 2023:persisting; 2024:persisting"
    assert s.loc["cov_kindergarten@B2", "history"] == "2023:new; 2024:persisting (formerly cov_kindergarten@B)"
    assert s.loc["u_park_radius_coverage@C", "history"] == "2023:new; 2024:resolved"
    assert s.loc["cov_nursery@A", "history"] == "2021:new; 2022:resolved; 2024:new"
    assert s.loc["cov_bus_stop@A", "history"] == "2020:new; 2021:resolved"
    assert s.loc["u_park_radius_coverage@C", "geometry"].equals(units_2023.geometry.iloc[2])
    assert s.loc["cov_kindergarten@B2", "geometry"].equals(units_2024.geometry.iloc[1])


def test_ledger_overlap_below_half_does_not_match(ledger_2023, problems_2024, units_2023, units_2024):
    # C2 keeps 75 % of C: with a 0.8 threshold g_far@C is resolved and g_far@C2 is new
    led = update_ledger(ledger_2023, problems_2024, units_last=units_2023, units_this=units_2024, year=2024,
                        min_overlap=0.8).set_index("problem_id")
    assert led.loc["g_far@C", "status"] == "resolved"
    assert led.loc["g_far@C2", "status"] == "new"


def test_ledger_first_year_and_id_matching(problems_2024):
    led = update_ledger(None, problems_2024, year=2024)
    assert set(led["status"]) == {"new"} and set(led["first_seen"]) == {2024}
    nxt = update_ledger(led, problems_2024.iloc[:2], year=2025).set_index("problem_id")
    assert nxt.loc["cov_kindergarten@A", "status"] == "persisting"
    assert nxt.loc["cov_kindergarten@A", "first_seen"] == 2024
    assert nxt.loc["g_far@C2", "status"] == "resolved"
    with pytest.raises(LayerError, match="already holds year 2024"):
        update_ledger(led, problems_2024, year=2024)


def test_ledger_roundtrip_csv_and_gpkg(ledger_2023, problems_2024, units_2023, units_2024, tmp_path):
    led = update_ledger(ledger_2023, problems_2024, units_last=units_2023, units_this=units_2024, year=2024)
    write_ledger(led, tmp_path / "ledger.csv")
    back = read_ledger(tmp_path / "ledger.csv")
    pd.testing.assert_frame_equal(back[LEDGER_COLUMNS], pd.DataFrame(led[LEDGER_COLUMNS]), check_dtype=False)
    write_ledger(led, tmp_path / "ledger.gpkg")
    g = read_ledger(tmp_path / "ledger.gpkg")
    assert len(g) == len(led) and g.crs == led.crs
    assert list(g["problem_id"]) == list(led["problem_id"])
    # next year from the CSV works
    nxt = update_ledger(back, problems_2024, year=2025)
    assert (nxt.set_index("problem_id").loc["cov_kindergarten@A", "first_seen"]) == 2022
    bad = tmp_path / "bad.csv"
    pd.DataFrame(led[LEDGER_COLUMNS]).assign(status="open").to_csv(bad, index=False)
    with pytest.raises(LayerError, match="status 'open'"):
        read_ledger(bad)


def test_classify_raw_values_and_determinism(cat, units):
    vals = V([("unit", "U02", "cov_kindergarten", 50.0), ("unit", "U01", "cov_kindergarten", 60.0),
              ("town", "T1", "u_road_network_density", 2.0)])
    a = classify_problems(vals, catalogue=cat, areas=units)
    b_ = classify_problems(vals.iloc[::-1], catalogue=cat, areas=units)
    pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b_))
    assert list(a["problem_id"]) == ["cov_kindergarten@U01", "cov_kindergarten@U02", "u_road_network_density@T1"]
    assert a.set_index("problem_id").loc["u_road_network_density@T1", "affected_population"] == 10000


def test_ledger_merged_units(ledger_2023, problems_2024, units_2023, units_2024):
    led24 = update_ledger(ledger_2023, problems_2024, units_last=units_2023, units_this=units_2024, year=2024)
    # 2025: A and B2 merge into AB; both kindergarten problems continue as one
    ab = gpd.GeoDataFrame({"unit_id": ["AB", "C2"]},
                          geometry=[b(0, 0, 2000, 1500).difference(b(0, 1000, 1000, 1500)),
                                    units_2024.geometry.iloc[2]], crs=CRS)
    p25 = gpd.GeoDataFrame({"problem_id": ["cov_kindergarten@AB"], "indicator_code": ["cov_kindergarten"],
                            "area_id": ["AB"]}, geometry=[ab.geometry.iloc[0]], crs=CRS)
    led25 = update_ledger(led24, p25, units_last=units_2024, units_this=ab, year=2025).set_index("problem_id")
    row = led25.loc["cov_kindergarten@AB"]
    assert (row["status"], row["first_seen"]) == ("persisting", 2022)
    assert row["history"] == ("2022:new; 2023:persisting; 2024:persisting; 2025:persisting "
                              "(formerly cov_kindergarten@A, cov_kindergarten@B2)")
    assert "cov_kindergarten@A" not in led25.index and "cov_kindergarten@B2" not in led25.index
    assert led25.loc["g_far@C2", "status"] == "resolved"
