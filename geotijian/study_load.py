"""Reading a study's layers: what the walking network and the service areas need first
(the boundary, the roads, the facilities; OSM's where the study says so), then the rest
and the checks of the layers against each other (GCJ-02 offsets, topology).

:func:`geotijian.study.run_study` builds the network and starts the service areas' unions
between the two (:func:`_load_network_layers`, :func:`_load_other_layers`), so the second
part is read beside them; :func:`load_study` reads both at once.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
from pyproj import CRS

from . import settings
from .config import StudyConfig, read_config
from .errors import ConfigError, CoordinateWarning, LayerError
from .facilities import classify_pois, facility_catalogue
from .io.alignment import RoadDistance, _check_alignment, alignment_message
from .io.crs import crs_fit
from .io.layers import ROLES, read_layer
from .io.osm import load_osm
from .io.topology import check_topology
from .model import StudyData
from .units import compounds_from_landuse


def _read_role(cfg: StudyConfig, role: str, study_area: Any,
               parts_out: dict | None = None) -> gpd.GeoDataFrame | None:
    sources = cfg.layers_of(role)
    if not sources:
        return None
    parts = []
    for s in sources:
        parts.append(read_layer(s.path, role, s.crs, coords=s.coords, to_crs=cfg.crs,
                                study_area=study_area, layer=s.layer,
                                name=f"{s.key} ({s.path.name}{':' + s.layer if s.layer else ''})"))
        if parts_out is not None:
            parts_out[s.key] = (s, parts[-1])
    if len(parts) == 1:
        return parts[0]
    out = pd.concat(parts, ignore_index=True)
    id_field = ROLES[role].id_field
    dup = out[id_field].duplicated()
    if dup.any():
        raise LayerError(role, f"ID {out.loc[dup, id_field].iloc[0]!r} appears in two {role} layers "
                               f"({', '.join(s.key for s in sources)})",
                         fix=f"make {id_field} unique across the layers (e.g. prefix one source)")
    return gpd.GeoDataFrame(out, geometry="geometry", crs=parts[0].crs)


def load_study(config: str | Path | StudyConfig) -> tuple[StudyData, Any]:
    """Read every input layer of a study (and its OSM source) into a ``StudyData``.

    Returns
    -------
    (StudyData, OSMData or None)
    """
    cfg = config if isinstance(config, StudyConfig) else read_config(config)
    loading = _load_network_layers(cfg)
    _load_other_layers(cfg, loading)
    return loading.data, loading.osm


@dataclass
class _Loading:
    """A study's layers read so far: the data, its OSM source and the local layers that
    are checked against the roads for a GCJ-02 offset (:func:`_check_offsets`)."""

    data: StudyData
    osm: Any
    parts: dict


def _load_network_layers(cfg: StudyConfig) -> _Loading:
    """What the walking network and the service areas need: the OSM source, the boundary,
    the roads and the facilities (local, then OSM's). :func:`_run` builds the network and
    starts the service areas' unions on them, then reads the rest beside the unions
    (:func:`_load_other_layers`); :func:`load_study` reads both at once."""
    data = StudyData(name=cfg.name, title=cfg.title, year=cfg.year, crs=cfg.crs)
    osm = None
    if cfg.osm:
        src = cfg.osm.get("path") or cfg.osm.get("place") or tuple(cfg.osm["bbox"])
        try:
            osm = load_osm(src, to_crs=cfg.crs)
        except ConfigError as exc:
            if exc.key != "to_crs":
                raise
            raise ConfigError("study.crs", exc.problem, exc.fix.replace("pass to_crs='utm' or", "use")
                              if exc.fix else None) from None
        data.meta["osm_sources"] = [str(src)]
        data.meta["osm_extent"] = {k: v for k, v in osm.extent.items() if k != "all_nodes_bounds"}
    data.boundary = _read_role(cfg, "boundary", None)
    if data.boundary is None:
        data.boundary = read_layer(osm.boundary, "boundary", to_crs=cfg.crs, name="boundary (OSM extent)")
    _check_study_crs(cfg, data.boundary)
    parts: dict = {}  # local layers, checked against the roads for a GCJ-02 offset
    for role in _NETWORK_ROLES:
        setattr(data, role, _read_role(cfg, role, data.boundary, parts if role in _ALIGNED_ROLES else None))
    if osm is not None:
        _merge_osm(cfg, data, osm, _NETWORK_ROLES)
    if data.facilities is None:
        raise LayerError("facilities", "the study has no facilities",
                         fix="give a facilities layer or an [osm] source with use = [\"facilities\", ...]")
    return _Loading(data, osm, parts)


def _load_other_layers(cfg: StudyConfig, loading: _Loading) -> None:
    """The layers :func:`_load_network_layers` left (towns, committees, compounds,
    buildings, water ...; the hotline), then the checks of the layers against each other:
    the GCJ-02 offsets against the roads and the topology."""
    data, osm, parts = loading.data, loading.osm, loading.parts
    for role in _OTHER_ROLES:
        setattr(data, role, _read_role(cfg, role, data.boundary, parts if role in _ALIGNED_ROLES else None))
    if cfg.hotline is not None:
        s = cfg.hotline
        # no study_area check here: points outside are reported per row by complaint_rates
        data.complaints = read_layer(s.path, "complaints", s.crs, coords=s.coords, to_crs=cfg.crs,
                                     name=f"hotline ({s.path.name})")
    if osm is not None:
        _merge_osm(cfg, data, osm, ("buildings", "compounds", "water", "rail", "parks"))
    data.meta["alignment"] = _check_offsets(dict(sorted(parts.items(), key=lambda kv: _ROLE_ORDER[kv[1][0].role])),
                                            data.roads)
    # layers against each other: overlaps, gaps, codes naming nothing, duplicates
    data.meta["topology"] = check_topology(boundary=data.boundary, towns=data.towns,
                                           committees=data.committees, compounds=data.compounds,
                                           water=data.water)
    if data.compounds is None:
        raise LayerError("compounds", "the study has no residential compounds",
                         fix="give [layers.compounds] or an [osm] source with use = [\"compounds\", ...]")


#: the roles :func:`_load_network_layers` reads (the network's and the service areas')
_NETWORK_ROLES = ("roads", "facilities")
#: the order in which the layers were read before they were read in two steps (the
#: alignment checks keep it: their warnings and run.json's ``alignment`` come in that order)
_ROLE_ORDER = {r: i for i, r in enumerate(("towns", "committees", "compounds", "buildings", "roads", "water",
                                           "rail", "parks", "facilities", "population", "greenways", "sites"))}
#: the roles :func:`_load_other_layers` reads, in that order
_OTHER_ROLES = tuple(r for r in _ROLE_ORDER if r not in _NETWORK_ROLES)


def _check_study_crs(cfg: StudyConfig, boundary: gpd.GeoDataFrame) -> None:
    """``study.crs`` must suit the data: an error when it is made for another region or
    distorts lengths/areas at the data beyond 0.5 %/1 %, a warning outside its area of use."""
    bounds = tuple(boundary.to_crs(settings.geographic_crs).total_bounds)
    fit = crs_fit(cfg.crs, bounds)
    where = f"the data lies at {fit['lon']:.2f}°E, {fit['lat']:.2f}°N"
    if not fit["ok"]:
        raise ConfigError("study.crs", f"{cfg.crs} ({fit['name']}) does not suit this study: {fit['problem']} "
                                       f"({where})", f"use {fit['suggest']}")
    if fit["warn"]:
        warnings.warn(f"study.crs {cfg.crs} ({fit['name']}): {where}, outside its area of use ({fit['area_name']}); "
                      f"lengths are off by up to {fit['length_error']:.2%} there. Better: {fit['suggest']}",
                      CoordinateWarning, stacklevel=2)


#: roles whose local layers are checked against the roads for a GCJ-02 offset either way
_ALIGNED_ROLES = ("facilities", "compounds", "buildings", "committees", "parks")


def _check_offsets(parts: dict, roads: gpd.GeoDataFrame | None) -> dict:
    """Warn when a local layer looks declared in the wrong coordinate system (issue 14).

    Each layer with at least 10 features is shifted by a GCJ-02 offset both ways against the
    roads (:func:`geotijian.io.alignment.check_alignment`): Amap POIs or compounds read as
    WGS84 sit ~480 m ESE of their streets; WGS84 POIs declared ``coords = "gcj02"`` are
    moved ~480 m WNW by the conversion; GCJ-02 roads make every WGS84 layer look shifted.
    """
    out: dict = {}
    if roads is None:
        return out
    index = None  # the roads' distance index, made once for every layer
    for key, (src, gdf) in parts.items():
        if len(gdf) < 10:
            continue
        if index is None:
            index = RoadDistance(roads, CRS.from_user_input(settings.metric_crs))
        res = _check_alignment(gdf, index, declared=src.coords or "wgs84", warn=False)
        out[key] = res
        if res["verdict"] not in ("aligned", "too_few"):
            warnings.warn(alignment_message(res, f"layer '{key}' ({src.path.name})", key=key),
                          CoordinateWarning, stacklevel=2)
    return out


def _merge_osm(cfg: StudyConfig, data: StudyData, osm: Any, roles: tuple[str, ...]) -> None:
    """Fill the layers of ``roles`` the study did not give from OSM (never overriding a
    local layer: those of ``roles`` are read before)."""
    use = set(cfg.osm.get("use", ())) & set(roles)
    clip = data.boundary
    if "roads" in roles and data.roads is None:
        roads = osm.roads[["osmid", "highway", "name", "geometry"]].copy()
        roads["road_id"] = [f"R{i + 1:06d}" for i in range(len(roads))]
        roads["highway"] = roads["highway"].map(lambda h: h[0] if isinstance(h, list) else h)
        roads["name"] = roads["name"].map(lambda h: h[0] if isinstance(h, list) else h)
        data.roads = read_layer(roads.drop(columns="osmid"), "roads", to_crs=cfg.crs, name="roads (OSM)")
    if "buildings" in use and data.buildings is None and len(osm.buildings):
        b = osm.buildings.copy()
        b["building_id"] = b["osm_type"].astype(str).str[0] + b["osm_id"].astype(str)
        b["use"] = b["building"]
        data.buildings = read_layer(b[["building_id", "levels", "height", "use", "geometry"]], "buildings",
                                    to_crs=cfg.crs, name="buildings (OSM)")
    if "compounds" in use and data.compounds is None and len(osm.residential):
        data.compounds = read_layer(compounds_from_landuse(osm.residential), "compounds", to_crs=cfg.crs,
                                    study_area=clip, name="compounds (OSM landuse=residential)")
    if "water" in use and data.water is None and len(osm.water):
        w = osm.water[["kind", "name", "geometry"]].copy()
        data.water = read_layer(w, "water", to_crs=cfg.crs, name="water (OSM)")
    if "rail" in use and data.rail is None and len(osm.rail):
        data.rail = read_layer(osm.rail[["kind", "name", "geometry"]], "rail", to_crs=cfg.crs, name="rail (OSM)")
    if "facilities" in use and len(osm.pois):
        pois = classify_pois(osm.pois, facility_catalogue(cfg.facilities.get("catalogue")))
        pois = pois[pois["matched"].astype(bool)].copy()
        if len(pois):
            # one row per (POI, type): a 九年一贯制 school is both primary and junior middle
            pois["facility_id"] = ("OSM-" + pois["osm_type"].astype(str).str[0] + pois["osm_id"].astype(str)
                                   + ":" + pois["type"].astype(str))
            keep = [c for c in ("facility_id", "type", "name", "capacity", "geometry") if c in pois.columns]
            f = read_layer(pois[keep], "facilities", to_crs=cfg.crs, name="facilities (OSM POIs)")
            data.facilities = f if data.facilities is None else gpd.GeoDataFrame(
                pd.concat([data.facilities, f], ignore_index=True), geometry="geometry", crs=f.crs)
    if "parks" in use and data.parks is None:
        leisure = osm.pois.get("leisure")
        if leisure is not None:
            parks = osm.pois[leisure.isin(["park", "garden"]).to_numpy()
                             & osm.pois.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()]
            if len(parks):
                p = parks[["name", "geometry"]].copy()
                p["kind"] = parks["leisure"].to_numpy()
                p["park_id"] = [f"P{i + 1:04d}" for i in range(len(p))]
                data.parks = read_layer(p, "parks", to_crs=cfg.crs, name="parks (OSM)")
