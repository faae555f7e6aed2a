"""Predictor cubes and training samples: the one dataset interface every method uses.

A :class:`PredictorCube` holds, on one grid (TP10 for inference, M09/M36 for training under
scale invariance), the transformed dynamic predictors at every 3-hourly step, their daily
means, the static layers and the TP mask. :meth:`PredictorCube.window` gives the
multi-frequency history window of any step:

* ``x3h``   (8, C, h, w): the last 24 h at 3-hourly steps, oldest first, last = the step itself;
* ``xday``  (7, C, h, w): daily means of the 7 complete UTC days before the step's day;
* ``xweek`` (4, C, h, w): 7-day means of the 4 weeks before the step's day, oldest first;
* ``static`` (S, h, w).

Indices before the start of the cube are clamped to its first step/day (the history is
replicated), so windows exist at every step; the demo world writes four weeks of history
before its training period so that this never matters there.

Days are UTC calendar days; a day's mean is the mean of its eight steps labelled 00..21 UTC.
"""

from __future__ import annotations

import copy
import json
import threading
from dataclasses import dataclass, field

import numpy as np

from ..errors import CoverageError, InputError
from ..grids import Grid, get_grid, regridder, tp10, tp_mask
from ..machine import physical_memory
from .channels import DERIVED, DYNAMIC, Normalisation, derive, robust_std, transform

#: cells of context kept around the data region for spatial models
REGION_MARGIN = 16

T3, TD, TW = 8, 7, 4

#: guards the normalised copies kept on a cube (a server's threads may ask for one at once)
_COPY_LOCK = threading.Lock()

#: the largest share of the machine's memory that a cube's kept standardised copy may take
#: (:meth:`PredictorCube.shares_a_copy`)
COPY_MEMORY_SHARE = 1 / 16


