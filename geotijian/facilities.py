"""Facility catalogue (GB 50180-2018 life-circle facilities) and OSM POI classification.

The catalogue is the packaged ``geotijian/data/facilities.csv`` (copied from the project's
reference folder, ``source`` and ``confidence`` kept). :func:`facility_catalogue` returns it
as a table with the walking distance parsed to metres and the free-text ``osm_tags`` column
turned into a machine filter (``osm_filter``) in the small language below; users override
distances or add types from a TOML/CSV file or a DataFrame.

Filter language
---------------
::

    filter := clause (";" clause)*        any clause matches  (OR)
    clause := term ("+" term)*            every term matches  (AND)
    term   := key "=" "*"                 key present (non-empty)
            | key "=" v1 ["|" v2 ...]     value is one of v1, v2 ... (OSM multi-values
                                          such as ``isced:level=1;2`` match each part)
            | key "!=" v1 ["|" v2 ...]    value is none of them (absent counts as none)
            | key "~" 'regex'             Python regular expression searched in the value
            | "!" key                     key absent
            | "area" op number            polygon area in m² (op: >=, >, <=, <); points
                                          and lines have area 0

Example: ``amenity=school + isced:level=1; amenity=school + name~'小学'``.

How the catalogue's free text is read (:func:`normalise_osm_tags`), each rule tested:

* ``A or B with C`` → ``A + C; B + C``; ``X / Y`` and ``; or X`` → alternatives;
  ``; match name~'…'`` → AND (``office=government; match name~'司法所'``);
  a leading ``sometimes`` is dropped.
* Parentheses: ``(also T)`` adds the alternative *anchor + T*; ``(legacy: T)`` adds the
  alternative *T*; ``(+ T)`` is optional and dropped; ``(T)`` where T is a tag term
  (``(sport=*)``, ``(access=private)``) is ANDed; ``(area>=5000 m2)`` and
  ``(2000<=area<5000 m2)`` become area terms; anything else (``(approx.)``, ``(PTv2)``,
  ``(public)``) is a note and dropped.
* Prose after a term (``railway=subway_entrance for exits``, ``landuse=grass inside 小区``)
  is dropped; a row with no term at all (``(no reliable OSM tag; …)``) gets an empty
  filter and cannot be classified from OSM (it is reported, not guessed).
* A clause holding only ``name`` terms is a refinement of the row's *anchor*, the first
  term of its first clause: ``amenity=school + isced:level=1; name~'小学'`` reads
  ``…; amenity=school + name~'小学'``. Otherwise a bare name pattern would classify bus
  stops and shops named after a school.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
from pyproj import CRS

from . import settings
from .data import path as data_path
from .io.text import read_text_table
from .errors import ConfigError, LayerError

__all__ = [
    "CATALOGUE_COLUMNS",
    "OSMFilter",
    "classify_pois",
    "facility_catalogue",
    "normalise_osm_tags",
    "parse_filter",
    "parse_walk_distance",
]

CATALOGUE_COLUMNS = ["code", "name_zh", "name_en", "life_circle", "walk_distance_m",
                     "osm_filter", "source", "confidence"]

_QUOTED = r"'[^']*'"
_KEY = r"[A-Za-z_][\w:.\-]*"
_TERM_RE = re.compile(
    rf"^\s*(?:(?P<absent>!)\s*(?P<akey>{_KEY})"
    rf"|(?P<area>area)\s*(?P<aop>>=|<=|>|<)\s*(?P<anum>\d+(?:\.\d+)?)"
    rf"|(?P<key>{_KEY})\s*(?P<op>!=|=|~)\s*(?P<val>{_QUOTED}|[^\s;+()']+))"
)


# --------------------------------------------------------------------------- filters
@dataclass(frozen=True)
class Term:
    """One condition of a clause (see the module docstring for the language)."""

    op: str  # "present", "eq", "ne", "re", "absent", "area"
    key: str
    values: tuple[str, ...] = ()
    number: float = 0.0

    def __str__(self) -> str:
        if self.op == "present":
            return f"{self.key}=*"
        if self.op == "eq":
            return f"{self.key}={'|'.join(self.values)}"
        if self.op == "ne":
            return f"{self.key}!={'|'.join(self.values)}"
        if self.op == "re":
            return f"{self.key}~'{self.values[0]}'"
        if self.op == "absent":
            return f"!{self.key}"
        return f"area{self.values[0]}{self.number:g}"


@dataclass(frozen=True)
class OSMFilter:
    """A parsed filter: a tuple of clauses (OR), each a tuple of :class:`Term` (AND)."""

    clauses: tuple[tuple[Term, ...], ...]

    def __str__(self) -> str:
        return "; ".join(" + ".join(str(t) for t in c) for c in self.clauses)

    def __bool__(self) -> bool:
        return bool(self.clauses)

    @property
    def keys(self) -> set[str]:
        """Tag keys the filter reads (``area`` excluded)."""
        return {t.key for c in self.clauses for t in c if t.op != "area"}

    def match(self, tags: pd.DataFrame, area: np.ndarray | None = None) -> np.ndarray:
        """Boolean mask of the rows of ``tags`` (one column per OSM key) that match.

        Parameters
        ----------
        tags : DataFrame
            One column per tag key, values as strings (missing = NaN/None/"").
        area : array of float, optional
            Polygon area of each row in m² (0 for points); needed by ``area`` terms.
        """
        n = len(tags)
        out = np.zeros(n, dtype=bool)
        for clause in self.clauses:
            m = np.ones(n, dtype=bool)
            for term in clause:
                m &= _term_mask(term, tags, area, n)
                if not m.any():
                    break
            out |= m
        return out


def _term_mask(term: Term, tags: pd.DataFrame, area: np.ndarray | None, n: int) -> np.ndarray:
    if term.op == "area":
        a = np.zeros(n) if area is None else np.asarray(area, dtype=float)
        return {">=": a >= term.number, ">": a > term.number,
                "<=": a <= term.number, "<": a < term.number}[term.values[0]]
    if term.key not in tags.columns:
        present = np.zeros(n, dtype=bool)
        col = pd.Series([""] * n, index=tags.index, dtype=object)
    else:
        col = tags[term.key].astype(object).where(tags[term.key].notna(), "").astype(str)
        col = col.str.strip()
        present = (col != "").to_numpy()
    if term.op == "present":
        return present
    if term.op == "absent":
        return ~present
    if term.op == "re":
        return present & col.str.contains(term.values[0], regex=True, na=False).to_numpy()
    values = set(term.values)
    hit = col.isin(values).to_numpy().copy()
    multi = present & ~hit & col.str.contains(";", regex=False).to_numpy()
    if multi.any():  # OSM multi-values "1;2": any part matches
        parts = col[multi].str.split(";")
        hit[np.flatnonzero(multi)] = [any(p.strip() in values for p in ps) for ps in parts]
    return hit if term.op == "eq" else ~hit


def _split_top(text: str, sep: str) -> list[str]:
    """Split on ``sep`` outside single quotes."""
    parts, buf, quoted = [], [], False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == sep and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    return parts


def _parse_term(text: str, *, strict: bool) -> Term | None:
    m = _TERM_RE.match(text)
    if m is None or (strict and m.end() != len(text.rstrip())):
        if strict:
            raise ConfigError("osm_filter", f"cannot read the term {text.strip()!r}",
                              "write key=value, key=v1|v2, key=*, key!=value, key~'regex', "
                              "!key or area>=N (m²); join with + (and) and ; (or)")
        return None
    if m.group("absent"):
        return Term("absent", m.group("akey"))
    if m.group("area"):
        return Term("area", "area", (m.group("aop"),), float(m.group("anum")))
    key, op, val = m.group("key"), m.group("op"), m.group("val")
    if op == "~":
        if not (val.startswith("'") and val.endswith("'")):
            if strict:
                raise ConfigError("osm_filter", f"regex of {key!r} must be quoted: {key}~'...'")
            return None
        pattern = val[1:-1]
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ConfigError("osm_filter", f"bad regular expression {pattern!r}: {exc}") from exc
        return Term("re", key, (pattern,))
    val = val.strip("'")
    if op == "=" and val == "*":
        return Term("present", key)
    values = tuple(v.strip() for v in val.split("|") if v.strip())
    if not values:
        return None
    return Term("eq" if op == "=" else "ne", key, values)


def parse_filter(text: str | OSMFilter | None) -> OSMFilter:
    """Parse a filter written in the language of the module docstring.

    Parameters
    ----------
    text : str
        E.g. ``"amenity=school + isced:level=1; amenity=school + name~'小学'"``. Empty or
        missing text gives an empty filter (matches nothing).

    Raises
    ------
    ConfigError
        A term that is not in the language (the message shows it and the syntax).
    """
    if isinstance(text, OSMFilter):
        return text
    if text is None or (isinstance(text, float) and np.isnan(text)) or not str(text).strip():
        return OSMFilter(())
    clauses = []
    for c in _split_top(str(text), ";"):
        if not c.strip():
            continue
        terms = tuple(t for t in (_parse_term(p, strict=True) for p in _split_top(c, "+")) if t)
        if terms:
            clauses.append(terms)
    return OSMFilter(tuple(clauses))


_AREA_RANGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(<=|<)\s*area\s*(<=|<)\s*(\d+(?:\.\d+)?)")
_AREA_ONE = re.compile(r"^\s*area\s*(>=|<=|>|<)\s*(\d+(?:\.\d+)?)")
_FLIP = {"<=": ">=", "<": ">"}


def normalise_osm_tags(text: str | None) -> str:
    """Turn the catalogue's free-text ``osm_tags`` into a strict filter string.

    The reading rules are listed in the module docstring; the result parses with
    :func:`parse_filter`. Empty when the text names no tag.
    """
    if text is None or (isinstance(text, float) and np.isnan(text)):
        return ""
    s = str(text).strip()
    extra: list[str] = []     # alternatives to add: ("anchor", term) or full clause
    also: list[str] = []

    def paren(m: re.Match) -> str:
        c = m.group(1).strip()
        if c.lower().startswith("also "):
            for part in _split_top(c[5:], ";"):
                t = _parse_term(part, strict=False)
                if t is not None and _TERM_RE.match(part) and \
                        _TERM_RE.match(part).end() == len(part.rstrip()):
                    also.append(str(t))
            return ""
        if c.lower().startswith("legacy:"):
            extra.append(c.split(":", 1)[1].strip())
            return ""
        if c.startswith("+"):
            return ""  # optional qualifier
        r = _AREA_RANGE.match(c)
        if r:
            return f" + area{_FLIP[r.group(2)]}{r.group(1)} + area{r.group(3)}{r.group(4)} "
        r = _AREA_ONE.match(c)
        if r:
            return f" + area{r.group(1)}{r.group(2)} "
        t = _TERM_RE.match(c)
        if t and t.end() == len(c):
            return f" + {c} "
        return ""  # a note

    s = re.sub(r"\(([^()]*)\)", paren, s)
    s = re.sub(r"\s+/\s+", "; ", s)
    s = re.sub(r";\s*match\s+", " + ", s)
    s = re.sub(r"(^|;)\s*(or|sometimes)\s+", r"\1 ", s)
    clauses: list[list[str]] = []
    for raw in _split_top(s, ";") + extra:
        left, _, right = raw.partition(" with ")
        alts = re.split(r"\s+or\s+", left)
        right_terms = [t for t in (_parse_term(p, strict=False) for p in _split_top(right, "+")) if t]
        for alt in alts:
            terms = [t for t in (_parse_term(p, strict=False) for p in _split_top(alt, "+")) if t]
            if terms or right_terms:
                clauses.append([str(t) for t in terms + right_terms])
    clauses = [c for c in clauses if c]
    if not clauses:
        return ""
    anchor = clauses[0][0]
    for term in also:
        clauses.append([anchor, term])
    out = []
    for c in clauses:
        if all(t.startswith("name") for t in c) and not anchor.startswith("name"):
            c = [anchor] + c
        if c not in out:
            out.append(c)
    return "; ".join(" + ".join(c) for c in out)


# ------------------------------------------------------------------------- catalogue
_NUM = re.compile(r"(?<![\d.])(-?\d+(?:\.\d+)?)")


def parse_walk_distance(text: Any) -> float:
    """Walking distance in metres from the catalogue's text (NaN when none is given).

    ``"<=1000 (unconfirmed)"`` → 1000; ``"<=500 (10-min, unconfirmed)"`` → 500;
    ``"manual collection ~400 (max 1000)"`` → 400 (the first figure outside parentheses).
    """
    if text is None:
        return float("nan")
    if isinstance(text, (int, float, np.integer, np.floating)):
        return float(text)
    s = re.sub(r"\([^()]*\)", " ", str(text))
    m = _NUM.search(s) or _NUM.search(str(text))
    return float(m.group(1)) if m else float("nan")


def _read_overrides(overrides: Any) -> pd.DataFrame:
    if isinstance(overrides, pd.DataFrame):
        df = overrides.copy()
    else:
        p = Path(overrides)
        if not p.exists():
            raise ConfigError("facility overrides", f"file {str(p)!r} not found")
        if p.suffix.lower() == ".toml":
            with open(p, "rb") as fh:
                doc = tomllib.load(fh)
            table = doc.get("facilities", doc.get("types", doc))
            if not isinstance(table, dict):
                raise ConfigError("facility overrides", "TOML must hold [types.<code>] tables")
            rows = []
            for code, vals in table.items():
                if not isinstance(vals, dict):
                    raise ConfigError(f"types.{code}", "must be a table of fields "
                                      "(walk_distance_m, name_zh, osm_filter, ...)")
                rows.append({"code": code, **vals})
            df = pd.DataFrame(rows)
        elif p.suffix.lower() == ".csv":
            df = read_text_table(p, f"facility catalogue ({p.name})", dtype=str, keep_default_na=False)
        else:
            raise ConfigError("facility overrides", f"unsupported file type {p.suffix!r}",
                              "use a .toml ([types.<code>] tables) or a .csv with a code column")
    if "code" not in df.columns:
        raise ConfigError("facility overrides", "a 'code' column/key is required")
    return df


def facility_catalogue(overrides: str | PathLike | pd.DataFrame | None = None) -> pd.DataFrame:
    """The facility-type catalogue, one row per type code.

    Parameters
    ----------
    overrides : path or DataFrame, optional
        A TOML file (``[types.kindergarten] walk_distance_m = 300``), a CSV with a ``code``
        column, or a DataFrame: non-empty values replace the packaged ones; new codes add
        types. ``osm_filter`` is given in the filter language; ``osm_tags`` free text is
        normalised as for the packaged rows.

    Returns
    -------
    DataFrame
        Columns :data:`CATALOGUE_COLUMNS` plus ``walk_distance_text`` (the text as written),
        ``osm_tags`` (free text) and the other packaged columns. ``walk_distance_m`` is in
        metres (NaN where the catalogue gives none). Radii mostly recalled from
        GB 50180-2018 App. C and marked so in ``confidence``; verify before formal use.
    """
    raw = pd.read_csv(data_path("facilities.csv"), dtype=str, keep_default_na=False)
    cat = raw.copy()
    cat["walk_distance_text"] = raw["walk_distance_m"]
    cat["walk_distance_m"] = [parse_walk_distance(v) if v.strip() else np.nan
                              for v in raw["walk_distance_m"]]
    cat["osm_filter"] = [normalise_osm_tags(v) for v in raw["osm_tags"]]
    if overrides is not None:
        ov = _read_overrides(overrides)
        ov["code"] = ov["code"].astype(str)
        if ov["code"].duplicated().any():
            raise ConfigError("facility overrides",
                              f"duplicate code {ov.loc[ov['code'].duplicated(), 'code'].iloc[0]!r}")
        cat = cat.set_index("code")
        for _, row in ov.iterrows():
            code = row["code"]
            if code not in cat.index:
                cat.loc[code] = {c: ("" if c != "walk_distance_m" else np.nan) for c in cat.columns}
                cat.loc[code, "source"] = "user override"
                cat.loc[code, "confidence"] = "user"
            for col, val in row.items():
                if col == "code" or val is None or (isinstance(val, str) and not val.strip()) \
                        or (isinstance(val, float) and np.isnan(val)):
                    continue
                if col == "walk_distance_m":
                    d = parse_walk_distance(val)
                    if not np.isfinite(d) or d <= 0:
                        raise ConfigError(f"types.{code}.walk_distance_m",
                                          f"must be a positive distance in metres, got {val!r}")
                    cat.loc[code, "walk_distance_text"] = str(val)
                    cat.loc[code, "walk_distance_m"] = d
                elif col == "osm_tags":
                    cat.loc[code, "osm_tags"] = str(val)
                    if "osm_filter" not in row or not str(row.get("osm_filter") or "").strip():
                        cat.loc[code, "osm_filter"] = normalise_osm_tags(val)
                else:
                    cat.loc[code, col] = val if not isinstance(val, (list, tuple)) else \
                        ";".join(map(str, val))
            if not str(cat.loc[code, "name_zh"]).strip():
                cat.loc[code, "name_zh"] = code
        cat = cat.reset_index()
    for code, f in zip(cat["code"], cat["osm_filter"]):
        try:
            parse_filter(f)
        except ConfigError as exc:
            raise ConfigError(f"types.{code}.osm_filter", exc.problem, exc.fix) from None
    cat["walk_distance_m"] = cat["walk_distance_m"].astype(float)
    rest = [c for c in cat.columns if c not in CATALOGUE_COLUMNS]
    return cat[CATALOGUE_COLUMNS + rest].reset_index(drop=True)


# --------------------------------------------------------------------- classification
def _parse_hstore(s: Any) -> dict[str, str]:
    if not isinstance(s, str) or not s:
        return {}
    return dict(re.findall(r'"((?:[^"\\]|\\.)*)"=>"((?:[^"\\]|\\.)*)"', s))


def _tag_table(pois: pd.DataFrame, keys: set[str]) -> pd.DataFrame:
    """One column per needed key from tag columns, a ``tags`` dict column or ``other_tags``."""
    out = pd.DataFrame(index=pois.index)
    extra = None
    if "tags" in pois.columns:
        extra = pois["tags"].map(lambda d: d if isinstance(d, dict) else {})
    elif "other_tags" in pois.columns:
        extra = pois["other_tags"].map(_parse_hstore)
    for k in sorted(keys):
        col = pois[k] if k in pois.columns else pd.Series(None, index=pois.index, dtype=object)
        if extra is not None:
            more = extra.map(lambda d, k=k: d.get(k))
            col = col.where(col.notna() & (col.astype(str) != ""), more)
        out[k] = col
    return out


def classify_pois(
    pois_gdf: gpd.GeoDataFrame,
    catalogue: pd.DataFrame | None = None,
    *,
    types: list[str] | None = None,
    id_col: str | None = None,
) -> gpd.GeoDataFrame:
    """Classify OSM points of interest into facility types by the catalogue filters.

    Parameters
    ----------
    pois_gdf : GeoDataFrame
        POIs, points or polygons (campuses, parks), with OSM tags as columns (osmnx
        style), or a ``tags`` dict column, or a GDAL ``other_tags`` hstore column.
    catalogue : DataFrame, optional
        From :func:`facility_catalogue` (default: the packaged one).
    types : list of str, optional
        Only these type codes (default: every type with a non-empty filter).
    id_col : str, optional
        POI ID column (default ``facility_id``, ``osmid`` or ``id`` if present, else the
        index).

    Returns
    -------
    GeoDataFrame
        Long format: one row per (POI, matching type), so a supermarket that is both a
        ``fresh_market`` and a ``community_commercial_outlets`` appears twice. Columns
        ``poi_id``, ``type``, ``type_name_zh``, ``matched`` then the input columns (an
        input column with one of these names is renamed ``osm_<name>``, e.g. the
        ``type=multipolygon`` tag of osmnx relations).
        POIs matching no type are **kept** once with ``type`` = NaN and ``matched`` =
        False (nothing is silently lost); filter with ``gdf[gdf.matched]``.
        ``attrs["unclassifiable_types"]`` lists requested types whose filter is empty.
        Sorted by ``type`` then ``poi_id``.
    """
    if not isinstance(pois_gdf, gpd.GeoDataFrame):
        raise LayerError("pois", "must be a GeoDataFrame", fix="read it with geopandas")
    cat = facility_catalogue() if catalogue is None else catalogue
    if types is not None:
        unknown = sorted(set(types) - set(cat["code"]))
        if unknown:
            import difflib

            close = difflib.get_close_matches(unknown[0], list(cat["code"]), n=3)
            hint = f" (did you mean {', '.join(close)}?)" if close else ""
            raise ConfigError("types", f"unknown facility type(s) {unknown}{hint}",
                              "see `geotijian types` (facility_catalogue()['code']) or add them with overrides")
        cat = cat[cat["code"].isin(types)]
    filters = {c: parse_filter(f) for c, f in zip(cat["code"], cat["osm_filter"])}
    empty = [c for c, f in filters.items() if not f]
    filters = {c: f for c, f in filters.items() if f}
    pois = pois_gdf.reset_index(drop=False) if id_col is None else pois_gdf.reset_index(drop=True)
    if id_col is None:
        for cand in ("facility_id", "osmid", "id"):
            if cand in pois_gdf.columns:
                id_col = cand
                break
    if id_col is not None and id_col not in pois.columns:
        raise LayerError("pois", f"ID column {id_col!r} not found")
    if id_col is not None:
        ids = pois[id_col]
    elif isinstance(pois_gdf.index, pd.MultiIndex):  # osmnx features: (element, id)
        ids = pd.Series(["/".join(map(str, t)) for t in pois_gdf.index], index=pois.index)
    else:
        ids = pd.Series(pois_gdf.index.to_numpy(), index=pois.index)
    keys = set().union(*(f.keys for f in filters.values())) if filters else set()
    tags = _tag_table(pois, keys)
    area = np.zeros(len(pois))
    if any(t.op == "area" for f in filters.values() for c in f.clauses for t in c):
        g = pois.geometry
        if pois_gdf.crs is not None and CRS.from_user_input(pois_gdf.crs).is_geographic:
            g = g.to_crs(settings.metric_crs)
        area = g.area.to_numpy()
    rows, codes = [], []
    for code, f in filters.items():
        hit = np.flatnonzero(f.match(tags, area))
        rows.append(hit)
        codes.append(np.full(len(hit), code, dtype=object))
    rows_a = np.concatenate(rows) if rows else np.zeros(0, dtype=int)
    codes_a = np.concatenate(codes) if codes else np.zeros(0, dtype=object)
    unmatched = np.setdiff1d(np.arange(len(pois)), rows_a)
    all_rows = np.concatenate([rows_a, unmatched]).astype(int)
    out = pois.iloc[all_rows].copy()
    if id_col is None:
        out = out.drop(columns=[c for c in (pois_gdf.index.names if
                                            isinstance(pois_gdf.index, pd.MultiIndex) else ["index"])
                                if c in out.columns and c not in pois_gdf.columns])
    clash = [c for c in ("poi_id", "type", "type_name_zh", "matched") if c in out.columns]
    out = out.rename(columns={c: f"osm_{c}" for c in clash})  # e.g. osmnx's relation "type"
    names = dict(zip(cat["code"], cat["name_zh"]))
    type_col = np.concatenate([codes_a, np.full(len(unmatched), None, dtype=object)])
    out.insert(0, "poi_id", ids.iloc[all_rows].to_numpy())
    out.insert(1, "type", type_col)
    out.insert(2, "type_name_zh", [names.get(c) if c is not None else None for c in type_col])
    out.insert(3, "matched", [c is not None for c in type_col])
    out = gpd.GeoDataFrame(out, geometry=pois_gdf.geometry.name, crs=pois_gdf.crs)
    out["_k"] = out["type"].fillna("\uffff")
    out = out.sort_values(["_k", "poi_id"], kind="stable",
                          key=lambda s: s.astype(str)).drop(columns="_k").reset_index(drop=True)
    out.attrs["unclassifiable_types"] = empty
    return out
