"""Ceiling rows on the virtual TP: reference learners fitted to the TRUTH from the methods' inputs.

The products learn from SMAP; a ceiling learner is what the same inputs could give if the target
were the hidden 10 km truth itself. Two ceilings, both gradient boosting
(:class:`sklearn.ensemble.HistGradientBoostingRegressor`, seeded), fitted on the training
period and scored on the test period like any product, and labelled as ceilings in every table
(they are NOT products; the truth is never an input of any product method):

* ``ceiling_36km`` - the "perfect 36 km" ceiling: the truth aggregated to SMAP's 36 km cells
  (area overlap, mapped back to 10 km, :func:`model.validation.skill.coarse_parent`) and its
  change over the last 1, 3 and 10 days (as the world's oracle, ``model.world.signal``) plus
  the 10 km inputs, predicting the 10 km truth. Its fine-scale R is what a perfect coarse signal
  plus the 10 km inputs can reach: the reachable fine-scale skill.
* ``ceiling_10km`` - the 10 km inputs alone, predicting the 10 km truth.

Inputs are exactly the methods' predictors (:data:`model.features.channels.DYNAMIC` channels,
transformed as for training, in the multi-frequency window of
:class:`model.features.cube.PredictorCube`: the last 24 h 3-hourly, 7 daily means, 4 weekly
means, and the static layers), one row per cell-step.
"""

from __future__ import annotations

import logging
import time as _time

import numpy as np

from ..errors import InputError
from ..features.channels import DERIVED, DYNAMIC, derive, transform
from ..features.cube import PredictorCube, static_channels
from ..grids import tp10
from ..networks.tree_arrays import TreeArrays
from .skill import coarse_parent

log = logging.getLogger(__name__)

CEILINGS = ("ceiling_36km", "ceiling_10km")
LABEL = "ceiling (fitted to the truth; not a product)"


def _cell_cube(era5, static, rows, cols, start, end, history_days: int = 28):
    """A :class:`PredictorCube` whose grid is the listed cells as a 1 x N strip."""

    s = max(np.datetime64(start, "ns") - np.timedelta64(history_days, "D"), era5["time"].values[0])
    e = np.datetime64(end, "ns") + np.timedelta64(1, "D") - np.timedelta64(1, "s")

    sub = era5.sel(time=slice(s, e))
    chans = [c for c in DYNAMIC if c in sub or (c in DERIVED and DERIVED[c][0] in sub)]
    if len(chans) != len(DYNAMIC):
        raise InputError(f"ERA5-Land lacks {sorted(set(DYNAMIC) - set(chans))}", "ingest every predictor channel")

    def values(c):   # a derived channel (the frost signal) is made as the predictor cube makes it
        # the whole window of one variable read as a slab, then the cells picked in numpy:
        # half the time of xarray's pointwise isel on the (8-step, whole-grid) chunks
        if c in sub:
            return sub[c].values[:, rows, cols]
        return derive(c, sub[DERIVED[c][0]].values[:, rows, cols])

    x3 = np.stack([transform(c, values(c)) for c in chans], axis=1)  # (T, C, N)
    st, names = static_channels(static)
    st = st[:, rows, cols]
    n = len(rows)
    return PredictorCube(tp10(), sub["time"].values, x3[:, :, None, :].astype(np.float32),
                         st[:, None, :].astype(np.float32), np.ones((1, n), bool), chans, names)


def _features(cube, steps, cells, extra=None) -> np.ndarray:
    b = cube.pixel_batch(steps, np.zeros_like(cells), cells)
    parts = [b[k].reshape(len(steps), -1) for k in ("x3h", "xday", "xweek", "static")]
    if extra is not None:
        parts.append(np.asarray(extra, np.float32).reshape(len(steps), -1))
    return np.concatenate(parts, axis=1, dtype=np.float32)   # one pass: no float32 copy of the rows after it


#: lags (days) of the perfect 36 km parent's change given to ``ceiling_36km`` (as h12w's oracle)
PARENT_LAGS_DAYS = (1, 3, 10)


def _truth_parent(truth, times, rows, cols, chunk: int = 48, lags_days=PARENT_LAGS_DAYS):
    """(T, N) truth at the listed cells and times, and (T, N, 1 + len(lags)) parent features:
    the coarse parent and its change over each lag (parent(t) - parent(t - lag); NaN where the
    lagged step is not in the truth)."""

    times = np.asarray(times, "datetime64[ns]")
    ti = times.astype(np.int64)
    lags = [int(d * 86400 * 10**9) for d in lags_days]
    tt_all = truth["time"].values.astype("datetime64[ns]").astype(np.int64)
    need = np.unique(np.concatenate([ti] + [ti - lg for lg in lags]))
    need = need[np.isin(need, tt_all)]
    want = set(ti.tolist())
    tv, pv = {}, {}
    for k in range(0, len(need), chunk):
        sel = need[k:k + chunk]
        f = truth.sel(time=sel.astype("datetime64[ns]")).values.astype(np.float64)
        p = coarse_parent(f)
        for j, t in enumerate(sel.tolist()):
            pv[t] = p[j, rows, cols].astype(np.float32)
            if t in want:
                tv[t] = f[j, rows, cols].astype(np.float32)
    nan = np.full(len(rows), np.nan, np.float32)
    tru = np.stack([tv.get(t, nan) for t in ti.tolist()])
    par = np.stack([pv.get(t, nan) for t in ti.tolist()])
    feats = [par] + [par - np.stack([pv.get(t - lg, nan) for t in ti.tolist()]) for lg in lags]
    return tru, np.stack(feats, axis=-1)


