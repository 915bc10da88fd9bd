"""Snapping features onto the network: :class:`SnapResult` (access points: edge, position,
offset), :func:`snap_points` (points, and polygons from their outline) and
:func:`facility_access` (polygon facilities at their gates or outline points), with the
report of features far from the network."""

from __future__ import annotations

from dataclasses import dataclass, field

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from .. import settings
from ..errors import LayerError
from .geometry import _nearest_edges, _Outlines, _snap_onto
from .walk import WalkNetwork


@dataclass
class SnapResult:
    """Where points reach the network.

    One row per *access point*; a feature may have several (polygon facilities).

    Attributes
    ----------
    owner : ndarray of int
        Row position of the feature in the input layer.
    edge : ndarray of int
        Edge snapped to.
    position : ndarray of float
        Metres along the edge from its ``u`` node to the snap position.
    offset : ndarray of float
        Metres from the access point to the snap position (counted in every distance).
    access_x, access_y : ndarray of float
        The access point (the point itself, a gate, or the outline point).
    rule : ndarray of str
        How the access point was chosen: ``point``, ``boundary_nearest_edge`` (homes),
        ``entrance``, ``outline_adjacent_edge``, ``outline_nearest_edge`` (facilities).
    n_features : int
        Number of features in the input layer.
    ids : ndarray
        ID of each input feature (index of the input layer unless an ID column is given).
    component : ndarray of int
        Network component of each access point.
    report : DataFrame
        Problems: ``layer``, ``feature``, ``feature_id``, ``problem``, ``offset_m``,
        ``component`` (points farther than the maximum snap distance, points on a
        component without any facility, empty layers...). Reported points are kept.
    """

    owner: np.ndarray
    edge: np.ndarray
    position: np.ndarray
    offset: np.ndarray
    access_x: np.ndarray
    access_y: np.ndarray
    rule: np.ndarray
    n_features: int
    ids: np.ndarray
    component: np.ndarray
    layer: str = "points"
    report: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=REPORT_COLUMNS))

    def table(self) -> pd.DataFrame:
        """The access points as a DataFrame."""
        return pd.DataFrame({"feature": self.owner, "feature_id": self.ids[self.owner],
                             "edge": self.edge, "position_m": self.position,
                             "offset_m": self.offset, "access_x": self.access_x,
                             "access_y": self.access_y, "rule": self.rule,
                             "component": self.component})

    @classmethod
    def concat(cls, parts: list[SnapResult]) -> SnapResult:
        """One result from the results of consecutive row slices of one layer (features
        renumbered in slice order, reports joined)."""
        shift = np.cumsum([0] + [p.n_features for p in parts[:-1]])
        reps = [p.report.assign(feature=p.report["feature"].to_numpy() + k)
                for p, k in zip(parts, shift) if len(p.report)]
        report = pd.concat(reps, ignore_index=True) if reps else parts[0].report

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(p, name) for p in parts])

        return cls(np.concatenate([p.owner + k for p, k in zip(parts, shift)]), cat("edge"),
                   cat("position"), cat("offset"), cat("access_x"), cat("access_y"),
                   cat("rule"), int(sum(p.n_features for p in parts)), cat("ids"),
                   cat("component"), parts[0].layer, report)

    def subset(self, features: np.ndarray) -> SnapResult:
        """Access points of the given feature positions (renumbered 0..k-1 in that order)."""
        features = np.asarray(features, dtype=np.int64)
        newpos = np.full(self.n_features, -1)
        newpos[features] = np.arange(len(features))
        keep = newpos[self.owner] >= 0
        order = np.flatnonzero(keep)
        order = order[np.argsort(newpos[self.owner[order]], kind="stable")]
        return SnapResult(newpos[self.owner[order]], self.edge[order], self.position[order],
                          self.offset[order], self.access_x[order], self.access_y[order],
                          self.rule[order], len(features), self.ids[features],
                          self.component[order], self.layer, self.report)


REPORT_COLUMNS = ["layer", "feature", "feature_id", "problem", "offset_m", "component"]


def check_metric(gdf: gpd.GeoDataFrame, layer: str, network: WalkNetwork) -> gpd.GeoDataFrame:
    """Check a layer's CRS for measuring and bring it to the network CRS.

    Raises :class:`LayerError` when the CRS is missing or geographic (degrees cannot be
    measured in metres); a projected CRS other than the network's is transformed.
    """
    if not isinstance(gdf, gpd.GeoDataFrame):
        raise LayerError(layer, f"must be a GeoDataFrame, got {type(gdf).__name__}")
    if gdf.crs is None:
        raise LayerError(layer, "has no CRS", fix="set it with gdf.set_crs(...) (OSM is "
                         "EPSG:4326) and project with gdf.to_crs(settings.metric_crs)")
    if CRS.from_user_input(gdf.crs).is_geographic:
        raise LayerError(layer, f"is in a geographic CRS ({gdf.crs.to_string()}, degrees): "
                         "network distances need metres",
                         fix=f"project it first: gdf.to_crs({network.crs!r})")
    if not CRS.from_user_input(gdf.crs).equals(CRS.from_user_input(network.crs)):
        gdf = gdf.to_crs(network.crs)
    g = gdf.geometry.to_numpy()
    bad = ~shapely.is_geometry(g) | shapely.is_empty(g)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LayerError(layer, "has an empty or missing geometry", feature=i,
                         feature_id=gdf.index[i], count=int(bad.sum()),
                         fix="remove or repair the feature")
    return gdf


