"""Samplers: each is one function over a denoiser, an initial state x_T and a decreasing time
grid ts = [t_N, ..., t_1, 0] (from `SamplerConfig.timesteps`, molgen.diffusion.grids).

The denoiser returns (x̂_0, ε̂) whatever the network predicts, and its space supplies the
noise, so a sampler is the same for images, point clouds and molecules.  Every sampler takes
the same arguments: `cond` (passed to the denoiser), `generator` (the noise of stochastic
samplers; deterministic ones ignore it), `callback` (called after each step with a dict
holding i, t, x and x̂_0), `progress` (a tqdm bar), and then its own settings, keyword
arguments with defaults.  A new sampler is one such function and one line in SAMPLERS.
The last step, from the grid's smallest time t_1 to t = 0, is the denoising step
x_0 = sqrt(ᾱ_0) x̂_0 + sqrt(1 - ᾱ_0) ε̂ (= x̂_0 when ᾱ_0 = 1) in every sampler: a grid that
ends at a small t_1 (t_min) is what makes that x̂_0 data rather than a blurred mean.

Grids are float64 and coefficients python floats: all samples share t while sampling.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any, Callable, Dict, Optional

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .denoiser import CFGDenoiser
from .grids import check_grid, make_grid
from .ode import pf_ode_drift, rk45
from .process import q_posterior, q_sample, step_beta


def _steps(ts: Tensor, progress: bool, desc: str):
    return tqdm(range(len(ts) - 1), desc=desc, disable=not progress, leave=False)


def _ab(denoiser, t) -> float:
    return float(denoiser.schedule.alpha_bar(torch.as_tensor(t, dtype=torch.float64)))


def _denoising_step(x0: Tensor, eps: Tensor, ab_s: float) -> Tensor:
    """DDIM (η = 0) update to ᾱ_s from the predictions at the current time (the Euler step
    of the PF-ODE in x̃ = x/α, s = σ/α)."""
    return math.sqrt(ab_s) * x0 + math.sqrt(1 - ab_s) * eps


def _report(callback, i, t, x, x0):
    if callback is not None:
        callback({"i": i, "t": float(t), "x": x, "x0": x0})


@torch.no_grad()
def ddpm(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
         callback: Callable | None = None, progress: bool = False,
         variance: str = "posterior") -> Tensor:
    """Ancestral sampling (Ho et al. 2020): x_s ~ N(μ̃(x_t, x̂_0), σ²) with σ² = β̃ ('posterior')
    or β ('beta') of the step t → s; no noise is added on the last step."""
    if variance not in ("posterior", "beta"):
        raise ValueError(f"unknown DDPM variance {variance!r}; choose 'posterior' or 'beta'")
    for i in _steps(ts, progress, "DDPM"):
        t, s = ts[i], ts[i + 1]
        x0, _ = denoiser(x, t, cond)
        ab_t, ab_s = _ab(denoiser, t), _ab(denoiser, s)
        x, var = q_posterior(ab_t, ab_s, x0, x)
        if s > 0:
            var = var if variance == "posterior" else step_beta(ab_t, ab_s)
            x = x + math.sqrt(var) * denoiser.space.noise(x, generator)
        _report(callback, i, t, x, x0)
    return x


@torch.no_grad()
def ddim(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
         callback: Callable | None = None, progress: bool = False, eta: float = 0.0) -> Tensor:
    """DDIM (Song et al. 2021): x_s = sqrt(ᾱ_s) x̂_0 + sqrt(1 - ᾱ_s - σ_η²) ε̂ + σ_η z with
    σ_η = η sqrt((1 - ᾱ_s)/(1 - ᾱ_t)) sqrt(1 - ᾱ_t/ᾱ_s).  η = 0 is deterministic (and
    inverted by `ddim_invert`); η = 1 is DDPM with σ² = β̃."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"DDIM eta must be in [0, 1], got {eta}")
    for i in _steps(ts, progress, "DDIM"):
        t, s = ts[i], ts[i + 1]
        x0, eps = denoiser(x, t, cond)
        ab_t, ab_s = _ab(denoiser, t), _ab(denoiser, s)
        sig = eta * math.sqrt((1 - ab_s) / (1 - ab_t) * step_beta(ab_t, ab_s)) if eta else 0.0
        x = math.sqrt(ab_s) * x0 + math.sqrt(1 - ab_s - sig**2) * eps
        if sig > 0:
            x = x + sig * denoiser.space.noise(x, generator)
        _report(callback, i, t, x, x0)
    return x


