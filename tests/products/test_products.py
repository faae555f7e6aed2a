"""The products catalog opens with plain Intake 2 (no sm-downscale), carries its metadata, and
every archive entry works with hvplot in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from model.products import open_products, product_table, register_products

# Runs in a fresh interpreter, in a folder outside the checkout, with `model` and `dashboard`
# made unimportable (an installed or PYTHONPATH copy would otherwise be found).
ISOLATED = textwrap.dedent('''
    import json, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("model", "dashboard"):
                raise ImportError(f"{name} is hidden in this test")
    sys.meta_path.insert(0, Block())
    import intake
    cat = intake.from_yaml_file(sys.argv[1])
    out = {}
    for name, entry in cat.entries.items():
        obj = cat[name].read()
        kind = type(obj).__module__.split(".")[0] + "." + type(obj).__name__
        shape = dict(obj.sizes) if hasattr(obj, "sizes") else list(obj.shape)
        out[name] = {"kind": kind, "reader": entry.reader, "shape": shape,
                     "vars": sorted(map(str, obj.data_vars if hasattr(obj, "data_vars") else obj.columns))}
    ds = cat["archive_maps_pscnet"].read()
    out["_value"] = float(ds["pscnet"].isel(time=11).mean())
    out["_project_modules"] = sorted(m for m in sys.modules if m.split(".")[0] in ("model", "dashboard"))
    print(json.dumps(out))
''')


@pytest.fixture
def products(tiny):
    return register_products(tiny)


def test_catalog_opens_without_the_project(products, tiny, tmp_path):
    script = tmp_path / "open_catalog.py"
    script.write_text(ISOLATED)
    proc = subprocess.run([sys.executable, "-I", str(script), str(products)], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out.pop("_project_modules") == []
    value = out.pop("_value")
    ref = xr.open_zarr(tiny / "archive" / "maps.zarr", consolidated=True)["pscnet"].isel(time=11)
    assert value == pytest.approx(float(ref.mean()), rel=1e-6)
    assert all(e["reader"].startswith("intake.readers.readers:") for e in out.values())
    assert out["archive_maps_pscnet"]["kind"] == "xarray.Dataset"
    assert out["archive_maps_pscnet"]["vars"] == ["crs", "pscnet", "tp_mask"]
    assert out["archive_series_unet"]["vars"] == ["crs", "tp_mask", "unet"]
    assert out["smap_l4_ard"]["vars"] == ["sm_surface"]
    assert "swvl1" in out["era5land_ard"]["vars"]
    assert out["validation_summary"]["kind"] == "pandas.DataFrame"
    assert out["validation_vs_smap_maps"]["kind"] == "xarray.Dataset"
    assert {"R", "bias", "ubRMSE"} <= set(out["validation_vs_smap_maps"]["vars"])


def test_catalog_metadata(products, tiny):
    cat = open_products(products)
    md = cat["archive_series_pscnet"].metadata
    attrs = xr.open_zarr(tiny / "archive" / "series.zarr", consolidated=True)["pscnet"].attrs
    assert md["variable"] == "pscnet" and md["model"] == "pscnet" and md["units"] == "m3 m-3"
    assert md["checkpoint_sha256"] == attrs["provenance_checkpoint_sha256"] and len(md["checkpoint_sha256"]) == 64
    assert md["grid"] == "TP10" and "0.1 degree" in md["grid_description"]
    assert md["period"] == ["2017-07-03T00:00:00", "2017-07-15T21:00:00"]
    assert cat["smap_l4_ard"].metadata["grid"] == "M09"
    table = product_table(products)
    row = table.set_index("entry").loc["archive_maps_pscnet"]
    assert row["checkpoint"] == md["checkpoint_sha256"][:12] and row["period"] == "2017-07-03 .. 2017-07-15"
    assert len(table) == len(cat.entries)


def test_hvplot_one_liners(products, tiny):
    """The README's notebook lines: a rasterized geo quadmesh of a map frame and a station
    series; rendered to Bokeh, the glyphs carry the archive's numbers."""
    import holoviews as hv
    import hvplot.pandas  # noqa: F401
    import hvplot.xarray  # noqa: F401

    hv.extension("bokeh")
    cat = open_products(products)
    ds = cat["archive_maps_pscnet"].read()
    frame = ds.pscnet.isel(time=11)
    plot = frame.hvplot.quadmesh(x="lon", y="lat", geo=True, rasterize=True)
    fig = hv.render(plot, backend="bokeh")
    img = fig.renderers[0].data_source.data["image"][0]
    ref = frame.values
    assert img.shape[0] > 50 and img.shape[1] > 50
    assert np.nanmin(img) >= np.nanmin(ref) - 1e-6 and np.nanmax(img) <= np.nanmax(ref) + 1e-6
    assert np.isfinite(img).sum() > 100
    series = cat["archive_series_pscnet"].read().pscnet.sel(lat=33.95, lon=102.15, method="nearest")
    sfig = hv.render(series.hvplot(x="time"), backend="bokeh")
    src = next(r.data_source for r in sfig.renderers if "pscnet" in r.data_source.data)
    np.testing.assert_allclose(src.data["pscnet"], series.values, rtol=1e-6)
    table = cat["validation_summary"].read()
    assert isinstance(table, pd.DataFrame)
