"""The walk network held as arrays: :class:`WalkNetwork` (nodes, edges, the symmetric CSR
of edge lengths, components), with its pendant edges and edge grid worked out on first
use. Built by :func:`geotijian.network.build_network`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import csr_matrix

from .. import _kernels
from .._kernels.edge_grid import _EdgeGrid


@dataclass
class WalkNetwork:
    """An undirected walk network in a metric CRS, as arrays.

    Attributes
    ----------
    crs : str
        Metric CRS of every coordinate (``settings.metric_crs`` unless chosen).
    x, y : ndarray of float
        Node coordinates (metres), length ``n_nodes``.
    node_ids : ndarray
        Original node IDs (osmnx node IDs, or ``0..n-1`` for a roads layer).
    edge_u, edge_v : ndarray of int
        End nodes (positions in ``x``/``y``) of each edge.
    edge_length : ndarray of float
        Edge length in metres (length of the geometry in the metric CRS).
    edge_geometry : ndarray of shapely LineString
        Edge geometry, oriented from ``edge_u`` to ``edge_v``.
    edge_source : ndarray
        Source feature of each edge (osmnx ``(u, v, key)`` or the roads row index).
    csr : scipy.sparse.csr_matrix
        ``n_nodes × n_nodes`` symmetric matrix of the shortest parallel-edge length between
        adjacent nodes (self-loops left out: they never shorten a path).
    component : ndarray of int
        Connected component of each node, numbered by size: 0 is the largest.
    report : DataFrame
        What the build repaired or left out (``problem``, ``count``, ``detail``).
    """

    crs: str
    x: np.ndarray
    y: np.ndarray
    node_ids: np.ndarray
    edge_u: np.ndarray
    edge_v: np.ndarray
    edge_length: np.ndarray
    edge_geometry: np.ndarray
    edge_source: np.ndarray
    csr: csr_matrix
    component: np.ndarray
    report: pd.DataFrame = field(default_factory=pd.DataFrame)

    @property
    def n_nodes(self) -> int:
        return len(self.x)

    @property
    def n_edges(self) -> int:
        return len(self.edge_u)

    @property
    def edge_component(self) -> np.ndarray:
        """Component of each edge (that of its ``u`` node)."""
        return self.component[self.edge_u]

    @property
    def in_largest(self) -> np.ndarray:
        """True for the nodes of the largest connected component (label 0)."""
        return self.component == 0

    @cached_property
    def component_size(self) -> np.ndarray:
        """Number of nodes in each component (index = component label)."""
        return np.bincount(self.component)

    @cached_property
    def pendant(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, csr_matrix]:
        """Pendant edges and the *core* of the network (the CSR without them).

        A pendant edge joins a leaf (a node with one incident edge, loops counted twice)
        to a parent with at least two. No shortest path between other nodes passes a
        leaf (a dead end), so the per-type searches run on the core and the leaves get
        ``min(own value, D[parent] + length)`` afterwards (:meth:`DistanceGraph.distances`):
        same distances, far fewer heap operations where dead ends (driveways, compound
        paths) are common. Returns ``(leaf, parent, length, core_csr)`` (compiled:
        :func:`geotijian._kernels.pendant_core`).
        """
        csr = self.csr
        leaf, parent, length, indptr, indices, data = _kernels.pendant_core(
            self.n_nodes, self.edge_u, self.edge_v, self.edge_length, csr.indptr.astype(np.int64, copy=False),
            csr.indices.astype(np.int32, copy=False), csr.data)
        if len(leaf) == 0:
            return leaf, parent, length, csr
        return leaf, parent, length, csr_matrix((data, indices, indptr), shape=csr.shape)

    @cached_property
    def _edge_xy(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vertices of every edge: x, y (metres), and each edge's first row and vertex
        count (filled by :func:`build_network` for a roads layer at no cost)."""
        c, gi = shapely.get_coordinates(self.edge_geometry, return_index=True)
        cnt = np.bincount(gi, minlength=self.n_edges)
        return (np.ascontiguousarray(c[:, 0]), np.ascontiguousarray(c[:, 1]),
                np.cumsum(cnt) - cnt, cnt)

    @cached_property
    def _grid(self) -> _EdgeGrid:
        """Uniform-grid index of the edge envelopes (see :class:`_EdgeGrid`)."""
        return _EdgeGrid.of_lines(self.edge_geometry, self._edge_xy)

    @cached_property
    def tree(self) -> shapely.STRtree:
        """Spatial index of the edge geometries."""
        return shapely.STRtree(self.edge_geometry)

    def edges(self) -> gpd.GeoDataFrame:
        """The edges as a GeoDataFrame (``u``, ``v``, ``length``, ``component``)."""
        return gpd.GeoDataFrame(
            {"u": self.edge_u, "v": self.edge_v, "length": self.edge_length,
             "component": self.edge_component},
            geometry=self.edge_geometry, crs=self.crs)

    def nodes(self) -> gpd.GeoDataFrame:
        """The nodes as a GeoDataFrame (``node_id``, ``component``)."""
        return gpd.GeoDataFrame({"node_id": self.node_ids, "component": self.component},
                                geometry=shapely.points(self.x, self.y), crs=self.crs)

    def __repr__(self) -> str:
        return (f"WalkNetwork({self.n_nodes} nodes, {self.n_edges} edges, "
                f"{len(self.component_size)} components, crs={self.crs!r})")
