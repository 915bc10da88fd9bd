"""问题台账: the problem ledger, one row per problem point, tracked year to year.

* :func:`update_ledger`: last year's ledger + this year's problem points → this year's
  ledger (new / persisting / resolved, first seen, history), matching points by indicator
  and area, or by unit overlap when units were redrawn.
* :func:`read_ledger`, :func:`write_ledger`: CSV (UTF-8 with BOM) or GeoPackage, atomically.
* :func:`upgrade_ledger`: a ledger of an older geotijian in today's layout.

One row per problem point (``model.LEDGER_COLUMNS``: point_id, problem_id,
indicator_code, level, area_id, area_name, status, first_seen, last_seen, history). A
ledger written before the grouping (``model.LEDGER_COLUMNS_V1``: one row per
``<code>@<area_id>`` under ``problem_id``, e.g. ``layers/sample/ledger_2023.csv``) is read
as it is: its ``problem_id`` becomes the ``point_id`` (the same IDs), its level is taken
from this year's areas where the area still exists (unit IDs, town codes, the district ID)
and otherwise from the ID (``<town>-U<nn>`` → unit, the district ID → district, else
town), and its ``problem_id`` becomes ``<code>@<level>``. Points then match by indicator
and area ID, or by unit overlap (≥ 50 %) when last year's units are given.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .errors import LayerError
from .io.atomic import atomic_path
from .io.tables import undo_csv_prefix, write_csv
from .io.text import read_text_table
from .model import LEDGER_COLUMNS, LEDGER_COLUMNS_V1

__all__ = ["STATUSES", "update_ledger", "upgrade_ledger", "read_ledger", "write_ledger"]

#: Ledger statuses (新增 / 持续 / 已解决 / 口径变更或无数据, 未比较).
STATUSES = ("new", "persisting", "resolved", "not_compared")

def _history_add(history: str, year: int, status: str) -> str:
    h = str(history) if history is not None and str(history) not in ("", "nan", "None") else ""
    entry = f"{year}:{status}"
    return entry if not h else f"{h}; {entry}"


_UNIT_ID = re.compile(r"-U\d+$")


def _levels_of(area_ids: pd.Series, known: Mapping[str, str], district_id: str) -> np.ndarray:
    """Level of each area ID: from ``known`` (this year's areas), else from the ID itself
    (``<town>-U<nn>`` → unit, the district ID → district, anything else → town)."""
    a = area_ids.astype(str)
    guess = np.where(a.str.contains(_UNIT_ID).to_numpy(), "unit",
                     np.where((a == district_id).to_numpy(), "district", "town"))
    return np.array([known.get(x, g) for x, g in zip(a, guess, strict=True)], dtype=object)


def upgrade_ledger(ledger: pd.DataFrame, *, levels: Mapping[str, str] | None = None,
                   names: Mapping[str, str] | None = None, district_id: str = "district") -> pd.DataFrame:
    """A ledger in today's layout (``model.LEDGER_COLUMNS``), whatever geotijian wrote it.

    A ledger written before problems were grouped (``model.LEDGER_COLUMNS_V1``: one row
    per ``<code>@<area_id>`` under ``problem_id``) keeps its rows and IDs: ``point_id`` =
    its ``problem_id``; ``level`` from ``levels`` (area ID → level, this year's areas) or
    from the ID (:func:`_levels_of`); ``problem_id`` = ``<code>@<level>``; ``area_name``
    from ``names`` (area ID → name) or empty. A ledger already in today's layout is
    returned with its columns in order. Other columns (e.g. ``definition``) are kept.
    """
    led = pd.DataFrame(ledger).copy()
    if "point_id" not in led.columns:
        missing = [c for c in LEDGER_COLUMNS_V1 if c not in led.columns]
        if missing:
            raise LayerError("last year's ledger", f"missing column(s) {', '.join(missing)}",
                             fix="read it with read_ledger()")
        led["point_id"] = led["problem_id"].astype(str)
        led["level"] = _levels_of(led["area_id"], levels or {}, district_id)
        led["problem_id"] = led["indicator_code"].astype(str) + "@" + led["level"].astype(str)
    if "area_name" not in led.columns:
        led["area_name"] = ""
    names = names or {}
    blank = led["area_name"].isna() | (led["area_name"].astype(str).isin(["", "nan", "None"]))
    led["area_name"] = np.where(blank, led["area_id"].astype(str).map(lambda a: names.get(a, "")),
                                led["area_name"].astype(object))
    for col in LEDGER_COLUMNS:
        if col not in led.columns:
            raise LayerError("last year's ledger", f"missing column {col!r}", fix="read it with read_ledger()")
    extra = [c for c in led.columns if c not in LEDGER_COLUMNS]
    return led[list(LEDGER_COLUMNS) + extra]


def _as_points(this_year: pd.DataFrame) -> pd.DataFrame:
    """This year's problem points; a table of per-area problems (before issue 20, ``problem_id``
    = ``<code>@<area_id>``, no ``point_id``) is taken as points."""
    cur = pd.DataFrame(this_year.drop(columns="geometry", errors="ignore")).copy()
    if "point_id" not in cur.columns:
        for col in ("problem_id", "indicator_code", "area_id"):
            if col not in cur.columns:
                raise LayerError("this year's problems", f"missing column {col!r}",
                                 fix="pass the problem points (build_tables()['problem_points'])")
        cur["point_id"] = cur["problem_id"].astype(str)
        if "level" not in cur.columns:
            cur["level"] = _levels_of(cur["area_id"], {}, "district")
        cur["problem_id"] = cur["indicator_code"].astype(str) + "@" + cur["level"].astype(str)
    for col in ("point_id", "problem_id", "indicator_code", "area_id", "level"):
        if col not in cur.columns:
            raise LayerError("this year's problems", f"missing column {col!r}",
                             fix="pass the problem points (build_tables()['problem_points'])")
    if "area_name" not in cur.columns:
        cur["area_name"] = cur["area_id"].astype(str)
    return cur


def update_ledger(last_year: pd.DataFrame | None, this_year: pd.DataFrame, *,
                  units_last: gpd.GeoDataFrame | None = None, units_this: gpd.GeoDataFrame | None = None,
                  year: int, min_overlap: float = 0.5, district_id: str = "district",
                  catalogue: pd.DataFrame | None = None, values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Update the problem ledger (问题台账) with this year's problem points.

    Parameters
    ----------
    last_year : DataFrame or None
        Last year's ledger (``model.LEDGER_COLUMNS``, or a ledger written before problems
        were grouped, ``model.LEDGER_COLUMNS_V1``: :func:`upgrade_ledger`); ``None`` for
        the first year.
    this_year : DataFrame
        This year's problem points (``build_tables()["problem_points"]``: ``point_id,
        problem_id, indicator_code, level, area_id, area_name`` ...); a per-area problems
        table of before the grouping (``problem_id`` = ``<code>@<area_id>``) is accepted.
    units_last, units_this : GeoDataFrame, optional
        Last and this year's units (``unit_id``, geometry). When given, a point of last
        year matches a point of this year with the same indicator whose unit covers at
        least ``min_overlap`` (50 %) of the old unit's area (units redrawn, split or
        merged); otherwise, and for town/district points, by identical area ID.
    year : int
        This year.
    district_id : str
        The district's area ID (the level of an old ledger's rows, :func:`upgrade_ledger`).
    catalogue : DataFrame, optional
        This year's catalogue (``code, definition``). With it the ledger gets a
        ``definition`` column, a code whose definition differs from last year's ledger is
        refused (``LayerError``: a changed definition needs a new code), and last year's
        open points whose indicator is not in the catalogue become ``not_compared``.
    values : DataFrame, optional
        This year's indicator values (``level, area_id, code, value``): an open point of
        last year whose indicator has no value this year in its area (or the areas that
        replaced it) becomes ``not_compared``, not ``resolved`` (e.g. a fill-in workbook
        not returned yet).

    Returns
    -------
    DataFrame
        ``LEDGER_COLUMNS`` (+ ``geometry`` when this year's points carry one), one row per
        point: each of this year's points ``persisting`` (matched; keeps ``first_seen``,
        history gets ``<year>:persisting``, and ``formerly <old ids>`` when its ID changed;
        merged units keep the earliest first_seen) or ``new``; each open point of last year
        without a match ``resolved`` (``last_seen`` stays the last year it was seen) or
        ``not_compared`` (see ``catalogue`` and ``values``); points resolved or not
        compared in earlier years are carried over unchanged. A point that comes
        back after being resolved is ``new`` again, with its first_seen and history kept.
        Sorted by point_id.
    """
    cur = _as_points(this_year)
    if cur["point_id"].duplicated().any():
        raise LayerError("this year's problems", "duplicate point_id",
                         feature_id=cur.loc[cur["point_id"].duplicated(), "point_id"].iat[0],
                         fix="one row per indicator and area")
    last = _last_ledger(last_year, cur, units_last, units_this, district_id)
    if "definition" not in last.columns:
        last["definition"] = ""          # a ledger written before definitions were recorded
    definitions: dict[str, str] = {}
    if catalogue is not None:
        from .indicators.editions import check_same_definitions

        definitions = dict(zip(catalogue["code"], catalogue["definition"], strict=True))
        check_same_definitions(last, catalogue[["code", "definition"]], what="last year's ledger")
    if len(last) and (pd.to_numeric(last["last_seen"], errors="coerce") >= year).any():
        raise LayerError("last year's ledger", f"it already holds year {year} or later",
                         fix="pass last year's ledger and this year's problems")
    geom_this = this_year.geometry.values if isinstance(this_year, gpd.GeoDataFrame) else None
    crs = this_year.crs if isinstance(this_year, gpd.GeoDataFrame) else None
    old_geom = _old_geometry(last, last_year, units_last, crs)
    last = pd.DataFrame(last.drop(columns="geometry", errors="ignore"))
    corr = _unit_correspondence(units_last, units_this, min_overlap)
    open_last = last[last["status"].isin(["new", "persisting"])]
    closed_last = last[~last["status"].isin(["new", "persisting"])]
    has_value = None
    if values is not None:
        v = values[pd.to_numeric(values["value"], errors="coerce").notna()]
        has_value = set(zip(v["code"], v["area_id"].astype(str), strict=True))
    matched, resolved_rows = _match_open(open_last, cur, corr, year, definitions=definitions, has_value=has_value)
    # earlier-resolved points that come back: keep their first_seen / history
    closed_by_id = {pid: r for pid, r in zip(closed_last["point_id"], closed_last.to_dict("records"),
                                             strict=True)}
    out_rows = _current_rows(cur, matched, closed_by_id, year)
    for i, rec in enumerate(out_rows):
        rec["definition"] = definitions.get(rec["indicator_code"], "")
        if geom_this is not None:
            rec["geometry"] = geom_this[i]
    carried = [dict(r) for r in closed_by_id.values()]
    resolved = [dict(r) for r in resolved_rows]
    if geom_this is not None:
        for r in resolved + carried:
            r["geometry"] = old_geom.get(r["point_id"])
    return _ledger_frame(out_rows + resolved + carried, crs, definition=catalogue is not None)


def _last_ledger(last_year: pd.DataFrame | None, cur: pd.DataFrame, units_last: gpd.GeoDataFrame | None,
                 units_this: gpd.GeoDataFrame | None, district_id: str) -> pd.DataFrame:
    """Last year's ledger in today's layout (levels and names from this year's areas)."""
    if last_year is None:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in LEDGER_COLUMNS})
    levels = dict(zip(cur["area_id"].astype(str), cur["level"].astype(str), strict=True))
    names = dict(zip(cur["area_id"].astype(str), cur["area_name"].astype(str), strict=True))
    for u in (units_last, units_this):
        if u is not None:
            levels.update(dict.fromkeys(u["unit_id"].astype(str), "unit"))
            if "town_code" in u.columns:
                levels.update(dict.fromkeys(u["town_code"].astype(str), "town"))
    levels[district_id] = "district"
    return upgrade_ledger(last_year, levels=levels, names=names, district_id=district_id)


