"""The study GeoPackage: every layer and table, styled for QGIS, written atomically.

``write_gpkg(study, path)`` writes one ``.gpkg`` with every spatial layer of the study (in
the study CRS) and the attribute tables (ledger, indicator_table ...) as non-spatial
GeoPackage tables, then adds

* Chinese field aliases in ``gpkg_data_columns`` (GeoPackage schema extension; GDAL ≥ 3.7
  reads them as field alternative names) and in each QML style,
* a ``layer_styles`` table in the schema QGIS uses, one default style per spatial layer,
  so the layers open styled in QGIS,
* the OpenStreetMap attribution in the dataset metadata and in each layer description
  when the study used OSM data.

The file is written beside the target under a temporary name and renamed at the end
(``io.atomic.atomic_path``): a crash leaves the previous file untouched. The bytes are
deterministic: GDAL's timestamps are pinned with ``OGR_CURRENT_DATE`` and the style rows
carry a fixed ``update_time``.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pyogrio

import geopandas as gpd

from ..access import gaps_by_home
from ..errors import LayerError
from ..io.atomic import atomic_path, fixed_gdal_date
from ..io.layers import _HAS_ARROW  # layers written through Arrow when pyarrow is there: ~30 % less CPU
from ..model import StudyData
from . import _common as c
from .styles import layer_qml

__all__ = ["write_gpkg", "start_gpkg", "GpkgDraft", "LAYER_ORDER", "TABLES", "FIXED_TIME"]

LAYER_ORDER = ("boundary", "towns", "committees", "units", "blocks", "compounds", "homes",
               "facilities", "coverage_gaps", "service_areas", "problems", "hotspots")
TABLES = ("indicator_values", "indicator_table", "strengths", "suggestions", "ledger")
FIXED_TIME = "2000-01-01T00:00:00.000Z"
_RESERVED = {"fid", "geom", "geometry"}

_LAYER_STYLES_DDL = """
CREATE TABLE layer_styles (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  f_table_catalog TEXT(256),
  f_table_schema TEXT(256),
  f_table_name TEXT(256),
  f_geometry_column TEXT(256),
  styleName TEXT(30),
  styleQML TEXT,
  styleSLD TEXT,
  useAsDefault BOOLEAN,
  description TEXT,
  owner TEXT(30),
  ui TEXT(30),
  update_time DATETIME DEFAULT CURRENT_TIMESTAMP
)"""

_DATA_COLUMNS_DDL = """
CREATE TABLE gpkg_data_columns (
  table_name TEXT NOT NULL,
  column_name TEXT NOT NULL,
  name TEXT,
  title TEXT,
  description TEXT,
  mime_type TEXT,
  constraint_name TEXT,
  CONSTRAINT pk_gdc PRIMARY KEY (table_name, column_name),
  CONSTRAINT gdc_tn UNIQUE (table_name, name)
)"""


def _ascii_fields(df: pd.DataFrame, layer: str) -> tuple[pd.DataFrame, dict[str, str]]:
    """ASCII, unique field names; returns the frame and {new name: alias}.

    Known fields get their Chinese label as alias; a renamed non-ASCII field keeps its
    original name as alias, so nothing is lost.
    """
    geom = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    rename: dict[str, str] = {}
    aliases: dict[str, str] = {}
    used: set[str] = {geom.lower()} if geom else set()
    for i, col in enumerate(df.columns):
        if col == geom:
            continue
        name = str(col)
        new = re.sub(r"[^0-9A-Za-z_]+", "_", name).strip("_")
        if not new or not re.search(r"[A-Za-z]", new):
            new = f"field_{i}"
        if new[0].isdigit():
            new = "f_" + new
        if new.lower() in _RESERVED:
            new = f"{new}_src"
        base, n = new, 1
        while new.lower() in used:
            n += 1
            new = f"{base}_{n}"
        used.add(new.lower())
        if new != col:
            rename[col] = new
            aliases[new] = name
        else:
            label = c.field_label(name, "zh")
            if label != name:
                aliases[new] = label
    return df.rename(columns=rename), aliases


def _json_or_str(v):
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    if isinstance(v, (list, tuple, dict, set, np.ndarray)):
        return json.dumps(list(v) if isinstance(v, (set, np.ndarray)) else v,
                          ensure_ascii=False, default=str, sort_keys=isinstance(v, dict))
    if isinstance(v, (pd.Timestamp,)):
        return v.isoformat()
    return str(v)


def _plain_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Object columns that are not plain strings (lists, dicts, mixed) become JSON/text."""
    geom = df.geometry.name if isinstance(df, gpd.GeoDataFrame) else None
    out = df.copy()
    for col in out.columns:
        if col == geom:
            continue
        s = out[col]
        if s.dtype == object:
            nonnull = s.dropna()
            if len(nonnull) and not nonnull.map(lambda v: isinstance(v, str)).all():
                out[col] = s.map(_json_or_str).astype(object)
        elif isinstance(s.dtype, pd.CategoricalDtype):
            out[col] = s.astype(object).where(s.notna(), None)
    return out


