"""Spatial indicators by check-up unit, town (街镇) and district.

Every function takes plain inputs (GeoDataFrames in a metric CRS, a home × facility-type
distance table, a sparse home × facility distance matrix) and returns a *long* table
``level, area_id, code, value`` with one row per unit, per town and one district row.

Aggregation rule: an indicator is a ratio of two sums (covered residents / residents,
park area / residents, road length / land area ...). Units, towns and the district each
take the ratio of *their own* sums, so a town or district value is computed from the data
and never as an average of unit values. Areas are the units themselves, their union by
``town_code`` (towns) and the union of all units (district).

Units: distances in metres, areas in m² (per-capita values in m²/person), densities per
km², coverage and shares in percent (0-100), so they compare directly with the reference
values of the catalogue (e.g. ``>80%``).
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .. import settings
from ..errors import LayerError, RepairWarning
from ..units.geometry import query_pairs
from .catalogue import _sort_long, facility_walk_distances, park_classes

__all__ = [
    "LONG_COLUMNS", "URBAN_ROAD_CLASSES", "population_coverage", "network_coverage", "transit_coverage",
    "life_circle_attainment", "classify_parks", "park_service_coverage", "area_per_capita",
    "points_per_1000", "facilities_per_1000",
    "road_network_density", "intersection_points", "intersection_density", "building_indicators",
    "old_compound_share", "imagery_indicators", "compute_indicators", "homes_from_coverage",
]

LONG_COLUMNS = ["level", "area_id", "code", "value"]


# --------------------------------------------------------------------------- helpers

def _require_metric(gdf: gpd.GeoDataFrame, layer: str) -> None:
    if gdf.crs is None:
        raise LayerError(layer, "the layer has no CRS", fix=f"set its CRS, then to_crs({settings.metric_crs!r})")
    if gdf.crs.is_geographic:
        raise LayerError(layer, f"CRS {gdf.crs.to_string()} is geographic (degrees); areas and lengths need metres",
                         fix=f"reproject first: gdf.to_crs({settings.metric_crs!r})")


def _require_columns(df: pd.DataFrame, layer: str, cols: Iterable[str]) -> None:
    missing = [c for c in cols if c not in df.columns]
    if missing:
        raise LayerError(layer, f"missing column(s) {', '.join(missing)}",
                         fix=f"the layer needs {', '.join(cols)}")


#: Frames :func:`_check_units` returned (id → frame, while the frame lives): checking one of
#: them again gives an equal frame, so it is returned as it is (each indicator checks its
#: units; ``compute_indicators`` passes the same checked frame to 40 of them). The frames
#: never leave this package and are never modified in place.
_CHECKED_UNITS: weakref.WeakValueDictionary = weakref.WeakValueDictionary()


def _check_units(units: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    if _CHECKED_UNITS.get(id(units)) is units:
        return units
    _require_columns(units, "units", ("unit_id", "population", "geometry"))
    _require_metric(units, "units")
    u = units.copy()
    u["unit_id"] = u["unit_id"].astype(str)
    if "town_code" not in u.columns:
        u["town_code"] = "town"
    u["town_code"] = u["town_code"].astype(str)
    dup = u["unit_id"].duplicated()
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise LayerError("units", "duplicate unit_id", feature=i, feature_id=u["unit_id"].iloc[i],
                         count=int(dup.sum()), fix="unit IDs must be unique")
    pop = pd.to_numeric(u["population"], errors="coerce")
    if pop.isna().any() or (pop < 0).any():
        i = int(np.flatnonzero((pop.isna() | (pop < 0)).to_numpy())[0])
        raise LayerError("units", f"population {u['population'].iloc[i]!r} is not a non-negative number",
                         feature=i, feature_id=u["unit_id"].iloc[i], fix="fill in the unit population")
    u["population"] = pop.astype(float)
    out = u.sort_values("unit_id", kind="stable").reset_index(drop=True)
    _CHECKED_UNITS[id(out)] = out
    return out


def _level_sums(frame: pd.DataFrame, cols: list[str], units: gpd.GeoDataFrame,
                district_id: str) -> dict[str, pd.DataFrame]:
    """Sums of ``cols`` per unit, per town and for the district (0 where nothing falls)."""
    town_of = dict(zip(units["unit_id"], units["town_code"], strict=True))
    f = frame[["unit_id", *cols]].copy()
    f["town_code"] = f["unit_id"].map(town_of)
    unit_ids = units["unit_id"].tolist()
    town_ids = sorted(units["town_code"].unique())
    by_unit = f.groupby("unit_id")[cols].sum().reindex(unit_ids, fill_value=0.0)
    by_town = f.groupby("town_code")[cols].sum().reindex(town_ids, fill_value=0.0)
    dist = pd.DataFrame([f[cols].sum()], index=[district_id])
    return {"unit": by_unit, "town": by_town, "district": dist}


def _long(values: dict[str, pd.Series], code: str) -> pd.DataFrame:
    """One long table (``level, area_id, code, value``) of the values of each level, in order."""
    ids = [np.asarray(s.index.astype(str), dtype=object) for s in values.values()]
    return pd.DataFrame({"level": np.repeat(np.array(list(values), dtype=object), [len(i) for i in ids]),
                         "area_id": np.concatenate(ids) if ids else np.array([], dtype=object), "code": code,
                         "value": np.concatenate([s.to_numpy(dtype=float) for s in values.values()])})


def _ratio(num: dict[str, pd.DataFrame], ncol: str, den: dict[str, pd.DataFrame], dcol: str,
           code: str, scale: float = 1.0) -> pd.DataFrame:
    out = {}
    for lvl in ("unit", "town", "district"):
        n = num[lvl][ncol].to_numpy(dtype=float)
        d = den[lvl][dcol].reindex(num[lvl].index).to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            v = np.where(d > 0, n / np.where(d > 0, d, 1.0) * scale, np.nan)
        out[lvl] = pd.Series(v, index=num[lvl].index)
    return _long(out, code)


def _unit_population(units: gpd.GeoDataFrame, district_id: str) -> dict[str, pd.DataFrame]:
    return _level_sums(units[["unit_id", "population"]], ["population"], units, district_id)


def _unit_area(units: gpd.GeoDataFrame, district_id: str) -> dict[str, pd.DataFrame]:
    f = pd.DataFrame({"unit_id": units["unit_id"], "area_m2": shapely.area(units.geometry.values)})
    return _level_sums(f, ["area_m2"], units, district_id)


def _clip_to_units(features: gpd.GeoDataFrame, units: gpd.GeoDataFrame, layer: str) -> pd.DataFrame:
    """Pieces of each feature inside each unit: columns ``feature`` (row), ``unit_id``, ``geometry``."""
    _require_metric(features, layer)
    if not features.crs.equals(units.crs):
        raise LayerError(layer, f"CRS {features.crs.to_string()} differs from the units' {units.crs.to_string()}",
                         fix="reproject it: gdf.to_crs(units.crs)")
    geoms = features.geometry.values
    ugeoms = units.geometry.values
    tree = shapely.STRtree(ugeoms)
    fi, ui = query_pairs(tree, np.asarray(geoms), "intersects")  # (the units prepared, not every feature)
    shapely.prepare(ugeoms)
    inside = shapely.contains_properly(ugeoms[ui], geoms[fi])   # wholly inside: no clipping needed
    pieces = geoms[fi].copy()
    pieces[~inside] = shapely.intersection(geoms[fi][~inside], ugeoms[ui][~inside])
    return pd.DataFrame({"feature": fi, "unit_id": units["unit_id"].to_numpy()[ui], "geometry": pieces})


def homes_from_coverage(coverage: Any) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, float]]:
    """Homes, distance table and walking distances from ``access.service_coverage``.

    Parameters
    ----------
    coverage : CoverageResult or DataFrame
        The result (``.per_home``, ``.walk_distance_m``) or its ``per_home`` table
        (``home_id, unit_id, population, dist_<type>...``).

    Returns
    -------
    tuple
        ``homes`` (``home_id, unit_id, population``), ``distances`` (index ``home_id``, one
        column per type, metres) and ``walk_distances`` (empty when only a table is given).
        Homes the coverage step could not place in a unit (``"<unassigned>"``) are kept;
        :func:`compute_indicators` reports and leaves them out.
    """
    per_home = getattr(coverage, "per_home", coverage)
    _require_columns(per_home, "coverage per_home", ("home_id", "unit_id", "population"))
    dcols = [c for c in per_home.columns if str(c).startswith("dist_")]
    if not dcols:
        raise LayerError("coverage per_home", "no dist_<type> columns",
                         fix="pass access.service_coverage(...) or its per_home table")
    homes = pd.DataFrame({"home_id": per_home["home_id"].to_numpy(),
                          "unit_id": per_home["unit_id"].astype(object).to_numpy(),
                          "population": per_home["population"].to_numpy()})
    dist = pd.DataFrame({c[len("dist_"):]: per_home[c].to_numpy(dtype=float) for c in dcols},
                        index=pd.Index(per_home["home_id"].to_numpy(), name="home_id"))
    walk = dict(getattr(coverage, "walk_distance_m", {}) or {})
    return homes, dist, walk


def _drop_unassigned(homes: pd.DataFrame, units: gpd.GeoDataFrame) -> pd.DataFrame:
    """Homes outside every unit: reported (warning + attrs) and left out of the indicators."""
    known = homes["unit_id"].astype(str).isin(set(units["unit_id"].astype(str))).to_numpy()
    if known.all():
        return homes
    pop = float(pd.to_numeric(homes.loc[~known, "population"], errors="coerce").sum())
    warnings.warn(f"homes: {int((~known).sum())} home(s) ({pop:,.0f} residents) are in no unit and are left out of "
                  "the unit, town and district indicators", RepairWarning, stacklevel=3)
    out = homes[known].reset_index(drop=True)
    out.attrs["unassigned"] = homes.loc[~known, "home_id"].tolist()
    return out


def _homes_frame(homes: pd.DataFrame, units: gpd.GeoDataFrame) -> pd.DataFrame:
    _require_columns(homes, "homes", ("home_id", "unit_id", "population"))
    h = pd.DataFrame({"home_id": homes["home_id"].to_numpy(), "unit_id": homes["unit_id"].astype(str).to_numpy(),
                      "population": pd.to_numeric(homes["population"], errors="coerce").to_numpy(dtype=float)})
    bad = np.isnan(h["population"].to_numpy()) | (h["population"].to_numpy() < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise LayerError("homes", "population is missing or negative", feature=i, feature_id=h["home_id"].iloc[i],
                         count=int(bad.sum()), fix="fill in the home's residents (0 if empty)")
    unknown = ~h["unit_id"].isin(set(units["unit_id"]))
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise LayerError("homes", f"unit_id {h['unit_id'].iloc[i]!r} is not in the units layer", feature=i,
                         feature_id=h["home_id"].iloc[i], count=int(unknown.sum()),
                         fix="assign homes to this year's units (units.assign_homes) before computing indicators")
    return h


def _distances_for(homes: pd.DataFrame, distances: pd.DataFrame, types: Iterable[str]) -> np.ndarray:
    types = list(types)
    missing = [t for t in types if t not in distances.columns]
    if missing:
        raise LayerError("distances", f"no distance column for facility type(s) {', '.join(missing)}",
                         fix="run access.nearest_facility_distance with these types, or drop them from the list")
    lost = ~pd.Index(homes["home_id"]).isin(distances.index)
    if lost.any():
        i = int(np.flatnonzero(lost)[0])
        raise LayerError("distances", f"home {homes['home_id'].iloc[i]!r} has no row in the distance table",
                         feature=i, feature_id=homes["home_id"].iloc[i], count=int(lost.sum()),
                         fix="compute distances for every home (inf where no facility is reachable)")
    d = distances.reindex(homes["home_id"].to_numpy())
    # NaN = not computed for that home: treat as unreachable (inf) and say so.
    arr = d[types].to_numpy(dtype=float)
    nan = np.isnan(arr)
    if nan.any():
        warnings.warn(f"{int(nan.sum())} missing home-facility distances treated as unreachable (inf)",
                      RepairWarning, stacklevel=3)
        arr = np.where(nan, np.inf, arr)
    return arr


# --------------------------------------------------------------------------- coverage

def population_coverage(homes: pd.DataFrame, covered: np.ndarray, units: gpd.GeoDataFrame, code: str, *,
                        district_id: str = "district") -> pd.DataFrame:
    """Population-weighted share (%) of residents whose home satisfies ``covered``.

    Parameters
    ----------
    homes : DataFrame
        ``home_id, unit_id, population`` (persons).
    covered : array of bool
        One flag per home.
    units : GeoDataFrame
        ``unit_id, town_code, population, geometry``.
    code : str
        Indicator code of the result.

    Returns
    -------
    DataFrame
        ``level, area_id, code, value`` with value = Σ population × covered / Σ population × 100.
    """
    u = _check_units(units)
    return _coverage_of(_homes_frame(homes, u), covered, u, code, district_id)


def _coverage_of(h: pd.DataFrame, covered: np.ndarray, u: gpd.GeoDataFrame, code: str,
                 district_id: str) -> pd.DataFrame:
    """:func:`population_coverage` of homes and units checked already (``_homes_frame``, ``_check_units``)."""
    f = pd.DataFrame({"unit_id": h["unit_id"], "pop": h["population"],
                      "cov": h["population"].to_numpy() * np.asarray(covered, dtype=float)})
    sums = _level_sums(f, ["pop", "cov"], u, district_id)
    return _ratio(sums, "cov", sums, "pop", code, 100.0)


def network_coverage(homes: pd.DataFrame, distances: pd.DataFrame, units: gpd.GeoDataFrame, *,
                     walk_distances: Mapping[str, float] | None = None, types: Iterable[str] | None = None,
                     district_id: str = "district") -> pd.DataFrame:
    """Network (walking) coverage of each facility type, population-weighted (``cov_<type>``).

    Parameters
    ----------
    homes : DataFrame
        ``home_id, unit_id, population`` (compounds, buildings or population points).
    distances : DataFrame
        Indexed by ``home_id``, one column per facility type code, network distance in
        metres to the nearest facility of that type, ``inf`` when none is reachable
        (``geotijian.access.nearest_facility_distance``).
    units : GeoDataFrame
        ``unit_id, town_code, population, geometry`` in a metric CRS.
    walk_distances : mapping, optional
        Walking distance (m) per type; default: ``facilities.csv`` (GB 50180-2018 App. C,
        e.g. kindergarten 300 m, primary school 500 m, middle school 1,000 m).
    types : iterable of str, optional
        Types to compute (default: every distance column with a walking distance).

    Returns
    -------
    DataFrame
        ``level, area_id, code, value``: code ``cov_<type>``, value in % of residents
        within the type's walking distance (a home at exactly the distance is covered).
    """
    wd = dict(walk_distances) if walk_distances is not None else facility_walk_distances()
    types = [t for t in (types if types is not None else distances.columns) if t in wd]
    u = _check_units(units)
    h = _homes_frame(homes, u)
    d = _distances_for(h, distances, types)
    parts = [_coverage_of(h, d[:, k] <= wd[t], u, f"cov_{t}", district_id)
             for k, t in enumerate(types)]
    return _sort_long(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame(columns=LONG_COLUMNS)


def transit_coverage(homes: pd.DataFrame, distances: pd.DataFrame, units: gpd.GeoDataFrame, *,
                     bus_type: str = "bus_stop", metro_type: str = "metro_station",
                     bus_distance_m: float = 500.0, bus_distance_short_m: float = 300.0,
                     metro_distance_m: float = 800.0, district_id: str = "district") -> pd.DataFrame:
    """Bus-stop and rail-station walking coverage (``t_bus_stop_coverage``, ``t_metro_coverage``).

    Bus: 500 m outside Shanghai's Inner Ring (``t_bus_stop_coverage``) and 300 m
    (``g_bus_stop_300_coverage``), Shanghai 2024 draft standard (S14, unconfirmed draft).
    Rail: 800 m to station entrances (GB 50180-2018, recalled; measure to
    ``railway=subway_entrance`` points). Values in % of residents. A type without a
    distance column is skipped.
    """
    parts = []
    u = _check_units(units)
    h = _homes_frame(homes, u)
    if bus_type in distances.columns:
        d = _distances_for(h, distances, [bus_type])[:, 0]
        for code, dist in (("t_bus_stop_coverage", bus_distance_m), ("g_bus_stop_300_coverage", bus_distance_short_m)):
            parts.append(_coverage_of(h, d <= dist, u, code, district_id))
    if metro_type in distances.columns:
        d = _distances_for(h, distances, [metro_type])[:, 0]
        parts.append(_coverage_of(h, d <= metro_distance_m, u, "t_metro_coverage", district_id))
    return _sort_long(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame(columns=LONG_COLUMNS)


def life_circle_attainment(homes: pd.DataFrame, distances: pd.DataFrame, units: gpd.GeoDataFrame, *,
                           required: Iterable[str], walk_distances: Mapping[str, float] | None = None,
                           district_id: str = "district") -> pd.DataFrame:
    """15-minute life-circle attainment (``d_15min_circle_attainment``), % of residents.

    A home attains the life circle when, for *every* required facility type, the nearest
    facility is within that type's walking distance (GB 50180-2018 App. C; local indicator
    十五分钟生活圈达标率, S28). Population-weighted.

    Parameters
    ----------
    required : iterable of str
        Facility type codes that must all be reached (e.g. the ``required`` types of
        ``facilities.csv`` with a walking distance).
    """
    wd = dict(walk_distances) if walk_distances is not None else facility_walk_distances()
    req = list(required)
    if not req:
        raise LayerError("distances", "no required facility types for the life-circle attainment",
                         fix="pass required=[...] facility type codes")
    missing = [t for t in req if t not in wd]
    if missing:
        raise LayerError("facility catalogue", f"no walking distance for {', '.join(missing)}",
                         fix="give walk_distances for these types")
    u = _check_units(units)
    h = _homes_frame(homes, u)
    d = _distances_for(h, distances, req)
    ok = np.all(d <= np.array([wd[t] for t in req])[None, :], axis=1)
    return _coverage_of(h, ok, u, "d_15min_circle_attainment", district_id)


# --------------------------------------------------------------------------- parks and green

def classify_parks(parks: gpd.GeoDataFrame, *, classes: Any = None) -> gpd.GeoDataFrame:
    """Tag each park with its size class and service radius.

    Parks sharing a ``park_id`` are one park (their parts are merged before measuring).
    Area is the polygon area in m² (metric CRS). A park smaller than every class gets
    ``park_class = None`` and ``radius_m = NaN`` (it serves nobody under the definition).

    Returns
    -------
    GeoDataFrame
        ``park_id, area_m2, park_class, radius_m, geometry``, sorted by ``park_id``.
    """
    _require_metric(parks, "parks")
    cls = park_classes(classes)
    p = parks.copy()
    if "park_id" not in p.columns:
        p["park_id"] = [f"P{i + 1}" for i in range(len(p))]
    p["park_id"] = p["park_id"].astype(str)
    if p["park_id"].duplicated().any():
        p = p[["park_id", "geometry"]].dissolve(by="park_id", as_index=False)
    p = p[["park_id", "geometry"]].copy()
    area = shapely.area(p.geometry.values)
    p["area_m2"] = area
    lo = cls["min_area_m2"].to_numpy()
    hi = cls["max_area_m2"].to_numpy()
    inside = (area[:, None] >= lo[None, :]) & (area[:, None] < hi[None, :])
    # a park matching several classes takes the largest radius
    radius = np.where(inside, cls["radius_m"].to_numpy()[None, :], -1.0)
    k = radius.argmax(axis=1)
    has = inside.any(axis=1)
    p["park_class"] = np.where(has, cls["class_code"].to_numpy()[k], None)
    p["radius_m"] = np.where(has, radius[np.arange(len(p)), k], np.nan)
    return p[["park_id", "area_m2", "park_class", "radius_m", "geometry"]].sort_values(
        "park_id", kind="stable").reset_index(drop=True)


def park_service_coverage(residential: gpd.GeoDataFrame, parks: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *,
                          classes: Any = None, method: str = "buffer", distances: pd.DataFrame | None = None,
                          id_field: str = "compound_id", district_id: str = "district") -> pd.DataFrame:
    """Park service-radius coverage of residential land (``u_park_radius_coverage``), %.

    Definition (2021 MOHURD check-up, S15; GB 55014-2021 cl. 2.1.3 requires > 80 %, S16):
    residential land within the service radius of a park ÷ all residential land. Size
    classes and radii come from a configuration table (:func:`park_classes`; default parks
    2,000-5,000 m² → 300 m, ≥ 5,000 m² → 500 m).

    Parameters
    ----------
    residential : GeoDataFrame
        Residential land polygons (compounds / ``landuse=residential``), metric CRS.
    parks : GeoDataFrame
        Park polygons (``park_id`` optional).
    units : GeoDataFrame
        ``unit_id, town_code, population, geometry``.
    classes : table, optional
        Park classes (see :func:`park_classes`).
    method : {"buffer", "network"}
        ``"buffer"``: straight-line distance from the park edge: the served zone is the
        union of each park buffered by its radius, and the *area* of residential land
        inside it counts (a polygon can be partly served). Buffers over-claim across
        rivers, rail and walls (NOTES (d) 1), so formal findings should use the network.
        ``"network"``: ``distances`` gives, per residential polygon (indexed by
        ``id_field``), the network distance in metres to the nearest park of each class
        (columns = ``class_code``; e.g. from ``access.nearest_facility_distance`` with
        parks typed by :func:`classify_parks`); a polygon is served wholly when any class is
        within its radius, and counts with its whole area.

    Returns
    -------
    DataFrame
        ``level, area_id, code, value`` (value in % of residential land area, NaN where a
        unit has no residential land).
    """
    _require_metric(residential, "residential land")
    u = _check_units(units)
    res = residential.reset_index(drop=True)
    pieces = _clip_to_units(res, u, "residential land")
    area = shapely.area(pieces["geometry"].to_numpy())
    if method == "buffer":
        pk = classify_parks(parks, classes=classes)
        pk = pk[pk["park_class"].notna()]
        if len(pk):
            if pk.crs != res.crs:
                raise LayerError("parks", "CRS differs from the residential land", fix="reproject to the same CRS")
            zone = shapely.union_all(shapely.buffer(pk.geometry.values, pk["radius_m"].to_numpy(), quad_segs=16))
            served = _area_within(pieces["geometry"].to_numpy(), zone)
        else:
            served = np.zeros(len(pieces))
    elif method == "network":
        if distances is None:
            raise LayerError("park distances", "method='network' needs the distances table",
                             fix="pass distances= (residential polygon × park class, metres)")
        cls = park_classes(classes)
        _require_columns(res, "residential land", (id_field,))
        ids = res[id_field].astype(str).to_numpy()[pieces["feature"].to_numpy()]
        dtab = distances.copy()
        dtab.index = dtab.index.astype(str)
        missing = ~pd.Index(ids).isin(dtab.index)
        if missing.any():
            i = int(np.flatnonzero(missing)[0])
            raise LayerError("park distances", f"no distance row for residential polygon {ids[i]!r}",
                             feature_id=ids[i], count=int(missing.sum()), fix="compute distances for every polygon")
        ok = np.zeros(len(ids), dtype=bool)
        for code, radius in zip(cls["class_code"], cls["radius_m"], strict=True):
            if code in dtab.columns:
                ok |= dtab[code].reindex(ids).to_numpy(dtype=float) <= radius
        served = np.where(ok, area, 0.0)
    else:
        raise ValueError(f"method must be 'buffer' or 'network', got {method!r}")
    f = pd.DataFrame({"unit_id": pieces["unit_id"], "land": area, "served": served})
    sums = _level_sums(f, ["land", "served"], u, district_id)
    return _ratio(sums, "served", sums, "land", "u_park_radius_coverage", 100.0)


def _area_within(geoms: np.ndarray, zone: Any) -> np.ndarray:
    """Area (m²) of each geometry inside ``zone``.

    Geometries wholly inside or outside the (prepared) zone are settled by predicates; the
    others are intersected with the zone clipped to their bounding box, so no intersection
    walks the whole district-wide zone (≈ 30× faster at district scale).
    """
    out = np.zeros(len(geoms))
    if not len(geoms) or zone is None or shapely.is_empty(zone):
        return out
    shapely.prepare(zone)
    inside = shapely.contains_properly(zone, geoms)
    out[inside] = shapely.area(geoms[inside])
    edge = shapely.intersects(zone, geoms) & ~inside
    if edge.any():
        bd = shapely.bounds(geoms[edge])
        local = shapely.intersection(shapely.box(bd[:, 0], bd[:, 1], bd[:, 2], bd[:, 3]), zone)
        out[edge] = shapely.area(shapely.intersection(geoms[edge], local))
    return out


def area_per_capita(polygons: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, code: str,
                    layer: str = "polygons", district_id: str = "district") -> pd.DataFrame:
    """Polygon area per resident (m²/person): public green (``u_park_green_pc``), sports
    grounds (``c_community_sports_area_pc``).

    Polygons are clipped to the units (a park across two units counts in each by its part);
    overlapping polygons of one layer are merged first so no area counts twice. Residents
    from ``units.population``. Reference: park green > 8.0 m²/person (GB 55014-2021
    cl. 2.1.3, S16, city level); 10-min residential-area public green ≥ 1.0 m²/person (S02).
    """
    u = _check_units(units)
    _require_metric(polygons, layer)
    merged = gpd.GeoDataFrame(geometry=shapely.get_parts(np.atleast_1d(
        shapely.union_all(polygons.geometry.values))), crs=polygons.crs) if len(polygons) else polygons
    pieces = _clip_to_units(merged, u, layer) if len(merged) else pd.DataFrame(
        {"unit_id": [], "geometry": []})
    f = pd.DataFrame({"unit_id": pieces["unit_id"], "area": shapely.area(pieces["geometry"].to_numpy())
                      if len(pieces) else np.array([], dtype=float)})
    num = _level_sums(f, ["area"], u, district_id)
    return _ratio(num, "area", _unit_population(u, district_id), "population", code)


def points_per_1000(points: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, code: str, layer: str = "points",
                    district_id: str = "district") -> pd.DataFrame:
    """Points located in each area per 1,000 residents (e.g. ``g_complaint_rate``).

    Polygons are located by their representative point; a point on a shared boundary
    goes to the unit with the smallest ID. Points outside every unit count nowhere; their
    number is in ``result.attrs["outside"]``.
    """
    u = _check_units(units)
    _require_metric(points, layer)
    return _per_1000(_locate(points, u), u, code, _unit_population(u, district_id), district_id)


def _per_1000(unit_of: np.ndarray, u: gpd.GeoDataFrame, code: str, pop: dict[str, pd.DataFrame],
              district_id: str) -> pd.DataFrame:
    """:func:`points_per_1000` of points located in ``unit_of`` ("" outside), residents ``pop``."""
    out = _ratio(_counts(unit_of[unit_of != ""], u, district_id), "n", pop, "population", code, 1000.0)
    out.attrs["outside"] = int((unit_of == "").sum())
    return out


def _counts(unit_of: np.ndarray, u: gpd.GeoDataFrame, district_id: str) -> dict[str, pd.DataFrame]:
    """``_level_sums`` of one per item (column ``n``) in units ``unit_of``: whole counts,
    exact in any order of addition, so counted with ``bincount`` (no groupby per type)."""
    units = u["unit_id"].to_numpy()
    per_unit = np.bincount(pd.Index(units).get_indexer(unit_of), minlength=len(units)).astype(float)
    town_ids = sorted(u["town_code"].unique())
    per_town = np.bincount(pd.Index(town_ids).get_indexer(u["town_code"].to_numpy()), weights=per_unit,
                           minlength=len(town_ids))
    return {"unit": pd.DataFrame({"n": per_unit}, index=pd.Index(units, name="unit_id")),
            "town": pd.DataFrame({"n": per_town}, index=pd.Index(town_ids, name="town_code")),
            "district": pd.DataFrame({"n": [float(len(unit_of))]}, index=[district_id])}


def _locate(features: gpd.GeoDataFrame, units: gpd.GeoDataFrame) -> np.ndarray:
    """Unit ID of each feature's representative point ("" when in none)."""
    if features.crs is not None and units.crs is not None and not features.crs.equals(units.crs):
        raise LayerError("points", f"CRS {features.crs.to_string()} differs from the units' {units.crs.to_string()}",
                         fix="reproject it: gdf.to_crs(units.crs)")
    pts = shapely.point_on_surface(features.geometry.values)
    tree = shapely.STRtree(units.geometry.values)
    pi, ui = query_pairs(tree, pts, "intersects")
    out = np.full(len(features), "", dtype=object)
    if len(pi):
        ids = units["unit_id"].to_numpy()[ui]
        order = np.lexsort((ids, pi))[::-1]  # last write wins → smallest id per point
        out[pi[order]] = ids[order]
    return out


