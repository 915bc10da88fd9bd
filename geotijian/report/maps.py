"""Interactive problem maps (体检问题地图): self-contained, offline HTML files.

``problem_map(study)`` draws whatever layers a study holds (boundary, towns, units as a
choropleth, facilities by type, coverage gaps, service areas, problems by class, hotline
hot spots, and with ``compounds=True`` the compounds with the facility types they miss) on
a folium/Leaflet map with a layer control, Chinese (or English) popups, a title and a
legend. ``save_problem_map(m, path)`` writes it with Leaflet 1.9.4 inlined
(``report/static``, BSD-2), so the map opens on an intranet with no network: tiles then
simply do not load, the overlays still draw. ``town_maps.save_problem_maps`` writes the
district map and one map per town (街镇), linked both ways.

A district map stays small and quick to draw (issue 15: ≤ 15 MB, drawn < 5 s): homes
with a gap are one table (a row per home, its distance to every type) drawn per type on a
canvas, facilities on a canvas too, problems one feature per area and class, units and
towns simplified as a coverage (shared edges once), service areas only when they fit a
vertex budget (else in the town maps, which carry every layer in full detail).

Every text that comes from data (place and facility names, comments, suggestions) is
HTML-escaped before it reaches a popup, tooltip, legend or layer name.
"""

from __future__ import annotations

import html
import json
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

from .. import settings
from ..errors import ConfigError, CoordinateWarning, LayerError
from ..io.atomic import write_text_atomic
from ..io.coords import wgs84_to_gcj02
from ..model import StudyData
from . import _common as c
from . import _leaflet as lf

__all__ = ["problem_map", "save_problem_map", "render_problem_map", "MapNav", "BASEMAPS"]

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

#: Colours of compounds by the number of facility types they miss (0, 1-2, 3-5, 6+).
COMPOUND_GAP_BREAKS = (1, 3, 6)
COMPOUND_GAP_COLORS = ("#edf8e9", "#fcbba1", "#fb6a4a", "#a50f15")

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
    "problems_n": ("{n} 项", "{n}"),
    "hotspots": ("热线热点 (显著)", "hotline hot spots (significant)"),
    "units_layer": ("社区体检单元", "check-up units"),
    "boundary": ("研究范围", "study boundary"),
    "towns": ("街镇", "towns"),
    "compounds": ("小区", "compounds"),
    "compound_gaps": ("小区: 缺少的设施类型数", "compounds: facility types missing"),
    "legend": ("图例", "legend"),
    "ratio": ("倍", "×"),
    "town_maps": ("街镇地图", "town maps"),
    "district_map": ("← 全区地图", "← district map"),
    "open_town": ("打开街镇地图", "open the town map"),
}


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


# --------------------------------------------------------------------------- geometry

#: Layers that tile the district without overlap: simplified as a coverage (shared
#: boundaries simplified once, so neighbours never gap or overlap on screen).
COVERAGE_LAYERS = ("towns", "committees", "units", "blocks")


def _simplify_rings(geoms: np.ndarray, tol: float) -> np.ndarray:
    """Douglas-Peucker on every ring of the (multi)polygons, for display.

    GEOS' polygon simplifiers repair their result (``preserve_topology`` checks every
    segment against every other, the plain one ends in a ``buffer(0)``): minutes on a
    district's service areas (1.2 million vertices, 14,000 holes) for a picture drawn at
    a few metres per pixel. Here each ring is simplified as a line (linear time); a hole
    that collapses is dropped, a shell that would collapse is kept unsimplified. The
    result may touch itself within ``tol``: invisible at display scale, never measured.
    """
    parts, pidx = shapely.get_parts(geoms, return_index=True)
    rings, ridx = shapely.get_rings(parts, return_index=True)
    shell = np.r_[True, ridx[1:] != ridx[:-1]] if len(ridx) else np.zeros(0, dtype=bool)
    s = shapely.simplify(rings, tol, preserve_topology=False)
    bad = shapely.is_empty(s) | (shapely.get_num_coordinates(s) < 4)
    s = np.where(bad & shell, rings, s)
    keep = ~bad | shell
    polys = shapely.polygons(s[keep], indices=ridx[keep])
    out = np.array(shapely.multipolygons(polys, indices=pidx), dtype=object)
    single = shapely.get_type_id(geoms) == 3  # a Polygon stays a Polygon
    out[single] = shapely.get_geometry(out[single], 0)
    return out


