"""How much fine-scale signal a virtual TP holds, measured with an oracle (issue 12).

A world only lets downscaling methods differ if part of the truth's 10 km detail (the value
minus its 36 km parent) is controlled by what a user can know at 10 km. This module measures
that, on a built world folder, with nothing but the world's files:

* the **variance decomposition** of the truth per cell (thawed steps): the share of the temporal
  variance that is fine-scale, and how much of the fine-scale part is a persistent (time-mean)
  pattern versus fluctuations;
* the **perfect-36-km ceiling**: a gradient-boosting oracle (scikit-learn
  ``HistGradientBoostingRegressor``) fitted on the training period to the truth's fine-scale part
  from the perfect 36 km truth (its parent value) plus every user input at 10 km (ERA5-Land-like
  fields and their own 10 km detail, the static layers of ``inputs/static`` and the real DEM),
  scored on the thawed test steps: fine-scale R (per cell over time, median over cells; and
  pooled over cell-steps), and ubRMSE of parent + predicted detail against the truth;
* the same oracle given the true 10 km precipitation as well (what is left to rain cells that
  no input carries) and the ERA5-Land-like field's own fine-scale R (no learning).

The truth is read only as the target and the perfect-36-km input of the ceiling; it is never a
feature otherwise. ``python -m model.world.signal WORLD_FOLDER`` prints the table (also
``benchmarks/bench_world_signal.py``, which adds the machine and the time).
"""

from __future__ import annotations

import argparse
import json
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..data.era5 import read_era5
from ..data.era5_time import to_3hourly
from ..data.static import static_layers
from ..errors import InputError
from ..grids import get_grid, regridder, tp10
from ..io import write_text_atomic
from .build import MANIFEST

#: ERA5-Land-like channels used by the oracle (3-hourly means / sums on TP10)
ERA_VARS = ("swvl1", "stl1", "skt", "t2m", "d2m", "tp", "e", "ssrd", "sd")
#: static layers of inputs/static/static_tp10.nc used by the oracle (those present)
USER_STATIC = ("sand_fraction", "clay_fraction", "organic_fraction", "porosity", "field_capacity",
               "wilting_point", "vegetation_fraction", "land_cover", "topographic_wetness_index")


def _parent_index(shape) -> tuple[np.ndarray, np.ndarray]:
    """(row, col) on M36 of every TP10 cell centre."""
    g, g36 = tp10(), get_grid("M36")
    lon2, lat2 = np.meshgrid(g.lon, g.lat)
    r, c = g36.locate(lat2.ravel(), lon2.ravel())
    return r.reshape(shape), c.reshape(shape)


def parent36(x: np.ndarray, pidx=None) -> np.ndarray:
    """The 36 km parent value of every TP10 cell: area-overlap mean over its M36 cell, (..., 150, 320).

    ``x``: a field on TP10 with dims (..., lat, lon); NaN cells are left out of the mean (M36
    cells less than half covered by valid cells are NaN).
    """
    x = np.asarray(x, np.float32)
    r, c = pidx if pidx is not None else _parent_index(x.shape[-2:])
    m36 = regridder("TP10", "M36").apply(x)
    ok = (r >= 0) & (c >= 0)
    out = np.full(x.shape, np.nan, np.float32)
    out[..., ok] = m36[..., r[ok], c[ok]]
    return out


def fine(x: np.ndarray, pidx=None) -> np.ndarray:
    """Fine-scale part: value minus its 36 km parent (dims (..., lat, lon))."""
    return np.asarray(x, np.float32) - parent36(x, pidx)


