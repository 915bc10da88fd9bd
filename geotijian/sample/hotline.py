"""12345 hotline complaints of the sample."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from .geography import Barriers


def complaints(rng: np.random.Generator, C: dict[str, Any], bar: Barriers, scale: float
               ) -> tuple[dict[str, np.ndarray], int]:
    """12345 hotline complaints: 500 per scale unit (at least 50), placed near compounds in
    proportion to their residents, a quarter of them (mostly 停车 parking) clustered
    around one old, populous compound (the hot spot). Categories lean on the place:
    积水 near water, 噪声 near the railway, 停车 and 道路破损 in old compounds, 垃圾 and
    违章搭建 in hamlets. Returns the complaints (x, y in metres, category, date, text,
    complaint_id), sorted by date then x, and the hot-spot compound (row of ``C``).
    """
    n = max(50, int(round(500 * scale)))
    pop = C["population"].astype(float)
    rep_xy = shapely.get_coordinates(shapely.point_on_surface(C["geom"]))
    old = (C["era"] == 0) & (pop > 800)
    cand = np.flatnonzero(old) if old.any() else np.flatnonzero(pop > 0)
    hot = cand[np.argmax(pop[cand] * rng.uniform(0.8, 1.2, len(cand)))]
    n_hot = int(round(0.25 * n))
    cats = np.array(["噪声", "停车", "垃圾", "绿化", "道路破损", "积水", "设施不足", "物业管理", "违章搭建"], dtype=object)
    anchor = np.concatenate([np.full(n_hot, hot), rng.choice(len(pop), n - n_hot, p=pop / pop.sum())])
    w = np.tile(np.array([1.0, 1.2, 1.0, 0.6, 0.8, 0.4, 0.9, 0.9, 0.4]), (n, 1))
    pts = shapely.points(rep_xy[anchor])
    # distance to the water's edge, via short edge segments (fast nearest queries)
    dist_w = np.full(n, np.inf)
    if len(bar.water_geoms):
        ring = shapely.get_coordinates(shapely.get_exterior_ring(bar.water_geoms), return_index=True)
        xy_w, own = ring
        step = np.flatnonzero(own[1:] == own[:-1])
        edges = shapely.linestrings(np.stack([xy_w[step], xy_w[step + 1]], axis=1))
        dist_w = shapely.STRtree(edges).query_nearest(pts, return_distance=True, all_matches=False)[1]
        dist_w[shapely.intersects(pts, bar.water_union)] = 0.0
    dist_r = shapely.distance(pts, bar.rail_line)
    w[:, 5] *= np.where(dist_w < 250, 6.0, 1.0)
    w[:, 0] *= np.where(dist_r < 300, 5.0, 1.0)
    w[:, 1] *= np.where(C["era"][anchor] == 0, 2.0, 1.0)
    w[:, 4] *= np.where(C["era"][anchor] == 0, 1.8, 1.0)
    w[:, 2] *= np.where(C["hamlet"][anchor], 3.0, 1.0)
    w[:, 8] *= np.where(C["hamlet"][anchor], 4.0, 1.0)
    w[:n_hot] = 0.05
    w[:n_hot, 1] = 1.0
    cw = np.cumsum(w / w.sum(1, keepdims=True), axis=1)
    cat_idx = np.minimum((cw < rng.random((n, 1))).sum(1), len(cats) - 1)
    cat = cats[cat_idx]
    r = np.where(np.arange(n) < n_hot, rng.uniform(5, 80, n), rng.uniform(2, 40, n))
    ang = rng.uniform(0, 2 * np.pi, n)
    xy = rep_xy[anchor] + np.column_stack([np.cos(ang), np.sin(ang)]) * r[:, None]
    day = rng.integers(0, 366, n)
    date = (np.datetime64("2024-01-01") + day.astype("timedelta64[D]")).astype(str)
    name = C["name"][anchor]
    templates = {
        "噪声": ["{n}附近夜间施工噪声扰民", "{n}旁道路车辆噪声大，影响休息", "{n}附近列车噪声扰民"],
        "停车": ["{n}小区内停车位不足，车辆乱停占用消防通道", "{n}门口机动车乱停放", "{n}非机动车充电难，电瓶车进楼"],
        "垃圾": ["{n}垃圾箱房满溢未及时清运", "{n}附近建筑垃圾乱堆放", "{n}垃圾分类点异味大"],
        "绿化": ["{n}绿化带树木遮挡采光，需修剪", "{n}公共绿地被占用种菜", "{n}绿化缺少养护"],
        "道路破损": ["{n}门口道路坑洼破损", "{n}人行道地砖松动", "{n}小区内道路破损积水"],
        "积水": ["{n}下雨后道路积水严重", "{n}地下车库进水", "{n}雨水井堵塞"],
        "设施不足": ["{n}缺少老年活动场所", "{n}附近没有菜场，买菜不便", "{n}缺少儿童游乐设施", "{n}老旧住宅无电梯，老人上下楼难"],
        "物业管理": ["{n}物业服务差，报修无人处理", "{n}物业费使用不公开", "{n}楼道堆物无人管理"],
        "违章搭建": ["{n}有违章搭建", "{n}沿街商铺违规搭建雨棚"],
    }
    pick = rng.integers(0, 4, n)
    # every template starts with the compound name: a (category × variant) table of endings
    ends = np.array([[templates[c][k % len(templates[c])].removeprefix("{n}") for k in range(4)]
                     for c in cats], dtype=object)
    text = (name + ends[cat_idx, pick]).astype(object)
    o = np.lexsort((xy[:, 0], date))
    return dict(x=xy[o, 0], y=xy[o, 1], category=cat[o], date=date[o], text=text[o],
                complaint_id=np.array([f"H2024{i + 1:06d}" for i in range(n)], dtype=object)), hot
