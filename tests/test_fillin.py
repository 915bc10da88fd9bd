"""Fill-in workbooks (区—街镇—社区): the plan, the templates, reading them back, every
validation error, the roll-up against a hand count, and edition mismatches refused.

A small synthetic district: two towns, three communities (one a pilot), five compounds,
eleven residential buildings (one outside every compound) and one factory."""

from __future__ import annotations

import re
import shutil

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from openpyxl import load_workbook
from shapely.geometry import box

from geotijian.errors import ConfigError, LayerError
from geotijian.indicators import indicator_catalogue
from geotijian.indicators.collect import collect_fillins
from geotijian.indicators.fillin import (
    FIRST_DATA_ROW,
    NOT_HERE,
    entry_kind,
    fill_workbook,
    fillin_areas,
    fillin_plan,
    write_fillin_workbooks,
)

CRS = "EPSG:32651"
X0, Y0 = 300000.0, 3470000.0
PILOT = "T1-U01"


def B(x0, y0, x1, y1):
    return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


@pytest.fixture(scope="module")
def layers():
    units = gpd.GeoDataFrame({"unit_id": ["T1-U01", "T1-U02", "T2-U01"], "town_code": ["T1", "T1", "T2"],
                              "town_name": ["甲镇", "甲镇", "乙街道"], "committees": ["C01", "C02", "C03"],
                              "population": [6000, 7000, 8000]},
                             geometry=[B(0, 0, 1000, 1000), B(1000, 0, 2000, 1000), B(2000, 0, 3000, 1000)], crs=CRS)
    committees = gpd.GeoDataFrame({"committee_id": ["C01", "C02", "C03"], "name": ["一居委", "二居委", "三居委"]},
                                  geometry=list(units.geometry), crs=CRS)
    towns = gpd.GeoDataFrame({"town_code": ["T1", "T2"], "name": ["甲镇", "乙街道"]},
                             geometry=[B(0, 0, 2000, 1000), B(2000, 0, 3000, 1000)], crs=CRS)
    compounds = gpd.GeoDataFrame({
        "compound_id": ["C1", "C2", "C3", "C4", "C5"], "unit_id": ["T1-U01", "T1-U01", "T1-U02", "T2-U01", "T2-U01"],
        "name": ["一号小区", "二号小区", "三号小区", '=HYPERLINK("http://x","点我")', "五号小区"],
        "build_year": [1990, 2010, 1985, 2005, 1998], "population": [1200, 800, 2000, 1500, 900]},
        geometry=[B(100, 100, 300, 300), B(500, 500, 700, 700), B(1200, 100, 1400, 300), B(2100, 100, 2300, 300),
                  B(2500, 500, 2700, 700)], crs=CRS)
    bids = [f"B{i:02d}" for i in range(1, 13)]
    comp = ["C1", "C1", "C1", "C2", "C2", "C3", "C3", "C4", "C5", "C5", None, None]
    use = ["residential"] * 11 + ["industrial"]
    geoms = [B(110, 110, 120, 120), B(130, 130, 140, 140), B(150, 150, 160, 160), B(510, 510, 520, 520),
             B(530, 530, 540, 540), B(1210, 110, 1220, 120), B(1230, 130, 1240, 140), B(2110, 110, 2120, 120),
             B(2510, 510, 2520, 520), B(2530, 530, 2540, 540), B(2800, 800, 2810, 810), B(1800, 800, 1810, 810)]
    buildings = gpd.GeoDataFrame({"building_id": bids, "compound_id": comp, "use": use, "levels": 6,
                                  "build_year": 1995}, geometry=geoms, crs=CRS)
    return {"units": units, "committees": committees, "towns": towns, "compounds": compounds,
            "buildings": buildings}


@pytest.fixture(scope="module")
def cat():
    return indicator_catalogue(edition="2024")


def make_plan(layers, cat, **kw):
    areas, unplaced = fillin_areas(layers["units"], compounds=layers["compounds"], buildings=layers["buildings"],
                                   towns=layers["towns"], committees=layers["committees"], district_name="示范区")
    computed = pd.DataFrame({"level": ["unit", "district"], "area_id": [PILOT, "district"],
                             "code": ["cov_kindergarten", "cov_kindergarten"], "value": [55.0, 61.5]})
    return fillin_plan(cat, areas, computed_codes=kw.pop("computed_codes", {"cov_kindergarten",
                                                                            "d_middle_school_coverage"}),
                       pilot_communities=kw.pop("pilots", [PILOT]), study="demo", year=2024, computed=computed,
                       district_name="示范区", unplaced=unplaced, **kw)


