"""Model parameterizations and the denoiser adapter every sampler calls.

A network predicts one of
    ε      the noise,                      x_t = α x_0 + σ ε
    x0     the clean data,
    v      the velocity v = α ε - σ x_0    (Salimans & Ho 2022),
    score  ∇ log p_t(x_t) = -ε / σ         (Tweedie: E[x_0 | x_t] = (x_t + σ² score) / α),
with α² + σ² = 1.  `Denoiser` wraps a network with its schedule, parameterization and space
and returns (x̂_0, ε̂) for any of them, so samplers never branch on the parameterization.

Guidance wrappers have the same call signature and compose:
`CFGDenoiser` (classifier-free) and `ClassifierGuidedDenoiser`.
"""
from __future__ import annotations

import functools
from typing import Callable

import torch
from torch import Tensor

from .schedules import NoiseSchedule
from .spaces import EUCLIDEAN

PREDICTIONS = ("eps", "x0", "v", "score")


def to_x0_eps(pred: Tensor, kind: str, x: Tensor, *, alpha, sigma) -> tuple[Tensor, Tensor]:
    """(x̂_0, ε̂) from a prediction of the given kind at x_t = x."""
    if kind == "eps":
        return (x - sigma * pred) / alpha, pred
    if kind == "x0":
        return pred, (x - alpha * pred) / sigma
    if kind == "v":
        return alpha * x - sigma * pred, sigma * x + alpha * pred
    if kind == "score":
        return (x + sigma**2 * pred) / alpha, -sigma * pred
    raise ValueError(f"unknown parameterization {kind!r}; choose one of {PREDICTIONS}")


def from_x0_eps(x0: Tensor, eps: Tensor, kind: str, *, alpha, sigma) -> Tensor:
    """The prediction of the given kind that corresponds to (x̂_0, ε̂)."""
    if kind == "eps":
        return eps
    if kind == "x0":
        return x0
    if kind == "v":
        return alpha * eps - sigma * x0
    if kind == "score":
        return -eps / sigma
    raise ValueError(f"unknown parameterization {kind!r}; choose one of {PREDICTIONS}")


def convert(pred: Tensor, src: str, dst: str, *, x: Tensor, alpha, sigma) -> Tensor:
    """Convert a prediction between parameterizations at x_t = x with scales α, σ."""
    return from_x0_eps(*to_x0_eps(pred, src, x, alpha=alpha, sigma=sigma), dst, alpha=alpha,
                       sigma=sigma)


class Denoiser:
    """Network + schedule + parameterization + space → (x̂_0, ε̂).

    The network is called as `model(x, t)` or, when a condition is given, `model(x, t, cond)`,
    with per-sample times t of shape [B] in [0, 1].  Its output is projected onto the space.
    """

    def __init__(self, model: Callable, schedule: NoiseSchedule, prediction: str = "eps",
                 space=EUCLIDEAN):
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown parameterization {prediction!r}; choose one of {PREDICTIONS}")
        self.model, self.schedule, self.prediction, self.space = model, schedule, prediction, space

    def times(self, t, x: Tensor) -> Tensor:
        """Per-sample times [B] from a scalar or [B] tensor."""
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
        return t.expand(self.space.batch_size(x)) if t.ndim == 0 else t

    def scales(self, t: Tensor, x: Tensor) -> tuple[Tensor, Tensor]:
        """α(t), σ(t) for per-sample t [B], shaped to broadcast against x."""
        return (self.space.expand(self.schedule.alpha(t), x),
                self.space.expand(self.schedule.sigma(t), x))

    def __call__(self, x: Tensor, t, cond=None) -> tuple[Tensor, Tensor]:
        t = self.times(t, x)
        out = self.model(x, t) if cond is None else self.model(x, t, cond)
        alpha, sigma = self.scales(t, x)
        return to_x0_eps(self.space.project(out), self.prediction, x, alpha=alpha, sigma=sigma)


def graph_denoiser(net, schedule: NoiseSchedule, space, prediction: str = "eps") -> Denoiser:
    """The core's denoiser for one batch of a GraphSpace (molecules, conformers' torsions):
    the network, called as net(x, t[, cond], space=...), bound to the batch's space: the core
    calls model(x, t[, cond]), and a graph network reads its graph index from the space."""
    return Denoiser(functools.partial(net, space=space), schedule, prediction, space)