def _old_geometry(last: pd.DataFrame, last_year: pd.DataFrame | None, units_last: gpd.GeoDataFrame | None,
                  crs: Any) -> dict[str, Any]:
    """Geometry of last year's points (resolved or carried): their own, else last year's unit."""
    if isinstance(last_year, gpd.GeoDataFrame):
        return dict(zip(last["point_id"], last_year.geometry.values, strict=True))
    if units_last is None:
        return {}
    geoms = units_last.to_crs(crs).geometry.values if crs is not None and units_last.crs != crs \
        else units_last.geometry.values
    ug = dict(zip(units_last["unit_id"].astype(str), geoms, strict=True))
    return {pid: ug.get(str(a)) for pid, a in zip(last["point_id"], last["area_id"], strict=True)}


def _unit_correspondence(units_last: gpd.GeoDataFrame | None, units_this: gpd.GeoDataFrame | None,
                         min_overlap: float) -> dict[str, set[str]]:
    """Old unit ID → this year's unit IDs covering at least ``min_overlap`` of its area."""
    corr: dict[str, set[str]] = {}
    if units_last is None or units_this is None:
        return corr
    ul = units_last.reset_index(drop=True)
    ut = units_this.to_crs(ul.crs).reset_index(drop=True) if units_this.crs != ul.crs else \
        units_this.reset_index(drop=True)
    tree = shapely.STRtree(ut.geometry.values)
    li, ti = tree.query(ul.geometry.values, predicate="intersects")
    inter = shapely.area(shapely.intersection(ul.geometry.values[li], ut.geometry.values[ti]))
    share = inter / np.maximum(shapely.area(ul.geometry.values[li]), 1e-12)
    ok = share >= min_overlap
    for a, b in zip(ul["unit_id"].astype(str).to_numpy()[li[ok]], ut["unit_id"].astype(str).to_numpy()[ti[ok]],
                    strict=True):
        corr.setdefault(a, set()).add(b)
    return corr


