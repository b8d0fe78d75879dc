"""Exact likelihood through the probability-flow ODE against closed forms."""
import math

import torch

from molgen.diffusion import Denoiser, LinearSchedule, VPSDESchedule, ZeroMeanSpace, log_likelihood
from molgen.data.toy import ExactEpsModel, GaussianMixture

f64 = torch.float64
MU = torch.tensor([0.5, -1.0], dtype=f64)
COV = torch.tensor([[0.3, 0.1], [0.1, 0.2]], dtype=f64)


def _gaussian_logp(x, mu, cov):
    d = len(mu)
    diff = x - mu
    quad = (diff @ torch.linalg.inv(cov) * diff).sum(1)
    return -0.5 * (quad + torch.logdet(cov) + d * math.log(2 * math.pi))


def test_exact_trace_likelihood_matches_closed_form():
    sch = LinearSchedule()
    data = GaussianMixture([1.0], MU[None], COV[None])
    den = Denoiser(ExactEpsModel(data, sch), sch)
    x = data.sample(64, torch.Generator().manual_seed(0))
    out = log_likelihood(den, x, trace="exact")
    expected = _gaussian_logp(x, MU, COV)
    rel = ((out["logp"] - expected).abs() / expected.abs()).max()
    assert float(rel) < 0.01, float(rel)
    torch.testing.assert_close(out["bits_per_dim"], out["nll"] / (2 * math.log(2)))
    assert out["nfe"] > 10


def test_hutchinson_likelihood_is_unbiased():
    sch = VPSDESchedule()
    data = GaussianMixture([1.0], MU[None], COV[None])
    den = Denoiser(ExactEpsModel(data, sch), sch)
    x = data.sample(20_000, torch.Generator().manual_seed(1))
    out = log_likelihood(den, x, trace="hutchinson", generator=torch.Generator().manual_seed(2))
    err = out["logp"] - _gaussian_logp(x, MU, COV)
    # one probe per sample: noisy per sample, but its mean is within 4 standard errors of 0
    assert float(err.mean().abs()) < 4 * float(err.std()) / len(x) ** 0.5, (float(err.mean()), float(err.std()))


def test_likelihood_counts_only_the_dimensions_of_the_space():
    # Gaussian data on the zero-mean plane of R^3: the density is 2-dimensional
    P = torch.eye(3, dtype=f64) - 1 / 3
    basis = torch.linalg.eigh(P).eigenvectors[:, 1:]
    data = GaussianMixture([1.0], (MU @ basis.T)[None], (basis @ COV @ basis.T)[None])
    sch, space = LinearSchedule(), ZeroMeanSpace()

    def model(x, t):
        return ExactEpsModel(data, sch)(x.reshape(len(x), 3), t).reshape(x.shape)

    den = Denoiser(model, sch, space=space)
    x = data.sample(32, torch.Generator().manual_seed(3)).reshape(32, 3, 1)
    out = log_likelihood(den, x, trace="exact")
    expected = _gaussian_logp(x.reshape(32, 3) @ basis, MU, COV)
    rel = ((out["logp"] - expected).abs() / expected.abs()).max()
    assert float(rel) < 0.01, float(rel)
    torch.testing.assert_close(out["bits_per_dim"], out["nll"] / (2 * math.log(2)))
