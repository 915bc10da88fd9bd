"""The renewal plan on the problem map: 更新片区 and 新增设施选址, as extra overlays.

Kept apart from :mod:`geotijian.report.maps` on purpose: :func:`add_plan_layers` takes a
finished :func:`~geotijian.report.maps.problem_map` and adds, using that module's drawing
pieces,

* **更新片区**: renewal areas, purple outlines filled by score (a purple ramp, apart from
  the red-yellow choropleth and the gap colours), popup with units, residents, problems
  and the reason the area was drawn;
* **新增设施选址: <type>**: the chosen sites, one layer per facility type, large circles
  in the type's colour with a black ring (existing facilities are small, white-ringed),
  popup with the residents each newly covers and the projects that build it;

and a small legend of its own (bottom left). The layer control is moved after the new
layers so that it lists them, and element IDs are renumbered so the HTML stays
byte-identical run to run.
"""

from __future__ import annotations

import html

import folium
import numpy as np
import pandas as pd
import shapely
from branca.element import Element

from ..model import StudyData
from . import _common as c
from .maps import _GeoData, _geojson, _layer_name, _name_series, _popup, _stable_ids, _to_web

__all__ = ["add_plan_layers"]

_AREA_RAMP = ("#efedf5", "#dadaeb", "#bcbddc", "#9e9ac8", "#756bb1")  # ColorBrewer Purples
_AREA_LINE = "#54278f"
_TXT = {"areas": ("更新片区", "renewal areas"), "sites": ("新增设施选址", "new facility sites"),
        "legend": ("更新规划", "renewal plan"), "score": ("更新评分", "renewal score"),
        "new": ("新增", "new"), "covers": ("新覆盖", "covers"), "persons": ("人", "residents"),
        "projects": ("相关项目", "projects")}


def _t(key: str, lang: str) -> str:
    return _TXT[key][c.lang_index(lang)]


def add_plan_layers(m: folium.Map, study: StudyData, *, lang: str = "zh",
                    simplify_m: float = 2.0, decimals: int = 5) -> folium.Map:
    """Add the renewal areas and the new facility sites of ``study`` to a problem map.

    Parameters
    ----------
    m : folium.Map
        A map from :func:`~geotijian.report.maps.problem_map` (WGS84 overlays; a map
        shifted to GCJ-02 for Amap tiles is not supported here).
    study : StudyData
        ``renewal_areas``, ``new_sites`` and ``projects`` (any may be missing).

    Returns
    -------
    folium.Map
        The same map, changed in place.
    """
    c.lang_index(lang)  # "zh" or "en", anything else a ValueError
    legend: list[str] = []
    areas = study.renewal_areas
    if areas is not None and len(areas):
        score = pd.to_numeric(areas["score"], errors="coerce").to_numpy(float)
        k = np.clip(np.floor(score * len(_AREA_RAMP)).astype(int), 0, len(_AREA_RAMP) - 1)
        a = areas.assign(_color=np.array(_AREA_RAMP, dtype=object)[k])
        w = _to_web(a, simplify_m=simplify_m, decimals=decimals, gcj=False, layer="renewal_areas")
        head = _name_series(w, ["name", "area_id"], "")
        pop = _popup(w, ["area_id", "towns", "units", "unit_count", "population", "area_ha", "score",
                         "problem_count", "problems_by_class", "main_problems"], lang, header=head,
                     suggestion="reason")
        tip = head + " · " + _t("score", lang) + " " + c.escaped_values(w["score"])
        fg = folium.FeatureGroup(name=_layer_name(f"{_t('areas', lang)} ({len(w)})"), show=True).add_to(m)
        fg.add_child(_GeoData(_geojson(w, {"c": w["_color"], "t": tip, **pop.props}), popup=pop,
                              color_keys=["fillColor"],
                              style={"color": _AREA_LINE, "weight": 3, "fillOpacity": 0.35}))
        legend.append(f"<h4>{html.escape(_t('areas', lang))} ({html.escape(_t('score', lang))})</h4>")
        for i, col in enumerate(_AREA_RAMP):
            legend.append(f"<div><i style='background:{col};border-color:{_AREA_LINE}'></i>"
                          f"{i / len(_AREA_RAMP):.1f} – {(i + 1) / len(_AREA_RAMP):.1f}</div>")
    sites = study.new_sites
    if sites is not None and len(sites):
        tcol = c.study_type_colors(study)
        projects = study.projects
        by_site: dict[tuple[str, str], list[str]] = {}
        if projects is not None and "site_ids" in projects.columns:
            for pid, ids, code in zip(projects["project_id"], projects["site_ids"], projects["indicator_code"]):
                for sid in str(ids or "").split(";"):
                    if sid:
                        by_site.setdefault((str(code)[4:], sid), []).append(str(pid))
        g = sites.geometry.copy()
        poly = (shapely.get_type_id(g.to_numpy()) != 0)
        if poly.any():  # parcels are drawn at a point inside them
            g[poly] = g[poly].representative_point()
        s = sites.set_geometry(g)
        s = s.assign(_projects=["；".join(by_site.get((t, sid), [])) for t, sid in
                                zip(s["facility_type"].astype(str), s["site_id"].astype(str))])
        w_all = _to_web(s, simplify_m=0, decimals=decimals, gcj=False, layer="new_sites")
        legend.append(f"<h4>{html.escape(_t('sites', lang))}</h4>")
        for t in c.ordered_types(sites["facility_type"]):
            w = w_all.loc[w_all["facility_type"].astype(str) == t]
            tname = c.facility_type_name(t, lang)
            head = _name_series(w, ["site_id"], "")
            pop = _popup(w, ["site_id", "facility_name_zh", "candidate_id", "unit_id", "residents_covered",
                             "homes_covered", "residents_in_reach", "capacity", "_projects"], lang, header=head,
                         labels={"_projects": html.escape(_t("projects", lang))})
            tip = (head + f" · {html.escape(_t('covers', lang))} "
                   + c.escaped_values(w["residents_covered"].round(0)) + f" {html.escape(_t('persons', lang))}")
            color = tcol.get(t, c.OTHER_COLOR)
            fg = folium.FeatureGroup(name=_layer_name(f"{_t('sites', lang)}: {tname} ({len(w)})"),
                                     show=True).add_to(m)
            fg.add_child(_GeoData(_geojson(w, {"t": tip, **pop.props}), popup=pop, color_keys=[], radius=9,
                                  style={"color": "#000000", "weight": 2.5, "fillColor": color,
                                         "fillOpacity": 0.9}))
            legend.append(f"<div><i class='pt' style='background:{color};border:2px solid #000'></i>"
                          f"{html.escape(_t('new', lang) + ' ' + tname)} ({len(w)})</div>")
    if not legend:
        return m
    # the layer control lists layers when it renders, but its script must come after them
    for key in [k for k, ch in m._children.items() if isinstance(ch, folium.LayerControl)]:
        m._children.move_to_end(key)
    root = m.get_root()
    root.html.add_child(Element(
        "<div class='gtj-legend' style='left:10px;right:auto;bottom:24px'>"
        f"<b>{html.escape(_t('legend', lang))}</b>" + "".join(legend) + "</div>"), name="gtj_plan_legend")
    _stable_ids(m)
    return m