def _to_web(gdf: gpd.GeoDataFrame, *, simplify_m: float, decimals: int, gcj: bool,
            layer: str) -> gpd.GeoDataFrame:
    """Simplify (metres), project to WGS84, shift to GCJ-02 if asked, round coordinates."""
    if gdf.crs is None:
        raise LayerError(layer, "has no CRS", fix="set the study CRS on the layer (set_crs)")
    geoms = gdf.geometry.to_numpy()
    missing = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if missing.any():
        first = int(np.flatnonzero(missing)[0])
        warnings.warn(f"layer '{layer}': {int(missing.sum())} features without geometry are "
                      f"not drawn (first: feature {first})", stacklevel=3)
        gdf = gdf.loc[~missing]
    if simplify_m > 0 and len(gdf):
        tol = simplify_m if not gdf.crs.is_geographic else simplify_m / 111_320.0
        g = gdf.geometry.to_numpy().copy()
        tid = shapely.get_type_id(g)
        lin = (tid == 1) | (tid == 5)
        g[lin] = shapely.simplify(g[lin], tol, preserve_topology=False)
        poly = (tid == 3) | (tid == 6)  # points (and collections) are left as they are
        if poly.any():
            g[poly] = (shapely.coverage_simplify(g[poly], tol) if layer in COVERAGE_LAYERS
                       else _simplify_rings(g[poly], tol))
        gdf = gdf.set_geometry(gpd.GeoSeries(g, index=gdf.index, crs=gdf.crs))
    web = gdf.to_crs(settings.geographic_crs)
    g = web.geometry.to_numpy()
    if gcj:
        g = shapely.transform(g, lambda xy: np.column_stack(wgs84_to_gcj02(xy[:, 0], xy[:, 1])))
    g = shapely.transform(g, lambda xy: np.round(xy, decimals))
    return web.set_geometry(gpd.GeoSeries(g, index=web.index, crs=web.crs))


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


def _geojson(web: gpd.GeoDataFrame, props: dict[str, pd.Series]) -> str:
    """A compact FeatureCollection string, safe to embed inside a <script>.

    Geometries are written by GEOS (``shapely.to_geojson``: coordinates as rounded, no
    Python loop over vertices), properties by ``json`` per feature.
    """
    geoms = shapely.to_geojson(web.geometry.to_numpy())
    cols = {k: v.to_numpy(dtype=object) for k, v in props.items()}
    keys = list(cols)
    dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default).encode
    feats = [f'{{"type":"Feature","properties":{dumps(dict(zip(keys, vals)))},"geometry":{g}}}'
             for g, *vals in zip(geoms, *cols.values())] if keys else \
        [f'{{"type":"Feature","properties":{{}},"geometry":{g}}}' for g in geoms]
    text = '{"type":"FeatureCollection","features":[' + ",".join(feats) + "]}"
    return text.replace("</", "<\\/").replace("<!--", "<\\!--")


class _Popup:
    """Popup content of a layer: escaped field labels once, escaped values per feature.

    The page builds each popup's table when it opens (``gtjPopup``), so the labels are
    not repeated in every feature: a district map stays a few megabytes.
    """

    def __init__(self, fields: list[str], props: dict[str, pd.Series], suggestion_label: str):
        self.fields = fields
        self.props = props
        self.suggestion_label = suggestion_label


def _popup(df: pd.DataFrame, cols: Sequence[str], lang: str, *, header: pd.Series | None = None,
           suggestion: str | None = None, labels: dict[str, str] | None = None) -> _Popup:
    """Popup of each row: Chinese field names and escaped values (and the suggestion text).

    ``labels`` overrides field names; its values must already be escaped.
    """
    labels = labels or {}
    present = [col for col in cols if col in df.columns]
    fields = [labels.get(col, html.escape(c.field_label(col, lang))) for col in present]
    if present:
        values = np.column_stack([c.escaped_values(df[col]).to_numpy(dtype=object)
                                  for col in present])
        v = pd.Series(list(values.tolist()), index=df.index, dtype=object)
    else:
        v = pd.Series([[] for _ in range(len(df))], index=df.index, dtype=object)
    props = {"v": v}
    if header is not None:
        props["h"] = header
    sug_label = ""
    if suggestion and suggestion in df.columns:
        props["s"] = c.escaped_values(df[suggestion]).where(df[suggestion].notna(), None)
        sug_label = html.escape(c.field_label(suggestion, lang))
    return _Popup(fields, props, sug_label)


def _name_series(df: pd.DataFrame, cols: Sequence[str], fallback: str) -> pd.Series:
    """First non-null of ``cols`` as an escaped label."""
    out = pd.Series(None, index=df.index, dtype=object)
    for col in cols:
        if col in df.columns:
            out = out.where(out.notna(), df[col].astype(object).where(df[col].notna(), None))
    return c.escaped_values(out.where(out.notna(), fallback))