def _match_open(open_last: pd.DataFrame, cur: pd.DataFrame, corr: Mapping[str, set[str]], year: int, *,
                definitions: Mapping[str, str], has_value: set | None
                ) -> tuple[dict[int, list[pd.Series]], list[pd.Series]]:
    """Last year's open points matched to this year's (row index → old rows; several old
    points may merge into one) and the unmatched ones: resolved this year, or not compared
    when this year's catalogue lacks their indicator or this year has no value for it."""
    cur_key = {(c, a): i for i, (c, a) in enumerate(zip(cur["indicator_code"], cur["area_id"].astype(str),
                                                        strict=True))}
    matched: dict[int, list[pd.Series]] = {}
    resolved_rows = []
    for _, row in open_last.sort_values("point_id").iterrows():
        code, area = row["indicator_code"], str(row["area_id"])
        targets = sorted(corr.get(area, set())) if area in corr else [area]
        hit = next((cur_key[(code, t)] for t in targets if (code, t) in cur_key), None)
        if hit is None:
            r = row.copy()
            compared = (not definitions or code in definitions) and \
                (has_value is None or any((code, t) in has_value for t in targets))
            r["status"] = "resolved" if compared else "not_compared"
            r["history"] = _history_add(row["history"], year, r["status"])
            resolved_rows.append(r)
        else:
            matched.setdefault(hit, []).append(row)
    return matched, resolved_rows


