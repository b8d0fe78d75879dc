"""Schedule identities, the discrete grid, and sampling time grids."""
import math

import numpy as np
import pytest
import torch

from molgen.diffusion import (CosineSchedule, LinearSchedule, PolynomialSchedule, VPSDESchedule,
                              make_schedule)
from molgen.diffusion.process import q_posterior
from molgen.diffusion.schedules import SPACINGS

ALL = ["linear", "cosine", "polynomial", "vpsde"]


@pytest.mark.parametrize("name", ALL)
def test_alpha_bar_T_is_near_zero_and_identities_hold(name):
    sch = make_schedule(name)
    t = torch.linspace(0, 1, 1001, dtype=torch.float64)
    ab = sch.alpha_bar(t)
    assert float(ab[-1]) < 1e-4
    assert bool((ab[1:] < ab[:-1]).all())
    torch.testing.assert_close(sch.alpha(t) ** 2 + sch.sigma(t) ** 2, torch.ones_like(t), rtol=0, atol=1e-14)
    inner = t[1:]  # SNR is infinite at t = 0 where ᾱ = 1
    torch.testing.assert_close(sch.snr(inner), ab[1:] / (1 - ab[1:]), rtol=1e-10, atol=0)
    torch.testing.assert_close(sch.log_snr(inner), sch.snr(inner).log(), rtol=1e-10, atol=1e-12)


def test_linear_schedule_matches_ddpm_products():
    sch = LinearSchedule()
    betas = np.linspace(1e-4, 0.02, 1000)
    torch.testing.assert_close(sch.betas(), torch.from_numpy(betas), rtol=1e-9, atol=1e-15)
    i = torch.tensor([1, 2, 10, 500, 1000])
    expected = torch.from_numpy(np.cumprod(1 - betas))[i - 1]
    torch.testing.assert_close(sch.alpha_bar(i.double() / 1000), expected, rtol=1e-12, atol=0)


def test_cosine_schedule_matches_its_formula_where_unclipped():
    sch = CosineSchedule()
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    for i in [1, 100, 500, 900]:
        assert float(sch.alpha_bar(torch.tensor(i / 1000, dtype=torch.float64))) == pytest.approx(f(i / 1000) / f(0), rel=1e-12)
    assert float(sch.betas().max()) <= 0.999


def test_polynomial_schedule_precision_and_clipping():
    sch = PolynomialSchedule(T=1000, power=2.0, s=1e-5)
    ab = sch.alpha_bar(torch.arange(1001, dtype=torch.float64) / 1000)
    assert float(ab[0]) == pytest.approx(1 - 1e-5, abs=1e-15)
    assert float(ab[-1]) == pytest.approx(1e-5, rel=0.01)
    raw = (ab - 1e-5) / (1 - 2e-5)  # undo the precision map
    assert float((raw[1:] / raw[:-1]).min()) >= 0.001 - 1e-12
    # unclipped middle: (1 - (t/T)^2)^2
    assert float(raw[500]) == pytest.approx((1 - 0.25) ** 2, rel=1e-9)


@pytest.mark.parametrize("name", ALL)
def test_beta_is_minus_derivative_of_log_alpha_bar(name):
    sch = make_schedule(name)
    t = torch.tensor([0.01234, 0.34567, 0.78912], dtype=torch.float64)  # off the grid
    h = 1e-7
    numeric = -(sch.log_alpha_bar(t + h) - sch.log_alpha_bar(t - h)) / (2 * h)
    torch.testing.assert_close(sch.beta(t), numeric, rtol=1e-6, atol=0)


def test_discrete_linear_is_close_to_the_vp_sde():
    # T β_i of DDPM's linear schedule is β(t) of the VP SDE with β_min = 0.1, β_max = 20
    t = torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64)
    torch.testing.assert_close(LinearSchedule().beta(t), VPSDESchedule().beta(t), rtol=0.02, atol=0)
    torch.testing.assert_close(LinearSchedule().log_alpha_bar(t), VPSDESchedule().log_alpha_bar(t), rtol=0.01, atol=0)


