"""The compiled kernels (geotijian._kernels, numba) against plain references: Python
loops, scipy and GEOS. The snapping kernels are checked through geotijian.network's
functions in test_network.py (against GEOS's predicates, shortest_line and
line_locate_point)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import shapely
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from geotijian import _kernels
from geotijian._kernels import _jit
from geotijian.errors import GeotijianWarning


def reference_noding(coords: np.ndarray, line: np.ndarray, n_parts: int, scale: float):
    """Noding of network.build._edges_from_roads written as plain Python loops (the grid
    anchored at the whole metres below the first vertex)."""
    mx, my = np.floor(coords[0, 0]), np.floor(coords[0, 1])
    keys = [int(round((x - mx) * scale)) * 2**31 + int(round((y - my) * scale))
            for x, y in coords]
    lines: dict[int, list[int]] = {}
    modified = [False] * n_parts
    for i, ln in enumerate(line):
        rows = lines.setdefault(int(ln), [])
        if rows and keys[rows[-1]] == keys[i] and line[i - 1] == ln:
            modified[ln] = True
            continue
        rows.append(i)
    n_short = sum(len(r) == 1 for r in lines.values())
    lines = {k: r for k, r in lines.items() if len(r) > 1}
    occ: dict[int, int] = {}
    for rows in lines.values():
        for i in rows:
            occ[keys[i]] = occ.get(keys[i], 0) + 1
    first_row: dict[int, int] = {}  # node key -> first row
    edges = []  # (part, [rows])
    for part in sorted(lines):
        rows = lines[part]
        cur = [rows[0]]
        for k, i in enumerate(rows):
            is_node = k == 0 or k == len(rows) - 1 or occ[keys[i]] > 1
            if is_node:
                first_row.setdefault(keys[i], i)
            if k == 0:
                continue
            cur.append(i)
            if is_node:
                edges.append((part, cur))
                cur = [i]
    order = sorted(first_row)
    number = {k: j for j, k in enumerate(order)}
    return edges, [first_row[k] for k in order], number, keys, modified, n_short


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n_lines=st.integers(1, 60), span=st.sampled_from([3, 8, 50]))
def test_node_lines_equals_plain_noding(seed, n_lines, span):
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 6, n_lines)  # one-vertex lines included
    line = np.repeat(np.arange(n_lines), counts)
    # integer grid (shared vertices, repeats), sub-millimetre jitter (same key) and a
    # half-millimetre grid (ties of the rounding, half to even)
    xy = rng.integers(0, span, (len(line), 2)).astype(float) * rng.choice([1.0, 0.0005], 1)
    xy += rng.choice([0.0, 1e-5], xy.shape) + 3.3e5
    coords = np.ascontiguousarray(xy)
    start, count, part, u, v, node_x, node_y, modified, n_short, kx, ky = \
        _kernels.node_lines(coords, line.astype(np.int64), n_lines, 1000.0)
    edges, ref_rows, number, keys, ref_modified, ref_short = \
        reference_noding(coords, line, n_lines, 1000.0)
    assert n_short == ref_short
    assert modified.tolist() == ref_modified
    assert len(start) == len(edges)
    # nodes in key order, at the first coordinate seen of each
    assert np.array_equal(np.c_[node_x, node_y], coords[ref_rows])
    for k, (p, erows) in enumerate(edges):
        assert part[k] == p
        assert np.array_equal(np.c_[kx, ky][start[k]:start[k] + count[k]], coords[erows])
        assert u[k] == number[keys[erows[0]]] and v[k] == number[keys[erows[-1]]]
    # fed in chunks of whole lines (as build_network does, from a second thread): the same
    cuts = np.unique(np.r_[0, np.sort(rng.integers(0, n_lines + 1, 3)), n_lines])
    noder = _kernels.VertexNoder(len(line), n_lines, 1000.0)
    for a, b in zip(cuts[:-1], cuts[1:]):
        rows = (line >= a) & (line < b)
        noder.add(np.ascontiguousarray(coords[rows]), (line[rows] - a).astype(np.int64), int(a))
    chunked = noder.finish()
    whole = (start, count, part, u, v, node_x, node_y, modified, n_short, kx, ky)
    for x, y in zip(chunked, whole):
        assert np.array_equal(x, y)


def test_node_lines_rejects_a_continental_span():
    for far in ([1.5e6, 0.0], [0.0, -1.5e6], [np.nan, 0.0]):
        coords = np.array([[0.0, 0.0], far])
        try:
            _kernels.node_lines(coords, np.zeros(2, dtype=np.int64), 1, 1000.0)
        except OverflowError:
            continue
        raise AssertionError(f"no OverflowError for {far}")
    # within 1,000 km of the first vertex, either side: fine
    coords = np.array([[5e5, 3.4e6], [-4e5, 4.3e6]])
    assert len(_kernels.node_lines(coords, np.zeros(2, dtype=np.int64), 1, 1000.0)[0]) == 1


@hsettings(max_examples=60, deadline=None)
@given(keys=st.lists(st.integers(0, 2**62), max_size=300), small=st.booleans())
def test_argsort_keys_equals_numpy_stable(keys, small):
    k = np.array(keys, dtype=np.int64)
    if small:
        k %= 7  # many ties: stability
    assert np.array_equal(_kernels.argsort_keys(k), np.argsort(k, kind="stable"))


@hsettings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 40), m=st.integers(0, 120))
def test_symmetric_csr_and_components_equal_scipy(seed, n, m):
    rng = np.random.default_rng(seed)
    u = rng.integers(0, n, m)
    v = rng.integers(0, n, m)
    w = rng.choice([0.0, 1.0, 2.5, rng.uniform(0, 9)], m)  # zeros, parallel edges, loops
    indptr, indices, data = _kernels.symmetric_csr(n, u, v, w)
    best: dict[tuple[int, int], float] = {}
    for a, b, x in zip(u.tolist(), v.tolist(), w.tolist()):
        if a != b:
            for key in ((a, b), (b, a)):
                best[key] = min(best.get(key, np.inf), x)
    ref = sorted(best)
    got = [(r, int(c)) for r in range(n) for c in indices[indptr[r]:indptr[r + 1]]]
    assert got == ref  # rows, then columns ascending
    assert data.tolist() == [best[k] for k in ref]
    count, labels = _kernels.component_labels(n, u, v)
    g = coo_matrix((np.ones(m), (u, v)), shape=(n, n))
    ref_count, ref_labels = connected_components(g, directed=False)
    assert count == ref_count and np.array_equal(labels, ref_labels)


@hsettings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 60), m=st.integers(0, 200),
       integer=st.booleans(), limit=st.sampled_from([np.inf, 0.0, 3.0, 17.5]))
def test_bounded_dijkstra_equals_scipy_rows(seed, n, m, integer, limit):
    """One bounded search per source, sparse, equals scipy's dense rows to the last bit
    (integer weights: many ties; zero weights; parallel arcs; limit 0 and at a weight)."""
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import dijkstra

    rng = np.random.default_rng(seed)
    u, v = rng.integers(0, n, m), rng.integers(0, n, m)
    w = rng.integers(0, 6, m).astype(float) if integer else rng.uniform(0, 9, m) * (rng.random(m) > 0.1)
    # a CSR with repeated (u, v) entries kept apart, as the graphs with virtual sources are
    o = np.lexsort((v, u))
    indptr = np.concatenate([[0], np.cumsum(np.bincount(u, minlength=n))])
    src = rng.integers(0, n, min(n, 7))
    n_keep = max(1, n - 2)
    s, node, d = _kernels.bounded_dijkstra(indptr, v[o], w[o], src, limit, n_keep)
    ref = dijkstra(csr_matrix((w[o], v[o], indptr), shape=(n, n)), directed=True, indices=src, limit=limit)
    ref = np.atleast_2d(ref)
    got = np.full(ref.shape, np.inf)
    got[s, node] = d
    assert len(s) == np.isfinite(ref[:, :n_keep]).sum()  # each (source, node) once
    assert np.array_equal(got[:, :n_keep], ref[:, :n_keep])
    assert np.isinf(got[:, n_keep:]).all()


@hsettings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_line_lengths_and_bounds_equal_geos(seed):
    rng = np.random.default_rng(seed)
    counts = rng.integers(2, 9, 50)
    xy = rng.uniform(-1e3, 1e3, (counts.sum(), 2)) + [3.3e5, 3.4e6]
    lines = shapely.linestrings(xy, indices=np.repeat(np.arange(50), counts))
    start = np.cumsum(counts) - counts
    x, y = np.ascontiguousarray(xy[:, 0]), np.ascontiguousarray(xy[:, 1])
    assert np.array_equal(_kernels.line_lengths(x, y, start, counts), shapely.length(lines))
    assert np.array_equal(_kernels.line_bounds(x, y, start, counts), shapely.bounds(lines))


# every kernel, called through the public network functions on a tiny network
_CALL_ALL = """
import json, warnings
import numpy as np, geopandas as gpd, shapely
from geotijian import _kernels
from geotijian._kernels import graph, noding, reach, sets, spatial
from geotijian.network import build_network, facility_access, snap_points
crs = "EPSG:32651"
roads = gpd.GeoDataFrame(geometry=[shapely.LineString([(0, 0), (100, 0), (100, 100)]),
                                   shapely.LineString([(100, 0), (200, 50)]),
                                   shapely.LineString([(0, 0), (0, 100)])], crs=crs)
