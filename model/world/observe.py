"""Observation operators: from the hidden truth (and the two reanalysis-like models) to what a
user would have, as the xarray objects the project's format writers take.

* :class:`SmapL3Operator` - SMAP-like SPL3SMP (36 km) and SPL3SMP_E (9 km) daily AM/PM
  retrievals: swath geometry, per-cell overpass time, truth aggregated over the cell at that
  time (9 km: 30 km-smoothed first, the radiometer's effective resolution), retrieval error
  (static bias + day-to-day spatially correlated + white, larger under vegetation), flags, and
  no retrieval over frozen soil and snow. It also feeds the L4-like assimilation.
* :class:`L4Operator` - SPL4SMGP-like 3-hourly means of the assimilating land model on M09.
* :class:`Era5Operator` - hourly ERA5-Land-like fields, one CDS-layout file per month.
* :class:`TruthOperator` - the hidden truth at product steps, in the archive layout (Zarr).
* :class:`IsmnOperator` - station point series (representativeness + sensor noise, outages,
  flagged spikes and frozen periods) at the real station coordinates.

Writing happens through ``model.data`` writers only (here: functions ``write_*_task`` that a
worker process can run); the operators never touch a file format themselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import xarray as xr

from ..data.era5_grib import ACCUMULATED, PARAMS
from ..data.era5_write import write_era5_netcdf
from ..data.ismn_write import write_ismn_station
from ..data.smap import overpass_template
from ..data.smap_write import write_smap_l3, write_smap_l4
from ..data.stations import station_table
from ..grids import get_grid, regridder, tp10
from ..schema import SM_STANDARD_NAME, SM_UNITS
from .config import WorldConfig, rng_for
from .land import T0, LandState
from .static import StaticFields, gaussian_smooth_masked, smooth_noise
from .weather import dewpoint

HOUR_NS = 3_600_000_000_000


def bitround(x: np.ndarray, keepbits: int) -> np.ndarray:
    """float32 copy of ``x`` rounded to ``keepbits`` mantissa bits (relative precision
    2**-(keepbits+1)); the dropped bits are zeros, which compressors squeeze out. NaN stays NaN."""
    x = np.array(x, dtype=np.float32, copy=True, order="C")
    b = x.view(np.uint32)
    drop = 23 - int(keepbits)
    if drop > 0:
        b += np.uint32(1 << (drop - 1))
        b &= np.uint32((0xFFFFFFFF << drop) & 0xFFFFFFFF)
    return x


def _clip_range(month: pd.Period, config: WorldConfig, freq: str) -> pd.DatetimeIndex:
    """The times of a month inside the written period (00 UTC of the first day on)."""
    a = max(month.start_time, config.start_ts)
    b = min(month.end_time.floor("h"), config.end_ts)
    return pd.date_range(a, b, freq=freq)


def hour_index(t) -> int:
    """Whole hours since 1970 of a timestamp (UTC)."""
    return int(pd.Timestamp(t).value // HOUR_NS)


# ------------------------------------------------------------------------------------------
# SMAP swath geometry
# ------------------------------------------------------------------------------------------
class SwathModel:
    """Sun-synchronous ground tracks of SMAP over the TP, good enough for gaps and times.

    Neighbouring tracks of one pass are one orbit apart: 360/14.625 = 24.6 deg of longitude.
    14.625 orbits a day shift the pattern by 0.625 track spacings per day, so it repeats every
    8 days (SMAP's exact repeat). Tracks lean 0.25 deg of longitude per deg of latitude
    (descending AM passes lean one way, ascending PM passes the other: a diamond pattern when
    both are drawn). A cell is seen when it lies within half a swath of a track centre
    (``coverage`` x spacing at 32 N, widening as 1/cos(lat)); it is seen at 06:00 (AM) or
    18:00 (PM) local mean solar time *of the track centre*, so its UTC observation time is
    ``date + 6 h - lon_track / 15 h``.
    """

    SPACING = 360.0 / 14.625
    SHIFT = 0.625
    TILT = {"AM": 0.25, "PM": -0.25}
    LST = {"AM": 6.0, "PM": 18.0}
    OFFSET = {"AM": 3.0, "PM": 14.0}
    EPOCH = np.datetime64("2015-01-01", "D")

    def __init__(self, coverage: float):
        self.coverage = float(coverage)

    def _local(self, local_day: np.datetime64, pas: str, lat, lon):
        d = int((local_day - self.EPOCH) / np.timedelta64(1, "D"))
        lam = lon - self.TILT[pas] * (lat - 32.0)         # longitude along the track at 32 N
        base = self.OFFSET[pas] - (self.SHIFT * d % 1.0) * self.SPACING
        rel = (lam - base) % self.SPACING
        k = np.where(rel > self.SPACING / 2, rel - self.SPACING, rel)   # signed offset from centre
        half = self.coverage * self.SPACING / 2 * np.cos(np.deg2rad(32.0)) / np.cos(np.deg2rad(lat))
        seen = np.abs(k) <= half
        lon_track = lon - k
        hours = self.LST[pas] - lon_track / 15.0
        t = local_day.astype("datetime64[ns]") + (hours * 3600e9).astype("int64").astype("timedelta64[ns]")
        return seen, t

    def obs_times(self, day, pas: str, lat, lon) -> np.ndarray:
        """UTC observation times (datetime64[ns], NaT where unobserved) of cells for the file of
        UTC day ``day``: each cell takes the local date whose overpass falls inside that day."""
        day = np.datetime64(day, "D")
        lat = np.asarray(lat, float)
        lon = np.asarray(lon, float)
        d0 = day.astype("datetime64[ns]")
        d1 = (day + 1).astype("datetime64[ns]")
        out = np.full(lat.shape, np.datetime64("NaT", "ns"))
        for local in (day - 1, day, day + 1):
            seen, t = self._local(local, pas, lat, lon)
            ok = seen & (t >= d0) & (t < d1) & np.isnat(out)
            out[ok] = t[ok]
        return out


# ------------------------------------------------------------------------------------------
# SMAP L3
# ------------------------------------------------------------------------------------------
#: retrieval error model (m3 m-3), documented in docs/world.md
SMAP_ERR = dict(bias_mean=-0.015, bias_sd=0.02, corr_sd=0.022, corr_scale_cells=2.5,
                white_sd=0.032, veg_sd=0.015, e_white_sd=0.012, fail_rate=0.015,
                m09_smooth_cells=1.3)
#: surface_flag bits and retrieval_qual_flag bits (from model.data.smap)
_SF = {"precipitation": 4, "snow_or_ice": 5, "radiometer_frozen_ground": 7,
       "model_frozen_ground": 8, "mountainous_terrain": 9, "dense_vegetation": 10}


@dataclass
class _Schedule:
    day: np.datetime64
    times: dict            # (product, pass) -> obs time array (grid shape)
    hours: dict            # (product, pass) -> {hour index: flat indices}
    err: dict              # (product, pass) -> error field (grid shape)
    out: dict = field(default_factory=dict)   # (product, pass) -> dict of arrays
    last_hour: int = 0


class SmapL3Operator:
    """SMAP-like daily L3 retrievals at 36 km and 9 km, built hour by hour."""

    PRODUCTS = {"SPL3SMP": "M36", "SPL3SMP_E": "M09"}

    def __init__(self, st: StaticFields, seed: int, config: WorldConfig):
        self.st, self.seed, self.config = st, seed, config
        self.swath = SwathModel(config.swath_coverage)
        self.grids = {g: get_grid(g) for g in ("M36", "M09")}
        self.rg = {g: regridder("TP10", g) for g in ("M36", "M09")}
        self.sim_grid = st.sim_mask.astype(np.float32)
        # static per-grid fields
        z = np.where(st.sim_mask, st.elevation, np.nan).astype(np.float64)
        rg36 = self.rg["M36"]
        zm = rg36.apply(z)
        z2 = rg36.apply(z * z)
        std36 = np.sqrt(np.clip(z2 - zm * zm, 0, None))
        self.mount = {"M36": np.nan_to_num(std36) > 450.0}
        g36, g09 = self.grids["M36"], self.grids["M09"]
        pr, pc = g36.locate(np.repeat(g09.lat, g09.shape[1]), np.tile(g09.lon, g09.shape[0]))
        pr = np.clip(pr, 0, g36.shape[0] - 1).reshape(g09.shape)
        pc = np.clip(pc, 0, g36.shape[1] - 1).reshape(g09.shape)
        self.parent09 = (pr, pc)
        self.mount["M09"] = self.mount["M36"][pr, pc]
        vwc = np.where(st.sim_mask, st.vwc, np.nan).astype(np.float32)
        self.vwc = {g: np.nan_to_num(self.rg[g].apply(vwc)) for g in ("M36", "M09")}
        # where a retrieval can exist at all (>= half the cell simulated)
        self.valid = {g: self.rg[g].coverage(st.sim_mask) >= 0.5 for g in ("M36", "M09")}
        rng = rng_for(seed, "smap", "bias")
        b36 = SMAP_ERR["bias_mean"] + SMAP_ERR["bias_sd"] * smooth_noise(rng, g36.shape, 2.0)
        b09 = b36[pr, pc] + 0.01 * smooth_noise(rng, g09.shape, 3.0)
        self.bias = {"M36": b36.astype(np.float32), "M09": b09.astype(np.float32)}
        self.lat2 = {g: np.repeat(self.grids[g].lat[:, None], self.grids[g].shape[1], 1) for g in ("M36", "M09")}
        self.lon2 = {g: np.repeat(self.grids[g].lon[None, :], self.grids[g].shape[0], 0) for g in ("M36", "M09")}
        # TP10 cell -> its M36 parent (flat index), for the L4 assimilation
        r10, c10 = np.unravel_index(st.cells, st.shape)
        lr, lc = g36.locate(st.lat2.ravel()[st.cells], st.lon2.ravel()[st.cells])
        self.cell_parent36 = np.where(lr >= 0, lr * g36.shape[1] + lc, -1)
        self.schedules: dict = {}
        self._done: set = set()
        self.first_day = np.datetime64(config.sim_start, "D")
        self.last_day = np.datetime64(config.end, "D")

    # -- schedules -----------------------------------------------------------------------
    def _schedule(self, day: np.datetime64) -> _Schedule:
        times, hours, err = {}, {}, {}
        for prod, g in self.PRODUCTS.items():
            for pas in ("AM", "PM"):
                t = self.swath.obs_times(day, pas, self.lat2[g], self.lon2[g])
                t = np.where(self.valid[g], t, np.datetime64("NaT"))
                times[(prod, pas)] = t
                ok = ~np.isnat(t)
                h = (t[ok].astype("int64") + HOUR_NS // 2) // HOUR_NS
                idx = np.flatnonzero(ok.ravel())
                hours[(prod, pas)] = {int(k): idx[h == k] for k in np.unique(h)}
        g36, g09 = self.grids["M36"], self.grids["M09"]
        for pas in ("AM", "PM"):
            rng = rng_for(self.seed, "smap", str(day), pas)
            e_corr = SMAP_ERR["corr_sd"] * smooth_noise(rng, g36.shape, SMAP_ERR["corr_scale_cells"])
            sd = SMAP_ERR["white_sd"] + SMAP_ERR["veg_sd"] * np.minimum(self.vwc["M36"] / 5.0, 1.0)
            e36 = e_corr + sd * rng.standard_normal(g36.shape)
            err[("SPL3SMP", pas)] = e36.astype(np.float32)
            pr, pc = self.parent09
            e09 = e36[pr, pc] + SMAP_ERR["e_white_sd"] * rng.standard_normal(g09.shape)
            err[("SPL3SMP_E", pas)] = e09.astype(np.float32)
            for prod in self.PRODUCTS:
                fail = rng.random(self.grids[self.PRODUCTS[prod]].shape) < SMAP_ERR["fail_rate"]
                err[(prod, pas, "fail")] = fail
        s = _Schedule(day=day, times=times, hours=hours, err=err)
        for key, t in times.items():
            shape = t.shape
            s.out[key] = {"sm": np.full(shape, np.nan, np.float32),
                          "q": np.full(shape, 65534, np.uint16), "s": np.full(shape, 65534, np.uint16)}
        all_h = [h for d in hours.values() for h in d]
        # a day is done after 00 UTC of the next day (the latest an AM overpass can round to)
        s.last_hour = max(all_h + [hour_index((day + 1).astype("datetime64[ns]"))])
        return s

    def _ensure(self, t: pd.Timestamp):
        day = np.datetime64(t.floor("D").date(), "D")
        for d in (day, day + 1):
            if self.first_day <= d <= self.last_day and d not in self.schedules and d not in self._done:
                self.schedules[d] = self._schedule(d)

    # -- hourly --------------------------------------------------------------------------
    def observe(self, t: pd.Timestamp, truth: LandState, precip: np.ndarray):
        """Retrievals of the cells observed at hour ``t``; returns the M36 retrievals usable
        by the L4 assimilation: (flat M36 indices, values)."""
        self._ensure(t)
        h = hour_index(t)
        todo = [(s, key) for s in self.schedules.values() for key in s.hours if h in s.hours[key]]
        if not todo:
            return None
        st = self.st
        grid_sm = st.to_grid(truth.liq1)
        fields = {}
        frozen = st.to_grid((truth.t1 <= T0).astype(np.float32))
        snow = st.to_grid(truth.swe / (truth.swe + 5.0))
        rain = st.to_grid(precip)
        for g in ("M36", "M09"):
            sm_src = grid_sm if g == "M36" else gaussian_smooth_masked(
                grid_sm, st.sim_mask, SMAP_ERR["m09_smooth_cells"])
            rg = self.rg[g]
            fields[g] = {"sm": rg.apply(sm_src), "frozen": rg.apply(frozen), "snow": rg.apply(snow),
                         "rain": rg.apply(rain)}
        assim_idx, assim_val = [], []
        for s, key in todo:
            prod, pas = key
            g = self.PRODUCTS[prod]
            idx = s.hours[key][h]
            f = fields[g]
            o = s.out[key]
            agg = f["sm"].ravel()[idx]
            fz = np.nan_to_num(f["frozen"].ravel()[idx])
            sn = np.nan_to_num(f["snow"].ravel()[idx])
            rn = np.nan_to_num(f["rain"].ravel()[idx])
            val = agg + self.bias[g].ravel()[idx] + s.err[key].ravel()[idx]
            val = np.clip(val, 0.0, 0.75)
            surf = np.zeros(idx.size, np.uint16)
            surf |= np.where(rn > 0.3, 1 << _SF["precipitation"], 0).astype(np.uint16)
            surf |= np.where(sn > 0.05, 1 << _SF["snow_or_ice"], 0).astype(np.uint16)
            surf |= np.where(fz > 0.5, 1 << _SF["radiometer_frozen_ground"], 0).astype(np.uint16)
            surf |= np.where(fz > 0.05, 1 << _SF["model_frozen_ground"], 0).astype(np.uint16)
            surf |= np.where(self.mount[g].ravel()[idx], 1 << _SF["mountainous_terrain"], 0).astype(np.uint16)
            dense = self.vwc[g].ravel()[idx] > 5.0
            surf |= np.where(dense, 1 << _SF["dense_vegetation"], 0).astype(np.uint16)
            not_attempted = (fz > 0.5) | (sn > 0.5) | ~np.isfinite(agg)
            failed = s.err[(prod, pas, "fail")].ravel()[idx] & ~not_attempted
            not_rec = (self.mount[g].ravel()[idx] | dense | (fz > 0.05) | (sn > 0.05) | (rn > 0.3)
                       | (val < 0.02) | (val > 0.5) | failed | not_attempted)
            q = np.where(not_rec, 1, 0) | np.where(not_attempted, 2, 0) | np.where(not_attempted | failed, 4, 0)
            o["sm"].ravel()[idx] = np.where(not_attempted | failed, np.nan, val).astype(np.float32)
            o["q"].ravel()[idx] = q.astype(np.uint16)
            o["s"].ravel()[idx] = surf
            if prod == "SPL3SMP":
                use = ~not_rec
                assim_idx.append(idx[use])
                assim_val.append(val[use].astype(np.float32))
        if assim_idx:
            return np.concatenate(assim_idx), np.concatenate(assim_val)
        return None

    def finished(self, t: pd.Timestamp) -> list:
        """Days whose every observation is done by hour ``t``: [(day, {product: (am, pm)})]."""
        h = hour_index(t)
        out = []
        for day in sorted(self.schedules):
            s = self.schedules[day]
            if s.last_hour > h:
                continue
            del self.schedules[day]
            self._done.add(day)
            if not (np.datetime64(self.config.start, "D") <= day <= self.last_day):
                continue
            res = {}
            for prod in self.PRODUCTS:
                pair = []
                for pas in ("AM", "PM"):
                    ds = overpass_template(prod)
                    o = s.out[(prod, pas)]
                    ds["soil_moisture"].values[:] = bitround(o["sm"], 12)
                    ds["obs_time"].values[:] = s.times[(prod, pas)]
                    ds["retrieval_qual_flag"].values[:] = o["q"]
                    ds["surface_flag"].values[:] = o["s"]
                    pair.append(ds)
                res[prod] = tuple(pair)
            out.append((day, res))
        return out


# ------------------------------------------------------------------------------------------
# SMAP L4
# ------------------------------------------------------------------------------------------
#: Geophysical_Data fields written (each extra field costs ~40 ms per 3-hourly file)
L4_FIELDS = ("sm_surface",)


class L4Operator:
    """3-hourly means of the assimilating land model, aggregated to M09 (SPL4SMGP-like)."""

    def __init__(self, st: StaticFields, config: WorldConfig, d1: float, d2: float):
        self.st = st
        self.rg = regridder("TP10", "M09")
        self.grid = get_grid("M09")
        self.w = (np.float32(d1 / (d1 + d2)), np.float32(d2 / (d1 + d2)))
        self.t0 = config.start_ts
        self.t1 = config.end_ts + pd.Timedelta(hours=1)
        self._sum = None
        self._n = 0

    def record(self, t: pd.Timestamp, s: LandState):
        """Add the state at ``t``; returns (window centre, Dataset) when a window closes."""
        if not (self.t0 < t <= self.t1):
            return None
        vals = (s.w1,)
        if self._sum is None:
            self._sum = [v.astype(np.float32).copy() for v in vals]
        else:
            for a, v in zip(self._sum, vals):
                a += v
        self._n += 1
        if t.hour % 3 != 0:
            return None
        n, sums = self._n, self._sum
        self._sum, self._n = None, 0
        if n != 3:
            return None

        g = self.grid
        names = L4_FIELDS
        data = {}
        for name, a in zip(names, sums):
            data[name] = (g.dims, bitround(self.rg.apply(self.st.to_grid(a / 3.0)), 12))
        centre = t - pd.Timedelta(minutes=90)
        return centre, xr.Dataset(data, coords=g.coords())


# ------------------------------------------------------------------------------------------
# ERA5-Land
# ------------------------------------------------------------------------------------------
ERA5_VARS = ("swvl1", "stl1", "skt", "t2m", "d2m", "sd", "tp", "e", "ssrd")
#: decimal digits kept per variable (netCDF4 quantisation; precision 10**-d, e.g. 0.001 m3 m-3,
#: 0.1 K, 0.01 mm of precipitation, ~1 kJ m-2 of radiation): what keeps a month of hourly TP
#: fields in tens of MB instead of GB
ERA5_LSD = {"swvl1": 3, "stl1": 1, "skt": 1, "t2m": 1, "d2m": 1, "sd": 4, "tp": 5, "e": 5, "ssrd": -4}
#: additive wet bias of the ERA5-Land-like surface soil water on top of its model's own
ERA5_SWVL1_OFFSET = 0.02


class Era5Operator:
    """Hourly ERA5-Land-like fields, buffered per month over the simulated cells."""

    def __init__(self, st: StaticFields, config: WorldConfig, skip=lambda month: False):
        self.st = st
        self.months = {p: _clip_range(p, config, "h") for p in config.months()}
        self.first, self.last = config.start_ts, config.end_ts
        self.skip = skip
        self.buf = None
        self.month = None

    def record(self, t: pd.Timestamp, s: LandState, f: dict):
        """Store hour ``t``; returns (month, times, buffers) when a month is complete."""
        if t < self.first or t > self.last:
            return None
        m = t.to_period("M")
        if self.month != m:
            times = self.months[m]
            if self.skip(m):
                return None
            self.month = m
            self.buf = {v: np.empty((times.size, self.st.n), np.float32) for v in ERA5_VARS}
            self._t0, self._nt = times[0], times.size
        i = int((t - self._t0) // pd.Timedelta(hours=1))
        b = self.buf
        b["swvl1"][i] = np.minimum(s.w1 + ERA5_SWVL1_OFFSET, 0.95)
        b["stl1"][i] = s.t1
        b["skt"][i] = s.tskin
        b["t2m"][i] = f["t2m"] + T0
        b["d2m"][i] = np.minimum(dewpoint(f["ea"]), f["t2m"]) + T0
        b["sd"][i] = s.swe / 1000.0
        b["tp"][i] = f["precip"] / 1000.0
        b["e"][i] = -s.evap / 1000.0
        b["ssrd"][i] = f["sw"] * 3600.0
        if i == self._nt - 1:
            out = (m, self.months[m], self.buf)
            self.buf, self.month = None, None
            return out
        return None


def era5_dataset(times, cells, shape, buffers: dict, chunk_hours: int = 96):
    """A lazily gridded (Dask) Dataset of one month, as ``read_era5`` returns it."""
    # lazy: dask costs 0.26 s at import (with dask.array); only the ERA5 write task needs it
    import dask.array as da

    g = tp10()
    ny, nx = shape

    def to_grid(block):
        out = np.full((block.shape[0], ny * nx), np.nan, np.float32)
        out[:, cells] = block
        return out.reshape(block.shape[0], ny, nx)

    data = {}
    for v, buf in buffers.items():
        arr = da.from_array(buf, chunks=(chunk_hours, buf.shape[1]))
        lazy = arr.map_blocks(to_grid, dtype=np.float32, drop_axis=1, new_axis=[1, 2],
                              chunks=(arr.chunks[0], (ny,), (nx,)))
        p = PARAMS[v]
        attrs = {"units": p.cf_units, "long_name": p.long_name}
        if p.standard_name:
            attrs["standard_name"] = p.standard_name
        if v in ACCUMULATED:
            attrs["cell_methods"] = "time: sum"
        data[v] = (("time", "lat", "lon"), lazy, attrs)
    coords = g.coords()
    coords["time"] = ("time", pd.DatetimeIndex(times).values)
    return xr.Dataset(data, coords=coords, attrs={"product": "ERA5-Land"})


# ------------------------------------------------------------------------------------------
# truth
# ------------------------------------------------------------------------------------------
TRUTH_VARS = {
    "soil_moisture": (SM_UNITS, SM_STANDARD_NAME,
                      "true liquid volumetric soil water content, 0-5 cm (what L-band and probes see)"),
    "soil_temperature": ("K", "soil_temperature", "true soil temperature, 0-5 cm"),
    "frozen": ("1", None, "soil frozen (0-5 cm soil temperature at or below 0 C)"),
    "precipitation": ("mm", "lwe_thickness_of_precipitation_amount",
                      "true precipitation over the 3 hours ending at the time"),
    "snow_water_equivalent": ("mm", "lwe_thickness_of_surface_snow_amount", "true snow water equivalent"),
}


#: mantissa bits kept in the truth archive (relative precision 1.2e-4: 6e-5 m3 m-3 at 0.5)
TRUTH_KEEPBITS = 12


class TruthOperator:
    """The truth at product steps (00, 03, ..., 21 UTC), buffered per month."""

    def __init__(self, st: StaticFields, config: WorldConfig):
        self.st = st
        self.t0, self.t1 = config.start_ts, config.end_ts
        self.months = {p: _clip_range(p, config, "3h") for p in config.months()}
        self._p3 = np.zeros(st.n, np.float32)
        self.buf = None
        self.month = None

    def record(self, t: pd.Timestamp, s: LandState, precip: np.ndarray):
        self._p3 += precip
        if t.hour % 3 != 0:
            return None
        p3, self._p3 = self._p3, np.zeros(self.st.n, np.float32)
        if not (self.t0 <= t <= self.t1):
            return None
        m = t.to_period("M")
        times = self.months[m]
        if self.month != m:
            self.month = m
            self.buf = {v: np.empty((times.size, self.st.n), np.float32) for v in TRUTH_VARS}
        i = times.get_loc(t)
        b = self.buf
        b["soil_moisture"][i] = s.liq1
        b["soil_temperature"][i] = s.t1
        b["frozen"][i] = (s.t1 <= T0)
        b["precipitation"][i] = p3
        b["snow_water_equivalent"][i] = s.swe
        if i == times.size - 1:
            out = (m, times, self.buf)
            self.buf, self.month = None, None
            return out
        return None

    def dataset(self, times, buffers: dict, seed: int):
        st = self.st
        g = tp10()
        data = {}
        for v, (units, std, long) in TRUTH_VARS.items():
            arr = st.to_grid(buffers[v])
            if v == "frozen":
                arr = np.where(np.isfinite(arr), arr, -1).astype(np.int8)
                attrs = {"long_name": long, "flag_values": np.array([-1, 0, 1], np.int8),
                         "flag_meanings": "not_simulated thawed frozen"}
            else:
                arr = bitround(arr, TRUTH_KEEPBITS)
                attrs = {"units": units, "long_name": long}
                if std:
                    attrs["standard_name"] = std
            data[v] = (("time", "lat", "lon"), arr, attrs)
        coords = g.coords()
        coords["time"] = ("time", pd.DatetimeIndex(times).values, {"long_name": "time (UTC), instantaneous"})
        coords["tp_mask"] = (("lat", "lon"), st.tp_mask, {"long_name": "Tibetan Plateau mask"})
        coords["simulated"] = (("lat", "lon"), st.sim_mask, {"long_name": "cells simulated by this world"})
        return xr.Dataset(data, coords=coords, attrs={
            "title": "Hidden truth of the virtual Tibetan Plateau (10 km, 3-hourly)",
            "Conventions": "CF-1.8", "source": "model.world (synthetic)", "seed": int(seed),
            "comment": "Kept apart from the inputs: only validation may read it."})


# ------------------------------------------------------------------------------------------
# ISMN
# ------------------------------------------------------------------------------------------
SENSORS = {"MAQU": "ECH20-EC-TM", "CTP_SMTMN": "5TM", "NAQU": "EC-TM", "NGARI": "5TM"}
#: point-scale model (m3 m-3 unless stated), documented in docs/world.md
ISMN_ERR = dict(offset_sd=0.035, gain_lo=0.8, gain_hi=1.3, ar_sd=0.015, ar_tau_h=168.0,
                noise_sd=0.006, spike_rate=0.002, outage_per_day=1 / 60.0, outage_mean_days=6.0,
                long_outage_share=0.1, ts_offset_sd=0.5, ts_noise_sd=0.3)


class IsmnOperator:
    """Hourly truth at the station cells; point series made at the end of the run."""

    def __init__(self, st: StaticFields, seed: int, config: WorldConfig):
        self.st, self.seed = st, seed
        tab = station_table()
        rows, cols = tp10().locate(tab["lat"].to_numpy(), tab["lon"].to_numpy())
        flat = np.where(rows >= 0, rows * st.shape[1] + cols, -1)
        pos = np.searchsorted(st.cells, flat)
        pos = np.clip(pos, 0, max(st.n - 1, 0))
        ok = (flat >= 0) & (st.n > 0) & (st.cells[pos] == flat) if st.n else np.zeros(len(tab), bool)
        self.table = tab[ok].reset_index(drop=True)
        self.idx = pos[ok]
        self.times = pd.date_range(config.start_ts, config.end_ts, freq="h")
        self.sm = np.full((self.times.size, self.idx.size), np.nan, np.float32)
        self.ts = np.full((self.times.size, self.idx.size), np.nan, np.float32)
        self.t0 = self.times[0]

    def record(self, t: pd.Timestamp, s: LandState):
        if t < self.t0 or t > self.times[-1]:
            return
        i = int((t - self.t0) / pd.Timedelta(hours=1))
        self.sm[i] = s.liq1[self.idx]
        self.ts[i] = s.t1[self.idx] - T0

    def station_series(self, porosity_map: np.ndarray, artifacts: bool = True):
        """[(meta dict, DataFrame)] for every station: the point 'measurement' model
        (``artifacts=False``: without spikes and outages, for analyses)."""
        # lazy: scipy.signal pulls scipy.stats, 0.6-0.9 s at import (import model.world: 1.8-2.8 s -> 1.1-1.2 s)
        from scipy.signal import lfilter
        E = ISMN_ERR
        n_t = self.times.size
        out = []
        for j, row in self.table.iterrows():
            rng = rng_for(self.seed, "ismn", row["network"], row["station"])
            truth = self.sm[:, j].astype(np.float64)
            mu = np.nanmean(truth)
            gain = rng.uniform(E["gain_lo"], E["gain_hi"])
            offset = E["offset_sd"] * rng.standard_normal()
            phi = np.exp(-1.0 / E["ar_tau_h"])
            innov = rng.standard_normal(n_t) * E["ar_sd"] * np.sqrt(1 - phi * phi)
            innov[0] = E["ar_sd"] * rng.standard_normal()
            ar = lfilter([1.0], [1.0, -phi], innov)          # ar[k] = phi ar[k-1] + innov[k]
            theta_s = float(porosity_map[self.idx[j]])
            point = mu + offset + gain * (truth - mu) + ar + E["noise_sd"] * rng.standard_normal(n_t)
            point = np.clip(point, 0.01, theta_s + 0.03)
            flags = np.full(n_t, "G", dtype=object)
            ts = self.ts[:, j].astype(np.float64) + E["ts_offset_sd"] * rng.standard_normal() \
                + E["ts_noise_sd"] * rng.standard_normal(n_t)
            frozen = ts < 0
            flags[frozen] = "D01,D03"
            # spikes, flagged as ISMN's QC would (D06 spike)
            spikes = (rng.random(n_t) < E["spike_rate"]) & artifacts
            point[spikes] = np.clip(point[spikes] + rng.choice([-1, 1], spikes.sum())
                                    * rng.uniform(0.08, 0.25, spikes.sum()), 0.005, 0.7)
            flags[spikes] = np.where(frozen[spikes], "D01,D03,D06", "D06")
            above = (point > theta_s) & ~spikes
            flags[above] = np.where(frozen[above], "C03,D01,D03", "C03")
            # outages: multi-day gaps; some stations lose a long stretch
            gone = np.zeros(n_t, bool)
            days = n_t / 24.0
            for _ in range(rng.poisson(E["outage_per_day"] * days)):
                a = rng.integers(0, n_t)
                gone[a:a + int(24 * max(1.0, rng.exponential(E["outage_mean_days"])))] = True
            if rng.random() < E["long_outage_share"]:
                a = rng.integers(0, n_t)
                gone[a:a + int(0.3 * n_t)] = True
            if gone.all():
                gone[: n_t // 2] = False
            if not artifacts:
                gone[:] = False
            point[gone] = np.nan
            ts[gone] = np.nan
            df = pd.DataFrame({"soil_moisture": point, "flag": flags,
                               "soil_temperature": ts,
                               "soil_temperature_flag": "G"}, index=self.times)
            meta = {"network": row["network"], "station": row["station"], "lat": float(row["lat"]),
                    "lon": float(row["lon"]), "elevation": float(row["elevation"]),
                    "depth_from": _num(row.get("depth_from"), 0.0), "depth_to": _num(row.get("depth_to"), 0.05),
                    "sensor": SENSORS.get(row["network"], "unknown")}
            out.append((meta, df))
        return out


def _num(x, default):
    try:
        x = float(x)
    except (TypeError, ValueError):
        return default
    return x if np.isfinite(x) else default


# ------------------------------------------------------------------------------------------
# write tasks (module-level: a worker process can run them)
# ------------------------------------------------------------------------------------------
def write_smap_l3_task(path: str, product: str, date: str, am, pm) -> str:
    write_smap_l3(path, product, date, am, pm, creation_date=_CREATION)
    return path


def write_smap_l4_task(path: str, time, ds) -> str:
    write_smap_l4(path, time, ds, creation_date=_CREATION)
    return path


def write_era5_task(path: str, times, cells, shape, buffers) -> str:
    import dask  # lazy: dask costs 0.26 s at import (with dask.array); only the ERA5 write task needs it

    with dask.config.set(scheduler="synchronous"):
        ds = era5_dataset(times, cells, shape, buffers)
        write_era5_netcdf(path, ds, layout="new", least_significant_digit=ERA5_LSD,
                          history="virtual Tibetan Plateau (model.world), written in the CDS 2024+ "
                                  "NetCDF layout by model.data.era5")
    return path


def write_ismn_task(root: str, items) -> str:
    for meta, df in items:
        write_ismn_station(root, meta, df)
    return root


#: fixed creation date in SMAP metadata, so files are byte-reproducible from the seed
_CREATION = "2020-01-01"
