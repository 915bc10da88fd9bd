"""Leaflet pieces of the offline problem maps: inlined assets, page CSS and JS, the elements
the map is built from, web geometry (simplified, WGS84 or GCJ-02, rounded, written by GEOS)
and escaped popups. Used by :mod:`geotijian.report.maps`; nothing here is public.

Leaflet 1.9.4 is inlined from ``report/static`` (BSD-2, licence beside it): the map opens
on an intranet with no network. Many points (homes with a coverage gap, facilities) are
drawn by ``GtjDots``, a small canvas layer of our own: one canvas per shown layer, one
path per colour, a hit test on the screen coordinates for tooltips and popups. A
district's 20,000 homes and 8,000 facilities then cost a few milliseconds to draw instead
of 28,000 Leaflet markers (or a markercluster index built for every zoom at load).

Our elements are rendered as plain text (``Raw``, ``Script``), never as a Jinja template:
branca renders a MacroElement's output a second time as a template, which lexed a
district map's megabytes of data and evaluated a name holding ``{{ 7*7 }}``. Every string
that reaches the page from data is HTML-escaped by the caller; here the JSON is made safe
to sit inside a ``<script>`` (no ``</`` can close it).
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

import geopandas as gpd

from .. import settings
from ..errors import LayerError
from ..io.coords import wgs84_to_gcj02
from . import _common as c

STATIC = Path(__file__).with_name("static")


def js_json(value) -> str:
    """JSON for a <script>: no '</' can close the script element."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).replace("</", "<\\/")


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


def script_tag(text: str) -> str:
    if re.search(r"</script", text, flags=re.I):
        raise ValueError("inline script contains '</script'")
    return f"<script>{text}</script>"


def inline_assets(m: folium.Map) -> None:
    """Inline Leaflet's JS/CSS and the page's own CSS and JS into the map's header."""
    header = m.get_root().header
    header.add_child(Raw(f"<style>{_leaflet_css()}</style>"), name="gtj_leaflet_css")
    header.add_child(Raw(script_tag(_read_asset("leaflet.js"))), name="gtj_leaflet_js")
    header.add_child(Raw(f"<style>{CSS}</style>"), name="gtj_css")
    header.add_child(Raw(script_tag(POPUP_JS + DOTS_JS + GROUP_JS)), name="gtj_page_js")


