"""ERA5-Land and ERA5 reader: CDS NetCDF (old and new layouts) and GRIB.

Reading
-------
:func:`read_era5` accepts the layouts the Climate Data Store (CDS) has delivered:

* **old NetCDF** (``grib_to_netcdf``, before 2024): dimension ``time`` (int32 hours since
  1900), ``latitude`` descending, ``longitude`` 0..360, data packed as int16 with
  ``scale_factor``/``add_offset`` and ``_FillValue``/``missing_value`` -32767; NetCDF3 or
  NetCDF4. ERA5T months may carry an ``expver`` dimension (1 = final, 5 = ERA5T): the two are
  combined (final first).
* **new NetCDF** (2024+, cfgrib-based converter): dimension ``valid_time`` (int64 seconds
  since 1970), float32 with NaN fill, scalar ``number`` and per-step ``expver`` coordinates,
  ``GRIB_*`` attributes, ``standard_name = "unknown"`` for many fields. A CDS ``.zip`` holding
  several NetCDF files (one per GRIB ``stepType``) is read as one.
* **GRIB** (editions 1 and 2) through cfgrib/ecCodes: ``time`` + ``step`` (forecast base and
  lead) are turned into the valid time; files that mix levels (``surface`` and
  ``depthBelowLandLayer``) are opened group by group and merged; files that hold the same
  field on several grids raise :class:`MultipleGridsError` listing the ``filter_by_keys`` that
  pick one (pass it through ``read_era5(..., filter_by_keys=...)``).

The result always has dims ``(time, lat, lon)``, ``lat`` ascending, ``lon`` in -180..180
(ascending), float32 variables under the ECMWF short names (``swvl1``, ``stl1``, ``skt``,
``t2m``, ``d2m``, ``sd``, ``tp``, ``e``, ``ssrd`` ... and any other field present), CF
attributes ``units``, ``standard_name`` (where one exists), ``long_name`` and ``GRIB_paramId``.

Accumulated fields are de-accumulated by the reader to the amount over each native step
(:func:`model.data.era5_time.deaccumulate`, where the convention is set out).

Product detection (``product="auto"``): the GRIB ``marsClass`` (``l5`` = ERA5-Land, ``ea`` =
ERA5), then the text of the global attributes (``ERA5-Land``), then the grid spacing
(0.1 deg = ERA5-Land, 0.25 deg = ERA5); anything else is taken as ERA5. Pass ``product``
to override (ERA5-Land interpolated by the CDS to 0.25 deg must be named explicitly).

Modules (issue 14: no module over 800 lines)
--------------------------------------------
* this module: :func:`read_era5` (NetCDF, CDS zip, the GRIB files through
  :mod:`model.data.era5_grib`), :func:`describe`, :func:`regrid_to_tp10`;
* :mod:`model.data.era5_grib`: product names, the parameter table
  (:data:`~model.data.era5_grib.PARAMS`, :func:`~model.data.era5_grib.short_name`) and the
  GRIB decoding;
* :mod:`model.data.era5_time`: the time axis: :func:`~model.data.era5_time.deaccumulate`,
  :func:`~model.data.era5_time.to_3hourly`, :class:`~model.data.era5_time.TimeAxisError`;
* :mod:`model.data.era5_write`: :func:`~model.data.era5_write.write_era5_netcdf`,
  :func:`~model.data.era5_write.write_era5_monthly`, :func:`~model.data.era5_write.reaccumulate`.
"""

from __future__ import annotations

import glob as _glob
import tempfile
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd
import scipy.io
import xarray as xr

from ..errors import (
    CoverageError,
    InputError,
    MissingVariableError,
    UnreadableFileError,
    WrongProductError,
    unknown_name,
)
from ..grids.core import TP_BBOX, Grid, tp10
from ..grids.regrid import Regridder
from .era5_grib import (
    _BY_ID,
    _PRODUCT_ALIASES,
    ERA5,
    ERA5_LAND,
    NON_NEGATIVE,
    PARAMS,
    _cf_units,
    _read_grib,
    short_name,
)
from .era5_time import TimeAxisError, _fmt_td, _time_step, deaccumulate

__all__ = ["describe", "latlon_grid", "read_era5", "regrid_to_tp10", "TP_BBOX"]


