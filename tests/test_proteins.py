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
    ("ATOM      1  CA  GLY A   1      0.000   0.000   0.000  1.00  0.00           C\nATOM      2  C   GLY\n",
     "line 2 is a truncated ATOM record"),
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
    """Rotating and shifting the noisy trace moves the predicted trace with it, whatever frame
    the motif condition comes in; a mirrored trace (and motif) does not give the mirror
    image."""
    from molgen.nn.backbone import MOTIF_COLUMNS, BackboneNet

    torch.manual_seed(0)
    space = MoleculeSpace.from_sizes([9, 14])
    x = space.project(torch.randn(23, 3, dtype=torch.float64))
    t = torch.tensor([0.3, 0.7], dtype=torch.float64)
    net = randomized(BackboneNet(hidden=16, layers=2, neighbours=5, cond_dim=3, motif_length=20))
    net = net.double().requires_grad_(False)
    motif = torch.zeros(2, 20, MOTIF_COLUMNS, dtype=torch.float64)
    motif[1, 3:9, 0] = 1.0
    motif[1, 3:9, 1:] = torch.randn(6, 3, dtype=torch.float64)
    sse = torch.tensor([[0.3, 0.2, 1.0], [0.0, 0.0, 0.0]], dtype=torch.float64)

    def cond(frame):
        moved = motif.clone()
        moved[..., 1:] = motif[..., 1:] @ frame.T
        return torch.cat([sse, moved.reshape(2, -1)], -1)

    eye = torch.eye(3, dtype=torch.float64)
    out = net(x, t, cond(eye), space=space)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    q = q * torch.sign(torch.det(q))  # a proper rotation
    p, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    shift = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    p = p * torch.sign(torch.det(p))  # the motif in another frame
    torch.testing.assert_close(net(x @ q.T + shift, t, cond(p), space=space), out @ q.T,
                               atol=1e-10, rtol=0)
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    mirrored = net(x @ mirror, t, cond(mirror), space=space)
    assert float((mirrored - out @ mirror).norm() / out.norm()) > 0.05
    # the motif is read: without it the second chain's prediction changes
    no_motif = torch.cat([sse, torch.zeros(2, 20 * MOTIF_COLUMNS, dtype=torch.float64)], -1)
    assert not torch.allclose(net(x, t, no_motif, space=space)[9:], out[9:])


def test_chain_frames_rotate_and_their_normal_does_not_mirror():
    from molgen.nn.backbone import chain_frames

    trace = torch.from_numpy(ideal_helix(6))
    rank, sizes = torch.arange(6), torch.full((6,), 6)
    frames = chain_frames(trace, rank, sizes)
    assert torch.allclose(frames[2].norm(dim=-1), torch.ones(3, dtype=torch.float64))
    assert torch.all(frames[0, 1] == 0) and torch.all(frames[5, 0] == 0)  # chain ends
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    flipped = chain_frames(trace @ mirror, rank, sizes)
    torch.testing.assert_close(flipped[:, :2], frames[:, :2] @ mirror)
    torch.testing.assert_close(flipped[1:5, 2], -(frames[1:5, 2] @ mirror))


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
    # scaffolding a motif cut from the chains just written, by each method (the default last)
    for extra in (["--motif-method", "condition"], ["--motif-method", "inpaint"], []):
        code = main(["backbones", "--checkpoint", str(run / "checkpoint.pt"), "-n", "2", "--length",
                     "30", "--motif", f"{out}:A3-9", "--motif-start", "4", "-o", str(tmp_path / "m.pdb"),
                     *extra])
        assert code == 0 and "motif rmsd" in capsys.readouterr().out
    structure = PDBParser(QUIET=True).get_structure("m", str(tmp_path / "m.pdb"))
    from molgen.proteins.motif import motif_rmsd, read_motif

    motif = read_motif(f"{out}:A3-9")
    assert motif_rmsd(traces_of(structure)[1], motif, np.arange(4, 11)) < 1e-2  # guided: in place
    for args, message in [(["--motif", f"{out}:A20-40"], "no residue 26..40"),
                          (["--motif", f"{out}:A3-9", "--motif-start", "25"], "does not fit"),
                          (["--motif-method", "inpaint"], "--motif-method needs --motif")]:
        assert main(["backbones", "--checkpoint", str(run / "checkpoint.pt"), "--length", "30",
                     "-o", str(tmp_path / "no.pdb"), *args]) == 2
        assert message in capsys.readouterr().err and not (tmp_path / "no.pdb").exists()


