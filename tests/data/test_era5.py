"""ERA5 / ERA5-Land reader, de-accumulation, 3-hourly aggregation, writer and inspect.

Real files: ../shared/data/era5 (through the ``shared`` fixture). Files the tests write go
to tmp_path only (cfgrib is always called with indexpath='' by the reader).
"""

from __future__ import annotations

import warnings
import zipfile

import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from model.data import era5_grib, era5_write
from model.data.era5 import describe, latlon_grid, read_era5, regrid_to_tp10
from model.data.era5_grib import MultipleGridsError
from model.data.era5_time import TimeAxisError, deaccumulate, to_3hourly
from model.data.era5_write import reaccumulate, write_era5_netcdf
from model.errors import CoverageError, InputError, MissingVariableError, UnreadableFileError
from model.grids import TP_BBOX, tp10

pytestmark = pytest.mark.filterwarnings("ignore::FutureWarning")


# ----------------------------------------------------------------------------- helpers
def _tp10_box(ny=12, nx=16, y0=60, x0=150):
    g = tp10()
    return g.lat[y0:y0 + ny], g.lon[x0:x0 + nx]


def _hourly_dataset(start="2019-07-01 01:00", hours=72, ny=12, nx=16, seed=0):
    """A small ERA5-Land-like hourly dataset as read_era5 returns it (per-step amounts)."""
    rng = np.random.default_rng(seed)
    lat, lon = _tp10_box(ny, nx)
    t = pd.date_range(start, periods=hours, freq="h")
    hod = t.hour.values[:, None, None]
    yy, xx = np.meshgrid(np.linspace(0, 1, ny), np.linspace(0, 1, nx), indexing="ij")
    smooth = np.sin(2 * xx + yy)[None]
    diurnal = np.sin(2 * np.pi * (hod - 6) / 24)
    v = {
        "swvl1": 0.25 + 0.05 * smooth + 0.001 * np.cumsum(np.ones(hours))[:, None, None] / hours,
        "t2m": 275 + 5 * smooth + 6 * diurnal,
        "tp": np.where(rng.random((hours, ny, nx)) < 0.3, rng.gamma(0.6, 8e-4, (hours, ny, nx)), 0.0),
        "e": -8e-5 * np.clip(diurnal, 0, None) * (1 + 0.2 * smooth) + 2e-6,
        "ssrd": 2.5e6 * np.clip(diurnal, 0, None) * (1 + 0.1 * smooth),
    }
    out = {}
    for k, a in v.items():
        a = np.broadcast_to(a, (hours, ny, nx)).astype(np.float32).copy()
        a[:, 0, 0] = np.nan  # a masked (outside the TP) cell
        attrs = {"units": era5_grib.PARAMS[k].cf_units}
        if k in era5_grib.ACCUMULATED:
            attrs["cell_methods"] = "time: sum"
        out[k] = xr.DataArray(a, dims=("time", "lat", "lon"), coords={"time": t, "lat": lat, "lon": lon}, attrs=attrs)
    return xr.Dataset(out, attrs={"product": "ERA5-Land"})


def _accumulate_from_00(amounts: np.ndarray, times: pd.DatetimeIndex) -> np.ndarray:
    """Independent reference: ERA5-Land accumulation (value at 00 UTC = previous day's sum)."""
    acc = np.empty_like(amounts, dtype=np.float64)
    run = np.zeros(amounts.shape[1:])
    for i, t in enumerate(times):
        if i > 0 and times[i - 1].hour == 0:
            run = np.zeros(amounts.shape[1:])
        run = run + amounts[i]
        acc[i] = run
    return acc


def _write_cds_like_new(path, times, lat_desc, lon, fields: dict):
    """A new-layout CDS file written with xarray (independent of write_era5_netcdf)."""
    data = {k: (("valid_time", "latitude", "longitude"), v.astype(np.float32),
                {"units": era5_grib.PARAMS[k].units, "long_name": era5_grib.PARAMS[k].long_name, "standard_name": "unknown",
                 "GRIB_paramId": era5_grib.PARAMS[k].param_id,
                 "GRIB_stepType": "accum" if k in era5_grib.ACCUMULATED else "instant"})
            for k, v in fields.items()}
    ds = xr.Dataset(data, coords={"valid_time": times, "latitude": lat_desc, "longitude": lon,
                                  "number": 0, "expver": ("valid_time", np.array(["0001"] * len(times), dtype=object))})
    ds.attrs = {"GRIB_centre": "ecmf", "Conventions": "CF-1.7"}
    ds.to_netcdf(path, engine="netcdf4")
    return path


