"""Orthophoto indicators (geotijian.imagery): painted synthetic images and real rasters."""

from __future__ import annotations

import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import rasterio
import rasterio.features
import shapely
from affine import Affine
from hypothesis import given, settings as hsettings, strategies as st

from geotijian import imagery as im
from geotijian.imagery import classify as im_classify
from geotijian.imagery import outputs as im_outputs
from geotijian.imagery import windows as im_windows
from geotijian.imagery import zonal as im_zonal
from geotijian import settings
from geotijian.errors import CoordinateWarning, LayerError, RasterError

# ---------------------------------------------------------------- a painted orthophoto

RES = 0.5  # metres per pixel
X0, Y0 = 350000.0, 3450000.0  # EPSG:32651, in Shanghai
SIZE = 400  # pixels per side
CRS = "EPSG:32651"
# R, G, B, NIR of each painted surface (uint8); with ±4 noise every rule keeps a margin
PAINT = {
    "grass": ((60, 120, 40, 200), im.VEGETATION),
    "roof": ((150, 150, 155, 140), im.IMPERVIOUS),
    "road": ((100, 100, 100, 85), im.IMPERVIOUS),
    "shadow": ((15, 17, 25, 12), im.SHADOW),
    "water": ((40, 70, 110, 15), im.WATER),
    "soil": ((150, 120, 90, 110), im.BARE),
}
# (surface, row0, row1, col0, col1) in pixels: they tile the whole image
LAYOUT = [
    ("grass", 0, 160, 0, 200), ("roof", 0, 160, 200, 400), ("road", 160, 220, 0, 400),
    ("shadow", 220, 260, 0, 400), ("water", 260, 400, 0, 150), ("soil", 260, 400, 150, 250),
    ("grass", 260, 400, 250, 400),
]
TRANSFORM = Affine(RES, 0, X0, 0, -RES, Y0)


def _px_box(r0: float, r1: float, c0: float, c1: float) -> shapely.Polygon:
    return shapely.box(X0 + c0 * RES, Y0 - r1 * RES, X0 + c1 * RES, Y0 - r0 * RES)


def _paint(path: Path, *, bands: str = "RGBN", alpha_hole: bool = False,
           crs: str | None = CRS, block: int = 128, photometric: str | None = "MINISBLACK",
           describe: bool = False, nodata_hole: bool = False) -> Path:
    """Write the painted orthophoto (uint8, tiled) and return its path."""
    rng = np.random.default_rng(7)
    nb = 4 if "N" in bands else 3
    img = np.zeros((nb, SIZE, SIZE), dtype=np.int16)
    for name, r0, r1, c0, c1 in LAYOUT:
        img[:, r0:r1, c0:c1] = np.array(PAINT[name][0][:nb], dtype=np.int16)[:, None, None]
    img += rng.integers(-4, 5, size=img.shape).astype(np.int16)
    img = np.clip(img, 1, 255).astype(np.uint8)
    if nodata_hole:  # a corner outside the flight (all bands 0), and a few lone zeros
        img[:, 350:, 350:] = 0
        img[0, 10:20, 10:20] = 0
    count = nb + (1 if alpha_hole else 0)
    profile = dict(driver="GTiff", width=SIZE, height=SIZE, count=count, dtype="uint8",
                   transform=TRANSFORM, tiled=True, blockxsize=block, blockysize=block)
    if crs is not None:
        profile["crs"] = crs
    if nodata_hole:
        profile["nodata"] = 0
    if nb == 3 and not alpha_hole:
        profile["photometric"] = "RGB"
    elif nb == 4 and photometric:
        profile["photometric"] = photometric  # MINISBLACK: bands gray, undefined...
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(img, list(range(1, nb + 1)))
        if describe:  # band roles in the band descriptions, as some drone software writes
            for i, name in enumerate(["red", "green", "blue", "NIR"][:nb], start=1):
                dst.set_band_description(i, name)
        if alpha_hole:
            a = np.full((SIZE, SIZE), 255, dtype=np.uint8)
            a[:, :40] = 0  # a strip of 40 columns outside the flight
            dst.write(a, count)
    return path


