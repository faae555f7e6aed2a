"""Predictor channels, their transforms and normalisation (fitted on the training period only).

Dynamic channels (ERA5-Land, 3-hourly on the grid of the cube):

=========  ==========================  ===========================================
channel    source (units)              transform before standardisation
=========  ==========================  ===========================================
swvl1      m3 m-3                      none
stl1       K                           none
skt        K                           none
t2m        K                           none
d2m        K                           none
tp         m per 3 h                   log1p(mm per 3 h)  (precipitation is skewed)
e          m w.e. per 3 h (neg = evap) -mm per 3 h (evaporation positive)
ssrd       J m-2 per 3 h               W m-2 (mean flux over the 3 h)
sd         m w.e.                      log1p(mm)
stl1_min24 K, derived from stl1           none: the minimum of ``stl1`` over the last 24 h
                                       (8 steps, the step itself included; clamped at the
                                       first step of the data), the frost signal
=========  ==========================  ===========================================

``stl1_min24`` lets a model tell frozen soil (liquid water drops, as the truth's and the
probes') from dry soil: SMAP retrieves nothing over frozen ground, so without it a model
trained on SMAP can only guess. It is derived from ``stl1`` by :func:`derive` (ERA5-Land
itself has no such field), so any ERA5-Land input with ``stl1`` provides it.

Static channels (TP10): elevation (m), slope (deg), sin/cos of aspect, latitude, longitude and
any numeric layer of the ``static_extra`` entry (soil texture, land cover fractions).
Standardisation: (v - mean) / std per channel over valid TP cells of the training period;
NaN -> 0 after standardisation (the mean), with the target mask carrying validity.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import numpy as np

from ..errors import unknown_name

DYNAMIC = ("swvl1", "stl1", "skt", "t2m", "d2m", "tp", "e", "ssrd", "sd", "stl1_min24")
#: channels computed from another ERA5-Land variable: name -> (source variable, steps of 3 h)
DERIVED = {"stl1_min24": ("stl1", 8)}


def derive(name: str, source: np.ndarray) -> np.ndarray:
    """A derived channel from its source, dims (time, ...) on regular 3-hourly steps.

    ``stl1_min24``: the running minimum over the last 8 steps (24 h) including the step;
    the first steps use what exists (clamped). NaN steps are skipped (``fmin``).

    >>> derive("stl1_min24", np.array([275., 270., 280.] + [281.] * 8))[[0, 1, 2, 8, 9]]
    array([275., 270., 270., 270., 280.], dtype=float32)
    """
    if name not in DERIVED:
        raise unknown_name("derived channel", name, list(DERIVED))
    _, steps = DERIVED[name]
    x = np.asarray(source, np.float32)
    out = x.copy()
    for k in range(1, min(steps, x.shape[0])):
        np.fmin(out[k:], x[:-k], out=out[k:])
    return out


def transform(name: str, v: np.ndarray) -> np.ndarray:
    """Physical value -> the value that is standardised (see the table above)."""
    v = np.asarray(v, dtype=np.float32)
    if name == "tp":
        return np.log1p(np.clip(v, 0, None) * 1000.0)
    if name == "e":
        return -v * 1000.0
    if name == "ssrd":
        return v / 10800.0
    if name == "sd":
        return np.log1p(np.clip(v, 0, None) * 1000.0)
    return v


@dataclass
class Normalisation:
    """Per-channel mean/std, fitted on the training period; stored in every checkpoint."""

    dynamic: list[str]
    static: list[str]
    dyn_mean: list[float]
    dyn_std: list[float]
    sta_mean: list[float]
    sta_std: list[float]
    target_mean: float
    target_std: float
    fitted_on: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Normalisation":
        return cls(**d)

    def norm_dynamic(self, x: np.ndarray, axis: int) -> np.ndarray:
        """Standardise an array whose ``axis`` indexes the dynamic channels."""
        shape = [1] * x.ndim
        shape[axis] = -1
        m = np.asarray(self.dyn_mean, np.float32).reshape(shape)
        s = np.asarray(self.dyn_std, np.float32).reshape(shape)
        return (x - m) / s

    def norm_static(self, x: np.ndarray) -> np.ndarray:
        m = np.asarray(self.sta_mean, np.float32)[:, None, None]
        s = np.asarray(self.sta_std, np.float32)[:, None, None]
        return (x - m) / s

    def norm_target(self, y):
        return (y - self.target_mean) / self.target_std

    def denorm_target(self, y):
        return y * self.target_std + self.target_mean


def robust_std(values: np.ndarray) -> float:
    s = float(np.nanstd(values))
    return s if s > 1e-6 else 1.0
