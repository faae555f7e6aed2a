"""SMAP L2/L3/L4 readers and writers: the real L2 granule, round trips through the real
layouts, the quality policy, describe(), and every kind of bad input."""

from __future__ import annotations

import json
import shutil
import warnings

import h5py
import numpy as np
import pytest
import xarray as xr

from model.data import smap, smap_format, smap_write
from model.data.smap_format import EmptyDataWarning, QualityPolicy
from model.errors import (CoverageError, EmptyAfterPolicyError, InputError, MissingVariableError,
                          UnknownNameError, UnreadableFileError, WrongProductError)
from model.grids import ease2, ease2_grid, get_grid

L2_NAME = "SMAP_L2_SM_P_02801_A_20150811T013002_R18290_001.h5"
DAY = "2017-06-01"


@pytest.fixture
def l2(shared):
    return shared / "smap" / L2_NAME


def _overpass(product, rng, hour, gap=0.3):
    """One overpass on the TP subset: values, ms-precision times, flags."""
    ds = smap.overpass_template(product)
    shape = ds["soil_moisture"].shape
    sm = rng.uniform(0.03, 0.48, shape).astype(np.float32)
    missing = rng.random(shape) < gap
    sm[missing] = np.nan
    base = np.datetime64(f"{DAY}T00:00", "ns") + np.timedelta64(hour, "h")
    t = base + (rng.integers(-3_600_000, 3_600_000, shape) * 10**6).astype("timedelta64[ns]")
    unobserved = missing & (rng.random(shape) < 0.5)
    t[unobserved] = np.datetime64("NaT")
    ds["soil_moisture"][:] = sm
    ds["obs_time"][:] = t
    ds["retrieval_qual_flag"][:] = np.where(np.isfinite(sm), 0, np.where(unobserved, 65534, 15))
    ds["surface_flag"][:] = np.where(unobserved, 65534, 0)
    return ds


@pytest.fixture(scope="module")
def l3_files(tmp_path_factory):
    """Written SPL3SMP and SPL3SMP_E files with their input overpasses."""
    rng = np.random.default_rng(7)
    out = {}
    folder = tmp_path_factory.mktemp("l3")
    for product in ("SPL3SMP", "SPL3SMP_E"):
        am, pm = _overpass(product, rng, 0), _overpass(product, rng, 12)
        am["surface_temperature"] = (("y", "x"), rng.uniform(260, 300, am["soil_moisture"].shape).astype(np.float32))
        pm["surface_temperature"] = (("y", "x"), rng.uniform(260, 300, pm["soil_moisture"].shape).astype(np.float32))
        path = folder / smap_format.smap_filename(product, DAY)
        smap_write.write_smap_l3(path, product, DAY, am, pm, creation_date="2020-01-01")
        out[product] = (path, am, pm)
    return out


@pytest.fixture(scope="module")
def l4_file(tmp_path_factory):
    rng = np.random.default_rng(3)
    g = get_grid("M09")
    ds = xr.Dataset({
        "sm_surface": (g.dims, rng.uniform(0.05, 0.45, g.shape).astype(np.float32), {"units": "m3 m-3"}),
        "sm_rootzone": (g.dims, rng.uniform(0.05, 0.45, g.shape).astype(np.float32), {"units": "m3 m-3"}),
        "surface_temp": (g.dims, rng.uniform(250, 300, g.shape).astype(np.float32), {"units": "K"}),
    }, coords=g.coords())
    ds["sm_surface"][:5, :7] = np.nan
    t = np.datetime64(f"{DAY}T01:30", "ns")
    path = tmp_path_factory.mktemp("l4") / smap_format.smap_filename("SPL4SMGP", t)
    smap_write.write_smap_l4(path, t, ds, creation_date="2020-01-01")
    return path, t, ds


# --------------------------------------------------------------------------- policy


def test_policy_defaults_json_and_validation():
    p = QualityPolicy()
    assert p.recommended_only and p.valid_range == (0.02, 0.5)
    assert "radiometer_frozen_ground" in p.reject_surface_flags
    assert p.surface_mask == (1 << 5) | (1 << 6) | (1 << 7) | (1 << 8)
    assert QualityPolicy.from_dict(json.loads(p.to_json())) == p
    assert QualityPolicy.permissive().surface_mask == 0
    with pytest.raises(UnknownNameError, match="frozen"):
        QualityPolicy(reject_surface_flags=("frozen",))
    with pytest.raises(ValueError):
        QualityPolicy(valid_range=(0.5, 0.1))


# --------------------------------------------------------------------------- real L2


