"""`generate_conformers`: SMILES or RDKit molecules in, RDKit molecules with conformers out.

How a molecule's conformers are made (see molgen.conformers.model):
1. RDKit's ETKDGv3 embeds a few *local structures* (bond lengths, angles, rings, stereo);
   each local structure serves several conformers, so the costly embedding is shared;
2. the torsion model samples every conformer's torsion angles with a core sampler, all
   molecules and conformers of a call batched together;
3. the torsions are set on the local structures, turned a little further where that makes
   atoms clash (`relieve_clashes`); a molecule without rotatable bonds gets its local
   structures as they are (one per conformer).
Optionally the conformers are then relaxed with MMFF94 or UFF, ranked by energy and pruned
of near-duplicates (molgen.conformers.postprocess).
"""
from __future__ import annotations

import functools
import gzip
import math
import os
import warnings
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import ClassVar, Sequence

import torch
from rdkit import Chem
from rdkit.Chem import AllChem, rdDistGeom
from tqdm.auto import tqdm

from ..data.checks import MAX_SEED, check_int, check_real
from ..diffusion import ClassifierGuidedDenoiser, SamplerConfig, sample_in_batches
from .featurize import molecule_graph
from .inputs import ConformerInputError, name_of, printable, to_molecule
from .model import NULL_SOURCE, Conformer, ConformerSpace, source_condition
from .postprocess import diverse, prune, rank_by_energy, relax as relax_conformers

DEFAULT_MODEL = "default.pt"
"""The shipped model, in molgen/conformers/weights/ (trained by `experiment=conformers`)."""
CONFORMERS_PER_LOCAL_STRUCTURE = 4
CLASH_STEPS = 40


def etkdg_params(seed: int) -> AllChem.EmbedParameters:
    """ETKDGv3, one thread, seeded with rdkit_seed(seed)."""
    params = AllChem.ETKDGv3()
    params.randomSeed, params.numThreads = rdkit_seed(seed), 1
    return params


def rdkit_seed(seed: int) -> int:
    """RDKit's randomSeed for molgen's seed (0 ≤ seed ≤ MAX_SEED): splitmix64's mix of it,
    in 1 … 2³⁰.  Neighbouring randomSeeds share embeddings (RDKit 2026.09: of 6 embeddings
    with r and 6 with r + 1, about a quarter are identical), so seeds s and s + 1 must not map
    to neighbours; 0 is avoided (it starts every embedding of a call alike), and the top
    half of the int32 range is left for the offsets RDKit adds per embedding."""
    z = (seed + 0x9E3779B97F4A7C15) % 2**64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) % 2**64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) % 2**64
    return 1 + (z ^ (z >> 31)) % 2**30


def embed(mol: Chem.Mol, num: int, seed: int, *, repair: bool = True) -> list[torch.Tensor]:
    """Positions [num_atoms, 3] of up to `num` ETKDGv3 embeddings of mol (explicit H).

    repair: an embedding with a bond more than BOND_SLACK outside ETKDG's own bounds is
    replaced by a fresh one (one more round of embedding); where the replacements are
    distorted too, the least distorted of all are kept."""
    if num < 1:
        return []
    params = etkdg_params(seed)
    positions = _embed(mol, num, params)
    if repair and positions and max(bond_excess(mol, positions)) > BOND_SLACK:
        params.randomSeed += num  # seeds this call has not used
        pool = positions + _embed(mol, num, params)
        excess = bond_excess(mol, pool)
        order = sorted(range(len(pool)),  # sound ones first, in order; then the least distorted
                       key=lambda k: (0, k) if excess[k] <= BOND_SLACK else (1, excess[k]))
        positions = [pool[k] for k in order[:len(positions)]]
    return positions


