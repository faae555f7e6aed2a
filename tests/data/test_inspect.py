"""``sm-downscale inspect`` on the real sample files: the JSON contract and the errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

KEYS = {"product", "variables", "time_start", "time_end", "soil_moisture"}


def _inspect(path, *extra):
    return subprocess.run([sys.executable, "-m", "model.cli", "inspect", str(path), *extra],
                          capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("rel,product,has_sm", [
    ("smap/SMAP_L2_SM_P_02801_A_20150811T013002_R18290_001.h5", "SPL2SMP", True),
    ("era5/era5_example_downloaded_raw.nc", "ERA5", True),
    ("era5/era5-2mt-2019-03-uk.grib", "ERA5", False),
    ("ismn/header_values_tp/MAQU/CST-01/MAQU_MAQU_CST-01_sm_0.050000_0.050000_ECH20-EC-TM_20070101_20131231.stm",
     "ISMN", True),
    ("dem/pvlib_Altitude_global_1_12deg.h5", "DEM", False),
])
def test_inspect_json_on_real_files(shared, rel, product, has_sm):
    r = _inspect(shared / rel, "--json")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert KEYS <= set(info)
    assert product.lower() in str(info["product"]).lower()
    sm = info["soil_moisture"]
    if has_sm:
        assert set(sm) >= {"valid_count", "mean", "min", "max"}
        # real ERA5 swvl1 carries int16 packing noise just below 0 and values up to ~0.75
        assert sm["valid_count"] > 0 and -0.01 <= sm["min"] <= sm["mean"] <= sm["max"] <= 0.8
    else:
        assert not sm


def test_inspect_text_on_maqu(shared):
    r = _inspect(shared / "ismn/header_values_tp/MAQU")
    assert r.returncode == 0, r.stderr
    assert "CST" in r.stdout and "soil moisture" in r.stdout


@pytest.mark.parametrize("content", [b"", b"hello, not a data file\n", b"\x89HDF\r\n\x1a\n" + b"\0" * 100])
def test_inspect_unreadable_exits_nonzero(tmp_path, content):
    p = tmp_path / "bad.h5"
    p.write_bytes(content)
    r = _inspect(p)
    assert r.returncode != 0
    assert "bad.h5" in r.stderr and "error" in r.stderr


def test_inspect_truncated_real_smap(shared, tmp_path):
    src = shared / "smap/SMAP_L2_SM_P_02801_A_20150811T013002_R18290_001.h5"
    p = tmp_path / src.name
    p.write_bytes(src.read_bytes()[: src.stat().st_size // 3])
    r = _inspect(p, "--json")
    assert r.returncode != 0 and src.name in r.stderr


def test_inspect_missing_path(tmp_path):
    r = _inspect(tmp_path / "nope.nc")
    assert r.returncode == 2 and "no such file" in r.stderr
