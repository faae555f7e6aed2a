import numpy as np
import pytest
import xarray as xr

from model.grids import Regridder, ease2_grid, get_grid, tp10, tp_mask
from model.grids import ease2


def test_tp10_shape_and_centres():
    g = tp10()
    assert g.shape == (150, 320)
    assert g.lat[0] == pytest.approx(25.05) and g.lat[-1] == pytest.approx(39.95)
    assert g.lon[0] == pytest.approx(73.05) and g.lon[-1] == pytest.approx(104.95)


def test_m36_centres_match_nsidc(shared):
    ds = xr.open_dataset(shared / "smap" / "NSIDC0772_LatLon_EASE2_M36km_v1.0.nc")
    lat, lon = ease2.row_col_centres("M36")
    assert lat.shape == (406,) and lon.shape == (964,)
    np.testing.assert_allclose(ds.latitude.values, np.broadcast_to(lat[:, None], (406, 964)), atol=1e-6)
    np.testing.assert_allclose(ds.longitude.values, np.broadcast_to(lon[None, :], (406, 964)), atol=1e-6)
    g = ease2_grid("M36")
    np.testing.assert_allclose(g.lat, ds.latitude.values[g.row_offset:g.row_offset + g.shape[0], 0], atol=1e-6)


def test_ease2_roundtrip_and_m09_nesting():
    lat = np.array([25.3, 31.37, 39.9])
    lon = np.array([73.1, 91.9, 104.8])
    la, lo = ease2.inverse(*ease2.forward(lat, lon))
    np.testing.assert_allclose(la, lat, atol=1e-9)
    np.testing.assert_allclose(lo, lon, atol=1e-9)
    # every M36 edge is an M09 edge (4 x 4 nesting)
    e36, _ = ease2.row_col_edges("M36")
    e09, _ = ease2.row_col_edges("M09")
    np.testing.assert_allclose(e36, e09[::4], atol=1e-9)


def test_equal_area_cells():
    a = get_grid("M36").cell_area_km2()
    assert np.allclose(a, 36.032220840584 ** 2, rtol=1e-6)


def test_locate():
    g = tp10()
    r, c = g.locate([33.8833, 10.0], [102.1333, 90.0])
    assert (r[0], c[0]) == (88, 291)
    assert r[1] == -1 and c[1] == -1
    g36 = get_grid("M36")
    r, c = g36.locate([31.37], [91.87])
    assert g36.lat_bounds[r[0]] >= 31.37 >= g36.lat_bounds[r[0] + 1]


@pytest.mark.parametrize("src,dst", [("TP10", "M36"), ("TP10", "M09"), ("M36", "TP10"), ("M09", "M36")])
def test_regrid_mean_preserving(src, dst, rng):
    rg = Regridder(src, dst, min_coverage=0.0)
    x = rng.random(rg.src.shape)
    out = rg(x)
    # integral over the region both grids cover is preserved: sum(A_dst_covered * out) == sum(A_src * x)
    # restrict to destination cells fully inside the source domain
    full = rg.coverage() > 1 - 1e-9
    a_dst = rg.dst_area
    lhs = np.sum((a_dst * out)[full])
    m = rg.matrix
    w_src = np.asarray(m[full.ravel()].sum(axis=0)).ravel().reshape(rg.src.shape)
    rhs = np.sum(w_src * x)
    assert lhs == pytest.approx(rhs, rel=1e-10)


def test_regrid_constant_and_nan_handling():
    rg = Regridder("TP10", "M36")
    x = np.full((2, 150, 320), 0.3, dtype=np.float32)
    x[0, :, :160] = np.nan
    out = rg(x)
    assert out.dtype == np.float32
    vals = out[np.isfinite(out)]
    np.testing.assert_allclose(vals, 0.3, rtol=1e-6)
    assert np.isnan(out[0]).sum() > np.isnan(out[1]).sum()


def test_regrid_xarray_and_dask():
    g = tp10()
    da = xr.DataArray(np.ones((4, 150, 320), dtype="float32"), dims=("time", "lat", "lon"),
                      coords={"time": np.arange(4), **g.coords()}).chunk({"time": 2})
    out = Regridder("TP10", "M09")(da)
    assert out.dims == ("time", "y", "x")
    assert "lat" in out.coords and out.lat.dims == ("y",)
    assert float(out.mean().compute()) == pytest.approx(1.0)


def test_tp_mask_contains_stations():
    m = tp_mask("TP10")
    g = tp10()
    assert 25000 < m.sum() < 32000
    for lat, lon in [(33.8833, 102.1333), (31.37, 91.87), (32.5, 80.1)]:  # Maqu, Naqu, Ngari
        r, c = g.locate([lat], [lon])
        assert m[r[0], c[0]]
    assert tp_mask("M36").sum() > 1500


def test_regrid_wrong_shape_message():
    with pytest.raises(ValueError, match="expected"):
        Regridder("TP10", "M36")(np.zeros((10, 10)))


