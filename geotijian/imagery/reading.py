"""Opening an orthophoto: CRS, resolution, band roles and how invalid pixels are found."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
from affine import Affine
from pyproj import CRS
from rasterio.enums import ColorInterp, MaskFlags
from rasterio.errors import RasterioIOError

from .. import settings
from ..errors import RasterError
from .windows import _grid_windows, _sample_windows


_ROLE_LETTERS = {"R": "red", "G": "green", "B": "blue", "N": "nir", "A": "alpha", "X": None}
_COLORINTERP_ROLES = {ColorInterp.red: "red", ColorInterp.green: "green",
                      ColorInterp.blue: "blue", ColorInterp.alpha: "alpha"}
_DESCRIPTION_ROLES = {
    "red": "red", "r": "red", "green": "green", "g": "green", "blue": "blue", "b": "blue",
    "nir": "nir", "n": "nir", "near-infrared": "nir", "near infrared": "nir",
    "nearinfrared": "nir", "near_infrared": "nir", "near-ir": "nir", "alpha": "alpha",
}


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
        roles = _band_roles(ds, p, bands, nir)
        a, b, _, d, e, _ = ds.transform[:6]
        xres = math.hypot(a, d) * unit_m
        yres = math.hypot(b, e) * unit_m
        pixel_area = abs(a * e - b * d) * unit_m * unit_m
        alpha = roles.get("alpha")
        mask = _mask_kind(ds, alpha)
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


def _band_roles(ds: Any, p: Path, bands: str | dict[str, int] | None,
                nir: int | None) -> dict[str, int]:
    """Band role → 1-based index, from ``bands`` / ``nir`` or the file (see
    :func:`read_orthophoto`); red, green and blue must be known."""
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
    return roles


def _mask_kind(ds: Any, alpha: int | None) -> str:
    """How invalid pixels are found (see :attr:`Orthophoto.mask`)."""
    flags = ds.mask_flag_enums[0] if ds.count else []
    if alpha is not None:
        return "alpha"
    if ds.nodata is not None:
        return "nodata"
    if MaskFlags.per_dataset in flags and MaskFlags.alpha not in flags:
        return "internal"  # (a band GDAL flags alpha but given another role is data)
    if np.dtype(ds.dtypes[0]).kind == "f":
        return "nan"
    return "none"


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
