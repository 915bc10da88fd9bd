"""Shared pieces of the report writers: field labels, palettes, catalogue names.

The interactive map, the static figures and the GeoPackage use the same Chinese field
names (as GeoPackage aliases, popup headers and legend titles), the same colour per problem
class and per facility type, so a reader sees one vocabulary across every attachment.
"""

from __future__ import annotations

import functools
import html
import re
from typing import Any

import numpy as np
import pandas as pd

from .. import data as _data
from ..model import PROBLEM_CLASSES

# Field labels (zh, en); units in brackets (GB/T conventions: 人, 户, 公顷, 米).
FIELD_LABELS: dict[str, tuple[str, str]] = {
    "boundary_id": ("范围编号", "boundary ID"),
    "town_code": ("街镇代码", "town code"),
    "town_name": ("街镇", "town"),
    "committee_id": ("居委编号", "committee ID"),
    "committees": ("居委会", "residents' committees"),
    "compound_id": ("小区编号", "compound ID"),
    "block_id": ("街坊编号", "block ID"),
    "unit_id": ("体检单元编号", "check-up unit ID"),
    "unit_name": ("社区体检单元", "check-up unit"),
    "home_id": ("住宅编号", "home ID"),
    "home_kind": ("住宅类型", "home kind"),
    "name": ("名称", "name"),
    "population": ("常住人口(人)", "residents (persons)"),
    "households": ("户数(户)", "households"),
    "area_ha": ("面积(公顷)", "area (ha)"),
    "compound_count": ("小区数(个)", "compounds"),
    "compactness": ("紧凑度", "compactness"),
    "flag": ("标记", "flag"),
    "flag_reason": ("标记原因", "flag reason"),
    "build_year": ("建成年代", "year built"),
    "facility_id": ("设施编号", "facility ID"),
    "type": ("设施类型", "facility type"),
    "capacity": ("规模", "capacity"),
    "facility_type": ("设施类型", "facility type"),
    "facility_name_zh": ("设施名称", "facility"),
    "walk_distance_m": ("服务半径(米)", "service radius (m)"),
    "distance_m": ("到最近设施步行距离(米)", "walk to nearest facility (m)"),
    "n_missing": ("缺口设施类型数(类)", "types missing"),
    "missing": ("缺口设施类型", "types missing (codes)"),
    "worst_ratio": ("最大缺口倍数(距离/服务半径)", "worst gap (distance / radius)"),
    "problem_id": ("问题编号", "problem ID"),
    "indicator_code": ("指标代码", "indicator code"),
    "code": ("指标代码", "indicator code"),
    "name_zh": ("指标名称", "indicator"),
    "dimension": ("维度", "dimension"),
    "level": ("层级", "level"),
    "area_id": ("区域编号", "area ID"),
    "area_name": ("区域名称", "area"),
    "unit": ("单位", "unit"),
    "value": ("现状值", "value"),
    "reference": ("参考值", "reference value"),
    "judgement": ("评价", "judgement"),
    "gap": ("差距", "gap"),
    "problem_class": ("问题类别", "problem class"),
    "affected_population": ("影响人口(人)", "affected residents (persons)"),
    "suggestion": ("建议", "suggestion"),
    "status": ("台账状态", "ledger status"),
    "first_seen": ("首次发现", "first seen"),
    "last_seen": ("最近发现", "last seen"),
    "history": ("历史记录", "history"),
    "cell_id": ("网格编号", "cell ID"),
    "category": ("类别", "category"),
    "count": ("数量(件)", "count"),
    "z_score": ("Z 得分", "z-score"),
    "p_value": ("P 值", "p-value"),
    "significant": ("显著", "significant"),
    "pop_id": ("人口点编号", "population point ID"),
    "complaint_id": ("工单编号", "complaint ID"),
    "date": ("日期", "date"),
    "text": ("内容", "text"),
    "building_id": ("建筑编号", "building ID"),
    "levels": ("层数", "levels"),
    "height": ("高度(米)", "height (m)"),
    "use": ("用途", "use"),
    "road_id": ("道路编号", "road ID"),
    "highway": ("道路等级", "road class"),
    "water_id": ("水系编号", "water ID"),
    "rail_id": ("铁路编号", "rail ID"),
    "park_id": ("公园编号", "park ID"),
    "kind": ("类型", "kind"),
    # the renewal plan (geotijian.plan): areas, sites, projects
    "site_id": ("点位编号", "site ID"),
    "candidate_id": ("候选点编号", "candidate ID"),
    "source": ("来源", "source"),
    "residents_covered": ("新覆盖居民(人)", "residents newly covered"),
    "homes_covered": ("新覆盖小区(个)", "homes newly covered"),
    "residents_in_reach": ("步行范围内未覆盖居民(人)", "uncovered residents in reach"),
    "homes_in_reach": ("步行范围内未覆盖小区(个)", "uncovered homes in reach"),
    "demand_served": ("服务需求(人)", "demand served"),
    "in_model": ("进入模型", "in the model"),
    "chosen": ("入选", "chosen"),
    "towns": ("街镇", "towns"),
    "town_codes": ("街镇代码", "town codes"),
    "units": ("体检单元", "check-up units"),
    "unit_count": ("单元数", "units"),
    "score": ("更新评分", "renewal score"),
    "score_max": ("单元最高分", "highest unit score"),
    "problem_count": ("问题数", "problems"),
    "problems_by_class": ("问题分类", "problems by class"),
    "main_problems": ("主要问题", "main problems"),
    "problem_ids": ("问题编号清单", "problem IDs"),
    "reason": ("划定依据", "reason"),
    "project_id": ("项目编号", "project ID"),
    "project_name": ("项目名称", "project"),
    "project_type": ("项目类型", "project type"),
    "indicator_name": ("指标名称", "indicator"),
    "priority": ("优先级", "priority"),
    "priority_rank": ("优先序", "priority rank"),
    "renewal_area_id": ("更新片区", "renewal area"),
    "lead_department": ("牵头部门", "lead department"),
    "partners": ("配合单位", "partners"),
    "content": ("建设内容/工作措施", "content"),
    "path": ("实施路径", "path"),
    "timing": ("时间安排", "timing"),
    "start_year": ("启动年份", "start year"),
    "end_year": ("完成年份", "end year"),
    "site_ids": ("新增设施点位", "new sites"),
    "site_count": ("点位数(处)", "sites"),
    "site_residents": ("点位新覆盖本区域居民(人)", "residents covered here by the sites"),
    "rule": ("项目规则", "project rule"),
}

