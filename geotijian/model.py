"""The data model of one study: every layer and table a run produces, in one object.

``StudyData`` is filled step by step (io → network → units/access → indicators → assess)
and read by ``report`` (maps, GeoPackage, tables). Each attribute is optional: a report
draws whatever exists. Column contracts of the derived layers are listed below; every
layer is in the study's metric CRS and sorted by its ID.

``blocks``        block_id, town_code, population, area_ha, geometry
``units``         unit_id, town_code, town_name, committees, population, households,
                  area_ha, compound_count, compactness, flag, flag_reason, geometry
``homes``         home_id, home_kind, unit_id, population, geometry (+ coverage columns)
``coverage_gaps`` home_id, home_kind, unit_id, facility_type, facility_name_zh,
                  walk_distance_m, distance_m, population, geometry
``service_areas`` facility_type, facility_name_zh, walk_distance_m, geometry
``hotspots``      cell_id, category, count, z_score, p_value, significant, geometry
``indicator_values`` level, area_id, code, value (long table)
``indicator_table`` level, area_id, area_name, code, name_zh, dimension, unit, value,
                  reference, judgement, gap
``problems``      (问题清单) one row per indicator and level, sorted by severity:
                  seq, problem_id (``<code>@<level>``), indicator_code, name_zh, dimension,
                  unit, level, area_id, area_name, problem_class, point_count,
                  assessed_count, points, point_names, value, reference, reference_op,
                  reference_value, reference_source, gap, gap_share, affected_population,
                  description, suggestion, department, geometry (the points' areas)
                  (+ status, first_seen, points_new, points_persisting, points_resolved
                  once the ledger ran); see ``geotijian.assess``
``problem_points`` (问题点位) one row per indicator and area that falls short: point_id
                  (``<code>@<area_id>``), problem_id, indicator_code, name_zh, dimension,
                  level, area_id, area_name, value, reference, gap, problem_class,
                  affected_population, suggestion, rule_id, reason, geometry
``ledger``        (问题台账) one row per problem point, tracked year to year: point_id,
                  problem_id, indicator_code, level, area_id, area_name, status,
                  first_seen, last_seen, history (+ definition: the indicator's definition
                  fingerprint, when the study's catalogue is known); status new /
                  persisting / resolved / not_compared
``renewal_areas`` area_id, name, town_codes, towns, units, unit_count, population, area_ha,
                  score, score_max, problem_count, problems_by_class, main_problems,
                  problem_ids, reason, geometry (``geotijian.plan.renewal.AREA_COLUMNS``)
``new_sites``     site_id, facility_type, facility_name_zh, candidate_id, source, name,
                  unit_id, residents_covered, homes_covered, residents_in_reach, capacity,
                  demand_served, geometry (``geotijian.plan.siting.SITE_COLUMNS``)
``candidate_sites`` candidate_id, facility_type, source, homes_in_reach, residents_in_reach,
                  in_model, chosen, site_id, geometry
``projects``      ``geotijian.plan.projects.PROJECT_COLUMNS``, geometry of the problem's area
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import geopandas as gpd
import pandas as pd

from . import settings

UNIT_COLUMNS = ["unit_id", "town_code", "town_name", "committees", "population", "households",
                "area_ha", "compound_count", "compactness", "flag", "flag_reason"]
GAP_COLUMNS = ["home_id", "home_kind", "unit_id", "facility_type", "facility_name_zh",
               "walk_distance_m", "distance_m", "population"]
PROBLEM_COLUMNS = ["seq", "problem_id", "indicator_code", "name_zh", "dimension", "unit", "level",
                   "area_id", "area_name", "problem_class", "point_count", "assessed_count", "points",
                   "point_names", "value", "reference", "reference_op", "reference_value",
                   "reference_source", "gap", "gap_share", "affected_population", "description",
                   "suggestion", "department"]
POINT_COLUMNS = ["point_id", "problem_id", "indicator_code", "name_zh", "dimension", "level", "area_id",
                 "area_name", "value", "reference", "gap", "problem_class", "affected_population",
                 "suggestion", "rule_id", "reason"]
LEDGER_COLUMNS = ["point_id", "problem_id", "indicator_code", "level", "area_id", "area_name", "status",
                  "first_seen", "last_seen", "history"]
#: Columns a ledger written before problems were grouped (geotijian ≤ 0.1, issue 20) holds:
#: one row per indicator and area, ``problem_id`` = ``<code>@<area_id>`` (today's point_id).
LEDGER_COLUMNS_V1 = ["problem_id", "indicator_code", "area_id", "status", "first_seen", "last_seen",
                     "history"]
PROBLEM_CLASSES = ("限时解决", "尽力解决", "长期谋划")


@dataclass
class StudyData:
    """Everything one check-up study holds; attributes are ``None`` until computed."""

    name: str = "study"
    #: Display name of the study area (``嘉定区``) for titles and 区域名称; ``name`` when empty.
    title: str = ""
    year: int = 2024
    crs: str = field(default_factory=lambda: settings.metric_crs)
    # inputs (io roles)
    boundary: gpd.GeoDataFrame | None = None
    towns: gpd.GeoDataFrame | None = None
    committees: gpd.GeoDataFrame | None = None
    compounds: gpd.GeoDataFrame | None = None
    buildings: gpd.GeoDataFrame | None = None
    roads: gpd.GeoDataFrame | None = None
    water: gpd.GeoDataFrame | None = None
    rail: gpd.GeoDataFrame | None = None
    parks: gpd.GeoDataFrame | None = None
    greenways: gpd.GeoDataFrame | None = None
    facilities: gpd.GeoDataFrame | None = None
    population: gpd.GeoDataFrame | None = None
    complaints: gpd.GeoDataFrame | None = None
    sites: gpd.GeoDataFrame | None = None  # candidate land for new facilities (optional)
    # derived
    network: Any = None
    blocks: gpd.GeoDataFrame | None = None
    units: gpd.GeoDataFrame | None = None
    homes: gpd.GeoDataFrame | None = None
    coverage_gaps: gpd.GeoDataFrame | None = None
    service_areas: gpd.GeoDataFrame | None = None
    hotspots: gpd.GeoDataFrame | None = None
    survey: pd.DataFrame | None = None
    indicator_values: pd.DataFrame | None = None
    indicator_table: pd.DataFrame | None = None
    strengths: pd.DataFrame | None = None
    problems: gpd.GeoDataFrame | None = None
    problem_points: gpd.GeoDataFrame | None = None
    suggestions: pd.DataFrame | None = None
    ledger: pd.DataFrame | None = None
    imagery: pd.DataFrame | None = None
    # the renewal plan (geotijian.plan)
    renewal_areas: gpd.GeoDataFrame | None = None
    new_sites: gpd.GeoDataFrame | None = None
    candidate_sites: gpd.GeoDataFrame | None = None
    projects: gpd.GeoDataFrame | None = None
    meta: dict = field(default_factory=dict)

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """The spatial layers that exist, by name, in a fixed order."""
        out = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, gpd.GeoDataFrame) and len(v.columns):
                out[f.name] = v
        return out

    @property
    def display_name(self) -> str:
        """The study area's name for titles: ``title``, else the boundary's ``name``, else ``name``."""
        if self.title:
            return self.title
        b = self.boundary
        if b is not None and "name" in b.columns and len(b):
            names = [str(x) for x in b["name"].dropna().astype(str).unique() if str(x).strip()]
            if len(names) == 1:
                return names[0]
        return self.name

    @property
    def from_osm(self) -> bool:
        """True when any layer came from OpenStreetMap (attribution required)."""
        return bool(self.meta.get("osm_sources"))

    @property
    def attribution(self) -> str:
        return settings.osm_attribution if self.from_osm else ""
