"""Static layers on TP10: elevation, slope, aspect and the TP mask, from the 1/12 degree DEM.

The DEM is pvlib's global altitude grid (``pvlib/data/Altitude.h5``, BSD-3-Clause; built from
Mapzen terrain tiles: ETOPO1, GMTED2010, SRTM), 1/12 degree (about 9 km). The package ships its
decoded TP subset (``model/resources/dem``, see its README); :func:`read_dem` also reads the
global HDF5 file.

* ``elevation``: area-overlap mean of the 1/12 degree cells over each 0.1 degree TP10 cell
  (:class:`model.grids.Regridder`, exact weights on the ellipsoid), metres.
* ``slope``: ``atan(|grad z|)`` in degrees, from central differences of the TP10 elevation
  (one-sided at the grid edge) with the true length of 0.1 degree at each latitude on the
  WGS84 ellipsoid: north-south ``M(phi) * pi / 180`` and east-west
  ``N(phi) * cos(phi) * pi / 180`` metres per degree (``M``, ``N``: meridional and prime
  vertical radii of curvature).
* ``aspect``: the direction the slope faces (downhill), degrees clockwise from north: 0 =
  north-facing, 90 = east-facing, 180 = south-facing, 270 = west-facing. NaN where the cell is
  flat (``|grad z| < 1e-6``, i.e. below 0.0001 degrees of slope), where no direction exists.
* ``tp_mask``: :func:`model.grids.tp_mask` (union of the 12 TP basins).

Layers cover the whole TP10 box; the mask says where the product is defined.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import h5py
import numpy as np
import xarray as xr

from ..config import RESOURCES
from ..errors import InputError, MissingVariableError, UnreadableFileError, WrongProductError
from ..grids import TP_BBOX, Grid, Regridder, tp10, tp_mask_da

__all__ = ["DEM_PATH", "read_dem", "dem_grid", "slope_aspect", "metres_per_degree",
           "static_layers", "describe"]

#: The packaged TP subset of the pvlib 1/12 degree DEM (lat 25-40 N, lon 73-105 E).
DEM_PATH = RESOURCES / "dem" / "pvlib_altitude_1_12deg_TP_25-40N_73-105E.nc"
DEM_SOURCE = ("pvlib 0.16.1 pvlib/data/Altitude.h5 (BSD-3-Clause), from Mapzen terrain tiles "
              "(ETOPO1, GMTED2010, SRTM); 1/12 degree")

_WGS84_A = 6378137.0
_WGS84_F = 1 / 298.257223563
_WGS84_E2 = _WGS84_F * (2 - _WGS84_F)
_FLAT = 1e-6   # |grad z| (m/m) below which a cell has no aspect


def _subset_bbox(da, bbox):
    if bbox is None:
        return da
    lon_min, lat_min, lon_max, lat_max = bbox
    sel = da.sel(lat=(da.lat > lat_min) & (da.lat < lat_max), lon=(da.lon > lon_min) & (da.lon < lon_max))
    if sel.size == 0:
        raise InputError(f"the DEM has no cell inside bbox {bbox}", "give (lon_min, lat_min, lon_max, lat_max) in degrees")
    return sel


def _read_pvlib_h5(path: Path, bbox):
    try:
        with h5py.File(path, "r") as f:
            if "Altitude" not in f:
                raise MissingVariableError(f"HDF5 file has no 'Altitude' dataset (has: {', '.join(list(f)[:8])})",
                                           "give pvlib's Altitude.h5 or a NetCDF with 'elevation'", path)
            ds = f["Altitude"]
            ny, nx = ds.shape
            if (ny, nx) != (2160, 4320):
                raise WrongProductError(f"'Altitude' is {ny} x {nx}, expected 2160 x 4320 (1/12 degree global)",
                                        "give pvlib's Altitude.h5", path)
            lat_all = 90.0 - (np.arange(ny) + 0.5) / 12.0       # north to south
            lon_all = -180.0 + (np.arange(nx) + 0.5) / 12.0
            if bbox is not None:
                lon_min, lat_min, lon_max, lat_max = bbox
                rows = np.flatnonzero((lat_all > lat_min) & (lat_all < lat_max))
                cols = np.flatnonzero((lon_all > lon_min) & (lon_all < lon_max))
                if rows.size == 0 or cols.size == 0:
                    raise InputError(f"the DEM has no cell inside bbox {bbox}",
                                     "give (lon_min, lat_min, lon_max, lat_max) in degrees")
                raw = ds[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]
                lat, lon = lat_all[rows[0]:rows[-1] + 1], lon_all[cols[0]:cols[-1] + 1]
            else:
                raw = ds[()]
                lat, lon = lat_all, lon_all
    except OSError as exc:
        raise UnreadableFileError(f"cannot be read as HDF5 ({exc})", "check the file is complete", path) from exc
    elev = np.where(raw == 255, np.nan, raw.astype(np.float32) * 28.0 - 450.0).astype(np.float32)
    da = xr.DataArray(elev[::-1], dims=("lat", "lon"), coords={"lat": lat[::-1], "lon": lon})
    da.attrs["source"] = f"{path.name}: uint8, metres = value * 28 - 450, 255 = no data"
    return da


def _read_netcdf(path: Path, bbox):
    try:
        ds = xr.open_dataset(path)
    except Exception as exc:
        raise UnreadableFileError(f"cannot be opened as NetCDF/HDF5 ({exc})",
                                  "give the packaged DEM, pvlib's Altitude.h5 or a NetCDF with 'elevation'", path) from exc
    with ds:
        name = next((n for n in ("elevation", "Altitude", "altitude", "height", "z") if n in ds.data_vars), None)
        if name is None:
            raise MissingVariableError(f"no elevation variable (has: {', '.join(map(str, ds.data_vars))})",
                                       "give a NetCDF with an 'elevation(lat, lon)' variable in metres", path)
        da = ds[name]
        ren = {d: n for d, n in (("latitude", "lat"), ("longitude", "lon")) if d in da.dims}
        da = da.rename(ren)
        if set(da.dims) != {"lat", "lon"}:
            raise WrongProductError(f"'{name}' has dims {da.dims}, expected (lat, lon)",
                                    "give a regular latitude/longitude DEM", path)
        da = da.transpose("lat", "lon").sortby("lat").sortby("lon").load()
        attrs = dict(ds.attrs)
    da = _subset_bbox(da, bbox).astype(np.float32)
    da.attrs = {"source": attrs.get("source", path.name)}
    return da


def read_dem(path: str | Path | None = None, bbox: tuple[float, float, float, float] | None = None):
    """Read the 1/12 degree DEM.

    Parameters
    ----------
    path : str or Path, optional
        ``None``: the packaged TP subset (lat 25-40 N, lon 73-105 E). Or pvlib's global
        ``Altitude.h5`` (dataset ``Altitude``, uint8 2160 x 4320, metres = value * 28 - 450,
        255 = no data, rows 90 N to 90 S, columns 180 W to 180 E, centres +-(i + 0.5)/12), or
        a NetCDF with ``elevation(lat, lon)`` in metres.
    bbox : (lon_min, lat_min, lon_max, lat_max), optional
        Keep the cells whose centres lie inside (degrees). ``None``: the whole file.

    Returns
    -------
    xarray.DataArray
        ``elevation`` (float32, metres above sea level, NaN = no data), dims ``(lat, lon)``,
        latitude ASCENDING, cell-centre coordinates in degrees.
    """
    path = DEM_PATH if path is None else Path(path)
    if not path.is_file():
        raise InputError("DEM file does not exist", "give pvlib's Altitude.h5 or a NetCDF DEM", path)
    with open(path, "rb") as f:
        magic = f.read(8)
    is_hdf5 = magic.startswith(b"\x89HDF")
    da = None
    if is_hdf5:
        with h5py.File(path, "r") as f:
            pvlib = "Altitude" in f and getattr(f["Altitude"], "dtype", None) == np.uint8
        if pvlib:
            da = _read_pvlib_h5(path, bbox)
    if da is None:
        if not (is_hdf5 or magic.startswith(b"CDF")):
            raise WrongProductError("not a DEM (neither HDF5 nor NetCDF)",
                                    "give pvlib's Altitude.h5 or a NetCDF with 'elevation'", path)
        da = _read_netcdf(path, bbox)
    da.name = "elevation"
    da.attrs.update({"units": "m", "standard_name": "height_above_mean_sea_level",
                     "long_name": "terrain elevation (1/12 degree)", "source_file": str(path)})
    da.lat.attrs.update({"standard_name": "latitude", "units": "degrees_north"})
    da.lon.attrs.update({"standard_name": "longitude", "units": "degrees_east"})
    return da


def _edges(centres: np.ndarray) -> np.ndarray:
    step = np.diff(centres)
    if step.size == 0 or not np.allclose(step, step[0], rtol=1e-6, atol=1e-9):
        raise InputError("DEM coordinates are not evenly spaced", "give a regular lat/lon DEM")
    return np.concatenate([centres - step[0] / 2, centres[-1:] + step[0] / 2])


def dem_grid(dem) -> Grid:
    """A :class:`model.grids.Grid` for a DEM DataArray as :func:`read_dem` returns it."""
    lat = np.asarray(dem["lat"].values, dtype=float)
    lon = np.asarray(dem["lon"].values, dtype=float)
    return Grid("DEM", lat, lon, _edges(lat), _edges(lon), dims=("lat", "lon"), crs="EPSG:4326")


def metres_per_degree(lat) -> tuple[np.ndarray, np.ndarray]:
    """Length of one degree of latitude and of longitude (m) at latitude ``lat`` on WGS84."""
    phi = np.deg2rad(np.asarray(lat, dtype=float))
    w = np.sqrt(1 - _WGS84_E2 * np.sin(phi) ** 2)
    m = _WGS84_A * (1 - _WGS84_E2) / w ** 3   # meridional radius of curvature
    n = _WGS84_A / w                           # prime vertical radius of curvature
    return m * np.pi / 180, n * np.cos(phi) * np.pi / 180


def slope_aspect(elevation, lat, lon) -> tuple[np.ndarray, np.ndarray]:
    """Slope and aspect of a field on a regular lat/lon grid.

    Parameters
    ----------
    elevation : array (ny, nx)
        Metres, rows along ``lat`` (either order), columns along ``lon``.
    lat, lon : array (ny,), (nx,)
        Cell-centre coordinates, degrees.

    Returns
    -------
    slope : ndarray (ny, nx)
        Degrees from horizontal (0-90).
    aspect : ndarray (ny, nx)
        Degrees clockwise from north of the downhill direction (0 = north-facing); NaN where
        ``|grad z| < 1e-6`` (flat) or the elevation is missing.
    """
    z = np.asarray(elevation, dtype=np.float64)
    lat = np.asarray(lat, dtype=float)
    lon = np.asarray(lon, dtype=float)
    dz_dlat = np.gradient(z, lat, axis=0)        # m per degree, central inside, one-sided at edges
    dz_dlon = np.gradient(z, lon, axis=1)
    m_lat, m_lon = metres_per_degree(lat)
    dzdy = dz_dlat / m_lat[:, None]               # northward gradient, m/m
    dzdx = dz_dlon / m_lon[:, None]               # eastward gradient, m/m
    grad = np.hypot(dzdx, dzdy)
    slope = np.degrees(np.arctan(grad))
    aspect = np.mod(np.degrees(np.arctan2(-dzdx, -dzdy)), 360.0)
    aspect = np.where(grad < _FLAT, np.nan, aspect)
    return slope, aspect


@lru_cache(maxsize=2)
def _layers(path_key: str | None):
    dem = read_dem(path_key, bbox=TP_BBOX)
    g = tp10()
    src = dem_grid(dem)
    rg = Regridder(src, g)
    elev = rg.apply(dem.values.astype(np.float64))
    slope, aspect = slope_aspect(elev, g.lat, g.lon)
    aspect = aspect.astype(np.float32)
    aspect[aspect >= 360] = 0.0          # 359.99999 rounds to 360 in float32
    coords = g.coords()
    ds = xr.Dataset(
        {
            "elevation": (g.dims, elev.astype(np.float32), {
                "units": "m", "standard_name": "height_above_mean_sea_level",
                "long_name": "terrain elevation, mean over the 0.1 degree cell",
                "cell_methods": "area: mean", "source": DEM_SOURCE}),
            "slope": (g.dims, slope.astype(np.float32), {
                "units": "degree", "long_name": "terrain slope from horizontal",
                "comment": "central differences of the 0.1 degree elevation on the WGS84 ellipsoid"}),
            "aspect": (g.dims, aspect.astype(np.float32), {
                "units": "degree", "long_name": "terrain aspect (downhill direction), clockwise from north",
                "comment": "0 = north-facing, 90 = east-facing; NaN where flat (|grad z| < 1e-6)"}),
            "tp_mask": tp_mask_da("TP10").variable,
        },
        coords=coords,
        attrs={"grid": "TP10", "title": "static layers on TP10", "source_dem": str(dem.attrs.get("source_file"))},
    )
    ds["tp_mask"].attrs = dict(tp_mask_da("TP10").attrs)
    return ds


def static_layers(dem_path: str | Path | None = None):
    """Elevation, slope, aspect and TP mask on TP10 (150 x 320, lat ascending).

    Parameters
    ----------
    dem_path : str or Path, optional
        DEM to use (see :func:`read_dem`); default the packaged 1/12 degree TP subset.

    Returns
    -------
    xarray.Dataset
        dims ``(lat, lon)``: ``elevation`` (float32, m, area-overlap mean of the 1/12 degree
        DEM), ``slope`` (float32, degrees), ``aspect`` (float32, degrees clockwise from north
        of the downhill direction, NaN where flat), ``tp_mask`` (bool). A fresh copy (the
        computation is cached per process).
    """
    key = None if dem_path is None else str(Path(dem_path).resolve())
    return _layers(key).copy(deep=True)


def describe(path: str | Path) -> dict:
    """What ``sm-downscale inspect`` shows for a DEM file (packaged NetCDF or pvlib HDF5)."""
    path = Path(path)
    dem = read_dem(path)
    v = dem.values
    ok = np.isfinite(v)
    lat, lon = dem.lat.values, dem.lon.values
    res = float(abs(lat[1] - lat[0])) if lat.size > 1 else None
    return {
        "product": "DEM",
        "path": str(path),
        "variables": {"elevation": "m"},
        "time_start": None,
        "time_end": None,
        "grid": {"name": "regular latitude/longitude", "crs": "EPSG:4326", "dims": ["lat", "lon"],
                 "shape": [int(lat.size), int(lon.size)],
                 "lat": [float(lat.min()), float(lat.max())], "lon": [float(lon.min()), float(lon.max())],
                 "resolution_deg": res},
        "elevation": {"valid_count": int(ok.sum()), "no_data_count": int((~ok).sum()),
                      "mean": float(v[ok].mean()) if ok.any() else None,
                      "min": float(v[ok].min()) if ok.any() else None,
                      "max": float(v[ok].max()) if ok.any() else None},
        "soil_moisture": None,
        "source": dem.attrs.get("source"),
    }
