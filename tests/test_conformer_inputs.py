"""molgen.conformers inputs (SMILES, Mol, .smi and .sdf files) and postprocessing (force-field
relaxation, ranking by energy, RMSD pruning), on small molecules embedded by RDKit ETKDG."""
import gzip
import sys

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.conformers.inputs import ConformerInputError, read_inputs, to_molecule
from molgen.conformers.postprocess import prune, rank_by_energy, relax

STEREO = "C[C@H](O)/C=C/Cl"


def embed(smiles: str, n: int = 1, seed: int = 7) -> Chem.Mol:
    """`n` ETKDG conformers (randomSeed=0 gives identical ones in some RDKit versions)."""
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    assert len(AllChem.EmbedMultipleConfs(mol, n, randomSeed=seed)) == n
    return mol


def heavy_smiles(mol: Chem.Mol) -> str:
    return Chem.MolToSmiles(Chem.RemoveHs(mol))


@pytest.mark.parametrize("smiles, kwargs, message", [
    ("C1CC", {}, "invalid SMILES 'C1CC'"),
    ("C[Si](C)(C)B(O)O", {}, "unsupported element(s) B, Si in 'C[Si](C)(C)B(O)O': the model "
                             "knows H, C"),
    ("CCCCCCCCCC", {"max_atoms": 30}, "'CCCCCCCCCC' has 32 atoms with hydrogens, more than "
                                      "the model's limit of 30"),
    ("", {}, "empty molecule"),
    ("C1CN1c1#Ccc(C)cc1", {}, "cannot read back"),  # found by the hypothesis run
])
def test_refused_molecules_say_why_in_one_line(smiles, kwargs, message):
    with pytest.raises(ConformerInputError) as info:
        to_molecule(smiles, **kwargs)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_smiles_gets_explicit_hydrogens_and_its_name():
    mol = to_molecule("CCO", name="ethanol", max_atoms=9)
    assert mol.GetNumAtoms() == 9 and mol.GetNumConformers() == 0
    assert mol.GetProp("_Name") == "ethanol"
    assert to_molecule("CCO").GetProp("_Name") == "CCO"


@pytest.mark.parametrize("smiles", [STEREO, "N[C@@H](C)C(=O)O", "CC(O)C=CCl"])
def test_stereo_of_the_smiles_is_kept_exactly(smiles):
    """Specified centres and double bonds stay as given; unspecified ones stay unspecified."""
    assert heavy_smiles(to_molecule(smiles)) == Chem.CanonSmiles(smiles)


def test_untagged_3d_mol_gets_its_stereo_from_the_coordinates():
    mol = embed(STEREO)
    for atom in mol.GetAtoms():
        atom.SetChiralTag(Chem.ChiralType.CHI_UNSPECIFIED)
    for bond in mol.GetBonds():
        bond.SetStereo(Chem.BondStereo.STEREONONE)
        bond.SetBondDir(Chem.BondDir.NONE)
    assert heavy_smiles(mol) == "CC(O)C=CCl"
    out = to_molecule(mol)
    assert heavy_smiles(out) == Chem.CanonSmiles(STEREO)
    assert out.GetNumConformers() == 0 and mol.GetNumConformers() == 1  # input untouched


