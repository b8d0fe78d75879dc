"""Distances between sample sets, for judging samplers against a known distribution, and the
superposition of point sets (`kabsch`)."""
from __future__ import annotations

import torch
from torch import Tensor


def mmd_rbf(x: Tensor, y: Tensor, bandwidths=(0.1, 0.2, 0.5, 1.0, 2.0)) -> float:
    """Unbiased squared maximum mean discrepancy with a sum of Gaussian kernels
    k(a, b) = Σ_h exp(-‖a - b‖² / (2h²)) (Gretton et al. 2012)."""
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()

    def kernel_mean(a, b, same):
        d2 = torch.cdist(a, b).pow(2)
        k = sum(torch.exp(-d2 / (2 * h * h)) for h in bandwidths)
        if same:
            n = len(a)
            return (k.sum() - k.diagonal().sum()) / (n * (n - 1))
        return k.mean()

    return float(kernel_mean(x, x, True) + kernel_mean(y, y, True) - 2 * kernel_mean(x, y, False))


def sliced_wasserstein(x: Tensor, y: Tensor, projections: int = 256,
                       generator: torch.Generator | None = None) -> float:
    """Sliced 1-Wasserstein distance: the mean over random directions of the 1-D W1 distance
    between the projected samples (equal sample sizes; quantiles matched by sorting)."""
    x, y = x.reshape(len(x), -1).double(), y.reshape(len(y), -1).double()
    if len(x) != len(y):
        raise ValueError("sliced_wasserstein needs equally many samples in x and y")
    dirs = torch.randn(x.shape[1], projections, generator=generator, dtype=torch.float64)
    dirs = dirs / dirs.norm(dim=0, keepdim=True)
    px, py = (x @ dirs).sort(0).values, (y @ dirs).sort(0).values
    return float((px - py).abs().mean())


def kabsch(source: Tensor, target: Tensor) -> Tensor:
    """The proper rotation R [3, 3] minimising Σ |R s_i − t_i|² for centred points [n, 3]."""
    u, _, vt = torch.linalg.svd(target.double().T @ source.double())
    d = torch.sign(torch.linalg.det(u @ vt))
    return (u @ torch.diag(torch.stack([torch.ones_like(d), torch.ones_like(d), d])) @ vt).to(source.dtype)
