"""Sections 三 (数据指标分析) and 四 (总体评价) of the report.

三 walks the eight dimensions in the work plan's order: each indicator's value in the scope
(district or town), its reference and judgement, the towns (or, in a town's report, the
district) beside it, the check-up units below the reference, and the coverage-gap figure
of a facility where the study drew one. 四 grades them with the rule table of
:mod:`.grading` and prints the rules it used.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
from pandas.core.sorting import nargsort

from .grading import grade_dimensions, grade_indicators, overall_grade, reference_number
from .inputs import ReportInputs
from .scope import Scope, scope_problems
from .sections import DIMENSION_ORDER, area_label, problem_names
from .text import JUDGEMENT_ZH, cn_index, count, num, persons, share_pct, value_text
from .writer import DocWriter

__all__ = ["section_indicators", "section_grades", "graded_tables"]

#: most units named in a sentence before "等"
_MAX_UNITS_NAMED = 6


def _rows_by_area(inp: ReportInputs) -> dict:
    """(level, area ID) → positions of the indicator table's rows (made once per table)."""
    def make() -> dict:
        t = inp.indicator_table
        return t.groupby([t["level"], t["area_id"].astype(str)], sort=False).indices

    return inp.derived("rows_by_area", ("indicator_table",), make)


def _scope_rows(inp: ReportInputs, scope: Scope) -> pd.DataFrame:
    t = inp.indicator_table
    at = _rows_by_area(inp).get((scope.level, scope.area_id))
    return t.iloc[at] if at is not None else t.iloc[:0]


def _level_rows(inp: ReportInputs) -> tuple[pd.DataFrame, pd.Series, dict, dict]:
    """The indicator table's unit rows (and their area IDs as text), the district's value
    and each town's value by (town code, indicator code); made once per table."""
    def make() -> tuple[pd.DataFrame, pd.Series, dict, dict]:
        t = inp.indicator_table
        units = t[t["level"] == "unit"]
        towns = t[t["level"] == "town"]
        district = t[t["level"] == "district"].drop_duplicates("code")
        return (units, units["area_id"].astype(str), dict(zip(district["code"], district["value"], strict=True)),
                {(str(a), c): v for a, c, v in zip(towns["area_id"][::-1], towns["code"][::-1], towns["value"][::-1],
                                                   strict=True)})

    return inp.derived("level_rows", ("indicator_table",), make)


def _figure_for(code: str, inp: ReportInputs) -> Path | None:
    """The coverage-gap figure of a ``cov_<type>`` indicator (``maps/gaps_<type>.png``)."""
    return inp.figures.get(f"gaps_{code[4:]}") if code.startswith("cov_") else None


def section_indicators(w: DocWriter, inp: ReportInputs, scope: Scope) -> None:
    """三、数据指标分析, one sub-section per dimension."""
    w.heading("三、数据指标分析", 1)
    own = _scope_rows(inp, scope)
    judged = own[own["judgement"].isin(["meets", "falls_short"])]
    w.para(f"本次体检在{scope.name}计算和填报指标{count(len(own))}，其中有参考值的{count(len(judged))}："
           f"达标{count(int((judged['judgement'] == 'meets').sum()))}，"
           f"未达标{count(int((judged['judgement'] == 'falls_short').sum()))}；"
           f"另有{count(len(own) - len(judged))}暂无国家或地方参考值（或缺少数据），列出现状值供比较。"
           "以下按宜居共建、安全韧性、品质更新、绿色低碳、交通便捷、多元共享、精细共治、智慧高效八个维度逐项分析。")
    all_units, unit_ids, district, towns = _level_rows(inp)
    units = all_units[unit_ids.isin(scope.units).to_numpy()]
    # looked up per indicator below: once here (a district's table has ~16,000 unit rows)
    short_rows = units[units["judgement"] == "falls_short"]
    probs = scope_problems(inp, scope)
    look = _Lookups(
        units_n=units.groupby("code", sort=False).size().to_dict(),
        short_by_code=dict(tuple(short_rows.groupby("code", sort=False))),
        short_units=short_rows.groupby("code").size(),
        district=district,
        towns=towns,
        problem=_own_problems(probs, scope))
    # (each dimension's rows and its indicators falling short, by masks of the scope's rows)
    dims_of, judged_as = own["dimension"], own["judgement"]
    short_all = (judged_as == "falls_short").to_numpy(dtype=bool, na_value=False)
    meets_all = (judged_as == "meets").to_numpy(dtype=bool, na_value=False)
    for i, dim in enumerate(DIMENSION_ORDER, start=1):
        w.heading(f"（{cn_index(i)}）{dim}", 2)
        own_dims = (dims_of == dim).to_numpy(dtype=bool, na_value=False)
        rows = own[own_dims]
        if not len(rows):
            w.para(f"本维度暂无可计算或填报的指标。{dim}维度的指标需通过部门填报或专项调查补充（[indicators] filled）。")
            continue
        short = own[own_dims & short_all]
        n_meets = int((own_dims & meets_all).sum())
        w.para(f"{dim}维度共{count(len(rows))}指标，达标{count(n_meets)}、未达标{count(len(short))}、"
               f"无参考值或无数据{count(len(rows) - n_meets - len(short))}。"
               + (f"未达标的指标为：{'、'.join(short['name_zh'])}。" if len(short) else ""))
        _dimension_table(w, inp, scope, rows, look, dim)
        for r in short.itertuples():
            _indicator_paragraph(w, inp, scope, r, look)
            fig = _figure_for(r.code, inp)
            if fig is not None:
                w.figure(fig, f"{r.name_zh}：未覆盖的居住小区" + ("（全区）" if scope.is_town else ""), width_cm=13.0)


