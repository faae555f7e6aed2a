"""Matching: stations (time, frozen soil, grid), networks (two forms), ranks, SMAP alignment."""

from __future__ import annotations

import math

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from model.errors import InputError, UnknownNameError
from model.grids import tp10
from model.validation.matching import (
    MatchResult, extract_station_series, locate_station, locate_stations, match_station,
    match_stations, match_to_smap, network_metrics, rank_models,
)
from model.validation.metrics import MetricSettings

SMALL = MetricSettings(min_n=4)
H = pd.Timedelta("1h")


def _product(n=16, start="2016-07-01"):
    t = pd.date_range(start, periods=n, freq="3h")
    return pd.Series(0.20 + 0.01 * np.arange(n), index=t, name="pscnet")


def _hourly(product, offset=-0.02, **cols):
    """Hourly in-situ covering the product period: value at a product step = product + offset,
    in between = a far-off value (so any wrong pick shows)."""
    t = pd.date_range(product.index[0] - 3 * H, product.index[-1] + 3 * H, freq="1h")
    sm = pd.Series(9.0, index=t)
    sm[product.index] = product.values + offset
    return pd.DataFrame({"soil_moisture": sm.values, **cols}, index=t)


# ----------------------------------------------------------------------------- time matching

def test_one_pair_per_product_step_with_known_offset():
    p = _product()
    res = match_station(p, _hourly(p), name="MAQU-01")
    assert res.status == "ok" and res.station == "MAQU-01"
    assert res.counts["n_pairs"] == len(p) == res.counts["n_matched"]
    assert res.counts["n_insitu"] == len(p) * 3 + 4     # hourly, 3 h either side
    assert (res.pairs["dt"] == pd.Timedelta(0)).all()
    np.testing.assert_allclose(res.pairs["insitu"], p.values - 0.02)
    assert res.metrics["bias"] == pytest.approx(0.02)   # product - in situ
    assert res.metrics["ubRMSE"] == pytest.approx(0.0, abs=1e-12)
    assert res.metrics["N"] == len(p) and res.metrics["status"] == "ok"


def test_nearest_within_max_dt_and_not_beyond():
    p = _product(4)
    t0, t1, t2, t3 = p.index
    ins = pd.DataFrame({"soil_moisture": [0.11, 0.12, 0.13, 0.14, 0.15]},
                       index=[t0 + 1.5 * H,              # exactly 1.5 h after t0: matched (inclusive)
                              t1 - 0.5 * H,              # t1: 0.5 h before ...
                              t1 + 1.0 * H,              # ... beats 1 h after
                              t2 + 1.6 * H,              # too far from t2 (and 1.4 h from t3)
                              t3 + 2.0 * H])             # too far from t3
    res = match_station(p, ins, settings=SMALL)
    got = res.pairs["insitu"]
    assert list(got.index) == [t0, t1, t3]
    assert list(got.values) == [0.11, 0.12, 0.14]       # t3 takes the value 1.4 h before it
    assert res.pairs.loc[t3, "dt"] == pd.Timedelta("-1.4h")
    assert res.counts["n_unmatched_product"] == 1        # t2
    # a tighter max_dt drops the 1.5 h and 1.4 h matches
    res1 = match_station(p, ins, pd.Timedelta("1h"), settings=SMALL)
    assert list(res1.pairs.index) == [t1]


def test_equidistant_in_situ_values_resolve_to_the_earlier():
    p = _product(2)
    t0 = p.index[0]
    ins = pd.DataFrame({"soil_moisture": [0.1, 0.3]}, index=[t0 - 1.5 * H, t0 + 1.5 * H])
    res = match_station(p.iloc[:1], ins, settings=SMALL)
    assert res.pairs["insitu"].tolist() == [0.1]


