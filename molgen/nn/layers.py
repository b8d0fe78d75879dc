"""Small networks shared by tasks: the sinusoidal time embedding and an MLP denoiser."""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def sinusoidal_embedding(t: Tensor, dim: int, max_period: float = 10_000.0) -> Tensor:
    """Transformer-style embedding of times t [B] in [0, 1] (scaled by 1000 so that the
    frequencies match those of DDPM's integer timesteps) → [B, dim]."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = 1000.0 * t.float()[:, None] * freqs[None]
    emb = torch.cat([args.cos(), args.sin()], dim=-1)
    return nn.functional.pad(emb, (0, dim % 2))


def mlp(*widths: int) -> nn.Sequential:
    """Linear layers of the given widths with SiLU between them (none after the last)."""
    layers = []
    for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
        layers += [nn.Linear(a, b)] + ([nn.SiLU()] if i < len(widths) - 2 else [])
    return nn.Sequential(*layers)


class TimeClassEmbedding(nn.Module):
    """The conditioning vector of a denoiser: the sinusoidal embedding of t (freq_dim wide)
    through a 2-layer MLP, plus, with num_classes, a learned embedding of the class, where
    index num_classes is the null class of classifier-free guidance."""

    def __init__(self, freq_dim: int, dim: int, num_classes: int = 0):
        super().__init__()
        self.freq_dim = freq_dim
        self.time = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(num_classes + 1, dim) if num_classes else None

    def forward(self, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.time(sinusoidal_embedding(t, self.freq_dim))
        if cond is None:
            return emb
        if self.label is None:
            raise ValueError("this model was built without a condition (num_classes=0)")
        return emb + self.label(cond)


class MLPDenoiser(nn.Module):
    """MLP on flat vectors [B, D] with a time embedding added to every hidden layer and an
    optional class condition (index `num_classes` is the null class for guidance)."""

    def __init__(self, dim: int, hidden: int = 128, layers: int = 3, num_classes: int = 0):
        super().__init__()
        self.embed = TimeClassEmbedding(hidden, hidden, num_classes)
        self.inp = nn.Linear(dim, hidden)
        self.blocks = nn.ModuleList(nn.Sequential(nn.SiLU(), nn.Linear(hidden, hidden))
                                    for _ in range(layers))
        self.out = nn.Sequential(nn.SiLU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, t: Tensor, cond: Tensor | None = None) -> Tensor:
        emb = self.embed(t, cond)
        h = self.inp(x.float())
        for block in self.blocks:
            h = h + block(h + emb)
        return self.out(h).to(x.dtype)
