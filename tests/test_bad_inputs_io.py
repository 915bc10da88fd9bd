"""Bad input, I/O faults and the command line, as users meet them (issue 14, I/O half).

One case per item: encodings as Chinese offices deliver them, broken OSM XML, output
places that cannot take the outputs, configuration mistakes, DataV-style GeoJSON,
spreadsheet formula injection, unusable survey/hotline/orthophoto data, faults (disk full,
read-only, SIGTERM, a crash inside the final swap, Ctrl-C), CLI argument checks, warnings
on the terminal and the memory guard. Each asserts the exact message (or warning) and that
nothing else changed; CLI cases assert the exit code and that no traceback is printed.

The end-to-end cases share one small generated district (``write_sample(scale=0.12)``,
about 13,000 residents), run once through ``geotijian run``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import textwrap
import types
import time
import warnings
import zipfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
from shapely.geometry import Point, box

import geotijian as gt
from geotijian import settings
from geotijian.errors import (
    ConfigError,
    InputEncodingWarning,
    InputWarning,
    LayerError,
    NetworkError,
    OutputError,
    RasterError,
    StudyTooLargeError,
)
from geotijian.io.tables import defuse_frame, undo_csv_prefix
from geotijian.survey import SURVEY_ITEMS, SurveyWarning, complaint_rates, read_survey

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "layers" / "sample"
GPKG = SAMPLE / "sample_district.gpkg"
CRS = "EPSG:32651"
X0, Y0 = 300000.0, 3460000.0
INJECT = "=cmd|' /C calc'!A0"


def _cli(*args: str, timeout: int = 600, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geotijian.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def _one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The CLI's stderr holds one error line and no traceback; return it."""
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error:" in ln or "interrupted" in ln or "terminated" in ln]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def _tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _units() -> gpd.GeoDataFrame:
    def b(x0, y0, x1, y1):
        return box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)
    return gpd.GeoDataFrame({"unit_id": ["U01", "U02", "U03"], "town_code": ["T1", "T1", "T2"],
                             "population": [6000, 4000, 10000], "committees": ["C1", "C2", "C3"]},
                            geometry=[b(0, 0, 1000, 1000), b(1000, 0, 2000, 1000), b(0, 1000, 2000, 2000)], crs=CRS)


def _lonlat(x: float, y: float) -> tuple[float, float]:
    p = gpd.GeoSeries([Point(X0 + x, Y0 + y)], crs=CRS).to_crs(4326).iloc[0]
    return p.x, p.y


