"""The ``geotijian`` command. It only calls the public API (``import geotijian as gt``).

Commands
--------
``geotijian init study.toml``         write a commented study template
``geotijian run study.toml``          the whole check-up, outputs in outputs/<study>/
``geotijian sample [folder]``         regenerate the bundled sample district
``geotijian coverage ...``            life-circle coverage gaps from files (scripting)
``geotijian units ...``               community check-up units from files
``geotijian plan study.toml``         the check-up and the renewal plan (更新片区, siting, 项目库)
``geotijian site ...``                new facility sites closing coverage gaps, from files
``geotijian check LAYER --role R``    validate one layer and print what was repaired
``geotijian template study.toml``     fill-in workbooks per department, town and pilot community
``geotijian collect study.toml [DIR]``  validate returned workbooks: problems, completeness
``geotijian types [--indicators]``    list facility types (code, 中文名, distance, source) or indicators

Exit codes: 0 ok, 2 bad configuration, input or output place (one line naming the key,
layer or folder and the fix), 130 interrupted (Ctrl-C), 143 terminated (SIGTERM), 1
anything else (one line; ``--debug`` shows the traceback). No traceback reaches the user
otherwise, and an interrupted run leaves no partial output.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import warnings
from typing import Any


class _Terminated(BaseException):
    """SIGTERM, raised in the main thread so staging folders are cleaned up on the way out."""


def _on_sigterm(signum, frame):  # pragma: no cover - exercised through a subprocess in the tests
    raise _Terminated()


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (usage stays in ``--help``)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _count(name: str, *, minimum: int):
    def parse(text: str) -> int:
        try:
            v = int(text.replace(",", "").replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be a whole number of persons, got {text!r}") from None
        if v < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum} (persons), got {v}")
        return v
    return parse


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="geotijian", description="城市体检 urban check-up toolkit")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    p.add_argument("--debug", action="store_true", help="show the Python traceback of an error")
    sub = p.add_subparsers(dest="command", parser_class=_Parser, metavar="command")

    s = sub.add_parser("init", help="write a commented study.toml template")
    s.add_argument("path", nargs="?", default="study.toml",
                   help="where to write the template (default: study.toml)")
    s.add_argument("--force", action="store_true", help="overwrite an existing file")

    s = sub.add_parser("run", help="run a study end to end")
    s.add_argument("config", help="path of the study.toml")
    s.add_argument("--quiet", action="store_true", help="no progress bars")
    s.add_argument("--no-memory-check", action="store_true",
                   help="run even when the study's estimated peak memory exceeds what this machine has")

    s = sub.add_parser("report", help="write the 体检报告 (Word) and town packages of a study that has run")
    s.add_argument("config", help="path of the study.toml (its outputs must exist: run it first)")
    s.add_argument("--output", default=None, help="output root replacing study.output")

    s = sub.add_parser("sample", help="(re)generate the bundled sample district")
    s.add_argument("folder", nargs="?", default="layers/sample",
                   help="folder to write the sample layers into (default: layers/sample)")
    s.add_argument("--seed", type=int, default=None,
                   help="random seed (default: the sample's fixed seed, identical bytes every run)")
    s.add_argument("--scale", type=float, default=1.0, help="area multiplier (18.4 ≈ Jiading)")

    s = sub.add_parser("coverage", help="15-minute life-circle coverage gaps from files")
    s.add_argument("--network", required=True, help="roads layer (GPKG/SHP/GeoJSON) or OSM file (.osm/.pbf)")
    s.add_argument("--network-layer", default=None, help="layer name inside a GeoPackage")
    s.add_argument("--homes", required=True, help="compounds/buildings/points with a population field")
    s.add_argument("--homes-layer", default=None, help="layer name of the homes inside a GeoPackage")
    s.add_argument("--homes-role", default="compounds", choices=["compounds", "buildings", "population"],
                   help="what the homes are (default: compounds)")
    s.add_argument("--facilities", required=True, help="facilities (type field = catalogue code)")
    s.add_argument("--facilities-layer", default=None, help="layer name of the facilities inside a GeoPackage")
    s.add_argument("--coords", default=None, choices=["wgs84", "cgcs2000", "gcj02", "bd09"],
                   help="facilities coordinate system (gcj02 for Amap/Tencent, bd09 for Baidu)")
    s.add_argument("--types", nargs="*", default=None,
                   help="facility type codes (default: all present; `geotijian types` lists them)")
    s.add_argument("--crs", default=None, help="metric CRS (default settings.metric_crs, EPSG:32651)")
    s.add_argument("--out", required=True, help="output GeoPackage (layers coverage_gaps, homes, service_areas)")

    s = sub.add_parser("units", help="community check-up units from files")
    for role, what in (("roads", "roads (GPKG/SHP/GeoJSON; highway = OSM classes)"),
                       ("compounds", "residential compounds (小区) with population"),
                       ("committees", "residents' committees (居委会): units are built on them"),
                       ("towns", "towns (街镇): units never cross one"),
                       ("boundary", "study boundary (default: union of towns/committees/compounds)"),
                       ("water", "rivers and lakes: units do not cross them"),
                       ("rail", "railways: units do not cross them")):
        s.add_argument(f"--{role}", required=role in ("roads", "compounds"), default=None, help=what)
        s.add_argument(f"--{role}-layer", default=None, help=f"layer name of the {role} inside a GeoPackage")
    s.add_argument("--min-pop", type=_count("--min-pop", minimum=1), default=None,
                   help="smallest unit (persons, default 5000)")
    s.add_argument("--max-pop", type=_count("--max-pop", minimum=1), default=None,
                   help="largest unit (persons, default 12000)")
    s.add_argument("--out", required=True, help="output GeoPackage (layers units, blocks)")

    s = sub.add_parser("template", help="write the fill-in workbooks (one per department, town, pilot community)")
    s.add_argument("config", help="path of the study.toml")
    s.add_argument("--out", default=None, help="folder (default [fillin] templates or outputs/<name>_fillin_templates)")

    s = sub.add_parser("collect", help="validate returned fill-in workbooks and report what is missing")
    s.add_argument("config", help="path of the study.toml")
    s.add_argument("folder", nargs="?", default=None, help="returned workbooks (default [fillin] folder)")
    s.add_argument("--out", default=None, help="write fillin_issues.csv, fillin_completeness.csv, fillin_missing.csv, "
                                               "fillin_rollup.csv here")

    _plan_parsers(sub)

    s = sub.add_parser("check", help="validate one layer against its role")
    s.add_argument("path", help="the file (GPKG/SHP/GeoJSON/CSV/Excel)")
    s.add_argument("--role", required=True, help="the layer's role: boundary, towns, committees, compounds, "
                   "buildings, roads, water, rail, parks, facilities, population, complaints")
    s.add_argument("--layer", default=None, help="layer name inside a GeoPackage")
    s.add_argument("--crs", default=None, help="CRS of a file that has none (e.g. EPSG:4490)")
    s.add_argument("--coords", default=None, choices=["wgs84", "cgcs2000", "gcj02", "bd09"],
                   help="coordinate system of points copied from Amap (gcj02) or Baidu (bd09)")

    s = sub.add_parser("types", help="list facility types (code, 中文名, distance, source) or indicators")
    s.add_argument("--indicators", action="store_true",
                   help="list the indicators (code, 中文名, dimension, unit, reference, source) instead")
    s.add_argument("--csv", action="store_true", help="print CSV (for a spreadsheet) instead of a table")
    return p


def _plan_parsers(sub) -> None:
    """``geotijian plan`` and ``geotijian site`` (the renewal plan, geotijian.plan)."""
    s = sub.add_parser("plan", help="run a study with its renewal plan: 更新片区, new facility sites, "
                       "更新项目储备库 and 年度实施计划 (project_library.xlsx)")
    s.add_argument("config", help="path of the study.toml ([plan] options; defaults without it)")
    s.add_argument("--quiet", action="store_true", help="no progress bars")

    s = sub.add_parser("site", help="new facility sites closing coverage gaps (MCLP/LSCP on the walk "
                       "network, exact MILP), from files")
    s.add_argument("--network", required=True, help="roads layer (GPKG/SHP/GeoJSON) or OSM file (.osm/.pbf)")
    s.add_argument("--network-layer", default=None, help="layer name inside a GeoPackage")
    s.add_argument("--homes", required=True, help="compounds/buildings/points with a population field")
    s.add_argument("--homes-layer", default=None, help="layer name inside a GeoPackage")
    s.add_argument("--homes-role", default="compounds", choices=["compounds", "buildings", "population"],
                   help="role of the homes layer (default compounds)")
    s.add_argument("--facilities", required=True, help="existing facilities (type field = catalogue code)")
    s.add_argument("--facilities-layer", default=None, help="layer name inside a GeoPackage")
    s.add_argument("--coords", default=None, choices=["wgs84", "cgcs2000", "gcj02", "bd09"],
                   help="facilities coordinate system (gcj02 for Amap/Tencent, bd09 for Baidu)")
    s.add_argument("--type", required=True, dest="facility_type", help="facility type code, e.g. kindergarten")
    g = s.add_mutually_exclusive_group(required=True)
    g.add_argument("--p", type=int, default=None, help="MCLP: the number of new sites covering the most residents")
    g.add_argument("--lscp", action="store_true", help="LSCP: the fewest sites covering every reachable home")
    s.add_argument("--candidates", default=None,
                   help="candidate sites layer (available land, public parcels); default: walk-network nodes")
    s.add_argument("--candidates-layer", default=None, help="layer name inside a GeoPackage")
    s.add_argument("--capacity", type=float, default=None, help="places per new site (optional)")
    s.add_argument("--demand-share", type=float, default=None,
                   help="persons of demand per resident with --capacity (e.g. 0.03 for ages 3-6)")
    s.add_argument("--time-limit", type=float, default=None, help="solver time limit, seconds (default 30)")
    s.add_argument("--gap", type=float, default=None, help="relative optimality gap (default 1e-4)")
    s.add_argument("--crs", default=None, help="metric CRS (default settings.metric_crs)")
    s.add_argument("--out", required=True, help="output GeoPackage (new_sites, candidate_sites, "
                   "unreachable_homes, site_assignment)")


def main(argv: list[str] | None = None) -> int:
    """Run the command; return its exit code (never raises, never prints a traceback
    unless ``--debug``)."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    previous = None
    hook = sys.unraisablehook
    try:
        try:
            previous = signal.signal(signal.SIGTERM, _on_sigterm)
        except ValueError:  # not the main thread (an embedding application): leave signals alone
            previous = None
        sys.unraisablehook = _lost_interrupts(hook)
        return _main(argv)
    except KeyboardInterrupt:
        print("geotijian: interrupted (Ctrl-C); no partial output was left", file=sys.stderr)
        return 130
    except _Terminated:
        print("geotijian: terminated (SIGTERM); no partial output was left", file=sys.stderr)
        return 143
    except SystemExit as exc:  # argparse: --help, one-line errors
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 2)
    except Exception as exc:
        if debug:
            raise
        return _report(exc)
    finally:
        sys.unraisablehook = hook
        runlog = sys.modules.get(f"{__package__}.runlog")
        if runlog is not None:   # a Ctrl-C recorded too late to stop this run is not the next one's
            with contextlib.suppress(KeyboardInterrupt):
                runlog.check_interrupt()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _lost_interrupts(previous: Any) -> Any:
    """A ``sys.unraisablehook`` that records a Ctrl-C swallowed inside a C callback (numba
    compiling its kernels on first use, a finaliser; see
    :func:`geotijian.runlog.note_lost_interrupt`) instead of printing it, so the run stops
    at its next step; other unraisable errors go to ``previous``."""
    def hook(unraisable: Any) -> None:
        if isinstance(unraisable.exc_value, KeyboardInterrupt):
            from .runlog import note_lost_interrupt

            note_lost_interrupt()
            return
        previous(unraisable)
    return hook


