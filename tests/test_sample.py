"""The sample district generator (geotijian.sample): determinism, realism, readability."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from scipy import sparse
from scipy.sparse.csgraph import connected_components

from geotijian import settings
from geotijian.data import path as data_path
from geotijian.io import read_layer
from geotijian.sample import (
    GAPS_DEFAULT,
    GPKG_LAYERS,
    GPKG_NAME,
    SAMPLE_FILES,
    make_sample_district,
    sample_path,
    write_sample,
)

BUNDLED = Path(__file__).resolve().parents[1] / "layers" / "sample"
STREETS = ["primary", "secondary", "tertiary", "residential", "unclassified", "service"]


@pytest.fixture(scope="module")
def district():
    return make_sample_district()


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    a = tmp_path_factory.mktemp("sample_a")
    b = tmp_path_factory.mktemp("sample_b")
    return write_sample(a), write_sample(b)


def _graph(roads):
    """Nodes = exact end-point coordinates; returns (n_nodes, n_components, degree)."""
    xy = shapely.get_coordinates(roads.geometry.values)
    counts = shapely.get_num_coordinates(roads.geometry.values)
    assert (counts == 2).all(), "every road feature is one straight edge"
    uniq, inv = np.unique(xy, axis=0, return_inverse=True)
    inv = inv.ravel()
    a, b = inv[0::2], inv[1::2]
    g = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(len(uniq), len(uniq)))
    n_comp, _ = connected_components(g, directed=False)
    degree = np.bincount(np.concatenate([a, b]), minlength=len(uniq))
    return len(uniq), n_comp, degree


# ----------------------------------------------------------------------------- determinism
def test_same_seed_gives_identical_bytes(written):
    first, second = written
    assert set(first) == {"gpkg", "amap", "complaints", "survey", "ortho"}
    for key in first:
        assert first[key].read_bytes() == second[key].read_bytes(), f"{first[key].name} differs"
    assert sorted(p.name for p in first.values()) == sorted(SAMPLE_FILES)


def test_generator_rewrites_the_bundled_files_byte_for_byte(written):
    """``geotijian sample DIR`` gives the committed layers/sample files, every byte."""
    if not BUNDLED.is_dir():
        pytest.skip("no layers/sample here (installed package)")
    import pyogrio
    import rasterio

    first, _ = written
    for path in first.values():
        got = hashlib.sha256(path.read_bytes()).hexdigest()
        want = hashlib.sha256((BUNDLED / path.name).read_bytes()).hexdigest()
        assert got == want, (
            f"layers/sample/{path.name} is not what the generator writes (sha256 {want[:12]} "
            f"committed, {got[:12]} generated; GDAL {pyogrio.__gdal_version_string__}, "
            f"rasterio {rasterio.__version__}). A deliberate change to the sample: regenerate "
            "with `geotijian sample layers/sample` and commit; otherwise the generator's "
            "output moved")


def test_different_seed_gives_a_different_district(district):
    other = make_sample_district(seed=settings.random_seed + 1)
    assert not np.array_equal(
        shapely.get_coordinates(district["roads"].geometry.values)[:100],
        shapely.get_coordinates(other["roads"].geometry.values)[:100])
    assert list(district["compounds"]["name"][:20]) != list(other["compounds"]["name"][:20])


def test_seed_defaults_to_settings(district):
    with settings.temporary(random_seed=settings.random_seed):
        again = make_sample_district()
    assert again["compounds"]["population"].tolist() == district["compounds"]["population"].tolist()


# ----------------------------------------------------------------------------- size and structure
def test_population_area_and_crs(district):
    for name, layer in district.items():
        if name != "survey":
            assert layer.crs == settings.metric_crs, name
    pop = district["compounds"]["population"].sum()
    assert abs(pop - 120_000) <= 12_000
    area_km2 = district["boundary"].area.sum() / 1e6
    assert 20 <= area_km2 <= 30
    centre = district["boundary"].to_crs("EPSG:4326").geometry.iloc[0].centroid
    assert abs(centre.x - 121.25) < 0.02 and abs(centre.y - 31.38) < 0.02


def test_towns_tile_the_boundary(district):
    towns, boundary = district["towns"], district["boundary"].geometry.iloc[0]
    assert len(towns) == 2
    assert towns["town_code"].str.fullmatch(r"3101141\d\d").all()
    assert set(towns["name"]) == {"菊园新区", "嘉定镇街道"}
    union = shapely.union_all(towns.geometry.values)
    assert shapely.symmetric_difference(union, boundary).area < 1.0
    a, b = towns.geometry.values
    assert shapely.intersection(a, b).area < 1.0
    assert towns["population"].sum() == district["compounds"]["population"].sum()


def test_committees_uneven_and_consistent(district):
    comm, comp = district["committees"], district["compounds"]
    assert 12 <= len(comm) <= 20
    assert comm["committee_id"].is_unique
    assert (comm["committee_id"].str[:9] == comm["town_code"]).all()
    assert comm["name"].str.endswith("委会").all()
    summed = comp.groupby("committee_id")["population"].sum()
    assert (comm.set_index("committee_id")["population"] == summed.reindex(comm["committee_id"])).all()
    pop = comm["population"].to_numpy()
    assert (pop < 5000).sum() >= 2
    assert (pop > 12000).sum() >= 2
    in_range = (pop >= 5000) & (pop <= 12000)
    assert in_range.sum() == len(pop) - (pop < 5000).sum() - (pop > 12000).sum()
    assert (comm["population_class"] == np.select([pop < 5000, pop > 12000], ["below", "above"], "in")).all()
    big = comp[comp["population"] > 12000]
    assert len(big) == 1 and big["big"].all() and big["kind"].iloc[0] == "大型居住社区"
    assert comm.set_index("committee_id").loc[big["committee_id"].iloc[0], "population"] > 12000


def test_committees_tile_their_town_less_water(district):
    comm, towns, water = district["committees"], district["towns"], district["water"]
    wet = shapely.union_all(water.geometry.values)
    for _, town in towns.iterrows():
        mine = comm[comm["town_code"] == town["town_code"]].geometry.values
        union = shapely.union_all(mine)
        dry = shapely.difference(town.geometry, wet)
        assert shapely.symmetric_difference(union, dry).area < 50.0  # m², float noise only
        assert shapely.area(mine).sum() - union.area < 1.0           # no overlaps


def test_compounds_inside_their_committee(district):
    comm = district["committees"].set_index("committee_id")
    comp = district["compounds"]
    assert comp["compound_id"].is_unique and comp["name"].is_unique
    assert len(comp) >= 1000
    home = comm.geometry.reindex(comp["committee_id"]).values
    assert shapely.covered_by(comp.geometry.values, shapely.buffer(home, 0.01)).all()
    assert (comp["households"] > 0).all()
    ratio = comp["population"].sum() / comp["households"].sum()
    assert 2.4 <= ratio <= 2.8
    assert comp["build_year"].between(1985, 2020).all()
    assert (comp["build_year"] < 1995).any()
    assert shapely.is_valid(comp.geometry.values).all()
    # no compound in the river or on the railway
    wet = shapely.union_all(district["water"].geometry.values)
    assert not shapely.intersects(comp.geometry.values, wet).any()
    assert not shapely.intersects(comp.geometry.values, district["rail"].geometry.iloc[0]).any()


def test_some_compounds_are_cut_by_a_street(district):
    comp, roads = district["compounds"], district["roads"]
    cut = comp[comp["cut_by_road"]]
    assert len(cut) >= 3
    assert sorted(cut["compound_id"]) == comp.attrs["cut_by_road"]
    streets = roads[roads["highway"].isin(["residential", "tertiary"])]
    crossing_classes = set()
    for geom in cut.geometry.values:
        inside = shapely.intersection(streets.geometry.values, geom)
        length = shapely.length(inside)
        assert length.sum() > 50, "a through street runs inside the compound"
        crossing_classes |= set(streets["highway"].to_numpy()[length > 1])
    assert "tertiary" in crossing_classes
    others = comp[~comp["cut_by_road"]]
    all_streets = shapely.union_all(streets.geometry.values)
    assert not shapely.intersects(others.geometry.values, all_streets).any()


def test_buildings(district):
    b = district["buildings"]
    res = b[b["use"] == "residential"]
    assert len(b) > 3000
    kind = district["compounds"].set_index("compound_id")["kind"].reindex(res["compound_id"]).to_numpy()
    urban = res[kind != "村宅"]
    assert (urban["levels"] == 6).mean() > 0.3           # mostly six-storey slabs
    assert urban["levels"].between(5, 7).mean() > 0.5
    assert (res.loc[kind == "村宅", "levels"] <= 3).all()  # village houses
    assert (res["levels"] >= 11).any() and (res["levels"] <= 3).any()
    assert (b["use"] != "residential").any()
    assert res["compound_id"].notna().all()
    comp = district["compounds"].set_index("compound_id").geometry
    assert shapely.within(res.geometry.values, shapely.buffer(comp.reindex(res["compound_id"]).values, 0.01)).all()


# ----------------------------------------------------------------------------- network
def test_roads_form_one_noded_network(district):
    roads = district["roads"]
    assert roads["road_id"].is_unique
    n_nodes, n_comp, degree = _graph(roads)
    assert n_comp == 1
    assert n_nodes == roads.attrs["network_nodes"]
    assert (degree == 1).sum() > 100  # dead ends (cul-de-sacs, river and rail cuts, entrances)
    hw = set(roads["highway"])
    assert {"primary", "secondary", "tertiary", "residential", "service", "footway"} <= hw
    # no edge crosses another except at a shared node: sample the street edges
    streets = roads[roads["highway"].isin(STREETS)].geometry.values
    tree = shapely.STRtree(streets)
    i, j = tree.query(streets, predicate="crosses")
    assert len(i) == 0


def test_arterial_spacing(district):
    roads = district["roads"]
    art = roads[roads["highway"].isin(["primary", "secondary", "tertiary"])]
    # arterial names: one per grid line, the grid is 400-800 m apart
    bounds = district["boundary"].total_bounds
    width = bounds[2] - bounds[0]
    named = art[art["name"].str.endswith("公路") | art["name"].str.endswith("路")]
    assert len(named) > 0.8 * len(art)
    n_lines = len(set(named["name"]))
    assert width / 800 * 2 <= n_lines + 4  # grid lines both ways at ≤ 800 m


def test_river_and_rail_cut_the_grid(district):
    roads, water, rail = district["roads"], district["water"], district["rail"]
    river = water[water["kind"] == "river"].geometry.values
    assert len(river) >= 1
    width = water.loc[water["kind"] == "river", "width_m"]
    assert width.between(30, 60).all()
    # streets stop at the bank (touching it); only bridges run over the water
    over = shapely.length(shapely.intersection(roads.geometry.values, shapely.union_all(river))) > 0.5
    assert over.sum() >= 2
    assert (roads.loc[over, "structure"] == "bridge").all()
    wet = shapely.union_all(water.geometry.values)
    crossing = shapely.length(shapely.intersection(roads.geometry.values, wet)) > 0.5
    assert (roads.loc[crossing, "structure"] == "bridge").all()
    assert (roads["structure"] == "bridge").sum() == crossing.sum()
    on_river = over
    on_rail = shapely.intersects(roads.geometry.values, rail.geometry.iloc[0])
    assert on_rail.sum() >= 1
    assert (roads.loc[on_rail, "structure"] == "rail_crossing").all()
    # fewer bridges than arterial lines meeting the river: roads detour
    art_names = roads.loc[roads["highway"].isin(["primary", "secondary", "tertiary"]), "name"]
    assert roads.loc[on_river, "name"].nunique() < art_names.nunique()


def test_parks(district):
    parks = district["parks"]
    ha = parks["area_ha"]
    assert ha.between(0.1, 10).all()
    assert ha.between(0.2, 0.5).any() and (ha >= 0.5).any() and (ha >= 1).any()
    assert {"综合公园", "社区公园", "游园"} <= set(parks["kind"])


# ----------------------------------------------------------------------------- facilities
def test_facilities(district):
    fac, roads = district["facilities"], district["roads"]
    catalogue = set(pd.read_csv(data_path("facilities.csv"))["code"])
    assert set(fac["type"]) <= catalogue
    assert fac["type"].nunique() >= 12
    assert fac["facility_id"].is_unique
    streets = roads[roads["highway"].isin(STREETS)].geometry.values
    _, dist = shapely.STRtree(streets).query_nearest(fac.geometry.values, return_distance=True,
                                                     all_matches=False)
    assert dist.max() <= 40.0
    kg = fac[fac["type"] == "kindergarten"]
    assert kg["capacity"].between(180, 360).all()          # 6-12 classes of 30
    assert (kg["capacity"] % 30 == 0).all()
    assert kg["name"].str.contains("幼儿园").all()
    assert kg["name"].is_unique


def test_facilities_sit_beside_the_compounds_they_serve(district):
    fac, roads, comp = district["facilities"], district["roads"], district["compounds"]
    planned = fac[~fac["type"].isin(["bus_stop", "metro_station"])]
    streets = roads[roads["highway"].isin(STREETS[:-1])].geometry.values
    _, d_street = shapely.STRtree(streets).query_nearest(planned.geometry.values, return_distance=True,
                                                         all_matches=False)
    assert d_street.max() <= 40.0 and np.median(d_street) >= 5.0
    _, d_comp = shapely.STRtree(comp.geometry.values).query_nearest(
        planned.geometry.values, return_distance=True, all_matches=False)
    assert d_comp.max() <= 60.0                              # street front of a compound
    # not a grid: sites follow the compounds, and most urban facilities are in town
    urban = comp[comp["population"] > 300]
    kg = planned[planned["type"] == "kindergarten"]
    _, d_urban = shapely.STRtree(urban.geometry.values).query_nearest(
        kg.geometry.values, return_distance=True, all_matches=False)
    assert d_urban.max() <= 60.0
    # provision roughly by the rules: residents per kindergarten, places ≈ 3 % of residents
    residents = comp["population"].sum()
    assert 4000 <= residents / len(kg) <= 10000
    assert 0.025 <= kg["capacity"].sum() / residents <= 0.05
    schools = planned[planned["type"] == "primary_school"]
    assert 8000 <= residents / len(schools) <= 15000
    # different types with similar rules do not pile onto one point
    xy = np.round(shapely.get_coordinates(planned.geometry.values), 1)
    assert len(np.unique(xy, axis=0)) == len(planned)


def test_facility_gaps(district):
    fac, comm = district["facilities"], district["committees"].set_index("committee_id")
    gaps = fac.attrs["sample_gaps"]
    assert set(gaps) == {"kindergarten_300m", "clinic_1000m", "elderly_day_care_300m"}

    def nearest(types, ids):
        pts = fac[fac["type"].isin(types)].geometry.values
        area = shapely.union_all(comm.geometry.loc[ids].values)
        return shapely.distance(pts, area).min()

    assert nearest(["kindergarten"], gaps["kindergarten_300m"]) >= 300
    assert nearest(["community_health_centre", "community_health_station"], gaps["clinic_1000m"]) >= 1000
    assert nearest(["elderly_day_care"], gaps["elderly_day_care_300m"]) >= 300
    # the gaps are real gaps, not empty places: those committees have residents
    for ids in gaps.values():
        assert comm.loc[ids, "population"].sum() > 0
    if settings.random_seed == 20240604:
        assert gaps == GAPS_DEFAULT  # the IDs documented in geotijian.sample
    # kindergartens exist elsewhere
    assert (fac["type"] == "kindergarten").sum() >= 5


#: Share of URBAN residents (compounds > 300 persons) covered, network walk from the compound
#: boundary along the roads layer: what a real Jiading urban area served to GB 50180-2018
#: with some deliberate gaps shows. The default sample must stay in these ranges.
URBAN_COVERAGE = {
    "kindergarten": (0.55, 0.75), "nursery": (0.40, 0.60), "primary_school": (0.60, 0.80),
    "junior_middle_school": (0.75, 0.90), "community_health_station": (0.45, 0.65),
    "community_health_centre": (0.50, 0.70), "elderly_day_care": (0.40, 0.60),
    "community_service_station": (0.55, 0.75), "cultural_activity_station": (0.60, 0.80),
    "small_sports_ground": (0.50, 0.70), "outdoor_fitness_ground": (0.50, 0.70),
    "fresh_market": (0.60, 0.80), "metro_station": (0.25, 0.40), "bus_stop": (0.90, 1.00),
}
DEFAULT_SEED = 20240604


@pytest.fixture(scope="module")
def default_coverage(district):
    """The real network coverage (geotijian.service_coverage) of the default sample."""
    import warnings

    from geotijian.access import service_coverage
    from geotijian.network import build_network

    d = district if settings.random_seed == DEFAULT_SEED else make_sample_district(seed=DEFAULT_SEED)
    homes = d["compounds"].rename(columns={"compound_id": "home_id"})[
        ["home_id", "committee_id", "population", "geometry"]]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # types without a walking distance are reported
        cov = service_coverage(build_network(d["roads"]), homes, d["facilities"])
    ph = cov.per_home.merge(homes[["home_id", "committee_id"]], on="home_id", validate="1:1")
    return d, cov, ph


def _share(ph, mask, code):
    w = ph["population"].where(mask, 0.0)
    return float((w * ph[f"covered_{code}"]).sum() / w.sum())


def test_default_sample_urban_coverage_is_realistic(default_coverage):
    _, cov, ph = default_coverage
    assert set(URBAN_COVERAGE) <= set(cov.types)
    urban = ph["population"] > 300
    assert 80_000 <= ph.loc[urban, "population"].sum() <= 95_000
    shares = {code: _share(ph, urban, code) for code in URBAN_COVERAGE}
    off = {c: round(v, 3) for c, v in shares.items()
           if not URBAN_COVERAGE[c][0] <= v <= URBAN_COVERAGE[c][1]}
    assert not off, f"urban coverage out of the realistic ranges {URBAN_COVERAGE}: {off}"
    # village hamlets are served far worse (realistic), the district as a whole in between
    hamlets = ph["population"] <= 300
    for code in ("kindergarten", "primary_school", "community_health_station", "fresh_market"):
        assert _share(ph, hamlets, code) < shares[code] - 0.3, code


def test_default_sample_gaps_hold_on_the_network(default_coverage):
    d, cov, ph = default_coverage
    gaps = d["facilities"].attrs["sample_gaps"]
    assert gaps == GAPS_DEFAULT
    wd = cov.walk_distance_m
    for gap, types in (("kindergarten_300m", ["kindergarten"]),
                       ("clinic_1000m", ["community_health_station", "community_health_centre"]),
                       ("elderly_day_care_300m", ["elderly_day_care"])):
        inside = ph["committee_id"].isin(gaps[gap]) & (ph["population"] > 0)
        assert ph.loc[inside, "population"].sum() > 0, gap
        limit = 1000.0 if gap == "clinic_1000m" else wd[types[0]]
        for t in types:
            assert (ph.loc[inside, f"dist_{t}"] > limit).all(), (gap, t)
    # the kindergarten gap costs coverage that a neighbouring committee does have
    kg_gap = ph["committee_id"].isin(gaps["kindergarten_300m"])
    assert _share(ph, kg_gap, "kindergarten") == 0.0
    assert _share(ph, ~kg_gap & (ph["population"] > 300), "kindergarten") > 0.6


# ----------------------------------------------------------------------------- tables
def test_complaints(district):
    c = district["complaints"]
    assert 400 <= len(c) <= 600
    assert {"噪声", "停车", "垃圾", "积水", "设施不足"} <= set(c["category"])
    assert c["complaint_id"].is_unique
    hot = district["compounds"].set_index("compound_id").geometry.loc[c.attrs["parking_hotspot"]]
    near = shapely.distance(c.geometry.values, hot) < 100
    assert near.mean() > 0.2
    assert (c.loc[near, "category"] == "停车").mean() > 0.5
    assert pd.to_datetime(c["date"]).dt.year.eq(2024).all()


def test_survey(district):
    s = district["survey"]
    comm = district["committees"].set_index("committee_id")
    items = ["sat_livable", "sat_safety", "sat_renewal", "sat_green", "sat_transport",
             "sat_inclusive", "sat_governance", "sat_smart"]
    assert list(s.columns) == ["respondent_id", "age", "sex", "committee_id", "lon", "lat",
                               *items, "comment"]
    assert s[items].isin([1, 2, 3, 4, 5]).all().all()
    assert (s["age"] < 16).any() and (s["age"] >= 16).mean() > 0.9
    counts = s.groupby("committee_id").size().reindex(comm.index, fill_value=0)
    rate = counts / comm["population"]
    under = s.attrs["under_sampled"]
    assert len(under) == 2
    assert (rate.drop(under) >= 0.002).all()
    assert (rate.loc[under] < 0.002).all()
    assert s["comment"].str.len().gt(0).any()


# ----------------------------------------------------------------------------- files
def test_every_written_layer_reads_back(written, district):
    paths = written[0]
    gpkg = paths["gpkg"]
    import pyogrio

    info = {name: gtype for name, gtype in pyogrio.list_layers(gpkg)}
    assert list(info) == list(GPKG_LAYERS)
    for name in GPKG_LAYERS:
        assert pyogrio.read_info(gpkg, layer=name)["crs"] == "EPSG:4490"
        layer = read_layer(gpkg, name, layer=name)
        assert layer.attrs["geotijian"]["repairs"] == []
        assert len(layer) > 0
    comp = read_layer(gpkg, "compounds", layer="compounds")
    assert comp["population"].sum() == district["compounds"]["population"].sum()
    assert np.allclose(comp.area.sum(), district["compounds"].area.sum(), rtol=1e-6)
    cmp_ = read_layer(paths["complaints"], "complaints")
    assert len(cmp_) == len(district["complaints"])
    survey = pd.read_csv(paths["survey"])
    assert len(survey) == len(district["survey"])


def test_amap_csv_in_gcj02_lands_on_the_facilities(written, district):
    amap = read_layer(written[0]["amap"], "facilities", coords="gcj02")
    raw = pd.read_csv(written[0]["amap"])
    assert list(raw.columns) == ["facility_id", "name", "type", "lon", "lat", "capacity"]
    orig = district["facilities"].set_index("facility_id").geometry
    d = shapely.distance(amap.geometry.values, orig.reindex(amap["facility_id"]).values)
    assert d.max() < 2.0
    # read as WGS84 they would be ~500 m off (the reason coords="gcj02" exists)
    wrong = read_layer(written[0]["amap"], "facilities")
    assert shapely.distance(wrong.geometry.values, orig.reindex(wrong["facility_id"]).values).min() > 300
    # delivery + amap = all facilities, no duplicates
    gpkg_fac = read_layer(written[0]["gpkg"], "facilities", layer="facilities")
    assert not set(gpkg_fac["facility_id"]) & set(amap["facility_id"])
    assert len(gpkg_fac) + len(amap) == len(district["facilities"])


def test_orthophoto(written):
    import rasterio

    with rasterio.open(written[0]["ortho"]) as src:
        assert src.crs.to_epsg() == 4549
        assert src.count == 3 and src.dtypes == ("uint8",) * 3
        assert 0.5 <= src.res[0] <= 1.0
        assert src.profile["tiled"] and src.profile["compress"] == "deflate"
        assert "TIFFTAG_DATETIME" not in src.tags()
        assert 0.8e6 <= src.width * src.height * src.res[0] * src.res[1] <= 1.3e6  # ~1 km²
        img = src.read()
    r, g, b = (img[i].astype(int) for i in range(3))
    green = (g > r + 15) & (g > b + 15)
    blue = (b > r + 30)
    assert 0.05 < green.mean() < 0.8
    assert blue.mean() > 0.005  # the river is in the picture


def test_bundled_sample_matches_the_generator(district):
    path = sample_path(GPKG_NAME)
    assert path.exists() and path.parent.name == "sample"
    comp = read_layer(path, "compounds", layer="compounds")
    assert len(comp) == len(district["compounds"])
    assert comp["population"].sum() == district["compounds"]["population"].sum()
    # the bundled facilities are the generator's (regenerate: python -m geotijian.sample)
    fac = district["facilities"]
    gpkg_fac = read_layer(path, "facilities", layer="facilities")
    amap = read_layer(sample_path("facilities_amap_gcj02.csv"), "facilities", coords="gcj02")
    assert sorted(gpkg_fac["facility_id"]) == sorted(fac.loc[fac["source"] == "delivery", "facility_id"])
    assert sorted(amap["facility_id"]) == sorted(fac.loc[fac["source"] == "amap", "facility_id"])
    assert (gpkg_fac.set_index("facility_id")["type"].sort_index()
            == fac.set_index("facility_id")["type"].reindex(gpkg_fac["facility_id"]).sort_index()).all()
    total = sum(sample_path(n).stat().st_size for n in SAMPLE_FILES)
    assert total < 10e6
    with pytest.raises(FileNotFoundError):
        sample_path("nope.gpkg")


# ----------------------------------------------------------------------------- properties
@hsettings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1))
def test_invariants_hold_for_any_seed(seed):
    d = make_sample_district(seed=seed)
    comm, comp = d["committees"], d["compounds"]
    pop = comm["population"].to_numpy()
    assert (pop < 5000).sum() >= 2 and (pop > 12000).sum() >= 2
    assert (comp["population"] > 12000).sum() == 1
    assert comp["population"].sum() == 120_000
    summed = comp.groupby("committee_id")["population"].sum().reindex(comm["committee_id"])
    assert (summed.to_numpy() == pop).all()
    assert _graph(d["roads"])[1] == 1
    assert d["facilities"]["type"].nunique() >= 12
    union = shapely.union_all(d["towns"].geometry.values)
    assert shapely.symmetric_difference(union, d["boundary"].geometry.iloc[0]).area < 1.0


def test_invalid_scale_is_refused():
    with pytest.raises(ValueError, match="scale"):
        make_sample_district(scale=0)


# ----------------------------------------------------------------------------- Jiading scale
def test_jiading_scale_is_large_and_fast():
    # CPU time (every thread of the process): the wall time on a shared CI runner measures
    # the neighbours as much as the generator
    t0 = time.process_time()
    d = make_sample_district(scale=18.4)
    elapsed = time.process_time() - t0
    assert elapsed < 30.0, f"scale 18.4 took {elapsed:.1f} s of CPU"
    roads, comp = d["roads"], d["compounds"]
    n_nodes, n_comp, _ = _graph(roads)
    assert n_nodes >= 200_000 and n_comp == 1
    assert len(comp) >= 20_000
    assert 1.6e6 <= comp["population"].sum() <= 2.0e6
    area = d["boundary"].area.sum() / 1e6
    assert 400 <= area <= 520
    assert d["facilities"]["type"].nunique() >= 12
