"""One study end to end: the sample district, determinism, atomic outputs, real OSM data,
and scale-out on a Dask LocalCluster."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyogrio
from openpyxl import load_workbook
import pytest

import geotijian as gt
from geotijian import ConfigError

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "layers" / "sample" / "study.toml"
REAL = ROOT / "layers" / "real"

DELIVERABLES = ["sample.gpkg", "maps/problem_map.html", "indicator_table.xlsx", "indicator_table.csv",
                "strengths.csv", "problems.csv", "suggestions.csv", "ledger.csv", "run.json"]


def _sample_copy(tmp_path: Path, text: str | None = None) -> Path:
    """The sample study.toml (or an edited ``text`` of it) written to tmp_path, its input
    paths made absolute and its outputs sent to tmp_path."""
    text = SAMPLE.read_text(encoding="utf-8") if text is None else text
    text = text.replace('path = "', f'path = "{SAMPLE.parent}/').replace('last_year = "', f'last_year = "{SAMPLE.parent}/')
    text = text.replace('folder = "', f'folder = "{SAMPLE.parent}/')
    text = text.replace('output = "../../outputs"', f'output = "{tmp_path}"')
    p = tmp_path / "study.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def sample_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run1")
    return gt.run_study(SAMPLE, progress=False, output=out)


def test_sample_study_writes_every_deliverable(sample_run):
    out = sample_run.out_dir
    for name in DELIVERABLES:
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert list((out / "maps").glob("*.png")), "no static figure written"
    layers = set(pyogrio.list_layers(out / "sample.gpkg")[:, 0])
    assert {"boundary", "units", "blocks", "compounds", "facilities", "coverage_gaps", "problems"} <= layers
    # no staging folder left behind
    assert not list(out.parent.glob(".sample.*"))


def test_sample_study_results_are_consistent(sample_run):
    d = sample_run.data
    # every compound in exactly one unit, population conserved from compounds to units
    assert d.compounds["unit_id"].notna().all()
    assert d.units["population"].sum() == pytest.approx(d.compounds["population"].sum(), rel=1e-9)
    assert (d.homes["home_kind"] == "compound").all()  # residents from an attribute: compounds only
    assert "outside_compounds" not in d.meta["population"]
    assert d.units["unit_id"].is_unique
    # unit-level coverage sums to the district figure
    cov = sample_run.tables["coverage"]
    kg = cov[cov["facility_type"] == "kindergarten"]
    district = kg[kg["level"] == "district"]["covered_population"].iloc[0]
    assert kg[kg["level"] == "unit"]["covered_population"].sum() == pytest.approx(district, rel=1e-9)
    # the problems list and the ledger agree
    assert set(d.problems["problem_id"]) <= set(d.ledger["problem_id"])
    # grouped: one problem per indicator and level, its points in the ledger
    assert not d.problems["problem_id"].duplicated().any()
    assert int(d.problems["point_count"].sum()) == len(d.problem_points)
    assert set(d.problem_points["point_id"]) <= set(d.ledger["point_id"])
    assert len(d.problems) < len(d.problem_points) / 2
    # the problem figure: no colour covers most of it (the old one was a solid blue square)
    from .test_report import dominant_share

    assert dominant_share(sample_run.out_dir / "maps" / "problems.png") < 0.6
    assert {"new", "persisting", "resolved"} >= set(d.ledger["status"])
    run = json.loads((sample_run.out_dir / "run.json").read_text(encoding="utf-8"))
    assert {i["path"].split("/")[-1] for i in run["inputs"]} >= {"sample_district.gpkg", "survey_2024.csv"}
    assert all(len(i["sha256"]) == 64 for i in run["inputs"])
    assert set(run["timings_s"]) >= {"load", "network", "units", "coverage", "indicators", "outputs"}
    assert run["versions"]["geotijian"] == gt.__version__
    text = sample_run.summary()
    assert "units:" in text and "problems:" in text and "kindergarten" in text


def test_sample_reads_its_returned_fillins(sample_run):
    import pandas as pd

    from geotijian.indicators.exchange import read_exchange_table

    out = sample_run.out_dir
    comp = pd.read_csv(out / "fillin_completeness.csv", encoding="utf-8-sig")
    assert comp["returned"].sum() == 3 and set(comp.loc[~comp["returned"], "kind"]) == {"department"}
    missing = pd.read_csv(out / "fillin_missing.csv", encoding="utf-8-sig")
    town = missing[missing["workbook_id"] == "town:310114102"]
    assert list(town["code"]) == ["d_park_activity_coverage"]      # not measured yet by 嘉定镇街道
    ex = read_exchange_table(out / "exchange_table.csv")
    assert set(ex["edition"]) == {"2024"} and set(ex["area_level"]) == {"区", "街镇", "社区", "小区"}
    gas = ex[ex["indicator_code"] == "h_gas_risk"].groupby("area_level")["value"].sum()
    # 栋 → 小区 → 社区 → 街镇 → 区: every level adds up to the district's count
    assert gas["区"] == gas["街镇"] == gas["社区"] >= gas["小区"] > 0
    src = ex.loc[(ex["indicator_code"] == "h_gas_risk") & (ex["area_code"] == "310114101-U01"), "source"].iloc[0]
    assert src.startswith("填报: 育绿居委会(310114101-U01)(育绿居委会)") and "逐栋入户排查" in src
    assert ex.loc[ex["indicator_code"] == "cov_kindergarten", "source"].eq("计算: network_coverage").all()
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["edition"] == "2024" and run["fillin"]["workbooks_returned"] == 3
    assert run["not_computed"]["u_fire_station_coverage"] == "no facility of type fire_station"
    assert {i["path"].split("/")[-1] for i in run["inputs"]} >= {"填报_社区_310114101-U01.xlsx"}
    assert "not_compared" not in set(sample_run.data.ledger["status"])


def test_rerun_gives_identical_files(sample_run, tmp_path):
    again = gt.run_study(SAMPLE, progress=False, output=tmp_path)
    first = {p.relative_to(sample_run.out_dir): p for p in sample_run.out_dir.rglob("*") if p.is_file()}
    second = {p.relative_to(again.out_dir): p for p in again.out_dir.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    for rel, p in first.items():
        if rel.name == "run.json":
            a = json.loads(p.read_text(encoding="utf-8"))
            b = json.loads(second[rel].read_text(encoding="utf-8"))
            for k in ("timings_s", "machine", "started"):
                a.pop(k), b.pop(k)
            assert a == b
            continue
        assert p.read_bytes() == second[rel].read_bytes(), f"{rel} differs between two runs"


def _same_files(a: Path, b: Path) -> None:
    first = {p.relative_to(a): p for p in a.rglob("*") if p.is_file()}
    second = {p.relative_to(b): p for p in b.rglob("*") if p.is_file()}
    assert first.keys() == second.keys()
    for rel, p in first.items():
        if rel.name == "run.json":
            x, y = (json.loads(q.read_text(encoding="utf-8")) for q in (p, second[rel]))
            for k in ("timings_s", "machine", "started"):
                x.pop(k), y.pop(k)
            x["settings"].pop("parallel"), y["settings"].pop("parallel")   # recorded as it was
            # the same warnings, said in the step that drew the map (outputs or maps)
            wx, wy = (sorted(str(w).split("] ", 1)[-1] for w in j.pop("warnings")) for j in (x, y))
            assert x == y and wx == wy
            continue
        assert p.read_bytes() == second[rel].read_bytes(), f"{rel} differs"


def test_outputs_do_not_depend_on_when_the_unions_finish_or_on_workers(sample_run, tmp_path, monkeypatch):
    """The sample's unions are done before its outputs begin (maps drawn with the first
    figures); a district's are not (maps drawn after them, the GeoPackage finished in a
    worker). Both orders, and one process without workers, write the same bytes."""
    from geotijian.access import PendingServiceAreas

    with monkeypatch.context() as m:
        m.setattr(PendingServiceAreas, "done", lambda self: False)   # as if still running
        late = gt.run_study(SAMPLE, progress=False, output=tmp_path / "late")
    assert "maps" in late.log.timings and list(late.log.timings).index("service_areas") > \
        list(late.log.timings).index("towns")
    _same_files(sample_run.out_dir, late.out_dir)
    with gt.settings.temporary(parallel=False):
        alone = gt.run_study(SAMPLE, progress=False, output=tmp_path / "alone")
    _same_files(sample_run.out_dir, alone.out_dir)


def test_sample_workbook_is_what_openpyxl_wrote_cell_by_cell(sample_run, tmp_path):
    """The study's 一表三清单 workbook against the old cell-by-cell code on the same tables:
    the same bytes, and every cell, width, height, pane, filter, validation, conditional
    format and print setting the same when loaded."""
    from geotijian.assess import SHEETS_ZH, _display, _for_workbook, _reference_numbers

    from .workbook_reference import workbook_differences, write_workbook_reference

    d = sample_run.data
    tables = {k: sample_run.tables[k] for k in ("indicator_table", "strengths", "problems", "problem_points",
                                                "suggestions")}
    refs = _reference_numbers(tables)
    sheets = {SHEETS_ZH.get(k, k)[:31]: _display(_for_workbook(v, refs)) for k, v in tables.items()}
    assert sum(len(s) for s in sheets.values()) > 1000
    old = write_workbook_reference(sheets, tmp_path / "old.xlsx", title=f"{d.display_name} {d.year} 年城市体检 一表三清单")
    new = sample_run.out_dir / "indicator_table.xlsx"
    assert workbook_differences(old, new) == []
    assert old.read_bytes() == new.read_bytes()


def test_deliverables_show_units_of_measure_in_chinese(sample_run):
    """The 一表三清单 workbook's 单位 cells and the suggestions' text show the units in
    Chinese (``栋``, ``平方米/人``), not the catalogue's codes (``栋 buildings``,
    ``m2/person``); the values keep the number format their unit's code chooses; years
    print without a thousands separator."""
    import re

    from geotijian.units_of_measure import unit_zh
    from geotijian.workbook import number_format

    from geotijian.assess import SHEETS_ZH, _display, _for_workbook, _reference_numbers

    latin = re.compile(r"[A-Za-z]{2,}")
    out = sample_run.out_dir
    tables = {k: sample_run.tables[k] for k in SHEETS_ZH}
    refs = _reference_numbers(tables)
    sheets = {SHEETS_ZH[k][:31]: _display(_for_workbook(v, refs)) for k, v in tables.items()}
    codes = sample_run.tables["indicator_table"]["unit"].dropna().astype(str)
    assert codes.str.contains(latin).any()   # the sample has codes to translate (m2/person, 栋 buildings)
    wb = load_workbook(out / "indicator_table.xlsx")
    seen = 0
    for ws in wb.worksheets:
        head = [c.value for c in ws[1]]
        if "单位" not in head:
            continue
        ju = head.index("单位")
        jv = next((head.index(h) for h in ("现状值", "参考值", "差距", "超出幅度") if h in head), None)
        raw = sheets[ws.title]["单位"].tolist()   # the codes, as the run hands them to the workbook
        rows = list(ws.iter_rows(min_row=2))
        assert len(rows) == len(raw)
        for row, code in zip(rows, raw):
            shown = row[ju].value
            assert not (shown and latin.search(str(shown))), (ws.title, code, shown)
            if isinstance(code, str):
                assert (shown or "") == unit_zh(code)
                if jv is not None and row[jv].value is not None:
                    assert row[jv].number_format == number_format(code)
            seen += 1
    assert seen > 1000
    years = [c for ws in wb.worksheets for col in ws.iter_cols(min_row=1)
             if col[0].value in ("首次发现", "最近出现") for c in col[1:] if c.value is not None]
    assert years and {c.number_format for c in years} == {"0"}   # 2024, not 2,024
    sugg = sample_run.tables["suggestions"]["suggestion"].astype(str)
    glossed = sugg[sugg.str.contains(r"[\u4e00-\u9fff]\s*(?:buildings|seats|dwellings)|\d(?:km|m2)")]
    assert glossed.empty, glossed.head().tolist()


def test_sample_study_renewal_plan(sample_run):
    """The sample's [plan]: areas, sites, every problem in the project library, outputs."""
    out, d = sample_run.out_dir, sample_run.data
    plan = d.meta["plan"]
    for name in ("project_library.xlsx", "projects.csv", "annual_plan.csv", "renewal_areas.csv", "new_sites.csv",
                 "siting.csv"):
        assert (out / name).is_file(), name
    layers = set(pyogrio.list_layers(out / "sample.gpkg")[:, 0])
    assert {"renewal_areas", "new_sites", "candidate_sites", "projects"} <= layers
    assert set(d.problems["problem_id"]) == set(d.projects["problem_id"])
    assert len(d.renewal_areas) >= 1 and d.renewal_areas["population"].between(5000, 50000).all()
    for r in plan.siting.values():
        assert r.summary["status"] == "optimal" and r.summary["gap"] <= r.summary["mip_rel_gap"]
        assert len(r.sites) <= r.summary["p"]
    run = json.loads((out / "run.json").read_text(encoding="utf-8"))
    assert run["plan"]["siting"][0]["solver"].startswith("HiGHS") and "plan" in run["timings_s"]
    assert "renewal areas:" in sample_run.summary() and "projects:" in sample_run.summary()
    wb = load_workbook(out / "project_library.xlsx", read_only=True)
    ws = wb["更新项目储备库"]
    head = [c.value for c in next(ws.iter_rows(min_row=1, max_row=1))]
    cell = next(ws.iter_rows(min_row=2, max_row=2))[head.index("涉及居民(人)")]
    assert isinstance(cell.value, int) and cell.number_format == "#,##0"
    wb.close()