def one_department(cat):
    """Every district item to one office (four workbooks instead of sixteen: quicker tests)."""
    return {c: "区城市体检办" for c in cat.loc[(cat["fill_in"] == "yes") & (cat["record"] == "district"), "code"]}


@pytest.fixture(scope="module")
def plan(layers, cat):
    return make_plan(layers, cat, departments=one_department(cat))


@pytest.fixture(scope="module")
def templates(plan, tmp_path_factory):
    folder = tmp_path_factory.mktemp("templates")
    return write_fillin_workbooks(plan, folder)


def answers(plan, wid: str | None = None) -> pd.DataFrame:
    """A deterministic answer for every expected cell (of one workbook): the 'script' filling them."""
    cells = plan.cells if wid is None else plan.cells[plan.cells["workbook_id"] == wid]
    cells = cells.reset_index(drop=True).merge(plan.items[["code", "kind"]], on="code", how="left")
    i = np.arange(len(cells))
    value = np.select([cells["kind"] == "flag", cells["kind"] == "count", cells["kind"] == "percent"],
                      [np.where(i % 3 == 0, "是", "否"), (i % 5).astype(object), (12.5 + i % 50).astype(object)],
                      np.round(0.3 * (i % 7), 2).astype(object))
    return cells.assign(value=value)


def fill_all(plan, templates, folder, *, skip=(), organisation="测试单位", source="测试数据"):
    folder.mkdir(parents=True, exist_ok=True)
    files = {p.name: p for p in templates}
    out = []
    for wb in plan.workbooks.itertuples(index=False):
        if wb.workbook_id in skip:
            continue
        out.append(fill_workbook(files[wb.file], answers(plan, wb.workbook_id), organisation=organisation,
                                 default_source=source, out=folder / wb.file))
    return out


@pytest.fixture(scope="module")
def filled(plan, templates, tmp_path_factory):
    folder = tmp_path_factory.mktemp("filled")
    fill_all(plan, templates, folder)
    return folder


# ----------------------------------------------------------------------------- the plan

def test_plan_assigns_every_value_to_one_workbook(layers, cat):
    plan = make_plan(layers, cat)
    cells = plan.cells
    assert not cells.duplicated(["record", "record_id", "code"]).any()
    # computed indicators and local ones are never filled in
    assert not {"cov_kindergarten", "d_middle_school_coverage", "g_far"} & set(cells["code"])
    fill = set(cat.loc[cat["fill_in"] == "yes", "code"]) - {"d_middle_school_coverage"}
    assert set(cells["code"]) == fill
    wb = set(plan.workbooks["workbook_id"])
    assert {"town:T1", "town:T2", f"community:{PILOT}", "department:区水务局", "department:区应急管理局"} <= wb
    # the pilot community's buildings and compounds are in its own workbook, the rest in their town's
    b = cells[cells["record"] == "building"].drop_duplicates("record_id").set_index("record_id")["workbook_id"]
    assert b[["B01", "B04"]].eq(f"community:{PILOT}").all()
    assert b["B06"] == "town:T1" and b["B08"] == "town:T2"
    assert b["B11"] == "town:T2"                      # no compound: located in its community by its point
    assert "B12" not in b.index                       # a factory is not a housing record
    assert set(cells.loc[cells["record"] == "town", "workbook_id"]) == {"town:T1", "town:T2"}
    assert set(cells.loc[cells["record"] == "district", "workbook_id"].str.split(":").str[0]) == {"department"}
    # one 住房 row per residential building, one 小区 row per compound
    n_house = cat[(cat["indicator_level"] == "住房")].shape[0]
    assert len(cells[cells["record"] == "building"]) == 11 * n_house
    kinds = plan.items.set_index("code")["kind"]
    assert kinds["h_gas_risk"] == "flag" and kinds["h_non_self_contained"] == "count"
    assert kinds["u_sewage_collection"] == "percent" and kinds["c_substandard_walkway_km"] == "number"
    assert entry_kind("sum", "个 seats") == "count"


