"""QM9 generation through the training machinery: batches divided by molecules, the tiny
experiment trains, resumes exactly and matches under DDP, and `molgen sample` writes SDF and
XYZ files RDKit reads back."""
import pytest
import torch

from molgen.train import CHECKPOINT, load_checkpoint, load_config, train

from molecule_helpers import com, gen, needs_qm9, shuffled_space, state
from test_cli import run
from test_training import check_ddp_matches_one_process, check_killed_run_resumes_exactly

TINY = ["experiment=qm9_tiny", "progress=false"]


@pytest.fixture(scope="module")
def checkpoint(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("qm9_tiny")
    train(load_config([*TINY, "steps=3", f"out_dir={out}"]))
    return out / CHECKPOINT


def test_subset_takes_whole_molecules_of_an_unsorted_batch():
    space = shuffled_space([2, 5, 3, 4])
    x = state(space)
    part, rows = space.subset(1, 3)
    assert part.num_graphs == 2 and part.sizes.tolist() == [5, 3]
    assert torch.equal(x[rows], x[(space.batch >= 1) & (space.batch < 3)])
    assert torch.equal(part.index(x[rows]), space.batch[rows] - 1)


@needs_qm9
def test_batches_are_centred_molecules_drawn_from_the_generator(cache):
    from molgen.tasks.qm9 import QM9Config, QM9Task

    task = QM9Task(QM9Config(name="qm9", hidden=8, layers=1, charges=True, source="qm9pack",
                             sample_batch=4))
    batch = task.batch(6, gen(0))
    x, space, again = batch.x0, batch.space, task.batch(6, gen(0)).x0
    assert torch.equal(x, again) and space.num_graphs == 6 and x.shape == (len(space.batch), 9)
    assert float(com(space, x).abs().max()) < 1e-4  # CoM-free
    assert set(x[:, 3:8].unique().tolist()) == {0.0, 0.25}  # EDM-scaled one-hot
    assert int(task.counts().sum()) == 100_000 and task.counts().argmax() == 19  # most: 19 atoms


@needs_qm9
def test_tiny_qm9_run_resumes_exactly(cache, tmp_path):
    check_killed_run_resumes_exactly(tmp_path, TINY, steps=8, every=3, kill=5)


@needs_qm9
def test_tiny_qm9_ddp_two_ranks_match_one_process(cache, tmp_path):
    check_ddp_matches_one_process(tmp_path, TINY)


@needs_qm9
def test_checkpoint_keeps_the_atom_count_distribution(checkpoint):
    counts = load_checkpoint(checkpoint)["task"]["node_counts"]  # weights_only
    assert counts.dtype == torch.int64 and int(counts.sum()) == 100_000 and len(counts) == 30
    metrics = (checkpoint.parent / "eval.json").read_text()
    assert all(key in metrics for key in ("atom_stability", "molecule_stability", "validity"))


@needs_qm9
@pytest.mark.parametrize("atoms", [None, 9])
def test_sample_writes_sdf_and_xyz(capsys, tmp_path, checkpoint, atoms):
    from rdkit import Chem

    sdf = tmp_path / "out.sdf"
    extra = [] if atoms is None else ["--atoms", atoms]
    code, out, err = run(capsys, "sample", "--checkpoint", checkpoint, "-n", 6,
                         "--sampler", "dpmpp_2m", "--steps", 4, "-o", sdf, *extra)
    assert code == 0, err
    assert "dpmpp_2m 4 steps" in out and "molecule stability" in out and "validity" in out
    mols = list(Chem.SDMolSupplier(str(sdf), sanitize=False, removeHs=False))
    assert len(mols) == 6 and all(m is not None and m.GetNumConformers() == 1 for m in mols)
    frames = (tmp_path / "out.xyz").read_text().splitlines()
    sizes = [m.GetNumAtoms() for m in mols]
    assert frames[0] == str(sizes[0]) and len(frames) == sum(sizes) + 2 * len(sizes)
    if atoms is not None:
        assert sizes == [atoms] * 6


@needs_qm9
@pytest.mark.parametrize("args, message", [
    (["--atoms", 0], "at least one atom"),
    (["-n", 0], "-n must be >= 1"),
    (["--sampler", "nope"], "unknown sampler 'nope'"),
])
def test_bad_sample_input_is_one_line_error(capsys, tmp_path, checkpoint, args, message):
    code, _, err = run(capsys, "sample", "--checkpoint", checkpoint, "-o", tmp_path / "x.sdf", *args)
    assert code == 2 and err.startswith("molgen: error: ") and message in err
    assert len(err.strip().splitlines()) == 1


def test_atoms_with_a_toy_checkpoint_is_an_error(capsys, tmp_path):
    train(load_config(["progress=false", "steps=1", "task.hidden=8", "batch_size=8",
                       "eval_samples=8", "sampler.steps=2", f"out_dir={tmp_path}"]))
    code, _, err = run(capsys, "sample", "--checkpoint", tmp_path / CHECKPOINT, "--atoms", 9,
                       "-o", tmp_path / "x.png")
    assert code == 2 and "--atoms does not apply" in err and "toy2d" in err


# -- property-conditioned design (task.condition) -------------------------------------------------
COND = [*TINY, "task.condition=alpha", "task.cond_drop=0.5"]


@pytest.fixture(scope="module")
def conditional_checkpoint(cache, tmp_path_factory):
    out = tmp_path_factory.mktemp("qm9_alpha")
    train(load_config([*COND, "steps=3", f"out_dir={out}"]))
    return out / CHECKPOINT


def conditional_task(cond_drop: float = 0.5):
    from molgen.tasks.qm9 import QM9Config, QM9Task

    return QM9Task(QM9Config(name="qm9", hidden=8, layers=1, charges=True, source="qm9pack",
                             sample_batch=4, condition="alpha", cond_drop=cond_drop))


@needs_qm9
def test_conditional_batches_carry_normalized_targets_and_null_conditions(cache):
    task = conditional_task()
    batch = task.batch(64, gen(0))
    targets = task.property_targets()
    # EDM's protocol: the generator sees the second half of the train split only
    assert torch.equal(task.rows, torch.arange(50_000, 100_000)) and len(targets["values"]) == 50_000
    assert float(targets["mad"]) == pytest.approx(float((targets["values"] - targets["mean"]).abs().mean()))
    cond = batch.cond
    null = cond[:, 1] == 0
    assert 16 < int(null.sum()) < 48 and torch.equal(cond[null], torch.zeros(int(null.sum()), 2))
    assert torch.all(cond[~null, 1] == 1) and cond[~null, 0].abs().max() < 20
    part, rows = batch.subset(10, 20)  # the Trainer's micro-batches take their conditions along
    assert torch.equal(part.cond, cond[10:20]) and part.space.num_graphs == 10
    assert torch.equal(part.x0, batch.x0[rows])


@needs_qm9
def test_drawn_targets_come_from_training_molecules_of_the_same_size(cache):
    task = conditional_task()
    sizes = torch.tensor([9, 19, 19, 25, 9])
    drawn = task.draw_targets(sizes, seed=3)
    assert torch.equal(drawn, task.draw_targets(sizes, seed=3))
    targets = task.property_targets()
    for n, value in zip(sizes.tolist(), drawn.tolist()):
        assert value in targets["values"][targets["n_atoms"] == n].tolist()


@needs_qm9
def test_conditional_checkpoint_samples_toward_a_target_with_guidance(capsys, tmp_path, conditional_checkpoint):
    state = load_checkpoint(conditional_checkpoint)["task"]  # weights_only, with p(value | n)
    assert len(state["targets_values"]) == 50_000 and state["targets_mad"] > 0
    code, out, err = run(capsys, "sample", "--checkpoint", conditional_checkpoint, "-n", 4,
                         "--steps", 3, "--target", 80, "--guidance", 2, "-o", tmp_path / "a.sdf")
    assert code == 0, err
    assert (tmp_path / "a.sdf").is_file()


@needs_qm9
def test_target_or_guidance_on_an_unconditional_model_is_a_one_line_error(capsys, tmp_path, checkpoint):
    for args in (["--target", 80], ["--guidance", 1]):
        code, _, err = run(capsys, "sample", "--checkpoint", checkpoint, "-o", tmp_path / "x.sdf", *args)
        assert code == 2 and "conditional model" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "train", *TINY, "task.condition=polarizability", f"out_dir={tmp_path}")
    assert code == 2 and "unknown QM9 property 'polarizability'" in err
