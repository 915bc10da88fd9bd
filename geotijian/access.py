"""Walking distance from homes to facilities, life-circle coverage, gaps and service areas.

Every distance is a network distance in metres on a :class:`~geotijian.network.WalkNetwork`,
counting the snap offsets of both ends and the partial edges (see
:mod:`geotijian.network`). Each facility type costs ONE multi-source shortest-path pass
(``scipy.sparse.csgraph.dijkstra(indices=<facilities of the type>, min_only=True,
limit=...)``) over the network with one virtual node per facility, never one search per
facility; the search runs on the network's core (dead-end edges left out and completed
afterwards, :attr:`~geotijian.network.WalkNetwork.pendant`); homes read their distance
from the two end nodes of their snapped edge.

Homes are residential compounds (polygons: they reach the network from their *boundary*,
at the outline point nearest to the nearest edge, since gates are rarely mapped), buildings
(polygons, same rule) or population points (snapped). Facilities are points or polygons
(campuses, parks: tagged gates, else one access point per adjacent edge; see
:func:`geotijian.network.facility_access`).
"""

from __future__ import annotations

import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix, csr_matrix

from . import settings
from .access_areas import (
    ForkedUnions,
    PendingUnions,
    _reached_segments,
    _street_space,
    _type_street_space,
    fork_unions,
)
from .access_tables import _facilities_used, _per_area, _per_home
from .errors import ConfigError, GeotijianWarning, LayerError
from .facilities import facility_catalogue
from .model import GAP_COLUMNS
from .network import (
    REPORT_COLUMNS,
    SnapResult,
    WalkNetwork,
    check_metric,
    distance_graph,
    facility_access,
    pair_distances,
    snap_points,
)
from .network.snap import _snap_geoms

__all__ = [
    "CoverageResult",
    "ZERO_DISTANCE_M",
    "coverage_gaps",
    "facility_access_points",
    "facility_distance_matrix",
    "nearest_facility_distance",
    "report_summary",
    "service_areas",
    "service_coverage",
    "start_service_areas",
]

ZERO_DISTANCE_M = 1e-6
"""Distance stored for a home–facility pair at network distance 0 in
:func:`facility_distance_matrix` (a sparse matrix cannot tell a stored 0 from "no pair")."""

_HOME_ID_CANDIDATES = ("home_id", "compound_id", "building_id", "pop_id")
_FAC_ID_CANDIDATES = ("facility_id", "poi_id", "park_id", "osmid", "id")


class AccessWarning(GeotijianWarning):
    """Homes or facilities were reported (far from the network, unconnected, missing)."""


# ---------------------------------------------------------------------------- inputs
def _ids(gdf: pd.DataFrame, id_col: str | None, candidates: tuple[str, ...], layer: str) -> np.ndarray:
    if id_col is None:
        id_col = next((c for c in candidates if c in gdf.columns), None)
    if id_col is None:
        ids = gdf.index.to_numpy()
    else:
        if id_col not in gdf.columns:
            raise LayerError(layer, f"ID column {id_col!r} not found",
                             fix=f"name an existing column (have {list(gdf.columns)[:10]})")
        ids = gdf[id_col].to_numpy()
    dup = pd.Index(ids).duplicated()
    if dup.any() and layer == "homes":
        i = int(np.flatnonzero(dup)[0])
        raise LayerError(layer, f"home ID {ids[i]!r} is not unique", feature=i, feature_id=ids[i],
                         count=int(dup.sum()), fix="give every home a unique ID (home_id column)")
    return ids


def _home_kind(homes: gpd.GeoDataFrame, home_kind: str | None) -> np.ndarray:
    if "home_kind" in homes.columns and home_kind is None:
        return homes["home_kind"].astype(str).to_numpy()
    if home_kind is not None:
        return np.full(len(homes), home_kind, dtype=object)
    t = shapely.get_type_id(homes.geometry.to_numpy())
    kind = np.where(np.isin(t, [3, 6]), "compound", "point").astype(object)
    if "building_id" in homes.columns:
        kind[np.isin(t, [3, 6])] = "building"
    return kind


def _facility_layer(facilities: gpd.GeoDataFrame | Mapping[str, gpd.GeoDataFrame],
                    type_col: str, types: list[str] | None) -> tuple[gpd.GeoDataFrame, list[str], pd.DataFrame]:
    """One facilities frame with a ``_type`` column, the type order, and a report."""
    rep = []
    if isinstance(facilities, Mapping):
        frames = []
        crs = None
        for code, gdf in facilities.items():
            if gdf is None or len(gdf) == 0:
                continue
            if not isinstance(gdf, gpd.GeoDataFrame):
                raise LayerError(f"facilities[{code!r}]", "must be a GeoDataFrame")
            crs = crs or gdf.crs
            f = gpd.GeoDataFrame({"_type": code,
                                  "_fid": _ids(gdf, None, _FAC_ID_CANDIDATES, f"facilities[{code!r}]")},
                                 geometry=gdf.geometry.to_numpy(), crs=gdf.crs)
            if crs is not None and gdf.crs is not None and not gdf.crs.equals(crs):
                f = f.to_crs(crs)
            frames.append(f)
        order = list(facilities.keys()) if types is None else list(types)
        if frames:
            fac = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=crs)
        else:
            fac = gpd.GeoDataFrame({"_type": [], "_fid": []}, geometry=[], crs=crs or settings.metric_crs)
    elif isinstance(facilities, gpd.GeoDataFrame):
        if type_col not in facilities.columns:
            raise LayerError("facilities", f"has no {type_col!r} column with the facility type code",
                             fix="classify OSM POIs with classify_pois(), or pass a dict "
                                 "{type_code: GeoDataFrame}")
        typ = facilities[type_col]
        none = typ.isna().to_numpy()
        if none.any():
            rep.append({"layer": "facilities", "feature": -1, "feature_id": None,
                        "problem": f"{int(none.sum())} features without a facility type "
                                   "(unmatched POIs) left out of the distance computation",
                        "offset_m": np.nan, "component": -1})
        sub = facilities.loc[~none]
        fac = gpd.GeoDataFrame({"_type": sub[type_col].astype(str).to_numpy(),
                                "_fid": _ids(sub, None, _FAC_ID_CANDIDATES, "facilities")},
                               geometry=sub.geometry.to_numpy(), crs=facilities.crs)
        order = sorted(fac["_type"].unique()) if types is None else list(types)
    else:
        raise LayerError("facilities", f"must be a GeoDataFrame with a {type_col!r} column or a "
                         f"dict {{type: GeoDataFrame}}, got {type(facilities).__name__}")
    fac = fac.reset_index(drop=True)
    return fac, order, pd.DataFrame(rep, columns=REPORT_COLUMNS)


