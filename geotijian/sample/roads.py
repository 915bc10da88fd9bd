"""The sample's road layer: edges from the network under construction, cut at water and rail.

:func:`build_roads` turns the lines of :class:`._common.Net` into edges (consecutive nodes
along each line), keeps compound and park internals inside their parcel's usable area,
lets about every other arterial cross the river and canal on a bridge and some the
railway at a level crossing, cuts every other street at the water's edge or the rail
corridor (dead ends), restores crossings where a part of the network would be cut off,
and keeps the one connected network.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from ._common import Net, components
from .geography import Barriers, Grid, Parcels, Site


def _edges(net: Net) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """Node coordinates, line attributes and the edges (a, b, line) of the network;
    coincident nodes merged."""
    xy = np.concatenate(net.xy)
    L = net.lines.get()
    node = np.concatenate([m[0] for m in net.mem])
    line = np.concatenate([m[1] for m in net.mem])
    t = np.concatenate([m[2] for m in net.mem])
    order = np.lexsort((t, line))
    node, line, t = node[order], line[order], t[order]
    same = line[1:] == line[:-1]
    a, b, sl = node[:-1][same], node[1:][same], line[:-1][same]
    # coincident nodes (same point recorded twice): merge
    zl = np.hypot(*(xy[a] - xy[b]).T) < 1e-6
    if zl.any():
        _, lab = components(len(xy), a[zl], b[zl])
        rep = np.full(lab.max() + 1, len(xy))
        np.minimum.at(rep, lab, np.arange(len(xy)))
        remap = rep[lab]
        a, b = remap[a], remap[b]
    keep = a != b
    return xy, L, a[keep], b[keep], sl[keep]


def _inside_parcels(parcels: Parcels, L: dict[str, np.ndarray], sl: np.ndarray,
                    seg: np.ndarray, item_ok: np.ndarray) -> np.ndarray:
    """Edges to keep: compound / park internals of usable items, inside their parcel's
    usable area (0.5 m tolerance)."""
    it = L["item"][sl]
    keep = (it < 0) | item_ok[np.clip(it, 0, None)]
    par = L["parcel"][sl]
    test = keep & (par >= 0)
    test[test] = parcels.affected[par[test]]
    if test.any():
        mark = np.zeros(len(parcels.clip), dtype=bool)
        mark[par[test]] = True
        up = np.flatnonzero(mark)
        buf = np.empty(len(parcels.clip), dtype=object)
        buf[up] = shapely.buffer(parcels.clip[up], 0.5)
        keep[test] = shapely.within(seg[test], buf[par[test]])
    return keep


def _crossings(rng: np.random.Generator, grid: Grid, bar: Barriers, seg: np.ndarray,
               art: np.ndarray, n_nodes: int, a: np.ndarray, b: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Which edges cross water / rail and stay (bridges, level crossings) or are cut.

    Returns ``structure`` (``"bridge"``, ``"rail_crossing"`` or None) and the cut masks
    ``w_cut`` (at water) and ``r_cut`` (at the rail) of every edge.
    """
    tree = shapely.STRtree(seg)
    w_hit = np.zeros(len(seg), dtype=bool)
    r_hit = np.zeros(len(seg), dtype=bool)
    w_hit[tree.query(bar.water_union, predicate="intersects")] = True
    r_hit[tree.query(bar.rail_buf_cut, predicate="intersects")] = True
    n_art = grid.nx + grid.ny + 2
    keys = np.arange(n_art)
    is_v = keys >= grid.ny + 1
    idx = np.where(is_v, keys - grid.ny - 1, keys)
    p0 = rng.integers(0, 2)
    keep_w = (idx % 2 == p0) | (rng.random(n_art) < 0.3)
    keep_r = rng.random(n_art) < 0.45
    arterial = art >= 0
    ak = np.clip(art, 0, None)
    w_cut = w_hit & ~(arterial & keep_w[ak])
    r_cut = r_hit & ~(arterial & keep_r[ak])
    cut = w_cut | r_cut
    # add crossings where a part of the network would otherwise be cut off
    cand = np.flatnonzero(cut & arterial)
    for _ in range(50):
        ok = ~cut
        _, lab = components(n_nodes, a[ok], b[ok])
        la, lb = lab[a[cand]], lab[b[cand]]
        diff = la != lb
        if not diff.any():
            break
        pair = np.minimum(la, lb)[diff] * (lab.max() + 1) + np.maximum(la, lb)[diff]
        _, first = np.unique(pair, return_index=True)
        restore = cand[np.flatnonzero(diff)[first]]
        cut[restore] = False
        w_cut[restore] = False
        r_cut[restore] = False
        cand = np.setdiff1d(cand, restore)
    structure = np.full(len(seg), None, dtype=object)
    structure[r_hit & ~r_cut] = "rail_crossing"
    structure[w_hit & ~w_cut] = "bridge"   # also the pieces of a bridge cut at the rail
    return structure, w_cut, r_cut


