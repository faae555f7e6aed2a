"""Science scores (model.validation.skill) against independent references: hand-computed
cases, explicit loops, scipy and pytesmo."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from model.errors import InputError
from model.validation import skill


# ----------------------------------------------------------------------------- frozen soil
def test_thawed_mask_truth_first_then_era5():
    truth_c = np.array([[1.0, -0.5], [np.nan, 0.0]])
    era5_k = np.array([[250.0, 300.0], [274.0, 300.0]])     # only [1, 0] is used (truth NaN there)
    m, src = skill.thawed_mask(truth_c, era5_k)
    np.testing.assert_array_equal(m, [[True, False], [True, False]])   # 0 C is frozen
    assert src == "truth soil_temperature + ERA5-Land stl1"
    m, src = skill.thawed_mask(truth_c)
    np.testing.assert_array_equal(m, [[True, False], [True, False]])   # unknown counts as thawed
    assert src == "truth soil_temperature"
    m, src = skill.thawed_mask(None, np.array([273.0, 273.2]))
    np.testing.assert_array_equal(m, [False, True])
    assert src == "ERA5-Land stl1"
    with pytest.raises(InputError, match="soil temperature"):
        skill.thawed_mask(None, None)


def test_to_celsius():
    np.testing.assert_allclose(skill.to_celsius([273.15, 283.15], "K"), [0.0, 10.0])
    np.testing.assert_allclose(skill.to_celsius([1.5], "degC"), [1.5])


# ----------------------------------------------------------------------------- fine scale
def _up(f):        # 4 x 4 -> 2 x 2 block means (NaN-aware), a hand-checkable aggregation
    f = np.asarray(f, float)
    b = f.reshape(f.shape[:-2] + (2, 2, 2, 2))     # (..., block row, row in block, block col, col in block)
    return np.nanmean(b, axis=(-3, -1))


def _down(c):      # 2 x 2 -> 4 x 4, each fine cell takes its block's value
    return np.repeat(np.repeat(np.asarray(c), 2, axis=-2), 2, axis=-1)


def test_coarse_parent_hand_case():
    f = np.arange(16, dtype=float).reshape(4, 4)
    # block (0,0) holds 0,1,4,5 -> mean 2.5; (0,1): 2,3,6,7 -> 4.5; (1,0): 10.5; (1,1): 12.5
    expect = np.array([[2.5, 2.5, 4.5, 4.5], [2.5, 2.5, 4.5, 4.5],
                       [10.5, 10.5, 12.5, 12.5], [10.5, 10.5, 12.5, 12.5]])
    np.testing.assert_allclose(skill.coarse_parent(f, _up, _down), expect)
    f[0, 0] = np.nan                       # NaN cells leave the mean and get no parent
    p = skill.coarse_parent(f, _up, _down)
    assert np.isnan(p[0, 0]) and p[0, 1] == pytest.approx((1 + 4 + 5) / 3)


def test_fine_scale_r_against_explicit_loops(rng):
    T = 30
    truth = 0.2 + 0.05 * rng.standard_normal((T, 4, 4))
    prod = truth + 0.03 * rng.standard_normal((T, 4, 4))
    prod[3, 1, 2] = np.nan                 # masked jointly: the truth's parent loses that cell too
    res = skill.fine_scale_r(prod, truth, _up, _down)
    # independent: loops over steps and blocks
    fp = np.full((T, 4, 4), np.nan)
    ft = np.full((T, 4, 4), np.nan)
    for t in range(T):
        for bi in range(2):
            for bj in range(2):
                sl = (t, slice(2 * bi, 2 * bi + 2), slice(2 * bj, 2 * bj + 2))
                ok = np.isfinite(prod[sl]) & np.isfinite(truth[sl])
                pm = prod[sl][ok].mean()
                tm = truth[sl][ok].mean()
                fp[sl] = np.where(ok, prod[sl] - pm, np.nan)
                ft[sl] = np.where(ok, truth[sl] - tm, np.nan)
    for i in range(4):
        for j in range(4):
            ok = np.isfinite(fp[:, i, j])
            assert res["fine_R_map"][i, j] == pytest.approx(stats.pearsonr(fp[ok, i, j], ft[ok, i, j])[0], abs=1e-12)
    ok = np.isfinite(fp)
    assert res["fine_R_pooled"] == pytest.approx(stats.pearsonr(fp[ok], ft[ok])[0], abs=1e-12)
    assert res["fine_R"] == pytest.approx(np.mean(res["fine_R_map"]), abs=1e-12)
    assert res["fine_N"] == ok.sum()


def test_fine_scale_r_limits(rng):
    truth = 0.2 + 0.05 * rng.standard_normal((20, 4, 4))
    assert skill.fine_scale_r(truth, truth, _up, _down)["fine_R_pooled"] == pytest.approx(1.0)
    # a product that is only the coarse field has no fine-scale part: no correlation, NaN
    coarse = skill.coarse_parent(truth, _up, _down)
    assert np.isnan(skill.fine_scale_r(coarse, truth, _up, _down)["fine_R_pooled"])


def test_fine_scale_r_real_regridders_recover_identity(rng):
    from model.grids import tp_mask

    m = np.asarray(tp_mask("TP10"))
    t = np.where(m, 0.2 + 0.05 * rng.standard_normal((12, 150, 320)), np.nan)
    res = skill.fine_scale_r(t + 0.01, t)              # a bias does not change the fine part
    assert res["fine_R_pooled"] == pytest.approx(1.0, abs=1e-9)


# ----------------------------------------------------------------------------- pooled, per cell
def test_pooled_metrics_against_scipy_and_pytesmo(rng):
    from pytesmo.metrics import ubrmsd

    y = 0.2 + 0.05 * rng.standard_normal((40, 3, 3))
    x = y + 0.02 + 0.03 * rng.standard_normal(y.shape)
    x[0, 0, 0] = np.nan
    valid = np.ones(y.shape, bool)
    valid[5] = False
    res = skill.pooled_metrics(x, y, valid)
    ok = np.isfinite(x) & valid
    assert res["N"] == ok.sum()
    assert res["R"] == pytest.approx(stats.pearsonr(x[ok], y[ok])[0], abs=1e-12)
    assert res["bias"] == pytest.approx(np.mean(x[ok] - y[ok]), abs=1e-12)
    assert res["ubRMSE"] == pytest.approx(ubrmsd(x[ok], y[ok]), abs=1e-12)


def test_cell_scores_equal_metric_map(rng):
    import pandas as pd
    import xarray as xr

    from model.validation.metric_maps import map_summary, metric_map

    y = 0.2 + 0.05 * rng.standard_normal((30, 3, 4))
    x = y + 0.03 * rng.standard_normal(y.shape)
    x[:25, 0, 0] = np.nan                        # a cell with too few pairs
    t = pd.date_range("2017-01-01", periods=30, freq="3h")
    da = lambda v: xr.DataArray(v, dims=("time", "lat", "lon"), coords={"time": t})  # noqa: E731
    ref = map_summary(metric_map(da(x), da(y), metrics=("R", "bias", "ubRMSE")))
    cs = skill.cell_scores(x, y)
    for k in ("R", "bias", "ubRMSE", "n_cells"):
        assert cs[k] == pytest.approx(ref[k], abs=1e-12), k


# ----------------------------------------------------------------------------- seeds, temporal
def test_seed_summary_and_relative_change():
    s = skill.seed_summary([0.5, 0.7, np.nan, 0.6])
    assert s == {"mean": pytest.approx(0.6), "sd": pytest.approx(0.1), "n": 3}
    assert np.isnan(skill.seed_summary([0.4])["sd"])
    assert skill.relative_change(0.80, 0.76) == pytest.approx(-0.05)
    assert skill.relative_change(-0.02, -0.01) == pytest.approx(0.5)
    assert np.isnan(skill.relative_change(0.0, 0.3))


# ----------------------------------------------------------------------------- bootstrap
def test_seed_paired_difference_hand_case_and_scipy(rng):
    # hand case: differences 0.02, 0.00, 0.04 -> mean 0.02, sd 0.02, t = 0.02 / (0.02 / sqrt 3) = sqrt 3
    a, b = {0: 0.72, 1: 0.70, 2: 0.74, 7: 0.9}, {0: 0.70, 1: 0.70, 2: 0.70}
    r = skill.seed_paired_difference(a, b)
    assert r["n"] == 3 and r["wins"] == 2                    # seed 7 has no partner; seed 1 is a tie
    assert r["d"] == pytest.approx(0.02) and r["sd"] == pytest.approx(0.02)
    assert r["p"] == pytest.approx(2 * stats.t.sf(np.sqrt(3), 2))   # 0.2254
    assert r["p"] == pytest.approx(0.2254, abs=1e-4)
    # lower is better (ubRMSE): the wins flip, the test does not
    r2 = skill.seed_paired_difference(a, b, higher_is_better=False)
    assert r2["wins"] == 0 and r2["p"] == pytest.approx(r["p"])
    # random pairs against scipy's paired t test
    x, y = rng.normal(0.7, 0.01, 5), rng.normal(0.69, 0.01, 5)
    r = skill.seed_paired_difference(dict(enumerate(x)), dict(enumerate(y)))
    assert r["p"] == pytest.approx(stats.ttest_rel(x, y).pvalue, rel=1e-9)
    # one shared seed: no test; NaN seeds are dropped
    r = skill.seed_paired_difference({0: 0.5, 1: np.nan}, {0: 0.4, 1: 0.3})
    assert r["n"] == 1 and np.isnan(r["p"]) and np.isnan(r["sd"]) and r["d"] == pytest.approx(0.1)


def test_block_index_three_day_blocks():
    t = np.array(["2017-07-01T00", "2017-07-03T21", "2017-07-04T00", "2017-07-09T12"], "datetime64[ns]")
    np.testing.assert_array_equal(skill.block_index(t, 3.0), [0, 0, 1, 2])


def _naive_bootstrap(a, b, y, blocks, draws, min_n):
    """Resample whole blocks by explicit concatenation and score with cell_scores."""
    out_r, out_u = [], []
    for d in draws:
        idx = np.concatenate([np.nonzero(blocks == k)[0] for k in d])
        sa = skill.cell_scores(a[idx], y[idx], min_n=min_n)
        sb = skill.cell_scores(b[idx], y[idx], min_n=min_n)
        out_r.append(sa["R"] - sb["R"])
        out_u.append(sa["ubRMSE"] - sb["ubRMSE"])
    return np.array(out_r), np.array(out_u)


def test_block_bootstrap_matches_an_explicit_resampling(rng):
    T, C = 48, 5
    times = np.datetime64("2017-07-01", "ns") + np.arange(T) * np.timedelta64(6, "h")   # 12 days: 4 blocks
    y = 0.2 + 0.05 * rng.standard_normal((T, C))
    a = y + 0.02 * rng.standard_normal((T, C))
    b = y + 0.04 * rng.standard_normal((T, C))
    res = skill.block_bootstrap_difference(a, b, y, times, n_resamples=200, seed=7, min_n=4)
    blocks = skill.block_index(times, 3.0)
    nb = blocks.max() + 1
    g = np.random.default_rng(7)
    draws = np.concatenate([g.integers(0, nb, size=(100, nb)) for _ in range(2)])
    dr, du = _naive_bootstrap(a, b, y, blocks, draws, 4)
    assert res["n_blocks"] == 4
    assert res["d_R"] == pytest.approx(skill.cell_scores(a, y, min_n=4)["R"] - skill.cell_scores(b, y, min_n=4)["R"])
    lo, hi = np.percentile(dr, [5, 95])
    assert res["d_R_low"] == pytest.approx(lo, abs=1e-10) and res["d_R_high"] == pytest.approx(hi, abs=1e-10)
    lo, hi = np.percentile(du, [5, 95])
    assert res["d_ubRMSE_low"] == pytest.approx(lo, abs=1e-10) and res["d_ubRMSE_high"] == pytest.approx(hi, abs=1e-10)
    assert res["p_R"] == pytest.approx(min(1, 2 * min(np.mean(dr <= 0), np.mean(dr >= 0))))
    # a is clearly better than b: R higher, ubRMSE lower, both significant
    assert res["d_R_low"] > 0 and res["d_ubRMSE_high"] < 0 and res["p_ubRMSE"] < 0.05


def test_block_bootstrap_identical_methods_and_seed_lists(rng):
    T, C = 40, 4
    times = np.datetime64("2017-07-01", "ns") + np.arange(T) * np.timedelta64(3, "h")
    y = rng.random((T, C))
    a = y + 0.1 * rng.random((T, C))
    same = skill.block_bootstrap_difference(a, a.copy(), y, times, n_resamples=1000, min_n=4)
    assert same["d_R"] == 0 and same["d_R_low"] == 0 and same["d_R_high"] == 0 and same["p_R"] == 1.0
    b = y + 0.2 * rng.random((T, C))
    one = skill.block_bootstrap_difference(a, b, y, times, n_resamples=300, seed=1, min_n=4)
    two = skill.block_bootstrap_difference([a, a], [b], y, times, n_resamples=300, seed=1, min_n=4)
    for k in ("d_R", "d_R_low", "d_R_high", "d_ubRMSE_low", "p_ubRMSE"):
        assert one[k] == pytest.approx(two[k], abs=1e-12)
    with pytest.raises(InputError, match="shapes differ"):
        skill.block_bootstrap_difference(a, b[:-1], y, times)


def test_block_bootstrap_memo_reuses_the_baseline_only_on_the_same_mask(rng):
    """Several methods against one baseline share a memo of the baseline's resampled scores:
    the results equal those without it, whether a method's cell-step mask equals an earlier
    one (reused) or not (computed anew)."""
    T, C = 48, 6
    times = np.datetime64("2017-07-01", "ns") + np.arange(T) * np.timedelta64(6, "h")
    y = 0.2 + 0.05 * rng.standard_normal((T, C))
    base = y + 0.03 * rng.standard_normal((T, C))
    methods = {"a": y + 0.02 * rng.standard_normal((T, C)), "b": y + 0.04 * rng.standard_normal((T, C))}
    gappy = y + 0.02 * rng.standard_normal((T, C))
    gappy[::5, 2] = np.nan                      # another mask: the baseline's scores differ
    methods["gappy"] = gappy
    methods["c"] = y + 0.01 * rng.standard_normal((T, C))
    memo: dict = {}
    for name, m in methods.items():
        with_memo = skill.block_bootstrap_difference(m, base, y, times, n_resamples=300, seed=3, min_n=4, memo=memo)
        alone = skill.block_bootstrap_difference(m, base, y, times, n_resamples=300, seed=3, min_n=4)
        assert with_memo == alone, name
    assert len(memo) == 2                      # the full mask and the gappy one
