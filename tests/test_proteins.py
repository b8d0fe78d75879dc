"""Protein backbones: the chain reader on real and broken files, the split, Cα geometry on
ideal helices and strands (known answers), the denoiser's symmetries, and a tiny model that
trains and writes a PDB through the command line."""
from __future__ import annotations

import tarfile

import numpy as np
import pytest
import torch

from molgen.cli import main
from molgen.data.paths import default_data_root
from molgen.data.proteins import (AMINO_ACIDS, PDOWNB, ProteinInputError, load_pdownb, read_chains,
                                  split_of, to_structure, traces_of, write_pdb)
from molgen.diffusion.spaces import MoleculeSpace, atom_ranks
from molgen.metrics import backbones as geometry

ARCHIVE = default_data_root() / PDOWNB
needs_pdownb = pytest.mark.skipif(not ARCHIVE.is_file(), reason=f"PDownB archive absent: {ARCHIVE}")


def ideal_helix(n: int = 30) -> np.ndarray:
    """A right-handed α-helix of Cα atoms: 100° and 1.5 Å rise per residue, radius 2.3 Å."""
    theta = np.radians(100) * np.arange(n)
    return np.stack([2.3 * np.cos(theta), 2.3 * np.sin(theta), 1.5 * np.arange(n)], 1)


def ideal_strand(n: int = 12) -> np.ndarray:
    """A planar zigzag of 3.8 Å bonds and 124° angles: P-SEA's ideal strand (α = 180°)."""
    half = np.radians(124) / 2
    steps = np.arange(n)
    return np.stack([3.8 * np.sin(half) * steps, 3.8 * np.cos(half) * (steps % 2), 0 * steps], 1)


# -- reading ---------------------------------------------------------------------------------

@needs_pdownb
def test_reader_on_a_real_chain(tmp_path):
    with tarfile.open(ARCHIVE) as tar:
        (tmp_path / "1ail.pdb").write_bytes(tar.extractfile("1ail.pdb").read())
    chain, = read_chains(tmp_path / "1ail.pdb")
    assert chain.name == "1ail_A" and len(chain.residues) == len(chain.ca) == 70
    assert chain.residues[0] == "MET" and set(chain.residues) <= set(AMINO_ACIDS)
    assert np.abs(geometry.bonds(chain.ca) - 3.80).max() < 0.1 and len(chain.segments()) == 1


@pytest.mark.parametrize("text, message", [
    ("not a pdb file\n", "no protein chain"),
    ("HETATM    1  O   HOH A   1      0.000   0.000   0.000  1.00  0.00           O\n", "no protein chain"),
    ("ATOM      1  CA  GLY A   1      0.000   zero    0.000  1.00  0.00           C\n", "not a readable PDB"),
])
def test_broken_files_are_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.pdb"
    path.write_text(text)
    with pytest.raises(ProteinInputError, match=message) as info:
        read_chains(path)
    assert "\n" not in str(info.value)
    with pytest.raises(ProteinInputError, match="no such file"):
        read_chains(tmp_path / "missing.pdb")


def test_chain_breaks_cut_segments_and_pdb_round_trips(tmp_path):
    trace = np.concatenate([ideal_helix(20), ideal_helix(15) + [30.0, 0, 0]])
    write_pdb(tmp_path / "two.pdb", to_structure([trace, ideal_strand()]))
    assert open(tmp_path / "two.pdb").read().count("MODEL") == 2
    chain, = read_chains(tmp_path / "two.pdb")  # the first model
    assert [len(s) for s in chain.segments()] == [20, 15] and chain.segments(16)[0].shape == (20, 3)
    back = traces_of(to_structure([trace]))[0]
    assert np.abs(back - trace).max() < 1e-3  # PDB's 3 decimals


