"""更新项目储备库 (the renewal project library) and the 年度实施计划 (annual plan).

The work plan: "街镇及社区层面生成城市更新项目，区分项目轻重缓急，明确具体项目的实施路径和时间
安排", with projects typed 工程类 / 管理类 / 规划研究类. :func:`project_library` turns every
problem of the check-up into one or more projects:

* **type and department** from a rule table by indicator (packaged
  ``data/project_rules.csv``, overridable: :func:`project_rules`): the project types a
  problem calls for, the lead department (区教育局 for kindergartens and schools, 区卫健委
  for clinics and infant care, 区民政局 for elderly care …), partners, and a content
  template per type. The first rule whose ``pattern`` (``;``-separated shell patterns on
  the indicator code) matches wins; a catch-all keeps every problem in the library.
* **priority**: problems ranked by class (限时解决, 尽力解决, 长期谋划), then residents
  affected, then ID; 高 = 限时解决 and the top quarter of 尽力解决 by residents, 中 = the
  other 尽力解决, 低 = 长期谋划.
* **path and timing** from the class, with ``year`` the first plan year: 限时解决 → this
  year; 尽力解决 → within 1-3 years, studies this year, the rest starting in year 1, 2
  or 3 by priority tercile; 长期谋划 → study first (a 规划研究类 project this year, added
  when the rule has none), works in years 2-5.
* **sites** for building projects: a coverage problem of a facility type that was sited
  (:func:`geotijian.plan.site_facilities`) lists the new sites serving its units, with
  the residents each would newly cover there and in all.

Columns read from the problems table (documented, so a grouped table keeps working):
``problem_id``, ``indicator_code``, ``name_zh``, ``level`` (unit / town / district),
``area_id``, ``problem_class``, ``affected_population``; optional ``value``,
``reference``, ``gap``, ``area_name``, ``geometry`` and ``points`` (问题点位: the unit IDs a
grouped problem lies in, a list or a ``;``-separated string; issue 20 groups unit-level
findings into one problem per indicator and level). A problem's units are its
``points`` when given, else its unit, the units of its town, or every unit.
"""

from __future__ import annotations

import re
from fnmatch import translate
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from .. import data
from ..errors import ConfigError, LayerError
from ..model import PROBLEM_CLASSES

__all__ = ["PROJECT_TYPES", "PROJECT_COLUMNS", "ANNUAL_PLAN_COLUMNS", "project_rules",
           "project_library", "annual_plan", "problem_units"]

PROJECT_TYPES = ("工程类", "管理类", "规划研究类")
_TYPE_KEY = {"工程类": ("engineering", "E"), "管理类": ("management", "M"), "规划研究类": ("study", "S")}
PATHS = {"工程类": "选址论证—立项审批—设计—施工—验收移交",
         "管理类": "制定方案—部门协同—落实执行—考核评估",
         "规划研究类": "专题研究—方案论证—纳入规划和项目储备库"}
_NAME_SUFFIX = {"工程类": "建设工程", "管理类": "提升行动", "规划研究类": "专题研究"}
_GENERIC_STUDY = "{area}“{name}”专题研究"
RULE_COLUMNS = ["pattern", "order", "project_types", "lead_department", "partners", "engineering",
                "management", "study", "source"]
PROJECT_COLUMNS = ["project_id", "project_name", "project_type", "problem_id", "indicator_code",
                   "indicator_name", "problem_class", "priority", "priority_rank", "level", "area_id",
                   "area_name", "town_code", "renewal_area_id", "affected_population",
                   "lead_department", "partners", "content", "path", "timing", "start_year",
                   "end_year", "site_ids", "site_count", "site_residents", "rule"]
ANNUAL_PLAN_COLUMNS = ["seq", "project_id", "project_name", "project_type", "problem_class", "priority",
                       "town_code", "area_name", "renewal_area_id", "lead_department", "partners",
                       "content", "site_ids", "affected_population", "start_year", "end_year", "path"]