def _layer_name(text: str) -> str:
    """A layer name for the layer control: escaped (Leaflet inserts it as HTML)."""
    return _braces(html.escape(str(text).replace("\\", "/").replace("\n", " "), quote=True))


def _braces(text: str) -> str:
    """``{`` and ``}`` as character references: folium renders a layer control's output
    again as a Jinja template, where a name with ``{{ }}`` would be evaluated."""
    return text.replace("{", "&#123;").replace("}", "&#125;")


# --------------------------------------------------------------------------- coverage gaps

def _gap_table(gaps: gpd.GeoDataFrame, *, lang: str, gcj: bool, decimals: int) -> tuple[dict, list, list]:
    """The gap layer as one compact table for the page: a row per home with a gap.

    ``gaps`` is one row per (home, type) (:func:`geotijian.coverage_gaps`). A district has
    ~300,000 such rows but ~20,000 homes: each home is written once, at a point inside it,
    with its distance to every type in whole metres (0 = covered, -1 = no facility
    reachable) and its unit as an index into one list, so the page carries each home and
    each label once instead of once per missing type.
    """
    for col in ("home_id", "facility_type", "distance_m", "walk_distance_m"):
        if col not in gaps.columns:
            raise LayerError("coverage_gaps", f"missing column {col!r}", fix="build it with coverage_gaps()")
    types = c.ordered_types(gaps["facility_type"])
    ti = pd.Categorical(gaps["facility_type"].astype(str), categories=types).codes
    hcode, homes = pd.factorize(gaps["home_id"].astype(str), sort=True)
    first = np.unique(hcode, return_index=True)[1]  # first row of every home
    dist = np.zeros((len(homes), len(types)), dtype=np.int64)
    d = pd.to_numeric(gaps["distance_m"], errors="coerce").to_numpy(dtype=float)
    # a gap is beyond the radius: never shown as 0 m (0 means covered)
    dist[hcode, ti] = np.where(np.isfinite(d), np.maximum(np.round(d), 1), -1).astype(np.int64)
    radius = pd.to_numeric(gaps["walk_distance_m"], errors="coerce").to_numpy(dtype=float)
    rad = np.zeros(len(types))
    rad[ti] = radius
    names = []
    for j, t in enumerate(types):
        nm = c.facility_type_name(t, lang)
        if lang == "zh" and "facility_name_zh" in gaps.columns:
            sub = gaps["facility_name_zh"].to_numpy()[ti == j]
            sub = sub[pd.notna(sub)]
            if len(sub):
                nm = str(sub[0])
        names.append(html.escape(nm))
    sub = gaps.iloc[first]
    g = sub.geometry.to_numpy()
    pts = np.where(shapely.get_type_id(g) == 0, g, shapely.point_on_surface(g))
    w = _to_web(gpd.GeoDataFrame(geometry=pts, crs=gaps.crs), simplify_m=0, decimals=decimals, gcj=gcj,
                layer="coverage_gaps")
    xy = shapely.get_coordinates(w.geometry.to_numpy())
    unit = (c.escaped_values(sub["unit_id"]) if "unit_id" in sub.columns
            else pd.Series("—", index=sub.index)).to_numpy(dtype=object)
    ucode, ulist = pd.factorize(unit, sort=True)
    pop = (pd.to_numeric(sub["population"], errors="coerce").round(0) if "population" in sub.columns
           else pd.Series(np.nan, index=sub.index))
    rows = pd.DataFrame({"x": np.round(xy[:, 0], decimals), "y": np.round(xy[:, 1], decimals),
                         "id": [html.escape(h, quote=True) for h in homes.astype(str)],
                         "u": ucode, "p": pop.fillna(-1).astype(np.int64).to_numpy()})
    rows["d"] = dist.tolist()
    fields = [html.escape(c.field_label(k, lang)) for k in ("unit_id", "population", "facility_name_zh",
                                                             "walk_distance_m", "distance_m")]
    fields.append(html.escape(_t("gap_types", lang)))
    data = {"c": list(c.GAP_COLORS), "b": list(c.GAP_RATIO_BREAKS), "r": [float(r) for r in rad],
            "n": names, "f": fields, "u": list(ulist), "rows": rows.to_numpy().tolist(),
            "none": "∞" if lang == "zh" else "none reachable"}
    counts = (dist != 0).sum(axis=0).tolist()
    return {"data": data, "bounds": w.total_bounds}, types, counts


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
        ref = pd.to_numeric(pd.Series([first.get("reference")]), errors="coerce").iloc[0]
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


