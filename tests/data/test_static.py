"""DEM reading (packaged subset and pvlib's global HDF5), TP10 static layers, slope/aspect."""

from __future__ import annotations

import json

import h5py
import numpy as np
import pytest
import xarray as xr

from model.data.static import (DEM_PATH, describe, dem_grid, metres_per_degree, read_dem,
                               slope_aspect, static_layers)
from model.errors import InputError, MissingVariableError, WrongProductError
from model.grids import TP_BBOX, tp10, tp_mask

CST01 = (33.8833, 102.1333)       # Maqu CST-01, 3431 m
NAQU_BJ = (31.36638, 91.89969)    # Tibet-Obs Naqu (BJ) point of the station table, 4509 m


def test_packaged_dem_and_readme_checks():
    dem = read_dem()
    assert dem.dims == ("lat", "lon") and dem.shape == (180, 384) and dem.dtype == np.float32
    assert dem.attrs["units"] == "m"
    assert np.all(np.diff(dem.lat) > 0)                       # ascending
    assert dem.lat[0] == pytest.approx(25 + 1 / 24) and dem.lon[-1] == pytest.approx(105 - 1 / 24)
    g = dem_grid(dem)
    r, c = g.locate(*CST01)
    assert dem.values[r[0], c[0]] == 3442.0                   # ../shared/data/README.md
    r, c = g.locate(*NAQU_BJ)
    assert dem.values[r[0], c[0]] == 4534.0
    assert (dem.values - (-450)) % 28 == pytest.approx(0)     # pvlib's 28 m quantisation


def test_global_hdf5_matches_the_packaged_subset(shared):
    path = shared / "dem" / "pvlib_Altitude_global_1_12deg.h5"
    sub = read_dem(path, bbox=TP_BBOX)
    ref = read_dem()
    np.testing.assert_allclose(sub.lat, ref.lat)
    np.testing.assert_allclose(sub.lon, ref.lon)
    np.testing.assert_array_equal(sub.values, ref.values)
    # the decoding by hand from the raw uint8 at CST-01: row from the north, col from 180 W
    i = int((90 - CST01[0]) * 12)
    j = int((CST01[1] + 180) * 12)
    with h5py.File(path) as f:
        raw = int(f["Altitude"][i, j])
    assert raw * 28 - 450 == 3442
    glob = read_dem(path)
    assert glob.shape == (2160, 4320)
    assert np.isnan(glob.sel(lat=0.0, lon=-150.0, method="nearest"))     # 255 = no data (Pacific)
    assert glob.lat[0] == pytest.approx(-90 + 1 / 24)


def test_metres_per_degree_on_wgs84():
    phi = np.array([0.0, 30.0, 45.0, 60.0])
    m_lat, m_lon = metres_per_degree(phi)
    r = np.deg2rad(phi)
    # the classic WGS84 series (e.g. the "length of a degree" tables)
    ref_lat = 111132.954 - 559.822 * np.cos(2 * r) + 1.175 * np.cos(4 * r)
    ref_lon = 111412.84 * np.cos(r) - 93.5 * np.cos(3 * r) + 0.118 * np.cos(5 * r)
    np.testing.assert_allclose(m_lat, ref_lat, atol=0.05)
    np.testing.assert_allclose(m_lon, ref_lon, atol=0.05)
    np.testing.assert_allclose(m_lat[:2], [110574.3, 110852.4], atol=0.1)


def test_slope_aspect_hand_computed_plane():
    lat = 30.0 + 0.1 * np.arange(-2, 3)
    lon = 90.0 + 0.1 * np.arange(-2, 3)
    # rising 1000 m per degree north and 500 m per degree east
    z = 1000.0 * (lat[:, None] - 30.0) + 500.0 * (lon[None, :] - 90.0)
    slope, aspect = slope_aspect(z, lat, lon)
    # at 30 N: 1 deg lat = 110852.4 m, 1 deg lon = 96486.3 m
    gy, gx = 1000 / 110852.4, 500 / 96486.3                 # 0.0090211, 0.0051821 m/m
    assert slope[2, 2] == pytest.approx(np.degrees(np.arctan(np.hypot(gx, gy))), abs=1e-5)   # 0.5961 deg
    assert slope[2, 2] == pytest.approx(0.5961, abs=1e-4)
    # downhill points south-south-west: 180 + atan(gx/gy) = 209.87 deg
    assert aspect[2, 2] == pytest.approx(180 + np.degrees(np.arctan(gx / gy)), abs=1e-4)
    assert aspect[2, 2] == pytest.approx(209.87, abs=0.01)
    # edges use one-sided differences: same plane, same slope along the row
    assert slope[2, 0] == pytest.approx(slope[2, 2], rel=1e-9)