# --------------------------------------------------------------------------------------
# Reading
# --------------------------------------------------------------------------------------
def _expand_paths(paths) -> list[Path]:
    if isinstance(paths, (str, Path)):
        items = [paths]
    else:
        items = list(paths)
    out: list[Path] = []
    for item in items:
        s = str(item)
        if any(ch in s for ch in "*?["):
            hits = sorted(_glob.glob(s))
            if not hits:
                raise InputError(f"no file matches the pattern {s!r}",
                                 "check the folder and the pattern (e.g. era5-land_2016-*.nc)")
            out.extend(Path(h) for h in hits)
        else:
            p = Path(s).expanduser()
            if not p.exists():
                raise InputError("file not found", "check the path", p)
            if p.is_dir():
                hits = sorted([q for q in p.iterdir() if q.suffix.lower() in (".nc", ".grib", ".grb", ".grib2", ".zip")])
                if not hits:
                    raise InputError("folder holds no .nc, .grib or .zip file", "point at the ERA5 files", p)
                out.extend(hits)
            else:
                out.append(p)
    if not out:
        raise InputError("no ERA5 file given", "pass a path, a glob pattern or a list of files")
    seen = set()
    uniq = []
    for p in out:
        r = p.resolve()
        if r in seen:
            raise TimeAxisError("the same file is given twice", "pass each file once", p)
        seen.add(r)
        uniq.append(p)
    return uniq


def _sniff(path: Path) -> str:
    try:
        with open(path, "rb") as fh:
            head = fh.read(8)
    except OSError as exc:
        raise UnreadableFileError(f"cannot open the file ({exc.strerror})", "check the path and permissions", path) from exc
    if head[:3] == b"CDF":
        return "netcdf3"
    if head[:4] == b"\x89HDF":
        return "netcdf4"
    if head[:4] == b"GRIB":
        return "grib"
    if head[:2] == b"PK":
        return "zip"
    if path.suffix.lower() in (".grib", ".grb", ".grib1", ".grib2") and b"GRIB" in _read_head(path, 4096):
        return "grib"
    raise UnreadableFileError(
        "neither NetCDF nor GRIB (unknown file signature)" if len(head) else "the file is empty",
        "download it again from the CDS (format NetCDF or GRIB)", path)


def _read_head(path: Path, n: int) -> bytes:
    with open(path, "rb") as fh:
        return fh.read(n)


def _check_classic_complete(path: Path) -> None:
    """NetCDF3 files are laid out by offsets: a truncated file still opens and reads zeros,
    so check the data section against the header with scipy's parser."""
    def probe(nc) -> None:
        for name in list(nc.variables):
            _ = nc.variables[name].data.shape  # views beyond the end of the file fail here

    try:
        nc = scipy.io.netcdf_file(str(path), mode="r", mmap=True)  # maps, reads nothing
        try:
            probe(nc)
        finally:
            nc.variables.clear()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                nc.close()
    except Exception as exc:  # noqa: BLE001 - any parser failure means a damaged file
        raise UnreadableFileError(f"truncated or corrupt NetCDF3 file ({exc})",
                                  "download the file again from the CDS", path) from exc


@dataclass
class _Piece:
    """One file (or one member of a CDS zip), normalised but not yet de-accumulated."""

    path: Path
    ds: xr.Dataset
    product_hint: str | None
    hint_reason: str
    spacing: float


def _open_netcdf(path: Path, kind: str, chunks) -> xr.Dataset:
    if kind == "netcdf3":
        _check_classic_complete(path)
    # eager reads go through Dask too (48-step chunks decode in parallel), then load()
    open_chunks = {"time": 48, "valid_time": 48} if chunks is None else chunks
    try:
        ds = xr.open_dataset(path, engine="netcdf4", chunks=open_chunks, decode_timedelta=False)
    except Exception as exc:  # noqa: BLE001
        raise UnreadableFileError(f"cannot read the NetCDF file ({type(exc).__name__}: {exc})",
                                  "the file is truncated or corrupt: download it again", path) from exc
    return ds


