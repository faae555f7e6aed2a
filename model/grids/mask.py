"""The TP mask: union of the 12 major TP river basins (Zhang 2019, TPDC), rasterised.

A TP10 cell is inside when its centre lies in the union of the basin polygons. On the
EASE-Grid 2.0 subsets, a cell is inside when at least half its area is TP10-inside.
Source: ``model/resources/tp_boundary`` (see its README).
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import shapefile
import shapely
import xarray as xr
from shapely.geometry import shape
from shapely.ops import unary_union

from ..config import RESOURCES
from .core import Grid, get_grid
from .regrid import regridder

BOUNDARY_SHP = RESOURCES / "tp_boundary" / "TP_basins.shp"


@lru_cache(maxsize=1)
def tp_polygon():
    """The TP outline as one shapely (Multi)Polygon, WGS84."""
    with shapefile.Reader(str(BOUNDARY_SHP)) as r:
        geoms = [shape(s.__geo_interface__) for s in r.shapes()]
    return unary_union([g.buffer(0) for g in geoms])


@lru_cache(maxsize=4)
def tp_mask(grid_name: str = "TP10") -> np.ndarray:
    """Boolean mask (ny, nx) of the cells the product covers, in the grid's array order."""
    if grid_name == "TP10":
        g = get_grid("TP10")
        lon2, lat2 = np.meshgrid(g.lon, g.lat)
        poly = tp_polygon()
        shapely.prepare(poly)
        inside = shapely.contains_xy(poly, lon2.ravel(), lat2.ravel()).reshape(g.shape)
        inside.setflags(write=False)
        return inside

    frac = regridder("TP10", grid_name).coverage(tp_mask("TP10"))
    m = frac >= 0.5
    m.setflags(write=False)
    return m


def tp_mask_da(grid: Grid | str = "TP10"):
    g = get_grid(grid) if isinstance(grid, str) else grid
    return xr.DataArray(tp_mask(g.name), dims=g.dims, coords=g.coords(), name="tp_mask",
                        attrs={"long_name": "Tibetan Plateau mask (union of 12 major basins)",
                               "source": "Zhang G. (2019), TPDC, doi:10.11888/BaseGeography.tpe.249465.file",
                               "flag_values": "0 1", "flag_meanings": "outside inside"})