def facilities_per_1000(facilities: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, types: Iterable[str] | None = None,
                        type_field: str = "type", district_id: str = "district") -> pd.DataFrame:
    """Facilities per 1,000 residents by type (``per1000_<type>``), from the facility points.

    A facility counts in the unit holding its (representative) point; facilities outside
    every unit count in no area (they may still serve residents by network distance).
    """
    _require_columns(facilities, "facilities", (type_field,))
    has_type = facilities[type_field].notna().to_numpy()
    ftypes = facilities[type_field].astype(str).where(has_type, "")
    types = sorted(set(ftypes[has_type])) if types is None else list(types)
    parts = []
    if types:  # (as points_per_1000 per type: every facility located once, residents summed once)
        u = _check_units(units)
        _require_metric(facilities, "facilities")
        unit_of = _locate(facilities, u)
        pop = _unit_population(u, district_id)
        parts = [_per_1000(unit_of[(ftypes == t).to_numpy()], u, f"per1000_{t}", pop, district_id) for t in types]
    out = _sort_long(pd.concat(parts, ignore_index=True)) if parts else pd.DataFrame(columns=LONG_COLUMNS)
    if (~has_type).any():
        warnings.warn(f"facilities: {int((~has_type).sum())} without a {type_field!r} are not counted "
                      "(classify them first)", RepairWarning, stacklevel=2)
    out.attrs["untyped"] = int((~has_type).sum())
    return out