def _corr_per_cell(a: np.ndarray, b: np.ndarray, min_n: int = 10) -> np.ndarray:
    """Pearson R over axis 0 for each column, NaN-aware, NaN where fewer than ``min_n`` pairs."""
    ok = np.isfinite(a) & np.isfinite(b)
    n = ok.sum(0)
    a = np.where(ok, a, 0.0)
    b = np.where(ok, b, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ma, mb = a.sum(0) / n, b.sum(0) / n
        da, db = np.where(ok, a - ma, 0), np.where(ok, b - mb, 0)
        r = (da * db).sum(0) / np.sqrt((da * da).sum(0) * (db * db).sum(0))
    return np.where(n >= min_n, r, np.nan)


def _pooled_r(a, b) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    return float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 10 else float("nan")


def load_world_arrays(folder) -> dict:
    """Truth, ERA5-Land-like 3-hourly fields and static layers of a world, on TP10 (numpy)."""
    folder = Path(folder)
    if not (folder / MANIFEST).exists():
        raise InputError("no world here (world.json missing)", "build one: sm-downscale world --size tiny", folder)
    man = json.loads((folder / MANIFEST).read_text())
    if not man.get("complete"):
        raise InputError("the world is not complete", "finish it: rerun sm-downscale world", folder)
    truth = xr.open_zarr(folder / "truth" / "truth.zarr")
    # lazily (Dask), one variable at a time below: a season of hourly TP10 fields does not fit
    era = to_3hourly(read_era5(sorted((folder / "inputs" / "ERA5-Land").glob("*.nc")), chunks={"time": 240}))
    era = era.sel(time=era.time.isin(truth.time.values))
    truth = truth.sel(time=era.time.values)
    static = xr.open_dataset(folder / "inputs" / "static" / "static_tp10.nc").load()
    dem = static_layers()
    sim = static["simulated"].values.astype(bool)
    out = {"times": pd.DatetimeIndex(truth.time.values), "sim": sim, "periods": man["periods"],
           "size": man["size"], "seed": man["seed"]}
    for v in ("soil_moisture", "soil_temperature", "precipitation"):
        out["truth_" + v] = np.where(sim, truth[v].values, np.nan).astype(np.float32)
    for v in ERA_VARS:
        out["era_" + v] = np.where(sim, era[v].astype(np.float32).values, np.nan).astype(np.float32)
    st = {}
    for v in USER_STATIC:
        if v in static:
            st[v] = np.where(sim, static[v].values, np.nan).astype(np.float32)
    st["elevation"] = dem["elevation"].values.astype(np.float32)
    st["slope"] = dem["slope"].values.astype(np.float32)
    st["aspect_sin"] = np.sin(np.deg2rad(dem["aspect"].values)).astype(np.float32)
    st["aspect_cos"] = np.cos(np.deg2rad(dem["aspect"].values)).astype(np.float32)
    out["static"] = {k: np.where(sim, v, np.nan) for k, v in st.items()}
    return out


def _history(x: np.ndarray, steps: int) -> np.ndarray:
    """Sum over the last ``steps`` 3-hourly steps (the step itself included), clamped at the start."""
    x = np.nan_to_num(x)
    cs = np.concatenate([np.zeros((1,) + x.shape[1:], np.float64), np.cumsum(x, 0, dtype=np.float64)])
    i = np.arange(1, x.shape[0] + 1)
    return (cs[i] - cs[np.maximum(i - steps, 0)]).astype(np.float32)


def _running_min(x: np.ndarray, steps: int) -> np.ndarray:
    out = x.copy()
    for k in range(1, steps):
        out[k:] = np.fmin(out[k:], x[:-k])
    return out


def feature_stack(w: dict, with_true_rain: bool = False) -> tuple[np.ndarray, list[str]]:
    """Features (T, F, cells) over the simulated cells, of the oracle: perfect 36 km truth + user inputs at 10 km."""
    pidx = _parent_index(w["sim"].shape)
    T = w["times"].size
    sim = w["sim"]
    feats, names = [], []

    def add(name, arr):
        arr = np.asarray(arr, np.float32)
        if arr.ndim == 2:
            arr = np.broadcast_to(arr, (T,) + arr.shape)
        feats.append(np.ascontiguousarray(arr[:, sim]))
        names.append(name)

    p36 = parent36(w["truth_soil_moisture"], pidx)
    add("truth36", p36)
    # its recent trajectory (wetting or drying: soils part ways differently), as a model sees
    # the history of its coarse input
    for n, k in (("truth36_d1", 8), ("truth36_d3", 24), ("truth36_d10", 80)):
        lag = np.concatenate([np.repeat(p36[:1], k, 0), p36[:-k]]) if p36.shape[0] > k else p36[:1].repeat(p36.shape[0], 0)
        add(n, p36 - lag)
    sw = w["era_swvl1"]
    add("swvl1", sw)
    add("swvl1_fine", fine(sw, pidx))
    for v in ("stl1", "skt", "t2m", "d2m", "ssrd", "sd", "e"):
        add(v, w["era_" + v])
    add("stl1_min24", _running_min(w["era_stl1"], 8))
    tp = w["era_tp"]
    for n, k in (("tp3h", 1), ("tp1d", 8), ("tp3d", 24), ("tp10d", 80)):
        h = _history(tp, k)
        add(n, h)
        add(n + "_fine", fine(np.where(w["sim"], h, np.nan), pidx))
    for k, v in w["static"].items():
        add(k, v)
        add(k + "_fine", fine(v, pidx))
    if with_true_rain:
        p = w["truth_precipitation"]
        for n, k in (("rain1d", 8), ("rain3d", 24), ("rain10d", 80)):
            h = _history(p, k)
            add("true_" + n + "_fine", fine(np.where(w["sim"], h, np.nan), pidx))
    doy = w["times"].day_of_year.values.astype(np.float32)
    add("doy", np.broadcast_to(doy[:, None, None], (T,) + w["sim"].shape))
    return np.stack(feats, axis=1), names


def _split(w) -> tuple[np.ndarray, np.ndarray]:
    t = w["times"]
    p = w["periods"]
    tr = (t >= pd.Timestamp(p["train"][0])) & (t < pd.Timestamp(p["train"][1]) + pd.Timedelta(days=1))
    te = (t >= pd.Timestamp(p["test"][0])) & (t < pd.Timestamp(p["test"][1]) + pd.Timedelta(days=1))
    return np.asarray(tr), np.asarray(te)


def decomposition(w: dict) -> dict:
    """Variance decomposition of the truth on thawed steps of the whole written period."""
    pidx = _parent_index(w["sim"].shape)
    sm = w["truth_soil_moisture"]
    thawed = w["truth_soil_temperature"] > 273.15
    x = np.where(thawed, sm, np.nan)
    par = parent36(sm, pidx)
    f = np.where(thawed, sm - par, np.nan)
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        var_tot = np.nanvar(x, 0)
        var_f = np.nanvar(f, 0)
        mean_f = np.nanmean(f, 0)
        var_par = np.nanvar(np.where(thawed, par, np.nan), 0)
    ok = w["sim"] & np.isfinite(var_f) & (var_tot > 0) & np.isfinite(var_par)
    # spatial variance of the fine part over cell-steps = persistent (time-mean map) + fluctuation
    pers = float(np.nanvar(mean_f[ok]))
    fluct = float(np.nanmean(var_f[ok]))
    return {
        "fine_share_of_temporal_variance_median": float(np.median(var_f[ok] / var_tot[ok])),
        "fine_sd_temporal_median": float(np.median(np.sqrt(var_f[ok]))),
        "fine_sd_persistent": float(np.sqrt(pers)),
        "fine_persistent_share": pers / (pers + fluct),
        "truth_sd_temporal_median": float(np.median(np.sqrt(var_tot[ok]))),
        "frozen_share_of_steps": float(1 - np.nanmean(np.where(w["sim"], thawed, np.nan))),
    }


def _scores(pred_f, true_f, par, truth) -> dict:
    r_cell = _corr_per_cell(pred_f, true_f)
    est = par + pred_f
    d = est - truth
    ok = np.isfinite(d)
    n = ok.sum(0)
    with np.errstate(invalid="ignore", divide="ignore"):
        ub = np.sqrt(np.nansum(d * d, 0) / n - (np.nansum(d, 0) / n) ** 2)
        d0 = par - truth
        ub0 = np.sqrt(np.nansum(d0 * d0, 0) / n - (np.nansum(d0, 0) / n) ** 2)
    good = n >= 10
    return {"fine_r_cell_median": float(np.nanmedian(r_cell)),
            "fine_r_pooled": _pooled_r(pred_f, true_f),
            "ubrmse_cell_median": float(np.nanmedian(np.where(good, ub, np.nan))),
            "ubrmse_parent_only_cell_median": float(np.nanmedian(np.where(good, ub0, np.nan))),
            "r_cell_median": float(np.nanmedian(_corr_per_cell(est, truth)))}


def oracle(w: dict, with_true_rain: bool = False, max_rows: int = 400_000, seed: int = 0) -> dict:
    """Fit the ceiling on the training period's thawed steps, score the thawed test steps."""
    # lazy: sklearn costs 1.1 s at import; only the oracle fit needs it
    from sklearn.ensemble import HistGradientBoostingRegressor

    X, _ = feature_stack(w, with_true_rain)
    pidx = _parent_index(w["sim"].shape)
    sm = w["truth_soil_moisture"]
    par = parent36(sm, pidx)
    y = sm - par
    thawed = (w["truth_soil_temperature"] > 273.15) & w["sim"]
    tr, te = _split(w)
    sim = w["sim"]
    y, par, sm, thawed = y[:, sim], par[:, sim], sm[:, sim], thawed[:, sim]
    F = X.shape[1]
    valid = thawed & np.isfinite(y) & np.isfinite(X[:, 0])
    rng = np.random.default_rng(seed)
    rows = np.flatnonzero((valid & tr[:, None]).ravel())
    if rows.size > max_rows:
        rows = np.sort(rng.choice(rows, max_rows, replace=False))
    Xf = np.moveaxis(X, 1, -1).reshape(-1, F)
    m = HistGradientBoostingRegressor(max_iter=200, learning_rate=0.1, max_leaf_nodes=63,
                                      min_samples_leaf=40, l2_regularization=1.0, random_state=seed)
    m.fit(Xf[rows], y.ravel()[rows])
    vte = valid & te[:, None]
    pred = np.full(y.shape, np.nan, np.float32)
    idx = np.flatnonzero(vte.ravel())
    pred.ravel()[idx] = m.predict(Xf[idx])
    tru = np.where(vte, y, np.nan)
    res = _scores(pred[te], tru[te], par[te], np.where(vte, sm, np.nan)[te])
    res["n_train_rows"] = int(rows.size)
    res["n_test_cell_steps"] = int(vte.sum())
    return res


def era_fine_skill(w: dict) -> dict:
    """No learning: the ERA5-Land-like field's own 10 km detail against the truth's (thawed test)."""
    pidx = _parent_index(w["sim"].shape)
    sm = w["truth_soil_moisture"]
    thawed = (w["truth_soil_temperature"] > 273.15) & w["sim"]
    _, te = _split(w)
    cells = w["sim"].ravel()
    ef = fine(w["era_swvl1"], pidx)
    tf = fine(sm, pidx)
    m = thawed[te]
    a = np.where(m, ef[te], np.nan).reshape(int(te.sum()), -1)[:, cells]
    b = np.where(m, tf[te], np.nan).reshape(int(te.sum()), -1)[:, cells]
    return {"fine_r_cell_median": float(np.nanmedian(_corr_per_cell(a, b))), "fine_r_pooled": _pooled_r(a, b)}


def signal_report(folder, max_rows: int = 400_000, true_rain: bool = True) -> dict:
    """Everything above for one world folder (a dict; see the module docstring)."""
    w = load_world_arrays(folder)
    rep = {"world": w["size"], "seed": w["seed"], "periods": w["periods"],
           "cells": int(w["sim"].sum()),
           "decomposition": decomposition(w),
           "ceiling_perfect36": oracle(w, False, max_rows),
           "era5_own_detail": era_fine_skill(w)}
    if true_rain:
        rep["ceiling_perfect36_true_rain"] = oracle(w, True, max_rows)
    return rep


def format_report(rep: dict) -> str:
    d = rep["decomposition"]
    lines = [f"world {rep['world']} (seed {rep['seed']}), {rep['cells']} cells; train {rep['periods']['train']}, "
             f"test {rep['periods']['test']}",
             f"  frozen share of cell-steps {d['frozen_share_of_steps']:.3f}",
             f"  truth temporal sd per cell (median, thawed) {d['truth_sd_temporal_median']:.4f} m3 m-3; "
             f"fine-scale part: {100 * d['fine_share_of_temporal_variance_median']:.0f} % of the temporal "
             f"variance (sd {d['fine_sd_temporal_median']:.4f}), persistent pattern sd {d['fine_sd_persistent']:.4f} "
             f"({100 * d['fine_persistent_share']:.0f} % of the fine-scale variance over cell-steps)",
             "  thawed test steps:            fine R (cell median)  fine R (pooled)  ubRMSE  (parent only)  R",
             ]
    for k, label in (("ceiling_perfect36", "perfect-36-km ceiling"),
                     ("ceiling_perfect36_true_rain", "  + true 10 km rain"),):
        if k not in rep:
            continue
        r = rep[k]
        lines.append(f"  {label:<28} {r['fine_r_cell_median']:>8.3f} {r['fine_r_pooled']:>18.3f} "
                     f"{r['ubrmse_cell_median']:>10.4f} {r['ubrmse_parent_only_cell_median']:>10.4f} "
                     f"{r['r_cell_median']:>8.3f}")
    e = rep["era5_own_detail"]
    lines.append(f"  {'ERA5-Land-like own detail':<28} {e['fine_r_cell_median']:>8.3f} {e['fine_r_pooled']:>18.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="fine-scale signal of a virtual TP world (oracle ceiling)")
    ap.add_argument("folder")
    ap.add_argument("--json", help="also write the numbers here")
    ap.add_argument("--max-rows", type=int, default=400_000)
    ap.add_argument("--no-true-rain", action="store_true", help="skip the oracle given the true rain")
    a = ap.parse_args(argv)
    rep = signal_report(a.folder, a.max_rows, not a.no_true_rain)
    print(format_report(rep))
    if a.json:
        write_text_atomic(Path(a.json), json.dumps(rep, indent=1) + "\n")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
