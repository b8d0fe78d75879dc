"""Symmetry-aware heavy-atom RMSD between conformers, after optimal superposition.

Molecular symmetry (equivalent methyls of a tert-butyl, the two faces of a phenyl, ...) is
handled as in RDKit's ``rdMolAlign.GetBestRMS``: every atom map from a substructure match of
the probe's heavy-atom graph onto the reference's (``uniquify=False, useChirality=False``) is
tried and the smallest RMSD kept.  Conjugated terminal groups (carboxylic acids and
carboxylates, nitro, amidines: O/N of degree 1 on X(-O)=O) are treated as equivalent, as
RDKit's default ``symmetrizeConjugatedTerminalGroups=True`` does, because their hydrogen or
charge placement is not seen in the heavy-atom coordinates.

The superposition is Kabsch's, vectorised in numpy over conformers × atom maps using
the closed form  MSD = (|P|² + |R|² − 2(σ₁ + σ₂ + sign(det H)·σ₃)) / N  with σ the singular
values of the 3×3 covariance H = Pᵀ R of the centred coordinates (a proper rotation; no
reflection).
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rdkit import Chem

MAX_MATCHES = 10_000
"""Cap on the atom maps tried per molecule; only highly symmetric molecules (several
tert-butyl/CF3 groups and phenyls, 6 × 6 × 2 × ... maps) come near it.  Beyond the cap the
RMSD is the minimum over the first ``MAX_MATCHES`` maps, an upper bound."""

_TERMINAL_GROUP = Chem.MolFromSmarts(
    "[O,N;D1;$([O,N;D1]-[*]=[O,N;D1]),$([O,N;D1]=[*]-[O,N;D1])]~[*]")
_SINGLE_OR_DOUBLE = Chem.BondFromSmarts("-,=")
_CHUNK = 1 << 18  # 3×3 covariance matrices per batch (~19 MB of float64)


def heavy_atom_rmsd(probe: Chem.Mol, ref: Chem.Mol, conf_ids: Sequence[int] | None = None, *,
                    ref_conf_id: int = -1, align: bool = True) -> np.ndarray:
    """RMSD in Å over heavy atoms between each probe conformer (all when ``conf_ids`` is None)
    and conformer ``ref_conf_id`` of ``ref``, minimised over symmetry-equivalent atom maps;
    after optimal superposition, or, with ``align=False``, in place (docking poses).

    ``probe`` and ``ref`` must be the same molecule; atom order and hydrogens may differ.
    Raises ``ValueError`` if their heavy-atom graphs do not match.
    """
    probe_heavy, probe_xyz = _heavy_atoms(probe, conf_ids)
    ref_heavy, ref_xyz = _heavy_atoms(ref, [ref_conf_id])
    if probe_heavy.GetNumAtoms() != ref_heavy.GetNumAtoms():
        raise ValueError(f"probe has {probe_heavy.GetNumAtoms()} heavy atoms, "
                         f"reference {ref_heavy.GetNumAtoms()}: not the same molecule")
    maps = _atom_maps(probe_heavy, ref_heavy)  # maps[m, i]: ref atom of probe atom i
    rmsd = _best_rmsd if align else _in_place_rmsd
    return rmsd(probe_xyz, ref_xyz[0][maps])


def pairwise_heavy_atom_rmsd(mol: Chem.Mol, conf_ids: Sequence[int] | None = None, *,
                             align: bool = True) -> np.ndarray:
    """[C, C] symmetric matrix of :func:`heavy_atom_rmsd` between the conformers of ``mol``
    (all when ``conf_ids`` is None, else those, in that order), superposed or, with
    ``align=False``, in place; zero diagonal."""
    heavy, xyz = _heavy_atoms(mol, conf_ids)
    maps = _atom_maps(heavy, heavy)
    n = len(xyz)
    out = np.zeros((n, n))
    rmsd = _best_rmsd if align else _in_place_rmsd
    for i in range(n - 1):
        # conformer i as the reference, permuted by every automorphism, against all later ones
        out[i, i + 1:] = out[i + 1:, i] = rmsd(xyz[i + 1:], xyz[i][maps])
    return out


def _in_place_rmsd(probe_xyz: np.ndarray, ref_maps: np.ndarray) -> np.ndarray:
    """[C] RMSD without superposition of conformers [C, N, 3] to the reference permuted by
    every atom map [M, N, 3], minimised over the maps."""
    msd = ((probe_xyz[:, None] - ref_maps[None]) ** 2).sum(-1).mean(-1)  # [C, M]
    return np.sqrt(msd.min(axis=1))


def _heavy_atoms(mol: Chem.Mol, conf_ids: Sequence[int] | None) -> tuple[Chem.Mol, np.ndarray]:
    """The heavy-atom graph (heavy atoms in their original order) and its coordinates
    [C, N, 3] in the requested conformers."""
    if mol.GetNumConformers() == 0:
        raise ValueError("molecule has no conformers")
    heavy_idx = [a.GetIdx() for a in mol.GetAtoms() if a.GetAtomicNum() != 1]
    confs = mol.GetConformers() if conf_ids is None else [mol.GetConformer(int(c)) for c in conf_ids]
    xyz = np.array([c.GetPositions()[heavy_idx] for c in confs], dtype=np.float64)
    heavy = Chem.Mol(mol)
    Chem.ClearMolSubstanceGroups(heavy)  # RemoveAllHs keeps hydrogens in substance groups
    # sanitised, so that aromaticity flags left by MMFF typing do not prevent the match
    return Chem.RemoveAllHs(heavy), xyz.reshape(len(confs), len(heavy_idx), 3)


def _atom_maps(probe: Chem.Mol, ref: Chem.Mol) -> np.ndarray:
    """[M, N] atom maps probe → ref from substructure matches of the probe (terminal
    conjugated groups symmetrised) onto the reference."""
    query = Chem.RWMol(probe)
    for terminal, neighbour in query.GetSubstructMatches(_TERMINAL_GROUP):
        query.GetAtomWithIdx(terminal).SetFormalCharge(0)
        query.ReplaceBond(query.GetBondBetweenAtoms(terminal, neighbour).GetIdx(), _SINGLE_OR_DOUBLE)
    maps = ref.GetSubstructMatches(query, uniquify=False, useChirality=False,
                                   maxMatches=MAX_MATCHES)
    if not maps:
        raise ValueError("no heavy-atom substructure match between probe and reference")
    return np.array(maps, dtype=np.int64)


def _best_rmsd(probe: np.ndarray, refs: np.ndarray) -> np.ndarray:
    """For probe conformers [C, N, 3] and permuted copies of one reference [M, N, 3]: the
    minimum over M of the superposed RMSD, per conformer [C]."""
    probe = probe - probe.mean(axis=1, keepdims=True)
    refs = refs - refs.mean(axis=1, keepdims=True)  # the centroid does not depend on the map
    n_atoms = probe.shape[1]
    sq = (probe ** 2).sum(axis=(1, 2))[:, None] + (refs[0] ** 2).sum()
    best = np.full(len(probe), np.inf)
    step = max(1, _CHUNK // max(1, len(probe)))
    for start in range(0, len(refs), step):
        cov = np.einsum("cna,mnb->cmab", probe, refs[start:start + step])
        sigma = np.linalg.svd(cov, compute_uv=False)
        sigma[..., 2] *= np.sign(np.linalg.det(cov))
        msd = (sq - 2 * sigma.sum(axis=-1)) / n_atoms
        best = np.minimum(best, msd.min(axis=1))
    return np.sqrt(np.clip(best, 0.0, None))