def test_read_l2_real_granule(l2):
    ds = smap.read_smap_l2(l2)
    assert ds.sizes["obs"] == 17251  # every swath cell kept, none dropped
    assert ds["soil_moisture"].dtype == np.float32 and ds["soil_moisture"].attrs["units"] == "m3 m-3"
    assert ds.attrs["product"] == "SPL2SMP" and ds.attrs["grid"] == "M36"
    # ascending half orbit over North America at ~01:30-02:24 UTC: the 6 pm overpass
    assert ds.attrs["overpass"] == "PM" and ds.attrs["direction"] == "A" and ds.attrs["orbit"] == 2801
    rep = json.loads(ds.attrs["policy_report"])
    assert rep["n_fill"] == 15918 and rep["n_retrieved"] == 1333
    assert rep["rejected"] == {"quality_flag": 741, "valid_range": 181, "surface_flag": 214}
    assert rep["n_valid"] == 589 == int(np.isfinite(ds["soil_moisture"]).sum())
    assert json.loads(ds.attrs["quality_policy"]) == QualityPolicy().to_dict()
    assert ds["row"].min() >= 0 and ds["row"].max() <= 405 and ds["col"].max() <= 963
    # the row/col indices agree with the file's cell-centre coordinates
    lat_c, lon_c = ease2.row_col_centres("M36")
    np.testing.assert_allclose(ds["lat"].values, lat_c[ds["row"].values], atol=1e-3)
    np.testing.assert_allclose(ds["lon"].values, lon_c[ds["col"].values], atol=1e-3)


def test_l2_quality_flag_bit0_evidence(l2):
    """Bit 0 SET = not recommended: all fill cells have it, recommended values are in range."""
    with h5py.File(l2, "r") as f:
        g = f["Soil_Moisture_Retrieval_Data"]
        sm, q = g["soil_moisture"][()], g["retrieval_qual_flag"][()]
    fill = sm == -9999
    assert np.all(q[fill] & 1)
    rec = ~fill & ((q & 1) == 0)
    assert rec.sum() == 592 and sm[rec].min() > 0.02 and sm[rec].max() < 0.5
    assert np.all(q[~fill & (sm > 0.5)] & 1)
    # the reader with only this rule keeps exactly the recommended values
    only_q = QualityPolicy(valid_range=None, reject_surface_flags=())
    ds = smap.read_smap_l2(l2, only_q)
    assert int(np.isfinite(ds["soil_moisture"]).sum()) == 592
    ds = smap.read_smap_l2(l2, QualityPolicy.permissive())
    assert int(np.isfinite(ds["soil_moisture"]).sum()) == 1333


def test_l2_times_agree_with_utc_strings(l2):
    ds = smap.read_smap_l2(l2)
    with h5py.File(l2, "r") as f:
        strings = f["Soil_Moisture_Retrieval_Data/tb_time_utc"][()]
    parsed = smap_format.parse_utc_strings(strings)
    exact = np.array([b"*" not in s for s in strings])
    assert (~exact).sum() == 10  # the granule really has '.***Z' milliseconds
    diff = np.abs((ds["obs_time"].values - parsed)[exact].astype(np.int64))
    assert diff.max() < 1_000_000  # < 1 ms: epoch 2000-01-01T12:00:00 UTC, no leap seconds
    # the J2000 epoch of the metadata (11:58:55.816) would be 64.184 s off
    assert ds["obs_time"].values.min() == np.datetime64("2015-08-11T01:31:19.556474", "us")
    assert not np.isnat(ds["obs_time"].values).any()


def test_l2_extra_fields(l2):
    ds = smap.read_smap_l2(l2, extra=("surface_temperature",))
    st = ds["surface_temperature"]
    assert st.attrs["units"] == "K"
    assert 250 < float(np.nanmedian(st)) < 320


def test_grid_l2(l2):
    ds = smap.read_smap_l2(l2)
    glob = smap.grid_l2(ds, ease2_grid("M36", None))
    assert glob["soil_moisture"].shape == (406, 964)
    assert int(np.isfinite(glob["soil_moisture"]).sum()) == 589
    assert glob.attrs["n_cells_in_grid"] == 17251
    k = int(np.flatnonzero(np.isfinite(ds["soil_moisture"].values))[0])
    r, c = int(ds["row"][k]), int(ds["col"][k])
    assert glob["soil_moisture"].values[r, c] == ds["soil_moisture"].values[k]
    assert glob["obs_time"].values[r, c] == ds["obs_time"].values[k]
    # this half orbit crosses North America, not the TP
    with pytest.raises(CoverageError, match=L2_NAME) as e:
        smap.grid_l2(ds, "M36")
    assert "retrievals lie in lat 37" in str(e.value)
    empty = smap.grid_l2(ds, "M36", allow_empty=True)
    assert empty.attrs["n_cells_in_grid"] == 0 and empty["soil_moisture"].shape == get_grid("M36").shape


