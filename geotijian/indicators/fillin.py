"""Fill-in workbooks (填报表) of the three-level linkage 区—街镇—社区.

The check-up's values that no layer gives are filled in by district departments, towns
(街镇) and pilot communities (试点社区). :func:`fillin_plan` decides who supplies what:
exactly the indicators of the study's edition that must be filled in (``fill_in`` yes)
and that the study did not compute, each on the rows its ``record`` names (one row per
residential building, compound, community, town or the district), in the workbook of its
``supplier``:

* ``community``: the pilot community's workbook for its own buildings, compounds and
  community row, the town's workbook for every other community of the town;
* ``town``: the town's workbook;
* any other supplier is a district department (区水务局, 区应急管理局 ...): one workbook
  per department with the district row (or the rows its record names).

:func:`write_fillin_workbooks` writes one Excel workbook per supplier: a cover (填报说明)
with the study, year, edition, the supplier's fields and instructions; an indicator sheet
(指标说明: definitions, units, reference values with source and confidence, roll-up rule,
what is accepted); one sheet per record level with the area rows pre-filled, one column
per indicator, data validation (是/否 lists, whole numbers ≥ 0, percentages 0-100,
numbers ≥ 0) and the input rules as prompts; the study's computed values for the
supplier's areas (计算值(参考)); and a hidden ``_meta`` sheet that ties the workbook to the
study, year, edition and definitions. Reading them back: :mod:`geotijian.indicators.collect`.

Text from the data (names, IDs) is always written as text, never as a formula
(:func:`_text_cell`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from ..errors import ConfigError, LayerError
from .editions import LEVEL_SUPPLIERS, RECORDS

__all__ = [
    "FILLIN_SCHEMA", "RECORD_SHEETS", "RECORD_ZH", "FillinPlan", "fillin_areas", "fillin_plan",
    "write_fillin_workbooks", "fill_workbook", "entry_kind", "entry_unit",
]

FILLIN_SCHEMA = "geotijian-fillin/1"
#: Sheet of each record level.
RECORD_SHEETS = {"building": "住房(楼栋)", "compound": "小区", "community": "社区", "town": "街镇", "district": "区"}
RECORD_ZH = {"building": "楼栋", "compound": "小区", "community": "社区(体检单元)", "town": "街镇", "district": "区"}
KIND_ZH = {"department": "区级部门", "town": "街镇", "community": "试点社区"}
#: Pre-filled columns of each record sheet: (field, Chinese title).
ID_COLUMNS = {
    "building": [("record_id", "楼栋编号"), ("compound_id", "小区编号"), ("compound_name", "小区名称"),
                 ("unit_id", "社区编号"), ("levels", "层数"), ("build_year", "建成年份")],
    "compound": [("record_id", "小区编号"), ("name", "小区名称"), ("unit_id", "社区编号"), ("town_code", "街镇代码"),
                 ("build_year", "建成年份"), ("population", "人口")],
    "community": [("record_id", "社区编号"), ("name", "社区(居委会)"), ("town_code", "街镇代码"), ("population", "人口")],
    "town": [("record_id", "街镇代码"), ("name", "街镇名称"), ("population", "人口")],
    "district": [("record_id", "区"), ("name", "名称"), ("population", "人口")],
}
TRAILING = [("source", "数据来源"), ("note", "备注")]
HEADER_ROWS = 4          # row 1 titles, 2 codes, 3 units, 4 reference; data from row 5
FIRST_DATA_ROW = HEADER_ROWS + 1
COVER_FIELDS = [("organisation", "填报单位", True), ("contact", "联系人", False), ("phone", "联系电话", False),
                ("date", "填报日期", False), ("default_source", "默认数据来源", True)]
COUNT_UNITS = ("个", "栋", "套", "条", "起", "处", "座", "所", "家", "人")
YES, NO = "是", "否"
NOT_HERE = "不填"        # a cell another workbook supplies


def entry_kind(rollup: str, unit: str) -> str:
    """What one cell accepts: ``flag`` (是/否, counted), ``count`` (whole number ≥ 0),
    ``percent`` (0-100) or ``number`` (≥ 0)."""
    if rollup == "count":
        return "flag"
    u = str(unit).strip()
    if u.startswith("%"):
        return "percent"
    if u.split(" ")[0] in COUNT_UNITS:
        return "count"
    return "number"


def entry_unit(kind: str, unit: str) -> str:
    """Unit written in a sheet's unit row: 是/否 for flags, else the indicator's unit
    (its first word: ``"栋 buildings"`` → ``栋``)."""
    return f"{YES}/{NO}" if kind == "flag" else str(unit).strip().split(" ")[0]


def _text_cell(cell: Any, value: Any) -> None:
    """Write ``value`` into an openpyxl cell; text is stored as text, never as a formula
    (names from data may start with = + - @)."""
    if isinstance(value, (np.generic,)):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        value = None
    cell.value = value
    if isinstance(value, str):
        cell.data_type = "s"


def _safe_name(text: str) -> str:
    return re.sub(r"[^0-9A-Za-z\u2E80-\u9FFF\-_]+", "_", str(text)).strip("_") or "x"


@dataclass
class FillinPlan:
    """Who fills in what, on which rows (see :func:`fillin_plan`).

    Attributes
    ----------
    study, year, edition : str, int, str
        The study the workbooks belong to.
    items : DataFrame
        One row per indicator to fill in: catalogue columns plus ``kind``
        (:func:`entry_kind`), ``entry_unit`` and ``reference_display``.
    areas : dict of DataFrame
        Record level → its rows (``record_id`` first, then ``unit_id``, ``town_code``,
        ``compound_id`` where they apply, display columns).
    workbooks : DataFrame
        ``workbook_id, kind, owner, title, file`` (kind department / town / community).
    cells : DataFrame
        ``workbook_id, record, record_id, code``: every expected value. A sheet's columns
        are its codes (:attr:`sheets`), its rows its record IDs (:attr:`rows`); a cell of
        a row and column that is not expected (two suppliers on one record level) is
        marked 不填 in the workbook.
    computed : DataFrame
        The study's computed values (``level, area_id, code, value``) shown for reference.
    catalogue : DataFrame
        The study's catalogue (names and units of the computed values).
    district_id, district_name : str
    unplaced : dict
        Counts of records that fall in no community (e.g. buildings outside every unit).
    """

    study: str
    year: int
    edition: str
    items: pd.DataFrame
    areas: dict[str, pd.DataFrame]
    workbooks: pd.DataFrame
    cells: pd.DataFrame
    computed: pd.DataFrame
    catalogue: pd.DataFrame
    district_id: str = "district"
    district_name: str = ""
    unplaced: dict[str, int] = field(default_factory=dict)

    @property
    def sheets(self) -> pd.DataFrame:
        """``workbook_id, record, code``: the indicator columns of each sheet, in the items' order."""
        s = self.cells[["workbook_id", "record", "code"]].drop_duplicates()
        order = {c: i for i, c in enumerate(self.items["code"])}
        return s.assign(_o=s["code"].map(order)).sort_values(["workbook_id", "record", "_o"], kind="stable") \
            .drop(columns="_o").reset_index(drop=True)

    @property
    def rows(self) -> pd.DataFrame:
        """``workbook_id, record, record_id``: the pre-filled rows of each sheet, sorted by ID."""
        return self.cells[["workbook_id", "record", "record_id"]].drop_duplicates() \
            .sort_values(["workbook_id", "record", "record_id"], kind="stable").reset_index(drop=True)


