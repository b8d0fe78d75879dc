"""Training the backbone model (`molgen train experiment=backbones`) on the Cα traces of the
PDownB chains (molgen.data.proteins, train split).

A training example is a window of `crop` consecutive residues (or the whole segment when it
is shorter) from a contiguous segment of a training chain, drawn by the step's generator
with probability proportional to the segment's length; its state is the window's Cα
positions times `scale` (state units per Å), centred (a `MoleculeSpace` without features).
The checkpoint keeps the lengths of the training windows, from which sampling draws chain
lengths.

Secondary-structure conditioning (`task.condition: sse`, classifier-free guidance): a
window's condition is c = (helix fraction, strand fraction, 1) by P-SEA
(molgen.metrics.backbones) on its whole segment.  Unless given, a sample's targets are those
of a training segment of about its length (the checkpoint keeps every segment's length and
fractions).

Motif conditioning (`task.motif` > 0, scaffolding; molgen.proteins.motif): with that
probability a window carries a motif, 1 to MOTIF_SPANS spans of its own residues covering
MOTIF_FRACTION of it, as the network's motif block (molgen.nn.backbone.BackboneNet).  The
SSE target and the motif are each replaced by their null (zeros) with probability cond_drop,
independently, so that the network learns every combination, and all zeros (the null
condition of classifier-free guidance) among them.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass

import numpy as np
import torch
from omegaconf import MISSING
from torch import Tensor, nn

from ..data.checks import check_real
from ..diffusion import (Denoiser, MoleculeSpace, SamplerConfig, drop_condition, graph_denoiser,
                         sample_in_batches)
from ..diffusion.spaces import atom_ranks, segment_sum
from ..nn.backbone import MOTIF_COLUMNS
from ..train.task import Batch
from .motif import MOTIF_METHODS, RECONSTRUCTION_WEIGHT, MotifDenoiser
from .sterics import CLASH_WEIGHT, StericDenoiser

MIN_LENGTH = 10
"""The shortest chain a model samples (a trace needs a few residues for its local geometry)."""
SSE_COLUMNS = 3
"""A secondary-structure target: (helix fraction, strand fraction, 1)."""
NULL_CONDITION = 0.0
"""The condition of 'no target' (every column 0; a real SSE target ends in 1, a motif
residue has its flag 1)."""
LOCAL_PAIRS = 8.0
LOCAL_T = 0.25
"""The local-distance loss: residue pairs closer than LOCAL_PAIRS Å in the true chain, at
times t < LOCAL_T."""
VIRTUAL_BOND = 3.8
"""Å between consecutive Cα: the unit of the chirality loss's signed volumes."""
MOTIF_SPANS = 3
MOTIF_FRACTION = (0.1, 0.4)
"""A training motif: 1 to MOTIF_SPANS spans covering this fraction of the window."""
CONDITIONS = ("", "sse")
SIMILAR = 50
"""Drawn targets come from one of the SIMILAR training segments nearest in length."""
TARGET_GAIN = ((50, 1.0, 2.0), (100, 1.5, 2.0))
"""(length, helix gain, strand gain) knots: drawn helix and strand targets are multiplied by
the gains at the chain's length (linear between knots, constant beyond them; the pair's sum
capped at 1).  The model lands short of the composition it is aimed at, so it is aimed beyond
it, except for short chains' helices.  Chosen on the validation chains: 1.5 for both against 1,
then (1.5, 2) against (1.5, 1.5) and (1.25, 2) at 100 and 200 residues, then a helix gain of 1
against 0.75 and 1.5 at 50 residues, and 1.5 kept against 2 at 150 (benchmarks/README.md)."""


