"""`dock`: a receptor and a ligand in, ranked RDKit poses out.

How a ligand is docked (see molgen.docking.pose and molgen.docking.model):
1. the receptor is read (molgen.docking.receptor) and cut to the pocket around the box centre;
   the ligand keeps the stereo and protonation of its input (hydrogens added if missing);
2. ETKDGv3 embeds a few local structures of the ligand (rings, bond lengths, stereo), each
   minimised with MMFF94 and shared by POSES_PER_LOCAL_STRUCTURE poses;
3. the pose model samples every pose's translation, rotation and torsions with a core sampler
   (classifier-free guidance over the pocket when `guidance` > 0), all poses batched together;
4. unless raw poses are asked for, each sampled pose starts a Monte-Carlo chain on Vina's
   scoring function (molgen.docking.refine.search), and the chains' best poses are ranked by it,
   near-duplicates of a better pose (within 1 Å) left out.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path

import numpy as np
import torch
from rdkit import Chem

from ..conformers.api import ConformerModel
from ..conformers.inputs import name_of, read_inputs, to_molecule
from ..conformers.rmsd import pairwise_heavy_atom_rmsd
from ..data.checks import MAX_SEED, check_int, check_real
from ..diffusion import SamplerConfig, sample_in_batches
from .complexes import ligand_box
from .data import local_structures, pocket_of
from .model import NULL_CONDITION
from .pose import Docking, Pocket, PoseSpace
from .receptor import DockingInputError, Receptor, read_receptor
from .refine import Physics, SearchConfig, search

NUM_POSES = 60
"""Poses `dock` samples (each the start of one Monte-Carlo chain) unless told otherwise.
Chosen against 40 on CASF-2016's validation part (benchmarks/docking.py CASF_REPORTED; 60
complexes: top-1 30 against 28, 6 won and 4 lost), at about 1.3× the CPU time, still below
AutoDock Vina's at exhaustiveness 8."""
POSES_PER_LOCAL_STRUCTURE = 4
MIN_BOX_ATOMS = 10
"""A box holding fewer receptor heavy atoms than this has no pocket to dock into (the boxes
of 336 Astex and CASF-2016 complexes, crystal ligand + 10 Å, hold 71 or more)."""
DISTINCT_RMSD = 1.0
"""Å: a refined pose closer than this to a better-ranked one (symmetry-aware heavy-atom RMSD,
in place) is left out of the ranking, as Vina leaves out near-duplicate modes (its
min_rmsd, 1 Å): the poses returned are distinct binding modes."""
LOCAL_STRUCTURE_FORCEFIELD = "mmff"
"""Force field that minimises each ETKDG local structure of a ligand to be docked (None: as
embedded); training takes the local structures as ETKDG embeds them."""

class DockingModel(ConformerModel):
    """A trained pose model: how to denoise a batch, how it samples by default, and the
    largest ligand (atoms with H) it takes; `load(None)` is the shipped one."""

    TASK = "docking"


def sample_poses(dockings: list[Docking], denoiser_for, sampler: SamplerConfig, *, seed: int,
                 batch_size: int = 64, physics: Physics | None = None,
                 refine: SearchConfig | None = None, device="cpu", progress: bool = False) -> list[torch.Tensor]:
    """The positions [num_atoms, 3] of one sampled pose per docking, in batches of batch_size
    (the pocket is the condition; the sampler's guidance_scale weighs it); with physics and
    refine, each pose then the start of a Monte-Carlo search on Vina's function (`search`)."""
    generator = torch.Generator().manual_seed(seed)

    def layout(chunk):
        space = PoseSpace(chunk, device)
        return space, (len(space.batch), 1)

    def readout(space: PoseSpace, x: torch.Tensor):
        if physics is not None and refine is not None:
            x, _ = search(space, x, physics, config=refine, generator=generator)
        sizes = [d.ligand.graph.num_atoms for d in space.dockings]
        return list(space.positions(x).detach().cpu().split(sizes))

    cond = torch.ones((len(dockings), 1))
    return sample_in_batches(denoiser_for, dockings, sampler, layout=layout, batch_size=batch_size,
                             seed=seed, cond=cond, null_cond=NULL_CONDITION, readout=readout,
                             device=device, progress=progress, desc="poses", unit="pose")


