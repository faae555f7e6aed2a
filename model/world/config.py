"""Sizes of the virtual Tibetan Plateau and deterministic random streams.

A :class:`WorldConfig` fixes everything about a world except its seed: which cells are
simulated, the simulated period (with spin-up that is not written), the written period and its
split into history / training / test periods. :data:`SIZES` holds the registered sizes.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd

from ..errors import InputError, unknown_name


@dataclass(frozen=True)
class WorldConfig:
    """One registered world size.

    Attributes
    ----------
    name : str
        ``"tiny"``, ``"demo"``, ``"season2"`` or ``"full"``.
    sim_start : str
        First simulated day (ISO date); the days before ``start`` are spin-up, not written.
    start, end : str
        First and last written day (inclusive).
    train, test : (str, str)
        Training and test periods (inclusive days), inside ``start..end``.
    history : (str, str) or None
        Written days before ``train`` that only serve as input history (multi-week windows).
    bbox : (lat_min, lat_max, lon_min, lon_max) or None
        Only TP cells whose centres lie in this box are simulated (the rest of every file is
        missing); ``None`` simulates the whole TP mask.
    swath_coverage : float
        Fraction of the distance between neighbouring SMAP ground tracks that one swath covers
        (so about the fraction of days a cell is observed per overpass). Real SMAP (1000 km
        swath, 14.6 orbits a day) covers about 0.42 at 30 N; the project's decision is that
        each TP cell is observed on most but not all days, hence 0.8 by default.
    need_bytes : int
        Free disk space checked before the build starts.
    description : str
    """

    name: str
    sim_start: str
    start: str
    end: str
    train: tuple[str, str]
    test: tuple[str, str]
    history: tuple[str, str] | None = None
    bbox: tuple[float, float, float, float] | None = None
    swath_coverage: float = 0.8
    need_bytes: int = 2_000_000_000
    description: str = ""

    # -- derived -------------------------------------------------------------------------
    @property
    def sim_start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.sim_start)

    @property
    def start_ts(self) -> pd.Timestamp:
        return pd.Timestamp(self.start)

    @property
    def end_ts(self) -> pd.Timestamp:
        """The last written *instant*: 21 UTC of the last day for 3-hourly, 23 UTC hourly."""
        return pd.Timestamp(self.end) + pd.Timedelta(hours=23)

    def hours(self) -> pd.DatetimeIndex:
        """Every simulated hour (end of each hourly step), UTC, spin-up included, through 00 UTC
        of the day after ``end`` (the last 3-hour window and the day's last overpasses)."""
        return pd.date_range(self.sim_start_ts + pd.Timedelta(hours=1),
                             self.end_ts + pd.Timedelta(hours=1), freq="h")

    def written_days(self) -> pd.DatetimeIndex:
        return pd.date_range(self.start, self.end, freq="D")

    def months(self) -> list[pd.Period]:
        """Written months (ERA5-Land files are monthly)."""
        return list(pd.period_range(self.start, self.end, freq="M"))

    def periods(self) -> dict:
        out = {"simulated": [self.sim_start, self.end], "written": [self.start, self.end],
               "train": list(self.train), "test": list(self.test)}
        out["history"] = list(self.history) if self.history else None
        return out

    def to_dict(self) -> dict:
        d = asdict(self)
        d["periods"] = self.periods()
        return d


SIZES: dict[str, WorldConfig] = {
    "tiny": WorldConfig(
        name="tiny", sim_start="2017-05-18", start="2017-06-01", end="2017-07-15",
        history=("2017-06-01", "2017-06-07"), train=("2017-06-08", "2017-07-05"),
        test=("2017-07-06", "2017-07-15"), bbox=(30.0, 33.0, 90.0, 93.0),
        need_bytes=200_000_000,
        description="tests: 30-33 N, 90-93 E only (CTP-SMTMN and Naqu stations), 6.5 weeks"),
    "demo": WorldConfig(
        name="demo", sim_start="2017-03-01", start="2017-05-01", end="2017-09-30",
        history=("2017-05-01", "2017-05-31"), train=("2017-06-01", "2017-08-31"),
        test=("2017-09-01", "2017-09-30"), need_bytes=2_500_000_000,
        description="whole TP, May-September 2017 (spin-up from March)"),
    "season2": WorldConfig(
        name="season2", sim_start="2015-12-01", start="2016-03-01", end="2017-10-31",
        history=("2016-03-01", "2016-03-31"), train=("2016-04-01", "2016-10-31"),
        test=("2017-04-01", "2017-10-31"), bbox=(29.5, 35.5, 88.0, 103.0),
        need_bytes=4_500_000_000,
        description="two warm seasons, the paper's year split: train Apr-Oct 2016, test Apr-Oct "
                    "2017 (winter between them simulated and written, spin-up from December 2015); "
                    "central-eastern TP 29.5-35.5 N, 88-103 E (Maqu, Naqu, CTP-SMTMN stations)"),
    "gpubench": WorldConfig(
        name="gpubench", sim_start="2017-05-18", start="2017-06-01", end="2017-07-15",
        history=("2017-06-01", "2017-06-07"), train=("2017-06-08", "2017-07-05"),
        test=("2017-07-06", "2017-07-15"), need_bytes=1_000_000_000,
        description="benchmarks/bench_gpu.py: whole TP, 45 written days (40 archived = 320 steps)"),
    "full": WorldConfig(
        name="full", sim_start="2015-10-01", start="2016-01-01", end="2018-12-31",
        history=None, train=("2016-01-01", "2017-12-31"), test=("2018-01-01", "2018-12-31"),
        need_bytes=25_000_000_000,
        description="whole TP, 2016-2018 (spin-up from October 2015), as in the paper"),
}


def get_config(size: str | WorldConfig) -> WorldConfig:
    """The registered :class:`WorldConfig` called ``size`` (an ``UnknownNameError`` if none)."""
    if isinstance(size, WorldConfig):
        return size
    if size not in SIZES:
        raise unknown_name("world size", str(size), list(SIZES))
    return SIZES[size]


def check_seed(seed) -> int:
    """The seed as a non-negative int; anything else is an :class:`InputError`."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        if isinstance(seed, str) and seed.strip().lstrip("-").isdigit():
            seed = int(seed)
        else:
            raise InputError(f"seed must be an integer, got {seed!r}", "pass e.g. --seed 42")
    seed = int(seed)
    if seed < 0:
        raise InputError(f"seed must be a non-negative integer, got {seed}", "pass e.g. --seed 42")
    return seed


def _key(*parts) -> list[int]:
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return [int.from_bytes(h[i:i + 4], "little") for i in range(0, 16, 4)]


def rng_for(seed: int, *parts) -> np.random.Generator:
    """An independent, reproducible random stream for one component of the world.

    Streams are keyed by name (``rng_for(seed, "smap", "M36", "2017-06-01")``), so whether a
    file is written or skipped on a resumed build never changes any other file.
    """
    return np.random.default_rng(np.random.SeedSequence([int(seed)] + _key(*parts)))


@dataclass
class Timer:
    """Wall-clock seconds per build stage (reported in the manifest and the summary)."""

    stages: dict = field(default_factory=dict)

    def add(self, stage: str, seconds: float) -> None:
        self.stages[stage] = self.stages.get(stage, 0.0) + float(seconds)
