"""Orthophoto indicators: green cover and impervious surface per zone, window by window.

Districts receive drone or aerial orthophotos (RGB, sometimes with near-infrared) as
GeoTIFFs of several GB at 5-20 cm. This module opens them with rasterio
(:func:`read_orthophoto`), classifies every pixel into six small integer codes with
vectorised band arithmetic (:class:`Classifier`), and counts the classes per zone (unit,
compound, any polygon layer) by streaming over the file's own block windows
(:func:`zonal_cover`), so memory stays flat for a file larger than RAM. Optional outputs
are a tiled, deflate-compressed, COG-style classified GeoTIFF (:func:`write_classified`) and
a PNG quicklook (:func:`quicklook_png`). :func:`imagery_indicators` returns the two catalogue
indicators ``green_cover_ratio`` (绿化覆盖率, %) and ``impervious_ratio`` (%) per unit.

Class codes
-----------
====  ===============  ==========================================================
code  name             rule (first match wins, in this order)
====  ===============  ==========================================================
0     nodata           every band at the nodata value (GDAL's dataset-mask rule),
                       alpha = 0, the file's mask band, or NaN
5     shadow           brightness < ``imagery_shadow_brightness`` (see below)
3     water            NIR: NDWI = (G - N) / (G + N) > ``imagery_ndwi_threshold``
                       (McFeeters 1996); RGB only: blue-dominant and dark
                       (b > r, b > g, blue chromatic b/(r+g+b) >
                       ``imagery_water_blue_chroma``, brightness <
                       ``imagery_water_max_brightness``)
1     vegetation       NIR: NDVI = (N - R) / (N + R) > ``imagery_ndvi_threshold``;
                       RGB only: ExG = 2g - r - b on chromatic coordinates
                       (Woebbecke et al. 1995) > ``imagery_exg_threshold``, or
                       VARI = (G - R) / (G + R - B) (Gitelson et al. 2002) >
                       ``imagery_vari_threshold``; or Otsu's threshold of the index
4     bare soil        warm colour: r > g > b, red minus blue chromatic >
                       ``imagery_bare_red_blue_chroma`` and red chromatic <
                       ``imagery_bare_max_red_chroma``
2     impervious       every other valid pixel (roofs, roads, paving)
====  ===============  ==========================================================

*Brightness* is the mean of the visible bands or, when NIR exists, the larger of that mean
and the NIR value, as a share of the image's *white level* (255 for 8-bit data; otherwise
the 99.5th percentile of the brightest visible band over a strided sample of windows, or
the ``white_level`` argument). Taking NIR into account keeps sunlit tree crowns, which
are dark in the visible bands but bright in NIR, out of the shadow class. Shadow pixels
count as neither green nor impervious; they are reported as *unclassified*, and every
share is a share of the valid (imaged) pixels, so the green cover ratio is a lower bound
when shadow is large (the ``high_unclassified`` flag says so).

Otsu's method (``otsu=True``) replaces the fixed vegetation threshold by the threshold
that maximises the between-class variance of the vegetation index, from one histogram
accumulated over a strided sample of windows (at most ``sample_windows``; valid pixels
that are not shadow or water, so the split is vegetation against the other land covers):
the pass stays streaming.

Known failure cases
-------------------
- Red tile roofs and red-brick paving are warm like soil: with r/(r+g+b) below
  ``imagery_bare_max_red_chroma`` they become bare soil instead of impervious.
- Dark water (deep, shaded or turbid) below the shadow threshold counts as shadow
  (unclassified); shadow on asphalt under a blue sky can pass the RGB water rule, and
  with NIR a shadow on a surface with higher green than NIR can pass NDWI.
- Seasonal vegetation: winter or dry-season grass and deciduous trees without leaves fall
  below the NDVI/ExG threshold (impervious or bare); compare flights of the same season.
- RGB ExG confuses green-painted roofs, sports courts and algae-green water with
  vegetation, and under-detects dark or yellowish vegetation; prefer NIR imagery.
- Shadowed vegetation counts as shadow in RGB imagery (dark in every band).
- Bright bare fields of neutral colour (harvested or ploughed, NDVI near or below 0, as in
  the NAIP test tile) miss the warm-colour soil rule and count as impervious; rural
  impervious shares are upper bounds.
- Pixels are counted by their centre (``all_touched=False``): zones only a few pixels wide
  are approximated; imagery with a geographic CRS is rejected (reproject it first).

Zones
-----
Zones are reprojected to the image CRS (recorded in the result's ``attrs``). Overlapping
zones are each counted independently: they are split into groups of mutually
non-overlapping zones (greedy colouring of the overlap graph) and each group is
rasterized separately per window.

Speed and memory
----------------
Windows are the file's blocks grouped to about 1 Mpx; windows that no zone touches are
not read, and a zone that covers a whole window is counted without rasterizing. 8-bit
images of 16 Mpx or more are classified through lookup tables built once per classifier
by the same rules: all 2^24 colours (16 MiB) for RGB, and for RGBN a colour table plus
(green, NIR) and (NIR, red) pair tables: a few gathers per pixel instead of about thirty
float operations, with identical results. Each thread holds one dataset handle and reuses its window
buffers; GDAL's block cache is held to 64 MB while streaming. Peak memory is about
250 MB for a 4.8 GB image (see ``benchmarks/bench_imagery.py``).
"""

from __future__ import annotations

import math
import sys
import threading
import warnings
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.crs
import rasterio.features
import rasterio.shutil
import rasterio.windows
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.enums import ColorInterp, MaskFlags, Resampling
from rasterio.errors import NotGeoreferencedWarning, RasterioIOError
from rasterio.windows import Window

from . import settings
from .errors import CoordinateWarning, LayerError, RasterError, RepairWarning
from .io.atomic import atomic_path

