"""The project-library workbook as openpyxl wrote it cell by cell before geotijian.xlsx_writer
(``write_plan`` and ``_row_heights`` of ``geotijian/plan/write.py`` at 78647f1, unchanged but
for their names, and without the CSV tables): the reference the array writer is compared
with (tests/test_plan.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from geotijian.io.atomic import atomic_path, normalise_zip
from geotijian.io.tables import protect_cells
from geotijian.plan.write import (_DECIMALS, _PERSONS, _WIDTH, HEADERS_ZH, SHEETS_ZH, VISIBLE, _display,
                                  plan_tables)


def _text_width(text: str) -> int:
    """Display width in Latin characters (a CJK character counts two)."""
    return sum(2 if ord(ch) > 0x7F else 1 for ch in text)  # (CJK fonts draw — and “” wide too)


def _row_heights(ws, d: pd.DataFrame, cols: list[str]) -> None:
    """Row heights for the wrapped texts (spreadsheet programs do not grow rows that a
    file gives no height; 16 points per line of 11-point text, and a margin)."""
    from openpyxl.utils import get_column_letter

    widths = [max(ws.column_dimensions[get_column_letter(j)].width or 8, 4) for j in range(1, len(cols) + 1)]
    hidden = [bool(ws.column_dimensions[get_column_letter(j)].hidden) for j in range(1, len(cols) + 1)]
    head = max(-(-_text_width(str(HEADERS_ZH.get(c, c))) // int(w)) for c, w in zip(cols, widths))
    ws.row_dimensions[1].height = 16 * max(1, head) + 3
    for i, row in enumerate(d.itertuples(index=False), start=2):
        lines = 1
        for v, w, h in zip(row, widths, hidden):
            if h or v is None or (isinstance(v, float) and np.isnan(v)):
                continue
            lines = max(lines, -(-_text_width(str(v)) // max(int(w) - 1, 1)))
        ws.row_dimensions[i].height = 16 * min(lines, 12) + 3


def write_plan_reference(result, folder: str | Path, *, workbook: str = "project_library.xlsx") -> Path:
    """geotijian.plan.write_plan's workbook as it was at 78647f1 (openpyxl cell by cell)."""
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font, PatternFill
    from openpyxl.utils import get_column_letter

    folder = Path(folder)
    tables = plan_tables(result)
    shown = {k: _display(k, v) for k, v in tables.items()}
    wb = Workbook()
    wb.remove(wb.active)
    head_fill = PatternFill("solid", fgColor="DDEBF7")
    for key, d in shown.items():
        ws = wb.create_sheet(SHEETS_ZH.get(key, key)[:31])
        cols = list(d.columns)
        ws.append([HEADERS_ZH.get(c, c) for c in cols])
        for row in d.itertuples(index=False):
            ws.append([None if (x is None or x is pd.NA or (isinstance(x, float) and np.isnan(x))) else
                       (x.item() if isinstance(x, np.generic) else x) for x in row])
        for c in ws[1]:
            c.font = Font(bold=True)
            c.fill = head_fill
            c.alignment = Alignment(vertical="center", horizontal="center", wrap_text=True)
        vis = VISIBLE.get(key)
        for j, col in enumerate(cols, start=1):
            texts = [str(HEADERS_ZH.get(col, col))] + [str(x) for x in d.iloc[:200, j - 1].tolist()]
            width = max(sum(2 if ord(ch) > 0x2E80 else 1 for ch in t) for t in texts)
            cap = _WIDTH.get(col, 30 if key == "siting" else 12)
            dim = ws.column_dimensions[get_column_letter(j)]
            dim.width = min(max(width + 1, 5), cap)
            if vis is not None and col not in vis:
                dim.hidden = True
            fmt = None if key == "siting" else "#,##0" if col in _PERSONS else _DECIMALS.get(col)
            for (cell,) in ws.iter_rows(min_row=2, min_col=j, max_col=j):
                cell.alignment = Alignment(wrap_text=True, vertical="top")
                if fmt is not None:
                    cell.number_format = fmt
                elif key == "siting" and isinstance(cell.value, (int, float)) and not isinstance(cell.value, bool) \
                        and float(cell.value).is_integer():  # the solver sheet: one column per type
                    cell.number_format = "#,##0"
        _row_heights(ws, d, cols)
        protect_cells(ws)  # names from the data never run as formulas
        ws.freeze_panes = "B2" if key == "siting" else "A2"
        if len(d):
            ws.auto_filter.ref = ws.dimensions
        ws.print_title_rows = "1:1"
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.print_options.gridLines = True
        ws.oddHeader.center.text = f"{SHEETS_ZH.get(key, key)} ({result.year})"
        ws.oddFooter.center.text = "第 &P 页，共 &N 页"
    path = folder / workbook
    with atomic_path(path) as tmp:
        wb.save(tmp)
        normalise_zip(tmp)
    return path
