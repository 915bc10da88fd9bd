"""The flat exchange table (数据交换表) and the year-over-year comparison.

The exchange table is the shape a municipal platform imports: one row per indicator and
area, every column documented in :data:`EXCHANGE_DOC` (written beside the CSV as
``exchange_table.md``). It carries the edition and the definition fingerprint of each
value, so next year's run can compare like with like: :func:`compare_years` refuses two
values of one code whose definitions differ, and marks the codes one edition has and the
other has not as not comparable.
"""

from __future__ import annotations

from os import PathLike
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import LayerError
from .editions import check_same_definitions

__all__ = ["EXCHANGE_COLUMNS", "EXCHANGE_DOC", "YOY_COLUMNS", "AREA_LEVEL_ZH", "exchange_table",
           "write_exchange_table", "read_exchange_table", "compare_years"]

EXCHANGE_COLUMNS = ["year", "study", "edition", "indicator_code", "indicator_name", "definition", "indicator_level",
                    "area_level", "area_code", "area_name", "value", "unit", "source"]
YOY_COLUMNS = ["indicator_code", "indicator_name", "area_level", "area_code", "area_name", "unit", "value_last",
               "value_this", "change", "comparable", "note"]
#: Area levels of the table (社区 = community check-up unit).
AREA_LEVEL_ZH = {"district": "区", "town": "街镇", "unit": "社区", "compound": "小区"}
_LEVEL_OF_ZH = {v: k for k, v in AREA_LEVEL_ZH.items()}
_ORDER = {"区": 0, "街镇": 1, "社区": 2, "小区": 3}

#: Data dictionary of the exchange table (Markdown).
EXCHANGE_DOC = """# 数据交换表 exchange_table.csv

One row per indicator and area; UTF-8 with BOM; sorted by area level (区, 街镇, 社区, 小区),
area code and indicator code. Text that begins with = + - @ is prefixed with ' so that a
spreadsheet never evaluates it.

| column | 中文 | meaning |
|---|---|---|
| year | 体检年度 | check-up year (``study.year``) |
| study | 体检研究 | study name (``study.name``) |
| edition | 指标体系版本 | edition of the indicator system (``indicators.edition``: 2023, 2024) |
| indicator_code | 指标代码 | geotijian indicator code; one code = one definition, never redefined |
| indicator_name | 指标名称 | the indicator's name as the edition words it |
| definition | 定义标识 | fingerprint ``<code>#<8 hex>`` of the definition (code, name, unit, direction); two years' values are compared only when it is equal |
| indicator_level | 指标层级 | 住房 / 小区(社区) / 街区 / 城区 (2024 framework) |
| area_level | 区域层级 | 区 (district), 街镇 (town), 社区 (community check-up unit), 小区 (compound: fill-in roll-ups only) |
| area_code | 区域代码 | district id, town code, unit id (``<town>-U<nn>``) or compound id |
| area_name | 区域名称 | name of the area |
| value | 数值 | the value in ``unit`` (percentages 0-100) |
| unit | 单位 | unit of the value |
| source | 数据来源 | ``计算: <method>`` (computed by geotijian from layers), ``问卷`` (resident survey), ``填报: <workbooks>(<organisation>): <data sources>`` (fill-in workbooks), ``填报表: <file>`` (flat fill-in table) |
"""


