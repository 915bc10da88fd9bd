"""The Agg canvas the print maps are drawn on: one renderer per thread and pixel size, shared
by the figures, which remembers the text it has laid out, rasterised or turned into paths.

A study draws tens of maps whose legends, scale bars, credits and unit labels repeat the
same strings in the same fonts; matplotlib lays out every string (glyph by glyph, through
FreeType and a CJK font of 20,000 glyphs) and renders every glyph again on each draw, about
3 ms for a 20-character legend line. Here:

* the text metrics: matplotlib caches them per renderer; one renderer for all the figures
  of a size means a legend line is measured once per study, not once per figure;
* the layout (glyphs and their offsets) of a string in a font at a size, and the bitmap of
  a glyph at a sub-pixel offset (FreeType renders a glyph moved by whole pixels to the same
  bitmap, moved), are kept: a repeated string costs its glyphs' copies into the image;
* the outline paths of a string (labels drawn with a halo, ``patheffects``), kept too.

The pixels are those of matplotlib's own ``RendererAgg.draw_text`` (matplotlib >= 3.11
draws glyph by glyph, as here); with a matplotlib that lacks the private calls used
(``FT2Font._layout``, ``_set_transform``, ``_render_glyph``), the stock method draws.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from matplotlib import rcParams
from matplotlib.artist import Artist, allow_rasterization
from matplotlib.backends.backend_agg import FigureCanvasAgg, RendererAgg, get_hinting_flag
from matplotlib.font_manager import FontProperties
from matplotlib.ft2font import FT2Font
from matplotlib.patches import PathPatch
from matplotlib.textpath import TextToPath

try:
    from matplotlib.ft2font import RenderMode
except ImportError:  # matplotlib < 3.10
    RenderMode = None

__all__ = ["SharedRendererCanvas", "Backdrop", "BackdropPatch", "BackdropMark"]

#: whether this matplotlib draws text glyph by glyph through the calls cached here
_GLYPH_CALLS = (RenderMode is not None and all(hasattr(FT2Font, n) for n in ("_layout", "_set_transform",
                                                                             "_render_glyph"))
                and hasattr(RendererAgg, "_draw_text_glyphs_and_boxes"))
#: entries kept per cache before it is emptied (a district's figures use a few thousand)
_MAX_ENTRIES = 50_000

_LOCAL = threading.local()


class _CachedTextToPath(TextToPath):
    """``get_text_path`` remembered per font properties and string (plain text only)."""

    def __init__(self) -> None:
        super().__init__()
        self._paths: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}

    def get_text_path(self, prop: FontProperties, s: str, ismath: Any = False, *, features: Any = None,
                      language: Any = None) -> tuple[Any, Any]:
        if ismath:
            return super().get_text_path(prop, s, ismath=ismath, features=features, language=language)
        key = (prop.copy(), s, None if features is None else tuple(features), language)
        hit = self._paths.get(key)
        if hit is None:
            verts, codes = super().get_text_path(prop, s, features=features, language=language)
            hit = (np.asarray(verts, dtype=float).reshape(-1, 2), np.asarray(codes, dtype=np.uint8))
            for a in hit:
                a.flags.writeable = False
            if len(self._paths) >= _MAX_ENTRIES:
                self._paths.clear()
            self._paths[key] = hit
        return hit


class _CachingRenderer(RendererAgg):
    """``RendererAgg`` that keeps string layouts, glyph bitmaps and text paths."""

    def __init__(self, width: int, height: int, dpi: float) -> None:
        super().__init__(width, height, dpi)
        self._text2path = _CachedTextToPath()
        self._layouts: dict[tuple, tuple] = {}
        self._glyphs: dict[tuple, tuple[np.ndarray, int, int]] = {}

    def draw_text(self, gc: Any, x: float, y: float, s: str, prop: FontProperties, angle: float,
                  ismath: Any = False, mtext: Any = None) -> None:
        if ismath or not _GLYPH_CALLS:
            return super().draw_text(gc, x, y, s, prop, angle, ismath=ismath, mtext=mtext)
        font = self._prepare_font(prop)
        flags = get_hinting_flag()
        features = mtext.get_fontfeatures() if mtext is not None else None
        language = mtext.get_language() if mtext is not None else None
        size = prop.get_size_in_points()
        key = (font, size, self.dpi, s, flags, None if features is None else tuple(features), language)
        items = self._layouts.get(key)
        if items is None:
            items = tuple((it.ft_object, it.glyph_index, it.x, it.y)
                          for it in font._layout(s, flags=flags, features=features, language=language))
            if len(self._layouts) >= _MAX_ENTRIES:
                self._layouts.clear()
            self._layouts[key] = items
        self._draw_glyphs(gc, x, y, angle, size, items, flags)

    def _draw_glyphs(self, gc: Any, x: float, y: float, angle: float, size: float, items: tuple,
                     flags: Any) -> None:
        """Each glyph as ``RendererAgg._draw_text_glyphs_and_boxes`` draws it (its pen
        position rounded to 1/64 px), from the bitmap rendered at the same 1/64-px offset."""
        cos, sin = math.cos(math.radians(angle)), math.sin(math.radians(angle))
        matrix = (0x10000 * np.array([[cos, -sin], [sin, cos]])).round().astype(int)
        mkey = tuple(matrix.ravel().tolist())
        aa = bool(gc.get_antialiased())
        height = self.height
        for font, glyph, dx, dy in items:
            px = round(0x40 * (x + dx * cos - dy * sin))
            py = round(0x40 * (height - y + dx * sin + dy * cos))
            ix, fx = divmod(px, 0x40)
            iy, fy = divmod(py, 0x40)
            key = (font, size, self.dpi, glyph, mkey, fx, fy, flags, aa)
            hit = self._glyphs.get(key)
            if hit is None:
                font.set_size(size, self.dpi)
                font._set_transform(matrix, [fx, fy])
                bitmap = font._render_glyph(glyph, flags, RenderMode.NORMAL if aa else RenderMode.MONO)
                buffer = np.array(bitmap.buffer)  # a copy: FreeType's buffer is reused
                if not aa:
                    buffer *= 0xff
                hit = (buffer, bitmap.left, bitmap.top)
                if len(self._glyphs) >= _MAX_ENTRIES:
                    self._glyphs.clear()
                self._glyphs[key] = hit
            buffer, left, top = hit
            if buffer.size:
                self._renderer.draw_text_image(buffer, left + ix, int(height) - (top + iy) + buffer.shape[0], 0, gc)


class SharedRendererCanvas(FigureCanvasAgg):
    """An Agg canvas that draws on this thread's :class:`_CachingRenderer` of the same pixel
    size and dpi, not on a new renderer per figure (``draw`` clears it first: the pixels are
    those of a new one)."""

    def get_renderer(self) -> RendererAgg:
        w, h = self.get_width_height(physical=True)
        key = (w, h, self.figure.dpi, rcParams["text.hinting_factor"])
        cache = _LOCAL.__dict__.setdefault("renderers", {})
        if key not in cache:
            if len(cache) >= 4:  # a few sizes at most (the maps are 8 × 8 and 10 × 8 in)
                cache.clear()
            cache[key] = _CachingRenderer(w, h, self.figure.dpi)
        self.renderer, self._lastKey = cache[key], key[:3]
        return self.renderer


# --------------------------------------------------------------------------- backdrops
# The coverage-gap figures of a study (one per facility type) share their lowest layer: the
# units in light grey over the white figure. It is drawn once; the next figures of the same
# size and extent start from a copy of those pixels (Agg's blitting: ``copy_from_bbox`` /
# ``restore_region``) and skip drawing it, which gives the very same pixels: nothing else
# is drawn before or between its patches, and what is drawn over it sees the same image.

class Backdrop:
    """The pixels of a lowest layer shared by a series of figures, kept by its first draw.

    ``paths``: the layer's compound paths, built once for the series by the figure code.
    """

    def __init__(self) -> None:
        self.paths: list | None = None
        self._key: tuple | None = None
        self._region: Any = None

    @staticmethod
    def key(renderer: Any, axes: Any) -> tuple | None:
        """What the layer's pixels depend on besides its paths (``None``: not an Agg draw)."""
        if not isinstance(renderer, RendererAgg):
            return None
        fig = axes.figure
        return (renderer.width, renderer.height, renderer.dpi, tuple(axes.viewLim.bounds),
                tuple(axes.bbox.bounds), fig.patch.get_facecolor(), fig.patch.get_edgecolor(),
                fig.patch.get_visible(), axes.patch.get_facecolor(), axes.patch.get_visible())

    def covers(self, renderer: Any, axes: Any) -> bool:
        """Whether kept pixels fit this draw (then the layer's patches are not drawn)."""
        return self._region is not None and self._key == self.key(renderer, axes)


class BackdropPatch(PathPatch):
    """A patch of a :class:`Backdrop`'s layer: not drawn when the kept pixels are restored."""

    def __init__(self, backdrop: Backdrop, path: Any, **kwargs: Any) -> None:
        super().__init__(path, **kwargs)
        self._backdrop = backdrop

    @allow_rasterization
    def draw(self, renderer: Any) -> None:
        if not self._backdrop.covers(renderer, self.axes):
            super().draw(renderer)


class BackdropMark(Artist):
    """Drawn right after a :class:`Backdrop`'s patches (the same zorder, added after them):
    restores the kept pixels, or keeps those just drawn."""

    def __init__(self, backdrop: Backdrop, zorder: float) -> None:
        super().__init__()
        self._backdrop = backdrop
        self.set_zorder(zorder)

    @allow_rasterization
    def draw(self, renderer: Any) -> None:
        b = self._backdrop
        if b.covers(renderer, self.axes):
            renderer.restore_region(b._region)
            return
        key = b.key(renderer, self.axes)
        if key is not None:
            b._key, b._region = key, renderer.copy_from_bbox(renderer.bbox)
