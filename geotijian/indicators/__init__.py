"""Indicators of the check-up: the catalogue (指标体系) by edition, the 填报 paths (a flat
table; fill-in workbooks by department, town and pilot community: :mod:`.fillin`,
:mod:`.collect`), the computation of every spatial indicator by unit, town and district
(:mod:`.compute`, :mod:`.urban`) and the flat exchange table (:mod:`.exchange`).

Imports go one way: this package may use ``io``, ``network``, ``access``, ``units`` and
``population`` (its functions take their outputs as plain tables), never ``assess``,
``survey``, ``report`` or ``study``.
"""

from .catalogue import (
    CATALOGUE_COLUMNS,
    CATALOGUE_VERSION,
    DIMENSIONS,
    SURVEY_ITEMS,
    facility_walk_distances,
    indicator_catalogue,
    indicator_definitions,
    park_classes,
    parse_reference,
    read_filled_values,
)
from .compute import (
    LONG_COLUMNS,
    URBAN_ROAD_CLASSES,
    area_per_capita,
    building_indicators,
    classify_parks,
    compute_indicators,
    facilities_per_1000,
    homes_from_coverage,
    imagery_indicators,
    intersection_density,
    intersection_points,
    life_circle_attainment,
    network_coverage,
    old_compound_share,
    park_service_coverage,
    points_per_1000,
    population_coverage,
    road_network_density,
    transit_coverage,
)
from .editions import check_same_definitions, definition_id, edition_table, list_editions
from .fca import e2sfca_weights, fca_indicator, two_step_fca

__all__ = [
    "CATALOGUE_COLUMNS", "CATALOGUE_VERSION", "DIMENSIONS", "LONG_COLUMNS", "SURVEY_ITEMS",
    "URBAN_ROAD_CLASSES",
    "area_per_capita", "building_indicators", "classify_parks", "compute_indicators",
    "e2sfca_weights", "facilities_per_1000", "facility_walk_distances", "fca_indicator", "homes_from_coverage",
    "imagery_indicators", "indicator_catalogue", "intersection_density", "intersection_points",
    "life_circle_attainment", "network_coverage", "old_compound_share", "park_classes",
    "park_service_coverage", "parse_reference", "points_per_1000", "population_coverage",
    "read_filled_values", "road_network_density", "transit_coverage", "two_step_fca",
    "indicator_definitions", "list_editions", "edition_table", "definition_id", "check_same_definitions",
]
