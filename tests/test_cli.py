"""The `geotijian` command end to end on the bundled sample files."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest

ROOT = Path(__file__).resolve().parents[1]
GPKG = ROOT / "layers" / "sample" / "sample_district.gpkg"


def _cli(*args: str, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geotijian.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def test_coverage_command_writes_gaps(tmp_path):
    out = tmp_path / "gaps.gpkg"
    proc = _cli("coverage", "--network", str(GPKG), "--network-layer", "roads",
                "--homes", str(GPKG), "--homes-layer", "compounds",
                "--facilities", str(GPKG), "--facilities-layer", "facilities",
                "--types", "kindergarten", "primary_school", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    layers = dict(pyogrio.list_layers(out))
    assert {"coverage_gaps", "homes", "service_areas", "facilities"} <= set(layers)
    gaps = pyogrio.read_dataframe(out, layer="coverage_gaps")  # a row per home with a gap
    assert gaps["home_id"].is_unique and (gaps["n_missing"] >= 1).all()
    assert set(";".join(gaps["missing"]).split(";")) <= {"kindergarten", "primary_school"}
    assert (gaps["worst_ratio"] > 1).all()
    assert "kindergarten" in proc.stdout and "share_%" in proc.stdout


def test_coverage_command_reads_gcj02_pois(tmp_path):
    out = tmp_path / "markets.gpkg"
    proc = _cli("coverage", "--network", str(GPKG), "--network-layer", "roads",
                "--homes", str(GPKG), "--homes-layer", "compounds",
                "--facilities", str(GPKG.parent / "facilities_amap_gcj02.csv"), "--coords", "gcj02",
                "--types", "fresh_market", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    line = next(ln for ln in proc.stdout.splitlines() if "fresh_market" in ln)
    share = float(line.split()[1])
    # read as GCJ-02 the markets sit beside the compounds they serve: a real share, not ~0
    assert 30 < share < 90


def test_coverage_command_says_which_types_it_left_out(tmp_path):
    # the Amap file also holds types without a walking distance (convenience stores,
    # canteens, post offices): the command names them instead of skipping them silently
    out = tmp_path / "all.gpkg"
    proc = _cli("coverage", "--network", str(GPKG), "--network-layer", "roads",
                "--homes", str(GPKG), "--homes-layer", "compounds",
                "--facilities", str(GPKG.parent / "facilities_amap_gcj02.csv"), "--coords", "gcj02",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "inputs reported" in proc.stdout
    for code in ("convenience_store", "community_canteen", "post_office"):
        assert f"type '{code}' has no walking distance" in proc.stdout
    assert "fresh_market" in proc.stdout


def test_units_command(tmp_path):
    out = tmp_path / "units.gpkg"
    proc = _cli("units", "--roads", str(GPKG), "--roads-layer", "roads",
                "--compounds", str(GPKG), "--compounds-layer", "compounds",
                "--committees", str(GPKG), "--committees-layer", "committees",
                "--towns", str(GPKG), "--towns-layer", "towns",
                "--boundary", str(GPKG), "--boundary-layer", "boundary",
                "--water", str(GPKG), "--water-layer", "water", "--rail", str(GPKG), "--rail-layer", "rail",
                "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    units = pyogrio.read_dataframe(out, layer="units")
    comp = pyogrio.read_dataframe(out, layer="compounds")
    assert comp["unit_id"].notna().all() and set(comp["unit_id"]) == set(units["unit_id"])
    assert units["population"].sum() == pytest.approx(comp["population"].sum())
    assert "in_range" in proc.stdout


def test_check_command_reports_and_fails_cleanly(tmp_path):
    proc = _cli("check", str(GPKG), "--role", "compounds", "--layer", "compounds")
    assert proc.returncode == 0, proc.stderr
    assert "compounds:" in proc.stdout and "EPSG:4490" in proc.stdout
    bad = tmp_path / "bad.csv"
    bad.write_text("facility_id,name,type,lon,lat\nF1,幼儿园,kindergarten,31.38,121.25\n", encoding="utf-8")
    proc = _cli("check", str(bad), "--role", "facilities")
    assert proc.returncode == 2
    assert "swapped" in proc.stderr and "Fix:" in proc.stderr


def test_init_then_run_reports_the_missing_layer(tmp_path):
    toml = tmp_path / "study.toml"
    assert _cli("init", str(toml)).returncode == 0
    assert _cli("init", str(toml)).returncode == 2  # refuses to overwrite
    proc = _cli("run", str(toml), "--quiet")
    assert proc.returncode == 2
    assert "layers.boundary.path" in proc.stderr and "file not found" in proc.stderr
    proc = _cli("plan", str(toml), "--quiet")  # the renewal plan reads the same study.toml
    assert proc.returncode == 2
    assert "layers.boundary.path" in proc.stderr and "file not found" in proc.stderr


def _sample_toml(tmp_path: Path, fillins: Path) -> Path:
    """The sample study.toml with absolute input paths, outputs and templates in tmp_path and
    the returned workbooks read from ``fillins``."""
    sample = ROOT / "layers" / "sample"
    text = (sample / "study.toml").read_text(encoding="utf-8")
    text = text.replace('path = "', f'path = "{sample}/').replace('last_year = "', f'last_year = "{sample}/')
    text = text.replace('folder = "fillins"', f'folder = "{fillins}"\ntemplates = "{tmp_path / "templates"}"')
    text = text.replace('output = "../../outputs"', f'output = "{tmp_path}"')
    p = tmp_path / "study.toml"
    p.write_text(text, encoding="utf-8")
    return p


def test_template_and_collect_commands(tmp_path):
    import shutil

    from openpyxl import load_workbook

    fillins = tmp_path / "returned"
    shutil.copytree(ROOT / "layers" / "sample" / "fillins", fillins)
    toml = _sample_toml(tmp_path, fillins)
    proc = _cli("template", str(toml))
    assert proc.returncode == 0, proc.stderr
    names = sorted(p.name for p in (tmp_path / "templates").glob("*.xlsx"))
    assert len(names) == 16 and "填报_街镇_310114101_菊园新区.xlsx" in names and "填报_部门_区应急管理局.xlsx" in names
    assert "填报_社区_310114101-U01.xlsx" in proc.stdout and "wrote 16 fill-in workbook(s)" in proc.stdout
    # a returned workbook with a wrong answer: every problem listed, exit code 2
    pilot = fillins / "填报_社区_310114101-U01.xlsx"
    wb = load_workbook(pilot)
    ws = wb["住房(楼栋)"]
    col = next(c.column for c in ws[2] if c.value == "h_gas_risk")
    ws.cell(5, col).value = "不清楚"
    wb.save(pilot)
    proc = _cli("collect", str(toml), "--out", str(tmp_path / "reports"))
    assert proc.returncode == 2
    assert "fill-in '填报_社区_310114101-U01.xlsx', sheet '住房(楼栋)', row 5" in proc.stderr
    assert "h_gas_risk: answer '不清楚' is not 是 or 否. Fix: enter 是 / 否" in proc.stderr
    assert "workbooks returned: 3 of 16" in proc.stdout
    assert (tmp_path / "reports" / "fillin_issues.csv").read_text(encoding="utf-8-sig").count("\n") == 2
