"""Coverage location models (MCLP, LSCP, with or without capacity) as exact MILPs.

The geography lives in :mod:`geotijian.plan.siting`; this module sees only a coverage
matrix (demand rows × candidate columns, ``True`` where the candidate is within the
walking distance of the demand), demand weights (residents) and optional capacities.

Solver: scipy's HiGHS (:func:`scipy.optimize.milp`). Chosen because scipy is already a
dependency (no new package, no external binary as PuLP/CBC needs, no 100 MB wheel as
OR-Tools), HiGHS is a maintained, exact branch-and-cut solver with a time limit and a
relative gap, and its result carries the dual bound and the achieved gap, which are
reported with every answer. HiGHS' own presolve is off by default: the reductions below
do the work that matters here, and on the Jiading-scale kindergarten model (11,527 rows,
8,404 columns) HiGHS' presolve took 17 s of an 18 s solve, against 0.8 s without it
(same optimum).

Exact reductions (each keeps every optimal value; tested against the unreduced model):

* **duplicate columns**: candidates covering the same demand set (common along one
  street) keep one, the lowest index;
* **dominated columns**: a candidate whose demand set is inside another's is never
  needed: any solution using it does as well with the other. (Both column reductions
  are skipped with capacities: two sites with one demand set serve twice the demand.)
* **identical rows**: demand rows with the same candidate set become one row whose
  weight (and demand) is the sum;
* **dominated rows** (LSCP without capacity only): a row whose set contains another
  row's set is covered whenever that row is.

A greedy answer (largest marginal weight first) is computed too, only as a labelled
comparison (``greedy_objective``) and as the answer of last resort when the solver finds
no solution within the time limit, in which case the result says so. With capacities,
:func:`solve_capacitated` first solves the model without them (exact, fast) and keeps its
answer when a transportation LP shows its sites serve everyone they cover; else the
capacitated MILP runs, and a capacitated greedy answer replaces its time-limited one only
when better, labelled ``greedy`` (or ``optimal`` when the MILP's bound proves it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy.optimize import Bounds, LinearConstraint, milp

from .. import settings
from .._kernels.sets import column_hash, same_columns

__all__ = ["CoverageModel", "Solution", "reduce_model", "solve_mclp", "solve_lscp", "solve_capacitated",
           "greedy", "greedy_capacitated"]

_LINK_MAX_PAIRS = 20_000
_HIGHS_STATUS = {0: "optimal", 1: "time_limit", 2: "infeasible", 3: "unbounded", 4: "error"}


@dataclass
class CoverageModel:
    """A coverage matrix after the exact reductions, with the maps back to the input.

    Attributes
    ----------
    cover : scipy.sparse.csr_matrix of bool
        Reduced rows × reduced columns.
    weight : ndarray
        Weight of each reduced row (residents).
    demand : ndarray or None
        Demand of each reduced row (persons of demand: residents × demand share).
    capacity : ndarray or None
        Capacity of each reduced column.
    row_of : ndarray of int
        Reduced row of each input row (-1: input row with no candidate).
    columns : ndarray of int
        Input column of each reduced column.
    stats : dict
        Sizes before and after each reduction.
    """

    cover: sp.csr_matrix
    weight: np.ndarray
    demand: np.ndarray | None
    capacity: np.ndarray | None
    row_of: np.ndarray
    columns: np.ndarray
    stats: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return self.cover.shape


@dataclass
class Solution:
    """The answer of one model: chosen input columns and how good the answer is.

    ``status`` is ``optimal`` (solved to within ``mip_rel_gap``), ``time_limit`` (best
    solution when the time limit struck; ``gap`` says how far it may be from the
    optimum), ``greedy`` (the solver found no solution in time: greedy answer, not
    optimal), ``infeasible`` or ``empty`` (nothing to decide).
    """

    chosen: np.ndarray
    objective: float
    bound: float
    gap: float
    status: str
    solver: str
    solve_s: float
    time_limit_s: float
    mip_rel_gap: float
    nodes: int = 0
    greedy_objective: float = float("nan")
    share: sp.csr_matrix | None = None  # capacitated: reduced rows × reduced columns, share served


# ----------------------------------------------------------------------------- hashing
def _set_hash(mat: sp.csc_matrix, rng: np.random.Generator) -> np.ndarray:
    """Two 64-bit hashes of each column's row set (sums of a random word per row, modulo
    2**64) and its size, as the columns of a uint64 array."""
    out = []
    for _ in range(2):
        r = rng.integers(0, 2**63, mat.shape[0], dtype=np.uint64)
        out.append(column_hash(mat.indptr, mat.indices, r))
    return np.column_stack(out + [np.diff(mat.indptr).astype(np.uint64)])


def _same_sets(mat: sp.csc_matrix, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Whether column ``a[i]`` of ``mat`` holds the same rows as column ``b[i]`` (stored
    entries, compared one by one in sorted order)."""
    if not mat.has_canonical_format:
        mat = mat.copy()
        mat.sum_duplicates()
    return same_columns(mat.indptr, mat.indices, a, b)