__all__ = [
    "NODATA", "VEGETATION", "IMPERVIOUS", "WATER", "BARE", "SHADOW", "CLASS_NAMES",
    "N_CLASSES", "Orthophoto", "Classifier", "read_orthophoto", "build_classifier",
    "block_windows", "zonal_cover", "write_classified", "quicklook_png",
    "imagery_indicators",
]

NODATA, VEGETATION, IMPERVIOUS, WATER, BARE, SHADOW = 0, 1, 2, 3, 4, 5
N_CLASSES = 6
CLASS_NAMES = {NODATA: "nodata", VEGETATION: "vegetation", IMPERVIOUS: "impervious",
               WATER: "water", BARE: "bare", SHADOW: "shadow"}
#: RGBA colours of the classes in the classified GeoTIFF and the quicklook.
CLASS_COLOURS = {NODATA: (0, 0, 0, 0), VEGETATION: (46, 139, 60, 255),
                 IMPERVIOUS: (170, 170, 170, 255), WATER: (40, 110, 200, 255),
                 BARE: (190, 140, 80, 255), SHADOW: (40, 40, 40, 255)}

_ROLE_LETTERS = {"R": "red", "G": "green", "B": "blue", "N": "nir", "A": "alpha", "X": None}
_COLORINTERP_ROLES = {ColorInterp.red: "red", ColorInterp.green: "green",
                      ColorInterp.blue: "blue", ColorInterp.alpha: "alpha"}
_DESCRIPTION_ROLES = {
    "red": "red", "r": "red", "green": "green", "g": "green", "blue": "blue", "b": "blue",
    "nir": "nir", "n": "nir", "near-infrared": "nir", "near infrared": "nir",
    "nearinfrared": "nir", "near_infrared": "nir", "near-ir": "nir", "alpha": "alpha",
}
_GDAL_CACHE_MB = 64  # GDAL block cache while streaming (counts towards RSS)


# --------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class Orthophoto:
    """An opened orthophoto: what :func:`read_orthophoto` learnt about the file.

    The handle holds no open dataset; every reader opens its own (one per thread).

    Attributes
    ----------
    path : Path
        The GeoTIFF (or any GDAL raster).
    crs : pyproj.CRS
        Projected CRS of the image.
    transform : affine.Affine
        Pixel-to-CRS transform.
    width, height, count : int
        Size in pixels and number of bands.
    dtype : str
        Band data type.
    resolution_m : tuple of float
        Pixel size (x, y) in metres.
    pixel_area_m2 : float
        Area of one pixel, m².
    bands : dict
        Band role → 1-based band index (``red``, ``green``, ``blue``, optional ``nir``).
    band_order : str
        The roles as letters in band order (``"RGB"``, ``"BGRN"``, ``"RGBA"``; ``X`` unused).
    nodata : float or None
        Nodata value of the bands.
    alpha : int or None
        1-based index of the alpha band.
    mask : str
        How invalid pixels are found: ``"alpha"``, ``"nodata"``, ``"internal"`` (the
        file's mask band), ``"nan"`` (float data) or ``"none"``.
    bounds : tuple of float
        (left, bottom, right, top) in the image CRS.
    block_shape : tuple of int
        (rows, cols) of the file's internal blocks.
    white_level : float or None
        Value of a white pixel (255 for 8-bit data); ``None``: estimated by the classifier.
    """

    path: Path
    crs: CRS
    transform: Affine
    width: int
    height: int
    count: int
    dtype: str
    resolution_m: tuple[float, float]
    pixel_area_m2: float
    bands: dict[str, int]
    band_order: str
    nodata: float | None
    alpha: int | None
    mask: str
    bounds: tuple[float, float, float, float]
    block_shape: tuple[int, int]
    white_level: float | None = None
    linear_unit_m: float = 1.0
    tags: dict[str, str] = field(default_factory=dict, compare=False, repr=False)

    def __repr__(self) -> str:
        return (f"Orthophoto({str(self.path)!r}, {self.width} x {self.height} px, "
                f"{self.band_order} {self.dtype}, {self.crs.to_string()}, "
                f"{self.resolution_m[0]:.3g} m, mask={self.mask})")

    @property
    def has_nir(self) -> bool:
        """True when a near-infrared band is known."""
        return "nir" in self.bands

    @property
    def read_indexes(self) -> list[int]:
        """Band indexes read for classification: red, green, blue[, nir]."""
        idx = [self.bands["red"], self.bands["green"], self.bands["blue"]]
        if self.has_nir:
            idx.append(self.bands["nir"])
        return idx

    @property
    def nbytes(self) -> int:
        """Size of all bands uncompressed, bytes."""
        return self.width * self.height * self.count * np.dtype(self.dtype).itemsize


def _roles_from_letters(spec: str, count: int, path: Path) -> dict[str, int]:
    letters = spec.strip().upper()
    if len(letters) != count:
        raise RasterError(
            f"orthophoto {path}: bands={spec!r} names {len(letters)} bands but the file has "
            f"{count}. Fix: give one letter per band, e.g. 'RGB', 'RGBN', 'BGRN', 'RGBA' "
            "(X for a band to ignore)")
    roles: dict[str, int] = {}
    for i, ch in enumerate(letters, start=1):
        if ch not in _ROLE_LETTERS:
            raise RasterError(
                f"orthophoto {path}: unknown band letter {ch!r} in bands={spec!r}. Fix: use "
                "R, G, B, N (near-infrared), A (alpha) or X (ignore)")
        role = _ROLE_LETTERS[ch]
        if role is None:
            continue
        if role in roles:
            raise RasterError(f"orthophoto {path}: band role {role!r} given twice in "
                              f"bands={spec!r}. Fix: name each role once")
        roles[role] = i
    return roles


