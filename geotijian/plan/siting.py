"""Facility siting to close coverage gaps: MCLP and LSCP on geotijian's walk network.

For one facility type (a kindergarten, 300 m), :func:`site_facilities` chooses new sites
among candidates so that residents who are *not* within the walking distance of an
existing facility (the coverage gaps of :func:`geotijian.service_coverage`; existing
facilities are kept) come within it:

* **MCLP** (maximal covering, ``objective="mclp"``): at most ``p`` new sites covering the
  most uncovered residents;
* **LSCP** (location set covering, ``objective="lscp"``): the fewest new sites covering
  every uncovered home some candidate can reach. Homes no candidate can reach make the
  full problem infeasible: they are reported (how many residents, in which units) and
  the sites are chosen for the rest.

Candidates are a layer of available land or public parcels (points or polygons; polygons
reach the network at their gates or outline, like facilities) or, without one, the
network itself: every node within the walking distance of an uncovered home.

Costs are network distances of :mod:`geotijian.access` (snap offsets and partial edges
counted, never straight lines), home × candidate within the walking distance only, as a
sparse matrix (:func:`geotijian.plan.costs.bounded_distance_matrix`). The model is
reduced exactly and solved with HiGHS (:mod:`geotijian.plan.milp`) to a stated relative
gap within a time limit; status, gap, bound and times are in :attr:`SitingResult.summary`.

With ``capacity`` each new site serves at most that many persons of demand (residents ×
``demand_share``, e.g. 300 places for children aged 3-6, about 3 % of residents), homes
may be split between sites, and the objective counts residents served.
"""

from __future__ import annotations

import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import csr_matrix

from .. import settings
from ..access import AccessWarning, _home_population, nearest_facility_distance
from ..errors import ConfigError, FeasibilityError, LayerError, PlanWarning
from ..facilities import facility_catalogue
from ..network import WalkNetwork, check_metric, facility_access, snap_points
from .costs import bounded_distance_matrix
from .milp import CoverageModel, reduce_model, solve_capacitated, solve_lscp, solve_mclp

__all__ = ["SitingResult", "SharedCosts", "site_facilities", "shared_costs", "SITE_COLUMNS", "CANDIDATE_COLUMNS",
           "ASSIGNMENT_COLUMNS", "OBJECTIVES"]

OBJECTIVES = ("mclp", "lscp")
SITE_COLUMNS = ["site_id", "facility_type", "facility_name_zh", "candidate_id", "source", "name",
                "unit_id", "residents_covered", "homes_covered", "residents_in_reach", "capacity",
                "demand_served"]
CANDIDATE_COLUMNS = ["candidate_id", "facility_type", "source", "homes_in_reach",
                     "residents_in_reach", "in_model", "chosen", "site_id"]
ASSIGNMENT_COLUMNS = ["home_id", "unit_id", "facility_type", "site_id", "distance_m", "share",
                      "residents"]
UNREACHABLE_COLUMNS = ["home_id", "unit_id", "facility_type", "population", "existing_distance_m"]
_HOME_IDS = ("home_id", "compound_id", "building_id", "pop_id")
_SITE_IDS = ("site_id", "parcel_id", "facility_id", "id")


@dataclass
class SitingResult:
    """New sites for one facility type, and how they were found.

    Attributes
    ----------
    facility_type : str
    objective : str
        ``mclp`` or ``lscp``.
    sites : GeoDataFrame
        The chosen sites, :data:`SITE_COLUMNS`: ``site_id`` (``<type>-01`` … by residents
        covered), the ``candidate_id`` it came from (``N<node id>`` for a network node),
        ``unit_id`` it lies in, ``residents_covered`` (newly covered residents assigned
        to it: each to its nearest new site, so the column sums to the total),
        ``homes_covered``, ``residents_in_reach`` (all uncovered residents within the
        walking distance, shared with other sites), ``capacity`` and ``demand_served``
        (persons of demand, capacitated runs). A site the solver opened that serves nobody
        is left out (coverage unchanged; counted in ``summary["sites_unused_dropped"]``).
    candidates : GeoDataFrame
        Every candidate considered (:data:`CANDIDATE_COLUMNS`): uncovered homes and
        residents in reach, ``in_model`` (kept by the exact reductions), ``chosen``.
    assignment : DataFrame
        :data:`ASSIGNMENT_COLUMNS`: each newly covered home, the site serving it, the
        network distance (m), the share served (1 without capacity) and residents.
    unreachable : GeoDataFrame
        Uncovered homes that no candidate reaches within the walking distance
        (:data:`UNREACHABLE_COLUMNS`), with their geometry.
    summary : dict
        Counts (homes, residents covered before/after, unreachable), model sizes,
        solver, status, objective, bound, gap, time limit and times (s).
    cover_matrix : scipy.sparse.csr_matrix
        Uncovered homes × candidates, network distance (m) within the walking distance.
    model : CoverageModel
        The reduced model handed to the solver (for benchmarks and checks).
    """

    facility_type: str
    objective: str
    sites: gpd.GeoDataFrame
    candidates: gpd.GeoDataFrame
    assignment: pd.DataFrame
    unreachable: gpd.GeoDataFrame
    summary: dict
    cover_matrix: csr_matrix = field(repr=False, default=None)
    model: CoverageModel | None = field(repr=False, default=None)

    def describe(self) -> str:
        """A few lines for the terminal: residents covered, sites, solver status and gap."""
        s = self.summary
        head = (f"{s['facility_name_zh']} ({self.facility_type}, {s['walk_distance_m']:g} m, "
                f"{self.objective.upper()}{'' if s.get('p') is None else ', p = ' + str(s['p'])}): ")
        if s["status"] == "empty":
            return head + "every resident is already covered (nothing to site)"
        gap = s["gap"]
        gap_txt = f"{gap:.4%}" if np.isfinite(gap) else "unknown"
        return (head + f"{s['sites']} new sites cover {s['residents_covered_new']:,.0f} of "
                f"{s['residents_uncovered']:,.0f} uncovered residents "
                f"(coverage {s['share_covered_before']:.1%} → {s['share_covered_after']:.1%}); "
                f"{s['residents_unreachable']:,.0f} residents beyond every candidate; "
                f"{s['status']} ({s['solver']}, gap {gap_txt}, limit {s['time_limit_s']:g} s, "
                f"solved in {s['solve_s']:.2f} s)")


