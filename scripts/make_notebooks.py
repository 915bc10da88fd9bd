"""Write the planner notebooks in notebooks/ and run them, so they are stored with their outputs
(tables, maps) and read on GitHub or in Jupyter without running anything.

Run: ``.venv/bin/python scripts/make_notebooks.py`` (about two minutes: notebook 03 runs the
whole sample study). ``--no-run`` writes them without outputs. ``tests/test_notebooks.py``
executes every notebook again and checks the stored outputs are there.
"""

from pathlib import Path

import sys

import nbformat as nbf

ROOT = Path(__file__).resolve().parents[1]
md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell

SETUP = """import warnings
from pathlib import Path

import geotijian as gt

STUDY = Path("../layers/sample/study.toml")   # the bundled sample district (嘉定 sample)
cfg = gt.read_config(STUDY)
data, osm = gt.load_study(cfg)
print({k: len(v) for k, v in data.layers().items()})"""

NB1 = [
    md("# 01 社区体检单元划分 · Community check-up units\n\n"
       "按嘉定2024工作方案, 社区体检单元以居委会管辖范围为基础, 综合考虑道路网、河流铁路和现状小区边界, "
       "居住人口宜为 **5,000–12,000 人**; 小区不拆分。\n\n"
       "Units of 5,000–12,000 residents, built on residents' committees, bounded by roads, "
       "rivers and railways; a residential compound (小区) is never split."),
    code(SETUP),
    md("## 1. 街坊 Blocks\n道路 (三级及以上) 、河流与铁路围合成街坊; 河道内不产生街坊。"
       "Blocks are polygonised from tertiary-and-above roads, rivers and rail."),
    code("""blocks = gt.delineate_blocks(data.roads, data.boundary,
                             barriers=[data.water, data.rail], towns=data.towns)
print(len(blocks), "blocks;", blocks.attrs["geotijian"]["report"]["validation"])
blocks.head()"""),
    md("## 2. 人口 Population on compounds\n小区属性人口 (也可由建筑面积或人口栅格推算, 总量守恒)。"),
    code("""compounds, report = gt.allocate_population(data.compounds, source="attribute")
print(f"{report['allocated']:,.0f} residents on {len(compounds)} compounds")"""),
    md("## 3. 单元 Units\n超过 12,000 人的居委会拆分为紧凑、均衡的街坊组; 不足 5,000 人的与同街镇相邻居委会合并; "
       "无法达标的单元 (如单个小区超过 12,000 人) 标注原因。"),
    code("""with warnings.catch_warnings(record=True) as caught:  # the units' notes, shown as text below
    warnings.simplefilter("always")
    units = gt.delineate_units(blocks, compounds, data.committees, data.towns)
for w in caught:
    print("注意 note:", w.message)
units[["unit_id", "town_name", "committees", "population", "area_ha", "compactness", "flag", "flag_reason"]]"""),
    code("""gt.range_compliance(units)"""),
    md("## 4. 地图 Map\n交互地图 (folium) 直接显示在笔记本中。"),
    code("""units.explore(column="population", cmap="YlOrRd", tooltip=["unit_id", "population", "flag_reason"],
              tiles=None, style_kwds={"weight": 1})"""),
]

