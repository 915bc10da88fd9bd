"""Urban cells of the sample: local streets, sub-blocks, compound slots and their layout.

:func:`urban_blocks` cuts every urban and public-campus cell into sub-blocks of ~150-250 m
with ``tertiary`` / ``residential`` streets (a few cul-de-sacs) and turns the sub-blocks
into compound *slots* (single, double, split by water, campus, the big compound) and
community parks; :func:`layout_slots` lays out each slot: rows of slab or tower blocks,
an internal driveway (``service``) from the gate, paths between the rows and a
``footway`` to each building entrance, pocket parks (游园) in some corners.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from ._common import BIG, PUB, URB, Build, Net, Table, largest_part, ragged
from .geography import Site
from .names import STEMS


def _era(rng: np.random.Generator, n: int) -> np.ndarray:
    """Building era of a compound: 0 old (1985-1999), 1 mid (2000-2009), 2 new (2010-2020)."""
    return rng.choice(3, n, p=[0.38, 0.34, 0.28])


def _year_of(rng: np.random.Generator, era: np.ndarray, n: int) -> np.ndarray:
    """Build year drawn within the era (3: a campus, 1990-2020)."""
    lo = np.array([1985, 2000, 2010, 1990])[np.clip(era, 0, 3)]
    hi = np.array([1999, 2009, 2020, 2020])[np.clip(era, 0, 3)]
    return rng.integers(lo, hi + 1).astype(np.int64)


# --------------------------------------------------------------------------- streets
def _street_positions(rng: np.random.Generator, m: np.ndarray
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``m`` streets per cell at jittered even positions in (0, 1).

    Returns the positions and their cell (one per street), and the sub-block bounds
    (0, the positions, 1) of every cell with each cell's offset into them.
    """
    own, rk = ragged(m)
    val = (rk + 1) / (m[own] + 1) + rng.uniform(-0.12, 0.12, len(rk)) / (m[own] + 1)
    bo, br = ragged(m + 2)
    B = np.empty(len(bo))
    off_val = np.cumsum(m) - m
    inner = (br > 0) & (br < m[bo] + 1)
    B[br == 0] = 0.0
    B[br == m[bo] + 1] = 1.0
    B[inner] = val[off_val[bo[inner]] + br[inner] - 1]
    off_b = np.cumsum(m + 2) - (m + 2)
    return val, own, B, off_b


