"""Benchmark: indicators, judgement and 一表三清单 at district scale (Jiading-like).

Run: ``.venv/bin/python benchmarks/bench_indicators.py [--quick]``

Synthetic district of ~460 km² and 1.8 million residents on a regular layout (so the
figures are reproducible): 200 units in 12 towns, 50,000 homes with distances to 12
facility types, a sparse home × kindergarten OD matrix (~10 reachable per home), 5,000
residential polygons, 2,000 parks, a 100 m-ish road grid and 200,000 building footprints.

Each figure is printed beside its target; the 2SFCA is also compared with
``pysal/access`` (``Access.two_stage_fca``) on the same inputs (baseline to beat).
"""

from __future__ import annotations

import argparse
import time
import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp
import shapely

from geotijian.assess import build_tables
from geotijian.indicators import (
    building_indicators,
    compute_indicators,
    indicator_catalogue,
    network_coverage,
    park_service_coverage,
    road_network_density,
    two_step_fca,
)

CRS = "EPSG:32651"


def district(scale: float, seed: int = 1):
    rng = np.random.default_rng(seed)
    side = 21_500.0 * np.sqrt(scale)                 # 460 km² at scale 1
    nu = max(int(round(np.sqrt(200 * scale))), 2)    # units per side
    step = side / nu
    ux, uy = np.meshgrid(np.arange(nu), np.arange(nu))
    ux, uy = ux.ravel(), uy.ravel()
    units = gpd.GeoDataFrame({"unit_id": [f"U{i:04d}" for i in range(len(ux))],
                              "town_code": [f"T{(i * 12) // len(ux):02d}" for i in range(len(ux))],
                              "population": np.full(len(ux), 1_800_000 * scale / len(ux))},
                             geometry=shapely.box(ux * step, uy * step, (ux + 1) * step, (uy + 1) * step), crs=CRS)
    n_homes = int(50_000 * scale)
    hx, hy = rng.uniform(0, side, n_homes), rng.uniform(0, side, n_homes)
    hu = (np.minimum((hy // step).astype(int), nu - 1) * nu + np.minimum((hx // step).astype(int), nu - 1))
    homes = pd.DataFrame({"home_id": [f"H{i}" for i in range(n_homes)], "unit_id": units["unit_id"].to_numpy()[hu],
                          "population": rng.integers(10, 60, n_homes).astype(float)})
    types = ["kindergarten", "primary_school", "junior_middle_school", "elderly_day_care", "nursery",
             "community_health_station", "community_service_station", "fresh_market", "bus_stop", "metro_station",
             "small_sports_ground", "cultural_activity_station"]
    dist = pd.DataFrame({t: rng.gamma(2.0, 250.0, n_homes) for t in types}, index=homes["home_id"])
    n_fac = int(500 * scale) + 1
    k = 10
    rows = np.repeat(np.arange(n_homes), k)
    cols = rng.integers(0, n_fac, n_homes * k)
    od = sp.csr_matrix((rng.uniform(0, 300, n_homes * k), (rows, cols)), shape=(n_homes, n_fac))
    od.sum_duplicates()
    supply = rng.integers(60, 400, n_fac).astype(float)
    n_res = int(5000 * scale)
    rx, ry = rng.uniform(0, side - 200, n_res), rng.uniform(0, side - 200, n_res)
    residential = gpd.GeoDataFrame({"compound_id": [f"R{i}" for i in range(n_res)]},
                                   geometry=shapely.box(rx, ry, rx + 150, ry + 150), crs=CRS)
    n_park = int(2000 * scale)
    px, py = rng.uniform(0, side - 200, n_park), rng.uniform(0, side - 200, n_park)
    ps = rng.choice([30.0, 60.0, 120.0], n_park)
    parks = gpd.GeoDataFrame({"park_id": [f"P{i}" for i in range(n_park)]},
                             geometry=shapely.box(px, py, px + ps, py + ps), crs=CRS)
    g = np.arange(0, side, 300.0)
    segs = [shapely.linestrings(np.column_stack([np.zeros_like(g), g, np.full_like(g, side), g]).reshape(-1, 2, 2)),
            shapely.linestrings(np.column_stack([g, np.zeros_like(g), g, np.full_like(g, side)]).reshape(-1, 2, 2))]
    roads = gpd.GeoDataFrame(geometry=np.concatenate(segs), crs=CRS)
    n_b = int(200_000 * scale)
    bx, by = rng.uniform(0, side - 40, n_b), rng.uniform(0, side - 40, n_b)
    buildings = gpd.GeoDataFrame({"levels": rng.integers(1, 30, n_b).astype(float)},
                                 geometry=shapely.box(bx, by, bx + 30, by + 15), crs=CRS)
    return units, homes, dist, od, supply, residential, parks, roads, buildings


def timed(label, target_s, fn):
    t = time.perf_counter()
    out = fn()
    dt = time.perf_counter() - t
    flag = "OK " if dt <= target_s else "SLOW"
    print(f"  [{flag}] {label:<48s} {dt:8.2f} s   (target < {target_s:g} s)")
    return out, dt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="10 % size smoke run")
    args = ap.parse_args()
    scale = 0.1 if args.quick else 1.0
    warnings.simplefilter("ignore")
    print(f"geotijian indicators benchmark, scale {scale:g} (timings taken on a shared machine; "
          "other jobs may be running)")
    units, homes, dist, od, supply, residential, parks, roads, buildings = district(scale)
    print(f"  {len(units)} units, {len(homes):,} homes, {od.shape[1]} kindergartens ({od.nnz:,} OD pairs), "
          f"{len(residential):,} residential, {len(parks):,} parks, {len(roads):,} roads, {len(buildings):,} buildings")
    wd = {t: 500.0 for t in dist.columns}
    timed("coverage, 12 facility types", 5 * scale + 1, lambda: network_coverage(homes, dist, units, walk_distances=wd))
    dem = homes["population"].to_numpy() * 0.03
    a, t_ours = timed("2SFCA (scipy.sparse)", 2 * scale + 0.5, lambda: two_step_fca(dem, supply, od, max_distance=300))
    try:
        import access

        coo = od.tocoo()
        cost = pd.DataFrame({"origin": coo.row, "dest": coo.col, "cost": coo.data})
        A = access.Access(demand_df=pd.DataFrame({"d": dem}, index=pd.Index(range(len(dem)), name="geoid")),
                          demand_index=True, demand_value="d",
                          supply_df=pd.DataFrame({"s": supply}, index=pd.Index(range(len(supply)), name="geoid")),
                          supply_index=True, supply_value="s", cost_df=cost, cost_origin="origin", cost_dest="dest",
                          cost_name="cost")
        ref, t_ref = timed("  baseline: pysal/access two_stage_fca", 1e9,
                           lambda: A.two_stage_fca(name="x", max_cost=300))
        ref = ref["x_s"].reindex(range(len(dem))).fillna(0).to_numpy()
        print(f"         speed-up vs pysal/access: {t_ref / max(t_ours, 1e-9):.0f}x; max |difference| "
              f"{np.max(np.abs(ref - a)):.2e}")
    except ImportError:
        print("         (pysal/access not installed: no baseline)")
    timed("park service coverage (buffer)", 10 * scale + 2,
          lambda: park_service_coverage(residential, parks, units))
    timed("road network density", 5 * scale + 1, lambda: road_network_density(roads, units))
    timed("building density + FAR", 20 * scale + 2, lambda: building_indicators(buildings, units))
    vals, t_all = timed("compute_indicators (everything above + junctions)", 60 * scale + 5,
                        lambda: compute_indicators(units, homes=homes, distances=dist, walk_distances=wd,
                                                   residential=residential, parks=parks, roads=roads,
                                                   buildings=buildings,
                                                   fca={"kindergarten": {"supply": supply, "od": od,
                                                                         "max_distance": 300,
                                                                         "demand_share": 0.03}}))
    cat = indicator_catalogue()
    tables, _ = timed("judge + classify + 一表三清单", 10 * scale + 2, lambda: build_tables(vals, cat, areas=units))
    print(f"  {len(vals):,} indicator values, {len(tables['problems']):,} problems")


if __name__ == "__main__":
    main()
