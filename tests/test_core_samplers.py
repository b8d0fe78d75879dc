"""Every sampler, driven by the exact model of a Gaussian mixture, reproduces the mixture."""
import inspect
import math

import numpy as np
import pytest
import torch
from scipy import stats

from molgen.diffusion import (SAMPLERS, Denoiser, LinearSchedule, MoleculeSpace, SamplerConfig, ZeroMeanSpace,
                              ddim, ddim_invert, dpmpp_2m, dpmpp_2m_sde, dpmpp_3m, make_grid, make_schedule,
                              q_sample, sample, sample_in_batches, sampler_options)
from molgen.diffusion.samplers import COMMON_ARGUMENTS
from molgen.data.toy import ExactEpsModel, GaussianMixture, mixture_2d

f64 = torch.float64
N = 20_000


def _noise(n, d, seed=1):
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=f64)


def _mixture_cdf(mix: GaussianMixture, u: torch.Tensor):
    """CDF of the projection u·x of the mixture: a 1-D mixture of Gaussians."""
    m = (mix.means @ u).numpy()
    s = torch.einsum("i,kij,j->k", u, mix.covs, u).sqrt().numpy()
    w = mix.weights.numpy()
    return lambda z: (w * stats.norm.cdf((np.asarray(z)[..., None] - m) / s)).sum(-1)


def assert_reproduces(mix: GaussianMixture, x: torch.Tensor, directions=4):
    """Component weights within ±2 points, component means within 0.05, and one-sample
    Kolmogorov–Smirnov tests on projections that do not reject at 1% (Bonferroni)."""
    labels = mix.responsibilities(x).argmax(1)
    weights = torch.bincount(labels, minlength=len(mix.weights)).double() / len(x)
    assert float((weights - mix.weights).abs().max()) < 0.02, weights
    for k in range(len(mix.weights)):
        err = float((x[labels == k].mean(0) - mix.means[k]).abs().max())
        assert err < 0.05, (k, err)
    angles = torch.arange(directions, dtype=f64) * math.pi / directions + 0.1
    for a in angles:
        u = torch.stack([a.cos(), a.sin()])
        p = stats.kstest((x @ u).numpy(), _mixture_cdf(mix, u)).pvalue
        assert p > 0.01 / directions, (float(a), p)


# (config, schedule): each sampler at a step count where it has converged
CONVERGED = [
    (SamplerConfig("ddpm", steps=1000), "linear"),                      # the reference
    (SamplerConfig("ddpm", steps=1000, options={"variance": "beta"}), "linear"),
    (SamplerConfig("ddim", steps=100), "linear"),
    (SamplerConfig("ddim", steps=200, options={"eta": 1.0}), "cosine"),
    (SamplerConfig("euler", steps=500, spacing="linspace"), "vpsde"),
    (SamplerConfig("heun", steps=100, spacing="linspace"), "linear"),
    (SamplerConfig("heun", steps=25), "cosine"),  # starts where α ≈ 0 (s = σ/α ≈ 2e4)
    (SamplerConfig("rk45", steps=1000, options={"rtol": 1e-4, "atol": 1e-4}), "linear"),
    (SamplerConfig("sde", steps=1000), "vpsde"),
    (SamplerConfig("sde", steps=500, options={"corrector_steps": 1}), "linear"),
    (SamplerConfig("dpmpp_2m", steps=50), "linear"),
    (SamplerConfig("dpmpp_2m", steps=100), "polynomial"),
]


@pytest.mark.parametrize("config,schedule", CONVERGED, ids=lambda c: getattr(c, "kind", c))
def test_sampler_reproduces_2d_mixture(config, schedule):
    sch, mix = make_schedule(schedule), mixture_2d("ring")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    x = sample(den, _noise(N, 2), config, generator=torch.Generator().manual_seed(2))
    assert_reproduces(mix, x)