_FONT = '"Noto Sans CJK SC","Microsoft YaHei","PingFang SC",sans-serif'
CSS = """
.gtj-title{position:absolute;top:10px;left:50%;transform:translateX(-50%);z-index:1000;max-width:calc(100vw - 140px);
 background:rgba(255,255,255,.92);padding:6px 14px;border-radius:4px;font:bold 17px/1.3 FONT;
 box-shadow:0 1px 4px rgba(0,0,0,.3)}
.gtj-panel{z-index:1000;background:rgba(255,255,255,.94);padding:5px 9px;border-radius:4px;
 font:12px/1.4 FONT;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.gtj-panel summary{cursor:pointer;font-weight:bold;font-size:12.5px}
.gtj-panel .gtj-body{overflow:auto}
.gtj-legend{position:absolute;bottom:24px;right:10px;max-width:230px}
.gtj-legend .gtj-body{max-height:calc(100vh - 330px);min-height:60px}
.gtj-legend h4{margin:5px 0 1px;font-size:12px}
.gtj-legend .sub{margin-top:2px;color:#444}
.gtj-panel i{display:inline-block;width:14px;height:11px;margin-right:5px;vertical-align:-1px;border:1px solid #555}
.gtj-panel i.pt{border-radius:50%;width:10px;height:10px}
.gtj-panel i.ol{background:transparent;border-width:3px;border-style:solid;width:10px;height:7px}
.gtj-left{position:absolute;top:80px;left:10px;z-index:1000;display:flex;flex-direction:column;gap:6px;
 align-items:flex-start;max-width:min(430px,40vw)}
.gtj-side .gtj-body{max-height:calc(100vh - 330px)}
.gtj-left.both .gtj-side .gtj-body{max-height:calc(60vh - 130px)}
.gtj-side table{border-collapse:collapse;font-size:11.5px;margin-top:3px}
.gtj-side th,.gtj-side td{padding:2px 4px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.gtj-side th{white-space:nowrap;color:#444}
.gtj-side td:nth-child(2){white-space:nowrap}
.gtj-nav .gtj-body{max-height:calc(40vh - 70px);font-size:12.5px;line-height:1.6}
.gtj-nav a{display:block;color:#0b5394;text-decoration:none;white-space:nowrap}
.gtj-nav a:hover{text-decoration:underline}
.gtj-nav a.home{font-weight:bold}
.gtj-nav .here{display:block;font-weight:bold;color:#222}
.gtj-town a{display:inline-block;transform:translate(-50%,-50%);white-space:nowrap;padding:2px 7px;
 border-radius:3px;background:rgba(255,255,255,.88);border:1px solid #555;color:#222;font:bold 13px/1.3 FONT;
 text-decoration:none;box-shadow:0 1px 3px rgba(0,0,0,.3)}
.gtj-town a:hover{background:#fff7e6;color:#b30000}
.leaflet-control-layers{font-size:12.5px;line-height:1.35}
.leaflet-control-layers-expanded{max-width:min(340px,40vw)}
.leaflet-control-layers label{white-space:normal}
.leaflet-control-layers label>span{display:flex;align-items:flex-start}
.leaflet-control-layers-selector{flex:none;margin-right:4px}
.leaflet-control-layers-list{max-height:calc(62vh - 40px);overflow-y:auto;overflow-x:hidden}
.gtj-grp{font-weight:bold;cursor:pointer;margin:4px 0 1px;color:#222;user-select:none}
.gtj-pop{max-height:320px;overflow:auto}
.gtj-pop table{border-collapse:collapse;font-size:12px}
.gtj-pop th{text-align:left;padding:1px 6px 1px 0;color:#444;white-space:nowrap;vertical-align:top}
.gtj-pop td{padding:1px 0;max-width:260px}
.gtj-pop .sg{color:#555}
.gtj-pop .sug{font-size:12px;margin-top:4px;padding:4px;background:#fff7e6;border-left:3px solid #fc8d59;max-height:220px;overflow:auto}
""".replace("FONT", _FONT)

POPUP_JS = """
function gtjRows(fields, v) {
  var rows = '';
  for (var i = 0; i < fields.length; i++) { rows += '<tr><th>' + fields[i] + '</th><td>' + v[i] + '</td></tr>'; }
  return '<table>' + rows + '</table>';
}
function gtjPopup(fields, sugLabel, p) {
  var out = "<div class='gtj-pop'>" + (p.h ? '<b>' + p.h + '</b>' : '') + gtjRows(fields, p.v);
  if (p.s) { out += "<div class='sug'><b>" + sugLabel + ':</b> ' + p.s + '</div>'; }
  return out + '</div>';
}
"""