def test_plan_errors_and_department_override(layers, cat):
    with pytest.raises(ConfigError, match="fillin.pilot_communities"):
        make_plan(layers, cat, pilots=["T9-U99"])
    with pytest.raises(ConfigError, match="fillin.departments.g_far"):
        make_plan(layers, cat, departments={"g_far": "区规划资源局"})
    p = make_plan(layers, cat, departments={"u_fire_station_coverage": "区应急管理局"})
    assert set(p.cells.loc[p.cells["code"] == "u_fire_station_coverage", "workbook_id"]) == {"department:区应急管理局"}
    assert "department:区消防救援支队" in set(p.workbooks["workbook_id"])     # still supplies 高层建筑火灾监测


# ----------------------------------------------------------------------------- the templates

def test_templates_sheets_rows_validation_and_text(plan, templates):
    names = {p.name for p in templates}
    assert names == {"填报_街镇_T1_甲镇.xlsx", "填报_街镇_T2_乙街道.xlsx", f"填报_社区_{PILOT}.xlsx",
                     "填报_部门_区城市体检办.xlsx"}
    wb = load_workbook(next(p for p in templates if p.name == "填报_街镇_T2_乙街道.xlsx"))
    assert wb.sheetnames[:2] == ["填报说明", "指标说明"]
    assert {"住房(楼栋)", "小区", "社区", "街镇", "计算值(参考)", "_meta"} <= set(wb.sheetnames)
    assert wb["_meta"].sheet_state == "hidden"
    ws = wb["小区"]
    codes = [c.value for c in ws[2]]
    assert codes[0] == "record_id" and "c_parking_gap" in codes and codes[-2:] == ["source", "note"]
    units = {codes[j]: ws.cell(3, j + 1).value for j in range(len(codes))}
    assert units["c_no_property_mgmt"] == "是/否" and units["c_parking_gap"] == "个"
    ids = [ws.cell(r, 1).value for r in range(FIRST_DATA_ROW, ws.max_row + 1)]
    assert ids == ["C4", "C5"]
    # a name from the data that looks like a formula is stored as text
    name_cell = ws.cell(FIRST_DATA_ROW, 2)
    assert name_cell.value.startswith("=HYPERLINK") and name_cell.data_type == "s"
    # data validation: 是/否 lists, whole numbers >= 0
    dv = {re.sub(r"\d", "", str(d.sqref).split(":")[0]): d for d in ws.data_validations.dataValidation}
    col = {codes[j]: ws.cell(1, j + 1).column_letter for j in range(len(codes))}
    assert dv[col["c_no_property_mgmt"]].type == "list" and dv[col["c_no_property_mgmt"]].formula1 == '"是,否"'
    assert dv[col["c_parking_gap"]].type == "whole" and dv[col["c_parking_gap"]].formula1 == "0"
    t = wb["街镇"]
    tcodes = [c.value for c in t[2]]
    tdv = {re.sub(r"\d", "", str(d.sqref).split(":")[0]): d for d in t.data_validations.dataValidation}
    pct = t.cell(1, tcodes.index("d_park_activity_coverage") + 1).column_letter
    assert (tdv[pct].type, tdv[pct].formula1, tdv[pct].formula2) == ("decimal", "0", "100")
    # the computed values of the town's areas are shown for reference, not to fill
    pilot = load_workbook(next(p for p in templates if p.name == f"填报_社区_{PILOT}.xlsx"))
    ref = [[c.value for c in row] for row in pilot["计算值(参考)"].iter_rows(min_row=2)]
    assert ref == [["社区", PILOT, "cov_kindergarten", "幼儿园步行300米覆盖率", 55.0, "%"]]
    meta = {r[0].value: r[1].value for r in pilot["_meta"].iter_rows(max_row=8)}
    assert (meta["study"], meta["year"], meta["edition"]) == ("demo", "2024", "2024")
    dept = load_workbook(next(p for p in templates if p.name == "填报_部门_区城市体检办.xlsx"))
    assert [c.value for c in dept["区"][2]][:1] == ["record_id"] and dept["区"].cell(FIRST_DATA_ROW, 1).value == "district"


def test_templates_are_byte_deterministic(plan, templates, tmp_path):
    again = write_fillin_workbooks(plan, tmp_path)
    for a, b in zip(sorted(templates), sorted(again), strict=True):
        assert a.read_bytes() == b.read_bytes(), a.name


