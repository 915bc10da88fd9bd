"""The renewal plan (after assess): 更新片区, facility siting and the project library.

* :mod:`~geotijian.plan.renewal`: renewal areas, contiguous clusters of high-scoring
  check-up units within size bounds (:func:`renewal_areas`, :func:`renewal_scores`);
* :mod:`~geotijian.plan.siting`: new facility sites closing coverage gaps, MCLP or LSCP
  on geotijian's own network distances, solved exactly with HiGHS
  (:func:`site_facilities`; distance matrix :mod:`~geotijian.plan.costs`, models
  :mod:`~geotijian.plan.milp`);
* :mod:`~geotijian.plan.projects`: the 更新项目储备库 and the 年度实施计划
  (:func:`project_library`, :func:`annual_plan`);
* :mod:`~geotijian.plan.workflow`: all three for a study (:func:`plan_study`);
  :mod:`~geotijian.plan.write`: the workbook and CSV tables (:func:`write_plan`).
"""

from .costs import bounded_distance_matrix
from .projects import PROJECT_COLUMNS, annual_plan, problem_units, project_library, project_rules
from .renewal import RenewalResult, renewal_areas, renewal_scores
from .siting import SitingResult, site_facilities, site_from_files
from .workflow import PlanResult, plan_study
from .write import plan_tables, write_plan

__all__ = [
    "bounded_distance_matrix", "PROJECT_COLUMNS", "annual_plan", "problem_units", "project_library",
    "project_rules", "RenewalResult", "renewal_areas", "renewal_scores", "SitingResult",
    "site_facilities", "site_from_files", "PlanResult", "plan_study", "plan_tables", "write_plan",
]