@dataclass
class _Page:
    """What the layer builders share: the map, its language, the legend and extent so far."""

    m: folium.Map
    study: StudyData
    layers: dict[str, gpd.GeoDataFrame]
    lang: str
    simplify_m: float
    decimals: int
    gcj: bool
    legend: list[str] = field(default_factory=list)
    bounds: list[np.ndarray] = field(default_factory=list)

    def web(self, name: str, gdf: gpd.GeoDataFrame | None = None) -> gpd.GeoDataFrame:
        return _to_web(self.layers[name] if gdf is None else gdf, simplify_m=self.simplify_m,
                       decimals=self.decimals, gcj=self.gcj, layer=name)

    def group(self, name: str, *, show: bool) -> folium.FeatureGroup:
        return folium.FeatureGroup(name=_layer_name(name), show=show).add_to(self.m)

    def t(self, key: str) -> str:
        return _t(key, self.lang)


def _add_basemaps(m: folium.Map, names: list[str], li: int, tianditu_key: str | None) -> None:
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


def _add_outlines(p: _Page, drawable: list[str], nav: MapNav | None) -> None:
    """Study boundary and towns (outlines); town names link to the town maps."""
    if "boundary" in drawable:
        w = p.web("boundary")
        p.bounds.append(w.total_bounds)
        tip = _name_series(w, ["name", "boundary_id"], p.t("boundary"))
        p.group(p.t("boundary"), show=True).add_child(lf.geo_data(_geojson(w, {"t": tip}), color_keys=[], style={
            "color": "#222222", "weight": 2.5, "fill": False, "dashArray": "6 4"}))
    if "towns" not in drawable:
        return
    w = p.web("towns")
    p.bounds.append(w.total_bounds)
    fg = p.group(p.t("towns"), show=True)
    tip = _name_series(w, ["name", "town_code"], "")
    pop = _popup(w, ["town_code", "name", "population"], p.lang, header=tip)
    props = {"t": tip, **pop.props}
    href = _town_hrefs(w, nav)
    if href is not None:  # the town map is one click away: a link in the popup, the label
        link = href.map(lambda h: f"<a href='{h}'>{html.escape(p.t('open_town'))} →</a>" if h else "—")
        props["v"] = pd.Series([v + [lk] for v, lk in zip(props["v"], link)], index=w.index, dtype=object)
        pop.fields = [*pop.fields, html.escape(p.t("town_maps"))]
        here = w["town_code"].astype(str) == str(nav.current) if nav.current else pd.Series(False, index=w.index)
        at = shapely.get_coordinates(shapely.point_on_surface(w.geometry.to_numpy()))
        rows = [[float(y), float(x), name, h] for (x, y), name, h, cur in
                zip(at, tip, href, here) if h and not cur]
        if rows:
            fg.add_child(lf.town_labels(rows))
    fg.add_child(lf.geo_data(_geojson(w, props), fields=pop.fields, color_keys=[], style={
        "color": "#555555", "weight": 1.5, "fill": False}))


def _town_hrefs(w: gpd.GeoDataFrame, nav: MapNav | None) -> pd.Series | None:
    if nav is None or not nav.towns or "town_code" not in w.columns:
        return None
    by_code = {str(code): html.escape(href, quote=True) for code, _, href in nav.towns}
    return w["town_code"].astype(str).map(by_code).fillna("")


def _add_units(p: _Page, indicator: str | None, scheme: str, k: int, bins: Sequence[float] | None) -> None:
    units = p.layers["units"]
    val, ind_name, ind_unit, ref = _unit_indicator(p.study, indicator, p.lang)
    cls, bins = _classify(val, scheme=scheme, k=k, bins=bins)
    colors = _ramp(len(bins))
    col = np.where(cls >= 0, np.array(colors + [c.NODATA_COLOR], dtype=object)[cls],
                   c.NODATA_COLOR) if bins else np.full(len(cls), c.NODATA_COLOR, dtype=object)
    w = p.web("units", units.assign(_value=val.to_numpy(), _color=col))
    p.bounds.append(w.total_bounds)
    head = _name_series(w, ["unit_id"], "")
    vals = c.escaped_values(w["_value"])
    vlabel = html.escape(ind_name + (f" ({ind_unit})" if ind_unit else ""))
    pop = _popup(w, ["_value", "unit_id", "town_name", "committees", "population", "households", "area_ha",
                     "compound_count", "flag_reason"], p.lang, header=head, labels={"_value": vlabel})
    fg = p.group(f"{p.t('units_layer')}: {ind_name}", show=True)
    fg.add_child(lf.geo_data(_geojson(w, {"c": w["_color"], "t": head + ": " + vals, **pop.props}),
                            fields=pop.fields, color_keys=["fillColor"],
                            style={"color": "#ffffff", "weight": 1, "fillOpacity": 0.6}))
    lines = [f"<h4>{vlabel}</h4>"]
    lo = float(np.nanmin(val)) if np.isfinite(val).any() else None
    if lo is not None and bins:
        lo = min(lo, bins[0])
    for i, b in enumerate(bins):
        a = lo if i == 0 else bins[i - 1]
        lines.append(f"<div><i style='background:{colors[i]}'></i>{html.escape(_fmt(a))} – {html.escape(_fmt(b))}</div>")
    if (cls < 0).any():
        lines.append(f"<div><i style='background:{c.NODATA_COLOR}'></i>{p.t('nodata')}</div>")
    if ref is not None:
        lines.append(f"<div>{p.t('reference')}: {html.escape(_fmt(ref))}"
                     f"{(' ' + html.escape(ind_unit)) if ind_unit else ''}</div>")
    p.legend += lines


