"""Numbers and phrases of the report, formatted the way Chinese reports print them.

Values keep the precision their unit needs (``%`` one decimal, persons and counts whole
with thousands separators, per-capita areas two decimals); a missing value prints ``—``.
"""

from __future__ import annotations

import math
import re
from typing import Any

import numpy as np

from ...units_of_measure import UNIT_ZH, unit_zh

__all__ = ["unit_zh", "plain_zh", "flag_reason_zh", "UNIT_ZH", "num", "value_text", "persons", "count", "pct", "share_pct", "CN_NUMBERS", "cn_index",
           "JUDGEMENT_ZH", "STATUS_ZH", "LEVEL_ZH"]

JUDGEMENT_ZH = {"meets": "达标", "falls_short": "未达标", "no_reference": "无参考值", "no_value": "无数据"}
STATUS_ZH = {"new": "新增", "persisting": "持续", "resolved": "已解决"}
LEVEL_ZH = {"unit": "社区体检单元", "town": "街镇", "district": "区"}
CN_NUMBERS = "一二三四五六七八九十"


def cn_index(i: int) -> str:
    """1 → 一, 10 → 十, 12 → 十二 (headings (一)、(二) ...)."""
    if i <= 10:
        return CN_NUMBERS[i - 1]
    if i < 20:
        return "十" + CN_NUMBERS[i - 11]
    tens, ones = divmod(i, 10)
    return CN_NUMBERS[tens - 1] + "十" + (CN_NUMBERS[ones - 1] if ones else "")


def _missing(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(np.isnan(float(v)))
    except (TypeError, ValueError):
        return False


def num(v: Any, decimals: int = 2, *, strip: bool = True) -> str:
    """A number with thousands separators and ``decimals`` places (trailing zeros dropped
    when ``strip``); ``—`` when missing."""
    if _missing(v):
        return "—"
    x = float(v)
    if math.isinf(x):
        return "∞"
    s = f"{x:,.{decimals}f}"
    if strip and "." in s:
        s = s.rstrip("0").rstrip(".")
    if s in ("-0", "−0"):
        s = "0"
    return s


def _decimals(unit: str | None, v: float) -> int:
    u = (unit or "").strip()
    if u.startswith("%"):
        return 1
    if u.startswith(("人", "户", "个", "栋", "套", "处", "条", "件", "座", "所")) and "/" not in u:
        return 0  # counts; a rate (个/千人, 件/千人) keeps its decimals
    if abs(v) >= 1000:
        return 0
    if abs(v) >= 100:
        return 1
    return 2


#: in free text, a Chinese unit followed by a catalogue's English gloss (``2个 seats``)
_TEXT_GLOSS = re.compile(r"([\u4e00-\u9fff])\s+(?:dwellings|buildings|seats|persons|people|households|places|beds)\b")


def plain_zh(text: Any) -> str:
    """Text of the run's tables (suggestions) with the English glosses of units dropped
    (``现状2个 seats`` → ``现状2个``), ``km`` in Chinese, Chinese quotation marks and brackets."""
    s = "" if text is None or (isinstance(text, float) and math.isnan(text)) else str(text)
    s = _TEXT_GLOSS.sub(r"\1", s)
    s = re.sub(r"(?<=[\d.])km(?![A-Za-z/²2])", "公里", s)
    s = re.sub(r'"([^"]*)"', "“\\1”", s)  # Chinese quotation marks and brackets around Chinese text
    return re.sub(r"\(([^()]*[\u4e00-\u9fff][^()]*)\)", "（\\1）", s)


def value_text(v: Any, unit: str | None = None, *, with_unit: bool = True) -> str:
    """An indicator value in its unit's precision: ``96.4%``, ``2,174人``, ``8.25平方米/人``."""
    if _missing(v):
        return "—"
    d = _decimals(unit, float(v))
    s = num(v, d, strip=False)  # one precision per unit: 0.38 and 0.40, not 0.4
    u = unit_zh(unit)
    if not with_unit or not u:
        return s
    if u.startswith("%"):
        return f"{s}%"
    return f"{s}{u}"


_FLAG_ZH = [
    (r"single compound of ([\d,]+) residents \((.*)\)", r"单个小区（\2）即有\1人"),
    (r"one block of ([\d,]+) residents in (\d+) compounds, not divided by roads of the chosen classes",
     r"一个街坊即有\1人（\2个小区），其间无所选等级的道路分隔"),
    (r"([\d,]+) residents: the blocks cannot be grouped under ([\d,]+)", r"\1人，街坊无法分组到\2人以下"),
    (r"town (.*) has only ([\d,]+) residents", r"街镇\1仅有\2人"),
    (r"committee \S+ ?(.*?) has ([\d,]+) residents and no neighbour in its town \(cut off by water, rail or the "
     r"boundary\)", r"居委会\1有\2人，在本街镇内没有相邻单元（被河流、铁路或边界隔断）"),
    (r"the blocks have ([\d,]+) residents and no neighbour in its town \(cut off by water, rail or the boundary\)",
     r"街坊共\1人，在本街镇内没有相邻单元（被河流、铁路或边界隔断）"),
    (r"([\d,]+) residents: merging with any neighbour would exceed ([\d,]+)", r"\1人，与任一相邻单元合并都将超过\2人"),
    (r"([\d,]+) residents: the blocks around cannot be regrouped in range", r"\1人，周边街坊无法在范围内重组"),
    (r"in (\d+) parts separated by water, rail or other units", r"被河流、铁路或其他单元分隔为\1块"),
]


def flag_reason_zh(reason: Any) -> str:
    """A unit's ``flag_reason`` (English, from :func:`geotijian.units.build_units`) in
    Chinese; parts it does not know stay as they are."""
    import re

    if reason is None or (isinstance(reason, float) and math.isnan(reason)):
        return ""
    out = []
    for part in str(reason).split("; "):
        for pat, rep in _FLAG_ZH:
            if re.fullmatch(pat, part.strip()):
                part = re.sub(pat, rep, part.strip())
                break
        out.append(part)
    return "；".join(p for p in out if p)


def persons(v: Any) -> str:
    """Residents: ``2,174人``."""
    return "—" if _missing(v) else f"{num(round(float(v)), 0)}人"


def count(v: Any, unit: str = "项") -> str:
    return "—" if _missing(v) else f"{num(int(v), 0)}{unit}"


def pct(v: Any, decimals: int = 1) -> str:
    """A percentage value already in % (``96.37`` → ``96.4%``)."""
    return "—" if _missing(v) else f"{float(v):.{decimals}f}%"


def share_pct(part: float, whole: float, decimals: int = 1) -> str:
    """``part / whole`` as a percentage, ``—`` when ``whole`` is 0."""
    if not whole:
        return "—"
    return f"{100.0 * part / whole:.{decimals}f}%"
