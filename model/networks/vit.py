"""Vision Transformer baseline with an interpolated positional embedding (any H, W)."""

from __future__ import annotations

from typing import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .base import TorchModel, pad_to_multiple


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, d = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v)
        return self.proj(y.transpose(1, 2).reshape(b, n, d))


class Block(nn.Module):
    """Pre-norm transformer block: x + MHSA(LN(x)); x + MLP(LN(x))."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int):
        super().__init__()
        self.n1 = nn.LayerNorm(dim)
        self.attn = Attention(dim, heads)
        self.n2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(),
                                 nn.Linear(mlp_ratio * dim, dim))

    def forward(self, x):
        x = x + self.attn(self.n1(x))
        return x + self.mlp(self.n2(x))


class ViT(TorchModel):
    """ViT (Dosovitskiy et al. 2021) for dense regression.

    A 1x1 stem maps the flattened per-pixel features to ``stem`` channels; ``patch x patch``
    patches are embedded to ``dim``; a learned positional embedding defined on a
    ``pos_grid`` of patches (8 x 8 = a 32 x 32 training patch) is bilinearly interpolated to
    the actual patch grid, so any H, W works (inputs are replicate-padded to a multiple of
    ``patch``). After ``depth`` pre-norm blocks, each token is mapped back to its
    ``patch x patch`` pixels (linear + pixel shuffle), added to the stem (a full-resolution
    skip) and a 3x3 conv + 1x1 head give the output.
    """

    name = "vit"

    def __init__(self, n_dynamic: int, n_static: int, t3: int = 8, td: int = 7, tw: int = 4,
                 patch: int = 4, dim: int = 128, depth: int = 4, heads: int = 4,
                 mlp_ratio: int = 2, stem: int = 32, pos_grid: Sequence[int] = (8, 8)):
        super().__init__(n_dynamic, n_static, t3, td, tw)
        self.patch = patch
        self.stem = nn.Sequential(nn.Conv2d(self.dims.n_features, stem, 1), nn.GELU())
        self.embed = nn.Conv2d(stem, dim, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, dim, int(pos_grid[0]), int(pos_grid[1])))
        nn.init.normal_(self.pos, std=0.02)
        self.blocks = nn.Sequential(*[Block(dim, heads, mlp_ratio) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.unembed = nn.Linear(dim, stem * patch * patch)
        self.head = nn.Sequential(nn.Conv2d(stem, stem, 3, padding=1), nn.GELU(),
                                  nn.Conv2d(stem, 1, 1))

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self.check(batch)
        x, (h, w) = pad_to_multiple(self.flatten(batch), self.patch)
        s = self.stem(x)
        z = self.embed(s)                                            # (B, D, h/p, w/p)
        b, d, gh, gw = z.shape
        pos = self.pos
        if pos.shape[-2:] != (gh, gw):
            pos = F.interpolate(pos, size=(gh, gw), mode="bilinear", align_corners=False)
        z = (z + pos.to(z.dtype)).flatten(2).transpose(1, 2)        # (B, N, D)
        z = self.norm(self.blocks(z))
        z = self.unembed(z).transpose(1, 2).reshape(b, -1, gh, gw)  # (B, stem*p*p, gh, gw)
        y = F.pixel_shuffle(z, self.patch) + s
        return self.head(y)[..., :h, :w]