def test_samplers_reproduce_1d_mixture():
    mix = GaussianMixture([0.3, 0.7], [[-1.0], [1.5]], [[[0.09]], [[0.25]]])
    sch = LinearSchedule()
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    cdf = lambda z: (mix.weights.numpy() * stats.norm.cdf((np.asarray(z)[:, None] - mix.means[:, 0].numpy())  # noqa: E731
                                                           / mix.covs[:, 0, 0].sqrt().numpy())).sum(-1)
    for cfg in [SamplerConfig("ddpm", 1000), SamplerConfig("dpmpp_2m", 50), SamplerConfig("ddim", 100)]:
        x = sample(den, _noise(N, 1), cfg, generator=torch.Generator().manual_seed(3))
        assert stats.kstest(x[:, 0].numpy(), cdf).pvalue > 0.01
        frac = float((x[:, 0] > 0.25).double().mean())
        assert abs(frac - 0.7) < 0.02


def test_sampling_in_the_zero_mean_space():
    # a mixture of 3 points on a line, supported on the zero-mean plane: samples stay zero-mean
    # and match the mixture seen through an orthonormal basis of the plane
    P = torch.eye(3, dtype=f64) - 1 / 3
    basis = torch.linalg.eigh(P).eigenvectors[:, 1:]  # [3, 2], eigenvalues 0, 1, 1
    plane = mixture_2d("three")
    mix3 = GaussianMixture(plane.weights, plane.means @ basis.T, basis @ plane.covs @ basis.T)
    sch, space = LinearSchedule(), ZeroMeanSpace()

    def model(x, t):  # points [B, 3, 1] → exact ε on the plane
        return ExactEpsModel(mix3, sch)(x.reshape(len(x), 3), t).reshape(x.shape)

    den = Denoiser(model, sch, space=space)
    x_T = space.noise(torch.empty(N, 3, 1, dtype=f64), torch.Generator().manual_seed(4))
    x = sample(den, x_T, SamplerConfig("ddpm", 1000), generator=torch.Generator().manual_seed(5))
    assert float(x.mean(1).abs().max()) < 1e-10
    assert_reproduces(plane, x.reshape(N, 3) @ basis)


@pytest.mark.parametrize("steps", [100, 250])
def test_ddim_eta0_is_deterministic_and_inverts(steps):
    sch, mix = LinearSchedule(), mixture_2d("three")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    ts = sch.timesteps(steps, "trailing")
    x_T = _noise(2000, 2)
    assert torch.equal(ddim(den, x_T, ts), ddim(den, x_T.clone(), ts))
    # encode x0 → x_T, then decode back to x0
    x0 = mix.sample(2000, torch.Generator().manual_seed(6))
    latent = ddim_invert(den, x0, ts)
    assert abs(float(latent.std()) - 1) < 0.05  # the encoding is noise-like
    err = float((ddim(den, latent, ts) - x0).abs().max())
    assert err < 1e-3, err


def _deterministic_error(kind, nfe, den, x_T, ref):
    steps = (nfe + 1) // 2 if kind == "heun" else nfe
    x = sample(den, x_T, SamplerConfig(kind, steps=steps, spacing="linspace"))
    return float((x - ref).pow(2).sum(1).mean().sqrt())


def test_solver_order():
    """With the exact model, the error of Heun and DPM-Solver++ falls faster with NFE than
    that of Euler and DDIM: fitted log-log slopes."""
    sch, mix = LinearSchedule(), mixture_2d("three")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    x_T = _noise(500, 2, seed=7)
    ref = sample(den, x_T, SamplerConfig("rk45", steps=1000, spacing="linspace",
                                          options={"rtol": 1e-8, "atol": 1e-8}))
    nfes = [20, 40, 80, 160]
    slopes = {}
    for kind in ["euler", "ddim", "heun", "dpmpp_2m"]:
        errs = [_deterministic_error(kind, n, den, x_T, ref) for n in nfes]
        slopes[kind] = np.polyfit(np.log(nfes), np.log(errs), 1)[0]
    print("error-vs-NFE slopes:", slopes)
    assert -1.2 < slopes["euler"] < -0.8 and -1.2 < slopes["ddim"] < -0.8, slopes
    assert slopes["heun"] < -1.5 and slopes["dpmpp_2m"] < -1.5, slopes
    assert max(slopes["heun"], slopes["dpmpp_2m"]) < min(slopes["euler"], slopes["ddim"]) - 0.4