def gains_at(gain, lengths: Tensor) -> Tensor:
    """The (helix, strand) gains [n, 2] at each length: `gain` is one (helix, strand) pair for
    every length, or (length, helix gain, strand gain) knots in increasing length."""
    try:
        knots = np.array(gain, dtype=float)
    except (TypeError, ValueError):
        knots = np.empty(0)
    if knots.shape == (2,):
        knots = np.concatenate([[0.0], knots])[None]
    if knots.ndim != 2 or knots.shape[1] != 3 or not len(knots):
        raise ValueError("gain must be a (helix, strand) pair or (length, helix, strand) "
                         f"knots, got {gain!r}")
    if np.any(np.diff(knots[:, 0]) <= 0):
        raise ValueError(f"the gain knots' lengths must increase, got {knots[:, 0].tolist()}")
    for name, column in (("helix gain", knots[:, 1]), ("strand gain", knots[:, 2])):
        for value in column:
            check_real(name, float(value), 0)
    at = lengths.double().numpy()
    return torch.tensor(np.stack([np.interp(at, knots[:, 0], knots[:, c]) for c in (1, 2)], 1),
                        dtype=torch.float32)


@dataclass
class BackboneConfig:
    name: str = MISSING
    hidden: int = MISSING        # BackboneNet width
    layers: int = MISSING        # EGNN layers
    coords_range: float = 15.0   # bound on the EGNN layers' summed coordinate steps
    scale: float = 0.25          # state units per Å
    local_loss: float = 1.0      # weight of the local-distance loss (auxiliary_loss; 0: none)
    chiral_loss: float = 0.0     # weight of the signed-volume loss at every t (auxiliary_loss; 0: none)
    motif_loss: float = 0.0      # weight of the motif-distance loss at every t (auxiliary_loss; 0: none)
    neighbours: int = MISSING    # nearest residues in space each residue hears (plus ±2 along the chain)
    crop: int = MISSING          # longest training window (residues)
    min_length: int = MISSING    # shortest training segment (residues)
    max_length: int = MISSING    # longest chain the model samples
    sample_batch: int = MISSING  # chains per sampling batch
    condition: str = ""          # "" (unconditional) or "sse": helix and strand fractions
    motif: float = 0.0           # p of a motif condition per training window (0: none)
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
        if not (0 < cfg.scale < math.inf and 0 < cfg.coords_range < math.inf
                and all(0 <= w < math.inf for w in (cfg.local_loss, cfg.chiral_loss, cfg.motif_loss))):
            raise ValueError(f"task: need finite scale > 0, coords_range > 0 and loss weights >= 0, "
                             f"got scale {cfg.scale}, coords_range {cfg.coords_range}, local_loss "
                             f"{cfg.local_loss}, chiral_loss {cfg.chiral_loss}, motif_loss {cfg.motif_loss}")
        if cfg.sample_batch < 1:
            raise ValueError(f"task.sample_batch must be >= 1, got {cfg.sample_batch}")
        if cfg.condition not in CONDITIONS or not 0 <= cfg.cond_drop <= 1 or not 0 <= cfg.motif <= 1:
            raise ValueError(f"task.condition must be one of {CONDITIONS}, cond_drop and motif in "
                             f"[0, 1], got {cfg.condition!r}, {cfg.cond_drop}, {cfg.motif}")
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
        """Columns of a chain's condition: the SSE target, then the motif block."""
        return self.sse_columns + MOTIF_COLUMNS * self.motif_length

    @property
    def sse_columns(self) -> int:
        return SSE_COLUMNS if self.cfg.condition else 0

    @property
    def motif_length(self) -> int:
        """Residue positions of the motif block (0: the model takes no motif)."""
        return self.cfg.max_length if self.cfg.motif else 0

    def build_model(self) -> nn.Module:
        from ..nn.backbone import BackboneNet

        return BackboneNet(self.cfg.hidden, self.cfg.layers, self.cfg.neighbours,
                           cond_dim=self.sse_columns, motif_length=self.motif_length,
                           coords_range=self.cfg.coords_range, angstrom=self.cfg.scale)

    def conditions(self, n: int, sse: Tensor | None = None, motifs=None) -> Tensor | None:
        """Conditions [n, cond_dim] of n chains: SSE targets sse [n, SSE_COLUMNS] (`encode`;
        None: null) and motif blocks from motifs, one (residue indices [M], positions [M, 3]
        in state units) or None per chain; None for a model without conditions."""
        if not self.cond_dim:
            return None
        parts = []
        if self.sse_columns:
            parts.append(sse if sse is not None else torch.zeros(n, SSE_COLUMNS))
        if self.motif_length:
            block = torch.zeros(n, self.motif_length, MOTIF_COLUMNS)
            for i, motif in enumerate(motifs or []):
                if motif is not None:
                    at, positions = motif
                    positions = torch.as_tensor(positions, dtype=torch.float32)
                    block[i, at, 0] = 1.0
                    block[i, at, 1:] = positions - positions.mean(0)  # any frame: centred
            parts.append(block.reshape(n, -1))
        return torch.cat(parts, -1)

    def training_motif(self, length: int, generator: torch.Generator) -> Tensor | None:
        """Residue indices of a window's motif, or None (probability 1 − cfg.motif)."""
        if not self.cfg.motif or float(torch.rand((), generator=generator)) >= self.cfg.motif:
            return None
        spans = int(torch.randint(1, MOTIF_SPANS + 1, (), generator=generator))
        lo, hi = MOTIF_FRACTION
        covered = lo + (hi - lo) * float(torch.rand((), generator=generator))
        size = max(3, round(covered * length / spans))
        mask = torch.zeros(length, dtype=torch.bool)
        for start in torch.randint(length - size + 1, (spans,), generator=generator).tolist():
            mask[start:start + size] = True
        return torch.nonzero(mask).squeeze(1)

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
        if self.cond_dim:
            sse = None
            if self.sse_columns:
                sse = drop_condition(encode(self.segment_composition()[picks, 1:]), NULL_CONDITION,
                                     self.cfg.cond_drop, generator)
            motifs = []
            for window in windows:
                at = self.training_motif(len(window), generator)
                motifs.append(None if at is None else (at, window[at] * self.cfg.scale))
            cond = self.conditions(n, sse, motifs)
            if self.motif_length:  # the motif's own null, drawn apart from the SSE target's
                cond[:, self.sse_columns:] = drop_condition(cond[:, self.sse_columns:], NULL_CONDITION,
                                                            self.cfg.cond_drop, generator)
        return Batch(space.project(torch.cat(windows) * self.cfg.scale), space, cond)

    def denoiser(self, net, schedule, prediction: str, space) -> Denoiser:
        """x̂_0 = α(t) x_t + Δ with Δ the network's output (molgen.nn.backbone); the
        parameterization is x0, so diffusion.prediction must say so."""
        if prediction != "x0":
            raise ValueError(f"the backbone model predicts x0 = α(t) x_t + net(x_t): "
                             f"diffusion.prediction must be x0, got {prediction!r}")

        def x0(x: Tensor, t: Tensor, cond: Tensor | None = None, *, space: MoleculeSpace) -> Tensor:
            alpha = space.expand(schedule.alpha(t), x).to(x.dtype)
            return alpha * x + (net(x, t, space=space) if cond is None else net(x, t, cond, space=space))

        return graph_denoiser(x0, schedule, space, prediction)

    def auxiliary_loss(self, x0_hat: Tensor, x0: Tensor, t: Tensor, *, space: MoleculeSpace,
                       cond: Tensor | None = None) -> Tensor:
        """Per chain [B], each term times its weight: the local-distance loss, the mean squared
        error (Å²) of the distances between residues within LOCAL_PAIRS Å of each other in
        the true chain at t < LOCAL_T (0 elsewhere), as FrameDiff's auxiliary distance loss
        (Yim et al. 2023): the diffusion loss alone weighs the few-tenths-of-an-Å repairs of
        local geometry that near-clean states need too little against the shape of the
        chain; the chirality loss (`chirality_error`); the motif loss, the same error over
        the pairs of residues that the condition gives as a motif, at every t: the motif
        fixes them, yet in the diffusion loss they are a few terms of many, least weighted
        at high noise, where a scaffold commits to its fold."""
        index, num = space.index(x0), space.batch_size(x0)
        local = torch.nonzero((t < LOCAL_T)[index]).squeeze(1)  # only chains that take the loss
        loss = self.cfg.local_loss * self.distance_error(x0_hat, x0, local, index=index, num=num,
                                                         within=LOCAL_PAIRS)
        if self.cfg.chiral_loss:
            loss = loss + self.cfg.chiral_loss * self.chirality_error(x0_hat, x0, index, num)
        if self.cfg.motif_loss and self.motif_length and cond is not None:
            block = cond[:, self.sse_columns:].reshape(num, self.motif_length, MOTIF_COLUMNS)
            motif = torch.nonzero(block[index, atom_ranks(index, num), 0] > 0.5).squeeze(1)
            loss = loss + self.cfg.motif_loss * self.distance_error(x0_hat, x0, motif, index=index, num=num)
        return loss

    def distance_error(self, x0_hat: Tensor, x0: Tensor, rows: Tensor, *, index: Tensor, num: int,
                       within: float = math.inf) -> Tensor:
        """Per chain [B]: the mean squared error (Å²) of the distances between its residues
        among `rows` that are closer than `within` Å in the true chain, x̂0 against the truth
        (0 for a chain without such pairs)."""
        from ..nn.graphs import fully_connected_edges

        chains, local = torch.unique(index[rows], return_inverse=True)
        src, dst = rows[fully_connected_edges(local, len(chains))]
        true = (x0[src] - x0[dst]).norm(dim=-1) / self.cfg.scale
        near = true < within
        src, dst, true = src[near], dst[near], true[near]
        made = (x0_hat[src] - x0_hat[dst]).norm(dim=-1) / self.cfg.scale
        chain = index[dst]
        error = segment_sum((made - true).square(), chain, num)
        return error / segment_sum(torch.ones_like(true), chain, num).clamp_min(1)

    def chirality_error(self, x0_hat: Tensor, x0: Tensor, index: Tensor, num: int) -> Tensor:
        """Per chain [B]: the mean squared error of the signed volumes b₁ · (b₂ × b₃) / 3.8³ of
        every four consecutive residues (b: the virtual bonds), x̂0 against the true chain.
        A volume changes sign under a mirror, and every distance (the diffusion loss's and the
        local loss's) does not: at high noise, where the noisy trace shows no hand, the
        posterior mean of x̂0 is nearly achiral, and this term asks its turns for the hand that
        natural chains have on average (sampled chains had a fifth of their helical turns
        left-handed without it)."""
        rows = torch.nonzero(index[:-3] == index[3:]).squeeze(1)  # i … i + 3 in one chain

        def volumes(x: Tensor) -> Tensor:
            x = x / (self.cfg.scale * VIRTUAL_BOND)
            b1, b2, b3 = (x[rows + k + 1] - x[rows + k] for k in range(3))
            return (b1 * torch.linalg.cross(b2, b3)).sum(-1)

        chain = index[rows]
        error = segment_sum((volumes(x0_hat) - volumes(x0)).square(), chain, num)
        return error / segment_sum(torch.ones_like(chain, dtype=x0.dtype), chain, num).clamp_min(1)

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

    def targets(self, lengths: Tensor, seed: int, *, helix: float | None = None,
                strand: float | None = None, gain=TARGET_GAIN) -> Tensor:
        """Helix and strand fractions [n, 2] per chain: those given, the others of a training
        segment drawn among the SIMILAR nearest in length, times the (helix, strand) gains at
        the chain's length (`gains_at`; each drawn pair scaled down again where its sum would
        exceed 1, a drawn fraction capped at 1 minus a given one)."""
        for name, value in (("helix", helix), ("strand", strand)):
            if value is not None and not 0 <= value <= 1:
                raise ValueError(f"the {name} fraction must be in [0, 1], got {value}")
        if helix is not None and strand is not None and helix + strand > 1:
            raise ValueError(f"helix + strand fractions exceed 1: {helix} + {strand}")
        gains = gains_at(gain, lengths)
        composition, g = self.segment_composition(), torch.Generator().manual_seed(seed + 1)
        out = torch.empty(len(lengths), 2)
        for i, n in enumerate(lengths.tolist()):
            near = torch.argsort((composition[:, 0] - n).abs(), stable=True)[:SIMILAR]
            out[i] = composition[near[torch.randint(len(near), (1,), generator=g)], 1:]
        out = out * gains
        out = out / out.sum(1, keepdim=True).clamp(min=1)
        if helix is not None:
            out[:, 0] = helix
            out[:, 1] = out[:, 1].clamp(max=1 - helix)
        if strand is not None:
            out[:, 1] = strand
            out[:, 0] = out[:, 0].clamp(max=1 - strand)
        return out

    def sample(self, denoiser_for, sampler: SamplerConfig, lengths: Tensor, *, seed: int,
               helix: float | None = None, strand: float | None = None, motif=None,
               motif_start: int | None = None, motif_method: str = "guided",
               reconstruction: float | None = None, clash: float | None = None,
               gain=TARGET_GAIN, device="cpu", progress: bool = False) -> list[np.ndarray]:
        """One Cα trace [L, 3] (Å) per entry of lengths, sampled on `device` in batches of
        cfg.sample_batch.  A secondary-structure model aims each chain at the helix and
        strand fractions given, or drawn (`targets`; none drawn when a motif is given).
        motif (molgen.proteins.motif.Motif): placed in every chain from residue motif_start
        (default: centred), by motif_method (molgen.proteins.motif.MOTIF_METHODS): 'guided'
        (reconstruction guidance of weight `reconstruction`, default RECONSTRUCTION_WEIGHT,
        then replacement; the motif also as the condition of a model trained with motifs),
        'condition' (the model's condition only) or 'inpaint' (replacement only).
        clash: the weight λ of clash guidance (molgen.proteins.sterics; default CLASH_WEIGHT,
        0: none).  gain: the gains on drawn targets (`targets`, `gains_at`)."""
        if motif_method not in MOTIF_METHODS:
            raise ValueError(f"unknown motif method {motif_method!r}; choose one of {list(MOTIF_METHODS)}")
        for name, value in (("reconstruction", reconstruction), ("clash", clash)):
            if value is not None:
                check_real(name, value, 0)
        clash = CLASH_WEIGHT if clash is None else clash
        wants_sse = helix is not None or strand is not None
        if wants_sse and not self.cfg.condition:
            raise ValueError("secondary-structure targets need a conditional model "
                             "(this one was trained with task.condition='')")
        if motif is not None and motif_method == "condition" and not self.motif_length:
            raise ValueError("this model was trained without motifs (task.motif=0): scaffold by "
                             "the 'guided' or 'inpaint' method instead")
        if sampler.guidance_scale and not self.cond_dim:
            raise ValueError("guidance needs a conditional model (this one takes no condition)")
        places = {}
        if motif is not None:  # every check before any sampling
            places = {n: motif.placed(n, motif_start) for n in set(lengths.tolist())}
        target = None if motif is None else torch.as_tensor(motif.positions * self.cfg.scale,
                                                            dtype=torch.float32)
        sse = None
        if self.cfg.condition and (wants_sse or motif is None):
            sse = encode(self.targets(lengths, seed, helix=helix, strand=strand, gain=gain))
        conditioned = motif is not None and motif_method != "inpaint" and self.motif_length
        motifs = [(places[n], target) for n in lengths.tolist()] if conditioned else None
        cond = self.conditions(len(lengths), sse, motifs)

        def layout(chunk: Tensor):
            return MoleculeSpace.from_sizes(chunk, device), (int(chunk.sum()), 3)

        replaces = motif is not None and motif_method != "condition"

        def guided(space: MoleculeSpace):
            denoiser = denoiser_for(space)
            if clash:
                denoiser = StericDenoiser(denoiser, clash, self.cfg.scale)
            if not replaces:
                return denoiser
            known, rows = [], []
            for n in space.sizes.tolist():
                mask = torch.zeros(n, dtype=torch.bool)
                mask[places[n]] = True
                known.append(mask)
                rows.append(torch.zeros(n, 3).index_put_((torch.as_tensor(places[n]),), target))
            weight = 0.0 if motif_method == "inpaint" else \
                RECONSTRUCTION_WEIGHT if reconstruction is None else reconstruction
            return MotifDenoiser(denoiser, torch.cat(known).to(device), torch.cat(rows).to(device),
                                 weight)

        def readout(space: MoleculeSpace, x: Tensor):
            return [(trace / self.cfg.scale).double().numpy() for trace in space.unbatch(x.cpu())]

        return sample_in_batches(guided, lengths, sampler, layout=layout,
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