@dataclass
class PredictorCube:
    grid: Grid
    times: np.ndarray            # (T,) datetime64[ns], regular 3-hourly
    x3: np.ndarray               # (T, C, H, W) float32
    static: np.ndarray           # (S, H, W) float32
    mask: np.ndarray             # (H, W) bool: TP cells
    channels: list[str]
    static_channels: list[str]
    normalised: bool = False
    daily: np.ndarray = field(init=False)
    weekly: np.ndarray = field(init=False)
    day_index: np.ndarray = field(init=False)

    def __post_init__(self):
        t = self.times.astype("datetime64[ns]")
        if t.size > 1 and np.any(np.diff(t) != np.timedelta64(3, "h")):
            raise InputError("predictor times are not a regular 3-hourly series",
                             "ingest a continuous period (a time step is missing)")
        self.times = t
        days = t.astype("datetime64[D]")
        self.days = np.unique(days)
        self.day_index = (days - self.days[0]).astype(int)
        self._daily_from_x3()

    def _daily_from_x3(self):
        nd = self.days.size
        c, h, w = self.x3.shape[1:]
        daily = np.zeros((nd, c, h, w), np.float32)
        count = np.zeros((nd, c, h, w), np.float32)
        for i in range(self.x3.shape[0]):
            v = self.x3[i]
            ok = np.isfinite(v)
            daily[self.day_index[i]] += np.where(ok, v, 0)
            count[self.day_index[i]] += ok
        with np.errstate(invalid="ignore", divide="ignore"):
            np.divide(daily, count, out=daily)       # in place: 0 / 0 is NaN, as it should be
        del count
        self.daily = daily
        # weekly[d] = mean of days d-7 .. d-1 (clamped at the start); one channel at a time:
        # the float64 running sums of a whole season at once took ~7 GB (measured, 241 days on M09)
        d = np.arange(nd)
        hi = np.maximum(d, 1)
        lo = np.maximum(hi - 7, 0)
        self.weekly = np.empty_like(daily)
        zero = np.zeros((1, h, w), np.float64)
        for k in range(c):
            dk = daily[:, k]
            cs = np.concatenate([zero, np.nancumsum(dk, axis=0, dtype=np.float64)])
            cnt = np.concatenate([zero, np.cumsum(np.isfinite(dk), axis=0, dtype=np.float64)])
            with np.errstate(invalid="ignore", divide="ignore"):
                self.weekly[:, k] = (cs[hi] - cs[lo]) / (cnt[hi] - cnt[lo])

    # ------------------------------------------------------------------ access
    @property
    def shape(self):
        return self.grid.shape

    def step_index(self, time) -> int:
        t = np.datetime64(time, "ns")
        i = np.searchsorted(self.times, t)
        if i >= self.times.size or self.times[i] != t:
            raise CoverageError(f"time {np.datetime_as_string(t, unit='h')} is not a 3-hourly step of the "
                                f"inputs ({np.datetime_as_string(self.times[0], unit='h')} .. "
                                f"{np.datetime_as_string(self.times[-1], unit='h')})",
                                "choose a time inside the ingested period, on 00, 03, ..., 21 UTC")
        return int(i)

    def _indices(self, i: int):
        i3 = np.clip(np.arange(i - T3 + 1, i + 1), 0, self.times.size - 1)
        d = self.day_index[i]
        idd = np.clip(np.arange(d - TD, d), 0, self.days.size - 1)
        iw = np.clip(d - 7 * np.arange(TW - 1, -1, -1), 0, self.days.size - 1)
        return i3, idd, iw

    def window(self, i: int, ys: slice = slice(None), xs: slice = slice(None)) -> dict:
        """Multi-frequency window of step ``i`` over a (ys, xs) region (numpy, float32).

        The steps and the region are taken in one indexing, so only the region is copied (cut
        after the steps, a 32 x 32 training patch of the demo world copied its 19 whole frames
        first: 8 ms of copying per patch, 0.13 s per batch of 16, against 0.015 s now)."""
        i3, idd, iw = self._indices(i)
        return {
            "x3h": self.x3[i3, :, ys, xs],
            "xday": self.daily[idd, :, ys, xs],
            "xweek": self.weekly[iw, :, ys, xs],
            "static": self.static[:, ys, xs],
        }

    def patch_batch(self, steps, rows, cols, size: int) -> dict:
        """Stack windows of square patches with top-left (row, col) at the given steps."""
        out = {k: [] for k in ("x3h", "xday", "xweek", "static")}
        for i, r, c in zip(steps, rows, cols):
            w = self.window(int(i), slice(r, r + size), slice(c, c + size))
            for k in out:
                out[k].append(w[k])
        return {k: np.stack(v) for k, v in out.items()}

    def pixel_batch(self, steps, rows, cols) -> dict:
        """Windows of single pixels, vectorised: arrays with H = W = 1."""
        steps = np.asarray(steps)
        rows = np.asarray(rows)
        cols = np.asarray(cols)
        i3 = np.clip(steps[:, None] + np.arange(-T3 + 1, 1)[None], 0, self.times.size - 1)
        d = self.day_index[steps]
        idd = np.clip(d[:, None] + np.arange(-TD, 0)[None], 0, self.days.size - 1)
        iw = np.clip(d[:, None] - 7 * np.arange(TW - 1, -1, -1)[None], 0, self.days.size - 1)
        r = rows[:, None, None]
        c = cols[:, None, None]
        ch = np.arange(self.x3.shape[1])[None, None, :]
        x3h = self.x3[i3[:, :, None], ch, r, c]
        xday = self.daily[idd[:, :, None], ch, r, c]
        xweek = self.weekly[iw[:, :, None], ch, r, c]
        st = self.static[:, rows, cols].T
        return {"x3h": x3h[..., None, None], "xday": xday[..., None, None],
                "xweek": xweek[..., None, None], "static": st[..., None, None]}

    # ------------------------------------------------------------ normalisation
    def fit_normalisation(self, train_steps: np.ndarray, target: np.ndarray) -> Normalisation:
        """Channel statistics over TP cells of the training steps (never the test period)."""
        m = self.mask
        dm, ds = [], []
        for c in range(self.x3.shape[1]):
            v = self.x3[train_steps, c][:, m]
            dm.append(float(np.nanmean(v)))
            ds.append(robust_std(v))
        sm, ss = [], []
        for s in range(self.static.shape[0]):
            v = self.static[s][m]
            sm.append(float(np.nanmean(v)))
            ss.append(robust_std(v))
        tv = target[np.isfinite(target)]
        if tv.size == 0:
            raise InputError("no valid target (SMAP) value in the training period",
                             "check the period and the SMAP inputs (sm-downscale inspect)")
        return Normalisation(list(self.channels), list(self.static_channels), dm, ds, sm, ss,
                             float(tv.mean()), robust_std(tv),
                             fitted_on={"grid": self.grid.name,
                                        "start": str(self.times[train_steps].min()),
                                        "end": str(self.times[train_steps].max()),
                                        "n_steps": int(len(train_steps))})

    def normalise(self, norm: Normalisation) -> "PredictorCube":
        """Standardise in place with ``norm`` (NaN -> 0, the training mean)."""
        if self.normalised:
            return self
        if list(norm.dynamic) != list(self.channels) or list(norm.static) != list(self.static_channels):
            raise InputError(f"the inputs' channels {self.channels} + {self.static_channels} differ from the "
                             f"model's {norm.dynamic} + {norm.static}",
                             "use inputs with the channels the model was trained on, or retrain")
        for arr in (self.x3, self.daily, self.weekly):
            for c in range(arr.shape[1]):
                v = arr[:, c]
                v -= norm.dyn_mean[c]
                v /= norm.dyn_std[c]
                np.nan_to_num(v, copy=False, nan=0.0)
        self.static = np.nan_to_num(norm.norm_static(self.static), nan=0.0).astype(np.float32)
        self.normalised = True
        return self

    def shares_a_copy(self) -> bool:
        """Whether a standardised copy of this cube (:meth:`normalised_copy`) may be kept: it
        takes at most :data:`COPY_MEMORY_SHARE` of the machine's memory.

        An archive block of the demo (304 steps over the whole TP with their daily and weekly
        means, 0.73 GB measured) and the demo's test month with its history (~1.1 GB) are kept
        on a 24 GB machine (limit 1.58 GB). The two-season world's 7-month
        test cube (~4.5 GB) is not: an experiment holds it for hours beside every training, and
        with its copy the season2 comparison was killed at 24.3 GB resident on the 24 GB VM
        (session 20). Such a cube's windows are standardised call by call instead (the same
        values, to the bit)."""
        mem = physical_memory()
        need = self.x3.nbytes + self.daily.nbytes + self.weekly.nbytes
        return mem is None or need <= COPY_MEMORY_SHARE * mem

    def normalised_copy(self, norm: Normalisation) -> "PredictorCube":
        """A standardised copy of this (raw) cube, kept on it per normalisation: every model of
        the same statistics cuts its windows from one copy instead of standardising each
        window again (the archive runs up to nine models on a block's cube).

        The copy's windows equal :func:`model.inference.inputs.normalise_batch` of this cube's
        windows (the same float32 arithmetic per element). It costs one more cube of memory
        while this cube lives; this cube is unchanged.
        """
        if self.normalised:
            raise InputError("this cube is already normalised", "pass the raw (transformed) cube")
        key = json.dumps(norm.to_dict(), sort_keys=True)
        with _COPY_LOCK:
            memo = self.__dict__.setdefault("_normalised_copies", {})
            hit = memo.get(key)
            if hit is None:
                hit = copy.copy(self)
                for name in ("_normalised_copies", "_region", "_resident"):   # per-cube caches
                    hit.__dict__.pop(name, None)
                hit.x3, hit.daily, hit.weekly = self.x3.copy(), self.daily.copy(), self.weekly.copy()
                memo[key] = hit.normalise(norm)
            return hit