def _layers_to_write(study: StudyData, keep: Callable[[str], bool] = lambda name: True) -> list[tuple[str, pd.DataFrame, bool]]:
    """(name, frame, spatial) of each layer and table to write, those ``keep(name)``."""
    spatial = study.layers()
    names = [n for n in LAYER_ORDER if n in spatial] + [n for n in spatial if n not in LAYER_ORDER]
    out: list[tuple[str, pd.DataFrame, bool]] = [(n, spatial[n], True) for n in names if keep(n)]
    # coverage gaps once per home (which types are missing, how far), not once per home × type
    out = [(n, gaps_by_home(df) if n == "coverage_gaps" and "facility_type" in df.columns else df, s)
           for n, df, s in out]
    for t in TABLES:
        df = getattr(study, t, None)
        if isinstance(df, pd.DataFrame) and len(df.columns) and keep(t):
            if isinstance(df, gpd.GeoDataFrame):
                df = pd.DataFrame(df.drop(columns=df.geometry.name))
            out.append((t, df, False))
    return out


def write_gpkg(study: StudyData, path: str | Path, *, lang: str = "zh") -> Path:
    """Write every layer and table of a study into one styled GeoPackage.

    Parameters
    ----------
    study : StudyData
        Spatial layers (boundary, towns, committees, units, blocks, compounds,
        facilities, coverage_gaps, service_areas, problems, hotspots and any other that
        exists) are written in ``study.crs``; ``indicator_values``, ``indicator_table``,
        ``strengths``, ``suggestions`` and ``ledger`` as attribute tables.
    path : str or Path
        Target ``.gpkg``; replaced atomically.
    lang : {"zh", "en"}
        Language of the style category labels and layer identifiers.

    Returns
    -------
    Path
        The written file.

    Raises
    ------
    LayerError
        A spatial layer without CRS.

    See Also
    --------
    start_gpkg : the same file written in two parts (the layers that are ready first).
    """
    return start_gpkg(study, path, lang=lang, later=()).finish(study)


