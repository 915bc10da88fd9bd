"""The study's edition and fill-in steps (used by :mod:`geotijian.study`).

Computed values limited to the study's indicator edition, the fill-in plan and the
collection of returned workbooks (区—街镇—社区), the exchange table with each value's source,
and the edition outputs (exchange table, fill-in reports, fuel stations, year over year).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import pandas as pd

from .config import StudyConfig
from .errors import LayerError, RepairWarning
from .io.tables import write_csv
from .model import StudyData


def _edition_values(values: pd.DataFrame, icat: pd.DataFrame, data: StudyData) -> pd.DataFrame:
    """Computed values of the study's edition: codes outside it are left out and reported."""
    data.meta["catalogue"] = icat
    data.meta["not_computed"] = dict(values.attrs.get("not_computed", {}))
    if "fuel_stations" in values.attrs:
        data.meta["fuel_stations"] = values.attrs["fuel_stations"]
    keep = values["code"].isin(set(icat["code"]))
    if not keep.all():
        dropped = sorted(set(values.loc[~keep, "code"]))
        data.meta["outside_edition"] = dropped
        warnings.warn(f"{len(dropped)} computed indicator(s) are not in edition {icat['edition'].iloc[0]} and are left "
                      f"out: {', '.join(dropped[:6])}{' …' if len(dropped) > 6 else ''}. Fix: add them under "
                      "[indicators] include to keep them", RepairWarning,
                      stacklevel=3)  # (from study._run, via study_steps._indicators_step)
    values = values[keep].reset_index(drop=True)
    data.meta["computed_codes"] = sorted(set(values["code"]))
    return values


def _edition_run_json(data: StudyData) -> dict:
    """run.json: the edition, what the inputs did not allow computing, the fill-in summary."""
    icat = data.meta.get("catalogue")
    out: dict[str, Any] = {"edition": None if icat is None else str(icat["edition"].iloc[0]),
                           "not_computed": data.meta.get("not_computed", {})}
    if data.meta.get("outside_edition"):
        out["outside_edition"] = data.meta["outside_edition"]
    if data.meta.get("fillin"):
        out["fillin"] = data.meta["fillin"]
    return out


def _note_sources(data: StudyData, table: pd.DataFrame, source: str | pd.Series) -> None:
    """Remember where values that were not computed came from (the exchange table's source)."""
    t = table[["level", "area_id", "code"]].copy()
    t["source"] = source if isinstance(source, str) else source.to_numpy()
    data.meta.setdefault("value_sources", []).append(t)


def _fillin_plan(cfg: StudyConfig, data: StudyData, icat: pd.DataFrame, values: pd.DataFrame) -> Any:
    from .indicators.fillin import fillin_areas, fillin_plan

    areas, unplaced = fillin_areas(data.units, compounds=data.compounds, buildings=data.buildings, towns=data.towns,
                                   committees=data.committees, district_name=cfg.name)
    for rec, n in unplaced.items():
        if n:
            warnings.warn(f"fill-in: {n} {rec}(s) lie in no community unit and get no fill-in row", RepairWarning,
                          stacklevel=2)
    return fillin_plan(icat, areas, computed_codes=data.meta.get("computed_codes", ()),
                       pilot_communities=cfg.fillin.get("pilot_communities", ()),
                       departments=cfg.fillin.get("departments"), study=cfg.name, year=cfg.year,
                       computed=values, district_name=cfg.name, unplaced=unplaced)