@needs_pdownb
def test_conditional_batches_carry_sse_fractions_and_null_conditions():
    from molgen.proteins.task import BackboneConfig, BackboneTask, gains_at

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
    targets = task.targets(torch.tensor([50, 200]), seed=0, helix=0.4, gain=(1.0, 1.0))
    assert torch.all(targets[:, 0] == 0.4)
    assert any(torch.allclose(targets[1, 1], row[2]) for row in composition if abs(row[0] - 200) < 60)
    with pytest.raises(ValueError, match="exceed 1"):
        task.targets(torch.tensor([50]), seed=0, helix=0.7, strand=0.6)
    # the gains scale the drawn pair, each its own fraction (capped at a sum of 1), never a
    # given fraction
    lengths = torch.arange(40, 240, 10)
    drawn = task.targets(lengths, seed=3, gain=(1.0, 1.0))
    gain = torch.tensor([1.2, 1.8])
    expected = drawn * gain / (drawn * gain).sum(1, keepdim=True).clamp(min=1)
    assert torch.allclose(task.targets(lengths, seed=3, gain=(1.2, 1.8)), expected)
    raised = task.targets(lengths, seed=3, helix=0.4, gain=(1.2, 1.8))
    assert torch.all(raised[:, 0] == 0.4) and torch.all(raised.sum(1) <= 1 + 1e-6)
    assert torch.allclose(raised[:, 1], expected[:, 1].clamp(max=0.6))
    assert ((drawn * gain).sum(1) > 1).any() and (expected[:, 1] > 0.6).any()  # both caps exercised
    # knots in length: linear between them, constant beyond; one knot is a pair everywhere
    knots = ((50, 1.0, 2.0), (100, 1.5, 1.0))
    at = gains_at(knots, torch.tensor([30, 50, 75, 100, 250]))
    assert torch.allclose(at, torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.25, 1.5], [1.5, 1.0], [1.5, 1.0]]))
    assert torch.equal(gains_at(((80, 1.2, 1.8),), lengths), gains_at((1.2, 1.8), lengths))
    expected = drawn * at[1:2] / (drawn * at[1:2]).sum(1, keepdim=True).clamp(min=1)
    assert torch.allclose(task.targets(lengths, seed=3, gain=knots)[lengths <= 50], expected[lengths <= 50])
    with pytest.raises(ValueError, match="strand gain must be a finite number >= 0"):
        task.targets(lengths, seed=3, gain=(1.5, float("nan")))
    with pytest.raises(ValueError, match="helix gain must be a finite number >= 0"):
        task.targets(lengths, seed=3, gain=((50, -1.0, 2.0), (100, 1.5, 2.0)))
    with pytest.raises(ValueError, match="lengths must increase"):
        task.targets(lengths, seed=3, gain=((100, 1.0, 2.0), (50, 1.5, 2.0)))
    for bad in ((1.5,), 1.5, "1.5", ((50, 1.0), (100, 1.5)), ()):
        with pytest.raises(ValueError, match=r"\(helix, strand\) pair or \(length, helix, strand\) knots"):
            task.targets(lengths, seed=3, gain=bad)


def test_the_shipped_model_generates_backbones_without_data():
    """molgen/proteins/weights/default.pt loads (weights_only) and samples chains of the given
    lengths as one Structure with a model per chain; lengths out of range are one line."""
    from molgen.proteins import generate_backbones

    structure = generate_backbones([20, 24], steps=5, helix=0.3, strand=0.2, guidance=1.0)
    assert [len(t) for t in traces_of(structure)] == [20, 24]
    with pytest.raises(ValueError, match="chain length must be in 10..256"):
        generate_backbones(400)
    with pytest.raises(ValueError, match="motif must be a Motif"):
        generate_backbones(40, motif=3)