def write_smi(path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_smi_file_with_names_comments_and_a_bad_line(tmp_path):
    source = write_smi(tmp_path / "in.smi", "# header comment\nCCO ethanol\n\n"
                                            "c1ccccc1\tbenzene ring\nC1CC broken\nCCN\n")
    entries = read_inputs(source)
    assert [name for name, _ in entries] == ["ethanol", "benzene ring", "broken", "CCN"]
    assert isinstance(entries[2][1], ConformerInputError)
    assert [m.GetProp("_Name") for _, m in entries if isinstance(m, Chem.Mol)] == [
        "ethanol", "benzene ring", "CCN"]


def test_literal_smiles():
    [(name, mol)] = read_inputs(STEREO)
    assert name == STEREO and heavy_smiles(mol) == Chem.CanonSmiles(STEREO)
    with pytest.raises(ConformerInputError, match="invalid SMILES"):
        read_inputs("C1CC")


def sdf_text() -> str:
    """Four records: good, unparseable, valence error, good with a blank title."""
    good = embed(STEREO)
    good.SetProp("_Name", "chloro")
    bad_valence = Chem.MolFromSmiles("CC(C)(C)(C)C", sanitize=False)
    bad_valence.SetProp("_Name", "pentavalent")
    blocks = [Chem.MolToMolBlock(good), "unparseable\n  junk\n\nnot a counts line\nM  END\n",
              Chem.MolToMolBlock(bad_valence, kekulize=False),
              Chem.MolToMolBlock(embed("CCO"))]
    return "".join(f"{block}$$$$\n" for block in blocks)


@pytest.mark.parametrize("suffix", [".sdf", ".sdf.gz"])
def test_sdf_with_broken_records_keeps_the_others(tmp_path, suffix):
    path = tmp_path / f"in{suffix}"
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(path, "wt") as handle:
        handle.write(sdf_text())
    entries = read_inputs(str(path))
    assert [name for name, _ in entries] == ["chloro", "unparseable", "pentavalent", "mol4"]
    assert "cannot parse SDF record 2 ('unparseable')" in str(entries[1][1])
    assert "cannot sanitize 'pentavalent'" in str(entries[2][1])
    assert heavy_smiles(entries[0][1]) == Chem.CanonSmiles(STEREO)  # stereo read from 3-D
    assert heavy_smiles(entries[3][1]) == "CCO" and entries[3][1].GetNumConformers() == 0


@pytest.mark.parametrize("name, content, message", [
    ("empty.smi", "# nothing\n\n", "no molecules in"),
    ("empty.sdf", "", "no molecules in"),
    ("missing.smi", None, "no such file"),
    ("plain.sdf.gz", "not gzip", "cannot read"),
    ("latin1.smi", b"CCO \xe9thanol\n", "cannot read"),
    ("table.csv", "smiles\nCCO\n", "input files are .smi"),
])
def test_unusable_file_raises(tmp_path, name, content, message):
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    with pytest.raises(ConformerInputError, match=message):
        read_inputs(str(path))


def forcefield_energies(mol: Chem.Mol, forcefield: str) -> list[float]:
    if forcefield == "mmff":
        props = AllChem.MMFFGetMoleculeProperties(mol)
        fields = [AllChem.MMFFGetMoleculeForceField(mol, props, confId=c.GetId())
                  for c in mol.GetConformers()]
    else:
        fields = [AllChem.UFFGetMoleculeForceField(mol, confId=c.GetId())
                  for c in mol.GetConformers()]
    return [field.CalcEnergy() for field in fields]


@pytest.mark.parametrize("forcefield", ["mmff", "uff"])
def test_relax_lowers_each_energy_and_stores_it(forcefield):
    mol = embed("CC(=O)NCCO", n=3)
    before = forcefield_energies(mol, forcefield)
    after = relax(mol, forcefield)
    assert len(after) == 3 and all(a < b for a, b in zip(after, before))
    np.testing.assert_allclose(after, forcefield_energies(mol, forcefield), atol=1e-6)
    assert [c.GetDoubleProp("energy") for c in mol.GetConformers()] == after


def test_relax_without_mmff_parameters_suggests_uff():
    with pytest.raises(ValueError, match=r"MMFF has no parameters for 'C\[Se\]C' \(try uff\)"):
        relax(embed("C[Se]C"), "mmff")


def test_rank_by_energy_sorts_a_copy():
    mol = embed("CCCCO", n=4)
    with pytest.raises(ValueError, match="relax them first"):
        rank_by_energy(mol)
    energies = relax(mol, "mmff", max_iters=5)
    ranked = rank_by_energy(mol)
    assert [c.GetDoubleProp("energy") for c in ranked.GetConformers()] == sorted(energies)
    assert [c.GetId() for c in ranked.GetConformers()] == [0, 1, 2, 3]
    assert [c.GetDoubleProp("energy") for c in mol.GetConformers()] == energies


def test_prune_drops_a_moved_duplicate_and_keeps_distinct_conformers():
    mol = embed("CCCCO", n=3)
    copy = Chem.Conformer(mol.GetConformer(1))
    rotation = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    for i, xyz in enumerate(copy.GetPositions() @ rotation.T + 5.0):
        copy.SetAtomPosition(i, xyz.tolist())
    mol.AddConformer(copy, assignId=True)
    pruned = prune(mol, 0.1)
    assert pruned.GetNumConformers() == 3 and mol.GetNumConformers() == 4
    for kept, original in zip(pruned.GetConformers(), list(mol.GetConformers())[:3]):
        np.testing.assert_array_equal(kept.GetPositions(), original.GetPositions())
    assert prune(mol, 100.0).GetNumConformers() == 1


@pytest.mark.parametrize("options, message", [
    ({"num_confs": 2.5}, "num_confs must be an integer"), ({"seed": -1}, "seed must be an integer"),
    ({"seed": 2**40}, "seed must be an integer"), ({"batch_size": -1}, "batch_size"),
    ({"local_structures": -1}, "local_structures"), ({"relax": "foo"}, "relax must be"),
    ({"prune_rms": -1}, "prune_rms"), ({"prune_rms": float("nan")}, "prune_rms"),
    ({"seed": 2**32}, "seed must be an integer in 0..4294967295"),
    ({"num_confs": 10_001}, "num_confs must be an integer in 1..10000"),
    ({"oversample": 5_001}, "num_confs × oversample must be at most 10000"),
])
def test_bad_options_fail_at_once_and_leave_no_file(tmp_path, options, message):
    from molgen.conformers.api import generate_conformers, write_conformers

    with pytest.raises(ValueError, match=message):
        generate_conformers("CCO", **options)
    path = tmp_path / "out.sdf"
    with pytest.raises(ValueError, match=message):
        write_conformers([("ethanol", Chem.MolFromSmiles("CCO"))], path, options.pop("num_confs", 2),
                         progress=False, **options)
    assert not list(tmp_path.iterdir())


def test_a_none_in_a_list_is_a_none_in_the_result():
    from molgen.conformers.api import generate_conformers

    with pytest.warns(UserWarning, match="no molecule"):
        out = generate_conformers(["CCO", None], num_confs=2)
    assert out[0].GetNumConformers() == 2 and out[1] is None


@pytest.mark.parametrize("smiles", ["c1ccccc1.c1ccccc1", "CCN(CC)CC.Cl"])
def test_disconnected_fragments_are_refused(smiles):
    with pytest.raises(ConformerInputError, match="2 disconnected fragments"):
        to_molecule(smiles)


def test_control_characters_never_reach_output():
    with pytest.raises(ConformerInputError, match="line break"):
        to_molecule("CCO\nCCC")
    mol = Chem.MolFromSmiles("CCO")
    mol.SetProp("_Name", "\x1b[31methanol")
    assert to_molecule(mol).GetProp("_Name") == "?[31methanol"


def test_neighbouring_seeds_share_no_etkdg_embedding():
    """RDKit's embeddings with randomSeed r + 1 repeat some of those with r (a quarter of 6 on
    these molecules); molgen's seeds s and s + 1 must not."""
    from molgen.conformers.api import MAX_SEED, embed, rdkit_seed

    for smiles in ("CC(=O)Oc1ccccc1C(=O)O", "CCN(CC)CCOc1ccccc1"):
        mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
        runs = [torch.stack(embed(Chem.Mol(mol), 6, seed)) for seed in range(8)]
        for a, b in zip(runs, runs[1:]):
            assert (a[:, None] - b[None]).abs().amax(dim=(-1, -2)).min() > 1e-3
    mapped = [rdkit_seed(s) for s in [*range(10_000), MAX_SEED]]
    assert len(set(mapped)) == len(mapped) and 1 <= min(mapped) and max(mapped) <= 2**30


def test_a_distorted_embedding_is_replaced(monkeypatch):
    from molgen.conformers import api

    mol = Chem.AddHs(Chem.MolFromSmiles("CCO"))
    good = api.embed(Chem.Mol(mol), 4, 0)
    assert max(api.bond_excess(mol, good)) < api.BOND_SLACK
    stretched = good[0].clone()
    h = next(a.GetIdx() for a in mol.GetAtomWithIdx(0).GetNeighbors() if a.GetAtomicNum() == 1)
    stretched[h] += 0.5 * (stretched[h] - stretched[0]) / (stretched[h] - stretched[0]).norm()
    assert abs(api.bond_excess(mol, [stretched])[0] - 0.5) < 0.05  # C–H 0.5 Å longer
    rounds = iter([[stretched, good[1]], [good[2], good[3]]])
    monkeypatch.setattr(api, "_embed", lambda *args: next(rounds))
    kept = api.embed(Chem.Mol(mol), 2, 0)
    assert [k is g for k, g in zip(kept, (good[1], good[2]))] == [True, True]
    rounds = iter([[stretched, good[1]], [stretched + 0.3, good[3]]])  # still distorted: least bad
    kept = api.embed(Chem.Mol(mol), 2, 0)
    assert kept[0] is good[1] and kept[1] is good[3]
    rounds = iter([[stretched, good[1]]])  # no second round without repair
    assert api.embed(Chem.Mol(mol), 2, 0, repair=False)[0] is stretched


def test_a_directory_is_not_a_smiles(tmp_path):
    with pytest.raises(ConformerInputError, match="is a directory"):
        read_inputs(str(tmp_path))


def test_gz_output_is_gzipped_and_huge_requests_are_refused(tmp_path, capsys):
    from molgen.cli import main

    out = tmp_path / "out.sdf.gz"
    assert main(["conformers", "CCO", "-n", "3", "-o", str(out)]) == 0
    with gzip.open(out) as f:
        assert sum(m is not None for m in Chem.ForwardSDMolSupplier(f)) == 3
    capsys.readouterr()
    assert main(["conformers", "CCO", "-n", "10001", "-o", str(tmp_path / "big.sdf")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "molgen: error: -n must be in 1..10000 (conformers per molecule), got 10001"
    assert not (tmp_path / "big.sdf").exists()


def test_a_missing_optional_package_is_one_line(tmp_path, monkeypatch, capsys):
    from molgen.cli import main

    monkeypatch.setitem(sys.modules, "qm9pack", None)
    monkeypatch.setenv("MOLGEN_CACHE", str(tmp_path / "cache"))
    assert main(["train", "experiment=qm9_tiny", f"out_dir={tmp_path / 'run'}", "progress=false"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("molgen: error: QM9 needs") and "pip install" in err and "\n" not in err
