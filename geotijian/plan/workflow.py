"""The renewal plan of one study: renewal areas, facility siting, project library, annual plan.

:func:`plan_study` runs the three steps on a :class:`~geotijian.model.StudyData` that has
been through the check-up (units, homes with their coverage distances, problems,
indicator values) with the options of the study's ``[plan]`` section (validated by
:func:`geotijian.config.read_config`; every key is listed in the README). ``study.py``
calls it as its ``plan`` step; notebooks can call it directly.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd

from ..errors import ConfigError
from ..model import StudyData
from .projects import annual_plan, problem_units, project_library
from .renewal import RenewalResult, renewal_areas
from .siting import (SharedCosts, SitingResult, _existing_distance, _homes, _walk_distance,
                     shared_costs, site_facilities)

__all__ = ["PlanResult", "plan_study", "siting_types"]


@dataclass
class PlanResult:
    """Everything the plan step produced.

    Attributes
    ----------
    year : int
        First year of the implementation plan.
    renewal : RenewalResult or None
    siting : dict
        Facility type → :class:`~geotijian.plan.siting.SitingResult`.
    projects : GeoDataFrame
        The project library (:data:`~geotijian.plan.projects.PROJECT_COLUMNS`).
    annual : DataFrame
        The 年度实施计划 of ``year``.
    skipped : list of str
        Facility types not sited, and why.
    timings : dict
        Seconds of work shared by the types (``siting.shared_matrix_<walk>m_s``: the
        distance matrix of the homes uncovered for any type of that walking distance).
    """

    year: int
    renewal: RenewalResult | None
    siting: dict[str, SitingResult]
    projects: gpd.GeoDataFrame
    annual: pd.DataFrame
    skipped: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def sites(self) -> gpd.GeoDataFrame | None:
        """New sites of every sited type (``SITE_COLUMNS``), or ``None``."""
        parts = [r.sites for r in self.siting.values() if len(r.sites)]
        if not parts:
            return None
        return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=parts[0].crs)

    @property
    def candidates(self) -> gpd.GeoDataFrame | None:
        """The candidates each model kept (``CANDIDATE_COLUMNS``; duplicates and dominated
        candidates left out: on a district every network node near a gap is one, 237,862
        for Jiading's kindergartens), or ``None``. ``siting[type].candidates`` has them all."""
        parts = [r.candidates[r.candidates["in_model"].to_numpy(bool)] for r in self.siting.values()
                 if len(r.candidates)]
        parts = [c for c in parts if len(c)]
        if not parts:
            return None
        return gpd.GeoDataFrame(pd.concat(parts, ignore_index=True), geometry="geometry", crs=parts[0].crs)

    def siting_table(self) -> pd.DataFrame:
        """One row per sited type: the solver report (status, gap, time limit, times)."""
        return pd.DataFrame([r.summary for r in self.siting.values()])

    def summary_lines(self) -> list[str]:
        """Terminal lines: areas, sites per type with the solver status, projects."""
        out = []
        if self.renewal is not None:
            a = self.renewal.areas
            out.append(f"renewal areas: {len(a)} ({a['population'].sum():,.0f} residents, "
                       f"{a['unit_count'].sum()} units)" if len(a) else "renewal areas: none drawn")
        for r in self.siting.values():
            out.append("siting: " + r.describe())
        for s in self.skipped:
            out.append(f"siting: {s}")
        if len(self.projects):
            t = self.projects["project_type"].value_counts()
            out.append(f"projects: {len(self.projects)} for {self.projects['problem_id'].nunique()} problems ("
                       + ", ".join(f"{k} {int(t.get(k, 0))}" for k in ("工程类", "管理类", "规划研究类"))
                       + f"); annual plan {self.year}: {len(self.annual)}")
        return out


def _per_type(value: Any, ftype: str, key: str) -> Any:
    """A setting given once or per type as a table."""
    if isinstance(value, Mapping):
        return value.get(ftype)
    return value


def siting_types(problems: pd.DataFrame, available: list[str]) -> dict[str, int]:
    """Facility types with a coverage problem (``cov_<type>``) and the number of units
    with it (the default ``p``), among the types assessed."""
    if problems is None or not len(problems):
        return {}
    codes = problems["indicator_code"].astype(str)
    cov = problems[codes.str.startswith("cov_")]
    if not len(cov):
        return {}
    pu = problem_units(cov[cov["level"].astype(str) == "unit"], None)  # (the units with the gap)
    pu = pu.merge(cov[["problem_id", "indicator_code"]], on="problem_id")
    n = pu.groupby("indicator_code")["unit_id"].nunique()
    out = {}
    for code in sorted(set(cov["indicator_code"].astype(str))):
        t = code[4:]
        if t in available:
            out[t] = max(1, int(n.get(code, 0)))
    return out


def plan_study(data: StudyData, *, options: Mapping[str, Any] | None = None,
               catalogue: pd.DataFrame | None = None, entrances: gpd.GeoDataFrame | None = None,
               district_name: str | None = None) -> PlanResult:
    """Renewal areas, new facility sites and the project library of a study.

    Parameters
    ----------
    data : StudyData
        After the check-up: ``units``, ``compounds`` (with ``unit_id``), ``network``,
        ``facilities``, ``problems``, ``indicator_values`` and ``meta["distances"]``
        (coverage distances per home and type) are used; ``sites`` (candidate land) when
        present.
    options : mapping, optional
        The ``[plan]`` section (keys in the README): ``year``, ``renewal``, ``siting``,
        ``projects`` tables.
    catalogue : DataFrame, optional
        The study's facility catalogue (walking distances).

    Returns
    -------
    PlanResult
    """
    opts = dict(options or {})
    year = int(opts.get("year", data.year + 1))
    ren_opts = dict(opts.get("renewal", {}))
    site_opts = dict(opts.get("siting", {}))
    proj_opts = dict(opts.get("projects", {}))
    if data.problems is None or data.units is None:
        raise ConfigError("plan", "the plan needs the check-up's units and problems",
                          "run the whole study (geotijian run) before the plan")
    renewal = None
    if ren_opts.pop("enabled", True):
        renewal = renewal_areas(data.units, data.problems, indicator_values=data.indicator_values,
                                boundary=data.boundary, **ren_opts)
    siting: dict[str, SitingResult] = {}
    skipped: list[str] = []
    timings: dict[str, float] = {}
    if site_opts.pop("enabled", True):
        siting, skipped, timings = _site_all(data, site_opts, catalogue, entrances)
    sites = [r.sites for r in siting.values() if len(r.sites)]
    assign = [r.assignment for r in siting.values() if len(r.assignment)]
    projects = project_library(
        data.problems, year=year, units=data.units,
        sites=pd.concat(sites, ignore_index=True) if sites else None,
        assignment=pd.concat(assign, ignore_index=True) if assign else None,
        renewal_areas=renewal.areas if renewal is not None else None,
        rules=proj_opts.get("rules"), district_name=district_name)
    return PlanResult(year, renewal, siting, projects, annual_plan(projects, year=year), skipped, timings)


def _site_all(data: StudyData, opts: dict, catalogue, entrances) -> tuple[dict, list[str], dict]:
    dist = data.meta.get("distances")
    available = list(dist.columns) if dist is not None else []
    defaults = siting_types(data.problems, available)
    types = opts.get("types")
    if types is None:
        types = list(defaults)
    unknown = [t for t in types if t not in available]
    if unknown:
        raise ConfigError("plan.siting.types", f"facility type {unknown[0]!r} was not assessed in this study "
                          f"({len(unknown)} of {len(types)} types)",
                          f"use types assessed in the coverage step: {', '.join(available)}")
    source = opts.get("candidates", "sites" if data.sites is not None else "network")
    if source == "sites" and data.sites is None:
        raise ConfigError("plan.siting.candidates", "\"sites\" needs a candidate sites layer",
                          "add [layers.sites] (available land, public parcels) or use \"network\"")
    cols = [c for c in ("compound_id", "unit_id", "population") if c in data.compounds.columns]
    homes = data.compounds[cols + [data.compounds.geometry.name]].rename(columns={"compound_id": "home_id"})
    skipped: list[str] = []
    todo: dict[str, tuple[str, Any]] = {}
    for t in types:  # (one MILP per facility type)
        objective = _per_type(opts.get("objective", "mclp"), t, "objective") or "mclp"
        p = _per_type(opts.get("p"), t, "p")
        if objective == "mclp" and p is None:
            p = defaults.get(t)
            if p is None:
                skipped.append(f"{t}: no coverage problem, nothing to site (give plan.siting.p to site anyway)")
                continue
        todo[t] = (objective, p)
    shared = _shared_costs(data, homes, list(todo), dist, catalogue) if source == "network" else {}
    out: dict[str, SitingResult] = {}
    for t, (objective, p) in todo.items():
        out[t] = site_facilities(
            data.network, homes, data.facilities, facility_type=t, objective=objective, p=p,
            candidates=data.sites if source == "sites" else None,
            capacity=_per_type(opts.get("capacity"), t, "capacity"),
            demand_share=_per_type(opts.get("demand_share"), t, "demand_share"),
            time_limit_s=opts.get("time_limit_s"), mip_rel_gap=opts.get("mip_rel_gap"),
            presolve=bool(opts.get("presolve", False)), catalogue=catalogue, units=data.units,
            existing_distance=dist[t], entrances=entrances, shared_costs=shared.get(t))
    timings = {f"siting.shared_matrix_{c.walk:g}m_s": c.seconds for c in shared.values()}
    return out, skipped, timings


def _shared_costs(data: StudyData, homes: gpd.GeoDataFrame, types: list[str], dist: pd.DataFrame,
                  catalogue: pd.DataFrame | None) -> dict[str, SharedCosts]:
    """One home × network-node distance matrix per walking distance shared by several types,
    over the homes uncovered for any of them (the types' uncovered homes overlap: 22,710,
    22,393 and 22,668 of 23,721 compounds for Jiading's three 300 m types, 22,896 in all):
    each type then takes its rows instead of computing its own matrix."""
    if len(types) < 2:
        return {}
    h, pop, home_ids, _ = _homes(data.network, homes, "population", None, "unit_id", data.units)
    need: dict[float, list[tuple[str, np.ndarray]]] = {}
    for t in types:
        walk, _ = _walk_distance(t, None, catalogue)
        existing, _ = _existing_distance(data.network, h, None, t, walk, "type", None, home_ids, dist[t])
        need.setdefault(walk, []).append((t, (existing > walk) & (pop > 0)))
    out: dict[str, SharedCosts] = {}
    for walk, items in need.items():
        rows = np.flatnonzero(np.logical_or.reduce([m for _, m in items]))
        if len(items) < 2 or not len(rows):
            continue
        costs = shared_costs(data.network, h, rows, walk)
        out.update({t: costs for t, _ in items})
    return out
