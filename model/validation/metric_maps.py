"""Validation metrics, map (spatial) form: per-cell metrics of a field against a reference.

:func:`metric_map` reduces along ``dim`` for every cell at once, numpy- or Dask-backed, lazily,
through the same kernel (:func:`model.validation.metrics._evaluate`) as the series form, so
there is exactly one definition of each metric (the convention, statuses and settings are in
:mod:`model.validation.metrics`). :func:`map_summary` averages the maps; :func:`labels` names
the status codes. Split out of ``metrics.py`` (issue 14: no module over 800 lines); it imports
that module, never the reverse.
"""

from __future__ import annotations

import os
from typing import Iterable, Sequence

import numpy as np
import xarray as xr

from model.errors import InputError

from .metrics import (
    _ATTRS,
    ALL_METRICS,
    DEFAULT_SETTINGS,
    STATUS,
    MetricSettings,
    _as_times_ns,
    _check_metrics,
    _evaluate,
    _variables,
)

__all__ = ["labels", "metric_map", "map_summary"]


# ----------------------------------------------------------------------------- map form

def metric_map(product, reference, dim: str = "time", *, metrics: Iterable[str] = ALL_METRICS,
               settings: MetricSettings = DEFAULT_SETTINGS):
    """Per-cell metrics of a product field against a reference field (the spatial twin).

    Parameters
    ----------
    product : xarray.DataArray
        Product soil moisture, m3 m-3, dims e.g. ``(time, lat, lon)`` (numpy or Dask).
    reference : xarray.DataArray
        Reference on the same coordinates (e.g. from :func:`model.validation.matching.match_to_smap`);
        the coordinates must agree exactly (they are aligned with ``join="exact"``).
    dim : str
        Dimension reduced (``"time"``); for ``anomaly_R`` its coordinate must be datetimes.
    metrics : iterable of str
        Groups of :data:`METRICS`.
    settings : MetricSettings

    Returns
    -------
    xarray.Dataset
        One variable per metric (names as :func:`all_metrics`) with the non-reduced dims,
        plus ``N``, ``status`` (int8, flag_values/flag_meanings: 0 ok, 1 insufficient data,
        2 constant series) and ``valid`` (N >= min_n). Lazy when the inputs are Dask-backed
        (the time axis is rechunked to one chunk; other chunks are kept).
    Examples
    --------
    >>> import numpy as np, pandas as pd, xarray as xr
    >>> t = pd.date_range("2016-01-01", periods=40, freq="3h")
    >>> ref = xr.DataArray(np.random.default_rng(0).random((40, 2, 3)), dims=("time", "lat", "lon"),
    ...                    coords={"time": t})
    >>> ds = metric_map(ref + 0.01, ref)
    >>> float(ds.bias.mean().round(6)), int(ds.N[0, 0])
    (0.01, 40)
    """
    groups = _check_metrics(metrics)
    product, reference, times_ns = _aligned(product, reference, dim, groups)

    names = _variables(groups)

    lazy = product.chunks is not None
    if lazy:
        threads = 1                                # Dask parallelises over chunks
    elif settings.threads is not None:
        threads = settings.threads
    else:
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)

    def kernel(x, y):
        res = _evaluate(x, y, times_ns, settings, groups, threads)
        return tuple(res[k] for k in names)

    dtypes = [np.int8 if k == "status" else np.int64 if k in ("N", "N_anomaly") else np.float64
              for k in names]
    results = xr.apply_ufunc(
        kernel, product, reference,
        input_core_dims=[[dim], [dim]],
        output_core_dims=[[] for _ in names],
        dask="parallelized",
        output_dtypes=dtypes,
    )
    return _metric_dataset(names, results, product, reference, dim, settings)