DOTS_JS = """
var gtjDotLayers = [];
var GtjDots = L.Layer.extend({
  // build() returns {lat, lng, col (colour index per point), colours, alpha, lw, stroke,
  // r(zoom) -> radius px, fixed (r not reduced where many points show), tip(i) -> html,
  // pop(i) -> html}; called when first shown
  initialize: function (build) { this._build = build; this._d = null; },
  data: function () {
    if (!this._d) {
      var d = this._d = this._build(), b = [90, 180, -90, -180];
      for (var i = 0; i < d.lat.length; i++) {
        if (d.lat[i] < b[0]) { b[0] = d.lat[i]; } if (d.lng[i] < b[1]) { b[1] = d.lng[i]; }
        if (d.lat[i] > b[2]) { b[2] = d.lat[i]; } if (d.lng[i] > b[3]) { b[3] = d.lng[i]; }
      }
      this._bb = b;
    }
    return this._d;
  },
  onAdd: function (map) {
    this.data();
    var pane = map.getPane('gtjDots');
    if (!pane) { pane = map.createPane('gtjDots'); pane.style.zIndex = 450; pane.style.pointerEvents = 'none'; }
    this._c = L.DomUtil.create('canvas', 'leaflet-zoom-hide gtj-dots', pane);
    map.on('moveend resize', this._draw, this);
    gtjDotLayers.push(this);
    gtjDotEvents(map);
    this._draw();
    gtjDotsChanged(map);
  },
  onRemove: function (map) {
    L.DomUtil.remove(this._c);
    map.off('moveend resize', this._draw, this);
    gtjDotLayers.splice(gtjDotLayers.indexOf(this), 1);
    gtjDotsChanged(map);
  },
  _draw: function () {
    var map = this._map, d = this._d, size = map.getSize(), dpr = window.devicePixelRatio || 1, c = this._c;
    L.DomUtil.setPosition(c, map.containerPointToLayerPoint([0, 0]));
    c.width = Math.round(size.x * dpr); c.height = Math.round(size.y * dpr);
    c.style.width = size.x + 'px'; c.style.height = size.y + 'px';
    var r = this._r = d.fixed ? d.r(map.getZoom()) : Math.min(d.r(map.getZoom()), gtjDenseR(map));
    var lw = Math.min(d.lw, 0.3 * r);
    var ctx = c.getContext('2d'), n = d.lat.length;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    var sx = this._sx = new Float32Array(n), sy = this._sy = new Float32Array(n), groups = [];
    for (var i = 0; i < n; i++) {
      var p = map.latLngToContainerPoint([d.lat[i], d.lng[i]]);
      sx[i] = p.x; sy[i] = p.y;
      if (p.x < -r || p.y < -r || p.x > size.x + r || p.y > size.y + r) { continue; }
      (groups[d.col[i]] || (groups[d.col[i]] = [])).push(i);
    }
    this.shown = 0;
    for (var k = 0; k < d.colours.length; k++) {  // one path per colour, the last on top
      var ids = groups[k];
      if (!ids) { continue; }
      ctx.beginPath();
      for (var j = 0; j < ids.length; j++) {
        var x = sx[ids[j]], y = sy[ids[j]];
        ctx.moveTo(x + r, y); ctx.arc(x, y, r, 0, 2 * Math.PI);
      }
      ctx.globalAlpha = d.alpha; ctx.fillStyle = d.colours[k]; ctx.fill();
      ctx.globalAlpha = 1;
      if (lw > 0) { ctx.lineWidth = lw; ctx.strokeStyle = d.stroke; ctx.stroke(); }
      this.shown += ids.length;
    }
  },
  hit: function (pt) {  // nearest point under the cursor (screen pixels), or -1
    var best = -1, bd = (this._r + 3) * (this._r + 3), sx = this._sx, sy = this._sy;
    for (var i = 0; i < sx.length; i++) {
      var dx = sx[i] - pt.x, dy = sy[i] - pt.y, q = dx * dx + dy * dy;
      if (q <= bd) { bd = q; best = i; }
    }
    return best;
  },
  openPopup: function (i) {
    var d = this.data();
    L.popup({maxWidth: 400}).setLatLng([d.lat[i], d.lng[i]]).setContent(d.pop(i)).openOn(this._map);
  }
});
function gtjDenseR(map) {
  // the radius (px) at which all points shown on the map would cover GTJ_DOT_COVER of the
  // screen area of their extent: small dots where a district's thousands of points are
  // seen at once (the units stay readable), full size once zoomed in
  var n = 0, b = [90, 180, -90, -180];
  for (var j = 0; j < gtjDotLayers.length; j++) {
    var l = gtjDotLayers[j];
    if (l._map !== map || !l._d.lat.length) { continue; }
    n += l._d.lat.length;
    b = [Math.min(b[0], l._bb[0]), Math.min(b[1], l._bb[1]), Math.max(b[2], l._bb[2]), Math.max(b[3], l._bb[3])];
  }
  if (!n) { return Infinity; }
  var p = map.latLngToContainerPoint([b[0], b[1]]), q = map.latLngToContainerPoint([b[2], b[3]]);
  var area = Math.max(Math.abs(q.x - p.x) * Math.abs(q.y - p.y), 1);
  return Math.max(GTJ_DOT_MIN_R, Math.sqrt(GTJ_DOT_COVER * area / (Math.PI * n)));
}
var GTJ_DOT_COVER = 0.2, GTJ_DOT_MIN_R = 1.3;
function gtjDotsChanged(map) {  // another layer on or off: redraw all once, next frame
  if (map._gtjRedraw) { return; }
  map._gtjRedraw = true;
  L.Util.requestAnimFrame(function () {
    map._gtjRedraw = false;
    gtjDotLayers.forEach(function (l) { if (l._map === map) { l._draw(); } });
  });
}
function gtjFit(map, box) {
  // fit the study into the part of the window the title, the left panels (side table, town
  // maps), the layer control and the legend leave free; where the side table would leave the
  // study under 40 % of the width it starts folded (a click opens it); panels that still would
  // are not made room for (they lie over the map, and fold)
  var s = map.getSize(), tl = [10, 10], br = [10, 30];  // bottom: the scale bar and attribution
  function w(sel) { var e = document.querySelector(sel); return e ? e.offsetLeft + e.offsetWidth + 6 : 0; }
  var t = document.querySelector('.gtj-title');
  if (t) { tl[1] = t.offsetTop + t.offsetHeight + 6; }
  var ctl = document.querySelector('.leaflet-control-layers-expanded'),
      lg = document.querySelector('.gtj-legend[open]');
  var right = Math.max(lg ? lg.offsetWidth + 16 : 0, ctl ? ctl.offsetWidth + 16 : 0);
  var left = w('.gtj-left'), side = document.querySelector('.gtj-side[open]');
  if (side && s.x - left - right < 0.4 * s.x) { side.open = false; left = w('.gtj-left'); }
  if (s.x - left - right >= 0.4 * s.x) { tl[0] = Math.max(tl[0], left); br[0] = Math.max(br[0], right); }
  else if (s.x - right >= 0.4 * s.x) { br[0] = Math.max(br[0], right); }
  map.fitBounds(box, {animate: false, paddingTopLeft: tl, paddingBottomRight: br});
}
function gtjDotEvents(map) {
  if (map._gtjDots) { return; }
  map._gtjDots = true;
  var tip = L.tooltip({direction: 'top', offset: [0, -6]}), cur = null;
  function find(e) {  // the topmost layer's point under the cursor
    for (var j = gtjDotLayers.length - 1; j >= 0; j--) {
      var l = gtjDotLayers[j];
      if (l._map !== map) { continue; }
      var i = l.hit(e.containerPoint);
      if (i >= 0) { return [l, i]; }
    }
    return null;
  }
  map.on('click', function (e) { var h = find(e); if (h) { h[0].openPopup(h[1]); } });
  map.on('mousemove', function (e) {
    var h = find(e), key = h ? L.stamp(h[0]) + ':' + h[1] : null;
    if (key === cur) { return; }
    cur = key;
    map.getContainer().style.cursor = h ? 'pointer' : '';
    if (!h) { map.closeTooltip(tip); return; }
    var d = h[0]._d;
    tip.setLatLng([d.lat[h[1]], d.lng[h[1]]]).setContent(d.tip(h[1]));
    map.openTooltip(tip);
  });
  map.on('mouseout zoomstart', function () { cur = null; map.closeTooltip(tip); });
}
function gtjRadius(big) {
  return function (z) { return (z < 12 ? 2.5 : z < 14 ? 3.5 : 4.5) + (big ? 0.5 : 0); };
}
function gtjFacDots(F) {
  // facilities of one life-circle level: x, y, k (colour index: the type), c (colours),
  // h (name), v (popup values, the type first), f (fields)
  return new GtjDots(function () {
    return {lat: F.y, lng: F.x, col: F.k, colours: F.c, alpha: 0.95, lw: 1.2, stroke: '#ffffff',
            r: gtjRadius(true),
            tip: function (i) { return F.h[i] + ' \u00b7 ' + F.v[i][0]; },
            pop: function (i) { return gtjPopup(F.f, '', {h: F.h[i], v: F.v[i]}); }};
  });
}
function gtjSiteDots(F) {
  // a few points drawn at one size whatever else is shown (new facility sites): x, y, c
  // (one colour), r (radius px), ring, h (name), t (tooltip), v (popup values), f (fields)
  return new GtjDots(function () {
    return {lat: F.y, lng: F.x, col: F.x.map(function () { return 0; }), colours: F.c, alpha: 0.95, lw: 2.5,
            stroke: F.ring, fixed: true, r: function () { return F.r; },
            tip: function (i) { return F.t[i]; },
            pop: function (i) { return gtjPopup(F.f, '', {h: F.h[i], v: F.v[i]}); }};
  });
}
function gtjGapDots(t) {
  // homes with a gap for type t from the gap table gtjGaps (a row per home: x, y, id,
  // unit index, residents, distance per type: 0 covered, -1 none reachable)
  return new GtjDots(function () {
    var D = gtjGaps, lat = [], lng = [], col = [], rows = [];
    for (var i = 0; i < D.rows.length; i++) {
      var r = D.rows[i], d = r[5][t];
      if (d === 0) { continue; }
      var q = d < 0 ? Infinity : d / D.r[t], k = 0;
      while (k < D.b.length && q >= D.b[k]) { k++; }
      lat.push(r[1]); lng.push(r[0]); col.push(k); rows.push(r);
    }
    function dist(d) { return d < 0 ? D.none : d + ' m'; }
    return {lat: lat, lng: lng, col: col, colours: D.c, alpha: 0.85, lw: 0.6, stroke: '#444444',
            r: gtjRadius(false),
            tip: function (i) { return rows[i][2] + ' \u00b7 ' + dist(rows[i][5][t]); },
            pop: function (i) {
              var r = rows[i], all = [];
              for (var j = 0; j < D.n.length; j++) { if (r[5][j] !== 0) { all.push(D.n[j] + ' ' + dist(r[5][j])); } }
              var v = [D.u[r[3]], r[4] < 0 ? '\u2014' : r[4], D.n[t], D.r[t], dist(r[5][t]), all.join('<br>')];
              return "<div class='gtj-pop'><b>" + r[2] + '</b>' + gtjRows(D.f, v) + '</div>';
            }};
  });
}
"""

