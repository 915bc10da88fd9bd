"""QGIS layer styles (QML) for the study layers, stored in the GeoPackage ``layer_styles``.

QGIS opens a GeoPackage layer with the row of ``layer_styles`` whose ``useAsDefault`` is
true: units as a choropleth of population density, problems by class (限时解决 red,
尽力解决 orange, 长期谋划 blue), facilities by type, coverage gaps by distance over the
service radius, hot spots by z-score; field aliases in Chinese. The colours are the ones
of the interactive map and of the static figures.

The QML is generated (``layer_qml``) rather than shipped as fixed files because the
categories (facility types present, problem classes) and class breaks depend on the data;
``xml.etree`` escapes every value taken from data.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import matplotlib
import numpy as np
import pandas as pd

import geopandas as gpd

from . import _common as c

__all__ = ["layer_qml", "quantile_breaks", "QGIS_VERSION"]

QGIS_VERSION = "3.34.0-Prizren"  # the LTR the styles were written for; newer QGIS reads them

_GEOM_KIND = {"Point": "marker", "MultiPoint": "marker", "LineString": "line",
              "MultiLineString": "line", "Polygon": "fill", "MultiPolygon": "fill"}
_LAYER_GEOM_TYPE = {"marker": "0", "line": "1", "fill": "2"}


def _rgba(hex_color: str, alpha: float = 1.0) -> str:
    r, g, b = (int(round(v * 255)) for v in matplotlib.colors.to_rgb(hex_color))
    return f"{r},{g},{b},{int(round(alpha * 255))}"


def _opt(parent: ET.Element, options: dict[str, str]) -> None:
    m = ET.SubElement(parent, "Option", type="Map")
    for k, v in options.items():
        ET.SubElement(m, "Option", type="QString", name=k, value=str(v))


def _symbol(kind: str, name: str, color: str, *, fill_alpha: float = 1.0, outline: str = "#232323",
            width: float = 0.26, no_fill: bool = False, dash: bool = False,
            size: float = 2.4) -> ET.Element:
    sym = ET.Element("symbol", type=kind, name=name, alpha="1", clip_to_extent="1",
                     force_rhr="0", frame_rate="10", is_animated="0")
    if kind == "fill":
        lyr = ET.SubElement(sym, "layer", {"class": "SimpleFill", "enabled": "1", "pass": "0",
                                           "locked": "0"})
        _opt(lyr, {"color": _rgba(color, fill_alpha), "style": "no" if no_fill else "solid",
                   "outline_color": _rgba(outline), "outline_style": "dash" if dash else "solid",
                   "outline_width": f"{width:g}", "outline_width_unit": "MM",
                   "joinstyle": "bevel", "offset": "0,0", "offset_unit": "MM"})
    elif kind == "line":
        lyr = ET.SubElement(sym, "layer", {"class": "SimpleLine", "enabled": "1", "pass": "0",
                                           "locked": "0"})
        _opt(lyr, {"line_color": _rgba(color), "line_style": "dash" if dash else "solid",
                   "line_width": f"{width:g}", "line_width_unit": "MM", "capstyle": "square",
                   "joinstyle": "bevel"})
    else:
        lyr = ET.SubElement(sym, "layer", {"class": "SimpleMarker", "enabled": "1", "pass": "0",
                                           "locked": "0"})
        _opt(lyr, {"name": "circle", "color": _rgba(color, fill_alpha),
                   "outline_color": _rgba(outline), "outline_style": "solid",
                   "outline_width": f"{width:g}", "outline_width_unit": "MM",
                   "size": f"{size:g}", "size_unit": "MM", "angle": "0",
                   "scale_method": "diameter"})
    return sym


def _renderer_single(kind: str, sym: ET.Element) -> ET.Element:
    r = ET.Element("renderer-v2", type="singleSymbol", symbollevels="0", enableorderby="0",
                   forceraster="0", referencescale="-1")
    syms = ET.SubElement(r, "symbols")
    sym.set("name", "0")
    syms.append(sym)
    return r


def _renderer_categorized(kind: str, attr: str, cats: list[tuple[str, str, ET.Element]],
                          fallback: ET.Element) -> ET.Element:
    r = ET.Element("renderer-v2", type="categorizedSymbol", attr=attr, symbollevels="0",
                   enableorderby="0", forceraster="0", referencescale="-1")
    ce = ET.SubElement(r, "categories")
    syms = ET.SubElement(r, "symbols")
    for i, (value, label, sym) in enumerate(cats):
        ET.SubElement(ce, "category", symbol=str(i), value=value, label=label, render="true",
                      type="string", uuid=f"{{cat-{i}}}")
        sym.set("name", str(i))
        syms.append(sym)
    src = ET.SubElement(r, "source-symbol")
    fallback.set("name", "0")
    src.append(fallback)
    return r


def _renderer_graduated(kind: str, expr: str, ranges: list[tuple[float, float, str, ET.Element]],
                        method: str) -> ET.Element:
    r = ET.Element("renderer-v2", type="graduatedSymbol", attr=expr, graduatedMethod="GraduatedColor",
                   symbollevels="0", enableorderby="0", forceraster="0", referencescale="-1")
    re_ = ET.SubElement(r, "ranges")
    syms = ET.SubElement(r, "symbols")
    for i, (lo, hi, label, sym) in enumerate(ranges):
        ET.SubElement(re_, "range", symbol=str(i), lower=f"{lo:.6f}", upper=f"{hi:.6f}",
                      label=label, render="true", uuid=f"{{rng-{i}}}")
        sym.set("name", str(i))
        syms.append(sym)
    ET.SubElement(r, "mode", name=method)
    return r


def _kind(gdf: gpd.GeoDataFrame) -> str:
    types = gdf.geometry.geom_type.dropna().unique()
    kinds = {_GEOM_KIND.get(t, "fill") for t in types}
    if len(kinds) == 1:
        return kinds.pop()
    if "marker" in kinds:  # mixed points and areas (facilities): draw as markers
        return "marker"
    return "fill" if "fill" in kinds else "line"


def _ramp(n: int, cmap: str = "YlOrRd") -> list[str]:
    cm = matplotlib.colormaps[cmap]
    if n <= 1:
        return [matplotlib.colors.to_hex(cm(0.6))]
    return [matplotlib.colors.to_hex(cm(0.12 + 0.83 * i / (n - 1))) for i in range(n)]


def quantile_breaks(y: np.ndarray, k: int) -> np.ndarray:
    """Upper bounds of ``k`` quantile classes of ``y`` (ties merged): the bins of
    mapclassify's ``Quantiles``, to the last bit, in numpy.

    mapclassify takes each bound from ``scipy.stats.scoreatpercentile`` (the sorted values
    at ``p / 100 * (n - 1)``, the two neighbours weighted by their distance to it and the sum
    divided by the weights' sum); the same arithmetic here, for every bound at once. Not
    ``np.percentile``: it interpolates otherwise and can differ in the last bit, which a
    bound written to six decimals may show. mapclassify itself compiles numba kernels at
    import: seconds, when all a style needs is five numbers.
    """
    w = 100.0 / k
    p = np.arange(w, 100 + w, w)
    if p[-1] > 100.0:
        p[-1] = 100.0
    a = np.sort(np.asarray(y, dtype=float))
    idx = p / 100.0 * (len(a) - 1)
    i = idx.astype(np.int64)
    exact = i == idx
    j = np.minimum(i + 1, len(a) - 1)
    w0, w1 = (i + 1) - idx, idx - i
    q = np.where(exact, a[i], (a[i] * w0 + a[j] * w1) / (w0 + w1))
    return np.unique(q)


def _num(label: float) -> str:
    return c.format_values(pd.Series([label])).iloc[0]


def layer_qml(name: str, gdf: gpd.GeoDataFrame, *, aliases: dict[str, str] | None = None,
              lang: str = "zh", type_colors: dict[str, str] | None = None) -> str:
    """QML style text for one study layer.

    Parameters
    ----------
    name : str
        Layer name in the study (``units``, ``problems`` ...): picks the renderer.
    gdf : GeoDataFrame
        The layer as written (ASCII field names), for categories and class breaks.
    aliases : dict, optional
        Field name → alias written in the ``<aliases>`` section (Chinese field names).
    lang : {"zh", "en"}
        Language of category labels.
    type_colors : dict, optional
        Facility type → colour (``_common.study_type_colors``), so QGIS shows the colours
        of the web map; default: colours by order of the types in this layer.
    """
    kind = _kind(gdf) if len(gdf) else "fill"
    renderer = None
    if name == "boundary":
        renderer = _renderer_single(kind, _symbol(kind, "0", "#222222", no_fill=True,
                                                  outline="#222222", width=0.8, dash=True))
    elif name in ("towns", "committees"):
        renderer = _renderer_single(kind, _symbol(kind, "0", "#555555", no_fill=True,
                                                  outline="#555555",
                                                  width=0.6 if name == "towns" else 0.3))
    elif name == "units" and {"population", "area_ha"} <= set(gdf.columns) and len(gdf):
        area = pd.to_numeric(gdf["area_ha"], errors="coerce")
        y = (pd.to_numeric(gdf["population"], errors="coerce") / area.where(area > 0)).to_numpy(float)
        y = y[np.isfinite(y)]
        if len(np.unique(y)) >= 2:
            bins = quantile_breaks(y, int(min(5, len(np.unique(y)))))
            cols = _ramp(len(bins))
            lows = [float(y.min())] + [float(b) for b in bins[:-1]]
            ranges = [(lo, float(hi), f"{_num(lo)} – {_num(hi)}",
                       _symbol(kind, "0", col, fill_alpha=0.75, outline="#ffffff", width=0.3))
                      for lo, hi, col in zip(lows, bins, cols)]
            renderer = _renderer_graduated(kind, '"population" / "area_ha"', ranges, "quantile")
    elif name == "problems" and "problem_class" in gdf.columns:
        cats = [(cl, c.problem_class_label(cl, lang),
                 _symbol(kind, "0", c.PROBLEM_COLORS.get(cl, c.OTHER_COLOR), fill_alpha=0.3,
                         outline=c.PROBLEM_COLORS.get(cl, c.OTHER_COLOR), width=0.8, dash=True,
                         size=3.2))
                for cl in c.ordered_classes(gdf["problem_class"])]
        renderer = _renderer_categorized(kind, "problem_class", cats,
                                         _symbol(kind, "0", c.OTHER_COLOR, fill_alpha=0.3))
    elif name == "coverage_gaps" and "worst_ratio" in gdf.columns:
        # the compact layer (a row per home, gpkg.write_gpkg): coloured by its worst gap
        edges = [1.0, *c.GAP_RATIO_BREAKS, 1e9]
        ranges = [(edges[i], edges[i + 1],
                   (f"{edges[i]:g} – {edges[i + 1]:g}" if i + 2 < len(edges) else f"> {edges[i]:g}")
                   + (" 倍服务半径" if lang == "zh" else " × radius"),
                   _symbol(kind, "0", col, outline="#444444", width=0.2))
                  for i, col in enumerate(c.GAP_COLORS)]
        renderer = _renderer_graduated(kind, '"worst_ratio"', ranges, "fixed")
    elif name in ("facilities", "service_areas", "coverage_gaps") and (
            "type" in gdf.columns or "facility_type" in gdf.columns):
        attr = "type" if name == "facilities" else "facility_type"
        types = c.ordered_types(gdf[attr])
        tcol = {**c.type_colors(types), **(type_colors or {})}
        if name == "coverage_gaps" and {"distance_m", "walk_distance_m"} <= set(gdf.columns):
            edges = [1.0, *c.GAP_RATIO_BREAKS, 1e9]
            ranges = [(edges[i], edges[i + 1],
                       (f"{edges[i]:g} – {edges[i + 1]:g}" if i + 2 < len(edges)
                        else f"> {edges[i]:g}") + (" 倍服务半径" if lang == "zh" else " × radius"),
                       _symbol(kind, "0", col, outline="#444444", width=0.2))
                      for i, col in enumerate(c.GAP_COLORS)]
            renderer = _renderer_graduated(kind, '"distance_m" / "walk_distance_m"', ranges,
                                           "fixed")
        else:
            cats = [(t, c.facility_type_name(t, lang),
                     _symbol(kind, "0", tcol[t], fill_alpha=0.15 if kind == "fill" else 1.0,
                             outline=tcol[t] if kind == "fill" else "#ffffff",
                             width=0.5 if kind == "fill" else 0.2))
                    for t in types]
            renderer = _renderer_categorized(kind, attr, cats, _symbol(kind, "0", c.OTHER_COLOR))
    elif name == "hotspots" and "z_score" in gdf.columns:
        edges = [-1e9, -2.58, -1.96, 1.96, 2.58, 1e9]
        colors = ["#2166ac", "#67a9cf", "#f7f7f7", "#ef8a62", "#b2182b"]
        labels = (["冷点 p<0.01", "冷点 p<0.05", "不显著", "热点 p<0.05", "热点 p<0.01"]
                  if lang == "zh" else ["cold p<0.01", "cold p<0.05", "not significant",
                                        "hot p<0.05", "hot p<0.01"])
        ranges = [(edges[i], edges[i + 1], labels[i],
                   _symbol(kind, "0", colors[i], fill_alpha=0.6, outline="#999999", width=0.1))
                  for i in range(5)]
        renderer = _renderer_graduated(kind, "z_score", ranges, "fixed")
    if renderer is None:
        color = {"parks": "#74c476", "greenways": "#31a354", "water": "#6baed6", "roads": "#636363", "rail": "#252525",
                 "compounds": "#fdae6b", "blocks": "#bdbdbd", "buildings": "#969696"}.get(
                     name, "#9e9ac8")
        renderer = _renderer_single(kind, _symbol(kind, "0", color, fill_alpha=0.5,
                                                  outline="#636363", width=0.26))

    root = ET.Element("qgis", version=QGIS_VERSION, styleCategories="Symbology|Fields")
    root.append(renderer)
    if aliases:
        al = ET.SubElement(root, "aliases")
        for i, (field, alias) in enumerate(aliases.items()):
            ET.SubElement(al, "alias", field=field, index=str(i), name=alias)
    ET.SubElement(root, "layerGeometryType").text = _LAYER_GEOM_TYPE[kind]
    body = ET.tostring(root, encoding="unicode")
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + body + "\n"
