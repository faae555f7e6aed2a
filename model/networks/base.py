"""Base class of the torch networks: constructor arguments recorded, shapes validated.

Every network records its JSON-serialisable constructor arguments when it is built
(:meth:`TorchModel.config_dict`, see :mod:`model.networks.recording`), so that a checkpoint
alone rebuilds it by registry name (:mod:`model.networks.checkpoint`), and validates the
batch at the top of ``forward`` (:func:`model.networks.inputs.check_batch`).
"""

from __future__ import annotations

from typing import ClassVar, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from .inputs import InputDims, check_batch, flatten_pixels
from .recording import ConfigMixin


class TorchModel(ConfigMixin, nn.Module):
    """A network mapping a batch dict (see :mod:`model.networks.inputs`) to ``(B, 1, H, W)``."""

    kind = "torch"

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4):
        super().__init__()
        self.dims = InputDims(n_dynamic, n_static, t3, td, tw)

    def check(self, batch: Mapping[str, torch.Tensor]) -> tuple[int, int, int]:
        """Validate the batch shapes; return ``(B, H, W)``."""
        return check_batch(batch, self.dims, self.name)

    def flatten(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return flatten_pixels(batch)

    def n_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    #: dotted name of a 3x3 convolution weight whose memory format the activations follow
    _format_probe: ClassVar[str | None] = None

    def activation_format(self) -> torch.memory_format:
        """``channels_last`` if the model's convolution weights are NHWC, else NCHW.

        Convolutional models put their weights in channels_last at construction (about 2x
        faster convolutions on CPU with oneDNN, and the tensor-core layout on GPU);
        ``model.to(memory_format=torch.contiguous_format)`` switches a model back to NCHW.
        """
        if not self._format_probe:
            return torch.contiguous_format
        w = self.get_parameter(self._format_probe)
        if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
            return torch.channels_last
        return torch.contiguous_format


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Replicate-pad the last two dims of ``x`` up to a multiple; return it and (H, W) to crop back."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph or pw:
        x = F.pad(x, (0, pw, 0, ph), mode="replicate")
    return x, (h, w)
