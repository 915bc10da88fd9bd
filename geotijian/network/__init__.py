"""The walk network as compact arrays, and points snapped onto its edges.

:func:`build_network` turns an osmnx graph or a roads layer into a :class:`WalkNetwork`:
an undirected graph in a metric CRS held as numpy arrays (node coordinates, edge end
nodes, lengths in metres, geometries oriented from ``u`` to ``v``) and a symmetric
``scipy.sparse.csr_matrix`` of edge lengths for ``scipy.sparse.csgraph``.

:func:`snap_points` puts points (or polygon outlines) onto their nearest *edge*, not node:
the edge, the position along it (metres from ``u``) and the offset (metres from the point
to the edge). Distances then count the offset and the partial edge lengths; this is the
same as splitting every snapped edge at the snap positions and adding a spur from each
point to its snap position (the *augmented graph*, built explicitly by
:func:`augmented_graph` as a reference): see :func:`source_graph` and
:func:`distances_at_snaps`.

:func:`distance_graph` is the production engine: the same virtual source nodes on the
network's *core* (dead-end edges left out, :attr:`WalkNetwork.pendant`), one
``scipy.sparse.csgraph.dijkstra`` pass per source set, the dead-end leaves completed
afterwards; the distances equal a search of the whole network (tested).

Modules: ``walk`` (:class:`WalkNetwork`), ``build`` (:func:`build_network`), ``csr``
(sparse matrices of edge lists), ``grid`` (the edge grid index), ``geometry`` (nearest
edges, crossings and snap points against the edges), ``snap`` (:func:`snap_points`,
:func:`facility_access`), ``distance`` (the distance engine and its networkx
reference). The loops run in the compiled kernels of :mod:`geotijian._kernels`.
"""

from .build import build_network
from .distance import (
    DistanceGraph,
    augmented_graph,
    distance_graph,
    distances_at_snaps,
    pair_distances,
    source_graph,
)
from .snap import (
    REPORT_COLUMNS,
    SnapResult,
    check_metric,
    facility_access,
    feature_rules,
    snap_points,
)
from .walk import WalkNetwork

__all__ = [
    "REPORT_COLUMNS",
    "DistanceGraph",
    "SnapResult",
    "WalkNetwork",
    "augmented_graph",
    "build_network",
    "check_metric",
    "distance_graph",
    "distances_at_snaps",
    "pair_distances",
    "facility_access",
    "feature_rules",
    "snap_points",
    "source_graph",
]
