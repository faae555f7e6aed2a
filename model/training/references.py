"""Fitting the no-learning references through the same run interface (running them:
:mod:`model.inference.references`).

The methods themselves live in :mod:`model.networks.reference` (pure numpy); this module
feeds them the training data and the inference inputs:

``smap_bilinear``
    At each 3-hourly step, the most recent SMAP L3 retrieval of each SMAP cell within the
    last 36 h (persistence between overpasses), interpolated bilinearly from the SMAP cell
    centres to the 10 km cell centres (NaN-aware).
``era5_cdf``
    ERA5-Land swvl1 aggregated to the SMAP cells at the overpass steps of the training period,
    CDF-matched to SMAP at SMAP's scale, as CDF-matching studies do it: the percentiles need
    many pairs (years of overpasses), and a short record matched cell by cell copies SMAP's
    retrieval noise into the mapping. So cells are pooled by climate: SMAP cells are grouped
    into classes of similar long-term ERA5-Land wetness (quantiles of the cell's mean swvl1
    over the training period), one CDF is matched per class from all its cells' pairs, and a
    cell keeps its own CDF only where it has at least :data:`PER_CELL_MIN_PAIRS` pairs. The
    number of classes (1 = one pooled mapping, ... , per cell) is chosen on held-out pairs
    (alternate blocks of :data:`HOLDOUT_BLOCK_DAYS` days of the training period, by the
    squared error against SMAP) among :data:`CLASS_CHOICES`, then refitted on every pair. A
    single pooled mapping is one of the candidates, so the choice is never worse than it on
    held-out SMAP. Applied to the 10 km swvl1 with the mapping of the SMAP cell that holds
    each 10 km cell.
"""

from __future__ import annotations

import warnings

import numpy as np

from ..networks.reference import ERA5CDFMatching
from ..networks.registry import get_model

#: climate classes tried for era5_cdf (1 = a single pooled mapping); a cell with at least
#: PER_CELL_MIN_PAIRS pairs keeps its own CDF in every choice
CLASS_CHOICES = (1, 3, 6, 12)
#: pairs a SMAP cell needs to keep its own CDF (about a year of daily overpasses)
PER_CELL_MIN_PAIRS = 365
#: alternate blocks of days of the training period used to choose the number of classes
HOLDOUT_BLOCK_DAYS = 4


def fit_reference(name: str, data, cfg):
    """A fitted reference model (a registry object with ``state_dict``)."""
    model = get_model(name)
    if model.reads_channel:                   # maps an ERA5-Land channel onto SMAP's scale
        cube = data.cube
        c = cube.channels.index(model.reads_channel)
        norm = data.norm
        x = cube.x3[data.train_steps, c] * norm.dyn_std[c] + norm.dyn_mean[c]  # back to m3 m-3
        y = data.target[data.train_steps]
        ok = np.isfinite(y) & cube.mask[None]
        times = np.asarray(cube.times)[data.train_steps] if hasattr(cube, "times") else None
        fit_cdf_by_climate(model, np.where(ok, x, np.nan), np.where(ok, y, np.nan), times)
    return model


