"""Town packages: ``towns/<town>/`` for every 街镇, from the district's results.

Each package holds the town's report draft (the five sections in the town's scope: its own
values beside the district's, its units, its ledger), its share of the 一表三清单
(``indicator_table.xlsx`` / ``.csv``), its ledger (``ledger.csv``) and its maps (units and
problems figures, the offline ``problem_map.html``), drawn from the district run's layers
cut to the town: rows are selected by unit and town ID, points by the town's polygon;
nothing is computed again. The coverage-gap figures in a town's report are the district's
(one drawing per facility type: 12 towns × 14 types would cost minutes at district scale).

The package's ``maps/problem_map.html`` is the town's map the run already drew
(``maps/towns/<town code>.html``, :func:`geotijian.report.save_town_maps`: the town in
full detail), copied with its links to the district map and the other towns' maps
re-based to the package's place in the output folder (``towns/<town>/``, as its report
cites ``../../<study>.gpkg``); the map itself needs no other file. Outputs without town
maps (written before them) get one drawn from the layers as before.
"""

from __future__ import annotations

import os
import re
import warnings
from collections.abc import Collection
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd

from ...assess import write_ledger, write_tables
from ...model import StudyData
from .document import build_report, default_files, figure_titles, report_file_name
from .inputs import ReportInputs, fresh_inputs
from .scope import Scope, _grouped, scope_points, scope_problems, town_scope

__all__ = ["write_town_packages", "start_town_packages", "TownPackages", "town_folder_name", "town_study", "study_data_from_gpkg"]

_BAD = re.compile(r'[\\/:*?"<>|\s]+')
#: layers a town's maps draw (read back from the GeoPackage when the run is not in memory)
MAP_LAYERS = ("boundary", "towns", "committees", "units", "homes", "facilities", "coverage_gaps",
              "service_areas", "problems", "problem_points", "hotspots", "renewal_areas", "new_sites")


def town_folder_name(inp: ReportInputs, town_code: str) -> str:
    """The town's name (``菊园新区``), or ``<name>_<code>`` when two towns share a name."""
    name = _BAD.sub("_", inp.town_name(town_code)).strip("_") or str(town_code)
    dup = (inp.towns["name"].astype(str) == inp.town_name(town_code)).sum() > 1
    return f"{name}_{town_code}" if dup else name


def study_data_from_gpkg(gpkg: str | Path, *, name: str, year: int,
                         layers: tuple[str, ...] = MAP_LAYERS) -> StudyData:
    """The layers of a run's GeoPackage as a :class:`StudyData` (for drawing maps only)."""
    import pyogrio

    from ...io.atomic import no_gdal_sidecars

    gpkg = Path(gpkg)
    data = StudyData(name=name, year=year)
    with no_gdal_sidecars():   # reading the run's GeoPackage adds no file to the output folder
        have = {n for n, _ in pyogrio.list_layers(gpkg)}
        for layer in layers:
            if layer not in have:
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                g = pyogrio.read_dataframe(gpkg, layer=layer)
            setattr(data, layer, g)
        for t in ("indicator_table", "ledger"):
            if t in have:
                setattr(data, t, pyogrio.read_dataframe(gpkg, layer=t, read_geometry=False))
    if data.units is not None:
        data.crs = data.units.crs.to_string() if data.units.crs is not None else data.crs
    return data


def _within(g: gpd.GeoDataFrame | None, poly: Any) -> gpd.GeoDataFrame | None:
    if g is None or not len(g):
        return g
    pts = g.geometry.representative_point()
    return g[pts.within(poly).to_numpy()]


#: the layers the town's figures draw (units and problems figures)
FIGURE_LAYERS = ("boundary", "towns", "units", "problems", "problem_points")


