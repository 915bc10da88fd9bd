"""Tables written for people: CSV, Excel and Markdown that text from the data cannot subvert.

Names of towns, committees, compounds, facilities and complaint categories come from the
data. A name such as ``=cmd|' /C calc'!A0`` opened in Excel or WPS would run as a formula
(CSV injection, OWASP); HTML in a name would render in a Markdown viewer. Every table
output goes through here:

* CSV (:func:`write_csv`): a text cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a
  carriage return is prefixed with ``'`` (OWASP's recommendation), unless it is a plain
  number (``-5``, ``+3.2``); numeric columns are written as numbers. Read back by
  :func:`undo_csv_prefix`.
* Excel (:func:`protect_cells`): such cells are stored as text with Excel's "quote
  prefix" style: shown exactly as written, never evaluated, not even after an edit.
* Markdown (:func:`markdown_cell`): ``& < >`` escaped as HTML entities, ``|`` and
  brackets escaped so a name cannot open a table cell, a link or an image.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .atomic import atomic_path

__all__ = ["FORMULA_PREFIXES", "is_formula_like", "defuse_frame", "write_csv", "undo_csv_prefix",
           "protect_cells", "markdown_cell"]

#: First characters that make a spreadsheet treat a cell as a formula (OWASP CSV injection).
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_RISKY = r"^[=+\-@\t\r]"
_NUMBER = r"^\s*[+-]?(?:\d+(?:[.,]\d*)?|[.,]\d+)(?:[eE][+-]?\d+)?\s*$"


def is_formula_like(value: Any) -> bool:
    """True for text a spreadsheet would evaluate (starts with = + - @ tab CR), plain
    numbers such as ``"-5"`` excepted."""
    return isinstance(value, str) and bool(re.match(_RISKY, value)) and not re.match(_NUMBER, value)


_RISKY_RE = re.compile(_RISKY)
_NUMBER_RE = re.compile(_NUMBER)
_FIRST = np.array(FORMULA_PREFIXES)


def _risky_mask(col: pd.Series) -> np.ndarray:
    """Cells of ``col`` that :func:`is_formula_like` calls formula-like (exact ``str`` only).

    The first character of every cell is taken at once (numpy's cast to one-character
    text); only cells starting with = + - @ tab CR (usually none) are checked one by one.
    """
    if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
        return np.zeros(len(col), dtype=bool)
    vals = col.to_numpy(dtype=object)
    try:
        first = vals.astype("U1")
    except Exception:  # a value numpy cannot turn into text (bytes not ASCII ...): all candidates
        first = np.full(len(vals), FORMULA_PREFIXES[0])
    out = np.zeros(len(vals), dtype=bool)
    for i in np.flatnonzero(np.isin(first, _FIRST)).tolist():
        v = vals[i]
        out[i] = type(v) is str and _RISKY_RE.match(v) is not None and _NUMBER_RE.match(v) is None  # noqa: E721
    return out


def defuse_frame(df: pd.DataFrame) -> tuple[pd.DataFrame, int]:
    """A copy of ``df`` whose formula-like text cells (and headers) carry a leading ``'``.

    Returns
    -------
    (DataFrame, int)
        The table and the number of cells changed.
    """
    out = df.copy()
    changed = 0
    for j, c in enumerate(out.columns):
        mask = _risky_mask(out.iloc[:, j])
        if mask.any():
            orig = out.iloc[:, j]
            col = orig.astype("object").to_numpy().copy()
            col[mask] = np.array(["'" + v for v in col[mask]], dtype=object)
            out.isetitem(j, pd.Series(col, index=out.index, dtype=orig.dtype))
            changed += int(mask.sum())
    risky = [is_formula_like(str(c)) for c in out.columns]
    out.columns = ["'" + str(c) if r else c for c, r in zip(out.columns, risky, strict=True)]
    changed += sum(risky)
    return out, changed


def write_csv(df: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> Path:
    """Write a table as CSV (UTF-8 with BOM, so Excel reads Chinese) atomically, formula-like
    text defused (see the module docstring). ``kwargs`` go to ``DataFrame.to_csv``."""
    safe, _ = defuse_frame(pd.DataFrame(df))
    kwargs.setdefault("index", False)
    kwargs.setdefault("encoding", "utf-8-sig")
    with atomic_path(path) as tmp:
        safe.to_csv(tmp, **kwargs)
    return Path(path)


def undo_csv_prefix(df: pd.DataFrame) -> pd.DataFrame:
    """Remove the ``'`` that :func:`write_csv` put before formula-like text (reading a
    geotijian CSV back, e.g. last year's ledger)."""
    out = df.copy()
    for j in range(out.shape[1]):
        col = out.iloc[:, j]
        if not (pd.api.types.is_object_dtype(col) or pd.api.types.is_string_dtype(col)):
            continue
        s = col.astype("object")
        is_text = s.map(type).to_numpy() == str  # noqa: E721
        text = s.where(is_text, "").astype(str)
        mask = is_text & text.str.match(r"^'[=+\-@\t\r]").to_numpy()
        if mask.any():
            vals = s.to_numpy().copy()
            vals[mask] = np.array([v[1:] for v in vals[mask]], dtype=object)
            out.isetitem(j, pd.Series(vals, index=out.index, dtype=col.dtype))
    out.columns = [c[1:] if isinstance(c, str) and c.startswith("'") and is_formula_like(c[1:]) else c
                   for c in out.columns]
    return out


def protect_cells(ws: Any) -> int:
    """Make every formula-like text cell of an openpyxl worksheet plain text.

    openpyxl stores a string starting with ``=`` as a live formula; such cells (and those
    starting with + - @ tab CR) become text cells with the quote-prefix style, which
    Excel and WPS show as written and never evaluate. Returns the number of cells changed.
    """
    changed = 0
    for row in ws.iter_rows():
        for cell in row:
            v = cell.value
            if isinstance(v, str) and (cell.data_type == "f" or is_formula_like(v)):
                cell.data_type = "s"
                cell.quotePrefix = True
                changed += 1
    return changed


def markdown_cell(value: Any) -> str:
    """Text for a Markdown table cell: HTML escaped, ``|`` and brackets escaped, one line."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    s = f"{value:.4g}" if isinstance(value, float) else str(value)
    s = s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    s = s.replace("\\", "\\\\").replace("|", "\\|").replace("[", "\\[").replace("]", "\\]").replace("`", "\\`")
    return " ".join(s.split())
