"""Interactive problem maps (体检问题地图): self-contained, offline HTML files.

``problem_map(study)`` draws whatever layers a study holds (boundary, towns, units as a
choropleth, facilities by life-circle level, coverage gaps, service areas, problems on
their units by class, hotline hot spots, and with ``compounds=True`` the compounds with the
facility types they miss) on a folium/Leaflet map: a layer control grouped 底图 / 评估单元 /
设施 / 覆盖缺口 / 问题 / 热线 with few layers on at load, a collapsible legend, the district-
and town-level problems in a side table, names rather than codes, Chinese (or English)
popups and a title from ``study.title``. ``save_problem_map(m, path)`` writes it with
Leaflet 1.9.4 inlined (``report/static``, BSD-2), so the map opens on an intranet with no
network: tiles then simply do not load, the overlays still draw.
``town_maps.save_town_maps`` writes one map per town (街镇), linked both ways with the
district map.

A district map stays small and quick to draw (issue 15: ≤ 15 MB, drawn < 5 s): homes
with a gap are one table (a row per home, its distance to every type) drawn per type on a
canvas (``GtjDots``), facilities on a canvas too, problems one feature per unit and class,
units and towns simplified as a coverage (shared edges once), GeoJSON written by GEOS,
service areas only when they fit a vertex budget (else in the town maps, which carry
every layer in full detail), and no Jinja pass over the page's data.

Every text that comes from data (place and facility names, comments, suggestions) is
HTML-escaped before it reaches a popup, tooltip, legend or layer name.
"""

from __future__ import annotations

import html
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import folium
import matplotlib
import numpy as np
import pandas as pd
import shapely

import geopandas as gpd

from ..errors import ConfigError, CoordinateWarning, LayerError
from ..io.atomic import write_text_atomic
from ..model import StudyData
from . import _common as c
from . import _leaflet as lf
from .map_problems import side_table_html, unit_problem_features
from .plan_layers import add_plan, has_plan

__all__ = ["problem_map", "save_problem_map", "render_problem_map", "MapNav", "BASEMAPS"]

_to_web = lf.to_web  # (the tests call it here)

# name -> (zh label, en label, tile URL, attribution, max zoom, subdomains, datum)
BASEMAPS: dict[str, dict] = {
    "osm": {
        "label": ("OpenStreetMap 底图", "OpenStreetMap"),
        "url": "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "attr": '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a>'
                " contributors",
        "max_zoom": 19, "subdomains": "abc", "datum": "wgs84",
    },
    "tianditu": {  # Tianditu WMTS, Web Mercator set "w"; CGCS2000 ≈ WGS84 (< 1 m).
        "label": ("天地图矢量底图", "Tianditu vector"),
        "url": "https://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
               "&VERSION=1.0.0&LAYER=vec&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
               "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={key}",
        "labels_url": "https://t{s}.tianditu.gov.cn/cva_w/wmts?SERVICE=WMTS&REQUEST=GetTile"
                      "&VERSION=1.0.0&LAYER=cva&STYLE=default&TILEMATRIXSET=w&FORMAT=tiles"
                      "&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk={key}",
        "attr": "&copy; 天地图 Tianditu (国家地理信息公共服务平台)",
        "max_zoom": 18, "subdomains": "01234567", "datum": "wgs84",
    },
    "amap": {  # AutoNavi tiles are drawn in GCJ-02.
        "label": ("高德地图底图 (GCJ-02)", "Amap (GCJ-02)"),
        "url": "https://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1"
               "&style=8&x={x}&y={y}&z={z}",
        "attr": "&copy; 高德地图 AutoNavi",
        "max_zoom": 18, "subdomains": "1234", "datum": "gcj02",
    },
    "blank": {"label": ("空白底图 (离线)", "blank (offline)"), "datum": None},
}

#: Service areas go on a map only under this many vertices (after simplification): a
#: district's 14 types hold ~1.2 million (13 MB of the page); its town maps carry them.
SERVICE_AREA_VERTEX_BUDGET = 150_000

#: Compounds by the number of facility types they miss (0, 1-2, 3-5, 6+): ColorBrewer
#: Purples, like the coverage gaps, apart from the class reds/orange/blue.
COMPOUND_GAP_BREAKS = (1, 3, 6)
COMPOUND_GAP_COLORS = ("#f2f0f7", "#dadaeb", "#bcbddc", "#807dba")

_TXT = {
    "title": ("{name} {year} 年城市体检问题地图", "{name} {year} urban check-up problem map"),
    "density": ("人口密度", "population density"),
    "density_unit": ("人/公顷", "persons/ha"),
    "reference": ("参考值", "reference value"),
    "nodata": ("无数据", "no data"),
    "facilities": ("设施", "facilities"),
    "gaps": ("覆盖缺口", "coverage gap"),
    "gap_title": ("覆盖缺口: 最近设施步行距离 / 服务半径", "coverage gap: walk to nearest / radius"),
    "gap_types": ("缺口类型", "types missing"),
    "service": ("服务范围", "service areas"),
    "service_towns": ("设施服务范围见各街镇地图", "service areas: see the town maps"),
    "problems": ("问题", "problems"),
    "hotspots": ("热线热点 (显著)", "hotline hot spots (significant)"),
    "units_layer": ("社区体检单元", "check-up units"),
    "boundary": ("研究范围", "study boundary"),
    "towns": ("街镇", "towns"),
    "compounds": ("小区", "compounds"),
    "compound_gaps": ("小区: 缺少的设施类型数", "compounds: facility types missing"),
    "legend": ("图例", "legend"),
    "ratio": ("倍", "×"),
    "side": ("区级、街镇级问题", "district and town problems"),
    "flag": ("人口超出单元范围", "outside the population range"),
    "problems_units": ("社区体检单元问题 (按类别)", "problems of check-up units (by class)"),
    "problem_list": ("问题清单", "problems"),
    "town": ("街镇", "town"),
    "circle": ("{m}分钟生活圈", "{m}-minute life circle"),
    "other_facilities": ("其他设施", "other facilities"),
    "block": ("居住街坊", "residential block"),
    "town_maps": ("街镇地图", "town maps"),
    "district_map": ("← 全区地图", "← district map"),
    "open_town": ("打开街镇地图", "open the town map"),
}

