"""Static problem figures (问题分布图) for the printed report.

Only unit-level problem points lie somewhere on a map; the district- and town-level
problems are counted in a note under the legend (the 问题清单 lists them), never painted
over the whole district.

* :func:`problem_figure`: every class at once. Units are shaded by their number of problem
  points (a neutral grey ramp), and each unit is labelled with its name and its points per
  class in the class colours (限时解决 red, 尽力解决 orange, 长期谋划 blue) where the label
  fits inside the unit.
* :func:`problem_class_figure`: one class. Units with points of that class are shaded in the
  class hue by their number of points (1, 2, 3, 4+), labelled with name and count.

Both take ``dpi`` and a file name whose suffix is the format (``.png``, ``.pdf``, ``.svg``),
and an optional ``title``; without it the heading is built from ``study.display_name``.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib.colors as mcolors
import matplotlib.patheffects as pe
import numpy as np
import pandas as pd
import shapely
from matplotlib.patches import Patch

from ..errors import LayerError
from ..model import PROBLEM_CLASSES, StudyData
from . import _common as c
from .figures import _base, _check_crs, _draw, _extent, _finish, _metric, _outlines, _style
from .map_problems import problem_points_of

__all__ = ["problem_figure", "problem_class_figure", "CLASS_FILE_NAMES", "unit_point_counts"]

#: File-name stems of the per-class figures (ASCII).
CLASS_FILE_NAMES = {"限时解决": "problems_urgent", "尽力解决": "problems_best_effort", "长期谋划": "problems_long_term"}
#: Shades of the units by their number of problem points: none, then four classes whose
#: limits are the quartiles of the units' counts (light greys: the class colours of the
#: labels stay legible on every shade).
COUNT_GREYS = ("#ffffff", "#ececec", "#d9d9d9", "#c6c6c6", "#b0b0b0")
#: Figure layout: the map on the left, the legend beside it (never over a unit).
FIG_SIZE_IN = (10.0, 8.0)
MAP_AXES = (0.02, 0.05, 0.70, 0.86)


def count_breaks(total: np.ndarray) -> list[int]:
    """Lower limits of the four shaded classes (1 and the upper quartiles of the positive
    counts, strictly increasing)."""
    pos = total[total > 0]
    if not len(pos):
        return [1]
    qs = np.quantile(pos, [0.25, 0.5, 0.75], method="lower")
    out = [1]
    for q in qs:
        q = int(q) + 1
        if q > out[-1] and q <= int(pos.max()):
            out.append(q)
    return out


def _new_wide(size_in: tuple[float, float], dpi: int):
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=size_in, dpi=dpi)
    ax = fig.add_axes(MAP_AXES)
    return fig, ax


def _legend_right(ax, handles, title: str, note: str = "") -> None:
    leg = ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8, framealpha=0.95,
                    title=title, title_fontsize=8.5, borderaxespad=0.0)
    leg._legend_box.align = "left"
    if note:
        ax.text(1.02, 0.0, note, transform=ax.transAxes, ha="left", va="bottom", fontsize=7.5, color="#333333",
                wrap=True)


def unit_point_counts(study: StudyData) -> pd.DataFrame:
    """Problem points per unit and class: one row per unit (``study.units`` order), one
    column per class present (``限时解决``, ``尽力解决``, ``长期谋划`` ...), and ``total``."""
    if study.units is None or not len(study.units):
        raise LayerError("units", "is missing or empty", fix="delineate the check-up units first")
    ids = study.units["unit_id"].astype(str)
    pts = problem_points_of(study)
    classes = list(PROBLEM_CLASSES)
    if pts is None or "level" not in pts.columns:
        out = pd.DataFrame(0, index=ids, columns=classes)
    else:
        unit = (pts["level"].astype(str) == "unit").to_numpy()
        if not unit.any():
            out = pd.DataFrame(dtype=int).reindex(index=ids, columns=classes, fill_value=0).fillna(0).astype(int)
        else:  # a crosstab of the points' units and classes, counted in numpy
            area = pts["area_id"].astype(str)[unit]  # as a crosstab reads them (missing: not counted)
            kind, present = pd.factorize(pts["problem_class"].astype(str)[unit], sort=True)
            classes = c.ordered_classes(pd.Series([*present, *classes]))
            col = pd.Index(classes).get_indexer(present)[kind]
            uniq = pd.Index(pd.unique(ids.to_numpy()))
            row = uniq.get_indexer(area)
            seen = (row >= 0) & (kind >= 0)  # points of areas that are not units here: not counted
            n = np.bincount(row[seen] * len(classes) + col[seen], minlength=len(uniq) * len(classes))
            out = pd.DataFrame(n.reshape(len(uniq), len(classes))[uniq.get_indexer(ids.to_numpy())],
                               index=pd.Index(ids), columns=pd.Index(classes, name="problem_class")).astype(int)
    out["total"] = out.sum(axis=1)
    return out


def _chord_width(geom, x: float, y: float) -> float:
    """Width (metres) of ``geom`` along the horizontal line through (x, y)."""
    x0, _, x1, _ = geom.bounds
    line = shapely.LineString([(x0 - 1, y), (x1 + 1, y)])
    seg = geom.intersection(line)
    if seg.is_empty:
        return 0.0
    for part in getattr(seg, "geoms", [seg]):
        px0, _, px1, _ = part.bounds
        if px0 - 1e-6 <= x <= px1 + 1e-6:
            return float(px1 - px0)
    return 0.0


def _label_units(ax, units, names, lines_per_unit, *, fontsize: float, m_per_pt: float) -> int:
    """Label each unit where its text fits; returns how many were left unlabelled.

    ``lines_per_unit``: per unit a list of lines, each a list of ``(text, colour)`` pieces
    drawn side by side. A unit is labelled when the widest line fits in 90 % of its
    horizontal chord through the label point and the lines fit in its height.
    """
    g = units.geometry.to_numpy()
    pts = shapely.point_on_surface(g)
    (x0, x1), (y0, y1) = ax.get_xlim(), ax.get_ylim()
    skipped = 0
    for i, (geom, pt) in enumerate(zip(g, pts, strict=True)):
        lines = lines_per_unit[i]
        if not lines:
            continue
        widths = [sum(_text_pts(t, fontsize) for t, _ in line) for line in lines]
        need_w = max(widths) * m_per_pt
        need_h = len(lines) * fontsize * 1.3 * m_per_pt
        x, y = pt.x, pt.y
        if not (x0 <= x <= x1 and y0 <= y <= y1):
            continue  # off the map: matplotlib would not draw it (annotation_clip)
        ymin, ymax = geom.bounds[1], geom.bounds[3]
        if _chord_width(geom, x, y) * 0.9 < need_w or (ymax - ymin) * 0.9 < need_h:
            skipped += 1
            continue
        for k, (line, w) in enumerate(zip(lines, widths, strict=True)):
            dy = ((len(lines) - 1) / 2 - k) * fontsize * 1.25
            off = -w / 2
            for text, color in line:
                tw = _text_pts(text, fontsize)
                ax.annotate(text, (x, y), xytext=(off + tw / 2, dy), textcoords="offset points", ha="center",
                            va="center", fontsize=fontsize, color=color, zorder=12,
                            fontweight="bold" if color != "#222222" else "normal",
                            path_effects=[pe.withStroke(linewidth=2.2, foreground="white")],
                            annotation_clip=False)  # on the map (above): no per-label check at draw
                off += tw
    return skipped


def _text_pts(text: str, fontsize: float) -> float:
    """Approximate width of ``text`` in points (CJK full width, others ~0.6 em)."""
    return sum(1.0 if ord(ch) > 0x2E80 else 0.6 for ch in text) * fontsize


def _m_per_pt(ax, fig) -> float:
    x0, x1 = ax.get_xlim()
    width_in = fig.get_size_inches()[0] * ax.get_position().width
    return (x1 - x0) / (width_in * 72.0)


def _level_note(study: StudyData, lang: str) -> str:
    pr = study.problems
    if pr is None or "level" not in pr.columns:
        return ""
    lv = pr["level"].astype(str)
    nd, nt = int((lv == "district").sum()), int((lv == "town").sum())
    if not nd and not nt:
        return ""
    return (f"另有区级问题 {nd} 项、街镇级问题 {nt} 项(不落图, 见问题清单)" if lang == "zh"
            else f"plus {nd} district- and {nt} town-level problems (not mapped; see the problem list)")


def problem_figure(study: StudyData, path: str | Path, *, lang: str = "zh",
                   size_in: tuple[float, float] = FIG_SIZE_IN, dpi: int = 150, title: str | None = None) -> Path:
    """Problem points of the check-up units by class, on their units (all classes).

    Units are shaded by their number of problem points; each is labelled, where the text
    fits, with its name and its points per class in the class colours. Output size is
    ``size_in × dpi`` pixels; the format is the suffix of ``path``.
    """
    if study.problems is None and study.problem_points is None:
        raise LayerError("problems", "is missing", fix="run the assessment first")
    _check_crs(study)
    path = Path(path)
    counts = unit_point_counts(study)
    units = _metric(study.units, study.crs, "units")
    classes = [k for k in counts.columns if k != "total"]
    total = counts["total"].to_numpy()
    breaks = count_breaks(total)
    shade = np.array(COUNT_GREYS, dtype=object)[np.digitize(total, breaks)]
    with _style(lang):
        fig, ax = _new_wide(size_in, dpi)
        _base(study, ax, _extent(study, units))
        _draw(ax, units.geometry.to_numpy(), facecolor=shade, edgecolor="#ffffff", linewidth=0.8, zorder=2)
        _outlines(study, ax)
        names = _unit_names(study)
        lines = []
        for i in range(len(units)):
            if total[i] == 0:
                lines.append([])
                continue
            parts = []
            for k in classes:
                n = int(counts[k].iat[i])
                if n:
                    parts.append((f"{n} ", c.PROBLEM_COLORS.get(k, c.OTHER_COLOR)))
            lines.append([[(names[i], "#222222")], parts])
        skipped = _label_units(ax, units, names, lines, fontsize=7.0, m_per_pt=_m_per_pt(ax, fig))
        handles = [Patch(facecolor=c.PROBLEM_COLORS.get(k, c.OTHER_COLOR), edgecolor="none",
                         label=f"{c.problem_class_label(k, lang)}: {int(counts[k].sum())} "
                               f"{'个点位' if lang == 'zh' else 'points'}, "
                               f"{int((counts[k] > 0).sum())} {'个单元' if lang == 'zh' else 'units'}")
                   for k in classes]
        edges = [0, *breaks, int(total.max()) + 1]
        for j in range(len(edges) - 1):
            lo, hi = edges[j], edges[j + 1] - 1
            rng = f"{lo}" if lo == hi else f"{lo}–{hi}"
            if not ((total >= lo) & (total <= hi)).any():
                continue
            handles.append(Patch(facecolor=COUNT_GREYS[j], edgecolor="#999999",
                                 label=f"{rng} {'个问题点位' if lang == 'zh' else 'problem points'}"
                                       f" ({int(((total >= lo) & (total <= hi)).sum())})"))
        ltitle = ("问题类别 (标注: 各类点位数)\n/ 单元问题点位数" if lang == "zh"
                  else "class (labels: points per class)\n/ points per unit")
        if skipped:
            ltitle += f"\n({skipped} 个单元过小未标注)" if lang == "zh" else f"\n({skipped} small units unlabelled)"
        note = _level_note(study, lang)
        _legend_right(ax, handles, ltitle, note.replace("(不落图", "\n(不落图") if lang == "zh" else note)
        n_units, n_pts = int((total > 0).sum()), int(total.sum())
        heading = title or (f"{study.display_name} {study.year} 年城市体检问题分布 "
                            f"(社区体检单元: {n_units} 个单元 {n_pts} 个问题点位)" if lang == "zh"
                            else f"{study.display_name} {study.year} check-up problems "
                                 f"(units: {n_pts} points in {n_units} units)")
        return _finish(fig, ax, study, heading, path, lang=lang, dpi=dpi, title_size=12.0)


def _unit_names(study: StudyData) -> list[str]:
    u = study.units
    if "name" in u.columns:
        return [str(n) if pd.notna(n) else str(i) for n, i in zip(u["name"], u["unit_id"], strict=True)]
    return u["unit_id"].astype(str).tolist()


def problem_class_figure(study: StudyData, problem_class: str, path: str | Path, *, lang: str = "zh",
                         size_in: tuple[float, float] = FIG_SIZE_IN, dpi: int = 150,
                         title: str | None = None) -> Path:
    """Problem points of one class on their units, shaded by their number (1, 2, 3, 4+)."""
    if study.problems is None and study.problem_points is None:
        raise LayerError("problems", "is missing", fix="run the assessment first")
    _check_crs(study)
    path = Path(path)
    counts = unit_point_counts(study)
    n = counts[problem_class].to_numpy() if problem_class in counts.columns else np.zeros(len(counts), dtype=int)
    units = _metric(study.units, study.crs, "units")
    base = mcolors.to_rgb(c.PROBLEM_COLORS.get(problem_class, c.OTHER_COLOR))
    ramp = [mcolors.to_hex(tuple(1 - (1 - ch) * a for ch in base)) for a in (0.25, 0.5, 0.75, 1.0)]
    face = np.where(n > 0, np.array(ramp, dtype=object)[np.clip(n, 1, 4) - 1], "#f4f4f4")
    label = c.problem_class_label(problem_class, lang)
    with _style(lang):
        fig, ax = _new_wide(size_in, dpi)
        _base(study, ax, _extent(study, units))
        _draw(ax, units.geometry.to_numpy(), facecolor=face, edgecolor="#ffffff", linewidth=0.8, zorder=2)
        _outlines(study, ax)
        names = _unit_names(study)
        lines = [[[(names[i], "#222222")], [(f"{int(n[i])}", "#222222")]] if n[i] else [] for i in range(len(units))]
        skipped = _label_units(ax, units, names, lines, fontsize=7.5, m_per_pt=_m_per_pt(ax, fig))
        handles = [Patch(facecolor=col, edgecolor="#999999",
                         label=(f"{k}{'+' if k == 4 else ''} {'个点位' if lang == 'zh' else 'points'}"
                                f" ({int(((np.clip(n, 0, 4) == k) & (n > 0)).sum())})"))
                   for k, col in zip((1, 2, 3, 4), ramp, strict=True)]
        handles.append(Patch(facecolor="#f4f4f4", edgecolor="#999999", label="无" if lang == "zh" else "none"))
        ltitle = f"{label}: {'单元问题点位数' if lang == 'zh' else 'points per unit'}"
        if skipped:
            ltitle += f"\n({skipped} 个单元过小未标注)" if lang == "zh" else f"\n({skipped} small units unlabelled)"
        _legend_right(ax, handles, ltitle)
        heading = title or (f"{study.display_name} {study.year} 年城市体检{label}问题 "
                            f"({int((n > 0).sum())} 个单元 {int(n.sum())} 个问题点位)" if lang == "zh"
                            else f"{study.display_name} {study.year}: {label} ({int(n.sum())} points)")
        return _finish(fig, ax, study, heading, path, lang=lang, dpi=dpi, title_size=12.0)