class GpkgDraft:
    """A study GeoPackage whose first layers are written (:func:`start_gpkg`).

    :meth:`finish` writes the layers left for later, the aliases and the QGIS styles and
    puts the file in place. (A study's draft is written in its staging folder, which a
    failed run drops whole.)
    """

    def __init__(self, path: Path, work: Path, stack: contextlib.ExitStack, later: tuple[str, ...],
                 lang: str) -> None:
        self.path, self.work, self._stack, self.later, self.lang = path, work, stack, later, lang
        self.prepared: list[tuple[str, pd.DataFrame, bool, dict[str, str]]] = []

    def _write(self, study: StudyData, items: list[tuple[str, pd.DataFrame, bool]]) -> None:
        drawn = {name: _drawing_note(getattr(df, "attrs", {}).get("drawing")) for name, df, _ in items}
        prepared = _prepare(study, items)
        attribution = study.attribution
        li = c.lang_index(self.lang)
        with fixed_gdal_date(FIXED_TIME):
            for name, frame, spatial, aliases in prepared:
                label = c.LAYER_LABELS.get(name, (name, name))
                desc = f"{label[0]} {label[1]} — {study.name} {study.year}"
                if drawn.get(name):
                    desc += f"; {drawn[name]}"
                if attribution:
                    desc += f"; {attribution}"
                kwargs = {}
                if not self.prepared and name == prepared[0][0]:   # the file's first layer
                    meta = {"TITLE": f"{study.name} {study.year} 城市体检 urban check-up",
                            "CRS": str(study.crs), "GENERATOR": "geotijian"}
                    if attribution:
                        meta["ATTRIBUTION"] = attribution
                    kwargs["dataset_metadata"] = meta
                pyogrio.write_dataframe(
                    frame, self.work, layer=name, driver="GPKG",
                    layer_options={"IDENTIFIER": label[li], "DESCRIPTION": desc}, use_arrow=_HAS_ARROW, **kwargs)
        self.prepared += prepared

    def finish(self, study: StudyData) -> Path:
        """Write the layers left for later (from ``study``), the aliases and styles; put
        the file in place and return its path."""
        try:
            items = _layers_to_write(study, lambda name: name in self.later)
            if not items and not self.prepared:
                raise LayerError("study", "has no layer or table to write",
                                 fix="load or compute at least one layer")
            if items:
                self._write(study, items)
            with fixed_gdal_date(FIXED_TIME):
                _post_process(self.work, self.prepared, lang=self.lang, type_colors=c.study_type_colors(study))
        except BaseException:
            self._stack.__exit__(*sys.exc_info())
            raise
        self._stack.close()   # atomic: renamed onto the target
        return self.path


def start_gpkg(study: StudyData, path: str | Path, *, lang: str = "zh",
               later: tuple[str, ...] = ("service_areas",), in_place: bool = False) -> GpkgDraft:
    """Begin a study GeoPackage with every layer and table but ``later``.

    The layers named in ``later`` (the service areas, whose unions a study may still be
    running) are written by :meth:`GpkgDraft.finish` from the study it is given then,
    after the others (so they come last in the file); the aliases and styles cover every
    layer. Until then the file is under a temporary name beside ``path``, or at ``path``
    itself with ``in_place`` (a study's private staging folder, where its report reads
    the first layers meanwhile). Same layers, aliases and styles as :func:`write_gpkg`.

    Parameters
    ----------
    study : StudyData
        As :func:`write_gpkg`.
    path : str or Path
        Target ``.gpkg``.
    lang : {"zh", "en"}
        Language of the style labels and layer identifiers.
    later : tuple of str
        Layers written by :meth:`GpkgDraft.finish`.
    in_place : bool
        Write at ``path`` from the start (it is replaced).

    Returns
    -------
    GpkgDraft
    """
    path = Path(path)
    items = _layers_to_write(study, lambda name: name not in later)
    if not items and not later:
        raise LayerError("study", "has no layer or table to write",
                         fix="load or compute at least one layer")
    stack = contextlib.ExitStack()
    if in_place:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.unlink(missing_ok=True)
        work = path
    else:
        work = stack.enter_context(atomic_path(path))
    draft = GpkgDraft(path, work, stack, tuple(later), lang)
    try:
        if items:
            draft._write(study, items)
    except BaseException:
        stack.__exit__(*sys.exc_info())
        raise
    return draft


def _drawing_note(drawing: object) -> str:
    """How a service-area layer was drawn (its ``attrs["drawing"]``), in Chinese and
    English, for the layer's description; "" when not known."""
    if not isinstance(drawing, dict) or "half_width_m" not in drawing:
        return ""
    hw, stub = float(drawing["half_width_m"]), float(drawing.get("stub_m", 0.0))
    zh = f"步行可达路网两侧{hw:g}米的街道空间" + (f"，略去不长于{stub:g}米的尽端支路" if stub > 0 else "")
    en = f"street space within {hw:g} m of the reached network" + (
        f", dead ends of at most {stub:g} m left out" if stub > 0 else "")
    return f"{zh} ({en})"


