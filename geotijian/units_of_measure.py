"""Units of measure as Chinese documents print them.

The indicator and facility catalogues give each indicator's unit as a code (``m2/person``,
``个/km2``, ``km``, ``ratio``) or as a Chinese unit with an English gloss (``栋 buildings``,
``个 seats``). The run's tables (CSV, GeoPackage) keep those codes: scripts and the report
key on them. Text a person reads (problem descriptions, suggestions, the 一表三清单
workbook, the Word report, the maps) shows them in Chinese: ``平方米/人``, ``个/平方公里``,
``公里``, ``栋``; a plain ratio shows no unit.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["UNIT_ZH", "unit_zh"]

#: catalogue unit → Chinese ("" = a plain number)
UNIT_ZH = {
    "m2/person": "平方米/人", "km/km2": "公里/平方公里", "个/km2": "个/平方公里", "persons/km2": "人/平方公里",
    "persons/ha": "人/公顷", "ratio": "", "count": "个", "per1000": "个/千人", "score": "分", "score / %": "分",
    "—": "", "m": "米", "km": "公里", "km/h": "公里/小时", "万m3/h": "万立方米/小时", "m2": "平方米",
    "km2": "平方公里", "ha": "公顷",
}

#: a Chinese unit followed by an English gloss or note (``栋 buildings``, ``个 seats``,
#: ``人/亿元 (unconfirmed)``): the Chinese unit alone
_GLOSS = re.compile(r"([\u4e00-\u9fff])\s+\(?[A-Za-z][A-Za-z ]*\)?$")


def unit_zh(unit: Any) -> str:
    """A catalogue unit as Chinese text shows it.

    ``m2/person`` → ``平方米/人``, ``栋 buildings`` → ``栋``, ``ratio`` → ``""``; ``%`` and
    Chinese units unchanged; a missing unit (None, NaN) → ``""``. Idempotent.
    """
    if unit is None or (isinstance(unit, float) and math.isnan(unit)):
        return ""
    u = str(unit).strip()
    u = UNIT_ZH.get(u, u)
    return _GLOSS.sub(r"\1", u).strip()
