"""Inputs for inference: TP10 predictor cubes assembled on demand and cached.

A scene at time t needs the 28 days before t (the multi-frequency window). The provider
loads ERA5-Land in blocks (a block of ``block_days`` days plus its history), keeps the last
few blocks in memory, and serves any step inside them, so consecutive scenes cost only the
window assembly. Thread-safe: one lock per provider.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import CoverageError
from ..features.ard import ard_info, load_inputs, open_group
from ..features.cube import build_cube

HISTORY_DAYS = 28


class InputProvider:
    def __init__(self, ard: str | Path, block_days: int = 10, max_blocks: int = 2):
        self.ard = Path(ard)
        self.info = ard_info(self.ard)
        era5 = open_group(self.ard, "era5")
        self.times = era5["time"].values.astype("datetime64[ns]")
        self.block_days = block_days
        self.max_blocks = max_blocks
        self._blocks: OrderedDict = OrderedDict()
        self._lock = threading.Lock()
        self._static = None

    @property
    def start(self):
        return self.times[0]

    @property
    def end(self):
        return self.times[-1]

    def check_time(self, t) -> np.datetime64:
        t = np.datetime64(t, "ns")
        if t < self.start or t > self.end:
            raise CoverageError(
                f"time {np.datetime_as_string(t, unit='m')} is outside the inputs' period "
                f"{np.datetime_as_string(self.start, unit='h')} .. {np.datetime_as_string(self.end, unit='h')}",
                "choose a time inside that period")
        if (t - np.datetime64(str(t)[:10], "ns")) % np.timedelta64(3, "h"):
            raise CoverageError(f"time {np.datetime_as_string(t, unit='m')} is not a product step",
                                "product steps are 00, 03, ..., 21 UTC")
        return t

    def _block_key(self, t) -> int:
        day = (np.datetime64(t, "D") - np.datetime64(self.start, "D")).astype(int)
        return int(day // self.block_days)

    def _cached(self, key, start, end):
        """The TP10 predictor cube of [start, end] plus its history, from the cache or loaded
        (and cached; the least recently used cube goes when more than ``max_blocks`` are held)."""
        with self._lock:
            if key in self._blocks:
                self._blocks.move_to_end(key)
                return self._blocks[key]
            era5, static = load_inputs(self.ard, start, end, history_days=HISTORY_DAYS)
            cube = build_cube(era5, static, "TP10")
            self._blocks[key] = cube
            while len(self._blocks) > self.max_blocks:
                self._blocks.popitem(last=False)
            return cube

    def cube_for(self, t):
        """The TP10 :class:`~model.features.cube.PredictorCube` of the block of days holding
        step ``t`` (cached)."""
        key = self._block_key(self.check_time(t))
        b0 = np.datetime64(self.start, "D") + np.timedelta64(key * self.block_days, "D")
        b1 = min(b0 + np.timedelta64(self.block_days, "D") - np.timedelta64(3, "h"), self.end)
        return self._cached(key, b0, b1)

    def cube_between(self, start, end):
        """A TP10 cube holding every step of [start, end] (plus its history), cached like
        :meth:`cube_for` (key: the range)."""
        s, e = self.check_time(start), self.check_time(end)
        return self._cached(("range", str(s), str(e)), s, e)

    def steps(self, start, end) -> np.ndarray:
        s, e = np.datetime64(start, "ns"), np.datetime64(end, "ns")
        sel = self.times[(self.times >= s) & (self.times <= e)]
        if sel.size == 0:
            raise CoverageError(f"no input step between {start} and {end}",
                                f"the inputs cover {np.datetime_as_string(self.start, unit='h')} .. "
                                f"{np.datetime_as_string(self.end, unit='h')}")
        return sel


_SHARED: dict = {}
_SHARED_LOCK = threading.Lock()


def shared_provider(ard: str | Path) -> InputProvider:
    """The process's one :class:`InputProvider` of a store (its block cache shared by every
    runner of the process, and warmed by the dashboard before a first regeneration).

    Keyed by the store's resolved path and its ``.complete`` marker's time: a store rebuilt in
    place gets a new provider, never blocks cached from the old one."""
    path = Path(ard).resolve()
    marker = path / ".complete"
    key = (str(path), marker.stat().st_mtime_ns if marker.exists() else None)
    with _SHARED_LOCK:
        prov = _SHARED.get(key)
        if prov is None:
            for k in [k for k in _SHARED if k[0] == key[0]]:
                del _SHARED[k]
            prov = _SHARED[key] = InputProvider(path)
        return prov


def normalise_batch(batch: dict, norm) -> dict:
    """Standardise a raw (transformed, un-normalised) window batch with a model's statistics;
    missing values (NaN) become 0, the mean."""
    out = {}
    for k, mean, std in (("x3h", norm.dyn_mean, norm.dyn_std), ("xday", norm.dyn_mean, norm.dyn_std),
                         ("xweek", norm.dyn_mean, norm.dyn_std), ("static", norm.sta_mean, norm.sta_std)):
        v = batch[k]
        shape = (1,) * (v.ndim - 3) + (-1, 1, 1)
        m = np.asarray(mean, np.float32).reshape(shape)
        s = np.asarray(std, np.float32).reshape(shape)
        x = (v - m) / s                       # a new float32 array (inputs are float32)
        x = x.astype(np.float32, copy=False)
        x[~np.isfinite(x)] = 0.0              # one pass; np.nan_to_num takes four
        out[k] = x
    return out
