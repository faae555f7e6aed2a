"""Fitting and running the no-learning references through the same run interface.

The methods themselves live in :mod:`model.networks.reference` (pure numpy); this module
feeds them the training data and the inference inputs:

``smap_bilinear``
    At each 3-hourly step, the most recent SMAP L3 retrieval of each SMAP cell within the
    last 36 h (persistence between overpasses), interpolated bilinearly from the SMAP cell
    centres to the 10 km cell centres (NaN-aware).
``era5_cdf``
    ERA5-Land swvl1 aggregated to the SMAP cells at the overpass steps of the training period,
    CDF-matched to SMAP per SMAP cell; applied to the 10 km swvl1 with the mapping of the SMAP
    cell that holds each 10 km cell.
"""

from __future__ import annotations

import numpy as np

PERSIST_HOURS = 36


def fit_reference(name: str, data, cfg):
    """A fitted reference model (a registry object with ``state_dict``)."""
    from ..networks.registry import get_model

    model = get_model(name)
    if name == "era5_cdf":
        cube = data.cube
        c = cube.channels.index("swvl1")
        norm = data.norm
        x = cube.x3[data.train_steps, c] * norm.dyn_std[c] + norm.dyn_mean[c]  # back to m3 m-3
        y = data.target[data.train_steps]
        ok = np.isfinite(y) & cube.mask[None]
        model.fit(np.where(ok, x, np.nan), np.where(ok, y, np.nan))
    return model


class ReferenceRunner:
    """Predicts 10 km scenes with a fitted reference (needs the store for SMAP / swvl1)."""

    def __init__(self, model, extra: dict, ard):
        from ..grids import get_grid, tp10
        from ..training.ard import open_group
        from ..training.trainer import TARGETS

        self.model = model
        self.name = model.name
        group, grid = TARGETS[extra.get("target", "smap_l3_9km")]
        self.src_grid = get_grid(grid)
        self.dst = tp10()
        if self.name == "smap_bilinear":
            smap = open_group(ard, group)
            self.smap_times = smap["time"].values.astype("datetime64[ns]")
            self.smap = smap["soil_moisture"]
        else:
            la, lo = np.meshgrid(self.dst.lat, self.dst.lon, indexing="ij")
            r, c = self.src_grid.locate(la.ravel(), lo.ravel())
            flat = np.where(r >= 0, r * self.src_grid.shape[1] + c, -1)
            self.cell_index = flat.reshape(self.dst.shape)

    def latest_field(self, t) -> np.ndarray:
        t = np.datetime64(t, "ns")
        lo = t - np.timedelta64(PERSIST_HOURS, "h")
        sel = np.nonzero((self.smap_times <= t) & (self.smap_times > lo))[0]
        field = np.full(self.src_grid.shape, np.nan, np.float32)
        if sel.size:
            vals = self.smap.isel(time=sel).values
            for v in vals[::-1]:  # newest first
                fill = np.isnan(field) & np.isfinite(v)
                field[fill] = v[fill]
        return field

    def predict(self, t, cube=None) -> np.ndarray:
        if self.name == "smap_bilinear":
            g = self.src_grid
            return self.model.predict(self.latest_field(t), g.lat, g.lon, self.dst.lat, self.dst.lon)
        i = cube.step_index(t)
        x = cube.x3[i, cube.channels.index("swvl1")]
        return np.asarray(self.model.apply(x, cell_index=self.cell_index), np.float32)