# --------------------------------------------------------------------------- roads and buildings

#: OSM ``highway`` classes counted as urban roads (城市道路: arterials to branch roads,
#: S28 "incl. branch roads"); footways, cycleways, paths, steps and private service
#: roads are not urban roads.
URBAN_ROAD_CLASSES = (
    "motorway", "trunk", "primary", "secondary", "tertiary", "motorway_link", "trunk_link", "primary_link",
    "secondary_link", "tertiary_link", "residential", "unclassified", "living_street", "road",
)


def _urban_roads(roads: gpd.GeoDataFrame, classes: Iterable[str] | None) -> gpd.GeoDataFrame:
    _require_metric(roads, "roads")
    if classes is None or "highway" not in roads.columns:
        return roads.reset_index(drop=True)
    return roads[roads["highway"].astype(str).isin(set(classes)).to_numpy()].reset_index(drop=True)


def road_network_density(roads: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *,
                         classes: Iterable[str] | None = URBAN_ROAD_CLASSES,
                         district_id: str = "district") -> pd.DataFrame:
    """Road network density (``u_road_network_density``), km of centre line per km².

    Road centre lines clipped to each area ÷ the area's land (gross unit area). Source:
    城市道路网密度 (S28), target 8 km/km² (2016 State Council, unconfirmed). Only lines whose
    ``highway`` is in ``classes`` count (default :data:`URBAN_ROAD_CLASSES`: urban roads
    incl. branch roads, not footways or private service roads); ``classes=None`` or a
    layer without ``highway`` counts every line.
    """
    u = _check_units(units)
    lines = _urban_roads(roads, classes)
    pieces = _clip_to_units(lines, u, "roads")
    f = pd.DataFrame({"unit_id": pieces["unit_id"], "km": shapely.length(pieces["geometry"].to_numpy()) / 1000.0})
    area = _unit_area(u, district_id)
    for v in area.values():
        v["km2"] = v["area_m2"] / 1e6
    return _ratio(_level_sums(f, ["km"], u, district_id), "km", area, "km2", "u_road_network_density")


