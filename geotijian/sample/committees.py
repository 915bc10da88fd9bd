"""Towns (街镇) and committees (居委会 / 村委会) of the sample.

Towns are rectangles of grid cells (a bisection of the cell grid along arterials) and tile
the boundary exactly, water included. Committees are unions of parcels inside one town,
split along arterials and river / canal banks so that each holds about the same floor
area: they tile the town less its water. ``committee_id`` is the town code + 3 digits
(001-199 居委会, 201-299 村委会).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from ._common import BIG_COMPOUND_POP, COMMITTEES_PER_SCALE, DISTRICT_CODE
from .geography import Grid, Site
from .names import STEMS, TOWN_NAMES


@dataclass
class Towns:
    """Towns as cell boxes ``(i0, i1, j0, j1)`` (north-west first), each cell's town,
    and the towns' codes (``310114101``...) and names."""

    boxes: list[tuple[int, int, int, int]]
    cell_town: np.ndarray
    code: np.ndarray
    name: np.ndarray


def make_towns(grid: Grid, scale: float) -> Towns:
    """``2 scale ** 0.6`` towns (at least 2) bisecting the cell grid by cell count."""
    nx, ny = grid.nx, grid.ny
    n_towns = max(2, int(round(2 * scale ** 0.6)))
    # towns: bisection of the cell grid by cell count; ties → north/south split
    towns: list[tuple[int, int, int, int]] = []

    def tsplit(i0: int, i1: int, j0: int, j1: int, k: int) -> None:
        if k <= 1 or (i1 - i0 <= 1 and j1 - j0 <= 1):
            towns.append((i0, i1, j0, j1))
            return
        ka = k // 2
        if (j1 - j0) >= (i1 - i0):
            m = j0 + max(1, min(j1 - j0 - 1, int(round((j1 - j0) * ka / k))))
            tsplit(i0, i1, m, j1, ka)
            tsplit(i0, i1, j0, m, k - ka)
        else:
            m = i0 + max(1, min(i1 - i0 - 1, int(round((i1 - i0) * ka / k))))
            tsplit(i0, m, j0, j1, ka)
            tsplit(m, i1, j0, j1, k - ka)

    tsplit(0, nx, 0, ny, n_towns)
    # order towns north-west first
    tc = np.array([(-(t[2] + t[3]), t[0] + t[1]) for t in towns])
    torder = np.lexsort((tc[:, 1], tc[:, 0]))
    towns = [towns[k] for k in torder]
    cell_town = np.empty(grid.ncell, dtype=np.int64)
    for k, (i0, i1, j0, j1) in enumerate(towns):
        m = (grid.ci >= i0) & (grid.ci < i1) & (grid.cj >= j0) & (grid.cj < j1)
        cell_town[m] = k
    code = np.array([f"{DISTRICT_CODE}{101 + k}" for k in range(len(towns))], dtype=object)
    name = np.array([TOWN_NAMES[k % len(TOWN_NAMES)]
                     + ("" if k < len(TOWN_NAMES) else str(k // len(TOWN_NAMES) + 1))
                     for k in range(len(towns))], dtype=object)
    return Towns(boxes=towns, cell_town=cell_town, code=code, name=name)


def _town_leaves(site: Site, box: tuple[int, int, int, int], pcap: np.ndarray, *,
                 k_total: int, total_cap: float) -> list[np.ndarray]:
    """The committees of one town as arrays of parcel ids.

    The town's parcels form a grid of columns and rows (a cell with a canal / river gives
    two); it is split recursively across its longer side, balancing capacity, into
    ``k_total`` × the town's share of ``total_cap`` parts (at least one); a canal or river
    is always a split line. ``pcap``: capacity (residents) per parcel.
    """
    grid, bar = site.grid, site.barriers
    ny = grid.ny
    i0, i1, j0, j1 = box
    leaves: list[np.ndarray] = []
    cols = [(i, s) for i in range(i0, i1) for s in ((0, 1) if bar.col_canal[i] >= 0 else (0,))]
    rows = [(j, s) for j in range(j0, j1) for s in ((0, 1) if bar.row_river[j] >= 0 else (0,))]
    ci_ = np.array([c[0] for c in cols])
    cs_ = np.array([c[1] for c in cols])
    rj_ = np.array([r[0] for r in rows])
    rs_ = np.array([r[1] for r in rows])
    cell = ci_[:, None] * ny + rj_[None, :]
    pid = site.parcels.of(cell.ravel(), np.broadcast_to(rs_[None, :], cell.shape).ravel(),
                          np.broadcast_to(cs_[:, None], cell.shape).ravel()).reshape(cell.shape)
    cap = pcap[pid]
    ktown = max(1, int(round(k_total * cap.sum() / total_cap)))
    fc = np.flatnonzero(ci_[1:] == ci_[:-1]) + 1
    fr = np.flatnonzero(rj_[1:] == rj_[:-1]) + 1

    def split(c0: int, c1: int, r0: int, r1: int, K: int) -> None:
        sub_cap = cap[c0:c1, r0:r1]
        tot = sub_cap.sum()
        for axis, forced in ((0, fc), (1, fr)):
            lo_, hi_ = (c0, c1) if axis == 0 else (r0, r1)
            f = forced[(forced > lo_) & (forced < hi_)]
            if len(f):
                p = int(f[0])
                ca = cap[c0:p, r0:r1].sum() if axis == 0 else cap[c0:c1, r0:p].sum()
                cb = tot - ca
                if ca > 0 and cb > 0:
                    ka = int(np.clip(round(K * ca / tot), 1, max(1, K - 1)))
                    kb = max(1, K - ka)
                    if axis == 0:
                        split(c0, p, r0, r1, ka)
                        split(p, c1, r0, r1, kb)
                    else:
                        split(c0, c1, r0, p, ka)
                        split(c0, c1, p, r1, kb)
                    return
        if K <= 1 or tot <= 0:
            leaves.append(np.unique(pid[c0:c1, r0:r1]))
            return
        ka = K // 2
        # split across the longer side (in metres), balancing capacity
        wx = grid.cw[ci_[c0:c1] * ny + rj_[r0]].sum()
        wy = grid.ch[ci_[c0] * ny + rj_[r0:r1]].sum()
        for axis in ((0, 1) if wx >= wy else (1, 0)):
            prof = sub_cap.sum(axis=1 - axis)
            if len(prof) < 2:
                continue
            cum = np.cumsum(prof)[:-1]
            valid = (cum > 0) & (cum < tot)
            if not valid.any():
                continue
            err = np.where(valid, np.abs(cum / tot - ka / K), np.inf)
            p = int(np.argmin(err)) + 1
            if axis == 0:
                split(c0, c0 + p, r0, r1, ka)
                split(c0 + p, c1, r0, r1, K - ka)
            else:
                split(c0, c1, r0, r0 + p, ka)
                split(c0, c1, r0 + p, r1, K - ka)
            return
        leaves.append(np.unique(pid[c0:c1, r0:r1]))

    split(0, len(cols), 0, len(rows), ktown)
    return leaves


def make_committees(rng: np.random.Generator, site: Site, towns: Towns, C: dict[str, Any],
                    scale: float) -> dict[str, np.ndarray]:
    """``15 scale`` committees (at least 2) shared among the towns by floor area.

    A committee is a 居委会 when its urban compounds hold more than its hamlets, else a
    村委会. Returns the committees sorted by ``id`` (id, name, stem, town, geom, urban,
    cap) and sets ``C["committee"]`` (the committee of every compound).
    """
    par = site.parcels
    # capacity per parcel
    n_par = len(par.key)
    pcap = np.bincount(C["parcel"], weights=C["cap"] + np.where(C["big"], BIG_COMPOUND_POP, 0),
                       minlength=n_par)
    purb = np.bincount(C["parcel"], weights=np.where(C["hamlet"], 0, C["cap"] + 1), minlength=n_par)
    total_cap = pcap.sum()
    k_total = max(2, int(round(COMMITTEES_PER_SCALE * scale)))
    parcel_comm = np.full(n_par, -1, dtype=np.int64)
    leaves: list[np.ndarray] = []
    for box in towns.boxes:
        n0 = len(leaves)
        leaves += _town_leaves(site, box, pcap, k_total=k_total, total_cap=total_cap)
        for li in range(n0, len(leaves)):
            parcel_comm[leaves[li]] = li
    # parcels not reached (should not happen): attach to their cell's (0,0) parcel committee
    miss = parcel_comm < 0
    if miss.any():
        parcel_comm[miss] = parcel_comm[par.of(par.cell[miss], 0, 0)]
    n_comm = len(leaves)
    ccap = np.bincount(parcel_comm, weights=pcap, minlength=n_comm)
    curb = np.bincount(parcel_comm, weights=purb, minlength=n_comm)
    cham = ccap - np.bincount(parcel_comm, weights=np.minimum(purb, pcap), minlength=n_comm)
    urban = curb >= cham
    ctown = towns.cell_town[par.cell[[lv[0] for lv in leaves]]]
    geoms = np.array([shapely.union_all(par.geom[lv]) for lv in leaves], dtype=object)
    cxy = shapely.get_coordinates(shapely.point_on_surface(geoms))
    order = np.lexsort((cxy[:, 0], -cxy[:, 1], ctown))
    rank = np.empty(n_comm, dtype=np.int64)
    rank[order] = np.arange(n_comm)
    # codes: 居委会 001.., 村委会 201.. within each town
    num = np.zeros(n_comm, dtype=np.int64)
    for k in range(len(towns.boxes)):
        for kind_, base in ((True, 1), (False, 201)):
            m = np.flatnonzero((ctown == k) & (urban == kind_))
            m = m[np.argsort(rank[m])]
            num[m] = base + np.arange(len(m))
    cid = np.array([f"{towns.code[t]}{n:03d}" for t, n in zip(ctown, num)], dtype=object)
    stems = np.array(STEMS, dtype=object)[rng.permutation(len(STEMS))]
    variants = np.array(["", "一村", "二村", "新村", "东", "西", "南", "北", "三村", "中"], dtype=object)
    k_ = np.arange(n_comm)
    stem = stems[k_ % len(stems)] + variants[(k_ // len(stems)) % len(variants)]
    cname = np.where(urban, stem + "居委会", stem + "村村委会").astype(object)
    final = np.argsort(cid, kind="stable")
    remap = np.empty(n_comm, dtype=np.int64)
    remap[final] = np.arange(n_comm)
    C["committee"] = remap[parcel_comm][C["parcel"]]
    return dict(id=cid[final], name=cname[final], stem=stem[final], town=ctown[final],
                geom=geoms[final], urban=urban[final], cap=ccap[final])
