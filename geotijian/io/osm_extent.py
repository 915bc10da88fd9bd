"""The extent of an OSM extract whose box is unknown (no ``<bounds>``, a .pbf): the ways' core.

Part of ``load_osm`` (:mod:`geotijian.io.osm`); the rule is explained in :func:`_core_extent`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import NetworkError


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
