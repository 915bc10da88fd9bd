"""Static maps for the printed report (PNG/PDF/SVG): units choropleth, coverage gaps (the problem
figures: :mod:`geotijian.report.problem_figures`).

Each figure has a title, a legend, a scale bar (metres, in the study's metric CRS) and a
north arrow, with Chinese labels set in a CJK font found on the system (Noto Sans CJK,
Source Han Sans, WenQuanYi ... via matplotlib's font manager and ``fc-list``); without one
a warning says what to install (Debian ``fonts-noto-cjk``). Output is deterministic: no
date or software metadata, fixed SVG ids, fixed pixel size (``size_in × dpi``).
"""

from __future__ import annotations

import contextlib
import functools
import re
import shutil
import struct
import subprocess
import warnings
import zlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg", force=False)

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.collections import LineCollection  # noqa: E402
from matplotlib.lines import Line2D  # noqa: E402
from matplotlib.patches import Patch, PathPatch, Rectangle  # noqa: E402
from matplotlib.path import Path as MplPath  # noqa: E402
import shapely  # noqa: E402

import geopandas as gpd  # noqa: E402

from ..errors import LayerError  # noqa: E402
from ..io.atomic import atomic_path  # noqa: E402
from ..model import StudyData  # noqa: E402
from . import _common as c  # noqa: E402
from ._agg import Backdrop, BackdropMark, BackdropPatch, SharedRendererCanvas  # noqa: E402
from .maps import _classify, _ramp, _unit_indicator  # noqa: E402

__all__ = ["find_cjk_font", "units_figure", "coverage_gap_figure", "save_figures", "FigureWarning"]

PREFERRED_CJK = ("Noto Sans CJK SC", "Source Han Sans SC", "Noto Sans SC", "Source Han Sans CN",
                 "WenQuanYi Zen Hei", "WenQuanYi Micro Hei", "Microsoft YaHei", "SimHei",
                 "PingFang SC", "Heiti SC", "Noto Serif CJK SC", "AR PL UMing CN",
                 "Noto Sans CJK JP", "Noto Sans CJK TC")


#: zlib level of the PNG figures: 1 is the fastest; unfiltered maps come out smaller than
#: Pillow's filtered level 3 (see ``_png_bytes``)
PNG_ZLIB_LEVEL = 1


class FigureWarning(UserWarning):
    """A static figure was drawn with a degraded setting (e.g. no CJK font)."""