def _rename_dims(ds: xr.Dataset, path: Path) -> xr.Dataset:
    """Canonical names: time, lat, lon. Folds the new layout's valid_time and ERA5T expver."""
    ren = {}
    for a, b in (("latitude", "lat"), ("longitude", "lon")):
        if a in ds.variables and b not in ds.variables:
            ren[a] = b
    ds = ds.rename(ren)
    if "lat" not in ds.variables or "lon" not in ds.variables:
        raise InputError("no latitude/longitude coordinates", "is this an ERA5 file on a regular grid?", path)
    # forecast-style axes in NetCDF (forecast_reference_time + forecast_period)
    if "forecast_reference_time" in ds.dims and "forecast_period" in ds.dims:
        ds = ds.stack(__vt=("forecast_reference_time", "forecast_period"))
        vt = ds["forecast_reference_time"].values + ds["forecast_period"].values.astype("timedelta64[ns]")
        ds = ds.drop_vars(["forecast_reference_time", "forecast_period", "valid_time", "__vt"], errors="ignore")
        ds = ds.assign_coords(__vt=vt).rename(__vt="time")
    if "valid_time" in ds.dims:
        if "time" in ds.variables:
            ds = ds.drop_vars("time")
        ds = ds.rename(valid_time="time")
    if "expver" in ds.dims:  # old ERA5T layout: (time, expver, lat, lon), final (1) before ERA5T (5)
        order = sorted(ds["expver"].values.tolist(), key=lambda x: int(str(x).strip() or 0))
        parts = [ds.sel(expver=e, drop=True) for e in order]
        merged = parts[0]
        for p in parts[1:]:
            merged = merged.combine_first(p)
        ds = merged
    if "number" in ds.dims:
        if ds.sizes["number"] > 1:
            raise InputError(f"{ds.sizes['number']} ensemble members", "select one member first", path)
        ds = ds.isel(number=0)
    keep = {"time", "lat", "lon"}
    ds = ds.drop_vars([c for c in ds.coords if c not in keep], errors="ignore")
    if "time" not in ds.dims:
        if "time" in ds.coords:
            t = np.atleast_1d(ds["time"].values)
            ds = ds.drop_vars("time").expand_dims(time=t)
        else:
            raise InputError("no time axis (time or valid_time)", "is this an ERA5 hourly file?", path)
    if ds["lat"].ndim != 1 or ds["lon"].ndim != 1:
        raise InputError("latitude/longitude are not 1-D", "request a regular lat/lon grid from the CDS", path)
    return ds


def _regular_spacing(values: np.ndarray, what: str, path: Path) -> float:
    if values.size < 2:
        return float("nan")
    d = np.diff(np.sort(values))
    step = float(np.median(d))
    if step <= 0 or not np.allclose(d, step, rtol=1e-3, atol=1e-6):
        raise InputError(f"{what} is not evenly spaced (steps {d.min():g}..{d.max():g} deg)",
                         "request the data on a regular lat/lon grid (e.g. grid=[0.1, 0.1])", path)
    return step


def _axis_order(values: np.ndarray):
    """An indexer that sorts ``values``: None (already ascending), a reversing slice, or an array."""
    order = np.argsort(values, kind="stable")
    if np.array_equal(order, np.arange(values.size)):
        return None
    if np.array_equal(order, np.arange(values.size)[::-1]):
        return slice(None, None, -1)
    return order


def _as_slice(idx: np.ndarray):
    """Contiguous ascending indices as a slice (cheap lazy reads), else the array."""
    if idx.size and np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size)):
        return slice(int(idx[0]), int(idx[0]) + idx.size)
    return idx


def _normalise_grid(ds: xr.Dataset, bbox, path: Path) -> tuple[xr.Dataset, float, float, object]:
    """Round/wrap the coordinates and crop to ``bbox``, in the file's own order (cheap, lazy).

    Returns the cropped dataset, the grid spacings (deg) and a function that sorts lat and lon
    ascending (run it after loading: reordering lazily-read arrays is slow).
    """
    # float32 coordinates (old layout) carry ~1e-5 deg of noise: 88.05 -> 88.050003
    nd = 4 if ds["lat"].dtype == np.float32 or ds["lon"].dtype == np.float32 else 6
    lat = np.round(ds["lat"].values.astype(np.float64), nd)
    lon = np.round(ds["lon"].values.astype(np.float64), nd)
    lon = np.round(((lon + 180.0) % 360.0) - 180.0, nd)
    ds = ds.assign_coords(lat=("lat", lat), lon=("lon", lon))
    if np.unique(lon).size != lon.size:
        # global grids holding both 0 and 360
        _, first = np.unique(lon, return_index=True)
        ds = ds.isel(lon=np.sort(first))
        lon = ds["lon"].values
    if np.unique(lat).size != lat.size:
        raise InputError("duplicated latitudes", "the grid is damaged: download the file again", path)
    dlat = _regular_spacing(lat, "latitude", path)
    dlon = _regular_spacing(lon, "longitude", path)
    if bbox is not None:
        iy, ix = _crop_indices(lat, lon, bbox, dlat, dlon, path)
        ds = ds.isel(lat=_as_slice(iy), lon=_as_slice(ix))

    def sort(d: xr.Dataset) -> xr.Dataset:
        oy, ox = _axis_order(d["lat"].values), _axis_order(d["lon"].values)
        sel = {k: v for k, v in (("lat", oy), ("lon", ox)) if v is not None}
        if sel:
            d = d.isel(sel)
        d["lat"].attrs = {"standard_name": "latitude", "long_name": "latitude of cell centre", "units": "degrees_north"}
        d["lon"].attrs = {"standard_name": "longitude", "long_name": "longitude of cell centre", "units": "degrees_east"}
        return d

    return ds, dlat, dlon, sort


