"""Validation metrics: hand-computed cases, pytesmo agreement, map form == series form."""

from __future__ import annotations

import math
import subprocess
import sys

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from model.errors import InputError, UnknownNameError
from model.validation import metric_maps as MM, metrics as M
from model.validation.metrics import MetricSettings, all_metrics
from model.validation.metric_maps import metric_map

SMALL = MetricSettings(min_n=4)          # lets the 5-value hand cases through
TOL = dict(rtol=1e-10, atol=1e-12)      # agreement with pytesmo / scipy (float64 inputs)


# ----------------------------------------------------------------------------- hand-computed

def test_hand_computed_five_pairs():
    # product x, reference y
    x = [1.0, 2.0, 3.0, 4.0, 5.0]
    y = [2.0, 1.0, 4.0, 3.0, 5.0]
    # means 3 and 3 -> bias 0; d = x - y = [-1, 1, -1, 1, 0] -> RMSE = sqrt(4/5)
    # dx = [-2,-1,0,1,2], dy = [-1,-2,1,0,2]: s_xy = 2+2+0+0+4 = 8, s_xx = s_yy = 10 -> R = 0.8
    # t = 0.8 sqrt(3 / 0.36) = 2.3094, 3 dof -> p = 0.104088
    # Fisher z: artanh(0.8) = 1.0986123 -/+ 1.959964 / sqrt(2) -> tanh -> (-0.279640, 0.986196)
    r = all_metrics(x, y, settings=SMALL)
    assert r["N"] == 5 and r["status"] == "ok"
    assert r["bias"] == pytest.approx(0.0, abs=1e-15)
    assert r["RMSE"] == pytest.approx(math.sqrt(0.8))
    assert r["ubRMSE"] == pytest.approx(math.sqrt(0.8))
    assert r["R"] == pytest.approx(0.8)
    assert r["R_p"] == pytest.approx(0.104088, abs=1e-6)
    assert r["R_ci_low"] == pytest.approx(-0.279640, abs=1e-6)
    assert r["R_ci_high"] == pytest.approx(0.986196, abs=1e-6)
    assert r["rho"] == pytest.approx(0.8)          # the values are their own ranks
    assert r["anomaly_status"] == "no times"
    assert math.isnan(r["anomaly_R"])


def test_hand_computed_bias_rmse_ubrmse_with_offset():
    # x = y + 0.05 + [0.01, -0.01, 0.01, -0.01, 0]: bias = 0.05, d - mean d = [.01,-.01,.01,-.01,0]
    # ubRMSE = sqrt(4e-4 / 5) = 0.0089443, RMSE = sqrt(0.05^2 + 0.8e-4) = 0.0507937
    y = np.array([0.10, 0.20, 0.30, 0.25, 0.15])
    x = y + 0.05 + np.array([0.01, -0.01, 0.01, -0.01, 0.0])
    r = all_metrics(x, y, settings=SMALL)
    assert r["bias"] == pytest.approx(0.05)
    assert r["ubRMSE"] == pytest.approx(math.sqrt(0.8e-4))
    assert r["RMSE"] == pytest.approx(math.sqrt(0.05**2 + 0.8e-4))
    assert r["ubRMSE"] == pytest.approx(math.sqrt(r["RMSE"] ** 2 - r["bias"] ** 2))


def test_spearman_ties_hand_computed():
    # ranks x = [1, 2.5, 2.5, 4, 5], ranks y = [1, 3, 2, 4, 5] (both mean 3)
    # s_xy = 4 + 0 + 0.5 + 1 + 4 = 9.5, s_xx = 9.5, s_yy = 10 -> rho = sqrt(0.95)
    res = M.spearman_r([1.0, 2, 2, 3, 4], [1.0, 3, 2, 4, 5], settings=SMALL)
    assert res.status == "ok"
    assert res.value == pytest.approx(math.sqrt(0.95))
    assert res.p_value == pytest.approx(0.004818230468, rel=1e-8)   # scipy.stats.spearmanr


def test_moving_average_hand_computed():
    t = pd.date_range("2016-01-01", periods=5, freq="D")
    v = [1.0, 2.0, 4.0, 8.0, 16.0]
    # W = 3 d: |dt| <= 1.5 d -> the day before and after; truncated at both ends
    np.testing.assert_allclose(M.moving_average(v, t, window_days=3),
                               [1.5, 7 / 3, 14 / 3, 28 / 3, 12.0])
    # W = 2 d: |dt| <= 1 d, both ends INCLUDED -> same windows as above
    np.testing.assert_allclose(M.moving_average(v, t, window_days=2),
                               [1.5, 7 / 3, 14 / 3, 28 / 3, 12.0])
    # a gap (no day 2): the window is time based, so day 1 no longer sees day 3
    tg = t[[0, 1, 3, 4]]
    np.testing.assert_allclose(M.moving_average([1.0, 2.0, 8.0, 16.0], tg, window_days=3),
                               [1.5, 1.5, 12.0, 12.0])
    # a NaN value has no moving average and is left out of its neighbours'
    np.testing.assert_allclose(M.moving_average([1.0, np.nan, 4.0, 8.0, 16.0], t, window_days=3),
                               [1.0, np.nan, 6.0, 28 / 3, 12.0])
    # min_periods: fewer values in the window -> NaN
    np.testing.assert_allclose(M.moving_average(v, t, window_days=3, min_periods=3),
                               [np.nan, 7 / 3, 14 / 3, 28 / 3, np.nan])


def test_anomaly_r_removes_the_seasonal_signal():
    t = pd.date_range("2016-01-01", periods=400, freq="D")
    rng = np.random.default_rng(3)
    season = 0.1 * np.sin(2 * np.pi * np.arange(400) / 365)
    noise = rng.normal(0, 0.01, 400)
    x = 0.2 + season + noise
    y = 0.25 + season + rng.normal(0, 0.01, 400)      # shares the season, not the noise
    assert M.pearson_r(x, y).value > 0.9
    assert abs(M.anomaly_r(x, y, t).value) < 0.2
    z = 0.25 + season + noise                          # shares both
    assert M.anomaly_r(x, z, t).value == pytest.approx(1.0)


# ----------------------------------------------------------------------------- conventions

def test_bias_sign_product_minus_reference():
    from pytesmo.metrics import bias as pt_bias

    reference = np.linspace(0.1, 0.3, 20)
    product = reference + 0.04               # product too wet
    assert M.bias(product, reference).value == pytest.approx(0.04)
    assert all_metrics(product, reference)["bias"] == pytest.approx(0.04)
    # pytesmo's bias(x, y) is mean(x) - mean(y): same sign with the product first ...
    assert pt_bias(product, reference) == pytest.approx(0.04)
    # ... and the opposite sign the other way round
    assert pt_bias(reference, product) == pytest.approx(-0.04)


def test_insufficient_data_is_a_status_not_an_exception():
    x = np.array([0.1, 0.2, np.nan, 0.3, 0.25, 0.2, 0.22, 0.21, 0.3, 0.1, 0.2])
    y = np.array([0.1, np.nan, 0.2, 0.3, 0.2, 0.2, 0.2, 0.2, 0.3, 0.1, np.nan])
    # 8 jointly valid pairs < min_n = 10
    r = all_metrics(x, y, pd.date_range("2016-01-01", periods=11, freq="3h"))
    assert r["N"] == 8 and r["status"] == "insufficient data"
    assert r["anomaly_status"] == "insufficient data"
    for k in ("R", "R_p", "R_ci_low", "R_ci_high", "bias", "RMSE", "ubRMSE", "rho", "anomaly_R"):
        assert math.isnan(r[k]), k
    res = M.rmse(x, y)
    assert res.status == "insufficient data" and res.n == 8 and math.isnan(float(res))
    # configurable threshold
    assert all_metrics(x, y, settings=MetricSettings(min_n=8))["status"] == "ok"
    # all NaN, empty
    assert all_metrics([np.nan] * 20, [0.2] * 20)["N"] == 0
    assert all_metrics([], [])["status"] == "insufficient data"


