"""Run bookkeeping for a study: timed steps with a progress line, captured warnings,
input checksums, package versions, and a staging folder swapped into place at the end.

A run writes into ``outputs/.<study>.staging-<pid>/`` and only when every step has
succeeded renames it onto ``outputs/<study>/``: a failing step or Ctrl-C leaves the previous
outputs untouched and no half-written folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import os
import platform
import shutil
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

_PACKAGES = ("geotijian", "numpy", "pandas", "geopandas", "shapely", "pyproj", "pyogrio", "osmnx",
             "networkx", "scipy", "numba", "folium", "mapclassify", "matplotlib", "rasterio", "openpyxl",
             "esda", "libpysal")


def sha256(path: str | os.PathLike, *, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file, streamed."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def package_versions() -> dict[str, str]:
    """Versions of the packages a result depends on (for run.json)."""
    out = {"python": platform.python_version()}
    for name in _PACKAGES:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            out[name] = importlib.metadata.version(name)
    return out


@dataclass
class RunLog:
    """Timings per step and warnings of one run."""

    progress: bool = True
    timings: dict[str, float] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    _bar: object = None

    def start(self, total_steps: int) -> None:
        # disable=None: a bar on a terminal, nothing in CI logs or redirected output
        self._bar = tqdm(total=total_steps, desc="geotijian", unit="step", disable=None if self.progress else True,
                         file=sys.stderr, leave=True, bar_format="{desc}: {n_fmt}/{total_fmt} {bar} {elapsed}")

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        """Time one step, collect its warnings, advance the progress bar."""
        if self._bar is not None:
            self._bar.set_description_str(f"geotijian: {name}")
        t0 = time.perf_counter()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                yield
            finally:
                self.timings[name] = round(time.perf_counter() - t0, 3)
        for w in caught:
            msg = f"[{name}] {w.category.__name__}: {w.message}"
            if msg not in self.warnings:
                self.warnings.append(msg)
        if self._bar is not None:
            self._bar.update(1)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.set_description_str("geotijian: done")
            self._bar.close()


@contextlib.contextmanager
def staged_output(final: Path) -> Iterator[Path]:
    """Yield a staging folder beside ``final``; on success it replaces ``final``.

    On any exception (including KeyboardInterrupt) the staging folder is deleted and
    ``final`` is left as it was.
    """
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    staging = final.parent / f".{final.name}.staging-{os.getpid()}"
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir()
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = final.parent / f".{final.name}.old-{os.getpid()}"
    if final.exists():
        os.replace(final, old)
    os.replace(staging, final)
    if old.exists():
        shutil.rmtree(old, ignore_errors=True)
