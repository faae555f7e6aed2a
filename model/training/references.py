"""The no-learning references a user would try first, through the same run interface.

``smap_bilinear``
    At each 3-hourly step, the most recent SMAP L3 retrieval of each SMAP cell within the
    last 36 h (persistence between overpasses), interpolated bilinearly from the SMAP cell
    centres to the 10 km cell centres (NaN-aware: normalised interpolation of values and
    validity, a 10 km cell needs >= 50 % valid weight).
``era5_cdf``
    ERA5-Land surface soil water (swvl1) rescaled to SMAP by CDF matching per SMAP cell:
    piecewise-linear mapping of the 5, 10, ..., 95 % quantiles of swvl1 (aggregated to the SMAP
    cell at the overpass steps of the training period) onto SMAP's, applied to the 10 km
    swvl1 of the SMAP cell that holds each 10 km cell. Cells with fewer than ``min_pairs``
    pairs use the pooled mapping of all cells; values beyond the end quantiles are shifted
    by the end offsets (no clipping of extremes).
"""

from __future__ import annotations

import numpy as np

from ..errors import InputError

QUANTILES = np.linspace(5, 95, 19)
PERSIST_HOURS = 36


def fit_reference(name: str, data, cfg) -> dict:
    if name == "smap_bilinear":
        return {"target": cfg.target, "persist_hours": PERSIST_HOURS}
    if name == "era5_cdf":
        return fit_cdf(data, cfg)
    from ..errors import unknown_name

    raise unknown_name("reference method", name, ["smap_bilinear", "era5_cdf"])


def fit_cdf(data, cfg, min_pairs: int = 20) -> dict:
    cube = data.cube
    c = cube.channels.index("swvl1")
    norm = data.norm
    x = cube.x3[data.train_steps, c] * norm.dyn_std[c] + norm.dyn_mean[c]  # back to m3 m-3
    y = data.target[data.train_steps]
    ok = np.isfinite(y) & (cube.mask & (data.train_mask | data.tune_mask))[None]
    x = np.where(ok, x, np.nan)
    y = np.where(ok, y, np.nan)
    n = ok.sum(axis=0)
    if n.sum() < min_pairs:
        raise InputError("too few SMAP / ERA5-Land pairs to fit the CDF matching",
                         "use a longer training period")
    qx = np.nanpercentile(x, QUANTILES, axis=0)  # (Q, H, W)
    qy = np.nanpercentile(y, QUANTILES, axis=0)
    pooled_x = np.nanpercentile(x[ok], QUANTILES)
    pooled_y = np.nanpercentile(y[ok], QUANTILES)
    few = n < min_pairs
    qx[:, few] = pooled_x[:, None]
    qy[:, few] = pooled_y[:, None]
    qx = np.maximum.accumulate(qx, axis=0)  # strictly usable as interpolation nodes
    return {"target": cfg.target, "grid": cube.grid.name, "qx": qx.astype(np.float32),
            "qy": qy.astype(np.float32), "n_pairs": n.astype(np.int32), "min_pairs": min_pairs,
            "pooled_x": pooled_x, "pooled_y": pooled_y}


def cdf_apply(x: np.ndarray, qx: np.ndarray, qy: np.ndarray) -> np.ndarray:
    """Map values x (N,) with per-value quantile nodes qx, qy (Q, N), piecewise linear."""
    q = qx.shape[0]
    # vectorised searchsorted per column
    idx = (x[None, :] >= qx).sum(axis=0) - 1
    idx = np.clip(idx, 0, q - 2)
    cols = np.arange(x.size)
    x0, x1 = qx[idx, cols], qx[idx + 1, cols]
    y0, y1 = qy[idx, cols], qy[idx + 1, cols]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(x1 > x0, (x - x0) / (x1 - x0), 0.5)
    inside = y0 + np.clip(frac, 0, 1) * (y1 - y0)
    below = x < qx[0, cols]
    above = x > qx[-1, cols]
    out = np.where(below, qy[0, cols] + (x - qx[0, cols]), inside)
    out = np.where(above, qy[-1, cols] + (x - qx[-1, cols]), out)
    return out


class ReferenceRunner:
    """Predicts 10 km scenes for the reference methods (needs the store for SMAP/swvl1)."""

    def __init__(self, name: str, state: dict, ard):
        from ..grids import get_grid, tp10
        from ..training.ard import open_group
        from ..training.trainer import TARGETS

        self.name = name
        self.state = state
        group, grid = TARGETS[state["target"]]
        self.src_grid = get_grid(grid)
        self.dst = tp10()
        if name == "smap_bilinear":
            smap = open_group(ard, group)
            self.smap_times = smap["time"].values.astype("datetime64[ns]")
            self.smap = smap["soil_moisture"]
        else:
            r, c = self.src_grid.locate(*np.meshgrid(self.dst.lat, self.dst.lon, indexing="ij"))
            self.cell = (r.reshape(self.dst.shape), c.reshape(self.dst.shape))

    def latest_field(self, t) -> np.ndarray:
        t = np.datetime64(t, "ns")
        lo = t - np.timedelta64(PERSIST_HOURS, "h")
        sel = np.nonzero((self.smap_times <= t) & (self.smap_times > lo))[0]
        field = np.full(self.src_grid.shape, np.nan, np.float32)
        for i in sel[::-1]:  # newest first
            v = self.smap[i].values
            fill = np.isnan(field) & np.isfinite(v)
            field[fill] = v[fill]
        return field

    def bilinear(self, field: np.ndarray) -> np.ndarray:
        from scipy.interpolate import RegularGridInterpolator

        lat = self.src_grid.lat
        order = np.argsort(lat)
        f = field[order]
        valid = np.isfinite(f).astype(np.float64)
        pts = np.stack(np.meshgrid(self.dst.lat, self.dst.lon, indexing="ij"), axis=-1)
        kw = dict(method="linear", bounds_error=False, fill_value=np.nan)
        num = RegularGridInterpolator((lat[order], self.src_grid.lon), np.nan_to_num(f), **kw)(pts)
        den = RegularGridInterpolator((lat[order], self.src_grid.lon), valid, **kw)(pts)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = np.where(den >= 0.5, num / den, np.nan)
        return out.astype(np.float32)

    def predict(self, t, cube=None) -> np.ndarray:
        if self.name == "smap_bilinear":
            return self.bilinear(self.latest_field(t))
        i = cube.step_index(t)
        x = cube.x3[i, cube.channels.index("swvl1")]
        r, c = self.cell
        ok = (r >= 0) & np.isfinite(x)
        out = np.full(self.dst.shape, np.nan, np.float32)
        qx = self.state["qx"][:, r[ok], c[ok]]
        qy = self.state["qy"][:, r[ok], c[ok]]
        out[ok] = cdf_apply(x[ok], qx, qy)
        return out
