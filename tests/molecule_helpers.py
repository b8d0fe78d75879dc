"""Shared by the tests of molecule denoisers (test_geometry: the EGNN, test_nequip): random
batches with interleaved molecules, random orthogonal maps, and the E(3) × permutation check
every denoiser on a `MoleculeSpace` must pass."""
import importlib.util

import pytest
import torch

from molgen.data import qm9
from molgen.diffusion.spaces import POS, MoleculeSpace

f64 = torch.float64
needs_qm9 = pytest.mark.skipif(
    importlib.util.find_spec("qm9pack") is None
    or not (qm9.default_data_root() / qm9.SPLIT_FILE).is_file(),
    reason="QM9 needs qm9pack and EDM's split file (MOLGEN_DATA)")

F = 5  # feature columns: 4 one-hot types and a charge


def gen(seed):
    return torch.Generator().manual_seed(seed)


def shuffled_space(sizes, seed=0):
    """Molecules whose atoms are interleaved in row order (an unsorted graph index)."""
    batch = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))
    return MoleculeSpace(batch[torch.randperm(len(batch), generator=gen(seed))], len(sizes))


def unit_scale(net, seed=123):
    """Weights of scale 1/√fan-in everywhere: EGNN's initial coordinate steps are ~1e-3,
    which would make equivariance errors, or differences between two implementations, small
    whether or not they are there."""
    g = gen(seed)
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=p.dtype) / p.shape[-1] ** 0.5)
    return net


def state(space, seed=0, spread=1.5):
    return spread * torch.randn(len(space.batch), POS + F, generator=gen(seed), dtype=f64)


def orthogonal(seed, proper: bool):
    """A random rotation (det +1) or rotoreflection (det −1)."""
    q, r = torch.linalg.qr(torch.randn(3, 3, generator=gen(seed), dtype=f64))
    q = q * torch.sign(torch.diagonal(r))
    if (torch.linalg.det(q) > 0) != proper:
        q = q @ torch.diag(torch.tensor([-1.0, 1.0, 1.0], dtype=f64))
    return q


def com(space, x):
    """Per-molecule sum of positions [B, 3]."""
    return torch.stack([space.sum(x[:, i:i + 1]) for i in range(POS)], 1)


def symmetry_errors(net, space, x, t, proper: bool):
    """The output of net(x, t, space=space) and its largest deviations from equivariance:
    (out, E(3) error, permutation error).

    E(3): every molecule rotated (proper) or rotoreflected by one map and shifted by its own
    vector; the positions' output (ε or a displacement) must turn with the map and ignore the
    shift, the features' output must not change.  Permutation: the rows shuffled across
    molecules, graph index with them; the output rows must follow."""
    out = net(x, t, space=space)
    q = orthogonal(1, proper)
    shift = torch.randn(space.num_graphs, POS, generator=gen(2), dtype=f64)[space.batch]
    moved = torch.cat([x[:, :POS] @ q.T + shift, x[:, POS:]], 1)
    expected = torch.cat([out[:, :POS] @ q.T, out[:, POS:]], 1)
    e3 = float((net(moved, t, space=space) - expected).abs().max())

    perm = torch.randperm(len(x), generator=gen(3))
    permuted = MoleculeSpace(space.batch[perm], space.num_graphs)
    return out, e3, float((net(x[perm], t, space=permuted) - out[perm]).abs().max())
