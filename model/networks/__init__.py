"""Torch networks, scikit-learn models and no-learning references behind one registry.

- :mod:`.registry`: ``get_model(name, **kwargs)``, ``list_models()`` -> ``ModelInfo`` (the only
  place where a name becomes a class; listing imports no torch).
- :mod:`.inputs`: the batch contract (``x3h``, ``xday``, ``xweek``, ``static``), validation,
  per-pixel flattening, seeded example batches.
- :mod:`.checkpoint`: ``save_checkpoint(path, model, extra)`` / ``load_checkpoint(path,
  map_location, name=None) -> (model, extra)``.
- Models: :mod:`.pscnet` (PSCNet), :mod:`.pixel` (MLP, LSTM), :mod:`.conv` (ResNet, UNet,
  ConvLSTM), :mod:`.vit` (ViT), :mod:`.trees` (random forest, gradient boosting),
  :mod:`.reference` (SMAP bilinear, ERA5-Land CDF matching).

This package imports with torch and numpy alone (scikit-learn only when a tree model is fitted
or loaded), so the benchmark runs on a bare GPU machine. Attributes below are resolved lazily
so ``import model.networks`` does not import torch.
"""

from __future__ import annotations

import importlib

from .registry import ModelInfo, get_model, get_model_class, list_models, model_info, model_names

_LAZY = {
    "save_checkpoint": "checkpoint", "load_checkpoint": "checkpoint",
    "read_checkpoint": "checkpoint",
    "InputDims": "inputs", "ShapeError": "inputs", "check_batch": "inputs",
    "example_batch": "inputs", "flatten_pixels": "inputs", "feature_names": "inputs",
}

__all__ = ["ModelInfo", "get_model", "get_model_class", "list_models", "model_info",
           "model_names", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
