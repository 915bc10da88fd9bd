"""Community check-up units (社区体检单元) from blocks, compounds, committees and towns.

:func:`delineate_units`: atoms (block groups, see :mod:`.compounds`) are grouped town by
town (:mod:`.grouping`), feasibility is checked before any partitioning, and each town is
partitioned (:func:`_partition_town`): groups under the floor merged (:mod:`.merge`), groups
above the ceiling split (:mod:`.split`), remnants merged, boundary atoms moved to repair
the range and to shorten unit boundaries (:mod:`.refine`); the table is made in
:mod:`.table`.
"""

from __future__ import annotations

import warnings
from typing import NamedTuple

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS
from scipy import sparse

from .. import settings
from ..errors import FeasibilityError, GeotijianWarning, LayerError
from .blocks import _town_of
from .compounds import _num_column, assign_compounds
from .geometry import _adjacency, _geoms_of, _metric_crs, _union_groups
from .graph import _Graph
from .grouping import _atom_committees, _town_plans
from .merge import _merge_small
from .refine import _refine, _repair
from .split import _split
from .table import IdMap, _unit_table


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
    return _delineate_units(blocks, compounds, committees, towns, min_pop=min_pop, max_pop=max_pop, gap_m=gap_m,
                            min_overlap_share=min_overlap_share, strict=strict,
                            default_town_code=default_town_code)[0]


def _delineate_units(blocks: gpd.GeoDataFrame, compounds: gpd.GeoDataFrame, committees: gpd.GeoDataFrame | None,
                     towns: gpd.GeoDataFrame | None, *, min_pop: float | None, max_pop: float | None,
                     gap_m: float | None, min_overlap_share: float | None, strict: bool, default_town_code: str
                     ) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """:func:`delineate_units`, also returning the blocks it used (with their ``town_code``)
    and the (blocks, compounds) of :func:`assign_compounds` on them."""
    lo = float(settings.unit_min_pop if min_pop is None else min_pop)
    hi = float(settings.unit_max_pop if max_pop is None else max_pop)
    if not 0 <= lo < hi:
        raise ValueError(f"min_pop ({lo:g}) must be below max_pop ({hi:g})")
    gap_m = float(settings.unit_bridge_gap_m if gap_m is None else gap_m)
    crs = _metric_crs(blocks, "blocks")
    cids, pop = _compound_population(compounds)
    blocks, town_names = _blocks_in_towns(blocks.reset_index(drop=True), towns, crs, default_town_code)

    bl, cp = assign_compounds(blocks, compounds.reset_index(drop=True), min_overlap_share=min_overlap_share)
    at = _atoms(bl, cp, pop, gap_m)
    na = len(at.w)
    hh = _num_column(compounds, "households", cids, required=False)
    atom_comm = np.full(na, "", dtype=object)
    comm_names: dict[str, str] = {}
    if committees is not None:
        atom_comm, comm_names = _atom_committees(committees, at.geoms, at.blocks, crs)

    # 1. feasibility, town by town, before any partitioning
    plans, feas, blocking = _town_plans(at, cp, cids, atom_comm, comm_names, town_names, lo, hi,
                                        by_committee=committees is not None)
    feas = blocking + feas
    if strict and blocking:
        raise FeasibilityError(f"units cannot all hold {lo:,.0f}-{hi:,.0f} residents: " + "; ".join(blocking))

    # 2. partition
    labels_all, unit_town = _partition_all(plans, na, at.w, lo, hi, strict=strict)
    if feas:
        warnings.warn("units: " + "; ".join(feas), GeotijianWarning, stacklevel=2)

    units = _unit_table(labels_all, np.array(unit_town, dtype=object), at.geoms, at.w, hh, at.cp_atom, atom_comm,
                        cp, at.adj, lo, hi, town_names, comm_names, crs, at.ncomp)
    # compound → unit
    atom_uid = units.attrs.pop("_atom_uid")[labels_all]
    comp_unit = pd.Series(atom_uid[at.cp_atom], index=cids, name="unit_id")
    units.attrs["geotijian"] = {
        "role": "units",
        "feasibility": feas,
        "compound_unit": IdMap(comp_unit.index, comp_unit.to_numpy()),
        "block_unit": IdMap(bl["block_id"].astype(str), atom_uid[at.ginv]),
        "range": [lo, hi],
        "report": {**bl.attrs["geotijian"]["report"].get("compounds", {}), "atoms": int(na),
                   "units": int(len(units))},
    }
    return units, blocks, bl, cp


