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
from geotijian.model import LEDGER_COLUMNS, LEDGER_COLUMNS_V1, POINT_COLUMNS, PROBLEM_CLASSES

CRS = "EPSG:32651"
X0, Y0 = 300000.0, 3460000.0


def b(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


@pytest.fixture(scope="module")
def cat():
    # judgement tests use 2023 codes (c_kindergarten_gap); the study's coverage target (no published
    # one exists): every required type 100 %
    return indicator_catalogue({"coverage_reference": 100}, edition="2023")


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
    cat2 = indicator_catalogue({"reference": {"s_sat_livable": 3.5}, "coverage_reference": 100}, edition="2023")
    t = indicator_table(shortfalls, cat2, areas=units)
    p = classify_problems(t, catalogue=cat2, areas=units, satisfaction=satisfaction, complaints=complaints).set_index("point_id")
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
    q = classify_problems(t, catalogue=cat2, areas=units).set_index("point_id")
    assert q.loc["cov_kindergarten@U02", "rule_id"] == "R60_facility"
    assert q.loc["cov_elderly_day_care@U03", "rule_id"] == "R60_facility"


def test_problem_contract_and_suggestion(cat, units):
    t = indicator_table(V([("unit", "U03", "cov_kindergarten", 77.0), ("unit", "U01", "cov_kindergarten", 100.0)]),
                        cat, areas=units)
    p = classify_problems(t, catalogue=cat, areas=units)
    assert isinstance(p, gpd.GeoDataFrame) and p.crs == units.crs
    assert list(p.columns) == POINT_COLUMNS + ["geometry"]
    row = p.iloc[0]
    assert row["point_id"] == "cov_kindergarten@U03" and row["problem_id"] == "cov_kindergarten@unit"
    assert row["affected_population"] == 2300          # 10,000 × (100 − 77) %
    assert row["suggestion"] == "在U03新增幼儿园或托育点，覆盖未达标居民约2,300人"
    assert row["geometry"].equals(units.geometry.iloc[2])
    # without areas: no geometry, residents unknown
    p2 = classify_problems(t, catalogue=cat)
    assert list(p2.columns) == POINT_COLUMNS and np.isnan(p2["affected_population"].iloc[0])


def test_rule_overrides(cat, units, shortfalls, satisfaction, complaints, tmp_path):
    t = indicator_table(shortfalls.iloc[:6], cat, areas=units)
    # lower the satisfaction threshold: U02 (2.5) no longer triggers R30
    p = classify_problems(t, catalogue=cat, areas=units, satisfaction=satisfaction, complaints=complaints,
                          rules=[{"rule_id": "R30_satisfaction", "threshold": 2.0}]).set_index("point_id")
    assert p.loc["cov_kindergarten@U02", "rule_id"] == "R60_facility"
    # disable the hotline rule; add an absolute complaint rule and a severe-gap rule from a TOML file
    f = tmp_path / "rules.toml"
    f.write_text('[rules.R40_hotline]\nenabled = false\n'
                 '[rules.R35_rate]\norder = 35\nproblem_class = "限时解决"\ncondition = "complaint_rate_above"\n'
                 'threshold = 5.5\nreason_zh = "投诉率高"\n'
                 '[rules.R55_gap]\norder = 55\nproblem_class = "限时解决"\ncodes = "cov_*"\n'
                 'condition = "gap_share_above"\nthreshold = 0.4\nreason_zh = "严重缺口"\n', encoding="utf-8")
    p = classify_problems(t, catalogue=cat, areas=units, complaints=complaints, rules=f) \
        .set_index("point_id")
    assert "R40_hotline" not in set(rule_table(f)["rule_id"])
    assert p.loc["cov_elderly_day_care@U03", "rule_id"] == "R35_rate"      # 6.0 > 5.5
    assert p.loc["cov_community_health_centre@U01", "rule_id"] == "R20_health"  # earlier rule wins
    # gap share: health station handled by R20; kindergarten U01 gap 23/100 < 0.4 → R60
    assert p.loc["cov_kindergarten@U01", "rule_id"] == "R60_facility"
    # move kindergarten gaps to 长期谋划 by a study rule
    p = classify_problems(t, catalogue=cat, areas=units, rules=pd.DataFrame(
        [{"rule_id": "R45_kg", "order": 45, "problem_class": "长期谋划", "codes": "cov_kindergarten",
          "condition": "always"}])).set_index("point_id")
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
    assert list(tables) == ["indicator_table", "strengths", "problems", "problem_points", "suggestions"]
    assert list(tables["strengths"].columns) == STRENGTH_COLUMNS
    assert list(tables["strengths"]["strength_id"]) == ["cov_kindergarten@U01", "u_park_green_pc@district"]
    assert list(tables["suggestions"].columns) == SUGGESTION_COLUMNS
    # one problem per indicator and level; 尽力解决 (R60) before 长期谋划 (R50)
    assert list(tables["problems"]["problem_id"]) == ["cov_kindergarten@unit", "u_road_network_density@unit"]
    assert list(tables["problem_points"]["point_id"]) == ["cov_kindergarten@U03", "u_road_network_density@U01"]
    paths = write_tables(tables, tmp_path / "out")
    names = sorted(p.name for p in paths)
    assert names == ["indicator_table.csv", "indicator_table.md", "indicator_table.xlsx", "problem_points.csv",
                     "problems.csv", "strengths.csv", "suggestions.csv"]
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]   # no temp leftovers
    wb = load_workbook(tmp_path / "out" / "indicator_table.xlsx")
    assert wb.sheetnames == ["一表(指标评价表)", "优势清单", "问题清单", "问题点位", "整改建议清单"]
    ws = wb["一表(指标评价表)"]
    assert ws.freeze_panes == "A2"
    assert [c.value for c in ws[1]][:4] == ["层级", "区域编号", "区域名称", "指标代码"]
    assert ws.column_dimensions["E"].width > 10          # 指标名称 column fitted to Chinese text
    assert ws.max_row == 6
    heads = [c.value for c in ws[1]]
    assert "未达标" in [c.value for c in ws[chr(ord("A") + heads.index("评价"))]]
    raw = (tmp_path / "out" / "problems.csv").read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(tmp_path / "out" / "problems.csv", encoding="utf-8-sig")
    assert back.columns[0] == "序号" and "geometry" not in back.columns
    md = (tmp_path / "out" / "indicator_table.md").read_text(encoding="utf-8")
    assert "## 问题清单" in md and "在U03新增幼儿园或托育点，覆盖未达标居民约2,300人" in md


