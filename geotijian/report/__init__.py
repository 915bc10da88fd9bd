"""Report attachments: the offline problem maps, static figures and the styled GeoPackage.

``problem_map`` / ``save_problem_map`` (maps.py) write a self-contained Leaflet map,
``save_town_maps`` (town_maps.py) one per town (街镇) linked with it (``district_nav``), both
with the study's renewal plan when it has one (plan_layers.py: 更新片区, 新增设施选址);
``units_figure``, ``coverage_gap_figure``, ``save_figures`` (figures.py) and
``problem_figure``, ``problem_class_figure`` (problem_figures.py) the print maps;
``write_gpkg`` (gpkg.py) every layer and table in one GeoPackage with QGIS styles (styles.py).
"""

from .figures import (
    coverage_gap_figure,
    find_cjk_font,
    save_figures,
    units_figure,
)
from .gpkg import write_gpkg
from .maps import MapNav, problem_map, render_problem_map, save_problem_map
from .problem_figures import problem_class_figure, problem_figure
from .styles import layer_qml
from .town_maps import district_nav, save_town_maps, town_study

__all__ = [
    "problem_map", "save_problem_map", "render_problem_map", "MapNav", "district_nav",
    "save_town_maps", "town_study",
    "units_figure", "coverage_gap_figure", "problem_figure", "problem_class_figure", "save_figures",
    "find_cjk_font",
    "write_gpkg", "layer_qml",
]
