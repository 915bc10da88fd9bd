"""Editions of the indicator system (指标体系版本) and definition identities.

Indicator lists change every year (the 2021 list of 65; the 2023 wording; the 2024
national basic list of 61: 住房 10, 小区(社区) 12, 街区 8, 城区 31; 2025's 60 plus provincial
and local ones). geotijian keeps two things apart:

* a **definition** (one row of the packaged ``indicators*.csv``, keyed by ``code``): what
  is measured, its unit and direction. A definition never changes: a changed definition
  is a new code (e.g. the 2023 ``c_elderly_facility_gap`` counts facilities, the 2024
  ``c_elderly_missing_compounds`` counts 小区 without one);
* an **edition** (``data/editions/<edition>.csv``): which definitions a year's list
  holds, with the list's own wording, level (住房 / 小区(社区) / 街区 / 城区), national group,
  number, reference value with its source and confidence, and how the value is supplied
  when it is not computed (``record``: one fill-in row per building, compound, community,
  town or district; ``rollup``: ``count`` of 是 answers, ``sum`` or ``none``;
  ``supplier``: ``community``, ``town`` or a district department).

Every definition carries a fingerprint (:func:`definition_id`, ``"<code>#<8 hex>"`` of
its code, name, unit and direction). The ledger and the year-over-year table store it and
refuse to compare two values whose fingerprints differ (:func:`check_same_definitions`).

Sources: ``L2024`` is a third-party transcription of the 2024 national list (see
``data/editions/index.csv``); its names and reference values are *unconfirmed* and marked
so in every row.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

import pandas as pd

from .. import data
from ..errors import ConfigError, LayerError

__all__ = [
    "EDITION_COLUMNS", "INDICATOR_LEVELS", "RECORDS", "ROLLUPS", "list_editions", "edition_table",
    "definition_id", "check_same_definitions",
]

#: Columns of an edition table (``data/editions/<edition>.csv``).
EDITION_COLUMNS = ["seq", "code", "name_zh", "indicator_level", "national_group", "list", "core",
                   "reference_value", "reference_source", "reference_confidence", "record", "rollup",
                   "supplier", "fill_in"]
#: The four check-up levels of the 2024 framework (住房 → 小区(社区) → 街区 → 城区).
INDICATOR_LEVELS = ("住房", "小区(社区)", "街区", "城区")
#: What one fill-in row is, from the smallest to the largest.
RECORDS = ("building", "compound", "community", "town", "district")
#: How values roll up 栋 → 小区 → 社区 → 街镇 → 区: count of 是 answers, sum, or not additive.
ROLLUPS = ("count", "sum", "none")
#: Suppliers that are levels of the three-level linkage; anything else is a department name.
LEVEL_SUPPLIERS = ("community", "town")


def list_editions() -> pd.DataFrame:
    """The packaged editions: ``edition, title, national_count, source, confidence, notes``."""
    return pd.read_csv(data.path("editions/index.csv"), dtype=str, keep_default_na=False)


def edition_table(edition: str) -> pd.DataFrame:
    """The indicators of one edition, validated.

    Parameters
    ----------
    edition : str
        An edition of :func:`list_editions` (``"2023"``, ``"2024"``).

    Returns
    -------
    DataFrame
        :data:`EDITION_COLUMNS`, in the edition's order (national list by number, then the
        local indicators). Empty strings where a field does not apply.

    Raises
    ------
    ConfigError
        ``indicators.edition`` for an unknown edition, naming the known ones.
    """
    known = list(list_editions()["edition"])
    if str(edition) not in known:
        raise ConfigError("indicators.edition", f"unknown edition {edition!r}",
                          f"use one of: {', '.join(known)}")
    t = pd.read_csv(data.path(f"editions/{edition}.csv"), dtype=str, keep_default_na=False)
    missing = [c for c in EDITION_COLUMNS if c not in t.columns]
    if missing:  # a packaging error, not a user error
        raise ValueError(f"edition table {edition}.csv lacks column(s) {', '.join(missing)}")
    bad = ~t["indicator_level"].isin(INDICATOR_LEVELS) | t["code"].duplicated()
    fill = t["fill_in"] == "yes"
    bad |= fill & (~t["record"].isin(RECORDS) | ~t["rollup"].isin(ROLLUPS) | (t["supplier"] == ""))
    if bad.any():
        raise ValueError(f"edition table {edition}.csv: invalid row for {t.loc[bad, 'code'].iloc[0]!r}")
    return t[EDITION_COLUMNS].reset_index(drop=True)


def definition_id(code: str, name_zh: str, unit: str, direction: str) -> str:
    """Fingerprint of one definition: ``"<code>#<8 hex>"``.

    The hash covers the code, the definition's Chinese name, its unit and direction
    (stripped), not its reference value, source or notes: a new reference or a better
    note is the same definition; a new name, unit or direction is not.
    """
    text = "|".join(str(x).strip() for x in (code, name_zh, unit, direction))
    return f"{str(code).strip()}#{hashlib.sha1(text.encode('utf-8')).hexdigest()[:8]}"


def check_same_definitions(last: pd.DataFrame, this: pd.DataFrame, *, what: str,
                           codes: Iterable[str] | None = None) -> None:
    """Refuse to compare values of two years whose definitions differ.

    Parameters
    ----------
    last, this : DataFrame
        Each with columns ``code`` (or ``indicator_code``) and ``definition``
        (:func:`definition_id`). Rows with an empty definition (a table written before
        definitions were recorded) are not checked.
    what : str
        What is being compared, for the message (``"last year's ledger"``).
    codes : iterable of str, optional
        Only these codes (default: every code in both tables).

    Raises
    ------
    LayerError
        Naming the first code defined differently in the two years, both fingerprints,
        and the fix (a changed definition needs a new code).
    """
    def pairs(t: pd.DataFrame) -> pd.DataFrame:
        code_col = "code" if "code" in t.columns else "indicator_code"
        if "definition" not in t.columns:
            return pd.DataFrame({"code": pd.Series(dtype=str), "definition": pd.Series(dtype=str)})
        p = pd.DataFrame({"code": t[code_col].astype(str), "definition": t["definition"].fillna("").astype(str)})
        return p[p["definition"] != ""].drop_duplicates()

    a, b = pairs(last), pairs(this)
    both = a.merge(b, on="code", suffixes=("_last", "_this"))
    if codes is not None:
        both = both[both["code"].isin(set(codes))]
    diff = both[both["definition_last"] != both["definition_this"]].sort_values("code")
    if len(diff):
        r = diff.iloc[0]
        raise LayerError(what, f"indicator {r['code']!r} is defined differently: {r['definition_last']} then, "
                               f"{r['definition_this']} now ({len(diff)} indicator(s) differ); values of different "
                               "definitions are not compared",
                         fix="a changed definition needs a new code: give the new definition its own code "
                             "(特色指标 under [indicators] custom) and keep the old code for the old one")
