"""Deterministic sample district: a Jiading-like (嘉定) study area generated from a seed.

``make_sample_district()`` builds, in memory and in ``settings.metric_crs`` (EPSG:32651),
every input layer of a community check-up (社区体检) for a synthetic piece of Jiading,
Shanghai, centred on about 121.25°E, 31.38°N. ``write_sample()`` writes it like a real
delivery: one GeoPackage in CGCS2000 (EPSG:4490), an Amap (GCJ-02) POI table, a 12345
hotline table, a resident survey and a small drone orthophoto (EPSG:4549). The bundled
copy lives in ``layers/sample/``; ``sample_path(name)`` finds a file of it and
``python -m geotijian.sample [folder]`` regenerates it. Same seed and scale → identical
bytes of every file.

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
* **Facilities** are planned like a district's provision plan (``_FACILITY_PLAN``), per
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

  For the default seed at scale 1 these are listed in ``GAPS_DEFAULT`` below.
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

import argparse
import math
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import Transformer
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from . import settings
from .io.atomic import atomic_path, fixed_gdal_date
from .io.coords import wgs84_to_gcj02

__all__ = [
    "make_sample_district",
    "write_sample",
    "sample_path",
    "SAMPLE_FILES",
    "GPKG_LAYERS",
    "main",
]

# --------------------------------------------------------------------------- constants
CENTRE_LONLAT = (121.25, 31.38)          #: centre of the sample (Jiading, Shanghai)
BASE_SIDE_M = 5000.0                     #: side of the square district at scale 1 (m)
BASE_POPULATION = 120_000                #: residents at scale 1 (persons)
COMMITTEES_PER_SCALE = 15                #: committees at scale 1
BIG_COMPOUND_POP = 15_000                #: the single large compound (persons)
#: residents = BASE_POPULATION × scale ** POPULATION_EXPONENT: larger areas take in more
#: farmland and industry (scale 18.4 → ~1.8 million residents, Jiading's 2020 census figure)
POPULATION_EXPONENT = 0.93
PERSONS_PER_HOUSEHOLD = 2.6              #: Shanghai 7th census ≈ 2.3-2.7
DISTRICT_CODE = "310114"                 #: 嘉定区
DELIVERY_CRS = "EPSG:4490"               #: CGCS2000, like a real delivery
ORTHO_CRS = "EPSG:4549"                  #: CGCS2000 / 3-degree GK CM 120E (drone ortho)
GPKG_NAME = "sample_district.gpkg"
GPKG_LAYERS = ("boundary", "towns", "committees", "compounds", "buildings", "roads",
               "water", "rail", "parks", "facilities")
SAMPLE_FILES = (GPKG_NAME, "facilities_amap_gcj02.csv", "complaints_12345.csv",
                "survey_2024.csv", "ortho_rgb.tif")
_FIXED_DATE = "2024-06-04T00:00:00Z"     # OGR_CURRENT_DATE: GeoPackage timestamps
_SAT_ITEMS = {
    "sat_livable": "宜居共建", "sat_safety": "安全韧性", "sat_renewal": "品质更新",
    "sat_green": "绿色低碳", "sat_transport": "交通便捷", "sat_inclusive": "多元共享",
    "sat_governance": "精细共治", "sat_smart": "智慧高效",
}
#: ``facilities.attrs["sample_gaps"]`` for the default seed (20240604) at scale 1; a test
#: keeps this in step with the generator.
GAPS_DEFAULT: dict[str, list[str]] = {
    "kindergarten_300m": ["310114102005"],
    "clinic_1000m": ["310114101001"],
    "elderly_day_care_300m": ["310114102005", "310114102201", "310114102202", "310114102203"],
}

# Land use codes of grid cells
_URB, _BIG, _PARK, _PUB, _VIL, _IND, _FARM = range(7)

# --------------------------------------------------------------------------- names
_TOWN_NAMES = ["菊园新区", "嘉定镇街道", "新成路街道", "真新街道", "南翔镇", "安亭镇",
               "马陆镇", "徐行镇", "华亭镇", "外冈镇", "江桥镇", "嘉定工业区"]
_STEMS = (
    "清河 塔城 博乐 城中 叶城 胜辛 裕民 墅沟 洪德 平城 金沙 嘉罗 福海 树屏 梅园 桃园 李园 "
    "银杏 秋霞 州桥 迎园 盛丰 西门 北水 嘉宁 丰庄 白银 新城 金鹤 澄浏 双丁 德富 伊宁 天祝 "
    "永盛 高台 玉门 仓场 汇旺 和政 环城 沪嘉 宝安 嘉戬 城北 练祁 横沥 娄塘 曹王 朱桥 望新 "
    "戬浜 黄渡 方泰 封浜 马陆 希望 众仁 育绿 众和 澄江 嘉唐 新郁 胜竹 汇源 云谷 招贤 宁河 "
    "绿意 嘉安 嘉怡 紫荆 白鹤 浏翔 宝翔 恒荣 沥红 聚源 泰宁 陆渡 钱门 星塔 华江 乐业 菊盛 "
    "嘉新 德园 迎春 新源 振新 汇龙 雨化 昌吉 阿克 和静 苏民 兴贤 石冈 浏岛 嘉前 毛桥"
).split()
_BRANDS = ("万科 保利 绿地 中冶 金地 龙湖 招商 华润 嘉宝 嘉乐 金鹤 丽景 汇宝 锦绣 明华 "
           "紫气东来 城投 上实 旭辉 新城").split()
_SUFFIX_OLD = ["新村", "小区", "公寓", "一村", "二村", "三村", "新村", "小区"]
_SUFFIX_MID = ["花园", "苑", "家园", "新苑", "公寓", "佳苑", "花苑", "名苑"]
_SUFFIX_NEW = ["名邸", "雅苑", "华庭", "府", "城", "湾", "悦府", "公馆", "嘉园", "云庭"]
_SURNAMES = list("王张李朱陆陈沈顾钱周徐孙吴黄金唐姚杨蔡宋郁施曹范倪龚秦严薛邱")
_HAMLET_SUFFIX = ["家宅", "家宅", "家宅", "家浜", "家巷", "家角", "家桥", "家埭"]
_DIR_PREFIX = ["", "", "", "东", "西", "南", "北", "前", "后", "大", "小"]
_PHASES = ["", "二期", "三期", "四期", "五期", "六期", "七期", "八期", "九期"]
_RIVER_NAMES = ["练祁河", "蕰藻浜", "新槎浦", "顾浦", "吴淞江", "娄塘河", "封浜河"]
_CANAL_NAMES = ["横沥河", "盐铁塘", "东横沥", "徐行港", "沙浦", "钱门塘", "马陆塘"]
_PARK_STEMS = ["紫气东来", "远香湖", "秋霞圃", "汇龙潭", "州桥", "嘉定", "叶池", "桃园",
               "金鹤", "白银"]


#: Facility plan: (code, residents per facility, pool, level, siting distance m, name
#: prefix, name endings, capacity rule). The district gets ``residents / per`` facilities
#: of the type, shared among the ``level`` areas (``"committee"`` 居委会/村委会, 5-minute
#: life circle; ``"town"`` 街镇, 10/15-minute) in proportion to the residents of the type's
#: ``pool`` (``"urban"`` compounds, or ``"all"`` compounds incl. hamlets 村宅: villagers
#: use the urban kindergartens and schools of their district); an area gets
#: ``max(1, round(share / per))``, none below 40 % of ``per``. Each is sited beside a
#: compound of the pool, greedily where it reaches most residents not yet reached within
#: the siting distance (GB 50180-2018 App. C walking distance of ``facilities.csv``; a
#: nominal one for nursing homes, convenience stores, post offices, canteens and toilets,
#: which have none). Capacity rule ``(per resident, unit, min units, max units)``:
#: capacity = residents served (nearest facility of the type) × rate, in whole units
#: (classes of 30/45/50 places, beds, places, stalls, seats), clipped. Densities and
#: rates are sample settings in the spirit of GB 50180-2018 App. B/C and Shanghai norms
#: (kindergarten ≈ 30 places, primary school ≈ 55, junior middle school ≈ 30 per 1,000
#: residents; nursery 4.5 places per 1,000; nursing-home beds ≈ 3 % of residents over
#: 60), set so that the urban coverage of the default sample lands in the ranges of a
#: real Jiading urban area (asserted by ``tests/test_sample.py``); they are not standards.
_FACILITY_PLAN: list[tuple[str, int, str, str, int, str, tuple[str, ...],
                           tuple[float, int, int, int] | None]] = [
    ("kindergarten", 5000, "urban", "town", 300, "嘉定区", ("幼儿园",), (0.03, 30, 6, 12)),
    ("nursery", 10000, "urban", "town", 300, "", ("宝宝屋", "托育园", "托儿所"), (0.0045, 1, 20, 120)),
    ("primary_school", 10000, "urban", "town", 500, "嘉定区", ("小学",), (0.055, 45, 12, 36)),
    ("junior_middle_school", 18000, "urban", "town", 1000, "嘉定区", ("中学", "初级中学", "实验中学"),
     (0.03, 50, 12, 36)),
    ("community_health_station", 5000, "urban", "town", 300, "", ("社区卫生服务站",), None),
    ("community_health_centre", 30000, "urban", "town", 1000, "@town", ("社区卫生服务中心",),
     (0.0008, 1, 20, 80)),
    ("community_service_station", 5000, "all", "committee", 300, "@committee", ("党群服务站",), None),
    ("cultural_activity_station", 6000, "all", "committee", 500, "", ("文化活动室",), None),
    ("elderly_day_care", 3500, "urban", "town", 300, "", ("日间照料中心", "长者照护之家", "综合为老服务中心"),
     (0.004, 1, 20, 60)),
    ("nursing_home", 40000, "all", "town", 500, "", ("养老院", "敬老院", "颐养院"), (0.009, 1, 100, 500)),
    ("fresh_market", 12000, "urban", "town", 500, "", ("菜市场", "标准化菜市场", "生鲜超市"), (0.01, 1, 60, 180)),
    ("convenience_store", 1500, "all", "committee", 300, "@brand", ("店)",), None),
    ("small_sports_ground", 6000, "urban", "town", 300, "", ("篮球场", "多功能运动场", "笼式足球场"), None),
    ("outdoor_fitness_ground", 5000, "all", "committee", 300, "", ("健身点",), None),
    ("post_office", 40000, "urban", "town", 1000, "嘉定", ("邮政支局",), None),
    ("community_canteen", 15000, "urban", "town", 500, "", ("长者食堂",), (0.005, 1, 60, 200)),
    ("public_toilet", 8000, "all", "committee", 500, "", ("公共厕所",), None),
]
#: Siting: a compound counts as reached from a site when the grid (L1) distance from the site
#: to its gate is at most this share of the walking distance (the walk adds snap offsets
#: and detours; 0.8 matches the network coverage of the sample best).
_SITE_REACH = 0.8
_STORE_BRANDS = ["全家", "罗森", "快客", "好德", "可的", "联华快客", "7-Eleven", "喜士多"]


def _ordinal_names(base: np.ndarray) -> np.ndarray:
    """Make names unique by appending 二期/三期... to repeats, in order (vectorised)."""
    s = pd.Series(base, dtype=object)
    k = s.groupby(s).cumcount().to_numpy()
    phases = np.array(_PHASES + [f"{i}期" for i in range(10, 200)], dtype=object)
    return (s.to_numpy() + phases[np.minimum(k, len(phases) - 1)]).astype(object)


def _numbered_names(base: np.ndarray, ending: np.ndarray, *, numerals: str = "第") -> np.ndarray:
    """``base + ending``, repeats numbered in order: 清河幼儿园, 清河第二幼儿园, ...
    (``numerals=""``: 全家(清河店), 全家(清河二店), ...)."""
    s = pd.Series(np.asarray(base, dtype=object) + "\x00" + np.asarray(ending, dtype=object))
    k = s.groupby(s).cumcount().to_numpy()
    nums = np.array([""] + [numerals + c for c in "二三四五六七八九"]
                    + [f"{numerals}{i}" for i in range(10, 100)], dtype=object)
    return (np.asarray(base, dtype=object) + nums[np.minimum(k, len(nums) - 1)]
            + np.asarray(ending, dtype=object)).astype(object)


# --------------------------------------------------------------------------- helpers
def _ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner index and rank within owner for ``counts`` items per owner."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return owner, rank


def _largest_part(geoms: np.ndarray) -> np.ndarray:
    """Each geometry reduced to its largest polygon (None stays None)."""
    out = np.array(geoms, dtype=object)
    multi = shapely.get_num_geometries(out) > 1
    if multi.any():
        parts, owner = shapely.get_parts(out[multi], return_index=True)
        area = shapely.area(parts)
        order = np.lexsort((-area, owner))
        first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
        out[np.flatnonzero(multi)[owner[first]]] = parts[first]
    return out


def _polys(corners: np.ndarray) -> np.ndarray:
    """Polygons from an (n, 4, 2) array of corners."""
    ring = np.concatenate([corners, corners[:, :1]], axis=1)
    return shapely.polygons(ring)


@dataclass
class _Table:
    """Column arrays built by concatenating groups (a tiny ragged dataframe)."""

    cols: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, **kw: Any) -> None:
        n = max(len(np.atleast_1d(v)) for v in kw.values() if np.ndim(v) > 0)
        for k, v in kw.items():
            a = np.asarray(v)
            if a.ndim == 0:
                a = np.full(n, v, dtype=object if isinstance(v, str) or v is None else None)
            self.cols.setdefault(k, []).append(a)

    def get(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.cols.items()}


class _Net:
    """Network under construction: nodes (x, y) and lines holding nodes at parameters t.

    A line is straight; a node on it is recorded as (node, line, t in [0, 1]). Edges are
    the consecutive nodes of each line once sorted by t, so every junction is one shared
    node and the road layer is noded by construction.
    """

    def __init__(self) -> None:
        self.xy: list[np.ndarray] = []
        self.n_nodes = 0
        self.lines = _Table()
        self.n_lines = 0
        self.mem: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def nodes(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        ids = np.arange(self.n_nodes, self.n_nodes + len(xy))
        self.n_nodes += len(xy)
        self.xy.append(xy)
        return ids

    def add_lines(self, n: int, *, highway: Any, name: Any = None, art: Any = -1,
                  item: Any = -1, parcel: Any = -1) -> np.ndarray:
        ids = np.arange(self.n_lines, self.n_lines + n)
        self.n_lines += n
        if n:
            def full(v: Any, dtype: Any) -> np.ndarray:
                a = np.empty(n, dtype=dtype)
                a[:] = v
                return a
            self.lines.add(highway=full(highway, object), name=full(name, object),
                           art=full(art, np.int64), item=full(item, np.int64),
                           parcel=full(parcel, np.int64))
        return ids

    def member(self, node: np.ndarray, line: np.ndarray, t: np.ndarray) -> None:
        node, line, t = np.broadcast_arrays(np.asarray(node), np.asarray(line), np.asarray(t, float))
        self.mem.append((node.ravel().astype(np.int64), line.ravel().astype(np.int64),
                         t.ravel().astype(float)))


def _components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray]:
    g = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    return connected_components(g, directed=False)


# --------------------------------------------------------------------------- generator
class _District:
    """One generated district (internal): see the module docstring for the model."""

    def __init__(self, seed: int, scale: float) -> None:
        if not (scale > 0 and math.isfinite(scale)):
            raise ValueError(f"scale must be a positive number (area multiplier), got {scale!r}")
        self.seed = int(seed)
        self.scale = float(scale)
        self.rng = np.random.default_rng([self.seed, 20240604])
        self.side = BASE_SIDE_M * math.sqrt(self.scale)
        self.crs = settings.metric_crs
        to_m = Transformer.from_crs("EPSG:4326", self.crs, always_xy=True)
        cx, cy = to_m.transform(*CENTRE_LONLAT)
        self.origin = np.array([cx - self.side / 2, cy - self.side / 2])
        self.net = _Net()
        self.items = _Table()       # compound candidates (slots + hamlets)
        self.bld = _Table()         # buildings
        self.parks = _Table()       # park polygons

    # ------------------------------------------------------------------ lattice
    def lattice(self) -> None:
        rng, L = self.rng, self.side

        def lines(length: float) -> np.ndarray:
            n = max(2, int(round(length / 600.0)))
            d = rng.uniform(420, 780, n)
            d *= length / d.sum()
            return np.concatenate([[0.0], np.cumsum(d)])

        xs, ys = lines(L), lines(L)
        nx, ny = len(xs) - 1, len(ys) - 1
        jit = np.clip(rng.normal(0, 10, (nx + 1, ny + 1, 2)), -25, 25)
        P = np.empty((nx + 1, ny + 1, 2))
        P[..., 0] = xs[:, None] + jit[..., 0]
        P[..., 1] = ys[None, :] + jit[..., 1]
        # the outer arterials (the district boundary) wander a little more
        P[0, :, 0] += rng.uniform(-40, 40, ny + 1)
        P[-1, :, 0] += rng.uniform(-40, 40, ny + 1)
        P[:, 0, 1] += rng.uniform(-40, 40, nx + 1)
        P[:, -1, 1] += rng.uniform(-40, 40, nx + 1)
        P += self.origin
        self.P, self.nx, self.ny = P, nx, ny
        ci, cj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
        self.ci, self.cj = ci.ravel(), cj.ravel()
        self.ncell = nx * ny
        self.C00 = P[self.ci, self.cj]
        self.C10 = P[self.ci + 1, self.cj]
        self.C01 = P[self.ci, self.cj + 1]
        self.C11 = P[self.ci + 1, self.cj + 1]
        self.cw = 0.5 * (np.hypot(*(self.C10 - self.C00).T) + np.hypot(*(self.C11 - self.C01).T))
        self.ch = 0.5 * (np.hypot(*(self.C01 - self.C00).T) + np.hypot(*(self.C11 - self.C10).T))
        self.cell_poly = _polys(np.stack([self.C00, self.C10, self.C11, self.C01], axis=1))
        ring = np.concatenate([P[:, 0], P[-1, 1:], P[::-1, -1][1:], P[0, ::-1][1:]])
        self.boundary = shapely.make_valid(shapely.Polygon(ring))
        # arterial lines: horizontal line j, vertical line i
        self.h_cls = rng.choice(["primary", "secondary", "tertiary"], ny + 1, p=[0.3, 0.35, 0.35])
        self.v_cls = rng.choice(["primary", "secondary", "tertiary"], nx + 1, p=[0.3, 0.35, 0.35])
        names = rng.permutation(len(_STEMS))
        suffix_h = np.where(self.h_cls == "primary", "公路", "路")
        n_names = (ny + 1) + (nx + 1)
        stems = np.array(_STEMS, dtype=object)[names[np.arange(n_names) % len(_STEMS)]]
        extra = np.where(np.arange(n_names) >= len(_STEMS), "东", "")
        self.h_name = (stems[: ny + 1] + extra[: ny + 1] + suffix_h).astype(object)
        self.v_name = (stems[ny + 1:] + extra[ny + 1:] + "路").astype(object)

    def bil(self, cell: np.ndarray, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Bilinear map of cell parameters (u east, v north, in [0, 1]) to coordinates."""
        u = np.asarray(u, float)[:, None]
        v = np.asarray(v, float)[:, None]
        return (self.C00[cell] * (1 - u) * (1 - v) + self.C10[cell] * u * (1 - v)
                + self.C01[cell] * (1 - u) * v + self.C11[cell] * u * v)

    def quad(self, cell: np.ndarray, u0: np.ndarray, u1: np.ndarray, v0: np.ndarray,
             v1: np.ndarray) -> np.ndarray:
        c = np.stack([self.bil(cell, u0, v0), self.bil(cell, u1, v0),
                      self.bil(cell, u1, v1), self.bil(cell, u0, v1)], axis=1)
        return _polys(c)

    def h_id(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return np.asarray(i) * (self.ny + 1) + np.asarray(j)

    def v_id(self, i: np.ndarray, j: np.ndarray) -> np.ndarray:
        return self.nx * (self.ny + 1) + np.asarray(i) * self.ny + np.asarray(j)

    def arterials(self) -> None:
        net, nx, ny = self.net, self.nx, self.ny
        node = net.nodes(self.P.reshape(-1, 2))  # node id = i * (ny + 1) + j
        hi, hj = np.meshgrid(np.arange(nx), np.arange(ny + 1), indexing="ij")
        hi, hj = hi.ravel(), hj.ravel()
        hl = net.add_lines(len(hi), highway=self.h_cls[hj], name=self.h_name[hj], art=hj)
        assert np.array_equal(hl, self.h_id(hi, hj))
        vi, vj = np.meshgrid(np.arange(nx + 1), np.arange(ny), indexing="ij")
        vi, vj = vi.ravel(), vj.ravel()
        vl = net.add_lines(len(vi), highway=self.v_cls[vi], name=self.v_name[vi], art=ny + 1 + vi)
        assert np.array_equal(vl, self.v_id(vi, vj))
        net.member(node[hi * (ny + 1) + hj], hl, 0.0)
        net.member(node[(hi + 1) * (ny + 1) + hj], hl, 1.0)
        net.member(node[vi * (ny + 1) + vj], vl, 0.0)
        net.member(node[vi * (ny + 1) + vj + 1], vl, 1.0)

    # ------------------------------------------------------------------ water and rail
    def water_and_rail(self) -> None:
        rng, P, nx, ny = self.rng, self.P, self.nx, self.ny
        n_riv = max(1, int(round(math.sqrt(self.scale))))
        n_can = max(1, int(round(math.sqrt(self.scale))))

        def pick(n_lines: int, k: int) -> np.ndarray:
            if n_lines < 3:
                return np.array([], dtype=int)
            pos = np.round((np.arange(k) + 0.5) / k * n_lines - 0.5 + rng.uniform(-0.6, 0.6, k))
            return np.unique(np.clip(pos, 1, n_lines - 2).astype(int))

        self.river_rows = pick(ny, n_riv)
        self.canal_cols = pick(nx, n_can)
        self.row_river = np.full(ny, -1)
        self.row_river[self.river_rows] = np.arange(len(self.river_rows))
        self.col_canal = np.full(nx, -1)
        self.col_canal[self.canal_cols] = np.arange(len(self.canal_cols))
        lo = P[:, :, :].reshape(-1, 2).min(axis=0) - 300
        hi = P[:, :, :].reshape(-1, 2).max(axis=0) + 300
        self.river_lines, self.canal_lines, water, wkind, wname, wwidth = [], [], [], [], [], []

        def band(a: np.ndarray, b: np.ndarray, along: int, s: np.ndarray):
            """Mid line and min height of the band between lattice lines a and b."""
            other = 1 - along
            lo_ = np.interp(s, a[:, along], a[:, other])
            hi_ = np.interp(s, b[:, along], b[:, other])
            return 0.5 * (lo_ + hi_), float(np.min(b[:, other] - a[:, other]))

        def river_poly(cx: np.ndarray, cy: np.ndarray, hw: np.ndarray) -> shapely.Polygon:
            tx, ty = np.gradient(cx), np.gradient(cy)
            nrm = np.hypot(tx, ty)
            nxv, nyv = -ty / nrm, tx / nrm
            left = np.column_stack([cx + nxv * hw, cy + nyv * hw])
            right = np.column_stack([cx - nxv * hw, cy - nyv * hw])
            return shapely.Polygon(np.concatenate([left, right[::-1]]))

        for k, r in enumerate(self.river_rows):
            s = np.arange(lo[0], hi[0], 15.0)
            mid, hmin = band(P[:, r], P[:, r + 1], 0, s)
            amp = float(np.clip(0.5 * hmin - 30 - 75, 0, 120))
            lam, ph = rng.uniform(1800, 3000), rng.uniform(0, 2 * np.pi)
            cy = mid + amp * np.sin(2 * np.pi * (s - lo[0]) / lam + ph)
            hw = 15 + 7.5 * (1 + np.sin(2 * np.pi * (s - lo[0]) / rng.uniform(2500, 4000)
                                         + rng.uniform(0, 6.28)))
            self.river_lines.append((s, cy))
            water.append(river_poly(s, cy, hw))
            wkind.append("river")
            wname.append(_RIVER_NAMES[k % len(_RIVER_NAMES)])
            wwidth.append(float(np.round(2 * hw.mean(), 1)))
        for k, c in enumerate(self.canal_cols):
            s = np.arange(lo[1], hi[1], 15.0)
            mid, wmin = band(P[c, :], P[c + 1, :], 1, s)
            amp = float(np.clip(0.5 * wmin - 25 - 75, 0, 80))
            lam, ph = rng.uniform(2000, 3500), rng.uniform(0, 2 * np.pi)
            cx = mid + amp * np.sin(2 * np.pi * (s - lo[1]) / lam + ph)
            hw = 9 + 1.5 * (1 + np.sin(2 * np.pi * (s - lo[1]) / 3000 + rng.uniform(0, 6.28)))
            self.canal_lines.append((s, cx))
            water.append(river_poly(cx, s, hw))
            wkind.append("canal")
            wname.append(_CANAL_NAMES[k % len(_CANAL_NAMES)])
            wwidth.append(float(np.round(2 * hw.mean(), 1)))
        self.water_geoms = np.array(water, dtype=object)
        self.water_kind, self.water_name, self.water_width = wkind, wname, wwidth
        self.water_union = shapely.union_all(self.water_geoms)
        # railway: one diagonal line with a gentle bend
        L = self.side
        ya = self.origin[1] + rng.uniform(0.12, 0.32) * L
        yb = self.origin[1] + rng.uniform(0.62, 0.85) * L
        xm = self.origin[0] + rng.uniform(0.4, 0.6) * L
        ym = ya + (yb - ya) * (xm - lo[0]) / (hi[0] - lo[0]) + rng.uniform(-120, 120)
        self.rail_line = shapely.LineString([(lo[0], ya), (xm, ym), (hi[0], yb)])
        self.rail_buf_clip = shapely.buffer(self.rail_line, 20.0)
        self.rail_buf_cut = shapely.buffer(self.rail_line, 8.0)

    def river_side(self, cell: np.ndarray, xy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(hs, vs): 1 when the point is north of its row's river / east of its column's canal."""
        hs = np.zeros(len(cell), dtype=np.int64)
        vs = np.zeros(len(cell), dtype=np.int64)
        rr = self.row_river[self.cj[cell]]
        cc = self.col_canal[self.ci[cell]]
        for k, (s, cy) in enumerate(self.river_lines):
            m = rr == k
            hs[m] = (xy[m, 1] > np.interp(xy[m, 0], s, cy)).astype(np.int64)
        for k, (s, cx) in enumerate(self.canal_lines):
            m = cc == k
            vs[m] = (xy[m, 0] > np.interp(xy[m, 1], s, cx)).astype(np.int64)
        return hs, vs

    def parcels(self) -> None:
        """Cells less water, split into parcels keyed (cell, hs, vs); and their clip areas."""
        tree = shapely.STRtree(self.cell_poly)
        hit = np.unique(tree.query(self.water_union, predicate="intersects"))
        geoms = self.cell_poly.copy()
        geoms[hit] = shapely.difference(self.cell_poly[hit], self.water_union)
        parts, owner = shapely.get_parts(geoms, return_index=True)
        big = shapely.area(parts) > 1.0
        parts, owner = parts[big], owner[big]
        rep = shapely.get_coordinates(shapely.point_on_surface(parts))
        hs, vs = self.river_side(owner, rep)
        key = owner * 4 + hs * 2 + vs
        order = np.argsort(key, kind="stable")
        key, parts, owner, hs, vs = key[order], parts[order], owner[order], hs[order], vs[order]
        ukey, first, inv = np.unique(key, return_index=True, return_inverse=True)
        counts = np.bincount(inv)
        if (counts > 1).any():
            merged = shapely.multipolygons(parts, indices=inv)
            single = counts == 1
            merged[single] = parts[first[single]]
            pgeom = merged
        else:
            pgeom = parts
        self.parcel_key = ukey
        self.parcel_cell = owner[first]
        self.parcel_hs, self.parcel_vs = hs[first], vs[first]
        self.parcel_geom = np.asarray(pgeom, dtype=object)
        self.key_to_parcel = np.full(self.ncell * 4, -1, dtype=np.int64)
        self.key_to_parcel[ukey] = np.arange(len(ukey))
        barrier = shapely.union_all([shapely.buffer(self.water_union, 10.0), self.rail_buf_clip])
        ptree = shapely.STRtree(self.parcel_geom)
        phit = np.unique(ptree.query(barrier, predicate="intersects"))
        clip = self.parcel_geom.copy()
        clip[phit] = shapely.difference(self.parcel_geom[phit], barrier)
        self.parcel_clip = clip
        self.parcel_affected = np.zeros(len(clip), dtype=bool)
        self.parcel_affected[phit] = True
        shapely.prepare(self.parcel_clip)

    def parcel_of(self, cell: np.ndarray, hs: np.ndarray, vs: np.ndarray) -> np.ndarray:
        p = self.key_to_parcel[np.asarray(cell) * 4 + np.asarray(hs) * 2 + np.asarray(vs)]
        # a cell split by water has no (hs, vs) = (0, 0) part only when cut oddly: fall back
        bad = p < 0
        if bad.any():
            p[bad] = self.key_to_parcel[np.asarray(cell)[bad] * 4]
        return p

    # ------------------------------------------------------------------ land use
    def land_use(self) -> None:
        rng, L = self.rng, self.side
        ctr = shapely.get_coordinates(shapely.centroid(self.cell_poly))
        n_c = max(2, int(round(2 * math.sqrt(self.scale))))
        centres = self.origin + rng.uniform(0.2, 0.8, (n_c, 2)) * L
        sigma = 1400.0
        d2 = ((ctr[:, None, :] - centres[None, :, :]) ** 2).sum(-1)
        score = np.exp(-d2 / (2 * sigma ** 2)).max(axis=1) + rng.normal(0, 0.08, self.ncell)
        ind_score = rng.normal(0, 1, self.ncell)
        lu = np.full(self.ncell, _VIL)
        order = np.argsort(-score, kind="stable")
        n = self.ncell
        n_urb = int(round(0.27 * n))
        n_pub = max(1, int(round(0.04 * n)))
        urb = order[:n_urb]
        lu[urb] = _URB
        rest = order[n_urb:]
        pub = rest[rng.permutation(min(len(rest), max(n_pub * 3, 3)))[:n_pub]]
        lu[pub] = _PUB
        # industry in clusters of low urbanity, farmland in the far periphery
        low = np.setdiff1d(order[int(0.45 * n):], pub)
        ind = low[np.argsort(-ind_score[low], kind="stable")[: int(round(0.22 * n))]]
        lu[ind] = _IND
        far = np.setdiff1d(order[int(0.85 * n):], np.concatenate([ind, pub]))
        lu[far[: int(round(0.04 * n))]] = _FARM
        water_cell = (self.row_river[self.cj] >= 0) | (self.col_canal[self.ci] >= 0)
        lu[water_cell & ~np.isin(lu, [_URB, _VIL])] = _VIL
        lu[water_cell & (lu == _URB) & (score < np.quantile(score, 0.5))] = _VIL
        rail_cell = shapely.intersects(self.cell_poly, shapely.buffer(self.rail_line, 60.0))
        plain = ~water_cell & ~rail_cell
        # parks (综合公园): one per ~25 km², in good urban-edge cells
        n_park = max(1, int(round(self.scale)))
        cand = np.flatnonzero(plain & np.isin(lu, [_VIL, _URB]) & (score > np.quantile(score, 0.55)))
        cand = cand[np.argsort(-score[cand], kind="stable")][n_urb // 3:]
        if len(cand) < n_park:
            cand = np.flatnonzero(plain & (lu != _PARK))
        park = cand[rng.permutation(len(cand))[:n_park]]
        lu[park] = _PARK
        # the big compound(s): the largest plain urban cells
        n_big = max(1, int(round(self.scale / 3.0)))
        ucand = np.flatnonzero(plain & (lu == _URB))
        area = self.cw * self.ch
        big = ucand[np.argsort(-area[ucand] + rng.uniform(0, 1, len(ucand)), kind="stable")][:n_big]
        lu[big] = _BIG
        self.lu = lu
        self.score = score

    # ------------------------------------------------------------------ urban streets and slots
    def urban(self) -> None:
        rng, net = self.rng, self.net
        cells = np.flatnonzero(np.isin(self.lu, [_URB, _PUB]))
        ci, cj = self.ci[cells], self.cj[cells]
        W, H = self.cw[cells], self.ch[cells]
        riv = self.row_river[cj] >= 0
        can = self.col_canal[ci] >= 0
        mu = np.where(can, 0, np.maximum(1, np.round(W / 190.0) - 1)).astype(np.int64)
        mv = np.where(riv, 0, np.maximum(1, np.round(H / 190.0) - 1)).astype(np.int64)
        nc = len(cells)

        def bounds(m: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            own, rk = _ragged(m)
            val = (rk + 1) / (m[own] + 1) + rng.uniform(-0.12, 0.12, len(rk)) / (m[own] + 1)
            bo, br = _ragged(m + 2)
            B = np.empty(len(bo))
            off_val = np.cumsum(m) - m
            inner = (br > 0) & (br < m[bo] + 1)
            B[br == 0] = 0.0
            B[br == m[bo] + 1] = 1.0
            B[inner] = val[off_val[bo[inner]] + br[inner] - 1]
            off_b = np.cumsum(m + 2) - (m + 2)
            return val, own, B, off_b  # type: ignore[return-value]

        uk, uo, UB, ubo = bounds(mu)
        vl, vo, VB, vbo = bounds(mv)
        tert_u = rng.random(nc) < 0.55
        tert_v = rng.random(nc) < 0.55
        # u-streets (north-south), some cul-de-sacs
        ku = np.arange(len(uk)) - (np.cumsum(mu) - mu)[uo]
        u_hw = np.where(tert_u[uo] & (ku == mu[uo] // 2), "tertiary", "residential").astype(object)
        vmax = VB[vbo[uo] + mv[uo]]  # last interior v (0 when none)
        cul = (u_hw == "residential") & (mv[uo] >= 1) & (rng.random(len(uk)) < 0.15)
        v_end = np.where(cul, 0.5 * (vmax + 1.0), 1.0)
        names_u = np.array(_STEMS, dtype=object)[rng.integers(0, len(_STEMS), len(uk))]
        name_u = np.where(u_hw == "tertiary", names_u + "路",
                          np.where(rng.random(len(uk)) < 0.6, names_u + "支路", None)).astype(object)
        ul = net.add_lines(len(uk), highway=u_hw, name=name_u)
        c_u = cells[uo]
        nb = net.nodes(self.bil(c_u, uk, np.zeros(len(uk))))
        net.member(nb, self.h_id(ci[uo], cj[uo]), uk)
        net.member(nb, ul, 0.0)
        nt = net.nodes(self.bil(c_u, uk, v_end))
        net.member(nt, ul, 1.0)
        net.member(nt[~cul], self.h_id(ci[uo], cj[uo] + 1)[~cul], uk[~cul])
        # v-streets (east-west)
        kv = np.arange(len(vl)) - (np.cumsum(mv) - mv)[vo]
        v_hw = np.where(tert_v[vo] & (kv == mv[vo] // 2), "tertiary", "residential").astype(object)
        names_v = np.array(_STEMS, dtype=object)[rng.integers(0, len(_STEMS), len(vl))]
        name_v = np.where(v_hw == "tertiary", names_v + "路",
                          np.where(rng.random(len(vl)) < 0.6, names_v + "街", None)).astype(object)
        vlines = net.add_lines(len(vl), highway=v_hw, name=name_v)
        c_v = cells[vo]
        nl_ = net.nodes(self.bil(c_v, np.zeros(len(vl)), vl))
        net.member(nl_, self.v_id(ci[vo], cj[vo]), vl)
        net.member(nl_, vlines, 0.0)
        nr_ = net.nodes(self.bil(c_v, np.ones(len(vl)), vl))
        net.member(nr_, self.v_id(ci[vo] + 1, cj[vo]), vl)
        net.member(nr_, vlines, 1.0)
        vline_first = np.cumsum(mv) - mv + (vlines[0] if len(vlines) else 0)
        # crossings
        xo, xr = _ragged(mu * mv)
        if len(xo):
            k = xr // mv[xo]
            l_ = xr % mv[xo]
            iu = (np.cumsum(mu) - mu)[xo] + k
            iv = (np.cumsum(mv) - mv)[xo] + l_
            ok = vl[iv] < v_end[iu] - 1e-9
            xn = net.nodes(self.bil(cells[xo][ok], uk[iu][ok], vl[iv][ok]))
            net.member(xn, ul[iu][ok], vl[iv][ok] / v_end[iu][ok])
            net.member(xn, vlines[iv][ok], uk[iu][ok])
        # sub-blocks
        so, sr = _ragged((mu + 1) * (mv + 1))
        a = sr // (mv[so] + 1)
        b = sr % (mv[so] + 1)
        sc = cells[so]
        u_lo, u_hi = UB[ubo[so] + a], UB[ubo[so] + a + 1]
        v_lo, v_hi = VB[vbo[so] + b], VB[vbo[so] + b + 1]
        host_s = np.where(b == 0, self.h_id(ci[so], cj[so]), vline_first[so] + b - 1)
        host_n = np.where(b == mv[so], self.h_id(ci[so], cj[so] + 1), vline_first[so] + b)
        v_first = vlines[0] if len(vlines) else 0
        if len(vl):
            vi_s = np.clip(vline_first[so] + b - 1 - v_first, 0, len(vl) - 1)
            tert_s = (b > 0) & (v_hw[vi_s] == "tertiary")
        else:
            tert_s = np.zeros(len(so), dtype=bool)
        ins_w = np.where(a == 0, 20.0, 10.0)
        ins_e = np.where(a == mu[so], 20.0, 10.0)
        ins_s = np.where(b == 0, 20.0, 10.0)
        ins_n = np.where(b == mv[so], 20.0, 10.0)
        self.sub_id0 = 0
        nsub = len(so)
        sub_id = np.arange(nsub)
        is_pub_cell = self.lu[sc] == _PUB
        r_s, c_s = riv[so], can[so]
        normal = ~r_s & ~c_s
        kind = np.where(is_pub_cell, 4, rng.choice(5, nsub, p=[0.50, 0.30, 0.07, 0.04, 0.09]))
        kind[~normal & ~is_pub_cell] = 0
        # a through street only under single compounds in normal cells: remember
        self.sub = dict(cell=sc, a=a, b=b, u_lo=u_lo, u_hi=u_hi, v_lo=v_lo, v_hi=v_hi,
                        host_s=host_s, host_n=host_n, kind=kind, normal=normal, tert_s=tert_s,
                        ins_w=ins_w, ins_e=ins_e, ins_s=ins_s, ins_n=ins_n)
        gate_n = rng.random(nsub) < 0.3
        era = self.era(nsub)
        S = _Table()
        zeros = np.zeros(nsub, dtype=np.int64)

        def add(m: np.ndarray, u0, u1, v0, v1, iw, ie, is_, in_, pu0, pu1, pv0, pv1,
                piw, pie, pis, pin, gate, hs, vs, slot_kind, era_) -> None:
            if not m.any():
                return
            g = lambda x: np.broadcast_to(np.asarray(x), (nsub,))[m]  # noqa: E731
            S.add(cell=sc[m], sub=sub_id[m], u0=g(u0), u1=g(u1), v0=g(v0), v1=g(v1),
                  iw=g(iw), ie=g(ie), is_=g(is_), in_=g(in_), pu0=g(pu0), pu1=g(pu1),
                  pv0=g(pv0), pv1=g(pv1), piw=g(piw), pie=g(pie), pis=g(pis), pin=g(pin),
                  gate=g(gate).astype(np.int64), host=np.where(g(gate) == 1, host_n[m], host_s[m]),
                  hs=g(hs).astype(np.int64), vs=g(vs).astype(np.int64),
                  kind=g(slot_kind).astype(np.int64), era=g(era_).astype(np.int64),
                  through=np.zeros(int(m.sum()), dtype=bool))

        um = 0.5 * (u_lo + u_hi)
        vm = 0.5 * (v_lo + v_hi)
        # normal cells: single (0), double (1), single + pocket park (2), public (4)
        single = normal & np.isin(kind, [0, 2])
        add(single, u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n,
            u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gate_n, zeros, zeros, kind, era)
        dbl = normal & (kind == 1)
        era2 = self.era(nsub)
        add(dbl, u_lo, um, v_lo, v_hi, ins_w, 3.0, ins_s, ins_n,
            u_lo, um, v_lo, v_hi, ins_w, 3.0, ins_s, ins_n, gate_n, zeros, zeros, 1, era)
        add(dbl, um, u_hi, v_lo, v_hi, 3.0, ins_e, ins_s, ins_n,
            um, u_hi, v_lo, v_hi, 3.0, ins_e, ins_s, ins_n, ~gate_n, zeros, zeros, 1, era2)
        pubm = kind == 4
        add(pubm, u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n,
            u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gate_n, zeros, zeros, 4, 3)
        # water-split cells: one compound per side of the river / canal
        ones = np.ones(nsub, dtype=np.int64)
        rs = r_s & ~c_s & ~is_pub_cell
        add(rs, u_lo, u_hi, v_lo, vm, ins_w, ins_e, ins_s, 6.0,
            u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, zeros, zeros, zeros, 0, era)
        add(rs, u_lo, u_hi, vm, v_hi, ins_w, ins_e, 6.0, ins_n,
            u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, ones, ones, zeros, 0, era2)
        cs = c_s & ~r_s & ~is_pub_cell
        add(cs, u_lo, um, v_lo, v_hi, ins_w, 6.0, ins_s, ins_n,
            u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gate_n, zeros, zeros, 0, era)
        add(cs, um, u_hi, v_lo, v_hi, 6.0, ins_e, ins_s, ins_n,
            u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gate_n, zeros, ones, 0, era2)
        js = r_s & c_s & ~is_pub_cell
        era3, era4 = self.era(nsub), self.era(nsub)
        for (uu0, uu1, vv0, vv1, gg, hh, ww, ee) in (
                (u_lo, um, v_lo, vm, zeros, zeros, zeros, era), (um, u_hi, v_lo, vm, zeros, zeros, ones, era2),
                (u_lo, um, vm, v_hi, ones, ones, zeros, era3), (um, u_hi, vm, v_hi, ones, ones, ones, era4)):
            add(js, uu0, uu1, vv0, vv1, 20.0, 20.0, 20.0, 20.0,
                u_lo, u_hi, v_lo, v_hi, ins_w, ins_e, ins_s, ins_n, gg, hh, ww, 0, ee)
        # big compound cells: the whole cell, one driveway through it
        bc = np.flatnonzero(self.lu == _BIG)
        if len(bc):
            nbig = len(bc)
            z, o = np.zeros(nbig), np.ones(nbig)
            S.add(cell=bc, sub=np.full(nbig, -1), u0=z, u1=o, v0=z, v1=o, iw=20 + z, ie=20 + z,
                  is_=20 + z, in_=20 + z, pu0=z, pu1=o, pv0=z, pv1=o, piw=20 + z, pie=20 + z,
                  pis=20 + z, pin=20 + z, gate=np.zeros(nbig, dtype=np.int64),
                  host=self.h_id(self.ci[bc], self.cj[bc]), hs=np.zeros(nbig, dtype=np.int64),
                  vs=np.zeros(nbig, dtype=np.int64), kind=np.full(nbig, 5),
                  era=np.full(nbig, 2), through=np.ones(nbig, dtype=bool))
        self.slots = S.get()
        # community parks and pocket parks
        pk = normal & (kind == 3)
        if pk.any():
            self.community_parks(pk)
        pp = normal & (kind == 2)
        self.pocket = pp

    def era(self, n: int) -> np.ndarray:
        """Building era of a compound: 0 old (1985-1999), 1 mid (2000-2009), 2 new (2010-2020)."""
        return self.rng.choice(3, n, p=[0.38, 0.34, 0.28])

    def community_parks(self, m: np.ndarray) -> None:
        S, net = self.sub, self.net
        cell = S["cell"][m]
        W, H = self.cw[cell], self.ch[cell]
        u0 = S["u_lo"][m] + S["ins_w"][m] / W
        u1 = S["u_hi"][m] - S["ins_e"][m] / W
        v0 = S["v_lo"][m] + S["ins_s"][m] / H
        v1 = S["v_hi"][m] - S["ins_n"][m] / H
        geom = self.quad(cell, u0, u1, v0, v1)
        parcel = self.parcel_of(cell, 0, 0)
        self.parks.add(geom=geom, kind=np.full(len(cell), "社区公园", dtype=object), parcel=parcel)
        um = 0.5 * (u0 + u1)
        n = len(cell)
        fl = net.add_lines(n, highway="footway", parcel=parcel)
        a = net.nodes(self.bil(cell, um, S["v_lo"][m]))
        b = net.nodes(self.bil(cell, um, S["v_hi"][m]))
        net.member(a, S["host_s"][m], um)
        net.member(b, S["host_n"][m], um)
        net.member(a, fl, 0.0)
        net.member(b, fl, 1.0)
        vm = 0.5 * (v0 + v1)
        el = net.add_lines(n, highway="footway", parcel=parcel)
        e0 = net.nodes(self.bil(cell, u0 + 5 / W, vm))
        e1 = net.nodes(self.bil(cell, u1 - 5 / W, vm))
        x = net.nodes(self.bil(cell, um, vm))
        net.member(e0, el, 0.0)
        net.member(e1, el, 1.0)
        net.member(x, el, 0.5)
        net.member(x, fl, (vm - S["v_lo"][m]) / (S["v_hi"][m] - S["v_lo"][m]))

    # ------------------------------------------------------------------ slot layout
    def layout_slots(self) -> None:
        """Buildings, driveway, row paths and footways of every compound / campus slot."""
        rng, net, S = self.rng, self.net, self.slots
        n = len(S["cell"])
        cell = S["cell"]
        W, H = self.cw[cell], self.ch[cell]
        parcel = self.parcel_of(cell, S["hs"], S["vs"])
        S["parcel"] = parcel
        # slot polygon: inset quad ∩ parcel clip area (largest part); less pocket park
        pu0 = S["pu0"] + S["piw"] / W
        pu1 = S["pu1"] - S["pie"] / W
        pv0 = S["pv0"] + S["pis"] / H
        pv1 = S["pv1"] - S["pin"] / H
        quad = self.quad(cell, pu0, pu1, pv0, pv1)
        aff = self.parcel_affected[parcel]
        poly = quad.copy()
        poly[aff] = _largest_part(shapely.intersection(quad[aff], self.parcel_clip[parcel[aff]]))
        # pocket parks (游园) at the far corner of some single compounds
        pocket = (S["sub"] >= 0) & (S["kind"] == 2)
        if pocket.any():
            pc = cell[pocket]
            pw = rng.uniform(40, 70, pocket.sum()) / W[pocket]
            ph = rng.uniform(30, 65, pocket.sum()) / H[pocket]
            north = S["gate"][pocket] == 0
            pv_a = np.where(north, pv1[pocket] - ph, pv0[pocket])
            pv_b = np.where(north, pv1[pocket], pv0[pocket] + ph)
            pg = self.quad(pc, pu1[pocket] - pw, pu1[pocket], pv_a, pv_b)
            self.parks.add(geom=pg, kind=np.full(len(pc), "游园", dtype=object), parcel=parcel[pocket])
            poly[pocket] = shapely.difference(poly[pocket], shapely.buffer(pg, 4.0, join_style="mitre"))
            poly[pocket] = _largest_part(poly[pocket])
        area = shapely.area(poly)
        S["poly"] = poly
        S["ok"] = ~shapely.is_empty(poly) & (area > 1500.0)
        # style by era / kind
        era, kind = S["era"], S["kind"]
        tower = ((era == 2) & (rng.random(n) < 0.6)) | (kind == 5)
        villa = (era >= 1) & ~tower & (rng.random(n) < 0.08) & (kind != 4)
        pub = kind == 4
        d = np.select([pub, tower, villa], [16.0, 15.0, 12.0], 11.0)
        Lb = np.select([pub, tower, villa], [rng.uniform(40, 70, n), rng.uniform(24, 36, n),
                                             rng.uniform(14, 20, n)], rng.uniform(36, 60, n))
        gap = np.select([pub, tower, villa], [20.0, 16.0, 8.0], 10.0)
        pitch = np.select([pub, tower, villa], [rng.uniform(45, 60, n), rng.uniform(50, 60, n),
                                                rng.uniform(22, 26, n)], rng.uniform(31, 36, n))
        S["tower"], S["villa"] = tower, villa
        width = (S["u1"] - S["u0"]) * W - S["iw"] - S["ie"]
        height = (S["v1"] - S["v0"]) * H - S["is_"] - S["in_"]
        n_rows = np.where(S["ok"], np.floor((height - 14 - d) / pitch) + 1, 0)
        n_rows = np.clip(n_rows, 0, None).astype(np.int64)
        half = width / 2 - 10
        n_half = np.clip(np.floor((half + gap) / (Lb + gap)), 0, None).astype(np.int64)
        n_rows[n_half == 0] = 0
        S["n_rows"] = n_rows
        ug = S["u0"] + (S["iw"] + width / 2) / W
        # rows and paths
        ro, rr = _ragged(n_rows)
        y_path = 10 + rr * pitch[ro] - 5
        v_path = S["v0"][ro] + (S["is_"][ro] + y_path) / H[ro]
        ua = S["u0"][ro] + (S["iw"][ro] + 2) / W[ro]
        ub = S["u0"][ro] + (S["iw"][ro] + width[ro] - 2) / W[ro]
        item = np.arange(n)
        pl = net.add_lines(len(ro), highway="footway", item=item[ro], parcel=parcel[ro])
        pa = net.nodes(self.bil(cell[ro], ua, v_path))
        pb = net.nodes(self.bil(cell[ro], ub, v_path))
        net.member(pa, pl, 0.0)
        net.member(pb, pl, 1.0)
        # driveway from the gate to the farthest path (or through to the far side)
        has = n_rows > 0
        gate_v = np.where(S["gate"] == 1, S["pv1"], S["pv0"])
        vp_min = np.full(n, np.inf)
        vp_max = np.full(n, -np.inf)
        np.minimum.at(vp_min, ro, v_path)
        np.maximum.at(vp_max, ro, v_path)
        far_v = np.where(S["through"], S["pv1"], np.where(S["gate"] == 1, vp_min, vp_max))
        hs_ = np.flatnonzero(has)
        dl = net.add_lines(len(hs_), highway="service", item=hs_, parcel=parcel[hs_])
        dline = np.full(n, -1)
        dline[hs_] = dl
        g = net.nodes(self.bil(cell[hs_], ug[hs_], gate_v[hs_]))
        net.member(g, S["host"][hs_], ug[hs_])
        net.member(g, dl, 0.0)
        thr = hs_[S["through"][hs_]]
        if len(thr):
            fnode = net.nodes(self.bil(cell[thr], ug[thr], S["pv1"][thr]))
            net.member(fnode, self.h_id(self.ci[cell[thr]], self.cj[cell[thr]] + 1), ug[thr])
            net.member(fnode, dline[thr], 1.0)
        xn = net.nodes(self.bil(cell[ro], ug[ro], v_path))
        net.member(xn, dline[ro], (v_path - gate_v[ro]) / (far_v[ro] - gate_v[ro]))
        net.member(xn, pl, (ug[ro] - ua) / (ub - ua))
        # buildings: two half rows either side of the driveway
        bo, bk = _ragged(2 * n_half[ro])
        s = ro[bo]
        nh = n_half[s]
        left = bk < nh
        kk = np.where(left, bk, bk - nh)
        span = nh * Lb[s] + (nh - 1) * gap[s]
        x0 = np.where(left, 4 + (half[s] - span) / 2, width[s] / 2 + 6 + (half[s] - span) / 2)
        x0 = x0 + kk * (Lb[s] + gap[s])
        x1 = x0 + Lb[s]
        y0 = 10 + rr[bo] * pitch[s]
        y1 = y0 + d[s]
        bu0 = S["u0"][s] + (S["iw"][s] + x0) / W[s]
        bu1 = S["u0"][s] + (S["iw"][s] + x1) / W[s]
        bv0 = S["v0"][s] + (S["is_"][s] + y0) / H[s]
        bv1 = S["v0"][s] + (S["is_"][s] + y1) / H[s]
        bgeom = self.quad(cell[s], bu0, bu1, bv0, bv1)
        keep = shapely.within(bgeom, S["poly"][s]) & S["ok"][s]
        lev = np.select([pub[s], tower[s], villa[s]],
                        [rng.integers(3, 6, len(s)), rng.integers(11, 19, len(s)),
                         rng.integers(2, 4, len(s))],
                        rng.choice([5, 6, 6, 6, 6, 6, 7], len(s)))
        year = self.year_of(S["era"], n)
        S["build_year"] = year
        use = np.where(pub[s], "public", "residential").astype(object)
        self.bld.add(geom=bgeom[keep], levels=lev[keep], use=use[keep], item=s[keep],
                     year=np.where(pub[s], rng.integers(1990, 2021, len(s)), year[s])[keep])
        # footways from the path to each entrance (south face)
        kb = np.flatnonzero(keep)
        uc = 0.5 * (bu0[kb] + bu1[kb])
        fl = net.add_lines(len(kb), highway="footway", item=s[kb], parcel=parcel[s[kb]])
        pj = net.nodes(self.bil(cell[s[kb]], uc, v_path[bo[kb]]))
        door = net.nodes(self.bil(cell[s[kb]], uc, bv0[kb]))
        net.member(pj, pl[bo[kb]], (uc - ua[bo[kb]]) / (ub[bo[kb]] - ua[bo[kb]]))
        net.member(pj, fl, 0.0)
        net.member(door, fl, 1.0)

    def year_of(self, era: np.ndarray, n: int) -> np.ndarray:
        lo = np.array([1985, 2000, 2010, 1990])[np.clip(era, 0, 3)]
        hi = np.array([1999, 2009, 2020, 2020])[np.clip(era, 0, 3)]
        return self.rng.integers(lo, hi + 1).astype(np.int64)

    # ------------------------------------------------------------------ villages
    def villages(self) -> None:
        rng, net = self.rng, self.net
        cells = np.flatnonzero(self.lu == _VIL)
        W, H = self.cw[cells], self.ch[cells]
        can = self.col_canal[self.ci[cells]] >= 0
        nl = np.where(can, 2, np.maximum(1, np.floor(W / 230.0))).astype(np.int64)
        lo_, lr = _ragged(nl)
        ul = (lr + 1) / (nl[lo_] + 1) + rng.uniform(-0.03, 0.03, len(lo_))
        ul = np.where(can[lo_], np.where(lr == 0, 0.15, 0.85), ul)
        lc = cells[lo_]
        lane = net.add_lines(len(lo_), highway="unclassified",
                             name=np.where(rng.random(len(lo_)) < 0.4,
                                           np.array(_STEMS, dtype=object)[rng.integers(0, len(_STEMS), len(lo_))] + "村路",
                                           None))
        a = net.nodes(self.bil(lc, ul, np.zeros(len(lc))))
        b = net.nodes(self.bil(lc, ul, np.ones(len(lc))))
        net.member(a, self.h_id(self.ci[lc], self.cj[lc]), ul)
        net.member(b, self.h_id(self.ci[lc], self.cj[lc] + 1), ul)
        net.member(a, lane, 0.0)
        net.member(b, lane, 1.0)
        Hl, Wl = H[lo_], W[lo_]
        nh = np.maximum(1, np.floor((Hl - 80) / 52.0)).astype(np.int64)
        # hamlets: (lane, side, k)
        ho, hr = _ragged(2 * nh)
        side = np.where(hr < nh[ho], 1.0, -1.0)
        k = hr % nh[ho]
        keep = rng.random(len(ho)) < 0.88
        ho, side, k = ho[keep], side[keep], k[keep]
        c = lc[ho]
        Hh, Wh = Hl[ho], Wl[ho]
        v_c = (40 + (k + 0.5) * (Hh - 80) / nh[ho] + rng.uniform(-3, 3, len(ho))) / Hh
        D = rng.uniform(35, 62, len(ho))
        hh = rng.uniform(34, 44, len(ho))
        u_near = ul[ho] + side * 10 / Wh
        u_far = ul[ho] + side * (10 + D) / Wh
        v0, v1 = v_c - hh / 2 / Hh, v_c + hh / 2 / Hh
        geom = self.quad(c, np.minimum(u_near, u_far), np.maximum(u_near, u_far), v0, v1)
        ctr = self.bil(c, 0.5 * (u_near + u_far), v_c)
        hs, vs = self.river_side(c, ctr)
        parcel = self.parcel_of(c, hs, vs)
        aff = self.parcel_affected[parcel]
        ok = np.ones(len(ho), dtype=bool)
        ok[aff] = shapely.within(geom[aff], self.parcel_clip[parcel[aff]])
        ho, side, c, Hh, Wh, v_c, D, u_near, u_far, geom, parcel = (
            x[ok] for x in (ho, side, c, Hh, Wh, v_c, D, u_near, u_far, geom, parcel))
        hs, vs = hs[ok], vs[ok]
        nham = len(ho)
        item0 = len(self.slots["cell"])
        item = item0 + np.arange(nham)
        # path from the lane through the hamlet
        pl = net.add_lines(nham, highway="footway", item=item, parcel=parcel)
        pa = net.nodes(self.bil(c, ul[ho], v_c))
        net.member(pa, lane[ho], v_c)
        net.member(pa, pl, 0.0)
        u_end = ul[ho] + side * (10 + D - 3) / Wh
        pb = net.nodes(self.bil(c, u_end, v_c))
        net.member(pb, pl, 1.0)
        # houses: two rows either side of the path, from 12 m into the hamlet
        nhouse = np.maximum(1, np.floor((D - 11) / 13.0)).astype(np.int64)
        bo, br = _ragged(2 * nhouse)
        north = br >= nhouse[bo]
        kk = br % nhouse[bo]
        keep_h = rng.random(len(bo)) < 0.9
        bo, north, kk = bo[keep_h], north[keep_h], kk[keep_h]
        x0 = 12 + kk * 13.0
        x1 = x0 + 10.0
        s_ = side[bo]
        hu0 = ul[ho][bo] + s_ * (10 + x0) / Wh[bo]
        hu1 = ul[ho][bo] + s_ * (10 + x1) / Wh[bo]
        y_a = np.where(north, 4.0, -15.0)
        y_b = np.where(north, 15.0, -4.0)
        hv0 = v_c[bo] + y_a / Hh[bo]
        hv1 = v_c[bo] + y_b / Hh[bo]
        hg = self.quad(c[bo], np.minimum(hu0, hu1), np.maximum(hu0, hu1), hv0, hv1)
        lev = rng.choice([2, 2, 3, 3, 3], len(bo))
        year = rng.integers(1985, 2006, nham)
        self.bld.add(geom=hg, levels=lev, use=np.full(len(bo), "residential", dtype=object),
                     item=item[bo], year=year[bo])
        uc = 0.5 * (hu0 + hu1)
        fl = net.add_lines(len(bo), highway="footway", item=item[bo], parcel=parcel[bo])
        pj = net.nodes(self.bil(c[bo], uc, v_c[bo]))
        door = net.nodes(self.bil(c[bo], uc, np.where(north, hv0, hv1)))
        net.member(pj, pl[bo], (uc - ul[ho][bo]) / (u_end[bo] - ul[ho][bo]))
        net.member(pj, fl, 0.0)
        net.member(door, fl, 1.0)
        self.hamlets = dict(cell=c, poly=geom, parcel=parcel, hs=hs, vs=vs, year=year,
                            item=item)

    # ------------------------------------------------------------------ other cells
    def industry_and_parks(self) -> None:
        rng, net = self.rng, self.net
        # industry: a service road through the middle, factories either side
        cells = np.flatnonzero(np.isin(self.lu, [_IND, _FARM]))
        ind = self.lu[cells] == _IND
        W, H = self.cw[cells], self.ch[cells]
        u = 0.5 + rng.uniform(-0.08, 0.08, len(cells))
        rl = net.add_lines(len(cells), highway=np.where(ind, "service", "unclassified").astype(object))
        a = net.nodes(self.bil(cells, u, np.zeros(len(cells))))
        b = net.nodes(self.bil(cells, u, np.ones(len(cells))))
        net.member(a, self.h_id(self.ci[cells], self.cj[cells]), u)
        net.member(b, self.h_id(self.ci[cells], self.cj[cells] + 1), u)
        net.member(a, rl, 0.0)
        net.member(b, rl, 1.0)
        ic, iW, iH, iu = cells[ind], W[ind], H[ind], u[ind]
        nrow = np.maximum(1, np.floor((iH - 50) / 90.0)).astype(np.int64)
        fo, fr = _ragged(2 * nrow)
        east = fr >= nrow[fo]
        k = fr % nrow[fo]
        c = ic[fo]
        span_m = np.where(east, (1 - iu[fo]) * iW[fo], iu[fo] * iW[fo]) - 45
        fw = span_m * rng.uniform(0.5, 0.9, len(fo))
        x0 = np.where(east, iu[fo] + 20 / iW[fo], iu[fo] - (20 + fw) / iW[fo])
        x1 = x0 + fw / iW[fo]
        y0 = (25 + k * (iH[fo] - 50) / nrow[fo]) / iH[fo]
        y1 = y0 + rng.uniform(35, 65, len(fo)) / iH[fo]
        g = self.quad(c, x0, x1, y0, np.minimum(y1, 1 - 25 / iH[fo]))
        ctr = shapely.get_coordinates(shapely.centroid(g))
        hs, vs = self.river_side(c, ctr)
        par = self.parcel_of(c, hs, vs)
        ok = shapely.within(g, self.parcel_clip[par]) & (fw > 20)
        self.bld.add(geom=g[ok], levels=rng.integers(1, 5, len(fo))[ok],
                     use=np.full(int(ok.sum()), "industrial", dtype=object),
                     item=np.full(int(ok.sum()), -1), year=rng.integers(1992, 2021, int(ok.sum())))
        # comprehensive parks (综合公园): 5-10 ha in the south-west of a park cell, paths
        pc = np.flatnonzero(self.lu == _PARK)
        if len(pc):
            W, H = self.cw[pc], self.ch[pc]
            target = rng.uniform(5.5e4, 9.5e4, len(pc))
            f = np.clip(np.sqrt(target / (W * H)), 0.3, 0.9)
            u1 = f * rng.uniform(0.9, 1.1, len(pc))
            v1 = f * f / u1
            geom = self.quad(pc, 20 / W, u1, 20 / H, v1)
            par = self.parcel_of(pc, 0, 0)
            geom = _largest_part(shapely.intersection(geom, self.parcel_clip[par]))
            self.parks.add(geom=geom, kind=np.full(len(pc), "综合公园", dtype=object), parcel=par)
            n = len(pc)
            um, vm = 0.5 * u1, 0.5 * v1
            fl = net.add_lines(n, highway="footway", parcel=par)
            el = net.add_lines(n, highway="footway", parcel=par)
            a = net.nodes(self.bil(pc, um, np.zeros(n)))
            b = net.nodes(self.bil(pc, um, v1 - 8 / H))
            net.member(a, self.h_id(self.ci[pc], self.cj[pc]), um)
            net.member(a, fl, 0.0)
            net.member(b, fl, 1.0)
            e0 = net.nodes(self.bil(pc, np.zeros(n), vm))
            e1 = net.nodes(self.bil(pc, u1 - 8 / W, vm))
            net.member(e0, self.v_id(self.ci[pc], self.cj[pc]), vm)
            net.member(e0, el, 0.0)
            net.member(e1, el, 1.0)
            x = net.nodes(self.bil(pc, um, vm))
            net.member(x, fl, vm / (v1 - 8 / H))
            net.member(x, el, um / (u1 - 8 / W))
            # a public campus on the rest of the cell
            g2 = self.quad(pc, u1 + 25 / W, 1 - 25 / W, 0.55 + 0 * W, 1 - 25 / H)
            ok = (u1 + 60 / W < 1 - 25 / W) & shapely.within(g2, self.parcel_clip[par])
            self.bld.add(geom=g2[ok], levels=rng.integers(2, 5, n)[ok],
                         use=np.full(int(ok.sum()), "public", dtype=object),
                         item=np.full(int(ok.sum()), -1), year=rng.integers(2000, 2021, int(ok.sum())))

    # ------------------------------------------------------------------ network assembly
    def build_roads(self) -> None:
        """Edges from line memberships; drop fragments; cut at water/rail; one component."""
        rng, net = self.rng, self.net
        xy = np.concatenate(net.xy)
        L = net.lines.get()
        node = np.concatenate([m[0] for m in net.mem])
        line = np.concatenate([m[1] for m in net.mem])
        t = np.concatenate([m[2] for m in net.mem])
        order = np.lexsort((t, line))
        node, line, t = node[order], line[order], t[order]
        same = line[1:] == line[:-1]
        a, b, sl = node[:-1][same], node[1:][same], line[:-1][same]
        # coincident nodes (same point recorded twice): merge
        zl = np.hypot(*(xy[a] - xy[b]).T) < 1e-6
        if zl.any():
            _, lab = _components(len(xy), a[zl], b[zl])
            rep = np.full(lab.max() + 1, len(xy))
            np.minimum.at(rep, lab, np.arange(len(xy)))
            remap = rep[lab]
            a, b = remap[a], remap[b]
        keep = a != b
        a, b, sl = a[keep], b[keep], sl[keep]
        # compound / park internals stay inside their parcel's usable area
        item_ok = self.item_ok
        it = L["item"][sl]
        keep = (it < 0) | item_ok[np.clip(it, 0, None)]
        par = L["parcel"][sl]
        seg = shapely.linestrings(np.stack([xy[a], xy[b]], axis=1))
        test = keep & (par >= 0)
        test[test] = self.parcel_affected[par[test]]
        if test.any():
            mark = np.zeros(len(self.parcel_clip), dtype=bool)
            mark[par[test]] = True
            up = np.flatnonzero(mark)
            buf = np.empty(len(self.parcel_clip), dtype=object)
            buf[up] = shapely.buffer(self.parcel_clip[up], 0.5)
            keep[test] = shapely.within(seg[test], buf[par[test]])
        a, b, sl, seg = a[keep], b[keep], sl[keep], seg[keep]
        art = L["art"][sl]
        # water and rail crossings
        tree = shapely.STRtree(seg)
        w_hit = np.zeros(len(seg), dtype=bool)
        r_hit = np.zeros(len(seg), dtype=bool)
        w_hit[tree.query(self.water_union, predicate="intersects")] = True
        r_hit[tree.query(self.rail_buf_cut, predicate="intersects")] = True
        n_art = self.nx + self.ny + 2
        keys = np.arange(n_art)
        is_v = keys >= self.ny + 1
        idx = np.where(is_v, keys - self.ny - 1, keys)
        p0 = rng.integers(0, 2)
        keep_w = (idx % 2 == p0) | (rng.random(n_art) < 0.3)
        keep_r = rng.random(n_art) < 0.45
        arterial = art >= 0
        ak = np.clip(art, 0, None)
        w_cut = w_hit & ~(arterial & keep_w[ak])
        r_cut = r_hit & ~(arterial & keep_r[ak])
        cut = w_cut | r_cut
        # add crossings where a part of the network would otherwise be cut off
        cand = np.flatnonzero(cut & arterial)
        for _ in range(50):
            ok = ~cut
            _, lab = _components(len(xy), a[ok], b[ok])
            la, lb = lab[a[cand]], lab[b[cand]]
            diff = la != lb
            if not diff.any():
                break
            pair = np.minimum(la, lb)[diff] * (lab.max() + 1) + np.maximum(la, lb)[diff]
            _, first = np.unique(pair, return_index=True)
            restore = cand[np.flatnonzero(diff)[first]]
            cut[restore] = False
            w_cut[restore] = False
            r_cut[restore] = False
            cand = np.setdiff1d(cand, restore)
        structure = np.full(len(seg), None, dtype=object)
        structure[r_hit & ~r_cut] = "rail_crossing"
        structure[w_hit & ~w_cut] = "bridge"   # also the pieces of a bridge cut at the rail
        # cut streets at the water's edge / the rail corridor (dead ends)
        ci_ = np.flatnonzero(cut)
        both = shapely.union_all([self.water_union, self.rail_buf_cut])
        barrier = np.where(w_cut[ci_] & r_cut[ci_], both,
                           np.where(w_cut[ci_], self.water_union, self.rail_buf_cut))
        pieces, owner = shapely.get_parts(shapely.difference(seg[ci_], barrier), return_index=True)
        long_ = shapely.length(pieces) > 2.0
        pieces, owner = pieces[long_], ci_[owner[long_]]
        p_first = shapely.get_coordinates(shapely.get_point(pieces, 0))
        p_last = shapely.get_coordinates(shapely.get_point(pieces, -1))
        new_xy = [xy]
        next_id = len(xy)

        def end_node(pt: np.ndarray) -> np.ndarray:
            nonlocal next_id
            ida = np.where(np.hypot(*(pt - xy[a[owner]]).T) < 1e-6, a[owner],
                           np.where(np.hypot(*(pt - xy[b[owner]]).T) < 1e-6, b[owner], -1))
            new = ida < 0
            ida[new] = next_id + np.arange(int(new.sum()))
            next_id += int(new.sum())
            new_xy.append(pt[new])
            return ida

        pa = end_node(p_first)
        pb = end_node(p_last)
        xy = np.concatenate(new_xy)
        keep = ~cut
        a = np.concatenate([a[keep], pa])
        b = np.concatenate([b[keep], pb])
        sl = np.concatenate([sl[keep], sl[owner]])
        on_water = structure[owner] == "bridge"
        on_water[on_water] = shapely.length(shapely.intersection(pieces[on_water], self.water_union)) > 0.01
        piece_struct = np.where(on_water, "bridge", None).astype(object)
        structure = np.concatenate([structure[keep], piece_struct])
        geom = np.concatenate([seg[keep], pieces])
        # pieces keep their exact (cut) geometry: straight, so two points suffice
        # one connected network: the largest component
        _, lab = _components(len(xy), a, b)
        sizes = np.bincount(lab[a], minlength=lab.max() + 1)
        main = int(np.argmax(sizes))
        keep = lab[a] == main
        a, b, sl, structure, geom = a[keep], b[keep], sl[keep], structure[keep], geom[keep]
        # stable order: by line then position along it
        self.roads = dict(geom=geom, highway=L["highway"][sl],
                          name=L["name"][sl], structure=structure, a=a, b=b,
                          item=L["item"][sl])
        self.node_xy = xy
        used = np.zeros(len(xy), dtype=bool)
        used[a] = True
        used[b] = True
        self.n_nodes = int(used.sum())

    # ------------------------------------------------------------------ compounds
    def compounds(self) -> None:
        rng, S, Hm = self.rng, self.slots, self.hamlets
        n_slot = len(S["cell"])
        B = self.bld.get()
        self.bld_arr = B
        n_items = n_slot + len(Hm["cell"])
        floor = np.zeros(n_items)
        res = B["item"] >= 0
        np.add.at(floor, B["item"][res], shapely.area(B["geom"][res]) * B["levels"][res])
        nb = np.bincount(B["item"][res], minlength=n_items)
        is_res_slot = np.isin(S["kind"], [0, 1, 2, 5]) & S["ok"]
        ok = np.concatenate([is_res_slot & (nb[:n_slot] > 0), nb[n_slot:] > 0])
        # internal paths are kept for every slot with buildings (campuses too)
        self.item_ok = np.concatenate([S["ok"] & (nb[:n_slot] > 0), nb[n_slot:] > 0])
        # through-street compounds: merge two sub-blocks across a street
        sub = self.sub
        target_of = np.arange(n_items)
        cut = np.zeros(n_items, dtype=bool)
        single = np.flatnonzero((S["kind"] == 0) & (S["sub"] >= 0) & ok[:n_slot])
        single = single[sub["normal"][S["sub"][single]]]
        sk = S["sub"][single]
        key = sub["cell"][sk] * 1_000_000 + sub["a"][sk] * 1000 + sub["b"][sk]
        order = np.argsort(key)
        skey, sslot = key[order], single[order]
        up_key = key + 1
        pos = np.clip(np.searchsorted(skey, up_key), 0, len(skey) - 1)
        has_up = skey[pos] == up_key
        lower, upper = single[has_up], sslot[pos[has_up]]
        if len(lower):
            tert = sub["tert_s"][S["sub"][upper]]
            n_merge = min(len(lower), max(3, int(round(3 * self.scale))))
            pr = rng.permutation(len(lower))
            n_t = max(1, n_merge // 2)
            # across a tertiary street first (it bounds blocks), then residential ones;
            # a slot joins at most one pair (a short loop over the few pairs chosen)
            chosen: list[int] = []
            used: set[int] = set()
            for want_t in (True, False):
                for q in pr[tert[pr] == want_t]:
                    if len(chosen) >= (n_t if want_t else n_merge):
                        break
                    lo_q, up_q = int(lower[q]), int(upper[q])
                    if lo_q in used or up_q in used:
                        continue
                    chosen.append(int(q))
                    used.update((lo_q, up_q))
            chosen_a = np.array(chosen, dtype=np.int64)
            lo_s, up_s = lower[chosen_a], upper[chosen_a]
            c = S["cell"][lo_s]
            W, H = self.cw[c], self.ch[c]
            g = self.quad(c, S["pu0"][lo_s] + S["piw"][lo_s] / W, S["pu1"][lo_s] - S["pie"][lo_s] / W,
                          S["pv0"][lo_s] + S["pis"][lo_s] / H, S["pv1"][up_s] - S["pin"][up_s] / H)
            par = S["parcel"][lo_s]
            aff = self.parcel_affected[par]
            g[aff] = _largest_part(shapely.intersection(g[aff], self.parcel_clip[par[aff]]))
            S["poly"][lo_s] = g
            target_of[up_s] = lo_s
            cut[lo_s] = True
            floor_add = np.zeros(n_items)
            np.add.at(floor_add, lo_s, floor[up_s])
            floor += floor_add
            ok[up_s] = False
        self.item_target = target_of
        # compound table
        items = np.flatnonzero(ok)
        slot = items < n_slot
        hi = items[~slot] - n_slot
        si = items[slot]
        poly = np.concatenate([S["poly"][si], Hm["poly"][hi]])
        cell = np.concatenate([S["cell"][si], Hm["cell"][hi]])
        parcel = np.concatenate([S["parcel"][si], Hm["parcel"][hi]])
        year = np.concatenate([S["build_year"][si], Hm["year"][hi]])
        big = np.concatenate([S["kind"][si] == 5, np.zeros(len(hi), dtype=bool)])
        era = np.concatenate([S["era"][si], np.full(len(hi), -1)])
        villa = np.concatenate([S["villa"][si], np.zeros(len(hi), dtype=bool)])
        kind = np.select([big, era == -1, villa, era == 0, rng.random(len(items)) < 0.22],
                         ["大型居住社区", "村宅", "别墅", "售后公房", "动迁安置房"], "商品房").astype(object)
        year = np.where(big, rng.integers(2011, 2016, len(items)), year)
        cap = floor[items] / settings.floor_area_per_person_m2 * rng.uniform(0.8, 1.2, len(items))
        self.comp = dict(item=items, geom=poly, cell=cell, parcel=parcel, build_year=year,
                         big=big, kind=kind, cut=cut[items], cap=cap,
                         hamlet=era == -1, era=era)
        item_row = np.full(n_items, -1)
        item_row[items] = np.arange(len(items))
        self.item_row = item_row[target_of]

    # ------------------------------------------------------------------ towns and committees
    def towns_and_committees(self) -> None:
        rng, C = self.rng, self.comp
        nx, ny = self.nx, self.ny
        n_towns = max(2, int(round(2 * self.scale ** 0.6)))
        # towns: bisection of the cell grid by cell count; ties → north/south split
        towns: list[tuple[int, int, int, int]] = []

        def tsplit(i0: int, i1: int, j0: int, j1: int, k: int) -> None:
            if k <= 1 or (i1 - i0 <= 1 and j1 - j0 <= 1):
                towns.append((i0, i1, j0, j1))
                return
            ka = k // 2
            if (j1 - j0) >= (i1 - i0):
                m = j0 + max(1, min(j1 - j0 - 1, int(round((j1 - j0) * ka / k))))
                tsplit(i0, i1, m, j1, ka)
                tsplit(i0, i1, j0, m, k - ka)
            else:
                m = i0 + max(1, min(i1 - i0 - 1, int(round((i1 - i0) * ka / k))))
                tsplit(i0, m, j0, j1, ka)
                tsplit(m, i1, j0, j1, k - ka)

        tsplit(0, nx, 0, ny, n_towns)
        # order towns north-west first
        tc = np.array([(-(t[2] + t[3]), t[0] + t[1]) for t in towns])
        torder = np.lexsort((tc[:, 1], tc[:, 0]))
        towns = [towns[k] for k in torder]
        cell_town = np.empty(self.ncell, dtype=np.int64)
        for k, (i0, i1, j0, j1) in enumerate(towns):
            m = (self.ci >= i0) & (self.ci < i1) & (self.cj >= j0) & (self.cj < j1)
            cell_town[m] = k
        self.cell_town = cell_town
        self.town_code = np.array([f"{DISTRICT_CODE}{101 + k}" for k in range(len(towns))], dtype=object)
        self.town_name = np.array([_TOWN_NAMES[k % len(_TOWN_NAMES)]
                                   + ("" if k < len(_TOWN_NAMES) else str(k // len(_TOWN_NAMES) + 1))
                                   for k in range(len(towns))], dtype=object)
        # capacity per parcel
        n_par = len(self.parcel_key)
        pcap = np.bincount(C["parcel"], weights=C["cap"] + np.where(C["big"], BIG_COMPOUND_POP, 0),
                           minlength=n_par)
        purb = np.bincount(C["parcel"], weights=np.where(C["hamlet"], 0, C["cap"] + 1), minlength=n_par)
        total_cap = pcap.sum()
        k_total = max(2, int(round(COMMITTEES_PER_SCALE * self.scale)))
        parcel_comm = np.full(n_par, -1, dtype=np.int64)
        leaves: list[np.ndarray] = []
        for k, (i0, i1, j0, j1) in enumerate(towns):
            cols = [(i, s) for i in range(i0, i1) for s in ((0, 1) if self.col_canal[i] >= 0 else (0,))]
            rows = [(j, s) for j in range(j0, j1) for s in ((0, 1) if self.row_river[j] >= 0 else (0,))]
            ci_ = np.array([c[0] for c in cols])
            cs_ = np.array([c[1] for c in cols])
            rj_ = np.array([r[0] for r in rows])
            rs_ = np.array([r[1] for r in rows])
            cell = ci_[:, None] * ny + rj_[None, :]
            pid = self.parcel_of(cell.ravel(), np.broadcast_to(rs_[None, :], cell.shape).ravel(),
                                 np.broadcast_to(cs_[:, None], cell.shape).ravel()).reshape(cell.shape)
            cap = pcap[pid]
            ktown = max(1, int(round(k_total * cap.sum() / total_cap)))
            fc = np.flatnonzero(ci_[1:] == ci_[:-1]) + 1
            fr = np.flatnonzero(rj_[1:] == rj_[:-1]) + 1

            def split(c0: int, c1: int, r0: int, r1: int, K: int) -> None:
                sub_cap = cap[c0:c1, r0:r1]
                tot = sub_cap.sum()
                for axis, forced in ((0, fc), (1, fr)):
                    lo_, hi_ = (c0, c1) if axis == 0 else (r0, r1)
                    f = forced[(forced > lo_) & (forced < hi_)]
                    if len(f):
                        p = int(f[0])
                        ca = cap[c0:p, r0:r1].sum() if axis == 0 else cap[c0:c1, r0:p].sum()
                        cb = tot - ca
                        if ca > 0 and cb > 0:
                            ka = int(np.clip(round(K * ca / tot), 1, max(1, K - 1)))
                            kb = max(1, K - ka)
                            if axis == 0:
                                split(c0, p, r0, r1, ka)
                                split(p, c1, r0, r1, kb)
                            else:
                                split(c0, c1, r0, p, ka)
                                split(c0, c1, p, r1, kb)
                            return
                if K <= 1 or tot <= 0:
                    leaves.append(np.unique(pid[c0:c1, r0:r1]))
                    return
                ka = K // 2
                # split across the longer side (in metres), balancing capacity
                wx = self.cw[ci_[c0:c1] * ny + rj_[r0]].sum()
                wy = self.ch[ci_[c0] * ny + rj_[r0:r1]].sum()
                for axis in ((0, 1) if wx >= wy else (1, 0)):
                    prof = sub_cap.sum(axis=1 - axis)
                    if len(prof) < 2:
                        continue
                    cum = np.cumsum(prof)[:-1]
                    valid = (cum > 0) & (cum < tot)
                    if not valid.any():
                        continue
                    err = np.where(valid, np.abs(cum / tot - ka / K), np.inf)
                    p = int(np.argmin(err)) + 1
                    if axis == 0:
                        split(c0, c0 + p, r0, r1, ka)
                        split(c0 + p, c1, r0, r1, K - ka)
                    else:
                        split(c0, c1, r0, r0 + p, ka)
                        split(c0, c1, r0 + p, r1, K - ka)
                    return
                leaves.append(np.unique(pid[c0:c1, r0:r1]))

            n0 = len(leaves)
            split(0, len(cols), 0, len(rows), ktown)
            for li in range(n0, len(leaves)):
                parcel_comm[leaves[li]] = li
        # parcels not reached (should not happen): attach to their cell's (0,0) parcel committee
        miss = parcel_comm < 0
        if miss.any():
            parcel_comm[miss] = parcel_comm[self.parcel_of(self.parcel_cell[miss], 0, 0)]
        n_comm = len(leaves)
        ccap = np.bincount(parcel_comm, weights=pcap, minlength=n_comm)
        curb = np.bincount(parcel_comm, weights=purb, minlength=n_comm)
        cham = ccap - np.bincount(parcel_comm, weights=np.minimum(purb, pcap), minlength=n_comm)
        urban = curb >= cham
        ctown = self.cell_town[self.parcel_cell[[lv[0] for lv in leaves]]]
        geoms = np.array([shapely.union_all(self.parcel_geom[lv]) for lv in leaves], dtype=object)
        cxy = shapely.get_coordinates(shapely.point_on_surface(geoms))
        order = np.lexsort((cxy[:, 0], -cxy[:, 1], ctown))
        rank = np.empty(n_comm, dtype=np.int64)
        rank[order] = np.arange(n_comm)
        # codes: 居委会 001.., 村委会 201.. within each town
        num = np.zeros(n_comm, dtype=np.int64)
        for k in range(len(towns)):
            for kind_, base in ((True, 1), (False, 201)):
                m = np.flatnonzero((ctown == k) & (urban == kind_))
                m = m[np.argsort(rank[m])]
                num[m] = base + np.arange(len(m))
        cid = np.array([f"{self.town_code[t]}{n:03d}" for t, n in zip(ctown, num)], dtype=object)
        stems = np.array(_STEMS, dtype=object)[rng.permutation(len(_STEMS))]
        variants = np.array(["", "一村", "二村", "新村", "东", "西", "南", "北", "三村", "中"], dtype=object)
        k_ = np.arange(n_comm)
        stem = stems[k_ % len(stems)] + variants[(k_ // len(stems)) % len(variants)]
        cname = np.where(urban, stem + "居委会", stem + "村村委会").astype(object)
        final = np.argsort(cid, kind="stable")
        remap = np.empty(n_comm, dtype=np.int64)
        remap[final] = np.arange(n_comm)
        self.committee = dict(id=cid[final], name=cname[final], stem=stem[final],
                              town=ctown[final], geom=geoms[final], urban=urban[final],
                              cap=ccap[final])
        self.parcel_comm = remap[parcel_comm]
        self.towns = towns
        self.comp["committee"] = self.parcel_comm[C["parcel"]]

    # ------------------------------------------------------------------ population
    def population(self) -> None:
        rng, C, K = self.rng, self.comp, self.committee
        n_comm = len(K["id"])
        total = int(round(BASE_POPULATION * self.scale ** POPULATION_EXPONENT))
        comm = C["committee"]
        big = C["big"]
        big_pop = min(BIG_COMPOUND_POP, 0.4 * total)  # tiny districts: a smaller big one
        pbig = np.where(big, np.round(big_pop + rng.integers(0, 601, len(big)) * big_pop / BIG_COMPOUND_POP), 0)
        raw = np.bincount(comm, weights=np.where(big, 0, C["cap"]), minlength=n_comm)
        bigc = np.bincount(comm, weights=pbig, minlength=n_comm)
        has_big = bigc > 0
        n_low = max(2, int(round(0.12 * n_comm)))
        n_high = max(1, int(round(0.07 * n_comm)))
        cls = np.full(n_comm, "in", dtype=object)
        free = np.flatnonzero(~has_big & (raw > 0))
        low = free[np.argsort(raw[free], kind="stable")][:n_low]
        cls[low] = "below"
        free = np.setdiff1d(free, low)
        # the crowded committees: urban ones first (居委会 of dense compounds)
        high = free[np.lexsort((-raw[free], ~K["urban"][free]))][:n_high]
        cls[high] = "above"
        cls[has_big] = "above"
        fixed = np.zeros(n_comm)
        fixed[low] = rng.uniform(2800, 4700, len(low))
        fixed[high] = rng.uniform(12600, 14800, len(high))
        rest = (cls == "in") & (raw > 0)
        lo_b = settings.unit_min_pop * rng.uniform(1.03, 1.15, n_comm)[rest]
        hi_b = settings.unit_max_pop * rng.uniform(0.93, 0.985, n_comm)[rest]

        def total_for(k: float) -> float:
            return (fixed.sum() + np.clip(k * raw[rest], lo_b, hi_b).sum()
                    + (bigc + k * raw)[has_big].sum())

        if total_for(0.0) > total:
            # a district too small for the designed spread (scale < ~0.5): plain shares
            fixed[:] = 0.0
            rest = ~has_big & (raw > 0)
            lo_b, hi_b = np.zeros(int(rest.sum())), np.full(int(rest.sum()), np.inf)

        k_lo, k_hi = 0.0, 1.0
        while total_for(k_hi) < total and k_hi < 1e6:
            k_hi *= 2
        for _ in range(80):
            mid = 0.5 * (k_lo + k_hi)
            if total_for(mid) < total:
                k_lo = mid
            else:
                k_hi = mid
        k = 0.5 * (k_lo + k_hi)
        target = fixed.copy()
        target[rest] = np.clip(k * raw[rest], lo_b, hi_b)
        target[has_big] = bigc[has_big] + k * raw[has_big]
        target = np.round(target).astype(np.int64)
        # exact total: the remainder goes to the in-range committees, spread evenly
        diff = total - int(target.sum())
        rr = np.flatnonzero(rest)
        if len(rr) and diff:
            add = np.full(len(rr), diff // len(rr))
            add[: diff % len(rr)] += 1
            target[rr] += add
        # share each committee's target among its compounds by floor area (largest remainder)
        share_t = target - bigc.astype(np.int64)
        w = np.where(big, 0.0, C["cap"])
        wsum = np.bincount(comm, weights=w, minlength=n_comm)
        x = np.where(big, 0.0, share_t[comm] * w / np.where(wsum[comm] > 0, wsum[comm], 1))
        base = np.floor(x).astype(np.int64)
        rem = share_t - np.bincount(comm, weights=base, minlength=n_comm).astype(np.int64)
        frac = x - base
        o = np.lexsort((-frac, comm))
        start = np.searchsorted(comm[o], np.arange(n_comm))
        rank = np.arange(len(o)) - start[comm[o]]
        plus = np.zeros(len(o), dtype=np.int64)
        plus[o] = (rank < rem[comm[o]]) & ~big[o]
        pop = np.where(big, pbig, base + plus).astype(np.int64)
        C["population"] = pop
        C["households"] = np.where(pop > 0, np.maximum(1, np.round(pop / rng.uniform(2.45, 2.75, len(pop)))), 0).astype(np.int64)
        K["population"] = np.bincount(comm, weights=pop, minlength=n_comm).astype(np.int64)
        K["households"] = np.bincount(comm, weights=C["households"], minlength=n_comm).astype(np.int64)
        K["class"] = np.select([K["population"] < settings.unit_min_pop,
                                K["population"] > settings.unit_max_pop], ["below", "above"], "in").astype(object)

    # ------------------------------------------------------------------ facilities
    def facilities(self) -> None:
        """Facilities planned per life circle, sited beside the compounds they serve.

        Counts and siting follow :data:`_FACILITY_PLAN`: per area, rounds of a greedy
        maximal covering (vectorised over the areas; one round per facility of the best
        provided area) pick, among the street-front sites beside the pool's compounds
        (:meth:`_sites`), the one whose siting distance reaches the most residents not
        yet reached, measured to the compounds' gates (:meth:`_gates`, where the network
        coverage reaches them) in the grid (L1) metric × :data:`_SITE_REACH`. The
        deliberate gaps are planned in: no site within the gap distance (+ 25 m) of the
        gap committees is eligible, and a final filter enforces the exact distance.
        Bus stops follow the arterials, metro stations one or two lines through the
        most urban residents. Own random streams (one per type), so the other layers
        and the other types do not move when one type's rule changes.
        """
        rng = np.random.default_rng([self.seed, 20240604, 1551])   # own stream
        C, K, R = self.comp, self.committee, self.roads
        pop = C["population"].astype(float)
        geom = C["geom"]
        rep_xy = shapely.get_coordinates(shapely.point_on_surface(geom))
        urban = ~C["hamlet"] & (pop > 0)
        comm = C["committee"]
        town = K["town"][comm]
        comm_stem = K["stem"][comm]
        inner = shapely.buffer(self.boundary, -5.0)
        gaps, exclude = self._gap_plan(rep_xy)
        cand_xy, cand_comp, cand_dir = self._sites(geom, inner, rng)
        gate_xy = self._gates(geom)
        cand_pts = shapely.points(cand_xy)
        cand_tree = shapely.STRtree(cand_pts)
        reach: dict[tuple[float, str], tuple[np.ndarray, np.ndarray]] = {}
        T = _Table()
        for i_type, (code, per, pool_kind, level, radius, prefix, endings, cap) in enumerate(_FACILITY_PLAN):
            trng = np.random.default_rng([self.seed, 20240604, 1551, i_type])  # one stream per type
            pool = urban if pool_kind == "urban" else pop > 0
            key = (comm if level == "committee" else town).astype(np.int64)
            n_key = int(key.max()) + 1
            # the district's residents / per facilities, shared among the areas by the
            # residents of the pool (villagers use the urban facilities of their district);
            # the residents left in a gap (no site can reach them) have none built for them
            target = pool.copy()
            if code in exclude:
                gap_geom, gap_d = exclude[code]
                unreachable = gap_d + 25.0 - _SITE_REACH * radius
                if unreachable > 0:
                    target &= ~shapely.dwithin(shapely.points(gate_xy), gap_geom, unreachable)
            Pp = np.bincount(key, weights=pop * target, minlength=n_key)
            P = Pp * pop.sum() / max(float((pop * pool).sum()), 1.0)
            n_fac = np.where(P >= 0.4 * per, np.maximum(1, np.round(P / per)), 0).astype(np.int64)
            cxy = np.column_stack([np.bincount(key, weights=pop * target * rep_xy[:, i], minlength=n_key)
                                   for i in (0, 1)]) / np.maximum(Pp, 1.0)[:, None]
            # candidate sites: beside a compound of the pool in an area due facilities,
            # outside the type's gap
            area = key[cand_comp]
            valid = pool[cand_comp] & (n_fac[area] > 0)
            if code in exclude:
                valid[cand_tree.query(gap_geom, predicate="dwithin", distance=gap_d + 25.0)] = False
            # pairs (site, compound of the pool) with the compound's gate within reach of
            # the site: grid (L1) distance ≤ _SITE_REACH × the walking distance
            if (radius, pool_kind) not in reach:
                pm = np.flatnonzero(pool)
                qb, qa = cand_tree.query(shapely.points(gate_xy[pm]), predicate="dwithin", distance=radius)
                qb = pm[qb]
                close = pool[cand_comp[qa]] & \
                    (np.abs(cand_xy[qa] - gate_xy[qb]).sum(axis=1) <= _SITE_REACH * radius)
                reach[(radius, pool_kind)] = (qa[close], qb[close])
            pa, pb = reach[(radius, pool_kind)]
            keep = valid[pa]
            pa, pb = pa[keep], pb[keep]
            near = np.hypot(*(cand_xy - cxy[area]).T)
            # greedy maximal covering, one round per facility of the most provided area:
            # each area takes the site reaching most of the pool's residents not yet
            # reached, give or take 10 % (a site's own suitability for this type: types
            # with the same rule do not all land on the same sites; ties: nearest the
            # area's centre of population)
            gain = np.bincount(pa, weights=pop[pb], minlength=len(cand_xy))
            suit = trng.uniform(0.9, 1.0, len(cand_xy))
            picks = []
            for j in range(int(n_fac.max())):
                ci = np.flatnonzero(valid & (n_fac[area] > j))
                if not len(ci):
                    break
                o = ci[np.lexsort((near[ci], -np.round(gain[ci] * suit[ci]), area[ci]))]
                first = o[np.r_[True, area[o][1:] != area[o][:-1]]]
                picks.append(first)
                valid[first] = False
                chosen = np.zeros(len(cand_xy), dtype=bool)
                chosen[first] = True
                newly = np.zeros(len(pop), dtype=bool)
                newly[pb[chosen[pa]]] = True
                hit = newly[pb]                       # pairs of the compounds now reached
                gain -= np.bincount(pa[hit], weights=pop[pb[hit]], minlength=len(cand_xy))
                pa, pb = pa[~hit], pb[~hit]
            if not picks:
                continue
            site = np.sort(np.concatenate(picks))
            n = len(site)
            anchor = cand_comp[site]
            # residents served: every compound, by its nearest facility of the type
            pm = np.flatnonzero(pop > 0)
            nf = shapely.STRtree(cand_pts[site]).query_nearest(shapely.points(rep_xy[pm]),
                                                               all_matches=False)[1]
            served = np.bincount(nf, weights=pop[pm], minlength=n)
            # facilities of different types on the same site: side by side along the
            # street (a slot per type, 2.5 m apart, within ±20 m)
            slot = ((i_type * 7) % 17 - 8) * 2.5 + trng.uniform(-1.0, 1.0, n)
            xy = cand_xy[site] + cand_dir[site] * slot[:, None]
            end = np.array(endings, dtype=object)[trng.integers(0, len(endings), n)]
            if prefix == "@brand":
                brands = np.array(_STORE_BRANDS, dtype=object)
                names = _numbered_names(brands[trng.integers(0, len(brands), n)] + "(" + comm_stem[anchor],
                                        end, numerals="")
            elif prefix == "@committee":
                names = _numbered_names(K["name"][comm[anchor]], end)
            elif prefix == "@town":
                names = _numbered_names(self.town_name[town[anchor]], end)
            else:
                names = _numbered_names(prefix + comm_stem[anchor], end)
            if cap is None:
                capacity = np.full(n, np.nan)
            else:
                rate, unit, lo, hi = cap
                capacity = np.clip(np.round(served * rate * trng.uniform(0.85, 1.15, n) / unit),
                                   lo, hi) * unit
            T.add(x=xy[:, 0], y=xy[:, 1], type=np.full(n, code, dtype=object),
                  name=names.astype(object), capacity=capacity.astype(float), anchor=anchor)
        F = T.get()
        # bus stops along arterials (about one per 550 m), metro stations along one or two lines
        art = np.isin(R["highway"], ["primary", "secondary", "tertiary"]) & (R["item"] < 0)
        ai = np.flatnonzero(art & (shapely.length(R["geom"]) > 60))
        length = shapely.length(R["geom"][ai])
        nbus = max(4, int(round(length.sum() / 550.0)))
        seg = ai[rng.choice(len(ai), nbus, replace=False, p=length / length.sum())] if nbus <= len(ai) else ai
        nbus = len(seg)
        g = R["geom"][seg]
        fr = rng.uniform(0.2, 0.8, nbus)
        p0 = shapely.get_coordinates(shapely.line_interpolate_point(g, fr, normalized=True))
        c = shapely.get_coordinates(g)[::2], shapely.get_coordinates(g)[1::2]
        d = c[1] - c[0]
        d /= np.hypot(*d.T)[:, None]
        side = rng.choice([-1.0, 1.0], nbus)
        off = rng.uniform(8, 14, nbus)
        bxy = p0 + np.column_stack([-d[:, 1], d[:, 0]]) * (side * off)[:, None]
        bnames = np.where(pd.isna(R["name"][seg]), "公交", R["name"][seg].astype(str)) + \
            np.array(_STEMS, dtype=object)[rng.integers(0, len(_STEMS), nbus)] + "路站"
        # metro: one line per ~4 scale units, each along the arterial row (at least 3 rows
        # from another line, not the boundary) and with the alternation of stations (every
        # other crossing, 20 m north of it) that reach most urban residents (gates within
        # 800 m, grid metric as above)
        n_lines = max(1, int(round(math.sqrt(self.scale) / 2)))
        upop = np.where(urban, pop, 0.0)
        ui = np.flatnonzero(urban)
        urban_gates = shapely.STRtree(shapely.points(gate_xy[ui]))
        jitter = rng.uniform(-25, 25, (self.nx + 1, self.ny + 1, 2)) + [0.0, 20.0]
        options = []
        for j in range(1, self.ny):
            for start in (0, 1):
                ii = np.arange(start, self.nx + 1, 2)
                pts = self.P[ii, j] + jitter[ii, j]
                a, b = urban_gates.query(shapely.points(pts), predicate="dwithin", distance=800.0)
                b = ui[b]
                ok = np.abs(pts[a] - gate_xy[b]).sum(axis=1) <= _SITE_REACH * 800.0
                options.append((upop[np.unique(b[ok])].sum(), j, pts))
        mx, my, mn = [], [], []
        taken: list[int] = []
        for _score, j, pts in sorted(options, key=lambda o: -o[0]):   # best first
            if len(taken) == n_lines:
                break
            if all(abs(j - t) >= 3 for t in taken):
                taken.append(j)
                mx.append(pts[:, 0])
                my.append(pts[:, 1])
                mn.append(np.array(_STEMS, dtype=object)[rng.integers(0, len(_STEMS), len(pts))] + "路站")
        F = {key: np.concatenate([F[key], extra]) for key, extra in (
            ("x", np.concatenate([bxy[:, 0]] + mx)), ("y", np.concatenate([bxy[:, 1]] + my)),
            ("type", np.array(["bus_stop"] * nbus + ["metro_station"] * sum(len(m) for m in mx), dtype=object)),
            ("name", np.concatenate([bnames.astype(object)] + [m.astype(object) for m in mn])),
            ("capacity", np.full(nbus + sum(len(m) for m in mx), np.nan)),
            ("anchor", np.full(nbus + sum(len(m) for m in mx), -1)))}
        # keep inside the district; the gaps hold exactly (sites were chosen outside them)
        pts = shapely.points(F["x"], F["y"])
        keep = shapely.within(pts, inner)
        for code, (gap_geom, gap_d) in exclude.items():
            keep &= ~((F["type"] == code) & (shapely.distance(pts, gap_geom) < gap_d))
        F = {k: v[keep] for k, v in F.items()}
        # stable IDs: by type then west → east
        o = np.lexsort((F["y"], F["x"], F["type"]))
        F = {k: v[o] for k, v in F.items()}
        F["facility_id"] = np.array([f"F{i + 1:05d}" for i in range(len(o))], dtype=object)
        amap_types = ("convenience_store", "fresh_market", "post_office", "community_canteen")
        F["source"] = np.where(np.isin(F["type"], amap_types), "amap", "delivery").astype(object)
        self.fac = F
        self.gaps = gaps

    def _gap_plan(self, rep_xy: np.ndarray) -> tuple[dict[str, list[str]],
                                                     dict[str, tuple[Any, float]]]:
        """The deliberate gaps: committee IDs per gap and, per facility type, the area
        (committee union) and distance (m) within which no facility of the type is sited."""
        K = self.committee
        cls = K["class"]
        cpop = K["population"].astype(float)
        gaps: dict[str, list[str]] = {}
        exclude: dict[str, tuple[Any, float]] = {}
        kg_cand = np.flatnonzero((cls == "in") & K["urban"])
        if not len(kg_cand):
            kg_cand = np.flatnonzero(cls == "in")
        if len(kg_cand):
            kc = kg_cand[np.argmax(cpop[kg_cand])]
            exclude["kindergarten"] = (K["geom"][kc], 350.0)
            gaps["kindergarten_300m"] = [str(K["id"][kc])]
        krep = shapely.get_coordinates(shapely.point_on_surface(K["geom"]))
        centre = (krep * cpop[:, None]).sum(0) / cpop.sum()
        far = int(np.argmax(np.hypot(*(krep - centre).T) * (cpop > 0)))
        exclude["community_health_centre"] = (K["geom"][far], 1000.0)
        exclude["community_health_station"] = (K["geom"][far], 1000.0)
        gaps["clinic_1000m"] = [str(K["id"][far])]
        last = len(self.towns) - 1
        tm = np.flatnonzero(K["town"] == last)
        ty = np.average(krep[tm, 1], weights=np.maximum(cpop[tm], 1))
        south = tm[(krep[tm, 1] < ty) & (cpop[tm] > 0)]
        if len(south):
            exclude["elderly_day_care"] = (shapely.union_all(K["geom"][south]), 300.0)
            gaps["elderly_day_care_300m"] = sorted(str(x) for x in K["id"][south])
        return gaps, exclude

    def _sites(self, geom: np.ndarray, inner: Any, rng: np.random.Generator
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Street-front candidate sites around every compound.

        Points every ~50 m (~100 m around hamlets) along each compound's outline (2-32 per
        compound) are moved onto the nearest street (no bridge or level crossing; one
        within 6-60 m of the outline, else no site), then back towards the compound by
        35-80 % of the street-to-fence distance (5-30 m off the street): between the
        street and the compound's fence, as street-front facilities are. Never in water,
        always inside the district. Returns the site (x, y) in metres, its compound and
        the unit direction of its street.
        """
        R = self.roads
        street = (np.isin(R["highway"], ["primary", "secondary", "tertiary", "residential", "unclassified"])
                  & pd.isna(R["structure"]) & (shapely.length(R["geom"]) > 1.0))
        sidx = np.flatnonzero(street)
        ring = shapely.get_exterior_ring(geom)
        k = np.clip(np.round(shapely.length(ring) / np.where(self.comp["hamlet"], 100.0, 50.0)),
                    2, 32).astype(np.int64)
        owner, rank = _ragged(k)
        frac = (rank + rng.uniform(0.2, 0.8, len(rank))) / k[owner]
        p = shapely.line_interpolate_point(ring[owner], frac, normalized=True)
        near = sidx[shapely.STRtree(R["geom"][sidx]).query_nearest(p, all_matches=False)[1]]
        edge = R["geom"][near]
        on = shapely.get_coordinates(shapely.line_interpolate_point(edge, shapely.line_locate_point(edge, p)))
        ends = shapely.get_coordinates(edge)
        d = ends[1::2] - ends[0::2]
        d /= np.hypot(*d.T)[:, None]
        normal = np.column_stack([-d[:, 1], d[:, 0]])
        pxy = shapely.get_coordinates(p)
        fence = np.hypot(*(pxy - on).T)
        normal *= np.where(((pxy - on) * normal).sum(1) >= 0, 1.0, -1.0)[:, None]
        off = np.clip(fence * rng.uniform(0.35, 0.8, len(fence)), 5.0, 30.0)
        xy = on + normal * off[:, None]
        pts = shapely.points(xy)
        ok = (fence >= 6.0) & (fence < 60.0) & shapely.within(pts, inner)
        wet = shapely.STRtree(pts).query(np.asarray(self.water_geoms), predicate="intersects")[1]
        ok[wet] = False
        return xy[ok], owner[ok], d[ok]

    def _gates(self, geom: np.ndarray) -> np.ndarray:
        """Where each compound meets the road network (x, y): the outline point nearest to
        the nearest road feature (its driveway where one crosses the fence), as
        :func:`geotijian.network.snap_points` reaches a polygon home."""
        R = self.roads
        outline = shapely.boundary(geom)
        # ties (several roads crossing the fence): the lowest road number, as the network does
        i, e = shapely.STRtree(R["geom"]).query_nearest(outline, all_matches=True)
        o = np.lexsort((e, i))
        e = e[o][np.r_[True, i[o][1:] != i[o][:-1]]]
        return shapely.get_coordinates(shapely.get_point(shapely.shortest_line(outline, R["geom"][e]), 0))

    # ------------------------------------------------------------------ complaints
    def complaints(self) -> None:
        rng, C = self.rng, self.comp
        n = max(50, int(round(500 * self.scale)))
        pop = C["population"].astype(float)
        rep_xy = shapely.get_coordinates(shapely.point_on_surface(C["geom"]))
        old = (C["era"] == 0) & (pop > 800)
        cand = np.flatnonzero(old) if old.any() else np.flatnonzero(pop > 0)
        hot = cand[np.argmax(pop[cand] * rng.uniform(0.8, 1.2, len(cand)))]
        n_hot = int(round(0.25 * n))
        cats = np.array(["噪声", "停车", "垃圾", "绿化", "道路破损", "积水", "设施不足", "物业管理", "违章搭建"], dtype=object)
        anchor = np.concatenate([np.full(n_hot, hot), rng.choice(len(pop), n - n_hot, p=pop / pop.sum())])
        w = np.tile(np.array([1.0, 1.2, 1.0, 0.6, 0.8, 0.4, 0.9, 0.9, 0.4]), (n, 1))
        pts = shapely.points(rep_xy[anchor])
        # distance to the water's edge, via short edge segments (fast nearest queries)
        dist_w = np.full(n, np.inf)
        if len(self.water_geoms):
            ring = shapely.get_coordinates(shapely.get_exterior_ring(self.water_geoms), return_index=True)
            xy_w, own = ring
            step = np.flatnonzero(own[1:] == own[:-1])
            edges = shapely.linestrings(np.stack([xy_w[step], xy_w[step + 1]], axis=1))
            dist_w = shapely.STRtree(edges).query_nearest(pts, return_distance=True, all_matches=False)[1]
            dist_w[shapely.intersects(pts, self.water_union)] = 0.0
        dist_r = shapely.distance(pts, self.rail_line)
        w[:, 5] *= np.where(dist_w < 250, 6.0, 1.0)
        w[:, 0] *= np.where(dist_r < 300, 5.0, 1.0)
        w[:, 1] *= np.where(C["era"][anchor] == 0, 2.0, 1.0)
        w[:, 4] *= np.where(C["era"][anchor] == 0, 1.8, 1.0)
        w[:, 2] *= np.where(C["hamlet"][anchor], 3.0, 1.0)
        w[:, 8] *= np.where(C["hamlet"][anchor], 4.0, 1.0)
        w[:n_hot] = 0.05
        w[:n_hot, 1] = 1.0
        cw = np.cumsum(w / w.sum(1, keepdims=True), axis=1)
        cat_idx = np.minimum((cw < rng.random((n, 1))).sum(1), len(cats) - 1)
        cat = cats[cat_idx]
        r = np.where(np.arange(n) < n_hot, rng.uniform(5, 80, n), rng.uniform(2, 40, n))
        ang = rng.uniform(0, 2 * np.pi, n)
        xy = rep_xy[anchor] + np.column_stack([np.cos(ang), np.sin(ang)]) * r[:, None]
        day = rng.integers(0, 366, n)
        date = (np.datetime64("2024-01-01") + day.astype("timedelta64[D]")).astype(str)
        name = C["name"][anchor]
        templates = {
            "噪声": ["{n}附近夜间施工噪声扰民", "{n}旁道路车辆噪声大，影响休息", "{n}附近列车噪声扰民"],
            "停车": ["{n}小区内停车位不足，车辆乱停占用消防通道", "{n}门口机动车乱停放", "{n}非机动车充电难，电瓶车进楼"],
            "垃圾": ["{n}垃圾箱房满溢未及时清运", "{n}附近建筑垃圾乱堆放", "{n}垃圾分类点异味大"],
            "绿化": ["{n}绿化带树木遮挡采光，需修剪", "{n}公共绿地被占用种菜", "{n}绿化缺少养护"],
            "道路破损": ["{n}门口道路坑洼破损", "{n}人行道地砖松动", "{n}小区内道路破损积水"],
            "积水": ["{n}下雨后道路积水严重", "{n}地下车库进水", "{n}雨水井堵塞"],
            "设施不足": ["{n}缺少老年活动场所", "{n}附近没有菜场，买菜不便", "{n}缺少儿童游乐设施", "{n}老旧住宅无电梯，老人上下楼难"],
            "物业管理": ["{n}物业服务差，报修无人处理", "{n}物业费使用不公开", "{n}楼道堆物无人管理"],
            "违章搭建": ["{n}有违章搭建", "{n}沿街商铺违规搭建雨棚"],
        }
        pick = rng.integers(0, 4, n)
        # every template starts with the compound name: a (category × variant) table of endings
        ends = np.array([[templates[c][k % len(templates[c])].removeprefix("{n}") for k in range(4)]
                         for c in cats], dtype=object)
        text = (name + ends[cat_idx, pick]).astype(object)
        o = np.lexsort((xy[:, 0], date))
        self.cmp = dict(x=xy[o, 0], y=xy[o, 1], category=cat[o], date=date[o], text=text[o],
                        complaint_id=np.array([f"H2024{i + 1:06d}" for i in range(n)], dtype=object))
        self.hotspot = hot

    # ------------------------------------------------------------------ survey
    def survey(self) -> None:
        rng, C, K = self.rng, self.comp, self.committee
        n_comm = len(K["id"])
        cpop = K["population"]
        f = rng.uniform(1.0, 1.5, n_comm)
        elig = np.flatnonzero(cpop > 0)
        under = elig[rng.permutation(len(elig))[:2]] if len(elig) >= 4 else elig[:0]
        f[under] = rng.uniform(0.4, 0.6, len(under))
        n_c = np.where(cpop > 0, np.ceil(cpop * settings.survey_sample_rate * f), 0).astype(np.int64)
        owner, _ = _ragged(n_c)
        n = len(owner)
        pop = C["population"].astype(float)
        comm = C["committee"]
        # home compound: weighted by population within the committee
        o = np.lexsort((np.arange(len(comm)), comm))
        cw = np.cumsum(pop[o])
        start = np.searchsorted(comm[o], np.arange(n_comm))
        end = np.searchsorted(comm[o], np.arange(n_comm), side="right")
        base = np.where(start > 0, cw[np.maximum(start - 1, 0)], 0.0)
        tot = np.where(end > start, cw[np.maximum(end - 1, 0)] - base, 0.0)
        u = base[owner] + rng.random(n) * tot[owner]
        idx = np.clip(np.searchsorted(cw, u, side="right"), start[owner], end[owner] - 1)
        home = o[idx]
        rep = shapely.get_coordinates(shapely.point_on_surface(C["geom"][home]))
        xy = rep + rng.uniform(-8, 8, (n, 2))
        age = np.where(rng.random(n) < 0.03, rng.integers(12, 16, n), rng.integers(16, 88, n))
        sex = rng.choice(np.array(["男", "女"], dtype=object), n)
        base_c = rng.normal(3.7, 0.25, n_comm)
        items = list(_SAT_ITEMS)
        scores = {}
        gap_kg = set(self.gaps.get("kindergarten_300m", []))
        old = C["era"][home] == 0
        hamlet = C["hamlet"][home]
        for k, col in enumerate(items):
            s = base_c[owner] + rng.normal(0, 0.8, n)
            if col == "sat_renewal":
                s -= 0.8 * old
            if col == "sat_livable":
                s -= 0.4 * old
            if col == "sat_transport":
                s -= 0.6 * hamlet
            if col == "sat_inclusive":
                s -= 0.7 * np.isin(K["id"][owner], list(gap_kg))
            if col == "sat_smart":
                s -= 0.3 * hamlet
            scores[col] = np.clip(np.round(s), 1, 5).astype(np.int64)
        mat = np.column_stack([scores[c] for c in items])
        worst = np.argmin(mat, axis=1)
        comments = {
            "sat_livable": ["房屋老化，希望加装电梯", "楼道环境差", "住房面积小，居住拥挤"],
            "sat_safety": ["消防通道被占用", "夜间路灯太暗", "电动车楼道充电不安全"],
            "sat_renewal": ["小区外立面破旧，希望改造", "老旧小区改造进度慢", "管线老化经常停水"],
            "sat_green": ["绿地太少", "缺少口袋公园", "垃圾分类点太远"],
            "sat_transport": ["公交站太远", "停车难", "去地铁站不方便"],
            "sat_inclusive": ["附近没有幼儿园", "缺少养老服务", "缺少社区食堂"],
            "sat_governance": ["居委会办事不便", "物业与居民沟通不够", "意见反映后没有回音"],
            "sat_smart": ["不会用手机办事", "小区门禁系统不好用", "缺少线上报修渠道"],
        }
        pick = rng.integers(0, 3, n)
        minv = mat.min(axis=1)
        say = (minv <= 2) & (rng.random(n) < 0.6)
        praise = ~say & (rng.random(n) < 0.1)
        text = np.array([comments[c] for c in items], dtype=object)[worst, pick]
        comment = np.where(say, text, np.where(praise, "总体满意", ""))
        self.srv = dict(respondent_id=np.array([f"S{i + 1:05d}" for i in range(n)], dtype=object),
                        age=age, sex=sex, committee_id=K["id"][owner], x=xy[:, 0], y=xy[:, 1],
                        **scores, comment=comment.astype(object))
        self.under_sampled = sorted(str(x) for x in K["id"][under])

    # ------------------------------------------------------------------ names
    def compound_names(self) -> None:
        rng, C, K = self.rng, self.comp, self.committee
        n = len(C["item"])
        era = C["era"]
        stems = np.array(_STEMS, dtype=object)
        brands = np.array(_BRANDS, dtype=object)
        s1 = stems[rng.integers(0, len(stems), n)]
        b1 = np.where(rng.random(n) < 0.45, brands[rng.integers(0, len(brands), n)], s1)
        old = s1 + np.array(_SUFFIX_OLD, dtype=object)[rng.integers(0, len(_SUFFIX_OLD), n)]
        old = np.where(rng.random(n) < 0.3, s1 + "路小区", old)
        mid = b1 + np.array(_SUFFIX_MID, dtype=object)[rng.integers(0, len(_SUFFIX_MID), n)]
        new = b1 + np.array(_SUFFIX_NEW, dtype=object)[rng.integers(0, len(_SUFFIX_NEW), n)]
        village = K["stem"][C["committee"]] + "村"
        ham = (np.array(_DIR_PREFIX, dtype=object)[rng.integers(0, len(_DIR_PREFIX), n)]
               + np.array(_SURNAMES, dtype=object)[rng.integers(0, len(_SURNAMES), n)]
               + np.array(_HAMLET_SUFFIX, dtype=object)[rng.integers(0, len(_HAMLET_SUFFIX), n)])
        name = np.select([C["big"], C["hamlet"], era == 0, era == 1],
                         [s1 + "大型居住社区", village + ham, old, mid], new).astype(object)
        C["name"] = _ordinal_names(name)

    # ------------------------------------------------------------------ run
    def run(self) -> _District:
        self.lattice()
        self.arterials()
        self.water_and_rail()
        self.parcels()
        self.land_use()
        self.urban()
        self.layout_slots()
        self.villages()
        self.industry_and_parks()
        self.compounds()
        self.build_roads()
        self.towns_and_committees()
        self.population()
        self.compound_names()
        self.facilities()
        self.complaints()
        self.survey()
        return self


# --------------------------------------------------------------------------- frames
def _frames(d: _District) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    crs = d.crs
    rng = np.random.default_rng([d.seed, 99])
    C, K = d.comp, d.committee
    n_comm = len(K["id"])
    # compounds: IDs by committee, then north → south, west → east
    rep = shapely.get_coordinates(shapely.point_on_surface(C["geom"]))
    order = np.lexsort((rep[:, 0], -rep[:, 1], K["id"][C["committee"]]))
    width = max(5, len(str(len(order))))
    comp_id = np.empty(len(order), dtype=object)
    comp_id[order] = [f"XQ{i + 1:0{width}d}" for i in range(len(order))]
    town_code = d.town_code[K["town"]]
    compounds = gpd.GeoDataFrame({
        "compound_id": comp_id[order],
        "name": C["name"][order],
        "population": C["population"][order],
        "households": C["households"][order],
        "build_year": C["build_year"][order].astype(np.int64),
        "committee_id": K["id"][C["committee"][order]],
        "town_code": town_code[C["committee"][order]],
        "kind": C["kind"][order],
        "big": C["big"][order],
        "cut_by_road": C["cut"][order],
    }, geometry=C["geom"][order], crs=crs)
    compounds.attrs["cut_by_road"] = sorted(compounds.loc[compounds["cut_by_road"], "compound_id"])
    committees = gpd.GeoDataFrame({
        "committee_id": K["id"], "name": K["name"], "town_code": town_code,
        "kind": np.where(K["urban"], "居委会", "村委会").astype(object),
        "population": K["population"], "households": K["households"],
        "population_class": K["class"],
    }, geometry=K["geom"], crs=crs)
    n_t = len(d.towns)
    tgeom = np.array([shapely.union_all(d.cell_poly[d.cell_town == k]) for k in range(n_t)], dtype=object)
    towns = gpd.GeoDataFrame({
        "town_code": d.town_code, "name": d.town_name,
        "population": np.bincount(K["town"], weights=K["population"], minlength=n_t).astype(np.int64),
        "households": np.bincount(K["town"], weights=K["households"], minlength=n_t).astype(np.int64),
    }, geometry=tgeom, crs=crs)
    boundary = gpd.GeoDataFrame({"boundary_id": [DISTRICT_CODE], "name": ["嘉定区样例片区"]},
                                geometry=[d.boundary], crs=crs)
    # buildings
    B = d.bld_arr
    row = np.where(B["item"] >= 0, d.item_row[np.clip(B["item"], 0, None)], -1)
    keep = (B["use"] != "residential") | (row >= 0)
    bcomp = np.where(row >= 0, comp_id[np.clip(row, 0, None)], None)
    n_b = int(keep.sum())
    bw = max(6, len(str(n_b)))
    buildings = gpd.GeoDataFrame({
        "building_id": [f"BLD{i + 1:0{bw}d}" for i in range(n_b)],
        "levels": B["levels"][keep].astype(np.int64),
        "height": (B["levels"][keep] * settings.level_height_m).astype(float),
        "use": B["use"][keep],
        "build_year": B["year"][keep].astype(np.int64),
        "compound_id": bcomp[keep],
    }, geometry=B["geom"][keep], crs=crs)
    # roads
    R = d.roads
    rw = max(6, len(str(len(R["geom"]))))
    roads = gpd.GeoDataFrame({
        "road_id": [f"R{i + 1:0{rw}d}" for i in range(len(R["geom"]))],
        "highway": R["highway"], "name": R["name"], "structure": R["structure"],
    }, geometry=R["geom"], crs=crs)
    roads.attrs["network_nodes"] = int(d.n_nodes)
    # water and rail, clipped to the district
    wg = shapely.intersection(d.water_geoms, d.boundary)
    water = gpd.GeoDataFrame({
        "water_id": [f"W{i + 1:03d}" for i in range(len(wg))], "kind": d.water_kind,
        "name": d.water_name, "width_m": d.water_width}, geometry=wg, crs=crs)
    rail = gpd.GeoDataFrame({"rail_id": ["RL001"], "kind": ["rail"], "name": ["沪宁铁路"]},
                            geometry=[shapely.intersection(d.rail_line, d.boundary)], crs=crs)
    # parks
    Pk = d.parks.get()
    pg = np.asarray(Pk["geom"], dtype=object)
    ok = ~shapely.is_empty(pg) & (shapely.area(pg) >= 1000.0)
    pg, pkind = pg[ok], Pk["kind"][ok]
    prep = shapely.get_coordinates(shapely.point_on_surface(pg))
    po = np.lexsort((prep[:, 0], -prep[:, 1], pkind))
    pg, pkind = pg[po], pkind[po]
    pst = np.array(_PARK_STEMS + _STEMS, dtype=object)
    stem = pst[rng.integers(0, len(pst), len(pg))]
    pname = np.select([pkind == "综合公园", pkind == "社区公园"], [stem + "公园", stem + "社区公园"],
                      stem + np.where(rng.random(len(pg)) < 0.5, "游园", "街心花园"))
    parks = gpd.GeoDataFrame({
        "park_id": [f"P{i + 1:03d}" for i in range(len(pg))], "name": _ordinal_names(pname),
        "kind": pkind, "area_ha": np.round(shapely.area(pg) / 1e4, 2)}, geometry=pg, crs=crs)
    # facilities
    F = d.fac
    facilities = gpd.GeoDataFrame({
        "facility_id": F["facility_id"], "type": F["type"], "name": F["name"],
        "capacity": F["capacity"].astype(float), "source": F["source"],
    }, geometry=shapely.points(F["x"], F["y"]), crs=crs)
    facilities.attrs["sample_gaps"] = {k: list(v) for k, v in d.gaps.items()}
    H = d.cmp
    complaints = gpd.GeoDataFrame({
        "complaint_id": H["complaint_id"], "category": H["category"], "date": H["date"],
        "text": H["text"]}, geometry=shapely.points(H["x"], H["y"]), crs=crs)
    complaints.attrs["parking_hotspot"] = str(comp_id[d.hotspot])
    S = d.srv
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    lon, lat = to_ll.transform(S["x"], S["y"])
    survey = pd.DataFrame({"respondent_id": S["respondent_id"], "age": S["age"], "sex": S["sex"],
                           "committee_id": S["committee_id"], "lon": np.round(lon, 7),
                           "lat": np.round(lat, 7),
                           **{c: S[c] for c in _SAT_ITEMS}, "comment": S["comment"]})
    survey.attrs["under_sampled"] = list(d.under_sampled)
    survey.attrs["items"] = dict(_SAT_ITEMS)
    assert n_comm == len(committees)
    return {"boundary": boundary, "towns": towns, "committees": committees, "compounds": compounds,
            "buildings": buildings, "roads": roads, "water": water, "rail": rail, "parks": parks,
            "facilities": facilities, "complaints": complaints, "survey": survey}


def make_sample_district(*, seed: int | None = None, scale: float = 1.0
                         ) -> dict[str, gpd.GeoDataFrame | pd.DataFrame]:
    """Generate the sample district in memory.

    Parameters
    ----------
    seed : int, optional
        Random seed; default ``settings.random_seed``. Same seed and scale → same layers.
    scale : float
        Area multiplier: 1 → ~25 km² and 120,000 residents; 18.4 → ~460 km² and ~1.8
        million residents (residents grow as ``scale ** 0.93``).

    Returns
    -------
    dict
        GeoDataFrames ``boundary``, ``towns``, ``committees``, ``compounds``,
        ``buildings``, ``roads``, ``water``, ``rail``, ``parks``, ``facilities``,
        ``complaints`` in ``settings.metric_crs`` (metres), and the DataFrame ``survey``
        (lon/lat in WGS84). See the module docstring for the fields and for the
        properties tests may rely on (``attrs`` of compounds, facilities, survey,
        complaints).
    """
    seed = settings.random_seed if seed is None else int(seed)
    return _frames(_District(seed, scale).run())


# --------------------------------------------------------------------------- writing
def _lonlat(gdf: gpd.GeoDataFrame) -> tuple[np.ndarray, np.ndarray]:
    xy = shapely.get_coordinates(gdf.to_crs("EPSG:4326").geometry.values)
    return xy[:, 0], xy[:, 1]


def _write_csv(df: pd.DataFrame, path: Path) -> Path:
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, encoding="utf-8", lineterminator="\n")
    return path