def _survey(n: int = 30, age: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    lon, lat = _lonlat(500, 500)
    df = pd.DataFrame({"respondent_id": [f"R{i + 1:03d}" for i in range(n)], "age": age, "sex": "女",
                       "committee_id": "C1", "lon": lon, "lat": lat,
                       "comment": ["小区停车太难了，希望增加养老服务"] * n})
    for item in SURVEY_ITEMS:
        df[item] = rng.integers(1, 6, n)
    return df


# ============================================================================ 1 encodings

def test_gbk_survey_csv_is_read_and_its_encoding_reported(tmp_path):
    df = _survey()
    p = tmp_path / "问卷.csv"
    df.to_csv(p, index=False, encoding="gbk")  # Excel "CSV (逗号分隔)" on Chinese Windows
    with pytest.raises(UnicodeDecodeError):
        p.read_text(encoding="utf-8")  # the file really is not UTF-8
    with pytest.warns(InputEncodingWarning) as rec:
        res = read_survey(p, units=_units())
    msg = str(rec[0].message)
    assert msg == ("survey (问卷.csv): read as GB18030 (GBK), not UTF-8 (detected by charset-normalizer); "
                   "first text: '女'. If the text looks wrong, save the table as 'CSV UTF-8' in Excel and read "
                   "it again")
    assert len(res.respondents) == 30
    assert res.respondents["sex"].eq("女").all()
    # same answers as the UTF-8 file
    utf8 = tmp_path / "survey_utf8.csv"
    df.to_csv(utf8, index=False, encoding="utf-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputEncodingWarning)  # UTF-8 is not reported
        same = read_survey(utf8, units=_units())
    pd.testing.assert_frame_equal(res.satisfaction, same.satisfaction)


def test_gb18030_hotline_csv_is_read_with_its_categories(tmp_path):
    src = pd.read_csv(SAMPLE / "complaints_12345.csv", encoding="utf-8-sig")
    p = tmp_path / "12345.csv"
    src.to_csv(p, index=False, encoding="gb18030")
    with pytest.warns(InputEncodingWarning, match=r"complaints \(12345\.csv\): read as GB18030 \(GBK\), not "
                                                  r"UTF-8 \(detected by charset-normalizer\); first text: "):
        got = gt.read_layer(p, "complaints")
    assert got["category"].tolist() == src["category"].astype(str).tolist()
    assert got.attrs["geotijian"]["label"] == "complaints (12345.csv)"


@pytest.mark.parametrize("encoding,named", [("gbk", "GB18030 (GBK)"), ("utf-8", "UTF-8")])
def test_shapefile_without_cpg_is_decoded_and_reported(tmp_path, encoding, named):
    names = ["澄浦大型居住社区", "菊园新区"]
    g = gpd.GeoDataFrame({"name": names}, geometry=[box(121.20, 31.30, 121.21, 31.31),
                                                    box(121.22, 31.30, 121.23, 31.31)], crs=4490)
    shp = tmp_path / "towns.shp"
    g.to_file(shp, encoding=encoding, engine="pyogrio")
    shp.with_suffix(".cpg").unlink()  # as delivered: no .cpg
    raw = gpd.read_file(shp, engine="pyogrio")["name"].tolist()
    assert raw != names  # what GDAL alone makes of it: mojibake, no error
    with pytest.warns(InputEncodingWarning) as rec:
        got = gt.read_layer(shp, "towns")
    assert got["name"].tolist() == names
    msg = str(rec[0].message)
    assert msg.startswith(f"towns (towns.shp): the .cpg file is missing (GDAL would read the attributes as "
                          f"ISO-8859-1, garbling Chinese): read them as {named} (")
    assert msg.endswith(f"first text: '澄浦大型居住社区'. If the text looks wrong, add a .cpg file holding the "
                        f"encoding name (e.g. '{'GBK' if encoding == 'gbk' else 'UTF-8'}') beside the .shp")
    # with its .cpg the file is read by GDAL's own rule, silently
    shp.with_suffix(".cpg").write_text("GBK" if encoding == "gbk" else "UTF-8")
    with warnings.catch_warnings():
        warnings.simplefilter("error", InputEncodingWarning)
        assert gt.read_layer(shp, "towns")["name"].tolist() == names


def test_short_gbk_text_is_read_as_gbk_not_big5(tmp_path):
    p = tmp_path / "poi.csv"
    p.write_bytes("facility_id,type,name,lon,lat\nF1,kindergarten,菊园新区,121.25,31.38\n".encode("gbk"))
    with pytest.warns(InputEncodingWarning, match=r"read as GB18030 \(GBK\).*first text: '菊园新区'"):
        assert gt.read_layer(p, "facilities")["name"].tolist() == ["菊园新区"]
    from geotijian.io.text import detect_encoding
    assert detect_encoding("id,name\n1,菊园新区\n".encode("gbk")).encoding == "gb18030"
    assert detect_encoding("id,name\n1,臺北市信義區市府路\n2,高雄市\n".encode("big5")).encoding == "big5"


# ============================================================================ 2 OSM XML

def _osm(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?>\n<osm version="0.6">\n{body}\n</osm>\n'


@pytest.mark.parametrize("node,message", [
    ('<node id="3" lat="thirty-one" lon="121.252"/>',
     "bad.osm: node 3 (node no. 3 in the file, after node 2) has lat='thirty-one', which is not a number of "
     "degrees in -90..90, so the ways through it cannot be drawn. Fix: correct or delete the node in JOSM (or a "
     "text editor), or download the extract again"),
    ('<node lat="31.38" lon="121.252"/>',
     "bad.osm: a <node> (node no. 3 in the file, after node 2) has no id. Fix: repair or delete it in JOSM (or "
     "a text editor), or download the extract again"),
    ('<node id="3" lat="31.38"/>',
     "bad.osm: node 3 (node no. 3 in the file, after node 2) has no lon, so the ways through it cannot be "
     "drawn. Fix: correct or delete the node in JOSM (or a text editor), or download the extract again"),
])
def test_osm_node_with_bad_position_or_id(tmp_path, node, message):
    body = ('<node id="1" lat="31.38" lon="121.250"/><node id="2" lat="31.38" lon="121.251"/>' + node
            + '<way id="10"><nd ref="1"/><nd ref="2"/><tag k="highway" v="residential"/></way>')
    p = tmp_path / "bad.osm"
    p.write_text(_osm(body), encoding="utf-8")
    with pytest.raises(NetworkError) as exc:
        gt.load_osm(p)
    assert str(exc.value) == message


def _toml(tmp_path: Path, extra: str = "", replace: tuple[str, str] | None = None) -> Path:
    text = (SAMPLE / "study.toml").read_text(encoding="utf-8").replace('path = "', f'path = "{SAMPLE}/')
    text = text.replace('last_year = "', f'last_year = "{SAMPLE}/').replace('folder = "', f'folder = "{SAMPLE}/')
    text = text.replace('output = "../../outputs"', f'output = "{tmp_path / "out"}"')
    if replace:
        text = text.replace(*replace)
    p = tmp_path / "study.toml"
    p.write_text(text + extra, encoding="utf-8")
    return p


# ============================================================================ 3 output path is a file

def test_output_folder_that_is_a_file(tmp_path):
    blocker = tmp_path / "outputs"
    blocker.write_text("not a folder")
    toml = _toml(tmp_path, replace=(f'output = "{tmp_path / "out"}"', f'output = "{blocker}"'))
    with pytest.raises(OutputError) as exc:
        gt.run_study(toml, progress=False)
    assert str(exc.value) == (f"output folder {blocker}/sample: {blocker} is a file, not a folder. Fix: set "
                              "study.output (or --out) to a folder, or move the file away")
    assert blocker.read_text() == "not a folder"
    proc = _cli("run", str(toml), "--quiet")
    assert proc.returncode == 2
    assert _one_line_error(proc) == f"geotijian: error: {exc.value}"


# ============================================================================ 4 configuration

def test_unknown_key_in_a_known_section_says_did_you_mean(tmp_path):
    p = _toml(tmp_path, replace=("min_pop = 5000", "min_popp = 5000"))
    with pytest.raises(ConfigError) as exc:
        gt.read_config(p)
    assert str(exc.value) == ("config key 'units.min_popp': unknown key. Fix: did you mean 'min_pop'? known keys "
                              "of [units]: max_pop, min_pop, road_classes, sliver_area_m2")
    proc = _cli("run", str(p), "--quiet")
    assert proc.returncode == 2 and _one_line_error(proc) == f"geotijian: error: {exc.value}"
    q = _toml(tmp_path, replace=("[report]", "[reprot]"))
    with pytest.raises(ConfigError, match=r"config key 'reprot': unknown section. Fix: did you mean 'report'\?"):
        gt.read_config(q)


def test_study_crs_made_for_another_region(tmp_path):
    p = _toml(tmp_path, replace=('crs = "EPSG:32651"', 'crs = "EPSG:3265"'))
    cfg = gt.read_config(p)  # a valid projected CRS: only the data shows it is wrong
    with pytest.raises(ConfigError) as exc:
        gt.load_study(cfg)
    msg = str(exc.value)
    assert msg.startswith("config key 'study.crs': EPSG:3265 (WGS 84 / SCAR IMW ST21-24) does not suit this "
                          "study: it is made for Antarctica - 76°S to 80°S and 60°W to 36°W., about ")
    assert "at the data it stretches lengths by up to " in msg
    assert msg.endswith("(the data lies at 121.25°E, 31.38°N). Fix: use EPSG:32651 (WGS 84 / UTM zone 51N) or "
                        "EPSG:4549 (CGCS2000 / 3-degree Gauss-Kruger CM 120E)")
    # a neighbouring UTM zone is usable but reported
    q = _toml(tmp_path, replace=('crs = "EPSG:32651"', 'crs = "EPSG:32650"'))
    from geotijian.study import _check_study_crs
    cfg2 = gt.read_config(q)
    bnd = gt.read_layer(GPKG, "boundary", layer="boundary", to_crs="EPSG:32650")
    with pytest.warns(gt.CoordinateWarning, match=r"study.crs EPSG:32650 \(WGS 84 / UTM zone 50N\): the data "
                                                  r"lies at 121.25°E, 31.38°N, outside its area of use"):
        _check_study_crs(cfg2, bnd)


@pytest.mark.filterwarnings("ignore:blocks. 1 block:geotijian.errors.RepairWarning")
def test_road_classes_string_is_one_class(tmp_path):
    p = _toml(tmp_path, replace=("max_pop = 12000", 'max_pop = 12000\nroad_classes = "primary"'))
    assert gt.read_config(p).units["road_classes"] == ["primary"]
    p = _toml(tmp_path, replace=("max_pop = 12000", 'max_pop = 12000\nroad_classes = "primary, secondary"'))
    assert gt.read_config(p).units["road_classes"] == ["primary", "secondary"]
    p = _toml(tmp_path, replace=("max_pop = 12000", "max_pop = 12000\nroad_classes = 3"))
    with pytest.raises(ConfigError, match=r"config key 'units.road_classes': must be a list of highway classes, "
                                          r"got 3"):
        gt.read_config(p)
    # the API takes a string as one class too (not its letters)
    s = gt.make_sample_district(scale=0.12)
    kw = dict(barriers=[s["water"], s["rail"]], towns=s["towns"])
    as_str = gt.delineate_blocks(s["roads"], s["boundary"], road_classes="secondary", **kw)
    as_list = gt.delineate_blocks(s["roads"], s["boundary"], road_classes=["secondary"], **kw)
    assert len(as_str) == len(as_list) and as_str.geometry.equals(as_list.geometry)
    with pytest.warns(InputWarning, match=r"road_classes: no road has highway = 'secundary'; blocks are bounded "
                                          r"by the other classes only"):
        gt.delineate_blocks(s["roads"], s["boundary"], road_classes=["secondary", "secundary"], **kw)


def test_wrong_geopackage_layer_lists_the_layers():
    with pytest.raises(LayerError) as exc:
        gt.read_layer(GPKG, "compounds", layer="compound")
    assert str(exc.value) == (
        "layer 'compounds (sample_district.gpkg)': no layer 'compound' in sample_district.gpkg; its layers: "
        "boundary (Polygon), towns (Polygon), committees (Polygon), compounds (Polygon), buildings (Polygon), "
        "roads (LineString), water (Polygon), rail (LineString), parks (Polygon), facilities (Point). "
        "Fix: did you mean layer = 'compounds'? set layer = one of the names listed")


def test_multi_layer_geopackage_without_layer():
    # rule: the layer named like the role is read, and said
    with pytest.warns(InputWarning, match=r"compounds \(sample_district.gpkg\): sample_district.gpkg holds 10 "
                                          r"layers and no layer was named: read the layer named like the role, "
                                          r"'compounds' \(others: boundary, towns,"):
        got = gt.read_layer(GPKG, "compounds")
    assert len(got) == len(gt.read_layer(GPKG, "compounds", layer="compounds"))
    # otherwise an error listing the layers
    with pytest.raises(LayerError) as exc:
        gt.read_layer(GPKG, "population")
    assert str(exc.value).startswith("layer 'population (sample_district.gpkg)': sample_district.gpkg holds 10 "
                                     "layers and none was named: boundary (Polygon), towns (Polygon),")
    assert str(exc.value).endswith('Fix: add layer = "<name>" (in study.toml [layers.<key>], or --...-layer on '
                                   'the command line)')


# ============================================================================ 5 DataV GeoJSON

def test_datav_bare_feature_list_is_read_and_reported(tmp_path):
    ring = [[121.10, 31.20], [121.40, 31.20], [121.40, 31.50], [121.10, 31.50], [121.10, 31.20]]
    feats = [{"type": "Feature", "properties": {"adcode": 310114, "name": "嘉定区", "center": [121.25, 31.38],
                                                "parent": {"adcode": 310000}},
              "geometry": {"type": "Polygon", "coordinates": [ring]}}]
    p = tmp_path / "310114.json"
    p.write_text(json.dumps(feats, ensure_ascii=False), encoding="utf-8")
    with pytest.raises(pyogrio.errors.DataSourceError):
        pyogrio.read_dataframe(p)  # GDAL alone refuses it
    with pytest.warns(InputWarning) as rec:
        got = gt.read_layer(p, "boundary")
    assert str(rec[0].message) == (
        "boundary (310114.json): a bare JSON list of 1 feature(s) (no FeatureCollection, as DataV.GeoAtlas "
        "downloads come) was read as a FeatureCollection in WGS84 lon/lat. DataV boundaries are in GCJ-02: if "
        "this file came from there, add coords = \"gcj02\"")
    assert got["name"].tolist() == ["嘉定区"] and got["center"].tolist() == ["[121.25, 31.38]"]
    assert got.crs.to_epsg() == 32651 and got.area.iloc[0] > 8e8
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"name": "嘉定区"}]), encoding="utf-8")
    with pytest.raises(LayerError, match=r"layer 'boundary \(bad.json\)', feature 0: the JSON list holds an object "
                                         r"with keys name where a GeoJSON feature is expected"):
        gt.read_layer(bad, "boundary")


