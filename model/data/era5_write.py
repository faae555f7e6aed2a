"""ERA5-Land and ERA5 writer: CDS-layout NetCDF files of what :func:`model.data.era5.read_era5` returns.

Writing
-------
:func:`write_era5_netcdf` writes what :func:`read_era5` returns back into a CDS-layout file
(new: ``valid_time``, float32, zlib + shuffle, optional ``least_significant_digit``
quantisation; old: ``time``, int16 ``scale_factor``/``add_offset`` packing), ``latitude``
descending, accumulations RE-accumulated from 00 UTC as the CDS delivers them.

The virtual Tibetan Plateau delivers its ERA5-Land-like forcing this way. Split out of
``era5.py`` (issue 14: no module over 800 lines); it imports the reader side
(:mod:`model.data.era5`, :mod:`model.data.era5_grib`, :mod:`model.data.era5_time`), never the
reverse.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import netCDF4
import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError, unknown_name
from ..io import atomic_path
from .era5 import _axis_order
from .era5_grib import _PRODUCT_ALIASES, ACCUMULATED, ERA5_LAND, PARAMS, _cf_units
from .era5_time import TimeAxisError, _time_step

__all__ = ["reaccumulate", "write_era5_monthly", "write_era5_netcdf"]


# --------------------------------------------------------------------------------------
# Writing
# --------------------------------------------------------------------------------------
def _accumulation_windows(times: pd.DatetimeIndex) -> list[tuple[int, int, bool]]:
    """Index ranges [i0, i1) of the 00 UTC accumulation windows (t in (D 00, D+1 00]).

    The flag says whether the window is complete (its first step starts at 00 UTC), so
    that the accumulated values are those the CDS would deliver.
    """
    key = (times - pd.Timedelta(1, "ns")).normalize()
    out = []
    i0 = 0
    dt = _time_step(times)
    for i in range(1, times.size + 1):
        if i == times.size or key[i] != key[i0]:
            first = times[i0]
            complete = dt is not None and (first - dt) == key[i0]
            if complete and i - i0 > 1:
                complete = bool(np.all(np.diff(times[i0:i].values) == np.timedelta64(dt)))
            out.append((i0, i, complete))
            i0 = i
    return out


def reaccumulate(values: np.ndarray, times: pd.DatetimeIndex) -> np.ndarray:
    """Accumulate per-step amounts from 00 UTC as ERA5-Land delivers them.

    Parameters
    ----------
    values : ndarray (time, ...)
        Amounts over (t - dt, t].
    times : DatetimeIndex
        The step end times.

    Returns
    -------
    ndarray, float64
        ``acc[t]`` = sum of the amounts over (00 UTC, t] (the value at 00 UTC is the previous
        day's 24 h sum). NaN where the accumulation window is incomplete (the record starts
        after its first step, or a step inside it is missing/NaN): such a value cannot be
        what the CDS would deliver.
    """
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape, np.nan)
    for i0, i1, complete in _accumulation_windows(times):
        if complete:
            out[i0:i1] = np.cumsum(v[i0:i1], axis=0)
    return out


def _lsd_for(name: str, lsd) -> int | None:
    if lsd is None or lsd is False:
        return None
    if isinstance(lsd, dict):
        if name in lsd:
            return lsd[name]
        return PARAMS[name].lsd if name in PARAMS else None
    if lsd == "auto" or lsd is True:
        return PARAMS[name].lsd if name in PARAMS else None
    return int(lsd)


def write_era5_netcdf(path, ds: xr.Dataset, layout: str = "new", complevel: int = 1, *,
                      least_significant_digit="auto", product: str | None = None,
                      time_chunk: int = 24, history: str | None = None, period=None) -> Path:
    """Write a CDS-layout ERA5-Land (or ERA5) NetCDF file from what :func:`read_era5` returns.

    Parameters
    ----------
    path : str or Path
        Output file (written atomically: a temporary sibling renamed on success).
    ds : xr.Dataset
        Dims ``(time, lat, lon)``, regular time step dividing 24 h, lat ascending or descending,
        variables under short names (units as :data:`PARAMS`); accumulated variables
        (:data:`ACCUMULATED`) as per-step amounts (NumPy or Dask arrays).
    layout : {"new", "old"}
        ``"new"``: the 2024+ CDS layout: dims ``valid_time`` (int64 s since 1970),
        ``latitude`` (descending), ``longitude``; scalar ``number``, ``expver(valid_time)``;
        float32 with NaN fill, GRIB_* attributes; NETCDF4, zlib + shuffle, optional
        quantisation (``least_significant_digit``). ``"old"``: the grib_to_netcdf layout:
        ``time`` (int32 hours since 1900, unlimited), float32 ``latitude``/``longitude``,
        int16 with per-variable ``scale_factor``/``add_offset`` (_FillValue = missing_value =
        -32767; precision = scale_factor / 2); NETCDF4_CLASSIC with zlib + shuffle, or
        NETCDF3_64BIT_OFFSET (as the CDS delivered it) with ``complevel=0``.
    complevel : int
        zlib level 0..9 (0 = no compression).
    least_significant_digit : "auto", int, dict or None
        New layout only: decimal digits kept (absolute precision 10**-d, netCDF4's
        quantisation, which makes zlib far more effective). "auto" uses :data:`PARAMS` ``lsd``
        (e.g. 4 for swvl1, 2 for temperatures, 6 for tp in m); None keeps full float32.
    product : {"ERA5-Land", "ERA5"}, optional
        ERA5-Land re-accumulates the accumulated fields from 00 UTC; ERA5 writes them per hour.
        Default: ``ds.attrs["product"]`` or ERA5-Land.
    time_chunk : int
        Time steps per HDF5 chunk (chunks are ``(time_chunk, nlat, nlon)``).
    history : str, optional
        Text for the global ``history`` attribute.
    period : (start, end), optional
        Write only the times in [start, end] (inclusive). The accumulations are computed from
        all of ``ds``, so a monthly file can carry its 00 UTC day-1 value (the previous day's
        total), as CDS monthly files do. See :func:`write_era5_monthly`.

    Returns
    -------
    Path
        The written file.

    Notes
    -----
    Accumulation windows that the data do not cover completely (the first day when the
    record does not start at 00 UTC + dt, gaps, NaN amounts) are written as NaN/fill: the
    CDS never delivers a partial accumulation, and the reader would otherwise take it for a
    whole one.
    """
    layout = str(layout).lower()
    if layout not in ("new", "old"):
        raise unknown_name("CDS NetCDF layout", layout, ["new", "old"])
    plan = _plan_era5(ds, product, complevel, time_chunk, period)
    fmt = "NETCDF4" if layout == "new" else ("NETCDF4_CLASSIC" if plan.complevel > 0 else "NETCDF3_64BIT_OFFSET")
    hist = history or (f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%dT%H:%M} {plan.prod} hourly data written in the CDS "
                       f"{layout} NetCDF layout by sm-downscale (model.data.era5.write_era5_netcdf)")
    with atomic_path(path) as tmp:
        nc = netCDF4.Dataset(tmp, "w", format=fmt)
        try:
            if layout == "new":
                _new_layout_axes(nc, plan, hist)
            else:
                _old_layout_axes(nc, plan, hist)
            dims = ("valid_time", "latitude", "longitude") if layout == "new" else ("time", "latitude", "longitude")
            comp = {"zlib": plan.complevel > 0, "complevel": max(plan.complevel, 1) if plan.complevel > 0 else 4,
                    "shuffle": plan.complevel > 0}
            if fmt.startswith("NETCDF4"):
                comp["chunksizes"] = (plan.tchunk, plan.ny, plan.nx)
            for name in plan.names:
                if layout == "new":
                    _write_new_variable(nc, plan, name, dims, comp, _lsd_for(name, least_significant_digit))
                else:
                    _write_old_variable(nc, plan, name, dims, comp)
        finally:
            nc.close()
    return Path(path)


@dataclass
class _Era5Plan:
    """What :func:`write_era5_netcdf` writes: the checked dataset (time ascending, latitude
    descending), the written steps ``[sel0, sel1)`` of ``all_times`` and the day-aligned
    blocks (one block of one variable in memory at a time)."""

    ds: xr.Dataset
    prod: str
    all_times: pd.DatetimeIndex
    sel0: int
    sel1: int
    lat: np.ndarray
    lon: np.ndarray
    names: list
    complevel: int
    tchunk: int
    blocks: list

    @property
    def times(self) -> pd.DatetimeIndex:
        return self.all_times[self.sel0:self.sel1]

    @property
    def ny(self) -> int:
        return self.lat.size

    @property
    def nx(self) -> int:
        return self.lon.size

    @property
    def nt(self) -> int:
        return self.sel1 - self.sel0

    @property
    def dlat(self) -> float:
        return abs(float(np.median(np.diff(self.lat)))) if self.ny > 1 else 0.0

    @property
    def dlon(self) -> float:
        return abs(float(np.median(np.diff(self.lon)))) if self.nx > 1 else 0.0

    def block_values(self, name: str, i0: int, i1: int, wins) -> np.ndarray:
        """The values of ``name`` written for the block [i0, i1) (re-accumulated from 00 UTC
        for ERA5-Land's accumulated fields), cut to the written steps."""
        accumulate = name in ACCUMULATED and self.prod == ERA5_LAND
        vals = np.asarray(self.ds[name].isel(time=slice(i0, i1)).transpose("time", "lat", "lon").values,
                          dtype=np.float64 if accumulate else np.float32)
        if accumulate:
            acc = np.full(vals.shape, np.nan)
            for a, b, complete in wins:
                if complete:
                    acc[a - i0:b - i0] = np.cumsum(vals[a - i0:b - i0], axis=0)
            vals = acc
        a, b = max(i0, self.sel0), min(i1, self.sel1)
        return vals[a - i0:b - i0]

    def out_slice(self, i0: int, i1: int) -> slice:
        return slice(max(i0, self.sel0) - self.sel0, min(i1, self.sel1) - self.sel0)

    def meta(self, name: str) -> dict:
        p = PARAMS.get(name)
        src = self.ds[name].attrs
        m = {"long_name": p.long_name if p else src.get("long_name", name),
             "units": p.units if p else src.get("units", "1")}
        std = (p.standard_name if p else src.get("standard_name")) or None
        return m | {"standard_name": std}


def _plan_era5(ds: xr.Dataset, product, complevel, time_chunk, period) -> _Era5Plan:
    """Check ``ds`` (dims, time axis, units), order it as the CDS does and plan the blocks."""
    prod = _PRODUCT_ALIASES.get(str(product or ds.attrs.get("product", ERA5_LAND)).lower(), ERA5_LAND)
    if not {"time", "lat", "lon"} <= set(ds.dims):
        raise InputError(f"dataset dims {tuple(ds.dims)} are not (time, lat, lon)", "pass what read_era5 returns")
    if not pd.DatetimeIndex(ds["time"].values).is_monotonic_increasing:
        ds = ds.sortby("time")
    times = pd.DatetimeIndex(ds["time"].values)
    if times.has_duplicates:
        raise TimeAxisError("duplicated times in the dataset", "drop the duplicates before writing")
    dt = _time_step(times)
    if dt is not None and (pd.Timedelta("1D") % dt) != pd.Timedelta(0):
        raise InputError(f"time step {dt} does not divide 24 h", "write hourly (or 3-hourly) data")
    order = _axis_order(-np.asarray(ds["lat"].values, dtype=np.float64))  # latitude descending
    if order is not None:
        ds = ds.isel(lat=order)
    lat = ds["lat"].values.astype(np.float64)
    lon = ds["lon"].values.astype(np.float64)
    sel0, sel1 = _period_steps(times, period)
    names = [v for v in ds.data_vars if set(ds[v].dims) == {"time", "lat", "lon"}]
    for name in names:
        given = ds[name].attrs.get("units")
        if name in PARAMS and given is not None and _cf_units(given) != PARAMS[name].cf_units:
            raise InputError(f"{name} is in {given!r}, the CDS files carry {PARAMS[name].units!r}",
                             f"convert {name} to {PARAMS[name].cf_units} before writing")
    complevel = int(complevel)
    tchunk = max(1, min(int(time_chunk), sel1 - sel0))
    return _Era5Plan(ds, prod, times, sel0, sel1, lat, lon, names, complevel, tchunk,
                     _time_blocks(times, sel0, sel1, tchunk))


def _period_steps(all_times: pd.DatetimeIndex, period) -> tuple[int, int]:
    """[sel0, sel1): the steps of ``all_times`` in ``period`` (all of them for None)."""
    if period is None:
        return 0, all_times.size
    p0, p1 = (pd.Timestamp(period[0]), pd.Timestamp(period[1]))
    inside = np.nonzero((all_times >= p0) & (all_times <= p1))[0]
    sel0, sel1 = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)
    if sel1 <= sel0:
        raise InputError(f"no time step in the period {p0} .. {p1}", "check the period against the data")
    return sel0, sel1


