"""Make layers/sample/ledger_2023.csv: the sample district's problem ledger as of 2023.

The 2023 check-up is the same district one year earlier, derived from the 2024 results so
that the 2024 demo shows every ledger status:

* **resolved**: for one unit whose residents are all within reach of a type in 2024 (a
  kindergarten, primary school... ), the facilities of that type serving it had not opened
  yet in 2023;
* **new**: for one unit where only a few compounds lack a type in 2024, a facility at
  their gates existed in 2023 and has closed since;
* every other problem **persists**.

The real pipeline runs on that 2023 state and its ledger is written. Deterministic.

Run: .venv/bin/python scripts/make_sample_ledger.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

import geotijian as gt
from geotijian.io.atomic import atomic_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "layers" / "sample"
TYPES = ("kindergarten", "primary_school", "elderly_day_care", "small_sports_ground")  # required: judged


def _config(year: int) -> gt.StudyConfig:
    """The sample study without its [ledger] section (the file this script makes) and without
    the returned fill-in workbooks (they belong to the 2024 check-up)."""
    text = (SAMPLE / "study.toml").read_text(encoding="utf-8")
    text = text.replace("[ledger]", "").replace('last_year = "ledger_2023.csv"', "")
    text = text.replace('folder = "fillins"', "")
    tmp = SAMPLE / f".study_{year}.toml"
    tmp.write_text(text.replace("year = 2024", f"year = {year}"), encoding="utf-8")
    try:
        return gt.read_config(tmp)
    finally:
        tmp.unlink()


def main() -> Path:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        now = gt.run_study(_config(2024), progress=False, output=tmp / "2024")
        per_area = now.tables["coverage"]
        units = per_area[(per_area["level"] == "unit") & per_area["facility_type"].isin(TYPES)]
        units = units.sort_values(["facility_type", "area_id"])
        homes = now.data.homes
        fsrc = next(s for s in _config(2023).layers if s.key == "facilities")
        fac = gt.read_layer(fsrc.path, "facilities", layer=fsrc.layer).sort_values("facility_id")

        # resolved: a fully covered unit whose serving facilities open only in 2024
        full = units[units["share"] >= 1.0].iloc[0]
        t, walk = full["facility_type"], now.data.meta["walk_distances"][full["facility_type"]]
        comp = now.data.compounds  # polygons: distances are measured from the compound boundary
        served = comp[comp["unit_id"] == full["area_id"]]
        cand = fac[fac["type"] == t]
        d = shapely.distance(np.asarray(cand.geometry.values)[:, None],
                             np.asarray(served.geometry.values)[None, :]).min(axis=1)
        opened = cand[d <= walk]
        # new: the unit closest to full coverage gets a facility at each uncovered compound
        part = units[(units["share"] < 1.0) & (units["share"] >= 0.5)]
        part = part.sort_values(["not_covered", "area_id", "facility_type"]).iloc[0]
        t2 = part["facility_type"]
        gap = homes[(homes["unit_id"] == part["area_id"]) & ~homes[f"covered_{t2}"].astype(bool)]
        gates = shapely.get_point(shapely.get_exterior_ring(np.asarray(gap.geometry.values)), 0)
        closed = gpd.GeoDataFrame({"facility_id": [f"F2023-closed-{i + 1}" for i in range(len(gap))],
                                   "type": t2, "name": "(2024年已关闭) " + t2, "capacity": np.nan},
                                  geometry=gates, crs=fac.crs)
        fac2023 = fac[~fac["facility_id"].isin(opened["facility_id"])]
        fac2023 = gpd.GeoDataFrame(pd.concat([fac2023, closed], ignore_index=True), crs=fac.crs)

        cfg = _config(2023)
        fsrc = next(s for s in cfg.layers if s.key == "facilities")
        path = tmp / "facilities_2023.gpkg"
        fac2023.to_file(path, layer="facilities", driver="GPKG")
        fsrc.path, fsrc.layer = path, "facilities"
        before = gt.run_study(cfg, progress=False, output=tmp / "2023")
        target = SAMPLE / "ledger_2023.csv"
        with atomic_path(target) as t_:
            shutil.copyfile(before.out_dir / "ledger.csv", t_)
    print(f"wrote {target}: {len(before.data.ledger)} problems in 2023; "
          f"{t} opened 2024 for {full['area_id']} ({len(opened)} facilities), "
          f"{t2} closed 2024 in {part['area_id']} ({len(gap)} compounds)")
    return target


if __name__ == "__main__":
    main()
