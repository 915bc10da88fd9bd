"""Reading returned fill-in workbooks: validation, completeness and roll-up 栋 → 小区 → 社区 → 街镇 → 区.

:func:`collect_fillins` reads a folder of workbooks written by
:func:`geotijian.indicators.fillin.write_fillin_workbooks` and filled in by departments,
towns and pilot communities, against the study's :class:`~geotijian.indicators.fillin.FillinPlan`:

* **validation**: every problem becomes one row of ``issues`` (workbook, sheet, row,
  column, area, code, problem, fix): a workbook of another study, year or edition, or
  whose indicator definitions differ; a missing sheet or column; an unknown indicator
  code; a changed unit; an unknown or duplicate area ID; a value out of range (是/否,
  whole numbers ≥ 0, 0-100 %, numbers ≥ 0); a missing required value (填报单位; the data
  source of a value; the other items of a building or compound record once one is
  answered); a value in a cell another workbook supplies;
* **completeness**: per workbook (town, pilot community, department) the expected,
  filled and missing values, workbooks not returned yet, and what is still missing;
* **roll-up** of every indicator by its rule: ``count`` (是 answers) and ``sum`` go up
  栋 → 小区 → 社区 → 街镇 → 区, ``none`` stays at its own level. An area's value exists only
  when every record below it is answered (a partial count would understate it); the
  counts of expected and answered records are kept beside it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import LayerError
from .fillin import (
    COVER_FIELDS,
    FILLIN_SCHEMA,
    FIRST_DATA_ROW,
    ID_COLUMNS,
    KIND_ZH,
    NO,
    NOT_HERE,
    RECORD_SHEETS,
    RECORD_ZH,
    TRAILING,
    YES,
    FillinPlan,
    _accepts_text,
)

__all__ = ["ISSUE_COLUMNS", "ROLLUP_COLUMNS", "CollectResult", "collect_fillins", "roll_up", "source_text"]

ISSUE_COLUMNS = ["workbook", "sheet", "row", "column", "area_id", "code", "problem", "fix"]
ROLLUP_COLUMNS = ["level", "area_id", "code", "value", "n_expected", "n_answered", "complete", "rule", "workbooks",
                  "sources"]
_YES = {YES, "y", "yes", "true", "1", "有", "是的"}
_NO = {NO, "n", "no", "false", "0", "无"}
_LEVEL_KEYS = {"compound": "compound_id", "unit": "unit_id", "town": "town_code", "district": "_district"}
_CHAINS = {"building": ("compound", "unit", "town", "district"), "compound": ("unit", "town", "district"),
           "community": ("unit", "town", "district"), "town": ("town", "district"), "district": ("district",)}
_OWN_LEVEL = {"community": "unit", "town": "town", "district": "district"}
_RECORD_COLUMNS = ["workbook_id", "file", "sheet", "row", "record", "record_id", "code", "value", "source"]
_RULE_EN = {"count": "count of 是 answers", "sum": "sum", "none": "not additive (own level only)"}


@dataclass
class CollectResult:
    """What :func:`collect_fillins` read.

    Attributes
    ----------
    records : DataFrame
        Every valid answer: ``workbook_id, file, sheet, row, record, record_id, code,
        value, source`` (flags as 1/0).
    issues : DataFrame
        :data:`ISSUE_COLUMNS`, one row per problem (empty when every workbook is valid).
    completeness : DataFrame
        Per expected workbook: ``workbook_id, kind, title, file, returned, organisation,
        expected, filled, missing, filled_share`` (share 0-1).
    missing : DataFrame
        What is still missing: ``workbook_id, title, record, code, name_zh, n_missing,
        n_expected, examples`` (first IDs).
    rollup : DataFrame
        :data:`ROLLUP_COLUMNS` by compound, unit (社区), town and district.
    values : DataFrame
        The complete rolled-up values as a long table ``level, area_id, code, value``
        (unit, town, district), with ``source`` (which workbooks supplied them).
    """

    records: pd.DataFrame
    issues: pd.DataFrame
    completeness: pd.DataFrame
    missing: pd.DataFrame
    rollup: pd.DataFrame
    values: pd.DataFrame
    files: list[Path] = field(default_factory=list)

    def messages(self) -> list[str]:
        """One line per issue: ``fill-in 'x.xlsx', sheet 's', row 12 (id 'B1'): problem. Fix: ...``."""
        return [_message(r) for r in self.issues.to_dict("records")]

    def raise_if_invalid(self) -> None:
        """Raise the first issue as a :class:`~geotijian.errors.LayerError` (with the count)."""
        if len(self.issues):
            r = self.issues.iloc[0]
            where = f"fill-in {r['workbook']}" + (f", sheet {r['sheet']}" if r["sheet"] else "")
            raise LayerError(where, r["problem"] + (f" [{len(self.issues)} problems in all: "
                                                    "`geotijian collect` lists them]" if len(self.issues) > 1 else ""),
                             feature=f"row {int(r['row'])}" if pd.notna(r["row"]) and r["row"] != "" else None,
                             feature_id=r["area_id"] or None, fix=r["fix"])


def _message(r: dict) -> str:
    where = f"fill-in '{r['workbook']}'"
    if r["sheet"]:
        where += f", sheet '{r['sheet']}'"
    if r["row"] not in ("", None) and not (isinstance(r["row"], float) and np.isnan(r["row"])):
        where += f", row {int(r['row'])}"
    if r["column"]:
        where += f", column {r['column']}"
    if r["area_id"]:
        where += f" (id {r['area_id']!r})"
    return f"{where}: {r['problem']}. Fix: {r['fix']}"


class _Issues:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, workbook: str, problem: str, fix: str, *, sheet: str = "", row: Any = "", column: str = "",
            area_id: Any = "", code: str = "") -> None:
        self.rows.append({"workbook": workbook, "sheet": sheet, "row": row, "column": column,
                          "area_id": "" if area_id is None else str(area_id), "code": code, "problem": problem,
                          "fix": fix})

    def frame(self) -> pd.DataFrame:
        return pd.DataFrame(self.rows, columns=ISSUE_COLUMNS)


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, str) and v.strip() == "") or (isinstance(v, float) and np.isnan(v))


def _parse(value: Any, kind: str) -> tuple[float | None, str | None]:
    """(number, None) or (None, problem)."""
    if kind == "flag":
        s = str(value).strip().lower() if not isinstance(value, bool) else ("true" if value else "false")
        if isinstance(value, (int, float)) and not isinstance(value, bool) and float(value) in (0.0, 1.0):
            return float(value), None
        if s in _YES:
            return 1.0, None
        if s in _NO:
            return 0.0, None
        return None, f"answer {value!r} is not {YES} or {NO}"
    if isinstance(value, bool):
        return None, f"value {value!r} is not a number"
    if isinstance(value, (int, float)):
        x = float(value)
    else:
        s = str(value).strip().replace(",", "").replace("，", "")
        pct = s.endswith(("%", "％"))
        s = s.rstrip("%％").strip()
        try:
            x = float(s)
        except ValueError:
            return None, f"value {value!r} is not a number"
        if pct and kind != "percent":
            return None, f"value {value!r} is a percentage, the indicator is not"
    if not np.isfinite(x):
        return None, f"value {value!r} is not a finite number"
    if x < 0:
        return None, f"value {x:g} is negative"
    if kind == "percent" and x > 100:
        return None, f"value {x:g} is above 100 %"
    if kind == "count" and abs(x - round(x)) > 1e-9:
        return None, f"value {x:g} is not a whole number"
    return x, None


class _Book:
    """A workbook's cell values, read with calamine (Rust; ~20x faster than openpyxl on
    housing sheets of thousands of buildings): ``sheetnames``, ``rows(name)`` (tuples) and
    ``array(name)`` (a 2-D object array; empty cells None)."""

    def __init__(self, path: Path) -> None:
        from python_calamine import CalamineWorkbook

        self._wb = CalamineWorkbook.from_path(str(path))
        self.sheetnames = list(self._wb.sheet_names)

    def array(self, name: str) -> np.ndarray:
        rows = self._wb.get_sheet_by_name(name).to_python()
        width = max((len(r) for r in rows), default=0)
        if any(len(r) != width for r in rows):          # calamine pads its rows; be safe if not
            rows = [list(r) + [""] * (width - len(r)) for r in rows]
        a = np.empty((len(rows), width), dtype=object)
        if len(rows) and width:
            a[:] = rows
            a[_eq(a, "")] = None
        return a

    def rows(self, name: str) -> list[tuple]:
        return [tuple(r) for r in self.array(name)]


def _eq(a: np.ndarray, value: str) -> np.ndarray:
    """Element-wise ``a == value`` of an object array, as a boolean array of a's shape."""
    return np.asarray(a == value, dtype=bool) if a.size else np.zeros(a.shape, dtype=bool)