# ----------------------------------------------------------------------------- real files
def test_old_cds_netcdf(shared):
    path = shared / "era5" / "era5_example_downloaded_raw.nc"
    ds = read_era5(path)
    assert tuple(ds["swvl1"].dims) == ("time", "lat", "lon")
    assert ds.sizes == {"time": 4, "lat": 37, "lon": 72}
    assert np.all(np.diff(ds["lat"].values) > 0) and np.all(np.diff(ds["lon"].values) > 0)
    assert ds["lon"].min() == -180 and ds["lon"].max() == 175
    assert ds["swvl1"].dtype == np.float32
    assert ds["swvl1"].attrs["units"] == "m3 m-3"
    assert ds["swvl1"].attrs["standard_name"] == "volume_fraction_of_condensed_water_in_soil"
    assert ds["lsm"].attrs["standard_name"] == "land_binary_mask"
    assert ds.attrs["product"] == "ERA5" and ds.attrs["time_step"] == "6h"
    # same numbers as a plain decode, after the flip and the longitude wrap
    raw = xr.open_dataset(path)
    for la, lo in [(50.0, 10.0), (-30.0, 140.0), (45.0, 260.0), (60.0, 355.0)]:
        want = raw["swvl1"].sel(latitude=la, longitude=lo).values
        got = ds["swvl1"].sel(lat=la, lon=((lo + 180) % 360) - 180).values
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
    raw.close()


def test_grib_mixed_levels_and_names(shared):
    ds = read_era5(shared / "era5" / "soil-surface-level-mix.grib")
    assert {"swvl1", "swvl2", "swvl3", "swvl4", "stl1", "stl2", "stl3", "stl4", "slt", "t2m"} <= set(ds.data_vars)
    assert ds.sizes["time"] == 1 and ds["time"].values[0] == np.datetime64("2022-01-01T00:00")
    assert ds.attrs["product"] == "ERA5"
    assert ds.attrs["product_detection"] == "GRIB marsClass"
    assert ds["t2m"].attrs["standard_name"] == "air_temperature"
    assert ds["t2m"].attrs["GRIB_paramId"] == 167
    assert np.all(np.diff(ds["lat"].values) > 0)
    raw = xr.open_dataset(shared / "era5" / "soil-surface-level-mix.grib", engine="cfgrib",
                          backend_kwargs={"indexpath": "", "filter_by_keys": {"typeOfLevel": "surface"}})
    np.testing.assert_array_equal(ds["t2m"].isel(time=0).values, raw["t2m"].values[::-1])
    raw.close()
    sub = read_era5(shared / "era5" / "soil-surface-level-mix.grib", variables=["volumetric_soil_water_layer_1", "2t"])
    assert list(sub.data_vars) == ["swvl1", "t2m"]


def test_grib_needs_filter_by_keys(shared):
    path = shared / "era5" / "tp_on_different_grid_resolutions.grib"
    with pytest.raises(MultipleGridsError, match="numberOfPoints") as info:
        read_era5(path)
    assert str(path) in str(info.value)
    ds = read_era5(path, filter_by_keys={"numberOfPoints": 4140})
    assert ds.sizes == {"time": 1, "lat": 46, "lon": 90}
    assert ds["time"].values[0] == np.datetime64("2017-10-18T00:00")  # 2017-10-17 12 UTC + 12 h
    assert ds["tp"].attrs["units"] == "m"