# ============================================================================ 6 formula injection

def _tables_with_injection() -> dict[str, pd.DataFrame]:
    t = pd.DataFrame({"area_id": ["T1", "T2", "T3"], "area_name": [INJECT, "<b>菊园</b> & 新区", "+86 21 1234"],
                      "value": [-5.0, 3.25, np.nan], "note": ["-5", "@SUM(A1)", "\tx"]})
    return {"indicator_table": t, "strengths": t.iloc[:0], "problems": t, "suggestions": t.iloc[:1]}


def test_formula_injection_never_reaches_excel_csv_or_markdown(tmp_path):
    from openpyxl import load_workbook

    files = gt.write_tables(_tables_with_injection(), tmp_path)
    assert {p.name for p in files} == {"indicator_table.xlsx", "indicator_table.csv", "strengths.csv",
                                       "problems.csv", "suggestions.csv", "indicator_table.md"}
    with zipfile.ZipFile(tmp_path / "indicator_table.xlsx") as z:
        sheets = [n for n in z.namelist() if n.startswith("xl/worksheets/")]
        assert sheets and not any(b"<f>" in z.read(n) for n in sheets)  # no formula anywhere
    ws = load_workbook(tmp_path / "indicator_table.xlsx")["一表(指标评价表)"]
    cells = {c.value: c for row in ws.iter_rows(min_row=2) for c in row}
    for text in (INJECT, "@SUM(A1)", "+86 21 1234"):
        assert cells[text].data_type == "s" and cells[text].quotePrefix  # the exact text, never evaluated
    assert cells[-5.0].data_type == "n" and cells["-5"].data_type == "s"  # numbers stay numbers
    for name in ("indicator_table", "problems", "suggestions"):
        raw = (tmp_path / f"{name}.csv").read_text(encoding="utf-8-sig")
        assert f"'{INJECT}" in raw and "\n" + "=" not in raw and ",=" not in raw
        back = undo_csv_prefix(pd.read_csv(tmp_path / f"{name}.csv", encoding="utf-8-sig", dtype=object))
        assert back.iloc[0].tolist()[:2] == ["T1", INJECT]
    csv = pd.read_csv(tmp_path / "indicator_table.csv", encoding="utf-8-sig", dtype={3: str})
    assert csv.iloc[:2, 2].tolist() == [-5.0, 3.25]  # a numeric column stays numeric
    assert csv.iloc[:, 3].tolist() == ["-5", "'@SUM(A1)", "'\tx"]  # "-5" is a number as text: kept
    md = (tmp_path / "indicator_table.md").read_text(encoding="utf-8")
    assert "<b>" not in md and "&lt;b&gt;菊园&lt;/b&gt; &amp; 新区" in md