def _duplicate_groups(mat: sp.csc_matrix, order_key: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray]:
    """Representative of each column (first of its set in ``order_key`` order) and a
    mask of the representatives. Hash groups are verified exactly: a column whose set
    differs from its group's representative keeps itself."""
    n = mat.shape[1]
    if n == 0:
        return np.zeros(0, np.int64), np.zeros(0, bool)
    key = _set_hash(mat, np.random.default_rng(settings.random_seed))
    pref = np.arange(n) if order_key is None else np.lexsort((np.arange(n), order_key))
    rank = np.empty(n, np.int64)
    rank[pref] = np.arange(n)
    # by the first hash, ties by rank (one stable sort); the full key decides only when two
    # different sets share the first hash (then the lexsort of the whole key, as always)
    order = pref[np.argsort(key[pref, 0], kind="stable")]
    k = key[order]
    tie = k[1:, 0] == k[:-1, 0]
    if (tie & (k[1:, 1:] != k[:-1, 1:]).any(axis=1)).any():
        order = np.lexsort((rank, key[:, 2], key[:, 1], key[:, 0]))
        k = key[order]
    start = np.r_[True, (k[1:] != k[:-1]).any(axis=1)]
    grp = np.cumsum(start) - 1
    rep_sorted = order[np.flatnonzero(start)][grp]
    rep = np.empty(n, np.int64)
    rep[order] = rep_sorted
    moved = np.flatnonzero(rep != np.arange(n))
    if len(moved):  # exact check of every merge (hash collisions would keep the column)
        bad = moved[~_same_sets(mat, moved, rep[moved])]
        rep[bad] = bad
    return rep, rep == np.arange(n)