def dock_prepared(ligand: Chem.Mol, pocket: Pocket, centre, *, model: DockingModel, n: int,
                  seed: int, guidance: float | None = None, physics: Physics | None = None,
                  refine: SearchConfig = SearchConfig(), device="cpu", progress: bool = False) -> Chem.Mol:
    """n poses of a ligand (explicit H) in a pocket around centre [3]: a copy of the ligand
    with one conformer per pose.  Without physics, in sampling order; with it, each pose
    refined by a Monte-Carlo search (refine) and ranked by Vina's energy, best first, its Vina
    score (kcal/mol) the conformer property `vina_score`, near-duplicates left out
    (`ranked_poses`)."""
    structures = local_structures(ligand, math.ceil(n / POSES_PER_LOCAL_STRUCTURE), seed,
                                  forcefield=LOCAL_STRUCTURE_FORCEFIELD)
    if not structures:
        raise DockingInputError(f"RDKit could not embed the ligand {ligand.GetProp('_Name')!r}"
                                if ligand.HasProp("_Name") else "RDKit could not embed the ligand")
    centre = torch.as_tensor(np.asarray(centre, dtype=np.float32))
    dockings = [Docking(structures[j % len(structures)], pocket, centre) for j in range(n)]
    sampler = model.sampler if guidance is None else \
        SamplerConfig.from_dict(model.sampler.to_dict() | {"guidance_scale": float(guidance)})
    with torch.no_grad():
        positions = sample_poses(dockings, model.denoiser_for, sampler, seed=seed, physics=physics,
                                 refine=refine, device=device, progress=progress)
    return ranked_poses(ligand, positions, physics)


def ranked_poses(ligand: Chem.Mol, positions: list[torch.Tensor], physics: Physics | None) -> Chem.Mol:
    """A copy of ligand with a conformer per pose (all atoms' positions [N, 3] each): when
    physics is given, ranked by Vina's energy, best first, each with its Vina score as the
    conformer property `vina_score`, and a pose within DISTINCT_RMSD of a better one left out;
    else every pose, in the given order."""
    if physics is None:
        return _with_conformers(ligand, positions)
    scores = physics.vina_scores(torch.cat(positions)).tolist()
    order = sorted(range(len(positions)), key=scores.__getitem__)
    distance = pairwise_heavy_atom_rmsd(_with_conformers(ligand, [positions[i] for i in order]), align=False)
    kept: list[int] = []
    for k in range(len(order)):
        if all(distance[k, j] >= DISTINCT_RMSD for j in kept):
            kept.append(k)
    out = _with_conformers(ligand, [positions[order[k]] for k in kept])
    for conformer, k in zip(out.GetConformers(), kept):
        conformer.SetDoubleProp("vina_score", scores[order[k]])
    return out


def _with_conformers(ligand: Chem.Mol, positions: list[torch.Tensor]) -> Chem.Mol:
    """A copy of ligand whose conformers are positions (all atoms' [N, 3] each), in order."""
    out = Chem.Mol(ligand)
    out.RemoveAllConformers()
    for pos in positions:
        conformer = Chem.Conformer(out.GetNumAtoms())
        for i, p in enumerate(pos.double().tolist()):
            conformer.SetAtomPosition(i, p)
        out.AddConformer(conformer, assignId=True)
    return out


