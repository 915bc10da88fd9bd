"""Will a study fit in this machine's memory? An estimate from the input sizes, checked early.

A whole city given as one study (200,000 compounds, a 750 MB GeoPackage) runs for twenty
minutes and is then killed, or swaps for an hour, in the last steps. After loading, before
the heavy steps, :func:`check_memory` estimates the run's peak resident memory from the
sizes of its inputs (:func:`study_size`) with a linear model measured on the sample
district at several scales (``benchmarks/bench_memory.py``), compares it with the memory
the run may use (:func:`memory_budget`) and stops with the way to split the study when it
would not fit.

Override: ``[study] memory_check = false`` (run anyway) or ``memory_budget_gb = N`` (the
budget to compare with) in ``study.toml``; ``settings.configure(memory_check=False)`` or
``memory_budget_gb=...`` from Python; ``geotijian run --no-memory-check``.
"""

from __future__ import annotations

import os
from typing import Any


from . import settings
from .errors import StudyTooLargeError

__all__ = ["MEMORY_MODEL", "study_size", "size_from_files", "estimate_memory", "available_memory",
           "memory_budget", "check_memory"]

#: Peak resident memory of a run (bytes) = ``base`` + Σ coefficient × size.
#:
#: Measured with ``benchmarks/bench_memory.py`` (Linux VmHWM per step) on the sample district
#: at scale 1 (1,199 compounds, 14,655 road segments: peak 441 MiB) and scale 18.4 (23,721
#: compounds, 123,012 buildings, 295,262 road segments, 8,069 facilities, 14 types: peak
#: 2,083 MiB, in the outputs step; coverage 1,196 MiB). The growth between the two is split
#: by the step it appears in: loading and units (337 MiB) half to buildings, half to
#: compounds; coverage (502 MiB) to road segments (the walk network); the outputs step
#: (809 MiB: service areas, coverage-gap layer, map) half to road segments, half to
#: homes × types. ``base`` makes scale 1 exact; scale 18.4 comes out at 2,089 MiB.
#: Inputs of another shape (many more buildings per compound, OSM) are estimated by the
#: same per-feature costs. Re-measure after a change to a heavy step.
MEMORY_MODEL: dict[str, float] = {
    "base": 371e6,            # interpreter, libraries, catalogues, small layers
    "compounds": 7_845.0,     # per compound (polygons, population, units)
    "buildings": 1_512.0,     # per building
    "road_segments": 3_387.0,  # per road feature (walk network, snapping, service areas)
    "homes_x_types": 1_345.0,  # per home × facility type (distances, gaps, map rows)
    "facilities": 0.0,        # per facility (within the road-segment share at the sample's ratio)
}

SIZE_KEYS = ("compounds", "buildings", "road_segments", "facilities", "types", "homes_x_types")


def study_size(data: Any, *, types: int) -> dict[str, int]:
    """The sizes the memory model uses, from a loaded ``StudyData``.

    Parameters
    ----------
    data : StudyData
        After ``load_study`` (compounds, buildings, roads, facilities).
    types : int
        Facility types assessed.

    Returns
    -------
    dict
        ``compounds, buildings, road_segments, facilities, types, homes_x_types`` (counts).
    """
    def n(layer: Any) -> int:
        return 0 if layer is None else len(layer)

    homes = n(data.compounds)
    return {"compounds": homes, "buildings": n(data.buildings), "road_segments": n(data.roads),
            "facilities": n(data.facilities), "types": int(types), "homes_x_types": homes * int(types)}


def size_from_files(cfg: Any, *, types: int) -> dict[str, int] | None:
    """The same sizes counted in the input files, before reading them (GDAL feature counts).

    Returns None when a needed layer comes from OSM or cannot be counted cheaply.
    """
    import pyogrio

    counts: dict[str, int] = {}
    for role, key in (("compounds", "compounds"), ("buildings", "buildings"), ("roads", "road_segments"),
                      ("facilities", "facilities")):
        total = 0
        for src in cfg.layers_of(role):
            try:
                info = pyogrio.read_info(src.path, layer=src.layer, force_feature_count=True)
            except Exception:  # not countable without reading (or unreadable: read_layer will say why)
                return None
            total += max(int(info.get("features", 0)), 0)
        if not cfg.layers_of(role) and role in ("compounds", "roads"):
            return None  # from OSM: known only after loading
        counts[key] = total
    counts["types"] = int(types)
    counts["homes_x_types"] = counts["compounds"] * int(types)
    return counts


def estimate_memory(size: dict[str, int], model: dict[str, float] | None = None) -> float:
    """Estimated peak resident memory of a run (bytes) for the sizes of :func:`study_size`."""
    m = MEMORY_MODEL if model is None else model
    return float(m["base"] + sum(m[k] * float(size.get(k, 0)) for k in m if k != "base"))


