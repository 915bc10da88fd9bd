"""The 2024 城区 and 街区 indicators geotijian computes from layers.

Each function returns the long table ``level, area_id, code, value`` by unit, town and
district, like :mod:`geotijian.indicators.compute`, and follows its aggregation rule (a
town or district value is the ratio of its own sums, never an average of unit values).

* :func:`fire_station_coverage` (``u_fire_station_coverage``, %): land within a fire
  station's service radius. The standards fix the station district *area* (建标152-2017
  第十四条: 一级站 ≤ 7 km², 二级站 ≤ 4 km², 小型站 ≤ 2 km²; GB 51080-2015 cl. 4.1.3: ≤ 7 km²,
  ≤ 15 km² at the edge of the built-up land, 5 min to the district edge); the radius is
  that of a circle of that area (``fire_station_classes.csv``, a geotijian derivation).
* :func:`shelter_area_per_capita` (``u_shelter_area_pc``, m²/person): effective
  emergency-shelter area per resident.
* :func:`fuel_station_safety` (``u_fuel_station_safety``, count): fuel stations closer
  to a home or a school than the safety distance of their class
  (``fuel_safety_distances.csv``), with the distances of every station.
* :func:`greenway_coverage` (``u_greenway_coverage``, %): residential land within 1 km
  of a greenway (2021 check-up definition, S15).
* :func:`facility_area_per_capita` (``u_sports_area_pc``, ``u_culture_area_pc``,
  m²/person): sports-ground area and public cultural floor area per resident.
* :func:`middle_school_coverage` (``d_middle_school_coverage``, %): residents within
  1,000 m walk of a middle school.

:func:`urban_indicators` runs every one the inputs allow and says why the others were not
computed (``result.attrs["not_computed"]``): those values are then filled in by the
department the edition names (fill-in workbooks).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .. import data
from ..errors import ConfigError, LayerError, RepairWarning
from .compute import (
    LONG_COLUMNS,
    _check_units,
    _clip_to_units,
    _level_sums,
    _locate,
    _ratio,
    _require_columns,
    _require_metric,
    _unit_population,
    population_coverage,
)

__all__ = [
    "SPORTS_TYPES", "CULTURE_TYPES", "SCHOOL_TYPES", "MIDDLE_SCHOOL_TYPES", "fire_station_classes",
    "fuel_safety_distances", "fire_station_coverage", "shelter_area_per_capita", "fuel_station_safety",
    "greenway_coverage", "facility_area_per_capita", "middle_school_coverage", "urban_indicators",
]

#: Facility types whose ground area counts as sports area (GB 50180-2018 App. B/C items).
SPORTS_TYPES = ("sports_centre", "large_multi_sports_ground", "medium_multi_sports_ground", "small_sports_ground",
                "outdoor_fitness_ground")
#: Facility types whose floor area counts as public cultural facility area.
CULTURE_TYPES = ("cultural_activity_centre", "cultural_activity_station")
#: Facility types that are schools for the fuel-station safety distance (重要公共建筑物).
SCHOOL_TYPES = ("kindergarten", "primary_school", "junior_middle_school")
#: Middle schools of ``d_middle_school_coverage`` (the packaged catalogue has 初中 only).
MIDDLE_SCHOOL_TYPES = ("junior_middle_school",)
#: Greenway service radius (m): 1 km, the 2021 check-up definition (S15).
GREENWAY_RADIUS_M = 1000.0
#: Middle-school service radius (m): 1,000 m (GB 50180-2018 初中; quoted with L2024).
MIDDLE_SCHOOL_RADIUS_M = 1000.0
RESIDENTIAL_USES = ("residential", "apartments", "house", "住宅", "居住")


def _table(source: Any, default: str, key: str, columns: Iterable[str]) -> pd.DataFrame:
    if source is None:
        t = pd.read_csv(data.path(default), dtype=str, keep_default_na=False)
    elif isinstance(source, pd.DataFrame):
        t = source.astype(str)
    elif isinstance(source, Mapping):
        t = pd.DataFrame([{**{"station_class": k}, **(v if isinstance(v, Mapping) else {})}
                          for k, v in source.items()]).astype(str)
    else:
        t = pd.read_csv(source, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in columns if c not in t.columns]
    if missing:
        raise ConfigError(key, f"table has no column {missing[0]!r}", f"columns: {', '.join(columns)}")
    return t


def fire_station_classes(table: Any = None) -> pd.DataFrame:
    """Fire-station classes: ``station_class, max_district_km2, radius_m, source, confidence``.

    Default: the packaged ``fire_station_classes.csv`` (一级 7 km² → 1,493 m, 二级 4 km² →
    1,128 m, 小型 2 km² → 798 m, 特勤 = 一级, 郊区普通 15 km² → 2,185 m). A table (DataFrame,
    CSV path) replaces it; ``radius_m`` empty = the radius of a circle of
    ``max_district_km2``.
    """
    t = _table(table, "fire_station_classes.csv", "indicators.fire_station_classes",
               ("station_class", "max_district_km2"))
    area = pd.to_numeric(t["max_district_km2"], errors="coerce")
    radius = pd.to_numeric(t.get("radius_m", pd.Series("", index=t.index)), errors="coerce")
    with np.errstate(invalid="ignore"):
        radius = radius.fillna(np.sqrt(area.clip(lower=0) * 1e6 / np.pi))
    if area.isna().any() or (area <= 0).any() or (radius <= 0).any():
        i = int(np.flatnonzero((area.isna() | (area <= 0) | (radius <= 0)).to_numpy())[0])
        raise ConfigError(f"indicators.fire_station_classes[{t['station_class'].iloc[i]}]",
                          "max_district_km2 must be a positive number", "write the district area in km²")
    t = t.assign(max_district_km2=area.astype(float), radius_m=radius.astype(float))
    return t.reset_index(drop=True)


def fuel_safety_distances(table: Any = None) -> pd.DataFrame:
    """Safety distances of fuel stations: ``station_class, receptor, distance_m, source, confidence``.

    Default: the packaged ``fuel_safety_distances.csv`` (GB 50156 Table 4.0.4 as quoted
    by secondary sources: buried tanks without vapour recovery; schools as 重要公共建筑物
    50 m; homes as 三类保护物 16 / 12 / 10 m for 一级 / 二级 / 三级 stations, unconfirmed).
    Receptors are ``home`` and ``school``.
    """
    t = _table(table, "fuel_safety_distances.csv", "indicators.fuel_safety",
               ("station_class", "receptor", "distance_m"))
    d = pd.to_numeric(t["distance_m"], errors="coerce")
    bad = d.isna() | (d < 0) | ~t["receptor"].isin(["home", "school"])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise ConfigError(f"indicators.fuel_safety[{t['station_class'].iloc[i]}]",
                          f"receptor {t['receptor'].iloc[i]!r} / distance {t['distance_m'].iloc[i]!r} is not valid",
                          "receptor home or school, distance_m a number of metres")
    return t.assign(distance_m=d.astype(float)).reset_index(drop=True)


def _station_class(features: gpd.GeoDataFrame, known: Iterable[str], default: str, layer: str) -> np.ndarray:
    known = list(known)
    cls = features["station_class"].astype(object).where(features["station_class"].notna(), None).to_numpy() \
        if "station_class" in features.columns else np.full(len(features), None, dtype=object)
    cls = np.array([None if c is None or str(c).strip() == "" else str(c).strip() for c in cls], dtype=object)
    unknown = np.array([c is not None and c not in known for c in cls])
    if unknown.any():
        i = int(np.flatnonzero(unknown)[0])
        raise LayerError(layer, f"station_class {cls[i]!r} is unknown", feature=i,
                         feature_id=features["facility_id"].iloc[i] if "facility_id" in features.columns else None,
                         count=int(unknown.sum()), fix=f"use one of: {', '.join(known)} (or leave it empty)")
    missing = np.array([c is None for c in cls])
    if missing.any():
        warnings.warn(f"{layer}: {int(missing.sum())} of {len(cls)} without station_class; assumed {default}",
                      RepairWarning, stacklevel=3)
    cls[missing] = default
    return cls


def fire_station_coverage(stations: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, land: gpd.GeoDataFrame | None = None,
                          classes: Any = None, district_id: str = "district") -> pd.DataFrame:
    """Fire-station service-radius coverage (``u_fire_station_coverage``), % of land.

    Parameters
    ----------
    stations : GeoDataFrame
        Fire stations (points or polygons, metric CRS); ``station_class`` optional
        (一级 / 二级 / 小型 / 特勤 / 郊区普通; empty = 一级, reported). Stations outside the
        units still cover land inside them.
    units : GeoDataFrame
        ``unit_id, town_code, population, geometry``.
    land : GeoDataFrame, optional
        The land whose coverage counts (built-up land, 建设用地, polygons); default the
        units themselves (their whole area).
    classes : table, optional
        :func:`fire_station_classes` replacement.

    Returns
    -------
    DataFrame
        ``level, area_id, code, value``: covered land ÷ land × 100, where covered = inside
        the union of the stations' service discs (straight-line radius of their class).
    """
    u = _check_units(units)
    _require_metric(stations, "fire stations")
    cls_table = fire_station_classes(classes)
    radius = dict(zip(cls_table["station_class"], cls_table["radius_m"], strict=True))
    cls = _station_class(stations, radius, "一级", "fire stations")
    r = np.array([radius[c] for c in cls], dtype=float)
    discs = shapely.union_all(shapely.buffer(stations.geometry.values, r, quad_segs=32)) if len(stations) \
        else shapely.Polygon()
    target = land if land is not None else u[["unit_id", "geometry"]]
    pieces = _clip_to_units(target, u, "land") if len(target) else pd.DataFrame({"unit_id": [], "geometry": []})
    geoms = pieces["geometry"].to_numpy()
    area = shapely.area(geoms) if len(geoms) else np.array([], dtype=float)
    covered = shapely.area(shapely.intersection(geoms, discs)) if len(geoms) else np.array([], dtype=float)
    f = pd.DataFrame({"unit_id": pieces["unit_id"], "land": area, "covered": covered})
    sums = _level_sums(f, ["land", "covered"], u, district_id)
    out = _ratio(sums, "covered", sums, "land", "u_fire_station_coverage", 100.0)
    out.attrs["radius_m"] = dict(zip(stations["facility_id"], r, strict=True)) if "facility_id" in stations else {}
    return out


def _area_of(features: gpd.GeoDataFrame, field: str, *, polygon_area: bool) -> np.ndarray:
    """``field`` (m²) where given, else the polygon area when allowed; NaN when neither."""
    n = len(features)
    given = pd.to_numeric(features[field], errors="coerce").to_numpy(dtype=float) if field in features.columns \
        else np.full(n, np.nan)
    neg = given < 0
    if neg.any():
        i = int(np.flatnonzero(neg)[0])
        raise LayerError("facilities", f"{field} {float(given[i]):g} is negative", feature=i,
                         feature_id=features["facility_id"].iloc[i] if "facility_id" in features.columns else None,
                         count=int(neg.sum()), fix=f"give {field} in m² (>= 0)")
    if polygon_area:
        poly = np.isin(shapely.get_type_id(features.geometry.values), [3, 6])
        given = np.where(np.isnan(given) & poly, shapely.area(features.geometry.values), given)
    return given


def facility_area_per_capita(facilities: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, types: Iterable[str],
                             code: str, area_field: str = "area_m2", polygon_area: bool = True,
                             district_id: str = "district") -> pd.DataFrame:
    """Area of facilities of ``types`` per resident (m²/person), located by their point.

    Used for ``u_sports_area_pc`` (sports types, ground area ``area_m2`` or the polygon
    area) and ``u_culture_area_pc`` (cultural types, floor area ``floor_area_m2``; a
    footprint is not a floor area, so ``polygon_area=False``). Every facility of the
    types needs an area: if one lacks it the indicator is **not computed** (an empty
    table, reason in ``attrs["not_computed"]``), since a partial sum would understate
    it; its value is then filled in.
    """
    u = _check_units(units)
    _require_metric(facilities, "facilities")
    _require_columns(facilities, "facilities", ("type",))
    f = facilities[facilities["type"].isin(list(types))].reset_index(drop=True)
    empty = pd.DataFrame(columns=LONG_COLUMNS)
    if not len(f):
        empty.attrs["not_computed"] = f"no facility of type {', '.join(types)}"
        return empty
    area = _area_of(f, area_field, polygon_area=polygon_area)
    lacking = np.isnan(area)
    if lacking.any():
        empty.attrs["not_computed"] = (f"{int(lacking.sum())} of {len(f)} facilities ({', '.join(sorted(set(f['type'])))})"
                                       f" have no {area_field}" + (" and are not polygons" if polygon_area else ""))
        return empty
    unit_of = _locate(f, u)
    inside = unit_of != ""
    t = pd.DataFrame({"unit_id": unit_of[inside], "area": area[inside]})
    out = _ratio(_level_sums(t, ["area"], u, district_id), "area", _unit_population(u, district_id), "population",
                 code)
    out.attrs["outside"] = int((~inside).sum())
    return out


def shelter_area_per_capita(shelters: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *,
                            district_id: str = "district") -> pd.DataFrame:
    """Effective emergency-shelter area per resident (``u_shelter_area_pc``), m²/person.

    ``shelters``: facilities of type ``emergency_shelter`` (or any layer) with the
    effective shelter area in ``area_m2``, else their polygon area (the site area: an
    upper bound of the effective area). Reference ≥ 2 m²/person (L2024, unconfirmed).
    """
    s = shelters if "type" in shelters.columns else shelters.assign(type="emergency_shelter")
    return facility_area_per_capita(s, units, types=("emergency_shelter",), code="u_shelter_area_pc",
                                    area_field="area_m2", polygon_area=True, district_id=district_id)


def _nearest(src: np.ndarray, targets: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of and distance (m) to the nearest target of each source geometry (-1, inf when none)."""
    idx = np.full(len(src), -1, dtype=np.int64)
    dist = np.full(len(src), np.inf)
    if len(src) and len(targets):
        tree = shapely.STRtree(targets)
        (si, ti), d = tree.query_nearest(src, return_distance=True, all_matches=True)
        order = np.lexsort((ti, si))           # ties: the lowest target index
        si, ti, d = si[order], ti[order], d[order]
        first = np.r_[True, si[1:] != si[:-1]]
        idx[si[first]] = ti[first]
        dist[si[first]] = d[first]
    return idx, dist


