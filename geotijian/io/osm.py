"""Load OpenStreetMap data: a walk network and the feature layers a city check-up needs.

``load_osm`` reads a local ``.osm`` XML file, a ``.osm.pbf`` file, or (online, through
osmnx and the Overpass API) a place name or a bounding box, and returns an ``OSMData``:

* ``graph``: the walk network, an osmnx ``MultiDiGraph`` projected to a metric CRS, one edge
  per stretch of one OSM way between junctions, ``length`` in metres (great-circle length
  of the way's node chain, as osmnx computes it), ``highway``, ``name``, ``osmid`` kept;
* ``roads``: every highway centre line; the rows that are walk-graph edges carry ``u``,
  ``v``, ``key`` and ``walk=True`` (one row per undirected edge: the reverse twin of a
  two-way edge is not repeated), highway lines outside the walk network (motorways,
  private ways, ``foot=no`` ...) are kept with ``walk=False`` so block delineation still
  sees them;
* ``buildings``, ``residential`` (``landuse=residential``, a stand-in for compounds),
  ``water``, ``rail``, ``pois``, ``entrances`` and ``boundary`` (the data's extent),
  every layer in the same metric CRS, sorted by OSM element type and ID.

Every layer carries ``attrs["attribution"]`` = ``settings.osm_attribution``; what was
repaired or left out is listed in ``OSMData.report`` (and warned about).

Walk filter (``network_type="walk"``): the osmnx 2.1 walk rules
(``osmnx._overpass._get_network_filter("walk")``) restated on tag tables, with two changes
for pedestrians: an ``access=private/no`` way stays when tagged ``foot=yes/designated/
permissive``, and ``cycleway`` ways stay (``settings.osm_walk_cycleways``: in Chinese data
they are the 非机动车道 beside the pavement; osmnx drops them, which splits the network).
``network_type="all"`` keeps every highway in use.

Rooms: this module holds ``OSMData``, ``load_osm``, the online reader and the assembly (walk
filter applied, largest piece kept, projection, layers); the tag rules and ``walk_mask`` are in
``osm_tags``, the XML reader in ``osm_xml``, the .pbf reader (GDAL) and ``parse_other_tags`` in
``osm_pbf``, the extent of a file without bounds in ``osm_extent``, the feature layers in
``osm_features``. The public names stay importable from here.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Proj

from .. import settings
from ..errors import ConfigError, CoordinateWarning, NetworkError, RepairWarning
from .osm_features import _buildings, _entrances, _pois, _polys, _rail, _repair, _roads, _water
from .osm_pbf import _graph_from_lines  # noqa: F401  (kept importable from here, as before the split)
from .osm_pbf import _read_pbf, parse_other_tags
from .osm_tags import _EXCLUDED_HIGHWAY, _WAY_TAGS, NETWORK_TYPES, _col, _features_tags, walk_mask
from .osm_xml import _read_xml

__all__ = ["OSMData", "load_osm", "walk_mask", "parse_other_tags", "NETWORK_TYPES"]


# --------------------------------------------------------------------------------------
# Result
# --------------------------------------------------------------------------------------


@dataclass
class OSMData:
    """Walk network and feature layers from OpenStreetMap, in one metric CRS.

    Attributes
    ----------
    graph : networkx.MultiDiGraph
        Walk network (osmnx conventions), projected; edge ``length`` in metres.
    roads : GeoDataFrame
        Highway centre lines: ``u, v, key, osmid, highway, name, length`` (metres),
        ``oneway``, ``bridge``, ``tunnel``, ``walk``. Rows with ``walk=True`` are the edges
        of ``graph``, each undirected edge once, length as on the edge (great-circle);
        rows with ``walk=False`` are whole OSM ways outside the walk network (motorways,
        private or ``foot=no`` ways, pieces cut off the largest component), ``u/v/key``
        missing, length measured in the metric CRS.
    buildings : GeoDataFrame
        Building polygons: ``osm_type, osm_id, building, levels`` (from ``building:levels``,
        float, NaN where untagged), ``height`` (metres), ``name``.
    residential : GeoDataFrame
        ``landuse=residential`` polygons (stand-in for compounds): ``osm_type, osm_id, name``.
    water : GeoDataFrame
        ``natural=water``, ``landuse=reservoir/basin`` and ``waterway=river/canal/stream/
        ditch/drain/riverbank/...`` polygons and lines: ``kind`` (the ``waterway`` value;
        ``"water"`` or ``"water:<water=*>"`` for ``natural=water``; the landuse value for
        reservoirs and basins), ``name``, ``waterway``, ``natural``, ``water``.
    rail : GeoDataFrame
        Railway lines in use (rail, subway, light_rail, tram, ...): ``kind``, ``name``,
        ``tunnel``, ``bridge``, ``service``.
    pois : GeoDataFrame
        Points and polygons with the tags that classify facilities (amenity, shop, leisure,
        healthcare, social_facility, social_facility:for, isced:level, school:*,
        public_transport, railway, highway, office, sport, name ...).
    entrances : GeoDataFrame
        Nodes tagged ``entrance=*`` or ``barrier=gate/entrance``.
    boundary : GeoDataFrame
        One polygon: the extent of the data: the file's ``<bounds>``; without them (Overpass
        output, a .pbf) the *ways' core*, the smallest box every way reaches (a bbox extract
        holds whole ways, so the extent of every node can be 20 times too large); the bbox
        or the place asked for online. ``extent`` says which.
    source : str
        File path, place name or bbox.
    attribution : str
        ``settings.osm_attribution``; carry it into every output.
    report : list of str
        What was repaired, left out or assumed while loading.
    extent : dict
        How ``boundary`` was found: ``rule`` (``bounds``, ``ways_core``, ``all_nodes``,
        ``bbox``, ``place``), ``text`` (said in ``report`` when not the file's bounds),
        ``area_km2`` and, without bounds, the area of every node's extent.
    raw_counts : dict
        Counts in the source before filtering: ``nodes``, ``ways``, ``relations`` (XML
        only), ``highway_lines`` (highway ways drawn as lines, i.e. not ``area=yes``),
        ``walk_ways`` (of those, ways passing the walk filter), ``highway_points`` (nodes
        with a highway tag: crossings, signals, bus stops), ``buildings`` and
        ``residential`` (tagged ways and relations, usable polygon or not).
    """

    graph: nx.MultiDiGraph
    roads: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    residential: gpd.GeoDataFrame
    water: gpd.GeoDataFrame
    rail: gpd.GeoDataFrame
    pois: gpd.GeoDataFrame
    entrances: gpd.GeoDataFrame
    boundary: gpd.GeoDataFrame
    source: str
    attribution: str
    report: list[str] = field(default_factory=list)
    raw_counts: dict[str, int] = field(default_factory=dict)
    extent: dict[str, Any] = field(default_factory=dict)

    @property
    def crs(self) -> CRS:
        """The metric CRS of every layer and of the graph."""
        return CRS(self.graph.graph["crs"])

    LAYERS = ("roads", "buildings", "residential", "water", "rail", "pois", "entrances",
              "boundary")

    def layers(self) -> dict[str, gpd.GeoDataFrame]:
        """The feature layers by name (for writing a GeoPackage)."""
        return {name: getattr(self, name) for name in self.LAYERS}


# --------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------


def load_osm(
    source: str | PathLike | tuple[float, float, float, float],
    *,
    network_type: str = "walk",
    to_crs: Any = None,
    tags: dict[str, Any] | None = None,
    retain_all: bool = False,
) -> OSMData:
    """Load a walk network and check-up feature layers from OpenStreetMap.

    Parameters
    ----------
    source : path, str or tuple
        * a local ``.osm`` XML file (read with osmnx ``graph_from_xml`` and
          ``features_from_xml``; an osmnx-written file works too);
        * a local ``.osm.pbf`` file (read with GDAL's OSM driver through pyogrio; the graph
          is built from the highway lines, split where ways share a node);
        * a place name (a str that is not an existing path), e.g. ``"嘉定区, 上海市"``,
          **online**: geocoded with Nominatim, downloaded from Overpass by osmnx;
        * a bounding box ``(west, south, east, north)`` in degrees, **online** (Overpass).
    network_type : {"walk", "all"}
        Which highways form the graph (see ``walk_mask``). Default ``"walk"``.
    to_crs : CRS-like or "utm", optional
        Metric CRS of the result. Default ``settings.metric_crs`` (EPSG:32651, Shanghai);
        ``"utm"`` picks the UTM zone of the data. A geographic CRS, or a CRS whose scale
        error at the data exceeds 1 %, is refused (``ConfigError``).
    tags : dict, optional
        Extra osmnx-style tags (``{"amenity": ["toilets"], "tourism": True}``) whose
        features are added to ``pois`` (their keys become columns).
    retain_all : bool
        Keep every connected component of the walk network. Default False: keep the
        largest weakly connected component (the pieces dropped are counted in ``report``).

    Returns
    -------
    OSMData

    Raises
    ------
    NetworkError
        File missing, not OSM data, truncated (ways referencing nodes the file lacks), no
        highways, or no walkable highway.
    ConfigError
        Unknown ``network_type``, a geographic or badly distorting ``to_crs``.
    ValueError
        A bbox that is not ``(west, south, east, north)``.

    Notes
    -----
    Place names and bboxes need internet (Nominatim and the Overpass API, osmnx's
    settings and cache apply). Local files need none. Data © OpenStreetMap contributors
    (ODbL): keep ``OSMData.attribution`` on every output.

    For a whole district prefer ``.osm.pbf``: the XML path reads the file three times
    (integrity scan, osmnx graph, osmnx features). osmnx's ``settings.useful_tags_way`` is
    extended while a file is read (restored after), so do not call ``load_osm`` from
    several threads of one process (Dask processes are fine).
    """
    if network_type not in _EXCLUDED_HIGHWAY:
        raise ConfigError("network_type", f"unknown network type {network_type!r}",
                          fix=f"use one of {', '.join(NETWORK_TYPES)}")
    feature_tags = _features_tags(tags)
    if isinstance(source, tuple | list) and not isinstance(source, str):
        bbox = _check_bbox(source)
        raw = _read_online(bbox, None, feature_tags)
        label = f"bbox {bbox}"
    elif isinstance(source, PathLike) or (isinstance(source, str) and _looks_like_path(source)):
        path = Path(source)
        if not path.exists():
            raise NetworkError(f"OSM file not found: {path}. Fix: check the path, or pass a "
                               "place name / bbox (needs internet)")
        name = path.name.lower()
        if name.endswith(".pbf"):
            raw = _read_pbf(path, feature_tags, network_type)
        else:
            raw = _read_xml(path, feature_tags)
        label = str(path)
    elif isinstance(source, str):
        raw = _read_online(None, source, feature_tags)
        label = source
    else:
        raise TypeError(f"cannot load OSM from a {type(source).__name__}; give a .osm/.osm.pbf "
                        "path, a place name or a (west, south, east, north) bbox")
    return _assemble(raw, label=label, network_type=network_type, to_crs=to_crs,
                     retain_all=retain_all, extra_tags=tags)


def _looks_like_path(text: str) -> bool:
    low = text.lower()
    return Path(text).exists() or low.endswith((".osm", ".pbf", ".xml", ".osm.bz2")) or "/" in text


def _check_bbox(bbox: Any) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(v) for v in bbox)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bbox must be 4 numbers (west, south, east, north), got {bbox!r}") from exc
    problems = []
    if not (-180 <= west <= 180 and -180 <= east <= 180):
        problems.append("west/east must be longitudes in -180..180")
    if not (-90 <= south <= 90 and -90 <= north <= 90):
        problems.append("south/north must be latitudes in -90..90")
    if west >= east:
        problems.append(f"west ({west}) must be less than east ({east})")
    if south >= north:
        problems.append(f"south ({south}) must be less than north ({north})")
    if problems:
        hint = ""
        if -90 <= west <= 90 and -180 <= south <= 180 and abs(south) > 90:
            hint = " (it looks like (south, west, north, east) or lat/lon order)"
        raise ValueError(f"bbox {tuple(bbox)!r} is not (west, south, east, north) in degrees: "
                         + "; ".join(problems) + hint)
    return west, south, east, north


# --------------------------------------------------------------------------------------
# Readers: each returns a dict with the unsimplified graph (EPSG:4326), the feature table
# (columns osm_type, osm_id, tags..., geometry in EPSG:4326), the extent and raw counts.
# Files: osm_xml._read_xml, osm_pbf._read_pbf; online (osmnx) here.
# --------------------------------------------------------------------------------------


def _read_online(bbox: tuple[float, float, float, float] | None, place: str | None,
                 feature_tags: dict[str, Any]) -> dict[str, Any]:  # pragma: no cover - needs internet
    """Download through osmnx (Nominatim + Overpass). Needs internet."""
    import osmnx as ox

    saved = list(ox.settings.useful_tags_way)
    ox.settings.useful_tags_way = list(dict.fromkeys(saved + list(_WAY_TAGS)))
    try:
        if bbox is not None:
            graph = ox.graph_from_bbox(bbox, network_type="all", simplify=False, retain_all=True)
            feats = ox.features_from_bbox(bbox, tags=feature_tags)
            bounds = bbox
            extent = {"rule": "bbox", "text": "the bbox asked for"}
        else:
            area = ox.geocode_to_gdf(place)
            graph = ox.graph_from_place(place, network_type="all", simplify=False, retain_all=True)
            feats = ox.features_from_place(place, tags=feature_tags)
            bounds = tuple(area.total_bounds)
            extent = {"rule": "place", "text": f"the bounds of the place {place!r} (Nominatim)"}
    except Exception as exc:
        raise NetworkError(f"could not download OSM data for {place or bbox!r}: {exc}. Fix: check "
                           "the internet connection and the place name, or give a local .osm/.pbf "
                           "file") from exc
    finally:
        ox.settings.useful_tags_way = saved
    feats = feats.reset_index().rename(columns={"element": "osm_type", "id": "osm_id"})
    return {"graph": graph, "features": feats, "bounds": bounds, "node_ids_real": True, "extent": extent,
            "raw_counts": {"nodes": len(graph)}}


# --------------------------------------------------------------------------------------
# Assembly: filter, simplify, project, build layers
# --------------------------------------------------------------------------------------


def _metric_crs(to_crs: Any, bounds: tuple[float, float, float, float]) -> CRS:
    lon = (bounds[0] + bounds[2]) / 2.0
    lat = (bounds[1] + bounds[3]) / 2.0
    key = "to_crs" if to_crs is not None else "metric_crs"
    if isinstance(to_crs, str) and to_crs.lower() == "utm":
        zone = int((lon + 180) // 6) + 1
        return CRS.from_epsg((32600 if lat >= 0 else 32700) + zone)
    try:
        crs = CRS.from_user_input(to_crs if to_crs is not None else settings.metric_crs)
    except Exception as exc:
        raise ConfigError(key, f"unknown CRS {to_crs!r}", fix="use an EPSG code such as "
                          "'EPSG:32651', or 'utm'") from exc
    if not crs.is_projected:
        raise ConfigError(key, f"{crs.to_string()} is not projected; lengths need metres",
                          fix="give a projected CRS (EPSG:32651 for Shanghai) or to_crs='utm'")
    try:
        f = Proj(crs).get_factors(lon, lat)
        scale_err = max(abs(f.meridional_scale - 1.0), abs(f.parallel_scale - 1.0))
    except Exception:
        scale_err = np.inf
    if not np.isfinite(scale_err) or scale_err > 0.01:
        raise ConfigError(key, f"{crs.to_string()} distorts lengths by "
                          f"{'an unknown amount' if not np.isfinite(scale_err) else f'{scale_err:.1%}'} "
                          f"at the data ({lon:.3f}E, {lat:.3f}N)",
                          fix="pass to_crs='utm' or the metric CRS of the study area "
                              "(settings.configure(metric_crs=...))")
    aou = crs.area_of_use
    if aou is not None and not (aou.west <= lon <= aou.east and aou.south <= lat <= aou.north):
        warnings.warn(f"the data ({lon:.3f}E, {lat:.3f}N) lies outside the area of use of "
                      f"{crs.to_string()} (scale error {scale_err:.2%}); pass to_crs='utm' or "
                      "set settings.metric_crs for this study", CoordinateWarning, stacklevel=3)
    return crs


def _edge_table(graph: nx.MultiDiGraph) -> pd.DataFrame:
    if graph.number_of_edges() == 0:
        return pd.DataFrame(columns=["u", "v", "key"])
    u, v, k, d = zip(*graph.edges(keys=True, data=True), strict=True)
    df = pd.DataFrame(list(d))
    df.insert(0, "u", u)
    df.insert(1, "v", v)
    df.insert(2, "key", k)
    return df


def _walk_graph(graph: nx.MultiDiGraph, network_type: str, retain_all: bool,
                report: list[str], node_ids_real: bool) -> nx.MultiDiGraph:
    import osmnx as ox

    edges = _edge_table(graph)
    keep = walk_mask(edges, network_type) if len(edges) else np.zeros(0, dtype=bool)
    if not keep.any():
        hw = _col(edges, "highway").dropna()
        raise NetworkError(
            f"no walkable highway among {hw.size:,} highway edges "
            f"({', '.join(f'{k} {v}' for k, v in hw.value_counts().head(6).items())}): the file "
            "has no street a pedestrian may use. Fix: export an area with footways and streets, "
            "or pass network_type='all'")
    g = graph.copy()
    drop = edges.loc[~keep, ["u", "v", "key"]].to_numpy()
    g.remove_edges_from(map(tuple, drop))
    g.remove_nodes_from(list(nx.isolates(g)))  # nodes of buildings, POIs, dropped ways
    if node_ids_real:
        g = ox.simplify_graph(g, edge_attrs_differ=["osmid"])
    if not retain_all:
        n0, e0 = g.number_of_nodes(), g.number_of_edges()
        comps = nx.number_weakly_connected_components(g)
        g = ox.truncate.largest_component(g, strongly=False)
        if comps > 1:
            report.append(
                f"walk network: kept the largest of {comps} connected pieces; "
                f"{n0 - g.number_of_nodes():,} nodes and {e0 - g.number_of_edges():,} edges in "
                "smaller pieces left out (retain_all=True keeps them)")
    return g


def _assemble(raw: dict[str, Any], *, label: str, network_type: str, to_crs: Any,
              retain_all: bool, extra_tags: dict[str, Any] | None) -> OSMData:
    import osmnx as ox

    report: list[str] = list(raw.get("report", []))
    extent = dict(raw.get("extent") or {"rule": "bounds", "text": "the data's bounds"})
    crs = _metric_crs(to_crs, raw["bounds"])
    feats: gpd.GeoDataFrame = raw["features"]
    if feats.crs is None:
        feats = feats.set_crs("EPSG:4326")
    graph = _walk_graph(raw["graph"], network_type, retain_all, report, raw["node_ids_real"])
    graph = ox.project_graph(graph, to_crs=crs)
    feats = _repair(feats.to_crs(crs), report)

    hw_line = feats["highway"].notna().to_numpy() if "highway" in feats else np.zeros(len(feats), bool)
    is_line = np.isin(shapely.get_type_id(np.asarray(feats.geometry.values)), (1, 5))
    highway_lines = feats[hw_line & is_line & (feats["osm_type"] == "way").to_numpy()]
    raw_counts = dict(raw["raw_counts"])
    raw_counts["highway_lines"] = len(highway_lines)
    raw_counts["walk_ways"] = int(walk_mask(highway_lines, network_type).sum()) if len(highway_lines) else 0
    raw_counts["highway_points"] = int((hw_line & (feats["osm_type"] == "node").to_numpy()).sum())

    roads = _roads(graph, highway_lines, crs)
    layers = {
        "roads": roads,
        "buildings": _buildings(feats, report, raw_counts),
        "residential": _polys(feats, _col(feats, "landuse").eq("residential"), ["name", "landuse"],
                              "residential", report, raw_counts),
        "water": _water(feats),
        "rail": _rail(feats),
        "pois": _pois(feats, extra_tags, report),
        "entrances": _entrances(feats),
    }
    x0, y0, x1, y1 = raw["bounds"]
    boundary = gpd.GeoDataFrame({"name": [Path(label).name if Path(label).suffix else label]},
                                geometry=[shapely.box(x0, y0, x1, y1)], crs="EPSG:4326")
    boundary = boundary.set_geometry(boundary.geometry.segmentize(0.0005)).to_crs(crs)
    extent["area_km2"] = float(boundary.area.iloc[0]) / 1e6
    if "all_nodes_bounds" in extent:
        a0, b0, a1, b1 = extent["all_nodes_bounds"]
        extent["all_nodes_area_km2"] = float(gpd.GeoSeries([shapely.box(a0, b0, a1, b1)], crs="EPSG:4326")
                                             .to_crs(crs).area.iloc[0]) / 1e6
    if extent["rule"] == "ways_core":
        report.append(f"{extent['text']}: {extent['area_km2']:,.2f} km², where the extent of every node "
                      f"would be {extent['all_nodes_area_km2']:,.2f} km²")
    elif extent["rule"] == "all_nodes":
        report.append(f"{extent['text']}: {extent['area_km2']:,.2f} km²")
    boundary.attrs["extent"] = extent
    layers["boundary"] = boundary
    for gdf in layers.values():
        gdf.attrs["attribution"] = settings.osm_attribution
        gdf.attrs["source"] = label
    graph.graph["attribution"] = settings.osm_attribution
    graph.graph["source"] = label
    graph.graph["network_type"] = network_type
    if report:
        warnings.warn(f"OSM {Path(label).name}: " + "; ".join(report), RepairWarning, stacklevel=3)
    return OSMData(graph=graph, source=label, attribution=settings.osm_attribution,
                   report=report, raw_counts=raw_counts, extent=extent, **layers)