def _locate_points(geoms: np.ndarray, units: gpd.GeoDataFrame) -> np.ndarray:
    pts = shapely.point_on_surface(geoms)
    tree = shapely.STRtree(units.geometry.values)
    pi, ui = tree.query(pts, predicate="intersects")
    out = np.full(len(geoms), "", dtype=object)
    ids = units["unit_id"].astype(str).to_numpy()
    order = np.lexsort((ids[ui], pi))[::-1]
    out[pi[order]] = ids[ui][order]
    return out


def _clean(v: Any) -> Any:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    return v


def fillin_areas(units: gpd.GeoDataFrame, *, compounds: gpd.GeoDataFrame | None = None,
                 buildings: gpd.GeoDataFrame | None = None, towns: gpd.GeoDataFrame | None = None,
                 committees: gpd.GeoDataFrame | None = None, district_id: str = "district",
                 district_name: str = "") -> tuple[dict[str, pd.DataFrame], dict[str, int]]:
    """The rows of each record level, with the community and town they belong to.

    Parameters
    ----------
    units : GeoDataFrame
        The study's communities (``unit_id, town_code, population``, ``committees``).
    compounds : GeoDataFrame, optional
        ``compound_id, name, unit_id`` (after units were delineated), ``build_year``,
        ``population``.
    buildings : GeoDataFrame, optional
        ``building_id``, ``use`` (residential rows only are housing records; no ``use`` =
        all), ``compound_id``, ``levels``, ``build_year``. A building takes its compound's
        community, else the community holding its representative point.
    towns, committees : GeoDataFrame, optional
        For names (``town_code, name``; ``committee_id, name``).

    Returns
    -------
    (dict, dict)
        Record level → rows; counts of records that fall in no community (left out, to be
        reported by the caller).
    """
    u = pd.DataFrame(units.drop(columns="geometry", errors="ignore")).copy()
    u["unit_id"] = u["unit_id"].astype(str)
    u["town_code"] = u["town_code"].astype(str) if "town_code" in u else "town"
    cnames = dict(zip(committees["committee_id"].astype(str), committees["name"].astype(str), strict=True)) \
        if committees is not None and "name" in committees.columns else {}
    if "committees" in u.columns:
        u["name"] = ["、".join(cnames.get(c.strip(), c.strip()) for c in re.split(r"[;,、]", str(v)) if c.strip())
                     for v in u["committees"]]
    else:
        u["name"] = u["unit_id"]
    tnames = dict(zip(towns["town_code"].astype(str), towns["name"].astype(str), strict=True)) \
        if towns is not None and "name" in towns.columns else {}
    if "town_name" in u.columns:
        tnames = {**dict(zip(u["town_code"], u["town_name"].astype(str), strict=True)), **tnames}
    areas: dict[str, pd.DataFrame] = {}
    unplaced: dict[str, int] = {}
    pop = pd.to_numeric(u.get("population", pd.Series(np.nan, index=u.index)), errors="coerce")
    areas["community"] = pd.DataFrame({"record_id": u["unit_id"], "unit_id": u["unit_id"], "town_code": u["town_code"],
                                       "name": u["name"], "population": pop.round(0)}).sort_values("record_id")
    tcodes = sorted(u["town_code"].unique())
    areas["town"] = pd.DataFrame({"record_id": tcodes, "town_code": tcodes,
                                  "name": [tnames.get(t, t) for t in tcodes],
                                  "population": [float(pop[u["town_code"] == t].sum()) for t in tcodes]})
    areas["district"] = pd.DataFrame({"record_id": [district_id], "name": [district_name or district_id],
                                      "population": [float(pop.sum())]})
    town_of = dict(zip(u["unit_id"], u["town_code"], strict=True))
    cmp_unit: dict[str, str] = {}
    if compounds is not None:
        c = compounds.copy()
        c["compound_id"] = c["compound_id"].astype(str)
        unit_of = c["unit_id"].astype(object).where(c["unit_id"].notna(), "").astype(str).to_numpy() \
            if "unit_id" in c.columns else _locate_points(c.geometry.values, units)
        unit_of = np.where(pd.Series(unit_of).isin(set(u["unit_id"])), unit_of, "")
        keep = unit_of != ""
        unplaced["compound"] = int((~keep).sum())
        cmp_unit = dict(zip(c["compound_id"].to_numpy()[keep], unit_of[keep], strict=True))
        areas["compound"] = pd.DataFrame({
            "record_id": c["compound_id"].to_numpy()[keep], "unit_id": unit_of[keep],
            "town_code": [town_of[x] for x in unit_of[keep]],
            "name": c["name"].to_numpy()[keep] if "name" in c else c["compound_id"].to_numpy()[keep],
            "build_year": pd.to_numeric(c.get("build_year", pd.Series(np.nan, index=c.index)),
                                        errors="coerce").to_numpy()[keep],
            "population": pd.to_numeric(c.get("population", pd.Series(np.nan, index=c.index)),
                                        errors="coerce").round(0).to_numpy()[keep],
        }).sort_values("record_id").reset_index(drop=True)
    if buildings is not None:
        b = buildings
        if "use" in b.columns:
            use = b["use"].astype(str).str.strip().str.lower()
            b = b[use.isin(["residential", "apartments", "house", "住宅", "居住"]) | b["use"].isna()]
        bid = b["building_id"].astype(str).to_numpy()
        comp = b["compound_id"].astype(object).where(b["compound_id"].notna(), "").astype(str).to_numpy() \
            if "compound_id" in b.columns else np.full(len(b), "", dtype=object)
        unit_of = np.array([cmp_unit.get(x, "") for x in comp], dtype=object)
        loose = unit_of == ""
        if loose.any():
            unit_of[loose] = _locate_points(b.geometry.values[loose], units)
        comp = np.where(np.array([x in cmp_unit for x in comp]), comp, "")
        keep = unit_of != ""
        unplaced["building"] = int((~keep).sum())
        cname = dict(zip(areas["compound"]["record_id"], areas["compound"]["name"], strict=True)) \
            if "compound" in areas else {}
        areas["building"] = pd.DataFrame({
            "record_id": bid[keep], "compound_id": comp[keep], "compound_name": [cname.get(x, "") for x in comp[keep]],
            "unit_id": unit_of[keep], "town_code": [town_of[x] for x in unit_of[keep]],
            "levels": pd.to_numeric(b.get("levels", pd.Series(np.nan, index=b.index)), errors="coerce").to_numpy()[keep],
            "build_year": pd.to_numeric(b.get("build_year", pd.Series(np.nan, index=b.index)),
                                        errors="coerce").to_numpy()[keep],
        }).sort_values("record_id").reset_index(drop=True)
    for k, t in areas.items():
        dup = t["record_id"].duplicated()
        if dup.any():
            raise LayerError(RECORD_ZH[k], f"duplicate ID {t.loc[dup, 'record_id'].iloc[0]!r}",
                             fix="IDs must be unique (the fill-in rows are keyed by them)")
    return areas, unplaced