LAYER_LABELS: dict[str, tuple[str, str]] = {
    "boundary": ("研究范围", "study boundary"),
    "towns": ("街镇", "towns"),
    "committees": ("居委会", "residents' committees"),
    "compounds": ("居住小区", "residential compounds"),
    "buildings": ("建筑", "buildings"),
    "roads": ("道路", "roads"),
    "water": ("水系", "water"),
    "rail": ("铁路", "railways"),
    "parks": ("公园绿地", "parks"),
    "greenways": ("绿道", "greenways"),
    "facilities": ("公共服务设施", "facilities"),
    "population": ("人口点", "population points"),
    "complaints": ("12345 热线工单", "hotline complaints"),
    "blocks": ("居住街坊", "blocks"),
    "units": ("社区体检单元", "check-up units"),
    "homes": ("住宅", "homes"),
    "coverage_gaps": ("设施覆盖缺口", "coverage gaps"),
    "service_areas": ("设施服务范围", "service areas"),
    "hotspots": ("热线热点", "hotline hot spots"),
    "problems": ("体检问题", "problems"),
    "indicator_values": ("指标值", "indicator values"),
    "indicator_table": ("指标体系表(一表)", "indicator table"),
    "strengths": ("优势清单", "strengths"),
    "suggestions": ("建议清单", "suggestions"),
    "ledger": ("问题台账", "problem ledger"),
    "sites": ("备选用地", "candidate land"),
    "renewal_areas": ("更新片区", "renewal areas"),
    "new_sites": ("新增设施选址", "new facility sites"),
    "candidate_sites": ("选址候选点", "candidate sites"),
    "projects": ("更新项目储备库", "renewal projects"),
}

