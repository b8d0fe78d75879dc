"""Molecule space, graphs and EGNN: E(3) and permutation symmetry, CoM-freeness, and the
core's samplers, loss, guidance and likelihood running unchanged on graph batches."""
import math

import pytest
import torch

from molgen.diffusion import CFGDenoiser, LinearSchedule, SamplerConfig, diffusion_loss, log_likelihood, sample
from molgen.nn.egnn import EGNN
from molgen.diffusion.spaces import POS, MoleculeSpace
from molgen.nn.graphs import fully_connected_edges, radius_edges
from molgen.diffusion.denoiser import graph_denoiser

from molecule_helpers import F, com, f64, gen, shuffled_space, state, symmetry_errors, unit_scale


# ---------------------------------------------------------------------------- the space


def test_space_counts_sums_and_expands_per_molecule():
    space = shuffled_space([1, 4, 9])
    x = state(space)
    torch.testing.assert_close(space.dim(x), torch.tensor([0 + 5, 9 + 20, 24 + 45], dtype=f64))
    for g in range(3):
        rows = space.batch == g
        torch.testing.assert_close(space.sum(x)[g], x[rows].sum())
        assert bool((space.expand(torch.arange(3.0, dtype=f64), x)[rows] == g).all())
    p = space.project(x)
    assert float(com(space, p).abs().max()) < 1e-13
    assert torch.equal(p[:, POS:], x[:, POS:])


def test_noise_is_com_free_with_squared_norm_equal_to_the_dimension():
    space, k = shuffled_space([1, 4, 9]), 4000
    x = space.repeat(state(space), k)  # k copies: one noise call draws k samples per molecule
    z = space.noise(x, gen(1))
    assert float(com(space, z).abs().max()) < 1e-12
    sq = space.sum(z**2).reshape(k, 3)
    dim = space.dim(x)[:3]
    se = (2 * dim / k).sqrt()  # ‖z‖² ~ χ²(dim)
    assert bool(((sq.mean(0) - dim).abs() < 4 * se).all()), (sq.mean(0), dim)


def test_pack_and_unpack_round_trip():
    space = MoleculeSpace.from_sizes([2, 3])
    types, charges = torch.tensor([0, 3, 1, 1, 2]), torch.tensor([6, 8, 1, 1, 7])
    x = space.pack(torch.randn(5, 3, dtype=f64), torch.nn.functional.one_hot(types, 4), charges)
    pos, t, c = space.unpack(x, 4)
    assert torch.equal(t, types) and torch.equal(c, charges)
    assert float(com(space, x).abs().max()) < 1e-13


# ---------------------------------------------------------------------------- graphs


def _brute_force_edges(pos, batch, cutoff):
    n = len(batch)
    return {(j, i) for i in range(n) for j in range(n)
            if i != j and batch[i] == batch[j] and float((pos[i] - pos[j]).norm()) < cutoff}


def test_graphs_equal_brute_force():
    space = shuffled_space([1, 2, 6, 11])
    pos = state(space)[:, :POS]
    for cutoff, edges in ((math.inf, fully_connected_edges(space.batch, 4)),
                          (2.0, radius_edges(pos, space.batch, 4, 2.0))):
        pairs = set(map(tuple, edges.T.tolist()))
        assert len(pairs) == edges.shape[1]
        assert pairs == _brute_force_edges(pos, space.batch, cutoff)
    assert 0 < edges.shape[1] < fully_connected_edges(space.batch, 4).shape[1]


# ---------------------------------------------------------------------------- EGNN symmetry


@pytest.mark.parametrize("cutoff", [None, 2.5], ids=["fully_connected", "radius"])
@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "reflection"])
@torch.no_grad()
def test_egnn_is_e3_and_permutation_equivariant(cutoff, proper):
    space = shuffled_space([3, 8, 5])  # the radius graph keeps 24 of the 82 edges
    net = unit_scale(EGNN(F, hidden=16, layers=3, cutoff=cutoff)).double()
    x, t = state(space), torch.tensor([0.2, 0.5, 0.9], dtype=f64)
    out, e3_error, perm_error = symmetry_errors(net, space, x, t, proper)
    assert e3_error < 1e-10 and perm_error < 1e-10
    assert float(out[:, :POS].abs().max()) > 0.1 and float(out[:, POS:].abs().max()) > 0.1
    assert float(com(space, out).abs().max()) < 1e-12