def _unit_values(n: int, code: str, values: list[float]) -> pd.DataFrame:
    return V([("unit", f"U{i:02d}", code, v) for i, v in enumerate(values, start=1)][:n])


@pytest.fixture
def many_units():
    n = 6
    return gpd.GeoDataFrame({"unit_id": [f"U{i:02d}" for i in range(1, n + 1)], "town_code": ["T1"] * 3 + ["T2"] * 3,
                             "town_name": ["一镇"] * 3 + ["二镇"] * 3, "name": ["甲", "乙", "丙", "丁", "戊", "己"],
                             "population": [1000, 2000, 3000, 4000, 5000, 6000]},
                            geometry=[b(i * 1000, 0, i * 1000 + 1000, 1000) for i in range(n)], crs=CRS)


def test_points_grouped_into_one_problem_per_indicator_and_level(cat, many_units):
    """Six units, kindergarten coverage short in four: one problem with four 问题点位, its
    residents not covered summed, its worst point's gap, its points most affected first."""
    cov = [95.0, 50.0, 80.0, 100.0, 60.0, 70.0]    # reference ≥100: all short but U04
    vals = pd.concat([_unit_values(6, "cov_kindergarten", cov),
                      V([("town", "T1", "u_road_network_density", 5.0), ("town", "T2", "u_road_network_density", 6.0),
                         ("unit", "U01", "h_gas_risk", 1.0)])])
    t = build_tables(vals, cat, areas=many_units, district_name="样区")
    p = t["problems"].set_index("problem_id")
    assert len(t["problem_points"]) == 5 + 2 + 1 and len(p) == 3
    kg = p.loc["cov_kindergarten@unit"]
    assert (kg["point_count"], kg["assessed_count"]) == (5, 6)
    # residents not covered: 1000×5% + 2000×50% + 3000×20% + 5000×40% + 6000×30%
    assert kg["affected_population"] == pytest.approx(50 + 1000 + 600 + 2000 + 1800)
    assert kg["value"] == 50.0 and kg["gap"] == 50.0 and kg["gap_share"] == pytest.approx(0.5)
    assert kg["points"] == "U05;U06;U02;U03;U01"              # most affected first
    assert kg["point_names"].split("、")[:2] == ["戊", "己"]
    assert kg["area_id"] == "district" and kg["area_name"] == "样区"
    assert "6个社区体检单元中5个未达标" in kg["description"] and "研究设定" in kg["description"]
    assert kg["reference_value"] == 100.0 and kg["reference_op"] == ">="
    assert kg["geometry"].area == pytest.approx(5 * 1e6)      # the union of its points' units
    road = p.loc["u_road_network_density@town"]
    assert road["point_count"] == 2 and road["level"] == "town"
    gas = p.loc["h_gas_risk@unit"]                            # one point: the problem is that unit
    assert (gas["area_id"], gas["area_name"], gas["point_count"]) == ("U01", "甲", 1)
    # severity: 限时解决 (gas, R10) first, then 尽力解决 (kindergarten), then 长期谋划 (roads)
    assert list(t["problems"]["problem_id"]) == ["h_gas_risk@unit", "cov_kindergarten@unit",
                                                 "u_road_network_density@town"]
    assert list(t["problems"]["seq"]) == [1, 2, 3]
    # the points follow their problem's order
    assert list(t["problem_points"]["problem_id"].drop_duplicates()) == list(t["problems"]["problem_id"])
    assert list(t["suggestions"]["problem_id"]) == list(t["problems"]["problem_id"])


