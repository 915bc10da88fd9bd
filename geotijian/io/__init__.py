"""Input and output: layers by role, OSM, coordinates, encodings, safe tables, atomic writes."""

from .atomic import atomic_path, write_bytes_atomic, write_text_atomic
from .coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    convert_coords,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from .alignment import check_alignment
from .crs import crs_fit, suggest_metric_crs
from .layers import ROLES, RoleSpec, check_gcj_shift, read_layer, validate_layer
from .osm import OSMData, load_osm, parse_other_tags, walk_mask
from .tables import markdown_cell, protect_cells, write_csv
from .text import detect_encoding, read_table, read_text_table
from .topology import check_topology, clip_to_area

__all__ = [
    "ROLES", "RoleSpec", "read_layer", "validate_layer", "check_gcj_shift", "check_alignment",
    "check_topology", "clip_to_area",
    "atomic_path", "write_text_atomic", "write_bytes_atomic",
    "convert_coords", "wgs84_to_gcj02", "gcj02_to_wgs84", "gcj02_to_bd09", "bd09_to_gcj02",
    "wgs84_to_bd09", "bd09_to_wgs84",
    "OSMData", "load_osm", "walk_mask", "parse_other_tags",
    "detect_encoding", "read_table", "read_text_table", "write_csv", "protect_cells", "markdown_cell",
    "crs_fit", "suggest_metric_crs",
]
