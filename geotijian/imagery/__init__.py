"""Orthophoto indicators: green cover and impervious surface per zone, window by window.

Districts receive drone or aerial orthophotos (RGB, sometimes with near-infrared) as
GeoTIFFs of several GB at 5-20 cm. This module opens them with rasterio
(:func:`read_orthophoto`), classifies every pixel into six small integer codes with
vectorised band arithmetic (:class:`Classifier`), and counts the classes per zone (unit,
compound, any polygon layer) by streaming over the file's own block windows
(:func:`zonal_cover`), so memory stays flat for a file larger than RAM. Optional outputs
are a tiled, deflate-compressed, COG-style classified GeoTIFF (:func:`write_classified`) and
a PNG quicklook (:func:`quicklook_png`). :func:`imagery_indicators` returns the two catalogue
indicators ``green_cover_ratio`` (绿化覆盖率, %) and ``impervious_ratio`` (%) per unit.

Class codes
-----------
====  ===============  ==========================================================
code  name             rule (first match wins, in this order)
====  ===============  ==========================================================
0     nodata           every band at the nodata value (GDAL's dataset-mask rule),
                       alpha = 0, the file's mask band, or NaN
5     shadow           brightness < ``imagery_shadow_brightness`` (see below)
3     water            NIR: NDWI = (G - N) / (G + N) > ``imagery_ndwi_threshold``
                       (McFeeters 1996); RGB only: blue-dominant and dark
                       (b > r, b > g, blue chromatic b/(r+g+b) >
                       ``imagery_water_blue_chroma``, brightness <
                       ``imagery_water_max_brightness``)
1     vegetation       NIR: NDVI = (N - R) / (N + R) > ``imagery_ndvi_threshold``;
                       RGB only: ExG = 2g - r - b on chromatic coordinates
                       (Woebbecke et al. 1995) > ``imagery_exg_threshold``, or
                       VARI = (G - R) / (G + R - B) (Gitelson et al. 2002) >
                       ``imagery_vari_threshold``; or Otsu's threshold of the index
4     bare soil        warm colour: r > g > b, red minus blue chromatic >
                       ``imagery_bare_red_blue_chroma`` and red chromatic <
                       ``imagery_bare_max_red_chroma``
2     impervious       every other valid pixel (roofs, roads, paving)
====  ===============  ==========================================================

*Brightness* is the mean of the visible bands or, when NIR exists, the larger of that mean
and the NIR value, as a share of the image's *white level* (255 for 8-bit data; otherwise
the 99.5th percentile of the brightest visible band over a strided sample of windows, or
the ``white_level`` argument). Taking NIR into account keeps sunlit tree crowns, which
are dark in the visible bands but bright in NIR, out of the shadow class. Shadow pixels
count as neither green nor impervious; they are reported as *unclassified*, and every
share is a share of the valid (imaged) pixels, so the green cover ratio is a lower bound
when shadow is large (the ``high_unclassified`` flag says so).

Otsu's method (``otsu=True``) replaces the fixed vegetation threshold by the threshold
that maximises the between-class variance of the vegetation index, from one histogram
accumulated over a strided sample of windows (at most ``sample_windows``; valid pixels
that are not shadow or water, so the split is vegetation against the other land covers):
the pass stays streaming.

Where things are
----------------
``reading`` (:func:`read_orthophoto`, :class:`Orthophoto`: CRS, band roles, mask),
``windows`` (:func:`block_windows`, per-thread readers, bounded thread pool),
``classify`` (class codes, :class:`Classifier`, :func:`build_classifier`, lookup tables),
``zonal`` (:func:`zonal_cover`, :func:`imagery_indicators`), ``outputs``
(:func:`write_classified`, :func:`quicklook_png`). Everything public is importable from
``geotijian.imagery``.

Known failure cases
-------------------
- Red tile roofs and red-brick paving are warm like soil: with r/(r+g+b) below
  ``imagery_bare_max_red_chroma`` they become bare soil instead of impervious.
- Dark water (deep, shaded or turbid) below the shadow threshold counts as shadow
  (unclassified); shadow on asphalt under a blue sky can pass the RGB water rule, and
  with NIR a shadow on a surface with higher green than NIR can pass NDWI.
- Seasonal vegetation: winter or dry-season grass and deciduous trees without leaves fall
  below the NDVI/ExG threshold (impervious or bare); compare flights of the same season.
- RGB ExG confuses green-painted roofs, sports courts and algae-green water with
  vegetation, and under-detects dark or yellowish vegetation; prefer NIR imagery.
- Shadowed vegetation counts as shadow in RGB imagery (dark in every band).
- Bright bare fields of neutral colour (harvested or ploughed, NDVI near or below 0, as in
  the NAIP test tile) miss the warm-colour soil rule and count as impervious; rural
  impervious shares are upper bounds.
- Pixels are counted by their centre (``all_touched=False``): zones only a few pixels wide
  are approximated; imagery with a geographic CRS is rejected (reproject it first).

Zones
-----
Zones are reprojected to the image CRS (recorded in the result's ``attrs``). Overlapping
zones are each counted independently: they are split into groups of mutually
non-overlapping zones (greedy colouring of the overlap graph) and each group is
rasterized separately per window.

Speed and memory
----------------
Windows are the file's blocks grouped to about 1 Mpx; windows that no zone touches are
not read, and a zone that covers a whole window is counted without rasterizing. 8-bit
images of 16 Mpx or more are classified through lookup tables built once per classifier
by the same rules: all 2^24 colours (16 MiB) for RGB, and for RGBN a colour table plus
(green, NIR) and (NIR, red) pair tables: a few gathers per pixel instead of about thirty
float operations, with identical results. Each thread holds one dataset handle and reuses its window
buffers; GDAL's block cache is held to 64 MB while streaming. Peak memory is about
250 MB for a 4.8 GB image (see ``benchmarks/bench_imagery.py``).
"""

from __future__ import annotations

from .classify import (BARE, CLASS_COLOURS, CLASS_NAMES, IMPERVIOUS, N_CLASSES, NODATA, SHADOW,
                       VEGETATION, WATER, Classifier, build_classifier)
from .outputs import quicklook_png, write_classified
from .reading import Orthophoto, read_orthophoto
from .windows import block_windows
from .zonal import imagery_indicators, zonal_cover

__all__ = [
    "NODATA", "VEGETATION", "IMPERVIOUS", "WATER", "BARE", "SHADOW", "CLASS_NAMES",
    "CLASS_COLOURS", "N_CLASSES", "Orthophoto", "Classifier", "read_orthophoto",
    "build_classifier", "block_windows", "zonal_cover", "write_classified", "quicklook_png",
    "imagery_indicators",
]
