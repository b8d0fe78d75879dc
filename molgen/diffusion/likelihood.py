"""Exact log-likelihood through the probability-flow ODE (Song et al. 2021; FFJORD):

    log p_0(x_0) = log p_1(x_1) + ∫_0^1 ∇·f(x_t, t) dt,   dx/dt = f(x, t) the PF-ODE drift,

integrated from t_min (≈ 0) to 1 with the prior p_1 = N(0, I) on the space.  The divergence is
taken within the space (a subspace such as the zero-mean one counts its own dimensions):
exactly, with one vector-Jacobian product per dimension, or by Hutchinson's estimator
E[zᵀ (∂f/∂x) z] with z Gaussian noise of the space, fixed along the trajectory.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .ode import pf_ode_drift, rk45


def _divergence_exact(f: Tensor, x: Tensor, space) -> Tensor:
    """Σ_i (P e_i)ᵀ J (P e_i) per sample, e_i the space's basis: the trace of J restricted to
    the space."""
    div = torch.zeros(space.batch_size(x), dtype=x.dtype, device=x.device)
    for e in space.basis(x):
        e = space.project(e)
        vjp, = torch.autograd.grad(f, x, e, retain_graph=True)
        div = div + space.sum(vjp * e)
    return div


def log_likelihood(denoiser, x: Tensor, *, cond=None, trace: str = "hutchinson",
                   t_min: float = 1e-5, rtol: float = 1e-5, atol: float = 1e-5,
                   generator: torch.Generator | None = None) -> dict:
    """log p(x) of data x under the model, per sample.

    Returns a dict with 'logp' and 'nll' in nats [B], 'bits_per_dim' [B] (nll / (d ln 2), d
    the space's dimension per sample) and 'nfe'.  trace: 'exact' (d passes per evaluation,
    for small d) or 'hutchinson' (unbiased, one pass).
    """
    if trace not in ("exact", "hutchinson"):
        raise ValueError(f"unknown trace estimator {trace!r}; choose 'exact' or 'hutchinson'")
    space = denoiser.space
    z = space.noise(x, generator) if trace == "hutchinson" else None

    def rhs(y, t):
        with torch.enable_grad():
            xt = y[0].detach().requires_grad_(True)
            f = pf_ode_drift(denoiser, xt, t, cond)
            if z is None:
                div = _divergence_exact(f, xt, space)
            else:
                vjp, = torch.autograd.grad(f, xt, z)
                div = space.sum(vjp * z)
        return f.detach(), div.detach()

    delta0 = torch.zeros(space.batch_size(x), dtype=x.dtype, device=x.device)
    (x1, delta), nfe = rk45(rhs, (x, delta0), t0=t_min, t1=1.0, rtol=rtol, atol=atol)
    dim = space.dim(x)
    log_prior = -0.5 * space.sum(x1**2) - 0.5 * dim * math.log(2 * math.pi)
    logp = log_prior + delta
    return {"logp": logp, "nll": -logp, "bits_per_dim": -logp / (dim * math.log(2)), "nfe": nfe}