@needs_pdownb
def test_split_is_fixed_disjoint_and_about_80_10_10(tmp_path):
    parts = {s: {c.name for c in load_pdownb(s)} for s in ("train", "valid", "test")}
    assert not (parts["train"] & parts["test"]) and not (parts["valid"] & parts["test"])
    sizes = {s: len(v) for s, v in parts.items()}
    assert sum(sizes.values()) == 827 and sizes["train"] > 600 and 60 < sizes["test"] < 110
    assert all(split_of(name.split("_")[0]) == "test" for name in parts["test"])


# -- geometry with known answers ---------------------------------------------------------------

def test_ideal_helix_geometry_secondary_structure_and_hand():
    helix = ideal_helix()
    assert np.allclose(geometry.bonds(helix), 3.83, atol=0.01)
    assert np.allclose(geometry.angles(helix), 90.4, atol=0.1)
    assert np.allclose(geometry.dihedrals(helix), 50.0, atol=0.1)  # right-handed: positive
    assert geometry.secondary_structure(helix) == "C" + "H" * 28 + "C"
    assert geometry.helix_handedness(helix) == (26, 26)
    mirror = helix * [1, 1, -1]
    assert np.allclose(geometry.dihedrals(mirror), -50.0, atol=0.1)
    assert geometry.helix_handedness(mirror) == (0, 26)
    metrics = geometry.trace_metrics([helix])
    assert metrics["helix"] == pytest.approx(28 / 30) and metrics["right_handed"] == 1.0
    assert metrics["clash_free"] == 1.0 and metrics["with_strand"] == 0.0


def test_ideal_strand_and_a_clash():
    strand = ideal_strand()
    assert np.allclose(geometry.angles(strand), 124.0) and np.allclose(np.abs(geometry.dihedrals(strand)), 180.0)
    assert geometry.secondary_structure(strand).count("E") >= 8
    folded = np.concatenate([strand[:4], strand[:1] + [0.0, 0.5, 2.5]])  # residue 5 near residue 1
    assert geometry.clashes(folded) == 1 and geometry.clashes(strand) == 0
    assert geometry.radius_of_gyration(np.array([[1.0, 0, 0], [-1.0, 0, 0]])) == 1.0


@needs_pdownb
def test_test_chains_look_like_proteins():
    """The references the benchmark compares with: natural chains are ≈ 99.7% right-handed,
    their virtual bonds are 3.80 Å, they have no Cα clash, and P-SEA finds both helices and
    strands."""
    segments = [s for c in load_pdownb("test") for s in c.segments(20)]
    m = geometry.trace_metrics(segments)
    assert m["right_handed"] > 0.99 and m["bonds_ok"] > 0.99 and m["clash_free"] > 0.95
    assert 0.2 < m["helix"] < 0.4 and 0.1 < m["strand"] < 0.3


# -- the network ----------------------------------------------------------------------------------

def randomized(net):
    """Random weights everywhere, so that the coordinate updates are not ~0 at initialisation."""
    torch.manual_seed(1)
    with torch.no_grad():
        for p in net.parameters():
            p.normal_(0, 0.3)
    return net


def test_backbone_net_is_se3_but_not_e3_equivariant():
    from molgen.nn.backbone import BackboneNet

    torch.manual_seed(0)
    space = MoleculeSpace.from_sizes([9, 14])
    x = space.project(torch.randn(23, 3, dtype=torch.float64))
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    net = randomized(BackboneNet(hidden=16, layers=2, neighbours=5)).double().requires_grad_(False)
    out = net(x, t, space=space)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    q = q * torch.sign(torch.det(q))  # a proper rotation
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    torch.testing.assert_close(net(x @ q.T + shift, t, space=space), out @ q.T, atol=1e-10, rtol=0)
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    mirrored = net(x @ mirror, t, space=space)
    assert float((mirrored - out @ mirror).norm() / out.norm()) > 0.05