def test_nan_values_are_not_matched_and_timezones_are_utc():
    p = _product(8)
    ins = _hourly(p)
    ins.loc[p.index[2], "soil_moisture"] = np.nan       # nearest valid is then 1 h away (9.0)
    p.iloc[5] = np.nan
    res = match_station(p, ins, settings=SMALL)
    assert p.index[5] not in res.pairs.index
    assert res.pairs.loc[p.index[2], "insitu"] == 9.0
    assert res.counts["n_product"] == 7
    # tz-aware inputs are converted to UTC
    p_bj = p.tz_localize("UTC").tz_convert("Asia/Shanghai")
    res_tz = match_station(p_bj, ins.tz_localize("UTC"), settings=SMALL)
    pd.testing.assert_frame_equal(res_tz.pairs, res.pairs)


def test_no_overlap_status():
    p = _product(16, start="2016-07-01")
    ins = _hourly(_product(16, start="2017-07-01"))
    res = match_station(p, ins)
    assert res.status == "no overlap" and not res.ok
    assert res.counts["n_pairs"] == 0 and res.counts["n_product"] == 16
    assert res.metrics["status"] == "insufficient data" and math.isnan(res.metrics["R"])
    assert len(res.pairs) == 0 and list(res.pairs.columns) == list(match_station(p, _hourly(p)).pairs.columns)
    # an empty station too
    assert match_station(p, ins.iloc[:0]).status == "no overlap"
    with pytest.raises(InputError, match="soil_moisture"):
        match_station(p, ins.rename(columns={"soil_moisture": "sm"}))


# ----------------------------------------------------------------------------- frozen soil

def test_frozen_soil_excluded_and_reported():
    p = _product(16)
    ins = _hourly(p, soil_temperature=5.0)
    ins.loc[p.index[:4], "soil_temperature"] = [-3.0, -0.5, 0.0, 0.1]   # 0.0 counts as frozen
    ins["flag"] = "G"
    ins.loc[p.index[10], "flag"] = "C03,D01"          # ISMN: in-situ soil temperature < 0
    ins["frozen"] = False
    ins.loc[p.index[12], "frozen"] = True             # a provided frozen flag
    ins.loc[p.index[14], "soil_temperature"] = np.nan  # unknown -> not frozen
    ins.loc[p.index[15], "flag"] = "D02"              # air temperature only: not frozen by default
    res = match_station(p, ins, settings=SMALL)
    frozen_t = [p.index[i] for i in (0, 1, 2, 10, 12)]
    assert list(res.frozen_pairs.index) == frozen_t
    assert res.frozen_pairs["frozen"].all() and not res.pairs["frozen"].any()
    assert not set(frozen_t) & set(res.pairs.index)
    assert res.counts["n_frozen"] == 5 and res.counts["n_pairs"] == 11 and res.counts["n_matched"] == 16
    assert res.counts["n_temperature_unknown"] == 1
    assert res.metrics["N"] == 11 and res.frozen_metrics["N"] == 5
    assert res.frozen_metrics["bias"] == pytest.approx(0.02)     # its own metrics
    row = res.summary()
    assert row["n_frozen"] == 5 and row["frozen_N"] == 5 and row["N"] == 11
    # a custom flag list
    res2 = match_station(p, ins, frozen_flags=("D01", "D02"), settings=SMALL)
    assert res2.counts["n_frozen"] == 6


# ----------------------------------------------------------------------------- grid

def test_locate_station_inside_and_outside_grid():
    assert locate_station(25.06, 73.06) == (0, 0, "ok")
    g = tp10()
    row, col, status = locate_station(33.0, 101.9)
    assert status == "ok" and g.lat[row] == pytest.approx(33.05) and g.lon[col] == pytest.approx(101.95)
    assert locate_station(50.0, 80.0) == (None, None, "outside grid")
    assert locate_station(30.0, 120.0)[2] == "outside grid"


def _product_field(times):
    g = tp10()
    rng = np.random.default_rng(0)
    data = rng.random((times.size, *g.shape)).astype(np.float32)
    return xr.DataArray(data, dims=("time", "lat", "lon"), coords={"time": times, "lat": g.lat, "lon": g.lon},
                        name="pscnet")


