"""Shared fixtures: the real data folder beside the project, and a clean settings state."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import pyogrio

from geotijian import settings

# Reading a GeoPackage must not leave GDAL .aux.xml sidecars in the output folders the
# determinism tests compare.
pyogrio.set_gdal_config_options({"GDAL_PAM_ENABLED": "NO"})

ROOT = Path(__file__).resolve().parents[1]


def shared_data_dir() -> Path | None:
    """``../shared/data`` beside the repository (CI has it), or $GEOTIJIAN_SHARED_DATA."""
    env = os.environ.get("GEOTIJIAN_SHARED_DATA")
    for cand in ([Path(env)] if env else []) + [ROOT.parent / "shared" / "data"]:
        if cand.is_dir():
            return cand
    return None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    d = shared_data_dir()
    if d is None:
        pytest.skip("real data folder ../shared/data is absent (set GEOTIJIAN_SHARED_DATA); CI has it")
    return d


@pytest.fixture(scope="session")
def osm_dir(shared_data: Path) -> Path:
    return shared_data / "osm"


@pytest.fixture(autouse=True)
def _restore_settings():
    saved = settings.current()
    yield
    settings.configure(**saved)
