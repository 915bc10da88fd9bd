"""Study configuration (``study.toml``): read, validate, and write a commented template.

A town's team describes its study once; every path is relative to the TOML file. Errors
name the key and the fix (``ConfigError``); the CLI prints them on one line and exits 2.
See :data:`TEMPLATE` (written by ``geotijian init``) for every key with its meaning.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pyproj import CRS

from . import settings
from .errors import ConfigError
from .io.layers import ROLES

__all__ = ["StudyConfig", "LayerSource", "read_config", "write_template", "TEMPLATE"]

LEVELS = ("district", "town", "community")
POPULATION_SOURCES = ("attribute", "buildings", "raster")
NETWORK_SOURCES = ("roads", "osm")
COORD_SYSTEMS = ("wgs84", "cgcs2000", "gcj02", "bd09")


@dataclass
class LayerSource:
    """One input layer: where it is and how to read it."""

    key: str
    role: str
    path: Path
    layer: str | None = None
    crs: str | None = None
    coords: str | None = None


@dataclass
class StudyConfig:
    """A validated study configuration. Paths are absolute."""

    path: Path
    name: str
    #: Display name of the study area (``嘉定区``): titles of maps, figures and the workbook,
    #: 区域名称 of the district rows; default: the boundary's name, else ``name``.
    title: str = ""
    level: str = "district"
    year: int = 2024
    crs: str = field(default_factory=lambda: settings.metric_crs)
    output: Path = Path(settings.output_dir)
    layers: list[LayerSource] = field(default_factory=list)
    osm: dict[str, Any] = field(default_factory=dict)
    network: dict[str, Any] = field(default_factory=dict)
    population: dict[str, Any] = field(default_factory=dict)
    units: dict[str, Any] = field(default_factory=dict)
    facilities: dict[str, Any] = field(default_factory=dict)
    indicators: dict[str, Any] = field(default_factory=dict)
    survey: Path | None = None
    hotline: LayerSource | None = None
    imagery: dict[str, Any] = field(default_factory=dict)
    ledger_last_year: Path | None = None
    report: dict[str, Any] = field(default_factory=dict)
    plan: dict[str, Any] = field(default_factory=dict)
    raw: dict[str, Any] = field(default_factory=dict)
    memory_check: bool = True
    memory_budget_gb: float | None = None
    fillin: dict[str, Any] = field(default_factory=dict)
    ledger_last_values: Path | None = None

    @property
    def out_dir(self) -> Path:
        """``<output>/<name>/``: the folder the run writes."""
        return self.output / self.name

    def layers_of(self, role: str) -> list[LayerSource]:
        return [s for s in self.layers if s.role == role]

    def input_files(self) -> list[Path]:
        """Every input file the study reads (for checksums in run.json)."""
        files = [s.path for s in self.layers]
        for p in (self.survey, self.ledger_last_year, self.hotline.path if self.hotline else None,
                  self.imagery.get("path"), self.osm.get("path"), self.facilities.get("catalogue"),
                  self.indicators.get("custom"), self.indicators.get("filled"),
                  self.population.get("raster"), self.ledger_last_values,
                  self.plan.get("projects", {}).get("rules")):
            if p is not None:
                files.append(Path(p))
        folder = self.fillin.get("folder")
        if folder is not None and Path(folder).is_dir():
            files.extend(f for f in Path(folder).glob("*.xlsx") if not f.name.startswith(("~$", ".")))
        return sorted(set(files))


_TOP_KEYS = {"study", "layers", "osm", "network", "population", "units", "facilities",
             "indicators", "survey", "hotline", "imagery", "ledger", "report", "fillin",
             "plan"}


#: Keys each section knows; anything else is a typo (``min_popp``) and an error.
SECTION_KEYS: dict[str, tuple[str, ...]] = {
    "study": ("name", "title", "level", "year", "crs", "output", "memory_check", "memory_budget_gb"),
    "osm": ("path", "place", "bbox", "use"),
    "network": ("source", "max_snap_distance_m"),
    "population": ("source", "raster", "floor_area_per_person_m2"),
    "units": ("min_pop", "max_pop", "road_classes", "sliver_area_m2"),
    "facilities": ("types", "catalogue", "distances"),
    "indicators": ("custom", "filled", "reference", "coverage_reference", "edition", "include"),
    "survey": ("path",),
    "hotline": ("path", "layer", "crs", "coords"),
    "imagery": ("path", "bands"),
    "ledger": ("last_year", "last_values"),
    "report": ("lang", "indicator", "map_title", "dpi", "formats", "docx", "towns", "template", "title",
               "organisation", "date", "grade_rules", "grade_bands"),
}
#: Static figure formats ``[report] formats`` accepts.
FIGURE_FORMATS = ("png", "pdf", "svg")


def _did_you_mean(word: str, options: Any) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(options), n=1, cutoff=0.6)
    return f"did you mean {close[0]!r}? " if close else ""


def did_you_mean(word: str, choices: Any, *, n: int = 3) -> str:
    """`` (did you mean kindergarten?)`` for the closest of ``choices`` (e.g. facility type
    codes), else ``""``: appended to an error's problem text."""
    close = difflib.get_close_matches(str(word), [str(c) for c in choices], n=n, cutoff=0.6)
    return f" (did you mean {', '.join(close)}?)" if close else ""