#: Layer groups of the layer control, in its order (zh, en).
GROUPS = {"base": ("底图", "basemap"), "areas": ("评估单元", "areas"), "facilities": ("设施", "facilities"),
          "service": ("设施服务范围", "service areas"),
          "gaps": ("覆盖缺口", "coverage gaps"), "problems": ("问题", "problems"),
          "plan": ("更新规划", "renewal plan"), "hotline": ("热线", "hotline")}
GROUP_ORDER = ("areas", "facilities", "service", "gaps", "problems", "plan", "hotline")
#: groups folded at load (one layer per facility type: a click opens the list)
CLOSED_GROUPS = ("service", "gaps")
#: Choropleth ramp (matplotlib name): sequential greens, apart from the class reds/orange/blue,
#: the purple gaps and the brown hot spots.
CHOROPLETH_CMAP = "Greens"
#: Hot spots p < 0.01, p < 0.05 (ColorBrewer BrBG browns).
HOTSPOT_COLORS = ("#8c510a", "#d8b365")


def _group(key: str, lang: str) -> str:
    return GROUPS[key][c.lang_index(lang)]


def _t(key: str, lang: str) -> str:
    return _TXT[key][c.lang_index(lang)]


@dataclass
class MapNav:
    """Links between the district map and the town maps.

    ``towns``: ``(town_code, name, href)`` of every town map, hrefs relative to this map;
    ``home``: href of the district map (on a town map); ``current``: this map's town code.
    """

    towns: list[tuple[str, str, str]] = field(default_factory=list)
    home: str | None = None
    current: str | None = None


# --------------------------------------------------------------------------- indicator

def _unit_indicator(study: StudyData, indicator: str | None, lang: str
                    ) -> tuple[pd.Series, str, str, float | None]:
    """Values per unit (aligned to ``study.units``), name, unit, reference value."""
    units = study.units
    li = c.lang_index(lang)
    if indicator is None:
        for col in ("population", "area_ha"):
            if col not in units.columns:
                raise LayerError("units", f"missing column {col!r} for population density",
                                 fix="pass indicator= a column or an indicator code")
        area = pd.to_numeric(units["area_ha"], errors="coerce").astype(float)
        val = pd.to_numeric(units["population"], errors="coerce").astype(float) / area.where(
            area > 0)
        return val, _t("density", lang), _t("density_unit", lang), None
    if indicator in units.columns:
        val = pd.to_numeric(units[indicator], errors="coerce").astype(float)
        return val, c.field_label(indicator, lang), "", None
    table = study.indicator_table
    is_code = (table["code"].to_numpy(dtype=object) == indicator) if table is not None and "code" in table.columns \
        else None
    if is_code is not None and is_code.any():
        rows = table.loc[is_code & table["area_id"].astype(str).isin(units["unit_id"].astype(str)).to_numpy()]
        if rows.empty:
            raise LayerError("indicator_table", f"indicator {indicator!r} has no value for any "
                             "check-up unit", fix="compute it at unit level or pick another")
        rows = rows.assign(area_id=rows["area_id"].astype(str)).drop_duplicates(
            "area_id", keep="first").set_index("area_id")
        val = pd.to_numeric(units["unit_id"].astype(str).map(rows["value"]), errors="coerce")
        first = rows.iloc[0]
        name = str(first.get("name_zh", indicator)) if li == 0 else indicator
        cat = c.indicator_catalogue()
        hit = cat.loc[cat["code"] == indicator]
        if li == 1 and not hit.empty:
            name = str(hit.iloc[0]["name_en"])
        ref = pd.to_numeric(pd.Series([first.get("reference_value", first.get("reference"))]),
                            errors="coerce").iloc[0]
        unit = "" if pd.isna(first.get("unit")) else str(first.get("unit", ""))
        return val.astype(float), name, unit, (None if pd.isna(ref) else float(ref))
    known = sorted(set(units.columns) - {"geometry"})
    if table is not None and "code" in table.columns:
        known += sorted(set(table["code"].astype(str)))
    raise ConfigError("indicator", f"{indicator!r} is neither a units column nor an indicator "
                      "code in study.indicator_table",
                      fix=f"use one of: {', '.join(known[:40])}")


def _quantile_bins(y: np.ndarray, k: int) -> np.ndarray:
    """mapclassify's ``Quantiles`` bins (linear percentiles at 100/k steps, ties merged),
    in numpy: mapclassify compiles numba kernels at import, seconds a map should not pay."""
    w = 100.0 / k
    p = np.arange(w, 100 + w, w)
    p[-1] = min(p[-1], 100.0)
    return np.unique(np.percentile(y, p[p <= 100.0]))


def _classify(values: pd.Series, *, scheme: str, k: int, bins: Sequence[float] | None = None
              ) -> tuple[np.ndarray, list[float]]:
    """Class index per value (-1 for NaN) and the class upper bounds.

    ``bins`` (upper bounds) classifies against given classes (a town map uses its
    district's); else ``scheme`` and ``k`` as in mapclassify (``quantiles`` in numpy, the
    same bins).
    """
    y = values.to_numpy(dtype=float)
    ok = np.isfinite(y)
    cls = np.full(len(y), -1, dtype=int)
    if bins is not None:
        b = np.asarray(bins, dtype=float)
        if len(b):
            cls[ok] = np.minimum(np.searchsorted(b, y[ok], side="left"), len(b) - 1)
        return cls, [float(x) for x in b]
    if not ok.any():
        return cls, []
    kk = int(min(k, len(np.unique(y[ok]))))
    if kk < 2:
        cls[ok] = 0
        return cls, [float(np.nanmax(y))]
    if scheme.lower() == "quantiles":
        b = _quantile_bins(y[ok], kk)
        cls[ok] = np.searchsorted(b, y[ok], side="left")
        return cls, [float(x) for x in b]
    # (imported here: where numba is installed, mapclassify compiles its Fisher-Jenks
    # kernel at import, seconds that only a classified map should pay)
    import mapclassify

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # mapclassify: fewer classes than k
        cl = mapclassify.classify(y[ok], scheme=scheme, k=kk)
    cls[ok] = cl.yb
    return cls, [float(b) for b in cl.bins]