def _extent(lat: np.ndarray, lon: np.ndarray, dlat: float, dlon: float) -> tuple[float, float, float, float]:
    hy = 0.0 if np.isnan(dlat) else dlat / 2
    hx = 0.0 if np.isnan(dlon) else dlon / 2
    return (float(lon.min() - hx), float(max(lat.min() - hy, -90.0)), float(lon.max() + hx),
            float(min(lat.max() + hy, 90.0)))


def _crop_indices(lat: np.ndarray, lon: np.ndarray, bbox, dlat: float, dlon: float, path: Path):
    """Indices (file order, ascending) of the rows/columns whose cells overlap ``bbox``."""
    lon_min, lat_min, lon_max, lat_max = bbox
    ext = _extent(lat, lon, dlat, dlon)
    eps = 1e-6
    if ext[0] > lon_min + eps or ext[1] > lat_min + eps or ext[2] < lon_max - eps or ext[3] < lat_max - eps:
        raise CoverageError(
            f"the grid covers lon {ext[0]:g}..{ext[2]:g}, lat {ext[1]:g}..{ext[3]:g} (cell edges), which does not "
            f"contain the box lon {lon_min:g}..{lon_max:g}, lat {lat_min:g}..{lat_max:g}",
            "download the data for an area that contains the box (CDS 'area': "
            f"[{lat_max:g}, {lon_min:g}, {lat_min:g}, {lon_max:g}]) or pass bbox=None", path)
    hy = 0.0 if np.isnan(dlat) else dlat / 2
    hx = 0.0 if np.isnan(dlon) else dlon / 2
    iy = np.nonzero((lat + hy > lat_min + eps) & (lat - hy < lat_max - eps))[0]
    ix = np.nonzero((lon + hx > lon_min + eps) & (lon - hx < lon_max - eps))[0]
    if iy.size == 0 or ix.size == 0:
        raise CoverageError("no grid cell inside the box", "check the box and the file's area", path)
    return iy, ix


def _attrs_text(ds: xr.Dataset) -> str:
    return " ".join(str(v) for v in ds.attrs.values()).lower()


def _hint_from_attrs(ds: xr.Dataset) -> str | None:
    text = _attrs_text(ds)
    if "era5-land" in text or "era5_land" in text or "era5land" in text:
        return ERA5_LAND
    if "reanalysis-era5-single-levels" in text:
        return ERA5
    return None


def _standardise_vars(ds: xr.Dataset, product: str | None, path: Path) -> xr.Dataset:
    """Short names, float32, (time, lat, lon) order and CF attributes."""
    out = {}
    for name, v in ds.data_vars.items():
        if not {"lat", "lon"} <= set(v.dims):
            continue  # e.g. time bounds, scalar metadata
        short = None
        pid = v.attrs.get("GRIB_paramId")
        if pid is not None:
            try:
                short = _BY_ID.get(int(pid))
            except (TypeError, ValueError):
                short = None
        if short is None:
            cand = short_name(str(name), product)
            if cand in PARAMS:
                short = cand
        if short is None and v.attrs.get("long_name"):
            cand = short_name(str(v.attrs["long_name"]), product)
            if cand in PARAMS:
                short = cand
        short = short or str(name)
        if short in out:
            raise InputError(f"two variables map to {short!r} ({name!r} and another)",
                             "keep one of them in the file", path)
        dims = [d for d in ("time", "lat", "lon") if d in v.dims]
        extra = [d for d in v.dims if d not in dims]
        if extra:
            raise InputError(f"variable {name!r} has extra dimensions {extra}",
                             "request single-level fields only (one level per variable)", path)
        v = v.transpose(*dims)
        if v.dtype != np.float32:
            v = v.astype(np.float32)
        attrs = {}
        p = PARAMS.get(short)
        units = v.attrs.get("units", p.units if p else None)
        if units is not None:
            attrs["units"] = _cf_units(units)
        std = v.attrs.get("standard_name")
        if p is not None and p.standard_name:
            attrs["standard_name"] = p.standard_name
        elif std and std != "unknown":
            attrs["standard_name"] = std
        attrs["long_name"] = (p.long_name if p else None) or v.attrs.get("long_name") or v.attrs.get("GRIB_name") or short
        if p is not None:
            attrs["GRIB_paramId"] = p.param_id
        elif pid is not None:
            attrs["GRIB_paramId"] = int(pid)
        if short == "e" or (p is not None and p.accumulated and p.standard_name is None and short not in NON_NEGATIVE):
            attrs["comment"] = "ECMWF sign convention: downward fluxes positive (negative = evaporation / loss)"
        if v.attrs.get("GRIB_stepType"):
            attrs["GRIB_stepType"] = str(v.attrs["GRIB_stepType"])
        v.attrs = attrs
        v.encoding = {}
        out[short] = v
    if not out:
        raise MissingVariableError("no gridded variable on (latitude, longitude)", "is this an ERA5 file?", path)
    res = xr.Dataset(out)
    res.attrs = {}
    return res