def test_sampler_config_round_trip_and_errors():
    cfg = SamplerConfig("ddim", steps=50, spacing="leading", guidance_scale=2.0,
                         options={"eta": 0.3})
    assert SamplerConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown sampler setting"):
        SamplerConfig.from_dict({"kind": "ddim", "stpes": 10})
    with pytest.raises(ValueError, match="unknown sampler 'plms'"):
        SamplerConfig("plms")
    sch = LinearSchedule()
    den = Denoiser(lambda x, t, c=None: x, sch)
    with pytest.raises(ValueError, match="null_cond"):
        sample(den, _noise(4, 2), SamplerConfig(guidance_scale=1.0), cond=torch.zeros(4))


def test_callback_sees_every_step():
    sch, mix = LinearSchedule(), mixture_2d("three")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    seen = []
    sample(den, _noise(10, 2), SamplerConfig("dpmpp_2m", steps=7), callback=lambda d: seen.append(d["i"]))
    assert seen == list(range(7))


def test_every_sampler_has_the_common_signature():
    """A sampler is f(denoiser, x, ts, *, cond, generator, callback, progress, **options):
    `sample` calls all of them alike, and their options are what SamplerConfig accepts."""
    for kind, fn in SAMPLERS.items():
        params = inspect.signature(fn).parameters
        assert list(params)[:3] == ["denoiser", "x", "ts"], kind
        keyword = {p.name for p in params.values() if p.kind is p.KEYWORD_ONLY}
        assert set(COMMON_ARGUMENTS) <= keyword, kind
        assert set(sampler_options(kind)) == keyword - set(COMMON_ARGUMENTS), kind
    assert sampler_options("ddim") == {"eta": 0.0}
    assert sampler_options("dpmpp_2m") == {"lower_order_final": False}


def test_sampler_options_are_checked_and_old_records_load():
    with pytest.raises(ValueError, match="sampler 'ddim' has no option variance; its options: eta"):
        SamplerConfig("ddim", options={"variance": "beta"})
    # a record written before `options` (flat settings of every sampler): those of its kind
    # become options, the others are dropped
    old = {"kind": "ddpm", "steps": 5, "spacing": "trailing", "eta": 0.0, "variance": "beta",
           "corrector_steps": 0, "snr": 0.16, "rtol": 1e-5, "atol": 1e-5, "guidance_scale": 0.0}
    assert SamplerConfig.from_dict(old) == SamplerConfig("ddpm", steps=5, options={"variance": "beta"})


def test_sdedit_noises_its_start_inside_sample():
    """start < 1 needs the clean state; a start near 0 returns it nearly unchanged, and the
    state at `start` is q(x_start | init) with the given noise (checked with a denoiser that
    reports its first input)."""
    sch, mix = LinearSchedule(), mixture_2d("three")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    init, noise = mix.sample(200, torch.Generator().manual_seed(3)), _noise(200, 2, seed=4)
    with pytest.raises(ValueError, match="init"):
        sample(den, noise, SamplerConfig("ddim", steps=10, start=0.5))
    near = sample(den, noise, SamplerConfig("ddim", steps=2, start=0.002), init=init)
    assert float((near - init).abs().max()) < 0.05
    first = []
    sample(den, noise, SamplerConfig("ddim", steps=4, start=0.5), init=init,
           callback=lambda d: first.append((d["t"], d["x0"])) if not first else None)
    t = torch.full((200,), 0.5, dtype=f64)
    x_start = q_sample(sch, init, t, noise=noise)
    assert first[0][0] == pytest.approx(0.5)
    torch.testing.assert_close(first[0][1], den(x_start, 0.5)[0])


