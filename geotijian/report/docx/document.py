"""The 体检报告 as a Word document: cover, table of contents, the five sections, 附件.

:func:`build_report` assembles one document (district or town scope) from
:class:`~.inputs.ReportInputs`; :func:`write_report` reads a study's outputs and writes
``report/<title>_<year>_城市体检报告.docx`` and, with ``towns=True``, a package per town
(:mod:`.towns`). Nothing is recomputed: every number comes from the tables the run wrote.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

import pandas as pd

from ...errors import OutputError
from ...io.atomic import write_bytes_atomic
from .actions import section_actions, section_annexes
from .analysis import section_grades, section_indicators
from .grading import grade_bands, grade_rules
from ..problem_figures import CLASS_FILE_NAMES
from .inputs import ReportInputs, fresh_inputs, read_report_inputs
from .scope import Scope, district_scope
from .sections import section_ledger, section_work
from .writer import DocWriter

__all__ = ["build_report", "write_report", "start_report", "ReportDraft", "report_file_name", "figure_titles", "ReportOptions"]

_BAD_CHARS = re.compile(r'[\\/:*?"<>|\s]+')


def report_file_name(title: str, year: int) -> str:
    """``<title>_<year>_城市体检报告.docx`` (characters Windows forbids replaced by ``_``)."""
    return f"{_BAD_CHARS.sub('_', str(title)).strip('_') or 'study'}_{int(year)}_城市体检报告.docx"


#: figures the 附件 embeds, in order (those the run drew): the units, then issue 20's problem
#: figures (all points by class, and one per class: ``maps/problems_urgent.png`` ...)
ANNEX_FIGURES = ("units", "problems", *CLASS_FILE_NAMES.values())


@functools.lru_cache(maxsize=512)
def _facility_type_name(code: str) -> str:
    """The packaged catalogue's name of a facility type (the catalogue is fixed per process;
    each report asks for every type again)."""
    from .._common import facility_type_name

    return facility_type_name(code)


def figure_titles(inp: ReportInputs) -> dict[str, str]:
    """Caption of each figure under ``maps/`` by its file stem."""
    out = {"units": f"{inp.title}社区体检单元", "problems": f"{inp.title}社区体检单元问题点位分布",
           **{k: f"{inp.title}“{cls}”类问题点位" for cls, k in CLASS_FILE_NAMES.items()}}
    for k in inp.figures:
        if k.startswith("gaps_"):
            out[k] = f"{_facility_type_name(k[5:])}步行范围覆盖缺口"
    return out


class ReportOptions(dict):
    """The ``[report]`` keys the document uses: ``template``, ``organisation``, ``date``,
    ``grade_rules``, ``grade_bands`` (plain dict; see :func:`write_report`)."""


def build_report(inp: ReportInputs, scope: Scope | None = None, *, template: str | Path | None = None,
                 rules: pd.DataFrame | None = None, bands: pd.DataFrame | None = None,
                 organisation: str | None = None, date: str | None = None,
                 files: dict[str, Any] | None = None) -> tuple[bytes, dict[str, Any]]:
    """One report document, as bytes (deterministic), and what it said.

    Parameters
    ----------
    inp : ReportInputs
        The study's outputs (:func:`~.inputs.read_report_inputs`).
    scope : Scope, optional
        The district (default) or one town (:func:`~.scope.town_scope`).
    template : path, optional
        A district's house-style ``.docx`` holding a ``{{正文}}`` paragraph (see
        :class:`~.writer.DocWriter`).
    rules, bands : DataFrame, optional
        Grade rules and bands (:func:`~.grading.grade_rules`, :func:`~.grading.grade_bands`).
    organisation, date : str, optional
        编制单位 and 编制日期 printed on the cover; without them the cover leaves a marked
        line to fill.
    files : dict, optional
        File names the 附件 refer to (workbook, ledger, map, gpkg, figures to embed).

    Returns
    -------
    (bytes, dict)
        The ``.docx`` bytes and a summary: ``grade``, ``score``, ``headings``, ``tables``,
        ``figures``.
    """
    inp = fresh_inputs(inp)   # (what the sections share is computed once for this report)
    scope = scope or district_scope(inp)
    rules = grade_rules() if rules is None else rules
    bands = grade_bands() if bands is None else bands
    files = dict(files or default_files(inp))
    w = DocWriter(template)
    title = f"{scope.name}{inp.year}年城市体检报告"
    if template is None:
        lines = [f"编制单位：{organisation}" if organisation else "编制单位：【待填写】",
                 f"编制日期：{date}" if date else "编制日期：【待填写】"]
        w.cover(title, "（初稿）", lines)
        w.header_footer(title)
    w.toc()
    w.para(_lead(inp, scope), indent=True)
    section_ledger(w, inp, scope)
    section_work(w, inp, scope)
    section_indicators(w, inp, scope)
    grade, score = section_grades(w, inp, scope, rules=rules, bands=bands)
    section_actions(w, inp, scope)
    section_annexes(w, inp, scope, files=files)
    w.finish(fields={"title": title, "year": str(inp.year), "organisation": organisation or "",
                     "date": date or ""})
    blob = w.to_bytes(title=title, subject=f"{scope.name}城市体检", year=inp.year)
    return blob, {"grade": grade, "score": score, "headings": w.headings, "tables": w.table_count,
                  "figures": w.figure_count}


def _lead(inp: ReportInputs, scope: Scope) -> str:
    what = "区、街镇和社区" if not scope.is_town else "街镇和社区"
    return (f"本报告依据《城市体检工作方案》要求，根据{inp.year}年{scope.name}{what}城市体检的数据和计算结果编制，"
            "包括上一年问题整改情况、本年度体检工作组织与主要成效、数据指标分析、总体评价、对策和行动建议五部分，"
            "一表三清单、问题台账和图纸作为附件。文中数字均由体检数据计算得出；标注“【待填写】”的段落"
            "为数据无法反映、需由体检工作办公室补充的内容。")


def default_files(inp: ReportInputs, *, prefix: str = "") -> dict[str, Any]:
    """The file names the 附件 cite (relative to the study's output folder) and the figures
    they embed (the units map and the problem map)."""
    return {"workbook": f"{prefix}indicator_table.xlsx", "ledger": f"{prefix}ledger.csv",
            "map": f"{prefix}maps/problem_map.html", "gpkg": f"{inp.name}.gpkg",
            "figures": ANNEX_FIGURES, "figure_titles": figure_titles(inp),
            "gaps": any(k.startswith("gaps_") for k in inp.figures)}


def write_report(folder: str | Path, *, name: str, title: str | None = None, year: int | None = None,
                 template: str | Path | None = None, grade_rules_override: Any = None,
                 grade_bands_override: Any = None, organisation: str | None = None, date: str | None = None,
                 towns: bool = True, out: str | Path | None = None, study_data: Any = None) -> list[Path]:
    """Write the district report (and the town packages) from a study's outputs.

    Parameters
    ----------
    folder : path
        The study's output folder (``outputs/<study>/``, or the run's staging folder).
    name : str
        ``study.name`` (the GeoPackage is ``<name>.gpkg``).
    title : str, optional
        The district's name for the report (default: the boundary layer's ``name``).
    template : path, optional
        House-style ``.docx`` (``report.template``).
    grade_rules_override, grade_bands_override : optional
        ``[report.grade_rules]`` / ``[report.grade_bands]`` of the study.
    organisation, date : str, optional
        编制单位 / 编制日期 (``report.organisation`` / ``report.date``).
    towns : bool
        Also write ``towns/<town>/`` for every town (report, tables, ledger, maps).
    out : path, optional
        Where ``report/`` and ``towns/`` go (default ``folder``).
    study_data : StudyData, optional
        The run's layers in memory (the town maps are drawn from them); without it they
        are read back from the GeoPackage.

    Returns
    -------
    list of Path
        Every file written (atomically: a failure leaves the previous files whole).

    Raises
    ------
    LayerError
        The folder lacks the run's outputs.
    ConfigError
        A bad template or grade table (naming the ``report.*`` key).
    OutputError
        The report folder cannot be created or written.
    """
    draft = start_report(folder, name=name, title=title, year=year, grade_rules_override=grade_rules_override,
                         grade_bands_override=grade_bands_override, organisation=organisation, towns=towns,
                         out=out, study_data=study_data)
    return draft.finish(template=template, date=date)


class ReportDraft:
    """A report begun by :func:`start_report` (inputs read, town tables and figures
    written); :meth:`finish` writes the district report and each town's map and report."""

    def __init__(self, inp: ReportInputs, out: Path, rules: Any, bands: Any, organisation: str | None,
                 towns: Any) -> None:
        self.inp, self.out, self.rules, self.bands, self.organisation, self.towns = \
            inp, out, rules, bands, organisation, towns

    def finish(self, *, template: str | Path | None = None, date: str | None = None, district: bool = True,
               towns: Collection[str] | None = None) -> list[Path]:
        """The district report and the towns' maps and reports, with the figures the
        output folder holds now (the coverage-gap figures drawn meanwhile); every file
        written since :func:`start_report`.

        ``district`` / ``towns``: only the district report (``towns=()``) or only these
        towns' packages (``district=False``), e.g. to write them in several processes.
        """
        inp = self.inp
        maps = inp.folder / "maps"
        inp = fresh_inputs(inp, figures={p.stem: p for p in sorted(maps.glob("*.png"))} if maps.exists() else {})
        written = []
        if district:
            blob, _ = build_report(inp, template=template, rules=self.rules, bands=self.bands,
                                   organisation=self.organisation, date=date)
            written.append(write_bytes_atomic(self.out / "report" / report_file_name(inp.title, inp.year), blob))
        if self.towns is not None:
            written += self.towns.finish(inp, template=template, rules=self.rules, bands=self.bands,
                                         organisation=self.organisation, date=date, codes=towns)
        return written

    def town_codes(self) -> list[str]:
        """The towns with a package (those with units), in the order written."""
        return [code for code, _, _ in self.towns.towns] if self.towns is not None else []