def _select_variables(ds: xr.Dataset, variables, product, path: Path) -> xr.Dataset:
    if variables is None:
        return ds
    if isinstance(variables, str):
        variables = [variables]
    want = [short_name(v, product) for v in variables]
    missing = [w for w, orig in zip(want, variables) if w not in ds.data_vars]
    if missing:
        raise MissingVariableError(
            f"variable(s) {', '.join(missing)} not in the file (it holds: {', '.join(sorted(ds.data_vars))})",
            "download them from the CDS or drop them from `variables`", path)
    return ds[want]


def _read_one(path: Path, bbox, variables, product_arg, chunks, filter_by_keys) -> list[_Piece]:
    kind = _sniff(path)
    if kind == "zip":
        return _read_zip(path, bbox, variables, product_arg, filter_by_keys)
    if kind == "grib":
        raw, hint = _read_grib(path, filter_by_keys)
        reason = "GRIB marsClass" if hint else ""
    else:
        raw = _open_netcdf(path, kind, chunks)
        hint, reason = None, ""
    try:
        if hint is None:
            hint = _hint_from_attrs(raw)
            reason = "global attributes" if hint else ""
        ds = _rename_dims(raw, path)
        ds, dlat, dlon, sort = _normalise_grid(ds, bbox, path)
        prod_for_names = product_arg or hint
        ds = _standardise_vars(ds, prod_for_names, path)
        ds = _select_variables(ds, variables, prod_for_names, path)
        _check_times(ds, path)
        if chunks is None or kind == "grib":
            try:
                ds = ds.load()
            except Exception as exc:  # noqa: BLE001
                raise UnreadableFileError(f"cannot read the data ({type(exc).__name__}: {exc})",
                                          "the file is truncated or corrupt: download it again", path) from exc
        ds = sort(ds)
    finally:
        if chunks is None or kind == "grib":
            raw.close()
    spacing = dlat if not np.isnan(dlat) else dlon
    return [_Piece(path, ds, hint, reason, spacing)]


def _check_times(ds: xr.Dataset, path: Path) -> None:
    t = pd.DatetimeIndex(ds["time"].values)
    if t.has_duplicates:
        dup = t[t.duplicated()][0]
        raise TimeAxisError(f"duplicated time {dup:%Y-%m-%d %H:%M} in the file",
                            "remove the repeated steps (or download the month again)", path)
    if not t.is_monotonic_increasing:
        i = int(np.nonzero(np.diff(t.values) < np.timedelta64(0))[0][0])
        raise TimeAxisError(f"times are not increasing ({t[i]:%Y-%m-%d %H:%M} is followed by {t[i + 1]:%Y-%m-%d %H:%M})",
                            "sort the file by time (e.g. cdo sorttimestamp) or download it again", path)


def _read_zip(path: Path, bbox, variables, product_arg, filter_by_keys) -> list[_Piece]:
    """A CDS zip (new layout: one NetCDF per stepType): members are read and loaded."""
    pieces = []
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise UnreadableFileError(f"corrupt zip archive ({exc})", "download it again from the CDS", path) from exc
    with zf, tempfile.TemporaryDirectory(prefix="era5zip-") as tmp:
        names = [n for n in zf.namelist() if n.lower().endswith((".nc", ".grib", ".grb", ".grib2"))]
        if not names:
            raise UnreadableFileError("the zip archive holds no NetCDF or GRIB file", "download it again", path)
        for n in names:
            try:
                member = Path(zf.extract(n, tmp))
            except Exception as exc:  # noqa: BLE001
                raise UnreadableFileError(f"cannot extract {n} ({exc})", "download it again from the CDS", path) from exc
            try:
                sub = _read_one(member, bbox, None, product_arg, None, filter_by_keys)
            except InputError as exc:
                raise type(exc)(f"member {n}: {exc.what}", exc.todo, path) from exc
            for pc in sub:
                pc.path = Path(f"{path}!{n}")
            pieces.extend(sub)
    if variables is not None:
        want = [short_name(v, product_arg) for v in ([variables] if isinstance(variables, str) else variables)]
        have = set().union(*[set(pc.ds.data_vars) for pc in pieces])
        missing = [w for w in want if w not in have]
        if missing:
            raise MissingVariableError(f"variable(s) {', '.join(missing)} not in the archive "
                                       f"(it holds: {', '.join(sorted(have))})",
                                       "download them from the CDS or drop them from `variables`", path)
        for pc in pieces:
            pc.ds = pc.ds[[w for w in want if w in pc.ds.data_vars]]
        pieces = [pc for pc in pieces if pc.ds.data_vars]
    return pieces