def _collect_fillins(cfg: StudyConfig, data: StudyData, icat: pd.DataFrame, values: pd.DataFrame,
                     res: Any) -> pd.DataFrame:
    """Read the returned workbooks ([fillin] folder): stop on the first invalid one, add the values."""
    from .indicators.collect import collect_fillins

    plan = _fillin_plan(cfg, data, icat, values)
    got = collect_fillins(cfg.fillin["folder"], plan)
    got.raise_if_invalid()
    for key in ("completeness", "missing", "rollup"):
        res.tables[f"fillin_{key}"] = getattr(got, key)
    new = got.values
    both = new.merge(values[["level", "area_id", "code"]], on=["level", "area_id", "code"])
    if len(both):
        r = both.iloc[0]
        raise LayerError(f"fill-in folder ({cfg.fillin['folder'].name})",
                         f"{r['code']} of {r['area_id']} is both filled in and computed or in the filled table",
                         count=len(both), fix="supply each value once (the template leaves out what the study computes)")
    _note_sources(data, new, new["source"])
    c = got.completeness
    data.meta["fillin"] = {"workbooks_expected": int(len(c)), "workbooks_returned": int(c["returned"].sum()),
                           "values_expected": int(c["expected"].sum()), "values_filled": int(c["filled"].sum()),
                           "files": [str(f) for f in got.files]}
    from .indicators.collect import source_text

    comp = got.rollup[(got.rollup["level"] == "compound") & got.rollup["complete"]]
    orgs = dict(zip(c["workbook_id"], c["organisation"], strict=True))
    data.meta["fillin_compounds"] = comp[["level", "area_id", "code", "value"]].assign(
        source=source_text(comp, plan, orgs).to_numpy())
    return pd.concat([values, new[values.columns]], ignore_index=True)


def _area_names(cfg: StudyConfig, data: StudyData) -> dict[tuple[str, str], str]:
    names: dict[tuple[str, str], str] = {("district", "district"): cfg.name}
    if data.towns is not None and "name" in data.towns.columns:
        names.update({("town", str(t)): str(n) for t, n in zip(data.towns["town_code"], data.towns["name"],
                                                              strict=True)})
    if data.units is not None:
        cm = dict(zip(data.committees["committee_id"].astype(str), data.committees["name"].astype(str), strict=True)) \
            if data.committees is not None and "name" in data.committees.columns else {}
        for uid, com in zip(data.units["unit_id"], data.units.get("committees", data.units["unit_id"]), strict=True):
            parts = [cm.get(c.strip(), c.strip()) for c in str(com).replace(",", ";").split(";") if c.strip()]
            names[("unit", str(uid))] = "、".join(parts) or str(uid)
    if data.compounds is not None and "name" in data.compounds.columns:
        names.update({("compound", str(c)): str(n) for c, n in zip(data.compounds["compound_id"],
                                                                  data.compounds["name"], strict=True)})
    return names


def _exchange(cfg: StudyConfig, data: StudyData) -> pd.DataFrame:
    from .indicators.exchange import exchange_table

    icat = data.meta["catalogue"]
    values = data.indicator_values[["level", "area_id", "code", "value"]]
    comp = data.meta.get("fillin_compounds")
    srcs = list(data.meta.get("value_sources", []))
    if comp is not None and len(comp):
        values = pd.concat([values, comp[["level", "area_id", "code", "value"]]], ignore_index=True)
        srcs.append(comp[["level", "area_id", "code", "source"]])
    if srcs:
        src = pd.concat(srcs, ignore_index=True).drop_duplicates(["level", "area_id", "code"], keep="last")
        values = values.merge(src, on=["level", "area_id", "code"], how="left")
    return exchange_table(values, icat, study=cfg.name, year=cfg.year, area_names=_area_names(cfg, data))


def _write_edition_outputs(cfg: StudyConfig, res: Any, folder: Path) -> list[Path]:
    """exchange_table.csv/.md, the fill-in reports, fuel_stations.csv, year_over_year.csv."""
    from .indicators.exchange import compare_years, read_exchange_table, write_exchange_table

    data = res.data
    files: list[Path] = []
    exch = _exchange(cfg, data)
    files.extend(write_exchange_table(exch, folder / "exchange_table.csv"))
    tables = {f"fillin_{k}.csv": res.tables.get(f"fillin_{k}") for k in ("completeness", "missing", "rollup")}
    if data.meta.get("fuel_stations") is not None:
        tables["fuel_stations.csv"] = data.meta["fuel_stations"]
    if cfg.ledger_last_values is not None:
        tables["year_over_year.csv"] = compare_years(read_exchange_table(cfg.ledger_last_values), exch)
    for name, t in tables.items():
        if t is None:
            continue
        files.append(write_csv(t, folder / name))  # formula-like text from the data defused
    return files
