"""ERA5 products and parameters, and the GRIB decoding.

The product names (``ERA5-Land``, ``ERA5``), the parameter table every layout is named by
(:data:`PARAMS`: ECMWF short name -> GRIB identity and CF attributes; :data:`ACCUMULATED`,
:data:`NON_NEGATIVE`; :func:`short_name`), and the reading of GRIB files through
cfgrib/ecCodes (groups of one level type, ``time`` + ``step`` -> valid time,
:class:`MultipleGridsError`). :func:`model.data.era5.read_era5` is the reader that uses it.
Split out of ``era5.py`` (issue 14: no module over 800 lines); this module imports none of the
other ERA5 modules.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import xarray as xr

from ..errors import InputError, UnreadableFileError

__all__ = ["ACCUMULATED", "NON_NEGATIVE", "PARAMS", "GribParam", "MultipleGridsError", "short_name"]


ERA5_LAND = "ERA5-Land"
ERA5 = "ERA5"
_PRODUCT_ALIASES = {"era5-land": ERA5_LAND, "era5land": ERA5_LAND, "era5_land": ERA5_LAND,
                    "reanalysis-era5-land": ERA5_LAND, "era5": ERA5,
                    "reanalysis-era5-single-levels": ERA5}


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


def _grib_groups(path: Path, filter_by_keys: dict | None) -> list[xr.Dataset]:
    # lazy: cfgrib loads the ecCodes C library (0.08 s here, more cold); only GRIB input needs it
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
