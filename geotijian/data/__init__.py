"""Packaged catalogues (facility types, indicators, life-circle levels, rule tables).

Files are copied from the project's reference folder with their ``source`` and
``confidence`` columns kept; read them through :func:`path` so installed and source trees
behave the same.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path


def path(name: str) -> Path:
    """Path of a packaged data file, e.g. ``path("facilities.csv")``."""
    p = Path(str(resources.files(__name__).joinpath(name)))
    if not p.exists():
        raise FileNotFoundError(f"packaged data file {name!r} not found in {p.parent}")
    return p
