"""The renewal plan on the problem map: 更新片区 and 新增设施选址, in the 更新规划 group.

:func:`~geotijian.report.maps.problem_map` draws these when the study holds a plan
(``renewal_areas``, ``new_sites``; ``plan=False`` leaves them out), filed under their own
heading of the grouped layer control, after 问题:

* **更新片区**: renewal areas as dashed magenta outlines (a hue no other layer uses: the
  choropleth is green, the problem classes red/orange/blue, the gaps and compounds purple,
  the hot spots brown), popup with its towns, units (by name), residents, problems and
  the reason it was drawn; on at load;
* **新增设施选址: <type>**: the chosen sites, one canvas layer per facility type (a few
  points each, drawn at a fixed size whatever else is shown), in the type's colour with a
  black ring (existing facilities are small and white-ringed), popup with the residents
  each newly covers and the projects that build it; on at load.

Their legend entries join the map's one legend. Every label is Chinese with
``lang="zh"``: field names from :data:`geotijian.report._common.FIELD_LABELS`, units
named after their committees, the projects by name.
"""

from __future__ import annotations

import html
from typing import Any

import numpy as np
import pandas as pd
import shapely

import geopandas as gpd

from ..model import StudyData
from . import _common as c
from . import _leaflet as lf

__all__ = ["has_plan", "add_plan", "AREA_COLOR"]

#: Renewal areas: dashed outline and light fill in a magenta (ColorBrewer RdPu's dark end).
AREA_COLOR = "#ae017e"
#: New sites: ring colour and radius (px, every zoom).
SITE_RING = "#000000"
SITE_RADIUS = 7.0

_TXT = {"areas": ("更新片区", "renewal areas"), "sites": ("新增设施选址", "new facility sites"),
        "legend": ("更新规划", "renewal plan"), "score": ("更新评分", "renewal score"),
        "new": ("新增", "new"), "covers": ("新覆盖", "covers"), "persons": ("人", "residents"),
        "projects": ("相关项目", "projects"), "site": ("选址点", "site")}


def _t(key: str, lang: str) -> str:
    return _TXT[key][c.lang_index(lang)]


def has_plan(study: StudyData) -> bool:
    """Whether ``study`` holds renewal areas or new sites to draw."""
    return any(g is not None and len(g) for g in (study.renewal_areas, study.new_sites))


def _unit_names(study: StudyData) -> dict[str, str]:
    u = study.units
    if u is None or not {"unit_id", "name"} <= set(u.columns):
        return {}
    return {str(a): str(b) for a, b in zip(u["unit_id"], u["name"], strict=True) if pd.notna(b) and str(b).strip()}


def _named_units(ids: pd.Series, names: dict[str, str]) -> pd.Series:
    """``"U01;U02"`` -> ``"菊园一居委社区 (U01)、…"`` (names where the units have them)."""
    def one(v: Any) -> Any:
        if v is None or (isinstance(v, float) and np.isnan(v)):
            return v
        parts = [p for p in str(v).replace("；", ";").split(";") if p]
        return "、".join(f"{names[p]} ({p})" if p in names else p for p in parts)
    return ids.map(one)


def _site_projects(study: StudyData) -> dict[tuple[str, str], list[str]]:
    """(facility type, site ID) -> names of the projects that build the site."""
    projects = study.projects
    out: dict[tuple[str, str], list[str]] = {}
    if projects is None or not {"site_ids", "indicator_code"} <= set(projects.columns):
        return out
    label = projects["project_name"] if "project_name" in projects.columns else projects["project_id"]
    for name, ids, code in zip(label.astype(str), projects["site_ids"], projects["indicator_code"].astype(str),
                               strict=True):
        t = code[4:] if code.startswith("cov_") else code
        for sid in str(ids if ids is not None and not (isinstance(ids, float) and np.isnan(ids)) else "").split(";"):
            if sid:
                out.setdefault((t, sid), []).append(name)
    return out