def start_report(folder: str | Path, *, name: str, title: str | None = None, year: int | None = None,
                 grade_rules_override: Any = None, grade_bands_override: Any = None,
                 organisation: str | None = None, towns: bool = True, out: str | Path | None = None,
                 study_data: Any = None) -> ReportDraft:
    """Begin :func:`write_report`: read the study's outputs (its GeoPackage may still lack
    the service areas), check the grade tables and the report folder, and write each
    town's tables, ledger and figures; :meth:`ReportDraft.finish` writes the reports.

    A study begins its report while its service areas are united and finishes it once
    the maps and coverage-gap figures are drawn. Parameters as :func:`write_report`.
    """
    folder = Path(folder)
    out = Path(out) if out is not None else folder
    inp = read_report_inputs(folder, name=name, title=title, year=year, organisation=organisation)
    rules = grade_rules(grade_rules_override)
    bands = grade_bands(grade_bands_override)
    _writable(out / "report")
    packages = None
    if towns and len(inp.towns) > 1:
        from .towns import start_town_packages

        packages = start_town_packages(inp, out / "towns", study_data=study_data)
    return ReportDraft(inp, out, rules, bands, organisation, packages)


def _writable(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".geotijian-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise OutputError(folder, f"cannot write the report there ({exc.strerror or exc}); the previous report "
                                  "is left untouched",
                          "choose a writable output folder (study.output or --output) or fix its permissions"
                          ) from None


