"""What the report is built from: the outputs a study run wrote, read back, never recomputed.

:func:`read_report_inputs` reads an output folder (``outputs/<study>/``, or the run's staging
folder while ``geotijian run`` writes it): the GeoPackage's tables and layers (indicator
table, problems, suggestions, ledger, units, towns), the CSV tables (survey sample plan,
hotline rates, coverage, unit range), ``run.json`` (inputs, counts, facts) and the figures
under ``maps/``. ``geotijian report`` and the run's report step go through this one path,
so both write the same bytes.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import LayerError

__all__ = ["ReportInputs", "read_report_inputs", "fresh_inputs"]


@dataclass
class ReportInputs:
    """The tables, facts and figures of one study's outputs (see :func:`read_report_inputs`).

    Tables keep the column contracts of :mod:`geotijian.model` (codes, not display labels).
    ``ledger`` is ``None`` when the study gave no last year's ledger
    (``has_last_ledger``); ``sample_plan`` carries ``respondents`` when a survey was read.
    ``problems`` is the 问题清单 (one row per indicator and level since issue 20, its
    问题点位 in ``points`` / ``point_names``); ``problem_points`` one row per point (``None``
    for outputs written before problems were grouped); the ledger is kept per point.
    """

    folder: Path
    name: str
    title: str
    year: int
    level: str
    indicator_table: pd.DataFrame
    problems: pd.DataFrame
    suggestions: pd.DataFrame
    strengths: pd.DataFrame
    ledger: pd.DataFrame | None
    units: pd.DataFrame
    towns: pd.DataFrame
    run: dict
    has_last_ledger: bool = False
    has_survey: bool = False
    has_hotline: bool = False
    sample_plan: pd.DataFrame | None = None
    complaint_rates: pd.DataFrame | None = None
    coverage: pd.DataFrame | None = None
    units_range: pd.DataFrame | None = None
    projects: pd.DataFrame | None = None
    annual_plan: pd.DataFrame | None = None
    committee_names: dict[str, str] = field(default_factory=dict)
    problem_points: pd.DataFrame | None = None
    figures: dict[str, Path] = field(default_factory=dict)
    map_html: Path | None = None
    gpkg: Path | None = None
    organisation: str | None = None

    def town_name(self, code: str) -> str:
        return self._town_names.get(str(code), str(code))

    @property
    def _town_names(self) -> dict[str, str]:
        """town code -> name (the first row of a code)."""
        if not hasattr(self, "_tcache"):
            t = self.towns
            self._tcache = ({} if not len(t) else
                            {str(c): str(n) for c, n in zip(t["town_code"][::-1], t["name"][::-1], strict=True)})
        return self._tcache

    def memo(self, key: Any, make: Any) -> Any:
        """``make()`` once per key (a frame several sections use); see :func:`fresh_inputs`."""
        cache = self.__dict__.setdefault("_memo", {})
        if key not in cache:
            cache[key] = make()
        return cache[key]

    def derived(self, key: Any, tables: tuple[str, ...], make: Any) -> Any:
        """``make()`` once for these tables (attribute names): shared by every copy that
        :func:`fresh_inputs` makes (the town reports), made again when one of the tables is
        another object. For what depends on the tables alone, never on a report's scope."""
        cache = self.__dict__.setdefault("_derived", {})
        objs = tuple(getattr(self, t) for t in tables)
        hit = cache.get(key)
        if hit is None or len(hit[0]) != len(objs) or any(a is not b for a, b in zip(hit[0], objs, strict=True)):
            hit = cache[key] = (objs, make())
        return hit[1]

    def unit_label(self, unit_id: str, *, with_town: bool = False) -> str:
        """``310114101-U03`` → ``U03（<first committee's name>等）``, short and recognisable;
        ``with_town`` puts the town's name first (a district report has a U03 in every town)."""
        row = self._units_by_id.get(str(unit_id))
        short = str(unit_id).rsplit("-", 1)[-1]
        if row is None:
            return str(unit_id)
        town = self.town_name(row.get("town_code")) if with_town else ""
        com = row.get("committees")
        if isinstance(com, str) and com.strip():
            parts = [c for c in com.replace("；", ";").replace("，", ",").replace(";", ",").split(",") if c.strip()]
            if parts:
                first = self.committee_names.get(parts[0].strip(), parts[0].strip())
                return f"{town}{short}（{first}{'等' if len(parts) > 1 else ''}）"
        return f"{town}{short}"

    @property
    def _units_by_id(self) -> dict[str, dict]:
        if not hasattr(self, "_ucache"):
            self._ucache = {str(r["unit_id"]): r for r in self.units.to_dict("records")}
        return self._ucache


