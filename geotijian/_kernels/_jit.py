"""The one decorator of geotijian's kernels: numba's ``njit`` with the project's options.

* ``cache=True``: the machine code is written to disk on the first call (about 10-25 s
  of compiling for all the kernels, once) and loaded on the next runs: in
  ``__pycache__`` beside the module, or, where the package folder is read-only, in
  numba's user-wide cache folder (``~/.cache/numba`` on Linux, ``%LOCALAPPDATA%`` on
  Windows); ``NUMBA_CACHE_DIR`` overrides both. Where no folder is writable at all the
  kernels are compiled in memory on each run instead, with a warning (correct, only
  slower to start).
* ``nogil=True``: the loops release the GIL, so a second thread reads GEOS meanwhile
  (noding, the edge grid, snapping in two threads).
* ``error_model="numpy"``: a float division by zero gives inf/NaN as in C (the kernels
  never use such a quotient), with no Python-style check in the loops.
* no ``fastmath``: floating-point operations are kept one by one and in order (no
  reassociation, no contraction into fused multiply-adds), so the segment arithmetic
  reproduces GEOS's to the last bit (tested against shapely).

A kernel calls only helpers of its own module: numba's cache is keyed on the source of
the module a function lives in, so a helper edited in another module would leave stale
machine code behind.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numba

from ..errors import GeotijianWarning

_OPTIONS = {"nogil": True, "error_model": "numpy", "fastmath": False}
_warned = False


def jit(fn: Callable) -> Callable:
    """Compile ``fn`` lazily with numba (on its first call), cached on disk if possible."""
    global _warned
    try:
        return numba.njit(cache=True, **_OPTIONS)(fn)
    except RuntimeError:  # numba found no writable cache folder: compile in memory
        if not _warned:
            _warned = True
            warnings.warn("geotijian: no writable folder for numba's cache (the package "
                          "folder and the user cache folder are read-only): the network "
                          "kernels are compiled again in each run (10-25 s). Set "
                          "NUMBA_CACHE_DIR to a writable folder to keep them.",
                          GeotijianWarning, stacklevel=2)
        return numba.njit(cache=False, **_OPTIONS)(fn)
