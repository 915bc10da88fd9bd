"""The ground of the sample district: arterial grid, river, canal, railway, parcels, land use.

Stages (in the generator's order, each drawing from the district's random stream):
:func:`make_grid` (arterial lattice and cells), :func:`add_arterials` (the arterials as
network lines), :func:`make_water_and_rail`, :func:`make_parcels` (cells less water, split
by it) and :func:`land_use`. :class:`Site` bundles what the later stages build on.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from ._common import BIG, FARM, IND, PARK, PUB, URB, VIL, Net, polys
from .names import CANAL_NAMES, RIVER_NAMES, STEMS


# --------------------------------------------------------------------------- grid
@dataclass
class Grid:
    """The arterial lattice: crossing points ``P[i, j]`` and the cells between them.

    Cells are numbered ``i * ny + j`` (``ci``, ``cj``: column and row); corners ``C00``
    (south-west), ``C10``, ``C01``, ``C11`` in metres; ``cw``/``ch`` mean width/height (m).
    Horizontal arterial ``j`` has class ``h_cls[j]`` and name ``h_name[j]``, vertical ``i``
    ``v_cls[i]`` / ``v_name[i]``.
    """

    origin: np.ndarray
    side: float
    P: np.ndarray
    nx: int
    ny: int
    ci: np.ndarray
    cj: np.ndarray
    ncell: int
    C00: np.ndarray
    C10: np.ndarray
    C01: np.ndarray
    C11: np.ndarray
    cw: np.ndarray
    ch: np.ndarray
    cell_poly: np.ndarray
    boundary: Any
    h_cls: np.ndarray
    v_cls: np.ndarray
    h_name: np.ndarray
    v_name: np.ndarray

    def bil(self, cell: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bilinear map of cell parameters (u east, v north, in [0, 1]) to coordinates."""
        u = np.asarray(u, float)[:, None]
        v = np.asarray(v, float)[:, None]
        return (self.C00[cell] * (1 - u) * (1 - v) + self.C10[cell] * u * (1 - v)
                + self.C01[cell] * (1 - u) * v + self.C11[cell] * u * v)

    def quad(self, cell: np.ndarray, u0: np.ndarray, u1: np.ndarray, v0: np.ndarray,
             v1: np.ndarray) -> np.ndarray:
        """Quadrilaterals of cell parameter ranges [u0, u1] × [v0, v1]."""
        c = np.stack([self.bil(cell, u0, v0), self.bil(cell, u1, v0),
                      self.bil(cell, u1, v1), self.bil(cell, u0, v1)], axis=1)
        return polys(c)

    def h_id(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Network line of the horizontal arterial segment east of crossing (i, j)."""
        return np.asarray(i) * (self.ny + 1) + np.asarray(j)

    def v_id(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        """Network line of the vertical arterial segment north of crossing (i, j)."""
        return self.nx * (self.ny + 1) + np.asarray(i) * self.ny + np.asarray(j)


def make_grid(rng: np.random.Generator, origin: np.ndarray, side: float) -> Grid:
    """Arterials 420-780 m apart (crossings jittered), their classes and names."""
    L = side

    def lines(length: float) -> np.ndarray:
        n = max(2, int(round(length / 600.0)))
        d = rng.uniform(420, 780, n)
        d *= length / d.sum()
        return np.concatenate([[0.0], np.cumsum(d)])

    xs, ys = lines(L), lines(L)
    nx, ny = len(xs) - 1, len(ys) - 1
    jit = np.clip(rng.normal(0, 10, (nx + 1, ny + 1, 2)), -25, 25)
    P = np.empty((nx + 1, ny + 1, 2))
    P[..., 0] = xs[:, None] + jit[..., 0]
    P[..., 1] = ys[None, :] + jit[..., 1]
    # the outer arterials (the district boundary) wander a little more
    P[0, :, 0] += rng.uniform(-40, 40, ny + 1)
    P[-1, :, 0] += rng.uniform(-40, 40, ny + 1)
    P[:, 0, 1] += rng.uniform(-40, 40, nx + 1)
    P[:, -1, 1] += rng.uniform(-40, 40, nx + 1)
    P += origin
    ci, cj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    ci, cj = ci.ravel(), cj.ravel()
    C00 = P[ci, cj]
    C10 = P[ci + 1, cj]
    C01 = P[ci, cj + 1]
    C11 = P[ci + 1, cj + 1]
    cw = 0.5 * (np.hypot(*(C10 - C00).T) + np.hypot(*(C11 - C01).T))
    ch = 0.5 * (np.hypot(*(C01 - C00).T) + np.hypot(*(C11 - C10).T))
    cell_poly = polys(np.stack([C00, C10, C11, C01], axis=1))
    ring = np.concatenate([P[:, 0], P[-1, 1:], P[::-1, -1][1:], P[0, ::-1][1:]])
    boundary = shapely.make_valid(shapely.Polygon(ring))
    # arterial lines: horizontal line j, vertical line i
    h_cls = rng.choice(["primary", "secondary", "tertiary"], ny + 1, p=[0.3, 0.35, 0.35])
    v_cls = rng.choice(["primary", "secondary", "tertiary"], nx + 1, p=[0.3, 0.35, 0.35])
    names = rng.permutation(len(STEMS))
    suffix_h = np.where(h_cls == "primary", "公路", "路")
    n_names = (ny + 1) + (nx + 1)
    stems = np.array(STEMS, dtype=object)[names[np.arange(n_names) % len(STEMS)]]
    extra = np.where(np.arange(n_names) >= len(STEMS), "东", "")
    h_name = (stems[: ny + 1] + extra[: ny + 1] + suffix_h).astype(object)
    v_name = (stems[ny + 1:] + extra[ny + 1:] + "路").astype(object)
    return Grid(origin=origin, side=side, P=P, nx=nx, ny=ny, ci=ci, cj=cj, ncell=nx * ny,
                C00=C00, C10=C10, C01=C01, C11=C11, cw=cw, ch=ch, cell_poly=cell_poly,
                boundary=boundary, h_cls=h_cls, v_cls=v_cls, h_name=h_name, v_name=v_name)


def add_arterials(grid: Grid, net: Net) -> None:
    """The lattice as the network's first nodes and lines (ids as :meth:`Grid.h_id`/``v_id``)."""
    nx, ny = grid.nx, grid.ny
    node = net.nodes(grid.P.reshape(-1, 2))  # node id = i * (ny + 1) + j
    hi, hj = np.meshgrid(np.arange(nx), np.arange(ny + 1), indexing="ij")
    hi, hj = hi.ravel(), hj.ravel()
    hl = net.add_lines(len(hi), highway=grid.h_cls[hj], name=grid.h_name[hj], art=hj)
    assert np.array_equal(hl, grid.h_id(hi, hj))
    vi, vj = np.meshgrid(np.arange(nx + 1), np.arange(ny), indexing="ij")
    vi, vj = vi.ravel(), vj.ravel()
    vl = net.add_lines(len(vi), highway=grid.v_cls[vi], name=grid.v_name[vi], art=ny + 1 + vi)
    assert np.array_equal(vl, grid.v_id(vi, vj))
    net.member(node[hi * (ny + 1) + hj], hl, 0.0)
    net.member(node[(hi + 1) * (ny + 1) + hj], hl, 1.0)
    net.member(node[vi * (ny + 1) + vj], vl, 0.0)
    net.member(node[vi * (ny + 1) + vj + 1], vl, 1.0)


# --------------------------------------------------------------------------- water and rail
@dataclass
class Barriers:
    """Rivers (one per chosen grid row), canals (one per chosen column) and the railway.

    ``row_river[j]`` / ``col_canal[i]``: the river / canal in grid row j / column i (-1
    none); ``river_lines`` / ``canal_lines``: their centre lines as (s, y) / (s, x)
    samples; ``water_*``: the water polygons (rivers then canals) and their attributes;
    ``rail_buf_clip`` (20 m) keeps compounds off the railway, ``rail_buf_cut`` (8 m) cuts
    the streets that cross it.
    """

    river_rows: np.ndarray
    canal_cols: np.ndarray
    row_river: np.ndarray
    col_canal: np.ndarray
    river_lines: list[tuple[np.ndarray, np.ndarray]]
    canal_lines: list[tuple[np.ndarray, np.ndarray]]
    water_geoms: np.ndarray
    water_kind: list[str]
    water_name: list[str]
    water_width: list[float]
    water_union: Any
    rail_line: Any
    rail_buf_clip: Any
    rail_buf_cut: Any

    def river_side(self, grid: Grid, cell: np.ndarray, xy: np.ndarray
                   ) -> tuple[np.ndarray, np.ndarray]:
        """(hs, vs): 1 when the point is north of its row's river / east of its column's canal."""
        hs = np.zeros(len(cell), dtype=np.int64)
        vs = np.zeros(len(cell), dtype=np.int64)
        rr = self.row_river[grid.cj[cell]]
        cc = self.col_canal[grid.ci[cell]]
        for k, (s, cy) in enumerate(self.river_lines):
            m = rr == k
            hs[m] = (xy[m, 1] > np.interp(xy[m, 0], s, cy)).astype(np.int64)
        for k, (s, cx) in enumerate(self.canal_lines):
            m = cc == k
            vs[m] = (xy[m, 0] > np.interp(xy[m, 1], s, cx)).astype(np.int64)
        return hs, vs


def _river_poly(cx: np.ndarray, cy: np.ndarray, hw: np.ndarray) -> shapely.Polygon:
    """Polygon of a centre line (cx, cy) with half widths ``hw`` (m)."""
    tx, ty = np.gradient(cx), np.gradient(cy)
    nrm = np.hypot(tx, ty)
    nxv, nyv = -ty / nrm, tx / nrm
    left = np.column_stack([cx + nxv * hw, cy + nyv * hw])
    right = np.column_stack([cx - nxv * hw, cy - nyv * hw])
    return shapely.Polygon(np.concatenate([left, right[::-1]]))


def _band(a: np.ndarray, b: np.ndarray, along: int, s: np.ndarray):
    """Mid line and min height of the band between lattice lines a and b."""
    other = 1 - along
    lo_ = np.interp(s, a[:, along], a[:, other])
    hi_ = np.interp(s, b[:, along], b[:, other])
    return 0.5 * (lo_ + hi_), float(np.min(b[:, other] - a[:, other]))


def make_water_and_rail(rng: np.random.Generator, grid: Grid, scale: float) -> Barriers:
    """Meandering rivers (30-60 m) and canals (18-24 m) inside grid rows/columns, one
    diagonal railway with a gentle bend."""
    P, nx, ny = grid.P, grid.nx, grid.ny
    n_riv = max(1, int(round(math.sqrt(scale))))
    n_can = max(1, int(round(math.sqrt(scale))))

    def pick(n_lines: int, k: int) -> np.ndarray:
        if n_lines < 3:
            return np.array([], dtype=int)
        pos = np.round((np.arange(k) + 0.5) / k * n_lines - 0.5 + rng.uniform(-0.6, 0.6, k))
        return np.unique(np.clip(pos, 1, n_lines - 2).astype(int))

    river_rows = pick(ny, n_riv)
    canal_cols = pick(nx, n_can)
    row_river = np.full(ny, -1)
    row_river[river_rows] = np.arange(len(river_rows))
    col_canal = np.full(nx, -1)
    col_canal[canal_cols] = np.arange(len(canal_cols))
    lo = P[:, :, :].reshape(-1, 2).min(axis=0) - 300
    hi = P[:, :, :].reshape(-1, 2).max(axis=0) + 300
    river_lines, canal_lines, water, wkind, wname, wwidth = [], [], [], [], [], []
    for k, r in enumerate(river_rows):
        s = np.arange(lo[0], hi[0], 15.0)
        mid, hmin = _band(P[:, r], P[:, r + 1], 0, s)
        amp = float(np.clip(0.5 * hmin - 30 - 75, 0, 120))
        lam, ph = rng.uniform(1800, 3000), rng.uniform(0, 2 * np.pi)
        cy = mid + amp * np.sin(2 * np.pi * (s - lo[0]) / lam + ph)
        hw = 15 + 7.5 * (1 + np.sin(2 * np.pi * (s - lo[0]) / rng.uniform(2500, 4000)
                                     + rng.uniform(0, 6.28)))
        river_lines.append((s, cy))
        water.append(_river_poly(s, cy, hw))
        wkind.append("river")
        wname.append(RIVER_NAMES[k % len(RIVER_NAMES)])
        wwidth.append(float(np.round(2 * hw.mean(), 1)))
    for k, c in enumerate(canal_cols):
        s = np.arange(lo[1], hi[1], 15.0)
        mid, wmin = _band(P[c, :], P[c + 1, :], 1, s)
        amp = float(np.clip(0.5 * wmin - 25 - 75, 0, 80))
        lam, ph = rng.uniform(2000, 3500), rng.uniform(0, 2 * np.pi)
        cx = mid + amp * np.sin(2 * np.pi * (s - lo[1]) / lam + ph)
        hw = 9 + 1.5 * (1 + np.sin(2 * np.pi * (s - lo[1]) / 3000 + rng.uniform(0, 6.28)))
        canal_lines.append((s, cx))
        water.append(_river_poly(cx, s, hw))
        wkind.append("canal")
        wname.append(CANAL_NAMES[k % len(CANAL_NAMES)])
        wwidth.append(float(np.round(2 * hw.mean(), 1)))
    water_geoms = np.array(water, dtype=object)
    # railway: one diagonal line with a gentle bend
    L, origin = grid.side, grid.origin
    ya = origin[1] + rng.uniform(0.12, 0.32) * L
    yb = origin[1] + rng.uniform(0.62, 0.85) * L
    xm = origin[0] + rng.uniform(0.4, 0.6) * L
    ym = ya + (yb - ya) * (xm - lo[0]) / (hi[0] - lo[0]) + rng.uniform(-120, 120)
    rail_line = shapely.LineString([(lo[0], ya), (xm, ym), (hi[0], yb)])
    return Barriers(
        river_rows=river_rows, canal_cols=canal_cols, row_river=row_river,
        col_canal=col_canal, river_lines=river_lines, canal_lines=canal_lines,
        water_geoms=water_geoms, water_kind=wkind, water_name=wname, water_width=wwidth,
        water_union=shapely.union_all(water_geoms), rail_line=rail_line,
        rail_buf_clip=shapely.buffer(rail_line, 20.0), rail_buf_cut=shapely.buffer(rail_line, 8.0))


# --------------------------------------------------------------------------- parcels
@dataclass
class Parcels:
    """Cells less water, split by it into parcels keyed ``cell * 4 + hs * 2 + vs``.

    ``geom``: the parcel; ``clip``: the parcel less a 10 m water margin and the railway
    corridor (prepared), where compounds may stand; ``affected``: parcels whose ``clip``
    differs from ``geom``.
    """

    key: np.ndarray
    cell: np.ndarray
    hs: np.ndarray
    vs: np.ndarray
    geom: np.ndarray
    key_to_parcel: np.ndarray
    clip: np.ndarray
    affected: np.ndarray

    def of(self, cell: np.ndarray, hs: np.ndarray, vs: np.ndarray) -> np.ndarray:
        """Parcel of a cell's (hs, vs) side of its river / canal."""
        p = self.key_to_parcel[np.asarray(cell) * 4 + np.asarray(hs) * 2 + np.asarray(vs)]
        # a cell split by water has no (hs, vs) = (0, 0) part only when cut oddly: fall back
        bad = p < 0
        if bad.any():
            p[bad] = self.key_to_parcel[np.asarray(cell)[bad] * 4]
        return p


def make_parcels(grid: Grid, barriers: Barriers) -> Parcels:
    """Cells less water, split into parcels keyed (cell, hs, vs); and their clip areas."""
    tree = shapely.STRtree(grid.cell_poly)
    hit = np.unique(tree.query(barriers.water_union, predicate="intersects"))
    geoms = grid.cell_poly.copy()
    geoms[hit] = shapely.difference(grid.cell_poly[hit], barriers.water_union)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    big = shapely.area(parts) > 1.0
    parts, owner = parts[big], owner[big]
    rep = shapely.get_coordinates(shapely.point_on_surface(parts))
    hs, vs = barriers.river_side(grid, owner, rep)
    key = owner * 4 + hs * 2 + vs
    order = np.argsort(key, kind="stable")
    key, parts, owner, hs, vs = key[order], parts[order], owner[order], hs[order], vs[order]
    ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
    counts = np.bincount(inv)
    if (counts > 1).any():
        merged = shapely.multipolygons(parts, indices=inv)
        single = counts == 1
        merged[single] = parts[first[single]]
        pgeom = merged
    else:
        pgeom = parts
    parcel_geom = np.asarray(pgeom, dtype=object)
    key_to_parcel = np.full(grid.ncell * 4, -1, dtype=np.int64)
    key_to_parcel[ukey] = np.arange(len(ukey))
    barrier = shapely.union_all([shapely.buffer(barriers.water_union, 10.0), barriers.rail_buf_clip])
    ptree = shapely.STRtree(parcel_geom)
    phit = np.unique(ptree.query(barrier, predicate="intersects"))
    clip = parcel_geom.copy()
    clip[phit] = shapely.difference(parcel_geom[phit], barrier)
    affected = np.zeros(len(clip), dtype=bool)
    affected[phit] = True
    shapely.prepare(clip)
    return Parcels(key=ukey, cell=owner[first], hs=hs[first], vs=vs[first], geom=parcel_geom,
                   key_to_parcel=key_to_parcel, clip=clip, affected=affected)


# --------------------------------------------------------------------------- land use
def land_use(rng: np.random.Generator, grid: Grid, barriers: Barriers, scale: float) -> np.ndarray:
    """Land use code of every cell (``_common.URB`` ... ``FARM``).

    Urbanity decreases away from ``2 sqrt(scale)`` centres: the most urban 27 % of cells
    are urban compounds, 4 % public campuses, 22 % industry (clusters of low urbanity),
    4 % farmland (far periphery), the rest villages; then one comprehensive park per
    scale unit and one big compound per 3 scale units (the largest plain urban cells).
    """
    L = grid.side
    ctr = shapely.get_coordinates(shapely.centroid(grid.cell_poly))
    n_c = max(2, int(round(2 * math.sqrt(scale))))
    centres = grid.origin + rng.uniform(0.2, 0.8, (n_c, 2)) * L
    sigma = 1400.0
    d2 = ((ctr[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
    score = np.exp(-d2 / (2 * sigma ** 2)).max(axis=1) + rng.normal(0, 0.08, grid.ncell)
    ind_score = rng.normal(0, 1, grid.ncell)
    lu = np.full(grid.ncell, VIL)
    order = np.argsort(-score, kind="stable")
    n = grid.ncell
    n_urb = int(round(0.27 * n))
    n_pub = max(1, int(round(0.04 * n)))
    urb = order[:n_urb]
    lu[urb] = URB
    rest = order[n_urb:]
    pub = rest[rng.permutation(min(len(rest), max(n_pub * 3, 3)))[:n_pub]]
    lu[pub] = PUB
    # industry in clusters of low urbanity, farmland in the far periphery
    low = np.setdiff1d(order[int(0.45 * n):], pub)
    ind = low[np.argsort(-ind_score[low], kind="stable")[: int(round(0.22 * n))]]
    lu[ind] = IND
    far = np.setdiff1d(order[int(0.85 * n):], np.concatenate([ind, pub]))
    lu[far[: int(round(0.04 * n))]] = FARM
    water_cell = (barriers.row_river[grid.cj] >= 0) | (barriers.col_canal[grid.ci] >= 0)
    lu[water_cell & ~np.isin(lu, [URB, VIL])] = VIL
    lu[water_cell & (lu == URB) & (score < np.quantile(score, 0.5))] = VIL
    rail_cell = shapely.intersects(grid.cell_poly, shapely.buffer(barriers.rail_line, 60.0))
    plain = ~water_cell & ~rail_cell
    # parks (综合公园): one per ~25 km², in good urban-edge cells
    n_park = max(1, int(round(scale)))
    cand = np.flatnonzero(plain & np.isin(lu, [VIL, URB]) & (score > np.quantile(score, 0.55)))
    cand = cand[np.argsort(-score[cand], kind="stable")][n_urb // 3:]
    if len(cand) < n_park:
        cand = np.flatnonzero(plain & (lu != PARK))
    park = cand[rng.permutation(len(cand))[:n_park]]
    lu[park] = PARK
    # the big compound(s): the largest plain urban cells
    n_big = max(1, int(round(scale / 3.0)))
    ucand = np.flatnonzero(plain & (lu == URB))
    area = grid.cw * grid.ch
    big = ucand[np.argsort(-area[ucand] + rng.uniform(0, 1, len(ucand)), kind="stable")][:n_big]
    lu[big] = BIG
    return lu


@dataclass
class Site:
    """The ground the layout stages build on."""

    grid: Grid
    barriers: Barriers
    parcels: Parcels
    lu: np.ndarray
