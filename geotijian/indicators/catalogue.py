"""The indicator catalogue (指标体系) and the filled-in value path (填报).

Definitions are read from the packaged ``indicators.csv`` (72 check-up indicators with
their source and confidence, see ``shared/reference/NOTES.md``), ``indicators_2024.csv``
(the definitions the 2024 national list added or changed), geotijian's own rows in
``indicators_local.csv`` (intersection density, building density, imagery ratios, the
eight survey dimensions) and one generated row per facility type for coverage
(``cov_<type>``), provision per 1,000 residents (``per1000_<type>``) and the two-step
floating catchment supply ratio (``fca_<type>``).

A study's catalogue is one **edition** (:mod:`geotijian.indicators.editions`: which
definitions the year's list holds, with its wording, level, reference values and sources)
plus the generated facility rows, the packaged definitions it includes by code and its own
indicators (特色指标), with its reference overrides (``[indicators]`` in ``study.toml``):
see :func:`indicator_catalogue`.

Reference values are parsed into an operator and a number: ``">8.0 (GB 55014-2021
cl.2.1.3)"`` → (``>``, 8.0); ``">=70 (不宜小于70%)"`` → (``>=``, 70); a bare number takes
its operator from the direction (``>=`` when higher is better, ``<=`` when lower is
better); text without a leading number (``"no national threshold found ..."``) is kept
as ``reference_text`` with no numeric reference.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import data, settings
from ..errors import ConfigError, LayerError
from ..io.text import read_table
from .editions import definition_id, edition_table

__all__ = [
    "CATALOGUE_COLUMNS", "DIMENSIONS", "SURVEY_ITEMS", "CATALOGUE_VERSION",
    "indicator_catalogue", "indicator_definitions", "parse_reference", "read_filled_values", "park_classes",
    "facility_walk_distances",
]

#: The default edition (``settings.indicator_edition``) when this module was written; kept
#: for scripts that read it. A study's edition is in its catalogue's ``edition`` column.
CATALOGUE_VERSION = "2024"

#: The eight dimensions of the Jiading 2024 work plan (S41), in their official order.
DIMENSIONS = ("宜居共建", "安全韧性", "品质更新", "绿色低碳", "交通便捷", "多元共享", "精细共治", "智慧高效")

#: Survey item column → (dimension, indicator code).
SURVEY_ITEMS = {
    "sat_livable": ("宜居共建", "s_sat_livable"),
    "sat_safety": ("安全韧性", "s_sat_safety"),
    "sat_renewal": ("品质更新", "s_sat_renewal"),
    "sat_green": ("绿色低碳", "s_sat_green"),
    "sat_transport": ("交通便捷", "s_sat_transport"),
    "sat_inclusive": ("多元共享", "s_sat_inclusive"),
    "sat_governance": ("精细共治", "s_sat_governance"),
    "sat_smart": ("智慧高效", "s_sat_smart"),
}

CATALOGUE_COLUMNS = [
    "code", "version", "name_zh", "name_en", "level", "national_group", "dimension", "unit",
    "direction", "reference_text", "reference_op", "reference_value", "method", "computable",
    "computation_note", "source", "confidence", "origin",
    # editions (geotijian.indicators.editions)
    "edition", "indicator_level", "seq", "list", "core", "reference_source", "reference_confidence",
    "record", "rollup", "supplier", "fill_in", "definition",
]

DIRECTIONS = ("higher_better", "lower_better")
_OPS = {">=": ">=", "<=": "<=", ">": ">", "<": "<", "=": "=", "≥": ">=", "≤": "<=", "＞": ">",
        "＜": "<", "不小于": ">=", "不大于": "<=", "不低于": ">=", "不高于": "<="}
_REF_RE = re.compile(r"^\s*(>=|<=|≥|≤|>|<|=|＞|＜|不小于|不大于|不低于|不高于)?\s*([-+]?\d+(?:\.\d+)?)\s*(%|％)?")

# Dimension of the generated per-facility rows (coverage / per 1,000 / 2SFCA).
_FACILITY_DIMENSION = {
    "bus_stop": "交通便捷", "metro_station": "交通便捷", "bus_terminal": "交通便捷",
    "bicycle_parking": "交通便捷", "car_parking": "交通便捷", "residents_bicycle_parking": "交通便捷",
    "residents_car_parking": "交通便捷", "ev_charging": "绿色低碳",
    "community_service_station": "精细共治", "community_service_centre": "精细共治",
    "subdistrict_office": "精细共治", "judicial_office": "精细共治", "property_management": "精细共治",
    "police_station": "安全韧性", "fire_station": "安全韧性",
    "waste_collection_point": "绿色低碳", "waste_collection_station": "绿色低碳",
    "recycling_point": "绿色低碳", "waste_transfer_station": "绿色低碳",
    "fresh_market": "宜居共建", "convenience_store": "宜居共建", "community_commercial_outlets": "宜居共建",
    "shopping_centre": "宜居共建", "restaurant": "宜居共建", "bank_branch": "宜居共建",
    "telecom_outlet": "宜居共建", "post_office": "宜居共建", "parcel_delivery": "宜居共建",
    "public_toilet": "宜居共建", "park_15min": "宜居共建", "park_10min": "宜居共建", "park_5min": "宜居共建",
    "park_service_ge5000": "宜居共建", "park_service_2000_5000": "宜居共建",
}

# Codes produced by geotijian.indicators.compute (besides the generated cov_/per1000_/fca_).
COMPUTED_CODES = frozenset({
    "u_park_radius_coverage", "u_park_green_pc", "c_community_sports_area_pc",
    "u_road_network_density", "g_intersection_density", "t_bus_stop_coverage",
    "g_bus_stop_300_coverage", "t_metro_coverage", "g_building_density", "g_far",
    "g_old_compound_share", "g_complaint_rate", "d_15min_circle_attainment",
    "g_green_cover_ratio", "g_impervious_ratio", "s_satisfaction",
    *(code for _, code in SURVEY_ITEMS.values()),
    # 2024 城区 / 街区 items computed by geotijian.indicators.urban
    "d_middle_school_coverage", "u_fire_station_coverage", "u_shelter_area_pc", "u_fuel_station_safety",
    "u_greenway_coverage", "u_sports_area_pc", "u_culture_area_pc",
})


def parse_reference(text: Any, direction: str = "higher_better") -> tuple[str, float]:
    """Parse a reference value into ``(operator, number)``.

    Parameters
    ----------
    text : str or number
        ``">8.0 (GB 55014-2021 cl.2.1.3)"``, ``">=70 (不宜小于70%)"``, ``">80%"``, ``"0"``,
        ``100``. A percentage stays in percent (80, not 0.8).
    direction : str
        ``higher_better`` or ``lower_better``: the operator of a bare number (``>=`` or ``<=``).

    Returns
    -------
    tuple
        ``(op, value)``; ``("", nan)`` when the text holds no leading number.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return "", float("nan")
    if isinstance(text, (int, float, np.integer, np.floating)) and not isinstance(text, bool):
        return (">=" if direction.startswith("higher") else "<="), float(text)
    m = _REF_RE.match(str(text))
    if not m:
        return "", float("nan")
    op = _OPS[m.group(1)] if m.group(1) else (">=" if direction.startswith("higher") else "<=")
    return op, float(m.group(2))


