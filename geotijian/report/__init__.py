"""Report attachments: the offline problem map, static figures and the styled GeoPackage.

``problem_map`` / ``save_problem_map`` (maps.py) write a self-contained Leaflet map;
``units_figure``, ``coverage_gap_figure``, ``problem_figure``, ``save_figures``
(figures.py) the print maps; ``write_gpkg`` (gpkg.py) every layer and table in one
GeoPackage with QGIS styles (styles.py).
"""

from .figures import (
    coverage_gap_figure,
    find_cjk_font,
    problem_figure,
    save_figures,
    units_figure,
)
from .gpkg import write_gpkg
from .maps import problem_map, render_problem_map, save_problem_map
from .plan_layers import add_plan_layers
from .styles import layer_qml

__all__ = [
    "problem_map", "save_problem_map", "render_problem_map", "add_plan_layers",
    "units_figure", "coverage_gap_figure", "problem_figure", "save_figures", "find_cjk_font",
    "write_gpkg", "layer_qml",
]
