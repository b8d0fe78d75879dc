"""Synthetic complexes cut from real PDownB chains: fragment sizes, ligand chemistry (sanitized,
explicit H, L-amino acids, a carboxylic-acid end), the ligand at the chain's exact coordinates,
no covalent neighbour left in the receptor, flanks removed, burial, the split, determinism."""
from __future__ import annotations

import tarfile
from collections import Counter

import numpy as np
import pytest
from rdkit import Chem

from molgen.data.paths import default_data_root
from molgen.data.proteins import PDOWNB, split_of
from molgen.docking.receptor import read_receptor
from molgen.docking.synthetic import (MAX_ATOMS, MIN_ATOMS, MIN_BURIAL, SyntheticComplex,
                                      chain_complexes, ligand_heavy_positions, load_chain_receptors,
                                      synthetic_complexes)

ARCHIVE = default_data_root() / PDOWNB
pytestmark = pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"PDownB archive absent: {ARCHIVE}")
CHAINS = 6


@pytest.fixture(scope="module")
def made():
    counts = {}
    return synthetic_complexes("train", per_chain=3, seed=0, max_chains=CHAINS, counts=counts), counts


@pytest.fixture(scope="module")
def chains():
    return {c.name: c for c in load_chain_receptors(split="train", max_chains=CHAINS)}


def heavy(mol):
    return [a for a in mol.GetAtoms() if a.GetAtomicNum() > 1]


def test_sizes_and_counts(made):
    complexes, counts = made
    assert len(complexes) >= 2 * CHAINS
    assert all(isinstance(c, SyntheticComplex) for c in complexes)
    for c in complexes:
        assert MIN_ATOMS <= c.ligand.GetNumHeavyAtoms() <= MAX_ATOMS
        assert 1 <= len(c.residues) <= 3
        assert list(c.residues) == list(range(c.residues[0], c.residues[-1] + 1))
        assert c.burial >= MIN_BURIAL
    per_chain = Counter(c.name.rsplit("_", 1)[0] for c in complexes)
    assert max(per_chain.values()) <= 3
    assert counts["chains"] == CHAINS and counts["complexes"] == len(complexes)
    assert counts["exposed"] > 0 and counts["size"] > 0


def test_ligands_are_sanitized_with_hydrogens(made):
    for c in made[0]:
        mol = Chem.Mol(c.ligand)
        Chem.SanitizeMol(mol)
        assert len(Chem.GetMolFrags(mol)) == 1
        assert all(a.GetNumImplicitHs() == 0 for a in mol.GetAtoms())
        hs = [a for a in mol.GetAtoms() if a.GetAtomicNum() == 1]
        assert hs and mol.GetConformer().Is3D()
        pos = mol.GetConformer().GetPositions()
        for h in hs:  # every H sits at a bond length from its heavy atom
            n = h.GetNeighbors()[0].GetIdx()
            assert 0.9 < np.linalg.norm(pos[h.GetIdx()] - pos[n]) < 1.2
        # a free amine at one end (NH for proline), a carboxylic acid at the other; neutral
        by_name = {(a.GetPDBResidueInfo().GetResidueNumber(), a.GetPDBResidueInfo().GetName().strip()): a
                   for a in heavy(mol)}
        first, last = c.residues[0] % 10000, c.residues[-1] % 10000
        n = by_name[first, "N"]
        proline = n.GetPDBResidueInfo().GetResidueName() == "PRO"
        assert n.GetTotalNumHs(includeNeighbors=True) == (1 if proline else 2)
        assert by_name[last, "OXT"].GetTotalNumHs(includeNeighbors=True) == 1
        assert mol.HasSubstructMatch(Chem.MolFromSmarts("[CX4][CX3](=O)[OX2H1]"))
        assert Chem.GetFormalCharge(mol) == 0


def test_amino_acids_are_l(made):
    """Stereo comes from the 3-D coordinates: every Cα but glycine's is a stereocentre,
    S (R for cysteine, whose side chain outranks the carboxyl)."""
    labels = []
    for c in made[0]:
        for a in heavy(c.ligand):
            info = a.GetPDBResidueInfo()
            if info.GetName().strip() == "CA" and info.GetResidueName() != "GLY":
                assert a.GetChiralTag() != Chem.ChiralType.CHI_UNSPECIFIED
                want = "R" if info.GetResidueName() == "CYS" else "S"
                labels.append(a.GetProp("_CIPCode") == want)
    assert labels and np.mean(labels) >= 0.95