@pytest.mark.parametrize("dz_north, dz_east, expected", [
    (-100.0, 0.0, 0.0),      # rising to the south: faces north
    (0.0, -100.0, 90.0),     # rising to the west: faces east
    (100.0, 0.0, 180.0),
    (0.0, 100.0, 270.0),
])
def test_aspect_cardinal_directions(dz_north, dz_east, expected):
    lat = 35.0 + 0.1 * np.arange(3)
    lon = 80.0 + 0.1 * np.arange(3)
    z = dz_north * np.arange(3)[:, None] + dz_east * np.arange(3)[None, :] + 4000.0
    slope, aspect = slope_aspect(z, lat, lon)
    assert aspect[1, 1] == pytest.approx(expected, abs=1e-9)
    assert slope[1, 1] > 0


def test_flat_has_no_aspect():
    lat = np.array([30.0, 30.1, 30.2])
    lon = np.array([90.0, 90.1, 90.2])
    slope, aspect = slope_aspect(np.full((3, 3), 4500.0), lat, lon)
    assert np.allclose(slope, 0, atol=1e-9) and np.all(np.isnan(aspect))


def test_static_layers_on_tp10():
    ds = static_layers()
    g = tp10()
    assert set(ds.data_vars) == {"elevation", "slope", "aspect", "tp_mask"}
    assert ds["elevation"].dims == ("lat", "lon") and ds["elevation"].shape == (150, 320)
    np.testing.assert_allclose(ds.lat, g.lat)
    assert ds["tp_mask"].dtype == bool
    np.testing.assert_array_equal(ds["tp_mask"].values, tp_mask("TP10"))
    assert ds["elevation"].attrs["units"] == "m" and ds["slope"].attrs["units"] == "degree"
    assert np.isfinite(ds["elevation"]).all()
    s = ds["slope"].values
    assert np.nanmin(s) >= 0 and np.nanmax(s) < 90 and np.nanmax(s) > 5      # Himalaya
    a = ds["aspect"].values
    assert np.nanmin(a) >= 0 and np.nanmax(a) < 360
    # mean elevation inside the TP is high plateau
    assert 3500 < float(ds["elevation"].values[tp_mask("TP10")].mean()) < 5000
    # a copy each call
    ds["elevation"][:] = 0
    assert float(static_layers()["elevation"].max()) > 6000


def test_static_elevation_is_the_area_mean():
    dem = read_dem()
    ds = static_layers()
    # TP10 cell 33.8-33.9 N, 102.1-102.2 E (Maqu CST-01); DEM edges at k/12 degrees
    i = int(round((33.85 - 25.05) / 0.1))
    j = int(round((102.15 - 73.05) / 0.1))
    lat_e = np.arange(0, 15 * 12 + 1) / 12 + 25
    lon_e = np.arange(0, 32 * 12 + 1) / 12 + 73
    wy = np.clip(np.minimum(lat_e[1:], 33.9) - np.maximum(lat_e[:-1], 33.8), 0, None)
    wx = np.clip(np.minimum(lon_e[1:], 102.2) - np.maximum(lon_e[:-1], 102.1), 0, None)
    w = np.outer(wy * np.cos(np.deg2rad(dem.lat.values)), wx)
    expected = float((w * dem.values).sum() / w.sum())
    assert float(ds["elevation"][i, j]) == pytest.approx(expected, abs=0.5)
    assert abs(float(ds["elevation"][i, j]) - 3431) < 50                        # the station's 3431 m


def test_describe_dem(shared):
    d = describe(DEM_PATH)
    json.dumps(d)
    assert d["product"] == "DEM" and d["variables"] == {"elevation": "m"}
    assert d["soil_moisture"] is None and d["time_start"] is None and d["time_end"] is None
    assert d["grid"]["shape"] == [180, 384]
    assert d["grid"]["resolution_deg"] == pytest.approx(1 / 12)
    assert d["elevation"]["max"] == 6550.0
    g = describe(shared / "dem" / "pvlib_Altitude_global_1_12deg.h5")
    assert g["grid"]["shape"] == [2160, 4320] and g["elevation"]["no_data_count"] > 0


def test_bad_dem_input(tmp_path, shared):
    with pytest.raises(InputError, match="does not exist"):
        read_dem(tmp_path / "none.nc")
    txt = tmp_path / "dem.nc"
    txt.write_text("not a dem")
    with pytest.raises(WrongProductError):
        read_dem(txt)
    with pytest.raises(MissingVariableError, match="no elevation variable"):
        read_dem(shared / "era5" / "era5_example_downloaded_raw.nc")
    other = tmp_path / "other.nc"
    xr.Dataset({"elevation": (("t",), np.zeros(3))}).to_netcdf(other)
    with pytest.raises(WrongProductError, match="expected \\(lat, lon\\)"):
        read_dem(other)
