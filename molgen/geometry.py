"""Molecules as states of the diffusion: one tensor per batch, its space, and its graphs.

A batch of B molecules with N atoms in all is one tensor x [N, 3 + F], one row per atom:
its position (3 columns) and then its features (F columns: one-hot atom types, optionally
the formal charge), as in EDM (Hoogeboom et al. 2022).  Which molecule a row belongs to is
the graph index `batch` [N] (torch-geometric's), held by the `MoleculeSpace` of the batch.

Positions matter only up to translation, so each molecule's positions live on its
centre-of-mass-free subspace Σ_{i∈g} x_i = 0: a Gaussian there is a projected Gaussian with
(n_g − 1)·3 degrees of freedom, and an E(3)-equivariant denoiser keeps samples on it.
Features are diffused jointly as plain Euclidean coordinates.

How the network gets the graph: the core calls `model(x, t[, cond])`, so the space of the
batch is bound to the network, `functools.partial(net, space=space)`, when the batch's
`Denoiser` is built (`molecule_denoiser`); a Denoiser is a few attributes, built per batch.
The network reads the graph index and the molecule count from the space (`index(x)`,
`batch_size(x)`), which also understands the k-fold repeats of `repeat`, so guidance doubles
a batch without a second space.
"""
from __future__ import annotations

import functools
from typing import Iterator

import torch
from torch import Tensor

from .diffusion.denoiser import Denoiser
from .diffusion.schedules import NoiseSchedule
from .diffusion.spaces import EuclideanSpace
from .networks import sinusoidal_embedding

POS = 3
ONE_HOT_SCALE = 0.25
"""EDM's scale of one-hot atom types (and 0.1 of charges): smaller features lose their signal
to the noise earlier in the forward process, so the reverse process settles the positions
first and the atom types and charges after them (Hoogeboom et al. 2022, App. B)."""
CHARGE_SCALE = 0.1


def segment_sum(values: Tensor, index: Tensor, num_segments: int) -> Tensor:
    """Σ of the rows of `values` per segment: [N, ...] → [num_segments, ...]."""
    out = values.new_zeros((num_segments, *values.shape[1:]))
    return out.index_add_(0, index, values)


class GraphSpace(EuclideanSpace):
    """States [k·N, D] whose rows belong to B samples by a graph index `batch` [N]: atoms of
    molecules, torsions of conformers.  Rows are unconstrained (see `MoleculeSpace`); a
    sample may have no rows at all.

    A state may hold k ≥ 1 copies of the batch stacked along rows, as `repeat` makes them;
    copy j's samples are j·B … j·B + B − 1, so every per-sample quantity ([k·B]) lines up
    with k concatenated copies of t and conditions.
    """

    def __init__(self, batch: Tensor, num_graphs: int | None = None):
        self.batch = batch.long()
        self.num_graphs = int(batch.max()) + 1 if num_graphs is None else int(num_graphs)
        self.sizes = torch.bincount(self.batch, minlength=self.num_graphs)

    @classmethod
    def from_sizes(cls, sizes, device=None):
        """Samples of the given row counts, their rows consecutive."""
        sizes = torch.as_tensor(sizes, device=device)
        return cls(torch.repeat_interleave(torch.arange(len(sizes), device=device), sizes), len(sizes))

    def copies(self, x: Tensor) -> int:
        k, rest = divmod(x.shape[0], len(self.batch))
        if rest or not k:
            raise ValueError(f"a state of {x.shape[0]} rows is not a repeat of this batch of "
                             f"{len(self.batch)} rows")
        return k

    def index(self, x: Tensor) -> Tensor:
        """The sample of each row of x [k·N]: batch + j·B on copy j."""
        offsets = torch.arange(self.copies(x), device=x.device) * self.num_graphs
        return (self.batch.to(x.device)[None] + offsets[:, None]).reshape(-1)

    def batch_size(self, x: Tensor) -> int:
        return self.copies(x) * self.num_graphs

    def sum(self, x: Tensor) -> Tensor:
        return segment_sum(x.reshape(x.shape[0], -1).sum(1), self.index(x), self.batch_size(x))

    def dim(self, x: Tensor) -> Tensor:
        return self._sizes(x) * x[0].numel()

    def expand(self, s: Tensor, x: Tensor) -> Tensor:
        return s[self.index(x)].reshape(-1, *([1] * (x.ndim - 1)))

    def subset(self, start: int, stop: int):
        """Samples start … stop − 1 (of a single copy) as a batch: their space and the rows
        holding them, so a batch is divided by samples, never through one."""
        rows = (self.batch >= start) & (self.batch < stop)
        return type(self)(self.batch[rows] - start, stop - start), rows

    def basis(self, x: Tensor) -> Iterator[Tensor]:
        """Unit vectors at the r-th row of every sample, for each rank r and column."""
        rank = atom_ranks(self.index(x), self.batch_size(x))
        for r in range(int(self.sizes.max())):
            for col in range(x.shape[1]):
                e = torch.zeros_like(x)
                e[rank == r, col] = 1.0
                yield e

    def _sizes(self, x: Tensor) -> Tensor:
        """Row count per sample [k·B], in x's dtype."""
        return self.sizes.to(device=x.device, dtype=x.dtype).repeat(self.copies(x))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_graphs={self.num_graphs}, rows={len(self.batch)})"