# ------------------------------------------------------------------------------- rules
def project_rules(overrides: Any = None) -> pd.DataFrame:
    """The project rule table: packaged ``project_rules.csv`` with a study's overrides.

    Parameters
    ----------
    overrides : DataFrame, list of dict, or CSV path
        Rows with a ``pattern`` replace the packaged row of the same pattern (only the
        fields given) or are added before the packaged rows (``order`` 5), their empty
        fields taken from the packaged rule their pattern matches as a code (so
        ``pattern = cov_kindergarten, lead_department = 镇教委`` changes only the department).

    Raises
    ------
    ConfigError
        Naming the rule: an unknown project type, a type without a content template.
    """
    t = pd.read_csv(data.path("project_rules.csv"), dtype=str, keep_default_na=False)
    if overrides is not None:
        if isinstance(overrides, pd.DataFrame):
            ov = overrides.astype(object).where(overrides.notna(), "")
        elif isinstance(overrides, list):
            ov = pd.DataFrame(overrides).fillna("")
        else:
            from pathlib import Path

            p = Path(overrides)
            if not p.exists():
                raise ConfigError("plan.projects.rules", f"file not found: {p}",
                                  "check the path (relative to the study.toml)")
            ov = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
        if "pattern" not in ov.columns:
            raise ConfigError("plan.projects.rules", "override rows need a pattern column",
                              f"columns: {', '.join(RULE_COLUMNS)}")
        unknown = sorted(set(ov.columns) - set(RULE_COLUMNS))
        if unknown:
            raise ConfigError(f"plan.projects.rules.{unknown[0]}", "unknown column",
                              f"use {', '.join(RULE_COLUMNS)}")
        packaged = t.copy()
        packaged["order"] = packaged["order"].astype(float)
        packaged = packaged.sort_values(["order", "pattern"], kind="stable").reset_index(drop=True)
        t = t.set_index("pattern")
        for rec in ov.to_dict("records"):
            pat = str(rec.pop("pattern"))
            if pat not in t.index:
                # a new pattern: fields it leaves empty come from the packaged rule that
                # its text matches as an indicator code (cov_kindergarten → the schools rule)
                base = _rule_of(pd.Series([pat]), packaged)[0]
                t.loc[pat] = packaged.iloc[base].drop("pattern").astype(str) if base >= 0 else ""
                t.at[pat, "order"] = "5"
            for k, v in rec.items():
                if str(v) != "":
                    t.at[pat, k] = str(v)
        t = t.reset_index()
    for rec in t.to_dict("records"):
        key = f"plan.projects.rules[{rec['pattern']}]"
        types = [x.strip() for x in str(rec["project_types"]).split(";") if x.strip()]
        if not types:
            raise ConfigError(key, "no project type", "give project_types, e.g. 工程类;管理类")
        bad = [x for x in types if x not in PROJECT_TYPES]
        if bad:
            raise ConfigError(key, f"unknown project type {bad[0]!r}", f"use {' / '.join(PROJECT_TYPES)}")
        for x in types:
            if not str(rec[_TYPE_KEY[x][0]]).strip():
                raise ConfigError(key, f"project type {x} has no content template ({_TYPE_KEY[x][0]})",
                                  "fill the template column or drop the type")
        try:
            float(rec["order"])
        except ValueError:
            raise ConfigError(key, f"order {rec['order']!r} is not a number", "set order = <number>") from None
    t["order"] = t["order"].astype(float)
    return t[RULE_COLUMNS].sort_values(["order", "pattern"], kind="stable").reset_index(drop=True)


def _rule_of(codes: pd.Series, rules: pd.DataFrame) -> np.ndarray:
    """Row of the first matching rule for each code (by order)."""
    out = np.full(len(codes), -1, dtype=np.int64)
    c = codes.astype(str)
    for i, pat in enumerate(rules["pattern"]):
        pats = [p.strip() for p in str(pat).split(";") if p.strip()]
        rx = "|".join(f"(?:{translate(p)})" for p in pats)
        m = (out < 0) & c.str.match(rx).to_numpy(dtype=bool)
        out[m] = i
    return out