def test_the_shipped_guidance_applies_without_a_motif_only(tmp_path):
    """The shipped sampler guides toward the drawn composition (w = 2); a motif is scaffolded
    unguided unless a scale is given, as benchmarks/backbones.py measured it."""
    from molgen.proteins import BackboneModel, generate_backbones
    from molgen.proteins.motif import read_motif

    assert BackboneModel.load().sampler.guidance_scale == 2.0

    def same(a, b) -> bool:
        return np.array_equal(np.concatenate(traces_of(a)), np.concatenate(traces_of(b)))

    plain = generate_backbones(20, steps=3)
    assert same(plain, generate_backbones(20, steps=3, guidance=2.0))
    assert not same(plain, generate_backbones(20, steps=3, guidance=0.0))
    write_pdb(tmp_path / "h.pdb", to_structure([ideal_helix(12)]))
    motif = read_motif(f"{tmp_path / 'h.pdb'}:A1-8")
    scaffold = generate_backbones(20, steps=3, motif=motif)
    assert same(scaffold, generate_backbones(20, steps=3, motif=motif, guidance=0.0))
    assert not same(scaffold, generate_backbones(20, steps=3, motif=motif, guidance=2.0))


# -- motif scaffolding ---------------------------------------------------------------------------

def test_motif_reader_placement_and_rmsd(tmp_path):
    from molgen.proteins.motif import Motif, motif_rmsd, read_motif

    helix = ideal_helix(30)
    write_pdb(tmp_path / "h.pdb", to_structure([helix]))  # residues numbered 1 … 30, chain A
    motif = read_motif(f"{tmp_path / 'h.pdb'}:A5-12,A20-22")
    assert np.allclose(motif.positions, np.concatenate([helix[4:12], helix[19:22]]), atol=1e-3)
    assert motif.offsets.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 15, 16, 17] and motif.span == 18
    assert motif.placed(40).tolist()[0] == 11 and motif.placed(40, 0).tolist()[-1] == 17
    # RMSD after a proper superposition: 0 for a moved copy, > 0 for the mirror image
    q, _ = np.linalg.qr(np.random.default_rng(0).normal(size=(3, 3)))
    q *= np.sign(np.linalg.det(q))
    chain = np.zeros((40, 3))
    chain[motif.placed(40)] = motif.positions @ q.T + 5.0
    assert motif_rmsd(chain, motif, motif.placed(40)) < 1e-6
    assert motif_rmsd(chain * [1, 1, -1], motif, motif.placed(40)) > 1.0
    for spec, message in [(f"{tmp_path / 'h.pdb'}:B1-5", "no protein chain B"),
                          (f"{tmp_path / 'h.pdb'}:A25-35", "no residue 31..35"),
                          (f"{tmp_path / 'h.pdb'}:A5to9", "not CHAIN FIRST-LAST"),
                          (f"{tmp_path / 'h.pdb'}:A9-12,A5-7", "out of order"),
                          ("A5-9", "expected FILE:SEGMENTS"),
                          (f"{tmp_path / 'missing.pdb'}:A1-5", "no such file")]:
        with pytest.raises(ProteinInputError, match=message):
            read_motif(spec)
    with pytest.raises(ValueError, match="longer than the chain"):
        motif.placed(15)
    with pytest.raises(ValueError, match="does not fit"):
        motif.placed(30, 20)
    with pytest.raises(ValueError, match="does not fit"):
        motif.placed(40, 2.5)
    with pytest.raises(ValueError, match="at least 3 residues"):
        Motif(helix[:2], [0, 1])


