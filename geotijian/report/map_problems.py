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

from ..problem_list import LEVEL_NOUN_ZH, UNIT_ZH
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
        u = UNIT_ZH.get(u, u)
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
    if pts is None or "level" not in pts.columns:
        return gpd.GeoDataFrame({k: [] for k in cols}, geometry=[], crs=crs)
    p = pd.DataFrame(pts[pts["level"].astype(str) == "unit"].drop(columns="geometry", errors="ignore")).copy()
    if not len(p):
        return gpd.GeoDataFrame({k: [] for k in cols}, geometry=[], crs=crs)
    seq = {}
    if study.problems is not None and "seq" in study.problems.columns:
        seq = dict(zip(study.problems["problem_id"].astype(str), study.problems["seq"], strict=True))
    p["pseq"] = p["problem_id"].astype(str).map(seq)
    p["prank"] = p["problem_class"].map({k: i for i, k in enumerate(c.PROBLEM_CLASSES)}).fillna(9)
    p["paff"] = pd.to_numeric(p["affected_population"], errors="coerce") if "affected_population" in p.columns \
        else np.nan
    p = p.sort_values(["area_id", "prank", "pseq", "point_id"], kind="stable", na_position="last")
    units = study.units.set_index(study.units["unit_id"].astype(str)) if study.units is not None else None
    geoms, rows = [], []
    cat = study.indicator_table
    units_of_measure = {}
    if cat is not None and "code" in cat.columns and "unit" in cat.columns:
        units_of_measure = dict(zip(cat["code"].astype(str), cat["unit"], strict=False))
    for (area, cls), g in p.groupby(["area_id", "problem_class"], sort=True):
        area = str(area)
        if units is not None and area in units.index:
            u = units.loc[area]
            geom = u.geometry
            name = str(u["name"]) if "name" in units.columns and pd.notna(u["name"]) else area
            town = str(u["town_name"]) if "town_name" in units.columns else ""
            pop = float(u["population"]) if "population" in units.columns else np.nan
        elif isinstance(pts, gpd.GeoDataFrame):
            geom = pts.loc[pts["area_id"].astype(str) == area].geometry.iloc[0]
            name = str(g["area_name"].iat[0]) if "area_name" in g.columns else area
            town, pop = "", np.nan
        else:
            continue
        items = []
        for r in g.itertuples(index=False):
            code = str(r.indicator_code)
            unit = units_of_measure.get(code, getattr(r, "unit", ""))
            ref = getattr(r, "reference", None)
            ref_txt = "—" if ref is None or (isinstance(ref, float) and np.isnan(ref)) else str(ref)
            if ref_txt != "—" and unit and str(unit) == "%" and not ref_txt.endswith("%"):
                ref_txt += "%"
            num = f"{int(r.pseq)}. " if pd.notna(r.pseq) else ""
            aff = "" if not np.isfinite(r.paff) else (
                f", 影响约{int(round(r.paff)):,}人" if li == 0 else f", {int(round(r.paff)):,} residents")
            vs = "参考" if li == 0 else "reference"
            item = html.escape(f"{num}{r.name_zh}: {format_value(r.value, unit, lang)} ({vs} {ref_txt}{aff})")
            sug = getattr(r, "suggestion", None)
            if isinstance(sug, str) and sug.strip():
                item += f"<br><span class='sg'>→ {html.escape(sug)}</span>"
            items.append(item)
        label = c.problem_class_label(str(cls), lang)
        n = len(g)
        tip = f"{name}: {n} 项{label}问题" if li == 0 else f"{name}: {n} {label} problem(s)"
        rows.append({"area_id": area, "problem_class": str(cls), "n": n,
                     "head": html.escape(f"{name} ({area})"), "tip": html.escape(tip),
                     "list": "<br>".join(items), "town": html.escape(town), "population": pop})
        geoms.append(geom)
    out = gpd.GeoDataFrame(pd.DataFrame(rows, columns=cols), geometry=geoms, crs=crs)
    rank = out["problem_class"].map({k: i for i, k in enumerate(c.PROBLEM_CLASSES)}).fillna(9)
    order = np.lexsort((out["area_id"].to_numpy().astype(str), rank.to_numpy()))
    return out.iloc[order].reset_index(drop=True)


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
