"""After sampling: a diverse choice from a pool, force-field relaxation, ordering by energy, and
RMSD pruning of conformers.

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


DIVERSE_BLOCK = 10
"""Conformers `diverse` keeps from each consecutive group of its pool: the pairwise RMSDs it
needs grow with the square of the group, and ten is the set size best-of-10 accuracy is
measured on (so the first ten kept are chosen exactly as a call for ten would choose them)."""


def diverse(mol: Chem.Mol, n: int) -> Chem.Mol:
    """A copy of `mol` keeping n of its conformers (a pool of a multiple of n), chosen to
    cover the pool: each consecutive group of DIVERSE_BLOCK kept conformers' share of the pool
    is split into as many clusters by `kmedoids` on heavy-atom RMSD, and each cluster is
    represented by its least clashing member (molgen.conformers.quality.clash_counts), the
    one nearest the medoid among equals.  The medoids minimise the mean RMSD from a pool
    conformer to its nearest kept one, which is best-of-n accuracy when the pool is drawn
    like the truth; clusters, not single conformers, pay for the clash filter."""
    conformers = list(mol.GetConformers())
    ratio, rest = divmod(len(conformers), max(n, 1))
    if n < 1 or rest:
        raise ValueError(f"cannot keep {n} of {len(conformers)} conformers in equal shares")
    clashes = clash_counts(mol)
    kept = []
    for first in range(0, n, DIVERSE_BLOCK):
        size = min(DIVERSE_BLOCK, n - first)
        ids = np.arange(first * ratio, (first + size) * ratio)
        distances = pairwise_heavy_atom_rmsd(mol, ids.tolist())
        medoids = kmedoids(distances, size)
        label = np.argmin(distances[:, medoids], axis=1)
        for c, medoid in enumerate(medoids):
            members = np.flatnonzero(label == c)
            kept.append(ids[min(members, key=lambda i: (clashes[ids[i]], distances[i, medoid]),
                                default=medoid)])
    return _with_conformers(mol, [conformers[i] for i in kept])


def kmedoids(distances: np.ndarray, n: int, max_iter: int = 30) -> list[int]:
    """Indices of n medoids of the points with pairwise `distances` [P, P] (n ≤ P): seeded by
    farthest-point picks from point 0, then Voronoi iteration (assign each point to its
    nearest medoid, move each medoid to its cluster's member of least summed distance) until
    nothing moves."""
    medoids, nearest = [0], distances[0].copy()
    while len(medoids) < n:
        nearest[medoids] = -1.0  # duplicates of a medoid never seed another
        medoids.append(int(np.argmax(nearest)))
        nearest = np.minimum(nearest, distances[medoids[-1]])
    for _ in range(max_iter):
        label = np.argmin(distances[:, medoids], axis=1)
        moved = []
        for c, medoid in enumerate(medoids):
            members = np.flatnonzero(label == c)
            moved.append(int(members[np.argmin(distances[np.ix_(members, members)].sum(axis=1))])
                         if len(members) else medoid)
        if moved == medoids:
            break
        medoids = moved
    return medoids


def _with_conformers(mol: Chem.Mol, conformers: list[Chem.Conformer]) -> Chem.Mol:
    """A copy of `mol` holding copies of `conformers` (properties kept), renumbered 0, 1, ..."""
    out = Chem.Mol(mol)
    out.RemoveAllConformers()
    for conformer in conformers:
        out.AddConformer(Chem.Conformer(conformer), assignId=True)
    return out