def _norm_direction(value: Any) -> str:
    s = str(value).strip().lower()
    for d in DIRECTIONS:
        if s.startswith(d):
            return d
    return ""


def facility_walk_distances(catalogue: pd.DataFrame | None = None) -> dict[str, float]:
    """Walking distance (m) per facility type.

    From ``catalogue`` (columns ``code``, ``walk_distance_m``; e.g.
    ``geotijian.facilities.facility_catalogue()``) or, when ``None``, from the packaged
    ``facilities.csv`` (first number of ``walk_distance_m``: ``"<=300"`` → 300; GB
    50180-2018 App. C as recorded there). Types without a distance are left out.
    """
    if catalogue is None:
        catalogue = pd.read_csv(data.path("facilities.csv"), dtype=str)
    out: dict[str, float] = {}
    for code, dist in zip(catalogue["code"], catalogue["walk_distance_m"], strict=True):
        if isinstance(dist, (int, float, np.integer, np.floating)):
            if np.isfinite(dist):
                out[str(code)] = float(dist)
            continue
        m = re.search(r"\d+(?:\.\d+)?", str(dist)) if isinstance(dist, str) else None
        if m:
            out[str(code)] = float(m.group(0))
    return out


def _facility_rows() -> pd.DataFrame:
    fac = pd.read_csv(data.path("facilities.csv"), dtype=str)
    dists = facility_walk_distances(fac)
    rows = []
    for code, name, prov in zip(fac["code"], fac["name_zh"], fac["provision"].fillna(""), strict=True):
        dim = _FACILITY_DIMENSION.get(code, "多元共享")
        required = str(prov).startswith("required")
        if code in dists:
            d = int(dists[code])
            rows.append(dict(
                code=f"cov_{code}", name_zh=f"{name}步行{d}米覆盖率",
                name_en=f"share of residents within {d} m walk of a {code}", level="community/district",
                national_group="设施完善", shanghai_dimension_suggested=dim, unit="%",
                direction="higher_better",
                # no published coverage target exists: the study sets one ([indicators]
                # coverage_reference or [indicators.reference]), never an unstated 100 %
                reference_value=None, provision="required" if required else "optional",
                spatial_method="network_coverage",
                computation_note=f"population-weighted share of homes whose network distance to the nearest "
                                 f"{code} is <= {d} m (walk distance from facilities.csv)",
                source="facilities.csv (GB 50180-2018 App. C)",
                confidence="no published coverage target: set by the study"))
        rows.append(dict(
            code=f"per1000_{code}", name_zh=f"每千人{name}数量", name_en=f"{code} per 1,000 residents",
            level="community/district", national_group="设施完善", shanghai_dimension_suggested=dim,
            unit="个/千人", direction="higher_better", reference_value=None, spatial_method="points",
            computation_note="facilities located in the area / residents x 1000", source="geotijian",
            confidence="no reference"))
        rows.append(dict(
            code=f"fca_{code}", name_zh=f"{name}千人供给能力(2SFCA)",
            name_en=f"{code} capacity per 1,000 demand within reach (2SFCA)", level="community/district",
            national_group="设施完善", shanghai_dimension_suggested=dim, unit="/千人",
            direction="higher_better", reference_value=None, spatial_method="network_fca",
            computation_note="two-step floating catchment (Luo & Wang 2003; E2SFCA Luo & Qi 2009) on network "
                             "distances; demand-weighted mean of home ratios x 1000",
            source="geotijian", confidence="no reference"))
    return pd.DataFrame(rows)