def test_sample_in_batches_returns_one_sample_per_item_in_order():
    """Batches of molecules of different sizes: each item gets its own rows, on the space
    (centred positions), the same for the same seed, whatever the device generator."""
    sch = LinearSchedule()
    sizes = torch.tensor([3, 5, 2, 4, 1, 6, 2])

    def layout(chunk):
        return MoleculeSpace.from_sizes(chunk), (int(chunk.sum()), 4)

    def denoiser_for(space):  # a network that predicts ε = 0.5 x
        return Denoiser(lambda x, t: 0.5 * x, sch, "eps", space)

    out = sample_in_batches(denoiser_for, sizes, SamplerConfig("ddim", steps=5), layout=layout,
                            batch_size=3, seed=0)
    assert [len(m) for m in out] == sizes.tolist() and all(m.shape[1] == 4 for m in out)
    assert max(float(m[:, :3].mean(0).abs().max()) for m in out) < 1e-4  # CoM-free (float32)
    again = sample_in_batches(denoiser_for, sizes, SamplerConfig("ddim", steps=5), layout=layout,
                              batch_size=3, seed=0)
    assert all(torch.equal(a, b) for a, b in zip(out, again))
    batches = []

    def readout(space, x):
        batches.append(space.num_graphs)
        return [len(m) for m in space.unbatch(x)]

    counts = sample_in_batches(denoiser_for, sizes, SamplerConfig("ddim", steps=5), layout=layout,
                               batch_size=3, seed=0, readout=readout)
    assert batches == [3, 3, 1] and counts == sizes.tolist()


# -- grids -----------------------------------------------------------------------------------

def _sigma(schedule, ts):
    """σ/α = sqrt((1 - ᾱ)/ᾱ), Karras et al.'s σ."""
    return (1 / schedule.snr(ts)).sqrt()


@pytest.mark.parametrize("name", ["linear", "vpsde", "cosine"])
def test_karras_and_logsnr_grids_follow_their_formulas(name):
    sch = make_schedule(name)
    first = sch.first_time()
    ts = make_grid(sch, 12, "karras")
    sig = _sigma(sch, ts[:-1])
    s_max, s_min = float(_sigma(sch, torch.tensor(1.0, dtype=f64))), float(_sigma(sch, torch.tensor(first, dtype=f64)))
    i = torch.arange(12, dtype=f64)
    want = (s_max ** (1 / 7) + i / 11 * (s_min ** (1 / 7) - s_max ** (1 / 7))) ** 7
    torch.testing.assert_close(sig, want, rtol=1e-9, atol=0)
    assert float(ts[0]) == 1.0 and float(ts[-1]) == 0.0 and bool((ts[1:] < ts[:-1]).all())
    ts = make_grid(sch, 8, "karras", sigma_min=0.05, sigma_max=20.0, rho=3.0)
    torch.testing.assert_close(_sigma(sch, ts[[0, -2]]), torch.tensor([20.0, 0.05], dtype=f64), rtol=1e-9, atol=0)
    ts = make_grid(sch, 10, "logsnr", t_min=2e-3)
    lam = sch.log_snr(ts[:-1])
    torch.testing.assert_close(lam[1:] - lam[:-1], (lam[1:] - lam[:-1]).mean().expand(9), rtol=1e-9, atol=0)
    assert float(ts[0]) == 1.0 and float(ts[-2]) == pytest.approx(2e-3, rel=1e-12)
    ts = make_grid(sch, 10, "logsnr", t_min=2e-3, sigma_max=20.0)  # uniform in λ from σ/α = 20
    lam = sch.log_snr(ts[:-1])
    torch.testing.assert_close(lam[1:] - lam[:-1], (lam[1:] - lam[:-1]).mean().expand(9), rtol=1e-9, atol=0)
    assert float(lam[0]) == pytest.approx(-2 * math.log(20.0), rel=1e-9)
    ts = make_grid(sch, 10, "logsnr", sigma_max=20.0)  # without t_min: down to the first trained time
    assert float(sch.log_snr(ts[:1])) == pytest.approx(-2 * math.log(20.0), rel=1e-9)
    assert float(ts[-2]) == pytest.approx(first, rel=1e-9)
    # an SDEdit start: the grid starts there
    assert float(make_grid(sch, 5, "karras", t_max=0.5)[0]) == 0.5
    # without t_min, 'logsnr' keeps its points on the training grid (older checkpoints)
    torch.testing.assert_close(make_grid(sch, 10, "logsnr"), sch.timesteps(10, "logsnr"))