#: steps per piece when the cube is built (bounds the temporaries of transform and regridding)
CUBE_CHUNK_STEPS = 256


def build_cube(era5, static, grid: Grid | str, channels=DYNAMIC) -> PredictorCube:
    """A :class:`PredictorCube` on ``grid`` from 3-hourly ERA5-Land and static layers on TP10.

    Parameters
    ----------
    era5 : xarray.Dataset
        3-hourly ERA5-Land on TP10, dims (time, lat, lon), physical units.
    static : xarray.Dataset
        TP10 static layers (``elevation``, ``slope``, ``aspect``, ``tp_mask`` and extras).
    grid : target grid; TP10 keeps the fields, M09/M36 aggregates them by area overlap.
    """
    g = get_grid(grid) if isinstance(grid, str) else grid
    missing = [c for c in channels if c not in era5 and (c not in DERIVED or DERIVED[c][0] not in era5)]
    if missing:
        raise InputError(f"the ERA5-Land inputs lack channels {missing}",
                         "ingest ERA5-Land files holding "
                         + ", ".join(dict.fromkeys(DERIVED[c][0] if c in DERIVED else c for c in channels)))
    rg = None if g.name == "TP10" else regridder("TP10", g.name)
    t = era5["time"].values
    x3 = np.empty((t.size, len(channels)) + g.shape, np.float32)
    tpm = np.asarray(tp_mask("TP10"))
    for k, c in enumerate(channels):
        raw = era5[c].values if c in era5 else derive(c, era5[DERIVED[c][0]].values)
        # in pieces of CUBE_CHUNK_STEPS steps: transform and regridding are per step, and their
        # temporaries for a whole season at once took ~12 GB (measured, 1,929 steps on M09)
        for a in range(0, t.size, CUBE_CHUNK_STEPS):
            v = np.where(tpm, transform(c, raw[a:a + CUBE_CHUNK_STEPS]), np.nan).astype(np.float32)
            x3[a:a + CUBE_CHUNK_STEPS, k] = v if rg is None else rg(v)
        del raw
    st, names = static_channels(static)
    if rg is not None:
        st = rg(np.where(tpm, st, np.nan).astype(np.float32))
    mask = tpm if g.name == "TP10" else np.asarray(tp_mask(g.name))
    return PredictorCube(g, t, x3, st.astype(np.float32), mask, list(channels), names)