@torch.no_grad()
def ddim_invert(denoiser, x: Tensor, ts: Tensor, *, tol: float = 1e-6, max_iters: int = 20,
                cond=None, callback: Callable | None = None, progress: bool = False) -> Tensor:
    """Encode data to noise by inverting deterministic DDIM on the same decreasing grid ts.

    Each step t → u (u > t) solves the DDIM step u → t for its start point,
        x_u = (α_u/α_t) x_t + (σ_u - α_u σ_t/α_t) ε̂(x_u, u),
    by fixed-point iteration from ε̂(x_t, t) (its first iterate is the usual approximate
    inversion) until no entry moves by more than tol, so `ddim(ddim_invert(x, ts), ts)`
    returns x to about tol.  Each step costs 1 + (iterations) NFE.
    """
    up = ts.flip(0)
    for i in _steps(up, progress, "DDIM inversion"):
        t, u = float(up[i]), float(up[i + 1])
        a_t, a_u = math.sqrt(_ab(denoiser, t)), math.sqrt(_ab(denoiser, u))
        sig_t, sig_u = math.sqrt(1 - a_t**2), math.sqrt(1 - a_u**2)
        x0, eps = denoiser(x, t, cond)
        x_t, c = x, sig_u - a_u * sig_t / a_t
        x = (a_u / a_t) * x_t + c * eps
        for _ in range(max_iters):
            x_prev, x = x, (a_u / a_t) * x_t + c * denoiser(x, u, cond)[1]
            if float((x - x_prev).abs().max()) < tol:
                break
        _report(callback, i, u, x, x0)
    return x


@torch.no_grad()
def euler(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
          callback: Callable | None = None, progress: bool = False) -> Tensor:
    """Euler's method on the probability-flow ODE in the variables of Karras et al. (2022),
    x̃ = x / α and s = σ / α, where it reads dx̃/ds = ε̂.  Algebraically this is DDIM with
    η = 0; it is kept as the first-order member of the ODE family beside `heun`."""
    return _pf_ode_fixed(denoiser, x, ts, cond, callback, progress, second_order=False)


@torch.no_grad()
def heun(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
         callback: Callable | None = None, progress: bool = False) -> Tensor:
    """Heun's second-order method on dx̃/ds = ε̂ (Karras et al. 2022, Alg. 1): 2 NFE per step;
    the final step to t = 0 is first order (the denoising step), so NFE = 2·steps - 1.

    A step that starts from pure noise (s = σ/α > PURE_NOISE_S, e.g. t = 1 of the cosine
    schedule, s ≈ 2·10⁴) is first order too: Karras et al. start at a finite σ_max, and the
    trapezoid over [s_u, ∞) would give the ε̂ of the step's end the weight of the whole
    interval, though ε̂ stays that of the noise until s is near the data's scale."""
    return _pf_ode_fixed(denoiser, x, ts, cond, callback, progress, second_order=True)


PURE_NOISE_S = 1000.0
"""σ/α beyond which a state is pure noise to Heun (the signal is < 0.1% of it)."""


def _pf_ode_fixed(denoiser, x, ts, cond, callback, progress, second_order: bool) -> Tensor:
    # x̃ = x/α and s = σ/α turn the PF-ODE into dx̃/ds = ε̂, which stays well conditioned as
    # t → 0, where the drift in t, -½β(x - ε̂/σ), becomes stiff.
    for i in _steps(ts, progress, "Heun" if second_order else "Euler"):
        t, u = float(ts[i]), float(ts[i + 1])
        ab_t, ab_u = _ab(denoiser, t), _ab(denoiser, u)
        x0, eps = denoiser(x, t, cond)
        x_next = _denoising_step(x0, eps, ab_u)  # the Euler step
        if second_order and u > 0 and (1 - ab_t) / ab_t <= PURE_NOISE_S ** 2:
            _, eps_u = denoiser(x_next, u, cond)
            ds = math.sqrt((1 - ab_u) / ab_u) - math.sqrt((1 - ab_t) / ab_t)
            x_next = x_next + math.sqrt(ab_u) * ds * 0.5 * (eps_u - eps)  # trapezoid in s
        x = x_next
        _report(callback, i, t, x, x0)
    return x


