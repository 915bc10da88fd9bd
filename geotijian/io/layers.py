"""Read input layers by role, with CRS discipline and clear errors.

Every layer of a study has a *role* (boundary, towns, committees, compounds, ...). A role
declares its geometry type, its ID field and its fields; ``read_layer`` loads a file or a
GeoDataFrame, checks it against the role, repairs what can be repaired (and says so), and
returns it in the study's metric CRS with a normalised schema:

* the ID column first (``compound_id``, ``town_code`` ...), as strings, unique;
* the role's fields under their canonical names (aliases such as ``人口`` or ``pop`` are
  renamed), numeric fields as float;
* any other columns kept after them, untouched;
* ``gdf.attrs["geotijian"]``: role, source, source CRS, and the list of repairs.
"""

from __future__ import annotations

import importlib.util

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from .. import settings
from ..errors import CoordinateWarning, InputWarning, LayerError, RepairWarning
from .coords import _norm as _norm_coords
from .coords import convert_coords, gcj02_to_wgs84
from .text import dbf_encoding, read_table, read_text_table

__all__ = ["ROLES", "RoleSpec", "read_layer", "validate_layer", "check_gcj_shift"]

_POLY = ("Polygon", "MultiPolygon")
_LINE = ("LineString", "MultiLineString")
_POINT = ("Point",)


@dataclass(frozen=True)
class RoleSpec:
    """What a layer of one role must hold.

    Attributes
    ----------
    role : str
        Role name.
    geom_types : tuple of str
        Allowed shapely geometry types.
    id_field : str
        Unique ID column; generated as ``<prefix><n>`` (and reported) when absent.
    id_prefix : str
        Prefix of generated IDs.
    required : tuple of str
        Fields that must be present.
    fields : dict
        All schema fields (required and optional) with their kind: ``"str"`` or ``"num"``.
    nonneg : tuple of str
        Numeric fields that must not be negative.
    description : str
        中文 / English name of the role, for messages and docs.
    """

    role: str
    geom_types: tuple[str, ...]
    id_field: str
    id_prefix: str
    required: tuple[str, ...] = ()
    fields: dict[str, str] = field(default_factory=dict)
    nonneg: tuple[str, ...] = ()
    description: str = ""


ROLES: dict[str, RoleSpec] = {
    s.role: s
    for s in [
        RoleSpec("boundary", _POLY, "boundary_id", "B", (), {"name": "str"},
                 description="研究范围 study boundary"),
        RoleSpec("towns", _POLY, "town_code", "T", ("name",),
                 {"name": "str", "population": "num"}, ("population",),
                 "街镇 towns / sub-districts"),
        RoleSpec("committees", _POLY, "committee_id", "C", ("name",),
                 {"name": "str", "town_code": "str", "population": "num", "households": "num"},
                 ("population", "households"), "居委会 residents' committees"),
        RoleSpec("compounds", _POLY, "compound_id", "X", ("name",),
                 {"name": "str", "population": "num", "households": "num", "build_year": "num",
                  "committee_id": "str"},
                 ("population", "households"), "小区 residential compounds"),
        RoleSpec("buildings", _POLY, "building_id", "BLD", (),
                 {"levels": "num", "height": "num", "use": "str", "build_year": "num"},
                 ("levels", "height"), "建筑 buildings"),
        RoleSpec("roads", _LINE, "road_id", "R", (), {"highway": "str", "name": "str"},
                 description="道路 road centre lines"),
        RoleSpec("water", _POLY + _LINE, "water_id", "W", (), {"kind": "str", "name": "str"},
                 description="水系 rivers, canals, lakes"),
        RoleSpec("rail", _LINE, "rail_id", "RL", (), {"kind": "str", "name": "str"},
                 description="铁路 railways"),
        RoleSpec("parks", _POLY, "park_id", "P", (), {"name": "str", "kind": "str"},
                 description="公园绿地 parks and public green"),
        RoleSpec("greenways", _LINE + _POLY, "greenway_id", "GW", (), {"name": "str", "kind": "str"},
                 description="绿道 greenways"),
        RoleSpec("facilities", _POINT + _POLY, "facility_id", "F", ("type",),
                 {"type": "str", "name": "str", "capacity": "num"}, ("capacity",),
                 "设施 service facilities"),
        RoleSpec("population", _POINT, "pop_id", "PP", ("population",),
                 {"population": "num"}, ("population",), "人口点 population points"),
        RoleSpec("complaints", _POINT, "complaint_id", "H", ("category",),
                 {"category": "str", "date": "str", "text": "str"},
                 description="12345 热线投诉 hotline complaints"),
        RoleSpec("sites", _POINT + _POLY, "site_id", "S", (),
                 {"name": "str", "capacity": "num", "types": "str", "area_m2": "num"},
                 ("capacity", "area_m2"),
                 "备选用地 candidate sites for new facilities (available land, public parcels)"),
    ]
}