def town_study(data: StudyData, scope: Scope, *, layers: tuple[str, ...] | None = None) -> StudyData:
    """The district's layers cut to one town: rows by unit / town ID, points by polygon.

    ``layers``: only these (default every layer; :data:`FIGURE_LAYERS` for the figures:
    cutting ~300,000 gap rows and clipping the service areas per town is the map's need).
    """
    def want(name: str) -> bool:
        return layers is None or name in layers

    towns = data.towns
    t = towns[towns["town_code"].astype(str) == scope.area_id] if towns is not None else None
    poly = t.geometry.union_all() if t is not None and len(t) else None
    units = data.units[data.units["unit_id"].astype(str).isin(scope.units)] if data.units is not None else None
    if poly is None and units is not None and len(units):
        poly = units.geometry.union_all()

    def by_unit(g: gpd.GeoDataFrame | None) -> gpd.GeoDataFrame | None:
        if g is None or "unit_id" not in g.columns:
            return _within(g, poly) if poly is not None else g
        return g[g["unit_id"].astype(str).isin(scope.units)]

    def by_area(g: pd.DataFrame | None) -> pd.DataFrame | None:
        if g is None or "area_id" not in g.columns:
            return g
        return g[g["area_id"].astype(str).isin(scope.areas)]

    sub = StudyData(name=scope.name, year=data.year, crs=data.crs, meta=dict(data.meta))
    sub.boundary = t.rename(columns={"town_code": "boundary_id"}) if t is not None and len(t) else data.boundary
    sub.towns = t
    sub.units = units
    if want("committees"):
        sub.committees = (data.committees[data.committees["town_code"].astype(str) == scope.area_id]
                          if data.committees is not None and "town_code" in data.committees.columns else
                          _within(data.committees, poly))
    for name in ("homes", "coverage_gaps"):
        if want(name):
            setattr(sub, name, by_unit(getattr(data, name)))
    for name in ("facilities", "hotspots", "renewal_areas", "new_sites"):
        g = getattr(data, name)
        if want(name):
            setattr(sub, name, _within(g, poly) if poly is not None else g)
    if want("service_areas") and data.service_areas is not None and poly is not None and len(data.service_areas):
        sa = data.service_areas   # those meeting the town (its spatial index), clipped to it
        sa = sa.iloc[np.sort(sa.sindex.query(poly, predicate="intersects"))]
        sub.service_areas = sa.assign(geometry=sa.geometry.intersection(poly))
        sub.service_areas = sub.service_areas[~sub.service_areas.geometry.is_empty]
    if data.problem_points is not None:  # grouped problems (issue 20): the town's points and problems
        from ..town_maps import _town_problems

        sub.problem_points, sub.problems = _town_problems(data, scope.area_id, set(scope.units), scope.name)
    else:
        sub.problems = by_area(data.problems)
    if want("indicator_table"):
        sub.indicator_table = by_area(data.indicator_table)
    if want("ledger"):
        sub.ledger = by_area(data.ledger)
    return sub


def _town_inputs(inp: ReportInputs, figures: dict[str, Path]) -> ReportInputs:
    _ = (inp._units_by_id, inp._town_names)   # built once, shared by every town's copy
    return fresh_inputs(inp, figures=figures)


_HREF = re.compile(rb"""href=(['"])([^'"]*)\1""")
_ABSOLUTE = re.compile(rb"^(?:[A-Za-z][A-Za-z0-9+.-]*:|/|#)")


def rebase_links(html: bytes, src: Path, dst: Path) -> bytes:
    """``html`` (UTF-8) written in folder ``src``, to be written in folder ``dst``: every
    relative ``href`` re-based so it opens the same file (absolute URLs, ``/…`` and ``#…``
    untouched)."""
    src, dst = Path(os.path.abspath(src)), Path(os.path.abspath(dst))

    def fix(m: re.Match) -> bytes:
        url = m.group(2)
        if not url or _ABSOLUTE.match(url):
            return m.group(0)
        target = src / url.decode("utf-8")
        try:
            new = Path(os.path.relpath(target, dst)).as_posix()
        except ValueError:   # another drive (Windows): no relative path to it
            new = target.resolve().as_uri()
        return b"href=" + m.group(1) + new.encode("utf-8") + m.group(1)

    return _HREF.sub(fix, html)


