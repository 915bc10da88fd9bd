"""Residents on compounds: attribute, raster zonal sum, buildings; totals conserved (issue 4)."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pytest
import shapely
from hypothesis import given, settings as hsettings, strategies as st

from geotijian import settings
from geotijian.errors import LayerError, RasterError
from geotijian.population import allocate_population, building_population

CRS = "EPSG:32651"
X0, Y0 = 350000.0, 3470000.0


def _compounds(n=4, size=200.0, gap=100.0, pop=None):
    geoms = [shapely.box(X0 + i * (size + gap), Y0, X0 + i * (size + gap) + size, Y0 + size) for i in range(n)]
    d = {"compound_id": [f"X{i}" for i in range(n)], "name": [f"小区{i}" for i in range(n)],
         "town_code": ["A"] * (n // 2) + ["B"] * (n - n // 2)}
    if pop is not None:
        d["population"] = pop
    return gpd.GeoDataFrame(d, geometry=geoms, crs=CRS)


def _raster(path, arr, x0, y0, res, crs=CRS, nodata=-1.0):
    rasterio = pytest.importorskip("rasterio")
    from rasterio.transform import from_origin

    with rasterio.open(path, "w", driver="GTiff", height=arr.shape[0], width=arr.shape[1], count=1,
                       dtype="float32", crs=crs, transform=from_origin(x0, y0, res, res), nodata=nodata) as ds:
        ds.write(arr.astype("float32"), 1)
    return path


def test_attribute_source_and_errors():
    c = _compounds(pop=[100.0, 200.0, 0.0, 50.0])
    out, rep = allocate_population(c)
    assert out["population"].tolist() == [100, 200, 0, 50]
    assert rep["allocated"] == rep["source_total"] == 350 and rep["residual"] == 0
    bad = c.copy()
    bad.loc[2, "population"] = -1
    with pytest.raises(LayerError, match=r"X2.*negative population"):
        allocate_population(bad)
    bad.loc[2, "population"] = np.nan
    with pytest.raises(LayerError, match=r"X2.*missing population"):
        allocate_population(bad)
    with pytest.raises(LayerError, match="no 'population' column"):
        allocate_population(_compounds())
    with pytest.raises(LayerError, match="geographic"):
        allocate_population(c.to_crs(4326))
    with pytest.raises(ValueError, match="source must be"):
        allocate_population(c, source="census")


def test_raster_zonal_sum_splits_pixels_by_area_and_conserves(tmp_path):
    # 10 × 4 pixels of 100 m, 10 persons each; compounds 200 m wide every 300 m, offset 50 m
    arr = np.full((4, 10), 10.0)
    arr[0, 0] = -1  # nodata
    p = _raster(tmp_path / "pop.tif", arr, X0 - 50, Y0 + 350, 100.0)
    c = _compounds(n=3)
    study = gpd.GeoDataFrame(geometry=[shapely.box(X0 - 50, Y0 - 50, X0 + 950, Y0 + 350)], crs=CRS)
    with pytest.warns(UserWarning, match="nodata"):
        out, rep = allocate_population(c, source="raster", raster=p, study_area=study)
    # each compound covers 200 × 200 m = 4 pixel areas → 40 persons (pixels split 50/50 at edges)
    assert out["population"].to_numpy() == pytest.approx([40.0, 40.0, 40.0])
    assert rep["source_total"] == pytest.approx(390.0)  # 39 valid pixels inside the study area
    assert rep["allocated"] + rep["residual"] == pytest.approx(rep["source_total"])
    # a study area cutting pixels counts their share only
    half = gpd.GeoDataFrame(geometry=[shapely.box(X0, Y0 - 50, X0 + 950, Y0 + 350)], crs=CRS)
    _, rep2 = allocate_population(c, source="raster", raster=p, study_area=half)
    assert rep2["source_total"] == pytest.approx(390.0 - 15.0)


def test_raster_overlapping_compounds_not_double_counted(tmp_path):
    arr = np.full((3, 3), 9.0)
    p = _raster(tmp_path / "pop.tif", arr, X0, Y0 + 300, 100.0)
    c = gpd.GeoDataFrame({"compound_id": ["a", "b"]},
                         geometry=[shapely.box(X0, Y0, X0 + 300, Y0 + 300), shapely.box(X0, Y0, X0 + 300, Y0 + 300)],
                         crs=CRS)
    with pytest.warns(UserWarning, match="overlapping"):
        out, rep = allocate_population(c, source="raster", raster=p)
    assert out["population"].sum() == pytest.approx(81.0)
    assert rep["residual"] == pytest.approx(0.0)


def test_raster_in_wgs84_and_errors(tmp_path):
    # a WGS84 raster (WorldPop style) over the compounds: the total is kept
    c = _compounds(n=2)
    ll = c.to_crs(4326).total_bounds
    res = 0.0005
    w = int(np.ceil((ll[2] - ll[0]) / res)) + 4
    h = int(np.ceil((ll[3] - ll[1]) / res)) + 4
    arr = np.full((h, w), 3.0)
    p = _raster(tmp_path / "wgs.tif", arr, ll[0] - 2 * res, ll[3] + 2 * res, res, crs="EPSG:4326")
    study = gpd.GeoDataFrame(geometry=[shapely.box(*c.total_bounds).buffer(5)], crs=CRS)
    out, rep = allocate_population(c, source="raster", raster=p, study_area=study)
    # 2 × 40,000 m² at about 3 persons per ~2,500 m² pixel
    px_area = gpd.GeoSeries([shapely.box(ll[0], ll[1], ll[0] + res, ll[1] + res)], crs=4326).to_crs(CRS).area.iloc[0]
    assert out["population"].sum() == pytest.approx(2 * 40000 / px_area * 3, rel=0.01)
    neg = arr.copy()
    neg[2, 2] = -3
    pn = _raster(tmp_path / "neg.tif", neg, ll[0] - 2 * res, ll[3] + 2 * res, res, crs="EPSG:4326", nodata=-9999)
    with pytest.raises(RasterError, match="negative"):
        allocate_population(c, source="raster", raster=pn)
    far = _raster(tmp_path / "far.tif", arr, 10.0, 10.0, res, crs="EPSG:4326")
    with pytest.raises(RasterError, match="does not cover"):
        allocate_population(c, source="raster", raster=far)
    with pytest.raises(RasterError, match="cannot open"):
        allocate_population(c, source="raster", raster=tmp_path / "missing.tif")


def test_buildings_floor_area_rule_and_residual():
    c = _compounds(n=2)
    b = gpd.GeoDataFrame({
        "building_id": ["h1", "h2", "o1", "y1", "y2"],
        "levels": [6, np.nan, 10, 3, 3],
        "height": [np.nan, 30.0, np.nan, np.nan, np.nan],
        "use": ["residential", "apartments", "office", "yes", "residential"],
    }, geometry=[
        shapely.box(X0 + 10, Y0 + 10, X0 + 60, Y0 + 30),        # 1,000 m² × 6 in compound 0
        shapely.box(X0 + 310, Y0 + 10, X0 + 360, Y0 + 30),      # 1,000 m² × 10 (30 m / 3 m) in compound 1
        shapely.box(X0 + 100, Y0 + 100, X0 + 150, Y0 + 120),    # office: no residents
        shapely.box(X0 + 190, Y0 + 50, X0 + 210, Y0 + 100),     # building=yes half inside compound 0
        shapely.box(X0 + 220, Y0 + 50, X0 + 270, Y0 + 70),      # housing outside every compound
    ], crs=CRS)
    f = settings.floor_area_per_person_m2
    persons, info = building_population(b)
    assert persons[0] == pytest.approx(6000 / f) and persons[1] == pytest.approx(10000 / f)
    assert persons[2] == 0 and info["levels_from_height"] == 1
    out, rep = allocate_population(c, source="buildings", buildings=b)
    assert out["population"].iloc[0] == pytest.approx((6000 + 500 * 3) / f)
    assert out["population"].iloc[1] == pytest.approx(10000 / f)
    # residual = the housing outside compounds (the building=yes outside part is not housing)
    assert rep["residual"] == pytest.approx(1000 * 3 / f)
    assert rep["allocated"] + rep["residual"] == pytest.approx(rep["source_total"])
    with settings.temporary(floor_area_per_person_m2=50.0):
        out2, _ = allocate_population(c, source="buildings", buildings=b)
    assert out2["population"].iloc[1] == pytest.approx(200.0)
    bad = b.copy()
    bad.loc[1, "levels"] = -2
    with pytest.raises(LayerError, match="negative levels"):
        allocate_population(c, source="buildings", buildings=bad)


def test_totals_scaling_conserves_each_group():
    c = _compounds(n=4, pop=[100.0, 300.0, 50.0, 0.0])
    out, rep = allocate_population(c, totals={"A": 2000, "B": 500, "C": 700}, total_by="town_code")
    assert out.loc[out["town_code"] == "A", "population"].sum() == pytest.approx(2000)
    assert out["population"].iloc[0] == pytest.approx(500)  # proportional to the estimate
    assert out.loc[out["town_code"] == "B", "population"].sum() == pytest.approx(500)
    g = rep["groups"].set_index("town_code")
    assert g.loc["C", "residual"] == 700  # a group without compounds: residual, reported
    assert rep["allocated"] == pytest.approx(2500) and rep["residual"] == pytest.approx(700)
    # totals from a polygon layer (towns)
    towns = gpd.GeoDataFrame({"town_code": ["N", "S"], "population": [1000.0, 0.0]},
                             geometry=[shapely.box(X0 - 10, Y0 - 10, X0 + 550, Y0 + 300),
                                       shapely.box(X0 + 550, Y0 - 10, X0 + 1200, Y0 + 300)], crs=CRS)
    out2, rep2 = allocate_population(c, totals=towns, total_by="town_code")
    assert out2["population"].iloc[:2].sum() == pytest.approx(1000)
    assert out2["population"].iloc[2:].sum() == pytest.approx(0)
    with pytest.raises(ValueError, match="total_by"):
        allocate_population(c, totals={"A": 1})
    with pytest.raises(LayerError, match="negative population"):
        allocate_population(c, totals={"A": -1}, total_by="town_code")


@hsettings(max_examples=30, deadline=None)
@given(pops=st.lists(st.floats(0, 5000, allow_nan=False), min_size=2, max_size=8),
       total_a=st.floats(0, 1e5, allow_nan=False), total_b=st.floats(0, 1e5, allow_nan=False))
def test_property_totals_conserved(pops, total_a, total_b):
    c = _compounds(n=len(pops), pop=pops)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out, rep = allocate_population(c, totals={"A": total_a, "B": total_b}, total_by="town_code")
    for t, tot in (("A", total_a), ("B", total_b)):
        assert out.loc[out["town_code"] == t, "population"].sum() == pytest.approx(tot, rel=1e-9, abs=1e-6)
    assert (out["population"] >= 0).all()
    assert rep["allocated"] + rep["residual"] == pytest.approx(total_a + total_b, rel=1e-9, abs=1e-6)
