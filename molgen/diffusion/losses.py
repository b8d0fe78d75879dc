"""Training losses: regression onto ε, x_0 or v with a per-time weighting.

Every loss is a weighted x_0-error in disguise.  With δ = x̂_0 - x_0,
    ‖ε̂ - ε‖² = SNR · ‖δ‖²,   ‖v̂ - v‖² = (SNR + 1) · ‖δ‖²,
so a weighting is written as a weight w(t) on ‖δ‖² and divided by the target's own factor:
- 'none': the plain MSE of the target (L_simple for target 'eps', Ho et al. 2020);
- 'min_snr': w = min(SNR, γ) (Hang et al. 2023; on ε-MSE this is min(SNR, γ) / SNR);
- 'vlb': the DDPM bound term L_{t-1} = E‖μ̃ - μ_θ‖² / (2σ_t²) with reverse variance
  σ_t² = β̃_t (β_1 at t = 1), i.e. w = ᾱ_{t-1} β_t² / (2σ_t² (1 - ᾱ_t)²); multiplied by T so
  that its mean over uniform t estimates Σ_t L_{t-1}, per dimension, in nats.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from .denoiser import from_x0_eps
from .process import q_sample
from .schedules import NoiseSchedule

TARGETS = ("eps", "x0", "v")
WEIGHTINGS = ("none", "min_snr", "vlb")


def target_x0_factor(schedule: NoiseSchedule, t: Tensor, target: str) -> Tensor:
    """Factor λ with ‖target error‖² = λ(t) ‖x_0 error‖²."""
    snr = schedule.snr(t)
    return {"eps": snr, "x0": torch.ones_like(snr), "v": snr + 1}[target]


def vlb_x0_weight(schedule: NoiseSchedule, t: Tensor) -> Tensor:
    """Weight of ‖x̂_0 - x_0‖² in the DDPM bound term at t (s = t - 1/T)."""
    t = t.double()
    s = (t - 1.0 / schedule.T).clamp(min=0)
    ab_t, ab_s = schedule.alpha_bar(t), schedule.alpha_bar(s)
    beta = 1 - ab_t / ab_s
    var = torch.where(s > 0, (1 - ab_s) / (1 - ab_t) * beta, beta)
    return ab_s * beta**2 / (2 * var * (1 - ab_t) ** 2)


def loss_weight(schedule: NoiseSchedule, t: Tensor, *, target: str, weighting: str,
                gamma: float = 5.0) -> Tensor:
    """Per-sample weight on the target's MSE."""
    if target not in TARGETS:
        raise ValueError(f"unknown loss target {target!r}; choose one of {TARGETS}")
    if weighting == "none":
        return torch.ones_like(t)
    factor = target_x0_factor(schedule, t.double(), target)
    if weighting == "min_snr":
        w = schedule.snr(t.double()).clamp(max=gamma)
    elif weighting == "vlb":
        w = schedule.T * vlb_x0_weight(schedule, t)
    else:
        raise ValueError(f"unknown loss weighting {weighting!r}; choose one of {WEIGHTINGS}")
    return (w / factor).to(t.dtype)


def diffusion_loss(denoiser, x0: Tensor, *, cond=None, target: str = "eps",
                   weighting: str = "none", gamma: float = 5.0, t: Tensor | None = None,
                   noise: Tensor | None = None, generator: torch.Generator | None = None,
                   auxiliary: Callable | None = None) -> Tensor:
    """Per-sample loss [B]: the weighted mean squared error of the target over the dimensions
    of the space, at times t (drawn by the schedule if not given) and noise ε, plus
    auxiliary(x̂_0, x_0, t) [B] when given (a task's own terms on the prediction, such as
    distances between atoms)."""
    schedule, space = denoiser.schedule, denoiser.space
    if t is None:
        t = schedule.sample_t(space.batch_size(x0), generator, x0.device)
    t = t.to(x0.dtype)
    if noise is None:
        noise = space.noise(x0, generator)
    xt = q_sample(schedule, x0, t, noise=noise, space=space)
    alpha, sigma = denoiser.scales(t, x0)
    x0_hat, eps_hat = denoiser(xt, t, cond)
    pred = from_x0_eps(x0_hat, eps_hat, target, alpha=alpha, sigma=sigma)
    true = from_x0_eps(x0, noise, target, alpha=alpha, sigma=sigma)
    mse = space.sum((pred - true) ** 2) / space.dim(x0)
    loss = loss_weight(schedule, t, target=target, weighting=weighting, gamma=gamma) * mse
    return loss if auxiliary is None else loss + auxiliary(x0_hat, x0, t)
