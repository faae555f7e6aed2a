"""Checkpoints that rebuild their model: ``{format, version, name, kind, model_version,
config, state_dict, extra}`` in one ``torch.save`` file, written atomically.

The same structure serves every registry model: a torch network's ``state_dict``; a tree
model's fitted ensemble as plain arrays (children, feature, threshold, value per node); a
fitted reference method's arrays (numpy arrays are stored as tensors). The file is read with
``torch.load(weights_only=True)`` only (plain containers, numbers, strings and tensors), so
loading a checkpoint never runs code: a file that needs anything else to unpickle (a planted
pickle, a joblib dump) is refused as unreadable, and a tree checkpoint of the old
pickled-estimator layout is refused by the tree model.

``extra`` is the trainer's own dict (normalisation statistics, channel names, metrics...):
JSON-like values and tensors; numpy arrays come back as tensors, numpy scalars as Python
numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import InputError, UnreadableFileError, WrongProductError
from ..io import atomic_path
from .registry import get_model_class, model_info

FORMAT = "sm-downscale-model"
#: version of the checkpoint layout; loading another version is refused
VERSION = 1


def _to_storable(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _to_storable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_storable(v) for v in obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def save_checkpoint(path: str | Path, model: Any, extra: dict | None = None) -> Path:
    """Write ``model`` (any registry model) and ``extra`` to ``path`` atomically.

    A model wrapped by ``torch.compile`` or ``DistributedDataParallel`` is unwrapped first.
    """
    for attr in ("_orig_mod", "module"):       # torch.compile, DDP / DataParallel
        while hasattr(model, attr) and not hasattr(model, "config_dict"):
            model = getattr(model, attr)
    name = getattr(model, "name", "")
    model_info(name)   # only registry models
    payload = {
        "format": FORMAT,
        "version": VERSION,
        "name": name,
        "kind": model.kind,
        "model_version": int(getattr(model, "version", 1)),
        "config": model.config_dict(),
        "state_dict": _to_storable(model.state_dict()),
        "extra": _to_storable(dict(extra or {})),
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def read_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict:
    """The raw checkpoint dict, validated for format and version (no model built)."""
    path = Path(path)
    if not path.is_file():
        raise InputError("checkpoint not found", "train the model first or pass another path", path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise UnreadableFileError(f"not a readable model checkpoint ({type(exc).__name__}: "
                                  f"{str(exc).splitlines()[0] if str(exc) else ''})",
                                  "pass a checkpoint written by sm-downscale train", path) from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise WrongProductError("not an sm-downscale model checkpoint",
                                "pass a checkpoint written by sm-downscale train", path)
    if payload.get("version") != VERSION:
        raise InputError(f"checkpoint format version {payload.get('version')} is not the "
                         f"supported version {VERSION}",
                         "retrain the model with this code version, or load it with the code "
                         "version that wrote it", path)
    return payload


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu",
                    name: str | None = None) -> tuple[Any, dict]:
    """Rebuild the model of a checkpoint; return ``(model, extra)``.

    ``name``: the registry name the caller expects; a checkpoint of another model raises
    :class:`~model.errors.InputError`. Torch models come back in eval mode on ``map_location``.
    """
    payload = read_checkpoint(path, map_location)
    stored = payload["name"]
    if name is not None and stored != name:
        model_info(name)
        raise WrongProductError(f"checkpoint holds model {stored!r}, not {name!r}",
                                f"load it as {stored!r}, or pass the checkpoint of {name!r}", path)
    cls = get_model_class(stored)
    if int(payload.get("model_version", 1)) != int(getattr(cls, "version", 1)):
        raise InputError(f"checkpoint of {stored!r} has architecture version "
                         f"{payload.get('model_version')}, this code has {cls.version}",
                         "retrain the model with this code version", path)
    try:
        model = cls(**payload["config"])
        state = payload["state_dict"]
        if isinstance(model, torch.nn.Module):
            model.load_state_dict(state)
            model.to(map_location).eval()
        else:
            model.load_state_dict(state)
    except (TypeError, RuntimeError, KeyError) as exc:
        raise InputError(f"checkpoint of {stored!r} does not fit this code ({exc})",
                         "retrain the model with this code version", path) from exc
    return model, payload.get("extra", {})
