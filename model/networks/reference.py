"""No-learning reference methods (pure numpy): SMAP bilinear interpolation and ERA5-Land
surface soil moisture rescaled to SMAP by CDF matching.

These are what a user would try first; the learned models must beat them. They work on
physical fields (m3 m-3), not on the normalised batches of the networks.
"""

from __future__ import annotations

import warnings
from typing import Any, Mapping

import numpy as np

from ..errors import InputError
from .recording import ConfigMixin


def _axis(coord: np.ndarray, target: np.ndarray, edge_cells: float, what: str):
    """Bracketing indices, weight of the upper neighbour and validity along one axis.

    ``coord`` must be strictly monotonic (ascending or descending; spacing may be irregular,
    as for EASE-Grid 2.0 latitudes). Targets beyond the outermost centres but within
    ``edge_cells`` of the outer spacing take the edge value; further out they are invalid.
    """
    c = np.asarray(coord, dtype=np.float64).ravel()
    t = np.asarray(target, dtype=np.float64).ravel()
    n = c.size
    if n == 0:
        raise InputError(f"empty {what} coordinate", "pass the coarse grid's 1-D coordinates")
    if n == 1:
        zeros = np.zeros(t.size, dtype=np.intp)
        return zeros, zeros, np.zeros(t.size), np.isfinite(t)
    d = np.diff(c)
    if not (np.all(d > 0) or np.all(d < 0)):
        raise InputError(f"{what} coordinate is not strictly monotonic",
                         "pass the 1-D cell-centre coordinates of the coarse grid")
    flip = d[0] < 0
    if flip:
        c = c[::-1]
    j = np.clip(np.searchsorted(c, t, side="right") - 1, 0, n - 2)
    w = np.clip((t - c[j]) / (c[j + 1] - c[j]), 0.0, 1.0)
    lo_edge = c[0] - edge_cells * (c[1] - c[0])
    hi_edge = c[-1] + edge_cells * (c[-1] - c[-2])
    valid = (t >= lo_edge) & (t <= hi_edge)
    i0, i1 = j, j + 1
    if flip:
        i0, i1 = n - 1 - i0, n - 1 - i1
    return i0, i1, w, valid


class SMAPBilinear(ConfigMixin):
    """Bilinear interpolation of a coarse SMAP field to a finer grid, NaN-aware.

    Each target value is the bilinear combination of the four surrounding coarse cell
    centres (in latitude/longitude degrees), with the weights of missing (NaN) corners
    dropped and the rest renormalised; it is NaN only where every corner with a positive
    weight is missing. Exact for a field linear in lat and lon where all corners are valid.

    Parameters
    ----------
    edge_cells
        targets up to this many outer cell spacings beyond the outermost coarse centres take
        the edge value (0.5 = the outer cells' own extent); farther targets are NaN.
    """

    name = "smap_bilinear"
    kind = "reference"
    batchable = False

    def __init__(self, edge_cells: float = 0.5):
        self.edge_cells = float(edge_cells)

    def predict(self, smap_coarse: np.ndarray, lat: np.ndarray, lon: np.ndarray,
                target_lat: np.ndarray, target_lon: np.ndarray) -> np.ndarray:
        """Interpolate ``smap_coarse`` (m3 m-3, dims ``(..., y, x)``) to the target grid.

        ``lat`` (y,) and ``lon`` (x,) are the coarse cell-centre coordinates (EASE-Grid 2.0
        rows/columns have one latitude/longitude each; either may descend), ``target_lat``
        and ``target_lon`` the 1-D target coordinates. Returns ``(..., n_lat, n_lon)``
        float32 (float64 input stays float64).
        """
        a = np.asarray(smap_coarse)
        if a.ndim < 2 or a.shape[-2:] != (np.size(lat), np.size(lon)):
            raise InputError(f"smap_bilinear: expected smap_coarse (..., y, x) = (..., "
                             f"{np.size(lat)}, {np.size(lon)}) to match lat/lon, got {a.shape}",
                             "pass the coarse field with its own 1-D lat (y) and lon (x)")
        dtype = a.dtype if a.dtype == np.float64 else np.float32
        a = a.astype(np.float64, copy=False)
        iy0, iy1, wy, vy = _axis(lat, target_lat, self.edge_cells, "lat")
        ix0, ix1, wx, vx = _axis(lon, target_lon, self.edge_cells, "lon")
        num = 0.0
        den = 0.0
        for iy, fy in ((iy0, 1.0 - wy), (iy1, wy)):
            rows = np.take(a, iy, axis=-2)
            for ix, fx in ((ix0, 1.0 - wx), (ix1, wx)):
                v = np.take(rows, ix, axis=-1)
                ok = np.isfinite(v)
                wgt = fy[:, None] * fx[None, :] * ok
                num = num + wgt * np.where(ok, v, 0.0)
                den = den + wgt
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
        out = np.where(vy[:, None] & vx[None, :], out, np.nan)
        return out.astype(dtype, copy=False)

    __call__ = predict

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        return None