def _roles_from_file(ds: Any) -> dict[str, int]:
    roles: dict[str, int] = {}
    for i in range(1, ds.count + 1):
        role = _COLORINTERP_ROLES.get(ds.colorinterp[i - 1])
        if role is None:
            desc = (ds.descriptions[i - 1] or "").strip().lower()
            tags = {k.lower(): str(v).strip().lower() for k, v in ds.tags(i).items()}
            for cand in (desc, tags.get("band_name", ""), tags.get("name", ""),
                         tags.get("wavelength_name", ""), tags.get("role", "")):
                if cand in _DESCRIPTION_ROLES:
                    role = _DESCRIPTION_ROLES[cand]
                    break
        if role is not None and role not in roles:
            roles[role] = i
    return roles


def _letters(roles: dict[str, int], count: int) -> str:
    inv = {v: k for k, v in roles.items()}
    letter = {"red": "R", "green": "G", "blue": "B", "nir": "N", "alpha": "A"}
    return "".join(letter.get(inv.get(i, ""), "X") for i in range(1, count + 1))


def read_orthophoto(
    path: str | Path,
    *,
    bands: str | dict[str, int] | None = None,
    nir: int | None = None,
    white_level: float | None = None,
) -> Orthophoto:
    """Open an orthophoto and check it can be measured: CRS, resolution, band roles, mask.

    Parameters
    ----------
    path : str or Path
        GeoTIFF (or any raster GDAL reads).
    bands : str or dict, optional
        Band roles, one letter per band in file order: ``R`` red, ``G`` green, ``B``
        blue, ``N`` near-infrared, ``A`` alpha, ``X`` ignored (``"RGB"``, ``"RGBN"``,
        ``"BGRN"``, ``"RGBA"``); or a dict ``{"red": 3, "green": 2, "blue": 1,
        "nir": 4}`` of 1-based band indexes. Overrides what the file says. Default: the
        GDAL colour interpretation (``PHOTOMETRIC=RGB``, alpha), then band descriptions
        or the tags ``band_name``/``name``/``wavelength_name`` (``"nir"``, ``"red"``...).
    nir : int, optional
        1-based index of the near-infrared band, added to the roles found in the file
        (e.g. a 4-band drone image whose 4th band is undefined).
    white_level : float, optional
        Value of a white pixel, for the brightness rules; default 255 for 8-bit data,
        otherwise estimated from a sample of windows by :func:`build_classifier`.

    Returns
    -------
    Orthophoto

    Raises
    ------
    RasterError
        Not a raster; no CRS; a geographic CRS (degrees cannot be measured: reproject
        with ``gdalwarp -t_srs EPSG:4549 -r near in.tif out.tif`` or
        ``rasterio.warp.reproject``); fewer than three bands (RGB required); band roles
        that cannot be told (pass ``bands=``).
    """
    p = Path(path)
    if not p.exists():
        raise RasterError(f"orthophoto {p}: file not found. Fix: check the path")
    try:
        ds = rasterio.open(p)
    except RasterioIOError as exc:
        raise RasterError(
            f"orthophoto {p}: not a raster GDAL can read ({exc}). Fix: give a GeoTIFF "
            "(or another GDAL raster) of the orthophoto") from exc
    with ds:
        if ds.count == 0 or ds.width == 0 or ds.height == 0:
            raise RasterError(f"orthophoto {p}: the file has no pixel data. Fix: give a "
                              "raster with bands")
        if ds.crs is None:
            raise RasterError(
                f"orthophoto {p}: the raster has no CRS, so it cannot be placed on the "
                "zones. Fix: set it, e.g. `gdal_edit.py -a_srs EPSG:4549 file.tif` (or the "
                "CRS in the flight report)")
        crs = CRS.from_user_input(ds.crs.to_wkt())
        if crs.is_geographic or not crs.is_projected:
            raise RasterError(
                f"orthophoto {p}: CRS {crs.name} is geographic (degrees); pixel areas in "
                "metres are needed. Fix: reproject the image to a projected CRS first, e.g. "
                "`gdalwarp -t_srs EPSG:4549 -r near in.tif out.tif` (CGCS2000 3-degree GK "
                f"CM 120E) or {settings.metric_crs}")
        unit_m = float(crs.axis_info[0].unit_conversion_factor or 1.0)
        if ds.count < 3:
            raise RasterError(
                f"orthophoto {p}: {ds.count} band(s), but red, green and blue are required "
                "for the classification. Fix: give the RGB (or RGBN) orthophoto, not a "
                "single-band layer (DEM, NDVI or panchromatic)")
        if isinstance(bands, str):
            roles = _roles_from_letters(bands, ds.count, p)
        elif isinstance(bands, dict):
            roles = {str(k).lower(): int(v) for k, v in bands.items()}
            bad = {k: v for k, v in roles.items()
                   if k not in {"red", "green", "blue", "nir", "alpha"}
                   or not 1 <= v <= ds.count}
            if bad:
                raise RasterError(
                    f"orthophoto {p}: bad band roles {bad}. Fix: use keys red, green, "
                    f"blue, nir, alpha with 1-based indexes up to {ds.count}")
        elif bands is None:
            roles = _roles_from_file(ds)
        else:
            raise TypeError(f"bands must be a str, a dict or None, got {bands!r}")
        if nir is not None:
            if not 1 <= int(nir) <= ds.count:
                raise RasterError(f"orthophoto {p}: nir={nir} but the file has {ds.count} "
                                  "bands. Fix: give the 1-based index of the NIR band")
            roles = {k: v for k, v in roles.items() if v != int(nir)}
            roles["nir"] = int(nir)
        missing = [r for r in ("red", "green", "blue") if r not in roles]
        if missing:
            interp = ", ".join(ci.name for ci in ds.colorinterp)
            raise RasterError(
                f"orthophoto {p}: unknown band roles: cannot tell the {', '.join(missing)} "
                f"band(s) ({ds.count} bands, colour interpretation {interp}). Fix: pass "
                "bands='RGB' / 'RGBN' / 'BGRN' (one letter per band) or nir=<index>")
        if bands is None and "alpha" in roles:
            _check_alpha(ds, roles["alpha"], p)
        a, b, _, d, e, _ = ds.transform[:6]
        xres = math.hypot(a, d) * unit_m
        yres = math.hypot(b, e) * unit_m
        pixel_area = abs(a * e - b * d) * unit_m * unit_m
        alpha = roles.get("alpha")
        flags = ds.mask_flag_enums[0] if ds.count else []
        if alpha is not None:
            mask = "alpha"
        elif ds.nodata is not None:
            mask = "nodata"
        elif MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
            mask = "internal"  # (a band GDAL flags alpha but given another role is data)
        elif np.dtype(ds.dtypes[0]).kind == "f":
            mask = "nan"
        else:
            mask = "none"
        if white_level is None and ds.dtypes[0] == "uint8":
            white_level = 255.0
        block = ds.block_shapes[0]
        return Orthophoto(
            path=p, crs=crs, transform=ds.transform, width=ds.width, height=ds.height,
            count=ds.count, dtype=ds.dtypes[0], resolution_m=(xres, yres),
            pixel_area_m2=pixel_area, bands=roles, band_order=_letters(roles, ds.count),
            nodata=None if ds.nodata is None else float(ds.nodata), alpha=alpha, mask=mask,
            bounds=tuple(ds.bounds), block_shape=(int(block[0]), int(block[1])),
            white_level=None if white_level is None else float(white_level),
            linear_unit_m=unit_m, tags=dict(ds.tags()),
        )


