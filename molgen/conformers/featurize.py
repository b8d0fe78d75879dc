"""What the conformer model reads from a molecule: its heavy atoms, their features, the
features of every pair of them, and its torsions.

The network sees heavy atoms only (hydrogens ride along in the torsion rotations and are
counted in their atom's features); every pair of heavy atoms of a molecule is an edge, with
its bond (if any) and its topological distance, so the network knows the graph exactly and
reads the geometry from the distances.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from rdkit import Chem
from rdkit.Chem import rdDistGeom
from torch import Tensor

from .quality import clash_pairs
from .torsions import Torsions, find_torsions

ELEMENTS = ("H", "C", "N", "O", "F", "P", "S", "Cl", "Br", "I")
"""Elements the shipped conformer model was trained on; other molecules are refused."""

_HYBRID = (Chem.HybridizationType.SP, Chem.HybridizationType.SP2, Chem.HybridizationType.SP3)
_BONDS = (Chem.BondType.SINGLE, Chem.BondType.DOUBLE, Chem.BondType.TRIPLE, Chem.BondType.AROMATIC)
_RING_SIZES = (3, 4, 5, 6, 7, 8)
MAX_PATH = 8
"""Topological distances are one-hot up to MAX_PATH − 1 bonds, longer ones share a slot."""


def _one_hot(value, choices) -> list[float]:
    """One-hot over choices plus a last slot for anything else."""
    out = [0.0] * (len(choices) + 1)
    out[choices.index(value) if value in choices else -1] = 1.0
    return out


def atom_features(atom: Chem.Atom) -> list[float]:
    return (_one_hot(atom.GetSymbol(), ELEMENTS)
            + _one_hot(atom.GetTotalDegree(), (1, 2, 3, 4))
            + _one_hot(atom.GetFormalCharge(), (-1, 0, 1))
            + _one_hot(atom.GetHybridization(), _HYBRID)
            + _one_hot(atom.GetTotalNumHs(), (0, 1, 2))
            + [float(atom.GetIsAromatic()), float(atom.IsInRing())]
            + [float(atom.IsInRingSize(k)) for k in _RING_SIZES])


def bond_features(bond: Chem.Bond | None, path: int) -> list[float]:
    """A pair of heavy atoms: its bond type (or none), conjugation, ring, topological distance."""
    kind = bond.GetBondType() if bond is not None else None
    flags = [float(bond.GetIsConjugated()), float(bond.IsInRing())] if bond is not None else [0.0, 0.0]
    return _one_hot(kind, _BONDS) + flags + _one_hot(min(path, MAX_PATH), tuple(range(1, MAX_PATH)))


ATOM_DIM = len(atom_features(Chem.MolFromSmiles("C").GetAtomWithIdx(0)))
PAIR_DIM = len(bond_features(None, 1))


@dataclass
class MoleculeGraph:
    """One molecule (with explicit H) as the conformer model sees it.

    heavy [n] atom indices of the heavy atoms; atom_x [n, ATOM_DIM]; pairs [2, n(n − 1)]
    every ordered pair of heavy atoms, as positions in `heavy`; pair_x [n(n − 1), PAIR_DIM];
    torsions: the rotatable bonds, with atom indices of the whole molecule;
    prior_atoms [m, 4], prior [m, PRIOR_TERMS]: ETKDG's torsion potential of each (see
    `torsion_prior`); clash_pairs [2, p], clash_limits [p]: the atom pairs (hydrogens
    included) whose clashes turning the torsions can make or undo, and their clash distances
    (molgen.conformers.quality.clash_pairs).
    """

    num_atoms: int
    heavy: Tensor
    atom_x: Tensor
    pairs: Tensor
    pair_x: Tensor
    torsions: Torsions
    prior_atoms: Tensor
    prior: Tensor
    clash_pairs: Tensor
    clash_limits: Tensor


PRIOR_TERMS = 6


def torsion_prior(mol: Chem.Mol, torsions: Torsions) -> tuple[Tensor, Tensor]:
    """ETKDG's knowledge of each rotatable bond (Riniker & Landrum 2015; RDKit's
    GetExperimentalTorsions, as ETKDGv3 uses them): the potential

        E(φ) = Σ_k V_k (1 + s_k cos kφ),  k = 1 … 6,

    of the dihedral φ of its own four atoms, fitted to torsion angles in the CSD.  Returns
    those atoms [m, 4] (ordered so their middle bond runs b → c like the torsion's; the
    torsion's own atoms where no pattern matches) and V_k s_k [m, 6] (zeros where none).
    A local structure fixes the offset φ − θ between the pattern's and our dihedral.
    """
    found = {}
    for t in rdDistGeom.GetExperimentalTorsions(mol):
        atoms, terms = list(t["atomIndices"]), [v * s for v, s in zip(t["V"], t["signs"])]
        found[(atoms[1], atoms[2])] = (atoms, terms)
        found[(atoms[2], atoms[1])] = (atoms[::-1], terms)
    atoms, prior = [], []
    for a, b, c, d in torsions.atoms.tolist():
        pattern, terms = found.get((b, c), ([a, b, c, d], [0.0] * PRIOR_TERMS))
        atoms.append(pattern)
        prior.append(terms)
    return (torch.tensor(atoms, dtype=torch.long).reshape(-1, 4),
            torch.tensor(prior, dtype=torch.float32).reshape(-1, PRIOR_TERMS))


def movable_clash_pairs(mol: Chem.Mol, torsions: Torsions) -> tuple[Tensor, Tensor]:
    """The clash-checked pairs whose distance some torsion changes (one atom turns with it,
    the other does not), and their clash distances."""
    i, j, limit = (torch.as_tensor(a) for a in clash_pairs(mol))
    turns = torch.zeros((len(torsions), mol.GetNumAtoms()), dtype=torch.bool)
    for row, moving in enumerate(torsions.moving):
        turns[row, moving] = True
    movable = (turns[:, i] ^ turns[:, j]).any(0)
    return torch.stack([i[movable], j[movable]]), limit[movable].float()


def molecule_graph(mol: Chem.Mol) -> MoleculeGraph:
    heavy = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() > 1]
    paths = Chem.GetDistanceMatrix(mol)
    pairs, pair_x = [], []
    for i, ai in enumerate(heavy):
        for j, aj in enumerate(heavy):
            if i != j:
                pairs.append((i, j))
                pair_x.append(bond_features(mol.GetBondBetweenAtoms(ai, aj), int(paths[ai, aj])))
    torsions = find_torsions(mol)
    prior_atoms, prior = torsion_prior(mol, torsions)
    clash_atoms, clash_limits = movable_clash_pairs(mol, torsions)
    return MoleculeGraph(
        num_atoms=mol.GetNumAtoms(),
        heavy=torch.tensor(heavy, dtype=torch.long),
        atom_x=torch.tensor([atom_features(mol.GetAtomWithIdx(i)) for i in heavy]),
        pairs=torch.tensor(pairs, dtype=torch.long).reshape(-1, 2).T.contiguous(),
        pair_x=torch.tensor(pair_x).reshape(-1, PAIR_DIM),
        torsions=torsions, prior_atoms=prior_atoms, prior=prior,
        clash_pairs=clash_atoms, clash_limits=clash_limits)
