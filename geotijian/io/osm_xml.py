"""Read an OSM XML file (``.osm``, ``.osm.bz2``): an integrity scan, then osmnx.

``_scan_xml`` streams the file once and refuses what osmnx would misread (not OSM, bad ids or
coordinates, ways referencing nodes the file lacks); ``_read_xml`` then reads the graph and the
features with osmnx. Part of ``load_osm`` (:mod:`geotijian.io.osm`): a reader returns a dict
with the unsimplified graph (EPSG:4326), the feature table (``osm_type``, ``osm_id``, tags,
geometry in EPSG:4326), the bounds, the extent rule and raw counts.
"""

from __future__ import annotations

import bz2
import math
import warnings
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import NetworkError
from .osm_extent import _xml_core_extent
from .osm_tags import _WAY_TAGS


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