def _id_text(v: Any) -> str:
    """An ID cell as text (an ID typed as a number reads as 310114101.0)."""
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v).strip()


def _read_meta(rows: list[tuple]) -> tuple[dict[str, str], dict[str, str]]:
    meta: dict[str, str] = {}
    defs: dict[str, str] = {}
    in_defs = False
    for row in rows:
        a, b = (tuple(row) + (None, None))[:2]
        if a is None:
            continue
        if a == "code" and b == "definition":
            in_defs = True
            continue
        (defs if in_defs else meta)[str(a)] = "" if b is None else _id_text(b)
    return meta, defs


def _read_cover(sheet_rows: list[tuple]) -> tuple[dict[str, Any], dict[str, int]]:
    labels = {label: key for key, label, _req in COVER_FIELDS}
    out: dict[str, Any] = {}
    rows: dict[str, int] = {}
    for i, row in enumerate(sheet_rows, start=1):
        a, b = (tuple(row) + (None, None))[:2]
        if isinstance(a, str):
            label = a.replace("*", "").strip()
            if label in labels:
                out[labels[label]] = None if _blank(b) else str(b).strip()
                rows[labels[label]] = i
    return out, rows


def collect_fillins(source: str | PathLike | Iterable[str | PathLike], plan: FillinPlan) -> CollectResult:
    """Read, validate and roll up returned fill-in workbooks.

    Parameters
    ----------
    source : path or iterable of paths
        A folder (every ``*.xlsx`` in it, lock files ``~$*`` skipped) or workbook paths.
    plan : FillinPlan
        The study's plan (:func:`~geotijian.indicators.fillin.fillin_plan`), rebuilt from
        the same study: the workbooks must match its study, year, edition, definitions,
        sheets, columns and rows.

    Returns
    -------
    CollectResult
        Valid answers, issues, completeness, what is missing, the roll-up and the values.
        Invalid cells are left out of the roll-up (their areas have no value) and listed
        in ``issues``; :meth:`CollectResult.raise_if_invalid` stops on the first.

    Raises
    ------
    LayerError
        When ``source`` does not exist.
    """
    if isinstance(source, (str, PathLike)):
        folder = Path(source)
        if not folder.exists():
            raise LayerError(f"fill-in folder ({folder})", "not found", fix="check [fillin] folder in study.toml")
        files = sorted(p for p in folder.glob("*.xlsx") if not p.name.startswith(("~$", ".")))
    else:
        files = [Path(p) for p in source]
    issues = _Issues()
    answers: list[pd.DataFrame] = []
    returned: dict[str, dict[str, Any]] = {}
    wb_ids = set(plan.workbooks["workbook_id"])
    plan_cells = plan.cells.reset_index(drop=True)     # positions: records point at their plan cell
    by_wb = dict(tuple(plan_cells.groupby("workbook_id", sort=False)))
    by_wb.update({w: plan_cells.iloc[:0] for w in wb_ids - set(by_wb)})
    items = plan.items.set_index("code")
    for path in files:
        name = path.name
        try:
            wb = _Book(path)
        except Exception as exc:  # a corrupt or non-Excel file
            issues.add(name, f"cannot be read as an Excel workbook ({type(exc).__name__})",
                       "save it again as .xlsx from Excel or WPS")
            continue
        if "_meta" not in wb.sheetnames:
            issues.add(name, "not a geotijian fill-in workbook (no _meta sheet)",
                       "fill in the workbook written by `geotijian template`, without removing sheets")
            continue
        meta, defs = _read_meta(wb.rows("_meta"))
        if not _check_meta(meta, defs, plan, items, name, issues):
            continue
        wid = meta["workbook_id"]
        if wid not in wb_ids:
            issues.add(name, f"the study expects no workbook {wid!r} (its fill-in plan changed)",
                       "fill in this year's template (`geotijian template`)", sheet="_meta")
            continue
        if wid in returned:
            issues.add(name, f"a second workbook for {wid} (the first is {returned[wid]['file']})",
                       "keep one returned workbook per supplier in the folder")
            continue
        cover, cover_rows = _read_cover(wb.rows("填报说明")) if "填报说明" in wb.sheetnames else ({}, {})
        returned[wid] = {"file": name, **cover}
        got = _read_sheets(wb, path, wid, plan, items, cover, issues, cells=by_wb[wid])
        if len(got) and not cover.get("organisation"):
            issues.add(name, "missing required value '填报单位'", "write the supplying organisation on the cover",
                       sheet="填报说明", row=cover_rows.get("organisation", ""), column="B")
        if len(got):
            answers.append(got)
    records = pd.concat(answers, ignore_index=True) if answers else pd.DataFrame(columns=[*_RECORD_COLUMNS, "_cell"])
    cells = _answered_cells(plan_cells, records, records.pop("_cell").to_numpy(dtype=np.int64))
    completeness, missing = _completeness(plan, cells, returned)
    rollup = roll_up(plan, records, cells=cells)
    values = _values(plan, rollup, records, returned)
    return CollectResult(records=records, issues=issues.frame(), completeness=completeness, missing=missing,
                         rollup=rollup, values=values, files=files)