def intersection_points(roads: gpd.GeoDataFrame, *, min_degree: int = 3, precision: float = 0.01) -> gpd.GeoDataFrame:
    """Road junctions: nodes of degree ≥ ``min_degree`` after noding the centre lines.

    Lines are noded where they cross or touch (``shapely.node``), so a junction inside an
    OSM way counts; a bridge crossing over a road also counts (no z-levels in centre
    lines): pass a graph's own nodes when grade separation matters. Coordinates are
    snapped to ``precision`` metres to join endpoints.
    """
    _require_metric(roads, "roads")
    if not len(roads):
        return gpd.GeoDataFrame({"degree": []}, geometry=[], crs=roads.crs)
    noded = shapely.node(shapely.union_all(_line_merge(np.asarray(roads.geometry.values, dtype=object))))
    segs = shapely.get_parts(noded)
    xy, owner = shapely.get_coordinates(segs, return_index=True)   # (a segment's ends: its first and last rows)
    n_xy = np.bincount(owner, minlength=len(segs))
    end = np.cumsum(n_xy)
    coords = np.concatenate([xy[end - n_xy], xy[end - 1]])
    key = np.round(coords / precision).astype(np.int64)
    # the distinct keys in (x, y) order with their first row and count (= np.unique(key, axis=0))
    order = np.lexsort((key[:, 1], key[:, 0]))
    ks = key[order]
    new = np.r_[True, (ks[1:] != ks[:-1]).any(axis=1)] if len(ks) else np.zeros(0, dtype=bool)
    starts = np.flatnonzero(new)
    cnt = np.diff(np.r_[starts, len(ks)])
    first = np.minimum.reduceat(order, starts) if len(starts) else np.zeros(0, dtype=np.int64)
    keep = cnt >= min_degree
    pts = coords[first[keep]]
    return gpd.GeoDataFrame({"degree": cnt[keep]}, geometry=shapely.points(pts), crs=roads.crs)