def static_channels(static) -> tuple[np.ndarray, list[str]]:
    """Static predictor stack (S, 150, 320) and names from a TP10 static Dataset."""
    g = tp10()
    lon2, lat2 = np.meshgrid(g.lon, g.lat)
    layers = {
        "elevation": static["elevation"].values,
        "slope": static["slope"].values,
        "aspect_sin": np.sin(np.deg2rad(static["aspect"].values)),
        "aspect_cos": np.cos(np.deg2rad(static["aspect"].values)),
        "lat": lat2,
        "lon": lon2,
    }
    skip = {"elevation", "slope", "aspect", "tp_mask", "lat", "lon", "crs", "spatial_ref"}
    for name, da in static.data_vars.items():
        if name in skip or name in layers or da.dims != ("lat", "lon"):
            continue
        if not np.issubdtype(da.dtype, np.number):
            continue
        if "flag_values" in da.attrs or da.attrs.get("kind") == "categorical":
            vals = np.asarray(da.values)
            for cls in np.unique(vals[np.isfinite(vals)] if vals.dtype.kind == "f" else vals):
                layers[f"{name}_{int(cls)}"] = (vals == cls).astype(np.float32)
            continue
        layers[name] = da.values
    names = list(layers)
    return np.stack([np.asarray(layers[n], np.float32) for n in names]), names


def target_on_steps(cube: PredictorCube, smap) -> np.ndarray:
    """SMAP soil moisture aligned to the cube's steps: (T, H, W) with NaN where none."""
    y = np.full((cube.times.size,) + cube.shape, np.nan, np.float32)
    st = smap["time"].values.astype("datetime64[ns]")
    idx = np.searchsorted(cube.times, st)
    ok = (idx < cube.times.size) & (cube.times[np.clip(idx, 0, cube.times.size - 1)] == st)
    if smap["soil_moisture"].shape[1:] != cube.shape:
        raise InputError(f"SMAP grid {smap['soil_moisture'].shape[1:]} differs from the training grid {cube.shape}",
                         "train on the grid of the SMAP product you give (M09 for SPL3SMP_E, M36 for SPL3SMP)")
    vals = smap["soil_moisture"].values
    y[idx[ok]] = vals[ok]
    y[:, ~cube.mask] = np.nan
    return y


def spatial_holdout(mask: np.ndarray, block: int = 16, fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Boolean map of the tuning hold-out: whole ``block`` x ``block`` tiles, ``fraction`` of
    the tiles that hold TP cells, chosen with ``seed``."""
    h, w = mask.shape
    by, bx = np.arange(h) // block, np.arange(w) // block
    tile = by[:, None] * (bx.max() + 1) + bx[None, :]
    tiles = np.unique(tile[mask])
    rng = np.random.default_rng(seed)
    n = max(1, int(round(fraction * tiles.size)))
    chosen = rng.choice(tiles, size=n, replace=False)
    return np.isin(tile, chosen) & mask
