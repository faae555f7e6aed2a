"""Grids of the product (TP10) and of SMAP (EASE-Grid 2.0 M36/M09), the TP mask and the
exact area-overlap regridding operators between them."""

from .core import TP_BBOX, Grid, ease2_grid, get_grid, tp10
from .mask import tp_mask, tp_mask_da, tp_polygon
from .regrid import Regridder, regridder

__all__ = ["TP_BBOX", "Grid", "Regridder", "ease2_grid", "get_grid", "regridder", "tp10",
           "tp_mask", "tp_mask_da", "tp_polygon"]