def _expected_shares(zone: shapely.Geometry) -> dict[int, float]:
    """Class shares of a zone from the painted rectangles' exact areas (shapely)."""
    img = shapely.box(X0, Y0 - SIZE * RES, X0 + SIZE * RES, Y0)
    inside = shapely.intersection(zone, img).area
    out = {c: 0.0 for c in range(im.N_CLASSES)}
    for name, r0, r1, c0, c1 in LAYOUT:
        out[PAINT[name][1]] += shapely.intersection(zone, _px_box(r0, r1, c0, c1)).area / inside
    return out


def _zones(crs: str = CRS) -> gpd.GeoDataFrame:
    cx, cy = X0 + 200 * RES, Y0 - 190 * RES
    rad = 130 * RES + 0.137  # off the pixel grid on purpose
    diamond = shapely.Polygon([(cx, cy + rad), (cx + rad, cy), (cx, cy - rad), (cx - rad, cy)])
    geoms = [
        _px_box(0, SIZE, 0, SIZE),  # the whole image
        diamond,  # crosses five surfaces with oblique edges
        _px_box(17.3, 117.3, 300, 500),  # half outside (east)
        _px_box(100, 300, 150.6, 251.1),  # overlaps the diamond
        _px_box(0, 50, 600, 650),  # entirely outside the image
    ]
    gdf = gpd.GeoDataFrame({"unit_id": ["a_whole", "b_diamond", "c_half", "d_overlap",
                                        "e_outside"]}, geometry=geoms, crs=CRS)
    return gdf if crs == CRS else gdf.to_crs(crs)


SHARE_COLS = {im.VEGETATION: "green_share", im.IMPERVIOUS: "impervious_share",
              im.WATER: "water_share", im.BARE: "bare_share", im.SHADOW: "unclassified_share"}


