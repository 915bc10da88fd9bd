"""The resident survey (居民满意度调查) of the sample."""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely

from .. import settings
from ._common import SAT_ITEMS, ragged


def survey(rng: np.random.Generator, C: dict[str, Any], K: dict[str, Any],
           gaps: dict[str, list[str]]) -> tuple[dict[str, np.ndarray], list[str]]:
    """The resident survey: about 2-3‰ of each committee's residents (two committees
    deliberately at ~1‰), living in its compounds in proportion to their residents,
    about 3 % under 16; eight satisfaction scores (1-5) lower where the place gives cause
    (old compounds, hamlets, the kindergarten gap) and a comment on the worst item.
    Returns the respondents (respondent_id, age, sex, committee_id, x, y in metres, the
    ``SAT_ITEMS`` scores, comment) and the under-sampled committee IDs.
    """
    n_comm = len(K["id"])
    cpop = K["population"]
    f = rng.uniform(1.0, 1.5, n_comm)
    elig = np.flatnonzero(cpop > 0)
    under = elig[rng.permutation(len(elig))[:2]] if len(elig) >= 4 else elig[:0]
    f[under] = rng.uniform(0.4, 0.6, len(under))
    n_c = np.where(cpop > 0, np.ceil(cpop * settings.survey_sample_rate * f), 0).astype(np.int64)
    owner, _ = ragged(n_c)
    n = len(owner)
    pop = C["population"].astype(float)
    comm = C["committee"]
    # home compound: weighted by population within the committee
    o = np.lexsort((np.arange(len(comm)), comm))
    cw = np.cumsum(pop[o])
    start = np.searchsorted(comm[o], np.arange(n_comm))
    end = np.searchsorted(comm[o], np.arange(n_comm), side="right")
    base = np.where(start > 0, cw[np.maximum(start - 1, 0)], 0.0)
    tot = np.where(end > start, cw[np.maximum(end - 1, 0)] - base, 0.0)
    u = base[owner] + rng.random(n) * tot[owner]
    idx = np.clip(np.searchsorted(cw, u, side="right"), start[owner], end[owner] - 1)
    home = o[idx]
    rep = shapely.get_coordinates(shapely.point_on_surface(C["geom"][home]))
    xy = rep + rng.uniform(-8, 8, (n, 2))
    age = np.where(rng.random(n) < 0.03, rng.integers(12, 16, n), rng.integers(16, 88, n))
    sex = rng.choice(np.array(["男", "女"], dtype=object), n)
    base_c = rng.normal(3.7, 0.25, n_comm)
    items = list(SAT_ITEMS)
    scores = {}
    gap_kg = set(gaps.get("kindergarten_300m", []))
    old = C["era"][home] == 0
    hamlet = C["hamlet"][home]
    for k, col in enumerate(items):
        s = base_c[owner] + rng.normal(0, 0.8, n)
        if col == "sat_renewal":
            s -= 0.8 * old
        if col == "sat_livable":
            s -= 0.4 * old
        if col == "sat_transport":
            s -= 0.6 * hamlet
        if col == "sat_inclusive":
            s -= 0.7 * np.isin(K["id"][owner], list(gap_kg))
        if col == "sat_smart":
            s -= 0.3 * hamlet
        scores[col] = np.clip(np.round(s), 1, 5).astype(np.int64)
    mat = np.column_stack([scores[c] for c in items])
    worst = np.argmin(mat, axis=1)
    comments = {
        "sat_livable": ["房屋老化，希望加装电梯", "楼道环境差", "住房面积小，居住拥挤"],
        "sat_safety": ["消防通道被占用", "夜间路灯太暗", "电动车楼道充电不安全"],
        "sat_renewal": ["小区外立面破旧，希望改造", "老旧小区改造进度慢", "管线老化经常停水"],
        "sat_green": ["绿地太少", "缺少口袋公园", "垃圾分类点太远"],
        "sat_transport": ["公交站太远", "停车难", "去地铁站不方便"],
        "sat_inclusive": ["附近没有幼儿园", "缺少养老服务", "缺少社区食堂"],
        "sat_governance": ["居委会办事不便", "物业与居民沟通不够", "意见反映后没有回音"],
        "sat_smart": ["不会用手机办事", "小区门禁系统不好用", "缺少线上报修渠道"],
    }
    pick = rng.integers(0, 3, n)
    minv = mat.min(axis=1)
    say = (minv <= 2) & (rng.random(n) < 0.6)
    praise = ~say & (rng.random(n) < 0.1)
    text = np.array([comments[c] for c in items], dtype=object)[worst, pick]
    comment = np.where(say, text, np.where(praise, "总体满意", ""))
    srv = dict(respondent_id=np.array([f"S{i + 1:05d}" for i in range(n)], dtype=object),
               age=age, sex=sex, committee_id=K["id"][owner], x=xy[:, 0], y=xy[:, 1],
               **scores, comment=comment.astype(object))
    return srv, sorted(str(x) for x in K["id"][under])
