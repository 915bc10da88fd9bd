"""Is a layer in the coordinate system it was declared in? A trial shift against the roads.

POIs, compounds and buildings copied from a Chinese web map are GCJ-02 (≈ 480 m ESE of
WGS84 in Jiading); a layer declared ``coords = "gcj02"`` that was WGS84 already is moved
480 m WNW by the conversion. Either way nothing fails: coverage quietly drops (49.6 % →
7.9 % in one trial), compounds are "attached to the nearest block". Roads are the
reference: POIs sit beside streets, compound and building outlines run along them.

``check_alignment(layer, roads, declared=...)`` measures the median distance from the
layer to the roads (points: the points; polygons: vertices of their outlines; lines: their
vertices) as it is, after undoing a GCJ-02 offset (the layer is GCJ-02 read as WGS84), and
after applying one (the layer was WGS84 but converted as if GCJ-02, or the *roads* are
GCJ-02), and for six *decoy* shifts of the same length in other directions: in a dense
street grid any shift of a few hundred metres lands near some street, so a trial only
counts when it beats every decoy and the layer as it is by a clear margin. It also gives
the share of the layer's sample points farther than ``near_m`` from every road, before and
after the best trial shift.
"""

from __future__ import annotations

import warnings
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import CRS

from .. import settings
from ..errors import CoordinateWarning
from .coords import gcj02_to_wgs84, wgs84_to_bd09, wgs84_to_gcj02

__all__ = ["check_alignment", "RoadDistance"]

_MAX_POINTS = 4000  # sample points per layer (deterministic: every k-th)
_VERTEX_SPACING_M = 20.0  # polygon/line outlines are densified to this before sampling


def _sample_xy(gdf: gpd.GeoDataFrame, metric: CRS) -> np.ndarray:
    """Points (metric CRS) standing for a layer: points, outline vertices, line vertices."""
    g = np.asarray(gdf.to_crs(metric).geometry.values, dtype=object)
    g = g[~(shapely.is_missing(g) | shapely.is_empty(g))]
    if len(g) > _MAX_POINTS:  # features first: every k-th feature
        g = g[:: int(np.ceil(len(g) / _MAX_POINTS))]
    tid = shapely.get_type_id(g)
    poly = np.isin(tid, (3, 6))
    parts = [shapely.get_coordinates(g[np.isin(tid, (0, 4))])]
    lines = np.concatenate([shapely.boundary(g[poly]), g[np.isin(tid, (1, 2, 5))]])
    if len(lines):
        parts.append(shapely.get_coordinates(shapely.segmentize(lines, _VERTEX_SPACING_M)))
    xy = np.vstack(parts) if parts else np.empty((0, 2))
    if len(xy) > _MAX_POINTS:
        xy = xy[:: int(np.ceil(len(xy) / _MAX_POINTS))]
    return xy


def _score(d: np.ndarray, near_m: float) -> float:
    """Mean distance (m) capped at 2 × ``near_m``: a point in a field far from every road
    counts as far, not as a kilometre (the tail of a shifted layer, not its outliers)."""
    return float(np.mean(np.minimum(d, 2.0 * near_m)))


def check_alignment(
    layer: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    *,
    declared: str = "wgs84",
    name: str = "layer",
    warn: bool = True,
    margin: float = 0.8,
    near_m: float = 50.0,
) -> dict[str, Any]:
    """Does ``layer`` fit the roads better after a GCJ-02 trial shift, one way or the other?

    Parameters
    ----------
    layer : GeoDataFrame
        Points, polygons or lines in any CRS, as read (after any declared conversion).
    roads : GeoDataFrame
        Road centre lines (the reference, WGS84/CGCS2000 like OSM), any CRS.
    declared : {"wgs84", "cgcs2000", "gcj02", "bd09"}
        What the layer was declared in (``coords =``); WGS84 and CGCS2000 are one.
    name : str
        Layer name for the warning (e.g. ``"layer 'poi_amap' (pois.csv)"``).
    warn : bool
        Issue a :class:`~geotijian.errors.CoordinateWarning` naming the fix.
    margin : float
        A trial must bring the score (mean distance to the roads capped at 2 × ``near_m``)
        below ``margin`` × the best alternative (the layer as it is, the decoys and the
        other trial). The capped mean tells a shift apart in a dense street grid, where the
        median of a shifted layer is still small.
    near_m : float
        Metres: sample points farther than this from every road are "far".

    Returns
    -------
    dict
        ``median_m`` (as read), ``median_if_gcj02_m`` (a GCJ-02 offset undone),
        ``median_if_shifted_m`` (a GCJ-02 offset applied: the layer as it was before a
        declared conversion, or as it would sit on GCJ-02 roads), ``median_decoys_m``
        (best decoy), the same as ``score_*`` (capped means, what decides),
        ``far_share`` and ``far_share_best_trial`` (share of sample points
        farther than ``near_m``), ``points`` (sample size) and ``verdict``:
        ``"aligned"``, ``"looks_gcj02"`` (read as WGS84 but GCJ-02), ``"looks_wgs84"``
        (declared GCJ-02/BD-09 but WGS84 already) or ``"roads_look_gcj02"`` (a WGS84 layer
        fits GCJ-shifted roads: the roads, or this layer's conversion, are wrong), or
        ``"too_few"`` (under 10 sample points).
    """
    metric = CRS.from_user_input(settings.metric_crs)
    return _check_alignment(layer, RoadDistance(roads, metric), declared=declared, name=name, warn=warn,
                            margin=margin, near_m=near_m, stacklevel=3)