class MoleculeSpace(GraphSpace):
    """The states [k·N, 3 + F] of a batch of B molecules (graph index `batch` [N], a row per
    atom): positions on each molecule's centre-of-mass-free subspace, features unconstrained."""

    def project(self, x: Tensor) -> Tensor:
        """Subtract each molecule's mean position; features are left as they are."""
        index, pos = self.index(x), x[:, :POS]
        mean = segment_sum(pos, index, self.batch_size(x)) / self._sizes(x)[:, None]
        return torch.cat([pos - mean[index], x[:, POS:]], dim=1)

    def dim(self, x: Tensor) -> Tensor:
        """(n − 1)·3 + n·F per molecule: the centre of mass carries no degrees of freedom."""
        n = self._sizes(x)
        return (n - 1) * POS + n * (x[0].numel() - POS)

    def pack(self, pos: Tensor, one_hot: Tensor, charges: Tensor | None = None) -> Tensor:
        """The state of data: centred positions, scaled one-hot types and charges."""
        features = [one_hot.to(pos.dtype) * ONE_HOT_SCALE]
        if charges is not None:
            features.append(charges.to(pos.dtype).reshape(-1, 1) * CHARGE_SCALE)
        return self.project(torch.cat([pos, *features], dim=1))

    @staticmethod
    def unpack(x: Tensor, num_types: int) -> tuple[Tensor, Tensor, Tensor | None]:
        """Positions, atom types (argmax of the one-hot block) and integer charges (None if
        the state has no charge column) of a state."""
        pos, one_hot, rest = x.split([POS, num_types, x.shape[1] - POS - num_types], dim=1)
        charges = (rest[:, 0] / CHARGE_SCALE).round().long() if rest.shape[1] else None
        return pos, one_hot.argmax(1), charges


def molecule_denoiser(net, schedule: NoiseSchedule, space: GraphSpace,
                      prediction: str = "eps") -> Denoiser:
    """The core's denoiser for one batch of a GraphSpace (molecules, conformers' torsions):
    the network, called as net(x, t[, cond], space=...), bound to the batch's space (see the
    module docstring)."""
    return Denoiser(functools.partial(net, space=space), schedule, prediction, space)



def network_inputs(x: Tensor, t: Tensor, cond: Tensor | None, space: MoleculeSpace,
                   time_mlp, time_dim: int, cond_dim: int, dtype: torch.dtype):
    """What a molecule denoiser reads from a state: the graph index and molecule count, the
    positions, and per atom [features | its molecule's time embedding | its condition].

    The time goes in as a sinusoidal embedding followed by `time_mlp`; the condition [B, ·]
    is required exactly when the network was built with cond_dim > 0.
    """
    if (cond is None) != (cond_dim == 0):
        raise ValueError(f"this network takes {'a' if cond_dim else 'no'} condition "
                         f"(cond_dim={cond_dim})")
    index, num = space.index(x), space.batch_size(x)
    pos, features = x[:, :POS].to(dtype), x[:, POS:].to(dtype)
    per_graph = [time_mlp(sinusoidal_embedding(t, time_dim).to(dtype))]
    if cond is not None:
        per_graph.append(cond.to(dtype).reshape(num, -1))
    return index, num, pos, torch.cat([features, torch.cat(per_graph, -1)[index]], -1)

# ---------------------------------------------------------------------------------------
# Graphs over the atoms of a batch: edge_index [2, E] in torch-geometric's convention (row 0
# the source j, row 1 the target i of message j → i), never across molecules.  Plain torch,
# without pyg-lib or torch-cluster.


def atom_ranks(index: Tensor, num_graphs: int) -> Tensor:
    """The rank of each atom within its molecule, in row order (index need not be sorted)."""
    order = torch.argsort(index, stable=True)
    sizes = torch.bincount(index, minlength=num_graphs)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.empty_like(index)
    rank[order] = torch.arange(len(index), device=index.device) - starts[index[order]]
    return rank


def fully_connected_edges(index: Tensor, num_graphs: int) -> Tensor:
    """Every ordered pair of distinct atoms of the same molecule: Σ n_g (n_g − 1) edges."""
    # in sorted order the molecules are contiguous blocks; atom p of molecule g (rows
    # starts[g] … starts[g] + n_g − 1) pairs with every row of its block
    order = torch.argsort(index, stable=True)
    sizes = torch.bincount(index, minlength=num_graphs)
    starts = torch.cumsum(sizes, 0) - sizes
    n = sizes[index[order]]
    src = torch.repeat_interleave(torch.arange(len(index), device=index.device), n)
    within = torch.arange(len(src), device=index.device) - torch.repeat_interleave(torch.cumsum(n, 0) - n, n)
    dst = torch.repeat_interleave(starts[index[order]], n) + within
    keep = src != dst
    return torch.stack([order[src[keep]], order[dst[keep]]])


def radius_edges(pos: Tensor, index: Tensor, num_graphs: int, cutoff: float) -> Tensor:
    """Ordered pairs of distinct atoms of the same molecule closer than `cutoff`.

    Brute force over all pairs of each molecule: O(Σ n_g²) distances, which are cheap beside
    the O(edges) messages the cutoff saves in the network.  No cap on the neighbour count:
    a cap would keep an arbitrary subset and break permutation equivariance.
    """
    edges = fully_connected_edges(index, num_graphs)
    d2 = (pos[edges[0]] - pos[edges[1]]).square().sum(-1)
    return edges[:, d2 < cutoff**2]


def molecule_graph(pos: Tensor, index: Tensor, num_graphs: int, cutoff: float | None = None) -> Tensor:
    """Fully connected molecules (small molecules, as EDM) or, with a cutoff, the radius graph
    (large ones)."""
    if cutoff is None:
        return fully_connected_edges(index, num_graphs)
    return radius_edges(pos, index, num_graphs, cutoff)