def test_constant_series_has_no_correlation():
    y = np.linspace(0.1, 0.3, 15)
    x = np.full(15, 0.2)
    r = all_metrics(x, y, pd.date_range("2016-01-01", periods=15, freq="D"))
    assert r["status"] == "constant series"
    assert math.isnan(r["R"]) and math.isnan(r["rho"]) and math.isnan(r["anomaly_R"])
    assert math.isnan(r["R_p"]) and math.isnan(r["R_ci_low"])
    assert r["bias"] == pytest.approx(0.0, abs=1e-15)     # the other metrics stay defined
    assert r["ubRMSE"] == pytest.approx(np.std(y))
    assert M.pearson_r(x, y).status == "constant series"
    assert M.bias(x, y).status == "ok"
    # a constant of a value that is not exact in binary still counts as constant
    assert M.pearson_r(np.full(12, 0.1), np.arange(12.0)).status == "constant series"


def test_settings_are_validated_and_names_checked():
    with pytest.raises(InputError, match="min_n"):
        MetricSettings(min_n=2)
    with pytest.raises(InputError, match="ci_level"):
        MetricSettings(ci_level=1.5)
    with pytest.raises(UnknownNameError, match="ubRMSE"):
        all_metrics([1.0] * 12, [1.0] * 12, metrics=("ubrmse",))
    with pytest.raises(InputError, match="1-D"):
        all_metrics(np.ones((3, 4)), np.ones((3, 4)))
    with pytest.raises(InputError):
        M.anomaly_r([1.0] * 12, [1.0] * 12, None)
    with pytest.raises(InputError, match="NaT"):
        M.anomaly_r([1.0] * 3, [1.0] * 3, pd.to_datetime(["2016-01-01", None, "2016-01-03"]))
    s = MetricSettings()
    assert (s.min_n, s.anomaly_window_days, s.ci_level) == (10, 35.0, 0.95)
    with pytest.raises(Exception):
        s.min_n = 3                                     # frozen


def test_series_input_and_unsorted_times():
    t = pd.date_range("2016-01-01", periods=60, freq="D")
    rng = np.random.default_rng(7)
    x = pd.Series(rng.random(60), index=t)
    y = pd.Series(x.values + rng.normal(0, 0.1, 60), index=t)
    ref = all_metrics(x.values, y.values, t)
    assert all_metrics(x, y) == ref                     # times from the Series index
    perm = rng.permutation(60)
    assert all_metrics(x.values[perm], y.values[perm], t[perm]) == pytest.approx(
        {k: v for k, v in ref.items() if not isinstance(v, str)} | {"status": "ok", "anomaly_status": "ok"})


# ----------------------------------------------------------------------------- pytesmo

@pytest.fixture
def pair(rng):
    n = 500
    y = 0.25 + 0.08 * np.sin(np.arange(n) / 30) + rng.normal(0, 0.03, n)
    x = 0.8 * y + 0.07 + rng.normal(0, 0.02, n)
    x[rng.random(n) < 0.1] = np.nan
    y[rng.random(n) < 0.1] = np.nan
    t = pd.date_range("2016-01-01", periods=n, freq="12h")
    return x, y, t


def test_agreement_with_pytesmo(pair):
    from pytesmo.metrics import bias, pearson_r, rmsd, spearman_r, ubrmsd
    from pytesmo.metrics.pairwise import pearson_r_ci

    x, y, t = pair
    ok = np.isfinite(x) & np.isfinite(y)
    xv, yv = x[ok], y[ok]
    r = all_metrics(x, y, t)
    assert r["N"] == ok.sum()
    np.testing.assert_allclose(r["R"], pearson_r(xv, yv), **TOL)
    np.testing.assert_allclose((r["R_ci_low"], r["R_ci_high"]), pearson_r_ci(xv, yv, r["R"]), **TOL)
    np.testing.assert_allclose(r["rho"], spearman_r(xv, yv), **TOL)
    np.testing.assert_allclose(r["bias"], bias(xv, yv), **TOL)
    np.testing.assert_allclose(r["RMSE"], rmsd(xv, yv), **TOL)
    np.testing.assert_allclose(r["ubRMSE"], ubrmsd(xv, yv), **TOL)


