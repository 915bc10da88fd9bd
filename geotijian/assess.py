"""Judgement, problem classes, the 一表三清单 and the problem ledger (问题台账).

* :func:`judge`: each value against its reference → ``meets`` / ``falls_short`` /
  ``no_reference`` (``no_value`` where the value itself is missing), with the gap.
* :func:`classify_problems`: every shortfall becomes a problem point (问题点位)
  ``<code>@<area_id>`` sorted into 限时解决 / 尽力解决 / 长期谋划 by a rule table (packaged
  ``rules.csv``, overridable), with the affected residents and a suggestion from a template
  per indicator (packaged ``suggestions.csv``).
* :func:`build_tables`: the points grouped into one problem per indicator and level
  (:func:`geotijian.problem_list.group_problems`) and the 一表 (indicator table) and 三清单
  (strengths, problems, suggestions); :func:`write_tables` writes them to Excel, CSV
  (UTF-8 with BOM) and Markdown, atomically.
* :func:`update_ledger`, :func:`read_ledger`, :func:`write_ledger`: the year-over-year ledger
  of problem points (it reads ledgers written before the grouping too, see below).
  Given the study's catalogue, the ledger records each point's definition fingerprint,
  refuses to match points of one code defined differently in the two years, and marks
  last year's open points ``not_compared`` when this year's edition no longer holds
  their indicator or this year has no value for it (never ``resolved``).

Problem classes and 一表三清单 follow the Jiading 2024 check-up work plan (S41, NOTES (d) 6).

The problems table (问题清单, ``build_tables(...)["problems"]``, ``model.PROBLEM_COLUMNS``)
---------------------------------------------------------------------------------------
One row per indicator and level (unit / town / district) with at least one point that
falls short, sorted by severity (class, residents affected, relative gap). Read by the
report writers, ``geotijian.plan`` and the Word report; the columns are a contract:

``seq``                序号, 1 = the most severe
``problem_id``         ``<indicator code>@<level>`` (``cov_kindergarten@unit``): stable year to year
``indicator_code``, ``name_zh``, ``dimension``, ``unit`` (of measure: ``%``, ``个/千人`` …)
``level``              ``unit``, ``town`` or ``district`` (the level of its points)
``area_id``, ``area_name``  the area of a one-point problem, else the study area (district)
``problem_class``      限时解决 / 尽力解决 / 长期谋划: the most urgent class among its points
``point_count``        问题点位数: areas of the level that fall short
``assessed_count``     areas of the level with a value for the indicator (评估数)
``points``             ``;``-separated area IDs of the points (most affected first)
``point_names``        ``、``-separated area names, same order
``value``              the worst point's value (indicator unit)
``reference``          the reference as text (``≥90``); ``reference_op`` (``>=`` …) and
                       ``reference_value`` (number, percent in percent) apart
``reference_source``   where the reference comes from: a documented source (standard,
                       plan, with its confidence) or ``研究设定`` (a study setting in
                       study.toml): never an unstated value
``gap``, ``gap_share`` the worst point's shortfall (indicator unit) and ÷ |reference|
``affected_population``  residents (persons) summed over the points: not covered (coverage
                       indicators) or living in the points' areas (others)
``description``        问题描述, one Chinese sentence (counts, value range, residents)
``suggestion``, ``department``  整改建议 from the indicator's template, 责任部门
``geometry``           (GeoDataFrame) the union of the points' areas
after the ledger step (``geotijian.problem_list.problem_status``): ``status`` (new /
persisting), ``first_seen``, ``points_new``, ``points_persisting``, ``points_resolved``.

The points (``build_tables(...)["problem_points"]``, ``model.POINT_COLUMNS``) carry
``point_id`` ``<code>@<area_id>`` (the problem ID of geotijian before issue 20), their
``problem_id``, area, value, gap, class, residents, suggestion, rule and geometry.

The ledger (问题台账): :mod:`geotijian.ledger` (re-exported here).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from fnmatch import translate
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from . import data
from .errors import ConfigError, LayerError
from .io.atomic import write_text_atomic
from .io.tables import markdown_cell, write_csv
from .io.text import read_table
from .ledger import STATUSES, read_ledger, update_ledger, upgrade_ledger, write_ledger
from .model import POINT_COLUMNS, PROBLEM_CLASSES
from .problem_list import group_problems, problem_status
from .units_of_measure import unit_zh

__all__ = [
    "JUDGEMENTS", "TABLE_COLUMNS", "STRENGTH_COLUMNS", "SUGGESTION_COLUMNS", "RULE_CONDITIONS",
    "judge", "indicator_table", "rule_table", "suggestion_templates", "classify_problems", "group_problems",
    "problem_status", "reference_sources", "strengths", "suggestions", "build_tables", "write_tables",
    "update_ledger", "upgrade_ledger", "read_ledger", "write_ledger", "STATUSES",
]

#: Judgement values (Chinese labels used by the writers in brackets).
JUDGEMENTS = {"meets": "达标", "falls_short": "未达标", "no_reference": "无参考值", "no_value": "无数据"}
TABLE_COLUMNS = ["level", "area_id", "area_name", "code", "name_zh", "dimension", "unit", "value", "reference",
                 "reference_op", "reference_value", "reference_source", "judgement", "gap"]
STRENGTH_COLUMNS = ["strength_id", "indicator_code", "name_zh", "dimension", "level", "area_id", "area_name",
                    "value", "reference", "margin"]
SUGGESTION_COLUMNS = ["seq", "problem_id", "problem_class", "indicator_code", "name_zh", "level", "area_id",
                      "area_name", "point_count", "point_names", "affected_population", "department", "suggestion",
                      "rule_id", "reason"]
RULE_COLUMNS = ["rule_id", "order", "problem_class", "codes", "dimensions", "condition", "threshold", "category",
                "reason_zh", "source"]
RULE_CONDITIONS = ("always", "satisfaction_below", "complaint_rate_above", "complaint_ratio_above",
                   "gap_share_above")
LEVELS = {"unit": 0, "town": 1, "district": 2}
_OPSYM = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "=": "="}

# Chinese headers of the written tables.
HEADERS_ZH = {
    "level": "层级", "area_id": "区域编号", "area_name": "区域名称", "code": "指标代码", "indicator_code": "指标代码",
    "name_zh": "指标名称", "dimension": "维度", "unit": "单位", "value": "现状值", "reference": "参考值",
    "judgement": "评价", "gap": "差距", "margin": "超出幅度", "strength_id": "优势编号", "problem_id": "问题编号",
    "problem_class": "问题类别", "affected_population": "影响人口(人)", "suggestion": "整改建议",
    "department": "责任部门", "rule_id": "分类规则", "reason": "分类依据", "status": "状态", "first_seen": "首次发现",
    "last_seen": "最近出现", "history": "历年记录", "seq": "序号", "point_id": "点位编号",
    "point_count": "问题点位数", "assessed_count": "评估数", "points": "问题点位编号", "point_names": "问题点位",
    "reference_op": "比较", "reference_value": "参考值(数值)", "reference_source": "参考值来源",
    "gap_share": "差距比例", "description": "问题描述", "points_new": "新增点位", "points_persisting": "持续点位",
    "points_resolved": "已整改点位",
}
LEVEL_ZH = {"unit": "社区体检单元", "town": "街镇", "district": "区"}
SHEETS_ZH = {"indicator_table": "一表(指标评价表)", "strengths": "优势清单", "problems": "问题清单",
             "problem_points": "问题点位", "suggestions": "整改建议清单"}


# --------------------------------------------------------------------------- judgement

def _ref_text(op: str, value: float) -> str:
    if not op or not np.isfinite(value):
        return ""
    return f"{_OPSYM.get(op, op)}{value:g}"


_PAREN = re.compile(r"\((.+)\)\s*$")


def reference_sources(catalogue: pd.DataFrame) -> pd.Series:
    """参考值来源: where each indicator's reference value comes from, by code.

    * ``研究设定 ([indicators] coverage_reference)`` / ``研究设定 ([indicators.reference])``:
      the study set it in its study.toml;
    * the catalogue's ``reference_source`` when it has one (indicator editions);
    * otherwise the citation in the reference text (``>80% (GB 55014-2021 cl.2.1.3)`` →
      ``GB 55014-2021 cl.2.1.3``) or the indicator's ``source``, with its ``confidence``;
      a 0 on a count of deficiencies (the catalogue's "implied ideal", or no citation) is
      ``隐含理想值 (缺陷计数为0, 非公开目标)``
      (NOTES: the implied ideal, not a published target).

    Empty for indicators without a reference.
    """
    cat = catalogue
    n = len(cat)
    col = (lambda c: cat[c].fillna("").astype(str).to_numpy() if c in cat.columns else np.full(n, "", dtype=object))
    op, origin, text = col("reference_op"), col("origin"), col("reference_text")
    src, conf, own = col("source"), col("confidence"), col("reference_source")
    val = cat["reference_value"].to_numpy(dtype=float) if "reference_value" in cat.columns else np.full(n, np.nan)
    out = []
    for i in range(n):
        if not op[i]:
            out.append("")
        elif "+override" in origin[i]:
            out.append("研究设定 ([indicators.reference])")
        elif "+coverage" in origin[i]:
            out.append("研究设定 ([indicators] coverage_reference)")
        elif own[i].startswith("implied"):
            out.append("隐含理想值 (缺陷计数为0, 非公开目标)" if val[i] == 0 else "隐含理想值 (非公开目标)")
        elif own[i] and not own[i].startswith("study override"):
            out.append(own[i])
        elif (m := _PAREN.search(text[i])) is not None:
            out.append("; ".join(x for x in (m.group(1), conf[i]) if x))
        elif val[i] == 0:
            out.append("隐含理想值 (缺陷计数为0, 非公开目标)")
        else:
            out.append("; ".join(x for x in (src[i], conf[i]) if x))
    return pd.Series(out, index=cat["code"].to_numpy(), dtype=object)


def judge(values: pd.DataFrame, catalogue: pd.DataFrame) -> pd.DataFrame:
    """Judge each value against its reference.

    Parameters
    ----------
    values : DataFrame
        Long table ``level, area_id, code, value``.
    catalogue : DataFrame
        :func:`geotijian.indicators.indicator_catalogue` (``reference_op``,
        ``reference_value``, ``direction`` ...).

    Returns
    -------
    DataFrame
        ``values`` with ``name_zh, dimension, unit, direction, reference, reference_op,
        reference_value, reference_source, judgement, gap`` (``reference_source``:
        :func:`reference_sources`). ``gap`` is the shortfall in the indicator's unit,
        positive when the value falls short (reference − value when higher is better,
        value − reference when lower is better), negative = margin beyond the reference.
        ``judgement``: ``meets`` / ``falls_short`` / ``no_reference`` / ``no_value``.

    Raises
    ------
    LayerError
        For a code that is not in the catalogue.
    """
    for col in ("level", "area_id", "code", "value"):
        if col not in values.columns:
            raise LayerError("indicator values", f"missing column {col!r}", fix="pass level, area_id, code, value")
    cat = catalogue.set_index("code")
    unknown = ~values["code"].isin(cat.index)
    if unknown.any():
        i = int(np.flatnonzero(unknown.to_numpy())[0])
        raise LayerError("indicator values", f"indicator code {values['code'].iloc[i]!r} is not in the catalogue",
                         feature=i, count=int(unknown.sum()),
                         fix="add it as a 特色指标 ([indicators] custom) or correct the code")
    out = values[["level", "area_id", "code", "value"]].copy()
    c = cat.reindex(out["code"])
    for col in ("name_zh", "dimension", "unit", "direction", "reference_op", "reference_value"):
        out[col] = c[col].to_numpy()
    v = pd.to_numeric(out["value"], errors="coerce").to_numpy(dtype=float)
    ref = out["reference_value"].to_numpy(dtype=float)
    op = out["reference_op"].fillna("").astype(str).to_numpy()
    with np.errstate(invalid="ignore"):
        meets = np.select([op == ">", op == ">=", op == "<", op == "<=", op == "="],
                          [v > ref, v >= ref - 1e-9, v < ref, v <= ref + 1e-9, np.isclose(v, ref)], False)
    has_ref = (op != "") & np.isfinite(ref)
    lower = (out["direction"].to_numpy() == "lower_better") | np.isin(op, ["<", "<="])
    gap = np.where(lower, v - ref, ref - v)
    out["judgement"] = np.where(~has_ref, "no_reference", np.where(np.isnan(v), "no_value",
                                                                   np.where(meets, "meets", "falls_short")))
    out["gap"] = np.where(has_ref & ~np.isnan(v), gap, np.nan)
    out["reference"] = [_ref_text(o, r) for o, r in zip(op, ref, strict=True)]
    out["reference_source"] = reference_sources(catalogue).reindex(out["code"]).to_numpy()
    return out


def _area_frame(areas: gpd.GeoDataFrame | None, district_id: str, district_name: str | None) -> gpd.GeoDataFrame | None:
    """unit / town / district rows: level, area_id, area_name, population, geometry."""
    if areas is None:
        return None
    u = areas.copy()
    u["unit_id"] = u["unit_id"].astype(str)
    if "town_code" not in u.columns:
        u["town_code"] = "town"
    u["town_code"] = u["town_code"].astype(str)
    pop = pd.to_numeric(u["population"], errors="coerce") if "population" in u.columns else \
        pd.Series(np.nan, index=u.index)
    name = u["name"].astype(str) if "name" in u.columns else u["unit_id"]
    rows = [pd.DataFrame({"level": "unit", "area_id": u["unit_id"], "area_name": name.to_numpy(),
                          "population": pop.to_numpy(), "geometry": u.geometry.values})]
    tnames = u.groupby("town_code")["town_name"].first() if "town_name" in u.columns else None
    geoms = u.geometry.values
    towns = sorted(u["town_code"].unique())
    tgeom = [shapely.union_all(geoms[(u["town_code"] == t).to_numpy()]) for t in towns]
    rows.append(pd.DataFrame({"level": "town", "area_id": towns,
                              "area_name": [str(tnames[t]) if tnames is not None else t for t in towns],
                              "population": [float(pop[(u["town_code"] == t).to_numpy()].sum()) for t in towns],
                              "geometry": tgeom}))
    rows.append(pd.DataFrame({"level": ["district"], "area_id": [district_id],
                              "area_name": [district_name or district_id], "population": [float(pop.sum())],
                              "geometry": [shapely.union_all(geoms)]}))
    return gpd.GeoDataFrame(pd.concat(rows, ignore_index=True), geometry="geometry", crs=areas.crs)


def _sort(df: pd.DataFrame, id_cols: list[str]) -> pd.DataFrame:
    return df.sort_values(id_cols, kind="stable").reset_index(drop=True)


def indicator_table(values: pd.DataFrame, catalogue: pd.DataFrame, *, areas: gpd.GeoDataFrame | None = None,
                    district_id: str = "district", district_name: str | None = None) -> pd.DataFrame:
    """一表: every indicator × area with value, reference and judgement.

    Returns
    -------
    DataFrame
        :data:`TABLE_COLUMNS` (``model.indicator_table`` contract), sorted by level (unit,
        town, district), area and code. ``area_name`` comes from ``areas`` (unit ``name`` or
        its ID, ``town_name``, ``district_name``).
    """
    j = judge(values, catalogue)
    return _named_table(j, _area_frame(areas, district_id, district_name))


def _named_table(j: pd.DataFrame, af: gpd.GeoDataFrame | None) -> pd.DataFrame:
    """:func:`indicator_table` of the judged values ``j`` (:func:`judge`), named and sorted
    with the areas' frame (:func:`_area_frame`)."""
    if af is not None:
        names = af.set_index(["level", "area_id"])["area_name"]
        j["area_name"] = _lookup(names, [j["level"], j["area_id"]], default=j["area_id"].to_numpy())
    else:
        j["area_name"] = j["area_id"]
    j["_o"] = j["level"].map(LEVELS).fillna(9)
    return _sort(j, ["_o", "area_id", "code"])[TABLE_COLUMNS]


def _lookup(series: pd.Series, keys: list, *, default: Any) -> list:
    """``[series.get(key, default) for key in zip(*keys)]`` in one index lookup (a list, as
    the loop gave; ``default`` a scalar or an array of one default per key)."""
    n = len(keys[0])
    dflt = np.broadcast_to(np.asarray(default, dtype=object), (n,))
    if not series.index.is_unique:  # .get gives a Series for a repeated key: keep the loop
        return [series.get(k, d) for k, d in zip(zip(*keys, strict=True), dflt, strict=True)]
    idx = pd.MultiIndex.from_arrays(keys) if len(keys) > 1 else pd.Index(keys[0])
    pos = series.index.get_indexer(idx)
    vals = series.to_numpy(dtype=object)
    return np.where(pos >= 0, vals[pos], dflt).tolist()


# --------------------------------------------------------------------------- rules and templates

def _read_any(source: Any, key: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, Mapping):
        return pd.DataFrame([{"rule_id": k, **v} for k, v in source.items()])
    if isinstance(source, list):
        return pd.DataFrame(source)
    p = Path(source)
    if not p.exists():
        raise ConfigError(key, f"file not found: {p}", "check the path (relative to the study.toml)")
    if p.suffix.lower() == ".toml":
        import tomllib

        with p.open("rb") as f:
            raw = tomllib.load(f)
        raw = raw.get("rules", raw)
        return pd.DataFrame([{"rule_id": k, **v} for k, v in raw.items()])
    return read_table(p, f"rules ({p.name})", dtype=object)


def rule_table(overrides: Any = None) -> pd.DataFrame:
    """The problem-class rule table, with a study's overrides applied.

    Rules are tried in ``order``; the first that matches a problem gives its class. A rule
    matches when the indicator code matches one of ``codes`` (``;``-separated shell
    patterns, empty = any), its dimension is in ``dimensions`` (empty = any) and its
    ``condition`` holds:

    ``always``; ``satisfaction_below`` (survey mean score 1-5 of the problem's dimension, or
    of the rule's dimensions, in the problem's area < ``threshold``);
    ``complaint_rate_above`` (hotline complaints of ``category`` per 1,000 residents in
    the area > ``threshold``); ``complaint_ratio_above`` (that rate ÷ the district's rate >
    ``threshold``); ``gap_share_above`` (gap ÷ |reference| > ``threshold``).

    Parameters
    ----------
    overrides : DataFrame, list of dict, dict ``{rule_id: {...}}``, CSV or TOML path
        Rows whose ``rule_id`` exists replace the packaged rule (only the given fields);
        new IDs are added; ``enabled = false`` removes a rule.

    Raises
    ------
    ConfigError
        Naming the rule: unknown class or condition, missing or non-numeric threshold.
    """
    rules = pd.read_csv(data.path("rules.csv"), dtype=object, keep_default_na=False)
    if overrides is not None:
        ov = _read_any(overrides, "assess.rules")
        if "rule_id" not in ov.columns:
            raise ConfigError("assess.rules", "override rows need a rule_id", "add rule_id to each row")
        rules = rules.set_index("rule_id")
        for rec in ov.to_dict("records"):
            rid = str(rec.pop("rule_id"))
            enabled = rec.pop("enabled", True)
            if str(enabled).strip().lower() in ("false", "0", "no"):
                rules = rules.drop(index=rid, errors="ignore")
                continue
            unknown = set(rec) - set(RULE_COLUMNS)
            if unknown:
                raise ConfigError(f"assess.rules.{rid}.{sorted(unknown)[0]}", "unknown field",
                                  f"fields: {', '.join(RULE_COLUMNS[1:])}, enabled")
            if rid not in rules.index:
                rules.loc[rid] = ""
            for k, v in rec.items():
                if v is None or (isinstance(v, float) and np.isnan(v)):
                    continue
                rules.at[rid, k] = ";".join(v) if isinstance(v, (list, tuple)) else str(v)
        rules = rules.reset_index()
    for rec in rules.to_dict("records"):
        key = f"assess.rules.{rec['rule_id']}"
        if rec["problem_class"] not in PROBLEM_CLASSES:
            raise ConfigError(key, f"problem class {rec['problem_class']!r} is unknown",
                              f"use one of {', '.join(PROBLEM_CLASSES)}")
        cond = rec["condition"] or "always"
        if cond not in RULE_CONDITIONS:
            raise ConfigError(key, f"condition {cond!r} is unknown", f"use one of {', '.join(RULE_CONDITIONS)}")
        if cond != "always":
            try:
                float(rec["threshold"])
            except (TypeError, ValueError):
                raise ConfigError(key, f"condition {cond} needs a numeric threshold, got {rec['threshold']!r}",
                                  "set threshold = <number>") from None
        try:
            float(rec["order"])
        except (TypeError, ValueError):
            raise ConfigError(key, f"order {rec['order']!r} is not a number", "set order = <number>") from None
    rules["condition"] = rules["condition"].replace("", "always")
    rules["order"] = rules["order"].astype(float)
    rules["threshold"] = pd.to_numeric(rules["threshold"], errors="coerce")
    return rules[RULE_COLUMNS].sort_values(["order", "rule_id"], kind="stable").reset_index(drop=True)


_FIELDS = ("area", "area_id", "name", "facility", "value", "reference", "gap", "unit", "affected", "walk")


def suggestion_templates(overrides: Any = None) -> pd.DataFrame:
    """Suggestion templates per indicator (packaged ``suggestions.csv`` + overrides).

    Columns ``pattern`` (shell pattern on the code; the first match by ``order`` wins),
    ``order``, ``department``, ``template_zh`` with fields {area}, {area_id}, {name},
    {facility}, {value}, {reference}, {gap}, {unit}, {affected} (rounded, e.g. 2,300),
    {walk} (metres). Overrides replace the rows of the same pattern.
    """
    t = pd.read_csv(data.path("suggestions.csv"), dtype=object, keep_default_na=False)
    if overrides is not None:
        ov = _read_any(overrides, "assess.suggestions") if not isinstance(overrides, Mapping) else \
            pd.DataFrame([{"pattern": k, **(v if isinstance(v, Mapping) else {"template_zh": v})}
                          for k, v in overrides.items()])
        if "pattern" not in ov.columns or "template_zh" not in ov.columns:
            raise ConfigError("assess.suggestions", "rows need pattern and template_zh",
                              "e.g. cov_kindergarten = \"在{area}新增幼儿园...\"")
        ov = ov.fillna("")
        if "order" not in ov.columns:
            ov["order"] = "5"
        if "department" not in ov.columns:
            ov["department"] = ""
        t = pd.concat([t[~t["pattern"].isin(ov["pattern"])], ov[["pattern", "order", "department", "template_zh"]]],
                      ignore_index=True)
    dummy = dict.fromkeys(_FIELDS, "x")
    for rec in t.to_dict("records"):
        try:
            rec["template_zh"].format_map(dummy)
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"assess.suggestions.{rec['pattern']}", f"template has an unknown field {exc}",
                              f"use only {{{'}, {'.join(_FIELDS)}}}") from None
    t["order"] = pd.to_numeric(t["order"], errors="coerce").fillna(500.0)
    return t.sort_values(["order", "pattern"], kind="stable").reset_index(drop=True)