def _normalise(raw: pd.DataFrame, origin: str, version: str) -> pd.DataFrame:
    df = raw.copy()
    if "dimension" not in df.columns:
        df["dimension"] = df.get("shanghai_dimension_suggested", "")
    if "method" not in df.columns:
        df["method"] = df.get("spatial_method", "fill_in")
    if "reference_text" not in df.columns:
        df["reference_text"] = df.get("reference_value", None)
    for col in CATALOGUE_COLUMNS:
        if col not in df.columns:
            df[col] = None
    df["direction"] = [_norm_direction(d) for d in df["direction"]]
    parsed = [parse_reference(t, d) for t, d in zip(df["reference_text"], df["direction"], strict=True)]
    df["reference_op"] = [p[0] for p in parsed]
    df["reference_value"] = np.array([p[1] for p in parsed], dtype=float)
    df["reference_text"] = [None if (t is None or (isinstance(t, float) and np.isnan(t))) else str(t)
                            for t in df["reference_text"]]
    df["version"] = [version if v is None or (isinstance(v, float) and np.isnan(v)) else str(v)
                     for v in df["version"]]
    df["origin"] = origin
    df["method"] = df["method"].fillna("fill_in").astype(str)
    return df


def _mark_computable(df: pd.DataFrame) -> pd.DataFrame:
    code = df["code"].astype(str)
    df["computable"] = (code.isin(COMPUTED_CODES) | code.str.startswith(("cov_", "per1000_", "fca_"))).astype(bool)
    return df


def _read_overrides(overrides: Any) -> dict[str, Any]:
    if overrides is None:
        return {}
    if isinstance(overrides, Mapping):
        return dict(overrides)
    if isinstance(overrides, pd.DataFrame):
        return {"custom": overrides}
    p = Path(overrides)
    if not p.exists():
        raise ConfigError("indicators", f"override file not found: {p}", "check the path")
    if p.suffix.lower() == ".toml":
        with p.open("rb") as f:
            raw = tomllib.load(f)
        raw = raw.get("indicators", raw)
        base = p.parent
        if isinstance(raw.get("custom"), str):
            raw["custom"] = base / raw["custom"]
        return raw
    return {"custom": p}


def _read_table(source: Any, key: str) -> pd.DataFrame:
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if isinstance(source, list):
        return pd.DataFrame(source)
    p = Path(source)
    if not p.exists():
        raise ConfigError(key, f"file not found: {p}", "check the path (relative to the study.toml)")
    return read_table(p, f"{key} ({p.name})", dtype=object)


_LEVEL_ZH = {"housing": "住房", "community": "小区(社区)", "district": "街区", "city": "城区"}
_DEFINITION_FILES = (("indicators.csv", "packaged"), ("indicators_2024.csv", "packaged"),
                     ("indicators_local.csv", "geotijian"))
_OVERRIDE_KEYS = ("edition", "reference", "coverage_reference", "custom", "include", "filled", "version")


def _level_zh(level: Any) -> str:
    """住房 / 小区(社区) / 街区 / 城区 of a definition's ``level`` (``community/district`` → 小区(社区))."""
    s = str(level).strip()
    if s in _LEVEL_ZH.values():
        return s
    return _LEVEL_ZH.get(s.split("/")[0].strip().lower(), "小区(社区)")


def _with_definition_ids(df: pd.DataFrame) -> pd.DataFrame:
    df["definition"] = [definition_id(c, n, u, d) for c, n, u, d in
                        zip(df["code"], df["name_zh"], df["unit"], df["direction"], strict=True)]
    return df


def indicator_definitions() -> pd.DataFrame:
    """Every packaged indicator definition, of every edition, with its fingerprint.

    Returns
    -------
    DataFrame
        :data:`CATALOGUE_COLUMNS` without edition attributes (``edition`` empty), one row
        per code: the packaged ``indicators.csv``, ``indicators_2024.csv`` and
        ``indicators_local.csv`` rows and the generated facility rows; ``definition`` is
        :func:`~geotijian.indicators.editions.definition_id`.
    """
    parts = [_normalise(pd.read_csv(data.path(f), dtype=object), origin, "") for f, origin in _DEFINITION_FILES]
    parts.append(_normalise(_facility_rows(), "geotijian", ""))
    defs = pd.concat(parts, ignore_index=True)
    dup = defs["code"].duplicated()
    if dup.any():  # a packaging error
        raise ValueError(f"indicator code {defs.loc[dup, 'code'].iloc[0]!r} is defined twice in the packaged files")
    defs["indicator_level"] = [_level_zh(v) for v in defs["level"]]
    return _with_definition_ids(_mark_computable(defs))[CATALOGUE_COLUMNS]