def test_match_stations_outside_grid_and_extraction():
    times = pd.date_range("2016-07-01", periods=24, freq="3h")
    field = _product_field(times)
    table = pd.DataFrame({"lat": [33.91, 50.0, 31.37], "lon": [102.15, 80.0, 91.9]},
                         index=["MAQU-01", "FAR-01", "NAQU-01"])
    located = locate_stations(table)
    assert located["grid_status"].tolist() == ["ok", "outside grid", "ok"]
    series = extract_station_series(field.chunk({"time": 8}), located)
    assert set(series) == {"MAQU-01", "NAQU-01"}
    r, c = located.loc["NAQU-01", ["row", "col"]]
    np.testing.assert_array_equal(series["NAQU-01"].values, field.values[:, r, c])
    stations = {sid: _hourly(pd.Series(field.values[:, 0, 0], index=times)) for sid in table.index}
    res = match_stations(field, stations, table, settings=SMALL)
    assert res["FAR-01"].status == "outside grid" and res["FAR-01"].row is None
    assert res["MAQU-01"].status == "ok" and (res["MAQU-01"].row, res["MAQU-01"].col) == tuple(
        located.loc["MAQU-01", ["row", "col"]])
    assert res["MAQU-01"].counts["n_pairs"] == 24
    with pytest.raises(InputError, match="no coordinates"):
        match_stations(field, {"X": stations["FAR-01"]}, table)


# ----------------------------------------------------------------------------- networks

def _station(times, product, insitu, name):
    ins = pd.DataFrame({"soil_moisture": insitu}, index=times)
    return match_station(pd.Series(product, index=times), ins, name=name, settings=SMALL)


def test_network_metrics_two_forms_hand_computed():
    t = pd.date_range("2016-07-01", periods=5, freq="3h")
    pa = np.array([0.10, 0.20, 0.30, 0.40, 0.50])
    pb = np.array([0.20, 0.40, 0.60, 0.80])
    a = _station(t, pa, pa + 0.1, "A")          # product - in situ = -0.1 at every step
    b = _station(t[:4], pb, pb - 0.3, "B")      # +0.3 at every step, no value at t4
    net = network_metrics({"A": a, "B": b}, settings=SMALL)
    # (1) mean of station metrics: bias (-0.1 + 0.3)/2 = 0.1, RMSE (0.1 + 0.3)/2 = 0.2, R = 1
    mos = net["mean_of_stations"]
    assert mos["bias"] == pytest.approx(0.1) and mos["RMSE"] == pytest.approx(0.2)
    assert mos["R"] == pytest.approx(1.0) and mos["n_stations"]["bias"] == 2 and mos["N"] == 9
    # (2) network-mean series: t0..t3 mean over A and B -> d = (-0.1 + 0.3)/2 = +0.1; t4 only A -> -0.1
    s = net["series"]
    assert s["n_stations"].tolist() == [2, 2, 2, 2, 1]
    np.testing.assert_allclose(s["product"], [0.15, 0.30, 0.45, 0.60, 0.50])
    nm = net["network_mean"]
    assert nm["N"] == 5
    assert nm["bias"] == pytest.approx((4 * 0.1 - 0.1) / 5)          # 0.06
    assert nm["RMSE"] == pytest.approx(0.1)                          # |d| = 0.1 everywhere
    assert nm["ubRMSE"] == pytest.approx(math.sqrt(0.01 - 0.06**2))  # 0.08
    assert net["n_stations"] == 2 and net["n_stations_ok"] == 2
    # requiring both stations drops t4
    net2 = network_metrics({"A": a, "B": b}, min_stations=2, settings=SMALL)
    assert net2["network_mean"]["N"] == 4 and net2["network_mean"]["bias"] == pytest.approx(0.1)
    with pytest.raises(InputError):
        network_metrics({"A": a}, min_stations=0)