def test_real_hourly_grib_to_3hourly(shared):
    path = shared / "era5" / "era5-2mt-2019-03-uk.grib"
    ds = read_era5(path)
    assert ds.sizes == {"time": 744, "lat": 33, "lon": 49}
    assert ds.attrs["time_step"] == "1h" and ds.attrs["product"] == "ERA5"
    out = to_3hourly(ds)
    assert out.sizes["time"] == 31 * 8 + 1
    assert pd.Timestamp(out["time"].values[0]) == pd.Timestamp("2019-03-01 00:00")
    assert pd.Timestamp(out["time"].values[-1]) == pd.Timestamp("2019-04-01 00:00")
    assert set(pd.DatetimeIndex(out["time"].values).hour) == {0, 3, 6, 9, 12, 15, 18, 21}
    # incomplete edge bins are NaN, not partial means
    assert out["t2m"].isel(time=0).isnull().all() and out["t2m"].isel(time=-1).isnull().all()
    assert out["t2m"].isel(time=slice(1, -1)).notnull().all()
    # hand-computed means from an independent cfgrib decode (latitude descending there)
    raw = xr.open_dataset(path, engine="cfgrib", backend_kwargs={"indexpath": ""})
    t2m = raw["t2m"].values
    times = pd.DatetimeIndex(raw["time"].values)
    lat_raw = raw["latitude"].values
    for end, la, lo in [("2019-03-01 03:00", 58.0, -10.0), ("2019-03-15 12:00", 52.5, -1.25),
                        ("2019-03-31 21:00", 50.0, 2.0), ("2019-03-10 00:00", 55.0, -4.0)]:
        e = pd.Timestamp(end)
        i = times.get_loc(e)
        r = int(np.nonzero(lat_raw == la)[0][0])
        c = int(np.nonzero(raw["longitude"].values == lo)[0][0])
        want = (float(t2m[i - 2, r, c]) + float(t2m[i - 1, r, c]) + float(t2m[i, r, c])) / 3
        got = float(out["t2m"].sel(time=e, lat=la, lon=lo))
        assert got == pytest.approx(want, abs=1e-4)
    raw.close()
    assert out["t2m"].attrs["cell_methods"] == "time: mean"
    assert out["t2m"].attrs["units"] == "K"


def test_describe_real_files(shared):
    d = describe(shared / "era5" / "era5_example_downloaded_raw.nc")
    assert d["product"] == "ERA5"
    assert d["variables"] == {"swvl1": "m3 m-3", "lsm": "1"}
    assert d["time_start"] == "2010-01-01T00:00:00" and d["time_end"] == "2010-01-01T18:00:00"
    assert d["grid"]["shape"] == [37, 72] and d["grid"]["resolution"] == [5.0, 5.0]
    assert d["grid"]["bbox"] == [-182.5, -90.0, 177.5, 90.0]
    sm = d["soil_moisture"]
    # land cells only (lsm >= 0.5): the sea carries packing noise such as -7e-7 m3 m-3
    with xr.open_dataset(shared / "era5" / "era5_example_downloaded_raw.nc") as f:
        raw = f["swvl1"].values
        land = f["lsm"].values >= 0.5
    raw = np.where(land, raw, np.nan)
    assert 0 < sm["valid_count"] == int(np.isfinite(raw).sum()) < raw.size
    assert sm["mean"] == pytest.approx(float(np.nanmean(raw)), rel=1e-5)
    assert sm["min"] == pytest.approx(float(np.nanmin(raw)), rel=1e-5)
    assert sm["max"] == pytest.approx(float(np.nanmax(raw)), rel=1e-5)
    g = describe(shared / "era5" / "era5-2mt-2019-03-uk.grib")
    assert g["product"] == "ERA5" and g["variables"] == {"t2m": "K"}
    assert g["time_start"] == "2019-03-01T00:00:00" and g["time_end"] == "2019-03-31T23:00:00"
    assert g["soil_moisture"] is None
    assert g["grid"]["shape"] == [33, 49] and g["grid"]["resolution"] == [0.25, 0.25]


def test_bbox_crop_and_coverage(shared):
    ds = read_era5(shared / "era5" / "salem_era_interim_tibet_t2m_20120601_6h.nc", bbox=TP_BBOX)
    lat, lon = ds["lat"].values, ds["lon"].values
    # every cell overlapping the TP box, and no other
    assert lat[0] - 0.375 < 25 < lat[0] + 0.375 and lat[-1] - 0.375 < 40 < lat[-1] + 0.375
    assert lon[0] - 0.375 < 73 < lon[0] + 0.375 and lon[-1] - 0.375 < 105 <= lon[-1] + 0.375
    with pytest.raises(CoverageError) as info:
        read_era5(shared / "era5" / "era5-2mt-2019-03-uk.grib", bbox=TP_BBOX)
    msg = str(info.value)
    assert "era5-2mt-2019-03-uk.grib" in msg and "lon -10.125..2.125" in msg and "lat 49.875..58.125" in msg


