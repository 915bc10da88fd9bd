"""read_layer: every bad input of issue 2 with its exact error, file formats, CRS, GCJ-02."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import CRS, Transformer

from geotijian import settings
from geotijian.errors import CoordinateWarning, LayerError, RepairWarning
from geotijian.io import check_gcj_shift, gcj02_to_wgs84, read_layer, wgs84_to_gcj02

LON0, LAT0 = 121.25, 31.38  # Jiading


def _square(lon: float, lat: float, d: float = 0.002) -> shapely.Polygon:
    return shapely.box(lon, lat, lon + d, lat + d)


def compounds(n: int = 3, crs="EPSG:4326", **cols) -> gpd.GeoDataFrame:
    data = {"compound_id": [f"X{i + 1}" for i in range(n)], "name": [f"小区{i + 1}" for i in range(n)],
            "population": [1000.0 + 100 * i for i in range(n)]}
    data.update(cols)
    geoms = [_square(LON0 + 0.003 * i, LAT0) for i in range(n)]
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


def points(n: int = 3, crs="EPSG:4326", **cols) -> gpd.GeoDataFrame:
    data = {"facility_id": [f"F{i + 1}" for i in range(n)], "type": ["kindergarten"] * n}
    data.update(cols)
    geoms = gpd.points_from_xy(LON0 + 0.001 * np.arange(n), np.full(n, LAT0))
    return gpd.GeoDataFrame(data, geometry=geoms, crs=crs)


# ---------------------------------------------------------------------- bad input, exact errors


def test_no_crs():
    gdf = compounds(crs=None)
    with pytest.raises(LayerError, match=r"^layer 'compounds': the layer has no CRS\. Fix: pass "
                                         r"crs='EPSG:4490' \(CGCS2000\)"):
        read_layer(gdf, "compounds")
    out = read_layer(gdf, "compounds", crs="EPSG:4326")  # the fix works
    assert CRS(out.crs).equals(CRS(settings.metric_crs))
    assert out.attrs["geotijian"]["source_crs"] == "EPSG:4326"


def test_lat_lon_swapped():
    gdf = points()
    gdf = gdf.set_geometry(shapely.transform(gdf.geometry.values, lambda xy: xy[:, ::-1]))
    with pytest.raises(LayerError, match=r"feature 0 \(id 'F1'\): latitude and longitude are swapped"
                                         r" \(y holds values > 90\)\. Fix: swap the lon/lat columns"):
        read_layer(gdf, "facilities")


def test_lat_lon_swapped_csv(tmp_path):
    p = tmp_path / "kg.csv"
    pd.DataFrame({"facility_id": ["F1", "F2"], "type": ["kindergarten"] * 2,
                  "lon": [LAT0, LAT0 + 0.01], "lat": [LON0, LON0]}).to_csv(p, index=False)
    with pytest.raises(LayerError, match=r"^layer 'facilities \(kg\.csv\)', feature 0 \(id 'F1'\): "
                                         "latitude and longitude are swapped"):
        read_layer(p, "facilities")


def test_outside_study_boundary():
    study = gpd.GeoDataFrame(geometry=[_square(LON0 - 0.01, LAT0 - 0.01, 0.03)],
                             crs="EPSG:4326").to_crs(settings.metric_crs)
    gdf = compounds(4)
    gdf.loc[2, "geometry"] = _square(LON0 + 0.2, LAT0)  # ~19 km east
    with pytest.raises(LayerError) as exc:
        read_layer(gdf, "compounds", study_area=study)
    e = exc.value
    assert (e.feature, e.feature_id, e.count) == (2, "X3", 1)
    assert str(e).startswith("layer 'compounds', feature 2 (id 'X3'): feature lies ")
    assert "m outside the study boundary. Fix: check the layer's CRS" in str(e)
    dist = float(str(e).split("lies ")[1].split(" m")[0].replace(",", ""))
    assert 17_000 < dist < 20_000
    # within the tolerance: accepted
    ok = read_layer(compounds(4), "compounds", study_area=study)
    assert len(ok) == 4


def test_invalid_geometry_repaired_and_reported():
    gdf = compounds(3)
    bowtie = shapely.Polygon([(LON0, LAT0), (LON0 + 0.002, LAT0 + 0.002), (LON0 + 0.002, LAT0),
                              (LON0, LAT0 + 0.002)])
    assert not bowtie.is_valid
    gdf.loc[1, "geometry"] = bowtie
    with pytest.warns(RepairWarning, match=r"compounds: repaired 1 invalid geometries with "
                                           r"make_valid \(first: feature 1, id 'X2'\)"):
        out = read_layer(gdf, "compounds")
    assert out.geometry.is_valid.all()
    assert out.geometry.geom_type.isin(["Polygon", "MultiPolygon"]).all()
    assert out.geometry.iloc[1].area > 0
    assert any("repaired 1 invalid" in r for r in out.attrs["geotijian"]["repairs"])


def test_invalid_geometry_with_stray_line_keeps_polygons():
    # make_valid of a polygon with a spike returns a GeometryCollection (polygon + line)
    spike = shapely.Polygon([(LON0, LAT0), (LON0 + 0.002, LAT0), (LON0 + 0.002, LAT0 + 0.002),
                             (LON0 + 0.001, LAT0 + 0.002), (LON0 + 0.001, LAT0 + 0.004),
                             (LON0 + 0.001, LAT0 + 0.002), (LON0, LAT0 + 0.002)])
    assert shapely.make_valid(spike).geom_type == "GeometryCollection"
    gdf = compounds(2)
    gdf.loc[0, "geometry"] = spike
    with pytest.warns(RepairWarning):
        out = read_layer(gdf, "compounds")
    assert out.geometry.iloc[0].geom_type == "Polygon"


def test_empty_layer():
    gdf = compounds(0)
    with pytest.raises(LayerError, match=r"^layer 'compounds': the layer is empty \(0 features\)\. "
                                         "Fix: check the file, the layer name"):
        read_layer(gdf, "compounds")


def test_duplicate_ids():
    gdf = compounds(4)
    gdf.loc[3, "compound_id"] = "X2"
    with pytest.raises(LayerError, match=r"^layer 'compounds', feature 3 \(id 'X2'\): duplicate ID "
                                         r"'X2' \(also feature 1\)\. Fix: make compound_id unique"):
        read_layer(gdf, "compounds")


def test_wrong_geometry_type():
    gdf = points(3).rename(columns={"facility_id": "compound_id", "type": "name"})
    with pytest.raises(LayerError, match=r"^layer 'compounds', feature 0 \(id 'F1'\): geometry type "
                                         r"Point where Polygon or MultiPolygon is expected "
                                         r"\(3 features in all\)"):
        read_layer(gdf, "compounds")


def test_negative_population():
    gdf = compounds(3, population=[1200, -5, 800])
    with pytest.raises(LayerError, match=r"^layer 'compounds', feature 1 \(id 'X2'\): field "
                                         r"'population' is negative \(-5\)\. Fix: correct population"):
        read_layer(gdf, "compounds")


def test_non_numeric_population():
    gdf = compounds(3, population=["1200", "1,500", "约800"])
    with pytest.raises(LayerError) as exc:
        read_layer(gdf, "compounds")
    assert str(exc.value) == (
        "layer 'compounds', feature 1 (id 'X2'): field 'population' is not a number ('1,500') "
        "(2 features in all). Fix: write population as a number (no units, no thousands separators)")


def test_missing_required_field():
    gdf = compounds(2).drop(columns="name")
    with pytest.raises(LayerError, match=r"^layer 'compounds': required field\(s\) missing: name\. "
                                         r"Fix: add the column\(s\) name \(columns present: "):
        read_layer(gdf, "compounds")


def test_unknown_role():
    with pytest.raises(LayerError, match=r"^layer 'schools': unknown layer role 'schools'\. Fix: use "
                                         "one of: boundary, towns, committees, compounds"):
        read_layer(compounds(), "schools")


def test_crs_conflict(tmp_path):
    p = tmp_path / "c.gpkg"
    pyogrio.write_dataframe(compounds(2), p)
    with pytest.raises(LayerError, match=r"^layer 'compounds \(c\.gpkg\)': the file declares "
                                         r"EPSG:4326 but crs='EPSG:4490' was given\. Fix: drop the "
                                         "crs argument"):
        read_layer(p, "compounds", crs="EPSG:4490")
    assert len(read_layer(p, "compounds", crs="EPSG:4326")) == 2  # same CRS: fine


def test_projected_crs_with_degree_coordinates():
    gdf = compounds(2, crs="EPSG:4549")  # lon/lat numbers labelled as a projected CRS
    with pytest.raises(LayerError, match=r"^layer 'compounds', feature 0 \(id 'X1'\): coordinates "
                                         r"look like degrees but the CRS is projected \(EPSG:4549\)\."
                                         r" Fix: declare the geographic CRS"):
        read_layer(gdf, "compounds")


def test_geographic_crs_with_metre_coordinates():
    gdf = compounds(2).to_crs("EPSG:4549").set_crs("EPSG:4326", allow_override=True)
    with pytest.raises(LayerError, match="coordinates outside the range of degrees but CRS is "
                                         "EPSG:4326.*pass its projected CRS"):
        read_layer(gdf, "compounds")


def test_missing_file(tmp_path):
    with pytest.raises(LayerError, match=r"file not found: .*nope\.gpkg\. Fix: check the path"):
        read_layer(tmp_path / "nope.gpkg", "compounds")


def test_null_geometry():
    gdf = compounds(3)
    gdf.loc[2, "geometry"] = None
    with pytest.raises(LayerError, match=r"feature 2 \(id 'X3'\): feature has no geometry"):
        read_layer(gdf, "compounds")


# ---------------------------------------------------------------------- formats and CRS


@pytest.mark.filterwarnings("ignore:Normalized/laundered field name")  # dBase: 10 characters
@pytest.mark.parametrize("ext,driver", [(".gpkg", "GPKG"), (".shp", "ESRI Shapefile"),
                                        (".geojson", "GeoJSON")])
def test_read_vector_formats(tmp_path, ext, driver):
    src = compounds(3)
    p = tmp_path / f"compounds{ext}"
    pyogrio.write_dataframe(src, p, driver=driver)
    out = read_layer(p, "compounds")  # the Shapefile holds compound_i: read back as compound_id
    assert list(out.columns[:3]) == ["compound_id", "name", "population"]
    assert out["compound_id"].tolist() == ["X1", "X2", "X3"]
    assert out["name"].tolist() == ["小区1", "小区2", "小区3"]
    assert out["population"].dtype == float
    assert CRS(out.crs).equals(CRS("EPSG:32651"))
    np.testing.assert_allclose(out.area, src.to_crs(32651).area, rtol=1e-9)
    assert out.attrs["geotijian"]["role"] == "compounds"


def test_read_csv_lon_lat(tmp_path):
    p = tmp_path / "kg.csv"
    pd.DataFrame({"facility_id": ["F1", "F2"], "type": ["kindergarten", "clinic"], "名称": ["甲", "乙"],
                  "lon": [LON0, LON0 + 0.01], "lat": [LAT0, LAT0 + 0.01]}).to_csv(
        p, index=False, encoding="utf-8-sig")
    out = read_layer(p, "facilities")
    assert out["name"].tolist() == ["甲", "乙"]  # alias 名称 → name
    t = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    x, y = t.transform([LON0, LON0 + 0.01], [LAT0, LAT0 + 0.01])
    np.testing.assert_allclose(out.geometry.x, x, atol=1e-6)
    np.testing.assert_allclose(out.geometry.y, y, atol=1e-6)


def test_csv_without_coordinates(tmp_path):
    p = tmp_path / "t.csv"
    pd.DataFrame({"facility_id": ["F1"], "type": ["clinic"]}).to_csv(p, index=False)
    with pytest.raises(LayerError, match="table has no coordinate columns"):
        read_layer(p, "facilities")


def test_cgcs2000_to_utm_matches_pyproj(tmp_path):
    src = points(5, crs="EPSG:4490")
    p = tmp_path / "pts.gpkg"
    pyogrio.write_dataframe(src, p)
    out = read_layer(p, "facilities")
    assert CRS(out.crs).equals(CRS("EPSG:32651"))
    t = Transformer.from_crs("EPSG:4490", "EPSG:32651", always_xy=True)
    x, y = t.transform(src.geometry.x.to_numpy(), src.geometry.y.to_numpy())
    np.testing.assert_allclose(out.geometry.x, x, atol=1e-6)
    np.testing.assert_allclose(out.geometry.y, y, atol=1e-6)
    assert out.attrs["geotijian"]["source_crs"] == "EPSG:4490"


def test_to_crs_must_be_projected():
    with pytest.raises(LayerError, match="target CRS EPSG:4326 is not projected"):
        read_layer(compounds(), "compounds", to_crs="EPSG:4326")


def test_aliases_population():
    gdf = compounds(2).drop(columns="population")
    gdf["人口"] = ["3,000", "4000"]
    with pytest.raises(LayerError, match="field 'population' is not a number"):
        read_layer(gdf, "compounds")
    gdf["人口"] = [3000, 4000]
    out = read_layer(gdf, "compounds")
    assert "人口" not in out.columns
    assert out["population"].tolist() == [3000.0, 4000.0]


def test_ids_generated_and_reported():
    gdf = compounds(3).drop(columns="compound_id")
    out = read_layer(gdf, "compounds")
    assert out["compound_id"].tolist() == ["X0001", "X0002", "X0003"]
    assert any("generated 3 IDs" in r for r in out.attrs["geotijian"]["repairs"])


# ---------------------------------------------------------------------- GCJ-02


def test_coords_gcj02_conversion():
    glon, glat = wgs84_to_gcj02(np.array([LON0, LON0 + 0.01]), np.array([LAT0, LAT0 + 0.01]))
    gdf = gpd.GeoDataFrame({"facility_id": ["F1", "F2"], "type": ["kindergarten"] * 2},
                           geometry=gpd.points_from_xy(glon, glat), crs="EPSG:4326")
    out = read_layer(gdf, "facilities", coords="gcj02")
    wlon, wlat = gcj02_to_wgs84(glon, glat)
    t = Transformer.from_crs("EPSG:4326", "EPSG:32651", always_xy=True)
    x, y = t.transform(wlon, wlat)
    np.testing.assert_allclose(out.geometry.x, x, atol=1e-3)
    np.testing.assert_allclose(out.geometry.y, y, atol=1e-3)
    tx, ty = t.transform([LON0, LON0 + 0.01], [LAT0, LAT0 + 0.01])
    assert np.hypot(out.geometry.x - tx, out.geometry.y - ty).max() < 0.5  # back on WGS84
    assert any("from GCJ02 to WGS84" in r for r in out.attrs["geotijian"]["repairs"])
    with pytest.raises(LayerError, match="applies to lon/lat degrees"):
        read_layer(gdf.to_crs(32651), "facilities", coords="gcj02")


def _road_grid(spacing_deg: float = 0.015, n: int = 4) -> gpd.GeoDataFrame:
    """Streets every ~1.4 km around Jiading, WGS84 (like OSM)."""
    xs = LON0 + spacing_deg * np.arange(n)
    ys = LAT0 + spacing_deg * np.arange(n)
    lines = [shapely.LineString([(x, ys[0]), (x, ys[-1])]) for x in xs]
    lines += [shapely.LineString([(xs[0], y), (xs[-1], y)]) for y in ys]
    return gpd.GeoDataFrame({"road_id": range(len(lines))}, geometry=lines, crs="EPSG:4326")


def _pois_beside(roads: gpd.GeoDataFrame, n: int = 60, offset_m: float = 12.0) -> gpd.GeoDataFrame:
    rng = np.random.default_rng(3)
    metric = roads.to_crs(32651)
    which = rng.integers(0, len(metric), n)
    frac = rng.uniform(0.1, 0.9, n)
    geoms = np.asarray(metric.geometry.values)[which]
    pts = shapely.line_interpolate_point(geoms, frac, normalized=True)
    side = rng.choice([-1.0, 1.0], n) * offset_m
    ends = shapely.get_coordinates(geoms).reshape(n, 2, 2)  # straight two-vertex streets
    d = ends[:, 1] - ends[:, 0]
    normal = np.column_stack([-d[:, 1], d[:, 0]]) / np.hypot(d[:, 0], d[:, 1])[:, None]
    xy = shapely.get_coordinates(pts) + normal * side[:, None]
    return gpd.GeoDataFrame({"facility_id": [f"F{i}" for i in range(n)]},
                            geometry=gpd.points_from_xy(xy[:, 0], xy[:, 1]), crs=32651).to_crs(4326)


def test_check_gcj_shift_fires_on_shifted_points():
    roads = _road_grid()
    pois = _pois_beside(roads)
    xy = shapely.get_coordinates(pois.geometry.values)
    glon, glat = wgs84_to_gcj02(xy[:, 0], xy[:, 1])
    shifted = pois.set_geometry(gpd.points_from_xy(glon, glat), crs="EPSG:4326")
    with pytest.warns(CoordinateWarning, match="look copied from a Chinese web map; read them with "
                                               "coords='gcj02'"):
        res = check_gcj_shift(shifted, roads)
    assert res["looks_gcj02"]
    assert res["median_m"] > 100 and res["median_if_gcj02_m"] < 20


def test_check_gcj_shift_silent_on_wgs84_points():
    roads = _road_grid()
    pois = _pois_beside(roads)
    with warnings.catch_warnings():
        warnings.simplefilter("error", CoordinateWarning)
        res = check_gcj_shift(pois, roads)
    assert not res["looks_gcj02"]
    assert res["median_m"] == pytest.approx(12.0, abs=0.5)


def test_arrow_read_gives_the_frame_of_a_feature_by_feature_read(tmp_path):
    """Layers are read through Arrow: the same columns, dtypes, values and geometries as
    pyogrio's feature-by-feature read, including a text column without any value."""
    from pathlib import Path

    from geotijian.io import layers as io_layers

    if not io_layers._HAS_ARROW:
        pytest.skip("pyarrow is not installed: layers are read feature by feature")
    src = Path(__file__).resolve().parents[1] / "layers" / "sample" / "sample_district.gpkg"
    g = gpd.read_file(src, layer="facilities", engine="pyogrio").head(50)
    g["empty_text"] = pd.Series([None] * len(g), dtype=object)
    g["some_text"] = ["甲", None] * (len(g) // 2)
    g["count"] = np.arange(len(g), dtype=np.int64)
    path = tmp_path / "mixed.gpkg"
    g.to_file(path, layer="facilities", engine="pyogrio")
    for layer, _ in pyogrio.list_layers(src):
        want = gpd.read_file(src, layer=layer, engine="pyogrio")
        got = io_layers._load(src, layer, layer, layer, None)
        assert list(got.dtypes.astype(str)) == list(want.dtypes.astype(str)), layer
        assert got.equals(want), layer
    want = gpd.read_file(path, engine="pyogrio")
    got = io_layers._load(path, "facilities", "facilities", None, None)
    assert got["empty_text"].isna().all()
    assert list(got.dtypes.astype(str)) == list(want.dtypes.astype(str)) and got.equals(want)