def _check_keys(section: dict, known: tuple[str, ...] | set[str], prefix: str) -> None:
    for k in section:
        if k not in known:
            raise ConfigError(f"{prefix}.{k}" if prefix else k, "unknown key",
                              f"{_did_you_mean(k, known)}known keys{' of [' + prefix + ']' if prefix else ''}: "
                              f"{', '.join(sorted(known))}")


def _road_classes(value: Any) -> list[str]:
    """``road_classes`` as a list: a string is one class, or several split at commas."""
    import re

    if isinstance(value, str):
        parts = [p for p in re.split(r"[,，;；\s]+", value) if p]
        _expect(bool(parts), "units.road_classes", "is empty",
                "list the highway classes that bound blocks, e.g. [\"primary\", \"secondary\"]")
        return parts
    _expect(isinstance(value, list) and all(isinstance(v, str) and v.strip() for v in value),
            "units.road_classes", f"must be a list of highway classes, got {value!r}",
            "write e.g. road_classes = [\"primary\", \"secondary\", \"tertiary\"]")
    return [v.strip() for v in value]


def _expect(cond: bool, key: str, problem: str, fix: str | None = None) -> None:
    if not cond:
        raise ConfigError(key, problem, fix)


def _file(base: Path, value: Any, key: str, *, must_exist: bool = True) -> Path:
    _expect(isinstance(value, str) and value.strip() != "", key, f"must be a file path, got {value!r}",
            "write the path as a string, relative to the study.toml")
    p = (base / value).resolve() if not Path(value).is_absolute() else Path(value)
    if must_exist:
        _expect(p.exists(), key, f"file not found: {p}", "check the path (it is relative to the study.toml)")
    return p


def _crs(value: Any, key: str, *, projected: bool = False) -> str:
    try:
        crs = CRS.from_user_input(value)
    except Exception:
        raise ConfigError(key, f"unknown CRS {value!r}",
                          "use an EPSG code such as \"EPSG:4490\" (CGCS2000) or \"EPSG:32651\"") from None
    if projected:
        _expect(crs.is_projected, key, f"{value!r} is not a projected (metric) CRS",
                "measurement needs metres: use e.g. \"EPSG:32651\" (UTM 51N) or \"EPSG:4549\"")
        _expect(crs.to_epsg() != 3857, key, "EPSG:3857 distorts areas by 1.37 in Shanghai",
                "use \"EPSG:32651\" or \"EPSG:4549\"")
    return str(value)


def _table(raw: dict, key: str) -> dict:
    value = raw.get(key, {})
    _expect(isinstance(value, dict), key, f"must be a table ([{key}]), got {type(value).__name__}")
    return dict(value)


def _report_keys(base: Path, report: dict) -> None:
    """Check ``[report]``: the Word report's switches, template, cover texts and grade tables
    (unknown keys are caught by ``SECTION_KEYS``)."""
    for k in ("docx", "towns"):
        if k in report:
            _expect(isinstance(report[k], bool), f"report.{k}", f"must be true or false, got {report[k]!r}")
    for k in ("title", "organisation", "date"):
        if k in report:
            _expect(isinstance(report[k], str) and report[k].strip() != "", f"report.{k}",
                    f"must be a non-empty string, got {report[k]!r}")
    if "template" in report:
        report["template"] = _file(base, report["template"], "report.template")
    for k in ("grade_rules", "grade_bands"):
        if k in report:
            v = report[k]
            if isinstance(v, str):
                report[k] = _file(base, v, f"report.{k}")
            else:
                _expect(isinstance(v, dict), f"report.{k}", f"must be a table or a CSV path, got {type(v).__name__}",
                        f"write [report.{k}.<id>] tables or {k} = \"file.csv\"")


def _number(section: dict, key: str, full: str, *, minimum: float = 0.0) -> None:
    if key in section:
        v = section[key]
        _expect(isinstance(v, (int, float)) and not isinstance(v, bool) and v >= minimum, full,
                f"must be a number >= {minimum:g}, got {v!r}")


