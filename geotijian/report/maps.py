"""Interactive problem map (体检问题地图): one self-contained, offline HTML file.

``problem_map(study)`` draws whatever layers a study holds (boundary, towns, units as a
choropleth, facilities by type, coverage gaps, service areas, problems by class, hotline
hot spots) on a folium/Leaflet map with a layer control, Chinese (or English) popups, a
title and a legend. ``save_problem_map(m, path)`` writes it with Leaflet 1.9.4 and
Leaflet.markercluster 1.5.3 inlined from the files vendored in ``report/static`` (BSD-2 and
MIT; licences beside them), so the map opens on an intranet with no network: tiles then
simply do not load, the overlays still draw.

Every text that comes from data (place and facility names, comments, suggestions) is
HTML-escaped before it reaches a popup, tooltip, legend or layer name.
"""

from __future__ import annotations

import base64
import html
import json
import re
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import folium
import matplotlib
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from folium.plugins import MarkerCluster
from jinja2 import Template

import geopandas as gpd

from .. import settings
from ..errors import ConfigError, CoordinateWarning, LayerError
from ..io.atomic import write_text_atomic
from ..io.coords import wgs84_to_gcj02
from ..model import StudyData
from . import _common as c
from ._leaflet import (  # noqa: F401  (re-exported for the tests)
    STATIC,
    COVERAGE_LAYERS,
    _CSS,
    _GROUP_JS,
    _SMALL_JS,
    _POPUP_JS,
    _GAP_JS,
    _read_asset,
    _leaflet_css,
    _script,
    _inline_assets,
    _GeoData,
    _ScaleBar,
    _Attribution,
    _GroupedLayers,
    _simplify_rings,
    _to_web,
    _js_json,
    _geojson,
    _Popup,
    _popup,
    _name_series,
    _layer_name,
    _gap_table,
    _GapData,
    _GapLayer,
)
from .map_problems import side_table_html, unit_problem_features

__all__ = ["problem_map", "save_problem_map", "BASEMAPS"]

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

_TXT = {
    "title": ("{name} {year} 年城市体检问题地图", "{name} {year} urban check-up problem map"),
    "density": ("人口密度", "population density"),
    "density_unit": ("人/公顷", "persons/ha"),
    "reference": ("参考值", "reference value"),
    "nodata": ("无数据", "no data"),
    "facilities": ("设施", "facilities"),
    "gaps": ("覆盖缺口", "coverage gap"),
    "gap_title": ("覆盖缺口: 最近设施步行距离 / 服务半径", "coverage gap: walk to nearest / radius"),
    "service": ("服务范围", "service areas"),
    "problems": ("问题", "problems"),
    "hotspots": ("热线热点 (显著)", "hotline hot spots (significant)"),
    "units_layer": ("社区体检单元", "check-up units"),
    "boundary": ("研究范围", "study boundary"),
    "towns": ("街镇", "towns"),
    "legend": ("图例", "legend"),
    "data_source": ("数据", "data"),
    "ratio": ("倍", "×"),
    "side": ("区级、街镇级问题", "district and town problems"),
    "flag": ("人口超出单元范围", "outside the population range"),
    "problems_units": ("社区体检单元问题 (按类别)", "problems of check-up units (by class)"),
    "problem_list": ("问题清单", "problems"),
    "town": ("街镇", "town"),
    "circle": ("{m}分钟生活圈", "{m}-minute life circle"),
    "other_facilities": ("其他设施", "other facilities"),
}

#: Layer groups of the layer control, in its order (zh, en).
GROUPS = {"base": ("底图", "basemap"), "areas": ("评估单元", "areas"), "facilities": ("设施", "facilities"),
          "gaps": ("覆盖缺口", "coverage gaps"), "problems": ("问题", "problems"), "hotline": ("热线", "hotline")}
GROUP_ORDER = ("areas", "facilities", "gaps", "problems", "hotline")
#: Choropleth ramp (matplotlib name): sequential greens, apart from the class reds/orange/blue,
#: the purple gaps and the brown hot spots.
CHOROPLETH_CMAP = "Greens"
#: Hot spots p < 0.01, p < 0.05 (ColorBrewer BrBG browns).
HOTSPOT_COLORS = ("#8c510a", "#d8b365")


def _group(key: str, lang: str) -> str:
    return GROUPS[key][c.lang_index(lang)]