# ---------------------------------------------------------------------------- reduction
def reduce_model(cover: sp.csr_matrix, weight: np.ndarray, *, demand: np.ndarray | None = None,
                 capacity: np.ndarray | None = None, objective: str = "mclp") -> CoverageModel:
    """Apply the exact reductions (module docstring) to a coverage matrix.

    Parameters
    ----------
    cover : sparse matrix
        Input rows (demand) × input columns (candidates); nonzero = covered.
    weight : ndarray
        Residents of each input row.
    demand, capacity : ndarray, optional
        Persons of demand per row and capacity per column (capacitated models).
    objective : {"mclp", "lscp"}
    """
    B = sp.csr_matrix(cover, dtype=bool, copy=True)
    B.eliminate_zeros()
    n_rows, n_cols = B.shape
    stats = {"rows_in": n_rows, "columns_in": n_cols, "pairs_in": int(B.nnz)}
    rows = np.flatnonzero(np.diff(B.indptr) > 0)
    cols = np.flatnonzero(np.bincount(B.indices, minlength=n_cols) > 0)
    if len(rows) < n_rows:
        B = B[rows]
    if len(cols) < n_cols:
        B = B[:, cols]
    cap = None if capacity is None else np.asarray(capacity, float)[cols]
    stats["rows_without_candidate"] = int(n_rows - len(rows))
    stats["columns_without_demand"] = int(n_cols - len(cols))
    C = B.tocsc()
    if cap is None:  # (with capacities two sites of one demand set serve twice the demand)
        # duplicate columns: the lowest index of each demand set
        _, keep = _duplicate_groups(C)
        C = C[:, keep]
        cols = cols[keep]
        stats["columns_after_duplicates"] = int(C.shape[1])
        # dominated columns: S_j strictly inside S_k
        Ci = C.astype(np.int32)
        O = (Ci.T @ Ci).tocoo()
        size = np.diff(C.indptr)
        j, k, v = O.row, O.col, O.data
        dom = (j != k) & (v == size[j]) & (size[k] > size[j])
        keep = np.ones(C.shape[1], bool)
        keep[np.unique(j[dom])] = False
        C = C[:, keep]
        cols = cols[keep]
    stats["columns_after_duplicates"] = stats.get("columns_after_duplicates", int(C.shape[1]))
    stats["columns_after_dominance"] = int(C.shape[1])
    # identical rows
    R = C.tocsr()
    rep, first = _duplicate_groups(R.T.tocsc())
    new_id = np.cumsum(first) - 1
    row_red = new_id[rep]
    w = np.bincount(row_red, weights=np.asarray(weight, float)[rows], minlength=int(first.sum()))
    dem = None if demand is None else np.bincount(
        row_red, weights=np.asarray(demand, float)[rows], minlength=int(first.sum()))
    R = R[np.flatnonzero(first)]
    stats["rows_after_merge"] = int(R.shape[0])
    row_of = np.full(n_rows, -1, np.int64)
    row_of[rows] = row_red
    if objective == "lscp" and demand is None:
        # a row containing another row's set is covered whenever that row is
        Ri = R.astype(np.int32)
        O = (Ri @ Ri.T).tocoo()
        rsize = np.diff(R.indptr)
        i, k, v = O.row, O.col, O.data
        red = (i != k) & (v == rsize[k]) & (rsize[i] > rsize[k])
        drop = np.unique(i[red])
        keepr = np.ones(R.shape[0], bool)
        keepr[drop] = False
        # dropped rows map to -2: covered whenever a kept row is (not a row of the model)
        remap = np.full(R.shape[0], -2, np.int64)
        remap[keepr] = np.arange(int(keepr.sum()))
        row_of[rows] = remap[row_red]
        R = R[keepr]
        w = w[keepr]
        stats["rows_after_dominance"] = int(R.shape[0])
    stats["pairs_model"] = int(R.nnz)
    return CoverageModel(R.tocsr(), w, dem, cap, row_of, cols, stats)


# ------------------------------------------------------------------------------- greedy
def greedy(model: CoverageModel, *, p: int | None = None) -> tuple[np.ndarray, float]:
    """Greedy answer (not optimal; labelled as such wherever it is shown).

    MCLP: ``p`` times the column with the largest uncovered weight. LSCP: the column
    covering most uncovered rows until every row is covered. Capacities are ignored
    (the greedy value of a capacitated model is an upper bound on what it serves).
    Returns the reduced columns chosen and the objective value (weight covered, or the
    number of sites).
    """
    B = model.cover.tocsc().astype(np.float64)
    nr, nc = B.shape
    if nr == 0 or nc == 0:
        return np.zeros(0, np.int64), 0.0
    open_w = model.weight.astype(float).copy() if p is not None else np.ones(nr)
    chosen: list[int] = []
    Bt = B.T.tocsr()
    limit = p if p is not None else nc
    while len(chosen) < limit:  # (one sparse product per chosen site)
        gain = Bt @ open_w
        if len(chosen):
            gain[chosen] = -1.0
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        chosen.append(j)
        open_w[B.indices[B.indptr[j]:B.indptr[j + 1]]] = 0.0
    ch = np.array(sorted(chosen), np.int64)
    if p is None:
        return ch, float(len(ch))
    covered = np.asarray(B[:, ch].sum(axis=1)).ravel() > 0
    return ch, float(model.weight[covered].sum())