@torch.no_grad()
def rk45_sampler(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
                 callback: Callable | None = None, progress: bool = False,
                 rtol: float = 1e-5, atol: float = 1e-5) -> Tensor:
    """Adaptive Dormand–Prince 5(4) on the probability-flow ODE from ts[0] to the smallest
    nonzero time ts[-2], then the denoising step to 0 (Song et al. 2021 use RK45 likewise).
    Only the first and last two entries of ts are used."""
    t_end = float(ts[-2])
    (x,), _ = rk45(lambda y, t: (pf_ode_drift(denoiser, y[0], t, cond),), (x,),
                   t0=float(ts[0]), t1=t_end, rtol=rtol, atol=atol)
    x0, eps = denoiser(x, t_end, cond)
    x = _denoising_step(x0, eps, _ab(denoiser, float(ts[-1])))
    _report(callback, len(ts) - 2, t_end, x, x0)
    return x


@torch.no_grad()
def sde(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
        callback: Callable | None = None, progress: bool = False,
        corrector_steps: int = 0, snr: float = 0.16) -> Tensor:
    """Euler–Maruyama on the reverse-time SDE dx = [-½βx - β ∇log p_t] dt + √β dw̄, with
    optional Langevin corrector steps after each predictor step (Song et al. 2021, PC
    sampling; signal-to-noise ratio `snr` sets the corrector step size)."""
    space = denoiser.space
    for i in _steps(ts, progress, "SDE"):
        t, s = float(ts[i]), float(ts[i + 1])
        x0, eps = denoiser(x, t, cond)
        if s == 0:
            x = _denoising_step(x0, eps, _ab(denoiser, 0.0))
        else:
            dt = t - s
            beta = float(denoiser.schedule.beta(torch.tensor(t, dtype=torch.float64)))
            sigma = math.sqrt(1 - _ab(denoiser, t))
            score = -eps / sigma
            x = x + dt * (0.5 * beta * x + beta * score) + math.sqrt(beta * dt) * space.noise(x, generator)
            for _ in range(corrector_steps):
                x = _langevin_step(denoiser, x, s, snr, cond, generator)
        _report(callback, i, t, x, x0)
    return x


def _langevin_step(denoiser, x, t: float, snr: float, cond, generator) -> Tensor:
    space = denoiser.space
    _, eps = denoiser(x, t, cond)
    score = -eps / math.sqrt(1 - _ab(denoiser, t))
    z = space.noise(x, generator)
    # step δ = 2α (snr ‖z‖ / ‖score‖)², norms averaged over the batch as in score_sde's
    # LangevinCorrector (per-sample steps blow up between modes, where ‖score‖ → 0);
    # α is the signal retained over one grid step
    alpha = _ab(denoiser, t) / _ab(denoiser, max(t - 1 / denoiser.schedule.T, 0.0))
    ratio = space.sum(z**2).sqrt().mean() / space.sum(score**2).sqrt().mean()
    step = 2 * alpha * (snr * ratio) ** 2
    return x + step * score + (2 * step).sqrt() * z


LOWER_ORDER_BELOW = 15
"""Grids of fewer steps than this end the multistep solvers with lower-order steps."""


@torch.no_grad()
def dpmpp_2m(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
             callback: Callable | None = None, progress: bool = False,
             lower_order_final: bool = False) -> Tensor:
    """DPM-Solver++(2M) (Lu et al. 2022): multistep second order in λ = log(α/σ) on x̂_0,
        x_s = (σ_s/σ_t) x_t + (α_s - σ_s α_t / σ_t) D,  D = (1 + 1/2r) x̂_0,t - (1/2r) x̂_0,prev,
    with r = h_prev / h; the first step is first order (= DDIM).  lower_order_final makes the
    step into t_1 first order below 15 steps, as the authors do to steady trained models on
    few-step grids.  Off by default: with the exact model of the 2-D mixture it steadies 5 NFE
    but is mixed at 10 and doubles the best 10-NFE error (3M, logsnr grid: SW 0.033 → 0.074;
    benchmarks/results/core_samplers_grids.json)."""
    return _dpmpp(denoiser, x, ts, cond, generator, callback, progress, order=2, eta=0.0,
                  lower_order_final=lower_order_final, desc="DPM-Solver++(2M)")


@torch.no_grad()
def dpmpp_3m(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
             callback: Callable | None = None, progress: bool = False,
             lower_order_final: bool = False) -> Tensor:
    """DPM-Solver++(3M) (Lu et al. 2022): multistep third order on x̂_0 from the last three
    predictions, after a first- and a second-order (2M) step; with lower_order_final below 15
    steps the step into t_1 is first order and the one before it second order."""
    return _dpmpp(denoiser, x, ts, cond, generator, callback, progress, order=3, eta=0.0,
                  lower_order_final=lower_order_final, desc="DPM-Solver++(3M)")


