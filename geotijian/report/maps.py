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
from collections.abc import Sequence
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

__all__ = ["problem_map", "save_problem_map", "BASEMAPS"]

STATIC = Path(__file__).with_name("static")

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
}


def _t(key: str, lang: str) -> str:
    return _TXT[key][c.lang_index(lang)]


# --------------------------------------------------------------------------- assets

def _read_asset(name: str) -> str:
    path = STATIC / name
    if not path.exists():
        raise FileNotFoundError(f"vendored asset {path} is missing; reinstall geotijian")
    text = path.read_text(encoding="utf-8")
    return re.sub(r"^\s*//# sourceMappingURL=.*$", "", text, flags=re.M)


def _leaflet_css() -> str:
    """leaflet.css with its images turned into data URIs (no relative file references)."""
    css = _read_asset("leaflet.css")

    def data_uri(m: re.Match) -> str:
        png = (STATIC / m.group(1)).read_bytes()
        return f"url(data:image/png;base64,{base64.b64encode(png).decode('ascii')})"

    return re.sub(r"url\(images/([\w.-]+\.png)\)", data_uri, css)


def _script(text: str) -> str:
    if re.search(r"</script", text, flags=re.I):
        raise ValueError("inline script contains '</script'")
    return f"<script>{text}</script>"


def _inline_assets(m: folium.Map, *, cluster: bool) -> None:
    """Inline Leaflet (and markercluster) JS/CSS into the map's header."""
    header = m.get_root().header
    header.add_child(Element(f"<style>{_leaflet_css()}</style>"), name="gtj_leaflet_css")
    header.add_child(Element(_script(_read_asset("leaflet.js"))), name="gtj_leaflet_js")
    if cluster:
        header.add_child(Element("<style>" + _read_asset("MarkerCluster.css")
                                 + _read_asset("MarkerCluster.Default.css") + "</style>"),
                         name="gtj_cluster_css")
        header.add_child(Element(_script(_read_asset("leaflet.markercluster.js"))),
                         name="gtj_cluster_js")
    header.add_child(Element(f"<style>{_CSS}</style>"), name="gtj_css")
    header.add_child(Element(_script(_POPUP_JS + _GAP_JS)), name="gtj_popup_js")


_CSS = """
.gtj-title{position:absolute;top:10px;left:50%;transform:translateX(-50%);z-index:1000;
 background:rgba(255,255,255,.92);padding:6px 14px;border-radius:4px;font:bold 17px/1.3
 "Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.gtj-legend{position:absolute;bottom:24px;right:10px;z-index:1000;max-height:60vh;overflow:auto;
 background:rgba(255,255,255,.94);padding:8px 10px;border-radius:4px;font:12px/1.45
 "Noto Sans CJK SC","Microsoft YaHei",sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.gtj-legend h4{margin:6px 0 2px;font-size:12.5px}
.gtj-legend i{display:inline-block;width:14px;height:11px;margin-right:5px;vertical-align:-1px;
 border:1px solid #555}
.gtj-legend i.pt{border-radius:50%;width:10px;height:10px}
.leaflet-control-layers{font-size:12.5px;line-height:1.35;max-height:55vh;overflow:auto}
.gtj-pop table{border-collapse:collapse;font-size:12px}
.gtj-pop th{text-align:left;padding:1px 6px 1px 0;color:#444;white-space:nowrap;vertical-align:top}
.gtj-pop td{padding:1px 0;max-width:260px}
.gtj-pop .sug{margin-top:4px;padding:4px;background:#fff7e6;border-left:3px solid #fc8d59}
"""


# --------------------------------------------------------------------------- elements