# ----------------------------------------------------------------------------- bad input
def test_truncated_and_corrupt_files(shared, tmp_path):
    nc = tmp_path / "trunc.nc"
    nc.write_bytes((shared / "era5" / "era5_example_downloaded_raw.nc").read_bytes()[:30000])
    with pytest.raises(UnreadableFileError, match="trunc.nc"):
        read_era5(nc)
    gr = tmp_path / "trunc.grib"
    gr.write_bytes((shared / "era5" / "era5-2mt-2019-03-uk.grib").read_bytes()[:1_000_000])
    with pytest.raises(UnreadableFileError, match="trunc.grib"):
        read_era5(gr)
    # NetCDF4/HDF5 truncated
    full = write_era5_netcdf(tmp_path / "full.nc", _hourly_dataset(hours=24))
    nc4 = tmp_path / "trunc4.nc"
    nc4.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(UnreadableFileError, match="trunc4.nc"):
        read_era5(nc4)
    junk = tmp_path / "junk.nc"
    junk.write_bytes(b"<html>not found</html>")
    with pytest.raises(UnreadableFileError, match="junk.nc"):
        read_era5(junk)
    empty = tmp_path / "empty.grib"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableFileError, match="empty"):
        read_era5(empty)
    assert not list(shared.glob("era5/*.idx"))


def test_missing_variable(shared):
    with pytest.raises(MissingVariableError) as info:
        read_era5(shared / "era5" / "era5_example_downloaded_raw.nc", variables=["swvl1", "tp"])
    msg = str(info.value)
    assert "tp" in msg and "swvl1" in msg and "era5_example_downloaded_raw.nc" in msg


def test_bad_time_axes(tmp_path):
    lat = np.array([30.2, 30.1, 30.0])
    lon = np.array([90.0, 90.1])
    t = pd.date_range("2019-07-01 01:00", periods=6, freq="h")
    f = np.ones((6, 3, 2))
    shuffled = _write_cds_like_new(tmp_path / "shuffled.nc", t[[0, 2, 1, 3, 4, 5]], lat, lon, {"t2m": f})
    with pytest.raises(TimeAxisError, match="not increasing") as info:
        read_era5(shuffled)
    assert "shuffled.nc" in str(info.value) and "sort" in str(info.value)
    dup = _write_cds_like_new(tmp_path / "dup.nc", t[[0, 1, 2, 2, 3, 4]], lat, lon, {"t2m": f})
    with pytest.raises(TimeAxisError, match="duplicated time 2019-07-01 03:00"):
        read_era5(dup)
    a = _write_cds_like_new(tmp_path / "a.nc", t[:4], lat, lon, {"t2m": f[:4]})
    b = _write_cds_like_new(tmp_path / "b.nc", t[3:], lat, lon, {"t2m": f[3:]})
    with pytest.raises(TimeAxisError, match="also in") as info:
        read_era5([b, a])
    assert "b.nc" in str(info.value) and "a.nc" in str(info.value)
    assert issubclass(TimeAxisError, InputError)


# ----------------------------------------------------------------------------- accumulations
def test_deaccumulation_daily_sum_equals_next_00utc(tmp_path):
    rng = np.random.default_rng(3)
    t = pd.date_range("2019-07-01 01:00", "2019-07-04 00:00", freq="h")
    lat = np.round(np.arange(30.5, 30.0 - 1e-9, -0.1), 1)  # 0.1 deg, descending as the CDS writes it
    lon = np.round(np.arange(90.0, 90.35, 0.1), 1)
    amounts = np.where(rng.random((t.size, lat.size, lon.size)) < 0.4,
                       rng.gamma(0.5, 1e-3, (t.size, lat.size, lon.size)), 0.0)
    acc = _accumulate_from_00(amounts, t)
    path = _write_cds_like_new(tmp_path / "acc.nc", t, lat, lon, {"tp": acc, "ssrd": acc * 1e9})
    ds = read_era5(path)
    assert ds.attrs["product"] == "ERA5-Land" and "0.1 deg" in ds.attrs["product_detection"]
    assert ds["tp"].attrs["cell_methods"] == "time: sum"
    assert ds["tp"].attrs["accumulation"] == "de-accumulated, per native step"
    for day in ("2019-07-01", "2019-07-02", "2019-07-03"):
        d0 = pd.Timestamp(day)
        day_sum = ds["tp"].sel(time=slice(d0 + pd.Timedelta("1h"), d0 + pd.Timedelta("24h"))).sum("time")
        next00 = acc[t.get_loc(d0 + pd.Timedelta("24h"))][::-1]
        np.testing.assert_allclose(day_sum.values, next00, rtol=1e-5, atol=1e-8)
    np.testing.assert_allclose(ds["tp"].values, amounts[:, ::-1], atol=2e-7)
    assert (ds["tp"].values >= 0).all()
    # the same raw values read as ERA5 (not Land) are left as delivered (with a product hint)
    as_era5 = read_era5(path, product="era5")
    np.testing.assert_allclose(as_era5["tp"].values, acc[:, ::-1].astype(np.float32))