@torch.no_grad()
def dpmpp_2m_sde(denoiser, x: Tensor, ts: Tensor, *, cond=None, generator=None,
                 callback: Callable | None = None, progress: bool = False,
                 eta: float = 1.0, lower_order_final: bool = False) -> Tensor:
    """SDE-DPM-Solver++(2M) (Lu et al. 2022; k-diffusion's midpoint form with η): the 2M step
    of the reverse SDE, which keeps a fraction of the noise and draws fresh noise for it,
        x_s = (σ_s/σ_t) e^{-ηh} x_t + α_s (1 - e^{-(1+η)h}) D + σ_s sqrt(1 - e^{-2ηh}) z.
    η = 1 is the reverse SDE (its first-order step is DDPM's, = DDIM η = 1), η = 0 DPM-Solver++(2M)."""
    if not eta >= 0:
        raise ValueError(f"DPM-Solver++(2M) SDE eta must be >= 0, got {eta}")
    return _dpmpp(denoiser, x, ts, cond, generator, callback, progress, order=2, eta=eta,
                  lower_order_final=lower_order_final, desc="DPM-Solver++(2M) SDE")


def _dpmpp(denoiser, x, ts, cond, generator, callback, progress, *, order: int, eta: float,
           lower_order_final: bool, desc: str) -> Tensor:
    """The DPM-Solver++ multistep family in λ = log(α/σ), h = λ_s - λ_t, h_η = (1 + η) h:

        x_s = (σ_s/σ_t) e^{-ηh} x_t + α_s (1 - e^{-h_η}) x̂_0 + α_s C + σ_s sqrt(1 - e^{-2ηh}) z,

    C the correction from earlier x̂_0 (order 2: the midpoint form ½ (1 - e^{-h_η}) D1 of
    Lu et al.'s multistep_dpm_solver_second_update; order 3: φ_2 D1 - φ_3 D2 of their third
    update).  Each step's order is capped by the predictions at hand (warm-up) and, with
    lower_order_final below 15 steps, by the steps left before the denoising step."""
    steps, hist = len(ts) - 1, []  # hist: (x̂_0, h) of the earlier steps, newest first
    for i in _steps(ts, progress, desc):
        t, s = float(ts[i]), float(ts[i + 1])
        x0, eps = denoiser(x, t, cond)
        ab_t, ab_s = _ab(denoiser, t), _ab(denoiser, s)
        if i == steps - 1:  # to t = 0, where λ = ∞: only the denoising step is defined
            x = _denoising_step(x0, eps, ab_s)
        else:
            k = min(order, len(hist) + 1)
            if lower_order_final and steps < LOWER_ORDER_BELOW:
                k = min(k, steps - 1 - i)  # 1 into t_1, 2 the step before
            h = 0.5 * (math.log(ab_s / (1 - ab_s)) - math.log(ab_t / (1 - ab_t)))
            x = _dpmpp_step(x, x0, hist[:k - 1], h, eta, ab_t, ab_s, denoiser.space, generator)
            hist = [(x0, h)] + hist[:1]
        _report(callback, i, t, x, x0)
    return x


def _dpmpp_step(x, x0, hist, h, eta, ab_t, ab_s, space, generator) -> Tensor:
    """One step of `_dpmpp` of order 1 + len(hist), hist the earlier (x̂_0, h), newest first."""
    a_s, sig_s, sig_t = math.sqrt(ab_s), math.sqrt(1 - ab_s), math.sqrt(1 - ab_t)
    h_eta = (1 + eta) * h
    em = -math.expm1(-h_eta)  # 1 - e^{-h_η}, accurate for small steps
    x = (sig_s / sig_t) * math.exp(-eta * h) * x + a_s * em * x0
    if hist:
        d1_0 = (x0 - hist[0][0]) * (h / hist[0][1])  # h × the divided difference in λ
    if len(hist) == 1:
        x = x + a_s * 0.5 * em * d1_0
    elif len(hist) == 2:
        r0, r1 = hist[0][1] / h, hist[1][1] / h
        d1_1 = (hist[0][0] - hist[1][0]) / r1
        d1 = d1_0 + (d1_0 - d1_1) * (r0 / (r0 + r1))
        d2 = (d1_0 - d1_1) / (r0 + r1)
        phi_2 = 1 - em / h_eta
        phi_3 = phi_2 / h_eta - 0.5
        x = x + a_s * (phi_2 * d1 - phi_3 * d2)
    if eta > 0:
        x = x + sig_s * math.sqrt(-math.expm1(-2 * eta * h)) * space.noise(x, generator)
    return x