def _custom_rows(table: pd.DataFrame, existing: set[str]) -> pd.DataFrame:
    key = "indicators.custom"
    if "dimension" not in table.columns and "shanghai_dimension_suggested" in table.columns:
        table = table.rename(columns={"shanghai_dimension_suggested": "dimension"})
    for col in ("code", "name_zh", "unit", "direction", "dimension"):
        if col not in table.columns:
            raise ConfigError(key, f"特色指标 table has no column {col!r}",
                              "columns: code, name_zh, name_en, dimension, unit, direction, reference_value, "
                              "method, source (and, for fill-in: indicator_level, record, rollup, supplier)")
    seen: set[str] = set()
    for i, row in enumerate(table.to_dict("records")):
        code = str(row["code"]).strip() if row["code"] is not None else ""
        where = f"{key}[{code or i}]"
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_]*", code):
            raise ConfigError(where, f"row {i + 2}: indicator code {row['code']!r} is not a valid code",
                              "use letters, digits and _ (e.g. x_jiading_riverside), starting with a letter")
        if code in existing:
            raise ConfigError(where, f"indicator {code!r} is already in the packaged catalogue",
                              "change its reference under [indicators.reference], include it by code under "
                              "[indicators] include, or give the 特色指标 a new code")
        if code in seen:
            raise ConfigError(where, f"indicator {code!r} appears twice", "keep one row per code")
        seen.add(code)
        if _norm_direction(row["direction"]) == "":
            raise ConfigError(where, f"direction {row['direction']!r} is not higher_better / lower_better",
                              "write higher_better or lower_better")
        if row["dimension"] not in DIMENSIONS:
            raise ConfigError(where, f"dimension {row['dimension']!r} is not one of the eight",
                              f"use one of: {', '.join(DIMENSIONS)}")
        ref = row.get("reference_value")
        if ref is not None and not (isinstance(ref, float) and np.isnan(ref)) and str(ref).strip():
            op, val = parse_reference(ref, _norm_direction(row["direction"]))
            if not op:
                raise ConfigError(where, f"reference value {ref!r} is not a number",
                                  "write e.g. 80, >=80 or <=0.5")
        _check_fill_fields(row, where)
    out = table.copy()
    out["code"] = out["code"].astype(str).str.strip()
    if "level" not in out.columns:
        out["level"] = "community"
    if "method" not in out.columns and "spatial_method" not in out.columns:
        out["method"] = "fill_in"
    if "source" not in out.columns:
        out["source"] = "study config (特色指标)"
    if "confidence" not in out.columns:
        out["confidence"] = "study"
    if "national_group" not in out.columns:
        out["national_group"] = "特色指标"
    return out


def _blank(v: Any) -> bool:
    return v is None or (isinstance(v, float) and np.isnan(v)) or str(v).strip() == ""


def _check_fill_fields(row: Mapping[str, Any], where: str) -> None:
    """A 特色指标's fill-in fields, when given: indicator_level, record, rollup, supplier."""
    from .editions import INDICATOR_LEVELS, RECORDS, ROLLUPS

    for col, allowed in (("indicator_level", INDICATOR_LEVELS), ("record", RECORDS), ("rollup", ROLLUPS)):
        v = row.get(col)
        if not _blank(v) and str(v).strip() not in allowed:
            raise ConfigError(f"{where}.{col}", f"{v!r} is not allowed", f"use one of: {', '.join(allowed)}")


def _edition_rows(defs: pd.DataFrame, et: pd.DataFrame, edition: str) -> pd.DataFrame:
    """The definitions an edition holds, with the edition's wording, level and references."""
    missing = sorted(set(et["code"]) - set(defs["code"]))
    if missing:  # a packaging error
        raise ValueError(f"edition {edition} lists undefined indicator(s) {', '.join(missing)}")
    cat = defs.set_index("code").loc[et["code"]].reset_index()
    e = et.reset_index(drop=True)
    for col in ("name_zh", "indicator_level", "seq", "list", "core", "reference_source", "reference_confidence",
                "record", "rollup", "supplier", "fill_in"):
        cat[col] = e[col].to_numpy()
    cat["national_group"] = np.where(e["national_group"] != "", e["national_group"], cat["national_group"])
    parsed = [parse_reference(v, d) if v != "" else ("", float("nan"))
              for v, d in zip(e["reference_value"], cat["direction"], strict=True)]
    cat["reference_op"] = [p[0] for p in parsed]
    cat["reference_value"] = np.array([p[1] for p in parsed], dtype=float)
    cat["reference_text"] = [f"{v} ({s})" if v and s else (v or s or None)
                             for v, s in zip(e["reference_value"], e["reference_source"], strict=True)]
    return cat


