"""Rectilinear latitude/longitude grids: TP10 and the EASE-Grid 2.0 subsets over the TP.

Every grid of this project is rectilinear in (latitude, longitude), which makes exact
area-overlap regridding separable (see :mod:`model.grids.regrid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import xarray as xr

from ..errors import unknown_name
from . import ease2

#: The TP box of the product: cell edges 25..40 N, 73..105 E.
TP_BBOX = (73.0, 25.0, 105.0, 40.0)  # (lon_min, lat_min, lon_max, lat_max)


@dataclass(frozen=True, eq=False)
class Grid:
    """A rectilinear lat/lon grid.

    Attributes
    ----------
    name : str
        ``"TP10"``, ``"M36"`` or ``"M09"``.
    lat, lon : ndarray
        Cell-centre latitudes (ny,) and longitudes (nx,), degrees, in array order.
    lat_bounds, lon_bounds : ndarray
        Cell edges (ny+1,), (nx+1,) in array order.
    dims : tuple of str
        Dimension names of a 2-D field on this grid, ``("lat", "lon")`` for TP10 and
        ``("y", "x")`` for EASE-Grid 2.0 (whose latitudes are not evenly spaced).
    row_offset, col_offset : int
        For EASE-Grid 2.0 subsets: the global row/column index of array row/column 0.
    crs : str
        ``"EPSG:4326"`` or ``"EPSG:6933"``.
    """

    name: str
    lat: np.ndarray
    lon: np.ndarray
    lat_bounds: np.ndarray
    lon_bounds: np.ndarray
    dims: tuple[str, str]
    row_offset: int = 0
    col_offset: int = 0
    crs: str = "EPSG:4326"
    attrs: dict = field(default_factory=dict)

    @property
    def shape(self) -> tuple[int, int]:
        return (self.lat.size, self.lon.size)

    @property
    def size(self) -> int:
        return self.lat.size * self.lon.size

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return (f"Grid({self.name}, {self.shape[0]}x{self.shape[1]}, lat {self.lat.min():.3f}.."
                f"{self.lat.max():.3f}, lon {self.lon.min():.3f}..{self.lon.max():.3f})")

    def cell_area_km2(self) -> np.ndarray:
        """Cell areas (ny, nx) on the WGS84 ellipsoid, km2."""
        r_auth2 = ease2.A ** 2 * ease2.QP / 2  # authalic radius squared
        dsin = np.abs(np.diff(ease2.sin_authalic(self.lat_bounds)))
        dlon = np.abs(np.deg2rad(np.diff(self.lon_bounds)))
        return np.outer(dsin, dlon) * r_auth2 / 1e6

    def locate(self, lat, lon):
        """Array (row, col) indices of the cells holding points; -1 where outside."""
        lat = np.atleast_1d(np.asarray(lat, dtype=float))
        lon = np.atleast_1d(np.asarray(lon, dtype=float))
        rows = _locate_1d(self.lat_bounds, lat)
        cols = _locate_1d(self.lon_bounds, lon)
        outside = (rows < 0) | (cols < 0)
        rows[outside] = -1
        cols[outside] = -1
        return rows, cols

    def coords(self) -> dict:
        """xarray coordinates for a 2-D field on this grid (CF attributes included)."""
        ydim, xdim = self.dims
        lat_attrs = {"standard_name": "latitude", "units": "degrees_north", "long_name": "latitude of cell centre"}
        lon_attrs = {"standard_name": "longitude", "units": "degrees_east", "long_name": "longitude of cell centre"}
        if self.dims == ("lat", "lon"):
            return {"lat": ("lat", self.lat, lat_attrs), "lon": ("lon", self.lon, lon_attrs)}
        return {
            ydim: (ydim, np.arange(self.shape[0]) + self.row_offset, {"long_name": f"EASE-Grid 2.0 {self.name} global row index"}),
            xdim: (xdim, np.arange(self.shape[1]) + self.col_offset, {"long_name": f"EASE-Grid 2.0 {self.name} global column index"}),
            "lat": (ydim, self.lat, lat_attrs),
            "lon": (xdim, self.lon, lon_attrs),
        }

    def template(self, fill=np.nan, dtype="float32"):
        return xr.DataArray(np.full(self.shape, fill, dtype=dtype), dims=self.dims, coords=self.coords())


def _locate_1d(bounds: np.ndarray, values: np.ndarray) -> np.ndarray:
    ascending = bounds[-1] > bounds[0]
    b = bounds if ascending else bounds[::-1]
    idx = np.searchsorted(b, values, side="right") - 1
    idx = np.where((values < b[0]) | (values >= b[-1]) | ~np.isfinite(values), -1, idx)
    if not ascending:
        idx = np.where(idx >= 0, bounds.size - 2 - idx, -1)
    return idx.astype(int)


@lru_cache(maxsize=None)
def tp10() -> Grid:
    """The product grid: 0.1 deg, cell centres 25.05..39.95 N, 73.05..104.95 E (150 x 320).

    Latitude runs south to north (ascending), unlike ERA5-Land files (descending), which the
    reader flips.
    """
    lat_b = np.round(np.linspace(25.0, 40.0, 151), 6)
    lon_b = np.round(np.linspace(73.0, 105.0, 321), 6)
    return Grid("TP10", (lat_b[:-1] + lat_b[1:]) / 2, (lon_b[:-1] + lon_b[1:]) / 2, lat_b, lon_b,
                dims=("lat", "lon"), crs="EPSG:4326")


@lru_cache(maxsize=None)
def ease2_grid(name: str = "M36", bbox: tuple[float, float, float, float] | None = TP_BBOX) -> Grid:
    """An EASE-Grid 2.0 global grid (``"M36"``, ``"M09"``), cut to the cells overlapping ``bbox``.

    ``bbox=None`` returns the whole global grid.
    """
    if name not in ease2.GRIDS:
        raise unknown_name("EASE-Grid 2.0 grid", name, list(ease2.GRIDS))
    lat_e, lon_e = ease2.row_col_edges(name)
    lat_c, lon_c = ease2.row_col_centres(name)
    r0, r1, c0, c1 = 0, lat_c.size, 0, lon_c.size
    if bbox is not None:
        lon_min, lat_min, lon_max, lat_max = bbox
        rows = np.nonzero((lat_e[1:] < lat_max) & (lat_e[:-1] > lat_min))[0]
        cols = np.nonzero((lon_e[:-1] < lon_max) & (lon_e[1:] > lon_min))[0]
        r0, r1, c0, c1 = rows[0], rows[-1] + 1, cols[0], cols[-1] + 1
    return Grid(name, lat_c[r0:r1], lon_c[c0:c1], lat_e[r0:r1 + 1], lon_e[c0:c1 + 1],
                dims=("y", "x"), row_offset=int(r0), col_offset=int(c0), crs="EPSG:6933")


def get_grid(name: str) -> Grid:
    """A grid by name: ``TP10``, ``M36`` or ``M09`` (the latter two cut to the TP box)."""
    if name == "TP10":
        return tp10()
    return ease2_grid(name)
