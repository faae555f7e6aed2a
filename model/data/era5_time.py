"""The time axis of ERA5 series: de-accumulation and 3-hourly aggregation.

Accumulations
-------------
ERA5-Land accumulated fields (``tp``, ``e``, ``ssrd``, ``strd``, ``ssr``, ``str``, ``slhf``,
``sshf``, ``ro``, ``sro``, ``ssro``, ``pev``, ``evabs``, ``evaow``, ``evatc``, ``evavt``,
``es``, ``sf``, ``smlt``) are accumulated from 00 UTC: the value at hour h (01..23) is the sum
over (00 UTC, h], and the value AT 00 UTC is the whole previous day's 24 h sum. The reader
de-accumulates them to the amount over each native step (t - dt, t]::

    amount[t] = value[t]                  if t - dt is 00 UTC (the accumulation restarted)
    amount[t] = value[t] - value[t - dt]  otherwise (NaN where the sample t - dt is absent)

so the first step of a file that does not start at 00 UTC + dt is NaN (the previous sample
is needed; concatenate consecutive months to avoid the gap). ERA5 (not Land) hourly
accumulations are already per hour as the CDS delivers them and are left as they are.
Negative amounts of non-negative fields (:data:`NON_NEGATIVE`: ``tp``, ``ssrd``, ``strd``,
``ssr``, ``ro``, ``sro``, ``ssro``, ``sf``, ``smlt``) come from the packing/rounding of the
accumulated values and are clipped to 0; a :class:`UserWarning` is issued when they are not
tiny (below -1 % of the largest amount), which means the product (``era5`` vs ``era5-land``)
is probably wrong. ``e`` (and the other evaporation terms and net fluxes) keep the ECMWF sign
(downward positive: negative ``e`` = evaporation). Every accumulated field gets the attributes
``cell_methods = "time: sum"`` and ``accumulation`` (how it was obtained).

Aggregation
-----------
:func:`to_3hourly` makes the product's 3-hourly steps 00, 03, ..., 21 UTC: bins are labelled
by their END time t and cover (t - 3 h, t]. States are the mean of the samples at t - 2 h,
t - 1 h and t (for hourly input; the sample at t for 3-hourly input); fluxes (``cell_methods
= "time: sum"``) the sum of the per-step amounts ending at those times. A bin with any
sample missing (edges of the record, gaps, NaN amounts) is NaN, never a partial sum or mean.

Split out of ``era5.py`` (issue 14: no module over 800 lines): :func:`model.data.era5.read_era5`
calls :func:`deaccumulate`; :func:`model.data.era5_write.write_era5_netcdf` inverts it.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError
from .era5_grib import ACCUMULATED, ERA5_LAND, NON_NEGATIVE

__all__ = ["TimeAxisError", "deaccumulate", "to_3hourly"]


class TimeAxisError(InputError):
    """Times that are not strictly increasing, duplicated, or overlapping between files."""


def _time_step(times: pd.DatetimeIndex) -> pd.Timedelta | None:
    if times.size < 2:
        return None
    d = pd.Series(np.diff(times.values)).value_counts()
    return pd.Timedelta(d.index[0])


def deaccumulate(ds: xr.Dataset, product: str = ERA5_LAND) -> xr.Dataset:
    """Per-step amounts from ERA5-Land accumulations (accumulated from 00 UTC).

    Parameters
    ----------
    ds : xr.Dataset
        Dims ``(time, lat, lon)``, accumulated variables (:data:`ACCUMULATED`) as the CDS
        delivers them. Times must be on multiples of the native step ``dt`` from 00 UTC, and
        ``dt`` must divide 24 h.
    product : {"ERA5-Land", "ERA5"}
        ERA5 hourly accumulations are already per hour: only the attributes are set.

    Returns
    -------
    xr.Dataset
        Same dims; accumulated variables hold the amount over (t - dt, t] in their units
        (m, m of water equivalent, J m-2), with ``cell_methods = "time: sum"``. Amounts whose
        previous sample is missing are NaN; negative amounts of :data:`NON_NEGATIVE` fields
        are clipped to 0.
    """
    acc = [v for v in ds.data_vars if v in ACCUMULATED and "time" in ds[v].dims]
    if not acc:
        return ds
    ds = ds.copy()
    times = pd.DatetimeIndex(ds["time"].values)
    dt = _time_step(times)
    if product != ERA5_LAND:
        for v in acc:
            ds[v].attrs.update(cell_methods="time: sum",
                               accumulation="per native step, as delivered (ERA5 accumulations are per hour)")
        return ds
    if dt is None:
        for v in acc:
            ds[v] = xr.full_like(ds[v], np.nan)
            ds[v].attrs.update(cell_methods="time: sum", accumulation="de-accumulated, per native step")
        return ds
    day = pd.Timedelta("1D")
    offsets = times - times.normalize()
    if (day % dt) != pd.Timedelta(0) or ((offsets % dt) != pd.Timedelta(0)).any():
        raise InputError(f"cannot de-accumulate: time step {dt} does not divide 24 h or times are not aligned to it",
                         "use hourly (or 3-hourly) ERA5-Land data on whole hours from 00 UTC")
    prev_t = times - dt
    restart_np = np.asarray(prev_t == prev_t.normalize())
    # times are sorted, unique and on multiples of dt: the sample at t - dt, when present,
    # is the previous one
    has_prev = np.zeros(times.size, bool)
    has_prev[1:] = (times[1:] - times[:-1]) == dt
    restart = xr.DataArray(restart_np, dims="time", coords={"time": ds["time"]})
    for v in acc:
        tax = ds[v].dims.index("time")
        if isinstance(ds[v].data, np.ndarray):
            # NumPy: in float32 (the difference of two float32 numbers, rounded once, is what
            # float64 arithmetic would give after casting back)
            a = np.moveaxis(np.asarray(ds[v].data, dtype=np.float32), tax, 0)
            out = np.empty_like(a)
            out[0] = np.nan
            np.subtract(a[1:], a[:-1], out=out[1:])
            out[~has_prev & ~restart_np] = np.nan
            out[restart_np] = a[restart_np]
            if v in NON_NEGATIVE:
                _warn_if_not_accumulated(v, out)
                np.maximum(out, 0, out=out)  # NaN stays NaN
            amount = ds[v].copy(data=np.moveaxis(out, 0, tax))
        else:
            cur = ds[v].astype(np.float32)
            prev = cur.shift(time=1).where(xr.DataArray(has_prev, dims="time", coords={"time": ds["time"]}))
            amount = xr.where(restart, cur, cur - prev)
            if v in NON_NEGATIVE:
                amount = amount.clip(min=0)
            amount = amount.astype(np.float32).transpose(*ds[v].dims)
        attrs = dict(ds[v].attrs)
        attrs.update(cell_methods="time: sum", accumulation="de-accumulated, per native step")
        ds[v] = amount
        ds[v].attrs = attrs
    return ds


def _warn_if_not_accumulated(name: str, amounts: np.ndarray) -> None:
    """Negative amounts of a non-negative field beyond rounding: probably ERA5 read as ERA5-Land."""
    if not np.isfinite(amounts).any():
        return
    neg = float(np.nanmin(amounts))
    if neg >= 0:
        return
    big = float(np.nanmax(np.abs(amounts)))
    if neg < -0.01 * big:
        warnings.warn(f"{name}: de-accumulated amounts down to {neg:.3g} (largest {big:.3g}): the field does not "
                      "look accumulated from 00 UTC -- is it ERA5 rather than ERA5-Land? (pass product='era5')",
                      UserWarning, stacklevel=4)


def _fmt_td(td: pd.Timedelta) -> str:
    s = int(td.total_seconds())
    if s % 3600 == 0:
        return f"{s // 3600}h"
    return f"{s}s"


# --------------------------------------------------------------------------------------
# Aggregation
# --------------------------------------------------------------------------------------
def _is_flux(v: xr.DataArray) -> bool:
    return "time: sum" in str(v.attrs.get("cell_methods", ""))


def to_3hourly(ds: xr.Dataset, hours: int = 3) -> xr.Dataset:
    """Aggregate a regular series (1 h, 3 h, or any step dividing 3 h) to 3-hourly product steps.

    Parameters
    ----------
    ds : xr.Dataset
        As :func:`read_era5` returns it: dims ``(time, ...)``; variables with
        ``cell_methods = "time: sum"`` are fluxes (per-step amounts), the others states.
    hours : int
        Bin length (3 for the product).

    Returns
    -------
    xr.Dataset
        ``time`` = bin END times on 00, 03, ..., 21 UTC, from the first bin end at or after
        the first sample to the first bin end at or after the last sample. Each bin covers
        (t - 3 h, t]: states are the mean of the samples at t - 2 h, t - 1 h, t (hourly input),
        fluxes the sum of the amounts ending at those times (units unchanged: an amount per
        3 h). Bins with any sample absent or NaN (the edges of the record, gaps) are NaN.
        Units, standard names and long names are kept; ``cell_methods`` is "time: mean" for
        states and "time: sum" for fluxes; attrs ``aggregation`` say how.
    """
    if "time" not in ds.dims:
        raise InputError("no time dimension to aggregate", "pass a Dataset from read_era5")
    times = pd.DatetimeIndex(ds["time"].values)
    if not times.is_monotonic_increasing or times.has_duplicates:
        raise TimeAxisError("times are not strictly increasing", "sort the data and drop duplicates first")
    width = pd.Timedelta(hours=hours)
    dt = _time_step(times) or width
    if dt > width or (width % dt) != pd.Timedelta(0):
        raise InputError(f"time step {_fmt_td(dt)} does not divide {hours} h",
                         "aggregate hourly or 3-hourly data (resample other steps first)")
    offsets = times - times.normalize()
    if ((offsets % dt) != pd.Timedelta(0)).any():
        raise InputError(f"times are not on multiples of {_fmt_td(dt)} from 00 UTC",
                         "shift or resample the series onto whole steps first")
    n = int(width / dt)
    first_end = times[0].ceil(width)
    last_end = times[-1].ceil(width)
    ends = pd.date_range(first_end, last_end, freq=width)
    full = pd.date_range(first_end - width + dt, last_end, freq=dt)
    src = ds.reindex(time=full)
    out = {}
    for name, v in src.data_vars.items():
        if "time" not in v.dims:
            out[name] = ds[name]
            continue
        w = v.drop_vars("time").coarsen(time=n, boundary="exact").construct(time=("time", "__k"))
        flux = _is_flux(ds[name])
        agg = w.sum("__k", skipna=False) if flux else w.mean("__k", skipna=False)
        agg = agg.assign_coords(time=ends.values).astype(v.dtype)
        attrs = dict(ds[name].attrs)
        if flux:
            attrs["cell_methods"] = "time: sum"
            attrs["accumulation"] = f"sum of the per-step amounts over ({hours} h before the time label, time label]"
            attrs["aggregation"] = f"sum over (t-{hours}h, t]; NaN where any of the {n} steps is missing"
        else:
            attrs["cell_methods"] = "time: mean"
            attrs["aggregation"] = (f"mean of the {n} samples in (t-{hours}h, t]"
                                    f"{' (t-2h, t-1h, t)' if n == 3 else ''}; NaN where any is missing")
        agg.attrs = attrs
        out[name] = agg
    res = xr.Dataset(out, attrs=dict(ds.attrs))
    res["time"].attrs = {"standard_name": "time", "long_name": f"end of the {hours}-hourly bin (UTC)"}
    res.attrs["time_step"] = f"{hours}h"
    return res
