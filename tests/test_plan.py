"""The renewal plan: siting (distances, exact MILPs, bad input), renewal areas, project library."""

from __future__ import annotations

import itertools
import re
import warnings

import geopandas as gpd
import networkx as nx
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
import shapely

import geotijian as gt
from geotijian import ConfigError, FeasibilityError, LayerError, PlanWarning
from geotijian.network import augmented_graph, facility_access, snap_points
from geotijian.plan.costs import bounded_distance_matrix
from geotijian.plan.milp import reduce_model, solve_lscp, solve_mclp
from geotijian.plan.projects import PROJECT_TYPES, annual_plan, project_library, project_rules
from geotijian.plan.renewal import renewal_areas, unit_neighbours

from .test_network import random_planar_roads

CRS = "EPSG:32651"
X0, Y0 = 333000.0, 3473000.0


# ------------------------------------------------------------------- a hand-solvable case
def _line_case():
    """A straight street, 0-1000 m, noded every 100 m; homes 10 m off it.

    Network distance home (x, 10) → candidate (c, 0) = 10 + |x - c|; a kindergarten
    covers within 100 m, i.e. |x - c| ≤ 90. The existing kindergarten at x = 960 covers the
    home at 950. Uncovered: H50 (100), H150 (100), H450 (300), H850 (150), and H300 at 150 m
    from the street (40 residents), which no site can reach.
    Candidates: A x=100 covers H50+H150 (200); B x=450 and D x=500 cover H450 (300); C
    x=800 and E x=900 cover H850 (150). Optimum: p=1 → {B} 300; p=2 → {B, A} 500; p=3 →
    650; LSCP → 3 sites covering 650, H300 reported unreachable.
    """
    roads = gpd.GeoDataFrame({"highway": ["residential"] * 10}, geometry=[
        shapely.LineString([(X0 + k, Y0), (X0 + k + 100, Y0)]) for k in range(0, 1000, 100)], crs=CRS)
    net = gt.build_network(roads)
    homes = gpd.GeoDataFrame({"home_id": ["H50", "H150", "H450", "H850", "H950", "H300"],
                              "population": [100.0, 100.0, 300.0, 150.0, 50.0, 40.0]},
                             geometry=shapely.points([X0 + 50, X0 + 150, X0 + 450, X0 + 850, X0 + 950, X0 + 300],
                                                     [Y0 + 10] * 5 + [Y0 + 150]), crs=CRS)
    fac = gpd.GeoDataFrame({"facility_id": ["K1"], "type": ["kindergarten"]},
                           geometry=[shapely.Point(X0 + 960, Y0)], crs=CRS)
    cand = gpd.GeoDataFrame({"site_id": list("ABCDE")},
                            geometry=shapely.points([X0 + 100, X0 + 450, X0 + 800, X0 + 500, X0 + 900], [Y0] * 5),
                            crs=CRS)
    return net, homes, fac, cand


def _site(net, homes, fac, cand, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PlanWarning)
        return gt.site_facilities(net, homes, fac, facility_type="kindergarten", candidates=cand,
                                  walk_distance=100.0, **kw)


def test_hand_solvable_mclp_has_its_known_optimum():
    net, homes, fac, cand = _line_case()
    for p, value, chosen in ((1, 300.0, {"B"}), (2, 500.0, {"A", "B"}), (3, 650.0, None)):
        r = _site(net, homes, fac, cand, objective="mclp", p=p)
        assert r.summary["status"] == "optimal"
        assert r.summary["objective_value"] == pytest.approx(value)
        assert r.summary["residents_covered_new"] == pytest.approx(value)
        assert r.sites["residents_covered"].sum() == pytest.approx(value)
        if chosen is not None:
            assert set(r.sites["candidate_id"]) == chosen
        assert r.summary["gap"] <= r.summary["mip_rel_gap"]
    # what was covered before: H950 (50) by the existing kindergarten
    assert r.summary["residents_covered_existing"] == pytest.approx(50.0)
    assert r.summary["residents_uncovered"] == pytest.approx(690.0)
    # site table: the two H850 candidates are duplicates (C kept, E dropped), D duplicates B
    kept = set(r.candidates.loc[r.candidates["in_model"], "candidate_id"])
    assert kept == {"A", "B", "C"}


def test_hand_solvable_distances_are_offset_plus_street():
    net, homes, fac, cand = _line_case()
    r = _site(net, homes, fac, cand, objective="mclp", p=3)
    a = r.assignment.set_index("home_id")
    assert a.loc["H450", "distance_m"] == pytest.approx(10.0)     # B at x=450
    assert a.loc["H50", "distance_m"] == pytest.approx(60.0)      # A at x=100
    assert a.loc["H150", "distance_m"] == pytest.approx(60.0)
    assert a.loc["H850", "distance_m"] == pytest.approx(60.0)     # C at x=800 (E equal: lower ID)


def test_lscp_reports_unreachable_homes_then_solves_the_rest():
    net, homes, fac, cand = _line_case()
    with pytest.warns(PlanWarning, match=r"1 uncovered homes \(40 residents\) have no candidate site"):
        r = gt.site_facilities(net, homes, fac, facility_type="kindergarten", candidates=cand,
                               walk_distance=100.0, objective="lscp")
    assert r.summary["status"] == "optimal" and r.summary["objective_value"] == 3
    assert len(r.sites) == 3 and r.summary["residents_covered_new"] == pytest.approx(650.0)
    assert list(r.unreachable["home_id"]) == ["H300"]
    assert r.summary["residents_unreachable"] == pytest.approx(40.0)


def test_network_candidates_reach_every_uncovered_home_on_the_street():
    net, homes, fac, _ = _line_case()
    r = _site(net, homes, fac, None, objective="lscp")
    # every node is a candidate; H50/H150 share node x=100, H450 and H850 need one each
    assert r.summary["objective_value"] == 3
    assert set(r.candidates["source"]) == {"network_node"}
    assert r.summary["residents_covered_new"] == pytest.approx(650.0)


# ------------------------------------------------------------------ distances: reference
def _reference(net, hs, ts, limit, node_targets):
    """Plain networkx Dijkstra on the augmented graph, from each home's access node."""
    pts = {"h": hs} if node_targets else {"h": hs, "t": ts}
    G = augmented_graph(net, pts)
    out = {}
    for i in range(hs.n_features):
        src = [("a", "h", k) for k in np.flatnonzero(hs.owner == i)]
        d = nx.multi_source_dijkstra_path_length(G, src, cutoff=limit, weight="weight")
        if node_targets:
            for n, v in d.items():
                if isinstance(n, (int, np.integer)):
                    out[(i, int(n))] = v
        else:
            for k in range(len(ts.owner)):
                key = ("a", "t", k)
                if key in d:
                    j = int(ts.owner[k])
                    out[(i, j)] = min(out.get((i, j), np.inf), d[key])
    return out


