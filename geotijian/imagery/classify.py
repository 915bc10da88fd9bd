"""The pixel rules: class codes, the :class:`Classifier`, lookup tables, window classifier."""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from rasterio.windows import Window

from .. import settings
from ..errors import RasterError
from .reading import Orthophoto, _as_ortho
from .windows import (_GDAL_CACHE_MB, _bounded_map, _read_window, _Readers, _sample_windows,
                      block_windows)


NODATA, VEGETATION, IMPERVIOUS, WATER, BARE, SHADOW = 0, 1, 2, 3, 4, 5
N_CLASSES = 6
CLASS_NAMES = {NODATA: "nodata", VEGETATION: "vegetation", IMPERVIOUS: "impervious",
               WATER: "water", BARE: "bare", SHADOW: "shadow"}
#: RGBA colours of the classes in the classified GeoTIFF and the quicklook.
CLASS_COLOURS = {NODATA: (0, 0, 0, 0), VEGETATION: (46, 139, 60, 255),
                 IMPERVIOUS: (170, 170, 170, 255), WATER: (40, 110, 200, 255),
                 BARE: (190, 140, 80, 255), SHADOW: (40, 40, 40, 255)}


def _otsu(hist: np.ndarray, edges: np.ndarray) -> float:
    """Otsu's threshold (maximum between-class variance) of a histogram."""
    hist = hist.astype(np.float64)
    total = hist.sum()
    if total == 0:
        raise RasterError("Otsu's threshold: the sampled windows hold no valid pixel that "
                          "is not shadow or water. Fix: use the fixed threshold (otsu=False)")
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = total - w0
    m0 = np.cumsum(hist * centres)
    mu_t = m0[-1]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = (mu_t * w0 / total - m0) ** 2 / (w0 * w1 / total)
    between[~np.isfinite(between)] = -1.0
    k = int(np.argmax(between))
    return float(edges[k + 1])


_INDEX_RANGE = {"ndvi": (-1.0, 1.0), "exg": (-1.0, 2.0), "vari": (-1.0, 1.0)}