# ------------------------------------------------------------------------------ solving
def _options(time_limit_s: float | None, mip_rel_gap: float | None, presolve: bool) -> dict:
    return {"time_limit": float(settings.siting_time_limit_s if time_limit_s is None else time_limit_s),
            "mip_rel_gap": float(settings.siting_mip_rel_gap if mip_rel_gap is None else mip_rel_gap),
            "presolve": bool(presolve), "disp": False}


def _run(c, constraints, integrality, bounds, opts) -> tuple:
    t = time.perf_counter()
    res = milp(c, constraints=constraints, integrality=integrality, bounds=bounds, options=opts)
    return res, time.perf_counter() - t


def _pairs_structure(B: sp.csr_matrix) -> tuple[np.ndarray, np.ndarray]:
    coo = B.tocoo()
    order = np.lexsort((coo.col, coo.row))
    return coo.row[order].astype(np.int64), coo.col[order].astype(np.int64)


def solve_mclp(model: CoverageModel, p: int, *, time_limit_s: float | None = None,
               mip_rel_gap: float | None = None, presolve: bool = False) -> Solution:
    """Maximal covering: at most ``p`` sites covering the most weight (residents).

    Without capacity: ``max Σ w_i y_i`` s.t. ``y_i ≤ Σ_j a_ij x_j``, ``Σ x_j ≤ p``,
    ``x`` binary, ``0 ≤ y ≤ 1``. With capacity (``model.capacity``, demand
    ``model.demand``): continuous shares ``z_ij`` of row i served by site j,
    ``max Σ w_i Σ_j z_ij`` s.t. ``Σ_j z_ij ≤ 1``, ``Σ_i d_i z_ij ≤ c_j x_j``,
    ``z_ij ≤ x_j``, ``Σ x_j ≤ p``. Returns reduced column indices in ``chosen``.
    """
    opts = _options(time_limit_s, mip_rel_gap, presolve)
    B = model.cover
    nr, nc = B.shape
    gch, gval = greedy(model, p=p)
    if nr == 0 or nc == 0 or p <= 0:
        return Solution(np.zeros(0, np.int64), 0.0, 0.0, 0.0, "empty", "none", 0.0,
                        opts["time_limit"], opts["mip_rel_gap"], greedy_objective=gval)
    Bf = B.astype(np.float64)
    if model.capacity is None:
        c = np.concatenate([np.zeros(nc), -model.weight])
        A = sp.vstack([sp.hstack([-Bf, sp.identity(nr, format="csr")]),
                       sp.hstack([sp.csr_matrix(np.ones((1, nc))), sp.csr_matrix((1, nr))])]).tocsr()
        lb = np.r_[np.full(nr, -np.inf), -np.inf]
        ub = np.r_[np.zeros(nr), float(p)]
        integ = np.r_[np.ones(nc), np.zeros(nr)]
        res, dt = _run(c, LinearConstraint(A, lb, ub), integ, Bounds(0, 1), opts)
        share = None
    else:
        res, dt, share = _capacitated(model, opts, p=p)
    return _solution(res, dt, nc, opts, gch, gval, maximise=True, share=share)


def solve_lscp(model: CoverageModel, *, time_limit_s: float | None = None,
               mip_rel_gap: float | None = None, presolve: bool = False) -> Solution:
    """Location set covering: the fewest sites covering every row of the model.

    Without capacity: ``min Σ x_j`` s.t. ``Σ_j a_ij x_j ≥ 1``. With capacity: every
    row fully served, ``Σ_j z_ij = 1``, ``Σ_i d_i z_ij ≤ c_j x_j``, ``z_ij ≤ x_j``.
    """
    opts = _options(time_limit_s, mip_rel_gap, presolve)
    B = model.cover
    nr, nc = B.shape
    gch, gval = greedy(model)
    if nr == 0:
        return Solution(np.zeros(0, np.int64), 0.0, 0.0, 0.0, "empty", "none", 0.0,
                        opts["time_limit"], opts["mip_rel_gap"], greedy_objective=0.0)
    if model.capacity is None:
        res, dt = _run(np.ones(nc), LinearConstraint(B.astype(np.float64), 1, np.inf),
                       np.ones(nc), Bounds(0, 1), opts)
        share = None
    else:
        res, dt, share = _capacitated(model, opts, p=None)
    return _solution(res, dt, nc, opts, gch, gval, maximise=False, share=share)


