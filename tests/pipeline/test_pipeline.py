"""The real pipeline on the tiny virtual TP: ingest, training, runner, archive, export, validation.

One session fixture (``tiny_pipeline`` in tests/conftest.py) builds everything once with
the real code; these tests check what it wrote and exercise the pieces around it.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from model.errors import CoverageError, InputError


def _ard(home):
    return home / "worlds" / "tiny" / "ard.zarr"


# ------------------------------------------------------------------------- ingest
def test_ingest_store_contents(tiny):
    from model.features.ard import ard_info, open_group

    ard = _ard(tiny)
    info = ard_info(ard)
    assert info["report"]["skipped"] == []
    era5 = open_group(ard, "era5")
    t = era5["time"].values
    assert np.all(np.diff(t) == np.timedelta64(3, "h"))
    assert set(["swvl1", "stl1", "skt", "t2m", "d2m", "tp", "e", "ssrd", "sd"]) <= set(era5.data_vars)
    assert era5["swvl1"].attrs.get("units") == "m3 m-3"
    sm = open_group(ard, "smap_m09")["soil_moisture"]
    v = sm.values
    assert np.nanmin(v) >= 0.02 and np.nanmax(v) <= 0.5  # the quality policy's valid range
    hours = pd.DatetimeIndex(sm["time"].values).hour
    assert set(hours) <= {0, 12, 21, 3, 9, 15}  # overpasses near 00 and 12 UTC over the TP
    st = pd.read_parquet(ard / "stations.parquet")
    assert {"network", "station", "time", "soil_moisture"} <= set(st.columns)
    assert len(st) > 1000


def test_smap_cube_skips_a_bad_file_and_reports(tiny, tmp_path):
    from model.data.ingest import IngestReport, smap_l3_cube

    files = sorted((tiny / "worlds" / "tiny" / "inputs" / "SPL3SMP").glob("*.h5"))[:3]
    bad = tmp_path / "SMAP_L3_SM_P_20170699_R18290_001.h5"
    bad.write_bytes(files[0].read_bytes()[:5000])
    cube, report = smap_l3_cube(files + [bad], report=IngestReport())
    assert [p for p, _ in report.skipped] == [str(bad)]
    assert "skipped 1" in report.summary()
    assert cube.sizes["time"] >= 2


def test_catalog_entries(tiny):
    from model.data.catalog import open_catalog, read_entry

    cat = open_catalog()
    ds = read_entry(cat, "smap_l3_36km")
    assert ds["soil_moisture"].dims == ("time", "y", "x")
    with pytest.raises(InputError, match="did you mean"):
        read_entry(cat, "smap_l3_36")


# ------------------------------------------------------------------------ training
def test_every_model_trained_and_rebuilds_from_its_checkpoint(tiny):
    from model.networks.checkpoint import load_checkpoint
    from model.networks.registry import model_names
    from model.runs.folders import latest_run

    for name in model_names():
        run = latest_run(name)
        model, extra = load_checkpoint(run / "checkpoint.pt")
        assert model.name == name
        norm = extra["normalisation"]
        train_end = np.datetime64(extra["train_period"][1]) + np.timedelta64(1, "D")
        if name != "smap_bilinear":
            assert np.datetime64(norm["fitted_on"]["end"]) < train_end  # never the test period
        summary = json.loads((run / "summary.json").read_text())
        assert summary["model"] == name


def test_unknown_model_names_nearest(tiny):
    from model.cli import main

    with pytest.raises(SystemExit):
        main(["train", "--model"])  # argparse: missing value
    assert main(["train", "--model", "pscnett"]) == 2


# -------------------------------------------------------------------------- runner
def test_runner_regenerates_archived_scene(tiny):
    from model.inference.archive import open_archive
    from model.inference.runner import Runner

    maps = open_archive("maps")
    t = maps["time"].values[5]
    for name in ("pscnet", "rf", "era5_cdf"):
        r = Runner(name, _ard(tiny), device="cpu")
        a = r.scene(t)
        b = maps[name].sel(time=t).values
        assert a.attrs["units"] == "m3 m-3"
        if name == "rf":
            # a tree split can flip on a float knife-edge (the archive's block cube and the
            # runner's window start on different days, so daily/weekly means differ in the
            # last bits): allow at most 0.1 % of cells to differ, never the NaN pattern
            assert (np.isnan(a.values) == np.isnan(b)).all()
            bad = ~np.isclose(a.values, b, atol=1e-5, equal_nan=True)
            assert bad.mean() <= 1e-3, (name, int(bad.sum()))
        else:
            np.testing.assert_allclose(a.values, b, atol=1e-5, equal_nan=True)
        ok = np.isfinite(a.values)
        assert ok.sum() > 100
        assert np.nanmin(a.values) >= 0 and np.nanmax(a.values) <= 0.7
        if name != "era5_cdf":
            # a product only where the tiny world has inputs (its 3 x 3 degree box), not on
            # the whole TP10 grid
            lat, lon = np.meshgrid(a["lat"].values, a["lon"].values, indexing="ij")
            assert not ok[(lat < 29.9) | (lat > 33.1) | (lon < 89.9) | (lon > 93.1)].any(), name
            assert ok.sum() >= 800, name


def test_per_pixel_models_run_in_pieces(tiny, monkeypatch):
    """Per-pixel models (MLP, LSTM) run the strip of TP cells in pieces of about
    CPU_PIXEL_CHUNK sequences on the CPU (PIXEL_CHUNK on a GPU: a whole-TP LSTM strip does not
    fit one), of equal size; the pieces give the same scenes as the whole strip at once."""
    from model.inference import runner as R

    r = R.Runner("lstm", _ard(tiny), device="cpu")
    t = r.provider.times[-3:]
    monkeypatch.setattr(R, "CPU_PIXEL_CHUNK", 10**7)
    whole = r.scenes(t, batch=3)
    sizes = []
    real = r._forward
    monkeypatch.setattr(r, "_forward", lambda b, amp: sizes.append(b["x3h"].shape[-1]) or real(b, amp))
    monkeypatch.setattr(R, "CPU_PIXEL_CHUNK", 301 * 3)  # 301 cells of 3 scenes: not a divisor of the strip
    np.testing.assert_allclose(r.scenes(t, batch=3), whole, atol=1e-6, equal_nan=True)
    n = int(np.isfinite(whole[0]).sum())
    assert n > 300 and sum(sizes) == n and len(sizes) == -(-n // 301) and max(sizes) - min(sizes) <= 1


def test_normalised_copy_gives_the_windows_of_normalise_batch(tiny):
    """A cube's normalised copy (what the archive's models share) cuts the windows that
    normalise_batch makes of the raw cube's, to the bit; the raw cube is unchanged, the copy
    is made once per normalisation, and a model run on a held cube (the archive's path) gives
    the scenes of the same model run scene by scene on demand on that cube (the dashboard's
    path)."""
    from model.inference import runner as R
    from model.inference.inputs import normalise_batch

    for name in ("lstm", "unet"):
        r = R.Runner(name, _ard(tiny), device="cpu")
        t = r.provider.times[-12:]
        cube = r.provider.cube_between(t[0], t[-1])
        raw = cube.x3.copy()
        norm_cube = cube.normalised_copy(r.norm)
        assert cube.normalised_copy(r.norm) is norm_cube and norm_cube.normalised and not cube.normalised
        for i in (0, cube.step_index(t[-1])):
            want = normalise_batch({k: v[None] for k, v in cube.window(i).items()}, r.norm)
            got = norm_cube.window(i)
            for k in want:
                np.testing.assert_array_equal(got[k], want[k][0], err_msg=f"{name} {k}")
        np.testing.assert_array_equal(cube.x3, raw)
        with pytest.raises(InputError, match="already normalised"):
            norm_cube.normalised_copy(r.norm)
        held = r.scenes(t, cube=cube)
        r.provider.cube_for = lambda _t: cube     # the on-demand path on the same cube
        alone = np.stack([r.scenes([s])[0] for s in t])
        np.testing.assert_allclose(held, alone, atol=1e-6, equal_nan=True, err_msg=name)
        assert np.isfinite(held).sum() > 300 * len(t)

    # a cube whose copy would take more than its share of the memory keeps no copy: its windows
    # are standardised call by call, with the same scenes to the bit
    from model.features import cube as C

    big = r.provider.cube_between(t[0], t[-1])
    assert big.shares_a_copy()
    big.__dict__.pop("_normalised_copies", None)           # the provider may hand back the same cube
    C.COPY_MEMORY_SHARE, share = 1e-9, C.COPY_MEMORY_SHARE
    try:
        assert not big.shares_a_copy()
        per_call = r.scenes(t, cube=big)
    finally:
        C.COPY_MEMORY_SHARE = share
    assert "_normalised_copies" not in big.__dict__
    np.testing.assert_array_equal(per_call, held)


def test_cpu_calls_use_the_methods_batch(tiny, monkeypatch):
    """On a CPU a call without ``batch`` runs the method's ``cpu_batch`` scenes at a time (one
    whole scene per call for all but the LSTM, which takes a day: batches of whole scenes run
    slower per scene on a CPU, docs/benchmarks.md), more for a small region, with the same
    values as a batch of 8."""
    from model.inference import runner as R
    from model.networks.registry import get_model_class

    assert get_model_class("lstm").cpu_batch == 8
    assert {n: get_model_class(n).cpu_batch for n in ("pscnet", "unet", "convlstm", "mlp", "rf")} == \
        dict.fromkeys(("pscnet", "unet", "convlstm", "mlp", "rf"), 1)
    # the tiny world's 3 x 3 degree region batches up to CPU_CALL_CELLS cells per call; with a
    # bound below one scene's region every scene is its own call, as on the whole TP
    for name, cells, want in (("mlp", 1, [1] * 10), ("mlp", R.CPU_CALL_CELLS, [8, 2]), ("lstm", 1, [8, 2])):
        monkeypatch.setattr(R, "CPU_CALL_CELLS", cells)
        r = R.Runner(name, _ard(tiny), device="cpu")
        t = r.provider.times[-10:]
        calls = []
        real = r._predict
        monkeypatch.setattr(r, "_predict", lambda times, **kw: calls.append(len(times)) or real(times, **kw))
        own = r.scenes(t)
        assert calls == want, name
        np.testing.assert_allclose(own, r.scenes(t, batch=8), atol=1e-6, equal_nan=True)


def test_data_region_of_a_regional_cube(tiny):
    """The runner's region: TP cells with inputs, and their box widened by the margin."""
    from model.grids import tp_mask
    from model.inference.inputs import InputProvider
    from model.inference.runner import REGION_MARGIN, data_region

    p = InputProvider(_ard(tiny))
    cube = p.cube_for(p.times[-1])
    mask = tp_mask("TP10")
    valid, ys, xs = data_region(cube, mask)
    has_inputs = np.isfinite(cube.x3).any(axis=(0, 1))
    np.testing.assert_array_equal(valid, has_inputs & mask)
    rows, cols = np.flatnonzero(valid.any(1)), np.flatnonzero(valid.any(0))
    assert ys == slice(rows[0] - REGION_MARGIN, rows[-1] + 1 + REGION_MARGIN)
    assert xs == slice(cols[0] - REGION_MARGIN, cols[-1] + 1 + REGION_MARGIN)
    assert data_region(cube, mask)[1] is ys  # cached on the cube