def _resolve_product(product: str, pieces: list[_Piece]) -> tuple[str, str]:
    if product and product.lower() != "auto":
        key = product.lower()
        if key not in _PRODUCT_ALIASES:
            raise unknown_name("ERA5 product", product, ["auto", "era5-land", "era5"])
        return _PRODUCT_ALIASES[key], "given"
    found = set()
    reasons = set()
    for pc in pieces:
        if pc.product_hint:
            found.add(pc.product_hint)
            reasons.add(pc.hint_reason)
        elif abs(pc.spacing - 0.1) < 1e-3:
            found.add(ERA5_LAND)
            reasons.add("0.1 deg grid")
        elif abs(pc.spacing - 0.25) < 1e-3:
            found.add(ERA5)
            reasons.add("0.25 deg grid")
        else:
            found.add(ERA5)
            reasons.add(f"{pc.spacing:g} deg grid: not ERA5-Land's, taken as ERA5")
    if len(found) > 1:
        raise WrongProductError("the files mix ERA5 and ERA5-Land (" + ", ".join(str(p.path) for p in pieces[:4]) + ")",
                                "read each product on its own, or pass product='era5-land' / 'era5'")
    return found.pop(), "; ".join(sorted(reasons))


def _combine(pieces: list[_Piece]) -> xr.Dataset:
    """Concatenate pieces with the same variables on time (sorted, no overlap), then merge."""
    ref = pieces[0]
    for pc in pieces[1:]:
        if pc.ds.sizes["lat"] != ref.ds.sizes["lat"] or pc.ds.sizes["lon"] != ref.ds.sizes["lon"] or \
                not (np.allclose(pc.ds["lat"].values, ref.ds["lat"].values, atol=1e-6)
                     and np.allclose(pc.ds["lon"].values, ref.ds["lon"].values, atol=1e-6)):
            raise InputError(f"the grid differs from that of {ref.path} "
                             f"({pc.ds.sizes['lat']}x{pc.ds.sizes['lon']} vs {ref.ds.sizes['lat']}x{ref.ds.sizes['lon']})",
                             "read files on the same grid and area together (or pass the same bbox)", pc.path)
        pc.ds = pc.ds.assign_coords(lat=ref.ds["lat"], lon=ref.ds["lon"])
    groups: dict[tuple, list[_Piece]] = {}
    for pc in pieces:
        groups.setdefault(tuple(sorted(pc.ds.data_vars)), []).append(pc)
    parts = []
    for _, grp in groups.items():
        grp.sort(key=lambda pc: pc.ds["time"].values[0])
        for a, b in zip(grp[:-1], grp[1:]):
            ta, tb = a.ds["time"].values, b.ds["time"].values
            if tb[0] <= ta[-1]:
                overlap = np.intersect1d(ta, tb)
                what = (f"{overlap.size} time step(s) also in {a.path} (first {pd.Timestamp(overlap[0]):%Y-%m-%d %H:%M})"
                        if overlap.size else f"its times interleave with those of {a.path}")
                raise TimeAxisError(what, "pass each period once (drop the duplicate file)", b.path)
        parts.append(grp[0].ds if len(grp) == 1 else
                     xr.concat([pc.ds for pc in grp], dim="time", data_vars="all", coords="minimal",
                               compat="override", join="override", combine_attrs="override"))
    if len(parts) == 1:
        return parts[0]
    firsts = [grp[0].path for grp in groups.values()]
    for i, p in enumerate(parts):
        for j in range(i):
            both = set(p.data_vars) & set(parts[j].data_vars)
            if both:
                raise TimeAxisError(f"variable(s) {', '.join(sorted(both))} come from files with different variable "
                                    f"sets (e.g. {firsts[j]} and {firsts[i]})",
                                    "give every period the same variables, or read the variables separately")
    return xr.merge(parts, join="outer", combine_attrs="override")


