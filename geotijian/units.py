"""Community check-up units (社区体检单元): blocks, compounds, and units of 5,000-12,000 residents.

The chain is (or, in one call, ``build_units(roads, compounds, ...)``)::

    blocks = delineate_blocks(roads, boundary, barriers=(water, rail), towns=towns)
    compounds, report = allocate_population(compounds, source="buildings", buildings=b)
    units = delineate_units(blocks, compounds, committees, towns)
    range_compliance(units)

1. **Blocks** (街坊): the road centre lines of the chosen classes, rivers/canals (lines cut,
   water areas are removed), railways, the study boundary and the town boundaries are noded
   together (``shapely.union_all``) and polygonised (``shapely.polygonize``); faces outside
   the study area or inside water are dropped; slivers are merged into the neighbour with the
   longest shared edge. The result is validated as a coverage (no overlaps, union = study
   area minus water within a tolerance) and the check is reported in
   ``blocks.attrs["geotijian"]["validation"]``.
2. **Compounds are never split.** Each compound is attached to the block holding most of its
   area, and every other block holding a piece of it joins that block's *block group*;
   block groups are the atoms of every partition, so every compound lies in exactly one
   unit, and a unit takes all the blocks its compounds cover. Two cases are reported, not
   fused: a digitising overshoot (a piece under ``settings.compound_cut_share`` of the
   compound and nowhere wider than ``settings.compound_overshoot_m``: the outline drawn
   across the street's centre line), and a piece in another town (units never cross a town
   boundary: the compound is counted whole in the town holding most of it, and warned about).
3. **Units.** Within each town: a residents' committee (居委会) in range is one unit (its
   outline snapped to block boundaries: atoms go to the committee covering most of them);
   one below the floor merges with the adjacent committee of the same town giving the most
   compact result (Polsby-Popper of the union; merges that stay under the ceiling first);
   a group above the ceiling is split into k parts, k chosen so that the mean size is
   closest to the middle of the range, by recursive balanced bisection of the atom
   adjacency graph (16 sweep directions; each prefix grown best-first so it is connected;
   cut chosen by balance + compactness of both sides, the rest kept connected), then
   boundary atoms are moved to repair any unit still out of range and to shorten unit
   boundaries (compactness) within ±25 % of the group's mean size. Without committees,
   each land component of a town (between water, rail and the boundary) is split the same
   way: a regionalisation with a population floor *and* ceiling under contiguity.

Pieces too small to stand alone (an island north of a river, a committee cut off by a
railway) join the nearest unit across the gap (blocks within ``settings.unit_bridge_gap_m``,
else the nearest block); such a unit is in several parts and says so in ``flag_reason``.
Feasibility is checked before partitioning and stated in domain terms (warnings and
``units.attrs["geotijian"]["feasibility"]``); ``strict=True`` turns a blocking one into a
``FeasibilityError``.
"""

from __future__ import annotations

import heapq
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy import sparse
from scipy.linalg import eigh as scipy_eigh
from scipy.sparse.csgraph import connected_components

from . import settings
from .errors import FeasibilityError, GeotijianWarning, InputWarning, LayerError, RepairWarning
from .io.topology import clip_to_area
from .model import UNIT_COLUMNS

__all__ = [
    "FINER_ROAD_CLASSES",
    "IdMap",
    "refine_blocks",
    "build_units",
    "delineate_blocks",
    "assign_compounds",
    "delineate_units",
    "range_compliance",
    "compounds_from_landuse",
    "polsby_popper",
]

BLOCK_COLUMNS = ["block_id", "town_code", "area_ha"]
_TOL_REL = 1e-6  # relative area tolerance of the block coverage check


# ----------------------------------------------------------------------------- helpers

class IdMap(Mapping):
    """A read-only id → id mapping kept in ``attrs`` (compound → unit, block → unit).

    pandas deep-copies ``attrs`` on every operation; this holder is immutable and returns
    itself from ``copy.deepcopy``, so a 20,000-entry mapping costs nothing per operation.
    """

    def __init__(self, keys: Iterable[Any], values: Iterable[Any]):
        self._s = pd.Series(list(values), index=pd.Index(list(keys), dtype=object), dtype=object)

    def __getitem__(self, key: Any) -> Any:
        return self._s[key]

    def __iter__(self):
        return iter(self._s.index)

    def __len__(self) -> int:
        return len(self._s)

    def __deepcopy__(self, memo: dict) -> IdMap:
        return self

    def __copy__(self) -> IdMap:
        return self

    def __repr__(self) -> str:
        return f"IdMap({len(self)} entries)"

    def to_series(self) -> pd.Series:
        """The mapping as a pandas Series (a copy)."""
        return self._s.copy()


def _metric_crs(gdf: Any, layer: str) -> CRS:
    crs = getattr(gdf, "crs", None)
    if crs is None:
        raise LayerError(layer, "the layer has no CRS",
                         fix="read it with geotijian.read_layer or set its CRS (gdf.set_crs(...))")
    crs = CRS.from_user_input(crs)
    if not crs.is_projected:
        raise LayerError(layer, f"the layer is in {crs.to_string()}, a geographic CRS: areas and "
                                "lengths need metres",
                         fix=f"reproject it first, e.g. gdf.to_crs({settings.metric_crs!r})")
    return crs


def _geoms_of(obj: Any, layer: str, crs: CRS) -> np.ndarray:
    """Geometries of a GeoDataFrame/GeoSeries/geometry/array, in ``crs``."""
    if obj is None:
        return np.empty(0, dtype=object)
    if isinstance(obj, shapely.Geometry):
        return np.array([obj], dtype=object)
    if isinstance(obj, (gpd.GeoDataFrame, gpd.GeoSeries)):
        if obj.crs is None:
            raise LayerError(layer, "the layer has no CRS", fix="set its CRS (gdf.set_crs(...))")
        if CRS.from_user_input(obj.crs) != crs:
            obj = obj.to_crs(crs)
        g = obj.geometry.values if isinstance(obj, gpd.GeoDataFrame) else obj.values
        return np.asarray(g, dtype=object)
    return np.asarray(obj, dtype=object)


def _clean(geoms: np.ndarray) -> np.ndarray:
    geoms = geoms[~(shapely.is_missing(geoms) | shapely.is_empty(geoms))]
    bad = ~shapely.is_valid(geoms)
    if bad.any():
        geoms = geoms.copy()
        geoms[bad] = shapely.make_valid(geoms[bad])
    return geoms


def polsby_popper(geoms: Any) -> np.ndarray:
    """Polsby-Popper compactness 4πA/P² (1 for a circle, ~0.785 for a square).

    Parameters
    ----------
    geoms : array-like of shapely geometries or GeoSeries
        Polygons in a metric CRS.

    Returns
    -------
    numpy.ndarray
        Compactness in [0, 1]; 0 for empty geometries.
    """
    g = np.asarray(getattr(geoms, "values", geoms), dtype=object)
    a = shapely.area(g)
    p = shapely.length(g)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(p > 0, 4 * math.pi * a / np.maximum(p, 1e-12) ** 2, 0.0)
    return np.clip(out, 0.0, 1.0)