def report_summary(report: pd.DataFrame, width: int | None = None) -> list[str]:
    """One line per (layer, problem) of a coverage report: ``"layer: count × problem"``,
    sorted; ``width`` cuts each problem text to that many characters."""
    counts = report.groupby(["layer", "problem"], sort=True).size()
    return [f"{layer}: {n} × {problem[:width]}" for (layer, problem), n in counts.items()]


@dataclass
class _Access:
    """Everything one coverage computation produced (internal)."""

    home_ids: np.ndarray
    home_snap: SnapResult
    fac: gpd.GeoDataFrame
    fac_snap: SnapResult
    types: list[str]
    dist: np.ndarray  # homes × types, metres
    report: pd.DataFrame
    graph: Any


# share of the homes snapped by the calling thread while the other places the facility
# access points and then snaps the rest (on the Jiading-scale benchmark, with the compiled
# snapping, both threads end together near 0.72)
_MAIN_THREAD_SHARE = 0.72
_PARALLEL_MIN_HOMES = 2000


def _limits(types: list[str], max_distance: float | Mapping[str, float] | None) -> dict[str, float]:
    if max_distance is None:
        return {t: np.inf for t in types}
    if isinstance(max_distance, Mapping):
        return {t: float(max_distance.get(t, np.inf)) for t in types}
    return {t: float(max_distance) for t in types}


def _compute(network: WalkNetwork, homes: gpd.GeoDataFrame, facilities: Any, *,
             types: list[str] | None, max_distance: Any, entrances: gpd.GeoDataFrame | None,
             id_col: str | None, type_col: str, access_distance: float | None,
             progress: bool) -> _Access:
    if len(homes) == 0:
        raise LayerError("homes", "is empty: nothing to measure", fix="check the homes layer")
    maxd = settings.max_snap_distance_m

    def home_layer() -> tuple:
        checked = check_metric(homes, "homes", network)
        g = checked.geometry.to_numpy()
        return _ids(checked, id_col, _HOME_ID_CANDIDATES, "homes"), g, shapely.get_type_id(g)

    def sources() -> tuple:
        fac, order, frep = _facility_layer(facilities, type_col, types)
        if len(fac):
            fac = check_metric(fac, "facilities", network)
        fs = facility_access(network, fac, entrances=entrances, access_distance=access_distance,
                             layer="facilities", id_col="_fid")
        return fac, order, frep, fs, distance_graph(network, fs)

    if settings.parallel and len(homes) >= _PARALLEL_MIN_HOMES:
        # every home snaps independently of the others and of the facilities: a second
        # thread prepares the facilities (checks, access points, search graph: from the
        # start, it needs nothing of the homes) and then snaps the last part of the
        # homes (GEOS and the compiled kernels release the GIL); the lazy indexes they
        # share come first (build_network usually has the edge index ready). A bad homes
        # layer is still reported first.
        network._grid, network._edge_xy  # noqa: B018
        with ThreadPoolExecutor(max_workers=1) as pool:
            job = pool.submit(sources)
            home_ids, g, kinds = home_layer()
            k = int(len(g) * _MAIN_THREAD_SHARE)
            tail = pool.submit(_snap_geoms, network, g[k:], kinds[k:], home_ids[k:], "homes", maxd)
            head = _snap_geoms(network, g[:k], kinds[:k], home_ids[:k], "homes", maxd)
            fac, order, frep, fsnap, graph = job.result()
            hsnap = SnapResult.concat([head, tail.result()])
    else:
        home_ids, g, kinds = home_layer()
        fac, order, frep, fsnap, graph = sources()
        hsnap = _snap_geoms(network, g, kinds, home_ids, "homes", maxd)
    hsnap.ids = home_ids
    if len(hsnap.report):
        hsnap.report["feature_id"] = home_ids[hsnap.report["feature"].to_numpy()]
    ftype = fac["_type"].to_numpy()
    lim = _limits(order, max_distance)
    dist = np.full((len(homes), len(order)), np.inf)
    reports = [hsnap.report, fsnap.report, frep]
    it = order
    if progress:
        from .runlog import progress_bar
        it = progress_bar(order, desc="facility types", unit="type")
    for j, code in enumerate(it):  # one multi-source pass per type
        mask = ftype == code
        if not mask.any():
            reports.append(pd.DataFrame([{
                "layer": "facilities", "feature": -1, "feature_id": None,
                "problem": f"no facility of type {code!r}: every home is uncovered (distance inf)",
                "offset_m": np.nan, "component": -1}], columns=REPORT_COLUMNS))
            continue
        dist[:, j] = graph.to_targets(hsnap, np.flatnonzero(mask), limit=lim[code])
    # a type whose every facility lies beyond the snap distance: its coverage is unreliable
    # as a whole (coordinates in another system, a layer of another area)
    if len(fsnap.edge) and len(fac):
        best = np.full(len(fac), np.inf)
        np.minimum.at(best, fsnap.owner, fsnap.offset)
        rows = []
        for code in order:
            m = ftype == code
            if m.any() and (best[m] > maxd).all():
                rows.append({"layer": "facilities", "feature": -1, "feature_id": None,
                             "problem": f"every facility of type {code!r} ({int(m.sum())}) lies farther than "
                                        f"the maximum snap distance ({maxd:g} m) from the walk network "
                                        f"(nearest {np.min(best[m]):,.0f} m): its coverage rests on long "
                                        "snaps; check the layer's coordinates (GCJ-02?) and CRS",
                             "offset_m": float(np.min(best[m])), "component": -1})
        if rows:
            reports.append(pd.DataFrame(rows, columns=REPORT_COLUMNS))
    # homes on a component that holds no facility at all
    # (when there is no facility at all, the per-type rows above already say so)
    lone = ~np.isin(hsnap.component, np.unique(fsnap.component)) if len(fsnap.edge) else \
        np.zeros(len(hsnap.component), dtype=bool)
    if lone.any():
        f = hsnap.owner[lone]
        reports.append(pd.DataFrame({
            "layer": "homes", "feature": f, "feature_id": home_ids[f],
            "problem": "on a network component without any facility (island of the walk "
                       "network): unreachable, distance inf",
            "offset_m": hsnap.offset[lone], "component": hsnap.component[lone]},
            columns=REPORT_COLUMNS))
    report = pd.concat([r for r in reports if len(r)], ignore_index=True) \
        if any(len(r) for r in reports) else pd.DataFrame(columns=REPORT_COLUMNS)
    if len(report):
        warnings.warn("coverage inputs reported: " + "; ".join(report_summary(report, width=70)),
                      AccessWarning, stacklevel=3)
    return _Access(home_ids, hsnap, fac, fsnap, order, dist, report, graph)


