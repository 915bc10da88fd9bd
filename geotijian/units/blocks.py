"""Blocks (街坊): roads, water, rail and the boundaries polygonised into faces.

:func:`delineate_blocks` nodes the road centre lines of the chosen classes, the barrier
lines, water banks, the study boundary and the town boundaries together
(``shapely.union_all``) and polygonises them (``shapely.polygonize``); faces outside the
study area or inside water are dropped; slivers are merged into the neighbour with the
longest shared edge; the result is validated as a coverage (no overlaps, union = study
area minus water within a tolerance). :func:`refine_blocks` cuts blocks too dense for any
unit by finer streets. :func:`momepy_enclosures` is the reference they are compared with.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .. import settings
from ..errors import GeotijianWarning, InputWarning, LayerError, RepairWarning
from .compounds import assign_compounds
from .geometry import (
    _clean,
    _geoms_of,
    _highway_mask,
    _metric_crs,
    _rep_order,
    _rep_order_keys,
    _shared_lengths,
    _union_groups,
)


BLOCK_COLUMNS = ["block_id", "town_code", "area_ha"]
_TOL_REL = 1e-6  # relative area tolerance of the block coverage check


def delineate_blocks(
    roads: gpd.GeoDataFrame,
    boundary: Any,
    *,
    barriers: Sequence[Any] = (),
    towns: gpd.GeoDataFrame | None = None,
    road_classes: Sequence[str] | None = None,
    sliver_area_m2: float | None = None,
) -> gpd.GeoDataFrame:
    """Polygonise roads, water, rail and boundaries into blocks (街坊).

    Parameters
    ----------
    roads : geopandas.GeoDataFrame
        Road centre lines in a metric CRS, with a ``highway`` column (OSM classes; lists, as
        osmnx writes them, are accepted).
    boundary : GeoDataFrame, GeoSeries or shapely geometry
        Study boundary (polygons). Its ring is part of the noding: blocks never cross it.
    barriers : sequence of GeoDataFrame / GeoSeries
        Water and rail layers. Polygons (rivers, lakes) are *removed* from the area and their
        banks cut; lines (canal or river centre lines, railways) cut.
    towns : geopandas.GeoDataFrame, optional
        Towns (街镇) with ``town_code``: their boundaries cut blocks, and each block gets the
        ``town_code`` of the town holding it (blocks outside every town: the nearest town,
        reported).
    road_classes : sequence of str, optional
        ``highway`` values that bound blocks; default (None) ``settings.block_road_classes``
        (tertiary and above); ``()`` uses every road.
    sliver_area_m2 : float, optional
        Blocks smaller than this (m²) merge into the neighbour (same town) with the longest
        shared edge; default ``settings.sliver_area_m2`` (2,000 m²).

    Returns
    -------
    geopandas.GeoDataFrame
        ``block_id`` (``B00001``..., north to south then west to east), ``town_code`` (when
        towns are given, else missing), ``area_ha``, geometry; sorted by ``block_id``.
        ``attrs["geotijian"]`` holds the counts of the steps and ``validation``: overlap
        check, area of the study area minus water, area of the blocks, relative gap.

    Raises
    ------
    LayerError
        No CRS or a geographic CRS, no ``highway`` column while classes are asked for, no
        road of the chosen classes, an empty boundary, or no block at all.
    """
    crs = _metric_crs(roads, "roads")
    if isinstance(road_classes, str):  # one class, not its letters
        road_classes = (road_classes,)
    classes = settings.block_road_classes if road_classes is None else tuple(road_classes)
    sliver = settings.sliver_area_m2 if sliver_area_m2 is None else float(sliver_area_m2)
    report: dict[str, Any] = {"road_classes": list(classes), "sliver_area_m2": sliver}

    bgeoms = _clean(_geoms_of(boundary, "boundary", crs))
    bgeoms = bgeoms[np.isin(shapely.get_type_id(bgeoms), (3, 6))]
    if len(bgeoms) == 0:
        raise LayerError("boundary", "no polygon in the study boundary",
                         fix="give the study boundary as polygons")
    area = shapely.union_all(bgeoms)

    lines = [_block_roads(roads, classes, report, named=road_classes is not None)]
    holes, bar_lines = _barrier_parts(barriers, crs, report)
    lines += bar_lines
    water = shapely.union_all(np.concatenate(holes)) if holes and sum(map(len, holes)) else None
    study = shapely.difference(area, water) if water is not None else area
    shapely.prepare(study)

    town_codes = None
    if towns is not None:
        _metric_crs(towns, "towns")
        if "town_code" not in towns.columns:
            raise LayerError("towns", "no 'town_code' column",
                             fix="read the layer with read_layer(..., 'towns')")
        tg = _geoms_of(towns, "towns", crs)
        town_codes = towns["town_code"].astype(str).to_numpy()
        lines.append(shapely.boundary(tg))

    faces = _polygonise(lines, holes, area, study, report)

    # town of each face
    if town_codes is not None:
        face_town = _town_of(faces, tg, town_codes, report)
    else:
        face_town = np.zeros(len(faces), dtype=object)

    faces, face_town, merged, left = _merge_slivers(faces, face_town, sliver)
    report["slivers_merged"] = merged
    report["slivers_kept"] = left
    if left:
        warnings.warn(f"blocks: {left} sliver(s) under {sliver:g} m² have no neighbour in their "
                      "town and are kept as they are", RepairWarning, stacklevel=2)

    order = _rep_order(faces)
    faces = faces[order]
    face_town = face_town[order]
    width = max(5, len(str(len(faces))))
    out = gpd.GeoDataFrame(
        {
            "block_id": [f"B{i + 1:0{width}d}" for i in range(len(faces))],
            "town_code": face_town if town_codes is not None else pd.Series([None] * len(faces), dtype=object),
            "area_ha": shapely.area(faces) / 1e4,
        },
        geometry=faces, crs=crs,
    )
    report["blocks"] = int(len(out))
    report["validation"] = _validate_blocks(faces, study)
    out.attrs["geotijian"] = {"role": "blocks", "report": report}
    return out


def _block_roads(roads: gpd.GeoDataFrame, classes: Sequence[str], report: dict, *,
                 named: bool = False) -> np.ndarray:
    """The centre lines of the roads of ``classes`` (all roads when empty) that bound blocks;
    ``named``: the classes were asked for by name (a class no road has is warned about)."""
    if len(classes):
        if "highway" not in roads.columns:
            raise LayerError("roads", "no 'highway' column to choose the block road classes from",
                             fix="add a highway column (OSM classes) or pass road_classes=()")
        rmask = _highway_mask(roads["highway"], classes)
        if named:  # a class asked for by name that no road has: a typo?
            present = set(pd.Series(roads["highway"].to_numpy()).explode().dropna().astype(str).str.strip())
            absent = [c for c in classes if c not in present]
            if absent and rmask.any():
                warnings.warn(f"road_classes: no road has highway = {', '.join(map(repr, absent))}; blocks "
                              f"are bounded by the other classes only (classes in the roads: "
                              f"{', '.join(sorted(present)[:15])})", InputWarning, stacklevel=3)
    else:
        rmask = np.ones(len(roads), dtype=bool)
    report["roads_in"] = int(len(roads))
    report["roads_used"] = int(rmask.sum())
    if not rmask.any():
        raise LayerError("roads", f"no road of the classes {', '.join(classes)}",
                         fix="check the highway column or widen road_classes")
    return np.asarray(roads.geometry.values, dtype=object)[rmask]


def _barrier_parts(barriers: Sequence[Any], crs: CRS, report: dict
                   ) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """(water polygons, cutting lines) of the barrier layers, one array per layer."""
    holes = []
    lines = []
    n_bar_lines = n_bar_polys = 0
    for k, bar in enumerate(barriers):
        g = _clean(_geoms_of(bar, f"barriers[{k}]", crs))
        if len(g) == 0:
            continue
        g = shapely.get_parts(g)
        tid = shapely.get_type_id(g)
        poly = tid == 3
        line = np.isin(tid, (1, 2))
        holes.append(g[poly])
        lines.append(g[line])
        n_bar_polys += int(poly.sum())
        n_bar_lines += int(line.sum())
    report["barrier_lines"] = n_bar_lines
    report["water_polygons"] = n_bar_polys
    return holes, lines


def _polygonise(lines: list, holes: list[np.ndarray], area: Any, study: Any, report: dict) -> np.ndarray:
    """Faces of the cutting ``lines`` and the rings of ``area`` and the water inside ``study``.

    Raises :class:`LayerError` when no face is left.
    """
    lines_arr = np.concatenate([np.asarray(x, dtype=object) for x in lines])
    if not np.isin(shapely.get_type_id(lines_arr), (1, 2)).all():  # (single lines are their own part)
        lines_arr = shapely.get_parts(lines_arr)
    lines_arr = lines_arr[~shapely.is_empty(lines_arr)]
    # Lines are not clipped: a clipped end computed on the ring may miss it by 1e-10 m and
    # leave a dangle. Whole lines touching the area are noded with the ring instead, and
    # the faces outside the study area are dropped after polygonising.
    shapely.prepare(area)
    touching = shapely.intersects(area, lines_arr)
    # the original rings (not those of area - water: the overlay may move a vertex by 1e-9 m
    # and unhook a street that ends on a bank)
    rings = [shapely.get_parts(shapely.boundary(area))]
    if holes and sum(map(len, holes)):
        hp = np.concatenate(holes)
        rings.append(shapely.get_parts(shapely.boundary(hp[shapely.intersects(area, hp)])))
    cut = np.concatenate([lines_arr[touching]] + rings)
    cut = cut[np.isin(shapely.get_type_id(cut), (1, 2))]
    noded = shapely.union_all(cut)
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(noded)))
    pts = shapely.point_on_surface(faces)
    keep = shapely.contains(study, pts) & (shapely.area(faces) > 0)
    faces = faces[keep]
    report["faces"] = int(len(faces))
    if len(faces) == 0:
        raise LayerError("roads", "the roads, barriers and boundary enclose no block",
                         fix="check that the roads lie inside the boundary and use the same CRS")
    return faces


def _town_of(faces: np.ndarray, tg: np.ndarray, codes: np.ndarray, report: dict) -> np.ndarray:
    pts = shapely.point_on_surface(faces)
    tree = shapely.STRtree(tg)
    pi, ti = tree.query(pts, predicate="within")
    town = np.full(len(faces), None, dtype=object)
    # first hit per point (towns should not overlap; if they do, the first town wins)
    first = pd.Series(codes[ti]).groupby(pi).min()  # overlapping towns: the lowest code wins
    town[first.index.to_numpy()] = first.to_numpy()
    miss = np.flatnonzero(pd.isna(town))
    if len(miss):  # a point on a town edge (towns digitised with gaps): the town overlapping most
        fi, ti = tree.query(faces[miss], predicate="intersects")
        ov = np.round(shapely.area(shapely.intersection(faces[miss][fi], tg[ti])), 1)
        d = pd.DataFrame({"f": fi, "t": ti, "ov": ov, "code": codes[ti]})
        d = d[d["ov"] > 0].sort_values(["f", "ov", "code"], ascending=[True, False, True]).drop_duplicates("f")
        town[miss[d["f"].to_numpy()]] = codes[d["t"].to_numpy()]
        miss = np.flatnonzero(pd.isna(town))
    report["blocks_outside_towns"] = int(len(miss))
    if len(miss):
        near = tree.query_nearest(pts[miss], return_distance=False, all_matches=False)
        town[miss[near[0]]] = codes[near[1]]
        warnings.warn(f"blocks: {len(miss)} block(s) lie outside every town polygon and were given "
                      "the nearest town (the town layer does not cover the study boundary)",
                      RepairWarning, stacklevel=3)
    return town


def _merge_slivers(faces: np.ndarray, town: np.ndarray, thr: float):
    """Merge faces under ``thr`` m² into the same-town neighbour with the longest shared edge."""
    merged_total = 0
    for _ in range(20):
        area = shapely.area(faces)
        small = np.flatnonzero(area < thr)
        if len(small) == 0:
            return faces, town, merged_total, 0
        tree = shapely.STRtree(faces)
        si, nj = tree.query(faces[small], predicate="intersects")
        si = small[si]
        ok = (si != nj) & (town[si] == town[nj])
        si, nj = si[ok], nj[ok]
        lens = _shared_lengths(faces, si, nj)
        good = lens > 0.01
        si, nj, lens = si[good], nj[good], lens[good]
        if len(si) == 0:
            return faces, town, merged_total, int(len(small))
        # prefer a neighbour that is not itself a sliver, then the longest shared edge
        big = area[nj] >= thr
        df = pd.DataFrame({"i": si, "j": nj, "big": big, "len": lens})
        df = df.sort_values(["i", "big", "len", "j"], ascending=[True, False, False, True])
        best = df.drop_duplicates("i")
        n = len(faces)
        g = sparse.coo_matrix((np.ones(len(best)), (best["i"].to_numpy(), best["j"].to_numpy())),
                              shape=(n, n))
        _, lab = connected_components(g, directed=False)
        merged_total += int(len(best))
        _, faces_new = _union_groups(faces, lab)
        uniq, first = np.unique(lab, return_index=True)
        town = town[first]
        faces = faces_new
    area = shapely.area(faces)
    return faces, town, merged_total, int((area < thr).sum())


def _validate_blocks(faces: np.ndarray, study: Any) -> dict:
    a_study = float(shapely.area(study))
    a_blocks = float(shapely.area(faces).sum())
    try:
        no_overlap = bool(shapely.coverage_is_valid(shapely.GeometryCollection(list(faces))))
    except Exception:  # pragma: no cover - GEOS < 3.12
        no_overlap = abs(float(shapely.area(shapely.union_all(faces))) - a_blocks) <= _TOL_REL * a_blocks
    gap = (a_study - a_blocks) / a_study if a_study > 0 else 0.0
    res = {"no_overlaps": no_overlap, "study_area_m2": a_study, "blocks_area_m2": a_blocks,
           "relative_gap": gap, "tolerance": _TOL_REL,
           "ok": bool(no_overlap and abs(gap) <= _TOL_REL)}
    if not res["ok"]:
        warnings.warn(f"blocks: coverage check failed (no overlaps: {no_overlap}, area gap "
                      f"{gap:.2e} of the study area minus water)", GeotijianWarning, stacklevel=3)
    return res


#: finer street classes used by :func:`refine_blocks` (below tertiary, public streets)
FINER_ROAD_CLASSES = ("residential", "unclassified", "living_street")


def refine_blocks(
    blocks: gpd.GeoDataFrame,
    roads: gpd.GeoDataFrame,
    compounds: gpd.GeoDataFrame,
    *,
    max_pop: float | None = None,
    road_classes: Sequence[str] = FINER_ROAD_CLASSES,
    sliver_area_m2: float | None = None,
) -> gpd.GeoDataFrame:
    """Subdivide blocks holding more than ``max_pop`` residents by finer streets.

    A block bounded by tertiary and larger roads can hold 15,000 residents in several
    compounds: no unit can then be in range. Such a block (more than one compound, more
    than ``max_pop`` residents) is cut again by the public streets of ``road_classes``
    inside it; the other blocks are kept. Compounds cut by those streets fuse the pieces
    again in :func:`assign_compounds`, so compounds are still never split.

    Parameters
    ----------
    blocks : geopandas.GeoDataFrame
        Output of :func:`delineate_blocks`.
    roads : geopandas.GeoDataFrame
        Road centre lines with ``highway``.
    compounds : geopandas.GeoDataFrame
        Compounds with ``compound_id`` and ``population`` (persons).
    max_pop : float, optional
        Ceiling, persons; default ``settings.unit_max_pop``.
    road_classes : sequence of str
        Streets that may cut a dense block (default residential, unclassified,
        living_street).
    sliver_area_m2 : float, optional
        Pieces under this area (m²) merge back into their longest-shared-edge neighbour
        within the same block; default ``settings.sliver_area_m2``.

    Returns
    -------
    geopandas.GeoDataFrame
        Blocks in the schema of :func:`delineate_blocks`; a subdivided block's pieces are
        ``<block_id>-<n>``. ``attrs["geotijian"]["report"]["refined"]`` lists the blocks cut.
    """
    crs = _metric_crs(blocks, "blocks")
    hi = float(settings.unit_max_pop if max_pop is None else max_pop)
    thr = settings.sliver_area_m2 if sliver_area_m2 is None else float(sliver_area_m2)
    bl, _ = assign_compounds(blocks.reset_index(drop=True), compounds)
    heavy = np.flatnonzero((bl["population"].to_numpy() > hi) & (bl["compound_count"].to_numpy() > 1))
    report = dict(blocks.attrs.get("geotijian", {}).get("report", {}))
    report["refined"] = []
    if len(heavy) == 0 or "highway" not in roads.columns:
        out = blocks.copy()
        out.attrs["geotijian"] = {"role": "blocks", "report": report}
        return out
    bg = np.asarray(bl.geometry.values, dtype=object)
    hg = bg[heavy]
    rg = np.asarray(roads.to_crs(crs).geometry.values if CRS.from_user_input(roads.crs) != crs
                    else roads.geometry.values, dtype=object)
    rg = shapely.get_parts(rg[_highway_mask(roads["highway"], road_classes)])
    tree = shapely.STRtree(hg)
    li, _ = tree.query(rg, predicate="intersects")
    lines = np.concatenate([rg[np.unique(li)] if len(li) else np.empty(0, dtype=object),
                            shapely.get_parts(shapely.boundary(hg))])
    faces = shapely.get_parts(shapely.polygonize(shapely.get_parts(shapely.union_all(lines))))
    pts = shapely.point_on_surface(faces)
    fi, hi_idx = tree.query(pts, predicate="within")
    faces, parent = faces[fi], heavy[hi_idx]
    faces, parent, _, _ = _merge_slivers(faces, parent.astype(object), thr)
    parent = parent.astype(int)
    n_pieces = np.bincount(parent, minlength=len(bl))
    cut = np.flatnonzero(n_pieces > 1)
    keep_whole = np.setdiff1d(np.arange(len(bl)), cut)
    sel = np.isin(parent, cut)
    faces, parent = faces[sel], parent[sel]
    order = np.lexsort((_rep_order_keys(faces)[::-1]) + (parent,)) if len(faces) else np.empty(0, int)
    faces, parent = faces[order], parent[order]
    rank = np.zeros(len(parent), dtype=int)
    if len(parent):
        starts = np.r_[0, np.flatnonzero(np.diff(parent)) + 1]
        rank = np.arange(len(parent)) - np.repeat(starts, np.diff(np.r_[starts, len(parent)]))
    ids = blocks["block_id"].astype(str).to_numpy()
    new = gpd.GeoDataFrame({
        "block_id": [f"{ids[p]}-{r + 1}" for p, r in zip(parent, rank)],
        "town_code": blocks["town_code"].to_numpy()[parent] if "town_code" in blocks.columns else None,
        "area_ha": shapely.area(faces) / 1e4,
    }, geometry=faces, crs=crs)
    old = blocks.reset_index(drop=True).iloc[keep_whole][["block_id", "town_code", "area_ha", "geometry"]]
    out = pd.concat([old, new], ignore_index=True).sort_values("block_id").reset_index(drop=True)
    out = gpd.GeoDataFrame(out, geometry="geometry", crs=crs)
    report["refined"] = [f"{ids[c]} ({bl['population'].iloc[c]:,.0f} residents) → {n_pieces[c]} pieces" for c in cut]
    report["blocks"] = int(len(out))
    report["validation_refined"] = _validate_blocks(np.asarray(out.geometry.values, dtype=object),
                                                    shapely.coverage_union_all(bg))
    out.attrs["geotijian"] = {"role": "blocks", "report": report}
    return out


def momepy_enclosures(roads: gpd.GeoDataFrame, boundary: Any, barriers: Sequence[Any] = (), *,
                      primary: bool = False) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """The reference to compare :func:`delineate_blocks` with: ``momepy.enclosures`` on the
    same roads (``settings.block_road_classes``), boundary and barriers, made comparable.

    Water polygons are passed as their rings (momepy polygonises linework only: a water
    *polygon* given as an additional barrier does not cut), then faces inside water and
    faces under ``settings.sliver_area_m2`` are dropped (delineate_blocks removes water from
    the area and merges slivers). ``primary=True`` passes the barriers together with the
    roads as primary barriers (one noding) instead of as momepy's additional barriers.
    Needs momepy (in the ``[test]`` and ``[bench]`` extras).

    Returns
    -------
    (GeoDataFrame, GeoDataFrame)
        All enclosures, and the comparable ones.
    """
    import momepy  # optional: only this comparison needs it

    bars = list(barriers)
    sel = roads[_highway_mask(roads["highway"], settings.block_road_classes)]
    lines, water = [], []
    for x in bars:
        poly = x.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()
        if (~poly).any():
            lines.append(x[~poly].geometry)
        if poly.any():
            water.append(x.geometry.values[poly])
            lines.append(x[poly].boundary)
    if primary:  # every barrier noded with the roads in one pass
        prim = gpd.GeoDataFrame(geometry=pd.concat([sel.geometry] + [gpd.GeoSeries(x) for x in lines],
                                                   ignore_index=True), crs=sel.crs)
        enc = momepy.enclosures(prim, limit=boundary, clip=True)
    else:
        enc = momepy.enclosures(sel, limit=boundary, additional_barriers=lines or None, clip=True)
    keep = enc.area.to_numpy() >= settings.sliver_area_m2
    if water:
        wu = shapely.union_all(np.concatenate(water))
        keep &= ~shapely.within(shapely.point_on_surface(enc.geometry.values), wu)
    return enc, enc[keep]