def test_runner_bad_times(tiny):
    from model.inference.runner import get_runner

    r = get_runner("mlp", _ard(tiny), device="cpu")
    assert get_runner("mlp", _ard(tiny), device="cpu") is r  # shared, loaded once
    with pytest.raises(CoverageError, match="outside"):
        r.scene("2030-01-01T00:00")
    with pytest.raises(CoverageError, match="product step"):
        r.scene(str(r.provider.times[10] + np.timedelta64(1, "h")))


def test_runner_rejects_a_checkpoint_of_another_model(tiny):
    from model.networks.checkpoint import load_checkpoint
    from model.runs.folders import latest_run

    with pytest.raises(InputError, match="holds model"):
        load_checkpoint(latest_run("unet") / "checkpoint.pt", name="pscnet")


# ------------------------------------------------------------------------- archive
class _Counting:
    """A zarr LocalStore that records the keys it reads."""

    def __new__(cls, path):
        from zarr.storage import LocalStore

        class Counting(LocalStore):
            async def get(self, key, prototype=None, byte_range=None):
                self.keys_read.append(key)
                return await super().get(key, prototype, byte_range)

        st = Counting(str(path), read_only=True)
        object.__setattr__(st, "keys_read", [])
        return st


def test_archive_layouts_and_chunk_reads(tiny):
    ds = xr.open_zarr(tiny / "archive" / "maps.zarr", consolidated=True)
    assert ds.attrs["complete_models"]["pscnet"] is True
    assert ds["pscnet"].attrs["units"] == "m3 m-3"
    assert ds["pscnet"].attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
    assert len(ds["pscnet"].attrs["provenance_checkpoint_sha256"]) == 64
    st = _Counting(tiny / "archive" / "series.zarr")
    s = xr.open_zarr(st, consolidated=True)
    st.keys_read.clear()
    s["pscnet"].isel(lat=70, lon=190).values  # a station series
    assert [k for k in st.keys_read if not k.endswith((".zarray", ".zattrs", ".zgroup"))] == ["pscnet/0.7.19"]
    mt = _Counting(tiny / "archive" / "maps.zarr")
    m = xr.open_zarr(mt, consolidated=True)
    mt.keys_read.clear()
    m["pscnet"].isel(time=3).values  # a map frame
    assert len([k for k in mt.keys_read if k.startswith("pscnet/")]) == 1