class _GeoData(MacroElement):
    """A GeoJSON FeatureCollection drawn with per-feature colour, popup and tooltip.

    Feature properties: ``c`` colour, ``t`` tooltip, ``v`` popup values, ``h`` popup
    header, ``s`` suggestion, all already HTML-escaped. Points become circle markers.
    """

    _template = Template("""
{% macro script(this, kwargs) %}
var {{ this.get_name() }} = L.geoJSON({{ this.data }}, {
  style: function (f) {
    var s = Object.assign({}, {{ this.style }});
    if (f.properties.c) { {% for k in this.color_keys %}s[{{ k|tojson }}] = f.properties.c; {% endfor %} }
    return s;
  },
  pointToLayer: function (f, ll) { return L.circleMarker(ll, {radius: {{ this.radius }}, renderer: gtjCanvas()}); },
  onEachFeature: function (f, l) {
    if (f.properties.v) {
      l.bindPopup(function () { return gtjPopup({{ this.fields }}, {{ this.sug_label }}, f.properties); },
                  {maxWidth: 400});
    }
    if (f.properties.t) { l.bindTooltip(f.properties.t, {sticky: true}); }
  }
}).addTo({{ this._parent.get_name() }});
{% endmacro %}
""")

    def __init__(self, data: str, *, style: dict, color_keys: Sequence[str], radius: float = 5,
                 popup: _Popup | None = None):
        super().__init__()
        self._name = "GeoData"
        self.data = data
        self.fields = _js_json(popup.fields if popup else [])
        self.sug_label = _js_json(popup.suggestion_label if popup else "")
        self.style = json.dumps(style)
        self.color_keys = list(color_keys)
        self.radius = float(radius)


class _ScaleBar(MacroElement):
    """A metric-only scale bar (folium's control_scale adds feet and miles)."""

    _template = Template("""
{% macro script(this, kwargs) %}
L.control.scale({imperial: false, maxWidth: 160}).addTo({{ this._parent.get_name() }});
{% endmacro %}
""")

    def __init__(self):
        super().__init__()
        self._name = "ScaleBar"


class _Attribution(MacroElement):
    _template = Template("""
{% macro script(this, kwargs) %}
{{ this._parent.get_name() }}.attributionControl.addAttribution({{ this.text|tojson }});
{% endmacro %}
""")

    def __init__(self, text: str):
        super().__init__()
        self._name = "Attribution"
        self.text = text


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


def _js_json(value) -> str:
    """JSON for a <script>: no '</' can close the script element."""
    return json.dumps(value, ensure_ascii=False).replace("</", "<\\/")


_POPUP_JS = """
function gtjPopup(fields, sugLabel, p) {
  var rows = '';
  for (var i = 0; i < fields.length; i++) {
    rows += '<tr><th>' + fields[i] + '</th><td>' + p.v[i] + '</td></tr>';
  }
  var out = "<div class='gtj-pop'>" + (p.h ? '<b>' + p.h + '</b>' : '') + '<table>' + rows + '</table>';
  if (p.s) { out += "<div class='sug'><b>" + sugLabel + ':</b> ' + p.s + '</div>'; }
  return out + '</div>';
}
"""


def _geojson(web: gpd.GeoDataFrame, props: dict[str, pd.Series]) -> str:
    """A compact FeatureCollection string, safe to embed inside a <script>."""
    df = gpd.GeoDataFrame({k: v.to_numpy() for k, v in props.items()},
                          geometry=web.geometry.to_numpy(), crs=web.crs)
    text = df.to_json(drop_id=True, ensure_ascii=False, separators=(",", ":"))
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
    return html.escape(str(text).replace("\\", "/").replace("\n", " "), quote=True)


# --------------------------------------------------------------------------- coverage gaps

