"""问题清单: the problem points of a check-up grouped into the problems a government acts on.

Every indicator × area that falls short of its reference is a *problem point* (问题点位,
:func:`geotijian.assess.classify_problems`): 15 units × 16 indicators give hundreds of them
for a small district and thousands for a whole one. A check-up report lists tens of
problems, each with its points (Yichang 2025: 46 problems, 1,781 points). This module
groups the points into one problem per indicator and level (社区体检单元 / 街镇 / 区):

    cov_kindergarten@unit  幼儿园步行300米覆盖率: 15个社区体检单元中12个未达标 …, 问题点位 12

* :func:`group_problems`: the grouped problems (``model.PROBLEM_COLUMNS``), sorted by
  severity: problem class (限时解决, 尽力解决, 长期谋划), then residents affected (most
  first), then the relative gap (worst first); ``seq`` numbers them 1, 2, …
* :func:`problem_status`: the ledger's year-over-year status summed per problem.

Severity, per column (units in brackets):

``problem_class``        the most urgent class among the problem's points (a point's class
                         can differ from its neighbours' through the survey or hotline rules)
``affected_population``  residents (persons) summed over the points: for coverage
                         indicators the residents *not* covered, otherwise every resident of
                         the points' areas
``gap``, ``gap_share``   the worst point's gap in the indicator's unit and as a share of the
                         reference (|gap| ÷ |reference|; ∞ for a reference of 0)
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from .model import PROBLEM_CLASSES, PROBLEM_COLUMNS
from .units_of_measure import UNIT_ZH, unit_zh

__all__ = ["LEVEL_NOUN_ZH", "UNIT_ZH", "unit_zh", "group_problems", "problem_status", "join_names", "STATUS_COLUMNS"]

#: How the points of each level are counted in Chinese (个社区体检单元 …).
LEVEL_NOUN_ZH = {"unit": "社区体检单元", "town": "街镇", "district": "区"}
#: Columns :func:`problem_status` adds to the problems table.
STATUS_COLUMNS = ["status", "first_seen", "points_new", "points_persisting", "points_resolved"]
_LEVEL_ORDER = {"unit": 0, "town": 1, "district": 2}
_CLASS_RANK = {c: i for i, c in enumerate(PROBLEM_CLASSES)}


def join_names(names: list[str], level: str, *, limit: int = 3) -> str:
    """``A、B、C等12个社区体检单元`` (at most ``limit`` names, then the count)."""
    names = [str(n) for n in names]
    if len(names) <= limit:
        return "、".join(names)
    return f"{'、'.join(names[:limit])}等{len(names)}个{LEVEL_NOUN_ZH.get(level, '区域')}"


def _num(v: float, unit: str) -> str:
    unit = unit_zh(unit)
    if v is None or not np.isfinite(v):
        return "—"
    s = f"{v:,.1f}" if abs(v) < 1000 else f"{v:,.0f}"
    s = s[:-2] if s.endswith(".0") else s
    return f"{s}{unit}" if unit == "%" else (f"{s} {unit}" if unit else s)


def _people(n: float) -> str:
    if n is None or not np.isfinite(n):
        return "—"
    if n >= 10000:
        return f"{n / 10000:.1f}万"
    step = 100 if n >= 1000 else (10 if n >= 100 else 1)
    return f"{int(round(n / step) * step):,}"


def _describe(name: str, level: str, n_points: int, n_assessed: int, ref: str, ref_source: str,
              unit: str, vmin: float, vmax: float, affected: float, coverage: bool,
              district_name: str) -> str:
    """问题描述: one Chinese sentence a report can quote."""
    ref_txt = f"参考值{ref}{'%' if unit == '%' and ref and not ref.endswith('%') else ''}"
    if ref_source:
        ref_txt += f"({ref_source})"
    if level == "district":
        where = f"{district_name}现状{_num(vmin, unit)}"
    else:
        noun = LEVEL_NOUN_ZH.get(level, "区域")
        span = _num(vmin, unit) if n_points == 1 or vmin == vmax else f"{_num(vmin, '')}–{_num(vmax, unit)}"
        where = f"{n_assessed}个{noun}中{n_points}个未达标(现状{span})"
    who = "居民未覆盖" if coverage else "涉及居民"
    people = f", {who}约{_people(affected)}人" if affected is not None and np.isfinite(affected) else ""
    return f"{name}未达{ref_txt}: {where}{people}"


def group_problems(points: pd.DataFrame, table: pd.DataFrame, *, templates: pd.DataFrame,
                   suggest: Any, district_id: str = "district", district_name: str | None = None,
                   coverage_codes: set[str] | frozenset[str] = frozenset()) -> pd.DataFrame:
    """Group problem points into one problem per indicator and level, sorted by severity.

    Parameters
    ----------
    points : DataFrame or GeoDataFrame
        :func:`geotijian.assess.classify_problems` output (``model.POINT_COLUMNS``).
    table : DataFrame
        The indicator table (:func:`geotijian.assess.indicator_table`): gives how many
        areas of each level were assessed, the reference (operator, number, source) and
        the unit of measure.
    templates : DataFrame
        :func:`geotijian.assess.suggestion_templates` (the department and the wording of
        the problem's suggestion).
    suggest : callable
        ``suggest(code, fields) -> (text, department)`` (from ``assess``): fills the
        template of ``code`` with ``fields``.
    district_id, district_name : str
        The study area: ``area_id`` / ``area_name`` of a problem with several points.
    coverage_codes : set of str
        Codes whose affected residents are the residents not covered (the wording of the
        description).

    Returns
    -------
    DataFrame or GeoDataFrame
        ``model.PROBLEM_COLUMNS`` (+ ``geometry``, the union of the points' areas, when
        ``points`` has geometry), sorted by severity with ``seq`` = 1, 2, … See the
        module docstring and :mod:`geotijian.assess` for every column.
    """
    district_name = district_name or district_id
    has_geom = isinstance(points, gpd.GeoDataFrame)
    p = pd.DataFrame(points.drop(columns="geometry", errors="ignore")).reset_index(drop=True)
    if not len(p):
        out = pd.DataFrame({c: pd.Series(dtype=object) for c in PROBLEM_COLUMNS})
        return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries([], crs=points.crs), crs=points.crs) if has_geom else out
    judged = table[table["judgement"].isin(["meets", "falls_short"])]
    assessed = judged.groupby(["code", "level"]).size()
    ref = table.drop_duplicates("code").set_index("code")
    v = pd.to_numeric(p["value"], errors="coerce").to_numpy(dtype=float)
    gap = pd.to_numeric(p["gap"], errors="coerce").to_numpy(dtype=float)
    refv = ref["reference_value"].reindex(p["indicator_code"]).to_numpy(dtype=float) \
        if "reference_value" in ref.columns else np.full(len(p), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(np.abs(refv) > 0, np.abs(gap) / np.abs(refv), np.where(gap > 0, np.inf, 0.0))
    p["_share"] = share
    p["_v"], p["_gap"] = v, gap
    p["_rank"] = p["problem_class"].map(_CLASS_RANK).fillna(len(PROBLEM_CLASSES)).to_numpy()
    p["_aff"] = pd.to_numeric(p["affected_population"], errors="coerce")
    # points within a problem: most affected first, then ID (names and `points` in this order)
    p = p.sort_values(["problem_id", "_aff", "point_id"], ascending=[True, False, True], kind="stable",
                      na_position="last")
    geoms = dict(zip(points["point_id"], points.geometry.values, strict=True)) if has_geom else {}
    unions: dict[tuple[int, ...], Any] = {}  # the same areas in the same order: one union (ids of live objects)
    rows = []
    for pid, g in p.groupby("problem_id", sort=True):
        first = g.iloc[0]
        code, level = str(first["indicator_code"]), str(first["level"])
        worst = int(np.nanargmax(np.nan_to_num(g["_gap"].to_numpy(), nan=-np.inf)))
        unit = str(ref["unit"].get(code, "")) if "unit" in ref.columns else ""
        unit = "" if unit in ("nan", "None") else unit
        r_op = str(ref["reference_op"].get(code, "")) if "reference_op" in ref.columns else ""
        r_val = float(ref["reference_value"].get(code, np.nan)) if "reference_value" in ref.columns else np.nan
        r_src = str(ref["reference_source"].get(code, "")) if "reference_source" in ref.columns else ""
        r_txt = str(first["reference"]) if first["reference"] is not None and str(first["reference"]) != "nan" \
            else ""
        n = len(g)
        single = n == 1
        aff = float(g["_aff"].sum(min_count=1)) if g["_aff"].notna().any() else np.nan
        names = g["area_name"].astype(str).tolist()
        vals = g["_v"].to_numpy()
        finite = vals[np.isfinite(vals)]
        vmin = float(finite.min()) if len(finite) else np.nan
        vmax = float(finite.max()) if len(finite) else np.nan
        n_assessed = int(assessed.get((code, level), n))
        cls_rank = int(g["_rank"].min())
        cls = PROBLEM_CLASSES[cls_rank] if cls_rank < len(PROBLEM_CLASSES) else str(first["problem_class"])
        area = names[0] if single else join_names(names, level)
        fields = {"area": area, "area_id": first["area_id"] if single else district_id,
                  "name": first["name_zh"], "value": g["_v"].iat[worst], "reference": r_txt or "—",
                  "gap": g["_gap"].iat[worst], "unit": unit, "affected": aff}
        text, dept = suggest(code, fields)
        rows.append({
            "problem_id": pid, "indicator_code": code, "name_zh": first["name_zh"],
            "dimension": first["dimension"], "unit": unit, "level": level,
            "area_id": first["area_id"] if single else district_id,
            "area_name": names[0] if single else district_name,
            "problem_class": cls, "point_count": n, "assessed_count": max(n_assessed, n),
            "points": ";".join(g["area_id"].astype(str)), "point_names": "、".join(names),
            "value": g["_v"].iat[worst], "reference": r_txt or None, "reference_op": r_op,
            "reference_value": r_val, "reference_source": r_src, "gap": g["_gap"].iat[worst],
            "gap_share": float(g["_share"].iat[worst]), "affected_population": aff,
            "description": _describe(str(first["name_zh"]), level, n, max(n_assessed, n), r_txt, r_src, unit,
                                     vmin, vmax, aff, code in coverage_codes, district_name),
            "suggestion": text, "department": dept,
            "_rank": cls_rank, "_level": _LEVEL_ORDER.get(level, 9),
            "_geom": _union_of([geoms[i] for i in g["point_id"] if geoms.get(i) is not None], unions)
            if has_geom else None,
        })
    out = pd.DataFrame(rows)
    aff_key = -out["affected_population"].fillna(-1.0)
    share_key = -out["gap_share"].replace(np.inf, 1e300).fillna(-1.0)
    order = np.lexsort((out["problem_id"].to_numpy().astype(str), out["_level"].to_numpy(),
                        share_key.to_numpy(), aff_key.to_numpy(), out["_rank"].to_numpy()))
    out = out.iloc[order].reset_index(drop=True)
    out["seq"] = np.arange(1, len(out) + 1)
    out["point_count"] = out["point_count"].astype(int)
    out["assessed_count"] = out["assessed_count"].astype(int)
    geom = out["_geom"].to_numpy()
    out = out[PROBLEM_COLUMNS]
    if has_geom:
        return gpd.GeoDataFrame(out, geometry=gpd.GeoSeries(geom, crs=points.crs), crs=points.crs)
    return out


def _union_of(parts: list, memo: dict) -> Any:
    """``shapely.union_all(parts)``, made once per sequence of the same geometry objects (the
    district's and the towns' problems of every indicator share their areas, in one order)."""
    key = tuple(map(id, parts))
    if key not in memo:
        memo[key] = shapely.union_all(parts)
    return memo[key]


def problem_status(problems: pd.DataFrame, ledger: pd.DataFrame, *, year: int) -> pd.DataFrame:
    """The ledger's status summed per problem (added to the problems table).

    Parameters
    ----------
    problems : DataFrame or GeoDataFrame
        :func:`group_problems` output.
    ledger : DataFrame
        :func:`geotijian.assess.update_ledger` output (one row per problem point).
    year : int
        The check-up year (the ledger's ``<year>:resolved`` entries are this year's).

    Returns
    -------
    DataFrame or GeoDataFrame
        ``problems`` with :data:`STATUS_COLUMNS`: ``status`` ``persisting`` when any of its
        points was already a problem last year, else ``new``; ``first_seen`` the earliest
        year any of its points was first seen; ``points_new``, ``points_persisting`` the
        points by status; ``points_resolved`` last year's points of the same indicator and
        level solved this year (整改销号).
    """
    out = problems.copy()
    led = pd.DataFrame(ledger)
    cur = led[led["status"].isin(["new", "persisting"])]
    counts = cur.groupby(["problem_id", "status"]).size().unstack(fill_value=0)
    first = cur.groupby("problem_id")["first_seen"].min()
    # resolved this year: last seen the year before and history ends with this year's resolution
    res = led[(led["status"] == "resolved") & led["history"].astype(str).str.contains(f"{year}:resolved",
                                                                                       regex=False)]
    resolved = res.groupby("problem_id").size()
    pid = out["problem_id"]
    n_new = pid.map(counts["new"] if "new" in counts.columns else {}).fillna(0).astype(int)
    n_per = pid.map(counts["persisting"] if "persisting" in counts.columns else {}).fillna(0).astype(int)
    out["status"] = np.where(n_per.to_numpy() > 0, "persisting", "new")
    out["first_seen"] = pid.map(first).fillna(year).astype(int)
    out["points_new"] = n_new.to_numpy()
    out["points_persisting"] = n_per.to_numpy()
    out["points_resolved"] = pid.map(resolved).fillna(0).astype(int).to_numpy()
    return out
