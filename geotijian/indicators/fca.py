"""Capacity-aware accessibility: two-step floating catchment (2SFCA / E2SFCA) supply per
1,000 demand within reach (``fca_<type>``), by unit, town and district (the aggregation of
:mod:`.compute`: each area the ratio of its own sums).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

import geopandas as gpd
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import LayerError
from .compute import _check_units, _drop_unassigned, _homes_frame, _level_sums, _ratio

__all__ = ["e2sfca_weights", "two_step_fca", "fca_indicator"]


def e2sfca_weights(max_distance: float) -> dict[float, float]:
    """Default E2SFCA step weights: 1.00 / 0.68 / 0.22 over the three thirds of the catchment.

    Luo & Qi (2009) weights for 0-10, 10-20, 20-30 minute zones (Gaussian, β = 100), as in
    ``pysal/access`` (``weights.step_fn({10: 1, 20: 0.68, 30: 0.22})``), scaled to metres.
    """
    return {max_distance / 3.0: 1.0, 2.0 * max_distance / 3.0: 0.68, float(max_distance): 0.22}


def _weight_array(d: np.ndarray, max_distance: float,
                  weights: Mapping[float, float] | Callable[[np.ndarray], np.ndarray] | None) -> np.ndarray:
    within = d <= max_distance
    if weights is None:
        w = np.ones_like(d)
    elif callable(weights):
        w = np.asarray(weights(d), dtype=float)
    else:
        steps = sorted(weights.items())
        bounds = np.array([k for k, _ in steps], dtype=float)
        vals = np.array([v for _, v in steps] + [0.0], dtype=float)
        w = vals[np.searchsorted(bounds, d, side="left")]
    return np.where(within, w, 0.0)


def two_step_fca(demand: np.ndarray, supply: np.ndarray, od: sp.spmatrix, *, max_distance: float,
                 weights: Mapping[float, float] | Callable[[np.ndarray], np.ndarray] | None = None) -> np.ndarray:
    """Capacity-aware two-step floating catchment accessibility (2SFCA / E2SFCA).

    Step 1, each facility j: R_j = S_j / Σ_i D_i W(d_ij). Step 2, each home i:
    A_i = Σ_j R_j W(d_ij) (Luo & Wang 2003; enhanced with distance-decay weights W, Luo &
    Qi 2009), the supply per unit of demand within reach, e.g. kindergarten places per
    child within 300 m. Same definition as ``pysal/access`` ``two_stage_fca``.

    Parameters
    ----------
    demand : array, shape (n_homes,)
        Demand per home (persons, e.g. children aged 3-6).
    supply : array, shape (n_facilities,)
        Capacity per facility (places, beds, m²).
    od : sparse matrix, shape (n_homes, n_facilities)
        Network distances in metres; *stored* entries are reachable pairs (a stored 0 is a
        distance of 0 m), absent entries are unreachable
        (``geotijian.access.facility_distance_matrix``).
    max_distance : float
        Catchment size in metres (distances ≤ max_distance count).
    weights : dict or callable, optional
        ``None``: 2SFCA (weight 1 within the catchment). A dict ``{upper_bound_m: weight}``
        is a step function (weight of the first bound ≥ d); a callable maps distances to
        weights. :func:`e2sfca_weights` gives the usual E2SFCA steps.

    Returns
    -------
    ndarray, shape (n_homes,)
        Supply per unit of demand reachable from each home (0 where nothing is reachable).
    """
    od = sp.csr_matrix(od, dtype=float)
    demand = np.asarray(demand, dtype=float)
    supply = np.asarray(supply, dtype=float)
    if od.shape != (len(demand), len(supply)):
        raise LayerError("od matrix", f"shape {od.shape} does not match {len(demand)} homes × {len(supply)} facilities",
                         fix="build the matrix with the same homes and facilities, in the same order")
    if np.any(demand < 0) or np.any(supply < 0) or np.isnan(demand).any() or np.isnan(supply).any():
        raise LayerError("fca inputs", "demand and supply must be non-negative numbers",
                         fix="fill in missing capacities (or drop the facility and say so)")
    w = od.copy()
    w.data = _weight_array(od.data, max_distance, weights)
    catch_demand = np.asarray(w.T @ demand).ravel()
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(catch_demand > 0, supply / np.where(catch_demand > 0, catch_demand, 1.0), 0.0)
    return np.asarray(w @ ratio).ravel()


def fca_indicator(homes: pd.DataFrame, supply: np.ndarray, od: sp.spmatrix, units: gpd.GeoDataFrame, *,
                  facility_type: str, max_distance: float, demand_share: float = 1.0, method: str = "2sfca",
                  weights: Mapping[float, float] | Callable | None = None, per: float = 1000.0,
                  district_id: str = "district") -> pd.DataFrame:
    """Supply per 1,000 demand within reach (``fca_<type>``), by unit, town and district.

    Demand per home = residents × ``demand_share`` (e.g. the 3-6 age share for
    kindergarten places per child). The area value is the demand-weighted mean of the
    homes' 2SFCA ratios (Σ D_i A_i / Σ D_i) × ``per``. ``method="e2sfca"`` uses
    :func:`e2sfca_weights` unless ``weights`` is given. OD rows follow ``homes``. Homes in
    no unit still compete for capacity in step 1 but are left out of every area (reported
    by a ``RepairWarning``).
    """
    u = _check_units(units)
    h = _homes_frame(_drop_unassigned(homes, u), u)   # validates population and units
    known = homes["unit_id"].astype(str).isin(set(u["unit_id"])).to_numpy()
    pop_all = pd.to_numeric(homes["population"], errors="coerce").to_numpy(dtype=float)
    dem_all = np.nan_to_num(pop_all) * float(demand_share)
    if method == "e2sfca" and weights is None:
        weights = e2sfca_weights(max_distance)
    elif method not in ("2sfca", "e2sfca"):
        raise ValueError(f"method must be '2sfca' or 'e2sfca', got {method!r}")
    a = two_step_fca(dem_all, supply, od, max_distance=max_distance, weights=weights)[known]
    dem = dem_all[known]
    f = pd.DataFrame({"unit_id": h["unit_id"], "d": dem, "da": dem * a})
    sums = _level_sums(f, ["d", "da"], u, district_id)
    return _ratio(sums, "da", sums, "d", f"fca_{facility_type}", per)
