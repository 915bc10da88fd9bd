"""Sort OSM features into the layers of ``OSMData``: roads, buildings, water, rail, POIs ...

Every layer is sorted by OSM element type and ID; what cannot be used (a building mapped as a
node, a POI drawn as a line, an invalid polygon) is repaired or left out and said in the report.
Part of ``load_osm`` (:mod:`geotijian.io.osm`).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from .osm_tags import (
    _ENTRANCE_COLUMNS,
    _OTHER_POI_VALUES,
    _POI_COLUMNS,
    _POI_KEYS,
    _RAILWAYS,
    _WATERWAYS,
    _col,
    _select_features,
)


def _repair(feats: gpd.GeoDataFrame, report: list[str]) -> gpd.GeoDataFrame:
    """make_valid every invalid geometry (polygons stay polygonal) and say how many."""
    arr = np.asarray(feats.geometry.values)
    bad = ~shapely.is_valid(arr) & ~shapely.is_missing(arr)
    if bad.any():
        fixed = arr.copy()
        fixed[bad] = shapely.make_valid(arr[bad])
        idx = np.flatnonzero(bad)[np.isin(shapely.get_type_id(arr[bad]), (3, 6))]
        if len(idx):
            fixed[idx] = _polygon_parts(fixed[idx])
        first = feats.iloc[int(np.flatnonzero(bad)[0])]
        collapsed = int(shapely.is_missing(fixed[idx]).sum()) if len(idx) else 0
        report.append(f"repaired {int(bad.sum())} invalid geometries with make_valid (first: "
                      f"{first['osm_type']} {first['osm_id']})"
                      + (f"; {collapsed} polygon(s) collapsed to lines (degenerate rings, usually "
                         "cut at the extract edge) and have no geometry" if collapsed else ""))
        feats = feats.set_geometry(fixed, crs=feats.crs)
    return feats


def _polygon_parts(geoms: np.ndarray) -> np.ndarray:
    """Keep the polygon parts of each geometry (make_valid can add lines or points)."""
    parts, owner = shapely.get_parts(geoms, return_index=True)
    sub, sub_owner = shapely.get_parts(parts, return_index=True)  # flatten one more level
    owner = owner[sub_owner]
    poly = shapely.get_type_id(sub) == 3
    out = geoms.copy()
    if poly.any():
        has, compact, n_parts = np.unique(owner[poly], return_inverse=True, return_counts=True)
        grouped = shapely.multipolygons(sub[poly], indices=compact)
        out[has] = np.where(n_parts == 1, shapely.get_geometry(grouped, 0), grouped)
    out[np.setdiff1d(np.arange(len(geoms)), owner[poly])] = None  # collapsed to lines/points
    return out


def _sorted(gdf: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    order = {"node": 0, "way": 1, "relation": 2}
    key = gdf["osm_type"].map(order).fillna(3).astype(int)
    idx = np.lexsort((gdf["osm_id"].to_numpy(dtype=np.int64), key.to_numpy()))
    return gdf.iloc[idx].reset_index(drop=True)


def _subset(feats: gpd.GeoDataFrame, mask, columns: list[str]) -> gpd.GeoDataFrame:
    mask = np.asarray(pd.Series(mask).fillna(False), dtype=bool)
    sub = feats[mask]
    out = pd.DataFrame({"osm_type": sub["osm_type"].astype(str).to_numpy(),
                        "osm_id": sub["osm_id"].astype("int64").to_numpy()})
    for c in columns:
        out[c] = _col(sub, c).to_numpy(dtype=object) if c in sub.columns else None
    gdf = gpd.GeoDataFrame(out, geometry=np.asarray(sub.geometry.values), crs=feats.crs)
    return _sorted(gdf)


def _is_poly(feats: gpd.GeoDataFrame) -> np.ndarray:
    return np.isin(shapely.get_type_id(np.asarray(feats.geometry.values)), (3, 6))


def _polys(feats, mask, columns, what: str, report: list[str],
           raw_counts: dict[str, int]) -> gpd.GeoDataFrame:
    """Polygon layer of the features in ``mask``; what cannot be a polygon is counted."""
    mask = np.asarray(pd.Series(mask).fillna(False), dtype=bool)
    poly = _is_poly(feats)
    is_node = (feats["osm_type"] == "node").to_numpy()
    raw_counts[what] = int((mask & ~is_node).sum())  # tagged ways and relations
    n_points = int((mask & is_node).sum())
    n_broken = int((mask & ~is_node & ~poly).sum())
    if n_points:
        report.append(f"{what}: {n_points} feature(s) mapped as single nodes (no outline) left out")
    if n_broken:
        report.append(f"{what}: {n_broken} way(s)/relation(s) without a usable polygon (not closed, "
                      "unreadable or collapsed) left out")
    return _subset(feats, mask & poly, columns)


def _first_number(s: pd.Series) -> pd.Series:
    """First number in each tag value ("3;4" → 3, "12 m" → 12, "12,5" → 12.5), float."""
    num = s.astype("string").str.extract(r"(-?\d+(?:[.,]\d+)?)", expand=False).str.replace(",", ".")
    return pd.to_numeric(num, errors="coerce").astype("Float64").astype(float)


def _buildings(feats: gpd.GeoDataFrame, report: list[str], raw_counts: dict[str, int]) -> gpd.GeoDataFrame:
    b = _polys(feats, _col(feats, "building").notna(), ["building", "building:levels", "height",
                                                       "name", "building:use"], "buildings", report,
               raw_counts)
    lv_raw = b["building:levels"].astype("string")
    levels = _first_number(lv_raw)
    h_raw = b["height"].astype("string")
    height = _first_number(h_raw)
    feet = h_raw.str.contains(r"ft|'", regex=True).fillna(False).to_numpy(dtype=bool)
    height = height.where(~feet, height * 0.3048)  # feet → metres
    n_bad = int((lv_raw.notna() & levels.isna()).sum() + (h_raw.notna() & height.isna()).sum())
    if n_bad:
        report.append(f"buildings: {n_bad} building:levels/height value(s) are not numbers and were "
                      "read as missing")
    out = b.drop(columns=["building:levels", "height"])
    out.insert(3, "levels", levels.astype(float).to_numpy())
    out.insert(4, "height", height.astype(float).to_numpy())
    return out


def _water(feats: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    ww = _col(feats, "waterway")
    nat = _col(feats, "natural")
    land = _col(feats, "landuse")
    tid = shapely.get_type_id(np.asarray(feats.geometry.values))
    lines_or_polys = np.isin(tid, (1, 3, 5, 6))
    mask = (ww.isin(_WATERWAYS).fillna(False).to_numpy()
            | nat.eq("water").fillna(False).to_numpy()
            | land.isin(["reservoir", "basin"]).fillna(False).to_numpy()) & lines_or_polys
    sub = feats[mask]
    kind = _col(sub, "waterway").fillna(_col(sub, "water").fillna("").radd("water:")
                                        .replace("water:", "water"))
    kind = kind.where(kind != "water", _col(sub, "landuse").fillna("water"))
    gdf = _subset(feats, mask, ["name", "waterway", "natural", "water"])
    key = pd.Series(kind.to_numpy(), index=pd.MultiIndex.from_arrays(
        [sub["osm_type"].astype(str).to_numpy(), sub["osm_id"].astype("int64").to_numpy()]))
    key = key[~key.index.duplicated()]
    gdf.insert(2, "kind", key.reindex(pd.MultiIndex.from_arrays(
        [gdf["osm_type"], gdf["osm_id"]])).to_numpy())
    return gdf


def _rail(feats: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    rw = _col(feats, "railway")
    tid = shapely.get_type_id(np.asarray(feats.geometry.values))
    mask = rw.isin(_RAILWAYS).fillna(False).to_numpy() & np.isin(tid, (1, 5))
    gdf = _subset(feats, mask, ["railway", "name", "tunnel", "bridge", "layer", "service", "usage"])
    return gdf.rename(columns={"railway": "kind"})


def _poi_mask(feats: gpd.GeoDataFrame, extra: dict[str, Any] | None) -> np.ndarray:
    m = np.zeros(len(feats), dtype=bool)
    for key in _POI_KEYS:
        m |= _col(feats, key).notna().to_numpy()
    for key, vals in _OTHER_POI_VALUES.items():
        m |= _col(feats, key).isin(vals).fillna(False).to_numpy(dtype=bool)
    if extra:
        m |= _select_features(feats, extra)
    # railway=station etc. only as points/polygons; not highway lines, not railway lines
    return m


def _pois(feats: gpd.GeoDataFrame, extra: dict[str, Any] | None, report: list[str]) -> gpd.GeoDataFrame:
    mask = _poi_mask(feats, extra)
    tid = shapely.get_type_id(np.asarray(feats.geometry.values))
    ok_geom = np.isin(tid, (0, 3, 6))
    n_lines = int((mask & ~ok_geom & ~_col(feats, "highway").notna().to_numpy()).sum())
    if n_lines:
        report.append(f"pois: {n_lines} tagged feature(s) drawn as lines (e.g. leisure=track) left "
                      "out: facilities are points or polygons")
    cols = list(_POI_COLUMNS) + sorted(c for c in feats.columns if str(c).startswith("school:"))
    cols += [k for k in (extra or {}) if k not in cols]
    return _subset(feats, mask & ok_geom, cols)


def _entrances(feats: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    mask = ((_col(feats, "entrance").notna()
             | _col(feats, "barrier").isin(["gate", "entrance"]).fillna(False)).to_numpy()
            & (feats["osm_type"] == "node").to_numpy()
            & (shapely.get_type_id(np.asarray(feats.geometry.values)) == 0))
    return _subset(feats, mask, list(_ENTRANCE_COLUMNS))


def _roads(graph: nx.MultiDiGraph, highway_lines: gpd.GeoDataFrame, crs: CRS) -> gpd.GeoDataFrame:
    import osmnx as ox

    edges = ox.graph_to_gdfs(graph, nodes=False, fill_edge_geometry=True).reset_index()
    # one row per undirected edge: the reverse twin has the same normalised geometry
    norm = shapely.to_wkb(shapely.normalize(np.asarray(edges.geometry.values)))
    twin_key = pd.Series(norm).astype(bytes) + edges["osmid"].astype(str).str.encode("utf-8").to_numpy()
    edges = edges[~twin_key.duplicated(keep="first").to_numpy()]
    cols = ["u", "v", "key", "osmid", "highway", "name", "length", "oneway", "bridge", "tunnel"]
    walk = pd.DataFrame({c: (edges[c].to_numpy() if c in edges.columns else None) for c in cols})
    walk["walk"] = True
    walk = gpd.GeoDataFrame(walk, geometry=np.asarray(edges.geometry.values), crs=crs)
    in_graph = np.isin(highway_lines["osm_id"].astype("int64").to_numpy(),
                       pd.to_numeric(walk["osmid"]).to_numpy())
    rest = highway_lines[~in_graph]
    other = pd.DataFrame({
        "u": pd.array([pd.NA] * len(rest), dtype="Int64"),
        "v": pd.array([pd.NA] * len(rest), dtype="Int64"),
        "key": pd.array([pd.NA] * len(rest), dtype="Int64"),
        "osmid": rest["osm_id"].astype("int64").to_numpy(),
        "highway": _col(rest, "highway").to_numpy(dtype=object),
        "name": _col(rest, "name").to_numpy(dtype=object),
        "length": np.asarray(shapely.length(np.asarray(rest.geometry.values)), dtype=float),
        "oneway": _col(rest, "oneway").to_numpy(dtype=object),
        "bridge": _col(rest, "bridge").to_numpy(dtype=object),
        "tunnel": _col(rest, "tunnel").to_numpy(dtype=object),
        "walk": False,
    })
    other = gpd.GeoDataFrame(other, geometry=np.asarray(rest.geometry.values), crs=crs)
    roads = pd.concat([walk, other], ignore_index=True)
    roads = gpd.GeoDataFrame(roads, geometry="geometry", crs=crs)
    for c in ("u", "v", "key"):
        roads[c] = pd.array(pd.to_numeric(roads[c]), dtype="Int64")
    roads["osmid"] = roads["osmid"].astype("int64")
    roads["walk"] = roads["walk"].astype(bool)
    order = np.lexsort((roads["key"].fillna(-1).to_numpy(), roads["v"].fillna(-1).to_numpy(),
                        roads["u"].fillna(-1).to_numpy(), roads["osmid"].to_numpy(),
                        ~roads["walk"].to_numpy()))
    return roads.iloc[order].reset_index(drop=True)
