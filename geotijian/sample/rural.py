"""Rural and other cells of the sample: village lanes and hamlets, industry, farmland, parks."""

from __future__ import annotations

import numpy as np
import shapely

from ._common import FARM, IND, PARK, VIL, Build, largest_part, ragged
from .geography import Site
from .names import STEMS


def villages(rng: np.random.Generator, site: Site, build: Build, item0: int
             ) -> dict[str, np.ndarray]:
    """Village lanes (``unclassified``) with hamlets (宅) of 2-6 houses either side.

    Hamlets are the compound candidates numbered from ``item0`` (after the slots): a
    path from the lane through each, houses in two rows along it, a footway to each
    door. Returns the hamlets: cell, poly, parcel, hs, vs, year, item.
    """
    grid, bar, par, net = site.grid, site.barriers, site.parcels, build.net
    cells = np.flatnonzero(site.lu == VIL)
    W, H = grid.cw[cells], grid.ch[cells]
    can = bar.col_canal[grid.ci[cells]] >= 0
    nl = np.where(can, 2, np.maximum(1, np.floor(W / 230.0))).astype(np.int64)
    lo_, lr = ragged(nl)
    ul = (lr + 1) / (nl[lo_] + 1) + rng.uniform(-0.03, 0.03, len(lo_))
    ul = np.where(can[lo_], np.where(lr == 0, 0.15, 0.85), ul)
    lc = cells[lo_]
    lane = net.add_lines(len(lo_), highway="unclassified",
                         name=np.where(rng.random(len(lo_)) < 0.4,
                                       np.array(STEMS, dtype=object)[rng.integers(0, len(STEMS), len(lo_))] + "村路",
                                       None))
    a = net.nodes(grid.bil(lc, ul, np.zeros(len(lc))))
    b = net.nodes(grid.bil(lc, ul, np.ones(len(lc))))
    net.member(a, grid.h_id(grid.ci[lc], grid.cj[lc]), ul)
    net.member(b, grid.h_id(grid.ci[lc], grid.cj[lc] + 1), ul)
    net.member(a, lane, 0.0)
    net.member(b, lane, 1.0)
    Hl, Wl = H[lo_], W[lo_]
    nh = np.maximum(1, np.floor((Hl - 80) / 52.0)).astype(np.int64)
    # hamlets: (lane, side, k)
    ho, hr = ragged(2 * nh)
    side = np.where(hr < nh[ho], 1.0, -1.0)
    k = hr % nh[ho]
    keep = rng.random(len(ho)) < 0.88
    ho, side, k = ho[keep], side[keep], k[keep]
    c = lc[ho]
    Hh, Wh = Hl[ho], Wl[ho]
    v_c = (40 + (k + 0.5) * (Hh - 80) / nh[ho] + rng.uniform(-3, 3, len(ho))) / Hh
    D = rng.uniform(35, 62, len(ho))
    hh = rng.uniform(34, 44, len(ho))
    u_near = ul[ho] + side * 10 / Wh
    u_far = ul[ho] + side * (10 + D) / Wh
    v0, v1 = v_c - hh / 2 / Hh, v_c + hh / 2 / Hh
    geom = grid.quad(c, np.minimum(u_near, u_far), np.maximum(u_near, u_far), v0, v1)
    ctr = grid.bil(c, 0.5 * (u_near + u_far), v_c)
    hs, vs = bar.river_side(grid, c, ctr)
    parcel = par.of(c, hs, vs)
    aff = par.affected[parcel]
    ok = np.ones(len(ho), dtype=bool)
    ok[aff] = shapely.within(geom[aff], par.clip[parcel[aff]])
    ho, side, c, Hh, Wh, v_c, D, u_near, u_far, geom, parcel = (
        x[ok] for x in (ho, side, c, Hh, Wh, v_c, D, u_near, u_far, geom, parcel))
    hs, vs = hs[ok], vs[ok]
    nham = len(ho)
    item = item0 + np.arange(nham)
    # path from the lane through the hamlet
    pl = net.add_lines(nham, highway="footway", item=item, parcel=parcel)
    pa = net.nodes(grid.bil(c, ul[ho], v_c))
    net.member(pa, lane[ho], v_c)
    net.member(pa, pl, 0.0)
    u_end = ul[ho] + side * (10 + D - 3) / Wh
    pb = net.nodes(grid.bil(c, u_end, v_c))
    net.member(pb, pl, 1.0)
    # houses: two rows either side of the path, from 12 m into the hamlet
    nhouse = np.maximum(1, np.floor((D - 11) / 13.0)).astype(np.int64)
    bo, br = ragged(2 * nhouse)
    north = br >= nhouse[bo]
    kk = br % nhouse[bo]
    keep_h = rng.random(len(bo)) < 0.9
    bo, north, kk = bo[keep_h], north[keep_h], kk[keep_h]
    x0 = 12 + kk * 13.0
    x1 = x0 + 10.0
    s_ = side[bo]
    hu0 = ul[ho][bo] + s_ * (10 + x0) / Wh[bo]
    hu1 = ul[ho][bo] + s_ * (10 + x1) / Wh[bo]
    y_a = np.where(north, 4.0, -15.0)
    y_b = np.where(north, 15.0, -4.0)
    hv0 = v_c[bo] + y_a / Hh[bo]
    hv1 = v_c[bo] + y_b / Hh[bo]
    hg = grid.quad(c[bo], np.minimum(hu0, hu1), np.maximum(hu0, hu1), hv0, hv1)
    lev = rng.choice([2, 2, 3, 3, 3], len(bo))
    year = rng.integers(1985, 2006, nham)
    build.bld.add(geom=hg, levels=lev, use=np.full(len(bo), "residential", dtype=object),
                  item=item[bo], year=year[bo])
    uc = 0.5 * (hu0 + hu1)
    fl = net.add_lines(len(bo), highway="footway", item=item[bo], parcel=parcel[bo])
    pj = net.nodes(grid.bil(c[bo], uc, v_c[bo]))
    door = net.nodes(grid.bil(c[bo], uc, np.where(north, hv0, hv1)))
    net.member(pj, pl[bo], (uc - ul[ho][bo]) / (u_end[bo] - ul[ho][bo]))
    net.member(pj, fl, 0.0)
    net.member(door, fl, 1.0)
    return dict(cell=c, poly=geom, parcel=parcel, hs=hs, vs=vs, year=year, item=item)