def _check_alpha(ds: Any, band: int, path: Path) -> None:
    """Refuse an 'alpha' band (from the file) whose values are not a mask (NIR saved as RGBA).

    GDAL writes a 4-band 8-bit GeoTIFF as RGBA by default, so an RGBN drone image often
    carries its NIR band flagged as alpha; reading it as a mask would silently drop pixels.
    """
    windows = _grid_windows(ds.height, ds.width, ds.block_shapes[0], 1 << 16)
    sample = np.concatenate([ds.read(band, window=w).ravel()  # 16 strided blocks, not all
                             for w in _sample_windows(windows, 16)])
    top = np.iinfo(sample.dtype).max if sample.dtype.kind in "ui" else 1.0
    values = np.unique(sample)
    if np.isin(values, [0, top]).mean() < 1 and (
            values.size > 8 or np.isin(sample, [0, top]).mean() < 0.9):
        raise RasterError(
            f"orthophoto {path}: band {band} is flagged alpha but holds {values.size} "
            "distinct values, not a 0/255 mask (a near-infrared band saved as RGBA?). Fix: "
            "pass bands='RGBN' (or the real order), or bands='RGBA' if it is an alpha band")


def _as_ortho(ortho: Orthophoto | str | Path) -> Orthophoto:
    return ortho if isinstance(ortho, Orthophoto) else read_orthophoto(ortho)


# --------------------------------------------------------------------------- windows


def block_windows(ortho: Orthophoto, *, window_pixels: int = 1 << 20) -> list[Window]:
    """Windows aligned on the file's internal blocks, grouped to about ``window_pixels``.

    Tiles of 512 × 512 are grouped 2 × 2 by default (1 Mpx); strips (one row high) are
    grouped into full-width bands of rows. The windows cover the image exactly, in
    row-major order.
    """
    return _grid_windows(ortho.height, ortho.width, ortho.block_shape, window_pixels)