def write_sample(folder: str | os.PathLike = "layers/sample", *, seed: int | None = None,
                 scale: float = 1.0) -> dict[str, Path]:
    """Write the sample district like a real delivery.

    Files (each written atomically; same seed and scale → identical bytes):

    * ``sample_district.gpkg``: layers boundary, towns, committees, compounds, buildings,
      roads, water, rail, parks, facilities, in CGCS2000 (EPSG:4490). The facilities layer
      holds the government-delivered types; the commercial POIs (convenience stores,
      fresh markets, post offices, canteens: ``source == "amap"``) are only in
    * ``facilities_amap_gcj02.csv``: facility_id, name, type, lon, lat (GCJ-02, as copied
      from Amap), capacity; read with ``read_layer(path, "facilities", coords="gcj02")``;
    * ``complaints_12345.csv``: complaint_id, lon, lat (WGS84), category, date, text;
    * ``survey_2024.csv``: respondent_id, age, sex, committee_id, lon, lat (WGS84),
      sat_livable ... sat_smart (1-5), comment;
    * ``ortho_rgb.tif``: RGB uint8 orthophoto, 1 m pixels over 1 km², EPSG:4549, tiled,
      deflate-compressed, painted from the layers.

    Parameters
    ----------
    folder : path
        Output folder (created). Other files in it (``study.toml``, ledgers) are left alone.
    seed : int, optional
        Default ``settings.random_seed``.
    scale : float
        Area multiplier (see ``make_sample_district``).

    Returns
    -------
    dict
        File key (``gpkg``, ``amap``, ``complaints``, ``survey``, ``ortho``) → path.
    """
    import pyogrio

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    seed = settings.random_seed if seed is None else int(seed)
    layers = make_sample_district(seed=seed, scale=scale)
    out: dict[str, Path] = {}
    gpkg = folder / GPKG_NAME
    with fixed_gdal_date(_FIXED_DATE), atomic_path(gpkg) as tmp_gpkg:
        for name in GPKG_LAYERS:
            gdf = layers[name]
            if name == "facilities":
                gdf = gdf[gdf["source"] == "delivery"].drop(columns="source")
            if name == "compounds":
                gdf = gdf.drop(columns=["big", "cut_by_road"])
            if name == "committees":
                gdf = gdf.drop(columns=["population_class"])
            pyogrio.write_dataframe(gdf.to_crs(DELIVERY_CRS), tmp_gpkg, layer=name, driver="GPKG",
                                    append=tmp_gpkg.exists())
    out["gpkg"] = gpkg
    fac = layers["facilities"]
    amap = fac[fac["source"] == "amap"]
    lon, lat = _lonlat(amap)
    glon, glat = wgs84_to_gcj02(lon, lat)
    cap = amap["capacity"].round().astype("Int64")
    out["amap"] = _write_csv(pd.DataFrame({
        "facility_id": amap["facility_id"].to_numpy(), "name": amap["name"].to_numpy(),
        "type": amap["type"].to_numpy(), "lon": np.round(glon, 7), "lat": np.round(glat, 7),
        "capacity": cap.to_numpy()}), folder / "facilities_amap_gcj02.csv")
    cmp_ = layers["complaints"]
    lon, lat = _lonlat(cmp_)
    out["complaints"] = _write_csv(pd.DataFrame({
        "complaint_id": cmp_["complaint_id"].to_numpy(), "lon": np.round(lon, 7),
        "lat": np.round(lat, 7), "category": cmp_["category"].to_numpy(),
        "date": cmp_["date"].to_numpy(), "text": cmp_["text"].to_numpy()}),
        folder / "complaints_12345.csv")
    out["survey"] = _write_csv(layers["survey"], folder / "survey_2024.csv")
    out["ortho"] = _write_ortho(layers, folder / "ortho_rgb.tif", seed=seed)
    return out


