"""Noise schedules of the variance-preserving (VP) diffusion.

Every schedule is a function of continuous time t in [0, 1] through log ᾱ(t), from which
α(t) = sqrt(ᾱ), σ(t) = sqrt(1 - ᾱ), SNR = ᾱ / (1 - ᾱ) and the VP-SDE rate
β(t) = -d log ᾱ / dt follow.  x_t = α(t) x_0 + σ(t) ε.

Discrete schedules (DDPM's β_1..β_T) live on the grid t_i = i / T: ᾱ(i / T) is exactly the
product ∏_{j≤i} (1 - β_j); between grid points log ᾱ is a monotone cubic interpolant, so that
β(t) is continuous (≈ T β_i near i / T).  The continuous VP SDE also carries a grid (T = 1000,
as in Song et al. 2021) on which samplers place their steps; its ᾱ(t) is closed form.

All arithmetic is float64; results are cast to the dtype of the query.
"""
from __future__ import annotations

import inspect
import math

import numpy as np
import torch
from torch import Tensor

SPACINGS = ("leading", "trailing", "linspace", "logsnr")


class NoiseSchedule:
    """Base class: subclasses define `log_alpha_bar(t)` and `beta(t)` for t in [0, 1]."""

    T: int  # steps of the discrete grid t_i = i / T

    # -- primitives -------------------------------------------------------------------------
    def log_alpha_bar(self, t: Tensor) -> Tensor:
        raise NotImplementedError

    def beta(self, t: Tensor) -> Tensor:
        """Continuous rate β(t) = -d log ᾱ(t) / dt of the VP SDE dx = -½βx dt + √β dw."""
        raise NotImplementedError

    # -- derived quantities -----------------------------------------------------------------
    def alpha_bar(self, t: Tensor) -> Tensor:
        return _cast(self.log_alpha_bar(_f64(t)).exp(), t)

    def alpha(self, t: Tensor) -> Tensor:
        """Signal scale α(t) = sqrt(ᾱ(t))."""
        return _cast((0.5 * self.log_alpha_bar(_f64(t))).exp(), t)

    def sigma(self, t: Tensor) -> Tensor:
        """Noise scale σ(t) = sqrt(1 - ᾱ(t)), accurate near t = 0 through expm1."""
        return _cast((-torch.expm1(self.log_alpha_bar(_f64(t)))).sqrt(), t)

    def snr(self, t: Tensor) -> Tensor:
        return _cast(self.log_snr(_f64(t)).exp(), t)

    def log_snr(self, t: Tensor) -> Tensor:
        """log SNR = log ᾱ - log(1 - ᾱ)."""
        la = self.log_alpha_bar(_f64(t))
        return _cast(la - torch.log(-torch.expm1(la)), t)

    def first_time(self) -> float:
        """The smallest time the model is trained at (the first grid step 1/T): where a
        grid may end before its final denoising step to t = 0."""
        return 1.0 / self.T

    def time_at_log_snr(self, lam: Tensor) -> Tensor:
        """The inverse of `log_snr`: t in [0, 1] with log SNR(t) = lam (float64).  Bisection,
        since log SNR decreases strictly in t for every schedule here and has no closed-form
        inverse for the interpolated discrete ones; 64 halvings reach float64 resolution."""
        lam = _f64(lam)
        lo, hi = torch.zeros_like(lam), torch.ones_like(lam)
        for _ in range(64):
            mid = 0.5 * (lo + hi)
            later = self.log_snr(mid) > lam  # still too much signal at mid: t is later
            lo, hi = torch.where(later, mid, lo), torch.where(later, hi, mid)
        return 0.5 * (lo + hi)

    def betas(self) -> Tensor:
        """Discrete β_1..β_T of the grid (float64): β_i = 1 - ᾱ(i/T) / ᾱ((i-1)/T)."""
        la = self.log_alpha_bar(torch.arange(self.T + 1, dtype=torch.float64) / self.T)
        return -torch.expm1(la[1:] - la[:-1])

    # -- training and sampling times ----------------------------------------------------------
    def sample_t(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        """Training times: uniform over the grid points 1/T .. 1 (t = 0 is the data)."""
        i = torch.randint(1, self.T + 1, (n,), generator=generator, device=device)
        return i.to(torch.get_default_dtype()) / self.T

    def timesteps(self, steps: int, spacing: str = "trailing") -> Tensor:
        """Decreasing sampling times t_steps > ... > t_1 > t_0 = 0 on the grid (float64).

        The `steps` evaluated times are grid indices chosen by `spacing` (Lin et al. 2024,
        Table 2): 'leading' (1, 1+k, ..., DDIM's choice), 'trailing' (T, T-T/steps, ...,
        starts at pure noise), 'linspace' (round(linspace(1, T, steps))), 'logsnr' (the grid
        points nearest to uniform steps in log SNR from t = 1 to t = 1/T, DPM-Solver's choice:
        from t = 1, where σ/α is large (316 for the polynomial schedule), a step uniform in t
        multiplies the ε error of the first prediction by ~α'σ/α, ×12 there).  The last entry
        0 is where sampling ends.
        """
        if not 1 <= steps <= self.T:
            raise ValueError(f"steps must be in 1..{self.T} for this schedule, got {steps}")
        if spacing == "leading":
            idx = np.arange(steps) * (self.T // steps) + 1
        elif spacing == "trailing":
            idx = np.floor(self.T - np.arange(steps) * self.T / steps + 0.5)[::-1]
        elif spacing == "linspace":
            idx = np.floor(np.linspace(1, self.T, steps) + 0.5)
        elif spacing == "logsnr":
            grid = np.arange(1, self.T + 1)
            lam = self.log_snr(torch.from_numpy(grid / self.T)).numpy()
            want = np.linspace(lam[-1], lam[0], steps)  # from t = 1 down to t = 1/T
            idx = grid[np.abs(lam[None] - want[:, None]).argmin(1)][::-1]
            for k in range(1, steps):  # where the grid is coarse in log SNR: distinct points
                idx[k] = max(idx[k], idx[k - 1] + 1)
            for k in range(steps - 1, -1, -1):  # ... that stay on the grid
                idx[k] = min(idx[k], self.T - (steps - 1 - k))
        else:
            raise ValueError(f"unknown timestep spacing {spacing!r}; choose one of {SPACINGS}")
        idx = np.concatenate([idx.astype(np.int64)[::-1], [0]])
        return torch.from_numpy(idx.copy()).double() / self.T


class DiscreteSchedule(NoiseSchedule):
    """A schedule given by ᾱ at the grid points 0, 1/T, ..., 1.

    Between grid points log ᾱ is the monotone cubic Hermite interpolant (Fritsch–Carlson
    slopes): exact on the grid, and with a continuous β(t), so that adaptive ODE solvers
    (sampling, likelihood) see no jumps at the 1000 grid times.
    """

    def __init__(self, alpha_bars: Tensor | np.ndarray):
        ab = torch.as_tensor(np.asarray(alpha_bars, dtype=np.float64))
        if ab.ndim != 1 or len(ab) < 2 or not bool(((ab > 0) & (ab <= 1)).all()):
            raise ValueError("alpha_bars must be a 1-D array in (0, 1] of length T + 1")
        if not bool((ab[1:] < ab[:-1]).all()):
            raise ValueError("alpha_bars must decrease strictly")
        self.T = len(ab) - 1
        self._y = ab.log()
        d = (self._y[1:] - self._y[:-1]) * self.T  # secant slopes, all negative
        inner = 2 / (1 / d[:-1] + 1 / d[1:])  # harmonic mean keeps the interpolant monotone
        self._m = torch.cat([d[:1], inner, d[-1:]])

    def _cell(self, t: Tensor):
        """Cell index i (t in [i/T, (i+1)/T]) and position u in [0, 1] within it."""
        x = t.clamp(0, 1) * self.T
        i = x.floor().clamp(max=self.T - 1).long()
        return i, x - i

    def log_alpha_bar(self, t: Tensor) -> Tensor:
        t = _f64(t)
        i, u = self._cell(t)
        y, m = self._y.to(t.device), self._m.to(t.device) / self.T
        h00, h10 = (1 + 2 * u) * (1 - u) ** 2, u * (1 - u) ** 2
        h01, h11 = u**2 * (3 - 2 * u), u**2 * (u - 1)
        return h00 * y[i] + h10 * m[i] + h01 * y[i + 1] + h11 * m[i + 1]

    def beta(self, t: Tensor) -> Tensor:
        i, u = self._cell(_f64(t))
        y, m = self._y.to(i.device), self._m.to(i.device) / self.T
        # d/du of the Hermite basis, times du/dt = T
        dh00, dh10 = 6 * u**2 - 6 * u, 3 * u**2 - 4 * u + 1
        dh01, dh11 = 6 * u - 6 * u**2, 3 * u**2 - 2 * u
        dlog = dh00 * y[i] + dh10 * m[i] + dh01 * y[i + 1] + dh11 * m[i + 1]
        return _cast(-self.T * dlog, t)


class LinearSchedule(DiscreteSchedule):
    """DDPM (Ho et al. 2020): β_t linear from β_1 to β_T."""

    def __init__(self, T: int = 1000, beta_start: float = 1e-4, beta_end: float = 0.02):
        betas = np.linspace(beta_start, beta_end, T, dtype=np.float64)
        super().__init__(np.concatenate([[1.0], np.cumprod(1.0 - betas)]))


class CosineSchedule(DiscreteSchedule):
    """Nichol & Dhariwal 2021: ᾱ_t = f(t)/f(0), f = cos²((t/T + s)/(1 + s)·π/2), β_t ≤ max_beta."""

    def __init__(self, T: int = 1000, s: float = 0.008, max_beta: float = 0.999):
        f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * math.pi / 2) ** 2
        betas = np.clip(1.0 - f[1:] / f[:-1], 0.0, max_beta)
        super().__init__(np.concatenate([[1.0], np.cumprod(1.0 - betas)]))


class PolynomialSchedule(DiscreteSchedule):
    """EDM for molecules (Hoogeboom et al. 2022): ᾱ_t = (1 - (t/T)^power)², with each step's
    ratio ᾱ_t/ᾱ_{t-1} clipped at `clip` and the precision map ᾱ → (1 - 2s)ᾱ + s."""

    def __init__(self, T: int = 1000, power: float = 2.0, s: float = 1e-5, clip: float = 0.001):
        x = np.linspace(0, T, T + 1)
        ab = (1 - (x / T) ** power) ** 2
        steps = np.clip(ab / np.concatenate([[1.0], ab[:-1]]), clip, 1.0)
        super().__init__((1 - 2 * s) * np.cumprod(steps) + s)


class VPSDESchedule(NoiseSchedule):
    """Continuous VP SDE (Song et al. 2021): β(t) = β_min + t(β_max - β_min), so
    log ᾱ(t) = -β_min t - ½(β_max - β_min) t².  Training may use any t; `T` sets the grid."""

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: int = 1000,
                 t_min: float = 1e-3):
        self.beta_min, self.beta_max, self.T, self.t_min = beta_min, beta_max, T, t_min

    def log_alpha_bar(self, t: Tensor) -> Tensor:
        t = _f64(t)
        return -self.beta_min * t - 0.5 * (self.beta_max - self.beta_min) * t**2

    def beta(self, t: Tensor) -> Tensor:
        return _cast(self.beta_min + _f64(t) * (self.beta_max - self.beta_min), t)

    def first_time(self) -> float:
        return self.t_min  # its training times are uniform on [t_min, 1]

    def sample_t(self, n: int, generator: torch.Generator | None = None, device=None) -> Tensor:
        u = torch.rand(n, generator=generator, device=device)
        return self.t_min + (1 - self.t_min) * u


SCHEDULES = {
    "linear": LinearSchedule,
    "cosine": CosineSchedule,
    "polynomial": PolynomialSchedule,
    "vpsde": VPSDESchedule,
}


def make_schedule(name: str, **params) -> NoiseSchedule:
    """Build a schedule by name ('linear', 'cosine', 'polynomial', 'vpsde') with the keyword
    arguments of its class (e.g. T, power); ValueError in one line for an unknown one."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown noise schedule {name!r}; choose one of {sorted(SCHEDULES)}")
    known = list(inspect.signature(SCHEDULES[name]).parameters)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"the {name} schedule has no parameter {', '.join(unknown)}; "
                         f"its parameters: {', '.join(known)}")
    return SCHEDULES[name](**params)


def _f64(t) -> Tensor:
    return torch.as_tensor(t).to(torch.float64)


def _cast(value: Tensor, like) -> Tensor:
    like = torch.as_tensor(like)
    return value.to(like.dtype) if like.is_floating_point() else value.float()
