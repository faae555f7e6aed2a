"""Running a fitted no-learning reference over 10 km scenes (fitting it:
:mod:`model.training.references`; the methods: :mod:`model.networks.reference`).

``smap_bilinear`` reads SMAP itself: at each step the most recent L3 retrieval of each SMAP cell
within the last :data:`PERSIST_HOURS` hours, interpolated to the 10 km centres; the other
references read one predictor channel of the cube (``reads_channel``).
"""

from __future__ import annotations

import numpy as np

from ..features.ard import TARGETS, open_group
from ..grids import get_grid, tp10

#: how long a SMAP retrieval persists between overpasses for ``smap_bilinear``
PERSIST_HOURS = 36


class ReferenceRunner:
    """Predicts 10 km scenes with a fitted reference (needs the store for SMAP / swvl1)."""

    def __init__(self, model, extra: dict, ard):
        self.model = model
        self.name = model.name
        #: the reference's capabilities, as its class declares them (the runner asks them)
        self.batchable, self.per_pixel, self.reads_channel = model.batchable, model.per_pixel, model.reads_channel
        group, grid = TARGETS[extra.get("target", "smap_l3_9km")]
        self.src_grid = get_grid(grid)
        self.dst = tp10()
        if self.reads_channel is None:        # reads SMAP itself
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
        if self.reads_channel is None:
            g = self.src_grid
            return self.model.predict(self.latest_field(t), g.lat, g.lon, self.dst.lat, self.dst.lon)
        i = cube.step_index(t)
        x = cube.x3[i, cube.channels.index(self.reads_channel)]
        return np.asarray(self.model.apply(x, cell_index=self.cell_index), np.float32)
