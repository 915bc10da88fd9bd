"""Numbers and phrases of the report, formatted the way Chinese reports print them.

Values keep the precision their unit needs (``%`` one decimal, persons and counts whole
with thousands separators, per-capita areas two decimals); a missing value prints ``—``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = ["num", "value_text", "persons", "count", "pct", "share_pct", "CN_NUMBERS", "cn_index",
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
    if u.startswith(("人", "户", "个", "栋", "套", "处", "条", "件", "座", "所")):
        return 0
    if abs(v) >= 1000:
        return 0
    if abs(v) >= 100:
        return 1
    return 2


def value_text(v: Any, unit: str | None = None, *, with_unit: bool = True) -> str:
    """An indicator value in its unit's precision: ``96.4%``, ``2,174人``, ``8.25 m2/person``."""
    if _missing(v):
        return "—"
    d = _decimals(unit, float(v))
    s = num(v, d, strip=d > 1)
    u = (unit or "").strip()
    if not with_unit or not u or u in ("score", "—"):
        return s
    if u.startswith("%"):
        return f"{s}%"
    if ord(u[0]) > 0x2E80:
        return f"{s}{u.split()[0]}"
    return f"{s} {u.split()[0]}"


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
