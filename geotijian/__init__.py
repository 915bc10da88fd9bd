"""geotijian (体检): urban check-up toolkit for Chinese districts, towns and communities.

Community check-up units, 15-minute life-circle coverage on the walk network, indicators
by unit/town/district, the problem ledger and the 一表三清单, report maps, and the renewal
plan (更新片区, facility siting, the project library and annual plan).

>>> import geotijian as gt
>>> result = gt.run_study("layers/sample/study.toml")          # doctest: +SKIP
>>> print(result.summary())                                      # doctest: +SKIP

The public names are imported on first use (PEP 562 module ``__getattr__``), so that
``geotijian --version``, ``init`` and an early Ctrl-C do not wait for (or die inside) the
import of geopandas, osmnx and matplotlib; ``import geotijian as gt; gt.run_study`` works
as before.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import settings
from .errors import (
    ConfigError,
    CoordinateWarning,
    FeasibilityError,
    GeotijianError,
    InputEncodingWarning,
    InputWarning,
    LayerError,
    NetworkError,
    OutputError,
    PlanWarning,
    RasterError,
    RepairWarning,
    StudyTooLargeError,
    TopologyWarning,
)

__version__ = "0.1.0"

#: Public name → module that defines it (imported when the name is first used).
_EXPORTS: dict[str, tuple[str, ...]] = {
    ".access": ("CoverageResult", "coverage_gaps", "facility_distance_matrix", "nearest_facility_distance",
                "service_areas", "service_coverage"),
    ".assess": ("build_tables", "classify_problems", "indicator_table", "judge", "read_ledger", "rule_table",
                "strengths", "suggestions", "update_ledger", "write_ledger", "write_tables"),
    ".config": ("StudyConfig", "read_config", "write_template"),
    ".facilities": ("classify_pois", "facility_catalogue"),
    ".imagery": ("imagery_indicators", "quicklook_png", "read_orthophoto", "write_classified", "zonal_cover"),
    ".indicators": ("compute_indicators", "indicator_catalogue", "read_filled_values"),
    ".io": ("ROLES", "bd09_to_wgs84", "check_alignment", "check_gcj_shift", "check_topology", "convert_coords",
            "gcj02_to_wgs84", "read_layer", "validate_layer", "wgs84_to_bd09", "wgs84_to_gcj02"),
    ".io.osm": ("OSMData", "load_osm"),
    ".model": ("StudyData",),
    ".network": ("WalkNetwork", "build_network", "snap_points"),
    ".plan": ("PlanResult", "RenewalResult", "SitingResult", "annual_plan", "plan_study", "project_library",
              "project_rules", "renewal_areas", "renewal_scores", "site_facilities", "site_from_files",
              "write_plan"),
    ".population": ("allocate_population",),
    ".report": ("coverage_gap_figure", "problem_figure", "problem_map", "save_figures", "save_problem_map",
                "units_figure", "write_gpkg"),
    ".report.docx": ("write_report", "write_town_packages"),
    ".resources": ("check_memory", "estimate_memory"),
    ".sample": ("make_sample_district", "sample_path", "write_sample"),
    ".study": ("StudyResult", "collect_study_fillins", "coverage_from_files", "load_study", "make_fillin_templates",
               "report_study", "run_many", "run_study", "units_from_files"),
    ".survey": ("complaint_hotspots", "complaint_rates", "plan_sample", "read_survey"),
    ".units": ("delineate_blocks", "delineate_units", "range_compliance"),
}
_WHERE = {name: mod for mod, names in _EXPORTS.items() for name in names}


def __getattr__(name: str) -> Any:
    mod = _WHERE.get(name)
    if mod is not None:
        value = getattr(importlib.import_module(mod, __name__), name)
        globals()[name] = value  # later look-ups skip this function
        return value
    try:  # a submodule: gt.units, gt.io ...
        return importlib.import_module(f".{name}", __name__)
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))


__all__ = [
    "settings", "__version__",
    # io
    "ROLES", "read_layer", "validate_layer", "load_osm", "OSMData", "check_gcj_shift",
    "check_alignment", "check_topology",
    "convert_coords", "wgs84_to_gcj02", "gcj02_to_wgs84", "wgs84_to_bd09", "bd09_to_wgs84",
    # network / access
    "WalkNetwork", "build_network", "snap_points", "facility_catalogue", "classify_pois",
    "nearest_facility_distance", "facility_distance_matrix", "service_coverage", "CoverageResult",
    "coverage_gaps", "service_areas",
    # population / units
    "allocate_population", "delineate_blocks", "delineate_units", "range_compliance",
    # imagery
    "read_orthophoto", "zonal_cover", "imagery_indicators", "write_classified", "quicklook_png",
    # indicators / survey / assess
    "indicator_catalogue", "compute_indicators", "read_filled_values",
    "plan_sample", "read_survey", "complaint_rates", "complaint_hotspots",
    "judge", "indicator_table", "classify_problems", "strengths", "suggestions", "build_tables",
    "write_tables", "rule_table", "update_ledger", "read_ledger", "write_ledger",
    # report
    "problem_map", "save_problem_map", "units_figure", "coverage_gap_figure", "problem_figure",
    "save_figures", "write_gpkg", "write_report", "write_town_packages",
    # study
    "StudyData", "StudyConfig", "read_config", "write_template", "run_study", "load_study",
    "StudyResult", "coverage_from_files", "units_from_files", "run_many", "make_fillin_templates",
    "collect_study_fillins", "report_study",
    "make_sample_district", "write_sample", "sample_path",
    # plan
    "renewal_areas", "renewal_scores", "RenewalResult", "site_facilities", "SitingResult",
    "site_from_files", "project_library", "project_rules", "annual_plan", "plan_study", "PlanResult",
    "write_plan",
    # errors
    "GeotijianError", "LayerError", "ConfigError", "NetworkError", "FeasibilityError", "RasterError",
    "RepairWarning", "CoordinateWarning", "TopologyWarning", "InputWarning", "InputEncodingWarning",
    "OutputError", "StudyTooLargeError", "check_memory", "estimate_memory", "PlanWarning",
]
