"""The tables of :func:`geotijian.access.service_coverage` (used by :mod:`geotijian.access`).

From the exact distances of one coverage computation: the per-home table, the
population-weighted shares per unit, town and district, and the facilities used with
their access rule.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import geopandas as gpd
import numpy as np
import pandas as pd

from .network import feature_rules

if TYPE_CHECKING:
    from .access import _Access


def _per_home(acc: _Access, kind: np.ndarray, unit: np.ndarray | None, town: np.ndarray | None,
              pop: np.ndarray, types: list[str], covered: np.ndarray, geometry: np.ndarray,
              crs: object) -> gpd.GeoDataFrame:
    """One row per home: ids, unit and town, population (persons), per type the distance
    (m) and whether it is covered, the count of types covered; sorted by ``home_id``."""
    ph = pd.DataFrame({"home_id": acc.home_ids, "home_kind": kind,
                       "unit_id": unit if unit is not None else None,
                       "town_code": town if town is not None else None,
                       "population": pop})
    for j, t in enumerate(types):
        ph[f"dist_{t}"] = acc.dist[:, j]
        ph[f"covered_{t}"] = covered[:, j]
    ph["types_covered"] = covered.sum(axis=1)
    ph["complete"] = covered.all(axis=1)
    per_home = gpd.GeoDataFrame(ph, geometry=geometry, crs=crs)
    order = np.argsort(pd.Index(acc.home_ids).astype(str).to_numpy(), kind="stable")
    return per_home.iloc[order].reset_index(drop=True)


def _per_area(covered: np.ndarray, pop: np.ndarray, unit: np.ndarray | None, town: np.ndarray | None,
              types: list[str]) -> pd.DataFrame:
    """Population-weighted shares (0-1) per unit, town and district and type (and the
    complete life circle), from the homes: the unit rows sum to the district's."""
    # population-weighted shares by unit / town / district, from the homes
    levels = [("unit", unit), ("town", town), ("district", np.full(len(pop), "district", dtype=object))]
    cov_all = np.column_stack([covered, covered.all(axis=1)])
    names = types + ["complete_life_circle"]
    frames = []
    wcov = cov_all * pop[:, None]
    for level, area in levels:
        if area is None:
            continue
        keys = pd.Index(area.astype(str))
        codes, uniq = pd.factorize(keys, sort=True)
        P = np.bincount(codes, weights=pop, minlength=len(uniq))
        C = np.stack([np.bincount(codes, weights=wcov[:, j], minlength=len(uniq))
                      for j in range(len(names))], axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            share = np.where(P[:, None] > 0, C / P[:, None], np.nan)
        frames.append(pd.DataFrame({
            "level": level, "area_id": np.repeat(np.asarray(uniq), len(names)),
            "facility_type": np.tile(names, len(uniq)),
            "population": np.repeat(P, len(names)), "covered_population": C.ravel(),
            "share": share.ravel(), "not_covered": (P[:, None] - C).ravel()}))
    return pd.concat(frames, ignore_index=True)


def _facilities_used(acc: _Access, crs: object) -> gpd.GeoDataFrame:
    """The facilities used: ``type``, ``facility_id``, ``access_rule``, ``n_access_points``."""
    fac = acc.fac
    rules = feature_rules(acc.fac_snap)
    nacc = np.bincount(acc.fac_snap.owner, minlength=len(fac)) if len(fac) else np.zeros(0, int)
    return gpd.GeoDataFrame({"type": fac["_type"].to_numpy(), "facility_id": fac["_fid"].to_numpy(),
                             "access_rule": rules, "n_access_points": nacc},
                            geometry=fac.geometry.to_numpy(), crs=crs)
