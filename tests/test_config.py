"""Study configuration: errors name the key and the fix; the CLI exits 2 on them."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from geotijian import ConfigError
from geotijian.config import read_config, write_template


def _write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "data.gpkg").write_bytes(b"")  # existence is all read_config checks
    p = tmp_path / "study.toml"
    p.write_text(text, encoding="utf-8")
    return p


BASE = """
[study]
name = "t1"
[layers.boundary]
path = "data.gpkg"
layer = "boundary"
[layers.roads]
path = "data.gpkg"
layer = "roads"
"""


def test_minimal_config_reads(tmp_path):
    cfg = read_config(_write(tmp_path, BASE))
    assert cfg.name == "t1"
    assert [s.role for s in cfg.layers] == ["boundary", "roads"]
    assert cfg.network["source"] == "roads"
    assert cfg.layers[0].path == (tmp_path / "data.gpkg").resolve()


@pytest.mark.parametrize(
    "extra, key, words",
    [
        ('[layers.parcels]\npath = "data.gpkg"\n', "layers.parcels", "unknown layer role"),
        ('[layers.towns]\npath = "missing.gpkg"\n', "layers.towns.path", "file not found"),
        ('[layers.poi]\nrole = "facilities"\npath = "data.gpkg"\ncrs = "EPSG:99999"\n', "layers.poi.crs", "unknown CRS"),
        ('[layers.poi]\nrole = "facilities"\npath = "data.gpkg"\ncoords = "mars"\n', "layers.poi.coords", "unknown coordinate system"),
        ('[units]\nmin_pop = 9000\nmax_pop = 8000\n', "units.min_pop", "must be below"),
        ('[population]\nsource = "census"\n', "population.source", "unknown source"),
        ('[report]\nlang = "fr"\n', "report.lang", "unknown language"),
        ('[colours]\nx = 1\n', "colours", "unknown section"),
    ],
)
def test_config_errors_name_the_key(tmp_path, extra, key, words):
    with pytest.raises(ConfigError) as err:
        read_config(_write(tmp_path, BASE + extra))
    assert err.value.key == key
    assert words in str(err.value)
    assert "Fix:" in str(err.value) or err.value.problem


def test_study_crs_must_be_metric(tmp_path):
    text = BASE.replace('name = "t1"', 'name = "t1"\ncrs = "EPSG:4490"')
    with pytest.raises(ConfigError, match="study.crs.*not a projected"):
        read_config(_write(tmp_path, text))
    text = BASE.replace('name = "t1"', 'name = "t1"\ncrs = "EPSG:3857"')
    with pytest.raises(ConfigError, match="1.37"):
        read_config(_write(tmp_path, text))


def test_roads_required_for_roads_network(tmp_path):
    text = BASE.replace('[layers.roads]\npath = "data.gpkg"\nlayer = "roads"\n', "")
    with pytest.raises(ConfigError) as err:
        read_config(_write(tmp_path, text))
    assert err.value.key == "layers.roads"


def test_template_is_valid_toml_and_refuses_overwrite(tmp_path):
    import tomllib

    p = write_template(tmp_path / "study.toml")
    raw = tomllib.loads(p.read_text(encoding="utf-8"))
    assert raw["study"]["name"] == "my_town"
    with pytest.raises(ConfigError):
        write_template(p)


def test_cli_config_error_is_one_line_and_exit_2(tmp_path):
    p = _write(tmp_path, BASE + '[layers.towns]\npath = "nope.gpkg"\n')
    proc = subprocess.run([sys.executable, "-m", "geotijian.cli", "run", str(p), "--quiet"],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "layers.towns.path" in lines[0] and "Fix:" in lines[0]
