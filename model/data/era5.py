"""ERA5-Land and ERA5 reader and writer: CDS NetCDF (old and new layouts) and GRIB.

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

Product detection (``product="auto"``): the GRIB ``marsClass`` (``l5`` = ERA5-Land, ``ea`` =
ERA5), then the text of the global attributes (``ERA5-Land``), then the grid spacing
(0.1 deg = ERA5-Land, 0.25 deg = ERA5); anything else is taken as ERA5. Pass ``product``
to override (ERA5-Land interpolated by the CDS to 0.25 deg must be named explicitly).

Aggregation
-----------
:func:`to_3hourly` makes the product's 3-hourly steps 00, 03, ..., 21 UTC: bins are labelled
by their END time t and cover (t - 3 h, t]. States are the mean of the samples at t - 2 h,
t - 1 h and t (for hourly input; the sample at t for 3-hourly input); fluxes (``cell_methods
= "time: sum"``) the sum of the per-step amounts ending at those times. A bin with any
sample missing (edges of the record, gaps, NaN amounts) is NaN, never a partial sum or mean.

Writing
-------
:func:`write_era5_netcdf` writes what :func:`read_era5` returns back into a CDS-layout file
(new: ``valid_time``, float32, zlib + shuffle, optional ``least_significant_digit``
quantisation; old: ``time``, int16 ``scale_factor``/``add_offset`` packing), ``latitude``
descending, accumulations RE-accumulated from 00 UTC as the CDS delivers them.
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
import xarray as xr

from ..errors import (CoverageError, InputError, MissingVariableError, UnreadableFileError,
                      WrongProductError)
from ..grids.core import TP_BBOX, Grid, tp10
from ..io import atomic_path

__all__ = [
    "ACCUMULATED", "NON_NEGATIVE", "PARAMS", "GribParam", "MultipleGridsError",
    "TimeAxisError", "deaccumulate", "describe", "latlon_grid", "read_era5", "reaccumulate",
    "regrid_to_tp10", "short_name", "to_3hourly", "write_era5_monthly", "write_era5_netcdf", "TP_BBOX",
]

ERA5_LAND = "ERA5-Land"
ERA5 = "ERA5"
_PRODUCT_ALIASES = {"era5-land": ERA5_LAND, "era5land": ERA5_LAND, "era5_land": ERA5_LAND,
                    "reanalysis-era5-land": ERA5_LAND, "era5": ERA5,
                    "reanalysis-era5-single-levels": ERA5}


class TimeAxisError(InputError):
    """Times that are not strictly increasing, duplicated, or overlapping between files."""


class MultipleGridsError(InputError):
    """A GRIB file holding fields on several grids (needs ``filter_by_keys``)."""


# --------------------------------------------------------------------------------------
# Parameter table (from the CDS look-up tables era5-land_lut.csv / era5_lut.csv and the
# ECMWF parameter database): short name -> GRIB identity and CF attributes.
# --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GribParam:
    """One ECMWF parameter.

    Attributes
    ----------
    short : str
        Variable name in CDS NetCDF / cfgrib (``cfVarName``), e.g. ``"t2m"``.
    param_id : int
        GRIB ``paramId``.
    grib_short : str
        ecCodes ``shortName`` (``"2t"`` for ``t2m``).
    dl_name : str
        CDS request name (``"2m_temperature"``).
    long_name : str
        Long name as the CDS files carry it.
    units : str
        Units as ECMWF writes them (``"m**3 m**-3"``).
    standard_name : str or None
        CF standard name, None where none fits the ECMWF definition and sign.
    accumulated : bool
        Accumulated from 00 UTC in ERA5-Land (per hour in ERA5).
    lsd : int
        Default ``least_significant_digit`` (decimal digits kept) for the writer.
    level : str
        GRIB ``typeOfLevel``.
    """

    short: str
    param_id: int
    grib_short: str
    dl_name: str
    long_name: str
    units: str
    standard_name: str | None
    accumulated: bool = False
    lsd: int = 4
    level: str = "surface"

    @property
    def cf_units(self) -> str:
        return _cf_units(self.units)


def _p(*a, **k):
    return GribParam(*a, **k)


_PARAM_LIST = [
    _p("swvl1", 39, "swvl1", "volumetric_soil_water_layer_1", "Volumetric soil water layer 1", "m**3 m**-3",
       "volume_fraction_of_condensed_water_in_soil", lsd=4, level="depthBelowLandLayer"),
    _p("swvl2", 40, "swvl2", "volumetric_soil_water_layer_2", "Volumetric soil water layer 2", "m**3 m**-3",
       "volume_fraction_of_condensed_water_in_soil", lsd=4, level="depthBelowLandLayer"),
    _p("swvl3", 41, "swvl3", "volumetric_soil_water_layer_3", "Volumetric soil water layer 3", "m**3 m**-3",
       "volume_fraction_of_condensed_water_in_soil", lsd=4, level="depthBelowLandLayer"),
    _p("swvl4", 42, "swvl4", "volumetric_soil_water_layer_4", "Volumetric soil water layer 4", "m**3 m**-3",
       "volume_fraction_of_condensed_water_in_soil", lsd=4, level="depthBelowLandLayer"),
    _p("stl1", 139, "stl1", "soil_temperature_level_1", "Soil temperature level 1", "K", "soil_temperature",
       lsd=2, level="depthBelowLandLayer"),
    _p("stl2", 170, "stl2", "soil_temperature_level_2", "Soil temperature level 2", "K", "soil_temperature",
       lsd=2, level="depthBelowLandLayer"),
    _p("stl3", 183, "stl3", "soil_temperature_level_3", "Soil temperature level 3", "K", "soil_temperature",
       lsd=2, level="depthBelowLandLayer"),
    _p("stl4", 236, "stl4", "soil_temperature_level_4", "Soil temperature level 4", "K", "soil_temperature",
       lsd=2, level="depthBelowLandLayer"),
    _p("skt", 235, "skt", "skin_temperature", "Skin temperature", "K", "surface_temperature", lsd=2),
    _p("t2m", 167, "2t", "2m_temperature", "2 metre temperature", "K", "air_temperature", lsd=2),
    _p("d2m", 168, "2d", "2m_dewpoint_temperature", "2 metre dewpoint temperature", "K",
       "dew_point_temperature", lsd=2),
    _p("sd", 141, "sd", "snow_depth_water_equivalent", "Snow depth water equivalent", "m of water equivalent",
       "lwe_thickness_of_surface_snow_amount", lsd=5),
    _p("sde", 3066, "sde", "snow_depth", "Snow depth", "m", "surface_snow_thickness", lsd=4),
    _p("rsn", 33, "rsn", "snow_density", "Snow density", "kg m**-3", "snow_density", lsd=2),
    _p("asn", 32, "asn", "snow_albedo", "Snow albedo", "(0 - 1)", None, lsd=3),
    _p("snowc", 260038, "snowc", "snow_cover", "Snow cover", "%", "surface_snow_area_fraction", lsd=2),
    _p("tsn", 238, "tsn", "temperature_of_snow_layer", "Temperature of snow layer", "K", "temperature_in_surface_snow", lsd=2),
    _p("src", 198, "src", "skin_reservoir_content", "Skin reservoir content", "m of water equivalent", None, lsd=6),
    _p("fal", 243, "fal", "forecast_albedo", "Forecast albedo", "(0 - 1)", "surface_albedo", lsd=3),
    _p("lai_hv", 66, "lai_hv", "leaf_area_index_high_vegetation", "Leaf area index, high vegetation", "m**2 m**-2",
       "leaf_area_index", lsd=3),
    _p("lai_lv", 67, "lai_lv", "leaf_area_index_low_vegetation", "Leaf area index, low vegetation", "m**2 m**-2",
       "leaf_area_index", lsd=3),
    _p("sp", 134, "sp", "surface_pressure", "Surface pressure", "Pa", "surface_air_pressure", lsd=0),
    _p("u10", 165, "10u", "10m_u_component_of_wind", "10 metre U wind component", "m s**-1", "eastward_wind", lsd=3),
    _p("v10", 166, "10v", "10m_v_component_of_wind", "10 metre V wind component", "m s**-1", "northward_wind", lsd=3),
    _p("lsm", 172, "lsm", "land_sea_mask", "Land-sea mask", "(0 - 1)", "land_binary_mask", lsd=3),
    _p("slt", 43, "slt", "soil_type", "Soil type", "(Code table 4.213)", None, lsd=0),
    _p("z", 129, "z", "geopotential", "Geopotential", "m**2 s**-2", "geopotential", lsd=1),
    # accumulated fields
    _p("tp", 228, "tp", "total_precipitation", "Total precipitation", "m",
       "lwe_thickness_of_precipitation_amount", accumulated=True, lsd=6),
    _p("e", 182, "e", "total_evaporation", "Total evaporation", "m of water equivalent", None,
       accumulated=True, lsd=7),
    _p("ssrd", 169, "ssrd", "surface_solar_radiation_downwards", "Surface solar radiation downwards", "J m**-2",
       "integral_wrt_time_of_surface_downwelling_shortwave_flux_in_air", accumulated=True, lsd=0),
    _p("strd", 175, "strd", "surface_thermal_radiation_downwards", "Surface thermal radiation downwards", "J m**-2",
       "integral_wrt_time_of_surface_downwelling_longwave_flux_in_air", accumulated=True, lsd=0),
    _p("ssr", 176, "ssr", "surface_net_solar_radiation", "Surface net solar radiation", "J m**-2",
       "integral_wrt_time_of_surface_net_downward_shortwave_flux", accumulated=True, lsd=0),
    _p("str", 177, "str", "surface_net_thermal_radiation", "Surface net thermal radiation", "J m**-2",
       "integral_wrt_time_of_surface_net_downward_longwave_flux", accumulated=True, lsd=0),
    _p("slhf", 147, "slhf", "surface_latent_heat_flux", "Surface latent heat flux", "J m**-2",
       "integral_wrt_time_of_surface_downward_latent_heat_flux", accumulated=True, lsd=0),
    _p("sshf", 146, "sshf", "surface_sensible_heat_flux", "Surface sensible heat flux", "J m**-2",
       "integral_wrt_time_of_surface_downward_sensible_heat_flux", accumulated=True, lsd=0),
    _p("ro", 205, "ro", "runoff", "Runoff", "m", None, accumulated=True, lsd=7),
    _p("sro", 8, "sro", "surface_runoff", "Surface runoff", "m", None, accumulated=True, lsd=7),
    _p("ssro", 9, "ssro", "sub_surface_runoff", "Sub-surface runoff", "m", None, accumulated=True, lsd=7),
    _p("pev", 228251, "pev", "potential_evaporation", "Potential evaporation", "m", None, accumulated=True, lsd=7),
    _p("evabs", 228101, "evabs", "evaporation_from_bare_soil", "Evaporation from bare soil",
       "m of water equivalent", None, accumulated=True, lsd=7),
    _p("evaow", 228102, "evaow", "evaporation_from_open_water_surfaces_excluding_oceans",
       "Evaporation from open water surfaces excluding oceans", "m of water equivalent", None,
       accumulated=True, lsd=7),
    _p("evatc", 228103, "evatc", "evaporation_from_the_top_of_canopy", "Evaporation from the top of canopy",
       "m of water equivalent", None, accumulated=True, lsd=7),
    _p("evavt", 228104, "evavt", "evaporation_from_vegetation_transpiration",
       "Evaporation from vegetation transpiration", "m of water equivalent", None, accumulated=True, lsd=7),
    _p("es", 44, "es", "snow_evaporation", "Snow evaporation", "m of water equivalent", None,
       accumulated=True, lsd=7),
    _p("sf", 144, "sf", "snowfall", "Snowfall", "m of water equivalent", "lwe_thickness_of_snowfall_amount",
       accumulated=True, lsd=7),
    _p("smlt", 45, "smlt", "snowmelt", "Snowmelt", "m of water equivalent", None, accumulated=True, lsd=7),
]

#: short name -> :class:`GribParam`
PARAMS: dict[str, GribParam] = {p.short: p for p in _PARAM_LIST}
#: accumulated (from 00 UTC in ERA5-Land) short names
ACCUMULATED = frozenset(p.short for p in _PARAM_LIST if p.accumulated)
#: accumulated fields that cannot be negative (negative de-accumulated amounts are clipped)
NON_NEGATIVE = frozenset({"tp", "ssrd", "strd", "ssr", "ro", "sro", "ssro", "sf", "smlt"})

_BY_ID = {p.param_id: p.short for p in _PARAM_LIST}
_ALIASES: dict[str, str] = {}
for _q in _PARAM_LIST:
    for _a in (_q.short, _q.grib_short, _q.dl_name, _q.long_name, f"var{_q.param_id}", f"p{_q.param_id}"):
        _ALIASES.setdefault(_a.lower(), _q.short)
# the names ERA5 (not Land) uses for the same parameters
_ALIASES.update({"evaporation": "e", "snow_depth_water_equivalent": "sd",
                 "surface short-wave (solar) radiation downwards": "ssrd",
                 "surface long-wave (thermal) radiation downwards": "strd",
                 "leaf area index high vegetation": "lai_hv", "leaf area index low vegetation": "lai_lv"})
# "snow_depth" is sde (m) in ERA5-Land but sd (m of water equivalent) in ERA5
_ERA5_ONLY_ALIASES = {"snow_depth": "sd", "snow depth": "sd"}


def short_name(name: str, product: str | None = None) -> str:
    """The ECMWF short name for a CDS name, long name, ecCodes short name or ``var<id>``.

    Parameters
    ----------
    name : str
        e.g. ``"2m_temperature"``, ``"2 metre temperature"``, ``"2t"``, ``"var167"``, ``"t2m"``.
    product : str, optional
        ``"ERA5"`` resolves ``"snow_depth"`` to ``sd`` (m of water equivalent), as ERA5 names
        it; otherwise ERA5-Land's meaning (``sde``, m) is used.

    Returns
    -------
    str
        The short name, or ``name`` unchanged when it is not a known parameter.
    """
    key = str(name).strip().lower()
    if product == ERA5 and key in _ERA5_ONLY_ALIASES:
        return _ERA5_ONLY_ALIASES[key]
    return _ALIASES.get(key, name)


def _cf_units(units: str | None) -> str | None:
    """ECMWF units to UDUNITS-style strings: ``m**3 m**-3`` -> ``m3 m-3``, ``(0 - 1)`` -> ``1``."""
    if units is None:
        return None
    u = str(units).strip()
    if u in ("(0 - 1)", "0-1", "(0-1)", "~"):
        return "1"
    return u.replace("**", "")


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
    import scipy.io

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


def _grib_groups(path: Path, filter_by_keys: dict | None) -> list[xr.Dataset]:
    import cfgrib

    kw = {"indexpath": "", "errors": "raise", "read_keys": ["marsClass"]}
    if filter_by_keys:
        kw["filter_by_keys"] = dict(filter_by_keys)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # the index scan reads every message header: truncation raises here (errors="raise");
            # the values are decoded later, after cropping
            groups = cfgrib.open_datasets(str(path), backend_kwargs=kw, decode_timedelta=True)
    except Exception as exc:  # noqa: BLE001
        raise UnreadableFileError(f"cannot decode the GRIB file ({type(exc).__name__}: {exc})",
                                  "the file is truncated or corrupt: download it again", path) from exc
    groups = [g for g in groups if g.data_vars]
    if not groups:
        extra = f" matching filter_by_keys={filter_by_keys}" if filter_by_keys else ""
        raise UnreadableFileError(f"no GRIB message{extra}", "check the file (and the filter)", path)
    return groups


def _grib_to_time_series(g: xr.Dataset, path: Path) -> xr.Dataset:
    """cfgrib's (time, step) forecast axes -> one valid-time axis named ``time``."""
    if "number" in g.dims and g.sizes["number"] > 1:
        raise InputError(f"{g.sizes['number']} ensemble members",
                         "select one member (filter_by_keys={'number': 0}) or request the reanalysis", path)
    if "number" in g.dims:
        g = g.isel(number=0)
    has_time = "time" in g.dims
    has_step = "step" in g.dims
    if has_time and has_step:
        g = g.load().stack(__vt=("time", "step"))
        vt = (g["time"].values + g["step"].values).astype("datetime64[ns]")
        g = g.drop_vars(["time", "step", "valid_time", "__vt"], errors="ignore")
        g = g.assign_coords(__vt=vt)
        # combinations that no message fills (e.g. ERA5 forecasts from 06 and 18 UTC)
        present = np.zeros(g.sizes["__vt"], bool)
        for v in g.data_vars.values():
            other = [d for d in v.dims if d != "__vt"]
            present |= v.notnull().any(other).values
        g = g.isel(__vt=np.nonzero(present)[0]).rename(__vt="time")
        g = g.sortby("time")
    elif has_step:
        vt = (g["time"].values + g["step"].values).astype("datetime64[ns]")
        g = g.drop_vars(["time", "valid_time"], errors="ignore").rename(step="time").assign_coords(time=vt)
    elif has_time:
        if "valid_time" in g.coords and g["valid_time"].dims == ("time",):
            vt = g["valid_time"].values.astype("datetime64[ns]")
        else:
            vt = (g["time"].values + (g["step"].values if "step" in g.coords else np.timedelta64(0, "ns")))
        g = g.drop_vars(["valid_time", "step"], errors="ignore").assign_coords(time=vt.astype("datetime64[ns]"))
    else:
        if "valid_time" in g.coords:
            vt = np.atleast_1d(g["valid_time"].values).astype("datetime64[ns]")
        else:
            vt = np.atleast_1d(g["time"].values + g["step"].values).astype("datetime64[ns]")
        g = g.drop_vars(["time", "step", "valid_time"], errors="ignore").expand_dims(time=vt)
    keep = {"time", "latitude", "longitude", "lat", "lon"}
    g = g.drop_vars([c for c in g.coords if c not in keep], errors="ignore")
    return g