def _cut_pieces(bar: Barriers, xy: np.ndarray, a: np.ndarray, b: np.ndarray,
                seg: np.ndarray, w_cut: np.ndarray, r_cut: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The cut edges less the water / rail corridor: pieces (> 2 m), their edge, end nodes
    (an edge's node where the piece keeps it, else a new dead-end node) and the node
    coordinates with the new nodes appended."""
    ci_ = np.flatnonzero(w_cut | r_cut)
    both = shapely.union_all([bar.water_union, bar.rail_buf_cut])
    barrier = np.where(w_cut[ci_] & r_cut[ci_], both,
                       np.where(w_cut[ci_], bar.water_union, bar.rail_buf_cut))
    pieces, owner = shapely.get_parts(shapely.difference(seg[ci_], barrier), return_index=True)
    long_ = shapely.length(pieces) > 2.0
    pieces, owner = pieces[long_], ci_[owner[long_]]
    p_first = shapely.get_coordinates(shapely.get_point(pieces, 0))
    p_last = shapely.get_coordinates(shapely.get_point(pieces, -1))
    new_xy = [xy]
    next_id = len(xy)

    def end_node(pt: np.ndarray) -> np.ndarray:
        nonlocal next_id
        ida = np.where(np.hypot(*(pt - xy[a[owner]]).T) < 1e-6, a[owner],
                       np.where(np.hypot(*(pt - xy[b[owner]]).T) < 1e-6, b[owner], -1))
        new = ida < 0
        ida[new] = next_id + np.arange(int(new.sum()))
        next_id += int(new.sum())
        new_xy.append(pt[new])
        return ida

    pa = end_node(p_first)
    pb = end_node(p_last)
    return pieces, owner, pa, pb, np.concatenate(new_xy)


def build_roads(rng: np.random.Generator, site: Site, net: Net, item_ok: np.ndarray
                ) -> tuple[dict[str, Any], int]:
    """Edges from line memberships; drop fragments; cut at water/rail; one component.

    Returns the roads (``geom``, ``highway``, ``name``, ``structure``, end nodes ``a``,
    ``b``, compound candidate ``item`` or -1) and the number of network nodes.
    """
    bar = site.barriers
    xy, L, a, b, sl = _edges(net)
    seg = shapely.linestrings(np.stack([xy[a], xy[b]], axis=1))
    keep = _inside_parcels(site.parcels, L, sl, seg, item_ok)
    a, b, sl, seg = a[keep], b[keep], sl[keep], seg[keep]
    structure, w_cut, r_cut = _crossings(rng, site.grid, bar, seg, L["art"][sl], len(xy), a, b)
    pieces, owner, pa, pb, xy = _cut_pieces(bar, xy, a, b, seg, w_cut, r_cut)
    keep = ~(w_cut | r_cut)
    a = np.concatenate([a[keep], pa])
    b = np.concatenate([b[keep], pb])
    sl = np.concatenate([sl[keep], sl[owner]])
    on_water = structure[owner] == "bridge"
    on_water[on_water] = shapely.length(shapely.intersection(pieces[on_water], bar.water_union)) > 0.01
    piece_struct = np.where(on_water, "bridge", None).astype(object)
    structure = np.concatenate([structure[keep], piece_struct])
    geom = np.concatenate([seg[keep], pieces])
    # pieces keep their exact (cut) geometry: straight, so two points suffice
    # one connected network: the largest component
    _, lab = components(len(xy), a, b)
    sizes = np.bincount(lab[a], minlength=lab.max() + 1)
    main = int(np.argmax(sizes))
    keep = lab[a] == main
    a, b, sl, structure, geom = a[keep], b[keep], sl[keep], structure[keep], geom[keep]
    # stable order: by line then position along it
    roads = dict(geom=geom, highway=L["highway"][sl], name=L["name"][sl],
                 structure=structure, a=a, b=b, item=L["item"][sl])
    used = np.zeros(len(xy), dtype=bool)
    used[a] = True
    used[b] = True
    return roads, int(used.sum())
