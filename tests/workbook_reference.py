"""The 一表三清单 workbook as openpyxl wrote it cell by cell before geotijian.xlsx_writer
(``geotijian/workbook.py`` at a0ac86d, unchanged but for its name): the reference the fast
writer is compared with (tests/test_workbook.py), slow (~20 s of CPU at district scale)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from geotijian.io.atomic import atomic_path, normalise_zip
from geotijian.io.tables import protect_cells
from geotijian.workbook import (_COUNT_HEADERS, _GENERAL, _IN_DESCRIPTION, _VALUE_HEADERS, _WRAP_AT,
                                CLASS_FILLS, HIDDEN_HEADERS, JUDGEMENT_FILLS, number_format)


def _width(texts: list[str]) -> float:
    return max(sum(2 if ord(ch) > 0x2E80 else 1 for ch in t) for t in texts)


def write_workbook_reference(sheets: Mapping[str, pd.DataFrame], path: str | Path, *, title: str = "一表三清单") -> Path:
    """geotijian.workbook.write_workbook as it was at a0ac86d (openpyxl cell by cell)."""
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
