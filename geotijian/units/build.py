"""Blocks → residents on compounds → units in one call (:func:`build_units`, what
``geotijian units`` and the study run).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from ..errors import LayerError
from ..io.topology import clip_to_area
from .blocks import delineate_blocks, refine_blocks
from .compounds import assign_compounds, compounds_from_landuse
from .delineate import _delineate_units
from .table import range_compliance


def build_units(
    roads: gpd.GeoDataFrame,
    compounds: gpd.GeoDataFrame | None = None,
    *,
    boundary: Any = None,
    committees: gpd.GeoDataFrame | None = None,
    towns: gpd.GeoDataFrame | None = None,
    water: gpd.GeoDataFrame | None = None,
    rail: gpd.GeoDataFrame | None = None,
    residential: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    raster: Any = None,
    population_source: str | None = None,
    totals: Any = None,
    total_by: str | None = None,
    road_classes: Sequence[str] | None = None,
    sliver_area_m2: float | None = None,
    refine_dense_blocks: bool = True,
    min_pop: float | None = None,
    max_pop: float | None = None,
    strict: bool = False,
) -> dict[str, Any]:
    """Blocks → residents on compounds → units, in one call (what ``geotijian units`` runs).

    Parameters
    ----------
    roads : geopandas.GeoDataFrame
        Road centre lines with ``highway`` (metric CRS).
    compounds : geopandas.GeoDataFrame, optional
        Compounds (小区); without them, ``residential`` (OSM ``landuse=residential``)
        polygons become compounds (:func:`compounds_from_landuse`).
    boundary : GeoDataFrame or geometry, optional
        Study boundary; default the union of ``towns``, else of ``committees``.
    committees, towns : geopandas.GeoDataFrame, optional
        See :func:`delineate_units`.
    water, rail : geopandas.GeoDataFrame, optional
        Barriers (see :func:`delineate_blocks`).
    residential : geopandas.GeoDataFrame, optional
        OSM ``landuse=residential`` polygons, used when ``compounds`` is None.
    buildings, raster, totals, total_by : optional
        Passed to :func:`geotijian.population.allocate_population`.
    population_source : {"attribute", "raster", "buildings"}, optional
        Default: ``attribute`` when the compounds have a ``population`` column, else
        ``buildings`` when buildings are given, else ``raster``.
    road_classes, sliver_area_m2 : optional
        See :func:`delineate_blocks`.
    refine_dense_blocks : bool
        Cut blocks holding more than ``max_pop`` residents in several compounds by the
        finer public streets inside them (:func:`refine_blocks`).
    min_pop, max_pop, strict : optional
        See :func:`delineate_units`.

    Returns
    -------
    dict
        ``blocks`` (with ``population``, ``unit_id``), ``compounds`` (with ``population``,
        ``block_id``, ``unit_id``), ``homes`` (the compounds and, with residents from
        buildings, the residential buildings outside every compound, ``home_kind``
        ``"building"``: every resident is on a home and in a unit), ``units``,
        ``compliance`` (:func:`range_compliance`) and ``report`` (blocks, population,
        feasibility, and ``clipped``: compounds and buildings reaching outside the
        boundary, clipped to it and warned about).
    """
    from ..population import allocate_population  # population → units, one way

    if compounds is None:
        if residential is None:
            raise LayerError("compounds", "no compound layer and no landuse=residential polygons",
                             fix="give a compounds layer (小区) or OSM residential areas")
        compounds = compounds_from_landuse(residential)
    if boundary is None:
        src = towns if towns is not None else committees
        if src is None:
            raise LayerError("boundary", "no study boundary, towns or committees to delimit the blocks",
                             fix="give the study boundary")
        boundary = shapely.union_all(np.asarray(src.to_crs(roads.crs).geometry.values, dtype=object))
    if population_source is None:
        population_source = ("attribute" if "population" in compounds.columns and
                             compounds["population"].notna().all() else
                             "buildings" if buildings is not None else "raster")
    compounds, buildings, clipped = _clip_inputs(compounds, buildings, boundary, roads.crs, population_source)
    bars = [x for x in (water, rail) if x is not None and len(x)]
    blocks = delineate_blocks(roads, boundary, barriers=bars, towns=towns, road_classes=road_classes,
                              sliver_area_m2=sliver_area_m2)
    comp, prep = allocate_population(compounds, source=population_source, raster=raster, buildings=buildings,
                                     totals=totals, total_by=total_by,
                                     study_area=boundary if population_source == "raster" else None,
                                     outside="homes")
    if refine_dense_blocks:
        blocks = refine_blocks(blocks, roads, comp, max_pop=max_pop, sliver_area_m2=sliver_area_m2)
    units, used, bl, cp = _delineate_units(blocks, comp, committees, towns, min_pop=min_pop, max_pop=max_pop,
                                           gap_m=None, min_overlap_share=None, strict=strict,
                                           default_town_code="T1")
    meta = units.attrs["geotijian"]
    if not _same_blocks(blocks, used, comp):  # delineate_units gave the blocks another town_code or index
        bl, cp = assign_compounds(blocks, comp)
    bl["unit_id"] = bl["block_id"].map(meta["block_unit"].to_series())
    cp["unit_id"] = cp["compound_id"].astype(str).map(meta["compound_unit"].to_series())
    cp, homes = _split_homes(bl, cp)
    bl = bl[["block_id", "town_code", "population", "area_ha", "group_id", "households", "compound_count",
             "unit_id", "geometry"]].sort_values("block_id").reset_index(drop=True)
    return {
        "blocks": bl,
        "compounds": cp,
        "homes": homes,
        "units": units,
        "compliance": range_compliance(units),
        "report": {"blocks": blocks.attrs["geotijian"]["report"], "population": prep,
                   "feasibility": meta["feasibility"], "units": meta["report"], "clipped": clipped},
    }


def _same_blocks(blocks: gpd.GeoDataFrame, used: gpd.GeoDataFrame, comp: gpd.GeoDataFrame) -> bool:
    """Did :func:`delineate_units` attach the compounds to these very blocks (same rows, index
    and ``town_code``), so that its :func:`assign_compounds` result is this one?"""
    rng = (isinstance(blocks.index, pd.RangeIndex) and blocks.index.equals(pd.RangeIndex(len(blocks)))
           and isinstance(comp.index, pd.RangeIndex) and comp.index.equals(pd.RangeIndex(len(comp))))
    return bool(rng and "town_code" in blocks.columns and len(used) == len(blocks)
                and blocks["town_code"].dtype == used["town_code"].dtype
                and blocks["town_code"].equals(used["town_code"]))


def _clip_inputs(compounds: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame | None, boundary: Any, crs: Any,
                 source: str) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame | None, dict]:
    """Compounds (and, for residents from buildings, buildings) clipped to the study
    boundary, warned (:func:`geotijian.io.topology.clip_to_area`)."""
    compounds = _metric_layer(compounds, crs, "compounds")
    kept = (" (their residents, from the population attribute, are kept whole: check the boundary)"
            if source == "attribute" else "")
    compounds, clip_rep = clip_to_area(compounds, boundary, name="compounds" + kept, id_field="compound_id")
    clipped = {"compounds": clip_rep}
    if source == "buildings" and buildings is not None:
        buildings, clipped["buildings"] = clip_to_area(_metric_layer(buildings, crs, "buildings"), boundary,
                                                       name="buildings", id_field="building_id",
                                                       drop_outside=True)
    return compounds, buildings, clipped


def _split_homes(bl: gpd.GeoDataFrame, cp: gpd.GeoDataFrame) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The compounds, and every home (compounds and housing outside them, ``home_kind``);
    ``bl["compound_count"]`` counts compounds only (in place)."""
    if "home_kind" not in cp.columns:
        return cp, cp.assign(home_kind="compound")
    loose = (cp["home_kind"] == "building").to_numpy()
    bl["compound_count"] = bl["compound_count"] - np.bincount(
        pd.Index(bl["block_id"]).get_indexer(cp.loc[loose, "block_id"]), minlength=len(bl))
    comp = cp[~loose].drop(columns="home_kind").reset_index(drop=True)
    comp.attrs = cp.attrs
    return comp, cp


def _metric_layer(gdf: gpd.GeoDataFrame, crs: Any, name: str) -> gpd.GeoDataFrame:
    """The layer in ``crs`` (the roads' metric CRS)."""
    if gdf.crs is None:
        raise LayerError(name, "the layer has no CRS", fix="read it with read_layer")
    return gdf if CRS.from_user_input(gdf.crs).equals(CRS.from_user_input(crs)) else gdf.to_crs(crs)
