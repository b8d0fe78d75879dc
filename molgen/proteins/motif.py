"""Motif scaffolding: Cα positions of a motif cut from a structure, placed at given residues
of a generated chain, and three ways (`MOTIF_METHODS`) of sampling the rest of the chain
around it.

- condition (a model trained with `task.motif` > 0): the motif is part of the network's
  condition (molgen.nn.backbone.BackboneNet reads its invariants), and classifier-free
  guidance with scale w pushes toward it, ε̃ = (1 + w) ε(x, motif) − w ε(x, ∅).
- inpaint (any model): `MotifDenoiser` replaces the motif rows of every prediction x̂_0 by
  the motif superposed onto them and takes ε̂ = (x_t − α x̂_0) / σ, so each step moves toward
  a chain that contains the motif exactly (the replacement method, Song et al. 2021, written
  on x̂_0 so that every core sampler runs it unchanged).  The scaffold never learns where the
  motif went: the bonds where the two meet are often broken.
- guided (the default; any model, with the motif as condition where the model takes one):
  reconstruction guidance (Ho et al. 2022) before the replacement,
  x̃_0 = x̂_0 − (w_r α_t / 2) ∇_{x_t} ‖m − x̂_0[motif]‖², which moves the whole noisy chain,
  scaffold included, toward one whose prediction holds the motif.  It costs a backward pass
  through the network per step.

Success is judged as in the motif-scaffolding literature by the motif's RMSD in the
generated chain after superposition (`motif_rmsd`; < 1 Å counts).  The replacing methods end
with the motif in place by construction, so their chains are judged by how the scaffold fits
around it (virtual bonds at the motif's ends, clashes).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from ..data.proteins import ProteinInputError, read_chains
from ..diffusion import DenoiserWrapper
from ..metrics.stats import kabsch

SEGMENT = re.compile(r"^([A-Za-z0-9])(-?\d+)-(-?\d+)$")
"""One motif segment: chain ID, first and last residue number, e.g. A10-25."""


@dataclass(frozen=True)
class Motif:
    """Motif residues: Cα positions [M, 3] (Å) and their offsets [M] along the generated
    chain from the motif's first residue (segments keep the spacing they have in the source)."""

    positions: np.ndarray
    offsets: np.ndarray
    name: str = "motif"

    def __post_init__(self):
        positions, offsets = np.asarray(self.positions, dtype=np.float64), np.asarray(self.offsets)
        if positions.ndim != 2 or positions.shape[1] != 3 or len(positions) != len(offsets):
            raise ValueError(f"a motif is positions [M, 3] with M offsets, got {positions.shape} "
                             f"and {offsets.shape}")
        if len(positions) < 3 or not np.isfinite(positions).all():
            raise ValueError(f"{self.name}: a motif needs at least 3 residues with finite positions")
        if offsets[0] != 0 or (np.diff(offsets) <= 0).any():
            raise ValueError(f"{self.name}: motif offsets must start at 0 and increase")
        object.__setattr__(self, "positions", positions)
        object.__setattr__(self, "offsets", offsets.astype(np.int64))

    @property
    def span(self) -> int:
        """Residues from the motif's first to its last, gaps included."""
        return int(self.offsets[-1]) + 1

    def placed(self, length: int, start: int | None = None) -> np.ndarray:
        """The motif's residue indices [M] in a chain of `length` residues, its first at
        `start` (default: the motif centred in the chain)."""
        if self.span > length:
            raise ValueError(f"{self.name} spans {self.span} residues, longer than the chain ({length})")
        start = (length - self.span) // 2 if start is None else start
        if isinstance(start, bool) or not isinstance(start, (int, np.integer)) \
                or not 0 <= start <= length - self.span:
            raise ValueError(f"{self.name} ({self.span} residues) does not fit in a chain of "
                             f"{length} from residue {start}; start must be in 0..{length - self.span}")
        return start + self.offsets


