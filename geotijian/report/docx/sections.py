"""Sections 一 (上一年问题整改情况) and 二 (本年度体检工作组织与主要成效) of the report.

Both say only what the outputs hold: the ledger's statuses, the units, the survey sample
and the 12345 records of ``run.json``. What only people know is a marked paragraph to fill
(:meth:`DocWriter.fill_in`); what the study did not have (no ledger of last year, no survey,
no hotline data) is said plainly, never shown as zeros.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ...model import PROBLEM_CLASSES
from .inputs import ReportInputs
from .scope import Scope, scope_problems
from .text import count, flag_reason_zh, num, persons, share_pct, value_text
from .writer import DocWriter

__all__ = ["section_ledger", "section_work", "DIMENSION_ORDER", "area_label", "problem_names"]

from ...indicators.catalogue import DIMENSIONS as DIMENSION_ORDER  # noqa: E402



def area_label(inp: ReportInputs, scope: Scope, area_id: str) -> str:
    """An area as a reader knows it: the district's title, a town's name, a unit's label."""
    a = str(area_id)
    if a == scope.area_id and scope.level == "district":
        return inp.title
    if a in inp._town_names:
        return inp.town_name(a)
    if a == "district":
        return inp.title
    return inp.unit_label(a, with_town=not scope.is_town)


def problem_names(inp: ReportInputs) -> dict[str, tuple[str, str, str]]:
    """indicator code → (name, dimension, unit) from the indicator table (made once per
    table: a copy; every report asks for it several times)."""
    def make() -> dict[str, tuple[str, str, str]]:
        t = inp.indicator_table.drop_duplicates("code")
        return {c: (n, d, u) for c, n, d, u in zip(t["code"], t["name_zh"], t["dimension"], t["unit"], strict=True)}

    return dict(inp.derived("problem_names", ("indicator_table",), make))


# ------------------------------------------------------------------------------ 一
def _ledger_frame(inp: ReportInputs, scope: Scope) -> pd.DataFrame:
    led = scope.rows(inp.ledger).copy()
    y = inp.year
    hist = led["history"].astype(str)
    led["resolved_now"] = (led["status"] == "resolved") & hist.str.contains(rf"(?:^|; ){y}:resolved", regex=True)
    led["persisting"] = led["status"] == "persisting"
    led["new"] = led["status"] == "new"
    names = problem_names(inp)
    led["name_zh"] = led["indicator_code"].map(lambda c: names.get(c, (c, "", ""))[0])
    led["dimension"] = led["indicator_code"].map(lambda c: names.get(c, ("", "其他", ""))[1] or "其他")
    return led


