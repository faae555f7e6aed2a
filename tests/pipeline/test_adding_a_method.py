"""A method added in one class and one registry line runs through train -> archive -> validate
(``docs/adding-a-method.md``). The class below is registered inside the test (the product's
methods have their line in ``model/networks/registry.py``); the trainer, the runner and the
archive know it only through its capabilities (class attributes), never by its name."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from torch import nn

from model.networks.base import TorchModel
from model.networks.registry import ModelInfo, get_model_class, register_model, unregister_model


class PixelLinear(TorchModel):
    """A linear map of each pixel's inputs (every step and channel plus the static layers)."""

    name = "pixel_linear"
    per_pixel = True            # no spatial context: trained on pixels, run on cells with inputs
    demo_minutes = 0.5

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        self.head = nn.Conv2d(self.dims.n_features, 1, 1)

    def forward(self, batch):
        self.check(batch)
        return self.head(self.flatten(batch))


@pytest.fixture
def registered():
    register_model(ModelInfo("pixel_linear", "torch", "linear per pixel (test)", "per-pixel network"),
                   PixelLinear)
    try:
        yield "pixel_linear"
    finally:
        unregister_model("pixel_linear")


def test_registry_checks_the_class_against_its_line(registered):
    from model.errors import InputError
    from model.networks.registry import model_names

    assert get_model_class(registered) is PixelLinear and registered in model_names(kind="torch")
    with pytest.raises(ValueError, match="already registered"):
        register_model(ModelInfo("pixel_linear", "torch", "again", "per-pixel network"), PixelLinear)
    register_model(ModelInfo("mislabelled", "sklearn", "says sklearn, is torch", "x"), PixelLinear)
    try:
        with pytest.raises(TypeError, match="make them agree"):
            get_model_class("mislabelled")
    finally:
        unregister_model("mislabelled")
    with pytest.raises(InputError):
        register_model(ModelInfo("odd", "quantum", "no such kind", "x"), PixelLinear)


def test_capabilities_of_the_product_methods():
    """What the trainer, runner and archive ask (these were name checks in four files)."""
    caps = {n: (get_model_class(n).kind, get_model_class(n).per_pixel, get_model_class(n).batchable,
                get_model_class(n).reads_channel)
            for n in ("pscnet", "mlp", "lstm", "rf", "unet", "smap_bilinear", "era5_cdf")}
    assert caps == {"pscnet": ("torch", False, True, None), "mlp": ("torch", True, True, None),
                    "lstm": ("torch", True, True, None), "rf": ("sklearn", True, True, None),
                    "unet": ("torch", False, True, None),
                    "smap_bilinear": ("reference", False, False, None),
                    "era5_cdf": ("reference", False, False, "swvl1")}
    learned = ["pscnet", "rf", "gbm", "mlp", "lstm", "resnet", "unet", "convlstm", "vit"]
    assert {n: get_model_class(n).demo_minutes for n in learned} == dict.fromkeys(learned, 1.0)  # equal budgets


def test_a_new_method_goes_through_train_archive_validate(registered, tiny_pipeline, tmp_path, monkeypatch):
    from model.inference.archive import build_archive, complete_models, open_archive
    from model.inference.runner import Runner
    from model.features.ard import ard_info
    from model.training.cli import train_config
    from model.training.trainer import train
    from model.validation.experiments import run_validation

    home = tmp_path / "home"
    (home / "worlds").mkdir(parents=True)
    (home / "worlds" / "tiny").symlink_to(tiny_pipeline / "worlds" / "tiny")
    monkeypatch.setenv("SMDS_HOME", str(home))
    monkeypatch.setenv("SMDS_CATALOG", str(home / "worlds" / "tiny" / "catalog.yaml"))
    ard = home / "worlds" / "tiny" / "ard.zarr"

    cfg = train_config(registered, ard, max_epochs=2, steps_per_epoch=10, max_pixel_samples=20_000)
    assert cfg.max_minutes == 0.5                                  # the class's demo budget
    run = train(registered, cfg, ard=ard, progress=False)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["epochs"] >= 1 and np.isfinite(summary["tune_rmse"])

    runner = Runner(run, ard, "cpu")
    assert runner.per_pixel and runner.name == registered         # asked of the class, not the name

    test = ard_info(ard)["world"]["periods"]["test"]
    start = str(np.datetime64(test[0], "D"))
    end = str(np.datetime64(test[0], "D") + np.timedelta64(1, "D"))
    # one process (the archive's Dask workers would need the registry line in model/networks/registry.py)
    res = build_archive([registered], start, end, ard=ard, device="cpu", resident=True, progress=False)
    assert res["complete"] == {registered: True} and complete_models() == [registered]
    maps = open_archive("maps")[registered]
    assert maps.sizes["time"] == 16 and maps.attrs["units"] == "m3 m-3"
    direct = runner.scenes(maps["time"].values[:2])
    np.testing.assert_allclose(maps.isel(time=slice(0, 2)).values, direct, atol=1e-4, equal_nan=True)  # resident vs host path
    assert np.isfinite(maps.values).sum(axis=(1, 2)).min() > 500     # the tiny world: ~900 land cells

    out = run_validation(ard=ard, ceiling=False, n_resamples=50, report=False)
    assert set(out["status"].values()) == {"ok"}, out["status"]
    main = out["main_table"].set_index("model")
    assert main.loc[registered, "kind"] == "product"
    # two archived days: too few pairs per cell for per-cell R (NaN by design), pooled scores exist
    pooled = [c for c in main.columns if "pooled_R" in c and c.startswith(("smap", "truth"))]
    assert pooled and np.isfinite(main.loc[registered, pooled].astype(float)).any(), main.loc[registered]
    tables = [pd.read_parquet(p) for p in (home / "validation").rglob("*.parquet")]
    named = [t for t in tables if "model" in t.columns and (t["model"] == registered).any()]
    assert named, "the new method is in no validation table"
