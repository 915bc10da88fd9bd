"""The distance engine: virtual source nodes on the network (:func:`source_graph`), the
production :class:`DistanceGraph` (searches on the core, dead-end leaves completed), the
snap formula turning node distances into feature distances (:func:`distances_at_snaps`),
and the explicit augmented networkx graph they are tested against
(:func:`augmented_graph`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from .. import _kernels
from .csr import _csr
from .._kernels.edge_grid import _ranges
from .snap import SnapResult
from .walk import WalkNetwork


# ------------------------------------------------------------------ distance engine
def source_graph(network: WalkNetwork, sources: SnapResult) -> csr_matrix:
    """The network CSR plus one virtual node per source feature (directed, out only).

    Node ``n_nodes + i`` is source feature ``i``; for each of its access points on edge
    ``(u, v)`` at ``position`` ``t`` with ``offset`` ``o`` it has arcs to ``u`` (weight
    ``o + t``) and to ``v`` (``o + length - t``). The virtual nodes have no incoming
    arcs, so they never shorten a path between other nodes; a multi-source Dijkstra from
    them equals Dijkstra on the augmented graph (edges split at the snap positions) for
    every network node. Points on the *same* edge as a source are handled by
    :func:`distances_at_snaps`.
    """
    return _with_sources(network, network.csr, sources)


def _with_sources(network: WalkNetwork, base: csr_matrix, sources: SnapResult) -> csr_matrix:
    n = network.n_nodes
    m = sources.n_features
    e = sources.edge
    L = network.edge_length[e]
    rows = np.concatenate([sources.owner, sources.owner])
    cols = np.concatenate([network.edge_u[e], network.edge_v[e]])
    w = np.concatenate([sources.offset + sources.position,
                        sources.offset + (L - sources.position)])
    virt = _csr(m, rows, cols, w, shape=(m, n + m), both=False)
    indptr = np.concatenate([base.indptr, base.nnz + virt.indptr[1:]])
    idx_dtype = np.int32 if n + m < 2**31 else np.int64
    indices = np.concatenate([base.indices.astype(idx_dtype), virt.indices.astype(idx_dtype)])
    data = np.concatenate([base.data, virt.data])
    return csr_matrix((data, indices, indptr), shape=(n + m, n + m))


@dataclass
class DistanceGraph:
    """The core network plus one virtual node per source feature, ready for searches.

    Built by :func:`distance_graph`; :meth:`distances` runs one multi-source Dijkstra
    (``scipy.sparse.csgraph.dijkstra``) on the core (pendant edges left out, see
    :attr:`WalkNetwork.pendant`) and completes the leaves, so the node distances equal
    those of a search on the whole network (:func:`source_graph`).
    """

    network: WalkNetwork
    csr: csr_matrix
    sources: SnapResult
    _prep: dict = field(default_factory=dict, repr=False)

    @property
    def shape(self) -> tuple[int, int]:
        return self.csr.shape

    def distances(self, features: np.ndarray, *, limit: float = np.inf,
                  min_only: bool = True) -> np.ndarray:
        """Network distance (m) of every node from the given source features.

        Parameters
        ----------
        features : ndarray of int
            Source feature positions (rows of ``sources``' layer).
        limit : float
            Metres; nodes farther are ``inf``.
        min_only : bool
            One row (distance to the nearest source) or one row per source feature.

        Returns
        -------
        ndarray
            ``(n_nodes,)`` or ``(len(features), n_nodes)`` distances in metres.
        """
        net = self.network
        n = net.n_nodes
        D = dijkstra(self.csr, directed=True, indices=n + np.asarray(features, dtype=np.int64),
                     min_only=min_only, limit=limit)
        D = np.ascontiguousarray(D[..., :n]) if D.shape[-1] != n else D
        leaf, parent, length, _ = net.pendant
        if len(leaf):
            fix = np.minimum(D[..., leaf], D[..., parent] + length)
            if np.isfinite(limit):
                fix[fix > limit] = np.inf
            D[..., leaf] = fix
        return D


    def within(self, features: np.ndarray, *, limit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The nodes within ``limit`` of each source feature, searched one feature at a time.

        The sparse form of ``distances(features, limit=limit, min_only=False)``: the same
        values (leaves completed), as triplets, for the work of the nodes reached only
        (:func:`geotijian._kernels.bounded_dijkstra`), not a dense row of every node per
        feature.

        Returns
        -------
        (feature position, node, distance) : three ndarrays
            Position in ``features``, network node, metres (≤ ``limit``); each pair once.
        """
        net = self.network
        n = net.n_nodes
        features = np.asarray(features, dtype=np.int64)
        src, node, dist = _kernels.bounded_dijkstra(self.csr.indptr, self.csr.indices, self.csr.data,
                                                    n + features, limit, n)
        leaf, parent, length, _ = net.pendant
        if len(leaf) and len(node):
            if "leaf_order" not in self._prep:
                self._prep["leaf_order"] = np.argsort(parent, kind="stable")
            o = self._prep["leaf_order"]
            ps = parent[o]
            lo = np.searchsorted(ps, node, side="left")
            cnt = np.searchsorted(ps, node, side="right") - lo
            k = o[_ranges(lo, cnt)]
            rep = np.repeat(np.arange(len(node)), cnt)
            ld = dist[rep] + length[k]  # as distances(): min(own, D[parent] + length)
            ok = ld <= limit
            src = np.concatenate([src, src[rep][ok]])
            node = np.concatenate([node, leaf[k][ok]])
            dist = np.concatenate([dist, ld[ok]])
            src, node, dist = _min_per_pair(src, node, dist, n)
        return src, node, dist

    def to_targets(self, targets: SnapResult, features: np.ndarray, *,
                   limit: float = np.inf) -> np.ndarray:
        """Distance (m) from each target feature to the nearest of the source ``features``.

        One multi-source search, then the snap formula of :func:`distances_at_snaps`
        (same values), with the per-target work done once per ``targets`` and reused
        across calls (one call per facility type): only the leaves at target edges are
        completed, and the same-edge source/target pairs are found once.

        Returns
        -------
        ndarray
            One value per target feature (``targets.n_features``); ``inf`` beyond
            ``limit`` or unreachable.
        """
        n = self.network.n_nodes
        formula, leaf, parent, length = self._prepared(targets)
        features = np.asarray(features, dtype=np.int64)
        D = dijkstra(self.csr, directed=True, indices=n + features, min_only=True, limit=limit)
        if len(leaf):
            D[leaf] = np.minimum(D[leaf], D[parent] + length)
        on = np.zeros(self.sources.n_features, dtype=bool)
        on[features] = True
        d = formula.apply(D, on)
        d[d > limit] = np.inf
        return d

    def _prepared(self, targets: SnapResult) -> tuple:
        """The snap formula for ``targets`` and the leaves at their edges (cached)."""
        hit = self._prep.get(id(targets))
        if hit is not None and hit[0] is targets:
            return hit[1]
        net = self.network
        formula = _SnapFormula.of(net, targets, self.sources)
        leaf, parent, length, _ = net.pendant
        need = np.zeros(net.n_nodes, dtype=bool)
        need[formula.u] = True
        need[formula.v] = True
        k = np.flatnonzero(need[leaf])
        out = (formula, leaf[k], parent[k], length[k])
        self._prep[id(targets)] = (targets, out)
        return out


def distance_graph(network: WalkNetwork, sources: SnapResult) -> DistanceGraph:
    """:func:`source_graph` on the core of the network (pendant edges left out), for
    :meth:`DistanceGraph.distances`. Arcs from a source on a pendant edge reach its
    parent directly, so no path is lost."""
    return DistanceGraph(network, _with_sources(network, network.pendant[3], sources), sources)


def distances_at_snaps(network: WalkNetwork, node_dist: np.ndarray, targets: SnapResult,
                       sources: SnapResult | None = None, *, n_features: int | None = None,
                       source_mask: np.ndarray | None = None) -> np.ndarray:
    """Distance (m) of each target feature from node distances, counting snap geometry.

    ``d = offset + min(D[u] + t, D[v] + length - t)``; when a source access point lies on
    the same edge, also ``offset + |t - t_s| + offset_s``. The minimum over a target's
    access points is returned (one value per target feature).

    Parameters
    ----------
    node_dist : ndarray
        Distances of the network nodes (length ``n_nodes``; longer arrays are cut).
        With a 2-D array (one row per source feature, from a non-``min_only`` search),
        the result is 2-D (sources × targets) and ``source_mask`` is ignored.
    sources : SnapResult, optional
        Source access points for the same-edge case.
    source_mask : ndarray of bool, optional
        Which source features take part (those of one type).
    """
    formula = _SnapFormula.of(network, targets, sources, n_features)
    D = node_dist[..., : network.n_nodes]
    return formula.apply(D, source_mask if D.ndim == 1 else None)


def pair_distances(network: WalkNetwork, src: np.ndarray, node: np.ndarray, dist: np.ndarray,
                   targets: SnapResult, sources: SnapResult) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`distances_at_snaps` for sparse node distances, one row per source feature.

    ``(src, node, dist)`` as given by :meth:`DistanceGraph.within` over *every* feature of
    ``sources`` in order (``src`` = source feature). The snap formula is applied to the
    reached nodes only: ``offset + D[u] + t`` and ``offset + D[v] + length - t`` for each
    target access point at a reached node, the same-edge pairs, the minimum per (source,
    target feature). Same floating-point operations as the dense formula, so the same
    values.

    Returns
    -------
    (source feature, target feature, distance) : three ndarrays
        Each reachable pair once, sorted by source then target.
    """
    f = _SnapFormula.of(network, targets, sources)
    parts = []
    for ends, along in ((f.u, f.t), (f.v, f.rest)):
        o = np.argsort(ends, kind="stable")
        e = ends[o]
        lo = np.searchsorted(e, node, side="left")
        cnt = np.searchsorted(e, node, side="right") - lo
        ap = o[_ranges(lo, cnt)]
        rep = np.repeat(np.arange(len(node)), cnt)
        parts.append((src[rep], ap, (dist[rep] + along[ap]) + f.offset[ap]))
    if len(f.ti):
        parts.append((f.sfeat, f.ti, f.direct))
    s = np.concatenate([p[0] for p in parts]).astype(np.int64)
    ap = np.concatenate([p[1] for p in parts]).astype(np.int64)
    d = np.concatenate([p[2] for p in parts])
    return _min_per_pair(s, targets.owner[ap], d, max(int(targets.n_features), 1))


def _min_per_pair(a: np.ndarray, b: np.ndarray, d: np.ndarray, nb: int) -> tuple:
    """Each ``(a, b)`` pair once with its smallest ``d``, sorted by ``a`` then ``b``."""
    key = a.astype(np.int64) * np.int64(nb) + b
    o = np.lexsort((d, key))
    ks = key[o]
    first = np.r_[True, ks[1:] != ks[:-1]] if len(ks) else np.zeros(0, dtype=bool)
    o = o[first]
    return a[o], b[o], d[o]


@dataclass
class _SnapFormula:
    """The target side of :func:`distances_at_snaps`, worked out once and applied to any
    node distances: snapped edge ends and positions, the same-edge (target, source)
    access-point pairs, and the reduction of access points to their features."""

    u: np.ndarray
    v: np.ndarray
    t: np.ndarray          # metres from u
    rest: np.ndarray       # metres to v
    offset: np.ndarray
    ti: np.ndarray         # same-edge pairs: target access point,
    sfeat: np.ndarray      # source feature,
    direct: np.ndarray     # and their distance along the edge (m)
    n_features: int
    order: np.ndarray | None  # None: one access point per feature, in feature order
    own: np.ndarray
    starts: np.ndarray

    @classmethod
    def of(cls, network: WalkNetwork, targets: SnapResult, sources: SnapResult | None = None,
           n_features: int | None = None) -> _SnapFormula:
        e = targets.edge
        t = targets.position
        L = network.edge_length[e]
        ti = sfeat = np.zeros(0, dtype=np.int64)
        direct = np.zeros(0)
        if sources is not None and len(sources.edge) and len(e):
            o = np.argsort(sources.edge, kind="stable")
            se = sources.edge[o]
            lo = np.searchsorted(se, e, side="left")
            cnt = np.searchsorted(se, e, side="right") - lo
            ti = np.repeat(np.arange(len(e)), cnt)
            si = o[_ranges(lo, cnt)]
            sfeat = sources.owner[si]
            direct = targets.offset[ti] + np.abs(t[ti] - sources.position[si]) + sources.offset[si]
        nt = targets.n_features if n_features is None else n_features
        order = own = starts = None
        if not (len(targets.owner) == nt and np.array_equal(targets.owner, np.arange(nt))):
            order = np.argsort(targets.owner, kind="stable")
            srt = targets.owner[order]
            starts = np.flatnonzero(np.r_[True, srt[1:] != srt[:-1]]) if len(srt) else \
                np.zeros(0, dtype=np.int64)
            own = srt[starts]
        return cls(network.edge_u[e], network.edge_v[e], t, L - t, targets.offset, ti, sfeat,
                   direct, nt, order, own, starts)

    def apply(self, D: np.ndarray, source_on: np.ndarray | None = None) -> np.ndarray:
        """Distances (m) per target feature from node distances ``D`` (1-D; or 2-D with
        one row per source feature). ``source_on``: which source features take part in
        the same-edge pairs (1-D only; default all)."""
        d = np.minimum(D[..., self.u] + self.t, D[..., self.v] + self.rest)
        d += self.offset
        if len(self.ti):
            if D.ndim == 1:
                sel = source_on[self.sfeat] if source_on is not None else slice(None)
                np.minimum.at(d, self.ti[sel], self.direct[sel])
            else:  # rows of d are the source features
                np.minimum.at(d, (self.sfeat, self.ti), self.direct)
        if self.order is None:
            return d
        out = np.full(d.shape[:-1] + (self.n_features,), np.inf)
        if len(self.order):
            out[..., self.own] = np.minimum.reduceat(d[..., self.order], self.starts, axis=-1)
        return out


# ------------------------------------------------------------------------ reference
def augmented_graph(network: WalkNetwork, points: dict[str, SnapResult]) -> nx.MultiGraph:
    """The explicit augmented graph, as a networkx MultiGraph (reference and baselines).

    Every edge holding snap positions is split at them (node ``("s", name, i)`` for access
    point ``i`` of layer ``name``), and each access point becomes a spur node
    ``("a", name, i)`` linked to its snap node by its offset. Features are *not* joined
    (no walking through a campus between two of its gates): a multi-source search starts
    from the access nodes of the sources; ``points[name].owner[i]`` is the feature of
    access point ``i``. Plain ``networkx.multi_source_dijkstra_path_length`` on this graph
    is the reference that :func:`source_graph` + :func:`distances_at_snaps` must match.
    Built with Python loops: for tests and benchmarks, not for production runs.
    """
    G = nx.MultiGraph()
    G.add_nodes_from(range(network.n_nodes))
    snapped: dict[int, list[tuple[float, Any]]] = {}
    for name, s in points.items():
        for i in range(len(s.edge)):
            snode = ("s", name, i)
            snapped.setdefault(int(s.edge[i]), []).append((float(s.position[i]), snode))
            G.add_edge(("a", name, i), snode, weight=float(s.offset[i]))
    for e in range(network.n_edges):
        u, v, L = int(network.edge_u[e]), int(network.edge_v[e]), float(network.edge_length[e])
        if e not in snapped:
            if u != v:
                G.add_edge(u, v, weight=L)
            continue
        prev, prev_t = u, 0.0
        for t, snode in sorted(snapped[e], key=lambda p: p[0]):
            G.add_edge(prev, snode, weight=t - prev_t)
            prev, prev_t = snode, t
        G.add_edge(prev, v, weight=L - prev_t)
    return G