def _layer(base: Path, key: str, spec: Any, full: str) -> LayerSource:
    if isinstance(spec, str):
        spec = {"path": spec}
    _expect(isinstance(spec, dict), full, "must be a path or a table with path = ...")
    unknown = sorted(set(spec) - {"path", "role", "layer", "crs", "coords"})
    _expect(not unknown, f"{full}.{unknown[0]}" if unknown else full, "unknown key",
            f"{_did_you_mean(unknown[0], ('path', 'role', 'layer', 'crs', 'coords')) if unknown else ''}"
            "allowed keys: path, role, layer, crs, coords")
    role = spec.get("role", key)
    _expect(role in ROLES, f"{full}.role" if "role" in spec else full, f"unknown layer role {role!r}",
            f"{_did_you_mean(str(role), ROLES)}use one of: {', '.join(ROLES)} (or set role = ... for a "
            "layer named otherwise)")
    _expect("path" in spec, f"{full}.path", "missing", "give the layer's file path")
    crs = _crs(spec["crs"], f"{full}.crs") if "crs" in spec else None
    coords = spec.get("coords")
    if coords is not None:
        _expect(str(coords).lower() in COORD_SYSTEMS, f"{full}.coords", f"unknown coordinate system {coords!r}",
                f"use one of: {', '.join(COORD_SYSTEMS)}")
        coords = str(coords).lower()
    return LayerSource(key=key, role=role, path=_file(base, spec["path"], f"{full}.path"),
                       layer=spec.get("layer"), crs=crs, coords=coords)


def _report(report: dict) -> dict:
    """Validate ``[report]``: lang, map_title, indicator, dpi, formats (the Word report's keys:
    :func:`_report_keys`)."""
    if "lang" in report:
        _expect(report["lang"] in ("zh", "en"), "report.lang", f"unknown language {report['lang']!r}",
                "use \"zh\" or \"en\"")
    if "map_title" in report:
        _expect(isinstance(report["map_title"], str), "report.map_title",
                f"must be text, got {report['map_title']!r}")
    if "dpi" in report:
        d = report["dpi"]
        _expect(isinstance(d, int) and not isinstance(d, bool) and 50 <= d <= 1200, "report.dpi",
                f"must be a whole number of dots per inch from 50 to 1200, got {d!r}", "e.g. dpi = 300 for print")
    if "formats" in report:
        f = report["formats"]
        f = [f] if isinstance(f, str) else f
        bad = [x for x in f if str(x).lower() not in FIGURE_FORMATS] if isinstance(f, list) else [f]
        _expect(isinstance(f, list) and bool(f) and not bad, "report.formats",
                f"unknown figure format {bad[0] if bad else f!r}" + (did_you_mean(str(bad[0]), FIGURE_FORMATS)
                                                                    if bad else ""),
                f"use a list of: {', '.join(FIGURE_FORMATS)}")
        report["formats"] = [str(x).lower() for x in f]
    return report


def _read_toml(path: str | Path) -> tuple[Path, dict]:
    """The study file's path (resolved) and its parsed TOML."""
    path = Path(path).resolve()
    if not path.exists():
        raise ConfigError("(file)", f"study file not found: {path}", "check the path or run `geotijian init`")
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError("(syntax)", f"not valid TOML: {exc}", "fix the line shown") from None
    return path, raw


def _check_sections(raw: dict) -> None:
    """Unknown sections, and unknown keys of the known ones."""
    unknown = sorted(set(raw) - _TOP_KEYS)
    _expect(not unknown, unknown[0] if unknown else "", "unknown section",
            f"{_did_you_mean(unknown[0], _TOP_KEYS) if unknown else ''}known sections: "
            f"{', '.join(sorted(_TOP_KEYS))}")
    for sec, known in SECTION_KEYS.items():
        if isinstance(raw.get(sec), dict):
            _check_keys(raw[sec], known, sec)


def _study_section(raw: dict, base: Path) -> tuple[dict, str, str, int, str, Path]:
    """``[study]``: the table, its name, level, year, metric CRS and output folder."""
    study = _table(raw, "study")
    _expect("name" in study, "study.name", "missing", "give the study a short name (used as output folder)")
    name = str(study["name"])
    _expect(name.replace("_", "").replace("-", "").isalnum() and name.isascii(), "study.name",
            f"{name!r} must be ASCII letters, digits, '-' or '_' (it names the output folder)")
    level = study.get("level", "district")
    _expect(level in LEVELS, "study.level", f"unknown level {level!r}", f"use one of: {', '.join(LEVELS)}")
    year = study.get("year", 2024)
    _expect(isinstance(year, int) and 2000 <= year <= 2100, "study.year", f"must be a year, got {year!r}")
    crs = _crs(study.get("crs", settings.metric_crs), "study.crs", projected=True)
    if "memory_check" in study:
        _expect(isinstance(study["memory_check"], bool), "study.memory_check",
                f"must be true or false, got {study['memory_check']!r}")
    _number(study, "memory_budget_gb", "study.memory_budget_gb")
    output = study.get("output", settings.output_dir)
    output = Path(output) if Path(output).is_absolute() else (base / output).resolve()
    if "output" not in study:
        # default: the project's outputs/ folder when run from the project, else beside the toml
        output = (Path.cwd() / settings.output_dir).resolve()
    return study, name, level, year, crs, output