def test_deaccumulation_edges_and_sign():
    t = pd.date_range("2019-07-01 05:00", periods=30, freq="h")  # starts mid-day
    amounts = np.linspace(-2e-5, 1e-5, t.size)[:, None, None] * np.ones((1, 2, 2))
    acc = np.empty_like(amounts)
    start = t[0].normalize()
    acc[:] = np.nan
    # accumulation from 00 UTC including the unseen hours 01..04 (constant 1e-5 each)
    run = 4e-5 * np.ones((2, 2))
    for i, ti in enumerate(t):
        if i > 0 and t[i - 1].hour == 0:
            run = np.zeros((2, 2))
        run = run + amounts[i]
        acc[i] = run
    ds = xr.Dataset({"e": (("time", "lat", "lon"), acc.astype(np.float32))},
                    coords={"time": t, "lat": [30.0, 30.1], "lon": [90.0, 90.1]})
    out = deaccumulate(ds, "ERA5-Land")
    assert np.isnan(out["e"].values[0]).all()  # needs the 04 UTC value
    np.testing.assert_allclose(out["e"].values[1:], amounts[1:], atol=1e-9)
    assert (out["e"].values[1:] < 0).any()  # ECMWF sign kept: negative = evaporation
    assert start.hour == 0


def test_misdetected_product_warns():
    t = pd.date_range("2019-07-01 01:00", periods=48, freq="h")
    per_hour = np.abs(np.sin(np.arange(t.size)))[:, None, None] * np.ones((1, 2, 2)) * 1e-3
    ds = xr.Dataset({"tp": (("time", "lat", "lon"), per_hour.astype(np.float32))},
                    coords={"time": t, "lat": [30.0, 30.1], "lon": [90.0, 90.1]})
    with pytest.warns(UserWarning, match="product='era5'"):
        deaccumulate(ds, "ERA5-Land")


def test_grib_forecast_steps_land(tmp_path):
    """An ERA5-Land-style GRIB (marsClass l5, tp accumulated with step 1..24 h from 00 UTC)."""
    eccodes = pytest.importorskip("eccodes")
    path = tmp_path / "land.grib"
    rng = np.random.default_rng(1)
    amounts = rng.random((48, 3, 4)) * 1e-3
    with open(path, "wb") as out:
        for d, day in enumerate((20190301, 20190302)):
            for h in range(1, 25):
                gid = eccodes.codes_grib_new_from_samples("regular_ll_sfc_grib1")
                for k, v in [("setLocalDefinition", 1), ("localDefinitionNumber", 1), ("marsClass", "l5"),
                             ("Ni", 4), ("Nj", 3), ("latitudeOfFirstGridPointInDegrees", 30.2),
                             ("latitudeOfLastGridPointInDegrees", 30.0), ("longitudeOfFirstGridPointInDegrees", 90.0),
                             ("longitudeOfLastGridPointInDegrees", 90.3), ("iDirectionIncrementInDegrees", 0.1),
                             ("jDirectionIncrementInDegrees", 0.1), ("paramId", 228), ("dataDate", day),
                             ("dataTime", 0), ("stepType", "accum"), ("startStep", 0), ("endStep", h)]:
                    eccodes.codes_set(gid, k, v)
                eccodes.codes_set_values(gid, amounts[d * 24:d * 24 + h].sum(0).ravel())
                eccodes.codes_write(gid, out)
                eccodes.codes_release(gid)
    ds = read_era5(path)
    assert ds.attrs["product"] == "ERA5-Land" and ds.attrs["product_detection"] == "GRIB marsClass"
    t = pd.DatetimeIndex(ds["time"].values)
    assert t[0] == pd.Timestamp("2019-03-01 01:00") and t[-1] == pd.Timestamp("2019-03-03 00:00") and t.size == 48
    np.testing.assert_allclose(ds["tp"].values, amounts[:, ::-1], atol=1e-6)  # GRIB packing precision
    assert not list(tmp_path.glob("*.idx"))