def _generated_rows(defs: pd.DataFrame, codes: Iterable[str], list_name: str) -> pd.DataFrame:
    """Rows outside the edition table (facility rows, included definitions): their own references."""
    cat = defs[defs["code"].isin(set(codes))].copy()
    implied = cat["reference_text"].fillna("").str.contains("implied ideal")
    cat["reference_source"] = np.where(implied, "implied ideal (no published target)",
                                       np.where(cat["reference_op"] != "", cat["source"].fillna(""), ""))
    cat["reference_confidence"] = np.where(implied, "implied",
                                           np.where(cat["reference_op"] != "", cat["confidence"].fillna(""), ""))
    cat["list"] = list_name
    for col in ("seq", "core", "record", "rollup", "supplier"):
        cat[col] = ""
    cat["fill_in"] = "no"
    return cat


def _fill_defaults(cat: pd.DataFrame) -> pd.DataFrame:
    """Fill-in fields of study rows: a fill-in 特色指标 is one value per community by default,
    summed when it counts things, not rolled up when it is a rate."""
    for i in np.flatnonzero((cat["list"] == "study").to_numpy()):
        fill = str(cat.at[i, "method"]).startswith("fill_in")
        if _blank(cat.at[i, "fill_in"]):
            cat.at[i, "fill_in"] = "yes" if fill else "no"
        if cat.at[i, "fill_in"] != "yes":
            continue
        if _blank(cat.at[i, "record"]):
            cat.at[i, "record"] = {"住房": "building", "街区": "town", "城区": "district"}.get(
                cat.at[i, "indicator_level"], "community")
        if _blank(cat.at[i, "rollup"]):
            rate = str(cat.at[i, "unit"]).startswith("%") or "/" in str(cat.at[i, "unit"])
            cat.at[i, "rollup"] = "none" if rate else "sum"
        if _blank(cat.at[i, "supplier"]):
            cat.at[i, "supplier"] = "town" if cat.at[i, "record"] == "town" else \
                "区相关部门" if cat.at[i, "record"] == "district" else "community"
    return cat


