"""The sample study's results as a plain snapshot: coverage shares, units, problems, ledger.

``tests/test_results_unchanged.py`` compares a fresh run of ``layers/sample/study.toml``
with ``tests/data/sample_results.json``, written by this module from ``main`` at the base of
the district-scale work (issue 15), so that speed work on the outputs cannot change a
result. Regenerate it (only from a ``main`` whose results legitimately changed, never from
the work under test)::

    .venv/bin/python -m tests.results_snapshot

Floats are kept at full precision; the test compares them with a relative tolerance of
1e-9 (summation order may differ), everything else exactly.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "layers" / "sample" / "study.toml"
SNAPSHOT = ROOT / "tests" / "data" / "sample_results.json"


def _records(df: pd.DataFrame, cols: list[str], sort: list[str]) -> list[dict[str, Any]]:
    out = pd.DataFrame(df[cols]).sort_values(sort, kind="stable").reset_index(drop=True)
    rows = []
    for rec in out.to_dict(orient="records"):
        clean = {}
        for k, v in rec.items():
            if isinstance(v, (np.generic,)):
                v = v.item()
            if isinstance(v, float) and not np.isfinite(v):
                v = None if np.isnan(v) else ("inf" if v > 0 else "-inf")
            elif isinstance(v, (list, tuple, np.ndarray)):
                v = [str(x) for x in v]
            elif v is None or (not isinstance(v, (str, int, float, bool)) and pd.isna(v)):
                v = None
            clean[k] = v
        rows.append(clean)
    return rows


def results_snapshot(result: Any) -> dict[str, Any]:
    """The results of a :class:`geotijian.study.StudyResult` that speed work must not change.

    ``coverage``: every row of ``coverage_by_area`` (unit / town / district shares);
    ``units``: ID, town, committees, population, households, area (ha), compound count,
    flag; ``compound_units``: the unit of every compound; ``problems``: the problem points
    (ID, problem, class, value, reference, gap, affected residents, suggestion);
    ``problem_list``: the grouped problems in their order; ``ledger``: every row.
    """
    d = result.data
    cov = result.tables["coverage"]
    units = d.units
    ucols = [c for c in ("unit_id", "town_code", "committees", "population", "households",
                         "area_ha", "compound_count", "flag", "flag_reason") if c in units.columns]
    pcols = ["point_id", "problem_id", "indicator_code", "level", "area_id", "value", "reference", "gap",
             "problem_class", "affected_population", "suggestion"]
    points = d.problem_points if getattr(d, "problem_points", None) is not None else d.problems
    lcols = [c for c in d.ledger.columns if c != "geometry"]
    lkey = "point_id" if "point_id" in d.ledger.columns else "problem_id"
    out = {
        "coverage": _records(cov, ["level", "area_id", "facility_type", "population",
                                   "covered_population", "share", "not_covered"],
                             ["level", "area_id", "facility_type"]),
        "units": _records(units, ucols, ["unit_id"]),
        "compound_units": _records(d.compounds, ["compound_id", "unit_id"], ["compound_id"]),
        # the problem points (one per indicator and area; the problems of before issue 20)
        "problems": _records(points, [c for c in pcols if c in points.columns],
                             ["point_id" if "point_id" in points.columns else "problem_id"]),
        "ledger": _records(d.ledger, lcols, [lkey]),
    }
    if "point_count" in d.problems.columns:   # the 问题清单: one problem per indicator and level
        out["problem_list"] = _records(d.problems, ["seq", "problem_id", "problem_class", "point_count",
                                                    "affected_population", "reference_source"], ["seq"])
    return out


def _dumps(snap: dict[str, Any]) -> str:
    """JSON with one record per line (readable diffs)."""
    parts = []
    for k, v in snap.items():
        if isinstance(v, list):
            body = ",\n".join(json.dumps(r, ensure_ascii=False) for r in v)
            parts.append(f"{json.dumps(k)}: [\n{body}\n]")
        else:
            parts.append(f"{json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def main() -> None:
    import geotijian as gt

    with tempfile.TemporaryDirectory() as tmp:
        res = gt.run_study(SAMPLE, progress=False, output=tmp)
        snap = results_snapshot(res)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    snap = {"generated_from": commit, **snap}
    SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
    SNAPSHOT.write_text(_dumps(snap), encoding="utf-8")
    print(f"wrote {SNAPSHOT} from {commit}: " + ", ".join(f"{k} {len(v)}" for k, v in snap.items()
                                                           if isinstance(v, list)), file=sys.stderr)


if __name__ == "__main__":
    main()
