"""The problems on the problem map: where they lie, and the rest in a side table.

A problem (问题清单, one per indicator and level) has its problem points (问题点位, one per
indicator and area). Only points at unit level lie somewhere a reader can see: they are
drawn on their units, one outline per unit and problem class, its popup listing the unit's
problems of that class (序号, indicator, value against reference, residents affected). A
district- or town-level problem covers the whole district or a whole town: drawn as a
polygon it would hide everything under it, so it goes in a side table on the map instead.

* :func:`unit_problem_features`: the unit outlines per class with their popups.
* :func:`side_table_html`: the district and town problems as an HTML table.
* :func:`format_value`: a value with its unit of measure (``48.6%``, ``3.2 m²/人``).
"""

from __future__ import annotations

import html

import geopandas as gpd
import numpy as np
import pandas as pd

from ..problem_list import LEVEL_NOUN_ZH, unit_zh
from . import _common as c

__all__ = ["unit_problem_features", "side_table_html", "format_value", "problem_points_of", "LEVEL_LABELS",
           "STATUS_LABELS"]

#: Level and ledger-status labels (zh, en).
LEVEL_LABELS = {"unit": ("社区体检单元", "check-up unit"), "town": ("街镇", "town"), "district": ("区", "district")}
STATUS_LABELS = {"new": ("新增", "new"), "persisting": ("持续", "persisting"), "resolved": ("已整改", "resolved")}


def format_value(v: float, unit: str | None, lang: str = "zh") -> str:
    """``48.6%``, ``5 公里/平方公里``; ``—`` for a missing value."""
    if v is None or not np.isfinite(float(v)):
        return "—"
    x = float(v)
    s = f"{x:,.1f}" if abs(x) < 1000 else f"{x:,.0f}"
    s = s[:-2] if s.endswith(".0") else s
    u = "" if unit is None or str(unit) in ("", "nan", "None") else str(unit)
    if c.lang_index(lang) == 0:
        u = unit_zh(u)
    if not u:
        return s
    return f"{s}{u}" if u == "%" else f"{s} {u}"


def problem_points_of(study) -> pd.DataFrame | None:
    """The study's problem points: ``study.problem_points``, or (a study built before problems
    were grouped) its per-area ``problems`` taken as points."""
    pts = getattr(study, "problem_points", None)
    if pts is not None and len(pts):
        return pts
    pr = study.problems
    if pr is None or not len(pr):
        return None
    if "point_count" in pr.columns:     # grouped problems without their points: nothing to place
        return None
    return pr.assign(point_id=pr["problem_id"])