def _gap_table(gaps: gpd.GeoDataFrame, *, lang: str, gcj: bool, decimals: int) -> tuple[dict, list, list]:
    """The gap layer as one compact table for the page: a row per home with a gap.

    ``gaps`` is one row per (home, type) (:func:`geotijian.coverage_gaps`). A district has
    ~300,000 such rows but ~20,000 homes: each home is written once, at a point inside it,
    with its distance to every type (0 = covered, -1 = no facility reachable), so the page
    carries each home and each label once instead of once per missing type.
    """
    for col in ("home_id", "facility_type", "distance_m", "walk_distance_m"):
        if col not in gaps.columns:
            raise LayerError("coverage_gaps", f"missing column {col!r}", fix="build it with coverage_gaps()")
    types = c.ordered_types(gaps["facility_type"])
    ti = pd.Categorical(gaps["facility_type"].astype(str), categories=types).codes
    hcode, homes = pd.factorize(gaps["home_id"].astype(str), sort=True)
    first = np.unique(hcode, return_index=True)[1]  # first row of every home
    dist = np.zeros((len(homes), len(types)))
    d = pd.to_numeric(gaps["distance_m"], errors="coerce").to_numpy(dtype=float)
    dist[hcode, ti] = np.where(np.isfinite(d), np.maximum(np.round(d, 1), 0.1), -1.0)
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
    unit = c.escaped_values(sub["unit_id"]) if "unit_id" in sub.columns else pd.Series("—", index=sub.index)
    pop = (pd.to_numeric(sub["population"], errors="coerce").round(0) if "population" in sub.columns
           else pd.Series(np.nan, index=sub.index))
    rows = pd.DataFrame({"x": np.round(xy[:, 0], decimals), "y": np.round(xy[:, 1], decimals),
                         "id": [html.escape(h, quote=True) for h in homes.astype(str)],
                         "u": unit.to_numpy(), "p": pop.fillna(-1).astype(np.int64).to_numpy()})
    rows["d"] = [list(r) for r in dist.tolist()]
    fields = [html.escape(c.field_label(k, lang)) for k in ("unit_id", "population", "facility_name_zh",
                                                             "walk_distance_m", "distance_m")]
    data = {"c": list(c.GAP_COLORS), "b": list(c.GAP_RATIO_BREAKS), "r": rad.tolist(), "n": names,
            "f": fields, "rows": rows.to_numpy().tolist(),
            "none": "∞" if lang == "zh" else "none reachable", "_bounds": w.total_bounds}
    counts = (dist != 0).sum(axis=0).tolist()
    return data, types, counts


class _GapData(MacroElement):
    """The gap table, once per page (``gtjGaps``)."""

    _template = Template("""
{% macro script(this, kwargs) %}
var gtjGaps = {{ this.data }};
{% endmacro %}
""")

    def __init__(self, data: dict):
        super().__init__()
        self._name = "GapData"
        self.data = _js_json(data)


class _GapLayer(MacroElement):
    """The homes with a gap for one type, coloured by distance / radius, on a canvas."""

    _template = Template("""
{% macro script(this, kwargs) %}
gtjGapLayer({{ this._parent.get_name() }}, {{ this.t }});
{% endmacro %}
""")

    def __init__(self, t: int):
        super().__init__()
        self._name = "GapLayer"
        self.t = int(t)


