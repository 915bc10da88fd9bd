"""The 一表三清单 workbook as openpyxl wrote it cell by cell before geotijian.xlsx_writer
(``geotijian/workbook.py`` at a0ac86d, unchanged but for its name and, since 2026-12-05, the
units of measure shown in Chinese and the years without a thousands separator, as the fast
writer shows them): the reference the fast writer is compared with (tests/test_workbook.py),
slow (~20 s of CPU at district scale)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from geotijian.io.atomic import atomic_path, normalise_zip
from geotijian.io.tables import protect_cells
from geotijian.units_of_measure import unit_zh
from geotijian.workbook import (_COUNT_HEADERS, _GENERAL, _IN_DESCRIPTION, _VALUE_HEADERS, _WRAP_AT, _YEAR_HEADERS,
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
        units = d["单位"].tolist() if "单位" in d.columns else None
        if units is not None:   # codes for the number formats, Chinese in the cells
            d = d.assign(**{"单位": [unit_zh(u) if isinstance(u, str) else u for u in units]})
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
            elif col in _YEAR_HEADERS:   # since 2026-12-05: years without a thousands separator
                for (cell,) in cells:
                    cell.number_format = "0"
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


# --------------------------------------------------------------------------- the reference for cell blocks

def materialise_blocks(wb, blocks) -> None:
    """Put the cells of ``blocks`` (sheet title → :class:`geotijian.xlsx_writer.CellBlock`)
    into their worksheets as openpyxl cells, as the fill-in's ``_data_cells`` made them
    before the blocks (style array copied per cell; text as text; numbers; empty cells
    with their style; openpyxl cells as given), so ``wb.save`` writes them cell by cell."""
    from openpyxl.cell.cell import Cell

    from geotijian.xlsx_writer import CELL, EMPTY, NUMBER, TEXT

    for title, b in blocks.items():
        ws = wb[title]
        for r, c, v, k, s in zip(b.rows.tolist(), b.cols.tolist(), b.values.tolist(), b.kinds.tolist(),
                                 b.styles.tolist(), strict=True):
            assert (r, c) not in ws._cells, (title, r, c)
            if k == CELL:
                ws._cells[(r, c)] = v
                continue
            cell = Cell(ws, row=r, column=c, style_array=b.palette[s])
            if k == TEXT:
                cell._value, cell.data_type = v, "s"
            elif k == NUMBER:
                cell.value = v
            else:
                assert k == EMPTY and v is None
            ws._cells[(r, c)] = cell
        for r, h in (b.heights or {}).items():   # block row heights: as row dimensions
            ws.row_dimensions[r].height = h


def save_reference(wb, path) -> Path:
    """``wb.save`` then ``normalise_zip``: how the workbooks were saved before."""
    path = Path(path)
    with atomic_path(path) as tmp:
        wb.save(tmp)
        normalise_zip(tmp)
    return path


# --------------------------------------------------------------------------- what a user sees

def _cell_look(c) -> tuple:
    return (c.value, c.data_type, c.number_format, repr(c.font), repr(c.fill), repr(c.border), repr(c.alignment),
            repr(c.protection), c.quotePrefix, c.hyperlink.target if c.hyperlink is not None else None)


def _sheet_look(ws) -> dict:
    from openpyxl.xml.functions import tostring

    cf = [(str(rng.sqref), [tostring(r.to_tree()) + repr(r.dxf).encode() for r in rules])
          for rng, rules in ws.conditional_formatting._cf_rules.items()]
    return {
        "state": ws.sheet_state, "dimensions": ws.dimensions, "freeze_panes": ws.freeze_panes,
        "auto_filter": ws.auto_filter.ref, "merged": sorted(str(r) for r in ws.merged_cells.ranges),
        "columns": {k: (d.width, d.hidden, d.customWidth, d.min, d.max) for k, d in ws.column_dimensions.items()},
        "rows": {k: (d.height, d.hidden, d.customHeight) for k, d in ws.row_dimensions.items()},
        "validations": [tostring(dv.to_tree()) for dv in ws.data_validations.dataValidation],
        "conditional": cf,
        "page_setup": (ws.page_setup.orientation, ws.page_setup.paperSize, ws.page_setup.fitToWidth,
                       ws.page_setup.fitToHeight, ws.sheet_properties.pageSetUpPr.fitToPage
                       if ws.sheet_properties.pageSetUpPr is not None else None),
        "print": (ws.print_options.horizontalCentered, ws.print_title_rows, ws.print_title_cols, ws.print_area,
                  ws.page_margins.left, ws.page_margins.right, ws.page_margins.top, ws.page_margins.bottom,
                  ws.page_margins.header, ws.page_margins.footer, ws.oddHeader.center.text,
                  ws.oddFooter.center.text),
    }


def workbook_differences(a, b, *, limit: int = 20) -> list[str]:
    """What differs between two workbooks as a user sees them (loaded by openpyxl): sheets,
    then per sheet every cell's value, type, number format, font, fill, border, alignment,
    protection, quote prefix and link, merged ranges, column widths and hidden columns,
    row heights, frozen panes, filter, validations, conditional formats and print settings.
    Empty when they look the same."""
    from openpyxl import load_workbook

    wa, wb_ = load_workbook(a), load_workbook(b)
    out = []
    if wa.sheetnames != wb_.sheetnames:
        return [f"sheets {wa.sheetnames} != {wb_.sheetnames}"]
    for name in wa.sheetnames:
        sa, sb = wa[name], wb_[name]
        la, lb = _sheet_look(sa), _sheet_look(sb)
        out += [f"{name}: {k} {la[k]!r:.200} != {lb[k]!r:.200}" for k in la if la[k] != lb[k]]
        rows = max(sa.max_row, sb.max_row)
        cols = max(sa.max_column, sb.max_column)
        for ra, rb in zip(sa.iter_rows(max_row=rows, max_col=cols), sb.iter_rows(max_row=rows, max_col=cols),
                          strict=True):
            for ca, cb in zip(ra, rb, strict=True):
                x, y = _cell_look(ca), _cell_look(cb)
                if x != y:
                    out.append(f"{name}!{ca.coordinate}: {x!r:.300} != {y!r:.300}")
                    if len(out) >= limit:
                        return out
    return out