# ------------------------------------------------------------------------------ inputs
def _pick_id(gdf: pd.DataFrame, id_col: str | None, names: tuple[str, ...], layer: str,
             prefix: str) -> np.ndarray:
    if id_col is not None:
        if id_col not in gdf.columns:
            raise LayerError(layer, f"ID column {id_col!r} not found",
                             fix=f"name an existing column (have {list(gdf.columns)[:10]})")
        ids = gdf[id_col].astype(str).to_numpy()
    else:
        col = next((c for c in names if c in gdf.columns), None)
        ids = gdf[col].astype(str).to_numpy() if col else \
            np.array([f"{prefix}{i + 1}" for i in range(len(gdf))], dtype=object)
    dup = pd.Index(ids).duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup)[0])
        raise LayerError(layer, f"ID {ids[i]!r} is not unique", feature=i, feature_id=ids[i],
                         count=int(dup.sum()), fix="give every feature a unique ID")
    return np.asarray(ids, dtype=object)


def _walk_distance(facility_type: str, walk_distance: float | None, catalogue: pd.DataFrame | None
                   ) -> tuple[float, str]:
    cat = facility_catalogue() if catalogue is None else catalogue
    row = cat[cat["code"] == facility_type]
    name = str(row["name_zh"].iloc[0]) if len(row) else facility_type
    if walk_distance is None:
        if not len(row):
            raise ConfigError("facility_type", f"unknown facility type {facility_type!r}",
                              "use a code of the facility catalogue (geotijian.facility_catalogue())")
        walk_distance = float(row["walk_distance_m"].iloc[0])
    wd = float(walk_distance)
    if not np.isfinite(wd) or wd <= 0:
        raise ConfigError("walk_distance", f"type {facility_type!r} has no walking distance ({walk_distance!r})",
                          "give walk_distance= in metres or set it in the facility catalogue")
    return wd, name


def _check_options(objective: str, p: Any, capacity: Any, demand_share: Any) -> tuple:
    if objective not in OBJECTIVES:
        raise ConfigError("objective", f"unknown objective {objective!r}",
                          "use \"mclp\" (best p new sites) or \"lscp\" (fewest sites covering everyone)")
    if objective == "mclp":
        if isinstance(p, bool) or not isinstance(p, (int, np.integer)) or p < 1:
            raise ConfigError("p", f"MCLP needs the number of new sites as a whole number ≥ 1, got {p!r}",
                              "give p = 5 (or objective = \"lscp\" to find how many sites cover everyone)")
        p = int(p)
    if capacity is not None and not (isinstance(capacity, str) and capacity == "layer"):
        if isinstance(capacity, bool) or not isinstance(capacity, (int, float)) or not capacity > 0:
            raise ConfigError("capacity", f"must be a positive number of places per site (or \"layer\" "
                              f"to read a capacity column of the candidates), got {capacity!r}",
                              "e.g. capacity = 300 with demand_share = 0.03 for kindergarten places")
    if demand_share is not None:
        if isinstance(demand_share, bool) or not isinstance(demand_share, (int, float)) or \
                not 0 < demand_share <= 1:
            raise ConfigError("demand_share", f"must be a share of residents in (0, 1], got {demand_share!r}",
                              "e.g. 0.03: children aged 3-6 are about 3 % of residents")
    return p, capacity, (1.0 if demand_share is None else float(demand_share))


def _existing_distance(network: WalkNetwork, homes: gpd.GeoDataFrame, facilities: Any,
                       facility_type: str, walk: float, type_col: str, entrances, home_ids,
                       existing_distance: pd.Series | None) -> tuple[np.ndarray, int]:
    """Distance (m) of each home to the nearest existing facility of the type (inf beyond
    the walking distance), and how many such facilities exist."""
    if facilities is None:
        fac = None
    elif isinstance(facilities, dict):
        fac = facilities.get(facility_type)
    else:
        if type_col not in facilities.columns:
            raise LayerError("facilities", f"has no {type_col!r} column with the facility type code",
                             fix="read it with read_layer(..., 'facilities') or pass type_col=")
        fac = facilities[facilities[type_col].astype(str) == facility_type]
    n_fac = 0 if fac is None else len(fac)
    if existing_distance is not None:
        s = pd.Series(existing_distance)
        s.index = s.index.astype(str)
        d = s.reindex(pd.Index(home_ids).astype(str)).to_numpy(dtype=float)
        if np.isnan(d).any():
            i = int(np.flatnonzero(np.isnan(d))[0])
            raise LayerError("existing_distance", f"has no distance for home {home_ids[i]!r}",
                             count=int(np.isnan(d).sum()),
                             fix="pass the distances of every home (index = home ID) or leave it out")
        return d, n_fac
    if n_fac == 0:
        return np.full(len(homes), np.inf), 0
    h = homes.assign(home_id=home_ids)[["home_id", homes.geometry.name]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=AccessWarning)  # homes reported by coverage already
        d = nearest_facility_distance(network, h, {facility_type: fac}, max_distance=walk,
                                      entrances=entrances, id_col="home_id")
    return d[facility_type].to_numpy(dtype=float), n_fac