def test_problems_within_a_class_by_residents_affected(cat, many_units):
    vals = pd.concat([_unit_values(6, "cov_kindergarten", [90.0] * 6),     # 10 % of 21,000 not covered
                      _unit_values(6, "cov_fresh_market", [40.0] * 6)])    # 60 %: more residents first
    p = build_tables(vals, cat, areas=many_units)["problems"]
    assert list(p["problem_id"]) == ["cov_fresh_market@unit", "cov_kindergarten@unit"]
    assert p["affected_population"].tolist() == pytest.approx([12600, 2100])


def test_coverage_is_not_judged_without_a_study_target(many_units):
    """No published coverage target exists: without coverage_reference the cov_ rows have no
    reference (no unstated 100 %); with it they say 研究设定."""
    vals = _unit_values(6, "cov_kindergarten", [50.0] * 6)
    t = build_tables(vals, indicator_catalogue(), areas=many_units)
    assert len(t["problems"]) == 0
    assert set(t["indicator_table"]["judgement"]) == {"no_reference"}
    cat90 = indicator_catalogue({"coverage_reference": {"default": 90, "kindergarten": 95}})
    row = cat90.set_index("code").loc["cov_kindergarten"]
    assert (row["reference_op"], row["reference_value"]) == (">=", 95.0)
    assert cat90.set_index("code").loc["cov_elderly_day_care", "reference_value"] == 90.0
    assert np.isnan(cat90.set_index("code").loc["cov_nursery", "reference_value"])   # optional: no default
    t = build_tables(vals, cat90, areas=many_units)
    assert t["problems"]["reference_source"].iat[0] == "研究设定 ([indicators] coverage_reference)"
    with pytest.raises(ConfigError, match="did you mean kindergarten"):
        indicator_catalogue({"coverage_reference": {"kindergarden": 90}})
    with pytest.raises(ConfigError, match="not a percentage"):
        indicator_catalogue({"coverage_reference": 150})


def test_ledger_reads_a_ledger_written_before_the_grouping(ledger_2023, problems_2024, units_2023, units_2024):
    """A ledger of one row per <code>@<area> under problem_id (geotijian before issue 20) is
    upgraded: its IDs become point IDs, its problems <code>@<level>."""
    led = update_ledger(ledger_2023, problems_2024, units_last=units_2023, units_this=units_2024, year=2024)
    s = led.set_index("point_id")
    assert s.loc["u_park_radius_coverage@C", "problem_id"] == "u_park_radius_coverage@unit"
    assert s.loc["u_park_radius_coverage@C", "level"] == "unit"
    assert s.loc["cov_kindergarten@A", "area_name"] == "单元A"
    # a per-area problems table (no point_id) is accepted as this year's points
    old_style = pd.DataFrame({"problem_id": ["g_far@C2"], "indicator_code": ["g_far"], "area_id": ["C2"]})
    nxt = update_ledger(pd.DataFrame(led.drop(columns="geometry")), old_style, year=2025).set_index("point_id")
    assert nxt.loc["g_far@C2", "status"] == "persisting"


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
    return pd.DataFrame(rows, columns=LEDGER_COLUMNS_V1)   # a ledger written before the grouping