def _shared_lengths(geoms: np.ndarray, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Length (metres) of the common boundary of polygon pairs (i, j)."""
    if len(i) == 0:
        return np.zeros(0)
    b = shapely.boundary(geoms)
    return shapely.length(shapely.intersection(b[i], b[j]))


def _adjacency(geoms: np.ndarray, *, min_shared_m: float = 0.5, gap_m: float = 0.0,
               group: np.ndarray | None = None) -> sparse.csr_matrix:
    """Symmetric sparse matrix of shared boundary lengths (metres) between polygons.

    Pairs sharing less than ``min_shared_m`` (corner contacts) are not neighbours. With
    ``gap_m`` > 0, polygons that do not touch but lie within ``gap_m`` of each other (across
    a canal or a railway) are neighbours with a token length of 1e-3 m, so they connect the
    graph without counting as a shared edge in compactness. ``group`` (e.g. towns) keeps
    pairs inside the same group only.
    """
    n = len(geoms)
    tree = shapely.STRtree(geoms)
    i, j = tree.query(geoms, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    if group is not None:
        same = group[i] == group[j]
        i, j = i[same], j[same]
    lens = _shared_lengths(geoms, i, j)
    ok = lens >= min_shared_m
    rows, cols, data = [i[ok]], [j[ok]], [lens[ok]]
    if gap_m > 0:
        gi, gj = tree.query(geoms, predicate="dwithin", distance=gap_m)
        k = gi < gj
        gi, gj = gi[k], gj[k]
        if group is not None:
            s = group[gi] == group[gj]
            gi, gj = gi[s], gj[s]
        far = shapely.distance(geoms[gi], geoms[gj]) > 1e-6
        rows.append(gi[far])
        cols.append(gj[far])
        data.append(np.full(int(far.sum()), 1e-3))
    r = np.concatenate(rows)
    c = np.concatenate(cols)
    d = np.concatenate(data)
    m = sparse.coo_matrix((np.r_[d, d], (np.r_[r, c], np.r_[c, r])), shape=(n, n)).tocsr()
    m.sum_duplicates()
    return m


def _rep_order(geoms: np.ndarray) -> np.ndarray:
    """Deterministic order of polygons: north to south, then west to east (0.1 m grid)."""
    p = shapely.point_on_surface(geoms)
    x = np.round(shapely.get_x(p), 1)
    y = np.round(shapely.get_y(p), 1)
    a = np.round(shapely.area(geoms), 1)
    return np.lexsort((a, x, -y))


def _highway_mask(highway: pd.Series, classes: Iterable[str]) -> np.ndarray:
    classes = set(classes)
    pos = pd.Series(highway.to_numpy(), index=np.arange(len(highway)))  # any index (osmnx: MultiIndex)
    s = pos.explode()  # osmnx gives lists for merged edges
    hit = s.astype(str).str.strip().isin(classes)
    return hit.groupby(level=0).any().reindex(pos.index, fill_value=False).to_numpy()


def _union_groups(geoms: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Union of polygons per label (coverage union: the inputs share exact edges)."""
    uniq, inv = np.unique(labels, return_inverse=True)
    counts = np.bincount(inv)
    out = np.empty(len(uniq), dtype=object)
    single = counts == 1
    first = np.full(len(uniq), -1)
    first[inv[::-1]] = np.arange(len(inv))[::-1]
    out[single] = geoms[first[single]]
    order = np.argsort(inv, kind="stable")
    splits = np.cumsum(counts)[:-1]
    for gi, members in enumerate(np.split(order, splits)):
        if counts[gi] > 1:
            parts = geoms[members]
            try:
                u = shapely.coverage_union_all(parts)
            except shapely.errors.GEOSException:  # pragma: no cover - fallback
                u = shapely.union_all(parts)
            if not shapely.is_valid(u):  # pragma: no cover - fallback
                u = shapely.union_all(parts)
            out[gi] = u
    return uniq, out


# ----------------------------------------------------------------------------- blocks

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

    if len(classes):
        if "highway" not in roads.columns:
            raise LayerError("roads", "no 'highway' column to choose the block road classes from",
                             fix="add a highway column (OSM classes) or pass road_classes=()")
        rmask = _highway_mask(roads["highway"], classes)
        if road_classes is not None:  # a class asked for by name that no road has: a typo?
            present = set(pd.Series(roads["highway"].to_numpy()).explode().dropna().astype(str).str.strip())
            absent = [c for c in classes if c not in present]
            if absent and rmask.any():
                warnings.warn(f"road_classes: no road has highway = {', '.join(map(repr, absent))}; blocks "
                              f"are bounded by the other classes only (classes in the roads: "
                              f"{', '.join(sorted(present)[:15])})", InputWarning, stacklevel=2)
    else:
        rmask = np.ones(len(roads), dtype=bool)
    report["roads_in"] = int(len(roads))
    report["roads_used"] = int(rmask.sum())
    if not rmask.any():
        raise LayerError("roads", f"no road of the classes {', '.join(classes)}",
                         fix="check the highway column or widen road_classes")
    lines = [np.asarray(roads.geometry.values, dtype=object)[rmask]]

    holes = []
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

    lines_arr = shapely.get_parts(np.concatenate([np.asarray(x, dtype=object) for x in lines]))
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


def _rep_order_keys(geoms: np.ndarray) -> tuple[np.ndarray, ...]:
    p = shapely.point_on_surface(geoms)
    return (-np.round(shapely.get_y(p), 1), np.round(shapely.get_x(p), 1))


# ----------------------------------------------------------------------------- compounds

def compounds_from_landuse(residential: gpd.GeoDataFrame, *, prefix: str = "X") -> gpd.GeoDataFrame:
    """Compounds (小区) from OSM ``landuse=residential`` polygons, when no compound layer exists.

    Parameters
    ----------
    residential : geopandas.GeoDataFrame
        ``landuse=residential`` polygons in a metric CRS (e.g. ``load_osm(...).residential``).
    prefix : str
        Prefix of the generated ``compound_id``.

    Returns
    -------
    geopandas.GeoDataFrame
        ``compound_id``, ``name`` (the OSM name or ""), geometry; overlapping polygons are
        kept as they are (each polygon one compound), invalid ones repaired.
    """
    crs = _metric_crs(residential, "residential")
    g = shapely.make_valid(np.asarray(residential.geometry.values, dtype=object))
    mixed = np.flatnonzero(~np.isin(shapely.get_type_id(g), (3, 6)))
    if len(mixed):  # collections from make_valid, or lines: keep their polygon parts
        parts, pidx = shapely.get_parts(g[mixed], return_index=True)
        keep = np.isin(shapely.get_type_id(parts), (3, 6))
        polys = shapely.multipolygons(parts[keep], indices=pidx[keep]) if keep.any() else None
        fixed = np.full(len(mixed), shapely.Polygon(), dtype=object)
        if polys is not None:
            fixed[np.unique(pidx[keep])] = polys
        g[mixed] = fixed
    ok = ~shapely.is_empty(g) & (shapely.area(g) > 0)
    names = (residential["name"].fillna("").astype(str).to_numpy() if "name" in residential.columns
             else np.full(len(g), ""))
    g, names = g[ok], names[ok]
    order = _rep_order(g)
    width = max(4, len(str(len(g))))
    return gpd.GeoDataFrame({"compound_id": [f"{prefix}{i + 1:0{width}d}" for i in range(len(g))],
                             "name": names[order]}, geometry=g[order], crs=crs)


def assign_compounds(
    blocks: gpd.GeoDataFrame,
    compounds: gpd.GeoDataFrame,
    *,
    min_overlap_share: float | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Attach each compound to one block and fuse the blocks a compound straddles.

    Parameters
    ----------
    blocks : geopandas.GeoDataFrame
        Output of :func:`delineate_blocks` (``block_id``, optional ``town_code``).
    compounds : geopandas.GeoDataFrame
        Compound polygons with ``compound_id`` and, when known, ``population`` (persons)
        and ``households``.
    min_overlap_share : float, optional
        Every block holding a piece of a compound joins the compound's block group (same
        town only), so a compound is never split; a piece under this share of the compound's
        area (0-1) that is also nowhere wider than ``settings.compound_overshoot_m`` metres is
        a digitising overshoot across the street and does not fuse (reported). Default
        ``settings.compound_cut_share`` (0.05).

    Returns
    -------
    blocks : geopandas.GeoDataFrame
        The blocks with ``group_id`` (the block group, named by its first block), and
        ``population``, ``households`` and ``compound_count`` of the compounds attached to
        each block (persons; 0 where none).
    compounds : geopandas.GeoDataFrame
        The compounds with ``block_id`` (the block holding most of the compound),
        ``group_id`` and ``town_code``. ``attrs["geotijian"]["report"]`` counts the compounds
        cut by roads, the ``overshoots`` and the pieces across a town boundary
        (``cross_town``), each with its first compound IDs; the last two are also warned.

    Raises
    ------
    LayerError
        A compound outside every block (in water or outside the study boundary), or
        negative / missing population.
    """
    crs = _metric_crs(blocks, "blocks")
    if min_overlap_share is None:
        min_overlap_share = settings.compound_cut_share
    if "compound_id" not in compounds.columns:
        raise LayerError("compounds", "no 'compound_id' column",
                         fix="read the layer with read_layer(..., 'compounds')")
    cg = _geoms_of(compounds, "compounds", crs)
    bg = np.asarray(blocks.geometry.values, dtype=object)
    ids = compounds["compound_id"].astype(str).to_numpy()
    town = (blocks["town_code"].to_numpy() if "town_code" in blocks.columns
            else np.zeros(len(blocks), dtype=object))
    tree = shapely.STRtree(bg)
    ci, bi = tree.query(cg, predicate="intersects")
    pieces = shapely.intersection(cg[ci], bg[bi])
    ov = np.round(shapely.area(pieces), 1)
    carea = shapely.area(cg)
    df = pd.DataFrame({"c": ci, "b": bi, "ov": ov})
    df = df[df["ov"] > 0]
    pieces = pieces[df.index.to_numpy()]
    main = df.sort_values(["c", "ov", "b"], ascending=[True, False, True]).drop_duplicates("c")
    main_of = np.full(len(cg), -1)
    main_of[main["c"].to_numpy()] = main["b"].to_numpy()
    missing = np.flatnonzero(main_of < 0)
    if len(missing):
        _nearest_blocks(main_of, missing, cg, bg, tree, ids)
    c_of = df["c"].to_numpy()
    b_of = df["b"].to_numpy()
    m = main_of[c_of]
    share = df["ov"].to_numpy() / np.maximum(carea[c_of], 1e-9)
    link, overshoot_rep, cross_rep = _compound_links(ids, c_of, b_of, m, share, df["ov"].to_numpy(), pieces,
                                                     town, min_overlap_share)
    cross_town = int(cross_rep["pieces"])
    nb = len(bg)
    g = sparse.coo_matrix((np.ones(int(link.sum())), (m[link], df["b"].to_numpy()[link])),
                          shape=(nb, nb))
    _, lab = connected_components(g, directed=False)
    block_ids = blocks["block_id"].astype(str).to_numpy()
    # group named by its first block id (block ids sort north-west first)
    first_id = pd.Series(block_ids).groupby(lab).min()
    group_id = first_id.reindex(lab).to_numpy()

    pop = _num_column(compounds, "population", ids, required=False)
    hh = _num_column(compounds, "households", ids, required=False)
    bout = blocks.copy()
    bout["group_id"] = group_id
    bout["population"] = np.bincount(main_of, weights=np.nan_to_num(pop), minlength=nb) if pop is not None \
        else np.nan
    if hh is not None:
        known = np.bincount(main_of, weights=np.isnan(hh).astype(float), minlength=nb) == 0
        bout["households"] = np.where(known, np.bincount(main_of, weights=np.nan_to_num(hh), minlength=nb),
                                      np.nan)
    else:
        bout["households"] = np.nan
    bout["compound_count"] = np.bincount(main_of, minlength=nb)
    cout = compounds.copy()
    cout["block_id"] = block_ids[main_of]
    cout["group_id"] = group_id[main_of]
    cout["town_code"] = town[main_of]
    n_cut = int(pd.Series(m[link]).nunique()) if link.any() else 0
    rep = {"compounds": int(len(cg)), "cut_by_roads": int(pd.Series(c_of[link]).nunique()),
           "blocks_fused": int(nb - len(np.unique(lab))), "groups": int(len(np.unique(lab))),
           "cross_town_parts_ignored": cross_town, "nearest_block_fallback": int(len(missing)),
           "min_overlap_share": min_overlap_share, "main_blocks_with_cut": n_cut,
           "overshoot_m": float(settings.compound_overshoot_m), "overshoots": overshoot_rep,
           "cross_town": cross_rep}
    bout.attrs["geotijian"] = {"role": "blocks", "report": {**blocks.attrs.get("geotijian", {}).get("report", {}),
                                                            "compounds": rep}}
    cout.attrs["geotijian"] = {"role": "compounds", "report": rep}
    return bout, cout


def _nearest_blocks(main_of: np.ndarray, missing: np.ndarray, cg: np.ndarray, bg: np.ndarray,
                    tree: shapely.STRtree, ids: np.ndarray) -> None:
    """A compound overlapping no block (point-like, water-locked) goes to the nearest block,
    unless it is far away (an error); in place on ``main_of``, warned."""
    near_c, near_b = tree.query_nearest(cg[missing], return_distance=False)
    dist = shapely.distance(cg[missing][near_c], bg[near_b])
    far = dist > settings.boundary_tolerance_m
    if far.any():
        k = missing[near_c[far][0]]
        raise LayerError("compounds", "compound lies outside every block (outside the study "
                         f"boundary or inside water), {dist[far][0]:.0f} m from the nearest block",
                         feature=int(k), feature_id=ids[k], count=int(far.sum()),
                         fix="check the compound layer's CRS and the study boundary")
    first = pd.Series(near_b).groupby(near_c).first()
    main_of[missing[first.index.to_numpy()]] = first.to_numpy()
    warnings.warn(f"compounds: {len(missing)} compound(s) overlap no block (inside water or "
                  "on the boundary) and were attached to the nearest block", RepairWarning,
                  stacklevel=3)


def _compound_links(ids: np.ndarray, c_of: np.ndarray, b_of: np.ndarray, m: np.ndarray, share: np.ndarray,
                    ov: np.ndarray, pieces: np.ndarray, town: np.ndarray,
                    min_overlap_share: float) -> tuple[np.ndarray, dict, dict]:
    """Which (compound, block) pieces fuse their block with the compound's main block ``m``.

    Every other block holding a piece of a compound joins its block group, so the compound
    is never split, except a digitising overshoot (a piece under ``min_overlap_share`` of
    the compound, nowhere wider than ``settings.compound_overshoot_m``: the outline drawn
    across the street's centre line) and a piece in another town (units never cross a town
    boundary). Both are reported and warned with their first compounds.
    """
    other = b_of != m
    overshoot = np.zeros(len(c_of), dtype=bool)
    small = np.flatnonzero(other & (share < min_overlap_share))
    if len(small):
        half = float(settings.compound_overshoot_m) / 2.0
        overshoot[small] = shapely.is_empty(shapely.buffer(pieces[small], -half))
    link = other & ~overshoot
    same = town[b_of] == town[m]
    cross = link & ~same
    link &= same
    overshoot_rep = _piece_report(ids, c_of[overshoot], share[overshoot], ov[overshoot])
    cross_rep = _piece_report(ids, c_of[cross], share[cross], ov[cross], towns=(town[m[cross]], town[b_of[cross]]))
    if overshoot_rep["compounds"]:
        warnings.warn(
            f"compounds: {overshoot_rep['compounds']} compound(s) reach across a block road by a strip "
            f"narrower than {settings.compound_overshoot_m:g} m (digitising overshoot, "
            f"{overshoot_rep['area_m2']:,.0f} m² in all; first: {', '.join(overshoot_rep['first'])}): each is "
            "kept whole in the block holding most of it, the strip stays in the block across the road",
            RepairWarning, stacklevel=3)
    if cross_rep["compounds"]:
        warnings.warn(
            f"compounds: {cross_rep['compounds']} compound(s) straddle a town boundary (first: "
            f"{', '.join(cross_rep['first'])}): units never cross a town boundary, so each is counted whole "
            "(residents, households) in the town holding most of it while the town boundary cuts its outline. "
            "Fix: correct the town boundary or the compound outline", GeotijianWarning, stacklevel=3)
    return link, overshoot_rep, cross_rep


def _piece_report(ids: np.ndarray, comp: np.ndarray, share: np.ndarray, area: np.ndarray, *,
                  towns: tuple[np.ndarray, np.ndarray] | None = None, first: int = 5) -> dict:
    """Counts and the first compounds (by ID) of compound pieces left in another block."""
    d = pd.DataFrame({"id": ids[comp], "share": share,
                      "where": [f" in town {t}" for t in towns[1]] if towns is not None else ""})
    d = d.sort_values(["id", "share"], ascending=[True, False]).drop_duplicates("id").head(first)
    return {"compounds": int(len(np.unique(comp))), "pieces": int(len(comp)), "area_m2": float(np.sum(area)),
            "first": [f"{r.id} ({r.share:.0%}{r.where})" for r in d.itertuples()]}


def _num_column(gdf: pd.DataFrame, col: str, ids: np.ndarray, *, required: bool) -> np.ndarray | None:
    if col not in gdf.columns:
        if required:
            raise LayerError("compounds", f"no '{col}' column",
                             fix="put residents on compounds first with allocate_population(...)")
        return None
    v = pd.to_numeric(gdf[col], errors="coerce").to_numpy(dtype=float)
    bad = v < 0
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise LayerError("compounds", f"negative {col} ({v[k]:g})", feature=k, feature_id=ids[k],
                         count=int(bad.sum()), fix=f"correct the {col} values")
    return v


# ----------------------------------------------------------------------------- graph partition

class _Graph:
    """Adjacency of the atoms (block groups) of one town, for partitioning."""

    def __init__(self, adj: sparse.csr_matrix, w: np.ndarray, area: np.ndarray, perim: np.ndarray,
                 xy: np.ndarray):
        self.A = adj.tocsr()
        self.n = adj.shape[0]
        self.w = w
        self.area = area
        self.perim = perim
        self.xy = xy
        ip, ix, d = self.A.indptr, self.A.indices, self.A.data
        self.nb = [ix[ip[i]:ip[i + 1]].tolist() for i in range(self.n)]
        self.nw = [d[ip[i]:ip[i + 1]].tolist() for i in range(self.n)]

    # set measures --------------------------------------------------------------
    def perimeter(self, mask: np.ndarray) -> float:
        x = mask.astype(float)
        return float(self.perim[mask].sum() - x @ (self.A @ x))

    def pp(self, mask: np.ndarray) -> float:
        p = self.perimeter(mask)
        return 4 * math.pi * float(self.area[mask].sum()) / p ** 2 if p > 0 else 0.0

    def components(self, idx: np.ndarray) -> list[np.ndarray]:
        """Connected components of the atoms ``idx`` (breadth-first on the adjacency lists)."""
        if len(idx) == 0:
            return []
        members = idx.tolist()
        inside = dict.fromkeys(members, -1)
        nb = self.nb
        comps: list[list[int]] = []
        for s0 in members:
            if inside[s0] >= 0:
                continue
            c = len(comps)
            inside[s0] = c
            comp = [s0]
            stack = [s0]
            while stack:
                v = stack.pop()
                for u in nb[v]:
                    if inside.get(u) == -1:
                        inside[u] = c
                        comp.append(u)
                        stack.append(u)
            comps.append(comp)
        if len(comps) == 1:
            return [idx]
        return [np.sort(np.array(cc)) for cc in comps]

    # growth --------------------------------------------------------------------
    def grow(self, idx: np.ndarray, proj: np.ndarray):
        """Order ``idx`` so that every prefix is connected: best-first growth along ``proj``.

        Returns the order and, per prefix, the internal shared length and the cut length
        to the rest of ``idx`` (metres).
        """
        n = self.n
        inS = np.zeros(n, dtype=bool)
        inS[idx] = True
        inS_l = inS.tolist()
        key = np.full(n, np.inf)
        key[idx] = proj
        key_l = key.tolist()
        added = [False] * n
        queued = [False] * n
        rest = sorted(zip(proj.tolist(), idx.tolist()))
        order: list[int] = []
        int_l: list[float] = []
        cut_l: list[float] = []
        ci = cc = 0.0
        ri = 0
        heap: list = []
        nb, nw = self.nb, self.nw
        while len(order) < len(idx):
            if not heap:  # start (or restart in a disconnected set) at the lowest key left
                while added[rest[ri][1]]:
                    ri += 1
                s = rest[ri][1]
                queued[s] = True
                heap.append((key_l[s], s))
            _, v = heapq.heappop(heap)
            added[v] = True
            order.append(v)
            for u, ln in zip(nb[v], nw[v]):
                if not inS_l[u]:
                    continue
                if added[u]:
                    ci += ln
                    cc -= ln
                else:
                    cc += ln
                    if not queued[u]:
                        queued[u] = True
                        heapq.heappush(heap, (key_l[u], u))
            int_l.append(ci)
            cut_l.append(cc)
        return np.array(order), np.array(int_l), np.array(cut_l)


def _choose_k(W: float, lo: float, hi: float, n: int) -> list[int]:
    """Candidate numbers of units for W residents, best first (in range, then near the middle)."""
    mid = (lo + hi) / 2
    kmin = max(1, int(math.floor(W / hi)))
    kmax = max(kmin, int(math.ceil(W / lo)) if lo > 0 else kmin + 1)
    ks = list(range(kmin, min(kmax, max(n, 1)) + 1)) or [1]

    def cost(k: int):
        s = W / k
        viol = k * (max(0.0, lo - s) + max(0.0, s - hi))
        return (round(viol, 6), abs(s - mid), k)

    return sorted(ks, key=cost)


_ANGLES = np.arange(8) * math.pi / 8
_BALANCE_TOL = 0.25  # refinement keeps units within ±25 % of their group's mean size


_SPECTRAL_MAX = 200  # atoms: dense eigen-decomposition up to this size (~3 ms)


def _fiedler(g: _Graph, idx: np.ndarray) -> np.ndarray | None:
    """Fiedler vector of the shared-length-weighted Laplacian of ``idx`` (None if not useful)."""
    n = len(idx)
    if n < 4 or n > _SPECTRAL_MAX:
        return None
    sub = g.A[idx][:, idx].toarray()
    lap = np.diag(sub.sum(axis=1)) - sub
    try:
        _, vecs = scipy_eigh(lap, subset_by_index=[1, 1], driver="evr")
    except (np.linalg.LinAlgError, ValueError):  # pragma: no cover
        return None
    v = vecs[:, 0]
    v = v * (1.0 if v[np.argmax(np.abs(v))] > 0 else -1.0)  # fixed sign: deterministic
    return np.round(v, 9)


def _bisect(g: _Graph, idx: np.ndarray, k: int, lo: float, hi: float) -> list[np.ndarray]:
    """Recursive balanced bisection of connected ``idx`` into ``k`` parts."""
    if k <= 1 or len(idx) <= 1:
        return [idx]
    k = min(k, len(idx))
    k1 = k // 2
    k2 = k - k1
    w = g.w
    W = float(w[idx].sum())
    flo = max(k1 * lo, W - k2 * hi)
    fhi = min(k1 * hi, W - k2 * lo)
    target = W * k1 / k
    unit = W / k
    A_tot = float(g.area[idx].sum())
    P_sum = float(g.perim[idx].sum())
    xy = g.xy[idx]
    c = xy.mean(axis=0)
    keys = [sgn * ((xy - c) @ np.array([math.cos(a), math.sin(a)])) for a in _ANGLES for sgn in (1.0, -1.0)]
    f = _fiedler(g, idx)
    if f is not None:  # spectral order: follows weak links (narrow necks, water crossings)
        keys += [f, -f]
    best = None
    for key_proj in keys:
        order, int1, cut = g.grow(idx, key_proj)
        wo = np.cumsum(w[order])[:-1]
        a1 = np.cumsum(g.area[order])[:-1]
        p1s = np.cumsum(g.perim[order])[:-1]
        i1 = int1[:-1]
        cu = cut[:-1]
        int_tot = int1[-1]
        P1 = p1s - 2 * i1
        P2 = (P_sum - p1s) - 2 * (int_tot - i1 - cu)
        with np.errstate(divide="ignore", invalid="ignore"):
            pp1 = np.where(P1 > 0, 4 * math.pi * a1 / np.maximum(P1, 1e-9) ** 2, 0)
            pp2 = np.where(P2 > 0, 4 * math.pi * (A_tot - a1) / np.maximum(P2, 1e-9) ** 2, 0)
        viol = np.maximum(0, flo - wo) + np.maximum(0, wo - fhi)
        score = np.abs(wo - target) / unit + (1 - (pp1 + pp2) / 2) + 10 * viol / unit
        cand = np.argsort(score, kind="stable")[:4]
        for t in cand:
            s1 = np.zeros(g.n, dtype=bool)
            s1[order[:t + 1]] = True
            s2_idx = order[t + 1:]
            comps = g.components(s2_idx)
            if len(comps) > 1:
                main = max(comps, key=lambda cc: (w[cc].sum(), len(cc), -cc.min()))
                for cc in comps:
                    if cc is not main:
                        s1[cc] = True
                s2_idx = main
            s2 = np.zeros(g.n, dtype=bool)
            s2[s2_idx] = True
            w1 = float(w[s1].sum())
            if not s2.any():
                continue
            v = max(0.0, flo - w1) + max(0.0, w1 - fhi)
            if len(comps) > 1:
                sc = abs(w1 - target) / unit + (1 - (g.pp(s1) + g.pp(s2)) / 2) + 10 * v / unit
            else:
                sc = float(score[t])
            key = (round(sc, 9), w1)
            if best is None or key < best[0]:
                best = (key, s1.copy(), s2)
            if len(comps) == 1:
                break  # candidates are sorted: the first connected one is this order's best
    if best is None:
        return [idx]
    s1 = np.flatnonzero(best[1])
    s2 = np.flatnonzero(best[2])
    return _bisect(g, s1, k1, lo, hi) + _bisect(g, s2, k2, lo, hi)


def _split(g: _Graph, idx: np.ndarray, lo: float, hi: float) -> list[np.ndarray]:
    """Split a group above the ceiling into parts in range (best effort)."""
    w = g.w
    heavy = idx[w[idx] > hi]
    parts: list[np.ndarray] = [np.array([h]) for h in heavy]
    rest = idx[w[idx] <= hi]
    for comp in g.components(rest):
        W = float(w[comp].sum())
        if W <= hi:
            parts.append(comp)
            continue
        best = None
        for k in _choose_k(W, lo, hi, len(comp))[:3]:
            cand = _bisect(g, comp, k, lo, hi)
            pw = np.array([w[p].sum() for p in cand])
            viol = float((np.maximum(0, lo - pw) + np.maximum(0, pw - hi)).sum())
            pp = np.mean([g.pp(_mask(g.n, p)) for p in cand])
            key = (viol, -pp)
            if best is None or key < best[0]:
                best = (key, cand)
            if viol == 0:
                break
        parts.extend(best[1])
    return parts


def _mask(n: int, idx: np.ndarray) -> np.ndarray:
    m = np.zeros(n, dtype=bool)
    m[idx] = True
    return m


def _part_matrix(labels: np.ndarray, k: int) -> sparse.csr_matrix:
    n = len(labels)
    return sparse.csr_matrix((np.ones(n), (np.arange(n), labels)), shape=(n, k))


def _merge_small(g: _Graph, labels: np.ndarray, lo: float, hi: float, *, allow_over: bool) -> np.ndarray:
    """Merge parts under the floor into the adjacent part giving the most compact union.

    A merge that stays under the ceiling is preferred; with ``allow_over`` the most compact
    merge is taken anyway (the result is split afterwards), otherwise a merge over the
    ceiling is made only if it reduces the range violation.
    """
    labels = labels.copy()
    done: set[int] = set()
    for _ in range(g.n + 1):
        _, labels = np.unique(labels, return_inverse=True)
        k = int(labels.max()) + 1
        pw = np.bincount(labels, weights=g.w, minlength=k)
        small = [p for p in np.argsort(pw, kind="stable") if pw[p] < lo and int(p) not in done]
        if not small:
            break
        M = _part_matrix(labels, k)
        B = (M.T @ g.A @ M).tocsr()
        diag = B.diagonal()
        P = np.asarray(M.T @ g.perim).ravel() - diag
        Ar = np.asarray(M.T @ g.area).ravel()
        p = int(small[0])
        row = B.getrow(p)
        qs = row.indices[row.indices != p]
        if len(qs) == 0:
            done.add(p)
            continue
        shared = np.asarray(row[:, qs].todense()).ravel()
        mw = pw[p] + pw[qs]
        mp = P[p] + P[qs] - 2 * shared
        mpp = 4 * math.pi * (Ar[p] + Ar[qs]) / np.maximum(mp, 1e-9) ** 2
        ok = mw <= hi
        if ok.any():
            cand = np.flatnonzero(ok)
            q = qs[cand[np.lexsort((qs[cand], -mpp[cand]))[0]]]
        elif allow_over:
            q = qs[np.lexsort((qs, -mpp))[0]]
        else:
            over = mw - hi
            j = np.lexsort((qs, -mpp, over))[0]
            if over[j] < lo - pw[p]:
                q = qs[j]
            else:
                done.add(p)
                continue
        labels[labels == p] = q
        done = set()  # labels change: re-examine
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _violation(x: np.ndarray | float, lo: float, hi: float):
    return np.maximum(0, lo - x) + np.maximum(0, x - hi)


def _repair(g: _Graph, labels: np.ndarray, lo: float, hi: float, *, max_moves: int | None = None) -> np.ndarray:
    """Move boundary atoms between adjacent parts while the total range violation drops."""
    labels = labels.copy()
    w = g.w
    max_moves = max_moves if max_moves is not None else 4 * g.n
    for _ in range(max_moves):
        k = int(labels.max()) + 1
        pw = np.bincount(labels, weights=w, minlength=k)
        vio = _violation(pw, lo, hi)
        bad = np.flatnonzero(vio > 0)
        if len(bad) == 0:
            break
        best = None
        badset = set(bad.tolist())
        # candidate atoms: in or next to a violating part, on a part boundary
        A = g.A.tocoo()
        diff = labels[A.row] != labels[A.col]
        rows, cols = A.row[diff], A.col[diff]
        involve = np.isin(labels[rows], bad) | np.isin(labels[cols], bad)
        for a, b in zip(rows[involve].tolist(), cols[involve].tolist()):
            p, q = int(labels[a]), int(labels[b])  # move a from p to q
            if p not in badset and q not in badset:
                continue
            np_, nq = pw[p] - w[a], pw[q] + w[a]
            delta = float(_violation(np_, lo, hi) + _violation(nq, lo, hi) - vio[p] - vio[q])
            if delta >= -1e-9 or np_ <= 0 and (labels == p).sum() == 1:
                continue
            key = (delta, -w[a], a, q)
            if best is not None and key >= best[0]:
                continue
            members = np.flatnonzero(labels == p)
            members = members[members != a]
            if len(members) == 0 or len(g.components(members)) > 1:
                continue
            best = (key, a, q)
        if best is None:
            break
        labels[best[1]] = best[2]
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _connected_without(g: _Graph, members: list[int], a: int, in_part: np.ndarray) -> bool:
    """Is ``members`` minus atom ``a`` still connected (BFS on the part, ``in_part`` marks it)?"""
    rest = [m for m in members if m != a]
    if not rest:
        return False
    in_part[a] = False
    seen = {rest[0]}
    stack = [rest[0]]
    nb = g.nb
    while stack:
        v = stack.pop()
        for u in nb[v]:
            if in_part[u] and u not in seen:
                seen.add(u)
                stack.append(u)
    in_part[a] = True
    return len(seen) == len(rest)


def _refine(g: _Graph, labels: np.ndarray, lo: float, hi: float, origin: np.ndarray, *,
            rounds: int = 4) -> np.ndarray:
    """Boundary moves that shorten the units' boundaries (compactness), never worsening range.

    An atom moves from its unit p to an adjacent unit q when it shares more boundary with q
    than with p (the total unit boundary gets shorter), p stays connected, the range
    violation of p and q does not grow, and q descends from the same original group
    (the same committee, or merged committees) as the atom, and both units stay within
    ±25 % of the mean unit size of that group (balance), or get closer to it. Atoms joined
    to their unit only across water move to the unit they touch on land, when the range
    allows.
    """
    labels = labels.copy()
    w = g.w
    k0 = int(labels.max()) + 1
    pw0 = np.bincount(labels, weights=w, minlength=k0)
    uo = np.full(k0, -1)
    uo[labels[::-1]] = origin[::-1]
    # balance band: each unit stays within ±_BALANCE_TOL of the mean unit of its group
    mean_of = pd.Series(pw0).groupby(uo).mean()
    band_lo = np.maximum(lo, mean_of.to_numpy() * (1 - _BALANCE_TOL))
    band_hi = np.minimum(hi, mean_of.to_numpy() * (1 + _BALANCE_TOL))
    bidx = {o: i for i, o in enumerate(mean_of.index)}

    def cost(x: float, o: int) -> float:
        i = bidx[o]
        return 1e3 * float(_violation(x, lo, hi)) + float(_violation(x, band_lo[i], band_hi[i]))

    for _ in range(rounds):
        k = int(labels.max()) + 1
        pw = np.bincount(labels, weights=w, minlength=k)
        M = _part_matrix(labels, k)
        AM = (g.A @ M).tocoo()
        own = np.asarray((g.A @ M)[np.arange(g.n), labels]).ravel()
        a_, q_, l_ = AM.row, AM.col, AM.data
        cand = (q_ != labels[a_]) & (l_ - own[a_] > 1e-6)
        if not cand.any():
            break
        a_, q_, gain = a_[cand], q_[cand], (l_ - own[a_])[cand]
        unit_origin = np.full(k, -1)
        unit_origin[labels[::-1]] = origin[::-1]
        order = np.lexsort((q_, a_, -gain))
        members = {u: np.flatnonzero(labels == u).tolist() for u in np.unique(labels[a_[order]])}
        moved = 0
        for t in order:
            a, q = int(a_[t]), int(q_[t])
            p = int(labels[a])
            if p == q or unit_origin[q] != origin[a]:
                continue
            nbl, nwl = g.nb[a], g.nw[a]
            to_q = sum(ln for u, ln in zip(nbl, nwl) if labels[u] == q)
            to_p = sum(ln for u, ln in zip(nbl, nwl) if labels[u] == p)
            if to_q - to_p <= 1e-6:
                continue
            np_, nq = pw[p] - w[a], pw[q] + w[a]
            o = int(origin[a])
            if cost(np_, o) + cost(nq, o) > cost(pw[p], o) + cost(pw[q], o) + 1e-9:
                continue
            mem = members.get(p)
            if mem is None:
                mem = members[p] = np.flatnonzero(labels == p).tolist()
            in_part = labels == p
            if not _connected_without(g, mem, a, in_part):
                continue
            labels[a] = q
            pw[p], pw[q] = np_, nq
            mem.remove(a)
            if q in members:
                members[q].append(a)
            moved += 1
        if moved == 0:
            break
    _, labels = np.unique(labels, return_inverse=True)
    return labels


def _partition_town(g: _Graph, init: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """Units of one town: merge small groups, split big ones, merge remnants, repair, refine."""
    labels = _merge_small(g, init, lo, hi, allow_over=True)
    out = np.empty(g.n, dtype=int)
    nxt = 0
    for p in range(int(labels.max()) + 1):
        idx = np.flatnonzero(labels == p)
        if g.w[idx].sum() > hi:
            parts = _split(g, idx, lo, hi)
        else:
            parts = [idx]
        for part in parts:
            out[part] = nxt
            nxt += 1
    out = _merge_small(g, out, lo, hi, allow_over=False)
    out = _repair(g, out, lo, hi)
    out = _refine(g, out, lo, hi, labels)
    return out


# ----------------------------------------------------------------------------- units

_DIRS = ["east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east"]


def _direction(dx: float, dy: float) -> str:
    if math.hypot(dx, dy) < 1e-9:
        return "centre"
    a = (math.degrees(math.atan2(dy, dx)) + 360 + 22.5) % 360
    return _DIRS[int(a // 45)]


def delineate_units(
    blocks: gpd.GeoDataFrame,
    compounds: gpd.GeoDataFrame,
    committees: gpd.GeoDataFrame | None = None,
    towns: gpd.GeoDataFrame | None = None,
    *,
    min_pop: float | None = None,
    max_pop: float | None = None,
    gap_m: float | None = None,
    min_overlap_share: float | None = None,
    strict: bool = False,
    default_town_code: str = "T1",
) -> gpd.GeoDataFrame:
    """Community check-up units (社区体检单元) of ``min_pop``-``max_pop`` residents.

    Parameters
    ----------
    blocks : geopandas.GeoDataFrame
        Output of :func:`delineate_blocks` (metric CRS).
    compounds : geopandas.GeoDataFrame
        Compounds (小区) with ``compound_id`` and ``population`` (persons; see
        :func:`geotijian.population.allocate_population`), optional ``households``.
    committees : geopandas.GeoDataFrame, optional
        Residents' committees (居委会) with ``committee_id`` (and ``name``). Each block group
        goes to the committee covering most of it. Without committees, each town is
        regionalised directly.
    towns : geopandas.GeoDataFrame, optional
        Towns (街镇) with ``town_code`` and ``name``. When ``blocks`` have no
        ``town_code``, blocks are assigned to towns here.
    min_pop, max_pop : float, optional
        Unit size range, persons; default ``settings.unit_min_pop`` / ``unit_max_pop``
        (5,000-12,000, Jiading 2024 work plan).
    gap_m : float, optional
        Blocks of the same town separated by less than this (metres) of water or rail are
        neighbours for a piece too small to stand alone (a canal with a bridge); default
        ``settings.unit_bridge_gap_m`` (60 m). Land components are grouped on their own.
    min_overlap_share : float, optional
        Share of a compound's area under which a thin piece across a road is a digitising
        overshoot (see :func:`assign_compounds`); default ``settings.compound_cut_share``.
    strict : bool
        Raise :class:`FeasibilityError` when some unit cannot be in range, instead of
        flagging it.
    default_town_code : str
        Town code used when neither ``blocks`` nor ``towns`` carry one.

    Returns
    -------
    geopandas.GeoDataFrame
        Columns ``model.UNIT_COLUMNS`` + geometry, sorted by ``unit_id``
        (``<town code>-U<nn>``, numbered north to south, then west to east, in each town).
        ``population`` persons, ``area_ha`` hectares, ``compactness`` Polsby-Popper,
        ``flag`` True when the unit is out of range (``flag_reason`` says why; it also notes
        a unit in several parts). ``attrs["geotijian"]`` holds ``feasibility`` (the domain
        messages), the assignments ``compound_unit`` (compound_id → unit_id) and
        ``block_unit`` (block_id → unit_id) as read-only :class:`IdMap` mappings, and
        counts.

    Raises
    ------
    FeasibilityError
        With ``strict=True``, when the population range cannot be met; the message says
        where and why in domain terms.
    LayerError
        Missing or negative population, no CRS, a compound outside every block.
    """
    lo = float(settings.unit_min_pop if min_pop is None else min_pop)
    hi = float(settings.unit_max_pop if max_pop is None else max_pop)
    if not 0 <= lo < hi:
        raise ValueError(f"min_pop ({lo:g}) must be below max_pop ({hi:g})")
    gap_m = float(settings.unit_bridge_gap_m if gap_m is None else gap_m)
    crs = _metric_crs(blocks, "blocks")
    cids = (compounds["compound_id"].astype(str).to_numpy() if "compound_id" in compounds.columns
            else None)
    if cids is None:
        raise LayerError("compounds", "no 'compound_id' column",
                         fix="read the layer with read_layer(..., 'compounds')")
    dup = pd.Series(cids).duplicated().to_numpy()
    if dup.any():
        k = int(np.flatnonzero(dup)[0])
        raise LayerError("compounds", "duplicate compound_id", feature=k, feature_id=cids[k],
                         count=int(dup.sum()), fix="give every compound its own ID (read_layer checks this)")
    pop = _num_column(compounds, "population", cids, required=True)
    if np.isnan(pop).any():
        k = int(np.flatnonzero(np.isnan(pop))[0])
        raise LayerError("compounds", "missing population", feature=k, feature_id=cids[k],
                         count=int(np.isnan(pop).sum()),
                         fix="fill it, or estimate it with allocate_population(source='buildings' or 'raster')")

    blocks = blocks.reset_index(drop=True)
    town_names: dict[str, str] = {}
    if towns is not None:
        _metric_crs(towns, "towns")
        tcode = towns["town_code"].astype(str).to_numpy()
        names = towns["name"].astype(str).to_numpy() if "name" in towns.columns else tcode
        town_names = dict(zip(tcode, names))
    if "town_code" not in blocks.columns or blocks["town_code"].isna().all():
        blocks = blocks.copy()
        if towns is not None:
            rep: dict = {}
            blocks["town_code"] = _town_of(np.asarray(blocks.geometry.values, dtype=object),
                                           _geoms_of(towns, "towns", crs), tcode, rep)
        else:
            blocks["town_code"] = default_town_code
    blocks["town_code"] = blocks["town_code"].astype(str)

    bl, cp = assign_compounds(blocks, compounds.reset_index(drop=True), min_overlap_share=min_overlap_share)
    # atoms = block groups
    gids, ginv = np.unique(bl["group_id"].to_numpy(), return_inverse=True)
    bgeoms = np.asarray(bl.geometry.values, dtype=object)
    _, ageoms = _union_groups(bgeoms, ginv)
    na = len(gids)
    atom_town = pd.Series(bl["town_code"].to_numpy()).groupby(ginv).first().to_numpy().astype(str)
    cp_atom = np.searchsorted(gids, cp["group_id"].to_numpy())
    w = np.bincount(cp_atom, weights=pop, minlength=na)
    ncomp = np.bincount(cp_atom, minlength=na)
    hh = _num_column(compounds, "households", cids, required=False)
    # quantised (mm, mm²) so that the same input in another row order or vertex order gives
    # bit-identical scores, hence identical units
    area = np.round(shapely.area(ageoms), 3)
    perim = np.round(shapely.length(ageoms), 3)
    c = shapely.centroid(ageoms)
    xy = np.round(np.column_stack([shapely.get_x(c), shapely.get_y(c)]), 3)
    adj = _adjacency(ageoms, gap_m=gap_m, group=atom_town)
    adj.data = np.round(adj.data, 3)
    atom_blocks = pd.Series(bl["block_id"].to_numpy()).groupby(ginv).agg(lambda s: ",".join(sorted(s))).to_numpy()

    # committee of each atom
    atom_comm = np.full(na, "", dtype=object)
    comm_names: dict[str, str] = {}
    if committees is not None:
        _metric_crs(committees, "committees")
        if "committee_id" not in committees.columns:
            raise LayerError("committees", "no 'committee_id' column",
                             fix="read the layer with read_layer(..., 'committees')")
        cg = _geoms_of(committees, "committees", crs)
        ccode = committees["committee_id"].astype(str).to_numpy()
        cnm = committees["name"].astype(str).to_numpy() if "name" in committees.columns else ccode
        comm_names = dict(zip(ccode, cnm))
        ctree = shapely.STRtree(cg)
        ai, ci = ctree.query(ageoms, predicate="intersects")
        ov = np.round(shapely.area(shapely.intersection(ageoms[ai], cg[ci])), 1)
        d = pd.DataFrame({"a": ai, "c": ci, "ov": ov, "code": ccode[ci]})
        # ties (a block group shared half and half) go to the lowest committee code
        d = d[d["ov"] > 0].sort_values(["a", "ov", "code"], ascending=[True, False, True]).drop_duplicates("a")
        atom_comm[d["a"].to_numpy()] = ccode[d["c"].to_numpy()]
        miss = np.flatnonzero(atom_comm == "")
        if len(miss):
            near_a, near_c = ctree.query_nearest(ageoms[miss], return_distance=False)
            first = pd.Series(near_c).groupby(near_a).first()
            atom_comm[miss[first.index.to_numpy()]] = ccode[first.to_numpy()]
            shown = [f"{_atom_label(atom_blocks[a])} → {atom_comm[a]}" for a in miss[:3]]
            warnings.warn(f"committees: {len(miss)} block group(s) lie under no committee polygon (a gap between "
                          f"the committees) and were given the nearest committee (first: {'; '.join(shown)}). "
                          "Fix: extend the committee polygons to cover the study area", GeotijianWarning,
                          stacklevel=2)
        empty = np.setdiff1d(ccode, atom_comm.astype(str))
        if len(empty):
            shown = ", ".join(f"{c} {comm_names.get(c, '')}".strip() for c in empty[:5])
            warnings.warn(f"committees: {len(empty)} committee(s) hold no block group and appear in no unit "
                          f"(first: {shown}): "
                          "a neighbour covers them, or they are smaller than the blocks around them. Their "
                          "residents are counted in the units of the committees around them", GeotijianWarning,
                          stacklevel=2)
    elif "committee_id" in cp.columns:
        # committees column of the output still lists the compounds' committees
        pass

    # 1. feasibility, town by town, before any partitioning
    feas: list[str] = []
    blocking: list[str] = []
    plans = []
    for town in sorted(set(atom_town.tolist())):
        idx = np.flatnonzero(atom_town == town)
        tname = town_names.get(town, town)
        sub = adj[idx][:, idx]
        W = float(w[idx].sum())
        land = sub.copy()
        land.data = np.where(land.data > 0.01, land.data, 0.0)
        land.eliminate_zeros()
        # connect the town's components (islands) with nearest-neighbour links
        sub, notes = _connect_components(sub, ageoms[idx], w[idx], xy[idx], atom_blocks[idx], tname, lo)
        feas += notes
        g = _Graph(sub, w[idx], area[idx], perim[idx], xy[idx])
        if W < lo:
            blocking.append(f"town {tname} has {W:,.0f} residents in all, below the unit floor of "
                            f"{lo:,.0f}: it is one flagged unit")
        for h in np.flatnonzero(w[idx] > hi):
            a = idx[h]
            if ncomp[a] == 1:
                k = int(np.flatnonzero(cp_atom == a)[0])
                nm = str(cp["name"].iloc[k]) if "name" in cp.columns else ""
                blocking.append(f"compound {cids[k]}{' ' + nm if nm and nm != 'nan' else ''} alone has "
                                f"{w[a]:,.0f} residents, above the ceiling of {hi:,.0f}; compounds are never "
                                "split, so its unit is flagged")
            else:
                blocking.append(f"{_atom_label(atom_blocks[a])} in town {tname} holds {w[a]:,.0f} residents "
                                f"in {ncomp[a]} compounds and no road of the chosen classes divides it: its "
                                "unit is flagged")
        if committees is not None:
            comm_local = atom_comm[idx]
            _, init = np.unique(comm_local, return_inverse=True)
            n_note, n_block = _committee_messages(g, land, init, comm_local, comm_names, tname, lo)
            feas += n_note
            blocking += n_block
        else:
            # water, rail and the boundary are primary unit edges: each land component of
            # the town is grouped on its own; components under the floor join a neighbour
            # across the gap (the bridge / nearest-block links) in the merge step
            _, init = connected_components(land, directed=False)
        plans.append((town, idx, g, init, W))
    feas = blocking + feas
    if strict and blocking:
        raise FeasibilityError(f"units cannot all hold {lo:,.0f}-{hi:,.0f} residents: " + "; ".join(blocking))

    # 2. partition
    labels_all = np.full(na, -1)
    unit_town = []
    offset = 0
    for town, idx, g, init, W in plans:
        lab = _partition_town(g, init, lo, hi) if W >= lo else np.zeros(len(idx), dtype=int)
        labels_all[idx] = lab + offset
        offset += int(lab.max()) + 1
        unit_town += [town] * (int(lab.max()) + 1)

    pw = np.bincount(labels_all, weights=w)
    if strict and ((pw < lo) | (pw > hi)).any():
        raise FeasibilityError(f"units cannot all hold {lo:,.0f}-{hi:,.0f} residents: the blocks are too "
                               f"coarse to group {int(((pw < lo) | (pw > hi)).sum())} unit(s) in range; "
                               "add a finer road class (road_classes) or check the committees")
    if feas:
        warnings.warn("units: " + "; ".join(feas), GeotijianWarning, stacklevel=2)

    units = _unit_table(labels_all, np.array(unit_town, dtype=object), ageoms, w, hh, cp_atom, atom_comm,
                        cp, adj, lo, hi, town_names, comm_names, crs, ncomp)
    # compound → unit
    atom_uid = units.attrs.pop("_atom_uid")[labels_all]
    comp_unit = pd.Series(atom_uid[cp_atom], index=cids, name="unit_id")
    units.attrs["geotijian"] = {
        "role": "units",
        "feasibility": feas,
        "compound_unit": IdMap(comp_unit.index, comp_unit.to_numpy()),
        "block_unit": IdMap(bl["block_id"].astype(str), atom_uid[ginv]),
        "range": [lo, hi],
        "report": {**bl.attrs["geotijian"]["report"].get("compounds", {}), "atoms": int(na),
                   "units": int(len(units))},
    }
    return units


def _atom_label(blocks: str) -> str:
    ids = blocks.split(",")
    if len(ids) == 1:
        return f"block {ids[0]}"
    return f"block {ids[0]} with {len(ids) - 1} more joined by compounds cut by roads"


def _connect_components(sub, geoms, w, xy, names, tname, lo):
    """Join the components of a town's atom graph by nearest-neighbour edges; say which are cut off."""
    k, lab = connected_components(sub, directed=False)
    msgs: list[str] = []
    if k == 1:
        return sub.tocsr(), msgs
    W = np.bincount(lab, weights=w, minlength=k)
    main = int(np.argmax(W))
    centre = xy[lab == main].mean(axis=0)
    for c in range(k):
        if c == main:
            continue
        if 0 < W[c] < lo:
            cx, cy = xy[lab == c].mean(axis=0)
            where = _direction(cx - centre[0], cy - centre[1])
            nb = ",".join(names[lab == c]).split(",")
            shown = ", ".join(nb[:3]) + (f" and {len(nb) - 3} more" if len(nb) > 3 else "")
            msgs.append(f"the blocks in the {where} of town {tname} cut off by water, rail or the "
                        f"boundary ({shown}) hold {W[c]:,.0f} residents and cannot reach {lo:,.0f} "
                        "on their own: they are grouped with the nearest blocks across it")
    # minimum spanning links between components: join each to its nearest other component,
    # repeat until connected (a handful of rounds)
    sub = sub.tolil()
    for _ in range(32):
        k, lab = connected_components(sub.tocsr(), directed=False)
        if k == 1:
            break
        for c in range(k):
            inside = np.flatnonzero(lab == c)
            outside = np.flatnonzero(lab != c)
            tree = shapely.STRtree(geoms[outside])
            (ii, oo), dist = tree.query_nearest(geoms[inside], return_distance=True, all_matches=False)
            j = int(np.lexsort((inside[ii], dist))[0])
            a, b = int(inside[ii[j]]), int(outside[oo[j]])
            sub[a, b] = 1e-3
            sub[b, a] = 1e-3
        # loop again: joined pairs may still leave several components
    return sub.tocsr(), msgs


def _committee_messages(g: _Graph, land: sparse.csr_matrix, init, comm_local, names, tname,
                        lo) -> tuple[list[str], list[str]]:
    """Committees under the floor without a neighbour: on land (note) or at all (blocking)."""
    notes, blocking = [], []
    k = int(init.max()) + 1
    pw = np.bincount(init, weights=g.w, minlength=k)
    M = _part_matrix(init, k)
    deg = []
    for A in (land, g.A):
        B = (M.T @ A @ M).tocsr()
        B.setdiag(0)
        B.eliminate_zeros()
        deg.append(np.diff(B.indptr))
    for p in np.flatnonzero(pw < lo):
        cid = comm_local[np.flatnonzero(init == p)[0]]
        who = f"committee {cid} {names.get(cid, '')}".strip()
        if deg[1][p] == 0:
            blocking.append(f"{who} has {pw[p]:,.0f} residents and no neighbour in its town {tname}")
        elif deg[0][p] == 0:
            notes.append(f"{who} has {pw[p]:,.0f} residents and no neighbour on land in its town {tname}: "
                         "it is merged across water or rail with the nearest committee")
    return notes, blocking


def _unit_table(labels, unit_town, ageoms, w, hh, cp_atom, atom_comm, cp, adj, lo, hi,
                town_names, comm_names, crs, ncomp) -> gpd.GeoDataFrame:
    nu = int(labels.max()) + 1
    _, ugeoms = _union_groups(ageoms, labels)
    pop = np.bincount(labels, weights=w, minlength=nu)
    comp_unit = labels[cp_atom]
    real = (cp["home_kind"] != "building").to_numpy(float) if "home_kind" in cp.columns else None
    ccount = np.bincount(comp_unit, weights=real, minlength=nu).astype(int)
    if hh is not None:
        known = np.bincount(comp_unit, weights=np.isnan(hh).astype(float), minlength=nu) == 0
        households = np.where(known, np.bincount(comp_unit, weights=np.nan_to_num(hh), minlength=nu), np.nan)
    else:
        households = np.full(nu, np.nan)
    if (atom_comm != "").any():
        comms = pd.Series(atom_comm).groupby(labels).agg(lambda s: ",".join(sorted(set(s) - {""})))
    elif "committee_id" in cp.columns:
        comms = (pd.Series(cp["committee_id"].fillna("").astype(str).to_numpy()).groupby(comp_unit)
                 .agg(lambda s: ",".join(sorted(set(s) - {"", "nan", "None"}))))
    else:
        comms = pd.Series(dtype=object)
    comms = comms.reindex(range(nu), fill_value="").to_numpy()
    # neighbours between units (for reasons)
    M = _part_matrix(labels, nu)
    UB = (M.T @ adj @ M).tocsr()
    UB.setdiag(0)
    UB.eliminate_zeros()
    flags = np.zeros(nu, dtype=bool)
    reasons = np.full(nu, "", dtype=object)
    nparts = shapely.get_num_geometries(ugeoms)
    town_pop = pd.Series(pop).groupby(unit_town).transform("sum").to_numpy()
    cname = cp["name"].astype(str).to_numpy() if "name" in cp.columns else cp["compound_id"].astype(str).to_numpy()
    for u in range(nu):
        r = []
        if pop[u] > hi:
            flags[u] = True
            atoms = np.flatnonzero(labels == u)
            ks = np.flatnonzero(comp_unit == u)
            big = ks[np.argmax(np.nan_to_num(pd.to_numeric(cp["population"].iloc[ks]).to_numpy()))] if len(ks) else None
            bigpop = float(pd.to_numeric(cp["population"]).iloc[big]) if big is not None else 0.0
            if big is not None and bigpop > hi:
                r.append(f"single compound of {bigpop:,.0f} residents ({cname[big]})")
            elif len(atoms) == 1:
                r.append(f"one block of {pop[u]:,.0f} residents in {ncomp[atoms[0]]} compounds, not divided "
                         "by roads of the chosen classes")
            else:
                r.append(f"{pop[u]:,.0f} residents: the blocks cannot be grouped under {hi:,.0f}")
        elif pop[u] < lo:
            flags[u] = True
            nb = UB.indices[UB.indptr[u]:UB.indptr[u + 1]]
            if town_pop[u] < lo:
                t = unit_town[u]
                r.append(f"town {town_names.get(t, t)} has only {town_pop[u]:,.0f} residents")
            elif len(nb) == 0:
                c = comms[u].split(",")[0] if comms[u] else ""
                who = (f"committee {c} {comm_names.get(c, '')}".strip() + " has" if c
                       else "the blocks have")
                r.append(f"{who} {pop[u]:,.0f} residents and no neighbour in its town (cut off by water, "
                         "rail or the boundary)")
            elif (pop[nb] + pop[u] > hi).all():
                r.append(f"{pop[u]:,.0f} residents: merging with any neighbour would exceed {hi:,.0f}")
            else:
                r.append(f"{pop[u]:,.0f} residents: the blocks around cannot be regrouped in range")
        if nparts[u] > 1:
            r.append(f"in {nparts[u]} parts separated by water, rail or other units")
        reasons[u] = "; ".join(r)
    # ids: per town, north to south then west to east
    pts = shapely.point_on_surface(ugeoms)
    order = np.lexsort((np.round(shapely.get_x(pts), 1), -np.round(shapely.get_y(pts), 1), unit_town))
    uid = np.empty(nu, dtype=object)
    counter: dict[str, int] = {}
    width = {t: max(2, len(str(int((unit_town == t).sum())))) for t in set(unit_town.tolist())}
    for u in order:
        t = unit_town[u]
        counter[t] = counter.get(t, 0) + 1
        uid[u] = f"{t}-U{counter[t]:0{width[t]}d}"
    df = gpd.GeoDataFrame(
        {
            "unit_id": uid,
            "town_code": unit_town,
            "town_name": [town_names.get(t, t) for t in unit_town],
            "committees": comms,
            "population": pop,
            "households": households,
            "area_ha": shapely.area(ugeoms) / 1e4,
            "compound_count": ccount,
            "compactness": polsby_popper(ugeoms),
            "flag": flags,
            "flag_reason": reasons,
        },
        geometry=ugeoms, crs=crs,
    )
    df = df[UNIT_COLUMNS + ["geometry"]]
    df.attrs["_atom_uid"] = uid
    return df.sort_values("unit_id").reset_index(drop=True)


# ----------------------------------------------------------------------------- table

def range_compliance(units: pd.DataFrame, *, min_pop: float | None = None,
                     max_pop: float | None = None) -> pd.DataFrame:
    """Short table of range compliance, per town and in all.

    Parameters
    ----------
    units : DataFrame
        Output of :func:`delineate_units`.
    min_pop, max_pop : float, optional
        Range, persons; default the one the units were made with, else the settings.

    Returns
    -------
    pandas.DataFrame
        ``town_code``, ``town_name``, ``units``, ``in_range``, ``below``, ``above``,
        ``share_in_range``, ``population``, ``median_population``, ``flagged``; one row per
        town (sorted by code) and a last row ``ALL``.
    """
    rng = units.attrs.get("geotijian", {}).get("range")
    lo = float(min_pop if min_pop is not None else (rng[0] if rng else settings.unit_min_pop))
    hi = float(max_pop if max_pop is not None else (rng[1] if rng else settings.unit_max_pop))
    p = units["population"].astype(float)
    d = pd.DataFrame({
        "town_code": units["town_code"].astype(str),
        "town_name": units["town_name"].astype(str) if "town_name" in units.columns else units["town_code"],
        "in_range": (p >= lo) & (p <= hi), "below": p < lo, "above": p > hi,
        "population": p, "flagged": units["flag"].astype(bool) if "flag" in units.columns else False,
    })
    agg = {"town_name": "first", "in_range": "sum", "below": "sum", "above": "sum",
           "population": ["sum", "median", "size"], "flagged": "sum"}
    g = d.groupby("town_code", sort=True).agg(agg)
    g.columns = ["town_name", "in_range", "below", "above", "population", "median_population",
                 "units", "flagged"]
    total = pd.DataFrame([{
        "town_name": "全区 all", "in_range": d["in_range"].sum(), "below": d["below"].sum(),
        "above": d["above"].sum(), "population": p.sum(), "median_population": p.median(),
        "units": len(d), "flagged": d["flagged"].sum()}], index=pd.Index(["ALL"], name="town_code"))
    out = pd.concat([g, total]).reset_index()
    out["share_in_range"] = out["in_range"] / out["units"].where(out["units"] > 0)
    cols = ["town_code", "town_name", "units", "in_range", "below", "above", "share_in_range",
            "population", "median_population", "flagged"]
    out = out[cols]
    for c in ("units", "in_range", "below", "above", "flagged"):
        out[c] = out[c].astype(int)
    return out


# ----------------------------------------------------------------------------- one call

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
    from .population import allocate_population  # population → units, one way

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
    units = delineate_units(blocks, comp, committees, towns, min_pop=min_pop, max_pop=max_pop, strict=strict)
    meta = units.attrs["geotijian"]
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