def _capacitated(model: CoverageModel, opts: dict, *, p: int | None) -> tuple:
    """The capacitated MCLP (``p`` given) or LSCP as one MILP; returns (res, seconds, share)."""
    B = model.cover
    nr, nc = B.shape
    pi, pj = _pairs_structure(B)
    npair = len(pi)
    d = model.demand
    cap = model.capacity
    # variables: x (nc) | z (npair)
    rows_z = sp.csr_matrix((np.ones(npair), (pi, nc + np.arange(npair))), shape=(nr, nc + npair))
    cap_rows = sp.csr_matrix((np.r_[-cap, d[pi]], (np.r_[np.arange(nc), pj],
                                                    np.r_[np.arange(nc), nc + np.arange(npair)])),
                             shape=(nc, nc + npair))
    link = sp.csr_matrix((np.r_[np.ones(npair), -np.ones(npair)],
                          (np.r_[np.arange(npair), np.arange(npair)],
                           np.r_[nc + np.arange(npair), pj])), shape=(npair, nc + npair))
    # z_ij ≤ x_j tightens the relaxation but adds a row per pair: beyond _LINK_MAX_PAIRS the
    # root LP alone outlasts a 30 s limit (sample district: 125,000 pairs), while without
    # them it solves and gives the capacity bound (p × places)
    link_rows = npair <= _LINK_MAX_PAIRS
    blocks = [rows_z, cap_rows] + ([link] if link_rows else [])
    lbs = [np.full(nr, 1.0 if p is None else -np.inf), np.full(nc, -np.inf)] + \
        ([np.full(npair, -np.inf)] if link_rows else [])
    ubs = [np.full(nr, 1.0), np.zeros(nc)] + ([np.zeros(npair)] if link_rows else [])
    if p is not None:
        blocks.append(sp.csr_matrix((np.ones(nc), (np.zeros(nc, np.int64), np.arange(nc))),
                                    shape=(1, nc + npair)))
        lbs.append(np.array([-np.inf]))
        ubs.append(np.array([float(p)]))
        c = np.r_[np.zeros(nc), -model.weight[pi]]
    else:
        c = np.r_[np.ones(nc), np.zeros(npair)]
    A = sp.vstack(blocks).tocsr()
    integ = np.r_[np.ones(nc), np.zeros(npair)]
    res, dt = _run(c, LinearConstraint(A, np.concatenate(lbs), np.concatenate(ubs)), integ,
                   Bounds(0, 1), opts)
    share = None
    if res.x is not None:
        z = np.clip(res.x[nc:], 0.0, 1.0)
        share = sp.csr_matrix((z, (pi, pj)), shape=(nr, nc))
    return res, dt, share


def _solution(res, dt: float, nc: int, opts: dict, gch: np.ndarray, gval: float, *,
              maximise: bool, share) -> Solution:
    status = _HIGHS_STATUS.get(int(res.status), "error")
    sign = -1.0 if maximise else 1.0
    nodes = int(getattr(res, "mip_node_count", 0) or 0)
    if res.x is not None and status in ("optimal", "time_limit"):
        x = res.x[:nc]
        chosen = np.flatnonzero(x > 0.5)
        obj = sign * float(res.fun)
        bound = sign * float(getattr(res, "mip_dual_bound", res.fun))
        gap = float(getattr(res, "mip_gap", 0.0) or 0.0)
        if status == "optimal":
            gap = max(0.0, gap)
        return Solution(chosen, obj, bound, gap, status, "HiGHS (scipy.optimize.milp)", dt,
                        opts["time_limit"], opts["mip_rel_gap"], nodes, gval, share)
    if status == "time_limit":  # no solution in time: the greedy answer, said so
        bound = getattr(res, "mip_dual_bound", None)
        bound = sign * float(bound) if bound is not None and np.isfinite(bound) else float("nan")
        gap = abs(bound - gval) / max(abs(gval), 1e-9) if np.isfinite(bound) else float("nan")
        return Solution(gch, gval, bound, gap, "greedy", "greedy (no MILP solution within the time "
                        "limit; not optimal)", dt, opts["time_limit"], opts["mip_rel_gap"], nodes, gval)
    return Solution(np.zeros(0, np.int64), float("nan"), float("nan"), float("nan"), status,
                    "HiGHS (scipy.optimize.milp)", dt, opts["time_limit"], opts["mip_rel_gap"],
                    nodes, gval)


