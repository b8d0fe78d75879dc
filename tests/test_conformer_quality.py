import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.conformers import quality
from molgen.conformers.quality import conformer_quality

# (S)-ibuprofen and an E double bond next to an R centre: tetrahedral and double-bond stereo
SMILES = ("CC(C)Cc1ccc([C@H](C)C(=O)O)cc1", "C/C=C/[C@@H](O)c1ccccc1")


def etkdg(smiles: str, n: int = 4) -> Chem.Mol:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    params = AllChem.ETKDGv3()
    params.randomSeed = 1  # RDKit's seed 0 would make every conformer the same
    assert len(AllChem.EmbedMultipleConfs(mol, n, params)) == n
    return mol


def edit_positions(mol: Chem.Mol, edit) -> Chem.Mol:
    """A copy of ``mol`` whose conformers' coordinates are ``edit(xyz)``."""
    mol = Chem.Mol(mol)
    for conf in mol.GetConformers():
        for i, p in enumerate(edit(conf.GetPositions())):
            conf.SetAtomPosition(i, p.tolist())
    return mol


@pytest.fixture(scope="module", params=SMILES)
def good(request):
    return etkdg(request.param)


def test_etkdg_conformers_pass(good):
    q = conformer_quality(good, Chem.MolFromSmiles(Chem.MolToSmiles(good)))
    assert q["num_conformers"] == 4
    assert q["bonds_ok"] >= 0.95 and q["angles_ok"] >= 0.95
    assert q["bond_max_dev"] < 0.2 and q["angle_max_dev"] < 25
    assert q["clash_free"] == 1.0 and q["stereo_ok"] == 1.0
    assert np.isfinite(q["energy_median"]) and q["energy_min"] <= q["energy_median"]


def test_stretched_bond_fails(good):
    def stretch(xyz):
        xyz[0] += 0.6 * (xyz[0] - xyz[1]) / np.linalg.norm(xyz[0] - xyz[1])  # atom 0: a methyl C
        return xyz
    bonds, _ = quality.geometry_deviations(edit_positions(good, stretch))
    assert (bonds.max(axis=1) > 0.5).all()
    assert conformer_quality(edit_positions(good, stretch))["bonds_ok"] < 1.0


def test_mirrored_conformers_lose_stereo(good):
    mirrored = edit_positions(good, lambda xyz: xyz * [-1.0, 1.0, 1.0])
    assert not quality.stereo_preserved(mirrored).any()
    # the input's stereo, not the tags the molecule carries, is the reference
    racemic = Chem.MolFromSmiles(Chem.MolToSmiles(good, isomericSmiles=False))
    assert quality.stereo_preserved(mirrored, racemic).all()


def test_overlapping_atoms_clash(good):
    far = np.argwhere(Chem.GetDistanceMatrix(good) >= 6)[0]

    def overlap(xyz):
        xyz[far[1]] = xyz[far[0]] + 0.1
        return xyz
    assert (quality.clash_counts(edit_positions(good, overlap)) >= 1).all()
    assert (quality.clash_counts(good) == 0).all()


def test_intramolecular_hydrogen_bond_is_no_clash(monkeypatch):
    mol = etkdg("NC(=O)c1ccccc1O", n=10)  # salicylamide: the phenol H bonds to the C=O
    AllChem.MMFFOptimizeMoleculeConfs(mol, maxIters=2000)
    assert (quality.clash_counts(mol) == 0).all()
    monkeypatch.setattr(quality, "HBOND_CLASH_SCALE", quality.CLASH_SCALE)
    assert quality.clash_counts(mol).any()  # the hydrogen bond is shorter than CLASH_SCALE allows


def test_missing_mmff_parameters_are_not_evaluated():
    q = conformer_quality(etkdg("OB(O)c1ccccc1", n=2))  # MMFF94 has no boron types
    assert q["bonds_ok"] is None and q["angle_max_dev"] is None and q["energy_median"] is None
    assert q["clash_free"] == 1.0 and q["stereo_ok"] == 1.0
