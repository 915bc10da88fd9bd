"""Grades of the 总体评价 (section 四): per indicator, per dimension and overall.

The grades summarise judgements already made (``indicator_table``); nothing is recomputed.

* **Indicator** (很好 / 较好 / 一般 / 不足, score 4 / 3 / 2 / 1): for one area (the district or a
  town), the first rule of the rule table (packaged ``grade_rules.csv``, tried by ``order``)
  whose conditions hold gives the grade:

  - ``area_meets``: ``yes`` / ``no`` / empty (any): the area's own value meets its reference;
  - ``max_gap_share``: the shortfall ÷ |reference| is at most this (a reference of 0 makes any
    shortfall infinite);
  - ``min_unit_share``: the residents of the area's check-up units that meet the reference,
    as a share of the residents of the units judged, is at least this (holds when the
    indicator has no unit values).

  An indicator without a reference value or without a value is not graded (不评级).
* **Dimension** and **overall** (优 / 良 / 中 / 差): the mean score of the dimension's graded
  indicators, and the mean of the dimension means (each dimension weighs the same, however
  many indicators it has), banded by ``grade_bands.csv`` (the highest band whose
  ``min_score`` the mean reaches).

The grade names follow the Yichang 2025 check-up report; the thresholds are geotijian's own
(no published grading thresholds were found) and say so in their ``source`` column. A study
overrides both tables from ``[report]`` (``grade_rules`` / ``grade_bands``, see
:func:`grade_rules`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ... import data
from ...errors import ConfigError

__all__ = ["INDICATOR_GRADES", "BAND_GRADES", "grade_rules", "grade_bands", "grade_indicators",
           "grade_dimensions", "overall_grade", "reference_number"]

INDICATOR_GRADES = ("很好", "较好", "一般", "不足")
BAND_GRADES = ("优", "良", "中", "差")
RULE_COLUMNS = ["rule_id", "order", "grade", "score", "area_meets", "max_gap_share", "min_unit_share",
                "reason_zh", "source"]
BAND_COLUMNS = ["grade", "min_score", "reason_zh", "source"]
GRADED_COLUMNS = ["code", "name_zh", "dimension", "unit", "value", "reference", "judgement", "gap",
                  "gap_share", "units_judged", "units_short", "unit_share", "grade", "score", "rule_id"]


def _rows(source: Any, key: str, id_field: str) -> list[dict]:
    if isinstance(source, (str, Path)):
        p = Path(source)
        if not p.exists():
            raise ConfigError(key, f"file not found: {p}", "check the path (relative to the study.toml)")
        source = pd.read_csv(p, dtype=object, keep_default_na=False, encoding="utf-8-sig")
        if id_field not in source.columns:
            raise ConfigError(key, f"{p.name} has no column {id_field!r}",
                              f"give a column {id_field} (see the packaged {key.split('.')[-1]}.csv)")
    if isinstance(source, pd.DataFrame):
        return source.to_dict("records")
    if isinstance(source, Mapping):
        return [{id_field: k, **(v if isinstance(v, Mapping) else {"min_score": v})} for k, v in source.items()]
    if isinstance(source, list):
        return [dict(r) for r in source]
    raise ConfigError(key, f"must be a table, got {type(source).__name__}",
                      f"write [{key}.<{id_field}>] tables (see the packaged grade tables)")


def _number(v: Any, key: str, *, allow_empty: bool = True) -> float:
    if v is None or (isinstance(v, str) and v.strip() == "") or (isinstance(v, float) and np.isnan(v)):
        if allow_empty:
            return np.nan
        raise ConfigError(key, "missing", "give a number")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise ConfigError(key, f"{v!r} is not a number", "give a number") from None


def grade_rules(overrides: Any = None) -> pd.DataFrame:
    """The indicator grade rules (packaged ``grade_rules.csv``) with a study's overrides.

    Parameters
    ----------
    overrides : dict ``{rule_id: {field: value}}``, list of dict or DataFrame, optional
        Rows whose ``rule_id`` exists change only the given fields; new IDs are added;
        ``enabled = false`` removes a rule. Fields: ``order, grade, score, area_meets,
        max_gap_share, min_unit_share, reason_zh, source``.

    Raises
    ------
    ConfigError
        Naming ``report.grade_rules.<rule_id>.<field>``: unknown field or grade, a
        non-numeric threshold, ``area_meets`` other than yes/no/empty.
    """
    rules = pd.read_csv(data.path("grade_rules.csv"), dtype=object, keep_default_na=False).set_index("rule_id")
    if overrides is not None:
        for rec in _rows(overrides, "report.grade_rules", "rule_id"):
            rid = str(rec.pop("rule_id", ""))
            key = f"report.grade_rules.{rid}"
            if not rid:
                raise ConfigError("report.grade_rules", "a rule without rule_id", "give each rule a rule_id")
            if str(rec.pop("enabled", True)).strip().lower() in ("false", "0", "no"):
                rules = rules.drop(index=rid, errors="ignore")
                continue
            unknown = sorted(set(rec) - set(RULE_COLUMNS))
            if unknown:
                raise ConfigError(f"{key}.{unknown[0]}", "unknown field", f"fields: {', '.join(RULE_COLUMNS[1:])}, enabled")
            if rid not in rules.index:
                rules.loc[rid] = ""
                rules.loc[rid, "source"] = "study override"
            for k, v in rec.items():
                rules.loc[rid, k] = "" if v is None else str(v)
    rules = rules.reset_index()
    out = []
    for rec in rules.to_dict("records"):
        key = f"report.grade_rules.{rec['rule_id']}"
        if rec["grade"] not in INDICATOR_GRADES:
            raise ConfigError(f"{key}.grade", f"unknown grade {rec['grade']!r}", f"use one of {', '.join(INDICATOR_GRADES)}")
        meets = str(rec["area_meets"]).strip().lower()
        if meets not in ("yes", "no", "", "any"):
            raise ConfigError(f"{key}.area_meets", f"{rec['area_meets']!r} is not yes, no or empty",
                              "yes = the area meets its reference, no = it falls short, empty = either")
        out.append({**rec, "area_meets": "" if meets == "any" else meets,
                    "order": _number(rec["order"], f"{key}.order", allow_empty=False),
                    "score": _number(rec["score"], f"{key}.score", allow_empty=False),
                    "max_gap_share": _number(rec["max_gap_share"], f"{key}.max_gap_share"),
                    "min_unit_share": _number(rec["min_unit_share"], f"{key}.min_unit_share")})
    return pd.DataFrame(out, columns=RULE_COLUMNS).sort_values(["order", "rule_id"], kind="stable").reset_index(drop=True)


def grade_bands(overrides: Any = None) -> pd.DataFrame:
    """The dimension / overall bands (packaged ``grade_bands.csv``) with overrides.

    ``overrides``: ``{grade: min_score}`` or ``{grade: {min_score = ..., reason_zh = ...}}``
    (grades 优 / 良 / 中 / 差). Sorted by ``min_score`` descending; the lowest band should
    start at 0 so that every mean finds one.
    """
    bands = pd.read_csv(data.path("grade_bands.csv"), dtype=object, keep_default_na=False).set_index("grade")
    if overrides is not None:
        for rec in _rows(overrides, "report.grade_bands", "grade"):
            g = str(rec.pop("grade"))
            if g not in BAND_GRADES:
                raise ConfigError(f"report.grade_bands.{g}", "unknown grade", f"use one of {', '.join(BAND_GRADES)}")
            unknown = sorted(set(rec) - set(BAND_COLUMNS))
            if unknown:
                raise ConfigError(f"report.grade_bands.{g}.{unknown[0]}", "unknown field",
                                  "fields: min_score, reason_zh, source")
            for k, v in rec.items():
                bands.loc[g, k] = str(v)
            if "source" not in rec:
                bands.loc[g, "source"] = "study override"
    bands = bands.reset_index()
    bands["min_score"] = [_number(v, f"report.grade_bands.{g}.min_score", allow_empty=False)
                          for g, v in zip(bands["grade"], bands["min_score"], strict=True)]
    return bands[BAND_COLUMNS].sort_values("min_score", ascending=False, kind="stable").reset_index(drop=True)


_NUM = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")


def reference_number(text: Any) -> float:
    """The number of a reference text such as ``"≥100"`` or ``"<=0.5"`` (NaN when none)."""
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return np.nan
    if isinstance(text, (int, float, np.number)):
        return float(text)
    m = _NUM.search(str(text))
    return float(m.group()) if m else np.nan


def _band(score: float, bands: pd.DataFrame) -> str:
    if not np.isfinite(score):
        return "—"
    for g, lo in zip(bands["grade"], bands["min_score"], strict=True):
        if score >= lo - 1e-9:
            return str(g)
    return str(bands["grade"].iloc[-1])


def grade_indicators(table: pd.DataFrame, units: pd.DataFrame | None, *, level: str, area_id: str,
                     rules: pd.DataFrame | None = None) -> pd.DataFrame:
    """Grade every indicator of one area.

    Parameters
    ----------
    table : DataFrame
        ``indicator_table`` (``level, area_id, code, name_zh, dimension, unit, value,
        reference, judgement, gap``).
    units : DataFrame or None
        ``unit_id, town_code, population`` (persons): the units of the area weigh the
        unit share by their residents.
    level, area_id : str
        ``"district"`` and its ID, or ``"town"`` and the town code.
    rules : DataFrame, optional
        :func:`grade_rules` (default: the packaged rules).

    Returns
    -------
    DataFrame
        :data:`GRADED_COLUMNS`, one row per indicator of the area in the table's order;
        ``grade`` is 不评级 (score NaN) without a reference or a value.
    """
    rules = grade_rules() if rules is None else rules
    own = table[(table["level"] == level) & (table["area_id"].astype(str) == str(area_id))].copy()
    ut = table[table["level"] == "unit"]
    if units is not None and len(units):
        u = pd.DataFrame(units)[["unit_id", "town_code", "population"]].astype({"unit_id": str, "town_code": str})
        if level == "town":
            u = u[u["town_code"] == str(area_id)]
        ut = ut[ut["area_id"].astype(str).isin(set(u["unit_id"]))]
        pop = dict(zip(u["unit_id"], pd.to_numeric(u["population"], errors="coerce").fillna(0.0), strict=True))
    else:
        pop = {}
    ut = ut[ut["judgement"].isin(["meets", "falls_short"])]
    w = ut["area_id"].astype(str).map(pop).fillna(0.0).to_numpy(float)
    if not pop:
        w = np.ones(len(ut))
    g = pd.DataFrame({"code": ut["code"].to_numpy(), "w": w, "meets": (ut["judgement"] == "meets").to_numpy(),
                      "short": (ut["judgement"] == "falls_short").to_numpy()})
    g["wm"] = g["w"] * g["meets"]
    agg = g.groupby("code").agg(units_judged=("w", "size"), units_short=("short", "sum"), w=("w", "sum"),
                                wm=("wm", "sum"))
    agg["unit_share"] = np.where(agg["w"] > 0, agg["wm"] / agg["w"].where(agg["w"] > 0, 1.0), np.nan)
    own = own.join(agg[["units_judged", "units_short", "unit_share"]], on="code")
    own["units_judged"] = own["units_judged"].fillna(0).astype(int)
    own["units_short"] = own["units_short"].fillna(0).astype(int)
    ref = own["reference"].map(reference_number).to_numpy(float)
    gap = pd.to_numeric(own["gap"], errors="coerce").to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(np.abs(ref) > 0, np.maximum(gap, 0.0) / np.abs(ref), np.where(gap > 0, np.inf, 0.0))
    own["gap_share"] = np.where(own["judgement"].isin(["meets", "falls_short"]), share, np.nan)
    grades, scores, ids = [], [], []
    rule_rows = list(rules.itertuples(index=False))
    for j, gs, us in zip(own["judgement"], own["gap_share"], own["unit_share"], strict=True):
        if j not in ("meets", "falls_short"):
            grades.append("不评级")
            scores.append(np.nan)
            ids.append("")
            continue
        hit = None
        for r in rule_rows:
            if r.area_meets == "yes" and j != "meets":
                continue
            if r.area_meets == "no" and j != "falls_short":
                continue
            if np.isfinite(r.max_gap_share) and not (gs <= r.max_gap_share + 1e-12):
                continue
            if np.isfinite(r.min_unit_share) and np.isfinite(us) and us < r.min_unit_share - 1e-12:
                continue
            hit = r
            break
        if hit is None:
            raise ConfigError("report.grade_rules", f"no rule grades indicator with judgement {j!r}",
                              "keep a last rule without conditions (area_meets, max_gap_share and "
                              "min_unit_share empty)")
        grades.append(hit.grade)
        scores.append(float(hit.score))
        ids.append(hit.rule_id)
    own["grade"], own["score"], own["rule_id"] = grades, scores, ids
    return own[GRADED_COLUMNS].reset_index(drop=True)


def grade_dimensions(graded: pd.DataFrame, *, dimensions: tuple[str, ...] | list[str],
                     bands: pd.DataFrame | None = None) -> pd.DataFrame:
    """Dimension grades: ``dimension, indicators, graded, 很好, 较好, 一般, 不足,
    mean_score, grade`` in the given dimension order (dimensions without a graded
    indicator get grade ``—``)."""
    bands = grade_bands() if bands is None else bands
    dim = graded["dimension"].to_numpy(object)
    score = graded["score"].to_numpy(float)
    grade = graded["grade"].to_numpy(object)
    rated = np.isfinite(score)
    rows = []
    for d in dimensions:
        sub = dim == d
        ok = sub & rated
        mean = float(score[ok].mean()) if ok.any() else np.nan   # (the numpy sum pandas takes too)
        rows.append({"dimension": d, "indicators": int(sub.sum()), "graded": int(ok.sum()),
                     **{g: int((grade[ok] == g).sum()) for g in INDICATOR_GRADES},
                     "mean_score": mean, "grade": _band(mean, bands)})
    return pd.DataFrame(rows)


def overall_grade(dims: pd.DataFrame, *, bands: pd.DataFrame | None = None) -> tuple[str, float]:
    """The overall grade and its score: the mean of the dimension means."""
    bands = grade_bands() if bands is None else bands
    s = dims["mean_score"].to_numpy(float)
    s = s[np.isfinite(s)]
    score = float(s.mean()) if len(s) else np.nan
    return _band(score, bands), score
