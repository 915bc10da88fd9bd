"""Make layers/sample/ledger_2023.csv: the sample district's problem ledger as of 2023.

The 2023 check-up is the same district before some facilities opened (the first
kindergarten, elderly day care and health station of the sample, by facility ID, opened in
2024) and with one kindergarten that closed in 2024 (it stood next to the first urban
compound). Running the real pipeline on that state gives the 2023 ledger, so the 2024 demo
shows problems resolved, persisting and new. Deterministic.

Run: .venv/bin/python scripts/make_sample_ledger.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import geopandas as gpd
import pandas as pd
import shapely

import geotijian as gt
from geotijian.io.atomic import atomic_path

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "layers" / "sample"
OPENED_2024 = {"kindergarten": 2, "elderly_day_care": 1, "community_health_station": 1}


def main() -> Path:
    cfg = gt.read_config(SAMPLE / "study.toml")
    cfg.year = 2023
    cfg.ledger_last_year = None
    fsrc = next(s for s in cfg.layers if s.key == "facilities")
    fac = gt.read_layer(fsrc.path, "facilities", layer=fsrc.layer).sort_values("facility_id")
    opened = pd.concat([fac[fac["type"] == t].head(n) for t, n in OPENED_2024.items()])
    fac2023 = fac[~fac["facility_id"].isin(opened["facility_id"])]
    comp = gt.read_layer(SAMPLE / "sample_district.gpkg", "compounds", layer="compounds")
    first_urban = comp.sort_values(["population", "compound_id"], ascending=[False, True]).iloc[1]
    edge = shapely.Point(first_urban.geometry.exterior.coords[0])
    closed = gpd.GeoDataFrame({"facility_id": ["F2023-closed-1"], "type": ["kindergarten"],
                               "name": ["(2024年已关闭) 幼儿园"], "capacity": [180.0]},
                              geometry=[edge], crs=fac.crs)
    fac2023 = gpd.GeoDataFrame(pd.concat([fac2023, closed], ignore_index=True), crs=fac.crs)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "facilities_2023.gpkg"
        fac2023.to_file(path, layer="facilities", driver="GPKG")
        fsrc.path, fsrc.layer = path, "facilities"
        result = gt.run_study(cfg, progress=False, output=Path(tmp) / "out")
        target = SAMPLE / "ledger_2023.csv"
        with atomic_path(target) as t:
            shutil.copyfile(result.out_dir / "ledger.csv", t)
    print(f"wrote {target}: {len(result.data.ledger)} problems in 2023")
    return target


if __name__ == "__main__":
    main()
