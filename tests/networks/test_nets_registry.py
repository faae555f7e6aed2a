"""The registry, its unknown-name message, the models subcommand, import hygiene."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from model.cli import main
from model.errors import InputError, UnknownNameError
from model.networks.registry import (ABLATIONS, get_model, get_model_class, list_models, model_info,
                                     split_ablation)

EXPECTED = {"pscnet": "torch", "mlp": "torch", "lstm": "torch", "convlstm": "torch",
            "resnet": "torch", "unet": "torch", "vit": "torch", "rf": "sklearn",
            "gbm": "sklearn", "smap_bilinear": "reference", "era5_cdf": "reference"}


def test_list_models():
    infos = list_models()
    assert {m.name: m.kind for m in infos} == EXPECTED
    assert all(m.description and m.family for m in infos)
    assert [m.name for m in list_models("reference")] == ["smap_bilinear", "era5_cdf"]
    for m in infos:
        cls = get_model_class(m.name)
        assert cls.name == m.name and cls.kind == m.kind


def test_unknown_name_lists_nearest():
    with pytest.raises(UnknownNameError, match=r"unknown model 'pscnt' -- did you mean: pscnet"):
        get_model("pscnt")
    with pytest.raises(UnknownNameError, match="valid: convlstm, era5_cdf"):
        model_info("transformer")


def test_get_model_builds():
    net = get_model("unet", n_dynamic=10, n_static=8, widths=(16, 32))
    assert net.config_dict()["widths"] == [16, 32]
    assert get_model("smap_bilinear").config_dict() == {"edge_cells": 0.5}


def test_named_ablations_build_the_switched_network():
    assert split_ablation("pscnet") == ("pscnet", {})
    assert split_ablation("pscnet:no_mftf") == ("pscnet", {"use_mftf": False})
    full = get_model("pscnet", n_dynamic=10, n_static=8).config_dict()
    for name, kw in ABLATIONS["pscnet"].items():
        base, got = split_ablation(f"pscnet:{name}")
        cfg = get_model(base, n_dynamic=10, n_static=8, **got).config_dict()
        changed = {k for k in cfg if cfg[k] != full[k]}
        assert changed == set(kw), name                  # switches exactly what the table says
    with pytest.raises(UnknownNameError, match=r"unknown ablation of pscnet 'no_mft' -- did you mean: no_mftf"):
        split_ablation("pscnet:no_mft")
    with pytest.raises(InputError, match="'unet' has no named ablations"):
        split_ablation("unet:no_skip")
    with pytest.raises(UnknownNameError, match="unknown model 'pscnt'"):
        split_ablation("pscnt:no_mftf")


def test_models_subcommand(capsys):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "pscnet" in out and "smap_bilinear" in out and "description" in out
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == list(EXPECTED)
    assert all({"name", "kind", "description"} <= set(r) for r in rows)


def test_listing_needs_no_torch_and_networks_no_dashboard_libs():
    code = ("import sys; sys.modules['torch'] = None\n"
            "import model.networks as n, model.networks.cli\n"
            "assert len(n.list_models()) == 11\n")
    subprocess.run([sys.executable, "-c", code], check=True)
    code = ("import sys\n"
            "for m in ('panel', 'holoviews', 'bokeh', 'xarray', 'zarr', 'intake', 'sklearn'):\n"
            "    sys.modules[m] = None\n"
            "from model.networks import get_model, save_checkpoint\n"
            "from model.networks import pscnet, pixel, conv, vit, trees, reference\n"
            "get_model('pscnet', n_dynamic=2, n_static=2)\n")
    subprocess.run([sys.executable, "-c", code], check=True)