def _time_blocks(all_times: pd.DatetimeIndex, sel0: int, sel1: int, tchunk: int) -> list:
    """Day-aligned blocks (i0, i1, accumulation windows) of at least ``max(tchunk, 96)``
    steps over the written steps: one block at a time keeps memory to a few days of one
    variable."""
    windows = [w for w in _accumulation_windows(all_times) if w[1] > sel0 and w[0] < sel1]
    blocks: list[tuple[int, int, list]] = []
    cur: list = []
    for w in windows:
        cur.append(w)
        if sum(b - a for a, b, _ in cur) >= max(tchunk, 24 * 4):
            blocks.append((cur[0][0], cur[-1][1], cur))
            cur = []
    if cur:
        blocks.append((cur[0][0], cur[-1][1], cur))
    return blocks


def _new_layout_axes(nc, plan: _Era5Plan, hist: str) -> None:
    """Global attributes, dimensions and coordinates of the 2024+ CDS layout."""
    nt, ny, nx = plan.nt, plan.ny, plan.nx
    nc.setncattr("GRIB_centre", "ecmf")
    nc.setncattr("GRIB_centreDescription", "European Centre for Medium-Range Weather Forecasts")
    nc.setncattr("GRIB_subCentre", np.int64(0))
    nc.setncattr("Conventions", "CF-1.7")
    nc.setncattr("institution", "European Centre for Medium-Range Weather Forecasts")
    nc.setncattr("history", hist)
    nc.createDimension("valid_time", nt)
    nc.createDimension("latitude", ny)
    nc.createDimension("longitude", nx)
    num = nc.createVariable("number", "i8", ())
    num.setncatts({"long_name": "ensemble member numerical id", "units": "1", "standard_name": "realization"})
    num.assignValue(0)
    vt = nc.createVariable("valid_time", "i8", ("valid_time",))
    vt.setncatts({"long_name": "time", "standard_name": "time", "units": "seconds since 1970-01-01",
                  "calendar": "proleptic_gregorian"})
    vt[:] = ((plan.times - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")).astype(np.int64)
    la = nc.createVariable("latitude", "f8", ("latitude",), fill_value=np.nan)
    la.setncatts({"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude",
                  "stored_direction": "decreasing"})
    la[:] = plan.lat
    lo = nc.createVariable("longitude", "f8", ("longitude",), fill_value=np.nan)
    lo.setncatts({"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"})
    lo[:] = plan.lon
    ev = nc.createVariable("expver", str, ("valid_time",))
    ev.setncattr("long_name", "Experiment Version")
    ev[:] = np.array(["0001"] * nt, dtype=object)


def _old_layout_axes(nc, plan: _Era5Plan, hist: str) -> None:
    """Global attributes, dimensions and coordinates of the grib_to_netcdf (old CDS) layout."""
    nc.setncattr("Conventions", "CF-1.6")
    nc.setncattr("history", hist)
    nc.createDimension("longitude", plan.nx)
    nc.createDimension("latitude", plan.ny)
    nc.createDimension("time", None)
    lo = nc.createVariable("longitude", "f4", ("longitude",))
    lo.setncatts({"units": "degrees_east", "long_name": "longitude"})
    lo[:] = plan.lon.astype(np.float32)
    la = nc.createVariable("latitude", "f4", ("latitude",))
    la.setncatts({"units": "degrees_north", "long_name": "latitude"})
    la[:] = plan.lat.astype(np.float32)
    tv = nc.createVariable("time", "i4", ("time",))
    tv.setncatts({"units": "hours since 1900-01-01 00:00:00.0", "long_name": "time", "calendar": "gregorian"})
    hours = (plan.times - pd.Timestamp("1900-01-01")) / pd.Timedelta("1h")
    if not np.allclose(hours, np.round(hours)):
        raise InputError("the old CDS layout stores whole hours only", "use layout='new'")
    tv[:] = np.round(hours).astype(np.int32)


def _grib_attrs(p, plan: _Era5Plan, accum: bool) -> dict:
    """The GRIB_* attributes cfgrib gives a variable of the new CDS layout."""
    ny, nx, lat, lon = plan.ny, plan.nx, plan.lat, plan.lon
    return {
        "GRIB_paramId": np.int64(p.param_id),
        "GRIB_dataType": "fc" if accum else "an",
        "GRIB_numberOfPoints": np.int64(ny * nx),
        "GRIB_typeOfLevel": p.level,
        "GRIB_stepUnits": np.int64(1),
        "GRIB_stepType": "accum" if accum else "instant",
        "GRIB_gridType": "regular_ll",
        "GRIB_uvRelativeToGrid": np.int64(0),
        "GRIB_NV": np.int64(0),
        "GRIB_Nx": np.int64(nx),
        "GRIB_Ny": np.int64(ny),
        "GRIB_cfName": p.standard_name or "unknown",
        "GRIB_cfVarName": p.short,
        "GRIB_gridDefinitionDescription": "Latitude/Longitude Grid",
        "GRIB_iDirectionIncrementInDegrees": round(plan.dlon, 6),
        "GRIB_iScansNegatively": np.int64(0),
        "GRIB_jDirectionIncrementInDegrees": round(plan.dlat, 6),
        "GRIB_jPointsAreConsecutive": np.int64(0),
        "GRIB_jScansPositively": np.int64(0),
        "GRIB_latitudeOfFirstGridPointInDegrees": float(lat[0]),
        "GRIB_latitudeOfLastGridPointInDegrees": float(lat[-1]),
        "GRIB_longitudeOfFirstGridPointInDegrees": float(lon[0]),
        "GRIB_longitudeOfLastGridPointInDegrees": float(lon[-1]),
        "GRIB_missingValue": 3.4028234663852886e38,
        "GRIB_name": p.long_name,
        "GRIB_shortName": p.grib_short,
        "GRIB_totalNumber": np.int64(0),
        "GRIB_units": p.units,
    }


def _write_new_variable(nc, plan: _Era5Plan, name: str, dims, comp: dict, lsd) -> None:
    """One variable of the new layout: float32, NaN fill, GRIB_* attributes."""
    m = plan.meta(name)
    p = PARAMS.get(name)
    var = nc.createVariable(name, "f4", dims, fill_value=np.float32(np.nan), least_significant_digit=lsd, **comp)
    attrs = {}
    if p is not None:
        attrs.update(_grib_attrs(p, plan, name in ACCUMULATED))
    attrs.update({"long_name": m["long_name"], "units": m["units"], "standard_name": m["standard_name"] or "unknown"})
    var.setncatts(attrs)
    for i0, i1, wins in plan.blocks:
        var[plan.out_slice(i0, i1)] = plan.block_values(name, i0, i1, wins).astype(np.float32)


def _write_old_variable(nc, plan: _Era5Plan, name: str, dims, comp: dict) -> None:
    """One variable of the old layout: int16 packed with scale_factor/add_offset."""
    m = plan.meta(name)
    # first pass: the range of the (re-accumulated) values sets the int16 packing
    lo_v, hi_v = np.inf, -np.inf
    for i0, i1, wins in plan.blocks:
        b = plan.block_values(name, i0, i1, wins)
        if np.isfinite(b).any():
            lo_v = min(lo_v, float(np.nanmin(b)))
            hi_v = max(hi_v, float(np.nanmax(b)))
    if not np.isfinite(lo_v):
        lo_v, hi_v = 0.0, 0.0
    scale = (hi_v - lo_v) / 65533.0 if hi_v > lo_v else 1.0
    offset = lo_v + 32766.0 * scale if hi_v > lo_v else lo_v
    var = nc.createVariable(name, "i2", dims, fill_value=np.int16(-32767), **comp)
    var.set_auto_maskandscale(False)
    attrs = {"scale_factor": np.float64(scale), "add_offset": np.float64(offset),
             "missing_value": np.int16(-32767), "units": m["units"], "long_name": m["long_name"]}
    if m["standard_name"]:
        attrs["standard_name"] = m["standard_name"]
    var.setncatts(attrs)
    for i0, i1, wins in plan.blocks:
        b = plan.block_values(name, i0, i1, wins)
        packed = np.round((b - offset) / scale)
        packed = np.where(np.isfinite(packed), np.clip(packed, -32766, 32767), -32767).astype(np.int16)
        var[plan.out_slice(i0, i1)] = packed


def write_era5_monthly(folder, ds: xr.Dataset, prefix: str = "era5-land", **kwargs) -> list[Path]:
    """Write ``ds`` as CDS-like monthly files ``<folder>/<prefix>_YYYY-MM.nc``.

    Each file holds the steps 00 UTC of day 1 .. 23 UTC of the last day of its month, as CDS
    monthly downloads do; the accumulations are computed over all of ``ds`` (so the 00 UTC
    day-1 value is the previous day's complete 24 h total where ``ds`` has that day).

    Parameters
    ----------
    folder : str or Path
        Output folder (created).
    ds : xr.Dataset
        As for :func:`write_era5_netcdf`.
    prefix : str
        File name prefix.
    **kwargs
        Passed to :func:`write_era5_netcdf` (``layout``, ``complevel``...).

    Returns
    -------
    list of Path
        The files written, in time order.
    """
    folder = Path(folder)
    times = pd.DatetimeIndex(ds["time"].values)
    months = sorted(set(times.to_period("M")))
    out = []
    for m in months:
        start = m.start_time
        end = (m + 1).start_time - pd.Timedelta(1, "s")
        out.append(write_era5_netcdf(folder / f"{prefix}_{m.strftime('%Y-%m')}.nc", ds, period=(start, end), **kwargs))
    return out
