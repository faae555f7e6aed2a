"""Convolutional baselines: ResNet (no downsampling), plain UNet, ConvLSTM."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import TorchModel, pad_to_multiple
from .inputs import ShapeError

CL = torch.channels_last


class BasicBlock(nn.Module):
    """conv3x3-BN-ReLU-conv3x3-BN plus identity, ReLU (He et al. 2016)."""

    def __init__(self, dim: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.ReLU(inplace=True),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim))

    def forward(self, x):
        return F.relu(x + self.body(x))


class ResNet(TorchModel):
    """Residual convolution stack at full resolution (no downsampling).

    A 1x1 stem maps the flattened per-pixel features to ``width`` channels, then ``blocks``
    basic residual blocks, then a 1x1 head. Receptive field ``1 + 4*blocks`` pixels.
    """

    name = "resnet"
    _format_probe = "blocks.0.body.0.weight"

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 width: int = 64, blocks: int = 4):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        self.stem = nn.Sequential(nn.Conv2d(self.dims.n_features, width, 1, bias=False),
                                  nn.BatchNorm2d(width), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(*[BasicBlock(width) for _ in range(blocks)])
        self.head = nn.Conv2d(width, 1, 1)
        self.to(memory_format=CL)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.check(batch)
        x = self.flatten(batch).contiguous(memory_format=self.activation_format())
        return self.head(self.blocks(self.stem(x)))


def double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class UNet(TorchModel):
    """Plain UNet (Ronneberger et al. 2015) on the flattened per-pixel features.

    ``widths`` per level, max-pool down, transposed-convolution up, concatenated skips.
    Inputs are replicate-padded to a multiple of ``2**(levels-1)`` and the output cropped.
    """

    name = "unet"
    _format_probe = "down.0.0.weight"

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 widths: Sequence[int] = (32, 64, 128)):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        widths = [int(w) for w in widths]
        if len(widths) < 2:
            raise ShapeError(f"UNet needs at least 2 levels, got widths={widths}",
                             "pass e.g. widths=(32, 64, 128)")
        self.multiple = 2 ** (len(widths) - 1)
        self.down = nn.ModuleList()
        c = self.dims.n_features
        for w in widths:
            self.down.append(double_conv(c, w))
            c = w
        self.up = nn.ModuleList()
        self.dec = nn.ModuleList()
        for w in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w, 2, stride=2))
            self.dec.append(double_conv(2 * w, w))
            c = w
        self.head = nn.Conv2d(c, 1, 1)
        self.to(memory_format=CL)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.check(batch)
        x, (h, w) = pad_to_multiple(self.flatten(batch), self.multiple)
        x = x.contiguous(memory_format=self.activation_format())
        skips = []
        for i, block in enumerate(self.down):
            if i:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        skips.pop()
        for up, dec in zip(self.up, self.dec):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
        return self.head(x)[..., :h, :w]


class ConvLSTM(TorchModel):
    """Convolutional LSTM (Shi et al. 2015) over the 3-hourly sequence.

    The daily and weekly steps and the static layers are flattened per pixel and mapped by
    1x1 convolutions to ``context`` channels that enter every step's input and set the
    initial hidden state. One ConvLSTM cell (``kernel x kernel`` gates) runs over the ``t3``
    steps; the head (3x3 conv, GELU, 1x1) reads the last hidden state and the context.
    """

    name = "convlstm"
    _format_probe = "gates.weight"

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 hidden: int = 32, context: int = 32, kernel: int = 3):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        self.hidden = hidden
        n_ctx = (td + tw) * n_dynamic + n_static
        self.context = nn.Sequential(nn.Conv2d(n_ctx, 64, 1), nn.GELU(), nn.Conv2d(64, context, 1),
                                     nn.GELU())
        self.init_h = nn.Conv2d(context, hidden, 1)
        self.gates = nn.Conv2d(n_dynamic + context + hidden, 4 * hidden, kernel,
                               padding=kernel // 2)
        self.head = nn.Sequential(nn.Conv2d(hidden + context, hidden, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(hidden, 1, 1))
        self.to(memory_format=CL)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.check(batch)
        fmt = self.activation_format()
        ctx_in = torch.cat([batch["xday"].flatten(1, 2), batch["xweek"].flatten(1, 2),
                            batch["static"]], dim=1).contiguous(memory_format=fmt)
        ctx = self.context(ctx_in)
        h = torch.tanh(self.init_h(ctx))
        c = torch.zeros_like(h)
        x3h = batch["x3h"]
        # The gates convolve [x_t, ctx, h]. A convolution is linear in its input channels, so
        # the context's part (constant over the steps) is convolved once per call, with the
        # bias, and each step convolves only [x_t, h] (the same weights, summed in another
        # order): 38 % less gate arithmetic (8 steps x 42 + 32 input channels instead of 8 x 74
        # for the demo), and outputs equal to the concatenated form
        # to float rounding (test_convlstm_split_gates_equal_the_concatenated_form). A batched
        # convolution of every step's x_t was tried and dropped: 8 scenes per call then hold a
        # (scenes x steps x gates x cells) tensor of 1.5 GB.
        w = self.gates.weight
        nd, nc = x3h.shape[2], ctx.shape[1]
        zc = F.conv2d(ctx, w[:, nd:nd + nc].contiguous(memory_format=fmt), self.gates.bias,
                      padding=self.gates.padding)
        w_xh = torch.cat([w[:, :nd], w[:, nd + nc:]], dim=1).contiguous(memory_format=fmt)
        for t in range(x3h.shape[1]):
            # x_t in the activations' memory format first: the concatenation then is in that
            # format already (concatenating a channels-first x_t with a channels-last h made a
            # channels-first tensor that was copied again)
            xh = torch.cat([x3h[:, t].contiguous(memory_format=fmt), h], dim=1).contiguous(memory_format=fmt)
            z = zc + F.conv2d(xh, w_xh, padding=self.gates.padding)
            # the three sigmoid gates (i, f, o: the first 3 x hidden channels) in one call: one
            # pass over memory instead of three strided ones (channels are innermost)
            i, f, o = torch.sigmoid(z[:, :3 * self.hidden]).chunk(3, dim=1)
            c = f * c + i * torch.tanh(z[:, 3 * self.hidden:])
            h = o * torch.tanh(c)
        return self.head(torch.cat([h, ctx], dim=1))