def _match(codes: pd.Series, patterns: str) -> np.ndarray:
    pats = [p.strip() for p in str(patterns).split(";") if p.strip()]
    if not pats:
        return np.ones(len(codes), dtype=bool)
    rx = "|".join(f"(?:{translate(p)})" for p in pats)
    return codes.str.match(rx).to_numpy(dtype=bool)


def _round_people(n: float) -> str:
    if not np.isfinite(n):
        return "—"
    n = float(n)
    step = 100 if n >= 1000 else (10 if n >= 100 else 1)
    return f"{int(round(n / step) * step):,}"


def _fmt(v: Any) -> str:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return "—"
    return f"{float(v):.3g}" if abs(float(v)) < 100 else f"{float(v):,.0f}"


_COVERAGE_PREFIXES = ("cov_", "t_bus_stop_coverage", "g_bus_stop_300_coverage", "t_metro_coverage",
                      "d_15min_circle_attainment", "u_park_radius_coverage")


def classify_problems(
    table: pd.DataFrame,
    *,
    catalogue: pd.DataFrame,
    areas: gpd.GeoDataFrame | None = None,
    rules: Any = None,
    templates: Any = None,
    satisfaction: pd.DataFrame | None = None,
    complaints: pd.DataFrame | None = None,
    district_id: str = "district",
    district_name: str | None = None,
) -> pd.DataFrame:
    """Problem points (问题点位): every ``falls_short`` row, classed and with a suggestion.

    :func:`build_tables` groups them into problems (one per indicator and level).

    Parameters
    ----------
    table : DataFrame
        :func:`indicator_table` (or :func:`judge`) output; raw values (``level, area_id,
        code, value``) are judged first.
    catalogue : DataFrame
        The study's indicator catalogue.
    areas : GeoDataFrame, optional
        The units (``unit_id, town_code, town_name, population, geometry``): residents and
        geometry of each unit, town and district. Without it residents are unknown (NaN)
        and the result has no geometry.
    rules, templates : optional
        Overrides of the rule table (:func:`rule_table`) and templates
        (:func:`suggestion_templates`).
    satisfaction : DataFrame, optional
        ``SurveyResult.satisfaction`` (``level, area_id, dimension, mean_score``).
    complaints : DataFrame, optional
        :func:`geotijian.survey.complaint_rates` output.

    Returns
    -------
    GeoDataFrame or DataFrame
        ``model.POINT_COLUMNS`` (+ ``geometry`` with ``areas``), sorted by point_id:
        ``point_id`` ``<code>@<area_id>``, ``problem_id`` ``<code>@<level>`` (the problem
        it belongs to), ``rule_id`` and ``reason`` of its class. ``affected_population``: for coverage indicators (%, population-weighted) the
        residents *not* covered, residents × (100 − value) / 100 (for park coverage, which
        is by residential land area, this assumes residents spread evenly over residential
        land); for every other indicator all residents of the area.
    """
    tp = suggestion_templates(templates)
    if "judgement" not in table.columns:   # raw values: judge them first
        j = judge(table, catalogue)
        af = _area_frame(areas, district_id, district_name)
        table = _named_table(j, af)
    else:
        af = _area_frame(areas, district_id, district_name)
    return _classify_points(table, catalogue=catalogue, af=af, rules=rules, tp=tp, satisfaction=satisfaction,
                            complaints=complaints, district_id=district_id)