@dataclass(frozen=True)
class Classifier:
    """The pixel rules (see the module docstring), with every threshold explicit.

    Build one with :func:`build_classifier`; call :meth:`classify` on a band stack.

    Attributes
    ----------
    index : str
        Vegetation index: ``"ndvi"`` (needs NIR), ``"exg"`` or ``"vari"``.
    vegetation_threshold : float
        Vegetation when the index is above this (fixed, or Otsu's).
    otsu : bool
        Whether ``vegetation_threshold`` came from Otsu's method.
    white_level : float
        Value of a white pixel (brightness scale).
    has_nir : bool
        Whether the stack has a 4th (NIR) band.
    """

    index: str
    vegetation_threshold: float
    white_level: float
    has_nir: bool
    otsu: bool = False
    ndwi_threshold: float = 0.2
    shadow_brightness: float = 0.1
    water_max_brightness: float = 0.35
    water_blue_chroma: float = 0.36
    bare_red_blue_chroma: float = 0.12
    bare_max_red_chroma: float = 0.5

    def _features(self, stack: np.ndarray) -> dict[str, np.ndarray]:
        f32 = np.float32
        r = stack[0].astype(f32)
        g = stack[1].astype(f32)
        b = stack[2].astype(f32)
        s = r + g + b
        inv = np.divide(f32(1.0), s, out=np.zeros_like(s), where=s > 0)
        out = {"r": r, "g": g, "b": b, "s": s, "inv": inv}
        out["vis"] = s * f32(1.0 / (3.0 * self.white_level))
        if self.has_nir:
            n = stack[3].astype(f32)
            out["n"] = n
            out["nirb"] = n * f32(1.0 / self.white_level)
        return out

    def _index(self, f: dict[str, np.ndarray]) -> np.ndarray:
        r, g, b = f["r"], f["g"], f["b"]
        if self.index == "ndvi":
            n = f["n"]
            den = n + r
            return np.divide(n - r, den, out=np.zeros_like(den), where=den > 0)
        if self.index == "exg":
            return (2 * g - r - b) * f["inv"]
        den = g + r - b
        out = np.divide(g - r, den, out=np.zeros_like(den), where=den != 0)
        return np.clip(out, -1.0, 1.0, out=out)

    def vegetation_index(self, stack: np.ndarray) -> np.ndarray:
        """The vegetation index (float32) of a (3 or 4, rows, cols) R, G, B[, N] stack."""
        return self._index(self._features(stack))

    def classify(self, stack: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
        """Class codes (uint8, rows × cols) of a band stack.

        Parameters
        ----------
        stack : ndarray
            (3 or 4, rows, cols) in the order red, green, blue[, nir], any numeric dtype.
        valid : ndarray of bool, optional
            False where the pixel is nodata (code 0). Default: all valid.
        """
        out = self._combine(self._masks(stack))
        if valid is not None:
            out[~valid] = NODATA
        return out

    def _masks(self, stack: np.ndarray) -> dict[str, np.ndarray]:
        """The rule masks; each depends only on the bands named in its comment."""
        f = self._features(stack)
        r, g, b, inv, vis = f["r"], f["g"], f["b"], f["inv"], f["vis"]
        m = {"dark_vis": vis < self.shadow_brightness}  # r, g, b
        if self.has_nir:
            n = f["n"]
            m["dark_nir"] = f["nirb"] < self.shadow_brightness  # n
            den = g + n
            ndwi = np.divide(g - n, den, out=np.zeros_like(den), where=den > 0)
            m["water"] = ndwi > self.ndwi_threshold  # g, n
        else:
            m["water"] = (b > r) & (b > g) & (b * inv > self.water_blue_chroma) \
                & (vis < self.water_max_brightness)  # r, g, b
        m["veg"] = self._index(f) > self.vegetation_threshold  # NDVI: n, r; else r, g, b
        rc = r * inv
        m["bare"] = (r > g) & (g > b) & (rc - b * inv > self.bare_red_blue_chroma) \
            & (rc < self.bare_max_red_chroma)  # r, g, b
        return m

    def _combine(self, m: dict[str, np.ndarray]) -> np.ndarray:
        """Class codes from the rule masks, in the order of the module docstring's table."""
        # brightness = max(visible mean, NIR) < threshold  <=>  both are below it
        shadow = m["dark_vis"] & m["dark_nir"] if self.has_nir else m["dark_vis"]
        out = np.full(shadow.shape, IMPERVIOUS, dtype=np.uint8)
        # assign from lowest to highest priority, so the first rule of the table wins
        out[m["bare"]] = BARE
        out[m["veg"]] = VEGETATION
        out[m["water"]] = WATER
        out[shadow] = SHADOW
        return out

    def describe(self) -> dict[str, Any]:
        """The rules as a flat dict (written into a result's ``attrs``)."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


_LUT_MIN_PIXELS = 16_000_000  # images smaller than this are classified band by band
_LUT_CACHE: dict[Classifier, dict[str, np.ndarray]] = {}
_LUT_LOCK = threading.Lock()
# bits of the NIR lookup code: rule masks that each depend on at most three bands
_B_DARK_VIS, _B_BARE, _B_VEG_RGB, _B_WATER, _B_VEG_NDVI, _B_DARK_NIR = (1, 2, 4, 8, 16, 32)


def _pair_grid(lo_band: int, hi_band: int) -> np.ndarray:
    """A 4-band stack holding every (lo, hi) byte pair, indexed by ``lo | hi << 8``."""
    v = np.arange(1 << 16, dtype=np.uint32)
    stack = np.zeros((4, 1 << 16), dtype=np.uint8)
    stack[lo_band] = v & 0xFF
    stack[hi_band] = v >> 8
    return stack


def _lut_tables(clf: Classifier) -> dict[str, np.ndarray]:
    """Lookup tables giving exactly the classes of the band arithmetic for 8-bit data.

    RGB: ``rgb`` maps every colour ``r | g << 8 | b << 16`` (2^24 entries, 16 MiB) to its
    class, built by :meth:`Classifier.classify` on all colours in 16 chunks. RGBN (2^32
    combinations) is split along the rules, each a function of at most three bands: a
    colour table of flag bits (dark visible, bare, RGB-index vegetation), pair tables for
    water (green, NIR) and NDVI (NIR, red), a NIR table (dark NIR), and a 64-entry table
    from the OR of the bits to the class (the same :meth:`Classifier._combine`).
    """
    with _LUT_LOCK:
        tables = _LUT_CACHE.get(clf)
        if tables is not None:
            return tables
        rg = np.arange(1 << 16, dtype=np.uint32)
        r = (rg & 0xFF).astype(np.uint8)
        g = (rg >> 8).astype(np.uint8)
        rgb = np.empty(1 << 24, dtype=np.uint8)
        for b0 in range(0, 256, 16):
            b = np.repeat(np.arange(b0, b0 + 16, dtype=np.uint8), 1 << 16)
            stack = [np.tile(r, 16), np.tile(g, 16), b]
            if not clf.has_nir:
                rgb[b0 << 16:(b0 + 16) << 16] = clf.classify(np.stack(stack))
                continue
            m = clf._masks(np.stack(stack + [np.zeros_like(b)]))
            bits = m["dark_vis"] * np.uint8(_B_DARK_VIS) | m["bare"] * np.uint8(_B_BARE)
            if clf.index != "ndvi":
                bits |= m["veg"] * np.uint8(_B_VEG_RGB)
            rgb[b0 << 16:(b0 + 16) << 16] = bits
        tables = {"rgb": rgb}
        if clf.has_nir:
            tables["gn"] = clf._masks(_pair_grid(1, 3))["water"] * np.uint8(_B_WATER)
            ndvi = clf._masks(_pair_grid(3, 0))["veg"] * np.uint8(_B_VEG_NDVI)
            tables["nr"] = ndvi if clf.index == "ndvi" else np.zeros_like(ndvi)
            n_only = np.zeros((4, 256), dtype=np.uint8)
            n_only[3] = np.arange(256)
            tables["n"] = clf._masks(n_only)["dark_nir"] * np.uint8(_B_DARK_NIR)
            code = np.arange(64, dtype=np.uint8)
            veg_bit = _B_VEG_NDVI if clf.index == "ndvi" else _B_VEG_RGB
            tables["final"] = clf._combine({
                "dark_vis": (code & _B_DARK_VIS) > 0, "dark_nir": (code & _B_DARK_NIR) > 0,
                "water": (code & _B_WATER) > 0, "veg": (code & veg_bit) > 0,
                "bare": (code & _B_BARE) > 0})
        if len(_LUT_CACHE) >= 2:
            _LUT_CACHE.clear()
        _LUT_CACHE[clf] = tables
        return tables


def _use_lut(ortho: Orthophoto, clf: Classifier) -> bool:
    return ortho.dtype == "uint8" and ortho.width * ortho.height >= _LUT_MIN_PIXELS


class _WindowClassifier:
    """Reads and classifies windows; one dataset handle and buffers per thread."""

    def __init__(self, ortho: Orthophoto, clf: Classifier, *, lut: bool | None = None) -> None:
        self.ortho = ortho
        self.clf = clf
        self.readers = _Readers(ortho.path)
        use = _use_lut(ortho, clf) if lut is None else lut
        self.lut = _lut_tables(clf) if use else None
        self.local = threading.local()

    def buffer(self, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        """A reusable per-thread array (fresh large arrays cost page faults per window)."""
        bufs = getattr(self.local, "bufs", None)
        if bufs is None:
            bufs = self.local.bufs = {}
        buf = bufs.get(name)
        if buf is None or buf.shape != shape or buf.dtype != np.dtype(dtype):
            buf = bufs[name] = np.zeros(shape, dtype=dtype)
        return buf

    def _key(self, name: str, planes: Sequence[np.ndarray], width: int) -> np.ndarray:
        """Bytes of 2 or 3 planes packed into one integer per pixel (first = lowest)."""
        h, w = planes[0].shape
        buf = self.buffer(name, (h, w, width), np.uint8)  # unused high byte stays 0
        for k, plane in enumerate(planes):
            buf[..., k] = plane
        key = buf.view(np.uint32 if width == 4 else np.uint16)[..., 0]
        return key.byteswap() if sys.byteorder == "big" else key

    def __call__(self, window: Window) -> np.ndarray:
        """Class codes of a window (a per-thread buffer on the lookup path: use at once)."""
        ds = self.readers.get()
        if self.lut is None:
            data, valid = _read_window(ds, self.ortho, window)
            return self.clf.classify(data, valid)
        o, t = self.ortho, self.lut
        h, w = int(window.height), int(window.width)
        nb = len(o.read_indexes)
        data = ds.read(o.read_indexes, window=window, out=self.buffer("data", (nb, h, w), np.uint8))
        key = self._key("rgbx", data[:3], 4)
        cls = self.buffer("cls", (h, w), np.uint8)
        t["rgb"].take(key, out=cls, mode="clip")
        if nb == 4:
            part = self.buffer("part", (h, w), np.uint8)
            cls |= t["gn"].take(self._key("gn", (data[1], data[3]), 2), out=part)
            cls |= t["nr"].take(self._key("nr", (data[3], data[0]), 2), out=part)
            cls |= t["n"].take(data[3], out=part)
            t["final"].take(cls, out=part)
            cls[...] = part
        if o.mask == "nodata":
            nd = int(o.nodata) & 0xFF
            invalid = key == (nd | nd << 8 | nd << 16)
            if nb == 4:
                invalid &= data[3] == nd
            cls[invalid] = NODATA
        elif o.mask == "alpha":
            cls[ds.read(o.alpha, window=window) == 0] = NODATA
        elif o.mask == "internal":
            cls[ds.read_masks(o.read_indexes[0], window=window) == 0] = NODATA
        return cls

    def close(self) -> None:
        self.readers.close()


def build_classifier(
    ortho: Orthophoto | str | Path,
    *,
    index: str | None = None,
    otsu: bool = False,
    threshold: float | None = None,
    sample_windows: int = 64,
    workers: int = 2,
) -> Classifier:
    """The classification rules for one orthophoto, thresholds from ``settings``.

    Parameters
    ----------
    ortho : Orthophoto or path
    index : {"ndvi", "exg", "vari"}, optional
        Vegetation index; default NDVI when the image has NIR, else ExG.
    otsu : bool
        Replace the fixed vegetation threshold by Otsu's threshold of the index, from a
        histogram (512 bins) over a strided sample of ``sample_windows`` windows.
    threshold : float, optional
        Vegetation threshold overriding the setting (ignored with ``otsu=True``).
        Defaults: ``settings.imagery_ndvi_threshold`` (0.3), ``imagery_exg_threshold``
        (0.1), ``imagery_vari_threshold`` (0.1).
    sample_windows : int
        Windows read (evenly strided over the image) to estimate the white level of
        non-8-bit data and Otsu's histogram.
    workers : int
        Threads reading the sample.

    Returns
    -------
    Classifier
    """
    ortho = _as_ortho(ortho)
    index = (index or ("ndvi" if ortho.has_nir else "exg")).lower()
    if index not in _INDEX_RANGE:
        raise ValueError(f"index must be one of {sorted(_INDEX_RANGE)}, got {index!r}")
    if index == "ndvi" and not ortho.has_nir:
        raise RasterError(
            f"orthophoto {ortho.path}: NDVI needs a near-infrared band, the image has "
            f"{ortho.band_order}. Fix: pass nir=<band> to read_orthophoto, or index='exg'")
    fixed = {"ndvi": settings.imagery_ndvi_threshold, "exg": settings.imagery_exg_threshold,
             "vari": settings.imagery_vari_threshold}[index]
    clf = Classifier(
        index=index, vegetation_threshold=float(fixed if threshold is None else threshold),
        white_level=float(ortho.white_level or 1.0), has_nir=ortho.has_nir, otsu=False,
        ndwi_threshold=settings.imagery_ndwi_threshold,
        shadow_brightness=settings.imagery_shadow_brightness,
        water_max_brightness=settings.imagery_water_max_brightness,
        water_blue_chroma=settings.imagery_water_blue_chroma,
        bare_red_blue_chroma=settings.imagery_bare_red_blue_chroma,
        bare_max_red_chroma=settings.imagery_bare_max_red_chroma,
    )
    if ortho.white_level is not None and not otsu:
        return clf
    sample = _sample_windows(block_windows(ortho), sample_windows)
    readers = _Readers(ortho.path)
    try:
        with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB):
            def brightest(w: Window) -> np.ndarray:
                data, valid = _read_window(readers.get(), ortho, w)
                vis = data[:3].max(axis=0)[valid]
                return vis[:: max(1, vis.size // 65536)].astype(np.float64)

            if ortho.white_level is None:
                values = np.concatenate(list(_bounded_map(brightest, sample, workers)))
                values = values[np.isfinite(values)]
                white = float(np.percentile(values, 99.5)) if values.size else 0.0
                if not white > 0:
                    raise RasterError(
                        f"orthophoto {ortho.path}: no valid bright pixel in the sample, the "
                        "white level cannot be estimated. Fix: pass white_level= to "
                        "read_orthophoto")
                clf = replace(clf, white_level=white)
            if not otsu:
                return clf
            lo, hi = _INDEX_RANGE[index]
            edges = np.linspace(lo, hi, 513)

            def hist(w: Window) -> np.ndarray:
                data, valid = _read_window(readers.get(), ortho, w)
                codes = clf.classify(data, valid)
                keep = (codes != NODATA) & (codes != SHADOW) & (codes != WATER)
                vi = clf.vegetation_index(data)[keep]
                return np.histogram(np.clip(vi, lo, hi), bins=edges)[0]

            total = np.zeros(512, dtype=np.int64)
            for h in _bounded_map(hist, sample, workers):
                total += h
    finally:
        readers.close()
    return replace(clf, vegetation_threshold=_otsu(total, edges), otsu=True)