@pytest.fixture(scope="module")
def painted(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("painted")
    return {
        "RGBN": _paint(d / "rgbn.tif", bands="RGBN", describe=True),
        "RGB": _paint(d / "rgb.tif", bands="RGB"),
        "alpha": _paint(d / "rgba.tif", bands="RGB", alpha_hole=True),
        "nodata": _paint(d / "nodata.tif", bands="RGBN", describe=True, nodata_hole=True),
    }


# ---------------------------------------------------------------- painted shares


@pytest.mark.parametrize("kind,index", [("RGBN", None), ("RGB", None), ("RGB", "vari")])
def test_painted_shares_match_painted_areas(painted, kind, index):
    ortho = im.read_orthophoto(painted[kind])
    # roles from the file: RGB colour interpretation, or band descriptions for RGBN
    assert ortho.band_order == kind
    clf = im.build_classifier(ortho, index=index)
    assert clf.index == (index or ("ndvi" if kind == "RGBN" else "exg"))
    zones = _zones()
    res = im.zonal_cover(ortho, zones, id_col="unit_id", classes=clf).set_index("unit_id")
    for zid in ["a_whole", "b_diamond", "c_half", "d_overlap"]:
        geom = zones.set_index("unit_id").geometry[zid]
        expected = _expected_shares(geom)
        for code, col in SHARE_COLS.items():
            assert res.loc[zid, col] == pytest.approx(expected[code], abs=0.005), (zid, col)
    whole = res.loc["a_whole"]
    assert whole["pixels"] == SIZE * SIZE
    assert whole["green_share"] == pytest.approx((160 * 200 + 140 * 150) / SIZE**2)
    assert whole["covered_area_m2"] == pytest.approx(SIZE * SIZE * RES * RES)
    assert whole["flag"] == ""


def test_zone_half_outside_is_flagged_with_its_coverage(painted):
    res = im.zonal_cover(painted["RGBN"], _zones(), id_col="unit_id").set_index("unit_id")
    half = res.loc["c_half"]
    assert half["coverage_share"] == pytest.approx(0.5, abs=0.005)
    assert half["covered_area_m2"] == pytest.approx(half["zone_area_m2"] / 2, rel=0.01)
    assert "partial_coverage" in half["flag"]
    out = res.loc["e_outside"]
    assert out["pixels"] == 0 and out["coverage_share"] == 0
    assert out["flag"] == "no_imagery" and np.isnan(out["green_share"])
    # the imaged half lies on the roof (rows 17-117, cols 300-400): shares are of that half
    assert half["impervious_share"] == pytest.approx(1.0)


def test_zones_in_another_crs_are_reprojected(painted):
    ortho = im.read_orthophoto(painted["RGBN"], bands="RGBN")
    same = im.zonal_cover(ortho, _zones(), id_col="unit_id")
    wgs = im.zonal_cover(ortho, _zones("EPSG:4326"), id_col="unit_id")
    assert wgs.attrs["zones_reprojected_from"] == "EPSG:4326"
    assert same.attrs["zones_reprojected_from"] is None
    cols = [c for c in same.columns if c.endswith("_pixels") or c == "pixels"]
    pd.testing.assert_frame_equal(same[["unit_id"] + cols], wgs[["unit_id"] + cols])
    np.testing.assert_allclose(same["zone_area_m2"], wgs["zone_area_m2"], rtol=1e-6)


def test_zones_without_crs_or_ids_are_rejected(painted):
    zones = _zones()
    with pytest.raises(LayerError, match="no CRS"):
        im.zonal_cover(painted["RGB"], zones.set_crs(None, allow_override=True))
    dup = zones.assign(unit_id=["a", "a", "b", "c", "d"])
    with pytest.raises(LayerError, match="duplicate zone ID 'a'"):
        im.zonal_cover(painted["RGB"], dup, id_col="unit_id")
    with pytest.raises(LayerError, match="not a polygon"):
        im.zonal_cover(painted["RGB"], zones.assign(geometry=zones.centroid), id_col="unit_id")


def test_zones_far_from_the_image_warn_and_empty_zones_work(painted):
    far = _zones()
    far = far.set_geometry(far.translate(xoff=50_000))  # e.g. a wrong CRS gone astray
    with pytest.warns(CoordinateWarning, match="none of the 5 zones overlaps"):
        res = im.zonal_cover(painted["RGB"], far, id_col="unit_id")
    assert (res["flag"] == "no_imagery").all() and (res["pixels"] == 0).all()
    empty = im.zonal_cover(painted["RGB"], _zones().iloc[:0], id_col="unit_id")
    assert len(empty) == 0 and "green_share" in empty.columns


def test_overlapping_zones_are_counted_independently(painted):
    zones = _zones()
    both = im.zonal_cover(painted["RGBN"], zones, id_col="unit_id").set_index("unit_id")
    alone = im.zonal_cover(painted["RGBN"], zones.iloc[[3]], id_col="unit_id").set_index("unit_id")
    pd.testing.assert_series_equal(both.loc["d_overlap"], alone.loc["d_overlap"])
    assert im_zonal._overlap_groups(zones.geometry.to_numpy()).tolist() == [0, 1, 1, 2, 0]


def test_alpha_band_masks_pixels_outside_the_flight(painted):
    ortho = im.read_orthophoto(painted["alpha"], bands="RGBA")
    assert ortho.mask == "alpha" and ortho.alpha == 4
    res = im.zonal_cover(ortho, _zones(), id_col="unit_id").set_index("unit_id")
    whole = res.loc["a_whole"]
    assert whole["nodata_pixels"] == 40 * SIZE
    assert whole["pixels"] == SIZE * (SIZE - 40)
    assert whole["coverage_share"] == pytest.approx(0.9)
    assert whole["flag"] == "partial_coverage"


def test_otsu_threshold_separates_painted_vegetation(painted):
    ortho = im.read_orthophoto(painted["RGBN"], bands="RGBN")
    clf = im.build_classifier(ortho, otsu=True)
    assert clf.otsu
    # painted NDVI: soil -0.15, roof/road about -0.05 to -0.08, grass +0.54
    assert -0.05 < clf.vegetation_threshold < 0.5
    res = im.zonal_cover(ortho, _zones(), id_col="unit_id", classes=clf).set_index("unit_id")
    assert res.loc["a_whole", "green_share"] == pytest.approx(53000 / SIZE**2, abs=0.005)


def test_otsu_of_a_histogram():
    edges = np.linspace(0, 1, 11)
    hist = np.array([0, 50, 50, 0, 0, 0, 0, 40, 40, 0])
    t = im_classify._otsu(hist, edges)
    assert 0.3 <= t <= 0.7
    with pytest.raises(RasterError, match="Otsu"):
        im_classify._otsu(np.zeros(10), edges)


def test_runs_are_deterministic_and_thread_count_free(painted):
    a = im.zonal_cover(painted["RGBN"], _zones(), id_col="unit_id", workers=2,
                       window_pixels=128 * 128)
    b = im.zonal_cover(painted["RGBN"], _zones(), id_col="unit_id", workers=2,
                       window_pixels=128 * 128)
    c = im.zonal_cover(painted["RGBN"], _zones(), id_col="unit_id", workers=1)
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)
    assert list(a["unit_id"]) == sorted(a["unit_id"])