_GAP_JS = """
var gtjCanvasR = null;
function gtjCanvas() { if (!gtjCanvasR) { gtjCanvasR = L.canvas({padding: 0.3}); } return gtjCanvasR; }
function gtjGapLayer(group, t) {
  var D = gtjGaps, R = L.canvas({padding: 0.3}), built = false;
  function build() {
    if (built) { return; }
    built = true;
    for (var i = 0; i < D.rows.length; i++) {
      var r = D.rows[i], d = r[5][t];
      if (d === 0) { continue; }
      var q = d < 0 ? Infinity : d / D.r[t], k = 0;
      while (k < D.b.length && q >= D.b[k]) { k++; }
      var txt = d < 0 ? D.none : d + ' m';
      var mk = L.circleMarker([r[1], r[0]], {renderer: R, radius: 4, color: '#444444', weight: 0.6,
                                             fillColor: D.c[k], fillOpacity: 0.85});
      mk.gtj = [r, txt];
      group.addLayer(mk);
    }
  }
  // one tooltip and one popup function for the whole layer (not one closure per home)
  group.bindTooltip(function (l) { return l.gtj[0][2] + ' · ' + l.gtj[1]; }, {sticky: true});
  group.bindPopup(function (l) {
    var r = l.gtj[0], v = [r[3], r[4] < 0 ? '—' : r[4], D.n[t], D.r[t], l.gtj[1]], rows = '';
    for (var j = 0; j < D.f.length; j++) { rows += '<tr><th>' + D.f[j] + '</th><td>' + v[j] + '</td></tr>'; }
    return "<div class='gtj-pop'><b>" + r[2] + '</b><table>' + rows + '</table></div>';
  }, {maxWidth: 400});
  group.on('add', build);
  if (group._map) { build(); }
}
"""


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
        Title; default "<study name> <year> 年城市体检问题地图".
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

    legend: list[str] = []
    bounds: list[np.ndarray] = []
    cluster_used = False

    # -- boundary and towns: outlines
    if "boundary" in drawable:
        w = web("boundary")
        bounds.append(w.total_bounds)
        fg = folium.FeatureGroup(name=_layer_name(_t("boundary", lang)), show=True).add_to(m)
        tip = _name_series(w, ["name", "boundary_id"], _t("boundary", lang))
        fg.add_child(_GeoData(_geojson(w, {"t": tip}), color_keys=[], style={
            "color": "#222222", "weight": 2.5, "fill": False, "dashArray": "6 4"}))
    if "towns" in drawable:
        w = web("towns")
        bounds.append(w.total_bounds)
        fg = folium.FeatureGroup(name=_layer_name(_t("towns", lang)), show=True).add_to(m)
        tip = _name_series(w, ["name", "town_code"], "")
        pop = _popup(w, ["town_code", "name", "population"], lang, header=tip)
        fg.add_child(_GeoData(_geojson(w, {"t": tip, **pop.props}), popup=pop, color_keys=[], style={
            "color": "#555555", "weight": 1.5, "fill": False}))

    # -- units choropleth
    if "units" in drawable:
        units = layers["units"]
        val, ind_name, ind_unit, ref = _unit_indicator(study, indicator, lang)
        cls, bins = _classify(val, scheme=scheme, k=k)
        colors = _ramp(len(bins))
        col = np.where(cls >= 0, np.array(colors + [c.NODATA_COLOR], dtype=object)[cls],
                       c.NODATA_COLOR) if bins else np.full(len(cls), c.NODATA_COLOR, dtype=object)
        u = units.assign(_value=val.to_numpy(), _color=col)
        w = web("units", u)
        bounds.append(w.total_bounds)
        head = _name_series(w, ["unit_id"], "")
        vals = c.escaped_values(w["_value"])
        vlabel = html.escape(ind_name + (f" ({ind_unit})" if ind_unit else ""))
        pop = _popup(w, ["_value", "unit_id", "town_name", "committees", "population",
                         "households", "area_ha", "compound_count", "flag_reason"], lang,
                     header=head, labels={"_value": vlabel})
        fg = folium.FeatureGroup(name=_layer_name(f"{_t('units_layer', lang)}: {ind_name}"),
                                 show=True).add_to(m)
        fg.add_child(_GeoData(_geojson(w, {"c": w["_color"], "t": head + ": " + vals, **pop.props}), popup=pop,
                              color_keys=["fillColor"], style={
                                  "color": "#ffffff", "weight": 1, "fillOpacity": 0.6}))
        lines = [f"<h4>{vlabel}</h4>"]
        lo = float(np.nanmin(val)) if np.isfinite(val).any() else None
        for i, b in enumerate(bins):
            a = lo if i == 0 else bins[i - 1]
            lines.append(f"<div><i style='background:{colors[i]}'></i>"
                         f"{html.escape(_fmt(a))} – {html.escape(_fmt(b))}</div>")
        if (cls < 0).any():
            lines.append(f"<div><i style='background:{c.NODATA_COLOR}'></i>{_t('nodata', lang)}</div>")
        if ref is not None:
            lines.append(f"<div>{_t('reference', lang)}: {html.escape(_fmt(ref))}"
                         f"{(' ' + html.escape(ind_unit)) if ind_unit else ''}</div>")
        legend += lines

    # -- service areas (hidden by default)
    if "service_areas" in drawable:
        sa = layers["service_areas"]
        tcol = c.study_type_colors(study)
        w = web("service_areas", sa.assign(_color=sa["facility_type"].astype(str).map(tcol)))
        name = _name_series(w, ["facility_name_zh", "facility_type"], "")
        pop = _popup(w, ["facility_type", "facility_name_zh", "walk_distance_m"], lang)
        fg = folium.FeatureGroup(name=_layer_name(c.layer_label("service_areas", lang)),
                                 show=False).add_to(m)
        fg.add_child(_GeoData(_geojson(w, {"c": w["_color"], "t": name, **pop.props}), popup=pop,
                              color_keys=["color", "fillColor"],
                              style={"weight": 1, "fillOpacity": 0.12}))

    # -- coverage gaps: one point per home with a gap, its distances to every type once;
    #    one layer per facility type (drawn on a canvas, built when first shown)
    if "coverage_gaps" in drawable:
        gt_data, gap_types, counts = _gap_table(layers["coverage_gaps"], lang=lang, gcj=gcj,
                                                decimals=decimals)
        bounds.append(gt_data.pop("_bounds"))
        m.add_child(_GapData(gt_data))
        # one gap layer on at load (the choropleth's type when it is one), the rest in the control
        first_gap = indicator if indicator in gap_types else gap_types[0] if gap_types else None
        for j, t in enumerate(gap_types):
            tname = gt_data["n"][j]
            fg = folium.FeatureGroup(name=_layer_name(f"{_t('gaps', lang)}: {html.unescape(tname)} ({counts[j]})"),
                                     show=(t == first_gap)).add_to(m)
            fg.add_child(_GapLayer(j))
        edges = [1.0, *c.GAP_RATIO_BREAKS]
        legend.append(f"<h4>{html.escape(_t('gap_title', lang))}</h4>")
        for i, col in enumerate(c.GAP_COLORS):
            rng = (f"{edges[i]:g} – {edges[i + 1]:g}" if i + 1 < len(edges) else f"&gt; {edges[i]:g}")
            legend.append(f"<div><i style='background:{col}'></i>{rng} {_t('ratio', lang)}</div>")

    # -- hotline hot spots
    if "hotspots" in drawable:
        hs = layers["hotspots"]
        keep = pd.Series(True, index=hs.index)
        if "significant" in hs.columns:
            keep &= hs["significant"].fillna(False).astype(bool)
        if "z_score" in hs.columns:
            keep &= pd.to_numeric(hs["z_score"], errors="coerce").fillna(0) > 0
        hot = hs.loc[keep]
        if len(hot):
            z = pd.to_numeric(hot["z_score"], errors="coerce") if "z_score" in hot else None
            zc = np.where((z.fillna(0) >= 2.58).to_numpy(), "#b2182b", "#ef8a62") if z is not None \
                else np.full(len(hot), "#ef8a62", dtype=object)
            w = web("hotspots", hot.assign(_color=zc))
            head = _name_series(w, ["category"], "")
            pop = _popup(w, ["cell_id", "category", "count", "z_score", "p_value"], lang, header=head)
            fg = folium.FeatureGroup(name=_layer_name(f"{_t('hotspots', lang)} ({len(w)})"),
                                     show=True).add_to(m)
            fg.add_child(_GeoData(_geojson(w, {"c": w["_color"], "t": head, **pop.props}), popup=pop,
                                  color_keys=["color", "fillColor"],
                                  style={"weight": 1, "fillOpacity": 0.2}))
            legend.append(f"<h4>{_t('hotspots', lang)}</h4>"
                          "<div><i style='background:#b2182b'></i>p &lt; 0.01</div>"
                          "<div><i style='background:#ef8a62'></i>p &lt; 0.05</div>")

    # -- problems, one toggle per class
    if "problems" in drawable:
        pr = layers["problems"]
        if study.ledger is not None and "status" in study.ledger.columns:
            status = study.ledger.drop_duplicates("problem_id").set_index("problem_id")["status"]
            pr = pr.assign(status=pr["problem_id"].map(status))
        w_all = web("problems", pr)
        bounds.append(w_all.total_bounds)
        legend.append(f"<h4>{_t('problems', lang)}</h4>")
        for cls_name in c.ordered_classes(pr["problem_class"]):
            w = w_all.loc[w_all["problem_class"].astype(str) == cls_name]
            color = c.PROBLEM_COLORS.get(cls_name, c.OTHER_COLOR)
            head = _name_series(w, ["name_zh", "indicator_code"], "")
            pop = _popup(w, ["problem_id", "indicator_code", "dimension", "level", "area_id",
                             "value", "reference", "gap", "problem_class", "affected_population",
                             "status"], lang, header=head, suggestion="suggestion")
            tip = head + " · " + _name_series(w, ["area_id"], "")
            label = c.problem_class_label(cls_name, lang)
            # 限时解决 (urgent) on at load; the other classes are a click away
            fg = folium.FeatureGroup(name=_layer_name(f"{_t('problems', lang)}: {label} ({len(w)})"),
                                     show=(cls_name == c.PROBLEM_CLASSES[0])).add_to(m)
            fg.add_child(_GeoData(_geojson(w, {"t": tip, **pop.props}), popup=pop, color_keys=[], radius=7,
                                  style={"color": color, "fillColor": color, "weight": 2.5,
                                         "fillOpacity": 0.12, "dashArray": "5 3"}))
            legend.append(f"<div><i style='background:{color}'></i>{html.escape(label)}"
                          f" ({len(w)})</div>")

    # -- facilities by type, clustered when many
    if "facilities" in drawable:
        fac = layers["facilities"]
        if "type" not in fac.columns:
            raise LayerError("facilities", "missing column 'type'", fix="read it with read_layer")
        types = c.ordered_types(fac["type"])
        tcol = c.study_type_colors(study)
        # areas (e.g. parks) are drawn as a point inside them
        g = fac.geometry.to_numpy().copy()
        poly = shapely.get_type_id(g) > 0
        g[poly] = shapely.point_on_surface(g[poly])
        w_all = web("facilities", fac.set_geometry(gpd.GeoSeries(g, index=fac.index, crs=fac.crs)))
        bounds.append(w_all.total_bounds)
        legend.append(f"<h4>{_t('facilities', lang)}</h4>")
        for t in types:
            w = w_all.loc[w_all["type"].astype(str) == t]
            tname = c.facility_type_name(t, lang)
            head = _name_series(w, ["name", "facility_id"], tname)
            w = w.assign(_type=tname)
            pop = _popup(w, ["facility_id", "name", "_type", "capacity"], lang, header=head,
                         labels={"_type": html.escape(c.field_label("type", lang))})
            lname = _layer_name(f"{_t('facilities', lang)}: {tname} ({len(w)})")
            if len(w) >= cluster_min:
                cluster_used = True
                parent = MarkerCluster(name=lname, show=True, overlay=True, control=True,
                                       options={"maxClusterRadius": 40,
                                                "disableClusteringAtZoom": 17})
                parent.default_js = []
                parent.default_css = []
                parent.add_to(m)
            else:
                parent = folium.FeatureGroup(name=lname, show=True).add_to(m)
            parent.add_child(_GeoData(_geojson(w, {"t": head, **pop.props}), popup=pop, color_keys=[], radius=5,
                                      style={"color": "#ffffff", "weight": 1.2,
                                             "fillColor": tcol[t], "fillOpacity": 0.95}))
            legend.append(f"<div><i class='pt' style='background:{tcol[t]}'></i>"
                          f"{html.escape(tname)} ({len(w)})</div>")

    n_layers = sum(isinstance(ch, folium.map.Layer) for ch in m._children.values())
    folium.LayerControl(collapsed=n_layers > 16, position="topright").add_to(m)
    m.add_child(_ScaleBar())
    if study.from_osm:
        m.add_child(_Attribution(html.escape(study.attribution)))
    if bounds:
        b = np.vstack(bounds)
        m.fit_bounds([[float(np.nanmin(b[:, 1])), float(np.nanmin(b[:, 0]))],
                      [float(np.nanmax(b[:, 3])), float(np.nanmax(b[:, 2]))]])

    ttl = title or _TXT["title"][li].format(name=study.name, year=study.year)
    root = m.get_root()
    root.title = ttl
    root.html.add_child(Element(f"<div class='gtj-title'>{html.escape(ttl)}</div>"),
                        name="gtj_title")
    if legend:
        root.html.add_child(Element(f"<div class='gtj-legend'><b>{_t('legend', lang)}</b>"
                                    + "".join(legend) + "</div>"), name="gtj_legend")
    _inline_assets(m, cluster=cluster_used)
    _stable_ids(m)
    return m


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
