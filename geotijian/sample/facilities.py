"""Facilities of the sample: planned per life circle, sited beside the compounds they serve.

Counts and siting follow :data:`FACILITY_PLAN`: per area, rounds of a greedy maximal
covering (vectorised over the areas; one round per facility of the best provided area)
pick, among the street-front sites beside the pool's compounds (:func:`_sites`), the one
whose siting distance reaches the most residents not yet reached, measured to the
compounds' gates (:func:`_gates`, where the network coverage reaches them) in the grid
(L1) metric × :data:`SITE_REACH`. The deliberate gaps are planned in (:func:`_gap_plan`):
no site within the gap distance (+ 25 m) of the gap committees is eligible, and a final
filter enforces the exact distance. Bus stops follow the arterials, metro stations one or
two lines through the most urban residents (:func:`_transit`). Own random streams (one per
type), so the other layers and the other types do not move when one type's rule changes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import shapely

from ._common import Table, ragged
from .committees import Towns
from .geography import Grid, Site
from .names import STEMS, STORE_BRANDS, numbered_names


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
FACILITY_PLAN: list[tuple[str, int, str, str, int, str, tuple[str, ...],
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
SITE_REACH = 0.8


@dataclass
class _Siting:
    """What every facility type is sited from: the compounds and the candidate sites.

    Compounds: ``pop`` (persons), representative point ``rep_xy`` and gate ``gate_xy``
    (m), ``urban`` (not a hamlet, inhabited), ``comm`` / ``town`` (their committee and
    town), ``comm_stem`` (the committee's name stem). Sites: ``cand_xy``, the compound
    beside it (``cand_comp``), the street direction (``cand_dir``), points and tree;
    ``reach`` caches the (site, compound) pairs within reach per (distance, pool).
    """

    pop: np.ndarray
    rep_xy: np.ndarray
    gate_xy: np.ndarray
    urban: np.ndarray
    comm: np.ndarray
    town: np.ndarray
    comm_stem: np.ndarray
    committee_name: np.ndarray
    town_name: np.ndarray
    exclude: dict[str, tuple[Any, float]]
    cand_xy: np.ndarray
    cand_comp: np.ndarray
    cand_dir: np.ndarray
    cand_pts: np.ndarray
    cand_tree: Any
    reach: dict[tuple[float, str], tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)


def _choose_sites(s: _Siting, row: tuple, trng: np.random.Generator) -> np.ndarray | None:
    """Sites of one facility type (indexes into the candidates, sorted), or None."""
    code, per, pool_kind, level, radius, _prefix, _endings, _cap = row
    pop, cand_xy, cand_comp, exclude = s.pop, s.cand_xy, s.cand_comp, s.exclude
    pool = s.urban if pool_kind == "urban" else pop > 0
    key = (s.comm if level == "committee" else s.town).astype(np.int64)
    n_key = int(key.max()) + 1
    # the district's residents / per facilities, shared among the areas by the
    # residents of the pool (villagers use the urban facilities of their district);
    # the residents left in a gap (no site can reach them) have none built for them
    target = pool.copy()
    if code in exclude:
        gap_geom, gap_d = exclude[code]
        unreachable = gap_d + 25.0 - SITE_REACH * radius
        if unreachable > 0:
            target &= ~shapely.dwithin(shapely.points(s.gate_xy), gap_geom, unreachable)
    Pp = np.bincount(key, weights=pop * target, minlength=n_key)
    P = Pp * pop.sum() / max(float((pop * pool).sum()), 1.0)
    n_fac = np.where(P >= 0.4 * per, np.maximum(1, np.round(P / per)), 0).astype(np.int64)
    cxy = np.column_stack([np.bincount(key, weights=pop * target * s.rep_xy[:, i], minlength=n_key)
                           for i in (0, 1)]) / np.maximum(Pp, 1.0)[:, None]
    # candidate sites: beside a compound of the pool in an area due facilities,
    # outside the type's gap
    area = key[cand_comp]
    valid = pool[cand_comp] & (n_fac[area] > 0)
    if code in exclude:
        valid[s.cand_tree.query(gap_geom, predicate="dwithin", distance=gap_d + 25.0)] = False
    # pairs (site, compound of the pool) with the compound's gate within reach of
    # the site: grid (L1) distance ≤ SITE_REACH × the walking distance
    if (radius, pool_kind) not in s.reach:
        pm = np.flatnonzero(pool)
        qb, qa = s.cand_tree.query(shapely.points(s.gate_xy[pm]), predicate="dwithin", distance=radius)
        qb = pm[qb]
        close = pool[cand_comp[qa]] & \
            (np.abs(cand_xy[qa] - s.gate_xy[qb]).sum(axis=1) <= SITE_REACH * radius)
        s.reach[(radius, pool_kind)] = (qa[close], qb[close])
    pa, pb = s.reach[(radius, pool_kind)]
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
        return None
    return np.sort(np.concatenate(picks))


def _describe(s: _Siting, i_type: int, row: tuple, trng: np.random.Generator,
              site: np.ndarray) -> dict[str, np.ndarray]:
    """Position, name and capacity of the facilities of one type at their sites."""
    code, _per, _pool, _level, _radius, prefix, endings, cap = row
    pop = s.pop
    n = len(site)
    anchor = s.cand_comp[site]
    # residents served: every compound, by its nearest facility of the type
    pm = np.flatnonzero(pop > 0)
    nf = shapely.STRtree(s.cand_pts[site]).query_nearest(shapely.points(s.rep_xy[pm]),
                                                         all_matches=False)[1]
    served = np.bincount(nf, weights=pop[pm], minlength=n)
    # facilities of different types on the same site: side by side along the
    # street (a slot per type, 2.5 m apart, within ±20 m)
    slot = ((i_type * 7) % 17 - 8) * 2.5 + trng.uniform(-1.0, 1.0, n)
    xy = s.cand_xy[site] + s.cand_dir[site] * slot[:, None]
    end = np.array(endings, dtype=object)[trng.integers(0, len(endings), n)]
    if prefix == "@brand":
        brands = np.array(STORE_BRANDS, dtype=object)
        names = numbered_names(brands[trng.integers(0, len(brands), n)] + "(" + s.comm_stem[anchor],
                               end, numerals="")
    elif prefix == "@committee":
        names = numbered_names(s.committee_name[s.comm[anchor]], end)
    elif prefix == "@town":
        names = numbered_names(s.town_name[s.town[anchor]], end)
    else:
        names = numbered_names(prefix + s.comm_stem[anchor], end)
    if cap is None:
        capacity = np.full(n, np.nan)
    else:
        rate, unit, lo, hi = cap
        capacity = np.clip(np.round(served * rate * trng.uniform(0.85, 1.15, n) / unit),
                           lo, hi) * unit
    return dict(x=xy[:, 0], y=xy[:, 1], type=np.full(n, code, dtype=object),
                name=names.astype(object), capacity=capacity.astype(float), anchor=anchor)


def _transit(rng: np.random.Generator, grid: Grid, R: dict[str, Any], s: _Siting,
             scale: float) -> dict[str, np.ndarray]:
    """Bus stops along arterials (about one per 550 m) and metro stations along one line
    per ~4 scale units; columns as :func:`_describe`."""
    pop, urban, gate_xy = s.pop, s.urban, s.gate_xy
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
        np.array(STEMS, dtype=object)[rng.integers(0, len(STEMS), nbus)] + "路站"
    # metro: one line per ~4 scale units, each along the arterial row (at least 3 rows
    # from another line, not the boundary) and with the alternation of stations (every
    # other crossing, 20 m north of it) that reach most urban residents (gates within
    # 800 m, grid metric as above)
    n_lines = max(1, int(round(math.sqrt(scale) / 2)))
    upop = np.where(urban, pop, 0.0)
    ui = np.flatnonzero(urban)
    urban_gates = shapely.STRtree(shapely.points(gate_xy[ui]))
    jitter = rng.uniform(-25, 25, (grid.nx + 1, grid.ny + 1, 2)) + [0.0, 20.0]
    options = []
    for j in range(1, grid.ny):
        for start in (0, 1):
            ii = np.arange(start, grid.nx + 1, 2)
            pts = grid.P[ii, j] + jitter[ii, j]
            a, b = urban_gates.query(shapely.points(pts), predicate="dwithin", distance=800.0)
            b = ui[b]
            ok = np.abs(pts[a] - gate_xy[b]).sum(axis=1) <= SITE_REACH * 800.0
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
            mn.append(np.array(STEMS, dtype=object)[rng.integers(0, len(STEMS), len(pts))] + "路站")
    n_metro = sum(len(m) for m in mx)
    return {"x": np.concatenate([bxy[:, 0]] + mx), "y": np.concatenate([bxy[:, 1]] + my),
            "type": np.array(["bus_stop"] * nbus + ["metro_station"] * n_metro, dtype=object),
            "name": np.concatenate([bnames.astype(object)] + [m.astype(object) for m in mn]),
            "capacity": np.full(nbus + n_metro, np.nan),
            "anchor": np.full(nbus + n_metro, -1)}


def _gap_plan(K: dict[str, Any], n_towns: int) -> tuple[dict[str, list[str]],
                                                        dict[str, tuple[Any, float]]]:
    """The deliberate gaps: committee IDs per gap and, per facility type, the area
    (committee union) and distance (m) within which no facility of the type is sited."""
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
    last = n_towns - 1
    tm = np.flatnonzero(K["town"] == last)
    ty = np.average(krep[tm, 1], weights=np.maximum(cpop[tm], 1))
    south = tm[(krep[tm, 1] < ty) & (cpop[tm] > 0)]
    if len(south):
        exclude["elderly_day_care"] = (shapely.union_all(K["geom"][south]), 300.0)
        gaps["elderly_day_care_300m"] = sorted(str(x) for x in K["id"][south])
    return gaps, exclude

def _sites(geom: np.ndarray, hamlet: np.ndarray, R: dict[str, Any], water_geoms: np.ndarray,
           inner: Any, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Street-front candidate sites around every compound.

    Points every ~50 m (~100 m around hamlets) along each compound's outline (2-32 per
    compound) are moved onto the nearest street (no bridge or level crossing; one
    within 6-60 m of the outline, else no site), then back towards the compound by
    35-80 % of the street-to-fence distance (5-30 m off the street): between the
    street and the compound's fence, as street-front facilities are. Never in water,
    always inside the district. Returns the site (x, y) in metres, its compound and
    the unit direction of its street.
    """
    street = (np.isin(R["highway"], ["primary", "secondary", "tertiary", "residential", "unclassified"])
              & pd.isna(R["structure"]) & (shapely.length(R["geom"]) > 1.0))
    sidx = np.flatnonzero(street)
    ring = shapely.get_exterior_ring(geom)
    k = np.clip(np.round(shapely.length(ring) / np.where(hamlet, 100.0, 50.0)),
                2, 32).astype(np.int64)
    owner, rank = ragged(k)
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
    wet = shapely.STRtree(pts).query(np.asarray(water_geoms), predicate="intersects")[1]
    ok[wet] = False
    return xy[ok], owner[ok], d[ok]

def _gates(geom: np.ndarray, R: dict[str, Any]) -> np.ndarray:
    """Where each compound meets the road network (x, y): the outline point nearest to
    the nearest road feature (its driveway where one crosses the fence), as
    :func:`geotijian.network.snap_points` reaches a polygon home."""
    outline = shapely.boundary(geom)
    # ties (several roads crossing the fence): the lowest road number, as the network does
    i, e = shapely.STRtree(R["geom"]).query_nearest(outline, all_matches=True)
    o = np.lexsort((e, i))
    e = e[o][np.r_[True, i[o][1:] != i[o][:-1]]]
    return shapely.get_coordinates(shapely.get_point(shapely.shortest_line(outline, R["geom"][e]), 0))


def plan_facilities(seed: int, site: Site, C: dict[str, Any], K: dict[str, Any], towns: Towns,
                    R: dict[str, Any], scale: float
                    ) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Facilities of every type of :data:`FACILITY_PLAN`, bus stops and metro stations.

    Returns the facilities (x, y in metres, type, name, capacity, anchor compound or -1,
    facility_id ``F00001``... by type then west → east, source ``amap`` for the
    commercial POIs else ``delivery``) and the deliberate gaps (gap → committee IDs).
    """
    rng = np.random.default_rng([seed, 20240604, 1551])   # own stream
    pop = C["population"].astype(float)
    geom = C["geom"]
    rep_xy = shapely.get_coordinates(shapely.point_on_surface(geom))
    comm = C["committee"]
    inner = shapely.buffer(site.grid.boundary, -5.0)
    gaps, exclude = _gap_plan(K, len(towns.boxes))
    cand_xy, cand_comp, cand_dir = _sites(geom, C["hamlet"], R, site.barriers.water_geoms, inner, rng)
    cand_pts = shapely.points(cand_xy)
    s = _Siting(pop=pop, rep_xy=rep_xy, gate_xy=_gates(geom, R), urban=~C["hamlet"] & (pop > 0),
                comm=comm, town=K["town"][comm], comm_stem=K["stem"][comm],
                committee_name=K["name"], town_name=towns.name, exclude=exclude,
                cand_xy=cand_xy, cand_comp=cand_comp, cand_dir=cand_dir, cand_pts=cand_pts,
                cand_tree=shapely.STRtree(cand_pts))
    T = Table()
    for i_type, row in enumerate(FACILITY_PLAN):
        trng = np.random.default_rng([seed, 20240604, 1551, i_type])  # one stream per type
        chosen = _choose_sites(s, row, trng)
        if chosen is not None:
            T.add(**_describe(s, i_type, row, trng, chosen))
    F = T.get()
    extra = _transit(rng, site.grid, R, s, scale)
    F = {key: np.concatenate([F[key], extra[key]])
         for key in ("x", "y", "type", "name", "capacity", "anchor")}
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
    return F, gaps
