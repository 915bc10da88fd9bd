"""Benchmark of facility siting (issue 17): geotijian's exact MILP against spopt.

Run: ``.venv/bin/python benchmarks/bench_siting.py [--p 20] [--spopt-budget 300] [--quick] [--unreduced]``

Inputs: the Jiading-scale sample district (``make_sample_district(scale=18.4)``: ~290,000
network nodes, 23,700 compounds, 1.8 million residents), kindergartens (300 m walk,
GB 50180-2018), existing kindergartens kept, candidates = every walk-network node within
300 m of an uncovered compound.

Measured (wall-clock and CPU time, this process):

1. geotijian ``site_facilities`` MCLP with p = 20, and LSCP, end to end: the sparse
   home × candidate network-distance matrix (cut at 300 m), the exact reductions, the
   HiGHS MILP (time limit 30 s, relative gap 1e-4) and the outputs. Target: MCLP < 30 s,
   solved to a stated gap.
2. spopt ``MCLP.from_cost_matrix`` / ``LSCP.from_cost_matrix`` (PuLP + CBC) on the same
   matrix geotijian's solver sees (the reduced model: dense, distance where a candidate is
   within 300 m of a demand row, 1e9 elsewhere, the same demand weights), in a child
   process with a time budget; its objective is printed beside geotijian's.
3. The same comparison on instances spopt finishes in minutes: the bundled sample district
   (scale 1, p = 5) and the Jiading-scale district's town with the fewest uncovered homes.
4. (``--unreduced``) HiGHS on the unreduced Jiading MCLP (every node a column): the same
   optimum, to show the reductions are exact, and their time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import geotijian as gt  # noqa: E402
from geotijian.plan.milp import solve_mclp  # noqa: E402

SPOPT_CHILD = r"""
import json, sys, time, numpy as np, pulp
from spopt.locate import LSCP, MCLP
d = np.load(sys.argv[1])
cost, w, p, kind = d["cost"], d["w"], int(d["p"]), str(d["kind"])
t0 = time.perf_counter(); c0 = time.process_time()
if kind == "mclp":
    m = MCLP.from_cost_matrix(cost, w, service_radius=float(d["radius"]), p_facilities=p)
else:
    m = LSCP.from_cost_matrix(cost, service_radius=float(d["radius"]))
t1 = time.perf_counter()
m.solve(pulp.PULP_CBC_CMD(msg=False))
t2 = time.perf_counter()
print(json.dumps({"objective": pulp.value(m.problem.objective), "build_s": t1 - t0, "solve_s": t2 - t1,
                  "wall_s": t2 - t0, "cpu_s": time.process_time() - c0, "status": pulp.LpStatus[m.problem.status]}))