def _osm_section(raw: dict, base: Path) -> dict:
    """``[osm]``: exactly one of path, place, bbox, and what to take from it."""
    osm = _table(raw, "osm")
    if osm:
        given = [k for k in ("path", "place", "bbox") if k in osm]
        _expect(len(given) == 1, "osm", "give exactly one of path, place, bbox",
                "path = \"extract.osm\" (local file) or place = \"嘉定区, 上海\" / bbox = [w, s, e, n] (online)")
        if "path" in osm:
            osm["path"] = _file(base, osm["path"], "osm.path")
        if "bbox" in osm:
            b = osm["bbox"]
            _expect(isinstance(b, list) and len(b) == 4 and b[0] < b[2] and b[1] < b[3], "osm.bbox",
                    f"must be [west, south, east, north] in degrees, got {b!r}")
        use = osm.get("use", ["network", "buildings", "compounds", "facilities", "water", "rail"])
        known = {"network", "buildings", "compounds", "facilities", "water", "rail", "parks"}
        bad = [u for u in use if u not in known]
        _expect(not bad, "osm.use", f"unknown item {bad[0] if bad else ''!r}", f"use any of: {', '.join(sorted(known))}")
        osm["use"] = list(use)
    return osm


def _network_section(raw: dict, osm: dict, roles: set) -> dict:
    """``[network]``: its source (roads layer or OSM) and the snap distance."""
    network = _table(raw, "network")
    net_source = network.get("source", "osm" if osm and "network" in osm.get("use", []) else "roads")
    _expect(net_source in NETWORK_SOURCES, "network.source", f"unknown source {net_source!r}",
            "use \"roads\" (the roads layer) or \"osm\"")
    if net_source == "roads":
        _expect("roads" in roles, "layers.roads", "missing (network.source = \"roads\")",
                "give a roads layer, or an [osm] section with use = [\"network\", ...]")
    else:
        _expect(bool(osm), "osm", "network.source = \"osm\" needs an [osm] section", "add [osm] path = ...")
    network["source"] = net_source
    _number(network, "max_snap_distance_m", "network.max_snap_distance_m")
    return network


def _population_section(raw: dict, base: Path, osm: dict, roles: set) -> dict:
    """``[population]``: its source and what that source needs."""
    population = _table(raw, "population")
    pop_source = population.get("source", "attribute")
    _expect(pop_source in POPULATION_SOURCES, "population.source", f"unknown source {pop_source!r}",
            f"use one of: {', '.join(POPULATION_SOURCES)}")
    if pop_source == "raster":
        _expect("raster" in population, "population.raster", "missing (population.source = \"raster\")",
                "give the population GeoTIFF path")
        population["raster"] = _file(base, population["raster"], "population.raster")
    if pop_source == "buildings":
        _expect("buildings" in roles or "buildings" in osm.get("use", []), "layers.buildings",
                "missing (population.source = \"buildings\")", "give a buildings layer or use OSM buildings")
    _number(population, "floor_area_per_person_m2", "population.floor_area_per_person_m2")
    population["source"] = pop_source
    return population


def _units_section(raw: dict) -> dict:
    """``[units]``: population bounds, sliver area, road classes."""
    units = _table(raw, "units")
    for k in ("min_pop", "max_pop", "sliver_area_m2"):
        _number(units, k, f"units.{k}")
    if "road_classes" in units:
        units["road_classes"] = _road_classes(units["road_classes"])
    if "min_pop" in units or "max_pop" in units:
        lo = units.get("min_pop", settings.unit_min_pop)
        hi = units.get("max_pop", settings.unit_max_pop)
        _expect(lo < hi, "units.min_pop", f"min_pop ({lo}) must be below max_pop ({hi})")
    return units


def _facilities_section(raw: dict, base: Path) -> dict:
    """``[facilities]``: catalogue file, type codes, walking distances."""
    facilities = _table(raw, "facilities")
    if "catalogue" in facilities:
        facilities["catalogue"] = _file(base, facilities["catalogue"], "facilities.catalogue")
    if "types" in facilities:
        _expect(isinstance(facilities["types"], list) and all(isinstance(t, str) for t in facilities["types"]),
                "facilities.types", "must be a list of facility type codes")
    dist = facilities.get("distances", {})
    _expect(isinstance(dist, dict), "facilities.distances", "must be a table: code = metres")
    for code, metres in dist.items():
        _number({code: metres}, code, f"facilities.distances.{code}")
    return facilities


