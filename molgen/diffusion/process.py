"""The forward process q(x_t | x_0) and its posterior q(x_s | x_t, x_0), s < t."""
from __future__ import annotations

from torch import Tensor

from .schedules import NoiseSchedule
from .spaces import EUCLIDEAN


def q_sample(schedule: NoiseSchedule, x0: Tensor, t: Tensor, *, noise: Tensor,
             space=EUCLIDEAN) -> Tensor:
    """x_t = α(t) x_0 + σ(t) ε for per-sample times t [B]."""
    t = t.to(x0.dtype)
    a, s = space.expand(schedule.alpha(t), x0), space.expand(schedule.sigma(t), x0)
    return a * x0 + s * noise


def q_posterior(ab_t: float, ab_s: float, x0: Tensor, xt: Tensor) -> tuple[Tensor, float]:
    """Mean and variance of q(x_s | x_t, x_0) given ᾱ_t and ᾱ_s (s < t):

        β = 1 - ᾱ_t / ᾱ_s,
        μ̃ = sqrt(ᾱ_s) β / (1 - ᾱ_t) · x_0 + sqrt(ᾱ_t / ᾱ_s) (1 - ᾱ_s) / (1 - ᾱ_t) · x_t,
        β̃ = (1 - ᾱ_s) / (1 - ᾱ_t) · β.

    With s = t - 1 these are DDPM's μ̃_t and β̃_t.
    """
    beta = step_beta(ab_t, ab_s)
    mean = (ab_s**0.5 * beta / (1 - ab_t)) * x0 + ((ab_t / ab_s) ** 0.5 * (1 - ab_s) / (1 - ab_t)) * xt
    return mean, (1 - ab_s) / (1 - ab_t) * beta


def step_beta(ab_t: float, ab_s: float) -> float:
    """β of the transition q(x_t | x_s) = N(sqrt(1 - β) x_s, β I)."""
    return 1 - ab_t / ab_s