# -------------------------------------------------------------------------- distances
def nearest_facility_distance(
    network: WalkNetwork,
    homes: gpd.GeoDataFrame,
    facilities_by_type: gpd.GeoDataFrame | Mapping[str, gpd.GeoDataFrame],
    *,
    max_distance: float | Mapping[str, float] | None = None,
    types: list[str] | None = None,
    entrances: gpd.GeoDataFrame | None = None,
    id_col: str | None = None,
    type_col: str = "type",
    access_distance: float | None = None,
    progress: bool = False,
) -> pd.DataFrame:
    """Network distance (m) from every home to the nearest facility of each type.

    Parameters
    ----------
    network : WalkNetwork
    homes : GeoDataFrame
        Compounds or buildings (polygons; reach the network from their boundary: the
        nearest edge to the outline) or points; projected CRS (a geographic CRS is an error).
    facilities_by_type : dict or GeoDataFrame
        ``{type_code: GeoDataFrame}``, or one GeoDataFrame with a ``type_col`` column (e.g.
        from :func:`geotijian.facilities.classify_pois`; rows with no type are left out
        and reported). Points or polygons.
    max_distance : float or dict, optional
        Search limit in metres (one for all types, or per type): farther homes get ``inf``.
        Default: no limit (exact distances everywhere).
    types : list of str, optional
        Column order / types to compute (a type without facilities gives a column of
        ``inf`` and a report row).
    entrances : GeoDataFrame, optional
        OSM gates (``entrance=*``, ``barrier=gate``) for polygon facilities.
    id_col : str, optional
        Home ID column (default ``home_id``, ``compound_id``, ``building_id``, ``pop_id`` or
        the index).
    access_distance : float, optional
        See :func:`geotijian.network.facility_access`.
    progress : bool
        Show a tqdm progress bar over the types.

    Returns
    -------
    DataFrame
        Index ``home_id`` (sorted as the input), one float column per type code, metres
        (``inf`` where no facility is reachable within ``max_distance``).
        ``attrs["report"]`` holds the reported homes/facilities (far from the network,
        on a component without facility, empty types) with columns ``layer``,
        ``feature``, ``feature_id``, ``problem``, ``offset_m``, ``component``.

    Notes
    -----
    With ``settings.parallel`` (default) the facility access points and part of
    the homes are snapped in a second thread; the result is the same either way. Each
    type is one Dijkstra pass on the network's core (dead ends completed afterwards, see
    :func:`geotijian.network.distance_graph`).
    """
    acc = _compute(network, homes, facilities_by_type, types=types, max_distance=max_distance,
                   entrances=entrances, id_col=id_col, type_col=type_col,
                   access_distance=access_distance, progress=progress)
    out = pd.DataFrame(acc.dist, index=pd.Index(acc.home_ids, name="home_id"), columns=acc.types)
    out.columns.name = "facility_type"
    out.attrs["report"] = acc.report
    return out