def read_motif(spec: str) -> Motif:
    """The motif named by 'path:SEGMENTS', e.g. 'file.pdb:A10-25' or 'file.pdb:A10-25,A40-48'
    (chain ID and residue numbers as in the file, ends included; PDB or mmCIF).  Several
    segments keep the spacing of their residue numbers."""
    path, sep, segments = spec.rpartition(":")
    if not sep or not path:
        raise ProteinInputError(f"motif {spec!r}: expected FILE:SEGMENTS such as rec.pdb:A10-25")
    chains = {c.name.rsplit("_", 1)[1]: c for c in read_chains(path)}
    positions, numbers = [], []
    for segment in segments.split(","):
        match = SEGMENT.match(segment.strip())
        if match is None:
            raise ProteinInputError(f"motif {spec!r}: segment {segment!r} is not CHAIN FIRST-LAST "
                                    "such as A10-25")
        chain_id, first, last = match.group(1), int(match.group(2)), int(match.group(3))
        if chain_id not in chains:
            raise ProteinInputError(f"motif {spec!r}: no protein chain {chain_id} in {path} "
                                    f"(chains: {', '.join(sorted(chains))})")
        chain = chains[chain_id]
        wanted = range(first, last + 1)
        have = [i for i, n in enumerate(chain.numbers) if first <= n <= last]
        missing = sorted(set(wanted) - {chain.numbers[i] for i in have})
        if last < first or missing:
            raise ProteinInputError(f"motif {spec!r}: chain {chain_id} has no residue "
                                    f"{missing[0] if missing else first}..{last} with a CA atom"
                                    if missing else f"motif {spec!r}: empty range {segment}")
        positions.append(chain.ca[have])
        numbers += [chain.numbers[i] for i in have]
    numbers = np.asarray(numbers)
    if (np.diff(numbers) <= 0).any():
        raise ProteinInputError(f"motif {spec!r}: segments overlap or are out of order")
    return Motif(np.concatenate(positions), numbers - numbers[0], name=f"motif {spec}")


def motif_rmsd(trace: np.ndarray, motif: Motif, at: np.ndarray) -> float:
    """RMSD (Å) of the residues `at` of a trace [L, 3] to the motif after the best proper
    superposition."""
    got = torch.as_tensor(np.asarray(trace)[at], dtype=torch.float64)
    want = torch.as_tensor(motif.positions, dtype=torch.float64)
    got, want = got - got.mean(0), want - want.mean(0)
    return float(((want @ kabsch(want, got).T - got).square().sum(-1).mean()).sqrt())


MOTIF_METHODS = ("guided", "condition", "inpaint")
# w_r, chosen on validation motifs (benchmarks/README.md, "Motif scaffolding by guidance")
RECONSTRUCTION_WEIGHT = 10.0


class MotifDenoiser(DenoiserWrapper):
    """Motif scaffolding around any denoiser of a `MoleculeSpace` of chains (known [N] bool
    marks the motif rows, target [N, 3] their positions where known, state units, any frame).
    With reconstruction weight w_r > 0 the prediction is first guided,
    x̃_0 = x̂_0 − (w_r α_t / 2) ∇_{x_t} ‖m − x̂_0[motif]‖² (m: the motif superposed onto x̂_0,
    the superposition held fixed in the gradient); then the motif rows of x̂_0 are replaced
    by m, x̂_0 is projected back onto the CoM-free space and ε̂ = (x_t − α x̂_0) / σ.  Under
    classifier-free guidance (which wraps this denoiser) each of the two branches is treated
    alike."""

    def __init__(self, inner, known: Tensor, target: Tensor, reconstruction: float = 0.0):
        super().__init__(inner)
        self.known, self.target, self.reconstruction = known, target, float(reconstruction)

    def _placed(self, x0: Tensor, x: Tensor) -> list[tuple[Tensor, Tensor]]:
        """Per chain of the batch: its motif rows and the motif superposed onto x̂_0 there
        (rotation and centre from x̂_0, not differentiated)."""
        index, repeats = self.space.index(x), len(x) // len(self.known)  # guidance's repeats
        known, target = self.known.repeat(repeats), self.target.repeat(repeats, 1)
        out = []
        for b in range(self.space.batch_size(x)):
            rows = torch.nonzero((index == b) & known).squeeze(1)
            if len(rows) == 0:
                continue
            got, want = x0[rows].detach(), target[rows].to(x0.dtype)
            centre = got.mean(0)
            want = want - want.mean(0)
            out.append((rows, want @ kabsch(want, got - centre).T + centre))
        return out

    def __call__(self, x: Tensor, t, cond=None) -> tuple[Tensor, Tensor]:
        t = self.times(t, x)
        alpha, sigma = self.scales(t, x)
        if self.reconstruction:
            with torch.enable_grad():
                xg = x.detach().requires_grad_()
                x0, _ = self.inner(xg, t, cond)
                miss = sum((x0[rows] - m).square().sum() for rows, m in self._placed(x0, xg))
                grad, = torch.autograd.grad(miss, xg)
            x0 = x0.detach() - self.reconstruction * alpha / 2 * grad
        else:
            x0, _ = self.inner(x, t, cond)
        x0 = x0.clone()
        for rows, m in self._placed(x0, x):
            x0[rows] = m
        x0 = self.space.project(x0)
        return x0, (x - alpha * x0) / sigma
