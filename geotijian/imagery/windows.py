"""Windows over an orthophoto and the threads that read them (one dataset per thread)."""

from __future__ import annotations

import math
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio
import shapely
from rasterio.windows import Window

if TYPE_CHECKING:
    from .reading import Orthophoto


_GDAL_CACHE_MB = 64  # GDAL block cache while streaming (counts towards RSS)


def block_windows(ortho: Orthophoto, *, window_pixels: int = 1 << 20) -> list[Window]:
    """Windows aligned on the file's internal blocks, grouped to about ``window_pixels``.

    Tiles of 512 × 512 are grouped 2 × 2 by default (1 Mpx); strips (one row high) are
    grouped into full-width bands of rows. The windows cover the image exactly, in
    row-major order.
    """
    return _grid_windows(ortho.height, ortho.width, ortho.block_shape, window_pixels)


def _grid_windows(height: int, width: int, block_shape: tuple[int, int],
                  window_pixels: int) -> list[Window]:
    bh, bw = block_shape
    bh, bw = max(1, min(bh, height)), max(1, min(bw, width))
    kx = max(1, int(math.sqrt(window_pixels) // bw))
    ww = min(width, kx * bw)
    ky = max(1, int(window_pixels // (ww * bh)))
    wh = min(height, ky * bh)
    out = []
    for row in range(0, height, wh):
        for col in range(0, width, ww):
            out.append(Window(col, row, min(ww, width - col), min(wh, height - row)))
    return out


def _window_boxes(ortho: Orthophoto, windows: Sequence[Window]) -> np.ndarray:
    """Axis-aligned boxes (image CRS) of the windows, as shapely polygons."""
    c0 = np.array([w.col_off for w in windows], dtype=float)
    r0 = np.array([w.row_off for w in windows], dtype=float)
    c1 = c0 + np.array([w.width for w in windows], dtype=float)
    r1 = r0 + np.array([w.height for w in windows], dtype=float)
    t = ortho.transform
    xs, ys = [], []
    for cc, rr in ((c0, r0), (c1, r0), (c0, r1), (c1, r1)):
        xs.append(t.a * cc + t.b * rr + t.c)
        ys.append(t.d * cc + t.e * rr + t.f)
    xs_a, ys_a = np.vstack(xs), np.vstack(ys)
    return shapely.box(xs_a.min(0), ys_a.min(0), xs_a.max(0), ys_a.max(0))


class _Readers:
    """One rasterio dataset per thread (GDAL handles are not thread-safe)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.local = threading.local()
        self.lock = threading.Lock()
        self.opened: list[Any] = []

    def get(self) -> Any:
        ds = getattr(self.local, "ds", None)
        if ds is None:
            ds = rasterio.open(self.path)
            self.local.ds = ds
            with self.lock:
                self.opened.append(ds)
        return ds

    def close(self) -> None:
        with self.lock:
            for ds in self.opened:
                ds.close()
            self.opened.clear()


def _read_window(ds: Any, ortho: Orthophoto, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """Bands (R, G, B[, N]) of a window and its validity mask."""
    idx = ortho.read_indexes
    data = ds.read(idx, window=window)
    if ortho.mask == "alpha":
        valid = ds.read(ortho.alpha, window=window) > 0
    elif ortho.mask == "nodata":
        valid = np.any(data != data.dtype.type(ortho.nodata), axis=0)
        if data.dtype.kind == "f":
            valid &= np.all(np.isfinite(data), axis=0)
    elif ortho.mask == "internal":
        valid = ds.read_masks(idx[0], window=window) > 0
    elif ortho.mask == "nan":
        valid = np.all(np.isfinite(data), axis=0)
    else:
        valid = np.ones(data.shape[1:], dtype=bool)
    return data, valid


def _bounded_map(fn: Callable[[Any], Any], items: Iterable[Any], workers: int,
                 depth: int | None = None) -> Iterator[Any]:
    """``map`` over a thread pool with at most ``depth`` tasks in flight, in order."""
    if workers <= 1:
        for it in items:
            yield fn(it)
        return
    depth = depth or 2 * workers
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending: deque = deque()
        for it in items:
            pending.append(pool.submit(fn, it))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def _sample_windows(windows: Sequence[Window], n: int) -> list[Window]:
    if len(windows) <= n:
        return list(windows)
    pick = np.unique(np.linspace(0, len(windows) - 1, n).round().astype(int))
    return [windows[i] for i in pick]