def test_templates_have_the_bytes_of_openpyxl_cell_by_cell(plan, templates, tmp_path):
    """The record sheets' cells, written as blocks, give the bytes (and what a user sees)
    of the same cells made as openpyxl cells and saved by openpyxl, as before."""
    from geotijian.indicators.fillin import _build_workbook

    from .workbook_reference import materialise_blocks, save_reference, workbook_differences

    by_file = {p.name: p for p in templates}
    sheets = dict(tuple(plan.sheets.groupby("workbook_id", sort=False)))
    cells = dict(tuple(plan.cells.groupby("workbook_id", sort=False)))
    assert len(plan.workbooks) >= 3
    for row in plan.workbooks.itertuples(index=False):
        wb, blocks = _build_workbook(plan, row, "geotijian", sheets=sheets[row.workbook_id],
                                     cells=cells[row.workbook_id])
        assert blocks and sum(len(b.rows) for b in blocks.values()) > 0
        materialise_blocks(wb, blocks)
        ref = save_reference(wb, tmp_path / row.file)
        assert by_file[row.file].read_bytes() == ref.read_bytes(), row.file
    assert workbook_differences(by_file[row.file], ref) == []


# ----------------------------------------------------------------------------- round trip

def test_round_trip_returns_the_same_values(plan, filled):
    res = collect_fillins(filled, plan)
    assert res.issues.empty, res.messages()[:3]
    want = pd.concat([answers(plan, w) for w in plan.workbooks["workbook_id"]], ignore_index=True)
    want["num"] = [1.0 if v == "是" else 0.0 if v == "否" else float(v) for v in want["value"]]
    got = res.records.merge(want, on=["workbook_id", "record", "record_id", "code"], how="outer", indicator=True)
    assert (got["_merge"] == "both").all(), got[got["_merge"] != "both"].head()
    assert np.array_equal(got["value_x"].to_numpy(dtype=float), got["num"].to_numpy(dtype=float))
    assert set(res.records["source"]) == {"测试数据"}
    c = res.completeness.set_index("workbook_id")
    assert c["returned"].all() and (c["missing"] == 0).all() and (c["filled_share"] == 1).all()
    assert res.missing.empty


# ----------------------------------------------------------------------------- roll-up against a hand count

def test_roll_up_against_a_hand_count(plan, templates, tmp_path):
    files = {p.name: p for p in templates}
    yes_gas = {"B01", "B02", "B06", "B11"}          # C1 (T1-U01) ×2, C3 (T1-U02), no compound (T2-U01)
    dwellings = {"B03": 4, "B09": 7}                 # h_non_self_contained, 套
    no_mgmt = {"C1", "C4", "C5"}                     # 未实施物业管理的小区
    parking = {"C1": 10, "C2": 5, "C3": 0, "C4": 12, "C5": 3}
    for wb in plan.workbooks.itertuples(index=False):
        a = answers(plan, wb.workbook_id)
        v = a["value"].copy()
        v[a["code"] == "h_gas_risk"] = np.where(a.loc[a["code"] == "h_gas_risk", "record_id"].isin(yes_gas), "是", "否")
        sel = a["code"] == "h_non_self_contained"
        v[sel] = [dwellings.get(r, 0) for r in a.loc[sel, "record_id"]]
        sel = a["code"] == "c_no_property_mgmt"
        v[sel] = np.where(a.loc[sel, "record_id"].isin(no_mgmt), "是", "否")
        sel = a["code"] == "c_parking_gap"
        v[sel] = [parking[r] for r in a.loc[sel, "record_id"]]
        sel = a["code"] == "c_substandard_walkway_km"
        v[sel] = [{"T1-U01": 0.4, "T1-U02": 1.25, "T2-U01": 0.0}[r] for r in a.loc[sel, "record_id"]]
        fill_workbook(files[wb.file], a.assign(value=v), organisation="测试", default_source="手工", out=tmp_path / wb.file)
    r = collect_fillins(tmp_path, plan)
    assert r.issues.empty
    up = r.rollup.set_index(["level", "area_id", "code"])["value"]
    hand = {  # (level, area, code): value
        ("compound", "C1", "h_gas_risk"): 2, ("compound", "C3", "h_gas_risk"): 1, ("compound", "C5", "h_gas_risk"): 0,
        ("unit", "T1-U01", "h_gas_risk"): 2, ("unit", "T1-U02", "h_gas_risk"): 1, ("unit", "T2-U01", "h_gas_risk"): 1,
        ("town", "T1", "h_gas_risk"): 3, ("town", "T2", "h_gas_risk"): 1, ("district", "district", "h_gas_risk"): 4,
        ("compound", "C1", "h_non_self_contained"): 4, ("unit", "T2-U01", "h_non_self_contained"): 7,
        ("district", "district", "h_non_self_contained"): 11,
        ("unit", "T1-U01", "c_no_property_mgmt"): 1, ("unit", "T2-U01", "c_no_property_mgmt"): 2,
        ("town", "T1", "c_no_property_mgmt"): 1, ("district", "district", "c_no_property_mgmt"): 3,
        ("unit", "T1-U01", "c_parking_gap"): 15, ("town", "T2", "c_parking_gap"): 15,
        ("district", "district", "c_parking_gap"): 30,
        ("town", "T1", "c_substandard_walkway_km"): 1.65, ("district", "district", "c_substandard_walkway_km"): 1.65,
    }
    for key, value in hand.items():
        assert up[key] == pytest.approx(value), key
    # a rate filled by the towns is not added up: no district value from town rates
    assert ("town", "T1", "d_park_activity_coverage") in up.index
    assert ("district", "district", "d_park_activity_coverage") not in up.index
    rule = r.rollup.set_index(["level", "area_id", "code"]).loc[("district", "district", "h_gas_risk"), "rule"]
    assert rule == "count of 是 answers: building → compound → unit → town → district"
    v = r.values.set_index(["level", "area_id", "code"])
    assert v.loc[("unit", PILOT, "h_gas_risk"), "value"] == 2 and "手工" in v.loc[("unit", PILOT, "h_gas_risk"), "source"]