def test_ease2_matches_pyproj_epsg6933():
    """Our EASE-Grid 2.0 projection and M36/M09 cell centres against PROJ (EPSG:6933)."""
    pyproj = pytest.importorskip("pyproj")
    tr = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)
    rng = np.random.default_rng(3)
    lat, lon = rng.uniform(-80, 80, 500), rng.uniform(-179.9, 179.9, 500)
    x, y = ease2.forward(lat, lon)
    px, py = tr.transform(lon, lat)
    np.testing.assert_allclose(x, px, atol=1e-3)          # millimetres
    np.testing.assert_allclose(y, py, atol=1e-3)
    for name, size in (("M36", 36032.220840584), ("M09", 9008.055210146)):
        g = get_grid(name)
        # the grid's cell centres are PROJ's inverse of the cell centres in metres
        rows = g.row_offset + np.arange(g.shape[0])
        cols = g.col_offset + np.arange(g.shape[1])
        _, x_min, y_max, nrows, ncols = ease2.extent(name)
        assert ease2.extent(name)[0] == pytest.approx(size, rel=1e-12)
        clon, clat = tr.transform(x_min + (cols + 0.5) * size, np.zeros(cols.size), direction="INVERSE")
        _, rlat = tr.transform(np.zeros(rows.size), y_max - (rows + 0.5) * size, direction="INVERSE")
        np.testing.assert_allclose(g.lon, clon, atol=1e-9)
        np.testing.assert_allclose(g.lat, rlat, atol=1e-7)


def test_regrid_weights_are_hand_computed_overlaps():
    """One M36 cell's weights from TP10: overlap areas computed independently, in PROJ's
    equal-area metres (EPSG:6933): both grids are rectangles there (x ~ lon, y ~ q(lat))."""
    pyproj = pytest.importorskip("pyproj")
    tr = pyproj.Transformer.from_crs("EPSG:4326", "EPSG:6933", always_xy=True)
    rg = Regridder("TP10", "M36", min_coverage=0.0)
    g36, g10 = get_grid("M36"), tp10()
    r, c = g36.locate([33.0], [95.0])
    r, c = int(r[0]), int(c[0])
    size, x_min, y_max, _, _ = ease2.extent("M36")
    # the M36 cell in metres, from its global row/col
    x0 = x_min + (g36.col_offset + c) * size
    y1 = y_max - (g36.row_offset + r) * size
    cell = (x0, x0 + size, y1 - size, y1)
    # every TP10 cell in metres (PROJ), overlap rectangle areas
    expected = np.zeros(g10.shape)
    xb, _ = tr.transform(g10.lon_bounds, np.zeros_like(g10.lon_bounds))
    _, yb = tr.transform(np.zeros_like(g10.lat_bounds), g10.lat_bounds)
    for i in range(g10.shape[0]):
        dy = min(cell[3], max(yb[i], yb[i + 1])) - max(cell[2], min(yb[i], yb[i + 1]))
        if dy <= 0:
            continue
        for j in range(g10.shape[1]):
            dx = min(cell[1], max(xb[j], xb[j + 1])) - max(cell[0], min(xb[j], xb[j + 1]))
            if dx > 0:
                expected[i, j] = dx * dy
    assert (expected > 0).sum() >= 9 and expected.sum() == pytest.approx(size * size, rel=1e-9)
    w = np.asarray(rg.matrix[r * g36.shape[1] + c].todense()).reshape(g10.shape)
    # to 1e-5 relative: the grid's edges are latitudes (degrees) converted back, PROJ's are metres
    np.testing.assert_allclose(w / w.sum(), expected / expected.sum(), rtol=1e-5, atol=1e-12)
    x = np.random.default_rng(0).random(g10.shape)
    assert rg(x)[r, c] == pytest.approx((expected * x).sum() / expected.sum(), rel=1e-6)


@pytest.mark.parametrize("src,dst", [("TP10", "M09"), ("TP10", "M36"), ("M36", "TP10"), ("M09", "TP10")])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regrid_kernel_equals_the_dense_overlap_products(src, dst, dtype, rng):
    """The compiled banded kernel (issue 16) against the formula written out with the dense
    1-D overlap matrices: out = W_lat (m x) W_lon^T / W_lat m W_lon^T where the valid cover
    reaches ``min_coverage`` (m: finite values), on a stack with NaN holes and a leading
    (2, 3) shape; a slice of the stack equals the same field regridded alone."""
    rg = Regridder(src, dst)
    x = rng.random((2, 3) + rg.src.shape).astype(dtype)
    x[rng.random(x.shape) < 0.2] = np.nan
    x[0, 1, : rg.src.shape[0] // 2] = np.nan           # a half-empty field: coverage cut-off
    got = rg.apply(x)
    m = np.isfinite(x)
    num = rg.w_lat @ np.where(m, x, 0).astype(np.float64) @ rg.w_lon.T
    den = rg.w_lat @ m.astype(np.float64) @ rg.w_lon.T
    with np.errstate(invalid="ignore", divide="ignore"):
        want = np.where(den / rg.dst_area >= rg.min_coverage - 1e-9, num / den, np.nan)
    assert got.dtype == dtype and got.shape == (2, 3) + rg.dst.shape
    assert np.array_equal(np.isnan(got), np.isnan(want))
    tol = 2e-6 if dtype == np.float32 else 1e-12
    assert np.nanmax(np.abs(got - want)) < tol
    np.testing.assert_array_equal(rg.apply(x[1, 2]), got[1, 2])