def read_config(path: str | Path) -> StudyConfig:
    """Read and validate a ``study.toml``.

    Raises
    ------
    ConfigError
        Naming the key (``layers.compounds.path``), the problem and the fix.
    """
    path, raw = _read_toml(path)
    base = path.parent
    _check_sections(raw)

    study, name, level, year, crs, output = _study_section(raw, base)

    layers_raw = _table(raw, "layers")
    layers = [_layer(base, k, v, f"layers.{k}") for k, v in layers_raw.items()]
    roles = {s.role for s in layers}

    osm = _osm_section(raw, base)

    _expect("boundary" in roles or bool(osm), "layers.boundary", "missing",
            "give a boundary layer, or an [osm] source whose extent is used as the boundary")

    network = _network_section(raw, osm, roles)
    population = _population_section(raw, base, osm, roles)
    units = _units_section(raw)
    facilities = _facilities_section(raw, base)

    indicators = _table(raw, "indicators")
    for k in ("custom", "filled"):
        if k in indicators:
            indicators[k] = _file(base, indicators[k], f"indicators.{k}")
    refs = indicators.get("reference", {})
    _expect(isinstance(refs, dict), "indicators.reference", "must be a table: code = value")
    _indicator_edition_keys(indicators)
    fillin = _fillin_section(raw, base)

    survey = _table(raw, "survey")
    survey_path = _file(base, survey["path"], "survey.path") if "path" in survey else None
    hotline = _table(raw, "hotline")
    hotline_src = _layer(base, "hotline", {**hotline, "role": "complaints"}, "hotline") if hotline else None
    imagery = _table(raw, "imagery")
    if imagery:
        imagery["path"] = _file(base, imagery.get("path"), "imagery.path")
    ledger = _table(raw, "ledger")
    last = _file(base, ledger["last_year"], "ledger.last_year") if "last_year" in ledger else None
    last_values = _file(base, ledger["last_values"], "ledger.last_values") if "last_values" in ledger else None
    report = _report(_table(raw, "report"))
    _report_keys(base, report)

    plan = _plan_section(raw, base, year)
    if plan.get("siting", {}).get("candidates") == "sites":
        _expect("sites" in roles, "plan.siting.candidates", "\"sites\" needs a candidate sites layer",
                "add [layers.sites] (available land, public parcels) or use \"network\"")

    title = study.get("title", "")
    _expect(isinstance(title, str), "study.title", f"must be text, got {title!r}", "e.g. title = \"嘉定区\"")
    return StudyConfig(path=path, name=name, title=title.strip(), level=level, year=year, crs=crs, output=output,
                       layers=layers, osm=osm, network=network, population=population, units=units,
                       facilities=facilities, indicators=indicators, survey=survey_path,
                       hotline=hotline_src, imagery=imagery, ledger_last_year=last, report=report,
                       plan=plan, raw=raw, memory_check=study.get("memory_check", True),
                       memory_budget_gb=study.get("memory_budget_gb"),
                       fillin=fillin, ledger_last_values=last_values)


def _indicator_edition_keys(indicators: dict) -> None:
    """``[indicators] edition`` (a packaged edition) and ``include`` (a list of codes)."""
    if "edition" in indicators:
        from .indicators.editions import list_editions

        known = list(list_editions()["edition"])
        indicators["edition"] = str(indicators["edition"])
        _expect(indicators["edition"] in known, "indicators.edition", f"unknown edition {indicators['edition']!r}",
                f"use one of: {', '.join(known)}")
    if "include" in indicators:
        inc = indicators["include"]
        _expect(isinstance(inc, list) and all(isinstance(c, str) for c in inc), "indicators.include",
                "must be a list of indicator codes", 'write include = ["u_cluster_size"]')


def _fillin_section(raw: dict, base: Path) -> dict:
    """``[fillin]``: pilot_communities, folder (returned workbooks), templates, departments."""
    fillin = _table(raw, "fillin")
    unknown = set(fillin) - {"pilot_communities", "folder", "templates", "departments"}
    _expect(not unknown, f"fillin.{sorted(unknown)[0]}" if unknown else "fillin", "unknown key",
            "allowed keys: pilot_communities, folder, templates, departments")
    pilots = fillin.get("pilot_communities", [])
    _expect(isinstance(pilots, list) and all(isinstance(p, str) for p in pilots), "fillin.pilot_communities",
            "must be a list of unit IDs", 'write pilot_communities = ["310114101-U01"]')
    fillin["pilot_communities"] = list(pilots)
    if "folder" in fillin:
        fillin["folder"] = _file(base, fillin["folder"], "fillin.folder")
        _expect(fillin["folder"].is_dir(), "fillin.folder", f"{fillin['folder']} is not a folder",
                "give the folder of the returned workbooks")
    if "templates" in fillin:
        fillin["templates"] = _file(base, fillin["templates"], "fillin.templates", must_exist=False)
    depts = fillin.get("departments", {})
    _expect(isinstance(depts, dict) and all(isinstance(v, str) for v in depts.values()), "fillin.departments",
            "must be a table: code = \"department\"", 'write u_fire_station_coverage = "区应急管理局"')
    fillin["departments"] = dict(depts)
    return fillin


