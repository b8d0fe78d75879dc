"""Docking: the receptor reader, the pose space (round trip, rigid motions), the denoiser's
symmetries, and a tiny model that trains and docks an Astex complex through the command line;
bad inputs end in one line."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from rdkit import Chem
from rdkit.Chem import AllChem

from molgen.cli import main
from molgen.conformers.model import Conformer
from molgen.data.paths import default_data_root
from molgen.data.proteins import PDOWNB
from molgen.docking.model import POCKET_DIM, DockingNet
from molgen.docking.pose import Docking, Pocket, PoseSpace, canonical_frame
from molgen.docking.receptor import DockingInputError, read_receptor

ASTEX = default_data_root() / "complexes" / "astex_diverse" / "1OF1_SCT"
needs_astex = pytest.mark.skipif(not ASTEX.is_dir(), reason=f"Astex set absent: {ASTEX}")
needs_pdownb = pytest.mark.skipif(not (default_data_root() / PDOWNB).is_file(), reason="PDownB absent")


def ligand(smiles: str = "CC(=O)Nc1ccc(OCCN(C)C)cc1C(=O)O", seed: int = 1) -> Conformer:
    mol = Chem.AddHs(Chem.MolFromSmiles(smiles))
    AllChem.EmbedMolecule(mol, randomSeed=seed)
    c = Conformer.of(mol)
    return Conformer(c.graph, canonical_frame(c.pos, c.graph.heavy))


def random_rotation(seed: int) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=torch.Generator().manual_seed(seed)))
    return q * torch.sign(torch.linalg.det(q))


def space_in(q: torch.Tensor, lig: Conformer, copies: int = 2) -> PoseSpace:
    """A batch of `copies` dockings of lig into one random pocket, the world turned by q."""
    g = torch.Generator().manual_seed(0)
    pocket = torch.randn((200, 3), generator=g) * 6
    features = torch.nn.functional.one_hot(torch.randint(POCKET_DIM, (200,), generator=g), POCKET_DIM)
    centre = torch.tensor([1.0, -2.0, 0.5])
    return PoseSpace([Docking(lig, Pocket(pocket @ q.T, features.float()), centre @ q.T)] * copies)


def test_pose_state_round_trip_and_rigid_local_structure():
    lig = ligand()
    space = space_in(torch.eye(3), lig)
    x = space.noise(torch.empty(len(space.batch), 1), torch.Generator().manual_seed(0))
    pos = space.positions(x)
    assert (space.positions(space.state_of(pos)) - pos).norm(dim=-1).max() < 1e-5  # Å
    mol = Chem.AddHs(Chem.MolFromSmiles("CC(=O)Nc1ccc(OCCN(C)C)cc1C(=O)O"))
    bonds = torch.tensor([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in mol.GetBonds()]).T
    n = lig.graph.num_atoms
    for p in pos.split(n):  # bond lengths (and so the local structure) survive every pose
        assert torch.allclose((p[bonds[0]] - p[bonds[1]]).norm(dim=-1),
                              (lig.pos[bonds[0]] - lig.pos[bonds[1]]).norm(dim=-1), atol=1e-4)


def test_canonical_frame_is_a_proper_rotation_of_the_input():
    lig = ligand()
    turned = lig.pos @ random_rotation(3).T + torch.tensor([5.0, 1.0, -2.0])
    again = canonical_frame(turned, lig.graph.heavy)
    assert torch.allclose(again, lig.pos, atol=1e-4)  # same frame whatever the input's orientation


def test_denoiser_is_se3_equivariant_and_torsion_outputs_invariant():
    torch.manual_seed(0)
    net, lig = DockingNet(hidden=32, layers=2, forces=4), ligand()
    space = space_in(torch.eye(3), lig)
    x = space.noise(torch.empty(len(space.batch), 1), torch.Generator().manual_seed(1)) * 0.5
    t, cond = torch.tensor([0.3, 0.7]), torch.ones(2, 1)
    q = random_rotation(5)
    turned = space_in(q, lig)
    tau, rot, tors = space.parts(x)
    xq = turned.assemble(tau @ q.T, torch.cat([rot[:, :3] @ q.T, rot[:, 3:] @ q.T], 1), tors)
    assert torch.allclose(turned.positions(xq), space.positions(x) @ q.T, atol=1e-4)
    with torch.no_grad():
        (a, b, c), (aq, bq, cq) = space.parts(net(x, t, cond, space=space)), \
            turned.parts(net(xq, t, cond, space=turned))
    assert torch.allclose(aq, a @ q.T, atol=1e-5)
    assert torch.allclose(bq, torch.cat([b[:, :3] @ q.T, b[:, 3:] @ q.T], 1), atol=1e-5)
    assert torch.allclose(cq, c, atol=1e-5)
    # the pocket matters, and guidance's two passes equal two separate calls
    with torch.no_grad():
        dropped = net(x, t, torch.zeros(2, 1), space=space)
        both = net(space.repeat(x, 2), torch.cat([t, t]), torch.tensor([[1.0], [1.0], [0.0], [0.0]]),
                   space=space)
        assert not torch.allclose(dropped, net(x, t, cond, space=space))
        assert torch.allclose(both[len(x):], dropped)


def test_receptor_reader_keeps_metals_maps_modified_residues_and_rejects_junk(tmp_path):
    pdb = tmp_path / "r.pdb"
    pdb.write_text(
        "ATOM      1  N   MSE A   1      11.104   6.134  -6.504  1.00  0.00           N\n"
        "ATOM      2  CA  MSE A   1      11.639   6.071  -5.147  1.00  0.00           C\n"
        "ATOM      3 SE   MSE A   1      12.000   7.000  -4.000  1.00  0.00          SE\n"
        "HETATM    4 ZN    ZN A 301      10.000   5.000  -5.000  1.00  0.00          ZN\n"
        "HETATM    5  C1  NAG A 302      20.000   5.000  -5.000  1.00  0.00           C\n"
        "HETATM    6  O   HOH A 401      22.000   5.000  -5.000  1.00  0.00           O\n")
    r = read_receptor(pdb)
    assert r.residue == ["MET", "MET", "MET", "ZN"] and r.atom_name[2] == "SD" and r.element[2:] == ["S", "Zn"]
    assert r.dropped == {"NAG": 1}
    pdb.write_text("HETATM    4 ZN    ZN A 301      10.000   5.000  -5.000  1.00  0.00          ZN\n")
    with pytest.raises(DockingInputError, match="no protein atoms"):
        read_receptor(pdb)
    with pytest.raises(DockingInputError, match="no such receptor file"):
        read_receptor(tmp_path / "missing.pdb")
    pdb.write_text("HETATM    4 ZN    ZN A 301      10.000   5.000\n")
    with pytest.raises(DockingInputError, match="line 1 is a truncated HETATM record"):
        read_receptor(pdb)


@needs_astex
@needs_pdownb
def test_tiny_model_trains_and_docks_an_astex_complex_through_the_cli(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "experiment=docking_tiny", f"out_dir={run}", "progress=false"]) == 0
    protein, crystal = ASTEX / "1OF1_SCT_protein.pdb", ASTEX / "1OF1_SCT_ligand.sdf"
    out, ckpt = tmp_path / "poses.sdf", str(run / "checkpoint.pt")
    assert main(["dock", "--protein", str(protein), "--ligand", str(crystal), "--autobox-ligand",
                 str(crystal), "-n", "5", "--rounds", "2", "--checkpoint", ckpt, "-o", str(out)]) == 0
    captured = capsys.readouterr()
    poses = [m for m in Chem.SDMolSupplier(str(out), removeHs=False)]
    assert f"{len(poses)} poses" in captured.out and "hydrogens: " in captured.err  # the Astex SDF has none
    reference = next(iter(Chem.SDMolSupplier(str(crystal))))
    centre = reference.GetConformer().GetPositions().mean(0)
    # the distinct ones of 5 poses
    assert 1 <= len(poses) <= 5 and [p.GetIntProp("molgen_rank") for p in poses] == list(range(1, len(poses) + 1))
    for pose in poses:  # the input's molecule (stereo included), placed near the box
        assert Chem.MolToSmiles(Chem.RemoveHs(pose)) == Chem.MolToSmiles(reference)
        assert np.linalg.norm(pose.GetConformer().GetPositions().mean(0) - centre) < 25

    receptor = read_receptor(protein)  # a small box around its outermost atom holds a handful
    edge = [str(v) for v in receptor.pos[np.argmax(np.linalg.norm(receptor.pos - receptor.pos.mean(0), axis=1))]]
    bad = [(["--ligand", "C[Si](C)C", "--autobox-ligand", str(crystal)], "unsupported element"),
           (["--ligand", "CCO", "--box-center", "0", "0", "0", "--box-size", "8", "8", "8"], "outside the protein"),
           (["--ligand", "CCO", "--box-center", *edge, "--box-size", "3", "3", "3"], "outside the protein"),
           (["--ligand", "CCO", "--box-center", "0", "nan", "0", "--box-size", "8", "8", "8"], "finite"),
           (["--ligand", "C1CC(", "--autobox-ligand", str(crystal)], "invalid SMILES"),
           (["--ligand", str(tmp_path / "absent.sdf"), "--autobox-ligand", str(crystal)], "no such file"),
           (["--ligand", "CCO"], "no box: give --box-center and --box-size, or --autobox-ligand"),
           (["--ligand", "CCO", "--box-center", "0", "0", "0"], "no box: give --box-center and --box-size"),
           (["--ligand", "CCO", "--box-size", "8", "8", "8", "--autobox-ligand", str(crystal)],
            "give either --box-center and --box-size or --autobox-ligand, not both"),
           (["--ligand", "CCO", "--autobox-ligand", str(crystal), "-n", "0"], "n must be an integer >= 1"),
           (["--ligand", "CCO", "--autobox-ligand", str(crystal), "--seed", "-1"], "seed must be an integer in 0..4294967295"),
           (["--ligand", "CCO", "--autobox-ligand", str(crystal), "--guidance", "nan"], "guidance must be a finite number >= 0"),
           (["--ligand", "CCO", "--autobox-ligand", str(crystal), "--guidance", "-2"], "guidance must be a finite number >= 0"),
           (["--ligand", "CCO", "--autobox-ligand", str(crystal), "--rounds", "-1"], "rounds must be"),
           (["--ligand", "CCO", "--autobox-ligand", str(crystal), "--rounds", "2", "--raw"], "exclude")]
    for args, message in bad:
        target = tmp_path / "bad.sdf"
        code = main(["dock", "--protein", str(protein), *args, "--checkpoint", ckpt, "-o", str(target)])
        err = capsys.readouterr().err
        assert code == 2 and message in err and err.count("\n") == 1 and not target.exists()


@needs_astex
def test_local_optimisation_lowers_vina_energy_and_keeps_the_local_structure():
    from molgen.docking.complexes import ligand_box
    from molgen.docking.data import pocket_of
    from molgen.docking.refine import Physics, minimize

    receptor = read_receptor(ASTEX / "1OF1_SCT_protein.pdb")
    crystal = Chem.AddHs(next(iter(Chem.SDMolSupplier(str(ASTEX / "1OF1_SCT_ligand.sdf")))), addCoords=True)
    centre, size = ligand_box(crystal)
    own = Conformer.of(crystal)
    lig = Conformer(own.graph, canonical_frame(own.pos, own.graph.heavy))
    space = PoseSpace([Docking(lig, pocket_of(receptor, centre), torch.tensor(centre, dtype=torch.float32))] * 3)
    x = space.state_of(own.pos.repeat(3, 1))
    tau, rot, tors = space.parts(x)
    shifted = space.assemble(tau + torch.tensor([[0.0, 0, 0], [0.25, 0, 0], [0, -0.3, 0.1]]), rot, tors)
    physics = Physics.of(receptor, crystal, centre, size)
    before = physics.energy(space.positions(shifted))
    refined, after = minimize(space, shifted, physics.energy, steps=60)
    assert torch.all(after < before) and before[1] - after[1] > 1.0  # kcal/mol
    moved = space.positions(refined)[: lig.graph.num_atoms]
    i, j = torch.tensor([[b.GetBeginAtomIdx(), b.GetEndAtomIdx()] for b in crystal.GetBonds()]).T
    assert torch.allclose((moved[i] - moved[j]).norm(dim=-1), (own.pos[i] - own.pos[j]).norm(dim=-1), atol=1e-4)



@needs_astex
def test_mutations_change_one_part_of_each_pose_and_search_beats_local_optimisation():
    from molgen.docking.complexes import ligand_box
    from molgen.docking.data import local_structures, pocket_of
    from molgen.docking.refine import MUTATION_AMPLITUDE, Physics, SearchConfig, mutate, search

    receptor = read_receptor(ASTEX / "1OF1_SCT_protein.pdb")
    crystal = Chem.AddHs(next(iter(Chem.SDMolSupplier(str(ASTEX / "1OF1_SCT_ligand.sdf")))), addCoords=True)
    centre, size = ligand_box(crystal)
    structure = local_structures(crystal, 1, 0)[0]
    space = PoseSpace([Docking(structure, pocket_of(receptor, centre),
                               torch.tensor(centre, dtype=torch.float32))] * 16)
    g = torch.Generator().manual_seed(0)
    x = space.noise(torch.empty(len(space.batch), 1), g)
    y = mutate(space, x, g)
    (t0, r0, s0), (t1, r1, s1) = space.parts(x), space.parts(y)
    before, after = space.positions(x).view(16, -1, 3), space.positions(y).view(16, -1, 3)
    torsions = len(s0) // 16
    for b in range(16):
        moved = not torch.equal(t0[b], t1[b])
        turned = not torch.equal(r0[b], r1[b])
        twisted = int((s0[b * torsions:(b + 1) * torsions] != s1[b * torsions:(b + 1) * torsions]).any(1).sum())
        assert moved + turned + twisted == 1
        shift = (after[b] - before[b]).mean(0).norm()
        if moved:
            assert shift <= MUTATION_AMPLITUDE + 1e-4
            torch.testing.assert_close(after[b] - after[b].mean(0), before[b] - before[b].mean(0))
        if turned:  # about the heavy-atom centroid, as a proper rotation
            heavy = structure.graph.heavy
            torch.testing.assert_close(after[b][heavy].mean(0), before[b][heavy].mean(0), atol=1e-4, rtol=0)
            def distances(p):
                return (p[:, None] - p[None]).norm(dim=-1)
            torch.testing.assert_close(distances(after[b]), distances(before[b]), atol=1e-4, rtol=0)
    physics = Physics.of(receptor, crystal, centre, size)
    _, local = search(space, x, physics, config=SearchConfig(rounds=0), generator=torch.Generator().manual_seed(1))
    _, searched = search(space, x, physics, config=SearchConfig(rounds=10), generator=torch.Generator().manual_seed(1))
    assert searched.min() < local.min() and searched.median() < local.median()

@needs_astex
def test_the_shipped_model_docks_and_ranks_distinct_poses_by_vina_score():
    from molgen.conformers.rmsd import pairwise_heavy_atom_rmsd
    from molgen.docking import dock
    from molgen.docking.api import DISTINCT_RMSD

    crystal = ASTEX / "1OF1_SCT_ligand.sdf"
    poses = dock(ASTEX / "1OF1_SCT_protein.pdb", crystal, autobox_ligand=crystal, n=6, seed=1)  # an SDF path
    scores = [p.GetDoubleProp("vina_score") for p in poses]
    assert 1 <= len(poses) <= 6 and scores == sorted(scores) and np.isfinite(scores).all()
    assert [p.GetIntProp("molgen_rank") for p in poses] == list(range(1, len(poses) + 1))
    together = Chem.Mol(poses[0])
    for pose in poses[1:]:
        together.AddConformer(Chem.Conformer(pose.GetConformer()), assignId=True)
    distance = pairwise_heavy_atom_rmsd(together, align=False)
    assert (distance[np.triu_indices(len(poses), 1)] >= DISTINCT_RMSD).all()


@needs_astex
def test_ranking_leaves_out_a_near_duplicate_of_a_better_pose():
    from molgen.docking.api import ranked_poses
    from molgen.docking.complexes import ligand_box
    from molgen.docking.refine import Physics

    receptor = read_receptor(ASTEX / "1OF1_SCT_protein.pdb")
    crystal = Chem.AddHs(next(iter(Chem.SDMolSupplier(str(ASTEX / "1OF1_SCT_ligand.sdf")))), addCoords=True)
    centre, size = ligand_box(crystal)
    physics = Physics.of(receptor, crystal, centre, size)
    pose = torch.tensor(crystal.GetConformer().GetPositions(), dtype=torch.float32)
    # the crystal pose and a copy 0.5 Å off (within 1 Å: the worse of the two is left out),
    # and one 1.5 Å off (1.5 and 1.58 Å from those: kept)
    moved = [pose, pose + torch.tensor([0.5, 0, 0]), pose + torch.tensor([0, 1.5, 0])]
    scores = physics.vina_scores(torch.cat(moved)).tolist()
    ranked = ranked_poses(crystal, moved, physics)
    kept = sorted([min(scores[:2]), scores[2]])
    assert [c.GetDoubleProp("vina_score") for c in ranked.GetConformers()] == pytest.approx(kept)
    unranked = ranked_poses(crystal, moved, None)  # no physics: every pose, as given
    assert unranked.GetNumConformers() == 3 and not unranked.GetConformer(0).HasProp("vina_score")


def test_minimised_local_structures_lower_the_force_field_energy_and_keep_the_molecule():
    from molgen.docking.data import local_structures

    mol = Chem.AddHs(Chem.MolFromSmiles("C[C@H]1CC[C@@H](C(=O)N2CCOCC2)CC1"))  # rings, stereo
    props = AllChem.MMFFGetMoleculeProperties(mol)

    def energies(structures):
        out = []
        for s in structures:
            conf = Chem.Conformer(mol.GetNumAtoms())
            for i, p in enumerate(s.pos.double().tolist()):
                conf.SetAtomPosition(i, p)
            m = Chem.Mol(mol)
            m.RemoveAllConformers()
            m.AddConformer(conf, assignId=True)
            Chem.AssignStereochemistryFrom3D(m)
            assert Chem.MolToSmiles(m) == Chem.MolToSmiles(mol)  # stereo kept
            out.append(AllChem.MMFFGetMoleculeForceField(m, props).CalcEnergy())
        return np.array(out)

    raw, relaxed = (local_structures(mol, 3, 0, forcefield=f) for f in (None, "mmff"))
    assert len(raw) == len(relaxed) == 3 and np.all(energies(relaxed) < energies(raw) - 1.0)
    # UFF where MMFF has no parameters; the graph and the atom order are the input's
    assert local_structures(mol, 1, 0, forcefield="uff")[0].graph.num_atoms == mol.GetNumAtoms()


def test_search_settings_are_checked():
    from molgen.docking.refine import SearchConfig

    for bad in (dict(rounds=-1), dict(steps=2.5), dict(polish_steps=True), dict(lr=0), dict(lr=float('nan'))):
        with pytest.raises(ValueError, match="search "):
            SearchConfig(**bad)
    assert SearchConfig(rounds=0).rounds == 0
