"""The one decorator of geotijian's kernels: numba's ``njit`` with the project's options.

* ``cache=True``: machine code is written to disk on the first call and loaded on the
  next runs (``__pycache__`` beside the module; numba's user-wide cache directory,
  ``~/.cache/numba`` on Linux, when the package folder is read-only; ``NUMBA_CACHE_DIR``
  overrides both). Where no folder is writable at all the kernels are compiled in
  memory on each run instead (correct, a few seconds slower to start).
* ``nogil=True``: the loops release the GIL, so a second thread reads GEOS meanwhile
  (noding, the edge grid, snapping in two threads).
* ``error_model="numpy"``: a float division by zero gives inf/NaN as in C (the kernels
  never divide by a zero they use), with no Python-style check in the loops.
* no ``fastmath``: floating-point operations are kept one by one and in order (no
  reassociation, no fused multiply-add), so the segment arithmetic reproduces GEOS's to
  the last bit (tested against shapely).
"""

from __future__ import annotations

from collections.abc import Callable

import numba

_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": False}


def jit(fn: Callable) -> Callable:
    """Compile ``fn`` lazily with numba (on its first call), cached on disk if possible."""
    try:
        return numba.njit(cache=True, **_OPTIONS)(fn)
    except RuntimeError:  # numba found no writable cache folder: compile in memory
        return numba.njit(cache=False, **_OPTIONS)(fn)
