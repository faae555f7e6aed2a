"""Per-pixel baselines: MLP and LSTM (no spatial context; any H, W including 1 x 1)."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
from torch import nn

from .base import TorchModel


class PixelMLP(TorchModel):
    """Multi-layer perceptron applied to each pixel's flattened feature vector.

    Features: every x3h, xday and xweek step and channel plus the static layers
    (:func:`model.networks.inputs.flatten_pixels`, ``(t3+td+tw)*n_dynamic + n_static``).
    Implemented with 1x1 convolutions, which are per-pixel linear layers.
    """

    name = "mlp"
    per_pixel = True

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 hidden: Sequence[int] = (256, 256, 128), dropout: float = 0.1):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        layers: list[nn.Module] = []
        c = self.dims.n_features
        for h in hidden:
            layers += [nn.Conv2d(c, int(h), 1), nn.GELU(), nn.Dropout(dropout)]
            c = int(h)
        layers.append(nn.Conv2d(c, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.check(batch)
        return self.net(self.flatten(batch))


class PixelLSTM(TorchModel):
    """LSTM over each pixel's history: weekly -> daily -> 3-hourly steps, oldest first.

    The ``tw + td + t3`` steps are one sequence; each step's input is its ``n_dynamic``
    channels plus a learned embedding of its frequency (week, day, 3 h), so the network knows
    the spacing of the steps. The static layers set the initial hidden state (through a
    linear layer and tanh) and join the last hidden state in the head.
    """

    name = "lstm"
    per_pixel = True
    demo_minutes = 1.5

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 hidden: int = 64, num_layers: int = 2, freq_dim: int = 4, dropout: float = 0.0):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        self.hidden = hidden
        self.num_layers = num_layers
        self.freq = nn.Embedding(3, freq_dim)
        self.register_buffer("freq_index", torch.tensor([0] * tw + [1] * td + [2] * t3),
                             persistent=False)
        self.init_state = nn.Linear(n_static, hidden * num_layers)
        self.lstm = nn.LSTM(n_dynamic + freq_dim, hidden, num_layers, batch_first=True,
                            dropout=dropout if num_layers > 1 else 0.0)
        self.head = nn.Sequential(nn.Linear(hidden + n_static, 64), nn.GELU(), nn.Linear(64, 1))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        b, h, w = self.check(batch)
        seq = torch.cat([batch["xweek"], batch["xday"], batch["x3h"]], dim=1)  # (B, T, C, H, W)
        t, c = seq.shape[1:3]
        n = b * h * w
        seq = seq.permute(0, 3, 4, 1, 2).reshape(n, t, c)
        freq = self.freq(self.freq_index).to(seq.dtype).unsqueeze(0).expand(n, -1, -1)
        seq = torch.cat([seq, freq], dim=-1)
        static = batch["static"].permute(0, 2, 3, 1).reshape(n, -1)
        h0 = torch.tanh(self.init_state(static)).reshape(n, self.num_layers, self.hidden)
        h0 = h0.transpose(0, 1).contiguous()
        out, _ = self.lstm(seq, (h0, torch.zeros_like(h0)))
        y = self.head(torch.cat([out[:, -1], static.to(out.dtype)], dim=-1))
        return y.reshape(b, h, w, 1).permute(0, 3, 1, 2).contiguous()