def _reference_display(op: str, value: float, kind: str) -> str:
    sym = {">": ">", ">=": "≥", "<": "<", "<=": "≤", "=": "="}.get(op, op)
    if not op or not np.isfinite(value):
        return "无参考值"
    text = f"{sym}{value:g}"
    return f"汇总值{text}" if kind == "flag" else text


def fillin_plan(catalogue: pd.DataFrame, areas: Mapping[str, pd.DataFrame], *, computed_codes: Iterable[str],
                pilot_communities: Iterable[str] = (), departments: Mapping[str, str] | None = None,
                study: str, year: int, computed: pd.DataFrame | None = None, district_id: str = "district",
                district_name: str = "", unplaced: Mapping[str, int] | None = None) -> FillinPlan:
    """Decide who fills in which indicator on which rows.

    Parameters
    ----------
    catalogue : DataFrame
        The study's :func:`~geotijian.indicators.indicator_catalogue` (one edition).
    areas : mapping
        :func:`fillin_areas` output.
    computed_codes : iterable of str
        Codes the study computed: never filled in.
    pilot_communities : iterable of str
        Unit IDs of the pilot communities (试点社区): they get their own workbook.
    departments : mapping, optional
        ``{code: department}`` replacing the edition's supplier of an indicator.
    study, year : str, int
        Written into every workbook and checked when it comes back.
    computed : DataFrame, optional
        The computed values (long table), shown for reference in the workbooks.

    Returns
    -------
    FillinPlan

    Raises
    ------
    ConfigError
        ``fillin.pilot_communities`` naming an unknown community, ``fillin.departments.<code>``
        for a code that is not a fill-in indicator of the edition.
    """
    cat = catalogue.copy()
    items = cat[(cat["fill_in"] == "yes") & ~cat["code"].isin(set(computed_codes))].copy()
    for code, dept in (departments or {}).items():
        if code not in set(cat["code"]) or cat.set_index("code").at[code, "fill_in"] != "yes":
            raise ConfigError(f"fillin.departments.{code}", "not a fill-in indicator of the study's edition",
                              "name a code of the edition whose fill_in is yes")
        if not isinstance(dept, str) or not dept.strip():
            raise ConfigError(f"fillin.departments.{code}", "must be a department name", 'write "区应急管理局"')
        items.loc[items["code"] == code, "supplier"] = dept.strip()
    pilots = [str(p) for p in pilot_communities]
    known = set(areas["community"]["record_id"])
    for p in pilots:
        if p not in known:
            raise ConfigError("fillin.pilot_communities", f"unknown community {p!r}",
                              f"use unit IDs of the study's units (e.g. {sorted(known)[0]})")
    missing_records = sorted(set(items["record"]) - set(areas))
    if missing_records:
        r = missing_records[0]
        lost = items.loc[items["record"] == r, "code"].tolist()
        raise LayerError(RECORD_ZH.get(r, r), f"the study has no {r} layer for the fill-in of {', '.join(lost[:3])}",
                         fix=f"give the study a {r}s layer ([layers.{r}s])")
    items["kind"] = [entry_kind(r, u) for r, u in zip(items["rollup"], items["unit"], strict=True)]
    items["entry_unit"] = [entry_unit(k, u) for k, u in zip(items["kind"], items["unit"], strict=True)]
    items["reference_display"] = [_reference_display(o, v, k) for o, v, k in
                                  zip(items["reference_op"], items["reference_value"], items["kind"], strict=True)]
    order = {lv: i for i, lv in enumerate(("住房", "小区(社区)", "街区", "城区"))}
    items["_o"] = items["indicator_level"].map(order).fillna(9)
    items["_s"] = pd.to_numeric(items["seq"], errors="coerce").fillna(1e9)
    items = items.sort_values(["_o", "_s", "code"], kind="stable").drop(columns=["_o", "_s"]).reset_index(drop=True)

    pilot_set = set(pilots)
    parts = []
    for rec in RECORDS:
        its = items[items["record"] == rec]
        if not len(its):
            continue
        a = areas[rec]
        for supplier, group in its.groupby("supplier", sort=True):
            rows = pd.DataFrame({"workbook_id": _owners(a, rec, supplier, pilot_set), "record": rec,
                                 "record_id": a["record_id"].to_numpy()})
            parts.append(rows.merge(pd.DataFrame({"code": group["code"].to_numpy()}), how="cross"))
    cells = pd.concat(parts, ignore_index=True) if parts else \
        pd.DataFrame(columns=["workbook_id", "record", "record_id", "code"])
    cells = cells.sort_values(["workbook_id", "record", "record_id", "code"], kind="stable").reset_index(drop=True)
    workbooks = _workbook_table(sorted(cells["workbook_id"].unique()), areas)
    return FillinPlan(study=study, year=int(year), edition=str(cat["edition"].iloc[0]), items=items, areas=dict(areas),
                      workbooks=workbooks, cells=cells,
                      computed=computed if computed is not None else pd.DataFrame(columns=["level", "area_id", "code",
                                                                                           "value"]),
                      catalogue=cat, district_id=district_id, district_name=district_name,
                      unplaced=dict(unplaced or {}))