NB2 = [
    md("# 02 15分钟社区生活圈覆盖 · Life-circle coverage\n\n"
       "按 GB 50180-2018 的步行距离 (幼儿园 300 m、小学 500 m、初中 1000 m ...) 计算每个小区到各类设施的"
       "**路网步行距离**, 得到按人口加权的覆盖率与覆盖缺口。\n\n"
       "Exact network walking distance from every compound to the nearest facility of each type; "
       "population-weighted coverage and the gaps."),
    code(SETUP),
    md("## 1. 步行网络 Walk network\n路网转为紧凑的 CSR 数组 (米); 小区从边界接入最近的路段, 设施吸附到最近路段而非最近节点。"),
    code("""net = gt.build_network(data.roads)
net"""),
    md("## 2. 设施目录 Facility catalogue"),
    code("""cat = gt.facility_catalogue()
cat[cat["walk_distance_m"].notna()][["code", "name_zh", "life_circle", "walk_distance_m", "confidence"]].head(20)"""),
    md("## 3. 覆盖率 Coverage\n每类设施一次多源最短路 (scipy.sparse.csgraph)。"),
    code("""blocks = gt.delineate_blocks(data.roads, data.boundary, barriers=[data.water, data.rail], towns=data.towns)
with warnings.catch_warnings():  # (notebook 01 shows the units' notes)
    warnings.simplefilter("ignore")
    units = gt.delineate_units(blocks, data.compounds, data.committees, data.towns)
cu = units.attrs["geotijian"]["compound_unit"]
homes = data.compounds.assign(unit_id=data.compounds["compound_id"].map(cu)).rename(columns={"compound_id": "home_id"})
with warnings.catch_warnings(record=True) as caught:  # its notes, shown as text
    warnings.simplefilter("always")
    cov = gt.service_coverage(net, homes[["home_id", "unit_id", "population", "geometry"]], data.facilities,
                              units=units)
for w in caught:
    print("注意 note:", w.message)
district = cov.per_area[cov.per_area["level"] == "district"]
district[["facility_type", "population", "covered_population", "share", "not_covered"]]"""),
    md("## 4. 覆盖缺口 Coverage gaps\n未覆盖的小区, 以及到最近同类设施的距离。"),
    code("""gaps = gt.coverage_gaps(cov)
gaps[gaps["facility_type"] == "kindergarten"].sort_values("distance_m", ascending=False).head(10)"""),
    code("""areas = gt.service_areas(net, data.facilities, types=["kindergarten"])
m = areas.explore(color="green", tiles=None, name="幼儿园300米服务范围")
gaps[gaps["facility_type"] == "kindergarten"].explore(m=m, column="distance_m", cmap="Reds", name="缺口")
m"""),
]

NB3 = [
    md("# 03 问题地图与体检报告 · Problem map and report\n\n"
       "一次运行完成整个体检: 指标计算、对标判断、问题分类 (限时解决 / 尽力解决 / 长期谋划)、"
       "问题台账与“一表三清单”, 以及离线可用的问题地图。\n\n"
       "One run does the whole check-up and writes every report attachment."),
    code("""from pathlib import Path

import geotijian as gt

result = gt.run_study(Path("../layers/sample/study.toml"), progress=False)
print(result.summary())"""),
    md("## 一表 Indicator table"),
    code("""result.tables["indicator_table"].head(15)"""),
    md("## 三清单 Strengths, problems, suggestions"),
    md("问题清单: 每个指标在每个层级一项问题, 按严重程度排序 (类别、影响人口、差距); 其问题点位 (社区体检单元) 在问题点位表与台账中。"
       "\n\nThe problem list: one problem per indicator and level, most severe first; its points (units) are "
       "in the problem points table and the ledger."),
    code("""result.tables["problems"][["seq", "name_zh", "level", "problem_class", "point_count", "point_names",
                           "affected_population", "reference_source"]].head(10)"""),
    code("""result.tables["problem_points"][["point_id", "area_name", "value", "reference", "problem_class"]].head(10)"""),
    code("""result.data.ledger.head(10)"""),
    md("## 问题地图 Problem map (offline HTML)\n保存的 HTML 内嵌 Leaflet, 政务内网无网络也能打开; 这里以 900×600 嵌入"
       "(图例与侧栏折叠, 点击展开)。The saved map, embedded at 900 × 600 (panels folded, a click opens them)."),
    code("""from IPython.display import IFrame

IFrame(Path("../outputs/sample/maps/problem_map.html"), width=900, height=600)"""),
    md("## 问题分布图 Problem figure (for print)"),
    code("""from IPython.display import Image

Image(filename="../outputs/sample/maps/problems.png", width=800)"""),
    code("""sorted(p.relative_to(result.out_dir).as_posix() for p in result.files)"""),
]


def write(name: str, cells: list) -> None:
    nb = nbf.v4.new_notebook()
    nb.cells = cells
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbf.write(nb, ROOT / "notebooks" / name)


def execute(name: str) -> None:
    """Run a notebook in notebooks/ and store it with its outputs (no timings: a rerun with
    the same results changes nothing)."""
    from nbclient import NotebookClient

    path = ROOT / "notebooks" / name
    nb = nbf.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", record_timing=False,
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    for cell in nb.cells:
        cell.get("metadata", {}).pop("execution", None)
    nbf.write(nb, path)


if __name__ == "__main__":
    books = {"01_community_units.ipynb": NB1, "02_life_circle_coverage.ipynb": NB2,
             "03_problem_map_and_report.ipynb": NB3}
    for name, cells in books.items():
        write(name, cells)
        if "--no-run" not in sys.argv:
            execute(name)
            print(f"ran {name}", file=sys.stderr)