class _Lookups(NamedTuple):
    """By indicator code: the scope's units judged, its units falling short (rows, count),
    the district's value, the scope's own problem (residents affected, class); a town's
    value by (town code, indicator code)."""

    units_n: dict
    short_by_code: dict
    short_units: pd.Series
    district: dict
    towns: dict
    problem: dict


def _own_problems(probs: pd.DataFrame, scope: Scope) -> dict:
    """indicator code -> (residents affected, class) of the scope's own problem (the first)."""
    if "indicator_code" not in probs.columns:
        return {}
    p = probs[probs["area_id"].astype(str) == scope.area_id]
    if "level" in p.columns:  # the scope's own problem (grouped problems all carry the scope's area)
        p = p[p["level"].astype(str) == scope.level]
    p = p.drop_duplicates("indicator_code")
    return dict(zip(p["indicator_code"], zip(p["affected_population"], p["problem_class"], strict=True), strict=True))


def _dimension_table(w: DocWriter, inp: ReportInputs, scope: Scope, rows: pd.DataFrame, look: _Lookups,
                     dim: str) -> None:
    n_units = len(scope.units)
    short_units = look.short_units
    if scope.is_town:
        dv = look.district
        header = ["指标", "本街镇", "全区", "参考值", "评价", "未达标单元"]
        widths = [5.0, 2.3, 2.3, 1.6, 2.0, 2.0]
        body = [[r.name_zh, value_text(r.value, r.unit), value_text(dv.get(r.code), r.unit), r.reference or "—",
                 JUDGEMENT_ZH.get(r.judgement, r.judgement), f"{int(short_units.get(r.code, 0))}/{n_units}"]
                for r in rows.itertuples()]
        numeric = [1, 2, 3]
    else:
        tnames = [(c, inp.town_name(c)) for c in scope.towns][:4]
        header = ["指标", "全区", "参考值", "评价", *[n for _, n in tnames], "未达标单元"]
        tw = max(1.6, 5.2 / max(len(tnames), 1))
        widths = [4.4, 2.1, 1.5, 2.0, *[min(tw, 2.1)] * len(tnames), 1.8]
        body = [[r.name_zh, value_text(r.value, r.unit), r.reference or "—", JUDGEMENT_ZH.get(r.judgement, r.judgement),
                 *[value_text(look.towns.get((c, r.code)), r.unit) for c, _ in tnames],
                 f"{int(short_units.get(r.code, 0))}/{n_units}"] for r in rows.itertuples()]
        numeric = [1, 2, *range(4, 4 + len(tnames))]
    scale = 15.6 / sum(widths)
    w.table(header, body, caption=f"{scope.name}{dim}维度指标", widths_cm=[x * scale for x in widths], numeric=numeric,
            note="注：“未达标单元”为未达到参考值的社区体检单元数 / 单元总数；“—”表示无数据或无参考值。")


