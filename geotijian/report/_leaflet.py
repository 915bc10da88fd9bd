"""Leaflet pieces of the offline problem maps: inlined assets, page CSS and JS, folium elements.

Leaflet 1.9.4 is inlined from ``report/static`` (BSD-2, licence beside it): the map opens
on an intranet with no network. Many points (homes with a coverage gap, facilities) are
drawn by ``GtjDots``, a small canvas layer of our own: one canvas per shown layer, one
path per colour, a hit test on the screen coordinates for tooltips and popups. A
district's 20,000 homes and 8,000 facilities then cost a few milliseconds to draw instead
of 28,000 Leaflet markers (or a markercluster index built for every zoom at load).

Every string that reaches the page from data is HTML-escaped by the caller; here the
JSON is made safe to sit inside a ``<script>`` (no ``</`` can close it).
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Sequence
from pathlib import Path

import folium
from branca.element import Element, MacroElement

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


def _script(text: str) -> str:
    if re.search(r"</script", text, flags=re.I):
        raise ValueError("inline script contains '</script'")
    return f"<script>{text}</script>"


def inline_assets(m: folium.Map) -> None:
    """Inline Leaflet's JS/CSS and the page's own CSS and JS into the map's header."""
    header = m.get_root().header
    header.add_child(Raw(f"<style>{_leaflet_css()}</style>"), name="gtj_leaflet_css")
    header.add_child(Raw(_script(_read_asset("leaflet.js"))), name="gtj_leaflet_js")
    header.add_child(Raw(f"<style>{CSS}</style>"), name="gtj_css")
    header.add_child(Raw(_script(POPUP_JS + DOTS_JS)), name="gtj_page_js")


CSS = """
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
.gtj-legend>b{cursor:pointer;display:block}.gtj-legend>b:after{content:" ▾";color:#777}
.gtj-legend.shut>:not(b){display:none}.gtj-legend.shut>b:after{content:" ▸"}
.gtj-nav{position:absolute;top:80px;left:10px;z-index:1000;max-width:180px;max-height:50vh;overflow:auto;
 background:rgba(255,255,255,.94);padding:6px 9px;border-radius:4px;font:12.5px/1.6
 "Noto Sans CJK SC","Microsoft YaHei",sans-serif;box-shadow:0 1px 4px rgba(0,0,0,.3)}
.gtj-nav a{display:block;color:#0b5394;text-decoration:none;white-space:nowrap}
.gtj-nav a:hover{text-decoration:underline}.gtj-nav b{display:block}
.gtj-nav .here{display:block;font-weight:bold;color:#222}
.gtj-town a{display:inline-block;transform:translate(-50%,-50%);white-space:nowrap;padding:2px 7px;
 border-radius:3px;background:rgba(255,255,255,.88);border:1px solid #555;color:#222;font:bold 13px/1.3
 "Noto Sans CJK SC","Microsoft YaHei",sans-serif;text-decoration:none;box-shadow:0 1px 3px rgba(0,0,0,.3)}
.gtj-town a:hover{background:#fff7e6;color:#b30000}
.leaflet-control-layers{font-size:12.5px;line-height:1.35;max-height:55vh;overflow:auto}
.gtj-pop{max-height:320px;overflow:auto}
.gtj-pop table{border-collapse:collapse;font-size:12px}
.gtj-pop th{text-align:left;padding:1px 6px 1px 0;color:#444;white-space:nowrap;vertical-align:top}
.gtj-pop td{padding:1px 0;max-width:260px}
.gtj-pop .rec{margin-top:5px;padding-top:4px;border-top:1px solid #ddd}
.gtj-pop .sug{margin-top:4px;padding:4px;background:#fff7e6;border-left:3px solid #fc8d59}
"""

POPUP_JS = """
function gtjRows(fields, v) {
  var rows = '';
  for (var i = 0; i < fields.length; i++) { rows += '<tr><th>' + fields[i] + '</th><td>' + v[i] + '</td></tr>'; }
  return '<table>' + rows + '</table>';
}
function gtjPopup(fields, sugLabel, p) {
  var out = "<div class='gtj-pop'>" + (p.h ? '<b>' + p.h + '</b>' : '');
  if (p.m) {  // several records in one feature (the problems of one area): a table each
    for (var k = 0; k < p.m.length; k++) {
      out += "<div class='rec'>" + gtjRows(fields, p.m[k]);
      if (p.s && p.s[k]) { out += "<div class='sug'><b>" + sugLabel + ':</b> ' + p.s[k] + '</div>'; }
      out += '</div>';
    }
  } else {
    out += gtjRows(fields, p.v);
    if (p.s) { out += "<div class='sug'><b>" + sugLabel + ':</b> ' + p.s + '</div>'; }
  }
  return out + '</div>';
}
"""