def industry_and_parks(rng: np.random.Generator, site: Site, build: Build) -> None:
    """Industrial and farmland cells (a road through the middle; factories either side in
    industry), comprehensive parks (综合公园, 5-10 ha, with paths) and the public campus
    beside each park."""
    grid, bar, parcels, net = site.grid, site.barriers, site.parcels, build.net
    # industry: a service road through the middle, factories either side
    cells = np.flatnonzero(np.isin(site.lu, [IND, FARM]))
    ind = site.lu[cells] == IND
    W, H = grid.cw[cells], grid.ch[cells]
    u = 0.5 + rng.uniform(-0.08, 0.08, len(cells))
    rl = net.add_lines(len(cells), highway=np.where(ind, "service", "unclassified").astype(object))
    a = net.nodes(grid.bil(cells, u, np.zeros(len(cells))))
    b = net.nodes(grid.bil(cells, u, np.ones(len(cells))))
    net.member(a, grid.h_id(grid.ci[cells], grid.cj[cells]), u)
    net.member(b, grid.h_id(grid.ci[cells], grid.cj[cells] + 1), u)
    net.member(a, rl, 0.0)
    net.member(b, rl, 1.0)
    ic, iW, iH, iu = cells[ind], W[ind], H[ind], u[ind]
    nrow = np.maximum(1, np.floor((iH - 50) / 90.0)).astype(np.int64)
    fo, fr = ragged(2 * nrow)
    east = fr >= nrow[fo]
    k = fr % nrow[fo]
    c = ic[fo]
    span_m = np.where(east, (1 - iu[fo]) * iW[fo], iu[fo] * iW[fo]) - 45
    fw = span_m * rng.uniform(0.5, 0.9, len(fo))
    x0 = np.where(east, iu[fo] + 20 / iW[fo], iu[fo] - (20 + fw) / iW[fo])
    x1 = x0 + fw / iW[fo]
    y0 = (25 + k * (iH[fo] - 50) / nrow[fo]) / iH[fo]
    y1 = y0 + rng.uniform(35, 65, len(fo)) / iH[fo]
    g = grid.quad(c, x0, x1, y0, np.minimum(y1, 1 - 25 / iH[fo]))
    ctr = shapely.get_coordinates(shapely.centroid(g))
    hs, vs = bar.river_side(grid, c, ctr)
    par = parcels.of(c, hs, vs)
    ok = shapely.within(g, parcels.clip[par]) & (fw > 20)
    build.bld.add(geom=g[ok], levels=rng.integers(1, 5, len(fo))[ok],
                 use=np.full(int(ok.sum()), "industrial", dtype=object),
                 item=np.full(int(ok.sum()), -1), year=rng.integers(1992, 2021, int(ok.sum())))
    # comprehensive parks (综合公园): 5-10 ha in the south-west of a park cell, paths
    pc = np.flatnonzero(site.lu == PARK)
    if len(pc):
        W, H = grid.cw[pc], grid.ch[pc]
        target = rng.uniform(5.5e4, 9.5e4, len(pc))
        f = np.clip(np.sqrt(target / (W * H)), 0.3, 0.9)
        u1 = f * rng.uniform(0.9, 1.1, len(pc))
        v1 = f * f / u1
        geom = grid.quad(pc, 20 / W, u1, 20 / H, v1)
        par = parcels.of(pc, 0, 0)
        geom = largest_part(shapely.intersection(geom, parcels.clip[par]))
        build.parks.add(geom=geom, kind=np.full(len(pc), "综合公园", dtype=object), parcel=par)
        n = len(pc)
        um, vm = 0.5 * u1, 0.5 * v1
        fl = net.add_lines(n, highway="footway", parcel=par)
        el = net.add_lines(n, highway="footway", parcel=par)
        a = net.nodes(grid.bil(pc, um, np.zeros(n)))
        b = net.nodes(grid.bil(pc, um, v1 - 8 / H))
        net.member(a, grid.h_id(grid.ci[pc], grid.cj[pc]), um)
        net.member(a, fl, 0.0)
        net.member(b, fl, 1.0)
        e0 = net.nodes(grid.bil(pc, np.zeros(n), vm))
        e1 = net.nodes(grid.bil(pc, u1 - 8 / W, vm))
        net.member(e0, grid.v_id(grid.ci[pc], grid.cj[pc]), vm)
        net.member(e0, el, 0.0)
        net.member(e1, el, 1.0)
        x = net.nodes(grid.bil(pc, um, vm))
        net.member(x, fl, vm / (v1 - 8 / H))
        net.member(x, el, um / (u1 - 8 / W))
        # a public campus on the rest of the cell
        g2 = grid.quad(pc, u1 + 25 / W, 1 - 25 / W, 0.55 + 0 * W, 1 - 25 / H)
        ok = (u1 + 60 / W < 1 - 25 / W) & shapely.within(g2, parcels.clip[par])
        build.bld.add(geom=g2[ok], levels=rng.integers(2, 5, n)[ok],
                     use=np.full(int(ok.sum()), "public", dtype=object),
                     item=np.full(int(ok.sum()), -1), year=rng.integers(2000, 2021, int(ok.sum())))
