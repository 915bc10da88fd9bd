"""Large openpyxl worksheets written fast, with the bytes openpyxl itself would write.

openpyxl keeps every cell as an object, hashes style objects when a cell is styled and
writes every cell through lxml (about 15 µs a cell): a district's workbooks hold ~500,000
cells and took ~20 s of CPU. Here the bulk cells of a sheet are given as arrays
(:func:`cell_block`: rows, columns, values, an index into a palette of style arrays) and
their ``<sheetData>`` is built as text in one pass, while openpyxl still writes everything
else (columns, panes, filters, validations, conditional formats, print settings, styles,
the workbook parts). The cells' XML is the XML openpyxl writes for them: inline strings,
numbers as ``%.16g``, ASCII output with character references, ``xml:space="preserve"``
for text with outer whitespace, the cell styles registered in the order openpyxl's writer
meets them; anything else (booleans, dates, infinities, the worksheet's own openpyxl cells)
goes through openpyxl's own cell writer.

:func:`save_workbook` writes the workbook atomically with fixed zip entry times and
document dates (the bytes of :func:`geotijian.io.atomic.normalise_zip`, compressed once
instead of twice).
"""

from __future__ import annotations

import datetime
import re
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import BytesIO
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .io.atomic import _FIXED_ISO_TIME, _FIXED_ZIP_TIME, atomic_path

__all__ = ["CellBlock", "cell_block", "save_workbook"]

#: What the writer does with a cell (:attr:`CellBlock.kinds`).
EMPTY, TEXT, NUMBER, CELL = 0, 1, 2, 3
_MARK = "geotijian-sheet-data"
_CORE_DATES = re.compile(rb"(<dcterms:(?:created|modified)[^>]*>)[^<]*(</dcterms:)")


@dataclass(frozen=True)
class CellBlock:
    """Cells of one worksheet as arrays (see :func:`cell_block`).

    Attributes
    ----------
    rows, cols : ndarray of int
        1-based row and column of each cell.
    values : ndarray of object
        ``str`` (written as text), finite ``int``/``float``, ``None`` (an empty cell, written
        only when styled), or an openpyxl ``Cell`` (written by openpyxl's cell writer).
    kinds : ndarray of int8
        ``EMPTY``, ``TEXT``, ``NUMBER`` or ``CELL`` for each value.
    styles : ndarray of int
        Index of each cell's style in ``palette``.
    palette : tuple of StyleArray
        openpyxl style arrays (font, fill, border, number format ... ids of the workbook).
    heights : dict
        Row (1-based) → height in points, as ``ws.row_dimensions[row].height`` would set it.
    """

    rows: np.ndarray
    cols: np.ndarray
    values: np.ndarray
    kinds: np.ndarray
    styles: np.ndarray
    palette: tuple
    heights: Mapping[int, float] | None = None