def _ids_at(ids: np.ndarray, idx: np.ndarray) -> np.ndarray:
    out = np.full(len(idx), None, dtype=object)
    ok = idx >= 0
    out[ok] = np.asarray(ids, dtype=object)[idx[ok]]
    return out


def fuel_station_safety(stations: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *, homes: gpd.GeoDataFrame,
                        schools: gpd.GeoDataFrame | None, distances: Any = None,
                        district_id: str = "district") -> pd.DataFrame:
    """Fuel stations below the safety distance (``u_fuel_station_safety``), count.

    Parameters
    ----------
    stations : GeoDataFrame
        Fuel (petrol, gas, hydrogen) stations, points or polygons (metric CRS), with
        ``facility_id`` and optional ``station_class`` (一级 / 二级 / 三级; empty = 一级,
        the most stringent, reported).
    homes : GeoDataFrame
        Residential buildings (or compounds) polygons, with an ID column
        (``building_id`` / ``compound_id`` / ``home_id``).
    schools : GeoDataFrame or None
        Schools and kindergartens (``facility_id``); ``None`` checks homes only.
    distances : table, optional
        :func:`fuel_safety_distances` replacement.

    Returns
    -------
    DataFrame
        ``level, area_id, code, value``: stations located in each area whose straight-line
        distance to the nearest home or school is below their class's distance.
        ``attrs["stations"]``: one row per station: ``facility_id, station_class,
        unit_id, nearest_home, home_distance_m, home_limit_m, nearest_school,
        school_distance_m, school_limit_m, meets`` (distances in metres, geometry to
        geometry).
    """
    u = _check_units(units)
    _require_metric(stations, "fuel stations")
    _require_metric(homes, "homes")
    table = fuel_safety_distances(distances)
    classes = list(dict.fromkeys(table["station_class"]))
    cls = _station_class(stations, classes, classes[0], "fuel stations")
    limit = {(c, r): d for c, r, d in zip(table["station_class"], table["receptor"], table["distance_m"], strict=True)}
    home_id_col = next((c for c in ("building_id", "compound_id", "home_id") if c in homes.columns), None)
    hi, hd = _nearest(stations.geometry.values, homes.geometry.values)
    home_limit = np.array([limit.get((c, "home"), 0.0) for c in cls])
    st = pd.DataFrame({
        "facility_id": stations["facility_id"].to_numpy() if "facility_id" in stations else np.arange(len(stations)),
        "station_class": cls, "unit_id": _locate(stations, u),
        "nearest_home": _ids_at(homes[home_id_col].to_numpy() if home_id_col else np.arange(len(homes)), hi),
        "home_distance_m": hd, "home_limit_m": home_limit})
    ok = hd >= home_limit
    if schools is not None:
        _require_metric(schools, "schools")
        si, sd = _nearest(stations.geometry.values, schools.geometry.values)
        school_limit = np.array([limit.get((c, "school"), 0.0) for c in cls])
        st["nearest_school"] = _ids_at(schools["facility_id"].to_numpy(), si)
        st["school_distance_m"] = sd
        st["school_limit_m"] = school_limit
        ok &= sd >= school_limit
    else:
        st["nearest_school"], st["school_distance_m"], st["school_limit_m"] = None, np.inf, np.nan
    st["meets"] = ok
    inside = st["unit_id"] != ""
    f = pd.DataFrame({"unit_id": st.loc[inside, "unit_id"], "bad": (~ok[inside.to_numpy()]).astype(float)})
    sums = _level_sums(f, ["bad"], u, district_id)
    parts = {lvl: sums[lvl]["bad"] for lvl in ("unit", "town", "district")}
    out = pd.concat([pd.DataFrame({"level": lvl, "area_id": s.index.astype(str), "code": "u_fuel_station_safety",
                                   "value": s.to_numpy(dtype=float)}) for lvl, s in parts.items()],
                    ignore_index=True)
    out.attrs["stations"] = st.sort_values("facility_id", kind="stable").reset_index(drop=True)
    return out