def _local_streets(rng: np.random.Generator, site: Site, net: Net, cells: np.ndarray
                   ) -> dict[str, Any]:
    """North-south (u) and east-west (v) streets of the cells, with their crossings.

    Returns the street counts per cell (``mu``, ``mv``), the sub-block bounds (``UB``,
    ``ubo``, ``VB``, ``vbo``), the v-street positions, lines and classes, each cell's
    first v-line, and whether the cell holds a river (``riv``) or canal (``can``).
    """
    grid, bar = site.grid, site.barriers
    ci, cj = grid.ci[cells], grid.cj[cells]
    W, H = grid.cw[cells], grid.ch[cells]
    riv = bar.row_river[cj] >= 0
    can = bar.col_canal[ci] >= 0
    mu = np.where(can, 0, np.maximum(1, np.round(W / 190.0) - 1)).astype(np.int64)
    mv = np.where(riv, 0, np.maximum(1, np.round(H / 190.0) - 1)).astype(np.int64)
    nc = len(cells)
    uk, uo, UB, ubo = _street_positions(rng, mu)
    vl, vo, VB, vbo = _street_positions(rng, mv)
    tert_u = rng.random(nc) < 0.55
    tert_v = rng.random(nc) < 0.55
    # u-streets (north-south), some cul-de-sacs
    ku = np.arange(len(uk)) - (np.cumsum(mu) - mu)[uo]
    u_hw = np.where(tert_u[uo] & (ku == mu[uo] // 2), "tertiary", "residential").astype(object)
    vmax = VB[vbo[uo] + mv[uo]]  # last interior v (0 when none)
    cul = (u_hw == "residential") & (mv[uo] >= 1) & (rng.random(len(uk)) < 0.15)
    v_end = np.where(cul, 0.5 * (vmax + 1.0), 1.0)
    names_u = np.array(STEMS, dtype=object)[rng.integers(0, len(STEMS), len(uk))]
    name_u = np.where(u_hw == "tertiary", names_u + "路",
                      np.where(rng.random(len(uk)) < 0.6, names_u + "支路", None)).astype(object)
    ul = net.add_lines(len(uk), highway=u_hw, name=name_u)
    c_u = cells[uo]
    nb = net.nodes(grid.bil(c_u, uk, np.zeros(len(uk))))
    net.member(nb, grid.h_id(ci[uo], cj[uo]), uk)
    net.member(nb, ul, 0.0)
    nt = net.nodes(grid.bil(c_u, uk, v_end))
    net.member(nt, ul, 1.0)
    net.member(nt[~cul], grid.h_id(ci[uo], cj[uo] + 1)[~cul], uk[~cul])
    # v-streets (east-west)
    kv = np.arange(len(vl)) - (np.cumsum(mv) - mv)[vo]
    v_hw = np.where(tert_v[vo] & (kv == mv[vo] // 2), "tertiary", "residential").astype(object)
    names_v = np.array(STEMS, dtype=object)[rng.integers(0, len(STEMS), len(vl))]
    name_v = np.where(v_hw == "tertiary", names_v + "路",
                      np.where(rng.random(len(vl)) < 0.6, names_v + "街", None)).astype(object)
    vlines = net.add_lines(len(vl), highway=v_hw, name=name_v)
    c_v = cells[vo]
    nl_ = net.nodes(grid.bil(c_v, np.zeros(len(vl)), vl))
    net.member(nl_, grid.v_id(ci[vo], cj[vo]), vl)
    net.member(nl_, vlines, 0.0)
    nr_ = net.nodes(grid.bil(c_v, np.ones(len(vl)), vl))
    net.member(nr_, grid.v_id(ci[vo] + 1, cj[vo]), vl)
    net.member(nr_, vlines, 1.0)
    vline_first = np.cumsum(mv) - mv + (vlines[0] if len(vlines) else 0)
    # crossings
    xo, xr = ragged(mu * mv)
    if len(xo):
        k = xr // mv[xo]
        l_ = xr % mv[xo]
        iu = (np.cumsum(mu) - mu)[xo] + k
        iv = (np.cumsum(mv) - mv)[xo] + l_
        ok = vl[iv] < v_end[iu] - 1e-9
        xn = net.nodes(grid.bil(cells[xo][ok], uk[iu][ok], vl[iv][ok]))
        net.member(xn, ul[iu][ok], vl[iv][ok] / v_end[iu][ok])
        net.member(xn, vlines[iv][ok], uk[iu][ok])
    return dict(mu=mu, mv=mv, UB=UB, ubo=ubo, VB=VB, vbo=vbo, vl=vl, vlines=vlines,
                v_hw=v_hw, vline_first=vline_first, riv=riv, can=can)


def _sub_blocks(rng: np.random.Generator, site: Site, cells: np.ndarray,
                st: dict[str, Any]) -> dict[str, np.ndarray]:
    """The sub-blocks between the streets: bounds, host streets, insets and kind.

    ``kind``: 0 single compound, 1 two compounds, 2 single + pocket park, 3 community
    park, 4 public campus. ``normal``: no river or canal in the cell (``river``, ``canal``).
    """
    grid = site.grid
    mu, mv, vl, vlines = st["mu"], st["mv"], st["vl"], st["vlines"]
    ci, cj = grid.ci[cells], grid.cj[cells]
    so, sr = ragged((mu + 1) * (mv + 1))
    a = sr // (mv[so] + 1)
    b = sr % (mv[so] + 1)
    sc = cells[so]
    u_lo, u_hi = st["UB"][st["ubo"][so] + a], st["UB"][st["ubo"][so] + a + 1]
    v_lo, v_hi = st["VB"][st["vbo"][so] + b], st["VB"][st["vbo"][so] + b + 1]
    vline_first = st["vline_first"]
    host_s = np.where(b == 0, grid.h_id(ci[so], cj[so]), vline_first[so] + b - 1)
    host_n = np.where(b == mv[so], grid.h_id(ci[so], cj[so] + 1), vline_first[so] + b)
    v_first = vlines[0] if len(vlines) else 0
    if len(vl):
        vi_s = np.clip(vline_first[so] + b - 1 - v_first, 0, len(vl) - 1)
        tert_s = (b > 0) & (st["v_hw"][vi_s] == "tertiary")
    else:
        tert_s = np.zeros(len(so), dtype=bool)
    ins_w = np.where(a == 0, 20.0, 10.0)
    ins_e = np.where(a == mu[so], 20.0, 10.0)
    ins_s = np.where(b == 0, 20.0, 10.0)
    ins_n = np.where(b == mv[so], 20.0, 10.0)
    nsub = len(so)
    is_pub_cell = site.lu[sc] == PUB
    r_s, c_s = st["riv"][so], st["can"][so]
    normal = ~r_s & ~c_s
    kind = np.where(is_pub_cell, 4, rng.choice(5, nsub, p=[0.50, 0.30, 0.07, 0.04, 0.09]))
    kind[~normal & ~is_pub_cell] = 0
    # a through street only under single compounds in normal cells: remember
    return dict(cell=sc, a=a, b=b, u_lo=u_lo, u_hi=u_hi, v_lo=v_lo, v_hi=v_hi,
                host_s=host_s, host_n=host_n, kind=kind, normal=normal, tert_s=tert_s,
                ins_w=ins_w, ins_e=ins_e, ins_s=ins_s, ins_n=ins_n,
                river=r_s, canal=c_s, public=is_pub_cell)


def _slots(rng: np.random.Generator, site: Site, sub: dict[str, np.ndarray]
           ) -> dict[str, np.ndarray]:
    """Compound slots of the sub-blocks (and the big compound cells).

    A slot is a cell parameter box (``u0``..``v1``) with insets (m) from the streets, the
    box of its sub-block (``pu0``..``pin``), its gate side and host street, the water side
    (``hs``, ``vs``), ``kind`` (0-2 compounds, 4 campus, 5 the big compound), ``era`` and
    ``through`` (a driveway through the whole cell).
    """
    grid = site.grid
    sc, kind, normal = sub["cell"], sub["kind"], sub["normal"]
    host_s, host_n = sub["host_s"], sub["host_n"]
    u_lo, u_hi, v_lo, v_hi = sub["u_lo"], sub["u_hi"], sub["v_lo"], sub["v_hi"]
    ins_w, ins_e, ins_s, ins_n = sub["ins_w"], sub["ins_e"], sub["ins_s"], sub["ins_n"]
    r_s, c_s, is_pub_cell = sub["river"], sub["canal"], sub["public"]
    nsub = len(sc)
    sub_id = np.arange(nsub)
    gate_n = rng.random(nsub) < 0.3
    era = _era(rng, nsub)
    S = Table()
    zeros = np.zeros(nsub, dtype=np.int64)

    def add(m: np.ndarray, u0, u1, v0, v1, iw, ie, is_, in_, pu0, pu1, pv0, pv1,
            piw, pie, pis, pin, gate, hs, vs, slot_kind, era_) -> None:
        if not m.any():
            return
        g = lambda x: np.broadcast_to(np.asarray(x), (nsub,))[m]  # noqa: E731
        S.add(cell=sc[m], sub=sub_id[m], u0=g(u0), u1=g(u1), v0=g(v0), v1=g(v1),
              iw=g(iw), ie=g(ie), is_=g(is_), in_=g(in_), pu0=g(pu0), pu1=g(pu1),
              pv0=g(pv0), pv1=g(pv1), piw=g(piw), pie=g(pie), pis=g(pis), pin=g(pin),
              gate=g(gate).astype(np.int64), host=np.where(g(gate) == 1, host_n[m], host_s[m]),
              hs=g(hs).astype(np.int64), vs=g(vs).astype(np.int64),
              kind=g(slot_kind).astype(np.int64), era=g(era_).astype(np.int64),
              through=np.zeros(int(m.sum()), dtype=bool))

    um = 0.5 * (u_lo + u_hi)
    vm = 0.5 * (v_lo + v_hi)
    # normal cells: single (0), double (1), single + pocket park (2), public (4)
    single = normal & np.isin(kind, [0, 2])
    add(single, u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n,
        u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gate_n, zeros, zeros, kind, era)
    dbl = normal & (kind == 1)
    era2 = _era(rng, nsub)
    add(dbl, u_lo, um, v_lo, v_hi, ins_w, 3.0, ins_s, ins_n,
        u_lo, um, v_lo, v_hi, ins_w, 3.0, ins_s, ins_n, gate_n, zeros, zeros, 1, era)
    add(dbl, um, u_hi, v_lo, v_hi, 3.0, ins_e, ins_s, ins_n,
        um, u_hi, v_lo, v_hi, 3.0, ins_e, ins_s, ins_n, ~gate_n, zeros, zeros, 1, era2)
    pubm = kind == 4
    add(pubm, u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n,
        u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gate_n, zeros, zeros, 4, 3)
    # water-split cells: one compound per side of the river / canal
    ones = np.ones(nsub, dtype=np.int64)
    rs = r_s & ~c_s & ~is_pub_cell
    add(rs, u_lo, u_hi, v_lo, vm, ins_w, ins_e, ins_s, 6.0,
        u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, zeros, zeros, zeros, 0, era)
    add(rs, u_lo, u_hi, vm, v_hi, ins_w, ins_e, 6.0, ins_n,
        u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, ones, ones, zeros, 0, era2)
    cs = c_s & ~r_s & ~is_pub_cell
    add(cs, u_lo, um, v_lo, v_hi, ins_w, 6.0, ins_s, ins_n,
        u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gate_n, zeros, zeros, 0, era)
    add(cs, um, u_hi, v_lo, v_hi, 6.0, ins_e, ins_s, ins_n,
        u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gate_n, zeros, ones, 0, era2)
    js = r_s & c_s & ~is_pub_cell
    era3, era4 = _era(rng, nsub), _era(rng, nsub)
    for (uu0, uu1, vv0, vv1, gg, hh, ww, ee) in (
            (u_lo, um, v_lo, vm, zeros, zeros, zeros, era), (um, u_hi, v_lo, vm, zeros, zeros, ones, era2),
            (u_lo, um, vm, v_hi, ones, ones, zeros, era3), (um, u_hi, vm, v_hi, ones, ones, ones, era4)):
        add(js, uu0, uu1, vv0, vv1, 20.0, 20.0, 20.0, 20.0,
            u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gg, hh, ww, 0, ee)
    # big compound cells: the whole cell, one driveway through it
    bc = np.flatnonzero(site.lu == BIG)
    if len(bc):
        nbig = len(bc)
        z, o = np.zeros(nbig), np.ones(nbig)
        S.add(cell=bc, sub=np.full(nbig, -1), u0=z, u1=o, v0=z, v1=o, iw=20 + z, ie=20 + z,
              is_=20 + z, in_=20 + z, pu0=z, pu1=o, pv0=z, pv1=o, piw=20 + z, pie=20 + z,
              pis=20 + z, pin=20 + z, gate=np.zeros(nbig, dtype=np.int64),
              host=grid.h_id(grid.ci[bc], grid.cj[bc]), hs=np.zeros(nbig, dtype=np.int64),
              vs=np.zeros(nbig, dtype=np.int64), kind=np.full(nbig, 5),
              era=np.full(nbig, 2), through=np.ones(nbig, dtype=bool))
    return S.get()


def _community_parks(site: Site, build: Build, sub: dict[str, np.ndarray], m: np.ndarray) -> None:
    """Community parks (社区公园) on the sub-blocks ``m``, with a cross of footways."""
    grid, net, S = site.grid, build.net, sub
    cell = S["cell"][m]
    W, H = grid.cw[cell], grid.ch[cell]
    u0 = S["u_lo"][m] + S["ins_w"][m] / W
    u1 = S["u_hi"][m] - S["ins_e"][m] / W
    v0 = S["v_lo"][m] + S["ins_s"][m] / H
    v1 = S["v_hi"][m] - S["ins_n"][m] / H
    geom = grid.quad(cell, u0, u1, v0, v1)
    parcel = site.parcels.of(cell, 0, 0)
    build.parks.add(geom=geom, kind=np.full(len(cell), "社区公园", dtype=object), parcel=parcel)
    um = 0.5 * (u0 + u1)
    n = len(cell)
    fl = net.add_lines(n, highway="footway", parcel=parcel)
    a = net.nodes(grid.bil(cell, um, S["v_lo"][m]))
    b = net.nodes(grid.bil(cell, um, S["v_hi"][m]))
    net.member(a, S["host_s"][m], um)
    net.member(b, S["host_n"][m], um)
    net.member(a, fl, 0.0)
    net.member(b, fl, 1.0)
    vm = 0.5 * (v0 + v1)
    el = net.add_lines(n, highway="footway", parcel=parcel)
    e0 = net.nodes(grid.bil(cell, u0 + 5 / W, vm))
    e1 = net.nodes(grid.bil(cell, u1 - 5 / W, vm))
    x = net.nodes(grid.bil(cell, um, vm))
    net.member(e0, el, 0.0)
    net.member(e1, el, 1.0)
    net.member(x, el, 0.5)
    net.member(x, fl, (vm - S["v_lo"][m]) / (S["v_hi"][m] - S["v_lo"][m]))


def urban_blocks(rng: np.random.Generator, site: Site, build: Build
                 ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Streets, sub-blocks, compound slots and community parks of the urban cells.

    Returns the slots (see :func:`_slots`) and the sub-blocks (see :func:`_sub_blocks`).
    """
    cells = np.flatnonzero(np.isin(site.lu, [URB, PUB]))
    st = _local_streets(rng, site, build.net, cells)
    sub = _sub_blocks(rng, site, cells, st)
    slots = _slots(rng, site, sub)
    pk = sub["normal"] & (sub["kind"] == 3)
    if pk.any():
        _community_parks(site, build, sub, pk)
    return slots, sub


# --------------------------------------------------------------------------- slot layout
def _slot_polygons(rng: np.random.Generator, site: Site, build: Build,
                   S: dict[str, np.ndarray]) -> None:
    """``S["parcel"]``, ``S["poly"]`` (inset box ∩ parcel clip area, less a pocket park)
    and ``S["ok"]`` (a usable slot of more than 1,500 m²)."""
    grid, par = site.grid, site.parcels
    cell = S["cell"]
    W, H = grid.cw[cell], grid.ch[cell]
    parcel = par.of(cell, S["hs"], S["vs"])
    S["parcel"] = parcel
    # slot polygon: inset quad ∩ parcel clip area (largest part); less pocket park
    pu0 = S["pu0"] + S["piw"] / W
    pu1 = S["pu1"] - S["pie"] / W
    pv0 = S["pv0"] + S["pis"] / H
    pv1 = S["pv1"] - S["pin"] / H
    quad = grid.quad(cell, pu0, pu1, pv0, pv1)
    aff = par.affected[parcel]
    poly = quad.copy()
    poly[aff] = largest_part(shapely.intersection(quad[aff], par.clip[parcel[aff]]))
    # pocket parks (游园) at the far corner of some single compounds
    pocket = (S["sub"] >= 0) & (S["kind"] == 2)
    if pocket.any():
        pc = cell[pocket]
        pw = rng.uniform(40, 70, pocket.sum()) / W[pocket]
        ph = rng.uniform(30, 65, pocket.sum()) / H[pocket]
        north = S["gate"][pocket] == 0
        pv_a = np.where(north, pv1[pocket] - ph, pv0[pocket])
        pv_b = np.where(north, pv1[pocket], pv0[pocket] + ph)
        pg = grid.quad(pc, pu1[pocket] - pw, pu1[pocket], pv_a, pv_b)
        build.parks.add(geom=pg, kind=np.full(len(pc), "游园", dtype=object), parcel=parcel[pocket])
        poly[pocket] = shapely.difference(poly[pocket], shapely.buffer(pg, 4.0, join_style="mitre"))
        poly[pocket] = largest_part(poly[pocket])
    area = shapely.area(poly)
    S["poly"] = poly
    S["ok"] = ~shapely.is_empty(poly) & (area > 1500.0)


def _slot_style(rng: np.random.Generator, S: dict[str, np.ndarray], W: np.ndarray,
                H: np.ndarray) -> dict[str, np.ndarray]:
    """Building style by era and kind (towers, villas, slabs, campus blocks) and how many
    rows (``S["n_rows"]``) and buildings per half row fit the slot; sizes in metres."""
    n = len(S["cell"])
    era, kind = S["era"], S["kind"]
    tower = ((era == 2) & (rng.random(n) < 0.6)) | (kind == 5)
    villa = (era >= 1) & ~tower & (rng.random(n) < 0.08) & (kind != 4)
    pub = kind == 4
    d = np.select([pub, tower, villa], [16.0, 15.0, 12.0], 11.0)
    Lb = np.select([pub, tower, villa], [rng.uniform(40, 70, n), rng.uniform(24, 36, n),
                                         rng.uniform(14, 20, n)], rng.uniform(36, 60, n))
    gap = np.select([pub, tower, villa], [20.0, 16.0, 8.0], 10.0)
    pitch = np.select([pub, tower, villa], [rng.uniform(45, 60, n), rng.uniform(50, 60, n),
                                            rng.uniform(22, 26, n)], rng.uniform(31, 36, n))
    S["tower"], S["villa"] = tower, villa
    width = (S["u1"] - S["u0"]) * W - S["iw"] - S["ie"]
    height = (S["v1"] - S["v0"]) * H - S["is_"] - S["in_"]
    n_rows = np.where(S["ok"], np.floor((height - 14 - d) / pitch) + 1, 0)
    n_rows = np.clip(n_rows, 0, None).astype(np.int64)
    half = width / 2 - 10
    n_half = np.clip(np.floor((half + gap) / (Lb + gap)), 0, None).astype(np.int64)
    n_rows[n_half == 0] = 0
    S["n_rows"] = n_rows
    ug = S["u0"] + (S["iw"] + width / 2) / W
    return dict(pub=pub, tower=tower, villa=villa, d=d, Lb=Lb, gap=gap, pitch=pitch,
                width=width, half=half, n_half=n_half, n_rows=n_rows, ug=ug)


def _paths_and_driveways(site: Site, net: Net, S: dict[str, np.ndarray],
                         sty: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A footway along each row of buildings and a driveway from the gate across them.

    Returns the rows: slot (``ro``), rank (``rr``), path position (``v_path``), path ends
    (``ua``, ``ub``) and path line (``pl``).
    """
    grid = site.grid
    n = len(S["cell"])
    cell, parcel = S["cell"], S["parcel"]
    W, H = grid.cw[cell], grid.ch[cell]
    pitch, width, n_rows, ug = sty["pitch"], sty["width"], sty["n_rows"], sty["ug"]
    # rows and paths
    ro, rr = ragged(n_rows)
    y_path = 10 + rr * pitch[ro] - 5
    v_path = S["v0"][ro] + (S["is_"][ro] + y_path) / H[ro]
    ua = S["u0"][ro] + (S["iw"][ro] + 2) / W[ro]
    ub = S["u0"][ro] + (S["iw"][ro] + width[ro] - 2) / W[ro]
    item = np.arange(n)
    pl = net.add_lines(len(ro), highway="footway", item=item[ro], parcel=parcel[ro])
    pa = net.nodes(grid.bil(cell[ro], ua, v_path))
    pb = net.nodes(grid.bil(cell[ro], ub, v_path))
    net.member(pa, pl, 0.0)
    net.member(pb, pl, 1.0)
    # driveway from the gate to the farthest path (or through to the far side)
    has = n_rows > 0
    gate_v = np.where(S["gate"] == 1, S["pv1"], S["pv0"])
    vp_min = np.full(n, np.inf)
    vp_max = np.full(n, -np.inf)
    np.minimum.at(vp_min, ro, v_path)
    np.maximum.at(vp_max, ro, v_path)
    far_v = np.where(S["through"], S["pv1"], np.where(S["gate"] == 1, vp_min, vp_max))
    hs_ = np.flatnonzero(has)
    dl = net.add_lines(len(hs_), highway="service", item=hs_, parcel=parcel[hs_])
    dline = np.full(n, -1)
    dline[hs_] = dl
    g = net.nodes(grid.bil(cell[hs_], ug[hs_], gate_v[hs_]))
    net.member(g, S["host"][hs_], ug[hs_])
    net.member(g, dl, 0.0)
    thr = hs_[S["through"][hs_]]
    if len(thr):
        fnode = net.nodes(grid.bil(cell[thr], ug[thr], S["pv1"][thr]))
        net.member(fnode, grid.h_id(grid.ci[cell[thr]], grid.cj[cell[thr]] + 1), ug[thr])
        net.member(fnode, dline[thr], 1.0)
    xn = net.nodes(grid.bil(cell[ro], ug[ro], v_path))
    net.member(xn, dline[ro], (v_path - gate_v[ro]) / (far_v[ro] - gate_v[ro]))
    net.member(xn, pl, (ug[ro] - ua) / (ub - ua))
    return dict(ro=ro, rr=rr, v_path=v_path, ua=ua, ub=ub, pl=pl)


def _slot_buildings(rng: np.random.Generator, site: Site, build: Build,
                    S: dict[str, np.ndarray], sty: dict[str, np.ndarray],
                    rows: dict[str, np.ndarray]) -> None:
    """Buildings in two half rows either side of the driveway, a footway to each door;
    ``S["build_year"]``."""
    grid, net = site.grid, build.net
    n = len(S["cell"])
    cell, parcel = S["cell"], S["parcel"]
    W, H = grid.cw[cell], grid.ch[cell]
    pub, tower, villa = sty["pub"], sty["tower"], sty["villa"]
    Lb, gap, half, width = sty["Lb"], sty["gap"], sty["half"], sty["width"]
    ro, rr, v_path, ua, ub, pl = (rows[k] for k in ("ro", "rr", "v_path", "ua", "ub", "pl"))
    # buildings: two half rows either side of the driveway
    bo, bk = ragged(2 * sty["n_half"][ro])
    s = ro[bo]
    nh = sty["n_half"][s]
    left = bk < nh
    kk = np.where(left, bk, bk - nh)
    span = nh * Lb[s] + (nh - 1) * gap[s]
    x0 = np.where(left, 4 + (half[s] - span) / 2, width[s] / 2 + 6 + (half[s] - span) / 2)
    x0 = x0 + kk * (Lb[s] + gap[s])
    x1 = x0 + Lb[s]
    y0 = 10 + rr[bo] * sty["pitch"][s]
    y1 = y0 + sty["d"][s]
    bu0 = S["u0"][s] + (S["iw"][s] + x0) / W[s]
    bu1 = S["u0"][s] + (S["iw"][s] + x1) / W[s]
    bv0 = S["v0"][s] + (S["is_"][s] + y0) / H[s]
    bv1 = S["v0"][s] + (S["is_"][s] + y1) / H[s]
    bgeom = grid.quad(cell[s], bu0, bu1, bv0, bv1)
    keep = shapely.within(bgeom, S["poly"][s]) & S["ok"][s]
    lev = np.select([pub[s], tower[s], villa[s]],
                    [rng.integers(3, 6, len(s)), rng.integers(11, 19, len(s)),
                     rng.integers(2, 4, len(s))],
                    rng.choice([5, 6, 6, 6, 6, 6, 7], len(s)))
    year = _year_of(rng, S["era"], n)
    S["build_year"] = year
    use = np.where(pub[s], "public", "residential").astype(object)
    build.bld.add(geom=bgeom[keep], levels=lev[keep], use=use[keep], item=s[keep],
                  year=np.where(pub[s], rng.integers(1990, 2021, len(s)), year[s])[keep])
    # footways from the path to each entrance (south face)
    kb = np.flatnonzero(keep)
    uc = 0.5 * (bu0[kb] + bu1[kb])
    fl = net.add_lines(len(kb), highway="footway", item=s[kb], parcel=parcel[s[kb]])
    pj = net.nodes(grid.bil(cell[s[kb]], uc, v_path[bo[kb]]))
    door = net.nodes(grid.bil(cell[s[kb]], uc, bv0[kb]))
    net.member(pj, pl[bo[kb]], (uc - ua[bo[kb]]) / (ub[bo[kb]] - ua[bo[kb]]))
    net.member(pj, fl, 0.0)
    net.member(door, fl, 1.0)


def layout_slots(rng: np.random.Generator, site: Site, build: Build,
                 S: dict[str, np.ndarray]) -> None:
    """Buildings, driveway, row paths and footways of every compound / campus slot.

    Adds ``parcel``, ``poly``, ``ok``, ``tower``, ``villa``, ``n_rows`` and ``build_year``
    to the slots ``S``.
    """
    _slot_polygons(rng, site, build, S)
    cell = S["cell"]
    sty = _slot_style(rng, S, site.grid.cw[cell], site.grid.ch[cell])
    rows = _paths_and_driveways(site, build.net, S, sty)
    _slot_buildings(rng, site, build, S, sty, rows)