#: Search radii (m) of :class:`RoadDistance`, tried in turn: most sample points lie within
#: 20 m of a street (a small box, few grid cells), trial shifts land farther.
_RADII_M = (20.0, 60.0, 200.0, 800.0, 3200.0)


class RoadDistance:
    """Distance (m) from points to the nearest road centre line: the distances of
    ``shapely.STRtree(lines).query_nearest(points, return_distance=True)``, to the last bit.

    Made once per roads layer (a study checks several layers against the same roads):
    the lines' vertex table on a uniform grid, searched by the compiled kernel of the
    walk network's snapping (:func:`geotijian._kernels.nearest_to_points`: GEOS's
    point-segment arithmetic, operation by operation) within 20, 60, 200, 800, then
    3,200 m of each point; a point farther from every road is measured by the STRtree.
    300,000 road lines × 4,000 points × 9 trial shifts × 6 layers: 0.4 s instead of 2 s.
    """

    def __init__(self, roads: gpd.GeoDataFrame, metric: CRS):
        from .._kernels.edge_grid import _EdgeGrid

        self.lines = np.asarray(roads.to_crs(metric).geometry.values, dtype=object)
        single = (shapely.get_type_id(self.lines) == 1).all()
        chains = self.lines if single else shapely.get_parts(self.lines)  # a multi-line's parts apart
        chains = chains[shapely.get_num_coordinates(chains) >= 2]
        self._tree: shapely.STRtree | None = None
        self.grid = None
        if len(chains):
            c, gi = shapely.get_coordinates(chains, return_index=True)
            cnt = np.bincount(gi, minlength=len(chains))
            self.vertices = (np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1]), np.cumsum(cnt) - cnt, cnt)
            self.grid = _EdgeGrid.of_lines(chains, self.vertices)

    def __call__(self, xy: np.ndarray) -> np.ndarray:
        """Distances (m) of the points ``xy`` (metric CRS, shape (n, 2))."""
        from .. import _kernels

        d = np.full(len(xy), np.nan)
        todo = np.arange(len(xy))
        g = self.grid
        for rad in (_RADII_M if g is not None else ()):
            e, dist = _kernels.nearest_to_points(g.indptr, g.edges, g.entry_bounds, g.x0, g.y0, g.size, g.nx, g.ny,
                                                 xy[todo, 0], xy[todo, 1], rad, *self.vertices)
            ok = e >= 0
            d[todo[ok]] = dist[ok]
            todo = todo[~ok]
            if len(todo) == 0:
                return d
        if self._tree is None:
            self._tree = shapely.STRtree(self.lines)
        _, d[todo] = self._tree.query_nearest(shapely.points(xy[todo]), return_distance=True, all_matches=False)
        return d