@pytest.mark.parametrize("kind,index", [("RGB", None), ("alpha", None), ("RGBN", None),
                                        ("RGBN", "exg"), ("nodata", None)])
def test_colour_lookup_path_equals_band_arithmetic(painted, monkeypatch, kind, index, tmp_path):
    """Large 8-bit images are classified through lookup tables: identical classes."""
    ortho = im.read_orthophoto(painted[kind], bands={"RGB": "RGB", "alpha": "RGBA"}.get(kind))
    clf = im.build_classifier(ortho, index=index)
    zones = _zones()
    direct = im.zonal_cover(ortho, zones, id_col="unit_id", classes=clf,
                            window_pixels=128 * 128)
    monkeypatch.setattr(im_classify, "_LUT_MIN_PIXELS", 0)
    assert im_classify._use_lut(ortho, clf)
    lut = im.zonal_cover(ortho, zones, id_col="unit_id", classes=clf, window_pixels=128 * 128)
    pd.testing.assert_frame_equal(direct, lut)
    # every rule boundary: random band values, including the darkest and brightest
    rng = np.random.default_rng(3)
    nb = 4 if clf.has_nir else 3
    values = rng.integers(0, 256, (nb, 300, 300), dtype=np.uint8)
    values[:, :20] = rng.integers(0, 40, (nb, 20, 300))  # shadow range
    direct_cls = clf.classify(values)
    t = im_classify._lut_tables(clf)
    rgbkey = (values[0].astype(np.int64) | values[1].astype(np.int64) << 8
              | values[2].astype(np.int64) << 16)
    code = t["rgb"][rgbkey]
    if nb == 4:
        code = code | t["gn"][values[1].astype(np.int64) | values[3].astype(np.int64) << 8] \
            | t["nr"][values[3].astype(np.int64) | values[0].astype(np.int64) << 8] \
            | t["n"][values[3]]
        code = t["final"][code]
    np.testing.assert_array_equal(code, direct_cls)
    assert len(np.unique(direct_cls)) >= 4
    out = im.write_classified(ortho, tmp_path / "c.tif", classes=clf, window_pixels=128 * 128)
    with rasterio.open(out) as ds, rasterio.open(ortho.path) as src:
        stack = src.read(ortho.read_indexes)
        valid = src.read(4) > 0 if kind == "alpha" else (
            np.any(stack != 0, axis=0) if kind == "nodata" else None)
        np.testing.assert_array_equal(ds.read(1), clf.classify(stack, valid))