def _line_merge(lines: np.ndarray) -> np.ndarray:
    """``shapely.line_merge`` of each line: a simple, open LineString without repeated
    points is its own merge (the same coordinates, tested), so only the others are merged."""
    out = lines.copy()
    tid = shapely.get_type_id(lines)
    plain = tid == 1
    if plain.any():
        xy, idx = shapely.get_coordinates(lines[plain], return_index=True)
        same = (idx[1:] == idx[:-1]) & (xy[1:] == xy[:-1]).all(axis=1)
        repeated = np.zeros(int(plain.sum()), dtype=bool)
        repeated[idx[1:][same]] = True
        sel = np.flatnonzero(plain)
        plain[sel[repeated]] = False
        plain[plain] = shapely.is_simple(lines[plain]) & ~shapely.is_closed(lines[plain])
    if (~plain).any():
        out[~plain] = shapely.line_merge(lines[~plain])
    return out


def intersection_density(roads: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, min_degree: int = 3,
                         classes: Iterable[str] | None = URBAN_ROAD_CLASSES,
                         district_id: str = "district") -> pd.DataFrame:
    """Intersection density (``g_intersection_density``), junctions per km² of land.

    Junctions of the urban roads (``classes``, as :func:`road_network_density`) from
    :func:`intersection_points` (degree ≥ 3), located by point in unit. The Shanghai 2016
    guideline asks for road spacing ≤ 200 m in residential areas (S12).
    """
    u = _check_units(units)
    pts = intersection_points(_urban_roads(roads, classes), min_degree=min_degree)
    unit_of = _locate(pts, u) if len(pts) else np.array([], dtype=object)
    f = pd.DataFrame({"unit_id": unit_of[unit_of != ""], "n": 1.0})
    area = _unit_area(u, district_id)
    for v in area.values():
        v["km2"] = v["area_m2"] / 1e6
    return _ratio(_level_sums(f, ["n"], u, district_id), "n", area, "km2", "g_intersection_density")


def _levels(buildings: gpd.GeoDataFrame) -> tuple[np.ndarray, int]:
    n = len(buildings)
    lv = pd.to_numeric(buildings["levels"], errors="coerce").to_numpy(dtype=float) if "levels" in buildings \
        else np.full(n, np.nan)
    if "height" in buildings:
        h = pd.to_numeric(buildings["height"], errors="coerce").to_numpy(dtype=float)
        from_h = np.maximum(np.round(h / settings.level_height_m), 1.0)
        lv = np.where(np.isnan(lv) | (lv <= 0), from_h, lv)
    missing = np.isnan(lv) | (lv <= 0)
    return np.where(missing, float(settings.default_building_levels), lv), int(missing.sum())


def building_indicators(buildings: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *,
                        district_id: str = "district") -> pd.DataFrame:
    """Building density (``g_building_density``, %) and gross floor-area ratio (``g_far``).

    Footprints are clipped to each area. Density = footprint area ÷ land area × 100;
    FAR = Σ footprint × levels ÷ land area, both on gross unit area. Levels: ``levels``,
    else ``height`` / ``settings.level_height_m`` (3 m), else
    ``settings.default_building_levels`` (6), with a ``RepairWarning`` giving the count.
    """
    u = _check_units(units)
    b = buildings.reset_index(drop=True)
    levels, n_default = _levels(b)
    if n_default:
        warnings.warn(f"buildings: {n_default} of {len(b)} without levels or height; assumed "
                      f"{settings.default_building_levels} levels (settings.default_building_levels)",
                      RepairWarning, stacklevel=2)
    pieces = _clip_to_units(b, u, "buildings")
    foot = shapely.area(pieces["geometry"].to_numpy())
    f = pd.DataFrame({"unit_id": pieces["unit_id"], "foot": foot, "floor": foot * levels[pieces["feature"].to_numpy()]})
    sums = _level_sums(f, ["foot", "floor"], u, district_id)
    area = _unit_area(u, district_id)
    out = pd.concat([_ratio(sums, "foot", area, "area_m2", "g_building_density", 100.0),
                     _ratio(sums, "floor", area, "area_m2", "g_far")], ignore_index=True)
    out.attrs["levels_assumed"] = n_default
    return out