def add_plan(ctx: Any) -> None:
    """Draw the study's renewal areas and new sites on the map being built (``maps._Ctx``):
    layers filed under the ``plan`` group, legend lines appended to ``ctx.legend``."""
    study, lang = ctx.study, ctx.lang
    legend: list[str] = []
    areas = study.renewal_areas
    if areas is not None and len(areas):
        names = _unit_names(study)
        a = areas.assign(units=_named_units(areas["units"], names)) if "units" in areas.columns else areas
        w = ctx.web("renewal_areas", a)
        ctx.area_bounds.append(w.total_bounds)
        head = lf.name_series(w, ["name", "area_id"], "")
        pop = lf.popup(w, ["area_id", "towns", "units", "unit_count", "population", "area_ha", "score",
                           "problem_count", "problems_by_class", "main_problems"], lang, header=head,
                       suggestion="reason")
        tip = head + " · " + html.escape(_t("score", lang)) + " " + c.escaped_values(w["score"])
        fg = ctx.layer("plan", f"{_t('areas', lang)} ({len(w)})", show=True)
        fg.add_child(lf.geo_data(lf.geojson(w, {"t": tip, **pop.props}), fields=pop.fields,
                                 suggestion_label=pop.suggestion_label, color_keys=[],
                                 style={"color": AREA_COLOR, "weight": 3, "opacity": 0.95, "dashArray": "8 5",
                                        "fillColor": AREA_COLOR, "fillOpacity": 0.12}))
        legend.append(f"<div><i class='ol' style='border-color:{AREA_COLOR};border-style:dashed'></i>"
                      f"{html.escape(_t('areas', lang))} ({len(w)})</div>")
    sites = study.new_sites
    if sites is not None and len(sites):
        legend += _add_sites(ctx, sites)
    if legend:
        ctx.legend.append(f"<h4>{html.escape(_t('legend', lang))}</h4>")
        ctx.legend += legend


def _add_sites(ctx: Any, sites: gpd.GeoDataFrame) -> list[str]:
    """New sites, one fixed-size canvas layer per facility type; returns legend lines."""
    study, lang = ctx.study, ctx.lang
    tcol = c.study_type_colors(study)
    by_site = _site_projects(study)
    names = _unit_names(study)
    g = sites.geometry.to_numpy().copy()
    poly = shapely.get_type_id(g) != 0
    g[poly] = shapely.point_on_surface(g[poly])  # parcels are drawn at a point inside them
    s = sites.set_geometry(gpd.GeoSeries(g, index=sites.index, crs=sites.crs))
    ftype = s["facility_type"].astype(str)
    s = s.assign(_projects=["；".join(by_site.get((t, sid), [])) or None
                            for t, sid in zip(ftype, s["site_id"].astype(str), strict=True)])
    if "unit_id" in s.columns:
        s = s.assign(unit_id=_named_units(s["unit_id"], names))
    w_all = ctx.web("new_sites", s)
    ctx.bounds.append(w_all.total_bounds)
    lines = []
    for t in c.ordered_types(sites["facility_type"]):
        w = w_all.loc[(w_all["facility_type"].astype(str) == t).to_numpy()]
        tname = c.facility_type_name(t, lang)
        head = lf.name_series(w, ["name", "site_id"], "")
        pop = lf.popup(w, ["site_id", "facility_name_zh", "candidate_id", "unit_id", "residents_covered",
                           "homes_covered", "residents_in_reach", "capacity", "demand_served", "_projects"], lang,
                       header=head, labels={"_projects": html.escape(_t("projects", lang)),
                                            "unit_id": html.escape(c.field_label("unit_name", lang))})
        covers = c.escaped_values(pd.to_numeric(w["residents_covered"], errors="coerce").round(0))
        tip = (head + f" · {html.escape(_t('covers', lang))} " + covers + f" {html.escape(_t('persons', lang))}")
        xy = shapely.get_coordinates(w.geometry.to_numpy())
        color = tcol.get(t, c.OTHER_COLOR)
        data = {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(), "h": head.tolist(), "t": tip.tolist(),
                "v": pop.props["v"].tolist(), "f": pop.fields, "c": [color], "r": SITE_RADIUS, "ring": SITE_RING}
        ctx.layer("plan", f"{_t('sites', lang)}: {tname} ({len(w)})", show=True).add_child(lf.site_dots(data))
        lines.append(f"<div><i class='pt' style='background:{color};border:2px solid {SITE_RING}'></i>"
                     f"{html.escape(_t('new', lang) + ' ' + tname)} ({len(w)})</div>")
    return lines