def test_motif_denoiser_puts_the_motif_into_each_prediction():
    """Whatever the inner denoiser predicts, with or without reconstruction guidance the
    motif rows of x̂0 are the motif superposed on them, x̂0 stays CoM-free, and (x̂0, ε̂) stay
    consistent with x_t."""
    from molgen.diffusion import CosineSchedule, Denoiser
    from molgen.proteins.motif import MotifDenoiser, Motif, motif_rmsd

    torch.manual_seed(0)
    space = MoleculeSpace.from_sizes([12, 15])
    inner = Denoiser(lambda x, t: torch.sin(3 * x), CosineSchedule(), "x0", space)
    motif = Motif(ideal_helix(5) / 10, np.arange(5))
    known, target = torch.zeros(27, dtype=torch.bool), torch.zeros(27, 3, dtype=torch.float64)
    for first in (3, 12 + 7):
        known[first:first + 5] = True
        target[first:first + 5] = torch.from_numpy(motif.positions)
    x = space.project(torch.randn(27, 3, dtype=torch.float64))
    t = torch.tensor([0.4, 0.4], dtype=torch.float64)
    for weight in (0.0, 10.0):
        denoiser = MotifDenoiser(inner, known, target, weight)
        x0, eps = denoiser(x, t)
        for trace, first in zip(space.unbatch(x0), (3, 7)):
            assert motif_rmsd(trace.numpy(), motif, np.arange(first, first + 5)) < 1e-8
        alpha, sigma = denoiser.scales(t, x)
        torch.testing.assert_close(alpha * x0 + sigma * eps, x)
        torch.testing.assert_close(space.project(x0), x0)


def test_reconstruction_guidance_moves_the_scaffold_by_the_closed_form_gradient():
    """With x̂0_i = x_i + x_{i-1}/2, the motif's miss ‖x̂0[M] − m‖² has the gradient
    (x̂0_{i+1} − m_{i+1}) on the scaffold row just before the motif, and none on rows that no
    motif row reads: reconstruction guidance moves that row by −(w_r α / 2) times it."""
    from molgen.diffusion import CosineSchedule, Denoiser
    from molgen.metrics.stats import kabsch
    from molgen.proteins.motif import Motif, MotifDenoiser

    torch.manual_seed(1)
    space = MoleculeSpace.from_sizes([14])
    inner = Denoiser(lambda x, t: x + torch.roll(x, 1, 0) / 2, CosineSchedule(), "x0", space)
    motif = Motif(ideal_helix(5) / 10, np.arange(5))
    known, target = torch.zeros(14, dtype=torch.bool), torch.zeros(14, 3, dtype=torch.float64)
    known[6:11], target[6:11] = True, torch.from_numpy(motif.positions)
    x = space.project(torch.randn(14, 3, dtype=torch.float64))
    t, weight = torch.tensor([0.3], dtype=torch.float64), 4.0
    plain, _ = inner(x, t)
    want = target[6:11] - target[6:11].mean(0)
    placed = want @ kabsch(want, plain[6:11] - plain[6:11].mean(0)).T + plain[6:11].mean(0)
    alpha = float(inner.schedule.alpha(t))
    guided, _ = MotifDenoiser(inner, known, target, weight)(x, t)
    moved = (guided[5] - guided[1]) - (plain[5] - plain[1])  # row 1: no motif row reads it
    torch.testing.assert_close(moved, -weight * alpha / 2 * (plain[6] - placed[0]))


@needs_pdownb
def test_motif_batches_and_motif_conditions():
    from molgen.nn.backbone import MOTIF_COLUMNS
    from molgen.proteins.task import BackboneConfig, BackboneTask

    task = BackboneTask(BackboneConfig(name="backbones", hidden=8, layers=1, neighbours=4, crop=40,
                                       min_length=30, max_length=64, sample_batch=4,
                                       condition="sse", motif=0.5, cond_drop=0.2))
    assert task.cond_dim == 3 + 64 * MOTIF_COLUMNS
    batch = task.batch(64, torch.Generator().manual_seed(0))
    blocks = batch.cond[:, 3:].reshape(64, 64, MOTIF_COLUMNS)
    with_motif = blocks[:, :, 0].sum(1) > 0
    assert 15 < int(with_motif.sum()) < 35  # ≈ 0.5 · 0.8 of 64
    sse_null = batch.cond[:, 2] == 0
    assert bool((with_motif & sse_null).any()) and bool((with_motif & ~sse_null).any())
    for b in torch.nonzero(with_motif).squeeze(1).tolist():  # motif = the chain's own residues
        rows = batch.space.unbatch(batch.x0)[b]
        at = torch.nonzero(blocks[b, :, 0]).squeeze(1)
        assert 3 <= len(at) <= 0.5 * len(rows) + 3
        got, want = rows[at], blocks[b, at, 1:]
        torch.testing.assert_close(torch.cdist(got, got), torch.cdist(want, want), atol=1e-5, rtol=0)
        assert float(want.mean(0).abs().max()) < 1e-5 and float(want.abs().max()) < 10 * task.cfg.scale * len(at)