def _coverage_references(cat: pd.DataFrame, setting: Any, version: str) -> pd.DataFrame:
    """Apply ``[indicators] coverage_reference``: the study's coverage target per facility type.

    ``setting`` is a number (percent of residents within the type's walking distance, for
    every facility type the catalogue marks ``required``) or a table ``{default = 90,
    kindergarten = 95, bus_stop = ""}`` (``default`` for the required types, a type code
    for any type, ``""`` for no reference). The rows get ``>=`` the value, marked as a
    study setting in ``reference_text`` and ``origin`` (``+coverage``).
    """
    if setting is None:
        return cat
    key = "indicators.coverage_reference"
    table = dict(setting) if isinstance(setting, Mapping) else {"default": setting}
    cat = cat.reset_index(drop=True)
    fac = pd.read_csv(data.path("facilities.csv"), dtype=str)
    provision = dict(zip(fac["code"], fac["provision"].fillna(""), strict=True))
    cov = cat["code"].astype(str).str.startswith("cov_") & cat["code"].str[4:].isin(set(provision))
    types = {c[4:]: i for i, c in zip(cat.index[cov], cat.loc[cov, "code"], strict=True)}
    # the default goes to required types without a published target (an edition's own
    # reference for a coverage indicator stays; a type named explicitly always gets its value)
    published = cat["reference_op"].astype(str).ne("") & ~cat["reference_source"].astype(str).str.startswith(
        "implied") if "reference_source" in cat.columns else cat["reference_op"].astype(str).ne("")
    required = {c[4:] for i, c in zip(cat.index[cov], cat.loc[cov, "code"], strict=True)
                if provision.get(c[4:]) == "required" and not published.iat[i]}
    wanted: dict[str, Any] = {}
    if "default" in table:
        wanted.update(dict.fromkeys(sorted(required), table["default"]))
    for t, v in table.items():
        if t == "default":
            continue
        if t not in types:
            close = difflib.get_close_matches(str(t), list(types), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(f"{key}.{t}", f"no coverage indicator for facility type {t!r}",
                              "use a facility type code with a walking distance, or default" + hint)
        wanted[t] = v
    for t, v in wanted.items():
        i = types[t]
        if v is None or (isinstance(v, str) and not v.strip()):
            continue
        op, val = parse_reference(v, "higher_better")
        if not op or not 0 <= val <= 100:
            raise ConfigError(f"{key}.{t}" if t in table else key, f"coverage reference {v!r} is not a percentage",
                              "write a share of residents in percent, e.g. 90 or \">=85\"")
        cat.at[i, "reference_op"], cat.at[i, "reference_value"] = op, val
        cat.at[i, "reference_text"] = f"{v} (study setting: [indicators] coverage_reference)"
        cat.at[i, "reference_source"] = "研究设定 ([indicators] coverage_reference)"
        cat.at[i, "reference_confidence"] = "study"
        cat.at[i, "version"] = version
        cat.at[i, "origin"] = cat.at[i, "origin"] + "+coverage"
    return cat


def indicator_catalogue(overrides: Any = None, *, edition: str | None = None) -> pd.DataFrame:
    """The indicator catalogue of one edition, with a study's overrides and 特色指标 applied.

    Parameters
    ----------
    overrides : dict, str, Path or DataFrame, optional
        The study's ``[indicators]`` section: ``{"edition": "2024", "reference": {code: value},
        "include": [codes], "custom": table}`` where a reference value is a number
        (operator from the direction) or a string such as ``">=85"``, ``include`` adds
        packaged definitions outside the edition (e.g. a 2023 rate kept as a local
        indicator), ``coverage_reference`` (90 or ``{default = 90, <type> = value}``) is the
        study's coverage target (percent of residents within walking distance) of the
        ``cov_<type>`` rows, every required type without a published target (``default``) or
        per type: no published standard gives one (GB 50180-2018 gives the walking
        distances), so without it coverage is computed but not judged (``reference`` per code
        wins over it); and ``custom`` is a CSV/Excel path, DataFrame or list of dicts of new
        indicators (columns ``code, name_zh, name_en, dimension, unit, direction,
        reference_value, method, source``; for a fill-in one also ``indicator_level``
        住房/小区(社区)/街区/城区, ``record`` building/compound/community/town/district,
        ``rollup`` count/sum/none, ``supplier`` community/town/<department>). A ``.toml``
        path is read for its ``[indicators]`` table; another path or a DataFrame is taken
        as the 特色指标 table. ``"version"`` (str) labels the overridden definitions
        (default ``"<edition>-study"``).
    edition : str, optional
        The edition (:func:`~geotijian.indicators.editions.list_editions`); default the
        ``edition`` of ``overrides``, else ``settings.indicator_edition`` (``"2024"``).

    Returns
    -------
    DataFrame
        One row per indicator, columns :data:`CATALOGUE_COLUMNS`, sorted by code: the
        edition's indicators (``list`` national or local) with the edition's wording
        (``name_zh``), level (``indicator_level``), number (``seq``), reference value with
        ``reference_source`` and ``reference_confidence``, fill-in fields (``record``,
        ``rollup``, ``supplier``, ``fill_in``), the generated facility rows (local), the
        included definitions and the 特色指标 (``list`` study). ``reference_value`` is
        numeric (percent indicators in percent), ``reference_op`` one of ``>, >=, <, <=,
        =`` or ``""`` (no reference), ``computable`` whether
        :func:`geotijian.indicators.compute_indicators` can produce it (otherwise its
        values are filled in: fill-in workbooks, :func:`read_filled_values`);
        ``definition`` the definition's fingerprint.

    Raises
    ------
    ConfigError
        Naming the key: an unknown edition, an unknown code in ``reference`` or
        ``include``, an unparseable reference, a 特色指标 that duplicates a packaged code or
        has a wrong direction, dimension or fill-in field.
    """
    ov = _read_overrides(overrides)
    unknown_keys = set(ov) - set(_OVERRIDE_KEYS)
    if unknown_keys:
        k = sorted(unknown_keys)[0]
        raise ConfigError(f"indicators.{k}", "unknown key", f"allowed keys: {', '.join(_OVERRIDE_KEYS)}")
    edition = str(edition if edition is not None else ov.get("edition") or settings.indicator_edition)
    et = edition_table(edition)
    defs = indicator_definitions()
    include = ov.get("include") or []
    if isinstance(include, str) or not all(isinstance(c, str) for c in include):
        raise ConfigError("indicators.include", "must be a list of indicator codes", 'write include = ["u_cluster_size"]')
    for code in include:
        if code not in set(defs["code"]):
            close = difflib.get_close_matches(code, list(defs["code"]), n=3)
            raise ConfigError("indicators.include", f"unknown indicator code {code!r}",
                              "use a packaged code (geotijian.indicators.indicator_definitions())" +
                              (f" (did you mean {', '.join(close)}?)" if close else ""))
    generated = defs["code"].str.startswith(("cov_", "per1000_", "fca_")) & ~defs["code"].isin(set(et["code"]))
    extra = [c for c in dict.fromkeys(include) if c not in set(et["code"])]
    parts = [_edition_rows(defs, et, edition), _generated_rows(defs, defs.loc[generated, "code"], "local"),
             _generated_rows(defs, extra, "study")]
    cat = pd.concat([p for p in parts if len(p)], ignore_index=True)
    cat["version"] = edition
    cat["edition"] = edition
    study_version = str(ov.get("version", f"{edition}-study"))
    if ov.get("custom") is not None:
        custom = _custom_rows(_read_table(ov["custom"], "indicators.custom"), set(defs["code"]))
        c = _normalise(custom, "study", study_version)
        c["indicator_level"] = [_level_zh(v) if _blank(il) else str(il).strip()
                                for v, il in zip(c["level"], c["indicator_level"], strict=True)]
        c["list"] = "study"
        c["edition"] = edition
        c["reference_source"] = np.where(c["reference_op"] != "", c["source"].fillna("study config"), "")
        c["reference_confidence"] = np.where(c["reference_op"] != "", "study", "")
        cat = pd.concat([cat, _with_definition_ids(_mark_computable(c))], ignore_index=True)
    cat = _coverage_references(cat, ov.get("coverage_reference"), study_version)
    refs = ov.get("reference") or {}
    if not isinstance(refs, Mapping):
        raise ConfigError("indicators.reference", "must be a table: code = value", "write u_park_green_pc = 8.0")
    idx = pd.Index(cat["code"])
    for code, value in refs.items():
        key = f"indicators.reference.{code}"
        if code not in idx:
            close = difflib.get_close_matches(str(code), list(cat["code"]), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError(key, f"unknown indicator code {code!r} in edition {edition}",
                              "use a code of the study's catalogue (or add it under [indicators] include)" + hint)
        i = idx.get_loc(code)
        direction = cat.at[i, "direction"] or "higher_better"
        if value is None or (isinstance(value, str) and value.strip() == ""):
            op, val = "", float("nan")
        else:
            op, val = parse_reference(value, direction)
            if not op:
                raise ConfigError(key, f"reference value {value!r} is not a number",
                                  "write e.g. 8.0, \">=80\" or \"<=0\"")
        cat.at[i, "reference_op"] = op
        cat.at[i, "reference_value"] = val
        cat.at[i, "reference_text"] = f"{value} (study override)"
        cat.at[i, "reference_source"] = "study override ([indicators.reference])"
        cat.at[i, "reference_confidence"] = "study"
        cat.at[i, "version"] = study_version
        cat.at[i, "origin"] = cat.at[i, "origin"] + "+override"
    cat = _fill_defaults(_mark_computable(cat.reset_index(drop=True)))
    cat["reference_value"] = cat["reference_value"].astype(float)
    for col in ("seq", "list", "core", "reference_source", "reference_confidence", "record", "rollup", "supplier",
                "fill_in"):
        cat[col] = cat[col].fillna("").astype(str)
    return cat[CATALOGUE_COLUMNS].sort_values("code", kind="stable").reset_index(drop=True)


def park_classes(table: Any = None) -> pd.DataFrame:
    """Park size classes and their service radii (the park-coverage configuration table).

    Parameters
    ----------
    table : DataFrame, list of dict or path, optional
        Columns ``class_code, min_area_m2, max_area_m2, radius_m`` (``max_area_m2`` empty =
        no upper bound). Default: the packaged ``park_classes.csv``, the 2021 MOHURD
        check-up definition (S15): parks 2,000-5,000 m² serve 300 m, parks ≥ 5,000 m² serve
        500 m. The newer 公园绿化活动场地 version's thresholds are unknown (NOTES (b)).

    Returns
    -------
    DataFrame
        Validated classes sorted by ``min_area_m2``.
    """
    df = _read_table(table if table is not None else data.path("park_classes.csv"), "indicators.park_classes")
    for col in ("class_code", "min_area_m2", "radius_m"):
        if col not in df.columns:
            raise ConfigError("indicators.park_classes", f"no column {col!r}",
                              "columns: class_code, min_area_m2, max_area_m2, radius_m")
    if "max_area_m2" not in df.columns:
        df["max_area_m2"] = np.nan
    for col in ("min_area_m2", "max_area_m2", "radius_m"):
        vals = pd.to_numeric(df[col], errors="coerce")
        bad = vals.isna() & df[col].notna() & (df[col].astype(str).str.strip() != "")
        if col != "max_area_m2":
            bad |= vals.isna()
        if bad.any() or (vals.dropna() < 0).any():
            i = int(np.flatnonzero(bad.to_numpy() | (vals < 0).fillna(False).to_numpy())[0])
            raise ConfigError(f"indicators.park_classes[{df['class_code'].iloc[i]}]",
                              f"{col} {df[col].iloc[i]!r} is not a non-negative number", "write metres / m²")
        df[col] = vals.astype(float)
    df["max_area_m2"] = df["max_area_m2"].fillna(np.inf)
    return df.sort_values("min_area_m2", kind="stable").reset_index(drop=True)


_FILLED_ALIASES = {
    "unit_id": ("unit_id", "单元", "单元编号", "area_id", "unit"),
    "code": ("code", "indicator", "indicator_code", "指标代码", "指标编码"),
    "value": ("value", "数值", "值", "指标值"),
    "level": ("level", "层级"),
}


def read_filled_values(
    path: str | PathLike | pd.DataFrame,
    *,
    catalogue: pd.DataFrame | None = None,
    units: Iterable[str] | pd.DataFrame | None = None,
    towns: Iterable[str] | None = None,
    district_id: str = "district",
) -> pd.DataFrame:
    """Read the 填报 table: values of indicators that are not computed from maps.

    Parameters
    ----------
    path : path or DataFrame
        CSV (UTF-8, with or without BOM) or Excel with columns ``unit_id``, ``code``,
        ``value`` (Chinese headers 单元编号 / 指标代码 / 数值 accepted), optionally ``level``
        (``unit`` by default; ``town`` rows give a town code, ``district`` rows the district
        id in ``unit_id``).
    catalogue : DataFrame, optional
        The study's catalogue (default :func:`indicator_catalogue`); codes must be in it.
    units : iterable of str or DataFrame, optional
        Known unit IDs (or the units layer); unknown IDs are an error when given.
    towns : iterable of str, optional
        Known town codes, for ``level = town`` rows.
    district_id : str
        ID of the district-level rows.

    Returns
    -------
    DataFrame
        ``level, area_id, code, value`` sorted by level, area and code.

    Raises
    ------
    LayerError
        Naming the file, the spreadsheet row (header = row 1) and the fix: an unknown
        indicator code, an unknown unit ID, a value that is not a number, a duplicate row.
    """
    label = f"filled values ({Path(path).name})" if not isinstance(path, pd.DataFrame) else "filled values"
    if isinstance(path, pd.DataFrame):
        table = path.copy()
    else:
        p = Path(path)
        if not p.exists():
            raise LayerError(label, f"file not found: {p}", fix="check [indicators] filled = ... in study.toml")
        table = read_table(p, label, dtype=object)
    rename = {}
    for canon, names in _FILLED_ALIASES.items():
        for c in table.columns:
            if str(c).strip() in names or str(c).strip().lower() in names:
                rename[c] = canon
                break
    table = table.rename(columns=rename)
    for col in ("unit_id", "code", "value"):
        if col not in table.columns:
            raise LayerError(label, f"no column {col!r} (columns: {', '.join(map(str, table.columns))})",
                             fix="use the header unit_id, code, value")
    if "level" not in table.columns:
        table["level"] = "unit"
    table["level"] = table["level"].fillna("unit").astype(str).str.strip().replace(
        {"单元": "unit", "街镇": "town", "区": "district"})
    cat = catalogue if catalogue is not None else indicator_catalogue()
    known_codes = set(cat["code"])
    rows = np.arange(len(table)) + 2  # spreadsheet rows: header is row 1

    def fail(mask: np.ndarray, problem: str, fix: str) -> None:
        bad = np.flatnonzero(mask)
        if len(bad):
            i = bad[0]
            raise LayerError(label, problem.format(**{k: table[k].iloc[i] for k in ("unit_id", "code", "value",
                                                                                      "level")}),
                             feature=f"row {rows[i]}", feature_id=table["unit_id"].iloc[i], count=len(bad),
                             fix=fix)

    table["code"] = table["code"].astype(str).str.strip()
    table["unit_id"] = table["unit_id"].astype(str).str.strip()
    fail(~table["level"].isin(["unit", "town", "district"]).to_numpy(), "level {level!r} is not unit/town/district",
         "write unit, town or district (or leave it empty for unit)")
    fail(~table["code"].isin(known_codes).to_numpy(), "unknown indicator code {code!r}",
         "use a code from indicator_catalogue(), or declare it as a 特色指标 under [indicators] custom")
    values = pd.to_numeric(table["value"].astype(str).str.strip().str.replace(",", "", regex=False)
                           .str.rstrip("%"), errors="coerce")
    fail((values.isna() | ~np.isfinite(values)).to_numpy(), "value {value!r} is not a number",
         "write a plain number (e.g. 12 or 85.5) in the value column; leave the row out if unknown")
    if units is not None:
        ids = set(units["unit_id"].astype(str)) if isinstance(units, pd.DataFrame) else {str(u) for u in units}
        fail(((table["level"] == "unit") & ~table["unit_id"].isin(ids)).to_numpy(), "unknown unit ID {unit_id!r}",
             "use a unit_id of this year's units layer (units.gpkg)")
    if towns is not None:
        tids = {str(t) for t in towns}
        fail(((table["level"] == "town") & ~table["unit_id"].isin(tids)).to_numpy(), "unknown town code {unit_id!r}",
             "use a town_code of the towns layer")
    fail(((table["level"] == "district") & (table["unit_id"] != district_id)).to_numpy(),
         "district row has area {unit_id!r}", f"write {district_id!r} as the area of district rows")
    fail(table.duplicated(["level", "unit_id", "code"]).to_numpy(), "duplicate value for {code!r} in {unit_id!r}",
         "keep one row per area and indicator")
    out = pd.DataFrame({"level": table["level"], "area_id": table["unit_id"], "code": table["code"],
                        "value": values.astype(float)})
    return _sort_long(out)


LEVEL_ORDER = {"unit": 0, "town": 1, "district": 2}


def _sort_long(df: pd.DataFrame) -> pd.DataFrame:
    order = df["level"].map(LEVEL_ORDER).fillna(9)
    return (df.assign(_o=order).sort_values(["_o", "area_id", "code"], kind="stable")
            .drop(columns="_o").reset_index(drop=True))