class DenoiserWrapper:
    """A denoiser around another one (guidance, counting, inpainting): exposes its schedule,
    space and scales; a subclass defines __call__(x, t, cond)."""

    def __init__(self, inner):
        self.inner = inner
        self.schedule, self.space = inner.schedule, inner.space

    def times(self, t, x):
        return self.inner.times(t, x)

    def scales(self, t, x):
        return self.inner.scales(t, x)


class CFGDenoiser(DenoiserWrapper):
    """Classifier-free guidance (Ho & Salimans 2022), in the convention

        ε̃ = (1 + w) ε(x, c) − w ε(x, ∅),

    so w = 0 is the plain conditional model and w > 0 guides.  (Tools that write the scale as
    s = 1 + w, where 1 means no guidance, use s = w + 1.)  The same combination is applied to
    x̂_0, which keeps (x̂_0, ε̂) consistent because the conversion is affine.  Conditional and
    unconditional passes run as one batched forward on the space's two-fold repeat of the
    state (per-sample t and conditions are dense [B, ...] and simply concatenated).
    """

    def __init__(self, inner, scale: float, null_cond):
        super().__init__(inner)
        self.scale, self.null_cond = float(scale), null_cond

    def __call__(self, x: Tensor, t, cond=None) -> tuple[Tensor, Tensor]:
        if cond is None:
            raise ValueError("classifier-free guidance needs a condition")
        if self.scale == 0:
            return self.inner(x, t, cond)
        t = self.times(t, x)
        null = torch.as_tensor(self.null_cond, dtype=cond.dtype, device=cond.device).expand_as(cond)
        x0, eps = self.inner(self.space.repeat(x, 2), torch.cat([t, t]), torch.cat([cond, null]))
        w = self.scale
        (x0_c, x0_u), (eps_c, eps_u) = self.space.split(x0, 2), self.space.split(eps, 2)
        return (1 + w) * x0_c - w * x0_u, (1 + w) * eps_c - w * eps_u


class ClassifierGuidedDenoiser(DenoiserWrapper):
    """Classifier guidance (Dhariwal & Nichol 2021): ε̃ = ε − w σ_t ∇_x log p(c | x_t).

    `log_prob(x, t)` returns the differentiable log-probability [B] of the wanted condition.
    """

    def __init__(self, inner, log_prob: Callable[[Tensor, Tensor], Tensor], scale: float):
        super().__init__(inner)
        self.log_prob, self.scale = log_prob, float(scale)

    def __call__(self, x: Tensor, t, cond=None) -> tuple[Tensor, Tensor]:
        t = self.times(t, x)
        _, eps = self.inner(x, t, cond)
        with torch.enable_grad():
            xg = x.detach().requires_grad_(True)
            grad, = torch.autograd.grad(self.log_prob(xg, t).sum(), xg)
        alpha, sigma = self.scales(t, x)
        eps = eps - self.scale * sigma * self.space.project(grad)
        return to_x0_eps(eps, "eps", x, alpha=alpha, sigma=sigma)


def drop_condition(cond: Tensor, null_cond, p: float = 0.1,
                   generator: torch.Generator | None = None) -> Tensor:
    """Training side of classifier-free guidance: replace each sample's condition by the null
    condition with probability p, so one network learns ε(x, c) and ε(x, ∅)."""
    drop = torch.rand(cond.shape[0], generator=generator, device=cond.device) < p
    null = torch.as_tensor(null_cond, dtype=cond.dtype, device=cond.device).expand_as(cond)
    return torch.where(drop.reshape(-1, *([1] * (cond.ndim - 1))), null, cond)


class CountingDenoiser(DenoiserWrapper):
    """Wraps a denoiser and counts its calls in `nfe` (one call = one NFE for the whole batch;
    a guided call, conditional and null in one batch, counts once: double it for CFG)."""

    def __init__(self, inner):
        super().__init__(inner)
        self.nfe = 0

    def __call__(self, x, t, cond=None):
        self.nfe += 1
        return self.inner(x, t, cond)