DOTS_JS = """
var gtjDotLayers = [];
var GtjDots = L.Layer.extend({
  // build() returns {lat, lng, col (colour index per point), colours, alpha, lw, stroke,
  // r(zoom) -> radius px, tip(i) -> html, pop(i) -> html}; called when first shown
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
    var r = this._r = Math.min(d.r(map.getZoom()), gtjDenseR(map)), lw = Math.min(d.lw, 0.3 * r);
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
  // fit the study into the part of the window the title, town list and legend leave free
  var s = map.getSize(), tl = [10, 10], br = [10, 30];  // bottom: the scale bar and attribution
  var t = document.querySelector('.gtj-title'), n = document.querySelector('.gtj-nav'),
      g = document.querySelector('.gtj-legend');
  if (t) { tl[1] = t.offsetTop + t.offsetHeight + 6; }
  if (n) { tl[0] = n.offsetLeft + n.offsetWidth + 6; }
  if (g && !g.classList.contains('shut')) {
    if (s.x - tl[0] - g.offsetWidth - 16 >= 0.4 * s.x) { br[0] = g.offsetWidth + 16; }
    else { g.classList.add('shut'); }  // a narrow window: the legend folds to its title
  }
  map.fitBounds(box, {animate: false, paddingTopLeft: tl, paddingBottomRight: br});
}
function gtjLegendToggle() {
  var g = document.querySelector('.gtj-legend');
  if (g) { g.querySelector('b').addEventListener('click', function () { g.classList.toggle('shut'); }); }
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
  // one facility type: x, y, h (name), v (popup values), f (fields), c (colour)
  return new GtjDots(function () {
    return {lat: F.y, lng: F.x, col: new Uint8Array(F.x.length), colours: [F.c], alpha: 0.95, lw: 1.2,
            stroke: '#ffffff', r: gtjRadius(true),
            tip: function (i) { return F.h[i]; },
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
            tip: function (i) { return rows[i][2] + ' · ' + dist(rows[i][5][t]); },
            pop: function (i) {
              var r = rows[i], all = [];
              for (var j = 0; j < D.n.length; j++) { if (r[5][j] !== 0) { all.push(D.n[j] + ' ' + dist(r[5][j])); } }
              var v = [D.u[r[3]], r[4] < 0 ? '—' : r[4], D.n[t], D.r[t], dist(r[5][t]), all.join('<br>')];
              return "<div class='gtj-pop'><b>" + r[2] + '</b>' + gtjRows(D.f, v) + '</div>';
            }};
  });
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


V = "\x00self\x00"  #: the element's own JS variable name in a Script


def geo_data(data: str, *, style: dict, color_keys: Sequence[str], fields: Sequence[str] = (),
             suggestion_label: str = "") -> Script:
    """A GeoJSON FeatureCollection drawn with per-feature colour, popup and tooltip.

    Feature properties: ``c`` colour, ``t`` tooltip, ``v`` popup values (or ``m``, a list
    of records), ``h`` popup header, ``s`` suggestion(s), all already HTML-escaped.
    ``data`` is the collection's JSON text, already safe inside a script.
    """
    colour = "".join(f"s[{json.dumps(k)}] = f.properties.c; " for k in color_keys)
    js = (f"var {V} = L.geoJSON({data}, {{\n"
          f"  style: function (f) {{\n    var s = Object.assign({{}}, {json.dumps(style)});\n"
          f"    if (f.properties.c) {{ {colour}}}\n    return s;\n  }},\n"
          "  onEachFeature: function (f, l) {\n"
          "    if (f.properties.v || f.properties.m) {\n"
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


def facility_dots(data: dict) -> Script:
    """One facility type as canvas points (``gtjFacDots``)."""
    return Script(f"{P}.addLayer(gtjFacDots({js_json(data)}));", "FacDots")


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