def test_describe_real_l2(l2):
    d = smap.describe(l2)
    assert d["product"] == "SPL2SMP"
    assert d["variables"]["soil_moisture"] == "m3 m-3"
    assert d["time_start"].startswith("2015-08-11T01:31") and d["time_end"].startswith("2015-08-11T02:24")
    assert d["soil_moisture"]["valid_count"] == 589
    assert 0.06 < d["soil_moisture"]["min"] < d["soil_moisture"]["mean"] < d["soil_moisture"]["max"] < 0.5
    assert d["rejected"] == {"fill": 15918, "quality_flag": 741, "valid_range": 181, "surface_flag": 214,
                             "total_rejected": 744}
    assert d["grid"]["name"] == "M36" and d["cells_in_tp"] == 0
    lon_min, lat_min, lon_max, lat_max = d["grid"]["bbox"]
    assert -170 < lon_min < lon_max < -110 and 30 < lat_min < lat_max < 75
    json.dumps(d)  # serialisable for --json


# --------------------------------------------------------------------------- L3 round trips


@pytest.mark.parametrize("product,shape", [("SPL3SMP", (46, 87)), ("SPL3SMP_E", (180, 344))])
def test_l3_roundtrip(l3_files, product, shape):
    path, am, pm = l3_files[product]
    ds = smap.read_smap_l3(path, extra=("surface_temperature",))
    assert ds["soil_moisture"].dims == ("overpass", "y", "x")
    assert ds["soil_moisture"].shape == (2,) + shape and list(ds["overpass"].values) == ["AM", "PM"]
    assert ds["soil_moisture"].dtype == np.float32 and ds["obs_time"].dtype == "datetime64[ns]"
    assert ds["retrieval_qual_flag"].dtype == np.uint16 and ds["surface_flag"].dtype == np.uint16
    assert ds.attrs["product"] == product and ds.attrs["date"] == DAY
    assert ds.attrs["source_file"] == str(path) and ds.attrs["status"] == "ok"
    assert ds.attrs["coverage_fraction"] == 1.0
    g = get_grid("M36" if product == "SPL3SMP" else "M09")
    np.testing.assert_array_equal(ds["y"].values, np.arange(shape[0]) + g.row_offset)
    for ov, src in (("AM", am), ("PM", pm)):
        got = ds.sel(overpass=ov)
        np.testing.assert_array_equal(got["soil_moisture"].values, src["soil_moisture"].values)
        np.testing.assert_array_equal(got["obs_time"].values, src["obs_time"].values)
        np.testing.assert_array_equal(got["retrieval_qual_flag"].values, src["retrieval_qual_flag"].values)
        np.testing.assert_array_equal(got["surface_flag"].values, src["surface_flag"].values)
        np.testing.assert_array_equal(got["surface_temperature"].values, src["surface_temperature"].values)
    assert ds["surface_temperature"].attrs["units"] == "K"


def test_l3_global_read_and_template(l3_files):
    path, am, _ = l3_files["SPL3SMP"]
    ds = smap.read_smap_l3(path, bbox=None)
    assert ds["soil_moisture"].shape == (2, 406, 964)
    g = get_grid("M36")
    sub = ds["soil_moisture"].sel(overpass="AM").values[g.row_offset:g.row_offset + 46, g.col_offset:g.col_offset + 87]
    np.testing.assert_array_equal(sub, am["soil_moisture"].values)
    outside = np.ones((406, 964), bool)
    outside[g.row_offset:g.row_offset + 46, g.col_offset:g.col_offset + 87] = False
    assert np.isnan(ds["soil_moisture"].values[:, outside]).all()
    assert np.isnat(ds["obs_time"].values[:, outside]).all()
    assert (ds["retrieval_qual_flag"].values[:, outside] == 65534).all()


