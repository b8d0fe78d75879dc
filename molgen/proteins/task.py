"""Training the backbone model (`molgen train experiment=backbones`) on the Cα traces of the
PDownB chains (molgen.data.proteins, train split).

A training example is a window of `crop` consecutive residues (or the whole segment when it
is shorter) from a contiguous segment of a training chain, drawn by the step's generator
with probability proportional to the segment's length; its state is the window's Cα
positions times SCALE, centred (a `MoleculeSpace` without features).  The checkpoint keeps
the lengths of the training windows, from which sampling draws chain lengths.

Secondary-structure conditioning (`task.condition: sse`, classifier-free guidance): a
window's condition is c = (helix fraction, strand fraction, 1) by P-SEA
(molgen.metrics.backbones) on its whole segment, replaced by the null condition (0, 0, 0)
with probability cond_drop.  Unless given, a sample's targets are those of a training segment
of about its length (the checkpoint keeps every segment's length and fractions).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import MISSING
from torch import Tensor, nn

from ..diffusion import (Denoiser, MoleculeSpace, SamplerConfig, drop_condition, graph_denoiser,
                         sample_in_batches)
from ..train.task import Batch

SCALE = 0.1
"""State units per Å: coordinates in nm, so that chains of 40–256 residues (Rg 10–18 Å) are
O(1) beside the unit noise."""
MIN_LENGTH = 10
"""The shortest chain a model samples (a trace needs a few residues for its local geometry)."""
NULL_CONDITION = (0.0, 0.0, 0.0)
"""The condition of 'no target': a real one is (helix fraction, strand fraction, 1)."""
CONDITIONS = ("", "sse")
SIMILAR = 50
"""Drawn targets come from one of the SIMILAR training segments nearest in length."""


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
    condition: str = ""          # "" (unconditional) or "sse": helix and strand fractions
    cond_drop: float = 0.1       # p of the null condition in training (classifier-free guidance)


class BackboneTask:
    """Cα-trace diffusion with `BackboneNet` (molgen.nn.backbone); `evaluate` samples chains,
    writes them as a multi-model PDB and measures their geometry (molgen.metrics.backbones)."""

    Config = BackboneConfig
    samples_file = "samples.pdb"
    options = ("length", "helix", "strand")

    def __init__(self, cfg: BackboneConfig):
        if not MIN_LENGTH <= cfg.min_length <= cfg.crop <= cfg.max_length:
            raise ValueError(f"task: need {MIN_LENGTH} <= min_length <= crop <= max_length, got "
                             f"{cfg.min_length}, {cfg.crop}, {cfg.max_length}")
        if cfg.sample_batch < 1:
            raise ValueError(f"task.sample_batch must be >= 1, got {cfg.sample_batch}")
        if cfg.condition not in CONDITIONS or not 0 <= cfg.cond_drop <= 1:
            raise ValueError(f"task.condition must be one of {CONDITIONS} and cond_drop in [0, 1], "
                             f"got {cfg.condition!r}, {cfg.cond_drop}")
        self.cfg, self._segments = cfg, None
        self.lengths: Tensor | None = None  # training windows per length [max_length + 1]
        self.composition: Tensor | None = None  # per segment: length, helix and strand fractions

    def segments(self) -> list[np.ndarray]:
        """The contiguous segments of the training chains (Å), loaded on first use."""
        if self._segments is None:
            from ..data.proteins import load_pdownb

            self._segments = [s for c in load_pdownb("train")
                              for s in c.segments(self.cfg.min_length)]
        return self._segments

    def segment_composition(self) -> Tensor:
        """[S, 3]: each training segment's length and P-SEA helix and strand fractions, from
        the data unless a checkpoint gave them."""
        if self.composition is None:
            from ..metrics.backbones import secondary_structure

            rows = []
            for segment in self.segments():
                sse = secondary_structure(segment)
                rows.append([len(segment), sse.count("H") / len(sse), sse.count("E") / len(sse)])
            self.composition = torch.tensor(rows, dtype=torch.float32)
        return self.composition

    @property
    def cond_dim(self) -> int:
        return len(NULL_CONDITION) if self.cfg.condition else 0

    def build_model(self) -> nn.Module:
        from ..nn.backbone import BackboneNet

        return BackboneNet(self.cfg.hidden, self.cfg.layers, self.cfg.neighbours,
                           cond_dim=self.cond_dim)

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
        cond = None
        if self.cfg.condition:
            cond = drop_condition(encode(self.segment_composition()[picks, 1:]), NULL_CONDITION,
                                  self.cfg.cond_drop, generator)
        return Batch(space.project(torch.cat(windows) * SCALE), space, cond)

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
        state = {"lengths": self.length_counts()}
        if self.cfg.condition:
            state["composition"] = self.segment_composition()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.lengths, self.composition = state["lengths"], state.get("composition")

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

    def targets(self, lengths: Tensor, seed: int, helix: float | None = None,
                strand: float | None = None) -> Tensor:
        """Helix and strand fractions [n, 2] per chain: those given, the others of a training
        segment drawn among the SIMILAR nearest in length."""
        for name, value in (("helix", helix), ("strand", strand)):
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"the {name} fraction must be in [0, 1], got {value}")
        if helix is not None and strand is not None and helix + strand > 1:
            raise ValueError(f"helix + strand fractions exceed 1: {helix} + {strand}")
        composition, g = self.segment_composition(), torch.Generator().manual_seed(seed + 1)
        out = torch.empty(len(lengths), 2)
        for i, n in enumerate(lengths.tolist()):
            near = torch.argsort((composition[:, 0] - n).abs(), stable=True)[:SIMILAR]
            out[i] = composition[near[torch.randint(len(near), (1,), generator=g)], 1:]
        if helix is not None:
            out[:, 0] = helix
        if strand is not None:
            out[:, 1] = strand
        return out

    def sample(self, denoiser_for, sampler: SamplerConfig, lengths: Tensor, *, seed: int,
               helix: float | None = None, strand: float | None = None, device="cpu",
               progress: bool = False) -> list[np.ndarray]:
        """One Cα trace [L, 3] (Å) per entry of lengths, sampled on `device` in batches of
        cfg.sample_batch; a conditional model aims each chain at the helix and strand
        fractions given, or drawn (`targets`)."""
        if (helix is not None or strand is not None or sampler.guidance_scale) and not self.cfg.condition:
            raise ValueError("secondary-structure targets or guidance need a conditional model "
                             "(this one was trained with task.condition='')")
        cond = encode(self.targets(lengths, seed, helix, strand)) if self.cfg.condition else None

        def layout(chunk: Tensor):
            return MoleculeSpace.from_sizes(chunk, device), (int(chunk.sum()), 3)

        def readout(space: MoleculeSpace, x: Tensor):
            return [(trace / SCALE).double().numpy() for trace in space.unbatch(x.cpu())]

        return sample_in_batches(denoiser_for, lengths, sampler, layout=layout,
                                 batch_size=self.cfg.sample_batch, seed=seed, cond=cond,
                                 null_cond=NULL_CONDITION, readout=readout, device=device,
                                 progress=progress, unit="chain")

    def evaluate(self, denoiser_for, sampler: SamplerConfig, n: int, *, seed: int,
                 path: str | os.PathLike | None = None, device="cpu", progress: bool = False,
                 length: int | None = None, helix: float | None = None,
                 strand: float | None = None) -> dict:
        """Geometry of n sampled chains (molgen.metrics.backbones.trace_metrics), written to
        the PDB at `path`; length: residues per chain (default: drawn); helix, strand: the
        fractions a conditional model aims at (default: drawn)."""
        from ..data.proteins import to_structure, write_pdb
        from ..metrics.backbones import trace_metrics

        if n < 1:
            raise ValueError(f"the number of samples must be >= 1, got {n}")
        traces = self.sample(denoiser_for, sampler, self.chain_lengths(n, seed, length), seed=seed,
                             helix=helix, strand=strand, device=device, progress=progress)
        if path is not None:
            write_pdb(path, to_structure(traces))
        return trace_metrics(traces)


def encode(fractions: Tensor) -> Tensor:
    """Conditions [n, 3] of helix and strand fractions [n, 2]: (helix, strand, 1)."""
    fractions = fractions.float()
    return torch.cat([fractions, torch.ones(len(fractions), 1)], -1)