"""


def timed(fn, *a, **k):
    t, c = time.perf_counter(), time.process_time()
    out = fn(*a, **k)
    return out, time.perf_counter() - t, time.process_time() - c


def load() -> str:
    return os.getloadavg().__repr__()


def spopt_on(model, cover_dist: sp.csr_matrix, radius: float, kind: str, p: int, budget: float) -> dict:
    """spopt on the dense form of the reduced model, in a child process with a budget."""
    rows = np.flatnonzero(model.row_of >= 0)
    first = np.unique(model.row_of[rows], return_index=True)[1]
    rep = rows[first]  # the first input row of each reduced row
    D = cover_dist[rep][:, model.columns].toarray().astype(np.float32)
    cost = np.where(D > 0, D, np.float32(1e9))
    cells = cost.size
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp) / "m.npz"
        np.savez(f, cost=cost, w=model.weight, p=p, kind=kind, radius=radius)
        script = Path(tmp) / "child.py"
        script.write_text(SPOPT_CHILD)
        t0 = time.perf_counter()
        try:
            out = subprocess.run([sys.executable, str(script), str(f)], capture_output=True, text=True,
                                 timeout=budget)
        except subprocess.TimeoutExpired:
            return {"finished": False, "wall_s": time.perf_counter() - t0, "cells": cells}
        if out.returncode != 0:
            return {"finished": False, "error": out.stderr[-500:], "cells": cells}
        r = json.loads(out.stdout.strip().splitlines()[-1])
        r.update(finished=True, cells=cells)
        return r


def compare(label: str, net, homes, fac, *, p: int, budget: float, objective: str = "mclp") -> dict:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res, wall, cpu = timed(gt.site_facilities, net, homes, fac, facility_type="kindergarten",
                               objective=objective, p=p if objective == "mclp" else None)
    s = res.summary
    sp_ = spopt_on(res.model, res.cover_matrix, s["walk_distance_m"], objective, p, budget)
    row = {"instance": label, "model": objective.upper() + (f" p={p}" if objective == "mclp" else ""),
           "rows×cols": f"{res.model.shape[0]}×{res.model.shape[1]}",
           "geotijian_objective": s["objective_value"], "geotijian_status": s["status"],
           "geotijian_gap": s["gap"], "geotijian_wall_s": wall, "geotijian_cpu_s": cpu,
           "geotijian_solve_s": s["solve_s"],
           "spopt_objective": sp_.get("objective"), "spopt_wall_s": sp_.get("wall_s"),
           "spopt_cpu_s": sp_.get("cpu_s"), "spopt_build_s": sp_.get("build_s"),
           "spopt_finished": sp_.get("finished"), "spopt_cells": sp_.get("cells")}
    same = sp_.get("finished") and abs(sp_["objective"] - s["objective_value"]) <= 1e-6 * max(1, abs(s["objective_value"]))
    row["same_objective"] = bool(same) if sp_.get("finished") else None
    print(f"  {label:<34} {row['model']:<11} {row['rows×cols']:>12}  geotijian {s['objective_value']:>12,.0f} "
          f"({s['status']}, gap {s['gap']:.2e}) in {wall:6.2f} s wall / {cpu:6.2f} s CPU (solver {s['solve_s']:.2f} s) | "
          + (f"spopt {sp_['objective']:>12,.0f} in {sp_['wall_s']:7.1f} s wall / {sp_['cpu_s']:7.1f} s CPU "
             f"(build {sp_['build_s']:.1f} s)  same: {same}" if sp_.get("finished") else
             f"spopt did not finish within {budget:g} s ({sp_.get('cells', 0):,} dense cells)"
             + (f": {sp_['error']}" if sp_.get("error") else "")), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--p", type=int, default=20)
    ap.add_argument("--spopt-budget", type=float, default=300.0, help="seconds for each spopt run")
    ap.add_argument("--quick", action="store_true", help="sample district only")
    ap.add_argument("--unreduced", action="store_true", help="also HiGHS on the unreduced Jiading MCLP")
    args = ap.parse_args()
    rows = []
    print(f"load before: {load()}")
    # --- the bundled sample (spopt finishes)
    d = gt.make_sample_district()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = gt.build_network(d["roads"])
    homes = d["compounds"][["compound_id", "population", "geometry"]]
    print("sample district (scale 1):")
    rows.append(compare("sample, all", net, homes, d["facilities"], p=5, budget=args.spopt_budget))
    rows.append(compare("sample, all", net, homes, d["facilities"], p=5, budget=args.spopt_budget,
                        objective="lscp"))
    if not args.quick:
        t0 = time.perf_counter()
        d = gt.make_sample_district(scale=18.4)
        print(f"Jiading-scale sample built in {time.perf_counter() - t0:.1f} s")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            net, wall, cpu = timed(gt.build_network, d["roads"])
        print(f"network: {net} in {wall:.1f} s")
        homes = d["compounds"][["compound_id", "population", "geometry"]]
        fac = d["facilities"]
        print(f"Jiading scale, p = {args.p} (target: MCLP solved to a stated gap in < 30 s), load {load()}:")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res, wall, cpu = timed(gt.site_facilities, net, homes, fac, facility_type="kindergarten",
                                   objective="mclp", p=args.p)
        s = res.summary
        print("  " + res.describe())
        print(f"  MCLP end to end {wall:.2f} s wall / {cpu:.2f} s CPU: matrix {s['matrix_s']:.2f} s, "
              f"solve {s['solve_s']:.2f} s; model {s['model_rows_in']:,}×{s['model_columns_in']:,} "
              f"({s['model_pairs_in']:,} pairs) → {s['model_rows_after_merge']:,}×"
              f"{s['model_columns_after_dominance']:,} ({s['model_pairs_model']:,}); "
              f"greedy (labelled, not optimal) {s['greedy_objective']:,.0f}; target < 30 s: "
              f"{'met' if wall < 30 and s['status'] == 'optimal' else 'NOT met'}", flush=True)
        towns = d["towns"]
        j = gpd_sjoin_town(homes, towns)
        uncovered = res.cover_matrix.shape[0]
        # the town with the fewest uncovered homes (spopt's dense model stays small)
        dist = gt.nearest_facility_distance(net, homes, fac[fac["type"] == "kindergarten"],
                                            types=["kindergarten"], max_distance=300)
        unc = dist["kindergarten"].to_numpy() > 300
        per_town = pd.Series(unc).groupby(j).sum().sort_values()
        town = per_town.index[0]
        print(f"  ({uncovered:,} uncovered homes; town {town}: {int(per_town.iloc[0]):,})")
        sub = homes[(j == town)]
        print(f"geotijian vs spopt on the same matrix (spopt budget {args.spopt_budget:g} s per run):")
        rows.append(compare(f"Jiading scale, town {town}", net, sub, fac, p=args.p, budget=args.spopt_budget))
        rows.append(compare(f"Jiading scale, town {town}", net, sub, fac, p=args.p, budget=args.spopt_budget,
                            objective="lscp"))
        rows.append(compare("Jiading scale, district", net, homes, fac, p=args.p, budget=args.spopt_budget))
        rows.append(compare("Jiading scale, district", net, homes, fac, p=args.p, budget=args.spopt_budget,
                            objective="lscp"))
        if args.unreduced:
            A = res.cover_matrix
            w = homes["population"].to_numpy(float)[dist["kindergarten"].to_numpy() > 300]
            full = _unreduced(A, w)
            sol, wall, cpu = timed(solve_mclp, full, args.p, time_limit_s=600)
            print(f"  unreduced MCLP ({full.shape[0]:,}×{full.shape[1]:,}): {sol.objective:,.0f} ({sol.status}, "
                  f"gap {sol.gap:.2e}) in {wall:.1f} s wall / {cpu:.1f} s CPU; reduced: "
                  f"{s['objective_value']:,.0f} in {s['solve_s']:.2f} s")
    print(f"load after: {load()}")
    print(pd.DataFrame(rows).to_string(index=False))


def gpd_sjoin_town(homes, towns) -> np.ndarray:
    import geopandas as gpd

    pts = gpd.GeoDataFrame(geometry=homes.geometry.representative_point().to_numpy(), crs=homes.crs)
    j = gpd.sjoin(pts, towns[["town_code", towns.geometry.name]], how="left", predicate="within")
    j = j[~j.index.duplicated(keep="first")].sort_index()
    return j["town_code"].astype(str).to_numpy()


def _unreduced(A: sp.csr_matrix, w: np.ndarray):
    """The model without reductions (rows and columns as they are)."""
    from geotijian.plan.milp import CoverageModel

    B = sp.csr_matrix(A, dtype=bool)
    rows = np.flatnonzero(np.diff(B.indptr) > 0)
    row_of = np.full(B.shape[0], -1)
    row_of[rows] = np.arange(len(rows))
    return CoverageModel(B[rows], w[rows], None, None, row_of, np.arange(B.shape[1]))


if __name__ == "__main__":
    main()
