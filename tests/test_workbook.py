"""The 一表三清单 workbook and the fast cell writer (geotijian.xlsx_writer): the bytes, and
what a user sees, are those of openpyxl styling and writing every cell one by one
(tests/workbook_reference.py keeps that code)."""

from __future__ import annotations

import datetime
from copy import copy

import numpy as np
import pandas as pd
import pytest
from openpyxl import Workbook, load_workbook
from openpyxl.utils.exceptions import IllegalCharacterError

from geotijian.workbook import write_workbook
from geotijian.xlsx_writer import cell_block, save_workbook

from .workbook_reference import materialise_blocks, save_reference, workbook_differences, write_workbook_reference

#: Text a writer can get wrong: formula-like, outer whitespace, CR, XML specials, astral and
#: control-like characters, empty text, Excel error codes, long text (wrapped rows).
TRICKY = ["=1+1", "+86 21 1234", "-5", "@SUM(A1)", "\tx", "\rcr", "a\r\nb", " lead", "trail ", "\u00a0nbsp",
          "a&b<c>d\"e'f", "😀汉字", "\x7fdel", "\x85nel", "", "#N/A", "#DIV/0!", "=", "-", "普通文本",
          "长" * 60 + " 很长的说明文字,要换行", "x" * 120, "\u2028sep", "&amp;", "]]>"]


def _tables() -> dict[str, pd.DataFrame]:
    n = len(TRICKY) * 2
    rng = np.random.default_rng(20241205)
    text = (TRICKY * 2)[:n]
    value = rng.uniform(0, 200, n).round(3)
    value[[3, 7]] = np.nan
    value[5] = np.inf
    table = pd.DataFrame({
        "层级": ["社区体检单元"] * n, "区域编号": [f"U{i:02d}" for i in range(n)], "区域名称": text,
        "指标代码": "c_code", "指标名称": text[::-1],
        "单位": (["%", "个", "ratio", None, "km/km2", "m2/person", np.nan] * n)[:n],
        "现状值": value, "比较": (["≥", "≤", ""] * n)[:n], "参考值": rng.integers(0, 100, n).astype(float),
        "参考值来源": ["《城市体检工作手册》附表 " * (i % 4) for i in range(n)],
        "评价": (["达标", "未达标", None] * n)[:n], "差距": rng.normal(0, 10, n),
        "是否试点": (np.arange(n) % 2 == 0), "影响人口(人)": pd.array([None if i % 5 == 0 else i * 1000 for i in range(n)],
                                                                   dtype="Int64"),
    })
    problems = pd.DataFrame({
        "序号": np.arange(1, 6), "问题编号": ["p1", "p2", "p3", "p4", "p5"], "问题类别": ["限时解决", "尽力解决", "长期谋划",
                                                                                  "限时解决", "=HYPERLINK()"],
        "区域名称": TRICKY[:5], "评估数": [3, 4, 5, 6, 7], "差距比例": [0.1, 0.25, np.nan, 1.5, -0.2],
        "问题描述": ["在U03新增幼儿园或托育点,覆盖未达标居民约2,300人" * 2] * 5, "参考值来源": ["x"] * 5,
        "单位": ["%"] * 5, "现状值": [1.0, 2.0, 3.0, 4.0, 5.0],
    })
    return {"一表(指标评价表)": table, "问题清单": problems, "优势清单": table.iloc[:0],
            "空表(无列)": pd.DataFrame(index=range(3)), "a" * 40: problems.iloc[:2], "a" * 31 + "b": problems.iloc[:1]}


@pytest.mark.filterwarnings("ignore:Title is more than 31 characters")   # "a" * 31 + "1": openpyxl's name
def test_workbook_has_the_bytes_and_look_of_the_cell_by_cell_writer(tmp_path):
    tables = _tables()
    new = write_workbook(tables, tmp_path / "new.xlsx", title="样区 2024 年城市体检 一表三清单")
    old = write_workbook_reference(tables, tmp_path / "old.xlsx", title="样区 2024 年城市体检 一表三清单")
    assert new.read_bytes() == old.read_bytes()
    assert workbook_differences(old, new) == []
    # and what a user sees is what the tables say (not only what the old code did)
    ws = load_workbook(new)["一表(指标评价表)"]
    heads = [c.value for c in ws[1]]
    col = {h: i + 1 for i, h in enumerate(heads)}
    assert ws.cell(2, col["区域名称"]).value == "=1+1" and ws.cell(2, col["区域名称"]).quotePrefix
    assert ws.cell(2, col["区域名称"]).data_type == "s"
    assert ws.cell(4, col["区域名称"]).value == "-5" and not ws.cell(4, col["区域名称"]).quotePrefix
    assert ws.cell(2, col["现状值"]).number_format == '0.0"%"' and ws.cell(3, col["现状值"]).number_format == "#,##0"
    assert ws.cell(5, col["现状值"]).value is None                # NaN: an empty cell
    assert ws.cell(2, col["是否试点"]).value is True and ws.cell(2, col["影响人口(人)"]).value is None
    assert ws.cell(17, col["区域名称"]).data_type == "e"             # "#N/A", as openpyxl made it before
    tall = [r for r, d in ws.row_dimensions.items() if d.height]
    assert tall and ws.cell(tall[0], col["层级"]).alignment.vertical == "top"
    assert ws.cell(1, 1).font.b and ws.freeze_panes == "A2" and ws.auto_filter.ref == f"A1:N{len(TRICKY) * 2 + 1}"