def _current_rows(cur: pd.DataFrame, matched: Mapping[int, list[pd.Series]], closed_by_id: dict[str, dict],
                  year: int) -> list[dict]:
    """This year's ledger rows: persisting (matched), new again (resolved before), or new.
    Pops the points that come back from ``closed_by_id``."""
    out_rows = []
    for i, prow in enumerate(cur.to_dict("records")):
        pid = prow["point_id"]
        base = {"point_id": pid, "problem_id": prow["problem_id"], "indicator_code": prow["indicator_code"],
                "level": prow["level"], "area_id": prow["area_id"], "area_name": prow["area_name"],
                "last_seen": year}
        if i in matched:
            olds = sorted(matched[i], key=lambda r: (int(r["first_seen"]), r["point_id"] != pid, r["point_id"]))
            old = olds[0]   # the longest-standing predecessor (the same ID first on a tie)
            hist = _history_add(old["history"], year, "persisting")
            former = [r["point_id"] for r in olds if r["point_id"] != pid]
            if former:
                hist += f" (formerly {', '.join(sorted(former))})"
            rec = {**base, "status": "persisting", "first_seen": int(old["first_seen"]), "history": hist}
        elif pid in closed_by_id:
            old = closed_by_id.pop(pid)
            rec = {**base, "status": "new", "first_seen": int(old["first_seen"]),
                   "history": _history_add(old["history"], year, "new")}
        else:
            rec = {**base, "status": "new", "first_seen": year, "history": f"{year}:new"}
        out_rows.append(rec)
    return out_rows


