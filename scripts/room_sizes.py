"""Rooms that no longer fit in a head: modules over ~1,000 lines, functions over ~120.

Run: ``python scripts/room_sizes.py [--all]``. Prints every module of ``geotijian/`` over
``MODULE_MAX`` lines and every function (or method) over ``FUNCTION_MAX`` lines, each
marked ``ok (exception: why)`` when it is in ``EXCEPTIONS`` below, and exits with status 1
when an item over the limit is not an exception, or when an exception is stale (its item
is gone or back under the limit: delete the entry). ``--all`` also lists the ten largest
modules and functions. ``tests/test_room_sizes.py`` runs it, so the rule holds.

Sizes count physical lines: a module is its whole file (``.py`` and ``.pyx``); a function
runs from its ``def`` line to its last line, docstring and nested functions included
(decorators not). A nested function is counted inside its parent, and reported on its own
as well when it alone is over the limit.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "geotijian"
MODULE_MAX = 1000       #: lines of one module (STYLE: split a module before ~1,000 lines)
FUNCTION_MAX = 120      #: lines of one function (split a function before ~120)

#: Rooms over the limit on purpose or for now, with the reason. Keys are a module path
#: relative to the repository (``geotijian/io/osm.py``) or a function as
#: ``<module path>::<qualified name>`` (``geotijian/units/delineate.py::delineate_units``).
#: Keep the list short and honest: remove an entry as soon as its room is split (the test
#: fails on a stale entry).
EXCEPTIONS: dict[str, str] = {}


@dataclass(frozen=True)
class Room:
    key: str          #: ``path`` or ``path::qualname``
    lines: int
    limit: int


def _functions(tree: ast.AST, prefix: str = "") -> list[tuple[str, ast.AST]]:
    """Every function and method with its qualified name (``Class.method``, ``f.<inner>``)."""
    out: list[tuple[str, ast.AST]] = []
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            name = f"{prefix}{node.name}"
            out.append((name, node))
            out.extend(_functions(node, f"{name}.<locals>."))
        elif isinstance(node, ast.ClassDef):
            out.extend(_functions(node, f"{prefix}{node.name}."))
        else:
            out.extend(_functions(node, prefix))
    return out


def measure(package: Path = PACKAGE) -> list[Room]:
    """Every module and function of ``package`` with its size in lines, largest first."""
    rooms: list[Room] = []
    files = sorted(p for ext in ("*.py", "*.pyx") for p in package.rglob(ext))
    for path in files:
        rel = path.relative_to(package.parent).as_posix()
        text = path.read_text(encoding="utf-8")
        rooms.append(Room(rel, len(text.splitlines()), MODULE_MAX))
        if path.suffix != ".py":
            continue  # Cython: module size only
        for name, node in _functions(ast.parse(text, filename=rel)):
            n = node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]
            rooms.append(Room(f"{rel}::{name}", n, FUNCTION_MAX))
    return sorted(rooms, key=lambda r: -r.lines)


def check(rooms: list[Room], exceptions: dict[str, str] = EXCEPTIONS
          ) -> tuple[list[Room], list[Room], list[str]]:
    """(over the limit and not excepted, over the limit and excepted, stale exceptions)."""
    over = [r for r in rooms if r.lines > r.limit]
    bad = [r for r in over if r.key not in exceptions]
    excused = [r for r in over if r.key in exceptions]
    over_keys = {r.key for r in over}
    stale = [k for k in exceptions if k not in over_keys]
    return bad, excused, stale


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--all", action="store_true", help="also list the ten largest of each kind")
    args = ap.parse_args(argv)
    rooms = measure()
    bad, excused, stale = check(rooms)
    print(f"limits: module {MODULE_MAX} lines, function {FUNCTION_MAX} lines")
    for r in bad:
        print(f"  TOO BIG  {r.lines:5d}  {r.key}")
    for r in excused:
        print(f"  ok       {r.lines:5d}  {r.key}  (exception: {EXCEPTIONS[r.key]})")
    for k in stale:
        print(f"  STALE    exception {k!r} is no longer over its limit: remove it from EXCEPTIONS")
    if args.all:
        for kind, test in (("modules", lambda r: "::" not in r.key),
                           ("functions", lambda r: "::" in r.key)):
            print(f"largest {kind}:")
            for r in [r for r in rooms if test(r)][:10]:
                print(f"           {r.lines:5d}  {r.key}")
    if bad or stale:
        return 1
    print("every other room fits")
    return 0


if __name__ == "__main__":
    sys.exit(main())
