"""PSCNet: Progressive Scale Convolutional Network (our reimplementation).

Zhou et al. 2025, "Progressive Scale Convolutional Network for Spatio-Temporal Downscaling of
Soil Moisture: A Case Study Over the Tibetan Plateau" (arXiv 2510.10244). Only the abstract and
figure captions are public: a separable spatio-temporal CNN with a multi-frequency temporal
fusion (MFTF) module, Stage blocks, an SE block "designed to preserve fine-grained spatial
details", an FFN and an SE convolutional layer. Every detail below is this project's own
choice; ``docs/pscnet.md`` gives each choice and its reason.

Layout (separable: temporal first, per pixel; then spatial)::

    x3h, xday, xweek ─ TemporalTree each: per pixel, strided temporal convolutions
                       + a linear shortcut ─ e_3h, e_day, e_week (B, width, H, W)
    static ─ 1x1, GELU, 1x1 ─ static embedding s, branch-gate logits g
    fusion: w = softmax(learned logits + g) per pixel;  f0 = GELU(1x1(sum_b w_b e_b) + s)
        -> f0 (B, width, H, W), replicate-padded to a multiple of the largest scale
        -> scale 4: avgpool(f0) -> 1x1 -> Stage x depth
        -> scale 2: 1x1, upsample + 1x1(avgpool(f0)) -> Stage x depth
        -> scale 1: 1x1, upsample + f0 -> Stage x depth -> 1x1 head -> crop -> (B, 1, H, W)

    Stage = SEConv layer (conv3x3-BN-GELU-conv3x3-BN-SE, residual) + FFN (1x1-GELU-1x1, residual)
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import TorchModel, pad_to_multiple
from .inputs import BRANCHES, ShapeError


class TemporalTree(nn.Module):
    """Temporal encoder of one frequency branch, per pixel: a tree of strided temporal convolutions.

    The window ``(B, T, C, H, W)`` is zero-padded at its oldest end to ``P`` steps, ``P`` the
    power of two >= T (zero = the climatological mean in normalised units). Then
    ``log2(P)`` temporal convolutions of kernel 2 and stride 2, each followed by GELU, halve
    the time axis until one step is left, widening the channels (``hidden``, ``2*hidden``,
    ... up to ``dim``) as time shrinks: a binary tree whose receptive field is the whole
    window after ``log2(P)`` layers and whose cost halves at every level. The weights of a
    level are shared by all its time positions (a true convolution in time).

    No spatial mixing: a kernel-2 stride-2 temporal convolution is a 1x1 convolution on the
    view ``(B*P/2, 2C, H, W)`` of the contiguous window (time pairs folded into the batch),
    so the whole tree is a few dense 1x1 convolutions on free reshapes. A linear shortcut
    (1x1 convolution of the raw window viewed as ``(B, T*C, H, W)``) is added to the tree's
    output, so the most recent values reach the embedding without passing through every
    nonlinearity. Output ``(B, dim, H, W)``.
    """

    def __init__(self, n_in: int, steps: int, dim: int, hidden: int = 16):
        super().__init__()
        self.steps = steps
        self.padded = 1 << max(1, math.ceil(math.log2(steps)))
        levels = int(math.log2(self.padded))
        layers = []
        c = n_in
        for level in range(levels):
            out = dim if level == levels - 1 else min(dim, hidden << level)
            layers.append(nn.Conv2d(2 * c, out, 1))
            c = out
        self.tree = nn.ModuleList(layers)
        self.shortcut = nn.Conv2d(steps * n_in, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, c, h, w = x.shape
        x = x.contiguous()
        z = F.pad(x, (0, 0, 0, 0, 0, 0, self.padded - t, 0)) if self.padded > t else x
        n = b * self.padded
        for conv in self.tree:
            n //= 2
            z = F.gelu(conv(z.reshape(n, -1, h, w)))
        return z + self.shortcut(x.flatten(1, 2))


class LocalSE(nn.Module):
    """Detail-preserving squeeze-and-excitation.

    ``mode="local"``: the channel weights come from LOCAL statistics -- the mean over a ``kernel
    x kernel`` neighbourhood of each pixel (stride 1) instead of the global mean -- so each
    place gets its own recalibration and a field's fine structure is not averaged away (and a
    32x32 training patch and the 150x320 scene see the same statistics). A spatial term, a
    ``spatial_kernel`` convolution to one channel of the squeezed (1x1, ``dim/reduction``
    channels) but unpooled input -- a learned channel pooling, as in CBAM's spatial attention --
    lets each pixel raise or lower all its channels; the two logits are added before one
    sigmoid, so the gate is ``sigmoid(channel(x)[c, i, j] + spatial(x)[i, j])``. The pooling
    runs after the 1x1 squeeze (they commute), on ``dim/reduction`` channels. ``mode="global"``:
    the plain SE block (Hu et al. 2018): global average pool, channel weights only -- the
    ablation.
    """

    def __init__(self, dim: int, mode: str = "local", reduction: int = 4, kernel: int = 7,
                 spatial_kernel: int = 7):
        super().__init__()
        if mode not in ("local", "global"):
            raise ShapeError(f"se_mode must be 'local' or 'global', got {mode!r}",
                             "use 'local' (PSCNet) or 'global' (plain SE ablation)")
        self.mode = mode
        self.kernel = kernel
        hidden = max(dim // reduction, 4)
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        if mode == "local":
            self.spatial = nn.Conv2d(hidden, 1, spatial_kernel, padding=spatial_kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "global":
            s = x.mean(dim=(2, 3), keepdim=True)
            return x * torch.sigmoid(self.fc2(F.gelu(self.fc1(s))))
        k = self.kernel
        q = self.fc1(x)
        s = F.avg_pool2d(q, k, stride=1, padding=k // 2, count_include_pad=False)
        return x * torch.sigmoid(self.fc2(F.gelu(s)) + self.spatial(q))


class SEConv(nn.Module):
    """SE convolutional layer: conv3x3-BN-GELU-conv3x3-BN, recalibrated by the SE block, residual."""

    def __init__(self, dim: int, se_mode: str, se_kernel: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim), nn.GELU(),
            nn.Conv2d(dim, dim, 3, padding=1, bias=False), nn.BatchNorm2d(dim),
        )
        self.se = LocalSE(dim, se_mode, kernel=se_kernel)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.se(self.body(x))


class FFN(nn.Module):
    """Position-wise feed-forward network (1x1 expand, GELU, 1x1 project), residual."""

    def __init__(self, dim: int, ratio: int = 2):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(dim, ratio * dim, 1), nn.GELU(),
                                  nn.Conv2d(ratio * dim, dim, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Stage(nn.Module):
    """One Stage block: SE convolutional layer followed by an FFN, both residual."""

    def __init__(self, dim: int, se_mode: str, se_kernel: int, ffn_ratio: int):
        super().__init__()
        self.seconv = SEConv(dim, se_mode, se_kernel)
        self.ffn = FFN(dim, ffn_ratio)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.ffn(self.seconv(x))


def scale_width(width: int, scale: int) -> int:
    """Channels at a scale: ``width * sqrt(scale)`` rounded to a multiple of 8 (48 -> 48, 64, 96)."""
    return max(8, int(round(width * math.sqrt(scale) / 8)) * 8)


class PSCNet(TorchModel):
    """Progressive Scale Convolutional Network (see the module docstring and docs/pscnet.md).

    Parameters
    ----------
    n_dynamic, n_static, t3, td, tw
        the input sizes (:mod:`model.networks.inputs`).
    width
        channels of the per-pixel temporal embedding and of the finest scale.
    scales
        strictly decreasing downsampling factors ending at 1, each dividing the previous one,
        e.g. ``(4, 2, 1)``; ``(1,)`` is the single-scale ablation.
    depths
        Stage blocks per scale (same length as ``scales``); default one per scale.
    use_mftf
        True: one temporal encoder per frequency branch, fused by learned softmax weights
        gated by the static layers. False (ablation): one encoder over the concatenated
        weekly -> daily -> 3-hourly sequence.
    se_mode
        ``"local"`` (detail-preserving SE) or ``"global"`` (plain SE, ablation).
    se_kernel
        neighbourhood of the local SE statistics, pixels of the stage's scale.
    temporal_hidden
        channels of the first strided temporal convolution (doubling per layer up to ``width``).
    ffn_ratio
        expansion of the FFN.
    """

    name = "pscnet"
    _format_probe = "stages.0.0.seconv.body.0.weight"

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 width: int = 48, scales: Sequence[int] = (4, 2, 1),
                 depths: Sequence[int] | None = None, use_mftf: bool = True,
                 se_mode: str = "local", se_kernel: int = 7, temporal_hidden: int = 16,
                 ffn_ratio: int = 2):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        scales = [int(s) for s in scales]
        ok = (len(scales) >= 1 and scales[-1] == 1 and all(s >= 1 for s in scales)
              and all(a > b and a % b == 0 for a, b in zip(scales, scales[1:])))
        if not ok:
            raise ShapeError(f"scales must decrease to 1, each dividing the previous, got {scales}",
                             "use e.g. (4, 2, 1) or (1,)")
        if depths is None:
            depths = [1] * len(scales)
        depths = [int(d) for d in depths]
        if len(depths) != len(scales) or min(depths) < 1:
            raise ShapeError(f"depths {depths} must give >= 1 Stage block per scale {scales}",
                             "pass one positive depth per scale or leave depths=None")
        self.scales = scales
        self.use_mftf = bool(use_mftf)

        # --- temporal (per pixel): MFTF (three branches) or one concatenated branch
        steps = [t3, td, tw] if self.use_mftf else [tw + td + t3]
        nb = len(steps)
        self.width = width
        self.encoders = nn.ModuleList(
            TemporalTree(n_dynamic, t, width, temporal_hidden) for t in steps)
        # static layers -> [embedding (width) | per-pixel branch-gate logits (nb)], one 1x1 conv
        self.static_hidden = nn.Sequential(nn.Conv2d(n_static, width, 1), nn.GELU())
        self.static_out = nn.Conv2d(width, width + nb, 1)
        with torch.no_grad():           # the gate starts neutral: fusion = softmax(logits)
            self.static_out.weight[width:].zero_()
            self.static_out.bias[width:].zero_()
        self.branch_logits = nn.Parameter(torch.zeros(nb))
        self.fuse = nn.Conv2d(width, width, 1)

        # --- spatial: progressive scales, coarse to fine
        dims = [scale_width(width, s) for s in scales]
        self.skips = nn.ModuleList(nn.Conv2d(width, d, 1) if (s > 1 or d != width)
                                   else nn.Identity() for s, d in zip(scales, dims))
        self.ups = nn.ModuleList(
            nn.Conv2d(dims[i - 1], dims[i], 1) if i else nn.Identity() for i in range(len(dims)))
        self.stages = nn.ModuleList(
            nn.Sequential(*[Stage(d, se_mode, se_kernel, ffn_ratio) for _ in range(n)])
            for d, n in zip(dims, depths))
        self.head = nn.Conv2d(dims[-1], 1, 1)
        # the spatial part in NHWC (see TorchModel.activation_format); the per-pixel part stays
        # NCHW, where its time-folding reshapes are free views
        for part in (self.skips, self.ups, self.stages, self.head):
            part.to(memory_format=torch.channels_last)

    def _static(self, static: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Static embedding ``(B, width, H, W)`` and branch weights ``(B, n_branches, H, W)``."""
        z = self.static_out(self.static_hidden(static))
        logits = z[:, self.width:] + self.branch_logits.view(1, -1, 1, 1)
        return z[:, :self.width], torch.softmax(logits, dim=1)

    def branch_weights(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Per-pixel fusion weights of the frequency branches, ``(B, n_branches, H, W)``."""
        self.check(batch)
        return self._static(batch["static"])[1]

    def embed(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Temporal stage: per-pixel embedding ``(B, width, H, W)`` (no spatial mixing).

        ``gelu(fuse(sum_b w_b * e_b) + static_embedding)``, ``w`` the per-pixel branch weights.
        """
        s, wts = self._static(batch["static"].contiguous())
        if self.use_mftf:
            fused = None
            for i, (enc, key) in enumerate(zip(self.encoders, BRANCHES)):
                e = enc(batch[key])
                w = wts[:, i:i + 1]
                fused = e * w if fused is None else torch.addcmul(fused, e, w)
        else:
            seq = torch.cat([batch["xweek"], batch["xday"], batch["x3h"]], dim=1)
            fused = self.encoders[0](seq)
        return F.gelu(self.fuse(fused) + s)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.check(batch)
        f0, (h, w) = pad_to_multiple(self.embed(batch), self.scales[0])
        f0 = f0.contiguous(memory_format=self.activation_format())
        x = None
        prev = None
        for i, s in enumerate(self.scales):
            skip = self.skips[i](F.avg_pool2d(f0, s) if s > 1 else f0)
            if x is None:
                x = skip
            else:   # 1x1 at the coarse scale, then upsample (the two commute)
                x = F.interpolate(self.ups[i](x), scale_factor=prev // s, mode="bilinear",
                                  align_corners=False) + skip
            x = self.stages[i](x)
            prev = s
        return self.head(x)[..., :h, :w]
