"""Residents of the sample: population of every compound and committee."""

from __future__ import annotations

from typing import Any

import numpy as np

from .. import settings
from ._common import BASE_POPULATION, BIG_COMPOUND_POP, POPULATION_EXPONENT


def populate(rng: np.random.Generator, C: dict[str, Any], K: dict[str, Any], scale: float) -> None:
    """Residents and households of every compound and committee (in place).

    The district gets ``BASE_POPULATION × scale ** POPULATION_EXPONENT`` residents. About
    12 % of the committees (at least 2) are set below 5,000, about 7 % (at least 1) above
    12,000, and every committee with a big compound is above; the others share the rest
    in proportion to their floor area within 5,000-12,000 (bisection on the share per
    floor area). Each committee's residents are shared among its compounds by floor area
    (largest remainder), so committees equal the sum of their compounds exactly. Sets
    ``C["population"]``, ``C["households"]``, ``K["population"]``, ``K["households"]``
    and ``K["class"]`` (below / in / above).
    """
    n_comm = len(K["id"])
    total = int(round(BASE_POPULATION * scale ** POPULATION_EXPONENT))
    comm = C["committee"]
    big = C["big"]
    big_pop = min(BIG_COMPOUND_POP, 0.4 * total)  # tiny districts: a smaller big one
    pbig = np.where(big, np.round(big_pop + rng.integers(0, 601, len(big)) * big_pop / BIG_COMPOUND_POP), 0)
    raw = np.bincount(comm, weights=np.where(big, 0, C["cap"]), minlength=n_comm)
    bigc = np.bincount(comm, weights=pbig, minlength=n_comm)
    has_big = bigc > 0
    n_low = max(2, int(round(0.12 * n_comm)))
    n_high = max(1, int(round(0.07 * n_comm)))
    cls = np.full(n_comm, "in", dtype=object)
    free = np.flatnonzero(~has_big & (raw > 0))
    low = free[np.argsort(raw[free], kind="stable")][:n_low]
    cls[low] = "below"
    free = np.setdiff1d(free, low)
    # the crowded committees: urban ones first (居委会 of dense compounds)
    high = free[np.lexsort((-raw[free], ~K["urban"][free]))][:n_high]
    cls[high] = "above"
    cls[has_big] = "above"
    fixed = np.zeros(n_comm)
    fixed[low] = rng.uniform(2800, 4700, len(low))
    fixed[high] = rng.uniform(12600, 14800, len(high))
    rest = (cls == "in") & (raw > 0)
    lo_b = settings.unit_min_pop * rng.uniform(1.03, 1.15, n_comm)[rest]
    hi_b = settings.unit_max_pop * rng.uniform(0.93, 0.985, n_comm)[rest]

    def total_for(k: float) -> float:
        return (fixed.sum() + np.clip(k * raw[rest], lo_b, hi_b).sum()
                + (bigc + k * raw)[has_big].sum())

    if total_for(0.0) > total:
        # a district too small for the designed spread (scale < ~0.5): plain shares
        fixed[:] = 0.0
        rest = ~has_big & (raw > 0)
        lo_b, hi_b = np.zeros(int(rest.sum())), np.full(int(rest.sum()), np.inf)

    k_lo, k_hi = 0.0, 1.0
    while total_for(k_hi) < total and k_hi < 1e6:
        k_hi *= 2
    for _ in range(80):
        mid = 0.5 * (k_lo + k_hi)
        if total_for(mid) < total:
            k_lo = mid
        else:
            k_hi = mid
    k = 0.5 * (k_lo + k_hi)
    target = fixed.copy()
    target[rest] = np.clip(k * raw[rest], lo_b, hi_b)
    target[has_big] = bigc[has_big] + k * raw[has_big]
    target = np.round(target).astype(np.int64)
    # exact total: the remainder goes to the in-range committees, spread evenly
    diff = total - int(target.sum())
    rr = np.flatnonzero(rest)
    if len(rr) and diff:
        add = np.full(len(rr), diff // len(rr))
        add[: diff % len(rr)] += 1
        target[rr] += add
    # share each committee's target among its compounds by floor area (largest remainder)
    share_t = target - bigc.astype(np.int64)
    w = np.where(big, 0.0, C["cap"])
    wsum = np.bincount(comm, weights=w, minlength=n_comm)
    x = np.where(big, 0.0, share_t[comm] * w / np.where(wsum[comm] > 0, wsum[comm], 1))
    base = np.floor(x).astype(np.int64)
    rem = share_t - np.bincount(comm, weights=base, minlength=n_comm).astype(np.int64)
    frac = x - base
    o = np.lexsort((-frac, comm))
    start = np.searchsorted(comm[o], np.arange(n_comm))
    rank = np.arange(len(o)) - start[comm[o]]
    plus = np.zeros(len(o), dtype=np.int64)
    plus[o] = (rank < rem[comm[o]]) & ~big[o]
    pop = np.where(big, pbig, base + plus).astype(np.int64)
    C["population"] = pop
    C["households"] = np.where(pop > 0, np.maximum(1, np.round(pop / rng.uniform(2.45, 2.75, len(pop)))), 0).astype(np.int64)
    K["population"] = np.bincount(comm, weights=pop, minlength=n_comm).astype(np.int64)
    K["households"] = np.bincount(comm, weights=C["households"], minlength=n_comm).astype(np.int64)
    K["class"] = np.select([K["population"] < settings.unit_min_pop,
                            K["population"] > settings.unit_max_pop], ["below", "above"], "in").astype(object)

