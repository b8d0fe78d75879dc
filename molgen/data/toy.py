"""Gaussian-mixture data with the exact diffusion model, for tests, benchmarks and the demo
(the toy2d task, molgen.tasks.toy, trains on it).

For x_0 ~ Σ_k π_k N(μ_k, Σ_k) the noised marginal is Σ_k π_k N(α μ_k, α² Σ_k + σ² I), so the
exact score, and with it ε*(x_t, t) = -σ ∇ log p_t(x_t), is closed form.  Covariances may be
singular (data on a subspace, e.g. zero-mean point sets): for x in that subspace the formula
still gives the score within the subspace, because the orthogonal part contributes the same
factor to every component.  All arithmetic is float64.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..diffusion.schedules import NoiseSchedule


class GaussianMixture:
    def __init__(self, weights, means, covs):
        self.weights = torch.as_tensor(weights, dtype=torch.float64)
        self.weights = self.weights / self.weights.sum()
        self.means = torch.as_tensor(means, dtype=torch.float64)
        self.covs = torch.as_tensor(covs, dtype=torch.float64)
        k, d = self.means.shape
        if self.weights.shape != (k,) or self.covs.shape != (k, d, d):
            raise ValueError("weights [K], means [K, D] and covs [K, D, D] do not agree")
        evals, evecs = torch.linalg.eigh(self.covs)
        self._sqrt_cov = evecs * evals.clamp(min=0).sqrt()[:, None, :]

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    def sample(self, n: int, generator: torch.Generator | None = None,
               return_labels: bool = False):
        k = torch.multinomial(self.weights, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, dtype=torch.float64)
        x = self.means[k] + torch.einsum("nij,nj->ni", self._sqrt_cov[k], z)
        return (x, k) if return_labels else x

    def noised(self, alpha: float, sigma: float) -> "GaussianMixture":
        """The marginal of x_t = α x_0 + σ ε."""
        eye = torch.eye(self.dim, dtype=torch.float64)
        return GaussianMixture(self.weights, alpha * self.means, alpha**2 * self.covs + sigma**2 * eye)

    def log_prob(self, x: Tensor) -> Tensor:
        return torch.logsumexp(self._component_log_probs(x.double()), dim=1)

    def responsibilities(self, x: Tensor) -> Tensor:
        return torch.softmax(self._component_log_probs(x.double()), dim=1)

    def score(self, x: Tensor) -> Tensor:
        """∇ log p(x) [N, D]."""
        one = torch.ones(len(x), dtype=torch.float64)
        return self.noised_score(x, one, 0 * one)

    def noised_score(self, x: Tensor, alpha: Tensor, sigma: Tensor) -> Tensor:
        """∇ log p_t(x) [N, D] of the marginal at per-sample scales α, σ ([N], or [1] when all
        samples share them): Σ_k r_k(x) · (-C_k⁻¹ (x - α μ_k)) with C_k = α² Σ_k + σ² I."""
        x = x.double()
        eye = torch.eye(self.dim, dtype=torch.float64)
        cov = alpha[:, None, None, None] ** 2 * self.covs + sigma[:, None, None, None] ** 2 * eye
        prec = torch.linalg.inv(cov)  # [N, K, D, D]
        diff = x[:, None, :] - alpha[:, None, None] * self.means  # [N, K, D]
        sol = (prec @ diff[..., None])[..., 0]
        log_r = self.weights.log() - 0.5 * ((diff * sol).sum(-1) + torch.linalg.slogdet(cov).logabsdet)
        return -(torch.softmax(log_r, dim=1)[..., None] * sol).sum(1)

    def _component_log_probs(self, x: Tensor) -> Tensor:
        diff = x[:, None, :] - self.means[None]
        quad = torch.einsum("nki,kij,nkj->nk", diff, torch.linalg.inv(self.covs), diff)
        logdet = torch.linalg.slogdet(self.covs).logabsdet
        return self.weights.log() - 0.5 * (quad + logdet + self.dim * math.log(2 * math.pi))


class ExactEpsModel(nn.Module):
    """ε*(x_t, t) = -σ(t) ∇ log p_t(x_t) for Gaussian-mixture data: the model a perfectly
    trained ε-network would be.  Accepts x of shape [B, ...] whose trailing dims flatten to D."""

    def __init__(self, mixture: GaussianMixture, schedule: NoiseSchedule):
        super().__init__()
        self.mixture, self.schedule = mixture, schedule

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = t.double()
        if bool((t == t[0]).all()):  # sampling: one marginal for the whole batch
            t = t[:1]
        sigma = self.schedule.sigma(t)
        score = self.mixture.noised_score(x.reshape(x.shape[0], -1), self.schedule.alpha(t), sigma)
        return (-sigma[:, None] * score).to(x.dtype).reshape(x.shape)


def mixture_2d(kind: str = "ring") -> GaussianMixture:
    """Standard 2-D test mixtures: 'ring' (8 isotropic components on a circle of radius 2,
    σ = 0.2, weights unequal so that weight errors are visible) or 'three' (3 anisotropic)."""
    if kind == "ring":
        angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
        means = 2.0 * torch.stack([angles.cos(), angles.sin()], 1)
        covs = 0.04 * torch.eye(2, dtype=torch.float64).expand(8, 2, 2)
        weights = torch.tensor([1, 2, 1, 2, 1, 2, 1, 2], dtype=torch.float64)
        return GaussianMixture(weights, means, covs)
    if kind == "three":
        means = [[-1.5, 0.0], [1.0, 1.0], [1.0, -1.2]]
        covs = [[[0.20, 0.10], [0.10, 0.15]], [[0.05, 0.0], [0.0, 0.30]], [[0.10, -0.05], [-0.05, 0.10]]]
        return GaussianMixture([0.5, 0.3, 0.2], means, covs)
    raise ValueError(f"unknown toy mixture {kind!r}; choose 'ring' or 'three'")