def read_era5(paths, product: str = "auto", bbox=None, variables: Sequence[str] | None = None, *,
              chunks=None, filter_by_keys: dict | None = None) -> xr.Dataset:
    """Read ERA5-Land / ERA5 NetCDF (CDS old or new layout, or a CDS zip) or GRIB files.

    Parameters
    ----------
    paths : str, Path, glob pattern, folder or list of these
        Files of consecutive periods (e.g. monthly) are concatenated on time (sorted by their
        first time; overlapping times raise :class:`TimeAxisError`); files holding different
        variables for the same period (CDS zip members, split downloads) are merged.
    product : {"auto", "era5-land", "era5"}
        Decides the de-accumulation (see the module docstring for the auto-detection).
    bbox : tuple (lon_min, lat_min, lon_max, lat_max) or None
        Keep the cells overlapping the box (e.g. :data:`model.grids.TP_BBOX`); a file whose grid
        does not contain the box raises :class:`model.errors.CoverageError`.
    variables : list of str, optional
        Names to keep (short names, CDS names or long names); absent ones raise
        :class:`model.errors.MissingVariableError`.
    chunks : dict, "auto" or None
        None loads everything into memory and closes the files; otherwise the NetCDF data are
        Dask arrays with these chunks (GRIB is always loaded).
    filter_by_keys : dict, optional
        cfgrib filter for GRIB files (e.g. ``{"numberOfPoints": 4140}``).

    Returns
    -------
    xr.Dataset
        Dims ``(time, lat, lon)``: ``time`` UTC datetime64[ns] (the valid time), ``lat``
        ascending (deg north), ``lon`` ascending in -180..180 (deg east); float32 variables
        under their short names with CF ``units``/``standard_name``/``long_name``; accumulated
        variables de-accumulated to amounts per native step (``cell_methods = "time: sum"``).
        attrs: ``product`` ("ERA5-Land" or "ERA5"), ``product_detection``, ``source_files``,
        ``time_step`` (e.g. "1h").

    Raises
    ------
    model.errors.UnreadableFileError, MissingVariableError, CoverageError, TimeAxisError,
    MultipleGridsError, WrongProductError
        All :class:`model.errors.InputError`: the message names the file, the problem and what
        to do.
    """
    files = _expand_paths(paths)
    prod_arg = None if (product is None or str(product).lower() == "auto") else _resolve_product(product, [])[0]
    pieces: list[_Piece] = []
    for f in files:
        pieces.extend(_read_one(f, tuple(bbox) if bbox is not None else None, variables, prod_arg, chunks, filter_by_keys))
    prod, why = _resolve_product(product or "auto", pieces)
    ds = _combine(pieces)
    ds = ds.transpose("time", "lat", "lon", missing_dims="ignore")
    ds = deaccumulate(ds, prod)
    ds["time"].attrs = {"standard_name": "time", "long_name": "time (UTC, end of the step for accumulations)"}
    dt = _time_step(pd.DatetimeIndex(ds["time"].values))
    ds.attrs = {
        "product": prod,
        "product_detection": why,
        "source_files": ", ".join(str(p.path) for p in pieces),
        "time_step": _fmt_td(dt) if dt is not None else "",
        "Conventions": "CF-1.8",
    }
    if variables is not None:
        order = [short_name(v, prod) for v in ([variables] if isinstance(variables, str) else variables)]
        ds = ds[[v for v in order if v in ds.data_vars]]
    return ds


# --------------------------------------------------------------------------------------
# Inspect
# --------------------------------------------------------------------------------------
def _iso(t) -> str | None:
    if t is None:
        return None
    return pd.Timestamp(t).isoformat()


def describe(path) -> dict:
    """Summary of an ERA5(-Land) file for ``sm-downscale inspect``.

    Parameters
    ----------
    path : str or Path
        NetCDF (old/new CDS layout), CDS zip or GRIB file (or a glob / list, read together).

    Returns
    -------
    dict
        ``product`` ("ERA5-Land" or "ERA5"), ``variables`` ({short name: units}),
        ``time_start``/``time_end`` (ISO 8601 UTC strings), ``time_step`` ("1h"...),
        ``grid`` = {``resolution`` [dlat, dlon] deg, ``bbox`` [lon_min, lat_min, lon_max,
        lat_max] of the cell edges (deg, lon in -180..180), ``shape`` [nlat, nlon]},
        ``soil_moisture`` = {``valid_count``, ``mean``, ``min``, ``max``} of ``swvl1`` in
        m3 m-3 over all times and land cells (where the file carries a land-sea mask
        ``lsm``, cells with ``lsm < 0.5`` are left out: ERA5 stores packing noise around 0
        over the sea), or None when the file has no swvl1.
    """
    ds = read_era5(path, chunks={})
    try:
        lat = ds["lat"].values
        lon = ds["lon"].values
        dlat = float(np.median(np.diff(lat))) if lat.size > 1 else None
        dlon = float(np.median(np.diff(lon))) if lon.size > 1 else None
        ext = _extent(lat, lon, dlat or float("nan"), dlon or float("nan"))
        sm = None
        if "swvl1" in ds:
            v = ds["swvl1"].data
            # lazy: dask.array costs 0.26 s at import; only describe's summary needs it
            import dask.array as da

            arr = v if isinstance(v, da.Array) else da.from_array(np.asarray(v))
            if "lsm" in ds:
                land = ds["lsm"].data
                land = land if isinstance(land, da.Array) else da.from_array(np.asarray(land))
                arr = da.where(land >= 0.5, arr, np.nan)
            cnt, mean, mn, mx = da.compute(da.isfinite(arr).sum(), da.nanmean(arr.astype(np.float64)),
                                           da.nanmin(arr), da.nanmax(arr))
            cnt = int(cnt)
            sm = {"valid_count": cnt,
                  "mean": float(mean) if cnt else None,
                  "min": float(mn) if cnt else None,
                  "max": float(mx) if cnt else None}
        t = ds["time"].values
        return {
            "product": ds.attrs["product"],
            "variables": {k: ds[k].attrs.get("units") for k in ds.data_vars},
            "time_start": _iso(t[0]) if t.size else None,
            "time_end": _iso(t[-1]) if t.size else None,
            "time_step": ds.attrs.get("time_step") or None,
            "grid": {"resolution": [round(dlat, 6) if dlat else None, round(dlon, 6) if dlon else None],
                     "bbox": [round(x, 6) for x in ext], "shape": [int(lat.size), int(lon.size)]},
            "soil_moisture": sm,
        }
    finally:
        ds.close()