def _prepare(study: StudyData, items: list[tuple[str, pd.DataFrame, bool]]
             ) -> list[tuple[str, pd.DataFrame, bool, dict[str, str]]]:
    """Each layer in the study CRS with plain, ASCII columns and its aliases."""
    prepared = []
    for name, df, spatial in items:
        if spatial:
            if df.crs is None:
                raise LayerError(name, "has no CRS", fix="set the study CRS (set_crs) before writing")
            if not df.crs.equals(gpd.GeoSeries(crs=study.crs).crs):
                df = df.to_crs(study.crs)
            if df.geometry.name != "geometry":
                df = df.rename_geometry("geometry")
        frame = _plain_columns(df.reset_index(drop=True))
        frame, aliases = _ascii_fields(frame, name)
        prepared.append((name, frame, spatial, aliases))
    return prepared


def _post_process(tmp: Path, prepared, *, lang: str, type_colors: dict[str, str]) -> None:
    """Add aliases (gpkg_data_columns) and QGIS styles (layer_styles) with plain SQLite."""
    con = sqlite3.connect(tmp)
    try:
        cur = con.cursor()
        tables = {r[0] for r in cur.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if "gpkg_data_columns" not in tables:
            cur.execute(_DATA_COLUMNS_DDL)
        if "gpkg_extensions" not in tables:
            cur.execute("CREATE TABLE gpkg_extensions (table_name TEXT, column_name TEXT, "
                        "extension_name TEXT NOT NULL, definition TEXT NOT NULL, scope TEXT NOT "
                        "NULL, CONSTRAINT ge_tce UNIQUE (table_name, column_name, extension_name))")
        cur.execute("INSERT OR IGNORE INTO gpkg_extensions VALUES (NULL, NULL, 'gpkg_schema', "
                    "'http://www.geopackage.org/spec121/#extension_schema', 'read-write')")
        cur.execute("INSERT OR IGNORE INTO gpkg_extensions VALUES ('gpkg_data_columns', NULL, "
                    "'gpkg_schema', 'http://www.geopackage.org/spec121/#extension_schema', "
                    "'read-write')")
        for name, frame, spatial, aliases in prepared:
            for col, alias in aliases.items():
                en = c.FIELD_LABELS.get(col, (None, None))[1]
                cur.execute("INSERT OR REPLACE INTO gpkg_data_columns (table_name, column_name, "
                            "name, title, description) VALUES (?, ?, ?, ?, ?)",
                            (name, col, alias, alias, en))
        cur.execute(_LAYER_STYLES_DDL)
        for name, frame, spatial, aliases in prepared:
            if not spatial:
                continue
            qml = layer_qml(name, frame, aliases=aliases, lang=lang, type_colors=type_colors)
            label = c.layer_label(name, lang)
            geom_col = cur.execute("SELECT column_name FROM gpkg_geometry_columns WHERE "
                                   "table_name = ?", (name,)).fetchone()[0]
            cur.execute("INSERT INTO layer_styles (f_table_catalog, f_table_schema, f_table_name, "
                        "f_geometry_column, styleName, styleQML, styleSLD, useAsDefault, "
                        "description, owner, ui, update_time) VALUES "
                        "('', '', ?, ?, ?, ?, '', 1, ?, 'geotijian', NULL, ?)",
                        (name, geom_col, name, qml, f"geotijian: {label}", FIXED_TIME))
        # QGIS registers layer_styles as an attribute table; GDAL then lists it too.
        cur.execute("INSERT OR REPLACE INTO gpkg_contents (table_name, data_type, identifier, "
                    "description, last_change) VALUES ('layer_styles', 'attributes', "
                    "'layer_styles', 'QGIS layer styles', ?)", (FIXED_TIME,))
        con.commit()
    finally:
        con.close()
