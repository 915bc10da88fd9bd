"""The three-level fill-in (区—街镇—社区) at district scale: templates, answers, collection.

Run: ``.venv/bin/python benchmarks/bench_fillin.py [--scale 18.4] [--quick]``

What a district office waits for, at Jiading scale (``make_sample_district(scale=18.4)``:
~1.8 M residents, 11 towns' worth of communities, every residential building a 住房 row):

1. ``fillin_areas`` + ``fillin_plan``: who fills in which indicator on which rows;
2. ``write_fillin_workbooks``: one workbook per department, town and pilot community;
3. (the suppliers' part, not timed as geotijian's) every workbook answered by a script
   with ``fill_workbook``;
4. ``collect_fillins``: every returned workbook read, validated and rolled up
   栋 → 小区 → 社区 → 街镇 → 区.

Beside them, the floors: the same cells written by openpyxl in write-only mode with no
styles or validation (for 2), and the returned workbooks read by python-calamine with no
checks (for 4). The study's own computation is not part of this benchmark (see
``bench_study.py``): the units are delineated here with ``build_units``, and the codes a
study computes are those the bundled sample study computes (``_prepared_run`` on
``layers/sample/study.toml``: they depend on the layers given, not on the scale).

Targets (set by us, the issue has none): templates ≤ 5× their write floor and
collection ≤ 5× its read floor, both under 60 s at district scale, in CPU seconds (the
machine this was written on is shared: its wall clock says more about the load than about
the code); the exit code is 1 when one is missed. Peak RSS is printed (``ru_maxrss``).
"""

from __future__ import annotations

import argparse
import resource
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _timed(label: str, fn, *args, **kwargs):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"  {label:<44} {wall:8.2f} s wall {cpu:8.2f} s CPU   peak {_peak_mb():7.0f} MB", flush=True)
    return out, wall, cpu


def _computed_codes() -> tuple[set[str], pd.DataFrame]:
    """The codes the bundled sample study computes, and its edition's catalogue."""
    import geotijian as gt
    from geotijian.study import _prepared_run

    cfg = gt.read_config(ROOT / "layers" / "sample" / "study.toml")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = _prepared_run(cfg, progress=False)
    return set(res.data.meta.get("computed_codes", ())), res.data.meta["catalogue"]