def _t(key: str, lang: str) -> str:
    return _TXT[key][c.lang_index(lang)]




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
    if table is not None and "code" in table.columns and indicator in set(table["code"]):
        rows = table.loc[(table["code"] == indicator)
                         & table["area_id"].astype(str).isin(units["unit_id"].astype(str))]
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


def _classify(values: pd.Series, *, scheme: str, k: int) -> tuple[np.ndarray, list[float]]:
    """Class index per value (-1 for NaN) and the class upper bounds (mapclassify)."""
    y = values.to_numpy(dtype=float)
    ok = np.isfinite(y)
    cls = np.full(len(y), -1, dtype=int)
    if not ok.any():
        return cls, []
    kk = int(min(k, len(np.unique(y[ok]))))
    if kk < 2:
        cls[ok] = 0
        return cls, [float(np.nanmax(y))]
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
                   maxZoom=19, minZoom=8)
    # markercluster needs a maxZoom even without tiles, and builds its clusters for every zoom
    # from minZoom to maxZoom at load: zoom 8 (all of Shanghai) is as far out as a study needs
    m.default_js = []
    m.default_css = []
    for i, n in enumerate(names):
        spec = BASEMAPS[n]
        label = _layer_name(spec["label"][li])
        if n == "blank":
            folium.FeatureGroup(name=label, overlay=False, control=True, show=(i == 0)).add_to(m)
            continue
        url = spec["url"].replace("{key}", quote(tianditu_key or "", safe=""))
        folium.TileLayer(tiles=url, attr=spec["attr"], name=label, overlay=False, control=True,
                         show=(i == 0), max_zoom=spec["max_zoom"],
                         subdomains=spec["subdomains"]).add_to(m)
        if n == "tianditu":
            folium.TileLayer(tiles=spec["labels_url"].replace("{key}", quote(tianditu_key, safe="")),
                             attr=spec["attr"], name=_layer_name(("天地图注记", "Tianditu labels")[li]),
                             overlay=True, control=True, show=(i == 0), max_zoom=spec["max_zoom"],
                             subdomains=spec["subdomains"]).add_to(m)
    return m