def _node_ids(network: WalkNetwork, nodes: np.ndarray) -> np.ndarray:
    """Candidate IDs of network nodes (``N<node id>``), as Python strings."""
    return np.char.add("N", network.node_ids[nodes].astype(str)).astype(object)


@dataclass(frozen=True)
class SharedCosts:
    """Walking distances from a set of homes to every network node within one walking
    distance, computed once for the facility types that share it (:func:`shared_costs`).

    Attributes
    ----------
    network : WalkNetwork
        The network the distances are on (the same object is required to use them).
    walk : float
        The cut distance (m).
    homes : ndarray of int
        Positions of the homes (rows of the homes layer), ascending; row ``k`` of
        ``matrix`` is home ``homes[k]``.
    matrix : scipy.sparse.csr_matrix
        Homes × network nodes, network distance (m) within ``walk`` (as
        :func:`geotijian.plan.costs.bounded_distance_matrix`).
    nodes : ndarray of int
        The nodes with an entry (ascending), with their candidate IDs (``ids``,
        ``N<node id>``) and points (``points``).
    seconds : float
        Wall time taken to compute them (the types' ``matrix_s`` then count only the
        taking of their rows).
    """

    network: WalkNetwork
    walk: float
    homes: np.ndarray
    matrix: csr_matrix = field(repr=False)
    nodes: np.ndarray = field(repr=False)
    ids: np.ndarray = field(repr=False)
    points: np.ndarray = field(repr=False)
    seconds: float = 0.0

    def rows(self, network: WalkNetwork, walk: float, homes: np.ndarray) -> csr_matrix | None:
        """The rows of ``homes`` (positions, ascending), or ``None`` when these costs do not
        answer (another network or walking distance, a home not among ``self.homes``)."""
        if network is not self.network or float(walk) != self.walk:
            return None
        k = np.searchsorted(self.homes, homes)
        if len(homes) and (k.max() >= len(self.homes) or (self.homes[k] != homes).any()):
            return None
        return self.matrix[k]


def shared_costs(network: WalkNetwork, homes: gpd.GeoDataFrame, rows: np.ndarray, walk: float) -> SharedCosts:
    """Distances from the homes at positions ``rows`` to every network node within ``walk``
    (m), once for several facility types of that walking distance: each type's matrix is
    then the rows of its uncovered homes (:meth:`SharedCosts.rows`; a home's row does not
    depend on the other homes, tested), and its candidate IDs and points are taken from
    ``ids``/``points`` instead of being built again."""
    t0 = time.perf_counter()
    homes = check_metric(homes, "homes", network)
    rows = np.asarray(rows, dtype=np.int64)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=AccessWarning)  # far homes: reported by coverage
        hsnap = snap_points(network, homes.iloc[rows][[homes.geometry.name]].reset_index(drop=True),
                            layer="homes")
    M = bounded_distance_matrix(network, hsnap, float(walk))
    nodes = np.flatnonzero(np.bincount(M.indices, minlength=network.n_nodes) > 0)
    ids, points = _node_ids(network, nodes), shapely.points(network.x[nodes], network.y[nodes])
    return SharedCosts(network, float(walk), rows, M, nodes, ids, points, time.perf_counter() - t0)


def _used_columns(A: csr_matrix, n: int) -> tuple[np.ndarray, csr_matrix]:
    """The columns of ``A`` with an entry (ascending) and ``A[:, used]`` (entries kept in
    their order, columns renumbered: what scipy's column indexing gives, without its pass)."""
    used = np.flatnonzero(np.bincount(A.indices, minlength=n) > 0)
    pos = np.zeros(n, dtype=A.indices.dtype)
    pos[used] = np.arange(len(used), dtype=A.indices.dtype)
    return used, csr_matrix((A.data.copy(), pos[A.indices], A.indptr.copy()), shape=(A.shape[0], len(used)))