def _ortho_centre(layers: dict[str, Any]) -> np.ndarray:
    """Centre of the orthophoto: the urban compound nearest to both a river and a park."""
    comp = layers["compounds"]
    urban = comp[(comp["kind"] != "村宅") & ~comp["big"]]
    if urban.empty:
        urban = comp
    rep = shapely.point_on_surface(urban.geometry.values)
    water = shapely.union_all(layers["water"].geometry.values)
    parks = shapely.union_all(layers["parks"].geometry.values)
    score = shapely.distance(rep, water) + 0.5 * shapely.distance(rep, parks)
    return shapely.get_coordinates(rep[int(np.argmin(score))])[0]


def _write_ortho(layers: dict[str, Any], path: Path, *, seed: int, size_m: float = 1000.0,
                 pixel_m: float = 1.0) -> Path:
    """Paint a small RGB orthophoto (EPSG:4549) from the layers and write it as GeoTIFF."""
    import rasterio
    from rasterio.features import rasterize
    from affine import Affine
    from scipy import ndimage

    rng = np.random.default_rng([seed, 4549])
    cx, cy = _ortho_centre(layers)
    to_o = Transformer.from_crs(layers["boundary"].crs, ORTHO_CRS, always_xy=True)
    ox, oy = to_o.transform(cx, cy)
    x0 = math.floor(ox - size_m / 2)
    y1 = math.ceil(oy + size_m / 2)
    n = int(round(size_m / pixel_m))
    transform = Affine(pixel_m, 0.0, x0, 0.0, -pixel_m, y1)
    window = shapely.box(x0 - 50, y1 - size_m - 50, x0 + size_m + 50, y1 + 50)

    def geoms(name: str, mask: Any = None) -> gpd.GeoDataFrame:
        g = layers[name] if mask is None else layers[name][mask]
        g = g.to_crs(ORTHO_CRS)
        return g[shapely.intersects(g.geometry.values, window)]

    cls = np.zeros((n, n), dtype=np.uint8)  # 0 farmland / bare

    def burn(shapes: Any, value: int) -> None:
        shapes = [(g, value) for g in shapes if g is not None and not g.is_empty]
        if shapes:
            rasterize(shapes, out=cls, transform=transform, all_touched=False)

    comp = geoms("compounds")
    burn(comp.geometry.values, 1)                                     # compound ground
    burn(geoms("parks").geometry.values, 2)                           # park lawns
    roads = geoms("roads")
    half = roads["highway"].map({"primary": 12, "secondary": 9, "tertiary": 7, "residential": 4,
                                 "unclassified": 3, "service": 2.5}).fillna(1.2).to_numpy()
    foot = roads["highway"].to_numpy() == "footway"
    burn(shapely.buffer(roads.geometry.values[foot], half[foot], cap_style="flat"), 3)
    burn(shapely.buffer(roads.geometry.values[~foot], half[~foot], cap_style="flat"), 4)
    burn(geoms("water").geometry.values, 5)
    b = geoms("buildings")
    h = b["height"].to_numpy()
    bg = b.geometry.values
    if len(bg):
        shift = np.repeat(np.column_stack([-0.2 * h, 0.7 * h]), shapely.get_num_coordinates(bg), axis=0)
        moved = shapely.transform(bg, lambda xy: xy + shift)
        shadow = shapely.convex_hull(shapely.union(bg, moved))
        burn(shadow, 6)
        roof = rng.choice([7, 7, 7, 8, 9, 10], len(bg))
        for v in (7, 8, 9, 10):
            burn(bg[roof == v], v)
    # trees: smooth random blobs on lawns, parks and farmland edges
    noise = ndimage.gaussian_filter(rng.normal(0, 1, (n, n)), 2.0)
    trees = (noise > 0.12) & np.isin(cls, [1, 2]) | (noise > 0.3) & (cls == 0)
    cls[trees] = 11
    palette = np.array([
        [150, 140, 95],   # 0 farmland / bare
        [118, 150, 90],   # 1 compound lawns
        [92, 150, 70],    # 2 park lawns
        [185, 180, 170],  # 3 paths
        [70, 72, 75],     # 4 roads
        [60, 95, 120],    # 5 water
        [40, 45, 45],     # 6 shadow
        [165, 165, 160],  # 7 grey roof
        [120, 120, 118],  # 8 dark roof
        [160, 85, 70],    # 9 red roof
        [90, 120, 160],   # 10 blue roof
        [45, 95, 45],     # 11 trees
    ], dtype=np.int16)
    img = palette[cls]
    fields = (ndimage.gaussian_filter(rng.normal(0, 1, (n // 40 + 1, n // 40 + 1)), 0.6) * 25)
    fields = np.kron(fields, np.ones((40, 40)))[:n, :n]
    img[cls == 0] += fields[cls == 0][:, None].astype(np.int16)
    img += rng.normal(0, 4, img.shape).round().astype(np.int16)
    img = np.clip(img, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    profile = dict(driver="GTiff", width=n, height=n, count=3, dtype="uint8", crs=ORTHO_CRS,
                   transform=transform, tiled=True, blockxsize=256, blockysize=256,
                   compress="deflate", predictor=2, photometric="RGB", interleave="pixel")
    with atomic_path(path) as tmp, rasterio.Env(GDAL_PAM_ENABLED="NO"):
        with rasterio.open(tmp, "w", **profile) as dst:
            dst.write(img)
    return path


def sample_path(name: str = GPKG_NAME) -> Path:
    """Path of a file of the bundled sample (``layers/sample/<name>``).

    The repository copy is used when present; otherwise (an installed package) the
    sample is generated once into ``$GEOTIJIAN_SAMPLE_DIR`` or ``~/.cache/geotijian/sample``.
    """
    repo = Path(__file__).resolve().parents[1] / "layers" / "sample"
    if (repo / name).exists():
        return repo / name
    if name not in SAMPLE_FILES:
        raise FileNotFoundError(f"{name!r} is not a file of the sample district "
                                f"(files: {', '.join(SAMPLE_FILES)}; looked in {repo})")
    cache = Path(os.environ.get("GEOTIJIAN_SAMPLE_DIR", Path.home() / ".cache" / "geotijian" / "sample"))
    if not (cache / name).exists():
        write_sample(cache)
    return cache / name


def main(argv: list[str] | None = None) -> int:
    """``python -m geotijian.sample [folder] [--seed N] [--scale S]``: write the sample."""
    ap = argparse.ArgumentParser(prog="python -m geotijian.sample",
                                 description="Write the deterministic sample district.")
    ap.add_argument("folder", nargs="?", default="layers/sample")
    ap.add_argument("--seed", type=int, default=None, help="default: settings.random_seed")
    ap.add_argument("--scale", type=float, default=1.0, help="area multiplier (1 → ~25 km²)")
    args = ap.parse_args(argv)
    paths = write_sample(args.folder, seed=args.seed, scale=args.scale)
    for key, p in paths.items():
        print(f"{key:11s} {p}  ({p.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
