"""Parameterizations (Tweedie), losses and their weights, guidance, spaces."""
import itertools

import pytest
import torch

from molgen.diffusion import (PREDICTIONS, CFGDenoiser, ClassifierGuidedDenoiser, Denoiser,
                              EuclideanSpace, LinearSchedule, ZeroMeanSpace, convert,
                              diffusion_loss, drop_condition, loss_weight, make_schedule,
                              to_x0_eps)
from molgen.diffusion.losses import vlb_x0_weight
from molgen.data.toy import ExactEpsModel, GaussianMixture, mixture_2d

f64 = torch.float64


def _state(n=64, d=3, t=0.37, seed=0):
    g = torch.Generator().manual_seed(seed)
    sch = make_schedule("cosine")
    x0, eps = torch.randn(n, d, generator=g, dtype=f64), torch.randn(n, d, generator=g, dtype=f64)
    a, s = sch.alpha(torch.tensor(t, dtype=f64)), sch.sigma(torch.tensor(t, dtype=f64))
    return x0, eps, a * x0 + s * eps, a, s


@pytest.mark.parametrize("src,dst", list(itertools.product(PREDICTIONS, PREDICTIONS)))
def test_conversions_are_exact_round_trips(src, dst):
    x0, eps, xt, a, s = _state()
    truth = {"eps": eps, "x0": x0, "v": a * eps - s * x0, "score": -eps / s}
    got = convert(truth[src], src, dst, x=xt, alpha=a, sigma=s)
    torch.testing.assert_close(got, truth[dst], rtol=1e-12, atol=1e-12)
    back = convert(got, dst, src, x=xt, alpha=a, sigma=s)
    torch.testing.assert_close(back, truth[src], rtol=1e-12, atol=1e-12)


def test_tweedie_denoiser_is_the_gaussian_posterior_mean():
    # data N(μ, Σ): E[x0 | x_t] = μ + αΣ(α²Σ + σ²I)⁻¹(x_t − αμ), and the exact ε-model's x̂0 must equal it
    mu = torch.tensor([0.5, -1.0], dtype=f64)
    cov = torch.tensor([[0.3, 0.1], [0.1, 0.2]], dtype=f64)
    sch = LinearSchedule()
    den = Denoiser(ExactEpsModel(GaussianMixture([1.0], mu[None], cov[None]), sch), sch)
    t = torch.tensor(0.3, dtype=f64)
    a, s = float(sch.alpha(t)), float(sch.sigma(t))
    xt = torch.randn(10, 2, generator=torch.Generator().manual_seed(1), dtype=f64)
    gain = a * cov @ torch.linalg.inv(a * a * cov + s * s * torch.eye(2, dtype=f64))
    expected = mu + (xt - a * mu) @ gain.T
    x0_hat, _ = den(xt, t)
    torch.testing.assert_close(x0_hat, expected, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("prediction", PREDICTIONS)
def test_denoiser_accepts_any_parameterization(prediction):
    # a model that outputs the exact ε converted to `prediction` gives the same (x̂0, ε̂)
    sch, mix = LinearSchedule(), mixture_2d("three")
    exact = ExactEpsModel(mix, sch)

    def model(x, t):
        a, s = sch.alpha(t)[:, None], sch.sigma(t)[:, None]
        return convert(exact(x, t), "eps", prediction, x=x, alpha=a, sigma=s)

    x = torch.randn(16, 2, generator=torch.Generator().manual_seed(2), dtype=f64)
    ref = Denoiser(exact, sch)(x, 0.5)
    got = Denoiser(model, sch, prediction)(x, 0.5)
    for r, g in zip(ref, got):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10)


def test_error_identities_behind_the_weightings():
    # ‖ε̂−ε‖² = SNR‖x̂0−x0‖²,  ‖v̂−v‖² = (SNR+1)‖x̂0−x0‖² for a prediction error δ in x0
    x0, eps, xt, a, s = _state()
    delta = 0.01 * torch.randn_like(x0)
    x0_hat = x0 + delta
    _, eps_hat = to_x0_eps(x0_hat, "x0", xt, alpha=a, sigma=s)
    v, v_hat = a * eps - s * x0, a * eps_hat - s * x0_hat
    snr = a * a / (s * s)
    torch.testing.assert_close((eps_hat - eps).pow(2).sum(), snr * delta.pow(2).sum())
    torch.testing.assert_close((v_hat - v).pow(2).sum(), (snr + 1) * delta.pow(2).sum())


def test_min_snr_and_vlb_weights():
    sch = LinearSchedule()
    t = torch.tensor([0.001, 0.002, 0.05, 0.5, 0.99], dtype=f64)
    snr = sch.snr(t)
    torch.testing.assert_close(loss_weight(sch, t, target="eps", weighting="min_snr"), snr.clamp(max=5) / snr)
    torch.testing.assert_close(loss_weight(sch, t, target="x0", weighting="min_snr"), snr.clamp(max=5))
    torch.testing.assert_close(loss_weight(sch, t, target="v", weighting="min_snr"), snr.clamp(max=5) / (snr + 1))
    # with σ² = β̃ the bound term's x0 weight is ½(SNR(t−1) − SNR(t)) (Kingma et al. 2021)
    tt = t[1:]
    torch.testing.assert_close(vlb_x0_weight(sch, tt), 0.5 * (sch.snr(tt - 1e-3) - sch.snr(tt)), rtol=1e-9, atol=0)
    # at t = 1 the decoder term with variance β_1: weight 1/(2β_1)
    assert float(vlb_x0_weight(sch, t[:1])) == pytest.approx(1 / (2 * 1e-4), rel=1e-9)