# ----------------------------------------------------------------------------- problems
def _points_list(v: Any) -> list[str]:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return []
    if isinstance(v, str):
        return [s.strip() for s in v.replace("；", ";").split(";") if s.strip()]
    return [str(s) for s in v]


def problem_units(problems: pd.DataFrame, units: pd.DataFrame | None) -> pd.DataFrame:
    """``problem_id, unit_id``: the units each problem lies in (its 问题点位 at unit level).

    ``points`` when given, else the unit of a unit-level problem, the units of a town's
    problem, or every unit for a district problem (module docstring).
    """
    uid = units["unit_id"].astype(str).to_numpy() if units is not None else np.zeros(0, dtype=object)
    town = units["town_code"].astype(str).to_numpy() if units is not None and "town_code" in units.columns \
        else np.full(len(uid), "", dtype=object)
    by_town = pd.Series(uid).groupby(town).apply(list).to_dict() if len(uid) else {}
    pts = problems["points"] if "points" in problems.columns else pd.Series(None, index=problems.index)
    lv = problems["level"].astype(str).to_numpy()
    aid = problems["area_id"].astype(str).to_numpy()
    given = [_points_list(v) for v in pts]
    lists = [g if g else ([a] if v == "unit" else by_town.get(a, []) if v == "town" else list(uid))
             for g, v, a in zip(given, lv, aid)]
    out = pd.DataFrame({"problem_id": problems["problem_id"].to_numpy(), "unit_id": lists})
    return out.explode("unit_id").dropna(subset=["unit_id"]).reset_index(drop=True)


def _facility_of(code: str) -> str | None:
    m = re.match(r"^cov_(.+)$", code)
    return m.group(1) if m else None


def _fmt(v: Any) -> str:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return "—" if v is None else str(v)
    if not np.isfinite(f):
        return "—"
    return f"{f:.3g}" if abs(f) < 100 else f"{f:,.0f}"