def cell_block(ws: Any, rows: Any, cols: Any, values: Any, styles: Any, palette: Sequence[Any], *,
               text_errors: bool = True, heights: Mapping[int, float] | None = None) -> CellBlock:
    """Cells of worksheet ``ws`` to be written by :func:`save_workbook`.

    Parameters
    ----------
    ws : openpyxl Worksheet
        The sheet the cells belong to (they are not added to ``ws._cells``: openpyxl's own
        cells of the sheet, e.g. headers, are written with them, each place once).
    rows, cols : array-like of int
        1-based row and column of each cell.
    values : array-like
        Python values. Text is always stored as text (never a formula); ``int`` and finite
        ``float`` as numbers; ``None`` as an empty cell. Anything else (bool, dates,
        infinities, numpy scalars, text openpyxl refuses or cuts) is bound to an openpyxl
        ``Cell`` now, as ``cell.value = v`` would (so openpyxl's errors, e.g.
        ``IllegalCharacterError``, are raised here).
    styles : array-like of int
        Index into ``palette`` of each cell's style.
    palette : sequence of StyleArray
        Style arrays of ``ws.parent`` (e.g. ``cell._style`` of a styled prototype cell or
        ``NamedStyle.as_tuple()``; ``None``: no style).
    text_errors : bool, keyword-only
        False: text equal to an Excel error code (``#N/A`` ...) becomes an error cell, as
        openpyxl's ``cell.value = "#N/A"`` does; True (default): it stays text.
    heights : mapping, keyword-only
        Row (1-based) → height in points: the rows written as ``ws.row_dimensions[row].height
        = height`` writes them, without an openpyxl object per row (~40 µs each: a
        district's 一表 has ~20,000 tall rows).
    """
    from openpyxl.cell.cell import ERROR_CODES, ILLEGAL_CHARACTERS_RE, Cell
    from openpyxl.styles.cell_style import StyleArray

    palette = [StyleArray() if sa is None else StyleArray(sa) for sa in palette]
    rows = np.asarray(rows, dtype=np.int64)
    cols = np.asarray(cols, dtype=np.int64)
    styles = np.asarray(styles, dtype=np.int64)
    vals = np.empty(len(rows), dtype=object)
    vals[:] = list(values) if not isinstance(values, np.ndarray) else values
    if not (len(rows) == len(cols) == len(vals) == len(styles)):
        raise ValueError("cell_block: rows, cols, values and styles must have the same length")
    types = pd.Series(vals, dtype=object).map(type).to_numpy(dtype=object)
    kinds = np.full(len(vals), CELL, dtype=np.int8)
    kinds[types == type(None)] = EMPTY
    is_str = np.asarray(types == str, dtype=bool)
    if is_str.any():
        text = vals[is_str].tolist()
        if max(map(len, text)) <= 32767 and not ILLEGAL_CHARACTERS_RE.search("".join(text)):
            ok = np.ones(len(text), dtype=bool)      # the common case: one scan of all the text
        else:
            ok = np.array([len(v) <= 32767 and not ILLEGAL_CHARACTERS_RE.search(v) for v in text], dtype=bool)
        if not text_errors:
            ok &= ~np.isin(np.array(text, dtype=object), ERROR_CODES)
        kinds[np.flatnonzero(is_str)[ok]] = TEXT
    is_num = np.flatnonzero((types == int) | (types == float))
    if len(is_num):
        x = np.array([float(v) for v in vals[is_num]]) if len(is_num) else np.zeros(0)
        kinds[is_num[np.isfinite(x)]] = NUMBER
    for i in np.flatnonzero(kinds == CELL):
        v = vals[i]
        if isinstance(v, Cell):
            continue
        cell = Cell(ws, row=int(rows[i]), column=int(cols[i]), style_array=palette[styles[i]])
        cell.value = v
        if isinstance(v, str) and (text_errors or v not in ERROR_CODES):
            cell.data_type = "s"
        vals[i] = cell
    return CellBlock(rows=rows, cols=cols, values=vals, kinds=kinds, styles=styles, palette=tuple(palette),
                     heights=None if heights is None else {int(r): float(h) for r, h in heights.items()})


def save_workbook(wb: Any, path: str | PathLike, *, blocks: Mapping[str, CellBlock] | None = None) -> Path:
    """Save an openpyxl workbook atomically, byte-deterministic, ``blocks`` (sheet title →
    :class:`CellBlock`) written with their sheets.

    The bytes are those of ``wb.save`` followed by :func:`geotijian.io.atomic.normalise_zip`
    with the block cells as openpyxl cells: fixed zip entry times and permissions, fixed
    ``docProps/core.xml`` dates, entries in openpyxl's order. Returns ``path``.
    """
    from openpyxl.writer.excel import ExcelWriter

    blocks = dict(blocks or {})
    unknown = set(blocks) - set(wb.sheetnames)
    if unknown:
        raise ValueError(f"save_workbook: no sheet named {sorted(unknown)[0]!r} in the workbook")
    if wb.write_only or wb.read_only:
        raise ValueError("save_workbook: a normal (not read-only or write-only) openpyxl workbook is needed")

    class _Writer(ExcelWriter):
        def write_worksheet(self, ws: Any) -> None:
            return _write_sheet(self, ws, blocks.get(ws.title))

    path = Path(path)
    with atomic_path(path) as tmp:
        wb.properties.modified = datetime.datetime.now(tz=datetime.timezone.utc).replace(tzinfo=None)
        archive = _FixedZip(tmp, "w", zipfile.ZIP_DEFLATED, allowZip64=True)
        _Writer(wb, archive).save()
    return path


class _FixedZip(zipfile.ZipFile):
    """A zip whose entries get fixed times and permissions as they are written (and
    ``docProps/core.xml`` fixed dates): :func:`geotijian.io.atomic.normalise_zip`'s bytes."""

    def writestr(self, zinfo_or_arcname: Any, data: Any, compress_type: Any = None,
                 compresslevel: Any = None) -> None:
        name = zinfo_or_arcname.filename if isinstance(zinfo_or_arcname, zipfile.ZipInfo) else zinfo_or_arcname
        if isinstance(data, str):
            data = data.encode("utf-8")
        if name == "docProps/core.xml":
            data = _CORE_DATES.sub(rb"\g<1>" + _FIXED_ISO_TIME + rb"\g<2>", data)
        info = zipfile.ZipInfo(name, date_time=_FIXED_ZIP_TIME)
        info.compress_type = zipfile.ZIP_DEFLATED
        info.external_attr = 0o644 << 16
        super().writestr(info, data)

    def write(self, filename: Any, arcname: Any = None, compress_type: Any = None,
              compresslevel: Any = None) -> None:
        self.writestr(arcname if arcname is not None else str(filename), Path(filename).read_bytes())