@pytest.mark.parametrize("settings, message", [
    (dict(spacing="cubic"), "unknown timestep spacing 'cubic'"),
    (dict(spacing="karras", sigma_min=2.0, sigma_max=1.0), "sigma_min must be < sigma_max"),
    (dict(spacing="logsnr", t_min=0.0), "t_min must be in (0, 1)"),
    (dict(spacing="logsnr", t_min=0.6, start=0.5), "t_min must be in (0, 0.5)"),
    (dict(spacing="trailing", t_min=1e-3), "t_min applies to the logsnr and karras grids"),
    (dict(spacing="logsnr", sigma_min=10.0), "applies to the karras grid only"),
    (dict(spacing="trailing", sigma_max=10.0), "applies to the logsnr and karras grids"),
    (dict(spacing="logsnr", sigma_max=10.0, start=0.5), "leave sigma_max unset"),
    (dict(spacing="karras", t_min=1e-3, sigma_min=0.1), "give one of them"),
    (dict(spacing="karras", rho=0.0), "rho must be a finite number > 0"),
    (dict(spacing="karras", sigma_max=10.0, start=0.5), "leave sigma_max unset"),
    (dict(spacing="karras", sigma_min=-1.0), "sigma_min must be a finite number > 0"),
])
def test_bad_grids_raise_one_line_errors(settings, message):
    with pytest.raises(ValueError) as info:
        SamplerConfig("dpmpp_2m", steps=10, **settings)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("settings, message", [
    (dict(spacing="logsnr", t_min=1e-4), "below the schedule's first trained time 0.001"),
    (dict(spacing="karras", sigma_min=1e-3), "below the schedule's σ/α"),
    (dict(spacing="karras", sigma_max=1e3), "above the schedule's σ/α"),
])
def test_grids_stay_where_the_model_was_trained(settings, message):
    with pytest.raises(ValueError, match=message):
        SamplerConfig("ddim", steps=10, **settings).timesteps(LinearSchedule())


def test_grid_settings_round_trip_and_old_records_load():
    cfg = SamplerConfig("dpmpp_3m", steps=10, spacing="karras", sigma_min=0.02, rho=5.0,
                        options={"lower_order_final": True})
    assert SamplerConfig.from_dict(cfg.to_dict()) == cfg
    old = {"kind": "dpmpp_2m", "steps": 20, "spacing": "logsnr", "guidance_scale": 0.0,
           "start": 1.0, "options": {}}  # a checkpoint's record from before the grids
    assert SamplerConfig.from_dict(old).timesteps(LinearSchedule()).tolist() == \
        LinearSchedule().timesteps(20, "logsnr").tolist()
    from molgen.train.config import load_config
    assert load_config(["sampler.spacing=logsnr", "sampler.t_min=0.002"]).sampler.t_min == 0.002


def test_sampler_specs_and_replace():
    base = SamplerConfig("ddim", steps=50, spacing="logsnr", t_min=0.002, options={"eta": 0.5})
    # same kind: options and grid kept unless set
    assert SamplerConfig.from_spec("ddim:20", base) == SamplerConfig(
        "ddim", steps=20, spacing="logsnr", t_min=0.002, options={"eta": 0.5})
    # another kind drops the old kind's options; another spacing resets the grid's parameters
    got = SamplerConfig.from_spec("dpmpp_2m:10:spacing=karras:rho=5:lower_order_final=true", base)
    assert got == SamplerConfig("dpmpp_2m", steps=10, spacing="karras", rho=5,
                                options={"lower_order_final": True})
    assert SamplerConfig.from_spec("ddim:10:eta=1").options == {"eta": 1}
    assert base.replace(spacing="trailing") == SamplerConfig("ddim", steps=50, options={"eta": 0.5})
    for spec, message in [("ddim", "<kind>:<steps>"), ("ddim:x", "<kind>:<steps>"),
                          ("ddim:10:eta", "not <setting>=<value>"), ("foo:10", "unknown sampler"),
                          ("ddpm:10:eta=1", "no option eta"), ("ddim:10:spacing=trailing:t_min=0.1", "t_min")]:
        with pytest.raises(ValueError, match=message) as info:
            SamplerConfig.from_spec(spec)
        assert "\n" not in str(info.value) and spec in str(info.value)


