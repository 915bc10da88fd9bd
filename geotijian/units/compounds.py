"""Compounds (小区) on blocks: a compound is never split.

Each compound is attached to the block holding most of its area, and every other block
holding a piece of it joins that block's *block group* (:func:`assign_compounds`); block
groups are the atoms every partition is made of, so every compound lies in exactly one
unit. Two cases are reported, not fused: a digitising overshoot (a piece under
``settings.compound_cut_share`` of the compound and nowhere wider than
``settings.compound_overshoot_m``) and a piece in another town (units never cross a town
boundary). :func:`compounds_from_landuse` makes compounds from OSM residential areas.
"""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .. import settings
from ..errors import GeotijianWarning, LayerError, RepairWarning
from .geometry import _geoms_of, _metric_crs, _rep_order, query_pairs


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
    ci, bi = query_pairs(tree, cg, "intersects")
    carea = shapely.area(cg)
    pieces, ov = _pieces(cg, bg, ci, bi, carea)
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
    group_id = _group_min(block_ids, lab)

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


def _pieces(cg: np.ndarray, bg: np.ndarray, ci: np.ndarray, bi: np.ndarray, carea: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """The pieces of compounds in blocks (pairs ``ci``, ``bi``) and their areas (m², to 0.1).

    A compound meeting one block only, wholly inside it and over 1 m², is its own piece:
    its area (> 0 either way) only makes it the compound's main block, and its piece is
    never used (only the pieces in *other* blocks are, as overshoots), so the overlay is
    skipped for it (99.9 % of the compounds of a district; the rest are intersected).
    """
    n_cand = np.bincount(ci, minlength=len(cg))
    alone = (n_cand[ci] == 1) & (carea[ci] > 1.0)
    if alone.any():
        alone[alone] = shapely.contains_properly(bg[bi[alone]], cg[ci[alone]])  # prepared blocks
    pieces = cg[ci].copy()
    cut = ~alone
    pieces[cut] = shapely.intersection(cg[ci[cut]], bg[bi[cut]])
    ov = np.round(shapely.area(pieces), 1)
    return pieces, ov


def _group_min(ids: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """The smallest of ``ids`` (str) in each group ``lab``, for every row:
    ``pd.Series(ids).groupby(lab).min().reindex(lab)`` by sorted codes, not per group."""
    uniq, code = np.unique(ids.astype(str), return_inverse=True)
    lo = np.full(int(lab.max()) + 1 if len(lab) else 0, len(uniq), dtype=np.int64)
    np.minimum.at(lo, lab, code)
    return uniq[lo[lab]].astype(object)


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