def test_chain_edges_and_local_geometry():
    from molgen.nn.backbone import chain_edges, local_geometry

    helix = torch.from_numpy(ideal_helix(12))
    space = MoleculeSpace.from_sizes([12])
    index = space.index(helix)
    rank = atom_ranks(index, 1)
    src, dst = chain_edges(helix, index, rank, num_graphs=1, neighbours=3)
    into = [sorted(src[dst == i].tolist()) for i in range(12)]
    assert all(j in into[5] for j in (3, 4, 6, 7)) and all(len(e) >= 3 for e in into)
    features = local_geometry(helix, rank, torch.full((12,), 12))
    alpha = torch.rad2deg(torch.atan2(features[1:9, 1], features[1:9, 0]))
    assert torch.allclose(alpha, torch.tensor(50.0, dtype=torch.float64), atol=0.1)
    assert features[0, 3] == 0 and features[-2, 3] == 0 and features[-2, 4] == 1  # chain ends


# -- a tiny model, end to end ------------------------------------------------------------------------

@needs_pdownb
def test_tiny_model_trains_and_the_cli_writes_a_pdb(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "experiment=backbones_tiny", f"out_dir={run}", "progress=false"]) == 0
    out = tmp_path / "chains.pdb"
    code = main(["backbones", "--checkpoint", str(run / "checkpoint.pt"), "-n", "3",
                 "--length", "25", "-o", str(out)])
    assert code == 0 and "3 chains of 25–25 residues" in capsys.readouterr().out
    from Bio.PDB import PDBParser
    structure = PDBParser(QUIET=True).get_structure("x", str(out))
    assert len(structure) == 3 and all(len(list(m.get_atoms())) == 25 for m in structure)
    assert main(["backbones", "--checkpoint", str(run / "checkpoint.pt"), "--length", "300",
                 "-o", str(tmp_path / "no.pdb")]) == 2
    assert "chain length must be in 10..256" in capsys.readouterr().err
    assert not (tmp_path / "no.pdb").exists()


@needs_pdownb
def test_conditional_batches_carry_sse_fractions_and_null_conditions():
    from molgen.proteins.task import BackboneConfig, BackboneTask

    task = BackboneTask(BackboneConfig(name="backbones", hidden=8, layers=1, neighbours=4, crop=40,
                                       min_length=30, max_length=256, sample_batch=4,
                                       condition="sse", cond_drop=0.25))
    batch = task.batch(64, torch.Generator().manual_seed(0))
    null = batch.cond[:, 2] == 0
    assert 4 < int(null.sum()) < 28 and torch.equal(batch.cond[null], torch.zeros(int(null.sum()), 3))
    real = batch.cond[~null]
    assert torch.all(real[:, 2] == 1) and torch.all(real[:, :2] >= 0) and torch.all(real[:, :2].sum(1) <= 1)
    assert batch.space.num_graphs == 64 and batch.x0.shape == (int(batch.space.sizes.sum()), 3)
    # drawn targets come from training segments of about the requested length; given ones stay
    composition = task.segment_composition()
    targets = task.targets(torch.tensor([50, 200]), seed=0, helix=0.4)
    assert torch.all(targets[:, 0] == 0.4)
    assert any(torch.allclose(targets[1, 1], row[2]) for row in composition if abs(row[0] - 200) < 60)
    with pytest.raises(ValueError, match="exceed 1"):
        task.targets(torch.tensor([50]), seed=0, helix=0.7, strand=0.6)


def test_the_shipped_model_generates_backbones_without_data():
    """molgen/proteins/weights/default.pt loads (weights_only) and samples chains of the given
    lengths as one Structure with a model per chain; lengths out of range are one line."""
    from molgen.proteins import generate_backbones

    structure = generate_backbones([20, 24], steps=5, helix=0.3, strand=0.2, guidance=1.0)
    assert [len(t) for t in traces_of(structure)] == [20, 24]
    with pytest.raises(ValueError, match="chain length must be in 10..256"):
        generate_backbones(400)