net = build_network(roads)
snap_points(net, gpd.GeoDataFrame(geometry=[shapely.Point(50, 10), shapely.Point(150, 90)], crs=crs))
polys = gpd.GeoDataFrame(geometry=[shapely.box(40, -5, 60, 5), shapely.box(120, 60, 140, 80)], crs=crs)
snap_points(net, polys)
facility_access(net, polys)
net.pendant
_kernels.argsort_keys(np.array([3, 1, 2]))
_kernels.intersects_filtered(*net._edge_xy, np.array([0]), *net._edge_xy, np.array([1]))
_kernels.reach_rows(net.csr.indptr, net.csr.indices, net.csr.data, np.array([0, 1]), np.array([0]), np.array([0.0]), 50.0)
_kernels.column_hash(np.array([0, 1]), np.array([0]), np.array([3], np.uint64))
_kernels.same_columns(np.array([0, 1, 2]), np.array([0, 0]), np.array([0]), np.array([1]))
stats = {}
for mod in (graph, noding, reach, sets, spatial):
    for name, f in vars(mod).items():
        if hasattr(f, "stats") and f.signatures and name not in stats:
            s = f.stats
            stats[mod.__name__ + "." + name] = [sum(s.cache_hits.values()), sum(s.cache_misses.values())]
print(json.dumps(stats))
"""


def test_kernels_are_cached_on_disk():
    """Numba's machine code of every kernel is written to its cache on the first run and
    loaded, not compiled, by the next process (a kernel that numba cannot cache, e.g.
    one reading a dynamic global, would compile in every run)."""
    runs = [subprocess.run([sys.executable, "-c", _CALL_ALL], capture_output=True, text=True,
                           check=True) for _ in range(2)]
    stats = json.loads(runs[1].stdout.strip().splitlines()[-1])
    cores = {k for k in stats if k.rsplit(".", 1)[1].lstrip("_") in _kernels.__all__
             or k.endswith(("._noder_add", "._noder_finish", "._radix_argsort"))}
    assert len(cores) >= 16, sorted(stats)
    for name in cores:
        hits, misses = stats[name]
        assert misses == 0 and hits >= 1, (name, hits, misses, runs[1].stderr[-2000:])


def test_kernels_compile_in_memory_where_nothing_is_writable(monkeypatch):
    """Where numba finds no writable cache folder (read-only package and home), the
    kernels still compile, once per run, with a warning that says how to keep them."""
    monkeypatch.setattr(_jit, "_warned", False)
    ns: dict = {}
    exec("def twice(x):\n    return 2 * x\n", ns)  # (no source file: numba cannot cache it)
    with pytest.warns(GeotijianWarning, match="NUMBA_CACHE_DIR"):
        f = _jit.jit(ns["twice"])
    assert f(21) == 42
