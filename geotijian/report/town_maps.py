"""One problem map per town (街镇), linked with the district map both ways.

A district map shows the whole district at a glance (units, gaps, problems, facilities);
its towns' maps carry each town in full detail: every compound (小区) with the facility
types it misses, its homes with a gap, the service areas and facilities that reach it
(within the longest walking radius of its edge), its problems and hot spots. The district
map lists the town maps (a link box, the town names on the map, the towns' popups); each
town map links back to the district map and to the other towns.

Layout beside the district map: ``maps/problem_map.html`` and ``maps/towns/<town code>.html``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import shapely

import geopandas as gpd

from ..errors import LayerError
from ..model import StudyData
from .maps import MapNav, _classify, _unit_indicator, problem_map, save_problem_map

__all__ = ["town_map_files", "town_study", "district_nav", "save_town_maps"]

TOWN_FOLDER = "towns"
#: Facilities and service areas this far beyond a town (metres) still reach its homes when
#: the study has no coverage gaps to tell the longest walking radius.
DEFAULT_REACH_M = 1000.0


def town_map_files(study: StudyData) -> dict[str, str]:
    """Town code -> file name of its map (``towns/<code>.html``, made file-safe and unique)."""
    if study.towns is None or not len(study.towns) or "town_code" not in study.towns.columns:
        return {}
    out: dict[str, str] = {}
    used: set[str] = set()
    for code in sorted(study.towns["town_code"].astype(str).unique()):
        stem = re.sub(r"[^0-9A-Za-z_-]+", "_", code).strip("_") or "town"
        name, i = stem, 2
        while name.lower() in used:
            name, i = f"{stem}_{i}", i + 1
        used.add(name.lower())
        out[code] = f"{TOWN_FOLDER}/{name}.html"
    return out


def _town_names(study: StudyData) -> dict[str, str]:
    towns = study.towns
    name = towns["name"] if "name" in towns.columns else towns["town_code"]
    return dict(zip(towns["town_code"].astype(str), name.where(name.notna(), towns["town_code"]).astype(str)))


def district_nav(study: StudyData) -> MapNav | None:
    """Links of the district map to its town maps (``None`` without towns)."""
    files = town_map_files(study)
    if not files:
        return None
    names = _town_names(study)
    return MapNav(towns=[(code, names[code], href) for code, href in files.items()])


def _reach_m(study: StudyData) -> float:
    gaps = study.coverage_gaps
    if gaps is not None and len(gaps) and "walk_distance_m" in gaps.columns:
        r = pd.to_numeric(gaps["walk_distance_m"], errors="coerce").max()
        if np.isfinite(r):
            return float(r)
    return DEFAULT_REACH_M


def _near(gdf: gpd.GeoDataFrame | None, area, crs) -> gpd.GeoDataFrame | None:
    """Features of ``gdf`` intersecting ``area`` (in the study CRS), in their order."""
    if gdf is None or not len(gdf):
        return gdf
    g = gdf.to_crs(crs) if not gdf.crs.equals(crs) else gdf
    hit = g.sindex.query(area, predicate="intersects")
    return gdf.iloc[np.sort(hit)]


def town_study(study: StudyData, town_code: str) -> StudyData:
    """The part of a study one town map draws.

    The town (as its own outline), its units, the compounds, homes with a gap and problems
    of those units (and the town's own problems), the hot spots over it, and the
    facilities and service areas within the longest walking radius of it (those serve its
    homes too), service areas clipped to that reach; the renewal areas and new sites over it.
    """
    towns = study.towns
    if towns is None or "town_code" not in towns.columns:
        raise LayerError("towns", "is missing or has no town_code", fix="load the towns (街镇) layer")
    code = str(town_code)
    sel = towns["town_code"].astype(str) == code
    if not sel.any():
        raise LayerError("towns", f"has no town {code!r}", fix=f"use one of {sorted(towns['town_code'].astype(str))}")
    town = towns.loc[sel]
    crs = gpd.GeoSeries(crs=study.crs).crs
    shape = shapely.union_all(town.to_crs(crs).geometry.to_numpy())
    reach = shapely.buffer(shape, _reach_m(study), quad_segs=4)
    units = unit_ids = None
    if study.units is not None and "town_code" in study.units.columns:
        units = study.units.loc[study.units["town_code"].astype(str) == code]
        unit_ids = set(units["unit_id"].astype(str))

    def of_units(gdf: gpd.GeoDataFrame | None, col: str = "unit_id") -> gpd.GeoDataFrame | None:
        if gdf is None or unit_ids is None or col not in gdf.columns:
            return _near(gdf, shape, crs) if gdf is not None else None
        return gdf.loc[gdf[col].astype(str).isin(unit_ids)]

    points, problems = _town_problems(study, code, unit_ids, str(town["name"].iloc[0]) if "name" in town else code)
    service = _near(study.service_areas, reach, crs)
    if service is not None and len(service):
        xmin, ymin, xmax, ymax = shapely.bounds(reach)
        g = service.to_crs(crs).geometry.to_numpy()
        clipped = shapely.clip_by_rect(g, xmin, ymin, xmax, ymax)
        keep = ~shapely.is_empty(clipped)
        service = service.loc[keep].set_geometry(gpd.GeoSeries(clipped[keep], index=service.index[keep], crs=crs))
    return dataclasses.replace(
        study, boundary=None, towns=town, units=units, compounds=of_units(study.compounds),
        coverage_gaps=of_units(study.coverage_gaps), problems=problems, problem_points=points,
        service_areas=service,
        facilities=_near(study.facilities, reach, crs), hotspots=_near(study.hotspots, shape, crs),
        blocks=None, homes=of_units(study.homes), renewal_areas=_town_areas(study.renewal_areas, code, shape, crs),
        new_sites=_near(study.new_sites, shape, crs), meta=dict(study.meta))


def _town_areas(areas: gpd.GeoDataFrame | None, code: str, shape, crs) -> gpd.GeoDataFrame | None:
    """Renewal areas of a town: those listing it in ``town_codes`` (``;``-separated), else
    those overlapping it (not a neighbour's that only shares its edge)."""
    if areas is None or not len(areas):
        return areas
    if "town_codes" in areas.columns:
        codes = areas["town_codes"].fillna("").astype(str).str.replace("；", ";").str.split(";")
        return areas.loc[codes.map(lambda cs: code in cs).to_numpy(bool)]
    near = _near(areas, shape, crs)
    g = near.to_crs(crs).geometry.to_numpy()
    return near.loc[shapely.area(shapely.intersection(g, shape)) > 0]


def _town_problems(study: StudyData, code: str, unit_ids: set[str] | None, name: str
                   ) -> tuple[gpd.GeoDataFrame | None, gpd.GeoDataFrame | None]:
    """The problem points of a town (its units' and its own) and the problems a town map
    lists: those with a point in the town, and the district-level ones. A town-level
    problem is told for this town alone (its value, gap and name), not for every town."""
    pts, problems = study.problem_points, study.problems
    if pts is not None and "area_id" in pts.columns:
        area = pts["area_id"].astype(str)
        lvl = pts["level"].astype(str) if "level" in pts.columns else pd.Series("unit", index=pts.index)
        keep = (lvl == "town") & (area == code)
        if unit_ids is not None:
            keep |= (lvl == "unit") & area.isin(unit_ids)
        pts = pts.loc[keep]
    if problems is None or "area_id" not in problems.columns:
        return pts, problems
    if pts is None or "point_count" not in problems.columns:  # problems made before grouping: one per area
        ids = (unit_ids or set()) | {code}
        return pts, problems.loc[problems["area_id"].astype(str).isin(ids)]
    level = problems["level"].astype(str)
    problems = problems.loc[(level == "district") | problems["problem_id"].isin(set(pts["problem_id"]))].copy()
    own = pts.loc[pts["level"].astype(str) == "town"].set_index("problem_id")
    sel = problems["problem_id"].isin(own.index) & (problems["level"].astype(str) == "town")
    if sel.any():
        pid = problems.loc[sel, "problem_id"]
        for col in ("value", "gap", "affected_population"):
            if col in own.columns and col in problems.columns:
                problems.loc[sel, col] = pid.map(own[col]).to_numpy()
        problems.loc[sel, "point_count"] = 1
        for col in ("point_names", "area_name"):
            if col in problems.columns:
                problems.loc[sel, col] = name
        problems.loc[sel, "area_id"] = code
    return pts, problems


def save_town_maps(study: StudyData, folder: str | Path, *, indicator: str | None = None, lang: str = "zh",
                   scheme: str = "quantiles", k: int = 5, simplify_m: float = 1.0, decimals: int = 5,
                   district_map: str = "problem_map.html", basemap: str | Sequence[str] = "osm",
                   title: str | None = None, towns: Collection[str] | None = None, **options) -> list[Path]:
    """Write one map per town into ``<folder>/towns/``; return the paths.

    Each holds its town in full detail (compounds on, service areas on when present,
    ``simplify_m`` 1 m), its units coloured with the district's classes (the same colour
    means the same value on every map), a link back to ``<folder>/<district_map>`` and to
    the other towns. Each is titled "<title> · <town>", ``title`` defaulting to the
    study's display name and year (``study.title``). ``towns``: only these town codes (the
    colour classes are the district's all the same). ``options`` go to :func:`problem_map`.
    """
    files = town_map_files(study)
    if not files:
        return []
    bins = None
    if study.units is not None and len(study.units):
        val = _unit_indicator(study, indicator, lang)[0]
        bins = _classify(val, scheme=scheme, k=k)[1]
    names = _town_names(study)
    folder = Path(folder)
    out = []
    for code, rel in files.items():
        if towns is not None and code not in towns:
            continue
        # town maps are siblings in towns/; the district map is one folder up
        nav = MapNav(towns=[(c2, names[c2], Path(h).name) for c2, h in files.items()],
                     home=f"../{district_map}", current=code)
        sub = town_study(study, code)
        ttl = (f"{title} · {names[code]}" if title else
               f"{study.display_name} · {names[code]} {study.year} 年城市体检问题地图" if lang == "zh"
               else f"{study.display_name} · {names[code]} {study.year} urban check-up problem map")
        m = problem_map(sub, indicator=indicator, lang=lang, bins=bins, simplify_m=simplify_m, decimals=decimals,
                        compounds=True, service_areas=True if sub.service_areas is not None else None,
                        nav=nav, title=ttl, basemap=basemap, **options)
        out.append(save_problem_map(m, folder / rel))
    return out