BOND_SLACK = 0.2
"""Å beyond a bond's ETKDG bounds that marks a distorted embedding: 0.4% of ETKDGv3's
embeddings of Platinum ligands (8 each of 230) go beyond it (a C=C at 1.64 Å, a C–H at
1.37 Å); the median is 0.02 Å and the 99th percentile 0.1 Å."""


def _embed(mol: Chem.Mol, num: int, params) -> list[torch.Tensor]:
    ids = list(AllChem.EmbedMultipleConfs(mol, num, params))
    positions = [torch.tensor(mol.GetConformer(i).GetPositions()) for i in ids]
    mol.RemoveAllConformers()
    if len(positions) < num and not params.useRandomCoords:
        # ETKDG's own fallback for molecules its distance bounds embed poorly
        params.useRandomCoords = True
        positions += _embed(mol, num - len(positions), params)
    return positions


def bond_excess(mol: Chem.Mol, positions: list[torch.Tensor]) -> list[float]:
    """Per embedding, the largest distance (Å) of a bond length outside its ETKDG bounds."""
    pairs = [(b.GetBeginAtomIdx(), b.GetEndAtomIdx()) for b in mol.GetBonds()]
    if not pairs:
        return [0.0] * len(positions)
    bounds = torch.as_tensor(rdDistGeom.GetMoleculeBoundsMatrix(mol))
    i, j = torch.tensor(pairs).T
    lo, hi = torch.minimum(i, j), torch.maximum(i, j)
    upper, lower = bounds[lo, hi], bounds[hi, lo]  # RDKit: upper triangle holds upper bounds
    out = []
    for pos in positions:
        d = (pos[i] - pos[j]).norm(dim=-1)
        out.append(max(0.0, float(torch.maximum(d - upper, lower - d).max())))
    return out


def sample_conformers(conformers: list[Conformer], denoiser_for, sampler: SamplerConfig, *,
                      seed: int, batch_size: int = 256, device="cpu", clash_steps: int = 0,
                      particle_guidance: float = 0.0, conditioned: bool = False,
                      progress: bool = False) -> list[torch.Tensor]:
    """Sample the torsions of each conformer (a graph with ≥ 1 torsion and a local structure)
    and return its positions [num_atoms, 3] with them set, in batches of `batch_size`.

    With sampler.start < 1 the sampler refines the local structure's own torsions noised to
    that time (SDEdit) instead of starting from noise.  clash_steps > 0: the sampled torsions
    are then turned away from steric clashes (ConformerSpace.positions).  particle_guidance
    w > 0: each step's score also carries −w ∇ ConformerSpace.repulsion, which spreads the
    conformers of one molecule (within a batch) apart.  conditioned: the model takes a source
    condition (molgen.conformers.model): it samples crystal torsions, with classifier-free
    guidance at sampler.guidance_scale."""
    if sampler.guidance_scale and (not conditioned or particle_guidance):
        raise ValueError("guidance_scale > 0 needs a conformer model trained with a source "
                         "condition (task.condition=source), and no particle guidance")

    def guided(space: ConformerSpace):
        return ClassifierGuidedDenoiser(denoiser_for(space), lambda x, t: -space.repulsion(x),
                                        particle_guidance)

    def layout(chunk):
        space = ConformerSpace(chunk, device)
        return space, (len(space.batch), 2)

    def readout(space: ConformerSpace, x: torch.Tensor):
        sizes = [c.graph.num_atoms for c in space.conformers]
        return list(space.positions(x, clash_steps).cpu().split(sizes))

    return sample_in_batches(guided if particle_guidance else denoiser_for, conformers, sampler,
                             layout=layout, batch_size=batch_size, seed=seed, init=ConformerSpace.data,
                             cond=source_condition("crystal", len(conformers)) if conditioned else None,
                             null_cond=NULL_SOURCE,
                             readout=readout, device=device, progress=progress,
                             desc="conformers", unit="conf")


