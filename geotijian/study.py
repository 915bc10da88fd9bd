"""One study end to end: ``study.toml`` → every deliverable in ``outputs/<study>/``.

``run_study(path)`` loads the layers (and OSM), builds the walk network, puts residents on
compounds, delineates blocks and community check-up units, computes life-circle coverage,
imagery and all indicators, reads the survey and hotline data, judges, updates the problem
ledger and writes the GeoPackage, the offline problem map, figures, the 一表三清单 and
``run.json``. Each step is timed and its warnings recorded; the outputs are staged and
swapped into place only when every step succeeded.

Determinism: every deliverable is byte-identical for the same inputs; ``run.json`` differs
only in its ``timings_s``, ``machine`` (peak memory per step, the memory budget) and
``started`` fields (they describe the run, not the result).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import importlib
import json
import warnings
from collections.abc import Callable
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from . import settings
from .access import (
    coverage_gaps,
    report_summary,
    service_areas,
    service_coverage,
)
from .assess import write_ledger, write_tables
from .config import StudyConfig, did_you_mean, read_config
from .errors import ConfigError, CoordinateWarning, LayerError, OutputError
from .facilities import facility_catalogue
from .indicators import indicator_catalogue
from .io.alignment import alignment_message, check_alignment
from .io.atomic import write_text_atomic
from .io.layers import ROLES, read_layer
from .io.osm import load_osm
from .io.tables import write_csv
from .io.topology import check_topology
from .model import StudyData
from .network import build_network
from .resources import check_memory, estimate_memory, memory_budget, size_from_files
from .runlog import (
    RunLog,
    check_output,
    frozen_gc,
    group_warnings,
    package_versions,
    recover_output,
    sha256,
    staged_output,
)
from .study_load import (  # noqa: F401  (_check_study_crs: importable from geotijian.study, as before)
    _check_study_crs,
    _load_network_layers,
    _load_other_layers,
    load_study,
)
from .study_fillin import (
    _edition_run_json,
    _fillin_plan,
    _write_edition_outputs,
)
from .study_report import (
    _finish_gpkg,
    _map_tasks,
    _report_tasks,
    _start_report,
    _warm_outputs,
    report_options,
    report_study,
)
from .study_steps import (
    FCA_TYPES,  # noqa: F401  (importable from geotijian.study, as before)
    _coverage_step,
    _indicators_step,
    _start_areas,
    _judgement_step,
    _ledger_step,
    _survey_step,
    _units_step,
    _with_access_rule,
)
from .units import build_units, range_compliance
from .workers import ForkedTasks



def _deferred(module: str, name: str) -> Any:
    """``module.name``, imported on its first call: the maps and figures (matplotlib,
    folium), the renewal plan (scipy's MILP) and the orthophoto (rasterio) cost about a
    second of imports, paid only by a run that gets to them, not by ``import``."""
    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module, __package__), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = f"geotijian{module}.{name} (imported on first use)"
    return call


imagery_indicators = _deferred(".imagery", "imagery_indicators")
read_orthophoto = _deferred(".imagery", "read_orthophoto")
write_plan = _deferred(".plan", "write_plan")
save_figures = _deferred(".report", "save_figures")
start_gpkg = _deferred(".report.gpkg", "start_gpkg")
write_gpkg = _deferred(".report", "write_gpkg")
_plan_json = _deferred(".study_plan", "_plan_json")
_plan_step = _deferred(".study_plan", "_plan_step")

__all__ = ["run_study", "report_study", "report_options", "load_study", "StudyResult", "coverage_from_files",
           "units_from_files", "run_many", "make_fillin_templates", "collect_study_fillins", "FillinTemplates"]

STEPS = ("load", "network", "layers", "units", "coverage", "imagery", "indicators",
         "survey", "judgement", "ledger", "plan", "tables", "outputs", "towns", "service_areas", "maps",
         "report")
#: (a study whose service areas are done when its outputs begin has no "maps" step: its
#: maps are drawn in "outputs", and "service_areas" comes before "tables")


@dataclass
class StudyResult:
    """What a run produced: the study data, the files written and the run log."""

    config: StudyConfig
    data: StudyData
    out_dir: Path
    files: list[Path] = field(default_factory=list)
    log: RunLog | None = None
    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    #: the service areas' unions still running in the background (``run_study`` collects
    #: them after writing the tables, which do not read them); None once collected
    pending_areas: Any = field(default=None, repr=False)

    def summary(self) -> str:
        """Terminal summary: units in range, coverage per facility type, problems per class,
        the renewal plan when it ran."""
        d = self.data
        lines = [f"study {self.config.name} ({self.config.level}, {self.config.year}) → {self.out_dir}"]
        if d.units is not None:
            comp = range_compliance(d.units)
            lines.append(f"units: {len(d.units)} (in range {int((~d.units['flag'].astype(bool)).sum())}, "
                         f"flagged {int(d.units['flag'].astype(bool).sum())}); blocks: "
                         f"{0 if d.blocks is None else len(d.blocks)}")
            lines.append(_indent(comp.to_string(index=False)))
        cov = d.meta.get("coverage_district")
        if cov is not None and len(cov):
            lines.append("coverage (district, share of residents within walking distance):")
            lines.append(_indent(cov.to_string(index=False)))
        if d.problems is not None:
            counts = d.problems["problem_class"].value_counts()
            npts = 0 if d.problem_points is None else len(d.problem_points)
            lines.append(f"problems: {len(d.problems)} with {npts} problem points (问题点位); by class: "
                         + ", ".join(f"{c} {int(counts.get(c, 0))}" for c in ("限时解决", "尽力解决", "长期谋划")))
            for r in d.problems.head(5).itertuples():
                lines.append(f"  {r.seq}. [{r.problem_class}] {r.description}")
            if len(d.problems) > 5:
                lines.append(f"  … {len(d.problems) - 5} more in problems.csv / 问题清单")
        if d.meta.get("fillin"):
            f = d.meta["fillin"]
            lines.append(f"fill-in: {f['workbooks_returned']} of {f['workbooks_expected']} workbooks returned, "
                         f"{f['values_filled']:,} of {f['values_expected']:,} values (fillin_completeness.csv)")
        if d.ledger is not None and len(d.ledger):
            st = d.ledger["status"].value_counts()
            lines.append("ledger: " + ", ".join(f"{k} {int(v)}" for k, v in sorted(st.items())))
        if d.meta.get("plan") is not None:
            lines.extend(d.meta["plan"].summary_lines())
            lines.append(f"plan:   {self.out_dir / 'project_library.xlsx'}")
        lines.append(f"map:    {self.out_dir / 'maps' / 'problem_map.html'}")
        towns = sorted((self.out_dir / "maps" / "towns").glob("*.html"))
        if towns:
            lines.append(f"        + {len(towns)} town maps in {towns[0].parent} (linked from the map)")
        lines.append(f"tables: {self.out_dir / 'indicator_table.xlsx'}")
        lines.append(f"gpkg:   {self.out_dir / (self.config.name + '.gpkg')}")
        if self.log is not None and self.log.records:
            lines.extend(group_warnings(self.log.records))
        return "\n".join(lines)


def _indent(text: str) -> str:
    return "\n".join("  " + ln for ln in text.splitlines())


# --------------------------------------------------------------------------- running
def run_study(config: str | Path | StudyConfig, *, progress: bool = True,
              output: str | Path | None = None, plan: bool | None = None) -> StudyResult:
    """Run a study end to end and write its outputs.

    Parameters
    ----------
    config : path or StudyConfig
        The ``study.toml``.
    progress : bool
        Show a progress bar per step on stderr.
    output : path, optional
        Output root replacing ``study.output``; results go to ``<output>/<study name>/``.
    plan : bool, optional
        Run the renewal plan step (更新片区, siting, project library) or not, whatever
        ``[plan]`` says; default: when ``[plan]`` is given and not ``enabled = false``.

    Returns
    -------
    StudyResult
        ``summary()`` gives the terminal summary; ``files`` the written files.
    """
    cfg = config if isinstance(config, StudyConfig) else read_config(config)
    if output is not None:
        cfg.output = Path(output).resolve()
    if plan is not None:
        cfg.plan = {**cfg.plan, "enabled": bool(plan)}
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    # before any work: where the outputs go must take them (a file in the way, a read-only
    # folder, a full disk), and what an interrupted earlier run left there is repaired
    recovered = recover_output(cfg.out_dir)
    check_output(cfg.out_dir, need_bytes=output_size_estimate(cfg))
    log = RunLog(progress=progress)
    for msg in recovered:
        log.add_warning("outputs", "RecoveryWarning", msg)
    log.start(len(STEPS))
    saved = settings.current()
    try:
        settings.configure(metric_crs=cfg.crs)
        if "max_snap_distance_m" in cfg.network:
            settings.configure(max_snap_distance_m=cfg.network["max_snap_distance_m"])
        if "floor_area_per_person_m2" in cfg.population:
            settings.configure(floor_area_per_person_m2=cfg.population["floor_area_per_person_m2"])
        if not cfg.memory_check:
            settings.configure(memory_check=False)
        if cfg.memory_budget_gb is not None:
            settings.configure(memory_budget_gb=cfg.memory_budget_gb)
        with frozen_gc() as log.freeze_gc:   # each step's survivors frozen (runlog.frozen_gc)
            result = _run(cfg, log, defer_areas=True)
            try:
                with staged_output(cfg.out_dir) as staging:
                    files = _write_all(cfg, result, log, staging, started)
                    run = _run_json(cfg, result, log, started)
                    write_text_atomic(staging / "run.json", json.dumps(run, ensure_ascii=False, indent=2, default=str))
            except OutputError:
                raise
            except OSError as exc:  # disk full, quota, permissions changed during the run
                raise OutputError(cfg.out_dir, f"writing the outputs failed ({exc.strerror or exc}"
                                               f"{': ' + str(exc.filename) if exc.filename else ''}); the previous "
                                               "outputs are left untouched",
                                  "free disk space (or fix the folder's permissions), or set study.output to "
                                  "another disk, and run again") from exc
        result.files = sorted({cfg.out_dir / f.relative_to(staging) for f in files + [staging / "run.json"]})
        result.out_dir = cfg.out_dir
        return result
    finally:
        settings.configure(**saved)
        log.freeze_gc = False
        log.close()


#: Outputs of a study take about this many bytes per byte of vector input (GeoPackage with
#: every derived layer, map, tables), plus a fixed part for figures and map libraries:
#: measured on the sample district at scale 1 (4.8 MB of vector input, 24.8 MB out) and
#: scale 18.4 (91.3 MB in, 380 MB out), with a 10 % margin at the larger.
OUTPUT_BYTES_PER_INPUT_BYTE = 4.5
OUTPUT_FIXED_BYTES = 20e6


def output_size_estimate(cfg: StudyConfig) -> int:
    """Disk space the outputs of a study will take (bytes), from its input files' sizes.

    Rasters count only by their quicklook; vector and table inputs by
    ``OUTPUT_BYTES_PER_INPUT_BYTE``; the staging folder holds a full new copy while the
    previous outputs still exist, so this is what must be free.
    """
    raster = {Path(p) for p in (cfg.imagery.get("path"), cfg.population.get("raster")) if p is not None}
    total = 0.0
    for p in cfg.input_files():
        if p in raster or not p.is_file():
            continue
        # OSM XML is verbose text: its layers take about a third of its size once read
        total += p.stat().st_size / (3.0 if p.name.endswith((".osm", ".osm.bz2", ".xml")) else 1.0)
    return int(OUTPUT_FIXED_BYTES + OUTPUT_BYTES_PER_INPUT_BYTE * total)


def _collect_areas(res: StudyResult) -> Any:
    """The service areas of the pending unions (raising the first union's error)."""
    pending, res.pending_areas = res.pending_areas, None
    return pending.result() if pending is not None else res.data.service_areas


def _run(cfg: StudyConfig, log: RunLog, *, collect: bool = True, defer_areas: bool = False) -> StudyResult:

    res = StudyResult(config=cfg, data=StudyData(), out_dir=cfg.out_dir, log=log)
    fcat = facility_catalogue(cfg.facilities.get("catalogue"))
    if cfg.facilities.get("distances"):
        unknown = [c for c in cfg.facilities["distances"] if c not in set(fcat["code"])]
        if unknown:
            raise ConfigError(f"facilities.distances.{unknown[0]}", "unknown facility type code"
                              + did_you_mean(unknown[0], fcat["code"]),
                              "use a code of the facility catalogue (`geotijian types`) or add the type with "
                              "facilities.catalogue")
        fcat = fcat.copy()
        for code, metres in cfg.facilities["distances"].items():
            fcat.loc[fcat["code"] == code, "walk_distance_m"] = float(metres)
    types = cfg.facilities.get("types")
    unknown = [t for t in types or () if t not in set(fcat["code"])]
    if unknown:
        raise ConfigError("facilities.types", f"unknown facility type {unknown[0]!r}"
                          + did_you_mean(unknown[0], fcat["code"]),
                          "use codes of the facility catalogue (`geotijian types` lists them)")
    icat = _indicator_catalogue(cfg)

    walkable = set(fcat.loc[fcat["walk_distance_m"].notna(), "code"])
    with log.step("load"):   # what the network and the service areas need: roads, facilities
        # would the study fit in memory? First from the feature counts in the files (a clear
        # case stops before reading them), then exactly once every layer is read (step
        # "layers", before the heavy steps; the unions it stops are cancelled)
        _check_memory_before_loading(cfg, len(types) if types else len(walkable))
        loading = _load_network_layers(cfg)
        data, osm = loading.data, loading.osm
        res.data = data
    with log.step("network"):
        if cfg.network["source"] == "osm":
            data.network = build_network(osm.graph, crs=cfg.crs)
        else:
            data.network = build_network(data.roads, crs=cfg.crs)
        areas = _start_areas(data, fcat, types, osm)   # their unions run beside the study from here
    try:  # ... beside the steps (none but the outputs reads them)
        with log.step("layers"):   # the other layers and their checks, read while the unions run
            _load_other_layers(cfg, loading)
            n_types = len(types) if types else len(walkable & set(data.facilities["type"].astype(str)))
            data.meta["memory"] = check_memory(data, types=n_types, name=cfg.name)
        with log.step("units"):
            all_homes = _units_step(cfg, data)
        with log.step("coverage"):
            assessed = _coverage_step(data, all_homes, fcat, types, osm, res)
            if assessed != [r[0] for r in areas.rows]:   # the same types, or the coverage step's error
                raise RuntimeError(f"service areas started for {[r[0] for r in areas.rows]}, "
                                   f"coverage assessed {assessed}")
        with log.step("imagery"):
            if cfg.imagery:
                ortho = read_orthophoto(cfg.imagery["path"], bands=cfg.imagery.get("bands"))
                data.imagery = imagery_indicators(ortho, data.units)
                data.meta["ortho"] = ortho
        with log.step("indicators"):
            _indicators_step(cfg, data, icat, res, collect)
        with log.step("survey"):
            satisfaction, complaints = _survey_step(cfg, data, res)
        with log.step("judgement"):
            _judgement_step(cfg, data, icat, res, satisfaction, complaints)
        with log.step("ledger"):
            _ledger_step(cfg, data, icat, res)
        with log.step("plan"):
            if cfg.plan.get("enabled"):
                _plan_step(cfg, data, fcat, osm.entrances if osm is not None else None, log.timings)
    except BaseException:
        areas.cancel()  # the unions not started are dropped: the error is not kept waiting
        raise
    res.pending_areas = areas
    if not defer_areas:
        with log.step("service_areas"):  # what is left of the unions (this thread helps)
            data.service_areas = _collect_areas(res)
    return res


#: Before loading, the facility types present are not known (the catalogue's count is an
#: upper bound): only an estimate this much above the budget stops the run there.
PRELOAD_MEMORY_MARGIN = 1.25


def _check_memory_before_loading(cfg: StudyConfig, max_types: int) -> None:
    size = size_from_files(cfg, types=max_types)
    if size is None:
        return
    towns = None
    if cfg.layers_of("towns"):
        import pyogrio

        src = cfg.layers_of("towns")[0]
        with contextlib.suppress(Exception):
            towns = pyogrio.read_dataframe(src.path, layer=src.layer, read_geometry=False)
    budget, _ = memory_budget()
    if budget is not None and estimate_memory(size) > PRELOAD_MEMORY_MARGIN * budget:
        check_memory(size=size, types=max_types, name=cfg.name, towns=towns,
                     when="before loading (sizes counted in the files, at most "
                          f"{max_types} facility types)")


def _indicator_catalogue(cfg: StudyConfig) -> pd.DataFrame:
    refs = cfg.indicators.get("reference", {})
    overrides: dict[str, Any] = {k: cfg.indicators[k] for k in ("edition", "include") if k in cfg.indicators}
    if cfg.indicators.get("custom"):
        overrides["custom"] = cfg.indicators["custom"]
    if refs:
        overrides["reference"] = refs
    if cfg.indicators.get("coverage_reference") is not None:
        overrides["coverage_reference"] = cfg.indicators["coverage_reference"]
    try:
        cat = indicator_catalogue(overrides or None)
    except ConfigError:
        raise
    except (LayerError, ValueError, KeyError) as exc:
        key = "indicators.reference" if refs else "indicators.custom"
        msg = str(exc)
        for code in refs:
            if code in msg:
                key = f"indicators.reference.{code}"
        raise ConfigError(key, msg.split(". Fix:")[0], "use a code of the indicator catalogue "
                          "(geotijian.indicator_catalogue()) or add it as a 特色指标 in indicators.custom") from None
    return cat


# --------------------------------------------------------------------------- outputs
def _write_table_outputs(cfg: StudyConfig, res: StudyResult, folder: Path,
                         poll: Callable[[], None] = lambda: None) -> list[Path]:
    """The outputs that do not read the service areas: the 一表三清单, ledger, CSV tables,
    the edition's outputs and the renewal plan's tables (``poll``: called between them,
    to start the workers whose slots have freed)."""
    data = res.data
    files: list[Path] = []
    if data.meta.get("plan") is not None:
        files.extend(write_plan(data.meta["plan"], folder))
        poll()
    tables = {k: res.tables[k] for k in ("indicator_table", "strengths", "problems", "problem_points",
                                         "suggestions")}
    files.extend(write_tables(tables, folder, title=f"{data.display_name} {data.year} 年城市体检 一表三清单"))
    poll()
    files.append(write_ledger(data.ledger, folder / "ledger.csv"))
    extra = {"coverage": "coverage_by_area.csv", "sample_plan": "survey_sample_plan.csv",
             "complaint_rates": "complaint_rates.csv", "survey_issues": "survey_issues.csv"}
    for key, name in extra.items():
        t = res.tables.get(key)
        if t is not None:
            files.append(write_csv(t, folder / name))  # formula-like text from the data defused
    if data.units is not None:
        files.append(write_csv(range_compliance(data.units), folder / "units_range.csv"))
    files.extend(_write_edition_outputs(cfg, res, folder))
    return files


def _write_all(cfg: StudyConfig, res: StudyResult, log: RunLog, folder: Path, started: str) -> list[Path]:
    """Every output into ``folder``: first what does not read the service areas (tables,
    the GeoPackage's other layers, the units and problems figures, the town packages'
    tables and figures) while their unions finish in the background; then the service
    areas' layer, the maps, the coverage-gap figures and the reports, in worker processes
    (:class:`~geotijian.workers.ForkedTasks`), each report as soon as the figures and map
    it shows are drawn. When the unions are done before the outputs begin (a small study),
    the figures and maps are drawn by the workers while this thread begins the reports."""
    data = res.data
    lang = cfg.report.get("lang", "zh")
    fig = {"lang": lang, "indicator": cfg.report.get("indicator"), "title": cfg.report.get("map_title"),
           "dpi": cfg.report.get("dpi", settings.figure_dpi),
           "formats": cfg.report.get("formats", settings.figure_formats)}
    # unions already done (a small study): the workers may begin with the first figures
    early = res.pending_areas is None or res.pending_areas.done()
    _warm_outputs()
    report = work = None
    files: list[Path] = []
    try:
        figures = partial(save_figures, data, folder / "maps", kinds=("units", "problems"), **fig)
        if early:
            with log.step("service_areas"):
                data.service_areas = _collect_areas(res)
                # workers draw the figures and maps while this thread writes the tables, the
                # GeoPackage and the towns' tables
                tasks = [("figures", None, 1.0, figures), *_map_tasks(cfg, res, folder, fig)]
                work = ForkedTasks([t[2:] for t in tasks])
        poll = work.poll if work is not None else (lambda: None)   # workers started as slots free
        with log.step("tables"):
            files += _write_table_outputs(cfg, res, folder, poll)
        poll()
        with log.step("outputs"):   # the GeoPackage but its service areas; figures but the gaps
            gpkg = start_gpkg(data, folder / f"{cfg.name}.gpkg", lang=lang, in_place=True)
            if not early:   # here: the unions may run in a thread of this process, no fork now
                files += figures()
        poll()
        with log.step("towns"):     # the report's inputs, the town packages' tables and figures
            if cfg.report.get("docx", True):
                # the report reads what the run wrote (run.json too), never recomputing
                write_text_atomic(folder / "run.json", json.dumps(_run_json(cfg, res, log, started),
                                                                  ensure_ascii=False, indent=2, default=str))
                poll()
                report = _start_report(cfg, res, folder)
        if not early:
            with log.step("service_areas"):  # what is left of the unions (this thread helps)
                data.service_areas = _collect_areas(res)
        with log.step("maps"):   # in worker processes where the platform forks (workers.py)
            if work is None:
                tasks = _map_tasks(cfg, res, folder, fig)
                work = ForkedTasks([t[2:] for t in tasks])
            cost = len(data.units) if data.units is not None else 1.0
            (finish,) = work.add([(cost, partial(_finish_gpkg, gpkg, data))])   # the service areas' layer
            docs = _report_tasks(cfg, report, tasks) if report is not None else []
            work.add(docs)
            work.wait([*range(len(tasks)), finish])
        with log.step("report"):   # the reports still being written
            files += [f for written in work.result() for f in written]
    except BaseException:
        if res.pending_areas is not None:
            res.pending_areas.cancel()  # the error is not kept waiting
        if work is not None:
            work.close()
        raise
    return files


def _run_json(cfg: StudyConfig, res: StudyResult, log: RunLog, started: str) -> dict:
    data = res.data
    inputs = [{"path": str(p), "sha256": sha256(p), "bytes": p.stat().st_size}
              for p in cfg.input_files() if p.is_file()]
    counts = {name: len(g) for name, g in data.layers().items()}
    mem = data.meta.get("memory", {})
    return {
        "study": cfg.name, "title": res.data.display_name, "level": cfg.level, "year": cfg.year, "crs": cfg.crs,
        "config": str(cfg.path), "started": started,
        "inputs": inputs, "osm_sources": data.meta.get("osm_sources", []),
        "osm_extent": data.meta.get("osm_extent", {}),
        "attribution": data.attribution,
        "versions": package_versions(), "settings": settings.current(),
        "counts": counts,
        "population": data.meta.get("population", {}),
        "units_feasibility": data.meta.get("units_feasibility", []),
        "topology": data.meta.get("topology", {}),
        "alignment": data.meta.get("alignment", {}),
        "clipped": data.meta.get("clipped", {}),
        "compound_pieces": data.meta.get("compound_pieces", {}),
        "plan": _plan_json(data),
        "memory_estimate": {k: v for k, v in mem.items() if k in ("size", "estimate_gb")},
        **_edition_run_json(data),
        "timings_s": log.timings,
        "machine": {"memory_peak_mb": log.memory_mb,
                    **{k: v for k, v in mem.items() if k in ("budget_gb", "budget_from", "checked")}},
        "facts": data.meta.get("facts", {}),
        "warnings": log.warnings,
    }


# --------------------------------------------------------------------------- scripting
def _opt_layer(spec: tuple[str | None, str | None], role: str, study_area: Any = None):
    path, layer = spec
    if path is None:
        return None
    return read_layer(path, role, layer=layer, study_area=study_area)


def coverage_from_files(*, network: str, homes: str, facilities: str, out: str,
                        network_layer: str | None = None, homes_layer: str | None = None,
                        homes_role: str = "compounds", facilities_layer: str | None = None,
                        coords: str | None = None, types: list[str] | None = None,
                        progress: bool = False) -> str:
    """Life-circle coverage gaps from files (``geotijian coverage``).

    Parameters
    ----------
    network : path
        Roads layer (GeoPackage/Shapefile/GeoJSON) or OSM file (``.osm``/``.osm.pbf``).
    homes : path
        Compounds, buildings or population points (``homes_role``) with population.
    facilities : path
        Facilities with a ``type`` field (facility catalogue codes); ``coords="gcj02"``
        for POIs copied from Amap.
    out : path
        GeoPackage written atomically with the layers ``coverage_gaps``, ``homes``,
        ``service_areas`` and ``facilities``.

    Returns
    -------
    str
        District coverage per facility type (share of residents within walking distance).
    """
    from .population import building_population

    net_path = Path(network)
    data = StudyData(name=Path(out).stem)
    if net_path.name.endswith((".osm", ".osm.pbf", ".pbf", ".xml")):
        osm = load_osm(net_path)
        graph = osm.graph
        data.meta["osm_sources"] = [str(net_path)]
    else:
        graph = read_layer(net_path, "roads", layer=network_layer)
    net = build_network(graph)
    h = read_layer(homes, homes_role, layer=homes_layer)
    id_field = ROLES[homes_role].id_field
    if homes_role == "buildings":
        h = h.assign(population=building_population(h)[0])
    if "population" not in h.columns or h["population"].isna().all():
        raise LayerError(f"homes ({Path(homes).name})", "no population field",
                         fix="add a population column (persons) to the homes layer")
    ids = h[id_field]
    if "home_id" in h.columns and id_field != "home_id":
        # the layer brings its own home_id: it is the ID when the role's ID was only generated
        generated = any(r.startswith(f"no {id_field} column") for r in h.attrs.get("geotijian", {}).get("repairs", []))
        if generated:
            own = h["home_id"]
            bad = own.isna() | own.astype(str).duplicated()
            if bad.any():
                k = int(np.flatnonzero(bad.to_numpy())[0])
                raise LayerError(f"homes ({Path(homes).name})", f"home_id is empty or repeated ({own.iloc[k]!r})",
                                 feature=k, count=int(bad.sum()), fix=f"give every home a unique home_id or {id_field}")
            ids = own.astype(str)
    # a fresh frame: a home_id column of the layer is never doubled (issue 14, bug 3)
    h = gpd.GeoDataFrame({"home_id": ids.to_numpy(), "population": h["population"].to_numpy()},
                         geometry=h.geometry.values, crs=h.crs)
    fac = read_layer(facilities, "facilities", coords=coords, layer=facilities_layer)
    # facilities declared in the wrong coordinate system, either way (issue 14)
    aligned = check_alignment(fac, net.edges(), declared=coords or "wgs84", warn=False) if len(fac) >= 10 else {}
    said = (alignment_message(aligned, f"facilities ({Path(facilities).name})", cli=True)
            if aligned.get("verdict") not in (None, "aligned", "too_few") else None)
    if said:
        warnings.warn(said, CoordinateWarning, stacklevel=2)
    cov = service_coverage(net, h, fac, types=types, progress=progress)
    data.homes = cov.per_home
    data.coverage_gaps = coverage_gaps(cov)
    data.service_areas = service_areas(net, fac, types=cov.types)
    data.facilities = _with_access_rule(fac, cov.facilities)
    write_gpkg(data, out)
    district = cov.per_area[cov.per_area["level"] == "district"]
    table = pd.DataFrame({"type": district["facility_type"].to_numpy(),
                          "share_%": (district["share"] * 100).round(1).to_numpy(),
                          "not_covered": district["not_covered"].round(0).astype(int).to_numpy()})
    text = f"wrote {out}\n" + table.to_string(index=False)
    if said:
        text += f"\ncoordinates: {said}"
    if len(cov.report):  # what was left out or reached only far away, said on the terminal
        text += "\ninputs reported (features left out or unreachable, not dropped silently):\n" + \
            "\n".join(f"  {ln}" for ln in report_summary(cov.report))
    return text


def units_from_files(*, roads, compounds, out: str, committees=(None, None), towns=(None, None),
                     boundary=(None, None), water=(None, None), rail=(None, None),
                     min_pop: int | None = None, max_pop: int | None = None) -> str:
    """Community check-up units from files (``geotijian units``).

    Each layer argument is a ``(path, layer)`` pair (layer ``None`` for single-layer
    files). Writes ``units``, ``blocks`` and ``compounds`` (with ``unit_id``) to the ``out``
    GeoPackage atomically and returns the range-compliance table.
    """
    for key, v in (("min_pop", min_pop), ("max_pop", max_pop)):
        if v is not None and (isinstance(v, bool) or not isinstance(v, (int, float)) or v < 1):
            raise ConfigError(key, f"must be a positive number of persons, got {v!r}", "e.g. 5000 and 12000")
    lo = settings.unit_min_pop if min_pop is None else min_pop
    hi = settings.unit_max_pop if max_pop is None else max_pop
    if lo >= hi:
        raise ConfigError("min_pop", f"min_pop ({lo:,}) must be below max_pop ({hi:,})",
                          "units hold between the two (default 5,000-12,000 residents)")
    bnd = _opt_layer(boundary, "boundary")
    tw = _opt_layer(towns, "towns", bnd)
    cm = _opt_layer(committees, "committees", bnd)
    cp = _opt_layer(compounds, "compounds", bnd)
    rd = _opt_layer(roads, "roads", bnd)
    wa = _opt_layer(water, "water", bnd)
    check_topology(boundary=bnd, towns=tw, committees=cm, compounds=cp, water=wa)
    built = build_units(rd, cp, boundary=bnd, committees=cm, towns=tw,
                        water=wa, rail=_opt_layer(rail, "rail", bnd),
                        min_pop=min_pop, max_pop=max_pop)
    blocks, units = built["blocks"], built["units"]
    data = StudyData(name=Path(out).stem, boundary=bnd, towns=tw, committees=cm, blocks=blocks, units=units,
                     compounds=built["compounds"])
    write_gpkg(data, out)
    return f"wrote {out}: {len(units)} units from {len(blocks)} blocks\n" + \
        built["compliance"].to_string(index=False)


# --------------------------------------------------------------------------- scale-out
def _run_task(config: str, output: str | None) -> dict:
    """One study as a cluster task: runs it and returns a small, picklable record."""
    res = run_study(config, progress=False, output=output)
    units = res.data.units
    return {
        "study": res.config.name,
        "config": str(config),
        "out_dir": str(res.out_dir),
        "units": 0 if units is None else len(units),
        "units_flagged": 0 if units is None else int(units["flag"].astype(bool).sum()),
        "population": 0.0 if units is None else float(units["population"].sum()),
        "problems": 0 if res.data.problems is None else len(res.data.problems),
        "timings_s": dict(res.log.timings) if res.log else {},
        "summary": res.summary(),
    }


def run_many(configs: list[str | Path], *, client: Any = None,
             output: str | Path | None = None) -> pd.DataFrame:
    """Run many independent studies (towns of a city, or cities), optionally on Dask.

    Parameters
    ----------
    configs : list of paths
        ``study.toml`` files; each is one independent task.
    client : dask.distributed.Client, optional
        Submit one task per study to this cluster (``LocalCluster`` or a scheduler
        address); without it the studies run one after another in this process.
    output : path, optional
        Output root replacing each study's ``study.output``.

    Returns
    -------
    DataFrame
        One row per study (in the order given): study, out_dir, units, units_flagged,
        population, problems, timings_s, summary.
    """
    paths = [str(Path(c).resolve()) for c in configs]
    out = None if output is None else str(Path(output).resolve())
    if client is None:
        records = [_run_task(p, out) for p in paths]
    else:
        futures = client.map(_run_task, paths, [out] * len(paths), pure=False)
        records = client.gather(futures)
    return pd.DataFrame.from_records(records)


# --------------------------------------------------------------------------- editions and fill-in
def _prepared_run(cfg: StudyConfig, *, progress: bool) -> StudyResult:
    """The study's computation (no outputs, no fill-in collection), under its settings."""
    saved = settings.current()
    log = RunLog(progress=progress)
    log.start(STEPS.index("tables") + 1)   # the compute steps and the service areas
    try:
        settings.configure(metric_crs=cfg.crs)
        if "max_snap_distance_m" in cfg.network:
            settings.configure(max_snap_distance_m=cfg.network["max_snap_distance_m"])
        if "floor_area_per_person_m2" in cfg.population:
            settings.configure(floor_area_per_person_m2=cfg.population["floor_area_per_person_m2"])
        return _run(cfg, log, collect=False)
    finally:
        settings.configure(**saved)
        log.close()


@dataclass
class FillinTemplates:
    """What ``make_fillin_templates`` wrote: the workbooks, a summary and the plan."""

    files: list[Path]
    summary: pd.DataFrame
    plan: Any


def make_fillin_templates(config: str | Path | StudyConfig, *, out: str | Path | None = None,
                          progress: bool = False) -> FillinTemplates:
    """Write the study's fill-in workbooks (``geotijian template``).

    Runs the study's computation (not its outputs), decides who fills in which indicator
    (:func:`geotijian.indicators.fillin.fillin_plan`: the edition's fill-in indicators the
    study does not compute, by department, town and pilot community) and writes one
    workbook per supplier.

    Parameters
    ----------
    config : path or StudyConfig
    out : path, optional
        Folder (default ``[fillin] templates``, else ``<output>/<name>_fillin_templates``).

    Returns
    -------
    FillinTemplates
        ``files`` (the workbooks), ``summary`` (``file, kind, title, sheets, rows,
        values``) and ``plan`` (:class:`~geotijian.indicators.fillin.FillinPlan`).
    """
    from .indicators.fillin import write_fillin_workbooks

    cfg = config if isinstance(config, StudyConfig) else read_config(config)
    res = _prepared_run(cfg, progress=progress)
    plan = _fillin_plan(cfg, res.data, res.data.meta["catalogue"], res.data.indicator_values)
    folder = Path(out) if out is not None else cfg.fillin.get("templates") or cfg.output / f"{cfg.name}_fillin_templates"
    from . import __version__

    files = write_fillin_workbooks(plan, folder, generator=f"geotijian {__version__}")
    counts = plan.cells.groupby("workbook_id").agg(rows=("record_id", "nunique"), values=("code", "size"),
                                                   sheets=("record", "nunique"))
    summary = plan.workbooks.merge(counts, left_on="workbook_id", right_index=True)[
        ["file", "kind", "title", "sheets", "rows", "values"]]
    return FillinTemplates(files=files, summary=summary.reset_index(drop=True), plan=plan)


def collect_study_fillins(config: str | Path | StudyConfig, folder: str | Path | None = None, *,
                          progress: bool = False) -> Any:
    """Validate a folder of returned workbooks against the study (``geotijian collect``).

    Returns
    -------
    geotijian.indicators.collect.CollectResult
        Every issue (never raised here), completeness, what is missing and the roll-up.
    """
    from .indicators.collect import collect_fillins

    cfg = config if isinstance(config, StudyConfig) else read_config(config)
    src = Path(folder) if folder is not None else cfg.fillin.get("folder")
    if src is None:
        raise ConfigError("fillin.folder", "missing", "give the folder of the returned workbooks")
    res = _prepared_run(cfg, progress=progress)
    plan = _fillin_plan(cfg, res.data, res.data.meta["catalogue"], res.data.indicator_values)
    return collect_fillins(src, plan)