def _csv_text(s: object) -> object:
    """Text for a CSV opened in a spreadsheet: a leading = + - @ (or tab, CR) gets a ' prefix."""
    if isinstance(s, str) and s[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + s
    return s


def _uncsv_text(s: object) -> object:
    if isinstance(s, str) and len(s) > 1 and s[0] == "'" and s[1] in ("=", "+", "-", "@", "\t", "\r"):
        return s[1:]
    return s


def exchange_table(values: pd.DataFrame, catalogue: pd.DataFrame, *, study: str, year: int,
                   area_names: dict[tuple[str, str], str] | None = None) -> pd.DataFrame:
    """The flat exchange table of a study's values.

    Parameters
    ----------
    values : DataFrame
        ``level, area_id, code, value`` (levels district, town, unit, compound) and
        ``source`` (provenance text; empty = ``计算: <method>`` from the catalogue).
        Rows with a missing value are left out (the completeness report lists them).
    catalogue : DataFrame
        The study's catalogue (names, units, edition, definitions, levels).
    area_names : dict, optional
        ``{(level, area_id): name}``.

    Returns
    -------
    DataFrame
        :data:`EXCHANGE_COLUMNS`, sorted.

    Raises
    ------
    LayerError
        A code that is not in the catalogue, or a level that is not an area level.
    """
    v = values.copy()
    v = v[pd.to_numeric(v["value"], errors="coerce").notna()]
    cat = catalogue.set_index("code")
    unknown = ~v["code"].isin(cat.index)
    if unknown.any():
        raise LayerError("exchange table", f"indicator {v.loc[unknown, 'code'].iloc[0]!r} is not in the catalogue",
                         count=int(unknown.sum()), fix="judge and export values of the study's catalogue only")
    bad = ~v["level"].isin(list(AREA_LEVEL_ZH))
    if bad.any():
        raise LayerError("exchange table", f"area level {v.loc[bad, 'level'].iloc[0]!r} is unknown",
                         fix=f"use {', '.join(AREA_LEVEL_ZH)}")
    c = cat.reindex(v["code"])
    method_src = ("计算: " + c["method"].fillna("").astype(str)).where(c["method"].fillna("") != "fill_in", "填报")
    src = v["source"].fillna("").astype(str) if "source" in v.columns else pd.Series("", index=v.index)
    src = np.where(src.to_numpy() != "", src.to_numpy(), method_src.to_numpy())
    names = area_names or {}
    out = pd.DataFrame({
        "year": int(year), "study": study, "edition": c["edition"].to_numpy(), "indicator_code": v["code"].to_numpy(),
        "indicator_name": c["name_zh"].to_numpy(), "definition": c["definition"].to_numpy(),
        "indicator_level": c["indicator_level"].to_numpy(), "area_level": v["level"].map(AREA_LEVEL_ZH).to_numpy(),
        "area_code": v["area_id"].astype(str).to_numpy(),
        "area_name": [names.get((lv, str(a)), str(a)) for lv, a in zip(v["level"], v["area_id"], strict=True)],
        "value": pd.to_numeric(v["value"]).to_numpy(dtype=float), "unit": c["unit"].to_numpy(), "source": src})
    out = out.assign(_o=out["area_level"].map(_ORDER)).sort_values(["_o", "area_code", "indicator_code"],
                                                                    kind="stable")
    return out.drop(columns="_o")[EXCHANGE_COLUMNS].reset_index(drop=True)


def write_exchange_table(table: pd.DataFrame, path: str | PathLike, *, doc: bool = True) -> list[Path]:
    """Write the exchange table (CSV, UTF-8 with BOM) and its data dictionary (``.md``), atomically."""
    from ..io.atomic import atomic_path, write_text_atomic

    path = Path(path)
    t = table[EXCHANGE_COLUMNS].copy()
    for col in ("study", "indicator_name", "area_code", "area_name", "unit", "source"):
        t[col] = t[col].map(_csv_text)
    with atomic_path(path) as tmp:
        t.to_csv(tmp, index=False, encoding="utf-8-sig", float_format="%.6g")
    written = [path]
    if doc:
        written.append(write_text_atomic(path.with_suffix(".md"), EXCHANGE_DOC))
    return written


def read_exchange_table(path: str | PathLike) -> pd.DataFrame:
    """Read an exchange table written by :func:`write_exchange_table` and check its columns."""
    path = Path(path)
    label = f"exchange table ({path.name})"
    if not path.exists():
        raise LayerError(label, f"file not found: {path}", fix="check [ledger] last_values in study.toml")
    t = pd.read_csv(path, encoding="utf-8-sig", dtype={"area_code": str, "indicator_code": str, "definition": str,
                                                       "edition": str, "study": str})
    missing = [c for c in EXCHANGE_COLUMNS if c not in t.columns]
    if missing:
        raise LayerError(label, f"missing column(s) {', '.join(missing)}",
                         fix="use an exchange_table.csv written by geotijian")
    for col in ("study", "indicator_name", "area_code", "area_name", "unit", "source"):
        t[col] = t[col].map(_uncsv_text)
    t["definition"] = t["definition"].fillna("")
    return t[EXCHANGE_COLUMNS]


def compare_years(last: pd.DataFrame, this: pd.DataFrame) -> pd.DataFrame:
    """Year-over-year table: this year's values beside last year's, like with like.

    Parameters
    ----------
    last, this : DataFrame
        Exchange tables (:func:`exchange_table` / :func:`read_exchange_table`).

    Returns
    -------
    DataFrame
        :data:`YOY_COLUMNS`: one row per indicator and area in either year. ``comparable``
        is true when both years have a value of the same definition; ``change`` = this −
        last (in the unit). An indicator only one year's edition holds is listed with
        ``comparable`` false and a note (e.g. a 2023 code the 2024 list replaced).

    Raises
    ------
    LayerError
        When one code carries different definition fingerprints in the two years
        (:func:`~geotijian.indicators.editions.check_same_definitions`): values of
        different definitions are never compared.
    """
    check_same_definitions(last.rename(columns={"indicator_code": "code"}),
                           this.rename(columns={"indicator_code": "code"}), what="year-over-year table")
    key = ["indicator_code", "area_level", "area_code"]
    ly = str(last["year"].iloc[0]) if len(last) else "last year"
    ty = str(this["year"].iloc[0]) if len(this) else "this year"
    le = str(last["edition"].iloc[0]) if len(last) else ""
    te = str(this["edition"].iloc[0]) if len(this) else ""
    m = last[key + ["value", "indicator_name", "area_name", "unit"]].merge(
        this[key + ["value", "indicator_name", "area_name", "unit"]], on=key, how="outer", suffixes=("_last", "_this"),
        indicator=True)
    codes_last, codes_this = set(last["indicator_code"]), set(this["indicator_code"])
    notes = []
    for code, side in zip(m["indicator_code"], m["_merge"], strict=True):
        if side == "both":
            notes.append("")
        elif code not in codes_this:
            notes.append(f"not in {ty} (edition {te})")
        elif code not in codes_last:
            notes.append(f"not in {ly} (edition {le})")
        else:
            notes.append(f"no value in {ly}" if side == "right_only" else f"no value in {ty}")
    out = pd.DataFrame({
        "indicator_code": m["indicator_code"],
        "indicator_name": m["indicator_name_this"].fillna(m["indicator_name_last"]),
        "area_level": m["area_level"], "area_code": m["area_code"],
        "area_name": m["area_name_this"].fillna(m["area_name_last"]),
        "unit": m["unit_this"].fillna(m["unit_last"]), "value_last": m["value_last"], "value_this": m["value_this"],
        "change": m["value_this"] - m["value_last"], "comparable": (m["_merge"] == "both").to_numpy(), "note": notes})
    out = out.assign(_o=out["area_level"].map(_ORDER)).sort_values(["_o", "area_code", "indicator_code"],
                                                                    kind="stable")
    return out.drop(columns="_o")[YOY_COLUMNS].reset_index(drop=True)