def _add_compounds(p: _Page) -> None:
    """Compounds in full detail, coloured by how many facility types they miss."""
    comp = p.layers["compounds"]
    idcol = "compound_id" if "compound_id" in comp.columns else None
    gaps = p.layers.get("coverage_gaps")
    missing = pd.Series(0, index=comp.index)
    listing = pd.Series("—", index=comp.index, dtype=object)
    if idcol and gaps is not None and len(gaps):
        g = gaps[["home_id", "facility_type"]].astype(str)
        names = {t: html.escape(c.facility_type_name(t, p.lang)) for t in pd.unique(g["facility_type"])}
        order = {t: i for i, t in enumerate(c.ordered_types(g["facility_type"]))}
        g = g.assign(_o=g["facility_type"].map(order)).sort_values(["home_id", "_o"], kind="stable")
        per = g.groupby("home_id", sort=False)["facility_type"]
        ids = comp[idcol].astype(str)
        missing = ids.map(per.size()).fillna(0).astype(int)
        text = g.assign(_n=g["facility_type"].map(names)).groupby("home_id", sort=False)["_n"].agg("、".join)
        listing = ids.map(text).fillna("—")
    k = np.searchsorted(np.asarray(COMPOUND_GAP_BREAKS), missing.to_numpy(), side="right")
    w = p.web("compounds", comp.assign(_color=np.asarray(COMPOUND_GAP_COLORS, dtype=object)[k],
                                       _missing=missing.to_numpy(), _list=listing.to_numpy()))
    head = _name_series(w, ["name", "compound_id"], "")
    pop = _popup(w, ["compound_id", "name", "population", "unit_id", "committee_id", "_missing", "_list"], p.lang,
                 header=head, labels={"_missing": html.escape(p.t("compound_gaps").split(": ")[-1]),
                                      "_list": html.escape(p.t("gap_types"))})
    pop.props["v"] = pd.Series([v[:-1] + [lst] for v, lst in zip(pop.props["v"], w["_list"])],
                               index=w.index, dtype=object)  # the list is markup already escaped
    fg = p.group(f"{p.t('compounds')} ({len(w)})", show=True)
    fg.add_child(lf.geo_data(_geojson(w, {"c": w["_color"], "t": head, **pop.props}), fields=pop.fields,
                            color_keys=["fillColor"],
                            style={"color": "#636363", "weight": 0.8, "fillOpacity": 0.55}))
    edges = [0, *COMPOUND_GAP_BREAKS]
    p.legend.append(f"<h4>{html.escape(p.t('compound_gaps'))}</h4>")
    for i, col in enumerate(COMPOUND_GAP_COLORS):
        rng = f"{edges[i]}" if i == 0 else (f"{edges[i]} – {edges[i + 1] - 1}" if i + 1 < len(edges)
                                            else f"≥ {edges[i]}")
        p.legend.append(f"<div><i style='background:{col}'></i>{rng}</div>")


def _add_service_areas(p: _Page, service_areas: bool | None) -> None:
    sa = p.layers["service_areas"]
    tcol = c.study_type_colors(p.study)
    w = p.web("service_areas", sa.assign(_color=sa["facility_type"].astype(str).map(tcol)))
    n = int(shapely.get_num_coordinates(w.geometry.to_numpy()).sum())
    if service_areas is None and n > SERVICE_AREA_VERTEX_BUDGET:
        p.legend.append(f"<div>{html.escape(p.t('service_towns'))}</div>")
        return
    name = _name_series(w, ["facility_name_zh", "facility_type"], "")
    pop = _popup(w, ["facility_type", "facility_name_zh", "walk_distance_m"], p.lang)
    fg = p.group(c.layer_label("service_areas", p.lang), show=False)
    fg.add_child(lf.geo_data(_geojson(w, {"c": w["_color"], "t": name, **pop.props}), fields=pop.fields,
                            color_keys=["color", "fillColor"], style={"weight": 1, "fillOpacity": 0.12}))