@dataclass
class ConformerModel:
    """A trained torsion model: how to denoise a batch, how it samples by default, and the
    largest molecule (atoms with H) it takes.  Subclasses load other tasks' models of the same
    shape (molgen.docking.api.DockingModel): TASK names the task, and the shipped model is
    weights/DEFAULT_MODEL beside the subclass's module."""

    TASK: ClassVar[str] = "conformers"
    denoiser_for: object
    sampler: SamplerConfig
    max_atoms: int
    conditioned: bool = False   # trained with a source condition (task.condition=source)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None) -> "ConformerModel":
        """The model in a molgen checkpoint (or exported model file); the shipped one if None."""
        if path is None:
            return _shipped(cls)
        from ..train import load_trained

        trained = load_trained(path, task=cls.TASK)
        return cls(trained.denoiser, trained.sampler, trained.cfg.task.max_atoms,
                   conditioned=bool(getattr(trained.cfg.task, "condition", "")))


@functools.lru_cache(maxsize=None)
def _shipped(cls: type[ConformerModel]) -> ConformerModel:
    path = resources.files(cls.__module__.rsplit(".", 1)[0]) / "weights" / DEFAULT_MODEL
    with resources.as_file(path) as file:
        return cls.load(file)


def generate_conformers(molecules, num_confs: int = 10, *, seed: int = 0,
                        sampler: str | None = None, steps: int | None = None,
                        start: float | None = None, relax: str | None = None, prune_rms: float | None = None,
                        model: ConformerModel | str | os.PathLike | None = None,
                        local_structures: int | None = None, oversample: int = 1,
                        clash_steps: int = CLASH_STEPS, particle_guidance: float = 0.0,
                        batch_size: int = 256, progress: bool = False):
    """Conformers of one molecule or of each of a list.

    molecules: a SMILES string or RDKit Mol, or a list of them.  Returns, for a single input,
    a Mol with explicit H carrying `num_confs` (≤ MAX_CONFS) conformers (fewer after pruning,
    or, with a warning, for a rigid molecule that RDKit embeds fewer times), its stereo that of
    the input; for a list, a list of such Mols, with None where a molecule failed
    (each failure is warned once, in one line; a single input raises ConformerInputError).
    sampler, steps: a core sampler (molgen.diffusion.SAMPLERS) and its step count; start: 1
    samples torsions from noise, start < 1 refines ETKDG's own torsions noised to that time
    (SDEdit; then every conformer has its own ETKDG embedding); all default to the model's.  relax: None, "mmff" or "uff" (then conformers are ranked by energy,
    stored as the conformer property `energy`); prune_rms: drop conformers within this
    heavy-atom RMSD (Å) of a kept one.  local_structures: ETKDG embeddings per molecule
    (default: one per CONFORMERS_PER_LOCAL_STRUCTURE conformers).  model: a ConformerModel or
    a checkpoint path; default the shipped model.  clash_steps: at most this many gradient
    steps turn each sampled conformer's torsions away from steric clashes (hydrogens
    included; the network sees heavy atoms only, and half of its raw samples have a clash);
    0 keeps the raw samples.  oversample: torsions are drawn for oversample × num_confs
    conformers and num_confs kept that cover them (molgen.conformers.postprocess.diverse:
    k-medoids clusters on RMSD, each cluster's least clashing member; 1: every sample).
    particle_guidance: the weight w ≥ 0 of a repulsion between the torsion states of one
    molecule's conformers during sampling (Corso et al. 2024; 0: independent samples).  It
    spreads the conformers, but lowered best-of-10 accuracy on Platinum's valid part at every
    w tried (benchmarks/README.md).
    """
    _check_options(num_confs=num_confs, seed=seed, relax=relax, prune_rms=prune_rms,
                   local_structures=local_structures, oversample=oversample,
                   clash_steps=clash_steps, particle_guidance=particle_guidance,
                   batch_size=batch_size)
    single = isinstance(molecules, (str, Chem.Mol))
    inputs: Sequence = [molecules] if single else list(molecules)
    if not isinstance(model, ConformerModel):
        model = ConformerModel.load(model)
    config = model.sampler.to_dict()
    config.update({k: v for k, v in (("kind", sampler), ("steps", steps), ("start", start))
                   if v is not None})
    sampler_config = SamplerConfig.from_dict(config)
    # refining (start < 1) starts each conformer from its own embedding's torsions
    local = local_structures or (num_confs if sampler_config.start < 1 else
                                 math.ceil(num_confs / CONFORMERS_PER_LOCAL_STRUCTURE))

    mols: list[Chem.Mol | None] = []
    jobs: list[tuple[int, Conformer]] = []   # (molecule, conformer to sample)
    for i, x in enumerate(tqdm(inputs, desc="embed", unit="mol", disable=not progress)):
        try:
            mol = to_molecule(x, max_atoms=model.max_atoms)
            graph = molecule_graph(mol)
            rigid = len(graph.torsions) == 0
            structures = embed(mol, num_confs if rigid else min(local, num_confs), seed)
            if not structures:
                raise ConformerInputError(f"RDKit could not embed {name_of(mol)!r}")
            _warn_of_poor_embeddings(mol, structures, num_confs if rigid else None)
        except ConformerInputError as exc:
            if single:
                raise
            warnings.warn(str(exc), stacklevel=2)
            mols.append(None)
            continue
        if rigid:
            add_conformers(mol, structures)
        else:
            jobs += [(i, Conformer(graph, structures[j % len(structures)].float()))
                     for j in range(num_confs * oversample)]
        mols.append(mol)

    if jobs:
        # particle guidance repels within a batch: whole molecules per batch where they fit
        # (only then: batches of other sizes draw other noise, and the published numbers stay)
        per_molecule = num_confs * oversample
        if particle_guidance:
            batch_size = batch_size // per_molecule * per_molecule or batch_size
        with torch.no_grad():
            positions = sample_conformers([c for _, c in jobs], model.denoiser_for,
                                          sampler_config, seed=seed, batch_size=batch_size,
                                          clash_steps=clash_steps,
                                          particle_guidance=particle_guidance,
                                          conditioned=model.conditioned, progress=progress)
        for i in sorted({i for i, _ in jobs}):
            add_conformers(mols[i], [p for (j, _), p in zip(jobs, positions) if j == i])
            if oversample > 1:
                mols[i] = diverse(mols[i], num_confs)

    mols = [None if m is None else _finish(m, relax, prune_rms, single) for m in mols]
    return mols[0] if single else mols