PROBLEM_CLASS_EN = {"限时解决": "solve within a deadline", "尽力解决": "solve as far as possible",
                    "长期谋划": "long-term planning"}
# ColorBrewer RdYlBu ends and middle: urgent red, best-effort orange, long-term blue.
PROBLEM_COLORS = {"限时解决": "#d7301f", "尽力解决": "#fc8d59", "长期谋划": "#4575b4"}
OTHER_COLOR = "#7f7f7f"
NODATA_COLOR = "#d9d9d9"

# Distance beyond the service radius, as a share of it: ≤ 25 %, ≤ 50 %, ≤ 100 %, > 100 %.
GAP_RATIO_BREAKS = (1.25, 1.5, 2.0)
# ColorBrewer Purples: apart from the class reds/orange/blue and the choropleth greens.
GAP_COLORS = ("#cbc9e2", "#9e9ac8", "#6a51a3", "#3f007d")

# Qualitative palette for facility types (ColorBrewer Set1, then Dark2 and Paired darks):
# 20 distinguishable colours, given to the types present in catalogue order.
TYPE_PALETTE = ("#e41a1c", "#377eb8", "#4daf4a", "#984ea3", "#ff7f00", "#a65628", "#f781bf",
                "#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#666666",
                "#1f78b4", "#33a02c", "#b15928", "#6a3d9a", "#b2df8a", "#fb9a99")


def lang_index(lang: str) -> int:
    """0 for Chinese, 1 for English; anything else is an error."""
    if lang not in ("zh", "en"):
        raise ValueError(f"lang must be 'zh' or 'en', got {lang!r}")
    return 0 if lang == "zh" else 1


def field_label(col: str, lang: str = "zh") -> str:
    """Display name of a field (Chinese by default); unknown fields keep their name.

    ``dist_<type>`` (the compact gap layer) is the walk to the nearest facility of the type.
    """
    lab = FIELD_LABELS.get(col)
    if lab is None and col.startswith("dist_") and (name := facility_type_name(col[5:], lang)) != col[5:]:
        return f"{name}步行距离(米)" if lang_index(lang) == 0 else f"walk to {name} (m)"
    return lab[lang_index(lang)] if lab else col


def layer_label(name: str, lang: str = "zh") -> str:
    lab = LAYER_LABELS.get(name)
    return lab[lang_index(lang)] if lab else name


def problem_class_label(cls: str, lang: str = "zh") -> str:
    if lang_index(lang) == 0:
        return str(cls)
    return PROBLEM_CLASS_EN.get(str(cls), str(cls))


def ordered_classes(values: pd.Series) -> list[str]:
    """The problem classes present: the three official ones first, then any other, sorted."""
    present = set(values.dropna().astype(str))
    return [c for c in PROBLEM_CLASSES if c in present] + sorted(present - set(PROBLEM_CLASSES))


@functools.lru_cache(maxsize=1)
def facility_catalogue() -> pd.DataFrame:
    """The packaged facility catalogue (code, name_zh, name_en ...), in file order."""
    return pd.read_csv(_data.path("facilities.csv"), dtype=str)


@functools.lru_cache(maxsize=1)
def indicator_catalogue() -> pd.DataFrame:
    return pd.read_csv(_data.path("indicators.csv"), dtype=str)


@functools.lru_cache(maxsize=2)
def _type_names(li: int) -> dict[str, str]:
    """Facility type code -> catalogue name (zh or en); the first row of a code."""
    cat = facility_catalogue()
    names: dict[str, str] = {}
    for code, name in zip(cat["code"].to_numpy(dtype=object), cat["name_zh" if li == 0 else "name_en"].to_numpy(dtype=object),
                          strict=True):
        if isinstance(code, str):
            names.setdefault(code, str(name))
    return names


def facility_type_name(code: str, lang: str = "zh") -> str:
    """Catalogue name of a facility type code; an unknown code is shown as is."""
    name = _type_names(lang_index(lang)).get(code) if isinstance(code, str) else None
    return str(code) if name is None else name


