"""The sample's drone orthophoto: a small RGB GeoTIFF (EPSG:4549) painted from the layers."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import shapely
from pyproj import Transformer

from ..io.atomic import atomic_path
from ._common import ORTHO_CRS


def ortho_centre(layers: dict[str, Any]) -> np.ndarray:
    """Centre of the orthophoto: the urban compound nearest to both a river and a park."""
    comp = layers["compounds"]
    urban = comp[(comp["kind"] != "村宅") & ~comp["big"]]
    if urban.empty:
        urban = comp
    rep = shapely.point_on_surface(urban.geometry.values)
    water = shapely.union_all(layers["water"].geometry.values)
    parks = shapely.union_all(layers["parks"].geometry.values)
    score = shapely.distance(rep, water) + 0.5 * shapely.distance(rep, parks)
    return shapely.get_coordinates(rep[int(np.argmin(score))])[0]


def write_ortho(layers: dict[str, Any], path: Path, *, seed: int, size_m: float = 1000.0,
                 pixel_m: float = 1.0) -> Path:
    """Paint a small RGB orthophoto (EPSG:4549) from the layers and write it as GeoTIFF."""
    import rasterio
    from rasterio.features import rasterize
    from affine import Affine
    from scipy import ndimage

    rng = np.random.default_rng([seed, 4549])
    cx, cy = ortho_centre(layers)
    to_o = Transformer.from_crs(layers["boundary"].crs, ORTHO_CRS, always_xy=True)
    ox, oy = to_o.transform(cx, cy)
    x0 = math.floor(ox - size_m / 2)
    y1 = math.ceil(oy + size_m / 2)
    n = int(round(size_m / pixel_m))
    transform = Affine(pixel_m, 0.0, x0, 0.0, -pixel_m, y1)
    window = shapely.box(x0 - 50, y1 - size_m - 50, x0 + size_m + 50, y1 + 50)

    def geoms(name: str, mask: Any = None) -> gpd.GeoDataFrame:
        g = layers[name] if mask is None else layers[name][mask]
        g = g.to_crs(ORTHO_CRS)
        return g[shapely.intersects(g.geometry.values, window)]

    cls = np.zeros((n, n), dtype=np.uint8)  # 0 farmland / bare

    def burn(shapes: Any, value: int) -> None:
        shapes = [(g, value) for g in shapes if g is not None and not g.is_empty]
        if shapes:
            rasterize(shapes, out=cls, transform=transform, all_touched=False)

    comp = geoms("compounds")
    burn(comp.geometry.values, 1)                                     # compound ground
    burn(geoms("parks").geometry.values, 2)                           # park lawns
    roads = geoms("roads")
    half = roads["highway"].map({"primary": 12, "secondary": 9, "tertiary": 7, "residential": 4,
                                 "unclassified": 3, "service": 2.5}).fillna(1.2).to_numpy()
    foot = roads["highway"].to_numpy() == "footway"
    burn(shapely.buffer(roads.geometry.values[foot], half[foot], cap_style="flat"), 3)
    burn(shapely.buffer(roads.geometry.values[~foot], half[~foot], cap_style="flat"), 4)
    burn(geoms("water").geometry.values, 5)
    b = geoms("buildings")
    h = b["height"].to_numpy()
    bg = b.geometry.values
    if len(bg):
        shift = np.repeat(np.column_stack([-0.2 * h, 0.7 * h]), shapely.get_num_coordinates(bg), axis=0)
        moved = shapely.transform(bg, lambda xy: xy + shift)
        shadow = shapely.convex_hull(shapely.union(bg, moved))
        burn(shadow, 6)
        roof = rng.choice([7, 7, 7, 8, 9, 10], len(bg))
        for v in (7, 8, 9, 10):
            burn(bg[roof == v], v)
    # trees: smooth random blobs on lawns, parks and farmland edges
    noise = ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 2.0)
    trees = (noise > 0.12) & np.isin(cls, [1, 2]) | (noise > 0.3) & (cls == 0)
    cls[trees] = 11
    palette = np.array([
        [150, 140, 95],   # 0 farmland / bare
        [118, 150, 90],   # 1 compound lawns
        [92, 150, 70],    # 2 park lawns
        [185, 180, 170],  # 3 paths
        [70, 72, 75],     # 4 roads
        [60, 95, 120],    # 5 water
        [40, 45, 45],     # 6 shadow
        [165, 165, 160],  # 7 grey roof
        [120, 120, 118],  # 8 dark roof
        [160, 85, 70],    # 9 red roof
        [90, 120, 160],   # 10 blue roof
        [45, 95, 45],     # 11 trees
    ], dtype=np.int16)
    img = palette[cls]
    fields = (ndimage.gaussian_filter(rng.normal(0, 1, (n // 40 + 1, n // 40 + 1)), 0.6) * 25)
    fields = np.kron(fields, np.ones((40, 40)))[:n, :n]
    img[cls == 0] += fields[cls == 0][:, None].astype(np.int16)
    img += rng.normal(0, 4, img.shape).round().astype(np.int16)
    img = np.clip(img, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    profile = dict(driver="GTiff", width=n, height=n, count=3, dtype="uint8", crs=ORTHO_CRS,
                   transform=transform, tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate", predictor=2, photometric="RGB", interleave="pixel")
    with atomic_path(path) as tmp, rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(img)
    return path
