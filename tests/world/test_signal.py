"""The world's fine-scale controls and the oracle's building blocks, on hand-made cases."""

from __future__ import annotations

import numpy as np
import pytest

from model.world import SIZES, get_config


def test_twi_d8_on_a_tilted_valley_accumulates_down_the_slope():
    """A V-shaped valley tilted north: water runs to the centre column, then south; the TWI is
    highest at the outlet, and the accumulated area equals the number of upstream cells."""
    from model.world.static import topographic_wetness_index

    ny, nx = 6, 5
    i, j = np.mgrid[0:ny, 0:nx]
    z = 1000.0 + 50.0 * np.abs(j - 2) + 20.0 * i        # rises to the north (row index) and sides
    slope = np.full(z.shape, 1.0)
    lat = np.full(z.shape, 0.0)                          # dx = dy = 11.1 km
    twi = topographic_wetness_index(z, slope, lat)
    a_cell = 11.1e3
    # the outlet (row 0, centre column) drains all 30 cells: TWI = ln(30 * a / tan 1 deg)
    assert twi[0, 2] == pytest.approx(np.log(30 * a_cell / np.tan(np.deg2rad(1.0))), rel=1e-5)
    # a ridge-top corner drains only itself
    assert twi[ny - 1, 0] == pytest.approx(np.log(a_cell / np.tan(np.deg2rad(1.0))), rel=1e-5)
    assert np.argmax(twi) == 2                           # flat index of (0, 2)
    # NaN stays NaN (outside the DEM) and does not receive water
    z2 = z.copy()
    z2[0, 2] = np.nan
    t2 = topographic_wetness_index(z2, slope, lat)
    assert np.isnan(t2[0, 2]) and np.isfinite(t2[1, 2])


def test_parent36_and_fine_part():
    """The 36 km parent is the area-overlap mean over the M36 cell holding the 10 km cell:
    for the field "longitude" it is the M36 cell's centre longitude (EASE-2 cells are uniform
    in longitude); a constant field has no fine-scale part."""
    from model.grids import get_grid, tp10
    from model.world.signal import _parent_index, fine, parent36

    g, g36 = tp10(), get_grid("M36")
    r, c = _parent_index(g.shape)
    lon2 = np.broadcast_to(g.lon[None, :], g.shape).astype(np.float32)
    p = parent36(lon2, (r, c))
    lat2 = np.broadcast_to(g.lat[:, None], g.shape)
    inner = (lon2 > 73.6) & (lon2 < 104.4) & (lat2 > 25.6) & (lat2 < 39.4)   # M36 cells inside TP10
    ok = (r >= 0) & (c >= 0) & np.isfinite(p) & inner
    assert ok.sum() > 0.9 * inner.sum()
    np.testing.assert_allclose(p[ok], np.asarray(g36.lon)[c[ok]], atol=0.01)
    f = fine(np.ones(g.shape, np.float32))
    assert np.nanmax(np.abs(f)) < 1e-5


def test_corr_per_cell_against_numpy():
    from model.world.signal import _corr_per_cell

    rng = np.random.default_rng(0)
    a = rng.standard_normal((50, 3))
    b = a * [1, -1, 0] + rng.standard_normal((50, 3)) * [0.5, 0.5, 1]
    b[:5, 0] = np.nan
    r = _corr_per_cell(a, b)
    assert r[0] == pytest.approx(np.corrcoef(a[5:, 0], b[5:, 0])[0, 1])
    assert r[1] == pytest.approx(np.corrcoef(a[:, 1], b[:, 1])[0, 1])
    assert np.isnan(_corr_per_cell(a[:8], b[:8])).all()         # fewer than 10 pairs


def test_season2_is_the_papers_year_split():
    c = get_config("season2")
    assert "season2" in SIZES
    tr0, tr1 = map(np.datetime64, c.train)
    te0, te1 = map(np.datetime64, c.test)
    assert str(tr0) == "2016-04-01" and str(tr1) == "2016-10-31"
    assert str(te0) == "2017-04-01" and str(te1) == "2017-10-31"
    assert np.datetime64(c.start) <= tr0 and te1 <= np.datetime64(c.end)
    assert np.datetime64(c.sim_start) < np.datetime64(c.start)          # spin-up
    assert c.history is not None and np.datetime64(c.history[1]) < tr0


def test_static_controls_reach_the_user_with_errors():
    """The truth's 10 km controls (texture, organic matter, topographic wetness) are in the
    user's static layers, imperfectly: correlated with the truth but not equal to it. The
    ERA5-Land-like model's own soil map carries 10 km detail with independent errors."""
    from model.world.signal import fine
    from model.world.simulate import era_params, truth_params
    from model.world.static import build_static, user_static_dataset

    cfg = get_config("tiny")
    st = build_static(cfg, 42)
    user = user_static_dataset(st, 42)
    sim = st.sim_mask

    def r(a, b):
        ok = sim & np.isfinite(a) & np.isfinite(b)
        return np.corrcoef(a[ok], b[ok])[0, 1]

    # user maps: correlated, not exact
    for true, mapped in (("sand", "sand_fraction"), ("organic", "organic_fraction")):
        rr = r(getattr(st, true), user[mapped].values)
        assert 0.5 < rr < 0.99, (true, rr)
    rw = r(st.wetness, user["topographic_wetness_index"].values)
    assert 0.5 < rw < 0.95, rw                       # unmapped seepage features are not in the DEM
    assert {"wilting_point", "topographic_wetness_index"} <= set(user.data_vars)
    # the truth's fine-scale porosity is partly known to the ERA5-Land-like model
    tp, ep = truth_params(st), era_params(st, 42)
    ft = fine(st.to_grid(tp.soil1.theta_s))
    fe = fine(st.to_grid(ep.soil1.theta_s))
    assert 0.2 < r(ft, fe) < 0.9
