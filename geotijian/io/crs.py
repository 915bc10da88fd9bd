"""Does a metric CRS suit the data? Scale error and area of use at the data's extent.

Every length and area of a study is measured in its metric CRS (``study.crs``). A CRS made
for another part of the world (``EPSG:3265``, an Antarctic zone, typed for ``EPSG:32651``)
still projects Shanghai, and every distance comes out wrong without an error. Here the
projection's scale factors (pyproj ``Proj.get_factors``) are evaluated at the centre and
the corners of the data, and its area of use is compared with the data's position.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from pyproj import CRS, Proj

__all__ = ["crs_fit", "suggest_metric_crs"]

#: Largest length scale error (fraction) tolerated at the data: 0.5 % (UTM at a zone edge
#: is 0.1 %; Web Mercator at 31°N is 17 %).
MAX_LENGTH_SCALE_ERROR = 0.005
#: Largest areal scale error tolerated (densities per km² use it): 1 %.
MAX_AREA_SCALE_ERROR = 0.01
#: Data farther than this (degrees of great-circle arc, ≈ 111 km each) outside the CRS's
#: area of use means the CRS was made for another region: 10° ≈ 1,100 km.
MAX_OUTSIDE_DEG = 10.0


def suggest_metric_crs(lon: float, lat: float) -> str:
    """The UTM zone of a point and, in China, the CGCS2000 3-degree Gauss-Krüger zone."""
    zone = int((lon + 180) // 6) + 1
    utm = f"EPSG:{(32600 if lat >= 0 else 32700) + zone} (WGS 84 / UTM zone {zone}{'N' if lat >= 0 else 'S'})"
    cm = int(round(lon / 3.0) * 3)
    if 73 <= lon <= 136 and 17 <= lat <= 54 and 75 <= cm <= 135:
        return f"{utm} or EPSG:{4534 + (cm - 75) // 3} (CGCS2000 / 3-degree Gauss-Kruger CM {cm}E)"
    return utm


def _outside_deg(aou: Any, lon: float, lat: float) -> float:
    if aou is None:
        return 0.0
    west, east = aou.west, aou.east
    if west > east:  # crosses the antimeridian
        inside_lon = lon >= west or lon <= east
        dx = 0.0 if inside_lon else min(abs(lon - west), abs(lon - east))
    else:
        dx = max(west - lon, 0.0, lon - east)
    dy = max(aou.south - lat, 0.0, lat - aou.north)
    return math.hypot(dx * math.cos(math.radians(lat)), dy)


def crs_fit(crs: Any, bounds: tuple[float, float, float, float]) -> dict:
    """How well a projected CRS suits data within ``bounds`` (lon/lat degrees).

    Parameters
    ----------
    crs : CRS-like
        The metric CRS.
    bounds : (west, south, east, north)
        Extent of the data in WGS84/CGCS2000 degrees.

    Returns
    -------
    dict
        ``length_error`` and ``area_error`` (worst fraction over the centre and corners;
        ``inf`` when the projection fails there), ``outside_deg`` (degrees the data centre
        lies outside the area of use, 0 inside), ``area_name`` (what the CRS is made for),
        ``lon``/``lat`` (data centre), ``ok`` (within the limits above), ``warn`` (usable
        but outside the area of use), ``problem`` (a sentence when not ok) and
        ``suggest`` (CRS to use instead).
    """
    c = CRS.from_user_input(crs)
    w, s, e, n = (float(v) for v in bounds)
    lon, lat = (w + e) / 2.0, (s + n) / 2.0
    lons = np.array([lon, w, e, w, e])
    lats = np.array([lat, s, s, n, n])
    try:
        f = Proj(c).get_factors(lons, lats)
        length = np.maximum(np.abs(np.asarray(f.meridional_scale) - 1.0), np.abs(np.asarray(f.parallel_scale) - 1.0))
        area = np.abs(np.asarray(f.areal_scale) - 1.0)
        length_err = float(np.max(length)) if np.all(np.isfinite(length)) else math.inf
        area_err = float(np.max(area)) if np.all(np.isfinite(area)) else math.inf
    except Exception:
        length_err = area_err = math.inf
    aou = c.area_of_use
    outside = _outside_deg(aou, lon, lat)
    name = aou.name if aou is not None else "(no area of use recorded)"
    problems = []
    if outside > MAX_OUTSIDE_DEG:
        problems.append(f"it is made for {name}, about {outside * 111:,.0f} km from the data")
    if not math.isfinite(length_err):
        problems.append("it cannot project the data's position")
    elif length_err > MAX_LENGTH_SCALE_ERROR or area_err > MAX_AREA_SCALE_ERROR:
        problems.append(f"at the data it stretches lengths by up to {length_err:.1%} and areas by up to "
                        f"{area_err:.1%}")
    return {
        "length_error": length_err, "area_error": area_err, "outside_deg": outside, "area_name": name,
        "lon": lon, "lat": lat, "ok": not problems, "warn": not problems and outside > 0,
        "problem": "; ".join(problems), "suggest": suggest_metric_crs(lon, lat), "name": c.name,
    }