# ------------------------------------------------------------------------------ [plan]
#: Keys of the ``[plan]`` section and its sub-tables (README "Configuration reference").
PLAN_KEYS = {
    "": {"enabled", "year", "renewal", "siting", "projects"},
    "renewal": {"enabled", "weights", "class_weights", "score_quantile", "hotspot_p", "min_pop",
                "max_pop", "within_town"},
    "siting": {"enabled", "types", "objective", "p", "candidates", "capacity", "demand_share",
               "time_limit_s", "mip_rel_gap", "presolve"},
    "projects": {"rules"},
}
_WEIGHT_NAMES = {"weights": ("problems", "dissatisfaction", "complaints", "old_compounds"),
                 "class_weights": ("限时解决", "尽力解决", "长期谋划")}


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _plan_weights(table: Any, key: str) -> dict[str, float]:
    names = _WEIGHT_NAMES[key.rsplit(".", 1)[1]]
    _expect(isinstance(table, dict), key, f"must be a table of name = number, got {table!r}",
            f"e.g. {key.rsplit('.', 1)[1]} = {{ {names[0]} = 0.4, ... }}")
    unknown = [k for k in table if k not in names]
    _expect(not unknown, f"{key}.{unknown[0]}" if unknown else key,
            f"unknown name ({len(unknown)} of {len(table)} entries)", f"use {', '.join(names)}")
    bad = [k for k, v in table.items() if not _is_number(v) or v < 0]
    _expect(not bad, f"{key}.{bad[0]}" if bad else key,
            f"does not parse as a weight: {table[bad[0]] if bad else ''!r} ({len(bad)} of {len(table)} "
            f"weights do not parse: {', '.join(bad)})", "write each weight as a number ≥ 0, e.g. 0.2, unquoted")
    _expect(sum(table.values()) > 0, key, "every weight is 0", "give at least one weight > 0")
    return {k: float(v) for k, v in table.items()}


def _per_type_number(value: Any, key: str, *, integer: bool = False, upper: float | None = None) -> Any:
    """A number, or a table facility type → number."""
    items = value.items() if isinstance(value, dict) else [(None, value)]
    for t, v in items:
        k = key if t is None else f"{key}.{t}"
        ok = (isinstance(v, int) and not isinstance(v, bool)) if integer else _is_number(v)
        ok = ok and v > 0 and (upper is None or v <= upper)
        what = "a whole number ≥ 1" if integer else (f"a number in (0, {upper:g}]" if upper else "a number > 0")
        _expect(ok, k, f"must be {what}, got {v!r}",
                "give one value for every type, or a table per type, e.g. { kindergarten = 5 }")
    return dict(value) if isinstance(value, dict) else value


def _plan_section(raw: dict, base: Path, year: int) -> dict[str, Any]:
    """Validate ``[plan]``: every key known, every value of the right kind (ConfigError)."""
    plan = _table(raw, "plan")
    if not plan:
        return {}
    for sub, keys in PLAN_KEYS.items():
        sect = plan if sub == "" else plan.get(sub, {})
        full = "plan" if sub == "" else f"plan.{sub}"
        _expect(isinstance(sect, dict), full, f"must be a table ([{full}])")
        unknown = sorted(set(sect) - keys)
        _expect(not unknown, f"{full}.{unknown[0]}" if unknown else full, "unknown key",
                f"{_did_you_mean(unknown[0], keys) if unknown else ''}known keys of [{full}]: "
                f"{', '.join(sorted(keys))}")
    out: dict[str, Any] = {"enabled": plan.get("enabled", True)}
    _expect(isinstance(out["enabled"], bool), "plan.enabled", "must be true or false")
    plan_year = plan.get("year", year + 1)
    _expect(isinstance(plan_year, int) and not isinstance(plan_year, bool) and year <= plan_year <= year + 10,
            "plan.year", f"must be a year from the check-up year ({year}) on, got {plan_year!r}",
            f"e.g. year = {year + 1}")
    out["year"] = plan_year
    ren = dict(plan.get("renewal", {}))
    for k in ("enabled", "within_town"):
        if k in ren:
            _expect(isinstance(ren[k], bool), f"plan.renewal.{k}", "must be true or false")
    for k in ("weights", "class_weights"):
        if k in ren:
            ren[k] = _plan_weights(ren[k], f"plan.renewal.{k}")
    for k in ("score_quantile", "hotspot_p"):
        if k in ren:
            _expect(_is_number(ren[k]) and 0 < ren[k] < 1, f"plan.renewal.{k}",
                    f"must be a number between 0 and 1, got {ren[k]!r}")
    for k in ("min_pop", "max_pop"):
        _number(ren, k, f"plan.renewal.{k}")
    lo, hi = ren.get("min_pop", 5000), ren.get("max_pop", 50000)
    _expect(lo < hi, "plan.renewal.min_pop", f"floor ({lo}) must be below the ceiling max_pop ({hi})")
    out["renewal"] = ren
    site = dict(plan.get("siting", {}))
    if "enabled" in site:
        _expect(isinstance(site["enabled"], bool), "plan.siting.enabled", "must be true or false")
    if "types" in site:
        _expect(isinstance(site["types"], list) and all(isinstance(t, str) for t in site["types"]),
                "plan.siting.types", "must be a list of facility type codes", "e.g. [\"kindergarten\"]")
    if "objective" in site:
        objs = site["objective"].items() if isinstance(site["objective"], dict) else [(None, site["objective"])]
        for t, v in objs:
            _expect(v in ("mclp", "lscp"), "plan.siting.objective" + (f".{t}" if t else ""),
                    f"unknown objective {v!r}", "use \"mclp\" (best p sites) or \"lscp\" (fewest sites)")
    if "p" in site:
        site["p"] = _per_type_number(site["p"], "plan.siting.p", integer=True)
    if "capacity" in site:
        site["capacity"] = _per_type_number(site["capacity"], "plan.siting.capacity")
    if "demand_share" in site:
        site["demand_share"] = _per_type_number(site["demand_share"], "plan.siting.demand_share", upper=1.0)
    if "candidates" in site:
        _expect(site["candidates"] in ("network", "sites"), "plan.siting.candidates",
                f"unknown candidate source {site['candidates']!r}",
                "use \"network\" (walk-network nodes in the gaps) or \"sites\" (the [layers.sites] layer)")
    for k in ("time_limit_s", "mip_rel_gap"):
        if k in site:
            _expect(_is_number(site[k]) and site[k] > 0, f"plan.siting.{k}", f"must be a number > 0, got {site[k]!r}")
    if "presolve" in site:
        _expect(isinstance(site["presolve"], bool), "plan.siting.presolve", "must be true or false")
    out["siting"] = site
    proj = dict(plan.get("projects", {}))
    if "rules" in proj:
        proj["rules"] = _file(base, proj["rules"], "plan.projects.rules")
    out["projects"] = proj
    return out