GROUP_JS = """
function gtjSmall() { return window.innerWidth < 1000 || window.innerHeight < 700; }
function gtjLegendFit() {
  // the legend (bottom right) takes the height the layer control (top right) leaves it
  var ctl = document.querySelector('.leaflet-control-layers'), lg = document.querySelector('.gtj-legend');
  if (!ctl || !lg) { return; }
  var body = lg.querySelector('.gtj-body'), sum = lg.querySelector('summary');
  var room = window.innerHeight - 24 - (ctl.getBoundingClientRect().bottom + 8) - sum.offsetHeight - 16;
  body.style.maxHeight = Math.max(60, room) + 'px';
}
window.addEventListener('resize', gtjLegendFit);
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
      h.textContent = (open[g] ? '\\u25BE ' : '\\u25B8 ') + g + ' (' + ls.length + ')';
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
    gtjLegendFit();
    return this;
  };
  ctl._update();
}
"""

#: Run after the panels: in a small window (an embed, a laptop) they start folded.
SMALL_JS = """
if (gtjSmall()) {
  document.querySelectorAll('details.gtj-panel').forEach(function (d) { d.open = false; });
}
"""


# --------------------------------------------------------------------------- elements

class Raw(Element):
    """Text put in the page as it is.

    branca renders a MacroElement's output a second time as a Jinja template (it wraps it
    in ``Element(text)``): a map's megabytes of data were lexed by Jinja (a third of a
    district map's build time), and a name from the data holding ``{{ 7*7 }}`` came out as
    ``49``. Our elements go through this instead: never a template.
    """

    def __init__(self, text: str):
        super().__init__()
        self._name = "Raw"
        self.text = text

    def render(self, **kwargs) -> str:
        return self.text


