"""Gi* of the renewal plan (geotijian.plan.gistar) against esda and an exact enumeration."""

from __future__ import annotations

import itertools
import time
import warnings

import numpy as np
import pytest
from scipy.sparse import csr_matrix

from geotijian.plan.gistar import gi_star


def _random_adjacency(n: int, seed: int) -> csr_matrix:
    rng = np.random.default_rng(seed)
    pts = rng.random((n, 2))
    d = np.hypot(*(pts[:, None, :] - pts[None, :, :]).transpose(2, 0, 1))
    a = (d < 0.18) & ~np.eye(n, dtype=bool)
    return csr_matrix(a | a.T, dtype=float)


@pytest.mark.parametrize("seed", [1, 2])
def test_statistic_and_z_equal_esda(seed):
    esda = pytest.importorskip("esda")
    from libpysal.weights import W

    a = _random_adjacency(120, seed)
    y = np.random.default_rng(seed).gamma(2.0, 1.0, 120)
    ours = gi_star(y, a, permutations=0)
    neigh = {i: a.indices[a.indptr[i]:a.indptr[i + 1]].tolist() for i in range(120)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = esda.G_Local(y, W(neigh, silence_warnings=True), transform="B", permutations=0, star=1.0)
    np.testing.assert_allclose(ours["G"], ref.Gs, rtol=1e-12)
    np.testing.assert_allclose(ours["EG"], ref.EGs, rtol=1e-12)
    np.testing.assert_allclose(ours["VG"], ref.VGs, rtol=1e-12)
    np.testing.assert_allclose(ours["z"], ref.Zs, rtol=1e-10)
    assert np.isnan(ours["p_sim"]).all()


def _exact_folded_p(y: np.ndarray, a: csr_matrix) -> np.ndarray:
    """Every subset of k_i of the other units: the share at least as large, folded."""
    n = len(y)
    out = np.empty(n)
    for i in range(n):
        k = a.indptr[i + 1] - a.indptr[i]
        obs = y[i] + y[a.indices[a.indptr[i]:a.indptr[i + 1]]].sum()
        others = np.delete(y, i)
        sums = np.array([y[i] + others[list(s)].sum() for s in itertools.combinations(range(n - 1), k)])
        q = np.mean(sums >= obs - 1e-12)
        out[i] = min(q, 1.0 - q)
    return out


def test_pseudo_p_matches_exact_enumeration():
    n = 9
    a = _random_adjacency(n, 7)
    a = csr_matrix(np.maximum(a.toarray(), np.eye(n, k=1) + np.eye(n, k=-1)))  # a chain: no island
    y = np.array([9.0, 7.5, 1.0, 0.5, 3.0, 2.0, 8.0, 0.2, 4.4])
    got = gi_star(y, a, permutations=20_000, seed=11)["p_sim"]
    want = _exact_folded_p(y, a)
    # Monte Carlo error of 20,000 draws: standard error <= 0.0035
    np.testing.assert_allclose(got, want, atol=0.015)


def test_deterministic_islands_and_fast():
    a = _random_adjacency(300, 3).tolil()
    a[0, :] = 0
    a[:, 0] = 0
    a = a.tocsr()
    a.eliminate_zeros()
    y = np.random.default_rng(5).gamma(2.0, 1.0, 300)
    t = time.process_time()
    one = gi_star(y, a, permutations=999, seed=42)
    took = time.process_time() - t
    two = gi_star(y, a, permutations=999, seed=42)
    np.testing.assert_array_equal(one["p_sim"], two["p_sim"])
    assert not np.array_equal(one["p_sim"], gi_star(y, a, permutations=999, seed=43)["p_sim"])
    assert np.isnan(one["p_sim"][0]) and np.isfinite(one["p_sim"][1:]).all()
    assert ((one["p_sim"][1:] >= 1 / 1000) & (one["p_sim"][1:] <= 0.5 + 1e-9)).all()
    # a district's ~300 units: esda's numba engine took ~38 s to compile on this machine
    assert took < 2.0, took