@pytest.fixture
def problems_2024(units_2024):
    ids = [("cov_kindergarten", "A"), ("cov_kindergarten", "B2"), ("g_far", "C2"), ("t_metro_coverage", "A"),
           ("cov_elderly_day_care", "B2"), ("cov_nursery", "A")]
    geo = units_2024.set_index("unit_id").geometry
    return gpd.GeoDataFrame({"point_id": [f"{c}@{a}" for c, a in ids], "problem_id": [f"{c}@unit" for c, _ in ids],
                             "indicator_code": [c for c, _ in ids], "level": "unit", "area_id": [a for _, a in ids],
                             "area_name": [f"单元{a}" for _, a in ids]},
                            geometry=[geo[a] for _, a in ids], crs=CRS)


def test_ledger_two_years_with_redrawn_units(ledger_2023, problems_2024, units_2023, units_2024):
    led = update_ledger(ledger_2023, problems_2024, units_last=units_2023, units_this=units_2024, year=2024)
    assert list(led.columns) == LEDGER_COLUMNS + ["geometry"]
    assert list(led["point_id"]) == sorted(led["point_id"])
    s = led.set_index("point_id")
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
                        min_overlap=0.8).set_index("point_id")
    assert led.loc["g_far@C", "status"] == "resolved"
    assert led.loc["g_far@C2", "status"] == "new"


def test_ledger_first_year_and_id_matching(problems_2024):
    led = update_ledger(None, problems_2024, year=2024)
    assert set(led["status"]) == {"new"} and set(led["first_seen"]) == {2024}
    nxt = update_ledger(led, problems_2024.iloc[:2], year=2025).set_index("point_id")
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
    assert list(g["point_id"]) == list(led["point_id"])
    # next year from the CSV works
    nxt = update_ledger(back, problems_2024, year=2025)
    assert (nxt.set_index("point_id").loc["cov_kindergarten@A", "first_seen"]) == 2022
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
    assert list(a["point_id"]) == ["cov_kindergarten@U01", "cov_kindergarten@U02", "u_road_network_density@T1"]
    assert list(a["problem_id"]) == ["cov_kindergarten@unit", "cov_kindergarten@unit", "u_road_network_density@town"]
    assert a.set_index("point_id").loc["u_road_network_density@T1", "affected_population"] == 10000


def test_ledger_merged_units(ledger_2023, problems_2024, units_2023, units_2024):
    led24 = update_ledger(ledger_2023, problems_2024, units_last=units_2023, units_this=units_2024, year=2024)
    # 2025: A and B2 merge into AB; both kindergarten problems continue as one
    ab = gpd.GeoDataFrame({"unit_id": ["AB", "C2"]},
                          geometry=[b(0, 0, 2000, 1500).difference(b(0, 1000, 1000, 1500)),
                                    units_2024.geometry.iloc[2]], crs=CRS)
    p25 = gpd.GeoDataFrame({"problem_id": ["cov_kindergarten@AB"], "indicator_code": ["cov_kindergarten"],
                            "area_id": ["AB"]}, geometry=[ab.geometry.iloc[0]], crs=CRS)
    led25 = update_ledger(led24, p25, units_last=units_2024, units_this=ab, year=2025).set_index("point_id")
    row = led25.loc["cov_kindergarten@AB"]
    assert (row["status"], row["first_seen"]) == ("persisting", 2022)
    assert row["history"] == ("2022:new; 2023:persisting; 2024:persisting; 2025:persisting "
                              "(formerly cov_kindergarten@A, cov_kindergarten@B2)")
    assert "cov_kindergarten@A" not in led25.index and "cov_kindergarten@B2" not in led25.index
    assert led25.loc["g_far@C2", "status"] == "resolved"


def test_markdown_keeps_district_and_town_rows_of_a_long_table(tmp_path):
    """A district's indicator table (thousands of unit rows) goes to Markdown with its
    district and town rows only, and says where the others are; short tables stay whole."""
    from geotijian.assess import write_tables

    n = 600
    long = pd.DataFrame({"level": ["district"] + ["town"] * 2 + ["unit"] * n,
                         "area_id": ["D", "T1", "T2"] + [f"T1-U{i:03d}" for i in range(n)],
                         "code": "x", "value": 1.0})
    short = long.iloc[:10]
    written = write_tables({"indicator_table": long, "problems": short}, tmp_path, formats=("md", "csv"))
    md = (tmp_path / "indicator_table.md").read_text(encoding="utf-8")
    assert "T1-U000" in md and md.count("T1-U") == 7  # the short table: every row
    assert "| 区 | D |" in md and "| 街镇 | T2 |" in md
    assert "全部 603 行" in md
    assert len(pd.read_csv(tmp_path / "indicator_table.csv")) == n + 3  # the CSV keeps every row
    assert {p.name for p in written} >= {"indicator_table.md", "indicator_table.csv"}