_OPENED: list = []
_AUDIT = {"on": False}


def _audit(event, args):
    if _AUDIT["on"] and event == "open" and isinstance(args[0], (str, Path)):
        _OPENED.append(str(args[0]))


sys.addaudithook(_audit)  # counts the files Python really opens (zarr chunks are files)


def _chunk_files_opened(fn) -> list[str]:
    _OPENED.clear()
    _AUDIT["on"] = True
    try:
        fn()
    finally:
        _AUDIT["on"] = False
    return [p for p in _OPENED if ".zarr" in p and not Path(p).name.startswith(".z")]


def test_products_catalog_entries_read_one_chunk(tiny):
    """The products catalog lists the archive per model and layout, the L4 and ERA5-Land
    comparisons and the validation results; a station series or a map frame read through
    it opens exactly one chunk file."""
    from model.products import open_products

    cat = open_products()
    names = set(cat.entries)
    models = xr.open_zarr(tiny / "archive" / "maps.zarr", consolidated=True).attrs["complete_models"]
    for m in models:
        assert {f"archive_maps_{m}", f"archive_series_{m}"} <= names, m
    assert {"archive_maps", "archive_series", "smap_l4_ard", "era5land_ard", "validation_summary",
            "validation_vs_truth_maps", "validation_stations"} <= names
    series = cat["archive_series_pscnet"].read()
    maps = cat["archive_maps_pscnet"].read()
    assert set(series.data_vars) == {"pscnet", "tp_mask", "crs"}  # crs: the CF grid mapping
    opened = _chunk_files_opened(lambda: series["pscnet"].isel(lat=70, lon=190).values)
    assert opened == [str(tiny / "archive" / "series.zarr" / "pscnet" / "0.7.19")], opened
    opened = _chunk_files_opened(lambda: maps["pscnet"].isel(time=11).values)
    assert opened == [str(tiny / "archive" / "maps.zarr" / "pscnet" / "1.0.0")], opened
    l4 = cat["smap_l4_ard"].read()
    assert l4["sm_surface"].attrs.get("units") in ("m3 m-3", "m3/m3") and l4.sizes["time"] > 0
    assert isinstance(cat["validation_summary"].read(), pd.DataFrame)