def _indicator_paragraph(w: DocWriter, inp: ReportInputs, scope: Scope, r, look: _Lookups) -> None:
    unit = r.unit
    ref = reference_number(r.reference)
    gap = float(r.gap) if r.gap == r.gap else np.nan
    gap_txt = (f"，差距{num(gap, 1)}个百分点" if str(unit).startswith("%") else f"，差距{value_text(gap, unit)}") \
        if np.isfinite(gap) else ""
    share = f"（差距占参考值的{share_pct(gap, abs(ref))}）" if ref and np.isfinite(gap) else ""
    text = f"{r.name_zh}：{scope.name}为{value_text(r.value, unit)}，未达到参考值{r.reference}{gap_txt}{share}。"
    if scope.is_town:
        if r.code in look.district:
            text += f"全区为{value_text(look.district[r.code], unit)}。"
    else:
        parts = [f"{inp.town_name(c)}{value_text(look.towns[(c, r.code)], unit)}" for c in scope.towns
                 if (c, r.code) in look.towns]
        if parts:
            text += "分街镇看，" + "、".join(parts) + "。"
    n_units = look.units_n.get(r.code, 0)
    below = look.short_by_code.get(r.code)
    lower = str(getattr(r, "direction", "")) == "lower_better" or str(r.reference).startswith(("≤", "<"))
    if n_units:
        if below is not None and len(below):
            # (the order of below.sort_values("value", ascending=not lower): pandas' own argsort)
            first = nargsort(below["value"].to_numpy(), kind="quicksort", ascending=not lower,
                             na_position="last")[:_MAX_UNITS_NAMED]
            named = "、".join(f"{area_label(inp, scope, a)} {value_text(v, unit)}"
                             for a, v in zip(below["area_id"].to_numpy()[first], below["value"].to_numpy()[first],
                                             strict=True))
            more = "等" if len(below) > _MAX_UNITS_NAMED else ""
            text += (f"{n_units}个社区体检单元中有{len(below)}个未达到参考值（{share_pct(len(below), n_units)}），"
                     f"差距较大的为{named}{more}。")
        else:
            text += f"{n_units}个社区体检单元均达到参考值。"
    own = look.problem.get(r.code)
    if own is not None and np.isfinite(float(own[0] or np.nan)):
        text += f"涉及居民约{persons(round(float(own[0]), -2))}，问题类别为“{own[1]}”。"
    w.para(text)


# ------------------------------------------------------------------------------ 四
def graded_tables(inp: ReportInputs, scope: Scope, *, rules: pd.DataFrame, bands: pd.DataFrame
                  ) -> tuple[pd.DataFrame, pd.DataFrame, str, float]:
    """The grades of a scope: (indicators, dimensions, overall grade, overall score)."""
    table = inp.indicator_table
    if scope.is_town and inp.units is not None and len(inp.units):
        # the rows grade_indicators reads of a town (its own and its units'), in the table's
        # order, taken by the shared lookup instead of scanning the district's table
        at = _rows_by_area(inp)
        none = np.zeros(0, dtype=np.intp)
        table = table.iloc[np.sort(np.concatenate([at.get((scope.level, scope.area_id), none)] +
                                                  [at.get(("unit", u), none) for u in scope.units]))]
    g = grade_indicators(table, inp.units, level=scope.level, area_id=scope.area_id, rules=rules)
    dims = grade_dimensions(g, dimensions=DIMENSION_ORDER, bands=bands)
    grade, score = overall_grade(dims, bands=bands)
    return g, dims, grade, score


def _rule_text(r) -> str:
    parts = []
    if r.area_meets == "yes":
        parts.append("区域值达标")
    elif r.area_meets == "no":
        parts.append("区域值未达标")
    if np.isfinite(r.max_gap_share):
        parts.append(f"差距 ≤ 参考值的{num(100 * r.max_gap_share, 1)}%")
    if np.isfinite(r.min_unit_share):
        parts.append(f"达标单元居民占比 ≥ {num(100 * r.min_unit_share, 1)}%")
    return "，".join(parts) or "其余情形"


