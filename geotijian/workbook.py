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

Text from the data never becomes a formula (formula-like text is quote-prefixed text, as
``io.tables.protect_cells`` makes it). The bytes are deterministic (fixed zip timestamps,
as :func:`geotijian.io.atomic.normalise_zip`); the cells are written as arrays
(:mod:`geotijian.xlsx_writer`), with the bytes openpyxl wrote cell by cell.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io.tables import _risky_mask
from .xlsx_writer import CellBlock, cell_block, save_workbook
from .units_of_measure import unit_zh

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
_COUNT_HEADERS = ("影响人口(人)", "问题点位数", "评估数", "序号", "新增点位", "持续点位", "已整改点位")
#: Columns holding years: no thousands separator (2024, not 2,024).
_YEAR_HEADERS = ("首次发现", "最近出现")
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


def _text_widths(values: list) -> np.ndarray:
    """Display width of each value's text (CJK characters count 2), 0 for missing values."""
    missing = pd.isna(np.array(values + [""], dtype=object))[:-1]
    texts = ["" if na else v if type(v) is str else str(v) for v, na in zip(values, missing, strict=True)]
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    points = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    wide = np.concatenate([[0], np.cumsum(points > 0x2E80)])
    ends = np.cumsum(lengths)
    return lengths + wide[ends] - wide[ends - lengths]


def _column_values(col: pd.Series) -> list:
    """A column's cell values: Python scalars, ``None`` for NaN and ``pd.NA``."""
    if col.dtype.kind in "biuf" and isinstance(col.dtype, np.dtype):
        arr = col.to_numpy()
        out = arr.astype(object)
        if arr.dtype.kind == "f":
            out[np.isnan(arr)] = None
        return out.tolist()
    if isinstance(col.dtype, pd.StringDtype):
        out = col.to_numpy(dtype=object)   # (str, or the missing value: None in the cells)
        out[pd.isna(out)] = None
        return out.tolist()
    return [None if (isinstance(x, float) and x != x) or x is pd.NA else (x.item() if isinstance(x, np.generic) else x)
            for x in col.to_numpy(dtype=object)]


def _formula_like(values: list) -> np.ndarray:
    """Text a spreadsheet would evaluate (:func:`geotijian.io.tables.is_formula_like`; the
    first characters looked at all at once, :func:`geotijian.io.tables._risky_mask`)."""
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return _risky_mask(pd.Series(arr, dtype=object, copy=False))


class _Styles:
    """The workbook's style ids, registered in the order openpyxl met them when the cells
    were styled one by one (so the styles part keeps its bytes)."""

    def __init__(self, wb: Any) -> None:
        from openpyxl.styles import Alignment, Border, Font, PatternFill, Side

        self.wb = wb
        thin = Side(style="thin", color="BFBFBF")
        self._head = (Font(bold=True), PatternFill("solid", fgColor="E7E6E6"),
                      Alignment(vertical="center", horizontal="center", wrap_text=True), Border(bottom=thin))
        self.wrap = Alignment(wrap_text=True, vertical="top")
        self.top = Alignment(vertical="top")

    def header(self) -> tuple[int, int, int, int]:
        """(font, fill, border, alignment) ids of the header row."""
        font, fill, align, border = self._head
        f, fl, a, b = self.wb._fonts.add(font), self.wb._fills.add(fill), self.wb._alignments.add(align), \
            self.wb._borders.add(border)
        return f, fl, b, a

    def alignment(self, value: Any) -> int:
        return self.wb._alignments.add(value)

    def number_format(self, fmt: str) -> int:
        from openpyxl.styles.numbers import BUILTIN_FORMATS_MAX_SIZE, BUILTIN_FORMATS_REVERSE

        if fmt in BUILTIN_FORMATS_REVERSE:
            return BUILTIN_FORMATS_REVERSE[fmt]
        return self.wb._number_formats.add(fmt) + BUILTIN_FORMATS_MAX_SIZE


def write_workbook(sheets: Mapping[str, pd.DataFrame], path: str | Path, *, title: str = "一表三清单") -> Path:
    """Write ``sheets`` (sheet name → table with Chinese headers) as one print-ready workbook.

    The tables are the display tables of :func:`geotijian.assess.write_tables` (Chinese
    headers, Chinese judgements and levels). A column ``单位`` gives each row's unit of
    measure for its value columns (现状值, 参考值, 差距): its code chooses their number format
    and the cell shows it in Chinese (:func:`geotijian.units_of_measure.unit_zh`). Returns
    ``path``, written atomically.

    The cells are written as arrays (:mod:`geotijian.xlsx_writer`): the same bytes as
    styling and writing them one by one with openpyxl, ~10x less CPU.
    """
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    styles = _Styles(wb)
    blocks = {}
    for name, d in sheets.items():
        ws = wb.create_sheet(str(name)[:31])
        blocks[ws.title] = _table_sheet(ws, d, styles)
        _print_setup(ws, f"{title} — {name}")
    return save_workbook(wb, path, blocks=blocks)


