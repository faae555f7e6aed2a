"""The real-data catalog template: same entry names as the virtual TP's, one setting."""

from __future__ import annotations

import shutil

import pytest

from model.config import CATALOG_DIR
from model.data.catalog import ENTRY_KINDS, entry_files, open_catalog, read_entry


def test_template_has_the_standard_entries():
    cat = open_catalog(CATALOG_DIR / "inputs.yaml")
    assert set(cat.entries) == set(ENTRY_KINDS) - {"truth"}


def test_root_setting_points_at_real_downloads(shared, tmp_path, monkeypatch):
    (tmp_path / "ISMN").mkdir()
    shutil.copytree(shared / "ismn/header_values_tp/MAQU", tmp_path / "ISMN" / "MAQU")
    monkeypatch.setenv("SMDS_INPUTS_ROOT", str(tmp_path))
    cat = open_catalog(CATALOG_DIR / "inputs.yaml")
    series = read_entry(cat, "ismn")
    assert [s.station for s in series] == ["CST-01"] or series[0].network == "MAQU"


def test_missing_files_say_where(tmp_path, monkeypatch):
    from model.errors import InputError

    monkeypatch.setenv("SMDS_INPUTS_ROOT", str(tmp_path))
    cat = open_catalog(CATALOG_DIR / "inputs.yaml")
    with pytest.raises(InputError, match="no input matches"):
        entry_files(cat, "smap_l3_36km")