def _whole_array_counts(ortho: im.Orthophoto, zones: gpd.GeoDataFrame,
                        clf: im.Classifier) -> np.ndarray:
    with rasterio.open(ortho.path) as ds:
        stack = ds.read(ortho.read_indexes)
        valid = ds.dataset_mask() > 0 if ortho.mask != "nan" else np.all(np.isfinite(stack), 0)
    cls = clf.classify(stack, valid)
    z = zones.to_crs(ortho.crs)
    counts = np.zeros((len(z), im.N_CLASSES), dtype=np.int64)
    for i, geom in enumerate(z.geometry):  # one zone at a time: overlaps counted in full
        zid = rasterio.features.rasterize([(geom, 1)], out_shape=cls.shape,
                                          transform=ortho.transform, all_touched=False,
                                          dtype="int32")
        counts[i] = np.bincount(cls[zid == 1], minlength=im.N_CLASSES)
    return counts


def test_windowed_result_equals_whole_array_result(painted):
    ortho = im.read_orthophoto(painted["RGBN"], bands="RGBN")
    clf = im.build_classifier(ortho)
    zones = _zones()
    res = im.zonal_cover(ortho, zones, id_col="unit_id", classes=clf,
                         window_pixels=100 * 100)  # small windows: many window edges
    expected = _whole_array_counts(ortho, zones, clf)
    cols = ["nodata_pixels", "vegetation_pixels", "impervious_pixels", "water_pixels",
            "bare_pixels", "unclassified_pixels"]
    np.testing.assert_array_equal(res[cols].to_numpy(), expected)


@pytest.mark.parametrize("window_pixels", [400 * 400, 128 * 128, 64 * 64])
def test_many_small_zones_equal_whole_array_result(painted, window_pixels):
    """A 12 x 12 grid of zones: windows with > 30, 5-30 and <= 4 zones (three count paths)."""
    ortho = im.read_orthophoto(painted["RGBN"])
    clf = im.build_classifier(ortho)
    step = SIZE / 12
    boxes = [_px_box(i * step, (i + 1) * step, j * step + 0.3, (j + 1) * step + 0.3)
             for i in range(12) for j in range(12)]
    zones = gpd.GeoDataFrame({"cell": np.arange(144)}, geometry=boxes, crs=CRS)
    res = im.zonal_cover(ortho, zones, id_col="cell", classes=clf, window_pixels=window_pixels)
    cols = ["nodata_pixels", "vegetation_pixels", "impervious_pixels", "water_pixels",
            "bare_pixels", "unclassified_pixels"]
    np.testing.assert_array_equal(res[cols].to_numpy(), _whole_array_counts(ortho, zones, clf))


@hsettings(max_examples=40, deadline=None)
@given(w=st.integers(1, 3000), h=st.integers(1, 3000), bw=st.sampled_from([0, 16, 256, 512]),
       bh=st.sampled_from([1, 16, 256, 512]), px=st.sampled_from([4096, 1 << 20]))
def test_block_windows_tile_the_image_exactly(w, h, bw, bh, px):
    bw = bw or w  # 0: strips as wide as the image
    ortho = im.Orthophoto(
        path=Path("x.tif"), crs=None, transform=TRANSFORM, width=w, height=h, count=3,
        dtype="uint8", resolution_m=(RES, RES), pixel_area_m2=RES * RES,
        bands={"red": 1, "green": 2, "blue": 3}, band_order="RGB", nodata=None, alpha=None,
        mask="none", bounds=(0, 0, 1, 1), block_shape=(bh, min(bw, w)))
    wins = im.block_windows(ortho, window_pixels=px)
    assert sum(x.width * x.height for x in wins) == w * h
    cover = np.zeros((min(h, 64), min(w, 64)), dtype=np.int32)
    for x in wins:
        assert x.col_off + x.width <= w and x.row_off + x.height <= h
        assert x.col_off % min(bw, w) == 0 and x.row_off % min(bh, h) == 0
        cover[x.row_off:x.row_off + x.height, x.col_off:x.col_off + x.width] += 1
    assert (cover == 1).all()


