"""Rooms that fit in a head: no module over ~1,000 lines, no function over ~120 (STYLE).

Runs ``scripts/room_sizes.py`` on the package (its explicit exception list names the rooms
other work is still changing) and checks that the measure itself catches what it should.
"""

from __future__ import annotations

import importlib.util
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def rooms():
    spec = importlib.util.spec_from_file_location("room_sizes", ROOT / "scripts" / "room_sizes.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules["room_sizes"] = mod  # dataclasses look their module up
    try:
        spec.loader.exec_module(mod)
        yield mod
    finally:
        sys.modules.pop("room_sizes", None)


def test_every_room_fits_or_is_a_listed_exception(rooms, capsys):
    status = rooms.main([])
    out = capsys.readouterr().out
    assert status == 0, f"scripts/room_sizes.py:\n{out}"


def test_the_measure_finds_big_modules_and_functions(rooms, tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    body = "\n".join(f"    x{i} = {i}" for i in range(130))
    (pkg / "sub" / "big.py").write_text(textwrap.dedent("""\
        class K:
            def method(self):
        """) + textwrap.indent(body, "    ") + "\n\n\ndef small():\n    return 1\n"
        + "\n" * 900 + "def nested():\n    def inner():\n" + textwrap.indent(body, "    ") + "\n")
    (pkg / "kern.pyx").write_text("cdef int a\n" * 1001)
    sizes = {r.key: r.lines for r in rooms.measure(pkg)}
    assert sizes["pkg/sub/big.py::K.method"] == 131
    assert sizes["pkg/sub/big.py::small"] == 2
    assert sizes["pkg/sub/big.py::nested"] == 132
    assert sizes["pkg/sub/big.py::nested.<locals>.inner"] == 131
    assert sizes["pkg/kern.pyx"] == 1001
    bad, excused, stale = rooms.check(rooms.measure(pkg), {
        "pkg/kern.pyx": "being replaced", "pkg/gone.py": "split long ago"})
    assert {r.key for r in bad} == {"pkg/sub/big.py", "pkg/sub/big.py::K.method",
                                    "pkg/sub/big.py::nested",
                                    "pkg/sub/big.py::nested.<locals>.inner"}
    assert [r.key for r in excused] == ["pkg/kern.pyx"]
    assert stale == ["pkg/gone.py"]


def test_the_lowest_layers_import_nothing_above_them():
    """Data flows one way (io → network → units / access → indicators → assess → report):
    ``geotijian.io`` and ``geotijian.network`` import only the shared base modules
    (settings, errors, model, _kernels, data) and what lies below them, ``_kernels``
    nothing of geotijian but itself, settings and errors."""
    import ast

    pkg = Path(__file__).resolve().parents[1] / "geotijian"
    base = {"settings", "errors", "model", "_kernels", "data"}
    allowed = {"_kernels": {"_kernels", "settings", "errors"}, "io": base | {"io"}, "network": base | {"io", "network"}}
    found = []
    for layer, ok in allowed.items():
        for f in sorted((pkg / layer).rglob("*.py")):
            depth = len(f.relative_to(pkg).parts) - 1   # 1: a module of the layer's package
            for node in ast.walk(ast.parse(f.read_text(encoding="utf-8"))):
                if isinstance(node, ast.ImportFrom) and node.level:
                    if node.level == depth:               # "from . import x" / "from .x import"
                        target = layer
                    else:                                  # "from .. import x" / "from ..x import"
                        target = node.module.split(".")[0] if node.module else None
                    names = [target] if target else [a.name for a in node.names]
                    found += [(str(f.relative_to(pkg)), n) for n in names if n not in ok]
                elif isinstance(node, (ast.Import, ast.ImportFrom)):
                    mods = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    found += [(str(f.relative_to(pkg)), m.split(".")[1]) for m in mods
                              if m.startswith("geotijian.") and m.split(".")[1] not in ok]
    assert found == [], found
