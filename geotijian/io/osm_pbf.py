"""Read an ``.osm.pbf`` file through GDAL's OSM driver (pyogrio) and build its walk graph.

GDAL gives three layers (points, lines, multipolygons) with the common tags as columns and the
rest in an hstore ``other_tags`` string (``parse_other_tags``); ``_graph_from_lines`` cuts the
highway lines where ways share a vertex into an osmnx-style graph. Part of ``load_osm``
(:mod:`geotijian.io.osm`): a reader returns the same dict as the XML reader.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyogrio
import shapely

from ..errors import NetworkError
from .osm_extent import _core_extent
from .osm_tags import _BUILDING_KEYS, _ENTRANCE_COLUMNS, _POI_COLUMNS, _WAY_TAGS, _select_features, walk_mask


_HSTORE = re.compile(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"')


def parse_other_tags(other_tags: pd.Series, keys: tuple[str, ...] | None = None,
                     prefixes: tuple[str, ...] = ()) -> pd.DataFrame:
    """Parse GDAL's ``other_tags`` hstore strings into one column per key.

    Parameters
    ----------
    other_tags : Series of str
        ``"key"=>"value","key2"=>"value2"`` strings (GDAL OSM driver), NA allowed.
    keys : tuple of str, optional
        Keys to keep (default all).
    prefixes : tuple of str
        Also keep keys starting with these prefixes (``"school:"``).

    Returns
    -------
    DataFrame
        Indexed like ``other_tags``, one string column per key found.
    """
    s = other_tags.dropna().astype(str)
    if s.empty:
        return pd.DataFrame(index=other_tags.index)
    pairs = s.str.extractall(_HSTORE)
    pairs.columns = ["k", "v"]
    if keys is not None:
        sel = pairs["k"].isin(keys)
        for p in prefixes:
            sel |= pairs["k"].str.startswith(p)
        pairs = pairs[sel]
    if pairs.empty:
        return pd.DataFrame(index=other_tags.index)
    unescape = lambda c: c.str.replace(r'\\(["\\])', r"\1", regex=True)  # noqa: E731
    pairs = pairs.assign(k=unescape(pairs["k"]), v=unescape(pairs["v"]))
    pairs = pairs.droplevel("match").set_index("k", append=True)["v"]
    pairs = pairs[~pairs.index.duplicated(keep="first")]
    wide = pairs.unstack("k")
    wide.columns.name = None
    return wide.reindex(other_tags.index)


def _gdal_layer(path: Path, layer: str) -> gpd.GeoDataFrame:
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Non closed ring.*")
            warnings.filterwarnings("ignore", message=".*organizePolygons.*")
            return pyogrio.read_dataframe(path, layer=layer, on_invalid="ignore")
    except Exception as exc:
        raise NetworkError(f"{path.name}: GDAL's OSM driver cannot read layer {layer!r} ({exc}). "
                           "Fix: check the file is a valid .osm.pbf (osmium fileinfo)") from exc


def _gdal_tags(df: gpd.GeoDataFrame, keys: tuple[str, ...], prefixes=()) -> pd.DataFrame:
    """Tag table of a GDAL OSM layer: its own columns plus the parsed ``other_tags``."""
    own = df.drop(columns=[c for c in ("other_tags", "geometry", "z_order") if c in df.columns])
    other = parse_other_tags(df["other_tags"], keys=keys, prefixes=prefixes) \
        if "other_tags" in df.columns else pd.DataFrame(index=df.index)
    other = other.drop(columns=[c for c in other.columns if c in own.columns])
    return pd.concat([own, other], axis=1)


def _read_pbf(path: Path, feature_tags: dict[str, Any], network_type: str = "walk") -> dict[str, Any]:
    try:
        info = pyogrio.list_layers(path)
    except Exception as exc:
        raise NetworkError(f"{path.name} is not a readable .osm.pbf ({exc}). Fix: re-download or "
                           "convert it with osmium") from exc
    names = set(info[:, 0])
    if not {"points", "lines", "multipolygons"} <= names:
        raise NetworkError(f"{path.name} was not opened by GDAL's OSM driver (layers {sorted(names)})."
                           " Fix: give an .osm.pbf file")
    keys = tuple(dict.fromkeys(list(_WAY_TAGS) + list(feature_tags) + list(_POI_COLUMNS)
                               + list(_BUILDING_KEYS) + list(_ENTRANCE_COLUMNS)
                               + ["water", "service", "usage", "natural", "landuse"]))
    report: list[str] = []
    pts = _gdal_layer(path, "points")
    lines = _gdal_layer(path, "lines")
    polys = _gdal_layer(path, "multipolygons")
    null_polys = int(polys.geometry.isna().sum())
    if null_polys:
        report.append(f"{null_polys} multipolygon(s) have no readable geometry (GDAL could not "
                      "assemble their rings: members cut at the extract edge)")

    parts = []
    for df, kind in ((pts, "node"), (lines, "way")):
        t = _gdal_tags(df, keys, prefixes=("school:",))
        t["osm_type"] = kind
        t["osm_id"] = pd.to_numeric(df["osm_id"], errors="coerce").astype("Int64")
        parts.append(gpd.GeoDataFrame(t, geometry=df.geometry.values, crs=df.crs))
    t = _gdal_tags(polys, keys, prefixes=("school:",))
    is_rel = polys["osm_id"].notna().to_numpy()
    t["osm_type"] = np.where(is_rel, "relation", "way")
    t["osm_id"] = pd.to_numeric(polys["osm_id"].where(is_rel, polys["osm_way_id"]),
                                errors="coerce").astype("Int64")
    t = t.drop(columns=[c for c in ("osm_way_id",) if c in t.columns])
    parts.append(gpd.GeoDataFrame(t, geometry=polys.geometry.values, crs=polys.crs))
    feats = pd.concat(parts, ignore_index=True)
    feats = gpd.GeoDataFrame(feats, geometry="geometry", crs="EPSG:4326")
    feats = feats[_select_features(feats, feature_tags)].reset_index(drop=True)

    hw_lines = parts[1][parts[1]["highway"].notna()].reset_index(drop=True)
    if hw_lines.empty:
        raise NetworkError(f"{path.name} holds no highway lines: a walk network cannot be built. "
                           "Fix: use an extract that includes its streets")
    # split only where network ways meet (as osmnx does when it simplifies after filtering)
    graph = _graph_from_lines(hw_lines[walk_mask(hw_lines, network_type)].reset_index(drop=True))
    way_polys = polys[~is_rel & polys.geometry.notna().to_numpy()]
    way_bounds = np.vstack([shapely.bounds(np.asarray(g.geometry.values)) for g in (lines, way_polys) if len(g)]
                           or [np.empty((0, 4))])
    pt_xy = shapely.get_coordinates(np.asarray(pts.geometry.values))
    bounds, extent = _core_extent(way_bounds, pt_xy, nodes_what="tagged node",
                                  why="GDAL does not read a .pbf's bounds")
    return {"graph": graph, "features": feats, "bounds": bounds, "node_ids_real": False, "extent": extent,
            "report": report,
            "raw_counts": {"points": len(pts), "lines": len(lines),
                           "multipolygons": len(polys)}}


def _graph_from_lines(lines: gpd.GeoDataFrame) -> nx.MultiDiGraph:
    """Unsimplified-equivalent MultiDiGraph from highway lines (EPSG:4326) that share nodes.

    OSM ways meet at shared nodes, whose coordinates are identical in both ways. Every
    vertex used by more than one way (or twice by one way), and every way end, becomes a
    graph node; each way is cut at those nodes into edges. Node IDs are positions in the
    sorted coordinate list (GDAL does not expose OSM node IDs). Edges carry the way's
    tags, ``osmid`` (way ID), ``geometry`` and ``length`` (great-circle metres, as osmnx).
    Every edge is added in both directions; ``oneway`` is kept as a tag (a walk network is
    bidirectional, as in osmnx).
    """
    import osmnx as ox

    geoms = np.asarray(lines.geometry.values)
    owner = np.flatnonzero(shapely.get_type_id(geoms) == 1)  # GDAL's lines layer: LineStrings
    parts = geoms[owner]
    coords, vidx = shapely.get_coordinates(parts, return_index=True)
    n_v = len(coords)
    # one vertex key per distinct coordinate
    uniq, inv, counts = np.unique(coords, axis=0, return_inverse=True, return_counts=True)
    inv = inv.ravel()
    first = np.r_[True, vidx[1:] != vidx[:-1]]
    last = np.r_[vidx[1:] != vidx[:-1], True]
    is_node = first | last | (counts[inv] > 1)
    # segment (edge) number of each vertex inside its part
    node_rank = np.cumsum(is_node) - 1                       # global rank of node vertices
    part_start_rank = node_rank[first]                        # rank of each part's first vertex
    seg = node_rank - np.repeat(part_start_rank, np.bincount(vidx, minlength=len(parts)))
    n_nodes_part = np.bincount(vidx, weights=is_node, minlength=len(parts)).astype(np.int64)
    n_edges_part = np.maximum(n_nodes_part - 1, 0)
    edge_base = np.r_[0, np.cumsum(n_edges_part)[:-1]]
    # vertex → edge: a vertex starts edge `seg` (unless it is the part's last vertex) and an
    # interior node also ends edge `seg - 1`.
    start_mask = ~last
    end_mask = is_node & ~first
    e_start = edge_base[vidx[start_mask]] + seg[start_mask]
    e_end = edge_base[vidx[end_mask]] + seg[end_mask] - 1
    pos = np.arange(n_v)
    edge_of = np.r_[e_start, e_end]
    vert_of = np.r_[pos[start_mask], pos[end_mask]]
    order = np.lexsort((vert_of, edge_of))
    edge_of, vert_of = edge_of[order], vert_of[order]
    n_edges = int(n_edges_part.sum())
    edge_lines = shapely.linestrings(coords[vert_of], indices=edge_of)
    bounds_idx = np.r_[0, np.flatnonzero(np.diff(edge_of)) + 1]
    u = inv[vert_of[bounds_idx]]
    v = inv[vert_of[np.r_[bounds_idx[1:] - 1, len(vert_of) - 1]]]
    # great-circle length of each edge (sum over its segments), metres
    seg_ok = edge_of[1:] == edge_of[:-1]
    a, b = coords[vert_of[:-1]][seg_ok], coords[vert_of[1:]][seg_ok]
    seg_len = ox.distance.great_circle(a[:, 1], a[:, 0], b[:, 1], b[:, 0])
    length = np.bincount(edge_of[:-1][seg_ok], weights=seg_len, minlength=n_edges)
    way = owner[vidx[vert_of[bounds_idx]]]
    keep_cols = ["osm_id"] + [c for c in _WAY_TAGS if c in lines.columns]
    attrs = pd.DataFrame(lines[keep_cols]).iloc[way].reset_index(drop=True)
    attrs = attrs.rename(columns={"osm_id": "osmid"})
    attrs["osmid"] = pd.to_numeric(attrs["osmid"], errors="coerce").astype("int64")
    fwd = gpd.GeoDataFrame(attrs.assign(u=u, v=v, reversed=False, length=length),
                           geometry=edge_lines, crs="EPSG:4326")
    back = fwd.assign(u=v, v=u, reversed=True)
    back = back.set_geometry(shapely.reverse(np.asarray(fwd.geometry.values)), crs="EPSG:4326")
    edges = pd.concat([fwd, back], ignore_index=True)
    # drop zero-length self loops created by a way doubling back on one node
    edges = edges[~((edges["u"] == edges["v"]) & (edges["length"] <= 0))]
    edges["key"] = edges.groupby(["u", "v"]).cumcount()
    edges = gpd.GeoDataFrame(edges, geometry="geometry", crs="EPSG:4326").set_index(["u", "v", "key"])
    used = np.unique(np.r_[u, v])
    nodes = gpd.GeoDataFrame({"x": uniq[used, 0], "y": uniq[used, 1]},
                             geometry=gpd.points_from_xy(uniq[used, 0], uniq[used, 1]),
                             crs="EPSG:4326", index=pd.Index(used, name="osmid"))
    return ox.graph_from_gdfs(nodes, edges, graph_attrs={"crs": "epsg:4326"})
