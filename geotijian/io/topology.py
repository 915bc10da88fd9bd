"""Topology of the administrative and residential layers: overlaps, gaps, dangling codes.

``read_layer`` checks one layer at a time; this module checks layers against each other
and against the study boundary, before any unit is drawn:

* ``check_topology(towns=..., committees=..., compounds=...)``: committees that overlap
  (one covering most of another is an error: the covered one would vanish from every
  unit), gaps between committees, committees naming an unknown town, compounds naming an
  unknown committee, duplicated compounds (an error when they carry a population: their
  residents would be counted twice) and overlapping ones, compound populations against the
  committees' totals, and implausibly large compounds;
* ``clip_to_area(layer, area)``: features reaching outside the study boundary are clipped
  to it and reported (those mostly outside by name).

Every finding is warned (:class:`~geotijian.errors.TopologyWarning`) with counts and the
first IDs, and returned in a report dict (written to ``run.json`` by ``run_study``); a
finding that would make the results wrong is a :class:`~geotijian.errors.LayerError`
naming the features and the fix.
"""

from __future__ import annotations

import warnings
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS

from .. import settings
from ..errors import LayerError, RepairWarning, TopologyWarning

__all__ = ["check_topology", "clip_to_area"]

#: overlap (share of the smaller polygon) at and above which a committee "covers" another
COVER_SHARE = 0.5
#: overlap (share of each polygon) at and above which two compounds are duplicates
DUPLICATE_SHARE = 0.95
#: overlaps and gaps under this area (m²) are digitising noise: counted, not warned
NOISE_AREA_M2 = 1.0
_FIRST = 5


def _geoms(gdf: gpd.GeoDataFrame, crs: CRS | None) -> np.ndarray:
    if crs is not None and gdf.crs is not None and not CRS.from_user_input(gdf.crs).equals(crs):
        gdf = gdf.to_crs(crs)
    return np.asarray(gdf.geometry.values, dtype=object)


def _ids(gdf: pd.DataFrame, col: str) -> np.ndarray:
    return gdf[col].astype(str).to_numpy() if col in gdf.columns else np.arange(len(gdf)).astype(str)