def _check_meta(meta: dict, defs: dict, plan: FillinPlan, items: pd.DataFrame, name: str, issues: _Issues) -> bool:
    fix_tpl = f"fill in the template of study {plan.study!r}, {plan.year}, edition {plan.edition} (`geotijian template`)"
    if meta.get("format") != FILLIN_SCHEMA:
        issues.add(name, f"unknown fill-in format {meta.get('format')!r}", fix_tpl, sheet="_meta")
        return False
    for key, want in (("study", plan.study), ("year", str(plan.year)), ("edition", plan.edition)):
        if meta.get(key) != want:
            what = {"study": "study", "year": "year", "edition": "indicator edition"}[key]
            issues.add(name, f"the workbook is for {what} {meta.get(key)!r}, this study is {want!r}", fix_tpl,
                       sheet="_meta")
            return False
    ok = True
    for code, d in defs.items():
        if code in items.index and items.at[code, "definition"] != d:
            issues.add(name, f"indicator {code!r} is defined differently ({d} in the workbook, "
                             f"{items.at[code, 'definition']} in the study); values of different definitions are "
                             "not compared", fix_tpl, sheet="_meta", code=code)
            ok = False
    return ok


def _read_sheets(wb: _Book, path: Path, wid: str, plan: FillinPlan, items: pd.DataFrame, cover: dict,
                 issues: _Issues, cells: pd.DataFrame) -> pd.DataFrame:
    """The record sheets of one workbook; ``cells`` are the plan's cells of workbook ``wid``."""
    name = path.name
    out: list[pd.DataFrame] = []
    known_codes = set(plan.catalogue["code"])
    default_source = cover.get("default_source")
    for rec, rec_cells in cells.groupby("record", sort=False):
        sheet = RECORD_SHEETS[rec]
        if sheet not in wb.sheetnames:
            issues.add(name, f"sheet '{sheet}' is missing", "fill in the template without deleting or renaming sheets")
            continue
        rows = wb.array(sheet)
        if len(rows) < FIRST_DATA_ROW - 1:
            issues.add(name, "the header rows are missing", "keep rows 1-4 of the template", sheet=sheet)
            continue
        codes_row, units_row = list(rows[1]), list(rows[2])
        id_keys = {k for k, _t in ID_COLUMNS[rec]} | {k for k, _t in TRAILING}
        expected_codes = rec_cells["code"].unique().tolist()
        col_of: dict[str, int] = {}
        n_before = len(issues.rows)
        for j, code in enumerate(codes_row):
            if _blank(code):
                continue
            code = str(code).strip()
            if code in id_keys:
                col_of[code] = j
                continue
            letter = _col_letter(j)
            if code not in known_codes:
                issues.add(name, f"unknown indicator code {code!r}", "remove the column (only the template's "
                           "indicators are read) or restore the code written in row 2", sheet=sheet, row=2,
                           column=letter, code=code)
            elif code not in expected_codes:
                issues.add(name, f"indicator {code!r} is not filled in on this sheet (another workbook or the study "
                                 "computes it)", "remove the column", sheet=sheet, row=2, column=letter, code=code)
            else:
                col_of[code] = j
                want = items.at[code, "entry_unit"]
                got = "" if units_row[j] is None else str(units_row[j]).strip()
                if got != want:
                    issues.add(name, f"unit of {code} is {got!r}, the indicator is entered in {want!r}",
                               f"convert the values to {want} and restore the unit {want!r} in row 3", sheet=sheet,
                               row=3, column=letter, code=code)
                    col_of.pop(code)
        told = {i["code"] for i in issues.rows[n_before:]}     # header issues of this sheet already name them
        for code in expected_codes:
            if code not in col_of and code not in told:
                issues.add(name, f"the column of {code} is missing", "restore the template's column (row 2 holds "
                           "the indicator code)", sheet=sheet, row=2, code=code)
        if "record_id" not in col_of:
            issues.add(name, "the ID column is missing", "restore column A of the template", sheet=sheet, row=2)
            continue
        out.append(_read_rows(rows, rec, sheet, name, wid, rec_cells, col_of, items, default_source, issues))
    parts = [p for p in out if len(p)]
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*_RECORD_COLUMNS, "_cell"])