def test_ligand_sits_at_the_chains_coordinates(made, tmp_path):
    """Against the chain read afresh from the archive (not the cache): the ligand's heavy
    atoms, the added OXT aside, are the fragment's atoms, in order, at the same positions."""
    complexes = made[0][:4]
    with tarfile.open(ARCHIVE) as tar:
        for c in complexes:
            stem = c.name.split("_")[0]
            (tmp_path / f"{stem}.pdb").write_bytes(tar.extractfile(f"{stem}.pdb").read())
    for c in complexes:
        chain = read_receptor(tmp_path / f"{c.name.split('_')[0]}.pdb")
        frag = np.isin(chain.residue_id, c.residues)
        lig = ligand_heavy_positions(c.ligand)
        names = [a.GetPDBResidueInfo().GetName().strip() for a in heavy(c.ligand)]
        n = frag.sum()
        np.testing.assert_array_equal(lig[:n], chain.pos[frag])
        assert names[:n] == [chain.atom_name[i] for i in np.flatnonzero(frag)]
        if "OXT" not in names[:n]:  # the cut end, capped with an OXT on the last C
            assert len(names) == n + 1 and names[-1] == "OXT"
            c_last = np.flatnonzero(frag & (chain.residue_id == c.residues[-1])
                                    & (np.array(chain.atom_name) == "C"))[0]
            assert np.linalg.norm(lig[-1] - chain.pos[c_last]) == pytest.approx(1.25, abs=1e-6)


def test_receptor_has_no_covalent_neighbour_and_no_flanks(made, chains):
    for c in made[0]:
        lig = ligand_heavy_positions(c.ligand)
        d = np.linalg.norm(c.receptor.pos[:, None] - lig[None], axis=-1)
        assert d.min() > 2.0
        chain = chains[c.receptor.name]
        ids = list(dict.fromkeys(chain.residue_id.tolist()))  # residues in chain order
        lo, hi = ids.index(c.residues[0]), ids.index(c.residues[-1])
        gone = set(ids[max(lo - 2, 0):hi + 3])
        assert len(gone) == min(hi + 3, len(ids)) - max(lo - 2, 0)
        assert not gone & set(c.receptor.residue_id.tolist())
        # everything else of the chain is kept
        assert len(c.receptor) == int((~np.isin(chain.residue_id, list(gone))).sum())
        pocket = c.pocket()
        assert 0 < len(pocket) < len(c.receptor)
        assert np.linalg.norm(pocket.pos[:, None] - lig[None], axis=-1).min(1).max() <= 12.0


def test_flank_is_configurable(chains):
    chain = next(iter(chains.values()))
    for flank in (0, 4):
        for c in chain_complexes(chain, 3, np.random.default_rng(1), flank=flank):
            ids = list(dict.fromkeys(chain.residue_id.tolist()))
            lo, hi = ids.index(c.residues[0]), ids.index(c.residues[-1])
            left = set(c.receptor.residue_id.tolist())
            assert not set(ids[max(lo - flank, 0):hi + flank + 1]) & left
            if hi + flank + 1 < len(ids):
                assert ids[hi + flank + 1] in left


def test_incomplete_residues_are_skipped(chains):
    chain = next(iter(chains.values()))
    counts = Counter()
    before = chain_complexes(chain, 1000, np.random.default_rng(0), counts=counts)
    hit = before[0].residues[0]
    side = [i for i in np.flatnonzero(chain.residue_id == hit)
            if chain.atom_name[i] not in ("N", "CA", "C", "O")]
    broken = chain.select(np.arange(len(chain)) != side[-1])
    counts_broken = Counter()
    after = chain_complexes(broken, 1000, np.random.default_rng(0), counts=counts_broken)
    assert all(hit not in c.residues for c in after)
    assert counts_broken["incomplete"] >= counts["incomplete"] + 1


def test_split_is_respected():
    valid = synthetic_complexes("valid", per_chain=2, seed=0, max_chains=4)
    assert valid and all(split_of(c.name.split("_")[0]) == "valid" for c in valid)
    with pytest.raises(ValueError):
        synthetic_complexes("training", per_chain=1, seed=0)


def test_deterministic_in_the_seed(made):
    again = synthetic_complexes("train", per_chain=3, seed=0, max_chains=CHAINS)
    assert [c.name for c in again] == [c.name for c in made[0]]
    for a, b in zip(again, made[0]):
        assert Chem.MolToSmiles(a.ligand) == Chem.MolToSmiles(b.ligand)
        np.testing.assert_array_equal(a.ligand.GetConformer().GetPositions(),
                                      b.ligand.GetConformer().GetPositions())
    # a chain's fragments do not depend on how many chains are asked for
    fewer = synthetic_complexes("train", per_chain=3, seed=0, max_chains=2)
    assert [c.name for c in fewer] == [c.name for c in made[0] if c.name.rsplit("_", 1)[0] in
                                       {f.name.rsplit("_", 1)[0] for f in fewer}]
    other = synthetic_complexes("train", per_chain=3, seed=1, max_chains=CHAINS)
    assert [c.name for c in other] != [c.name for c in made[0]]