def fresh_inputs(inp: ReportInputs, **changes: Any) -> ReportInputs:
    """A shallow copy of ``inp`` (``changes`` replaced) with an empty :meth:`~ReportInputs.memo`,
    for one report: what its sections share is computed once, and never outlives the tables
    it came from. The lookups of units and towns by ID are kept unless those tables change."""
    import dataclasses

    out = dataclasses.replace(inp, **changes)
    for cache, table in (("_ucache", "units"), ("_tcache", "towns")):
        if table not in changes and cache in inp.__dict__:
            setattr(out, cache, inp.__dict__[cache])
    out._derived = inp.__dict__.setdefault("_derived", {})   # (each entry checks its tables)
    return out


def _layer_names(gpkg: Path) -> set[str]:
    import pyogrio

    from ...io.atomic import no_gdal_sidecars

    with no_gdal_sidecars():
        return {n for n, _ in pyogrio.list_layers(gpkg)}


def _read_table(gpkg: Path, layer: str, *, spatial: bool = False, have: set[str] | None = None
                ) -> pd.DataFrame | None:
    """A layer of the GeoPackage (``None`` when it has none); ``have``: its layer names, when known."""
    import pyogrio

    from ...io.atomic import no_gdal_sidecars

    with no_gdal_sidecars():
        names = {n for n, _ in pyogrio.list_layers(gpkg)} if have is None else have
        if layer not in names:
            return None
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            df = pyogrio.read_dataframe(gpkg, layer=layer, read_geometry=spatial)
    return pd.DataFrame(df) if not spatial else df


def _csv(path: Path) -> pd.DataFrame | None:
    if not path.exists():
        return None
    return pd.read_csv(path, encoding="utf-8-sig", dtype={"area_id": str, "town_code": str, "unit_id": str})


_FIGURE_ORDER = ("units", "problems")