def _check_alignment(layer: gpd.GeoDataFrame, roads: RoadDistance, *, declared: str = "wgs84",
                     name: str = "layer", warn: bool = True, margin: float = 0.8,
                     near_m: float = 50.0, stacklevel: int = 2) -> dict[str, Any]:
    """:func:`check_alignment` against the roads' :class:`RoadDistance` (a warning points
    ``stacklevel`` frames up)."""
    from .coords import _norm

    system = _norm(declared)
    metric = CRS.from_user_input(settings.metric_crs)
    geo = CRS.from_user_input(settings.geographic_crs)
    xy = _sample_xy(layer, metric)
    out: dict[str, Any] = {"points": int(len(xy)), "declared": system, "verdict": "too_few", "near_m": near_m}
    if len(xy) < 10:
        return out
    to_geo = gpd.GeoSeries(shapely.points(xy), crs=metric).to_crs(geo)
    ll = shapely.get_coordinates(np.asarray(to_geo.values))

    def metric_xy(lon: np.ndarray, lat: np.ndarray) -> np.ndarray:
        s = gpd.GeoSeries(gpd.points_from_xy(lon, lat), crs=geo).to_crs(metric)
        return shapely.get_coordinates(np.asarray(s.values))

    dists = roads
    undo = metric_xy(*gcj02_to_wgs84(ll[:, 0], ll[:, 1])) - xy       # the layer is GCJ-02
    fwd = wgs84_to_bd09 if system == "bd09" else wgs84_to_gcj02
    apply = metric_xy(*fwd(ll[:, 0], ll[:, 1])) - xy                 # before the conversion
    d_base = dists(xy)
    d_undo = dists(xy + undo)
    d_apply = dists(xy + apply)
    decoys, decoy_scores = [], []
    for k in (1, 2, 3, 5, 6, 7):  # the undo shift turned by 45° steps (0° and 180° are the trials)
        c, s_ = np.cos(k * np.pi / 4), np.sin(k * np.pi / 4)
        rot = np.column_stack([undo[:, 0] * c - undo[:, 1] * s_, undo[:, 0] * s_ + undo[:, 1] * c])
        d = dists(xy + rot)
        decoys.append(float(np.median(d)))
        decoy_scores.append(_score(d, near_m))
    base, m_undo, m_apply = float(np.median(d_base)), float(np.median(d_undo)), float(np.median(d_apply))
    s_base, s_undo, s_apply = _score(d_base, near_m), _score(d_undo, near_m), _score(d_apply, near_m)
    best_decoy = min(decoys)
    verdict = "aligned"
    if s_undo < margin * min(s_base, min(decoy_scores), s_apply) and system == "wgs84":
        verdict = "looks_gcj02"
    elif s_apply < margin * min(s_base, min(decoy_scores), s_undo):
        verdict = "looks_wgs84" if system != "wgs84" else "roads_look_gcj02"
    best = d_undo if verdict == "looks_gcj02" else d_apply if verdict != "aligned" else d_base
    out.update(median_m=base, median_if_gcj02_m=m_undo, median_if_shifted_m=m_apply,
               median_decoys_m=best_decoy, score_m=s_base, score_if_gcj02_m=s_undo, score_if_shifted_m=s_apply,
               score_decoys_m=min(decoy_scores), far_share=float((d_base > near_m).mean()),
               far_share_best_trial=float((best > near_m).mean()), verdict=verdict)
    if warn and verdict != "aligned":
        warnings.warn(alignment_message(out, name), CoordinateWarning, stacklevel=stacklevel)
    return out


def alignment_message(res: dict[str, Any], name: str, key: str | None = None, *, cli: bool = False) -> str:
    """The warning for a :func:`check_alignment` result: ``key`` names the ``[layers.<key>]``
    of a study; ``cli`` says the fix as the ``--coords`` option of ``geotijian coverage``."""
    where = f"[layers.{key}]" if key else "the layer's entry"
    cap = f"mean distance, each capped at {2 * res.get('near_m', 50):g} m"
    far = (f"{res['far_share']:.0%} of its points lie over {res.get('near_m', 50):g} m from every road, "
           f"{res['far_share_best_trial']:.0%} after the trial shift")
    if res["verdict"] == "looks_gcj02":
        return (f"{name}: it lies {res['score_m']:,.0f} m from the roads ({cap}) but {res['score_if_gcj02_m']:,.0f} m "
                f"after undoing a GCJ-02 offset ({far}): it looks copied from a Chinese web map (GCJ-02) but is read "
                "as WGS84. Fix: " + ("pass --coords gcj02" if cli else f"add coords = \"gcj02\" to {where}"))
    if res["verdict"] == "looks_wgs84":
        return (f"{name}: it is declared coords = \"{res['declared']}\" but lies {res['score_m']:,.0f} m from the roads "
                f"({cap}) after that conversion and {res['score_if_shifted_m']:,.0f} m without it ({far}): it "
                "looks WGS84 already. Fix: " + (f"drop --coords {res['declared']}" if cli else
                                                f"remove coords = \"{res['declared']}\" from {where}"))
    if res["verdict"] == "roads_look_gcj02":
        return (f"{name}: it lies {res['score_m']:,.0f} m from the roads ({cap}) but {res['score_if_shifted_m']:,.0f} m "
                f"when moved by a GCJ-02 offset ({far}): the roads look GCJ-02 (copied from a Chinese web map) while "
                "this layer is WGS84, or this layer was converted from GCJ-02 once too often. Fix: declare "
                "coords = \"gcj02\" on the roads layer if it comes from a Chinese web map")
    return f"{name}: aligned with the roads"
