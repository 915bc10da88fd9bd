"""Editions of the indicator system, definition fingerprints, the exchange table, the
year-over-year table and the ledger refusing to compare different definitions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from geotijian import settings
from geotijian.assess import read_ledger, update_ledger, write_ledger
from geotijian.errors import ConfigError, LayerError
from geotijian.indicators import (
    definition_id,
    edition_table,
    indicator_catalogue,
    indicator_definitions,
    list_editions,
)
from geotijian.indicators.exchange import (
    EXCHANGE_COLUMNS,
    compare_years,
    exchange_table,
    read_exchange_table,
    write_exchange_table,
)


# ----------------------------------------------------------------------------- editions

def test_packaged_editions():
    e = list_editions().set_index("edition")
    assert list(e.index) == ["2023", "2024"]
    assert "unconfirmed" in e.loc["2024", "confidence"] and "L2024" in e.loc["2024", "source"]
    t = edition_table("2024")
    national = t[t["list"] == "national"]
    # the 2024 national basic list: 61 = 住房 10, 小区(社区) 12, 街区 8, 城区 31, numbered 1-61
    assert national["indicator_level"].value_counts().to_dict() == {"城区": 31, "小区(社区)": 12, "住房": 10, "街区": 8}
    assert list(national["seq"].astype(int)) == list(range(1, 62))
    # every reference value states its source and confidence
    ref = t[t["reference_value"] != ""]
    assert (ref["reference_source"] != "").all() and (ref["reference_confidence"] != "").all()
    assert (t.loc[t["reference_confidence"].str.contains("unconfirmed"), "reference_value"] != "").any()
    with pytest.raises(ConfigError, match="unknown edition '2019'. Fix: use one of: 2023, 2024"):
        edition_table("2019")


def test_changed_definitions_are_new_codes():
    c23 = indicator_catalogue(edition="2023").set_index("code")
    c24 = indicator_catalogue(edition="2024").set_index("code")
    # the 2023 小区 item counts facilities; the 2024 one counts compounds lacking them: two codes
    assert "c_elderly_facility_gap" in c23.index and "c_elderly_facility_gap" not in c24.index
    assert c24.loc["c_elderly_missing_compounds", "name_zh"] == "未达标配建养老服务设施的小区数量"
    # rail: residents within 800 m (2023) vs the commuting share (2024)
    assert "t_metro_coverage" in c23.index and c24.loc["u_rail_commute_share", "seq"] == "45"
    assert c24.loc["u_rail_commute_share", "reference_value"] == 30.0
    # 11 城区 items missing before 2024 exist now, four redefined ones have new codes
    new_city = {"u_fuel_station_safety", "u_shelter_area_pc", "u_maternal_child_health_gap", "u_black_odorous_water",
                "u_heritage_vacancy", "u_heritage_damage_events", "u_protected_objects_added", "u_peak_vehicle_speed",
                "u_affordable_housing_share", "u_drainage_emergency_capacity", "u_pipeline_monitoring",
                "u_heritage_district_demolition", "u_rail_commute_share", "u_construction_accidents",
                "u_ops_platform_coverage"}
    assert new_city <= set(c24.index) and not new_city & set(c23.index)
    # a definition shared by both editions has one fingerprint; the edition may word it differently
    assert c23.loc["h_water_quality", "definition"] == c24.loc["h_water_quality", "definition"]
    assert c24.loc["h_water_quality", "name_zh"] == "入户水质不达标的住宅数量"
    defs = indicator_definitions()
    assert defs["code"].is_unique and defs["definition"].is_unique


def test_definition_fingerprint_is_stable():
    # pinned: a change here silently breaks every year-over-year comparison
    assert definition_id("h_gas_risk", "存在燃气安全隐患的住宅数量", "栋", "lower_better") == \
        definition_id(" h_gas_risk", "存在燃气安全隐患的住宅数量 ", "栋", "lower_better")
    assert definition_id("x", "名", "%", "higher_better") != definition_id("x", "名", "‰", "higher_better")
    assert indicator_catalogue(edition="2024").set_index("code").loc["h_gas_risk", "definition"] == \
        "h_gas_risk#1521f61c"


def test_default_edition_include_and_custom_fill_in(tmp_path):
    assert indicator_catalogue()["edition"].eq(settings.indicator_edition).all()
    with settings.temporary(indicator_edition="2023"):
        assert "c_kindergarten_gap" in set(indicator_catalogue()["code"])
    c = indicator_catalogue({"edition": "2024", "include": ["u_cluster_size"],
                             "custom": [{"code": "x_river", "name_zh": "滨水步道贯通率", "unit": "%",
                                         "direction": "higher_better", "dimension": "宜居共建", "method": "fill_in",
                                         "indicator_level": "街区"}]}).set_index("code")
    assert c.loc["u_cluster_size", "list"] == "study" and c.loc["u_cluster_size", "reference_value"] == 50
    x = c.loc["x_river"]
    assert (x["list"], x["fill_in"], x["record"], x["rollup"], x["supplier"]) == ("study", "yes", "town", "none",
                                                                                  "town")
    with pytest.raises(ConfigError, match="indicators.include"):
        indicator_catalogue({"include": ["u_clusters_size"]})
    with pytest.raises(ConfigError, match=r"x_bad.*record"):
        indicator_catalogue({"custom": [{"code": "x_bad", "name_zh": "x", "unit": "个", "direction": "lower_better",
                                         "dimension": "宜居共建", "record": "street"}]})
    with pytest.raises(ConfigError, match="unknown indicator code 'c_kindergarten_gap' in edition 2024"):
        indicator_catalogue({"reference": {"c_kindergarten_gap": 0}})


# ----------------------------------------------------------------------------- exchange table and year over year

def _values(rows):
    return pd.DataFrame(rows, columns=["level", "area_id", "code", "value", "source"])


def test_exchange_table_documented_escaped_and_read_back(tmp_path):
    cat = indicator_catalogue(edition="2024")
    v = _values([("district", "district", "u_sewage_collection", 82.5, "填报: 区水务局"),
                 ("unit", "T1-U01", "cov_kindergarten", 55.0, ""),
                 ("compound", "C1", "h_gas_risk", 2.0, "=cmd|' /C calc'!A0"),
                 ("town", "T1", "c_parking_gap", np.nan, "")])
    t = exchange_table(v, cat, study="demo", year=2024, area_names={("compound", "C1"): "@一号小区"})
    assert list(t.columns) == EXCHANGE_COLUMNS and len(t) == 3            # no value, no row
    assert list(t["area_level"]) == ["区", "社区", "小区"]
    r = t.set_index("indicator_code")
    assert r.loc["cov_kindergarten", "source"] == "计算: network_coverage"
    assert r.loc["u_sewage_collection", "indicator_level"] == "城区" and r.loc["u_sewage_collection", "unit"] == "%"
    assert r.loc["h_gas_risk", "definition"] == "h_gas_risk#1521f61c"
    files = write_exchange_table(t, tmp_path / "exchange_table.csv")
    text = files[0].read_text(encoding="utf-8-sig")
    assert "'=cmd" in text and "'@一号小区" in text                  # never a formula in a spreadsheet
    assert "| definition |" in files[1].read_text(encoding="utf-8")
    back = read_exchange_table(files[0])
    assert back.loc[back["indicator_code"] == "h_gas_risk", "source"].iloc[0] == "=cmd|' /C calc'!A0"
    pd.testing.assert_frame_equal(back, t, check_dtype=False)
    with pytest.raises(LayerError, match="not in the catalogue"):
        exchange_table(_values([("unit", "U1", "c_kindergarten_gap", 1.0, "")]), cat, study="demo", year=2024)


def test_year_over_year_compares_like_with_like():
    c23, c24 = indicator_catalogue(edition="2023"), indicator_catalogue(edition="2024")
    last = exchange_table(_values([("unit", "U1", "u_park_green_pc", 6.0, ""), ("unit", "U1", "c_kindergarten_gap", 2, ""),
                                   ("unit", "U2", "u_park_green_pc", 9.0, "")]), c23, study="demo", year=2023)
    this = exchange_table(_values([("unit", "U1", "u_park_green_pc", 7.5, ""),
                                   ("unit", "U1", "c_kindergarten_missing_compounds", 3, "")]), c24, study="demo",
                          year=2024)
    y = compare_years(last, this).set_index(["area_code", "indicator_code"])
    assert y.loc[("U1", "u_park_green_pc"), "change"] == pytest.approx(1.5) and y.loc[("U1", "u_park_green_pc"),
                                                                                          "comparable"]
    assert not y.loc[("U1", "c_kindergarten_gap"), "comparable"]
    assert y.loc[("U1", "c_kindergarten_gap"), "note"] == "not in 2024 (edition 2024)"
    assert y.loc[("U1", "c_kindergarten_missing_compounds"), "note"] == "not in 2023 (edition 2023)"
    assert y.loc[("U2", "u_park_green_pc"), "note"] == "no value in 2024"
    # one code, two definitions: refused
    bad = this.copy()
    bad.loc[bad["indicator_code"] == "u_park_green_pc", "definition"] = "u_park_green_pc#deadbeef"
    with pytest.raises(LayerError, match="indicator 'u_park_green_pc' is defined differently.*new code"):
        compare_years(last, bad)


# ----------------------------------------------------------------------------- the ledger

def test_ledger_records_definitions_and_refuses_a_changed_one(tmp_path):
    cat = indicator_catalogue(edition="2024")
    gdef = cat.set_index("code").loc["g_far", "definition"]
    last = pd.DataFrame({"problem_id": ["g_far@U1", "c_kindergarten_gap@U1", "cov_nursery@U2", "cov_bus_stop@U1"],
                         "indicator_code": ["g_far", "c_kindergarten_gap", "cov_nursery", "cov_bus_stop"],
                         "area_id": ["U1", "U1", "U2", "U1"], "status": ["new"] * 4, "first_seen": [2023] * 4,
                         "last_seen": [2023] * 4, "history": ["2023:new"] * 4,
                         "definition": [gdef, "c_kindergarten_gap#0a0a0a0a", "", ""]})
    this = pd.DataFrame({"problem_id": ["g_far@U1"], "indicator_code": ["g_far"], "area_id": ["U1"]})
    values = pd.DataFrame({"level": ["unit", "unit"], "area_id": ["U1", "U1"], "code": ["g_far", "cov_bus_stop"],
                           "value": [3.1, 100.0]})
    # issue 20 keeps the ledger per problem point: its key is point_id (last year's problem_id read as one)
    led = update_ledger(last, this, year=2024, catalogue=cat, values=values).set_index("point_id")
    assert led.loc["g_far@U1", ["status", "definition"]].tolist() == ["persisting", gdef]
    # the 2024 edition no longer holds c_kindergarten_gap: not compared, never "resolved"
    assert led.loc["c_kindergarten_gap@U1", "status"] == "not_compared"
    assert led.loc["c_kindergarten_gap@U1", "history"] == "2023:new; 2024:not_compared"
    # no value this year (e.g. a fill-in not returned): not compared either
    assert led.loc["cov_nursery@U2", "status"] == "not_compared"
    assert led.loc["cov_bus_stop@U1", "status"] == "resolved"
    p = write_ledger(led.reset_index(), tmp_path / "ledger.csv")
    assert read_ledger(p).set_index("point_id").loc["g_far@U1", "definition"] == gdef
    # the same code defined differently last year: refused
    changed = last.assign(definition=["g_far#12345678", "", "", ""])
    with pytest.raises(LayerError, match="last year's ledger.*'g_far' is defined differently: g_far#12345678 then"):
        update_ledger(changed, this, year=2024, catalogue=cat)
    # without a catalogue: as before (no definition column)
    assert "definition" not in update_ledger(last.drop(columns="definition"), this, year=2024).columns