def test_network_metrics_ignores_stations_without_pairs():
    t = pd.date_range("2016-07-01", periods=5, freq="3h")
    a = _station(t, np.linspace(0.1, 0.5, 5), np.linspace(0.1, 0.5, 5) + 0.1, "A")
    out = MatchResult.without_pairs("FAR", "outside grid", settings=SMALL)
    net = network_metrics({"A": a, "FAR": out}, settings=SMALL)
    assert net["mean_of_stations"]["bias"] == pytest.approx(-0.1)
    assert net["mean_of_stations"]["n_stations"]["bias"] == 1
    assert net["network_mean"]["bias"] == pytest.approx(-0.1)
    empty = network_metrics({"FAR": out})
    assert empty["network_mean"]["status"] == "insufficient data" and math.isnan(
        empty["mean_of_stations"]["R"])


# ----------------------------------------------------------------------------- ranks

def test_rank_models():
    table = pd.DataFrame({
        "model": ["pscnet", "unet", "rf", "lstm"],
        "R": [0.90, 0.85, 0.90, np.nan],
        "ubRMSE": [0.030, 0.020, 0.050, 0.040],
        "bias": [-0.010, 0.030, 0.005, -0.040],
        "N": [100, 100, 100, 100],
    })
    ranks = rank_models(table)
    assert list(ranks.columns) == ["R", "ubRMSE", "bias"]          # N is not ranked
    assert ranks.loc["pscnet"].tolist() == [1, 2, 2]
    assert ranks.loc["unet"].tolist() == [3, 1, 3]
    assert ranks.loc["rf"].tolist() == [1, 4, 1]                   # tie in R shares rank 1
    assert ranks.loc["lstm", "R"] is pd.NA and ranks.loc["lstm", "bias"] == 4
    custom = rank_models(table, {"bias": False})                   # signed: lowest is best
    assert custom["bias"].tolist() == [2, 4, 3, 1]
    with pytest.raises(UnknownNameError):
        rank_models(table, {"RMSE": False})


# ----------------------------------------------------------------------------- SMAP

def test_match_to_smap_aligns_and_masks_jointly():
    t = pd.date_range("2016-07-01", periods=6, freq="3h")
    y, x = np.arange(100, 103), np.arange(200, 204)
    rng = np.random.default_rng(1)
    prod = xr.DataArray(rng.random((6, 3, 4)), dims=("time", "y", "x"), coords={"time": t, "y": y, "x": x})
    obs = xr.DataArray(rng.random((4, 4, 3)), dims=("time", "x", "y"),
                       coords={"time": t[2:], "x": x, "y": y})
    obs[0, 1, 2] = np.nan
    prod[3, 0, 0] = np.nan
    p, o = match_to_smap(prod, obs)
    assert p.dims == o.dims == ("time", "y", "x") and p.sizes["time"] == 4
    np.testing.assert_array_equal(np.isnan(p.values), np.isnan(o.values))
    assert int(np.isnan(p.values).sum()) == 2
    def no_compute(dsk, keys, **kwargs):
        raise RuntimeError("match_to_smap computed")

    with dask.config.set(scheduler=no_compute):        # lazy, as xarray's raise_if_dask_computes
        pl, ol = match_to_smap(prod.chunk({"time": 2}), obs.chunk({"time": 2}))
    assert pl.chunks is not None
    xr.testing.assert_equal(pl.compute(), p)
    with pytest.raises(InputError, match="dims"):
        match_to_smap(prod.rename(y="lat"), obs)
    with pytest.raises(InputError, match="no time step"):
        match_to_smap(prod.isel(time=[0]), obs)


# ----------------------------------------------------------------------------- the fast path

