"""The starting groups of a town's atoms and what stands in their way.

With committees, each atom (block group) goes to the residents' committee (居委会)
covering most of it; without, each land component of the town (between water, rail and
the boundary) is a group. A town's pieces cut off by water or rail are joined to the
nearest atoms across the gap (:func:`_connect_components`), and committees under the floor
with no neighbour are reported in domain terms (:func:`_committee_messages`).
"""

from __future__ import annotations

import math

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from .graph import _Graph, _part_matrix


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
