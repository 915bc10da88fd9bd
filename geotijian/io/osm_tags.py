"""OSM tag rules: which highways make the walk network, which tags make each layer.

The walk filter (``walk_mask``) restates osmnx 2.1's walk rules on tag tables, with two changes
for pedestrians (see :mod:`geotijian.io.osm`); the key lists say which tags every reader keeps.
Part of ``load_osm`` (:mod:`geotijian.io.osm`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .. import settings
from ..errors import ConfigError


#: highway values left out of each network type (osmnx 2.1 ``_get_network_filter``).
_EXCLUDED_HIGHWAY: dict[str, frozenset[str]] = {
    "walk": frozenset({
        "abandoned", "bus_guideway", "construction", "cycleway", "motorway", "motorway_link",
        "motorway_junction", "no", "planned", "platform", "proposed", "raceway", "razed",
        "rest_area", "services", "disused",
    }),
    "all": frozenset({
        "abandoned", "construction", "no", "planned", "platform", "proposed", "raceway",
        "razed", "rest_area", "services", "disused",
    }),
}
NETWORK_TYPES: tuple[str, ...] = tuple(_EXCLUDED_HIGHWAY)
_FOOT_OK = ("yes", "designated", "permissive")
_SIDEWALK_KEYS = ("sidewalk", "sidewalk:both", "sidewalk:left", "sidewalk:right")
#: way tags the network filter and the edges need (added to osmnx's useful_tags_way).
_WAY_TAGS = ("highway", "name", "area", "access", "foot", "service", "oneway", "junction",
             "bridge", "tunnel", "layer", "lit", "surface") + _SIDEWALK_KEYS

_BUILDING_KEYS = ("building", "building:levels", "height", "name", "building:use")
_WATERWAYS = ("river", "riverbank", "canal", "stream", "ditch", "drain", "dock", "tidal_channel")
_RAILWAYS = ("rail", "subway", "light_rail", "tram", "monorail", "narrow_gauge", "funicular",
             "preserved")
#: railway / highway values that make a node or area a POI (stations, stops, entrances).
_POI_RAILWAY = ("station", "halt", "tram_stop", "subway_entrance", "stop")
_POI_KEYS = ("amenity", "shop", "leisure", "healthcare", "social_facility", "office",
             "public_transport")
#: columns kept on POIs: what facility classification needs (see data/facilities.csv).
_POI_COLUMNS = (
    "name", "name:en", "amenity", "shop", "leisure", "healthcare", "healthcare:speciality",
    "social_facility", "social_facility:for", "isced:level", "school", "nursery",
    "public_transport", "railway", "station", "subway", "bus", "highway", "office",
    "government", "power", "place", "sport", "building", "operator", "access", "entrance",
    "wheelchair", "opening_hours", "capacity", "recycling_type", "brand",
)
_ENTRANCE_COLUMNS = ("entrance", "barrier", "access", "foot", "name", "ref", "wheelchair")
_OTHER_POI_VALUES = {"power": ("substation",), "place": ("square",),
                     "highway": ("bus_stop",), "railway": _POI_RAILWAY}


def _features_tags(extra: dict[str, Any] | None) -> dict[str, Any]:
    """osmnx ``tags`` dict selecting every feature ``load_osm`` sorts into layers."""
    tags: dict[str, Any] = {
        "building": True,
        "landuse": ["residential", "reservoir", "basin"],
        "natural": ["water"],
        "waterway": list(_WATERWAYS),
        "railway": list(_RAILWAYS) + list(_POI_RAILWAY),
        "highway": True,
        "entrance": True,
        "barrier": ["gate", "entrance"],
        "power": ["substation"],
        "place": ["square"],
    }
    for key in _POI_KEYS:
        tags[key] = True
    for key, val in (extra or {}).items():
        tags[key] = _merge_tag_values(tags.get(key), val)
    return tags


def _merge_tag_values(old: Any, new: Any) -> Any:
    if old is True or new is True or old is None:
        return True if (old is True or new is True) else new
    as_list = lambda v: [v] if isinstance(v, str) else list(v)  # noqa: E731
    return sorted(set(as_list(old)) | set(as_list(new)))


def _col(df: pd.DataFrame, key: str) -> pd.Series:
    """Tag column as strings (missing key → all NA)."""
    if key in df.columns:
        return df[key].astype("string")
    return pd.Series(pd.NA, index=df.index, dtype="string")


def walk_mask(tags: pd.DataFrame, network_type: str = "walk") -> np.ndarray:
    """Which ways (rows of a tag table) belong to the network of ``network_type``.

    Parameters
    ----------
    tags : DataFrame
        One row per way, one column per OSM key (``highway``, ``area``, ``access``,
        ``foot``, ``service``, ``sidewalk*``); missing keys count as untagged.
    network_type : {"walk", "all"}
        ``"walk"``: osmnx 2.1's walk filter (no motorways, platforms, works, ``area=yes``,
        ``foot=no``, ``service=private``, ``access=private/no``, sidewalks mapped
        separately), except that ``foot=yes/designated/permissive`` keeps a private-access
        way, and cycleways are kept when ``settings.osm_walk_cycleways`` (default True, see
        there: Chinese 非机动车道) or when tagged ``foot=yes``. ``"all"``: every highway in
        use, private ones included.

    Returns
    -------
    numpy.ndarray of bool
    """
    if network_type not in _EXCLUDED_HIGHWAY:
        raise ConfigError("network_type", f"unknown network type {network_type!r}",
                          fix=f"use one of {', '.join(NETWORK_TYPES)}")
    hw = _col(tags, "highway")
    keep = hw.notna() & ~hw.isin(_EXCLUDED_HIGHWAY[network_type])
    keep &= _col(tags, "area").fillna("") != "yes"
    if network_type == "walk":
        foot = _col(tags, "foot").fillna("")
        foot_ok = foot.isin(_FOOT_OK)
        cycle_ok = foot_ok | settings.osm_walk_cycleways
        keep |= hw.eq("cycleway").fillna(False) & cycle_ok & (_col(tags, "area").fillna("") != "yes")
        keep &= foot != "no"
        keep &= ~_col(tags, "service").fillna("").str.contains("private", regex=False)
        keep &= ~_col(tags, "access").fillna("").isin(["private", "no"]) | foot_ok
        for key in _SIDEWALK_KEYS:
            keep &= _col(tags, key).fillna("") != "separate"
    return keep.fillna(False).to_numpy(dtype=bool)


def _select_features(feats: pd.DataFrame, tags: dict[str, Any]) -> np.ndarray:
    """Rows matching an osmnx-style tags dict (key: True | value | [values])."""
    keep = np.zeros(len(feats), dtype=bool)
    for key, val in tags.items():
        col = _col(feats, key)
        if val is True:
            keep |= col.notna().to_numpy()
        else:
            vals = [val] if isinstance(val, str) else list(val)
            keep |= col.isin(vals).fillna(False).to_numpy(dtype=bool)
    return keep
