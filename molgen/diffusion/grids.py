"""Time grids: where a sampler evaluates the denoiser, t_N > ... > t_1 > t_0 = 0 (float64).

Every sampler ends with the denoising step from the smallest nonzero time t_1 to t = 0,
x_0 = sqrt(ᾱ_0) x̂_0(x_{t_1}) + sqrt(1 - ᾱ_0) ε̂ (= x̂_0 when ᾱ_0 = 1).  That jump returns data
only when t_1 is small: x̂_0 = E[x_0 | x_{t_1}] shrinks every feature finer than σ(t_1)
toward its mean.  So where a grid ends matters as much as how it spaces its steps:

* 'leading' | 'trailing' | 'linspace' | 'logsnr' without t_min and sigma_max: points i/T of the schedule's
  training grid (`NoiseSchedule.timesteps`).  'trailing' starts at t = 1 and ends at
  t_1 ≈ 1/steps (σ ≈ 0.3 at 10 steps on the linear schedule); 'logsnr' ends at 1/T.
* 'logsnr' with t_min or sigma_max: times uniform in λ = log SNR from the start to t_min (DPM-Solver's
  grid, Lu et al. 2022, t_min = 1e-3), the exact times rather than the nearest grid points,
  as DPM-Solver queries discrete-time models (their network sees fractional times).  With
  sigma_max the ramp starts at σ/α = sigma_max instead of at t = 1: the cosine schedule's
  σ/α(1) ≈ 2.0e4 puts λ(1) ≈ -19.8, and a uniform ramp from there spends over a third of its steps
  on states that are pure noise (DPM-Solver truncates that schedule at t = 0.9946, σ/α ≈ 119;
  EDM starts at σ = 80).
* 'karras': σ_i = (σ_max^{1/ρ} + i/(N-1) (σ_min^{1/ρ} - σ_max^{1/ρ}))^ρ (Karras et al. 2022,
  ρ = 7), in the σ of their variance-exploding form, σ/α = sqrt((1 - ᾱ)/ᾱ) = exp(-λ/2),
  mapped to t through the schedule.  σ_max defaults to σ/α at the start (the state x_T
  lives there), σ_min to σ/α at t_min.

t_min defaults to the schedule's first trained time (`NoiseSchedule.first_time`: 1/T, or the
continuous VP SDE's t_min = 1e-3) and may not go below it: the model never saw smaller times.

Measured with the exact model of the 2-D ring mixture (benchmarks/core_samplers.py --grids):
on the linear schedule 'logsnr' to 1e-3 with DPM-Solver++(3M) is the best of all rows at 10
and 20 NFE; 'trailing' wins for most first-order samplers below 20 NFE; 'karras' from
σ/α(1) = 157 spends most of a few steps at high noise and is best nowhere below 50 NFE.  On
the cosine schedule 'logsnr' from t = 1 is 4-9x worse than 'trailing' at 10 NFE.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .schedules import SPACINGS, NoiseSchedule

GRIDS = SPACINGS + ("karras",)
ENDING_GRIDS = ("logsnr", "karras")  # the grids that take t_min


def check_grid(spacing: str, *, t_min=None, sigma_min=None, sigma_max=None, rho=7.0,
               t_max: float = 1.0) -> None:
    """The checks that need no schedule, each a one-line ValueError."""
    if spacing not in GRIDS:
        raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {GRIDS}")
    if t_min is not None:
        if spacing not in ENDING_GRIDS:
            raise ValueError(f"t_min applies to the {' and '.join(ENDING_GRIDS)} grids, not {spacing!r}")
        if not 0 < t_min < t_max:
            raise ValueError(f"sampler t_min must be in (0, {t_max:g}) (the start), got {t_min}")
    given = {k: v for k, v in (("sigma_min", sigma_min), ("sigma_max", sigma_max)) if v is not None}
    if sigma_min is not None and spacing != "karras":
        raise ValueError(f"sigma_min applies to the karras grid only, not {spacing!r}")
    if sigma_max is not None and spacing not in ENDING_GRIDS:
        raise ValueError(f"sigma_max applies to the {' and '.join(ENDING_GRIDS)} grids, not {spacing!r}")
    for key, value in given.items():
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"sampler {key} must be a finite number > 0, got {value}")
    if sigma_min is not None and sigma_max is not None and sigma_min >= sigma_max:
        raise ValueError(f"sampler sigma_min must be < sigma_max, got {sigma_min} >= {sigma_max}")
    if sigma_max is not None and t_max < 1:
        raise ValueError(f"an SDEdit start < 1 sets where the {spacing} grid begins: leave sigma_max unset")
    if sigma_min is not None and t_min is not None:
        raise ValueError("the karras grid ends at sigma_min or at t_min: give one of them")
    if not (math.isfinite(rho) and rho > 0):
        raise ValueError(f"sampler rho must be a finite number > 0, got {rho}")
    if rho != 7.0 and spacing != "karras":
        raise ValueError(f"rho applies to the karras grid only, not {spacing!r}")


def make_grid(schedule: NoiseSchedule, steps: int, spacing: str = "trailing", *, t_min=None,
              sigma_min=None, sigma_max=None, rho: float = 7.0, t_max: float = 1.0) -> Tensor:
    """The decreasing times [t_steps, ..., t_1, 0] (float64) of a grid that starts at t_max
    (1, or an SDEdit start); see the module's docstring for the grids."""
    check_grid(spacing, t_min=t_min, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, t_max=t_max)
    if steps < 1:
        raise ValueError(f"sampler steps must be >= 1, got {steps}")
    if spacing not in ENDING_GRIDS or (spacing == "logsnr" and t_min is None and sigma_max is None):
        return schedule.timesteps(steps, spacing) * t_max  # on the training grid, as always
    first = schedule.first_time()
    if t_min is not None and t_min < first * (1 - 1e-12):
        raise ValueError(f"sampler t_min = {t_min:g} is below the schedule's first trained time {first:g}")
    lam_hi = float(schedule.log_snr(torch.tensor(t_min if t_min is not None else first, dtype=torch.float64)))
    lam_lo = float(schedule.log_snr(torch.tensor(t_max, dtype=torch.float64)))
    lam_lo, lam_hi = _sigma_range(lam_lo, lam_hi, sigma_min, sigma_max, first)
    ramp = torch.linspace(0, 1, steps, dtype=torch.float64) if steps > 1 else torch.zeros(1, dtype=torch.float64)
    if spacing == "logsnr":
        lam = lam_lo + ramp * (lam_hi - lam_lo)
    else:  # σ = exp(-λ/2) is spaced uniformly in σ^{1/ρ}
        s_max, s_min = math.exp(-lam_lo / 2) ** (1 / rho), math.exp(-lam_hi / 2) ** (1 / rho)
        lam = -2 * rho * torch.log(s_max + ramp * (s_min - s_max))
    ts = schedule.time_at_log_snr(lam)
    if sigma_max is None:
        ts[0] = t_max  # exactly where x lives, not the bisection's float64 neighbour
    return torch.cat([ts, ts.new_zeros(1)])


def _sigma_range(lam_lo: float, lam_hi: float, sigma_min, sigma_max, first: float):
    """λ at σ_max and σ_min: the defaults, or the given σ's inside the trained range."""
    if sigma_max is not None:
        top = math.exp(-lam_lo / 2)
        if sigma_max > top * (1 + 1e-12):
            raise ValueError(f"sampler sigma_max = {sigma_max:g} is above the schedule's σ/α = {top:.4g} "
                             "at the start")
        lam_lo = -2 * math.log(sigma_max)
    if sigma_min is not None:
        bottom = math.exp(-lam_hi / 2)
        if sigma_min < bottom * (1 - 1e-12):
            raise ValueError(f"sampler sigma_min = {sigma_min:g} is below the schedule's σ/α = {bottom:.4g} "
                             f"at its first trained time {first:g}")
        lam_hi = -2 * math.log(sigma_min)
    if lam_lo >= lam_hi:
        raise ValueError("the grid's sigma_min and t_min must lie below its sigma_max and the start's σ/α")
    return lam_lo, lam_hi