def _layer_geometry(gdf: gpd.GeoDataFrame, layer: str, network: WalkNetwork,
                    id_col: str | None):
    """A layer checked and brought to the network CRS, its IDs, geometries, geometry
    type ids and polygon mask."""
    gdf = check_metric(gdf, layer, network)
    ids = (gdf[id_col] if id_col else gdf.index).to_numpy()
    g = gdf.geometry.to_numpy()
    kinds = shapely.get_type_id(g)
    return gdf, ids, g, kinds, np.isin(kinds, [3, 6])


def snap_points(network: WalkNetwork, points_gdf: gpd.GeoDataFrame, *,
                max_distance: float | None = None, layer: str = "points",
                id_col: str | None = None) -> SnapResult:
    """Snap each feature onto its nearest network edge.

    Parameters
    ----------
    network : WalkNetwork
    points_gdf : GeoDataFrame
        Points, or polygons (compounds, buildings): a polygon reaches the network from its
        *boundary* (gates are rarely mapped): the nearest edge to the outline, at the
        outline point nearest to that edge (offset = outline-to-edge distance, 0 when an
        edge crosses the outline). Lines are treated as they are. Projected CRS required.
    max_distance : float, optional
        Metres; features snapped farther are reported (kept, offset counted). Default
        ``settings.max_snap_distance_m`` (200 m).
    layer : str
        Layer name used in errors and the report.
    id_col : str, optional
        ID column for the report (default: the index).

    Returns
    -------
    SnapResult
        One access point per feature: the nearest edge by ``shapely.distance`` (ties:
        the lowest edge number; as ``shapely.STRtree.query_nearest`` gives, up to ties
        within an ulp), and the access point and position of ``shapely.shortest_line`` /
        ``line_locate_point`` (see :func:`_snap_onto`).

    Raises
    ------
    LayerError
        No CRS / geographic CRS / empty geometry (the message names the feature).
    """
    maxd = settings.max_snap_distance_m if max_distance is None else float(max_distance)
    _, ids, g, kinds, _ = _layer_geometry(points_gdf, layer, network, id_col)
    return _snap_geoms(network, g, kinds, ids, layer, maxd)


def _snap_geoms(network: WalkNetwork, g: np.ndarray, kinds: np.ndarray, ids: np.ndarray,
                layer: str, maxd: float) -> SnapResult:
    """:func:`snap_points` of a checked geometry array (network CRS, no empty geometry;
    ``kinds``: its geometry type ids; ``maxd``: metres)."""
    n = len(g)
    poly = np.isin(kinds, [3, 6])
    target = _Outlines(g, kinds)  # (polygon boundaries made only where GEOS needs them)
    vt = target.vertex_table() if (kinds != 0).any() else None  # (once)
    edge, dist = _nearest_edges(network, target, vt)
    ax, ay, pos, off = _snap_onto(network, target, edge, vt)  # (points: their own coordinates)
    rule = np.array(["point", "boundary_nearest_edge"], dtype=object)[poly.view(np.int8)]
    comp = network.component[network.edge_u[edge]]  # (not edge_component: all edges)
    snap = SnapResult(np.arange(n), edge, pos, off, ax, ay, rule, n, ids, comp, layer)
    far = off > maxd
    if far.any():
        snap.report = _report(layer, np.flatnonzero(far), ids, "farther than the maximum snap "
                              f"distance ({maxd:g} m) from the walk network: kept, offset "
                              "counted; check its coordinates (GCJ-02?) or the network extent",
                              off[far], comp[far])
    return snap


def _report(layer, feats, ids, problem, offsets, comps) -> pd.DataFrame:
    return pd.DataFrame({"layer": layer, "feature": feats, "feature_id": ids[feats],
                         "problem": problem, "offset_m": offsets, "component": comps},
                        columns=REPORT_COLUMNS)


