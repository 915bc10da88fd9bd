"""geotijian (体检): urban check-up toolkit for Chinese districts, towns and communities.

Community check-up units, 15-minute life-circle coverage on the walk network, indicators
by unit/town/district, the problem ledger and the 一表三清单, and report maps.

>>> import geotijian as gt
>>> result = gt.run_study("layers/sample/study.toml")          # doctest: +SKIP
>>> print(result.summary())                                      # doctest: +SKIP
"""

from . import settings
from .access import (
    CoverageResult,
    coverage_gaps,
    facility_distance_matrix,
    nearest_facility_distance,
    service_areas,
    service_coverage,
)
from .assess import (
    build_tables,
    classify_problems,
    indicator_table,
    judge,
    read_ledger,
    rule_table,
    strengths,
    suggestions,
    update_ledger,
    write_ledger,
    write_tables,
)
from .config import StudyConfig, read_config, write_template
from .errors import (
    ConfigError,
    CoordinateWarning,
    FeasibilityError,
    GeotijianError,
    LayerError,
    NetworkError,
    RasterError,
    RepairWarning,
    TopologyWarning,
)
from .facilities import classify_pois, facility_catalogue
from .imagery import (
    imagery_indicators,
    quicklook_png,
    read_orthophoto,
    write_classified,
    zonal_cover,
)
from .indicators import compute_indicators, indicator_catalogue, read_filled_values
from .io import (
    ROLES,
    bd09_to_wgs84,
    check_alignment,
    check_gcj_shift,
    check_topology,
    convert_coords,
    gcj02_to_wgs84,
    read_layer,
    validate_layer,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from .io.osm import OSMData, load_osm
from .model import StudyData
from .network import WalkNetwork, build_network, snap_points
from .population import allocate_population
from .report import (
    coverage_gap_figure,
    problem_figure,
    problem_map,
    save_figures,
    save_problem_map,
    units_figure,
    write_gpkg,
)
from .sample import make_sample_district, sample_path, write_sample
from .study import StudyResult, coverage_from_files, load_study, run_many, run_study, units_from_files
from .survey import complaint_hotspots, complaint_rates, plan_sample, read_survey
from .units import delineate_blocks, delineate_units, range_compliance

__version__ = "0.1.0"

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
    "save_figures", "write_gpkg",
    # study
    "StudyData", "StudyConfig", "read_config", "write_template", "run_study", "load_study",
    "StudyResult", "coverage_from_files", "units_from_files", "run_many",
    "make_sample_district", "write_sample", "sample_path",
    # errors
    "GeotijianError", "LayerError", "ConfigError", "NetworkError", "FeasibilityError", "RasterError",
    "RepairWarning", "CoordinateWarning", "TopologyWarning",
]
