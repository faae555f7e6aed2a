"""Checks of a built world against its hidden truth, through the project's readers.

Used by the tests, the realism document (``docs/make_realism.py``) and the benchmark. Every
function reads the world's files the way a user would (``model.data`` readers) and compares
them with ``truth/truth.zarr``. Statistics follow DESIGN section 4: bias = product - reference,
ubRMSE = sqrt(RMSE^2 - bias^2); "per-cell" values are computed over time at each cell and
summarised by their median.
"""

from __future__ import annotations

import glob
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..data.era5 import read_era5
from ..data.ismn import read_ismn
from ..data.smap import read_smap_l3, read_smap_l4
from ..data.smap_format import overpass_step, smap_filename
from ..grids import regridder, tp10


def open_truth(folder):
    return xr.open_zarr(Path(folder) / "truth" / "truth.zarr")


def stats(product: np.ndarray, reference: np.ndarray) -> dict:
    """Pooled bias, RMSE, ubRMSE, R and N of matched pairs (NaNs dropped)."""
    p = np.asarray(product, float).ravel()
    r = np.asarray(reference, float).ravel()
    ok = np.isfinite(p) & np.isfinite(r)
    p, r = p[ok], r[ok]
    if p.size < 10:
        return {"n": int(p.size), "bias": None, "rmse": None, "ubrmse": None, "r": None}
    d = p - r
    bias = float(d.mean())
    rmse = float(np.sqrt((d * d).mean()))
    return {"n": int(p.size), "bias": bias, "rmse": rmse, "ubrmse": float(np.sqrt(max(rmse ** 2 - bias ** 2, 0))),
            "r": float(np.corrcoef(p, r)[0, 1])}


def per_cell_ubrmse(product: np.ndarray, reference: np.ndarray, min_n: int = 10) -> np.ndarray:
    """ubRMSE over the first axis (time) at every cell with at least ``min_n`` pairs."""
    p = np.asarray(product, float)
    r = np.asarray(reference, float)
    ok = np.isfinite(p) & np.isfinite(r)
    d = np.where(ok, p - r, 0.0)
    n = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = d.sum(0) / n
        var = (np.where(ok, (d - mean) ** 2, 0.0)).sum(0) / n
    out = np.sqrt(var)
    return np.where(n >= min_n, out, np.nan)


def smap_matchups(folder, product: str = "SPL3SMP", policy=None, every: int = 1):
    """SMAP-like retrievals and the truth aggregated over the same cell at the nearest product
    step of each cell's observation time: (obs, truth_agg) arrays of shape (n_overpasses, ny, nx)."""
    truth = open_truth(folder)["soil_moisture"]
    times = pd.DatetimeIndex(truth["time"].values)
    grid = "M36" if product == "SPL3SMP" else "M09"
    rg = regridder("TP10", grid)
    files = sorted(glob.glob(str(Path(folder) / "inputs" / product / "*.h5")))[::every]
    obs, ref = [], []
    cache: dict = {}
    for f in files:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            d = read_smap_l3(f, policy=policy) if policy is not None else read_smap_l3(f)
        for ov in ("AM", "PM"):
            x = d.sel(overpass=ov)
            sm = x["soil_moisture"].values
            ok = np.isfinite(sm)
            o = np.full(sm.shape, np.nan)
            r = np.full(sm.shape, np.nan)
            if ok.any():
                steps = overpass_step(x["obs_time"].values[ok])
                for s in np.unique(steps):
                    if pd.Timestamp(s) not in times:
                        continue
                    if s not in cache:
                        cache.clear()
                        cache[s] = rg.apply(truth.sel(time=s).values.astype(np.float32))
                    sel = np.zeros(sm.shape, bool)
                    sel[ok] = steps == s
                    o[sel] = sm[sel]
                    r[sel] = cache[s][sel]
            obs.append(o)
            ref.append(r)
    return np.array(obs), np.array(ref)


def smap_error_stats(folder, product: str = "SPL3SMP", every: int = 1) -> dict:
    o, r = smap_matchups(folder, product, every=every)
    s = stats(o, r)
    s["ubrmse_per_cell_median"] = float(np.nanmedian(per_cell_ubrmse(o, r, min_n=5)))
    return s


def gridded_vs_truth(folder, every: int = 8, months=None) -> dict:
    """ERA5-Land-like swvl1 and SMAP-L4-like sm_surface against the truth.

    ERA5-Land is compared on TP10 at product steps (every ``every``-th); L4 and ERA5-Land
    both on M09 against the truth averaged over the L4 window (3-hourly mean of the
    product steps' truth is approximated by the truth at the window's end step).
    """
    folder = Path(folder)
    truth = open_truth(folder)["soil_moisture"]
    tt = truth["time"].values[::every]
    if months is not None:
        tt = tt[pd.DatetimeIndex(tt).month.isin(months)]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        era = read_era5(sorted(glob.glob(str(folder / "inputs" / "ERA5-Land" / "*.nc"))), variables=["swvl1"])
    tt = pd.DatetimeIndex(tt).intersection(pd.DatetimeIndex(era["time"].values)).values
    e = era["swvl1"].sel(time=tt).values
    t = truth.sel(time=tt).values
    out = {"era5_tp10": stats(e, t), "era5_tp10_ubrmse_per_cell_median": float(np.nanmedian(per_cell_ubrmse(e, t)))}
    rg = regridder("TP10", "M09")
    l4, e9, t9 = [], [], []
    for when in tt:
        centre = pd.Timestamp(when) - pd.Timedelta(minutes=90)
        f = folder / "inputs" / "SPL4SMGP" / smap_filename("SPL4SMGP", centre.to_datetime64())
        if not f.exists():
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            x = read_smap_l4(f)["sm_surface"].values[0]
        l4.append(x)
        t9.append(rg.apply(truth.sel(time=when).values.astype(np.float32)))
        e9.append(rg.apply(era["swvl1"].sel(time=when).values.astype(np.float32)))
    if l4:
        l4, e9, t9 = np.array(l4), np.array(e9), np.array(t9)
        both = np.isfinite(l4) & np.isfinite(e9) & np.isfinite(t9)
        out["l4_m09"] = stats(np.where(both, l4, np.nan), t9)
        out["era5_m09"] = stats(np.where(both, e9, np.nan), t9)
        out["l4_m09_ubrmse_per_cell_median"] = float(np.nanmedian(per_cell_ubrmse(l4, t9)))
        out["era5_m09_ubrmse_per_cell_median"] = float(np.nanmedian(per_cell_ubrmse(e9, t9)))
    return out


def station_matchups(folder, network: str | None = None, series=None):
    """ISMN-like station series (flag policy applied; ``series`` = what ``read_ismn`` returned,
    read here if None) with the truth at the station's cell at product steps:
    {(network, station): DataFrame[insitu, truth]}."""
    folder = Path(folder)
    truth = open_truth(folder)
    if series is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            series = read_ismn(folder / "inputs" / "ISMN")
    g = tp10()
    out = {}
    for s in series:
        if network and s.network != network:
            continue
        r, c = g.locate(s.lat, s.lon)
        tr = truth["soil_moisture"][:, int(r[0]), int(c[0])].to_series()
        ins = s.data["soil_moisture"].copy()
        ins.index = ins.index.tz_convert("UTC").tz_localize(None) if ins.index.tz is not None else ins.index
        df = pd.DataFrame({"insitu": ins.reindex(tr.index), "truth": tr})
        out[(s.network, s.station)] = df
    return out