def _add_gaps(p: _Page, indicator: str | None) -> None:
    """One point per home with a gap, its distances to every type once; a layer per type."""
    table, gap_types, counts = _gap_table(p.layers["coverage_gaps"], lang=p.lang, gcj=p.gcj, decimals=p.decimals)
    p.bounds.append(table["bounds"])
    p.m.add_child(lf.gap_table(table["data"]))
    # one gap layer on at load (the choropleth's type when it is one), the rest in the control
    first = indicator if indicator in gap_types else gap_types[0] if gap_types else None
    for j, t in enumerate(gap_types):
        tname = html.unescape(table["data"]["n"][j])
        p.group(f"{p.t('gaps')}: {tname} ({counts[j]})", show=(t == first)).add_child(lf.gap_dots(j))
    edges = [1.0, *c.GAP_RATIO_BREAKS]
    p.legend.append(f"<h4>{html.escape(p.t('gap_title'))}</h4>")
    for i, col in enumerate(c.GAP_COLORS):
        rng = f"{edges[i]:g} – {edges[i + 1]:g}" if i + 1 < len(edges) else f"&gt; {edges[i]:g}"
        p.legend.append(f"<div><i style='background:{col}'></i>{rng} {p.t('ratio')}</div>")


def _add_hotspots(p: _Page) -> None:
    hs = p.layers["hotspots"]
    keep = pd.Series(True, index=hs.index)
    if "significant" in hs.columns:
        keep &= hs["significant"].fillna(False).astype(bool)
    if "z_score" in hs.columns:
        keep &= pd.to_numeric(hs["z_score"], errors="coerce").fillna(0) > 0
    hot = hs.loc[keep]
    if not len(hot):
        return
    z = pd.to_numeric(hot["z_score"], errors="coerce") if "z_score" in hot else None
    zc = np.where((z.fillna(0) >= 2.58).to_numpy(), "#b2182b", "#ef8a62") if z is not None \
        else np.full(len(hot), "#ef8a62", dtype=object)
    w = p.web("hotspots", hot.assign(_color=zc))
    head = _name_series(w, ["category"], "")
    pop = _popup(w, ["cell_id", "category", "count", "z_score", "p_value"], p.lang, header=head)
    p.group(f"{p.t('hotspots')} ({len(w)})", show=True).add_child(lf.geo_data(
        _geojson(w, {"c": w["_color"], "t": head, **pop.props}), fields=pop.fields,
        color_keys=["color", "fillColor"], style={"weight": 1, "fillOpacity": 0.2}))
    p.legend.append(f"<h4>{p.t('hotspots')}</h4><div><i style='background:#b2182b'></i>p &lt; 0.01</div>"
                    "<div><i style='background:#ef8a62'></i>p &lt; 0.05</div>")


_PROBLEM_FIELDS = ["problem_id", "indicator_code", "name_zh", "dimension", "level", "value", "reference",
                   "gap", "affected_population", "status"]


def _add_problems(p: _Page) -> None:
    """Problems by class (one toggle each), one feature per area: its problems in one popup.

    A district has ~3,600 problems on ~270 units: one feature per problem would draw each
    unit's outline a dozen times over (and carry its coordinates as often).
    """
    pr = p.layers["problems"]
    if p.study.ledger is not None and "status" in p.study.ledger.columns:
        status = p.study.ledger.drop_duplicates("problem_id").set_index("problem_id")["status"]
        pr = pr.assign(status=pr["problem_id"].map(status))
    pr = pr.sort_values(["area_id", "problem_id"], kind="stable") if "area_id" in pr.columns else pr
    area = pr["area_id"].astype(str) if "area_id" in pr.columns else pd.Series(
        np.arange(len(pr)).astype(str), index=pr.index)
    pr = pr.assign(_area=area.to_numpy())
    first = ~pr.duplicated(["problem_class", "_area"])
    w_geo = p.web("problems", pr.loc[first, ["problem_class", "_area", "geometry"]])  # an area's shape once
    p.bounds.append(w_geo.total_bounds)
    pop = _popup(pr, _PROBLEM_FIELDS, p.lang, suggestion="suggestion")
    head = _name_series(pr, ["name_zh", "indicator_code"], "")
    p.legend.append(f"<h4>{p.t('problems')}</h4>")
    for cls_name in c.ordered_classes(pr["problem_class"]):
        sel = (pr["problem_class"].astype(str) == cls_name).to_numpy()
        sub = pr.loc[sel]
        codes, areas = pd.factorize(sub["_area"], sort=True)
        cut = np.flatnonzero(np.diff(codes)) + 1
        vals = np.split(np.array(pop.props["v"].to_numpy()[sel].tolist(), dtype=object), cut)
        names = np.split(head.to_numpy()[sel], cut)
        geo = w_geo.loc[w_geo["problem_class"].astype(str) == cls_name].set_index("_area").geometry
        w = gpd.GeoDataFrame({"_area": areas}, geometry=geo.reindex(areas).to_numpy(), crs=w_geo.crs)
        props = {"h": pd.Series([html.escape(a) for a in areas], dtype=object),
                 "m": pd.Series([v.tolist() for v in vals], dtype=object),
                 "t": pd.Series([f"{html.escape(a)}: " + "、".join(n[:3]) + (" …" if len(n) > 3 else "")
                                 + f" ({_t('problems_n', p.lang).format(n=len(n))})"
                                 for a, n in zip(areas, names)], dtype=object)}
        if "s" in pop.props:
            props["s"] = pd.Series([s.tolist() for s in np.split(pop.props["s"].to_numpy()[sel], cut)],
                                   dtype=object)
        color = c.PROBLEM_COLORS.get(cls_name, c.OTHER_COLOR)
        label = c.problem_class_label(cls_name, p.lang)
        # 限时解决 (urgent) on at load; the other classes are a click away
        fg = p.group(f"{p.t('problems')}: {label} ({len(sub)})", show=(cls_name == c.PROBLEM_CLASSES[0]))
        fg.add_child(lf.geo_data(_geojson(w, props), fields=pop.fields, suggestion_label=pop.suggestion_label,
                                color_keys=[], style={"color": color, "fillColor": color, "weight": 2.5,
                                                      "fillOpacity": 0.12, "dashArray": "5 3"}))
        p.legend.append(f"<div><i style='background:{color}'></i>{html.escape(label)} ({len(sub)})</div>")