def _run_town_maps(data: StudyData, out: Path) -> dict[str, Path]:
    """Town code -> the town map the run wrote (``<out>/maps/towns/<code>.html``), those present."""
    from ..town_maps import town_map_files

    found = {code: out / "maps" / rel for code, rel in town_map_files(data).items()}
    return {code: p for code, p in found.items() if p.is_file()}


def _draw_figures(data: StudyData, scope: Scope, folder: Path, lang: str) -> list[Path]:
    """The town's units and problems figures (``maps/units.png``, ``maps/problems.png``).
    (The coverage-gap figures of its report are the district's: one per facility type.)"""
    from .. import problem_figure, units_figure

    sub = town_study(data, scope, layers=FIGURE_LAYERS)
    maps = folder / "maps"
    written: list[Path] = []
    if sub.units is not None and len(sub.units):
        written.append(units_figure(sub, maps / "units.png", lang=lang))
    if sub.problems is not None and len(sub.problems):
        written.append(problem_figure(sub, maps / "problems.png", lang=lang))
    return written


def _town_map(data: StudyData, scope: Scope, folder: Path, lang: str, *, town_map: Path | None = None) -> Path:
    """The town's offline problem map: ``town_map`` (the run's map of the town) copied with
    its links re-based, else drawn from the layers."""
    from ...io.atomic import write_bytes_atomic
    from .. import problem_map, save_problem_map

    maps = folder / "maps"
    if town_map is not None:
        return write_bytes_atomic(maps / "problem_map.html", rebase_links(town_map.read_bytes(), town_map.parent, maps))
    sub = town_study(data, scope)
    m = problem_map(sub, lang=lang, title=f"{scope.name}{data.year}年城市体检问题地图")
    return save_problem_map(m, maps / "problem_map.html")


#: The town-told columns of a problem (its points, residents, area, suggestion) a suggestion repeats.
_TOLD = ("point_count", "points", "point_names", "affected_population", "area_id", "area_name", "suggestion")


def town_tables(inp: ReportInputs, scope: Scope) -> dict[str, pd.DataFrame]:
    """The 一表三清单 of a town, in the district's table order: its indicator rows and
    strengths (by area), and the problems its report speaks of (:func:`scope_problems`:
    those with a 问题点位 in the town, told for the town), their points inside the town
    and their suggestions, told the same way. Outputs made before problems were grouped
    are cut by area."""
    tabs = {"indicator_table": scope.rows(inp.indicator_table), "strengths": scope.rows(inp.strengths)}
    problems = scope_problems(inp, scope)
    tabs["problems"] = problems
    sg = inp.suggestions
    if _grouped(inp) and "problem_id" in problems.columns:
        tabs["problem_points"] = scope_points(inp, scope)
        if sg is not None and "problem_id" in sg.columns:
            sg = sg[sg["problem_id"].isin(set(problems["problem_id"]))].copy()
            told = problems.set_index("problem_id")
            for col in _TOLD:
                if col in sg.columns and col in told.columns:
                    sg[col] = sg["problem_id"].map(told[col]).to_numpy()
    else:
        sg = scope.rows(sg)
    tabs["suggestions"] = sg
    return {k: (v if v is not None else pd.DataFrame()).reset_index(drop=True) for k, v in tabs.items()}


def _tables(inp: ReportInputs, scope: Scope, folder: Path) -> list[Path]:
    written = write_tables(town_tables(inp, scope), folder, formats=("xlsx", "csv"))
    if inp.ledger is not None:
        written.append(write_ledger(scope.rows(inp.ledger).reset_index(drop=True), folder / "ledger.csv"))
    return written