def test_to_3hourly_fluxes_and_states():
    ds = _hourly_dataset(start="2019-07-01 01:00", hours=48)
    out = to_3hourly(ds)
    t = pd.DatetimeIndex(out["time"].values)
    assert t[0] == pd.Timestamp("2019-07-01 03:00") and t[-1] == pd.Timestamp("2019-07-03 00:00")
    end = pd.Timestamp("2019-07-01 12:00")
    win = ds.sel(time=slice(end - pd.Timedelta("2h"), end))
    np.testing.assert_allclose(out["tp"].sel(time=end).values, win["tp"].sum("time", skipna=False).values, rtol=1e-6)
    np.testing.assert_allclose(out["t2m"].sel(time=end).values, win["t2m"].mean("time", skipna=False).values, rtol=1e-6)
    assert out["tp"].attrs["cell_methods"] == "time: sum" and out["t2m"].attrs["cell_methods"] == "time: mean"
    # the totals are kept over complete bins
    np.testing.assert_allclose(out["tp"].sum("time").values[1:, 1:], ds["tp"].sum("time").values[1:, 1:], rtol=1e-5)
    # a start at 02 UTC leaves the first bin (00, 03] incomplete: NaN
    part = to_3hourly(ds.sel(time=slice("2019-07-01 02:00", None)))
    assert part["tp"].isel(time=0).isnull().all() and part["t2m"].isel(time=0).isnull().all()
    # a gap makes its bin NaN
    gap = to_3hourly(ds.drop_sel(time=[pd.Timestamp("2019-07-01 13:00")]))
    assert gap["t2m"].sel(time="2019-07-01 15:00").isnull().all()
    assert gap["t2m"].sel(time="2019-07-01 18:00").notnull().any()
    # already 3-hourly: unchanged
    again = to_3hourly(out.isel(time=slice(0, 8)))
    xr.testing.assert_allclose(again["t2m"], out["t2m"].isel(time=slice(0, 8)))
    with pytest.raises(InputError, match="does not divide"):
        to_3hourly(ds.isel(time=slice(None, None, 2)))


# ----------------------------------------------------------------------------- writer
@pytest.mark.parametrize("layout", ["new", "old"])
def test_writer_round_trip(tmp_path, layout):
    ds = _hourly_dataset(start="2019-07-01 01:00", hours=72)
    path = write_era5_netcdf(tmp_path / f"era5_{layout}.nc", ds, layout=layout, complevel=1)
    assert path.exists() and not list(tmp_path.glob(".*tmp*"))
    with netCDF4.Dataset(path) as nc:
        tname = "valid_time" if layout == "new" else "time"
        assert nc[tname].dimensions == (tname,)
        assert list(nc["tp"].dimensions) == [tname, "latitude", "longitude"]
        assert nc["latitude"][0] > nc["latitude"][-1]
        nc.set_auto_maskandscale(False)
        tp_raw = nc["tp"][:]
        if layout == "new":
            assert nc["tp"].GRIB_paramId == 228 and nc["tp"].GRIB_stepType == "accum"
            assert nc["t2m"].GRIB_shortName == "2t" and nc["swvl1"].GRIB_paramId == 39
            assert nc["valid_time"].units == "seconds since 1970-01-01"
            assert "expver" in nc.variables and "number" in nc.variables
            assert nc["tp"].filters()["zlib"] and nc["tp"].filters()["shuffle"]
            tp_acc = tp_raw
        else:
            assert nc["tp"].dtype == np.int16 and nc["time"].units.startswith("hours since 1900-01-01")
            assert nc.dimensions["time"].isunlimited()
            tp_acc = np.where(tp_raw == -32767, np.nan, tp_raw * nc["tp"].scale_factor + nc["tp"].add_offset)
    # re-accumulated from 00 UTC as the CDS delivers it: the 00 UTC value is the previous day's total
    t = pd.DatetimeIndex(ds["time"].values)
    i00 = t.get_loc(pd.Timestamp("2019-07-02 00:00"))
    day_total = ds["tp"].values[:i00 + 1].sum(0)[::-1]
    np.testing.assert_allclose(tp_acc[i00], day_total, atol=2e-6)
    np.testing.assert_allclose(tp_acc[i00 + 1], ds["tp"].values[i00 + 1][::-1], atol=2e-6)
    back = read_era5(path)
    assert back.attrs["product"] == "ERA5-Land"
    assert back.sizes == ds.sizes
    np.testing.assert_allclose(back["lat"].values, ds["lat"].values)
    if layout == "new":  # least_significant_digit: states within 10**-d, amounts within 2 x that
        tol = {"swvl1": 1e-4, "t2m": 1e-2, "tp": 2e-6, "e": 2e-7, "ssrd": 4.0}
    else:  # int16 packing: states within scale/2, de-accumulated amounts within one scale step
        with netCDF4.Dataset(path) as nc:
            tol = {k: 1.01 * float(nc[k].scale_factor) + 1e-7 * float(np.nanmax(np.abs(ds[k].values)))
                   for k in ("swvl1", "t2m", "tp", "e", "ssrd")}
    for k, atol in tol.items():
        a, b = ds[k].values, back[k].values
        assert np.array_equal(np.isnan(a), np.isnan(b)), k
        np.testing.assert_allclose(b, a, atol=atol, err_msg=k)
        assert back[k].attrs["units"] == ds[k].attrs["units"]
    assert back["tp"].attrs["cell_methods"] == "time: sum"