def test_pvalues_agree_with_scipy(pair):
    from scipy import stats

    x, y, _ = pair
    ok = np.isfinite(x) & np.isfinite(y)
    r = all_metrics(x, y)
    np.testing.assert_allclose(r["R_p"], stats.pearsonr(x[ok], y[ok]).pvalue, rtol=1e-8)
    np.testing.assert_allclose(r["rho_p"], stats.spearmanr(x[ok], y[ok]).pvalue, rtol=1e-8)
    ci = stats.pearsonr(x[ok], y[ok]).confidence_interval(0.9)
    r90 = all_metrics(x, y, settings=MetricSettings(ci_level=0.9))
    np.testing.assert_allclose((r90["R_ci_low"], r90["R_ci_high"]), (ci.low, ci.high), **TOL)


def test_anomaly_r_agrees_with_pytesmo_calc_anomaly(pair):
    from pytesmo.metrics import pearson_r
    from pytesmo.time_series.anomaly import calc_anomaly

    x, y, t = pair
    ok = np.isfinite(x) & np.isfinite(y)     # anomalies of the matched pairs
    ax = calc_anomaly(pd.Series(x[ok], index=t[ok]), window_size=35)
    ay = calc_anomaly(pd.Series(y[ok], index=t[ok]), window_size=35)
    r = all_metrics(x, y, t)
    assert r["N_anomaly"] == ok.sum()
    np.testing.assert_allclose(r["anomaly_R"], pearson_r(ax.values, ay.values), **TOL)
    # the moving average itself, gappy series included
    xs = pd.Series(x, index=t)
    np.testing.assert_allclose(M.moving_average(x, t), (xs - calc_anomaly(xs, window_size=35)).values,
                               **TOL)


def test_float32_spearman_matches_scipy(rng):
    from scipy import stats

    x = np.round(rng.random(300), 2).astype(np.float32)     # many ties
    y = np.round(x + rng.normal(0, 0.1, 300), 2).astype(np.float32)
    y[0] = -0.0
    x[1] = 0.0
    np.testing.assert_allclose(M.spearman_r(x, y).value, stats.spearmanr(x, y).statistic, **TOL)


# ----------------------------------------------------------------------------- map form

def _field(rng, dtype=np.float64):
    """(time=150, lat=3, lon=4) product/reference with every kind of cell."""
    t = pd.date_range("2016-01-01", periods=160, freq="6h")
    t = t.delete(slice(40, 50))                       # an irregular gap of 60 h
    nt = t.size
    y = 0.25 + 0.05 * np.sin(np.arange(nt) / 9)[:, None, None] + rng.normal(0, 0.03, (nt, 3, 4))
    x = y * rng.uniform(0.7, 1.2, (1, 3, 4)) + rng.normal(0, 0.02, (nt, 3, 4)) + 0.01
    x[rng.random(x.shape) < 0.15] = np.nan
    y[rng.random(y.shape) < 0.15] = np.nan
    y[:, 0, 0] = np.nan                               # all-NaN cell
    x[:-7, 0, 1] = np.nan                             # 7 values: insufficient data
    x[:, 0, 2] = 0.3                                  # constant product
    y[:, 1, 1] = np.round(y[:, 1, 1], 2)              # ties
    coords = {"time": t, "lat": [30.05, 30.15, 30.25], "lon": [90.05, 90.15, 90.25, 90.35]}
    p = xr.DataArray(x.astype(dtype), dims=("time", "lat", "lon"), coords=coords, name="pscnet",
                     attrs={"units": "m3 m-3"})
    r = xr.DataArray(y.astype(dtype), dims=("time", "lat", "lon"), coords=coords, name="truth")
    return p, r


def _assert_map_equals_series(ds, p, r):
    t = p["time"].values
    for i in range(p.sizes["lat"]):
        for j in range(p.sizes["lon"]):
            one = all_metrics(p.values[:, i, j], r.values[:, i, j], t)
            for k, v in one.items():
                if k == "anomaly_status":
                    continue
                got = ds[k].values[i, j]
                if k == "status":
                    assert M.STATUS[int(got)] == v, (i, j)
                else:
                    np.testing.assert_allclose(got, v, rtol=1e-12, atol=0, err_msg=f"{k} {(i, j)}")


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_map_equals_series_numpy(rng, dtype):
    p, r = _field(rng, dtype)
    ds = metric_map(p, r)
    _assert_map_equals_series(ds, p, r)
    assert set(MM.labels(ds.status.values).ravel()) == {"ok", "insufficient data", "constant series"}
    assert int(ds.N[0, 0]) == 0 and np.isnan(ds.R[0, 0]) and not bool(ds.valid[0, 0])
    assert int(ds.status[0, 1]) == 1 and np.isnan(ds.bias[0, 1])
    assert int(ds.status[0, 2]) == 2 and np.isnan(ds.R[0, 2]) and np.isfinite(ds.bias[0, 2])
    assert ds.bias.attrs["units"] == "m3 m-3" and ds.attrs["min_n"] == 10