def old_compound_share(compounds: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, before_year: int | None = None,
                       district_id: str = "district") -> pd.DataFrame:
    """Share of old residential compounds (``g_old_compound_share``), % of 小区 by count.

    A compound is old when ``build_year < before_year`` (default
    ``settings.old_compound_before_year`` = 2000: Shanghai's 老旧小区 renovation covers
    estates built before 2000). Compounds are located by their representative point. The
    denominator is the compounds with a known build year; the count without one is in
    ``result.attrs["unknown_year"]`` and a warning (never silently dropped).
    """
    u = _check_units(units)
    _require_metric(compounds, "compounds")
    _require_columns(compounds, "compounds", ("build_year",))
    year = before_year if before_year is not None else settings.old_compound_before_year
    by = pd.to_numeric(compounds["build_year"], errors="coerce").to_numpy(dtype=float)
    unit_of = _locate(compounds, u)
    known = ~np.isnan(by) & (unit_of != "")
    n_unknown = int((np.isnan(by) & (unit_of != "")).sum())
    if n_unknown:
        warnings.warn(f"compounds: {n_unknown} without build_year are left out of g_old_compound_share",
                      RepairWarning, stacklevel=2)
    f = pd.DataFrame({"unit_id": unit_of[known], "n": 1.0, "old": (by[known] < year).astype(float)})
    sums = _level_sums(f, ["n", "old"], u, district_id)
    out = _ratio(sums, "old", sums, "n", "g_old_compound_share", 100.0)
    out.attrs["unknown_year"] = n_unknown
    return out