# ---------------------------------------------------------------------------- the core on molecules


def _molecules(cond_dim=0):
    torch.manual_seed(0)
    space = MoleculeSpace.from_sizes([3, 7, 5])
    net = EGNN(F, hidden=16, layers=2, cond_dim=cond_dim).double()
    return space, net, LinearSchedule()


@pytest.mark.parametrize("kind", ["ddim", "dpmpp_2m"])
def test_core_samplers_run_unchanged_on_molecules(kind):
    space, net, sch = _molecules()
    x_T = space.noise(torch.empty(15, POS + F, dtype=f64), gen(4))
    x = sample(graph_denoiser(net, sch, space), x_T, SamplerConfig(kind, steps=10))
    assert x.shape == x_T.shape and bool(x.isfinite().all())
    assert float(com(space, x).abs().max()) < 1e-10 * float(x.abs().max())


def test_diffusion_loss_trains_the_egnn():
    space, net, sch = _molecules()
    x0 = space.project(state(space))
    loss = diffusion_loss(graph_denoiser(net, sch, space), x0, generator=gen(5))
    assert loss.shape == (3,)
    loss.mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and bool(g.isfinite().all()) for g in grads)
    assert all(float(g.abs().max()) > 0 for g in grads)


def test_cfg_on_a_graph_batch_is_one_forward_of_both_passes():
    space, net, sch = _molecules(cond_dim=2)
    rows = []

    def counting(x, t, cond, *, space):
        rows.append(len(x))
        return net(x, t, cond, space=space)

    den = graph_denoiser(counting, sch, space)
    x, c, null = space.project(state(space)), torch.randn(3, 2, dtype=f64), torch.zeros(2, dtype=f64)
    t = torch.tensor([0.3, 0.6, 0.8], dtype=f64)
    x0, eps = CFGDenoiser(den, 2.0, null)(x, t, c)
    assert rows == [30]
    x0_c, eps_c = den(x, t, c)
    x0_u, eps_u = den(x, t, null.expand_as(c))
    torch.testing.assert_close(eps, 3 * eps_c - 2 * eps_u, rtol=0, atol=1e-12)
    torch.testing.assert_close(x0, 3 * x0_c - 2 * x0_u, rtol=0, atol=1e-12)


def test_exact_likelihood_counts_the_com_free_dimensions():
    # positions ~ N(0, s² P) on each molecule's CoM-free subspace, features ~ N(μ, diag s_f²):
    # the noised marginal stays Gaussian, so ε* and log p are closed form
    space, sch = MoleculeSpace.from_sizes([2, 3, 5]), LinearSchedule()
    scale = torch.tensor([0.7] * POS + [0.5, 0.8], dtype=f64)
    mean = torch.tensor([0.0] * POS + [0.3, -0.2], dtype=f64)

    def exact_eps(x, t):
        a, s = space.expand(sch.alpha(t), x), space.expand(sch.sigma(t), x)
        return space.project(s * (x - a * mean) / (a**2 * scale**2 + s**2))

    x = space.project(mean + scale * torch.randn(10, POS + 2, generator=gen(6), dtype=f64))
    out = log_likelihood(graph_denoiser(lambda x, t, space: exact_eps(x, t), sch, space), x, trace="exact")
    z = (x - mean) / scale
    expected = -0.5 * space.sum(z**2) - space.sum(torch.log(scale).expand_as(x)) \
        - 0.5 * space.dim(x) * math.log(2 * math.pi)
    expected = expected + POS * math.log(scale[0])  # one atom's positions: the removed CoM
    rel = ((out["logp"] - expected).abs() / expected.abs()).max()
    assert float(rel) < 0.01, (out["logp"], expected)