def test_incomplete_areas_have_no_value_and_are_reported(plan, templates, tmp_path):
    files = {p.name: p for p in templates}
    skip = {"department:区城市体检办"}
    for wb in plan.workbooks.itertuples(index=False):
        if wb.workbook_id in skip:
            continue
        a = answers(plan, wb.workbook_id)
        if wb.workbook_id == "town:T2":      # B11 not inspected yet: its whole row empty
            a = a[a["record_id"] != "B11"]
        fill_workbook(files[wb.file], a, organisation="测试", default_source="手工", out=tmp_path / wb.file)
    r = collect_fillins(tmp_path, plan)
    assert r.issues.empty
    up = r.rollup.set_index(["level", "area_id", "code"])
    assert np.isnan(up.loc[("unit", "T2-U01", "h_gas_risk"), "value"])
    assert up.loc[("unit", "T2-U01", "h_gas_risk"), ["n_expected", "n_answered"]].tolist() == [4, 3]
    assert np.isnan(up.loc[("district", "district", "h_gas_risk"), "value"])
    assert not np.isnan(up.loc[("town", "T1", "h_gas_risk"), "value"])
    assert not np.isnan(up.loc[("compound", "C5", "h_gas_risk"), "value"])      # B11 is in no compound
    c = r.completeness.set_index("workbook_id")
    assert not c.loc["department:区城市体检办", "returned"] and c.loc["department:区城市体检办", "filled"] == 0
    assert c.loc["town:T2", "missing"] == 10                                   # 10 住房 items of B11
    m = r.missing.set_index(["workbook_id", "code"])
    assert m.loc[("town:T2", "h_gas_risk"), "examples"] == "B11"
    assert m.loc[("department:区城市体检办", "u_sewage_collection"), "n_missing"] == 1


# ----------------------------------------------------------------------------- every validation error

def _edit(path, fn):
    wb = load_workbook(path)
    fn(wb)
    wb.save(path)


def _col(ws, code):
    return next(c.column for c in ws[2] if c.value == code)


def _row(ws, rid):
    return next(r for r in range(FIRST_DATA_ROW, ws.max_row + 1) if ws.cell(r, 1).value == rid)


T2 = "填报_街镇_T2_乙街道.xlsx"
PIL = f"填报_社区_{PILOT}.xlsx"


def _set(sheet, rid, code, value):
    def fn(wb):
        ws = wb[sheet]
        ws.cell(_row(ws, rid), _col(ws, code)).value = value
    return fn