def _col_letter(j: int) -> str:
    """Excel's letters of the 0-based column ``j`` (0 → A, 25 → Z, 26 → AA), as
    ``openpyxl.utils.get_column_letter(j + 1)`` (no openpyxl import for reading)."""
    n, out = j + 1, ""
    while n > 0:
        n, r = divmod(n - 1, 26)
        out = chr(65 + r) + out
    return out


def _types(a: np.ndarray) -> np.ndarray:
    """The Python type of every element of an object array (same shape)."""
    return np.frompyfunc(type, 1, 1)(a) if a.size else np.empty(a.shape, dtype=object)


def _texts(a: np.ndarray, *, ids: bool) -> np.ndarray:
    """Cells (1-D object array) as stripped text, None where blank; with ``ids`` a whole
    number reads as its digits (:func:`_id_text`), else as ``str(v)``."""
    out = np.full(len(a), None, dtype=object)
    t = _types(a)
    s = np.asarray(t == str, dtype=bool)
    if s.any():
        out[s] = pd.Series(a[s], dtype=object).str.strip().to_numpy()
    other = ~s & ~pd.isna(a)
    if ids and other.any():                            # IDs typed as numbers: 310114101.0 → "310114101"
        f = other & np.asarray(t == float, dtype=bool)
        x = a[f].astype(float)
        whole = np.isfinite(x) & (x == np.round(x)) & (np.abs(x) < 2**53)
        fi = np.flatnonzero(f)
        out[fi[whole]] = pd.Series(x[whole].astype(np.int64)).astype(str).to_numpy()
        other[fi[whole]] = False
    for i in np.flatnonzero(other):                    # other types (rare): one by one, as before
        out[i] = _id_text(a[i]) if ids else str(a[i]).strip()
    out[_eq(out, "")] = None
    return out