def test_archive_resumes_after_a_kill(tiny, tmp_path):
    """Kill a build after its first finished block; the rerun redoes nothing finished."""
    out = tmp_path / "arch"
    code = (
        "import sys; from model.inference.archive import build_archive; "
        f"build_archive(['smap_bilinear', 'era5_cdf'], '2017-07-06', '2017-07-09', out=r'{out}', "
        f"ard=r'{_ard(tiny)}', workers=1, device='cpu', block_days=1, progress=False)"
    )
    proc = subprocess.Popen([sys.executable, "-c", code])
    ledger = out / "build"
    deadline = time.time() + 240
    while time.time() < deadline and not list(ledger.glob("*/*.done")):
        time.sleep(0.5)
    proc.kill()
    proc.wait()
    first = {p: p.stat().st_mtime_ns for p in ledger.glob("*/*.done")}
    assert first, "no block finished before the deadline"
    from model.inference.archive import build_archive, open_archive

    res = build_archive(["smap_bilinear", "era5_cdf"], "2017-07-06", "2017-07-09", out=out, ard=_ard(tiny),
                        workers=1, device="cpu", block_days=1, progress=False)
    assert all(res["complete"].values())
    for p, mt in first.items():
        assert p.stat().st_mtime_ns == mt  # finished work was not redone
    ds = open_archive("maps", out)
    assert np.isfinite(ds["era5_cdf"].values).any(axis=(1, 2)).all()