def _add_facilities(p: _Page) -> None:
    """Facilities by type, one canvas layer each (areas such as parks as a point inside)."""
    fac = p.layers["facilities"]
    if "type" not in fac.columns:
        raise LayerError("facilities", "missing column 'type'", fix="read it with read_layer")
    tcol = c.study_type_colors(p.study)
    g = fac.geometry.to_numpy().copy()
    poly = shapely.get_type_id(g) > 0
    g[poly] = shapely.point_on_surface(g[poly])
    w_all = p.web("facilities", fac.set_geometry(gpd.GeoSeries(g, index=fac.index, crs=fac.crs)))
    p.bounds.append(w_all.total_bounds)
    p.legend.append(f"<h4>{p.t('facilities')}</h4>")
    types = w_all["type"].astype(str)
    for t in c.ordered_types(fac["type"]):
        w = w_all.loc[types == t]
        tname = c.facility_type_name(t, p.lang)
        head = _name_series(w, ["name", "facility_id"], tname)
        pop = _popup(w.assign(_type=tname), ["facility_id", "name", "_type", "capacity"], p.lang,
                     labels={"_type": html.escape(c.field_label("type", p.lang))})
        xy = shapely.get_coordinates(w.geometry.to_numpy())
        data = {"x": xy[:, 0].tolist(), "y": xy[:, 1].tolist(), "h": head.tolist(),
                "v": pop.props["v"].tolist(), "f": pop.fields, "c": tcol[t]}
        p.group(f"{p.t('facilities')}: {tname} ({len(w)})", show=True).add_child(lf.facility_dots(data))
        p.legend.append(f"<div><i class='pt' style='background:{tcol[t]}'></i>{html.escape(tname)} ({len(w)})</div>")


