"""The sample's layers in memory: :func:`make_sample_district`, GeoDataFrames from the arrays."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer

from .. import settings
from ._common import DISTRICT_CODE, SAT_ITEMS
from .district import District, generate
from .names import PARK_STEMS, STEMS, ordinal_names

Frames = dict[str, "gpd.GeoDataFrame | pd.DataFrame"]


def _admin_frames(d: District) -> tuple[Frames, np.ndarray]:
    """boundary, towns, committees and compounds; and the compound ID of every compound row
    (``XQ00001``... by committee, then north → south, west → east)."""
    crs = d.crs
    C, K = d.comp, d.committee
    n_comm = len(K["id"])
    # compounds: IDs by committee, then north → south, west → east
    rep = shapely.get_coordinates(shapely.point_on_surface(C["geom"]))
    order = np.lexsort((rep[:, 0], -rep[:, 1], K["id"][C["committee"]]))
    width = max(5, len(str(len(order))))
    comp_id = np.empty(len(order), dtype=object)
    comp_id[order] = [f"XQ{i + 1:0{width}d}" for i in range(len(order))]
    town_code = d.towns.code[K["town"]]
    compounds = gpd.GeoDataFrame({
        "compound_id": comp_id[order],
        "name": C["name"][order],
        "population": C["population"][order],
        "households": C["households"][order],
        "build_year": C["build_year"][order].astype(np.int64),
        "committee_id": K["id"][C["committee"][order]],
        "town_code": town_code[C["committee"][order]],
        "kind": C["kind"][order],
        "big": C["big"][order],
        "cut_by_road": C["cut"][order],
    }, geometry=C["geom"][order], crs=crs)
    compounds.attrs["cut_by_road"] = sorted(compounds.loc[compounds["cut_by_road"], "compound_id"])
    committees = gpd.GeoDataFrame({
        "committee_id": K["id"], "name": K["name"], "town_code": town_code,
        "kind": np.where(K["urban"], "居委会", "村委会").astype(object),
        "population": K["population"], "households": K["households"],
        "population_class": K["class"],
    }, geometry=K["geom"], crs=crs)
    n_t = len(d.towns.boxes)
    tgeom = np.array([shapely.union_all(d.grid.cell_poly[d.towns.cell_town == k]) for k in range(n_t)],
                     dtype=object)
    towns = gpd.GeoDataFrame({
        "town_code": d.towns.code, "name": d.towns.name,
        "population": np.bincount(K["town"], weights=K["population"], minlength=n_t).astype(np.int64),
        "households": np.bincount(K["town"], weights=K["households"], minlength=n_t).astype(np.int64),
    }, geometry=tgeom, crs=crs)
    boundary = gpd.GeoDataFrame({"boundary_id": [DISTRICT_CODE], "name": ["嘉定区样例片区"]},
                                geometry=[d.grid.boundary], crs=crs)
    assert n_comm == len(committees)
    return {"boundary": boundary, "towns": towns, "committees": committees,
            "compounds": compounds}, comp_id


def _physical_frames(d: District, comp_id: np.ndarray) -> Frames:
    """buildings, roads, water, rail and parks (named from their own random stream)."""
    crs = d.crs
    rng = np.random.default_rng([d.seed, 99])
    # buildings
    B = d.bld
    row = np.where(B["item"] >= 0, d.item_row[np.clip(B["item"], 0, None)], -1)
    keep = (B["use"] != "residential") | (row >= 0)
    bcomp = np.where(row >= 0, comp_id[np.clip(row, 0, None)], None)
    n_b = int(keep.sum())
    bw = max(6, len(str(n_b)))
    buildings = gpd.GeoDataFrame({
        "building_id": [f"BLD{i + 1:0{bw}d}" for i in range(n_b)],
        "levels": B["levels"][keep].astype(np.int64),
        "height": (B["levels"][keep] * settings.level_height_m).astype(float),
        "use": B["use"][keep],
        "build_year": B["year"][keep].astype(np.int64),
        "compound_id": bcomp[keep],
    }, geometry=B["geom"][keep], crs=crs)
    # roads
    R = d.roads
    rw = max(6, len(str(len(R["geom"]))))
    roads = gpd.GeoDataFrame({
        "road_id": [f"R{i + 1:0{rw}d}" for i in range(len(R["geom"]))],
        "highway": R["highway"], "name": R["name"], "structure": R["structure"],
    }, geometry=R["geom"], crs=crs)
    roads.attrs["network_nodes"] = int(d.n_nodes)
    # water and rail, clipped to the district
    wg = shapely.intersection(d.barriers.water_geoms, d.grid.boundary)
    water = gpd.GeoDataFrame({
        "water_id": [f"W{i + 1:03d}" for i in range(len(wg))], "kind": d.barriers.water_kind,
        "name": d.barriers.water_name, "width_m": d.barriers.water_width}, geometry=wg, crs=crs)
    rail = gpd.GeoDataFrame({"rail_id": ["RL001"], "kind": ["rail"], "name": ["沪宁铁路"]},
                            geometry=[shapely.intersection(d.barriers.rail_line, d.grid.boundary)],
                            crs=crs)
    # parks
    Pk = d.parks.get()
    pg = np.asarray(Pk["geom"], dtype=object)
    ok = ~shapely.is_empty(pg) & (shapely.area(pg) >= 1000.0)
    pg, pkind = pg[ok], Pk["kind"][ok]
    prep = shapely.get_coordinates(shapely.point_on_surface(pg))
    po = np.lexsort((prep[:, 0], -prep[:, 1], pkind))
    pg, pkind = pg[po], pkind[po]
    pst = np.array(PARK_STEMS + STEMS, dtype=object)
    stem = pst[rng.integers(0, len(pst), len(pg))]
    pname = np.select([pkind == "综合公园", pkind == "社区公园"], [stem + "公园", stem + "社区公园"],
                      stem + np.where(rng.random(len(pg)) < 0.5, "游园", "街心花园"))
    parks = gpd.GeoDataFrame({
        "park_id": [f"P{i + 1:03d}" for i in range(len(pg))], "name": ordinal_names(pname),
        "kind": pkind, "area_ha": np.round(shapely.area(pg) / 1e4, 2)}, geometry=pg, crs=crs)
    return {"buildings": buildings, "roads": roads, "water": water, "rail": rail, "parks": parks}


def _service_frames(d: District, comp_id: np.ndarray) -> Frames:
    """facilities, complaints and the survey (a DataFrame, lon/lat in WGS84)."""
    crs = d.crs
    # facilities
    F = d.fac
    facilities = gpd.GeoDataFrame({
        "facility_id": F["facility_id"], "type": F["type"], "name": F["name"],
        "capacity": F["capacity"].astype(float), "source": F["source"],
    }, geometry=shapely.points(F["x"], F["y"]), crs=crs)
    facilities.attrs["sample_gaps"] = {k: list(v) for k, v in d.gaps.items()}
    H = d.cmp
    complaints = gpd.GeoDataFrame({
        "complaint_id": H["complaint_id"], "category": H["category"], "date": H["date"],
        "text": H["text"]}, geometry=shapely.points(H["x"], H["y"]), crs=crs)
    complaints.attrs["parking_hotspot"] = str(comp_id[d.hotspot])
    S = d.srv
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(S["x"], S["y"])
    survey = pd.DataFrame({"respondent_id": S["respondent_id"], "age": S["age"], "sex": S["sex"],
                           "committee_id": S["committee_id"], "lon": np.round(lon, 7),
                           "lat": np.round(lat, 7),
                           **{c: S[c] for c in SAT_ITEMS}, "comment": S["comment"]})
    survey.attrs["under_sampled"] = list(d.under_sampled)
    survey.attrs["items"] = dict(SAT_ITEMS)
    return {"facilities": facilities, "complaints": complaints, "survey": survey}


def district_frames(d: District) -> Frames:
    """Every layer of the district, in the order of ``make_sample_district``'s result."""
    admin, comp_id = _admin_frames(d)
    return {**admin, **_physical_frames(d, comp_id), **_service_frames(d, comp_id)}


def make_sample_district(*, seed: int | None = None, scale: float = 1.0
                         ) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    """Generate the sample district in memory.

    Parameters
    ----------
    seed : int, optional
        Random seed; default ``settings.random_seed``. Same seed and scale → same layers.
    scale : float
        Area multiplier: 1 → ~25 km² and 120,000 residents; 18.4 → ~460 km² and ~1.8
        million residents (residents grow as ``scale ** 0.93``).

    Returns
    -------
    dict
        GeoDataFrames ``boundary``, ``towns``, ``committees``, ``compounds``,
        ``buildings``, ``roads``, ``water``, ``rail``, ``parks``, ``facilities``,
        ``complaints`` in ``settings.metric_crs`` (metres), and the DataFrame ``survey``
        (lon/lat in WGS84). See the :mod:`geotijian.sample` docstring for the fields and the
        properties tests may rely on (``attrs`` of compounds, facilities, survey,
        complaints).
    """
    seed = settings.random_seed if seed is None else int(seed)
    return district_frames(generate(seed, scale))
