"""The area a report speaks for: the whole district, or one town (街镇) of it."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from .inputs import ReportInputs

__all__ = ["Scope", "district_scope", "town_scope", "scope_problems", "scope_points", "point_names",
           "places_text"]

#: 问题点位 named in one cell before "等"
MAX_POINTS_NAMED = 3


@dataclass
class Scope:
    """``level`` ``district`` or ``town``; ``area_id`` its ID in the tables; ``name`` its
    Chinese name; ``units`` the check-up unit IDs inside it; ``towns`` the town codes."""

    level: str
    area_id: str
    name: str
    units: set[str] = field(default_factory=set)
    towns: list[str] = field(default_factory=list)

    @property
    def is_town(self) -> bool:
        return self.level == "town"

    @property
    def areas(self) -> set[str]:
        """Every area ID whose rows belong to the scope (units, towns, the district)."""
        out = set(self.units) | set(self.towns)
        out.add(self.area_id)
        return out

    def rows(self, df: pd.DataFrame | None, col: str = "area_id") -> pd.DataFrame:
        """The rows of ``df`` about this scope's areas (all rows for the district)."""
        if df is None:
            return pd.DataFrame()
        if not self.is_town or col not in df.columns:
            return df
        return df[df[col].astype(str).isin(self.areas)]


def district_scope(inp: ReportInputs) -> Scope:
    did = inp.indicator_table.loc[inp.indicator_table["level"] == "district", "area_id"]
    return Scope(level="district", area_id=str(did.iloc[0]) if len(did) else "district", name=inp.title,
                 units=set(inp.units["unit_id"].astype(str)), towns=list(inp.towns["town_code"].astype(str)))


def town_scope(inp: ReportInputs, town_code: str) -> Scope:
    u = inp.units[inp.units["town_code"].astype(str) == str(town_code)]
    return Scope(level="town", area_id=str(town_code), name=inp.town_name(town_code),
                 units=set(u["unit_id"].astype(str)), towns=[str(town_code)])


def _grouped(inp: ReportInputs) -> bool:
    """Whether the problems are grouped per indicator and level (issue 20) with their points."""
    return "point_count" in inp.problems.columns and inp.problem_points is not None


def scope_points(inp: ReportInputs, scope: Scope) -> pd.DataFrame:
    """The 问题点位 inside the scope: every point for the district; a town's units' and its
    own (town-level) points for a town."""
    pts = inp.problem_points
    if pts is None:
        return pd.DataFrame(columns=["point_id", "problem_id", "level", "area_id"])
    if not scope.is_town:
        return pts
    lv, a = pts["level"].astype(str), pts["area_id"].astype(str)
    return pts[((lv == "unit") & a.isin(scope.units)) | ((lv == "town") & (a == scope.area_id))]


def scope_problems(inp: ReportInputs, scope: Scope) -> pd.DataFrame:
    """The problems (问题清单) a report of ``scope`` speaks of.

    The district: every problem. A town: the problems with a point in it, told for the town
    alone: its points (``point_count``, ``points``, ``point_names``), the residents affected
    there, and for a town-level problem the town's own value and gap; ``area_id`` /
    ``area_name`` the town's. District-level problems are the district's, not a town's.
    Outputs written before problems were grouped (one row per area) are cut by area.
    """
    if not _grouped(inp):
        return scope.rows(inp.problems)
    if not scope.is_town:
        return inp.problems
    return inp.memo(("scope_problems", scope.area_id, frozenset(scope.units)), lambda: _town_problems(inp, scope))


def _town_problems(inp: ReportInputs, scope: Scope) -> pd.DataFrame:
    pts = scope_points(inp, scope)
    pr = inp.problems[inp.problems["problem_id"].isin(set(pts["problem_id"]))].copy()
    if not len(pr):
        return pr
    g = pts.groupby("problem_id", sort=False)
    names = pts["area_name"] if "area_name" in pts.columns else pts["area_id"]
    agg = pd.DataFrame({"point_count": g.size(),
                        "points": g["area_id"].agg(lambda x: ";".join(map(str, x))),
                        "point_names": names.groupby(pts["problem_id"], sort=False).agg(
                            lambda x: "、".join(map(str, x))),
                        "affected_population": g["affected_population"].sum(min_count=1)
                        if "affected_population" in pts.columns else None})
    pid = pr["problem_id"]
    for col in ("point_count", "points", "point_names", "affected_population"):
        if col in pr.columns and agg[col] is not None:
            pr[col] = pid.map(agg[col]).to_numpy()
    _told_for_town(pr, pts, inp, scope)
    if inp.ledger is not None and "points_new" in pr.columns and {"status", "history"} <= set(inp.ledger.columns):
        from ...problem_list import problem_status

        pr = problem_status(pr, scope.rows(inp.ledger), year=int(inp.year))   # the town's points' statuses
    pr["area_id"] = scope.area_id
    if "area_name" in pr.columns:
        pr["area_name"] = scope.name
    return pr.reset_index(drop=True)