def ordered_types(codes: pd.Series) -> list[str]:
    """Facility types present, in catalogue order, unknown codes after them (sorted)."""
    present = {str(v) for v in pd.unique(codes.dropna().to_numpy(dtype=object))}  # 300,000 gap rows: unique first
    cat = [c for c in facility_catalogue()["code"] if c in present]
    return cat + sorted(present - set(cat))


def type_colors(types: list[str]) -> dict[str, str]:
    """A colour per facility type, distinct for up to 20 types (in the order given)."""
    return {t: TYPE_PALETTE[i % len(TYPE_PALETTE)] for i, t in enumerate(types)}


def study_type_colors(study: Any) -> dict[str, str]:
    """Colours of every facility type of a study (facilities, gaps, service areas).

    The same type gets the same colour on the web map, the figures and in QGIS.
    """
    parts = [pd.Series(dtype=object)]
    for layer, col in (("facilities", "type"), ("coverage_gaps", "facility_type"),
                       ("service_areas", "facility_type")):
        gdf = getattr(study, layer, None)
        if gdf is not None and col in gdf.columns:
            parts.append(pd.Series(pd.unique(gdf[col].to_numpy(dtype=object))))
    return type_colors(ordered_types(pd.concat(parts, ignore_index=True)))


def esc(value: Any) -> str:
    """HTML-escape one value for display (quotes too); ``None``/NaN become an em dash."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    return html.escape(str(value), quote=True)


def format_values(s: pd.Series) -> pd.Series:
    """Display strings of a column: numbers to 2 decimals without trailing zeros, NaN as —."""
    if pd.api.types.is_bool_dtype(s):
        return s.map({True: "✓", False: "✗"}).astype(object).where(s.notna(), "—")
    if pd.api.types.is_numeric_dtype(s):
        num = pd.to_numeric(s, errors="coerce").astype(float)
        fixed = np.char.mod("%.2f", np.nan_to_num(num.to_numpy(), nan=0.0))
        # trailing zeros (and a bare point) off, "-0" as "0": on all the values at once (one
        # string, a line each), not a regular expression per value
        txt = _ZEROS.sub("", "\n".join(fixed.tolist())) if len(fixed) else ""
        txt = np.array(_MINUS_ZERO.sub("0", txt).split("\n") if len(fixed) else [], dtype=object)
        return pd.Series(np.where(num.notna().to_numpy(), txt, "—"), index=s.index, dtype=object)
    vals = s.to_numpy(dtype=object)
    na = pd.isna(vals)
    if len(vals) and pd.api.types.infer_dtype(vals[~na], skipna=False) in ("string", "empty"):
        out = vals.copy()  # text already (a string column): only the missing values change
        out[na] = "—"
        return pd.Series(out, index=s.index, dtype=object)
    out = s.astype(object).where(s.notna(), None)
    return out.map(lambda v: "—" if v is None else (
        ", ".join(map(str, v)) if isinstance(v, (list, tuple, np.ndarray)) else str(v)))


_ZEROS = re.compile(r"\.?0+$", flags=re.M)
_MINUS_ZERO = re.compile(r"^-0$", flags=re.M)


def escape_all(values: Any) -> np.ndarray:
    """``html.escape(v, quote=True)`` of every string in ``values``, as an object array.

    The strings are escaped as one text (joined by NUL, which escaping leaves alone, and
    split again): five C-level replaces instead of five per value.
    """
    vals = np.asarray(values, dtype=object)
    if not len(vals):
        return vals.copy()
    text = "\x00".join(vals.tolist())
    if text.count("\x00") != len(vals) - 1:  # a value holds a NUL itself
        return np.array([html.escape(v, quote=True) for v in vals.tolist()], dtype=object)
    out = np.empty(len(vals), dtype=object)
    out[:] = html.escape(text, quote=True).split("\x00")
    return out


def escaped_values(s: pd.Series) -> pd.Series:
    """``format_values`` then HTML-escaped, ready to insert into markup."""
    return pd.Series(escape_all(format_values(s).to_numpy(dtype=object)), index=s.index, dtype=object)
