"""Every sampler, driven by the exact model of a Gaussian mixture, reproduces the mixture."""
import inspect
import math

import numpy as np
import pytest
import torch
from scipy import stats

from molgen.diffusion import (SAMPLERS, Denoiser, LinearSchedule, MoleculeSpace, SamplerConfig, ZeroMeanSpace,
                              ddim, ddim_invert, make_schedule, q_sample, sample, sample_in_batches,
                              sampler_options)
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
    assert sampler_options("ddim") == {"eta": 0.0} and sampler_options("dpmpp_2m") == {}


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
