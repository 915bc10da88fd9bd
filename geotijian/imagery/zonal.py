"""Zonal cover: class counts and shares per zone, streamed over the windows; the indicators."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import rasterio
import rasterio.features
import shapely
from affine import Affine
from pyproj import CRS
from rasterio.errors import NotGeoreferencedWarning
from rasterio.windows import Window

from .. import settings
from ..errors import CoordinateWarning, InputWarning, LayerError, RasterError, RepairWarning
from .classify import (BARE, CLASS_NAMES, IMPERVIOUS, N_CLASSES, NODATA, SHADOW, VEGETATION,
                       WATER, Classifier, _WindowClassifier, build_classifier)
from .reading import Orthophoto, _as_ortho
from .windows import _GDAL_CACHE_MB, _bounded_map, _window_boxes, block_windows


def _prepare_zones(zones: gpd.GeoDataFrame, ortho: Orthophoto,
                   id_col: str | None) -> tuple[pd.Index, np.ndarray, str, str | None]:
    """Zone IDs (sorted order kept by caller), geometries in the image CRS, id name."""
    if not isinstance(zones, gpd.GeoDataFrame):
        raise LayerError("zones", f"expected a GeoDataFrame, got {type(zones).__name__}",
                         fix="read the polygon layer with geotijian.read_layer or geopandas")
    if zones.crs is None:
        raise LayerError("zones", "the layer has no CRS, so it cannot be placed on the image",
                         fix="set it with zones.set_crs(...) (the CRS the file was drawn in)")
    if id_col is not None:
        if id_col not in zones.columns:
            raise LayerError("zones", f"no ID column {id_col!r}",
                             fix=f"give id_col= one of {list(zones.columns)}")
        ids = pd.Index(zones[id_col].to_numpy(), name=id_col)
    else:
        ids = pd.Index(zones.index.to_numpy(), name=zones.index.name or "zone_id")
    if ids.hasnans:
        pos = int(np.flatnonzero(pd.isna(ids))[0])
        raise LayerError("zones", "a zone has no ID", feature=pos, fix="fill the ID column")
    if ids.has_duplicates:
        dup = ids[ids.duplicated()]
        pos = int(np.flatnonzero(ids == dup[0])[1])
        raise LayerError("zones", f"duplicate zone ID {dup[0]!r}", feature=pos,
                         feature_id=dup[0], count=len(dup), fix="make the IDs unique")
    geoms = zones.geometry.to_numpy()
    empty = shapely.is_missing(geoms) | shapely.is_empty(geoms)
    if empty.any():
        pos = int(np.flatnonzero(empty)[0])
        raise LayerError("zones", "empty or missing geometry", feature=pos,
                         feature_id=ids[pos], count=int(empty.sum()),
                         fix="drop or redraw these zones")
    kinds = shapely.get_type_id(geoms)
    notpoly = ~np.isin(kinds, [3, 6])
    if notpoly.any():
        pos = int(np.flatnonzero(notpoly)[0])
        raise LayerError("zones", f"geometry is {shapely.get_type_id(geoms[pos])} "
                         "(not a polygon)", feature=pos, feature_id=ids[pos],
                         count=int(notpoly.sum()), fix="give polygon zones")
    src_crs = CRS.from_user_input(zones.crs)
    reprojected = None
    if not src_crs.equals(ortho.crs):
        reprojected = src_crs.to_string()
        geoms = gpd.GeoSeries(geoms, crs=zones.crs).to_crs(ortho.crs).to_numpy()
    invalid = ~shapely.is_valid(geoms)
    if invalid.any():
        pos = int(np.flatnonzero(invalid)[0])
        warnings.warn(f"zones: {int(invalid.sum())} invalid polygon(s) repaired with "
                      f"make_valid (first: feature {pos}, id {ids[pos]!r})", RepairWarning,
                      stacklevel=3)
        geoms = geoms.copy()
        for pos in np.flatnonzero(invalid):  # only the invalid ones, usually none
            parts = shapely.get_parts(shapely.make_valid(geoms[pos]))
            geoms[pos] = shapely.union_all(parts[np.isin(shapely.get_type_id(parts), [3, 6])])
    return ids, np.asarray(geoms, dtype=object), str(ids.name), reprojected


def _overlap_groups(geoms: np.ndarray) -> np.ndarray:
    """Group number per zone so that zones of one group never overlap (interiors)."""
    n = len(geoms)
    group = np.zeros(n, dtype=np.int64)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep], right[keep]
    if left.size:
        inner = ~shapely.touches(geoms[left], geoms[right])
        left, right = left[inner], right[inner]
    if not left.size:
        return group
    nbrs: dict[int, list[int]] = {}
    for a, b in zip(left.tolist(), right.tolist()):
        nbrs.setdefault(b, []).append(a)
    for i in sorted(nbrs):  # greedy colouring in zone order (deterministic)
        used = {int(group[j]) for j in nbrs[i]}
        c = 0
        while c in used:
            c += 1
        group[i] = c
    return group


def _window_jobs(ortho: Orthophoto, geoms: np.ndarray, windows: Sequence[Window]
                 ) -> tuple[np.ndarray, Any, list[tuple[int, np.ndarray, np.ndarray]]]:
    """The windows to read: (window, zones touching it, whether each zone covers it whole).

    Also returns the zones' overlap groups and the windows' boxes (image CRS).
    """
    if not len(geoms):
        return np.zeros(0, dtype=np.int64), None, []
    groups = _overlap_groups(geoms)
    boxes = _window_boxes(ortho, windows)
    w_idx, z_idx = shapely.STRtree(geoms).query(boxes, predicate="intersects")
    order = np.lexsort((z_idx, w_idx))
    w_idx, z_idx = w_idx[order], z_idx[order]
    # a zone covering the whole window needs no rasterizing: all its pixel centres count
    full = shapely.covers(geoms[z_idx], boxes[w_idx])
    starts = np.searchsorted(w_idx, np.arange(len(windows) + 1))
    jobs = [(i, z_idx[starts[i]:starts[i + 1]], full[starts[i]:starts[i + 1]])
            for i in range(len(windows)) if starts[i + 1] > starts[i]]
    return groups, boxes, jobs


def _count_window(job: tuple[int, np.ndarray, np.ndarray], classify: _WindowClassifier,
                  ortho: Orthophoto, windows: Sequence[Window], boxes: np.ndarray,
                  geoms: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Class counts (zones × classes) of the zones ``job`` lists in its window.

    A zone covering the whole window counts every pixel; the others are rasterized on the
    window's transform, one overlap group at a time (pixel centres, ``all_touched=False``).
    """
    i, cands, covers = job
    w = windows[i]
    cls = classify(w)
    local = np.zeros((len(cands), N_CLASSES), dtype=np.int64)
    if covers.any():  # six passes of count_nonzero beat bincount's cast to intp
        local[covers] = [np.count_nonzero(cls == c) for c in range(N_CLASSES)]
    part = np.flatnonzero(~covers)
    if not part.size:
        return cands, local
    wt = ortho.transform @ Affine.translation(w.col_off, w.row_off)
    xmin, ymin, xmax, ymax = boxes[i].bounds
    clipped = shapely.clip_by_rect(geoms[cands[part]], xmin, ymin, xmax, ymax)
    nonempty = ~shapely.is_empty(clipped)
    part_groups = groups[cands[part]]
    small = len(part) < 31  # zone * 8 + class fits in a byte
    for g in np.unique(part_groups):
        sel = np.flatnonzero((part_groups == g) & nonempty)
        if not sel.size:
            continue
        zid = classify.buffer("zid", (w.height, w.width), np.uint8 if small else np.int32)
        zid.fill(0)
        rasterio.features.rasterize(
            zip(clipped[sel], (sel + 1).tolist()), out=zid, transform=wt,
            all_touched=False)
        if small:
            key = np.left_shift(zid, 3, out=classify.buffer("key", zid.shape, np.uint8))
            key |= cls
        else:
            key = zid.astype(np.intp) << 3
            key += cls
        if sel.size <= 4:
            # few zones: compare-and-count passes release the GIL and beat bincount
            eq = classify.buffer("eq", key.shape, np.bool_)
            for j in sel.tolist():
                for c in range(N_CLASSES):
                    np.equal(key, ((j + 1) << 3) | c, out=eq)
                    local[part[j], c] += np.count_nonzero(eq)
        else:
            hist = np.bincount(key.ravel(), minlength=(len(part) + 1) * 8)
            local[part] += hist.reshape(-1, 8)[1:len(part) + 1, :N_CLASSES]
    return cands, local