def test_l3_file_layout(l3_files):
    path, am, pm = l3_files["SPL3SMP_E"]
    with h5py.File(path, "r") as f:
        assert f["Metadata/DatasetIdentification"].attrs["shortName"] == "SPL3SMP_E"
        assert f["Metadata/DatasetIdentification"].attrs["SMAPShortName"] == "L3_SM_P_E"
        assert f["Metadata/Extent"].attrs["rangeBeginningDateTime"] == "2017-06-01T00:00:00.000Z"
        gam, gpm = f["Soil_Moisture_Retrieval_Data_AM"], f["Soil_Moisture_Retrieval_Data_PM"]
        for n in ("soil_moisture", "retrieval_qual_flag", "surface_flag", "tb_time_seconds", "tb_time_utc",
                  "latitude", "longitude", "EASE_row_index", "EASE_column_index", "surface_temperature"):
            assert gam[n].shape == (1624, 3856)
            assert gpm[f"{n}_pm"].shape == (1624, 3856)
        sm = gpm["soil_moisture_pm"]
        assert sm.attrs["units"] == "cm**3/cm**3" and sm.attrs["_FillValue"] == np.float32(-9999)
        assert sm.attrs["valid_min"] == np.float32(0.02) and sm.attrs["valid_max"] == np.float32(0.5)
        assert sm.fillvalue == -9999 and sm.compression == "gzip"
        assert gam["retrieval_qual_flag"].attrs["flag_masks"] == "1s, 2s, 4s, 8s"
        assert "Soil_moisture_retrieval_recommended" in gam["retrieval_qual_flag"].attrs["flag_meanings"]
        assert gam["EASE_row_index"].attrs["valid_max"] == 1623
        # only the chunks holding TP cells are stored: 2 x 2 of 8 x 16
        assert sm.id.get_num_chunks() == 4
        g = get_grid("M09")
        r, c = g.row_offset + 10, g.col_offset + 20
        assert gam["EASE_row_index"][r, c] == r and gam["EASE_column_index"][r, c] == c
        lat_c, lon_c = ease2.row_col_centres("M09")
        assert gam["latitude"][r, c] == np.float32(lat_c[r]) and gam["longitude"][r, c] == np.float32(lon_c[c])
        # tb_time_utc strings agree with tb_time_seconds (epoch 2000-01-01T12:00:00)
        sec = gam["tb_time_seconds"][g.row_offset:g.row_offset + 180, g.col_offset:g.col_offset + 344]
        utc = gam["tb_time_utc"][g.row_offset:g.row_offset + 180, g.col_offset:g.col_offset + 344]
    ok = sec != -9999
    assert ok.any() and (np.char.str_len(utc[~ok]) == 0).all()
    t = smap_format.parse_utc_strings(utc[ok])
    expect = np.datetime64("2000-01-01T12:00:00", "ns") + (sec[ok] * 1e9).round().astype("timedelta64[ns]")
    assert np.abs((t - expect).astype(np.int64)).max() < 1_000_000
    np.testing.assert_array_equal(t, am["obs_time"].values[ok])


def test_written_file_sizes(l3_files, l4_file):
    assert l3_files["SPL3SMP"][0].stat().st_size < 400_000
    assert l3_files["SPL3SMP_E"][0].stat().st_size < 4_000_000
    assert l4_file[0].stat().st_size < 2_000_000


def test_l3_policy_rules_and_counts(tmp_path, rng):
    am, pm = _overpass("SPL3SMP", rng, 0, gap=0.0), _overpass("SPL3SMP", rng, 12, gap=0.0)
    am["retrieval_qual_flag"][0, :10] = 1          # not recommended
    am["soil_moisture"][1, :5] = 0.6               # out of range
    am["soil_moisture"][1, 5:8] = 0.01             # out of range
    am["surface_flag"][2, :4] = 1 << 8             # model frozen ground
    am["surface_flag"][3, :6] = 1 << 9             # mountainous terrain: kept by default
    path = smap_write.write_smap_l3(tmp_path / smap_format.smap_filename("SPL3SMP", DAY), "SPL3SMP", DAY, am, pm)
    ds = smap.read_smap_l3(path)
    a = ds["soil_moisture"].sel(overpass="AM").values
    assert np.isnan(a[0, :10]).all() and np.isfinite(a[0, 10:]).all()
    assert np.isnan(a[1, :8]).all() and np.isnan(a[2, :4]).all() and np.isfinite(a[3, :6]).all()
    rep = json.loads(ds.attrs["policy_report"])
    assert rep["AM"]["rejected"] == {"quality_flag": 10, "valid_range": 8, "surface_flag": 4}
    assert rep["AM"]["n_valid"] == 46 * 87 - 22 and rep["PM"]["n_rejected"] == 0
    # the observation time of a rejected value is kept, its flags too
    assert not np.isnat(ds["obs_time"].sel(overpass="AM").values[0, :10]).any()
    assert (ds["retrieval_qual_flag"].sel(overpass="AM").values[0, :10] == 1).all()
    perm = smap.read_smap_l3(path, QualityPolicy.permissive())
    np.testing.assert_allclose(perm["soil_moisture"].sel(overpass="AM").values[1, :5], 0.6)
    assert json.loads(perm.attrs["quality_policy"])["recommended_only"] is False


def test_l3_default_flags_and_none_overpass(tmp_path, rng):
    am = _overpass("SPL3SMP", rng, 0).drop_vars(["retrieval_qual_flag", "surface_flag"])
    path = smap_write.write_smap_l3(tmp_path / "x.h5", "SPL3SMP", DAY, am, None)
    ds = smap.read_smap_l3(path)
    a = ds.sel(overpass="AM")
    has = np.isfinite(am["soil_moisture"].values)
    assert (a["retrieval_qual_flag"].values[has] == 0).all()
    np.testing.assert_array_equal(a["soil_moisture"].values, am["soil_moisture"].values)
    assert np.isnan(ds["soil_moisture"].sel(overpass="PM")).all()
    assert json.loads(ds.attrs["policy_report"])["PM"]["n_retrieved"] == 0