def _write_sheet(excel: Any, ws: Any, block: CellBlock | None) -> None:
    """``ExcelWriter.write_worksheet``, in memory (no temporary file), the sheet's cell
    block (if it has one) written in its ``<sheetData>``."""
    from openpyxl.drawing.spreadsheet_drawing import SpreadsheetDrawing
    from openpyxl.worksheet._writer import WorksheetWriter
    from openpyxl.worksheet.dimensions import SheetDimension

    class _BlockWriter(WorksheetWriter):
        def write_dimensions(self) -> None:
            self.xf.send(SheetDimension(_dimension(ws, block)).to_tree())

        def write_rows(self) -> None:
            xf = self.xf.send(True)
            with xf.element("sheetData"):
                xf.write(_MARK)
            self.xf.send(None)
            self.sheet_data = _sheet_data(ws, block)   # here: styles registered as openpyxl's writer does

    ws._drawing = SpreadsheetDrawing()
    ws._drawing.charts = ws._charts
    ws._drawing.images = ws._images
    writer = (WorksheetWriter if block is None else _BlockWriter)(ws, out=BytesIO())
    writer.write()
    ws._rels = writer._rels
    xml = writer.read()
    if block is not None:
        mark = f"<sheetData>{_MARK}</sheetData>".encode()
        if xml.count(mark) != 1:
            raise RuntimeError(f"sheet {ws.title!r}: the cell data's place was not found once in openpyxl's XML")
        xml = xml.replace(mark, writer.sheet_data, 1)
    excel._archive.writestr(ws.path[1:], xml)
    excel.manifest.append(ws)


def _dimension(ws: Any, block: CellBlock) -> str:
    """``Worksheet.calculate_dimension`` over the block's and the sheet's own cells."""
    from openpyxl.utils import get_column_letter

    rows = np.concatenate([block.rows, np.array([k[0] for k in ws._cells], dtype=np.int64)])
    cols = np.concatenate([block.cols, np.array([k[1] for k in ws._cells], dtype=np.int64)])
    if not len(rows):
        return "A1:A1"
    return f"{get_column_letter(int(cols.min()))}{int(rows.min())}:{get_column_letter(int(cols.max()))}{int(rows.max())}"


def _own_cells(ws: Any, palette: list) -> tuple[list, list, list, list, list]:
    """The sheet's openpyxl cells as block entries (plain text, numbers and empty cells
    written directly; others, with comments or links, by openpyxl's cell writer)."""
    from openpyxl.styles.cell_style import StyleArray

    rows, cols, values, kinds, styles = [], [], [], [], []
    for (r, c), cell in ws._cells.items():
        v, dt = cell._value, cell.data_type
        if getattr(cell, "_comment", None) is not None or getattr(cell, "_hyperlink", None) is not None:
            kind = CELL
        elif v is None and dt == "n":
            kind = EMPTY
        elif dt == "s" and type(v) is str:
            kind = TEXT
        elif dt == "n" and type(v) in (int, float) and np.isfinite(v):
            kind = NUMBER
        else:
            kind = CELL
        rows.append(r)
        cols.append(c)
        values.append(cell if kind == CELL else v)
        kinds.append(kind)
        styles.append(len(palette))
        palette.append(cell._style if cell._style is not None else StyleArray())
    return rows, cols, values, kinds, styles