@pytest.mark.parametrize("f", [1, 3, 4, 7])
def test_decimated_read_window_by_window_equals_strided_array(f):
    full = np.arange(3 * 301 * 257, dtype=np.int32).reshape(3, 301, 257)
    windows = im_windows._grid_windows(301, 257, (16, 16), 48 * 48)
    assert len(windows) > 20
    shape = (-(-301 // f), -(-257 // f))
    got = im_outputs._decimate(windows, shape, f, lambda w: full[:, w.row_off:w.row_off + w.height,
                                                        w.col_off:w.col_off + w.width])
    np.testing.assert_array_equal(got, full[:, ::f, ::f])


def test_imagery_indicators_in_percent(painted):
    ind = im.imagery_indicators(painted["RGBN"], _zones())
    assert list(ind.columns) == ["unit_id", "green_cover_ratio", "impervious_ratio",
                                 "coverage_share", "flag"]
    whole = ind.set_index("unit_id").loc["a_whole"]
    assert whole["green_cover_ratio"] == pytest.approx(100 * 53000 / SIZE**2, abs=0.5)
    assert whole["impervious_ratio"] == pytest.approx(100 * (32000 + 24000) / SIZE**2, abs=0.5)


def test_sixteen_bit_image_and_white_level(painted, tmp_path):
    """uint16 data: the white level is estimated, or given; given 255 x 257 it equals 8-bit."""
    with rasterio.open(painted["RGBN"]) as src:
        profile = src.profile | {"dtype": "uint16"}
        data = src.read().astype(np.uint16) * 257
    p16 = tmp_path / "rgbn16.tif"
    with rasterio.open(p16, "w", **profile) as dst:
        dst.write(data)
    ortho8 = im.read_orthophoto(painted["RGBN"])
    ortho16 = im.read_orthophoto(p16, bands="RGBN", white_level=255 * 257)
    a = im.zonal_cover(ortho8, _zones(), id_col="unit_id")
    b = im.zonal_cover(ortho16, _zones(), id_col="unit_id")
    cols = [c for c in a.columns if c.endswith("pixels")]
    pd.testing.assert_frame_equal(a[cols], b[cols])
    est = im.build_classifier(im.read_orthophoto(p16, bands="RGBN"))
    # 99.5th percentile of the brightest visible band: the roof's blue (155 ± 4) x 257
    assert 150 * 257 <= est.white_level <= 160 * 257


def test_thresholds_come_from_settings(painted):
    ortho = im.read_orthophoto(painted["RGBN"], bands="RGBN")
    with settings.temporary(imagery_ndvi_threshold=0.9):
        clf = im.build_classifier(ortho)
        res = im.zonal_cover(ortho, _zones().iloc[[0]], id_col="unit_id", classes=clf)
    assert clf.vegetation_threshold == 0.9
    assert res["green_share"].iloc[0] == 0  # painted grass NDVI is 0.54


# ---------------------------------------------------------------- outputs


def test_write_classified_and_quicklooks(painted, tmp_path):
    ortho = im.read_orthophoto(painted["RGBN"], bands="RGBN")
    clf = im.build_classifier(ortho)
    out = im.write_classified(ortho, tmp_path / "classes.tif", classes=clf)
    with rasterio.open(out) as ds:
        assert ds.count == 1 and ds.dtypes[0] == "uint8" and ds.nodata == 0
        assert ds.profile["tiled"] and ds.profile["compress"].lower() == "deflate"
        assert ds.overviews(1), "overviews missing"
        if im_outputs._has_driver("COG"):
            assert ds.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert ds.crs.to_epsg() == 32651 and ds.transform == ortho.transform
        codes = ds.read(1)
        assert ds.colormap(1)[im.VEGETATION][:3] == im.CLASS_COLOURS[im.VEGETATION][:3]
    with rasterio.open(ortho.path) as src:
        np.testing.assert_array_equal(codes, clf.classify(src.read(ortho.read_indexes)))
    png = im.quicklook_png(out, tmp_path / "classes.png", max_size=100)
    rgb = im.quicklook_png(ortho, tmp_path / "rgb.png", max_size=150)
    import matplotlib.image as mpimg
    a, b = mpimg.imread(png), mpimg.imread(rgb)
    assert a.shape[:2] == (100, 100)  # every 4th pixel, from the overviews
    assert b.shape[:2] == (134, 134)  # every 3rd pixel: long side <= 150
    # without overviews the image is sampled window by window: every 4th pixel exactly
    live = im.quicklook_png(ortho, tmp_path / "live.png", max_size=100, classified=True)
    colours = np.array([im.CLASS_COLOURS[k] for k in range(im.N_CLASSES)], dtype=np.uint8)
    expected = colours[codes[::4, ::4]]
    np.testing.assert_array_equal(np.round(mpimg.imread(live) * 255).astype(np.uint8), expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "classes.png", "classes.tif", "live.png", "rgb.png"]


# ---------------------------------------------------------------- bad input


def test_bad_inputs_give_clear_errors(tmp_path):
    txt = tmp_path / "notes.tif"
    txt.write_text("this is not a raster\n")
    with pytest.raises(RasterError, match="not a raster"):
        im.read_orthophoto(txt)
    with pytest.raises(RasterError, match="not found"):
        im.read_orthophoto(tmp_path / "missing.tif")
    with pytest.raises(RasterError, match="no CRS"):
        im.read_orthophoto(_paint(tmp_path / "nocrs.tif", bands="RGB", crs=None))
    with pytest.raises(RasterError, match="geographic.*gdalwarp"):
        im.read_orthophoto(_paint(tmp_path / "geo.tif", bands="RGB", crs="EPSG:4326"))
    single = tmp_path / "dem.tif"
    with rasterio.open(single, "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                       crs=CRS, transform=TRANSFORM) as dst:
        dst.write(np.zeros((1, 8, 8), dtype=np.uint8))
    with pytest.raises(RasterError, match="1 band.*red, green and blue are required"):
        im.read_orthophoto(single)
    four = _paint(tmp_path / "four.tif", bands="RGBN")  # no colour interpretation
    with pytest.raises(RasterError, match="unknown band roles.*bands="):
        im.read_orthophoto(four)
    # GDAL's default for 4 bytes is RGBA: a NIR band flagged alpha must not become a mask
    rgba = _paint(tmp_path / "rgba_default.tif", bands="RGBN", photometric=None)
    with rasterio.open(rgba) as ds:
        assert ds.colorinterp[3] == rasterio.enums.ColorInterp.alpha
    with pytest.raises(RasterError, match="flagged alpha.*bands='RGBN'"):
        im.read_orthophoto(rgba)
    assert im.read_orthophoto(rgba, bands="RGBN").mask == "none"
    with pytest.raises(RasterError, match="names 3 bands but the file has 4"):
        im.read_orthophoto(four, bands="RGB")
    with pytest.raises(RasterError, match="unknown band letter"):
        im.read_orthophoto(four, bands="RGBQ")
    rgb = _paint(tmp_path / "rgb.tif", bands="RGB")
    with pytest.raises(RasterError, match="NDVI needs a near-infrared"):
        im.build_classifier(rgb, index="ndvi")
    assert im.read_orthophoto(four, bands="RGBX", nir=4).band_order == "RGBN"
    assert im.read_orthophoto(four, bands={"blue": 3, "green": 2, "red": 1}).bands["red"] == 1


# ---------------------------------------------------------------- real rasters


@pytest.fixture(scope="module")
def raster_dir() -> Path:
    env = os.environ.get("GEOTIJIAN_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [
            Path(__file__).resolve().parents[1].parent / "shared" / "data"]:
        if (cand / "raster").is_dir():
            return cand / "raster"
    pytest.skip("real rasters ../shared/data/raster are absent (set GEOTIJIAN_SHARED_DATA)")


def _grid_zones(ortho: im.Orthophoto, n: int = 3) -> gpd.GeoDataFrame:
    left, bottom, right, top = ortho.bounds
    xs, ys = np.linspace(left, right, n + 1), np.linspace(bottom, top, n + 1)
    boxes = [shapely.box(xs[i], ys[j], xs[i + 1], ys[j + 1]) for j in range(n) for i in range(n)]
    return gpd.GeoDataFrame({"zone": [f"z{k}" for k in range(len(boxes))]}, geometry=boxes,
                            crs=ortho.crs)


def test_rotterdam_multispectral_is_plausible_and_stable(raster_dir):
    ortho = im.read_orthophoto(raster_dir / "rotterdam_bgrn_1m.tif", bands="BGRN")
    assert ortho.mask == "nan" and ortho.white_level is None
    zones = pd.concat([_grid_zones(ortho), gpd.GeoDataFrame(
        {"zone": ["all"]}, geometry=[shapely.box(*ortho.bounds)], crs=ortho.crs)])
    res = im.zonal_cover(ortho, zones, id_col="zone").set_index("zone")
    again = im.zonal_cover(ortho, zones, id_col="zone").set_index("zone")
    pd.testing.assert_frame_equal(res, again)
    whole = res.loc["all"]
    assert whole["pixels"] == 300 * 300 and whole["coverage_share"] == pytest.approx(1, abs=1e-3)
    # mean NDVI 0.44 over a bimodal scene (built ~0.1, park and trees ~0.8) means a little
    # over half is vegetated: 0.1 + 0.7 * share ≈ 0.44 -> share ≈ 0.5
    assert 0.45 < whole["green_share"] < 0.65
    # a residential area: roofs, streets and paving make a quarter to a half
    assert 0.25 < whole["impervious_share"] + whole["bare_share"] < 0.5
    assert whole["water_share"] < 0.03  # a canal edge at most
    assert 0.01 < whole["unclassified_share"] < 0.15  # building shadows on the streets
    # the park (centre) is greener than the built edges (west column of zones)
    assert res.loc["z4", "green_share"] > res.loc["z0", "green_share"]
    assert res.loc["z4", "green_share"] > 0.6
    otsu = im.build_classifier(ortho, otsu=True)
    assert 0.2 < otsu.vegetation_threshold < 0.7  # between the two NDVI modes


def test_naip_rural_is_vegetation_and_water(raster_dir):
    ortho = im.read_orthophoto(raster_dir / "naip_rgbn_1m.tif", bands="RGBN")
    assert ortho.resolution_m == (5.0, 5.0) and ortho.mask == "nodata"
    zones = _grid_zones(ortho, 2)
    res = im.zonal_cover(ortho, zones, id_col="zone")
    tot = res[[c for c in res.columns if c.endswith("_pixels")]].sum()
    valid = res["pixels"].sum()
    assert valid == 934 * 723
    # rural prairie with wetland ponds: vegetation is the largest class, ponds (NDWI high,
    # NDVI < -0.4 on a quarter of the tile) are clearly water, no building shadows at 5 m
    assert 0.4 < tot["vegetation_pixels"] / valid < 0.6
    assert 0.15 < tot["water_pixels"] / valid < 0.35
    assert tot["unclassified_pixels"] / valid < 0.01
    assert (tot["vegetation_pixels"] + tot["water_pixels"] + tot["bare_pixels"]) / valid > 0.65