def test_defuse_frame_counts_and_keeps_numbers():
    df = pd.DataFrame({"a": [INJECT, "ok", None, "-1.5e3", "-x"], "n": [-1, 2, 3, 4, 5]})
    out, changed = defuse_frame(df)
    assert changed == 2
    assert out["a"].iloc[[0, 1, 3, 4]].tolist() == ["'" + INJECT, "ok", "-1.5e3", "'-x"]
    assert pd.isna(out["a"].iloc[2]) and out["a"].dtype == df["a"].dtype
    assert out["n"].tolist() == [-1, 2, 3, 4, 5] and out["n"].dtype == df["n"].dtype


def test_risky_mask_is_the_per_cell_rule():
    """The vectorised mask of io.tables (first characters at once) says what
    is_formula_like says of each exact str, and False for anything else."""
    from geotijian.io.tables import _risky_mask, is_formula_like

    values = [INJECT, "=1+1", "+86 21", "-5", "-5\n", " -5", "-1.5e3", "-x", "@SUM(A1)", "\tx", "\rx", "\r",
              "=", "", " =x", "中=", "=中", "−5", "😀=", "=😀", "\x00=", "'=x", "+", "-.5", "-5,0", "--5",
              None, np.nan, pd.NA, -5, -1.5, 3, b"=bytes", b"\xff=", np.str_("-z"), ["=x"], "ok", "+3.2 "]
    for col in (pd.Series(values, dtype=object), pd.Series([v for v in values if isinstance(v, str)] + [None],
                                                           dtype="str")):
        want = [type(v) is str and is_formula_like(v) for v in col]
        assert _risky_mask(col).tolist() == want
        if col.dtype == object:   # (the rule's answer on these: the test is not vacuous)
            assert sum(want) == 13
    assert not _risky_mask(pd.Series([-5.0, 2.0])).any()


# ============================================================================ 7 survey, hotline, orthophoto

def test_survey_all_under_16():
    with pytest.raises(LayerError) as exc:
        read_survey(_survey(age=3), units=_units())
    assert str(exc.value) == (
        "layer 'survey': all 30 respondents with an age are under 16 (ages 3-3; first R001, R002, R003), so none "
        "can be counted. Fix: the survey counts residents aged 16+ (Jiading 2024 work plan): check that the age "
        "column holds ages in years, not an age-group code (1, 2, 3 ...)")


def test_survey_scores_outside_the_scale():
    df = _survey()
    for item in SURVEY_ITEMS:
        df[item] = df[item] * 2  # a 1-10 scale
    with pytest.raises(LayerError) as exc:
        read_survey(df, units=_units())
    assert str(exc.value).startswith("layer 'survey': ")
    assert "answers lie outside the 1-5 scale; answers run from 2 to 10: another scale (1-10, 0-10, 1-7)?. Fix: " \
           "give the satisfaction items as whole numbers 1 (very dissatisfied) to 5 (very satisfied)" in str(exc.value)
    # a few stray answers are ignored and reported with counts and the first IDs
    df = _survey()
    df.loc[4, "sat_livable"] = 7
    df.loc[9, "sat_green"] = 0
    with pytest.warns(SurveyWarning) as rec:
        res = read_survey(df, units=_units())
    assert str(rec[0].message) == (
        "survey: answer ignored: 2 answers of 2 respondents: 2 outside 1-5 (first R005, R010) [sat_livable 1, "
        "sat_green 1; e.g. sat_livable = 7 for R005] (every row in survey_issues.csv / SurveyResult.issues)")
    assert len(res.respondents) == 30