SAMPLERS = {
    "ddpm": ddpm,
    "ddim": ddim,
    "euler": euler,
    "heun": heun,
    "rk45": rk45_sampler,
    "sde": sde,
    "dpmpp_2m": dpmpp_2m,
    "dpmpp_3m": dpmpp_3m,
    "dpmpp_2m_sde": dpmpp_2m_sde,
}
"""Every sampler: f(denoiser, x, ts, *, cond, generator, callback, progress, **options), where
the generator is ignored by deterministic samplers and options are the sampler's own settings
(keyword arguments with defaults, set through SamplerConfig.options)."""

COMMON_ARGUMENTS = ("cond", "generator", "callback", "progress")


def sampler_options(kind: str) -> dict:
    """The settings of a sampler beyond the common arguments, with their defaults."""
    params = inspect.signature(SAMPLERS[kind]).parameters.values()
    return {p.name: p.default for p in params
            if p.kind is p.KEYWORD_ONLY and p.name not in COMMON_ARGUMENTS}


GRID_PARAMETERS = ("t_min", "sigma_min", "sigma_max", "rho")
"""SamplerConfig fields that parameterize its spacing's grid."""


def _spec_value(text: str):
    """A setting's value from its text in a sampler spec."""
    words = {"true": True, "false": False, "none": None}
    if text.lower() in words:
        return words[text.lower()]
    for parse in (int, float):
        try:
            return parse(text)
        except ValueError:
            pass
    return text


LEGACY_OPTIONS = ("eta", "variance", "corrector_steps", "snr", "rtol", "atol")
"""Sampler settings that were fields of SamplerConfig before `options` (older checkpoints)."""