P = "\x00parent\x00"  #: the parent layer's name in a Script (never in js_json output: JSON writes \u0000)
V = "\x00self\x00"  #: the element's own JS variable name in a Script


class Script(MacroElement):
    """Page script run in the map's scope, the parent layer's name at ``P``, its own at ``V``.

    Rendered without Jinja (see ``Raw``): the text is already final.
    """

    def __init__(self, code: str, name: str = "Script"):
        super().__init__()
        self._name = name
        self.code = code

    def render(self, **kwargs) -> None:
        parent = self._parent.get_name() if self._parent is not None else ""
        code = self.code.replace(V, self.get_name()).replace(P, parent)
        self.get_root().script.add_child(Raw(code), name=self.get_name())


def geo_data(data: str, *, style: dict, color_keys: Sequence[str], fields: Sequence[str] = (),
             suggestion_label: str = "") -> Script:
    """A GeoJSON FeatureCollection drawn with per-feature colour, popup and tooltip.

    Feature properties: ``c`` colour, ``t`` tooltip, ``v`` popup values, ``h`` popup
    header, ``s`` suggestion (or list of problems), all already HTML-escaped. ``data`` is
    the collection's JSON text, already safe inside a script.
    """
    colour = "".join(f"s[{json.dumps(k)}] = f.properties.c; " for k in color_keys)
    js = (f"var {V} = L.geoJSON({data}, {{\n"
          f"  style: function (f) {{\n    var s = Object.assign({{}}, {json.dumps(style)});\n"
          f"    if (f.properties.c) {{ {colour}}}\n    return s;\n  }},\n"
          "  onEachFeature: function (f, l) {\n"
          "    if (f.properties.v) {\n"
          f"      l.bindPopup(function () {{ return gtjPopup({js_json(list(fields))}, {js_json(suggestion_label)}, "
          "f.properties); }, {maxWidth: 420});\n    }\n"
          "    if (f.properties.t) { l.bindTooltip(f.properties.t, {sticky: true}); }\n  }\n"
          f"}}).addTo({P});")
    return Script(js, "GeoData")