def test_survey_duplicated_respondents_are_reported():
    df = _survey()
    df.loc[5, "respondent_id"] = "R001"
    df.loc[6, "respondent_id"] = "R002"
    with pytest.warns(SurveyWarning) as rec:
        res = read_survey(df, units=_units())
    assert str(rec[0].message) == ("survey: excluded: 2 of 30 rows: 2 duplicate respondent_id (first R001, R002) "
                                   "(every row in survey_issues.csv / SurveyResult.issues)")
    assert len(res.respondents) == 28
    assert res.issues["row"].tolist() == [7, 8]


def test_hotline_points_all_outside_the_district():
    units = _units()
    far = gpd.GeoDataFrame({"complaint_id": ["H1", "H2", "H3"], "category": ["噪声"] * 3},
                           geometry=[Point(X0 + 9000 + i, Y0 + 9000) for i in range(3)], crs=CRS)
    far.attrs["geotijian"] = {"label": "hotline (12345.csv)"}
    with pytest.raises(LayerError) as exc:
        complaint_rates(far, units)
    assert str(exc.value) == (
        "layer 'hotline (12345.csv)': all 3 complaint points lie outside every unit (9,900 m from the units at "
        "the median; first H1, H2, H3). Fix: check the lon/lat columns and their coordinate system (Amap/Baidu "
        "exports are GCJ-02/BD-09: add coords = \"gcj02\" or \"bd09\" to [hotline]) or that the file is this "
        "district's")
    some = pd.concat([far, gpd.GeoDataFrame({"complaint_id": ["H4"], "category": ["噪声"]},
                                            geometry=[Point(X0 + 10, Y0 + 10)], crs=CRS)], ignore_index=True)
    some.attrs["geotijian"] = {"label": "hotline (12345.csv)"}
    with pytest.warns(SurveyWarning, match=r"hotline \(12345.csv\): 3 point\(s\) of 4 complaints lie outside every "
                                           r"unit and are not counted \(first H1, H2, H3\)"):
        rates = complaint_rates(some, units)
    assert rates.query("level == 'district' and category == '全部'")["count"].iloc[0] == 1


@pytest.mark.filterwarnings("ignore:zones. none of the:geotijian.errors.CoordinateWarning")
def test_orthophoto_covering_no_unit():
    ortho = gt.read_orthophoto(SAMPLE / "ortho_rgb.tif")
    units = gt.read_layer(GPKG, "committees", layer="committees").rename(columns={"committee_id": "unit_id"})
    far = units.assign(geometry=units.geometry.translate(50_000, 0))
    with pytest.raises(RasterError) as exc:
        gt.imagery_indicators(ortho, far)
    ids = sorted(far["unit_id"])[:3]
    assert str(exc.value) == (f"orthophoto ortho_rgb.tif covers none of the {len(far)} units (first "
                              f"{', '.join(ids)}). Fix: check its georeference and CRS (a GeoTIFF without CRS, or in "
                              "GCJ-02?) against the units, or leave [imagery] out")
    with pytest.warns(InputWarning, match=r"orthophoto ortho_rgb.tif: covers \d+ of 16 units \(0 fully, \d+ in part\); "
                                          r"\d+ without imagery get no green/impervious ratio \(first "):
        out = gt.imagery_indicators(ortho, units)
    assert len(out) == 16


# ============================================================================ 8 faults

@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    """A small generated district delivered as files, with a town named as a formula, a
    committee named with HTML, the survey in GBK and the hotline in GB18030; run once."""
    d = tmp_path_factory.mktemp("tiny")
    gt.write_sample(d, scale=0.12)
    gpkg = d / "sample_district.gpkg"
    layers = {name: pyogrio.read_dataframe(gpkg, layer=name) for name, _ in pyogrio.list_layers(gpkg)}
    layers["towns"].loc[0, "name"] = INJECT
    layers["committees"].loc[0, "name"] = "<script>alert(1)</script>居委会"
    gpkg.unlink()
    for name, g in layers.items():
        pyogrio.write_dataframe(g, gpkg, layer=name)
    for f, enc in (("survey_2024.csv", "gbk"), ("complaints_12345.csv", "gb18030")):
        t = pd.read_csv(d / f, encoding="utf-8-sig", dtype=object)
        t.to_csv(d / f, index=False, encoding=enc)
    text = (SAMPLE / "study.toml").read_text(encoding="utf-8")
    text = text.replace('name = "sample"', 'name = "tiny"').replace('output = "../../outputs"', 'output = "out"')
    text = text.replace('[ledger]\nlast_year = "ledger_2023.csv"\n', "")
    text = re.sub(r"\[fillin\]\n(?:.+\n)+", "", text)  # its pilot community and returned workbooks are the sample's
    text = re.sub(r"\[plan(?:\.\w+)?\]\n(?:.+\n)+", "", text)  # the plan's facility types are the sample's
    assert "[fillin]" not in text and "[plan" not in text
    (d / "study.toml").write_text(text, encoding="utf-8")
    return d