def dock(protein: str | os.PathLike | Receptor, ligand: str | os.PathLike | Chem.Mol, *, box_center=None,
         box_size=None, autobox_ligand: str | os.PathLike | Chem.Mol | None = None, n: int = NUM_POSES,
         seed: int = 0, guidance: float | None = None, refine: bool | SearchConfig = True,
         model: DockingModel | str | os.PathLike | None = None, progress: bool = False) -> list[Chem.Mol]:
    """Dock a ligand into a protein: up to n poses as RDKit molecules (explicit H), best first.

    protein: a PDB/mmCIF path or a Receptor.  ligand: a SMILES string, an .sdf (or .smi) path
    whose first molecule is docked, or an RDKit Mol (its stereo and protonation are kept;
    hydrogens are added if missing).  The box: box_center and
    box_size (Å, 3 each), or autobox_ligand (a reference ligand: SDF path or Mol) for its
    PoseBusters box.  guidance: the classifier-free guidance weight w over the pocket, in the
    convention where 0 is the plain conditional model (ε = (1 + w) ε(x, pocket) − w ε(x)); default
    the model's.  refine: start a Monte-Carlo search on Vina's scoring function from each
    sampled pose (molgen.docking.refine.search; True: the default SearchConfig, or a
    SearchConfig — rounds=0 is a local optimisation only) and rank the results by it, leaving
    out a pose within DISTINCT_RMSD (1 Å) of a better one, as Vina does (so fewer than n
    poses may come back); False: the learned model's n raw poses, unranked.
    Each pose has the SD properties `molgen_rank` (1 = best), `molgen_box` and, refined,
    `vina_score` (kcal/mol, Vina's function as molgen computes it).
    Bad input raises DockingInputError (or ConformerInputError for the ligand) in one line;
    hydrogens added to the ligand and hetero groups left out of the receptor are warned of.
    """
    try:
        check_int("n", n, 1)
        check_int("seed", seed, 0, MAX_SEED)
        if guidance is not None:
            check_real("guidance", guidance, 0)
    except ValueError as exc:
        raise DockingInputError(str(exc)) from None
    if not isinstance(model, DockingModel):
        model = DockingModel.load(model)
    centre, size = _box(box_center, box_size, autobox_ligand)
    receptor = protein if isinstance(protein, Receptor) else read_receptor(protein)
    inside = int(np.all(np.abs(receptor.pos - centre) <= size / 2, axis=1).sum())
    if inside < MIN_BOX_ATOMS:
        raise DockingInputError(f"the box (centre {np.round(centre, 2).tolist()}, size "
                                f"{np.round(size, 2).tolist()}) holds {inside} receptor atoms, "
                                f"fewer than {MIN_BOX_ATOMS}: it lies outside the protein")
    if not isinstance(ligand, Chem.Mol):
        _, ligand = read_inputs(os.fspath(ligand))[0]
        if isinstance(ligand, Exception):
            raise ligand
    mol = to_molecule(ligand, max_atoms=model.max_atoms)
    if mol.HasProp("molgen_added_hydrogens"):
        warnings.warn(f"the ligand {name_of(mol)!r} came without (some) hydrogens: "
                      f"{mol.GetIntProp('molgen_added_hydrogens')} added, protonated as drawn",
                      stacklevel=2)
    if receptor.dropped:
        warnings.warn(f"hetero groups left out of the receptor: "
                      f"{', '.join(f'{k} ×{v}' for k, v in receptor.dropped.items())}", stacklevel=2)
    physics = Physics.of(receptor, mol, centre, size) if refine is not False else None
    config = refine if isinstance(refine, SearchConfig) else SearchConfig()
    poses = dock_prepared(mol, pocket_of(receptor, centre), centre, model=model, n=n, seed=seed,
                          guidance=guidance, physics=physics, refine=config, progress=progress)
    out = []
    for rank, cid in enumerate(range(poses.GetNumConformers()), start=1):
        pose = Chem.Mol(poses, confId=cid)
        pose.SetIntProp("molgen_rank", rank)
        pose.SetProp("molgen_box", " ".join(f"{v:.3f}" for v in (*centre, *size)))
        conformer = poses.GetConformer(cid)
        if conformer.HasProp("vina_score"):
            pose.SetDoubleProp("vina_score", conformer.GetDoubleProp("vina_score"))
        out.append(pose)
    return out


BOX_ARGS = ("box_center", "box_size", "autobox_ligand")


def check_box_given(box_center, box_size, autobox_ligand, names=BOX_ARGS) -> None:
    """DockingInputError unless the box is given one way: a centre and a size, or a reference
    ligand; the messages call the three by `names` (the CLI's flags, say)."""
    center_name, size_name, autobox_name = names
    if autobox_ligand is not None and (box_center is not None or box_size is not None):
        raise DockingInputError(f"give either {center_name} and {size_name} or {autobox_name}, not both")
    if autobox_ligand is None and (box_center is None or box_size is None):
        raise DockingInputError(f"no box: give {center_name} and {size_name}, or {autobox_name}")


def _box(box_center, box_size, autobox_ligand) -> tuple[np.ndarray, np.ndarray]:
    """The box as (centre, size) arrays, checked: given explicitly or around a reference."""
    check_box_given(box_center, box_size, autobox_ligand)
    if autobox_ligand is not None:
        reference = autobox_ligand
        if not isinstance(reference, Chem.Mol):
            reference = next(iter(Chem.SDMolSupplier(str(reference), removeHs=False)), None) \
                if Path(reference).is_file() else None
            if reference is None:
                raise DockingInputError(f"{autobox_ligand}: not a readable SDF reference ligand")
        if reference.GetNumConformers() == 0:
            raise DockingInputError("the reference ligand has no coordinates")
        return ligand_box(reference)
    try:
        centre, size = (np.asarray(v, dtype=np.float64).reshape(3) for v in (box_center, box_size))
    except (TypeError, ValueError):
        raise DockingInputError("box_center and box_size take three numbers each") from None
    if not (np.isfinite(centre).all() and np.isfinite(size).all() and (size > 0).all()):
        raise DockingInputError(f"box centre must be finite and box size positive, got "
                                f"{centre.tolist()}, {size.tolist()}")
    return centre, size