def test_writer_incomplete_first_day_and_layout_errors(tmp_path):
    ds = _hourly_dataset(start="2019-07-01 05:00", hours=30)
    path = write_era5_netcdf(tmp_path / "late.nc", ds, layout="new")
    with netCDF4.Dataset(path) as nc:
        tp = nc["tp"][:].filled(np.nan)
    assert np.isnan(tp[:20]).all()  # 05..00 UTC: the window lacks 01..04 UTC, never written partially
    assert np.isfinite(tp[20:, 1:, 1:]).all()
    back = read_era5(path)
    np.testing.assert_allclose(back["tp"].values[21:, 1:, 1:], ds["tp"].values[21:, 1:, 1:], atol=2e-6)
    with pytest.raises(InputError, match="layout"):
        write_era5_netcdf(tmp_path / "x.nc", ds, layout="legacy")
    mm = ds.assign(tp=(ds["tp"] * 1000).assign_attrs(units="mm"))
    with pytest.raises(InputError, match="convert tp to m"):
        write_era5_netcdf(tmp_path / "x.nc", mm)
    assert not (tmp_path / "x.nc").exists()


def test_monthly_files_concatenate_and_zip(tmp_path):
    ds = _hourly_dataset(start="2019-07-30 01:00", hours=24 * 4)
    t = pd.DatetimeIndex(ds["time"].values)
    july = ds.sel(time=t < pd.Timestamp("2019-08-01 00:00"))
    aug = ds.sel(time=t >= pd.Timestamp("2019-08-01 00:00"))
    f1, f2 = era5_write.write_era5_monthly(tmp_path, ds, prefix="era5-land")
    assert (f1.name, f2.name) == ("era5-land_2019-07.nc", "era5-land_2019-08.nc")
    with netCDF4.Dataset(f2) as nc:  # the CDS monthly convention: 00 UTC of day 1 .. 23 UTC
        t2 = pd.to_datetime(nc["valid_time"][:], unit="s")
        assert t2[0] == pd.Timestamp("2019-08-01 00:00") and t2[-1] == aug["time"].values[-1]
        # day 1 00 UTC carries the whole of 31 July, computed from the data before the period
        np.testing.assert_allclose(nc["tp"][0].filled(np.nan)[::-1],
                                   july["tp"].sel(time=slice("2019-07-31 01:00", None)).sum("time").values
                                   + aug["tp"].values[0], atol=2e-6)
    both = read_era5(str(tmp_path / "era5-land_2019-*.nc"))
    assert both.sizes["time"] == ds.sizes["time"]
    # August's first step (00 UTC, the whole of 31 July) is de-accumulated across the file boundary
    np.testing.assert_allclose(both["tp"].values, ds["tp"].values, atol=2e-6)
    assert read_era5([f2, f1]).sizes["time"] == ds.sizes["time"]
    # a CDS zip: one file per stepType, merged on time
    acc = write_era5_netcdf(tmp_path / "accum.nc", ds[["tp", "e", "ssrd"]])
    ins = write_era5_netcdf(tmp_path / "instant.nc", ds[["swvl1", "t2m"]])
    z = tmp_path / "download.zip"
    with zipfile.ZipFile(z, "w") as zf:
        zf.write(acc, "data_stream-oper_stepType-accum.nc")
        zf.write(ins, "data_stream-oper_stepType-instant.nc")
    fromzip = read_era5(z, variables=["swvl1", "tp"])
    assert list(fromzip.data_vars) == ["swvl1", "tp"]
    np.testing.assert_allclose(fromzip["tp"].values, ds["tp"].values, atol=2e-6)
    with pytest.raises(MissingVariableError, match="download.zip"):
        read_era5(z, variables=["stl1"])


