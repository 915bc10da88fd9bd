"""Leaflet building blocks of the problem map: inlined assets, page CSS and scripts, the
elements folium renders (GeoJSON with popups, grouped layer control, scale bar, coverage-gap
canvas layers), web geometry (simplified, WGS84 or GCJ-02, rounded) and escaped popups.

Used by :mod:`geotijian.report.maps`; nothing here is public.
"""

from __future__ import annotations

import base64
import html
import json
import re
import warnings
from collections.abc import Sequence
from pathlib import Path

import folium
import numpy as np
import pandas as pd
import shapely
from branca.element import Element, MacroElement
from jinja2 import Template

import geopandas as gpd

from .. import settings
from ..errors import LayerError
from ..io.coords import wgs84_to_gcj02
from . import _common as c

STATIC = Path(__file__).with_name("static")


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
    header.add_child(Element(_script(_POPUP_JS + _GAP_JS + _GROUP_JS)), name="gtj_popup_js")


_CSS = """
.gtj-title{position:absolute;top:10px;left:50%;transform:translateX(-50%);z-index:1000;
 background:rgba(255,255,255,.92);padding:6px 14px;border-radius:4px;font:bold 17px/1.3
 "Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.gtj-panel{position:absolute;z-index:1000;background:rgba(255,255,255,.94);padding:5px 9px;border-radius:4px;
 font:12px/1.4 "Noto Sans CJK SC","Microsoft YaHei",sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.gtj-panel summary{cursor:pointer;font-weight:bold;font-size:12.5px}
.gtj-panel .gtj-body{overflow:auto}
.gtj-legend{bottom:24px;right:10px;max-width:230px}
.gtj-legend .gtj-body{max-height:calc(100vh - 330px);min-height:60px}
.gtj-legend h4{margin:5px 0 1px;font-size:12px}
.gtj-legend .sub{margin-top:2px;color:#444}
.gtj-panel i{display:inline-block;width:14px;height:11px;margin-right:5px;vertical-align:-1px;border:1px solid #555}
.gtj-panel i.pt{border-radius:50%;width:10px;height:10px}
.gtj-panel i.ol{background:transparent;border-width:3px;border-style:solid;width:10px;height:7px}
.gtj-side{top:80px;left:10px;max-width:min(430px,40vw)}
.gtj-side .gtj-body{max-height:calc(100vh - 330px)}
.gtj-side table{border-collapse:collapse;font-size:11.5px;margin-top:3px}
.gtj-side th,.gtj-side td{padding:2px 4px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.gtj-side th{white-space:nowrap;color:#444}
.gtj-side td:nth-child(2){white-space:nowrap}
.leaflet-control-layers{font-size:12.5px;line-height:1.35}
.leaflet-control-layers-list{max-height:calc(100vh - 120px);overflow-y:auto;overflow-x:hidden}
.gtj-grp{font-weight:bold;cursor:pointer;margin:4px 0 1px;color:#222;user-select:none}
.gtj-pop table{border-collapse:collapse;font-size:12px}
.gtj-pop th{text-align:left;padding:1px 6px 1px 0;color:#444;white-space:nowrap;vertical-align:top}
.gtj-pop td{padding:1px 0;max-width:260px}
.gtj-pop .sug{max-height:220px;overflow:auto}
.gtj-pop .sg{color:#555}
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


class _GroupedLayers(folium.LayerControl):
    """Leaflet's layer control with its overlays filed under group headings (评估单元, 设施,
    覆盖缺口, 问题, 热线), each heading folding its group; ``closed`` groups start folded.
    The control starts collapsed to its icon in a small window (< 1000 × 700 px)."""

    _template = Template("""
        {% macro script(this,kwargs) %}
            var {{ this.get_name() }}_layers = {
                base_layers : {
                    {%- for key, val in this.base_layers.items() %}
                    {{ key|tojson }} : {{val}},
                    {%- endfor %}
                },
                overlays :  {
                    {%- for key, val in this.overlays.items() %}
                    {{ key|tojson }} : {{val}},
                    {%- endfor %}
                },
            };
            let {{ this.get_name() }} = L.control.layers(
                {{ this.get_name() }}_layers.base_layers,
                {{ this.get_name() }}_layers.overlays,
                {position: "topright", autoZIndex: true, collapsed: gtjSmall()}
            ).addTo({{this._parent.get_name()}});
            gtjGroupControl({{ this.get_name() }}, {{ this.groups_js }}, {{ this.closed }}, {{ this.base_label }});
        {% endmacro %}
        """)

    def __init__(self, *, groups: dict[str, list], closed: list[str], base_label: str):
        super().__init__(position="topright", collapsed=False)
        self._name = "LayerControl"
        self.groups = groups
        self.groups_js = "[]"
        self.closed = _js_json(closed)
        self.base_label = _js_json(base_label)

    def render(self, **kwargs):
        # layer variable names are final only now (after _stable_ids)
        self.groups_js = "[" + ", ".join(f"[{_js_json(g)}, [{', '.join(x.get_name() for x in layers)}]]"
                                         for g, layers in self.groups.items() if layers) + "]"
        super().render(**kwargs)


_GROUP_JS = """
function gtjSmall() { return window.innerWidth < 1000 || window.innerHeight < 700; }
function gtjGroupControl(ctl, groups, closed, baseLabel) {
  var open = {}, gOf = {}, pos = {}, order = [];
  groups.forEach(function (g) {
    order.push(g[0]);
    open[g[0]] = closed.indexOf(g[0]) < 0;
    g[1].forEach(function (l, i) { gOf[L.stamp(l)] = g[0]; pos[L.stamp(l)] = i; });
  });
  function at(l) { return pos[l.querySelector('input').layerId]; }
  var update = ctl._update;
  ctl._update = function () {
    update.apply(this, arguments);
    var box = this._overlaysList, by = {}, other = [];
    Array.prototype.slice.call(box.children).forEach(function (l) {
      var inp = l.querySelector('input'), g = inp ? gOf[inp.layerId] : undefined;
      if (g === undefined) { other.push(l); return; }
      (by[g] = by[g] || []).push(l);
    });
    while (box.firstChild) { box.removeChild(box.firstChild); }
    order.forEach(function (g) {
      var ls = by[g];
      if (!ls) { return; }
      ls.sort(function (a, b) { return at(a) - at(b); });
      var h = document.createElement('div');
      h.className = 'gtj-grp';
      h.textContent = (open[g] ? '\u25BE ' : '\u25B8 ') + g + ' (' + ls.length + ')';
      L.DomEvent.on(h, 'click', function (e) { L.DomEvent.stop(e); open[g] = !open[g]; ctl._update(); });
      box.appendChild(h);
      ls.forEach(function (l) { l.style.display = open[g] ? '' : 'none'; box.appendChild(l); });
    });
    other.forEach(function (l) { box.appendChild(l); });
    var bl = this._baseLayersList;
    if (bl && bl.firstChild) {
      var bh = document.createElement('div');
      bh.className = 'gtj-grp';
      bh.textContent = baseLabel;
      bl.insertBefore(bh, bl.firstChild);
    }
    return this;
  };
  ctl._update();
}
"""

_SMALL_JS = """
if (gtjSmall()) {
  document.querySelectorAll('details.gtj-panel').forEach(function (d) { d.open = false; });
}
"""


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
    fields = [html.escape(c.field_label(k, lang)) for k in ("unit_name", "population", "facility_name_zh",
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