def greenway_coverage(greenways: gpd.GeoDataFrame, residential: gpd.GeoDataFrame, units: gpd.GeoDataFrame, *,
                      radius_m: float = GREENWAY_RADIUS_M, district_id: str = "district") -> pd.DataFrame:
    """Greenway service-radius coverage (``u_greenway_coverage``), % of residential land.

    Residential land (compound polygons, clipped to the units) within ``radius_m``
    (1 km: the 2021 check-up definition, ≈ 15 min walk / 5 min cycling, S15) straight-line
    of a greenway (lines or polygons) ÷ all residential land × 100. Reference ≥ 70 %
    (L2024, unconfirmed).
    """
    u = _check_units(units)
    _require_metric(greenways, "greenways")
    zone = shapely.union_all(shapely.buffer(greenways.geometry.values, radius_m, quad_segs=16)) if len(greenways) \
        else shapely.Polygon()
    pieces = _clip_to_units(residential, u, "residential") if len(residential) else \
        pd.DataFrame({"unit_id": [], "geometry": []})
    geoms = pieces["geometry"].to_numpy()
    f = pd.DataFrame({"unit_id": pieces["unit_id"],
                      "land": shapely.area(geoms) if len(geoms) else np.array([], dtype=float),
                      "covered": shapely.area(shapely.intersection(geoms, zone)) if len(geoms)
                      else np.array([], dtype=float)})
    sums = _level_sums(f, ["land", "covered"], u, district_id)
    return _ratio(sums, "covered", sums, "land", "u_greenway_coverage", 100.0)


