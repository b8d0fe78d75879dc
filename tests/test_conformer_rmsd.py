import numpy as np
import pytest
from rdkit import Chem
from rdkit.Chem import AllChem, rdMolAlign
from scipy.spatial.transform import Rotation

from molgen.conformers.rmsd import heavy_atom_rmsd, pairwise_heavy_atom_rmsd

SMILES = {
    "benzoic acid": "OC(=O)c1ccccc1",
    "tert-butyl, CF3": "CC(C)(C)c1ccc(C(F)(F)F)cc1",
    "ibuprofen": "CC(C)Cc1ccc(C(C)C(=O)O)cc1",
    "nitro, carboxylate": "O=[N+]([O-])c1ccc(C(=O)[O-])cc1",
}


def embed(smiles: str, n: int = 5, seed: int = 1) -> Chem.Mol:
    """ETKDG conformers; seed ≥ 1, as RDKit's seed 0 makes every conformer the same."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert len(AllChem.EmbedMultipleConfs(mol, n, randomSeed=seed)) == n
    return mol


@pytest.mark.parametrize("smiles", SMILES.values(), ids=SMILES.keys())
def test_matches_rdkit_get_best_rms(smiles):
    probe, ref = embed(smiles, seed=1), embed(smiles, n=1, seed=2)
    probe_h, ref_h = Chem.RemoveHs(probe), Chem.RemoveHs(ref)
    expected = [rdMolAlign.GetBestRMS(Chem.Mol(probe_h), ref_h, prbId=c.GetId())
                for c in probe_h.GetConformers()]
    np.testing.assert_allclose(heavy_atom_rmsd(probe, ref), expected, atol=1e-6)
    # hydrogens on one side only do not change the heavy-atom RMSD
    np.testing.assert_allclose(heavy_atom_rmsd(probe_h, ref), expected, atol=1e-6)


def test_rigid_motion_gives_zero():
    mol = embed(SMILES["ibuprofen"], n=1)
    moved = Chem.Mol(mol)
    conf = moved.GetConformer()
    xyz = Rotation.random(random_state=3).apply(conf.GetPositions()) + [4.0, -2.0, 7.0]
    for i, p in enumerate(xyz):
        conf.SetAtomPosition(i, p.tolist())
    assert heavy_atom_rmsd(moved, mol)[0] == pytest.approx(0.0, abs=1e-6)


def test_atom_order_and_conf_ids():
    probe, ref = embed(SMILES["tert-butyl, CF3"]), embed(SMILES["tert-butyl, CF3"], n=1, seed=3)
    order = np.random.default_rng(0).permutation(probe.GetNumAtoms()).tolist()
    renumbered = Chem.RenumberAtoms(probe, order)
    expected = heavy_atom_rmsd(probe, ref)
    np.testing.assert_allclose(heavy_atom_rmsd(renumbered, ref), expected, atol=1e-9)
    np.testing.assert_allclose(heavy_atom_rmsd(ref, probe, ref_conf_id=2), expected[2], atol=1e-9)
    np.testing.assert_allclose(heavy_atom_rmsd(probe, ref, conf_ids=[3, 1]), expected[[3, 1]])


def test_pairwise_matrix():
    mol = embed(SMILES["ibuprofen"], n=4)
    matrix = pairwise_heavy_atom_rmsd(mol)
    assert matrix.shape == (4, 4)
    np.testing.assert_array_equal(np.diag(matrix), 0.0)
    assert (matrix[~np.eye(4, dtype=bool)] > 0.05).all()  # the conformers do differ
    np.testing.assert_allclose(matrix, matrix.T)
    for i in range(4):
        np.testing.assert_allclose(matrix[i], heavy_atom_rmsd(mol, mol, ref_conf_id=i), atol=1e-6)
    np.testing.assert_allclose(pairwise_heavy_atom_rmsd(mol, conf_ids=[2, 0]),
                               matrix[np.ix_([2, 0], [2, 0])])
    in_place = pairwise_heavy_atom_rmsd(mol, align=False)  # docking poses: no superposition
    assert (in_place >= matrix - 1e-9).all()
    for i in range(4):
        np.testing.assert_allclose(in_place[i], heavy_atom_rmsd(mol, mol, ref_conf_id=i, align=False), atol=1e-6)


def test_different_molecules_raise():
    with pytest.raises(ValueError, match="not the same molecule"):
        heavy_atom_rmsd(embed("CCO", n=1), embed("CCCO", n=1))
    with pytest.raises(ValueError, match="no heavy-atom substructure match"):
        heavy_atom_rmsd(embed("CCO", n=1), embed("COC", n=1))


def test_mmff_aromaticity_flags_do_not_break_the_match():
    # MMFF typing re-flags aromaticity in place; here the pyrazolone ring loses its flags
    mol = embed("Cc1cc(Nc2nn(C(C)C)c(=O)c3cc(N4CC[NH+](C)CC4)ccc23)n[nH]1", n=1)
    relaxed = Chem.Mol(mol)
    AllChem.MMFFOptimizeMoleculeConfs(relaxed, maxIters=50)
    assert 0.0 < heavy_atom_rmsd(relaxed, mol)[0] < 1.0
