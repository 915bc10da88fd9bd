"""Constants and array helpers shared by the sample generator's stages."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from scipy import sparse
from scipy.sparse.csgraph import connected_components

# --------------------------------------------------------------------------- constants
CENTRE_LONLAT = (121.25, 31.38)          #: centre of the sample (Jiading, Shanghai)
BASE_SIDE_M = 5000.0                     #: side of the square district at scale 1 (m)
BASE_POPULATION = 120_000                #: residents at scale 1 (persons)
COMMITTEES_PER_SCALE = 15                #: committees at scale 1
BIG_COMPOUND_POP = 15_000                #: the single large compound (persons)
#: residents = BASE_POPULATION × scale ** POPULATION_EXPONENT: larger areas take in more
#: farmland and industry (scale 18.4 → ~1.8 million residents, Jiading's 2020 census figure)
POPULATION_EXPONENT = 0.93
PERSONS_PER_HOUSEHOLD = 2.6              #: Shanghai 7th census ≈ 2.3-2.7
DISTRICT_CODE = "310114"                 #: 嘉定区
DELIVERY_CRS = "EPSG:4490"               #: CGCS2000, like a real delivery
ORTHO_CRS = "EPSG:4549"                  #: CGCS2000 / 3-degree GK CM 120E (drone ortho)
GPKG_NAME = "sample_district.gpkg"
GPKG_LAYERS = ("boundary", "towns", "committees", "compounds", "buildings", "roads",
               "water", "rail", "parks", "facilities")
SAMPLE_FILES = (GPKG_NAME, "facilities_amap_gcj02.csv", "complaints_12345.csv",
                "survey_2024.csv", "ortho_rgb.tif")
FIXED_DATE = "2024-06-04T00:00:00Z"      #: OGR_CURRENT_DATE: GeoPackage timestamps
#: survey satisfaction items (column → dimension)
SAT_ITEMS = {
    "sat_livable": "宜居共建", "sat_safety": "安全韧性", "sat_renewal": "品质更新",
    "sat_green": "绿色低碳", "sat_transport": "交通便捷", "sat_inclusive": "多元共享",
    "sat_governance": "精细共治", "sat_smart": "智慧高效",
}
#: ``facilities.attrs["sample_gaps"]`` for the default seed (20240604) at scale 1; a test
#: keeps this in step with the generator.
GAPS_DEFAULT: dict[str, list[str]] = {
    "kindergarten_300m": ["310114102005"],
    "clinic_1000m": ["310114101001"],
    "elderly_day_care_300m": ["310114102005", "310114102201", "310114102202", "310114102203"],
}

#: Land use codes of grid cells: urban compounds, the big compound, comprehensive park,
#: public campus, village, industry, farmland
URB, BIG, PARK, PUB, VIL, IND, FARM = range(7)


# --------------------------------------------------------------------------- helpers
def ragged(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Owner index and rank within owner for ``counts`` items per owner."""
    counts = np.asarray(counts, dtype=np.int64)
    owner = np.repeat(np.arange(len(counts)), counts)
    starts = np.cumsum(counts) - counts
    rank = np.arange(int(counts.sum())) - np.repeat(starts, counts)
    return owner, rank


def largest_part(geoms: np.ndarray) -> np.ndarray:
    """Each geometry reduced to its largest polygon (None stays None)."""
    out = np.array(geoms, dtype=object)
    multi = shapely.get_num_geometries(out) > 1
    if multi.any():
        parts, owner = shapely.get_parts(out[multi], return_index=True)
        area = shapely.area(parts)
        order = np.lexsort((-area, owner))
        first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
        out[np.flatnonzero(multi)[owner[first]]] = parts[first]
    return out


def polys(corners: np.ndarray) -> np.ndarray:
    """Polygons from an (n, 4, 2) array of corners."""
    ring = np.concatenate([corners, corners[:, :1]], axis=1)
    return shapely.polygons(ring)


def components(n: int, a: np.ndarray, b: np.ndarray) -> tuple[int, np.ndarray]:
    """Connected components of the undirected graph of ``n`` nodes and edges ``a``-``b``."""
    g = sparse.coo_matrix((np.ones(len(a)), (a, b)), shape=(n, n)).tocsr()
    return connected_components(g, directed=False)


@dataclass
class Table:
    """Column arrays built by concatenating groups (a tiny ragged dataframe)."""

    cols: dict[str, list[np.ndarray]] = field(default_factory=dict)

    def add(self, **kw: Any) -> None:
        n = max(len(np.atleast_1d(v)) for v in kw.values() if np.ndim(v) > 0)
        for k, v in kw.items():
            a = np.asarray(v)
            if a.ndim == 0:
                a = np.full(n, v, dtype=object if isinstance(v, str) or v is None else None)
            self.cols.setdefault(k, []).append(a)

    def get(self) -> dict[str, np.ndarray]:
        return {k: np.concatenate(v) for k, v in self.cols.items()}


class Net:
    """Network under construction: nodes (x, y) and lines holding nodes at parameters t.

    A line is straight; a node on it is recorded as (node, line, t in [0, 1]). Edges are
    the consecutive nodes of each line once sorted by t, so every junction is one shared
    node and the road layer is noded by construction.
    """

    def __init__(self) -> None:
        self.xy: list[np.ndarray] = []
        self.n_nodes = 0
        self.lines = Table()
        self.n_lines = 0
        self.mem: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []

    def nodes(self, xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        ids = np.arange(self.n_nodes, self.n_nodes + len(xy))
        self.n_nodes += len(xy)
        self.xy.append(xy)
        return ids

    def add_lines(self, n: int, *, highway: Any, name: Any = None, art: Any = -1,
                  item: Any = -1, parcel: Any = -1) -> np.ndarray:
        ids = np.arange(self.n_lines, self.n_lines + n)
        self.n_lines += n
        if n:
            def full(v: Any, dtype: Any) -> np.ndarray:
                a = np.empty(n, dtype=dtype)
                a[:] = v
                return a
            self.lines.add(highway=full(highway, object), name=full(name, object),
                           art=full(art, np.int64), item=full(item, np.int64),
                           parcel=full(parcel, np.int64))
        return ids

    def member(self, node: np.ndarray, line: np.ndarray, t: np.ndarray) -> None:
        node, line, t = np.broadcast_arrays(np.asarray(node), np.asarray(line), np.asarray(t, float))
        self.mem.append((node.ravel().astype(np.int64), line.ravel().astype(np.int64),
                         t.ravel().astype(float)))


@dataclass
class Build:
    """What the layout stages add to: the network under construction, buildings, parks.

    ``bld`` rows: geom, levels, use, item (compound slot or hamlet; -1 none), year;
    ``parks`` rows: geom, kind, parcel.
    """

    net: Net = field(default_factory=Net)
    bld: Table = field(default_factory=Table)
    parks: Table = field(default_factory=Table)