def fit_ceilings(era5, static, truth, cells_rows, cells_cols, train_times, test_times, *,
                 which=CEILINGS, max_samples: int = 60_000, max_iter: int = 200, seed: int = 0,
                 cell_chunk: int = 1500) -> tuple[dict, dict]:
    """Fit the ceiling learners on ``train_times`` and predict ``test_times``.

    Parameters
    ----------
    era5 : xarray.Dataset, the ARD ERA5-Land group (TP10, lazy).
    static : xarray.Dataset, the ARD static group.
    truth : xarray.DataArray (time, lat, lon), the truth's soil moisture.
    cells_rows, cells_cols : TP10 indices of the cells scored (simulated TP cells).
    train_times, test_times : product steps (datetime64) of the two periods.

    Returns
    -------
    (predictions, info)
        ``predictions[name]`` (len(test_times), 150, 320) float32, NaN off the cells;
        ``info[name]`` the learner's settings, samples and seconds.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor  # lazy: sklearn costs 1.1 s at import

    rows = np.asarray(cells_rows)
    cols = np.asarray(cells_cols)
    if rows.size == 0:
        raise InputError("no truth cells to fit the ceilings on", "check the truth's simulated region")
    if len(train_times) == 0 or len(test_times) == 0:
        raise InputError("the ceilings need truth steps in both the training and the test period",
                         "check the world's periods")
    rng = np.random.default_rng(seed)
    # training samples: a random subset of cells x steps (the cube holds only those cells)
    n_cells = min(rows.size, 2000)
    sel = np.sort(rng.choice(rows.size, n_cells, replace=False))
    cube = _cell_cube(era5, static, rows[sel], cols[sel], train_times[0], train_times[-1])
    tt, tp = _truth_parent(truth, train_times, rows[sel], cols[sel])
    si = np.searchsorted(cube.times, np.asarray(train_times, "datetime64[ns]"))
    k_t, k_c = np.nonzero(np.isfinite(tt))
    if k_t.size > max_samples:
        pick = rng.choice(k_t.size, max_samples, replace=False)
        k_t, k_c = k_t[pick], k_c[pick]
    y = tt[k_t, k_c]
    base = _features(cube, si[k_t], k_c)
    models, info = {}, {}
    for name in which:
        t0 = _time.perf_counter()
        X = np.concatenate([base, tp[k_t, k_c]], axis=1) if name == "ceiling_36km" else base
        est = HistGradientBoostingRegressor(max_iter=max_iter, learning_rate=0.1, early_stopping=True,
                                            validation_fraction=0.1, n_iter_no_change=10, random_state=seed)
        est.fit(X, y)
        models[name] = est
        info[name] = {"learner": "HistGradientBoostingRegressor", "max_iter": max_iter, "iterations": int(est.n_iter_),
                      "samples": int(y.size), "cells": int(n_cells), "features": int(X.shape[1]),
                      "inputs": ("truth 36 km parent and its 1/3/10-day change + " if name == "ceiling_36km" else "") +
                                "the methods' 10 km predictors (3-hourly/daily/weekly windows, statics)",
                      "fit_seconds": round(_time.perf_counter() - t0, 1), "seed": seed, "label": LABEL}
    del cube
    return _predict_cells(models, era5, static, truth, rows, cols, test_times, cell_chunk), info


def _predict_cells(models: dict, era5, static, truth, rows, cols, test_times, cell_chunk: int) -> dict:
    """Every cell at every test step, from one read of the test window's inputs at all cells
    (the cube is ~0.5 GB for the demo's 28,643 cells and 58 days); features and predictions
    in pieces of ``cell_chunk`` cells; the trees walked by the compiled array traversal
    (:class:`model.networks.tree_arrays.TreeArrays`, scikit-learn's answers to 1e-6)."""
    shape = (len(test_times),) + tp10().shape
    preds = {n: np.full(shape, np.nan, np.float32) for n in models}
    test_times = np.asarray(test_times, "datetime64[ns]")
    parent = _truth_parent(truth, test_times, rows, cols)[1] if "ceiling_36km" in models else None
    arrays = {n: TreeArrays.from_estimator(est) for n, est in models.items()}
    cube = _cell_cube(era5, static, rows, cols, test_times[0], test_times[-1])
    si = np.searchsorted(cube.times, test_times)
    for a in range(0, rows.size, cell_chunk):
        r, c = rows[a:a + cell_chunk], cols[a:a + cell_chunk]
        kt, kc = np.meshgrid(np.arange(len(test_times)), np.arange(r.size), indexing="ij")
        kt, kc = kt.ravel(), kc.ravel()
        base = _features(cube, si[kt], a + kc)
        for name, ta in arrays.items():
            X = np.concatenate([base, parent[kt, a + kc]], axis=1) if name == "ceiling_36km" else base
            preds[name][:, r, c] = ta.predict(X).astype(np.float32).reshape(len(test_times), r.size)
    return {name: np.clip(p, 0.0, 0.7) for name, p in preds.items()}