def section_ledger(w: DocWriter, inp: ReportInputs, scope: Scope) -> None:
    """一、上一年问题整改情况: resolved / persisting / new by dimension and class, the
    rectification rate, and the persisting 限时解决 problems by name.

    The ledger (问题台账) is kept per 问题点位 (an indicator's shortfall in one area), so
    the counts here are points; the 问题清单 groups them per indicator and level."""
    w.heading("一、上一年问题整改情况", 1)
    probs = scope_problems(inp, scope)
    if inp.ledger is None:
        w.para(f"本次体检未提供上一年度的问题台账（study.toml 中 [ledger] last_year 未设置），无法比对上一年问题的"
               f"整改情况，本节不作统计。本年度体检查找的{count(len(probs))}问题已全部建立问题台账（附件3），"
               f"作为{inp.year + 1}年体检复核整改情况的基础。")
        w.fill_in("如有上一年度体检报告或台账的纸质材料，请在此简述上一年问题的整改进展；"
                  "并在下一年度的 study.toml 中以 [ledger] last_year 指向本年的 ledger.csv。")
        return
    led = _ledger_frame(inp, scope)
    last_n = int(led["resolved_now"].sum() + led["persisting"].sum())
    res_n, per_n, new_n = int(led["resolved_now"].sum()), int(led["persisting"].sum()), int(led["new"].sum())
    pt = "个" if "point_id" in led.columns else "项"  # the ledger's rows: 问题点位 (else problems)
    what = "问题点位" if pt == "个" else "问题"
    if last_n == 0:
        w.para(f"上一年度（{inp.year - 1}年）台账中{scope.name}没有在册问题；本年度新发现{what}{count(new_n, pt)}。")
    else:
        w.para(f"{inp.year - 1}年城市体检在{scope.name}共发现{what}{count(last_n, pt)}（上一年台账中仍在册的{what}；"
               "问题台账按问题点位逐一跟踪，即某项指标在某一区域未达标）。"
               f"经{inp.year}年体检复核：已解决{count(res_n, pt)}，仍然存在{count(per_n, pt)}，"
               f"问题整改率为{share_pct(res_n, last_n)}（已解决数 ÷ 上一年在册数）。"
               f"本年度另新发现{what}{count(new_n, pt)}。")
    # by dimension
    rows = []
    for d in [*DIMENSION_ORDER, "其他"]:
        sub = led[led["dimension"] == d]
        if not len(sub):
            continue
        lr, lp, ln = int(sub["resolved_now"].sum()), int(sub["persisting"].sum()), int(sub["new"].sum())
        rows.append([d, num(lr + lp, 0), num(lr, 0), num(lp, 0), share_pct(lr, lr + lp), num(ln, 0)])
    rows.append(["合计", num(last_n, 0), num(res_n, 0), num(per_n, 0), share_pct(res_n, last_n), num(new_n, 0)])
    w.table(["维度", f"上一年在册{what}", "已解决", "持续存在", "整改率", "本年新增"], rows,
            caption=f"{scope.name}上一年问题整改情况（按维度）", widths_cm=[3.2, 2.8, 2.2, 2.4, 2.4, 2.6],
            numeric=[1, 2, 3, 4, 5])
    # by class: this year's class of the persisting and new points (the point's own, else its problem's)
    cls = probs.set_index("problem_id")["problem_class"] if len(probs) else pd.Series(dtype=object)
    led["problem_class"] = led["problem_id"].map(cls)
    pts = inp.problem_points.set_index("point_id") if inp.problem_points is not None and "point_id" in led.columns \
        else None
    if pts is not None:
        led["problem_class"] = led["point_id"].map(pts["problem_class"]).fillna(led["problem_class"])
    rows = []
    for c in PROBLEM_CLASSES:
        sub = led[led["problem_class"] == c]
        rows.append([c, num(int(sub["persisting"].sum()), 0), num(int(sub["new"].sum()), 0),
                     num(int((sub["persisting"] | sub["new"]).sum()), 0)])
    w.table(["问题类别（本年度）", "持续存在", "本年新增", "合计"], rows,
            caption=f"{scope.name}持续存在和新增问题（按本年度问题类别）", widths_cm=[4.6, 3.4, 3.4, 3.4],
            numeric=[1, 2, 3],
            note="注：问题类别按本年度分类规则确定；已解决的问题不再分类，按维度统计见上表。")
    key = "point_id" if "point_id" in led.columns else "problem_id"
    resolved = led[led["resolved_now"]].sort_values(key)
    if len(resolved):
        w.para(f"已解决的{count(len(resolved), pt)}{what}如下表所示。")
        w.table(["序号", "指标", "区域", "首次发现"],
                [[str(k), r.name_zh, area_label(inp, scope, r.area_id), f"{int(r.first_seen)}年"]
                 for k, r in enumerate(resolved.itertuples(), 1)],
                caption=f"{scope.name}上一年问题中已解决的问题", widths_cm=[1.2, 7.4, 5.2, 2.0], numeric=[0])
    urgent = led[led["persisting"] & (led["problem_class"] == PROBLEM_CLASSES[0])]
    if len(urgent):
        p = probs.set_index("problem_id")
        w.para(f"持续存在的{what}中，{count(len(urgent), pt)}属于“限时解决”类，应列为本年度整改的重点，"
               "逐项明确责任单位和完成时限：")
        rows = []
        for r in urgent.sort_values(["indicator_code", "area_id"]).itertuples():
            if pts is not None:  # the point's own value (its problem's is the group's)
                pr = pts.loc[r.point_id] if r.point_id in pts.index else None
            else:
                pr = p.loc[r.problem_id] if r.problem_id in p.index else None
            unit = problem_names(inp).get(r.indicator_code, ("", "", ""))[2]
            rows.append([r.name_zh, area_label(inp, scope, r.area_id),
                         value_text(pr["value"], unit) if pr is not None else "—",
                         str(pr["reference"]) if pr is not None else "—",
                         f"{int(r.first_seen)}年", f"{inp.year - int(r.first_seen) + 1}年"])
        w.table(["指标", "区域", "现状值", "参考值", "首次发现", "持续"], rows,
                caption=f"{scope.name}持续存在的限时解决问题", widths_cm=[5.6, 3.0, 2.0, 1.6, 1.8, 1.6],
                numeric=[2, 3])
    else:
        w.para(f"持续存在的{what}中没有“限时解决”类问题。")


# ------------------------------------------------------------------------------ 二
def _units_text(inp: ReportInputs, scope: Scope) -> str:
    u = inp.units[inp.units["unit_id"].astype(str).isin(scope.units)]
    pop = float(u["population"].sum()) if "population" in u.columns else np.nan
    area_km2 = float(pd.to_numeric(u.get("area_ha"), errors="coerce").sum()) / 100.0 if "area_ha" in u.columns else np.nan
    flagged = u[u["flag"].astype(str).str.lower().isin(["true", "1"])] if "flag" in u.columns else u.iloc[:0]
    compounds = int(pd.to_numeric(u.get("compound_count"), errors="coerce").sum()) if "compound_count" in u.columns else 0
    committees = sum(len([c for c in re.split(r"[;,，；]", str(x)) if c.strip()]) for x in u.get("committees", []))
    where = f"{len(scope.towns)}个街镇、" if not scope.is_town else ""
    text = (f"本次体检覆盖{where}{committees}个居委会，划定社区体检单元{len(u)}个，常住人口{persons(pop)}，"
            f"面积{num(area_km2, 2)}平方公里，居住小区{num(compounds, 0)}个。")
    lo, hi = 5000, 12000
    text += f"体检单元以居委会辖区为基础，结合道路、河流和小区边界划定，人口规模为{num(lo, 0)}–{num(hi, 0)}人，"
    if len(flagged):
        reasons = "；".join(f"{area_label(inp, scope, r['unit_id'])}，{flag_reason_zh(r.get('flag_reason')) or '人口规模超出范围'}"
                           for r in flagged.to_dict("records"))
        text += f"其中{len(u) - len(flagged)}个单元在范围内，{len(flagged)}个单元未能满足（{reasons}）。"
    else:
        text += "全部单元在范围内。"
    return text


def section_work(w: DocWriter, inp: ReportInputs, scope: Scope) -> None:
    """二、本年度体检工作组织与主要成效: scope and units, survey sample, hotline, data sources,
    and a marked paragraph for the organisation and results only the office knows."""
    w.heading("二、本年度体检工作组织与主要成效", 1)
    level = {"district": "区、街镇、社区三级", "town": "街镇、社区两级", "community": "社区级"}.get(inp.level, inp.level)
    w.heading("（一）体检范围与体检单元", 2)
    w.para(f"{inp.year}年{scope.name}城市体检按{level}开展。" + _units_text(inp, scope))
    if not scope.is_town and len(inp.towns) > 1:
        rows = []
        for t in inp.towns.itertuples():
            u = inp.units[inp.units["town_code"].astype(str) == str(t.town_code)]
            flagged = int(u["flag"].astype(str).str.lower().isin(["true", "1"]).sum()) if "flag" in u.columns else 0
            rows.append([t.name, num(len(u), 0), num(len(u) - flagged, 0), num(float(u["population"].sum()), 0),
                         num(float(u["population"].median()) if len(u) else np.nan, 0)])
        w.table(["街镇", "体检单元（个）", "人口在范围内（个）", "常住人口（人）", "单元人口中位数（人）"], rows,
                caption="各街镇社区体检单元", widths_cm=[3.6, 2.8, 3.2, 3.0, 3.2], numeric=[1, 2, 3, 4])
    w.heading("（二）居民问卷调查", 2)
    _survey(w, inp, scope)
    w.heading("（三）12345热线诉求", 2)
    _hotline(w, inp, scope)
    w.heading("（四）数据来源", 2)
    _sources(w, inp)
    w.heading("（五）工作组织与主要成效", 2)
    w.fill_in("体检工作的组织方式（领导小组、牵头部门、技术团队）、时间安排、部门与街镇分工、"
              "公众参与和宣传动员等，由体检工作办公室填写。")
    w.fill_in("本年度城市体检的主要成效（上一年问题的整改成果、典型做法与工作特色），由体检工作办公室填写。")


def _survey(w: DocWriter, inp: ReportInputs, scope: Scope) -> None:
    plan = inp.sample_plan
    facts = inp.run.get("facts", {}).get("survey")
    req = None
    if plan is not None and len(plan):
        key = ("town", scope.area_id) if scope.is_town else ("district", None)
        sel = plan[plan["level"] == key[0]]
        if key[1] is not None:
            sel = sel[sel["area_id"].astype(str) == key[1]]
        if len(sel):
            req = int(sel["required"].iloc[0])
    need = (f"按不少于常住人口2‰（试点社区每个50–100份、受访者16周岁以上）的要求，{scope.name}应调查不少于"
            f"{num(req, 0)}人。" if req is not None else "")
    if not facts or plan is None or "respondents" not in plan.columns:
        w.para("本次体检未提供居民问卷调查数据（study.toml 中 [survey] path 未设置），居民满意度指标未纳入评价，"
               "本节不作统计。" + need + "各单元的样本量要求见 survey_sample_plan.csv。")
        return
    lv = plan[plan["level"] == ("town" if scope.is_town else "district")]
    if scope.is_town:
        lv = lv[lv["area_id"].astype(str) == scope.area_id]
    got = int(lv["respondents"].iloc[0]) if len(lv) else 0
    units = plan[(plan["level"] == "unit") & plan["area_id"].astype(str).isin(scope.units)]
    short = units[units["respondents"] < units["required"]]
    text = (f"本次居民问卷调查在{scope.name}共获得有效问卷{num(got, 0)}份。" + need +
            (f"完成率为{share_pct(got, req)}。" if req else ""))
    if not scope.is_town and facts.get("rows_excluded"):
        text += (f"另有{num(facts['rows_excluded'], 0)}份问卷因不符合要求被剔除（其中受访者未满"
                 f"{facts.get('min_age', 16)}周岁的{num(facts.get('under_age', 0), 0)}份）。")
    if len(short):
        text += f"{len(short)}个体检单元的样本量未达到要求，需补充调查（见下表）。"
    else:
        text += f"{len(units)}个体检单元的样本量均达到要求。"
    w.para(text)
    if len(short):
        w.table(["体检单元", "常住人口（人）", "应调查（份）", "有效问卷（份）", "缺口（份）"],
                [[area_label(inp, scope, r.area_id), num(r.population, 0), num(r.required, 0), num(r.respondents, 0),
                  num(r.required - r.respondents, 0)] for r in short.itertuples()],
                caption=f"{scope.name}样本量未达要求的体检单元", widths_cm=[4.4, 2.8, 2.8, 2.8, 2.8],
                numeric=[1, 2, 3, 4])


def _hotline(w: DocWriter, inp: ReportInputs, scope: Scope) -> None:
    facts = inp.run.get("facts", {}).get("hotline")
    rates = inp.complaint_rates
    if not facts or rates is None:
        w.para("本次体检未提供12345热线诉求数据（study.toml 中 [hotline] path 未设置），热线诉求未纳入问题分类，本节不作统计。")
        return
    lv = rates[rates["level"] == ("town" if scope.is_town else "district")]
    if scope.is_town:
        lv = lv[lv["area_id"].astype(str) == scope.area_id]
    allc = lv[lv["category"] == "全部"]
    total = int(allc["count"].sum()) if len(allc) else 0
    rate = float(allc["rate_per_1000"].iloc[0]) if len(allc) else np.nan
    period = (f"{facts['first_date']}至{facts['last_date']}" if facts.get("first_date") else "体检年度内")
    cats = lv[lv["category"] != "全部"].sort_values(["count", "category"], ascending=[False, True])
    cats = cats[cats["count"] > 0]
    top = "、".join(f"{r.category}{num(r.count, 0)}件（{share_pct(r.count, total)}）" for r in cats.head(5).itertuples())
    text = f"{period}，{scope.name}体检单元内共有12345热线诉求{num(total, 0)}件，每千名常住人口{num(rate, 2)}件。"
    if not scope.is_town and facts.get("records", total) != facts.get("located", total):
        text += f"（收到{num(facts['records'], 0)}件，其中{num(facts['located'], 0)}件位于体检单元内。）"
    if top:
        text += f"诉求最多的类别为{top}。"
    w.para(text)
    if len(cats):
        w.table(["诉求类别", "件数", "占比", "每千人（件）"],
                [[r.category, num(r.count, 0), share_pct(r.count, total), num(r.rate_per_1000, 2)] for r in cats.itertuples()],
                caption=f"{scope.name}12345热线诉求分类", widths_cm=[4.6, 3.4, 3.4, 3.4], numeric=[1, 2, 3])


def _sources(w: DocWriter, inp: ReportInputs) -> None:
    run = inp.run
    ver = run.get("versions", {}).get("geotijian", "")
    text = (f"体检数据由 geotijian {ver} 按同一套方法计算：空间数据统一转换到 {run.get('crs', '')} 坐标系量算，"
            "设施覆盖按路网步行距离计算，指标与参考值逐项比对。所用数据文件如下（SHA-256 摘要可核对文件是否一致）。")
    if run.get("attribution"):
        text += f"部分图层来自 OpenStreetMap（{run['attribution']}）。"
    w.para(text)
    rows = [[f"{i + 1}", _short_path(x["path"]), num(x.get("bytes", np.nan) / 1024.0, 0) + " KB",
             str(x.get("sha256", ""))[:16]] for i, x in enumerate(run.get("inputs", []))]
    if rows:
        w.table(["序号", "数据文件", "大小", "SHA-256（前16位）"], rows, caption="体检数据文件",
                widths_cm=[1.2, 7.4, 2.4, 4.6], numeric=[0, 2])
    w.fill_in("数据的提供部门和采集（截止）日期，如统计人口、设施名录、问卷调查时间，由体检工作办公室核对填写。")


def _short_path(p: str) -> str:
    parts = str(p).replace("\\", "/").split("/")
    return "/".join(parts[-2:])