def unit_problem_features(study, *, lang: str = "zh") -> gpd.GeoDataFrame:
    """One feature per unit and problem class: the unit's outline, with its problems.

    Returns
    -------
    GeoDataFrame
        ``area_id``, ``problem_class``, ``n`` (problems of that class in the unit), ``head``
        (escaped popup header: unit name and ID), ``tip`` (escaped tooltip), ``list``
        (escaped HTML list of the problems: 序号, indicator, value / reference, residents,
        the rectification suggestion),
        ``town``, ``population``, the unit geometry; sorted by class then area ID. Empty
        when the study has no unit-level problem points.
    """
    li = c.lang_index(lang)
    pts = problem_points_of(study)
    cols = ["area_id", "problem_class", "n", "head", "tip", "list", "town", "population"]
    crs = study.units.crs if study.units is not None else (pts.crs if isinstance(pts, gpd.GeoDataFrame) else None)
    empty = gpd.GeoDataFrame({k: [] for k in cols}, geometry=[], crs=crs)
    if pts is None or "level" not in pts.columns:
        return empty
    unit_level = (pts["level"].astype(str) == "unit").to_numpy()
    p = pd.DataFrame(pts.loc[unit_level].drop(columns="geometry", errors="ignore")).copy()
    if not len(p):
        return empty
    p["area_id"] = p["area_id"].astype(str)
    seq = {}
    if study.problems is not None and "seq" in study.problems.columns:
        seq = dict(zip(study.problems["problem_id"].astype(str), study.problems["seq"], strict=True))
    p["pseq"] = p["problem_id"].astype(str).map(seq)
    p["prank"] = p["problem_class"].map({k: i for i, k in enumerate(c.PROBLEM_CLASSES)}).fillna(9)
    p["paff"] = pd.to_numeric(p["affected_population"], errors="coerce") if "affected_population" in p.columns \
        else np.nan
    p["_geom"] = pts.geometry.to_numpy()[unit_level] if isinstance(pts, gpd.GeoDataFrame) else None
    p = p.sort_values(["area_id", "prank", "pseq", "point_id"], kind="stable", na_position="last")
    # the area of each point: its unit (name, town, residents, outline), else the point's own geometry
    units = study.units.set_index(study.units["unit_id"].astype(str)) if study.units is not None else None
    known = p["area_id"].isin(units.index) if units is not None else pd.Series(False, index=p.index)
    if not isinstance(pts, gpd.GeoDataFrame):
        p = p.loc[known]
        known = known.loc[p.index]
        if not len(p):
            return empty
    p["_items"] = _problem_items(p, study, lang)
    key = p["area_id"] + "\x00" + p["problem_class"].astype(str)
    grp = p.assign(_key=key.to_numpy(), _known=known.to_numpy()).groupby("_key", sort=False)
    g = grp.agg(area_id=("area_id", "first"), problem_class=("problem_class", "first"), n=("area_id", "size"),
                _list=("_items", "<br>".join), _known=("_known", "first"), _geom=("_geom", "first"),
                _aname=("area_name", "first") if "area_name" in p.columns else ("area_id", "first"))
    area = g["area_id"]
    if units is not None:
        u = units.reindex(area)
        name = u["name"].where(u["name"].notna(), area.to_numpy()) if "name" in u.columns else area
        town = u["town_name"].fillna("").astype(str) if "town_name" in u.columns else pd.Series("", index=u.index)
        pop = pd.to_numeric(u["population"], errors="coerce") if "population" in u.columns \
            else pd.Series(np.nan, index=u.index)
        ugeom = u.geometry.to_numpy()
    else:
        name, town = area, pd.Series("", index=area.index)
        pop, ugeom = pd.Series(np.nan, index=area.index), np.full(len(area), None, dtype=object)
    k = g["_known"].to_numpy(dtype=bool)
    name = np.where(k, np.asarray(name, dtype=object).astype(str), g["_aname"].astype(str).to_numpy())
    town = np.where(k, np.asarray(town, dtype=object), "")
    pop = np.where(k, np.asarray(pop, dtype=float), np.nan)
    geom = np.where(k, ugeom, g["_geom"].to_numpy())
    label = g["problem_class"].astype(str).map(lambda x: c.problem_class_label(x, lang)).to_numpy()
    n = g["n"].to_numpy()
    tip = [f"{a}: {b} 项{x}问题" if li == 0 else f"{a}: {b} {x} problem(s)" for a, b, x in zip(name, n, label, strict=True)]
    out = gpd.GeoDataFrame({"area_id": area.to_numpy(), "problem_class": g["problem_class"].astype(str).to_numpy(),
                            "n": n, "head": c.escaped_values(pd.Series(name) + " (" + area.to_numpy() + ")").to_numpy(),
                            "tip": c.escaped_values(pd.Series(tip, dtype=object)).to_numpy(), "list": g["_list"].to_numpy(),
                            "town": c.escaped_values(pd.Series(town, dtype=object)).to_numpy(), "population": pop},
                           geometry=geom, crs=crs)
    rank = out["problem_class"].map({k: i for i, k in enumerate(c.PROBLEM_CLASSES)}).fillna(9)
    order = np.lexsort((out["area_id"].to_numpy().astype(str), rank.to_numpy()))
    return out.iloc[order].reset_index(drop=True)