def _ramp(n: int, cmap: str = "YlOrRd") -> list[str]:
    cm = matplotlib.colormaps[cmap]
    if n <= 1:
        return [matplotlib.colors.to_hex(cm(0.6))]
    return [matplotlib.colors.to_hex(cm(0.12 + 0.83 * i / (n - 1))) for i in range(n)]


def _fmt(x: float) -> str:
    return c.format_values(pd.Series([x])).iloc[0]


# --------------------------------------------------------------------------- the map

def _without_attrs(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The layer without its attrs (e.g. the units' delineation report, which every pandas
    step on the layer would deep-copy)."""
    if not gdf.attrs:
        return gdf
    out = gpd.GeoDataFrame(gdf, copy=False)
    out.attrs = {}
    return out


def _basemaps(basemap: str | Sequence[str]) -> list[str]:
    names = [basemap] if isinstance(basemap, str) else list(basemap)
    for n in names:
        if n not in BASEMAPS:
            raise ConfigError("basemap", f"unknown basemap {n!r}", fix=f"use one of {list(BASEMAPS)}")
    if "blank" not in names:
        names.append("blank")
    return list(dict.fromkeys(names))


def _overlay_datum(names: list[str], *, amap_shift: bool, tianditu_key: str | None) -> bool:
    """Whether overlays are shifted to GCJ-02 (an Amap basemap); checks the basemap options."""
    gcj = False
    if "amap" in names:
        if amap_shift:
            others = [n for n in names if BASEMAPS[n]["datum"] == "wgs84"]
            if others:
                raise ConfigError("basemap", f"amap (GCJ-02) cannot share the map with {others} "
                                  "(WGS84): the shifted overlays would be ~500 m off on them",
                                  fix="use basemap=('amap',) or amap_shift=False")
            gcj = True
        else:
            warnings.warn("Amap tiles are in GCJ-02: WGS84 overlays will appear ~500 m off "
                          "(pass amap_shift=True to shift them)", CoordinateWarning, stacklevel=3)
    if "tianditu" in names and not tianditu_key:
        raise ConfigError("tianditu_key", "the Tianditu basemap needs a browser key",
                          fix="pass tianditu_key= (apply at console.tianditu.gov.cn)")
    return gcj


def _base_map(names: list[str], *, lang: str, tianditu_key: str | None) -> folium.Map:
    """The Leaflet map with its basemaps (the first shown), no CDN assets."""
    li = c.lang_index(lang)
    m = folium.Map(tiles=None, control_scale=False, zoom_start=13, location=[31.38, 121.25],
                   maxZoom=19, minZoom=8, zoomSnap=0.25)  # (a quarter zoom: the first view fills its room)
    # zoom 8 (all of Shanghai) is as far out as a study needs
    m.default_js = []
    m.default_css = []
    for i, n in enumerate(names):
        spec = BASEMAPS[n]
        label = lf.layer_name(spec["label"][li])
        if n == "blank":
            folium.FeatureGroup(name=label, overlay=False, control=True, show=(i == 0)).add_to(m)
            continue
        url = spec["url"].replace("{key}", quote(tianditu_key or "", safe=""))
        folium.TileLayer(tiles=url, attr=spec["attr"], name=label, overlay=False, control=True,
                         show=(i == 0), max_zoom=spec["max_zoom"],
                         subdomains=spec["subdomains"]).add_to(m)
        if n == "tianditu":
            folium.TileLayer(tiles=spec["labels_url"].replace("{key}", quote(tianditu_key, safe="")),
                             attr=spec["attr"], name=lf.layer_name(("天地图注记", "Tianditu labels")[li]),
                             overlay=True, control=True, show=(i == 0), max_zoom=spec["max_zoom"],
                             subdomains=spec["subdomains"]).add_to(m)
    return m


@dataclass
class _Ctx:
    """What the layer builders of one map share: the map, its language, legend, extent and
    the layers filed per group of the control so far."""

    m: folium.Map
    study: StudyData
    layers: dict[str, gpd.GeoDataFrame]
    lang: str
    simplify_m: float
    decimals: int
    gcj: bool
    indicator: str | None
    legend: list[str] = field(default_factory=list)
    bounds: list[np.ndarray] = field(default_factory=list)
    #: extent of the areas (boundary, towns, units): the first view; a town map's facilities
    #: reach a walking radius beyond its town
    area_bounds: list[np.ndarray] = field(default_factory=list)
    groups: dict[str, list] = field(default_factory=dict)

    @property
    def li(self) -> int:
        return c.lang_index(self.lang)

    def t(self, key: str) -> str:
        return _t(key, self.lang)

    def web(self, name: str, gdf: gpd.GeoDataFrame | None = None, *,
            max_vertices: int | None = None) -> gpd.GeoDataFrame | None:
        return lf.to_web(self.layers[name] if gdf is None else gdf, simplify_m=self.simplify_m,
                         decimals=self.decimals, gcj=self.gcj, layer=name, max_vertices=max_vertices)

    def layer(self, group: str, label: str, *, show: bool, file: bool = True) -> folium.FeatureGroup:
        """A feature group on the map, filed under ``group`` in the control (unless ``file``
        is false: the caller files it, in another order than drawn)."""
        fg = folium.FeatureGroup(name=lf.layer_name(label), show=show).add_to(self.m)
        if file:
            self.groups.setdefault(_group(group, self.lang), []).append(fg)
        return fg


def problem_map(
    study: StudyData,
    *,
    indicator: str | None = None,
    lang: str = "zh",
    basemap: str | Sequence[str] = "osm",
    amap_shift: bool = True,
    tianditu_key: str | None = None,
    scheme: str = "quantiles",
    k: int = 5,
    bins: Sequence[float] | None = None,
    title: str | None = None,
    simplify_m: float = 2.0,
    decimals: int = 5,
    compounds: bool = False,
    service_areas: bool | None = None,
    nav: MapNav | None = None,
    plan: bool = True,
) -> folium.Map:
    """The interactive problem map of a study (体检问题地图).

    Parameters
    ----------
    study : StudyData
        Draws whatever exists: boundary, towns, units, facilities, coverage_gaps,
        service_areas, problems (their unit-level ``problem_points`` on the units, the
        district- and town-level problems in a side table), hotspots (column contracts in
        ``geotijian.model``). Each layer must carry a CRS.
    indicator : str, optional
        Choropleth of the units: a units column (``"population"``) or an indicator code of
        ``study.indicator_table`` with unit-level values (its unit and reference value go in
        the legend). Default: population density (persons per hectare). With
        ``cov_<type>`` the coverage gaps of that type are on at load.
    lang : {"zh", "en"}
        Language of the title, legend, layer names and popups (levels, statuses and units
        of measure included).
    basemap : str or sequence of str
        ``"osm"`` (OpenStreetMap tiles), ``"tianditu"`` (needs ``tianditu_key``),
        ``"amap"`` (AutoNavi, GCJ-02) — the first is shown; a ``"blank"`` no-tile option is
        always added (offline the tiles simply do not load, the overlays still draw).
    amap_shift : bool
        With an Amap basemap, shift every overlay from WGS84 into GCJ-02 (the ~480 m
        offset in Jiading) so it lies on the tiles. ``False`` keeps WGS84 and warns
        (``CoordinateWarning``) that the overlays will sit ~500 m off the tiles.
    tianditu_key : str, optional
        Tianditu (天地图) browser key (``tk``), required for ``basemap="tianditu"``.
    scheme, k : str, int
        Classification of the choropleth, as mapclassify's (deterministic schemes only:
        quantiles, equal_interval, fisher_jenks, ...). Default 5 quantiles.
    bins : sequence of float, optional
        Class upper bounds of the choropleth instead of ``scheme``/``k`` (a town map takes
        its district's, so colours mean the same on both).
    title : str, optional
        Title; default "<study.display_name> <year> 年城市体检问题地图" (``study.title``, else
        the boundary's name).
    simplify_m : float
        Simplification tolerance of lines and polygons, metres; towns, units and blocks
        are simplified as a coverage (a shared edge once, no gaps or overlaps between
        neighbours). 2 m is below a pixel up to zoom 16; 0 disables it.
    decimals : int
        Decimals kept in WGS84 degrees: 5 ≈ 1 m.
    compounds : bool
        Draw the compounds (小区), coloured by the number of facility types they miss, with
        the list in their popup (the town maps do; a district's 24,000 are too many).
    service_areas : bool, optional
        Draw the service areas (hidden at load). Default: when they hold fewer than
        ``SERVICE_AREA_VERTEX_BUDGET`` vertices after simplification (else the legend
        points to the town maps).
    nav : MapNav, optional
        Links to the town maps (a list panel, town labels, the towns' popups) and back to
        the district map.
    plan : bool
        Draw the renewal plan the study holds (``renewal_areas``, ``new_sites``: group
        更新规划, :mod:`geotijian.report.plan_layers`); ``False`` leaves it out.

    Returns
    -------
    folium.Map
        Leaflet is already inlined in its header (folium's CDN links are removed); save
        it with ``save_problem_map`` (atomic, and refuses any remaining remote script or
        stylesheet).
    """
    li = c.lang_index(lang)
    names = _basemaps(basemap)
    gcj = _overlay_datum(names, amap_shift=amap_shift, tianditu_key=tianditu_key)
    layers = {n: _without_attrs(g) for n, g in study.layers().items()}
    if not compounds:
        layers.pop("compounds", None)
    if service_areas is False:
        layers.pop("service_areas", None)
    drawable = [n for n in ("boundary", "towns", "units", "compounds", "service_areas", "coverage_gaps",
                            "hotspots", "problems", "facilities") if n in layers and len(layers[n])]
    plan = plan and has_plan(study)
    if not drawable and study.problem_points is None and not plan:
        raise LayerError("study", "has no layer to draw (boundary, towns, units, facilities, "
                         "coverage_gaps, service_areas, problems or hotspots)",
                         fix="compute or load at least one of them")

    m = _base_map(names, lang=lang, tianditu_key=tianditu_key)
    ctx = _Ctx(m=m, study=study, layers=layers, lang=lang, simplify_m=simplify_m, decimals=decimals, gcj=gcj,
               indicator=indicator)
    # drawn bottom to top: areas, compounds, service areas, gaps, problems, hot spots, facilities,
    # the plan's areas and new sites
    _add_outlines(ctx, drawable, nav)
    builders = {"units": lambda: _add_units(ctx, scheme=scheme, k=k, bins=bins),
                "compounds": lambda: _add_compounds(ctx),
                "service_areas": lambda: _add_service_areas(ctx, service_areas),
                "coverage_gaps": lambda: _add_gaps(ctx), "problems": lambda: _add_problems(ctx),
                "hotspots": lambda: _add_hotspots(ctx), "facilities": lambda: _add_facilities(ctx)}
    for name, build in builders.items():
        if name in drawable or (name == "problems" and study.problem_points is not None):
            build()
    if plan:
        add_plan(ctx)
    return _finish(ctx, title or _TXT["title"][li].format(name=study.display_name, year=study.year), nav)


def _finish(ctx: _Ctx, ttl: str, nav: MapNav | None) -> folium.Map:
    """The grouped layer control (after every layer), scale bar, attribution, first view,
    panels, inlined assets and stable element IDs."""
    m, lang, study = ctx.m, ctx.lang, ctx.study
    groups = {_group(g, lang): ctx.groups.get(_group(g, lang), []) for g in GROUP_ORDER}
    m.add_child(lf.GroupedLayers(groups=groups, closed=[_group(g, lang) for g in CLOSED_GROUPS],
                                 base_label=_group("base", lang)))
    m.add_child(lf.scale_bar())
    if study.from_osm:
        m.add_child(lf.attribution(html.escape(study.attribution)))
    if ctx.bounds or ctx.area_bounds:
        b = np.vstack(ctx.area_bounds or ctx.bounds)
        m.add_child(lf.fit_bounds([[float(np.nanmin(b[:, 1])), float(np.nanmin(b[:, 0]))],
                                   [float(np.nanmax(b[:, 3])), float(np.nanmax(b[:, 2]))]]))
    _page_panels(ctx, ttl, nav)
    lf.inline_assets(m)
    lf.stable_ids(m)
    return m


def _page_panels(ctx: _Ctx, ttl: str, nav: MapNav | None) -> None:
    """Title, legend, side table and town links (folded in a small window)."""
    m, lang, study = ctx.m, ctx.lang, ctx.study
    root = m.get_root()
    root.title = html.escape(ttl)
    root.html.add_child(lf.Raw(f"<div class='gtj-title'>{html.escape(ttl)}</div>"), name="gtj_title")
    if ctx.legend:
        root.html.add_child(lf.Raw(f"<details class='gtj-legend gtj-panel' open><summary>{_t('legend', lang)}"
                                   "</summary><div class='gtj-body'>" + "".join(ctx.legend) + "</div></details>"),
                            name="gtj_legend")
    left = []
    table, n_side = side_table_html(study, lang=lang)
    if n_side:
        left.append(f"<details class='gtj-side gtj-panel' open><summary>{_t('side', lang)} ({n_side})"
                    f"</summary><div class='gtj-body'>{table}</div></details>")
    if nav is not None and (nav.home or nav.towns):
        left.append(_nav_html(nav, lang))
    if left:
        both = " both" if len(left) > 1 else ""
        root.html.add_child(lf.Raw(f"<div class='gtj-left{both}'>" + "".join(left) + "</div>"), name="gtj_left")
    # a small window (an embed, a laptop): panels start folded, a click opens them
    root.html.add_child(lf.Raw(lf.script_tag(lf.SMALL_JS)), name="gtj_small")


def _nav_html(nav: MapNav, lang: str) -> str:
    """The links panel: back to the district map, and every town map."""
    parts = []
    if nav.home:
        parts.append(f"<a class='home' href='{html.escape(nav.home, quote=True)}'>{_t('district_map', lang)}</a>")
    for code, name, href in nav.towns:
        if nav.current is not None and str(code) == str(nav.current):
            parts.append(f"<span class='here'>{html.escape(str(name))}</span>")
        else:
            parts.append(f"<a href='{html.escape(href, quote=True)}'>{html.escape(str(name))}</a>")
    return (f"<details class='gtj-nav gtj-panel' open><summary>{_t('town_maps', lang)} ({len(nav.towns)})"
            "</summary><div class='gtj-body'>" + "".join(parts) + "</div></details>")


def _add_outlines(ctx: _Ctx, drawable: list[str], nav: MapNav | None) -> None:
    """The study boundary and the towns (by name): outlines; a town's name on the map and
    its popup link to its town map."""
    lang = ctx.lang
    if "boundary" in drawable:
        w = ctx.web("boundary")
        ctx.area_bounds.append(w.total_bounds)
        tip = lf.name_series(w, ["name", "boundary_id"], _t("boundary", lang))
        ctx.layer("areas", _t("boundary", lang), show=True).add_child(lf.geo_data(
            lf.geojson(w, {"t": tip}), color_keys=[],
            style={"color": "#222222", "weight": 2.5, "fill": False, "dashArray": "6 4"}))
    if "towns" not in drawable:
        return
    w = ctx.web("towns")
    ctx.area_bounds.append(w.total_bounds)
    tip = lf.name_series(w, ["name", "town_code"], "")
    pop = lf.popup(w, ["name", "town_code", "population"], lang, header=tip)
    props = {"t": tip, **pop.props}
    fg = ctx.layer("areas", _t("towns", lang), show=True)
    href = _town_hrefs(w, nav)
    if href is not None:  # the town map is one click away: a link in the popup, the label
        link = href.map(lambda h: f"<a href='{h}'>{html.escape(ctx.t('open_town'))} →</a>" if h else "—")
        props["v"] = pd.Series([v + [lk] for v, lk in zip(props["v"], link, strict=True)], index=w.index,
                               dtype=object)
        pop.fields = [*pop.fields, html.escape(ctx.t("town_maps"))]
        here = (w["town_code"].astype(str) == str(nav.current)).to_numpy() if nav.current else np.zeros(len(w), bool)
        at = shapely.get_coordinates(shapely.point_on_surface(w.geometry.to_numpy()))
        rows = [[float(y), float(x), name, h] for (x, y), name, h, cur in
                zip(at, tip, href, here, strict=True) if h and not cur]
        if rows:
            fg.add_child(lf.town_labels(rows))
    fg.add_child(lf.geo_data(lf.geojson(w, props), fields=pop.fields, color_keys=[],
                             style={"color": "#555555", "weight": 1.8, "fill": False}))


def _town_hrefs(w: gpd.GeoDataFrame, nav: MapNav | None) -> pd.Series | None:
    if nav is None or not nav.towns or "town_code" not in w.columns:
        return None
    by_code = {str(code): html.escape(href, quote=True) for code, _, href in nav.towns}
    return w["town_code"].astype(str).map(by_code).fillna("")


def _committee_names(study: StudyData, units: pd.DataFrame) -> pd.Series:
    """The committees of each unit by name (``育绿居委会、紫荆居委会``), else their IDs."""
    if "committees" not in units.columns:
        return pd.Series("", index=units.index, dtype=object)
    names: dict[str, str] = {}
    cm = study.committees
    if cm is not None and "committee_id" in cm.columns and "name" in cm.columns:
        names = dict(zip(cm["committee_id"].astype(str), cm["name"].astype(str), strict=True))
    return units["committees"].map(lambda s: "、".join(names.get(x.strip(), x.strip()) for x in str(s).split(",")
                                                      if x.strip()) if isinstance(s, str) else "")


def _add_units(ctx: _Ctx, *, scheme: str, k: int, bins: Sequence[float] | None) -> None:
    """The units as a choropleth (sequential greens: apart from class and gap colours)."""
    study, lang = ctx.study, ctx.lang
    units = ctx.layers["units"]
    val, ind_name, ind_unit, ref = _unit_indicator(study, ctx.indicator, lang)
    given = bins is not None   # (a town map's: the district's classes, the first one open below)
    cls, bins = _classify(val, scheme=scheme, k=k, bins=bins)
    colors = _ramp(len(bins), CHOROPLETH_CMAP)
    col = np.where(cls >= 0, np.array(colors + [c.NODATA_COLOR], dtype=object)[cls],
                   c.NODATA_COLOR) if bins else np.full(len(cls), c.NODATA_COLOR, dtype=object)
    u = units.assign(_value=val.to_numpy(), _color=col, _committees=_committee_names(study, units).to_numpy())
    w = ctx.web("units", u)
    ctx.area_bounds.append(w.total_bounds)
    name = lf.name_series(w, ["name", "unit_id"], "")
    head = name + c.escaped_values(" (" + w["unit_id"].astype(str) + ")") if "name" in w.columns else name
    vals = c.escaped_values(w["_value"])
    vlabel = html.escape(ind_name + (f" ({ind_unit})" if ind_unit else ""))
    cols = ["_value", "unit_id", "town_name", "_committees", "population", "households", "area_ha",
            "compound_count", "flag"]
    if ctx.li == 1:
        cols.append("flag_reason")
    pop = lf.popup(w, cols, lang, header=head, labels={"_value": vlabel, "_committees": html.escape(
        c.field_label("committees", lang)), "flag": html.escape(_t("flag", lang))})
    fg = ctx.layer("areas", f"{_t('units_layer', lang)}: {ind_name}", show=True)
    fg.add_child(lf.geo_data(lf.geojson(w, {"c": w["_color"], "t": name + ": " + vals, **pop.props}),
                             fields=pop.fields, color_keys=["fillColor"],
                             style={"color": "#ffffff", "weight": 1, "fillOpacity": 0.55}))
    lines = [f"<h4>{vlabel}</h4>"]
    lo = float(np.nanmin(val)) if np.isfinite(val).any() else None
    if lo is not None and bins:
        lo = min(lo, bins[0])
    for i, b in enumerate(bins):
        rng = (f"≤ {_fmt(b)}" if given or lo is None else f"{_fmt(lo)} – {_fmt(b)}") if i == 0 \
            else f"{_fmt(bins[i - 1])} – {_fmt(b)}"
        lines.append(f"<div><i style='background:{colors[i]}'></i>{html.escape(rng)}</div>")
    if (cls < 0).any():
        lines.append(f"<div><i style='background:{c.NODATA_COLOR}'></i>{_t('nodata', lang)}</div>")
    if ref is not None:
        lines.append(f"<div>{_t('reference', lang)}: {html.escape(_fmt(ref))}"
                     f"{(' ' + html.escape(ind_unit)) if ind_unit else ''}</div>")
    ctx.legend += lines


def _missing_types(ctx: _Ctx, ids: pd.Series) -> tuple[pd.Series, pd.Series]:
    """Per compound ID: how many facility types it misses, and their names (escaped, in
    catalogue order, joined by 、), from the gap rows (one per home and type)."""
    missing = pd.Series(0, index=ids.index)
    listing = pd.Series("—", index=ids.index, dtype=object)
    gaps = ctx.layers.get("coverage_gaps")
    if gaps is None or not len(gaps):
        return missing, listing
    home = gaps["home_id"].astype(str).to_numpy(dtype=object)
    ftype = gaps["facility_type"].astype(str)
    types = c.ordered_types(ftype)
    names = np.array([html.escape(c.facility_type_name(t, ctx.lang)) for t in types], dtype=object)
    tcode = pd.Categorical(ftype, categories=types).codes
    hcode, homes = pd.factorize(home)
    # rows by home, then by type (stable): each home's names are one run, joined in C
    # (np.add.reduceat concatenates the strings of each run)
    order = np.lexsort((tcode, hcode))
    h, piece = hcode[order], names[tcode[order]]
    start = np.flatnonzero(np.r_[True, h[1:] != h[:-1]])
    first = np.zeros(len(h), dtype=bool)
    first[start] = True
    piece = np.where(first, piece, "、" + piece)
    text = np.add.reduceat(piece, start)
    count = np.diff(np.r_[start, len(h)])
    at = pd.Index(homes[h[start]]).get_indexer(ids.astype(str).to_numpy(dtype=object))
    hit = at >= 0
    missing = pd.Series(np.where(hit, count[np.maximum(at, 0)], 0), index=ids.index)
    listing = pd.Series(np.where(hit, text[np.maximum(at, 0)], "—"), index=ids.index, dtype=object)
    return missing, listing


def _add_compounds(ctx: _Ctx) -> None:
    """Compounds in full detail, coloured by how many facility types they miss (purples)."""
    comp = ctx.layers["compounds"]
    ids = comp["compound_id"].astype(str) if "compound_id" in comp.columns else pd.Series("", index=comp.index)
    missing, listing = _missing_types(ctx, ids)
    k = np.searchsorted(np.asarray(COMPOUND_GAP_BREAKS), missing.to_numpy(), side="right")
    w = ctx.web("compounds", comp.assign(_color=np.asarray(COMPOUND_GAP_COLORS, dtype=object)[k],
                                         _missing=missing.to_numpy(), _list=listing.to_numpy()))
    head = lf.name_series(w, ["name", "compound_id"], "")
    pop = lf.popup(w, ["name", "compound_id", "population", "_missing", "_list"], ctx.lang, header=head,
                   labels={"_missing": html.escape(ctx.t("compound_gaps").split(": ")[-1]),
                           "_list": html.escape(ctx.t("gap_types"))})
    pop.props["v"] = pd.Series([v[:-1] + [lst] for v, lst in zip(pop.props["v"], w["_list"], strict=True)],
                               index=w.index, dtype=object)  # the list is markup already escaped
    fg = ctx.layer("gaps", f"{ctx.t('compounds')} ({len(w)})", show=True)
    fg.add_child(lf.geo_data(lf.geojson(w, {"c": w["_color"], "t": head, **pop.props}), fields=pop.fields,
                             color_keys=["fillColor"], style={"color": "#636363", "weight": 0.8, "fillOpacity": 0.6}))
    edges = [0, *COMPOUND_GAP_BREAKS]
    ctx.legend.append(f"<h4>{html.escape(ctx.t('compound_gaps'))}</h4>")
    for i, col in enumerate(COMPOUND_GAP_COLORS):
        rng = f"{edges[i]}" if i == 0 else (f"{edges[i]} – {edges[i + 1] - 1}" if i + 1 < len(edges)
                                            else f"≥ {edges[i]}")
        ctx.legend.append(f"<div><i style='background:{col}'></i>{rng}</div>")


def _add_service_areas(ctx: _Ctx, service_areas: bool | None) -> None:
    """Service areas: one layer per facility type (catalogue order, labelled with its
    walking distance), all off at load, in their own folded group (a reader looks at one
    type at a time, beside its coverage gaps: fourteen translucent areas over each other
    hide what each covers). On a district map only when they fit
    ``SERVICE_AREA_VERTEX_BUDGET`` (else the legend points to the town maps)."""
    lang = ctx.lang
    sa = ctx.layers["service_areas"]
    tcol = c.study_type_colors(ctx.study)
    tname = sa["facility_type"].astype(str).map(lambda t: c.facility_type_name(t, lang))
    w = ctx.web("service_areas", sa.assign(_color=sa["facility_type"].astype(str).map(tcol), _type=tname.to_numpy()),
                max_vertices=SERVICE_AREA_VERTEX_BUDGET if service_areas is None else None)
    if w is None:  # over the budget (counted before projecting them)
        ctx.legend.append(f"<div class='sub'>{html.escape(ctx.t('service_towns'))}</div>")
        return
    name = lf.name_series(w, ["facility_name_zh", "_type"], "") if ctx.li == 0 else lf.name_series(w, ["_type"], "")
    pop = lf.popup(w, ["_type", "walk_distance_m"], lang, header=name,
                   labels={"_type": html.escape(c.field_label("facility_type", lang))})
    props = {"c": w["_color"], "t": name, **pop.props}
    codes = w["facility_type"].astype(str).to_numpy()
    walk = pd.to_numeric(w["walk_distance_m"], errors="coerce").to_numpy(dtype=float) \
        if "walk_distance_m" in w.columns else np.full(len(w), np.nan)
    for t in c.ordered_types(w["facility_type"]):
        sel = codes == t
        d = walk[sel][0] if sel.any() else np.nan
        label = str(w["_type"].to_numpy()[sel][0])
        if np.isfinite(d):
            label += f" (步行{d:g}米)" if ctx.li == 0 else f" ({d:g} m walk)"
        ctx.layer("service", label, show=False).add_child(lf.geo_data(
            lf.geojson(w.loc[sel], {k: v.loc[sel] for k, v in props.items()}), fields=pop.fields,
            color_keys=["color", "fillColor"], style={"weight": 1, "fillOpacity": 0.12}))


def _add_gaps(ctx: _Ctx) -> None:
    """Coverage gaps: one point per home with a gap (its distances to every type once), one
    canvas layer per facility type; the choropleth's type (``cov_<type>``) on at load."""
    study, lang = ctx.study, ctx.lang
    gaps = ctx.layers["coverage_gaps"]
    uname = None
    if study.units is not None and "name" in study.units.columns and "unit_id" in gaps.columns:
        uname = dict(zip(study.units["unit_id"].astype(str), study.units["name"].astype(str), strict=True))
    table, gap_types, counts = lf.gap_table_data(gaps, lang=lang, gcj=ctx.gcj, decimals=ctx.decimals,
                                                 types_label=ctx.t("gap_types"), unit_names=uname)
    ctx.bounds.append(table["bounds"])
    ctx.m.add_child(lf.gap_table(table["data"]))
    ind = ctx.indicator
    first = ind[4:] if ind and ind.startswith("cov_") else ind
    for j, t in enumerate(gap_types):
        tname = html.unescape(table["data"]["n"][j])
        ctx.layer("gaps", f"{tname} ({counts[j]})", show=(t == first)).add_child(lf.gap_dots(j))
    edges = [1.0, *c.GAP_RATIO_BREAKS]
    ctx.legend.append(f"<h4>{html.escape(_t('gap_title', lang))}</h4>")
    for i, col in enumerate(c.GAP_COLORS):
        rng = f"{edges[i]:g} – {edges[i + 1]:g}" if i + 1 < len(edges) else f"&gt; {edges[i]:g}"
        ctx.legend.append(f"<div><i class='pt' style='background:{col}'></i>{rng} {_t('ratio', lang)}</div>")


def _add_problems(ctx: _Ctx) -> None:
    """Unit-level problems on their units, one layer per class, one feature per unit and
    class (outlines in the class colour, the unit's problems of that class in the popup);
    the district- and town-level ones go to the side table (:func:`map_problems.side_table_html`)."""
    lang = ctx.lang
    feats = unit_problem_features(ctx.study, lang=lang)
    if not len(feats):
        return
    w_all = ctx.web("problems", feats)
    ctx.bounds.append(w_all.total_bounds)
    ctx.legend.append(f"<h4>{_t('problems_units', lang)}</h4>")
    fields = [html.escape(x) for x in (_t("town", lang), c.field_label("population", lang))]
    classes = c.ordered_classes(w_all["problem_class"])
    layers = {}
    # drawn least urgent first, widest: a unit with problems of every class shows nested
    # bands (long-term blue outside, best-effort orange, urgent red on top)
    for cls_name in reversed(classes):
        w = w_all.loc[w_all["problem_class"].astype(str) == cls_name]
        rank = c.PROBLEM_CLASSES.index(cls_name) if cls_name in c.PROBLEM_CLASSES else len(c.PROBLEM_CLASSES)
        color = c.PROBLEM_COLORS.get(cls_name, c.OTHER_COLOR)
        label = c.problem_class_label(cls_name, lang)
        n_units, n_pts = len(w), int(w["n"].sum())
        v = pd.Series([[t, p] for t, p in zip(w["town"], c.escaped_values(w["population"]), strict=True)],
                      index=w.index, dtype=object)
        lname = (f"{label}: {n_units} 个单元 {n_pts} 个点位" if ctx.li == 0
                 else f"{label}: {n_units} units, {n_pts} points")
        layers[cls_name] = fg = ctx.layer("problems", lname, show=True, file=False)
        fg.add_child(lf.geo_data(lf.geojson(w, {"t": w["tip"], "v": v, "h": w["head"], "s": w["list"]}),
                                 fields=fields, suggestion_label=html.escape(_t("problem_list", lang)),
                                 color_keys=[], style={"color": color, "weight": 2.5 + 2.2 * rank, "opacity": 0.95,
                                                       "fill": True, "fillOpacity": 0.0, "lineJoin": "round"}))
    for cls_name in classes:   # in the control and legend: most urgent first
        ctx.groups.setdefault(_group("problems", lang), []).append(layers[cls_name])
        n_units = int((w_all["problem_class"].astype(str) == cls_name).sum())
        color = c.PROBLEM_COLORS.get(cls_name, c.OTHER_COLOR)
        ctx.legend.append(f"<div><i class='ol' style='border-color:{color}'></i>"
                          f"{html.escape(c.problem_class_label(cls_name, lang))} ({n_units})</div>")


def _add_hotspots(ctx: _Ctx) -> None:
    """Significant hotline hot spots (Getis-Ord), browns: apart from the class reds."""
    lang = ctx.lang
    hs = ctx.layers["hotspots"]
    keep = pd.Series(True, index=hs.index)
    if "significant" in hs.columns:
        keep &= hs["significant"].fillna(False).astype(bool)
    if "z_score" in hs.columns:
        keep &= pd.to_numeric(hs["z_score"], errors="coerce").fillna(0) > 0
    hot = hs.loc[keep]
    if not len(hot):
        return
    z = pd.to_numeric(hot["z_score"], errors="coerce") if "z_score" in hot else None
    zc = np.where((z.fillna(0) >= 2.58).to_numpy(), HOTSPOT_COLORS[0], HOTSPOT_COLORS[1]) if z is not None \
        else np.full(len(hot), HOTSPOT_COLORS[1], dtype=object)
    w = ctx.web("hotspots", hot.assign(_color=zc))
    head = lf.name_series(w, ["category"], "")
    pop = lf.popup(w, ["category", "count", "z_score", "p_value"], lang, header=head)
    ctx.layer("hotline", f"{_t('hotspots', lang)} ({len(w)})", show=False).add_child(lf.geo_data(
        lf.geojson(w, {"c": w["_color"], "t": head, **pop.props}), fields=pop.fields,
        color_keys=["color", "fillColor"], style={"weight": 1, "fillOpacity": 0.3}))
    ctx.legend.append(f"<h4>{_t('hotspots', lang)}</h4>"
                      f"<div><i style='background:{HOTSPOT_COLORS[0]}'></i>p &lt; 0.01</div>"
                      f"<div><i style='background:{HOTSPOT_COLORS[1]}'></i>p &lt; 0.05</div>")


def _life_circle(types: list[str]) -> dict[str, str]:
    """Life-circle level of each facility type: ``"5"``, ``"10"``, ``"15"`` (minutes),
    ``"block"`` (居住街坊) or ``""`` (none). A type the catalogue lists at several levels
    (``15;10;5``) is filed at the most local one, where its residents look for it."""
    cat = c.facility_catalogue()
    lc = dict(zip(cat["code"], cat.get("life_circle", pd.Series("", index=cat.index)).fillna(""), strict=True))
    out = {}
    for t in types:
        parts = {x.strip() for x in str(lc.get(t, "")).split(";")}
        mins = sorted(int(x) for x in parts if x.isdigit())
        out[t] = "block" if "block" in parts else str(mins[0]) if mins else ""
    return out


def _add_facilities(ctx: _Ctx) -> None:
    """Facilities, one canvas layer per life-circle level (5/10/15 minutes, other), coloured
    by type (areas such as parks as a point inside them); off at load."""
    lang = ctx.lang
    fac = ctx.layers["facilities"]
    if "type" not in fac.columns:
        raise LayerError("facilities", "missing column 'type'", fix="read it with read_layer")
    types = c.ordered_types(fac["type"])
    tcol = c.study_type_colors(ctx.study)
    g = fac.geometry.to_numpy().copy()
    poly = shapely.get_type_id(g) > 0
    g[poly] = shapely.point_on_surface(g[poly])
    w_all = ctx.web("facilities", fac.set_geometry(gpd.GeoSeries(g, index=fac.index, crs=fac.crs)))
    ctx.bounds.append(w_all.total_bounds)
    tname = {t: c.facility_type_name(t, lang) for t in types}
    ftype = w_all["type"].astype(str)
    w_all = w_all.assign(_type=ftype.map(tname))
    level = _life_circle(types)
    ctx.legend.append(f"<h4>{_t('facilities', lang)}</h4>")
    for lc in sorted(set(level.values()), key=lambda x: (x == "", x == "block", int(x) if x.isdigit() else 0)):
        lts = [t for t in types if level[t] == lc]
        w = w_all.loc[ftype.isin(lts).to_numpy()]
        head = lf.name_series(w, ["name", "facility_id"], "")
        pop = lf.popup(w, ["_type", "name", "facility_id", "capacity"], lang, header=head,
                       labels={"_type": html.escape(c.field_label("type", lang))})
        xy = shapely.get_coordinates(w.geometry.to_numpy())
        data = {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(), "h": head.tolist(), "v": pop.props["v"].tolist(),
                "f": pop.fields, "c": [tcol[t] for t in lts],
                "k": pd.Categorical(w["type"].astype(str), categories=lts).codes.tolist()}
        lab = (_t("circle", lang).format(m=lc) if lc.isdigit() else _t("block", lang) if lc == "block"
               else _t("other_facilities", lang)) + f" ({len(w)})"
        ctx.layer("facilities", lab, show=False).add_child(lf.facility_dots(data))
        ctx.legend.append(f"<div class='sub'>{html.escape(lab)}</div>")
        for t in lts:
            n = int((w["type"].astype(str) == t).sum())
            ctx.legend.append(f"<div><i class='pt' style='background:{tcol[t]}'></i>{html.escape(tname[t])} ({n})</div>")


_EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*"
                       r"(?:https?:)?//", re.I)


def render_problem_map(m: folium.Map) -> str:
    """The map as one HTML string; raises if any script/stylesheet would load from a URL."""
    text = m.get_root().render()
    bad = _EXTERNAL.search(text)
    if bad:
        raise ValueError(f"map HTML still references a remote resource: {bad.group(0)[:120]!r}")
    return text


def save_problem_map(m: folium.Map, path: str | Path) -> Path:
    """Write the map as a self-contained HTML file (atomically); return the path.

    Leaflet is inlined, no script or stylesheet is loaded from the network; a remaining
    remote reference is an error rather than a silently broken offline map.
    """
    return write_text_atomic(Path(path), render_problem_map(m))