#: how each cell of a fitted :class:`ERA5CDFMatching` maps values
METHODS = {0: "cdf", 1: "mean_std", 2: "pooled_cdf"}


def nanquantile_columns(a: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """``np.nanquantile(a, levels, axis=0)`` (the "linear" method) for a 2-D ``a`` (rows,
    columns), bit-identical to it, in one sort of the whole array instead of one quantile
    call per column (numpy's nan path: 0.8 s for 700 x 5,000; this: 0.08 s). An all-NaN
    column gives NaN."""
    a = np.sort(np.asarray(a, np.float64), axis=0)          # NaN sort last
    n = (~np.isnan(a)).sum(axis=0)
    q = np.asarray(levels, np.float64)[:, None]
    vi = (n - 1) * q                                        # numpy's virtual index ("linear")
    prev = np.floor(vi)
    gamma = vi - prev
    top = np.maximum(n - 1, 0)
    x0 = np.take_along_axis(a, np.clip(prev, 0, top).astype(np.intp), axis=0)
    x1 = np.take_along_axis(a, np.clip(prev + 1, 0, top).astype(np.intp), axis=0)
    d = x1 - x0                                             # numpy's _lerp, term for term
    out = x0 + d * gamma
    np.subtract(x1, d * (1 - gamma), out=out, where=gamma >= 0.5)
    out[:, n == 0] = np.nan
    return out


class ERA5CDFMatching(ConfigMixin):
    """ERA5-Land ``swvl1`` rescaled to SMAP by per-cell CDF matching.

    :meth:`fit` takes co-located pairs ``(time, *cells)`` of ERA5-Land swvl1 and SMAP soil
    moisture (both m3 m-3, NaN where missing; typically ERA5-Land aggregated to the SMAP
    cells at overpass times). For each cell with valid pairs ``n``:

    - ``n >= min_pairs``: CDF matching. The ``n_quantiles`` percentiles (0..100 %) of swvl1 are
      mapped piecewise-linearly onto the same percentiles of SMAP; beyond the fitted range
      the mapping continues linearly with slope ``std(smap) / std(swvl1)``, so it stays
      monotonic and does not saturate.
    - ``min_pairs_std <= n < min_pairs``: too few pairs for stable percentiles, so mean/std
      matching: ``smap_mean + (x - swvl1_mean) * std(smap) / std(swvl1)`` (slope 1 if
      ``std(swvl1) == 0``). The same applies to a cell whose swvl1 percentiles are all equal.
    - ``n < min_pairs_std``: the pooled CDF of all cells' pairs.

    :meth:`apply` maps any swvl1 field: on the fitted cells, or, with ``cell_index``, on
    another grid whose cells each name the fitted cell (flat index) that holds them (e.g. the
    10 km cells inside each SMAP cell; -1 = none, NaN out).
    """

    name = "era5_cdf"
    kind = "reference"
    batchable = False
    reads_channel = "swvl1"

    def __init__(self, n_quantiles: int = 101, min_pairs: int = 30, min_pairs_std: int = 3):
        if n_quantiles < 2 or min_pairs_std < 2 or min_pairs < min_pairs_std:
            raise InputError("era5_cdf needs n_quantiles >= 2 and min_pairs >= min_pairs_std >= 2",
                             "use the defaults (101, 30, 3)")
        self.n_quantiles = int(n_quantiles)
        self.min_pairs = int(min_pairs)
        self.min_pairs_std = int(min_pairs_std)
        self._state: dict[str, np.ndarray] | None = None

    @property
    def fitted(self) -> bool:
        return self._state is not None

    @property
    def methods(self) -> np.ndarray:
        """Per fitted cell: 0 = CDF, 1 = mean/std, 2 = pooled CDF (:data:`METHODS`)."""
        self._need_fit()
        return self._state["method"].reshape(tuple(self._state["cell_shape"]))

    def fit(self, era5: np.ndarray, smap: np.ndarray) -> "ERA5CDFMatching":
        """Fit on pairs ``(time, *cells)`` (m3 m-3, NaN where missing)."""
        e = np.asarray(era5, dtype=np.float64)
        s = np.asarray(smap, dtype=np.float64)
        if e.shape != s.shape or e.ndim < 1:
            raise InputError(f"era5_cdf.fit: era5 {e.shape} and smap {s.shape} differ",
                             "pass co-located pairs with dims (time, *cells)")
        cell_shape = e.shape[1:]
        e = e.reshape(e.shape[0], -1)
        s = s.reshape(s.shape[0], -1)
        ok = np.isfinite(e) & np.isfinite(s)
        n = ok.sum(axis=0)
        if ok.sum() < self.min_pairs_std:
            raise InputError(f"era5_cdf.fit: only {int(ok.sum())} valid pairs in all",
                             "fit on a period and area where SMAP and ERA5-Land overlap")
        e = np.where(ok, e, np.nan)
        s = np.where(ok, s, np.nan)
        levels = np.linspace(0.0, 1.0, self.n_quantiles)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)   # all-NaN cells
            qe = nanquantile_columns(e, levels).T              # (K, Q)
            qs = nanquantile_columns(s, levels).T
            mu_e, mu_s = np.nanmean(e, axis=0), np.nanmean(s, axis=0)
            sd_e, sd_s = np.nanstd(e, axis=0), np.nanstd(s, axis=0)
        pe, ps = e[ok], s[ok]
        pool_qe, pool_qs = np.quantile(pe, levels), np.quantile(ps, levels)
        pool_slope = ps.std() / pe.std() if pe.std() > 0 else 1.0
        slope = np.where(sd_e > 0, sd_s / np.where(sd_e > 0, sd_e, 1.0), 1.0)
        method = np.full(n.shape, 1, dtype=np.int8)
        method[(n >= self.min_pairs) & (qe[:, -1] > qe[:, 0])] = 0
        pooled = n < self.min_pairs_std
        method[pooled] = 2
        qe[pooled], qs[pooled], slope[pooled] = pool_qe, pool_qs, pool_slope
        self._state = {"qe": qe, "qs": qs, "slope": slope, "mu_e": mu_e, "sd_e": sd_e,
                       "mu_s": mu_s, "sd_s": sd_s, "method": method, "n_pairs": n,
                       "cell_shape": np.asarray(cell_shape, dtype=np.int64)}
        return self

    def _need_fit(self):
        if self._state is None:
            raise InputError("era5_cdf is not fitted", "call fit(era5, smap) or load a checkpoint")

    def apply(self, era5: np.ndarray, cell_index: np.ndarray | None = None) -> np.ndarray:
        """Map swvl1 (m3 m-3) to SMAP's climatology.

        ``era5`` dims ``(..., *cells)`` on the fitted cells, or ``(..., *cell_index.shape)``
        with ``cell_index`` (int, the flat index of the fitted cell of each value, -1 = none).
        Returns float32 (float64 input stays float64), NaN where the input is NaN.
        """
        self._need_fit()
        st = self._state
        x = np.asarray(era5)
        dtype = x.dtype if x.dtype == np.float64 else np.float32
        x = x.astype(np.float64, copy=False)
        shape = tuple(int(v) for v in st["cell_shape"]) if cell_index is None \
            else np.shape(cell_index)
        if x.shape[x.ndim - len(shape):] != shape or x.ndim < len(shape):
            raise InputError(f"era5_cdf.apply: expected era5 (..., {', '.join(map(str, shape))}), "
                             f"got {x.shape}", "pass a field on the fitted cells or a cell_index "
                             "of the field's spatial shape")
        k = st["qe"].shape[0]
        cells = np.arange(k) if cell_index is None else np.asarray(cell_index).ravel().astype(np.intp)
        if cells.size and cells.max() >= k:
            raise InputError(f"era5_cdf.apply: cell_index up to {cells.max()} but {k} cells fitted",
                             "index the fitted cells (flat, C order)")
        none = cells < 0
        c = np.where(none, 0, cells)
        qe, qs, slope, method = st["qe"][c], st["qs"][c], st["slope"][c], st["method"][c]
        lin = method == 1
        mu_e, mu_s = st["mu_e"][c], st["mu_s"][c]
        flat = x.reshape(-1, cells.size)
        out = np.full_like(flat, np.nan)
        q = qe.shape[1]
        for r in range(flat.shape[0]):
            v = flat[r]
            use = np.flatnonzero(~none & np.isfinite(v))   # the rest stays NaN (most rows of a
            if use.size == 0:                               # hold-out set are all NaN)
                continue
            v = v[use]
            qe_u, qs_u, slope_u = qe[use], qs[use], slope[use]
            rows = np.arange(use.size)
            j = (v[:, None] >= qe_u).sum(axis=1)               # values <= v among the percentiles
            lo = np.clip(j - 1, 0, q - 2)
            x0, x1 = qe_u[rows, lo], qe_u[rows, lo + 1]
            f0, f1 = qs_u[rows, lo], qs_u[rows, lo + 1]
            with np.errstate(invalid="ignore", divide="ignore"):
                t = np.where(x1 > x0, (v - x0) / np.where(x1 > x0, x1 - x0, 1.0), 0.0)
            y = f0 + t * (f1 - f0)
            y = np.where(j == 0, qs_u[:, 0] + slope_u * (v - qe_u[:, 0]), y)
            y = np.where(j == q, qs_u[:, -1] + slope_u * (v - qe_u[:, -1]), y)
            out[r, use] = np.where(lin[use], mu_s[use] + (v - mu_e[use]) * slope_u, y)
        return out.reshape(x.shape).astype(dtype, copy=False)

    predict = apply
    __call__ = apply

    def state_dict(self) -> dict[str, Any]:
        return {} if self._state is None else {k: v.copy() for k, v in self._state.items()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        if not state:
            self._state = None
            return
        self._state = {k: np.asarray(v) for k, v in state.items()}
