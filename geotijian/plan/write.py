"""Writers of the renewal plan: the project-library workbook and its CSV tables.

``project_library.xlsx`` holds six sheets with Chinese headers, ready to print (A4
landscape, fitted to the page width, header row repeated on every page, autofilter,
frozen header, long texts wrapped): 更新项目储备库, 年度实施计划, 更新片区, 片区评分,
新增设施选址, 选址求解说明. Each table is also written as CSV (UTF-8 with BOM so Excel
reads the Chinese). Files are written atomically and byte-deterministically (the cells as
arrays, :mod:`geotijian.xlsx_writer`: the bytes openpyxl wrote cell by cell); text from the
data that a spreadsheet would evaluate (``=…``) is defused (:mod:`geotijian.io.tables`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..io.tables import is_formula_like, write_csv
from .workflow import PlanResult

__all__ = ["write_plan", "plan_tables", "HEADERS_ZH", "SHEETS_ZH"]

HEADERS_ZH = {
    # projects / annual plan
    "seq": "序号", "project_id": "项目编号", "project_name": "项目名称", "project_type": "项目类型",
    "problem_id": "问题编号", "indicator_code": "指标代码", "indicator_name": "指标名称",
    "problem_class": "问题类别", "priority": "优先级", "priority_rank": "优先序", "level": "层级",
    "area_id": "区域编号", "area_name": "区域", "town_code": "街镇代码", "renewal_area_id": "更新片区",
    "affected_population": "涉及居民(人)", "lead_department": "牵头部门", "partners": "配合单位",
    "content": "建设内容/工作措施", "path": "实施路径", "timing": "时间安排", "start_year": "启动年份",
    "end_year": "完成年份", "site_ids": "新增设施点位", "site_count": "点位数(处)",
    "site_residents": "点位新覆盖本区域居民(人)", "rule": "项目规则",
    # renewal areas and scores
    "name": "名称", "town_codes": "街镇代码", "towns": "街镇", "units": "体检单元", "unit_count": "单元数",
    "population": "常住人口(人)", "area_ha": "面积(公顷)", "score": "更新评分", "score_max": "单元最高分",
    "problem_count": "问题数", "problems_by_class": "问题分类", "main_problems": "主要问题",
    "problem_ids": "问题编号清单", "reason": "划定依据", "unit_id": "体检单元编号", "problems": "问题得分",
    "dissatisfaction": "不满意度得分", "complaints": "热线诉求得分", "old_compounds": "老旧小区得分",
    "components_used": "参与评分项", "gi_z": "Gi* z值", "gi_p": "Gi* 伪p值", "selected": "入选",
    # sites
    "site_id": "点位编号", "facility_type": "设施类型", "facility_name_zh": "设施名称",
    "candidate_id": "候选点编号", "source": "候选来源", "residents_covered": "新覆盖居民(人)",
    "homes_covered": "新覆盖小区(个)", "residents_in_reach": "步行范围内未覆盖居民(人)",
    "capacity": "规模(位)", "demand_served": "服务需求(人)",
    # siting report
    "objective": "模型", "p": "新增点位上限", "walk_distance_m": "服务半径(米)", "demand_share": "需求比例",
    "homes": "小区数", "residents": "居民(人)", "existing_facilities": "现状设施数",
    "residents_covered_existing": "现状已覆盖居民(人)", "demand_homes": "未覆盖小区数",
    "residents_uncovered": "未覆盖居民(人)", "unreachable_homes": "无候选点可达小区数",
    "residents_unreachable": "无候选点可达居民(人)", "candidates": "候选点数",
    "candidate_source": "候选点来源", "sites": "新增点位数", "residents_covered_new": "新增覆盖居民(人)",
    "residents_uncovered_after": "选址后仍未覆盖居民(人)", "share_covered_before": "选址前覆盖率",
    "share_covered_after": "选址后覆盖率", "objective_value": "目标值", "bound": "对偶界",
    "gap": "最优性差距", "status": "求解状态", "solver": "求解器", "time_limit_s": "时间上限(秒)",
    "mip_rel_gap": "允许相对差距", "nodes": "分支节点数", "greedy_objective": "贪心解目标值(对照)",
    "matrix_s": "距离矩阵耗时(秒)", "solve_s": "求解耗时(秒)", "total_s": "总耗时(秒)",
    "model_rows_in": "模型需求行(未覆盖小区)", "model_columns_in": "模型候选列(候选点)",
    "model_pairs_in": "步行范围内小区-候选点对", "model_rows_without_candidate": "无候选点的需求行",
    "model_columns_without_demand": "无需求的候选列", "model_columns_after_duplicates": "去重后候选列",
    "model_columns_after_dominance": "去除被支配候选后候选列", "model_rows_after_merge": "合并相同需求后行数",
    "model_rows_after_dominance": "去除被支配需求后行数(LSCP)", "model_pairs_model": "模型非零元",
    "x": "X坐标(米)", "y": "Y坐标(米)", "sites_unused_dropped": "求解器开设但无服务对象的点位(已剔除)",
}
#: Columns shown (and printed) on each sheet, in order; the others follow, hidden (they
#: stay in the workbook for filtering, and in the CSV files and the GeoPackage).
VISIBLE = {
    "projects": ["priority_rank", "project_name", "project_type", "problem_class", "priority", "area_name",
                 "renewal_area_id", "affected_population", "lead_department", "partners", "content",
                 "path", "timing"],
    "annual_plan": ["seq", "project_name", "project_type", "priority", "area_name", "renewal_area_id",
                    "affected_population", "lead_department", "partners", "content", "end_year", "path"],
    "renewal_areas": ["area_id", "name", "towns", "unit_count", "population", "area_ha", "score",
                      "problems_by_class", "main_problems", "reason"],
    "renewal_scores": ["unit_id", "population", "problems", "dissatisfaction", "complaints", "old_compounds",
                       "score", "problem_count", "gi_z", "gi_p", "selected", "area_id", "reason"],
    "new_sites": ["site_id", "facility_name_zh", "candidate_id", "source", "name", "unit_id",
                  "residents_covered", "homes_covered", "residents_in_reach", "capacity", "demand_served",
                  "x", "y"],
}
_WIDTH = {"content": 42, "reason": 48, "main_problems": 30, "timing": 16, "path": 16, "partners": 14,
          "project_name": 24, "problems_by_class": 18, "area_name": 14, "lead_department": 12,
          "solver": 28}
SHEETS_ZH = {"projects": "更新项目储备库", "annual_plan": "年度实施计划", "renewal_areas": "更新片区",
             "renewal_scores": "片区评分", "new_sites": "新增设施选址", "siting": "选址求解说明"}
_LEVEL_ZH = {"unit": "社区体检单元", "town": "街镇", "district": "区"}
_STATUS_ZH = {"optimal": "最优(差距内)", "time_limit": "达到时间上限", "greedy": "贪心解(非最优)",
              "empty": "无需选址", "infeasible": "不可行"}
_SITING_ORDER = ["facility_type", "facility_name_zh", "objective", "p", "walk_distance_m", "capacity",
                 "demand_share", "homes", "residents", "existing_facilities", "residents_covered_existing",
                 "demand_homes", "residents_uncovered", "unreachable_homes", "residents_unreachable",
                 "candidates", "candidate_source", "sites", "sites_unused_dropped", "residents_covered_new",
                 "residents_uncovered_after", "share_covered_before", "share_covered_after",
                 "objective_value", "bound", "gap", "status", "solver", "time_limit_s", "mip_rel_gap",
                 "nodes", "greedy_objective"]
# run times vary from run to run: they go to run.json's timings, not into the tables
_TIMES = ("matrix_s", "solve_s", "total_s")


def plan_tables(result: PlanResult) -> dict[str, pd.DataFrame]:
    """The plan's tables by key (``projects``, ``annual_plan``, ``renewal_areas``,
    ``renewal_scores``, ``new_sites``, ``siting``), without geometry."""
    out: dict[str, pd.DataFrame] = {
        "projects": pd.DataFrame(result.projects.drop(columns="geometry", errors="ignore")),
        "annual_plan": result.annual}
    if result.renewal is not None:
        out["renewal_areas"] = pd.DataFrame(result.renewal.areas.drop(columns="geometry"))
        out["renewal_scores"] = result.renewal.scores
    sites = result.sites
    if sites is not None:
        s = pd.DataFrame(sites.drop(columns="geometry"))
        xy = sites.geometry.representative_point()
        out["new_sites"] = s.assign(x=xy.x.round(1).to_numpy(), y=xy.y.round(1).to_numpy())
    if result.siting:
        t = result.siting_table().drop(columns=list(_TIMES), errors="ignore")
        out["siting"] = t[[c for c in _SITING_ORDER if c in t.columns] +
                          [c for c in t.columns if c not in _SITING_ORDER]]
    return out


#: Columns counting persons: whole numbers, shown with a thousands separator in the workbook.
#: Display formats of decimal columns (values keep their rounding; the format only fixes
#: the decimals shown, so a column reads 954.92 / 534.07, not 954.92 / 534.067).
_DECIMALS = {"score": "0.000", "score_max": "0.000", "problems": "0.000", "dissatisfaction": "0.000",
             "complaints": "0.000", "old_compounds": "0.000", "gi_z": "0.000", "gi_p": "0.000",
             "area_ha": "#,##0.00", "x": "0.0", "y": "0.0", "capacity": "#,##0", "demand_served": "#,##0"}
_PERSONS = ("affected_population", "population", "site_residents", "residents_covered",
            "residents_in_reach", "residents", "residents_covered_existing", "residents_uncovered",
            "residents_unreachable", "residents_covered_new", "residents_uncovered_after")


def _display(key: str, d: pd.DataFrame) -> pd.DataFrame:
    d = d.copy()
    for col in _PERSONS:
        if col in d.columns and pd.api.types.is_numeric_dtype(d[col]):
            d[col] = pd.to_numeric(d[col], errors="coerce").round(0).astype("Int64")
    for col in ("score", "score_max", "problems", "dissatisfaction", "complaints", "old_compounds", "gi_z",
                "gi_p", "area_ha", "matrix_s", "solve_s", "total_s"):
        if col in d.columns:
            d[col] = pd.to_numeric(d[col], errors="coerce").round(3)
    if "level" in d.columns:
        d["level"] = d["level"].map(_LEVEL_ZH).fillna(d["level"])
    if "status" in d.columns:
        d["status"] = d["status"].map(_STATUS_ZH).fillna(d["status"])
    if "objective" in d.columns and key == "siting":
        d["objective"] = d["objective"].str.upper()
    if "selected" in d.columns:
        d["selected"] = d["selected"].map({True: "是", False: ""})
    for col in ("source", "candidate_source"):
        if col in d.columns:
            d[col] = d[col].map({"network_node": "路网节点", "sites_layer": "备选用地"}).fillna(d[col])
    if key == "siting":
        for col in ("share_covered_before", "share_covered_after", "gap"):
            if col in d.columns:
                d[col] = pd.to_numeric(d[col], errors="coerce").map(
                    lambda v: "" if not np.isfinite(v) else f"{v:.2%}" if col == "gap" else f"{v:.1%}")
        for col in ("objective_value", "bound", "greedy_objective"):
            if col in d.columns:
                d[col] = pd.to_numeric(d[col], errors="coerce").round(1)
        return _transpose_siting(d)
    vis = VISIBLE.get(key)
    if vis:
        d = d[[c for c in vis if c in d.columns] + [c for c in d.columns if c not in vis]]
    return d


def _transpose_siting(d: pd.DataFrame) -> pd.DataFrame:
    """The solver report reads best as one column per facility type."""
    t = d.set_index("facility_type").T
    t.index = [HEADERS_ZH.get(i, i) for i in t.index]
    t.insert(0, "项目", t.index)
    t.columns.name = None
    return t.reset_index(drop=True)


def _text_width(text: str) -> int:
    """Display width in Latin characters (a CJK character counts two)."""
    return sum(2 if ord(ch) > 0x7F else 1 for ch in text)  # (CJK fonts draw — and “” wide too)


def _widths(texts: list[str], wide_above: int) -> np.ndarray:
    """Display width of each text: characters above ``wide_above`` count two (one pass)."""
    if not texts:
        return np.zeros(0, dtype=np.int64)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    wide = np.concatenate([[0], np.cumsum(points > wide_above)])
    ends = np.cumsum(lengths)
    return lengths + wide[ends] - wide[ends - lengths]


def _row_heights(ws, d: pd.DataFrame, cols: list[str]) -> None:
    """Row heights for the wrapped texts (spreadsheet programs do not grow rows that a
    file gives no height; 16 points per line of 11-point text, and a margin)."""
    from openpyxl.utils import get_column_letter

    widths = [max(ws.column_dimensions[get_column_letter(j)].width or 8, 4) for j in range(1, len(cols) + 1)]
    hidden = [bool(ws.column_dimensions[get_column_letter(j)].hidden) for j in range(1, len(cols) + 1)]
    head = max(-(-_text_width(str(HEADERS_ZH.get(c, c))) // int(w)) for c, w in zip(cols, widths))
    ws.row_dimensions[1].height = 16 * max(1, head) + 3
    lines = np.ones(len(d), dtype=np.int64)
    for j, (w, h) in enumerate(zip(widths, hidden)):
        if h:
            continue
        vals = list(d.iloc[:, j])      # (the values of d.itertuples(): each cell once)
        shown = [i for i, v in enumerate(vals) if not (v is None or (isinstance(v, float) and np.isnan(v)))]
        if shown:
            need = -(-_widths([str(vals[i]) for i in shown], 0x7F) // max(int(w) - 1, 1))
            lines[shown] = np.maximum(lines[shown], need)
    for i, n in enumerate(np.minimum(lines, 12).tolist(), start=2):
        ws.row_dimensions[i].height = 16 * n + 3


def _cell_value(x):
    """A table value as its cell holds it (``None`` for missing values)."""
    if x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x)):
        return None
    return x.item() if isinstance(x, np.generic) else x


class _Palette:
    """Cell styles of the workbook as openpyxl style arrays, their parts registered in the
    order openpyxl met them when the cells were styled one by one (the same styles part)."""

    def __init__(self, wb) -> None:
        from openpyxl.styles import Alignment, Font, PatternFill

        self.wb = wb
        self.font, self.fill = Font(bold=True), PatternFill("solid", fgColor="DDEBF7")
        self.head_align = Alignment(vertical="center", horizontal="center", wrap_text=True)
        self.wrap = Alignment(wrap_text=True, vertical="top")
        self.arrays: list = []
        self.code: dict = {}

    def style(self, font: int, fill: int, fmt: int, align: int, quote: int) -> int:
        from openpyxl.styles.cell_style import StyleArray

        key = (font, fill, fmt, align, quote)
        if key not in self.code:
            self.code[key] = len(self.arrays)
            self.arrays.append(StyleArray([font, fill, 0, fmt, 0, align, 0, quote, 0]))
        return self.code[key]

    def number_format(self, fmt: str) -> int:
        from openpyxl.styles.numbers import BUILTIN_FORMATS_MAX_SIZE, BUILTIN_FORMATS_REVERSE

        if fmt in BUILTIN_FORMATS_REVERSE:
            return BUILTIN_FORMATS_REVERSE[fmt]
        return self.wb._number_formats.add(fmt) + BUILTIN_FORMATS_MAX_SIZE


def _quote(values: list) -> np.ndarray:
    """Text a spreadsheet would evaluate (:func:`geotijian.io.tables.is_formula_like`): kept
    as text with the quote prefix, as :func:`geotijian.io.tables.protect_cells` does."""
    return np.array([isinstance(v, str) and v[:1] in "=+-@\t\r" and v != "" and is_formula_like(v)
                     for v in values], dtype=bool)


def _sheet(ws, key: str, d: pd.DataFrame, pal: _Palette):
    """One table's sheet: its cells as a block (header, then the rows, every cell styled as
    before: header bold on a fill, data wrapped at the top with the column's number
    format, formula-like text quote-prefixed), widths, hidden columns and row heights."""
    from openpyxl.utils import get_column_letter

    from ..xlsx_writer import cell_block

    cols = list(d.columns)
    n, m = len(d), len(cols)
    heads = [HEADERS_ZH.get(c, c) for c in cols]
    head_q = _quote(heads)
    if m:   # (registered as the header row was styled: font, fill, alignment)
        font, fill = pal.wb._fonts.add(pal.font), pal.wb._fills.add(pal.fill)
        align = pal.wb._alignments.add(pal.head_align)
    codes = np.zeros((n + 1, m), dtype=np.int64)
    codes[0] = [pal.style(font, fill, 0, align, int(q)) for q in head_q]
    values = np.empty((n + 1, m), dtype=object)
    values[0] = heads
    vis = VISIBLE.get(key)
    for j, col in enumerate(cols, start=1):
        raw = list(d.iloc[:, j - 1])
        texts = [str(HEADERS_ZH.get(col, col))] + [str(x) for x in raw[:200]]
        width = int(_widths(texts, 0x2E80).max())
        cap = _WIDTH.get(col, 30 if key == "siting" else 12)
        dim = ws.column_dimensions[get_column_letter(j)]
        dim.width = min(max(width + 1, 5), cap)
        if vis is not None and col not in vis:
            dim.hidden = True
        if not n:
            continue
        cells = [_cell_value(x) for x in raw]
        values[1:, j - 1] = cells
        wrap = pal.wb._alignments.add(pal.wrap)
        q = _quote(cells)
        if key == "siting":   # the solver sheet: one column per type, whole numbers with separators
            whole = [isinstance(v, (int, float)) and not isinstance(v, bool) and float(v).is_integer()
                     for v in cells]
            fmt_id = pal.number_format("#,##0") if any(whole) else 0
            codes[1:, j - 1] = [pal.style(0, 0, fmt_id if w else 0, wrap, int(x)) for w, x in zip(whole, q)]
        else:
            fmt = "#,##0" if col in _PERSONS else _DECIMALS.get(col)
            fmt_id = pal.number_format(fmt) if fmt is not None else 0
            codes[1:, j - 1] = [pal.style(0, 0, fmt_id, wrap, int(x)) for x in q]
    _row_heights(ws, d, cols)
    rows = np.repeat(np.arange(1, n + 2), m)
    colnums = np.tile(np.arange(1, m + 1), n + 1)
    return cell_block(ws, rows, colnums, values.ravel(), codes.ravel(), pal.arrays, text_errors=False)


def write_plan(result: PlanResult, folder: str | Path, *, workbook: str = "project_library.xlsx",
               csv: bool = True) -> list[Path]:
    """Write the project-library workbook and the plan's CSV tables into ``folder``.

    The workbook's cells are written as arrays (:mod:`geotijian.xlsx_writer`): the bytes
    of styling and writing them one by one with openpyxl. Returns the written paths.
    """
    from openpyxl import Workbook
    from openpyxl.utils import get_column_letter

    from ..xlsx_writer import save_workbook

    folder = Path(folder)
    tables = plan_tables(result)
    shown = {k: _display(k, v) for k, v in tables.items()}
    wb = Workbook()
    wb.remove(wb.active)
    pal = _Palette(wb)
    blocks = {}
    for key, d in shown.items():
        ws = wb.create_sheet(SHEETS_ZH.get(key, key)[:31])
        blocks[ws.title] = _sheet(ws, key, d, pal)
        ws.freeze_panes = "B2" if key == "siting" else "A2"
        if len(d):
            ws.auto_filter.ref = f"A1:{get_column_letter(max(d.shape[1], 1))}{len(d) + 1}"
        ws.print_title_rows = "1:1"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_options.gridLines = True
        ws.oddHeader.center.text = f"{SHEETS_ZH.get(key, key)} ({result.year})"
        ws.oddFooter.center.text = "第 &P 页，共 &N 页"
    written = [save_workbook(wb, folder / workbook, blocks=blocks)]
    if csv:
        for key, d in shown.items():
            written.append(write_csv(d.rename(columns=HEADERS_ZH), folder / f"{key}.csv"))
    return written
