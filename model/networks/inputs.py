"""The input contract of every network: a dict of normalised float32 tensors.

A batch is a ``dict`` with four tensors, already normalised by the data pipeline (zero mean,
unit variance per channel, NaN replaced by 0, validity masks as extra channels where useful):

``x3h``
    dynamic predictors, the last 24 h at 3-hourly steps, dims ``(batch, time, channel, lat, lon)``
    = ``(B, t3, n_dynamic, H, W)``, oldest step first, the last step is the target step.
``xday``
    daily means of the same channels, the last ``td`` days, ``(B, td, n_dynamic, H, W)``.
``xweek``
    weekly means of the same channels, the last ``tw`` weeks, ``(B, tw, n_dynamic, H, W)``.
``static``
    static layers (elevation, slope, aspect sin/cos, soil texture, land cover, lat, lon...),
    ``(B, n_static, H, W)``.

Every model returns soil moisture in normalised units, ``(B, 1, H, W)``; the trainer
denormalises. ``H`` and ``W`` may be any size >= 1.

The per-pixel feature vector (:func:`flatten_pixels`, used by the MLP, the image baselines'
stems and the sklearn models) is, in this order: every ``x3h`` step (oldest first) with its
``n_dynamic`` channels, then every ``xday`` step, then every ``xweek`` step, then the static
layers; :func:`feature_names` spells it out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

import torch

from ..errors import InputError

#: the dynamic branches, in feature order
BRANCHES = ("x3h", "xday", "xweek")
#: every key of a batch
BATCH_KEYS = BRANCHES + ("static",)


class ShapeError(InputError, ValueError):
    """A batch whose keys or tensor shapes do not match what the model was built for."""


@dataclass(frozen=True)
class InputDims:
    """The sizes a model is built for (its constructor arguments of the same names)."""

    n_dynamic: int
    n_static: int
    t3: int = 8
    td: int = 7
    tw: int = 4

    def __post_init__(self):
        for key in ("n_dynamic", "n_static", "t3", "td", "tw"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ShapeError(f"{key} must be a positive integer, got {value!r}",
                                 "pass the channel and time-step counts of the dataset")

    @property
    def steps(self) -> dict[str, int]:
        return {"x3h": self.t3, "xday": self.td, "xweek": self.tw}

    @property
    def n_features(self) -> int:
        """Length of the per-pixel feature vector of :func:`flatten_pixels`."""
        return (self.t3 + self.td + self.tw) * self.n_dynamic + self.n_static

    def expected(self, key: str) -> str:
        if key == "static":
            return f"static (batch, channel, lat, lon) = (B, {self.n_static}, H, W)"
        return (f"{key} (batch, time, channel, lat, lon) = "
                f"(B, {self.steps[key]}, {self.n_dynamic}, H, W)")


def check_batch(batch: Mapping[str, torch.Tensor], dims: InputDims,
                model: str = "model") -> tuple[int, int, int]:
    """Validate a batch against ``dims``; return ``(B, H, W)``.

    Raises :class:`ShapeError` naming the expected dims, e.g. ``expected x3h (batch, time,
    channel, lat, lon) = (B, 8, 10, H, W), got (2, 7, 10, 32, 32)``.
    """
    if not isinstance(batch, Mapping):
        raise ShapeError(f"{model}: expected a dict with keys {', '.join(BATCH_KEYS)}, "
                         f"got {type(batch).__name__}",
                         "pass the batch dict that the data pipeline yields")
    missing = [k for k in BATCH_KEYS if k not in batch]
    if missing:
        raise ShapeError(f"{model}: batch lacks {', '.join(missing)} "
                         f"(has {', '.join(map(str, batch)) or 'nothing'})",
                         f"a batch holds {', '.join(BATCH_KEYS)}")
    ref: tuple[int, int, int] | None = None
    for key in BATCH_KEYS:
        t = batch[key]
        shape = tuple(getattr(t, "shape", ()))
        ndim = 4 if key == "static" else 5
        ok = len(shape) == ndim
        if ok and key == "static":
            ok = shape[1] == dims.n_static
        elif ok:
            ok = shape[1] == dims.steps[key] and shape[2] == dims.n_dynamic
        if ok:
            ok = min(shape) >= 1
        if not ok:
            raise ShapeError(f"{model}: expected {dims.expected(key)}, got {shape}",
                             "build the model with the dataset's sizes (n_dynamic, n_static, "
                             "t3, td, tw) or fix the batch")
        bhw = (shape[0], shape[-2], shape[-1])
        if ref is None:
            ref = bhw
        elif bhw != ref:
            raise ShapeError(f"{model}: {key} has (batch, lat, lon) = {bhw} but x3h has {ref}",
                             "all tensors of a batch must share batch size and grid")
    assert ref is not None
    return ref


def flatten_pixels(batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
    """Stack every step and channel per pixel: ``(B, F, H, W)`` in :func:`feature_names` order."""
    parts = [batch[k].flatten(1, 2) for k in BRANCHES]
    parts.append(batch["static"])
    return torch.cat(parts, dim=1)


def feature_names(dims: InputDims, dynamic: list[str] | None = None,
                  static: list[str] | None = None) -> list[str]:
    """Names of the :func:`flatten_pixels` features, e.g. ``x3h[t-21h].swvl1``.

    ``dynamic`` / ``static`` are channel names (default ``c0``, ``c1``... / ``s0``...).
    """
    dynamic = dynamic or [f"c{i}" for i in range(dims.n_dynamic)]
    static = static or [f"s{i}" for i in range(dims.n_static)]
    if len(dynamic) != dims.n_dynamic or len(static) != dims.n_static:
        raise ShapeError("channel name lists do not match n_dynamic / n_static",
                         "pass one name per channel")
    unit = {"x3h": (3, "h"), "xday": (1, "d"), "xweek": (1, "w")}
    names = []
    for key in BRANCHES:
        n = dims.steps[key]
        step, u = unit[key]
        for t in range(n):
            lag = (n - 1 - t) * step
            for c in dynamic:
                names.append(f"{key}[t-{lag}{u}].{c}")
    names += [f"static.{s}" for s in static]
    return names


def example_batch(dims: InputDims, batch: int = 2, height: int = 32, width: int = 32,
                  seed: int = 0, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
    """A seeded standard-normal batch of the contract's shapes (tests, benchmarks, smoke runs)."""
    g = torch.Generator().manual_seed(seed)
    out = {}
    for key in BRANCHES:
        out[key] = torch.randn(batch, dims.steps[key], dims.n_dynamic, height, width,
                               generator=g, dtype=dtype)
    out["static"] = torch.randn(batch, dims.n_static, height, width, generator=g, dtype=dtype)
    return {k: v.to(device) for k, v in out.items()}