def _warn_of_poor_embeddings(mol: Chem.Mol, structures: list[torch.Tensor], wanted: int | None):
    """A one-line warning where ETKDG's best falls short: fewer embeddings than the
    conformers of a rigid molecule need (`wanted`), or a bond still out of its bounds."""
    name = name_of(mol)
    if wanted is not None and len(structures) < wanted:
        warnings.warn(f"{name!r}: RDKit embedded {len(structures)} of the {wanted} conformers "
                      "asked for (a rigid molecule: each conformer is an embedding)", stacklevel=3)
    worst = max(bond_excess(mol, structures))
    if worst > BOND_SLACK:
        warnings.warn(f"{name!r}: ETKDG could not embed it within its own bond bounds (a bond "
                      f"{worst:.2f} Å outside them); its conformers keep that strain", stacklevel=3)


def add_conformers(mol: Chem.Mol, positions: list[torch.Tensor]) -> None:
    for pos in positions:
        conformer = Chem.Conformer(mol.GetNumAtoms())
        for k, xyz in enumerate(pos.double().tolist()):
            conformer.SetAtomPosition(k, xyz)
        mol.AddConformer(conformer, assignId=True)


MAX_CONFS = 10_000
"""Conformers per molecule a call may ask for (about 3 minutes for a drug-sized molecule on
one core; more is a loop of calls with different seeds)."""
BAR_CONFS = 1_000
"""From this many conformers per molecule, `write_conformers` shows each molecule's own
progress (embedding and sampling), not only the count of molecules done."""


