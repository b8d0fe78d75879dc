"""The image denoiser: a U-Net as in DDPM (Ho et al. 2020) with the changes of improved DDPM
(Nichol & Dhariwal 2021).

- ResNet blocks: GroupNorm → SiLU → 3×3 conv, twice, with a 1×1 conv on the skip when the
  width changes.  The time (and class) embedding enters every block as FiLM on the second
  norm, h ← norm(h)·(1 + scale) + shift (improved DDPM's "scale-shift norm").
- GroupNorm uses 32 groups as in DDPM where the width allows it, else gcd(32, channels)
  groups: min(32, channels) for the power-of-two widths of small test models, which would
  otherwise fail on 32 groups of 16 channels.
- Multi-head self-attention at every level whose feature map is at most
  `attention_resolution` pixels wide (improved DDPM: 16 and 8), and in the middle block
  under the same rule; 0 turns attention off.
- A level halves the resolution with a stride-2 conv; the way up doubles it with nearest
  upsampling and a conv, to the size of the matching skip, so odd sizes (MNIST's 7×7) work.
- The last conv of each block, each attention projection and the output conv start at zero:
  every block starts as the identity and the network's first output is 0, a neutral guess
  for ε, x_0 or v alike (what the output means is the config's `prediction`).
- Optional class conditioning: an embedding of num_classes + 1 entries added to the time
  embedding, the last one (index num_classes) being the null class of classifier-free
  guidance (molgen.diffusion.drop_condition, CFGDenoiser).
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from .layers import TimeClassEmbedding


def group_norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(32, channels), channels)


def zero(module: nn.Module) -> nn.Module:
    """The module with all parameters zeroed (see the module docstring)."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, emb_dim: int, dropout: float):
        super().__init__()
        self.norm1, self.conv1 = group_norm(cin), nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * cout)
        self.norm2, self.dropout = group_norm(cout), nn.Dropout(dropout)
        self.conv2 = zero(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        return self.skip(x) + self.conv2(self.dropout(F.silu(h)))


class Attention(nn.Module):
    """Residual multi-head self-attention over the pixels of a feature map."""

    def __init__(self, channels: int, heads: int):
        super().__init__()
        if channels % heads:
            raise ValueError(f"attention: {channels} channels do not split into {heads} heads")
        self.heads, self.norm = heads, group_norm(channels)
        self.qkv = nn.Linear(channels, 3 * channels)
        self.proj = zero(nn.Linear(channels, channels))

    def forward(self, x: Tensor) -> Tensor:
        b, c, hgt, wid = x.shape
        tokens = self.norm(x).flatten(2).transpose(1, 2)  # [B, HW, C]
        q, k, v = self.qkv(tokens).reshape(b, hgt * wid, 3, self.heads, c // self.heads) \
                                  .permute(2, 0, 3, 1, 4)  # 3 × [B, heads, HW, C / heads]
        out = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, hgt * wid, c)
        return x + self.proj(out).transpose(1, 2).reshape(b, c, hgt, wid)


class Block(nn.Module):
    """A ResBlock, followed by attention where the resolution asks for it."""

    def __init__(self, cin: int, cout: int, emb_dim: int, *, dropout: float, heads: int,
                 attention: bool):
        super().__init__()
        self.res = ResBlock(cin, cout, emb_dim, dropout)
        self.attn = Attention(cout, heads) if attention else None

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.res(x, emb)
        return h if self.attn is None else self.attn(h)


class Downsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x: Tensor, size) -> Tensor:
        return self.conv(F.interpolate(x, size=tuple(size), mode="nearest"))


class UNet(nn.Module):
    """ε/x_0/v-network on images [B, C, H, W] at times t [B] in [0, 1], optionally given
    class labels [B] (num_classes = null class); the output has the input's shape.

    channels: width of the first level; level i has channels · channel_mult[i].  blocks:
    ResBlocks per level on the way down (one more on the way up, which also takes the
    input of the level's downsampling, as in DDPM).  image_size: the input's width, which
    decides where attention goes (the network itself accepts any size).
    """

    def __init__(self, in_channels: int, image_size: int, *, channels: int = 64,
                 channel_mult: Sequence[int] = (1, 2, 2), blocks: int = 2,
                 attention_resolution: int = 16, heads: int = 4, dropout: float = 0.1,
                 num_classes: int = 0):
        super().__init__()
        emb_dim = 4 * channels
        self.embed = TimeClassEmbedding(channels, emb_dim, num_classes)
        self.inp = nn.Conv2d(in_channels, channels, 3, padding=1)

        def block(cin, cout, res):
            return Block(cin, cout, emb_dim, dropout=dropout, heads=heads,
                         attention=0 < res <= attention_resolution)

        ch, res, skips = channels, image_size, [channels]
        self.down = nn.ModuleList()
        for level, mult in enumerate(channel_mult):
            for _ in range(blocks):
                self.down.append(block(ch, channels * mult, res))
                ch = channels * mult
                skips.append(ch)
            if level < len(channel_mult) - 1:
                self.down.append(Downsample(ch))
                skips.append(ch)
                res = (res + 1) // 2
        self.mid = nn.ModuleList([block(ch, ch, res), Block(ch, ch, emb_dim, dropout=dropout, heads=heads,
                                                             attention=False)])
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mult))):
            for _ in range(blocks + 1):
                self.up.append(block(ch + skips.pop(), channels * mult, res))
                ch = channels * mult
            if level > 0:
                self.up.append(Upsample(ch))
                res *= 2
        self.out = nn.Sequential(group_norm(ch), nn.SiLU(),
                                 zero(nn.Conv2d(ch, in_channels, 3, padding=1)))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.embed(t, cond)
        h = self.inp(x.float())
        hs = [h]
        for layer in self.down:
            h = layer(h, emb)
            hs.append(h)
        for layer in self.mid:
            h = layer(h, emb)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h, hs[-1].shape[-2:])
            else:
                h = layer(torch.cat([h, hs.pop()], dim=1), emb)
        return self.out(h).to(x.dtype)