def _page_panels(ctx: "_Ctx", ttl: str) -> None:
    """Title, legend and side table (folded in a small window)."""
    m, lang, study = ctx.m, ctx.lang, ctx.study
    root = m.get_root()
    root.title = ttl
    root.html.add_child(Element(f"<div class='gtj-title'>{html.escape(ttl)}</div>"),
                        name="gtj_title")
    if ctx.legend:
        root.html.add_child(Element(f"<details class='gtj-legend gtj-panel' open><summary>{_t('legend', lang)}"
                                    "</summary><div class='gtj-body'>" + "".join(ctx.legend) + "</div></details>"),
                            name="gtj_legend")
    table, n_side = side_table_html(study, lang=lang)
    if n_side:
        root.html.add_child(Element(f"<details class='gtj-side gtj-panel' open><summary>{_t('side', lang)} ({n_side})"
                                    f"</summary><div class='gtj-body'>{table}</div></details>"), name="gtj_side")
    # a small window (an embed, a laptop): panels start folded, a click opens them
    root.html.add_child(Element(_script(_SMALL_JS)), name="gtj_small")


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
    title: str | None = None,
    simplify_m: float = 2.0,
    decimals: int = 5,
    cluster_min: int = 50,
) -> folium.Map:
    """The interactive problem map of a study (体检问题地图).

    Parameters
    ----------
    study : StudyData
        Draws whatever exists: boundary, towns, units, facilities, coverage_gaps,
        service_areas, problems, hotspots (column contracts in ``geotijian.model``). Each
        layer must carry a CRS.
    indicator : str, optional
        Choropleth of the units: a units column (``"population"``) or an indicator code of
        ``study.indicator_table`` with unit-level values (its unit and reference value go in
        the legend). Default: population density (persons per hectare).
    lang : {"zh", "en"}
        Language of the title, legend, layer names and popup field names.
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
        mapclassify scheme and number of classes of the choropleth (deterministic schemes
        only: quantiles, equal_interval, fisher_jenks, ...). Default 5 quantiles.
    title : str, optional
        Title; default "<study.display_name> <year> 年城市体检问题地图" (``study.title``, else the
        boundary's name).
    simplify_m : float
        Simplification tolerance of lines and polygons, metres (display scale, 1:5,000
        screens show ~1.3 m per pixel). 0 disables it.
    decimals : int
        Decimals kept in WGS84 degrees: 5 ≈ 1 m.
    cluster_min : int
        A facility type with at least this many points is clustered (Leaflet.markercluster).

    Returns
    -------
    folium.Map
        Leaflet and its plugin are already inlined in its header (folium's CDN links are
        removed); save it with ``save_problem_map`` (atomic, and refuses any remaining
        remote script or stylesheet).
    """
    li = c.lang_index(lang)
    names = _basemaps(basemap)
    gcj = _overlay_datum(names, amap_shift=amap_shift, tianditu_key=tianditu_key)
    layers = study.layers()
    drawable = [n for n in ("boundary", "towns", "units", "service_areas", "coverage_gaps",
                            "hotspots", "problems", "facilities") if n in layers and len(layers[n])]
    if not drawable:
        raise LayerError("study", "has no layer to draw (boundary, towns, units, facilities, "
                         "coverage_gaps, service_areas, problems or hotspots)",
                         fix="compute or load at least one of them")

    def web(name: str, gdf: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
        return _to_web(layers[name] if gdf is None else gdf, simplify_m=simplify_m,
                       decimals=decimals, gcj=gcj, layer=name)

    m = _base_map(names, lang=lang, tianditu_key=tianditu_key)
    ctx = _Ctx(m=m, study=study, lang=lang, web=web, indicator=indicator, cluster_min=cluster_min)
    # drawn bottom to top: areas, service areas, gaps, problems, hot spots, facilities
    if "boundary" in drawable or "towns" in drawable:
        _add_outlines(ctx, drawable)
    if "units" in drawable:
        _add_units(ctx, scheme=scheme, k=k)
    if "service_areas" in drawable:
        _add_service_areas(ctx)
    if "coverage_gaps" in drawable:
        _add_gaps(ctx, gcj=gcj, decimals=decimals)
    if "problems" in drawable or study.problem_points is not None:
        _add_problems(ctx)
    if "hotspots" in drawable:
        _add_hotspots(ctx)
    if "facilities" in drawable:
        _add_facilities(ctx)

    groups = {_group(g, lang): ctx.groups.get(_group(g, lang), []) for g in GROUP_ORDER}
    _GroupedLayers(groups=groups, closed=[_group("gaps", lang)], base_label=_group("base", lang)).add_to(m)
    m.add_child(_ScaleBar())
    if study.from_osm:
        m.add_child(_Attribution(html.escape(study.attribution)))
    if ctx.bounds:
        b = np.vstack(ctx.bounds)
        m.fit_bounds([[float(np.nanmin(b[:, 1])), float(np.nanmin(b[:, 0]))],
                      [float(np.nanmax(b[:, 3])), float(np.nanmax(b[:, 2]))]])

    _page_panels(ctx, title or _TXT["title"][li].format(name=study.display_name, year=study.year))
    _inline_assets(m, cluster=ctx.cluster_used)
    _stable_ids(m)
    return m


@dataclass
class _Ctx:
    """What the layer builders of one map share."""

    m: folium.Map
    study: StudyData
    lang: str
    web: Callable[..., gpd.GeoDataFrame]
    indicator: str | None
    cluster_min: int
    legend: list[str] = field(default_factory=list)
    bounds: list[np.ndarray] = field(default_factory=list)
    cluster_used: bool = False
    groups: dict[str, list] = field(default_factory=dict)

    @property
    def li(self) -> int:
        return c.lang_index(self.lang)

    def layer(self, group: str, label: str, *, show: bool, layer: folium.map.Layer | None = None) -> folium.map.Layer:
        """A feature group (or ``layer``) on the map, filed under ``group`` in the control."""
        fg = layer if layer is not None else folium.FeatureGroup(name=_layer_name(label), show=show)
        fg.add_to(self.m)
        self.groups.setdefault(_group(group, self.lang), []).append(fg)
        return fg


def _add_outlines(ctx: _Ctx, drawable: list[str]) -> None:
    """The study boundary and the towns (by name): outlines."""
    lang = ctx.lang
    if "boundary" in drawable:
        w = ctx.web("boundary")
        ctx.bounds.append(w.total_bounds)
        tip = _name_series(w, ["name", "boundary_id"], _t("boundary", lang))
        ctx.layer("areas", _t("boundary", lang), show=True).add_child(
            _GeoData(_geojson(w, {"t": tip}), color_keys=[], style={
                "color": "#222222", "weight": 2.5, "fill": False, "dashArray": "6 4"}))
    if "towns" in drawable:
        w = ctx.web("towns")
        ctx.bounds.append(w.total_bounds)
        tip = _name_series(w, ["name", "town_code"], "")
        pop = _popup(w, ["name", "town_code", "population"], lang, header=tip)
        ctx.layer("areas", _t("towns", lang), show=True).add_child(
            _GeoData(_geojson(w, {"t": tip, **pop.props}), popup=pop, color_keys=[], style={
                "color": "#555555", "weight": 1.8, "fill": False}))


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


def _add_units(ctx: _Ctx, *, scheme: str, k: int) -> None:
    """The units as a choropleth (sequential greens: apart from class and gap colours)."""
    study, lang = ctx.study, ctx.lang
    units = study.units
    val, ind_name, ind_unit, ref = _unit_indicator(study, ctx.indicator, lang)
    cls, bins = _classify(val, scheme=scheme, k=k)
    colors = _ramp(len(bins), CHOROPLETH_CMAP)
    col = np.where(cls >= 0, np.array(colors + [c.NODATA_COLOR], dtype=object)[cls],
                   c.NODATA_COLOR) if bins else np.full(len(cls), c.NODATA_COLOR, dtype=object)
    u = units.assign(_value=val.to_numpy(), _color=col, _committees=_committee_names(study, units).to_numpy())
    w = ctx.web("units", u)
    ctx.bounds.append(w.total_bounds)
    name = _name_series(w, ["name", "unit_id"], "")
    head = name + c.escaped_values(" (" + w["unit_id"].astype(str) + ")") if "name" in w.columns else name
    vals = c.escaped_values(w["_value"])
    vlabel = html.escape(ind_name + (f" ({ind_unit})" if ind_unit else ""))
    cols = ["_value", "unit_id", "town_name", "_committees", "population", "households", "area_ha",
            "compound_count", "flag"]
    if ctx.li == 1:
        cols.append("flag_reason")
    pop = _popup(w, cols, lang, header=head, labels={"_value": vlabel, "_committees": html.escape(
        c.field_label("committees", lang)), "flag": html.escape(_t("flag", lang))})
    fg = ctx.layer("areas", f"{_t('units_layer', lang)}: {ind_name}", show=True)
    fg.add_child(_GeoData(_geojson(w, {"c": w["_color"], "t": name + ": " + vals, **pop.props}), popup=pop,
                          color_keys=["fillColor"], style={"color": "#ffffff", "weight": 1, "fillOpacity": 0.55}))
    lines = [f"<h4>{vlabel}</h4>"]
    lo = float(np.nanmin(val)) if np.isfinite(val).any() else None
    for i, b in enumerate(bins):
        a = lo if i == 0 else bins[i - 1]
        lines.append(f"<div><i style='background:{colors[i]}'></i>{html.escape(_fmt(a))} – {html.escape(_fmt(b))}</div>")
    if (cls < 0).any():
        lines.append(f"<div><i style='background:{c.NODATA_COLOR}'></i>{_t('nodata', lang)}</div>")
    if ref is not None:
        lines.append(f"<div>{_t('reference', lang)}: {html.escape(_fmt(ref))}"
                     f"{(' ' + html.escape(ind_unit)) if ind_unit else ''}</div>")
    ctx.legend += lines


def _add_service_areas(ctx: _Ctx) -> None:
    """Service areas of every type, one layer, off at load."""
    study, lang = ctx.study, ctx.lang
    sa = study.service_areas
    tcol = c.study_type_colors(study)
    tname = sa["facility_type"].astype(str).map(lambda t: c.facility_type_name(t, lang))
    w = ctx.web("service_areas", sa.assign(_color=sa["facility_type"].astype(str).map(tcol), _type=tname.to_numpy()))
    name = _name_series(w, ["facility_name_zh", "_type"], "") if ctx.li == 0 else _name_series(w, ["_type"], "")
    pop = _popup(w, ["_type", "walk_distance_m"], lang, header=name,
                 labels={"_type": html.escape(c.field_label("facility_type", lang))})
    ctx.layer("facilities", c.layer_label("service_areas", lang), show=False).add_child(
        _GeoData(_geojson(w, {"c": w["_color"], "t": name, **pop.props}), popup=pop,
                 color_keys=["color", "fillColor"], style={"weight": 1, "fillOpacity": 0.12}))


def _add_gaps(ctx: _Ctx, *, gcj: bool, decimals: int) -> None:
    """Coverage gaps: one point per home with a gap (its distances to every type once), one
    layer per facility type on a canvas built when first shown; the choropleth's type on."""
    study, lang = ctx.study, ctx.lang
    gaps = study.coverage_gaps
    if study.units is not None and "name" in study.units.columns and "unit_id" in gaps.columns:
        uname = dict(zip(study.units["unit_id"].astype(str), study.units["name"].astype(str), strict=True))
        gaps = gaps.assign(unit_id=gaps["unit_id"].astype(str).map(lambda u: uname.get(u, u)))
    gt_data, gap_types, counts = _gap_table(gaps, lang=lang, gcj=gcj, decimals=decimals)
    ctx.bounds.append(gt_data.pop("_bounds"))
    ctx.m.add_child(_GapData(gt_data))
    ind = ctx.indicator
    first = ind[4:] if ind and ind.startswith("cov_") else ind
    for j, t in enumerate(gap_types):
        tname = html.unescape(gt_data["n"][j])
        ctx.layer("gaps", f"{tname} ({counts[j]})", show=(t == first)).add_child(_GapLayer(j))
    edges = [1.0, *c.GAP_RATIO_BREAKS]
    ctx.legend.append(f"<h4>{html.escape(_t('gap_title', lang))}</h4>")
    for i, col in enumerate(c.GAP_COLORS):
        rng = (f"{edges[i]:g} – {edges[i + 1]:g}" if i + 1 < len(edges) else f"&gt; {edges[i]:g}")
        ctx.legend.append(f"<div><i class='pt' style='background:{col}'></i>{rng} {_t('ratio', lang)}</div>")


def _add_problems(ctx: _Ctx) -> None:
    """Unit-level problems on their units, one layer per class (outlines in the class
    colour, the unit's problems of that class in the popup); the district- and town-level
    ones go to the side table (:func:`map_problems.side_table_html`)."""
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
        pop = _Popup(fields, {"v": pd.Series([[t, p] for t, p in zip(w["town"], c.escaped_values(w["population"]),
                                                                    strict=True)], index=w.index, dtype=object),
                              "h": w["head"], "s": w["list"]}, html.escape(_t("problem_list", lang)))
        lname = (f"{label}: {n_units} 个单元 {n_pts} 个点位" if ctx.li == 0
                 else f"{label}: {n_units} units, {n_pts} points")
        fg = folium.FeatureGroup(name=_layer_name(lname), show=True)
        fg.add_child(_GeoData(_geojson(w, {"t": w["tip"], **pop.props}), popup=pop, color_keys=[],
                              style={"color": color, "weight": 2.5 + 2.2 * rank, "opacity": 0.95,
                                     "fill": True, "fillOpacity": 0.0, "lineJoin": "round"}))
        layers[cls_name] = fg.add_to(ctx.m)
    for cls_name in classes:   # in the control and legend: most urgent first
        ctx.groups.setdefault(_group("problems", lang), []).append(layers[cls_name])
        n_units = int((w_all["problem_class"].astype(str) == cls_name).sum())
        color = c.PROBLEM_COLORS.get(cls_name, c.OTHER_COLOR)
        ctx.legend.append(f"<div><i class='ol' style='border-color:{color}'></i>"
                          f"{html.escape(c.problem_class_label(cls_name, lang))} ({n_units})</div>")


def _add_hotspots(ctx: _Ctx) -> None:
    """Significant hotline hot spots (Getis-Ord), browns: apart from the class reds."""
    lang = ctx.lang
    hs = ctx.study.hotspots
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
    head = _name_series(w, ["category"], "")
    pop = _popup(w, ["category", "count", "z_score", "p_value"], lang, header=head)
    ctx.layer("hotline", f"{_t('hotspots', lang)} ({len(w)})", show=False).add_child(
        _GeoData(_geojson(w, {"c": w["_color"], "t": head, **pop.props}), popup=pop,
                 color_keys=["color", "fillColor"], style={"weight": 1, "fillOpacity": 0.3}))
    ctx.legend.append(f"<h4>{_t('hotspots', lang)}</h4>"
                      f"<div><i style='background:{HOTSPOT_COLORS[0]}'></i>p &lt; 0.01</div>"
                      f"<div><i style='background:{HOTSPOT_COLORS[1]}'></i>p &lt; 0.05</div>")


def _life_circle(types: list[str]) -> dict[str, str]:
    """Life-circle level (``"5"``, ``"10"``, ``"15"``, ``""``) of each facility type."""
    cat = c.facility_catalogue()
    lc = dict(zip(cat["code"], cat.get("life_circle", pd.Series("", index=cat.index)).fillna(""), strict=True))
    return {t: str(lc.get(t, "")).strip() for t in types}


def _add_facilities(ctx: _Ctx) -> None:
    """Facilities, one layer per life-circle level (5/10/15 minutes, other), coloured by
    type, clustered when many; off at load."""
    study, lang = ctx.study, ctx.lang
    fac = study.facilities
    if "type" not in fac.columns:
        raise LayerError("facilities", "missing column 'type'", fix="read it with read_layer")
    types = c.ordered_types(fac["type"])
    tcol = c.study_type_colors(study)
    g = fac.geometry.to_numpy().copy()
    poly = shapely.get_type_id(g) > 0   # areas (e.g. parks) are drawn as a point inside them
    g[poly] = shapely.point_on_surface(g[poly])
    w_all = ctx.web("facilities", fac.set_geometry(gpd.GeoSeries(g, index=fac.index, crs=fac.crs)))
    ctx.bounds.append(w_all.total_bounds)
    tname = {t: c.facility_type_name(t, lang) for t in types}
    w_all = w_all.assign(_type=w_all["type"].astype(str).map(tname), _color=w_all["type"].astype(str).map(tcol))
    level = _life_circle(types)
    ctx.legend.append(f"<h4>{_t('facilities', lang)}</h4>")
    for lc in sorted(set(level.values()), key=lambda x: (x == "", int(x) if x.isdigit() else 0)):
        lts = [t for t in types if level[t] == lc]
        w = w_all.loc[w_all["type"].astype(str).isin(lts)]
        head = _name_series(w, ["name", "facility_id"], "")
        pop = _popup(w, ["_type", "name", "facility_id", "capacity"], lang, header=head,
                     labels={"_type": html.escape(c.field_label("type", lang))})
        lab = (_t("circle", lang).format(m=lc) if lc else _t("other_facilities", lang)) + f" ({len(w)})"
        cluster = None
        if len(w) >= ctx.cluster_min:
            ctx.cluster_used = True
            cluster = MarkerCluster(name=_layer_name(lab), show=False, overlay=True, control=True,
                                    options={"maxClusterRadius": 40, "disableClusteringAtZoom": 17})
            cluster.default_js = []
            cluster.default_css = []
        parent = ctx.layer("facilities", lab, show=False, layer=cluster)
        parent.add_child(_GeoData(_geojson(w, {"c": w["_color"], "t": head + " · " + c.escaped_values(w["_type"]),
                                               **pop.props}), popup=pop, color_keys=["fillColor"], radius=5,
                                  style={"color": "#ffffff", "weight": 1.2, "fillOpacity": 0.95}))
        ctx.legend.append(f"<div class='sub'>{html.escape(lab)}</div>")
        for t in lts:
            n = int((w["type"].astype(str) == t).sum())
            ctx.legend.append(f"<div><i class='pt' style='background:{tcol[t]}'></i>{html.escape(tname[t])} ({n})</div>")


def _stable_ids(m: folium.Map) -> None:
    """Replace folium's random element ids by sequential ones (identical HTML per run)."""
    counter = 0
    stack = [m.get_root()]
    seen = set()
    while stack:
        el = stack.pop(0)
        if id(el) in seen:
            continue
        seen.add(id(el))
        el._id = f"{counter:04d}"
        counter += 1
        stack.extend(getattr(el, "_children", {}).values())


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

    Leaflet and its plugins are inlined, no script or stylesheet is loaded from the
    network; a remaining remote reference is an error rather than a silently broken
    offline map.
    """
    text = render_problem_map(m)
    return write_text_atomic(Path(path), text)