@pytest.mark.parametrize("seed", [3, 11])
def test_distance_matrix_equals_plain_dijkstra(seed):
    rng = np.random.default_rng(seed)
    roads = random_planar_roads(seed, 40, 0.8, spurs=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = gt.build_network(roads, crs=CRS)
    # homes: points and small polygons; candidates: points and polygons (several access points)
    hp = shapely.points(rng.uniform(0, 1000, (30, 2)))
    hp[::3] = shapely.buffer(hp[::3], 12, quad_segs=2)
    homes = gpd.GeoDataFrame(geometry=hp, crs=CRS)
    cp = shapely.points(rng.uniform(0, 1000, (12, 2)))
    cp[::2] = shapely.buffer(cp[::2], 30, quad_segs=1)
    cand = gpd.GeoDataFrame(geometry=cp, crs=CRS)
    hs = snap_points(net, homes, layer="homes")
    ts = facility_access(net, cand)
    limit = 250.0
    for node_targets in (False, True):
        M = bounded_distance_matrix(net, hs, limit, targets=None if node_targets else ts).tocoo()
        got = {(int(i), int(j)): float(v) for i, j, v in zip(M.row, M.col, M.data)}
        ref = _reference(net, hs, ts, limit, node_targets)
        assert got.keys() == ref.keys(), (len(got), len(ref))
        for k, v in ref.items():
            assert got[k] == pytest.approx(max(v, 1e-6), abs=1e-7), k


@pytest.mark.parametrize("seed", [3, 11, 19])
def test_distance_matrix_is_scipys_dijkstra_to_the_bit(seed):
    """The per-home searches give, for every node, the value of scipy's Dijkstra on the
    whole network from a virtual node per home (arcs offset + position and offset +
    length - position, the shortest per node), bit for bit; candidates add their partial
    edge and offset to the nearer end, or walk along a shared edge."""
    from scipy.sparse.csgraph import dijkstra

    from geotijian.access import ZERO_DISTANCE_M
    from geotijian.plan.costs import _min_entries

    rng, net, homes = _random_homes_case(seed)
    cp = shapely.points(rng.uniform(0, 1000, (15, 2)))
    cp[::2] = shapely.buffer(cp[::2], 30, quad_segs=1)
    ts = facility_access(net, gpd.GeoDataFrame(geometry=cp, crs=CRS))
    hs = snap_points(net, homes, layer="homes")
    limit = 250.0
    n, m = net.n_nodes, hs.n_features
    e, L = hs.edge, net.edge_length
    r, c, w = _min_entries(np.r_[hs.owner, hs.owner], np.r_[net.edge_u[e], net.edge_v[e]],
                           np.r_[hs.offset + hs.position, hs.offset + L[e] - hs.position], n)
    virt = sp.csr_matrix((w, (r, c)), shape=(m, n + m))
    g = sp.vstack([sp.hstack([net.csr, sp.csr_matrix((n, m))]), virt]).tocsr()
    D = dijkstra(g, directed=True, indices=n + np.arange(m), limit=limit)[:, :n]
    M = bounded_distance_matrix(net, hs, limit)
    i, j = np.nonzero(D <= limit)
    assert M.nnz == len(i) > 0
    assert np.array_equal(M.indptr, np.r_[0, np.cumsum(np.bincount(i, minlength=m))])
    assert np.array_equal(M.indices, j) and np.array_equal(M.data, np.maximum(D[i, j], ZERO_DISTANCE_M))
    # candidates: through either end of their edge (then their offset), or a shared edge
    te = ts.edge
    via = np.minimum(D[:, net.edge_u[te]] + ts.position, D[:, net.edge_v[te]] + (L[te] - ts.position)) + ts.offset
    want = {}
    for a, b in zip(*np.nonzero(via <= limit)):
        k = (int(a), int(ts.owner[b]))
        want[k] = min(want.get(k, np.inf), via[a, b])
    for k in range(len(hs.edge)):
        for b in np.flatnonzero(te == hs.edge[k]):
            d = hs.offset[k] + abs(hs.position[k] - ts.position[b]) + ts.offset[b]
            if d <= limit:
                key = (int(hs.owner[k]), int(ts.owner[b]))
                want[key] = min(want.get(key, np.inf), d)
    T = bounded_distance_matrix(net, hs, limit, targets=ts).tocoo()
    got = {(int(a), int(b)): float(v) for a, b, v in zip(T.row, T.col, T.data)}
    assert got.keys() == want.keys() and len(got) > 0
    assert all(got[k] == max(want[k], ZERO_DISTANCE_M) for k in want)


def _csr_identical(a, b) -> bool:
    """Same shape, index arrays and values, to the bit (not approximately)."""
    return (a.shape == b.shape and np.array_equal(a.indptr, b.indptr) and np.array_equal(a.indices, b.indices)
            and a.indices.dtype == b.indices.dtype and np.array_equal(a.data, b.data))


def _random_homes_case(seed):
    rng = np.random.default_rng(seed)
    roads = random_planar_roads(seed, 40, 0.8, spurs=20)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = gt.build_network(roads, crs=CRS)
    hp = shapely.points(rng.uniform(0, 1000, (80, 2)))
    hp[::4] = shapely.buffer(hp[::4], 12, quad_segs=2)
    homes = gpd.GeoDataFrame({"home_id": [f"H{i}" for i in range(80)],
                              "population": rng.integers(0, 300, 80).astype(float)}, geometry=hp, crs=CRS)
    return rng, net, homes


@pytest.mark.parametrize("seed", [3, 11])
def test_shared_costs_rows_equal_each_types_own_matrix(seed):
    """The matrix of the union of several types' homes, sliced by rows, is each type's own
    matrix to the bit (a home's distances do not depend on the other homes of its tiles)."""
    from geotijian.plan.siting import shared_costs

    rng, net, homes = _random_homes_case(seed)
    masks = [rng.random(80) < share for share in (0.5, 0.6, 0.3)]
    rows = np.flatnonzero(np.logical_or.reduce(masks))
    sc = shared_costs(net, homes, rows, 250.0)
    for mask in masks:
        di = np.flatnonzero(mask)
        own = bounded_distance_matrix(net, snap_points(net, homes.iloc[di].reset_index(drop=True), layer="homes"),
                                      250.0)
        assert own.nnz > 0
        assert _csr_identical(sc.rows(net, 250.0, di), own)
    # costs of another walking distance, network or home set do not answer
    di = np.flatnonzero(masks[0])
    assert sc.rows(net, 300.0, di) is None
    outside = np.setdiff1d(np.arange(80), rows)
    if len(outside):
        assert sc.rows(net, 250.0, np.r_[di[:1], outside[:1]]) is None


def test_siting_with_shared_costs_is_siting_without():
    from geotijian.plan.siting import shared_costs

    _, net, homes = _random_homes_case(5)
    fac = gpd.GeoDataFrame({"type": ["kindergarten"]}, geometry=[shapely.Point(500, 500)], crs=CRS)
    rows = np.flatnonzero(homes["population"].to_numpy() > 0)
    sc = shared_costs(net, homes, rows, 250.0)
    for objective, p in (("mclp", 3), ("lscp", None)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", PlanWarning)
            a = gt.site_facilities(net, homes, fac, facility_type="kindergarten", walk_distance=250.0,
                                   objective=objective, p=p)
            b = gt.site_facilities(net, homes, fac, facility_type="kindergarten", walk_distance=250.0,
                                   objective=objective, p=p, shared_costs=sc)
        assert a.summary["demand_homes"] < len(rows)    # the existing one covers some: a subset of rows
        assert _csr_identical(a.cover_matrix, b.cover_matrix)
        for k in ("sites", "candidates", "assignment", "unreachable"):
            pd.testing.assert_frame_equal(getattr(a, k), getattr(b, k), check_exact=True)
        assert len(a.sites) > 0


# --------------------------------------------------------------------- exact reductions
def _brute_mclp(B: np.ndarray, w: np.ndarray, p: int) -> float:
    best = 0.0
    for k in range(1, min(p, B.shape[1]) + 1):
        for S in itertools.combinations(range(B.shape[1]), k):
            best = max(best, float(w[B[:, list(S)].any(axis=1)].sum()))
    return best


def _brute_lscp(B: np.ndarray) -> int:
    rows = B.any(axis=1)
    for k in range(0, B.shape[1] + 1):
        for S in itertools.combinations(range(B.shape[1]), k):
            if (B[:, list(S)].any(axis=1) >= rows).all():
                return k
    return -1


@pytest.mark.parametrize("seed", range(6))
def test_reduced_models_keep_the_brute_force_optimum(seed):
    rng = np.random.default_rng(seed)
    B = rng.random((14, 9)) < 0.25
    B[:, 3] = B[:, 1]                      # a duplicate column
    B[:, 5] = B[:, 2] & (rng.random(14) < 0.5)   # a dominated one
    B[4] = B[7]                            # identical rows
    w = rng.integers(1, 50, 14).astype(float)
    for p in (1, 2, 3):
        m = reduce_model(sp.csr_matrix(B), w, objective="mclp")
        assert solve_mclp(m, p).objective == pytest.approx(_brute_mclp(B, w, p))
    m = reduce_model(sp.csr_matrix(B), w, objective="lscp")
    sol = solve_lscp(m)
    assert sol.objective == _brute_lscp(B)
    # the chosen input columns cover every coverable row
    chosen = m.columns[sol.chosen]
    assert (B[:, chosen].any(axis=1) >= B.any(axis=1)).all()


def test_duplicate_columns_are_found_exactly_and_collisions_never_merge(monkeypatch):
    from geotijian.plan import milp

    rng = np.random.default_rng(7)
    B = rng.random((40, 30)) < 0.2
    B[:, [4, 9, 21]] = B[:, [2]]          # copies of column 2
    B[:, 17] = B[:, 5]
    C = sp.csc_matrix(B)
    # the hash: sums of one random word per row, modulo 2**64 (numpy's reduceat wraps alike)
    word = np.random.default_rng(1).integers(0, 2**63, 40, dtype=np.uint64)
    nz = np.diff(C.indptr) > 0
    ref = np.zeros(30, np.uint64)
    ref[nz] = np.add.reduceat(word[C.indices], C.indptr[:-1][nz])
    assert np.array_equal(gt._kernels.column_hash(C.indptr, C.indices, word), ref)
    exact = [sum(int(word[i]) for i in C.indices[C.indptr[j]:C.indptr[j + 1]]) for j in range(30)]
    assert [e % 2**64 for e in exact] == [int(h) for h in ref] and max(exact) >= 2**64   # (wrapped)
    rep, first = milp._duplicate_groups(C)
    want = np.array([next(k for k in range(30) if (B[:, k] == B[:, j]).all()) for j in range(30)])
    assert np.array_equal(rep, want) and np.array_equal(first, want == np.arange(30))
    # every set hashed alike (a collision of everything): the exact check keeps different sets apart
    monkeypatch.setattr(milp, "_set_hash", lambda mat, rng: np.zeros((mat.shape[1], 3), np.uint64))
    rep, _ = milp._duplicate_groups(C)
    assert all((B[:, rep[j]] == B[:, j]).all() for j in range(30))
    assert {j for j in range(30) if rep[j] != j} == {j for j in range(1, 30) if (B[:, 0] == B[:, j]).all()}
    # the first hash alike, the second apart: the whole key decides (as without the collision)
    monkeypatch.undo()
    real = milp._set_hash(C, np.random.default_rng(0))
    monkeypatch.setattr(milp, "_set_hash", lambda mat, rng: np.column_stack([np.zeros(30, np.uint64), real[:, 1:]]))
    assert np.array_equal(milp._duplicate_groups(C)[0], want)


def test_capacity_is_honoured_and_duplicates_are_kept_with_it():
    # one home of 10 persons of demand; three identical candidates of 4 places each:
    # LSCP needs all three (a reduction merging duplicates would wrongly say infeasible)
    B = sp.csr_matrix(np.ones((1, 3), bool))
    m = reduce_model(B, np.array([10.0]), demand=np.array([10.0]), capacity=np.full(3, 4.0), objective="lscp")
    sol = solve_lscp(m)
    assert sol.status == "optimal" and sol.objective == 3
    m = reduce_model(B, np.array([10.0]), demand=np.array([10.0]), capacity=np.full(3, 4.0), objective="mclp")
    sol = solve_mclp(m, 2)
    assert sol.objective == pytest.approx(8.0)  # 2 sites × 4 places of 10 residents' demand


@pytest.mark.parametrize("seed", range(4))
def test_capacitated_optimum_equals_brute_force(seed):
    from geotijian.plan.milp import _serve, solve_capacitated

    rng = np.random.default_rng(seed)
    B = rng.random((12, 7)) < 0.35
    w = rng.integers(10, 100, 12).astype(float)
    d = w * 0.1
    cap = rng.choice([5.0, 8.0, 30.0], 7)
    for p in (1, 2, 3):
        best = 0.0
        for k in range(1, p + 1):
            for S in itertools.combinations(range(7), k):
                best = max(best, _serve(sp.csr_matrix(B[:, list(S)]), w, d, cap[list(S)])[0])
        sol, _, chosen, share = solve_capacitated(sp.csr_matrix(B), w, d, cap, objective="mclp", p=p)
        assert sol.status == "optimal" and sol.objective == pytest.approx(best, rel=1e-6)
        served = (np.asarray(share.sum(axis=1)).ravel() * w).sum()
        assert served == pytest.approx(best, rel=1e-6) and len(chosen) <= p
        load = np.asarray(share.multiply(d[:, None]).sum(axis=0)).ravel()
        assert (load <= cap + 1e-6).all()


def test_capacity_not_binding_takes_the_uncapacitated_optimum_and_says_so():
    net, homes, fac, cand = _line_case()
    r = _site(net, homes, fac, cand, objective="mclp", p=2, capacity=1000, demand_share=0.03)
    assert r.summary["objective_value"] == pytest.approx(500.0) and r.summary["status"] == "optimal"
    assert "served within capacity" in r.summary["solver"]
    assert r.sites["demand_served"].sum() == pytest.approx(15.0)


def test_capacitated_greedy_is_labelled_when_the_milp_runs_out_of_time():
    from geotijian.plan.milp import solve_capacitated

    rng = np.random.default_rng(5)
    B = sp.csr_matrix(rng.random((400, 300)) < 0.05)
    w = rng.integers(10, 100, 400).astype(float)
    sol, _, chosen, _ = solve_capacitated(B, w, w * 0.05, np.full(300, 20.0), objective="mclp", p=10,
                                          time_limit_s=0.05)
    assert len(chosen) == 10
    if sol.status != "optimal" or "greedy" in sol.solver:
        assert "greedy" in sol.solver and np.isfinite(sol.gap)
        assert sol.bound >= sol.objective - 1e-6


def test_spopt_finds_the_same_objective_on_the_same_matrix():
    pulp = pytest.importorskip("pulp")
    from spopt.locate import LSCP, MCLP

    rng = np.random.default_rng(7)
    B = rng.random((40, 25)) < 0.12
    B[rng.integers(0, 40), :] = False
    w = rng.integers(1, 100, 40).astype(float)
    m = reduce_model(sp.csr_matrix(B), w, objective="mclp")
    cost = np.where(m.cover.toarray(), 100.0, 1e9)
    ours = solve_mclp(m, 4).objective
    ref = MCLP.from_cost_matrix(cost, m.weight, service_radius=300, p_facilities=4).solve(
        pulp.PULP_CBC_CMD(msg=False))
    assert ours == pytest.approx(pulp.value(ref.problem.objective))
    m = reduce_model(sp.csr_matrix(B), w, objective="lscp")
    cost = np.where(m.cover.toarray(), 100.0, 1e9)
    ref = LSCP.from_cost_matrix(cost, service_radius=300).solve(pulp.PULP_CBC_CMD(msg=False))
    assert solve_lscp(m).objective == pytest.approx(pulp.value(ref.problem.objective))


# ------------------------------------------------------------------------- bad input
def test_bad_siting_inputs_say_what_and_how_to_fix():
    net, homes, fac, cand = _line_case()
    with pytest.raises(LayerError, match=r"candidate sites.*is empty.*Fix"):
        _site(net, homes, fac, cand.iloc[:0], objective="mclp", p=2)
    far = cand.assign(geometry=shapely.points(np.full(5, X0 + 500), np.full(5, Y0 + 900)))
    with pytest.raises(FeasibilityError, match=r"none of the 5 candidate sites is within 100 m walk of the "
                                               r"5 uncovered homes \(690 residents\).*Fix"):
        _site(net, homes, fac, far, objective="mclp", p=2)
    with pytest.raises(ConfigError, match="p"):
        _site(net, homes, fac, cand, objective="mclp")
    with pytest.raises(ConfigError, match="objective"):
        _site(net, homes, fac, cand, objective="pmedian", p=2)
    with pytest.raises(ConfigError, match="capacity"):
        _site(net, homes, fac, cand, objective="mclp", p=2, capacity="lots")
    # capacity below demand: an error for LSCP (naming how many homes), a warning for MCLP
    with pytest.raises(FeasibilityError, match=r"capacity below demand: \d+ uncovered homes .*Fix"):
        gt.site_facilities(net, homes.iloc[:5], fac, facility_type="kindergarten", candidates=cand,
                           walk_distance=100.0, objective="lscp", capacity=10, demand_share=0.1)
    with pytest.warns(PlanWarning, match=r"capacity below demand: 2 new sites offer at most 20 places"):
        r = gt.site_facilities(net, homes.iloc[:5], fac, facility_type="kindergarten", candidates=cand,
                               walk_distance=100.0, objective="mclp", p=2, capacity=10, demand_share=0.1)
    assert r.summary["residents_covered_new"] == pytest.approx(200.0)  # 20 places at 10 % demand


def test_weights_that_do_not_parse_name_the_key_and_the_count(tmp_path):
    from geotijian.config import read_config

    base = (tmp_path / "b.gpkg")
    gpd.GeoDataFrame({"name": ["x"]}, geometry=[shapely.box(X0, Y0, X0 + 10, Y0 + 10)], crs=CRS).to_file(base)
    head = f'[study]\nname = "t"\n[layers.boundary]\npath = "{base}"\n[layers.roads]\npath = "{base}"\n'
    cases = {
        '[plan.renewal]\nweights = { problems = "high", complaints = 0.2, old_compounds = "x" }':
            r"plan\.renewal\.weights\.problems.*'high' \(2 of 3 weights do not parse",
        '[plan.renewal]\nweights = { problem = 0.4 }': r"plan\.renewal\.weights\.problem.*unknown name",
        '[plan.renewal]\nclass_weights = { "限时解决" = -1 }': r"class_weights\.限时解决.*do not parse",
        '[plan]\nunknown_key = 1': r"plan\.unknown_key.*unknown key",
        '[plan.siting]\np = { kindergarten = 2.5 }': r"plan\.siting\.p\.kindergarten.*whole number",
        '[plan.siting]\ncandidates = "sites"': r"plan\.siting\.candidates.*needs a candidate sites layer",
    }
    for text, pattern in cases.items():
        p = tmp_path / "s.toml"
        p.write_text(head + text + "\n", encoding="utf-8")
        with pytest.raises(ConfigError, match=pattern):
            read_config(p)
    with pytest.raises(ConfigError, match=r"weights\.dissatisfaction.*1 of 1 weights do not parse"):
        gt.renewal_scores(_units()[0], _problems(_units()[0]), weights={"dissatisfaction": "much"})


def test_every_plan_key_is_documented():
    from pathlib import Path

    from geotijian.config import PLAN_KEYS, TEMPLATE

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    for sub, keys in PLAN_KEYS.items():
        for k in keys:
            if k in PLAN_KEYS:  # the sub-tables themselves
                continue
            full = f"plan.{sub + '.' if sub else ''}{k}"
            assert f"`{full}`" in readme, f"{full} missing from README's configuration table"
            assert f"{k} =" in TEMPLATE, f"{k} missing from the init template"


# ------------------------------------------------------------------------ renewal areas
def _units(n: int = 6):
    """A 6 × 6 grid of 500 m units, two towns (left and right halves), a canal 40 m wide
    between rows 2 and 3 (neighbours across it by the 60 m rule)."""
    rows = []
    for i, j in itertools.product(range(n), range(n)):
        y0 = Y0 + i * 500 + (40 if i >= 3 else 0)
        rows.append({"unit_id": f"T{1 + (j >= n // 2)}-U{i * n + j:02d}", "town_code": f"T{1 + (j >= n // 2)}",
                     "town_name": "东镇" if j >= n // 2 else "西镇", "population": 6000.0 + 300 * ((i * 7 + j) % 5),
                     "geometry": shapely.box(X0 + j * 500, y0, X0 + (j + 1) * 500, y0 + 500)})
    units = gpd.GeoDataFrame(rows, crs=CRS)
    boundary = gpd.GeoDataFrame({"name": ["D"]}, geometry=[shapely.box(X0, Y0, X0 + n * 500, Y0 + n * 500 + 40)],
                                crs=CRS)
    return units, boundary


def _problems(units, seed: int = 1):
    rng = np.random.default_rng(seed)
    rows = []
    codes = ["cov_kindergarten", "cov_elderly_day_care", "u_park_green_pc", "g_old_compound_share"]
    classes = ["限时解决", "尽力解决", "长期谋划", "尽力解决"]
    hot = set(units["unit_id"].iloc[[0, 1, 6, 7, 8, 14, 27, 28]])  # two clusters of bad units
    for u, pop in zip(units["unit_id"], units["population"]):
        for c, k in zip(codes, classes):
            if u in hot or rng.random() < 0.15:
                rows.append({"problem_id": f"{c}@{u}", "indicator_code": c, "name_zh": c, "level": "unit",
                             "area_id": u, "problem_class": k, "affected_population": pop * rng.uniform(0.3, 1)})
    rows.append({"problem_id": "u_road_network_density@T1", "indicator_code": "u_road_network_density",
                 "name_zh": "路网密度", "level": "town", "area_id": "T1", "problem_class": "长期谋划",
                 "affected_population": 50000.0})
    rows.append({"problem_id": "s_satisfaction@district", "indicator_code": "s_satisfaction", "name_zh": "满意度",
                 "level": "district", "area_id": "district", "problem_class": "限时解决",
                 "affected_population": 200000.0})
    return pd.DataFrame(rows)


def _check_areas(res, units, boundary, lo, hi, within_town=True):
    adj = unit_neighbours(units.sort_values("unit_id").reset_index(drop=True),
                          within_town=within_town).tocsr()
    uid = units.sort_values("unit_id")["unit_id"].to_numpy()
    pos = {u: i for i, u in enumerate(uid)}
    seen = set()
    dist = boundary.geometry.union_all()
    for a in res.areas.itertuples():
        members = [pos[u] for u in a.units.split(";")]
        assert not seen & set(members), "a unit in two areas"
        seen |= set(members)
        sub = adj[members][:, members]
        ncomp, _ = connected_components(sub, directed=False)
        assert ncomp == 1, f"{a.area_id} is not contiguous"
        assert lo <= a.population <= hi, (a.area_id, a.population)
        assert a.population == pytest.approx(units.set_index("unit_id").loc[a.units.split(";"), "population"].sum())
        assert shapely.within(a.geometry, shapely.buffer(dist, 0.01))
        assert a.reason and a.score > 0
        if within_town:
            assert len(a.town_codes.split(";")) == 1


@pytest.mark.filterwarnings("ignore:renewal scores. no data:geotijian.errors.PlanWarning")
def test_renewal_areas_are_contiguous_inside_and_within_bounds():
    units, boundary = _units()
    probs = _problems(units)
    res = renewal_areas(units, probs, boundary=boundary)
    assert len(res.areas) >= 2
    _check_areas(res, units, boundary, 5000, 50000)
    # the bad clusters are found: their units sit in areas
    in_area = set(";".join(res.areas["units"]).split(";"))
    assert {"T1-U00", "T1-U01", "T1-U06", "T1-U07"} <= in_area
    # a ceiling of 13,000 splits the clusters into areas of at most two units
    res = renewal_areas(units, probs, boundary=boundary, max_pop=13000)
    _check_areas(res, units, boundary, 5000, 13000)
    assert (res.areas["unit_count"] <= 2).all()
    # a floor above one unit grows single-unit seeds with their best neighbours
    res = renewal_areas(units, probs, boundary=boundary, min_pop=12500, max_pop=30000)
    _check_areas(res, units, boundary, 12500, 30000)
    # a floor no cluster can reach drops them, listed with the reason
    with pytest.warns(PlanWarning, match="clusters left out"):
        res = renewal_areas(units, probs, boundary=boundary, min_pop=1e6, max_pop=2e6)
    assert len(res.areas) == 0 and len(res.dropped) and res.dropped["reason"].str.contains("下限").all()
    # across towns when asked
    res = renewal_areas(units, probs, boundary=boundary, within_town=False)
    _check_areas(res, units, boundary, 5000, 50000, within_town=False)



@pytest.mark.filterwarnings("ignore:renewal scores. no data:geotijian.errors.PlanWarning")
def test_small_areas_never_grow_into_the_same_neighbour():
    """U1 and U3 (3,000 residents each) both need U2 to reach the 5,000 floor: the first
    takes it, the other is dropped and listed (no unit in two areas)."""
    units = gpd.GeoDataFrame({"unit_id": ["U1", "U2", "U3"], "town_code": "T1", "town_name": "西镇",
                              "population": [3000.0, 3000.0, 3000.0]},
                             geometry=[shapely.box(X0 + k * 500, Y0, X0 + (k + 1) * 500, Y0 + 500)
                                       for k in range(3)], crs=CRS)
    probs = pd.DataFrame([{"problem_id": f"cov_kindergarten@{u}", "indicator_code": "cov_kindergarten",
                           "name_zh": "幼儿园", "level": "unit", "area_id": u, "problem_class": "限时解决",
                           "affected_population": 3000.0} for u in ("U1", "U3")])
    with pytest.warns(PlanWarning, match="clusters left out"):
        res = renewal_areas(units, probs, min_pop=5000, max_pop=50000)
    assert res.areas["units"].tolist() == ["U1;U2"]
    assert res.dropped["units"].tolist() == ["U3"] and res.dropped["reason"].str.contains("下限").all()
    area = res.scores.set_index("unit_id")["area_id"]
    assert area["U1"] == area["U2"] == "RA01" and pd.isna(area["U3"])

def test_renewal_scores_use_every_component():
    units, _ = _units()
    probs = _problems(units)
    iv = pd.DataFrame({"level": "unit", "area_id": np.repeat(units["unit_id"].to_numpy(), 3),
                       "code": np.tile(["s_satisfaction", "g_complaint_rate", "g_old_compound_share"], len(units)),
                       "value": np.tile([3.0, 10.0, 50.0], len(units))})
    iv.loc[(iv["area_id"] == "T2-U05") & (iv["code"] == "g_complaint_rate"), "value"] = 40.0
    s = gt.renewal_scores(units, probs, indicator_values=iv).set_index("unit_id")
    assert s.loc["T2-U05", "complaints"] == pytest.approx(1.0)
    assert s.loc["T1-U02", "complaints"] == pytest.approx(0.25)
    assert s["dissatisfaction"].eq(0.5).all() and s["old_compounds"].eq(0.5).all()
    assert s["problems"].max() == pytest.approx(1.0) and s["score"].between(0, 1).all()
    assert set(s["components_used"]) == {"problems;dissatisfaction;complaints;old_compounds"}
    # without survey data the other components carry the score (said in a warning)
    with pytest.warns(PlanWarning, match="no data for dissatisfaction"):
        s2 = gt.renewal_scores(units, probs, indicator_values=iv[iv["code"] != "s_satisfaction"])
    assert (s2["components_used"] == "problems;complaints;old_compounds").all()


# ---------------------------------------------------------------------- project library
@pytest.mark.filterwarnings("ignore:renewal scores. no data:geotijian.errors.PlanWarning")
def test_every_problem_reaches_the_library_with_type_department_and_timing():
    units, boundary = _units()
    probs = _problems(units)
    probs = pd.concat([probs, pd.DataFrame([{
        "problem_id": "zz_unknown@T1-U03", "indicator_code": "zz_unknown", "name_zh": "某特色指标",
        "level": "unit", "area_id": "T1-U03", "problem_class": "尽力解决", "affected_population": 10.0}])])
    areas = renewal_areas(units, probs, boundary=boundary).areas
    lib = project_library(probs, year=2025, units=units, renewal_areas=areas)
    assert set(lib["problem_id"]) == set(probs["problem_id"])
    assert lib["project_id"].is_unique and set(lib["project_type"]) <= set(PROJECT_TYPES)
    by = lib.set_index("project_id")
    u = probs["area_id"].iloc[0]
    assert by.loc[f"cov_kindergarten@{u}/E", "lead_department"] == "区教育局"
    assert by.loc[f"cov_elderly_day_care@{u}/E", "lead_department"] == "区民政局"
    assert by.loc["zz_unknown@T1-U03/M", "lead_department"] == "街镇"   # the catch-all rule
    # timing by class: 限时解决 this year; 长期谋划 study first (this year), works later
    lim = lib[lib["problem_class"] == "限时解决"]
    assert (lim["start_year"] == 2025).all() and (lim["end_year"] == 2025).all()
    long = lib[lib["problem_class"] == "长期谋划"]
    for pid, g in long.groupby("problem_id"):
        assert "规划研究类" in set(g["project_type"]), pid
        assert (g.loc[g["project_type"] == "规划研究类", "start_year"] == 2025).all()
        assert (g.loc[g["project_type"] != "规划研究类", "start_year"] > 2025).all()
    best = lib[(lib["problem_class"] == "尽力解决") & (lib["project_type"] != "规划研究类")]
    assert best["start_year"].between(2025, 2027).all() and (best["end_year"] == 2027).all()
    assert set(best["start_year"]) == {2025, 2026, 2027}
    # priority: ranks follow class then residents
    first = lib.drop_duplicates("problem_id").sort_values("priority_rank")
    order = first["problem_class"].map({"限时解决": 0, "尽力解决": 1, "长期谋划": 2}).to_numpy()
    assert (np.diff(order) >= 0).all()
    # units in renewal areas carry the area
    tagged = lib[(lib["level"] == "unit") & lib["area_id"].isin(set(";".join(areas["units"]).split(";")))]
    assert tagged["renewal_area_id"].str.startswith("RA").all()
    # the annual plan: every project starting in the plan year, 限时解决 included
    ap = annual_plan(lib, year=2025)
    assert set(lim["project_id"]) <= set(ap["project_id"]) and list(ap["seq"]) == list(range(1, len(ap) + 1))


def test_plan_workbook_and_csv_defuse_formula_like_names(tmp_path):
    """A name from the data such as =HYPERLINK(...) is shown as text, never evaluated."""
    from openpyxl import load_workbook

    from geotijian.plan import PlanResult, write_plan

    evil = '=HYPERLINK("http://x","y")'
    probs = pd.DataFrame([{"problem_id": "cov_kindergarten@U1", "indicator_code": "cov_kindergarten",
                           "name_zh": "幼儿园覆盖率", "level": "unit", "area_id": "U1", "area_name": evil,
                           "problem_class": "限时解决", "affected_population": 1234.0}])
    lib = project_library(probs, year=2025)
    res = PlanResult(year=2025, renewal=None, siting={}, projects=lib, annual=annual_plan(lib, year=2025))
    write_plan(res, tmp_path)
    ws = load_workbook(tmp_path / "project_library.xlsx")["更新项目储备库"]
    head = [c.value for c in ws[1]]
    cell = ws.cell(row=2, column=head.index("区域") + 1)
    assert cell.value == evil and cell.data_type == "s" and cell.quotePrefix
    assert not any(c.data_type == "f" for row in ws.iter_rows() for c in row)
    text = (tmp_path / "projects.csv").read_text(encoding="utf-8-sig")
    assert "'" + evil.replace('"', '""') in text

@pytest.mark.filterwarnings("ignore:renewal scores. no data:geotijian.errors.PlanWarning")
def test_plan_workbook_has_the_bytes_of_the_cell_by_cell_writer(tmp_path):
    """The workbook written as arrays is, byte for byte, the one openpyxl wrote cell by cell
    (tests/plan_workbook_reference.py): formula-like and error-code text, a lone "=",
    number-like text, missing values, long texts, an empty sheet, the solver sheet."""
    from geotijian.plan import PlanResult, write_plan

    from .plan_workbook_reference import write_plan_reference

    units, boundary = _units()
    ren = renewal_areas(units, _problems(units), boundary=boundary)
    net, homes, fac, cand = _line_case()
    sit = _site(net, homes, fac, cand, objective="mclp", p=2)
    lib = project_library(_problems(units), year=2025, units=units, renewal_areas=ren.areas)
    assert len(lib) >= 6
    lib.loc[lib.index[0], "area_name"] = '=HYPERLINK("http://x","y")'
    lib.loc[lib.index[1], "content"] = "#N/A"
    lib.loc[lib.index[2], "partners"] = "-5"
    lib.loc[lib.index[3], "timing"] = None
    lib.loc[lib.index[4], "lead_department"] = "="
    lib.loc[lib.index[5], "affected_population"] = np.nan
    lib.loc[lib.index[5], "content"] = "长文本，" * 60 + " trailing space "
    for annual in (annual_plan(lib, year=2025), annual_plan(lib, year=2025).iloc[:0]):
        res = PlanResult(year=2025, renewal=ren, siting={"kindergarten": sit}, projects=lib, annual=annual)
        (tmp_path / "new").mkdir(exist_ok=True)
        (tmp_path / "old").mkdir(exist_ok=True)
        new = write_plan(res, tmp_path / "new")[0]
        old = write_plan_reference(res, tmp_path / "old")
        assert new.name == "project_library.xlsx"
        assert new.read_bytes() == old.read_bytes()


@pytest.mark.filterwarnings("ignore:renewal scores. no data:geotijian.errors.PlanWarning")
def test_plan_workbook_number_formats(tmp_path):
    """Residents with a thousands separator, scores and areas with fixed decimals, site
    coordinates to 0.1 m, whole numbers on the (transposed) solver sheet with separators."""
    from openpyxl import load_workbook

    from geotijian.plan import PlanResult, write_plan

    units, boundary = _units()
    ren = renewal_areas(units, _problems(units), boundary=boundary)
    net, homes, fac, cand = _line_case()
    sit = _site(net, homes, fac, cand, objective="mclp", p=2)
    lib = project_library(_problems(units), year=2025, units=units, renewal_areas=ren.areas)
    res = PlanResult(year=2025, renewal=ren, siting={"kindergarten": sit}, projects=lib,
                     annual=annual_plan(lib, year=2025))
    write_plan(res, tmp_path)
    wb = load_workbook(tmp_path / "project_library.xlsx")

    def fmt(sheet, header):
        ws = wb[sheet]
        j = [c.value for c in ws[1]].index(header)
        return {ws.cell(row=i, column=j + 1).number_format for i in range(2, ws.max_row + 1)}

    assert fmt("更新片区", "面积(公顷)") == {"#,##0.00"} and fmt("更新片区", "更新评分") == {"0.000"}
    assert fmt("更新片区", "常住人口(人)") == {"#,##0"} and fmt("新增设施选址", "X坐标(米)") == {"0.0"}
    ws = wb["选址求解说明"]
    rows = {r[0].value: r[1] for r in ws.iter_rows(min_row=2)}
    assert rows["居民(人)"].value == 740 and rows["居民(人)"].number_format == "#,##0"
    assert rows["模型"].number_format == "General"
    # every data cell wrapped, top-aligned (a column's cells share its first cell's style)
    for sheet in wb.sheetnames:
        assert all(c.alignment.wrap_text and c.alignment.vertical == "top"
                   for row in wb[sheet].iter_rows(min_row=2) for c in row), sheet


@pytest.mark.filterwarnings("ignore:renewal scores. no data:geotijian.errors.PlanWarning")
def test_library_lists_the_new_sites_and_accepts_grouped_problems():
    units, _ = _units()
    u0, u1 = units["unit_id"].iloc[0], units["unit_id"].iloc[1]
    probs = pd.DataFrame([
        {"problem_id": f"cov_kindergarten@{u0}", "indicator_code": "cov_kindergarten", "name_zh": "幼儿园覆盖率",
         "level": "unit", "area_id": u0, "problem_class": "限时解决", "affected_population": 3000.0},
        # issue-20 grouping: one problem per indicator and level, its units as 问题点位
        {"problem_id": "cov_nursery@unit", "indicator_code": "cov_nursery", "name_zh": "托育覆盖率",
         "level": "unit", "area_id": "district", "problem_class": "尽力解决", "affected_population": 5000.0,
         "points": [u0, u1]},
    ])
    sites = pd.DataFrame({"site_id": ["kindergarten-01", "kindergarten-02"], "facility_type": "kindergarten",
                          "residents_covered": [1500.0, 900.0]})
    assign = pd.DataFrame({"home_id": ["a", "b", "c"], "unit_id": [u0, u0, u1],
                           "facility_type": "kindergarten", "site_id": ["kindergarten-01", "kindergarten-02",
                                                                        "kindergarten-01"],
                           "residents": [1000.0, 900.0, 500.0]})
    lib = project_library(probs, year=2025, units=units, sites=sites, assignment=assign).set_index("project_id")
    e = lib.loc[f"cov_kindergarten@{u0}/E"]
    assert e["site_ids"] == "kindergarten-01;kindergarten-02" and e["site_count"] == 2
    assert e["site_residents"] == pytest.approx(1900.0)
    assert "kindergarten-01(覆盖本区域1,000人/共1,500人)" in e["content"]
    assert lib.loc[f"cov_kindergarten@{u0}/M", "site_ids"] == ""
    assert lib.loc["cov_nursery@unit/E", "lead_department"] == "区卫健委"
    # the grouped row counts in both of its units for the renewal score
    s = gt.renewal_scores(units, probs).set_index("unit_id")
    assert s.loc[u1, "problem_count"] == 1 and s.loc[u0, "problem_count"] == 2


def test_project_rules_override_and_errors(tmp_path):
    p = tmp_path / "r.csv"
    pd.DataFrame([{"pattern": "cov_kindergarten", "lead_department": "镇教委"}]).to_csv(p, index=False)
    r = project_rules(p)
    assert r.set_index("pattern").loc["cov_kindergarten", "lead_department"] == "镇教委"
    with pytest.raises(ConfigError, match="unknown project type"):
        project_rules([{"pattern": "x_*", "project_types": "工程", "engineering": "t"}])
    with pytest.raises(ConfigError, match="no content template"):
        project_rules([{"pattern": "x_*", "project_types": "工程类"}])  # the catch-all has no 工程类 text


@pytest.mark.parametrize("edition", ["2024", "2023"])
def test_every_edition_indicator_has_its_own_rule_and_department(edition):
    """Every indicator of a packaged edition gets a rule of its own (not the catch-all),
    led by the department the edition names as its supplier; every template renders."""
    from geotijian import data

    ed = pd.read_csv(data.path(f"editions/{edition}.csv"), dtype=str, keep_default_na=False)
    probs = pd.DataFrame({"problem_id": ed["code"] + "@D", "indicator_code": ed["code"], "name_zh": ed["name_zh"],
                          "level": "district", "area_id": "D", "value": 0.5, "reference": "1",
                          "problem_class": "长期谋划", "affected_population": 1000.0})
    lib = project_library(probs, year=2025, district_name="测试区")
    assert set(lib["problem_id"]) == set(probs["problem_id"])
    assert not (lib["rule"] == "*").any(), sorted(lib.loc[lib["rule"] == "*", "indicator_code"])
    alias = {"区卫生健康委": "区卫健委", "区建设管理委": "区建管委"}  # the rule table's short names
    sup = ed.set_index("code")["supplier"].map(lambda s: alias.get(s, s))
    named = lib["indicator_code"].map(sup).pipe(lambda s: s[~s.isin(["", "community", "town"])])
    assert len(named) > 20
    assert (lib.loc[named.index, "lead_department"] == named).all()
    assert lib["content"].str.len().gt(4).all() and not lib["content"].str.contains("{", regex=False).any()


# ----------------------------------------------------------------------------- map layers
@pytest.mark.filterwarnings("ignore:renewal scores. no data:geotijian.errors.PlanWarning")
def test_plan_layers_on_the_problem_map():
    from geotijian.model import StudyData
    from geotijian.report import problem_map, render_problem_map

    units, boundary = _units()
    probs = _problems(units)
    areas = renewal_areas(units, probs, boundary=boundary).areas
    sites = gpd.GeoDataFrame({"site_id": ["kindergarten-01", "kindergarten-02"], "facility_type": "kindergarten",
                              "facility_name_zh": "幼儿园", "candidate_id": ["N1", "N2"],
                              "unit_id": units["unit_id"].iloc[:2].to_numpy(), "residents_covered": [1200.0, 800.0],
                              "homes_covered": [3, 2], "residents_in_reach": [1500.0, 900.0]},
                             geometry=[shapely.Point(X0 + 250, Y0 + 250), shapely.box(X0 + 600, Y0 + 100,
                                                                                      X0 + 700, Y0 + 200)], crs=CRS)

    def build():
        study = StudyData(name="t", boundary=boundary, units=units.assign(area_ha=25.0), renewal_areas=areas,
                          new_sites=sites, projects=None)
        return render_problem_map(problem_map(study))  # (a study with a plan: drawn in 更新规划)

    html = build()
    assert html == build(), "the map HTML must be identical run to run"
    from geotijian.report._leaflet import js_json

    assert js_json(f"更新片区 ({len(areas)})") in html       # (layer names as the page's JSON writes them)
    assert js_json("新增设施选址: 幼儿园 (2)") in html
    assert "kindergarten-01" in html and "gtjSiteDots({" in html
    # both layers filed under their own heading of the grouped layer control, after 问题
    m = re.search(r'\["更新规划", \[([^\]]*)\]\]', html)
    assert m and len(m.group(1).split(", ")) == 2
    assert html.index('["评估单元", [') < m.start()
    assert "<h4>更新规划</h4>" in html   # in the map's one legend
    # the layer control is created after the layers it lists
    assert html.rindex("L.control.layers") > html.rindex("kindergarten-02")
    # plan=False leaves it out
    plain = render_problem_map(problem_map(StudyData(name="t", boundary=boundary, units=units.assign(area_ha=25.0),
                                                     renewal_areas=areas, new_sites=sites), plan=False))
    assert "更新规划" not in plain and "gtjSiteDots({" not in plain


def test_cli_site_writes_the_sites_and_says_the_gap(tmp_path, capsys):
    from geotijian.cli import main

    net, homes, fac, cand = _line_case()
    roads = gpd.GeoDataFrame({"road_id": [f"R{i}" for i in range(net.n_edges)], "highway": "residential"},
                             geometry=net.edge_geometry, crs=CRS)
    f = tmp_path / "in.gpkg"
    roads.to_file(f, layer="roads")
    homes.rename(columns={"home_id": "pop_id"}).to_file(f, layer="population")
    fac.assign(name="k").to_file(f, layer="facilities")
    cand.assign(name="p").to_file(f, layer="sites")
    out = tmp_path / "sites.gpkg"
    args = ["site", "--network", str(f), "--network-layer", "roads", "--homes", str(f), "--homes-layer",
            "population", "--homes-role", "population", "--facilities", str(f), "--facilities-layer", "facilities", "--type", "kindergarten",
            "--candidates", str(f), "--candidates-layer", "sites", "--out", str(out)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # the catalogue's 300 m: H300 (150 m off the street) is reachable too
        assert main(args + ["--p", "2"]) == 0
    text = capsys.readouterr().out
    assert "optimal" in text and "gap 0.0000%" in text and "limit 30 s" in text
    import pyogrio

    assert set(pyogrio.list_layers(out)[:, 0]) == {"new_sites", "candidate_sites", "unreachable_homes",
                                                   "site_assignment"}
    assert len(gpd.read_file(out, layer="new_sites")) == 2
    # bad input: exit code 2 and one line naming the problem
    assert main(args[:-2] + ["--candidates-layer", "sites", "--out", str(out), "--p", "0"]) == 2
    assert "config key 'p'" in capsys.readouterr().err


def test_grouped_problems_reach_their_units_by_level():
    """Issue 20's grouped problems: a unit-level problem's points are units, a town-level
    problem's points towns (their units), a district problem every unit; a project lists the
    towns its problem lies in."""
    from geotijian.plan import problem_units

    units = pd.DataFrame({"unit_id": ["T1-U1", "T1-U2", "T2-U1"], "town_code": ["T1", "T1", "T2"]})
    probs = pd.DataFrame({"problem_id": ["a@unit", "a@town", "a@district"], "level": ["unit", "town", "district"],
                          "area_id": ["district"] * 3, "points": ["T1-U2;T2-U1", "T1", "district"]})
    pu = problem_units(probs, units).groupby("problem_id")["unit_id"].apply(sorted).to_dict()
    assert pu == {"a@unit": ["T1-U2", "T2-U1"], "a@town": ["T1-U1", "T1-U2"],
                  "a@district": ["T1-U1", "T1-U2", "T2-U1"]}
    lib = project_library(probs.assign(indicator_code="cov_kindergarten", problem_class="限时解决",
                                       affected_population=100.0, name_zh="幼儿园覆盖率"),
                          units=units.assign(town_name=["甲镇", "甲镇", "乙镇"]), year=2025, district_name="测试区")
    towns = lib.drop_duplicates("problem_id").set_index("problem_id")["town_code"]
    assert towns["a@unit"] == "T1;T2" and towns["a@town"] == "T1" and towns["a@district"] == ""