def _aligned(product, reference, dim: str, groups):
    """``product`` and ``reference`` checked, aligned exactly (sorted by ``dim`` when the
    anomalies need it) and, when Dask-backed, in one chunk along ``dim``; with the times of
    ``dim`` in nanoseconds when ``anomaly_R`` is asked for (else None)."""
    for name, da in (("product", product), ("reference", reference)):
        if not isinstance(da, xr.DataArray):
            raise InputError(f"{name} is a {type(da).__name__}, not an xarray.DataArray",
                             "pass DataArrays with the dimension " + repr(dim))
        if dim not in da.dims:
            raise InputError(f"{name} has dims {da.dims}, without {dim!r}",
                             f"pass dim= one of {da.dims}")
    try:
        product, reference = xr.align(product, reference, join="exact", copy=False)
    except ValueError as err:
        raise InputError(f"product and reference coordinates differ ({err})",
                         "put both on the same grid and times first (matching.match_to_smap)") from err
    times_ns = None
    if "anomaly_R" in groups:
        if dim not in product.coords or not np.issubdtype(product[dim].dtype, np.datetime64):
            raise InputError(f"anomaly_R needs datetime coordinates on {dim!r}",
                             f"assign them (da.assign_coords({dim}=times)) or drop 'anomaly_R' from metrics")
        idx = product.indexes[dim]
        if not idx.is_monotonic_increasing:
            product, reference = product.sortby(dim), reference.sortby(dim)
        times_ns = _as_times_ns(product[dim].values)
    if product.chunks is not None or reference.chunks is not None:
        product = product.chunk({dim: -1})
        reference = reference.chunk({dim: -1})
    return product, reference, times_ns


def _metric_dataset(names, results, product, reference, dim: str, settings: MetricSettings):
    """The metric variables (``names``, ``results``) as a Dataset with their attributes,
    ``valid`` and the conventions."""
    units = product.attrs.get("units", "m3 m-3")
    data_vars = {}
    for k, da in zip(names, results):
        attrs = dict(_ATTRS.get(k, {}))
        if attrs.get("units") == "m3 m-3":
            attrs["units"] = units
        data_vars[k] = da.assign_attrs(attrs)
    data_vars["status"].attrs.update(
        long_name="metric status", flag_values=np.array(sorted(STATUS), np.int8),
        flag_meanings=" ".join(STATUS[c].replace(" ", "_") for c in sorted(STATUS)))
    valid = (data_vars["N"] >= settings.min_n).assign_attrs(
        long_name=f"at least min_n={settings.min_n} matched pairs")
    data_vars["valid"] = valid
    ds = xr.Dataset(data_vars)
    ds.attrs.update(
        convention="bias = mean(product - reference); ubRMSE = sqrt(RMSE^2 - bias^2); "
                   "anomalies = value - centred time-window moving mean on the matched pairs",
        product=str(product.name), reference=str(reference.name), reduced_dim=dim,
        min_n=settings.min_n, anomaly_window_days=settings.anomaly_window_days,
        anomaly_min_periods=settings.anomaly_min_periods, ci_level=settings.ci_level,
    )
    return ds


def map_summary(ds, weights=None, *, dims: Sequence[str] | None = None) -> dict:
    """Spatial mean of each metric of a :func:`metric_map` Dataset over its valid cells.

    Parameters
    ----------
    ds : xarray.Dataset
        Output of :func:`metric_map`.
    weights : xarray.DataArray, optional
        Cell weights (e.g. cell area, km2) broadcastable to the maps; plain mean if None.
    dims : sequence of str, optional
        Dims averaged (all by default).

    Returns
    -------
    dict
        {metric: mean} over cells whose metric is finite (NaN if none), ``n_cells`` (valid
        cells) and ``N`` (total pairs). Computes if Dask-backed.
    """
    out = {}
    for k, da in ds.data_vars.items():
        if k in ("N", "N_anomaly", "status", "valid") or da.dtype.kind != "f":
            continue
        ok = np.isfinite(da)
        if weights is None:
            val = da.where(ok).mean(dims)
        else:
            w = weights.where(ok, 0.0)
            val = (da.where(ok, 0.0) * w).sum(dims) / w.sum(dims)
        out[k] = float(val)
    out["n_cells"] = int(ds["valid"].sum(dims))
    out["N"] = int(ds["N"].sum(dims))
    return out


def labels(status) -> np.ndarray:
    """Status codes (the ``status`` variable of :func:`metric_map`) -> their labels."""
    codes = np.asarray(status)
    return np.vectorize(STATUS.get, otypes=[object])(codes)
