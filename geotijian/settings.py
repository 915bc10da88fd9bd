"""Package-wide defaults, in one place.

Every default that a study may want to change lives here, with its unit and source.
Read a value as ``settings.metric_crs``; change it for the session with
``settings.configure(metric_crs="EPSG:4549")`` or for a block with
``with settings.temporary(max_snap_distance_m=100): ...``. Unknown keys are an error, as
in ``geopandas.options``.

Attributes
----------
figure_dpi : int
    Resolution of the static figures, dots per inch (150; 300 for print). ``[report] dpi``.
figure_formats : tuple of str
    Formats of the static figures: any of ``png``, ``pdf``, ``svg``. ``[report] formats``.
metric_crs : str
    CRS for every measurement (metres). Default UTM zone 51N (EPSG:32651), which covers
    Shanghai; CGCS2000 / 3-degree GK CM 120E (EPSG:4549) is the national alternative for
    Jiading. Never EPSG:3857 (areal scale 1.37 at Shanghai).
geographic_crs : str
    CRS of OSM and of web maps (WGS84). CGCS2000 (EPSG:4490) differs by < 1 m.
boundary_tolerance_m : float
    Features farther than this (metres) outside the study boundary are an error (a
    wrong CRS or a wrong file is the usual cause).
max_snap_distance_m : float
    Homes or facilities farther than this (metres) from the walk network are reported.
polygon_access_distance_m : float
    A polygon facility (campus, park) without tagged gates reaches the network at the
    outline point nearest to each edge within this distance (metres) of its outline
    (judgement default: road half-width plus setback in Shanghai, 50 m).
service_area_half_width_m : float
    Half-width (metres) of the street space drawn around reached edges in service-area
    polygons (judgement default, 25 m).
service_area_stub_m : float
    Reached dead ends of the network no longer than this (metres; a footway to a
    building's door) are left out of the service-area polygons when the network goes on
    from where they hang: the polygons then lie within this distance of the full ones
    (they lose the stubs' round caps), every reached point of the network stays inside,
    and a district's unions take ~30 % less time (judgement default, 5 m; 0 draws every
    piece; less than the half-width).
unit_min_pop, unit_max_pop : int
    Community check-up unit size, persons (Jiading 2024 work plan; = GB 50180-2018
    5-minute life circle, 5,000-12,000).
block_road_classes : tuple of str
    OSM ``highway`` classes that bound blocks (tertiary and above).
sliver_area_m2 : float
    Blocks smaller than this (m²) are merged into their longest-shared-edge neighbour.
unit_bridge_gap_m : float
    Blocks of one town separated by less than this (metres) of water or rail count as
    neighbours when too small a piece must join a unit across it (a canal with a bridge;
    Jiading canals are 10-60 m wide). Judgement default, 60 m.
compound_cut_share : float
    A compound is never split: every block holding a piece of it joins its block group,
    except a *digitising overshoot*, a piece under this share of the compound's area (0-1)
    that is also nowhere wider than ``compound_overshoot_m`` (the outline drawn across the
    street's centre line). Judgement default 0.05.
compound_overshoot_m : float
    Width (metres) under which a small piece of a compound across a block road is a
    digitising overshoot, not a part of the compound (reported, never silent). Judgement
    default 15 m: half the red-line width of a Shanghai arterial plus digitising error.
compound_warn_pop : float
    A compound with more residents than this is warned about as implausible (a committee
    or town total typed on one compound?). Judgement default 20,000: Shanghai's largest
    single 小区 hold 15,000-20,000.
population_mismatch_share : float
    Compounds holding more or fewer residents than the committees' totals by more than
    this share (0-1) are warned about (duplicated or missing compounds). Default 0.1.
large_component_share : float
    A piece of the walk network apart from the largest one holding at least this share
    (0-1) of the network's length is warned about (a missing bridge or crossing splits
    the district). Default 0.05.
floor_area_per_person_m2 : float
    Housing floor area per resident (m²), GB 50180-2018 条文说明 assumes 35 m².
default_building_levels : int
    Levels assumed for a residential building without ``building:levels``.
level_height_m : float
    Storey height (m) used to turn a building height into levels.
survey_sample_rate : float
    Survey sample as a share of residents (≥ 2‰, Jiading 2024 work plan).
survey_pilot_min, survey_pilot_max : int
    Respondents per pilot community (50-100).
survey_min_age : int
    Minimum respondent age (16).
old_compound_before_year : int
    Compounds built before this year count as old (老旧小区; Shanghai renovation covers
    estates built before 2000).
walk_speed_m_per_min : float
    Walking speed used to turn metres into minutes (80 m/min = 4.8 km/h).
random_seed : int
    Seed for every random choice (sample generator, tie breaks).
output_dir : str
    Root folder of study outputs.
osm_attribution : str
    Attribution carried by every output derived from OpenStreetMap.
osm_walk_cycleways : bool
    Count OSM ``highway=cycleway`` ways as walkable (unless ``foot=no``). In Chinese OSM
    data a separately mapped cycleway is mostly the 非机动车道 beside a carriageway whose
    pavement pedestrians use; osmnx's walk filter drops them (US convention), which cuts
    Chinese walk networks apart (Tongji extract: largest piece 189 → 292 nodes).
imagery_ndvi_threshold : float
    Orthophoto vegetation when NDVI > this (0.3: moderate-to-dense vegetation, NASA
    Earth Observatory "Measuring Vegetation"; soils and built surfaces stay below ~0.25).
imagery_exg_threshold : float
    RGB vegetation when Excess Green 2g-r-b on chromatic coordinates > this (0.1;
    Woebbecke et al. 1995; grey surfaces give 0).
imagery_vari_threshold : float
    RGB vegetation when VARI = (G-R)/(G+R-B) > this (0.1; Gitelson et al. 2002).
imagery_ndwi_threshold : float
    Water when NDWI = (G-N)/(G+N) > this (McFeeters 1996 uses 0; 0.2 against
    built-up and shadow false positives).
imagery_shadow_brightness : float
    Shadow (unclassified) when brightness (mean visible band, or NIR if larger) is
    below this share of the white level (0.1).
imagery_water_max_brightness, imagery_water_blue_chroma : float
    RGB-only water: blue-dominant pixels darker than 0.35 of the white level with blue
    chromatic coordinate b/(r+g+b) > 0.36.
imagery_bare_red_blue_chroma, imagery_bare_max_red_chroma : float
    Bare soil: r > g > b with red-minus-blue chromatic > 0.12 and red chromatic < 0.5
    (stronger reds are tile roofs).
imagery_min_coverage : float
    Zones with less imaged area than this share are flagged ``partial_coverage`` (0.95).
imagery_max_unclassified : float
    Zones with more shadow than this share of imaged pixels are flagged
    ``high_unclassified`` (0.2).
memory_check : bool
    Stop a study before its heavy steps when its estimated peak memory exceeds the
    budget (``geotijian.resources``); False runs it anyway.
memory_budget_gb : float or None
    Memory a run may use (GB); None: ``memory_budget_share`` of the memory available
    when the study starts.
memory_budget_share : float
    Share (0-1) of the available memory a run may use when no budget is given (0.8:
    the rest for the system and other programs).
indicator_edition : str
    Edition of the indicator system a study uses when its ``[indicators] edition`` is
    not set (``"2024"``: the 2024 national basic list of 61 and geotijian's local
    indicators; ``"2023"``: the set geotijian packaged before editions).
siting_time_limit_s : float
    Time limit (seconds) of one facility-siting MILP (HiGHS); the answer at the limit is
    reported with its optimality gap. Judgement default 30 s.
siting_mip_rel_gap : float
    Relative optimality gap at which a siting MILP stops (HiGHS' default, 1e-4 = 0.01 %).
parallel : bool
    Run independent steps in a second thread: the edge index beside the network build,
    facility access points and part of the homes beside the homes (GEOS, numpy and
    scipy's csgraph release the GIL, so they overlap on a multi-core machine), the service
    areas' buffers and unions beside the study's steps from the network step on (on Linux
    in a forked process of their own, elsewhere in a thread); and, on Linux, the outputs'
    maps, coverage-gap figures and reports in forked worker processes
    (:mod:`geotijian.workers`). False runs them one after the other in one process;
    the results are the same.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

metric_crs: str = "EPSG:32651"
geographic_crs: str = "EPSG:4326"
boundary_tolerance_m: float = 1000.0
max_snap_distance_m: float = 200.0
polygon_access_distance_m: float = 50.0
service_area_half_width_m: float = 25.0
service_area_stub_m: float = 5.0
unit_min_pop: int = 5000
unit_max_pop: int = 12000
block_road_classes: tuple[str, ...] = (
    "motorway", "trunk", "primary", "secondary", "tertiary",
    "motorway_link", "trunk_link", "primary_link", "secondary_link", "tertiary_link",
)
sliver_area_m2: float = 2000.0
unit_bridge_gap_m: float = 60.0
compound_cut_share: float = 0.05
compound_overshoot_m: float = 15.0
compound_warn_pop: float = 20000.0
population_mismatch_share: float = 0.1
large_component_share: float = 0.05
floor_area_per_person_m2: float = 35.0
default_building_levels: int = 6
level_height_m: float = 3.0
survey_sample_rate: float = 0.002
survey_pilot_min: int = 50
survey_pilot_max: int = 100
survey_min_age: int = 16
old_compound_before_year: int = 2000
walk_speed_m_per_min: float = 80.0
random_seed: int = 20240604
output_dir: str = "outputs"
osm_attribution: str = "© OpenStreetMap contributors, ODbL"
imagery_ndvi_threshold: float = 0.3
imagery_exg_threshold: float = 0.1
imagery_vari_threshold: float = 0.1
imagery_ndwi_threshold: float = 0.2
imagery_shadow_brightness: float = 0.1
imagery_water_max_brightness: float = 0.35
imagery_water_blue_chroma: float = 0.36
imagery_bare_red_blue_chroma: float = 0.12
imagery_bare_max_red_chroma: float = 0.5
imagery_min_coverage: float = 0.95
imagery_max_unclassified: float = 0.2
osm_walk_cycleways: bool = True
memory_check: bool = True
memory_budget_gb: float | None = None
memory_budget_share: float = 0.8
indicator_edition: str = "2024"
siting_time_limit_s: float = 30.0
siting_mip_rel_gap: float = 1e-4
parallel: bool = True
figure_dpi: int = 150
figure_formats: tuple = ("png",)

_KEYS = (
    "metric_crs", "geographic_crs", "boundary_tolerance_m", "max_snap_distance_m", "polygon_access_distance_m", "service_area_half_width_m",
    "service_area_stub_m",
    "unit_min_pop", "unit_max_pop", "block_road_classes", "sliver_area_m2",
    "unit_bridge_gap_m", "compound_cut_share", "compound_overshoot_m",
    "compound_warn_pop", "population_mismatch_share", "large_component_share",
    "floor_area_per_person_m2", "default_building_levels", "level_height_m",
    "survey_sample_rate", "survey_pilot_min", "survey_pilot_max", "survey_min_age",
    "old_compound_before_year",
    "walk_speed_m_per_min", "random_seed", "output_dir", "osm_attribution",
    "osm_walk_cycleways",
    "imagery_ndvi_threshold", "imagery_exg_threshold", "imagery_vari_threshold",
    "imagery_ndwi_threshold", "imagery_shadow_brightness", "imagery_water_max_brightness",
    "imagery_water_blue_chroma", "imagery_bare_red_blue_chroma",
    "imagery_bare_max_red_chroma", "imagery_min_coverage", "imagery_max_unclassified",
    "memory_check", "memory_budget_gb", "memory_budget_share",
    "indicator_edition", "figure_dpi", "figure_formats",
    "siting_time_limit_s", "siting_mip_rel_gap",
    "parallel",
)


def _check(key: str, value: Any) -> Any:
    if key not in _KEYS:
        import difflib

        close = difflib.get_close_matches(key, _KEYS, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise KeyError(f"unknown setting {key!r}{hint}; known settings: {', '.join(_KEYS)}")
    current = globals()[key]
    if key == "memory_budget_gb":
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ValueError(f"setting 'memory_budget_gb' must be a positive number of GB or None, got {value!r}")
        return None if value is None else float(value)
    if isinstance(current, tuple):
        return tuple(value)
    if isinstance(current, bool) or isinstance(current, str):
        if not isinstance(value, type(current)):
            raise TypeError(f"setting {key!r} must be {type(current).__name__}, got {value!r}")
        return value
    if isinstance(current, (int, float)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"setting {key!r} must be a number, got {value!r}")
        if value < 0:
            raise ValueError(f"setting {key!r} must not be negative, got {value!r}")
        return type(current)(value)
    return value


def configure(**kwargs: Any) -> None:
    """Change settings for the rest of the session (unknown keys raise ``KeyError``)."""
    checked = {k: _check(k, v) for k, v in kwargs.items()}
    if "unit_min_pop" in checked or "unit_max_pop" in checked:
        lo = checked.get("unit_min_pop", unit_min_pop)
        hi = checked.get("unit_max_pop", unit_max_pop)
        if lo >= hi:
            raise ValueError(f"unit_min_pop ({lo}) must be below unit_max_pop ({hi})")
    globals().update(checked)


def current() -> dict[str, Any]:
    """All settings as a dict (written into ``run.json``)."""
    return {k: globals()[k] for k in _KEYS}


@contextlib.contextmanager
def temporary(**kwargs: Any) -> Iterator[None]:
    """Change settings inside a ``with`` block only."""
    saved = {k: globals()[k] for k in kwargs if k in _KEYS}
    configure(**kwargs)
    try:
        yield
    finally:
        globals().update(saved)
