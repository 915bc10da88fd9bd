"""Benchmark: zonal green/impervious cover of a 4 GB-class orthophoto, beside the I/O floor.

Generates (once; reused when it exists) a 40,000 × 40,000 × 3 uint8 tiled GeoTIFF (512 ×
512 tiles, uncompressed, 4.8 GB, 0.1 m pixels in EPSG:32651: a 4 km × 4 km drone flight),
written tile by tile so generation itself stays in low memory, and 500 Voronoi zones over
it (some reaching past the image edge). Measures:

- the I/O floor: a plain rasterio read of every window (same windows and threads), with
  the file dropped from the page cache first (cold, ``posix_fadvise(DONTNEED)`` on this
  file only) and again with the file cached (hot: memory-speed reads, for information);
- ``geotijian.imagery.zonal_cover`` throughput (MB of raster read and classified per s),
  cold and hot, and that two runs give identical tables;
- peak memory (``resource.getrusage`` maxrss of this process, must stay < 1 GB).

Target: zonal_cover within 2× of the read-only floor. The big file is deleted at the end
unless ``--keep``. ``--quick``: a 4,000 × 4,000 version (48 MB).

Run: ``.venv/bin/python benchmarks/bench_imagery.py [--quick] [--keep] [--path P]``
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time
from pathlib import Path

import geopandas as gpd
import numpy as np
import rasterio
import shapely
from affine import Affine

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geotijian import imagery as im  # noqa: E402
from geotijian.imagery import classify as im_classify  # noqa: E402
from geotijian.imagery import windows as im_windows  # noqa: E402

TILE = 512
RES = 0.1
X0, Y0 = 350000.0, 3450000.0
# R, G, B of painted surfaces (vegetation, roof, road, shadow, water, soil)
SURFACES = np.array([(60, 120, 40), (150, 150, 155), (100, 100, 100), (15, 17, 25),
                     (40, 70, 110), (150, 120, 90)], dtype=np.int16)
MAX_RSS_MB = 1024.0
TARGET_RATIO = 2.0


def cpu_s() -> float:
    """CPU seconds (user + system) used by this process so far: robust under contention."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _tile_bank(n: int = 16, seed: int = 1) -> np.ndarray:
    """``n`` painted 512 × 512 RGB tiles: blobs of surfaces with ±6 noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:TILE, 0:TILE]
    bank = np.empty((n, 3, TILE, TILE), dtype=np.uint8)
    for k in range(n):
        labels = np.zeros((TILE, TILE), dtype=np.int64)
        for s in range(12):  # overlapping discs and bars of random surfaces
            cx, cy, r = rng.integers(0, TILE, 2).tolist() + [int(rng.integers(30, 200))]
            if s % 3 == 2:
                m = np.abs(yy - cy) < r // 6  # a road-like bar
            else:
                m = (xx - cx) ** 2 + (yy - cy) ** 2 < r * r
            labels[m] = rng.integers(0, len(SURFACES))
        img = SURFACES[labels].transpose(2, 0, 1) + rng.integers(-6, 7, (3, TILE, TILE))
        bank[k] = np.clip(img, 1, 255).astype(np.uint8)
    return bank


def generate(path: Path, size: int) -> None:
    """Write the synthetic orthophoto tile by tile (memory: one tile bank, 12 MB)."""
    bank = _tile_bank()
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8",
                   crs="EPSG:32651", transform=Affine(RES, 0, X0, 0, -RES, Y0), tiled=True,
                   blockxsize=TILE, blockysize=TILE, photometric="RGB", BIGTIFF="YES")
    tmp = path.with_name(path.name + ".part")
    with rasterio.Env(GDAL_CACHEMAX=64), rasterio.open(tmp, "w", **profile) as dst:
        for row in range(0, size, TILE):
            for col in range(0, size, TILE):
                h, w = min(TILE, size - row), min(TILE, size - col)
                k = (row // TILE * 7 + col // TILE * 3) % len(bank)
                dst.write(bank[k][:, :h, :w], window=rasterio.windows.Window(col, row, w, h))
    os.replace(tmp, path)


def make_zones(ortho: im.Orthophoto, n: int, seed: int = 2) -> gpd.GeoDataFrame:
    """``n`` Voronoi zones over the image extent grown by 3 % (edge zones partly outside)."""
    left, bottom, right, top = ortho.bounds
    pad = 0.03 * (right - left)
    ext = shapely.box(left - pad, bottom - pad, right + pad, top + pad)
    rng = np.random.default_rng(seed)
    pts = shapely.points(rng.uniform(left - pad, right + pad, n),
                         rng.uniform(bottom - pad, top + pad, n))
    cells = shapely.get_parts(shapely.voronoi_polygons(shapely.multipoints(pts), extend_to=ext))
    cells = shapely.intersection(cells, ext)
    return gpd.GeoDataFrame({"unit_id": [f"U{i:04d}" for i in range(len(cells))]},
                            geometry=cells, crs=ortho.crs)


def evict(path: Path) -> None:
    """Drop this file's pages from the OS page cache (a cold read; other files untouched)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def read_floor(ortho: im.Orthophoto, workers: int) -> float:
    """Seconds to read every window with plain rasterio (threads, one handle each)."""
    windows = im.block_windows(ortho)
    readers = im_windows._Readers(ortho.path)

    def read(w):
        return int(readers.get().read(ortho.read_indexes, window=w)[0, 0, 0])

    t = time.perf_counter()
    try:
        with rasterio.Env(GDAL_CACHEMAX=64):
            for _ in im_windows._bounded_map(read, windows, workers):
                pass
    finally:
        readers.close()
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4,000 × 4,000 px (48 MB)")
    ap.add_argument("--path", type=Path, default=None, help="where the test image lives")
    ap.add_argument("--keep", action="store_true", help="keep the generated image")
    ap.add_argument("--zones", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    args = ap.parse_args()
    size = 4000 if args.quick else 40000
    path = args.path or Path(f"/tmp/geotijian_bench_ortho_{size}.tif")
    load = os.getloadavg()[0]
    print(f"geotijian imagery benchmark: {size:,} x {size:,} x 3 uint8, 512 tiles, "
          f"{args.zones} zones, {args.workers} workers (2 shared cores; figures taken under "
          f"contention from other jobs are noisy; load average now {load:.1f})")
    t = time.perf_counter()
    if path.exists():
        print(f"reusing {path}")
    else:
        generate(path, size)
        print(f"generated {path} in {time.perf_counter() - t:.1f} s "
              f"(maxrss {maxrss_mb():.0f} MB)")
    try:
        ortho = im.read_orthophoto(path)
        mb = ortho.nbytes / 1e6
        zones = make_zones(ortho, args.zones)
        clf = im.build_classifier(ortho)
        t = time.perf_counter()
        if im_classify._use_lut(ortho, clf):
            im_classify._lut_tables(clf)  # built once per classifier (16 MiB), reported separately
        t_lut = time.perf_counter() - t
        # cold: the file's pages dropped from the page cache (posix_fadvise, this file only)
        evict(path)
        c = cpu_s()
        floor_cold = read_floor(ortho, args.workers)
        cpu_floor_cold = cpu_s() - c
        evict(path)
        c, t = cpu_s(), time.perf_counter()
        res = im.zonal_cover(ortho, zones, id_col="unit_id", classes=clf, workers=args.workers)
        zonal_cold, cpu_zonal_cold = time.perf_counter() - t, cpu_s() - c
        # hot: the same, with the file in the page cache (memory-speed reads)
        c = cpu_s()
        floor_hot = read_floor(ortho, args.workers)
        cpu_floor_hot = cpu_s() - c
        c, t = cpu_s(), time.perf_counter()
        res2 = im.zonal_cover(ortho, zones, id_col="unit_id", classes=clf, workers=args.workers)
        zonal_hot, cpu_zonal_hot = time.perf_counter() - t, cpu_s() - c
        same = res.equals(res2)
        rss = maxrss_mb()
        ratio = zonal_cold / floor_cold
        ratio_hot = zonal_hot / floor_hot
        def line(label: str, sec: float, cpu: float, tail: str = "") -> None:
            print(f"{label:34s}{sec:9.2f} s  {mb / sec:7.0f} MB/s  cpu {cpu:6.1f} s  {tail}")

        print(f"{'raster size':34s}{mb:9.0f} MB")
        print(f"{'lookup tables (8-bit)':34s}{t_lut:9.2f} s   (once per classifier)")
        line("read floor, cold cache", floor_cold, cpu_floor_cold)
        line("zonal_cover, cold cache", zonal_cold, cpu_zonal_cold,
             f"ratio {ratio:.2f}x  target <= {TARGET_RATIO:.1f}x  "
             f"{'OK' if ratio <= TARGET_RATIO else 'MISSED'}")
        line("read floor, hot cache", floor_hot, cpu_floor_hot)
        line("zonal_cover, hot cache", zonal_hot, cpu_zonal_hot,
             f"ratio {ratio_hot:.2f}x  (memory-speed floor, for information)")
        print(f"{'zonal cpu per Mpx (hot)':34s}{cpu_zonal_hot / (mb / 3) * 1e3:9.2f} ms  "
              "(all threads; less sensitive to contention than wall time)")
        print(f"peak memory (maxrss, whole run)   {rss:9.0f} MB            "
              f"target < {MAX_RSS_MB:.0f} MB  {'OK' if rss < MAX_RSS_MB else 'MISSED'}")
        print(f"two runs identical                {same}")
        tot = res[["vegetation_pixels", "impervious_pixels", "water_pixels", "bare_pixels",
                   "unclassified_pixels"]].sum()
        print(f"zones {len(res)}, partial coverage {res['flag'].str.contains('partial').sum()}, "
              f"shares of imaged pixels: "
              + ", ".join(f"{k.split('_')[0]} {v / tot.sum():.3f}" for k, v in tot.items()))
        ok = ratio <= TARGET_RATIO and rss < MAX_RSS_MB and same
    finally:
        if not args.keep and path.exists():
            path.unlink()
            print(f"deleted {path} (use --keep to reuse it)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