def _nav_html(nav: MapNav, lang: str) -> str:
    """The links box: back to the district map, and every town map."""
    parts = []
    if nav.home:
        parts.append(f"<a class='home' href='{html.escape(nav.home, quote=True)}'>{_t('district_map', lang)}</a>")
    if nav.towns:
        parts.append(f"<b>{_t('town_maps', lang)}</b>")
        for code, name, href in nav.towns:
            if nav.current is not None and str(code) == str(nav.current):
                parts.append(f"<span class='here'>{html.escape(str(name))}</span>")
            else:
                parts.append(f"<a href='{html.escape(href, quote=True)}'>{html.escape(str(name))}</a>")
    return "<div class='gtj-nav'>" + "".join(parts) + "</div>"


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
        Classification of the choropleth, as mapclassify's (deterministic schemes only:
        quantiles, equal_interval, fisher_jenks, ...). Default 5 quantiles.
    bins : sequence of float, optional
        Class upper bounds of the choropleth instead of ``scheme``/``k`` (a town map takes
        its district's, so colours mean the same on both).
    title : str, optional
        Title; default "<study name> <year> 年城市体检问题地图".
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
        Links to the town maps (a list box, town labels, the towns' popups) and back to
        the district map.

    Returns
    -------
    folium.Map
        Leaflet is already inlined in its header (folium's CDN links are removed); save
        it with ``save_problem_map`` (atomic, and refuses any remaining remote script or
        stylesheet).
    """
    li = c.lang_index(lang)
    names = _basemaps(basemap)
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
                          "(pass amap_shift=True to shift them)", CoordinateWarning, stacklevel=2)
    if "tianditu" in names and not tianditu_key:
        raise ConfigError("tianditu_key", "the Tianditu basemap needs a browser key",
                          fix="pass tianditu_key= (apply at console.tianditu.gov.cn)")

    # (a layer's attrs, e.g. the units' delineation report, would be deep-copied by every
    # pandas step on it)
    layers = {n: _without_attrs(g) for n, g in study.layers().items()}
    if not compounds:
        layers.pop("compounds", None)
    if service_areas is False:
        layers.pop("service_areas", None)
    drawable = [n for n in ("boundary", "towns", "units", "compounds", "service_areas", "coverage_gaps",
                            "hotspots", "problems", "facilities") if n in layers and len(layers[n])]
    if not drawable:
        raise LayerError("study", "has no layer to draw (boundary, towns, units, facilities, "
                         "coverage_gaps, service_areas, problems or hotspots)",
                         fix="compute or load at least one of them")

    # zoomSnap 0.25: the first view fits the study closely (a tall town at whole zooms was
    # drawn at half the window's height); the zoom buttons still step by one
    m = folium.Map(tiles=None, control_scale=False, zoom_start=13, location=[31.38, 121.25],
                   maxZoom=19, minZoom=8, zoomSnap=0.25)
    m.default_js = []
    m.default_css = []
    _add_basemaps(m, names, li, tianditu_key)
    p = _Page(m=m, study=study, layers=layers, lang=lang, simplify_m=simplify_m, decimals=decimals, gcj=gcj)
    _add_outlines(p, drawable, nav)
    builders = {"units": lambda: _add_units(p, indicator, scheme, k, bins), "compounds": lambda: _add_compounds(p),
                "service_areas": lambda: _add_service_areas(p, service_areas),
                "coverage_gaps": lambda: _add_gaps(p, indicator), "hotspots": lambda: _add_hotspots(p),
                "problems": lambda: _add_problems(p), "facilities": lambda: _add_facilities(p)}
    for name in drawable:
        if name in builders:
            builders[name]()

    n_layers = sum(isinstance(ch, folium.map.Layer) for ch in m._children.values())
    folium.LayerControl(collapsed=n_layers > 16, position="topright").add_to(m)
    m.add_child(lf.scale_bar())
    if study.from_osm:
        m.add_child(lf.attribution(html.escape(study.attribution)))
    if p.bounds:
        b = np.vstack(p.bounds)
        box = [[float(np.nanmin(b[:, 1])), float(np.nanmin(b[:, 0]))],
               [float(np.nanmax(b[:, 3])), float(np.nanmax(b[:, 2]))]]
        # not animated: the first view is drawn at load, not after a zoom transition
        # clear of the title, town list and legend (folded in a narrow window)
        m.add_child(lf.Script(f"gtjLegendToggle(); gtjFit({lf.P}, {lf.js_json(box)});", "FitBounds"))
    ttl = title or _TXT["title"][li].format(name=study.name, year=study.year)
    root = m.get_root()
    root.title = ttl
    root.html.add_child(lf.Raw(f"<div class='gtj-title'>{html.escape(ttl)}</div>"), name="gtj_title")
    if nav is not None and (nav.home or nav.towns):
        root.html.add_child(lf.Raw(_nav_html(nav, lang)), name="gtj_nav")
    if p.legend:
        root.html.add_child(lf.Raw(f"<div class='gtj-legend'><b>{_t('legend', lang)}</b>"
                                    + "".join(p.legend) + "</div>"), name="gtj_legend")
    lf.inline_assets(m)
    lf.stable_ids(m)
    return m


def render_problem_map(m: folium.Map) -> str:
    """The map as one HTML string; raises if any script/stylesheet would load from a URL."""
    text = m.get_root().render()
    bad = _EXTERNAL.search(text)
    if bad:
        raise ValueError(f"map HTML still references a remote resource: {bad.group(0)[:120]!r}")
    return text


_EXTERNAL = re.compile(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?\s*"
                       r"(?:https?:)?//", re.I)


def save_problem_map(m: folium.Map, path: str | Path) -> Path:
    """Write the map as a self-contained HTML file (atomically); return the path.

    Leaflet is inlined, no script or stylesheet is loaded from the network; a remaining
    remote reference is an error rather than a silently broken offline map.
    """
    return write_text_atomic(Path(path), render_problem_map(m))