def _raise_on_compute():
    """Like xarray's ``raise_if_dask_computes``: a scheduler that fails if anything computes."""
    def scheduler(dsk, keys, **kwargs):
        raise RuntimeError("building the metric map computed a Dask graph")

    return dask.config.set(scheduler=scheduler)


def test_map_equals_series_dask_and_is_lazy(rng):
    p, r = _field(rng, np.float32)
    pc = p.chunk({"time": 50, "lat": 2, "lon": 2})      # time is rechunked inside
    rc = r.chunk({"time": 50, "lat": 2, "lon": 2})
    with _raise_on_compute():
        ds = metric_map(pc, rc)
    assert isinstance(ds.R.data, dsa.Array) and isinstance(ds.status.data, dsa.Array)
    assert ds.R.chunks == ((2, 1), (2, 2))
    computed = ds.compute()
    _assert_map_equals_series(computed, p, r)
    xr.testing.assert_identical(computed, metric_map(p, r))


def test_map_with_unsorted_times_is_sorted_lazily(rng):
    p, r = _field(rng)
    perm = rng.permutation(p.sizes["time"])
    with _raise_on_compute():
        ds = metric_map(p.isel(time=perm).chunk({"lat": 2}), r.isel(time=perm).chunk({"lat": 2}))
    xr.testing.assert_allclose(ds.compute(), metric_map(p, r), rtol=1e-12)


def test_map_subset_of_metrics_and_errors(rng):
    p, r = _field(rng)
    ds = metric_map(p, r, metrics=("bias", "ubRMSE"))
    assert set(ds.data_vars) == {"N", "bias", "ubRMSE", "status", "valid"}
    np.testing.assert_array_equal(ds.bias.values, metric_map(p, r).bias.values)
    with pytest.raises(UnknownNameError, match="rho"):
        metric_map(p, r, metrics=("spearman",))
    with pytest.raises(InputError, match="coordinates differ"):
        metric_map(p, r.assign_coords(lat=r.lat + 0.5))
    with pytest.raises(InputError, match="datetime"):
        metric_map(p.assign_coords(time=np.arange(p.time.size)),
                   r.assign_coords(time=np.arange(p.time.size)))
    # without anomaly_R no datetime coordinate is needed
    metric_map(p.assign_coords(time=np.arange(p.time.size)), r.assign_coords(time=np.arange(p.time.size)),
               metrics=("R",))


def test_map_summary(rng):
    p, r = _field(rng)
    ds = metric_map(p, r)
    s = MM.map_summary(ds)
    assert s["R"] == pytest.approx(float(np.nanmean(ds.R.values)))
    assert s["n_cells"] == int(ds.valid.sum())
    w = xr.ones_like(ds.R)
    assert MM.map_summary(ds, w)["bias"] == pytest.approx(s["bias"])


def test_docstring_examples_run():
    import doctest

    from model.validation import matching

    for mod in (M, matching):
        res = doctest.testmod(mod, optionflags=doctest.NORMALIZE_WHITESPACE)
        assert res.failed == 0 and res.attempted > 0, mod.__name__


def test_threads_and_blocks_do_not_change_results(rng):
    p, r = _field(rng, np.float32)
    a = metric_map(p, r, settings=MetricSettings(threads=1, block_size=10**6))
    b = metric_map(p, r, settings=MetricSettings(threads=3, block_size=200))   # one cell per block
    xr.testing.assert_identical(a, b)


def test_model_imports_neither_pytesmo_nor_dashboard_libraries():
    code = ("import sys, model.validation.metrics, model.validation.matching; "
            "bad = [m for m in ('pytesmo', 'panel', 'holoviews', 'bokeh') if m in sys.modules]; "
            "print(bad); sys.exit(1 if bad else 0)")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr
