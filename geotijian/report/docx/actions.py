"""Section 五 (对策和行动建议) and the 附件 (attachments) of the report.

五 groups the scope's problems by class (限时解决 / 尽力解决 / 长期谋划) and indicator: one
row per indicator with the areas it touches, the residents affected, the responsible
department and the rectification suggestion of the 整改建议清单; then the project library
(更新项目储备库, when the study ran its renewal plan). The 附件 print the 一表三清单, the
problem ledger and the maps; long tables keep their district and town rows in the document
and say where the full table is (the workbook and CSV files of the same run).
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from ...model import PROBLEM_CLASSES
from .inputs import ReportInputs
from .scope import Scope, places_text, point_names, scope_problems
from .sections import DIMENSION_ORDER, area_label, problem_names
from .text import JUDGEMENT_ZH, STATUS_ZH, count, num, persons, plain_zh, value_text
from .writer import DocWriter

__all__ = ["section_actions", "section_annexes", "MAX_ANNEX_ROWS"]

#: longest table printed whole in an attachment; longer ones keep their district and town
#: rows (the rest stays in the workbook / CSV of the same run, as the note under it says)
MAX_ANNEX_ROWS = 300
#: areas named in one cell of the actions table before "等"
_MAX_AREAS_NAMED = 3
#: projects of the library listed in section 五 (the library workbook holds all)
_MAX_PROJECTS = 30

_CLASS_TEXT = {
    "限时解决": "群众反映强烈、影响安全或基本服务的问题，应列入年度整改计划，明确责任单位和完成时限，限期解决",
    "尽力解决": "需要用地、资金或跨部门协调的问题，应结合城市更新和年度计划尽力推进",
    "长期谋划": "涉及结构性、系统性短板的问题，应纳入规划和中长期计划统筹谋划",
}


def _suggestion_frame(inp: ReportInputs, scope: Scope) -> pd.DataFrame:
    """The scope's problems with their department, full suggestion and places (五 and 附件2
    both print them: made once per report)."""
    return inp.memo(("suggestions", scope.level, scope.area_id, frozenset(scope.units)),
                    lambda: _make_suggestion_frame(inp, scope))


def _make_suggestion_frame(inp: ReportInputs, scope: Scope) -> pd.DataFrame:
    probs = scope_problems(inp, scope).copy()
    if not len(probs):
        return probs
    sug = inp.suggestions
    if len(sug) and "problem_id" in sug.columns:
        keep = [c for c in ("problem_id", "department", "suggestion", "area_name") if c in sug.columns
                and (c not in ("department",) or c not in probs.columns)]
        s = sug[keep].rename(columns={"suggestion": "suggestion_full", "area_name": "_sug_area"})
        probs = probs.merge(s, on="problem_id", how="left")
    for col in ("department", "suggestion_full", "_sug_area"):
        if col not in probs.columns:
            probs[col] = ""
    probs["suggestion_full"] = probs["suggestion_full"].fillna(probs.get("suggestion", "")).fillna("")
    probs["suggestion_full"] = [
        _named(text, area_label(inp, scope, a), (str(a), "" if pd.isna(n) else str(n)))
        for text, a, n in zip(probs["suggestion_full"], probs["area_id"], probs["_sug_area"], strict=True)]
    names = point_names(inp, scope)
    probs["places"] = [places_text(inp, scope, r, names) or area_label(inp, scope, r.area_id)
                       for r in probs.itertuples()]
    probs["department"] = probs["department"].fillna("").astype(str)
    return probs.drop(columns="_sug_area")


def _named(text: str, label: str, tokens: tuple[str, ...]) -> str:
    """A suggestion of the run's tables as the report prints it: the area's ID (or the
    study's short name standing for the district) replaced by the name a reader knows
    (``在310114101-U07补足…`` → ``在菊园新区 U07（梅园居委会）补足…``), units in Chinese."""
    out = str(text)
    for tok in sorted({t for t in tokens if t and t != label}, key=len, reverse=True):
        if tok.isascii():  # an ID or short name: whole, not the start of a longer ID
            pat = r"\s*(?<![A-Za-z0-9_-])" + re.escape(tok) + r"(?![A-Za-z0-9_-])\s*"
        else:
            pat = re.escape(tok)
        out = re.sub(pat, lambda _m: label, out)
    return plain_zh(out)


_LEVEL_RANK = {"district": 0, "town": 1, "unit": 2}


def _group_rows(inp: ReportInputs, scope: Scope, sub: pd.DataFrame) -> list[list[str]]:
    """One row per indicator: name, areas (top level first), residents, department, suggestion."""
    rows = []
    sub = sub.assign(_rank=sub["level"].map(_LEVEL_RANK).fillna(3))
    order = (sub.groupby("indicator_code")["affected_population"].max().fillna(0.0)
             .reset_index().sort_values(["affected_population", "indicator_code"], ascending=[False, True]))
    # each indicator's rows, top level first (one stable sort: the order sorting each group gives)
    srt = sub.sort_values(["indicator_code", "_rank", "area_id"])
    at = srt.groupby("indicator_code", sort=False).indices
    col = {c: srt[c].to_numpy() for c in ("name_zh", "affected_population", "department", "suggestion_full",
                                           "level", "area_id", "places") if c in srt.columns}
    for code in order["indicator_code"]:
        g = at[code]
        top = g[0]
        if "point_count" in srt.columns:  # grouped problems: one per level, its 问题点位 named
            areas = "；".join(dict.fromkeys(p for p in col["places"][g] if p))
        else:
            lv = col["level"][g]
            wide = [area_label(inp, scope, a) for a in col["area_id"][g][lv != "unit"]]
            units = [area_label(inp, scope, a) for a in col["area_id"][g][lv == "unit"]]
            parts = ["、".join(wide)] if wide else []
            if units:
                named = "、".join(units[:_MAX_AREAS_NAMED]) + ("等" if len(units) > _MAX_AREAS_NAMED else "")
                parts.append(f"{len(units)}个体检单元：{named}")
            areas = "；".join(parts)
        # residents: the widest area's figure (a town's count already holds its units')
        pops = col["affected_population"][g]
        pop = float(pops[0]) if np.isfinite(float(pops[0] or np.nan)) \
            else float(pd.Series(pops).sum())
        depts = [d for d in dict.fromkeys(col["department"][g]) if d]
        rows.append([str(col["name_zh"][top]), areas, persons(pop) if pop > 0 else "—", "、".join(depts) or "—",
                     str(col["suggestion_full"][top]) or "—"])
    return rows


def section_actions(w: DocWriter, inp: ReportInputs, scope: Scope) -> None:
    """五、对策和行动建议: problems by class and indicator with the suggestions; the project
    library when the study has one; a marked paragraph for the office's own measures."""
    w.heading("五、对策和行动建议", 1)
    probs = _suggestion_frame(inp, scope)
    if not len(probs):
        w.para(f"本年度体检在{scope.name}未发现未达到参考值的问题，建议保持现有工作机制，持续跟踪各项指标。")
    else:
        counts = probs["problem_class"].value_counts()
        w.para(f"针对本次体检在{scope.name}发现的{count(len(probs))}问题（" +
               "、".join(f"{c}{count(int(counts.get(c, 0)))}" for c in PROBLEM_CLASSES) +
               "），按问题类别提出对策和行动建议如下。同一指标在多个区域出现的问题合并为一条，"
               "逐项问题的整改建议见附件2整改建议清单。")
    for i, cls in enumerate(PROBLEM_CLASSES, start=1):
        w.heading(f"（{'一二三'[i - 1]}）{cls}类问题", 2)
        sub = probs[probs["problem_class"] == cls] if len(probs) else probs
        if not len(sub):
            w.para(f"本年度无“{cls}”类问题。")
            continue
        dims = [d for d in DIMENSION_ORDER if d in set(sub["dimension"])]
        w.para(f"“{cls}”类问题{count(len(sub))}，涉及{count(sub['indicator_code'].nunique(), '项指标')}"
               f"（{'、'.join(dims)}维度）。{_CLASS_TEXT[cls]}。")
        w.table(["指标", "涉及区域", "涉及居民", "责任部门", "整改建议"], _group_rows(inp, scope, sub),
                caption=f"{scope.name}{cls}类问题对策建议", widths_cm=[3.0, 4.4, 1.7, 1.9, 4.6], numeric=[2])
    w.heading("（四）项目储备与年度计划", 2)
    _projects(w, inp, scope)
    w.fill_in("结合本地实际补充的对策措施（资金安排、政策保障、部门协同、长效机制等），由体检工作办公室填写。")


def _projects(w: DocWriter, inp: ReportInputs, scope: Scope) -> None:
    pr = inp.projects
    if pr is None:
        w.para("本次体检未运行更新规划步骤（study.toml 中未设置 [plan]），未生成更新项目储备库。"
               "建议据上述问题清单编制项目储备库和年度实施计划。")
        return
    if scope.is_town and "town_code" in pr.columns:  # (a grouped problem's projects list its towns)
        pr = pr[_in_town(pr["town_code"], scope.area_id) | pr["area_id"].astype(str).isin(scope.areas)]
    if not len(pr):
        w.para(f"更新项目储备库中没有位于{scope.name}的项目。")
        return
    pr = pr.sort_values(["priority_rank", "project_id"]) if "priority_rank" in pr.columns else pr
    types = pr["project_type"].value_counts() if "project_type" in pr.columns else pd.Series(dtype=int)
    text = (f"根据问题清单，{scope.name}更新项目储备库共有项目{count(len(pr), '个')}" +
            ("（" + "、".join(f"{k}{v}个" for k, v in sorted(types.items())) + "）" if len(types) else "") + "。")
    if inp.annual_plan is not None:
        ap = inp.annual_plan
        if scope.is_town and "town_code" in ap.columns:
            ap = ap[_in_town(ap["town_code"], scope.area_id)]
        text += f"其中{count(len(ap), '个')}项目列入{inp.year + 1}年度实施计划。"
    shown = pr.head(_MAX_PROJECTS)
    if len(pr) > len(shown):
        text += f"下表列出优先序前{len(shown)}的项目，全部项目见 project_library.xlsx。"
    w.para(text)

    def cell(r: pd.Series, col: str) -> str:
        v = r.get(col)
        return "—" if v is None or (isinstance(v, float) and np.isnan(v)) or str(v) == "" else str(v)

    w.table(["序号", "项目名称", "类型", "区域", "牵头部门", "时间安排"],
            [[str(k + 1), cell(r, "project_name"), cell(r, "project_type"), cell(r, "area_name"),
              cell(r, "lead_department"), cell(r, "timing")] for k, (_, r) in enumerate(shown.iterrows())],
            caption=f"{scope.name}更新项目储备库（按优先序）", widths_cm=[1.1, 5.4, 1.8, 2.6, 2.2, 2.5],
            numeric=[0])


def _in_town(codes: pd.Series, town: str) -> pd.Series:
    """Rows whose ``town_code`` (one code or ``;``-separated codes) holds ``town``."""
    return codes.fillna("").astype(str).str.split(";").map(lambda cs: town in cs)


# ------------------------------------------------------------------------------ 附件
def _cap(df: pd.DataFrame, what: str, where: str) -> tuple[pd.DataFrame, str | None]:
    """The rows printed in an attachment, and the note when some stay in the files."""
    if len(df) <= MAX_ANNEX_ROWS:
        return df, None
    top = df[df["level"].isin(["district", "town"])] if "level" in df.columns else df.head(MAX_ANNEX_ROWS)
    return top, (f"注：{what}共{num(len(df), 0)}行，此处列出区和街镇层级的{num(len(top), 0)}行；"
                 f"社区体检单元的行见{where}。")


def section_annexes(w: DocWriter, inp: ReportInputs, scope: Scope, *, files: dict[str, str]) -> None:
    """附件: 1 一表 (indicator table), 2 三清单, 3 问题台账, 4 maps and the HTML map's file."""
    w.page_break()
    w.heading("附件", 1)
    t = scope.rows(inp.indicator_table)
    w.heading("附件1  城市体检指标表（一表）", 2)
    lv = {"district": 0, "town": 1, "unit": 2}
    t = t.assign(_l=t["level"].map(lv)).sort_values(["_l", "area_id", "dimension", "code"],
                                                      key=lambda s: s.map({d: i for i, d in enumerate(DIMENSION_ORDER)})
                                                      if s.name == "dimension" else s)
    shown, note = _cap(t, "指标表", f"{files['workbook']}（一表）和 indicator_table.csv")
    w.table(["区域", "维度", "指标", "现状值", "参考值", "评价"],
            [[area_label(inp, scope, r.area_id), r.dimension, r.name_zh, value_text(r.value, r.unit),
              r.reference or "—", JUDGEMENT_ZH.get(r.judgement, r.judgement)] for r in shown.itertuples()],
            caption=f"{scope.name}城市体检指标表", widths_cm=[2.6, 1.8, 5.4, 2.2, 1.8, 1.8], numeric=[3, 4], note=note)
    w.heading("附件2  优势清单、问题清单、整改建议清单（三清单）", 2)
    units = {c: v[2] for c, v in problem_names(inp).items()}
    st = scope.rows(inp.strengths)
    shown, note = _cap(st, "优势清单", f"{files['workbook']}（优势清单）和 strengths.csv")
    if len(shown):
        w.table(["区域", "指标", "现状值", "参考值"],
                [[area_label(inp, scope, r.area_id), r.name_zh, value_text(r.value, units.get(r.indicator_code)),
                  r.reference]
                 for r in shown.itertuples()],
                caption=f"{scope.name}优势清单", widths_cm=[3.2, 7.6, 2.4, 2.4], numeric=[2, 3], note=note)
    else:
        w.para(f"{scope.name}没有达到参考值的指标，优势清单为空。")
    pr = _suggestion_frame(inp, scope)
    if len(pr):
        pr = pr.assign(_l=pr["level"].map(lv)).sort_values(["problem_class", "_l", "indicator_code", "area_id"],
                                                           key=lambda s: s.map({c: i for i, c in enumerate(PROBLEM_CLASSES)})
                                                           if s.name == "problem_class" else s)
        shown, note = _cap(pr, "问题清单", f"{files['workbook']}（问题清单）和 problems.csv")
        w.table(["序号", "指标", "空间落位（问题点位）", "现状值", "参考值", "类别", "影响人口"],
                [[str(k), r.name_zh, r.places,
                  value_text(r.value, units.get(r.indicator_code)), r.reference,
                  r.problem_class, persons(r.affected_population)] for k, r in enumerate(shown.itertuples(), 1)],
                caption=f"{scope.name}问题清单", widths_cm=[1.1, 4.8, 2.9, 1.8, 1.4, 1.8, 1.8], numeric=[0, 3, 4, 6],
                note=_id_note(note, "problems.csv"))
        shown, note = _cap(pr, "整改建议清单", f"{files['workbook']}（整改建议清单）和 suggestions.csv")
        w.table(["序号", "指标", "空间落位（问题点位）", "类别", "责任部门", "整改建议"],
                [[str(k), r.name_zh, r.places, r.problem_class, r.department or "—",
                  r.suggestion_full] for k, r in enumerate(shown.itertuples(), 1)],
                caption=f"{scope.name}整改建议清单", widths_cm=[1.1, 3.2, 2.6, 1.8, 2.0, 4.9], numeric=[0],
                note=_id_note(note, "suggestions.csv"))
    else:
        w.para(f"{scope.name}没有问题，问题清单和整改建议清单为空。")
    w.heading("附件3  问题台账", 2)
    if inp.ledger is None:
        w.para(f"本次体检未提供上一年度台账，本年度{count(len(pr))}问题作为新增问题建立台账，"
               f"见 {files['ledger']}，下一年度体检据此复核整改情况。")
    else:
        led = scope.rows(inp.ledger).sort_values("point_id" if "point_id" in inp.ledger.columns else "problem_id")
        if "level" not in led.columns:
            led = led.assign(level=np.where(led["area_id"].astype(str).isin(scope.units), "unit", "town"))
        shown, note = _cap(led, "问题台账", files["ledger"])
        names = problem_names(inp)
        w.table(["序号", "指标", "区域", "状态", "首次发现", "最近发现", "历年记录"],
                [[str(k), names.get(r.indicator_code, (r.indicator_code,))[0], area_label(inp, scope, r.area_id),
                  STATUS_ZH.get(r.status, r.status), f"{r.first_seen}年", f"{r.last_seen}年", _history_zh(r.history)]
                 for k, r in enumerate(shown.itertuples(), 1)],
                caption=f"{scope.name}问题台账", widths_cm=[1.1, 4.0, 3.0, 1.3, 1.6, 1.6, 3.0], numeric=[0],
                note=_id_note(note, files["ledger"]))
    w.heading("附件4  图纸", 2)
    figs = [(k, inp.figures[k]) for k in files.get("figures", ()) if k in inp.figures]  # (in the files' order)
    for key, path in figs:
        w.figure(path, files["figure_titles"].get(key, key), width_cm=14.5)
    w.para(f"体检问题地图（交互式网页，离线可用，可逐层开关图层、点击查看问题和指标）：{files['map']}。"
           f"全部图层和表格见 GeoPackage 文件 {files['gpkg']}（可在 QGIS 中打开，已带图层样式）。"
           + ("各设施覆盖缺口图见 maps 文件夹（gaps_<设施类型>.png）。" if files.get("gaps") else ""))


def _id_note(note: str | None, file: str) -> str:
    """The note under a problem table: where the problem IDs (and the ledger's keys, the
    问题点位 IDs) are."""
    if file.endswith("ledger.csv"):
        ids = f"问题点位编号（指标代码@区域编号，下一年度复核整改情况时使用）见 {file} 第一列，按指标和区域对应。"
    else:
        ids = (f"问题编号（指标代码@层级）见 {file}，其问题点位编号（指标代码@区域编号，下一年度复核整改情况时使用）"
               "见 problem_points.csv 和问题台账。")
    return f"注：{ids}" if note is None else f"{note.rstrip('。')}；{ids}"


def _history_zh(h: str) -> str:
    parts = [p.strip() for p in str(h).split(";") if p.strip()]
    out = []
    for p in parts:
        y, _, s = p.partition(":")
        out.append(f"{y}年{STATUS_ZH.get(s, s)}")
    return "；".join(out)