def scale_bar() -> Script:
    """A metric-only scale bar (folium's control_scale adds feet and miles)."""
    return Script(f"L.control.scale({{imperial: false, maxWidth: 160}}).addTo({P});", "ScaleBar")


def attribution(text: str) -> Script:
    return Script(f"{P}.attributionControl.addAttribution({js_json(text)});", "Attribution")


def fit_bounds(box: list[list[float]]) -> Script:
    """Fit the first view clear of the panels (``gtjFit``), not animated: drawn at load, not
    after a zoom transition."""
    return Script(f"gtjFit({P}, {js_json(box)});", "FitBounds")


def facility_dots(data: dict) -> Script:
    """Facilities of one life-circle level as canvas points (``gtjFacDots``)."""
    return Script(f"{P}.addLayer(gtjFacDots({js_json(data)}));", "FacDots")


def site_dots(data: dict) -> Script:
    """A few points at a fixed size (``gtjSiteDots``): the new facility sites of one type."""
    return Script(f"{P}.addLayer(gtjSiteDots({js_json(data)}));", "SiteDots")


def gap_table(data: dict) -> Script:
    """The gap table, once per page (``gtjGaps``)."""
    return Script(f"var gtjGaps = {js_json(data)};", "GapData")


def gap_dots(t: int) -> Script:
    """The homes with a gap for one type (index ``t`` of the gap table)."""
    return Script(f"{P}.addLayer(gtjGapDots({int(t)}));", "GapDots")


def town_labels(rows: list[list]) -> Script:
    """Town names as links to their maps: ``[lat, lng, escaped name, escaped href]`` each."""
    return Script(f"{js_json(rows)}.forEach(function (r) {{ L.marker([r[0], r[1]], {{keyboard: false, "
                  "icon: L.divIcon({className: 'gtj-town', iconSize: null, "
                  "html: \"<a href='\" + r[3] + \"'>\" + r[2] + '</a>'})})"
                  f".addTo({P}); }});", "TownLabels")