def test_lazy_read_matches_eager(tmp_path):
    ds = _hourly_dataset(hours=48)
    f = write_era5_netcdf(tmp_path / "l.nc", ds, layout="old")
    lazy = read_era5(f, chunks={"time": 24})
    assert lazy["tp"].chunks is not None
    eager = read_era5(f)
    xr.testing.assert_allclose(lazy.load(), eager)


def test_old_layout_expver_dimension(tmp_path):
    """ERA5T months in the old layout: (time, expver, latitude, longitude), 1 = final, 5 = ERA5T."""
    t = pd.date_range("2024-06-30 22:00", periods=4, freq="h")
    lat = np.array([30.5, 30.25, 30.0])
    lon = np.array([90.0, 90.25])
    final = np.full((4, 3, 2), np.nan)
    final[:2] = 280.0
    nrt = np.full((4, 3, 2), np.nan)
    nrt[2:] = 290.0
    ds = xr.Dataset({"t2m": (("time", "expver", "latitude", "longitude"), np.stack([final, nrt], axis=1))},
                    coords={"time": t, "expver": [1, 5], "latitude": lat, "longitude": lon})
    ds.to_netcdf(tmp_path / "expver.nc")
    out = read_era5(tmp_path / "expver.nc")
    assert out["t2m"].dims == ("time", "lat", "lon")
    np.testing.assert_array_equal(out["t2m"].values[:, 0, 0], [280, 280, 290, 290])


# ----------------------------------------------------------------------------- regridding
def test_regrid_to_tp10_exact_and_area_mean(tmp_path):
    g = tp10()
    ds = _hourly_dataset(hours=3)
    exact = regrid_to_tp10(ds)
    assert exact["t2m"].shape == (3, 150, 320)
    sub = exact["t2m"].sel(lat=ds["lat"], lon=ds["lon"])
    np.testing.assert_array_equal(sub.values, ds["t2m"].values)
    assert np.isnan(exact["t2m"].values[:, 0, 0]).all()
    # the native ERA5-Land grid (centres on x.x0, 151 x 321 cells over the box): area means
    lat = np.round(np.arange(25.0, 40.0001, 0.1), 6)
    lon = np.round(np.arange(73.0, 105.0001, 0.1), 6)
    field = np.add.outer(lat, lon).astype(np.float64)  # linear: the 2 x 2 mean is exact
    native = xr.Dataset({"skt": (("lat", "lon"), field)}, coords={"lat": lat, "lon": lon})
    out = regrid_to_tp10(native)
    want = np.add.outer(g.lat, g.lon)
    np.testing.assert_allclose(out["skt"].values, want, atol=1e-3)
    # 0.25 deg ERA5: a constant field stays constant
    lat25 = np.arange(24.75, 40.26, 0.25)
    lon25 = np.arange(72.75, 105.26, 0.25)
    c = xr.DataArray(np.full((2, lat25.size, lon25.size), 3.5, np.float32), dims=("time", "lat", "lon"),
                     coords={"time": [0, 1], "lat": lat25, "lon": lon25})
    np.testing.assert_allclose(regrid_to_tp10(c).values, 3.5, rtol=1e-6)
    grid = latlon_grid(lat25, lon25)
    assert grid.lat_bounds[0] == pytest.approx(24.625) and grid.lon_bounds[-1] == pytest.approx(105.375)


def test_product_override_and_short_names():
    assert era5_grib.short_name("2m_temperature") == "t2m"
    assert era5_grib.short_name("Volumetric soil water layer 1") == "swvl1"
    assert era5_grib.short_name("var228") == "tp"
    assert era5_grib.short_name("snow_depth", "ERA5") == "sd" and era5_grib.short_name("snow_depth") == "sde"
    with pytest.raises(InputError, match="era5-land"):
        read_era5(__file__, product="merra")


def test_reaccumulate_inverts_deaccumulate():
    t = pd.date_range("2019-07-01 01:00", periods=50, freq="h")
    rng = np.random.default_rng(0)
    amounts = rng.random((50, 2, 3))
    acc = reaccumulate(amounts, t)
    np.testing.assert_allclose(acc, _accumulate_from_00(amounts, t))
    ds = xr.Dataset({"tp": (("time", "lat", "lon"), acc.astype(np.float32))},
                    coords={"time": t, "lat": [1.0, 2.0], "lon": [1.0, 2.0, 3.0]})
    np.testing.assert_allclose(deaccumulate(ds)["tp"].values, amounts, atol=2e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        deaccumulate(ds)