# ------------------------------------------------------------------------------ library
def project_library(
    problems: pd.DataFrame,
    *,
    year: int,
    units: gpd.GeoDataFrame | None = None,
    sites: gpd.GeoDataFrame | None = None,
    assignment: pd.DataFrame | None = None,
    renewal_areas: gpd.GeoDataFrame | None = None,
    rules: Any = None,
    district_name: str | None = None,
) -> gpd.GeoDataFrame | pd.DataFrame:
    """The project library: every problem → one or more typed, timed projects.

    Parameters
    ----------
    problems : DataFrame or GeoDataFrame
        The problems table (columns read: module docstring).
    year : int
        First year of the implementation plan (限时解决 projects finish in it).
    units : GeoDataFrame, optional
        Check-up units (``unit_id``, ``town_code``, ``town_name``): towns and sites of
        each problem.
    sites, assignment : optional
        New sites (``site_id``, ``facility_type``, ``residents_covered``) and the homes
        they serve (``unit_id``, ``facility_type``, ``site_id``, ``residents``) from
        :func:`geotijian.plan.site_facilities`, all types concatenated.
    renewal_areas : GeoDataFrame, optional
        Areas (``area_id``, ``units``) to tag each project with its 更新片区.
    rules : optional
        Overrides of :func:`project_rules`.
    district_name : str, optional
        Name shown for district-level problems.

    Returns
    -------
    GeoDataFrame (problem geometry) or DataFrame
        :data:`PROJECT_COLUMNS`, sorted by ``priority_rank`` then ``project_id``
        (``<problem_id>/E``, ``/M`` or ``/S`` for 工程类, 管理类, 规划研究类).
    """
    p, rl, rule = _checked(problems, year, rules)
    codes = p["indicator_code"].astype(str)
    rank, pos_best, priority, aff = _priorities(p)
    pu = problem_units(p, units)
    by_problem = pu.groupby("problem_id", sort=False)["unit_id"].apply(list).to_dict()
    town_of, town_name, unit_name, area_of_unit = _place_names(units, renewal_areas)
    site_text = _SiteText(sites, assignment)
    fac_names = pd.read_csv(data.path("facilities.csv"), dtype=str).set_index("code")["name_zh"]

    rules_rec = rl.to_dict("records")

    def col(name: str, default: Any) -> list:
        return p[name].tolist() if name in p.columns else [default] * len(p)

    pid_l, code_l, lv_l, aid_l = (p["problem_id"].astype(str).tolist(), codes.tolist(),
                                  p["level"].astype(str).tolist(), p["area_id"].astype(str).tolist())
    name_l = [str(v) for v in col("name_zh", None)]
    name_l = [n if n not in ("None", "nan") else c for n, c in zip(name_l, code_l)]
    aname_l, value_l, ref_l = col("area_name", ""), col("value", None), col("reference", "—")
    cls_l = p["problem_class"].astype(str).tolist()
    rows = []
    for i in range(len(p)):  # (text per problem: templating, not geometry)
        r = rules_rec[rule[i]]
        code = code_l[i]
        lv, aid = lv_l[i], aid_l[i]
        us = by_problem.get(pid_l[i], [])
        town, area_name = _place(lv, aid, aname_l[i], town_of, town_name, unit_name, district_name)
        ras = sorted({area_of_unit[u] for u in us if u in area_of_unit})
        ftype = _facility_of(code)
        facility = str(fac_names.get(ftype, name_l[i])) if ftype else name_l[i]
        site_ids, site_res, site_txt = site_text(ftype, us)
        fields = {"area": area_name, "name": name_l[i], "facility": facility, "sites": site_txt,
                  "affected": f"{aff[i]:,.0f}", "value": _fmt(value_l[i]), "reference": str(ref_l[i]),
                  "unit": ""}
        types = [x.strip() for x in str(r["project_types"]).split(";") if x.strip()]
        cls = cls_l[i]
        templates = {x: str(r[_TYPE_KEY[x][0]]) for x in types}
        if cls == "长期谋划" and "规划研究类" not in types:  # study first
            types = ["规划研究类"] + types
            templates["规划研究类"] = _GENERIC_STUDY
        for x in types:
            start, end, timing = _timing(cls, x, year, pos_best[i])
            try:
                content = templates[x].format_map(fields)
            except (KeyError, IndexError, ValueError) as exc:
                raise ConfigError(f"plan.projects.rules[{r['pattern']}]", f"template has an unknown field {exc}",
                                  "use {area}, {name}, {facility}, {sites}, {affected}, {value}, {reference}") \
                    from None
            engineering = x == "工程类"
            rows.append({
                "project_id": f"{pid_l[i]}/{_TYPE_KEY[x][1]}",
                "project_name": f"{area_name}{facility}{_NAME_SUFFIX[x]}",
                "project_type": x, "problem_id": pid_l[i], "indicator_code": code,
                "indicator_name": fields["name"], "problem_class": cls, "priority": priority[i],
                "priority_rank": int(rank[i]), "level": lv, "area_id": aid, "area_name": area_name,
                "town_code": town, "renewal_area_id": ";".join(ras),
                "affected_population": float(aff[i]), "lead_department": r["lead_department"],
                "partners": str(r["partners"]).replace(";", "、"), "content": content,
                "path": PATHS[x], "timing": timing, "start_year": start, "end_year": end,
                "site_ids": ";".join(site_ids) if engineering else "",
                "site_count": len(site_ids) if engineering else 0,
                "site_residents": site_res if engineering else 0.0, "rule": r["pattern"],
                "_i": i})
    return _library_table(rows, p, problems)