# Common alternative column names in Chinese deliveries and OSM exports.
_ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("名称", "NAME", "Name", "小区名称", "xqmc", "mc"),
    "population": ("pop", "POP", "人口", "常住人口", "人口数", "rk", "rks"),
    "households": ("户数", "hh", "HH", "households_n"),
    "build_year": ("建成年代", "建成年份", "year", "YEAR", "start_date"),
    "levels": ("building:levels", "floors", "层数", "LEVELS", "building_levels"),
    "height": ("高度", "HEIGHT"),
    "type": ("facility_type", "类型", "类别代码"),
    "category": ("类别", "诉求类别", "type"),
    "town_code": ("街镇代码", "town", "town_id"),
    "committee_id": ("居委代码", "committee"),
    "highway": ("fclass", "等级", "class"),
    "capacity": ("规模", "学位", "床位", "places"),
    "kind": ("waterway", "natural", "leisure"),
    "date": ("日期", "时间"),
    "text": ("内容", "诉求内容", "description"),
}

_LON_NAMES = ("lon", "lng", "long", "longitude", "经度", "x_wgs84")
_LAT_NAMES = ("lat", "latitude", "纬度", "y_wgs84")


def _layer_name(role: str, source: Any) -> str:
    if isinstance(source, (str, PathLike)):
        return f"{role} ({Path(source).name})"
    return role


def _load(source: Any, role: str, label: str, layer: str | None, crs: Any) -> gpd.GeoDataFrame:
    if isinstance(source, gpd.GeoDataFrame):
        return source.copy()
    if isinstance(source, pd.DataFrame):
        return _points_from_table(source, label, crs)
    if not isinstance(source, (str, PathLike)):
        raise LayerError(label, f"cannot read a {type(source).__name__}",
                         fix="pass a file path or a GeoDataFrame")
    path = Path(source)
    if not path.exists():
        raise LayerError(label, f"file not found: {path}", fix="check the path in the study config")
    if path.is_dir() and path.suffix.lower() != ".gdb":
        raise LayerError(label, f"{path} is a folder, not a file",
                         fix="give the layer's file (.gpkg, .shp, .geojson, .csv) inside it")
    suffix = path.suffix.lower()
    if suffix in (".csv", ".txt"):
        return _points_from_table(read_text_table(path, label), label, crs)
    if suffix in (".xlsx", ".xls"):
        return _points_from_table(read_table(path, label), label, crs)
    if suffix in (".json", ".geojson") and _is_bare_feature_list(path):
        return _read_feature_list(path, label)
    kwargs: dict[str, Any] = {}
    if suffix == ".shp":
        enc = dbf_encoding(path, label)
        if enc is not None:
            kwargs["encoding"] = enc
    layer = _choose_layer(path, role, label, layer)
    try:
        if "encoding" not in kwargs and _HAS_ARROW:
            return _null_text_as_object(gpd.read_file(path, layer=layer, engine="pyogrio", use_arrow=True))
        return gpd.read_file(path, layer=layer, engine="pyogrio", **kwargs)
    except Exception as exc:  # GDAL's message is the useful part
        raise LayerError(label, f"GDAL cannot read the file: {exc}",
                         fix="check that it is a vector file (GeoPackage, Shapefile with its .shx/.dbf, "
                             "GeoJSON) and not truncated; re-export it from the GIS") from exc


#: Layers are read through Arrow (GDAL's columnar API): 2.7x less CPU than feature by
#: feature (the scale-18.4 district's 10 input layers: 3.1 -> 1.15 s), the same frame
#: (:func:`_null_text_as_object`; tested). Shapefiles whose encoding geotijian detected
#: are read as before.
_HAS_ARROW = importlib.util.find_spec("pyarrow") is not None