def _compound_population(compounds: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(``compound_id`` as str, ``population`` in persons) of ``compounds``, checked.

    Raises :class:`LayerError` on a missing or duplicate ``compound_id`` or a missing or
    negative population.
    """
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
    return cids, pop


def _blocks_in_towns(blocks: gpd.GeoDataFrame, towns: gpd.GeoDataFrame | None, crs: CRS,
                     default_town_code: str) -> tuple[gpd.GeoDataFrame, dict[str, str]]:
    """``blocks`` with a str ``town_code`` (from ``towns`` when they carry none) and the town names."""
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
    return blocks, town_names


class _Atoms(NamedTuple):
    """The atoms of every partition (block groups) and their measures, one row per atom."""

    ginv: np.ndarray     #: atom of each block (row of ``bl``)
    geoms: np.ndarray    #: union of the atom's blocks
    town: np.ndarray     #: town code (str)
    cp_atom: np.ndarray  #: atom of each compound (row of ``cp``)
    w: np.ndarray        #: residents (persons)
    ncomp: np.ndarray    #: compounds
    area: np.ndarray     #: m², rounded to mm²
    perim: np.ndarray    #: m, rounded to mm
    xy: np.ndarray       #: centroid (m, rounded to mm), shape (n, 2)
    adj: sparse.csr_matrix  #: shared edge lengths (m; links across a gap within the town)
    blocks: np.ndarray   #: the atom's block ids, comma-separated


def _atoms(bl: gpd.GeoDataFrame, cp: gpd.GeoDataFrame, pop: np.ndarray, gap_m: float) -> _Atoms:
    """Atoms of the blocks and compounds of :func:`assign_compounds` (``pop``: persons per compound)."""
    gids, ginv = np.unique(bl["group_id"].to_numpy(), return_inverse=True)
    bgeoms = np.asarray(bl.geometry.values, dtype=object)
    _, ageoms = _union_groups(bgeoms, ginv)
    na = len(gids)
    atom_town = pd.Series(bl["town_code"].to_numpy()).groupby(ginv).first().to_numpy().astype(str)
    cp_atom = np.searchsorted(gids, cp["group_id"].to_numpy())
    w = np.bincount(cp_atom, weights=pop, minlength=na)
    ncomp = np.bincount(cp_atom, minlength=na)
    # quantised (mm, mm²) so that the same input in another row order or vertex order gives
    # bit-identical scores, hence identical units
    area = np.round(shapely.area(ageoms), 3)
    perim = np.round(shapely.length(ageoms), 3)
    c = shapely.centroid(ageoms)
    xy = np.round(np.column_stack([shapely.get_x(c), shapely.get_y(c)]), 3)
    adj = _adjacency(ageoms, gap_m=gap_m, group=atom_town)
    adj.data = np.round(adj.data, 3)
    atom_blocks = pd.Series(bl["block_id"].to_numpy()).groupby(ginv).agg(lambda s: ",".join(sorted(s))).to_numpy()
    return _Atoms(ginv, ageoms, atom_town, cp_atom, w, ncomp, area, perim, xy, adj, atom_blocks)


def _partition_all(plans: list, na: int, w: np.ndarray, lo: float, hi: float, *, strict: bool
                   ) -> tuple[np.ndarray, list[str]]:
    """(unit label of each atom, town of each unit): every town of ``plans`` partitioned.

    A town under the floor is one unit. With ``strict``, raises :class:`FeasibilityError`
    when some unit is still out of range.
    """
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
    return labels_all, unit_town