def _candidates(network: WalkNetwork, candidates: gpd.GeoDataFrame | None, hsnap, walk: float,
                facility_type: str, entrances, candidate_id_col: str | None, capacity: Any,
                A: csr_matrix | None = None, shared: SharedCosts | None = None
                ) -> tuple[csr_matrix, gpd.GeoDataFrame, np.ndarray | None]:
    """Home × candidate distance matrix, the candidate layer and capacities (network
    candidates: ``A``, the home × node matrix, when taken from ``shared``)."""
    if candidates is None:
        if A is None:
            A = bounded_distance_matrix(network, hsnap, walk)
        used, A = _used_columns(A, network.n_nodes)
        if shared is not None:
            k = np.searchsorted(shared.nodes, used)
            ids, pts = shared.ids[k], shared.points[k]
        else:
            ids, pts = _node_ids(network, used), shapely.points(network.x[used], network.y[used])
        cand = gpd.GeoDataFrame({"candidate_id": ids, "source": "network_node", "name": None},
                                geometry=pts, crs=network.crs)
        if capacity == "layer":
            raise ConfigError("capacity", "\"layer\" needs a candidate sites layer with a capacity column",
                              "give a number of places per site, or a sites layer")
        caps = None if capacity is None else np.full(len(cand), float(capacity))
        return A, cand, caps
    if not isinstance(candidates, gpd.GeoDataFrame):
        raise LayerError("candidate sites", f"must be a GeoDataFrame, got {type(candidates).__name__}")
    if len(candidates) == 0:
        raise LayerError("candidate sites", f"is empty: no candidate site for {facility_type!r}",
                         fix="add available land or public parcels to the sites layer, or leave it "
                             "out to take candidates from the walk network")
    c = check_metric(candidates, "candidate sites", network)
    if "types" in c.columns:  # sites reserved for some facility types
        allowed = c["types"].fillna("").astype(str).map(
            lambda s: not s.strip() or facility_type in [t.strip() for t in s.replace("；", ";").split(";")])
        if not allowed.any():
            raise LayerError("candidate sites", f"no site may host {facility_type!r} (the 'types' field "
                             f"of all {len(c)} sites names other types)",
                             fix=f"add {facility_type} to the 'types' of suitable sites or leave 'types' empty")
        c = c[allowed.to_numpy()]
    ids = _pick_id(c, candidate_id_col, _SITE_IDS, "candidate sites", "S")
    c = c.reset_index(drop=True)
    caps = None
    if capacity == "layer":
        if "capacity" not in c.columns:
            raise LayerError("candidate sites", "has no 'capacity' column (capacity = \"layer\")",
                             fix="add capacity (places per site) or give a number")
        caps = pd.to_numeric(c["capacity"], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(caps) | (caps <= 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LayerError("candidate sites", f"capacity {c['capacity'].iloc[i]!r} is not a positive number",
                             feature=i, feature_id=ids[i], count=int(bad.sum()),
                             fix="give every site its places (> 0)")
    elif capacity is not None:
        caps = np.full(len(c), float(capacity))
    fsnap = facility_access(network, c.assign(_sid=ids), entrances=entrances,
                            layer="candidate sites", id_col="_sid")
    A = bounded_distance_matrix(network, hsnap, walk, targets=fsnap)
    name = c["name"].to_numpy(dtype=object) if "name" in c.columns else None
    cand = gpd.GeoDataFrame({"candidate_id": ids, "source": "sites_layer", "name": name},
                            geometry=c.geometry.to_numpy(), crs=network.crs)
    return A, cand, caps


def _units_of(geoms: np.ndarray, units: gpd.GeoDataFrame | None, crs) -> np.ndarray:
    """Unit of each site: the unit its point lies in; a point on a unit boundary (network
    nodes lie on the streets that bound units) takes the lowest unit ID touching it; a
    point outside every unit the nearest unit."""
    out = np.full(len(geoms), None, dtype=object)
    if units is None or not len(geoms) or "unit_id" not in units.columns:
        return out
    u = units.to_crs(crs) if units.crs is not None and not units.crs.equals(crs) else units
    uid = u["unit_id"].astype(str).to_numpy()
    pts = shapely.point_on_surface(geoms)
    tree = shapely.STRtree(u.geometry.to_numpy())
    i, j = tree.query(pts, predicate="intersects")
    if len(i):
        o = np.lexsort((uid[j], i))
        i, j = i[o], j[o]
        first = np.r_[True, i[1:] != i[:-1]]
        out[i[first]] = uid[j[first]]
    rest = np.flatnonzero(pd.isna(out))
    if len(rest):
        a, j = tree.query_nearest(pts[rest], return_distance=False, all_matches=False)
        out[rest[a]] = uid[j]
    return out


def _describe_places(unit: np.ndarray, pop: np.ndarray, k: int = 5) -> str:
    s = pd.Series(pop).groupby(pd.Series(unit).fillna("<no unit>").to_numpy()).sum().sort_values(
        ascending=False, kind="stable")
    parts = [f"{u} ({v:,.0f})" for u, v in s.head(k).items()]
    more = f" and {len(s) - k} more units" if len(s) > k else ""
    return ", ".join(parts) + more


# ---------------------------------------------------------------------------- siting
def site_facilities(
    network: WalkNetwork,
    homes: gpd.GeoDataFrame,
    facilities: gpd.GeoDataFrame | dict | None,
    *,
    facility_type: str,
    objective: str = "mclp",
    p: int | None = None,
    candidates: gpd.GeoDataFrame | None = None,
    walk_distance: float | None = None,
    capacity: float | str | None = None,
    demand_share: float | None = None,
    time_limit_s: float | None = None,
    mip_rel_gap: float | None = None,
    presolve: bool = False,
    catalogue: pd.DataFrame | None = None,
    units: gpd.GeoDataFrame | None = None,
    pop_col: str = "population",
    id_col: str | None = None,
    unit_col: str = "unit_id",
    existing_distance: pd.Series | None = None,
    entrances: gpd.GeoDataFrame | None = None,
    type_col: str = "type",
    candidate_id_col: str | None = None,
    shared_costs: SharedCosts | None = None,
) -> SitingResult:
    """New sites of one facility type that close coverage gaps (MCLP or LSCP), solved exactly.

    Parameters
    ----------
    network : WalkNetwork
    homes : GeoDataFrame
        Compounds, buildings or population points with a population column (persons);
        projected CRS. ``unit_col`` (optional) names each home's check-up unit.
    facilities : GeoDataFrame or dict or None
        Existing facilities (a ``type_col`` column, or ``{type: GeoDataFrame}``); they are
        kept: homes within the walking distance of one are not demand.
    facility_type : str
        Facility catalogue code, e.g. ``"kindergarten"``.
    objective : {"mclp", "lscp"}
        Best ``p`` new sites, or the fewest sites covering every reachable home.
    p : int
        Number of new sites (MCLP).
    candidates : GeoDataFrame, optional
        Available land or public parcels (points or polygons; optional ``site_id``,
        ``name``, ``capacity`` and ``types``, the facility codes a site may host,
        ``;``-separated, empty = any). Default: the walk network's nodes within the
        walking distance of an uncovered home.
    walk_distance : float, optional
        Metres; default the catalogue's (kindergarten 300 m, GB 50180-2018 App. C).
    capacity : float or "layer", optional
        Persons of demand one new site serves (e.g. 300 kindergarten places), or
        ``"layer"`` to read each candidate's ``capacity``. Default: no capacity.
    demand_share : float, optional
        Persons of demand per resident (0-1] with a capacity (e.g. 0.03 for children
        aged 3-6); default 1.
    time_limit_s, mip_rel_gap : float, optional
        Solver limits; default ``settings.siting_time_limit_s`` (30 s) and
        ``settings.siting_mip_rel_gap`` (1e-4).
    presolve : bool
        Use HiGHS' presolve as well as geotijian's exact reductions (off: see
        :mod:`geotijian.plan.milp`).
    units : GeoDataFrame, optional
        Check-up units, to say which unit each site lies in.
    existing_distance : Series, optional
        Distance (m) of each home (index = home ID) to the nearest existing facility of
        the type, when already computed (the study's coverage); else computed here.
    shared_costs : SharedCosts, optional
        Home × node distances of several types (:func:`shared_costs`): rows taken, not computed.

    Returns
    -------
    SitingResult

    Raises
    ------
    ConfigError
        Unknown type or objective, ``p`` missing, a capacity or share that is not a number.
    LayerError
        An empty candidate layer, a layer without CRS, bad populations.
    FeasibilityError
        No candidate within reach of any uncovered home; (LSCP with capacity) demand
        above what every candidate together can serve.
    """
    t0 = time.perf_counter()
    p, capacity, share = _check_options(objective, p, capacity, demand_share)
    walk, name_zh = _walk_distance(facility_type, walk_distance, catalogue)
    homes, pop, home_ids, unit = _homes(network, homes, pop_col, id_col, unit_col, units)
    existing, n_fac = _existing_distance(network, homes, facilities, facility_type, walk, type_col,
                                         entrances, home_ids, existing_distance)
    need = (existing > walk) & (pop > 0)
    summary: dict[str, Any] = {
        "facility_type": facility_type, "facility_name_zh": name_zh, "objective": objective,
        "p": p if objective == "mclp" else None, "walk_distance_m": walk, "capacity": capacity,
        "demand_share": share if capacity is not None else None, **_demand_summary(pop, need, n_fac)}
    di = np.flatnonzero(need)
    if len(di) == 0:
        summary.update(_empty_summary(summary, time.perf_counter() - t0))
        return _empty_result(facility_type, objective, summary, network.crs)
    w = pop[di]
    A, cand, caps, matrix_s = _costs(network, homes, di, candidates, walk, facility_type, entrances, candidate_id_col,
                                     capacity, w, shared_costs)
    unreachable, gone = _unreachable(homes, home_ids, unit, existing, di, A, w, facility_type, walk, objective)
    dem = w * share if capacity is not None else None
    sol, model, chosen, share_in = _solve(A, w, dem, caps, objective, p, facility_type, walk, unit[di],
                                          time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap, presolve=presolve)
    sites, assign, cand_out = _results(A, cand, caps, chosen, share_in, model, facility_type, name_zh,
                                       home_ids[di], unit[di], w, dem, units, network.crs)
    unused = _rescore_unused(sol, objective, len(chosen), len(sites))
    new = float(assign["residents"].sum()) if len(assign) else 0.0
    summary.update({
        "unreachable_homes": int(gone.sum()), "residents_unreachable": float(w[gone].sum()),
        "candidates": int(len(cand)), "candidate_source": str(cand["source"].iloc[0]) if len(cand) else "",
        **{f"model_{k}": v for k, v in model.stats.items()},
        "sites": int(len(sites)), "sites_unused_dropped": unused, "residents_covered_new": new,
        "residents_uncovered_after": float(w.sum() - new), **_shares(pop, need, new),
        **_solution_summary(sol), "matrix_s": matrix_s, "solve_s": sol.solve_s,
        "total_s": time.perf_counter() - t0})
    return SitingResult(facility_type, objective, sites, cand_out, assign, unreachable, summary,
                        cover_matrix=A, model=model)


def _homes(network: WalkNetwork, homes: gpd.GeoDataFrame, pop_col: str, id_col: str | None, unit_col: str,
           units: gpd.GeoDataFrame | None) -> tuple[gpd.GeoDataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """The homes checked (metric CRS), their populations (persons), IDs and units."""
    homes = check_metric(homes, "homes", network)
    pop = _home_population(homes, pop_col)   # the coverage step's check: same message
    home_ids = _pick_id(homes, id_col, _HOME_IDS, "homes", "H")
    unit = homes[unit_col].astype(object).to_numpy() if unit_col in homes.columns else \
        _units_of(homes.geometry.to_numpy(), units, homes.crs)
    return homes, pop, home_ids, unit


def _demand_summary(pop: np.ndarray, need: np.ndarray, n_fac: int) -> dict:
    """Homes and residents, covered by the existing facilities or not."""
    return {"homes": int(len(pop)), "residents": float(pop.sum()), "existing_facilities": n_fac,
            "residents_covered_existing": float(pop[~need].sum()),
            "demand_homes": int(need.sum()), "residents_uncovered": float(pop[need].sum())}


def _costs(network: WalkNetwork, homes: gpd.GeoDataFrame, di: np.ndarray, candidates: gpd.GeoDataFrame | None,
           walk: float, facility_type: str, entrances, candidate_id_col: str | None, capacity: Any,
           w: np.ndarray, shared: SharedCosts | None = None
           ) -> tuple[csr_matrix, gpd.GeoDataFrame, np.ndarray | None, float]:
    """Uncovered home (positions ``di``) × candidate network distances within the walking
    distance (sparse), the candidates, their capacities and the seconds taken (rows of
    ``shared`` when it answers for network candidates); an error when no candidate reaches
    any uncovered home."""
    tm = time.perf_counter()
    A = shared.rows(network, walk, di) if shared is not None and candidates is None else None
    hsnap = None
    if A is None:
        shared = None
        dh = homes.iloc[di]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", category=AccessWarning)  # far homes: reported by coverage
            hsnap = snap_points(network, dh[[dh.geometry.name]].reset_index(drop=True), layer="homes")
    A, cand, caps = _candidates(network, candidates, hsnap, walk, facility_type, entrances,
                                candidate_id_col, capacity, A=A, shared=shared)
    matrix_s = time.perf_counter() - tm
    if A.nnz == 0:
        raise FeasibilityError(
            f"{facility_type}: none of the {len(cand)} candidate sites is within {walk:g} m walk of the "
            f"{len(di):,} uncovered homes ({w.sum():,.0f} residents): nothing can be sited. Fix: add "
            "candidate sites in the gap areas (coverage_gaps layer), check the sites layer's CRS, or "
            "leave the sites layer out to take candidates from the walk network")
    return A, cand, caps, matrix_s


def _empty_result(facility_type: str, objective: str, summary: dict, crs) -> SitingResult:
    """Every resident already covered: nothing to site."""
    return SitingResult(facility_type, objective,
                        gpd.GeoDataFrame(columns=SITE_COLUMNS, geometry=[], crs=crs),
                        gpd.GeoDataFrame(columns=CANDIDATE_COLUMNS, geometry=[], crs=crs),
                        pd.DataFrame(columns=ASSIGNMENT_COLUMNS),
                        gpd.GeoDataFrame(columns=UNREACHABLE_COLUMNS, geometry=[], crs=crs),
                        summary)


def _shares(pop: np.ndarray, need: np.ndarray, new: float) -> dict:
    """Share of all residents covered before and after the new sites."""
    tot = pop.sum()
    before = float(pop[~need].sum() / tot) if tot > 0 else float("nan")
    after = float((pop[~need].sum() + new) / tot) if tot > 0 else float("nan")
    return {"share_covered_before": before, "share_covered_after": after}


def _solution_summary(sol) -> dict:
    """The solver's answer for the summary: objective, bound, gap, status, limits."""
    return {"objective_value": sol.objective, "bound": sol.bound, "gap": sol.gap, "status": sol.status,
            "solver": sol.solver, "time_limit_s": sol.time_limit_s, "mip_rel_gap": sol.mip_rel_gap,
            "nodes": sol.nodes, "greedy_objective": sol.greedy_objective}


def _unreachable(homes, home_ids, unit, existing, di, A: csr_matrix, w, facility_type: str, walk: float,
                 objective: str) -> tuple[gpd.GeoDataFrame, np.ndarray]:
    """The uncovered homes no candidate reaches (rows of ``A`` without an entry), said in a
    warning (how many, where), and the mask of those rows."""
    gone = np.diff(A.indptr) == 0
    out = gpd.GeoDataFrame({
        "home_id": home_ids[di[gone]], "unit_id": unit[di[gone]], "facility_type": facility_type,
        "population": w[gone], "existing_distance_m": existing[di[gone]]},
        geometry=homes.geometry.to_numpy()[di[gone]], crs=homes.crs)
    if gone.any():
        warnings.warn(
            f"{facility_type}: {int(gone.sum()):,} uncovered homes ({w[gone].sum():,.0f} residents) "
            f"have no candidate site within {walk:g} m walk, in {_describe_places(unit[di[gone]], w[gone])}"
            f"{' (LSCP cannot cover everyone)' if objective == 'lscp' else ''}: they are listed as "
            "unreachable and the sites are chosen for the other homes. Fix: add candidate sites near "
            "them (or accept the gap: a walk link or a new path may be the answer)", PlanWarning, stacklevel=3)
    return out, gone


def _solve(A: csr_matrix, w: np.ndarray, dem, caps, objective: str, p, facility_type: str, walk: float,
           unit: np.ndarray, **kw) -> tuple:
    """The model and its answer: (Solution, CoverageModel, chosen columns, shares or None);
    with capacities (``dem`` given) the demand is checked against them first."""
    if dem is not None:
        _check_capacity(A, dem, caps, objective, p, facility_type, unit, w)
    if dem is None:
        model = reduce_model(A, w, objective=objective)
        sol = solve_mclp(model, p, **kw) if objective == "mclp" else solve_lscp(model, **kw)
        out = (sol, model, model.columns[sol.chosen], None)
    else:
        out = solve_capacitated(A, w, dem, caps, objective=objective, p=p, **kw)
    if out[0].status == "infeasible":
        raise FeasibilityError(
            f"{facility_type}: capacity below demand: {A.shape[0]:,} uncovered homes need "
            f"{(dem if dem is not None else w).sum():,.0f} places but no choice of candidate sites can "
            f"serve them all within {walk:g} m. Fix: raise the capacity per site, add candidate sites, "
            "or use objective = \"mclp\" to serve the most")
    return out


def _rescore_unused(sol, objective: str, n_chosen: int, n_sites: int) -> int:
    """How many opened sites serve nobody (left out of the sites); an LSCP answer with
    fewer sites covers the same homes, so it is a better answer: its objective and gap
    are re-scored."""
    unused = int(n_chosen - n_sites)
    if unused and objective == "lscp":
        sol.objective = float(n_sites)
        if np.isfinite(sol.bound) and sol.objective > 0:
            sol.gap = max(0.0, (sol.objective - sol.bound) / sol.objective)
    return unused


def _empty_summary(summary: dict, total: float) -> dict:
    return {"unreachable_homes": 0, "residents_unreachable": 0.0, "candidates": 0,
            "candidate_source": "", "sites": 0, "sites_unused_dropped": 0, "residents_covered_new": 0.0,
            "residents_uncovered_after": 0.0,
            "share_covered_before": 1.0 if summary["residents"] > 0 else float("nan"),
            "share_covered_after": 1.0 if summary["residents"] > 0 else float("nan"),
            "objective_value": 0.0, "bound": 0.0, "gap": 0.0, "status": "empty", "solver": "none",
            "time_limit_s": settings.siting_time_limit_s, "mip_rel_gap": settings.siting_mip_rel_gap,
            "nodes": 0, "greedy_objective": 0.0, "matrix_s": 0.0, "solve_s": 0.0, "total_s": total}


def _check_capacity(A: csr_matrix, dem: np.ndarray, caps: np.ndarray, objective: str, p: int | None,
                    facility_type: str, unit: np.ndarray, w: np.ndarray) -> None:
    """Demand the candidates cannot serve: an error for LSCP, a warning for MCLP."""
    reach = np.diff(A.indptr) > 0
    B = A.copy()
    B.data = caps[B.indices]
    row_cap = np.asarray(B.sum(axis=1)).ravel()
    short = reach & (dem > row_cap + 1e-9)
    if objective == "lscp":
        total_cap = float(caps[np.unique(A.indices)].sum())
        if short.any() or dem[reach].sum() > total_cap + 1e-9:
            bad = short if short.any() else reach
            raise FeasibilityError(
                f"{facility_type}: capacity below demand: {int(bad.sum()):,} uncovered homes "
                f"({w[bad].sum():,.0f} residents, {dem[bad].sum():,.0f} persons of demand, in "
                f"{_describe_places(unit[bad], w[bad])}) need more places than all candidate sites "
                f"within reach can offer ({'per home' if short.any() else f'{total_cap:,.0f} in all'}). "
                "Fix: raise the capacity per site, add candidate sites, or use objective = \"mclp\"")
        return
    best = float(np.sort(caps)[::-1][:p].sum())
    if dem[reach].sum() > best + 1e-9:
        warnings.warn(
            f"{facility_type}: capacity below demand: {p} new sites offer at most {best:,.0f} places "
            f"for {dem[reach].sum():,.0f} persons of demand among {int(reach.sum()):,} uncovered homes: "
            "the sites serve the most they can. Fix: raise p or the capacity per site to serve everyone",
            PlanWarning, stacklevel=3)


def _results(A: csr_matrix, cand: gpd.GeoDataFrame, caps, chosen: np.ndarray, share: csr_matrix | None,
             model: CoverageModel, facility_type: str, name_zh: str, hid: np.ndarray, hunit: np.ndarray,
             w: np.ndarray, dem, units, crs) -> tuple:
    """Chosen sites, home assignment and the candidate table, from the solution."""
    n = len(cand)
    C = A.tocsc()   # (each column's homes ascending: the residents summed in that order)
    if (C.data == 0).any():
        C.eliminate_zeros()
    in_reach = np.diff(C.indptr).astype(np.int64)
    Bw = type(C)((np.asarray(w, dtype=np.float64)[C.indices], C.indices, C.indptr), shape=C.shape)
    res_reach = np.asarray(Bw.sum(axis=0)).ravel()
    if share is None:  # each covered home to its nearest chosen site
        S = A[:, chosen].tocoo()
        o = np.lexsort((S.col, S.data, S.row))
        r, c, d = S.row[o], S.col[o], S.data[o]
        first = np.r_[True, r[1:] != r[:-1]] if len(r) else np.zeros(0, bool)
        r, c, d = r[first], c[first], d[first]
        frac = np.ones(len(r))
    else:  # capacitated: the shares of the solution (input rows × input columns)
        Sh = share[:, chosen].tocoo()
        r = Sh.row.astype(np.int64)
        c = Sh.col.astype(np.int64)
        frac = Sh.data
        keep = frac > 1e-9
        r, c, frac = r[keep], c[keep], frac[keep]
        Ad = A[:, chosen].tocsr()
        d = np.asarray(Ad[r, c]).ravel()
        o = np.lexsort((c, r))
        r, c, frac, d = r[o], c[o], frac[o], d[o]
    # a chosen site serving nobody (every home it reaches is nearer another chosen site,
    # or a time-limited answer opened it for nothing) is left out: coverage is unchanged
    used = np.unique(c)
    if len(used) < len(chosen):
        renum = np.full(len(chosen), -1, np.int64)
        renum[used] = np.arange(len(used))
        chosen, c = chosen[used], renum[c]
    served = w[r] * frac
    covered_by = np.bincount(c, weights=served, minlength=len(chosen))
    homes_by = np.bincount(c, minlength=len(chosen))
    demand_by = np.bincount(c, weights=(dem[r] * frac) if dem is not None else np.zeros(len(r)),
                            minlength=len(chosen))
    order = np.lexsort((cand["candidate_id"].to_numpy()[chosen].astype(str), -covered_by))
    site_ids = np.empty(len(chosen), dtype=object)
    site_ids[order] = [f"{facility_type}-{k + 1:02d}" for k in range(len(chosen))]
    geoms = cand.geometry.to_numpy()[chosen]
    sites = gpd.GeoDataFrame({
        "site_id": site_ids, "facility_type": facility_type, "facility_name_zh": name_zh,
        "candidate_id": cand["candidate_id"].to_numpy()[chosen], "source": cand["source"].to_numpy()[chosen],
        "name": cand["name"].to_numpy()[chosen], "unit_id": _units_of(geoms, units, crs),
        "residents_covered": covered_by, "homes_covered": homes_by,
        "residents_in_reach": res_reach[chosen],
        "capacity": caps[chosen] if caps is not None else np.nan,
        "demand_served": demand_by if dem is not None else np.nan}, geometry=geoms, crs=crs)
    sites = sites.iloc[order].reset_index(drop=True)
    assign = pd.DataFrame({"home_id": hid[r], "unit_id": hunit[r], "facility_type": facility_type,
                           "site_id": site_ids[c], "distance_m": d, "share": frac, "residents": served})
    assign = assign.sort_values(["home_id", "site_id"], kind="stable").reset_index(drop=True)
    in_model = np.zeros(n, bool)
    in_model[model.columns] = True
    is_chosen = np.zeros(n, bool)
    is_chosen[chosen] = True
    sid = np.full(n, None, dtype=object)
    sid[chosen] = site_ids
    cand_out = gpd.GeoDataFrame({
        "candidate_id": cand["candidate_id"].to_numpy(), "facility_type": facility_type,
        "source": cand["source"].to_numpy(), "homes_in_reach": in_reach, "residents_in_reach": res_reach,
        "in_model": in_model, "chosen": is_chosen, "site_id": sid},
        geometry=cand.geometry.to_numpy(), crs=crs)
    return sites, assign, cand_out


# ------------------------------------------------------------------------ scripting
def site_from_files(*, network: str, homes: str, facilities: str, facility_type: str, out: str,
                    objective: str = "mclp", p: int | None = None, candidates: str | None = None,
                    network_layer: str | None = None, homes_layer: str | None = None,
                    homes_role: str = "compounds", facilities_layer: str | None = None,
                    candidates_layer: str | None = None, coords: str | None = None,
                    capacity: float | None = None, demand_share: float | None = None,
                    time_limit_s: float | None = None, mip_rel_gap: float | None = None) -> str:
    """Facility siting from files (``geotijian site``): writes a GeoPackage.

    Layers written atomically to ``out``: ``new_sites`` (chosen sites), ``candidate_sites``,
    ``unreachable_homes`` and the table ``site_assignment``. Returns the summary lines.
    """
    from ..io import read_layer
    from ..io.atomic import atomic_path, fixed_gdal_date
    from ..io.osm import load_osm
    from ..network import build_network

    net_path = Path(network)
    if net_path.name.endswith((".osm", ".osm.pbf", ".pbf", ".xml")):
        graph = load_osm(net_path).graph
    else:
        graph = read_layer(net_path, "roads", layer=network_layer)
    net = build_network(graph)
    h = read_layer(homes, homes_role, layer=homes_layer)
    fac = read_layer(facilities, "facilities", coords=coords, layer=facilities_layer)
    cand = read_layer(candidates, "sites", layer=candidates_layer) if candidates else None
    res = site_facilities(net, h, fac, facility_type=facility_type, objective=objective, p=p,
                          candidates=cand, capacity=capacity, demand_share=demand_share,
                          time_limit_s=time_limit_s, mip_rel_gap=mip_rel_gap)
    import pyogrio

    with atomic_path(out) as tmp, fixed_gdal_date():
        pyogrio.write_dataframe(res.sites, tmp, layer="new_sites", driver="GPKG")
        pyogrio.write_dataframe(res.candidates, tmp, layer="candidate_sites", driver="GPKG")
        pyogrio.write_dataframe(res.unreachable, tmp, layer="unreachable_homes", driver="GPKG")
        pyogrio.write_dataframe(res.assignment, tmp, layer="site_assignment", driver="GPKG")
    lines = [f"wrote {out}", res.describe()]
    if len(res.sites):
        lines.append(res.sites[["site_id", "candidate_id", "residents_covered", "homes_covered"]]
                     .to_string(index=False))
    return "\n".join(lines)