def _sheet_data(ws: Any, block: CellBlock) -> bytes:
    """The ``<sheetData>`` element of the block and the sheet's own cells, as openpyxl's
    ``WorksheetWriter.write_rows`` writes it; cell styles registered in its order."""
    from openpyxl.styles.cell_style import StyleArray
    from openpyxl.utils import get_column_letter

    palette = list(block.palette)
    own = _own_cells(ws, palette)
    dims = ws.row_dimensions
    heights = dict(block.heights or {})
    for r in [r for r in heights if r in dims]:   # a row openpyxl has already: its height set there
        dims[r].height = heights.pop(r)
    extra_rows = sorted((set(dims.keys()) | set(heights)) - set(block.rows.tolist()) - {r for r, _ in ws._cells})
    palette.append(StyleArray())          # the empty rows' entries: unstyled, never written
    rows = np.concatenate([block.rows, np.asarray(own[0], dtype=np.int64), np.asarray(extra_rows, dtype=np.int64)])
    cols = np.concatenate([block.cols, np.asarray(own[1], dtype=np.int64), np.zeros(len(extra_rows), np.int64)])
    values = np.concatenate([block.values, np.array(own[2] + [None] * len(extra_rows), dtype=object)])
    kinds = np.concatenate([block.kinds, np.asarray(own[3], dtype=np.int8), np.full(len(extra_rows), EMPTY, np.int8)])
    styles = np.concatenate([block.styles, np.asarray(own[4], dtype=np.int64),
                             np.full(len(extra_rows), len(palette) - 1, np.int64)])
    order = np.lexsort((cols, rows))
    rows, cols, values, kinds, styles = rows[order], cols[order], values[order], kinds[order], styles[order]
    same = (rows[1:] == rows[:-1]) & (cols[1:] == cols[:-1])
    if same.any():
        i = int(np.flatnonzero(same)[0])
        raise ValueError(f"sheet {ws.title!r}: cell {get_column_letter(int(cols[i]))}{int(rows[i])} given twice")
    cells = np.flatnonzero(kinds == CELL)
    for i in cells:                           # openpyxl cells are written with their own style
        styles[i] = len(palette)
        palette.append(values[i]._style if values[i]._style is not None else StyleArray())
    styled = np.array([any(sa) for sa in palette], dtype=bool)
    written = (kinds != EMPTY) | styled[styles]
    for i in cells:                           # openpyxl skips unstyled empty cells without comment
        cell = values[i]
        written[i] = cell._value is not None or cell.has_style or cell._comment is not None
    sattr = [""] * len(palette)
    cell_styles = ws.parent._cell_styles
    for code in pd.unique(styles[written]):
        if styled[code]:
            sattr[code] = f' s="{cell_styles.add(palette[code])}"'
    letters = {int(c): get_column_letter(int(c)) for c in np.unique(cols) if c > 0}
    out = ["<sheetData>"]
    current = None
    tags: dict = {}
    texts: dict[str, str] = {}
    for r, c, v, k, code, w in zip(rows.tolist(), cols.tolist(), values.tolist(), kinds.tolist(), styles.tolist(),
                                   written.tolist(), strict=True):
        if r != current:
            if current is not None:
                out.append("</row>")
            out.append(_row_tag(r, dims, tags, heights))
            current = r
        if not w:
            continue
        if k == TEXT:
            if v == "":
                out.append(f'<c r="{letters[c]}{r}"{sattr[code]} t="inlineStr"></c>')
                continue
            t = texts.get(v)
            if t is None:   # a text's element, escaped and as ASCII, once per distinct text
                e = v
                if "&" in e or "<" in e or ">" in e or "\r" in e:
                    e = e.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#13;")
                t = texts[v] = ('<t xml:space="preserve">' if v != v.strip() else "<t>") + \
                    e.encode("ascii", "xmlcharrefreplace").decode("ascii")
            out.append(f'<c r="{letters[c]}{r}"{sattr[code]} t="inlineStr"><is>{t}</t></is></c>')
        elif k == NUMBER:
            out.append(f'<c r="{letters[c]}{r}"{sattr[code]} t="n"><v>{"%.16g" % v}</v></c>')
        elif k == EMPTY:
            out.append(f'<c r="{letters[c]}{r}"{sattr[code]} t="n"></c>')
        else:
            out.append(_openpyxl_cell_xml(ws, v))
    if current is not None:
        out.append("</row>")
    out.append("</sheetData>")
    return "".join(out).encode("ascii", "xmlcharrefreplace")


def _row_tag(r: int, dims: Any, cache: dict, heights: Mapping[int, float] | None = None) -> str:
    """``<row r=...>`` with the row's dimension attributes (height ...), as lxml writes them;
    ``heights``: rows without a dimension object whose height is given (as if set on one)."""
    if r not in dims:
        if not heights or r not in heights:
            return f'<row r="{r}">'
        h = heights[r]
        if ("height", h) not in cache:   # the attributes of a row dimension with this height
            from openpyxl.worksheet.dimensions import RowDimension

            cache[("height", h)] = tuple(RowDimension(dims.worksheet, index=r, ht=h))
        rest = cache[("height", h)]
    else:
        attrs = {"r": f"{r}"}
        attrs.update(dims[r])
        if len(attrs) == 1:
            return f'<row r="{r}">'
        rest = tuple(attrs.items())[1:]
    if not rest:
        return f'<row r="{r}">'
    if rest not in cache:
        from lxml.etree import Element, tostring

        tag = tostring(Element("row", {"r": "0", **dict(rest)})).decode("ascii")
        cache[rest] = tag[len('<row r="0"'):-2]
    return f'<row r="{r}"{cache[rest]}>'


def _openpyxl_cell_xml(ws: Any, cell: Any) -> str:
    """One cell as openpyxl's cell writer writes it (and its comment recorded, as
    ``WorksheetWriter.write_row`` does)."""
    from openpyxl.cell._writer import write_cell
    from openpyxl.comments.comment_sheet import CommentRecord
    from openpyxl.xml.functions import xmlfile

    if cell._comment is not None:
        ws._comments.append(CommentRecord.from_cell(cell))
    buf = BytesIO()
    with xmlfile(buf) as xf:
        write_cell(xf, ws, cell, cell.has_style)
    return buf.getvalue().decode("ascii")