def _table_sheet(ws: Any, d: pd.DataFrame, styles: _Styles) -> CellBlock:
    """One table's sheet: widths, hidden columns, filter, frozen header and conditional fills
    set on ``ws``; its cells (header row, then the rows) and row heights returned."""
    from openpyxl.formatting.rule import CellIsRule
    from openpyxl.styles import PatternFill
    from openpyxl.styles.cell_style import StyleArray
    from openpyxl.utils import get_column_letter

    # the rows' units of measure: their codes choose the values' number format, the cells
    # show them in Chinese (``m2/person`` → ``平方米/人``, ``栋 buildings`` → ``栋``)
    units = d["单位"].tolist() if "单位" in d.columns else None
    if units is not None:
        d = d.assign(**{"单位": [unit_zh(u) if isinstance(u, str) else u for u in units]})
    n, cols = len(d), list(d.columns)
    m = len(cols)
    values = [_column_values(d.iloc[:, j]) for j in range(m)]
    quote = [_formula_like(v) for v in values]       # text from the data never becomes a live formula
    head_quote = _formula_like(cols)
    ws.freeze_panes = "A2"
    if n:
        ws.auto_filter.ref = f"A1:{get_column_letter(max(m, 1))}{n + 1}"
    palette = [StyleArray()]
    font, fill, border, align = styles.header()
    if not m:      # no columns: openpyxl's ws[1] made (and styled) an empty A1
        palette.append(StyleArray([font, fill, border, 0, 0, align, 0, 0, 0]))
        return cell_block(ws, [1], [1], [None], [1], palette)
    head_codes = []
    for q in head_quote:
        head_codes.append(len(palette))
        palette.append(StyleArray([font, fill, border, 0, 0, align, 0, int(q), 0]))
    fmt = np.zeros((n, m), dtype=np.int64)
    aln = np.zeros((n, m), dtype=np.int64)
    wrapped: list[tuple[int, float]] = []
    heights: dict[int, float] = {}
    for j, col in enumerate(cols, start=1):
        letter = get_column_letter(j)
        texts = [str(col)] + ["" if x is None else str(x) for x in d.iloc[:300, j - 1].tolist()]
        width = min(max(int(_text_widths(texts).max()) + 2, 6), _WRAP_AT + 2)
        ws.column_dimensions[letter].width = width
        if n:
            if col in _VALUE_HEADERS and units is not None:
                codes, kinds = pd.factorize(pd.Series(units, dtype=object), use_na_sentinel=False)
                ids = {}                     # registered in the order of the rows, as cell by cell
                for f in (number_format(u) for u in kinds):
                    if f not in ids:
                        ids[f] = styles.number_format(f)
                fmt[:, j - 1] = np.array([ids[number_format(u)] for u in kinds], dtype=np.int64)[codes]
            elif col in _COUNT_HEADERS:
                fmt[:, j - 1] = styles.number_format("#,##0")
            elif col in _YEAR_HEADERS:
                fmt[:, j - 1] = styles.number_format("0")
            elif col == "差距比例":
                fmt[:, j - 1] = styles.number_format("0.0%")
            elif pd.api.types.is_float_dtype(d[col]):
                fmt[:, j - 1] = styles.number_format(_GENERAL)
        if col in HIDDEN_HEADERS or (col in _IN_DESCRIPTION and "问题描述" in cols):
            ws.column_dimensions[letter].hidden = True
        if width >= _WRAP_AT:
            wrapped.append((j, width))
            if n:
                aln[:, j - 1] = styles.alignment(styles.wrap)
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
            w = _text_widths(d.iloc[:, j - 1].tolist())
            lines = np.maximum(lines, np.ceil(w / max(width - 2, 1)).astype(int))
        wrap_cols = {j for j, _ in wrapped}
        others = [j - 1 for j in range(1, m + 1) if j not in wrap_cols]
        tall = np.flatnonzero(lines > 1)
        heights = dict(zip((tall + 2).tolist(), (15.0 * np.minimum(lines[tall], 12)).tolist(), strict=True))
        if len(tall) and others:
            aln[np.ix_(tall, others)] = styles.alignment(styles.top)
    # data cells' styles: one palette entry per (number format, alignment, quote prefix)
    q = np.column_stack(quote).astype(np.int64) if n else np.zeros((0, m), dtype=np.int64)
    keys = (fmt * (int(aln.max(initial=0)) + 1) + aln) * 2 + q
    uniq, inv = np.unique(keys.ravel(), return_inverse=True)
    for k in uniq.tolist():
        f, a = divmod(k // 2, int(aln.max(initial=0)) + 1)
        palette.append(StyleArray([0, 0, 0, f, 0, a, 0, k % 2, 0]))
    data_codes = inv.reshape(n, m) + len(palette) - len(uniq)
    rows = np.concatenate([np.ones(m, dtype=np.int64), np.repeat(np.arange(2, n + 2), m)])
    colnums = np.tile(np.arange(1, m + 1), n + 1)
    grid = np.empty((m, n), dtype=object)
    for j in range(m):
        grid[j] = values[j]
    flat = np.concatenate([np.array(cols + [None], dtype=object)[:-1], grid.T.ravel()])
    codes = np.concatenate([np.asarray(head_codes, dtype=np.int64), data_codes.ravel()])
    return cell_block(ws, rows, colnums, flat, codes, palette, text_errors=False, heights=heights)


def _print_setup(ws: Any, header: str) -> None:
    """A4 landscape, one page wide, header row on every page, title and page numbers."""
    from openpyxl.worksheet.properties import PageSetupProperties

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
    ws.oddHeader.center.text = header
    ws.oddFooter.center.text = "第 &P 页 / 共 &N 页"
