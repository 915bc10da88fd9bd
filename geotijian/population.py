"""Residents on compounds (小区): from an attribute, a population raster, or buildings.

``allocate_population(compounds, source=...)`` returns the compounds with a ``population``
column (persons) and a report. Three sources:

``"attribute"``
    The compounds' own ``population`` column (e.g. from the committee register).
``"raster"``
    A population raster (WorldPop-style GeoTIFF, persons per pixel): each pixel is split
    among the compounds by the share of its area inside each (exact polygon × pixel-square
    intersections, vectorised with shapely 2); the raster total inside the study area is
    reported beside the total put on compounds, the difference being residents outside
    compounds.
``"buildings"``
    Residential buildings: footprint (m²) × levels ÷ ``settings.floor_area_per_person_m2``
    (35 m² per resident, GB 50180-2018 条文说明); levels from ``levels``, else
    ``height`` ÷ ``settings.level_height_m``, else ``settings.default_building_levels``
    (reported). A building's residents go to the compounds it overlaps, by area share.

With ``totals`` (a known population per town or committee), the compounds of each group are
scaled so that they hold exactly that total: totals are conserved, and the report gives,
per group, the estimate before scaling, the factor and the residual.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from os import PathLike
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from . import settings
from .errors import LayerError, RasterError, RepairWarning

__all__ = ["allocate_population", "RESIDENTIAL_USES", "building_population"]

#: ``use`` / OSM ``building=*`` values counted as housing. ``yes`` and empty values count
#: only inside a compound (OSM maps most residential blocks as ``building=yes``).
RESIDENTIAL_USES = frozenset({
    "residential", "apartments", "house", "detached", "semidetached_house", "terrace",
    "dormitory", "bungalow", "villa", "住宅", "居住", "residential;commercial",
})
_EPS = 1e-9  # persons: an estimate below this is no estimate (avoids an infinite scale factor)
_AMBIGUOUS_USES = frozenset({"", "yes", "nan", "none", "building"})


def _metric(gdf: Any, layer: str) -> CRS:
    if getattr(gdf, "crs", None) is None:
        raise LayerError(layer, "the layer has no CRS", fix="set its CRS or read it with read_layer")
    crs = CRS.from_user_input(gdf.crs)
    if not crs.is_projected:
        raise LayerError(layer, f"the layer is in {crs.to_string()}, a geographic CRS: areas need metres",
                         fix=f"reproject it first, e.g. gdf.to_crs({settings.metric_crs!r})")
    return crs


def _ids(gdf: pd.DataFrame, col: str) -> np.ndarray:
    return gdf[col].astype(str).to_numpy() if col in gdf.columns else np.arange(len(gdf)).astype(str)


def _check_values(v: np.ndarray, layer: str, col: str, ids: np.ndarray, *, allow_nan: bool) -> None:
    nan = np.isnan(v)
    if nan.any() and not allow_nan:
        k = int(np.flatnonzero(nan)[0])
        raise LayerError(layer, f"missing {col}", feature=k, feature_id=ids[k], count=int(nan.sum()),
                         fix=f"fill {col}, or estimate it with source='buildings' or source='raster'")
    neg = v < 0
    if neg.any():
        k = int(np.flatnonzero(neg)[0])
        raise LayerError(layer, f"negative {col} ({v[k]:g})", feature=k, feature_id=ids[k],
                         count=int(neg.sum()), fix=f"correct the {col} values")


def allocate_population(
    compounds: gpd.GeoDataFrame,
    *,
    source: str = "attribute",
    raster: Any = None,
    buildings: gpd.GeoDataFrame | None = None,
    totals: Any = None,
    total_by: str | None = None,
    study_area: Any = None,
    column: str = "population",
    outside: str = "residual",
) -> tuple[gpd.GeoDataFrame, dict]:
    """Put residents on compounds, conserving known totals, and report the residual.

    Parameters
    ----------
    compounds : geopandas.GeoDataFrame
        Compound polygons (metric CRS) with ``compound_id``.
    source : {"attribute", "raster", "buildings"}
        Where residents come from (see the module docstring).
    raster : path or open rasterio dataset, optional
        Population raster (persons per pixel) for ``source="raster"``. Any CRS; nodata
        pixels count as 0 (reported).
    buildings : geopandas.GeoDataFrame, optional
        Building footprints for ``source="buildings"`` with ``levels``/``height``/``use``.
    totals : Mapping, Series or GeoDataFrame, optional
        Known populations (persons) per group. A mapping/Series is keyed by the values of
        ``compounds[total_by]``; a GeoDataFrame of towns or committees (with ``population``
        and an ID column named ``total_by``) assigns each compound to the polygon covering
        most of it.
    total_by : str, optional
        Group column: ``"town_code"`` or ``"committee_id"``. Required with ``totals``.
    study_area : GeoDataFrame, GeoSeries or geometry, optional
        For the raster: the area whose raster total is reported (default: the compounds'
        bounding box window).
    column : str
        Attribute column holding residents (source ``"attribute"``), default
        ``population``.
    outside : {"residual", "homes"}
        Residents of housing outside every compound (``source="buildings"``): warned as the
        ``residual`` (default), or each residential building (its part outside) becomes a
        row with ``home_kind = "building"`` and ``compound_id`` = its ``building_id``,
        scaled with the compounds (``build_units`` and ``run_study`` do this).

    Returns
    -------
    compounds : geopandas.GeoDataFrame
        A copy with ``population`` (persons, float) and, where scaled, ``population_estimate``
        (before scaling); with ``outside="homes"`` also ``home_kind`` (``"compound"``, or
        ``"building"`` for the rows of housing outside every compound, after the compounds).
    report : dict
        ``source``, ``allocated`` (persons on compounds), ``source_total`` (raster total in
        the study area / building estimate / attribute sum), ``residual`` (source total not on
        compounds: outside compounds, or groups without compounds), ``notes`` (repairs),
        ``outside_compounds`` (residents of the source outside every compound: persons,
        share, buildings, first building IDs, and what became of them), and ``groups``
        (DataFrame: group, known total, estimate, factor, allocated, residual) when totals
        are given.

    Raises
    ------
    LayerError
        Missing or negative values, no CRS or a geographic CRS, a missing column.
    RasterError
        An unreadable raster, negative pixel values, a raster not covering the compounds.
    """
    crs = _metric(compounds, "compounds")
    if outside not in ("residual", "homes"):
        raise ValueError(f"outside must be 'residual' or 'homes', not {outside!r}")
    out = compounds.copy()
    ids = _ids(out, "compound_id")
    notes: list[str] = []
    loose = None
    if source == "attribute":
        if column not in out.columns:
            raise LayerError("compounds", f"no '{column}' column for source='attribute'",
                             fix="add the population column, or use source='raster' or 'buildings'")
        est = pd.to_numeric(out[column], errors="coerce").to_numpy(dtype=float)
        _check_values(est, "compounds", column, ids, allow_nan=False)
        src_total = float(est.sum())
        outside_est = 0.0
    elif source == "raster":
        if raster is None:
            raise RasterError("source='raster' needs raster= (a population GeoTIFF, persons per pixel)")
        est, src_total, outside_est, rnotes = _raster_population(out, crs, raster, study_area)
        notes += rnotes
    elif source == "buildings":
        if buildings is None:
            raise LayerError("buildings", "source='buildings' needs buildings=",
                             fix="give the building footprints (with levels where known)")
        est, src_total, outside_est, bnotes, loose = _buildings_population(out, crs, buildings)
        notes += bnotes
    else:
        raise ValueError(f"source must be 'attribute', 'raster' or 'buildings', not {source!r}")

    report: dict[str, Any] = {"source": source, "source_total": src_total, "notes": notes}
    if outside_est >= 0.5:  # persons: float dust of the area shares is no resident
        out, est, outside_est, report["outside_compounds"] = _outside_compounds(
            out, est, outside_est, src_total, source, loose, keep=outside == "homes", notes=notes)
    if totals is not None:
        pop, groups, gnotes = _scale_to_totals(out, crs, est, totals, total_by)
        out["population_estimate"] = est
        notes += gnotes
        report["groups"] = groups
        known = float(groups["known_total"].sum())
        report["known_total"] = known
        report["allocated"] = float(pop.sum())
        report["residual"] = float(groups["residual"].sum())
        report["outside_compounds_estimate"] = outside_est
    else:
        pop = est
        report["allocated"] = float(pop.sum())
        report["residual"] = float(outside_est)
    out["population"] = pop
    report["residual_share"] = (report["residual"] / report["source_total"]
                                if report["source_total"] else 0.0)
    for n in notes:
        warnings.warn(f"population: {n}", RepairWarning, stacklevel=2)
    return out, report


def _outside_compounds(out: gpd.GeoDataFrame, est: np.ndarray, outside_est: float, src_total: float,
                       source: str, loose: gpd.GeoDataFrame | None, *, keep: bool,
                       notes: list[str]) -> tuple[gpd.GeoDataFrame, np.ndarray, float, dict]:
    """Residents of the source outside every compound: said (``notes``), and with ``keep``
    the housing outside (``loose``) appended as homes of their own (``home_kind``)."""
    share = outside_est / src_total if src_total else 0.0
    rec: dict[str, Any] = {"residents": float(outside_est), "share": float(share)}
    if loose is not None:
        rec.update(buildings=int(len(loose)), first=loose["compound_id"].head(5).tolist())
    if loose is not None and keep:
        loose = _loose_ids(loose, _ids(out, "compound_id"))
        rec["kept_as"] = "homes"
        notes.append(f"{outside_est:,.0f} residents ({share:.1%} of the {src_total:,.0f} from buildings) live "
                     f"in {len(loose):,} residential building(s) outside every compound (first: "
                     f"{', '.join(loose['compound_id'].head(5))}): each is kept as a home of its own "
                     "(home_kind 'building'), counted in its unit and in coverage")
        crs = out.crs
        out = out.assign(home_kind="compound")
        out = gpd.GeoDataFrame(pd.concat([out, loose], ignore_index=True), geometry=out.geometry.name, crs=crs)
        est = np.r_[est, loose["population"].to_numpy(dtype=float)]
        # what is left (slivers of buildings along a compound edge) stays the residual
        return out, est, max(0.0, outside_est - float(loose["population"].sum())), rec
    rec["kept_as"] = "residual"
    where = (f"in {len(loose):,} residential building(s) outside every compound (first: "
             f"{', '.join(loose['compound_id'].head(5))})" if loose is not None else "outside every compound")
    how = ("outside='homes' keeps them as homes of their own" if loose is not None else
           "a raster has no buildings to make homes of: add the compounds that hold them")
    notes.append(f"{outside_est:,.0f} residents ({share:.1%} of the {src_total:,.0f} from the {source}) live "
                 f"{where}: they are on no compound and are reported as the residual ({how})")
    return out, est, outside_est, rec


# ----------------------------------------------------------------------------- raster

def _raster_population(comp: gpd.GeoDataFrame, crs: CRS, raster: Any, study_area: Any):
    import rasterio
    from rasterio.windows import Window, from_bounds

    notes: list[str] = []
    own = False
    if isinstance(raster, (str, PathLike)):
        try:
            ds = rasterio.open(raster)
        except Exception as e:  # rasterio raises RasterioIOError and friends
            raise RasterError(f"cannot open the population raster {raster}: {e}") from e
        own = True
    else:
        ds = raster
    try:
        if ds.crs is None:
            raise RasterError(f"the population raster {getattr(ds, 'name', '')} has no CRS; "
                              "assign one (gdal_edit.py -a_srs EPSG:4326)")
        rcrs = CRS.from_user_input(ds.crs)
        cg = comp.to_crs(rcrs).geometry.values if rcrs != crs else comp.geometry.values
        cg = np.asarray(cg, dtype=object)
        if study_area is not None:
            if isinstance(study_area, shapely.Geometry):
                sa = gpd.GeoSeries([study_area], crs=crs)
            else:
                sa = study_area.geometry if isinstance(study_area, gpd.GeoDataFrame) else study_area
            sa_geom = shapely.union_all(np.asarray(sa.to_crs(rcrs).values, dtype=object))
        else:
            sa_geom = None
        bx = shapely.total_bounds(np.r_[cg, [sa_geom]] if sa_geom is not None else cg)
        rb = ds.bounds
        if bx[2] <= rb.left or bx[0] >= rb.right or bx[3] <= rb.bottom or bx[1] >= rb.top:
            raise RasterError("the population raster does not cover the compounds "
                              f"(raster bounds {tuple(round(v, 4) for v in rb)}, compounds "
                              f"{tuple(round(v, 4) for v in bx)} in {rcrs.to_string()}); check its CRS")
        fw = from_bounds(*bx, transform=ds.transform)
        c0, r0 = int(np.floor(fw.col_off)), int(np.floor(fw.row_off))
        c1 = int(np.ceil(fw.col_off + fw.width))
        r1 = int(np.ceil(fw.row_off + fw.height))
        c0, r0 = max(c0, 0), max(r0, 0)
        c1, r1 = min(c1, ds.width), min(r1, ds.height)
        win = Window(c0, r0, c1 - c0, r1 - r0)
        if ds.transform.b != 0 or ds.transform.d != 0:
            raise RasterError("the population raster is rotated (sheared geotransform); warp it north-up "
                              "first (gdalwarp)")
        arr = ds.read(1, window=win, masked=True).astype(float)
        tr = ds.window_transform(win)
        nod = int(np.ma.count_masked(arr))
        vals = np.ma.filled(arr, 0.0)
        vals[~np.isfinite(vals)] = 0.0
        if (vals < 0).any():
            raise RasterError(f"the population raster has {int((vals < 0).sum())} negative pixel values "
                              "(persons cannot be negative); set them as nodata")
        if nod:
            notes.append(f"{nod} nodata pixels in the raster window counted as 0 residents")
    finally:
        if own:
            ds.close()

    rows, cols = np.nonzero(vals > 0)
    v = vals[rows, cols]
    # pixel squares in the raster CRS (north-up rasters; the affine corners give the box)
    x0 = tr.a * cols + tr.b * rows + tr.c
    y0 = tr.d * cols + tr.e * rows + tr.f
    x1 = tr.a * (cols + 1) + tr.b * (rows + 1) + tr.c
    y1 = tr.d * (cols + 1) + tr.e * (rows + 1) + tr.f
    pix = shapely.box(np.minimum(x0, x1), np.minimum(y0, y1), np.maximum(x0, x1), np.maximum(y0, y1))
    parea = shapely.area(pix)
    tree = shapely.STRtree(pix)
    ci, pi = tree.query(cg, predicate="intersects")
    share = shapely.area(shapely.intersection(cg[ci], pix[pi])) / parea[pi]
    # overlapping compounds must not count a pixel twice
    tot = np.bincount(pi, weights=share, minlength=len(pix))
    over = tot > 1 + 1e-9
    if over.any():
        share = np.where(over[pi], share / tot[pi], share)
        notes.append(f"{int(over.sum())} raster pixels are covered by overlapping compounds; "
                     "their residents were split in proportion to the overlaps")
    est = np.bincount(ci, weights=share * v[pi], minlength=len(cg))
    if sa_geom is not None:
        shapely.prepare(sa_geom)
        inside = shapely.contains(sa_geom, pix)
        part = ~inside & shapely.intersects(sa_geom, pix)
        fr = np.zeros(len(pix))
        fr[inside] = 1.0
        fr[part] = shapely.area(shapely.intersection(pix[part], sa_geom)) / parea[part]
        src_total = float((fr * v).sum())
    else:
        src_total = float(v.sum())
        notes.append("no study area given: the raster total is that of the window around the compounds")
    return est, src_total, max(0.0, src_total - float(est.sum())), notes


# ----------------------------------------------------------------------------- buildings

def building_population(buildings: gpd.GeoDataFrame, *, residential_only: bool = True) -> tuple[np.ndarray, dict]:
    """Residents per building: footprint (m²) × levels ÷ ``settings.floor_area_per_person_m2``.

    Parameters
    ----------
    buildings : geopandas.GeoDataFrame
        Footprints in a metric CRS; optional ``levels``, ``height`` (metres), ``use``.
    residential_only : bool
        Count only buildings whose ``use`` is in :data:`RESIDENTIAL_USES` or ambiguous
        (``yes``/empty; the caller keeps those inside compounds only).

    Returns
    -------
    residents : numpy.ndarray
        Persons per building (0 for non-residential).
    info : dict
        ``ambiguous`` mask (use ``yes``/empty), counts of levels taken from height or
        defaulted.
    """
    _metric(buildings, "buildings")
    ids = _ids(buildings, "building_id")
    n = len(buildings)
    lv = (pd.to_numeric(buildings["levels"], errors="coerce").to_numpy(dtype=float)
          if "levels" in buildings.columns else np.full(n, np.nan))
    ht = (pd.to_numeric(buildings["height"], errors="coerce").to_numpy(dtype=float)
          if "height" in buildings.columns else np.full(n, np.nan))
    _check_values(lv, "buildings", "levels", ids, allow_nan=True)
    _check_values(ht, "buildings", "height", ids, allow_nan=True)
    from_h = np.isnan(lv) & ~np.isnan(ht)
    lv = np.where(from_h, np.maximum(1.0, np.round(ht / settings.level_height_m)), lv)
    dflt = np.isnan(lv)
    lv = np.where(dflt, float(settings.default_building_levels), lv)
    use = (buildings["use"].fillna("").astype(str).str.strip().str.lower().to_numpy()
           if "use" in buildings.columns else np.full(n, ""))
    res = np.isin(use, list(RESIDENTIAL_USES))
    amb = np.isin(use, list(_AMBIGUOUS_USES))
    count = res | amb if residential_only else np.ones(n, dtype=bool)
    fp = shapely.area(np.asarray(buildings.geometry.values, dtype=object))
    persons = np.where(count, fp * lv / settings.floor_area_per_person_m2, 0.0)
    return persons, {"ambiguous": amb & count, "residential": res, "levels_from_height": int(from_h.sum()),
                     "levels_default": int((dflt & count).sum())}


def _buildings_population(comp: gpd.GeoDataFrame, crs: CRS, buildings: gpd.GeoDataFrame):
    notes: list[str] = []
    _metric(buildings, "buildings")
    b = buildings.to_crs(crs) if CRS.from_user_input(buildings.crs) != crs else buildings
    persons, info = building_population(b)
    bg = np.asarray(b.geometry.values, dtype=object)
    cg = np.asarray(comp.geometry.values, dtype=object)
    tree = shapely.STRtree(cg)
    bi, ci = tree.query(bg, predicate="intersects")
    share = shapely.area(shapely.intersection(bg[bi], cg[ci])) / np.maximum(shapely.area(bg[bi]), 1e-9)
    tot = np.bincount(bi, weights=share, minlength=len(bg))
    over = tot > 1 + 1e-9
    if over.any():
        share = np.where(over[bi], share / tot[bi], share)
        notes.append(f"{int(over.sum())} buildings lie in overlapping compounds; split in proportion")
        tot = np.minimum(tot, 1.0)
    amb = info["ambiguous"]
    # ambiguous buildings (building=yes) count only for their part inside compounds
    src = np.where(amb, persons * tot, persons)
    est = np.bincount(ci, weights=share * persons[bi], minlength=len(cg))
    src_total = float(src.sum())
    outside = float(src_total - est.sum())
    # housing outside every compound (or the part of it outside): homes of their own
    out_persons = np.where(amb, 0.0, persons * np.clip(1.0 - tot, 0.0, 1.0))
    lo = np.flatnonzero(out_persons > 1e-6 * np.maximum(persons, 1e-9))
    loose_g = bg[lo].copy()
    part = tot[lo] > 1e-9
    if part.any():
        shapely.prepare(cg)
        cu = shapely.union_all(cg[np.unique(ci[np.isin(bi, lo[part])])])
        loose_g[part] = shapely.difference(loose_g[part], cu)
    ok = ~shapely.is_empty(loose_g) & (shapely.area(loose_g) > 0)
    lo, loose_g = lo[ok], loose_g[ok]
    bid = _ids(b, "building_id")
    loose = gpd.GeoDataFrame({"compound_id": bid[lo], "name": "散居住宅 residential building outside compounds",
                              "population": out_persons[lo], "home_kind": "building"},
                             geometry=loose_g, crs=crs)
    loose = loose.rename_geometry(comp.geometry.name) if comp.geometry.name != "geometry" else loose
    if info["levels_default"]:
        notes.append(f"{info['levels_default']} residential buildings have no levels or height: "
                     f"{settings.default_building_levels} levels assumed (settings.default_building_levels)")
    if info["levels_from_height"]:
        notes.append(f"{info['levels_from_height']} buildings: levels from height ÷ "
                     f"{settings.level_height_m:g} m")
    return est, src_total, max(0.0, outside), notes, loose


def _loose_ids(loose: gpd.GeoDataFrame, compound_ids: np.ndarray) -> gpd.GeoDataFrame:
    """Building IDs as home IDs; prefixed ``bldg-`` when one collides with a compound ID."""
    if np.isin(loose["compound_id"].to_numpy(), compound_ids).any():
        loose = loose.assign(compound_id="bldg-" + loose["compound_id"].astype(str))
    return loose


# ----------------------------------------------------------------------------- totals

def _scale_to_totals(comp: gpd.GeoDataFrame, crs: CRS, est: np.ndarray, totals: Any, total_by: str | None):
    notes: list[str] = []
    if total_by is None:
        raise ValueError("totals= needs total_by= ('town_code' or 'committee_id')")
    ids = _ids(comp, "compound_id")
    if isinstance(totals, gpd.GeoDataFrame):
        _metric(totals, "totals")
        if total_by not in totals.columns or "population" not in totals.columns:
            raise LayerError("totals", f"the totals layer needs '{total_by}' and 'population' columns",
                             fix="give the towns or committees layer read with read_layer")
        t = totals.to_crs(crs) if CRS.from_user_input(totals.crs) != crs else totals
        tg = np.asarray(t.geometry.values, dtype=object)
        cg = np.asarray(comp.geometry.values, dtype=object)
        ci, ti = shapely.STRtree(tg).query(cg, predicate="intersects")
        ov = np.round(shapely.area(shapely.intersection(cg[ci], tg[ti])), 1)
        tkeys = t[total_by].astype(str).to_numpy()
        d = pd.DataFrame({"c": ci, "t": ti, "ov": ov, "k": tkeys[ti]})
        d = d[d["ov"] > 0].sort_values(["c", "ov", "k"], ascending=[True, False, True]).drop_duplicates("c")
        key = np.full(len(cg), None, dtype=object)
        key[d["c"].to_numpy()] = tkeys[d["t"].to_numpy()]
        known = pd.Series(pd.to_numeric(t["population"], errors="coerce").to_numpy(dtype=float), index=tkeys)
    else:
        if total_by not in comp.columns:
            raise LayerError("compounds", f"no '{total_by}' column to match the totals to",
                             fix=f"add {total_by} to the compounds, or give totals as a polygon layer")
        key = comp[total_by].astype(str).to_numpy().astype(object)
        key[comp[total_by].isna().to_numpy()] = None
        known = pd.Series(dict(totals) if isinstance(totals, Mapping) else totals, dtype=float)
        known.index = known.index.astype(str)
    _check_values(known.to_numpy(dtype=float), "totals", "population", known.index.to_numpy(), allow_nan=False)
    grp = pd.Series(est).groupby(pd.Series(key, dtype=object)).sum()
    groups = pd.DataFrame({"known_total": known})
    groups["estimate"] = grp.reindex(groups.index).fillna(0.0)
    groups["compounds"] = pd.Series(key).value_counts().reindex(groups.index).fillna(0).astype(int)
    with np.errstate(divide="ignore", invalid="ignore"):
        groups["factor"] = np.where(groups["estimate"] > _EPS, groups["known_total"] / groups["estimate"], np.nan)
    # groups with compounds but an estimate of 0: residents spread by area
    area = shapely.area(np.asarray(comp.geometry.values, dtype=object))
    pop = est.copy()
    factor = groups["factor"].reindex(key).to_numpy(dtype=float)
    has = ~pd.isna(key)
    scaled = has & np.isfinite(factor)
    pop[scaled] = est[scaled] * factor[scaled]
    zero = groups.index[(groups["estimate"] <= _EPS) & (groups["compounds"] > 0) & (groups["known_total"] > 0)]
    for gk in zero:  # loop over groups (towns/committees), not features
        m = key == gk
        pop[m] = groups.at[gk, "known_total"] * area[m] / area[m].sum()
        notes.append(f"group {gk}: the source puts no residents on its compounds; its total of "
                     f"{groups.at[gk, 'known_total']:,.0f} is spread by compound area")
    groups["allocated"] = pd.Series(pop).groupby(pd.Series(key, dtype=object)).sum().reindex(groups.index).fillna(0.0)
    groups["residual"] = groups["known_total"] - groups["allocated"]
    empty = groups.index[groups["compounds"] == 0]
    if len(empty):
        notes.append(f"{len(empty)} group(s) of the totals hold no compound; their "
                     f"{groups.loc[empty, 'known_total'].sum():,.0f} residents are the residual "
                     f"(first: {empty[0]})")
    nogroup = int((~has).sum())
    if nogroup:
        notes.append(f"{nogroup} compound(s) fall in no group of the totals and keep their estimate "
                     f"(first: {ids[np.flatnonzero(~has)[0]]})")
    groups.index.name = total_by
    return pop, groups.reset_index(), notes