@pytest.fixture(scope="module")
def tiny_run(tiny) -> subprocess.CompletedProcess:
    proc = _cli("run", str(tiny / "study.toml"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    return proc


def test_end_to_end_encodings_injection_and_terminal_warnings(tiny, tiny_run):
    out = tiny / "out" / "tiny"
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    enc = [w for w in run["warnings"] if "InputEncodingWarning" in w]
    assert any("survey (survey_2024.csv): read as GB18030 (GBK), not UTF-8" in w for w in enc)
    assert any("hotline (complaints_12345.csv): read as GB18030 (GBK), not UTF-8" in w for w in enc)
    # the terminal shows the warnings grouped by step and kind, not only their number
    stdout = tiny_run.stdout
    assert f"warnings: {len(run['warnings'])} (all in run.json)" in stdout
    assert "  layers · input encoding (1)" in stdout and "  survey · input encoding (1)" in stdout
    assert "    - survey (survey_2024.csv): read as GB18030 (GBK), not UTF-8" in stdout
    # no formula in any workbook, every formula-like CSV cell quoted, names escaped in Markdown
    with zipfile.ZipFile(out / "indicator_table.xlsx") as z:
        assert not any(b"<f>" in z.read(n) for n in z.namelist() if n.startswith("xl/worksheets/"))
        assert any(INJECT.encode().replace(b"'", b"&apos;") in z.read(n) or INJECT.encode() in z.read(n)
                   for n in z.namelist() if n.startswith("xl/"))
    n_csv = 0
    for p in out.glob("*.csv"):
        text = p.read_text(encoding="utf-8-sig")
        assert ",=" not in text and "\n=" not in text and '"=' not in text, p.name
        n_csv += INJECT in text
    assert n_csv >= 3  # the town's name is in several tables, always as quoted text
    assert "<script>" not in (out / "indicator_table.md").read_text(encoding="utf-8")
    # the survey was read as GBK: its committees matched, respondents counted
    issues = pd.read_csv(out / "survey_issues.csv", encoding="utf-8-sig")
    assert not issues["issue"].astype(str).str.contains("unknown committee").any()


def _study_copy(tiny: Path, tmp_path: Path) -> Path:
    d = tmp_path / "study"
    shutil.copytree(tiny, d, ignore=shutil.ignore_patterns("out"))
    return d


def test_disk_full_while_writing_keeps_old_outputs(tiny, tiny_run, tmp_path, monkeypatch):
    import geotijian.study as study_mod

    out = tiny / "out" / "tiny"
    before = _tree(out)

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device", str(out / "x.gpkg"))

    monkeypatch.setattr(study_mod, "save_figures", full)
    with pytest.raises(OutputError) as exc:
        gt.run_study(tiny / "study.toml", progress=False)
    assert str(exc.value) == (f"output folder {out}: writing the outputs failed (No space left on device: "
                              f"{out / 'x.gpkg'}); the previous outputs are left untouched. Fix: free disk space (or "
                              "fix the folder's permissions), or set study.output to another disk, and run again")
    assert _tree(out) == before
    assert sorted(p.name for p in out.parent.iterdir()) == ["tiny"]  # no staging folder left


def test_free_space_checked_before_the_work(tiny, tmp_path, monkeypatch):
    import geotijian.runlog as runlog

    real = shutil.disk_usage
    monkeypatch.setattr(runlog.shutil, "disk_usage", lambda p: real(p)._replace(free=10_000_000))
    t0 = time.perf_counter()
    with pytest.raises(OutputError, match=r"output folder .*/out/tiny: only 10 MB free on the disk of .*/out, the "
                                          r"outputs need about \d+ MB. Fix: free disk space, or set study.output to "
                                          r"a folder on a larger disk"):
        gt.run_study(tiny / "study.toml", progress=False, output=tmp_path / "out")
    assert time.perf_counter() - t0 < 5  # before any work


def _can_mount_tmpfs(target: Path) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    target.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(target)],
                        capture_output=True).returncode == 0
    return ok


def test_real_tiny_disk_and_read_only_folder(tmp_path):
    """On a real 4 MB tmpfs: a full disk is refused before the work; a read-only one too."""
    mnt = tmp_path / "mnt"
    if not _can_mount_tmpfs(mnt):
        pytest.skip("needs root and tmpfs to mount a tiny disk (the monkeypatched cases run everywhere)")
    try:
        toml = _toml(tmp_path, replace=(f'output = "{tmp_path / "out"}"', f'output = "{mnt}"'))
        proc = _cli("run", str(toml), "--quiet")
        assert proc.returncode == 2
        line = _one_line_error(proc)
        assert line.startswith(f"geotijian: error: output folder {mnt}/sample: only 4 MB free on the disk of {mnt}, "
                               "the outputs need about ")
        subprocess.run(["mount", "-o", "remount,ro", str(mnt)], check=True)
        proc = _cli("run", str(toml), "--quiet")
        assert proc.returncode == 2
        assert _one_line_error(proc) == (f"geotijian: error: output folder {mnt}/sample: {mnt} is not writable "
                                         "(Read-only file system). Fix: set study.output to a folder you can write "
                                         "to, or fix its permissions")
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_read_only_output_folder_checked_before_the_work(tiny, tmp_path, monkeypatch):
    import tempfile

    import geotijian.runlog as runlog

    def denied(*a, **k):
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(tempfile, "NamedTemporaryFile", denied)
    with pytest.raises(OutputError) as exc:
        gt.run_study(tiny / "study.toml", progress=False, output=tmp_path / "ro")
    assert str(exc.value) == (f"output folder {tmp_path / 'ro' / 'tiny'}: {tmp_path / 'ro'} is not writable "
                              "(Permission denied). Fix: set study.output to a folder you can write to, or fix its "
                              "permissions")
    del runlog


_SLOW_RUN = textwrap.dedent("""
    import sys, time
    import geotijian as gt
    import geotijian.study as study_mod
    from geotijian.runlog import staged_output
    def slow(config, progress=True, output=None):
        with staged_output(gt.read_config(config).out_dir) as staging:
            (staging / "half.txt").write_text("half")
            print("staging", staging, flush=True)
            time.sleep(60)
    study_mod.run_study = slow
    gt.run_study = slow
    from geotijian.cli import main
    sys.exit(main(["run", sys.argv[1], "--quiet"]))
""")