def _ledger_frame(rows: list[dict], crs: Any, *, definition: bool) -> pd.DataFrame:
    """The rows as a ledger sorted by point_id (GeoDataFrame when they carry geometry;
    with ``definition`` the column of definition fingerprints)."""
    out = pd.DataFrame(rows) if rows else pd.DataFrame({c: pd.Series(dtype=object) for c in LEDGER_COLUMNS})
    # a resolved point with the same ID as a current one: keep the current row only
    out = out.sort_values(["point_id", "status"], kind="stable")
    out = out[~(out["point_id"].duplicated(keep=False) & out["status"].isin(["resolved", "not_compared"]))]
    cols = list(LEDGER_COLUMNS)
    if definition:
        cols.append("definition")
        out["definition"] = out["definition"].fillna("") if "definition" in out.columns else ""
    if "geometry" in out.columns:
        cols.append("geometry")
    out = out[cols].reset_index(drop=True)
    out["first_seen"] = out["first_seen"].astype(int)
    out["last_seen"] = out["last_seen"].astype(int)
    if "geometry" in out.columns:
        out = gpd.GeoDataFrame(out, geometry="geometry", crs=crs)
    return out


def write_ledger(ledger: pd.DataFrame, path: str | PathLike, *, layer: str = "ledger") -> Path:
    """Write the ledger atomically: ``.csv`` (UTF-8 with BOM, geometry dropped) or ``.gpkg``
    (needs geometry; ``layer`` name)."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        write_csv(pd.DataFrame(ledger.drop(columns="geometry", errors="ignore")), path)
    elif suffix == ".gpkg":
        if not isinstance(ledger, gpd.GeoDataFrame):
            raise LayerError("ledger", "a GeoPackage needs geometry", fix="write .csv, or pass problems with geometry")
        import warnings

        with atomic_path(path) as tmp, warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="The filename extension", category=RuntimeWarning)
            ledger.to_file(tmp, layer=layer, driver="GPKG", engine="pyogrio")
    else:
        raise ValueError(f"ledger path must end in .csv or .gpkg, got {path.name!r}")
    return path


def read_ledger(path: str | PathLike, *, layer: str = "ledger") -> pd.DataFrame:
    """Read a ledger written by :func:`write_ledger` (CSV or GeoPackage) and check its columns.

    Both layouts are read: today's (``model.LEDGER_COLUMNS``, one row per problem point)
    and the one before problems were grouped (``model.LEDGER_COLUMNS_V1``); the latter is
    returned as it is and turned into today's by :func:`update_ledger` /
    :func:`upgrade_ledger`, which know this year's areas.
    """
    path = Path(path)
    if not path.exists():
        raise LayerError(f"ledger ({path.name})", f"file not found: {path}", fix="check [ledger] last_year")
    text_cols = {c: str for c in ("point_id", "problem_id", "indicator_code", "level", "area_id", "area_name",
                                  "status", "history", "definition")}
    if path.suffix.lower() == ".gpkg":
        led = gpd.read_file(path, layer=layer, engine="pyogrio")
    else:
        led = undo_csv_prefix(read_text_table(path, f"ledger ({path.name})", dtype=text_cols))
    required = LEDGER_COLUMNS if "point_id" in led.columns else LEDGER_COLUMNS_V1
    missing = [c for c in required if c not in led.columns]
    if missing:
        raise LayerError(f"ledger ({path.name})", f"missing column(s) {', '.join(missing)}",
                         fix="use a ledger written by geotijian (point_id, problem_id, indicator_code, level, "
                             "area_id, area_name, status, first_seen, last_seen, history)")
    bad = ~led["status"].isin(STATUSES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        key = "point_id" if "point_id" in led.columns else "problem_id"
        raise LayerError(f"ledger ({path.name})", f"status {led['status'].iat[i]!r} is unknown", feature=i,
                         feature_id=led[key].iat[i], fix="use new, persisting, resolved or not_compared")
    led["history"] = led["history"].fillna("")
    if "area_name" in led.columns:
        led["area_name"] = led["area_name"].fillna("")
    if "definition" in led.columns:
        led["definition"] = led["definition"].fillna("").astype(str)
    return led