def zonal_cover(
    ortho: Orthophoto | str | Path,
    zones: gpd.GeoDataFrame,
    *,
    id_col: str | None = None,
    classes: Classifier | None = None,
    workers: int = 2,
    window_pixels: int = 1 << 20,
) -> pd.DataFrame:
    """Share of green, impervious, water, bare and unclassified pixels per zone.

    Streams over the file's block windows (grouped to ``window_pixels``): each window is
    read, classified, and the zone IDs are rasterized on the window's transform (pixel
    centres, ``all_touched=False``); ``np.bincount`` of ``zone * 6 + class`` accumulates
    the counts. Memory is flat in the file size; windows without any zone are not read.
    ``workers`` threads each hold their own dataset handle (GDAL and numpy release the
    GIL).

    Parameters
    ----------
    ortho : Orthophoto or path
    zones : GeoDataFrame
        Polygons (units, compounds, parks, any layer) in any CRS: reprojected to the
        image CRS (recorded in ``attrs["zones_reprojected_from"]``). Overlapping zones
        are each counted in full (see the module docstring).
    id_col : str, optional
        Column with the zone ID; default the index.
    classes : Classifier, optional
        Pixel rules; default :func:`build_classifier` with the settings' thresholds.
    workers : int
        Threads (2 = both cores of the target machine).
    window_pixels : int
        Pixels per window (default 1 Mpx: about 50 MB of temporaries per thread).

    Returns
    -------
    DataFrame
        One row per zone, sorted by ID: the ID column, ``zone_area_m2``, ``pixels``
        (valid imaged pixels inside the zone), ``nodata_pixels``, ``vegetation_pixels``,
        ``impervious_pixels``, ``water_pixels``, ``bare_pixels``, ``unclassified_pixels``
        (shadow), ``covered_area_m2`` (pixels × pixel area), ``coverage_share``
        (covered / zone area, clipped to 1), ``green_share``, ``impervious_share``,
        ``water_share``, ``bare_share``, ``unclassified_share`` (shares of ``pixels``,
        0-1, NaN without imagery) and ``flag`` (``;``-joined: ``no_imagery``,
        ``partial_coverage`` below ``settings.imagery_min_coverage``,
        ``high_unclassified`` above ``settings.imagery_max_unclassified``; empty when
        fine). ``attrs`` hold the classifier, CRS and pixel area.
    """
    ortho = _as_ortho(ortho)
    ids, geoms, id_name, reprojected = _prepare_zones(zones, ortho, id_col)
    clf = classes if classes is not None else build_classifier(ortho, workers=workers)
    if clf.has_nir and not ortho.has_nir:
        raise RasterError(f"orthophoto {ortho.path}: the classifier expects NIR but the "
                          f"image has {ortho.band_order}. Fix: build it from this image")
    nz = len(geoms)
    counts = np.zeros((nz, N_CLASSES), dtype=np.int64)
    windows = block_windows(ortho, window_pixels=window_pixels)
    groups, boxes, jobs = _window_jobs(ortho, geoms, windows)
    if nz and not jobs:
        warnings.warn(
            f"zones: none of the {nz} zones overlaps the orthophoto {ortho.path.name} "
            f"(image bounds {tuple(round(v) for v in ortho.bounds)} in "
            f"{ortho.crs.to_string()}); every zone is flagged no_imagery. Check the zones' "
            "CRS (a GCJ-02 layer or a wrong set_crs) and the flight area",
            CoordinateWarning, stacklevel=2)
    classify = _WindowClassifier(ortho, clf)

    def work(job: tuple[int, np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        return _count_window(job, classify, ortho, windows, boxes, geoms, groups)

    try:
        with rasterio.Env(GDAL_CACHEMAX=_GDAL_CACHE_MB), warnings.catch_warnings():
            # rasterize's in-memory dataset is opened before its transform is set: rasterio
            # then warns "no geotransform" from worker threads; the result is unaffected
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            for cands, local in _bounded_map(work, jobs, workers):
                counts[cands] += local
    finally:
        classify.close()
    return _cover_table(ids, id_name, geoms, counts, ortho, clf, reprojected)


def _cover_table(ids: pd.Index, id_name: str, geoms: np.ndarray, counts: np.ndarray,
                 ortho: Orthophoto, clf: Classifier, reprojected: str | None) -> pd.DataFrame:
    area = shapely.area(geoms) * ortho.linear_unit_m ** 2 if len(geoms) else np.zeros(0)
    valid = counts[:, 1:].sum(axis=1)
    covered = valid * ortho.pixel_area_m2
    with np.errstate(divide="ignore", invalid="ignore"):
        share = counts / valid[:, None]
        coverage = np.where(area > 0, np.minimum(covered / area, 1.0), 0.0)
    df = pd.DataFrame({
        id_name: ids.to_numpy(),
        "zone_area_m2": area,
        "pixels": valid,
        "nodata_pixels": counts[:, NODATA],
        "vegetation_pixels": counts[:, VEGETATION],
        "impervious_pixels": counts[:, IMPERVIOUS],
        "water_pixels": counts[:, WATER],
        "bare_pixels": counts[:, BARE],
        "unclassified_pixels": counts[:, SHADOW],
        "covered_area_m2": covered,
        "coverage_share": coverage,
        "green_share": share[:, VEGETATION],
        "impervious_share": share[:, IMPERVIOUS],
        "water_share": share[:, WATER],
        "bare_share": share[:, BARE],
        "unclassified_share": share[:, SHADOW],
    })
    none = valid == 0
    partial = ~none & (coverage < settings.imagery_min_coverage)
    dark = ~none & (np.nan_to_num(share[:, SHADOW]) > settings.imagery_max_unclassified)
    flags = np.full(len(df), "", dtype=object)
    for mask, name in ((none, "no_imagery"), (partial, "partial_coverage"),
                       (dark, "high_unclassified")):
        flags[mask] = np.where(flags[mask] == "", name, flags[mask] + ";" + name)
    df["flag"] = flags
    df = df.sort_values(id_name, kind="stable").reset_index(drop=True)
    df.attrs.update({
        "crs": ortho.crs.to_string(), "pixel_area_m2": ortho.pixel_area_m2,
        "image": str(ortho.path), "band_order": ortho.band_order,
        "zones_reprojected_from": reprojected, "classifier": clf.describe(),
        "class_codes": dict(CLASS_NAMES),
    })
    return df


def imagery_indicators(
    ortho: Orthophoto | str | Path,
    units: gpd.GeoDataFrame,
    *,
    id_col: str | None = None,
    classes: Classifier | None = None,
    workers: int = 2,
) -> pd.DataFrame:
    """``green_cover_ratio`` (绿化覆盖率) and ``impervious_ratio`` per unit, in %.

    Parameters
    ----------
    ortho : Orthophoto or path
    units : GeoDataFrame
        Units (or any zones); ID from ``id_col``, else ``unit_id`` when present, else
        the index.
    id_col, classes, workers
        As in :func:`zonal_cover`.

    Returns
    -------
    DataFrame
        ``unit_id``, ``green_cover_ratio`` (vegetation pixels / imaged pixels × 100, %),
        ``impervious_ratio`` (%), ``coverage_share`` (0-1) and ``flag``, sorted by
        ``unit_id``. Ratios are NaN where the unit has no imagery. Shadow counts in the
        denominator only, so both ratios are lower bounds where shadow is large.
    """
    if id_col is None and "unit_id" in getattr(units, "columns", []):
        id_col = "unit_id"
    cover = zonal_cover(ortho, units, id_col=id_col, classes=classes, workers=workers)
    name = cover.columns[0]
    out = pd.DataFrame({
        "unit_id": cover[name].to_numpy(),
        "green_cover_ratio": cover["green_share"].to_numpy() * 100.0,
        "impervious_ratio": cover["impervious_share"].to_numpy() * 100.0,
        "coverage_share": cover["coverage_share"].to_numpy(),
        "flag": cover["flag"].to_numpy(),
    })
    out.attrs.update(cover.attrs)
    _report_coverage(out, cover.attrs.get("image", "orthophoto"))
    return out


def _report_coverage(out: pd.DataFrame, image: str) -> None:
    """An orthophoto covering no unit is an error; units it misses are reported (counts, IDs)."""
    none = out["flag"].str.contains("no_imagery", regex=False).to_numpy()
    if len(out) and none.all():
        raise RasterError(f"orthophoto {Path(image).name} covers none of the {len(out)} units (first "
                          f"{', '.join(map(str, out['unit_id'].head(3)))}). Fix: check its georeference and CRS "
                          "(a GeoTIFF without CRS, or in GCJ-02?) against the units, or leave [imagery] out")
    partial = out["flag"].str.contains("partial_coverage", regex=False).to_numpy()
    if none.any() or partial.any():
        ids = out["unit_id"].astype(str).to_numpy()
        warnings.warn(f"orthophoto {Path(image).name}: covers {int((~none).sum())} of {len(out)} units ("
                      f"{int((~none & ~partial).sum())} fully, {int(partial.sum())} in part); {int(none.sum())} "
                      f"without imagery get no green/impervious ratio (first {', '.join(ids[none][:3])})"
                      if none.any() else
                      f"orthophoto {Path(image).name}: covers {int(partial.sum())} of {len(out)} units only in "
                      f"part (first {', '.join(ids[partial][:3])}); their ratios are shares of the imaged part",
                      InputWarning, stacklevel=3)
