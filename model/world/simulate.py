"""The three land-model runs of the virtual TP, stepped together hour by hour.

* ``truth``: the true soil, vegetation and 10 km forcing (slope/aspect radiation included).
  Terrain redistribution (topographic wetness with unmapped seepage features) and canopy
  interception act at 10 km.
* ``era``: the ERA5-Land-like land model on its OWN 10 km-ish maps (as ERA5-Land uses
  high-resolution soil and vegetation maps): texture from an independent soil map (its own
  ~10-30 km errors, a loamy bias, no organic layer: H-TESSEL has none), its own vegetation map,
  no lateral flow, lower Priestley-Taylor coefficient, its own smoothed, wet-biased precipitation
  and 30 km-terrain temperature with a cold bias: too wet on the TP and smoother than the truth,
  but carrying some (imperfect) soil detail, as ERA5-Land does.
* ``l4``: the SMAP-L4-like land model: 20 km-smoothed soil, the DEM's topographic wetness
  (Catchment-like), lightly biased forcing (gauge-corrected precipitation, as L4 uses) and an
  assimilation of the SMAP-like 36 km retrievals at each overpass (:meth:`Simulation.assimilate`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .config import rng_for
from .land import LandModel, LandParams
from .static import (
    StaticFields,
    gaussian_smooth_masked,
    multiscale_noise,
    smooth_noise,
    soil_params,
)
from .weather import Weather

#: assimilation gain of the L4-like model on the surface layer; root-zone share of the increment
L4_GAIN = 0.6
L4_ROOT_SHARE = 0.3


def truth_params(st: StaticFields) -> LandParams:
    c = st.c
    om = c("organic")
    return LandParams(soil1=soil_params(c("sand"), c("clay"), om),
                      soil2=soil_params(c("sand"), np.minimum(c("clay") * 1.15, 0.5), 0.4 * om),
                      veg=c("veg_fraction"), albedo=c("albedo"), slope=c("slope"),
                      tau_exchange=(30.0 + 40.0 * c("clay") / 0.3).astype(np.float32),
                      wetness=c("wetness"), lateral_gain=TRUTH_LATERAL_GAIN, intercept_mm=1.0)


#: upslope water received per unit topographic wetness (truth), x the cell's own drainage + runoff
TRUTH_LATERAL_GAIN = 1.2


def _smooth(st: StaticFields, name: str, sigma: float) -> np.ndarray:
    return st.c(gaussian_smooth_masked(getattr(st, name), st.sim_mask, sigma))


def era_params(st: StaticFields, seed: int = 0) -> LandParams:
    """ERA5-Land-like parameters: its own 10 km-ish maps (independent errors, loamy bias)."""
    rng = rng_for(seed, "era", "maps")
    shape = st.shape
    e_sand = multiscale_noise(rng, shape, (1.0, 3.0), (0.5, 0.5))
    e_clay = multiscale_noise(rng, shape, (1.0, 3.0), (0.5, 0.5))
    e_veg = smooth_noise(rng, shape, 1.5)
    sand = np.clip(_smooth(st, "sand", 1.0) - 0.08 + st.c(0.08 * e_sand), 0.05, 0.9)
    clay = np.clip(_smooth(st, "clay", 1.0) + 0.05 + st.c(0.035 * e_clay), 0.05, 0.5)
    zero = np.zeros_like(sand)
    sp = soil_params(sand, clay, zero)
    veg = np.clip(_smooth(st, "veg_fraction", 1.0) + st.c(0.08 * e_veg), 0.05, 0.9)
    return LandParams(soil1=sp, soil2=sp, veg=veg,
                      albedo=_smooth(st, "albedo", 2.0), slope=np.minimum(st.c("slope"), 10.0),
                      tau_exchange=60.0, pt_alpha=0.95, intercept_mm=0.5)


def l4_params(st: StaticFields) -> LandParams:
    sand = np.clip(_smooth(st, "sand", 2.0), 0.05, 0.9)
    clay = np.clip(_smooth(st, "clay", 2.0), 0.03, 0.5)
    om = 0.7 * _smooth(st, "organic", 2.0)
    return LandParams(soil1=soil_params(sand, clay, om), soil2=soil_params(sand, clay, 0.3 * om),
                      veg=_smooth(st, "veg_fraction", 2.0), albedo=_smooth(st, "albedo", 2.0),
                      slope=_smooth(st, "slope", 2.0), tau_exchange=45.0, pt_alpha=1.15,
                      wetness=_dem_wetness(st), lateral_gain=0.5, intercept_mm=0.8)


def _dem_wetness(st: StaticFields) -> np.ndarray:
    """The DEM's topographic wetness index, standardised over the TP (Catchment-like input)."""
    return np.nan_to_num(st.c("wetness_dem")).astype(np.float32)


class Simulation:
    """Weather + truth + ERA5-Land-like + SMAP-L4-like models, hour by hour."""

    def __init__(self, st: StaticFields, seed: int, start: pd.Timestamp,
                 models: tuple = ("truth", "era", "l4")):
        self.st = st
        self.weather = Weather(st, seed)
        t_init = st.c("t_annual") + st.c("t_season_amp") * np.float32(
            -np.cos(2 * np.pi * (start.day_of_year - 15.0) / 365.25))
        wet = np.clip(st.c("precip_annual") / 600.0, 0.1, 0.9)
        make = {
            "truth": lambda: LandModel(truth_params(st), wet, t_init),
            "era": lambda: LandModel(era_params(st, seed), np.clip(wet + 0.1, 0, 1), t_init - 1.0),
            "l4": lambda: LandModel(l4_params(st), wet, t_init),
        }
        # the weather does not depend on which models run: the truth is the same either way
        self.models = {k: make[k]() for k in models}
        self.t = start

    def step(self) -> tuple[pd.Timestamp, dict, dict]:
        """Advance one hour; returns (t, forcing by model, state by model)."""
        self.t = self.t + pd.Timedelta(hours=1)
        forcing = self.weather.step(self.t)
        states = {k: m.step(forcing[k]) for k, m in self.models.items()}
        return self.t, forcing, states

    def assimilate(self, idx: np.ndarray, incr: np.ndarray) -> None:
        """Analysis increments (surface layer, m3 m-3) for the L4-like model's cells ``idx``."""
        self.models["l4"].nudge(idx, L4_GAIN * incr, L4_ROOT_SHARE)