# ------------------------------------------------------------------------- with capacity
def _serve(B: sp.csr_matrix, weight: np.ndarray, demand: np.ndarray, capacity: np.ndarray
           ) -> tuple[float, sp.csr_matrix]:
    """With the sites fixed (columns of ``B``), the most weight servable within capacity:
    the transportation LP ``max Σ w_i Σ_j z_ij``, ``Σ_j z_ij ≤ 1``, ``Σ_i d_i z_ij ≤ c_j``.
    Returns the weight served and the shares (rows × columns of ``B``)."""
    from scipy.optimize import linprog

    coo = B.tocoo()
    pi, pj = coo.row.astype(np.int64), coo.col.astype(np.int64)
    n = len(pi)
    if n == 0:
        return 0.0, sp.csr_matrix(B.shape)
    rows = sp.csr_matrix((np.ones(n), (pi, np.arange(n))), shape=(B.shape[0], n))
    caps = sp.csr_matrix((demand[pi], (pj, np.arange(n))), shape=(B.shape[1], n))
    res = linprog(-weight[pi], A_ub=sp.vstack([rows, caps]).tocsr(),
                  b_ub=np.r_[np.ones(B.shape[0]), capacity], bounds=(0, 1), method="highs")
    if res.x is None:
        return 0.0, sp.csr_matrix(B.shape)
    z = np.clip(res.x, 0, 1)
    return float(-res.fun), sp.csr_matrix((z, (pi, pj)), shape=B.shape)