def _read_grib(path: Path, filter_by_keys: dict | None) -> tuple[xr.Dataset, str | None]:
    groups = _grib_groups(path, filter_by_keys)
    grids = {}
    for g in groups:
        lat = g["latitude"].values if "latitude" in g.coords else None
        lon = g["longitude"].values if "longitude" in g.coords else None
        if lat is None or lon is None or lat.ndim != 1 or "values" in g.dims:
            raise InputError("not a regular latitude/longitude grid (reduced Gaussian or other)",
                             "request the data from the CDS on a regular grid (e.g. grid=[0.1, 0.1])", path)
        key = (lat.size, lon.size, float(lat[0]), float(lon[0]), float(lat[-1]), float(lon[-1]))
        grids.setdefault(key, []).append(g)
    if len(grids) > 1:
        options = []
        for (ny, nx, la0, lo0, la1, lo1), gs in grids.items():
            options.append(f"filter_by_keys={{'numberOfPoints': {ny * nx}}} ({ny}x{nx}, lat {la0:g}..{la1:g}, "
                           f"lon {lo0:g}..{lo1:g}: {', '.join(sorted({str(v) for g in gs for v in g.data_vars}))})")
        raise MultipleGridsError(
            f"the file holds fields on {len(grids)} different grids",
            "read one grid at a time with read_era5(..., filter_by_keys=...): " + "; ".join(options), path)
    mars = set()
    series = []
    for g in groups:
        for v in g.data_vars.values():
            if "GRIB_marsClass" in v.attrs:
                mars.add(str(v.attrs["GRIB_marsClass"]))
        series.append(_grib_to_time_series(g, path))
    try:
        ds = xr.merge(series, join="outer", compat="no_conflicts", combine_attrs="drop_conflicts")
    except Exception as exc:  # noqa: BLE001
        raise InputError(f"cannot merge the GRIB message groups ({exc})",
                         "split the file by parameter (grib_copy) and read the parts", path) from exc
    ds.attrs = dict(groups[0].attrs)
    hint = None
    if mars == {"l5"}:
        hint = ERA5_LAND
    elif mars == {"ea"}:
        hint = ERA5
    return ds, hint


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
            from ..errors import unknown_name

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
    import netCDF4

    layout = str(layout).lower()
    if layout not in ("new", "old"):
        from ..errors import unknown_name

        raise unknown_name("CDS NetCDF layout", layout, ["new", "old"])
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
    all_times = times
    if period is not None:
        p0, p1 = (pd.Timestamp(period[0]), pd.Timestamp(period[1]))
        inside = np.nonzero((all_times >= p0) & (all_times <= p1))[0]
        sel0, sel1 = (int(inside[0]), int(inside[-1]) + 1) if inside.size else (0, 0)
        if sel1 <= sel0:
            raise InputError(f"no time step in the period {p0} .. {p1}", "check the period against the data")
    else:
        sel0, sel1 = 0, all_times.size
    times = all_times[sel0:sel1]
    ny, nx, nt = lat.size, lon.size, times.size
    dlat = abs(float(np.median(np.diff(lat)))) if ny > 1 else 0.0
    dlon = abs(float(np.median(np.diff(lon)))) if nx > 1 else 0.0
    names = [v for v in ds.data_vars if set(ds[v].dims) == {"time", "lat", "lon"}]
    for name in names:
        given = ds[name].attrs.get("units")
        if name in PARAMS and given is not None and _cf_units(given) != PARAMS[name].cf_units:
            raise InputError(f"{name} is in {given!r}, the CDS files carry {PARAMS[name].units!r}",
                             f"convert {name} to {PARAMS[name].cf_units} before writing")
    complevel = int(complevel)
    tchunk = max(1, min(int(time_chunk), nt))
    # one day-aligned block at a time keeps memory to a few days of one variable
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

    def block_values(name: str, i0: int, i1: int, wins) -> np.ndarray:
        accumulate = name in ACCUMULATED and prod == ERA5_LAND
        vals = np.asarray(ds[name].isel(time=slice(i0, i1)).transpose("time", "lat", "lon").values,
                          dtype=np.float64 if accumulate else np.float32)
        if accumulate:
            acc = np.full(vals.shape, np.nan)
            for a, b, complete in wins:
                if complete:
                    acc[a - i0:b - i0] = np.cumsum(vals[a - i0:b - i0], axis=0)
            vals = acc
        a, b = max(i0, sel0), min(i1, sel1)
        return vals[a - i0:b - i0]

    def out_slice(i0: int, i1: int) -> slice:
        return slice(max(i0, sel0) - sel0, min(i1, sel1) - sel0)

    def meta(name: str) -> dict:
        p = PARAMS.get(name)
        src = ds[name].attrs
        m = {"long_name": p.long_name if p else src.get("long_name", name),
             "units": p.units if p else src.get("units", "1")}
        std = (p.standard_name if p else src.get("standard_name")) or None
        return m | {"standard_name": std}

    fmt = "NETCDF4" if layout == "new" else ("NETCDF4_CLASSIC" if complevel > 0 else "NETCDF3_64BIT_OFFSET")
    hist = history or (f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%dT%H:%M} {prod} hourly data written in the CDS "
                       f"{layout} NetCDF layout by sm-downscale (model.data.era5.write_era5_netcdf)")
    with atomic_path(path) as tmp:
        nc = netCDF4.Dataset(tmp, "w", format=fmt)
        try:
            if layout == "new":
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
                vt[:] = ((times - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")).astype(np.int64)
                la = nc.createVariable("latitude", "f8", ("latitude",), fill_value=np.nan)
                la.setncatts({"units": "degrees_north", "standard_name": "latitude", "long_name": "latitude",
                              "stored_direction": "decreasing"})
                la[:] = lat
                lo = nc.createVariable("longitude", "f8", ("longitude",), fill_value=np.nan)
                lo.setncatts({"units": "degrees_east", "standard_name": "longitude", "long_name": "longitude"})
                lo[:] = lon
                ev = nc.createVariable("expver", str, ("valid_time",))
                ev.setncattr("long_name", "Experiment Version")
                ev[:] = np.array(["0001"] * nt, dtype=object)
            else:
                nc.setncattr("Conventions", "CF-1.6")
                nc.setncattr("history", hist)
                nc.createDimension("longitude", nx)
                nc.createDimension("latitude", ny)
                nc.createDimension("time", None)
                lo = nc.createVariable("longitude", "f4", ("longitude",))
                lo.setncatts({"units": "degrees_east", "long_name": "longitude"})
                lo[:] = lon.astype(np.float32)
                la = nc.createVariable("latitude", "f4", ("latitude",))
                la.setncatts({"units": "degrees_north", "long_name": "latitude"})
                la[:] = lat.astype(np.float32)
                tv = nc.createVariable("time", "i4", ("time",))
                tv.setncatts({"units": "hours since 1900-01-01 00:00:00.0", "long_name": "time", "calendar": "gregorian"})
                hours = (times - pd.Timestamp("1900-01-01")) / pd.Timedelta("1h")
                if not np.allclose(hours, np.round(hours)):
                    raise InputError("the old CDS layout stores whole hours only", "use layout='new'")
                tv[:] = np.round(hours).astype(np.int32)
            dims = ("valid_time", "latitude", "longitude") if layout == "new" else ("time", "latitude", "longitude")
            comp = {"zlib": complevel > 0, "complevel": max(complevel, 1) if complevel > 0 else 4,
                    "shuffle": complevel > 0}
            if fmt.startswith("NETCDF4"):
                comp["chunksizes"] = (tchunk, ny, nx)
            for name in names:
                m = meta(name)
                p = PARAMS.get(name)
                accum = name in ACCUMULATED
                if layout == "new":
                    lsd = _lsd_for(name, least_significant_digit)
                    var = nc.createVariable(name, "f4", dims, fill_value=np.float32(np.nan),
                                            least_significant_digit=lsd, **comp)
                    attrs = {}
                    if p is not None:
                        attrs.update({
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
                            "GRIB_iDirectionIncrementInDegrees": round(dlon, 6),
                            "GRIB_iScansNegatively": np.int64(0),
                            "GRIB_jDirectionIncrementInDegrees": round(dlat, 6),
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
                        })
                    attrs.update({"long_name": m["long_name"], "units": m["units"],
                                  "standard_name": m["standard_name"] or "unknown"})
                    var.setncatts(attrs)
                    for i0, i1, wins in blocks:
                        var[out_slice(i0, i1)] = block_values(name, i0, i1, wins).astype(np.float32)
                else:
                    # first pass: the range of the (re-accumulated) values sets the int16 packing
                    lo_v, hi_v = np.inf, -np.inf
                    for i0, i1, wins in blocks:
                        b = block_values(name, i0, i1, wins)
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
                    for i0, i1, wins in blocks:
                        b = block_values(name, i0, i1, wins)
                        packed = np.round((b - offset) / scale)
                        packed = np.where(np.isfinite(packed), np.clip(packed, -32766, 32767), -32767).astype(np.int16)
                        var[out_slice(i0, i1)] = packed
        finally:
            nc.close()
    return Path(path)


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
    from ..grids.regrid import Regridder

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
