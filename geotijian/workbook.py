"""The 一表三清单 workbook, ready to print and to filter (``indicator_table.xlsx``).

:func:`write_workbook` writes one sheet per table with what a report author otherwise sets
by hand before printing:

* page: A4 landscape, fitted to the page width (as many pages tall as needed), the header
  row repeated on every page, the title in the page header and ``第 n 页 / 共 m 页`` in
  the footer, narrow margins;
* an autofilter on the header row, the header frozen, columns sized to their text (long
  texts wrapped at 36 characters, their rows as tall as the text); codes and IDs hidden (not printed, still there to
  filter and unhide: ``HIDDEN_HEADERS``);
* numbers as numbers with formats: residents with thousands separators (``#,##0``),
  indicator values, references and gaps with the decimals of their unit of measure (``%``
  one decimal with a ``%`` sign, ratios two decimals, counts none), shares as percent;
* the reference value as a number, its comparison (≥, >, ≤, <) in its own column;
* conditional fills: judgement (达标 green, 未达标 red) and problem class (限时解决 red,
  尽力解决 orange, 长期谋划 blue), so the colours follow a filter or a sort.

Text from the data never becomes a formula (``io.tables.protect_cells``). The bytes are
deterministic (fixed zip timestamps, :func:`geotijian.io.atomic.normalise_zip`).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from .io.atomic import atomic_path, normalise_zip
from .io.tables import protect_cells

__all__ = ["write_workbook", "number_format", "CLASS_FILLS", "JUDGEMENT_FILLS"]

#: Fills of the problem classes (light tints of the map's class colours).
CLASS_FILLS = {"限时解决": "F9C9C0", "尽力解决": "FEE0C8", "长期谋划": "CCDCF0"}
#: Fills of the judgements.
JUDGEMENT_FILLS = {"达标": "D9EFD3", "未达标": "F9C9C0"}
#: Number formats by unit of measure of an indicator (anything else: up to 2 decimals).
UNIT_FORMATS = {"%": '0.0"%"', "count": "#,##0", "个": "#,##0", "人": "#,##0", "persons": "#,##0",
                "ratio": "0.00", "m2/person": "0.00", "km/km2": "0.00", "per1000": "0.00", "个/千人": "0.00"}
_GENERAL = "#,##0.##"
#: Columns (Chinese headers) holding whole persons or counts.
_COUNT_HEADERS = ("影响人口(人)", "问题点位数", "评估数", "序号", "新增点位", "持续点位", "已整改点位", "首次发现",
                  "最近出现")
#: Columns in the unit of their row's indicator.
_VALUE_HEADERS = ("现状值", "参考值", "差距", "超出幅度")
_WRAP_AT = 36
#: Sheets' columns hidden because the 问题描述 sentence beside them already says it.
_IN_DESCRIPTION = ("参考值来源", "评估数", "区域名称")
#: Columns kept in the sheet (for filters and scripts) but hidden, so the printed page holds
#: what a reader acts on: codes and IDs (the names are beside them), the relative gap.
HIDDEN_HEADERS = ("区域编号", "指标代码", "问题编号", "点位编号", "问题点位编号", "优势编号", "分类规则", "差距比例")


def number_format(unit: str | None) -> str:
    """The Excel number format of an indicator's values (by its unit of measure)."""
    if unit is None or (isinstance(unit, float) and np.isnan(unit)):
        return _GENERAL
    return UNIT_FORMATS.get(str(unit), _GENERAL)


def _width(texts: list[str]) -> float:
    return max(sum(2 if ord(ch) > 0x2E80 else 1 for ch in t) for t in texts)


