"""The model registry: the ONLY place where a model name becomes a class.

torchgeo-style (``torchgeo/models/api.py``)::

    >>> from model.networks.registry import get_model, list_models
    >>> net = get_model("pscnet", n_dynamic=10, n_static=10)
    >>> [m.name for m in list_models(kind="reference")]
    ['smap_bilinear', 'era5_cdf']

Listing needs no torch (the dashboard lists models at start-up); classes are imported when
a model is built. Keyword arguments of :func:`get_model` are the class's constructor
arguments: torch and sklearn models take ``n_dynamic, n_static, t3, td, tw`` plus their own;
the reference methods take only their own (see each class).
"""

from __future__ import annotations

import importlib
from dataclasses import asdict, dataclass
from typing import Any

from ..errors import InputError, unknown_name


@dataclass(frozen=True)
class ModelInfo:
    """One registry entry."""

    name: str
    #: "torch", "sklearn" or "reference"
    kind: str
    description: str
    #: the family the model belongs to (for tables and the dashboard's grouping)
    family: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


_ENTRIES: list[tuple[ModelInfo, str | type]] = [
    (ModelInfo("pscnet", "torch", "Progressive Scale Convolutional Network: multi-frequency "
               "temporal fusion per pixel, then Stage blocks (SE conv + FFN) from coarse to "
               "fine scale with a detail-preserving local SE block", "proposed"),
     "model.networks.pscnet:PSCNet"),
    (ModelInfo("mlp", "torch", "multi-layer perceptron per pixel on all steps and static "
               "layers", "per-pixel network"), "model.networks.pixel:PixelMLP"),
    (ModelInfo("lstm", "torch", "LSTM per pixel over the weekly -> daily -> 3-hourly "
               "sequence with a frequency embedding", "per-pixel network"),
     "model.networks.pixel:PixelLSTM"),
    (ModelInfo("convlstm", "torch", "convolutional LSTM over the 3-hourly steps, daily/"
               "weekly/static as context", "spatio-temporal network"),
     "model.networks.conv:ConvLSTM"),
    (ModelInfo("resnet", "torch", "residual convolution stack at full resolution",
               "convolutional network"), "model.networks.conv:ResNet"),
    (ModelInfo("unet", "torch", "plain 3-level UNet", "convolutional network"),
     "model.networks.conv:UNet"),
    (ModelInfo("vit", "torch", "vision transformer, 4x4 patches, interpolated positional "
               "embedding", "transformer"), "model.networks.vit:ViT"),
    (ModelInfo("rf", "sklearn", "random forest per pixel (scikit-learn)", "tree ensemble"),
     "model.networks.trees:RandomForest"),
    (ModelInfo("gbm", "sklearn", "histogram gradient boosting per pixel (scikit-learn)",
               "tree ensemble"), "model.networks.trees:GradientBoosting"),
    (ModelInfo("smap_bilinear", "reference", "SMAP bilinear interpolation to 10 km "
               "(NaN-aware)", "no-learning reference"), "model.networks.reference:SMAPBilinear"),
    (ModelInfo("era5_cdf", "reference", "ERA5-Land swvl1 rescaled to SMAP by per-cell CDF "
               "matching", "no-learning reference"), "model.networks.reference:ERA5CDFMatching"),
]
_INFO = {info.name: info for info, _ in _ENTRIES}
_TARGET: dict[str, str | type] = {info.name: target for info, target in _ENTRIES}

KINDS = ("torch", "sklearn", "reference")

#: Named ablations: constructor arguments that remove one part of a method (docs/pscnet.md,
#: "Ablation switches"). An experiment names one as ``"<model>:<ablation>"``, e.g.
#: ``sm-downscale experiment --model pscnet --model pscnet:no_mftf``.
ABLATIONS: dict[str, dict[str, dict[str, Any]]] = {
    "pscnet": {
        "no_mftf": {"use_mftf": False},                  # one temporal tree, no multi-frequency fusion
        "global_se": {"se_mode": "global"},              # plain SE instead of the detail-preserving one
        "single_scale": {"scales": [1], "depths": [3]},  # three Stage blocks at full resolution
    },
}


def list_models(kind: str | None = None) -> list[ModelInfo]:
    """Every registered model (in a stable order), optionally only those of one ``kind``."""
    if kind is not None and kind not in KINDS:
        raise unknown_name("model kind", kind, list(KINDS))
    return [info for info, _ in _ENTRIES if kind is None or info.kind == kind]


def model_names(kind: str | None = None) -> list[str]:
    return [m.name for m in list_models(kind)]


def model_info(name: str) -> ModelInfo:
    if name not in _INFO:
        raise unknown_name("model", name, list(_INFO))
    return _INFO[name]


def split_ablation(spec: str) -> tuple[str, dict[str, Any]]:
    """A method as an experiment names it -> (registered name, constructor arguments).

    ``"pscnet"`` -> ``("pscnet", {})``; ``"pscnet:no_mftf"`` -> ``("pscnet", {"use_mftf": False})``
    (see :data:`ABLATIONS`). Unknown names fail with the valid ones."""
    name, sep, ablation = spec.partition(":")
    model_info(name)
    if not sep:
        return name, {}
    table = ABLATIONS.get(name)
    if not table:
        raise InputError(f"{name!r} has no named ablations (in {spec!r})",
                         f"ablations exist for: {', '.join(sorted(ABLATIONS))}; or name the method alone")
    if ablation not in table:
        raise unknown_name(f"ablation of {name}", ablation, list(table))
    return name, dict(table[ablation])


def get_model_class(name: str) -> type:
    """The class registered under ``name`` (imports its module). Its capabilities (class
    attributes ``kind``, ``per_pixel``, ``batchable``, ``reads_channel``, ``demo_minutes``;
    see :class:`model.networks.recording.ConfigMixin`) are what the trainer, runner and
    archive ask."""
    info = model_info(name)
    target = _TARGET[name]
    if isinstance(target, str):
        module, _, cls_name = target.partition(":")
        cls = getattr(importlib.import_module(module), cls_name)
    else:
        cls = target
    if getattr(cls, "name", None) != name or getattr(cls, "kind", None) != info.kind:
        raise TypeError(f"the class registered as {name!r} ({cls.__qualname__}) says name="
                        f"{getattr(cls, 'name', None)!r}, kind={getattr(cls, 'kind', None)!r}; the registry "
                        f"line says {name!r}, {info.kind!r}: make them agree")
    return cls


def register_model(info: ModelInfo, target: str | type) -> None:
    """Add a method at run time (a notebook, a test, a plug-in): ``target`` is the class or
    ``"module:Class"``. A method that should be part of the product gets its line in
    ``_ENTRIES`` instead, so that every process (the archive's Dask workers too) knows it."""
    if info.kind not in KINDS:
        raise unknown_name("model kind", info.kind, list(KINDS))
    if info.name in _INFO:
        raise ValueError(f"a model named {info.name!r} is already registered")
    _ENTRIES.append((info, target))
    _INFO[info.name] = info
    _TARGET[info.name] = target


def unregister_model(name: str) -> None:
    """Remove a method added by :func:`register_model`."""
    model_info(name)
    _ENTRIES[:] = [(i, t) for i, t in _ENTRIES if i.name != name]
    del _INFO[name], _TARGET[name]


def get_model(name: str, **kwargs: Any):
    """Build the model registered under ``name`` with its constructor arguments."""
    return get_model_class(name)(**kwargs)