def middle_school_coverage(homes: pd.DataFrame, distances: pd.DataFrame, units: gpd.GeoDataFrame, *,
                           types: Iterable[str] = MIDDLE_SCHOOL_TYPES, radius_m: float = MIDDLE_SCHOOL_RADIUS_M,
                           district_id: str = "district") -> pd.DataFrame:
    """Middle-school service-radius coverage (``d_middle_school_coverage``), % of residents.

    Residents whose network walking distance to the nearest middle school (of any of
    ``types``) is at most ``radius_m`` (1,000 m) ÷ residents, population-weighted (the
    national formula is unconfirmed: residential land is the other reading).
    """
    types = [t for t in types if t in distances.columns]
    if not types:
        raise LayerError("distances", "no middle-school distance column",
                         fix=f"compute distances to {', '.join(MIDDLE_SCHOOL_TYPES)}")
    d = distances.reindex(homes["home_id"].to_numpy())[types].to_numpy(dtype=float)
    covered = np.nan_to_num(d, nan=np.inf).min(axis=1) <= radius_m
    return population_coverage(homes, covered, units, "d_middle_school_coverage", district_id=district_id)


def _residential_buildings(buildings: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
    if buildings is None:
        return None
    if "use" not in buildings.columns:
        return buildings
    use = buildings["use"].astype(str).str.strip().str.lower()
    return buildings[use.isin(RESIDENTIAL_USES) | buildings["use"].isna()]


def urban_indicators(units: gpd.GeoDataFrame, *, facilities: gpd.GeoDataFrame | None = None,
                     greenways: gpd.GeoDataFrame | None = None, residential: gpd.GeoDataFrame | None = None,
                     buildings: gpd.GeoDataFrame | None = None, homes: pd.DataFrame | None = None,
                     distances: pd.DataFrame | None = None, land: gpd.GeoDataFrame | None = None,
                     fire_classes: Any = None, fuel_distances: Any = None,
                     district_id: str = "district") -> pd.DataFrame:
    """Every 2024 城区 / 街区 indicator of this module the inputs allow.

    Facilities are selected by ``type``: ``fire_station``, ``fuel_station``,
    ``emergency_shelter``, :data:`SPORTS_TYPES`, :data:`CULTURE_TYPES`, and schools
    (:data:`SCHOOL_TYPES`) for the fuel-station check. Homes for the fuel-station check
    are the residential buildings (``use`` residential), else the compounds.

    Returns
    -------
    DataFrame
        Long table; ``attrs["not_computed"]``: ``{code: reason}`` for each indicator of
        this module that the inputs do not allow (filled in instead);
        ``attrs["fuel_stations"]``: the per-station distance table when computed.
    """
    parts: list[pd.DataFrame] = []
    reasons: dict[str, str] = {}
    attrs: dict[str, Any] = {}
    fac = facilities if facilities is not None else gpd.GeoDataFrame({"type": []}, geometry=[], crs=units.crs)
    types = set(fac["type"]) if "type" in fac.columns else set()

    fire = fac[fac["type"] == "fire_station"] if "fire_station" in types else None
    if fire is not None:
        parts.append(fire_station_coverage(fire, units, land=land, classes=fire_classes, district_id=district_id))
    else:
        reasons["u_fire_station_coverage"] = "no facility of type fire_station"
    if "fuel_station" in types:
        home_layer = _residential_buildings(buildings) if buildings is not None else residential
        if home_layer is None:
            reasons["u_fuel_station_safety"] = "no buildings or compounds layer for the homes"
        else:
            schools = fac[fac["type"].isin(SCHOOL_TYPES)]
            out = fuel_station_safety(fac[fac["type"] == "fuel_station"], units, homes=home_layer,
                                      schools=schools, distances=fuel_distances, district_id=district_id)
            attrs["fuel_stations"] = out.attrs["stations"]
            parts.append(out)
    else:
        reasons["u_fuel_station_safety"] = "no facility of type fuel_station"
    for code, fn in (("u_shelter_area_pc", lambda: shelter_area_per_capita(fac, units, district_id=district_id)),
                     ("u_sports_area_pc", lambda: facility_area_per_capita(
                         fac, units, types=SPORTS_TYPES, code="u_sports_area_pc", district_id=district_id)),
                     ("u_culture_area_pc", lambda: facility_area_per_capita(
                         fac, units, types=CULTURE_TYPES, code="u_culture_area_pc", area_field="floor_area_m2",
                         polygon_area=False, district_id=district_id))):
        out = fn()
        if len(out):
            parts.append(out)
        else:
            reasons[code] = out.attrs.get("not_computed", "no input")
    if greenways is not None and residential is not None:
        parts.append(greenway_coverage(greenways, residential, units, district_id=district_id))
    else:
        reasons["u_greenway_coverage"] = "no greenways layer" if greenways is None else "no compounds layer"
    if homes is not None and distances is not None and any(t in distances.columns for t in MIDDLE_SCHOOL_TYPES):
        parts.append(middle_school_coverage(homes, distances, units, district_id=district_id))
    else:
        reasons["d_middle_school_coverage"] = "no walking distances to a middle school"
    parts = [p for p in parts if len(p)]
    out = pd.concat(parts, ignore_index=True)[LONG_COLUMNS] if parts else pd.DataFrame(columns=LONG_COLUMNS)
    out.attrs.update(attrs)
    out.attrs["not_computed"] = reasons
    return out