@pytest.mark.filterwarnings("ignore:Title is more than 31 characters")
def test_the_comparison_sees_a_changed_cell_style_and_width(tmp_path):
    new = write_workbook(_tables(), tmp_path / "new.xlsx")
    wb = load_workbook(new)
    ws = wb["一表(指标评价表)"]
    ws["G3"].number_format = "0.000"
    ws.column_dimensions["C"].width = 99
    wb["问题清单"]["C2"].fill = copy(wb["问题清单"]["A1"].fill)
    wb.save(tmp_path / "changed.xlsx")
    diff = workbook_differences(new, tmp_path / "changed.xlsx")
    assert any(d.startswith("一表(指标评价表): columns") for d in diff)
    assert any(d.startswith("一表(指标评价表)!G3:") and "0.000" in d for d in diff)
    assert any(d.startswith("问题清单!C2:") for d in diff)


def test_text_openpyxl_refuses_is_refused_as_before(tmp_path):
    bad = {"一表": pd.DataFrame({"区域名称": ["ok", "bell\x07"]})}
    with pytest.raises(IllegalCharacterError):
        write_workbook_reference(bad, tmp_path / "old.xlsx")
    with pytest.raises(IllegalCharacterError):
        write_workbook(bad, tmp_path / "new.xlsx")
    assert not list(tmp_path.iterdir())                          # nothing half-written


def test_cell_blocks_write_what_openpyxl_writes_cell_by_cell(tmp_path):
    """Blocks beside the sheet's own openpyxl cells (header, a comment, a link), values
    openpyxl binds itself (bool, datetime, infinity, numpy scalars), styled empty cells,
    a row height on a row without cells, block row heights (on rows with cells, on a row
    with a dimension already, on a row without cells): the same bytes as openpyxl's writer."""
    from openpyxl.comments import Comment
    from openpyxl.styles import Font, PatternFill

    def build():
        wb = Workbook()
        ws = wb.active
        ws.title = "数据"
        ws["A1"] = "标题"
        ws["A1"].font = Font(bold=True)
        ws["B1"] = "=SUM(C2:C9)"                                      # an openpyxl formula cell stays a formula
        ws["C1"].comment = Comment("说明", "geotijian")
        ws["D1"].hyperlink = "https://example.org/a?b=1&c=2"
        ws["D1"] = "链接"
        ws.row_dimensions[40].height = 30
        ws.merge_cells("E1:F1")
        proto = ws.cell(1, 7)
        proto.fill = PatternFill("solid", fgColor="FFF2CC")
        proto.number_format = "0.00"
        palette = [ws.cell(1, 8)._style, proto._style]
        del ws._cells[(1, 8)]
        values = ["文本", 3, 2.5, None, True, datetime.date(2024, 12, 5), np.float32(1.5), float("inf"), "", "=x",
                  " 空格 ", "a\rb", np.int64(7), "#N/A"]
        rows = np.repeat(np.arange(2, 6), len(values))
        cols = np.tile(np.arange(1, len(values) + 1), 4)
        styles = np.tile(np.arange(len(values)) % 2, 4)
        return wb, {"数据": cell_block(ws, rows, cols, values * 4, styles, palette,
                                      heights={3: 45, 5: 22.5, 40: 30, 41: 15.0})}

    wb, blocks = build()
    fast = save_workbook(wb, tmp_path / "fast.xlsx", blocks=blocks)
    wb, blocks = build()
    materialise_blocks(wb, blocks)
    ref = save_reference(wb, tmp_path / "ref.xlsx")
    assert fast.read_bytes() == ref.read_bytes()
    ws = load_workbook(fast)["数据"]
    assert ws["A2"].value == "文本" and ws["B2"].value == 3 and ws["E2"].value is True
    assert ws["F2"].value == datetime.datetime(2024, 12, 5) and ws["F2"].is_date
    assert ws["J2"].value == "=x" and ws["J2"].data_type == "s"    # text from a block is never a formula
    assert ws["B1"].data_type == "f" and ws["C1"].comment.text == "说明"
    assert ws["N2"].value == "#N/A" and ws["N2"].data_type == "s"  # text_errors=True (default): text
    assert ws["B3"].fill.fgColor.rgb == "00FFF2CC" and ws["B3"].number_format == "0.00"
    assert ws.row_dimensions[40].height == 30 and ws.dimensions == "A1:N5"
    assert ws.row_dimensions[3].height == 45 and ws.row_dimensions[5].height == 22.5
    assert ws.row_dimensions[41].height == 15 and ws.row_dimensions[4].height is None
    with pytest.raises(ValueError, match=r"cell A1 given twice"):
        wb, blocks = build()
        save_workbook(wb, tmp_path / "twice.xlsx", blocks={"数据": cell_block(wb["数据"], [1], [1], ["x"], [0],
                                                                              blocks["数据"].palette)})
    assert not (tmp_path / "twice.xlsx").exists()
