"""The tensor-product denoiser (molgen.nn.nequip) as a drop-in for the EGNN: E(3) symmetry with
parity, permutations, CoM-free positions, continuity at the cutoff, the core's sampler and
loss, and torch.compile."""
import time

import pytest
import torch

from molgen.diffusion import LinearSchedule, SamplerConfig, diffusion_loss, sample
from molgen.diffusion.spaces import POS, MoleculeSpace
from molgen.diffusion.denoiser import graph_denoiser
from molgen.nn.nequip import NequIP

from molecule_helpers import F, com, f64, gen, shuffled_space, state, symmetry_errors

SMALL = dict(irreps_hidden="8x0e + 4x1o + 2x2e", layers=2, num_basis=6, radial_hidden=16, time_dim=16)


def _net(**kwargs):
    """A float64 network built in float64: e3nn computes its Clebsch–Gordan constants in the
    default dtype, and .double() of a float32 build keeps them rounded to float32 (the
    equivariance errors are then ~1e-10 rather than ~1e-16)."""
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(f64)
    try:
        return NequIP(F, **kwargs)
    finally:
        torch.set_default_dtype(default)


@pytest.mark.parametrize("cutoff", [None, 2.5], ids=["fully_connected", "radius"])
@pytest.mark.parametrize("proper", [True, False], ids=["rotation", "reflection"])
@torch.no_grad()
def test_nequip_is_e3_and_permutation_equivariant(cutoff, proper):
    # three layers, so that the vector and l = 2 channels feed back into later layers
    space = shuffled_space([3, 8, 5])  # the radius graph keeps 24 of the 82 edges
    net = _net(irreps_hidden="8x0e + 4x1o + 2x2e", layers=3, cutoff=cutoff)
    x, t = state(space), torch.tensor([0.2, 0.5, 0.9], dtype=f64)
    out, e3_error, perm_error = symmetry_errors(net, space, x, t, proper)
    assert e3_error < 1e-12 and perm_error < 1e-12
    assert out.shape == x.shape
    assert float(out[:, :POS].abs().max()) > 0.01 and float(out[:, POS:].abs().max()) > 0.01
    assert float(com(space, out).abs().max()) < 1e-12


@torch.no_grad()
def test_output_is_continuous_as_an_atom_crosses_the_cutoff():
    """The envelope fades a message out before its edge leaves the radius graph."""
    space = MoleculeSpace.from_sizes([2])
    net = _net(cutoff=2.0, **SMALL)
    x = torch.cat([torch.zeros(2, POS, dtype=f64), state(space)[:, POS:]], 1)
    out = []
    for d in (2.0 - 1e-6, 2.0 + 1e-6):
        x[1, 0] = d
        out.append(net(x, torch.tensor([0.5], dtype=f64), space=space))
    assert float((out[0] - out[1]).abs().max()) < 1e-9


def _molecules():
    return MoleculeSpace.from_sizes([3, 7, 5]), _net(**SMALL), LinearSchedule()


def test_core_sampler_runs_on_molecules():
    space, net, sch = _molecules()
    x_T = space.noise(torch.empty(15, POS + F, dtype=f64), gen(4))
    x = sample(graph_denoiser(net, sch, space), x_T, SamplerConfig("dpmpp_2m", steps=5))
    assert x.shape == x_T.shape and bool(x.isfinite().all())
    assert float(com(space, x).abs().max()) < 1e-10 * float(x.abs().max())


def test_diffusion_loss_trains_every_parameter():
    space, net, sch = _molecules()
    loss = diffusion_loss(graph_denoiser(net, sch, space), space.project(state(space)), generator=gen(5))
    loss.mean().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and bool(p.grad.isfinite().all()), name
        assert float(p.grad.abs().max()) > 0, name


def test_condition_is_required_exactly_when_declared():
    space = MoleculeSpace.from_sizes([2, 3])
    x, t = state(space), torch.tensor([0.3, 0.7], dtype=f64)
    conditioned = _net(cond_dim=2, **SMALL)
    out = conditioned(x, t, torch.randn(2, 2, dtype=f64), space=space)
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="takes a condition"):
        conditioned(x, t, space=space)
    with pytest.raises(ValueError, match="takes no condition"):
        _net(**SMALL)(x, t, torch.zeros(2, 2, dtype=f64), space=space)


@pytest.mark.slow
@pytest.mark.parametrize("cutoff", [None, 2.5], ids=["fully_connected", "radius"])
def test_torch_compile_matches_eager(cutoff):
    """CPU inductor: the graph builders have data-dependent sizes (graph breaks), the e3nn
    layers between them compile."""
    space = shuffled_space([3, 8, 5])
    torch.manual_seed(0)
    net = NequIP(F, cutoff=cutoff)
    x, t = state(space).float(), torch.tensor([0.2, 0.5, 0.9])
    compiled = torch.compile(net)
    start = time.perf_counter()
    out = compiled(x, t, space=space)
    print(f"first compiled call: {time.perf_counter() - start:.1f} s")
    with torch.no_grad():
        torch.testing.assert_close(out, net(x, t, space=space), rtol=0, atol=1e-5)
    out.square().sum().backward()
    assert all(p.grad is not None for p in net.parameters())