def _checked(problems: pd.DataFrame, year: Any, rules: Any) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray]:
    """The problems (no geometry, index 0…n-1), the rule table and each problem's rule;
    errors name the missing column, the unknown class or the unmatched indicator."""
    need = ["problem_id", "indicator_code", "level", "area_id", "problem_class", "affected_population"]
    miss = [c for c in need if c not in problems.columns]
    if miss:
        raise LayerError("problems", f"missing column(s) {', '.join(miss)}",
                         fix="pass the problems table of build_tables (model.PROBLEM_COLUMNS)")
    if isinstance(year, bool) or not isinstance(year, (int, np.integer)):
        raise ConfigError("plan.year", f"must be a year, got {year!r}", "e.g. year = 2025")
    rl = project_rules(rules)
    p = pd.DataFrame(problems.drop(columns="geometry", errors="ignore")).reset_index(drop=True)
    unknown = sorted(set(p["problem_class"].astype(str)) - set(PROBLEM_CLASSES))
    if unknown:
        raise LayerError("problems", f"unknown problem class {unknown[0]!r}",
                         fix=f"use {' / '.join(PROBLEM_CLASSES)}")
    codes = p["indicator_code"].astype(str)
    rule = _rule_of(codes, rl)
    if (rule < 0).any():
        i = int(np.flatnonzero(rule < 0)[0])
        raise ConfigError("plan.projects.rules", f"no rule matches indicator {codes.iat[i]!r}",
                          "keep a catch-all rule (pattern *)")
    return p, rl, rule


def _place(level: str, aid: str, given_name: Any, town_of: dict, town_name: dict, unit_name: dict,
           district_name: str | None) -> tuple[str, str]:
    """Town code and the area's name of one problem (the table's ``area_name`` when given)."""
    if level == "unit":
        town, name = town_of.get(aid, ""), unit_name.get(aid, aid)
    elif level == "town":
        town, name = aid, town_name.get(aid, aid)
    else:
        town, name = "", district_name or aid
    if str(given_name) not in ("", "nan", "None", aid):
        name = str(given_name)
    return town, name


def _library_table(rows: list[dict], p: pd.DataFrame, problems: pd.DataFrame) -> pd.DataFrame:
    """The projects sorted by priority rank then type, with the problems' geometry when
    they have one; an error when a problem has no project."""
    out = pd.DataFrame(rows)
    missing = set(p["problem_id"]) - set(out["problem_id"]) if len(out) else set(p["problem_id"])
    if missing:  # every problem reaches the library (the catch-all rule guarantees it)
        raise ConfigError("plan.projects.rules", f"{len(missing)} problems have no project",
                          "keep a catch-all rule (pattern *)")
    if not len(out):
        out = pd.DataFrame(columns=PROJECT_COLUMNS + ["_i"])
    type_ord = out["project_type"].map({x: k for k, x in enumerate(PROJECT_TYPES)}) if len(out) else []
    out = out.assign(_t=type_ord).sort_values(["priority_rank", "_t"], kind="stable")
    idx = out["_i"].to_numpy(dtype=np.int64)
    out = out[PROJECT_COLUMNS].reset_index(drop=True)
    if isinstance(problems, gpd.GeoDataFrame):
        return gpd.GeoDataFrame(out, geometry=problems.geometry.to_numpy()[idx], crs=problems.crs)
    return out