def test_l3_partial_block_with_coords(tmp_path, rng):
    """am/pm given as any block of the global grid (y/x = global indices)."""
    full = _overpass("SPL3SMP_E", rng, 0)
    block = full.isel(y=slice(20, 60), x=slice(100, 150))
    path = smap_write.write_smap_l3(tmp_path / "b.h5", "SPL3SMP_E", DAY, block, None)
    ds = smap.read_smap_l3(path).sel(overpass="AM")
    np.testing.assert_array_equal(ds["soil_moisture"].values[20:60, 100:150], block["soil_moisture"].values)
    assert np.isnan(ds["soil_moisture"].values[:20]).all()
    with pytest.raises(ValueError, match="overpass"):
        smap_write.write_smap_l3(tmp_path / "c.h5", "SPL3SMP", DAY, smap.read_smap_l3(path), None)
    with pytest.raises(UnknownNameError):
        smap_write.write_smap_l3(tmp_path / "c.h5", "SPL3SMP_X", DAY, full, None)


def test_writer_is_atomic(tmp_path, rng, monkeypatch):
    am = _overpass("SPL3SMP", rng, 0)
    target = tmp_path / "keep.h5"
    target.write_bytes(b"old")

    def boom(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(smap_write, "_format_utc", boom)
    with pytest.raises(RuntimeError):
        smap_write.write_smap_l3(target, "SPL3SMP", DAY, am, None)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.h5"]


def test_identify_without_metadata(l3_files, tmp_path):
    path = tmp_path / "nometa.h5"
    shutil.copy(l3_files["SPL3SMP_E"][0], path)
    with h5py.File(path, "a") as f:
        del f["Metadata"]
    assert smap_format.identify(path)[0] == "SPL3SMP_E"
    ds = smap.read_smap_l3(path)
    assert ds.attrs["product"] == "SPL3SMP_E" and ds.attrs["date"] == DAY  # date from the data


def test_legacy_single_group_layout(l3_files, tmp_path):
    path = tmp_path / "legacy.h5"
    shutil.copy(l3_files["SPL3SMP"][0], path)
    with h5py.File(path, "a") as f:
        f.move("Soil_Moisture_Retrieval_Data_AM", "Soil_Moisture_Retrieval_Data")
        del f["Soil_Moisture_Retrieval_Data_PM"]
    ds = smap.read_smap_l3(path)
    np.testing.assert_array_equal(ds["soil_moisture"].sel(overpass="AM").values,
                                  l3_files["SPL3SMP"][1]["soil_moisture"].values)
    assert np.isnan(ds["soil_moisture"].sel(overpass="PM")).all()
    assert "no PM group" in ds.attrs["notes"]
    assert json.loads(ds.attrs["policy_report"])["PM"]["n_retrieved"] == 0


def test_describe_written_l3_l4(l3_files, l4_file):
    path, am, pm = l3_files["SPL3SMP"]
    d = smap.describe(path)
    n = int(np.isfinite(am["soil_moisture"]).sum() + np.isfinite(pm["soil_moisture"]).sum())
    assert d["product"] == "SPL3SMP" and d["date"] == DAY
    assert d["soil_moisture"]["valid_count"] == n
    vals = np.concatenate([am["soil_moisture"].values.ravel(), pm["soil_moisture"].values.ravel()])
    assert d["soil_moisture"]["mean"] == pytest.approx(float(np.nanmean(vals)), abs=1e-4)
    assert d["grid"] == {"name": "M36", "shape": [46, 87], "bbox": d["grid"]["bbox"], "row_offset": 72,
                         "col_offset": 677, "file_shape": [406, 964]}
    times = np.concatenate([am["obs_time"].values.ravel(), pm["obs_time"].values.ravel()])
    assert d["time_start"] == str(np.nanmin(times).astype("datetime64[ms]")) + "Z"
    assert d["variables"]["soil_moisture"] == "m3 m-3" and d["status"] == "ok"
    assert set(d["rejected"]) == {"fill", "quality_flag", "valid_range", "surface_flag", "total_rejected"}
    json.dumps(d)
    p4, t, ds4 = l4_file
    d4 = smap.describe(p4)
    assert d4["product"] == "SPL4SMGP" and d4["time"] == "2017-06-01T01:30:00.000Z"
    assert d4["time_start"] == "2017-06-01T00:00:00.000Z" and d4["time_end"] == "2017-06-01T03:00:00.000Z"
    assert d4["soil_moisture"]["valid_count"] == 180 * 344 - 35
    assert d4["variables"] == {"sm_surface": "m3 m-3", "sm_rootzone": "m3 m-3", "surface_temp": "K"}
    json.dumps(d4)


# --------------------------------------------------------------------------- L4


def test_l4_roundtrip(l4_file):
    path, t, src = l4_file
    ds = smap.read_smap_l4(path)
    assert ds["sm_surface"].dims == ("time", "y", "x") and ds["sm_surface"].shape == (1, 180, 344)
    assert ds["time"].values[0] == t
    for n in ("sm_surface", "sm_rootzone", "surface_temp"):
        np.testing.assert_array_equal(ds[n].values[0], src[n].values)
    assert ds["sm_surface"].attrs["units"] == "m3 m-3" and ds["surface_temp"].attrs["units"] == "K"
    assert ds.attrs["time_window_start"] == "2017-06-01T00:00:00"
    with h5py.File(path, "r") as f:
        assert f["Metadata/DatasetIdentification"].attrs["shortName"] == "SPL4SMGP"
        assert f["time"].attrs["units"] == "seconds since 2000-01-01 11:58:55.816"
        # seconds since 11:58:55.816 UTC, no leap seconds
        expect = (t - np.datetime64("2000-01-01T11:58:55.816", "ns")).astype(np.int64) / 1e9
        assert f["time"][0] == pytest.approx(expect, abs=1e-6)
        lat_c, lon_c = ease2.row_col_centres("M09")
        assert f["cell_lat"].shape == (1624, 3856)
        np.testing.assert_array_equal(f["cell_lat"][:, 100], lat_c.astype(np.float32))
        np.testing.assert_array_equal(f["cell_lon"][1000], lon_c.astype(np.float32))
        assert f["Geophysical_Data/sm_surface"].id.get_num_chunks() == 4


def test_l4_time_must_be_window_centre(tmp_path, l4_file):
    _, _, src = l4_file
    with pytest.raises(ValueError, match="centres"):
        smap_write.write_smap_l4(tmp_path / "x.h5", "2017-06-01T03:00", src)
    with pytest.raises(ValueError, match="centres"):
        smap_format.smap_filename("SPL4SMGP", "2017-06-01")


# --------------------------------------------------------------------------- names and steps


def test_filenames():
    assert smap_format.smap_filename("SPL3SMP", "2017-06-01") == "SMAP_L3_SM_P_20170601_R18290_001.h5"
    assert smap_format.smap_filename("SPL3SMP_E", np.datetime64("2017-06-01")) == "SMAP_L3_SM_P_E_20170601_R18290_001.h5"
    assert smap_format.smap_filename("SPL4SMGP", "2017-06-01T01:30") == "SMAP_L4_SM_gph_20170601T013000_Vv7032_001.h5"
    info = smap_format.parse_smap_filename("SMAP_L3_SM_P_E_20170601_R18290_001.h5")
    assert info["product"] == "SPL3SMP_E" and info["time"] == np.datetime64("2017-06-01")
    info = smap_format.parse_smap_filename(L2_NAME)
    assert info["product"] == "SPL2SMP" and info["orbit"] == 2801 and info["direction"] == "A"
    assert smap_format.parse_smap_filename("SMAP_L4_SM_gph_20170601T013000_Vv7032_001.h5")["time"] == \
        np.datetime64("2017-06-01T01:30")
    assert smap_format.parse_smap_filename("other.h5") is None
    with pytest.raises(UnknownNameError):
        smap_format.smap_filename("SPL3SMA", "2017-06-01")


def test_overpass_step_vectorised():
    t = np.array(["2017-06-01T00:40", "2017-06-01T01:29:59", "2017-06-01T01:30", "2017-06-01T23:10",
                  "NaT", "2017-06-01T11:58"], dtype="datetime64[ns]")
    out = smap_format.overpass_step(t)
    expect = np.array(["2017-06-01T00:00", "2017-06-01T00:00", "2017-06-01T03:00", "2017-06-02T00:00",
                       "NaT", "2017-06-01T12:00"], dtype="datetime64[ns]")
    np.testing.assert_array_equal(out, expect)
    da = xr.DataArray(t.reshape(2, 3), dims=("y", "x"))
    res = smap_format.overpass_step(da)
    assert isinstance(res, xr.DataArray) and res.dims == ("y", "x")
    np.testing.assert_array_equal(res.values.ravel(), expect)
    assert smap_format.overpass_step(np.datetime64("2017-06-01T22:31")) == np.datetime64("2017-06-02T00:00")
    big = np.datetime64("2016-01-01", "ns") + np.arange(0, 10**6) * np.timedelta64(997, "s")
    steps = smap_format.overpass_step(big)
    assert (np.abs(steps - big) <= np.timedelta64(90, "m")).all()
    assert ((steps - steps.astype("datetime64[D]")) % np.timedelta64(3, "h") == np.timedelta64(0)).all()


# --------------------------------------------------------------------------- bad input


def test_truncated_file(l2, tmp_path):
    bad = tmp_path / L2_NAME
    shutil.copy(l2, bad)
    size = bad.stat().st_size
    with open(bad, "r+b") as fh:
        fh.truncate(size // 2)
    with pytest.raises(UnreadableFileError, match="truncated or corrupt") as e:
        smap.read_smap_l2(bad)
    assert str(bad) in str(e.value)
    with pytest.raises(UnreadableFileError):
        smap.describe(bad)


def test_truncated_written_l3(l3_files, tmp_path):
    bad = tmp_path / "trunc.h5"
    shutil.copy(l3_files["SPL3SMP_E"][0], bad)
    with open(bad, "r+b") as fh:
        fh.truncate(bad.stat().st_size - 5000)
    with pytest.raises(UnreadableFileError, match="download it again"):
        smap.read_smap_l3(bad)


def test_not_hdf5_and_missing(tmp_path):
    txt = tmp_path / "SMAP_L3_SM_P_20170601_R18290_001.h5"
    txt.write_text("<html>Earthdata login required</html>")
    with pytest.raises(UnreadableFileError, match="not an HDF5 file") as e:
        smap.read_smap_l3(txt)
    assert str(txt) in str(e.value)
    with pytest.raises(UnreadableFileError, match="does not exist"):
        smap.read_smap_l3(tmp_path / "nope.h5")
    empty = tmp_path / "empty.h5"
    empty.write_bytes(b"")
    with pytest.raises(UnreadableFileError, match="empty"):
        smap.read_smap_l4(empty)


def test_wrong_product(l2, l3_files, l4_file, tmp_path):
    with pytest.raises(WrongProductError, match="SPL2SMP") as e:
        smap.read_smap_l3(l2)
    assert L2_NAME in str(e.value) and "read_smap_l2" in str(e.value)
    with pytest.raises(WrongProductError, match="SPL4SMGP.*read_smap_l4"):
        smap.read_smap_l3(l4_file[0])
    with pytest.raises(WrongProductError, match="SPL3SMP_E.*read_smap_l3"):
        smap.read_smap_l4(l3_files["SPL3SMP_E"][0])
    with pytest.raises(WrongProductError, match="SPL3SMP"):
        smap.read_smap_l2(l3_files["SPL3SMP"][0])
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["Altitude"] = np.zeros((3, 3), np.uint8)
    with pytest.raises(WrongProductError, match="not a SMAP"):
        smap.read_smap_l3(other)
    with pytest.raises(WrongProductError):
        smap.describe(other)
    aup = tmp_path / "SMAP_L4_SM_aup_20170601T030000_Vv7032_001.h5"
    with h5py.File(aup, "w") as f:
        f.create_group("Metadata/DatasetIdentification").attrs["shortName"] = "SPL4SMAU"
        f.create_group("Analysis_Data")
    with pytest.raises(WrongProductError, match="SPL4SMAU.*reads SPL2SMP") as e:
        smap.read_smap_l4(aup)
    assert "read_smap_l4" not in str(e.value)
    assert issubclass(WrongProductError, InputError)


def test_inconsistent_metadata(l3_files, tmp_path):
    path = tmp_path / "lie.h5"
    shutil.copy(l3_files["SPL3SMP_E"][0], path)
    with h5py.File(path, "a") as f:
        f["Metadata/DatasetIdentification"].attrs["shortName"] = "SPL3SMP"
    with pytest.raises(UnreadableFileError, match="1624 x 3856"):
        smap.read_smap_l3(path)


def test_missing_dataset(l3_files, l4_file, tmp_path):
    path = tmp_path / "missing.h5"
    shutil.copy(l3_files["SPL3SMP"][0], path)
    with h5py.File(path, "a") as f:
        del f["Soil_Moisture_Retrieval_Data_PM/soil_moisture_pm"]
    with pytest.raises(MissingVariableError, match="Soil_Moisture_Retrieval_Data_PM/soil_moisture_pm") as e:
        smap.read_smap_l3(path)
    assert str(path) in str(e.value)
    p4 = tmp_path / "missing4.h5"
    shutil.copy(l4_file[0], p4)
    with h5py.File(p4, "a") as f:
        del f["time"]
    with pytest.raises(MissingVariableError, match="/time"):
        smap.read_smap_l4(p4)


def test_all_fill_file_reported_or_raised(tmp_path):
    path = smap_write.write_smap_l3(tmp_path / "fill.h5", "SPL3SMP", DAY, smap.overpass_template("SPL3SMP"), None)
    with pytest.warns(EmptyDataWarning, match="fill value"):
        ds = smap.read_smap_l3(path)
    assert ds.attrs["status"] == "all_fill" and np.isnan(ds["soil_moisture"]).all()
    with pytest.raises(EmptyAfterPolicyError, match="every cell holds the fill value") as e:
        smap.read_smap_l3(path, allow_empty=False)
    assert str(path) in str(e.value)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        d = smap.describe(path)  # described, not raised
    assert d["status"] == "all_fill" and d["soil_moisture"]["valid_count"] == 0


def test_emptied_by_policy(tmp_path, rng):
    am = _overpass("SPL3SMP", rng, 0)
    am["retrieval_qual_flag"][:] = 1
    path = smap_write.write_smap_l3(tmp_path / "bad.h5", "SPL3SMP", DAY, am, None)
    with pytest.warns(EmptyDataWarning, match="rejected all"):
        ds = smap.read_smap_l3(path)
    assert ds.attrs["status"] == "empty_after_policy"
    with pytest.raises(EmptyAfterPolicyError, match="relax the QualityPolicy"):
        smap.read_smap_l3(path, allow_empty=False)
    ok = smap.read_smap_l3(path, QualityPolicy(recommended_only=False), allow_empty=False)
    assert ok.attrs["status"] == "ok"


def test_l4_all_fill(tmp_path):
    g = get_grid("M09")
    ds = xr.Dataset({"sm_surface": (g.dims, np.full(g.shape, np.nan, np.float32))}, coords=g.coords())
    path = smap_write.write_smap_l4(tmp_path / "f.h5", "2017-06-01T22:30", ds)
    with pytest.warns(EmptyDataWarning):
        assert smap.read_smap_l4(path).attrs["status"] == "all_fill"
    with pytest.raises(EmptyAfterPolicyError):
        smap.read_smap_l4(path, allow_empty=False)


def _subset_copy(src, dst, rows, cols):
    """A spatial subset of an L3 file, as a subsetting service delivers it."""
    with h5py.File(src, "r") as fi, h5py.File(dst, "w") as fo:
        fi.copy("Metadata", fo)
        for grp in ("Soil_Moisture_Retrieval_Data_AM", "Soil_Moisture_Retrieval_Data_PM"):
            go = fo.create_group(grp)
            for name, d in fi[grp].items():
                o = go.create_dataset(name, data=d[rows, cols])
                for k, v in d.attrs.items():
                    o.attrs[k] = v


def test_subset_file_outside_tp(l3_files, tmp_path):
    src = l3_files["SPL3SMP"][0]
    # a block over North America whose EASE indices are filled (the writer fills observed cells)
    far = tmp_path / "far.h5"
    with h5py.File(src, "r") as fi, h5py.File(far, "w") as fo:
        fi.copy("Metadata", fo)
        for grp, sfx in (("Soil_Moisture_Retrieval_Data_AM", ""), ("Soil_Moisture_Retrieval_Data_PM", "_pm")):
            go = fo.create_group(grp)
            rows, cols = np.arange(60, 100), np.arange(150, 250)
            for name, d in fi[grp].items():
                blk = np.full((40, 100), d.fillvalue, d.dtype)
                if name.startswith("soil_moisture"):
                    blk[:] = 0.2
                if name.startswith("EASE_row_index"):
                    blk[:] = rows[:, None]
                if name.startswith("EASE_column_index"):
                    blk[:] = cols[None, :]
                go.create_dataset(name, data=blk)
    with pytest.raises(CoverageError, match="do not overlap") as e:
        smap.read_smap_l3(far)
    assert "Tibetan Plateau" in str(e.value) and str(far) in str(e.value)
    # the same file is readable on the global grid
    ds = smap.read_smap_l3(far, QualityPolicy.permissive(), bbox=None)
    assert int(np.isfinite(ds["soil_moisture"]).sum()) == 2 * 40 * 100


def test_subset_file_partly_over_tp(l3_files, tmp_path):
    src, am, _ = l3_files["SPL3SMP"]
    g = get_grid("M36")
    rows = slice(g.row_offset + 10, g.row_offset + 60)   # runs past the TP's southern edge
    cols = slice(g.col_offset - 5, g.col_offset + 40)
    part = tmp_path / "part.h5"
    _subset_copy(src, part, rows, cols)
    ds = smap.read_smap_l3(part)
    a = ds["soil_moisture"].sel(overpass="AM").values
    np.testing.assert_array_equal(a[10:, :40], am["soil_moisture"].values[10:, :40])
    assert np.isnan(a[:10]).all() and np.isnan(a[:, 40:]).all()
    assert 0 < ds.attrs["coverage_fraction"] < 1


def test_l4_subset_rejected(l4_file, tmp_path):
    p = tmp_path / "sub4.h5"
    with h5py.File(l4_file[0], "r") as fi, h5py.File(p, "w") as fo:
        fi.copy("Metadata", fo)
        fi.copy("time", fo)
        fo.create_group("Geophysical_Data").create_dataset("sm_surface", data=np.zeros((10, 10), np.float32))
    with pytest.raises(CoverageError, match="not the global M09"):
        smap.read_smap_l4(p)