def _told_for_town(pr: pd.DataFrame, pts: pd.DataFrame, inp: ReportInputs, scope: Scope) -> None:
    """A town's problems (``pr``, in place) told from its own points (``pts``): the value
    and gap of its worst point, the gap's share of the reference, how many of its units
    were assessed (评估数; 1 for a town-level problem: the town) and the 问题描述 with these
    (``7个社区体检单元中7个未达标(现状29–134 个)``; ``嘉定镇街道现状…`` for the town's own)."""
    from ...assess import _COVERAGE_PREFIXES
    from ...problem_list import _describe

    if not {"value", "gap"} <= set(pts.columns):
        return
    key = pts["problem_id"].to_numpy()
    v = pd.to_numeric(pts["value"], errors="coerce")
    gap = pd.to_numeric(pts["gap"], errors="coerce")
    worst = gap.fillna(-np.inf).groupby(key, sort=False).idxmax()   # the label of each problem's worst point
    vmin, vmax = v.groupby(key, sort=False).min(), v.groupby(key, sort=False).max()
    t = inp.indicator_table
    judged = t[(t["level"].astype(str) == "unit") & t["area_id"].astype(str).isin(scope.units)
               & t["judgement"].isin(["meets", "falls_short"])] if "judgement" in t.columns else t.iloc[:0]
    assessed = judged.groupby(judged["code"].astype(str)).size()
    pid = pr["problem_id"]
    pr["value"] = pid.map(v[worst].set_axis(worst.index)).to_numpy()
    pr["gap"] = pid.map(gap[worst].set_axis(worst.index)).to_numpy()
    town_level = (pr["level"].astype(str) == "town").to_numpy()
    n = pr["point_count"].astype(int).to_numpy()
    pr["assessed_count"] = np.where(town_level, 1, np.maximum(
        pr["indicator_code"].astype(str).map(assessed).fillna(0).astype(int).to_numpy(), n))
    if "gap_share" in pr.columns and "reference_value" in pr.columns:
        g = pd.to_numeric(pr["gap"], errors="coerce").to_numpy(dtype=float)
        ref = pd.to_numeric(pr["reference_value"], errors="coerce").to_numpy(dtype=float)
        with np.errstate(divide="ignore", invalid="ignore"):
            pr["gap_share"] = np.where(np.abs(ref) > 0, np.abs(g) / np.abs(ref), np.where(g > 0, np.inf, 0.0))
    if "description" not in pr.columns:
        return
    from ...assess import _suggester, suggestion_templates
    from ...problem_list import join_names

    # the points named in a suggestion as group_problems orders them: most residents first, then ID
    aff_pts = pd.to_numeric(pts["affected_population"], errors="coerce") if "affected_population" in pts.columns \
        else pd.Series(np.nan, index=pts.index)
    ordered = pts.assign(_aff=aff_pts).sort_values(["problem_id", "_aff", "point_id"], ascending=[True, False, True],
                                                   kind="stable", na_position="last")
    named = {k: (g["area_name"].astype(str).tolist(), g["area_id"].astype(str).tolist())
             for k, g in ordered.groupby("problem_id", sort=False)}
    # (the packaged templates, as the study's build_tables uses them: read once, not per town)
    suggest = inp.memo(("suggester",), lambda: _suggester(suggestion_templates())) \
        if "suggestion" in pr.columns else None
    affected = pd.to_numeric(pr["affected_population"], errors="coerce").to_numpy(dtype=float) \
        if "affected_population" in pr.columns else np.full(len(pr), np.nan)
    text, advice = [], []
    for r, aff in zip(pr.itertuples(index=False), affected):   # one sentence per problem (tens), as group_problems
        own = str(r.level) == "town"
        text.append(_describe(
            str(r.name_zh), "district" if own else str(r.level), int(r.point_count), int(r.assessed_count),
            "" if pd.isna(r.reference) else str(r.reference),
            "" if pd.isna(getattr(r, "reference_source", None)) else str(r.reference_source),
            "" if pd.isna(r.unit) else str(r.unit), float(vmin.get(r.problem_id, np.nan)),
            float(vmax.get(r.problem_id, np.nan)), aff, str(r.indicator_code).startswith(_COVERAGE_PREFIXES),
            scope.name))
        if suggest is not None:   # the suggestion names the town's points, with the town's numbers
            names, ids = named.get(r.problem_id, ([scope.name], [scope.area_id]))
            one = len(names) == 1
            advice.append(suggest(str(r.indicator_code), {
                "area": names[0] if one else join_names(names, str(r.level)),
                "area_id": ids[0] if one else scope.area_id, "name": r.name_zh, "value": r.value,
                "reference": "—" if pd.isna(r.reference) else str(r.reference), "gap": r.gap,
                "unit": "" if pd.isna(r.unit) else str(r.unit), "affected": aff})[0])
    pr["description"] = text
    if suggest is not None:
        pr["suggestion"] = advice


def point_names(inp: ReportInputs, scope: Scope) -> dict[str, list[str]]:
    """problem_id -> the names of its 问题点位 inside the scope (units after their
    committees, towns by name), in the points table's order."""
    pts = scope_points(inp, scope)
    if not len(pts):
        return {}
    names = (pts["area_name"] if "area_name" in pts.columns else pts["area_id"]).astype(str)
    return {k: list(v) for k, v in names.groupby(pts["problem_id"].astype(str), sort=False)}


def places_text(inp: ReportInputs, scope: Scope, r, names: dict[str, list[str]]) -> str:
    """空间落位 of one problem row: the district, its towns by name, or its check-up units
    (``15个社区体检单元：育绿、紫荆、戬浜村等``), from the problem's 问题点位 (``names``:
    :func:`point_names`). Empty when the row has no points (ungrouped outputs)."""
    level = str(getattr(r, "level", "") or "")
    if level == "district":
        return inp.title if not scope.is_town else scope.name
    parts = names.get(str(getattr(r, "problem_id", "")), [])
    if not parts:
        return ""
    if level == "town":
        return "、".join(parts)
    shown = "、".join(parts[:MAX_POINTS_NAMED]) + ("等" if len(parts) > MAX_POINTS_NAMED else "")
    return f"{len(parts)}个社区体检单元：{shown}"
