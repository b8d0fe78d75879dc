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
- `basis(x)`: unit vectors that together span every sample's ambient coordinates, one
  coordinate per sample at a time (the exact divergence of the likelihood sums over them).

A space whose samples are rows of a shared tensor (molecules batched as graphs) overrides
these with scatter operations over its batch index; the samplers do not change.
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
