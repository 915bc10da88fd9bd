"""The starting groups of a town's atoms and what stands in their way.

With committees, each atom (block group) goes to the residents' committee (居委会)
covering most of it (:func:`_atom_committees`); without, each land component of the town
(between water, rail and the boundary) is a group. A town's pieces cut off by water or rail
are joined to the nearest atoms across the gap (:func:`_connect_components`), and committees
under the floor with no neighbour are reported in domain terms (:func:`_committee_messages`).
:func:`_town_plans` does this town by town and states, before any partitioning, every unit
that cannot be in range.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from ..errors import GeotijianWarning, LayerError
from .geometry import _geoms_of, _metric_crs
from .graph import _Graph, _part_matrix

if TYPE_CHECKING:
    from .delineate import _Atoms


_DIRS = ["east", "north-east", "north", "north-west", "west", "south-west", "south", "south-east"]


def _direction(dx: float, dy: float) -> str:
    if math.hypot(dx, dy) < 1e-9:
        return "centre"
    a = (math.degrees(math.atan2(dy, dx)) + 360 + 22.5) % 360
    return _DIRS[int(a // 45)]


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


def _atom_committees(committees: gpd.GeoDataFrame, ageoms: np.ndarray, atom_blocks: np.ndarray, crs: Any
                     ) -> tuple[np.ndarray, dict[str, str]]:
    """(committee code of each atom, committee names): each atom goes to the committee covering most of it.

    An atom under no committee polygon gets the nearest committee; both that and a committee
    holding no atom are warned about (the warnings point at the caller of
    :func:`delineate_units`).
    """
    na = len(ageoms)
    atom_comm = np.full(na, "", dtype=object)
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
    ov = _overlaps(ageoms, cg, ai, ci)
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
                      stacklevel=3)
    empty = np.setdiff1d(ccode, atom_comm.astype(str))
    if len(empty):
        shown = ", ".join(f"{c} {comm_names.get(c, '')}".strip() for c in empty[:5])
        warnings.warn(f"committees: {len(empty)} committee(s) hold no block group and appear in no unit "
                      f"(first: {shown}): "
                      "a neighbour covers them, or they are smaller than the blocks around them. Their "
                      "residents are counted in the units of the committees around them", GeotijianWarning,
                      stacklevel=3)
    return atom_comm, comm_names


def _overlaps(ageoms: np.ndarray, cg: np.ndarray, ai: np.ndarray, ci: np.ndarray) -> np.ndarray:
    """Area (m², to 0.1) of each (atom, committee) pair.

    An atom over 1 m² lying in one committee (``contains``) and only touching the others
    it meets (interiors apart: their overlap is 0) goes to that committee whatever the
    exact figures, so its overlays are skipped: its own area stands for the first, 0 for
    the others (most atoms of a district; the rest are intersected).
    """
    shapely.prepare(cg)
    inside = shapely.contains(cg[ci], ageoms[ai])
    aarea = shapely.area(ageoms)
    settled = (np.bincount(ai[inside], minlength=len(ageoms)) == 1) & (aarea > 1.0)
    other = ~inside & settled[ai]
    apart = shapely.touches(cg[ci[other]], ageoms[ai[other]])
    settled[ai[other][~apart]] = False
    skip = settled[ai]
    ov = np.where(inside, np.round(aarea[ai], 1), 0.0)
    ov[~skip] = np.round(shapely.area(shapely.intersection(ageoms[ai[~skip]], cg[ci[~skip]])), 1)
    return ov


def _town_plans(at: _Atoms, cp: gpd.GeoDataFrame, cids: np.ndarray, atom_comm: np.ndarray,
                comm_names: dict[str, str], town_names: dict[str, str], lo: float, hi: float, *,
                by_committee: bool) -> tuple[list[tuple], list[str], list[str]]:
    """The starting groups of each town and the feasibility messages, before any partitioning.

    Returns
    -------
    plans : list of (town code, atom indices, :class:`_Graph`, starting group of each atom,
        residents of the town)
    notes : list of str
        Messages that do not block a unit from being in range (islands joined across a gap).
    blocking : list of str
        Units that cannot be in range, in domain terms (a town under the floor, a compound or
        an undivided block group over the ceiling, a committee under the floor alone).
    """
    feas: list[str] = []
    blocking: list[str] = []
    plans = []
    for town in sorted(set(at.town.tolist())):
        idx = np.flatnonzero(at.town == town)
        tname = town_names.get(town, town)
        sub = at.adj[idx][:, idx]
        W = float(at.w[idx].sum())
        land = sub.copy()
        land.data = np.where(land.data > 0.01, land.data, 0.0)
        land.eliminate_zeros()
        # connect the town's components (islands) with nearest-neighbour links
        sub, notes = _connect_components(sub, at.geoms[idx], at.w[idx], at.xy[idx], at.blocks[idx], tname, lo)
        feas += notes
        g = _Graph(sub, at.w[idx], at.area[idx], at.perim[idx], at.xy[idx])
        if W < lo:
            blocking.append(f"town {tname} has {W:,.0f} residents in all, below the unit floor of "
                            f"{lo:,.0f}: it is one flagged unit")
        for h in np.flatnonzero(at.w[idx] > hi):
            a = idx[h]
            if at.ncomp[a] == 1:
                k = int(np.flatnonzero(at.cp_atom == a)[0])
                nm = str(cp["name"].iloc[k]) if "name" in cp.columns else ""
                blocking.append(f"compound {cids[k]}{' ' + nm if nm and nm != 'nan' else ''} alone has "
                                f"{at.w[a]:,.0f} residents, above the ceiling of {hi:,.0f}; compounds are never "
                                "split, so its unit is flagged")
            else:
                blocking.append(f"{_atom_label(at.blocks[a])} in town {tname} holds {at.w[a]:,.0f} residents "
                                f"in {at.ncomp[a]} compounds and no road of the chosen classes divides it: its "
                                "unit is flagged")
        if by_committee:
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
    return plans, feas, blocking