def available_memory() -> float | None:
    """Memory available to a new allocation now (bytes): ``MemAvailable`` of /proc/meminfo,
    capped by a cgroup (container) limit; None where neither is known."""
    avail = None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    avail = float(line.split()[1]) * 1024
                    break
    except OSError:
        pass
    if avail is None:
        try:
            avail = float(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            avail = None
    for path, used_path in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                            ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                             "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            with open(path, encoding="ascii") as f:
                limit = f.read().strip()
            with open(used_path, encoding="ascii") as f:
                used = float(f.read().strip())
        except OSError:
            continue
        if limit.isdigit() and float(limit) < 1 << 60:
            room = float(limit) - used
            avail = room if avail is None else min(avail, room)
        break
    return avail


def memory_budget(budget_gb: float | None = None) -> tuple[float | None, str]:
    """The memory a run may use (bytes) and where the figure comes from.

    ``budget_gb`` (or ``settings.memory_budget_gb``) when given; else
    ``settings.memory_budget_share`` (80 %) of :func:`available_memory`.
    """
    gb = budget_gb if budget_gb is not None else settings.memory_budget_gb
    if gb is not None:
        return float(gb) * 2**30, f"memory_budget_gb = {gb:g}"
    avail = available_memory()
    if avail is None:
        return None, "available memory unknown"
    share = settings.memory_budget_share
    return avail * share, f"{share:.0%} of the {avail / 2**30:.1f} GB available now"


def _gb(x: float) -> str:
    return f"{x / 2**30:.1f} GB" if x >= 2**30 else f"{x / 2**20:,.0f} MB"


def check_memory(data: Any = None, *, types: int, name: str = "study", budget_gb: float | None = None,
                 check: bool | None = None, size: dict[str, int] | None = None, towns: Any = None,
                 when: str = "after loading, before the heavy steps") -> dict:
    """Stop a study that would not fit in memory, before its heavy steps.

    Parameters
    ----------
    data : StudyData, optional
        The loaded study (or give ``size``).
    types : int
        Facility types assessed.
    name : str
        Study name, for the message.
    budget_gb : float, optional
        Memory the run may use (GB); default :func:`memory_budget`.
    check : bool, optional
        False records the estimate without stopping; default ``settings.memory_check``.
    size : dict, optional
        Sizes (:func:`size_from_files`) when ``data`` is not loaded yet.
    towns : GeoDataFrame or DataFrame, optional
        Towns (``town_code``, ``name``) for the advice; default ``data.towns``.
    when : str
        When the check runs, for the message.

    Returns
    -------
    dict
        ``size``, ``estimate_gb``, ``budget_gb`` (None when unknown), ``budget_from`` and
        ``checked``: recorded in run.json.

    Raises
    ------
    StudyTooLargeError
        When the estimate exceeds the budget: the message gives the sizes, the estimate,
        the budget, how to split the study (its towns, ``run_many``) and how to override.
    """
    check = settings.memory_check if check is None else bool(check)
    size = study_size(data, types=types) if size is None else size
    est = estimate_memory(size)
    budget, source = memory_budget(budget_gb)
    out = {"size": size, "estimate_gb": round(est / 2**30, 2),
           "budget_gb": None if budget is None else round(budget / 2**30, 2), "budget_from": source,
           "checked": bool(check and budget is not None)}
    if not out["checked"] or est <= budget:
        return out
    towns = getattr(data, "towns", None) if towns is None else towns
    raise StudyTooLargeError(
        f"study '{name}' would need about {_gb(est)} of memory at its peak ({size['compounds']:,} compounds, "
        f"{size['buildings']:,} buildings, {size['road_segments']:,} road segments, {size['facilities']:,} "
        f"facilities, {size['compounds']:,} homes × {size['types']} facility types) but may use {_gb(budget)} "
        f"({source}); stopped {when}. Fix: {_split_advice(data, towns, size)}; or, on a "
        "machine with more memory, set [study] memory_budget_gb = <GB> (or memory_check = false, or "
        "`geotijian run --no-memory-check`) to run it anyway")


def _split_advice(data: Any, towns: Any, size: dict[str, int]) -> str:
    how = ("one study.toml per town: its [layers.boundary] the town's polygon, its committees, compounds and "
           "buildings clipped to the town, its roads and facilities to the town plus up to 1 km (so those just "
           "across the edge still serve it; features farther out are refused), then geotijian.run_many([...]) "
           "runs them one after another or on a Dask cluster")
    if towns is None or len(towns) < 2:
        return f"split it into towns (街镇) or smaller areas: {how}"
    largest = ""
    compounds = getattr(data, "compounds", None)
    if compounds is not None and hasattr(towns, "geometry") and "town_code" in towns.columns:
        import geopandas as gpd

        pts = gpd.GeoDataFrame(geometry=compounds.geometry.representative_point(), crs=compounds.crs)
        counts = gpd.sjoin(pts, towns[["town_code", "geometry"]], how="left",
                           predicate="within")["town_code"].value_counts()
        if len(counts):
            code = counts.index[0]
            names = dict(zip(towns["town_code"], towns["name"])) if "name" in towns.columns else {}
            label = f"{names[code]} ({code})" if code in names else str(code)
            largest = f"; the largest, {label}, holds {int(counts.iloc[0]):,} of the {size['compounds']:,} compounds"
    return f"split it by town: the study has {len(towns)} towns{largest}. Write {how}"