def facility_distance_matrix(
    network: WalkNetwork,
    homes: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame,
    *,
    max_distance: float,
    entrances: gpd.GeoDataFrame | None = None,
    access_distance: float | None = None,
    chunk_cells: int = 5_000_000,
) -> csr_matrix:
    """Sparse homes × facilities matrix of network distances within ``max_distance``.

    For capacity-aware accessibility (2SFCA). Rows follow ``homes`` order, columns follow
    ``facilities`` order (all rows, whatever their type).

    Parameters
    ----------
    max_distance : float
        Metres; pairs farther apart are not stored.
    chunk_cells : int
        Memory bound: the first ``chunk_cells // n_nodes`` facilities are searched
        together, then chunks whose (facility, node within reach) results number about
        ``chunk_cells`` (from the reach per facility so far).

    Notes
    -----
    One Dijkstra per facility, bounded by ``max_distance`` and sparse
    (:meth:`geotijian.network.DistanceGraph.within`): its cost is that of the nodes within
    reach, not of the whole network per facility (scale 18.4, 2 types, ~1,000 facilities:
    ~5.6 s of dense scipy rows before). Same values as the dense search (tested).

    Returns
    -------
    scipy.sparse.csr_matrix
        Stored value = network distance in metres; a pair at distance 0 is stored as
        :data:`ZERO_DISTANCE_M` (1e-6 m) so that *every stored entry is a pair within
        reach* and no reachable pair is lost as an implicit zero. Subtract nothing: the
        error is 1 µm.
    """
    if not np.isfinite(max_distance) or max_distance <= 0:
        raise ConfigError("max_distance", f"must be a positive finite distance in metres, got {max_distance!r}")
    homes = check_metric(homes, "homes", network)
    hsnap = snap_points(network, homes, layer="homes")
    fac = check_metric(facilities, "facilities", network)
    fsnap = facility_access(network, fac, entrances=entrances, access_distance=access_distance)
    graph = distance_graph(network, fsnap)
    F, H = len(fac), len(homes)
    step = max(1, int(chunk_cells // max(graph.shape[0], 1)))
    rows, cols, vals = [], [], []
    a = 0
    while a < F:  # chunks of facilities: at most ~chunk_cells (facility, node) results at once
        idx = np.arange(a, min(F, a + step))
        # one bounded search per facility, sparse: the work of the nodes within reach
        fi, node, dn = graph.within(idx, limit=max_distance)
        step = max(1, int(chunk_cells // max(len(node) / len(idx), 1.0)))
        a += len(idx)
        fi, hi, d = pair_distances(network, fi, node, dn, hsnap, fsnap.subset(idx))
        ok = d <= max_distance
        rows.append(hi[ok])
        cols.append(idx[fi[ok]])
        vals.append(np.maximum(d[ok], ZERO_DISTANCE_M))
    r = np.concatenate(rows) if rows else np.zeros(0, int)
    c = np.concatenate(cols) if cols else np.zeros(0, int)
    v = np.concatenate(vals) if vals else np.zeros(0)
    return coo_matrix((v, (r, c)), shape=(H, F)).tocsr()


def facility_access_points(network: WalkNetwork, facilities: gpd.GeoDataFrame, *,
                           entrances: gpd.GeoDataFrame | None = None,
                           access_distance: float | None = None,
                           type_col: str = "type") -> gpd.GeoDataFrame:
    """The access points of facilities and the rule each used (points layer).

    Columns ``facility`` (row position), ``facility_id``, ``type`` (if present),
    ``access_rule`` (``point``, ``entrance``, ``outline_adjacent_edge``,
    ``outline_nearest_edge``), ``edge``, ``position_m``, ``offset_m``; geometry = the
    access point (gate or outline point).
    """
    fac = check_metric(facilities, "facilities", network)
    ids = _ids(fac, None, _FAC_ID_CANDIDATES, "facilities")
    s = facility_access(network, fac.assign(_fid=ids), entrances=entrances,
                        access_distance=access_distance, id_col="_fid")
    t = s.table()
    out = pd.DataFrame({"facility": t["feature"], "facility_id": t["feature_id"]})
    if type_col in fac.columns:
        out["type"] = fac[type_col].to_numpy()[t["feature"].to_numpy()]
    out["access_rule"] = t["rule"]
    out["edge"] = t["edge"]
    out["position_m"] = t["position_m"]
    out["offset_m"] = t["offset_m"]
    return gpd.GeoDataFrame(out, geometry=shapely.points(t["access_x"], t["access_y"]),
                            crs=network.crs)


# --------------------------------------------------------------------------- coverage
@dataclass
class CoverageResult:
    """Life-circle coverage of one set of homes.

    Attributes
    ----------
    per_home : GeoDataFrame
        ``home_id``, ``home_kind``, ``unit_id``, ``town_code``, ``population``, then per
        type ``dist_<code>`` (m) and ``covered_<code>`` (bool: distance ≤ the type's walking
        distance), ``types_covered`` (count), ``complete`` (all types covered); geometry of
        the home. Sorted by ``home_id``.
    per_area : DataFrame
        ``level`` (``unit``, ``town``, ``district``), ``area_id``, ``facility_type``
        (a type code, or ``complete_life_circle``), ``population``, ``covered_population``,
        ``share`` (0-1), ``not_covered`` (persons). The district rows are computed from the
        homes, so the unit (and town) rows sum to them; homes outside every unit are in
        ``area_id`` ``"<unassigned>"``.
    complete_share : float
        Population share (0-1) of the district covered for every type.
    types : list of str
    walk_distance_m : dict
        Threshold of each type (metres; catalogue GB 50180-2018 App. C or overrides).
    facilities : GeoDataFrame
        The facilities used, with ``type``, ``facility_id``, ``access_rule`` and
        ``n_access_points``.
    report : DataFrame
        Reported homes/facilities (see :func:`nearest_facility_distance`).
    """

    per_home: gpd.GeoDataFrame
    per_area: pd.DataFrame
    complete_share: float
    types: list[str]
    walk_distance_m: dict[str, float]
    facilities: gpd.GeoDataFrame
    report: pd.DataFrame
    catalogue: pd.DataFrame = field(repr=False, default_factory=pd.DataFrame)


def _assign_units(homes: gpd.GeoDataFrame, units: gpd.GeoDataFrame | None, unit_col: str,
                  town_col: str, report: list) -> tuple[np.ndarray | None, np.ndarray | None]:
    unit = homes[unit_col].to_numpy(dtype=object) if unit_col in homes.columns else None
    town = homes[town_col].to_numpy(dtype=object) if town_col in homes.columns else None
    if units is not None and (unit is None or town is None):
        if unit_col not in units.columns:
            raise LayerError("units", f"has no {unit_col!r} column", fix="pass unit_col=")
        u = units.to_crs(homes.crs) if units.crs is not None and not units.crs.equals(homes.crs) else units
        pts = gpd.GeoDataFrame(geometry=homes.geometry.representative_point().to_numpy(), crs=homes.crs)
        j = gpd.sjoin(pts, u[[unit_col] + ([town_col] if town_col in u.columns else []) +
                             [u.geometry.name]], how="left", predicate="within")
        j = j[~j.index.duplicated(keep="first")].sort_index()
        if unit is None:
            unit = j[unit_col].to_numpy(dtype=object)
        if town is None and town_col in j.columns:
            town = j[town_col].to_numpy(dtype=object)
    for arr, name in ((unit, "unit"), (town, "town")):
        if arr is not None:
            miss = pd.isna(arr)
            if miss.any():
                report.append({"layer": "homes", "feature": -1, "feature_id": None,
                               "problem": f"{int(miss.sum())} homes outside every {name}: "
                                          "counted under '<unassigned>'",
                               "offset_m": np.nan, "component": -1})
                arr[miss] = "<unassigned>"
    return unit, town


def _coverage_types(facilities: Any, types: list[str] | None, wd: dict[str, float],
                    type_col: str) -> tuple[list[str], list[dict]]:
    """The types to assess (default: those present with a walking distance) and the report
    rows of the types left out; warns from the caller of :func:`service_coverage`."""
    extra_rep = []
    if types is None:
        present = (list(facilities.keys()) if isinstance(facilities, Mapping) else
                   sorted(facilities[type_col].dropna().astype(str).unique())
                   if isinstance(facilities, pd.DataFrame) and type_col in facilities.columns else [])
        types = [t for t in present if np.isfinite(wd.get(t, np.nan))]
        left = [t for t in present if t not in types]
        extra_rep = [{"layer": "facilities", "feature": -1, "feature_id": None,
                      "problem": f"type {t!r} has no walking distance in the catalogue: "
                                 "left out of coverage",
                      "offset_m": np.nan, "component": -1} for t in left]
        if left:  # said, not only reported: a type the user expected is missing
            warnings.warn(f"service_coverage: facility types without a walking distance in the "
                          f"catalogue left out of coverage: {', '.join(left)} (give them "
                          "walk_distance_m with facility_catalogue(overrides=...) to assess them)",
                          AccessWarning, stacklevel=3)
    types = list(types)
    bad = [t for t in types if not np.isfinite(wd.get(t, np.nan))]
    if bad:
        raise ConfigError("types", f"no walking distance in the catalogue for {bad}",
                          "set walk_distance_m with facility_catalogue(overrides=...)")
    if not types:
        raise ConfigError("types", "no facility type to assess",
                          "pass types=[...] or facilities with a 'type' column")
    return types, extra_rep


def _home_population(homes: gpd.GeoDataFrame, pop_col: str) -> np.ndarray:
    """Population of each home (persons): the column must exist, every value finite and ≥ 0."""
    if pop_col not in homes.columns:
        raise LayerError("homes", f"has no population column {pop_col!r}",
                         fix="add it (persons) or pass pop_col=")
    pop = pd.to_numeric(homes[pop_col], errors="coerce").to_numpy(dtype=float)
    badpop = ~np.isfinite(pop) | (pop < 0)
    if badpop.any():
        i = int(np.flatnonzero(badpop)[0])
        raise LayerError("homes", f"population {homes[pop_col].iloc[i]!r} is missing or negative",
                         feature=i, feature_id=homes.index[i], count=int(badpop.sum()),
                         fix="give every home a population ≥ 0 (persons)")
    return pop


def service_coverage(
    network: WalkNetwork,
    homes: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame | Mapping[str, gpd.GeoDataFrame],
    *,
    types: list[str] | None = None,
    catalogue: pd.DataFrame | None = None,
    units: gpd.GeoDataFrame | None = None,
    unit_col: str = "unit_id",
    town_col: str = "town_code",
    pop_col: str = "population",
    id_col: str | None = None,
    home_kind: str | None = None,
    entrances: gpd.GeoDataFrame | None = None,
    type_col: str = "type",
    search_limit: float | None = None,
    access_distance: float | None = None,
    progress: bool = False,
) -> CoverageResult:
    """Life-circle coverage: who reaches each facility type within its walking distance.

    Parameters
    ----------
    network : WalkNetwork
    homes : GeoDataFrame
        Compounds, buildings or population points with a population column (persons).
    facilities : GeoDataFrame or dict
        As in :func:`nearest_facility_distance`.
    types : list of str, optional
        Type codes; default: the types present in ``facilities`` that have a walking
        distance in the catalogue (the others are reported).
    catalogue : DataFrame, optional
        :func:`geotijian.facilities.facility_catalogue` output (default: packaged one;
        radii GB 50180-2018 App. C, partly unconfirmed: see its ``confidence`` column).
    units : GeoDataFrame, optional
        Check-up units (``unit_col``, optional ``town_col``) to assign homes by their
        representative point, when homes do not carry ``unit_col``/``town_col``.
    pop_col : str
        Population column of homes (persons, ≥ 0).
    search_limit : float, optional
        Metres; limit of the shortest-path search. Default none, so uncovered homes get
        their exact distance (needed by :func:`coverage_gaps`).
    progress : bool
        tqdm progress bar over the types.

    Returns
    -------
    CoverageResult
    """
    cat = facility_catalogue() if catalogue is None else catalogue
    wd = dict(zip(cat["code"], cat["walk_distance_m"].astype(float)))
    types, extra_rep = _coverage_types(facilities, types, wd, type_col)
    pop = _home_population(homes, pop_col)
    acc = _compute(network, homes, facilities, types=types, max_distance=search_limit,
                   entrances=entrances, id_col=id_col, type_col=type_col,
                   access_distance=access_distance, progress=progress)
    homes_m = check_metric(homes, "homes", network)
    rep_rows: list = list(extra_rep)
    unit, town = _assign_units(homes_m, units, unit_col, town_col, rep_rows)
    thr = np.array([wd[t] for t in types])
    covered = acc.dist <= thr[None, :]
    per_home = _per_home(acc, _home_kind(homes_m, home_kind), unit, town, pop, types, covered,
                         homes_m.geometry.to_numpy(), network.crs)
    per_area = _per_area(covered, pop, unit, town, types)
    district = per_area[(per_area.level == "district") &
                        (per_area.facility_type == "complete_life_circle")]
    complete_share = float(district["share"].iloc[0])
    fac_out = _facilities_used(acc, network.crs)
    report = pd.concat([acc.report, pd.DataFrame(rep_rows, columns=REPORT_COLUMNS)],
                       ignore_index=True) if rep_rows else acc.report
    return CoverageResult(per_home, per_area, complete_share, types,
                          {t: wd[t] for t in types}, fac_out, report,
                          cat[cat["code"].isin(types)].reset_index(drop=True))


def coverage_gaps(result_or_network: CoverageResult | WalkNetwork, *args: Any,
                  types: list[str] | None = None, **kwargs: Any) -> gpd.GeoDataFrame:
    """Uncovered homes per facility type, as a layer for the problem map.

    Parameters
    ----------
    result_or_network : CoverageResult or WalkNetwork
        A :func:`service_coverage` result, or the network followed by the arguments of
        :func:`service_coverage` (``homes, facilities, **kwargs``), which is then run.
    types : list of str, optional
        Only these types (default: all types of the result).

    Returns
    -------
    GeoDataFrame
        Columns :data:`geotijian.model.GAP_COLUMNS` (``home_id``, ``home_kind``,
        ``unit_id``, ``facility_type``, ``facility_name_zh``, ``walk_distance_m``,
        ``distance_m`` = network distance to the nearest facility of the type, ``inf`` when
        none is reachable, ``population``) and the home geometry; one row per
        (uncovered home, type), sorted by type then home.
    """
    if isinstance(result_or_network, CoverageResult):
        res = result_or_network
    else:
        res = service_coverage(result_or_network, *args, types=types, **kwargs)
    ph = res.per_home
    names = dict(zip(res.catalogue.get("code", []), res.catalogue.get("name_zh", [])))
    frames = []
    for t in (types or res.types):
        if t not in res.types:
            raise ConfigError("types", f"type {t!r} is not in the coverage result {res.types}")
        miss = ~ph[f"covered_{t}"].to_numpy()
        sub = ph.loc[miss]
        frames.append(gpd.GeoDataFrame({
            "home_id": sub["home_id"].to_numpy(), "home_kind": sub["home_kind"].to_numpy(),
            "unit_id": sub["unit_id"].to_numpy(), "facility_type": t,
            "facility_name_zh": names.get(t, t), "walk_distance_m": res.walk_distance_m[t],
            "distance_m": sub[f"dist_{t}"].to_numpy(), "population": sub["population"].to_numpy()},
            geometry=sub.geometry.to_numpy(), crs=ph.crs))
    out = pd.concat(frames, ignore_index=True) if frames else \
        gpd.GeoDataFrame(columns=GAP_COLUMNS, geometry=[], crs=ph.crs)
    return gpd.GeoDataFrame(out[GAP_COLUMNS + ["geometry"]], geometry="geometry", crs=ph.crs)


def gaps_by_home(gaps: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The coverage gaps once per home: which types are missing and how far the nearest is.

    The long layer of :func:`coverage_gaps` has one row per (home, missing type): a
    district's ~24,000 homes become ~300,000 rows, each repeating the home's polygon. This
    is the layout a GeoPackage user reads: one row per home with at least one gap.

    Parameters
    ----------
    gaps : GeoDataFrame
        :func:`coverage_gaps` output (columns :data:`geotijian.model.GAP_COLUMNS`).

    Returns
    -------
    GeoDataFrame
        ``home_id``, ``home_kind``, ``unit_id``, ``population`` (persons), ``n_missing``
        (number of types not within walking distance), ``missing`` (their codes, ``;``
        separated, in the order of the gap layer; the GeoPackage gives each ``dist_<type>``
        column the type's Chinese name as alias), ``worst_ratio`` (largest distance / walking distance among them; ``inf`` when a
        type has no reachable facility), then ``dist_<type>`` per type: network distance in
        metres to the nearest facility of that type where it is missing (``inf`` when none
        is reachable), empty (NULL) where the home is covered (or the gap row had no
        distance); the home's geometry (of its first row). Sorted by ``home_id``; every
        (home, type) row of ``gaps`` is named once in ``missing``.
    """
    for col in GAP_COLUMNS:
        if col not in gaps.columns:
            raise LayerError("coverage_gaps", f"missing column {col!r}", fix="build it with coverage_gaps()")
    types = list(pd.unique(gaps["facility_type"].astype(str)))
    ti = pd.Categorical(gaps["facility_type"].astype(str), categories=types).codes
    hcode, homes = pd.factorize(gaps["home_id"].astype(str), sort=True)
    if len(pd.MultiIndex.from_arrays([hcode, ti]).drop_duplicates()) != len(gaps):
        raise LayerError("coverage_gaps", "a (home, type) pair is listed twice",
                         fix="build the layer with coverage_gaps() from one coverage result")
    first = np.unique(hcode, return_index=True)[1]
    n, k = len(homes), len(types)
    dist = np.full((n, k), np.nan)
    dist[hcode, ti] = pd.to_numeric(gaps["distance_m"], errors="coerce").to_numpy(dtype=float)
    ratio = np.full((n, k), -np.inf)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio[hcode, ti] = dist[hcode, ti] / gaps["walk_distance_m"].to_numpy(dtype=float)
    worst = np.fmax.reduce(ratio, axis=1) if k else np.zeros(n)  # NaN distances skipped
    worst[worst == -np.inf] = np.nan  # a home whose only gaps have no distance
    miss = np.zeros((n, k), dtype=bool)
    miss[hcode, ti] = True
    codes = pd.Series("", index=range(n), dtype=object)
    for j, t in enumerate(types):  # a loop over the ~14 types, each step vectorised over homes
        codes = codes.where(~miss[:, j], codes + np.where(codes == "", "", ";") + t)
    sub = gaps.iloc[first]
    out = {"home_id": np.asarray(homes, dtype=object), "home_kind": sub["home_kind"].to_numpy(),
           "unit_id": sub["unit_id"].to_numpy(), "population": sub["population"].to_numpy(dtype=float),
           "n_missing": miss.sum(axis=1).astype(np.int32), "missing": codes.to_numpy(),
           "worst_ratio": worst}
    out.update({f"dist_{t}": dist[:, j] for j, t in enumerate(types)})
    return gpd.GeoDataFrame(out, geometry=sub.geometry.to_numpy(), crs=gaps.crs)


# ---------------------------------------------------------------------- service areas
def service_areas(
    network: WalkNetwork,
    facilities: gpd.GeoDataFrame | Mapping[str, gpd.GeoDataFrame],
    distance: float | Mapping[str, float] | None = None,
    *,
    per_facility: bool = False,
    half_width: float | None = None,
    catalogue: pd.DataFrame | None = None,
    types: list[str] | None = None,
    entrances: gpd.GeoDataFrame | None = None,
    type_col: str = "type",
    access_distance: float | None = None,
    quad_segs: int = 4,
    stub_m: float | None = None,
) -> gpd.GeoDataFrame:
    """Street space within walking distance of the facilities of each type.

    Built from the reached edges: whole edges reached from both ends, partial edges cut at
    the exact remaining distance (vectorised line substring), the facility's own edge
    around its snap position; the lines are buffered by ``half_width``. Never a convex
    hull of reached nodes.

    Parameters
    ----------
    distance : float or dict, optional
        Metres (one for all types or per type); default the catalogue walking distance
        (types without one are left out with a warning).
    per_facility : bool
        Also split by facility (one search per facility, in chunks): rows carry
        ``facility_id``.
    half_width : float, optional
        Buffer half-width in metres; default ``settings.service_area_half_width_m`` (25 m).
    quad_segs : int
        Segments per quarter circle of the buffer.
    stub_m : float, optional
        Metres; reached dead ends of the network no longer than this (a footway to a
        building's door) are left out of the drawing when another edge goes on from the
        node they hang on; default ``settings.service_area_stub_m`` (5 m), 0 draws every
        reached piece. Every reached point of the network stays inside the polygon, the
        cut at the walking distance is unchanged, and the polygon lies within ``stub_m``
        of the one with every piece (it loses the stubs' caps only). Less than
        ``half_width`` (the default applies only where it is).

    Returns
    -------
    GeoDataFrame
        ``facility_type``, ``facility_name_zh``, ``walk_distance_m`` (+ ``facility_id``),
        geometry (Polygon/MultiPolygon, empty when nothing is reached); sorted by type.
        ``attrs["drawing"]``: ``half_width_m`` and ``stub_m`` as used (the GeoPackage
        writer says them in the layer's description).

    See Also
    --------
    start_service_areas : the same polygons, their unions left running in the background.
    """
    if not per_facility:
        return _start_service_areas(network, facilities, distance, half_width, catalogue, types, entrances,
                                    type_col, access_distance, quad_segs, stub_m).result()
    hw, names, wd, fac, order, fsnap, graph = _area_inputs(network, facilities, half_width, catalogue, types,
                                                           entrances, type_col, access_distance)
    stub = _stub_length(stub_m, hw)
    ftype = fac["_type"].to_numpy()
    rows = []
    for code, d in _area_distances(order, distance, wd, stacklevel=3):
        idx = np.flatnonzero(ftype == code)
        step = max(1, int(5_000_000 // graph.shape[0]))
        for a in range(0, len(idx), step):
            chunk = idx[a:a + step]
            D = np.atleast_2d(graph.distances(chunk, limit=d, min_only=False))
            for j, f in enumerate(chunk):
                one = np.zeros(len(fac), dtype=bool)
                one[f] = True
                lines = _reached_segments(network, D[j], fsnap, one, d, stub)
                rows.append((code, names.get(code, code), d, fac["_fid"].iloc[f], _street_space(lines, hw, quad_segs)))
    cols = ["facility_type", "facility_name_zh", "walk_distance_m", "facility_id", "geometry"]
    out = gpd.GeoDataFrame(pd.DataFrame(rows, columns=cols), geometry="geometry", crs=network.crs)
    out.attrs["drawing"] = _drawing(hw, stub)
    return out


@dataclass
class PendingServiceAreas:
    """Service areas whose unions are running (:func:`start_service_areas`).

    ``result()`` waits for them (the calling thread helps with the ones not started) and
    returns the GeoDataFrame of :func:`service_areas`; ``cancel()`` drops the unions not
    started (a run that failed elsewhere).
    """

    rows: list[tuple[str, str, float]]
    unions: PendingUnions | ForkedUnions
    crs: Any
    drawing: dict = field(default_factory=dict)

    def result(self) -> gpd.GeoDataFrame:
        geoms = self.unions.result()
        out = pd.DataFrame([r + (g,) for r, g in zip(self.rows, geoms)],
                           columns=["facility_type", "facility_name_zh", "walk_distance_m", "geometry"])
        gdf = gpd.GeoDataFrame(out, geometry="geometry", crs=self.crs)
        gdf.attrs["drawing"] = dict(self.drawing)   # how the polygons were drawn (said in the GeoPackage)
        return gdf

    def cancel(self) -> None:
        self.unions.cancel()

    def done(self) -> bool:
        """Whether every union has run (``result()`` would not wait)."""
        return self.unions.done()


def start_service_areas(
    network: WalkNetwork,
    facilities: gpd.GeoDataFrame | Mapping[str, gpd.GeoDataFrame],
    distance: float | Mapping[str, float] | None = None,
    *,
    half_width: float | None = None,
    catalogue: pd.DataFrame | None = None,
    types: list[str] | None = None,
    entrances: gpd.GeoDataFrame | None = None,
    type_col: str = "type",
    access_distance: float | None = None,
    quad_segs: int = 4,
    stub_m: float | None = None,
) -> PendingServiceAreas:
    """:func:`service_areas` (one row per type) with the geometry work left running.

    The searches run here (one multi-source Dijkstra per type, ~0.2 s for a district's
    14 types at scale 18.4) and the checks and warnings are said here; each type's pieces,
    buffers and union (~21 s of GEOS and numpy time at that scale) go to a background
    thread (with ``settings.parallel``; else they run here) as soon as its search is done,
    the largest first. A study starts them in its coverage step and collects them
    (``result()``) when its outputs need the polygons, so they overlap with the steps in
    between. Same polygons as :func:`service_areas`, same errors (raised by ``result()``).

    Parameters
    ----------
    As :func:`service_areas` (without ``per_facility``).

    Returns
    -------
    PendingServiceAreas
    """
    return _start_service_areas(network, facilities, distance, half_width, catalogue, types, entrances,
                                type_col, access_distance, quad_segs, stub_m)


def _start_service_areas(network: WalkNetwork, facilities: Any, distance: float | Mapping[str, float] | None,
                         half_width: float | None, catalogue: pd.DataFrame | None, types: list[str] | None,
                         entrances: gpd.GeoDataFrame | None, type_col: str, access_distance: float | None,
                         quad_segs: int, stub_m: float | None) -> PendingServiceAreas:
    hw, names, wd, fac, order, fsnap, graph = _area_inputs(network, facilities, half_width, catalogue, types,
                                                           entrances, type_col, access_distance)
    stub = _stub_length(stub_m, hw)
    ftype = fac["_type"].to_numpy()
    rows: list[tuple[str, str, float]] = []
    areas = list(_area_distances(order, distance, wd, stacklevel=4))
    # a process of their own where the platform forks (no GIL shared with the study), else a thread
    unions = ForkedUnions() if fork_unions(len(areas)) else PendingUnions(background=settings.parallel)
    try:
        for code, d in areas:
            mask = ftype == code
            idx = np.flatnonzero(mask)
            rows.append((code, names.get(code, code), d))
            if not len(idx):
                unions.add(0, shapely.Polygon)
                continue
            D = graph.distances(idx, limit=d)
            unions.add(int(np.isfinite(D).sum()), partial(_type_street_space, network, D, fsnap, mask, d, hw,
                                                          quad_segs, stub))
        unions.start()
    except BaseException:
        unions.cancel()
        raise
    return PendingServiceAreas(rows, unions, network.crs, _drawing(hw, stub))


def _drawing(half_width: float, stub_m: float) -> dict:
    """How service areas were drawn (their ``attrs["drawing"]``, said in the GeoPackage)."""
    return {"half_width_m": half_width, "stub_m": stub_m}


def _area_inputs(network: WalkNetwork, facilities: Any, half_width: float | None, catalogue: pd.DataFrame | None,
                 types: list[str] | None, entrances: gpd.GeoDataFrame | None, type_col: str,
                 access_distance: float | None) -> tuple:
    """Half-width, names, walking distances, the facility layer, its types, access points
    and search graph of :func:`service_areas`."""
    hw = settings.service_area_half_width_m if half_width is None else float(half_width)
    cat = facility_catalogue() if catalogue is None else catalogue
    names = dict(zip(cat["code"], cat["name_zh"]))
    wd = dict(zip(cat["code"], cat["walk_distance_m"].astype(float)))
    fac, order, _ = _facility_layer(facilities, type_col, types)
    if len(fac):
        fac = check_metric(fac, "facilities", network)
    fsnap = facility_access(network, fac, entrances=entrances, access_distance=access_distance,
                            id_col="_fid")
    return hw, names, wd, fac, order, fsnap, distance_graph(network, fsnap)


def _stub_length(stub_m: float | None, half_width: float) -> float:
    """``stub_m``, checked: at least 0 and less than the half-width (a stub left out must
    lie inside the buffer of the edge it hangs on). Its default,
    ``settings.service_area_stub_m``, applies only where it is less than the half-width
    (a thinner buffer draws every piece)."""
    if stub_m is None:
        stub = float(settings.service_area_stub_m)
        if stub >= half_width:
            return 0.0
    else:
        stub = float(stub_m)
    if not (0.0 <= stub < half_width):
        raise ValueError(f"service_areas: stub_m = {stub} m must be at least 0 and less than the buffer "
                         f"half-width ({half_width} m); set stub_m (or settings.service_area_stub_m) to 0 "
                         "to draw every reached piece")
    return stub


def _area_distances(order: list[str], distance: float | Mapping[str, float] | None,
                    wd: dict[str, float], *, stacklevel: int) -> list[tuple[str, float]]:
    """(type, metres) of each type with a walking distance; the others are warned about
    (``stacklevel``: the caller of the public function)."""
    out = []
    for code in order:
        d = (distance.get(code) if isinstance(distance, Mapping) else distance)
        d = wd.get(code, np.nan) if d is None else float(d)
        if not np.isfinite(d) or d <= 0:
            warnings.warn(f"service_areas: no walking distance for type {code!r}: left out",
                          AccessWarning, stacklevel=stacklevel)
            continue
        out.append((code, d))
    return out