def _check_options(*, num_confs, seed, relax, prune_rms, local_structures, oversample,
                   clash_steps, particle_guidance, batch_size) -> None:
    """ValueError in one line for an option out of range, before any work is done."""
    check_int("num_confs", num_confs, 1, MAX_CONFS)
    check_int("seed", seed, 0, MAX_SEED)
    check_int("oversample", oversample, 1)
    if num_confs * oversample > MAX_CONFS:
        raise ValueError(f"num_confs × oversample must be at most {MAX_CONFS} (torsion sets "
                         f"sampled per molecule), got {num_confs} × {oversample}")
    check_int("clash_steps", clash_steps, 0)
    check_int("batch_size", batch_size, 1)
    check_real("particle_guidance", particle_guidance, 0)
    if local_structures is not None:
        check_int("local_structures", local_structures, 1)
    if relax not in (None, "mmff", "uff"):
        raise ValueError(f"relax must be None, 'mmff' or 'uff', got {relax!r}")
    if prune_rms is not None:
        check_real("prune_rms", prune_rms, 0)


def _finish(mol: Chem.Mol, relax: str | None, prune_rms: float | None, single: bool):
    try:
        if relax is not None:
            relax_conformers(mol, relax)
            mol = rank_by_energy(mol)
        if prune_rms is not None:
            mol = prune(mol, prune_rms)
    except ValueError as exc:
        if single:
            raise ConformerInputError(str(exc)) from None
        warnings.warn(str(exc), stacklevel=3)
        return None
    return mol


def write_conformers(entries, path: str | os.PathLike, num_confs: int, *,
                     on_error=None, progress: bool = True, **options) -> tuple[int, int]:
    """Generate num_confs conformers for each (name, Mol or ConformerInputError) of `entries`
    (molgen.conformers.inputs.read_inputs) and write them to the SDF at `path`, one record per
    conformer: the title is the molecule's name, the properties its conformer index and,
    when relaxed, its energy in kcal/mol; gzipped when `path` ends in .gz.  One molecule per call of generate_conformers
    (with **options), so that a failure is its own: on_error(name, exc) hears of it and the
    others are still written.  Returns (molecules that failed, conformers written).  The file
    appears only when all is done, and only with a conformer in it: an error that stops the
    run (a bad option), or every molecule failing, leaves none."""
    generate_conformers([], num_confs, **options)  # checks every option before any work
    part = f"{path}.part"
    try:
        with (gzip.open(part, "wt") if str(path).endswith(".gz") else open(part, "w")) as handle:
            failed, written = _write_sdf(entries, handle, num_confs, on_error=on_error,
                                         progress=progress, **options)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    if written:
        os.replace(part, path)
    else:
        Path(part).unlink()
    return failed, written


def _write_sdf(entries, handle, num_confs: int, *, on_error, progress: bool,
               **options) -> tuple[int, int]:
    failed = written = 0
    each = progress and num_confs >= BAR_CONFS
    with Chem.SDWriter(handle) as writer:
        for name, mol in tqdm(entries, desc="conformers", unit="mol", disable=not progress):
            try:
                if isinstance(mol, ConformerInputError):
                    raise mol
                mol = generate_conformers(mol, num_confs, progress=each, **options)
            except ConformerInputError as exc:
                if on_error is not None:
                    on_error(name, exc)
                failed += 1
                continue
            mol.SetProp("_Name", printable(name))
            for index, conformer in enumerate(mol.GetConformers()):
                mol.SetIntProp("conformer", index)
                if conformer.HasProp("energy"):
                    mol.SetProp("energy", f"{conformer.GetDoubleProp('energy'):.4f}")
                writer.write(mol, confId=conformer.GetId())
                written += 1
    return failed, written