def write_workbook(sheets: Mapping[str, pd.DataFrame], path: str | Path, *, title: str = "一表三清单") -> Path:
    """Write ``sheets`` (sheet name → table with Chinese headers) as one print-ready workbook.

    The tables are the display tables of :func:`geotijian.assess.write_tables` (Chinese
    headers, Chinese judgements and levels). A column ``单位`` gives each row's unit of
    measure for its value columns (现状值, 参考值, 差距). Returns ``path``, written atomically.
    """
    from openpyxl import Workbook
    from openpyxl.formatting.rule import CellIsRule
    from openpyxl.styles import Alignment, Border, Font, PatternFill, Side
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.properties import PageSetupProperties

    wb = Workbook()
    wb.remove(wb.active)
    head_fill = PatternFill("solid", fgColor="E7E6E6")
    thin = Side(style="thin", color="BFBFBF")
    for name, d in sheets.items():
        ws = wb.create_sheet(str(name)[:31])
        ws.append(list(d.columns))
        for row in d.itertuples(index=False):
            ws.append([None if (isinstance(x, float) and np.isnan(x)) or x is pd.NA else
                       (x.item() if isinstance(x, np.generic) else x) for x in row])
        protect_cells(ws)  # text from the data never becomes a live formula
        n, cols = len(d), list(d.columns)
        last = get_column_letter(max(len(cols), 1))
        for cell in ws[1]:
            cell.font = Font(bold=True)
            cell.fill = head_fill
            cell.alignment = Alignment(vertical="center", horizontal="center", wrap_text=True)
            cell.border = Border(bottom=thin)
        ws.freeze_panes = "A2"
        if n:
            ws.auto_filter.ref = f"A1:{last}{n + 1}"
        units = d["单位"].tolist() if "单位" in d.columns else None
        wrapped: list[tuple[int, float]] = []
        for j, col in enumerate(cols, start=1):
            letter = get_column_letter(j)
            texts = [str(col)] + ["" if x is None else str(x) for x in d.iloc[:300, j - 1].tolist()]
            width = min(max(_width(texts) + 2, 6), _WRAP_AT + 2)
            ws.column_dimensions[letter].width = width
            cells = ws[f"{letter}2:{letter}{n + 1}"] if n else []
            if col in _VALUE_HEADERS and units is not None:
                for (cell,), u in zip(cells, units, strict=True):
                    cell.number_format = number_format(u)
            elif col in _COUNT_HEADERS:
                for (cell,) in cells:
                    cell.number_format = "#,##0"
            elif col == "差距比例":
                for (cell,) in cells:
                    cell.number_format = "0.0%"
            elif pd.api.types.is_float_dtype(d[col]):
                for (cell,) in cells:
                    cell.number_format = _GENERAL
            if col in HIDDEN_HEADERS or (col in _IN_DESCRIPTION and "问题描述" in cols):
                ws.column_dimensions[letter].hidden = True
            if width >= _WRAP_AT:
                wrapped.append((j, width))
                for (cell,) in cells:
                    cell.alignment = Alignment(wrap_text=True, vertical="top")
            rng = f"{letter}2:{letter}{n + 1}"
            fills = JUDGEMENT_FILLS if col == "评价" else CLASS_FILLS if col == "问题类别" else None
            if fills and n:
                for value, color in fills.items():
                    ws.conditional_formatting.add(rng, CellIsRule(operator="equal", formula=[f'"{value}"'],
                                                                  fill=PatternFill("solid", bgColor=color,
                                                                                   fgColor=color)))
        # wrapped rows get their height (Excel and LibreOffice do not size them on opening)
        if wrapped and n:
            lines = np.ones(n, dtype=int)
            for j, width in wrapped:
                w = np.array([_width([str(x)]) if x is not None and x == x else 0 for x in d.iloc[:, j - 1]])
                lines = np.maximum(lines, np.ceil(w / max(width - 2, 1)).astype(int))
            wrap_cols = {j for j, _ in wrapped}
            top = Alignment(vertical="top")
            others = [j for j in range(1, len(cols) + 1) if j not in wrap_cols]
            for i in np.flatnonzero(lines > 1):
                r = int(i) + 2
                ws.row_dimensions[r].height = float(15 * min(lines[i], 12))
                # ws.cell, not ws[r]: a row by index makes openpyxl scan every cell of the
                # sheet for its width (29 ms a row on a district's 16,000-row table)
                for j in others:
                    ws.cell(row=r, column=j).alignment = top
        # print: A4 landscape, one page wide, header row on every page
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
        ws.print_title_rows = "1:1"
        ws.print_options.horizontalCentered = True
        ws.page_margins.left = ws.page_margins.right = 0.4
        ws.page_margins.top = ws.page_margins.bottom = 0.75
        ws.page_margins.header = ws.page_margins.footer = 0.3
        ws.oddHeader.center.text = f"{title} — {name}"
        ws.oddFooter.center.text = "第 &P 页 / 共 &N 页"
    path = Path(path)
    with atomic_path(path) as tmp:
        wb.save(tmp)
        normalise_zip(tmp)  # fixed timestamps: same tables, same bytes
    return path
