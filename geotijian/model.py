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
``problems``      problem_id, indicator_code, name_zh, dimension, level, area_id, value,
                  reference, gap, problem_class, affected_population, suggestion, geometry
``ledger``        problem_id, indicator_code, area_id, status, first_seen, last_seen,
                  history (+ definition: the indicator's definition fingerprint, when the
                  study's catalogue is known); status new / persisting / resolved /
                  not_compared
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
PROBLEM_COLUMNS = ["problem_id", "indicator_code", "name_zh", "dimension", "level", "area_id",
                   "value", "reference", "gap", "problem_class", "affected_population",
                   "suggestion"]
LEDGER_COLUMNS = ["problem_id", "indicator_code", "area_id", "status", "first_seen",
                  "last_seen", "history"]
PROBLEM_CLASSES = ("限时解决", "尽力解决", "长期谋划")


@dataclass
class StudyData:
    """Everything one check-up study holds; attributes are ``None`` until computed."""

    name: str = "study"
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
    def from_osm(self) -> bool:
        """True when any layer came from OpenStreetMap (attribution required)."""
        return bool(self.meta.get("osm_sources"))

    @property
    def attribution(self) -> str:
        return settings.osm_attribution if self.from_osm else ""