def climate_classes(x: np.ndarray, k: int) -> np.ndarray:
    """Class (0..k-1) of each cell by quantiles of its mean ``x`` over time (``x``: (time, *cells))."""
    with np.errstate(all="ignore"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            m = np.nanmean(x.reshape(x.shape[0], -1), axis=0)
    cls = np.zeros(m.shape, np.intp)
    ok = np.isfinite(m)
    if k > 1 and ok.sum() >= k:
        edges = np.quantile(m[ok], np.linspace(0, 1, k + 1)[1:-1])
        cls[ok] = np.searchsorted(edges, m[ok], side="right")
    return cls


def _class_model(x: np.ndarray, y: np.ndarray, cls: np.ndarray, k: int, template):
    """A per-cell ERA5CDFMatching whose cells carry their class's pooled CDF (method 2) or,
    with at least PER_CELL_MIN_PAIRS pairs, their own."""
    t = x.shape[0]
    xf, yf = x.reshape(t, -1), y.reshape(t, -1)
    ok = np.isfinite(xf) & np.isfinite(yf)
    cols_x, cols_y = [], []
    for j in range(k):
        sel = cls == j
        cols_x.append(xf[:, sel][ok[:, sel]])
        cols_y.append(yf[:, sel][ok[:, sel]])
    n = max(1, max(len(v) for v in cols_x))
    px = np.full((n, k), np.nan)
    py = np.full((n, k), np.nan)
    for j in range(k):
        px[:len(cols_x[j]), j] = cols_x[j]
        py[:len(cols_y[j]), j] = cols_y[j]
    kw = dict(n_quantiles=template.n_quantiles, min_pairs=template.min_pairs,
              min_pairs_std=template.min_pairs_std)
    by_class = ERA5CDFMatching(**kw).fit(px, py)
    per_cell = ERA5CDFMatching(**kw).fit(x, y)
    cs, ps = by_class.state_dict(), per_cell.state_dict()
    own = ps["n_pairs"] >= PER_CELL_MIN_PAIRS
    state = {}
    for key in ("qe", "qs", "slope", "mu_e", "sd_e", "mu_s", "sd_s"):
        v = cs[key][cls]
        v[own] = ps[key][own]
        state[key] = v
    method = cs["method"][cls].copy()
    method[method == 0] = 2            # the class's CDF: "pooled_cdf"
    method[own] = ps["method"][own]
    state.update(method=method, n_pairs=ps["n_pairs"], cell_shape=ps["cell_shape"])
    m = ERA5CDFMatching(**kw)
    m.load_state_dict(state)
    return m


def _holdout(times, t: int) -> np.ndarray:
    """True for the held-out steps: every other block of HOLDOUT_BLOCK_DAYS days."""
    if times is not None and len(times) == t:
        day = (np.asarray(times, "datetime64[D]") - np.asarray(times, "datetime64[D]").min()).astype(int)
    else:
        day = np.arange(t) // 8
    return (day // HOLDOUT_BLOCK_DAYS) % 2 == 1


def fit_cdf_by_climate(model, x: np.ndarray, y: np.ndarray, times=None) -> dict:
    """Fit ``model`` (an ERA5CDFMatching) on pairs ``(time, *cells)`` with climate classes.

    The number of classes is chosen among :data:`CLASS_CHOICES` by the mean squared error
    against SMAP on held-out blocks of days, then the mapping is refitted on all pairs and
    loaded into ``model``. Returns ``{"classes": choice, "holdout_mse": {choice: mse}}``
    (also kept as ``model.choice``).
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    hold = _holdout(times, x.shape[0])
    hmask = hold.reshape((-1,) + (1,) * (x.ndim - 1))
    fit_x = np.where(hmask, np.nan, x)
    fit_y = np.where(np.isfinite(fit_x), y, np.nan)
    ev = np.isfinite(x) & np.isfinite(y) & hmask
    scores = {}
    for choice in CLASS_CHOICES:
        if not ev.any() or np.isfinite(fit_y).sum() < model.min_pairs_std:
            break
        try:
            if choice == "cell":
                m = ERA5CDFMatching(model.n_quantiles, model.min_pairs, model.min_pairs_std).fit(fit_x, fit_y)
            else:
                m = _class_model(fit_x, fit_y, climate_classes(x, choice), choice, model)
        except Exception:   # too few pairs for this choice
            continue
        p = m.apply(np.where(ev, x, np.nan))
        scores[str(choice)] = float(np.nanmean((p[ev] - y[ev]) ** 2))
    best = min(scores, key=scores.get) if scores else "1"
    if best == "cell":
        model.fit(x, y)
    else:
        k = int(best)
        fitted = _class_model(x, y, climate_classes(x, k), k, model)
        model.load_state_dict(fitted.state_dict())
    model.choice = {"classes": best, "holdout_mse": scores}
    return model.choice