def test_exact_model_has_the_smallest_loss_and_loss_is_per_sample():
    sch, mix = LinearSchedule(), mixture_2d("ring")
    g = torch.Generator().manual_seed(0)
    x0 = mix.sample(4096, g)
    t = sch.sample_t(4096, g).double()
    noise = torch.randn(4096, 2, generator=g, dtype=f64)
    exact = Denoiser(ExactEpsModel(mix, sch), sch)
    wrong = Denoiser(lambda x, t: 1.1 * ExactEpsModel(mix, sch)(x, t), sch)
    for target, weighting in itertools.product(["eps", "x0", "v"], ["none", "min_snr", "vlb"]):
        l_exact = diffusion_loss(exact, x0, t=t, noise=noise, target=target, weighting=weighting)
        l_wrong = diffusion_loss(wrong, x0, t=t, noise=noise, target=target, weighting=weighting)
        assert l_exact.shape == (4096,)
        assert float(l_exact.mean()) < float(l_wrong.mean())
    # an auxiliary term sees (x̂_0, x_0, t) and adds per sample
    seen = {}

    def auxiliary(x0_hat, x0_true, tt):
        seen.update(x0_hat=x0_hat, x0=x0_true, t=tt)
        return (x0_hat - x0_true).square().sum(-1)

    plain = diffusion_loss(wrong, x0, t=t, noise=noise, target="v")
    total = diffusion_loss(wrong, x0, t=t, noise=noise, target="v", auxiliary=auxiliary)
    assert seen["x0"] is x0 and torch.equal(seen["t"], t)
    torch.testing.assert_close(total - plain, (seen["x0_hat"] - x0).square().sum(-1))


def test_cfg_is_one_batched_forward_with_the_seed_formula():
    calls = []

    def model(x, t, cond):
        calls.append(len(x))
        return x * cond[:, None] + t[:, None]

    sch = LinearSchedule()
    den = Denoiser(model, sch)
    x = torch.randn(5, 2, dtype=f64)
    c = torch.full((5,), 3.0, dtype=f64)
    guided = CFGDenoiser(den, 2.0, null_cond=0.0)
    _, eps = guided(x, 0.4, c)
    assert calls == [10]
    _, eps_c = den(x, 0.4, c)
    _, eps_u = den(x, 0.4, torch.zeros(5, dtype=f64))
    torch.testing.assert_close(eps, 3 * eps_c - 2 * eps_u)
    torch.testing.assert_close(CFGDenoiser(den, 0.0, 0.0)(x, 0.4, c)[1], eps_c)


def test_classifier_guidance_with_the_exact_classifier_gives_the_conditional_model():
    # ∇log p_t(x|c) = ∇log p_t(x) + ∇log p_t(c|x): with w = 1 and the exact noisy classifier,
    # the guided mixture model equals the exact model of component c
    sch, mix = LinearSchedule(), mixture_2d("three")
    c = 1

    def log_prob(x, t):
        a, s = float(sch.alpha(t[0])), float(sch.sigma(t[0]))
        return mix.noised(a, s).responsibilities(x).log()[:, c]

    guided = ClassifierGuidedDenoiser(Denoiser(ExactEpsModel(mix, sch), sch), log_prob, 1.0)
    component = GaussianMixture([1.0], mix.means[c:c + 1], mix.covs[c:c + 1])
    target = Denoiser(ExactEpsModel(component, sch), sch)
    x = 2 * torch.randn(50, 2, generator=torch.Generator().manual_seed(3), dtype=f64)
    for t in [0.1, 0.5]:
        for got, ref in zip(guided(x, t), target(x, t)):
            torch.testing.assert_close(got, ref, rtol=1e-7, atol=1e-9)


def test_drop_condition_rate_and_null():
    cond = torch.arange(100_000) % 7
    out = drop_condition(cond, 7, p=0.1, generator=torch.Generator().manual_seed(0))
    dropped = out == 7
    assert 0.095 < float(dropped.float().mean()) < 0.105
    assert bool((out[~dropped] == cond[~dropped]).all())
    vec = drop_condition(torch.ones(1000, 3), torch.zeros(3), p=0.5, generator=torch.Generator().manual_seed(1))
    assert set(vec.sum(1).tolist()) == {0.0, 3.0}


def test_zero_mean_space():
    sp = ZeroMeanSpace()
    x = torch.empty(20000, 4, 3, dtype=f64)
    z = sp.noise(x, torch.Generator().manual_seed(0))
    assert float(z.mean(1).abs().max()) < 1e-12
    # a standard Gaussian on the (N−1)·D-dimensional subspace: E‖z‖² = (N−1)·D
    assert float(sp.sum(z**2).mean()) == pytest.approx(9.0, rel=0.01)
    assert sp.dim(x).tolist()[:2] == [9.0, 9.0]
    assert EuclideanSpace().dim(x)[0] == 12
    den = Denoiser(lambda x, t: x + 1.0, LinearSchedule(), space=sp)
    _, eps = den(z, 0.5)
    assert float(eps.mean(1).abs().max()) < 1e-12
