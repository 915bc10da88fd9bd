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
"""

from __future__ import annotations

import bz2
import math
import re
import warnings
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS, Proj

from .. import settings
from ..errors import ConfigError, CoordinateWarning, NetworkError, RepairWarning

__all__ = ["OSMData", "load_osm", "walk_mask", "parse_other_tags", "NETWORK_TYPES"]

# --------------------------------------------------------------------------------------
# Tag rules
# --------------------------------------------------------------------------------------

#: highway values left out of each network type (osmnx 2.1 ``_get_network_filter``).
_EXCLUDED_HIGHWAY: dict[str, frozenset[str]] = {
    "walk": frozenset({
        "abandoned", "bus_guideway", "construction", "cycleway", "motorway", "motorway_link",
        "motorway_junction", "no", "planned", "platform", "proposed", "raceway", "razed",
        "rest_area", "services", "disused",
    }),
    "all": frozenset({
        "abandoned", "construction", "no", "planned", "platform", "proposed", "raceway",
        "razed", "rest_area", "services", "disused",
    }),
}
NETWORK_TYPES: tuple[str, ...] = tuple(_EXCLUDED_HIGHWAY)
_FOOT_OK = ("yes", "designated", "permissive")
_SIDEWALK_KEYS = ("sidewalk", "sidewalk:both", "sidewalk:left", "sidewalk:right")
#: way tags the network filter and the edges need (added to osmnx's useful_tags_way).
_WAY_TAGS = ("highway", "name", "area", "access", "foot", "service", "oneway", "junction",
             "bridge", "tunnel", "layer", "lit", "surface") + _SIDEWALK_KEYS

_BUILDING_KEYS = ("building", "building:levels", "height", "name", "building:use")
_WATERWAYS = ("river", "riverbank", "canal", "stream", "ditch", "drain", "dock", "tidal_channel")
_RAILWAYS = ("rail", "subway", "light_rail", "tram", "monorail", "narrow_gauge", "funicular",
             "preserved")
#: railway / highway values that make a node or area a POI (stations, stops, entrances).
_POI_RAILWAY = ("station", "halt", "tram_stop", "subway_entrance", "stop")
_POI_KEYS = ("amenity", "shop", "leisure", "healthcare", "social_facility", "office",
             "public_transport")
#: columns kept on POIs: what facility classification needs (see data/facilities.csv).
_POI_COLUMNS = (
    "name", "name:en", "amenity", "shop", "leisure", "healthcare", "healthcare:speciality",
    "social_facility", "social_facility:for", "isced:level", "school", "nursery",
    "public_transport", "railway", "station", "subway", "bus", "highway", "office",
    "government", "power", "place", "sport", "building", "operator", "access", "entrance",
    "wheelchair", "opening_hours", "capacity", "recycling_type", "brand",
)
_ENTRANCE_COLUMNS = ("entrance", "barrier", "access", "foot", "name", "ref", "wheelchair")
_OTHER_POI_VALUES = {"power": ("substation",), "place": ("square",),
                     "highway": ("bus_stop",), "railway": _POI_RAILWAY}


def _features_tags(extra: dict[str, Any] | None) -> dict[str, Any]:
    """osmnx ``tags`` dict selecting every feature ``load_osm`` sorts into layers."""
    tags: dict[str, Any] = {
        "building": True,
        "landuse": ["residential", "reservoir", "basin"],
        "natural": ["water"],
        "waterway": list(_WATERWAYS),
        "railway": list(_RAILWAYS) + list(_POI_RAILWAY),
        "highway": True,
        "entrance": True,
        "barrier": ["gate", "entrance"],
        "power": ["substation"],
        "place": ["square"],
    }
    for key in _POI_KEYS:
        tags[key] = True
    for key, val in (extra or {}).items():
        tags[key] = _merge_tag_values(tags.get(key), val)
    return tags


def _merge_tag_values(old: Any, new: Any) -> Any:
    if old is True or new is True or old is None:
        return True if (old is True or new is True) else new
    as_list = lambda v: [v] if isinstance(v, str) else list(v)  # noqa: E731
    return sorted(set(as_list(old)) | set(as_list(new)))


def _col(df: pd.DataFrame, key: str) -> pd.Series:
    """Tag column as strings (missing key → all NA)."""
    if key in df.columns:
        return df[key].astype("string")
    return pd.Series(pd.NA, index=df.index, dtype="string")


def walk_mask(tags: pd.DataFrame, network_type: str = "walk") -> np.ndarray:
    """Which ways (rows of a tag table) belong to the network of ``network_type``.

    Parameters
    ----------
    tags : DataFrame
        One row per way, one column per OSM key (``highway``, ``area``, ``access``,
        ``foot``, ``service``, ``sidewalk*``); missing keys count as untagged.
    network_type : {"walk", "all"}
        ``"walk"``: osmnx 2.1's walk filter (no motorways, platforms, works, ``area=yes``,
        ``foot=no``, ``service=private``, ``access=private/no``, sidewalks mapped
        separately), except that ``foot=yes/designated/permissive`` keeps a private-access
        way, and cycleways are kept when ``settings.osm_walk_cycleways`` (default True, see
        there: Chinese 非机动车道) or when tagged ``foot=yes``. ``"all"``: every highway in
        use, private ones included.

    Returns
    -------
    numpy.ndarray of bool
    """
    if network_type not in _EXCLUDED_HIGHWAY:
        raise ConfigError("network_type", f"unknown network type {network_type!r}",
                          fix=f"use one of {', '.join(NETWORK_TYPES)}")
    hw = _col(tags, "highway")
    keep = hw.notna() & ~hw.isin(_EXCLUDED_HIGHWAY[network_type])
    keep &= _col(tags, "area").fillna("") != "yes"
    if network_type == "walk":
        foot = _col(tags, "foot").fillna("")
        foot_ok = foot.isin(_FOOT_OK)
        cycle_ok = foot_ok | settings.osm_walk_cycleways
        keep |= hw.eq("cycleway").fillna(False) & cycle_ok & (_col(tags, "area").fillna("") != "yes")
        keep &= foot != "no"
        keep &= ~_col(tags, "service").fillna("").str.contains("private", regex=False)
        keep &= ~_col(tags, "access").fillna("").isin(["private", "no"]) | foot_ok
        for key in _SIDEWALK_KEYS:
            keep &= _col(tags, key).fillna("") != "separate"
    return keep.fillna(False).to_numpy(dtype=bool)


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
# --------------------------------------------------------------------------------------


def _after(ids: list[int], what: str) -> str:
    return f"{what} no. {len(ids) + 1:,} in the file, after {what} {ids[-1]}" if ids else \
        f"the first {what} in the file"


def _element_id(path: Path, elem: Any, what: str, ids: list[int]) -> int:
    raw = elem.get("id")
    try:
        return int(raw)
    except (TypeError, ValueError):
        problem = "has no id" if raw is None else f"has id={raw!r}, which is not a whole number"
        raise NetworkError(f"{path.name}: a <{what}> ({_after(ids, what)}) {problem}. Fix: repair or "
                           "delete it in JOSM (or a text editor), or download the extract again") from None


def _node_id(path: Path, elem: Any, ids: list[int]) -> int:
    nid = _element_id(path, elem, "node", ids)
    if elem.get("visible") == "false":  # a deleted node in a history/osmChange file: no position
        return nid
    for key, lim in (("lat", 90.0), ("lon", 180.0)):
        raw = elem.get(key)
        try:
            v = float(raw)
            ok = math.isfinite(v) and -lim <= v <= lim
        except (TypeError, ValueError):
            ok = False
        if not ok:
            problem = (f"has no {key}" if raw is None else
                       f"has {key}={raw!r}, which is not a number of degrees in -{lim:g}..{lim:g}")
            raise NetworkError(f"{path.name}: node {nid} ({_after(ids, 'node')}) {problem}, so the ways "
                               "through it cannot be drawn. Fix: correct or delete the node in JOSM (or a "
                               "text editor), or download the extract again")
    return nid


def _nd_ref(path: Path, nd: Any, way_id: int) -> int:
    raw = nd.get("ref")
    try:
        return int(raw)
    except (TypeError, ValueError):
        problem = "without ref" if raw is None else f"with ref={raw!r}, not a node id"
        raise NetworkError(f"{path.name}: way {way_id} holds an <nd> {problem}. Fix: repair the way in JOSM "
                           "or download the extract again") from None


def _scan_xml(path: Path) -> dict[str, Any]:
    """One streaming pass over an OSM XML file: integrity checks before osmnx reads it."""
    node_ids: list[int] = []
    node_lon: list[str | None] = []
    node_lat: list[str | None] = []
    member_ways: list[int] = []
    member_nodes: list[int] = []
    way_ids: list[int] = []
    way_nd_counts: list[int] = []
    refs: list[int] = []
    highway_ways = 0
    relations = 0
    bounds = None
    root_tag = None
    opener = bz2.open if path.suffix.lower() == ".bz2" else open  # osmnx reads .osm.bz2 too
    try:
        with opener(path, "rb") as fh:
            for event, elem in ET.iterparse(fh, events=("start", "end")):
                if event == "start":
                    if root_tag is None:
                        root_tag = elem.tag
                        if root_tag != "osm":
                            raise NetworkError(
                                f"{path.name} is XML but not OSM XML (root element <{root_tag}>, "
                                "expected <osm>). Fix: export the data as .osm from "
                                "openstreetmap.org, JOSM, Overpass or osmium")
                    continue
                tag = elem.tag
                if tag == "node":
                    node_ids.append(_node_id(path, elem, node_ids))
                    node_lon.append(elem.get("lon"))
                    node_lat.append(elem.get("lat"))
                    elem.clear()
                elif tag == "way":
                    wid = _element_id(path, elem, "way", way_ids)
                    nds = [_nd_ref(path, nd, wid) for nd in elem.iter("nd")]
                    way_ids.append(wid)
                    way_nd_counts.append(len(nds))
                    refs.extend(nds)
                    highway_ways += any(t.get("k") == "highway" for t in elem.iter("tag"))
                    elem.clear()
                elif tag == "relation":
                    relations += 1
                    for mem in elem.iter("member"):  # relations come whole: their members
                        kind, ref = mem.get("type"), mem.get("ref")  # may lie far outside
                        if ref is not None and ref.lstrip("-").isdigit():
                            if kind == "way":
                                member_ways.append(int(ref))
                            elif kind == "node":
                                member_nodes.append(int(ref))
                    elem.clear()
                elif tag == "bounds":
                    try:
                        bounds = tuple(float(elem.get(k))
                                       for k in ("minlon", "minlat", "maxlon", "maxlat"))
                    except (TypeError, ValueError):
                        bounds = None
    except ET.ParseError as exc:
        raise NetworkError(f"{path.name} is not OSM XML (XML parse error: {exc}). Fix: give a .osm "
                           "export (XML) or a .osm.pbf file") from exc
    except OSError as exc:  # e.g. a .bz2 that is not bzip2
        raise NetworkError(f"{path.name} cannot be read ({exc}). Fix: give a .osm (XML), .osm.bz2 "
                           "or .osm.pbf file") from exc
    if root_tag is None:
        raise NetworkError(f"{path.name} is empty. Fix: re-export the OSM data")
    nodes = np.unique(np.asarray(node_ids, dtype=np.int64))
    ref_arr = np.asarray(refs, dtype=np.int64)
    missing = ~np.isin(ref_arr, nodes)
    counts = np.asarray(way_nd_counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    return {
        "nodes": len(node_ids), "ways": len(way_ids), "relations": relations,
        "highway_ways": int(highway_ways), "bounds": bounds,
        "bad_ways": np.unique(owner[missing]), "way_ids": np.asarray(way_ids, dtype=np.int64),
        "missing_refs": ref_arr[missing], "missing_owner": owner[missing],
        "node_ids": np.asarray(node_ids, dtype=np.int64),
        "node_lon": pd.to_numeric(pd.Series(node_lon, dtype=object), errors="coerce").to_numpy(float),
        "node_lat": pd.to_numeric(pd.Series(node_lat, dtype=object), errors="coerce").to_numpy(float),
        "refs": ref_arr, "way_nd_counts": counts,
        "member_ways": np.asarray(member_ways, dtype=np.int64),
        "member_nodes": np.asarray(member_nodes, dtype=np.int64),
    }


def _read_xml(path: Path, feature_tags: dict[str, Any]) -> dict[str, Any]:
    import osmnx as ox

    scan = _scan_xml(path)
    if scan["ways"] == 0:
        raise NetworkError(f"{path.name} holds no ways ({scan['nodes']} nodes): no street can be "
                           "built. Fix: export an area with its streets (ways and their nodes)")
    n_bad = len(scan["bad_ways"])
    if n_bad:
        i = scan["bad_ways"][0]
        example_way = int(scan["way_ids"][i])
        example_node = int(scan["missing_refs"][np.flatnonzero(scan["missing_owner"] == i)[0]])
        raise NetworkError(
            f"{path.name} is a truncated extract: {n_bad:,} of {scan['ways']:,} ways reference "
            f"nodes missing from the file (e.g. way {example_way} lacks node {example_node}; "
            f"{len(scan['missing_refs']):,} node references are dangling), so their lines cannot "
            "be built. Fix: re-export with complete ways (openstreetmap.org export, Overpass "
            "with `(._;>;); out;`, or `osmium extract --strategy complete_ways`)")
    if scan["highway_ways"] == 0:
        raise NetworkError(f"{path.name} holds {scan['ways']:,} ways but no highway: a walk network "
                           "cannot be built. Fix: export an area that includes its streets")
    saved = list(ox.settings.useful_tags_way)
    ox.settings.useful_tags_way = list(dict.fromkeys(saved + list(_WAY_TAGS)))
    try:
        with warnings.catch_warnings():
            # osmnx warns that it does not support re-reading its own XML; we check the result
            warnings.filterwarnings("ignore", message=".*OSMnx.*", category=UserWarning)
            graph = ox.graph_from_xml(path, bidirectional=True, simplify=False, retain_all=True)
            feats = ox.features_from_xml(path, tags=feature_tags)
    finally:
        ox.settings.useful_tags_way = saved
    feats = feats.reset_index().rename(columns={"element": "osm_type", "id": "osm_id"})
    bounds = scan["bounds"]
    if bounds is not None:
        extent = {"rule": "bounds", "text": "the file's <bounds>"}
    else:
        bounds, extent = _xml_core_extent(scan)
    return {
        "graph": graph, "features": feats, "bounds": bounds, "node_ids_real": True, "extent": extent,
        "raw_counts": {"nodes": scan["nodes"], "ways": scan["ways"],
                       "relations": scan["relations"], "highway_ways": scan["highway_ways"]},
    }


# ---- .osm.pbf through GDAL ----------------------------------------------------------------

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


def _select_features(feats: pd.DataFrame, tags: dict[str, Any]) -> np.ndarray:
    """Rows matching an osmnx-style tags dict (key: True | value | [values])."""
    keep = np.zeros(len(feats), dtype=bool)
    for key, val in tags.items():
        col = _col(feats, key)
        if val is True:
            keep |= col.notna().to_numpy()
        else:
            vals = [val] if isinstance(val, str) else list(val)
            keep |= col.isin(vals).fillna(False).to_numpy(dtype=bool)
    return keep


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


# ---- online --------------------------------------------------------------------------------


def _xml_core_extent(scan: dict[str, Any]) -> tuple[tuple[float, float, float, float], dict]:
    """Extent of an OSM XML file without ``<bounds>`` (Overpass output): see :func:`_core_extent`."""
    ids, lon, lat = scan["node_ids"], scan["node_lon"], scan["node_lat"]
    order = np.argsort(ids, kind="stable")
    ids, lon, lat = ids[order], lon[order], lat[order]
    refs, counts = scan["refs"], scan["way_nd_counts"]
    pos = np.clip(np.searchsorted(ids, refs), 0, max(len(ids) - 1, 0))
    ok = (ids[pos] == refs) if len(ids) else np.zeros(len(refs), dtype=bool)
    rx = np.where(ok, lon[pos] if len(ids) else np.nan, np.nan)
    ry = np.where(ok, lat[pos] if len(ids) else np.nan, np.nan)
    keep = (counts > 0) & ~np.isin(scan["way_ids"], scan["member_ways"])
    starts = np.r_[0, np.cumsum(counts)[:-1]]
    wb = np.full((len(counts), 4), np.nan)
    if len(refs):
        nz = counts > 0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a way of nodes without coordinates
            wb[nz, 0] = np.fmin.reduceat(rx, starts[nz])
            wb[nz, 1] = np.fmin.reduceat(ry, starts[nz])
            wb[nz, 2] = np.fmax.reduceat(rx, starts[nz])
            wb[nz, 3] = np.fmax.reduceat(ry, starts[nz])
    lone = ~np.isin(ids, refs) & ~np.isin(ids, scan["member_nodes"])
    return _core_extent(wb[keep], np.column_stack([lon[lone], lat[lone]]),
                        nodes_what="node outside every way", why="no <bounds> in the file")


def _core_extent(way_bounds: np.ndarray, lone_xy: np.ndarray, *, nodes_what: str,
                 why: str) -> tuple[tuple[float, float, float, float], dict]:
    """The extent of an extract whose box is unknown: the *ways' core*.

    A bbox extract (Overpass ``way(bbox); (._;>;);``, the openstreetmap.org export,
    ``osmium extract --strategy complete_ways``) holds every way that reaches its box, with
    all its nodes, so a long road brings nodes kilometres outside. The box therefore
    reaches every way: it holds at least the smallest box that every way's own bounding
    box reaches, ``[min(way max x), max(way min x)] × [min(way max y), max(way min y)]``,
    and since buildings and short ways sit at every edge of a real extract that box is the
    extract's box to a few metres. Relation members are left out (relations come whole),
    and the box is grown to hold the nodes outside every way (tagged points are selected
    by the box itself). A core with no area (a file of one road) falls back to the extent
    of every node. Degrees (lon/lat).

    Returns
    -------
    (bounds, extent)
        ``(west, south, east, north)`` and ``{"rule", "text", "ways", "all_nodes_bounds"}``.
    """
    wb = way_bounds[np.isfinite(way_bounds).all(axis=1)] if len(way_bounds) else np.empty((0, 4))
    pts = lone_xy[np.isfinite(lone_xy).all(axis=1)] if len(lone_xy) else np.empty((0, 2))
    whole = np.vstack([wb[:, :2], wb[:, 2:], pts]) if len(wb) or len(pts) else np.empty((0, 2))
    if len(whole) == 0:
        raise NetworkError("the OSM data has no node with coordinates: its extent is unknown. Fix: "
                           "re-export the area with its nodes")
    all_b = (*whole.min(axis=0), *whole.max(axis=0))
    if len(wb):
        core = [wb[:, 2].min(), wb[:, 3].min(), wb[:, 0].max(), wb[:, 1].max()]
        if len(pts):
            core = [min(core[0], pts[:, 0].min()), min(core[1], pts[:, 1].min()),
                    max(core[2], pts[:, 0].max()), max(core[3], pts[:, 1].max())]
        if core[0] < core[2] and core[1] < core[3]:
            return tuple(float(v) for v in core), {
                "rule": "ways_core",
                "text": (f"{why}: the study boundary is the ways' core, the smallest box that each of "
                         f"the {len(wb):,} ways reaches (relation members left out) holding every {nodes_what}"),
                "ways": int(len(wb)), "all_nodes_bounds": [float(v) for v in all_b]}
    return tuple(float(v) for v in all_b), {
        "rule": "all_nodes",
        "text": (f"{why} and the ways have no common core (one long way?): the study boundary is the "
                 "extent of every node"),
        "ways": int(len(wb)), "all_nodes_bounds": [float(v) for v in all_b]}


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