def imagery_indicators(table: pd.DataFrame, units: gpd.GeoDataFrame, *, district_id: str = "district") -> pd.DataFrame:
    """Green cover and impervious ratios from the orthophoto (``g_green_cover_ratio``,
    ``g_impervious_ratio``), %.

    ``table`` is :func:`geotijian.imagery.imagery_indicators` output: ``unit_id``,
    ``green_cover_ratio`` and ``impervious_ratio`` in percent of the unit's *imaged*
    pixels, and ``coverage_share`` (imaged share of the unit, 0-1; 1 when absent). Town and
    district values are the covered share of their imaged land: Σ ratio × area × coverage ÷
    Σ area × coverage, i.e. computed from the pixels, not averaged over units. Units
    without imagery (NaN) are left out of the sums.
    """
    u = _check_units(units)
    _require_columns(table, "imagery", ("unit_id",))
    t = table.copy()
    t["unit_id"] = t["unit_id"].astype(str)
    unknown = ~t["unit_id"].isin(set(u["unit_id"]))
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise LayerError("imagery", f"unit_id {t['unit_id'].iloc[i]!r} is not in the units layer", feature=i,
                         count=int(unknown.sum()), fix="compute imagery ratios on this year's units")
    area = pd.Series(shapely.area(u.geometry.values), index=u["unit_id"]).reindex(t["unit_id"]).to_numpy()
    cov = pd.to_numeric(t["coverage_share"], errors="coerce").fillna(0.0).to_numpy(dtype=float) \
        if "coverage_share" in t.columns else np.ones(len(t))
    imaged = area * np.clip(cov, 0.0, 1.0)
    parts = []
    for col, code in (("green_cover_ratio", "g_green_cover_ratio"), ("impervious_ratio", "g_impervious_ratio")):
        if col not in t.columns:
            continue
        v = pd.to_numeric(t[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isnan(v) & ((v < 0) | (v > 100))
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise LayerError("imagery", f"{col} = {t[col].iloc[i]!r} is not a percentage 0-100", feature=i,
                             feature_id=t["unit_id"].iloc[i], fix="give ratios in % (geotijian.imagery output)")
        ok = ~np.isnan(v)
        f = pd.DataFrame({"unit_id": t["unit_id"][ok], "a": imaged[ok], "cov": (v * imaged)[ok]})
        sums = _level_sums(f, ["a", "cov"], u, district_id)
        parts.append(_ratio(sums, "cov", sums, "a", code))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=LONG_COLUMNS)


# --------------------------------------------------------------------------- everything

def compute_indicators(
    units: gpd.GeoDataFrame,
    *,
    homes: pd.DataFrame | None = None,
    distances: pd.DataFrame | None = None,
    coverage: Any = None,
    walk_distances: Mapping[str, float] | None = None,
    required_types: Iterable[str] | None = None,
    residential: gpd.GeoDataFrame | None = None,
    parks: gpd.GeoDataFrame | None = None,
    park_classes_table: Any = None,
    park_method: str = "buffer",
    park_distances: pd.DataFrame | None = None,
    sports: gpd.GeoDataFrame | None = None,
    facilities: gpd.GeoDataFrame | None = None,
    fca: Mapping[str, Mapping[str, Any]] | None = None,
    roads: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    compounds: gpd.GeoDataFrame | None = None,
    complaints: gpd.GeoDataFrame | None = None,
    imagery: pd.DataFrame | None = None,
    greenways: gpd.GeoDataFrame | None = None,
    old_before_year: int | None = None,
    road_classes: Iterable[str] | None = URBAN_ROAD_CLASSES,
    district_id: str = "district",
) -> pd.DataFrame:
    """Every spatial indicator the inputs allow, by unit, town and district.

    Each input is optional; an indicator is computed when its inputs are given.

    Parameters
    ----------
    units : GeoDataFrame
        ``unit_id, town_code, population, geometry`` (metric CRS).
    homes, distances : DataFrame
        Homes (``home_id, unit_id, population``) and their network distance (m) to the
        nearest facility of each type (index ``home_id``) → ``cov_<type>``,
        ``t_bus_stop_coverage``, ``g_bus_stop_300_coverage``, ``t_metro_coverage`` and
        ``d_15min_circle_attainment``.
    coverage : CoverageResult or DataFrame, optional
        Instead of ``homes``/``distances``: ``access.service_coverage`` output (see
        :func:`homes_from_coverage`); its walking distances are used unless
        ``walk_distances`` is given. Homes in no unit are reported and left out.
    walk_distances : mapping, optional
        Walking distance per type (m); default from ``facilities.csv``.
    required_types : iterable, optional
        Types the 15-minute attainment requires; default: the ``required`` types of
        ``facilities.csv`` that have a walking distance and a distance column.
    residential, parks, park_classes_table, park_method, park_distances
        → ``u_park_radius_coverage`` (see :func:`park_service_coverage`); parks alone →
        ``u_park_green_pc``.
    sports : GeoDataFrame, optional
        Sports-ground polygons → ``c_community_sports_area_pc``.
    facilities : GeoDataFrame, optional
        Facility points with ``type`` → ``per1000_<type>``.
    fca : mapping, optional
        ``{type: {"supply": array, "od": sparse, "max_distance": m, "demand_share": f,
        "method": "2sfca"|"e2sfca"}}`` → ``fca_<type>`` (needs ``homes``; OD rows in the
        order of ``homes``).
    roads : GeoDataFrame, optional
        → ``u_road_network_density``, ``g_intersection_density`` (urban road classes only,
        ``road_classes``; default :data:`URBAN_ROAD_CLASSES`).
    buildings, compounds, complaints, imagery
        → ``g_building_density``/``g_far``, ``g_old_compound_share``, ``g_complaint_rate``,
        ``g_green_cover_ratio``/``g_impervious_ratio``.
    greenways : GeoDataFrame, optional
        With ``residential`` → ``u_greenway_coverage``; the other 2024 城区/街区 items come
        from facilities, buildings and distances (:func:`~geotijian.indicators.urban.urban_indicators`;
        what it could not compute, and why: ``result.attrs["not_computed"]``).

    Returns
    -------
    DataFrame
        ``level, area_id, code, value`` sorted by level (unit, town, district), area, code.
    """
    from .steps import _distance_parts, _fca_parts, _form_parts, _green_parts, _prepare_homes

    u = _check_units(units)
    homes, homes_all, distances, wd = _prepare_homes(u, homes=homes, distances=distances, coverage=coverage,
                                                     walk_distances=walk_distances, fca=fca)
    parts: list[pd.DataFrame] = []
    if homes is not None and distances is not None:
        parts.extend(_distance_parts(homes, distances, u, wd=wd, required_types=required_types,
                                     district_id=district_id))
    parts.extend(_green_parts(u, residential=residential, parks=parks, park_classes_table=park_classes_table,
                              park_method=park_method, park_distances=park_distances, sports=sports,
                              facilities=facilities, district_id=district_id))
    if fca:
        if homes is None:
            raise LayerError("homes", "the 2SFCA indicators need the homes table", fix="pass homes=")
        parts.extend(_fca_parts(homes_all, u, fca=fca, wd=wd, district_id=district_id))
    parts.extend(_form_parts(u, roads=roads, buildings=buildings, compounds=compounds, complaints=complaints,
                             imagery=imagery, old_before_year=old_before_year, road_classes=road_classes,
                             district_id=district_id))
    from .urban import urban_indicators

    urban = urban_indicators(u, facilities=facilities, greenways=greenways, residential=residential,
                             buildings=buildings, homes=homes, distances=distances, district_id=district_id)
    parts = [p for p in [*parts, urban] if len(p)]
    out = _sort_long(pd.concat(parts, ignore_index=True)[LONG_COLUMNS]) if parts else pd.DataFrame(columns=LONG_COLUMNS)
    out.attrs.update(urban.attrs)
    return out

