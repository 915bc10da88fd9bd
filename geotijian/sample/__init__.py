"""Deterministic sample district: a Jiading-like (嘉定) study area generated from a seed.

``make_sample_district()`` builds, in memory and in ``settings.metric_crs`` (EPSG:32651),
every input layer of a community check-up (社区体检) for a synthetic piece of Jiading,
Shanghai, centred on about 121.25°E, 31.38°N. ``write_sample()`` writes it like a real
delivery: one GeoPackage in CGCS2000 (EPSG:4490), an Amap (GCJ-02) POI table, a 12345
hotline table, a resident survey and a small drone orthophoto (EPSG:4549). The bundled
copy lives in ``layers/sample/``; ``sample_path(name)`` finds a file of it and
``python -m geotijian.sample [folder]`` regenerates it. Same seed and scale → identical
bytes of every file.

Where things are
----------------
The generator is a pipeline of stages, one module each, run in order by
:func:`.district.generate` on one random stream (the order is part of the output):

==================  ===================================================================
``geography``       arterial grid, river, canal, railway, parcels, land use (the ground)
``urban``           urban streets, sub-blocks, compound slots and their buildings, paths
``rural``           village lanes and hamlets, industry, farmland, comprehensive parks
``compounds``       compounds from slots and hamlets (some cut by a street), their names
``roads``           the noded road layer: edges, bridges, level crossings, one component
``committees``      towns (街镇) and residents' / villagers' committees
``population``      residents and households of compounds and committees
``facilities``      the facility plan, siting, deliberate gaps, bus and metro
``hotline``         12345 complaints;  ``survey``: the resident survey
``layers``          :func:`make_sample_district`: the GeoDataFrames
``delivery``        :func:`write_sample`, :func:`sample_path`, the command line
``ortho``           the RGB drone orthophoto painted from the layers
``names``           Chinese names;  ``_common``: constants, array helpers, ``Net``
==================  ===================================================================

How it is built (all vectorised with numpy / shapely 2 arrays)
---------------------------------------------------------------
* **Arterial grid**: lines 400-800 m apart (irregular spacing, crossings jittered by up to
  25 m), ``highway`` primary / secondary / tertiary. The district boundary follows the
  outer arterials. Every road feature is one edge between two intersections (or dead
  ends); edges share their end points exactly, so the roads layer *is* a noded network.
* **Water and rail**: one east-west river (30-60 m wide, meandering inside one row of the
  grid) per ~5 km and one north-south canal (18-24 m) per ~5 km, plus one diagonal
  railway. Roads cross the river and canal only at bridges (``structure="bridge"``: about
  every other arterial) and the railway only at some arterials
  (``structure="rail_crossing"``); every other street that meets them is cut, leaving
  dead ends and detours. Bridges are added where needed so the whole network is ONE
  connected component (fragments that cannot be reached are not generated).
* **Land use per grid cell**: urban residential (local streets ``tertiary`` /
  ``residential`` splitting the cell into sub-blocks of ~150-250 m, a few cul-de-sacs;
  gated compounds with rows of slab or tower blocks, an internal driveway (``service``)
  from the gate, paths between rows and a ``footway`` to each building entrance), villages
  (``unclassified`` lanes with hamlets 宅 of 2-6 houses), industry, public campuses,
  parks and farmland. Urbanity decreases away from two or more centres.
* **Towns (街镇)** are rectangles of grid cells (split along arterials) and tile the
  boundary exactly, water included. **Committees (居委会 / 村委会)** are unions of
  grid-cell parcels (cells less water) inside one town: their boundaries follow arterials
  and river/canal banks and they tile the town less its water. ``committee_id`` is the
  12-digit code town code + 3 digits (001-199 居委会, 201-299 村委会).
* **Population** lives on compounds (``population`` persons, ``households`` ≈
  population / 2.6). Committee populations are set first and shared among their compounds
  in proportion to floor area, so that at scale 1 (≈120,000 residents, ≈15 committees):
  at least two committees are below 5,000 (``population_class == "below"``), at least two
  above 12,000 (``"above"``), one of them because of a single compound of about 15,000
  residents (compound ``kind == "大型居住社区"``, ``big == True``), and the others within
  5,000-12,000. Committees' ``population`` equals the sum of their compounds exactly.
* **Facilities** are planned like a district's provision plan (``facilities.FACILITY_PLAN``), per
  residents of the district: a kindergarten per 5,000, a nursery per 10,000, a primary
  school per 10,000, a junior middle school per 18,000, a health station per 5,000, a
  community health centre per 30,000 (two per town), an elderly day care per 3,500, a
  fresh market per 12,000, ..., and per committee a service station (党群服务站) per
  5,000 and a cultural room per 6,000 of its residents. Each stands at a street-front
  site beside the compounds it serves, where it reaches the most residents not yet
  served within the type's walking distance; capacity follows the residents served
  (kindergarten places ≈ 3 % of them, 6-12 classes). The deliberate gaps (below) are
  planned in, and no facility is built for residents no site could reach.

Layers (in memory; the GeoPackage holds the same minus the test-aid columns marked †)
-------------------------------------------------------------------------------------
boundary (boundary_id, name) · towns (town_code, name, population, households) ·
committees (committee_id, name, town_code, kind 居委会/村委会, population, households,
population_class†) · compounds (compound_id, name, population, households, build_year,
committee_id, town_code, kind 商品房/售后公房/动迁安置房/别墅/大型居住社区/村宅, big†,
cut_by_road†) · buildings (building_id, levels, height m, use residential/public/industrial,
build_year, compound_id) · roads (road_id, highway, name, structure bridge/rail_crossing) ·
water (water_id, kind river/canal, name, width_m) · rail (rail_id, kind, name) · parks
(park_id, name, kind 综合公园/社区公园/游园, area_ha) · facilities (facility_id, type — a code of
``geotijian/data/facilities.csv``, 19 types — name, capacity, source delivery/amap†) ·
complaints (complaint_id, category, date, text) · survey (DataFrame, columns as
``survey_2024.csv``). In the files, facilities with ``source == "amap"`` (convenience
stores, fresh markets, post offices, canteens) are only in ``facilities_amap_gcj02.csv``:
a study loads both sources, as it would for a real delivery plus Amap POIs.

Things tests and demos may rely on (for any seed, scale ≥ 1)
-----------------------------------------------------------
* ``compounds["cut_by_road"]``: compounds crossed by a public street (two sub-blocks merged
  across a ``residential`` or ``tertiary`` street; at least one across a ``tertiary``
  street). Their IDs are also in ``compounds.attrs["cut_by_road"]``.
* ``compounds["big"]``: the single compounds above 12,000 residents (one per ~3 scale
  units, at least one).
* ``facilities.attrs["sample_gaps"]``, deliberate gaps in provision, each a list of
  committee IDs:

  - ``"kindergarten_300m"``: one 居委会 (the most populous one within 5,000-12,000) with no
    kindergarten within 350 m (straight line, so none within 300 m on foot) of its area;
  - ``"clinic_1000m"``: one peripheral committee (farthest from the population centre)
    with no ``community_health_centre`` or ``community_health_station`` within 1,000 m
    of its area;
  - ``"elderly_day_care_300m"``: in the last town (highest code), the committees south of
    the town's centre have no ``elderly_day_care`` within 300 m of their area.

  For the default seed at scale 1 these are listed in ``GAPS_DEFAULT``.
* ``survey.attrs["under_sampled"]``: committees deliberately surveyed at ~1‰ (below the
  2‰ rule); every other committee has ≥ 2‰ of its residents. About 3 % of respondents
  are under 16 (to be filtered by the survey reader).
* ``complaints.attrs["parking_hotspot"]``: the compound around which about a quarter of
  the hotline complaints (mostly 停车 parking) cluster.
* Facilities lie about 5-30 m from the street they were placed on, between the street
  and the fence of a compound they serve (POIs sit beside streets); bus stops 8-14 m
  from an arterial, metro stations about 20 m north of an arterial crossing.
* Urban coverage (residents of compounds > 300 persons, ``geotijian.service_coverage``
  on the roads layer) of the default sample, per cent: kindergarten 64, nursery 50,
  primary school 76, junior middle school 87, community health station 56 and centre
  57, elderly day care 50, community service station 65, cultural activity station 71,
  small sports ground 59, outdoor fitness 62, fresh market 65, metro 31, bus stop > 99:
  a Jiading urban area served to GB 50180-2018 with some gaps (``tests/test_sample.py``
  keeps it within such ranges). Village hamlets are served far less (kindergarten,
  school, clinic and market 1-6 %).

Scale
-----
``scale`` multiplies the *area*: scale 1 → ~25 km², 120,000 residents, ~1,200 compounds
(~100 urban compounds and ~1,100 village hamlets 村宅), ~14,500 network nodes (road end
points); scale 18.4 → ~460 km², ~1.8 million residents (residents grow as
``scale ** 0.93``: a larger area takes in more farmland and industry), ~23,000 compounds,
~290,000 nodes, ~120,000 buildings, generated in about 8-12 s on 2 cores (Jiading scale,
used by the benchmarks). Buildings are generated at every scale. The committee population classes
are guaranteed at scale ≥ 1; very small scales (< 0.5) give a valid but less varied
district.
"""

from __future__ import annotations

from ._common import GAPS_DEFAULT, GPKG_LAYERS, GPKG_NAME, SAMPLE_FILES
from .delivery import main, sample_path, write_sample
from .layers import make_sample_district

__all__ = [
    "make_sample_district",
    "write_sample",
    "sample_path",
    "SAMPLE_FILES",
    "GPKG_LAYERS",
    "GPKG_NAME",
    "GAPS_DEFAULT",
    "main",
]