def _pairs(geoms: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pairs (i < j) of polygons whose interiors overlap, with the overlap area (m²)."""
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    ov = shapely.area(shapely.intersection(geoms[i], geoms[j])) if len(i) else np.zeros(0)
    keep = ov > 0
    return i[keep], j[keep], ov[keep]


def _pct(x: float) -> str:
    """A share as a percentage that never rounds a part to 0 % or 100 %."""
    return f"{x:.1%}" if (x > 0.995 or x < 0.005) else f"{x:.0%}"


def _first_n(items: list[str], n: int) -> str:
    """The first items, and how many more there are of ``n`` in all."""
    shown = ", ".join(items[:_FIRST])
    return shown + (f" and {n - len(items[:_FIRST])} more" if n > len(items[:_FIRST]) else "")


def check_topology(
    *,
    boundary: Any = None,
    towns: gpd.GeoDataFrame | None = None,
    committees: gpd.GeoDataFrame | None = None,
    compounds: gpd.GeoDataFrame | None = None,
    water: gpd.GeoDataFrame | None = None,
) -> dict[str, Any]:
    """Check towns, committees and compounds against each other (see the module docstring).

    Parameters
    ----------
    boundary : GeoDataFrame or geometry, optional
        Study boundary; gaps between committees are measured inside it (default: the union
        of the towns, else no gap check).
    towns, committees, compounds : geopandas.GeoDataFrame, optional
        As read by ``read_layer`` (metric CRS; ``town_code``, ``committee_id``,
        ``compound_id``, optional ``population``).
    water : geopandas.GeoDataFrame, optional
        Water; its polygons are no gap (committees often stop at the bank).

    Returns
    -------
    dict
        Per check, the counts, areas and first IDs (empty lists when clean).

    Raises
    ------
    LayerError
        A committee lying mostly (≥ 50 %) inside another one, or compounds duplicated
        (≥ 95 % of each in the other) while both carry a population.
    """
    report: dict[str, Any] = {}
    crs = None
    for layer in (committees, compounds, towns):
        if layer is not None and layer.crs is not None:
            crs = CRS.from_user_input(layer.crs)
            break
    if committees is not None and len(committees):
        report["committees"] = _check_committees(committees, towns, boundary, water, crs)
    if compounds is not None and len(compounds):
        report["compounds"] = _check_compounds(compounds, committees, crs)
    return report


# ----------------------------------------------------------------------------- committees

def _check_committees(comm: gpd.GeoDataFrame, towns: gpd.GeoDataFrame | None, boundary: Any,
                      water: gpd.GeoDataFrame | None, crs: CRS | None) -> dict[str, Any]:
    g = _geoms(comm, crs)
    ids = _ids(comm, "committee_id")
    area = shapely.area(g)
    out: dict[str, Any] = {}
    i, j, ov = _pairs(g)
    share = ov / np.maximum(np.minimum(area[i], area[j]), 1e-9)
    cover = share >= COVER_SHARE
    if cover.any():
        k = int(np.flatnonzero(cover)[0])
        small, big = (i[k], j[k]) if area[i[k]] <= area[j[k]] else (j[k], i[k])
        raise LayerError(
            "committees", f"committee {ids[small]!r} lies {share[k]:.0%} inside committee {ids[big]!r}: every "
            f"block under both would go to one of them and the other would vanish from the units",
            feature=int(small), feature_id=ids[small], count=int(cover.sum()),
            fix=f"cut {ids[small]} out of {ids[big]} (their jurisdictions must not overlap) or merge the two")
    real = ov >= NOISE_AREA_M2
    top = np.flatnonzero(real)[np.lexsort((ids[i[real]], -ov[real]))]
    pairs = [f"{ids[i[k]]}/{ids[j[k]]} ({share[k]:.0%}, {ov[k]:,.0f} m²)" for k in top[:_FIRST]]
    out["overlaps"] = {"pairs": int(real.sum()), "area_m2": float(ov[real].sum()), "first": pairs[:_FIRST]}
    if real.any():
        warnings.warn(f"committees: {int(real.sum())} pair(s) of committees overlap ({ov[real].sum():,.0f} m² in all; "
                      f"largest: {_first_n(pairs, int(real.sum()))}): each block group goes to the committee covering most of it. "
                      "Fix: make the jurisdictions a clean partition", TopologyWarning, stacklevel=3)
    # gaps: the study area (else the towns) not covered by any committee
    area_geom = _area_of(boundary, towns, crs)
    if area_geom is not None:
        total = float(shapely.area(area_geom))
        if water is not None and len(water):
            wg = _geoms(water, crs)
            wg = wg[np.isin(shapely.get_type_id(wg), (3, 6))]
            if len(wg):
                area_geom = shapely.difference(area_geom, shapely.union_all(wg))
        gaps = shapely.get_parts(shapely.difference(area_geom, shapely.union_all(g)))
        gaps = gaps[shapely.area(gaps) >= NOISE_AREA_M2] if len(gaps) else gaps
        ga = shapely.area(gaps)
        order = np.argsort(-ga, kind="stable")
        where = [_where(gaps[k], crs) + f" ({ga[k]:,.0f} m²)" for k in order[:_FIRST]]
        out["gaps"] = {"count": int(len(gaps)), "area_m2": float(ga.sum()),
                       "share": float(ga.sum() / total) if total else 0.0, "largest": where}
        if len(gaps):
            warnings.warn(f"committees: {len(gaps)} gap(s) between the committees cover {ga.sum():,.0f} m² "
                          f"({ga.sum() / total:.2%} of the study area; largest at {_first_n(where, len(gaps))}): the blocks "
                          "there are given to the nearest committee. Fix: extend the committee polygons to "
                          "cover the study area", TopologyWarning, stacklevel=3)
    # committees naming a town that the towns layer does not have
    if towns is not None and "town_code" in comm.columns and "town_code" in towns.columns:
        known = set(towns["town_code"].astype(str))
        tc = comm["town_code"]
        bad = tc.notna().to_numpy() & ~tc.astype(str).isin(known).to_numpy()
        first = [f"{ids[k]} → {tc.iloc[k]}" for k in np.flatnonzero(bad)[:_FIRST]]
        out["unknown_town"] = {"count": int(bad.sum()), "first": first[:_FIRST]}
        if bad.any():
            warnings.warn(f"committees: {int(bad.sum())} committee(s) name a town_code that is not in the towns "
                          f"layer ({_first_n(first, int(bad.sum()))}; towns: {', '.join(sorted(known)[:_FIRST])}): units take "
                          "their town from the town polygons, not from this code. Fix: correct town_code",
                          TopologyWarning, stacklevel=3)
    return out


def _area_of(boundary: Any, towns: gpd.GeoDataFrame | None, crs: CRS | None):
    if boundary is not None:
        if isinstance(boundary, shapely.Geometry):
            return boundary
        return shapely.union_all(_geoms(boundary, crs))
    if towns is not None and len(towns):
        return shapely.union_all(_geoms(towns, crs))
    return None


def _where(geom: Any, crs: CRS | None) -> str:
    p = shapely.point_on_surface(geom)
    if crs is None:
        return f"({p.x:.0f}, {p.y:.0f})"
    ll = gpd.GeoSeries([p], crs=crs).to_crs(settings.geographic_crs).iloc[0]
    return f"{ll.x:.5f}E {ll.y:.5f}N"


# ----------------------------------------------------------------------------- compounds

def _check_compounds(comp: gpd.GeoDataFrame, comm: gpd.GeoDataFrame | None,
                     crs: CRS | None) -> dict[str, Any]:
    g = _geoms(comp, crs)
    ids = _ids(comp, "compound_id")
    area = shapely.area(g)
    pop = (pd.to_numeric(comp["population"], errors="coerce").to_numpy(dtype=float)
           if "population" in comp.columns else np.full(len(comp), np.nan))
    out: dict[str, Any] = {}
    i, j, ov = _pairs(g)
    sa, sb = ov / np.maximum(area[i], 1e-9), ov / np.maximum(area[j], 1e-9)
    dup = (sa >= DUPLICATE_SHARE) & (sb >= DUPLICATE_SHARE)
    both_pop = ~np.isnan(pop[i]) & ~np.isnan(pop[j])
    dpairs = [f"{ids[j[k]]} = {ids[i[k]]}" for k in np.flatnonzero(dup)[:_FIRST]]
    out["duplicates"] = {"pairs": int(dup.sum()), "first": dpairs[:_FIRST]}
    if (dup & both_pop).any():
        k = int(np.flatnonzero(dup & both_pop)[0])
        extra = float(np.minimum(pop[i], pop[j])[dup & both_pop].sum())
        raise LayerError(
            "compounds", f"compound {ids[j[k]]!r} duplicates compound {ids[i[k]]!r} ({min(sa[k], sb[k]):.0%} of each "
            f"lies in the other): their residents would be counted twice ({extra:,.0f} residents in "
            f"{int((dup & both_pop).sum())} duplicated pair(s); first: {_first_n(dpairs, int(dup.sum()))})",
            feature=int(j[k]), feature_id=ids[j[k]], count=int((dup & both_pop).sum()),
            fix="delete the duplicated compounds (same outline under another ID)")
    if dup.any():
        warnings.warn(f"compounds: {int(dup.sum())} compound(s) duplicate another one ({_first_n(dpairs, int(dup.sum()))}): residents "
                      "from buildings or a raster are split between them, not doubled. Fix: delete the duplicates",
                      TopologyWarning, stacklevel=3)
    part = ~dup & (ov >= NOISE_AREA_M2)
    top = np.flatnonzero(part)[np.lexsort((ids[i[part]], -ov[part]))]
    ppairs = [f"{ids[i[k]]}/{ids[j[k]]} ({ov[k]:,.0f} m²)" for k in top[:_FIRST]]
    out["overlaps"] = {"pairs": int(part.sum()), "area_m2": float(ov[part].sum()), "first": ppairs[:_FIRST]}
    if part.any():
        note = ("their population attributes may count the residents of the overlap twice"
                if (both_pop & part).any() else "residents from buildings or a raster are split between them")
        warnings.warn(f"compounds: {int(part.sum())} pair(s) of compounds overlap ({ov[part].sum():,.0f} m² in all; "
                      f"largest: {_first_n(ppairs, int(part.sum()))}): {note}. Fix: make the compound outlines disjoint",
                      TopologyWarning, stacklevel=3)
    # compounds naming a committee the committees layer does not have
    if comm is not None and "committee_id" in comp.columns and "committee_id" in comm.columns:
        known = set(comm["committee_id"].astype(str))
        cc = comp["committee_id"]
        bad = cc.notna().to_numpy() & ~cc.astype(str).isin(known).to_numpy()
        first = [f"{ids[k]} → {cc.iloc[k]}" for k in np.flatnonzero(bad)[:_FIRST]]
        out["unknown_committee"] = {"count": int(bad.sum()), "first": first[:_FIRST]}
        if bad.any():
            warnings.warn(f"compounds: {int(bad.sum())} compound(s) name a committee_id that is not in the committees "
                          f"layer ({_first_n(first, int(bad.sum()))}): units take the committee from the committee polygons, not "
                          "from this code. Fix: correct committee_id", TopologyWarning, stacklevel=3)
    # residents against the committees' own totals
    if (comm is not None and "population" in comm.columns and comm["population"].notna().all()
            and not np.isnan(pop).any()):
        c_tot = float(pd.to_numeric(comm["population"]).sum())
        p_tot = float(pop.sum())
        diff = (p_tot - c_tot) / c_tot if c_tot else 0.0
        out["against_committees"] = {"compounds": p_tot, "committees": c_tot, "difference": diff}
        if abs(diff) > settings.population_mismatch_share:
            warnings.warn(f"compounds: the compounds hold {p_tot:,.0f} residents against the committees' "
                          f"{c_tot:,.0f} ({diff:+.1%}): duplicated or missing compounds, or a committee "
                          "population of another year? Units count the compounds' residents",
                          TopologyWarning, stacklevel=3)
    # implausibly large compounds
    big = np.flatnonzero(pop > settings.compound_warn_pop)
    first = [f"{ids[k]} ({pop[k]:,.0f} residents, {pop[k] / max(area[k] / 1e4, 1e-9):,.0f} per ha)"
             for k in big[np.argsort(-pop[big], kind="stable")][:_FIRST]]
    out["large"] = {"count": int(len(big)), "first": first[:_FIRST]}
    if len(big):
        warnings.warn(f"compounds: {len(big)} compound(s) hold more than {settings.compound_warn_pop:,.0f} residents "
                      f"({_first_n(first, len(big))}): a 小区 that large is rare; check the population field (a committee or "
                      "town total on one compound?) and the outline", TopologyWarning, stacklevel=3)
    return out


# ----------------------------------------------------------------------------- clipping

def clip_to_area(layer: gpd.GeoDataFrame, area: Any, *, name: str, id_field: str | None = None,
                 drop_outside: bool = False) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    """Clip the features reaching outside the study area to it, and say so.

    Parameters
    ----------
    layer : geopandas.GeoDataFrame
        Polygons in a metric CRS.
    area : GeoDataFrame, GeoSeries or geometry
        Study boundary (same CRS, or any: it is reprojected).
    name : str
        Layer name used in the warning.
    id_field : str, optional
        ID column named in the warning (default: the row position).
    drop_outside : bool
        Drop the features wholly outside the area (buildings) instead of keeping them as
        they are (compounds: ``assign_compounds`` attaches them to the nearest block).

    Returns
    -------
    (GeoDataFrame, dict)
        The layer (clipped rows keep their attributes; ``clipped_share`` is the share of
        their area cut off) and a report: ``clipped``, ``mostly_outside`` (> 50 %),
        ``outside`` (wholly), ``area_cut_m2`` and ``first``.
    """
    crs = CRS.from_user_input(layer.crs)
    a = area if isinstance(area, shapely.Geometry) else shapely.union_all(_geoms(area, crs))
    g = np.asarray(layer.geometry.values, dtype=object)
    shapely.prepare(a)
    inside = shapely.contains(a, g)  # (= within(g, a), with the prepared area first)
    cand = np.flatnonzero(~inside)
    rep: dict[str, Any] = {"clipped": 0, "mostly_outside": 0, "outside": 0, "area_cut_m2": 0.0, "first": []}
    if len(cand) == 0:
        return layer, rep
    ids = _ids(layer, id_field) if id_field else np.arange(len(layer)).astype(str)
    cut = shapely.intersection(g[cand], a)
    full = shapely.area(g[cand])
    kept = shapely.area(cut)
    gone = kept <= 0
    share_out = 1.0 - kept / np.maximum(full, 1e-9)
    real = ~gone & (full - kept > NOISE_AREA_M2 * 1e-3)  # only a real cut (not a vertex on the ring)
    out = layer.copy()
    geoms = g.copy()
    geoms[cand[real]] = cut[real]
    out = out.set_geometry(geoms, crs=layer.crs)
    if real.any():
        cs = np.zeros(len(out))
        cs[cand[real]] = share_out[real]
        out["clipped_share"] = cs
    if drop_outside and gone.any():
        out = out.drop(index=out.index[cand[gone]]).reset_index(drop=True)
    mostly = real & (share_out > 0.5)
    order = np.lexsort((ids[cand], -share_out))
    first = [f"{ids[cand[k]]} ({_pct(share_out[k])} outside)" for k in order[real[order]][:_FIRST]]
    rep.update(clipped=int(real.sum()), mostly_outside=int(mostly.sum()), outside=int(gone.sum()),
               area_cut_m2=float((full - kept)[real].sum()), first=first[:_FIRST])
    if real.any():
        warnings.warn(f"{name}: {int(real.sum())} feature(s) reach outside the study boundary and were clipped to it "
                      f"({int(mostly.sum())} of them mostly outside; {rep['area_cut_m2']:,.0f} m² cut off; first: "
                      f"{_first_n(first, int(real.sum()))})" + (f"; {int(gone.sum())} wholly outside were dropped" if drop_outside
                                              and gone.any() else ""),
                      RepairWarning, stacklevel=2)
    elif drop_outside and gone.any():
        warnings.warn(f"{name}: {int(gone.sum())} feature(s) lie wholly outside the study boundary and were dropped",
                      RepairWarning, stacklevel=2)
    return out, rep