def _report(exc: Exception) -> int:
    """One line for an error; exit code 2 for what the user can fix, 1 otherwise."""
    from .errors import GeotijianError

    if isinstance(exc, GeotijianError):
        print(f"geotijian: error: {exc}", file=sys.stderr)
        return 2
    if isinstance(exc, MemoryError):
        print("geotijian: error: out of memory. Fix: split the study by town (one study.toml per town, "
              "geotijian.run_many) or run it on a machine with more memory", file=sys.stderr)
        return 1
    if isinstance(exc, OSError):
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"geotijian: error: {exc.strerror or exc}{where}. Fix: check the path, its permissions and "
              "the free disk space", file=sys.stderr)
        return 2
    print(f"geotijian: internal error: {type(exc).__name__}: {' '.join(str(exc).split())[:300]} "
          "(rerun with --debug for the traceback, and please report it)", file=sys.stderr)
    return 1


def _warn_one_line(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"geotijian: warning: {' '.join(str(message).split())}", file=sys.stderr)


def _main(argv: list[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.version:
        from . import __version__

        print(__version__)
        return 0
    if args.command is None:
        _parser().print_help()
        return 2
    import geotijian as gt

    shown = warnings.showwarning
    warnings.showwarning = _warn_one_line  # warnings of the scripting commands: one line each
    try:
        return _COMMANDS[args.command](args, gt)
    finally:
        warnings.showwarning = shown


def _cmd_init(args, gt) -> int:
    path = gt.write_template(args.path, overwrite=args.force)
    print(f"wrote {path}: edit the layer paths, then `geotijian run {path}`")
    return 0


def _cmd_run(args, gt) -> int:
    if args.no_memory_check:
        gt.settings.configure(memory_check=False)
    result = gt.run_study(args.config, progress=not args.quiet)
    print(result.summary())
    return 0


def _cmd_report(args, gt) -> int:
    from geotijian.study import report_study

    files = report_study(args.config, output=args.output)
    for f in files:
        if f.suffix == ".docx":
            print(f)
    print(f"{len(files)} files written")
    return 0


def _cmd_sample(args, gt) -> int:
    kw = {"scale": args.scale}
    if args.seed is not None:
        kw["seed"] = args.seed
    written = gt.write_sample(args.folder, **kw)
    for name, path in written.items():
        print(f"{name}: {path}")
    return 0


def _cmd_check(args, gt) -> int:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gdf = gt.read_layer(args.path, args.role, args.crs, coords=args.coords, layer=args.layer)
    meta = gdf.attrs.get("geotijian", {})
    print(f"{args.role}: {len(gdf)} features, source CRS {meta.get('source_crs')}, now {gdf.crs.to_string()}")
    for r in meta.get("repairs", []):
        print(f"  repaired: {r}")
    for w in caught:
        if not any(r in str(w.message) for r in meta.get("repairs", [])):
            print(f"  warning: {w.message}")
    return 0


def _cmd_types(args, gt) -> int:
    import pandas as pd

    if args.indicators:
        cat = gt.indicator_catalogue()
        t = pd.DataFrame({"code": cat["code"], "中文名": cat["name_zh"], "dimension": cat["dimension"],
                          "unit": cat["unit"].fillna(""),
                          "reference": (cat["reference_op"].map({">": ">", ">=": "≥", "<": "<", "<=": "≤", "=": "="})
                                        .fillna("") + cat["reference_value"].map(
                                            lambda v: "" if pd.isna(v) else f"{v:g}")),
                          "source": cat["source"].fillna("")})
    else:
        cat = gt.facility_catalogue()
        t = pd.DataFrame({"code": cat["code"], "中文名": cat["name_zh"],
                          "distance_m": cat["walk_distance_m"].map(lambda v: "" if pd.isna(v) else f"{v:g}"),
                          "life_circle_min": cat["life_circle"].fillna("") if "life_circle" in cat.columns else "",
                          "provision": cat["provision"].fillna("") if "provision" in cat.columns else "",
                          "source": cat["source"].fillna("")})
    if args.csv:
        sys.stdout.write(t.to_csv(index=False))
    else:
        print(_aligned(t))
    return 0


def _aligned(t, *, max_width: int = 60) -> str:
    """A left-aligned text table; Chinese characters count two columns wide."""
    def w(x: str) -> int:
        return sum(2 if ord(ch) > 0x2E80 else 1 for ch in x)

    def cut(x: str) -> str:
        while w(x) > max_width:
            x = x[:-2] + "…"
        return x

    rows = [[str(c) for c in t.columns]] + [[cut(str(v)) for v in r] for r in t.itertuples(index=False)]
    widths = [max(w(r[j]) for r in rows) for j in range(len(t.columns))]
    return "\n".join("  ".join(v + " " * (widths[j] - w(v)) for j, v in enumerate(r)).rstrip() for r in rows)


def _cmd_coverage(args, gt) -> int:
    from . import settings

    if args.crs:
        settings.configure(metric_crs=args.crs)
    result = gt.coverage_from_files(
        network=args.network, network_layer=args.network_layer,
        homes=args.homes, homes_layer=args.homes_layer, homes_role=args.homes_role,
        facilities=args.facilities, facilities_layer=args.facilities_layer, coords=args.coords,
        types=args.types, out=args.out, progress=True)
    print(result)
    return 0


def _cmd_units(args, gt) -> int:
    lo = args.min_pop if args.min_pop is not None else gt.settings.unit_min_pop
    hi = args.max_pop if args.max_pop is not None else gt.settings.unit_max_pop
    if lo >= hi:
        print(f"geotijian units: error: --min-pop ({lo:,}) must be below --max-pop ({hi:,}): units hold "
              f"between the two (default 5,000-12,000 residents)", file=sys.stderr)
        return 2
    result = gt.units_from_files(
        roads=(args.roads, args.roads_layer), compounds=(args.compounds, args.compounds_layer),
        committees=(args.committees, args.committees_layer), towns=(args.towns, args.towns_layer),
        boundary=(args.boundary, args.boundary_layer), water=(args.water, args.water_layer),
        rail=(args.rail, args.rail_layer), min_pop=args.min_pop, max_pop=args.max_pop,
        out=args.out)
    print(result)
    return 0


def _cmd_template(args, gt) -> int:
    t = gt.make_fillin_templates(args.config, out=args.out, progress=True)
    print(f"wrote {len(t.files)} fill-in workbook(s) to {t.files[0].parent if t.files else args.out}:")
    print(t.summary.to_string(index=False))
    return 0


def _cmd_collect(args, gt) -> int:
    res = gt.collect_study_fillins(args.config, args.folder, progress=True)
    c = res.completeness
    print(f"workbooks returned: {int(c['returned'].sum())} of {len(c)}; values filled: {int(c['filled'].sum())} of "
          f"{int(c['expected'].sum())}")
    print(c[["kind_zh", "title", "returned", "filled", "expected", "missing"]].to_string(index=False))
    if args.out:
        from pathlib import Path

        from .io.atomic import atomic_path

        for name, t in (("fillin_issues", res.issues), ("fillin_completeness", c), ("fillin_missing", res.missing),
                        ("fillin_rollup", res.rollup)):
            with atomic_path(Path(args.out) / f"{name}.csv") as tmp:
                t.to_csv(tmp, index=False, encoding="utf-8-sig")
        print(f"reports written to {args.out}")
    if len(res.issues):
        print(f"{len(res.issues)} problem(s):", file=sys.stderr)
        for line in res.messages():
            print(f"  {line}", file=sys.stderr)
        return 2
    print("no problems found")
    return 0


def _cmd_plan(args, gt) -> int:
    result = gt.run_study(args.config, progress=not args.quiet, plan=True)
    print(result.summary())
    return 0


def _cmd_site(args, gt) -> int:
    if args.crs:
        gt.settings.configure(metric_crs=args.crs)
    print(gt.site_from_files(
        network=args.network, network_layer=args.network_layer, homes=args.homes,
        homes_layer=args.homes_layer, homes_role=args.homes_role, facilities=args.facilities,
        facilities_layer=args.facilities_layer, coords=args.coords, facility_type=args.facility_type,
        objective="lscp" if args.lscp else "mclp", p=args.p, candidates=args.candidates,
        candidates_layer=args.candidates_layer, capacity=args.capacity, demand_share=args.demand_share,
        time_limit_s=args.time_limit, mip_rel_gap=args.gap, out=args.out))
    return 0


_COMMANDS = {"init": _cmd_init, "run": _cmd_run, "report": _cmd_report, "sample": _cmd_sample, "check": _cmd_check,
             "coverage": _cmd_coverage, "units": _cmd_units, "template": _cmd_template, "collect": _cmd_collect,
             "types": _cmd_types, "plan": _cmd_plan, "site": _cmd_site}


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
