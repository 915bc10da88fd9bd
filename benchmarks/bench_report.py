"""Report writers at district scale (Jiading-like: ~460 km², units, thousands of homes).

Run: ``.venv/bin/python benchmarks/bench_report.py [--quick]``. Synthetic layers with the
model's columns (fixed seed): a 20 × 20 km district of 400 units, 5,000 compound polygons,
3,000 facilities of 12 types, 8,000 coverage-gap homes, 400 problems, 1,600 hot-spot cells.
Prints each time and size beside its target.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from geotijian.model import StudyData
from geotijian.report import problem_map, save_figures, save_problem_map, write_gpkg

CRS = "EPSG:32651"
TYPES = ["kindergarten", "primary_school", "junior_middle_school", "community_health_station",
         "elderly_day_care", "fresh_market", "convenience_store", "small_sports_ground",
         "outdoor_fitness_ground", "park_5min", "community_service_station", "nursery"]


def district(n_side: int, homes: int, n_fac: int, n_gap: int, seed: int = 1) -> StudyData:
    rng = np.random.default_rng(seed)
    x0, y0 = Transformer.from_crs("EPSG:4326", CRS, always_xy=True).transform(121.15, 31.30)
    size = 1000.0
    cells = shapely.box(*np.meshgrid(np.arange(n_side) * size + x0, np.arange(n_side) * size + y0),
                        *np.meshgrid(np.arange(1, n_side + 1) * size + x0,
                                     np.arange(1, n_side + 1) * size + y0))
    cells = np.asarray(cells).ravel()
    # wobbly unit outlines: many vertices, as real road-bounded units have
    cells = shapely.segmentize(cells, 10.0)
    cells = shapely.transform(cells, lambda xy: xy + 0.4 * np.sin(xy[:, ::-1] / 7.0))
    n = len(cells)
    units = gpd.GeoDataFrame({
        "unit_id": [f"U{i:04d}" for i in range(n)], "town_code": [f"T{i % 12:02d}" for i in range(n)],
        "town_name": [f"镇{i % 12}" for i in range(n)], "committees": [f"C{i}" for i in range(n)],
        "population": rng.uniform(4000, 12000, n), "households": rng.uniform(1500, 4500, n),
        "area_ha": np.full(n, 100.0), "compound_count": rng.integers(3, 20, n),
        "compactness": rng.uniform(0.5, 0.9, n), "flag": rng.random(n) < 0.1,
        "flag_reason": [None] * n}, geometry=cells, crs=CRS)
    span = n_side * size
    hp = rng.uniform([x0, y0], [x0 + span, y0 + span], (homes, 2))
    compounds = gpd.GeoDataFrame({"compound_id": [f"X{i:05d}" for i in range(homes)],
                                  "name": [f"小区{i}" for i in range(homes)],
                                  "population": rng.uniform(200, 3000, homes)},
                                 geometry=shapely.buffer(shapely.points(hp), 60, quad_segs=8), crs=CRS)
    fp = rng.uniform([x0, y0], [x0 + span, y0 + span], (n_fac, 2))
    facilities = gpd.GeoDataFrame({"facility_id": [f"F{i:05d}" for i in range(n_fac)],
                                   "type": rng.choice(TYPES, n_fac),
                                   "name": [f"设施{i}" for i in range(n_fac)]},
                                  geometry=shapely.points(fp), crs=CRS)
    gp = rng.uniform([x0, y0], [x0 + span, y0 + span], (n_gap, 2))
    gt = rng.choice(TYPES, n_gap)
    gaps = gpd.GeoDataFrame({"home_id": [f"X{i % homes:05d}" for i in range(n_gap)],
                             "home_kind": "compound", "unit_id": "U0000", "facility_type": gt,
                             "facility_name_zh": gt, "walk_distance_m": 300.0,
                             "distance_m": rng.uniform(300, 1200, n_gap),
                             "population": rng.uniform(200, 3000, n_gap)},
                            geometry=shapely.points(gp), crs=CRS)
    k = max(n // 1, 1)
    problems = gpd.GeoDataFrame({
        "problem_id": [f"P{i:04d}" for i in range(k)], "indicator_code": "c_kindergarten_gap",
        "name_zh": "未达标配建的幼儿园数量", "dimension": "宜居", "level": "unit",
        "area_id": units["unit_id"].to_numpy()[:k], "value": 1.0, "reference": 0.0, "gap": 1.0,
        "problem_class": rng.choice(["限时解决", "尽力解决", "长期谋划"], k),
        "affected_population": 5000.0, "suggestion": "新建"}, geometry=cells[:k], crs=CRS)
    return StudyData(name="基准区", units=units, compounds=compounds, facilities=facilities,
                     coverage_gaps=gaps, problems=problems, meta={"osm_sources": ["synthetic"]})


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    n_side, homes, n_fac, n_gap = (6, 500, 300, 800) if args.quick else (20, 5000, 3000, 8000)
    study = district(n_side, homes, n_fac, n_gap)
    print(f"district: {len(study.units)} units, {len(study.compounds)} compounds, "
          f"{len(study.facilities)} facilities, {len(study.coverage_gaps)} gap homes, "
          f"{len(study.problems)} problems (timings on a shared 2-core machine)")
    ok = True
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        t = time.perf_counter()
        m = problem_map(study)
        p = save_problem_map(m, d / "map.html")
        dt = time.perf_counter() - t
        mb = p.stat().st_size / 1e6
        print(f"problem_map + save: {dt:6.2f} s   (target < 20 s)   HTML {mb:5.2f} MB (target < 15 MB)")
        ok &= dt < 20 and mb < 15
        t = time.perf_counter()
        g = write_gpkg(study, d / "s.gpkg")
        dt = time.perf_counter() - t
        print(f"write_gpkg:         {dt:6.2f} s   (target < 20 s)   GPKG {g.stat().st_size / 1e6:5.2f} MB")
        ok &= dt < 20
        t = time.perf_counter()
        figs = save_figures(study, d / "figs", formats=("png",))
        dt = time.perf_counter() - t
        print(f"save_figures:       {dt:6.2f} s   (target < 60 s)   {len(figs)} PNG")
        ok &= dt < 60
    print("OK" if ok else "SLOWER THAN TARGET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
