"""The loops of the walk network, compiled by numba on first use (``_jit``).

Each kernel replaces a chain of numpy passes over the same arrays by one pass, for the
steps that would otherwise dominate coverage end to end: noding a roads layer
(:mod:`.noding`), the symmetric CSR, connected components and pendant edges
(:mod:`.graph`), the edge grid and the segment predicates and distances of snapping
(:mod:`.spatial`), the bounded searches of the siting distance matrix (:mod:`.reach`), the column
sets of the siting models (:mod:`.sets`). Plain Python with numpy arrays, compiled from a wheel (numba): no C
compiler at install. The float arithmetic is written operation by operation as in the
GEOS code it replaces, so the results are the same to the last bit; the tests compare
every kernel with GEOS, scipy or a plain reference.

Each public function takes numpy arrays of any integer/float dtype (converted once to
int64/float64, C order), so each kernel is compiled for one signature only.
"""

from .graph import bounded_dijkstra, component_labels, pendant_core, symmetric_csr
from .noding import VertexNoder, argsort_keys, node_lines
from .reach import reach_rows
from .sets import column_hash, same_columns
from .spatial import (
    first_hits,
    grid_index,
    intersects_filtered,
    line_bounds,
    line_lengths,
    nearest_to_points,
    point_segments,
)

__all__ = [
    "VertexNoder",
    "argsort_keys",
    "bounded_dijkstra",
    "column_hash",
    "component_labels",
    "first_hits",
    "grid_index",
    "intersects_filtered",
    "line_bounds",
    "line_lengths",
    "nearest_to_points",
    "node_lines",
    "pendant_core",
    "point_segments",
    "reach_rows",
    "same_columns",
    "symmetric_csr",
]