def read_report_inputs(folder: str | Path, *, name: str, title: str | None = None, year: int | None = None,
                       level: str | None = None, has_last_ledger: bool | None = None,
                       organisation: str | None = None) -> ReportInputs:
    """Read a study's written outputs for the report.

    Parameters
    ----------
    folder : path
        ``outputs/<study>/`` (it holds ``<name>.gpkg`` and ``run.json``).
    name : str
        The study's name (``study.name``).
    title : str, optional
        The district's name for the report (default: ``run.json``'s ``title``, the study's
        display name; else the boundary's name; else ``name``).
    year, level : optional
        Default: from ``run.json``.
    has_last_ledger : bool, optional
        Whether the study gave last year's ledger; default: from ``run.json`` inputs.

    Raises
    ------
    LayerError
        When the folder lacks the GeoPackage, ``run.json`` or the indicator table, naming
        the file and the fix (run the study first).
    """
    folder = Path(folder)
    gpkg = folder / f"{name}.gpkg"
    run_json = folder / "run.json"
    for p in (gpkg, run_json):
        if not p.exists():
            raise LayerError(f"study outputs ({folder})", f"{p.name} is missing",
                             fix="run the study first (`geotijian run study.toml`); the report is built from its outputs")
    run = json.loads(run_json.read_text(encoding="utf-8"))
    have = _layer_names(gpkg)
    table = _read_table(gpkg, "indicator_table", have=have)
    if table is None or not len(table):
        raise LayerError(f"study outputs ({gpkg.name})", "has no indicator_table",
                         fix="run the study again: the report needs the judged indicator table")
    for col in ("level", "area_id", "code"):
        table[col] = table[col].astype(str)
    table["value"] = pd.to_numeric(table["value"], errors="coerce")
    table["gap"] = pd.to_numeric(table["gap"], errors="coerce")
    problems = _read_table(gpkg, "problems", spatial=False, have=have)
    problems = pd.DataFrame(columns=["problem_id"]) if problems is None else problems
    units = _read_table(gpkg, "units", spatial=False, have=have)
    units = pd.DataFrame(columns=["unit_id", "town_code", "population"]) if units is None else units
    for col in ("unit_id", "town_code"):
        if col in units.columns:
            units[col] = units[col].astype(str)
    towns = _read_table(gpkg, "towns", spatial=False, have=have)
    if towns is None or "town_code" not in towns.columns:
        tn = units[["town_code", "town_name"]].drop_duplicates() if "town_name" in units.columns else \
            pd.DataFrame({"town_code": sorted(units["town_code"].unique()) if len(units) else []})
        towns = tn.rename(columns={"town_name": "name"})
    towns = towns.assign(town_code=towns["town_code"].astype(str))
    if "name" not in towns.columns:
        towns["name"] = towns["town_code"]
    towns = towns.sort_values("town_code").reset_index(drop=True)
    inputs = [Path(i["path"]).name for i in run.get("inputs", [])]
    if has_last_ledger is None:
        has_last_ledger = any(n.lower().startswith("ledger") for n in inputs)
    ledger = _read_table(gpkg, "ledger", have=have) if has_last_ledger else None
    facts = run.get("facts", {})
    figures = {p.stem: p for p in sorted((folder / "maps").glob("*.png"))} if (folder / "maps").exists() else {}
    # the project library of the renewal plan (geotijian.plan), when the study ran it
    points = _read_table(gpkg, "problem_points", have=have)
    projects = _read_table(gpkg, "projects", have=have)
    annual = _read_table(gpkg, "annual_plan", have=have)
    com = _read_table(gpkg, "committees", have=have)
    com_names = ({str(a): str(b) for a, b in zip(com["committee_id"], com["name"], strict=True)}
                 if com is not None and {"committee_id", "name"} <= set(com.columns) else {})
    if title is None and str(run.get("title") or "").strip():  # the study's display name (study.title)
        title = str(run["title"]).strip()
    if title is None:
        b = _read_table(gpkg, "boundary", have=have)
        if b is not None and "name" in b.columns and len(b) == 1 and str(b["name"].iloc[0]).strip():
            title = str(b["name"].iloc[0]).strip()
    res = ReportInputs(
        folder=folder, name=name, title=title or name, year=int(year or run.get("year", 0)),
        level=str(level or run.get("level", "district")), indicator_table=table, problems=problems,
        suggestions=_or_empty(_read_table(gpkg, "suggestions", have=have)), strengths=_or_empty(_read_table(gpkg, "strengths", have=have)),
        ledger=ledger, units=units, towns=towns, run=run,
        has_last_ledger=bool(has_last_ledger), has_survey=bool(facts.get("survey")),
        has_hotline=bool(facts.get("hotline")),
        sample_plan=_csv(folder / "survey_sample_plan.csv"), complaint_rates=_csv(folder / "complaint_rates.csv"),
        coverage=_csv(folder / "coverage_by_area.csv"), units_range=_csv(folder / "units_range.csv"),
        projects=projects if projects is not None and len(projects) else None,
        annual_plan=annual if annual is not None and len(annual) else None, committee_names=com_names,
        problem_points=points if points is not None and len(points) else None,
        figures=figures,
        map_html=(folder / "maps" / "problem_map.html") if (folder / "maps" / "problem_map.html").exists() else None,
        gpkg=gpkg, organisation=organisation)
    for col in ("value", "reference", "gap", "affected_population"):
        if col in res.problems.columns:
            if col != "reference":
                res.problems[col] = pd.to_numeric(res.problems[col], errors="coerce")
    if "population" in res.units.columns:
        res.units["population"] = pd.to_numeric(res.units["population"], errors="coerce").fillna(0.0)
    if res.ledger is not None:
        for col in ("first_seen", "last_seen"):
            res.ledger[col] = pd.to_numeric(res.ledger[col], errors="coerce").astype("Int64")
        res.ledger["history"] = res.ledger["history"].fillna("").astype(str)
    if res.problem_points is not None:
        for col in ("value", "gap", "affected_population"):
            if col in res.problem_points.columns:
                res.problem_points[col] = pd.to_numeric(res.problem_points[col], errors="coerce")
        res.problem_points["area_id"] = res.problem_points["area_id"].astype(str)
    for df in (res.strengths, res.suggestions, res.problems):
        if "area_id" in df.columns:
            df["area_id"] = df["area_id"].astype(str)
    if "value" in res.strengths.columns:
        res.strengths["value"] = pd.to_numeric(res.strengths["value"], errors="coerce")
    return res


def _or_empty(df: pd.DataFrame | None) -> pd.DataFrame:
    return pd.DataFrame() if df is None else df


def town_inputs(inp: ReportInputs, town_code: str) -> dict[str, Any]:
    """Row masks of one town's share of the tables (used by the town packages)."""
    units = set(inp.units.loc[inp.units["town_code"] == str(town_code), "unit_id"].astype(str))
    areas = units | {str(town_code)}
    return {"units": units, "areas": areas}
