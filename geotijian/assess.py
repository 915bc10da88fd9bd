"""Judgement, problem classes, the 一表三清单 and the problem ledger (问题台账).

* :func:`judge`: each value against its reference → ``meets`` / ``falls_short`` /
  ``no_reference`` (``no_value`` where the value itself is missing), with the gap.
* :func:`classify_problems`: every shortfall becomes a problem ``<code>@<area_id>`` sorted
  into 限时解决 / 尽力解决 / 长期谋划 by a rule table (packaged ``rules.csv``, overridable),
  with the affected residents and a suggestion from a template per indicator
  (packaged ``suggestions.csv``).
* :func:`build_tables` / :func:`write_tables`: 一表 (indicator table) and 三清单 (strengths,
  problems, suggestions) to Excel, CSV (UTF-8 with BOM) and Markdown, atomically.
* :func:`update_ledger`, :func:`read_ledger`, :func:`write_ledger`: the year-over-year ledger.
  Given the study's catalogue, the ledger records each problem's definition fingerprint,
  refuses to match problems of one code defined differently in the two years, and marks
  last year's open problems ``not_compared`` when this year's edition no longer holds
  their indicator or this year has no value for it (never ``resolved``).

Problem classes and 一表三清单 follow the Jiading 2024 check-up work plan (S41, NOTES (d) 6).
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
from .io.atomic import atomic_path, normalise_zip, write_text_atomic
from .io.tables import _risky_mask, is_formula_like, markdown_cell, undo_csv_prefix, write_csv
from .io.text import read_table, read_text_table
from .model import LEDGER_COLUMNS, PROBLEM_CLASSES, PROBLEM_COLUMNS

__all__ = [
    "JUDGEMENTS", "TABLE_COLUMNS", "STRENGTH_COLUMNS", "SUGGESTION_COLUMNS", "RULE_CONDITIONS",
    "judge", "indicator_table", "rule_table", "suggestion_templates", "classify_problems", "strengths",
    "suggestions", "build_tables", "write_tables", "update_ledger", "read_ledger", "write_ledger",
]

#: Judgement values (Chinese labels used by the writers in brackets).
JUDGEMENTS = {"meets": "达标", "falls_short": "未达标", "no_reference": "无参考值", "no_value": "无数据"}
TABLE_COLUMNS = ["level", "area_id", "area_name", "code", "name_zh", "dimension", "unit", "value", "reference",
                 "judgement", "gap"]
STRENGTH_COLUMNS = ["strength_id", "indicator_code", "name_zh", "dimension", "level", "area_id", "area_name",
                    "value", "reference", "margin"]
SUGGESTION_COLUMNS = ["problem_id", "problem_class", "indicator_code", "name_zh", "level", "area_id", "area_name",
                      "affected_population", "department", "suggestion", "rule_id", "reason"]
RULE_COLUMNS = ["rule_id", "order", "problem_class", "codes", "dimensions", "condition", "threshold", "category",
                "reason_zh", "source"]
RULE_CONDITIONS = ("always", "satisfaction_below", "complaint_rate_above", "complaint_ratio_above",
                   "gap_share_above")
STATUSES = ("new", "persisting", "resolved", "not_compared")
LEVELS = {"unit": 0, "town": 1, "district": 2}
_OPSYM = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "=": "="}

# Chinese headers of the written tables.
HEADERS_ZH = {
    "level": "层级", "area_id": "区域编号", "area_name": "区域名称", "code": "指标代码", "indicator_code": "指标代码",
    "name_zh": "指标名称", "dimension": "维度", "unit": "单位", "value": "现状值", "reference": "参考值",
    "judgement": "评价", "gap": "差距", "margin": "超出幅度", "strength_id": "优势编号", "problem_id": "问题编号",
    "problem_class": "问题类别", "affected_population": "影响人口(人)", "suggestion": "整改建议",
    "department": "责任部门", "rule_id": "分类规则", "reason": "分类依据", "status": "状态", "first_seen": "首次发现",
    "last_seen": "最近出现", "history": "历年记录",
}
LEVEL_ZH = {"unit": "社区体检单元", "town": "街镇", "district": "区"}
SHEETS_ZH = {"indicator_table": "一表(指标评价表)", "strengths": "优势清单", "problems": "问题清单",
             "suggestions": "整改建议清单"}


# --------------------------------------------------------------------------- judgement

def _ref_text(op: str, value: float) -> str:
    if not op or not np.isfinite(value):
        return ""
    return f"{_OPSYM.get(op, op)}{value:g}"


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
        reference_value, judgement, gap``. ``gap`` is the shortfall in the indicator's unit,
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
    af = _area_frame(areas, district_id, district_name)
    if af is not None:
        names = af.set_index(["level", "area_id"])["area_name"]
        j["area_name"] = [names.get((lv, a), a) for lv, a in zip(j["level"], j["area_id"], strict=True)]
    else:
        j["area_name"] = j["area_id"]
    j["_o"] = j["level"].map(LEVELS).fillna(9)
    return _sort(j, ["_o", "area_id", "code"])[TABLE_COLUMNS]


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
    full: bool = False,
) -> pd.DataFrame:
    """Problems (问题清单): every ``falls_short`` row, classed and with a suggestion.

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
    full : bool
        Also return ``rule_id, reason, department`` (used by :func:`build_tables`).

    Returns
    -------
    GeoDataFrame or DataFrame
        ``model.PROBLEM_COLUMNS`` (+ ``geometry`` with ``areas``), sorted by problem_id.
        ``affected_population``: for coverage indicators (%, population-weighted) the
        residents *not* covered, residents × (100 − value) / 100 (for park coverage, which
        is by residential land area, this assumes residents spread evenly over residential
        land); for every other indicator all residents of the area.
    """
    rl = rule_table(rules)
    tp = suggestion_templates(templates)
    if "judgement" not in table.columns:   # raw values: judge them first
        table = indicator_table(table, catalogue, areas=areas, district_id=district_id, district_name=district_name)
    p = table[table["judgement"] == "falls_short"].copy().reset_index(drop=True)
    cat = catalogue.set_index("code")
    if "name_zh" not in p.columns:
        p["name_zh"] = cat["name_zh"].reindex(p["code"]).to_numpy()
    for col in ("dimension", "unit"):
        if col not in p.columns:
            p[col] = cat[col].reindex(p["code"]).to_numpy()
    if "area_name" not in p.columns:
        p["area_name"] = p["area_id"]
    p["problem_id"] = p["code"].astype(str) + "@" + p["area_id"].astype(str)
    af = _area_frame(areas, district_id, district_name)
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

    # ---- rule conditions (vectorised per rule)
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
                score = np.full(len(p), np.inf)
                for i in np.flatnonzero(m):
                    wanted = rdims or [dims[i]]
                    s = [sat_lookup.get((p["level"].iat[i], p["area_id"].iat[i], d), np.nan) for d in wanted]
                    s = [x for x in s if np.isfinite(x)]
                    score[i] = min(s) if s else np.inf
                m &= score < thr
        elif cond in ("complaint_rate_above", "complaint_ratio_above"):
            if rate_lookup is None:
                m &= False
            else:
                catg = r["category"] or "全部"
                rate = np.array([rate_lookup.get((lv, a, catg), np.nan) for lv, a in
                                 zip(p["level"], p["area_id"], strict=True)], dtype=float)
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
        raise ConfigError("assess.rules", f"no rule matches problem {p['problem_id'].iat[i]!r}",
                          "keep a catch-all rule (codes empty, condition always), like R99_default")

    # ---- suggestions
    fac = pd.read_csv(data.path("facilities.csv"), dtype=str).set_index("code")
    from .indicators.catalogue import facility_walk_distances

    walk = facility_walk_distances()
    sugg, dept = [], []
    pats = tp.to_dict("records")
    rx = [re.compile(translate(t["pattern"])) for t in pats]
    for i in range(len(p)):
        code = codes.iat[i]
        t = next(k for k, r in enumerate(rx) if r.match(code)) if any(r.match(code) for r in rx) else None
        ftype = re.sub(r"^(cov_|per1000_|fca_)", "", code)
        fields = {
            "area": p["area_name"].iat[i] if p["area_name"].iat[i] != p["area_id"].iat[i] else p["area_id"].iat[i],
            "area_id": p["area_id"].iat[i], "name": p["name_zh"].iat[i],
            "facility": fac["name_zh"].get(ftype, p["name_zh"].iat[i]), "value": _fmt(v[i]),
            "reference": p["reference"].iat[i] or "—", "gap": _fmt(gap[i]), "unit": p["unit"].iat[i] or "",
            "affected": _round_people(affected[i]), "walk": f"{walk.get(ftype, float('nan')):g}",
        }
        if t is None:
            sugg.append(f"改善{fields['area']}“{fields['name']}”")
            dept.append("")
        else:
            sugg.append(pats[t]["template_zh"].format_map(fields))
            dept.append(pats[t]["department"])
    p["problem_class"] = cls
    p["suggestion"] = sugg
    p["indicator_code"] = p["code"]
    p["reference"] = p["reference"].replace("", None)
    cols = list(PROBLEM_COLUMNS)
    if full:
        p["rule_id"], p["reason"], p["department"] = rid, reason, dept
        cols += ["rule_id", "reason", "department", "area_name"]
    out = p[cols].copy()
    if geom is not None:
        out = gpd.GeoDataFrame(out, geometry=np.asarray(geom), crs=areas.crs)
    order = np.argsort(out["problem_id"].to_numpy().astype(str), kind="stable")
    return out.iloc[order].reset_index(drop=True)


def strengths(table: pd.DataFrame) -> pd.DataFrame:
    """优势清单: every indicator × area that meets its reference, with its margin."""
    s = table[table["judgement"] == "meets"].copy()
    s["strength_id"] = s["code"].astype(str) + "@" + s["area_id"].astype(str)
    s["indicator_code"] = s["code"]
    s["margin"] = 0.0 - pd.to_numeric(s["gap"], errors="coerce")
    if "area_name" not in s.columns:
        s["area_name"] = s["area_id"]
    return _sort(s, ["strength_id"])[STRENGTH_COLUMNS]


def suggestions(problems_full: pd.DataFrame) -> pd.DataFrame:
    """整改建议清单 from ``classify_problems(..., full=True)``."""
    s = pd.DataFrame(problems_full.drop(columns="geometry", errors="ignore"))
    for col in ("rule_id", "reason", "department", "area_name"):
        if col not in s.columns:
            s[col] = ""
    return _sort(s, ["problem_id"])[SUGGESTION_COLUMNS]


def build_tables(values: pd.DataFrame, catalogue: pd.DataFrame, *, areas: gpd.GeoDataFrame | None = None,
                 rules: Any = None, templates: Any = None, satisfaction: pd.DataFrame | None = None,
                 complaints: pd.DataFrame | None = None, district_id: str = "district",
                 district_name: str | None = None) -> dict[str, pd.DataFrame]:
    """一表三清单: ``indicator_table``, ``strengths``, ``problems``, ``suggestions``.

    ``problems`` is a GeoDataFrame (area geometry) when ``areas`` is given.
    """
    table = indicator_table(values, catalogue, areas=areas, district_id=district_id, district_name=district_name)
    full = classify_problems(table, catalogue=catalogue, areas=areas, rules=rules, templates=templates,
                             satisfaction=satisfaction, complaints=complaints, district_id=district_id,
                             district_name=district_name, full=True)
    prob_cols = list(PROBLEM_COLUMNS) + (["geometry"] if isinstance(full, gpd.GeoDataFrame) else [])
    problems = full[prob_cols]
    return {"indicator_table": table, "strengths": strengths(table), "problems": problems,
            "suggestions": suggestions(full)}


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


def _xlsx_cell(ws: Any, value: Any, text: bool) -> Any:
    """A write-only cell; ``text``: a formula-like string kept as quote-prefixed text."""
    from openpyxl.cell import WriteOnlyCell

    cell = WriteOnlyCell(ws, value=value)
    if text and isinstance(value, str):
        cell.data_type = "s"
        cell.quotePrefix = True
    return cell


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
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter

    folder = Path(folder)
    formats = set(formats)
    unknown = formats - {"xlsx", "csv", "md"}
    if unknown:
        raise ValueError(f"unknown format(s) {sorted(unknown)}; use xlsx, csv, md")
    written: list[Path] = []
    shown = {k: _display(v) for k, v in tables.items()}
    if "xlsx" in formats:
        # write-only (streamed) workbook: no cell objects kept, ~2x faster on a district's
        # 25,000-row table; formula-like text cells are quote-prefixed text as they are written
        wb = Workbook(write_only=True)
        bold, wrap = Font(bold=True), Alignment(vertical="center", wrap_text=True)
        for key, d in shown.items():
            ws = wb.create_sheet(SHEETS_ZH.get(key, key)[:31])
            ws.freeze_panes = "A2"
            for j, col in enumerate(d.columns, start=1):
                texts = [str(col)] + [str(x) for x in d.iloc[:200, j - 1].tolist()]
                width = max(sum(2 if ord(ch) > 0x2E80 else 1 for ch in t) for t in texts)
                ws.column_dimensions[get_column_letter(j)].width = min(max(width + 2, 6), 60)
            header = []
            for col in d.columns:
                cell = _xlsx_cell(ws, col, is_formula_like(col))
                cell.font, cell.alignment = bold, wrap
                header.append(cell)
            ws.append(header)
            risky = np.column_stack([_risky_mask(d.iloc[:, j]) for j in range(d.shape[1])]) \
                if d.shape[1] else np.zeros((len(d), 0), dtype=bool)
            any_risky = risky.any(axis=1)
            for i, row in enumerate(d.itertuples(index=False)):  # openpyxl takes rows one by one
                vals = [None if (isinstance(x, float) and np.isnan(x)) else
                        (x.item() if isinstance(x, np.generic) else x) for x in row]
                if any_risky[i]:
                    vals = [_xlsx_cell(ws, v, True) if r else v for v, r in zip(vals, risky[i])]
                ws.append(vals)
        path = folder / workbook
        with atomic_path(path) as tmp:
            wb.save(tmp)
            normalise_zip(tmp)  # fixed timestamps: same tables, same bytes
        written.append(path)
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


# --------------------------------------------------------------------------- ledger

def _history_add(history: str, year: int, status: str) -> str:
    h = str(history) if history is not None and str(history) not in ("", "nan", "None") else ""
    entry = f"{year}:{status}"
    return entry if not h else f"{h}; {entry}"


def _empty_ledger() -> pd.DataFrame:
    return pd.DataFrame({c: pd.Series(dtype=object) for c in LEDGER_COLUMNS})


def update_ledger(last_year: pd.DataFrame | None, this_year: pd.DataFrame, *,
                  units_last: gpd.GeoDataFrame | None = None, units_this: gpd.GeoDataFrame | None = None,
                  year: int, min_overlap: float = 0.5, catalogue: pd.DataFrame | None = None,
                  values: pd.DataFrame | None = None) -> pd.DataFrame:
    """Update the problem ledger (问题台账) with this year's problems.

    Parameters
    ----------
    last_year : DataFrame or None
        Last year's ledger (``model.LEDGER_COLUMNS``); ``None`` for the first year.
    this_year : DataFrame
        This year's problems (``problem_id, indicator_code, area_id`` ...).
    units_last, units_this : GeoDataFrame, optional
        Last and this year's units (``unit_id``, geometry). When given, a problem of last
        year matches a problem of this year with the same indicator whose unit covers at
        least ``min_overlap`` (50 %) of the old unit's area (units redrawn, split or
        merged); otherwise, and for town/district problems, by identical ``problem_id``.
    year : int
        This year.
    catalogue : DataFrame, optional
        This year's catalogue (``code, definition``). With it the ledger gets a
        ``definition`` column, a code whose definition differs from last year's ledger is
        refused (``LayerError``: a changed definition needs a new code), and last year's
        open problems whose indicator is not in the catalogue become ``not_compared``.
    values : DataFrame, optional
        This year's indicator values (``level, area_id, code, value``): an open problem
        of last year whose indicator has no value this year in its area (or the areas
        that replaced it) becomes ``not_compared``, not ``resolved`` (e.g. a fill-in
        workbook not returned yet).

    Returns
    -------
    DataFrame
        ``LEDGER_COLUMNS`` (+ ``definition`` with a catalogue, + ``geometry`` when this
        year's problems carry one): each of
        this year's problems ``persisting`` (matched; keeps ``first_seen``, history gets
        ``<year>:persisting``, and ``formerly <old ids>`` when its ID changed; merged units
        keep the earliest first_seen) or ``new``;
        each open problem of last year without a match ``resolved`` (``last_seen`` stays
        the last year it was seen) or ``not_compared`` (see ``catalogue`` and ``values``);
        problems resolved or not compared in earlier years are carried over unchanged. A problem that comes back after being resolved is ``new`` again, with
        its first_seen and history kept. Sorted by problem_id.
    """
    last = _empty_ledger() if last_year is None else pd.DataFrame(last_year).copy()
    for col in LEDGER_COLUMNS:
        if col not in last.columns:
            raise LayerError("last year's ledger", f"missing column {col!r}", fix="read it with read_ledger()")
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
    cur = pd.DataFrame(this_year).copy()
    for col in ("problem_id", "indicator_code", "area_id"):
        if col not in cur.columns:
            raise LayerError("this year's problems", f"missing column {col!r}", fix="pass classify_problems() output")
    if cur["problem_id"].duplicated().any():
        raise LayerError("this year's problems", "duplicate problem_id",
                         feature_id=cur.loc[cur["problem_id"].duplicated(), "problem_id"].iat[0],
                         fix="one row per indicator and area")
    geom_this = this_year.geometry.values if isinstance(this_year, gpd.GeoDataFrame) else None
    crs = this_year.crs if isinstance(this_year, gpd.GeoDataFrame) else None
    if "geometry" in cur.columns:
        cur = cur.drop(columns="geometry")
    # geometry of last year's problems that are resolved or carried: their own, else last year's unit
    old_geom: dict[str, Any] = {}
    if isinstance(last_year, gpd.GeoDataFrame):
        old_geom = dict(zip(last_year["problem_id"], last_year.geometry.values, strict=True))
    elif units_last is not None:
        ug = dict(zip(units_last["unit_id"].astype(str), units_last.to_crs(crs).geometry.values
                      if crs is not None and units_last.crs != crs else units_last.geometry.values, strict=True))
        old_geom = {pid: ug.get(str(a)) for pid, a in zip(last["problem_id"], last["area_id"], strict=True)}
    last = pd.DataFrame(last.drop(columns="geometry", errors="ignore"))

    # candidate area correspondences old area → new area
    corr: dict[str, set[str]] = {}
    if units_last is not None and units_this is not None:
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
    open_last = last[last["status"].isin(["new", "persisting"])]
    closed_last = last[~last["status"].isin(["new", "persisting"])]
    has_value = None
    if values is not None:
        v = values[pd.to_numeric(values["value"], errors="coerce").notna()]
        has_value = set(zip(v["code"], v["area_id"].astype(str), strict=True))
    cur_key = {(c, a): i for i, (c, a) in enumerate(zip(cur["indicator_code"], cur["area_id"].astype(str),
                                                        strict=True))}
    matched_cur: dict[int, list[pd.Series]] = {}   # several old problems may merge into one
    resolved_rows = []
    for _, row in open_last.sort_values("problem_id").iterrows():
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
            matched_cur.setdefault(hit, []).append(row)
    # earlier-resolved problems that come back: keep their first_seen / history
    closed_by_id = {pid: r for pid, r in zip(closed_last["problem_id"], closed_last.to_dict("records"),
                                             strict=True)}
    out_rows = []
    for i, prow in enumerate(cur.to_dict("records")):
        pid = prow["problem_id"]
        if i in matched_cur:
            olds = sorted(matched_cur[i], key=lambda r: (int(r["first_seen"]), r["problem_id"] != pid,
                                                         r["problem_id"]))
            old = olds[0]   # the longest-standing predecessor (the same ID first on a tie)
            hist = _history_add(old["history"], year, "persisting")
            former = [r["problem_id"] for r in olds if r["problem_id"] != pid]
            if former:
                hist += f" (formerly {', '.join(sorted(former))})"
            rec = {"problem_id": pid, "indicator_code": prow["indicator_code"], "area_id": prow["area_id"],
                   "status": "persisting", "first_seen": int(old["first_seen"]), "last_seen": year, "history": hist}
        elif pid in closed_by_id:
            old = closed_by_id.pop(pid)
            rec = {"problem_id": pid, "indicator_code": prow["indicator_code"], "area_id": prow["area_id"],
                   "status": "new", "first_seen": int(old["first_seen"]), "last_seen": year,
                   "history": _history_add(old["history"], year, "new")}
        else:
            rec = {"problem_id": pid, "indicator_code": prow["indicator_code"], "area_id": prow["area_id"],
                   "status": "new", "first_seen": year, "last_seen": year, "history": f"{year}:new"}
        rec["definition"] = definitions.get(prow["indicator_code"], "")
        if geom_this is not None:
            rec["geometry"] = geom_this[i]
        out_rows.append(rec)
    carried = [dict(r) for r in closed_by_id.values()]
    resolved = [dict(r) for r in resolved_rows]
    if geom_this is not None:
        for r in resolved + carried:
            r["geometry"] = old_geom.get(r["problem_id"])
    rows = out_rows + resolved + carried
    out = pd.DataFrame(rows) if rows else _empty_ledger()
    # a resolved problem with the same ID as a current one: keep the current row only
    out = out.sort_values(["problem_id", "status"], kind="stable")
    out = out[~(out["problem_id"].duplicated(keep=False) & out["status"].isin(["resolved", "not_compared"]))]
    cols = list(LEDGER_COLUMNS)
    if catalogue is not None:
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
    """Read a ledger written by :func:`write_ledger` (CSV or GeoPackage) and check its columns."""
    path = Path(path)
    if not path.exists():
        raise LayerError(f"ledger ({path.name})", f"file not found: {path}", fix="check [ledger] last_year")
    if path.suffix.lower() == ".gpkg":
        led = gpd.read_file(path, layer=layer, engine="pyogrio")
    else:
        led = undo_csv_prefix(read_text_table(path, f"ledger ({path.name})", dtype={
            "problem_id": str, "indicator_code": str, "area_id": str, "status": str, "history": str,
            "definition": str}))
    missing = [c for c in LEDGER_COLUMNS if c not in led.columns]
    if missing:
        raise LayerError(f"ledger ({path.name})", f"missing column(s) {', '.join(missing)}",
                         fix="use a ledger written by geotijian (problem_id, indicator_code, area_id, status, "
                             "first_seen, last_seen, history)")
    bad = ~led["status"].isin(STATUSES)
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise LayerError(f"ledger ({path.name})", f"status {led['status'].iat[i]!r} is unknown", feature=i,
                         feature_id=led["problem_id"].iat[i], fix="use new, persisting or resolved")
    led["history"] = led["history"].fillna("")
    if "definition" in led.columns:
        led["definition"] = led["definition"].fillna("").astype(str)
    return led
