"""Sanity checks for generated conformers: local geometry, clashes, stereochemistry, energy.

Each check returns one value per conformer; :func:`conformer_quality` summarises them for one
molecule.  The molecule must carry explicit hydrogens (as ``generate_conformers`` returns it)
so that MMFF typing and the clash check see every atom.

Tolerances, and why (measured on Platinum crystal poses and their MMFF94-minimised
ETKDG conformers):

- :data:`BOND_TOLERANCE` 0.1 Å from MMFF94's reference length r0: 99.9% of the bonds of
  MMFF minima and 98.8% of crystal bonds are within it, while a wrong bond order or a broken
  bond is off by ≥ 0.15 Å.
- :data:`ANGLE_TOLERANCE` 15° from MMFF94's θ0: θ0 is the bend term's reference, not the
  equilibrium angle, and MMFF's own minima sit > 10° from it at aryl ethers (θ0 103°, found
  ~117°) and crowded sp² centres; 99.8% of their angles and 99.5% of crystal angles are within
  15° (98.6% and 97% within 10°).  Gross distortions (collapsed or flattened centres) are off
  by far more.
- :data:`CLASH_SCALE` 0.7 of the sum of van der Waals radii, for atoms ≥ 4 bonds apart (1–4
  pairs sit closer in eclipsed and gauche arrangements), PoseBusters' factor: H···H clash
  below 1.68 Å, C···C below 2.38 Å; ~4% of Platinum crystal poses (modelled hydrogens) have
  one marginal clash.  A hydrogen-bond pair (H on N/O with an N/O/F acceptor) may come
  closer, to :data:`HBOND_CLASH_SCALE` (1.38 Å for H···O), since an intramolecular hydrogen
  bond puts the H ~1.7–2.0 Å from its acceptor.
"""
from __future__ import annotations

import numpy as np
from rdkit import Chem
from rdkit.Chem import AllChem

BOND_TOLERANCE = 0.1  # Å
ANGLE_TOLERANCE = 15.0  # degrees
CLASH_SCALE = 0.7
HBOND_CLASH_SCALE = 0.5
MIN_CLASH_BONDS = 4  # topological distance from which atom pairs are checked for clashes
RELAX_ITERATIONS = 200  # MMFF steps before the energy is read (RDKit's default)


def _positions(mol: Chem.Mol) -> np.ndarray:
    """[C, N, 3] coordinates of all conformers."""
    return np.array([c.GetPositions() for c in mol.GetConformers()]).reshape(
        mol.GetNumConformers(), mol.GetNumAtoms(), 3)


def geometry_deviations(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray] | None:
    """Absolute deviations of bond lengths (Å) [C, bonds] and bond angles (degrees)
    [C, angles] from MMFF94's reference values r0 and θ0, or None where MMFF has no
    parameters for the molecule (not evaluated)."""
    mol = Chem.Mol(mol)  # MMFF typing re-perceives aromaticity in place
    props = AllChem.MMFFGetMoleculeProperties(mol)
    if props is None:
        return None
    bonds, r0 = [], []
    for bond in mol.GetBonds():
        i, j = bond.GetBeginAtomIdx(), bond.GetEndAtomIdx()
        params = props.GetMMFFBondStretchParams(mol, i, j)
        if params:
            bonds.append((i, j))
            r0.append(params[2])
    angles, theta0 = [], []
    for atom in mol.GetAtoms():
        j, nbrs = atom.GetIdx(), [n.GetIdx() for n in atom.GetNeighbors()]
        for a, i in enumerate(nbrs):
            for k in nbrs[a + 1:]:
                params = props.GetMMFFAngleBendParams(mol, i, j, k)
                if params:
                    angles.append((i, j, k))
                    theta0.append(params[2])
    xyz = _positions(mol)
    bonds, angles = np.array(bonds, int).reshape(-1, 2), np.array(angles, int).reshape(-1, 3)
    length = np.linalg.norm(xyz[:, bonds[:, 0]] - xyz[:, bonds[:, 1]], axis=-1)
    u, v = xyz[:, angles[:, 0]] - xyz[:, angles[:, 1]], xyz[:, angles[:, 2]] - xyz[:, angles[:, 1]]
    cos = (u * v).sum(-1) / (np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1) + 1e-12)
    angle = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    return np.abs(length - np.array(r0)), np.abs(angle - np.array(theta0))