def section_grades(w: DocWriter, inp: ReportInputs, scope: Scope, *, rules: pd.DataFrame,
                   bands: pd.DataFrame) -> tuple[str, float]:
    """四、总体评价: the rule tables, grades per indicator, per dimension and overall."""
    w.heading("四、总体评价", 1)
    g, dims, grade, score = graded_tables(inp, scope, rules=rules, bands=bands)
    graded = g[np.isfinite(g["score"].to_numpy(float))]
    w.heading("（一）评价方法", 2)
    own = all("geotijian" in str(s) for s in rules["source"]) and all("geotijian" in str(s) for s in bands["source"])
    w.para("有参考值的指标按下表规则逐项评为“很好、较好、一般、不足”四级（依次记4、3、2、1分），规则按顺序匹配，"
           "先满足者为准；各维度取所含指标的平均分，总体取八个维度平均分的平均，按分数段评为“优、良、中、差”。"
           "无参考值或无数据的指标不参与评级。" +
           ("等级名称参照宜昌市2025年城市体检报告；分级阈值为 geotijian 的默认设定（未见公开发布的分级阈值），"
            "可在 study.toml 的 [report] grade_rules、grade_bands 中按本地要求修改。" if own else
            "分级规则按本次体检 study.toml 中 [report] 的设定，来源见表中“依据”一栏。"))
    w.table(["等级", "分值", "条件", "依据"],
            [[r.grade, num(r.score, 0), _rule_text(r), "geotijian 默认（自定）" if "geotijian" in str(r.source) else str(r.source)]
             for r in rules.itertuples()],
            caption="指标评级规则", widths_cm=[1.6, 1.2, 8.2, 4.6], numeric=[1])
    w.table(["等级", "平均分下限", "依据"],
            [[r.grade, num(r.min_score, 2), "geotijian 默认（自定）" if "geotijian" in str(r.source) else str(r.source)]
             for r in bands.itertuples()],
            caption="维度和总体评级分数段", widths_cm=[2.4, 3.2, 10.0], numeric=[1])
    w.heading("（二）分项指标评价", 2)
    if not len(graded):
        w.para(f"{scope.name}没有带参考值的指标，无法逐项评级。")
    else:
        counts = graded["grade"].value_counts()
        w.para(f"{scope.name}参与评级的指标{count(len(graded))}：" +
               "、".join(f"{k}{count(int(counts.get(k, 0)))}" for k in ("很好", "较好", "一般", "不足")) + "。")
        w.table(["维度", "指标", "现状值", "参考值", "达标单元居民占比", "等级"],
                [[r.dimension, r.name_zh, value_text(r.value, r.unit), r.reference,
                  "—" if not np.isfinite(r.unit_share) else f"{100 * r.unit_share:.1f}%", r.grade]
                 for r in graded.sort_values(["dimension", "code"], key=lambda s: s.map(
                     {d: i for i, d in enumerate(DIMENSION_ORDER)}) if s.name == "dimension" else s).itertuples()],
                caption=f"{scope.name}分项指标评价", widths_cm=[1.9, 5.6, 2.0, 1.6, 2.6, 1.5], numeric=[2, 3, 4])
    w.heading("（三）分维度评价", 2)
    w.table(["维度", "指标数", "参与评级", "很好", "较好", "一般", "不足", "平均分", "等级"],
            [[r["dimension"], num(r["indicators"], 0), num(r["graded"], 0),
              *[num(r[g], 0) for g in ("很好", "较好", "一般", "不足")], num(r["mean_score"], 2, strip=False), r["grade"]]
             for r in dims.to_dict("records")],
            caption=f"{scope.name}分维度评价", widths_cm=[2.0, 1.5, 1.8, 1.5, 1.5, 1.5, 1.5, 1.9, 1.5],
            numeric=[1, 2, 3, 4, 5, 6, 7])
    w.heading("（四）总体评价", 2)
    rated = dims[dims["grade"] != "—"]
    if not np.isfinite(score):
        w.para(f"{scope.name}没有可评级的指标，不作总体评价。")
        return grade, score
    best = rated.sort_values(["mean_score", "dimension"], ascending=[False, True]).head(2)
    worst = rated.sort_values(["mean_score", "dimension"], ascending=[True, True]).head(2)
    text = (f"综合{len(rated)}个有评级指标的维度，{scope.name}{inp.year}年城市体检总体评价为“{grade}”"
            f"（平均得分{num(score, 2)}）。")
    if len(rated) > 1 and rated["grade"].nunique() == 1:
        text += (f"各维度评级均为“{rated['grade'].iloc[0]}”，其中平均得分较高的为"
                 f"{'、'.join(f'{r.dimension}（{num(r.mean_score, 2)}分）' for r in best.itertuples())}，"
                 f"较低的为{'、'.join(f'{r.dimension}（{num(r.mean_score, 2)}分）' for r in worst.itertuples())}。")
    elif len(rated) > 1:
        text += (f"相对较好的维度为{'、'.join(f'{r.dimension}（{r.grade}）' for r in best.itertuples())}；"
                 f"相对薄弱的维度为{'、'.join(f'{r.dimension}（{r.grade}）' for r in worst.itertuples())}。")
    missing = [d for d in dims.loc[dims["grade"] == "—", "dimension"]]
    if missing:
        text += f"{'、'.join(missing)}维度暂无带参考值的指标，未参与总体评价，需通过部门填报补充。"
    w.para(text)
    st = scope.rows(inp.strengths)
    if len(st) and "level" in st.columns:
        st = st[(st["level"] == scope.level) & (st["area_id"].astype(str) == scope.area_id)]
        if len(st):
            units = {c: v[2] for c, v in problem_names(inp).items()}
            w.para("主要优势：" + "；".join(f"{r.name_zh}为{value_text(r.value, units.get(r.indicator_code))}，"
                                        f"达到参考值{r.reference}" for r in st.itertuples()) + "。")
    bad = graded[graded["grade"] == "不足"]
    if len(bad):
        w.para("主要短板：" + "、".join(bad["name_zh"].head(8)) + ("等" if len(bad) > 8 else "") +
               f"{count(len(bad))}指标评为“不足”，应作为对策和行动的重点。")
    return grade, score