def solve_capacitated(cover: sp.csr_matrix, weight: np.ndarray, demand: np.ndarray, capacity: np.ndarray, *,
                      objective: str, p: int | None = None, time_limit_s: float | None = None,
                      mip_rel_gap: float | None = None, presolve: bool = False
                      ) -> tuple[Solution, CoverageModel, np.ndarray, sp.csr_matrix | None]:
    """MCLP or LSCP with capacities, exactly, the cheap way first.

    1. The model without capacities (all exact reductions) is solved. Its optimum bounds
       the capacitated one (MCLP: no more residents can be served than covered; LSCP: no
       fewer sites). If its sites can serve every resident they cover within capacity
       (a transportation LP), it is optimal for the capacitated model too, and the answer
       says so. This is the usual case (a kindergarten of 300 places, a few hundred
       children within 300 m).
    2. Otherwise the capacitated MILP (``solve_mclp`` / ``solve_lscp`` on a model with
       capacities: rows merged, no column reductions) is solved within the time limit.

    Returns
    -------
    (Solution, CoverageModel, chosen input columns, shares: input rows × input columns)
    """
    B = sp.csr_matrix(cover, dtype=bool)
    B.eliminate_zeros()
    kw = {"time_limit_s": time_limit_s, "mip_rel_gap": mip_rel_gap, "presolve": presolve}
    m0 = reduce_model(B, weight, objective=objective)
    s0 = solve_mclp(m0, p, **kw) if objective == "mclp" else solve_lscp(m0, **kw)
    if s0.status == "optimal" and len(s0.chosen):
        ch = m0.columns[s0.chosen]
        sub = B[:, ch]
        reach = np.diff(sub.indptr) > 0
        served, share = _serve(sub, np.asarray(weight, float), np.asarray(demand, float),
                               np.asarray(capacity, float)[ch])
        if served >= weight[reach].sum() * (1 - 1e-9) - 1e-9:
            s0.solver = ("HiGHS (scipy.optimize.milp): the optimum without capacities, served within "
                         "capacity (transportation LP): optimal with them too")
            s0.solve_s += 0.0
            cols = share.tocoo()
            full = sp.csr_matrix((cols.data, (cols.row, ch[cols.col])), shape=B.shape)
            return s0, m0, ch, full
    m = reduce_model(B, weight, demand=demand, capacity=capacity, objective=objective)
    s = solve_mclp(m, p, **kw) if objective == "mclp" else solve_lscp(m, **kw)
    ch = m.columns[s.chosen]
    full = None
    if s.share is not None:
        rows = np.flatnonzero(m.row_of >= 0)
        sh = s.share[m.row_of[rows]].tocoo()
        full = sp.csr_matrix((sh.data, (rows[sh.row], m.columns[sh.col])), shape=B.shape)
    if s.status != "optimal":  # a greedy answer, labelled, when it beats the MILP's at the limit
        gch, gval, gshare = greedy_capacitated(B, np.asarray(weight, float), np.asarray(demand, float),
                                               np.asarray(capacity, float), p=p)
        better = (gval > s.objective + 1e-9) if objective == "mclp" else (gval < s.objective - 1e-9)
        if objective == "lscp":  # a greedy LSCP answer counts only if it serves everyone
            reach = np.diff(B.indptr) > 0
            served = float((np.asarray(gshare.sum(axis=1)).ravel() * weight).sum())
            better &= served >= weight[reach].sum() * (1 - 1e-9) - 1e-9
        if len(gch) and (not np.isfinite(s.objective) or better):
            bound = s.bound
            gap = abs(bound - gval) / max(abs(gval), 1e-9) if np.isfinite(bound) else float("nan")
            proved = np.isfinite(gap) and gap <= s.mip_rel_gap
            g = Solution(np.zeros(0, np.int64), gval, bound, gap, "optimal" if proved else "greedy",
                         "greedy with capacities, " + ("proved optimal by the MILP's bound" if proved else
                                                       "not optimal: the MILP reached its time limit with a "
                                                       "worse answer; gap against the MILP's bound"),
                         s.solve_s, s.time_limit_s, s.mip_rel_gap, s.nodes, gval)
            return g, m, gch, gshare
    return s, m, ch, full


def greedy_capacitated(B: sp.csr_matrix, weight: np.ndarray, demand: np.ndarray, capacity: np.ndarray, *,
                       p: int | None = None) -> tuple[np.ndarray, float, sp.csr_matrix]:
    """Greedy sites with capacities (not optimal; a labelled fallback): each step opens the
    column serving the most remaining weight within its capacity (the rows it reaches
    served in proportion), ``p`` times (MCLP) or until all demand is served (LSCP); the
    chosen sites are then served exactly by the transportation LP. Returns input
    columns, weight served and shares."""
    B = sp.csr_matrix(B, dtype=np.float64)
    Bc = B.tocsc()
    Bt = B.T.tocsr()
    rem_d, rem_w = demand.astype(float).copy(), weight.astype(float).copy()
    chosen: list[int] = []
    limit = p if p is not None else B.shape[1]
    while len(chosen) < limit and rem_d.sum() > 1e-9:  # (one sparse product per site)
        tot = Bt @ rem_d
        with np.errstate(invalid="ignore", divide="ignore"):
            frac = np.where(tot > 0, np.minimum(capacity, tot) / tot, 0.0)
        gain = frac * (Bt @ rem_w)
        if chosen:
            gain[chosen] = -1.0
        j = int(np.argmax(gain))
        if gain[j] <= 0:
            break
        chosen.append(j)
        rows = Bc.indices[Bc.indptr[j]:Bc.indptr[j + 1]]
        rem_d[rows] *= 1.0 - frac[j]
        rem_w[rows] *= 1.0 - frac[j]
    ch = np.array(sorted(chosen), np.int64)
    served, share = _serve(B[:, ch], weight, demand, capacity[ch])
    cols = share.tocoo()
    full = sp.csr_matrix((cols.data, (cols.row, ch[cols.col])), shape=B.shape)
    return ch, (served if p is not None else float(len(ch))), full
