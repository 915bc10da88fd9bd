"""Peak memory of a whole study by input size: the measurements behind the memory guard.

Run: ``.venv/bin/python benchmarks/bench_memory.py [--scale 18.4] [--keep DIR]``

For each scale the sample district is written like a delivery (``write_sample``), run end
to end with the memory guard off, and the peak resident memory of every step (Linux
``VmHWM``, reset per step) is printed beside the guard's estimate for the same inputs
(``geotijian.resources.estimate_memory``). The guard's coefficients
(``geotijian.resources.MEMORY_MODEL``) come from these figures; rerun this after a change
to a heavy step and update them.

Each scale runs in a fresh process (peak memory of one run, no cache of the previous).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TOML = """\
[study]
name = "mem"
crs = "EPSG:32651"
output = "out"
memory_check = false
[layers.boundary]
path = "sample_district.gpkg"
layer = "boundary"
[layers.towns]
path = "sample_district.gpkg"
layer = "towns"
[layers.committees]
path = "sample_district.gpkg"
layer = "committees"
[layers.compounds]
path = "sample_district.gpkg"
layer = "compounds"
[layers.buildings]
path = "sample_district.gpkg"
layer = "buildings"
[layers.roads]
path = "sample_district.gpkg"
layer = "roads"
[layers.water]
path = "sample_district.gpkg"
layer = "water"
[layers.rail]
path = "sample_district.gpkg"
layer = "rail"
[layers.parks]
path = "sample_district.gpkg"
layer = "parks"
[layers.facilities]
path = "sample_district.gpkg"
layer = "facilities"
[layers.poi_amap]
role = "facilities"
path = "facilities_amap_gcj02.csv"
coords = "gcj02"
[survey]
path = "survey_2024.csv"
[hotline]
path = "complaints_12345.csv"
"""


def _child(folder: str) -> None:
    """Run one study (in its own process) and print a JSON record."""
    import geotijian as gt
    from geotijian.resources import estimate_memory, study_size

    t0 = time.perf_counter()
    res = gt.run_study(Path(folder) / "study.toml", progress=False)
    wall = time.perf_counter() - t0
    size = study_size(res.data, types=len(res.data.meta["walk_distances"]))
    print(json.dumps({"wall_s": round(wall, 1), "timings_s": res.log.timings, "memory_mb": res.log.memory_mb,
                      "size": size, "estimate_mb": round(estimate_memory(size) / 2**20)}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--scale", type=float, nargs="*", default=[1.0, 18.4])
    ap.add_argument("--keep", default=None, help="keep the generated districts in this folder")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        _child(args.child)
        return
    import geotijian as gt

    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bench_memory_"))
    try:
        for scale in args.scale:
            folder = base / f"scale_{scale:g}"
            if not (folder / "sample_district.gpkg").exists():
                t0 = time.perf_counter()
                gt.write_sample(folder, scale=scale)
                print(f"scale {scale:g}: sample written in {time.perf_counter() - t0:.0f} s", flush=True)
            (folder / "study.toml").write_text(TOML, encoding="utf-8")
            out = subprocess.run([sys.executable, __file__, "--child", str(folder)], capture_output=True,
                                 text=True, check=False)
            if out.returncode != 0:
                print(f"scale {scale:g}: failed\n{out.stderr[-3000:]}")
                continue
            rec = json.loads(out.stdout.strip().splitlines()[-1])
            peak = max(rec["memory_mb"].values())
            print(f"scale {scale:g}: {rec['size']}")
            print(f"  wall {rec['wall_s']} s; peak {peak:,.0f} MB (estimate {rec['estimate_mb']:,} MB)")
            print("  per step (s, MB): " + ", ".join(
                f"{k} {rec['timings_s'][k]:.0f} s {rec['memory_mb'][k]:,.0f}" for k in rec["memory_mb"]), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
