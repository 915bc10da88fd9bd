"""The area a report speaks for: the whole district, or one town (街镇) of it."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd

from .inputs import ReportInputs

__all__ = ["Scope", "district_scope", "town_scope"]


@dataclass
class Scope:
    """``level`` ``district`` or ``town``; ``area_id`` its ID in the tables; ``name`` its
    Chinese name; ``units`` the check-up unit IDs inside it; ``towns`` the town codes."""

    level: str
    area_id: str
    name: str
    units: set[str] = field(default_factory=set)
    towns: list[str] = field(default_factory=list)

    @property
    def is_town(self) -> bool:
        return self.level == "town"

    @property
    def areas(self) -> set[str]:
        """Every area ID whose rows belong to the scope (units, towns, the district)."""
        out = set(self.units) | set(self.towns)
        out.add(self.area_id)
        return out

    def rows(self, df: pd.DataFrame | None, col: str = "area_id") -> pd.DataFrame:
        """The rows of ``df`` about this scope's areas (all rows for the district)."""
        if df is None:
            return pd.DataFrame()
        if not self.is_town or col not in df.columns:
            return df
        return df[df[col].astype(str).isin(self.areas)]


def district_scope(inp: ReportInputs) -> Scope:
    did = inp.indicator_table.loc[inp.indicator_table["level"] == "district", "area_id"]
    return Scope(level="district", area_id=str(did.iloc[0]) if len(did) else "district", name=inp.title,
                 units=set(inp.units["unit_id"].astype(str)), towns=list(inp.towns["town_code"].astype(str)))


def town_scope(inp: ReportInputs, town_code: str) -> Scope:
    u = inp.units[inp.units["town_code"].astype(str) == str(town_code)]
    return Scope(level="town", area_id=str(town_code), name=inp.town_name(town_code),
                 units=set(u["unit_id"].astype(str)), towns=[str(town_code)])