class GroupedLayers(MacroElement):
    """Leaflet's layer control with its overlays filed under group headings (评估单元, 设施,
    覆盖缺口, 问题, 热线), each heading folding its group; ``closed`` groups start folded.
    The control starts collapsed to its icon in a small window (< 1000 × 700 px).

    ``groups``: heading -> folium layers, in order. Layer names must already be escaped;
    the control is written as plain text (no Jinja pass: a ``{{ }}`` in a name stays).
    Add it last, after every layer.
    """

    def __init__(self, *, groups: dict[str, list], closed: Sequence[str], base_label: str):
        super().__init__()
        self._name = "LayerControl"
        self.groups = groups
        self.closed = list(closed)
        self.base_label = base_label

    def render(self, **kwargs) -> None:
        base, over = [], []
        for item in self._parent._children.values():
            if isinstance(item, folium.map.Layer) and item.control:
                (over if item.overlay else base).append(f"        {js_json(item.layer_name)} : {item.get_name()},")
        n, parent = self.get_name(), self._parent.get_name()
        groups = "[" + ", ".join(f"[{js_json(g)}, [{', '.join(x.get_name() for x in ls)}]]"
                                 for g, ls in self.groups.items() if ls) + "]"
        code = (f"var {n}_layers = {{\n    base_layers : {{\n" + "\n".join(base) + "\n    },\n"
                "    overlays :  {\n" + "\n".join(over) + "\n    },\n};\n"
                f"let {n} = L.control.layers({n}_layers.base_layers, {n}_layers.overlays,\n"
                f"    {{position: \"topright\", autoZIndex: true, collapsed: gtjSmall()}}).addTo({parent});\n"
                f"gtjGroupControl({n}, {groups}, {js_json(self.closed)}, {js_json(self.base_label)});")
        self.get_root().script.add_child(Raw(code), name=n)


def stable_ids(m: folium.Map) -> None:
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


# --------------------------------------------------------------------------- geometry

#: Layers that tile the district without overlap: simplified as a coverage (shared
#: boundaries simplified once, so neighbours never gap or overlap on screen).
COVERAGE_LAYERS = ("towns", "committees", "units", "blocks")


def simplify_rings(geoms: np.ndarray, tol: float) -> np.ndarray:
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


def to_web(gdf: gpd.GeoDataFrame, *, simplify_m: float, decimals: int, gcj: bool,
           layer: str, max_vertices: int | None = None) -> gpd.GeoDataFrame | None:
    """Simplify (metres), project to WGS84, shift to GCJ-02 if asked, round coordinates.

    With ``max_vertices``: ``None`` when the simplified layer holds more vertices than that
    (told before projecting: the projection keeps every vertex).
    """
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
                       else simplify_rings(g[poly], tol))
        gdf = gdf.set_geometry(gpd.GeoSeries(g, index=gdf.index, crs=gdf.crs))
    if max_vertices is not None and int(shapely.get_num_coordinates(gdf.geometry.to_numpy()).sum()) > max_vertices:
        return None
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


def geojson(web: gpd.GeoDataFrame, props: dict[str, pd.Series]) -> str:
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


# --------------------------------------------------------------------------- popups

class Popup:
    """Popup content of a layer: escaped field labels once, escaped values per feature.

    The page builds each popup's table when it opens (``gtjPopup``), so the labels are
    not repeated in every feature: a district map stays a few megabytes.
    """

    def __init__(self, fields: list[str], props: dict[str, pd.Series], suggestion_label: str):
        self.fields = fields
        self.props = props
        self.suggestion_label = suggestion_label


def popup(df: pd.DataFrame, cols: Sequence[str], lang: str, *, header: pd.Series | None = None,
          suggestion: str | None = None, labels: dict[str, str] | None = None) -> Popup:
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
    return Popup(fields, props, sug_label)