TEMPLATE = """\
# geotijian study configuration (城市体检 研究配置)
# Paths are relative to this file. Run with:  geotijian run study.toml

[study]
name = "my_town"            # ASCII; outputs go to outputs/<name>/
title = "某某街道"          # display name in titles ("某某街道 2024 年城市体检问题地图"), tables (区域名称)
level = "town"              # district | town | community
year = 2024                 # check-up year (the ledger's year)
crs = "EPSG:32651"          # metric CRS for all measurement (UTM 51N; or EPSG:4549 CGCS2000 GK CM120E)
# output = "outputs"        # output root (default: ./outputs)
# memory_check = true       # stop early when the study would not fit in memory (split it by town)
# memory_budget_gb = 16     # memory the run may use (default: 80 % of what is available)

# Input layers: [layers.<role>] with path (+ layer inside a GeoPackage, crs when the file has
# none, coords = "gcj02"/"bd09" for POIs copied from Amap/Baidu). Roles: boundary, towns,
# committees, compounds, buildings, roads, water, rail, parks, facilities, population, complaints.
# A layer named otherwise sets role = "...": several layers of one role are combined.
[layers.boundary]
path = "district.gpkg"
layer = "boundary"

[layers.towns]
path = "district.gpkg"
layer = "towns"             # fields: town_code, name

[layers.committees]
path = "district.gpkg"
layer = "committees"        # fields: committee_id, name, town_code, population (optional)

[layers.compounds]
path = "district.gpkg"
layer = "compounds"         # fields: compound_id, name, population, households, build_year

[layers.roads]
path = "district.gpkg"
layer = "roads"             # fields: road_id, highway (OSM classes), name

# [layers.poi_amap]
# role = "facilities"
# path = "poi_amap.csv"     # columns: facility_id, name, type, lon, lat, capacity
# coords = "gcj02"

# [osm]                     # OpenStreetMap: one of path (local .osm/.osm.pbf), place, bbox (online)
# path = "jiading.osm.pbf"
# use = ["network", "buildings", "compounds", "facilities", "water", "rail"]

[network]
source = "roads"            # roads | osm
max_snap_distance_m = 200   # homes/facilities farther from the network are reported

[population]
source = "attribute"        # attribute (compounds.population) | buildings | raster
# raster = "worldpop.tif"
# floor_area_per_person_m2 = 35

[units]
min_pop = 5000              # 社区体检单元 5,000-12,000 residents (Jiading 2024 work plan)
max_pop = 12000
# road_classes = ["primary", "secondary", "tertiary"]   # highway classes bounding blocks (a string = one class)

[facilities]
# types = ["kindergarten", "primary_school", "community_health_station"]   # default: all in the data
# catalogue = "my_facility_types.csv"     # add or override facility types
# [facilities.distances]
# kindergarten = 300        # walking distance (m)

[indicators]
edition = "2024"            # indicator system: 2024 (national basic list of 61 + local) | 2023
# include = ["u_cluster_size"]   # packaged indicators outside the edition, kept as local ones
# The study's coverage target: percent of residents within the walking distance of each
# required facility type. No standard publishes one (GB 50180-2018 gives the distances), so
# without it coverage is computed and mapped but not judged. A number for every required
# type, or a table: coverage_reference = { default = 90, kindergarten = 95 }
# coverage_reference = 90
# custom = "特色指标.csv"     # study-specific indicators (特色指标)
# filled = "填报.csv"         # filled-in values: unit_id, code, value
# [indicators.reference]
# u_park_green_pc = 8.0

# [fillin]                  # three-level fill-in (区—街镇—社区): `geotijian template study.toml`
# pilot_communities = ["310114101-U01"]   # unit IDs of pilot communities (own workbooks)
# folder = "fillins"        # the returned workbooks, read by `geotijian run`
# templates = "templates"   # where `geotijian template` writes (default outputs/<name>_fillin_templates)
# [fillin.departments]
# u_fire_station_coverage = "区应急管理局"   # who supplies an indicator (default: the edition's)

# [survey]
# path = "survey.csv"       # one row per respondent (see README)

# [hotline]
# path = "complaints_12345.csv"   # complaint_id, lon, lat, category, date, text

# [imagery]
# path = "ortho.tif"        # drone orthophoto (RGB or RGBN GeoTIFF)

# [ledger]
# last_year = "ledger_2023.csv"
# last_values = "exchange_table_2023.csv"   # last year's exchange table → year_over_year.csv

[report]
lang = "zh"                 # zh | en
# map_title = "..."         # title of the problem map (default: "<study.title> <year> 年城市体检问题地图")
# indicator = "kindergarten"  # choropleth indicator of the problem map
# dpi = 200                 # static figures: dots per inch (300 for print)
# formats = ["png"]         # static figures: any of png, pdf, svg

# The 体检报告 (Word): report/<title>_<year>_城市体检报告.docx and towns/<town>/ packages.
# docx = true               # write the report (`geotijian report study.toml` writes it later)
# towns = true              # a package per town (report, tables, ledger, maps)
# title = "嘉定区"           # the district's name on the report (default: study.title, else the boundary's name)
# organisation = "嘉定区城市体检工作领导小组办公室"   # 编制单位 on the cover
# date = "2025年3月"         # 编制日期 on the cover
# template = "house_style.docx"  # house style: a paragraph {{正文}} where the report goes;
#                                # {{标题}} {{年份}} {{编制单位}} {{日期}} are filled
# [report.grade_rules.G10_very_good]   # override a grade rule (see README: 总体评价)
# min_unit_share = 0.95
# [report.grade_bands]
# 优 = 3.6

# [layers.sites]            # optional: available land / public parcels for new facilities
# path = "parcels.gpkg"     # fields: site_id, name, capacity, types ("kindergarten;nursery", empty = any)

# The renewal plan (更新片区, facility siting, 更新项目储备库, 年度实施计划). Without [plan] it does
# not run; `geotijian plan study.toml` runs it whatever this section says.
# [plan]
# enabled = true            # false: skip the plan step
# year = 2025               # first plan year (default: study.year + 1)
# [plan.renewal]            # renewal areas: contiguous high-scoring units
# weights = { problems = 0.4, dissatisfaction = 0.2, complaints = 0.2, old_compounds = 0.2 }
# class_weights = { "限时解决" = 3, "尽力解决" = 2, "长期谋划" = 1 }
# score_quantile = 0.67     # units in the top third of the score seed areas
# hotspot_p = 0.05          # Getis-Ord Gi* pseudo p-value of a hot spot
# min_pop = 5000            # residents per area: floor
# max_pop = 50000           # and ceiling (a 15-minute life circle, GB 50180-2018)
# within_town = true        # keep every area inside one 街镇
# [plan.siting]             # new facility sites closing coverage gaps (exact MILP, HiGHS)
# types = ["kindergarten"]  # default: every type with a coverage problem
# objective = "mclp"        # mclp (best p sites) | lscp (fewest sites covering everyone)
# p = 5                     # new sites per type (or { kindergarten = 5 }); default: units with the gap
# candidates = "network"    # network (walk-network nodes in the gaps) | sites ([layers.sites])
# capacity = { kindergarten = 300 }        # places per new site (optional)
# demand_share = { kindergarten = 0.03 }   # persons of demand per resident (with capacity)
# time_limit_s = 30         # solver time limit per type
# mip_rel_gap = 0.0001      # relative optimality gap at which the solver stops
# presolve = false          # HiGHS presolve on top of geotijian's exact reductions
# [plan.projects]
# rules = "project_rules.csv"   # override the packaged project rules (type, department, content)
"""


def write_template(path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the commented ``study.toml`` template (``geotijian init``)."""
    from .io.atomic import write_text_atomic

    p = Path(path)
    if p.exists() and not overwrite:
        raise ConfigError("(file)", f"{p} exists", "choose another path or pass --force")
    return write_text_atomic(p, TEMPLATE)
