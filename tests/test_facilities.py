"""Facility catalogue, the OSM filter language, and POI classification."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geotijian.errors import ConfigError, LayerError
from geotijian.facilities import (
    CATALOGUE_COLUMNS,
    classify_pois,
    facility_catalogue,
    normalise_osm_tags,
    parse_filter,
    parse_walk_distance,
)


# ------------------------------------------------------------------ distances
@pytest.mark.parametrize("text, expected", [
    ("<=1000", 1000.0),
    ("<=1000 (unconfirmed)", 1000.0),
    ("<=500 (10-min, unconfirmed)", 500.0),
    ("manual collection ~400 (max 1000)", 400.0),
    ("500", 500.0),
    (300, 300.0),
])
def test_parse_walk_distance(text, expected):
    assert parse_walk_distance(text) == expected


def test_parse_walk_distance_missing_is_nan():
    assert np.isnan(parse_walk_distance("no figure"))


# ------------------------------------------------------------------- catalogue
def test_catalogue_columns_and_known_radii():
    cat = facility_catalogue()
    assert list(cat.columns[: len(CATALOGUE_COLUMNS)]) == CATALOGUE_COLUMNS
    assert cat["code"].is_unique
    r = cat.set_index("code")["walk_distance_m"]
    # GB 50180-2018 App. C / GB 50180-93 (see the catalogue's source column)
    assert r["kindergarten"] == 300
    assert r["primary_school"] == 500
    assert r["junior_middle_school"] == 1000
    assert r["community_health_centre"] == 1000   # "<=1000 (unconfirmed)"
    assert r["waste_collection_point"] == 70
    assert np.isnan(r["restaurant"])
    assert (cat["source"].str.len() > 0).all()
    # every packaged filter parses; only the 小区-inventory row is empty
    empty = [c for c, f in zip(cat["code"], cat["osm_filter"]) if not parse_filter(f)]
    assert empty == ["property_management"]


def test_catalogue_overrides_toml_and_csv(tmp_path):
    toml = tmp_path / "fac.toml"
    toml.write_text('[types.kindergarten]\nwalk_distance_m = 500\n\n'
                    '[types.baby_house]\nname_zh = "宝宝屋"\nwalk_distance_m = 300\n'
                    'osm_filter = "amenity=childcare + name~\'宝宝屋\'"\n', encoding="utf-8")
    cat = facility_catalogue(toml).set_index("code")
    assert cat.loc["kindergarten", "walk_distance_m"] == 500
    assert cat.loc["baby_house", "walk_distance_m"] == 300
    assert cat.loc["baby_house", "source"] == "user override"
    assert cat.loc["primary_school", "walk_distance_m"] == 500   # untouched
    csv = tmp_path / "fac.csv"
    pd.DataFrame({"code": ["primary_school"], "walk_distance_m": ["<=800"]}).to_csv(csv, index=False)
    assert facility_catalogue(csv).set_index("code").loc["primary_school", "walk_distance_m"] == 800
    df = pd.DataFrame({"code": ["gym"], "walk_distance_m": [600.0]})
    assert facility_catalogue(df).set_index("code").loc["gym", "walk_distance_m"] == 600


def test_catalogue_override_errors(tmp_path):
    with pytest.raises(ConfigError, match="walk_distance_m"):
        facility_catalogue(pd.DataFrame({"code": ["gym"], "walk_distance_m": ["-5"]}))
    with pytest.raises(ConfigError, match="osm_filter"):
        facility_catalogue(pd.DataFrame({"code": ["x"], "osm_filter": ["amenity school"]}))
    with pytest.raises(ConfigError, match="not found"):
        facility_catalogue(tmp_path / "missing.toml")


# --------------------------------------------------------------- filter language
def test_parse_filter_roundtrip_and_errors():
    f = parse_filter("amenity=school + isced:level=1; amenity=school + name~'小学|学校'")
    assert len(f.clauses) == 2 and len(f.clauses[1]) == 2
    assert str(parse_filter(str(f))) == str(f)
    assert f.keys == {"amenity", "isced:level", "name"}
    with pytest.raises(ConfigError, match="cannot read"):
        parse_filter("amenity school")
    with pytest.raises(ConfigError, match="regular expression"):
        parse_filter("name~'(unclosed'")
    assert not parse_filter("")


def _tags(rows):
    return pd.DataFrame(rows)


def test_filter_semantics():
    tags = _tags([
        {"amenity": "school", "isced:level": "1", "name": "曲阳第四小学"},
        {"amenity": "school", "isced:level": "1;2", "name": "九年一贯制学校"},
        {"amenity": "school", "isced:level": None, "name": "某某小学"},
        {"amenity": "school", "isced:level": "2", "name": "第二中学"},
        {"amenity": None, "isced:level": None, "name": "小学站"},   # a bus stop named after it
        {"amenity": "kindergarten", "isced:level": "", "name": ""},
    ])
    prim = parse_filter(normalise_osm_tags("amenity=school + isced:level=1; name~'小学'"))
    assert prim.match(tags).tolist() == [True, True, True, False, False, False]
    assert parse_filter("isced:level=*").match(tags).tolist() == [True, True, False, True, False, False]
    assert parse_filter("!isced:level").match(tags).tolist() == [False, False, True, False, True, True]
    assert parse_filter("amenity!=school").match(tags).tolist() == [False] * 4 + [True, True]
    assert parse_filter("area>=5000").match(tags, np.array([0, 0, 0, 6000, 0, 4999])).tolist() == \
        [False, False, False, True, False, False]


@pytest.mark.parametrize("text, expected", [
    ("amenity=school + isced:level=1; name~'小学'",
     "amenity=school + isced:level=1; amenity=school + name~'小学'"),
    ("amenity=school + isced:level=2 (also name~'中学|初级中学'; 九年一贯制 schools may carry "
     "isced:level=1;2)",
     "amenity=school + isced:level=2; amenity=school + name~'中学|初级中学'"),
    ("amenity=clinic or healthcare=clinic with name~'社区卫生服务中心'; sometimes amenity=hospital",
     "amenity=clinic + name~'社区卫生服务中心'; healthcare=clinic + name~'社区卫生服务中心'; "
     "amenity=hospital"),
    ("amenity=social_facility + social_facility=nursing_home + social_facility:for=senior "
     "(legacy: amenity=nursing_home)",
     "amenity=social_facility + social_facility=nursing_home + social_facility:for=senior; "
     "amenity=nursing_home"),
    ("office=government; match name~'司法所' (no dedicated tag)",
     "office=government + name~'司法所'"),
    ("leisure=pitch (sport=*); leisure=track", "leisure=pitch + sport=*; leisure=track"),
    ("amenity=kindergarten (+ isced:level=0)", "amenity=kindergarten"),
    ("leisure=park (2000<=area<5000 m2)", "leisure=park + area>=2000 + area<5000"),
    ("leisure=park (area>=5000 m2)", "leisure=park + area>=5000"),
    ("leisure=garden (access=private) / landuse=grass inside 小区",
     "leisure=garden + access=private; landuse=grass"),
    ("railway=station + station=subway; public_transport=station; railway=subway_entrance for exits",
     "railway=station + station=subway; public_transport=station; railway=subway_entrance"),
    ("power=substation (approx.)", "power=substation"),
    ("(no reliable OSM tag; use 小区 inventory)", ""),
    ("amenity=social_facility + social_facility:for=senior with name~'社区食堂|长者食堂'; "
     "or amenity=restaurant",
     "amenity=social_facility + social_facility:for=senior + name~'社区食堂|长者食堂'; "
     "amenity=restaurant"),
])
def test_normalise_catalogue_text(text, expected):
    assert normalise_osm_tags(text) == expected
    parse_filter(expected)


# ---------------------------------------------------------------- classification
def _pois():
    return gpd.GeoDataFrame({
        "osmid": [1, 2, 3, 4, 5, 6],
        "amenity": ["school", "kindergarten", None, None, None, "bench"],
        "isced:level": ["1", None, None, None, None, None],
        "shop": [None, None, "supermarket", None, None, None],
        "leisure": [None, None, None, "park", "park", None],
        "name": ["小学", "幼儿园", "超市", "大公园", "小游园", None],
    }, geometry=[shapely.Point(0, 0), shapely.Point(10, 0), shapely.Point(20, 0),
                 shapely.box(0, 0, 100, 100), shapely.box(0, 0, 50, 50), shapely.Point(5, 5)],
        crs="EPSG:32651")


def test_classify_long_format_and_unmatched_kept():
    out = classify_pois(_pois(), types=["primary_school", "kindergarten", "fresh_market",
                                        "community_commercial_outlets", "park_service_ge5000",
                                        "park_service_2000_5000"])
    got = set(zip(out["poi_id"], out["type"].fillna("-")))
    assert got == {(1, "primary_school"), (2, "kindergarten"), (3, "fresh_market"),
                   (3, "community_commercial_outlets"), (4, "park_service_ge5000"),
                   (5, "park_service_2000_5000"), (6, "-")}
    assert out.loc[out["poi_id"] == 6, "matched"].tolist() == [False]
    assert set(out["poi_id"]) == set(_pois()["osmid"])  # nothing lost


def test_classify_other_tags_hstore_and_geographic_area():
    g = gpd.GeoDataFrame({"other_tags": ['"amenity"=>"kindergarten","name"=>"x"', None],
                          "leisure": [None, "park"]},
                         geometry=[shapely.Point(121.5, 31.2),
                                   shapely.box(121.5, 31.2, 121.501, 31.201)], crs="EPSG:4326")
    out = classify_pois(g, types=["kindergarten", "park_service_ge5000"])
    assert set(out["type"]) == {"kindergarten", "park_service_ge5000"}  # ~95 m × 107 m > 5000 m²


def test_classify_errors():
    with pytest.raises(ConfigError, match="unknown facility type"):
        classify_pois(_pois(), types=["nope"])
    with pytest.raises(LayerError):
        classify_pois(pd.DataFrame({"a": [1]}))


def test_classify_real_osm(osm_dir):
    import osmnx as ox

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        feats = ox.features_from_xml(osm_dir / "shanghai_yangpu_tongji.osm")
    out = classify_pois(feats)
    m = out[out["matched"]]
    named = dict(zip(m["type"], m["name"]))
    assert "小学" in named["primary_school"]          # 曲阳第四小学
    assert "中学" in named["junior_middle_school"]    # 上海市曲阳第二中学
    assert (m["type"] == "bus_stop").sum() >= 10
    assert len(out[~out["matched"]]) + len(set(m["poi_id"])) == len(feats)