def write_town_packages(inp: ReportInputs, folder: str | Path, *, template: Any = None, rules: Any = None,
                        bands: Any = None, organisation: str | None = None, date: str | None = None,
                        study_data: StudyData | None = None, lang: str = "zh") -> list[Path]:
    """Write ``<folder>/<town>/`` for every town: report, tables, ledger, maps.

    ``study_data``: the run's layers (default: read back from the GeoPackage). Returns the
    written paths, each written atomically.
    """
    draft = start_town_packages(inp, folder, study_data=study_data, lang=lang)
    return draft.finish(inp, template=template, rules=rules, bands=bands, organisation=organisation, date=date)


class TownPackages:
    """Town packages whose tables and figures are written (:func:`start_town_packages`);
    :meth:`finish` writes each town's map and report."""

    def __init__(self, folder: Path, data: StudyData | None, towns: list[tuple[str, Scope, Path]],
                 written: list[list[Path]], lang: str) -> None:
        self.folder, self.data, self.towns, self.written, self.lang = folder, data, towns, written, lang

    def finish(self, inp: ReportInputs, *, template: Any = None, rules: Any = None, bands: Any = None,
               organisation: str | None = None, date: str | None = None,
               codes: Collection[str] | None = None) -> list[Path]:
        """Each town's map and report; returns every file of the packages.

        ``inp``: the report's inputs now (its figures: the district's coverage-gap figures
        the reports show); ``codes``: only these towns."""
        from ...io.atomic import write_bytes_atomic

        if self.data is not None:
            data = self.data
            town_maps = _run_town_maps(data, inp.folder)
        else:   # read back what the maps need: nothing more when the run's town maps are there
            data = study_data_from_gpkg(inp.gpkg, name=inp.name, year=inp.year, layers=("towns",))
            town_maps = _run_town_maps(data, inp.folder)
            if not all(code in town_maps for code, _, _ in self.towns if codes is None or code in codes):
                data = study_data_from_gpkg(inp.gpkg, name=inp.name, year=inp.year, layers=MAP_LAYERS)
        out: list[Path] = []
        for (code, scope, tf), written in zip(self.towns, self.written):
            if codes is not None and code not in codes:
                continue
            written = written + [_town_map(data, scope, tf, self.lang, town_map=town_maps.get(code))]
            figs = {**{k: p for k, p in inp.figures.items() if k.startswith("gaps_")},
                    **{p.stem: p for p in written if p.suffix == ".png"}}
            tin = _town_inputs(inp, figs)
            files = default_files(tin)
            files["figure_titles"] = {**figure_titles(tin), "units": f"{scope.name}社区体检单元",
                                      "problems": f"{scope.name}体检问题分布"}
            files["gpkg"] = f"../../{inp.name}.gpkg"
            blob, _ = build_report(tin, scope, template=template, rules=rules, bands=bands,
                                   organisation=organisation, date=date, files=files)
            out += written
            out.append(write_bytes_atomic(tf / report_file_name(scope.name, inp.year), blob))
        return out


def start_town_packages(inp: ReportInputs, folder: str | Path, *, study_data: StudyData | None = None,
                        lang: str = "zh") -> TownPackages:
    """Write each town's tables, ledger and figures (``<folder>/<town>/``): what its
    package needs of the run but the service areas. :meth:`TownPackages.finish` adds its
    map and report (a study writes these first, while its service areas are united).

    ``study_data``: the run's layers (default: read back from the GeoPackage).
    """
    folder = Path(folder)
    data = study_data if study_data is not None else \
        study_data_from_gpkg(inp.gpkg, name=inp.name, year=inp.year, layers=FIGURE_LAYERS)
    towns: list[tuple[str, Scope, Path]] = []
    written: list[list[Path]] = []
    for code in inp.towns["town_code"].astype(str):
        scope = town_scope(inp, code)
        if not scope.units:
            continue
        tf = folder / town_folder_name(inp, code)
        tf.mkdir(parents=True, exist_ok=True)
        towns.append((code, scope, tf))
        written.append(_tables(inp, scope, tf) + _draw_figures(data, scope, tf, lang))
    return TownPackages(folder, study_data, towns, written, lang)