@pytest.mark.parametrize("spacing", SPACINGS)
@pytest.mark.parametrize("steps", [1, 3, 7, 10, 50, 333, 999, 1000])
def test_timesteps_no_duplicates_no_skips(spacing, steps):
    ts = LinearSchedule().timesteps(steps, spacing)
    idx = (ts * 1000).round().long()
    torch.testing.assert_close(idx.double() / 1000, ts)
    assert len(ts) == steps + 1 and int(idx[-1]) == 0
    assert bool((idx[1:] < idx[:-1]).all())
    assert int(idx[:-1].min()) >= 1 and int(idx[0]) <= 1000
    if steps == 1000:
        assert idx.tolist() == list(range(1000, -1, -1))
    if spacing == "trailing":
        assert int(idx[0]) == 1000
    if spacing == "leading":
        assert int(idx[-2]) == 1
    if spacing == "linspace":
        assert int(idx[-2]) == 1 and (steps == 1 or int(idx[0]) == 1000)
    if spacing == "logsnr":
        assert int(idx[0]) == 1000 and (steps == 1 or int(idx[-2]) == 1)


@pytest.mark.parametrize("name", ["polynomial", "cosine", "linear"])
def test_logsnr_spacing_is_uniform_in_log_snr(name):
    """Equal log-SNR increments where the grid of 1000 times is fine enough (the linear
    schedule away from t = 0); where log SNR falls steeply at t = 1, a first step shorter in
    log SNR than the trailing spacing's (polynomial: 0.95 against 5.1)."""
    schedule = make_schedule(name)
    lam = schedule.log_snr(schedule.timesteps(20, "logsnr")[:-1])
    steps = lam[1:] - lam[:-1]
    assert bool((steps > 0).all())
    if name == "linear":
        assert float((steps[:15] / steps.mean() - 1).abs().max()) < 0.05
    else:  # schedules whose log SNR falls steeply at t = 1
        trailing = schedule.log_snr(schedule.timesteps(20, "trailing")[:2])
        assert float(steps[0]) < float(trailing[1] - trailing[0])


def test_timesteps_reject_bad_requests():
    with pytest.raises(ValueError, match="spacing"):
        LinearSchedule().timesteps(10, "quadratic")
    with pytest.raises(ValueError, match="steps"):
        LinearSchedule().timesteps(1001)


def test_posterior_matches_gaussian_conditioning():
    sch = CosineSchedule()
    ab_t, ab_s = float(sch.alpha_bar(torch.tensor(0.6))), float(sch.alpha_bar(torch.tensor(0.4)))
    x0, xt = torch.tensor([0.7], dtype=torch.float64), torch.tensor([-0.3], dtype=torch.float64)
    # joint of (x_s, x_t) given x0: x_t = sqrt(ᾱ_t/ᾱ_s) x_s + noise
    cov = math.sqrt(ab_t / ab_s) * (1 - ab_s)
    mean = math.sqrt(ab_s) * x0 + cov / (1 - ab_t) * (xt - math.sqrt(ab_t) * x0)
    var = (1 - ab_s) - cov**2 / (1 - ab_t)
    got_mean, got_var = q_posterior(ab_t, ab_s, x0, xt)
    torch.testing.assert_close(got_mean, mean, rtol=1e-12, atol=1e-14)
    assert got_var == pytest.approx(var, rel=1e-12)


def test_training_times():
    g = torch.Generator().manual_seed(0)
    t = LinearSchedule().sample_t(10000, g)
    assert float(t.min()) >= 1e-3 and float(t.max()) <= 1 and torch.allclose(t * 1000, (t * 1000).round())
    t = VPSDESchedule().sample_t(10000, g)
    assert float(t.min()) >= 1e-3 and len(torch.unique(t)) > 9000


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown noise schedule 'sigmoid'"):
        make_schedule("sigmoid")
