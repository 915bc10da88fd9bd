"""Display names of the check-up's areas: units named after their residents' committees.

A unit ID (``310114101-U08``) means nothing to a report reader; a town is read by its name
(菊园新区) and a unit by the committees it is built on (兴贤、恒荣村). Tables, maps and
figures show these names, with the ID beside them where an ID is needed.

* :func:`unit_names`: one name per unit from its committees' names (``居委会`` /
  ``村委会`` suffixes dropped); a committee split into several units gets ``(1)``, ``(2)``
  … in unit-ID order; a unit without committees is ``<town name><n>号单元``.
* :func:`with_unit_names`: the units with a ``name`` column.
"""

from __future__ import annotations

import re

import geopandas as gpd
import numpy as np
import pandas as pd

__all__ = ["unit_names", "with_unit_names", "short_committee_name"]

_SUFFIX = re.compile(r"(社区居民委员会|居民委员会|村民委员会|社区居委会|居委会|村委会|居委)$")
#: Committees named in a unit's name before it says 等N个.
MAX_NAMED = 3


def short_committee_name(name: str) -> str:
    """``育绿居委会`` → ``育绿``, ``戬浜村村委会`` → ``戬浜村`` (the name without its
    committee suffix; unchanged when nothing is left)."""
    s = str(name).strip()
    short = _SUFFIX.sub("", s)
    return short or s


def unit_names(units: pd.DataFrame, committees: pd.DataFrame | None = None) -> pd.Series:
    """Display name of each unit, aligned to ``units``.

    Parameters
    ----------
    units : DataFrame
        ``unit_id``, ``town_code``, ``town_name``, ``committees`` (``,``-separated committee
        IDs, :func:`geotijian.units.delineate_units` output).
    committees : DataFrame, optional
        ``committee_id``, ``name``. Without it (or for a committee without a name) the
        committee ID stands in.

    Returns
    -------
    Series
        ``育绿`` (one committee), ``兴贤、恒荣村`` (two or three), ``兴贤、恒荣村、梅园等4个居委``
        (more); ``梅园(1)``, ``梅园(2)`` for a committee split over units; ``菊园新区3号单元``
        for a unit without committees. Unique within the study.
    """
    ids = units["unit_id"].astype(str).to_numpy()
    lookup: dict[str, str] = {}
    if committees is not None and "committee_id" in committees.columns and "name" in committees.columns:
        nm = committees["name"]
        ok = nm.notna() & (nm.astype(str).str.strip() != "")
        lookup = dict(zip(committees.loc[ok, "committee_id"].astype(str),
                          nm[ok].astype(str).map(short_committee_name), strict=True))
    comms = units["committees"] if "committees" in units.columns else pd.Series("", index=units.index)
    lists = [[c.strip() for c in str(x).split(",") if c.strip()] if isinstance(x, str) and x else []
             for x in comms.to_numpy()]
    towns = units["town_name"].astype(str).to_numpy() if "town_name" in units.columns else \
        np.full(len(units), "")
    order = np.argsort(ids, kind="stable")
    base = np.empty(len(units), dtype=object)
    counter: dict[str, int] = {}
    for i in order:   # units without committees: numbered per town in ID order
        cl = lists[i]
        if not cl:
            counter[towns[i]] = counter.get(towns[i], 0) + 1
            base[i] = f"{towns[i]}{counter[towns[i]]}号单元"
            continue
        names = [lookup.get(c, c) for c in cl]
        base[i] = "、".join(names) if len(names) <= MAX_NAMED else \
            f"{'、'.join(names[:MAX_NAMED])}等{len(names)}个居委"
    # the same name on several units (a committee split): (1), (2) … in unit-ID order
    s = pd.Series(base, index=units.index, dtype=object)
    dup = s.duplicated(keep=False).to_numpy()
    if dup.any():
        seen: dict[str, int] = {}
        for i in order:
            if dup[i]:
                seen[base[i]] = seen.get(base[i], 0) + 1
                s.iat[i] = f"{base[i]}({seen[base[i]]})"
    return s


def with_unit_names(units: gpd.GeoDataFrame, committees: pd.DataFrame | None = None) -> gpd.GeoDataFrame:
    """``units`` with a ``name`` column (:func:`unit_names`) before its geometry."""
    out = units.copy()
    out["name"] = unit_names(units, committees).to_numpy()
    cols = [c for c in out.columns if c not in ("name", out.geometry.name)] + ["name", out.geometry.name]
    return out[cols]