# -- DPM-Solver++(3M) and (2M) SDE -------------------------------------------------------------

def _reference_dpmpp(den, x, ts, orders, eta=0.0, noises=None):
    """The states after each step of DPM-Solver++ as k-diffusion writes it in the variables
    x̃ = x/α, σ̃ = σ/α (sample_dpmpp_2m_sde with its midpoint correction, the third-order
    update of sample_dpmpp_3m_sde), with the order of each step given: an independent
    transcription of the closed-form steps, to check ours step by step."""
    sch, out, old = den.schedule, [], []
    a, sig = sch.alpha(ts).tolist(), _sigma(sch, ts[:-1]).tolist()
    xv = x / a[0]
    for i, k in enumerate(orders):
        denoised = den(a[i] * xv, float(ts[i]))[0]
        if i == len(ts) - 2:  # sigma_{i+1} = 0: the denoising step
            out.append(denoised)
            break
        h = math.log(sig[i]) - math.log(sig[i + 1])
        eta_h = eta * h
        xv = sig[i + 1] / sig[i] * math.exp(-eta_h) * xv - math.expm1(-h - eta_h) * denoised
        if k == 2:
            r = old[0][1] / h
            xv = xv - 0.5 * math.expm1(-h - eta_h) * (1 / r) * (denoised - old[0][0])
        if k == 3:
            (d_1, h_1), (d_2, h_2) = old
            r0, r1 = h_1 / h, h_2 / h
            d1_0, d1_1 = (denoised - d_1) / r0, (d_1 - d_2) / r1
            d1 = d1_0 + (d1_0 - d1_1) * r0 / (r0 + r1)
            d2 = (d1_0 - d1_1) / (r0 + r1)
            h_eta = h * (eta + 1)
            phi_2 = math.expm1(-h_eta) / h_eta + 1
            phi_3 = phi_2 / h_eta - 0.5
            xv = xv + phi_2 * d1 - phi_3 * d2
        if eta:
            xv = xv + noises[i] * sig[i + 1] * math.sqrt(-math.expm1(-2 * eta_h))
        old = [(denoised, h)] + old[:1]
        out.append(a[i + 1] * xv)
    return out


@pytest.mark.parametrize("solver, options, orders", [
    (dpmpp_3m, {}, [1, 2, 3, 3, 3, 3, 3, 3, 3, 1]),
    (dpmpp_3m, {"lower_order_final": True}, [1, 2, 3, 3, 3, 3, 3, 2, 1, 1]),
    (dpmpp_2m, {"lower_order_final": True}, [1, 2, 2, 2, 2, 2, 2, 2, 1, 1]),
    (dpmpp_2m_sde, {"eta": 1.0}, [1, 2, 2, 2, 2, 2, 2, 2, 2, 1]),
    (dpmpp_2m_sde, {"eta": 0.5, "lower_order_final": True}, [1, 2, 2, 2, 2, 2, 2, 2, 1, 1]),
])
def test_dpmpp_solvers_match_the_reference_formulas_step_by_step(solver, options, orders):
    sch, mix = LinearSchedule(), mixture_2d("three")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    ts, x_T = make_grid(sch, 10, "logsnr", t_min=1e-3), _noise(300, 2, seed=8)
    gen = torch.Generator().manual_seed(9)
    noises = [torch.randn(300, 2, generator=gen, dtype=f64) for _ in range(9)]
    seen = []
    solver(den, x_T, ts, generator=torch.Generator().manual_seed(9),
           callback=lambda d: seen.append(d["x"]), **options)
    ref = _reference_dpmpp(den, x_T, ts, orders, eta=options.get("eta", 0.0), noises=noises)
    assert len(seen) == len(ref) == 10
    for i, (ours, theirs) in enumerate(zip(seen, ref)):
        torch.testing.assert_close(ours, theirs, rtol=1e-10, atol=1e-10, msg=f"step {i}")