def _owners(a: pd.DataFrame, rec: str, supplier: str, pilots: set[str]) -> np.ndarray:
    """Workbook of each row of a record level for one supplier."""
    n = len(a)
    if supplier not in LEVEL_SUPPLIERS:
        return np.full(n, f"department:{supplier}", dtype=object)
    if rec == "district":
        return np.full(n, "department:区相关部门", dtype=object)
    town = ("town:" + a["town_code"].astype(str)).to_numpy()
    if supplier == "town" or rec == "town":
        return town
    unit = a["unit_id"].astype(str).to_numpy()
    return np.where(np.isin(unit, list(pilots)), "community:" + a["unit_id"].astype(str).to_numpy(), town)


def _workbook_table(ids: list[str], areas: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    tnames = dict(zip(areas["town"]["record_id"], areas["town"]["name"], strict=True))
    cnames = dict(zip(areas["community"]["record_id"], areas["community"]["name"], strict=True))
    rows = []
    for wid in ids:
        kind, owner = wid.split(":", 1)
        if kind == "department":
            title, file = owner, f"填报_部门_{_safe_name(owner)}.xlsx"
        elif kind == "town":
            title, file = f"{tnames.get(owner, owner)}({owner})", f"填报_街镇_{owner}_{_safe_name(tnames.get(owner, ''))}.xlsx"
        else:
            title, file = f"{cnames.get(owner, owner)}({owner})", f"填报_社区_{_safe_name(owner)}.xlsx"
        rows.append({"workbook_id": wid, "kind": kind, "owner": owner, "title": title, "file": file})
    order = {"department": 2, "town": 0, "community": 1}
    t = pd.DataFrame(rows, columns=["workbook_id", "kind", "owner", "title", "file"])
    return t.assign(_o=t["kind"].map(order)).sort_values(["_o", "owner"]).drop(columns="_o").reset_index(drop=True)


# --------------------------------------------------------------------------- writing

def write_fillin_workbooks(plan: FillinPlan, folder: str | PathLike, *, generator: str = "geotijian") -> list[Path]:
    """Write one fill-in workbook per supplier into ``folder`` (atomically, deterministic bytes).

    Returns
    -------
    list of Path
        The written workbooks, in the order of ``plan.workbooks`` (towns, pilot
        communities, departments).
    """
    from ..xlsx_writer import save_workbook

    folder = Path(folder)
    written = []
    all_sheets = plan.sheets                                  # once, not per workbook
    sheets = dict(tuple(all_sheets.groupby("workbook_id", sort=False)))
    cells = dict(tuple(plan.cells.groupby("workbook_id", sort=False)))
    for wb_row in plan.workbooks.itertuples(index=False):
        wid = wb_row.workbook_id
        wb, blocks = _build_workbook(plan, wb_row, generator, sheets=sheets.get(wid, all_sheets.iloc[:0]),
                                     cells=cells.get(wid, plan.cells.iloc[:0]))
        written.append(save_workbook(wb, folder / wb_row.file, blocks=blocks))
    return written


_FILL_HEAD = "DDEBF7"
_FILL_CODE = "F2F2F2"
_FILL_ID = "FFF2CC"
_FILL_INPUT = "FFFFFF"


def _register_styles(wb: Any) -> None:
    """Named styles of the fill-in workbooks (a named style per cell is ~5x faster than
    setting font, fill and alignment cell by cell)."""
    from openpyxl.styles import Alignment, Border, Font, NamedStyle, PatternFill, Side

    thin = Side(style="thin", color="BFBFBF")
    border = Border(left=thin, right=thin, top=thin, bottom=thin)
    specs = {
        "gt_head": (Font(bold=True), PatternFill("solid", fgColor=_FILL_HEAD),
                    Alignment(wrap_text=True, vertical="center", horizontal="center"), border),
        "gt_code": (Font(color="7F7F7F", size=9), PatternFill("solid", fgColor=_FILL_CODE),
                    Alignment(horizontal="center"), border),
        "gt_id": (Font(), PatternFill("solid", fgColor=_FILL_ID), Alignment(horizontal="left"), Border()),
        "gt_box": (Font(), PatternFill(), Alignment(), border),
        "gt_wrap": (Font(size=9), PatternFill(), Alignment(wrap_text=True, vertical="top"), border),
        "gt_input": (Font(), PatternFill(), Alignment(horizontal="center"), border),
    }
    for name, (font, fill, align, brd) in specs.items():
        ns = NamedStyle(name=name)
        ns.font, ns.fill, ns.alignment, ns.border = font, fill, align, brd
        wb.add_named_style(ns)


def _style(cell: Any, name: str) -> None:
    cell.style = f"gt_{name}"


_WIDE = re.compile("[^\x00-\u2e80]")


def _width(text: Any) -> float:
    """Display width of a text: characters after U+2E80 (CJK) count 2."""
    s = str(text) if text is not None else ""
    return len(s) + len(_WIDE.findall(s))


def _build_workbook(plan: FillinPlan, wb_row: Any, generator: str, *, sheets: pd.DataFrame,
                    cells: pd.DataFrame) -> tuple[Any, dict[str, Any]]:
    """One supplier's workbook; ``sheets`` and ``cells`` are the plan's rows of that workbook.
    Returns the workbook and its record sheets' cell blocks (sheet title → block)."""
    from openpyxl import Workbook

    wb = Workbook()
    wb.remove(wb.active)
    _register_styles(wb)
    items = plan.items[plan.items["code"].isin(set(sheets["code"]))].reset_index(drop=True)
    _cover_sheet(wb, plan, wb_row, items, generator)
    _items_sheet(wb, items)
    blocks: dict[str, Any] = {}
    for rec in RECORDS:
        rec_codes = sheets.loc[sheets["record"] == rec, "code"].tolist()
        if not rec_codes:
            continue
        mine = cells[cells["record"] == rec]
        ids = pd.Series(sorted(mine["record_id"].unique().tolist()), dtype=object)
        expected = np.zeros((len(ids), len(rec_codes)), dtype=bool)      # rows × codes this workbook supplies
        expected[pd.Index(ids).get_indexer(mine["record_id"]), pd.Index(rec_codes).get_indexer(mine["code"])] = True
        blocks[RECORD_SHEETS[rec]] = _record_sheet(wb, plan, rec, plan.items.set_index("code").loc[rec_codes]
                                                   .reset_index(), ids, expected)
    _computed_sheet(wb, plan, wb_row)
    for ws in wb.worksheets:          # printable: landscape, one page wide
        ws.page_setup.orientation = "landscape"
        ws.page_setup.paperSize = ws.PAPERSIZE_A4
        ws.sheet_properties.pageSetUpPr.fitToPage = True
        ws.page_setup.fitToWidth = 1
        ws.page_setup.fitToHeight = 0
        if ws.max_row > 1 and ws.title not in ("填报说明",):
            ws.print_title_rows = f"1:{HEADER_ROWS if ws.title in RECORD_SHEETS.values() else 1}"
    _meta_sheet(wb, plan, wb_row, items)
    return wb, blocks


def _cover_sheet(wb: Any, plan: FillinPlan, wb_row: Any, items: pd.DataFrame, generator: str) -> None:
    from openpyxl.styles import Font

    ws = wb.create_sheet("填报说明")
    ws.column_dimensions["A"].width = 18
    ws.column_dimensions["B"].width = 70
    _text_cell(ws.cell(1, 1), f"{plan.year}年城市体检 数据填报表")
    ws.cell(1, 1).font = Font(bold=True, size=14)
    info = [("体检研究", plan.study), ("体检年度", plan.year), ("指标体系版本", plan.edition),
            ("填报对象", KIND_ZH[wb_row.kind]), ("填报范围", wb_row.title),
            ("指标数", len(items)), ("生成", generator)]
    r = 3
    for label, value in info:
        _text_cell(ws.cell(r, 1), label)
        _style(ws.cell(r, 1), "head")
        _text_cell(ws.cell(r, 2), value)
        _style(ws.cell(r, 2), "id")
        r += 1
    r += 1
    for _key, label, required in COVER_FIELDS:
        _text_cell(ws.cell(r, 1), label + (" *" if required else ""))
        _style(ws.cell(r, 1), "head")
        _style(ws.cell(r, 2), "box")
        r += 1
    r += 1
    notes = [
        "填写说明:",
        "1. 只在白色单元格填写;黄色为预填的区域信息,灰色第2行为指标代码,请勿修改(汇总时按代码和编号读取)。",
        "2. 第3行为填报单位(是/否、个、%、km ...),请按该单位填写数值,不要改动单位。",
        "3. 是/否类指标:按楼栋或小区逐一判断,填“是”或“否”;汇总时统计“是”的数量(规则见“指标说明”)。",
        "4. 数值类指标填数字(不带单位);百分比填0-100之间的数;数量填非负整数。尚未核实的留空,不要填0。",
        "5. 每个填写的数值都需要数据来源:在行末“数据来源”列填写,或在本页“默认数据来源”统一填写。",
        "6. 填报单位为必填项。一栋楼(或一个小区)开始填写后,该行所有指标都要填写。",
        "7. “计算值(参考)”页为体检平台根据图层计算的指标,供核对,无需填写。",
        f"8. 本表只适用于{plan.year}年、指标体系版本{plan.edition}的本次体检;其他年度或版本的表不会被接收。",
    ]
    for line in notes:
        _text_cell(ws.cell(r, 1), line)
        ws.merge_cells(start_row=r, start_column=1, end_row=r, end_column=2)
        r += 1


def _items_sheet(wb: Any, items: pd.DataFrame) -> None:
    ws = wb.create_sheet("指标说明")
    cols = [("seq", "序号", 5), ("code", "指标代码", 24), ("name_zh", "指标名称", 24), ("indicator_level", "层级", 9),
            ("national_group", "体检要素", 10), ("dimension", "维度", 9), ("entry_unit", "填报单位", 7),
            ("unit", "指标单位", 9), ("direction", "方向", 8), ("reference_display", "参考值", 9),
            ("reference_source", "参考值来源", 30), ("reference_confidence", "可信度", 18), ("record", "填报对象", 9),
            ("rollup", "汇总规则", 24), ("accepts", "可填内容", 12), ("computation_note", "指标定义", 48),
            ("source", "指标来源", 14)]
    for j, (_k, title, width) in enumerate(cols, start=1):
        c = ws.cell(1, j)
        _text_cell(c, title)
        _style(c, "head")
        ws.column_dimensions[c.column_letter].width = width
    for i, it in enumerate(items.to_dict("records"), start=2):
        values = {**it, "direction": "越高越好" if it["direction"] == "higher_better" else "越低越好",
                  "record": RECORD_ZH[it["record"]], "rollup": _rollup_text(it["record"], it["rollup"]),
                  "accepts": _accepts_text(it["kind"])}
        lines = 1
        for j, (k, _t, w) in enumerate(cols, start=1):
            c = ws.cell(i, j)
            _text_cell(c, values.get(k))
            _style(c, "wrap")
            lines = max(lines, -(-int(_width(values.get(k)) * 0.85) // max(w - 1, 1)))
        ws.row_dimensions[i].height = 12.5 * lines + 2     # wrapped text: no auto height on opening
    ws.freeze_panes = "C2"


def _rollup_text(record: str, rollup: str) -> str:
    chain = "栋 → 小区 → 社区 → 街镇 → 区"
    start = {"building": 0, "compound": 1, "community": 2, "town": 3, "district": 4}[record]
    path = " → ".join(chain.split(" → ")[start:])
    if rollup == "count":
        return f"统计“是”的数量,逐级相加({path})"
    if rollup == "sum":
        return f"数值逐级相加({path})" if record != "district" else "区级数值"
    return f"不汇总:只用于{RECORD_ZH[record]}本级"


def _accepts_text(kind: str) -> str:
    return {"flag": "是 / 否", "count": "非负整数", "percent": "0-100 之间的数", "number": "非负数"}[kind]


def _record_sheet(wb: Any, plan: FillinPlan, rec: str, items: pd.DataFrame, ids: pd.Series,
                  expected: np.ndarray) -> Any:
    """A record level's sheet: header rows, the area rows pre-filled, 不填 where another
    workbook supplies a cell (``expected``: rows × items, True where this one does).
    Returns the data rows' cell block (written with the sheet)."""
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    ws = wb.create_sheet(RECORD_SHEETS[rec])
    area = plan.areas[rec].set_index("record_id").loc[list(ids)].reset_index()
    id_cols = ID_COLUMNS[rec]
    n_id = len(id_cols)
    # header rows: 1 titles, 2 codes, 3 units, 4 reference
    for j, (key, title) in enumerate(id_cols, start=1):
        for row, text, spec in ((1, title, "head"), (2, key, "code"), (3, "", "code"), (4, "", "code")):
            c = ws.cell(row, j)
            _text_cell(c, text or None)
            _style(c, spec)
        longest = max([_width(title)] + [_width(v) for v in area[key].head(500)] if key in area else [_width(title)])
        ws.column_dimensions[get_column_letter(j)].width = max(8, min(30, longest + 2))
    for j, it in enumerate(items.to_dict("records"), start=n_id + 1):
        for row, text, spec in ((1, it["name_zh"], "head"), (2, it["code"], "code"), (3, it["entry_unit"], "code"),
                                (4, it["reference_display"], "code")):
            c = ws.cell(row, j)
            _text_cell(c, text)
            _style(c, spec)
        ws.column_dimensions[get_column_letter(j)].width = max(16, min(30, _width(it["code"]) * 0.8 + 2))
    for j, (key, title) in enumerate(TRAILING, start=n_id + len(items) + 1):
        for row, text, spec in ((1, title, "head"), (2, key, "code"), (3, "", "code"), (4, "", "code")):
            c = ws.cell(row, j)
            _text_cell(c, text or None)
            _style(c, spec)
        ws.column_dimensions[get_column_letter(j)].width = 24 if key == "source" else 18
    ws.row_dimensions[1].height = 48
    rows, cols, values, styles = [], [], [], []
    for j, (key, _title) in enumerate(id_cols, start=1):
        col = area[key] if key in area else pd.Series(None, index=area.index, dtype=object)
        values.append(_id_values(col, whole=key in ("levels", "build_year", "population")))
        rows.append(np.arange(len(area)))
        cols.append(np.full(len(area), j))
        styles.append(np.zeros(len(area), dtype=np.int8))
    ri, ci = np.nonzero(~expected)                    # 不填: cells another workbook supplies
    rows.append(ri)
    cols.append(ci + n_id + 1)
    values.append(np.full(len(ri), NOT_HERE, dtype=object))
    styles.append(np.ones(len(ri), dtype=np.int8))
    block = _data_cells(ws, np.concatenate(rows), np.concatenate(cols), np.concatenate(values),
                        np.concatenate(styles), ["id", "code"])
    last = FIRST_DATA_ROW + max(len(area), 1) - 1
    for j, it in enumerate(items.to_dict("records"), start=n_id + 1):
        col = get_column_letter(j)
        dv = _validation(it, DataValidation)
        dv.add(f"{col}{FIRST_DATA_ROW}:{col}{last}")
        ws.add_data_validation(dv)
    ws.freeze_panes = f"{get_column_letter(n_id + 1)}{FIRST_DATA_ROW}"
    ws.auto_filter.ref = f"A4:{get_column_letter(n_id + len(items) + len(TRAILING))}{last}"
    return block


def _id_values(col: pd.Series, *, whole: bool) -> np.ndarray:
    """A pre-filled column as the Python values written (None for missing; counts and
    years as whole numbers), as :func:`_clean` and ``int(round(v))`` per row did."""
    v = col.to_numpy(dtype=object)
    if whole and pd.api.types.is_numeric_dtype(col.dtype):
        x = col.to_numpy(dtype=float)
        out = np.full(len(x), None, dtype=object)
        ok = np.isfinite(x)
        out[ok] = np.round(x[ok]).astype(np.int64).tolist()
        return out
    out = v.copy()
    out[pd.isna(v)] = None
    return out


def _data_cells(ws: Any, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, styles: np.ndarray,
                names: list[str]) -> Any:
    """Pre-filled cells of the data rows (``rows`` 0-based from :data:`FIRST_DATA_ROW`,
    ``cols`` 1-based), each with the named style ``names[styles[i]]``, as a cell block
    written with the sheet (:func:`geotijian.xlsx_writer.cell_block`).

    The cells carry the style array that ``cell.style = name`` stores (no named-style
    lookup per cell) and are not made into openpyxl cells: their XML is written in one pass
    when the workbook is saved. Values as :func:`_text_cell` writes them: text as text,
    never a formula; numpy scalars as Python numbers; NaN and infinities as empty cells.
    """
    from ..xlsx_writer import cell_block

    palette = [ws.parent._named_styles[f"gt_{n}"].as_tuple() for n in names]
    values = np.asarray(values, dtype=object).copy()
    kinds = pd.Series(values, dtype=object).map(type).to_numpy(dtype=object)
    for i in np.flatnonzero((kinds != str) & (kinds != int) & (kinds != type(None))):
        v = values[i].item() if isinstance(values[i], np.generic) else values[i]
        values[i] = None if isinstance(v, float) and not np.isfinite(v) else v
    return cell_block(ws, rows + FIRST_DATA_ROW, cols, values, styles, palette)


def _validation(it: Mapping[str, Any], cls: Any) -> Any:
    kind, name = it["kind"], str(it["name_zh"])[:30]
    if kind == "flag":
        dv = cls(type="list", formula1=f'"{YES},{NO}"', allow_blank=True)
    elif kind == "count":
        dv = cls(type="whole", operator="greaterThanOrEqual", formula1="0", allow_blank=True)
    elif kind == "percent":
        dv = cls(type="decimal", operator="between", formula1="0", formula2="100", allow_blank=True)
    else:
        dv = cls(type="decimal", operator="greaterThanOrEqual", formula1="0", allow_blank=True)
    dv.showErrorMessage = True
    dv.errorTitle = "填写有误"
    dv.error = f"{name}: 请填写{_accepts_text(kind)}"
    dv.showInputMessage = True
    dv.promptTitle = str(it["code"])[:32]
    dv.prompt = f"{name}({it['entry_unit']}): {_accepts_text(kind)}"[:250]
    return dv


def _computed_sheet(wb: Any, plan: FillinPlan, wb_row: Any) -> None:
    ws = wb.create_sheet("计算值(参考)")
    comp = plan.computed
    if wb_row.kind == "department":
        scope = comp[comp["level"] == "district"]
    elif wb_row.kind == "town":
        units = plan.areas["community"]
        mine = set(units.loc[units["town_code"] == wb_row.owner, "record_id"])
        scope = comp[((comp["level"] == "town") & (comp["area_id"] == wb_row.owner))
                     | ((comp["level"] == "unit") & comp["area_id"].isin(mine))]
    else:
        scope = comp[(comp["level"] == "unit") & (comp["area_id"] == wb_row.owner)]
    cat = plan.catalogue.set_index("code")
    scope = scope[scope["code"].isin(cat.index)]
    level_zh = {"unit": "社区", "town": "街镇", "district": "区"}
    cols = [("层级", 8), ("区域编号", 16), ("指标代码", 30), ("指标名称", 36), ("计算值", 12), ("单位", 10)]
    for j, (title, width) in enumerate(cols, start=1):
        c = ws.cell(1, j)
        _text_cell(c, title)
        _style(c, "head")
        ws.column_dimensions[c.column_letter].width = width
    scope = scope.assign(_o=scope["level"].map({"district": 0, "town": 1, "unit": 2})).sort_values(
        ["_o", "area_id", "code"], kind="stable")
    for i, r in enumerate(scope.itertuples(index=False), start=2):
        v = float(r.value)
        for j, x in enumerate([level_zh.get(r.level, r.level), r.area_id, r.code, cat.at[r.code, "name_zh"],
                               round(v, 2) if np.isfinite(v) else None, cat.at[r.code, "unit"]], start=1):
            _text_cell(ws.cell(i, j), x)
    ws.freeze_panes = "A2"


def _meta_sheet(wb: Any, plan: FillinPlan, wb_row: Any, items: pd.DataFrame) -> None:
    ws = wb.create_sheet("_meta")
    meta = [("format", FILLIN_SCHEMA), ("study", plan.study), ("year", str(plan.year)), ("edition", plan.edition),
            ("workbook_id", wb_row.workbook_id), ("kind", wb_row.kind), ("owner", wb_row.owner),
            ("district_id", plan.district_id)]
    for i, (k, v) in enumerate(meta, start=1):
        _text_cell(ws.cell(i, 1), k)
        _text_cell(ws.cell(i, 2), v)
    start = len(meta) + 2
    _text_cell(ws.cell(start, 1), "code")
    _text_cell(ws.cell(start, 2), "definition")
    for i, it in enumerate(items.itertuples(index=False), start=start + 1):
        _text_cell(ws.cell(i, 1), it.code)
        _text_cell(ws.cell(i, 2), it.definition)
    ws.sheet_state = "hidden"


def fill_workbook(path: str | PathLike, values: pd.DataFrame, *, organisation: str | None = None,
                  default_source: str | None = None, contact: str | None = None, date: str | None = None,
                  out: str | PathLike | None = None) -> Path:
    """Write answers into a fill-in workbook (e.g. a department's table, last year's data).

    Parameters
    ----------
    path : path
        A workbook written by :func:`write_fillin_workbooks`.
    values : DataFrame
        ``record_id, code, value`` (and optionally ``source``): flags as 是/否 (or True /
        False / 1 / 0, written as 是/否), numbers as numbers. Rows whose ID or code is not
        in the workbook raise ``LayerError`` (nothing is dropped silently).
    organisation, default_source, contact, date : str, optional
        Cover fields (填报单位, 默认数据来源, 联系人, 填报日期).
    out : path, optional
        Where to save (default: in place), atomically.

    Returns
    -------
    Path
    """
    from openpyxl import load_workbook

    from ..xlsx_writer import save_workbook

    path = Path(path)
    wb = load_workbook(path)
    cover = wb["填报说明"]
    fields = {label: key for key, label, _req in COVER_FIELDS}
    given = {"organisation": organisation, "default_source": default_source, "contact": contact, "date": date}
    for row in cover.iter_rows(min_col=1, max_col=2):
        label = str(row[0].value or "").replace("*", "").strip()
        if label in fields and given.get(fields[label]) is not None:
            _text_cell(row[1], given[fields[label]])
    todo = values.copy()
    todo["record_id"] = todo["record_id"].astype(str)
    placed = np.zeros(len(todo), dtype=bool)
    index = {(r, c): i for i, (r, c) in enumerate(zip(todo["record_id"], todo["code"], strict=True))}
    for rec, sheet in RECORD_SHEETS.items():
        if sheet not in wb.sheetnames:
            continue
        ws = wb[sheet]
        codes = {str(c.value): c.column for c in ws[2] if c.value is not None}
        for r in range(FIRST_DATA_ROW, ws.max_row + 1):
            rid = ws.cell(r, 1).value
            if rid is None:
                continue
            for code, col in codes.items():
                i = index.get((str(rid), code))
                if i is None:
                    continue
                v = todo["value"].iloc[i]
                if isinstance(v, (bool, np.bool_)):
                    v = YES if v else NO
                cell = ws.cell(r, col)
                _text_cell(cell, v)
                if "gt_input" in wb.named_styles:
                    cell.style = "gt_input"
                if "source" in todo.columns and "source" in codes and not pd.isna(todo["source"].iloc[i]):
                    _text_cell(ws.cell(r, codes["source"]), todo["source"].iloc[i])
                placed[i] = True
    if not placed.all():
        i = int(np.flatnonzero(~placed)[0])
        raise LayerError(f"fill-in values for {path.name}", f"record {todo['record_id'].iloc[i]!r} / indicator "
                         f"{todo['code'].iloc[i]!r} is not in the workbook", feature=i, count=int((~placed).sum()),
                         fix="give only the rows and indicators of this workbook")
    return save_workbook(wb, Path(out) if out is not None else path)