def test_local_distance_loss_is_zero_at_the_truth_and_measures_distances_in_angstrom():
    from molgen.proteins.task import LOCAL_T, BackboneConfig, BackboneTask

    task = BackboneTask(BackboneConfig(name="backbones", hidden=8, layers=1, neighbours=4, crop=40,
                                       min_length=30, max_length=64, sample_batch=4, scale=0.25,
                                       local_loss=2.0))
    space = MoleculeSpace.from_sizes([30, 12])
    x0 = space.project(torch.from_numpy(np.concatenate([ideal_helix(30), ideal_strand(12)])) * 0.25)
    t = torch.tensor([0.1, 0.1], dtype=torch.float64)
    assert torch.equal(task.auxiliary_loss(x0, x0, t, space=space), torch.zeros(2, dtype=torch.float64))
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    torch.testing.assert_close(task.auxiliary_loss(x0 @ q.T, x0, t, space=space), torch.zeros(2, dtype=torch.float64))
    stretched = x0.clone()
    stretched[30:] = x0[30:] * 1.1  # the strand 10% larger: its pair distances 10% longer
    loss = task.auxiliary_loss(stretched, x0, t, space=space)
    assert loss[0] == 0 and loss[1] > 0
    rows = x0[30:] / 0.25
    d = torch.cdist(rows, rows)
    near = (d < 8.0) & (d > 0)
    torch.testing.assert_close(loss[1], 2.0 * (0.1 * d[near]).square().mean())
    assert torch.all(task.auxiliary_loss(stretched, x0, torch.full((2,), LOCAL_T), space=space) == 0)
    mixed = task.auxiliary_loss(x0 * 1.1, x0, torch.tensor([0.5, 0.1], dtype=torch.float64), space=space)
    assert mixed[0] == 0 and mixed[1] == loss[1]