def _problem_items(p: pd.DataFrame, study, lang: str) -> list[str]:
    """Each point as an escaped popup line: ``序号. indicator: value (参考 ref, 影响约N人)`` and
    its suggestion."""
    li = c.lang_index(lang)
    cat = study.indicator_table
    units_of_measure = {}
    if cat is not None and "code" in cat.columns and "unit" in cat.columns:
        units_of_measure = dict(zip(cat["code"].astype(str).to_numpy(dtype=object), cat["unit"].to_numpy(dtype=object),
                                    strict=False))
    code = p["indicator_code"].astype(str)
    unit = code.map(units_of_measure)
    if "unit" in p.columns:
        unit = unit.where(code.isin(units_of_measure.keys()), p["unit"])
    unit = unit.where(unit.notna(), "")
    ref = p["reference"] if "reference" in p.columns else pd.Series(None, index=p.index, dtype=object)
    sug = p["suggestion"] if "suggestion" in p.columns else pd.Series(None, index=p.index, dtype=object)
    vs = "参考" if li == 0 else "reference"
    items = []
    cols = [x.to_numpy(dtype=object) for x in (p["pseq"], p["name_zh"], p["value"], unit, ref, p["paff"], sug)]
    for seq, name, v, u, r, aff, s in zip(*cols, strict=True):  # (object arrays: a string column's items one by one cost)
        r_txt = "—" if r is None or (isinstance(r, float) and np.isnan(r)) else str(r)
        if r_txt != "—" and u and str(u) == "%" and not r_txt.endswith("%"):
            r_txt += "%"
        num = f"{int(seq)}. " if pd.notna(seq) else ""
        a = "" if not np.isfinite(aff) else (f", 影响约{int(round(aff)):,}人" if li == 0
                                              else f", {int(round(aff)):,} residents")
        item = html.escape(f"{num}{name}: {format_value(v, u, lang)} ({vs} {r_txt}{a})")
        if isinstance(s, str) and s.strip():
            item += f"<br><span class='sg'>→ {html.escape(s)}</span>"
        items.append(item)
    return items


def side_table_html(study, *, lang: str = "zh", limit: int = 60) -> tuple[str, int]:
    """The district- and town-level problems as an escaped HTML table, and their count.

    One row per problem (序号, class as a coloured chip, indicator, level and area, value
    against reference, its points for a town-level problem), in the 问题清单's order; at
    most ``limit`` rows, then a line with the number left out.
    """
    li = c.lang_index(lang)
    pr = study.problems
    if pr is None or not len(pr) or "level" not in pr.columns:
        return "", 0
    d = pd.DataFrame(pr[pr["level"].astype(str).isin(["district", "town"])].drop(columns="geometry",
                                                                                  errors="ignore"))
    if not len(d):
        return "", 0
    if "seq" in d.columns:
        d = d.sort_values("seq", kind="stable")
    head = (["序号", "类别", "问题", "范围", "现状 / 参考"] if li == 0
            else ["No.", "class", "problem", "where", "value / reference"])
    rows = ["<tr>" + "".join(f"<th>{h}</th>" for h in head) + "</tr>"]
    for r in d.head(limit).itertuples(index=False):
        cls = str(r.problem_class)
        color = c.PROBLEM_COLORS.get(cls, c.OTHER_COLOR)
        lvl = LEVEL_LABELS.get(str(r.level), (str(r.level),) * 2)[li]
        n = int(getattr(r, "point_count", 1) or 1)
        names = str(getattr(r, "point_names", "") or getattr(r, "area_name", "") or r.area_id)
        if str(r.level) == "town" and n > 1:
            where = f"{n}个{LEVEL_NOUN_ZH['town']}: {names}" if li == 0 else f"{n} towns: {names}"
        else:
            where = f"{lvl}: {names}" if li == 0 else f"{lvl}: {names}"
        unit = getattr(r, "unit", "")
        ref = getattr(r, "reference", None)
        ref_txt = "—" if ref is None or (isinstance(ref, float) and np.isnan(ref)) else str(ref)
        if ref_txt != "—" and str(unit) == "%" and not ref_txt.endswith("%"):
            ref_txt += "%"
        seq = getattr(r, "seq", "")
        rows.append(f"<tr><td>{html.escape(str(seq))}</td>"
                    f"<td><i style='background:{color}'></i>{html.escape(c.problem_class_label(cls, lang))}</td>"
                    f"<td>{html.escape(str(r.name_zh))}</td><td>{html.escape(where)}</td>"
                    f"<td>{html.escape(format_value(r.value, unit, lang))} / {html.escape(ref_txt)}</td></tr>")
    more = len(d) - limit
    tail = ""
    if more > 0:
        tail = (f"<div>… 另有 {more} 项, 见问题清单</div>" if li == 0 else f"<div>… {more} more in the problem list</div>")
    return "<table>" + "".join(rows) + "</table>" + tail, len(d)
