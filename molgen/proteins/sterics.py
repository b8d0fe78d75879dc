"""Clash guidance: every prediction of a sampled chain is pushed out of its steric clashes.

With the penalty on a Cα trace y (Å)

    P(y) = Σ_{|i − j| ≥ 2} max(0, r₀ − ‖y_i − y_j‖)²,   r₀ = CLASH_RADIUS,

each denoiser call takes x̃_0 = x̂_0 − s λ ∇P(x̂_0 / s) (s: state units per Å, λ the weight),
projects it back onto the CoM-free space and returns ε̂ = (x_t − α x̂_0) / σ: a step on the
prediction, as the motif's replacement is, so every core sampler runs it unchanged and it
costs no backward pass through the network.  r₀ lies above the clash metric's 3 Å
(molgen.metrics.backbones.CLASH) so that the pushed-apart pairs clear it with a margin; bonded
neighbours (|i − j| = 1) are left to the network.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..diffusion import DenoiserWrapper

CLASH_RADIUS = 4.0
"""Å: non-adjacent Cα pairs closer than this are pushed apart."""
CLASH_WEIGHT = 0.1
"""λ (Å of displacement per Å of penalty gradient), chosen on validation chains
(benchmarks/README.md, "Clash guidance")."""


def clash_gradient(trace: Tensor, radius: float = CLASH_RADIUS) -> Tensor:
    """∇P of one Cα trace [L, 3] (Å), in closed form: Σ_j −2 max(0, r₀ − d_ij) (y_i − y_j) / d_ij."""
    diff = trace[:, None] - trace[None]
    d = diff.norm(dim=-1)
    i = torch.arange(len(trace), device=trace.device)
    overlap = (radius - d).clamp(min=0) * ((i[:, None] - i[None]).abs() >= 2)
    return (-2 * overlap / d.clamp(min=1e-6))[..., None].mul(diff).sum(1)


class StericDenoiser(DenoiserWrapper):
    """Clash guidance of weight λ (`weight`) around a denoiser of a `MoleculeSpace` of chains
    whose rows are each chain's residues in order; scale: state units per Å."""

    def __init__(self, inner, weight: float, scale: float):
        super().__init__(inner)
        self.weight, self.scale = float(weight), float(scale)

    def __call__(self, x: Tensor, t, cond=None) -> tuple[Tensor, Tensor]:
        t = self.times(t, x)
        alpha, sigma = self.scales(t, x)
        x0, _ = self.inner(x, t, cond)
        index = self.space.index(x)
        grad = torch.zeros_like(x0)
        for b in range(self.space.batch_size(x)):
            rows = torch.nonzero(index == b).squeeze(1)
            grad[rows] = clash_gradient(x0[rows] / self.scale)
        x0 = self.space.project(x0 - self.scale * self.weight * grad)
        return x0, (x - alpha * x0) / sigma