def test_workbook_is_ready_to_print_and_filter(cat, many_units, tmp_path):
    """A4 landscape one page wide, header row repeated, autofilter, number formats by unit,
    the reference a number with its operator beside it, conditional fills, names on every
    sheet, codes hidden; the same tables give the same bytes."""
    vals = pd.concat([_unit_values(6, "cov_kindergarten", [95.0, 50.0, 80.0, 100.0, 60.0, 70.0]),
                      V([("unit", "U01", "u_road_network_density", 5.5), ("district", "district", "g_far", 1.2)])])
    tables = build_tables(vals, cat, areas=many_units, district_name="样区")
    write_tables(tables, tmp_path / "a", formats=("xlsx",), title="样区 2024 年城市体检 一表三清单")
    write_tables(tables, tmp_path / "b", formats=("xlsx",), title="样区 2024 年城市体检 一表三清单")
    a = (tmp_path / "a" / "indicator_table.xlsx").read_bytes()
    assert a == (tmp_path / "b" / "indicator_table.xlsx").read_bytes()
    wb = load_workbook(tmp_path / "a" / "indicator_table.xlsx")
    for ws in wb.worksheets:
        assert ws.page_setup.orientation == "landscape", ws.title
        assert ws.page_setup.fitToWidth == 1 and ws.page_setup.fitToHeight == 0, ws.title
        assert ws.sheet_properties.pageSetUpPr.fitToPage, ws.title
        assert ws.print_title_rows == "$1:$1", ws.title
        assert ws.freeze_panes == "A2"
        heads = [c.value for c in ws[1]]
        if ws.max_row > 1:
            assert ws.auto_filter.ref == f"A1:{ws.cell(1, len(heads)).column_letter}{ws.max_row}", ws.title
        assert "区域名称" in heads or "问题点位" in heads, ws.title
    ws = wb["一表(指标评价表)"]
    heads = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(heads)}
    rows = {(ws.cell(r, col["区域名称"]).value, ws.cell(r, col["指标名称"]).value): r for r in range(2, ws.max_row + 1)}
    r = rows[("戊", "幼儿园步行300米覆盖率")]
    assert ws.cell(r, col["现状值"]).value == 60.0 and ws.cell(r, col["现状值"]).number_format == '0.0"%"'
    assert ws.cell(r, col["比较"]).value == "≥" and ws.cell(r, col["参考值"]).value == 100.0
    assert isinstance(ws.cell(r, col["参考值"]).value, (int, float))   # a number, not "≥100"
    r = rows[("甲", "城市道路网密度")]
    assert ws.cell(r, col["现状值"]).number_format == "0.00"
    # names, not IDs: the unit's name, the district's name; the ID columns are hidden
    assert rows.get(("样区", "容积率(毛)")) is not None
    assert ws.column_dimensions[ws.cell(1, col["区域编号"]).column_letter].hidden
    assert ws.column_dimensions[ws.cell(1, col["指标代码"]).column_letter].hidden
    fills = {(str(rule.formula[0]), rule.dxf.fill.bgColor.rgb[-6:])
             for rng in ws.conditional_formatting for rule in rng.rules}
    assert ('"未达标"', "F9C9C0") in fills and ('"达标"', "D9EFD3") in fills
    ws = wb["问题清单"]
    heads = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(heads)}
    assert ws.cell(2, col["影响人口(人)"]).number_format == "#,##0"
    assert ws.cell(2, col["问题点位"]).value.split("、")[0] == "戊"
    fills = {str(rule.formula[0]) for rng in ws.conditional_formatting for rule in rng.rules}
    assert {'"限时解决"', '"尽力解决"', '"长期谋划"'} <= fills
    assert ws.oddFooter.center.text == "第 &P 页 / 共 &N 页"


def test_units_in_chinese_text_drop_the_catalogues_english_gloss():
    from geotijian.problem_list import unit_zh
    from geotijian.report.map_problems import format_value

    assert unit_zh("栋 buildings") == "栋" and unit_zh("个 seats") == "个" and unit_zh("m2/person") == "平方米/人"
    assert unit_zh("%") == "%" and unit_zh("栋") == "栋"               # already as printed: unchanged
    assert unit_zh("score") == "分" and unit_zh("个/km2") == "个/平方公里"   # as the Word report prints them
    assert format_value(93, "栋 buildings", "zh") == "93 栋"
    assert format_value(93, "栋 buildings", "en") == "93 栋 buildings"