CASES = [
    # (workbook, edit, sheet, row, expected problem, expected fix)
    (T2, _set("小区", "C5", "c_no_property_mgmt", "也许"), "小区", "row 6", "answer '也许' is not 是 or 否", "enter 是 / 否"),
    (T2, _set("小区", "C4", "c_parking_gap", -3), "小区", "row 5", "value -3 is negative", "非负整数"),
    (T2, _set("小区", "C4", "c_parking_gap", 2.5), "小区", "row 5", "value 2.5 is not a whole number", "非负整数"),
    (T2, _set("街镇", "T2", "d_park_activity_coverage", 120), "街镇", "row 5", "value 120 is above 100 %",
     "0-100"),
    (T2, _set("社区", "T2-U01", "c_substandard_walkway_km", "很长"), "社区", "row 5", "is not a number", "km"),
    (T2, lambda wb: setattr(wb["小区"].cell(2, _col(wb["小区"], "c_parking_gap")), "value", "x_unknown_code"), "小区",
     "row 2", "unknown indicator code 'x_unknown_code'", "restore the code"),
    (T2, lambda wb: setattr(wb["小区"].cell(2, _col(wb["小区"], "c_parking_gap")), "value", "u_park_green_pc"), "小区",
     "row 2", "indicator 'u_park_green_pc' is not filled in on this sheet", "remove the column"),
    (T2, lambda wb: setattr(wb["社区"].cell(3, _col(wb["社区"], "c_substandard_walkway_km")), "value", "m"), "社区",
     "row 3", "unit of c_substandard_walkway_km is 'm', the indicator is entered in 'km'", "convert the values to km"),
    (T2, _set("住房(楼栋)", "B08", "h_gas_risk", None), "住房(楼栋)", "row 5",
     "missing required value: the 楼栋 record is started but h_gas_risk are empty", "answer every item"),
    (T2, lambda wb: setattr(wb["填报说明"]["B15"], "value", None),
     "住房(楼栋)", "row 5", "missing required value '数据来源'", "默认数据来源"),
    (T2, lambda wb: setattr(wb["填报说明"]["B11"], "value", None), "填报说明", "row 11",
     "missing required value '填报单位'", "supplying organisation"),
    (T2, lambda wb: setattr(wb["小区"].cell(_row(wb["小区"], "C5"), 1), "value", "C99"), "小区", "row 6",
     "unknown 小区 ID 'C99'", "pre-filled rows"),
    (T2, lambda wb: setattr(wb["小区"].cell(_row(wb["小区"], "C5"), 1), "value", "C4"), "小区", "row 6",
     "小区 'C4' appears twice (first in row 5)", "keep one row"),
    (T2, lambda wb: wb.remove(wb["社区"]), "", "", "sheet '社区' is missing", "without deleting"),
    (T2, lambda wb: setattr(wb["_meta"]["B2"], "value", "other_study"), "_meta", "",
     "the workbook is for study 'other_study', this study is 'demo'", "template of study 'demo'"),
    (T2, lambda wb: setattr(wb["_meta"]["B3"], "value", "2023"), "_meta", "",
     "the workbook is for year '2023', this study is '2024'", "template"),
    (T2, lambda wb: setattr(wb["_meta"]["B4"], "value", "2023"), "_meta", "",
     "the workbook is for indicator edition '2023', this study is '2024'", "edition 2024"),
    (T2, lambda wb: wb.remove(wb["_meta"]), "", "", "not a geotijian fill-in workbook", "geotijian template"),
]


@pytest.mark.parametrize("wb_name,edit,sheet,row,problem,fix", CASES, ids=[c[4][:40] for c in CASES])
def test_every_validation_error_names_workbook_sheet_row_and_fix(plan, filled, tmp_path, wb_name, edit, sheet, row,
                                                                 problem, fix):
    folder = tmp_path / "in"
    shutil.copytree(filled, folder)
    _edit(folder / wb_name, edit)
    res = collect_fillins(folder, plan)
    msgs = [m for m in res.messages() if problem in m]
    assert msgs, res.messages()
    m = msgs[0]
    assert m.startswith(f"fill-in '{wb_name}'") and fix in m.split(". Fix: ")[1]
    if sheet:
        assert f"sheet '{sheet}'" in m
    if row:
        assert f", {row}" in m
    with pytest.raises(LayerError, match="Fix:"):
        res.raise_if_invalid()
    # nothing invalid is rolled up; the other workbooks still are
    assert (res.records["workbook_id"] == "town:T1").any()