def test_dpmpp_2m_sde_limits():
    """η = 0 is DPM-Solver++(2M); with η = 1 its first (first-order) step is DDPM's = DDIM η = 1."""
    sch, mix = LinearSchedule(), mixture_2d("three")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    ts, x_T = make_grid(sch, 7, "karras"), _noise(200, 2, seed=10)
    assert torch.equal(dpmpp_2m_sde(den, x_T, ts, eta=0.0), dpmpp_2m(den, x_T, ts))
    two = torch.tensor([0.6, 0.3, 0.0], dtype=f64)
    first = []
    dpmpp_2m_sde(den, x_T, two, generator=torch.Generator().manual_seed(11),
                 callback=lambda d: first.append(d["x"]) if not first else None)
    ddim(den, x_T, two, eta=1.0, generator=torch.Generator().manual_seed(11),
         callback=lambda d: first.append(d["x"]) if len(first) == 1 else None)
    torch.testing.assert_close(first[0], first[1], rtol=1e-12, atol=1e-12)


def test_dpmpp_3m_converges_at_third_order_on_the_mixture():
    """Against 1000 steps of the same grid (logsnr to t_min = 1e-3): the error falls with the
    steps, about as steps^-3 by 20..80 steps, and is below DDIM's and DPM-Solver++(2M)'s at
    every NFE from 10 on."""
    sch, mix = LinearSchedule(), mixture_2d("ring")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    x_T = _noise(400, 2, seed=7)
    grid = dict(spacing="logsnr", t_min=1e-3)
    ref = sample(den, x_T, SamplerConfig("dpmpp_3m", 1000, **grid))
    nfes = [10, 20, 40, 80]
    err = {kind: [float((sample(den, x_T, SamplerConfig(kind, n, **grid)) - ref).pow(2).sum(1).mean().sqrt())
                  for n in nfes] for kind in ("ddim", "dpmpp_2m", "dpmpp_3m")}
    print("RMS error vs the 1000-step reference:", err)
    assert all(a > b for a, b in zip(err["dpmpp_3m"], err["dpmpp_3m"][1:])), err
    assert np.polyfit(np.log(nfes[1:]), np.log(err["dpmpp_3m"][1:]), 1)[0] < -2.3, err
    for n, e3, e2, e1 in zip(nfes, err["dpmpp_3m"], err["dpmpp_2m"], err["ddim"]):
        assert e3 < e2 < e1, (n, err)


def test_dpmpp_2m_sde_converges_and_beats_ddpm_on_the_mixture():
    """The reverse-SDE solvers' error in E|x|^2 (exact: 4.08, the limit of 1000 steps), same
    x_T and noise seed: DPM-Solver++(2M) SDE's falls with the steps and is below DDPM's (its
    first-order counterpart) at 20 and 50 NFE on the logsnr grid (at 10 it overshoots)."""
    sch, mix = LinearSchedule(), mixture_2d("ring")
    den = Denoiser(ExactEpsModel(mix, sch), sch)
    exact = float((mix.weights * (mix.means.pow(2).sum(1) + mix.covs.diagonal(dim1=1, dim2=2).sum(1))).sum())
    x_T = _noise(4000, 2, seed=1)
    err = {kind: [abs(float(sample(den, x_T, SamplerConfig(kind, n, spacing="logsnr", t_min=1e-3),
                                   generator=torch.Generator().manual_seed(11)).pow(2).sum(1).mean()) - exact)
                  for n in (10, 20, 50)] for kind in ("ddpm", "dpmpp_2m_sde")}
    print("|E|x|^2 - exact|:", err)
    assert err["dpmpp_2m_sde"][0] > err["dpmpp_2m_sde"][1] > err["dpmpp_2m_sde"][2], err
    assert err["dpmpp_2m_sde"][1] < err["ddpm"][1] and err["dpmpp_2m_sde"][2] < 0.5 * err["ddpm"][2], err
