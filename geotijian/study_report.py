"""The study's report step and its output tasks (used by :mod:`geotijian.study`).

The facts the 体检报告 states about the survey and the 12345 hotline (kept in ``run.json``
under ``facts``), the survey sample plan with the respondents achieved, and the Word report
with its town packages, written by ``geotijian run`` or later by ``geotijian report``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import geopandas as gpd
import pandas as pd

from .config import StudyConfig, read_config

if TYPE_CHECKING:
    from .model import StudyData
    from .study import StudyResult


def _plan_with_respondents(plan: pd.DataFrame, respondents: pd.DataFrame) -> pd.DataFrame:
    """The survey sample plan with the valid respondents achieved per unit, town and district."""
    r = respondents
    got = {("unit", str(k)): int(v) for k, v in r["unit_id"].dropna().astype(str).value_counts().items()}
    got.update({("town", str(k)): int(v) for k, v in r["town_code"].dropna().astype(str).value_counts().items()})
    got.update({("district", a): int(r["unit_id"].notna().sum())
                for a in plan.loc[plan["level"] == "district", "area_id"]})
    out = plan.copy()
    out["respondents"] = [got.get((lv, str(a)), 0) for lv, a in zip(out["level"], out["area_id"], strict=True)]
    return out


def _survey_facts(sres: Any) -> dict:
    """What the report says about the survey (run.json ``facts.survey``): respondents kept,
    rows excluded and why, the minimum age."""
    issues = sres.issues
    excluded = int((issues["action"] == "excluded").sum()) if len(issues) and "action" in issues.columns else 0
    return {"respondents": int(sres.respondents["unit_id"].notna().sum()), "rows_excluded": excluded,
            "under_age": int(sres.excluded_under_age), "min_age": int(sres.meta.get("min_age", 16))}


def _hotline_facts(complaints: gpd.GeoDataFrame, rates: pd.DataFrame) -> dict:
    """What the report says about the 12345 records (run.json ``facts.hotline``): records,
    those inside the units, first and last date, records per category."""
    d = rates[(rates["level"] == "district")]
    located = int(d.loc[d["category"] == "全部", "count"].sum()) if len(d) else 0
    out: dict = {"records": int(len(complaints)), "located": located}
    if "date" in complaints.columns:
        dates = pd.to_datetime(complaints["date"], errors="coerce").dropna()
        if len(dates):
            out["first_date"] = dates.min().strftime("%Y-%m-%d")
            out["last_date"] = dates.max().strftime("%Y-%m-%d")
    if "category" in complaints.columns:
        vc = complaints["category"].fillna("未分类").astype(str).value_counts()
        out["categories"] = {str(k): int(v) for k, v in sorted(vc.items(), key=lambda kv: (-kv[1], kv[0]))}
    return out


def report_options(cfg: StudyConfig) -> dict[str, Any]:
    """The keyword arguments of :func:`geotijian.report.docx.write_report` from ``[report]``."""
    r = cfg.report
    return {"name": cfg.name, "title": r.get("title") or cfg.title or None, "year": cfg.year,
            "template": r.get("template"),
            "grade_rules_override": r.get("grade_rules"), "grade_bands_override": r.get("grade_bands"),
            "organisation": r.get("organisation"), "date": r.get("date"), "towns": r.get("towns", True)}


def _start_report(cfg: StudyConfig, res: StudyResult, folder: Path) -> Any:
    """Begin the 体检报告 and the town packages from the outputs written so far into
    ``folder`` (:func:`geotijian.report.docx.start_report`): the town tables and figures;
    ``.finish(template=..., date=...)`` writes the reports once the maps are drawn."""
    from .report.docx import start_report

    opts = report_options(cfg)
    for k in ("template", "date"):
        opts.pop(k)
    return start_report(folder, study_data=res.data, **opts)


def _report_step(cfg: StudyConfig, res: StudyResult, folder: Path) -> list[Path]:
    """The 体检报告 and the town packages, from the outputs just written into ``folder``."""
    from .report.docx import write_report

    return write_report(folder, study_data=res.data, **report_options(cfg))


def report_study(config: str | Path | StudyConfig, *, output: str | Path | None = None) -> list[Path]:
    """Write the 体检报告 (and town packages) of a study that has run (``geotijian report``).

    Reads ``outputs/<study>/`` (the GeoPackage, tables, figures and ``run.json`` of the
    last ``geotijian run``) and writes ``report/`` and ``towns/`` there; each file is
    written atomically, so a failure leaves the previous report whole.
    """
    from .report.docx import write_report

    cfg = config if isinstance(config, StudyConfig) else read_config(config)
    if output is not None:
        cfg.output = Path(output).resolve()
    return write_report(cfg.out_dir, **report_options(cfg))


# --------------------------------------------------------------------------- output tasks
def _map_tasks(cfg: StudyConfig, res: StudyResult, folder: Path, fig: dict) -> list[tuple[str, Any, float, Any]]:
    """(kind, key, cost, task) of the maps and coverage-gap figures: the district map
    (``"map"``), one task per town map (``"town_map"``, the town code) and per few facility
    types' gap figures (``"figures"``), the orthophoto quicklook (``"figures"``)."""
    from .imagery import quicklook_png
    from .report import save_figures, save_town_maps

    data = res.data
    maps = folder / "maps"
    opts = {"indicator": cfg.report.get("indicator"), "lang": fig["lang"], "title": cfg.report.get("map_title")}
    n_units = len(data.units) if data.units is not None else 0
    tasks: list[tuple[str, Any, float, Any]] = [("map", None, n_units, partial(_district_map, data, maps, opts))]
    if data.towns is not None and "town_code" in data.towns.columns:
        codes = sorted(set(data.towns["town_code"].astype(str)))
        per_town = (data.units["town_code"].astype(str).value_counts()
                    if data.units is not None and "town_code" in data.units.columns else pd.Series(dtype=int))
        tasks += [("town_map", code, int(per_town.get(code, 0)),
                   partial(save_town_maps, data, maps, towns=(code,), **opts)) for code in codes]
    if data.coverage_gaps is not None and len(data.coverage_gaps):
        types = sorted(set(data.coverage_gaps["facility_type"].astype(str)))
        tasks += [("figures", None, n_units / 4 * len(types[i:i + 3]),
                   partial(save_figures, data, maps, kinds=("gaps",), types=tuple(types[i:i + 3]), **fig))
                  for i in range(0, len(types), 3)]
    if data.meta.get("ortho") is not None:
        tasks.append(("figures", None, 1.0, lambda: [quicklook_png(data.meta["ortho"], maps / "orthophoto_quicklook.png")]))
    return tasks