def test_chirality_loss_is_zero_for_the_truth_and_its_rotations_and_sees_the_mirror():
    """The signed-volume loss: 0 for the true chain and any rotation of it (at every t, unlike
    the local loss), the mirror image's error in closed form (every volume changes sign:
    4 v² per turn), and the strand's volumes, all 0 (a planar zigzag), in neither case."""
    from molgen.proteins.task import BackboneConfig, BackboneTask

    task = BackboneTask(BackboneConfig(name="backbones", hidden=8, layers=1, neighbours=4, crop=40,
                                       min_length=30, max_length=64, sample_batch=4, scale=0.25,
                                       local_loss=0.0, chiral_loss=3.0))
    space = MoleculeSpace.from_sizes([30, 12])
    x0 = space.project(torch.from_numpy(np.concatenate([ideal_helix(30), ideal_strand(12)])) * 0.25)
    t = torch.tensor([0.9, 0.9], dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    q = q * torch.sign(torch.det(q))
    torch.testing.assert_close(task.auxiliary_loss(x0 @ q.T, x0, t, space=space),
                               torch.zeros(2, dtype=torch.float64))
    mirror = torch.diag(torch.tensor([1.0, 1.0, -1.0], dtype=torch.float64))
    loss = task.auxiliary_loss(x0 @ mirror, x0, t, space=space)
    helix = torch.from_numpy(ideal_helix(4)) / 3.8
    b1, b2, b3 = helix[1] - helix[0], helix[2] - helix[1], helix[3] - helix[2]
    volume = torch.dot(b1, torch.linalg.cross(b2, b3))
    assert volume > 0.5  # a right-handed turn
    torch.testing.assert_close(loss, torch.stack([3.0 * 4 * volume ** 2, torch.tensor(0.0, dtype=torch.float64)]))


def test_motif_loss_measures_the_motif_distances_of_chains_that_carry_one():
    """The motif loss (through the trainer's `auxiliary_loss` hook): 0 at the truth and any
    rotation of it, at every t; a motif 10% too large costs the mean of (0.1 d)² over its
    pairs, in Å²; a chain whose motif block is null (no motif, or dropped) costs nothing."""
    from molgen.nn.backbone import MOTIF_COLUMNS
    from molgen.proteins.task import BackboneConfig, BackboneTask
    from molgen.train.task import auxiliary_loss

    task = BackboneTask(BackboneConfig(name="backbones", hidden=8, layers=1, neighbours=4, crop=40,
                                       min_length=30, max_length=64, sample_batch=4, scale=0.25,
                                       local_loss=0.0, condition="sse", motif=0.5, motif_loss=2.0))
    space = MoleculeSpace.from_sizes([30, 30])
    x0 = space.project(torch.from_numpy(np.concatenate([ideal_helix(30), ideal_strand(30)])) * 0.25)
    at = torch.tensor([2, 3, 4, 20, 21, 22])
    cond = task.conditions(2, torch.zeros(2, 3), [(at, x0[at]), None]).double()
    assert cond.shape == (2, 3 + MOTIF_COLUMNS * 64)
    t = torch.tensor([0.9, 0.9], dtype=torch.float64)
    loss = auxiliary_loss(task, space, cond)
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0)))
    torch.testing.assert_close(loss(x0 @ q.T, x0, t), torch.zeros(2, dtype=torch.float64))
    grown = x0.clone()
    grown[at] = x0[at] * 1.1
    grown[30 + at] = x0[30 + at] * 1.1  # the same residues of the chain without a motif
    d = torch.pdist(x0[at] / 0.25)
    torch.testing.assert_close(loss(grown, x0, t), torch.stack([2.0 * (0.1 * d).square().mean(),
                                                                torch.tensor(0.0, dtype=torch.float64)]))
    assert torch.equal(auxiliary_loss(task, space)(grown, x0, t), torch.zeros(2, dtype=torch.float64))


def test_a_model_without_motifs_scaffolds_by_guidance_or_inpainting_only():
    from molgen.diffusion import SamplerConfig
    from molgen.proteins.motif import Motif
    from molgen.proteins.task import BackboneConfig, BackboneTask

    task = BackboneTask(BackboneConfig(name="backbones", hidden=8, layers=1, neighbours=4, crop=40,
                                       min_length=30, max_length=64, sample_batch=4))
    motif = Motif(ideal_helix(6), np.arange(6))
    with pytest.raises(ValueError, match="trained without motifs"):
        task.sample(None, SamplerConfig(), torch.tensor([30]), seed=0, motif=motif,
                    motif_method="condition")
    with pytest.raises(ValueError, match="unknown motif method 'replace'"):
        task.sample(None, SamplerConfig(), torch.tensor([30]), seed=0, motif=motif,
                    motif_method="replace")
    with pytest.raises(ValueError, match="reconstruction"):
        task.sample(None, SamplerConfig(), torch.tensor([30]), seed=0, motif=motif,
                    reconstruction=float("nan"))
    for method in ("guided", "inpaint"):
        with pytest.raises(ValueError, match="does not fit"):
            task.sample(None, SamplerConfig(), torch.tensor([30]), seed=0, motif=motif,
                        motif_start=26, motif_method=method)


# -- clash guidance ------------------------------------------------------------------------------