def test_definition_changed_since_the_template_is_refused(plan, filled, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(filled, folder)

    def fn(wb):
        ws = wb["_meta"]
        r = next(r for r in range(1, ws.max_row + 1) if ws.cell(r, 1).value == "h_gas_risk")
        ws.cell(r, 2).value = "h_gas_risk#00000000"
    _edit(folder / T2, fn)
    res = collect_fillins(folder, plan)
    assert any("indicator 'h_gas_risk' is defined differently (h_gas_risk#00000000 in the workbook" in m
               for m in res.messages())
    assert not (res.records["workbook_id"] == "town:T2").any()


def test_workbooks_of_another_edition_are_refused(layers, plan, tmp_path):
    # the templates of the same study on the 2023 edition, returned to the 2024 study
    cat23 = indicator_catalogue(edition="2023")
    old = make_plan(layers, cat23, departments=one_department(cat23))
    files = write_fillin_workbooks(old, tmp_path / "tpl2023")
    res = collect_fillins([f for f in files if f.name == T2], plan)
    assert res.messages() == [f"fill-in '{T2}', sheet '_meta': the workbook is for indicator edition '2023', this "
                              "study is '2024'. Fix: fill in the template of study 'demo', 2024, edition 2024 "
                              "(`geotijian template`)"]
    assert res.records.empty and not res.completeness.set_index("workbook_id").loc["town:T2", "returned"]


def test_duplicate_and_foreign_workbooks(plan, filled, tmp_path):
    folder = tmp_path / "in"
    shutil.copytree(filled, folder)
    shutil.copy(folder / T2, folder / "copy_of_T2.xlsx")
    (folder / "notes.xlsx").write_bytes(b"not a workbook")
    res = collect_fillins(folder, plan)
    msgs = res.messages()
    assert any(m.startswith("fill-in 'notes.xlsx': cannot be read as an Excel workbook") for m in msgs)
    assert any("a second workbook for town:T2" in m for m in msgs)


def test_cell_supplied_by_another_workbook(layers, cat, tmp_path):
    # parking gaps supplied by the towns for every compound, the pilot's other compound items by the pilot
    p = make_plan(layers, cat, departments={**one_department(cat), "c_parking_gap": "town"})
    files = write_fillin_workbooks(p, tmp_path / "tpl")
    t1 = next(f for f in files if f.name == "填报_街镇_T1_甲镇.xlsx")
    ws = load_workbook(t1)["小区"]
    r = _row(ws, "C1")
    assert ws.cell(r, _col(ws, "c_no_property_mgmt")).value == NOT_HERE
    assert ws.cell(r, _col(ws, "c_parking_gap")).value is None
    out = tmp_path / "in"
    for wb in p.workbooks.itertuples(index=False):
        fill_workbook(next(f for f in files if f.name == wb.file), answers(p, wb.workbook_id), organisation="x",
                      default_source="y", out=out / wb.file)
    assert collect_fillins(out, p).issues.empty
    _edit(out / t1.name, _set("小区", "C1", "c_no_property_mgmt", "是"))
    msgs = collect_fillins(out, p).messages()
    letter = ws.cell(1, _col(ws, "c_no_property_mgmt")).column_letter
    assert msgs == [f"fill-in '填报_街镇_T1_甲镇.xlsx', sheet '小区', row {r}, column {letter} (id 'C1'): "
                    "c_no_property_mgmt of C1 is supplied by another workbook. Fix: leave the cell marked 不填 empty"]


def test_fill_workbook_refuses_rows_it_does_not_have(plan, templates, tmp_path):
    f = next(p for p in templates if p.name == T2)
    with pytest.raises(LayerError, match="record 'B01' / indicator 'h_gas_risk' is not in the workbook"):
        fill_workbook(f, pd.DataFrame({"record_id": ["B01"], "code": ["h_gas_risk"], "value": ["是"]}),
                      out=tmp_path / "x.xlsx")


def test_col_letter_is_openpyxls():
    """Column letters of the fill-in issues (no openpyxl import when reading workbooks)."""
    from openpyxl.utils import get_column_letter

    from geotijian.indicators.collect import _col_letter

    assert [_col_letter(j) for j in (0, 25, 26, 51, 701, 702, 16383)] == ["A", "Z", "AA", "AZ", "ZZ", "AAA", "XFD"]
    assert all(_col_letter(j) == get_column_letter(j + 1) for j in range(0, 18278, 7))
