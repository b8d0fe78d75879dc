"""State spaces the diffusion moves in.

Samplers, losses and the likelihood never look inside a state: they do linear algebra on
tensors and ask the space for what depends on its geometry:

- `noise(x)`: a standard Gaussian *in the space* (projected onto it where it is a subspace);
- `project(x)`: the orthogonal projection onto the space;
- `sum(x)`: per-sample sum over everything but the sample axis, shape [B] (inner products,
  squared norms, losses);
- `dim(x)`: per-sample degrees of freedom, shape [B] (Gaussian normalisers, bits/dim);
- `expand(s, x)`: a per-sample scalar s [B] shaped to broadcast against x;
- `repeat(x, k)` / `split(x, k)`: k copies of a state as one state of k·B samples, and back
  (classifier-free guidance runs its conditional and unconditional passes as one batch);
- `subset(start, stop)`: samples start … stop − 1 as a batch of their own: its space and the
  rows of a state that hold them (a DDP rank's or a micro-batch's share of a batch);
- `unbatch(x)`: a state as one tensor per sample;
- `basis(x)`: unit vectors that together span every sample's ambient coordinates, one
  coordinate per sample at a time (the exact divergence of the likelihood sums over them).

A space whose samples are rows of a shared tensor (molecules batched as graphs) overrides
these with scatter operations over its batch index; the samplers do not change.

Batches of graphs (molecules, the torsions of conformers) are one tensor whose rows belong to
samples by a graph index: `GraphSpace` and `MoleculeSpace` below, whose states hold a row per
atom (or torsion).  A batch of B molecules with N atoms in all is x [N, 3 + F]: each atom's
position and then its features (one-hot types, optionally the charge), as in EDM (Hoogeboom
et al. 2022); positions live on each molecule's centre-of-mass-free subspace Σ_{i∈g} x_i = 0,
so a Gaussian there has (n_g − 1)·3 degrees of freedom.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor


class EuclideanSpace:
    """R^d for dense tensors [B, ...]: images, vectors."""

    def batch_size(self, x: Tensor) -> int:
        return x.shape[0]

    def project(self, x: Tensor) -> Tensor:
        return x

    def noise(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        # drawn where the generator lives, so a CPU generator also seeds GPU states
        device = generator.device if generator is not None else x.device
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=device)
        return self.project(z.to(x.device))

    def sum(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1).sum(1)

    def dim(self, x: Tensor) -> Tensor:
        n = x[0].numel()
        return torch.full((x.shape[0],), n, dtype=x.dtype, device=x.device)

    def expand(self, s: Tensor, x: Tensor) -> Tensor:
        return s.reshape(-1, *([1] * (x.ndim - 1)))

    def repeat(self, x: Tensor, k: int) -> Tensor:
        return torch.cat([x] * k)

    def split(self, x: Tensor, k: int) -> tuple[Tensor, ...]:
        return x.chunk(k)

    def subset(self, start: int, stop: int) -> tuple["EuclideanSpace", slice]:
        return self, slice(start, stop)

    def unbatch(self, x: Tensor) -> list[Tensor]:
        return list(x.unbind(0))

    def basis(self, x: Tensor) -> Iterator[Tensor]:
        flat = x.reshape(x.shape[0], -1)
        for i in range(flat.shape[1]):
            e = torch.zeros_like(flat)
            e[:, i] = 1.0
            yield e.reshape(x.shape)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class ZeroMeanSpace(EuclideanSpace):
    """Point sets [B, N, D] whose N points have zero mean per sample: the dense analogue of
    the centre-of-mass-free subspace of molecules, with (N - 1)·D degrees of freedom."""

    def project(self, x: Tensor) -> Tensor:
        return x - x.mean(dim=1, keepdim=True)

    def dim(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return torch.full((b,), (n - 1) * d, dtype=x.dtype, device=x.device)


EUCLIDEAN = EuclideanSpace()


# -- graphs: samples as groups of rows -----------------------------------------------------

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


def atom_ranks(index: Tensor, num_graphs: int) -> Tensor:
    """The rank of each atom within its molecule, in row order (index need not be sorted)."""
    order = torch.argsort(index, stable=True)
    sizes = torch.bincount(index, minlength=num_graphs)
    starts = torch.cumsum(sizes, 0) - sizes
    rank = torch.empty_like(index)
    rank[order] = torch.arange(len(index), device=index.device) - starts[index[order]]
    return rank


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

    def per_copy(self, net, x: Tensor, t: Tensor, cond: Tensor | None) -> Tensor:
        """net(x_j, t_j, cond_j) on each copy j of a state of k > 1 copies (guidance's
        conditional and null passes), concatenated: for networks that read one copy's
        geometry from the space at a time."""
        b = self.num_graphs
        return torch.cat([net(xc, t[j * b:(j + 1) * b], None if cond is None else cond[j * b:(j + 1) * b])
                          for j, xc in enumerate(x.chunk(self.copies(x)))])

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

    def unbatch(self, x: Tensor) -> list[Tensor]:
        """The rows of each sample [n_i, ...] of a single-copy state, in row order."""
        order = torch.argsort(self.batch, stable=True).to(x.device)
        return list(x[order].split(self.sizes.tolist()))

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