def test_clash_gradient_is_the_penalty_gradient_and_rotates_with_the_chain():
    """The closed form equals autograd's gradient of Σ_{|i−j|≥2} max(0, r₀ − d_ij)² (each pair
    once), is zero on a chain without close non-adjacent pairs, and rotates with the chain."""
    from molgen.proteins.sterics import CLASH_RADIUS, clash_gradient

    torch.manual_seed(0)
    chain = torch.randn(20, 3, dtype=torch.float64) * 3.0
    y = chain.clone().requires_grad_()
    i, j = torch.triu_indices(20, 20, offset=2)
    penalty = (CLASH_RADIUS - (y[i] - y[j]).norm(dim=-1)).clamp(min=0).square().sum()
    want, = torch.autograd.grad(penalty, y)
    assert want.abs().sum() > 0
    torch.testing.assert_close(clash_gradient(chain), want)
    helix = torch.from_numpy(ideal_helix(20))  # nearest non-adjacent Cα pairs: 5.4 Å
    assert torch.equal(clash_gradient(helix), torch.zeros_like(helix))
    q, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    torch.testing.assert_close(clash_gradient(chain @ q.T), clash_gradient(chain) @ q.T)


def test_steric_denoiser_pushes_clashing_residues_apart_and_keeps_x0_and_eps_consistent():
    """Two non-adjacent residues predicted 2 Å apart move apart by λ·2·(r₀ − 2) Å each (scaled
    into state units), the rest of a clash-free chain is untouched up to the CoM shift, and
    (x̂0, ε̂) stay consistent with x_t, also under classifier-free guidance's repeat."""
    from molgen.diffusion import CFGDenoiser, CosineSchedule, Denoiser
    from molgen.proteins.sterics import CLASH_RADIUS, StericDenoiser

    scale, weight = 0.1, 0.05
    chain = torch.from_numpy(ideal_helix(16))
    chain[10] = chain[3] + torch.tensor([2.0, 0.0, 0.0], dtype=torch.float64)  # a clash
    prediction = (chain - chain.mean(0)) * scale
    space = MoleculeSpace.from_sizes([16, 16])
    both = torch.cat([prediction, prediction])
    inner = Denoiser(lambda x, t, c=None: both.repeat(len(x) // 32, 1), CosineSchedule(), "x0", space)
    x = space.project(torch.randn(32, 3, dtype=torch.float64))
    t = torch.tensor([0.5, 0.5], dtype=torch.float64)
    denoiser = StericDenoiser(inner, weight, scale)
    x0, eps = denoiser(x, t)
    alpha, sigma = denoiser.scales(t, x)
    torch.testing.assert_close(alpha * x0 + sigma * eps, x)
    pushed = float((x0[10] - x0[3]).norm()) / scale
    assert pushed == pytest.approx(2.0 + 2 * weight * 2 * (CLASH_RADIUS - 2.0), rel=1e-6)
    shift = x0[:16] - prediction
    rest = [k for k in range(16) if k not in (3, 10)]
    torch.testing.assert_close(shift[rest], shift[rest][:1].expand(len(rest), 3))
    torch.testing.assert_close(x0[16:], x0[:16])
    guided = CFGDenoiser(denoiser, 1.0, 0.0)
    x0_cfg, _ = guided(x, t, torch.ones(2, 1, dtype=torch.float64))
    torch.testing.assert_close(x0_cfg, x0)


def test_clash_weight_is_checked_at_every_entry_point(tmp_path, capsys):
    from molgen.diffusion import SamplerConfig
    from molgen.proteins import generate_backbones
    from molgen.proteins.task import BackboneConfig, BackboneTask

    task = BackboneTask(BackboneConfig(name="backbones", hidden=8, layers=1, neighbours=4, crop=40,
                                       min_length=30, max_length=64, sample_batch=4))
    for bad in (-0.1, float("nan")):
        with pytest.raises(ValueError, match="clash"):
            task.sample(None, SamplerConfig(), torch.tensor([30]), seed=0, clash=bad)
        with pytest.raises(ValueError, match="clash"):
            generate_backbones(30, clash=bad)
    assert main(["backbones", "--length", "30", "--clash-guidance", "-1", "-o", str(tmp_path / "no.pdb")]) == 2
    err = capsys.readouterr().err
    assert "clash" in err and len(err.strip().splitlines()) == 1
