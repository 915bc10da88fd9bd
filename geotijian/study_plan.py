"""The study's renewal-plan step (``[plan]``): 更新片区, facility siting and the project
library into the study's data (``_plan_step``), and its record in run.json (``_plan_json``).
"""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import pandas as pd

from .config import StudyConfig
from .model import StudyData
from .plan import plan_study


def _plan_step(cfg: StudyConfig, data: StudyData, fcat: pd.DataFrame, entrances: Any,
               timings: dict) -> None:
    """更新片区, facility siting and the project library (``[plan]``), into ``data``."""
    result = plan_study(data, options=cfg.plan, catalogue=fcat, entrances=entrances,
                        district_name=data.display_name)  # (study.title, else the boundary's name)
    data.meta["plan"] = result
    for t, r in result.siting.items():  # solver times go with the other timings
        for k in ("matrix_s", "solve_s"):
            timings[f"plan.siting.{t}.{k}"] = round(float(r.summary[k]), 3)
    for k, v in result.timings.items():  # (the distance matrix shared by types of one walking distance)
        timings[f"plan.{k}"] = round(float(v), 3)
    data.renewal_areas = result.renewal.areas if result.renewal is not None else None
    data.new_sites = result.sites
    data.candidate_sites = result.candidates
    data.projects = result.projects if isinstance(result.projects, gpd.GeoDataFrame) else None


def _plan_json(data: StudyData) -> dict:
    """The plan's method and solver reports for run.json (empty when the plan did not run)."""
    plan = data.meta.get("plan")
    if plan is None:
        return {}
    times = ("matrix_s", "solve_s", "total_s")  # (in timings_s: run.json differs only there)
    return {"year": plan.year,
            "renewal": plan.renewal.method if plan.renewal is not None else None,
            "siting": [{k: v for k, v in r.summary.items() if k not in times}
                       for r in plan.siting.values()],
            "siting_skipped": plan.skipped, "projects": int(len(plan.projects)),
            "annual_plan": int(len(plan.annual))}
