"""`generate_backbones`: chain lengths in, Cα traces out, as Bio.PDB structures."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from importlib import resources

import torch

from ..data.checks import MAX_SEED, check_int, check_real
from ..diffusion import SamplerConfig
from ..train import load_trained
from .task import BackboneTask

DEFAULT_MODEL = "default.pt"
"""The shipped model, in molgen/proteins/weights/ (trained by `experiment=backbones`)."""


@dataclass
class BackboneModel:
    """A trained backbone model: its task (lengths, sampling), how to denoise a batch and how
    it samples by default."""

    task: BackboneTask
    denoiser_for: object
    sampler: SamplerConfig

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "BackboneModel":
        """The model in a molgen checkpoint (or exported model file); the shipped one if None."""
        if path is None:
            return _default_model()
        trained = load_trained(path, task="backbones")
        return cls(trained.task, trained.denoiser, trained.sampler)


@functools.lru_cache(maxsize=1)
def _default_model() -> BackboneModel:
    path = resources.files("molgen.proteins") / "weights" / DEFAULT_MODEL
    if not path.is_file():
        raise FileNotFoundError(f"no shipped backbone model ({path}); train one with "
                                "`molgen train experiment=backbones` and pass --checkpoint")
    with resources.as_file(path) as file:
        return BackboneModel.load(file)


def generate_backbones(lengths, *, model: BackboneModel | str | os.PathLike | None = None,
                       sampler: str | None = None, steps: int | None = None, seed: int = 0,
                       helix: float | None = None, strand: float | None = None,
                       guidance: float | None = None, motif=None, motif_start: int | None = None,
                       motif_method: str = "guided", clash: float | None = None,
                       progress: bool = False):
    """Cα traces of one chain per entry of `lengths` (an int: one chain), as one Bio.PDB
    Structure with a model per chain: chain A of glycines holding their CA atoms (Å).
    molgen.data.proteins.write_pdb writes it as a multi-model PDB, traces_of reads the
    traces back as arrays.

    sampler, steps: a core sampler (molgen.diffusion.SAMPLERS) and its step count, by default
    the model's; model: a BackboneModel or a checkpoint path, by default the shipped one.
    helix, strand: the fractions of residues in helices and strands (P-SEA) that a
    secondary-structure-conditioned model aims at (default: those of a training chain of
    about the same length, strand × 2 and helix × 1 at 50 residues to × 1.5 from 100
    (molgen.proteins.task.TARGET_GAIN), as the model lands short of its targets; none with a
    motif; a fraction given is aimed at as it is);
    guidance: the classifier-free guidance scale w toward the condition (targets and
    motif), in ε̃ = (1 + w) ε(x, c) − w ε(x, ∅)
    (0: none; default the model's, or 0 with a motif: scaffolding was measured unguided).

    motif: scaffold every chain around a motif (molgen.proteins.motif.Motif, or a spec
    'file.pdb:A10-25[,A30-34]' that `read_motif` reads), placed from residue motif_start
    (0-based; default centred), by motif_method (molgen.proteins.motif.MOTIF_METHODS):
    'guided' (reconstruction guidance, then replacement; any model, and the motif is also the
    condition of a model trained with motifs), 'condition' (the condition of such a model
    only) or 'inpaint' (replacement only).  clash: the weight λ of the clash guidance that
    pushes non-adjacent residues of each prediction apart (molgen.proteins.sterics; default
    its CLASH_WEIGHT, 0: none)."""
    from ..data.proteins import to_structure
    from .motif import Motif, read_motif

    lengths = _checked(lengths, seed=seed, helix=helix, strand=strand, guidance=guidance,
                       steps=steps, motif_start=motif_start, clash=clash)
    if not isinstance(model, BackboneModel):
        model = BackboneModel.load(model)
    config = model.sampler.to_dict()
    if guidance is None and motif is not None:
        guidance = 0.0
    config.update({k: v for k, v in (("kind", sampler), ("steps", steps),
                                     ("guidance_scale", guidance)) if v is not None})
    counts = torch.tensor([model.task.chain_lengths(1, seed, n)[0] for n in lengths])
    if isinstance(motif, str):
        motif = read_motif(motif)
    if motif is not None and not isinstance(motif, Motif):
        raise ValueError(f"motif must be a Motif or a spec such as 'file.pdb:A10-25', got {motif!r}")
    with torch.no_grad():
        traces = model.task.sample(model.denoiser_for, SamplerConfig.from_dict(config), counts,
                                   seed=seed, helix=helix, strand=strand, motif=motif,
                                   motif_start=motif_start, motif_method=motif_method,
                                   clash=clash, progress=progress)
    return to_structure(traces)


def _checked(lengths, **options) -> list[int]:
    """lengths as a list; a one-line ValueError for any option of the wrong type or range,
    before any work (the model checks the lengths against its own limits)."""
    listed = [lengths] if isinstance(lengths, int) and not isinstance(lengths, bool) else lengths
    if not isinstance(listed, (list, tuple)) or not listed or \
            any(isinstance(n, bool) or not isinstance(n, int) for n in listed):
        raise ValueError(f"lengths must be an int or a non-empty list of ints, got {lengths!r}")
    check_int("seed", options["seed"], 0, MAX_SEED)
    for name, low, high in (("helix", 0, 1), ("strand", 0, 1), ("guidance", 0, None), ("clash", 0, None)):
        if options[name] is not None:
            check_real(name, options[name], low, high)
    for name, low in (("steps", 1), ("motif_start", 0)):
        if options[name] is not None:
            check_int(name, options[name], low)
    return list(listed)
