"""GCJ-02 / BD-09 conversions: round trips in metres, the Jiading offset, outside China."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings as hsettings
from hypothesis import strategies as st
from pyproj import Geod

from geotijian.io.coords import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    convert_coords,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    in_china,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)

GEOD = Geod(ellps="WGS84")


def _metres(lon1, lat1, lon2, lat2) -> np.ndarray:
    _, _, d = GEOD.inv(lon1, lat1, lon2, lat2)
    return np.asarray(d)


def _china_points(n: int, seed: int = 20240604) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    # mainland China's box, where the offsets apply (in_china); 73.5-135E, 18-53.5N
    return rng.uniform(73.5, 135.0, n), rng.uniform(18.0, 53.5, n)


def test_gcj02_round_trip_10000_points():
    lon, lat = _china_points(10_000)
    glon, glat = wgs84_to_gcj02(lon, lat)
    moved = _metres(lon, lat, glon, glat)
    assert moved.min() > 1.0  # the offset is applied everywhere in the box
    back_lon, back_lat = gcj02_to_wgs84(glon, glat)
    err = _metres(lon, lat, back_lon, back_lat)
    assert err.max() < 0.5, f"max round-trip error {err.max():.3f} m"
    assert np.median(err) < 0.01


def test_gcj02_inverse_other_way_round():
    # a GCJ-02 point converted to WGS84 maps forward onto itself
    glon, glat = _china_points(2_000, seed=7)
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    flon, flat = wgs84_to_gcj02(wlon, wlat)
    assert _metres(glon, glat, flon, flat).max() < 0.5


def test_bd09_round_trip_10000_points():
    lon, lat = _china_points(10_000, seed=11)
    blon, blat = wgs84_to_bd09(lon, lat)
    assert _metres(lon, lat, blon, blat).min() > 1.0
    back = bd09_to_wgs84(blon, blat)
    err = _metres(lon, lat, *back)
    assert err.max() < 0.5, f"max BD-09 round-trip error {err.max():.3f} m"
    # and the GCJ-02 ↔ BD-09 step alone
    glon, glat = wgs84_to_gcj02(lon, lat)
    g2 = bd09_to_gcj02(*gcj02_to_bd09(glon, glat))
    assert _metres(glon, glat, *g2).max() < 0.5


def test_jiading_offset_distance_and_bearing():
    lon, lat = 121.25, 31.38  # Jiading new town
    glon, glat = wgs84_to_gcj02(lon, lat)
    az, _, dist = GEOD.inv(lon, lat, float(glon), float(glat))
    assert 475.0 <= dist <= 485.0
    assert 100.0 <= az % 360 <= 125.0  # east-south-east


def test_outside_china_unchanged():
    lon = np.array([2.35, -74.0, 24.94, 139.69, 151.2])  # Paris, New York, Helsinki, Tokyo, Sydney
    lat = np.array([48.86, 40.71, 60.17, 35.69, -33.87])
    assert not in_china(lon, lat).any()
    for fn in (wgs84_to_gcj02, gcj02_to_wgs84):
        olon, olat = fn(lon, lat)
        np.testing.assert_array_equal(olon, lon)
        np.testing.assert_array_equal(olat, lat)


def test_scalars_shapes_and_errors():
    lon, lat = wgs84_to_gcj02(121.25, 31.38)
    assert np.ndim(lon) == 0 and np.ndim(lat) == 0
    grid = np.full((3, 4), 121.25), np.full((3, 4), 31.38)
    assert wgs84_to_gcj02(*grid)[0].shape == (3, 4)
    with pytest.raises(ValueError, match="differ in shape"):
        wgs84_to_gcj02([121.0, 121.1], [31.0])
    with pytest.raises(ValueError, match="unknown coordinate system"):
        convert_coords(121.0, 31.0, "mars")


def test_convert_coords_dispatch():
    lon, lat = 121.25, 31.38
    g = convert_coords(lon, lat, "wgs84", "gcj02")
    np.testing.assert_allclose(g, wgs84_to_gcj02(lon, lat))
    b = convert_coords(lon, lat, "EPSG:4490", "baidu")  # CGCS2000 ≈ WGS84
    np.testing.assert_allclose(b, wgs84_to_bd09(lon, lat))
    back = convert_coords(*b, "bd09", "gcj02")
    assert _metres(*g, *back) < 0.5


@hsettings(max_examples=200, deadline=None)
@given(lon=st.floats(73.5, 135.0, allow_nan=False), lat=st.floats(18.0, 53.5, allow_nan=False))
def test_round_trip_property(lon, lat):
    g = wgs84_to_gcj02(lon, lat)
    w = gcj02_to_wgs84(*g)
    assert _metres(lon, lat, *w) < 0.5
    b = wgs84_to_bd09(lon, lat)
    assert _metres(lon, lat, *bd09_to_wgs84(*b)) < 0.5
