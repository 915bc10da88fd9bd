"""The steps of :func:`~geotijian.indicators.compute.compute_indicators`, one function each.

``compute_indicators`` runs them in this order and concatenates their long tables
(``level, area_id, code, value``): homes and walking distances (m), indicators from the
network distances, green space and facilities, 2SFCA, then roads, buildings, compounds,
complaints and imagery. Each step returns the parts its inputs allow, in the order
``compute_indicators`` has always computed them.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import pandas as pd

from .. import data
from ..errors import RepairWarning
from .catalogue import facility_walk_distances
from .compute import (
    _drop_unassigned,
    area_per_capita,
    building_indicators,
    facilities_per_1000,
    homes_from_coverage,
    imagery_indicators,
    intersection_density,
    life_circle_attainment,
    network_coverage,
    old_compound_share,
    park_service_coverage,
    points_per_1000,
    road_network_density,
    transit_coverage,
)
from .fca import fca_indicator


def _prepare_homes(
    u: gpd.GeoDataFrame, *, homes: pd.DataFrame | None, distances: pd.DataFrame | None, coverage: Any,
    walk_distances: Mapping[str, float] | None, fca: Mapping[str, Mapping[str, Any]] | None,
) -> tuple[pd.DataFrame | None, pd.DataFrame | None, pd.DataFrame | None, dict[str, float]]:
    """Step 1: homes, distances and walking distances (m).

    Returns ``(homes, homes_all, distances, walk_distances)``: ``homes`` without the homes
    in no unit (reported), ``homes_all`` as given (the 2SFCA OD rows follow its order).
    """
    wd = facility_walk_distances()
    if coverage is not None:
        homes, distances, cov_wd = homes_from_coverage(coverage)
        wd.update(cov_wd)
    if walk_distances is not None:
        wd = dict(walk_distances)
    homes_all = homes
    if homes is not None:
        with warnings.catch_warnings():
            if fca:   # reported once, by fca_indicator below
                warnings.simplefilter("ignore", RepairWarning)
            homes = _drop_unassigned(homes, u)
    return homes, homes_all, distances, wd


def _distance_parts(homes: pd.DataFrame, distances: pd.DataFrame, u: gpd.GeoDataFrame, *,
                    wd: dict[str, float], required_types: Iterable[str] | None,
                    district_id: str) -> list[pd.DataFrame]:
    """Step 2: network and transit coverage, 15-minute life-circle attainment (from distances, m)."""
    parts: list[pd.DataFrame] = []
    parts.append(network_coverage(homes, distances, u, walk_distances=wd, district_id=district_id))
    parts.append(transit_coverage(homes, distances, u, district_id=district_id))
    if required_types is None:
        fac = pd.read_csv(data.path("facilities.csv"), dtype=str)
        req = fac.loc[fac["provision"].fillna("").str.startswith("required"), "code"]
        required_types = [t for t in req if t in wd and t in distances.columns]
    required_types = list(required_types)
    if required_types:
        parts.append(life_circle_attainment(homes, distances, u, required=required_types, walk_distances=wd,
                                            district_id=district_id))
    return parts


def _green_parts(u: gpd.GeoDataFrame, *, residential: gpd.GeoDataFrame | None, parks: gpd.GeoDataFrame | None,
                 park_classes_table: Any, park_method: str, park_distances: pd.DataFrame | None,
                 sports: gpd.GeoDataFrame | None, facilities: gpd.GeoDataFrame | None,
                 district_id: str) -> list[pd.DataFrame]:
    """Step 3: park service coverage, park and sports area per capita (m²/person), facilities per 1,000."""
    parts: list[pd.DataFrame] = []
    if residential is not None and (parks is not None or park_distances is not None):
        parts.append(park_service_coverage(residential, parks, u, classes=park_classes_table, method=park_method,
                                           distances=park_distances, district_id=district_id))
    if parks is not None:
        parts.append(area_per_capita(parks, u, code="u_park_green_pc", layer="parks", district_id=district_id))
    if sports is not None:
        parts.append(area_per_capita(sports, u, code="c_community_sports_area_pc", layer="sports grounds",
                                     district_id=district_id))
    if facilities is not None:
        parts.append(facilities_per_1000(facilities, u, district_id=district_id))
    return parts


def _fca_parts(homes_all: pd.DataFrame, u: gpd.GeoDataFrame, *, fca: Mapping[str, Mapping[str, Any]],
               wd: dict[str, float], district_id: str) -> list[pd.DataFrame]:
    """Step 4: one 2SFCA indicator per facility type of ``fca`` (default catchment: walking distance, m)."""
    parts: list[pd.DataFrame] = []
    for ftype, spec in fca.items():
        parts.append(fca_indicator(homes_all, spec["supply"], spec["od"], u, facility_type=ftype,
                                   max_distance=spec.get("max_distance", wd.get(ftype, 300.0)),
                                   demand_share=spec.get("demand_share", 1.0),
                                   method=spec.get("method", "2sfca"), weights=spec.get("weights"),
                                   district_id=district_id))
    return parts


def _form_parts(u: gpd.GeoDataFrame, *, roads: gpd.GeoDataFrame | None, buildings: gpd.GeoDataFrame | None,
                compounds: gpd.GeoDataFrame | None, complaints: gpd.GeoDataFrame | None,
                imagery: pd.DataFrame | None, old_before_year: int | None, road_classes: Iterable[str] | None,
                district_id: str) -> list[pd.DataFrame]:
    """Step 5: roads, buildings, old compounds, complaints and imagery indicators."""
    parts: list[pd.DataFrame] = []
    if roads is not None:
        parts.append(road_network_density(roads, u, classes=road_classes, district_id=district_id))
        parts.append(intersection_density(roads, u, classes=road_classes, district_id=district_id))
    if buildings is not None:
        parts.append(building_indicators(buildings, u, district_id=district_id))
    if compounds is not None and "build_year" in compounds.columns:
        parts.append(old_compound_share(compounds, u, before_year=old_before_year, district_id=district_id))
    if complaints is not None:
        parts.append(points_per_1000(complaints, u, code="g_complaint_rate", layer="complaints",
                                     district_id=district_id))
    if imagery is not None:
        parts.append(imagery_indicators(imagery, u, district_id=district_id))
    return parts
