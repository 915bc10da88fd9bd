"""Compounds (小区) of the sample: slots and hamlets with residents' buildings, and their names."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from .. import settings
from ._common import Build, largest_part
from .geography import Site
from .names import (BRANDS, DIR_PREFIX, HAMLET_SUFFIX, STEMS, SUFFIX_MID, SUFFIX_NEW,
                    SUFFIX_OLD, SURNAMES, ordinal_names)


def compounds(rng: np.random.Generator, site: Site, build: Build, S: dict[str, np.ndarray],
              sub: dict[str, np.ndarray], Hm: dict[str, np.ndarray], scale: float
              ) -> dict[str, Any]:
    """Compounds from the slots and hamlets that hold residential buildings.

    Some pairs of single compounds either side of a street are merged into one compound
    cut by that street (at least one across a ``tertiary`` street). Returns ``comp``
    (per compound: item, geom, cell, parcel, build_year, big, kind, cut, cap = residents
    the floor area holds, hamlet, era), the buildings table ``bld`` (built here from
    ``build.bld``), ``item_ok`` (candidates whose internal paths are kept) and
    ``item_row`` (the compound row of every candidate, -1 none).
    """
    grid, parcels = site.grid, site.parcels
    n_slot = len(S["cell"])
    B = build.bld.get()
    n_items = n_slot + len(Hm["cell"])
    floor = np.zeros(n_items)
    res = B["item"] >= 0
    np.add.at(floor, B["item"][res], shapely.area(B["geom"][res]) * B["levels"][res])
    nb = np.bincount(B["item"][res], minlength=n_items)
    is_res_slot = np.isin(S["kind"], [0, 1, 2, 5]) & S["ok"]
    ok = np.concatenate([is_res_slot & (nb[:n_slot] > 0), nb[n_slot:] > 0])
    # internal paths are kept for every slot with buildings (campuses too)
    item_ok = np.concatenate([S["ok"] & (nb[:n_slot] > 0), nb[n_slot:] > 0])
    # through-street compounds: merge two sub-blocks across a street
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
        n_merge = min(len(lower), max(3, int(round(3 * scale))))
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
        W, H = grid.cw[c], grid.ch[c]
        g = grid.quad(c, S["pu0"][lo_s] + S["piw"][lo_s] / W, S["pu1"][lo_s] - S["pie"][lo_s] / W,
                      S["pv0"][lo_s] + S["pis"][lo_s] / H, S["pv1"][up_s] - S["pin"][up_s] / H)
        par = S["parcel"][lo_s]
        aff = parcels.affected[par]
        g[aff] = largest_part(shapely.intersection(g[aff], parcels.clip[par[aff]]))
        S["poly"][lo_s] = g
        target_of[up_s] = lo_s
        cut[lo_s] = True
        floor_add = np.zeros(n_items)
        np.add.at(floor_add, lo_s, floor[up_s])
        floor += floor_add
        ok[up_s] = False
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
    comp = dict(item=items, geom=poly, cell=cell, parcel=parcel, build_year=year,
                big=big, kind=kind, cut=cut[items], cap=cap,
                hamlet=era == -1, era=era)
    item_row = np.full(n_items, -1)
    item_row[items] = np.arange(len(items))
    return dict(comp=comp, bld=B, item_ok=item_ok, item_row=item_row[target_of])


def compound_names(rng: np.random.Generator, C: dict[str, Any], K: dict[str, Any]) -> None:
    """``C["name"]``: compound names by era (新村, 花园, 名邸...), hamlets after their
    village (清河村东王家宅), the big compound 大型居住社区; repeats get 二期, 三期..."""
    n = len(C["item"])
    era = C["era"]
    stems = np.array(STEMS, dtype=object)
    brands = np.array(BRANDS, dtype=object)
    s1 = stems[rng.integers(0, len(stems), n)]
    b1 = np.where(rng.random(n) < 0.45, brands[rng.integers(0, len(brands), n)], s1)
    old = s1 + np.array(SUFFIX_OLD, dtype=object)[rng.integers(0, len(SUFFIX_OLD), n)]
    old = np.where(rng.random(n) < 0.3, s1 + "路小区", old)
    mid = b1 + np.array(SUFFIX_MID, dtype=object)[rng.integers(0, len(SUFFIX_MID), n)]
    new = b1 + np.array(SUFFIX_NEW, dtype=object)[rng.integers(0, len(SUFFIX_NEW), n)]
    village = K["stem"][C["committee"]] + "村"
    ham = (np.array(DIR_PREFIX, dtype=object)[rng.integers(0, len(DIR_PREFIX), n)]
           + np.array(SURNAMES, dtype=object)[rng.integers(0, len(SURNAMES), n)]
           + np.array(HAMLET_SUFFIX, dtype=object)[rng.integers(0, len(HAMLET_SUFFIX), n)])
    name = np.select([C["big"], C["hamlet"], era == 0, era == 1],
                     [s1 + "大型居住社区", village + ham, old, mid], new).astype(object)
    C["name"] = ordinal_names(name)