def _report_tasks(cfg: StudyConfig, report: Any, tasks: list[tuple[str, Any, float, Any]]) -> list[tuple]:
    """(cost, task, after) of the district report and each town's package: each after
    every figure of ``maps/`` (``tasks``: :func:`_map_tasks`) and a town's after its map."""
    opts = {"template": cfg.report.get("template"), "date": cfg.report.get("date")}
    figures = [i for i, t in enumerate(tasks) if t[0] == "figures"]
    town_map = {t[1]: i for i, t in enumerate(tasks) if t[0] == "town_map"}
    docs = [(1.0, partial(report.finish, **opts, towns=()), figures)]
    docs += [(1.0, partial(report.finish, **opts, district=False, towns=(code,)),
              figures + ([town_map[code]] if code in town_map else [])) for code in report.town_codes()]
    return docs


def _warm_outputs() -> None:
    """Import the output modules (matplotlib, the map and report writers), load the
    figures' fonts and make the blank report here, once: each forked worker starts with
    them, instead of paying ~1 s of imports per task (and ~40 ms a report)."""
    import importlib

    importlib.import_module(".report", __package__)
    importlib.import_module(".report.docx", __package__)
    importlib.import_module(".report.figures", __package__).find_cjk_font()   # the font list, loaded once
    # the blank report package (styles, page), made once here, not in each report's worker
    importlib.import_module(".report.docx.writer", __package__)._blank_package()


def _finish_gpkg(gpkg: Any, data: StudyData) -> list[Path]:
    return [gpkg.finish(data)]


def _district_map(data: StudyData, maps: Path, opts: dict) -> list[Path]:
    from .report import district_nav, problem_map, save_problem_map

    m = problem_map(data, nav=district_nav(data), **opts)
    return [save_problem_map(m, maps / "problem_map.html")]
