"""The generator's pipeline: every stage in order, on one random stream.

:func:`generate` runs the stages of the other modules in a fixed order, each drawing from
the district's random stream (``default_rng([seed, 20240604])``) in turn; the facilities
draw from their own streams. The order is part of the output: moving a stage changes
every layer drawn after it (``tests/test_sample.py`` compares the bundled files byte for
byte).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from pyproj import Transformer

from .. import settings
from ._common import BASE_SIDE_M, CENTRE_LONLAT, Build, Table
from .committees import Towns, make_committees, make_towns
from .compounds import compound_names, compounds
from .facilities import plan_facilities
from .geography import (Barriers, Grid, Site, add_arterials, land_use, make_grid, make_parcels,
                        make_water_and_rail)
from .hotline import complaints
from .population import populate
from .roads import build_roads
from .rural import industry_and_parks, villages
from .survey import survey
from .urban import layout_slots, urban_blocks


@dataclass
class District:
    """One generated district, in arrays (metres, ``crs``); :mod:`.frames` makes the layers.

    ``comp`` / ``committee``: per compound / committee columns; ``bld``: the buildings
    (``item``: compound candidate, ``item_row`` maps it to a compound row); ``roads``:
    the road edges and ``n_nodes`` the network's nodes; ``parks``: park polygons;
    ``fac``: facilities, ``gaps``: the deliberate gaps; ``cmp``: complaints around the
    ``hotspot`` compound; ``srv``: survey respondents, ``under_sampled`` committees.
    """

    seed: int
    scale: float
    crs: Any
    grid: Grid
    barriers: Barriers
    towns: Towns
    comp: dict[str, Any]
    committee: dict[str, Any]
    bld: dict[str, np.ndarray]
    item_row: np.ndarray
    roads: dict[str, Any]
    n_nodes: int
    parks: Table
    fac: dict[str, np.ndarray]
    gaps: dict[str, list[str]]
    cmp: dict[str, np.ndarray]
    hotspot: int
    srv: dict[str, np.ndarray]
    under_sampled: list[str]


def generate(seed: int, scale: float) -> District:
    """Generate the district of ``seed`` and ``scale`` (area multiplier, > 0)."""
    if not (scale > 0 and math.isfinite(scale)):
        raise ValueError(f"scale must be a positive number (area multiplier), got {scale!r}")
    seed, scale = int(seed), float(scale)
    rng = np.random.default_rng([seed, 20240604])
    side = BASE_SIDE_M * math.sqrt(scale)
    crs = settings.metric_crs
    to_m = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    cx, cy = to_m.transform(*CENTRE_LONLAT)
    origin = np.array([cx - side / 2, cy - side / 2])
    build = Build()
    # the ground
    grid = make_grid(rng, origin, side)
    add_arterials(grid, build.net)
    barriers = make_water_and_rail(rng, grid, scale)
    site = Site(grid=grid, barriers=barriers, parcels=make_parcels(grid, barriers),
                lu=land_use(rng, grid, barriers, scale))
    # streets, compounds, buildings, parks
    slots, sub = urban_blocks(rng, site, build)
    layout_slots(rng, site, build, slots)
    hamlets = villages(rng, site, build, len(slots["cell"]))
    industry_and_parks(rng, site, build)
    cp = compounds(rng, site, build, slots, sub, hamlets, scale)
    roads, n_nodes = build_roads(rng, site, build.net, cp["item_ok"])
    # administration and residents
    C = cp["comp"]
    towns = make_towns(grid, scale)
    K = make_committees(rng, site, towns, C, scale)
    populate(rng, C, K, scale)
    compound_names(rng, C, K)
    # services and voices
    fac, gaps = plan_facilities(seed, site, C, K, towns, roads, scale)
    cmp_, hotspot = complaints(rng, C, barriers, scale)
    srv, under_sampled = survey(rng, C, K, gaps)
    return District(seed=seed, scale=scale, crs=crs, grid=grid, barriers=barriers, towns=towns,
                    comp=C, committee=K, bld=cp["bld"], item_row=cp["item_row"], roads=roads,
                    n_nodes=n_nodes, parks=build.parks, fac=fac, gaps=gaps, cmp=cmp_,
                    hotspot=hotspot, srv=srv, under_sampled=under_sampled)