def _priorities(p: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Rank (1 = first: class, then residents affected, then ID), position within
    尽力解决 (0 … <1, NaN elsewhere), priority 高/中/低, residents affected."""
    cls_ord = p["problem_class"].map({c: i for i, c in enumerate(PROBLEM_CLASSES)}).to_numpy()
    aff = pd.to_numeric(p["affected_population"], errors="coerce").fillna(0).to_numpy(float)
    order = np.lexsort((p["problem_id"].astype(str).to_numpy(), -aff, cls_ord))
    rank = np.empty(len(p), np.int64)
    rank[order] = np.arange(1, len(p) + 1)
    best = p["problem_class"].to_numpy() == "尽力解决"
    pos_best = np.full(len(p), np.nan)
    if best.any():
        ob = order[best[order]]
        pos_best[ob] = np.arange(len(ob)) / len(ob)
    priority = np.where(cls_ord == 0, "高", np.where(cls_ord == 2, "低",
                                                   np.where(pos_best < 0.25, "高", "中")))
    return rank, pos_best, priority, aff


def _place_names(units: pd.DataFrame | None, renewal_areas: pd.DataFrame | None) -> tuple[dict, ...]:
    """unit → town, town → name, unit → name, unit → renewal area."""
    def pairs(a: str, b: str) -> dict:
        if units is None or a not in units.columns or b not in units.columns:
            return {}
        return dict(zip(units[a].astype(str), units[b].astype(str)))

    area_of_unit: dict[str, str] = {}
    if renewal_areas is not None and len(renewal_areas):
        for aid, us in zip(renewal_areas["area_id"], renewal_areas["units"]):
            for u in _points_list(us):
                area_of_unit.setdefault(u, str(aid))
    return pairs("unit_id", "town_code"), pairs("town_code", "town_name"), pairs("unit_id", "name"), area_of_unit


class _SiteText:
    """The new sites serving a problem's units: IDs, residents newly covered there, text."""

    def __init__(self, sites: pd.DataFrame | None, assignment: pd.DataFrame | None):
        self.served: dict[tuple[str, str], list[tuple[str, float]]] = {}  # (type, unit) -> sites
        if assignment is not None and len(assignment):
            g = assignment.groupby(["facility_type", "unit_id", "site_id"], sort=True)["residents"].sum()
            for (t, u, sid), v in g.items():
                self.served.setdefault((str(t), str(u)), []).append((str(sid), float(v)))
        has = sites is not None and len(sites)
        self.total = dict(zip(zip(sites["facility_type"], sites["site_id"]), sites["residents_covered"])) \
            if has else {}
        self.types = set(sites["facility_type"].astype(str)) if has else set()

    def __call__(self, ftype: str | None, units: list[str]) -> tuple[list[str], float, str]:
        if not ftype or ftype not in self.types:
            return [], 0.0, ""
        acc: dict[str, float] = {}
        for u in units:
            for sid, v in self.served.get((ftype, u), ()):
                acc[sid] = acc.get(sid, 0.0) + v
        ranked = sorted(acc.items(), key=lambda kv: (-kv[1], kv[0]))
        if not ranked:
            return [], 0.0, "(本轮选址未覆盖该区域：新增点位数不足或无可用候选用地，需补充选址)"
        text = f"，新增点位{len(ranked)}处：" + "、".join(
            f"{sid}(覆盖本区域{v:,.0f}人/共{self.total.get((ftype, sid), v):,.0f}人)" for sid, v in ranked)
        return [k for k, _ in ranked], float(sum(acc.values())), text


def _timing(cls: str, ptype: str, year: int, pos: float) -> tuple[int, int, str]:
    """Start year, end year and the timing text of one project (module docstring)."""
    if cls == "限时解决":
        return year, year, f"限时解决：{year}年内完成"
    if cls == "尽力解决":
        if ptype == "规划研究类":
            return year, year, f"尽力解决：{year}年完成研究"
        start = year + (int(min(2, np.floor(pos * 3))) if np.isfinite(pos) else 0)
        return start, year + 2, f"尽力解决：{year}–{year + 2}年内解决({start}年启动)"
    if ptype == "规划研究类":
        return year, year, f"长期谋划：{year}年先行开展研究"
    return year + 1, year + 4, f"长期谋划：研究先行，{year + 1}–{year + 4}年分期实施"


def annual_plan(projects: pd.DataFrame, *, year: int) -> pd.DataFrame:
    """年度实施计划: the projects starting in ``year``, by priority.

    Returns
    -------
    DataFrame
        :data:`ANNUAL_PLAN_COLUMNS` (``seq`` = 序号 from 1).
    """
    if "start_year" not in projects.columns:
        raise LayerError("projects", "missing column 'start_year'", fix="pass project_library(...)")
    a = pd.DataFrame(projects.drop(columns="geometry", errors="ignore"))
    a = a[a["start_year"].astype(int) == int(year)].reset_index(drop=True)
    a.insert(0, "seq", np.arange(1, len(a) + 1))
    return a[ANNUAL_PLAN_COLUMNS]