def _null_text_as_object(df: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """A text column without any value as a feature-by-feature read gives it (object
    dtype, None), not Arrow's string dtype."""
    for col in df.columns:
        if isinstance(df[col].dtype, pd.StringDtype) and df[col].isna().all():
            df[col] = pd.Series([None] * len(df), index=df.index, dtype=object)
    return df


def _layer_summary(path: Path) -> list[str]:
    import pyogrio

    out = []
    for name, gtype in pyogrio.list_layers(path):
        out.append(f"{name} ({gtype or 'no geometry'})")
    return out


def _choose_layer(path: Path, role: str, label: str, layer: str | None) -> str | None:
    """The layer to read from a (possibly multi-layer) file.

    Rule: a ``layer`` given must exist (else the file's layers are listed, nearest first);
    without one, a single-layer file is read as it is; a multi-layer file is read at its
    layer named like the role (``compounds``), reported; otherwise it is an error listing
    the layers.
    """
    import difflib

    import pyogrio

    try:
        layers = pyogrio.list_layers(path)
    except Exception:  # not a GDAL vector source: let read_file say why
        return layer
    names = [str(n) for n in layers[:, 0]] if len(layers) else []

    def listing() -> str:  # (for the messages only: it lists the file again)
        return (", ".join(_layer_summary(path)) if len(names) <= 30 else
                ", ".join(names[:30]) + f" … ({len(names)} layers)")

    if layer is not None:
        if layer in names or not names:
            return layer
        close = difflib.get_close_matches(layer, names, n=1, cutoff=0.6)
        raise LayerError(label, f"no layer {layer!r} in {path.name}; its layers: {listing()}",
                         fix=(f"did you mean layer = {close[0]!r}? " if close else "")
                         + "set layer = one of the names listed")
    if len(names) <= 1:
        return None
    if role in names:
        warnings.warn(f"{label}: {path.name} holds {len(names)} layers and no layer was named: read the "
                      f"layer named like the role, {role!r} (others: "
                      f"{', '.join(n for n in names if n != role)[:200]})", InputWarning, stacklevel=3)
        return role
    raise LayerError(label, f"{path.name} holds {len(names)} layers and none was named: {listing()}",
                     fix="add layer = \"<name>\" (in study.toml [layers.<key>], or --...-layer on the "
                         "command line)")


def _is_bare_feature_list(path: Path) -> bool:
    with open(path, "rb") as fh:
        head = fh.read(4096).lstrip(b"\xef\xbb\xbf \t\r\n")
    return head.startswith(b"[")


_GEOMETRY_TYPES = {"Point", "MultiPoint", "LineString", "MultiLineString", "Polygon", "MultiPolygon",
                   "GeometryCollection"}


def _read_feature_list(path: Path, label: str) -> gpd.GeoDataFrame:
    """A JSON file holding a bare list of GeoJSON features (DataV.GeoAtlas-style downloads
    of Chinese boundaries), read as the FeatureCollection it should have been, reported."""
    import json

    try:
        items = json.loads(path.read_bytes().decode("utf-8-sig"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise LayerError(label, f"not valid JSON ({exc})",
                         fix="download the file again; GeoJSON must be UTF-8 text") from None
    if not isinstance(items, list) or not items:
        raise LayerError(label, "the JSON list holds no features",
                         fix="download the boundary again (a FeatureCollection or a list of features)")
    features = []
    for i, item in enumerate(items):
        if isinstance(item, dict) and item.get("type") in _GEOMETRY_TYPES:
            item = {"type": "Feature", "properties": {}, "geometry": item}
        if not isinstance(item, dict) or "geometry" not in item:
            what = type(item).__name__ if not isinstance(item, dict) else \
                f"an object with keys {', '.join(list(item)[:6])}"
            raise LayerError(label, f"the JSON list holds {what} where a GeoJSON feature is expected",
                             feature=i, fix="give a GeoJSON FeatureCollection (or a list of features, each "
                                            "with geometry and properties)")
        props = {k: (json.dumps(v, ensure_ascii=False) if isinstance(v, (dict, list)) else v)
                 for k, v in (item.get("properties") or {}).items()}
        features.append({"type": "Feature", "properties": props, "geometry": item["geometry"]})
    try:
        gdf = gpd.GeoDataFrame.from_features(features, crs="EPSG:4326")
    except Exception as exc:
        raise LayerError(label, f"a feature's geometry cannot be read ({exc})",
                         fix="check the geometry objects (type and coordinates)") from None
    warnings.warn(f"{label}: a bare JSON list of {len(features)} feature(s) (no FeatureCollection, as "
                  "DataV.GeoAtlas downloads come) was read as a FeatureCollection in WGS84 lon/lat. "
                  "DataV boundaries are in GCJ-02: if this file came from there, add coords = \"gcj02\"",
                  InputWarning, stacklevel=3)
    return gdf


def _points_from_table(table: pd.DataFrame, label: str, crs: Any) -> gpd.GeoDataFrame:
    cols = {c.lower(): c for c in table.columns}
    lon = next((cols[c] for c in _LON_NAMES if c in cols), None)
    lat = next((cols[c] for c in _LAT_NAMES if c in cols), None)
    if lon is None or lat is None:
        if "x" in cols and "y" in cols:
            lon, lat = cols["x"], cols["y"]
            if crs is None:
                raise LayerError(label, "table has x/y columns but no CRS is known",
                                 fix="pass crs='EPSG:....' for the x/y columns")
        else:
            raise LayerError(label, "table has no coordinate columns",
                             fix="add lon/lat (WGS84) or x/y columns with crs=...")
    for c in (lon, lat):
        vals = pd.to_numeric(table[c], errors="coerce")
        bad = np.flatnonzero(vals.isna().to_numpy())
        if len(bad):
            raise LayerError(label, f"column {c!r} is empty or not a number ({table[c].iloc[bad[0]]!r})",
                             feature=int(bad[0]), count=len(bad), fix="fill in the coordinates")
    geom = gpd.points_from_xy(pd.to_numeric(table[lon]), pd.to_numeric(table[lat]))
    # lon/lat columns are WGS84 unless the caller says otherwise (gcj02 via coords=).
    return gpd.GeoDataFrame(table.drop(columns=[lon, lat]), geometry=geom,
                            crs=crs if crs is not None else ("EPSG:4326" if lon.lower() != "x" else None))


def _label_crs(gdf: gpd.GeoDataFrame, crs: Any, label: str) -> gpd.GeoDataFrame:
    if crs is not None:
        try:
            declared = CRS.from_user_input(crs)
        except Exception as exc:
            raise LayerError(label, f"unknown CRS {crs!r}",
                             fix="use an EPSG code such as 'EPSG:4490' or 'EPSG:4549'") from exc
    else:
        declared = None
    if gdf.crs is None:
        if declared is None:
            raise LayerError(label, "the layer has no CRS",
                             fix="pass crs='EPSG:4490' (CGCS2000), 'EPSG:4326' (WGS84) or the "
                                 "projected CRS of the data, or add a .prj file")
        return gdf.set_crs(declared)
    if declared is not None and not CRS(gdf.crs).equals(declared, ignore_axis_order=True):
        raise LayerError(label, f"the file declares {CRS(gdf.crs).to_string()} but crs={crs!r} was given",
                         fix="drop the crs argument, or fix the file's CRS if it is wrong")
    return gdf


def _check_coordinates(gdf: gpd.GeoDataFrame, label: str, id_of) -> None:
    xy = shapely.get_coordinates(gdf.geometry.values)
    if len(xy) == 0:
        return
    x, y = xy[:, 0], xy[:, 1]
    crs = CRS(gdf.crs)
    if crs.is_geographic:
        b = gdf.bounds  # (once)
        # Features whose coordinates fall outside lon/lat ranges
        bad_feat = _first_feature(gdf, (np.abs(b["maxy"]) > 90) | (np.abs(b["miny"]) > 90)
                                  | (np.abs(b["maxx"]) > 180) | (np.abs(b["minx"]) > 180))
        if bad_feat is not None and np.all(np.abs(x) <= 90) and np.any(np.abs(y) > 90):
            raise LayerError(label, "latitude and longitude are swapped (y holds values > 90)",
                             feature=bad_feat, feature_id=id_of(bad_feat),
                             fix="swap the lon/lat columns (x = longitude, y = latitude)")
        if bad_feat is not None:
            raise LayerError(label, f"coordinates outside the range of degrees but CRS is {crs.to_string()}",
                             feature=bad_feat, feature_id=id_of(bad_feat),
                             fix="the data is probably projected: pass its projected CRS (e.g. crs='EPSG:4549')")
        # China-specific swap: lat in 18-54, lon in 73-135 exchanged
        swapped = (b["minx"] > 15) & (b["maxx"] < 56) & (b["miny"] > 70) & (b["maxy"] < 140)
        if swapped.all():
            raise LayerError(label, "latitude and longitude look swapped (x in 15-56, y in 70-140: "
                                    "China with the axes exchanged)",
                             feature=0, feature_id=id_of(0),
                             fix="swap the lon/lat columns (x = longitude, y = latitude)")
    elif crs.is_projected:
        if np.all(np.abs(x) <= 180) and np.all(np.abs(y) <= 90):
            raise LayerError(label, f"coordinates look like degrees but the CRS is projected "
                                    f"({crs.to_string()})",
                             feature=0, feature_id=id_of(0),
                             fix="declare the geographic CRS (crs='EPSG:4490' or 'EPSG:4326')")


def _first_feature(gdf: gpd.GeoDataFrame, mask) -> int | None:
    idx = np.flatnonzero(np.asarray(mask))
    return int(idx[0]) if len(idx) else None


def _family_filter(geoms: np.ndarray, allowed: tuple[str, ...]) -> np.ndarray:
    """After make_valid keep only the parts of the allowed family (polygons of a polygon layer).

    ``make_valid`` may return a GeometryCollection (a polygon plus a stray line); each such
    collection becomes the (Multi)geometry of its parts of the allowed family, or None when
    it has none (the caller reports it as lost).
    """
    out = geoms.copy()
    family = 3 if "Polygon" in allowed else (1 if "LineString" in allowed else 0)
    # a whole result of another family (a zero-area polygon repaired into a line): nothing left
    tid = shapely.get_type_id(out)
    single = {3: (3, 6), 1: (1, 5), 0: (0, 4)}[family]
    out[(tid != 7) & ~np.isin(tid, single) & (tid >= 0)] = None
    coll = np.flatnonzero(tid == 7)
    if len(coll) == 0:
        return out
    maker = {3: shapely.multipolygons, 1: shapely.multilinestrings, 0: shapely.multipoints}[family]
    parts, owner = shapely.get_parts(out[coll], return_index=True)
    sub, sub_owner = shapely.get_parts(parts, return_index=True)  # Multi* members → singles
    owner = owner[sub_owner]
    keep = shapely.get_type_id(sub) == family
    rebuilt = np.full(len(coll), None, dtype=object)
    if keep.any():
        has, compact, n_parts = np.unique(owner[keep], return_inverse=True, return_counts=True)
        grouped = maker(sub[keep], indices=compact)
        rebuilt[has] = np.where(n_parts == 1, shapely.get_geometry(grouped, 0), grouped)
    out[coll] = rebuilt
    return out


def _geom_types(values: np.ndarray) -> np.ndarray:
    names = np.array(["Point", "LineString", "LinearRing", "Polygon", "MultiPoint",
                      "MultiLineString", "MultiPolygon", "GeometryCollection"])
    tid = shapely.get_type_id(values)
    return np.where(tid >= 0, names[np.clip(tid, 0, 7)], "None")


def read_layer(
    source: Any,
    role: str,
    crs: Any = None,
    *,
    coords: str | None = None,
    to_crs: Any = None,
    study_area: Any = None,
    layer: str | None = None,
    name: str | None = None,
) -> gpd.GeoDataFrame:
    """Read one input layer of a study, checked against its role.

    Parameters
    ----------
    source : path or GeoDataFrame
        GeoPackage, Shapefile, GeoJSON, CSV/Excel with lon/lat (or x/y + ``crs``) columns,
        or a (Geo)DataFrame.
    role : str
        One of ``ROLES`` (boundary, towns, committees, compounds, buildings, roads, water,
        rail, parks, facilities, population, complaints).
    crs : CRS-like, optional
        CRS of the source when it carries none (a Shapefile without .prj, a CSV in x/y).
        If the source declares a different CRS this is an error, never a silent relabel.
    coords : {"wgs84", "cgcs2000", "gcj02", "bd09"}, optional
        Coordinate system of lon/lat sources. ``"gcj02"`` (Amap/Gaode, Tencent) and
        ``"bd09"`` (Baidu) are converted to WGS84 before projecting.
    to_crs : CRS-like, optional
        Metric CRS of the result; default ``settings.metric_crs``.
    study_area : GeoDataFrame, GeoSeries or geometry, optional
        Study boundary (in ``to_crs``); a feature farther than
        ``settings.boundary_tolerance_m`` metres from it is an error.
    layer : str, optional
        Layer name inside a multi-layer file (GeoPackage).
    name : str, optional
        Name used in messages (default: role and file name).

    Returns
    -------
    geopandas.GeoDataFrame
        In the metric CRS, ID column first, canonical field names, ``attrs["geotijian"]``
        holding the role, the source CRS and the repairs made.

    Raises
    ------
    LayerError
        For a missing file, no or wrong CRS, swapped lat/lon, coordinates outside the study
        area, an empty layer, null or wrong-type geometry, missing required fields, duplicate
        IDs, non-numeric or negative values. The message names the layer, the feature and
        the fix.
    """
    if role not in ROLES:
        raise LayerError(str(role), f"unknown layer role {role!r}",
                         fix=f"use one of: {', '.join(ROLES)}")
    spec = ROLES[role]
    label = name or _layer_name(role, source)
    gdf = _load(source, role, label, layer, crs)
    if not isinstance(gdf, gpd.GeoDataFrame) or gdf.geometry.name not in gdf.columns:
        raise LayerError(label, "the source has no geometry column",
                         fix="give a spatial file or lon/lat columns")
    if len(gdf) == 0:
        raise LayerError(label, "the layer is empty (0 features)",
                         fix="check the file, the layer name and any filter applied when exporting")
    gdf = gdf.reset_index(drop=True)
    gdf = _normalise_fields(gdf, spec)
    repairs: list[str] = []
    id_of = _make_id_lookup(gdf, spec)

    _check_geometry_types(gdf, spec, role, label, id_of)

    gdf = _label_crs(gdf, crs, label)
    source_crs = CRS(gdf.crs)
    _check_coordinates(gdf, label, id_of)
    if coords is not None:
        gdf = _convert_to_wgs84(gdf, coords, source_crs, label, repairs)
    gdf = _repair_invalid(gdf, spec, label, id_of, repairs)
    gdf = _to_metric(gdf, to_crs, label)

    if study_area is not None:
        _check_inside(gdf, study_area, label, id_of)

    gdf = _check_fields(gdf, spec, label, id_of, repairs)
    gdf.attrs["geotijian"] = {
        "role": role,
        "source": str(source) if isinstance(source, (str, PathLike)) else type(source).__name__,
        "source_crs": source_crs.to_string(),
        "repairs": repairs,
        "label": label,
    }
    return gdf


def _check_geometry_types(gdf: gpd.GeoDataFrame, spec: RoleSpec, role: str, label: str,
                          id_of: Callable[[int], Any]) -> None:
    """Refuse null or empty geometries and geometry types the role does not take."""
    geoms = gdf.geometry.values
    missing = shapely.is_missing(np.asarray(geoms)) | shapely.is_empty(np.asarray(geoms))
    if missing.any():
        i = _first_feature(gdf, missing)
        raise LayerError(label, "feature has no geometry (null or empty)", feature=i,
                         feature_id=id_of(i), count=int(missing.sum()),
                         fix="delete these features or draw their geometry")
    types = _geom_types(np.asarray(geoms))
    wrong = ~np.isin(types, spec.geom_types)
    if wrong.any():
        i = _first_feature(gdf, wrong)
        raise LayerError(label, f"geometry type {types[i]} where {' or '.join(spec.geom_types)} is expected",
                         feature=i, feature_id=id_of(i), count=int(wrong.sum()),
                         fix=f"give a {spec.description or role} layer of the right geometry type")


def _convert_to_wgs84(gdf: gpd.GeoDataFrame, coords: str, source_crs: CRS, label: str,
                      repairs: list[str]) -> gpd.GeoDataFrame:
    """Convert GCJ-02 / BD-09 lon/lat to WGS84 (``coords=``); the conversion is a repair."""
    system = _norm_coords(coords)
    if system != "wgs84":
        if not source_crs.is_geographic:
            raise LayerError(label, f"coords={coords!r} applies to lon/lat degrees but the layer is "
                                    f"in {source_crs.to_string()}",
                             fix="drop coords= or give the layer in lon/lat")
        arr = np.asarray(gdf.geometry.values)
        gdf = gdf.set_geometry(shapely.transform(
            arr, lambda xy: np.column_stack(convert_coords(xy[:, 0], xy[:, 1], system, "wgs84"))))
        repairs.append(f"converted {len(gdf)} features from {system.upper()} to WGS84")
    return gdf


def _repair_invalid(gdf: gpd.GeoDataFrame, spec: RoleSpec, label: str, id_of: Callable[[int], Any],
                    repairs: list[str]) -> gpd.GeoDataFrame:
    """make_valid every invalid geometry, kept in the role's family; refuse what collapses.

    The repair is added to ``repairs`` and warned about (``RepairWarning``, pointing at the
    caller of ``read_layer``).
    """
    arr = np.asarray(gdf.geometry.values)
    invalid = ~shapely.is_valid(arr)
    if invalid.any():
        fixed = arr.copy()
        fixed[invalid] = shapely.make_valid(arr[invalid])
        fixed[invalid] = _family_filter(fixed[invalid], spec.geom_types)
        lost = invalid & (shapely.is_missing(fixed) | shapely.is_empty(fixed))
        if lost.any():
            i = _first_feature(gdf, lost)
            what = ("has no area (its points are collinear or repeated): repairing it leaves a line or a "
                    "point, not a polygon" if "Polygon" in spec.geom_types else
                    "cannot be repaired (collapses to nothing)")
            raise LayerError(label, f"invalid geometry that {what}",
                             feature=i, feature_id=id_of(i), count=int(lost.sum()),
                             fix="redraw these features or delete them")
        first = int(np.flatnonzero(invalid)[0])
        msg = (f"{label}: repaired {int(invalid.sum())} invalid geometries with make_valid "
               f"(first: feature {first}, id {id_of(first)!r})")
        repairs.append(msg)
        warnings.warn(msg, RepairWarning, stacklevel=3)  # read_layer's caller, as before the split
        gdf = gdf.set_geometry(fixed, crs=gdf.crs)
    return gdf


def _to_metric(gdf: gpd.GeoDataFrame, to_crs: Any, label: str) -> gpd.GeoDataFrame:
    """Project to ``to_crs`` (default ``settings.metric_crs``), which must be projected."""
    target = CRS.from_user_input(to_crs if to_crs is not None else settings.metric_crs)
    if not target.is_projected:
        raise LayerError(label, f"target CRS {target.to_string()} is not projected; measurement needs metres",
                         fix="set settings.metric_crs (or to_crs) to a projected CRS such as EPSG:32651")
    return gdf.to_crs(target)


def _normalise_fields(gdf: gpd.GeoDataFrame, spec: RoleSpec) -> gpd.GeoDataFrame:
    rename = {}
    present = set(gdf.columns)
    for canon in list(spec.fields) + [spec.id_field]:
        if canon in present:
            continue
        # Shapefile (dBase) cuts field names to 10 characters: compound_id → compound_i
        aliases = _ALIASES.get(canon, ()) + ((canon[:10],) if len(canon) > 10 else ())
        for alias in aliases:
            if alias in present and alias not in rename and alias not in spec.fields:
                rename[alias] = canon
                break
    return gdf.rename(columns=rename)


def _make_id_lookup(gdf: gpd.GeoDataFrame, spec: RoleSpec):
    if spec.id_field in gdf.columns:
        ids = gdf[spec.id_field].to_numpy()
        return lambda i: None if i is None else ids[i]
    return lambda i: None


def _check_inside(gdf: gpd.GeoDataFrame, study_area: Any, label: str, id_of) -> None:
    if isinstance(study_area, (gpd.GeoDataFrame, gpd.GeoSeries)):
        if study_area.crs is not None and not CRS(study_area.crs).equals(CRS(gdf.crs)):
            study_area = study_area.to_crs(gdf.crs)
        area = shapely.union_all(np.asarray(study_area.geometry.values))
    else:
        area = study_area
    geoms = np.asarray(gdf.geometry.values)
    tol = settings.boundary_tolerance_m
    if tol > 0:  # features meeting the (prepared) area lie 0 m from it: measure only the others
        dist = np.zeros(len(geoms))
        shapely.prepare(area)
        away = np.flatnonzero(~shapely.intersects(area, geoms))
        dist[away] = shapely.distance(geoms[away], area)
    else:
        dist = shapely.distance(geoms, area)
    outside = dist > tol
    if outside.any():
        i = _first_feature(gdf, outside)
        raise LayerError(label, f"feature lies {dist[i]:,.0f} m outside the study boundary",
                         feature=i, feature_id=id_of(i), count=int(outside.sum()),
                         fix="check the layer's CRS (GCJ-02? projected data labelled as degrees?) "
                             "or clip the layer to the study area")


def _check_fields(gdf: gpd.GeoDataFrame, spec: RoleSpec, label: str, id_of, repairs: list[str]):
    missing = [f for f in spec.required if f not in gdf.columns]
    if missing:
        raise LayerError(label, f"required field(s) missing: {', '.join(missing)}",
                         fix=f"add the column(s) {', '.join(missing)} "
                             f"(columns present: {', '.join(map(str, gdf.columns[:12]))})")
    for fname, kind in spec.fields.items():
        if fname not in gdf.columns:
            continue
        col = gdf[fname]
        if kind == "num":
            num = pd.to_numeric(col, errors="coerce")
            bad = num.isna() & col.notna()  # and not blank (only these few are written out and stripped)
            if bad.any():
                bad[bad] = (col[bad].astype(str).str.strip() != "").to_numpy()
            if bad.any():
                i = _first_feature(gdf, bad)
                raise LayerError(label, f"field {fname!r} is not a number ({col.iloc[i]!r})",
                                 feature=i, feature_id=id_of(i), count=int(bad.sum()),
                                 fix=f"write {fname} as a number (no units, no thousands separators)")
            if fname in spec.nonneg and (num < 0).any():
                i = _first_feature(gdf, num < 0)
                raise LayerError(label, f"field {fname!r} is negative ({num.iloc[i]:g})",
                                 feature=i, feature_id=id_of(i), count=int((num < 0).sum()),
                                 fix=f"correct {fname}: it counts persons or things and cannot be negative")
            gdf[fname] = num.astype(float)
        else:
            gdf[fname] = col.where(col.isna(), col.astype(str))
    if fname_required_empty := [f for f in spec.required if gdf[f].isna().any()]:
        f = fname_required_empty[0]
        i = _first_feature(gdf, gdf[f].isna())
        raise LayerError(label, f"required field {f!r} is empty", feature=i, feature_id=id_of(i),
                         count=int(gdf[f].isna().sum()), fix=f"fill in {f} for every feature")
    if spec.id_field in gdf.columns:
        ids = gdf[spec.id_field]
        if ids.isna().any():
            i = _first_feature(gdf, ids.isna())
            raise LayerError(label, f"ID field {spec.id_field!r} is empty", feature=i,
                             count=int(ids.isna().sum()), fix="give every feature an ID")
        ids = ids.astype(str)
        dup = ids.duplicated(keep="first")
        if dup.any():
            i = _first_feature(gdf, dup)
            first = int(np.flatnonzero((ids == ids.iloc[i]).to_numpy())[0])
            raise LayerError(label, f"duplicate ID {ids.iloc[i]!r} (also feature {first})",
                             feature=i, feature_id=ids.iloc[i], count=int(dup.sum()),
                             fix=f"make {spec.id_field} unique")
        gdf[spec.id_field] = ids
    else:
        width = max(4, len(str(len(gdf))))
        gdf[spec.id_field] = [f"{spec.id_prefix}{i + 1:0{width}d}" for i in range(len(gdf))]
        repairs.append(f"no {spec.id_field} column: generated {len(gdf)} IDs in file order")
    geom = gdf.geometry.name
    ordered = [spec.id_field] + [f for f in spec.fields if f in gdf.columns]
    rest = [c for c in gdf.columns if c not in ordered and c != geom]
    out = gdf[ordered + rest + [geom]]
    if geom != "geometry":
        out = out.rename_geometry("geometry")
    return out


def validate_layer(gdf: gpd.GeoDataFrame, role: str, **kwargs: Any) -> gpd.GeoDataFrame:
    """Check an in-memory layer against its role (same checks as ``read_layer``)."""
    return read_layer(gdf, role, **kwargs)


def check_gcj_shift(points: gpd.GeoDataFrame, roads: gpd.GeoDataFrame, *, warn: bool = True,
                    margin: float = 0.8) -> dict:
    """Does a WGS84 point layer look GCJ-02 shifted against (OSM, WGS84) roads?

    POIs lie beside streets. Undoing the GCJ-02 offset (≈ 480 m ESE in Jiading) moves every
    point by its own offset vector; if that brings the points clearly closer to the roads
    than leaving them as they are AND than seven *decoy* shifts of the same length in other
    directions, the layer was most probably copied from a Chinese web map. The decoys make
    the test hold in a dense street grid, where any shift of a few hundred metres lands
    near some road.

    Parameters
    ----------
    points, roads : GeoDataFrame
        Any CRS; both are compared in ``settings.metric_crs``.
    warn : bool
        Issue a ``CoordinateWarning`` when the layer looks shifted.
    margin : float
        Undoing the offset must give a median distance below ``margin`` × the best of the
        alternatives (as given, decoys).

    Returns
    -------
    dict
        ``median_m`` (as given), ``median_if_gcj02_m`` (offset undone), ``median_decoys_m``
        (best decoy), metres, and ``looks_gcj02`` (bool).
    """
    metric = settings.metric_crs
    pts = np.asarray(points.to_crs(metric).geometry.values)
    lines = np.asarray(roads.to_crs(metric).geometry.values)
    tree = shapely.STRtree(lines)
    geo = points.to_crs(settings.geographic_crs)
    xy = shapely.get_coordinates(np.asarray(geo.geometry.values))
    wlon, wlat = gcj02_to_wgs84(xy[:, 0], xy[:, 1])
    undone = gpd.GeoSeries(gpd.points_from_xy(wlon, wlat), crs=settings.geographic_crs).to_crs(metric)
    here = shapely.get_coordinates(shapely.centroid(pts))
    delta = shapely.get_coordinates(np.asarray(undone.values)) - here  # per-point offset (m)

    def median_dist(xy_m: np.ndarray) -> float:
        _, d = tree.query_nearest(shapely.points(xy_m), return_distance=True, all_matches=False)
        return float(np.median(d))

    base = median_dist(here)
    alt = median_dist(here + delta)
    decoys = []
    for k in range(1, 8):  # the same shift rotated by 45° steps
        c, s_ = np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)
        rot = np.column_stack([delta[:, 0] * c - delta[:, 1] * s_, delta[:, 0] * s_ + delta[:, 1] * c])
        decoys.append(median_dist(here + rot))
    best_other = min(base, min(decoys))
    looks = bool(alt < margin * best_other)
    if looks and warn:
        warnings.warn(
            f"points lie {base:,.0f} m (median) from the roads but {alt:,.0f} m after undoing a "
            "GCJ-02 offset: they look copied from a Chinese web map; read them with coords='gcj02'",
            CoordinateWarning, stacklevel=2)
    return {"median_m": base, "median_if_gcj02_m": alt, "median_decoys_m": min(decoys), "looks_gcj02": looks}
