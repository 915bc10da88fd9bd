"""The study's middle steps (used by :mod:`geotijian.study`): units, coverage, indicators,
survey and hotline, judgement and ledger, each filling the study's data and tables.

``study._run`` times each step and collects its warnings; a warning said here names the
line of ``_run`` that ran the step (``stacklevel`` counts the step's own call).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd

from . import settings
from .access import (
    PendingServiceAreas,
    _coverage_types,
    coverage_gaps,
    facility_distance_matrix,
    service_coverage,
    start_service_areas,
)
from .area_names import with_unit_names
from .assess import build_tables, problem_status, read_ledger, update_ledger
from .config import StudyConfig
from .errors import ConfigError, RepairWarning
from .indicators import compute_indicators, read_filled_values
from .model import StudyData
from .study_fillin import _collect_fillins, _edition_values, _note_sources
from .study_report import _hotline_facts, _plan_with_respondents, _survey_facts
from .survey import complaint_hotspots, complaint_rates, plan_sample, read_survey
from .units import build_units

if TYPE_CHECKING:
    from .study import StudyResult

#: Capacity-aware supply indicators (2SFCA) computed when facilities carry a capacity:
#: type → share of residents who are the demand (kindergarten: children 3-6 ≈ 3 % of
#: residents, Shanghai's age structure; nursing home: residents 80+ ≈ 4 %).
FCA_TYPES = {"kindergarten": 0.03, "nursing_home": 0.04, "elderly_day_care": 0.04}


def _units_step(cfg: StudyConfig, data: StudyData) -> gpd.GeoDataFrame:
    """Residents on compounds, blocks and check-up units into ``data``; returns every home
    (compounds, and housing outside them when residents come from buildings)."""
    # residents on compounds, blocks, units: one path shared with `geotijian units`
    built = build_units(data.roads, data.compounds, boundary=data.boundary, committees=data.committees,
                        towns=data.towns, water=data.water, rail=data.rail, buildings=data.buildings,
                        raster=cfg.population.get("raster"), population_source=cfg.population["source"],
                        **_population_totals(cfg, data), road_classes=cfg.units.get("road_classes"),
                        sliver_area_m2=cfg.units.get("sliver_area_m2"),
                        min_pop=cfg.units.get("min_pop"), max_pop=cfg.units.get("max_pop"))
    data.blocks, data.compounds, data.units = built["blocks"], built["compounds"], built["units"]
    all_homes = built["homes"]
    report = built["report"]
    pop = report.get("population", {}) if isinstance(report, dict) else {}
    data.meta["population"] = {k: v for k, v in pop.items() if not isinstance(v, pd.DataFrame)}
    data.meta["units_feasibility"] = data.units.attrs.get("geotijian", {}).get("feasibility", [])
    data.meta["clipped"] = report.get("clipped", {})
    data.meta["compound_pieces"] = {k: data.units.attrs["geotijian"]["report"].get(k)
                                    for k in ("cut_by_roads", "overshoots", "cross_town")}
    # units named after their committees (tables, maps and figures show names, not IDs)
    data.units = with_unit_names(data.units, data.committees)
    return all_homes


def _start_areas(data: StudyData, fcat: pd.DataFrame, types: list[str] | None, osm: Any) -> PendingServiceAreas:
    """The service areas of the types the coverage step assesses, started as soon as the
    network is built: searched here, their buffers and unions run in a forked process
    (Linux) or a second thread while the study goes on (units, coverage, indicators ...;
    only the outputs read them: ``study`` collects them after writing the tables). The
    types' checks and warnings are the coverage step's (said there)."""
    wd = dict(zip(fcat["code"], fcat["walk_distance_m"].astype(float)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")   # said by the coverage step, which raises the errors too
        try:
            kinds, _ = _coverage_types(data.facilities, types, wd, "type")
        except ConfigError:
            kinds = []
        pending = start_service_areas(data.network, data.facilities, catalogue=fcat, types=kinds,
                                      entrances=osm.entrances if osm is not None else None)
    return pending


def _coverage_step(data: StudyData, all_homes: gpd.GeoDataFrame, fcat: pd.DataFrame,
                   types: list[str] | None, osm: Any, res: StudyResult) -> list[str]:
    """Life-circle coverage per home and area, gaps and the 2SFCA inputs, into ``data``
    and ``res.tables``; returns the types assessed (those of :func:`_start_areas`)."""
    # compounds and, with residents from buildings, the housing outside every compound
    homes = all_homes[["compound_id", "home_kind", "unit_id", "population", "geometry"]].rename(
        columns={"compound_id": "home_id"})
    entrances = osm.entrances if osm is not None else None
    cov = service_coverage(data.network, homes, data.facilities, types=types, catalogue=fcat,
                           units=data.units, entrances=entrances)
    data.homes = cov.per_home
    data.coverage_gaps = coverage_gaps(cov)
    data.facilities = _with_access_rule(data.facilities, cov.facilities)
    res.tables["coverage"] = cov.per_area
    dist = cov.per_home.set_index("home_id")[[f"dist_{t}" for t in cov.types]]
    dist.columns = cov.types
    data.meta["distances"] = dist
    data.meta["walk_distances"] = cov.walk_distance_m
    district = cov.per_area[cov.per_area["level"] == "district"]
    data.meta["coverage_district"] = pd.DataFrame({
        "type": district["facility_type"].to_numpy(),
        "share_%": (district["share"].to_numpy() * 100).round(1),
        "not_covered": district["not_covered"].round(0).astype(int).to_numpy(),
    })
    data.meta["fca"] = _fca_inputs(data, homes, cov, entrances)
    return list(cov.types)


def _fca_inputs(data: StudyData, homes: gpd.GeoDataFrame, cov: Any, entrances: Any) -> dict:
    """The 2SFCA inputs of the capacity-aware types (:data:`FCA_TYPES`) whose facilities
    carry a capacity: supply, homes × facilities distances within walking distance."""
    fca = {}
    for t, share in FCA_TYPES.items():
        fac = data.facilities[data.facilities["type"] == t]
        if t in cov.types and len(fac) and "capacity" in fac.columns and fac["capacity"].notna().any():
            fac = fac.sort_values("facility_id")
            od = facility_distance_matrix(data.network, homes.sort_values("home_id").reset_index(drop=True),
                                          fac, max_distance=cov.walk_distance_m[t], entrances=entrances)
            fca[t] = {"supply": fac["capacity"].fillna(0).to_numpy(float), "od": od,
                      "max_distance": cov.walk_distance_m[t], "demand_share": share, "method": "e2sfca"}
    return fca


def _indicators_step(cfg: StudyConfig, data: StudyData, icat: pd.DataFrame, res: StudyResult,
                     collect: bool) -> None:
    """Computed values of the edition, filled-in values and (``collect``) the returned
    fill-in workbooks, into ``data.indicator_values``."""
    values = compute_indicators(
        data.units, homes=data.homes.sort_values("home_id").reset_index(drop=True),
        distances=data.meta["distances"], walk_distances=data.meta["walk_distances"],
        residential=data.compounds, parks=data.parks, facilities=data.facilities, fca=data.meta["fca"] or None,
        roads=data.roads, buildings=data.buildings, compounds=data.compounds,
        complaints=data.complaints, imagery=data.imagery, greenways=data.greenways)
    values = _edition_values(values, icat, data)
    if cfg.indicators.get("filled"):
        filled = read_filled_values(cfg.indicators["filled"], catalogue=icat, units=data.units)
        _note_sources(data, filled, f"填报表: {Path(cfg.indicators['filled']).name}")
        values = pd.concat([values, filled[values.columns]], ignore_index=True)
    if collect and cfg.fillin.get("folder") is not None:
        values = _collect_fillins(cfg, data, icat, values, res)
    data.indicator_values = values.sort_values(["level", "area_id", "code"], kind="stable").reset_index(drop=True)


def _survey_step(cfg: StudyConfig, data: StudyData, res: StudyResult) -> tuple[Any, Any]:
    """The survey (or its sample plan) and the 12345 hotline; returns (satisfaction,
    complaint rates), either ``None`` when its input is not given."""
    satisfaction = complaints = None
    if cfg.survey is not None:
        sres = read_survey(cfg.survey, units=data.units)
        data.survey = sres.satisfaction
        satisfaction = sres.satisfaction
        res.tables["survey_issues"] = sres.issues
        res.tables["sample_plan"] = _plan_with_respondents(sres.plan, sres.respondents)
        data.meta.setdefault("facts", {})["survey"] = _survey_facts(sres)
        sv = sres.indicator_values()
        _note_sources(data, sv, "问卷")
        data.indicator_values = pd.concat([data.indicator_values, sv[data.indicator_values.columns]],
                                          ignore_index=True).sort_values(
            ["level", "area_id", "code"], kind="stable").reset_index(drop=True)
    else:
        res.tables["sample_plan"] = plan_sample(data.units)
    if data.complaints is not None:
        complaints = complaint_rates(data.complaints, data.units)
        res.tables["complaint_rates"] = complaints
        data.meta.setdefault("facts", {})["hotline"] = _hotline_facts(data.complaints, complaints)
        data.hotspots = complaint_hotspots(data.complaints, area=data.boundary,
                                           seed=settings.random_seed)
    return satisfaction, complaints


def _judgement_step(cfg: StudyConfig, data: StudyData, icat: pd.DataFrame, res: StudyResult,
                    satisfaction: Any, complaints: Any) -> None:
    """一表三清单: the indicator table, strengths, suggestions and problems."""
    _warn_unjudged(cfg, icat, data.indicator_values)
    tables = build_tables(data.indicator_values, icat, areas=data.units, satisfaction=satisfaction,
                          complaints=complaints, district_name=data.display_name)
    res.tables.update(tables)
    data.indicator_table = tables["indicator_table"]
    data.strengths = tables["strengths"]
    data.suggestions = tables["suggestions"]
    data.problem_points = tables["problem_points"]
    data.problems = tables["problems"]


def _ledger_step(cfg: StudyConfig, data: StudyData, icat: pd.DataFrame, res: StudyResult) -> None:
    """The problem ledger (台账) updated from last year's, and each problem's status."""
    last = read_ledger(cfg.ledger_last_year) if cfg.ledger_last_year is not None else None
    ledger = update_ledger(last, data.problem_points, units_this=data.units, year=cfg.year, catalogue=icat,
                           values=data.indicator_values)
    # the ledger is a table (台账); problems and points carry the geometry
    data.ledger = pd.DataFrame(ledger.drop(columns="geometry", errors="ignore"))
    data.problems = problem_status(data.problems, data.ledger, year=cfg.year)
    res.tables["problems"] = data.problems


def _warn_unjudged(cfg: StudyConfig, cat: pd.DataFrame, values: pd.DataFrame) -> None:
    """Say so when coverage was computed but the study set no target to judge it by."""
    computed = set(values["code"])
    cov = cat[cat["code"].str.startswith("cov_") & cat["origin"].str.startswith("geotijian")
              & cat["code"].isin(computed)]
    unjudged = cov[cov["reference_op"] == ""]
    if len(unjudged) and cfg.indicators.get("coverage_reference") is None:
        warnings.warn(f"coverage of {len(unjudged)} facility types is computed but not judged: no published "
                      "standard gives a coverage target (GB 50180-2018 gives the walking distances). Fix: set the "
                      "study's target under [indicators] coverage_reference = 90 (percent of residents within "
                      "walking distance; per type as a table), or per indicator under [indicators.reference]",
                      RepairWarning, stacklevel=3)  # (from _run, as before)


def _population_totals(cfg: StudyConfig, data: StudyData) -> dict:
    """Known committee (else town) populations scale an estimate from buildings or a raster."""
    if cfg.population["source"] != "attribute":
        for layer, key in ((data.committees, "committee_id"), (data.towns, "town_code")):
            if layer is not None and "population" in layer.columns and layer["population"].notna().all():
                return {"totals": layer, "total_by": key}
    return {}


def _with_access_rule(facilities: gpd.GeoDataFrame, used: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if used is None or "access_rule" not in used.columns:
        return facilities.sort_values("facility_id").reset_index(drop=True)
    rules = used.drop_duplicates("facility_id").set_index("facility_id")["access_rule"]
    out = facilities.assign(access_rule=facilities["facility_id"].map(rules))
    return out.sort_values("facility_id").reset_index(drop=True)