def _reference_pairs(product: pd.Series, station: pd.DataFrame, max_dt, frozen_flags=("D01", "D03")):
    """The pairing rule written with pandas.merge_asof (independent of the searchsorted path)."""
    p = product[np.isfinite(product.to_numpy(dtype=float))].sort_index(kind="stable")
    p = p[~p.index.duplicated(keep="first")]
    s = station[np.isfinite(station["soil_moisture"].to_numpy(dtype=float))].sort_index(kind="stable")
    s = s[~s.index.duplicated(keep="first")]
    right = pd.DataFrame({"insitu_time": s.index, "insitu": s["soil_moisture"].to_numpy(float),
                          "soil_temperature": s["soil_temperature"].to_numpy(float),
                          "flag": s["flag"].to_numpy()})
    left = pd.DataFrame({"time": p.index, "product": p.to_numpy(float)})
    m = pd.merge_asof(left, right, left_on="time", right_on="insitu_time", direction="nearest",
                      tolerance=max_dt)
    m = m[m["insitu_time"].notna()].set_index("time")
    frozen = (m["soil_temperature"] <= 0).to_numpy() | m["flag"].isin(frozen_flags).to_numpy()
    return m[~frozen], m[frozen]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_fast_matching_equals_merge_asof(seed):
    """Irregular in-situ times (ties half-way between steps, duplicates, NaNs, frozen records),
    unsorted product steps with NaNs and duplicates: the same pairs and metrics as merge_asof,
    whether the station is passed raw or prepared once."""
    from model.validation.matching import prepare_station

    rng = np.random.default_rng(seed)
    steps = pd.date_range("2016-06-01", periods=400, freq="3h")
    pv = 0.2 + 0.05 * rng.standard_normal(steps.size)
    pv[rng.random(steps.size) < 0.1] = np.nan
    prod = pd.Series(pv, index=steps)
    prod = pd.concat([prod, prod.iloc[[5, 9]] + 0.3]).sample(frac=1.0, random_state=seed)   # shuffled + dups
    mins = np.sort(rng.integers(-200, 400 * 180 + 200, 1500))
    mins[::97] = (mins[::97] // 180) * 180 + 90                       # half-way between steps
    mins = np.sort(np.r_[mins, np.arange(30) * 1800 + 60, np.arange(30) * 1800 - 60])    # ties
    t = pd.Timestamp("2016-06-01") + pd.to_timedelta(mins, "min")
    ins = pd.DataFrame({"soil_moisture": 0.2 + 0.05 * rng.standard_normal(t.size),
                        "soil_temperature": rng.normal(4, 4, t.size),
                        "flag": rng.choice(["G", "D01", "C01", "D03"], t.size, p=[.7, .1, .1, .1])},
                       index=t)
    ins.iloc[rng.integers(0, t.size, 40), 0] = np.nan
    ins.iloc[rng.integers(0, t.size, 40), 1] = np.nan
    ref, ref_frozen = _reference_pairs(prod, ins, pd.Timedelta("1.5h"))
    assert len(ref) > 100 and len(ref_frozen) > 10
    for station in (ins, prepare_station(ins, name="X")):
        res = match_station(prod, station, name="X")
        for got, want in ((res.pairs, ref), (res.frozen_pairs, ref_frozen)):
            np.testing.assert_array_equal(got.index.to_numpy(), want.index.to_numpy())
            np.testing.assert_array_equal(got["insitu_time"].to_numpy(), want["insitu_time"].to_numpy())
            np.testing.assert_allclose(got["product"], want["product"])
            np.testing.assert_allclose(got["insitu"], want["insitu"])
        assert res.counts["n_pairs"] == len(ref) and res.counts["n_frozen"] == len(ref_frozen)
        d = ref["product"] - ref["insitu"]
        assert res.metrics["bias"] == pytest.approx(d.mean())
        assert res.metrics["ubRMSE"] == pytest.approx(np.sqrt(((d - d.mean()) ** 2).mean()))


def test_prepared_station_keeps_its_frozen_flags():
    from model.validation.matching import prepare_station

    p = _product()
    st = prepare_station(_hourly(p), name="S")
    with pytest.raises(ValueError, match="frozen_flags"):
        match_station(p, st, frozen_flags=("D02",))
