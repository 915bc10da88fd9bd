"""Community check-up units (社区体检单元): blocks, compounds, and units of 5,000-12,000 residents.

The chain is (or, in one call, ``build_units(roads, compounds, ...)``)::

    blocks = delineate_blocks(roads, boundary, barriers=(water, rail), towns=towns)
    compounds, report = allocate_population(compounds, source="buildings", buildings=b)
    units = delineate_units(blocks, compounds, committees, towns)
    range_compliance(units)

1. **Blocks** (街坊): the road centre lines of the chosen classes, rivers/canals (lines cut,
   water areas are removed), railways, the study boundary and the town boundaries are noded
   together (``shapely.union_all``) and polygonised (``shapely.polygonize``); faces outside
   the study area or inside water are dropped; slivers are merged into the neighbour with the
   longest shared edge. The result is validated as a coverage (no overlaps, union = study
   area minus water within a tolerance) and the check is reported in
   ``blocks.attrs["geotijian"]["validation"]``.
2. **Compounds are never split.** Each compound is attached to the block holding most of its
   area, and every other block holding a piece of it joins that block's *block group*;
   block groups are the atoms of every partition, so every compound lies in exactly one
   unit, and a unit takes all the blocks its compounds cover. Two cases are reported, not
   fused: a digitising overshoot (a piece under ``settings.compound_cut_share`` of the
   compound and nowhere wider than ``settings.compound_overshoot_m``: the outline drawn
   across the street's centre line), and a piece in another town (units never cross a town
   boundary: the compound is counted whole in the town holding most of it, and warned about).
3. **Units.** Within each town: a residents' committee (居委会) in range is one unit (its
   outline snapped to block boundaries: atoms go to the committee covering most of them);
   one below the floor merges with the adjacent committee of the same town giving the most
   compact result (Polsby-Popper of the union; merges that stay under the ceiling first);
   a group above the ceiling is split into k parts, k chosen so that the mean size is
   closest to the middle of the range, by recursive balanced bisection of the atom
   adjacency graph (16 sweep directions; each prefix grown best-first so it is connected;
   cut chosen by balance + compactness of both sides, the rest kept connected), then
   boundary atoms are moved to repair any unit still out of range and to shorten unit
   boundaries (compactness) within ±25 % of the group's mean size. Without committees,
   each land component of a town (between water, rail and the boundary) is split the same
   way: a regionalisation with a population floor *and* ceiling under contiguity.

Pieces too small to stand alone (an island north of a river, a committee cut off by a
railway) join the nearest unit across the gap (blocks within ``settings.unit_bridge_gap_m``,
else the nearest block); such a unit is in several parts and says so in ``flag_reason``.
Feasibility is checked before partitioning and stated in domain terms (warnings and
``units.attrs["geotijian"]["feasibility"]``); ``strict=True`` turns a blocking one into a
``FeasibilityError``.

Where each step lives:

========================  ==============================================================
``blocks.py``             blocks from roads, water, rail and boundaries; slivers; coverage
                          check; dense blocks refined; the momepy reference
``compounds.py``          compounds on blocks, the never-split rule (block groups),
                          overshoots and pieces across a town boundary
``grouping.py``           the starting groups: the committee of each atom (or land
                          components), islands joined across water or rail, feasibility
                          town by town (committees, compounds, towns that cannot be in range)
``split.py``              groups above the ceiling split (recursive balanced bisection)
``merge.py``              groups under the floor merged (most compact union)
``refine.py``             boundary moves: range repair, compactness refinement
``graph.py``              the atom graph and the set measures the steps share
``delineate.py``          :func:`delineate_units`: input checks, atoms, partition per town
``table.py``              the units table, flags and reasons, ``IdMap``, range compliance
``build.py``              :func:`build_units`: the whole chain in one call
``geometry.py``           CRS checks, shared-edge adjacency, unions, compactness, order
========================  ==============================================================
"""

from __future__ import annotations

from .blocks import (  # noqa: F401  (BLOCK_COLUMNS, momepy_enclosures: outside __all__, as before)
    BLOCK_COLUMNS,
    FINER_ROAD_CLASSES,
    delineate_blocks,
    momepy_enclosures,
    refine_blocks,
)
from .build import build_units
from .compounds import assign_compounds, compounds_from_landuse
from .delineate import delineate_units
from .geometry import _highway_mask, polsby_popper  # noqa: F401  (_highway_mask: used by the tests)
from .table import IdMap, range_compliance

__all__ = [
    "FINER_ROAD_CLASSES",
    "IdMap",
    "refine_blocks",
    "build_units",
    "delineate_blocks",
    "assign_compounds",
    "delineate_units",
    "range_compliance",
    "compounds_from_landuse",
    "polsby_popper",
]