def _grid_windows(height: int, width: int, block_shape: tuple[int, int],
                  window_pixels: int) -> list[Window]:
    bh, bw = block_shape
    bh, bw = max(1, min(bh, height)), max(1, min(bw, width))
    kx = max(1, int(math.sqrt(window_pixels) // bw))
    ww = min(width, kx * bw)
    ky = max(1, int(window_pixels // (ww * bh)))
    wh = min(height, ky * bh)
    out = []
    for row in range(0, height, wh):
        for col in range(0, width, ww):
            out.append(Window(col, row, min(ww, width - col), min(wh, height - row)))
    return out


def _window_boxes(ortho: Orthophoto, windows: Sequence[Window]) -> np.ndarray:
    """Axis-aligned boxes (image CRS) of the windows, as shapely polygons."""
    c0 = np.array([w.col_off for w in windows], dtype=float)
    r0 = np.array([w.row_off for w in windows], dtype=float)
    c1 = c0 + np.array([w.width for w in windows], dtype=float)
    r1 = r0 + np.array([w.height for w in windows], dtype=float)
    t = ortho.transform
    xs, ys = [], []
    for cc, rr in ((c0, r0), (c1, r0), (c0, r1), (c1, r1)):
        xs.append(t.a * cc + t.b * rr + t.c)
        ys.append(t.d * cc + t.e * rr + t.f)
    xs_a, ys_a = np.vstack(xs), np.vstack(ys)
    return shapely.box(xs_a.min(0), ys_a.min(0), xs_a.max(0), ys_a.max(0))


class _Readers:
    """One rasterio dataset per thread (GDAL handles are not thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = threading.local()
        self.lock = threading.Lock()
        self.opened: list[Any] = []

    def get(self) -> Any:
        ds = getattr(self.local, "ds", None)
        if ds is None:
            ds = rasterio.open(self.path)
            self.local.ds = ds
            with self.lock:
                self.opened.append(ds)
        return ds

    def close(self) -> None:
        with self.lock:
            for ds in self.opened:
                ds.close()
            self.opened.clear()


def _read_window(ds: Any, ortho: Orthophoto, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Bands (R, G, B[, N]) of a window and its validity mask."""
    idx = ortho.read_indexes
    data = ds.read(idx, window=window)
    if ortho.mask == "alpha":
        valid = ds.read(ortho.alpha, window=window) > 0
    elif ortho.mask == "nodata":
        valid = np.any(data != data.dtype.type(ortho.nodata), axis=0)
        if data.dtype.kind == "f":
            valid &= np.all(np.isfinite(data), axis=0)
    elif ortho.mask == "internal":
        valid = ds.read_masks(idx[0], window=window) > 0
    elif ortho.mask == "nan":
        valid = np.all(np.isfinite(data), axis=0)
    else:
        valid = np.ones(data.shape[1:], dtype=bool)
    return data, valid


def _bounded_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int,
                 depth: int | None = None) -> Iterator[Any]:
    """``map`` over a thread pool with at most ``depth`` tasks in flight, in order."""
    if workers <= 1:
        for it in items:
            yield fn(it)
        return
    depth = depth or 2 * workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for it in items:
            pending.append(pool.submit(fn, it))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


# --------------------------------------------------------------------------- classifier


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


def _sample_windows(windows: Sequence[Window], n: int) -> list[Window]:
    if len(windows) <= n:
        return list(windows)
    pick = np.unique(np.linspace(0, len(windows) - 1, n).round().astype(int))
    return [windows[i] for i in pick]


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


# --------------------------------------------------------------------------- zones


def _prepare_zones(zones: gpd.GeoDataFrame, ortho: Orthophoto,
                   id_col: str | None) -> tuple[pd.Index, np.ndarray, str, str | None]:
    """Zone IDs (sorted order kept by caller), geometries in the image CRS, id name."""
    if not isinstance(zones, gpd.GeoDataFrame):
        raise LayerError("zones", f"expected a GeoDataFrame, got {type(zones).__name__}",
                         fix="read the polygon layer with geotijian.read_layer or geopandas")
    if zones.crs is None:
        raise LayerError("zones", "the layer has no CRS, so it cannot be placed on the image",
                         fix="set it with zones.set_crs(...) (the CRS the file was drawn in)")
    if id_col is not None:
        if id_col not in zones.columns:
            raise LayerError("zones", f"no ID column {id_col!r}",
                             fix=f"give id_col= one of {list(zones.columns)}")
        ids = pd.Index(zones[id_col].to_numpy(), name=id_col)
    else:
        ids = pd.Index(zones.index.to_numpy(), name=zones.index.name or "zone_id")
    if ids.hasnans:
        pos = int(np.flatnonzero(pd.isna(ids))[0])
        raise LayerError("zones", "a zone has no ID", feature=pos, fix="fill the ID column")
    if ids.has_duplicates:
        dup = ids[ids.duplicated()]
        pos = int(np.flatnonzero(ids == dup[0])[1])
        raise LayerError("zones", f"duplicate zone ID {dup[0]!r}", feature=pos,
                         feature_id=dup[0], count=len(dup), fix="make the IDs unique")
    geoms = zones.geometry.to_numpy()
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if empty.any():
        pos = int(np.flatnonzero(empty)[0])
        raise LayerError("zones", "empty or missing geometry", feature=pos,
                         feature_id=ids[pos], count=int(empty.sum()),
                         fix="drop or redraw these zones")
    kinds = shapely.get_type_id(geoms)
    notpoly = ~np.isin(kinds, [3, 6])
    if notpoly.any():
        pos = int(np.flatnonzero(notpoly)[0])
        raise LayerError("zones", f"geometry is {shapely.get_type_id(geoms[pos])} "
                         "(not a polygon)", feature=pos, feature_id=ids[pos],
                         count=int(notpoly.sum()), fix="give polygon zones")
    src_crs = CRS.from_user_input(zones.crs)
    reprojected = None
    if not src_crs.equals(ortho.crs):
        reprojected = src_crs.to_string()
        geoms = gpd.GeoSeries(geoms, crs=zones.crs).to_crs(ortho.crs).to_numpy()
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        pos = int(np.flatnonzero(invalid)[0])
        warnings.warn(f"zones: {int(invalid.sum())} invalid polygon(s) repaired with "
                      f"make_valid (first: feature {pos}, id {ids[pos]!r})", RepairWarning,
                      stacklevel=3)
        geoms = geoms.copy()
        for pos in np.flatnonzero(invalid):  # only the invalid ones, usually none
            parts = shapely.get_parts(shapely.make_valid(geoms[pos]))
            geoms[pos] = shapely.union_all(parts[np.isin(shapely.get_type_id(parts), [3, 6])])
    return ids, np.asarray(geoms, dtype=object), str(ids.name), reprojected


def _overlap_groups(geoms: np.ndarray) -> np.ndarray:
    """Group number per zone so that zones of one group never overlap (interiors)."""
    n = len(geoms)
    group = np.zeros(n, dtype=np.int64)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if left.size:
        inner = ~shapely.touches(geoms[left], geoms[right])
        left, right = left[inner], right[inner]
    if not left.size:
        return group
    nbrs: dict[int, list[int]] = {}
    for a, b in zip(left.tolist(), right.tolist()):
        nbrs.setdefault(b, []).append(a)
    for i in sorted(nbrs):  # greedy colouring in zone order (deterministic)
        used = {int(group[j]) for j in nbrs[i]}
        c = 0
        while c in used:
            c += 1
        group[i] = c
    return group


def zonal_cover(
    ortho: Orthophoto | str | Path,
    zones: gpd.GeoDataFrame,
    *,
    id_col: str | None = None,
    classes: Classifier | None = None,
    workers: int = 2,
    window_pixels: int = 1 << 20,
) -> pd.DataFrame:
    """Share of green, impervious, water, bare and unclassified pixels per zone.

    Streams over the file's block windows (grouped to ``window_pixels``): each window is
    read, classified, and the zone IDs are rasterized on the window's transform (pixel
    centres, ``all_touched=False``); ``np.bincount`` of ``zone * 6 + class`` accumulates
    the counts. Memory is flat in the file size; windows without any zone are not read.
    ``workers`` threads each hold their own dataset handle (GDAL and numpy release the
    GIL).

    Parameters
    ----------
    ortho : Orthophoto or path
    zones : GeoDataFrame
        Polygons (units, compounds, parks, any layer) in any CRS: reprojected to the
        image CRS (recorded in ``attrs["zones_reprojected_from"]``). Overlapping zones
        are each counted in full (see the module docstring).
    id_col : str, optional
        Column with the zone ID; default the index.
    classes : Classifier, optional
        Pixel rules; default :func:`build_classifier` with the settings' thresholds.
    workers : int
        Threads (2 = both cores of the target machine).
    window_pixels : int
        Pixels per window (default 1 Mpx: about 50 MB of temporaries per thread).

    Returns
    -------
    DataFrame
        One row per zone, sorted by ID: the ID column, ``zone_area_m2``, ``pixels``
        (valid imaged pixels inside the zone), ``nodata_pixels``, ``vegetation_pixels``,
        ``impervious_pixels``, ``water_pixels``, ``bare_pixels``, ``unclassified_pixels``
        (shadow), ``covered_area_m2`` (pixels × pixel area), ``coverage_share``
        (covered / zone area, clipped to 1), ``green_share``, ``impervious_share``,
        ``water_share``, ``bare_share``, ``unclassified_share`` (shares of ``pixels``,
        0-1, NaN without imagery) and ``flag`` (``;``-joined: ``no_imagery``,
        ``partial_coverage`` below ``settings.imagery_min_coverage``,
        ``high_unclassified`` above ``settings.imagery_max_unclassified``; empty when
        fine). ``attrs`` hold the classifier, CRS and pixel area.
    """
    ortho = _as_ortho(ortho)
    ids, geoms, id_name, reprojected = _prepare_zones(zones, ortho, id_col)
    clf = classes if classes is not None else build_classifier(ortho, workers=workers)
    if clf.has_nir and not ortho.has_nir:
        raise RasterError(f"orthophoto {ortho.path}: the classifier expects NIR but the "
                          f"image has {ortho.band_order}. Fix: build it from this image")
    nz = len(geoms)
    counts = np.zeros((nz, N_CLASSES), dtype=np.int64)
    windows = block_windows(ortho, window_pixels=window_pixels)
    if nz:
        groups = _overlap_groups(geoms)
        boxes = _window_boxes(ortho, windows)
        w_idx, z_idx = shapely.STRtree(geoms).query(boxes, predicate="intersects")
        order = np.lexsort((z_idx, w_idx))
        w_idx, z_idx = w_idx[order], z_idx[order]
        # a zone covering the whole window needs no rasterizing: all its pixel centres count
        full = shapely.covers(geoms[z_idx], boxes[w_idx])
        starts = np.searchsorted(w_idx, np.arange(len(windows) + 1))
        jobs = [(i, z_idx[starts[i]:starts[i + 1]], full[starts[i]:starts[i + 1]])
                for i in range(len(windows)) if starts[i + 1] > starts[i]]
    else:
        groups, boxes, jobs = np.zeros(0, dtype=np.int64), None, []
    if nz and not jobs:
        warnings.warn(
            f"zones: none of the {nz} zones overlaps the orthophoto {ortho.path.name} "
            f"(image bounds {tuple(round(v) for v in ortho.bounds)} in "
            f"{ortho.crs.to_string()}); every zone is flagged no_imagery. Check the zones' "
            "CRS (a GCJ-02 layer or a wrong set_crs) and the flight area",
            CoordinateWarning, stacklevel=2)
    classify = _WindowClassifier(ortho, clf)

    def work(job: tuple[int, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        i, cands, covers = job
        w = windows[i]
        cls = classify(w)
        local = np.zeros((len(cands), N_CLASSES), dtype=np.int64)
        if covers.any():  # six passes of count_nonzero beat bincount's cast to intp
            local[covers] = [np.count_nonzero(cls == c) for c in range(N_CLASSES)]
        part = np.flatnonzero(~covers)
        if not part.size:
            return cands, local
        wt = ortho.transform @ Affine.translation(w.col_off, w.row_off)
        xmin, ymin, xmax, ymax = boxes[i].bounds
        clipped = shapely.clip_by_rect(geoms[cands[part]], xmin, ymin, xmax, ymax)
        nonempty = ~shapely.is_empty(clipped)
        part_groups = groups[cands[part]]
        small = len(part) < 31  # zone * 8 + class fits in a byte
        for g in np.unique(part_groups):
            sel = np.flatnonzero((part_groups == g) & nonempty)
            if not sel.size:
                continue
            zid = classify.buffer("zid", (w.height, w.width), np.uint8 if small else np.int32)
            zid.fill(0)
            rasterio.features.rasterize(
                zip(clipped[sel], (sel + 1).tolist()), out=zid, transform=wt,
                all_touched=False)
            if small:
                key = np.left_shift(zid, 3, out=classify.buffer("key", zid.shape, np.uint8))
                key |= cls
            else:
                key = zid.astype(np.intp) << 3
                key += cls
            if sel.size <= 4:
                # few zones: compare-and-count passes release the GIL and beat bincount
                eq = classify.buffer("eq", key.shape, np.bool_)
                for j in sel.tolist():
                    for c in range(N_CLASSES):
                        np.equal(key, ((j + 1) << 3) | c, out=eq)
                        local[part[j], c] += np.count_nonzero(eq)
            else:
                hist = np.bincount(key.ravel(), minlength=(len(part) + 1) * 8)
                local[part] += hist.reshape(-1, 8)[1:len(part) + 1, :N_CLASSES]
        return cands, local

    try:
        with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB), warnings.catch_warnings():
            # rasterize's in-memory dataset is opened before its transform is set: rasterio
            # then warns "no geotransform" from worker threads; the result is unaffected
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            for cands, local in _bounded_map(work, jobs, workers):
                counts[cands] += local
    finally:
        classify.close()
    return _cover_table(ids, id_name, geoms, counts, ortho, clf, reprojected)


def _cover_table(ids: pd.Index, id_name: str, geoms: np.ndarray, counts: np.ndarray,
                 ortho: Orthophoto, clf: Classifier, reprojected: str | None) -> pd.DataFrame:
    area = shapely.area(geoms) * ortho.linear_unit_m ** 2 if len(geoms) else np.zeros(0)
    valid = counts[:, 1:].sum(axis=1)
    covered = valid * ortho.pixel_area_m2
    with np.errstate(divide="ignore", invalid="ignore"):
        share = counts / valid[:, None]
        coverage = np.where(area > 0, np.minimum(covered / area, 1.0), 0.0)
    df = pd.DataFrame({
        id_name: ids.to_numpy(),
        "zone_area_m2": area,
        "pixels": valid,
        "nodata_pixels": counts[:, NODATA],
        "vegetation_pixels": counts[:, VEGETATION],
        "impervious_pixels": counts[:, IMPERVIOUS],
        "water_pixels": counts[:, WATER],
        "bare_pixels": counts[:, BARE],
        "unclassified_pixels": counts[:, SHADOW],
        "covered_area_m2": covered,
        "coverage_share": coverage,
        "green_share": share[:, VEGETATION],
        "impervious_share": share[:, IMPERVIOUS],
        "water_share": share[:, WATER],
        "bare_share": share[:, BARE],
        "unclassified_share": share[:, SHADOW],
    })
    none = valid == 0
    partial = ~none & (coverage < settings.imagery_min_coverage)
    dark = ~none & (np.nan_to_num(share[:, SHADOW]) > settings.imagery_max_unclassified)
    flags = np.full(len(df), "", dtype=object)
    for mask, name in ((none, "no_imagery"), (partial, "partial_coverage"),
                       (dark, "high_unclassified")):
        flags[mask] = np.where(flags[mask] == "", name, flags[mask] + ";" + name)
    df["flag"] = flags
    df = df.sort_values(id_name, kind="stable").reset_index(drop=True)
    df.attrs.update({
        "crs": ortho.crs.to_string(), "pixel_area_m2": ortho.pixel_area_m2,
        "image": str(ortho.path), "band_order": ortho.band_order,
        "zones_reprojected_from": reprojected, "classifier": clf.describe(),
        "class_codes": dict(CLASS_NAMES),
    })
    return df


def imagery_indicators(
    ortho: Orthophoto | str | Path,
    units: gpd.GeoDataFrame,
    *,
    id_col: str | None = None,
    classes: Classifier | None = None,
    workers: int = 2,
) -> pd.DataFrame:
    """``green_cover_ratio`` (绿化覆盖率) and ``impervious_ratio`` per unit, in %.

    Parameters
    ----------
    ortho : Orthophoto or path
    units : GeoDataFrame
        Units (or any zones); ID from ``id_col``, else ``unit_id`` when present, else
        the index.
    id_col, classes, workers
        As in :func:`zonal_cover`.

    Returns
    -------
    DataFrame
        ``unit_id``, ``green_cover_ratio`` (vegetation pixels / imaged pixels × 100, %),
        ``impervious_ratio`` (%), ``coverage_share`` (0-1) and ``flag``, sorted by
        ``unit_id``. Ratios are NaN where the unit has no imagery. Shadow counts in the
        denominator only, so both ratios are lower bounds where shadow is large.
    """
    if id_col is None and "unit_id" in getattr(units, "columns", []):
        id_col = "unit_id"
    cover = zonal_cover(ortho, units, id_col=id_col, classes=classes, workers=workers)
    name = cover.columns[0]
    out = pd.DataFrame({
        "unit_id": cover[name].to_numpy(),
        "green_cover_ratio": cover["green_share"].to_numpy() * 100.0,
        "impervious_ratio": cover["impervious_share"].to_numpy() * 100.0,
        "coverage_share": cover["coverage_share"].to_numpy(),
        "flag": cover["flag"].to_numpy(),
    })
    out.attrs.update(cover.attrs)
    return out


# --------------------------------------------------------------------------- outputs


def write_classified(
    ortho: Orthophoto | str | Path,
    path: str | Path,
    *,
    classes: Classifier | None = None,
    workers: int = 2,
    window_pixels: int = 1 << 20,
) -> Path:
    """Write the class codes as a tiled, deflate-compressed, COG-style GeoTIFF.

    One uint8 band (codes in the module docstring, nodata 0) with a colour table, 512 ×
    512 tiles, DEFLATE, and overviews (mode resampling)
    down to ≤ 512 px; laid out by GDAL's COG driver when present. Written atomically.

    Parameters
    ----------
    ortho : Orthophoto or path
    path : str or Path
        Target ``.tif``.
    classes : Classifier, optional
        Default :func:`build_classifier` with the settings.
    workers : int
        Threads classifying windows (the writing is done by one thread).
    window_pixels : int
        Pixels per window.

    Returns
    -------
    Path
    """
    ortho = _as_ortho(ortho)
    clf = classes if classes is not None else build_classifier(ortho, workers=workers)
    target = Path(path)
    windows = block_windows(ortho, window_pixels=window_pixels)
    classify = _WindowClassifier(ortho, clf)
    profile = {
        "driver": "GTiff", "width": ortho.width, "height": ortho.height, "count": 1,
        "dtype": "uint8", "crs": rasterio.crs.CRS.from_wkt(ortho.crs.to_wkt()),
        "transform": ortho.transform, "nodata": 0, "tiled": True, "blockxsize": 512,
        "blockysize": 512, "compress": "deflate", "BIGTIFF": "IF_SAFER",
    }

    def work(w: Window) -> tuple[Window, np.ndarray]:
        return w, classify(w).copy()  # the thread reuses its buffer for the next window

    factors = []  # halve until the long side is at most 256 px
    while max(ortho.width, ortho.height) / (factors[-1] if factors else 1) > 256:
        factors.append(2 * (factors[-1] if factors else 1))
    with atomic_path(target) as tmp:
        stage = tmp.with_name(tmp.name + ".stage.tif")
        try:
            with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB):
                with rasterio.open(stage, "w", **profile) as dst:
                    dst.write_colormap(1, CLASS_COLOURS)
                    dst.update_tags(1, **{f"class_{k}": v for k, v in CLASS_NAMES.items()})
                    dst.update_tags(geotijian_classes="1", classifier=repr(clf.describe()),
                                    source=str(ortho.path))
                    try:
                        for w, cls in _bounded_map(work, windows, workers):
                            dst.write(cls, 1, window=w)
                    finally:
                        classify.close()
                    if factors:
                        dst.build_overviews(factors, Resampling.mode)
                if _has_driver("COG"):
                    rasterio.shutil.copy(stage, tmp, driver="COG", compress="DEFLATE",
                                         blocksize=512, overviews="FORCE_USE_EXISTING",
                                         BIGTIFF="IF_SAFER")
                else:  # GDAL < 3.1 has no COG driver: keep the tiled GTiff with overviews
                    stage.replace(tmp)
        finally:
            stage.unlink(missing_ok=True)
    return target


def _has_driver(name: str) -> bool:
    with rasterio.Env() as env:
        return name in env.drivers()


def _decimate(windows: Sequence[Window], shape: tuple[int, int], f: int,
              read: Callable[[Window], np.ndarray]) -> np.ndarray:
    """Every ``f``-th row and column of the image (nearest), read window by window."""
    out: np.ndarray | None = None
    for win in windows:
        r0, c0 = int(win.row_off), int(win.col_off)
        rs, cs = (-r0) % f, (-c0) % f  # first sampled row/column inside the window
        if rs >= win.height or cs >= win.width:
            continue
        part = read(win)[:, rs::f, cs::f]
        if out is None:
            out = np.zeros((part.shape[0],) + shape, dtype=part.dtype)
        ro, co = (r0 + rs) // f, (c0 + cs) // f
        out[:, ro:ro + part.shape[1], co:co + part.shape[2]] = part
    assert out is not None
    return out


def _stretch(rgb: np.ndarray, valid: np.ndarray) -> np.ndarray:
    out = np.zeros(rgb.shape[1:] + (4,), dtype=np.uint8)
    for k in range(3):
        band = rgb[k].astype(np.float64)
        v = band[valid]
        lo, hi = (np.percentile(v, [2, 98]) if v.size else (0.0, 1.0))
        hi = hi if hi > lo else lo + 1
        out[..., k] = np.clip((band - lo) / (hi - lo) * 255, 0, 255).astype(np.uint8)
    out[..., 3] = np.where(valid, 255, 0)
    return out


def quicklook_png(
    ortho_or_classified: Orthophoto | str | Path,
    path: str | Path,
    *,
    max_size: int = 1024,
    classified: bool = False,
    classes: Classifier | None = None,
) -> Path:
    """A PNG preview (≤ ``max_size`` pixels on the long side) for the report.

    Parameters
    ----------
    ortho_or_classified : Orthophoto or path
        An orthophoto (true-colour, 2-98 % stretch) or a classified GeoTIFF from
        :func:`write_classified` (class colours).
    path : str or Path
        Target ``.png``; written atomically.
    max_size : int
        Long side at most this many pixels: every f-th pixel (nearest), from the
        overviews when the file has them, otherwise window by window (the file is read
        once; memory stays small).
    classified : bool
        With an orthophoto: show its classes instead of true colour.
    classes : Classifier, optional
        Rules for ``classified=True``; default :func:`build_classifier`.

    Returns
    -------
    Path
    """
    import matplotlib.image as mpimg

    src = ortho_or_classified
    is_class_file = False
    if not isinstance(src, Orthophoto):
        p = Path(src)
        try:
            with rasterio.open(p) as ds:
                is_class_file = ds.count == 1 and ds.tags().get("geotijian_classes") == "1"
        except RasterioIOError as exc:
            raise RasterError(f"quicklook: {p} is not a raster ({exc})") from exc
        if not is_class_file:
            src = read_orthophoto(p)
    file_path = Path(src.path) if isinstance(src, Orthophoto) else Path(src)
    with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB), rasterio.open(file_path) as ds:
        f = max(1, math.ceil(max(ds.width, ds.height) / max_size))
        shape = (-(-ds.height // f), -(-ds.width // f))
        if ds.overviews(1):  # GDAL picks the overview level: a few blocks only
            def read(indexes: list[int], masks: bool = False) -> np.ndarray:
                fn = ds.read_masks if masks else ds.read
                return fn(indexes, out_shape=(len(indexes),) + shape,
                          resampling=Resampling.nearest)
        else:  # every f-th pixel, window by window: the file is read once, memory small
            windows = _grid_windows(ds.height, ds.width, ds.block_shapes[0], 1 << 20)

            def read(indexes: list[int], masks: bool = False) -> np.ndarray:
                fn = ds.read_masks if masks else ds.read
                return _decimate(windows, shape, f, lambda w: fn(indexes, window=w))
        if is_class_file:
            codes = read([1])[0]
        else:
            assert isinstance(src, Orthophoto)
            idx = src.read_indexes
            data = read(idx)
            if src.mask == "alpha":
                valid = read([src.alpha])[0] > 0
            elif src.mask == "nodata":
                valid = np.any(data != data.dtype.type(src.nodata), axis=0)
            elif src.mask == "internal":
                valid = read([idx[0]], masks=True)[0] > 0
            else:
                valid = np.all(np.isfinite(data), axis=0)
            if classified:
                clf = classes if classes is not None else build_classifier(src)
                codes = clf.classify(data, valid)
            else:
                img = _stretch(data[:3], valid)
    if is_class_file or classified:
        lut = np.array([CLASS_COLOURS[k] for k in range(N_CLASSES)], dtype=np.uint8)
        img = lut[np.clip(codes, 0, N_CLASSES - 1)]
    target = Path(path)
    with atomic_path(target) as tmp:
        mpimg.imsave(tmp, img, format="png")
    return target
