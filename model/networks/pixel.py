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
    #: a day's 8 scenes per call on the CPU: they share their weekly and daily history
    #: (:func:`shared_history`), 1.84 s per scene against 2.76 s one at a time (one EPYC core)
    cpu_batch = 8

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
        if not self.training:
            groups = shared_history(batch)
            if len(groups) < b:
                return self._forward_shared(batch, groups, h, w)
        seq = torch.cat([batch["xweek"], batch["xday"], batch["x3h"]], dim=1)  # (B, T, C, H, W)
        static = _pixels(batch["static"][:, None])[:, 0]
        h0 = self._state0(static)
        out, _ = self.lstm(self._with_freq(_pixels(seq), 0), (h0, torch.zeros_like(h0)))
        return self._head(out[:, -1], static, b, h, w)

    def _state0(self, static: torch.Tensor) -> torch.Tensor:
        h0 = torch.tanh(self.init_state(static)).reshape(-1, self.num_layers, self.hidden)
        return h0.transpose(0, 1).contiguous()

    def _with_freq(self, seq: torch.Tensor, first: int) -> torch.Tensor:
        """``seq`` (N, T, C) with the frequency embedding of steps ``first .. first + T``."""
        n, t = seq.shape[:2]
        freq = self.freq(self.freq_index[first:first + t]).to(seq.dtype).unsqueeze(0).expand(n, -1, -1)
        return torch.cat([seq, freq], dim=-1)

    def _head(self, last: torch.Tensor, static: torch.Tensor, b: int, h: int, w: int) -> torch.Tensor:
        y = self.head(torch.cat([last, static.to(last.dtype)], dim=-1))
        return y.reshape(b, h, w, 1).permute(0, 3, 1, 2).contiguous()

    def _forward_shared(self, batch, groups: list[list[int]], h: int, w: int) -> torch.Tensor:
        """Inference over scenes that share their weekly and daily steps (the scenes of one
        day): the LSTM runs those steps once per group, then each scene's 3-hourly steps from
        that state. The same arithmetic as :meth:`forward` (the steps before the 3-hourly ones
        are the same inputs), at about half the cost for a day of 8 scenes."""
        b, n = batch["x3h"].shape[0], h * w
        n_pre = batch["xweek"].shape[1] + batch["xday"].shape[1]
        last, statics = [None] * b, [None] * b
        for g in groups:
            i = g[0]
            pre = torch.cat([batch["xweek"][i:i + 1], batch["xday"][i:i + 1]], dim=1)
            static = _pixels(batch["static"][i:i + 1, None])[:, 0]
            h0 = self._state0(static)
            _, (hp, cp) = self.lstm(self._with_freq(_pixels(pre), 0), (h0, torch.zeros_like(h0)))
            k = len(g)
            out, _ = self.lstm(self._with_freq(_pixels(batch["x3h"][g]), n_pre), (hp.repeat(1, k, 1), cp.repeat(1, k, 1)))
            for j, s in enumerate(g):
                last[s], statics[s] = out[j * n:(j + 1) * n, -1], static
        return self._head(torch.cat(last), torch.cat(statics), b, h, w)


def _pixels(seq: torch.Tensor) -> torch.Tensor:
    """(B, T, C, H, W) -> (B * H * W, T, C), batch-major then rows, columns."""
    b, t, c, h, w = seq.shape
    return seq.permute(0, 3, 4, 1, 2).reshape(b * h * w, t, c)


#: fewest pixels per scene for which the LSTM looks for scenes sharing their history (the
#: archive's 1 x N strips); training and tuning batches of single pixels are never grouped
SHARE_MIN_PIXELS = 256


def shared_history(batch: Mapping[str, torch.Tensor], min_pixels: int = SHARE_MIN_PIXELS) -> list[list[int]]:
    """The batch's scenes in runs of consecutive scenes with equal weekly, daily and static
    inputs (the scenes of one day, in time order), one vectorised comparison per input; every
    scene alone when the scenes have fewer than ``min_pixels`` pixels."""
    b, h, w = batch["x3h"].shape[0], *batch["x3h"].shape[-2:]
    if b < 2 or h * w < min_pixels:
        return [[i] for i in range(b)]
    same = torch.ones(b - 1, dtype=torch.bool, device=batch["x3h"].device)
    for key in ("xweek", "xday", "static"):
        v = batch[key]
        same &= (v[1:] == v[:-1]).flatten(1).all(1)
    groups = [[0]]
    for i, s in enumerate(same.tolist(), start=1):
        if s:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups
