"""Exact area-overlap (first-order conservative) regridding between rectilinear grids.

For two grids that are rectilinear in latitude/longitude, the area on the ellipsoid shared by
destination cell (i, j) and source cell (k, l) factorises::

    A_ijkl = R_a^2 * |[s_i] ∩ [s_k]| * |[lon_j] ∩ [lon_l]|

with ``s = sin(authalic latitude)`` (area is linear in it) and longitudes in radians. The full
weight matrix is therefore the Kronecker product of two small 1-D overlap matrices; we keep it
in that form (applied as two matrix products, fast) and expose the sparse Kronecker product
as :attr:`Regridder.matrix`.

The destination value is the area-weighted mean of the *valid* source values it overlaps::

    out_ij = sum_kl A_ijkl m_kl x_kl / sum_kl A_ijkl m_kl

which preserves the area-weighted mean (the integral) over any region tiled by destination
cells that the source covers. Cells whose valid covered fraction is below ``min_coverage``
are NaN. The same operator aggregates (TP10 -> M36) and disaggregates (M36 -> TP10).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache

import numpy as np
import scipy.sparse as sp
import xarray as xr

from ..machine import kernel_threads
from . import ease2
from .core import Grid, get_grid


def _overlap_1d(dst_b: np.ndarray, src_b: np.ndarray) -> np.ndarray:
    """Overlap lengths (n_dst, n_src) of intervals given by edge arrays (any orientation)."""
    d_lo = np.minimum(dst_b[:-1], dst_b[1:])[:, None]
    d_hi = np.maximum(dst_b[:-1], dst_b[1:])[:, None]
    s_lo = np.minimum(src_b[:-1], src_b[1:])[None, :]
    s_hi = np.maximum(src_b[:-1], src_b[1:])[None, :]
    return np.clip(np.minimum(d_hi, s_hi) - np.maximum(d_lo, s_lo), 0.0, None)


class Regridder:
    """Area-overlap operator from grid ``src`` to grid ``dst``.

    Parameters
    ----------
    src, dst : Grid or str
        Source and destination grids (or names: ``"TP10"``, ``"M36"``, ``"M09"``).
    min_coverage : float
        Smallest fraction of a destination cell's area that valid source data must cover for
        the cell to get a value (default 0.5).

    Examples
    --------
    >>> import numpy as np
    >>> from model.grids import Regridder
    >>> rg = Regridder("TP10", "M36")
    >>> field = np.ones((150, 320))
    >>> bool(np.nanmax(np.abs(rg(field) - 1)) < 1e-12)
    True
    """

    def __init__(self, src: Grid | str, dst: Grid | str, min_coverage: float = 0.5):
        self.src = get_grid(src) if isinstance(src, str) else src
        self.dst = get_grid(dst) if isinstance(dst, str) else dst
        self.min_coverage = float(min_coverage)
        wlat = _overlap_1d(ease2.sin_authalic(self.dst.lat_bounds), ease2.sin_authalic(self.src.lat_bounds))
        wlon = _overlap_1d(np.deg2rad(self.dst.lon_bounds), np.deg2rad(self.src.lon_bounds))
        self.w_lat = wlat  # (ny_dst, ny_src), in sin(beta) units
        self.w_lon = wlon  # (nx_dst, nx_src), in radians
        self.dst_area = np.outer(np.abs(np.diff(ease2.sin_authalic(self.dst.lat_bounds))),
                                 np.abs(np.diff(np.deg2rad(self.dst.lon_bounds))))
        # The 1-D overlap matrices are banded (a cell overlaps a few cells of the other grid):
        # kept sparse, in float64 and float32, so a stack of fields costs a few multiply-adds
        # per cell instead of two dense products per field (issue 16: the dense products were
        # 65 % of training's data preparation).
        self._sp = {np.dtype(np.float64): (sp.csr_matrix(wlat), sp.csr_matrix(wlon)),
                    np.dtype(np.float32): (sp.csr_matrix(wlat.astype(np.float32)),
                                           sp.csr_matrix(wlon.astype(np.float32)))}

    def __repr__(self) -> str:  # pragma: no cover
        return f"Regridder({self.src.name} -> {self.dst.name}, min_coverage={self.min_coverage})"

    @property
    def matrix(self) -> sp.csr_matrix:
        """The full sparse weight matrix (dst.size, src.size) of overlap areas (row-major cells)."""
        return sp.kron(sp.csr_matrix(self.w_lat), sp.csr_matrix(self.w_lon), format="csr")

    def coverage(self, valid: np.ndarray | None = None) -> np.ndarray:
        """Fraction of each destination cell covered by (valid) source cells."""
        m = np.ones(self.src.shape) if valid is None else np.asarray(valid, dtype=float)
        return (self.w_lat @ m @ self.w_lon.T) / self.dst_area

    def apply(self, values: np.ndarray, return_coverage: bool = False):
        """Regrid a numpy array whose last two axes are the source grid's (y, x)."""
        x = np.asarray(values)
        if x.shape[-2:] != self.src.shape:
            raise ValueError(f"expected (..., {self.src.shape[0]}, {self.src.shape[1]}) on grid "
                             f"{self.src.name}, got {x.shape}")
        if x.dtype != np.float32:
            x = x.astype(np.float64, copy=False)
        num, den = self._products(x)
        cov = den / self.dst_area.astype(x.dtype)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = num / den
        out = np.where(cov >= self.min_coverage - 1e-9, out, np.nan).astype(x.dtype, copy=False)
        return (out, cov) if return_coverage else out

    def _products(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``w_lat @ (m x) @ w_lon.T`` and ``w_lat @ m @ w_lon.T`` (``m``: finite values) over
        the last two axes of ``x``: the compiled banded kernel (:mod:`._regrid_kernel`) on
        ranges of fields in threads, else the sparse factors applied to the whole stack."""
        lead = x.shape[:-2]
        ny, nx = self.src.shape
        my, mx = self.dst.shape
        n = int(np.prod(lead, dtype=np.int64))
        xs = np.ascontiguousarray(x.reshape(n, ny, nx))
        wl, wr = self._sp[x.dtype]
        kernel = _kernel()
        if kernel is not None:
            num = np.empty((n, my, mx), x.dtype)
            den = np.empty((n, my, mx), x.dtype)
            args = (xs, wl.indptr, wl.indices, wl.data, wr.indptr, wr.indices, wr.data, num, den)
            k = min(kernel_threads(), max(1, n))
            cuts = np.linspace(0, n, k + 1).astype(int)
            if k == 1:
                kernel.overlap_product(*args, 0, n)
            else:
                with ThreadPoolExecutor(k) as ex:
                    list(ex.map(lambda ab: kernel.overlap_product(*args, ab[0], ab[1]), zip(cuts[:-1], cuts[1:])))
        else:  # pragma: no cover - numba comes with datashader
            valid = np.isfinite(xs)
            num = self._sparse_product(np.where(valid, xs, 0).astype(x.dtype, copy=False), wl, wr)
            den = self._sparse_product(valid.astype(x.dtype), wl, wr)
        return num.reshape(lead + (my, mx)), den.reshape(lead + (my, mx))

    def _sparse_product(self, x: np.ndarray, wl, wr) -> np.ndarray:  # pragma: no cover - no numba
        n, ny, nx = x.shape
        my, mx = self.dst.shape
        a = wl @ np.ascontiguousarray(np.moveaxis(x, 1, 0)).reshape(ny, n * nx)
        b = (wr @ a.reshape(my * n, nx).T).T
        return np.ascontiguousarray(np.moveaxis(b.reshape(my, n, mx), 0, 1))

    __call__ = None  # set below

    def regrid(self, obj):
        """Regrid a numpy array, or an xarray DataArray/Dataset (eager or Dask-backed).

        xarray objects must carry the source grid's dims (``src.dims``); variables without
        both are passed through unchanged.
        """
        if isinstance(obj, np.ndarray):
            return self.apply(obj)
        if isinstance(obj, xr.Dataset):
            out = {}
            for k, v in obj.data_vars.items():
                out[k] = self.regrid(v) if set(self.src.dims) <= set(v.dims) else v
            ds = xr.Dataset(out, attrs=obj.attrs)
            return ds.drop_vars([c for c in ("lat", "lon") if c in ds.coords and c not in self.dst.coords()], errors="ignore").assign_coords(self.dst.coords())
        if not isinstance(obj, xr.DataArray):
            return self.apply(np.asarray(obj))
        sy, sx = self.src.dims
        dy, dx = self.dst.dims
        tmp_y, tmp_x = "__dst_y", "__dst_x"
        res = xr.apply_ufunc(
            self.apply, obj, input_core_dims=[[sy, sx]], output_core_dims=[[tmp_y, tmp_x]],
            dask="parallelized", output_dtypes=[obj.dtype if obj.dtype == np.float32 else np.float64],
            dask_gufunc_kwargs={"output_sizes": {tmp_y: self.dst.shape[0], tmp_x: self.dst.shape[1]}},
            keep_attrs=True,
        )
        drop = [c for c in res.coords if set(res[c].dims) & {sy, sx} or c in ("lat", "lon")]
        res = res.drop_vars(drop, errors="ignore").rename({tmp_y: dy, tmp_x: dx})
        return res.assign_coords(self.dst.coords()).transpose(*[d for d in res.dims if d not in (dy, dx)], dy, dx)


Regridder.__call__ = Regridder.regrid


@lru_cache(maxsize=1)
def _kernel():
    """The compiled kernel module, or None where numba is not installed."""
    try:
        from . import _regrid_kernel  # lazy: model.grids._regrid_kernel imports numba (0.2 s plus compiles)
    except ImportError:  # pragma: no cover - numba comes with datashader
        return None
    return _regrid_kernel


@lru_cache(maxsize=32)
def regridder(src: str, dst: str, min_coverage: float = 0.5) -> Regridder:
    """A cached :class:`Regridder` between named grids (weights computed once per process)."""
    return Regridder(src, dst, min_coverage)