def test_archive_bad_scheduler_and_unknown_model(tiny, tmp_path):
    from model.inference.archive import build_archive

    with pytest.raises(InputError, match="does not answer"):
        build_archive(["smap_bilinear"], "2017-07-06", "2017-07-06", out=tmp_path / "a", ard=_ard(tiny),
                      scheduler="tcp://127.0.0.1:9", progress=False)
    with pytest.raises(InputError, match="did you mean|no trained run"):
        build_archive(["pscnett"], "2017-07-06", "2017-07-06", out=tmp_path / "b", ard=_ard(tiny), progress=False)


def test_archive_full_disk(tiny, tmp_path, monkeypatch):
    """Too little space: refused before any work, nothing written. The disk filling up during
    the build: a clear error, the archive not marked complete, and a rerun finishes it."""
    import errno
    import shutil as _shutil
    from collections import namedtuple

    import xarray as xr

    from model.inference import archive as A

    out = tmp_path / "arch"
    args = (["smap_bilinear"], "2017-07-06", "2017-07-07")
    kw = dict(out=out, ard=_ard(tiny), workers=1, device="cpu", block_days=1, progress=False)
    real_usage = _shutil.disk_usage
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(_shutil, "disk_usage", lambda p: Usage(10**9, 10**9 - 10**6, 10**6))
    with pytest.raises(InputError, match="GB free.*GB needed"):
        A.build_archive(*args, **kw)
    assert not (out / "build").exists() and not (out / "maps.zarr" / "smap_bilinear").exists()
    monkeypatch.setattr(_shutil, "disk_usage", real_usage)

    real_to_zarr = xr.Dataset.to_zarr

    def full(self, store, *a, **k):  # the series layout is written in this process
        if "series.zarr" in str(store):
            raise OSError(errno.ENOSPC, "No space left on device", str(store))
        return real_to_zarr(self, store, *a, **k)

    monkeypatch.setattr(xr.Dataset, "to_zarr", full)
    with pytest.raises(InputError, match="disk is full.*rerun the same command"):
        A.build_archive(*args, **kw)
    assert not A.open_archive("maps", out).attrs.get("complete_models", {}).get("smap_bilinear")
    monkeypatch.setattr(xr.Dataset, "to_zarr", real_to_zarr)
    res = A.build_archive(*args, **kw)
    assert res["complete"] == {"smap_bilinear": True} and res["blocks_todo"] == 0  # maps kept


