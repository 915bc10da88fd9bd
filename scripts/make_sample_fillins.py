"""Make layers/sample/fillins/: the sample district's returned fill-in workbooks (填报表).

The three-level fill-in of the 2024 check-up as it stands when the report is drafted:

* both towns (菊园新区, 嘉定镇街道) returned their workbooks: one 住房 record per residential
  building, one 小区 record per compound, their communities' and their 街区 values; 嘉定镇
  街道 has not measured 公园绿化活动场地服务半径覆盖率 yet (left empty);
* the pilot community 育绿居委会 (310114101-U01) returned its own workbook;
* no district department has returned its workbook yet (the completeness report lists
  them).

The workbooks are the real templates (``geotijian.make_fillin_templates`` on the sample
study), filled with ``geotijian.indicators.fillin.fill_workbook``. Answers are drawn from
a fixed seed but follow the buildings and compounds: hazards and retrofit needs are far
more frequent in estates built before 2000 (Shanghai's 老旧小区 line), village houses (村宅)
lack property management, older compounds lack parking and charging. Deterministic:
the same sample gives the same bytes.

Run: .venv/bin/python scripts/make_sample_fillins.py
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

import geotijian as gt
from geotijian.indicators.fillin import NO, YES, fill_workbook

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "layers" / "sample"
OUT = SAMPLE / "fillins"
SEED = 20241115
PILOT = "310114101-U01"
ORGANISATION = {"town:310114101": "菊园新区管委会 城市体检工作专班", "town:310114102": "嘉定镇街道办事处 城市体检工作专班",
                f"community:{PILOT}": "育绿居委会"}
SOURCE = {"town:310114101": "2024年街镇住房安全巡查与小区设施核查(菊园新区)",
          "town:310114102": "2024年街镇住房安全巡查与小区设施核查(嘉定镇街道)",
          f"community:{PILOT}": "试点社区逐栋入户排查(育绿居委会)"}
NOT_YET = {("town:310114102", "d_park_activity_coverage")}      # not measured yet: left empty


def _config() -> gt.StudyConfig:
    """The sample study without its [fillin] folder (the folder this script makes)."""
    text = (SAMPLE / "study.toml").read_text(encoding="utf-8")
    text = "\n".join(ln for ln in text.splitlines() if not ln.strip().startswith("folder ="))
    tmp = SAMPLE / ".study_fillins.toml"
    tmp.write_text(text, encoding="utf-8")
    try:
        return gt.read_config(tmp)
    finally:
        tmp.unlink()


def _building_answers(cells: pd.DataFrame, areas: dict, rng: np.random.Generator) -> pd.Series:
    b = areas["building"].set_index("record_id")
    year = b["build_year"].reindex(cells["record_id"]).to_numpy(dtype=float)
    levels = b["levels"].reindex(cells["record_id"]).to_numpy(dtype=float)
    old = np.nan_to_num(year, nan=1995) < 2000
    walkup = (np.nan_to_num(levels, nan=6) >= 4) & (np.nan_to_num(levels, nan=6) <= 7)
    p_old = {"h_structural_risk": 0.04, "h_gas_risk": 0.12, "h_stair_risk": 0.10, "h_envelope_risk": 0.15,
             "h_pipe_damage": 0.10, "h_water_quality": 0.02, "h_energy_retrofit": 0.55, "h_digital_retrofit": 0.35}
    p_new = {"h_structural_risk": 0.003, "h_gas_risk": 0.01, "h_stair_risk": 0.03, "h_envelope_risk": 0.02,
             "h_pipe_damage": 0.01, "h_water_quality": 0.005, "h_energy_retrofit": 0.05, "h_digital_retrofit": 0.10}
    code = cells["code"].to_numpy()
    p = np.array([p_old.get(c, 0.0) if o else p_new.get(c, 0.0) for c, o in zip(code, old, strict=True)])
    lift = code == "h_age_friendly_retrofit"           # walk-up blocks built before 2000 mostly lack lifts
    p[lift] = np.where(old[lift] & walkup[lift], 0.7, 0.02)
    answer = np.where(rng.random(len(cells)) < p, YES, NO).astype(object)
    units = code == "h_non_self_contained"              # dwellings (套) per building, not 是/否
    answer[units] = np.where(old[units] & (rng.random(int(units.sum())) < 0.06),
                             rng.integers(2, 13, int(units.sum())), 0)
    return pd.Series(answer, index=cells.index)


def _compound_answers(cells: pd.DataFrame, areas: dict, rng: np.random.Generator) -> pd.Series:
    c = areas["compound"].set_index("record_id")
    year = c["build_year"].reindex(cells["record_id"]).to_numpy(dtype=float)
    pop = c["population"].reindex(cells["record_id"]).fillna(0).to_numpy(dtype=float)
    name = c["name"].reindex(cells["record_id"]).astype(str).to_numpy()
    village = np.char.find(name.astype(str), "村") >= 0
    old = np.nan_to_num(year, nan=1995) < 2000
    code = cells["code"].to_numpy()
    p = np.select([code == "c_no_property_mgmt", code == "c_no_waste_sorting", code == "c_ebike_charging_missing",
                   code == "c_smart_retrofit", code == "c_activity_ground_missing_compounds",
                   np.isin(code, ["c_elderly_missing_compounds", "c_infant_care_missing_compounds",
                                  "c_kindergarten_missing_compounds"])],
                  [np.where(village, 0.6, np.where(old, 0.08, 0.0)), np.full(len(code), 0.01),
                   np.where(old | village, 0.35, 0.05), np.where(old, 0.5, 0.1), np.where(village, 0.4, 0.1),
                   np.where(pop > 300, 0.25, 0.08)], 0.0)
    answer = np.where(rng.random(len(cells)) < p, YES, NO).astype(object)
    gaps = np.isin(code, ["c_parking_gap", "c_ev_charging_gap"])
    need = np.where(code[gaps] == "c_parking_gap", 0.12, 0.05) * pop[gaps] * np.where(old[gaps], 1.0, 0.2)
    answer[gaps] = np.floor(need * rng.random(int(gaps.sum()))).astype(int)
    return pd.Series(answer, index=cells.index)


def _area_answers(cells: pd.DataFrame, items: pd.DataFrame, rng: np.random.Generator) -> pd.Series:
    kind = cells["code"].map(items.set_index("code")["kind"]).to_numpy()
    code = cells["code"].to_numpy()
    out = np.empty(len(cells), dtype=object)
    pct = kind == "percent"
    out[pct] = np.round(60 + 35 * rng.random(int(pct.sum())), 1)
    km = code == "c_substandard_walkway_km"
    out[km] = np.round(1.5 * rng.random(int(km.sum())), 2)
    cnt = ~pct & ~km
    out[cnt] = rng.integers(0, 4, int(cnt.sum()))
    return pd.Series(out, index=cells.index)


def main() -> list[Path]:
    cfg = _config()
    with tempfile.TemporaryDirectory() as tmp:
        tpl = gt.make_fillin_templates(cfg, out=Path(tmp) / "templates")
        plan = tpl.plan
        rng = np.random.default_rng(SEED)
        if OUT.exists():
            shutil.rmtree(OUT)
        OUT.mkdir(parents=True)
        written = []
        for wb in plan.workbooks.itertuples(index=False):
            if wb.kind == "department":
                continue        # no district department has returned its workbook yet
            cells = plan.cells[plan.cells["workbook_id"] == wb.workbook_id].reset_index(drop=True)
            cells = cells[[(wb.workbook_id, c) not in NOT_YET for c in cells["code"]]].reset_index(drop=True)
            value = pd.Series(index=cells.index, dtype=object)
            for rec, fn in (("building", lambda c: _building_answers(c, plan.areas, rng)),
                            ("compound", lambda c: _compound_answers(c, plan.areas, rng)),
                            ("community", lambda c: _area_answers(c, plan.items, rng)),
                            ("town", lambda c: _area_answers(c, plan.items, rng))):
                sel = cells["record"] == rec
                if sel.any():
                    value[sel] = fn(cells[sel])
            path = fill_workbook(Path(tmp) / "templates" / wb.file, cells.assign(value=value),
                                 organisation=ORGANISATION[wb.workbook_id], default_source=SOURCE[wb.workbook_id],
                                 contact="城市体检工作专班", date="2024-09-30", out=OUT / wb.file)
            written.append(path)
    return written


if __name__ == "__main__":
    for p in main():
        print(p.relative_to(ROOT))