def _answers(cells: pd.DataFrame, kinds: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    """A scripted answer for every cell a workbook asks for (flags 是/否, numbers in range)."""
    from geotijian.indicators.fillin import NO, YES

    kind = cells["code"].map(kinds).to_numpy()
    n = len(cells)
    values = np.where(rng.random(n) < 0.2, YES, NO).astype(object)
    num = kind != "flag"
    values[num] = np.round(rng.uniform(0, 50, num.sum()), 1)
    share = kind == "percent"
    values[share] = np.round(rng.uniform(40, 100, share.sum()), 1)
    count = kind == "count"
    values[count] = rng.integers(0, 20, count.sum()).astype(float)
    return pd.DataFrame({"record_id": cells["record_id"].to_numpy(), "code": cells["code"].to_numpy(), "value": values})


def _write_floor(plan, folder: Path) -> float:
    """The same cells, one workbook per supplier, in openpyxl's write-only mode, no styles."""
    from openpyxl import Workbook

    t0 = time.process_time()
    for wid, cells in plan.cells.groupby("workbook_id", sort=True):
        wb = Workbook(write_only=True)
        for rec, c in cells.groupby("record", sort=True):
            ws = wb.create_sheet(str(rec)[:31])
            codes = list(dict.fromkeys(c["code"]))
            ws.append(["record_id", *codes])
            for rid in c["record_id"].drop_duplicates().sort_values():
                ws.append([rid, *[None] * len(codes)])
        wb.save(folder / f"{wid.replace(':', '_')}.xlsx")
    return time.process_time() - t0


def _read_floor(files: list[Path]) -> float:
    from python_calamine import CalamineWorkbook

    t0 = time.process_time()
    for f in files:
        wb = CalamineWorkbook.from_path(str(f))
        for name in wb.sheet_names:
            wb.get_sheet_by_name(name).to_python()
    return time.process_time() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scale", type=float, default=18.4)
    ap.add_argument("--quick", action="store_true", help="scale 2")
    ap.add_argument("--pilots", type=int, default=10, help="pilot communities (own workbooks)")
    args = ap.parse_args()
    scale = 2.0 if args.quick else args.scale

    import geotijian as gt
    from geotijian.indicators.collect import collect_fillins
    from geotijian.indicators.fillin import fill_workbook, fillin_areas, fillin_plan, write_fillin_workbooks
    from geotijian.units import build_units

    print(f"fill-in at scale {scale}")
    (codes, catalogue), _, _ = _timed("computed codes (the sample study, scale 1)", _computed_codes)
    s, _, _ = _timed("make_sample_district", gt.make_sample_district, scale=scale)
    crs = "EPSG:32651"
    lay = {k: (v.to_crs(crs) if hasattr(v, "to_crs") and v.crs is not None else v) for k, v in s.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        built, _, _ = _timed("build_units", build_units, lay["roads"], lay["compounds"], boundary=lay["boundary"],
                             committees=lay["committees"], towns=lay["towns"], water=lay["water"], rail=lay["rail"],
                             buildings=lay["buildings"])
    units = built["units"]
    pilots = list(units["unit_id"].astype(str).sort_values().iloc[:: max(1, len(units) // args.pilots)][: args.pilots])
    print(f"  {len(units):,} units, {len(built['compounds']):,} compounds, {len(lay['buildings']):,} buildings, "
          f"{len(pilots)} pilot communities")

    def plan_fn():
        areas, unplaced = fillin_areas(units, compounds=built["compounds"], buildings=lay["buildings"],
                                       towns=lay["towns"], committees=lay["committees"], district_name="bench")
        return fillin_plan(catalogue, areas, computed_codes=codes, pilot_communities=pilots, study="bench",
                           year=2024, district_name="bench", unplaced=unplaced)

    tmp = Path(tempfile.mkdtemp(prefix="bench_fillin_"))
    ok = True
    try:
        plan, _, t_plan = _timed("fillin_areas + fillin_plan", plan_fn)
        counts = plan.cells.groupby("record").size().to_dict()
        print(f"  {len(plan.workbooks)} workbooks, {len(plan.cells):,} cells to fill: {counts}")
        files, _, t_write = _timed("write_fillin_workbooks", write_fillin_workbooks, plan, tmp / "templates",
                                   generator="bench")
        size = sum(f.stat().st_size for f in files) / 1e6
        print(f"  templates: {len(files)} files, {size:.1f} MB, largest "
              f"{max(f.stat().st_size for f in files) / 1e6:.1f} MB")
        (tmp / "floor").mkdir()
        f_write = _write_floor(plan, tmp / "floor")
        print(f"  {'floor: same cells, openpyxl write-only':<44} {'':8} {f_write:8.2f} s CPU")

        rng = np.random.default_rng(20241205)
        kinds = plan.items.drop_duplicates("code").set_index("code")["kind"]
        by_file = dict(zip(plan.workbooks["workbook_id"], plan.workbooks["file"], strict=True))

        def answer_all():
            out = []
            for wid, cells in plan.cells.groupby("workbook_id", sort=True):
                out.append(fill_workbook(tmp / "templates" / by_file[wid], _answers(cells, kinds, rng),
                                         organisation=f"{wid} 专班", default_source="bench", date="2024-11-15",
                                         out=tmp / "returned" / by_file[wid]))
            return out

        (tmp / "returned").mkdir()
        returned, _, _ = _timed("(suppliers) every workbook answered", answer_all)
        res, _, t_collect = _timed("collect_fillins", collect_fillins, tmp / "returned", plan)
        f_read = _read_floor(returned)
        print(f"  {'floor: returned workbooks read by calamine':<44} {'':8} {f_read:8.2f} s CPU")
        print(f"  collected: {len(res.records):,} records, {len(res.values):,} rolled-up values, "
              f"{len(res.issues)} issues in the scripted answers")
        if len(res.issues):
            print("   ", "\n    ".join(res.messages()[:5]))
            ok = False
        t_templates = t_plan + t_write
        print("\nfigures beside the targets")
        for label, value, floor in [("templates (plan + write)", t_templates, f_write),
                                    ("collection", t_collect, f_read)]:
            ratio = value / floor if floor > 0 else float("inf")
            met = value <= 60 and ratio <= 5
            ok &= met
            print(f"  {label:<28} {value:7.2f} s CPU = {ratio:4.1f}x floor {floor:6.2f} s CPU "
                  f"(target <= 5x and <= 60 s): {'met' if met else 'MISSED'}")
        print(f"  peak RSS {_peak_mb():.0f} MB")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
