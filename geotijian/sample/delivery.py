"""The sample written like a real delivery, the bundled copy, and ``python -m geotijian.sample``."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .. import settings
from ..io.atomic import atomic_path, fixed_gdal_date
from ..io.coords import wgs84_to_gcj02
from ._common import DELIVERY_CRS, FIXED_DATE, GPKG_LAYERS, GPKG_NAME, SAMPLE_FILES
from .layers import make_sample_district
from .ortho import write_ortho


def _lonlat(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    xy = shapely.get_coordinates(gdf.to_crs("EPSG:4326").geometry.values)
    return xy[:, 0], xy[:, 1]


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    return path


def write_sample(folder: str | os.PathLike = "layers/sample", *, seed: int | None = None,
                 scale: float = 1.0) -> dict[str, Path]:
    """Write the sample district like a real delivery.

    Files (each written atomically; same seed and scale → identical bytes):

    * ``sample_district.gpkg``: layers boundary, towns, committees, compounds, buildings,
      roads, water, rail, parks, facilities, in CGCS2000 (EPSG:4490). The facilities layer
      holds the government-delivered types; the commercial POIs (convenience stores,
      fresh markets, post offices, canteens: ``source == "amap"``) are only in
    * ``facilities_amap_gcj02.csv``: facility_id, name, type, lon, lat (GCJ-02, as copied
      from Amap), capacity; read with ``read_layer(path, "facilities", coords="gcj02")``;
    * ``complaints_12345.csv``: complaint_id, lon, lat (WGS84), category, date, text;
    * ``survey_2024.csv``: respondent_id, age, sex, committee_id, lon, lat (WGS84),
      sat_livable ... sat_smart (1-5), comment;
    * ``ortho_rgb.tif``: RGB uint8 orthophoto, 1 m pixels over 1 km², EPSG:4549, tiled,
      deflate-compressed, painted from the layers.

    Parameters
    ----------
    folder : path
        Output folder (created). Other files in it (``study.toml``, ledgers) are left alone.
    seed : int, optional
        Default ``settings.random_seed``.
    scale : float
        Area multiplier (see ``make_sample_district``).

    Returns
    -------
    dict
        File key (``gpkg``, ``amap``, ``complaints``, ``survey``, ``ortho``) → path.
    """
    import pyogrio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seed = settings.random_seed if seed is None else int(seed)
    layers = make_sample_district(seed=seed, scale=scale)
    out: dict[str, Path] = {}
    gpkg = folder / GPKG_NAME
    with fixed_gdal_date(FIXED_DATE), atomic_path(gpkg) as tmp_gpkg:
        for name in GPKG_LAYERS:
            gdf = layers[name]
            if name == "facilities":
                gdf = gdf[gdf["source"] == "delivery"].drop(columns="source")
            if name == "compounds":
                gdf = gdf.drop(columns=["big", "cut_by_road"])
            if name == "committees":
                gdf = gdf.drop(columns=["population_class"])
            pyogrio.write_dataframe(gdf.to_crs(DELIVERY_CRS), tmp_gpkg, layer=name, driver="GPKG",
                                    append=tmp_gpkg.exists())
    out["gpkg"] = gpkg
    fac = layers["facilities"]
    amap = fac[fac["source"] == "amap"]
    lon, lat = _lonlat(amap)
    glon, glat = wgs84_to_gcj02(lon, lat)
    cap = amap["capacity"].round().astype("Int64")
    out["amap"] = _write_csv(pd.DataFrame({
        "facility_id": amap["facility_id"].to_numpy(), "name": amap["name"].to_numpy(),
        "type": amap["type"].to_numpy(), "lon": np.round(glon, 7), "lat": np.round(glat, 7),
        "capacity": cap.to_numpy()}), folder / "facilities_amap_gcj02.csv")
    cmp_ = layers["complaints"]
    lon, lat = _lonlat(cmp_)
    out["complaints"] = _write_csv(pd.DataFrame({
        "complaint_id": cmp_["complaint_id"].to_numpy(), "lon": np.round(lon, 7),
        "lat": np.round(lat, 7), "category": cmp_["category"].to_numpy(),
        "date": cmp_["date"].to_numpy(), "text": cmp_["text"].to_numpy()}),
        folder / "complaints_12345.csv")
    out["survey"] = _write_csv(layers["survey"], folder / "survey_2024.csv")
    out["ortho"] = write_ortho(layers, folder / "ortho_rgb.tif", seed=seed)
    return out


def sample_path(name: str = GPKG_NAME) -> Path:
    """Path of a file of the bundled sample (``layers/sample/<name>``).

    The repository copy is used when present; otherwise (an installed package) the
    sample is generated once into ``$GEOTIJIAN_SAMPLE_DIR`` or ``~/.cache/geotijian/sample``.
    """
    repo = Path(__file__).resolve().parents[2] / "layers" / "sample"
    if (repo / name).exists():
        return repo / name
    if name not in SAMPLE_FILES:
        raise FileNotFoundError(f"{name!r} is not a file of the sample district "
                                f"(files: {', '.join(SAMPLE_FILES)}; looked in {repo})")
    cache = Path(os.environ.get("GEOTIJIAN_SAMPLE_DIR", Path.home() / ".cache" / "geotijian" / "sample"))
    if not (cache / name).exists():
        write_sample(cache)
    return cache / name


def main(argv: list[str] | None = None) -> int:
    """``python -m geotijian.sample [folder] [--seed N] [--scale S]``: write the sample."""
    ap = argparse.ArgumentParser(prog="python -m geotijian.sample",
                                 description="Write the deterministic sample district.")
    ap.add_argument("folder", nargs="?", default="layers/sample")
    ap.add_argument("--seed", type=int, default=None, help="default: settings.random_seed")
    ap.add_argument("--scale", type=float, default=1.0, help="area multiplier (1 → ~25 km²)")
    args = ap.parse_args(argv)
    paths = write_sample(args.folder, seed=args.seed, scale=args.scale)
    for key, p in paths.items():
        print(f"{key:11s} {p}  ({p.stat().st_size / 1e6:.2f} MB)")
    return 0