def name_series(df: pd.DataFrame, cols: Sequence[str], fallback: str) -> pd.Series:
    """First non-null of ``cols`` as an escaped label."""
    out = pd.Series(None, index=df.index, dtype=object)
    for col in cols:
        if col in df.columns:
            out = out.where(out.notna(), df[col].astype(object).where(df[col].notna(), None))
    return c.escaped_values(out.where(out.notna(), fallback))


def layer_name(text: str) -> str:
    """A layer name for the layer control: escaped (Leaflet inserts it as HTML)."""
    return html.escape(str(text).replace("\\", "/").replace("\n", " "), quote=True)


# --------------------------------------------------------------------------- coverage gaps

def gap_table_data(gaps: gpd.GeoDataFrame, *, lang: str, gcj: bool, decimals: int,
                   types_label: str, unit_names: dict[str, str] | None = None) -> tuple[dict, list, list]:
    """The gap layer as one compact table for the page: a row per home with a gap.

    ``gaps`` is one row per (home, type) (:func:`geotijian.coverage_gaps`). A district has
    ~300,000 such rows but ~20,000 homes: each home is written once, at a point inside it,
    with its distance to every type in whole metres (0 = covered, -1 = no facility
    reachable) and its unit (``unit_id``, or its name from ``unit_names``) as an
    index into one list, so the page carries each home and each label once instead of
    once per missing type. Returns ``({"data", "bounds"}, types, homes per type)``.
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
    named = gaps["facility_name_zh"].to_numpy() if lang == "zh" and "facility_name_zh" in gaps.columns else None
    for j, t in enumerate(types):
        nm = c.facility_type_name(t, lang)
        if named is not None:   # (the column converted once: ~0.1 s a time on a district's gaps)
            sub = named[ti == j]
            sub = sub[pd.notna(sub)]
            if len(sub):
                nm = str(sub[0])
        names.append(html.escape(nm))
    sub = gaps.iloc[first]
    g = sub.geometry.to_numpy()
    pts = np.where(shapely.get_type_id(g) == 0, g, shapely.point_on_surface(g))
    w = to_web(gpd.GeoDataFrame(geometry=pts, crs=gaps.crs), simplify_m=0, decimals=decimals, gcj=gcj,
               layer="coverage_gaps")
    xy = shapely.get_coordinates(w.geometry.to_numpy())
    if "unit_id" in sub.columns:
        uid = sub["unit_id"].astype(str)
        # a unit by its name where ``unit_names`` has it (looked up once per home, not per gap row)
        unit = c.escaped_values(uid.map(unit_names).where(uid.isin(unit_names.keys()), uid)
                                if unit_names is not None else sub["unit_id"]).to_numpy(dtype=object)
    else:
        unit = np.full(len(sub), "—", dtype=object)
    ucode, ulist = pd.factorize(unit, sort=True)
    pop = (pd.to_numeric(sub["population"], errors="coerce").round(0) if "population" in sub.columns
           else pd.Series(np.nan, index=sub.index))
    rows = pd.DataFrame({"x": np.round(xy[:, 0], decimals), "y": np.round(xy[:, 1], decimals),
                         "id": [html.escape(h, quote=True) for h in homes.astype(str)],
                         "u": ucode, "p": pop.fillna(-1).astype(np.int64).to_numpy()})
    rows["d"] = dist.tolist()
    fields = [html.escape(c.field_label(k, lang)) for k in ("unit_name", "population", "facility_name_zh",
                                                             "walk_distance_m", "distance_m")]
    fields.append(html.escape(types_label))  # every type the home misses
    data = {"c": list(c.GAP_COLORS), "b": list(c.GAP_RATIO_BREAKS), "r": [float(r) for r in rad],
            "n": names, "f": fields, "u": list(ulist), "rows": rows.to_numpy().tolist(),
            "none": "∞" if lang == "zh" else "none reachable"}
    counts = (dist != 0).sum(axis=0).tolist()
    return {"data": data, "bounds": w.total_bounds}, types, counts
