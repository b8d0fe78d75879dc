"""The probability-flow ODE of the VP SDE and an adaptive Runge–Kutta solver for it.

    dx/dt = f(x, t) - ½ g(t)² ∇ log p_t(x) = -½ β(t) (x - ε̂(x, t) / σ(t))

shares the marginals p_t of the forward SDE dx = -½βx dt + √β dw (Song et al. 2021).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch
from torch import Tensor


def pf_ode_drift(denoiser, x: Tensor, t, cond=None) -> Tensor:
    t = denoiser.times(t, x)
    _, eps = denoiser(x, t, cond)
    _, sigma = denoiser.scales(t, x)
    beta = denoiser.space.expand(denoiser.schedule.beta(t), x)
    return -0.5 * beta * (x - eps / sigma)


# Dormand–Prince 5(4) tableau
_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_B5 = (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84, 0.0)
_B4 = (5179 / 57600, 0.0, 7571 / 16695, 393 / 640, -92097 / 339200, 187 / 2100, 1 / 40)


def rk45(f: Callable[[Sequence[Tensor], float], Sequence[Tensor]], y0: Sequence[Tensor], *,
         t0: float, t1: float, rtol: float = 1e-5, atol: float = 1e-5,
         max_steps: int = 10_000) -> tuple[list[Tensor], int]:
    """Integrate dy/dt = f(y, t) from t0 to t1 (either direction) with Dormand–Prince 5(4)
    and standard step-size control; y is a tuple of tensors.  Returns (y(t1), NFE)."""
    y, t = [v.clone() for v in y0], float(t0)
    direction = 1.0 if t1 > t0 else -1.0
    h = direction * abs(t1 - t0) / 100
    k_first, nfe = f(y, t), 1
    for _ in range(max_steps):
        if direction * (t1 - t) <= 0:
            return y, nfe
        h = direction * min(abs(h), abs(t1 - t))
        ks = [k_first]
        for c, a in zip(_C[1:], _A[1:]):
            yi = [v + h * sum(aj * k[n] for aj, k in zip(a, ks) if aj) for n, v in enumerate(y)]
            ks.append(f(yi, t + c * h))
        nfe += 6
        y_new = yi  # the last stage is evaluated at the 5th-order solution (FSAL)
        err_sq, count = 0.0, 0
        for n, (v, vn) in enumerate(zip(y, y_new)):
            err = h * sum((b5 - b4) * k[n] for b5, b4, k in zip(_B5, _B4, ks))
            scale = atol + rtol * torch.maximum(v.abs(), vn.abs())
            err_sq += float(((err / scale) ** 2).sum())
            count += err.numel()
        err_norm = (err_sq / count) ** 0.5
        if err_norm <= 1.0:
            t, y, k_first = t + h, y_new, ks[-1]
        h = h * min(10.0, max(0.2, 0.9 * max(err_norm, 1e-10) ** -0.2))
    raise RuntimeError(f"rk45 did not reach t = {t1} in {max_steps} steps")