def _classify(v: np.ndarray, kinds: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The answer cells (n × k object array; column j of ``kinds[j]``), vectorised.

    Returns ``blank`` (:func:`_blank`), ``not_here`` (the 不填 mark), ``value`` (the parsed number of every valid answer,
    NaN elsewhere) and ``odd``: the cells the vectorised rules do not settle (text numbers,
    other spellings of 是/否, out of range values, 不填 ...); their ``value`` and problem are
    :func:`_parse`'s, taken cell by cell by :func:`_settle` where the plan expects them.
    """
    n, k = v.shape
    t = _types(v)
    na = pd.isna(v)
    is_str = np.asarray(t == str, dtype=bool)
    num = np.asarray((t == float) | (t == int), dtype=bool) & ~na
    x = np.full((n, k), np.nan)
    x[num] = v[num].astype(float)
    with np.errstate(invalid="ignore"):
        ok_num = num & np.isfinite(x) & (x >= 0)
    kind = np.asarray(kinds, dtype=object)
    flag, pct, cnt = (kind == "flag")[None, :], (kind == "percent")[None, :], (kind == "count")[None, :]
    yes, no = is_str & _eq(v, YES), is_str & _eq(v, NO)
    valid = np.where(flag, yes | no | (num & ((x == 0) | (x == 1))),
                     ok_num & (~pct | (x <= 100)) & (~cnt | (np.abs(x - np.round(x)) <= 1e-9)))
    value = np.where(valid, np.where(yes, 1.0, np.where(no, 0.0, x)), np.nan)
    blank = na | (is_str & _eq(v, ""))
    odd = ~blank & ~valid
    not_here = is_str & _eq(v, NOT_HERE)
    for i, j in zip(*np.nonzero(odd & is_str & ~not_here), strict=True):     # whitespace only: blank (as _blank)
        if v[i, j].strip() == "":
            blank[i, j], odd[i, j] = True, False
    return blank, not_here, value, odd


def _settle(v: np.ndarray, kinds: list[str], cells: np.ndarray, value: np.ndarray) -> dict[tuple[int, int], str]:
    """:func:`_parse` of the ``cells`` (boolean mask) one by one: ``value`` updated in
    place, problems returned by (row, column) position."""
    problems = {}
    for i, j in zip(*np.nonzero(cells), strict=True):
        x, problem = _parse(v[i, j], kinds[j])
        if problem:
            problems[(int(i), int(j))] = problem
        else:
            value[i, j] = x
    return problems


def _read_rows(a: np.ndarray, rec: str, sheet: str, name: str, wid: str, rec_cells: pd.DataFrame,
               col_of: dict[str, int], items: pd.DataFrame, default_source: str | None,
               issues: _Issues) -> pd.DataFrame:
    """Validate and read a record sheet's rows (``a``: the sheet's cells), vectorised.

    Issues are added in the order of a row-by-row reading: by row, then per row the row's
    problem (no ID, unknown ID, duplicate) or its cells' problems by column, then a
    missing required value or data source.
    """
    id_col, src_col = col_of["record_id"], col_of.get("source")
    kind, unit = items["kind"].to_dict(), items["entry_unit"].to_dict()
    codes = [c for c in rec_cells["code"].unique().tolist() if c in col_of]
    kinds = [kind[c] for c in codes]
    record_zh = RECORD_ZH[rec]
    data = a[FIRST_DATA_ROW - 1:]
    row_no = np.arange(FIRST_DATA_ROW, FIRST_DATA_ROW + len(data))
    v = data[:, [col_of[c] for c in codes]] if codes else np.empty((len(data), 0), dtype=object)
    blank, not_here, value, odd = _classify(v, kinds)
    started = (~blank & ~not_here).any(axis=1)          # a row with any answer
    rid = _texts(data[:, id_col], ids=True)
    found: list[tuple[int, int, int, dict]] = []        # (row, phase, column, issue)
    no_id = pd.isna(rid)
    for i in np.flatnonzero(no_id & started):
        found.append((row_no[i], 0, 0, dict(problem=f"values without a {record_zh} ID", fix=f"write the {record_zh} ID "
                                            "in column A or remove the row")))
    # (against the distinct IDs: isin over the plan's every cell took ~0.3 s per sheet)
    known = ~no_id & (pd.Index(pd.unique(rec_cells["record_id"].to_numpy())).get_indexer(rid) >= 0)
    for i in np.flatnonzero(~no_id & ~known):
        found.append((row_no[i], 0, 0, dict(problem=f"unknown {record_zh} ID {rid[i]!r}", fix="use the pre-filled rows "
                                            f"of the template (one row per {record_zh} of this workbook); do not add or "
                                            "renumber rows", area_id=rid[i])))
    cand = np.flatnonzero(known)
    dup = pd.Series(rid[cand]).duplicated().to_numpy()
    first = dict(zip(rid[cand[~dup]], row_no[cand[~dup]], strict=True)) if dup.any() else {}
    for i in cand[dup]:
        found.append((row_no[i], 0, 0, dict(problem=f"{record_zh} {rid[i]!r} appears twice (first in row "
                                            f"{first[rid[i]]})", fix=f"keep one row per {record_zh}", area_id=rid[i])))
    p = cand[~dup]                                      # the rows read: known IDs, first occurrence
    cell = np.full((len(p), len(codes)), -1, dtype=np.int64)   # the plan's cell of each (record, code); -1 none
    rc = rec_cells[rec_cells["code"].isin(codes)]
    ri = pd.Index(rid[p]).get_indexer(rc["record_id"])
    cj = pd.Index(codes).get_indexer(rc["code"])
    cell[ri[ri >= 0], cj[ri >= 0]] = rc.index.to_numpy()[ri >= 0]
    exp = cell >= 0                                     # the cells this workbook supplies
    v, blank, value, odd, not_here = v[p], blank[p], value[p], odd[p], not_here[p]
    problems = _settle(v, kinds, exp & (odd | not_here), value)
    letters = [_col_letter(col_of[c]) for c in codes]
    for i, j in zip(*np.nonzero(~exp & ~blank & ~not_here), strict=True):
        found.append((row_no[p[i]], 1, j, dict(problem=f"{codes[j]} of {rid[p[i]]} is supplied by another workbook",
                                               fix=f"leave the cell marked {NOT_HERE} empty", column=letters[j],
                                               area_id=rid[p[i]], code=codes[j])))
    for (i, j), problem in problems.items():
        found.append((row_no[p[i]], 1, j, dict(problem=f"{codes[j]}: {problem}", fix=f"enter {_accepts_text(kinds[j])} "
                                               f"in {unit[codes[j]]} (leave it empty if not yet known)",
                                               column=letters[j], area_id=rid[p[i]], code=codes[j])))
    good = exp & ~blank & ~np.isnan(value)
    drop = np.zeros(len(p), dtype=bool)
    if rec in ("building", "compound"):
        empty = exp & blank
        drop = started[p] & empty.any(axis=1)
        for i in np.flatnonzero(drop):
            e = [codes[j] for j in np.flatnonzero(empty[i])]
            found.append((row_no[p[i]], 2, 0, dict(problem=f"missing required value: the {record_zh} record is started "
                                                   f"but {', '.join(e[:4])}{' …' if len(e) > 4 else ''} are empty",
                                                   fix=f"answer every item of the {record_zh} (是/否 or a number), or "
                                                   "clear the row", area_id=rid[p[i]], code=e[0])))
    source = _texts(data[p, src_col], ids=False) if src_col is not None else np.full(len(p), None, dtype=object)
    if not default_source:
        nosrc = ~drop & good.any(axis=1) & pd.isna(source)
        for i in np.flatnonzero(nosrc):
            found.append((row_no[p[i]], 2, 0, dict(problem="missing required value '数据来源' for the values of this row",
                                                   fix="write the data source in the row's 数据来源 column or a "
                                                   "默认数据来源 on the cover", column=_col_letter(src_col) if src_col is
                                                   not None else "", area_id=rid[p[i]])))
        drop |= nosrc
    for _r, _ph, _j, kw in sorted(found, key=lambda f: f[:3]):
        issues.add(name, sheet=sheet, row=int(_r), **kw)
    source = np.where(pd.isna(source), default_source, source)
    ri, cj = np.nonzero(good & ~drop[:, None])
    return pd.DataFrame({"workbook_id": wid, "file": name, "sheet": sheet, "row": row_no[p[ri]], "record": rec,
                         "record_id": rid[p[ri]], "code": np.asarray(codes, dtype=object)[cj] if len(codes) else
                         np.empty(0, dtype=object), "value": value[ri, cj], "source": source[ri],
                         "_cell": cell[ri, cj]}, columns=[*_RECORD_COLUMNS, "_cell"])


def _completeness(plan: FillinPlan, cells: pd.DataFrame,
                  returned: dict[str, dict[str, Any]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Per workbook and what is missing; ``cells``: the plan's cells with the answers' values."""
    cells = cells.assign(filled=cells["value"].notna())
    per = cells.groupby("workbook_id").agg(expected=("filled", "size"), filled=("filled", "sum")).reset_index()
    comp = plan.workbooks.merge(per, on="workbook_id", how="left")
    comp["expected"] = comp["expected"].fillna(0).astype(int)
    comp["filled"] = comp["filled"].fillna(0).astype(int)
    comp["missing"] = comp["expected"] - comp["filled"]
    comp["filled_share"] = np.where(comp["expected"] > 0, comp["filled"] / comp["expected"].clip(lower=1), 1.0)
    comp["returned"] = comp["workbook_id"].isin(set(returned))
    comp["returned_file"] = [returned.get(w, {}).get("file", "") for w in comp["workbook_id"]]
    comp["organisation"] = [returned.get(w, {}).get("organisation") or "" for w in comp["workbook_id"]]
    comp["kind_zh"] = comp["kind"].map(KIND_ZH)
    comp = comp[["workbook_id", "kind", "kind_zh", "owner", "title", "file", "returned", "returned_file",
                 "organisation", "expected", "filled", "missing", "filled_share"]]
    miss = cells[~cells["filled"]]
    names = plan.items.set_index("code")["name_zh"]
    if len(miss):
        g = miss.groupby(["workbook_id", "record", "code"], sort=True)
        missing = g.agg(n_missing=("record_id", "size"),
                        examples=("record_id", lambda s: ", ".join(list(s)[:5]) + (" …" if len(s) > 5 else ""))) \
            .reset_index()
        n_exp = cells.groupby(["workbook_id", "record", "code"]).size().rename("n_expected").reset_index()
        missing = missing.merge(n_exp, on=["workbook_id", "record", "code"])
        missing["name_zh"] = missing["code"].map(names)
        missing["title"] = missing["workbook_id"].map(plan.workbooks.set_index("workbook_id")["title"])
        order = {c: i for i, c in enumerate(plan.items["code"])}
        missing = missing.assign(_o=missing["code"].map(order)).sort_values(["workbook_id", "_o"]).drop(columns="_o")
        missing = missing[["workbook_id", "title", "record", "code", "name_zh", "n_missing", "n_expected", "examples"]]
    else:
        missing = pd.DataFrame(columns=["workbook_id", "title", "record", "code", "name_zh", "n_missing",
                                        "n_expected", "examples"])
    return comp.reset_index(drop=True), missing.reset_index(drop=True)