@dataclasses.dataclass
class SamplerConfig:
    """How to sample, as a plain serializable record (stored in checkpoints).

    kind: one of SAMPLERS.  steps: number of grid times evaluated (NFE for ddpm, ddim,
    euler, sde and the dpmpp solvers; 2·steps - 1 for heun; adaptive for rk45, where steps
    only sets the final time).  guidance_scale: classifier-free guidance w in
    ε̃ = (1 + w) ε(x, c) - w ε(x, ∅); 0 means none.  start: 1 samples from noise; start < 1
    refines a given state noised to that time (SDEdit).  options: the sampler's own settings,
    by name (`sampler_options(kind)`): ddim eta (stochasticity), ddpm variance ('posterior' β̃
    or 'beta'), sde corrector_steps and snr (Langevin corrector), rk45 rtol and atol, the
    dpmpp solvers' lower_order_final, dpmpp_2m_sde's eta.

    The grid (molgen.diffusion.grids): spacing 'leading' | 'trailing' | 'linspace' | 'logsnr'
    | 'karras'; t_min, where 'logsnr' and 'karras' end (None: the schedule's first trained
    time; for 'logsnr' None keeps the original grid-point spacing); sigma_min, sigma_max, rho:
    the 'karras' grid in σ/α (None: σ/α at t_min and at the start); sigma_max also starts
    'logsnr' below t = 1 (for the cosine schedule, whose σ/α(1) is 2e4).  Every grid ends with the
    denoising step x̂_0(x_{t_1}) from its smallest time to t = 0, so the sample is data only
    as far as t_1 is small.
    """

    kind: str = "dpmpp_2m"
    steps: int = 20
    spacing: str = "trailing"
    guidance_scale: float = 0.0
    start: float = 1.0
    options: Dict[str, Any] = dataclasses.field(default_factory=dict)
    t_min: Optional[float] = None
    sigma_min: Optional[float] = None
    sigma_max: Optional[float] = None
    rho: float = 7.0

    def __post_init__(self):
        if self.kind not in SAMPLERS:
            raise ValueError(f"unknown sampler {self.kind!r}; choose one of {sorted(SAMPLERS)}")
        if self.steps < 1:
            raise ValueError(f"sampler steps must be >= 1, got {self.steps}")
        if not 0 < self.start <= 1:
            raise ValueError(f"sampler start must be in (0, 1], got {self.start}")
        check_grid(self.spacing, t_min=self.t_min, sigma_min=self.sigma_min,
                   sigma_max=self.sigma_max, rho=self.rho, t_max=self.start)
        known = sampler_options(self.kind)
        unknown = sorted(set(self.options) - set(known))
        if unknown:
            raise ValueError(f"sampler {self.kind!r} has no option {', '.join(unknown)}; "
                             f"its options: {', '.join(known) or 'none'}")
        self.options = dict(self.options)

    def timesteps(self, schedule) -> Tensor:
        """The grid [t_steps, ..., t_1, 0] on this schedule, from t = start (float64)."""
        return make_grid(schedule, self.steps, self.spacing, t_min=self.t_min,
                         sigma_min=self.sigma_min, sigma_max=self.sigma_max, rho=self.rho,
                         t_max=self.start)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def replace(self, **settings) -> "SamplerConfig":
        """A copy with `settings` changed: fields by name, anything else an option of the
        (new) kind.  Another kind drops this kind's options; another spacing starts the grid
        parameters (GRID_PARAMETERS) from their defaults unless they are given too."""
        d = self.to_dict()
        if settings.get("kind", self.kind) != self.kind:
            d["options"] = {}
        if settings.get("spacing", self.spacing) != self.spacing:
            d.update({f.name: f.default for f in dataclasses.fields(self) if f.name in GRID_PARAMETERS})
        fields = {f.name for f in dataclasses.fields(self)} - {"options"}
        for key, value in settings.items():
            if key in fields:
                d[key] = value
            else:
                d["options"][key] = value
        return SamplerConfig(**d)

    @classmethod
    def from_spec(cls, spec: str, base: "SamplerConfig | None" = None) -> "SamplerConfig":
        """A sampler from text, `kind:steps[:setting=value...]`, e.g. "ddim:50:eta=1" or
        "dpmpp_2m:10:spacing=logsnr:t_min=0.001": `base` (default SamplerConfig()) with
        those settings (`replace`); values read as int, float, true/false/none or text.
        ValueError naming the spec if it is malformed or a setting is invalid."""
        kind, _, rest = spec.partition(":")
        steps, *fields = rest.split(":")
        try:
            settings = {"kind": kind, "steps": int(steps)}
            for field in fields:
                key, eq, text = field.partition("=")
                if not (key and eq):
                    raise ValueError(f"{field!r} is not <setting>=<value>")
                settings[key] = _spec_value(text)
            return (base or cls()).replace(**settings)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"sampler {spec!r}: {exc}; use <kind>:<steps>[:<setting>=<value>...], "
                             "e.g. dpmpp_2m:10:spacing=logsnr:t_min=0.001") from None

    @classmethod
    def from_dict(cls, d: dict) -> "SamplerConfig":
        """A config from `to_dict`'s record, or from an older one with the sampler's settings
        as fields (kept as options where they belong to its kind)."""
        d = dict(d)
        legacy = {k: d.pop(k) for k in LEGACY_OPTIONS if k in d}
        if legacy:
            own = sampler_options(d.get("kind", cls.kind))
            d["options"] = {**{k: v for k, v in legacy.items() if k in own}, **d.get("options", {})}
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown sampler setting(s) {unknown}; known: {sorted(known)}")
        return cls(**d)


def sample(denoiser, x: Tensor, config: SamplerConfig, *, init: Tensor | None = None, cond=None,
           null_cond=None, generator=None, callback: Callable | None = None,
           progress: bool = False) -> Tensor:
    """Run the sampler the config names.

    x: standard Gaussian noise in the denoiser's space (`space.noise`).  With config.start = 1
    sampling starts from x at t = 1; with start < 1 it refines `init`, a clean state, from
    x_start = α init + σ x at t = start over the grid from start to 0 (SDEdit, Meng et al.
    2022; the training-grid spacings are scaled to [0, start]).  A karras grid with an explicit
    sigma_max below σ/α at t = 1 begins at that σ from the same x, as k-diffusion does.
    cond: the per-sample condition; guidance_scale > 0 also needs the model's null condition
    `null_cond`."""
    if config.guidance_scale:
        if null_cond is None:
            raise ValueError("guidance_scale > 0 needs the model's null condition (null_cond)")
        denoiser = CFGDenoiser(denoiser, config.guidance_scale, null_cond)
    if config.start < 1:
        if init is None:
            raise ValueError("sampler start < 1 (SDEdit) needs the state to refine (init)")
        t = torch.full((denoiser.space.batch_size(x),), config.start, dtype=torch.float64,
                       device=x.device)
        x = q_sample(denoiser.schedule, init.to(x), t, noise=x, space=denoiser.space)
    ts = config.timesteps(denoiser.schedule)
    return SAMPLERS[config.kind](denoiser, x, ts, cond=cond, generator=generator,
                                 callback=callback, progress=progress, **config.options)