def clash_pairs(mol: Chem.Mol) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The atom pairs (i, j) checked for clashes, and each one's clash distance (Å): pairs at
    least :data:`MIN_CLASH_BONDS` bonds apart (or in different fragments), limit
    :data:`CLASH_SCALE` (hydrogen-bond pairs :data:`HBOND_CLASH_SCALE`) × the sum of their
    van der Waals radii."""
    table = Chem.GetPeriodicTable()
    radius = np.array([table.GetRvdw(a.GetAtomicNum()) for a in mol.GetAtoms()])
    i, j = np.nonzero(np.triu(Chem.GetDistanceMatrix(mol) >= MIN_CLASH_BONDS))
    polar_h = np.array([a.GetAtomicNum() == 1 and any(n.GetAtomicNum() in (7, 8) for n in a.GetNeighbors())
                        for a in mol.GetAtoms()])
    acceptor = np.isin([a.GetAtomicNum() for a in mol.GetAtoms()], (7, 8, 9))
    hbond = (polar_h[i] & acceptor[j]) | (polar_h[j] & acceptor[i])
    return i, j, np.where(hbond, HBOND_CLASH_SCALE, CLASH_SCALE) * (radius[i] + radius[j])


def clash_counts(mol: Chem.Mol) -> np.ndarray:
    """Number of clashing atom pairs per conformer [C]: pairs of :func:`clash_pairs`
    closer than their clash distance."""
    i, j, limit = clash_pairs(mol)
    xyz = _positions(mol)
    return (np.linalg.norm(xyz[:, i] - xyz[:, j], axis=-1) < limit).sum(axis=1)


def stereo_preserved(mol: Chem.Mol, input_mol: Chem.Mol | None = None) -> np.ndarray:
    """Whether each conformer's stereochemistry, re-assigned from its coordinates
    (tetrahedral centres and double bonds), matches the stereo specified in ``input_mol``
    (default: the tags ``mol`` itself carries).

    The test is a stereo-aware substructure match of the input onto the conformer's
    molecule.  When the input specifies all its stereo elements this is the same as equal
    canonical isomeric SMILES; elements the input leaves unspecified match anything.
    """
    query = _remove_hs(mol if input_mol is None else input_mol)
    result = []
    for conf in mol.GetConformers():
        copy = Chem.Mol(mol, confId=conf.GetId())
        Chem.AssignStereochemistryFrom3D(copy)  # hydrogens still on: they fix the 3D stereo
        copy = _remove_hs(copy)  # sanitised: RDKit aromaticity even after MMFF typing
        if copy.GetNumHeavyAtoms() != query.GetNumHeavyAtoms() or not copy.HasSubstructMatch(query):
            raise ValueError("input_mol is not the same molecule as mol")
        result.append(copy.HasSubstructMatch(query, useChirality=True))
    return np.array(result, dtype=bool)


def _remove_hs(mol: Chem.Mol) -> Chem.Mol:
    """``Chem.RemoveHs`` after dropping substance groups, which would keep their hydrogens
    (some SD files put a data group on every atom); hydrogens defining double-bond stereo stay."""
    mol = Chem.Mol(mol)
    Chem.ClearMolSubstanceGroups(mol)
    return Chem.RemoveHs(mol)


def relaxed_mmff_energies(mol: Chem.Mol, max_iters: int = RELAX_ITERATIONS) -> np.ndarray | None:
    """MMFF94 energy (kcal/mol) per conformer after ``max_iters`` steps of minimisation of a
    copy, or None without MMFF parameters.  A short relaxation removes the stiff bond/angle
    terms' noise, so that what remains compares conformations, not local geometry errors."""
    copy = Chem.Mol(mol)
    if AllChem.MMFFGetMoleculeProperties(copy) is None:
        return None
    return np.array([e for _, e in AllChem.MMFFOptimizeMoleculeConfs(copy, numThreads=1, maxIters=max_iters)])


def conformer_quality(mol: Chem.Mol, input_mol: Chem.Mol | None = None) -> dict:
    """Summary of the checks over ``mol``'s conformers; fractions are over conformers, the
    MMFF-based entries are None when MMFF has no parameters:

    - ``num_conformers``;
    - ``bonds_ok`` / ``angles_ok``: fraction of bonds / angles within tolerance of MMFF94's
      reference values (mean over conformers);
    - ``bond_max_dev`` (Å) / ``angle_max_dev`` (°): median over conformers of the largest
      deviation;
    - ``clash_free``: fraction without a clash;
    - ``stereo_ok``: fraction whose 3D stereo matches the input's (see :func:`stereo_preserved`);
    - ``energy_median`` / ``energy_min``: median / lowest MMFF energy after a short relaxation.
    """
    summary = {"num_conformers": mol.GetNumConformers()}
    deviations = geometry_deviations(mol)
    for name, index, tolerance in (("bond", 0, BOND_TOLERANCE), ("angle", 1, ANGLE_TOLERANCE)):
        if deviations is None:
            summary[f"{name}s_ok"] = summary[f"{name}_max_dev"] = None
            continue
        summary[f"{name}s_ok"] = float((deviations[index] <= tolerance).mean())
        summary[f"{name}_max_dev"] = float(np.median(deviations[index].max(axis=1, initial=0.0)))
    summary["clash_free"] = float((clash_counts(mol) == 0).mean())
    summary["stereo_ok"] = float(stereo_preserved(mol, input_mol).mean())
    energies = relaxed_mmff_energies(mol)
    summary["energy_median"] = None if energies is None else float(np.median(energies))
    summary["energy_min"] = None if energies is None else float(energies.min())
    return summary