def test_sigterm_cleans_the_staging_folder(tiny, tmp_path):
    d = _study_copy(tiny, tmp_path)
    script = tmp_path / "slow.py"
    script.write_text(_SLOW_RUN)
    p = subprocess.Popen([sys.executable, str(script), str(d / "study.toml")], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    assert line.startswith("staging"), p.stderr.read()
    staging = Path(line.split(" ", 1)[1].strip())
    assert staging.is_dir()
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 143
    assert err.strip() == "geotijian: terminated (SIGTERM); no partial output was left"
    assert not staging.exists() and not (d / "out" / "tiny").exists()


_CRASH_SWAP = textwrap.dedent("""
    import os, sys
    from pathlib import Path
    import geotijian.runlog as runlog
    runlog._exchange = lambda a, b: False          # the journaled two renames (non-Linux path)
    calls = []
    def rename(src, dst):
        calls.append(src)
        if len(calls) == 2:
            os._exit(9)                            # power cut between the two renames
        os.replace(src, dst)
    runlog._rename = rename
    with runlog.staged_output(Path(sys.argv[1])) as staging:
        (staging / "result.txt").write_text("new")
""")


def test_crash_between_the_swaps_two_renames_is_recovered(tmp_path):
    final = tmp_path / "out" / "study"
    final.mkdir(parents=True)
    (final / "result.txt").write_text("old")
    script = tmp_path / "crash.py"
    script.write_text(_CRASH_SWAP)
    proc = subprocess.run([sys.executable, str(script), str(final)], capture_output=True, text=True)
    assert proc.returncode == 9
    assert not final.exists()  # the state the crash leaves: no outputs/<study>/
    left = sorted(p.name for p in final.parent.iterdir())
    assert left[0] == ".study.old-" + left[0].rsplit("-", 1)[1] and ".study.swap" in left
    from geotijian.runlog import recover_output
    done = recover_output(final)
    assert done == [f"an earlier run stopped between the two renames of its final swap: its complete outputs were "
                    f"moved into place ({final}); the older outputs were deleted"]
    assert (final / "result.txt").read_text() == "new"
    assert sorted(p.name for p in final.parent.iterdir()) == ["study"]


def test_interrupted_swap_is_recovered_by_the_next_run_and_reported(tiny, tmp_path):
    d = _study_copy(tiny, tmp_path)
    out_root = d / "out"
    out_root.mkdir()
    old = out_root / ".tiny.old-999999999"  # an older version's crash: outputs only in the hidden folder
    old.mkdir()
    (old / "run.json").write_text("{}")
    with settings.temporary(memory_budget_gb=0.001):  # stop right after loading: the report is what counts
        with pytest.raises(StudyTooLargeError):
            gt.run_study(d / "study.toml", progress=False)
    assert (out_root / "tiny" / "run.json").read_text() == "{}"  # put back before any work
    assert not old.exists()


def test_ctrl_c_in_the_first_second(tiny, tmp_path):
    # the command imports nothing heavy before main() can catch Ctrl-C
    probe = subprocess.run([sys.executable, "-c", "import sys, geotijian.cli; print('geopandas' in sys.modules)"],
                           capture_output=True, text=True)
    assert probe.stdout.strip() == "False"
    p = subprocess.Popen([sys.executable, "-m", "geotijian.cli", "run", str(tiny / "study.toml"), "--quiet"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.5)  # inside main(): importing the libraries (seconds) or reading the layers
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert err.strip() == "geotijian: interrupted (Ctrl-C); no partial output was left"


def test_ctrl_c_swallowed_in_a_c_callback_still_stops_the_run(tmp_path):
    """A Ctrl-C that arrives while Python runs inside a C callback (numba caching a kernel
    it compiled, on a first run) is printed and dropped by Python: the command's
    unraisable hook records it instead, quietly, and the run stops at its next step,
    leaving no output."""
    import ctypes
    import io

    from geotijian import cli, runlog

    @ctypes.CFUNCTYPE(None)
    def callback():
        os.kill(os.getpid(), signal.SIGINT)   # KeyboardInterrupt raised in here is swallowed
        time.sleep(0.05)

    seen = []
    hook = sys.unraisablehook
    sys.unraisablehook = cli._lost_interrupts(seen.append)
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            callback()   # returns: the interrupt did not propagate
    finally:
        sys.unraisablehook = hook
    assert seen == [] and err.getvalue() == ""   # recorded, not printed, not passed on
    log = runlog.RunLog(progress=False)
    with pytest.raises(KeyboardInterrupt):
        with log.step("load"):
            pass
    with log.step("network"):   # raised once
        pass
    final = tmp_path / "out"
    runlog.note_lost_interrupt()
    with pytest.raises(KeyboardInterrupt):
        with runlog.staged_output(final) as staging:
            (staging / "result.txt").write_text("partial")
    assert not final.exists() and list(tmp_path.iterdir()) == []   # nothing put in place
    # other unraisable errors still reach the previous hook
    cli._lost_interrupts(seen.append)(types.SimpleNamespace(exc_value=ValueError("x")))
    assert len(seen) == 1


@pytest.mark.parametrize("args,message", [
    (["--min-pop", "9000", "--max-pop", "100"],
     "geotijian units: error: --min-pop (9,000) must be below --max-pop (100): units hold between the two "
     "(default 5,000-12,000 residents)"),
    (["--min-pop", "-5"],
     "geotijian units: error: argument --min-pop: must be at least 1 (persons), got -5 (see geotijian units --help)"),
    (["--max-pop", "12k"],
     "geotijian units: error: argument --max-pop: must be a whole number of persons, got '12k' (see geotijian units "
     "--help)"),
])
def test_units_population_arguments(tmp_path, args, message):
    proc = _cli("units", "--roads", str(GPKG), "--roads-layer", "roads", "--compounds", str(GPKG),
                "--compounds-layer", "compounds", *args, "--out", str(tmp_path / "u.gpkg"))
    assert proc.returncode == 2
    assert proc.stderr.strip() == message
    assert not (tmp_path / "u.gpkg").exists()
    with pytest.raises(ConfigError, match=r"config key 'min_pop': min_pop \(9,000\) must be below max_pop \(100\)"):
        gt.units_from_files(roads=(GPKG, "roads"), compounds=(GPKG, "compounds"), min_pop=9000, max_pop=100,
                            out=str(tmp_path / "u.gpkg"))


def test_check_on_an_empty_csv(tmp_path):
    p = tmp_path / "poi.csv"
    p.write_bytes(b"")
    proc = _cli("check", str(p), "--role", "facilities")
    assert proc.returncode == 2
    assert _one_line_error(proc) == ("geotijian: error: layer 'facilities (poi.csv)': the file is empty (0 bytes, "
                                     "not even a header row). Fix: export the table again with its header row and "
                                     "data")
    p.write_text("facility_id,type,lon,lat\n", encoding="utf-8")
    proc = _cli("check", str(p), "--role", "facilities")
    assert proc.returncode == 2 and "the layer is empty (0 features)" in _one_line_error(proc)


def test_unexpected_error_is_one_line(monkeypatch, capsys):
    from geotijian import cli

    def boom(*a, **k):
        raise RuntimeError("index 7 is out of bounds\nfor axis 0")

    monkeypatch.setattr(gt, "run_study", boom)
    assert cli.main(["run", "x.toml"]) == 1
    err = capsys.readouterr().err
    assert err == ("geotijian: internal error: RuntimeError: index 7 is out of bounds for axis 0 (rerun with --debug "
                   "for the traceback, and please report it)\n")
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "run", "x.toml"])


