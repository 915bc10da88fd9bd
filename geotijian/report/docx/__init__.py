"""The 体检报告 (check-up report) as a Word document, and a package per town.

:func:`write_report` reads a study's outputs (``outputs/<study>/``) and writes
``report/<title>_<year>_城市体检报告.docx`` with the five sections of the work plan
(上一年问题整改情况, 本年度体检工作组织与主要成效, 数据指标分析, 总体评价, 对策和行动建议)
and the 附件 (一表三清单, 问题台账, maps), then ``towns/<town>/`` for every town
(:func:`write_town_packages`). Modules, one concern each:

* :mod:`.inputs` — the run's outputs read back (:func:`read_report_inputs`);
* :mod:`.scope` — the district or one town;
* :mod:`.text` — numbers and phrases as Chinese reports print them;
* :mod:`.writer` — Word primitives (styles, TOC, captions, tables, figures, templates);
* :mod:`.grading` — grade rules and bands of the 总体评价;
* :mod:`.sections` (一, 二), :mod:`.analysis` (三, 四), :mod:`.actions` (五, 附件);
* :mod:`.document` — one report; :mod:`.towns` — the town packages.
"""

from .document import ReportDraft, build_report, report_file_name, start_report, write_report
from .grading import grade_bands, grade_dimensions, grade_indicators, grade_rules, overall_grade
from .inputs import ReportInputs, read_report_inputs
from .scope import Scope, district_scope, town_scope
from .towns import study_data_from_gpkg, town_study, write_town_packages
from .writer import DocWriter

__all__ = [
    "write_report", "start_report", "ReportDraft", "build_report", "report_file_name", "read_report_inputs", "ReportInputs",
    "Scope", "district_scope", "town_scope", "write_town_packages", "town_study", "study_data_from_gpkg",
    "grade_rules", "grade_bands", "grade_indicators", "grade_dimensions", "overall_grade", "DocWriter",
]
