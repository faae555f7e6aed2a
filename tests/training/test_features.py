"""The frost channel (``stl1_min24``) of the predictors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from model.errors import InputError, UnknownNameError
from model.features.channels import DERIVED, DYNAMIC, derive


def test_stl1_min24_is_the_running_minimum_of_the_last_8_steps():
    x = np.array([275, 270, 280, 281, 282, 283, 284, 285, 286, 287], np.float32)
    got = derive("stl1_min24", x)
    # by hand: min over x[max(0, k-7) .. k]
    want = np.array([275, 270, 270, 270, 270, 270, 270, 270, 270, 280], np.float32)
    np.testing.assert_array_equal(got, want)
    # (time, y, x) arrays, NaN skipped
    y = np.stack([x, x[::-1]], axis=1)[:, :, None]
    y[3, 0, 0] = np.nan
    g = derive("stl1_min24", y)
    assert g.shape == y.shape and np.all(np.isfinite(g))
    assert g[-1, 1, 0] == 270 and g[5, 0, 0] == 270      # x reversed ends ..., 280, 270, 275


def test_unknown_derived_channel():
    with pytest.raises(UnknownNameError):
        derive("stl2_min24", np.zeros(3))


def test_frost_channel_is_a_dynamic_input_built_from_stl1():
    from model.grids import tp_mask
    from model.features.cube import build_cube

    assert "stl1_min24" in DYNAMIC and DERIVED["stl1_min24"][0] == "stl1"
    times = pd.date_range("2017-06-01", periods=10, freq="3h")
    shape = (150, 320)
    rng = np.random.default_rng(1)
    data = {c: (("time", "lat", "lon"), rng.random((10,) + shape, dtype=np.float32))
            for c in DYNAMIC if c not in DERIVED}
    stl1 = 270.0 + np.arange(10, dtype=np.float32)[::-1]          # cooling: min = this step
    data["stl1"] = (("time", "lat", "lon"), np.broadcast_to(stl1[:, None, None], (10,) + shape).copy())
    era5 = xr.Dataset(data, coords={"time": times})
    z = np.zeros(shape, np.float32)
    static = xr.Dataset({"elevation": (("lat", "lon"), z), "slope": (("lat", "lon"), z),
                         "aspect": (("lat", "lon"), z)})
    cube = build_cube(era5, static, "TP10")
    k = cube.channels.index("stl1_min24")
    m = np.asarray(tp_mask("TP10"))
    np.testing.assert_allclose(cube.x3[:, k][:, m][:, 0], stl1)
    with pytest.raises(InputError, match="stl1"):
        build_cube(era5.drop_vars("stl1"), static, "TP10")


def test_a_region_window_is_the_whole_window_cut_to_the_region():
    """``window`` takes steps and region in one indexing (only the region is copied); it must
    equal the whole-frame window cut afterwards, at the first steps (clamped history) too."""
    from model.features.cube import T3, TD, TW, build_cube

    times = pd.date_range("2017-06-01", periods=8 * 9, freq="3h")
    shape = (150, 320)
    rng = np.random.default_rng(2)
    data = {c: (("time", "lat", "lon"), rng.random((times.size,) + shape, dtype=np.float32))
            for c in DYNAMIC if c not in DERIVED}
    era5 = xr.Dataset(data, coords={"time": times})
    static = xr.Dataset({k: (("lat", "lon"), rng.random(shape, dtype=np.float32))
                         for k in ("elevation", "slope", "aspect")})
    cube = build_cube(era5, static, "TP10")
    ys, xs = slice(40, 72), slice(101, 133)
    for i in (0, 5, times.size - 1):
        whole, part = cube.window(i), cube.window(i, ys, xs)
        for k, n in (("x3h", T3), ("xday", TD), ("xweek", TW)):
            assert part[k].shape == (n, len(cube.channels), 32, 32)
            np.testing.assert_array_equal(part[k], whole[k][:, :, ys, xs])
        np.testing.assert_array_equal(part["static"], whole["static"][:, ys, xs])
    b = cube.patch_batch([3, 60], [0, 118], [0, 288], 32)
    np.testing.assert_array_equal(b["x3h"][1], cube.window(60)["x3h"][:, :, 118:150, 288:320])
