"""No-learning references on hand-made data: bilinear interpolation and CDF matching."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from model.errors import InputError
from model.networks.checkpoint import load_checkpoint, save_checkpoint
from model.networks.reference import ERA5CDFMatching, SMAPBilinear, nanquantile_columns


def linear(lat, lon):
    return 0.1 + 0.01 * lat[:, None] - 0.002 * lon[None, :]


def test_bilinear_exact_on_linear_field_irregular_descending():
    lat = np.array([40.0, 37.5, 36.0, 33.2, 30.0, 27.1])     # descending, irregular (EASE-like)
    lon = np.array([80.0, 83.0, 86.0, 89.0, 92.0])
    field = linear(lat, lon)
    tlat = np.linspace(27.2, 39.9, 40)
    tlon = np.linspace(80.05, 91.95, 50)
    out = SMAPBilinear().predict(field, lat, lon, tlat, tlon)
    assert out.shape == (40, 50) and out.dtype == np.float64      # float64 in, float64 out
    np.testing.assert_allclose(out, linear(tlat, tlon), atol=1e-6)
    # at the coarse centres it returns the coarse values
    np.testing.assert_allclose(SMAPBilinear().predict(field, lat, lon, lat, lon), field, atol=1e-6)
    out32 = SMAPBilinear().predict(field.astype(np.float32), lat, lon, tlat, tlon)
    assert out32.dtype == np.float32
    np.testing.assert_allclose(out32, linear(tlat, tlon), atol=1e-6)


def test_bilinear_hand_computed_and_leading_dims():
    lat, lon = np.array([0.0, 1.0]), np.array([0.0, 2.0])
    f = np.array([[[1.0, 3.0], [5.0, 7.0]], [[0.0, 0.0], [0.0, 4.0]]])   # (time, y, x)
    out = SMAPBilinear().predict(f, lat, lon, np.array([0.25]), np.array([1.5]))
    # w_lat(upper) = 0.25, w_lon(upper) = 0.75
    exp0 = 0.75 * (0.25 * 1 + 0.75 * 3) + 0.25 * (0.25 * 5 + 0.75 * 7)
    exp1 = 0.25 * 0.75 * 4
    np.testing.assert_allclose(out[:, 0, 0], [exp0, exp1])


def test_bilinear_nan_aware():
    lat, lon = np.array([0.0, 1.0]), np.array([0.0, 1.0])
    f = np.array([[0.2, np.nan], [0.4, 0.6]])
    m = SMAPBilinear()
    # weights (0.5, 0.5) in both directions: NaN corner dropped, others renormalised
    np.testing.assert_allclose(m.predict(f, lat, lon, [0.5], [0.5]), [[(0.2 + 0.4 + 0.6) / 3]])
    # at the NaN cell's own centre every positive weight is missing -> NaN
    assert np.isnan(m.predict(f, lat, lon, [0.0], [1.0]))[0, 0]
    assert np.isnan(m.predict(np.full((2, 2), np.nan), lat, lon, [0.5], [0.5]))[0, 0]


def test_bilinear_edges():
    lat, lon = np.array([0.0, 1.0, 2.0]), np.array([0.0, 1.0])
    f = np.arange(6.0).reshape(3, 2)
    out = SMAPBilinear().predict(f, lat, lon, np.array([-0.4, -0.6, 2.3]), np.array([0.0]))
    assert out[0, 0] == 0.0              # within half a cell: edge value
    assert np.isnan(out[1, 0])           # beyond: missing
    assert out[2, 0] == 4.0
    with pytest.raises(InputError, match=r"expected smap_coarse \(..., y, x\)"):
        SMAPBilinear().predict(f.T, lat, lon, lat, lon)
    with pytest.raises(InputError, match="strictly monotonic"):
        SMAPBilinear().predict(f, np.array([0.0, 2.0, 1.0]), lon, lat, lon)


def test_cdf_matching_maps_quantiles():
    rng = np.random.default_rng(0)
    n_t = 400
    era5 = rng.uniform(0.1, 0.4, size=(n_t, 2, 3))
    smap = 0.02 + 1.5 * era5 ** 2                          # monotonic, nonlinear
    smap = np.take_along_axis(smap, rng.permuted(np.argsort(smap, 0), axis=0), 0)  # shuffle time
    m = ERA5CDFMatching(n_quantiles=21).fit(era5, smap)
    assert (m.methods == 0).all()
    levels = np.linspace(0, 1, 21)
    qe = np.quantile(era5, levels, axis=0)                 # (21, 2, 3)
    qs = np.quantile(smap, levels, axis=0)
    np.testing.assert_allclose(m.apply(qe.astype(np.float64)), qs, atol=1e-12)
    # the marginal distribution of the mapped series matches SMAP's
    mapped = m.apply(era5)
    np.testing.assert_allclose(np.quantile(mapped, [0.1, 0.5, 0.9], axis=0),
                               np.quantile(smap, [0.1, 0.5, 0.9], axis=0), atol=5e-3)
    # monotonic continuation beyond the fitted range; NaN stays NaN
    x = np.array([0.05, 0.45, np.nan])[:, None, None] * np.ones((3, 2, 3))
    y = m.apply(x)
    assert (y[0] < qs[0]).all() and (y[1] > qs[-1]).all() and np.isnan(y[2]).all()


def test_cdf_fallbacks_and_cell_index(tmp_path):
    rng = np.random.default_rng(1)
    era5 = rng.uniform(0.1, 0.3, size=(100, 3))
    smap = 2.0 * era5 + 0.05
    smap[10:, 1] = np.nan          # 10 pairs: mean/std matching
    smap[2:, 2] = np.nan           # 2 pairs: pooled CDF
    m = ERA5CDFMatching(min_pairs=30, min_pairs_std=3).fit(era5, smap)
    assert m.methods.tolist() == [0, 1, 2]
    ok = slice(0, 10)
    mu_e, sd_e = era5[ok, 1].mean(), era5[ok, 1].std()
    mu_s, sd_s = smap[ok, 1].mean(), smap[ok, 1].std()
    v = np.array([[0.15, 0.2, 0.25]])
    np.testing.assert_allclose(m.apply(v)[0, 1], mu_s + (0.2 - mu_e) * sd_s / sd_e)
    # a finer grid: each value names its fitted cell (-1 = outside)
    idx = np.array([[0, 0, 1], [1, 2, -1]])
    fine = np.full((5, 2, 3), 0.2)
    out = m.apply(fine, cell_index=idx)
    assert out.shape == (5, 2, 3) and np.isnan(out[:, 1, 2]).all()
    np.testing.assert_allclose(out[:, 0, 2], m.apply(np.full((1, 3), 0.2))[0, 1])
    # checkpoint round trip
    again, _ = load_checkpoint(save_checkpoint(tmp_path / "cdf.pt", m), name="era5_cdf")
    np.testing.assert_array_equal(again.apply(era5), m.apply(era5))
    with pytest.raises(InputError, match="not fitted"):
        ERA5CDFMatching().apply(era5)
    with pytest.raises(InputError, match="valid pairs"):
        ERA5CDFMatching().fit(era5, np.full_like(era5, np.nan))


def test_nanquantile_columns_equals_numpy_bit_for_bit():
    """The CDF fit's one-sort quantiles are numpy's nanquantile ("linear"), exactly: NaN gaps,
    all-NaN columns, one value, ties and infinities included."""
    rng = np.random.default_rng(3)
    a = rng.gamma(2.0, 0.1, (400, 60))
    a[rng.random(a.shape) < 0.45] = np.nan
    a[:, 0] = np.nan                     # all missing
    a[:, 1] = np.nan
    a[7, 1] = 0.25                       # one value
    a[:, 2] = 0.3                        # ties only
    a[3, 3], a[9, 3] = np.inf, -np.inf   # infinities count as values, as in numpy
    levels = np.linspace(0.0, 1.0, 101)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        ref = np.nanquantile(a, levels, axis=0)
    got = nanquantile_columns(a, levels)
    assert got.shape == ref.shape == (101, 60)
    assert np.array_equal(got, ref, equal_nan=True)
    assert np.isnan(got[:, 0]).all() and (got[:, 1] == 0.25).all()