def _classify_points(table: pd.DataFrame, *, catalogue: pd.DataFrame, af: gpd.GeoDataFrame | None, rules: Any,
                     tp: pd.DataFrame, satisfaction: pd.DataFrame | None, complaints: pd.DataFrame | None,
                     district_id: str) -> pd.DataFrame:
    """:func:`classify_problems` of a judged table, with the templates (:func:`suggestion_templates`)
    and the areas' frame (:func:`_area_frame`) made already."""
    p = table[table["judgement"] == "falls_short"].copy().reset_index(drop=True)
    cat = catalogue.set_index("code")
    if "name_zh" not in p.columns:
        p["name_zh"] = cat["name_zh"].reindex(p["code"]).to_numpy()
    for col in ("dimension", "unit"):
        if col not in p.columns:
            p[col] = cat[col].reindex(p["code"]).to_numpy()
    if "area_name" not in p.columns:
        p["area_name"] = p["area_id"]
    p["point_id"] = p["code"].astype(str) + "@" + p["area_id"].astype(str)
    p["problem_id"] = p["code"].astype(str) + "@" + p["level"].astype(str)
    if af is not None:
        key = af.set_index(["level", "area_id"])
        idx = pd.MultiIndex.from_arrays([p["level"], p["area_id"]])
        pop = key["population"].reindex(idx).to_numpy(dtype=float)
        geom = key.geometry.reindex(idx).values
    else:
        pop = np.full(len(p), np.nan)
        geom = None
    v = pd.to_numeric(p["value"], errors="coerce").to_numpy(dtype=float)
    is_cov = p["code"].astype(str).str.startswith(_COVERAGE_PREFIXES).to_numpy()
    affected = np.where(is_cov, pop * np.clip(100.0 - v, 0, 100) / 100.0, pop)
    p["affected_population"] = np.round(affected)
    ref = cat["reference_value"].reindex(p["code"]).to_numpy(dtype=float)
    gap = pd.to_numeric(p["gap"], errors="coerce").to_numpy(dtype=float)

    cls, rid, reason = _apply_rules(p, rule_table(rules), satisfaction=satisfaction, complaints=complaints,
                                    district_id=district_id, ref=ref, gap=gap)
    codes = p["code"].astype(str)

    # ---- suggestions
    suggest = _suggester(tp)
    sugg, dept = [], []
    cols = [p[c].tolist() for c in ("area_name", "area_id", "name_zh", "reference", "unit")]
    for i, (code, area, area_id, name, reference, unit) in enumerate(zip(codes.tolist(), *cols, strict=True)):
        text, d = suggest(code, {
            "area": area, "area_id": area_id, "name": name, "value": v[i], "reference": reference or "—",
            "gap": gap[i], "unit": unit or "", "affected": affected[i]})
        sugg.append(text)
        dept.append(d)
    p["problem_class"] = cls
    p["suggestion"] = sugg
    p["indicator_code"] = p["code"]
    p["reference"] = p["reference"].replace("", None)
    p["rule_id"], p["reason"], p["department"] = rid, reason, dept
    out = p[list(POINT_COLUMNS)].copy()
    if geom is not None:
        out = gpd.GeoDataFrame(out, geometry=np.asarray(geom), crs=af.crs)
    order = np.argsort(out["point_id"].to_numpy().astype(str), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def _apply_rules(p: pd.DataFrame, rl: pd.DataFrame, *, satisfaction: pd.DataFrame | None,
                 complaints: pd.DataFrame | None, district_id: str, ref: np.ndarray,
                 gap: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Class, rule ID and reason of each problem point: the first rule of ``rl`` (in order)
    whose codes, dimensions and condition match. Raises when a point matches none."""
    codes = p["code"].astype(str)
    dims = p["dimension"].astype(str).to_numpy()
    sat_lookup = None
    if satisfaction is not None and len(satisfaction):
        sat_lookup = satisfaction.groupby(["level", "area_id", "dimension"])["mean_score"].mean()
    rate_lookup = None
    if complaints is not None and len(complaints):
        rate_lookup = complaints.set_index(["level", "area_id", "category"])["rate_per_1000"]
    cls = np.full(len(p), "", dtype=object)
    rid = np.full(len(p), "", dtype=object)
    reason = np.full(len(p), "", dtype=object)
    for r in rl.to_dict("records"):
        todo = cls == ""
        if not todo.any():
            break
        m = todo & _match(codes, r["codes"])
        rdims = [d.strip() for d in str(r["dimensions"]).split(";") if d.strip()]
        if rdims:
            m &= np.isin(dims, rdims)
        cond, thr = r["condition"], r["threshold"]
        if cond == "satisfaction_below":
            if sat_lookup is None:
                m &= False
            else:
                # the lowest finite mean score over the wanted dimensions (∞ when none)
                score = np.full(len(p), np.inf)
                rows = np.flatnonzero(m)
                lv, ar = p["level"].to_numpy()[rows], p["area_id"].to_numpy()[rows]
                for d in (rdims or [None]):
                    dd = dims[rows] if d is None else np.full(len(rows), d, dtype=object)
                    s = np.asarray(_lookup(sat_lookup, [lv, ar, dd], default=np.nan), dtype=float)
                    s[~np.isfinite(s)] = np.inf
                    score[rows] = np.minimum(score[rows], s)
                m &= score < thr
        elif cond in ("complaint_rate_above", "complaint_ratio_above"):
            if rate_lookup is None:
                m &= False
            else:
                catg = r["category"] or "全部"
                rate = np.array(_lookup(rate_lookup, [p["level"].to_numpy(), p["area_id"].to_numpy(),
                                                      np.full(len(p), catg, dtype=object)], default=np.nan),
                                dtype=float)
                if cond == "complaint_ratio_above":
                    base = rate_lookup.get(("district", district_id, catg), np.nan)
                    rate = rate / base if base and np.isfinite(base) and base > 0 else np.full(len(p), np.nan)
                with np.errstate(invalid="ignore"):
                    m &= np.nan_to_num(rate, nan=-np.inf) > thr
        elif cond == "gap_share_above":
            with np.errstate(divide="ignore", invalid="ignore"):
                share = np.where(np.abs(ref) > 0, gap / np.abs(ref), np.inf)
            m &= np.nan_to_num(share, nan=-np.inf) > thr
        cls[m] = r["problem_class"]
        rid[m] = r["rule_id"]
        reason[m] = r["reason_zh"]
    if (cls == "").any():
        i = int(np.flatnonzero(cls == "")[0])
        raise ConfigError("assess.rules", f"no rule matches problem {p['point_id'].iat[i]!r}",
                          "keep a catch-all rule (codes empty, condition always), like R99_default")
    return cls, rid, reason


def _suggester(templates: pd.DataFrame) -> Any:
    """``suggest(code, fields) -> (text, department)``: the first template whose pattern
    matches ``code`` filled with ``fields`` (numbers formatted for people, the unit in
    Chinese: ``现状46栋``, not ``现状46栋 buildings``)."""
    fac = pd.read_csv(data.path("facilities.csv"), dtype=str).set_index("code")["name_zh"]
    from .indicators.catalogue import facility_walk_distances

    walk = facility_walk_distances()
    pats = templates.to_dict("records")
    rx = [re.compile(translate(t["pattern"])) for t in pats]
    first: dict[str, int | None] = {}  # code → its template (the first pattern matching it)

    def suggest(code: str, f: Mapping[str, Any]) -> tuple[str, str]:
        ftype = re.sub(r"^(cov_|per1000_|fca_)", "", code)
        fields = {"area": f["area"], "area_id": f["area_id"], "name": f["name"],
                  "facility": fac.get(ftype, f["name"]), "value": _fmt(f["value"]), "reference": f["reference"],
                  "gap": _fmt(f["gap"]), "unit": unit_zh(f["unit"]), "affected": _round_people(f["affected"]),
                  "walk": f"{walk.get(ftype, float('nan')):g}"}
        t = first.get(code, -1)
        if t == -1:
            t = first[code] = next((k for k, r in enumerate(rx) if r.match(code)), None)
        if t is None:
            return f"改善{fields['area']}“{fields['name']}”", ""
        return pats[t]["template_zh"].format_map(fields), pats[t]["department"]

    return suggest


def strengths(table: pd.DataFrame) -> pd.DataFrame:
    """优势清单: every indicator × area that meets its reference, with its margin."""
    s = table[table["judgement"] == "meets"].copy()
    s["strength_id"] = s["code"].astype(str) + "@" + s["area_id"].astype(str)
    s["indicator_code"] = s["code"]
    s["margin"] = 0.0 - pd.to_numeric(s["gap"], errors="coerce")
    if "area_name" not in s.columns:
        s["area_name"] = s["area_id"]
    return _sort(s, ["strength_id"])[STRENGTH_COLUMNS]


def suggestions(problems: pd.DataFrame, points: pd.DataFrame | None = None) -> pd.DataFrame:
    """整改建议清单: one row per problem (:func:`group_problems` output), in its order.

    ``rule_id`` and ``reason`` list the class rules of the problem's points (``points``,
    :func:`classify_problems` output), the most urgent first, ``;``-separated.
    """
    s = pd.DataFrame(problems.drop(columns="geometry", errors="ignore")).copy()
    if points is not None and len(points):
        pt = pd.DataFrame(points.drop(columns="geometry", errors="ignore"))
        rank = pt["problem_class"].map({c: i for i, c in enumerate(PROBLEM_CLASSES)}).fillna(9)
        pt = pt.assign(_r=rank.to_numpy()).sort_values(["problem_id", "_r", "rule_id"], kind="stable")
        uniq = pt.drop_duplicates(["problem_id", "rule_id"])
        s["rule_id"] = s["problem_id"].map(uniq.groupby("problem_id")["rule_id"].agg(";".join)).fillna("")
        s["reason"] = s["problem_id"].map(uniq.groupby("problem_id")["reason"].agg(";".join)).fillna("")
    for col in SUGGESTION_COLUMNS:
        if col not in s.columns:
            s[col] = ""
    return s[SUGGESTION_COLUMNS].reset_index(drop=True)


def build_tables(values: pd.DataFrame, catalogue: pd.DataFrame, *, areas: gpd.GeoDataFrame | None = None,
                 rules: Any = None, templates: Any = None, satisfaction: pd.DataFrame | None = None,
                 complaints: pd.DataFrame | None = None, district_id: str = "district",
                 district_name: str | None = None) -> dict[str, pd.DataFrame]:
    """一表三清单 and the problem points.

    Returns
    -------
    dict
        ``indicator_table`` (一表), ``strengths`` (优势清单), ``problems`` (问题清单: one per
        indicator and level, by severity; module docstring), ``problem_points`` (问题点位:
        one per indicator and area, by point_id) and ``suggestions`` (整改建议清单, one per
        problem). ``problems`` and ``problem_points`` are GeoDataFrames (area geometry)
        when ``areas`` is given.
    """
    j = judge(values, catalogue)
    af = _area_frame(areas, district_id, district_name)  # (town and district unions: made once)
    table = _named_table(j, af)
    tp = suggestion_templates(templates)
    points = _classify_points(table, catalogue=catalogue, af=af, rules=rules, tp=tp, satisfaction=satisfaction,
                              complaints=complaints, district_id=district_id)
    codes = set(points["indicator_code"].astype(str))
    problems = group_problems(points, table, templates=tp, suggest=_suggester(tp), district_id=district_id,
                              district_name=district_name,
                              coverage_codes={c for c in codes if c.startswith(_COVERAGE_PREFIXES)})
    seq = dict(zip(problems["problem_id"], problems["seq"], strict=True))
    order = np.lexsort((points["point_id"].to_numpy().astype(str), points["problem_id"].map(seq).to_numpy()))
    points = points.iloc[order].reset_index(drop=True)
    return {"indicator_table": table, "strengths": strengths(table), "problems": problems,
            "problem_points": points, "suggestions": suggestions(problems, points)}


# --------------------------------------------------------------------------- writers

def _display(df: pd.DataFrame) -> pd.DataFrame:
    d = pd.DataFrame(df.drop(columns="geometry", errors="ignore")).copy()
    # report tables: 2 decimals for measured values, whole persons for residents
    for col in ("value", "reference", "gap"):
        if col in d.columns and pd.api.types.is_float_dtype(d[col]):
            d[col] = d[col].round(2)
    if "affected_population" in d.columns and pd.api.types.is_float_dtype(d["affected_population"]):
        d["affected_population"] = d["affected_population"].round(0).astype("Int64")
    if "judgement" in d.columns:
        d["judgement"] = d["judgement"].map(JUDGEMENTS).fillna(d["judgement"])
    if "level" in d.columns:
        d["level"] = d["level"].map(LEVEL_ZH).fillna(d["level"])
    if "status" in d.columns:
        d["status"] = d["status"].map({"new": "新增", "persisting": "持续", "resolved": "已解决",
                                       "not_compared": "口径变更/无数据,未比较"}).fillna(d["status"])
    return d.rename(columns={c: HEADERS_ZH.get(c, c) for c in d.columns})


def _reference_numbers(tables: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """Per indicator code: unit, reference_op, reference_value (from the indicator table)."""
    t = tables.get("indicator_table")
    cols = ["unit", "reference_op", "reference_value"]
    if t is None or "code" not in t.columns:
        return pd.DataFrame(columns=cols)
    have = [c for c in cols if c in t.columns]
    return pd.DataFrame(t.drop_duplicates("code").set_index("code")[have])


def _for_workbook(df: pd.DataFrame, refs: pd.DataFrame) -> pd.DataFrame:
    """A table as the workbook shows it: the reference as a number with its comparison
    (≥ …) in its own column in place of the reference text, each row's unit of measure."""
    d = pd.DataFrame(df.drop(columns="geometry", errors="ignore")).copy()
    code = d["code"] if "code" in d.columns else d.get("indicator_code")
    if code is not None and len(refs):
        for col in ("unit", "reference_op", "reference_value"):
            if col not in d.columns and col in refs.columns:
                d[col] = code.map(refs[col]).to_numpy()
    if "reference_value" in d.columns and "reference" in d.columns:
        i = list(d.columns).index("reference")
        op = d.pop("reference_op") if "reference_op" in d.columns else pd.Series("", index=d.index)
        val = pd.to_numeric(d.pop("reference_value"), errors="coerce")
        d = d.drop(columns="reference")
        d.insert(i, "reference_op", op.map(lambda o: _OPSYM.get(str(o), "") if pd.notna(o) else "").to_numpy())
        d.insert(i + 1, "reference", val.to_numpy())
    return d


def _md_table(d: pd.DataFrame) -> str:
    # names come from the data: HTML escaped, | and brackets escaped (io.tables.markdown_cell)
    lines = ["| " + " | ".join(markdown_cell(c) for c in d.columns) + " |", "|" + "---|" * len(d.columns)]
    lines += ["| " + " | ".join(markdown_cell(x) for x in row) + " |" for row in d.itertuples(index=False)]
    return "\n".join(lines)


def write_tables(tables: Mapping[str, pd.DataFrame], folder: str | PathLike, *,
                 formats: Iterable[str] = ("xlsx", "csv", "md"), workbook: str = "indicator_table.xlsx",
                 markdown: str = "indicator_table.md", title: str = "一表三清单",
                 markdown_levels: tuple[str, ...] | None = ("district", "town"),
                 markdown_max_rows: int = 500) -> list[Path]:
    """Write the 一表三清单 to ``folder``: Excel, CSV and Markdown, each atomically.

    * Excel: one workbook (``workbook``), one sheet per table (一表(指标评价表), 优势清单,
      问题清单, 整改建议清单), Chinese headers, column widths fitted, header row frozen.
    * CSV: ``<table>.csv`` each, UTF-8 with BOM so Excel opens the Chinese correctly.
    * Markdown: one file with a section per table, for the Word report; a table longer than
      ``markdown_max_rows`` keeps only the rows of ``markdown_levels`` (default district and
      town; ``None`` for every row), with a line saying where the others are (a district's
      indicator table has ~25,000 unit rows: 5 MB of Markdown nobody pastes into Word).

    Text from the data never becomes a spreadsheet formula: formula-like cells (starting
    with = + - @) are quote-prefixed text in Excel and ``'``-prefixed in CSV; Markdown
    cells are HTML-escaped (``geotijian.io.tables``).

    Returns the written paths.
    """
    folder = Path(folder)
    formats = set(formats)
    unknown = formats - {"xlsx", "csv", "md"}
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; use xlsx, csv, md")
    written: list[Path] = []
    shown = {k: _display(v) for k, v in tables.items()}
    if "xlsx" in formats:
        from .workbook import write_workbook

        refs = _reference_numbers(tables)
        sheets = {SHEETS_ZH.get(k, k)[:31]: _display(_for_workbook(v, refs)) for k, v in tables.items()}
        written.append(write_workbook(sheets, folder / workbook, title=title))
    if "csv" in formats:
        for key, d in shown.items():
            written.append(write_csv(d, folder / f"{key}.csv"))
    if "md" in formats:
        parts = [f"# {title}", ""]
        for key, d in shown.items():
            raw = tables[key]
            note = ""
            if markdown_levels is not None and "level" in raw.columns and len(raw) > markdown_max_rows:
                keep = raw["level"].isin(markdown_levels).to_numpy()
                if not keep.all():
                    note = (f"(本表仅列{'、'.join(LEVEL_ZH.get(x, x) for x in markdown_levels)}层级 "
                            f"{int(keep.sum())} 行; 全部 {len(d)} 行(含社区体检单元)见 {workbook} 与 {key}.csv)")
                d = d.loc[keep]
            parts += [f"## {SHEETS_ZH.get(key, key)}", "", _md_table(d) if len(d) else "(无)", ""]
            if note:
                parts += [note, ""]
        written.append(write_text_atomic(folder / markdown, "\n".join(parts)))
    return written