def facility_access(network: WalkNetwork, facilities: gpd.GeoDataFrame, *,
                    entrances: gpd.GeoDataFrame | None = None,
                    access_distance: float | None = None,
                    max_distance: float | None = None,
                    entrance_tolerance: float = 2.0,
                    layer: str = "facilities", id_col: str | None = None) -> SnapResult:
    """Access points of facilities: points as they are, polygons at gates or outline points.

    A polygon facility (school campus, park) reaches the network

    1. at its tagged gates: points of ``entrances`` (OSM nodes with ``entrance=*`` or
       ``barrier=gate``) within ``entrance_tolerance`` metres of its outline, each snapped
       to its nearest edge (rule ``entrance``); else
    2. at the outline point nearest to each *adjacent* edge, i.e. every edge within
       ``access_distance`` of the outline (an edge crossing the outline gives the crossing
       point, offset 0) (rule ``outline_adjacent_edge``); else
    3. at the outline point nearest to the nearest edge (rule ``outline_nearest_edge``).

    Several access points make one facility: the multi-source search takes the nearest.

    Parameters
    ----------
    access_distance : float, optional
        Metres; default ``settings.polygon_access_distance_m``.
    max_distance : float, optional
        Metres; access farther is reported. Default ``settings.max_snap_distance_m``.
    """
    acc = settings.polygon_access_distance_m if access_distance is None else float(access_distance)
    maxd = settings.max_snap_distance_m if max_distance is None else float(max_distance)
    gdf, ids, g, kinds, poly = _layer_geometry(facilities, layer, network, id_col)
    n = len(g)
    parts = []  # (owner, edge, pos, off, ax, ay, rule)
    simple = np.flatnonzero(~poly)
    if len(simple):
        s = _snap_geoms(network, g[simple], kinds[simple], ids[simple], layer, np.inf)
        parts.append((simple[s.owner], s.edge, s.position, s.offset, s.access_x, s.access_y,
                      np.full(len(simple), "point", dtype=object)))
    done = np.zeros(n, dtype=bool)
    done[simple] = True
    P = np.flatnonzero(poly)
    if len(P):
        outline = shapely.boundary(g[P])
        if entrances is not None and len(entrances):
            ent = check_metric(entrances, "entrances", network)
            eg = ent.geometry.to_numpy()
            eg = eg[shapely.get_type_id(eg) == 0]
            if len(eg):
                ptree = shapely.STRtree(outline)
                ei, pi = ptree.query(eg, predicate="dwithin", distance=entrance_tolerance)
                if len(ei):
                    e_edge, _ = _nearest_edges(network, eg[ei])
                    ax, ay, pos, off = _snap_onto(network, eg[ei], e_edge)
                    parts.append((P[pi], e_edge, pos, off, ax, ay,
                                  np.full(len(ei), "entrance", dtype=object)))
                    done[P[pi]] = True
        rest = np.flatnonzero(~done[P])
        if len(rest):
            oi, ei = network._grid.pairs(shapely.bounds(outline[rest]) + [-acc, -acc, acc, acc])
            near = shapely.dwithin(outline[rest][oi], network.edge_geometry[ei], acc)
            oi, ei = oi[near], ei[near]
            if len(oi):
                ax, ay, pos, off = _snap_onto(network, outline[rest][oi], ei)
                parts.append((P[rest][oi], ei, pos, off, ax, ay,
                              np.full(len(oi), "outline_adjacent_edge", dtype=object)))
                done[P[rest][oi]] = True
        rest = np.flatnonzero(~done[P])
        if len(rest):
            e, _ = _nearest_edges(network, outline[rest])
            ax, ay, pos, off = _snap_onto(network, outline[rest], e)
            parts.append((P[rest], e, pos, off, ax, ay,
                          np.full(len(rest), "outline_nearest_edge", dtype=object)))
    if parts:
        cols = [np.concatenate([p[i] for p in parts]) for i in range(7)]
        order = np.lexsort((cols[2], cols[1], cols[0]))
        owner, edge, pos, off, ax, ay, rule = (c[order] for c in cols)
    else:
        owner = edge = np.zeros(0, dtype=np.int64)
        pos = off = ax = ay = np.zeros(0)
        rule = np.zeros(0, dtype=object)
    comp = network.component[network.edge_u[edge]] if len(edge) else np.zeros(0, dtype=np.int64)
    snap = SnapResult(owner.astype(np.int64), edge.astype(np.int64), pos, off, ax, ay, rule,
                      n, ids, comp, layer)
    if len(owner):
        best = np.full(n, np.inf)
        np.minimum.at(best, owner, off)
        far = np.flatnonzero(best > maxd)
        if len(far):
            far_comp = comp[np.searchsorted(owner, far)]
            snap.report = _report(layer, far, ids, f"farther than the maximum snap distance "
                                  f"({maxd:g} m) from the walk network: kept, offset counted",
                                  best[far], far_comp)
    return snap


def feature_rules(snap: SnapResult) -> np.ndarray:
    """The access rule of each feature (``""`` for a feature without access point)."""
    out = np.full(snap.n_features, "", dtype=object)
    out[snap.owner] = snap.rule
    return out