def _answered_cells(cells: pd.DataFrame, records: pd.DataFrame, cell: np.ndarray) -> pd.DataFrame:
    """``cells`` (the plan's, positional index) with each answer's ``value`` and ``source``
    (NaN where not answered); ``cell`` is each record's position in ``cells``."""
    value = np.full(len(cells), np.nan)
    value[cell] = records["value"].to_numpy(dtype=float)
    source = np.full(len(cells), np.nan, dtype=object)
    source[cell] = records["source"].to_numpy(dtype=object)
    return cells.assign(value=value, source=source)


def roll_up(plan: FillinPlan, records: pd.DataFrame, *, cells: pd.DataFrame | None = None) -> pd.DataFrame:
    """Roll answers up 栋 → 小区 → 社区 → 街镇 → 区 by each indicator's rule.

    ``count`` adds 是 answers (1/0), ``sum`` adds the numbers, both over every level above
    the record (a building counts in its compound, community, town and the district; a
    building outside every compound in its community directly). ``none`` keeps the value
    at the record's own level (a community rate is a community value only). An area's
    value exists only when every expected record below it is answered.

    Parameters
    ----------
    plan : FillinPlan
    records : DataFrame
        :attr:`CollectResult.records`.
    cells : DataFrame, optional
        ``plan.cells`` with the answers' ``value`` and ``source`` joined (NaN where not
        answered), when the caller has them already.

    Returns
    -------
    DataFrame
        :data:`ROLLUP_COLUMNS`; level ``compound``, ``unit`` (社区), ``town``, ``district``;
        ``value`` NaN when incomplete; sorted by level, area and code.
    """
    if cells is None:
        cells = plan.cells.merge(records[["workbook_id", "record", "record_id", "code", "value", "source"]],
                                 on=["workbook_id", "record", "record_id", "code"], how="left")
    if not len(cells):
        return pd.DataFrame(columns=ROLLUP_COLUMNS)
    code_i, code_u = pd.factorize(cells["code"].to_numpy(dtype=object))
    code_u = np.asarray(code_u, dtype=object)
    code_rule = pd.Series(code_u).map(plan.items.drop_duplicates("code").set_index("code")["rollup"]).to_numpy(object)
    additive = np.isin(code_rule, ["count", "sum"])[code_i]
    stays = (code_rule == "none")[code_i]
    rec_i, rec_u = pd.factorize(cells["record"].to_numpy(dtype=object))
    rec_u = np.asarray(rec_u, dtype=object)
    area = _area_keys(plan, cells, rec_i, rec_u)
    value = cells["value"].to_numpy(dtype=float)
    wb_i, wb_u = pd.factorize(cells["workbook_id"].to_numpy(dtype=object))
    src_i, src_u = pd.factorize(cells["source"].to_numpy(dtype=object))      # -1: no source
    labels = {"workbooks": (wb_i, np.asarray(wb_u, dtype=object)), "sources": (src_i, np.asarray(src_u, dtype=object))}
    parts = []
    for lv_o, (level, col) in enumerate(_LEVEL_KEYS.items()):
        # which (record, rule) pairs reach this level: count/sum go up the chain, none stays at its own level
        reach = np.zeros(len(cells), dtype=bool)
        for k, r in enumerate(rec_u):
            reach |= (rec_i == k) & ((additive & (level in _CHAINS[r])) | (stays & (_OWN_LEVEL.get(r) == level)))
        a_i, a_u = area[col]
        rows = np.flatnonzero(reach & (a_i >= 0))
        if len(rows):
            g = _level_groups(a_i[rows] * len(code_u) + code_i[rows], value[rows], rows, labels)
            g["_o"], g["level"] = np.full(len(g["_key"]), lv_o), np.full(len(g["_key"]), level, dtype=object)
            g["area_id"] = a_u[g["_key"] // len(code_u)]
            g["_area_rank"] = _ranks(a_u)[g["_key"] // len(code_u)]
            parts.append(g)
    if not parts:
        return pd.DataFrame(columns=ROLLUP_COLUMNS)
    g = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    code = g["_key"] % len(code_u)
    pair_i, pairs = pd.factorize(code * len(rec_u) + rec_i[g["first"]])
    texts = np.array([_rule_text(code_rule[p // len(rec_u)], rec_u[p % len(rec_u)]) for p in pairs], dtype=object)
    order = np.lexsort((_ranks(code_u)[code], g["_area_rank"], g["_o"]))
    complete = g["n_answered"] == g["n_expected"]
    out = pd.DataFrame({"level": g["level"], "area_id": g["area_id"], "code": code_u[code],
                        "value": np.where(complete, g["total"], np.nan), "n_expected": g["n_expected"],
                        "n_answered": g["n_answered"], "complete": complete, "rule": texts[pair_i],
                        "workbooks": g["workbooks"], "sources": g["sources"]})
    return out.iloc[order].reset_index(drop=True)


def _rule_text(rule: str, record: str) -> str:
    return f"{_RULE_EN[rule]}: {record}" + (" → " + " → ".join(_CHAINS[record]) if rule != "none" else "")


def _ranks(values: np.ndarray) -> np.ndarray:
    """Rank of each string of ``values`` in sorted order (code points, as pandas sorts text)."""
    r = np.empty(len(values), dtype=np.int64)
    r[np.argsort(np.asarray(values, dtype=object), kind="stable")] = np.arange(len(values))
    return r


def _area_keys(plan: FillinPlan, cells: pd.DataFrame, rec_i: np.ndarray,
               rec_u: np.ndarray) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Each cell's area at every level (:data:`_LEVEL_KEYS` columns): ``(index, ids)``,
    the index into the level's area IDs, -1 where the record has none (a building in no
    compound). A record's own community or town is its ID; the others come from
    ``plan.areas`` (looked up by position: one hash of the cells' IDs per record level)."""
    rid = cells["record_id"].to_numpy(dtype=object)
    sel = {r: np.flatnonzero(rec_i == k) for k, r in enumerate(rec_u)}
    pos = {r: pd.Index(plan.areas[r]["record_id"]).get_indexer(rid[s]) for r, s in sel.items() if r in plan.areas}
    own = {"unit_id": "community", "town_code": "town"}
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for col in ("compound_id", "unit_id", "town_code"):
        pieces = []
        for r, s in sel.items():
            if own.get(col) == r:
                codes, uniq = pd.factorize(rid[s])
            elif r in pos and col in plan.areas[r].columns:
                tc, uniq = pd.factorize(plan.areas[r][col].fillna("").astype(str).to_numpy(dtype=object))
                codes = np.where(pos[r] >= 0, tc[pos[r]], -1)
            else:
                continue
            pieces.append((s, codes, np.asarray(uniq, dtype=object)))
        vocab = pd.unique(np.concatenate([u for _s, _c, u in pieces] + [np.empty(0, dtype=object)]))
        vocab = np.asarray(vocab[vocab != ""], dtype=object)
        idx = np.full(len(cells), -1, dtype=np.int64)
        for s, codes, uniq in pieces:
            m = pd.Index(vocab).get_indexer(uniq)
            idx[s] = np.where(codes >= 0, m[codes], -1)
        out[col] = (idx, vocab)
    out["_district"] = (np.zeros(len(cells), dtype=np.int64), np.array([plan.district_id], dtype=object))
    return out


def _level_groups(key: np.ndarray, value: np.ndarray, rows: np.ndarray,
                  labels: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Group one level's cells by ``key`` (area × code): total (pandas' compensated sum, as
    before), expected and answered counts, first cell, and the distinct labels joined."""
    inv, keys = pd.factorize(key)
    n = len(keys)
    _, first = np.unique(inv, return_index=True)
    out = {"_key": np.asarray(keys, dtype=np.int64), "first": rows[first],
           "total": pd.Series(value).groupby(inv).sum().to_numpy(),
           "n_expected": np.bincount(inv, minlength=n).astype(np.int64),
           "n_answered": np.bincount(inv, weights=~np.isnan(value), minlength=n).astype(np.int64)}
    for name, (lab, names) in labels.items():
        out[name] = _distinct_joined(inv, lab[rows], names, n)
    return out


def _distinct_joined(group: np.ndarray, lab: np.ndarray, names: np.ndarray, n: int) -> np.ndarray:
    """Per group the distinct ``names[lab]`` (``lab`` -1: none), sorted and joined with '|'."""
    out = np.full(n, "", dtype=object)
    keep = lab >= 0
    if not keep.any():
        return out
    rank = _ranks(names)
    by_rank = names[np.argsort(rank)]
    pair = np.sort(pd.unique(group[keep].astype(np.int64) * len(names) + rank[lab[keep]]))
    g, r = pair // len(names), pair % len(names)
    single = np.bincount(g, minlength=n)[g] == 1
    out[g[single]] = by_rank[r[single]]
    gm, rm = g[~single], r[~single]
    if len(gm):
        starts = np.flatnonzero(np.r_[True, gm[1:] != gm[:-1]])
        for s, e in zip(starts, np.r_[starts[1:], len(gm)], strict=True):   # groups with several: few
            out[gm[s]] = "|".join(by_rank[rm[s:e]])
    return out


def source_text(rollup: pd.DataFrame, plan: FillinPlan, organisations: dict[str, str] | None = None) -> pd.Series:
    """Provenance of rolled-up values: ``填报: <workbooks> (<organisations>): <data sources>``."""
    titles = plan.workbooks.set_index("workbook_id")["title"].to_dict()
    orgs = organisations or {}
    out = []
    for wbs, srcs in zip(rollup["workbooks"].tolist(), rollup["sources"].tolist(), strict=True):
        w = [x for x in str(wbs).split("|") if x]
        who = "; ".join(titles.get(x, x) + (f"({orgs[x]})" if orgs.get(x) else "") for x in w[:3])
        if len(w) > 3:
            who += f" … ({len(w)} workbooks)"
        s = [x for x in str(srcs).split("|") if x]
        data = "; ".join(s[:3]) + (" …" if len(s) > 3 else "")
        out.append(f"填报: {who}" + (f": {data}" if data else ""))
    return pd.Series(out, index=rollup.index, dtype=object)


def _values(plan: FillinPlan, rollup: pd.DataFrame, records: pd.DataFrame,
            returned: dict[str, dict[str, Any]]) -> pd.DataFrame:
    """Complete unit / town / district values with the workbooks that supplied them."""
    v = rollup[rollup["complete"] & rollup["level"].isin(["unit", "town", "district"])]
    if not len(v):
        return pd.DataFrame(columns=["level", "area_id", "code", "value", "source"])
    orgs = {w: r.get("organisation") or "" for w, r in returned.items()}
    out = v[["level", "area_id", "code", "value"]].copy()
    out["source"] = source_text(v, plan, orgs)
    return out.reset_index(drop=True)

