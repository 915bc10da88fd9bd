"""更新片区 (renewal areas): contiguous clusters of check-up units with the worst findings.

The work plan asks the district to "聚焦民生短板突出或发展潜力较大的区域，划定更新片区". geotijian
draws them from the check-up itself, in three steps, each documented and each tested.

1. **A score per unit** (0-1), the weighted mean of four components, each 0-1
   (:func:`renewal_scores`; weights in ``[plan.renewal] weights``, default 0.4 / 0.2 / 0.2
   / 0.2):

   * ``problems``: Σ over the unit's problems of class weight (限时解决 3, 尽力解决 2,
     长期谋划 1; ``class_weights``) × the share of the unit's residents affected, divided
     by the largest unit's sum. Unit-level problems count; a grouped problem (one row
     per indicator with its units as 问题点位 in ``points``) counts in every listed unit,
     its affected residents spread over them in proportion to their residents. Town- and
     district-level problems are shared by every unit of the area and do not tell units
     apart: they are left out of the score (they still reach the project library).
   * ``dissatisfaction``: (5 − mean survey score ``s_satisfaction``) / 4.
   * ``complaints``: 12345 complaints per 1,000 residents (``g_complaint_rate``) divided
     by the highest unit's rate.
   * ``old_compounds``: share of old compounds (``g_old_compound_share``, %, built before
     ``settings.old_compound_before_year``) / 100.

   A unit without a component's data (no respondents, say) is scored on the others, their
   weights renormalised; the components used are listed per unit.

2. **Selection**: units whose score is in the district's top third (``score_quantile``
   0.67) seed areas; so do units that are a significant hot spot of the score
   (Getis-Ord Gi*, :func:`geotijian.plan.gistar.gi_star`: esda's statistic, binary contiguity,
   999 conditional permutations with the study's seed, pseudo p ≤ ``hotspot_p`` 0.05,
   z > 0) and score at least the district median.

3. **Contiguous areas within size bounds**: selected units that are neighbours (sharing a
   boundary, or less than ``settings.unit_bridge_gap_m`` = 60 m apart across a canal or a
   railway, as in :mod:`geotijian.units`; by default only within one town, 街镇, which
   carries out the projects: ``within_town``) form an area. Bounds, in residents:

   * floor ``min_pop`` = 5,000 (the smallest check-up unit, Jiading 2024 work plan): a
     smaller cluster grows by its highest-scoring neighbouring units until it reaches the
     floor (reason recorded), or is dropped and listed when it cannot;
   * ceiling ``max_pop`` = 50,000 (the lower bound of a 15-minute life circle, GB
     50180-2018 Table 3.0.4: one area stays within one life circle's scale): a larger
     cluster is split by region growing from its highest-scoring unit, adding the
     highest-scoring neighbour while the ceiling holds; a unit above the ceiling on its
     own is dropped and listed.

Every area carries its score (residents-weighted mean of its units), units, towns,
residents, area, problems by class, the main problems, and the reason it was drawn.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

from .. import settings
from ..errors import ConfigError, LayerError, PlanWarning
from ..model import PROBLEM_CLASSES
from .gistar import gi_star

__all__ = ["RenewalResult", "renewal_scores", "renewal_areas", "unit_neighbours",
           "problem_points", "DEFAULT_WEIGHTS", "DEFAULT_CLASS_WEIGHTS", "SCORE_CODES",
           "AREA_COLUMNS", "SCORE_COLUMNS"]

DEFAULT_WEIGHTS = {"problems": 0.4, "dissatisfaction": 0.2, "complaints": 0.2, "old_compounds": 0.2}
DEFAULT_CLASS_WEIGHTS = {"限时解决": 3.0, "尽力解决": 2.0, "长期谋划": 1.0}
#: Indicator codes read from the study's indicator values for three components.
SCORE_CODES = {"dissatisfaction": "s_satisfaction", "complaints": "g_complaint_rate",
               "old_compounds": "g_old_compound_share"}
COMPONENTS = tuple(DEFAULT_WEIGHTS)
DEFAULT_MIN_POP = 5000
DEFAULT_MAX_POP = 50000
DEFAULT_SCORE_QUANTILE = 0.67
DEFAULT_HOTSPOT_P = 0.05
SCORE_COLUMNS = ["unit_id", "town_code", "population", *COMPONENTS, "components_used", "score",
                 "problem_count", "gi_z", "gi_p", "selected", "reason", "area_id"]
AREA_COLUMNS = ["area_id", "name", "town_codes", "towns", "units", "unit_count", "population", "area_ha",
                "score", "score_max", "problem_count", "problems_by_class", "main_problems",
                "problem_ids", "reason"]


@dataclass
class RenewalResult:
    """Renewal areas and the unit scores they were drawn from.

    Attributes
    ----------
    areas : GeoDataFrame
        :data:`AREA_COLUMNS` + geometry (the units' union, clipped to the district),
        sorted by ``area_id`` (``RA01`` = highest score).
    scores : DataFrame
        :data:`SCORE_COLUMNS`: every unit's components, score, Gi* z and pseudo p, whether
        it seeds an area and why, and the area it ended in.
    dropped : DataFrame
        Clusters left out (``units``, ``population``, ``reason``).
    method : dict
        Weights, class weights, threshold, bounds and neighbour rule used.
    """

    areas: gpd.GeoDataFrame
    scores: pd.DataFrame
    dropped: pd.DataFrame
    method: dict = field(default_factory=dict)


# ------------------------------------------------------------------------------ weights
def _weights(weights: Mapping[str, Any] | None, defaults: Mapping[str, float], key: str,
             names: tuple[str, ...], *, fill: bool = False) -> dict[str, float]:
    """Validated weights: known names, numbers ≥ 0, not all zero. A name left out weighs
    0, or its default with ``fill``."""
    if weights is None:
        return dict(defaults)
    if not isinstance(weights, Mapping):
        raise ConfigError(key, f"must be a table of name = number, got {weights!r}",
                          f"e.g. {key} = {{{', '.join(f'{k} = {v:g}' for k, v in defaults.items())}}}")
    unknown = [k for k in weights if k not in names]
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}", f"unknown name ({len(unknown)} of {len(weights)} "
                          f"entries: {', '.join(map(str, unknown))})", f"use {', '.join(names)}")
    bad = {k: v for k, v in weights.items()
           if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or v < 0}
    if bad:
        k0 = next(iter(bad))
        raise ConfigError(f"{key}.{k0}", f"does not parse as a weight: {bad[k0]!r} ({len(bad)} of "
                          f"{len(weights)} weights do not parse: {', '.join(map(str, bad))})",
                          "give each weight as a number ≥ 0, e.g. 0.2 (not a string)")
    out = {**(dict(defaults) if fill else {k: 0.0 for k in names}), **weights}
    if sum(out.values()) <= 0:
        raise ConfigError(key, "every weight is 0", "give at least one component a weight > 0")
    return {k: float(v) for k, v in out.items()}


# ----------------------------------------------------------------------------- problems
def problem_points(problems: pd.DataFrame, units: pd.DataFrame) -> pd.DataFrame:
    """Where each problem lies, one row per (problem, unit): its 问题点位 at unit level.

    Reads only the documented columns ``problem_id``, ``indicator_code``, ``level``,
    ``area_id``, ``problem_class``, ``affected_population`` and, when present, ``points``
    (issue-20 grouping: the unit IDs of a grouped problem, a list or a ``;``-separated
    string). A unit-level row lies in its unit; a grouped row in its listed units (its
    affected residents spread over them by their residents); town- and district-level
    rows without ``points`` lie in no single unit and are left out here.

    Returns
    -------
    DataFrame
        ``problem_id, indicator_code, problem_class, unit_id, affected_population,
        affected_share`` (affected residents ÷ the unit's residents, ≤ 1).
    """
    need = ["problem_id", "indicator_code", "level", "area_id", "problem_class", "affected_population"]
    miss = [c for c in need if c not in problems.columns]
    if miss:
        raise LayerError("problems", f"missing column(s) {', '.join(miss)}",
                         fix="pass the problems table of build_tables (model.PROBLEM_COLUMNS)")
    pop = pd.Series(pd.to_numeric(units["population"], errors="coerce").to_numpy(dtype=float),
                    index=units["unit_id"].astype(str))
    p = pd.DataFrame(problems.drop(columns="geometry", errors="ignore"))
    rows = []
    pts = p["points"] if "points" in p.columns else pd.Series(None, index=p.index, dtype=object)
    has_pts = pts.map(lambda v: v is not None and not (isinstance(v, float) and np.isnan(v))
                      and len(v if not isinstance(v, str) else v.strip()) > 0)
    unit_rows = p[(p["level"].astype(str) == "unit") & ~has_pts]
    rows.append(pd.DataFrame({"problem_id": unit_rows["problem_id"].to_numpy(),
                              "indicator_code": unit_rows["indicator_code"].to_numpy(),
                              "problem_class": unit_rows["problem_class"].to_numpy(),
                              "unit_id": unit_rows["area_id"].astype(str).to_numpy(),
                              "affected_population": pd.to_numeric(unit_rows["affected_population"],
                                                                   errors="coerce").to_numpy(dtype=float)}))
    grouped = p[has_pts & (p["level"].astype(str) == "unit")]  # (town/district points are not units)
    if len(grouped):
        lists = grouped["points"].map(lambda v: [s.strip() for s in v.replace("；", ";").split(";")
                                                 if s.strip()] if isinstance(v, str) else [str(s) for s in v])
        g = grouped.assign(unit_id=lists).explode("unit_id")
        up = pop.reindex(g["unit_id"].astype(str)).to_numpy(dtype=float)
        tot = pd.Series(up, index=g.index).groupby(level=0).transform("sum").to_numpy()
        aff = pd.to_numeric(g["affected_population"], errors="coerce").to_numpy(dtype=float)
        rows.append(pd.DataFrame({"problem_id": g["problem_id"].to_numpy(),
                                  "indicator_code": g["indicator_code"].to_numpy(),
                                  "problem_class": g["problem_class"].to_numpy(),
                                  "unit_id": g["unit_id"].astype(str).to_numpy(),
                                  "affected_population": np.where(tot > 0, aff * up / tot, np.nan)}))
    out = pd.concat(rows, ignore_index=True)
    upop = pop.reindex(out["unit_id"]).to_numpy(dtype=float)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(upop > 0, out["affected_population"].to_numpy(dtype=float) / upop, np.nan)
    out["affected_share"] = np.clip(np.nan_to_num(share, nan=1.0), 0.0, 1.0)
    return out.sort_values(["problem_id", "unit_id"], kind="stable").reset_index(drop=True)


# ---------------------------------------------------------------------------- neighbours
def unit_neighbours(units: gpd.GeoDataFrame, *, gap_m: float | None = None,
                    within_town: bool = False) -> coo_matrix:
    """Symmetric unit adjacency: shared boundary, or closer than ``gap_m`` (default
    ``settings.unit_bridge_gap_m``, 60 m: across a canal or railway with a crossing);
    with ``within_town`` only units of the same town (``town_code``) are neighbours."""
    gap = settings.unit_bridge_gap_m if gap_m is None else float(gap_m)
    g = units.geometry.to_numpy()
    tree = shapely.STRtree(g)
    i, j = tree.query(g, predicate="dwithin", distance=gap)
    keep = i != j
    if within_town and "town_code" in units.columns:
        town = units["town_code"].astype(str).to_numpy()
        keep &= town[i] == town[j]
    i, j = i[keep], j[keep]
    n = len(g)
    return coo_matrix((np.ones(len(i)), (i, j)), shape=(n, n))


def _gi_star(score: np.ndarray, adj: coo_matrix, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Getis-Ord Gi* z and pseudo p of the score (NaN when it cannot be computed)."""
    n = len(score)
    z = np.full(n, np.nan)
    p = np.full(n, np.nan)
    if n < 5 or not np.isfinite(score).all() or np.ptp(score) == 0 or adj.nnz == 0:
        return z, p
    g = gi_star(score, adj.tocsr(), permutations=999, seed=seed)
    return g["z"], g["p_sim"]


# ------------------------------------------------------------------------------- scores
def renewal_scores(units: gpd.GeoDataFrame, problems: pd.DataFrame, *,
                   indicator_values: pd.DataFrame | None = None,
                   weights: Mapping[str, Any] | None = None,
                   class_weights: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Renewal score (0-1) of every unit and its four components (module docstring).

    Parameters
    ----------
    units : GeoDataFrame
        ``unit_id``, ``town_code``, ``population`` (persons).
    problems : DataFrame
        The problems table (documented columns, see :func:`problem_points`).
    indicator_values : DataFrame, optional
        Long ``level, area_id, code, value`` (the study's indicator values): unit rows of
        ``s_satisfaction``, ``g_complaint_rate`` and ``g_old_compound_share``.
    weights, class_weights : mapping, optional
        Component weights and problem-class weights (numbers ≥ 0).

    Returns
    -------
    DataFrame
        ``unit_id, town_code, population, problems, dissatisfaction, complaints,
        old_compounds, components_used, score, problem_count``, sorted by unit_id.
    """
    wts = _weights(weights, DEFAULT_WEIGHTS, "plan.renewal.weights", COMPONENTS)
    cw = _weights(class_weights, DEFAULT_CLASS_WEIGHTS, "plan.renewal.class_weights",
                  tuple(DEFAULT_CLASS_WEIGHTS), fill=True)
    for col in ("unit_id", "population"):
        if col not in units.columns:
            raise LayerError("units", f"missing column {col!r}", fix="pass the check-up units")
    u = pd.DataFrame({"unit_id": units["unit_id"].astype(str).to_numpy(),
                      "town_code": units["town_code"].astype(str).to_numpy() if "town_code" in units.columns
                      else "", "population": pd.to_numeric(units["population"], errors="coerce").to_numpy(float)})
    pts = problem_points(problems, u)
    pts = pts[pts["unit_id"].isin(u["unit_id"])]
    unknown = sorted(set(pts["problem_class"].astype(str)) - set(cw))
    if unknown:
        raise ConfigError("plan.renewal.class_weights", f"no weight for problem class {unknown[0]!r}",
                          f"give a weight for each class ({', '.join(PROBLEM_CLASSES)})")
    contrib = pts["problem_class"].astype(str).map(cw).to_numpy(float) * pts["affected_share"].to_numpy()
    raw = pd.Series(contrib).groupby(pts["unit_id"].to_numpy()).sum().reindex(u["unit_id"]).fillna(0.0)
    comp = pd.DataFrame({"unit_id": u["unit_id"]})
    comp["problems"] = (raw / raw.max()).to_numpy() if raw.max() > 0 else 0.0
    vals = None
    if indicator_values is not None and len(indicator_values):
        iv = indicator_values[indicator_values["level"].astype(str) == "unit"]
        vals = iv.assign(area_id=iv["area_id"].astype(str)).pivot_table(
            index="area_id", columns="code", values="value", aggfunc="first")
    def col(code: str) -> np.ndarray:
        if vals is None or code not in vals.columns:
            return np.full(len(u), np.nan)
        return pd.to_numeric(vals[code], errors="coerce").reindex(u["unit_id"]).to_numpy(float)
    comp["dissatisfaction"] = np.clip((5.0 - col(SCORE_CODES["dissatisfaction"])) / 4.0, 0, 1)
    rate = col(SCORE_CODES["complaints"])
    comp["complaints"] = rate / np.nanmax(rate) if np.isfinite(rate).any() and np.nanmax(rate) > 0 else \
        np.where(np.isfinite(rate), 0.0, np.nan)
    comp["old_compounds"] = np.clip(col(SCORE_CODES["old_compounds"]) / 100.0, 0, 1)
    C = comp[list(COMPONENTS)].to_numpy(float)
    W = np.array([wts[k] for k in COMPONENTS])
    ok = np.isfinite(C) & (W > 0)
    den = (ok * W).sum(axis=1)
    score = np.where(den > 0, np.nansum(np.where(ok, C * W, 0.0), axis=1) / np.where(den > 0, den, 1), 0.0)
    used = [";".join(k for k, m in zip(COMPONENTS, row) if m) for row in ok]
    out = u.assign(**{k: comp[k].to_numpy() for k in COMPONENTS}, components_used=used, score=score,
                   problem_count=pts.groupby("unit_id").size().reindex(u["unit_id"]).fillna(0).astype(int).to_numpy())
    missing = [k for k in COMPONENTS if wts[k] > 0 and not np.isfinite(comp[k]).any()]
    if missing:
        warnings.warn(f"renewal scores: no data for {', '.join(missing)} in any of the {len(u)} units "
                      f"(indicator codes {', '.join(SCORE_CODES.get(k, k) for k in missing)}): scored on "
                      "the other components. Fix: give the survey / hotline / compound build years, "
                      "or set their weights to 0", PlanWarning, stacklevel=2)
    return out.sort_values("unit_id", kind="stable").reset_index(drop=True)


# -------------------------------------------------------------------------------- areas
def _grow(seed: int, pool: set[int], nbrs: list[np.ndarray], score: np.ndarray, pop: np.ndarray,
          uid: np.ndarray, cap: float) -> list[int]:
    """Region growing from ``seed`` inside ``pool``: add the highest-scoring neighbour
    (ties: unit ID) while the residents stay ≤ ``cap``."""
    region = [seed]
    total = pop[seed]
    pool = set(pool) - {seed}
    while True:
        front = sorted({int(k) for r in region for k in nbrs[r] if int(k) in pool},
                       key=lambda k: (-score[k], uid[k]))
        nxt = next((k for k in front if total + pop[k] <= cap), None)
        if nxt is None:
            return region
        region.append(nxt)
        total += pop[nxt]
        pool.discard(nxt)


def _check_options(units: gpd.GeoDataFrame, score_quantile: float, hotspot_p: float, min_pop: float,
                   max_pop: float) -> None:
    """Options in range and units in a metric CRS, or an error naming the key and the fix."""
    if not 0 < float(score_quantile) < 1:
        raise ConfigError("plan.renewal.score_quantile", f"must be between 0 and 1, got {score_quantile!r}",
                          "e.g. 0.67: units in the top third seed areas")
    if not 0 < float(hotspot_p) < 1:
        raise ConfigError("plan.renewal.hotspot_p", f"must be between 0 and 1, got {hotspot_p!r}",
                          "e.g. 0.05")
    if not 0 <= float(min_pop) < float(max_pop):
        raise ConfigError("plan.renewal.min_pop", f"floor ({min_pop}) must be below the ceiling ({max_pop})",
                          "e.g. min_pop = 5000, max_pop = 50000")
    if units.crs is None or units.crs.is_geographic:
        raise LayerError("units", "needs a metric CRS", fix="project the units (settings.metric_crs)")


def _select(score: np.ndarray, z: np.ndarray, pv: np.ndarray, score_quantile: float, hotspot_p: float
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Units that seed areas (top of the score, or a Gi* hot spot scoring at least the
    median): (selected, hot spot, reason per unit, score threshold)."""
    n = len(score)
    thr = float(np.quantile(score, score_quantile)) if n else np.inf
    med = float(np.median(score)) if n else np.inf
    top = (score >= thr) & (score > 0)
    hot = np.nan_to_num(z) > 0
    hot &= np.nan_to_num(pv, nan=1.0) <= hotspot_p
    hot &= score >= med
    sel = top | hot
    reason = np.full(n, "", dtype=object)
    for i in np.flatnonzero(sel):  # (text per selected unit)
        parts = []
        if top[i]:
            parts.append(f"得分{score[i]:.2f}位于全区前{1 - score_quantile:.0%}(≥{thr:.2f})")
        if hot[i]:
            parts.append(f"Gi*热点(z={z[i]:.2f}, p={pv[i]:.3f})")
        reason[i] = "；".join(parts)
    return sel, hot, reason, thr


def _clusters(sel: np.ndarray, adj, nbrs: list[np.ndarray], score: np.ndarray, pop: np.ndarray,
              uid: np.ndarray, max_pop: float) -> tuple[list, list]:
    """Contiguous clusters of selected units, those above the ceiling split by region
    growing from their best unit: (areas as (members, reason), dropped as (members,
    residents, reason))."""
    idx = np.flatnonzero(sel)
    sub = adj[idx][:, idx]
    ncomp, lab = connected_components(sub, directed=False) if len(idx) else (0, np.zeros(0, int))
    areas: list[tuple[list[int], str]] = []
    dropped: list[tuple[list[int], float, str]] = []
    for k in range(ncomp):  # (a few clusters; each handled as a whole)
        members = idx[lab == k].tolist()
        if pop[members].sum() <= max_pop:
            areas.append((members, "连片高分单元"))
            continue
        pool = set(members)
        while pool:
            seed_u = min(pool, key=lambda m: (-score[m], uid[m]))
            if pop[seed_u] > max_pop:
                dropped.append(([seed_u], float(pop[seed_u]), f"单元人口{pop[seed_u]:,.0f}超过片区上限{max_pop:,.0f}"))
                pool.discard(seed_u)
                continue
            reg = _grow(seed_u, pool, nbrs, score, pop, uid, max_pop)
            areas.append((reg, f"连片高分单元超过上限{max_pop:,.0f}人，自最高分单元逐个并入相邻最高分单元拆分"))
            pool -= set(reg)
    return areas, dropped


def _to_floor(areas: list, dropped: list, nbrs: list[np.ndarray], score: np.ndarray, pop: np.ndarray,
              uid: np.ndarray, min_pop: float, max_pop: float) -> tuple[list, list]:
    """Areas below the floor grow by their highest-scoring neighbours that are in no other
    area (nor taken by an earlier area's growth), within the ceiling; an area that cannot
    reach the floor is dropped. Returns (final areas, dropped)."""
    taken = {m for mem, _ in areas for m in mem} | {m for mem, _, _ in dropped for m in mem}
    final: list[tuple[list[int], str]] = []
    for members, why in areas:
        total = pop[members].sum()
        if total >= min_pop:
            final.append((members, why))
            continue
        pool = (set(range(len(pop))) - taken) | set(members)
        reg = list(members)
        added = []
        while pop[reg].sum() < min_pop:
            front = sorted({int(k) for r in reg for k in nbrs[r] if int(k) in pool and int(k) not in reg},
                           key=lambda k: (-score[k], uid[k]))
            nxt = next((k for k in front if pop[reg].sum() + pop[k] <= max_pop), None)
            if nxt is None:
                break
            reg.append(nxt)
            added.append(nxt)
        if pop[reg].sum() >= min_pop:
            final.append((reg, why + f"；人口不足下限{min_pop:,.0f}，并入相邻最高分单元"
                          + "、".join(str(uid[a]) for a in added)))
            taken |= set(added)
        else:
            dropped.append((members, float(total), f"人口{total:,.0f}不足下限{min_pop:,.0f}且无可并入的相邻单元"))
    return final, dropped


def renewal_areas(
    units: gpd.GeoDataFrame,
    problems: pd.DataFrame,
    *,
    indicator_values: pd.DataFrame | None = None,
    boundary: gpd.GeoDataFrame | None = None,
    weights: Mapping[str, Any] | None = None,
    class_weights: Mapping[str, Any] | None = None,
    score_quantile: float = DEFAULT_SCORE_QUANTILE,
    hotspot_p: float = DEFAULT_HOTSPOT_P,
    min_pop: float = DEFAULT_MIN_POP,
    max_pop: float = DEFAULT_MAX_POP,
    gap_m: float | None = None,
    within_town: bool = True,
    seed: int | None = None,
) -> RenewalResult:
    """更新片区: contiguous clusters of high-scoring units within size bounds.

    Parameters
    ----------
    units : GeoDataFrame
        Check-up units (``unit_id``, ``town_code``, ``town_name``, ``population``),
        metric CRS.
    problems : DataFrame
        The problems table (:func:`problem_points` lists the columns read).
    indicator_values : DataFrame, optional
        The study's long indicator values (survey, hotline, old compounds).
    boundary : GeoDataFrame, optional
        The district: areas are clipped to it.
    weights, class_weights : mapping, optional
        See :func:`renewal_scores`.
    score_quantile : float
        Units at or above this quantile of the score seed areas (0.67: the top third).
    hotspot_p : float
        Gi* pseudo p-value at or below which a unit (scoring at least the median) is a
        hot spot.
    min_pop, max_pop : float
        Residents per area: floor and ceiling (5,000 and 50,000 by default).
    gap_m : float, optional
        Neighbour distance (m), default ``settings.unit_bridge_gap_m``.
    within_town : bool
        Keep every area inside one town (街镇), which carries out its projects (default).
    seed : int, optional
        Permutation seed of Gi*; default ``settings.random_seed``.

    Returns
    -------
    RenewalResult
    """
    _check_options(units, score_quantile, hotspot_p, min_pop, max_pop)
    u = units.sort_values("unit_id", kind="stable").reset_index(drop=True)
    sc = renewal_scores(u, problems, indicator_values=indicator_values, weights=weights,
                        class_weights=class_weights)
    uid = sc["unit_id"].to_numpy(dtype=object)
    score = sc["score"].to_numpy(float)
    pop = np.nan_to_num(sc["population"].to_numpy(float))
    adj = unit_neighbours(u, gap_m=gap_m, within_town=within_town).tocsr()
    nbrs = [adj.indices[adj.indptr[i]:adj.indptr[i + 1]] for i in range(len(u))]
    z, pv = _gi_star(score, adj, settings.random_seed if seed is None else int(seed))
    sel, hot, reason, thr = _select(score, z, pv, score_quantile, hotspot_p)
    areas, dropped = _clusters(sel, adj, nbrs, score, pop, uid, max_pop)
    final, dropped = _to_floor(areas, dropped, nbrs, score, pop, uid, min_pop, max_pop)
    return _assemble(u, sc, final, dropped, problems, boundary, z, pv, sel, hot, reason,
                     method={"weights": _weights(weights, DEFAULT_WEIGHTS, "plan.renewal.weights", COMPONENTS),
                             "class_weights": _weights(class_weights, DEFAULT_CLASS_WEIGHTS,
                                                       "plan.renewal.class_weights", tuple(DEFAULT_CLASS_WEIGHTS),
                                                       fill=True),
                             "score_quantile": float(score_quantile), "score_threshold": thr,
                             "hotspot_p": float(hotspot_p), "min_pop": float(min_pop),
                             "max_pop": float(max_pop),
                             "neighbour_gap_m": settings.unit_bridge_gap_m if gap_m is None else float(gap_m),
                             "within_town": bool(within_town)})


def _assemble(u: gpd.GeoDataFrame, sc: pd.DataFrame, final: list, dropped: list, problems: pd.DataFrame,
              boundary, z, pv, sel, hot, reason, *, method: dict) -> RenewalResult:
    uid = sc["unit_id"].to_numpy(dtype=object)
    score = sc["score"].to_numpy(float)
    pop = np.nan_to_num(sc["population"].to_numpy(float))
    pts = problem_points(problems, sc)
    prob = pd.DataFrame(problems.drop(columns="geometry", errors="ignore"))
    names = dict(zip(prob["problem_id"], prob["name_zh"] if "name_zh" in prob.columns else prob["indicator_code"]))
    town_name = dict(zip(u["town_code"].astype(str), u["town_name"].astype(str))) if "town_name" in u.columns else {}
    dist = boundary.geometry.union_all() if boundary is not None and len(boundary) else None
    # areas ordered by score (residents-weighted), then first unit
    def wscore(m):
        return float(np.average(score[m], weights=pop[m])) if pop[m].sum() > 0 else float(score[m].mean())
    final = sorted(final, key=lambda a: (-wscore(a[0]), str(min(uid[a[0]]))))
    rows, geoms = [], []
    area_of = np.full(len(uid), None, dtype=object)
    count_by_town: dict[str, int] = {}
    for k, (members, why) in enumerate(final):
        members = sorted(members, key=lambda m: uid[m])
        aid = f"RA{k + 1:02d}"
        area_of[members] = aid
        ids = [str(uid[m]) for m in members]
        towns = sorted(set(u["town_code"].astype(str).to_numpy()[members])) if "town_code" in u.columns else []
        t0 = towns[0] if towns else ""
        count_by_town[t0] = count_by_town.get(t0, 0) + 1
        p = pts[pts["unit_id"].isin(ids)]
        by_class = p.drop_duplicates("problem_id")["problem_class"].value_counts()
        cls_txt = "；".join(f"{c} {int(by_class.get(c, 0))}" for c in PROBLEM_CLASSES if by_class.get(c, 0))
        main = (p.groupby("problem_id")["affected_population"].sum().sort_values(ascending=False, kind="stable")
                .head(3).index.tolist())
        main_txt = "、".join(dict.fromkeys(str(names.get(pid, pid)) for pid in main))
        n_sel = int(sel[members].sum())
        hot_n = int(hot[members].sum())
        geom = shapely.union_all(u.geometry.to_numpy()[members])
        if dist is not None:
            geom = shapely.intersection(geom, dist)
        text = (f"{why}：{len(members)}个单元(其中{n_sel}个为高分或热点单元"
                + (f"，{hot_n}个Gi*热点" if hot_n else "") + f")，片区得分{wscore(members):.2f}；"
                + (f"主要问题：{main_txt}" if main_txt else "无单元级问题"))
        rows.append({"area_id": aid,
                     "name": f"{town_name.get(t0, t0)}{count_by_town[t0]}号更新片区",
                     "town_codes": ";".join(towns), "towns": "、".join(town_name.get(t, t) for t in towns),
                     "units": ";".join(ids), "unit_count": len(members), "population": float(pop[members].sum()),
                     "area_ha": float(shapely.area(geom) / 1e4), "score": wscore(members),
                     "score_max": float(score[members].max()), "problem_count": int(p["problem_id"].nunique()),
                     "problems_by_class": cls_txt, "main_problems": main_txt,
                     "problem_ids": ";".join(sorted(p["problem_id"].unique())), "reason": text})
        geoms.append(geom)
    areas = gpd.GeoDataFrame(pd.DataFrame(rows, columns=AREA_COLUMNS), geometry=geoms, crs=u.crs) if rows else \
        gpd.GeoDataFrame(columns=AREA_COLUMNS, geometry=[], crs=u.crs)
    scores = sc.assign(gi_z=z, gi_p=pv, selected=sel, reason=reason, area_id=area_of)[SCORE_COLUMNS]
    drop = pd.DataFrame([{"units": ";".join(str(uid[m]) for m in mem), "population": tot, "reason": why}
                         for mem, tot, why in dropped], columns=["units", "population", "reason"])
    if len(drop):
        warnings.warn(f"renewal areas: {len(drop)} high-scoring clusters left out ("
                      + "; ".join(f"{r.units}: {r.reason}" for r in drop.itertuples()) + ")",
                      PlanWarning, stacklevel=3)
    return RenewalResult(areas, scores, drop, method)
