"""Export a period, box and model from the archive to CF NetCDF or a GeoTIFF stack."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..errors import CoverageError, InputError
from ..io import atomic_path
from ..schema import SM_STANDARD_NAME, SM_UNITS
from .archive import open_archive, product_variables


def select(models, start=None, end=None, bbox=None, archive=None):
    """The archive subset (lazy) for models, a period and a (lon_min, lat_min, lon_max, lat_max) box."""
    layout = "maps"
    ds = open_archive(layout, archive)
    models = [models] if isinstance(models, str) else list(models)
    avail = product_variables(ds)
    missing = [m for m in models if m not in avail]
    if missing:
        raise InputError(f"models {missing} are not in the archive (it holds {avail})",
                         "build them with `sm-downscale archive --model NAME`")
    sub = ds[models + ["tp_mask", "crs"]]
    if start or end:
        sub = sub.sel(time=slice(np.datetime64(start) if start else None,
                                 np.datetime64(end) + np.timedelta64(1, "D") - np.timedelta64(1, "s") if end else None))
        if sub.sizes["time"] == 0:
            raise CoverageError(f"no archived step between {start} and {end}",
                                f"the archive covers {ds.time.values[0]} .. {ds.time.values[-1]}")
    if bbox:
        lon0, lat0, lon1, lat1 = bbox
        if lon0 >= lon1 or lat0 >= lat1:
            raise InputError(f"box {bbox} is empty", "give --bbox LON_MIN LAT_MIN LON_MAX LAT_MAX")
        sub = sub.sel(lat=slice(lat0, lat1), lon=slice(lon0, lon1))
        if sub.sizes["lat"] == 0 or sub.sizes["lon"] == 0:
            raise CoverageError(f"box {bbox} does not overlap the TP grid (73-105 E, 25-40 N)",
                                "give a box inside the grid")
    return sub


def _nc_attrs(attrs: dict) -> dict:
    """NetCDF attributes must be strings, numbers or arrays: encode the rest as JSON."""
    return {k: (json.dumps(v) if isinstance(v, (dict, bool)) or v is None else v) for k, v in attrs.items()}


def to_netcdf(sub, path) -> Path:
    path = Path(path)
    sub = sub.copy()
    sub.attrs = _nc_attrs(sub.attrs)
    for v in sub.variables:
        sub[v].attrs = _nc_attrs(sub[v].attrs)
    enc = {v: {"zlib": True, "complevel": 4, "dtype": "float32", "_FillValue": np.float32(np.nan)}
           for v in sub.data_vars if v not in ("tp_mask", "crs")}
    sub["tp_mask"] = sub["tp_mask"].astype("int8")
    with atomic_path(path) as tmp:
        sub.load().to_netcdf(tmp, encoding=enc, engine="netcdf4", format="NETCDF4")
    return path


def to_geotiff(sub, model: str, path) -> Path:
    """One multi-band GeoTIFF (a band per step, band descriptions = times), EPSG:4326, north up."""
    import rasterio  # lazy: rasterio (GDAL) costs 0.05-0.1 s at import, for GeoTIFF export only; `--help` imports this module
    from rasterio.transform import from_origin

    path = Path(path)
    da = sub[model].load()
    lat, lon = da["lat"].values, da["lon"].values
    dlat = float(lat[1] - lat[0]) if lat.size > 1 else 0.1
    dlon = float(lon[1] - lon[0]) if lon.size > 1 else 0.1
    transform = from_origin(lon[0] - dlon / 2, lat[-1] + dlat / 2, dlon, dlat)
    data = da.values[:, ::-1, :]  # north up
    with atomic_path(path) as tmp:
        with rasterio.open(tmp, "w", driver="GTiff", height=data.shape[1], width=data.shape[2],
                           count=data.shape[0], dtype="float32", crs="EPSG:4326", transform=transform,
                           nodata=np.nan, compress="deflate") as dst:
            dst.write(data.astype("float32"))
            for k, t in enumerate(da["time"].values):
                dst.set_band_description(k + 1, str(np.datetime64(t, "m")))
            dst.update_tags(units=SM_UNITS, standard_name=SM_STANDARD_NAME, model=model,
                            **{k: str(v) for k, v in da.attrs.items() if k.startswith("provenance_")})
    return path
