"""Training the backbone model (`molgen train experiment=backbones`) on the Cα traces of the
PDownB chains (molgen.data.proteins, train split).

A training example is a window of `crop` consecutive residues (or the whole segment when it
is shorter) from a contiguous segment of a training chain, drawn by the step's generator
with probability proportional to the segment's length; its state is the window's Cα
positions times SCALE, centred (a `MoleculeSpace` without features).  The checkpoint keeps
the lengths of the training windows, from which sampling draws chain lengths.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import MISSING
from torch import Tensor, nn

from ..diffusion import Denoiser, MoleculeSpace, SamplerConfig, graph_denoiser, sample_in_batches
from ..train.task import Batch

SCALE = 0.1
"""State units per Å: coordinates in nm, so that chains of 40–256 residues (Rg 10–18 Å) are
O(1) beside the unit noise."""
MIN_LENGTH = 10
"""The shortest chain a model samples (a trace needs a few residues for its local geometry)."""


@dataclass
class BackboneConfig:
    name: str = MISSING
    hidden: int = MISSING        # BackboneNet width
    layers: int = MISSING        # EGNN layers
    neighbours: int = MISSING    # nearest residues in space each residue hears (plus ±2 along the chain)
    crop: int = MISSING          # longest training window (residues)
    min_length: int = MISSING    # shortest training segment (residues)
    max_length: int = MISSING    # longest chain the model samples
    sample_batch: int = MISSING  # chains per sampling batch


class BackboneTask:
    """Cα-trace diffusion with `BackboneNet` (molgen.nn.backbone); `evaluate` samples chains,
    writes them as a multi-model PDB and measures their geometry (molgen.metrics.backbones)."""

    Config = BackboneConfig
    samples_file = "samples.pdb"
    options = ("length",)

    def __init__(self, cfg: BackboneConfig):
        if not MIN_LENGTH <= cfg.min_length <= cfg.crop <= cfg.max_length:
            raise ValueError(f"task: need {MIN_LENGTH} <= min_length <= crop <= max_length, got "
                             f"{cfg.min_length}, {cfg.crop}, {cfg.max_length}")
        if cfg.sample_batch < 1:
            raise ValueError(f"task.sample_batch must be >= 1, got {cfg.sample_batch}")
        self.cfg, self._segments = cfg, None
        self.lengths: Tensor | None = None  # training windows per length [max_length + 1]

    def segments(self) -> list[np.ndarray]:
        """The contiguous segments of the training chains (Å), loaded on first use."""
        if self._segments is None:
            from ..data.proteins import load_pdownb

            self._segments = [s for c in load_pdownb("train")
                              for s in c.segments(self.cfg.min_length)]
        return self._segments

    def build_model(self) -> nn.Module:
        from ..nn.backbone import BackboneNet

        return BackboneNet(self.cfg.hidden, self.cfg.layers, self.cfg.neighbours)

    def batch(self, n: int, generator: torch.Generator) -> Batch:
        segments = self.segments()
        weights = torch.tensor([float(len(s)) for s in segments], dtype=torch.float64)
        picks = torch.multinomial(weights, n, replacement=True, generator=generator).tolist()
        windows = []
        for i in picks:
            segment = segments[i]
            size = min(len(segment), self.cfg.crop)
            start = int(torch.randint(len(segment) - size + 1, (1,), generator=generator))
            windows.append(torch.as_tensor(segment[start:start + size], dtype=torch.float32))
        space = MoleculeSpace.from_sizes([len(w) for w in windows])
        return Batch(space.project(torch.cat(windows) * SCALE), space)

    def denoiser(self, net, schedule, prediction: str, space) -> Denoiser:
        return graph_denoiser(net, schedule, space, prediction)

    # -- what a checkpoint keeps ---------------------------------------------------------------
    def length_counts(self) -> Tensor:
        """Training windows per length, from the data unless a checkpoint gave them."""
        if self.lengths is None:
            sizes = torch.tensor([min(len(s), self.cfg.crop) for s in self.segments()])
            self.lengths = torch.bincount(sizes, weights=sizes.double(),
                                          minlength=self.cfg.max_length + 1)
        return self.lengths

    def state_dict(self) -> dict:
        return {"lengths": self.length_counts()}

    def load_state_dict(self, state: dict) -> None:
        self.lengths = state["lengths"]

    # -- sampling --------------------------------------------------------------------------------
    def chain_lengths(self, n: int, seed: int, length: int | None = None) -> Tensor:
        """n chain lengths: `length` each, or drawn as the training windows' lengths are."""
        if length is not None:
            if not MIN_LENGTH <= length <= self.cfg.max_length:
                raise ValueError(f"chain length must be in {MIN_LENGTH}..{self.cfg.max_length} "
                                 f"for this model, got {length}")
            return torch.full((n,), length)
        g = torch.Generator().manual_seed(seed)
        return torch.multinomial(self.length_counts().double(), n, replacement=True, generator=g)

    def sample(self, denoiser_for, sampler: SamplerConfig, lengths: Tensor, *, seed: int,
               device="cpu", progress: bool = False) -> list[np.ndarray]:
        """One Cα trace [L, 3] (Å) per entry of lengths, sampled on `device` in batches of
        cfg.sample_batch."""
        def layout(chunk: Tensor):
            return MoleculeSpace.from_sizes(chunk, device), (int(chunk.sum()), 3)

        def readout(space: MoleculeSpace, x: Tensor):
            return [(trace / SCALE).double().numpy() for trace in space.unbatch(x.cpu())]

        return sample_in_batches(denoiser_for, lengths, sampler, layout=layout,
                                 batch_size=self.cfg.sample_batch, seed=seed, readout=readout,
                                 device=device, progress=progress, unit="chain")

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int,
                 path: str | os.PathLike | None = None, device="cpu", progress: bool = False,
                 length: int | None = None) -> dict:
        """Geometry of n sampled chains (molgen.metrics.backbones.trace_metrics), written to
        the PDB at `path`; length: residues per chain (default: drawn)."""
        from ..data.proteins import to_structure, write_pdb
        from ..metrics.backbones import trace_metrics

        if n < 1:
            raise ValueError(f"the number of samples must be >= 1, got {n}")
        traces = self.sample(denoiser_for, sampler, self.chain_lengths(n, seed, length),
                             seed=seed, device=device, progress=progress)
        if path is not None:
            write_pdb(path, to_structure(traces))
        return trace_metrics(traces)
