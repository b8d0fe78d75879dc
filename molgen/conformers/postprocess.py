"""After sampling: force-field relaxation, ordering by energy, and RMSD pruning of conformers.

Energies are in kcal/mol and travel with each conformer as its `energy` property, so
`rank_by_energy` and `prune` (which return new molecules) keep them.
"""
from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

from .inputs import name_of
from .quality import clash_counts
from .rmsd import pairwise_heavy_atom_rmsd

FORCEFIELDS = {  # name → (has parameters for the molecule, optimize all conformers)
    "mmff": (AllChem.MMFFHasAllMoleculeParams, AllChem.MMFFOptimizeMoleculeConfs),
    "uff": (AllChem.UFFHasAllMoleculeParams, AllChem.UFFOptimizeMoleculeConfs),
}


def relax(mol: Chem.Mol, forcefield: str = "mmff", max_iters: int = 500,
          threads: int = 1) -> list[float]:
    """Minimize every conformer of `mol` (with explicit H) in place with MMFF94 or UFF; return
    the energies and store each as the conformer's `energy` property.

    A conformer not converged after `max_iters` iterations keeps its partly relaxed geometry.
    """
    if forcefield not in FORCEFIELDS:
        raise ValueError(f"unknown force field {forcefield!r}: use {' or '.join(FORCEFIELDS)}")
    has_params, optimize = FORCEFIELDS[forcefield]
    if not has_params(mol):
        hint = " (try uff)" if forcefield == "mmff" else ""
        raise ValueError(f"{forcefield.upper()} has no parameters for {name_of(mol)!r}{hint}")
    results = optimize(mol, numThreads=threads, maxIters=max_iters)
    energies = [energy for _, energy in results]
    for conformer, energy in zip(mol.GetConformers(), energies):
        conformer.SetDoubleProp("energy", energy)
    return energies


def rank_by_energy(mol: Chem.Mol) -> Chem.Mol:
    """A copy of `mol` with its conformers in increasing `energy` (set by `relax`)."""
    conformers = list(mol.GetConformers())
    missing = [c.GetId() for c in conformers if not c.HasProp("energy")]
    if missing:
        raise ValueError(f"conformer(s) {missing} have no energy: relax them first")
    return _with_conformers(mol, sorted(conformers, key=lambda c: c.GetDoubleProp("energy")))


def prune(mol: Chem.Mol, rms_threshold: float) -> Chem.Mol:
    """A copy of `mol` keeping, in order, each conformer whose heavy-atom RMSD (Å, symmetry-
    aware, after alignment) to every conformer kept before it exceeds `rms_threshold`.

    The order decides which of two close conformers stays: rank by energy first to keep the
    lower one.
    """
    if rms_threshold < 0:
        raise ValueError(f"the pruning RMSD threshold must be >= 0, got {rms_threshold}")
    conformers = list(mol.GetConformers())
    if len(conformers) < 2:
        return Chem.Mol(mol)
    rmsd = pairwise_heavy_atom_rmsd(mol)
    kept: list[int] = []
    for i in range(len(conformers)):
        if (rmsd[i, kept] > rms_threshold).all():
            kept.append(i)
    return _with_conformers(mol, [conformers[i] for i in kept])


def least_clashing(mol: Chem.Mol, n: int) -> Chem.Mol:
    """A copy of `mol` keeping the n conformers with the fewest steric clashes
    (molgen.conformers.quality.clash_counts), in their original order; among equals the
    earlier ones."""
    conformers = list(mol.GetConformers())
    keep = np.argsort(clash_counts(mol), kind="stable")[:n]
    return _with_conformers(mol, [conformers[i] for i in sorted(keep)])


def _with_conformers(mol: Chem.Mol, conformers: list[Chem.Conformer]) -> Chem.Mol:
    """A copy of `mol` holding copies of `conformers` (properties kept), renumbered 0, 1, ..."""
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    for conformer in conformers:
        out.AddConformer(Chem.Conformer(conformer), assignId=True)
    return out
