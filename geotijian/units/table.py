"""The units table and its companions: unit IDs (north to south, then west to east, per
town), counts, flags with the reason in domain terms (:func:`_unit_table`); the read-only
compound → unit and block → unit mappings (:class:`IdMap`); range compliance per town
(:func:`range_compliance`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .. import settings
from ..model import UNIT_COLUMNS
from .geometry import _union_groups, polsby_popper
from .graph import _part_matrix


class IdMap(Mapping):
    """A read-only id → id mapping kept in ``attrs`` (compound → unit, block → unit).

    pandas deep-copies ``attrs`` on every operation; this holder is immutable and returns
    itself from ``copy.deepcopy``, so a 20,000-entry mapping costs nothing per operation.
    """

    def __init__(self, keys: Iterable[Any], values: Iterable[Any]):
        self._s = pd.Series(list(values), index=pd.Index(list(keys), dtype=object), dtype=object)

    def __getitem__(self, key: Any) -> Any:
        return self._s[key]

    def __iter__(self):
        return iter(self._s.index)

    def __len__(self) -> int:
        return len(self._s)

    def __deepcopy__(self, memo: dict) -> IdMap:
        return self

    def __copy__(self) -> IdMap:
        return self

    def __repr__(self) -> str:
        return f"IdMap({len(self)} entries)"

    def to_series(self) -> pd.Series:
        """The mapping as a pandas Series (a copy)."""
        return self._s.copy()


def _unit_table(labels, unit_town, ageoms, w, hh, cp_atom, atom_comm, cp, adj, lo, hi,
                town_names, comm_names, crs, ncomp) -> gpd.GeoDataFrame:
    nu = int(labels.max()) + 1
    _, ugeoms = _union_groups(ageoms, labels)
    pop = np.bincount(labels, weights=w, minlength=nu)
    comp_unit = labels[cp_atom]
    real = (cp["home_kind"] != "building").to_numpy(float) if "home_kind" in cp.columns else None
    ccount = np.bincount(comp_unit, weights=real, minlength=nu).astype(int)
    if hh is not None:
        known = np.bincount(comp_unit, weights=np.isnan(hh).astype(float), minlength=nu) == 0
        households = np.where(known, np.bincount(comp_unit, weights=np.nan_to_num(hh), minlength=nu), np.nan)
    else:
        households = np.full(nu, np.nan)
    if (atom_comm != "").any():
        comms = pd.Series(atom_comm).groupby(labels).agg(lambda s: ",".join(sorted(set(s) - {""})))
    elif "committee_id" in cp.columns:
        comms = (pd.Series(cp["committee_id"].fillna("").astype(str).to_numpy()).groupby(comp_unit)
                 .agg(lambda s: ",".join(sorted(set(s) - {"", "nan", "None"}))))
    else:
        comms = pd.Series(dtype=object)
    comms = comms.reindex(range(nu), fill_value="").to_numpy()
    # neighbours between units (for reasons)
    M = _part_matrix(labels, nu)
    UB = (M.T @ adj @ M).tocsr()
    UB.setdiag(0)
    UB.eliminate_zeros()
    flags = np.zeros(nu, dtype=bool)
    reasons = np.full(nu, "", dtype=object)
    nparts = shapely.get_num_geometries(ugeoms)
    town_pop = pd.Series(pop).groupby(unit_town).transform("sum").to_numpy()
    cname = cp["name"].astype(str).to_numpy() if "name" in cp.columns else cp["compound_id"].astype(str).to_numpy()
    for u in range(nu):
        r = []
        if pop[u] > hi:
            flags[u] = True
            atoms = np.flatnonzero(labels == u)
            ks = np.flatnonzero(comp_unit == u)
            big = ks[np.argmax(np.nan_to_num(pd.to_numeric(cp["population"].iloc[ks]).to_numpy()))] if len(ks) else None
            bigpop = float(pd.to_numeric(cp["population"]).iloc[big]) if big is not None else 0.0
            if big is not None and bigpop > hi:
                r.append(f"single compound of {bigpop:,.0f} residents ({cname[big]})")
            elif len(atoms) == 1:
                r.append(f"one block of {pop[u]:,.0f} residents in {ncomp[atoms[0]]} compounds, not divided "
                         "by roads of the chosen classes")
            else:
                r.append(f"{pop[u]:,.0f} residents: the blocks cannot be grouped under {hi:,.0f}")
        elif pop[u] < lo:
            flags[u] = True
            nb = UB.indices[UB.indptr[u]:UB.indptr[u + 1]]
            if town_pop[u] < lo:
                t = unit_town[u]
                r.append(f"town {town_names.get(t, t)} has only {town_pop[u]:,.0f} residents")
            elif len(nb) == 0:
                c = comms[u].split(",")[0] if comms[u] else ""
                who = (f"committee {c} {comm_names.get(c, '')}".strip() + " has" if c
                       else "the blocks have")
                r.append(f"{who} {pop[u]:,.0f} residents and no neighbour in its town (cut off by water, "
                         "rail or the boundary)")
            elif (pop[nb] + pop[u] > hi).all():
                r.append(f"{pop[u]:,.0f} residents: merging with any neighbour would exceed {hi:,.0f}")
            else:
                r.append(f"{pop[u]:,.0f} residents: the blocks around cannot be regrouped in range")
        if nparts[u] > 1:
            r.append(f"in {nparts[u]} parts separated by water, rail or other units")
        reasons[u] = "; ".join(r)
    # ids: per town, north to south then west to east
    pts = shapely.point_on_surface(ugeoms)
    order = np.lexsort((np.round(shapely.get_x(pts), 1), -np.round(shapely.get_y(pts), 1), unit_town))
    uid = np.empty(nu, dtype=object)
    counter: dict[str, int] = {}
    width = {t: max(2, len(str(int((unit_town == t).sum())))) for t in set(unit_town.tolist())}
    for u in order:
        t = unit_town[u]
        counter[t] = counter.get(t, 0) + 1
        uid[u] = f"{t}-U{counter[t]:0{width[t]}d}"
    df = gpd.GeoDataFrame(
        {
            "unit_id": uid,
            "town_code": unit_town,
            "town_name": [town_names.get(t, t) for t in unit_town],
            "committees": comms,
            "population": pop,
            "households": households,
            "area_ha": shapely.area(ugeoms) / 1e4,
            "compound_count": ccount,
            "compactness": polsby_popper(ugeoms),
            "flag": flags,
            "flag_reason": reasons,
        },
        geometry=ugeoms, crs=crs,
    )
    df = df[UNIT_COLUMNS + ["geometry"]]
    df.attrs["_atom_uid"] = uid
    return df.sort_values("unit_id").reset_index(drop=True)


def range_compliance(units: pd.DataFrame, *, min_pop: float | None = None,
                     max_pop: float | None = None) -> pd.DataFrame:
    """Short table of range compliance, per town and in all.

    Parameters
    ----------
    units : DataFrame
        Output of :func:`delineate_units`.
    min_pop, max_pop : float, optional
        Range, persons; default the one the units were made with, else the settings.

    Returns
    -------
    pandas.DataFrame
        ``town_code``, ``town_name``, ``units``, ``in_range``, ``below``, ``above``,
        ``share_in_range``, ``population``, ``median_population``, ``flagged``; one row per
        town (sorted by code) and a last row ``ALL``.
    """
    rng = units.attrs.get("geotijian", {}).get("range")
    lo = float(min_pop if min_pop is not None else (rng[0] if rng else settings.unit_min_pop))
    hi = float(max_pop if max_pop is not None else (rng[1] if rng else settings.unit_max_pop))
    p = units["population"].astype(float)
    d = pd.DataFrame({
        "town_code": units["town_code"].astype(str),
        "town_name": units["town_name"].astype(str) if "town_name" in units.columns else units["town_code"],
        "in_range": (p >= lo) & (p <= hi), "below": p < lo, "above": p > hi,
        "population": p, "flagged": units["flag"].astype(bool) if "flag" in units.columns else False,
    })
    agg = {"town_name": "first", "in_range": "sum", "below": "sum", "above": "sum",
           "population": ["sum", "median", "size"], "flagged": "sum"}
    g = d.groupby("town_code", sort=True).agg(agg)
    g.columns = ["town_name", "in_range", "below", "above", "population", "median_population",
                 "units", "flagged"]
    total = pd.DataFrame([{
        "town_name": "全区 all", "in_range": d["in_range"].sum(), "below": d["below"].sum(),
        "above": d["above"].sum(), "population": p.sum(), "median_population": p.median(),
        "units": len(d), "flagged": d["flagged"].sum()}], index=pd.Index(["ALL"], name="town_code"))
    out = pd.concat([g, total]).reset_index()
    out["share_in_range"] = out["in_range"] / out["units"].where(out["units"] > 0)
    cols = ["town_code", "town_name", "units", "in_range", "below", "above", "share_in_range",
            "population", "median_population", "flagged"]
    out = out[cols]
    for c in ("units", "in_range", "below", "above", "flagged"):
        out[c] = out[c].astype(int)
    return out