# ============================================================================ 9 warnings on the terminal

def test_warnings_grouped_for_the_terminal():
    from geotijian.runlog import group_warnings

    recs = [("load", "CoordinateWarning", f"layer 'poi_{i}': points look GCJ-02 shifted") for i in range(5)]
    recs += [("coverage", "AccessWarning", "3 facilities lie farther than 200 m from the network (first F1)"),
             ("units", "GeotijianWarning", "compound X1 alone has 50,000 residents " + "x" * 600)]
    lines = group_warnings(recs)
    assert lines[0] == "warnings: 7 (all in run.json)"
    assert lines[1:6] == ["  load · coordinate (5)", "    - layer 'poi_0': points look GCJ-02 shifted",
                          "    - layer 'poi_1': points look GCJ-02 shifted",
                          "    - layer 'poi_2': points look GCJ-02 shifted", "    … and 2 more of this kind"]
    assert lines[6:8] == ["  coverage · access (1)",
                          "    - 3 facilities lie farther than 200 m from the network (first F1)"]
    assert lines[8] == "  units · general (1)"
    assert lines[-1].endswith("…") and all(len(ln) <= 100 for ln in lines[9:-1])
    assert group_warnings([]) == []


# ============================================================================ 10 memory guard

def test_memory_guard_stops_before_the_heavy_steps(tiny, tmp_path, monkeypatch):
    import geotijian.study as study_mod

    d = _study_copy(tiny, tmp_path)
    # far too big: stopped before reading the layers, from the feature counts in the files
    with settings.temporary(memory_budget_gb=0.05):
        t0 = time.perf_counter()
        with pytest.raises(StudyTooLargeError) as exc:
            gt.run_study(d / "study.toml", progress=False)
        took = time.perf_counter() - t0
    msg = str(exc.value)
    assert msg.startswith("study 'tiny' would need about ")
    assert " of memory at its peak (153 compounds, 800 buildings, " in msg and "153 homes × 27 facility types" in msg
    assert ("but may use 51 MB (memory_budget_gb = 0.05); stopped before loading (sizes counted in the files, at "
            "most 27 facility types). Fix: split it by town: the study has 2 towns. Write "
            "one study.toml per town: its [layers.boundary] the town's polygon, its committees, compounds and "
            "buildings clipped to the town, its roads and facilities to the town plus up to 1 km (so those just "
            "across the edge still serve it; features farther out are refused), then geotijian.run_many([...]) "
            "runs them one after another or on a Dask cluster; or, on a machine with more memory, set [study] "
            "memory_budget_gb = <GB> (or memory_check = false, or `geotijian run --no-memory-check`) to run it "
            "anyway") in msg
    assert took < 30 and not (d / "out" / "tiny").exists()
    # a borderline case is decided after loading, with the types present and the towns' compounds
    monkeypatch.setattr(study_mod, "PRELOAD_MEMORY_MARGIN", 1e9)
    with settings.temporary(memory_budget_gb=0.05):
        with pytest.raises(StudyTooLargeError) as exc:
            gt.run_study(d / "study.toml", progress=False)
    msg = str(exc.value)
    assert "153 homes × 12 facility types" in msg and "stopped after loading, before the heavy steps" in msg
    assert "Fix: split it by town: the study has 2 towns; the largest, 嘉定镇街道 (310114102), holds 120 of the " \
           "153 compounds. Write one study.toml per town" in msg
    assert not (d / "out" / "tiny").exists()
    # the command line: exit 2, one line
    toml = d / "study.toml"
    toml.write_text(toml.read_text(encoding="utf-8").replace(
        'name = "tiny"', 'name = "tiny"\nmemory_budget_gb = 0.05'), encoding="utf-8")
    proc = _cli("run", str(toml), "--quiet")
    assert proc.returncode == 2 and _one_line_error(proc).startswith("geotijian: error: study 'tiny' would need")
    cfg = gt.read_config(toml)
    assert cfg.memory_budget_gb == 0.05 and cfg.memory_check is True


def test_memory_estimate_grows_with_the_inputs():
    from geotijian.resources import check_memory, estimate_memory

    small = {"compounds": 1_199, "buildings": 6_198, "road_segments": 4_000, "facilities": 471, "types": 14,
             "homes_x_types": 16_786}
    big = {k: v * 155 for k, v in small.items()}
    big["types"] = 14
    assert estimate_memory(big) > 10 * estimate_memory(small) > 0
    data = gt.model.StudyData(compounds=gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)] * 10, crs=CRS))
    with settings.temporary(memory_check=False, memory_budget_gb=0.001):
        rec = check_memory(data, types=3)
    assert rec["checked"] is False and rec["size"]["homes_x_types"] == 30