# --------------------------------------------------------------------------------------
# Regridding to TP10
# --------------------------------------------------------------------------------------
def _edges(c: np.ndarray) -> np.ndarray:
    c = np.asarray(c, dtype=np.float64)
    if c.size == 1:
        raise InputError("a single grid row/column has no cell extent", "read a larger area")
    mid = (c[:-1] + c[1:]) / 2
    return np.concatenate([[c[0] - (mid[0] - c[0])], mid, [c[-1] + (c[-1] - mid[-1])]])


def latlon_grid(lat, lon, name: str = "latlon") -> Grid:
    """A :class:`model.grids.Grid` for cell centres ``lat`` (ny,) and ``lon`` (nx,), degrees.

    Cell edges are the midpoints between neighbouring centres (extended by half a step at
    the ends); dims ``("lat", "lon")``; the array order is that of the inputs.
    """
    lat = np.asarray(lat, dtype=np.float64)
    lon = np.asarray(lon, dtype=np.float64)
    return Grid(name, lat, lon, np.clip(_edges(lat), -90.0, 90.0), _edges(lon), dims=("lat", "lon"),
                crs="EPSG:4326")


def regrid_to_tp10(ds, min_coverage: float = 0.5):
    """Put a lat/lon field (0.1 deg or coarser, e.g. 0.25 deg ERA5) on the TP10 grid.

    Parameters
    ----------
    ds : xr.Dataset or xr.DataArray
        Dims ``(..., lat, lon)`` as :func:`read_era5` returns (any lat order).
    min_coverage : float
        For the area-overlap path: the smallest fraction of a TP10 cell that valid source
        cells must cover (else NaN).

    Returns
    -------
    Same type, dims ``(..., lat, lon)`` on TP10 (150 x 320, lat ascending). Exact selection
    when the source is a 0.1 deg grid whose centres are TP10 centres (a file written on TP10,
    or a part of it: TP10 cells it lacks are NaN); otherwise the area-weighted mean of the overlapping source
    cells (:class:`model.grids.Regridder`, edges at midpoints; the native ERA5-Land grid with
    centres on x.x0 gives each TP10 cell the mean of 2 x 2 half-overlapping cells).
    """
    g = tp10()
    lat = np.round(np.asarray(ds["lat"].values, dtype=np.float64), 6)
    lon = np.round(np.asarray(ds["lon"].values, dtype=np.float64), 6)
    if _on_tp10(lat, g.lat) and _on_tp10(lon, g.lon):
        # TP10 cells already (all of them, or a part: the rest is NaN): exact selection
        tmp = ds.assign_coords(lat=lat, lon=lon)
        out = tmp.reindex(lat=g.lat, lon=g.lon, method="nearest", tolerance=1e-5)
        return out.assign_coords(g.coords())
    src = latlon_grid(lat, lon, name="ERA5 source grid")
    rg = Regridder(src, g, min_coverage=min_coverage)
    obj = ds.drop_vars([c for c in ds.coords if c not in ds.dims and {"lat", "lon"} & set(ds[c].dims)], errors="ignore")
    out = rg(obj)
    return out


def _on_tp10(have: np.ndarray, tp: np.ndarray) -> bool:
    """True when the source centres are 0.1 deg apart and those inside TP10 sit on TP10 centres."""
    if have.size < 2:
        return False
    d = np.diff(np.sort(have))
    if not np.allclose(d, 0.1, atol=1e-5):
        return False
    inside = have[(have > tp[0] - 0.05) & (have < tp[-1] + 0.05)]
    if inside.size == 0:
        return False
    pos = np.clip(np.searchsorted(tp, inside), 1, tp.size - 1)
    near = np.minimum(np.abs(tp[pos] - inside), np.abs(tp[pos - 1] - inside))
    return bool(np.all(near < 1e-5))