def test_failing_step_leaves_previous_outputs(sample_run, monkeypatch, tmp_path):
    import geotijian.report as report_mod   # the district map's writer (drawn in a worker: it sees the patch)

    out_root = sample_run.out_dir.parent
    before = {p: p.read_bytes() for p in sample_run.out_dir.rglob("*") if p.is_file()}

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash while writing the map")

    monkeypatch.setattr(report_mod, "save_problem_map", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        gt.run_study(SAMPLE, progress=False, output=out_root)
    after = {p: p.read_bytes() for p in sample_run.out_dir.rglob("*") if p.is_file()}
    assert before == after
    assert not [p for p in out_root.iterdir() if p.name.startswith(".sample.")]


def test_failing_service_area_union_is_raised_by_the_run(monkeypatch, tmp_path):
    """The service areas' unions run in a background thread from the coverage step: a
    GEOS error there is raised by run_study as it was raised, and nothing is written."""
    from shapely.errors import GEOSException

    import geotijian.access_areas as areas_mod

    def boom(*args, **kwargs):
        raise GEOSException("TopologyException: simulated side location conflict")

    monkeypatch.setattr(areas_mod, "_street_space", boom)
    with pytest.raises(GEOSException, match="simulated side location conflict"):
        gt.run_study(SAMPLE, progress=False, output=tmp_path)
    assert not (tmp_path / "sample").exists()


def test_unknown_indicator_code_in_config(tmp_path):
    text = SAMPLE.read_text(encoding="utf-8").replace(
        '[report]', '[indicators.reference]\nno_such_indicator = 3\n\n[report]')
    with pytest.raises(ConfigError) as err:
        gt.run_study(_sample_copy(tmp_path, text), progress=False, output=tmp_path)
    assert "indicators.reference" in err.value.key and "no_such_indicator" in str(err.value)


def test_cli_run_prints_summary(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "geotijian.cli", "run", str(_sample_copy(tmp_path)), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    assert "problem_map.html" in proc.stdout and "units:" in proc.stdout


@pytest.fixture(scope="module")
def real_run(tmp_path_factory, shared_data):
    out = tmp_path_factory.mktemp("real")
    return gt.run_study(REAL / "yangpu_tongji.toml", progress=False, output=out)


def test_real_osm_study_end_to_end(real_run):
    d = real_run.data
    assert d.from_osm and "OpenStreetMap" in d.attribution
    assert len(d.blocks) >= 10
    assert len(d.units) >= 1
    # population from building floor area: the extract holds thousands of residents
    assert d.compounds["population"].sum() > 1000
    # every resident from the buildings is on a home (a compound, or housing outside every
    # compound kept as a home of its own) and in a unit (issue 14)
    assert d.units["population"].sum() == pytest.approx(d.homes["population"].sum(), rel=1e-9)
    assert d.homes["population"].sum() == pytest.approx(d.meta["population"]["source_total"], rel=1e-9)
    outside = d.meta["population"]["outside_compounds"]
    assert outside["kept_as"] == "homes"
    assert (d.homes["home_kind"] == "building").sum() == outside["buildings"]
    assert d.homes.loc[d.homes["home_kind"] == "building", "population"].sum() == pytest.approx(outside["residents"])
    cov = real_run.tables["coverage"]
    assert (cov["level"] == "district").any()
    html = (real_run.out_dir / "maps" / "problem_map.html").read_text(encoding="utf-8")
    assert "OpenStreetMap" in html
    meta = pyogrio.read_info(real_run.out_dir / "yangpu_tongji.gpkg", layer="units")
    assert meta["features"] == len(d.units)


def test_scale_out_on_dask_localcluster(tmp_path, shared_data):
    """Many studies as independent tasks on a Dask cluster: the same code path as a laptop."""
    distributed = pytest.importorskip("distributed")
    studies = [REAL / "yangpu_tongji.toml", REAL / "beijing_haidian.toml"]
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster, distributed.Client(cluster) as client:
        table = gt.run_many(studies, client=client, output=tmp_path)
    assert table["study"].tolist() == ["yangpu_tongji", "beijing_haidian"]
    assert (table["units"] >= 1).all()
    for out in table["out_dir"]:
        assert (Path(out) / "maps" / "problem_map.html").is_file()


def test_amap_pois_read_without_gcj02_are_flagged(tmp_path):
    """Forgetting coords = "gcj02" on Amap POIs is caught: the run warns, naming the layer and the fix."""
    cfg = _sample_copy(tmp_path, SAMPLE.read_text(encoding="utf-8").replace('coords = "gcj02"\n', ""))
    import warnings as w

    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        gt.load_study(cfg)
    msgs = [str(c.message) for c in caught if issubclass(c.category, gt.CoordinateWarning)]
    assert any("poi_amap" in m and 'coords = "gcj02"' in m for m in msgs), msgs
    # the correctly declared sample raises no such warning
    with w.catch_warnings(record=True) as caught:
        w.simplefilter("always")
        gt.load_study(SAMPLE)
    assert not [c for c in caught if issubclass(c.category, gt.CoordinateWarning)]


def test_unknown_facility_type_is_a_config_error_before_any_work(tmp_path):
    p = _sample_copy(tmp_path, SAMPLE.read_text(encoding="utf-8").replace(
        "[network]", '[facilities]\ntypes = ["kindergarten", "spaceport"]\n\n[network]'))
    with pytest.raises(ConfigError) as err:
        gt.run_study(p, progress=False, output=tmp_path)
    assert err.value.key == "facilities.types" and "spaceport" in str(err.value)
    assert not (tmp_path / "sample").exists()


def test_sample_results_equal_mains_snapshot(sample_run):
    """Coverage shares, units, problems and ledger of the sample equal main's before the
    district-scale work (tests/data/sample_results.json, see tests/results_snapshot.py)."""
    from .results_snapshot import SNAPSHOT, results_snapshot

    want = json.loads(SNAPSHOT.read_text(encoding="utf-8"))
    got = json.loads(json.dumps(results_snapshot(sample_run)))
    for key in ("coverage", "units", "compound_units", "problems", "problem_list", "ledger"):
        assert len(got[key]) == len(want[key]), f"{key}: {len(got[key])} rows, main had {len(want[key])}"
        for i, (g, w) in enumerate(zip(got[key], want[key])):
            assert g.keys() == w.keys(), f"{key} row {i}: columns {sorted(g)} != {sorted(w)}"
            for col, wv in w.items():
                gv = g[col]
                if isinstance(wv, float) and isinstance(gv, (int, float)):
                    assert gv == pytest.approx(wv, rel=1e-9, abs=1e-9), f"{key} row {i} {col}: {gv} != {wv}"
                else:
                    rid = w.get("point_id") or w.get("problem_id") or w.get("unit_id") or w.get("area_id")
                    assert gv == wv, f"{key} row {i} ({rid}) {col}: {gv!r} != {wv!r}"


def test_service_areas_start_before_the_other_layers_are_read(monkeypatch):
    """The run reads the roads and facilities, builds the network and starts the service
    areas' unions, and only then reads the other layers (step "layers"), beside the unions."""
    from geotijian import study
    from geotijian.config import read_config
    from geotijian.runlog import RunLog

    seen: dict = {}
    start = study._start_areas

    def spy_start(data, *args, **kwargs):
        seen["at_start"] = {r: getattr(data, r) is not None for r in ("roads", "facilities", "compounds",
                                                                      "buildings", "towns", "complaints")}
        return start(data, *args, **kwargs)

    class Stop(Exception):
        pass

    def spy_units(cfg, data):
        seen["at_units"] = {r: getattr(data, r) is not None for r in ("compounds", "buildings", "towns",
                                                                      "complaints")}
        seen["checks"] = {k for k in ("alignment", "topology", "memory") if k in data.meta}
        raise Stop

    monkeypatch.setattr(study, "_start_areas", spy_start)
    monkeypatch.setattr(study, "_units_step", spy_units)
    log = RunLog(progress=False)
    with pytest.raises(Stop):
        study._run(read_config(SAMPLE), log)
    assert seen["at_start"] == {"roads": True, "facilities": True, "compounds": False, "buildings": False,
                                "towns": False, "complaints": False}
    assert seen["at_units"] == {"compounds": True, "buildings": True, "towns": True, "complaints": True}
    assert seen["checks"] == {"alignment", "topology", "memory"}
    assert list(log.timings) == ["load", "network", "layers", "units"]
    # load_study still reads everything at once, in the same order of checks
    data, _ = study.load_study(read_config(SAMPLE))
    assert all(getattr(data, r) is not None for r in ("roads", "facilities", "compounds", "buildings", "towns"))
    assert list(data.meta["alignment"]) == ["committees", "compounds", "buildings", "parks", "facilities",
                                            "poi_amap"]