# -------------------------------------------------------------------------- export
def test_export_netcdf_and_geotiff(tiny, tmp_path):
    from model.cli import main

    nc = tmp_path / "out.nc"
    assert main(["export", "--model", "pscnet", "--model", "rf", "--start", "2017-07-06", "--end", "2017-07-06",
                 "--bbox", "90", "30", "92", "32", "-o", str(nc)]) == 0
    ds = xr.open_dataset(nc)
    assert ds["pscnet"].attrs["units"] == "m3 m-3"
    assert ds["pscnet"].attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
    assert ds["lat"].attrs["standard_name"] == "latitude"
    assert ds.attrs["Conventions"].startswith("CF")
    assert float(ds.lat.min()) >= 30 and float(ds.lon.max()) <= 92
    assert ds.sizes["time"] == 8
    tif = tmp_path / "out.tif"
    assert main(["export", "--model", "pscnet", "--start", "2017-07-06", "--end", "2017-07-06",
                 "--format", "geotiff", "-o", str(tif)]) == 0
    import rasterio

    with rasterio.open(tif) as src:
        assert src.count == 8 and src.crs.to_epsg() == 4326
        band = src.read(1)
        assert band.shape == (150, 320)
    assert main(["export", "--model", "nope", "-o", str(tmp_path / "x.nc")]) == 2
    assert main(["export", "--model", "pscnet", "--bbox", "0", "0", "1", "1", "-o", str(tmp_path / "y.nc")]) == 2
    assert not (tmp_path / "y.nc").exists()


# ----------------------------------------------------------------------- validation
def test_validation_outputs(tiny):
    from model.validation import results

    st = results.settings()
    assert all(v == "ok" for v in st["status"].values()), st["status"]
    m = results.maps("smap")
    assert {"R", "bias", "ubRMSE", "N"} <= set(m.data_vars)
    assert "pscnet" in m.model.values and "smap_l4" in m.model.values
    t = results.maps("truth")
    assert t["R"].dims == ("model", "lat", "lon")
    stations = results.table("stations")
    assert {"rank_R", "rank_ubRMSE", "network", "N", "status"} <= set(stations.columns)
    nets = results.table("networks")
    assert {"mean_of_stations", "network_mean_series"} <= set(nets["form"]) <= {
        "mean_of_stations", "network_mean_series", "pooled"}
    # The main table: per network R, bias and ubRMSE, the same numbers as the network table.
    summary = results.table("summary").set_index("model")
    mos = nets[(nets["period"] == "test") & (nets["form"] == "mean_of_stations")]
    assert len(mos)
    for _, r in mos.iterrows():
        for k in ("R", "bias", "ubRMSE"):
            np.testing.assert_allclose(summary.loc[r["model"], f"{r['network']}_{k}"], r[k], equal_nan=True)
    temporal = results.table("temporal")
    assert {"rel_change_R", "rel_change_ubRMSE"} <= set(temporal.columns)
    ser = results.table("station_series")
    assert {"insitu", "pscnet", "precipitation_mm"} <= set(ser["source"])
    assert (tiny / "validation" / "report" / "index.md").exists()


def test_validate_unknown_model_is_a_clear_error(tiny):
    from model.cli import main

    assert main(["validate", "--model", "nope", "--out", "/tmp/never-written"]) == 2
    assert not Path("/tmp/never-written").exists()