@functools.lru_cache(maxsize=1)
def find_cjk_font() -> str | None:
    """Family name of a font with Chinese glyphs, or ``None`` when none is installed.

    Looks in matplotlib's font list first; fonts installed after matplotlib built its
    cache are found with ``fc-list :lang=zh`` and registered for this session.
    """
    known = {f.name for f in font_manager.fontManager.ttflist}
    for name in PREFERRED_CJK:
        if name in known:
            return name
    fc = shutil.which("fc-list")
    if fc is None:
        return None
    try:
        out = subprocess.run([fc, ":lang=zh", "file"], capture_output=True, text=True,
                             timeout=30, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    files = sorted({line.split(":")[0].strip() for line in out.splitlines() if line.strip()})
    before = {f.name for f in font_manager.fontManager.ttflist}
    for f in files[:12]:
        with contextlib.suppress(Exception):
            font_manager.fontManager.addfont(f)
    after = {f.name for f in font_manager.fontManager.ttflist}
    for name in PREFERRED_CJK:
        if name in after:
            return name
    new = sorted(after - before)
    return new[0] if new else None


@contextlib.contextmanager
def _style(lang: str) -> Iterator[None]:
    font = find_cjk_font()
    if font is None and lang == "zh":
        warnings.warn("no CJK font found: Chinese labels will render as boxes; install one "
                      "(Debian: apt-get install fonts-noto-cjk)", FigureWarning, stacklevel=4)
    family = ([font] if font else []) + ["DejaVu Sans"]
    with warnings.catch_warnings(), plt.rc_context({"font.family": "sans-serif", "font.sans-serif": family,
                         "axes.unicode_minus": False, "svg.hashsalt": "geotijian",
                         "svg.fonttype": "path", "path.simplify": True}):
        if font is None:  # already said once above; not one warning per missing glyph
            warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font")
        yield


# --------------------------------------------------------------------------- drawing
# A district has tens of thousands of polygons: each colour class is drawn as ONE compound
# path (one PathPatch), lines as one LineCollection, points as one scatter; never one
# matplotlib artist per feature. Rings are oriented (exteriors counter-clockwise, holes
# clockwise), so holes stay holes under either fill rule.

def _oriented_rings(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every ring of the (multi)polygons in ``geoms``, oriented, as one path's arrays.

    Returns the vertices ``(n, 2)``, their path codes (MOVETO at a ring's start, CLOSEPOLY at
    its end) and the index in ``geoms`` of each vertex's feature. Exteriors run
    counter-clockwise and holes clockwise, as ``shapely.orient_polygons`` makes them (the
    same vertex order), but from one coordinate array in numpy: the signed area of every
    ring by the shoelace formula, and a reversed order for the rings that run the wrong way.

    The coordinates are read in one ``get_coordinates`` call (exterior, then the holes, of
    each polygon in turn); a ring's length is its polygon's for a polygon without holes, and
    only the polygons with holes are split into rings (GEOS copies what it splits: a
    district's ~300,000 gap polygons in 0.2 s instead of 0.8 s).
    """
    g = np.asarray(geoms, dtype=object)
    if (shapely.get_type_id(g) == 3).all():
        polys, feat = g, np.arange(len(g))
    else:
        polys, feat = shapely.get_parts(g, return_index=True)
        keep = shapely.get_type_id(polys) == 3
        polys, feat = polys[keep], feat[keep]
    keep = ~shapely.is_empty(polys)
    if not keep.all():
        polys, feat = polys[keep], feat[keep]
    if not len(polys):
        return np.empty((0, 2)), np.empty(0, dtype=MplPath.code_type), np.empty(0, dtype=np.intp)
    n_int = shapely.get_num_interior_rings(polys)
    poly_off = np.zeros(len(polys) + 1, dtype=np.intp)  # first ring of every polygon
    np.cumsum(1 + n_int, out=poly_off[1:])
    n_ring = np.empty(poly_off[-1], dtype=np.intp)      # vertices of every ring
    holed = n_int > 0
    n_ring[poly_off[:-1][~holed]] = shapely.get_num_coordinates(polys[~holed])
    if holed.any():
        n_ring[np.repeat(holed, 1 + n_int)] = shapely.get_num_coordinates(shapely.get_rings(polys[holed]))
    xy = shapely.get_coordinates(polys)
    ring_off = np.zeros(len(n_ring) + 1, dtype=np.intp)
    np.cumsum(n_ring, out=ring_off[1:])
    ring = np.repeat(np.arange(len(n_ring)), n_ring)  # ring of every vertex
    # shoelace per ring, about the centre of the data (no cancellation of large coordinates)
    q = xy - xy.mean(axis=0)
    cross = q[:-1, 0] * q[1:, 1]
    cross -= q[1:, 0] * q[:-1, 1]
    cross[ring_off[1:-1] - 1] = 0.0  # the pairs that bridge two rings
    area = np.bincount(ring[:-1], weights=cross, minlength=len(n_ring))
    exterior = np.zeros(len(n_ring), dtype=bool)
    exterior[poly_off[:-1]] = True
    flip = np.where(exterior, area < 0, area > 0)
    if flip.any():
        fr = np.flatnonzero(flip)
        idx = np.arange(len(xy))
        rev = np.repeat(flip, n_ring)
        idx[rev] = (np.repeat(ring_off[:-1][fr] + ring_off[1:][fr] - 1, n_ring[fr]) - idx[rev])
        xy = xy[idx]
    codes = np.full(len(xy), MplPath.LINETO, dtype=MplPath.code_type)
    codes[ring_off[:-1][n_ring > 0]] = MplPath.MOVETO
    codes[ring_off[1:][n_ring > 0] - 1] = MplPath.CLOSEPOLY
    poly_of_ring = np.repeat(np.arange(len(polys)), 1 + n_int)
    return xy, codes, feat[poly_of_ring[ring]]


def _compound_path(geoms: np.ndarray) -> MplPath | None:
    """Every ring of the (multi)polygons in ``geoms`` as one matplotlib path."""
    xy, codes, _ = _oriented_rings(geoms)
    return MplPath(xy, codes) if len(xy) else None


def _draw_polygons(ax: plt.Axes, geoms: Any, *, facecolor: Any, edgecolor: str = "none",
                   linewidth: float = 0.0, alpha: float | None = None, zorder: float = 1,
                   linestyle: Any = "-") -> None:
    """Fill (multi)polygons, one compound path per distinct face colour.

    ``facecolor`` is one colour or one per geometry (aligned with ``geoms``).
    """
    g = np.asarray(geoms, dtype=object)
    if not len(g):
        return
    fc = np.asarray(facecolor, dtype=object) if not isinstance(facecolor, str) else None
    groups = [(facecolor, g)] if fc is None else [(col, g[fc == col]) for col in sorted(set(fc.tolist()))]
    for col, part in groups:
        path = _compound_path(part)
        if path is not None:
            # add_artist, not add_patch: the map extent is set beforehand (_base), and
            # add_patch walks every vertex in Python to update the data limits
            ax.add_artist(PathPatch(path, facecolor=col, edgecolor=edgecolor, linewidth=linewidth,
                                    alpha=alpha, zorder=zorder, linestyle=linestyle))


def _draw_lines(ax: plt.Axes, geoms: Any, *, color: str, linewidth: float, zorder: float,
                linestyle: Any = "-") -> None:
    """Outlines (or any lines) as one LineCollection."""
    g = np.asarray(geoms, dtype=object)
    parts = shapely.get_parts(g[~shapely.is_empty(g)]) if len(g) else g
    if not len(parts):
        return
    xy, li = shapely.get_coordinates(parts, return_index=True)
    segs = np.split(xy, np.flatnonzero(np.diff(li)) + 1)
    ax.add_collection(LineCollection(segs, colors=color, linewidths=linewidth, linestyles=linestyle,
                                     zorder=zorder, capstyle="projecting"))


def _draw_points(ax: plt.Axes, geoms: Any, *, color: Any, size: float, edgecolor: str,
                 linewidth: float, zorder: float, marker: str = "o") -> None:
    g = np.asarray(geoms, dtype=object)
    if not len(g):
        return
    xy = shapely.get_coordinates(g)
    ax.scatter(xy[:, 0], xy[:, 1], s=size, c=color, edgecolors=edgecolor, linewidths=linewidth,
               zorder=zorder, marker=marker)


def _draw(ax: plt.Axes, geoms: Any, *, facecolor: Any, edgecolor: str, linewidth: float,
          zorder: float, alpha: float | None = None, markersize: float = 22) -> None:
    """Polygons as compound paths, points as a scatter (a gap layer may hold either)."""
    g = np.asarray(geoms, dtype=object)
    is_pt = shapely.get_type_id(g) == 0
    fc = facecolor if isinstance(facecolor, str) else np.asarray(facecolor, dtype=object)
    if (~is_pt).any():
        _draw_polygons(ax, g[~is_pt], facecolor=fc if isinstance(fc, str) else fc[~is_pt],
                       edgecolor=edgecolor, linewidth=linewidth, alpha=alpha, zorder=zorder)
    if is_pt.any():
        _draw_points(ax, g[is_pt], color=fc if isinstance(fc, str) else list(fc[is_pt]), size=markersize,
                     edgecolor=edgecolor, linewidth=linewidth, zorder=zorder)


def _metric(gdf: gpd.GeoDataFrame, crs, name: str) -> gpd.GeoDataFrame:
    if gdf.crs is None:
        raise LayerError(name, "has no CRS", fix="set the study CRS (set_crs)")
    return gdf if gdf.crs.equals(gpd.GeoSeries(crs=crs).crs) else gdf.to_crs(crs)


def _check_crs(study: StudyData) -> None:
    if gpd.GeoSeries(crs=study.crs).crs.is_geographic:
        raise LayerError("study", f"CRS {study.crs} is geographic: the scale bar needs metres",
                         fix="use a metric CRS (settings.metric_crs, e.g. EPSG:32651)")


def _nice_length(width_m: float) -> float:
    """A round scale-bar length (1, 2, 5 × 10^n metres) near a fifth of the map width."""
    target = max(width_m / 5.0, 1.0)
    exp = np.floor(np.log10(target))
    cands = np.array([1, 2, 5, 10]) * 10 ** exp
    return float(cands[cands <= target * 1.25].max())


#: Share of a print map's height kept free below the study area for the scale bar and the
#: north arrow (:func:`_extent`): they never cover a unit or its label.
FURNITURE_STRIP = 0.10


def _scale_bar(ax: plt.Axes, lang: str) -> float:
    """Scale bar in the strip below the map; returns its right end (axes fraction)."""
    x0, x1 = ax.get_xlim()
    y0, y1 = ax.get_ylim()
    length = _nice_length(x1 - x0)
    h = (y1 - y0) * 0.012
    bx, by = x0 + (x1 - x0) * 0.04, y0 + (y1 - y0) * 0.04
    # add_artist: the limits are set (add_patch would update the data limits for nothing)
    ax.add_artist(Rectangle((bx - (x1 - x0) * 0.015, by - (y1 - y0) * 0.012),
                            length + (x1 - x0) * 0.06, h * 5.2, facecolor="white", alpha=0.8,
                            edgecolor="none", zorder=19))
    for i in range(4):
        ax.add_artist(Rectangle((bx + i * length / 4, by), length / 4, h, zorder=20,
                                facecolor="black" if i % 2 == 0 else "white",
                                edgecolor="black", linewidth=0.6))
    unit, div = ("km", 1000.0) if length >= 1000 else ("m", 1.0)
    for pos in (0.0, length / 2, length):
        ax.text(bx + pos, by + h * 1.8, f"{pos / div:g}", ha="center", va="bottom", fontsize=7,
                zorder=20)
    ax.text(bx + length + (x1 - x0) * 0.012, by + h / 2, unit, ha="left", va="center",
            fontsize=7, zorder=20)
    return (bx + length + (x1 - x0) * 0.045 - x0) / (x1 - x0)


def _north_arrow(ax: plt.Axes, lang: str, *, x: float = 0.5) -> None:
    """North arrow in the strip below the map, at ``x`` (axes fraction), its label beside it."""
    ax.annotate("", xy=(x, 0.088), xytext=(x, 0.018), xycoords="axes fraction",
                arrowprops={"facecolor": "black", "edgecolor": "black", "width": 3,
                            "headwidth": 9, "headlength": 9}, zorder=20)
    ax.text(x + 0.012, 0.045, "北 N" if lang == "zh" else "N", transform=ax.transAxes,
            ha="left", va="center", fontsize=9, fontweight="bold", zorder=20)


def _extent(study: StudyData, *layers: gpd.GeoDataFrame | None) -> tuple[float, ...]:
    if study.boundary is not None and len(study.boundary):
        b = _metric(study.boundary, study.crs, "boundary").total_bounds
    else:
        parts = [layer.total_bounds for layer in layers if layer is not None and len(layer)]
        if not parts:
            raise LayerError("study", "has nothing to draw", fix="compute units or gaps first")
        arr = np.vstack(parts)
        b = np.array([arr[:, 0].min(), arr[:, 1].min(), arr[:, 2].max(), arr[:, 3].max()])
    pad = 0.04 * max(b[2] - b[0], b[3] - b[1], 1.0)
    height = b[3] - b[1] + 2 * pad
    strip = height * FURNITURE_STRIP / (1 - FURNITURE_STRIP)   # the scale bar's and north arrow's room
    return b[0] - pad, b[1] - pad - strip, b[2] + pad, b[3] + pad


def _base(study: StudyData, ax: plt.Axes, extent) -> None:
    ax.set_xlim(extent[0], extent[2])
    ax.set_ylim(extent[1], extent[3])
    ax.set_aspect("equal")
    ax.set_xticks([])
    ax.set_yticks([])
    for s in ax.spines.values():
        s.set_linewidth(0.6)


def _outlines(study: StudyData, ax: plt.Axes) -> None:
    if study.towns is not None and len(study.towns):
        _draw_lines(ax, shapely.boundary(_metric(study.towns, study.crs, "towns").geometry.to_numpy()),
                    color="#555555", linewidth=0.9, zorder=8)
    if study.boundary is not None and len(study.boundary):
        _draw_lines(ax, shapely.boundary(_metric(study.boundary, study.crs, "boundary").geometry.to_numpy()),
                    color="#111111", linewidth=1.6, linestyle=(0, (5, 3)), zorder=9)


def _credit(fig: plt.Figure, study: StudyData, lang: str) -> None:
    for ax in fig.axes:  # geopandas labels the axes "Easting [metre]": not wanted on a map
        ax.set_xlabel("")
        ax.set_ylabel("")
    txt = f"{study.display_name} {study.year} · CRS {study.crs}"
    if study.attribution:
        txt += f" · {study.attribution}"
    fig.text(0.01, 0.008, txt, fontsize=6.5, color="#555555", ha="left", va="bottom")


def _png_bytes(rgb: np.ndarray, dpi: float, level: int = PNG_ZLIB_LEVEL) -> bytes:
    """A PNG file of an 8-bit RGB image (``(h, w, 3)`` uint8, or the RGB of an ``(h, w, 4)``
    RGBA one): no row filter, one IDAT
    chunk at zlib ``level``, the resolution in a pHYs chunk, nothing else (no date, no
    software: the same pixels give the same bytes).

    A map's flat colours compress well unfiltered: on a district's gap figure
    (1200 × 1200 px) 55 ms and 0.97 MB, against 150 ms and 1.32 MB through Pillow
    (RGBA, adaptive filters per row, zlib level 3).
    """
    h, w = rgb.shape[:2]
    raw = np.empty((h, 1 + 3 * w), dtype=np.uint8)  # each row: filter type 0 (None), then its pixels
    raw[:, 0] = 0
    px = raw[:, 1:].reshape(h, w, 3)
    for k in range(3):  # a channel at a time (an RGBA buffer is read in place): 5x faster
        px[..., k] = rgb[..., k]  # than one (h, w, 3) copy, which numpy does pixel by pixel

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    ppm = int(dpi / 0.0254 + 0.5)  # pixels per metre, rounded as Pillow does
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
            + chunk(b"pHYs", struct.pack(">IIB", ppm, ppm, 1))
            + chunk(b"IDAT", zlib.compress(raw, level)) + chunk(b"IEND", b""))


def _save(fig: plt.Figure, path: Path, dpi: int) -> Path:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("png", "svg", "pdf"):
        raise ValueError(f"figure format must be .png, .svg or .pdf, got {path.name!r}")
    rc = matplotlib.rcParams
    if fmt == "png" and rc["savefig.facecolor"] == "auto" and rc["savefig.edgecolor"] == "auto" \
            and not rc["savefig.transparent"] and rc["savefig.bbox"] in (None, "standard"):
        # drawn once at the figure's dpi; an opaque figure (every map here) is written as RGB
        # by _png_bytes, the same pixels as savefig's RGBA PNG in a third of the time (with
        # savefig's own settings changed in rcParams, savefig writes it, as they say)
        if fig.dpi != dpi:
            fig.set_dpi(dpi)
        canvas = SharedRendererCanvas(fig)
        canvas.draw()
        rgba = np.asarray(canvas.buffer_rgba())
        if (rgba[..., 3] == 255).all():
            with atomic_path(path) as tmp:
                tmp.write_bytes(_png_bytes(rgba, dpi))
            plt.close(fig)
            return path
    meta = {"png": {"Software": None}, "svg": {"Date": None},
            "pdf": {"CreationDate": None, "Producer": None, "Creator": None}}[fmt]
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format=fmt, dpi=dpi, metadata=meta)
    plt.close(fig)
    return path


def _new(size_in: tuple[float, float], dpi: int) -> tuple[plt.Figure, plt.Axes]:
    fig = plt.figure(figsize=size_in, dpi=dpi)
    ax = fig.add_axes((0.03, 0.05, 0.94, 0.86))
    return fig, ax


def units_figure(study: StudyData, path: str | Path, *, indicator: str | None = None,
                 lang: str = "zh", scheme: str = "quantiles", k: int = 5,
                 size_in: tuple[float, float] = (8.0, 8.0), dpi: int = 150) -> Path:
    """Choropleth of the check-up units (default population density, persons/ha).

    ``indicator``, ``scheme`` and ``k`` as in ``problem_map``; the legend gives the class
    ranges, the unit and the reference value. Output size is ``size_in × dpi`` pixels.
    """
    if study.units is None or not len(study.units):
        raise LayerError("units", "is missing or empty", fix="delineate the check-up units first")
    _check_crs(study)
    path = Path(path)
    with _style(lang):
        units = _metric(study.units, study.crs, "units")
        val, name, unit, ref = _unit_indicator(study, indicator, lang)
        cls, bins = _classify(val, scheme=scheme, k=k)
        colors = _ramp(len(bins)) if bins else []
        fc = np.array(colors + [c.NODATA_COLOR], dtype=object)[np.where(cls >= 0, cls, len(colors))]
        fig, ax = _new(size_in, dpi)
        _base(study, ax, _extent(study, units))
        _draw(ax, units.geometry.to_numpy(), facecolor=fc, edgecolor="white", linewidth=0.6, zorder=2)
        _outlines(study, ax)
        lo = float(np.nanmin(val)) if np.isfinite(val).any() else 0.0
        handles = [Patch(facecolor=colors[i], edgecolor="#777777",
                         label=f"{c.format_values(pd.Series([lo if i == 0 else bins[i - 1]])).iloc[0]}"
                               f" – {c.format_values(pd.Series([b])).iloc[0]}")
                   for i, b in enumerate(bins)]
        if (cls < 0).any():
            handles.append(Patch(facecolor=c.NODATA_COLOR, edgecolor="#777777",
                                 label="无数据" if lang == "zh" else "no data"))
        title = name + (f" ({unit})" if unit else "")
        if ref is not None:
            handles.append(Line2D([], [], color="none", label=(
                f"{'参考值' if lang == 'zh' else 'reference'}: "
                f"{c.format_values(pd.Series([ref])).iloc[0]} {unit}".strip())))
        ax.legend(handles=handles, title=title, loc="lower right", fontsize=8, title_fontsize=8.5,
                  framealpha=0.92)
        heading = (f"{study.display_name} 社区体检单元 — {name}" if lang == "zh"
                   else f"{study.display_name} check-up units — {name}")
        return _finish(fig, ax, study, heading, path, lang=lang, dpi=dpi)


def _finish(fig: Any, ax: Any, study: StudyData, heading: str, path: Path, *, lang: str, dpi: int,
            title_size: float = 13) -> Path:
    """Every print map ends the same way: title, scale bar, north arrow, credit line, save."""
    fig.suptitle(heading, fontsize=title_size, y=0.965)
    _north_arrow(ax, lang, x=_scale_bar(ax, lang) + 0.03)
    _credit(fig, study, lang)
    return _save(fig, path, dpi)


def _units_background(study: StudyData, ax: Any, backdrop: Backdrop | None = None) -> None:
    """Units in light grey under a thematic layer (gaps, problems), the lowest layer.

    ``backdrop``: shared by a series of figures (``save_figures``' gap figures): the paths
    are built once and the pixels drawn once (:class:`~geotijian.report._agg.Backdrop`).
    """
    if study.units is None or not len(study.units):
        return
    style = {"facecolor": "#f4f4f4", "edgecolor": "#bdbdbd", "linewidth": 0.5, "zorder": 1}
    g = None
    if backdrop is not None and backdrop.paths is None:
        g = _metric(study.units, study.crs, "units").geometry.to_numpy()
        # points among the units: drawn as they come
        backdrop.paths = [] if (shapely.get_type_id(g) == 0).any() else \
            [p for p in [_compound_path(g)] if p is not None]
    if backdrop is None or not backdrop.paths:
        _draw(ax, g if g is not None else _metric(study.units, study.crs, "units").geometry.to_numpy(), **style)
        return
    for path in backdrop.paths:  # as _draw_polygons draws one colour
        ax.add_artist(BackdropPatch(backdrop, path, alpha=None, linestyle="-", **style))
    ax.add_artist(BackdropMark(backdrop, zorder=style["zorder"]))


def coverage_gap_figure(study: StudyData, facility_type: str, path: str | Path, *,
                        lang: str = "zh", size_in: tuple[float, float] = (8.0, 8.0),
                        dpi: int = 150, _rows: dict[str, dict[str, np.ndarray]] | None = None,
                        _colors: dict[str, str] | None = None, _backdrop: Backdrop | None = None) -> Path:
    """Coverage gaps of one facility type: homes beyond the walking radius, by how far.

    Homes are coloured by walk distance to the nearest facility over the service radius
    (≤ 1.25, ≤ 1.5, ≤ 2, > 2 times), with that type's facilities and service area.
    (``_rows``, ``_colors``: the rows of each type per layer and the type colours, found
    once by ``save_figures`` for all its figures; ``_backdrop``: their units layer, drawn
    once.)
    """
    gaps_all = study.coverage_gaps
    if gaps_all is None:
        raise LayerError("coverage_gaps", "is missing", fix="compute coverage first")
    _check_crs(study)
    path = Path(path)
    rows = _rows if _rows is not None else _type_rows(study)
    gaps = _metric(gaps_all.iloc[rows["coverage_gaps"].get(facility_type, [])], study.crs, "coverage_gaps")
    tname = c.facility_type_name(facility_type, lang)
    with _style(lang):
        fig, ax = _new(size_in, dpi)
        _base(study, ax, _extent(study, gaps, study.units))
        _units_background(study, ax, _backdrop)
        handles = []
        color = (_colors if _colors is not None else c.study_type_colors(study)).get(facility_type, c.OTHER_COLOR)
        sa = study.service_areas
        if sa is not None and len(sa):
            sa_t = sa.iloc[rows["service_areas"].get(facility_type, [])]
            if len(sa_t):
                _draw(ax, _metric(sa_t, study.crs, "service_areas").geometry.to_numpy(), facecolor=color,
                      alpha=0.15, edgecolor=color, linewidth=0.6, zorder=2)
                handles.append(Patch(facecolor=color, alpha=0.3, edgecolor=color,
                                     label="服务范围" if lang == "zh" else "service area"))
        radius = pd.to_numeric(gaps["walk_distance_m"], errors="coerce").astype(float)
        ratio = pd.to_numeric(gaps["distance_m"], errors="coerce").astype(float) / radius.where(radius > 0)
        idx = np.digitize(ratio.fillna(np.inf).to_numpy(), c.GAP_RATIO_BREAKS)
        if len(gaps):
            gcol = np.array(c.GAP_COLORS, dtype=object)[idx]
            _draw(ax, gaps.geometry.to_numpy(), facecolor=gcol, edgecolor="#333333", linewidth=0.3,
                  markersize=22, zorder=4)
        edges = [1.0, *c.GAP_RATIO_BREAKS]
        for i, col in enumerate(c.GAP_COLORS):
            rng = f"{edges[i]:g} – {edges[i + 1]:g}" if i + 1 < len(edges) else f"> {edges[i]:g}"
            handles.append(Patch(facecolor=col, edgecolor="#333333",
                                 label=f"{rng} {'倍半径' if lang == 'zh' else '× radius'} "
                                       f"({int((idx == i).sum()):,})"))
        fac = study.facilities
        if fac is not None and len(fac) and "type" in fac.columns:
            f_t = fac.iloc[rows["facilities"].get(facility_type, [])]
            if len(f_t):
                pts = _metric(f_t, study.crs, "facilities").representative_point()
                _draw_points(ax, pts.to_numpy(), color=color, edgecolor="white", linewidth=0.6, size=40,
                             marker="^", zorder=5)
                handles.append(Line2D([], [], marker="^", color="none", markerfacecolor=color,
                                      markeredgecolor="white", markersize=8,
                                      label=f"{tname} ({len(f_t):,})"))
        _outlines(study, ax)
        r = radius.dropna()
        r_txt = f"{r.iloc[0]:g} m" if len(r) else "—"
        pop = pd.to_numeric(gaps.get("population", pd.Series(dtype=float)), errors="coerce").sum()
        ax.legend(handles=handles, loc="lower right", fontsize=8, framealpha=0.92,
                  title=("到最近设施步行距离 / 服务半径" if lang == "zh"
                         else "walk to nearest / radius"), title_fontsize=8.5)
        heading = (f"{tname}覆盖缺口 (服务半径 {r_txt}): {len(gaps):,} 处, 涉及 {pop:,.0f} 人"
                   if lang == "zh" else
                   f"{tname}: coverage gaps (radius {r_txt}): {len(gaps):,} homes, {pop:,.0f} residents")
        # long heading (type, radius, counts): a little smaller
        return _finish(fig, ax, study, heading, path, lang=lang, dpi=dpi, title_size=12.5)


def _type_rows(study: StudyData) -> dict[str, dict[str, np.ndarray]]:
    """Row positions of each facility type in the gaps, service areas and facilities
    (``{layer: {type: positions}}``, positions ascending): one pass per layer."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for layer, col in (("coverage_gaps", "facility_type"), ("service_areas", "facility_type"), ("facilities", "type")):
        gdf = getattr(study, layer, None)
        if gdf is None or col not in gdf.columns or not len(gdf):
            out[layer] = {}
            continue
        code, uniq = pd.factorize(gdf[col].astype(str).to_numpy(dtype=object))
        order = np.argsort(code, kind="stable")
        cut = np.searchsorted(code[order], np.arange(len(uniq) + 1))
        out[layer] = {str(t): order[cut[i]:cut[i + 1]] for i, t in enumerate(uniq)}
    return out


def save_figures(study: StudyData, out_dir: str | Path, *, formats: Sequence[str] = ("png",),
                 lang: str = "zh", indicator: str | None = None, dpi: int = 150,
                 title: str | None = None, kinds: Collection[str] = ("units", "gaps", "problems"),
                 types: Collection[str] | None = None) -> list[Path]:
    """Every figure the study supports, into ``out_dir``; returns the written paths.

    ``units.<fmt>`` (choropleth), ``gaps_<facility_type>.<fmt>`` (one per type with gaps),
    ``problems.<fmt>`` (unit-level problem points of every class) and one per class present
    (``problems_urgent``, ``problems_best_effort``, ``problems_long_term``), in each of
    ``formats`` (png, pdf, svg) at ``dpi``; ``title`` replaces the problem figure's heading
    (``[report] dpi, formats, title`` in study.toml). ``kinds``: only these of ``"units"``,
    ``"gaps"`` (the coverage-gap figures, which draw the service areas) and ``"problems"``;
    ``types``: the coverage-gap figures of these facility types only.
    """
    from .problem_figures import CLASS_FILE_NAMES, problem_class_figure, problem_figure, unit_point_counts

    out = Path(out_dir)
    written: list[Path] = []
    for fmt in formats:
        if fmt not in ("png", "pdf", "svg"):
            raise ValueError(f"figure format must be png, pdf or svg, got {fmt!r}")
        if "units" in kinds and study.units is not None and len(study.units):
            written.append(units_figure(study, out / f"units.{fmt}", indicator=indicator,
                                        lang=lang, dpi=dpi))
        if "gaps" in kinds and study.coverage_gaps is not None and len(study.coverage_gaps):
            rows, colors, backdrop = _type_rows(study), c.study_type_colors(study), Backdrop()
            for t in c.ordered_types(study.coverage_gaps["facility_type"]):
                if types is not None and t not in types:
                    continue
                written.append(coverage_gap_figure(study, t, out / f"gaps_{re.sub(r'[^0-9A-Za-z_-]+', '_', t)}.{fmt}",
                                                   lang=lang, dpi=dpi, _rows=rows, _colors=colors,
                                                   _backdrop=backdrop))
        if "problems" in kinds and study.problems is not None and len(study.problems) and study.units is not None:
            written.append(problem_figure(study, out / f"problems.{fmt}", lang=lang, dpi=dpi, title=title))
            counts = unit_point_counts(study)
            for k, stem in CLASS_FILE_NAMES.items():
                if k in counts.columns and counts[k].sum() > 0:
                    written.append(problem_class_figure(study, k, out / f"{stem}.{fmt}", lang=lang, dpi=dpi))
    return written
